//! Incremental verify: the ledger's invariants over the transactions after
//! the latest checkpoint, with the checkpoint's account totals carried
//! forward, and the checks a full verify runs on the checkpoints themselves
//! ([`updown_domain::checkpoint`]).
//!
//! Which transactions a checkpoint may vouch for: ids come from a sequence
//! when a transaction is inserted, and they commit in any order, so a
//! snapshot may hold id 12 while 11 is still in flight. On PostgreSQL a
//! short transaction first takes `SHARE` on `ledger_transactions` (it waits
//! for the writers in flight and keeps new ones out for its microseconds)
//! and reads the highest id: every id up to it has committed or never will.
//! The checks then run in a snapshot taken after it; the new checkpoint
//! vouches up to that bound, and what the snapshot holds beyond it is
//! checked too, and checked again next time. On SQLite one writer at a time
//! takes the next id, so what a snapshot holds is complete.
//!
//! What an incremental verify does not see, and a full one does: a change
//! behind the service's back to an entry at or before the checkpoint, to an
//! account the new transactions did not touch (beyond the sum of all cached
//! balances, which it checks), or to a round none of them touched.

use chrono::{DateTime, SubsecRound, Utc};
use updown_domain::checkpoint::{self, CheckpointFields, TotalsDigest, GENESIS};

use super::db::{query, Tx};
use super::reports::{normalized_hash, round_checks, sweeps_check, withdrawals_check, CheckSql};
use super::SqlStore;
use crate::model::{Check, Checkpoint, IncrementalVerify, VerifyReport};
use crate::StoreResult;

const COLUMNS: &str =
    "id, through_tx, transactions, entries, totals_digest, prev_hash, hash, created_at";

/// Totals read per page when a full verify recomputes the digest.
const PAGE: i64 = 10_000;

fn checkpoint(row: &super::db::Row) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        id: row.get("id")?,
        through_tx: row.get("through_tx")?,
        transactions: row.get("transactions")?,
        entries: row.get("entries")?,
        totals_digest: row.get("totals_digest")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
        created_at: row.get("created_at")?,
    })
}

/// The hash `checkpoint` should carry after `prev_hash`.
fn expected_hash(prev_hash: &str, c: &Checkpoint) -> String {
    let created_at = stamp(c.created_at);
    checkpoint::hash(
        prev_hash,
        &CheckpointFields {
            id: c.id,
            through_tx: c.through_tx,
            transactions: c.transactions,
            entries: c.entries,
            totals_digest: TotalsDigest::from_stored(c.totals_digest),
            created_at: &created_at,
        },
    )
}

/// A checkpoint's time as its hash covers it: whole seconds, UTC.
fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn head(tx: &mut Tx<'_>) -> StoreResult<Option<Checkpoint>> {
    let sql = format!("SELECT {COLUMNS} FROM ledger_checkpoints ORDER BY id DESC LIMIT 1");
    query(&sql)
        .fetch_optional(tx)
        .await?
        .map(|row| checkpoint(&row))
        .transpose()
}

/// The single number a statement selects, with `$1` bound to `after` when
/// it uses it.
async fn count(tx: &mut Tx<'_>, sql: &str, after: i64) -> StoreResult<i64> {
    let mut statement = query(sql);
    if sql.contains("$1") {
        statement = statement.bind(after);
    }
    statement.fetch_one(tx).await?.get_at(0)
}

fn check(name: &'static str, passed: bool, detail: String) -> Check {
    Check {
        name,
        passed,
        detail: if passed { "ok".to_string() } else { detail },
    }
}

/// A pool account's balance: the checkpoint's total and the entries after it.
fn carried_pool(account: &str) -> String {
    format!(
        "(COALESCE((SELECT c.total FROM ledger_checkpoint_totals c WHERE c.account_id = {account}), 0) \
         + (SELECT CAST(COALESCE(SUM(pe.amount), 0) AS BIGINT) FROM ledger_entries pe \
         WHERE pe.account_id = {account} AND pe.tx_id > $1))"
    )
}

