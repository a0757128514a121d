//! PostgreSQL's own parts: production, shared by several service instances.
//!
//! Bets arrive in batches (group commit): one transaction locks the round
//! for key share and the batch's balance rows for update (in id order, so
//! two batches never deadlock), decides every bet, and writes them all with
//! one statement of `unnest` arrays. Settlement pays a chunk of bets with a
//! few set-based statements. The scheduler's lease is a session advisory
//! lock on a connection of its own.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Row as _};
use updown_domain::ids::{RoundId, UserId};
use updown_domain::ledger::Posting;
use updown_domain::round::Side;

use super::batch::{accepted, answers, decide_batch, kept_answers, Answers, Chunk};
use super::db::{Begun, PgTx, Row, Tx};
use super::ledger::{account_row, chunk_bets, invalid, player_state, pool_accounts};
use super::rounds::ROUND_COLUMNS;
use super::{Pools, SqlStore};
use crate::model::{BetRequest, KeptAnswer, RequestKey, Round};
use crate::{Lease, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How often a batch is retried when PostgreSQL picks it as a deadlock or
/// serialisation victim.
const MAX_BATCH_ATTEMPTS: u32 = 4;

pub(super) async fn open(
    options: PgConnectOptions,
    max_connections: u32,
) -> anyhow::Result<SqlStore> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        // No ping before every checkout: it costs a round trip per
        // transaction; a dead connection fails the statement instead.
        .test_before_acquire(false)
        .acquire_timeout(StdDuration::from_secs(10))
        .connect_with(options)
        .await?;
    Ok(SqlStore {
        pools: Pools::Postgres(pool),
        replica: None,
    })
}

/// The last migration this build knows.
pub(super) fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

pub(super) async fn migrate(pool: &PgPool) -> StoreResult<()> {
    MIGRATOR.run(pool).await.map_err(|e| {
        StoreError::Other(anyhow::Error::new(e).context("running PostgreSQL migrations"))
    })
}

/// The scheduler's advisory lock: this key and the schema's hash, so
/// deployments (and tests) in different schemas do not contend.
const SCHEDULER_LOCK: i32 = 0x7570_646f; // "updo"

pub(super) async fn scheduler_lease(pool: &PgPool) -> StoreResult<Option<Box<dyn Lease>>> {
    let mut connection = sqlx::PgConnection::connect_with(&pool.connect_options()).await?;
    let granted: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
            .bind(SCHEDULER_LOCK)
            .fetch_one(&mut connection)
            .await?;
    if !granted {
        connection.close().await?;
        return Ok(None);
    }
    Ok(Some(Box::new(AdvisoryLease { connection })))
}

/// The scheduler's advisory lock, held by a connection of its own (freed by
/// the server if this process dies).
struct AdvisoryLease {
    connection: sqlx::PgConnection,
}

#[async_trait::async_trait]
impl Lease for AdvisoryLease {
    async fn release(mut self: Box<Self>) -> StoreResult<()> {
        sqlx::query("SELECT pg_advisory_unlock($1, hashtext(current_schema()))")
            .bind(SCHEDULER_LOCK)
            .execute(&mut self.connection)
            .await?;
        self.connection.close().await?;
        Ok(())
    }
}

