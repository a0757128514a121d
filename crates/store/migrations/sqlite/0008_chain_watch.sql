-- The chain watcher: deposits read from the chain itself.

-- Where the watcher is: the first block it has not scanned yet, for one
-- chain and token. Moved only in the transaction that credits the
-- transfers of the blocks below it, and only from where the mover read it.
CREATE TABLE chain_cursor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    chain_id BIGINT NOT NULL,
    token TEXT NOT NULL,
    next_block BIGINT NOT NULL CHECK (next_block >= 0),
    updated_at TEXT NOT NULL
);

-- The hashes of the last scanned blocks (a window of at least
-- MIN_CONFIRMATIONS): a block credited from whose hash the node no longer
-- gives is a reorg deeper than the confirmations.
CREATE TABLE chain_blocks (
    number BIGINT PRIMARY KEY,
    hash TEXT NOT NULL,
    parent_hash TEXT NOT NULL
);

-- The block each watcher credit came from.
CREATE TABLE chain_deposits (
    deposit_id BIGINT PRIMARY KEY REFERENCES deposits (id),
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL
);
CREATE INDEX chain_deposits_block ON chain_deposits (block_number);

-- Transfers to users' addresses seen in blocks without enough
-- confirmations yet: a view of the chain's tip, rewritten each poll.
CREATE TABLE pending_deposits (
    tx_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    block_number BIGINT NOT NULL,
    confirmations BIGINT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (tx_hash, log_index)
);
CREATE INDEX pending_deposits_user ON pending_deposits (user_id);

-- Reorgs deeper than the confirmations: what was credited from the blocks
-- that changed, and the operator's acknowledgement. While one is not
-- acknowledged, nothing more is credited from the chain.
CREATE TABLE chain_reorgs (
    id INTEGER PRIMARY KEY,
    detected_at TEXT NOT NULL,
    fork_block BIGINT NOT NULL,
    depth BIGINT NOT NULL,
    old_hash TEXT NOT NULL,
    new_hash TEXT NOT NULL,
    affected TEXT NOT NULL,
    acked_at TEXT,
    acked_by TEXT,
    ack_reason TEXT
);

-- Each custody reconciliation: the chain's balances at one block against
-- the ledger's custody account.
CREATE TABLE custody_checks (
    id INTEGER PRIMARY KEY,
    checked_at TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    addresses BIGINT NOT NULL,
    chain_total TEXT NOT NULL,
    ledger_total BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('equal', 'surplus', 'shortfall'))
);
