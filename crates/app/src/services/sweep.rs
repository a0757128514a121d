//! `updown sweep`: the deposit addresses' tokens moved into the hot
//! wallet without sending gas to any of them. For each address holding
//! at least `SWEEP_MIN` (read at the settled block, so every token in it
//! was credited):
//! 1. its own key (derived from SWEEP_SEED_FILE, which only this command
//!    reads) signs an EIP-2612 permit letting the hot wallet take that
//!    amount;
//! 2. in one database transaction the sweep is recorded SUBMITTED and the
//!    hot wallet's next two nonces are taken, for its `permit` and its
//!    `transferFrom` transactions, both signed and stored;
//! 3. only then are they broadcast, as withdrawals are (`sender.rs`).
//!
//! Following (by this command, and by serve's sender at each step, so a
//! sweep left in flight never blocks the withdrawals' nonces): the stored
//! bytes are broadcast again while the node does not know them, and the
//! lowest pending nonce is replaced with higher fees when stuck past
//! `WITHDRAWAL_STUCK_AFTER_S`; once the transferFrom has `MIN_CONFIRMATIONS` the sweep
//! is booked in the ledger as a move between the custody places (deposit
//! addresses to hot wallet) and CONFIRMED, or FAILED with the node's
//! reason if it reverted (nothing moved; the next run tries again). A
//! crash anywhere leaves either nothing signed or stored bytes that the
//! next run follows; an address with a sweep in flight is never swept
//! twice (the store refuses it).

use alloy::primitives::{Address, U256};
use serde::Serialize;
use updown_domain::wallet::DepositKeys;
use updown_domain::Micros;
use updown_store::{ChainSend, MinedSend, MinedSweep, NewSweep, SendState, StoreError, Sweep};

use super::sender::{first_fees, EvmSender};
use super::App;
use crate::chain::evm::{hash_text, IERC20};
use crate::chain::hot_wallet::{
    permit_call, resign, sign_call, transfer_from_call, CallTx, HotKey, PermitTerms, PERMIT_GAS,
    TRANSFER_GAS,
};
use crate::error::{AppError, AppResult};
use crate::faults::crash_point;

/// Deposit addresses read from the store per page.
const ADDRESS_PAGE: i64 = 5_000;
/// How long a permit stays valid: a sweep stored and broadcast late (a
/// crash, a node down) still has a day; after it the permit reverts and
/// the next run signs a new one.
const PERMIT_LIFETIME_S: u64 = 86_400;

/// One deposit address to sweep (or swept by this step).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SweepLine {
    pub user: i64,
    pub address: String,
    /// Micro-USDC.
    pub amount: i64,
    /// The sweep recorded for it (none in a dry run).
    pub sweep: Option<i64>,
}

/// The node's head and the hot wallet's mined nonce, read once a step.
struct Seen {
    head: u64,
    mined_nonce: u64,
}

/// What one step of the sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepStep {
    /// The block the balances were read at.
    pub block: Option<u64>,
    /// The hot wallet the tokens go to.
    pub hot_wallet: String,
    /// Addresses at or above SWEEP_MIN (signed now, or what a dry run
    /// would sign).
    pub planned: Vec<SweepLine>,
    /// Addresses holding something below SWEEP_MIN, left alone.
    pub below_min: u64,
    /// Sweeps that ended in this step.
    pub confirmed: Vec<i64>,
    /// Sweeps with a transaction stuck past WITHDRAWAL_STUCK_AFTER_S,
    /// replaced with higher fees.
    pub replaced: Vec<i64>,
    pub failed: Vec<(i64, String)>,
    /// Sweeps still on their way after this step.
    pub open: u64,
    /// Micro-USDC those carry.
    pub open_micros: i64,
    /// What went wrong with single sweeps (each is retried next step).
    pub errors: Vec<String>,
    /// A sweep's nonce used by a transaction the hot wallet did not sign
    /// for it: left to an operator (`updown sweep --resolve`).
    pub nonce_conflict: Option<String>,
}

impl App {
    /// The hot wallet that submits a sweep's transactions.
    fn sweeper(&self) -> AppResult<&EvmSender> {
        self.sender.as_deref().ok_or_else(|| {
            AppError::Invalid(
                "sweeping needs the hot wallet, which submits the permits and transfers: set CHAIN_SENDER=evm \
                 and HOT_WALLET_KEY_FILE (with EVM_RPC_URL, EVM_CHAIN_ID, DEPOSIT_TOKEN)"
                    .into(),
            )
        })
    }

