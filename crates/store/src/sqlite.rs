//! The SQLite store: the embedded default, so a fresh clone runs with no
//! server.
//!
//! SQLite has one writer at a time, so the store keeps exactly one write
//! connection (every write transaction queues for it and none can fail with
//! SQLITE_BUSY) and a small pool of read-only connections that see WAL
//! snapshots. `synchronous=FULL`: an acknowledged commit survives power
//! loss. Bet batches and settlement chunks run statement by statement
//! inside one transaction (sqlx caches each prepared statement on the
//! connection), which is cheap in-process.

use std::str::FromStr;
use std::time::Duration as StdDuration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

mod shared {
    impl_store!(super::SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
}

use shared::*;
use sqlx::Row;
use updown_domain::ids::{RoundId, UserId};
use updown_domain::ledger::{Account, Posting};
use updown_domain::payout::PayoutPlan;
use updown_domain::round::Side;

use crate::common::{answers, decide_batch, kept_answers, system_account_id};
use crate::model::{Bet, BetRequest, Round};
use crate::{Backend, BetRefusalReason, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    writer: SqlitePool,
    readers: SqlitePool,
}

impl SqliteStore {
    pub(crate) const BACKEND: Backend = Backend::Sqlite;
    pub(crate) const LOCK: &'static str = "";
    pub(crate) const LOCK_SHARED: &'static str = "";

    /// Opens (creating if needed) the database file a `sqlite:` URL names,
    /// and its folder.
    pub async fn connect(url: &str, max_readers: u32) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(StdDuration::from_secs(10))
            // Checkpoint every ~40 MB of WAL rather than 4 MB: each checkpoint
            // flushes the database file, and a large settlement or batch commit
            // would otherwise pay for one almost every time.
            .pragma("wal_autocheckpoint", "10000");
        if let Some(folder) = options.get_filename().parent() {
            if !folder.as_os_str().is_empty() {
                std::fs::create_dir_all(folder)?;
            }
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect_with(options.clone())
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(max_readers.clamp(1, 16))
            .acquire_timeout(StdDuration::from_secs(30))
            .connect_with(options.read_only(true).create_if_missing(false))
            .await?;
        Ok(SqliteStore { writer, readers })
    }

    pub(crate) fn read(&self) -> &SqlitePool {
        &self.readers
    }

    pub(crate) fn write(&self) -> &SqlitePool {
        &self.writer
    }

    pub(crate) async fn migrate_impl(&self) -> StoreResult<()> {
        MIGRATOR.run(&self.writer).await.map_err(|e| {
            StoreError::Other(anyhow::Error::new(e).context("running SQLite migrations"))
        })
    }

    pub(crate) async fn scheduler_lease_impl(&self) -> StoreResult<Option<Box<dyn crate::Lease>>> {
        // One process owns a SQLite file's writes; nothing to contend for.
        Ok(Some(Box::new(crate::SoleLease)))
    }

    pub(crate) async fn lock_users(&self, _tx: &mut Tx<'_>) -> StoreResult<()> {
        // The single write connection already serialises writers.
        Ok(())
    }

    pub(crate) async fn snapshot(&self, _tx: &mut Tx<'_>) -> StoreResult<()> {
        // A read transaction in WAL mode is a snapshot from its first read.
        Ok(())
    }

    pub(crate) async fn place_bets_impl(
        &self,
        round_id: RoundId,
        requests: &[BetRequest],
    ) -> StoreResult<Vec<Result<Bet, BetRefusalReason>>> {
        let mut tx = self.writer.begin().await?;
        let round = round_in(&mut tx, round_id, "").await?;
        let mut players = std::collections::HashMap::new();
        let mut account_of = std::collections::HashMap::new();
        for request in requests {
            if players.contains_key(&request.user) {
                continue;
            }
            let row = sqlx::query(
                "SELECT u.account_id, a.balance, u.max_stake_per_round, u.max_stake_per_day, u.excluded_until, \
             u.pending_max_stake_per_round, u.pending_max_stake_per_day, u.limits_pending_from \
                 FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1",
            )
            .bind(request.user.0)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let state =
                player_state(&mut tx, &row, request.user, round_id, request.received_at).await?;
            players.insert(request.user, state);
            account_of.insert(request.user, row.try_get::<i64, _>("account_id")?);
        }
        let mut used = std::collections::HashSet::new();
        for keyed in requests.iter().filter_map(|r| r.key.as_ref()) {
            match key_unused(&mut tx, &keyed.key).await {
                Ok(()) => {}
                Err(StoreError::KeyUsed) => {
                    used.insert((keyed.key.scope.clone(), keyed.key.key.clone()));
                }
                Err(e) => return Err(e),
            }
        }
        let decisions = decide_batch(&round.clock(), requests, &mut players, &used);
        let accepted: Vec<&BetRequest> = requests
            .iter()
            .zip(&decisions)
            .filter(|(_, d)| d.is_ok())
            .map(|(r, _)| r)
            .collect();
        if accepted.is_empty() {
            tx.rollback().await?;
            return Ok(answers(round_id, requests, decisions, Vec::new()));
        }
        let ids = write_bets(&mut tx, &round, &accepted, &account_of).await?;
        let answers = answers(round_id, requests, decisions, ids);
        for (key, answer) in kept_answers(requests, &answers) {
            keep_answer(&mut tx, &key, &answer).await?;
        }
        tx.commit().await?;
        Ok(answers)
    }

