//! The hot wallet's withdrawal sender (CHAIN_SENDER=evm), with the order
//! that custody systems use so that a crash anywhere leaves exactly one
//! transfer on the chain:
//! 1. the withdrawal is claimed (QUEUED -> SUBMITTING) before anything;
//! 2. in one database transaction the next nonce is taken from the
//!    database (never the node's pending count), the transfer is signed
//!    for it, and the signed bytes, hash and nonce are stored as the
//!    withdrawal becomes SUBMITTED;
//! 3. only then are the stored bytes broadcast.
//!
//! A crash before 2 commits leaves nothing signed; after it, the next step
//! broadcasts the stored bytes again and never signs anew. Each step then
//! follows what is in flight, by receipt:
//! - mined with `MIN_CONFIRMATIONS`: CONFIRMED (success) or FAILED and
//!   refunded with the node's reason (reverted);
//! - unknown to the node (dropped from its pool): broadcast again;
//! - not mined after `WITHDRAWAL_STUCK_AFTER_S`: replaced, same nonce, fees
//!   raised by at least an eighth (nodes ask a tenth), never above
//!   `MAX_FEE_GWEI`; whichever is mined wins, the other is recorded
//!   replaced;
//! - its nonce used on the chain by a transaction it never signed: a nonce
//!   conflict, alerted and left to an operator; nothing is guessed.
//!
//! Before signing, the hot wallet must hold the withdrawal (its token
//! balance less what is in flight) and `MIN_GAS_BALANCE` of ETH; otherwise
//! the sender holds and says why. At most `WITHDRAWAL_BATCH_MAX` are signed
//! per step, oldest first.

use std::sync::Mutex;

use alloy::primitives::{Address, U256};
use serde::Serialize;
use updown_domain::ids::WithdrawalId;
use updown_store::{
    ChainSend, MinedSend, SendState, Sender, StoreError, Withdrawal, WithdrawalChange,
    WithdrawalStatus,
};

use super::withdrawal_worker::WorkerTick;
use super::App;
use crate::chain::evm::{Broadcast, EvmError, EvmRpc, Fees};
use crate::chain::hot_wallet::{sign_transfer, HotKey, TransferTx};
use crate::error::{AppError, AppResult};
use crate::events::EventKind;
use crate::faults::crash_point;

/// Withdrawals read per page.
const PAGE: i64 = 100;

/// The hot wallet and the node it sends through.
pub struct EvmSender {
    pub(super) rpc: EvmRpc,
    pub(super) key: HotKey,
    pub(super) token: Address,
    pub(super) chain_id: u64,
    status: Mutex<SenderStatus>,
}

/// What the sender last saw, for /health and the console.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SenderStatus {
    /// The hot wallet's address (EIP-55).
    pub address: String,
    /// ETH for gas, in wei (decimal text).
    pub eth_wei: Option<String>,
    /// The token, in micro-USDC.
    pub token_balance: Option<String>,
    /// The node's head at the last step.
    pub head: Option<u64>,
    /// Why nothing is being signed now, if so.
    pub holding: Option<String>,
    /// A nonce used on the chain by a transaction the sender never signed.
    pub nonce_conflict: Option<String>,
    pub last_error: Option<String>,
    pub checked_at: Option<String>,
}

impl EvmSender {
    pub fn new(rpc: EvmRpc, key: HotKey, token: Address, chain_id: u64) -> EvmSender {
        let status = SenderStatus {
            address: key.address().to_checksum(None),
            ..SenderStatus::default()
        };
        EvmSender {
            rpc,
            key,
            token,
            chain_id,
            status: Mutex::new(status),
        }
    }