/// The statements of the incremental checks that are plain counts over
/// what came after the checkpoint (`$1`).
fn incremental_checks() -> Vec<CheckSql> {
    let mut checks = vec![
        (
            "every transaction balances",
            "SELECT COUNT(*) FROM (SELECT t.id FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.tx_id = t.id \
             WHERE t.id > $1 GROUP BY t.id HAVING COUNT(e.tx_id) < 2 OR COALESCE(SUM(e.amount), 0) <> 0) x"
                .to_string(),
            "transactions do not sum to zero or have fewer than two entries",
        ),
        (
            "every entry belongs to a transaction and an account",
            "SELECT COUNT(*) FROM ledger_entries e WHERE e.tx_id > $1 AND \
             (NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.id = e.tx_id) \
             OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id))"
                .to_string(),
            "orphaned entries",
        ),
    ];
    // The rounds the new transactions touched, and those taking bets.
    checks.extend(round_checks(
        &carried_pool,
        "r.status IN ('OPEN', 'LOCKED') OR r.id IN \
         (SELECT t.round_id FROM ledger_transactions t WHERE t.id > $1 AND t.round_id IS NOT NULL)",
    ));
    let normalized = |d: &str| normalized_hash(&format!("{d}.chain_tx_hash"));
    checks.extend([
        (
            "every deposit tx is credited at most once",
            "SELECT COUNT(*) FROM (SELECT reference FROM ledger_transactions WHERE kind = 'deposit' AND reference IN \
             (SELECT reference FROM ledger_transactions WHERE id > $1 AND kind = 'deposit') \
             GROUP BY reference HAVING COUNT(*) > 1) x"
                .to_string(),
            "chain transfers credited more than once",
        ),
        (
            "no transfer is credited twice under two spellings of its hash",
            format!(
                "SELECT COUNT(*) FROM deposits n WHERE n.ledger_tx_id > $1 AND EXISTS \
                 (SELECT 1 FROM deposits o WHERE {} = {} AND o.log_index = n.log_index AND o.id <> n.id)",
                normalized("o"),
                normalized("n")
            ),
            "transfers credited under two spellings",
        ),
        withdrawals_check(),
        sweeps_check("$1"),
        (
            "every bet belongs to a round and a user",
            "SELECT COUNT(*) FROM ledger_transactions t JOIN bets b ON b.id = t.bet_id WHERE t.id > $1 AND \
             (NOT EXISTS (SELECT 1 FROM rounds r WHERE r.id = b.round_id) \
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = b.user_id))"
                .to_string(),
            "orphaned bets",
        ),
    ]);
    checks
}

/// What the accounts touched after the checkpoint add up to.
#[derive(Default)]
struct Touched {
    /// Cached balances that differ from the checkpoint's total plus the
    /// new entries (pools: whose cached balance is not 0).
    mismatched: i64,
    /// Pools whose balance so computed is negative.
    negative_pools: i64,
    /// The new entries on pool accounts.
    pool_entries: i64,
    /// The digest once the totals are carried to the new checkpoint.
    digest: TotalsDigest,
}

