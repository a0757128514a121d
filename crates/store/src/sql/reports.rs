//! Reports for operators: total value locked, round counts, the ledger's
//! invariants (`verify`), and the audit log of manual actions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::db::{query, Tx};
use super::ledger::pool_balance;
use super::replica::on_replica;
use super::SqlStore;
use crate::model::{AuditChain, AuditEntry, Checkpoint, IncrementalVerify, Tvl, VerifyReport};
use crate::{ReportStore, StoreResult};

/// The single number a statement selects.
async fn number(tx: &mut Tx<'_>, sql: &str) -> StoreResult<i64> {
    query(sql).fetch_one(tx).await?.get_at(0)
}

async fn sum_balances(tx: &mut Tx<'_>, kind: &str) -> StoreResult<i64> {
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM accounts WHERE kind = '{kind}'"
    );
    number(tx, &sql).await
}

/// A check: its name, the statement counting what breaks it (zero when it
/// holds), and what that count is of.
pub(super) type CheckSql = (&'static str, String, &'static str);

/// A deposit's transfer hash however it was written (case, with or without
/// `0x`), as the `deposits_normalized` index holds it.
pub(super) fn normalized_hash(column: &str) -> String {
    format!(
        "lower(CASE WHEN length({column}) = 66 AND lower(substr({column}, 1, 2)) = '0x' \
         THEN substr({column}, 3) ELSE {column} END)"
    )
}

/// A round's active stakes.
const ACTIVE_STAKES: &str =
    "(SELECT COALESCE(SUM(b.stake), 0) FROM bets b WHERE b.round_id = r.id AND b.status = 'ACTIVE')";

/// The checks on rounds, every round.
fn round_checks() -> Vec<CheckSql> {
    let pool = pool_balance;
    let pools = |r: &str| {
        format!(
            "{} + {}",
            pool(&format!("{r}.pool_up_account")),
            pool(&format!("{r}.pool_down_account"))
        )
    };
    vec![
        (
            "every settled or void round's pool is zero",
            format!(
                "SELECT COUNT(*) FROM rounds r WHERE r.status IN ('SETTLED', 'VOID') AND ({} <> 0 OR {} <> 0)",
                pool("r.pool_up_account"),
                pool("r.pool_down_account")
            ),
            "pools not emptied",
        ),
        (
            "open pools equal their active stakes",
            format!(
                "SELECT COUNT(*) FROM rounds r WHERE r.status IN ('OPEN', 'LOCKED') AND r.outcome IS NULL \
                 AND ({}) <> {ACTIVE_STAKES}",
                pools("r")
            ),
            "rounds whose pools differ from their bets",
        ),
        payouts_check("TRUE"),
    ]
}

/// Payouts + fee + dust = the pool, for each settled or void round in
/// `scope` (a condition on `r`).
pub(super) fn payouts_check(scope: &str) -> CheckSql {
    let round_entries = |kinds: &str| {
        format!(
            "COALESCE((SELECT SUM(e.amount) FROM ledger_transactions t JOIN ledger_entries e ON e.tx_id = t.id \
             WHERE t.round_id = r.id AND t.kind IN ({kinds}) AND e.amount > 0), 0)"
        )
    };
    (
        "payouts + fee + dust = each settled round's total pool",
        format!(
            "SELECT COUNT(*) FROM rounds r WHERE r.status IN ('SETTLED', 'VOID') AND ({scope}) AND \
             ({ACTIVE_STAKES} <> {} OR COALESCE(r.fee, 0) <> {} OR COALESCE(r.dust, 0) <> {})",
            round_entries("'payout', 'refund', 'fee', 'dust'"),
            round_entries("'fee'"),
            round_entries("'dust'")
        ),
        "rounds paid out differently from their pool",
    )
}

/// The check on pending withdrawals (a small table: checked whole by both
/// kinds of verify).
pub(super) fn withdrawals_check() -> CheckSql {
    (
        "pending withdrawals hold exactly the queued and submitted amounts",
        "SELECT ABS((SELECT balance FROM accounts WHERE id = 4 AND kind = 'withdrawals_pending') - \
         (SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM withdrawals WHERE status IN ('QUEUED', 'SUBMITTING', 'SUBMITTED')))".to_string(),
        "micro-USDC off",
    )
}

