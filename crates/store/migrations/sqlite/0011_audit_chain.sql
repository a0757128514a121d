-- The audit log as a hash chain (updown_domain::audit): each row carries
-- the previous row's hash and its own, and audit_head the last of them,
-- written in the same transaction as the row; a row edited, deleted or
-- moved behind the service's back breaks the chain (`updown audit verify`).
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;

-- One row: the chain's last id and hash. Rows up to legacy_through were
-- written before the chain; the first entry recorded after this
-- migration chains them, in id order, in its own transaction.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_id BIGINT NOT NULL,
    hash TEXT NOT NULL,
    legacy_through BIGINT NOT NULL
);
INSERT INTO audit_head (id, last_id, hash, legacy_through)
    SELECT 1, 0, '0000000000000000000000000000000000000000000000000000000000000000', COALESCE(MAX(id), 0) FROM audit_log;
