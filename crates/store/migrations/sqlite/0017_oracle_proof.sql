-- The proof behind a recorded close: every source asked, what it answered
-- (a close, or why it gave none) and when, and whether it was among those
-- that agreed. Written in the transaction that records the close; shown
-- with each round that settled on it. position keeps the sources' order.
CREATE TABLE price_sources (
    market TEXT NOT NULL,
    session_date TEXT NOT NULL,
    position INTEGER NOT NULL,
    source TEXT NOT NULL,
    close TEXT,
    error TEXT,
    answered_at TEXT NOT NULL,
    agreed BOOLEAN NOT NULL,
    PRIMARY KEY (market, session_date, position),
    FOREIGN KEY (market, session_date) REFERENCES prices (market, session_date)
);

-- What the oracle's sources did that operators must look at: they
-- disagreed beyond ORACLE_MAX_SPREAD_BPS (the round waits), or one later
-- gave another close for a date already recorded (a revision: never
-- re-settled automatically). One row per distinct finding, however often
-- it is seen again.
CREATE TABLE oracle_incidents (
    id INTEGER PRIMARY KEY,
    market TEXT NOT NULL,
    session_date TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('disagreement', 'revision')),
    detail TEXT NOT NULL,
    at TEXT NOT NULL,
    CONSTRAINT oracle_incidents_once UNIQUE (market, session_date, kind, detail)
);

-- The oracle and its rule, part of a round's terms from now on (NULL for
-- rounds opened before: their digest covers the v1 terms without it).
ALTER TABLE rounds ADD COLUMN oracle_terms TEXT;

-- With SETTLE_DISPUTE_MIN, the oracle's result is published first and paid
-- only from payouts_at (fixed when published, whatever the setting later);
-- an operator may void meanwhile.
ALTER TABLE rounds ADD COLUMN published_outcome TEXT;
ALTER TABLE rounds ADD COLUMN published_at TEXT;
ALTER TABLE rounds ADD COLUMN payouts_at TEXT;
