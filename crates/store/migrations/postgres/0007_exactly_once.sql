-- Exactly-once money (see the README's "Retries and Idempotency-Key").

-- Keys are now written in the transaction of the effect they name, with
-- its answer, and scoped by account: claims left by the old three-step
-- scheme (no answer yet) mean nothing any more.
DELETE FROM idempotency_keys WHERE status_code IS NULL OR response_body IS NULL;

-- A withdrawal the worker has claimed and may be sending: from here on
-- only the chain's word can fail it.
ALTER TABLE withdrawals DROP CONSTRAINT withdrawals_status_check;
ALTER TABLE withdrawals ADD CONSTRAINT withdrawals_status_check
    CHECK (status IN ('QUEUED', 'SUBMITTING', 'SUBMITTED', 'CONFIRMED', 'FAILED'));
-- The worker steps each status oldest first.
CREATE INDEX withdrawals_status ON withdrawals (status, id);

-- A raise of a player's stake limits waits out a cooling-off period.
ALTER TABLE users ADD COLUMN pending_max_stake_per_round BIGINT CHECK (pending_max_stake_per_round >= 0);
ALTER TABLE users ADD COLUMN pending_max_stake_per_day BIGINT CHECK (pending_max_stake_per_day >= 0);
ALTER TABLE users ADD COLUMN limits_pending_from TIMESTAMPTZ;

-- Old refused notifications are purged on a schedule.
CREATE INDEX deposit_notifications_received ON deposit_notifications (outcome, received_at);
