-- The dispute window (SETTLE_DISPUTE_MIN) is part of a round's terms from
-- now on, fixed when it opens: the minutes its payouts wait once the
-- oracle's result is published (0: paid at once). NULL for rounds opened
-- before: the setting when their result is published applies.
ALTER TABLE rounds ADD COLUMN dispute_min INTEGER CHECK (dispute_min >= 0);

-- Periodic tasks that one process runs for all (the hourly revision
-- check, which spends the oracle's paid requests): when a run was last
-- claimed, by whichever process.
CREATE TABLE task_runs (
    task TEXT PRIMARY KEY,
    last_run_at TIMESTAMPTZ NOT NULL
);
