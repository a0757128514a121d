-- Operators as people: each with an email, a role and, for scripts,
-- personal tokens (kept as SHA-256, shown once). ADMIN_TOKEN stays as
-- break-glass.
CREATE TABLE operators (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'support', 'operator', 'treasurer', 'admin')),
    password_hash TEXT,
    created_at TEXT NOT NULL,
    disabled_at TEXT,
    CONSTRAINT operators_email_key UNIQUE (email)
);

CREATE TABLE operator_tokens (
    id INTEGER PRIMARY KEY,
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    CONSTRAINT operator_tokens_hash_key UNIQUE (token_hash)
);
CREATE INDEX operator_tokens_operator ON operator_tokens (operator_id);
