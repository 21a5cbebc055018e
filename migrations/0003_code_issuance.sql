-- Whether a redeemed code's tokens are stored: a replay revokes them only once they exist.
ALTER TABLE authorization_codes ADD COLUMN issued BOOLEAN NOT NULL DEFAULT FALSE;