/// Reads every account with entries after `after`: its cached balance, its
/// checkpoint total, and its new entries up to `through` and beyond.
async fn touched(
    tx: &mut Tx<'_>,
    after: i64,
    through: i64,
    digest: TotalsDigest,
) -> StoreResult<Touched> {
    let rows = query(
        "SELECT s.account_id, a.kind, a.balance, c.total, s.upto, s.later, s.upto_count \
         FROM (SELECT account_id, \
                 CAST(SUM(CASE WHEN tx_id <= $2 THEN amount ELSE 0 END) AS BIGINT) AS upto, \
                 CAST(SUM(CASE WHEN tx_id > $2 THEN amount ELSE 0 END) AS BIGINT) AS later, \
                 COUNT(CASE WHEN tx_id <= $2 THEN 1 END) AS upto_count \
               FROM ledger_entries WHERE tx_id > $1 GROUP BY account_id) s \
         JOIN accounts a ON a.id = s.account_id \
         LEFT JOIN ledger_checkpoint_totals c ON c.account_id = s.account_id",
    )
    .bind(after)
    .bind(through)
    .fetch_all(tx)
    .await?;
    let mut out = Touched {
        digest,
        ..Touched::default()
    };
    for row in &rows {
        let account: i64 = row.get_at(0)?;
        let kind: String = row.get_at(1)?;
        let balance: i64 = row.get_at(2)?;
        let carried: Option<i64> = row.get_at(3)?;
        let upto: i64 = row.get_at(4)?;
        let later: i64 = row.get_at(5)?;
        let upto_count: i64 = row.get_at(6)?;
        let old = carried.unwrap_or(0);
        let now = old.checked_add(upto).and_then(|n| n.checked_add(later));
        if kind == "pool" {
            out.pool_entries = out.pool_entries.wrapping_add(upto).wrapping_add(later);
            if balance != 0 {
                out.mismatched += 1;
            }
            if now.is_none_or(|n| n < 0) {
                out.negative_pools += 1;
            }
        } else if now != Some(balance) {
            out.mismatched += 1;
        }
        if upto_count > 0 {
            if let Some(old) = carried {
                out.digest.remove(account, old);
            }
            out.digest.add(account, old.wrapping_add(upto));
        }
    }
    Ok(out)
}

impl SqlStore {
    /// PostgreSQL: the highest transaction id up to which every id has
    /// committed or never will (see the module's doc). `None` on SQLite.
    async fn settled_bound(&self) -> StoreResult<Option<i64>> {
        let mut tx = match self.write().begin().await? {
            tx @ Tx::Postgres(_) => tx,
            Tx::Sqlite(tx) => {
                tx.rollback().await?;
                return Ok(None);
            }
        };
        query("SET LOCAL lock_timeout = '5s'")
            .execute(&mut tx)
            .await?;
        query("LOCK TABLE ledger_transactions IN SHARE MODE")
            .execute(&mut tx)
            .await?;
        let bound = count(
            &mut tx,
            "SELECT COALESCE(MAX(id), 0) FROM ledger_transactions",
            0,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(bound))
    }

