-- Custody in two places, and sweeps between them.
--
-- The chain account splits in two: account 1 stays the deposit addresses'
-- (deposits arrive there) and account 0 is the hot wallet's (withdrawals
-- leave from it). Id 0 because 1 to 4 are the other system accounts and
-- every later id belongs to users and pools. Minus each one's balance is
-- what that place holds; a sweep moves tokens from the first to the
-- second. Withdrawals confirmed before this migration were paid by the hot
-- wallet too, so their entries move to its account, and both cached
-- balances are recomputed from their entries.
INSERT INTO accounts (id, kind) VALUES (0, 'chain');
UPDATE ledger_entries SET account_id = 0 WHERE account_id = 1
    AND tx_id IN (SELECT id FROM ledger_transactions WHERE kind = 'withdrawal_confirm');
UPDATE accounts SET balance = (SELECT COALESCE(SUM(e.amount), 0) FROM ledger_entries e WHERE e.account_id = accounts.id)
    WHERE id IN (0, 1);

-- One deposit address's tokens moved into the hot wallet by `updown
-- sweep`: a permit the deposit key signed, then the hot wallet's
-- permit and transferFrom transactions (chain_sends with this sweep_id),
-- stored before their broadcast. Booked in the ledger (ledger_tx_id) when
-- the transferFrom has its confirmations.
CREATE TABLE sweeps (
    id INTEGER PRIMARY KEY,
    chain_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    deposit_address TEXT NOT NULL,
    hot_wallet TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    status TEXT NOT NULL CHECK (status IN ('SUBMITTED', 'CONFIRMED', 'FAILED')),
    reason TEXT,
    ledger_tx_id BIGINT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    CHECK ((status = 'CONFIRMED') = (ledger_tx_id IS NOT NULL))
);
-- One sweep at a time per address: a second would sign a permit for
-- tokens the first is moving.
CREATE UNIQUE INDEX sweeps_open_address ON sweeps (deposit_address) WHERE status = 'SUBMITTED';
CREATE INDEX chain_sends_sweep ON chain_sends (sweep_id);
