//! Incremental verify: the ledger's invariants over the transactions after
//! the latest checkpoint, and the checks a full verify runs on the
//! checkpoints themselves ([`updown_domain::checkpoint`]).
//!
//! One pass reads the new transactions and their entries in id order, a
//! window at a time, and checks each one: it balances, its entries have a
//! transaction, a bet or a cancel moved its stake into or out of its pool.
//! A second pass reads every account's cached balance (one index scan of a
//! narrow table): taking away the entries since the checkpoint must give
//! the checkpoint's digest of balances, so every cached balance is checked,
//! touched or not. Pools' balances are not cached: their totals at the
//! checkpoint are stored, and the new entries are added to them. Small
//! tables (rounds, withdrawals, sweeps, the audit log) are checked whole,
//! and a round settled or void since the checkpoint is checked in full
//! (payouts, fee and dust against its pool).
//!
//! Which transactions a checkpoint may vouch for: ids come from a sequence
//! when a transaction is inserted, and they commit in any order, so a
//! snapshot may hold id 12 while 11 is still in flight. On PostgreSQL a
//! short transaction first takes `SHARE` on `ledger_transactions` (it waits
//! for the writers in flight and keeps new ones out for its microseconds)
//! and reads the highest id: every id up to it has committed or never will.
//! (It waits at most 200 ms, five times, for the writers in flight; new
//! ones wait behind it meanwhile: a batch of bets, milliseconds; a
//! settlement chunk, up to a fraction of a second.)
//! The checks then run in a snapshot taken after it; the new checkpoint
//! vouches up to that bound, and what the snapshot holds beyond it is
//! checked too, and again next time. On SQLite one writer at a time takes
//! the next id, so what a snapshot holds is complete.
//!
//! What an incremental verify does not see, and a full one does: an entry
//! at or before the checkpoint changed while its account's cached balance
//! was not (a cached balance changed is seen, through the digest), a bet's
//! status changed with no transaction, a bet's player deleted, and the fee
//! and dust recorded on a round settled before the checkpoint (changed
//! since, behind the service's back).

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, SubsecRound, Utc};
use updown_domain::checkpoint::{self, BalancesDigest, CheckpointFields, GENESIS};

use super::db::{query, Row, Tx};
use super::reports::{
    normalized_hash, payouts_check, sweep_transactions, sweeps_booked, withdrawals_check,
};
use super::SqlStore;
use crate::model::{Check, Checkpoint, IncrementalVerify, VerifyReport};
use crate::{StoreError, StoreResult};

const COLUMNS: &str = "id, through_tx, transactions, entries, balances_digest, unsettled_rounds, \
     last_round, prev_hash, hash, created_at";

/// Tries at the brief lock that bounds a checkpoint (PostgreSQL).
const LOCK_ATTEMPTS: u64 = 5;

/// Transaction ids, or accounts, read per page.
const WINDOW: i64 = 50_000;

fn checkpoint(row: &Row) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        id: row.get("id")?,
        through_tx: row.get("through_tx")?,
        transactions: row.get("transactions")?,
        entries: row.get("entries")?,
        balances_digest: row.get("balances_digest")?,
        unsettled_rounds: row
            .get::<String>("unsettled_rounds")?
            .split(',')
            .filter(|id| !id.is_empty())
            .map(|id| {
                id.parse()
                    .map_err(|_| StoreError::Invalid(format!("checkpoint round id {id:?}")))
            })
            .collect::<StoreResult<_>>()?,
        last_round: row.get("last_round")?,
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
        created_at: row.get("created_at")?,
    })
}

/// The hash `c` should carry after `prev_hash`.
fn expected_hash(prev_hash: &str, c: &Checkpoint) -> String {
    let created_at = c
        .created_at
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let unsettled = unsettled_text(&c.unsettled_rounds);
    checkpoint::hash(
        prev_hash,
        &CheckpointFields {
            id: c.id,
            through_tx: c.through_tx,
            transactions: c.transactions,
            entries: c.entries,
            balances_digest: BalancesDigest::from_stored(c.balances_digest),
            unsettled_rounds: &unsettled,
            last_round: c.last_round,
            created_at: &created_at,
        },
    )
}

