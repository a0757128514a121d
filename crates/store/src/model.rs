//! The records the store accepts and returns, in domain types.

use chrono::{DateTime, NaiveDate, Utc};
use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{BetId, Email, RoundId, UserId, WithdrawalId};
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
    pub limits: PlayerLimits,
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deposit {
    pub id: i64,
    pub user: UserId,
    pub amount: Micros,
    pub chain_tx_hash: String,
    pub log_index: i64,
    pub credited_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWithdrawal {
    pub user: UserId,
    pub amount: Micros,
    pub address: String,
    pub now: DateTime<Utc>,
    /// The user's withdrawal limit, checked in the same transaction.
    pub cap: Option<WithdrawalCap>,
}

/// A limit on what one user withdraws over a window: their withdrawals
/// created after `after` (failed ones excepted), this one included, may
/// not exceed `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WithdrawalCap {
    pub max: Micros,
    pub after: DateTime<Utc>,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithdrawalStatus {
    Queued,
    Submitted,
    Confirmed,
    Failed,
}

impl WithdrawalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalStatus::Queued => "QUEUED",
            WithdrawalStatus::Submitted => "SUBMITTED",
            WithdrawalStatus::Confirmed => "CONFIRMED",
            WithdrawalStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Submitted, Self::Confirmed, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub id: WithdrawalId,
    pub user: UserId,
    pub amount: Micros,
    pub address: String,
    pub status: WithdrawalStatus,
    /// The chain transaction, once submitted.
    pub chain_tx_hash: Option<String>,
    /// Why it failed; the funds went back to the user.
    pub failure_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An operator's (or the chain adapter's) step for a withdrawal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithdrawalChange {
    /// QUEUED -> SUBMITTED, with the chain tx hash when known.
    Submit { chain_tx_hash: Option<String> },
    /// QUEUED or SUBMITTED -> CONFIRMED: the funds left custody.
    Confirm { chain_tx_hash: Option<String> },
    /// QUEUED or SUBMITTED -> FAILED: the funds go back to the user.
    Fail { reason: String },
}

impl WithdrawalChange {
    pub fn target(&self) -> WithdrawalStatus {
        match self {
            WithdrawalChange::Submit { .. } => WithdrawalStatus::Submitted,
            WithdrawalChange::Confirm { .. } => WithdrawalStatus::Confirmed,
            WithdrawalChange::Fail { .. } => WithdrawalStatus::Failed,
        }
    }

    /// Whether a withdrawal in `from` may take this step.
    pub fn allowed_from(&self, from: WithdrawalStatus) -> bool {
        match self {
            WithdrawalChange::Submit { .. } => from == WithdrawalStatus::Queued,
            WithdrawalChange::Confirm { .. } | WithdrawalChange::Fail { .. } => {
                matches!(from, WithdrawalStatus::Queued | WithdrawalStatus::Submitted)
            }
        }
    }
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettlementStart {
    pub outcome: Outcome,
    pub evidence: Evidence,
    pub actor: String,
    pub reason: Option<String>,
    pub now: DateTime<Utc>,
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

/// An operator's manual action, kept with who and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub reason: Option<String>,
}

/// What an idempotency key says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Idempotency {
    /// First use: the request runs, and its response is then recorded.
    New,
    /// Done before with the same request: answer this again.
    Replay { status: u16, body: String },
    /// Used before with a different request.
    Mismatch,
    /// The first request with this key is still running.
    InProgress,
}