/// The checks on sweeps: every confirmed one (a small table) is booked
/// once, for its amount. (Counts, not `EXISTS`: PostgreSQL may turn an
/// `EXISTS` into a hash of every entry.)
pub(super) fn sweeps_booked() -> CheckSql {
    (
        "every confirmed sweep is booked once, for its amount",
        "SELECT COUNT(*) FROM sweeps s WHERE (s.status = 'CONFIRMED') <> ( \
         (SELECT COUNT(*) FROM ledger_entries e WHERE e.tx_id = s.ledger_tx_id AND e.account_id = 1 AND e.amount = s.amount) = 1 \
         AND (SELECT COUNT(*) FROM ledger_entries e WHERE e.tx_id = s.ledger_tx_id AND e.account_id = 0 AND e.amount = -s.amount) = 1 \
         AND (SELECT COUNT(*) FROM ledger_entries e WHERE e.tx_id = s.ledger_tx_id) = 2)"
            .to_string(),
        "sweeps booked wrongly",
    )
}

/// Every sweep transaction after `after` belongs to a confirmed sweep.
pub(super) fn sweep_transactions(after: &str) -> CheckSql {
    (
        "every sweep transaction is a confirmed sweep's",
        format!(
            "SELECT COUNT(*) FROM ledger_transactions t WHERE t.id > {after} AND t.kind = 'sweep' AND NOT EXISTS \
             (SELECT 1 FROM sweeps s WHERE s.ledger_tx_id = t.id AND s.status = 'CONFIRMED')"
        ),
        "sweep transactions without a confirmed sweep",
    )
}

/// The statements `verify` runs: what each counts must be zero.
fn checks() -> Vec<CheckSql> {
    let mut checks = vec![
        (
            "every transaction balances",
            "SELECT COUNT(*) FROM (SELECT t.id FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.tx_id = t.id \
             GROUP BY t.id HAVING COUNT(e.tx_id) < 2 OR COALESCE(SUM(e.amount), 0) <> 0) x".to_string(),
            "transactions do not sum to zero or have fewer than two entries",
        ),
        (
            "every entry belongs to a transaction and an account",
            "SELECT COUNT(*) FROM ledger_entries e WHERE NOT EXISTS (SELECT 1 FROM ledger_transactions t WHERE t.id = e.tx_id) \
             OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id)".to_string(),
            "orphaned entries",
        ),
        (
            "the sum of all accounts is zero",
            format!(
                "SELECT ABS((SELECT CAST(COALESCE(SUM(CASE WHEN kind = 'pool' THEN {} ELSE balance END), 0) AS BIGINT) FROM accounts a)) \
                 + ABS((SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries))",
                pool_balance("a.id")
            ),
            "micro-USDC off zero",
        ),
        (
            "cached balances equal recomputed ones",
            "SELECT COUNT(*) FROM accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM ledger_entries GROUP BY account_id) s \
             ON s.account_id = a.id WHERE a.balance <> CASE WHEN a.kind = 'pool' THEN 0 ELSE COALESCE(s.total, 0) END".to_string(),
            "accounts whose cached balance differs from their entries",
        ),
        (
            "no balance but the chain's is negative",
            format!(
                "SELECT COUNT(*) FROM accounts a WHERE (kind NOT IN ('chain', 'pool') AND balance < 0) OR (kind = 'pool' AND {} < 0)",
                pool_balance("a.id")
            ),
            "negative accounts",
        ),
    ];
    checks.extend(round_checks());
    checks.extend([
        (
            "every deposit tx is credited at most once",
            "SELECT COUNT(*) FROM (SELECT reference FROM ledger_transactions WHERE kind = 'deposit' \
             GROUP BY reference HAVING COUNT(*) > 1) x".to_string(),
            "chain transfers credited more than once",
        ),
        (
            // However its hash was written (case, with or without 0x).
            "no transfer is credited twice under two spellings of its hash",
            format!(
                "SELECT COUNT(*) FROM (SELECT {} AS hash, log_index FROM deposits \
                 GROUP BY 1, 2 HAVING COUNT(*) > 1) x",
                normalized_hash("chain_tx_hash")
            ),
            "transfers credited under two spellings",
        ),
        withdrawals_check(),
        sweeps_booked(),
        sweep_transactions("0"),
        (
            "every bet belongs to a round and a user",
            "SELECT COUNT(*) FROM bets b WHERE NOT EXISTS (SELECT 1 FROM rounds r WHERE r.id = b.round_id) \
             OR NOT EXISTS (SELECT 1 FROM users u WHERE u.id = b.user_id)".to_string(),
            "orphaned bets",
        ),
    ]);
    checks
}

