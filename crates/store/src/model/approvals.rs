//! Two people for what one should not do alone: a withdrawal over
//! WITHDRAWAL_APPROVAL_OVER (two treasurers) and a result by hand (a
//! second operator). An approval is requested with its subject, collects
//! votes (one per operator), and is decided once: approved when enough
//! enabled operators other than the requester said yes, rejected at the
//! first no.

use chrono::{DateTime, Utc};

/// Treasurers who must approve a held withdrawal.
pub const WITHDRAWAL_APPROVALS: i32 = 2;

/// What waits for approval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalKind {
    /// Subject: the withdrawal's id; action `send`.
    Withdrawal,
    /// Subject: the round's code; action the result (UP, DOWN, VOID).
    Settlement,
}

impl ApprovalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalKind::Withdrawal => "withdrawal",
            ApprovalKind::Settlement => "settlement",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ApprovalKind::Withdrawal, ApprovalKind::Settlement]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApprovalState {
    Pending,
    Approved,
    Rejected,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ApprovalState::Pending,
            ApprovalState::Approved,
            ApprovalState::Rejected,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    pub id: i64,
    pub kind: ApprovalKind,
    pub subject: String,
    pub action: String,
    pub reason: Option<String>,
    /// An operator's email, or `player:<id>` for a player's withdrawal.
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// Approvals needed from enabled operators other than the requester.
    pub needed: i32,
    pub state: ApprovalState,
    pub decided_at: Option<DateTime<Utc>>,
    /// Oldest first.
    pub votes: Vec<ApprovalVote>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalVote {
    /// The operator's email.
    pub operator: String,
    pub approve: bool,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// An approval to request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApproval {
    pub kind: ApprovalKind,
    pub subject: String,
    pub action: String,
    pub reason: Option<String>,
    pub requested_by: String,
    pub needed: i32,
    pub now: DateTime<Utc>,
}

/// An operator's vote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    pub approval: i64,
    /// The voter's operator id: enabled, and not the requester.
    pub operator: i64,
    pub approve: bool,
    pub reason: Option<String>,
    pub now: DateTime<Utc>,
}
