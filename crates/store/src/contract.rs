//! The store's contract: what persistence every use-case needs, one trait
//! per concern, and [`Store`], which is all of them.
//!
//! Every method that changes anything is one database transaction: it
//! writes the ledger postings the domain built, keeps cached balances in
//! step, and enforces the money rules again at the database (a balance
//! never below zero, a deposit never credited twice), so no interleaving of
//! callers can break them. [`SqlStore`](crate::SqlStore) implements it on
//! SQLite and on PostgreSQL; both pass the same conformance suite
//! (`tests/conformance.rs`).
//!
//! Callers hold an `Arc<dyn Store>`: a trait object has its supertraits'
//! methods, so no trait needs importing to call them.

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{BetId, Email, Market, RoundCode, RoundId, UserId, WithdrawalId};
use updown_domain::round::Outcome;
use updown_domain::Micros;

use crate::model::*;
use crate::{Backend, BetRefusalReason, Lease, StoreResult};

/// Persistence for every use-case: each concern's trait, and the store's
/// own upkeep.
#[async_trait]
pub trait Store:
    UserStore
    + FundStore
    + ChainStore
    + SendStore
    + SweepStore
    + RoundStore
    + BetStore
    + SettlementStore
    + KeyStore
    + ReportStore
    + OperatorStore
    + ApprovalStore
    + 'static
{
    fn backend(&self) -> Backend;

    /// Applies pending migrations; safe to call on every start.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip, for health checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Whether this process can take money requests: the database that
    /// takes writes answers and holds every migration this build knows
    /// (a newer build's as well is fine). `Ok(Some(why))` when it answers
    /// but is behind.
    async fn unready(&self) -> StoreResult<Option<String>>;
    /// Checks the read replica's lag: reads of lists go to it from now on
    /// only if it answers within `max_lag` (see `SqlStore::with_replica`).
    async fn check_replica(&self, max_lag: std::time::Duration) -> crate::ReplicaState;
    /// The right to run the scheduler's next step, if no other process
    /// holds it; hold it for the step, then `release` it. PostgreSQL: a
    /// session advisory lock on a connection of its own (freed by the
    /// server if this process dies). SQLite: always granted.
    async fn scheduler_lease(&self) -> StoreResult<Option<Box<dyn Lease>>>;
    /// Claims a run of the periodic task `task` at `now`, unless one was
    /// claimed (by any process) after `since`: whether this process runs
    /// it. One statement, so two processes never both claim.
    async fn claim_run(
        &self,
        task: &str,
        now: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> StoreResult<bool>;
}

/// The function that signs a transaction for a nonce, called inside the
/// store's transaction.
pub type SignWith<'a> = &'a (dyn Fn(i64) -> Result<SignedTx, String> + Send + Sync);

/// The audit entries of a vote, made inside the store's transaction from
/// the approval as decided and, for a withdrawal's, the withdrawal as it
/// then stands.
pub type AuditWith<'a> =
    &'a (dyn Fn(&Approval, Option<&Withdrawal>) -> Vec<AuditEntry> + Send + Sync);

/// The audit entry of a step that creates a row, made inside the store's
/// transaction from the new row's id.
pub type AuditFor<'a> = &'a (dyn Fn(i64) -> AuditEntry + Send + Sync);

/// The audit entry of a change, made inside the store's transaction from
/// the row as it was before, read under lock.
pub type AuditFrom<'a, T> = &'a (dyn Fn(&T) -> AuditEntry + Send + Sync);

/// The hot wallet's sending: nonces from the database, each signed
/// transaction stored before it is broadcast.
#[async_trait]
pub trait SendStore: Send + Sync {
    /// One transaction: withdrawal `id` (SUBMITTING, claimed) takes the
    /// next nonce of `sender` (`first_nonce` when the sender has none
    /// yet), `sign` signs for it, and the signed transaction is stored as
    /// the withdrawal becomes SUBMITTED with its hash. Nothing of it stays
    /// if any step fails; a conflict if the withdrawal is not SUBMITTING.
    /// `audit` is appended in the same transaction.
    async fn submit_signed(
        &self,
        id: WithdrawalId,
        sender: &Sender,
        first_nonce: i64,
        sign: SignWith<'_>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<(Withdrawal, ChainSend)>;
    /// Stores a replacement of `previous` (its nonce, higher fees),
    /// signed by `sign` for that nonce; a conflict unless every send of
    /// that nonce is still `sent`.
    async fn replace_send(
        &self,
        previous: &ChainSend,
        sign: SignWith<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<ChainSend>;
    /// Where a send was seen mined, before its confirmations (it stays
    /// `sent`; a reorg may move it, and the next look writes again).
    async fn note_mined(&self, send_id: i64, block: i64, block_hash: &str) -> StoreResult<()>;
    /// When a send was last handed to the node.
    async fn mark_broadcast(&self, send_id: i64, now: DateTime<Utc>) -> StoreResult<()>;
    /// A withdrawal's sends, oldest first.
    async fn sends_of(&self, id: WithdrawalId) -> StoreResult<Vec<ChainSend>>;
    /// The sends of many withdrawals, by withdrawal then oldest first.
    async fn sends_of_many(&self, ids: &[WithdrawalId]) -> StoreResult<Vec<ChainSend>>;
    /// One transaction: the mined send recorded (mined or reverted), the
    /// other sends of its nonce replaced, and its withdrawal CONFIRMED
    /// with the mined hash, or FAILED and refunded with the reason, with
    /// `audit` appended.
    async fn finish_send(&self, mined: &MinedSend, audit: &AuditEntry) -> StoreResult<Withdrawal>;
    /// An operator's end of a nonce conflict, after the caller saw on the
    /// chain that the nonce was used by another transaction and none of
    /// the withdrawal's was mined: in one transaction the withdrawal
    /// (SUBMITTED, every send still `sent`) fails and is refunded with
    /// `reason`, its sends are recorded replaced, and its sender's next
    /// nonce rises to at least `nonce_floor`, with `audit` appended.
    async fn resolve_nonce(
        &self,
        id: WithdrawalId,
        nonce_floor: i64,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<Withdrawal>;
    /// Sends mined (or reverted) in block `from` or later, oldest first:
    /// the blocks whose hashes the sender checks for a reorg.
    async fn mined_since(&self, from: i64) -> StoreResult<Vec<ChainSend>>;
    /// Raises `sender`'s next nonce to `floor` if it is below (the chain
    /// counted transactions another tool sent).
    async fn raise_next_nonce(&self, sender: &Sender, floor: i64) -> StoreResult<()>;
    /// The next nonce the database holds for `sender`, if it ever sent.
    async fn next_nonce(&self, sender: &Sender) -> StoreResult<Option<i64>>;
}

/// Sweeps: deposit addresses' tokens moved into the hot wallet by its own
/// transactions (a permit, then a transferFrom), sent as withdrawals are.
#[async_trait]
pub trait SweepStore: Send + Sync {
    /// One transaction: the sweep recorded SUBMITTED, the sender's next
    /// two nonces taken (`first_nonce` when it never sent), `sign_permit`
    /// and `sign_transfer` signing for the first and the second, both
    /// stored. A conflict when the address has a sweep in flight.
    async fn submit_sweep(
        &self,
        sweep: &NewSweep,
        sender: &Sender,
        first_nonce: i64,
        sign_permit: SignWith<'_>,
        sign_transfer: SignWith<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<(Sweep, Vec<ChainSend>)>;
    /// Sweeps SUBMITTED, oldest first, each with its sends by nonce.
    async fn open_sweeps(&self) -> StoreResult<Vec<(Sweep, Vec<ChainSend>)>>;
    /// One transaction: both sends recorded as mined, and the sweep
    /// CONFIRMED and booked in the ledger (the transferFrom succeeded) or
    /// FAILED with the reason; a conflict unless it is SUBMITTED.
    async fn finish_sweep(&self, mined: &MinedSweep, reason: Option<&str>) -> StoreResult<Sweep>;
    /// An operator's end of a sweep whose transferFrom nonce another
    /// transaction used (the caller saw that on the chain, and no receipt
    /// of the sweep's transferFrom): in one transaction the sweep (still
    /// SUBMITTED) fails with `reason`, nothing is booked, its pending sends
    /// are recorded replaced, and the sender's next nonce rises to at
    /// least `nonce_floor`, with `audit` appended.
    async fn resolve_sweep(
        &self,
        id: i64,
        nonce_floor: i64,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<Sweep>;
    /// The latest `limit` sweeps, newest first.
    async fn sweeps(&self, limit: i64) -> StoreResult<Vec<Sweep>>;
    /// What each custody place holds by the ledger, in micro-USDC:
    /// (deposit addresses, hot wallet).
    async fn custody_places(&self) -> StoreResult<(i64, i64)>;
    /// Micro-USDC booked already whose transaction was mined after
    /// `block`, so a balance read at `block` does not show it yet:
    /// (confirmed sweeps, confirmed withdrawals).
    async fn booked_after(&self, block: i64) -> StoreResult<(i64, i64)>;
}

/// The chain watcher's state (deposits read from the chain itself) and
/// custody checks.
#[async_trait]
pub trait ChainStore: Send + Sync {
    /// The cursor, created at `start_block` for `chain_id` and `token`
    /// (lower-case hex) when there is none; a conflict if the database
    /// follows another chain or token.
    async fn chain_cursor(
        &self,
        chain_id: i64,
        token: &str,
        start_block: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ChainCursor>;
    /// The cursor, if the watcher ever ran.
    async fn read_chain_cursor(&self) -> StoreResult<Option<ChainCursor>>;
    /// The kept hashes of the last scanned blocks, highest first.
    async fn scanned_blocks(&self, limit: i64) -> StoreResult<Vec<ScannedBlock>>;
    /// One transaction: the range's credits (each transfer once, whoever
    /// credited it first), its blocks' hashes, and the cursor moved from
    /// `range.from`. A conflict if the cursor is elsewhere (another
    /// watcher) or a reorg waits for acknowledgement.
    async fn commit_range(&self, range: &ScannedRange) -> StoreResult<RangeCommitted>;
    /// Replaces the pending deposits with `pending` (those credited
    /// meanwhile are left out).
    async fn replace_pending_deposits(&self, pending: &[PendingDeposit]) -> StoreResult<()>;
    /// Highest block first; one user's, or everyone's.
    async fn pending_deposits(
        &self,
        user: Option<UserId>,
        limit: i64,
    ) -> StoreResult<Vec<PendingDeposit>>;
    /// A user's credited deposits, newest first, before deposit `before`.
    async fn deposits_of_user(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Deposit>>;
    /// Records a reorg deeper than the confirmations, listing what was
    /// credited from its blocks; while one is not acknowledged, this
    /// returns it instead of recording another.
    async fn record_reorg(&self, reorg: &NewReorg) -> StoreResult<Reorg>;
    /// The reorg that halts crediting, if any.
    async fn open_reorg(&self) -> StoreResult<Option<Reorg>>;
    /// Newest first.
    async fn reorgs(&self, limit: i64) -> StoreResult<Vec<Reorg>>;
    /// Acknowledges reorg `id` (once) and forgets the kept hashes from its
    /// fork block up: crediting resumes from the cursor.
    async fn ack_reorg(
        &self,
        id: i64,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Reorg>;
    async fn record_custody_check(&self, check: &CustodyCheck) -> StoreResult<CustodyCheck>;
    /// Newest first.
    async fn custody_checks(&self, limit: i64) -> StoreResult<Vec<CustodyCheck>>;
    /// Users' deposit addresses by user id, after `after`.
    async fn deposit_addresses(
        &self,
        after: Option<UserId>,
        limit: i64,
    ) -> StoreResult<Vec<(UserId, String)>>;
    /// Which of `addresses` (EIP-55) are users' deposit addresses, and whose.
    async fn deposit_address_owners(
        &self,
        addresses: &[String],
    ) -> StoreResult<Vec<(String, UserId)>>;
}

/// Users and balances, API keys, passwords and web sessions, statements.
#[async_trait]
pub trait UserStore: Send + Sync {
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
        audit: Option<&AuditEntry>,
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
}

/// Deposits and withdrawals: money crossing the chain boundary.
#[async_trait]
pub trait FundStore: Send + Sync {
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
    /// recorded in the same transaction; with `audit` (who did it, and
    /// why), appended to the audit log in it too: no crash leaves the step
    /// without its entry.
    async fn change_withdrawal(
        &self,
        id: WithdrawalId,
        change: &WithdrawalChange,
        now: DateTime<Utc>,
        key: Option<&Keyed<Withdrawal>>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Withdrawal>;
}

/// Rounds, and the closes they settle on.
#[async_trait]
pub trait RoundStore: Send + Sync {
    /// Creates the round with its two pool accounts, or returns the
    /// existing one unchanged (opening is idempotent); `audit` is recorded
    /// with the round it creates, and not when it was open already.
    async fn open_round(
        &self,
        round: &NewRound,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<(Round, bool)>;
    async fn round(&self, market: &Market, code: RoundCode) -> StoreResult<Round>;
    async fn round_by_id(&self, id: RoundId) -> StoreResult<Round>;
    async fn rounds(&self, market: &Market, limit: i64) -> StoreResult<Vec<Round>>;
    /// Rounds not yet SETTLED or VOID, oldest first.
    async fn unfinished_rounds(&self, market: &Market) -> StoreResult<Vec<Round>>;
    async fn pools(&self, round: RoundId) -> StoreResult<Pools>;
    /// Publishes the result a locked round will be paid on from
    /// `payouts_at`, unless one is published or settlement has begun: the
    /// round as it is then, and whether this call published it.
    async fn publish_result(
        &self,
        round: RoundId,
        outcome: Outcome,
        at: DateTime<Utc>,
        payouts_at: DateTime<Utc>,
    ) -> StoreResult<(Round, bool)>;
    /// OPEN -> LOCKED; a round already locked is returned as it is. The
    /// round, and whether this call locked it (only then is `audit`
    /// recorded).
    async fn lock_round(
        &self,
        round: RoundId,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<(Round, bool)>;

    // The closes rounds settle on.
    /// Records a close with what each source answered (none for a close
    /// an operator entered, whose `audit` entry is appended with it), all
    /// or nothing; `Conflict` when one is recorded already.
    async fn record_price(
        &self,
        price: &PriceRecord,
        sources: &[SourceAnswer],
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()>;
    async fn price(&self, market: &Market, date: NaiveDate) -> StoreResult<Option<PriceRecord>>;
    /// What each source answered for a recorded close, in their order.
    async fn price_sources(
        &self,
        market: &Market,
        date: NaiveDate,
    ) -> StoreResult<Vec<SourceAnswer>>;
    /// Closes recorded for sessions from `since` on, oldest first.
    async fn prices_since(
        &self,
        market: &Market,
        since: NaiveDate,
    ) -> StoreResult<Vec<PriceRecord>>;
    /// Records an incident unless the same one (market, date, kind and
    /// detail) is recorded already: whether it is new.
    async fn record_oracle_incident(&self, incident: &OracleIncident) -> StoreResult<bool>;
    /// The latest incidents, newest first.
    async fn oracle_incidents(
        &self,
        market: &Market,
        limit: i64,
    ) -> StoreResult<Vec<OracleIncident>>;
}

/// Bets.
#[async_trait]
pub trait BetStore: Send + Sync {
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
}

/// Settlement: begin once, pay in chunks, finish. Each step is one
/// transaction and safe to repeat after a crash.
#[async_trait]
pub trait SettlementStore: Send + Sync {
    async fn begin_settlement(&self, round: RoundId, start: &SettlementStart)
        -> StoreResult<Round>;
    /// Pays the bets in the next id range of `chunk_size` ids after the
    /// stored cursor: `Some(bets paid)` (possibly 0), or `None` once no bet
    /// is left. Ranges, not `LIMIT`, bound each chunk's work whatever plan
    /// the database picks.
    async fn settle_chunk(&self, round: RoundId, chunk_size: i64) -> StoreResult<Option<u64>>;
    async fn finish_settlement(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round>;
}

/// Idempotency keys, written with their effects (see [`RequestKey`]).
#[async_trait]
pub trait KeyStore: Send + Sync {
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
}

/// Reports for operators, and the audit log of their manual actions.
#[async_trait]
pub trait ReportStore: Send + Sync {
    async fn tvl(&self) -> StoreResult<Tvl>;
    /// How many rounds are in each status (all markets).
    async fn round_counts(&self) -> StoreResult<Vec<(String, i64)>>;
    /// Every invariant over the whole ledger, and the latest checkpoint
    /// against the entries it vouches for.
    async fn verify(&self) -> StoreResult<VerifyReport>;
    /// The invariants over the transactions after the latest checkpoint,
    /// carrying its totals forward; when they hold, a new checkpoint
    /// (stamped `at`) vouches for them.
    async fn verify_incremental(&self, at: DateTime<Utc>) -> StoreResult<IncrementalVerify>;
    async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>>;
    /// When a periodic verify of `scope` (`incremental`, `full`) last
    /// finished, for every instance to see.
    async fn record_verify_run(&self, scope: &str, at: DateTime<Utc>, ok: bool) -> StoreResult<()>;
    async fn last_verify_run(&self, scope: &str) -> StoreResult<Option<DateTime<Utc>>>;
    async fn record_audit(&self, entry: &AuditEntry) -> StoreResult<()>;
    /// The audit log's hash chain, walked from its first row.
    async fn audit_chain(&self) -> StoreResult<AuditChain>;
    /// Newest first, before entry `before` when given.
    async fn audit_log(&self, before: Option<i64>, limit: i64) -> StoreResult<Vec<AuditEntry>>;
}

/// Operators, their roles and personal tokens.
#[async_trait]
pub trait OperatorStore: Send + Sync {
    /// A conflict if the email is taken. Each change to an operator below
    /// records `audit`, when given, in its own transaction: the change and
    /// who made it commit together or not at all.
    async fn create_operator(
        &self,
        email: &Email,
        role: updown_domain::operator::Role,
        password_hash: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator>;
    /// Every operator, oldest first.
    async fn operators(&self) -> StoreResult<Vec<Operator>>;
    async fn operator_by_email(&self, email: &Email) -> StoreResult<Operator>;
    /// With `keep_an_admin`, refused (conflict) if it would leave no
    /// enabled admin, checked with every admin's row held. The role it
    /// already has changes nothing and records nothing; otherwise `audit`
    /// makes the entry from the row as it was.
    async fn set_operator_role(
        &self,
        email: &Email,
        role: updown_domain::operator::Role,
        keep_an_admin: bool,
        audit: Option<AuditFrom<'_, Operator>>,
    ) -> StoreResult<Operator>;
    /// Sets the password, clears failures and the lock, and ends the
    /// operator's sessions.
    async fn set_operator_password(
        &self,
        email: &Email,
        password_hash: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator>;
    /// Disables the operator, revokes every token of theirs and ends their
    /// sessions, in one transaction; a conflict if already disabled.
    async fn disable_operator(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        keep_an_admin: bool,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator>;
    /// A token of an enabled operator; its id (`audit` is made from it).
    async fn create_operator_token(
        &self,
        operator: i64,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        audit: Option<AuditFor<'_>>,
    ) -> StoreResult<i64>;
    /// An operator's tokens, newest first (never the tokens themselves).
    async fn operator_tokens(&self, operator: i64) -> StoreResult<Vec<OperatorToken>>;
    /// Revokes one of the operator's own unrevoked tokens; not found
    /// otherwise.
    async fn revoke_operator_token(
        &self,
        operator: i64,
        token: i64,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()>;
    /// The enabled operator an unrevoked token (by hash) belongs to, and
    /// the token's id.
    async fn operator_by_token(&self, token_hash: &str) -> StoreResult<Option<(Operator, i64)>>;
    /// Counts a wrong password or code; the one that makes `lock_after`
    /// locks sign-in until `lock_until`, records `audit` with the lock, and
    /// starts the count again.
    async fn record_sign_in_failure(
        &self,
        operator: i64,
        lock_after: i32,
        lock_until: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator>;
    async fn clear_sign_in_failures(&self, operator: i64) -> StoreResult<()>;
    /// Records a TOTP step as used, only if it is newer than the last one
    /// (a conditional write: of two sign-ins with one code, one wins).
    async fn use_totp_step(&self, operator: i64, step: i64) -> StoreResult<bool>;
    /// A secret (hex) being set up, replacing any earlier pending one.
    async fn set_totp_pending(&self, operator: i64, secret: &str) -> StoreResult<()>;
    /// Makes the pending secret the operator's, with its first code's step
    /// as used; false if nothing was pending or the step is not newer.
    async fn confirm_totp(
        &self,
        operator: i64,
        step: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;
    /// Removes the second factor (a lost phone) and ends the sessions.
    async fn clear_totp(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator>;
    /// A console session of an enabled operator; its id (`audit` is made
    /// from it).
    async fn create_operator_session(
        &self,
        operator: i64,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: Option<AuditFor<'_>>,
    ) -> StoreResult<i64>;
    /// The enabled operator an open, unexpired session belongs to, and the
    /// session's id.
    async fn operator_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Operator, i64)>>;
    async fn end_operator_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()>;
    /// Enabled operators with the admin role.
    async fn count_admins(&self) -> StoreResult<i64>;
}

/// Two-person approvals: requested, voted on, decided once.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// A conflict if one is pending for the same subject already; `audit`,
    /// made from the new approval's id, commits with it.
    async fn request_approval(
        &self,
        approval: &NewApproval,
        audit: Option<AuditFor<'_>>,
    ) -> StoreResult<Approval>;
    async fn approval(&self, id: i64) -> StoreResult<Approval>;
    /// The newest approved approval of `subject`, if any.
    async fn approved(&self, kind: ApprovalKind, subject: &str) -> StoreResult<Option<Approval>>;
    /// The approval of `subject` still waiting for votes, if any.
    async fn pending_approval(
        &self,
        kind: ApprovalKind,
        subject: &str,
    ) -> StoreResult<Option<Approval>>;
    /// Newest first, in `state` when given, before id `before` when given.
    async fn approvals(
        &self,
        state: Option<ApprovalState>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Approval>>;
    /// Records a vote and decides, in one transaction that holds the
    /// approval's row: of two votes at once, one decides and the other
    /// sees it decided. Refused (conflict) when decided already, when the
    /// voter is disabled, is the requester or voted already. A no rejects;
    /// enough yeses from enabled operators approve. Deciding a withdrawal
    /// releases it to the sender (approved) or fails it with its funds
    /// returned (rejected), in the same transaction; so are the entries
    /// `audit` makes of the vote.
    async fn vote(&self, vote: &Vote, audit: AuditWith<'_>) -> StoreResult<Approval>;
}
