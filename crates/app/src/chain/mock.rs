//! A simulated chain: every transfer is accepted, shows as pending once,
//! then confirmed. Transfers to the address it is told to refuse fail, to
//! exercise the refund path. Transaction hashes are derived from the
//! request id, so a restarted mock gives the same hash again.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use updown_domain::ids::WithdrawalId;

use super::{ChainError, ChainSender, Transfer, TransferState};

#[derive(Default)]
pub struct MockChain {
    transfers: Mutex<HashMap<WithdrawalId, Sent>>,
    refuse: Option<String>,
}

struct Sent {
    transfer: Transfer,
    /// Status checks so far; the first says pending, later ones confirmed.
    checks: u32,
}

impl MockChain {
    /// A mock that fails every transfer to `address` (EIP-55).
    pub fn refusing(address: &str) -> MockChain {
        MockChain {
            refuse: Some(address.to_string()),
            ..MockChain::default()
        }
    }

    /// How many distinct transfers were made (a repeated request id is
    /// not a new one).
    pub fn transfers_made(&self) -> usize {
        self.transfers.lock().expect("mock chain").len()
    }

    fn tx_hash(request_id: WithdrawalId) -> String {
        let digest = Sha256::digest(format!("mock-chain:{request_id}"));
        let hex = hex::encode(digest);
        format!("0x{hex}")
    }
}

#[async_trait]
impl ChainSender for MockChain {
    fn name(&self) -> String {
        "chain:mock".into()
    }

    async fn send(&self, transfer: &Transfer) -> Result<TransferState, ChainError> {
        if self.refuse.as_deref() == Some(transfer.to.as_str()) {
            return Ok(TransferState::Failed {
                reason: format!("the chain refused the transfer to {}", transfer.to),
            });
        }
        let mut transfers = self.transfers.lock().expect("mock chain");
        let sent = transfers
            .entry(transfer.request_id)
            .or_insert_with(|| Sent {
                transfer: transfer.clone(),
                checks: 0,
            });
        if sent.transfer != *transfer {
            return Err(ChainError(format!(
                "request {} was sent before with other terms",
                transfer.request_id
            )));
        }
        Ok(TransferState::Pending {
            tx_hash: Self::tx_hash(transfer.request_id),
        })
    }

    async fn status(&self, request_id: WithdrawalId) -> Result<TransferState, ChainError> {
        let mut transfers = self.transfers.lock().expect("mock chain");
        let Some(sent) = transfers.get_mut(&request_id) else {
            return Ok(TransferState::Unknown);
        };
        sent.checks += 1;
        let tx_hash = Self::tx_hash(request_id);
        Ok(if sent.checks > 1 {
            TransferState::Confirmed { tx_hash }
        } else {
            TransferState::Pending { tx_hash }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use updown_domain::Micros;

    fn transfer(id: i64) -> Transfer {
        Transfer {
            request_id: WithdrawalId(id),
            to: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
            amount: Micros::new(5).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_request_id_sent_twice_is_one_transfer() {
        let chain = MockChain::default();
        let first = chain.send(&transfer(1)).await.unwrap();
        assert_eq!(chain.send(&transfer(1)).await.unwrap(), first);
        assert_eq!(chain.transfers_made(), 1);
        let mut other_terms = transfer(1);
        other_terms.amount = Micros::new(6).unwrap();
        assert!(chain.send(&other_terms).await.is_err());
        chain.send(&transfer(2)).await.unwrap();
        assert_eq!(chain.transfers_made(), 2);
    }

    #[tokio::test]
    async fn transfers_confirm_after_showing_pending_once() {
        let chain = MockChain::default();
        assert_eq!(
            chain.status(WithdrawalId(1)).await.unwrap(),
            TransferState::Unknown
        );
        chain.send(&transfer(1)).await.unwrap();
        assert!(matches!(
            chain.status(WithdrawalId(1)).await.unwrap(),
            TransferState::Pending { .. }
        ));
        assert!(matches!(
            chain.status(WithdrawalId(1)).await.unwrap(),
            TransferState::Confirmed { .. }
        ));
    }
}
