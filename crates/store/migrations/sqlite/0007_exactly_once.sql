-- Exactly-once money (see the README's "Retries and Idempotency-Key").

-- Keys are now written in the transaction of the effect they name, with
-- its answer, and scoped by account: claims left by the old three-step
-- scheme (no answer yet) mean nothing any more.
DELETE FROM idempotency_keys WHERE status_code IS NULL OR response_body IS NULL;

-- A withdrawal the worker has claimed and may be sending: from here on
-- only the chain's word can fail it. SQLite cannot change a CHECK, so the
-- table is rebuilt (nothing references it).
CREATE TABLE withdrawals_new (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('QUEUED', 'SUBMITTING', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
    ledger_tx_id BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    chain_tx_hash TEXT,
    failure_reason TEXT
);
INSERT INTO withdrawals_new (id, user_id, amount, address, status, ledger_tx_id, created_at, updated_at, chain_tx_hash, failure_reason)
    SELECT id, user_id, amount, address, status, ledger_tx_id, created_at, updated_at, chain_tx_hash, failure_reason FROM withdrawals;
DROP TABLE withdrawals;
ALTER TABLE withdrawals_new RENAME TO withdrawals;
CREATE INDEX withdrawals_user ON withdrawals (user_id, id);
CREATE INDEX withdrawals_user_created ON withdrawals (user_id, created_at);
-- The worker steps each status oldest first.
CREATE INDEX withdrawals_status ON withdrawals (status, id);

-- A raise of a player's stake limits waits out a cooling-off period.
ALTER TABLE users ADD COLUMN pending_max_stake_per_round BIGINT CHECK (pending_max_stake_per_round >= 0);
ALTER TABLE users ADD COLUMN pending_max_stake_per_day BIGINT CHECK (pending_max_stake_per_day >= 0);
ALTER TABLE users ADD COLUMN limits_pending_from TEXT;

-- Old refused notifications are purged on a schedule.
CREATE INDEX deposit_notifications_received ON deposit_notifications (outcome, received_at);