    /// One step: follows the sweeps in flight, then (unless `follow_only`)
    /// plans a sweep of each address holding at least SWEEP_MIN and, unless
    /// `dry_run`, signs, stores and broadcasts it.
    pub async fn sweep_step(
        &self,
        keys: Option<&DepositKeys>,
        follow_only: bool,
        dry_run: bool,
    ) -> AppResult<SweepStep> {
        let sender = self.sweeper()?;
        sender.verify_chain().await?;
        let mut step = SweepStep {
            hot_wallet: sender.address().to_checksum(None),
            ..SweepStep::default()
        };
        if let Some(reorg) = self.store.open_reorg().await? {
            return Err(AppError::Unavailable(format!(
                "reorg {} at block {} is not acknowledged: nothing is swept until an operator checks it \
                 (updown chain ack-reorg)",
                reorg.id, reorg.fork_block
            )));
        }
        if !dry_run {
            self.follow_sweeps(sender, &mut step).await?;
        }
        if !follow_only {
            let keys = keys.ok_or_else(|| {
                AppError::Invalid(
                    "sweeping needs SWEEP_SEED_FILE: the deposit keys sign the permits".into(),
                )
            })?;
            self.plan_sweeps(sender, keys, dry_run, &mut step).await?;
        }
        let open = self.store.open_sweeps().await?;
        step.open = open.len() as u64;
        step.open_micros = open.iter().map(|(s, _)| s.amount.get()).sum();
        Ok(step)
    }

