//! The records the store accepts and returns, in domain types.

mod approvals;
mod chain;
mod sending;
mod withdrawals;

pub use approvals::*;
pub use chain::*;
pub use sending::*;
pub use withdrawals::*;

use chrono::{DateTime, NaiveDate, Utc};
use updown_domain::admission::{LimitSettings, PendingLimits, PlayerLimits};
use updown_domain::ids::{BetId, Email, RoundId, UserId};
use updown_domain::payout::PayoutPlan;
use updown_domain::round::{Outcome, Price, RoundStatus, RoundTerms, Side};
use updown_domain::Micros;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    /// 0 for the first user created, 1 for the next: the HD wallet index.
    pub sequence: i64,
    pub created_at: DateTime<Utc>,
    /// The limits set (a raise may be waiting in `pending_limits`).
    pub limits: PlayerLimits,
    pub pending_limits: Option<PendingLimits>,
}

impl User {
    pub fn limit_settings(&self) -> LimitSettings {
        LimitSettings {
            set: self.limits,
            pending: self.pending_limits,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSummary {
    pub user: User,
    pub balance: Micros,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDeposit {
    pub user: UserId,
    pub amount: Micros,
    pub chain_tx_hash: String,
    pub log_index: i64,
    pub now: DateTime<Utc>,
    /// Recorded with the credit, in its transaction.
    pub key: Option<Keyed<Deposit>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    pub id: i64,
    pub user: UserId,
    pub amount: Micros,
    pub chain_tx_hash: String,
    pub log_index: i64,
    pub credited_at: DateTime<Utc>,
    /// The user's balance right after this credit (known when credited).
    pub balance_after: Option<Micros>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWithdrawal {
    pub user: UserId,
    pub amount: Micros,
    pub address: String,
    pub now: DateTime<Utc>,
    /// The user's withdrawal limit, checked in the same transaction.
    pub cap: Option<WithdrawalCap>,
    /// Recorded with the request, in its transaction.
    pub key: Option<Keyed<Withdrawal>>,
}

/// A limit on what one user withdraws over a window: their withdrawals
/// created after `after` (failed ones excepted), this one included, may
/// not exceed `max`; over `approval_over`, this one is held for two
/// approvals (requested in the same transaction).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WithdrawalCap {
    pub max: Micros,
    pub after: DateTime<Utc>,
    pub approval_over: Option<Micros>,
}

/// What became of one deposit notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositOutcome {
    /// This notification credited the transfer.
    Credited,
    /// The transfer was credited before (a retry, a replay, a later
    /// confirmation count).
    Duplicate,
    /// Too few confirmations yet; a later notification credits it.
    Pending,
    /// Refused; the notification's `reason` says why.
    Refused,
}

impl DepositOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DepositOutcome::Credited => "credited",
            DepositOutcome::Duplicate => "duplicate",
            DepositOutcome::Pending => "pending",
            DepositOutcome::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            DepositOutcome::Credited,
            DepositOutcome::Duplicate,
            DepositOutcome::Pending,
            DepositOutcome::Refused,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == text)
    }
}

/// One notification from the deposit provider, as recorded. Fields the
/// sender left out or got wrong are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DepositNotification {
    /// Set by the store (`None` in a notification to record).
    pub id: Option<i64>,
    pub received_at: Option<DateTime<Utc>>,
    pub outcome: Option<DepositOutcome>,
    pub reason: Option<String>,
    pub chain: Option<String>,
    pub token: Option<String>,
    pub tx_hash: Option<String>,
    pub log_index: Option<i64>,
    pub to_address: Option<String>,
    pub amount: Option<i64>,
    pub confirmations: Option<i64>,
    pub user: Option<UserId>,
}

/// One line of a player's statement: a ledger entry on their account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub tx_id: i64,
    pub kind: updown_domain::ledger::TxKind,
    pub at: DateTime<Utc>,
    /// Signed: positive credits the player, negative debits.
    pub amount: i64,
    /// The player's balance right after this line.
    pub balance_after: i64,
    pub round: Option<updown_domain::ids::RoundCode>,
    pub bet: Option<BetId>,
    pub reference: Option<String>,
}

/// An API key as its owner sees it later: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A round to open: its terms (fixed from now on) and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRound {
    pub terms: RoundTerms,
    pub now: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub id: RoundId,
    pub terms: RoundTerms,
    pub terms_digest: String,
    pub status: RoundStatus,
    pub opened_at: DateTime<Utc>,
    pub locked_at: Option<DateTime<Utc>>,
    /// Present from the moment settlement begins.
    pub settlement: Option<SettlementRecord>,
    /// The oracle's result published ahead of its payouts (with
    /// `SETTLE_DISPUTE_MIN`).
    pub published: Option<PublishedResult>,
}

