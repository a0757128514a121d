//! Writing the ledger: a balanced posting becomes one ledger transaction
//! with its entries, and the cached balances move with it. Also the reads
//! the money rules are decided on: pool balances and a player's state.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use updown_domain::admission::{LimitSettings, PlayerState};
use updown_domain::ids::{BetId, RoundId, UserId};
use updown_domain::ledger::{Account, Custody, Posting};
use updown_domain::round::Side;
use updown_domain::Micros;

use super::db::{query, Row, Tx};
use super::rows::{micros, parse_side, LimitColumns};
use crate::model::Round;
use crate::{StoreError, StoreResult};

/// Fixed ids of the system accounts (see the migrations).
pub(crate) fn system_account_id(account: Account) -> Option<i64> {
    match account {
        Account::Chain(Custody::DepositAddresses) => Some(1),
        Account::Chain(Custody::HotWallet) => Some(0),
        Account::HouseFees => Some(2),
        Account::HouseRounding => Some(3),
        Account::WithdrawalsPending => Some(4),
        Account::User(_) | Account::Pool(..) => None,
    }
}

/// The account row of a posting's account whose users and pools are
/// known: `account_of` users, and the round's (up, down) pool accounts.
pub(crate) fn account_row(
    account: Account,
    (pool_up, pool_down): (i64, i64),
    account_of: &HashMap<UserId, i64>,
) -> StoreResult<i64> {
    Ok(match account {
        Account::User(user) => *account_of
            .get(&user)
            .ok_or_else(|| StoreError::NotFound(format!("account of user {user}")))?,
        Account::Pool(_, Side::Up) => pool_up,
        Account::Pool(_, Side::Down) => pool_down,
        other => system_account_id(other).expect("system account"),
    })
}

/// The account row of any posting's account, looked up.
async fn account_id(tx: &mut Tx<'_>, account: Account) -> StoreResult<i64> {
    if let Some(id) = system_account_id(account) {
        return Ok(id);
    }
    let (sql, id) = match account {
        Account::User(user) => ("SELECT account_id FROM users WHERE id = $1", user.0),
        Account::Pool(round, Side::Up) => (
            "SELECT pool_up_account AS account_id FROM rounds WHERE id = $1",
            round.0,
        ),
        Account::Pool(round, Side::Down) => (
            "SELECT pool_down_account AS account_id FROM rounds WHERE id = $1",
            round.0,
        ),
        _ => unreachable!("system accounts handled above"),
    };
    let row = query(sql).bind(id).fetch_optional(tx).await?;
    row.ok_or_else(|| StoreError::NotFound(format!("account {account:?}")))?
        .get("account_id")
}

/// A round's (up, down) pool accounts.
pub(crate) async fn pool_accounts(tx: &mut Tx<'_>, round: RoundId) -> StoreResult<(i64, i64)> {
    let row = query("SELECT pool_up_account, pool_down_account FROM rounds WHERE id = $1")
        .bind(round.0)
        .fetch_one(tx)
        .await?;
    Ok((row.get("pool_up_account")?, row.get("pool_down_account")?))
}

/// Links a ledger transaction to what caused it.
#[derive(Default)]
pub(crate) struct TxMeta {
    pub(crate) round: Option<RoundId>,
    pub(crate) user: Option<UserId>,
    pub(crate) bet: Option<BetId>,
    pub(crate) reference: Option<String>,
}

