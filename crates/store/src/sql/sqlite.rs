//! SQLite's own parts: the embedded default, so a fresh clone runs with no
//! server.
//!
//! One write connection (every write transaction queues for it, none can
//! fail with SQLITE_BUSY) and a small pool of read-only connections that
//! see WAL snapshots. `synchronous=FULL`: an acknowledged commit survives
//! power loss. A bet batch and a settlement chunk are written with a few
//! multi-row statements inside one transaction; the single writer lets the
//! batch assign its ids itself.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration as StdDuration;

use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool};
use updown_domain::ids::{RoundId, UserId};
use updown_domain::ledger::{Account, Posting};
use updown_domain::round::Side;

use super::batch::{accepted, answers, decide_batch, kept_answers, Answers, Chunk};
use super::db::{query, Pool, Tx};
use super::keys::{keep_answer, key_unused};
use super::ledger::{account_row, chunk_bets, invalid, player_state, pool_accounts};
use super::rounds::round_in;
use super::{Pools, SqlStore};
use crate::model::{BetRequest, Round};
use crate::{StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub(super) async fn open(url: &str, max_readers: u32) -> anyhow::Result<SqlStore> {
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
    Ok(SqlStore {
        pools: Pools::Sqlite { writer, readers },
        replica: None,
    })
}

/// The last migration this build knows.
pub(super) fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(super) async fn migrate(writer: &SqlitePool) -> StoreResult<()> {
    MIGRATOR
        .run(writer)
        .await
        .map_err(|e| StoreError::Other(anyhow::Error::new(e).context("running SQLite migrations")))
}

pub(super) async fn place_bets(
    writer: &SqlitePool,
    round_id: RoundId,
    requests: &[BetRequest],
) -> StoreResult<Answers> {
    let mut tx = Pool::Sqlite(writer).begin().await?;
    let round = round_in(&mut tx, round_id, "").await?;
    let mut players = HashMap::new();
    let mut account_of = HashMap::new();
    for request in requests {
        if players.contains_key(&request.user) {
            continue;
        }
        let row = query(
            "SELECT u.account_id, a.balance, u.max_stake_per_round, u.max_stake_per_day, u.excluded_until, \
             u.pending_max_stake_per_round, u.pending_max_stake_per_day, u.limits_pending_from \
             FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1",
        )
        .bind(request.user.0)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = row else { continue };
        let state =
            player_state(&mut tx, &row, request.user, round_id, request.received_at).await?;
        players.insert(request.user, state);
        account_of.insert(request.user, row.get::<i64>("account_id")?);
    }
    let mut used = HashSet::new();
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
    let accepted = accepted(requests, &decisions);
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

pub(super) async fn pay_chunk(tx: &mut Tx<'_>, chunk: Chunk<'_>) -> StoreResult<u64> {
    let (round, plan, first, last) = (chunk.round, chunk.plan, chunk.first, chunk.last);
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
    let rows = query(&sql)
        .bind(round.id.0)
        .bind(first)
        .bind(last)
        .fetch_all(&mut *tx)
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let (bets, account_of) = chunk_bets(&rows)?;
    if let Some(posting) = Posting::settlement_chunk(round.id, plan, &bets).map_err(invalid)? {
        let at = round
            .settlement
            .as_ref()
            .map(|s| s.started_at)
            .unwrap_or_default();
        let tx_id: i64 = query(
            "INSERT INTO ledger_transactions (kind, round_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(posting.kind().as_str())
        .bind(round.id.0)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .get("id")?;
        let pools = pool_accounts(tx, round.id).await?;
        let mut entries = Vec::with_capacity(posting.entries().len());
        let mut moves = BTreeMap::new();
        write_entries(
            &posting,
            tx_id,
            pools,
            &account_of,
            &mut entries,
            &mut moves,
        )?;
        insert_entries(tx, &entries).await?;
        move_balances(tx, &moves.into_iter().collect::<Vec<_>>()).await?;
    }
    Ok(rows.len() as u64)
}

/// A posting's entries as (transaction, account, amount) rows, and the
/// cached balances they move (pools are not cached).
fn write_entries(
    posting: &Posting,
    tx_id: i64,
    pools: (i64, i64),
    account_of: &HashMap<UserId, i64>,
    entries: &mut Vec<(i64, i64, i64)>,
    moves: &mut BTreeMap<i64, i64>,
) -> StoreResult<()> {
    for entry in posting.entries() {
        let account = account_row(entry.account, pools, account_of)?;
        entries.push((tx_id, account, entry.amount));
        if !matches!(entry.account, Account::Pool(..)) {
            *moves.entry(account).or_insert(0) += entry.amount;
        }
    }
    Ok(())
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>;

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
    bind: impl for<'q> Fn(SqliteQuery<'q>, &'q R) -> SqliteQuery<'q>,
) -> StoreResult<()> {
    let per_row = row_placeholder.matches('?').count().max(1);
    for part in rows.chunks(PARAMETERS_PER_STATEMENT / per_row) {
        let sql = format!(
            "INSERT INTO {table_and_columns} VALUES {}",
            vec![row_placeholder; part.len()].join(", ")
        );
        let mut statement = sqlx::query(&sql);
        for row in part {
            statement = bind(statement, row);
        }
        statement.execute(&mut **tx.sqlite()).await?;
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
        let mut statement = sqlx::query(&sql);
        for (account, delta) in part {
            statement = statement.bind(*account).bind(*delta);
        }
        statement.execute(&mut **tx.sqlite()).await?;
    }
    Ok(())
}

/// Writes accepted bets with their transactions, entries and balance
/// moves. Ids are assigned here: the single write connection holds the
/// transaction, so nobody else can take them.
async fn write_bets(
    tx: &mut Tx<'_>,
    round: &Round,
    accepted: &[&BetRequest],
    account_of: &HashMap<UserId, i64>,
) -> StoreResult<Vec<i64>> {
    let next = |table: &'static str| format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}");
    let first_bet: i64 = query(&next("bets")).fetch_one(&mut *tx).await?.get_at(0)?;
    let first_tx: i64 = query(&next("ledger_transactions"))
        .fetch_one(&mut *tx)
        .await?
        .get_at(0)?;
    let pools = pool_accounts(tx, round.id).await?;
    let mut bets = Vec::with_capacity(accepted.len());
    let mut entries = Vec::with_capacity(accepted.len() * 2);
    let mut moves = BTreeMap::new();
    for (offset, request) in accepted.iter().enumerate() {
        let (bet_id, tx_id) = (first_bet + offset as i64, first_tx + offset as i64);
        // The posting the domain defines for a bet, checked to balance.
        let posting =
            Posting::bet(request.user, round.id, request.side, request.stake).map_err(invalid)?;
        write_entries(&posting, tx_id, pools, account_of, &mut entries, &mut moves)?;
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