pub(super) async fn place_bets(
    pool: &PgPool,
    round: RoundId,
    requests: &[BetRequest],
) -> StoreResult<Answers> {
    let mut attempt = 1;
    loop {
        match try_place_bets(pool, round, requests).await {
            Err(StoreError::Other(e)) if attempt < MAX_BATCH_ATTEMPTS && is_retryable(&e) => {
                attempt += 1
            }
            // A concurrent transaction recorded one of the batch's keys
            // first: run the batch again, which now sees it and places the
            // others.
            Err(StoreError::KeyUsed) if attempt < MAX_BATCH_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

fn is_retryable(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

async fn try_place_bets(
    pool: &PgPool,
    round_id: RoundId,
    requests: &[BetRequest],
) -> StoreResult<Answers> {
    let mut users: Vec<i64> = requests.iter().map(|r| r.user.0).collect();
    users.sort_unstable();
    users.dedup();
    // Acquire, then begin on the held connection: measured here,
    // `Pool::begin` added 2-3 ms per batch (the committed transaction's
    // connection came back to the pool too late for the next batch).
    let connection = pool.acquire().await?;
    let (mut tx, round_row, rows) = begin_reading(connection, round_id, &users).await?;
    match decide_and_write(&mut tx, round_id, round_row, rows, requests).await {
        Ok((answers, true)) => {
            tx.commit().await?;
            Ok(answers)
        }
        // Every bet refused: nothing to keep.
        Ok((answers, false)) => {
            tx.rollback().await?;
            Ok(answers)
        }
        Err(error) => {
            // Ended here, so the connection goes back to the pool for the
            // retry (a deadlock, a key another instance recorded first);
            // if the rollback fails too, the connection is closed.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Decides the batch on what `begin_reading` read and writes the accepted
/// bets with their kept answers. Returns the answers and whether anything
/// was written.
async fn decide_and_write(
    tx: &mut Tx<'_>,
    round_id: RoundId,
    round_row: Option<Row>,
    rows: Vec<Row>,
    requests: &[BetRequest],
) -> StoreResult<(Answers, bool)> {
    let first = round_row.ok_or_else(|| StoreError::NotFound(format!("round {round_id}")))?;
    let round: Round = first.record()?;
    let pools = (
        first.get("pool_up_account")?,
        first.get("pool_down_account")?,
    );
    let mut players = HashMap::new();
    let mut account_of = HashMap::new();
    for row in rows {
        let user = UserId(row.get("id")?);
        let first = requests
            .iter()
            .find(|r| r.user == user)
            .map(|r| r.received_at)
            .unwrap_or_default();
        let state = player_state(tx, &row, user, round_id, first).await?;
        players.insert(user, state);
        account_of.insert(user, row.get::<i64>("account_id")?);
    }
    let used = used_keys(tx, requests).await?;
    let decisions = decide_batch(&round.clock(), requests, &mut players, &used);
    let accepted = accepted(requests, &decisions);
    if accepted.is_empty() {
        return Ok((answers(round_id, requests, decisions, Vec::new()), false));
    }
    let bet_ids = write_bets(tx, &round, pools, &accepted, &account_of).await?;
    let answers = answers(round_id, requests, decisions, bet_ids);
    keep_answers(tx, &kept_answers(requests, &answers)).await?;
    Ok((answers, true))
}

/// Begins a batch's transaction with its two reads in the same message
/// (one round trip instead of three; measured in BENCHMARKS.md): the
/// round, locked for key share so it cannot be settled under the batch,
/// and the players with their balance rows locked for update, in account
/// order so two batches never deadlock. The statements travel as text
/// without parameters: only the ids, numbers this function formats, are
/// in them.
async fn begin_reading(
    connection: sqlx::pool::PoolConnection<sqlx::Postgres>,
    round: RoundId,
    users: &[i64],
) -> StoreResult<(Tx<'static>, Option<Row>, Vec<Row>)> {
    let round_sql = format!(
        "SELECT {ROUND_COLUMNS}, pool_up_account, pool_down_account FROM rounds WHERE id = {} FOR KEY SHARE",
        round.0
    );
    let ids = users
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let players_sql = format!(
        "SELECT u.id, u.account_id, a.balance, u.max_stake_per_round, u.max_stake_per_day, u.excluded_until, \
         u.pending_max_stake_per_round, u.pending_max_stake_per_day, u.limits_pending_from \
         FROM accounts a JOIN users u ON u.account_id = a.id WHERE u.id = ANY('{{{ids}}}'::bigint[]) \
         ORDER BY a.id FOR UPDATE OF a"
    );
    let (begun, results) = Begun::start(connection, &[&round_sql, &players_sql]).await?;
    let [rounds, players]: [Vec<Row>; 2] = results
        .try_into()
        .map_err(|_| StoreError::Other(anyhow::anyhow!("two result sets expected")))?;
    Ok((
        Tx::Postgres(PgTx::Begun(begun)),
        rounds.into_iter().next(),
        players,
    ))
}

/// The batch's keys that earlier transactions recorded.
async fn used_keys(
    tx: &mut Tx<'_>,
    requests: &[BetRequest],
) -> StoreResult<HashSet<(String, String)>> {
    let (scopes, keys): (Vec<String>, Vec<String>) = requests
        .iter()
        .filter_map(|r| r.key.as_ref())
        .map(|k| (k.key.scope.clone(), k.key.key.clone()))
        .unzip();
    if scopes.is_empty() {
        return Ok(HashSet::new());
    }
    let rows = sqlx::query(
        "SELECT k.scope, k.key FROM idempotency_keys k \
         JOIN unnest($1::text[], $2::text[]) AS x(scope, key) ON k.scope = x.scope AND k.key = x.key",
    )
    .bind(&scopes)
    .bind(&keys)
    .fetch_all(tx.postgres())
    .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("scope")?, row.try_get("key")?)))
        .collect()
}

/// Records the keys of placed bets with their answers, in one statement.
async fn keep_answers(tx: &mut Tx<'_>, kept: &[(RequestKey, KeptAnswer)]) -> StoreResult<()> {
    if kept.is_empty() {
        return Ok(());
    }
    let column =
        |f: fn(&(RequestKey, KeptAnswer)) -> String| kept.iter().map(f).collect::<Vec<_>>();
    let statuses: Vec<i32> = kept.iter().map(|(_, a)| i32::from(a.status)).collect();
    let times: Vec<DateTime<Utc>> = kept.iter().map(|(k, _)| k.at).collect();
    sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, request_hash, status_code, response_body, created_at, completed_at) \
         SELECT scope, key, request_hash, status_code, response_body, created_at, created_at \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::timestamptz[]) \
              AS x(scope, key, request_hash, status_code, response_body, created_at)",
    )
    .bind(column(|(k, _)| k.scope.clone()))
    .bind(column(|(k, _)| k.key.clone()))
    .bind(column(|(k, _)| k.request_hash.clone()))
    .bind(statuses)
    .bind(column(|(_, a)| a.body.clone()))
    .bind(times)
    .execute(tx.postgres())
    .await?;
    Ok(())
}

/// A posting's account ids and amounts, its accounts being users and pools.
fn resolve_entries(
    posting: &Posting,
    pools: (i64, i64),
    account_of: &HashMap<UserId, i64>,
) -> StoreResult<(Vec<i64>, Vec<i64>)> {
    posting
        .entries()
        .iter()
        .map(|entry| Ok((account_row(entry.account, pools, account_of)?, entry.amount)))
        .collect()
}

/// Inserts the accepted bets, their ledger transactions and entries, and
/// moves the players' balances, in one statement. Returns the bet ids in
/// the order of `accepted`.
async fn write_bets(
    tx: &mut Tx<'_>,
    round: &Round,
    (pool_up, pool_down): (i64, i64),
    accepted: &[&BetRequest],
    account_of: &HashMap<UserId, i64>,
) -> StoreResult<Vec<i64>> {
    let users: Vec<i64> = accepted.iter().map(|r| r.user.0).collect();
    let sides: Vec<&str> = accepted.iter().map(|r| r.side.as_str()).collect();
    let stakes: Vec<i64> = accepted.iter().map(|r| r.stake.get()).collect();
    let times: Vec<DateTime<Utc>> = accepted.iter().map(|r| r.received_at).collect();
    let mut entry_ordinal = Vec::with_capacity(accepted.len() * 2);
    let mut entry_account = Vec::with_capacity(accepted.len() * 2);
    let mut entry_amount = Vec::with_capacity(accepted.len() * 2);
    let mut deltas: BTreeMap<i64, i64> = BTreeMap::new();
    for (index, request) in accepted.iter().enumerate() {
        // The posting the domain defines for a bet, checked to balance.
        let posting =
            Posting::bet(request.user, round.id, request.side, request.stake).map_err(invalid)?;
        let (accounts, amounts) = resolve_entries(&posting, (pool_up, pool_down), account_of)?;
        for (account, amount) in accounts.into_iter().zip(amounts) {
            entry_ordinal.push(index as i64 + 1);
            entry_account.push(account);
            entry_amount.push(amount);
            if account != pool_up && account != pool_down {
                *deltas.entry(account).or_default() += amount;
            }
        }
    }
    let (delta_accounts, delta_amounts): (Vec<i64>, Vec<i64>) = deltas.into_iter().unzip();
    let rows = sqlx::query(
        "WITH input AS MATERIALIZED ( \
           SELECT x.ordinal, nextval('bets_id_seq') AS bet_id, nextval('ledger_transactions_id_seq') AS tx_id, \
                  x.user_id, x.side, x.stake, x.placed_at \
           FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::timestamptz[]) \
                WITH ORDINALITY AS x(user_id, side, stake, placed_at, ordinal)), \
         b AS (INSERT INTO bets (id, round_id, user_id, side, stake, status, placed_at) \
           SELECT bet_id, $1, user_id, side, stake, 'ACTIVE', placed_at FROM input), \
         t AS (INSERT INTO ledger_transactions (id, kind, round_id, user_id, bet_id, created_at) \
           SELECT tx_id, 'bet', $1, user_id, bet_id, placed_at FROM input), \
         e AS (INSERT INTO ledger_entries (tx_id, account_id, amount) \
           SELECT input.tx_id, y.account_id, y.amount \
           FROM unnest($6::bigint[], $7::bigint[], $8::bigint[]) AS y(ordinal, account_id, amount) \
           JOIN input ON input.ordinal = y.ordinal), \
         u AS (UPDATE accounts a SET balance = a.balance + d.delta \
           FROM unnest($9::bigint[], $10::bigint[]) AS d(id, delta) WHERE a.id = d.id) \
         SELECT bet_id FROM input ORDER BY ordinal",
    )
    .bind(round.id.0)
    .bind(&users)
    .bind(&sides)
    .bind(&stakes)
    .bind(&times)
    .bind(&entry_ordinal)
    .bind(&entry_account)
    .bind(&entry_amount)
    .bind(&delta_accounts)
    .bind(&delta_amounts)
    .fetch_all(tx.postgres())
    .await?;
    rows.iter()
        .map(|row| Ok(row.try_get::<i64, _>("bet_id")?))
        .collect()
}

pub(super) async fn pay_chunk(tx: &mut Tx<'_>, chunk: Chunk<'_>) -> StoreResult<u64> {
    let (round, plan, first, last) = (chunk.round, chunk.plan, chunk.first, chunk.last);
    let sides: Vec<&str> = Side::BOTH
        .into_iter()
        .filter(|s| plan.pays(*s))
        .map(Side::as_str)
        .collect();
    let rows = sqlx::query(
        "SELECT b.id, b.user_id, b.side, b.stake, u.account_id FROM bets b JOIN users u ON u.id = b.user_id \
         WHERE b.round_id = $1 AND b.status = 'ACTIVE' AND b.id BETWEEN $2 AND $3 AND b.side = ANY($4) ORDER BY b.id",
    )
    .bind(round.id.0)
    .bind(first)
    .bind(last)
    .bind(&sides)
    .fetch_all(tx.postgres())
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let rows: Vec<Row> = rows.into_iter().map(Row::Postgres).collect();
    let (bets, account_of) = chunk_bets(&rows)?;
    let Some(posting) = Posting::settlement_chunk(round.id, plan, &bets).map_err(invalid)? else {
        return Ok(rows.len() as u64);
    };
    let pools = pool_accounts(tx, round.id).await?;
    let (accounts, amounts) = resolve_entries(&posting, pools, &account_of)?;
    let at = round
        .settlement
        .as_ref()
        .map(|s| s.started_at)
        .unwrap_or_default();
    let tx_id: i64 = sqlx::query(
        "INSERT INTO ledger_transactions (kind, round_id, created_at) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(posting.kind().as_str())
    .bind(round.id.0)
    .bind(at)
    .fetch_one(tx.postgres())
    .await?
    .try_get("id")?;
    // One ledger transaction with many entries; pool entries move no
    // cached balance (pool balances are not cached).
    sqlx::query(
        "WITH e AS (INSERT INTO ledger_entries (tx_id, account_id, amount) \
           SELECT $1, account_id, amount FROM unnest($2::bigint[], $3::bigint[]) AS x(account_id, amount)) \
         UPDATE accounts a SET balance = a.balance + d.delta \
         FROM (SELECT account_id, SUM(amount) AS delta FROM unnest($2::bigint[], $3::bigint[]) AS y(account_id, amount) \
               WHERE account_id <> ALL($4::bigint[]) GROUP BY account_id) d \
         WHERE a.id = d.account_id",
    )
    .bind(tx_id)
    .bind(&accounts)
    .bind(&amounts)
    .bind([pools.0, pools.1])
    .execute(tx.postgres())
    .await?;
    Ok(rows.len() as u64)
}
