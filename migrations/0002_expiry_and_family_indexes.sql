-- Family revocation deletes by family; the sweep deletes by expiry.
CREATE INDEX access_sessions_family ON access_sessions (family);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX clients_expiry ON clients (expires_at);
CREATE INDEX pending_authorizations_expiry ON pending_authorizations (expires_at);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);
CREATE INDEX access_sessions_expiry ON access_sessions (expires_at);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);
CREATE INDEX revoked_families_expiry ON revoked_families (expires_at);
