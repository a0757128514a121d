-- The hot wallet's sending: its nonces and every transaction it signed.

-- The next nonce of each sending address on each chain: the only source
-- of nonces. Taken, with the signed transaction stored and the withdrawal
-- recorded SUBMITTED, in one database transaction, before anything is
-- broadcast.
CREATE TABLE chain_nonces (
    chain_id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    next_nonce BIGINT NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, sender)
);

-- Every signed transaction, stored before its broadcast: a restart
-- broadcasts the stored bytes again and never signs anew. A replacement
-- (same nonce, higher fees) is a row of its own; once one of a nonce's
-- transactions is mined, the others are 'replaced'. Each pays a withdrawal
-- or moves a sweep (sweep_id: the sweeps to come), never both.
CREATE TABLE chain_sends (
    id INTEGER PRIMARY KEY,
    chain_id BIGINT NOT NULL,
    sender TEXT NOT NULL,
    nonce BIGINT NOT NULL CHECK (nonce >= 0),
    withdrawal_id BIGINT REFERENCES withdrawals (id),
    sweep_id BIGINT,
    tx_hash TEXT NOT NULL UNIQUE,
    raw_tx TEXT NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sent', 'mined', 'reverted', 'replaced')),
    signed_at TEXT NOT NULL,
    broadcast_at TEXT,
    mined_block BIGINT,
    mined_block_hash TEXT,
    CHECK ((withdrawal_id IS NULL) <> (sweep_id IS NULL))
);
CREATE INDEX chain_sends_withdrawal ON chain_sends (withdrawal_id);
CREATE INDEX chain_sends_nonce ON chain_sends (chain_id, sender, nonce);
CREATE INDEX chain_sends_mined ON chain_sends (mined_block);