/// A result published before it is paid, when, and from when it is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedResult {
    pub outcome: Outcome,
    pub at: DateTime<Utc>,
    pub payouts_at: DateTime<Utc>,
}

impl Round {
    pub fn clock(&self) -> updown_domain::round::RoundClock {
        updown_domain::round::RoundClock {
            code: self.terms.code,
            status: self.status,
            open_at: self.terms.open_at,
            lock_at: self.terms.lock_at,
            close_at: self.terms.close_at,
            settle_at: self.terms.settle_at,
            locked_at: self.locked_at,
            settling: self.settlement.is_some(),
        }
    }
}

/// What settlement decided and how far it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementRecord {
    pub plan: PayoutPlan,
    pub evidence: Evidence,
    pub actor: String,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
    /// The last bet id paid; bets after it are still to pay.
    pub cursor: i64,
    pub finished_at: Option<DateTime<Utc>>,
    pub dust: Option<Micros>,
}

/// The closes an outcome rests on; empty for a manual or void result
/// without prices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub close: Option<PriceRecord>,
    pub previous_close: Option<PriceRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceRecord {
    pub market: updown_domain::ids::Market,
    pub date: NaiveDate,
    pub close: Price,
    pub source: String,
    pub fetched_at: DateTime<Utc>,
}

/// One source's answer when a close was asked for: the proof behind a
/// recorded close, shown with the rounds that settled on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceAnswer {
    /// The source's name (`provider:host`, `csv:path`...).
    pub source: String,
    /// Its close, if it gave one.
    pub close: Option<Price>,
    /// Why it gave none, when it failed (a source without data yet has
    /// neither a close nor an error).
    pub error: Option<String>,
    pub answered_at: DateTime<Utc>,
    /// Whether its close was among those that agreed.
    pub agreed: bool,
}

/// What an oracle's sources did that operators must look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncidentKind {
    /// They disagreed beyond the spread: the round waits.
    Disagreement,
    /// One gave another close for a date already recorded.
    Revision,
}

impl IncidentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Disagreement => "disagreement",
            IncidentKind::Revision => "revision",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OracleIncident {
    pub market: updown_domain::ids::Market,
    pub date: NaiveDate,
    pub kind: IncidentKind,
    /// What was seen, e.g. each source's close.
    pub detail: String,
    /// When it was first seen.
    pub at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementStart {
    pub outcome: Outcome,
    pub evidence: Evidence,
    pub actor: String,
    pub reason: Option<String>,
    pub now: DateTime<Utc>,
    /// Who decided a result by hand, appended to the audit log in the
    /// transaction that begins the settlement (not when a settlement begun
    /// before resumes): no crash leaves the result without its entry.
    pub audit: Option<AuditEntry>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pools {
    pub up: Micros,
    pub down: Micros,
    pub bets_up: i64,
    pub bets_down: i64,
}

impl Pools {
    pub fn of(&self, side: Side) -> Micros {
        match side {
            Side::Up => self.up,
            Side::Down => self.down,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BetRequest {
    pub user: UserId,
    pub side: Side,
    pub stake: Micros,
    pub received_at: DateTime<Utc>,
    /// Recorded with the bet, in its transaction.
    pub key: Option<Keyed<Bet>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetStatus {
    Active,
    Cancelled,
}

impl BetStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BetStatus::Active => "ACTIVE",
            BetStatus::Cancelled => "CANCELLED",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bet {
    pub id: BetId,
    pub round: RoundId,
    pub user: UserId,
    pub side: Side,
    pub stake: Micros,
    pub status: BetStatus,
    pub placed_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Total value locked and its parts, in micro-USDC.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tvl {
    /// Players' money: user balances + open/locked pools + pending
    /// withdrawals.
    pub total: i64,
    pub user_balances: i64,
    pub round_pools: i64,
    pub withdrawals_pending: i64,
    /// The house's own money (fees and rounding dust), outside TVL.
    pub house_fees: i64,
    pub house_rounding: i64,
    /// Minus the chain account: everything that came in and has not gone
    /// out, i.e. TVL plus the house's money.
    pub custody: i64,
}

/// One invariant `verify` checks, and what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
    pub transactions: i64,
    pub entries: i64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.passed).collect()
    }

    pub(crate) fn check(&mut self, name: &'static str, bad: i64, what: &str) {
        self.checks.push(Check {
            name,
            passed: bad == 0,
            detail: if bad == 0 {
                "ok".to_string()
            } else {
                format!("{bad} {what}")
            },
        });
    }
}

/// A checkpoint of the ledger: every transaction up to `through_tx` was
/// checked, and the account totals up to it are stored
/// ([`updown_domain::checkpoint`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub id: i64,
    pub through_tx: i64,
    /// Transactions and entries up to `through_tx`.
    pub transactions: i64,
    pub entries: i64,
    pub balances_digest: i64,
    /// Rounds not settled or void at the checkpoint, ascending, and the
    /// last round then.
    pub unsettled_rounds: Vec<i64>,
    pub last_round: i64,
    pub prev_hash: String,
    pub hash: String,
    pub created_at: DateTime<Utc>,
}

/// What an incremental verify checked and the checkpoint it left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncrementalVerify {
    pub report: VerifyReport,
    /// Where it started: `None` from the ledger's first transaction.
    pub from: Option<Checkpoint>,
    /// The checkpoint written after it passed; `None` when it failed, found
    /// nothing new to vouch for, or another verifier extended `from` first.
    pub written: Option<Checkpoint>,
    /// Transactions after `from` that this run checked.
    pub checked_transactions: i64,
}

impl IncrementalVerify {
    /// The checkpoint that stands now, as far as this run knows.
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.written.as_ref().or(self.from.as_ref())
    }
}

/// An operator's manual action, kept with who and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Set by the store (0 in an entry to record).
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: Option<String>,
    /// The credential the operator used: `session:<id>`, `token:<id>` or
    /// `break-glass`; `None` for the scheduler, the CLI, older rows.
    pub credential: Option<String>,
    /// The client's address, for an action over HTTP.
    pub client: Option<String>,
    /// The request's `x-request-id`, for an action over HTTP.
    pub request_id: Option<String>,
    /// Its place in the hash chain: set by the store on what it reads,
    /// `None` in an entry to record (and on rows from before the chain
    /// until the next entry chains them).
    pub chain: Option<AuditLink>,
}

