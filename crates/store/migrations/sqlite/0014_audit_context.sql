-- Who asked, on each audit row written over HTTP: the credential the
-- operator used (session, token id, break-glass), the client's address
-- and the request id. Older rows have none; the hash chain covers these
-- fields when present, so older rows' hashes are unchanged.
ALTER TABLE audit_log ADD COLUMN credential TEXT;
ALTER TABLE audit_log ADD COLUMN client TEXT;
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
