-- Every notification the deposit provider's webhook sent, whatever became
-- of it: credited, a duplicate of a credited transfer, pending (too few
-- confirmations yet) or refused (bad signature, stale, wrong chain or
-- token, unknown address), with why. Fields the sender got wrong may be
-- missing. Credits themselves are in deposits and the ledger.
CREATE TABLE deposit_notifications (
    id INTEGER PRIMARY KEY,
    received_at TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('credited', 'duplicate', 'pending', 'refused')),
    reason TEXT,
    chain TEXT,
    token TEXT,
    tx_hash TEXT,
    log_index BIGINT,
    to_address TEXT,
    amount BIGINT,
    confirmations BIGINT,
    user_id BIGINT REFERENCES users (id)
);
CREATE INDEX deposit_notifications_transfer ON deposit_notifications (tx_hash, log_index);

-- The per-user daily withdrawal limit sums a user's recent withdrawals.
CREATE INDEX withdrawals_user_created ON withdrawals (user_id, created_at);
