-- Operators sign in to the console with a password and, once set up, a
-- one-time code (TOTP). The secret is kept as hex; the last step used
-- makes each code work once; failures lock the account for a time.
ALTER TABLE operators ADD COLUMN totp_secret TEXT;
ALTER TABLE operators ADD COLUMN totp_pending TEXT;
ALTER TABLE operators ADD COLUMN totp_last_step BIGINT;
ALTER TABLE operators ADD COLUMN failed_sign_ins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE operators ADD COLUMN locked_until TIMESTAMPTZ;

CREATE TABLE operator_sessions (
    id BIGSERIAL PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    CONSTRAINT operator_sessions_hash_key UNIQUE (token_hash)
);
CREATE INDEX operator_sessions_operator ON operator_sessions (operator_id);