    pub(crate) async fn pay_chunk(
        &self,
        tx: &mut Tx<'_>,
        round: &Round,
        plan: &PayoutPlan,
        first: i64,
        last: i64,
    ) -> StoreResult<u64> {
        let side_filter = match (plan.pays(Side::Up), plan.pays(Side::Down)) {
            (true, true) => "",
            (true, false) => " AND b.side = 'UP'",
            (false, true) => " AND b.side = 'DOWN'",
            (false, false) => return Ok(0),
        };
        let sql = format!(
            "SELECT b.id, b.user_id, b.side, b.stake, u.account_id FROM bets b JOIN users u ON u.id = b.user_id \
             WHERE b.round_id = $1 AND b.status = 'ACTIVE' AND b.id BETWEEN $2 AND $3{side_filter} ORDER BY b.id"
        );
        let rows = sqlx::query(&sql)
            .bind(round.id.0)
            .bind(first)
            .bind(last)
            .fetch_all(&mut **tx)
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let (bets, account_of) = chunk_bets(&rows)?;
        if let Some(posting) = Posting::settlement_chunk(round.id, plan, &bets)
            .map_err(|e| StoreError::Invalid(e.to_string()))?
        {
            let at = round
                .settlement
                .as_ref()
                .map(|s| s.started_at)
                .unwrap_or_default();
            let tx_id: i64 = sqlx::query("INSERT INTO ledger_transactions (kind, round_id, created_at) VALUES ($1, $2, $3) RETURNING id")
                .bind(posting.kind().as_str())
                .bind(round.id.0)
                .bind(at)
                .fetch_one(&mut **tx)
                .await?
                .try_get("id")?;
            let pools = pool_accounts(tx, round.id).await?;
            let mut entries = Vec::with_capacity(posting.entries().len());
            let mut moves = std::collections::BTreeMap::new();
            for entry in posting.entries() {
                let account = account_row(entry.account, pools, &account_of);
                entries.push((tx_id, account, entry.amount));
                if !matches!(entry.account, Account::Pool(..)) {
                    *moves.entry(account).or_insert(0i64) += entry.amount;
                }
            }
            insert_entries(tx, &entries).await?;
            move_balances(tx, &moves.into_iter().collect::<Vec<_>>()).await?;
        }
        Ok(rows.len() as u64)
    }
}

async fn pool_accounts(tx: &mut Tx<'_>, round: RoundId) -> StoreResult<(i64, i64)> {
    let row = sqlx::query("SELECT pool_up_account, pool_down_account FROM rounds WHERE id = $1")
        .bind(round.0)
        .fetch_one(&mut **tx)
        .await?;
    Ok((
        row.try_get("pool_up_account")?,
        row.try_get("pool_down_account")?,
    ))
}

/// Parameters per multi-row statement, under SQLite's limit of 32,766.
/// Placeholders are `?`: with `$n`, sqlx's binding cost grew with the
/// square of the parameter count (240 ms instead of 55 ms per 10,000
/// entries). Few large statements beat many small ones because sqlx hands
/// each SQLite statement to a worker thread.
const PARAMETERS_PER_STATEMENT: usize = 6_000;

/// Runs `INSERT INTO {table} ({columns}) VALUES (...), (...)` over `rows`,
/// as many rows per statement as the parameter budget allows.
async fn insert_rows<R>(
    tx: &mut Tx<'_>,
    table_and_columns: &str,
    row_placeholder: &str,
    rows: &[R],
    bind: impl for<'q> Fn(
        sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
        &'q R,
    )
        -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> StoreResult<()> {
    let per_row = row_placeholder.matches('?').count().max(1);
    for part in rows.chunks(PARAMETERS_PER_STATEMENT / per_row) {
        let sql = format!(
            "INSERT INTO {table_and_columns} VALUES {}",
            vec![row_placeholder; part.len()].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for row in part {
            query = bind(query, row);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Ledger entries as (transaction, account, amount) rows.
async fn insert_entries(tx: &mut Tx<'_>, entries: &[(i64, i64, i64)]) -> StoreResult<()> {
    insert_rows(
        tx,
        "ledger_entries (tx_id, account_id, amount)",
        "(?, ?, ?)",
        entries,
        |q, e| q.bind(e.0).bind(e.1).bind(e.2),
    )
    .await
}

/// Moves cached balances by (account, delta), one row per account (SQLite
/// applies one source row per target in UPDATE ... FROM). The caller
/// decided the movements are allowed; the CHECK constraint still guards.
async fn move_balances(tx: &mut Tx<'_>, moves: &[(i64, i64)]) -> StoreResult<()> {
    for part in moves.chunks(PARAMETERS_PER_STATEMENT / 2) {
        let sql = format!(
            "UPDATE accounts SET balance = balance + moves.delta \
             FROM (SELECT column1 AS id, column2 AS delta FROM (VALUES {})) AS moves WHERE accounts.id = moves.id",
            vec!["(?, ?)"; part.len()].join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (account, delta) in part {
            query = query.bind(*account).bind(*delta);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

fn account_row(
    account: Account,
    (pool_up, pool_down): (i64, i64),
    account_of: &std::collections::HashMap<UserId, i64>,
) -> i64 {
    match account {
        Account::User(user) => account_of[&user],
        Account::Pool(_, Side::Up) => pool_up,
        Account::Pool(_, Side::Down) => pool_down,
        other => system_account_id(other).expect("system account"),
    }
}

/// Writes accepted bets with their transactions, entries and balance
/// moves. Ids are assigned here: the single write connection holds the
/// transaction, so nobody else can take them.
async fn write_bets(
    tx: &mut Tx<'_>,
    round: &Round,
    accepted: &[&BetRequest],
    account_of: &std::collections::HashMap<UserId, i64>,
) -> StoreResult<Vec<i64>> {
    let next = |table: &'static str| format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}");
    let first_bet: i64 = sqlx::query(&next("bets"))
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let first_tx: i64 = sqlx::query(&next("ledger_transactions"))
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let pools = pool_accounts(tx, round.id).await?;
    let mut bets = Vec::with_capacity(accepted.len());
    let mut entries = Vec::with_capacity(accepted.len() * 2);
    let mut moves = std::collections::BTreeMap::new();
    for (offset, request) in accepted.iter().enumerate() {
        let (bet_id, tx_id) = (first_bet + offset as i64, first_tx + offset as i64);
        // The posting the domain defines for a bet, checked to balance.
        let posting = Posting::bet(request.user, round.id, request.side, request.stake)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        for entry in posting.entries() {
            let account = account_row(entry.account, pools, account_of);
            entries.push((tx_id, account, entry.amount));
            if !matches!(entry.account, Account::Pool(..)) {
                *moves.entry(account).or_insert(0i64) += entry.amount;
            }
        }
        bets.push((bet_id, tx_id, *request));
    }
    insert_rows(
        tx,
        "bets (id, round_id, user_id, side, stake, status, placed_at)",
        "(?, ?, ?, ?, ?, 'ACTIVE', ?)",
        &bets,
        |q, (bet_id, _, r)| {
            q.bind(*bet_id)
                .bind(round.id.0)
                .bind(r.user.0)
                .bind(r.side.as_str())
                .bind(r.stake.get())
                .bind(r.received_at)
        },
    )
    .await?;
    insert_rows(
        tx,
        "ledger_transactions (id, kind, round_id, user_id, bet_id, created_at)",
        "(?, 'bet', ?, ?, ?, ?)",
        &bets,
        |q, (bet_id, tx_id, r)| {
            q.bind(*tx_id)
                .bind(round.id.0)
                .bind(r.user.0)
                .bind(*bet_id)
                .bind(r.received_at)
        },
    )
    .await?;
    insert_entries(tx, &entries).await?;
    move_balances(tx, &moves.into_iter().collect::<Vec<_>>()).await?;
    Ok(bets.iter().map(|(bet_id, _, _)| *bet_id).collect())
}