    /// The node must be on EVM_CHAIN_ID: a transaction signed for one
    /// chain is never handed to another.
    pub async fn verify_chain(&self) -> Result<(), EvmError> {
        self.rpc
            .require_chain(self.chain_id, "nothing is signed for it")
            .await
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// The hot wallet's ETH and token, read from the node now.
    pub async fn balances(&self) -> Result<HotBalances, EvmError> {
        let eth = self.rpc.eth_balance(self.address()).await?;
        let head = self.rpc.head().await?;
        let tokens = self
            .rpc
            .balances(self.token, &[self.address()], head)
            .await?
            .first()
            .copied()
            .unwrap_or_default();
        Ok(HotBalances {
            address: self.address().to_checksum(None),
            head,
            eth_wei: u128::try_from(eth).unwrap_or(u128::MAX),
            token_micros: u128::try_from(tokens).unwrap_or(u128::MAX),
        })
    }

    pub fn status(&self) -> SenderStatus {
        self.status.lock().expect("sender status").clone()
    }

    fn update(&self, change: impl FnOnce(&mut SenderStatus)) {
        change(&mut self.status.lock().expect("sender status"));
    }

    pub(super) fn sender(&self) -> Sender {
        Sender {
            chain_id: i64::try_from(self.chain_id).unwrap_or(i64::MAX),
            address: format!("{:#x}", self.key.address()),
        }
    }
}

/// The hot wallet's balances, read now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HotBalances {
    pub address: String,
    /// The block they were read at.
    pub head: u64,
    pub eth_wei: u128,
    pub token_micros: u128,
}

/// What one step learnt of the chain, read once.
struct Seen {
    head: u64,
    /// The hot wallet's next nonce as the latest block has it.
    mined_nonce: u64,
}

impl App {
    /// The sender's step, inside the worker's lease.
    pub(super) async fn evm_withdrawals(&self, sender: &EvmSender) -> AppResult<WorkerTick> {
        let mut tick = WorkerTick::default();
        sender.verify_chain().await?;
        // The nonce before the receipts: a nonce seen used here has its
        // receipt by the time receipts are read.
        let mined_nonce = sender.rpc.mined_nonce(sender.address()).await?;
        let head = sender.rpc.head().await?;
        let seen = Seen { head, mined_nonce };
        sender.update(|s| s.head = Some(head));
        // A reorg deeper than the confirmations (found here or by the
        // deposit watcher) holds everything until an operator acknowledges
        // it: receipts and balances may say otherwise after it.
        let reorg = match self.check_sent_blocks(sender, &seen).await? {
            Some(found) => Some(found),
            None => self.store.open_reorg().await?.map(|r| (r.id, r.fork_block)),
        };
        if let Some((id, fork_block)) = reorg {
            // Paid transfers the reorg dropped go back to the chain as the
            // very bytes that paid them (their nonce, nothing new signed).
            tick.rebroadcast = self.rebroadcast_dropped(sender, fork_block).await?;
            tick.held = Some(format!(
                "reorg {id} replaced blocks deeper than MIN_CONFIRMATIONS: nothing is sent or confirmed until an operator \
                 checks it and runs `updown chain ack-reorg --id {id} --reason ...`"
            ));
            sender.update(|s| {
                s.holding = tick.held.clone();
                s.checked_at = Some(crate::wire::instant(self.clock.now()));
            });
            metrics::gauge!("updown_sender_holding").set(1.0);
            return Ok(tick);
        }
        let unmined = self.follow_in_flight(sender, &seen, &mut tick).await?;
        // Sweeps `updown sweep` left in flight: booked, broadcast again or
        // replaced here too, so none blocks the nonces after it.
        let mut sweeps = super::SweepStep::default();
        self.follow_sweeps(sender, &mut sweeps).await?;
        sweeps.open = self.store.open_sweeps().await?.len() as u64;
        if let Some(why) = sweeps.nonce_conflict.take() {
            metrics::gauge!("updown_sender_nonce_conflict").set(1.0);
            sender.update(|s| {
                s.nonce_conflict.get_or_insert(why);
            });
        }
        tick.swept = sweeps.confirmed;
        for why in sweeps.errors {
            tracing::warn!(error = %why, "following a sweep failed; retrying next step");
        }
        let held = self
            .sign_and_send(
                sender,
                seen.mined_nonce,
                unmined,
                sweeps.open > 0,
                &mut tick,
            )
            .await;
        sender.update(|s| {
            s.holding = tick.held.clone();
            s.checked_at = Some(crate::wire::instant(self.clock.now()));
            s.last_error = tick.errors.last().map(|(_, why)| why.clone());
        });
        metrics::gauge!("updown_sender_holding").set(if tick.held.is_some() { 1.0 } else { 0.0 });
        held?;
        Ok(tick)
    }

