//! Custody reconciliation: the deposit token's balances on the chain (the
//! hot wallet's and every deposit address's), all read at one block,
//! against the ledger's custody account (everything credited in and not
//! confirmed out). Less on the chain than the ledger owes is a shortfall:
//! an alert (metric, event, log, /health degraded, the console). More is
//! a surplus, reported: transfers nobody credited (not yet confirmed,
//! unknown senders, dust).
//!
//! The block is the last one the watcher scanned when it runs (so every
//! confirmed transfer is both on the chain and in the ledger), otherwise
//! the head less the confirmations. Addresses are read in pages from the
//! store and in batched JSON-RPC requests, a few in flight.

use alloy::primitives::{Address, U256};
use serde_json::json;
use updown_domain::ids::UserId;
use updown_store::{CustodyCheck, CustodyStatus};

use super::App;
use crate::chain::evm::{evm_address, EvmRpc};
use crate::error::{AppError, AppResult};
use crate::events::EventKind;

/// Deposit addresses read from the store per page.
const ADDRESS_PAGE: i64 = 5_000;

/// What one reconciliation found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reconciliation {
    pub block: u64,
    pub addresses: u64,
    /// Micro-USDC held on the chain (decimal text: it may exceed 64 bits).
    pub chain_total: String,
    /// Micro-USDC the ledger says is in custody.
    pub ledger_total: i64,
    /// chain - ledger (negative: a shortfall), decimal text.
    pub difference: String,
    pub status: &'static str,
    pub check_id: i64,
    /// Each custody place on its own: the deposit addresses together, and
    /// the hot wallet (when HOT_WALLET_ADDRESS is known). A sweep moves
    /// tokens between them and the ledger books the same move.
    pub places: Vec<Place>,
}

/// One custody place: what the chain holds there and what the ledger
/// says it should, counting transfers mined and not yet confirmed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Place {
    pub place: &'static str,
    /// Decimal text: it may exceed 64 bits.
    pub chain: String,
    pub ledger: i64,
    /// chain - ledger, decimal text.
    pub difference: String,
}

impl Place {
    fn new(place: &'static str, chain: U256, ledger: i64) -> Place {
        Place {
            place,
            chain: chain.to_string(),
            ledger,
            difference: signed_difference(chain, ledger),
        }
    }
}

/// `chain - ledger` as decimal text, whatever their signs and sizes.
fn signed_difference(chain: U256, ledger: i64) -> String {
    if ledger < 0 {
        return chain
            .saturating_add(U256::from(ledger.unsigned_abs()))
            .to_string();
    }
    let ledger = U256::from(ledger as u64);
    if chain >= ledger {
        (chain - ledger).to_string()
    } else {
        format!("-{}", ledger - chain)
    }
}

impl App {
    /// The node reconciliation reads: the watcher's, or one made from the
    /// configuration (EVM_RPC_URL) for the CLI.
    pub(super) fn custody_rpc(&self) -> AppResult<EvmRpc> {
        if let Some(watch) = &self.watch {
            return Ok(watch.rpc.clone());
        }
        let evm = &self.config.chain.evm;
        let url = evm.rpc_url.as_ref().ok_or_else(|| {
            AppError::Invalid("reconciling custody needs the chain: set EVM_RPC_URL".into())
        })?;
        EvmRpc::connect(url.expose(), evm.rpc_timeout).map_err(|e| AppError::Invalid(e.to_string()))
    }

    /// The block whose balances count: the last the watcher scanned when
    /// deposits come from the chain (every confirmed transfer is in the
    /// ledger by then), never past the head less the confirmations.
    pub(super) async fn settled_block(&self, rpc: &EvmRpc) -> AppResult<u64> {
        let head = rpc.head().await?;
        let confirmed = head.saturating_sub(u64::from(
            self.config.chain.min_confirmations.saturating_sub(1),
        ));
        let from_chain = self.config.chain.deposit_source == crate::config::DepositSource::Evm;
        Ok(match self.store.read_chain_cursor().await? {
            // The watcher's last block, wherever it runs (this process or
            // serve): a lagging watcher's block is the lesser one.
            Some(cursor) if from_chain && cursor.next_block > 0 => {
                u64::try_from(cursor.next_block - 1)
                    .unwrap_or(0)
                    .min(confirmed)
            }
            _ => confirmed,
        })
    }

