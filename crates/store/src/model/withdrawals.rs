//! Withdrawals: where each stands, and the steps allowed from there.

use chrono::{DateTime, Utc};
use updown_domain::ids::{UserId, WithdrawalId};
use updown_domain::Micros;

/// Where a withdrawal stands. QUEUED: nothing has left; SUBMITTING: the
/// worker claimed it and may be sending it; SUBMITTED: sent, with its
/// transaction hash; CONFIRMED: the funds left custody; FAILED: the funds
/// went back to the player.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WithdrawalStatus {
    Queued,
    Submitting,
    Submitted,
    Confirmed,
    Failed,
}

impl WithdrawalStatus {
    pub const ALL: [WithdrawalStatus; 5] = [
        Self::Queued,
        Self::Submitting,
        Self::Submitted,
        Self::Confirmed,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WithdrawalStatus::Queued => "QUEUED",
            WithdrawalStatus::Submitting => "SUBMITTING",
            WithdrawalStatus::Submitted => "SUBMITTED",
            WithdrawalStatus::Confirmed => "CONFIRMED",
            WithdrawalStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the transfer may have reached the chain: from here on only
    /// the chain's word can fail it.
    pub fn may_be_on_chain(self) -> bool {
        matches!(self, Self::Submitting | Self::Submitted)
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
    /// QUEUED but held: over WITHDRAWAL_APPROVAL_OVER, it waits for two
    /// treasurers' approval before anything may send it.
    pub awaiting_approval: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An operator's (or the chain adapter's) step for a withdrawal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithdrawalChange {
    /// QUEUED -> SUBMITTING: the worker claims it, before anything is sent.
    Claim,
    /// QUEUED or SUBMITTING -> SUBMITTED, with the chain tx hash when known.
    Submit { chain_tx_hash: Option<String> },
    /// QUEUED, SUBMITTING or SUBMITTED -> CONFIRMED: the funds left custody.
    Confirm { chain_tx_hash: Option<String> },
    /// -> FAILED: the funds go back to the user. From QUEUED at any time
    /// (nothing is in flight); once it may be on the chain, only with the
    /// chain's word.
    Fail {
        reason: String,
        rejection: Option<ChainRejection>,
    },
}

/// Who says the chain rejected a withdrawal that may have reached it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainRejection {
    /// The chain sender's own final answer for the withdrawal.
    Sender,
    /// An operator states that the chain rejected this transaction; it must
    /// be the one recorded, when one is.
    Operator { tx_hash: String },
}

impl WithdrawalChange {
    pub fn target(&self) -> WithdrawalStatus {
        match self {
            WithdrawalChange::Claim => WithdrawalStatus::Submitting,
            WithdrawalChange::Submit { .. } => WithdrawalStatus::Submitted,
            WithdrawalChange::Confirm { .. } => WithdrawalStatus::Confirmed,
            WithdrawalChange::Fail { .. } => WithdrawalStatus::Failed,
        }
    }

    /// Whether a withdrawal may take this step, or why not.
    pub fn check(&self, current: &Withdrawal) -> Result<(), String> {
        use WithdrawalStatus::*;
        let from = current.status;
        if current.awaiting_approval && !matches!(self, WithdrawalChange::Fail { .. }) {
            return Err(format!(
                "withdrawal {} waits for two treasurers' approval (GET /admin/approvals): nothing may send or \
                 confirm it before",
                current.id
            ));
        }
        let allowed = match self {
            WithdrawalChange::Claim => from == Queued,
            WithdrawalChange::Submit { .. } => matches!(from, Queued | Submitting),
            WithdrawalChange::Confirm { .. } => matches!(from, Queued | Submitting | Submitted),
            WithdrawalChange::Fail { rejection, .. } => match (from, rejection) {
                (Queued, _) => true,
                (Submitting | Submitted, Some(ChainRejection::Sender)) => true,
                // Claimed by the worker, perhaps being sent right now, with
                // no transaction known: only the sender can tell.
                (Submitting, Some(ChainRejection::Operator { .. })) => {
                    return Err(format!(
                        "withdrawal {} is SUBMITTING: the worker may be sending it; only the chain sender's answer can fail it",
                        current.id
                    ))
                }
                (Submitted, Some(ChainRejection::Operator { tx_hash })) => match &current.chain_tx_hash {
                    Some(recorded) if !recorded.eq_ignore_ascii_case(tx_hash) => {
                        return Err(format!(
                            "withdrawal {} was sent as {recorded}, not {tx_hash}; only the chain's word about that transaction can fail it",
                            current.id
                        ))
                    }
                    // Recorded as sent by an operator with no hash: theirs to name.
                    _ => true,
                },
                (Submitting | Submitted, None) => {
                    return Err(format!(
                        "withdrawal {} is {} and may have reached the chain: it can fail only on the chain's word \
                         (give the rejected transaction's hash)",
                        current.id,
                        from.as_str()
                    ))
                }
                (Confirmed | Failed, _) => false,
            },
        };
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "withdrawal {} is {}; it cannot become {}",
                current.id,
                from.as_str(),
                self.target().as_str()
            ))
        }
    }
}
