-- Operators as people: each with an email, a role and, for scripts,
-- personal tokens (kept as SHA-256, shown once). ADMIN_TOKEN stays as
-- break-glass.
CREATE TABLE operators (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'support', 'operator', 'treasurer', 'admin')),
    password_hash TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    disabled_at TIMESTAMPTZ,
    CONSTRAINT operators_email_key UNIQUE (email)
);

CREATE TABLE operator_tokens (
    id BIGSERIAL PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    CONSTRAINT operator_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX operator_tokens_operator ON operator_tokens (operator_id);
