//! The hot wallet's sending: each signed transaction, stored before it is
//! broadcast, and where it stands.

use chrono::{DateTime, Utc};
use updown_domain::ids::{UserId, WithdrawalId};
use updown_domain::Micros;

/// Who sends, on which chain: the key of a nonce sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sender {
    pub chain_id: i64,
    /// Lower-case hex with 0x.
    pub address: String,
}

/// A transaction as signed, before it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// Lower-case 0x and 64 hex digits.
    pub tx_hash: String,
    /// The EIP-2718 encoding, 0x hex: what is broadcast, as it is.
    pub raw_tx: String,
    /// Wei, as decimal text.
    pub max_fee_per_gas: String,
    pub max_priority_fee_per_gas: String,
}

/// Where one signed transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendState {
    /// Stored, perhaps broadcast, not seen mined.
    Sent,
    /// Mined with success.
    Mined,
    /// Mined and reverted: nothing moved but gas.
    Reverted,
    /// Another transaction with its nonce was mined.
    Replaced,
}

impl SendState {
    pub const ALL: [SendState; 4] = [Self::Sent, Self::Mined, Self::Reverted, Self::Replaced];

    pub fn as_str(self) -> &'static str {
        match self {
            SendState::Sent => "sent",
            SendState::Mined => "mined",
            SendState::Reverted => "reverted",
            SendState::Replaced => "replaced",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One signed transaction of the hot wallet, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSend {
    pub id: i64,
    pub chain_id: i64,
    pub sender: String,
    pub nonce: i64,
    /// What it moves: a withdrawal's payment, or a sweep's step (exactly
    /// one of the two).
    pub withdrawal: Option<WithdrawalId>,
    pub sweep: Option<i64>,
    pub signed: SignedTx,
    pub state: SendState,
    pub signed_at: DateTime<Utc>,
    /// The last time it was handed to the node.
    pub broadcast_at: Option<DateTime<Utc>>,
    pub mined_block: Option<i64>,
    pub mined_block_hash: Option<String>,
}

/// A send seen in a block with enough confirmations: the withdrawal ends
/// with it, confirmed (success) or failed and refunded (reverted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinedSend {
    pub send_id: i64,
    pub block: i64,
    pub block_hash: String,
    pub success: bool,
    /// Why it failed, when it reverted.
    pub reason: Option<String>,
    pub now: DateTime<Utc>,
}

/// Where a sweep stands: SUBMITTED (signed and stored, perhaps on the
/// chain), CONFIRMED (moved and booked), FAILED (reverted: nothing moved).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SweepStatus {
    Submitted,
    Confirmed,
    Failed,
}

impl SweepStatus {
    pub const ALL: [SweepStatus; 3] = [Self::Submitted, Self::Confirmed, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            SweepStatus::Submitted => "SUBMITTED",
            SweepStatus::Confirmed => "CONFIRMED",
            SweepStatus::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One deposit address's tokens on their way into the hot wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    pub id: i64,
    pub chain_id: i64,
    /// The owner of the deposit address.
    pub user: UserId,
    pub deposit_address: String,
    pub hot_wallet: String,
    pub amount: Micros,
    pub status: SweepStatus,
    /// Why it failed.
    pub reason: Option<String>,
    /// The ledger's sweep transaction, once CONFIRMED.
    pub ledger_tx: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A sweep about to be signed: `amount` from `deposit_address` (the
/// user's) into `hot_wallet`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSweep {
    pub chain_id: i64,
    pub user: UserId,
    pub deposit_address: String,
    pub hot_wallet: String,
    pub amount: Micros,
}

/// A sweep's two transactions seen with their confirmations: the permit
/// (the lower nonce) and the transferFrom. The sweep is CONFIRMED and
/// booked when the transferFrom succeeded, FAILED (with `reason`) if not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinedSweep {
    pub sweep_id: i64,
    pub permit: MinedSend,
    pub transfer: MinedSend,
}
