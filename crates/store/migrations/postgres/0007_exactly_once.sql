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

-- One form for chain transaction hashes, as the service now writes them:
-- a 32-byte hash as 0x and lower-case hex, a readable reference in lower
-- case. A transfer credited before under two spellings is left as it is
-- (`verify` reports it); the ledger's references follow their deposits.
WITH normal AS (
    SELECT id, log_index, CASE
        WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x'
             AND substr(chain_tx_hash, 3) ~ '^[0-9a-fA-F]+$' THEN '0x' || lower(substr(chain_tx_hash, 3))
        WHEN length(chain_tx_hash) = 64 AND chain_tx_hash ~ '^[0-9a-fA-F]+$' THEN '0x' || lower(chain_tx_hash)
        ELSE lower(chain_tx_hash) END AS hash
    FROM deposits),
alone AS (SELECT hash, log_index FROM normal GROUP BY hash, log_index HAVING COUNT(*) = 1)
UPDATE deposits d SET chain_tx_hash = n.hash
FROM normal n JOIN alone a ON a.hash = n.hash AND a.log_index = n.log_index
WHERE d.id = n.id AND d.chain_tx_hash <> n.hash;
UPDATE ledger_transactions t SET reference = d.chain_tx_hash || ':' || d.log_index
FROM deposits d WHERE t.id = d.ledger_tx_id AND t.kind = 'deposit' AND t.reference <> d.chain_tx_hash || ':' || d.log_index;
UPDATE withdrawals SET chain_tx_hash = CASE
    WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x'
         AND substr(chain_tx_hash, 3) ~ '^[0-9a-fA-F]+$' THEN '0x' || lower(substr(chain_tx_hash, 3))
    WHEN length(chain_tx_hash) = 64 AND chain_tx_hash ~ '^[0-9a-fA-F]+$' THEN '0x' || lower(chain_tx_hash)
    ELSE lower(chain_tx_hash) END
WHERE chain_tx_hash IS NOT NULL;