    pub(super) async fn verify_from_checkpoint(
        &self,
        at: DateTime<Utc>,
    ) -> StoreResult<IncrementalVerify> {
        let bound = self.settled_bound().await?;
        let mut tx = self.snapshot().await?;
        let from = head(&mut tx).await?;
        let after = from.as_ref().map_or(0, |c| c.through_tx);
        let visible = count(
            &mut tx,
            "SELECT COALESCE(MAX(id), 0) FROM ledger_transactions",
            0,
        )
        .await?;
        let through = bound.unwrap_or(visible).min(visible).max(after);
        let mut report = VerifyReport::default();

        let (prev_hash, digest, base_transactions, base_entries) = match &from {
            Some(c) => (
                c.hash.clone(),
                TotalsDigest::from_stored(c.totals_digest),
                c.transactions,
                c.entries,
            ),
            None => (GENESIS.to_string(), TotalsDigest::default(), 0, 0),
        };
        if let Some(c) = &from {
            let expected = expected_hash(&c.prev_hash, c);
            report.checks.push(check(
                "the checkpoint is as it was written",
                expected == c.hash,
                format!("checkpoint {} no longer gives its hash", c.id),
            ));
        }

        let counts = query(
            "SELECT (SELECT COUNT(*) FROM ledger_transactions WHERE id > $1 AND id <= $2), \
                    (SELECT COUNT(*) FROM ledger_transactions WHERE id > $2), \
                    (SELECT COUNT(*) FROM ledger_entries WHERE tx_id > $1 AND tx_id <= $2), \
                    (SELECT COUNT(*) FROM ledger_entries WHERE tx_id > $2)",
        )
        .bind(after)
        .bind(through)
        .fetch_one(&mut tx)
        .await?;
        let (new_transactions, later_transactions, new_entries, later_entries): (
            i64,
            i64,
            i64,
            i64,
        ) = (
            counts.get_at(0)?,
            counts.get_at(1)?,
            counts.get_at(2)?,
            counts.get_at(3)?,
        );
        report.transactions = base_transactions + new_transactions + later_transactions;
        report.entries = base_entries + new_entries + later_entries;

        let statements = incremental_checks();
        let (first, rest) = statements.split_at(2);
        for (name, sql, what) in first {
            let found = count(&mut tx, sql, after).await?;
            report.check(name, found, what);
        }

        // Balances: each touched account against its carried total, and
        // all cached balances together against zero.
        let touched = touched(&mut tx, after, through, digest).await?;
        report.check(
            "cached balances equal recomputed ones",
            touched.mismatched,
            "accounts whose cached balance differs from their checkpoint and entries",
        );
        let sums = query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN a.kind <> 'pool' THEN a.balance ELSE 0 END), 0) AS BIGINT), \
                    COUNT(CASE WHEN a.kind NOT IN ('chain', 'pool') AND a.balance < 0 THEN 1 END), \
                    CAST(COALESCE(SUM(CASE WHEN a.kind = 'pool' THEN \
                      (SELECT c.total FROM ledger_checkpoint_totals c WHERE c.account_id = a.id) ELSE 0 END), 0) AS BIGINT) \
             FROM accounts a",
        )
        .fetch_one(&mut tx)
        .await?;
        let (cached, negative, pools_carried): (i64, i64, i64) =
            (sums.get_at(0)?, sums.get_at(1)?, sums.get_at(2)?);
        let off = i128::from(cached) + i128::from(pools_carried) + i128::from(touched.pool_entries);
        report.checks.push(check(
            "the sum of all accounts is zero",
            off == 0,
            format!("{off} micro-USDC off zero"),
        ));
        report.check(
            "no balance but the chain's is negative",
            negative + touched.negative_pools,
            "negative accounts",
        );

        for (name, sql, what) in rest {
            let found = count(&mut tx, sql, after).await?;
            report.check(name, found, what);
        }
        let chain = super::audit::verify(&mut tx).await?;
        report.checks.push(check(
            "the audit log's hash chain is unbroken",
            chain.broken.is_none(),
            chain
                .broken
                .as_ref()
                .map(|(id, why)| format!("row {id} {why}"))
                .unwrap_or_default(),
        ));
        tx.rollback().await?;

        let mut outcome = IncrementalVerify {
            checked_transactions: new_transactions + later_transactions,
            report,
            from,
            written: None,
        };
        if !outcome.report.ok() || through == after {
            return Ok(outcome);
        }
        let mut next = Checkpoint {
            id: outcome.from.as_ref().map_or(1, |c| c.id + 1),
            through_tx: through,
            transactions: base_transactions + new_transactions,
            entries: base_entries + new_entries,
            totals_digest: touched.digest.stored(),
            prev_hash,
            hash: String::new(),
            created_at: at.trunc_subsecs(0),
        };
        next.hash = expected_hash(&next.prev_hash, &next);
        let mut tx = self.write().begin().await?;
        // Another verifier that extended the same checkpoint took the id.
        let inserted = query(&format!(
            "INSERT INTO ledger_checkpoints ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(next.id)
        .bind(next.through_tx)
        .bind(next.transactions)
        .bind(next.entries)
        .bind(next.totals_digest)
        .bind(next.prev_hash.as_str())
        .bind(next.hash.as_str())
        .bind(next.created_at)
        .execute(&mut tx)
        .await?;
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(outcome);
        }
        // Entries up to `through` never change, so these sums are the ones
        // the snapshot checked.
        query(
            "INSERT INTO ledger_checkpoint_totals (account_id, total) \
             SELECT account_id, CAST(SUM(amount) AS BIGINT) FROM ledger_entries \
             WHERE tx_id > $1 AND tx_id <= $2 GROUP BY account_id \
             ON CONFLICT (account_id) DO UPDATE SET total = ledger_checkpoint_totals.total + excluded.total",
        )
        .bind(after)
        .bind(through)
        .execute(&mut tx)
        .await?;
        tx.commit().await?;
        outcome.written = Some(next);
        Ok(outcome)
    }
}

