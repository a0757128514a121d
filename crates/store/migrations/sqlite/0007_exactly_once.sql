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

-- One form for chain transaction hashes, as the service now writes them:
-- a 32-byte hash as 0x and lower-case hex, a readable reference in lower
-- case. A transfer credited before under two spellings is left as it is
-- (`verify` reports it); the ledger's references follow their deposits.
CREATE TEMP TABLE normal_hashes AS
    SELECT id, log_index, CASE
        WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x'
             AND substr(chain_tx_hash, 3) NOT GLOB '*[^0-9a-fA-F]*' THEN '0x' || lower(substr(chain_tx_hash, 3))
        WHEN length(chain_tx_hash) = 64 AND chain_tx_hash NOT GLOB '*[^0-9a-fA-F]*' THEN '0x' || lower(chain_tx_hash)
        ELSE lower(chain_tx_hash) END AS hash
    FROM deposits;
UPDATE deposits SET chain_tx_hash = (SELECT hash FROM normal_hashes n WHERE n.id = deposits.id)
WHERE id IN (
    SELECT n.id FROM normal_hashes n
    JOIN (SELECT hash, log_index FROM normal_hashes GROUP BY hash, log_index HAVING COUNT(*) = 1) a
      ON a.hash = n.hash AND a.log_index = n.log_index
    WHERE n.hash <> (SELECT chain_tx_hash FROM deposits d WHERE d.id = n.id));
DROP TABLE normal_hashes;
UPDATE ledger_transactions SET reference = (
    SELECT d.chain_tx_hash || ':' || d.log_index FROM deposits d WHERE d.ledger_tx_id = ledger_transactions.id)
WHERE kind = 'deposit' AND id IN (SELECT ledger_tx_id FROM deposits);
UPDATE withdrawals SET chain_tx_hash = CASE
    WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x'
         AND substr(chain_tx_hash, 3) NOT GLOB '*[^0-9a-fA-F]*' THEN '0x' || lower(substr(chain_tx_hash, 3))
    WHEN length(chain_tx_hash) = 64 AND chain_tx_hash NOT GLOB '*[^0-9a-fA-F]*' THEN '0x' || lower(chain_tx_hash)
    ELSE lower(chain_tx_hash) END
WHERE chain_tx_hash IS NOT NULL;
