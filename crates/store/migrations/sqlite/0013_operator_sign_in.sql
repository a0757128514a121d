-- Operators sign in to the console with a password and, once set up, a
-- one-time code (TOTP). The secret is kept as hex; the last step used
-- makes each code work once; failures lock the account for a time.
ALTER TABLE operators ADD COLUMN totp_secret TEXT;
ALTER TABLE operators ADD COLUMN totp_pending TEXT;
ALTER TABLE operators ADD COLUMN totp_last_step BIGINT;
ALTER TABLE operators ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operators ADD COLUMN locked_until TEXT;

CREATE TABLE operator_sessions (
    id INTEGER PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    ended_at TEXT,
    CONSTRAINT operator_sessions_hash_key UNIQUE (token_hash)
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
