-- Incremental verify (updown_store::checkpoint). A checkpoint vouches for
-- every ledger transaction up to through_tx: each of them was checked, and
-- ledger_checkpoint_totals holds every account's sum of entries up to it.
-- The next verify checks only the transactions after it and carries those
-- totals forward. Checkpoints are numbered 1, 2, 3...: a new one takes the
-- last one's id + 1, so two verifiers cannot both extend the same one.
-- Each row's hash covers its fields and the previous row's hash;
-- totals_digest is the wrapping sum of a 64-bit hash of every
-- (account_id, total) row, so `verify --full` can check the totals table
-- against the checkpoint that vouches for it.
CREATE TABLE ledger_checkpoints (
    id BIGINT PRIMARY KEY CHECK (id >= 1),
    through_tx BIGINT NOT NULL,
    transactions BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    totals_digest BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE ledger_checkpoint_totals (
    account_id BIGINT PRIMARY KEY,
    total BIGINT NOT NULL
);

-- The incremental checks find the deposits credited since a checkpoint,
-- and a transfer's other spellings, by index.
CREATE INDEX deposits_ledger_tx ON deposits (ledger_tx_id);
CREATE INDEX deposits_normalized ON deposits (
    (lower(CASE WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x'
      THEN substr(chain_tx_hash, 3) ELSE chain_tx_hash END)), log_index);
