-- The access-token table was named for "sessions", a word the MCP sessions also use. Renaming
-- keeps every row; indexes follow the table and take names that match it.
ALTER TABLE access_sessions RENAME TO access_tokens;
DROP INDEX IF EXISTS access_sessions_family;
DROP INDEX IF EXISTS access_sessions_expiry;
CREATE INDEX access_tokens_family ON access_tokens (family);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