    /// Reads every balance at one block and compares; records the check.
    pub async fn reconcile(&self) -> AppResult<Reconciliation> {
        let rpc = self.custody_rpc()?;
        let token = evm_address(&self.config.chain.deposit_token);
        let block = self.settled_block(&rpc).await?;
        let mut owners: Vec<Address> = Vec::new();
        let hot_wallet = self.config.chain.evm.hot_wallet.as_ref().map(evm_address);
        owners.extend(hot_wallet);
        let mut after: Option<UserId> = None;
        loop {
            let page = self.store.deposit_addresses(after, ADDRESS_PAGE).await?;
            for (_, address) in &page {
                owners.push(address.parse().map_err(|e| {
                    AppError::Internal(anyhow::anyhow!("a stored deposit address {address}: {e}"))
                })?);
            }
            match page.last() {
                Some((user, _)) if page.len() as i64 == ADDRESS_PAGE => after = Some(*user),
                _ => break,
            }
        }
        let balances = rpc.balances(token, &owners, block).await?;
        let chain_total = balances
            .iter()
            .fold(U256::ZERO, |sum, b| sum.saturating_add(*b));
        // Transfers mined but not yet confirmed have left the chain's
        // balances; the ledger lets them go at their confirmation.
        let leaving = self.mined_unconfirmed(&rpc, block).await?;
        // Swept on the chain, not yet booked: in the hot wallet already.
        let (swept_later, paid_later) = self
            .store
            .booked_after(i64::try_from(block).unwrap_or(i64::MAX))
            .await?;
        // Swept on the chain and not booked yet, less booked and not on
        // the chain yet at `block`: in the hot wallet already.
        let moving = self.swept_unbooked(block).await? - swept_later;
        // Paid by the hot wallet after `block`, booked already.
        let leaving = leaving - paid_later;
        let (at_deposits, at_hot) = self.store.custody_places().await?;
        let ledger_total = at_deposits + at_hot - leaving;
        let deposits_chain = balances
            .iter()
            .skip(usize::from(hot_wallet.is_some()))
            .fold(U256::ZERO, |sum, b| sum.saturating_add(*b));
        let mut places = vec![Place::new(
            "deposit_addresses",
            deposits_chain,
            at_deposits - moving,
        )];
        if hot_wallet.is_some() {
            places.push(Place::new(
                "hot_wallet",
                balances.first().copied().unwrap_or_default(),
                at_hot + moving - leaving,
            ));
        }
        let ledger = U256::from(ledger_total.max(0) as u64);
        let (status, difference) = match chain_total.cmp(&ledger) {
            std::cmp::Ordering::Equal => (CustodyStatus::Equal, "0".to_string()),
            std::cmp::Ordering::Greater => {
                (CustodyStatus::Surplus, (chain_total - ledger).to_string())
            }
            std::cmp::Ordering::Less => (
                CustodyStatus::Shortfall,
                format!("-{}", ledger - chain_total),
            ),
        };
        let check = self
            .store
            .record_custody_check(&CustodyCheck {
                id: 0,
                checked_at: self.clock.now(),
                block_number: i64::try_from(block).unwrap_or(i64::MAX),
                addresses: owners.len() as i64,
                chain_total: chain_total.to_string(),
                ledger_total,
                status,
            })
            .await?;
        let as_f64 = |v: U256| v.to_string().parse::<f64>().unwrap_or(f64::MAX);
        metrics::gauge!("updown_custody_chain_micro_usdc").set(as_f64(chain_total));
        metrics::gauge!("updown_custody_ledger_micro_usdc").set(ledger_total as f64);
        metrics::gauge!("updown_custody_shortfall_micro_usdc").set(
            if status == CustodyStatus::Shortfall {
                as_f64(ledger - chain_total)
            } else {
                0.0
            },
        );
        let reconciliation = Reconciliation {
            block,
            addresses: owners.len() as u64,
            chain_total: chain_total.to_string(),
            ledger_total,
            difference,
            status: status.as_str(),
            check_id: check.id,
            places,
        };
        match status {
            CustodyStatus::Shortfall => {
                tracing::error!(
                    event = "custody_shortfall",
                    ?reconciliation,
                    "the chain holds less than the ledger owes"
                );
                self.publish(
                    EventKind::CustodyShortfall,
                    json!({ "block": block, "difference": reconciliation.difference }),
                );
            }
            CustodyStatus::Surplus => {
                tracing::info!(event = "custody_surplus", ?reconciliation);
            }
            CustodyStatus::Equal => {
                tracing::info!(event = "custody_equal", ?reconciliation);
            }
        }
        Ok(reconciliation)
    }

    /// The watcher's cursor, the node's head and the lag, the reorgs, the
    /// last custody checks: what `updown chain status` and the operator
    /// console show.
    pub async fn chain_report(&self) -> AppResult<serde_json::Value> {
        use crate::wire::instant;
        let cursor = self.store.read_chain_cursor().await?;
        let reorgs = self.store.reorgs(20).await?;
        let head = match self.custody_rpc() {
            Ok(rpc) => rpc.head().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let required = u64::from(self.config.chain.min_confirmations.max(1));
        let next = cursor.as_ref().map(|c| c.next_block);
        let lag = match (&head, next) {
            (Ok(head), Some(next)) => Some(super::watcher::confirmed_lag(*head, required, next)),
            _ => None,
        };
        let checks = self.custody_checks(5).await?;
        let watch = self.watch.as_ref().map(|w| w.status());
        Ok(json!({
            "deposit_source": format!("{:?}", self.config.chain.deposit_source).to_lowercase(),
            "cursor": next,
            "cursor_updated_at": cursor.as_ref().map(|c| instant(c.updated_at)),
            "head": head.as_ref().ok(),
            "head_error": head.as_ref().err(),
            "lag": lag,
            "sender": self.sender.as_ref().map(|s| s.status()),
            "min_confirmations": self.config.chain.min_confirmations,
            "last_error": watch.as_ref().and_then(|w| w.last_error.clone()),
            "consecutive_failures": watch.as_ref().map(|w| w.consecutive_failures),
            "reorgs": reorgs.iter().map(|r| json!({
                "id": r.id,
                "detected_at": instant(r.detected_at),
                "fork_block": r.fork_block,
                "depth": r.depth,
                "affected": r.affected.lines().collect::<Vec<_>>(),
                "acked_at": r.acked_at.map(instant),
                "acked_by": r.acked_by,
                "ack_reason": r.ack_reason,
            })).collect::<Vec<_>>(),
            "custody_checks": checks.iter().map(|c| json!({
                "checked_at": instant(c.checked_at),
                "block": c.block_number,
                "addresses": c.addresses,
                "chain_total": c.chain_total,
                "ledger_total": c.ledger_total,
                "status": c.status.as_str(),
            })).collect::<Vec<_>>(),
        }))
    }

    /// The last custody checks, newest first.
    pub async fn custody_checks(&self, limit: i64) -> AppResult<Vec<CustodyCheck>> {
        Ok(self.store.custody_checks(limit.clamp(1, 100)).await?)
    }
}
