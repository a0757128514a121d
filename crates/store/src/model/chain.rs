//! The chain watcher's records: its cursor, the hashes of the blocks it
//! scanned, the credits of a scanned range, pending deposits, reorgs and
//! custody checks.

use chrono::{DateTime, Utc};
use updown_domain::ids::UserId;
use updown_domain::Micros;

use super::Deposit;

/// Where the watcher is, for one chain and token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCursor {
    pub chain_id: i64,
    /// Lower-case hex with 0x.
    pub token: String,
    /// The first block not scanned yet.
    pub next_block: i64,
    pub updated_at: DateTime<Utc>,
}

/// A scanned block: its number and hash, and its parent's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedBlock {
    pub number: i64,
    pub hash: String,
    pub parent_hash: String,
}

/// A confirmed transfer to a user's deposit address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainCredit {
    pub user: UserId,
    pub amount: Micros,
    /// Lower-case 0x and 64 hex digits.
    pub tx_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub block_hash: String,
}

/// One scanned range, committed at once: its credits, the hashes of its
/// last blocks, and the cursor moved from `from` to `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedRange {
    /// The cursor as the watcher read it; the commit fails with a
    /// conflict if it moved meanwhile.
    pub from: i64,
    /// The new cursor: the first block after the range.
    pub to: i64,
    pub blocks: Vec<ScannedBlock>,
    pub credits: Vec<ChainCredit>,
    /// Block hashes below this number are forgotten.
    pub keep_blocks_from: i64,
    pub now: DateTime<Utc>,
}

/// What a committed range did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeCommitted {
    /// The deposits it credited.
    pub credited: Vec<Deposit>,
    /// Transfers already credited (by the webhook, or before a crash).
    pub already_credited: usize,
}

/// A transfer seen in a block without enough confirmations yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingDeposit {
    pub tx_hash: String,
    pub log_index: i64,
    pub user: UserId,
    pub amount: Micros,
    pub block_number: i64,
    pub confirmations: i64,
    pub seen_at: DateTime<Utc>,
}

/// A reorg found deeper than the confirmations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReorg {
    /// The lowest scanned block whose hash the node no longer gives.
    pub fork_block: i64,
    /// Scanned blocks that changed.
    pub depth: i64,
    pub old_hash: String,
    pub new_hash: String,
    pub detected_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reorg {
    pub id: i64,
    pub detected_at: DateTime<Utc>,
    pub fork_block: i64,
    pub depth: i64,
    pub old_hash: String,
    pub new_hash: String,
    /// What was credited from the blocks that changed: one
    /// `deposit <id> user <id> <amount> <tx>:<log> block <n>` per line.
    pub affected: String,
    pub acked_at: Option<DateTime<Utc>>,
    pub acked_by: Option<String>,
    pub ack_reason: Option<String>,
}

/// How the chain's balances compare with the ledger's custody account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustodyStatus {
    Equal,
    /// The chain holds more (unknown transfers, dust, deposits not yet
    /// credited).
    Surplus,
    /// The chain holds less than the ledger owes: an alert.
    Shortfall,
}

impl CustodyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CustodyStatus::Equal => "equal",
            CustodyStatus::Surplus => "surplus",
            CustodyStatus::Shortfall => "shortfall",
        }
    }

    pub fn parse(text: &str) -> Option<CustodyStatus> {
        [
            CustodyStatus::Equal,
            CustodyStatus::Surplus,
            CustodyStatus::Shortfall,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One custody reconciliation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustodyCheck {
    pub id: i64,
    pub checked_at: DateTime<Utc>,
    pub block_number: i64,
    pub addresses: i64,
    /// The sum of the token balances read, in micro-USDC (a decimal: it
    /// may exceed i64).
    pub chain_total: String,
    pub ledger_total: i64,
    pub status: CustodyStatus,
}
