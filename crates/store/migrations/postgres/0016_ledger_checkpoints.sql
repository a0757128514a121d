-- Incremental verify (updown_store's sql/checkpoint.rs). A checkpoint
-- vouches for every ledger transaction up to through_tx: each was checked.
-- balances_digest sums a 64-bit term of every account's balance at that
-- point, so the next verify checks every cached balance with one sum: its
-- balance now less the entries since must give the digest. Pools' balances
-- are not cached; ledger_checkpoint_pools holds their totals up to the
-- checkpoint. The next verify checks only the transactions after it.
-- Checkpoints are numbered 1, 2, 3...: a new one takes the last one's id
-- + 1, so two verifiers cannot both extend the same one. Each row's hash
-- covers its fields and the previous row's hash. unsettled_rounds (ids,
-- "3,4") and last_round say which rounds were not settled yet: one settled
-- since is checked whole (payouts, fee and dust against its pool). The
-- pools' totals are in the digest too. ledger_verify_runs keeps when each
-- kind of periodic verify last finished, for every instance to see.
CREATE TABLE ledger_checkpoints (
    id BIGINT PRIMARY KEY CHECK (id >= 1),
    through_tx BIGINT NOT NULL,
    transactions BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    balances_digest BIGINT NOT NULL,
    unsettled_rounds TEXT NOT NULL,
    last_round BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE ledger_checkpoint_pools (
    account_id BIGINT PRIMARY KEY,
    total BIGINT NOT NULL
);

CREATE TABLE ledger_verify_runs (
    scope TEXT PRIMARY KEY CHECK (scope IN ('incremental', 'full')),
    finished_at TIMESTAMPTZ NOT NULL,
    ok BOOLEAN NOT NULL
);

-- The incremental checks find the deposits credited since a checkpoint,
-- and a transfer's other spellings, by index.
CREATE INDEX deposits_ledger_tx ON deposits (ledger_tx_id);
CREATE INDEX deposits_normalized ON deposits (
    (lower(CASE WHEN length(chain_tx_hash) = 66 AND lower(substr(chain_tx_hash, 1, 2)) = '0x'
      THEN substr(chain_tx_hash, 3) ELSE chain_tx_hash END)), log_index);