/// The checks a full verify runs on the checkpoints, in its snapshot: the
/// chain of their hashes, and the latest one's counts, totals and digest
/// against the entries it vouches for.
pub(super) async fn verify_checkpoints(tx: &mut Tx<'_>) -> StoreResult<Vec<Check>> {
    let sql = format!("SELECT {COLUMNS} FROM ledger_checkpoints ORDER BY id");
    let rows = query(&sql).fetch_all(&mut *tx).await?;
    let mut prev_hash = GENESIS.to_string();
    let mut broken = None;
    let mut latest = None;
    for (index, row) in rows.iter().enumerate() {
        let c = checkpoint(row)?;
        if broken.is_none() && (c.id != index as i64 + 1 || c.prev_hash != prev_hash) {
            broken = Some(format!(
                "checkpoint {} does not follow the one before it",
                c.id
            ));
        }
        if broken.is_none() && expected_hash(&c.prev_hash, &c) != c.hash {
            broken = Some(format!("checkpoint {} no longer gives its hash", c.id));
        }
        prev_hash = c.hash.clone();
        latest = Some(c);
    }
    let mut checks = vec![check(
        "the checkpoints are as they were written",
        broken.is_none(),
        broken.unwrap_or_default(),
    )];
    let Some(latest) = latest else {
        return Ok(checks);
    };
    let through = latest.through_tx;
    let counts = query(
        "SELECT (SELECT COUNT(*) FROM ledger_transactions WHERE id <= $1), \
                (SELECT COUNT(*) FROM ledger_entries WHERE tx_id <= $1)",
    )
    .bind(through)
    .fetch_one(&mut *tx)
    .await?;
    let (transactions, entries): (i64, i64) = (counts.get_at(0)?, counts.get_at(1)?);
    checks.push(check(
        "the latest checkpoint counts what it vouches for",
        transactions == latest.transactions && entries == latest.entries,
        format!(
            "checkpoint {} says {} transactions and {} entries up to {through}; the ledger holds {transactions} and {entries}",
            latest.id, latest.transactions, latest.entries
        ),
    ));
    let differing = count(
        &mut *tx,
        "WITH s AS (SELECT account_id, CAST(SUM(amount) AS BIGINT) AS total FROM ledger_entries \
                    WHERE tx_id <= $1 GROUP BY account_id) \
         SELECT (SELECT COUNT(*) FROM s LEFT JOIN ledger_checkpoint_totals c ON c.account_id = s.account_id \
                 WHERE c.account_id IS NULL OR c.total <> s.total) \
              + (SELECT COUNT(*) FROM ledger_checkpoint_totals c LEFT JOIN s ON s.account_id = c.account_id \
                 WHERE s.account_id IS NULL)",
        through,
    )
    .await?;
    let mut digest = TotalsDigest::default();
    let mut after = i64::MIN;
    loop {
        let page = query(
            "SELECT account_id, total FROM ledger_checkpoint_totals WHERE account_id > $1 \
             ORDER BY account_id LIMIT $2",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut *tx)
        .await?;
        for row in &page {
            let (account, total): (i64, i64) = (row.get_at(0)?, row.get_at(1)?);
            digest.add(account, total);
            after = account;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    checks.push(check(
        "the latest checkpoint's totals equal the entries up to it",
        differing == 0 && digest.stored() == latest.totals_digest,
        if differing == 0 {
            format!(
                "the stored totals no longer give checkpoint {}'s digest",
                latest.id
            )
        } else {
            format!("{differing} accounts' totals differ from their entries")
        },
    ));
    Ok(checks)
}
