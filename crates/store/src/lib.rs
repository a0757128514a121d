//! Persistence for updown behind one trait, [`Store`], with an SQLite
//! implementation (the embedded default) and a PostgreSQL one (production).
//!
//! Every method is one database transaction: it writes the ledger postings
//! the domain built, keeps cached balances in step, and enforces the money
//! rules again at the database (a balance never below zero, a deposit never
//! credited twice), so no interleaving of callers can break them.
//!
//! # Layout
//! - [`model`]: the records the store returns and accepts.
//! - `common`: the SQL both backends share, written once and expanded per
//!   backend by a macro (the SQL text is the same; the sqlx types are not).
//! - `sqlite`, `postgres`: connection setup, migrations and the hot paths
//!   (bet batches, settlement chunks) written for each engine.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use thiserror::Error;
use updown_domain::admission::{BetRefusal, PlayerLimits};
use updown_domain::ids::{BetId, Email, Market, RoundCode, RoundId, UserId, WithdrawalId};
use updown_domain::round::RoundError;
use updown_domain::Micros;

#[macro_use]
mod common;
pub mod model;
mod postgres;
mod sqlite;
#[doc(hidden)]
pub mod testing;

pub use model::*;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("insufficient balance: {available} micro-USDC available, {requested} requested")]
    InsufficientFunds {
        available: Micros,
        requested: Micros,
    },
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("{0}")]
    Invalid(String),
    /// A configured limit would be passed.
    #[error("{0}")]
    LimitExceeded(String),
    /// The request's Idempotency-Key was recorded by an earlier request
    /// (this one changed nothing): answer from the record.
    #[error("this Idempotency-Key was used before")]
    KeyUsed,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The unique constraints, by name (PostgreSQL reports it) and by the
/// columns SQLite reports (`table.column, ...`), with what a clash means.
const UNIQUE_CONSTRAINTS: &[(&str, &str, Clash)] = &[
    (
        "idempotency_keys_pkey",
        "idempotency_keys.scope, idempotency_keys.key",
        Clash::KeyUsed,
    ),
    (
        "deposits_transfer_key",
        "deposits.chain_tx_hash, deposits.log_index",
        Clash::Conflict("this chain transfer (tx hash and log index) was already credited"),
    ),
    (
        "users_email_key",
        "users.email",
        Clash::Conflict("a user with this email already exists"),
    ),
    (
        "users_sequence_key",
        "users.sequence",
        Clash::Conflict("another user was created at the same moment; try again"),
    ),
    (
        "users_deposit_address",
        "users.deposit_address",
        Clash::Conflict("this deposit address belongs to another user"),
    ),
    (
        "rounds_market_code_key",
        "rounds.market, rounds.code",
        Clash::Conflict("this round already exists"),
    ),
    (
        "prices_market_date_key",
        "prices.market, prices.session_date",
        Clash::Conflict("a close is already recorded for this market and date"),
    ),
    (
        "api_keys_hash_key",
        "api_keys.key_hash",
        Clash::Conflict("this credential exists already; try again"),
    ),
];