#[async_trait]
impl ReportStore for SqlStore {
    async fn tvl(&self) -> StoreResult<Tvl> {
        let mut tx = self.snapshot().await?;
        let user_balances = sum_balances(&mut tx, "user").await?;
        let sql = format!(
            "SELECT CAST(COALESCE(SUM({} + {}), 0) AS BIGINT) FROM rounds r WHERE r.status IN ('OPEN', 'LOCKED')",
            pool_balance("r.pool_up_account"),
            pool_balance("r.pool_down_account")
        );
        let round_pools = number(&mut tx, &sql).await?;
        let withdrawals_pending = sum_balances(&mut tx, "withdrawals_pending").await?;
        let tvl = Tvl {
            total: user_balances + round_pools + withdrawals_pending,
            user_balances,
            round_pools,
            withdrawals_pending,
            house_fees: sum_balances(&mut tx, "house_fees").await?,
            house_rounding: sum_balances(&mut tx, "house_rounding").await?,
            custody: -sum_balances(&mut tx, "chain").await?,
        };
        tx.commit().await?;
        Ok(tvl)
    }

    async fn round_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows =
            query("SELECT status, COUNT(*) AS n FROM rounds GROUP BY status ORDER BY status")
                .fetch_all(self.read())
                .await?;
        rows.iter()
            .map(|row| Ok((row.get("status")?, row.get("n")?)))
            .collect()
    }

    async fn verify(&self) -> StoreResult<VerifyReport> {
        // One snapshot for every check, so concurrent writers cannot make a
        // consistent ledger look inconsistent.
        let mut tx = self.snapshot().await?;
        let mut report = VerifyReport {
            transactions: number(&mut tx, "SELECT COUNT(*) FROM ledger_transactions").await?,
            entries: number(&mut tx, "SELECT COUNT(*) FROM ledger_entries").await?,
            ..VerifyReport::default()
        };
        for (name, sql, what) in checks() {
            let found = number(&mut tx, &sql).await?;
            report.check(name, found, what);
        }
        let chain = super::audit::verify(&mut tx).await?;
        report.checks.push(crate::model::Check {
            name: "the audit log's hash chain is unbroken",
            passed: chain.broken.is_none(),
            detail: match &chain.broken {
                None => "ok".to_string(),
                Some((id, why)) => format!("row {id} {why}"),
            },
        });
        report
            .checks
            .extend(super::checkpoint::verify_checkpoints(&mut tx).await?);
        tx.rollback().await?;
        Ok(report)
    }

    async fn verify_incremental(&self, at: DateTime<Utc>) -> StoreResult<IncrementalVerify> {
        self.verify_from_checkpoint(at).await
    }

    async fn record_verify_run(&self, scope: &str, at: DateTime<Utc>, ok: bool) -> StoreResult<()> {
        query(
            "INSERT INTO ledger_verify_runs (scope, finished_at, ok) VALUES ($1, $2, $3) \
             ON CONFLICT (scope) DO UPDATE SET finished_at = excluded.finished_at, ok = excluded.ok",
        )
        .bind(scope)
        .bind(at)
        .bind(ok)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn last_verify_run(&self, scope: &str) -> StoreResult<Option<DateTime<Utc>>> {
        query("SELECT finished_at FROM ledger_verify_runs WHERE scope = $1")
            .bind(scope)
            .fetch_optional(self.read())
            .await?
            .map(|row| row.get_at(0))
            .transpose()
    }

    async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let mut tx = self.read().begin().await?;
        let head = super::checkpoint::head(&mut tx).await?;
        tx.commit().await?;
        Ok(head)
    }

    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut tx = self.write().begin().await?;
        super::audit::append(&mut tx, entry).await?;
        tx.commit().await
    }

    async fn audit_chain(&self) -> StoreResult<AuditChain> {
        let mut tx = self.snapshot().await?;
        let chain = super::audit::verify(&mut tx).await?;
        tx.commit().await?;
        Ok(chain)
    }

    async fn audit_log(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {} FROM audit_log WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
            super::audit::AUDIT_COLUMNS
        );
        on_replica!(self, |pool| query(&sql)
            .bind(before)
            .bind(limit)
            .fetch_records(pool))
    }
}