    /// Compares the blocks its recent transactions were mined in (within
    /// twice the confirmations, at least 64 blocks) with the node's; a
    /// changed one is recorded as a reorg, as the watcher records one.
    async fn check_sent_blocks(
        &self,
        sender: &EvmSender,
        seen: &Seen,
    ) -> AppResult<Option<(i64, i64)>> {
        let required = u64::from(self.config.chain.min_confirmations.max(1));
        let window = (required * 2).max(64);
        let from = i64::try_from(seen.head.saturating_sub(window)).unwrap_or(0);
        let mined = self.store.mined_since(from).await?;
        let mut checked = std::collections::HashSet::new();
        for send in &mined {
            let (Some(block), Some(hash)) = (send.mined_block, &send.mined_block_hash) else {
                continue;
            };
            if !checked.insert(block) {
                continue;
            }
            let number = u64::try_from(block).unwrap_or(0);
            let now = sender.rpc.block(number).await?;
            let now_hash = now.map(|b| crate::chain::evm::hash_text(&b.hash));
            if now_hash.as_deref() == Some(hash.as_str()) {
                continue;
            }
            let reorg = self
                .record_deep_reorg(
                    &updown_store::NewReorg {
                        fork_block: block,
                        depth: i64::try_from((seen.head + 1).saturating_sub(number))
                            .unwrap_or(i64::MAX),
                        old_hash: hash.clone(),
                        new_hash: now_hash.unwrap_or_else(|| "none".into()),
                        detected_at: self.clock.now(),
                    },
                    "a reorg replaced the block a confirmed withdrawal was mined in; sending halts until `updown chain ack-reorg`",
                )
                .await?;
            return Ok(Some((reorg.id, reorg.fork_block)));
        }
        Ok(None)
    }

    /// Broadcasts again each transaction (a withdrawal's or a sweep's)
    /// mined in block `from` or later that has no receipt now; the
    /// withdrawals among them.
    async fn rebroadcast_dropped(&self, sender: &EvmSender, from: i64) -> AppResult<Vec<i64>> {
        let mut sent = Vec::new();
        for send in self.store.mined_since(from).await? {
            if send.state != SendState::Mined
                || sender.rpc.receipt(&send.signed.tx_hash).await?.is_some()
            {
                continue;
            }
            tracing::warn!(
                event = "rebroadcast_after_reorg",
                withdrawal = ?send.withdrawal,
                sweep = ?send.sweep,
                tx_hash = %send.signed.tx_hash,
            );
            self.broadcast(sender, &send).await?;
            sent.extend(send.withdrawal.map(|w| w.0));
        }
        Ok(sent)
    }

