//! The chain-sender port: hands withdrawals to the chain and tells where
//! each stands. The withdrawal's id is the request id toward the chain, so
//! sending the same withdrawal again (after a crash between sending and
//! recording) finds the first transfer instead of making a second one:
//! every implementation must keep that promise.
//!
//! `mock` simulates a chain that accepts and confirms every transfer (for
//! development and tests). `manual` has no sender: an operator sends and
//! records the outcome with `updown withdrawals`. Deposit addresses are
//! derived in `updown_domain::wallet`; deposits arrive by webhook or are
//! read from the chain by the watcher (`services/watcher.rs`) through
//! [`evm`], an EVM node's JSON-RPC.

pub mod evm;
pub mod hot_wallet;
mod mock;

use async_trait::async_trait;
use updown_domain::ids::WithdrawalId;
use updown_domain::Micros;

pub use mock::MockChain;

/// One transfer asked of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// The withdrawal's id: the idempotency key toward the chain.
    pub request_id: WithdrawalId,
    /// EIP-55 address.
    pub to: String,
    pub amount: Micros,
}

/// Where a transfer stands on the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferState {
    /// The chain has never seen this request id.
    Unknown,
    /// Sent, not final yet.
    Pending {
        tx_hash: String,
    },
    Confirmed {
        tx_hash: String,
    },
    /// Final and failed: nothing left the custody wallet.
    Failed {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("chain sender: {0}")]
pub struct ChainError(pub String);

#[async_trait]
pub trait ChainSender: Send + Sync + 'static {
    /// A short name, recorded as the actor of the withdrawal's steps.
    fn name(&self) -> String;

    /// Sends `transfer`, or finds it when its request id was sent before.
    async fn send(&self, transfer: &Transfer) -> Result<TransferState, ChainError>;

    /// Where the transfer with `request_id` stands.
    async fn status(&self, request_id: WithdrawalId) -> Result<TransferState, ChainError>;
}
