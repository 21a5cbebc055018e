-- Client ID Metadata Documents fetched from their hosts, validated, kept for reuse: keyed by
-- the digest of the client id URL; expires_at (epoch milliseconds) is the end of the stale
-- window, after which the copy is gone.
CREATE TABLE client_documents (digest TEXT PRIMARY KEY, body TEXT NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX client_documents_expiry ON client_documents (expires_at);
