-- Two people for large outflows and results by hand. A withdrawal over
-- WITHDRAWAL_APPROVAL_OVER waits (still QUEUED, its funds held) until two
-- treasurers approve it; a manual settlement waits for a second operator.
-- One pending approval per subject; one vote per operator and approval.
ALTER TABLE withdrawals ADD COLUMN awaiting_approval BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('withdrawal', 'settlement')),
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT,
    requested_by TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    needed INTEGER NOT NULL CHECK (needed >= 1),
    state TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected')),
    decided_at TEXT
);
CREATE UNIQUE INDEX approvals_pending ON approvals (kind, subject) WHERE state = 'pending';
CREATE INDEX approvals_state ON approvals (state, id);

CREATE TABLE approval_votes (
    approval_id BIGINT NOT NULL REFERENCES approvals (id),
    operator_id BIGINT NOT NULL REFERENCES operators (id),
    approve BOOLEAN NOT NULL,
    reason TEXT,
    at TEXT NOT NULL,
    PRIMARY KEY (approval_id, operator_id)
);