    /// Reads every deposit address at the settled block and plans (or,
    /// unless `dry_run`, sends) a sweep of each one holding SWEEP_MIN.
    async fn plan_sweeps(
        &self,
        sender: &EvmSender,
        keys: &DepositKeys,
        dry_run: bool,
        step: &mut SweepStep,
    ) -> AppResult<()> {
        let minimum = self.config.chain.sending.sweep_min.get();
        let block = self.settled_block(&sender.rpc).await?;
        let head = sender.rpc.head().await?.max(block);
        step.block = Some(block);
        let in_flight: std::collections::HashSet<String> = self
            .store
            .open_sweeps()
            .await?
            .into_iter()
            .map(|(s, _)| s.deposit_address.to_ascii_lowercase())
            .collect();
        let mut candidates = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.deposit_addresses(after, ADDRESS_PAGE).await?;
            let owners = page
                .iter()
                .map(|(_, a)| {
                    a.parse::<Address>().map_err(|e| {
                        AppError::Internal(anyhow::anyhow!("a stored deposit address {a}: {e}"))
                    })
                })
                .collect::<AppResult<Vec<Address>>>()?;
            // What was credited (the settled block) and is still there
            // (the head): a sweep mined after the settled block has taken
            // it already, a deposit after it is not credited yet.
            let settled = sender.rpc.balances(sender.token, &owners, block).await?;
            let now = sender.rpc.balances(sender.token, &owners, head).await?;
            let balances = settled.into_iter().zip(now).map(|(a, b)| a.min(b));
            for ((user, address), balance) in page.iter().zip(balances) {
                if balance.is_zero() || in_flight.contains(&address.to_ascii_lowercase()) {
                    continue;
                }
                match i64::try_from(balance) {
                    Ok(amount) if amount >= minimum => candidates.push((*user, address.clone(), amount)),
                    Ok(_) => step.below_min += 1,
                    Err(_) => step.errors.push(format!(
                        "{address} holds {balance} token units, more than a ledger amount: not swept"
                    )),
                }
            }
            match page.last() {
                Some((user, _)) if page.len() as i64 == ADDRESS_PAGE => after = Some(*user),
                _ => break,
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        // Every key is checked against the stored address before anything
        // is signed: a wrong seed stops the run, it never signs for others.
        let mut planned = Vec::with_capacity(candidates.len());
        for (user, address, amount) in candidates {
            let sequence = self.store.user(user).await?.sequence;
            let (secret, derived) = keys
                .key(sequence)
                .map_err(|e| AppError::Invalid(format!("the deposit key of user {user}: {e}")))?;
            if !derived.to_checksum().eq_ignore_ascii_case(&address) {
                return Err(AppError::Invalid(format!(
                    "SWEEP_SEED_FILE derives {} for user {user} (index {sequence}), whose deposit address is {address}: \
                     it is not the seed of WALLET_XPUB; nothing was signed",
                    derived.to_checksum()
                )));
            }
            let key =
                HotKey::from_bytes(&secret).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
            planned.push((user, address, amount, key));
        }
        if dry_run {
            step.planned = planned
                .into_iter()
                .map(|(user, address, amount, _)| SweepLine {
                    user: user.0,
                    address,
                    amount,
                    sweep: None,
                })
                .collect();
            return Ok(());
        }
        self.send_sweeps(sender, planned, step).await
    }

    /// Signs, stores and broadcasts one sweep per planned address.
    async fn send_sweeps(
        &self,
        sender: &EvmSender,
        planned: Vec<(updown_domain::ids::UserId, String, i64, HotKey)>,
        step: &mut SweepStep,
    ) -> AppResult<()> {
        let sending = &self.config.chain.sending;
        let balances = sender.balances().await?;
        if balances.eth_wei < sending.min_gas_balance {
            return Err(AppError::Unavailable(format!(
                "the hot wallet {} holds {} wei of ETH, below MIN_GAS_BALANCE ({} wei): it pays the sweep's gas; top it up",
                balances.address, balances.eth_wei, sending.min_gas_balance
            )));
        }
        let fees = sender.rpc.fees().await?;
        let Some((max_fee, tip)) = first_fees(fees, sending.max_fee_per_gas) else {
            return Err(AppError::Unavailable(format!(
                "gas costs {} wei per gas now, above MAX_FEE_GWEI ({} wei): sweep when it falls",
                fees.base_fee.saturating_add(fees.priority_fee),
                sending.max_fee_per_gas
            )));
        };
        let mined_nonce =
            i64::try_from(sender.rpc.mined_nonce(sender.address()).await?).map_err(|_| {
                AppError::Unavailable("the node gives the hot wallet a nonce beyond 2^63".into())
            })?;
        if let Some(next) = self.store.next_nonce(&sender.sender()).await? {
            if next < mined_nonce {
                return Err(AppError::Conflict(format!(
                    "the hot wallet's nonce on the chain ({mined_nonce}) is past the database's ({next}): another tool \
                     sent from it; serve's sender follows the chain once nothing is in flight, then sweep again"
                )));
            }
        }
        let domain_separator = sender
            .rpc
            .view(sender.token, &IERC20::DOMAIN_SEPARATORCall {})
            .await?;
        let deadline = U256::from(
            sender
                .rpc
                .latest_time()
                .await?
                .saturating_add(PERMIT_LIFETIME_S),
        );
        let production = self.config.production;
        // Gas for both transactions at the fee cap, per sweep: checked
        // before each, so a run never starts what it cannot pay for.
        let per_sweep = u128::from(PERMIT_GAS + TRANSFER_GAS).saturating_mul(max_fee);
        for (n, (user, address, amount, owner_key)) in planned.into_iter().enumerate() {
            if n >= sending.batch_max as usize {
                step.errors.push(format!(
                    "WITHDRAWAL_BATCH_MAX ({}) sweeps signed in this run; the rest wait for the next run",
                    sending.batch_max
                ));
                break;
            }
            if n > 0 {
                let eth = sender.balances().await?.eth_wei;
                if eth < sending.min_gas_balance.saturating_add(per_sweep) {
                    step.errors.push(format!(
                        "the hot wallet holds {eth} wei of ETH: not enough for another sweep's gas and MIN_GAS_BALANCE; \
                         the rest wait until it is topped up"
                    ));
                    break;
                }
            }
            let owner = owner_key.address();
            let nonce = sender
                .rpc
                .view(sender.token, &IERC20::noncesCall { owner })
                .await?;
            let terms = PermitTerms {
                domain_separator,
                owner,
                spender: sender.address(),
                value: U256::from(amount as u64),
                nonce,
                deadline,
            };
            let permit = permit_call(&owner_key, &terms)
                .map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
            let call = |input: Vec<u8>, gas_limit: u64, nonce: i64| CallTx {
                chain_id: sender.chain_id,
                nonce: u64::try_from(nonce).unwrap_or(0),
                to: sender.token,
                input,
                gas_limit,
                max_fee_per_gas: max_fee,
                max_priority_fee_per_gas: tip,
            };
            let sign_permit =
                |nonce: i64| sign_call(&sender.key, &call(permit.clone(), PERMIT_GAS, nonce));
            let take = transfer_from_call(owner, sender.address(), terms.value);
            let sign_transfer = |nonce: i64| {
                let signed = sign_call(&sender.key, &call(take.clone(), TRANSFER_GAS, nonce));
                crash_point("sweep_after_sign", production);
                signed
            };
            let new = NewSweep {
                chain_id: sender.sender().chain_id,
                user,
                deposit_address: address.clone(),
                hot_wallet: sender.address().to_checksum(None),
                amount: Micros::new(amount).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?,
            };
            let (sweep, sends) = match self
                .store
                .submit_sweep(
                    &new,
                    &sender.sender(),
                    mined_nonce,
                    &sign_permit,
                    &sign_transfer,
                    self.clock.now(),
                )
                .await
            {
                Ok(done) => done,
                Err(StoreError::Conflict(why)) => {
                    step.errors.push(format!("{address}: {why}"));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            tracing::info!(
                event = "sweep_signed",
                sweep = sweep.id,
                address = %address,
                amount,
                permit = %sends[0].signed.tx_hash,
                transfer = %sends[1].signed.tx_hash,
            );
            crash_point("sweep_after_store", production);
            for send in &sends {
                if let Err(e) = self.broadcast(sender, send).await {
                    // Stored: the next step finds it unknown and sends it.
                    step.errors.push(format!("sweep {}: {e}", sweep.id));
                    break;
                }
            }
            step.planned.push(SweepLine {
                user: user.0,
                address,
                amount,
                sweep: Some(sweep.id),
            });
        }
        Ok(())
    }

    /// Follows every sweep in flight: booked once its transferFrom has
    /// MIN_CONFIRMATIONS, its stored transactions broadcast again while
    /// the node does not know them.
    pub(super) async fn follow_sweeps(
        &self,
        sender: &EvmSender,
        step: &mut SweepStep,
    ) -> AppResult<()> {
        let open = self.store.open_sweeps().await?;
        if open.is_empty() {
            return Ok(());
        }
        // The nonce before the receipts, as the withdrawals' step reads it.
        let mined_nonce = sender.rpc.mined_nonce(sender.address()).await?;
        let seen = Seen {
            head: sender.rpc.head().await?,
            mined_nonce,
        };
        for (sweep, sends) in open {
            match self
                .follow_sweep(sender, &seen, &sweep, &sends, &mut step.replaced)
                .await
            {
                Ok(Some(finished)) if finished.ledger_tx.is_some() => {
                    step.confirmed.push(finished.id)
                }
                Ok(Some(finished)) => step
                    .failed
                    .push((finished.id, finished.reason.unwrap_or_default())),
                Ok(None) => {}
                Err(AppError::Conflict(why)) => {
                    step.errors.push(why.clone());
                    step.nonce_conflict = Some(why);
                }
                Err(e) => {
                    tracing::warn!(sweep = sweep.id, error = %e, "following a sweep failed; retrying next step");
                    step.errors.push(format!("sweep {}: {e}", sweep.id));
                }
            }
        }
        Ok(())
    }

    async fn follow_sweep(
        &self,
        sender: &EvmSender,
        seen: &Seen,
        sweep: &Sweep,
        sends: &[ChainSend],
        replaced: &mut Vec<i64>,
    ) -> AppResult<Option<Sweep>> {
        let (Some(first), Some(last)) = (sends.first(), sends.last()) else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "sweep {} has no transactions",
                sweep.id
            )));
        };
        let (permit_nonce, transfer_nonce) = (first.nonce, last.nonce);
        let live = |nonce: i64| {
            sends
                .iter()
                .filter(move |s| s.nonce == nonce && s.state == SendState::Sent)
        };
        let mut mined = None;
        for send in live(transfer_nonce) {
            if let Some(receipt) = sender.rpc.receipt(&send.signed.tx_hash).await? {
                mined = Some((send, receipt));
                break;
            }
        }
        let Some((transfer, receipt)) = mined else {
            // The nonce was read before the receipts: a transferFrom nonce
            // used on the chain without a receipt of ours was used by a
            // transaction the hot wallet did not sign for this sweep.
            if u64::try_from(transfer_nonce).is_ok_and(|n| n < seen.mined_nonce) {
                let why = format!(
                    "sweep {}: nonce {transfer_nonce} of the hot wallet was used on the chain by a transaction \
                     it did not sign for this sweep; after checking, `updown sweep --resolve {} --reason ...`",
                    sweep.id, sweep.id
                );
                tracing::error!(
                    event = "nonce_conflict",
                    sweep = sweep.id,
                    nonce = transfer_nonce,
                    "{why}"
                );
                return Err(AppError::Conflict(why));
            }
            let stuck_after = chrono::Duration::from_std(self.config.chain.sending.stuck_after)
                .unwrap_or(chrono::Duration::MAX);
            for nonce in [permit_nonce, transfer_nonce] {
                let Some(newest) = live(nonce).next_back() else {
                    continue;
                };
                let now = self.clock.now();
                // Only the lowest pending nonce is replaced, as for
                // withdrawals: the ones after it wait behind it.
                if now - newest.signed_at > stuck_after
                    && u64::try_from(nonce) == Ok(seen.mined_nonce)
                {
                    let fees = sender.rpc.fees().await?;
                    let (max_fee, tip) =
                        self.bumped(newest, fees).map_err(AppError::Unavailable)?;
                    let replacement = match self
                        .store
                        .replace_send(
                            newest,
                            &|_| resign(&sender.key, &newest.signed.raw_tx, max_fee, tip),
                            now,
                        )
                        .await
                    {
                        Ok(replacement) => replacement,
                        // Replaced meanwhile by the other follower.
                        Err(StoreError::Conflict(_)) => return Ok(None),
                        Err(e) => return Err(e.into()),
                    };
                    tracing::warn!(
                        event = "sweep_replaced",
                        sweep = sweep.id,
                        nonce,
                        stuck = %newest.signed.tx_hash,
                        replacement = %replacement.signed.tx_hash,
                        max_fee_per_gas = max_fee,
                    );
                    self.broadcast(sender, &replacement).await?;
                    replaced.push(sweep.id);
                } else if !sender.rpc.knows(&newest.signed.tx_hash).await? {
                    self.broadcast(sender, newest).await?;
                }
            }
            return Ok(None);
        };
        let required = u64::from(self.config.chain.min_confirmations.max(1));
        let block_hash = hash_text(&receipt.block_hash);
        let block = i64::try_from(receipt.block()).unwrap_or(i64::MAX);
        if (seen.head + 1).saturating_sub(receipt.block()) < required {
            if transfer.mined_block_hash.as_deref() != Some(block_hash.as_str()) {
                self.store
                    .note_mined(transfer.id, block, &block_hash)
                    .await?;
            }
            return Ok(None);
        }
        let mut permit = None;
        for send in live(permit_nonce) {
            if let Some(receipt) = sender.rpc.receipt(&send.signed.tx_hash).await? {
                permit = Some((send, receipt));
                break;
            }
        }
        let Some((permit, permit_receipt)) = permit else {
            return Err(AppError::Conflict(format!(
                "sweep {}'s transferFrom was mined but none of its permit transactions was (nonce {permit_nonce} was \
                 used by another transaction): left for an operator, who checks the chain and books by hand",
                sweep.id
            )));
        };
        crash_point("sweep_after_mined", self.config.production);
        let now = self.clock.now();
        let reason = if receipt.success() {
            None
        } else {
            let why = sender
                .rpc
                .revert_reason(sender.address(), &transfer.signed.raw_tx, receipt.block())
                .await;
            Some(format!(
                "transferFrom {} reverted in block {}{}{}",
                transfer.signed.tx_hash,
                receipt.block(),
                if permit_receipt.success() {
                    ""
                } else {
                    " (its permit reverted too)"
                },
                why.map(|w| format!(": {w}")).unwrap_or_default()
            ))
        };
        let mined = MinedSweep {
            sweep_id: sweep.id,
            permit: MinedSend {
                send_id: permit.id,
                block: i64::try_from(permit_receipt.block()).unwrap_or(i64::MAX),
                block_hash: hash_text(&permit_receipt.block_hash),
                success: permit_receipt.success(),
                reason: None,
                now,
            },
            transfer: MinedSend {
                send_id: transfer.id,
                block,
                block_hash,
                success: receipt.success(),
                reason: reason.clone(),
                now,
            },
        };
        match self.store.finish_sweep(&mined, reason.as_deref()).await {
            Ok(finished) => {
                tracing::info!(
                    event = "sweep_finished",
                    sweep = finished.id,
                    status = finished.status.as_str(),
                    amount = finished.amount.get(),
                    reason = finished.reason.as_deref().unwrap_or(""),
                );
                Ok(Some(finished))
            }
            // Another run of the command finished it first.
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// An operator's end of a sweep whose transferFrom nonce another
    /// transaction used: checked on the chain first (the nonce used as of
    /// a block with MIN_CONFIRMATIONS, no receipt of the sweep's
    /// transferFrom), the sweep fails with nothing booked (its tokens are
    /// still at the deposit address, swept by a later run), and the
    /// database's next nonce rises to the chain's. Audited as `by`.
    pub async fn resolve_sweep(&self, id: i64, by: &str, reason: &str) -> AppResult<Sweep> {
        let sender = self.sweeper()?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(AppError::Invalid("resolving a sweep needs a reason".into()));
        }
        sender.verify_chain().await?;
        let open = self.store.open_sweeps().await?;
        let Some((_, sends)) = open.iter().find(|(s, _)| s.id == id) else {
            return Err(AppError::Conflict(format!(
                "sweep {id} is not in flight: nothing to resolve"
            )));
        };
        let Some(last) = sends.last() else {
            return Err(AppError::Internal(anyhow::anyhow!(
                "sweep {id} has no transactions"
            )));
        };
        let required = u64::from(self.config.chain.min_confirmations.max(1));
        let settled = (sender.rpc.head().await? + 1).saturating_sub(required);
        let used = sender
            .rpc
            .nonce_at(
                sender.address(),
                alloy::rpc::types::BlockNumberOrTag::Number(settled),
            )
            .await?;
        if used <= u64::try_from(last.nonce).unwrap_or(u64::MAX) {
            return Err(AppError::Conflict(format!(
                "nonce {} is not used on the chain with {required} confirmations yet ({used} mined by block {settled}): \
                 sweep {id}'s transferFrom may still be mined",
                last.nonce
            )));
        }
        for send in sends.iter().filter(|s| s.nonce == last.nonce) {
            if let Some(receipt) = sender.rpc.receipt(&send.signed.tx_hash).await? {
                return Err(AppError::Conflict(format!(
                    "sweep {id}'s transferFrom {} was mined in block {}: the next step records it",
                    send.signed.tx_hash,
                    receipt.block()
                )));
            }
        }
        let why = format!(
            "nonce {} was used on the chain by another transaction; resolved by {by}: {reason}",
            last.nonce
        );
        let entry = self.audit_entry(
            by,
            "resolve_sweep",
            format!("sweep {id}"),
            Some(reason.to_string()),
        );
        let failed = self
            .store
            .resolve_sweep(
                id,
                i64::try_from(used).unwrap_or(i64::MAX),
                &why,
                self.clock.now(),
                &entry,
            )
            .await?;
        tracing::warn!(event = "sweep_resolved", sweep = id, by, reason);
        Ok(failed)
    }

    /// Micro-USDC of sweeps whose transferFrom was mined with success at
    /// or before `block` but which are not booked yet: already in the hot
    /// wallet on the chain, still at the deposit addresses in the ledger.
    pub(super) async fn swept_unbooked(&self, block: u64) -> AppResult<i64> {
        let Some(sender) = self.sender.as_deref() else {
            return Ok(0);
        };
        let mut moving = 0;
        for (sweep, sends) in self.store.open_sweeps().await? {
            let Some(last) = sends.last() else { continue };
            for send in sends
                .iter()
                .filter(|s| s.nonce == last.nonce && s.state == SendState::Sent)
            {
                if let Some(receipt) = sender.rpc.receipt(&send.signed.tx_hash).await? {
                    if receipt.success() && receipt.block() <= block {
                        moving += sweep.amount.get();
                    }
                }
            }
        }
        Ok(moving)
    }
}