#[derive(Clone, Copy)]
enum Clash {
    KeyUsed,
    Conflict(&'static str),
}

/// What a unique violation means, by the constraint that was hit.
fn unique_violation(db: &dyn sqlx::error::DatabaseError) -> Option<StoreError> {
    let message = db.message();
    let columns = message.strip_prefix("UNIQUE constraint failed: ");
    let (_, _, clash) = UNIQUE_CONSTRAINTS
        .iter()
        .find(|(name, sqlite, _)| db.constraint() == Some(*name) || columns == Some(*sqlite))?;
    Some(match clash {
        Clash::KeyUsed => StoreError::KeyUsed,
        Clash::Conflict(what) => StoreError::Conflict((*what).to_string()),
    })
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = error {
            return StoreError::NotFound("row".into());
        }
        if let Some(db) = error.as_database_error() {
            if db.is_unique_violation() {
                if let Some(mapped) = unique_violation(db) {
                    return mapped;
                }
            }
            if db.is_check_violation() {
                return StoreError::Invalid(format!("database check failed: {}", db.message()));
            }
        }
        StoreError::Other(anyhow::Error::new(error))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Which engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A held right (see [`Store::scheduler_lease`]).
#[async_trait]
pub trait Lease: Send {
    async fn release(self: Box<Self>) -> StoreResult<()>;
}

/// A lease nobody else can contend for.
pub struct SoleLease;

#[async_trait]
impl Lease for SoleLease {
    async fn release(self: Box<Self>) -> StoreResult<()> {
        Ok(())
    }
}

/// Persistence for every use-case. Implemented by [`SqliteStore`] and
/// [`PostgresStore`]; both pass the same conformance suite.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Applies pending migrations; safe to call on every start.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip, for health checks.
    async fn ping(&self) -> StoreResult<()>;

    // Users and balances.
    async fn create_user(&self, email: &Email, now: DateTime<Utc>) -> StoreResult<User>;
    /// Creates many users in one transaction, each credited `funding` by a
    /// deposit with chain tx `seed-<sequence>` (none when zero). Fails whole
    /// if any email exists.
    async fn create_users(
        &self,
        emails: &[Email],
        funding: Micros,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<User>>;
    async fn user(&self, id: UserId) -> StoreResult<User>;
    async fn user_by_email(&self, email: &Email) -> StoreResult<User>;
    /// Newest first, before user id `before` when given.
    async fn users(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<UserSummary>>;
    /// Applies a player's request for `wanted` limits at `now` under the
    /// rules of
    /// [`updown_domain::admission::LimitSettings::request`], decided on the row as locked
    /// in this transaction (never on a cached read): a stricter limit at
    /// once, a looser one after `cooloff`, an exclusion never shortened
    /// (Conflict).
    async fn change_limits(
        &self,
        user: UserId,
        wanted: PlayerLimits,
        now: DateTime<Utc>,
        cooloff: Duration,
    ) -> StoreResult<User>;
    async fn balance(&self, user: UserId) -> StoreResult<Micros>;

    // API keys, stored as hashes.
    async fn create_api_key(
        &self,
        user: UserId,
        prefix: &str,
        key_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64>;
    /// The user an unrevoked key belongs to.
    async fn user_by_api_key(&self, key_hash: &str) -> StoreResult<Option<User>>;
    /// Revokes one of `user`'s keys; NotFound if it is not theirs.
    async fn revoke_api_key(&self, user: UserId, key: i64, now: DateTime<Utc>) -> StoreResult<()>;
    /// `user`'s API keys, newest first (never the keys themselves).
    async fn api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKeyInfo>>;

    /// Records the user's deposit address unless one is recorded already;
    /// the address the user has from now on. Conflict if another user has it.
    async fn assign_deposit_address(&self, user: UserId, address: &str) -> StoreResult<String>;
    async fn user_by_deposit_address(&self, address: &str) -> StoreResult<Option<User>>;

    // Passwords and web sessions.
    /// Sets (or replaces) the user's argon2id password hash.
    async fn set_password_hash(&self, user: UserId, hash: &str) -> StoreResult<()>;
    /// The user with this email and their password hash, if they set one.
    async fn password_hash(&self, email: &Email) -> StoreResult<Option<(User, Option<String>)>>;
    async fn create_session(
        &self,
        user: UserId,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// The user a live (unexpired, not ended) session belongs to.
    async fn user_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;
    async fn end_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()>;

    /// The ledger lines of `user`'s account, newest first, before ledger
    /// transaction `before` when given, with the balance after each.
    async fn statement(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<StatementLine>>;

    // Deposits and withdrawals.
    /// Credits a chain transfer once (Conflict for a second credit); with a
    /// key, recorded in the same transaction (`KeyUsed` if it was before).
    async fn credit_deposit(&self, deposit: &NewDeposit) -> StoreResult<Deposit>;
    /// The credit of chain transfer (tx hash, log index), if there is one.
    async fn deposit_by_transfer(
        &self,
        tx_hash: &str,
        log_index: i64,
    ) -> StoreResult<Option<Deposit>>;
    /// Records one deposit notification (`received_at` and `outcome` set).
    async fn record_deposit_notification(
        &self,
        notification: &DepositNotification,
    ) -> StoreResult<()>;
    /// Deposit notifications, newest first, before id `before` when given.
    async fn deposit_notifications(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<DepositNotification>>;
    /// Moves the amount to pending and queues the withdrawal; with a key,
    /// recorded in the same transaction (`KeyUsed` if it was before).
    async fn request_withdrawal(&self, request: &NewWithdrawal) -> StoreResult<Withdrawal>;
    /// Newest first, before id `before` when given; of one user and in
    /// one status when given.
    async fn withdrawals(
        &self,
        user: Option<UserId>,
        status: Option<WithdrawalStatus>,
        before: Option<WithdrawalId>,
        limit: i64,
    ) -> StoreResult<Vec<Withdrawal>>;
    /// Withdrawals in `status`, oldest first, after id `after` when given:
    /// the worker's pages.
    async fn withdrawals_to_step(
        &self,
        status: WithdrawalStatus,
        after: Option<WithdrawalId>,
        limit: i64,
    ) -> StoreResult<Vec<Withdrawal>>;
    async fn withdrawal(&self, id: WithdrawalId) -> StoreResult<Withdrawal>;
    /// Moves a withdrawal one step, decided on its row as locked in this
    /// transaction; confirming moves its funds out of custody, failing
    /// gives them back to the user. Conflict when the step is not allowed
    /// from its current status ([`WithdrawalChange::check`]). With a key,
    /// recorded in the same transaction.
    async fn change_withdrawal(
        &self,
        id: WithdrawalId,
        change: &WithdrawalChange,
        now: DateTime<Utc>,
        key: Option<&Keyed<Withdrawal>>,
    ) -> StoreResult<Withdrawal>;

    // Rounds.
    /// Creates the round with its two pool accounts, or returns the
    /// existing one unchanged (opening is idempotent).
    async fn open_round(&self, round: &NewRound) -> StoreResult<(Round, bool)>;
    async fn round(&self, market: &Market, code: RoundCode) -> StoreResult<Round>;
    async fn round_by_id(&self, id: RoundId) -> StoreResult<Round>;
    async fn rounds(&self, market: &Market, limit: i64) -> StoreResult<Vec<Round>>;
    /// Rounds not yet SETTLED or VOID, oldest first.
    async fn unfinished_rounds(&self, market: &Market) -> StoreResult<Vec<Round>>;
    async fn pools(&self, round: RoundId) -> StoreResult<Pools>;
    /// OPEN -> LOCKED; a round already locked is returned as it is.
    async fn lock_round(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round>;

    // Bets.
    /// Places a batch of bets on one round in one transaction (group
    /// commit). Each request gets its own answer; refusals change nothing.
    async fn place_bets(
        &self,
        round: RoundId,
        requests: &[BetRequest],
    ) -> StoreResult<Vec<Result<Bet, BetRefusalReason>>>;
    /// Cancels a bet for a full refund; with a key, recorded in the same
    /// transaction (`KeyUsed` if it was before).
    async fn cancel_bet(
        &self,
        bet: BetId,
        owner: Option<UserId>,
        now: DateTime<Utc>,
        cancel_cutoff: Duration,
        key: Option<&Keyed<Bet>>,
    ) -> StoreResult<Bet>;
    /// `user`'s bets, newest first, before bet `before` when given.
    async fn bets_of_user(
        &self,
        user: UserId,
        before: Option<BetId>,
        limit: i64,
    ) -> StoreResult<Vec<Bet>>;
    async fn bet(&self, bet: BetId) -> StoreResult<Bet>;

    // Settlement: begin once, pay in chunks, finish. Each step is one
    // transaction and safe to repeat after a crash.
    async fn begin_settlement(&self, round: RoundId, start: &SettlementStart)
        -> StoreResult<Round>;
    /// Pays the bets in the next id range of `chunk_size` ids after the
    /// stored cursor: `Some(bets paid)` (possibly 0), or `None` once no bet
    /// is left. Ranges, not `LIMIT`, bound each chunk's work whatever plan
    /// the database picks.
    async fn settle_chunk(&self, round: RoundId, chunk_size: i64) -> StoreResult<Option<u64>>;
    async fn finish_settlement(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round>;

    // Prices.
    async fn record_price(&self, price: &PriceRecord) -> StoreResult<()>;
    async fn price(&self, market: &Market, date: NaiveDate) -> StoreResult<Option<PriceRecord>>;

    // Idempotency keys (written with their effects; see `RequestKey`).
    /// The record of a key, if one was kept.
    async fn idempotency_key(&self, scope: &str, key: &str) -> StoreResult<Option<KeyRecord>>;
    /// Records a key with its answer unless it is recorded already (for
    /// actions idempotent by themselves, recorded after they ran); whether
    /// this call recorded it.
    async fn record_idempotency_key(
        &self,
        key: &RequestKey,
        answer: &KeptAnswer,
    ) -> StoreResult<bool>;
    /// Deletes keys recorded before `keys_before` and refused deposit
    /// notifications received before `notifications_before`, at most
    /// `limit` rows of each.
    async fn purge(
        &self,
        keys_before: DateTime<Utc>,
        notifications_before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Purged>;

    // Reports.
    async fn tvl(&self) -> StoreResult<Tvl>;
    /// How many rounds are in each status (all markets).
    async fn round_counts(&self) -> StoreResult<Vec<(String, i64)>>;
    async fn verify(&self) -> StoreResult<VerifyReport>;
    /// The right to run the scheduler's next step, if no other process
    /// holds it; hold it for the step, then `release` it. PostgreSQL: a
    /// session advisory lock on a connection of its own (freed by the
    /// server if this process dies). SQLite: always granted.
    async fn scheduler_lease(&self) -> StoreResult<Option<Box<dyn Lease>>>;
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// Newest first, before entry `before` when given.
    async fn audit_log(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditEntry>>;
}

/// Why one bet of a batch was refused.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BetRefusalReason {
    #[error(transparent)]
    Player(#[from] BetRefusal),
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("user {0} not found")]
    UnknownUser(UserId),
    /// Its Idempotency-Key was recorded by an earlier request: the answer
    /// is that request's.
    #[error("this Idempotency-Key was used before")]
    KeyUsed,
}

/// Opens the store a `DATABASE_URL` names: `sqlite://path` or
/// `postgres://...`.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Arc<dyn Store>> {
    // The URL is not in the message: it may hold a password.
    let backend = Backend::of_url(url).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))?;
    Ok(match backend {
        Backend::Postgres => Arc::new(PostgresStore::connect(url, max_connections).await?),
        Backend::Sqlite => Arc::new(SqliteStore::connect(url, max_connections).await?),
    })
}

/// A database URL of no engine this store speaks.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("must start with sqlite: or postgres://")]
pub struct UnknownEngine;

impl Backend {
    /// The engine a `DATABASE_URL` names, by its scheme (`sqlite:`,
    /// `postgres://` or `postgresql://`): the one place that decides it,
    /// for [`connect`] and for the configuration that checks it at start.
    pub fn of_url(url: &str) -> Result<Backend, UnknownEngine> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(UnknownEngine)
        }
    }
}
