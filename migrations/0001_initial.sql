-- Records are JSON documents keyed by the SHA-256 digest (hex) of the secret that names them.
-- Times are integer epoch milliseconds; every read filters on expires_at.

CREATE TABLE clients (
    client_id  TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE pending_authorizations (
    digest     TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE authorization_codes (
    digest      TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    -- How many times the code was presented: 1 is the redemption, more are replays.
    redemptions INTEGER NOT NULL DEFAULT 0,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE access_sessions (
    digest     TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    body       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

CREATE TABLE refresh_tokens (
    digest     TEXT PRIMARY KEY,
    family     TEXT NOT NULL,
    body       TEXT NOT NULL,
    -- NULL while active; set once, when the token is used.
    rotated_at BIGINT,
    successor  TEXT,
    expires_at BIGINT NOT NULL
);

-- A revoked family accepts no new tokens until its tombstone expires.
CREATE TABLE revoked_families (
    family     TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