    /// Follows every SUBMITTED withdrawal the sender signed; what is
    /// still unmined, in micro-USDC.
    async fn follow_in_flight(
        &self,
        sender: &EvmSender,
        seen: &Seen,
        tick: &mut WorkerTick,
    ) -> AppResult<i64> {
        let mut unmined = 0i64;
        let mut after = None;
        let mut conflict = None;
        loop {
            let (page, next) = self.in_flight_page(after).await?;
            for (withdrawal, mine) in &page {
                let mine: Vec<&ChainSend> = mine.iter().collect();
                match self.follow_one(sender, seen, withdrawal, &mine, tick).await {
                    Ok(Flight::Unmined) => unmined += withdrawal.amount.get(),
                    Ok(Flight::Mined) => {}
                    Ok(Flight::Conflict(why)) => {
                        unmined += withdrawal.amount.get();
                        tick.errors.push((withdrawal.id.0, why.clone()));
                        conflict = Some(why);
                    }
                    Err(e) => {
                        unmined += withdrawal.amount.get();
                        tracing::warn!(withdrawal = %withdrawal.id, error = %e, "following a sent withdrawal failed; retrying next step");
                        tick.errors.push((withdrawal.id.0, e.to_string()));
                    }
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        metrics::gauge!("updown_sender_nonce_conflict")
            .set(f64::from(u8::from(conflict.is_some())));
        sender.update(|s| s.nonce_conflict = conflict);
        Ok(unmined)
    }

    async fn follow_one(
        &self,
        sender: &EvmSender,
        seen: &Seen,
        withdrawal: &Withdrawal,
        sends: &[&ChainSend],
        tick: &mut WorkerTick,
    ) -> AppResult<Flight> {
        let live: Vec<&ChainSend> = sends
            .iter()
            .copied()
            .filter(|s| s.state == SendState::Sent)
            .collect();
        for send in &live {
            let Some(receipt) = sender.rpc.receipt(&send.signed.tx_hash).await? else {
                continue;
            };
            let confirmations = (seen.head + 1).saturating_sub(receipt.block());
            if confirmations < u64::from(self.config.chain.min_confirmations.max(1)) {
                let block_hash = crate::chain::evm::hash_text(&receipt.block_hash);
                if send.mined_block_hash.as_deref() != Some(block_hash.as_str()) {
                    let block = i64::try_from(receipt.block()).unwrap_or(i64::MAX);
                    self.store.note_mined(send.id, block, &block_hash).await?;
                }
                return Ok(Flight::Mined);
            }
            crash_point("send_after_mined", self.config.production);
            let reason = if receipt.success() {
                None
            } else {
                let why = sender
                    .rpc
                    .revert_reason(sender.address(), &send.signed.raw_tx, receipt.block())
                    .await;
                Some(format!(
                    "transaction {} reverted in block {}{}",
                    send.signed.tx_hash,
                    receipt.block(),
                    why.map(|w| format!(": {w}")).unwrap_or_default()
                ))
            };
            let target = if receipt.success() {
                WithdrawalStatus::Confirmed
            } else {
                WithdrawalStatus::Failed
            };
            let entry = self.withdrawal_entry("chain:evm", withdrawal.id, target, reason.clone());
            let mined = MinedSend {
                send_id: send.id,
                block: i64::try_from(receipt.block()).unwrap_or(i64::MAX),
                block_hash: crate::chain::evm::hash_text(&receipt.block_hash),
                success: receipt.success(),
                reason,
                now: self.clock.now(),
            };
            let finished = self.store.finish_send(&mined, &entry).await?;
            self.withdrawal_announced(&finished);
            match finished.status {
                WithdrawalStatus::Confirmed => tick.confirmed.push(withdrawal.id.0),
                _ => tick.failed.push(withdrawal.id.0),
            }
            return Ok(Flight::Mined);
        }
        let Some(newest) = live.last() else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "withdrawal {} is SUBMITTED but none of its transactions is pending or mined",
                withdrawal.id
            )));
        };
        let nonce = u64::try_from(newest.nonce)
            .map_err(|_| AppError::Internal(anyhow::anyhow!("a stored nonce {}", newest.nonce)))?;
        if seen.mined_nonce > nonce {
            let why = format!(
                "nonce {nonce} of the hot wallet was used on the chain by a transaction it did not sign \
                 (withdrawal {} waits as {}); run `updown withdrawals resolve-nonce` after checking",
                withdrawal.id, newest.signed.tx_hash
            );
            tracing::error!(event = "nonce_conflict", withdrawal = %withdrawal.id, nonce, "{why}");
            self.publish(
                EventKind::NonceConflict,
                serde_json::json!({ "withdrawal": withdrawal.id.0, "nonce": nonce }),
            );
            return Ok(Flight::Conflict(why));
        }
        let now = self.clock.now();
        let stuck = now - newest.signed_at
            > chrono::Duration::from_std(self.config.chain.sending.stuck_after)
                .unwrap_or(chrono::Duration::MAX);
        // Only the lowest pending nonce is replaced: the ones after it are
        // waiting behind it, not underpriced. A node that refuses the stored
        // bytes (its price floor rose) gets the replacement too.
        if !(stuck && nonce == seen.mined_nonce) {
            // The newest (the highest fees) must be in the node's pool: it
            // was dropped, or never reached it (a crash right after a
            // replacement was stored).
            if !sender.rpc.knows(&newest.signed.tx_hash).await? {
                self.broadcast(sender, newest).await?;
                tick.rebroadcast.push(withdrawal.id.0);
            }
        } else {
            let fees = sender.rpc.fees().await?;
            match self.bumped(newest, fees) {
                Ok((max_fee, tip)) => {
                    let terms = self.transfer_terms(sender, withdrawal, nonce, max_fee, tip)?;
                    let replacement = self
                        .store
                        .replace_send(newest, &|_| sign_transfer(&sender.key, &terms), now)
                        .await?;
                    metrics::counter!("updown_withdrawals_sent_total", "kind" => "replacement")
                        .increment(1);
                    tracing::warn!(
                        event = "withdrawal_replaced",
                        withdrawal = %withdrawal.id,
                        nonce,
                        stuck = %newest.signed.tx_hash,
                        replacement = %replacement.signed.tx_hash,
                        max_fee_per_gas = max_fee,
                    );
                    crash_point("send_after_replace", self.config.production);
                    self.broadcast(sender, &replacement).await?;
                    tick.replaced.push(withdrawal.id.0);
                }
                Err(why) => tick.errors.push((withdrawal.id.0, why)),
            }
        }
        Ok(Flight::Unmined)
    }

    /// An operator's end of a nonce conflict: checked on the chain first
    /// (the nonce used, none of the withdrawal's transactions mined), the
    /// withdrawal fails and is refunded, and the database's next nonce
    /// rises to the chain's count. Audited as `by`, with `reason`.
    pub async fn resolve_nonce(
        &self,
        id: WithdrawalId,
        by: &str,
        reason: &str,
    ) -> AppResult<Withdrawal> {
        let Some(sender) = &self.sender else {
            return Err(AppError::Invalid(
                "resolve-nonce is for withdrawals the hot wallet sent (CHAIN_SENDER=evm)".into(),
            ));
        };
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::Invalid(
                "resolving a nonce conflict needs a reason".into(),
            ));
        }
        sender.verify_chain().await?;
        let sends = self.store.sends_of(id).await?;
        let Some(newest) = sends.last() else {
            return Err(AppError::Conflict(format!(
                "withdrawal {id} was never signed by the hot wallet: nothing to resolve"
            )));
        };
        // Used as of a block with MIN_CONFIRMATIONS: a foreign transaction
        // one block deep could still be reorged away, and ours mined.
        let required = u64::from(self.config.chain.min_confirmations.max(1));
        let settled = (sender.rpc.head().await? + 1).saturating_sub(required);
        let mined_nonce = sender
            .rpc
            .nonce_at(
                sender.address(),
                alloy::rpc::types::BlockNumberOrTag::Number(settled),
            )
            .await?;
        let nonce = u64::try_from(newest.nonce).unwrap_or(u64::MAX);
        if mined_nonce <= nonce {
            return Err(AppError::Conflict(format!(
                "nonce {nonce} is not used on the chain with {required} confirmations yet ({mined_nonce} mined by \
                 block {settled}): withdrawal {id}'s transaction may still be mined, so it is not refunded; \
                 the worker rebroadcasts or replaces it"
            )));
        }
        for send in &sends {
            if let Some(receipt) = sender.rpc.receipt(&send.signed.tx_hash).await? {
                return Err(AppError::Conflict(format!(
                    "transaction {} of withdrawal {id} was mined in block {}: the worker records it",
                    send.signed.tx_hash,
                    receipt.block()
                )));
            }
        }
        let why = format!(
            "nonce {nonce} was used on the chain by another transaction; resolved by {by}: {reason}"
        );
        let entry = self.withdrawal_entry(by, id, WithdrawalStatus::Failed, Some(why.clone()));
        let failed = self
            .store
            .resolve_nonce(
                id,
                i64::try_from(mined_nonce).unwrap_or(i64::MAX),
                &why,
                self.clock.now(),
                &entry,
            )
            .await?;
        tracing::warn!(event = "nonce_resolved", withdrawal = %id, nonce, by, reason);
        self.withdrawal_announced(&failed);
        Ok(failed)
    }

    /// Micro-USDC of SUBMITTED withdrawals whose transfer was mined, with
    /// success, at or before `block`: gone from the chain's balances, still
    /// pending in the ledger until their confirmations.
    pub(super) async fn mined_unconfirmed(&self, rpc: &EvmRpc, block: u64) -> AppResult<i64> {
        let mut left = 0;
        let mut after = None;
        loop {
            let (page, next) = self.in_flight_page(after).await?;
            for (withdrawal, sends) in &page {
                for send in sends.iter().filter(|s| s.state == SendState::Sent) {
                    if let Some(receipt) = rpc.receipt(&send.signed.tx_hash).await? {
                        if receipt.success() && receipt.block() <= block {
                            left += withdrawal.amount.get();
                        }
                    }
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(left)
    }

    /// A page of SUBMITTED withdrawals after `after` that the hot wallet
    /// signed, each with its sends (one an operator submitted by hand has
    /// none and is theirs), and where the next page starts (`None`: this
    /// was the last).
    async fn in_flight_page(
        &self,
        after: Option<WithdrawalId>,
    ) -> AppResult<(Vec<(Withdrawal, Vec<ChainSend>)>, Option<WithdrawalId>)> {
        let page = self
            .store
            .withdrawals_to_step(WithdrawalStatus::Submitted, after, PAGE)
            .await?;
        let next = match page.last() {
            Some(last) if page.len() as i64 == PAGE => Some(last.id),
            _ => None,
        };
        let ids: Vec<WithdrawalId> = page.iter().map(|w| w.id).collect();
        let mut sends = self.store.sends_of_many(&ids).await?;
        let signed = page
            .into_iter()
            .filter_map(|w| {
                let mine: Vec<ChainSend> = sends
                    .extract_if(.., |s| s.withdrawal == Some(w.id))
                    .collect();
                (!mine.is_empty()).then_some((w, mine))
            })
            .collect();
        Ok((signed, next))
    }

    /// Fees for a replacement of `stuck`: each raised by an eighth, at
    /// least today's, never above MAX_FEE_GWEI.
    pub(super) fn bumped(&self, stuck: &ChainSend, fees: Fees) -> Result<(u128, u128), String> {
        let stored = |text: &str| {
            text.parse::<u128>().map_err(|_| {
                format!(
                    "send {} has a stored fee {text:?} that is not a number",
                    stuck.id
                )
            })
        };
        bump(
            stored(&stuck.signed.max_fee_per_gas)?,
            stored(&stuck.signed.max_priority_fee_per_gas)?,
            fees,
            self.config.chain.sending.max_fee_per_gas,
        )
        .map_err(|cap| {
            format!(
                "transaction {} is stuck and its fee cannot be raised further: MAX_FEE_GWEI allows {cap} wei per gas",
                stuck.signed.tx_hash
            )
        })
    }

    fn transfer_terms(
        &self,
        sender: &EvmSender,
        withdrawal: &Withdrawal,
        nonce: u64,
        max_fee_per_gas: u128,
        max_priority_fee_per_gas: u128,
    ) -> AppResult<TransferTx> {
        let to = crate::services::parse_address(&withdrawal.address)?;
        Ok(TransferTx {
            chain_id: sender.chain_id,
            nonce,
            token: sender.token,
            to: crate::chain::evm::evm_address(&to),
            amount: U256::from(withdrawal.amount.get() as u64),
            max_fee_per_gas,
            max_priority_fee_per_gas,
        })
    }

    /// Hands a stored send to the node and records when.
    pub(super) async fn broadcast(
        &self,
        sender: &EvmSender,
        send: &ChainSend,
    ) -> AppResult<Broadcast> {
        let answer = sender.rpc.broadcast(&send.signed.raw_tx).await?;
        self.store.mark_broadcast(send.id, self.clock.now()).await?;
        Ok(answer)
    }

    /// Signs and sends the claimed-but-unsigned (SUBMITTING), then the
    /// QUEUED, oldest first, while the hot wallet holds enough; at most
    /// WITHDRAWAL_BATCH_MAX.
    async fn sign_and_send(
        &self,
        sender: &EvmSender,
        mined_nonce: u64,
        unmined: i64,
        sweeping: bool,
        tick: &mut WorkerTick,
    ) -> AppResult<()> {
        let sending = &self.config.chain.sending;
        let mut budget = sending.batch_max as usize;
        let mut waiting = Vec::new();
        for status in [WithdrawalStatus::Submitting, WithdrawalStatus::Queued] {
            let page = self
                .store
                .withdrawals_to_step(status, None, budget as i64)
                .await?;
            waiting.extend(page);
            if waiting.len() >= budget {
                break;
            }
        }
        waiting.truncate(budget);
        if waiting.is_empty() {
            return Ok(());
        }
        let HotBalances {
            eth_wei: eth,
            token_micros: tokens,
            ..
        } = sender.balances().await?;
        sender.update(|s| {
            s.eth_wei = Some(eth.to_string());
            s.token_balance = Some(tokens.to_string());
        });
        metrics::gauge!("updown_hot_wallet_eth_wei").set(eth as f64);
        metrics::gauge!("updown_hot_wallet_token_micros").set(tokens as f64);
        if eth < sending.min_gas_balance {
            tick.held = Some(format!(
                "the hot wallet {} holds {eth} wei of ETH, below MIN_GAS_BALANCE ({} wei): nothing is sent until it is topped up",
                sender.key.address().to_checksum(None),
                sending.min_gas_balance
            ));
            return Ok(());
        }
        let mut available = i128::try_from(tokens).unwrap_or(i128::MAX) - i128::from(unmined);
        let fees = sender.rpc.fees().await?;
        let Some((max_fee, tip)) = first_fees(fees, sending.max_fee_per_gas) else {
            tick.held = Some(format!(
                "gas costs {} wei per gas now, above MAX_FEE_GWEI ({} wei): nothing is sent until it falls",
                fees.base_fee.saturating_add(fees.priority_fee),
                sending.max_fee_per_gas
            ));
            return Ok(());
        };
        let first_nonce = i64::try_from(mined_nonce).map_err(|_| {
            AppError::Unavailable(format!(
                "the node gives the hot wallet a nonce of {mined_nonce}"
            ))
        })?;
        // Another tool sent from the hot wallet: with nothing of ours in
        // flight the chain's count is the truth and the database follows
        // it; with something in flight that is a conflict for an operator.
        if let Some(next) = self.store.next_nonce(&sender.sender()).await? {
            if next < first_nonce && (unmined > 0 || sweeping) {
                tick.held = Some(format!(
                    "the hot wallet's nonce on the chain ({first_nonce}) is past the database's ({next}) while \
                     withdrawals or sweeps are in flight: another tool sent from it; nothing more is signed until each \
                     conflict is resolved (updown withdrawals resolve-nonce, updown sweep --resolve)"
                ));
                return Ok(());
            }
            if next < first_nonce {
                tracing::warn!(
                    event = "nonce_followed",
                    database = next,
                    chain = first_nonce,
                    "another tool sent from the hot wallet; its next nonce follows the chain"
                );
                self.store
                    .raise_next_nonce(&sender.sender(), first_nonce)
                    .await?;
            }
        }
        for withdrawal in waiting {
            if i128::from(withdrawal.amount.get()) > available {
                // Oldest first: a smaller later one does not jump the queue.
                tick.held = Some(format!(
                    "the hot wallet holds {} micro-USDC beyond what is in flight; withdrawal {} needs {}: \
                     sweep deposits into it or fund it",
                    available.max(0),
                    withdrawal.id,
                    withdrawal.amount.get()
                ));
                break;
            }
            if budget == 0 {
                break;
            }
            budget -= 1;
            match self
                .sign_one(sender, &withdrawal, first_nonce, max_fee, tip)
                .await
            {
                Ok(Some(send)) => {
                    available -= i128::from(withdrawal.amount.get());
                    tick.submitted.push(withdrawal.id.0);
                    crash_point("send_after_store", self.config.production);
                    if let Err(e) = self.broadcast(sender, &send).await {
                        // Stored: the next step finds it unknown to the
                        // node and broadcasts it again.
                        tick.errors.push((withdrawal.id.0, e.to_string()));
                    } else {
                        crash_point("send_after_broadcast", self.config.production);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(withdrawal = %withdrawal.id, error = %e, "signing a withdrawal failed; retrying next step");
                    tick.errors.push((withdrawal.id.0, e.to_string()));
                }
            }
        }
        Ok(())
    }

    /// Claims `withdrawal` if QUEUED, then signs and stores it; `None` if
    /// an operator took it meanwhile.
    async fn sign_one(
        &self,
        sender: &EvmSender,
        withdrawal: &Withdrawal,
        first_nonce: i64,
        max_fee: u128,
        tip: u128,
    ) -> AppResult<Option<ChainSend>> {
        if withdrawal.status == WithdrawalStatus::Queued {
            match self
                .change_withdrawal(withdrawal.id, WithdrawalChange::Claim, "chain:evm", None)
                .await
            {
                Ok(_) => {}
                Err(AppError::Conflict(_)) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let production = self.config.production;
        let sign = |nonce: i64| {
            crash_point("send_after_nonce", production);
            let terms = self
                .transfer_terms(
                    sender,
                    withdrawal,
                    u64::try_from(nonce).unwrap_or(0),
                    max_fee,
                    tip,
                )
                .map_err(|e| e.to_string())?;
            let signed = sign_transfer(&sender.key, &terms);
            crash_point("send_after_sign", production);
            signed
        };
        let entry = self.withdrawal_entry(
            "chain:evm",
            withdrawal.id,
            WithdrawalStatus::Submitted,
            None,
        );
        let (submitted, send) = match self
            .store
            .submit_signed(
                withdrawal.id,
                &sender.sender(),
                first_nonce,
                &sign,
                self.clock.now(),
                &entry,
            )
            .await
        {
            Ok(done) => done,
            Err(StoreError::Conflict(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        metrics::counter!("updown_withdrawals_sent_total", "kind" => "first").increment(1);
        tracing::info!(
            event = "withdrawal_signed",
            withdrawal = %withdrawal.id,
            nonce = send.nonce,
            tx_hash = %send.signed.tx_hash,
        );
        self.withdrawal_announced(&submitted);
        Ok(Some(send))
    }
}

/// The fees of a replacement for a transaction offering `old_max` and
/// `old_tip` per gas: each raised by an eighth (nodes ask a tenth), at
/// least what the chain asks now, the fee cap at most `cap`; `Err(cap)`
/// when the cap leaves no room for the raise.
fn bump(old_max: u128, old_tip: u128, fees: Fees, cap: u128) -> Result<(u128, u128), u128> {
    let raise = |v: u128| v.saturating_add(v.div_ceil(8));
    let tip = raise(old_tip).max(fees.priority_fee);
    let wanted = fees.base_fee.saturating_mul(2).saturating_add(tip);
    let max_fee = raise(old_max).max(wanted).min(cap);
    if max_fee < raise(old_max) || tip > max_fee {
        return Err(cap);
    }
    Ok((max_fee, tip))
}

/// The fees of a first transaction: twice the base fee (room for six full
/// blocks of rises) plus the tip, at most `cap`; `None` when the chain
/// asks more than `cap` now.
pub(super) fn first_fees(fees: Fees, cap: u128) -> Option<(u128, u128)> {
    let tip = fees.priority_fee;
    let max_fee = fees.base_fee.saturating_mul(2).saturating_add(tip).min(cap);
    (fees.base_fee.saturating_add(tip) <= max_fee).then_some((max_fee, tip))
}

/// Where a sent withdrawal stands after a look.
enum Flight {
    /// Not mined yet (perhaps broadcast again, or replaced).
    Unmined,
    /// Mined: its tokens left the hot wallet (confirmed or not yet).
    Mined,
    Conflict(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const GWEI: u128 = 1_000_000_000;

    fn fees(base: u128, tip: u128) -> Fees {
        Fees {
            base_fee: base,
            priority_fee: tip,
        }
    }

    #[test]
    fn a_replacement_raises_both_fees_by_at_least_a_tenth() {
        let (max, tip) = bump(30 * GWEI, 2 * GWEI, fees(GWEI, GWEI), 300 * GWEI).unwrap();
        assert!(max * 10 >= 30 * GWEI * 11, "{max}");
        assert!(tip * 10 >= 2 * GWEI * 11, "{tip}");
        // Today's price wins when it is higher than the raise.
        let (max, tip) = bump(3 * GWEI, GWEI, fees(40 * GWEI, 5 * GWEI), 300 * GWEI).unwrap();
        assert_eq!((max, tip), (85 * GWEI, 5 * GWEI));
        // A fee of 1 wei still rises (by ceiling).
        assert_eq!(bump(1, 1, fees(0, 0), 100).unwrap(), (2, 2));
    }

    #[test]
    fn the_cap_bounds_every_fee_and_refuses_a_raise_it_leaves_no_room_for() {
        let (max, _) = bump(30 * GWEI, GWEI, fees(100 * GWEI, GWEI), 50 * GWEI).unwrap();
        assert_eq!(max, 50 * GWEI);
        assert_eq!(
            bump(50 * GWEI, GWEI, fees(GWEI, GWEI), 50 * GWEI),
            Err(50 * GWEI)
        );
        // Nonsense from a node saturates instead of wrapping.
        assert_eq!(bump(u128::MAX, 1, fees(u128::MAX, u128::MAX), 10), Err(10));
        assert_eq!(first_fees(fees(u128::MAX, 1), 300 * GWEI), None);
        assert_eq!(
            first_fees(fees(GWEI, GWEI), 300 * GWEI),
            Some((3 * GWEI, GWEI))
        );
        assert_eq!(
            first_fees(fees(GWEI, GWEI), 2 * GWEI),
            Some((2 * GWEI, GWEI))
        );
        assert_eq!(first_fees(fees(2 * GWEI, GWEI), 2 * GWEI), None);
    }
}