/// Round ids as the column keeps them: "3,4".
fn unsettled_text(rounds: &[i64]) -> String {
    rounds
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) async fn head(tx: &mut Tx<'_>) -> StoreResult<Option<Checkpoint>> {
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

/// A round as the checks need it.
struct RoundPools {
    settled: bool,
    up: i64,
    down: i64,
}

async fn rounds(tx: &mut Tx<'_>) -> StoreResult<HashMap<i64, RoundPools>> {
    let rows = query("SELECT id, status, pool_up_account, pool_down_account FROM rounds")
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(|row| {
            let status: String = row.get_at(1)?;
            Ok((
                row.get_at(0)?,
                RoundPools {
                    settled: status == "SETTLED" || status == "VOID",
                    up: row.get_at(2)?,
                    down: row.get_at(3)?,
                },
            ))
        })
        .collect()
}

/// Pools' totals at the checkpoint.
async fn pool_totals(tx: &mut Tx<'_>) -> StoreResult<HashMap<i64, i64>> {
    let rows = query("SELECT account_id, total FROM ledger_checkpoint_pools")
        .fetch_all(tx)
        .await?;
    rows.iter()
        .map(|row| Ok((row.get_at(0)?, row.get_at(1)?)))
        .collect()
}

/// An account's entries after the checkpoint.
#[derive(Clone, Copy, Default)]
struct NewEntries {
    /// Up to the new checkpoint's bound, and how many.
    upto: i64,
    upto_count: i64,
    /// Beyond it (committed while this verify began), and how many.
    later: i64,
    later_count: i64,
}

impl NewEntries {
    fn all(self) -> i64 {
        self.upto.wrapping_add(self.later)
    }
}

/// What the pass over the new transactions found.
#[derive(Default)]
struct TransactionPass {
    accounts: HashMap<i64, NewEntries>,
    transactions: (i64, i64),
    entries: (i64, i64),
    unbalanced: i64,
    orphan_entries: i64,
    /// Bets and cancels whose pool entry is not their stake, or a cancel
    /// of a bet not cancelled.
    stakes_wrong: i64,
    /// Bets and cancels without their bet or round.
    orphan_bets: i64,
    /// Rounds with payouts, refunds, fees or dust among them.
    settled_rounds: BTreeSet<i64>,
    deposits: bool,
    sweeps: bool,
}

/// One new transaction as the pass reads it.
struct NewTransaction {
    id: i64,
    kind: String,
    round: Option<i64>,
    /// The bet's side, stake and status, when it is a bet's transaction and
    /// the bet exists.
    bet: Option<(String, i64, String)>,
}

impl TransactionPass {
    /// The transactions with ids in (`low`, `high`] and their entries.
    async fn window(
        &mut self,
        tx: &mut Tx<'_>,
        (low, high): (i64, i64),
        through: i64,
        rounds: &HashMap<i64, RoundPools>,
    ) -> StoreResult<()> {
        let transactions = query(
            "SELECT t.id, t.kind, t.round_id, b.side, b.stake, b.status \
             FROM ledger_transactions t LEFT JOIN bets b ON b.id = t.bet_id \
             WHERE t.id > $1 AND t.id <= $2 ORDER BY t.id",
        )
        .bind(low)
        .bind(high)
        .fetch_all(&mut *tx)
        .await?;
        let entries = query(
            "SELECT tx_id, account_id, amount FROM ledger_entries \
             WHERE tx_id > $1 AND tx_id <= $2 ORDER BY tx_id, account_id",
        )
        .bind(low)
        .bind(high)
        .fetch_all(&mut *tx)
        .await?;
        let mut entries = entries.iter().peekable();
        for row in &transactions {
            let side: Option<String> = row.get_at(3)?;
            let stake: Option<i64> = row.get_at(4)?;
            let status: Option<String> = row.get_at(5)?;
            let t = NewTransaction {
                id: row.get_at(0)?,
                kind: row.get_at(1)?,
                round: row.get_at(2)?,
                bet: match (side, stake, status) {
                    (Some(side), Some(stake), Some(status)) => Some((side, stake, status)),
                    _ => None,
                },
            };
            // Entries of transactions that do not exist come before it.
            let mut own: Vec<(i64, i64)> = Vec::new();
            while let Some(entry) = entries.peek() {
                let tx_id: i64 = entry.get_at(0)?;
                if tx_id > t.id {
                    break;
                }
                let (account, amount): (i64, i64) = (entry.get_at(1)?, entry.get_at(2)?);
                if tx_id < t.id {
                    self.orphan_entries += 1;
                } else {
                    own.push((account, amount));
                }
                self.tally(tx_id, account, amount, through);
                entries.next();
            }
            self.transaction(&t, &own, through, rounds);
        }
        for entry in entries {
            let (tx_id, account, amount): (i64, i64, i64) =
                (entry.get_at(0)?, entry.get_at(1)?, entry.get_at(2)?);
            self.orphan_entries += 1;
            self.tally(tx_id, account, amount, through);
        }
        Ok(())
    }

    fn tally(&mut self, tx_id: i64, account: i64, amount: i64, through: i64) {
        let sums = self.accounts.entry(account).or_default();
        if tx_id <= through {
            sums.upto = sums.upto.wrapping_add(amount);
            sums.upto_count += 1;
            self.entries.0 += 1;
        } else {
            sums.later = sums.later.wrapping_add(amount);
            sums.later_count += 1;
            self.entries.1 += 1;
        }
    }

    fn transaction(
        &mut self,
        t: &NewTransaction,
        entries: &[(i64, i64)],
        through: i64,
        rounds: &HashMap<i64, RoundPools>,
    ) {
        if t.id <= through {
            self.transactions.0 += 1;
        } else {
            self.transactions.1 += 1;
        }
        let sum = entries
            .iter()
            .map(|(_, amount)| i128::from(*amount))
            .sum::<i128>();
        if entries.len() < 2 || sum != 0 {
            self.unbalanced += 1;
        }
        match t.kind.as_str() {
            "bet" | "bet_cancel" => {
                let round = t.round.and_then(|r| rounds.get(&r));
                let (Some(round), Some((side, stake, status))) = (round, &t.bet) else {
                    self.orphan_bets += 1;
                    return;
                };
                let pool = if side == "UP" { round.up } else { round.down };
                let moved = entries
                    .iter()
                    .find(|(account, _)| *account == pool)
                    .map(|(_, amount)| *amount);
                let (expected, status_ok) = if t.kind == "bet" {
                    (*stake, true)
                } else {
                    (-stake, status == "CANCELLED")
                };
                if moved != Some(expected) || !status_ok {
                    self.stakes_wrong += 1;
                }
            }
            "payout" | "refund" | "fee" | "dust" => {
                if let Some(round) = t.round {
                    self.settled_rounds.insert(round);
                }
            }
            "deposit" => self.deposits = true,
            "sweep" => self.sweeps = true,
            _ => {}
        }
    }
}

/// What the pass over every account found.
#[derive(Default)]
struct AccountPass {
    /// Balances less the entries since the checkpoint.
    at_checkpoint: BalancesDigest,
    /// Balances less the entries beyond the new checkpoint's bound.
    at_bound: BalancesDigest,
    /// Every balance (pools: carried totals plus new entries).
    sum: i128,
    negative: i64,
    /// Pools with a cached balance (always 0).
    pools_cached: i64,
    /// Pools' totals at the new checkpoint, where they moved.
    pools_next: Vec<(i64, i64)>,
    /// Every pool's balance now.
    pools_now: HashMap<i64, i64>,
}

async fn account_pass(
    tx: &mut Tx<'_>,
    pass: &mut TransactionPass,
    pools: &HashMap<i64, i64>,
) -> StoreResult<AccountPass> {
    let mut out = AccountPass::default();
    let mut after = i64::MIN;
    loop {
        let page =
            query("SELECT id, kind, balance FROM accounts WHERE id > $1 ORDER BY id LIMIT $2")
                .bind(after)
                .bind(WINDOW)
                .fetch_all(&mut *tx)
                .await?;
        for row in &page {
            let (id, kind, balance): (i64, String, i64) =
                (row.get_at(0)?, row.get_at(1)?, row.get_at(2)?);
            after = id;
            let new = pass.accounts.remove(&id).unwrap_or_default();
            if kind == "pool" {
                // Not cached: the checkpoint's total, which the digest
                // covers, and the entries since.
                let carried = pools.get(&id).copied().unwrap_or(0);
                out.at_checkpoint.add(id, carried);
                out.at_bound.add(id, carried.wrapping_add(new.upto));
                let now = carried.wrapping_add(new.all());
                out.sum += i128::from(now);
                out.pools_now.insert(id, now);
                if balance != 0 {
                    out.pools_cached += 1;
                }
                if now < 0 {
                    out.negative += 1;
                }
                if new.upto_count > 0 {
                    out.pools_next.push((id, carried.wrapping_add(new.upto)));
                }
                continue;
            }
            out.sum += i128::from(balance);
            if kind != "chain" && balance < 0 {
                out.negative += 1;
            }
            out.at_checkpoint.add(id, balance.wrapping_sub(new.all()));
            out.at_bound.add(id, balance.wrapping_sub(new.later));
        }
        if (page.len() as i64) < WINDOW {
            break;
        }
    }
    // Entries on accounts that do not exist.
    pass.orphan_entries += pass
        .accounts
        .values()
        .map(|n| n.upto_count + n.later_count)
        .sum::<i64>();
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
        // While it waits, new writers queue behind it: wait briefly, and
        // try again a little later rather than hold bets up.
        query("SET LOCAL lock_timeout = '200ms'")
            .execute(&mut tx)
            .await?;
        query("SAVEPOINT bound").execute(&mut tx).await?;
        let mut attempt = 1;
        while let Err(e) = query("LOCK TABLE ledger_transactions IN SHARE MODE")
            .execute(&mut tx)
            .await
        {
            if attempt == LOCK_ATTEMPTS {
                return Err(e);
            }
            query("ROLLBACK TO SAVEPOINT bound")
                .execute(&mut tx)
                .await?;
            tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
            attempt += 1;
        }
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
        let started = std::time::Instant::now();
        let bound = self.settled_bound().await?;
        let bounded = started.elapsed();
        let mut tx = self.snapshot().await?;
        if let Tx::Postgres(_) = tx {
            // Compiling a plan costs PostgreSQL ~250 ms here, more than
            // any of these statements takes to run.
            query("SET LOCAL jit = off").execute(&mut tx).await?;
        }
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
        if let Some(c) = &from {
            report.checks.push(check(
                "the checkpoint is as it was written",
                expected_hash(&c.prev_hash, c) == c.hash,
                format!("checkpoint {} no longer gives its hash", c.id),
            ));
        }

        let rounds = rounds(&mut tx).await?;
        let mut pass = TransactionPass::default();
        // The last window is open-ended: it also reads entries whose
        // transaction id is beyond every transaction.
        let mut low = after;
        loop {
            let last = low.saturating_add(WINDOW) >= visible;
            let high = if last { i64::MAX } else { low + WINDOW };
            pass.window(&mut tx, (low, high), through, &rounds).await?;
            if last {
                break;
            }
            low = high;
        }
        let transactions_read = started.elapsed();
        // Without a checkpoint, totals left by one that is gone count for
        // nothing (and are replaced when this one is written).
        let pools = if from.is_some() {
            pool_totals(&mut tx).await?
        } else {
            HashMap::new()
        };
        let accounts = account_pass(&mut tx, &mut pass, &pools).await?;
        let accounts_read = started.elapsed();

        let (base_transactions, base_entries, base_digest) =
            from.as_ref()
                .map_or((0, 0, BalancesDigest::default()), |c| {
                    (
                        c.transactions,
                        c.entries,
                        BalancesDigest::from_stored(c.balances_digest),
                    )
                });
        report.transactions = base_transactions + pass.transactions.0 + pass.transactions.1;
        report.entries = base_entries + pass.entries.0 + pass.entries.1;
        report.check(
            "every transaction balances",
            pass.unbalanced,
            "transactions do not sum to zero or have fewer than two entries",
        );
        report.check(
            "every entry belongs to a transaction and an account",
            pass.orphan_entries,
            "orphaned entries",
        );
        report.checks.push(check(
            "the sum of all accounts is zero",
            accounts.sum == 0,
            format!("{} micro-USDC off zero", accounts.sum),
        ));
        report.checks.push(check(
            "cached balances equal recomputed ones",
            accounts.at_checkpoint == base_digest && accounts.pools_cached == 0,
            if accounts.pools_cached > 0 {
                format!("{} pools have a cached balance", accounts.pools_cached)
            } else {
                "the cached balances less the entries since the checkpoint do not give its digest: \
                 a balance, or an entry before the checkpoint, was changed (run verify --full)"
                    .to_string()
            },
        ));
        report.check(
            "no balance but the chain's is negative",
            accounts.negative,
            "negative accounts",
        );
        let unemptied = rounds
            .values()
            .filter(|r| {
                r.settled
                    && [r.up, r.down]
                        .iter()
                        .any(|pool| accounts.pools_now.get(pool).copied().unwrap_or(0) != 0)
            })
            .count() as i64;
        report.check(
            "every settled or void round's pool is zero",
            unemptied,
            "pools not emptied",
        );
        report.check(
            "every new bet and cancel moved its stake into or out of its pool",
            pass.stakes_wrong,
            "bets or cancels whose pool entry is not their stake",
        );
        report.check(
            "every new bet and cancel has its bet and round",
            pass.orphan_bets,
            "bets or cancels without their bet or round",
        );
        // Rounds settled or void since the checkpoint (all of them without
        // one), and any with new payouts: their payouts, fee and dust.
        let mut settled_since = std::mem::take(&mut pass.settled_rounds);
        settled_since.extend(rounds.iter().filter_map(|(id, round)| {
            let since = from
                .as_ref()
                .is_none_or(|c| *id > c.last_round || c.unsettled_rounds.binary_search(id).is_ok());
            (round.settled && since).then_some(*id)
        }));
        if !settled_since.is_empty() {
            let ids: Vec<String> = settled_since.iter().map(i64::to_string).collect();
            let (name, sql, what) = payouts_check(&format!("r.id IN ({})", ids.join(", ")));
            let found = count(&mut tx, &sql, after).await?;
            report.check(name, found, what);
        }
        if pass.deposits {
            let normalized = |d: &str| normalized_hash(&format!("{d}.chain_tx_hash"));
            let statements = [
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
            ];
            for (name, sql, what) in statements {
                let found = count(&mut tx, &sql, after).await?;
                report.check(name, found, what);
            }
        }
        let mut small = vec![withdrawals_check(), sweeps_booked()];
        if pass.sweeps {
            small.push(sweep_transactions("$1"));
        }
        for (name, sql, what) in small {
            let found = count(&mut tx, &sql, after).await?;
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
        let checked = started.elapsed();
        tracing::debug!(
            ?bounded,
            ?transactions_read,
            ?accounts_read,
            ?checked,
            "incremental verify: time to each phase"
        );

        let mut outcome = IncrementalVerify {
            checked_transactions: pass.transactions.0 + pass.transactions.1,
            report,
            from,
            written: None,
        };
        // A run that passed writes a checkpoint even with nothing new, so
        // the latest checkpoint's age says when the ledger was last vouched
        // for.
        if !outcome.report.ok() {
            return Ok(outcome);
        }
        let mut next = Checkpoint {
            id: outcome.from.as_ref().map_or(1, |c| c.id + 1),
            through_tx: through,
            transactions: base_transactions + pass.transactions.0,
            entries: base_entries + pass.entries.0,
            balances_digest: accounts.at_bound.stored(),
            unsettled_rounds: {
                let mut open: Vec<i64> = rounds
                    .iter()
                    .filter(|(_, r)| !r.settled)
                    .map(|(id, _)| *id)
                    .collect();
                open.sort_unstable();
                open
            },
            last_round: rounds.keys().copied().max().unwrap_or(0),
            prev_hash: outcome
                .from
                .as_ref()
                .map_or_else(|| GENESIS.to_string(), |c| c.hash.clone()),
            hash: String::new(),
            created_at: at.trunc_subsecs(0),
        };
        next.hash = expected_hash(&next.prev_hash, &next);
        let mut tx = self.write().begin().await?;
        // Another verifier that extended the same checkpoint took the id.
        let inserted = query(&format!(
            "INSERT INTO ledger_checkpoints ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .bind(next.id)
        .bind(next.through_tx)
        .bind(next.transactions)
        .bind(next.entries)
        .bind(next.balances_digest)
        .bind(unsettled_text(&next.unsettled_rounds))
        .bind(next.last_round)
        .bind(next.prev_hash.as_str())
        .bind(next.hash.as_str())
        .bind(next.created_at)
        .execute(&mut tx)
        .await?;
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(outcome);
        }
        if next.id == 1 {
            query("DELETE FROM ledger_checkpoint_pools")
                .execute(&mut tx)
                .await?;
        }
        for (account, total) in &accounts.pools_next {
            query(
                "INSERT INTO ledger_checkpoint_pools (account_id, total) VALUES ($1, $2) \
                 ON CONFLICT (account_id) DO UPDATE SET total = excluded.total",
            )
            .bind(*account)
            .bind(*total)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await?;
        outcome.written = Some(next);
        Ok(outcome)
    }
}

/// The checks a full verify runs on the checkpoints, in its snapshot: the
/// chain of their hashes, and the latest one's counts, pools' totals and
/// digest of balances against the entries it vouches for.
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
    let pools_differing = count(
        &mut *tx,
        "WITH s AS (SELECT e.account_id, CAST(SUM(e.amount) AS BIGINT) AS total FROM ledger_entries e \
                    JOIN accounts a ON a.id = e.account_id AND a.kind = 'pool' \
                    WHERE e.tx_id <= $1 GROUP BY e.account_id) \
         SELECT (SELECT COUNT(*) FROM s LEFT JOIN ledger_checkpoint_pools c ON c.account_id = s.account_id \
                 WHERE c.account_id IS NULL OR c.total <> s.total) \
              + (SELECT COUNT(*) FROM ledger_checkpoint_pools c LEFT JOIN s ON s.account_id = c.account_id \
                 WHERE s.account_id IS NULL AND c.total <> 0)",
        through,
    )
    .await?;
    // The digest of every account's balance at the checkpoint, from its
    // entries, a window of account ids at a time.
    let last = count(&mut *tx, "SELECT COALESCE(MAX(id), 0) FROM accounts", 0).await?;
    let mut digest = BalancesDigest::default();
    let mut low = i64::MIN;
    while low < last {
        let high = if low == i64::MIN {
            WINDOW
        } else {
            low.saturating_add(WINDOW)
        };
        let page = query(
            "SELECT account_id, CAST(SUM(amount) AS BIGINT) FROM ledger_entries \
             WHERE account_id > $1 AND account_id <= $2 AND tx_id <= $3 GROUP BY account_id",
        )
        .bind(low)
        .bind(high)
        .bind(through)
        .fetch_all(&mut *tx)
        .await?;
        for row in &page {
            let (account, total): (i64, i64) = (row.get_at(0)?, row.get_at(1)?);
            digest.add(account, total);
        }
        low = high;
    }
    checks.push(check(
        "the latest checkpoint's totals equal the entries up to it",
        pools_differing == 0 && digest.stored() == latest.balances_digest,
        if pools_differing == 0 {
            format!(
                "the entries up to checkpoint {} no longer give its digest of balances",
                latest.id
            )
        } else {
            format!("{pools_differing} pools' totals differ from their entries")
        },
    ));
    Ok(checks)
}