/// An audit row's links: the previous row's hash and its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLink {
    pub prev_hash: String,
    pub hash: String,
}

/// What `updown audit verify` found: the rows checked, the head (the last
/// id and hash, as `audit_head` keeps it), and the first break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditChain {
    pub rows: i64,
    pub head_id: i64,
    pub head_hash: String,
    /// The first row (id) where the chain does not hold, and why.
    pub broken: Option<(i64, String)>,
}

/// An `Idempotency-Key`, written in the same transaction as the effect of
/// the request that carried it, together with the answer that request
/// got: a retry finds it and is answered from it, so no crash, timeout or
/// lost acknowledgement can make the same key act twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestKey {
    /// Whose key it is: the account, not the credential (`user:7`,
    /// `operator:admin`), so a retry after rotating a key still finds it.
    pub scope: String,
    pub key: String,
    /// SHA-256 of the request (method, path, body): the same key with
    /// another request is refused.
    pub request_hash: String,
    pub at: DateTime<Utc>,
}

/// The answer kept with a key: an HTTP status and its JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptAnswer {
    pub status: u16,
    pub body: String,
}

/// A key as recorded: the request it came with and the answer it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub request_hash: String,
    pub answer: KeptAnswer,
    pub at: DateTime<Utc>,
}

/// A key, and how to answer from the effect's result `T` (computed inside
/// the effect's transaction, so the answer commits with it).
#[derive(Clone)]
pub struct Keyed<T> {
    pub key: RequestKey,
    pub answer: std::sync::Arc<dyn Fn(&T) -> KeptAnswer + Send + Sync>,
}

impl<T> Keyed<T> {
    pub fn new(key: RequestKey, answer: impl Fn(&T) -> KeptAnswer + Send + Sync + 'static) -> Self {
        Keyed {
            key,
            answer: std::sync::Arc::new(answer),
        }
    }
}

impl<T> std::fmt::Debug for Keyed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyed")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl<T> PartialEq for Keyed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<T> Eq for Keyed<T> {}

/// What a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub idempotency_keys: u64,
    pub deposit_notifications: u64,
}

/// An operator: a person with a role (see `updown_domain::operator`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub id: i64,
    pub email: Email,
    pub role: updown_domain::operator::Role,
    /// argon2id PHC string; `None` until one is set.
    pub password_hash: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Disabled operators sign in to nothing and their tokens are revoked.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The TOTP secret (hex) once set up; without one, the password alone
    /// signs in.
    pub totp_secret: Option<String>,
    /// A secret being set up, until a first code from it confirms it.
    pub totp_pending: Option<String>,
    /// The newest TOTP step used: no code of it, or of an earlier step,
    /// works again.
    pub totp_last_step: Option<i64>,
    /// Wrong passwords or codes since the last sign-in or lock.
    pub failed_sign_ins: i32,
    /// Sign-in is refused until then.
    pub locked_until: Option<DateTime<Utc>>,
}

/// An operator's personal token, as listed (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorToken {
    pub id: i64,
    pub operator: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}