/// Writes one balanced posting and moves the cached balances; a movement
/// that would take a non-chain account below zero fails the whole
/// transaction.
pub(crate) async fn write_posting(
    tx: &mut Tx<'_>,
    posting: &Posting,
    meta: TxMeta,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let tx_id: i64 = query(
        "INSERT INTO ledger_transactions (kind, round_id, user_id, bet_id, reference, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(posting.kind().as_str())
    .bind(meta.round.map(|r| r.0))
    .bind(meta.user.map(|u| u.0))
    .bind(meta.bet.map(|b| b.0))
    .bind(meta.reference)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?
    .get("id")?;
    for entry in posting.entries() {
        let account = account_id(tx, entry.account).await?;
        query("INSERT INTO ledger_entries (tx_id, account_id, amount) VALUES ($1, $2, $3)")
            .bind(tx_id)
            .bind(account)
            .bind(entry.amount)
            .execute(&mut *tx)
            .await?;
        if matches!(entry.account, Account::Pool(..)) {
            // Pool balances are not cached (see `pool_balance`).
            continue;
        }
        let moved = query(
            "UPDATE accounts SET balance = balance + $1 \
             WHERE id = $2 AND (kind = 'chain' OR balance + $1 >= 0)",
        )
        .bind(entry.amount)
        .bind(account)
        .execute(&mut *tx)
        .await?;
        if moved != 1 {
            let available: i64 = query("SELECT balance FROM accounts WHERE id = $1")
                .bind(account)
                .fetch_one(&mut *tx)
                .await?
                .get("balance")?;
            return Err(StoreError::InsufficientFunds {
                available: micros(available)?,
                requested: micros(-entry.amount)?,
            });
        }
    }
    Ok(tx_id)
}

/// Credits one chain transfer: the deposit posting and the deposit row
/// whose unique key refuses a second credit.
pub(crate) async fn credit(
    tx: &mut Tx<'_>,
    user: UserId,
    amount: Micros,
    chain_tx_hash: &str,
    log_index: i64,
    now: DateTime<Utc>,
) -> StoreResult<i64> {
    let posting = Posting::deposit(user, amount).map_err(invalid)?;
    let meta = TxMeta {
        user: Some(user),
        reference: Some(format!("{chain_tx_hash}:{log_index}")),
        ..TxMeta::default()
    };
    let ledger_tx = write_posting(tx, &posting, meta, now).await?;
    query(
        "INSERT INTO deposits (user_id, chain_tx_hash, log_index, amount, ledger_tx_id, credited_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(user.0)
    .bind(chain_tx_hash)
    .bind(log_index)
    .bind(amount.get())
    .bind(ledger_tx)
    .bind(now)
    .fetch_one(tx)
    .await?
    .get("id")
}

/// A posting the domain refused to build.
pub(crate) fn invalid(error: impl std::fmt::Display) -> StoreError {
    StoreError::Invalid(error.to_string())
}

/// A pool account's balance, recomputed from its entries.
///
/// Pool balances are deliberately not cached: every bet would otherwise
/// update its round's pool row, and that single row would serialise all
/// bettors (ARCHITECTURE.md). A bet locks only its player's balance row.
/// The pool's `balance` column stays 0, which `verify` checks.
pub(crate) fn pool_balance(account: &str) -> String {
    format!(
        "(SELECT CAST(COALESCE(SUM(pe.amount), 0) AS BIGINT) FROM ledger_entries pe \
         WHERE pe.account_id = {account})"
    )
}

/// A round's (up, down) pools as they stand.
pub(crate) async fn pool_balances(tx: &mut Tx<'_>, round: &Round) -> StoreResult<(Micros, Micros)> {
    let sql = format!(
        "SELECT {} AS up, {} AS down FROM rounds r WHERE r.id = $1",
        pool_balance("r.pool_up_account"),
        pool_balance("r.pool_down_account")
    );
    let row = query(&sql).bind(round.id.0).fetch_one(tx).await?;
    Ok((micros(row.get("up")?)?, micros(row.get("down")?)?))
}

/// A player's state for deciding a batch, from their row (balance and
/// limit columns); their stored stakes are counted only when they have
/// limits, which most players do not.
pub(crate) async fn player_state(
    tx: &mut Tx<'_>,
    row: &Row,
    user: UserId,
    round: RoundId,
    received_at: DateTime<Utc>,
) -> StoreResult<PlayerState> {
    let settings = LimitSettings::try_from(row.decode::<LimitColumns>()?)?;
    // A raise waiting out its cooling-off applies from its instant.
    let limits = settings.in_force(received_at);
    let mut state = PlayerState {
        balance: micros(row.get("balance")?)?,
        limits,
        staked_in_round: Micros::ZERO,
        staked_today: Micros::ZERO,
    };
    if !limits.is_unlimited() {
        let (day_start, day_end) = new_york_day(received_at);
        let sums = query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN round_id = $2 THEN stake ELSE 0 END), 0) AS BIGINT) AS in_round, \
                    CAST(COALESCE(SUM(CASE WHEN placed_at >= $3 AND placed_at < $4 THEN stake ELSE 0 END), 0) AS BIGINT) AS today \
             FROM bets WHERE user_id = $1 AND status = 'ACTIVE'",
        )
        .bind(user.0)
        .bind(round.0)
        .bind(day_start)
        .bind(day_end)
        .fetch_one(tx)
        .await?;
        state.staked_in_round = micros(sums.get("in_round")?)?;
        state.staked_today = micros(sums.get("today")?)?;
    }
    Ok(state)
}

/// The New York day of an instant, as the half-open UTC range the daily
/// stake limit counts over.
fn new_york_day(at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let tz = chrono_tz::America::New_York;
    let date = at.with_timezone(&tz).date_naive();
    let start = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight"))
            .earliest()
            .expect("New York midnight exists")
            .with_timezone(&Utc)
    };
    (start(date), start(date.succ_opt().expect("date in range")))
}

/// A settlement chunk's rows (id, user_id, side, stake, account_id) as the
/// domain's (user, side, stake) and each user's account.
#[allow(clippy::type_complexity)]
pub(crate) fn chunk_bets(
    rows: &[Row],
) -> StoreResult<(Vec<(UserId, Side, Micros)>, HashMap<UserId, i64>)> {
    let mut bets = Vec::with_capacity(rows.len());
    let mut account_of = HashMap::new();
    for row in rows {
        let user = UserId(row.get("user_id")?);
        let side = parse_side(row.get("side")?)?;
        bets.push((user, side, micros(row.get("stake")?)?));
        account_of.insert(user, row.get::<i64>("account_id")?);
    }
    Ok((bets, account_of))
}
