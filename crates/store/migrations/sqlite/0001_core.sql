-- updown core schema (SQLite). Money is BIGINT micro-USDC; prices are
-- exact decimals kept as text; instants are RFC 3339 text in UTC.

CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('chain', 'house_fees', 'house_rounding', 'withdrawals_pending', 'user', 'pool')),
    balance BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT accounts_non_negative CHECK (kind = 'chain' OR balance >= 0)
);
-- System accounts have fixed ids, known to the code.
INSERT INTO accounts (id, kind) VALUES (1, 'chain'), (2, 'house_fees'), (3, 'house_rounding'), (4, 'withdrawals_pending');

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    created_at TEXT NOT NULL,
    max_stake_per_round BIGINT CHECK (max_stake_per_round >= 0),
    max_stake_per_day BIGINT CHECK (max_stake_per_day >= 0),
    excluded_until TEXT,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_sequence_key UNIQUE (sequence)
);
CREATE INDEX users_account ON users (account_id);

CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    market TEXT NOT NULL,
    code TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('OPEN', 'LOCKED', 'SETTLED', 'VOID')),
    previous_session TEXT NOT NULL,
    open_at TEXT NOT NULL,
    lock_at TEXT NOT NULL,
    close_at TEXT NOT NULL,
    settle_at TEXT NOT NULL,
    void_at TEXT NOT NULL,
    fee_bps INTEGER NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
    tie_policy TEXT NOT NULL,
    terms_digest TEXT NOT NULL,
    pool_up_account BIGINT NOT NULL REFERENCES accounts (id),
    pool_down_account BIGINT NOT NULL REFERENCES accounts (id),
    opened_at TEXT NOT NULL,
    locked_at TEXT,
    outcome TEXT CHECK (outcome IN ('UP', 'DOWN', 'VOID')),
    plan_pool_up BIGINT,
    plan_pool_down BIGINT,
    fee BIGINT,
    distributable BIGINT,
    settle_cursor BIGINT,
    settle_started_at TEXT,
    settled_at TEXT,
    dust BIGINT,
    settled_by TEXT,
    settle_reason TEXT,
    close_date TEXT, close_price TEXT, close_source TEXT, close_fetched_at TEXT,
    prev_close_date TEXT, prev_close_price TEXT, prev_close_source TEXT, prev_close_fetched_at TEXT,
    CONSTRAINT rounds_market_code_key UNIQUE (market, code)
);

-- Bets and ledger entries are the hot tables: no foreign keys (each would
-- cost a lookup and a key-share lock per row); `verify` checks for orphans.
CREATE TABLE bets (
    id INTEGER PRIMARY KEY,
    round_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('UP', 'DOWN')),
    stake BIGINT NOT NULL CHECK (stake > 0),
    status TEXT NOT NULL CHECK (status IN ('ACTIVE', 'CANCELLED')),
    placed_at TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE INDEX bets_round ON bets (round_id, id);
CREATE INDEX bets_user ON bets (user_id, id);

CREATE TABLE ledger_transactions (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    round_id BIGINT,
    user_id BIGINT,
    bet_id BIGINT,
    reference TEXT,
    created_at TEXT NOT NULL
);
-- Partial indexes: a bet's transaction (most rows) needs neither.
CREATE INDEX ledger_transactions_round ON ledger_transactions (round_id, kind) WHERE kind <> 'bet';
CREATE INDEX ledger_transactions_reference ON ledger_transactions (kind, reference) WHERE reference IS NOT NULL;

-- One entry per account per transaction (postings merge an account's
-- amounts), so (tx_id, account_id) is the key: no surrogate id to index.
CREATE TABLE ledger_entries (
    tx_id BIGINT NOT NULL,
    account_id BIGINT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount <> 0),
    CONSTRAINT ledger_entries_pkey PRIMARY KEY (tx_id, account_id)
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, tx_id);

CREATE TABLE deposits (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    chain_tx_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    ledger_tx_id BIGINT NOT NULL,
    credited_at TEXT NOT NULL,
    CONSTRAINT deposits_transfer_key UNIQUE (chain_tx_hash, log_index)
);

CREATE TABLE withdrawals (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    amount BIGINT NOT NULL CHECK (amount > 0),
    address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('QUEUED', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
    ledger_tx_id BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX withdrawals_user ON withdrawals (user_id, id);

CREATE TABLE prices (
    market TEXT NOT NULL,
    session_date TEXT NOT NULL,
    close TEXT NOT NULL,
    source TEXT NOT NULL,
    fetched_at TEXT NOT NULL,
    CONSTRAINT prices_market_date_key PRIMARY KEY (market, session_date)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    reason TEXT
);
