-- Upstream login: browser sessions, trips to the identity provider, remembered approvals and
-- the sealed upstream tokens of each authorization family. Keys are digests (or family ids);
-- bodies are JSON; expires_at is epoch milliseconds, as in every other table.
CREATE TABLE login_sessions (digest TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE login_attempts (digest TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE remembered_consents (digest TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE upstream_grants (family TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX login_sessions_expiry ON login_sessions (expires_at);
CREATE INDEX login_attempts_expiry ON login_attempts (expires_at);
CREATE INDEX remembered_consents_expiry ON remembered_consents (expires_at);
CREATE INDEX upstream_grants_expiry ON upstream_grants (expires_at);
