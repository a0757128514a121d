-- Passwords (argon2id PHC strings) for people who sign in to the web pages.
ALTER TABLE users ADD COLUMN password_hash TEXT;

-- A web session is a credential like an API key: a random token stored
-- only as its SHA-256 hash, but sent as a cookie and expiring.
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'session'));
ALTER TABLE api_keys ADD COLUMN expires_at TIMESTAMPTZ;

-- What the chain said about a withdrawal: its tx hash once submitted, or
-- why it failed (the funds went back to the user).
ALTER TABLE withdrawals ADD COLUMN chain_tx_hash TEXT;
ALTER TABLE withdrawals ADD COLUMN failure_reason TEXT;
