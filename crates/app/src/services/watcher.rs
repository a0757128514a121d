//! The chain watcher (DEPOSIT_SOURCE=evm): reads the deposit token's
//! `Transfer` logs from the node and credits those to users' deposit
//! addresses once they have MIN_CONFIRMATIONS, each exactly once.
//!
//! One poll, holding the scheduler's lease (one watcher at a time):
//! 1. the node's head; a node behind the blocks already scanned is an
//!    error, never a rewind;
//! 2. the kept hashes of the last scanned blocks against the node's: a
//!    scanned block the node no longer has is a reorg deeper than the
//!    confirmations, recorded with what was credited from it, and crediting
//!    halts until an operator acknowledges it (`updown chain ack-reorg`);
//!    nothing is reversed;
//! 3. the confirmed blocks after the cursor, in ranges of EVM_LOG_RANGE
//!    (halved when the node says too big), each committed in one
//!    transaction with its credits, its last blocks' hashes and the cursor
//!    (moved only from where it was read): a crash anywhere repeats a range
//!    or moves on, never credits twice or skips. The logs of blocks whose
//!    hashes are kept must name those hashes, and the kept blocks must
//!    chain, or the range waits for the next poll;
//! 4. once caught up, the unconfirmed tip's transfers, as pending deposits
//!    with their confirmations.
//!
//! Every transfer of the token in a range is read and matched to deposit
//! addresses in one query (one eth_getLogs per range whatever the number
//! of users; see BENCHMARKS.md for the measurement against topic filters).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use chrono::{DateTime, Utc};
use serde_json::json;
use updown_domain::ids::UserId;
use updown_domain::Micros;
use updown_store::{ChainCredit, NewReorg, PendingDeposit, ScannedBlock, ScannedRange, StoreError};

use super::App;
use crate::chain::evm::{hash_text, BlockHead, EvmError, EvmRpc, RpcErrorKind, TransferLog};
use crate::error::{AppError, AppResult};
use crate::events::EventKind;
use crate::retry::Backoff;

/// Ranges scanned per poll at most: a long catch-up yields between polls.
const RANGES_PER_POLL: usize = 50;
/// Consecutive failed polls after which /health says the watcher is
/// degraded.
pub const FAILURES_DEGRADED: u32 = 3;

/// The watcher's connection and what it last saw, for /health, the
/// metrics and `updown chain status`.
pub struct ChainWatch {
    pub rpc: EvmRpc,
    pub token: Address,
    pub chain_id: u64,
    /// Blocks per eth_getLogs now (EVM_LOG_RANGE, halved on "too big").
    range: AtomicU64,
    /// The node's chain id matched EVM_CHAIN_ID.
    status: Mutex<WatchStatus>,
}

/// What the watcher last saw.
#[derive(Clone, Debug, Default)]
pub struct WatchStatus {
    pub head: Option<u64>,
    /// The first block not scanned yet.
    pub cursor: Option<i64>,
    /// Confirmed blocks not scanned yet.
    pub lag: Option<u64>,
    pub last_success: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// The reorg that halts crediting, if any.
    pub halted_by_reorg: Option<i64>,
}

/// What one poll did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct WatchTick {
    pub credited: usize,
    /// Transfers credited before (by the webhook, or before a crash).
    pub already_credited: usize,
    pub pending: usize,
    /// Confirmed blocks are left to scan: poll again at once.
    pub behind: bool,
    pub halted_by_reorg: Option<i64>,
    pub held_elsewhere: bool,
}

impl ChainWatch {
    pub fn new(rpc: EvmRpc, token: Address, chain_id: u64, range: u64) -> ChainWatch {
        ChainWatch {
            rpc,
            token,
            chain_id,
            range: AtomicU64::new(range.max(1)),
            status: Mutex::new(WatchStatus::default()),
        }
    }

    pub fn status(&self) -> WatchStatus {
        self.status.lock().expect("status lock").clone()
    }

    fn update(&self, change: impl FnOnce(&mut WatchStatus)) {
        change(&mut self.status.lock().expect("status lock"));
    }

    /// The node must be on EVM_CHAIN_ID (checked once per process).
    pub async fn verify_chain(&self) -> Result<(), EvmError> {
        self.rpc
            .require_chain(self.chain_id, "nothing is read from it")
            .await
    }
}

/// Confirmed blocks (those with `required` confirmations at `head`) not
/// scanned yet when the next to scan is `next_block`.
pub(crate) fn confirmed_lag(head: u64, required: u64, next_block: i64) -> u64 {
    (head + 2)
        .saturating_sub(required.max(1))
        .saturating_sub(u64::try_from(next_block).unwrap_or(0))
}

impl App {
    /// Polls every EVM_POLL_MS until `shutdown` resolves (at once while
    /// confirmed blocks are left to scan); failures back off, capped and
    /// jittered.
    pub async fn run_chain_watcher(&self, shutdown: impl std::future::Future<Output = ()>) {
        let Some(watch) = self.watch.clone() else {
            return;
        };
        tokio::pin!(shutdown);
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut last_reconcile: Option<tokio::time::Instant> = None;
        loop {
            let wait = match self.watch_step().await {
                Ok(tick) => {
                    backoff.reset();
                    watch.update(|s| {
                        s.consecutive_failures = 0;
                        s.last_error = None;
                        s.last_success = Some(self.clock.now());
                    });
                    if tick.behind {
                        Duration::ZERO
                    } else {
                        self.config.chain.evm.poll
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "chain watcher poll failed; backing off");
                    watch.update(|s| {
                        s.consecutive_failures += 1;
                        s.last_error = Some(e.to_string());
                    });
                    backoff.next_wait()
                }
            };
            if let Some(every) = self.config.chain.evm.reconcile_every {
                if last_reconcile.is_none_or(|at| at.elapsed() >= every) {
                    last_reconcile = Some(tokio::time::Instant::now());
                    if let Err(e) = self.reconcile().await {
                        tracing::warn!(error = %e, "custody reconciliation failed; retrying at the next interval");
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One poll, if no other process holds the scheduler's lease.
    pub async fn watch_step(&self) -> AppResult<WatchTick> {
        let Some(watch) = self.watch.clone() else {
            return Err(AppError::Invalid(
                "the chain watcher is off: set DEPOSIT_SOURCE=evm with EVM_RPC_URL and EVM_CHAIN_ID".into(),
            ));
        };
        let Some(lease) = self.store.scheduler_lease().await? else {
            return Ok(WatchTick {
                held_elsewhere: true,
                ..WatchTick::default()
            });
        };
        let tick = self.watch_holding_lease(&watch).await;
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "releasing the scheduler lease failed; the connection closes it");
        }
        let tick = tick?;
        if tick.credited > 0 || tick.halted_by_reorg.is_some() {
            tracing::info!(event = "chain_watch", ?tick);
        }
        Ok(tick)
    }

    async fn watch_holding_lease(&self, watch: &ChainWatch) -> AppResult<WatchTick> {
        let mut tick = WatchTick::default();
        watch.verify_chain().await?;
        let start = i64::try_from(self.config.chain.evm.start_block).unwrap_or(i64::MAX);
        let token = token_text(&watch.token);
        let chain_id = i64::try_from(watch.chain_id).unwrap_or(i64::MAX);
        let mut cursor = self
            .store
            .chain_cursor(chain_id, &token, start, self.clock.now())
            .await?
            .next_block;
        let head = watch.rpc.head().await?;
        metrics::gauge!("updown_chain_head").set(head as f64);
        watch.update(|s| {
            s.head = Some(head);
            s.cursor = Some(cursor);
        });
        let cursor_block = u64::try_from(cursor).unwrap_or(0);
        if head.saturating_add(1) < cursor_block {
            return Err(AppError::from(EvmError::new(
                RpcErrorKind::Inconsistent,
                format!(
                    "the node's head {head} is behind block {} already scanned: a lagging or different node",
                    cursor - 1
                ),
            )));
        }
        if let Some(reorg) = self.check_reorg(watch).await? {
            tick.halted_by_reorg = Some(reorg);
            return Ok(tick);
        }
        let required = u64::from(self.config.chain.min_confirmations.max(1));
        let window = (required * 2).max(16);
        // The highest block with enough confirmations, if any.
        let target = (head + 1).checked_sub(required);
        let mut ranges = 0;
        while let Some(target) = target.filter(|t| u64::try_from(cursor).unwrap_or(0) <= *t) {
            if ranges == RANGES_PER_POLL {
                tick.behind = true;
                break;
            }
            ranges += 1;
            let from = u64::try_from(cursor).unwrap_or(0);
            let to = (from + watch.range.load(Ordering::Relaxed) - 1).min(target);
            let transfers = match watch.rpc.transfers(watch.token, from, to).await {
                Err(e) if e.kind == RpcErrorKind::RangeTooBig && to > from => {
                    let blocks = to - from + 1;
                    let range = (blocks / 2).max(1);
                    watch.range.store(range, Ordering::Relaxed);
                    metrics::counter!("updown_chain_rpc_errors_total", "kind" => e.kind.as_str())
                        .increment(1);
                    tracing::warn!(range, "the node refused the log range as too big; halved");
                    continue;
                }
                other => other?,
            };
            let (credited, already) = self.scan_range(watch, from, to, window, transfers).await?;
            tick.credited += credited;
            tick.already_credited += already;
            cursor = i64::try_from(to + 1).unwrap_or(i64::MAX);
            watch.update(|s| s.cursor = Some(cursor));
        }
        let lag = confirmed_lag(head, required, cursor);
        metrics::gauge!("updown_chain_cursor").set(cursor as f64);
        metrics::gauge!("updown_chain_lag_blocks").set(lag as f64);
        watch.update(|s| s.lag = Some(lag));
        if !tick.behind {
            tick.pending = self.record_pending(watch, cursor, head).await?;
        }
        Ok(tick)
    }

    /// Compares the kept hashes with the node's; records a reorg (or
    /// finds the one recorded) and returns its id when crediting halts.
    async fn check_reorg(&self, watch: &ChainWatch) -> AppResult<Option<i64>> {
        let halted = |id: i64| {
            metrics::gauge!("updown_chain_halted").set(1.0);
            watch.update(|s| s.halted_by_reorg = Some(id));
            Ok(Some(id))
        };
        if let Some(open) = self.store.open_reorg().await? {
            return halted(open.id);
        }
        metrics::gauge!("updown_chain_halted").set(0.0);
        watch.update(|s| s.halted_by_reorg = None);
        let kept = self.store.scanned_blocks(10_000).await?;
        let Some(top) = kept.first() else {
            return Ok(None);
        };
        let number = u64::try_from(top.number).unwrap_or(0);
        let now_top = watch.rpc.block(number).await?;
        match now_top {
            Some(block) if hash_text(&block.hash) == top.hash => return Ok(None),
            Some(_) => {}
            None => {
                return Err(AppError::from(EvmError::new(
                    RpcErrorKind::Inconsistent,
                    format!("the node has no block {number}, which was scanned: a lagging node"),
                )))
            }
        }
        let numbers: Vec<u64> = kept
            .iter()
            .rev()
            .map(|b| u64::try_from(b.number).unwrap_or(0))
            .collect();
        let now = watch.rpc.blocks(&numbers).await?;
        let (kept_block, node_block) = kept
            .iter()
            .rev()
            .zip(&now)
            .find(|(kept, node)| kept.hash != hash_text(&node.hash))
            .expect("the top block differs");
        let reorg = self
            .record_deep_reorg(
                &NewReorg {
                    fork_block: kept_block.number,
                    depth: top.number - kept_block.number + 1,
                    old_hash: kept_block.hash.clone(),
                    new_hash: hash_text(&node_block.hash),
                    detected_at: self.clock.now(),
                },
                "a reorg deeper than MIN_CONFIRMATIONS replaced scanned blocks; crediting from the chain halts until `updown chain ack-reorg`",
            )
            .await?;
        halted(reorg.id)
    }

    /// Records a reorg deeper than the confirmations (the watcher's, or
    /// one under the hot wallet's transactions), counts it, logs `what`
    /// and publishes `reorg_detected`.
    pub(super) async fn record_deep_reorg(
        &self,
        found: &NewReorg,
        what: &str,
    ) -> AppResult<updown_store::Reorg> {
        let reorg = self.store.record_reorg(found).await?;
        metrics::counter!("updown_chain_reorgs_total").increment(1);
        tracing::error!(
            event = "reorg_detected",
            reorg = reorg.id,
            fork_block = reorg.fork_block,
            depth = reorg.depth,
            affected = %reorg.affected,
            "{what}"
        );
        self.publish(
            EventKind::ReorgDetected,
            json!({
                "reorg_id": reorg.id,
                "fork_block": reorg.fork_block,
                "depth": reorg.depth,
            }),
        );
        Ok(reorg)
    }

    /// Commits blocks `from..=to` with their `transfers`: how many it
    /// credited, and how many were credited before.
    async fn scan_range(
        &self,
        watch: &ChainWatch,
        from: u64,
        to: u64,
        window: u64,
        transfers: Vec<TransferLog>,
    ) -> AppResult<(usize, usize)> {
        let kept_from = (to + 1).saturating_sub(window).max(from);
        let numbers: Vec<u64> = (kept_from..=to).collect();
        let blocks = watch.rpc.blocks(&numbers).await?;
        self.check_consistent(&blocks, &transfers, from).await?;
        let credits = self.credits_of(&transfers).await?;
        let production = self.config.production;
        if !credits.is_empty() {
            crate::faults::crash_point("watcher_before_commit", production);
        }
        let committed = self
            .store
            .commit_range(&ScannedRange {
                from: i64::try_from(from).unwrap_or(i64::MAX),
                to: i64::try_from(to + 1).unwrap_or(i64::MAX),
                blocks: blocks
                    .iter()
                    .map(|b| ScannedBlock {
                        number: i64::try_from(b.number()).unwrap_or(i64::MAX),
                        hash: hash_text(&b.hash),
                        parent_hash: hash_text(&b.parent_hash),
                    })
                    .collect(),
                credits,
                keep_blocks_from: i64::try_from(kept_from).unwrap_or(0),
                now: self.clock.now(),
            })
            .await
            .map_err(|e| match e {
                // Another watcher moved the cursor, or a reorg halts:
                // the next poll sees why.
                StoreError::Conflict(why) => AppError::Unavailable(why),
                other => other.into(),
            })?;
        if !committed.credited.is_empty() {
            crate::faults::crash_point("watcher_after_commit", production);
        }
        metrics::counter!("updown_chain_deposits_credited_total")
            .increment(committed.credited.len() as u64);
        for deposit in &committed.credited {
            tracing::info!(
                event = "deposit_credited",
                source = "chain",
                user = %deposit.user,
                amount = deposit.amount.get(),
                tx_hash = deposit.chain_tx_hash,
                log_index = deposit.log_index
            );
            self.announce_deposit(deposit);
        }
        Ok((committed.credited.len(), committed.already_credited))
    }

    /// The kept blocks must chain to each other and to the block kept
    /// below them, and every log in them must name their hash: otherwise
    /// the node changed its chain while it was read.
    async fn check_consistent(
        &self,
        blocks: &[BlockHead],
        transfers: &[TransferLog],
        from: u64,
    ) -> AppResult<()> {
        let inconsistent =
            |why: String| AppError::from(EvmError::new(RpcErrorKind::Inconsistent, why));
        for pair in blocks.windows(2) {
            if pair[1].parent_hash != pair[0].hash {
                return Err(inconsistent(format!(
                    "block {} does not follow block {}: the chain changed while it was read",
                    pair[1].number(),
                    pair[0].number()
                )));
            }
        }
        if let Some(first) = blocks.first().filter(|b| b.number() == from && from > 0) {
            let below = self.store.scanned_blocks(1).await?;
            if let Some(below) = below.first().filter(|b| b.number + 1 == from as i64) {
                if hash_text(&first.parent_hash) != below.hash {
                    return Err(inconsistent(format!(
                        "block {from}'s parent is not the block {} scanned: a reorg under the cursor",
                        from - 1
                    )));
                }
            }
        }
        let first_kept = blocks.first().map_or(u64::MAX, BlockHead::number);
        for t in transfers.iter().filter(|t| t.block_number >= first_kept) {
            let block = &blocks[(t.block_number - first_kept) as usize];
            if block.hash != t.block_hash {
                return Err(inconsistent(format!(
                    "a log of block {} names another hash than the block's: the chain changed while it was read",
                    t.block_number
                )));
            }
        }
        Ok(())
    }

    /// The transfers to users' deposit addresses, as credits; amounts too
    /// big for micro-USDC in an i64 are refused (logged, counted).
    async fn credits_of(&self, transfers: &[TransferLog]) -> AppResult<Vec<ChainCredit>> {
        let owners = self.owners_of(transfers).await?;
        let mut credits = Vec::new();
        for t in transfers {
            let Some(user) = owners.get(&t.to) else {
                continue;
            };
            let Some(amount) = micros_of(t.value) else {
                metrics::counter!("updown_chain_refused_transfers_total", "reason" => "amount_too_large").increment(1);
                tracing::error!(
                    event = "transfer_refused",
                    user = %user,
                    tx_hash = %hash_text(&t.tx_hash),
                    log_index = t.log_index,
                    value = %t.value,
                    "a transfer to a deposit address is above what micro-USDC in 64 bits holds; not credited"
                );
                continue;
            };
            if amount.is_zero() {
                continue;
            }
            credits.push(ChainCredit {
                user: *user,
                amount,
                tx_hash: hash_text(&t.tx_hash),
                log_index: i64::try_from(t.log_index).unwrap_or(i64::MAX),
                block_number: i64::try_from(t.block_number).unwrap_or(i64::MAX),
                block_hash: hash_text(&t.block_hash),
            });
        }
        Ok(credits)
    }

    /// The owners of the deposit addresses among the transfers' `to`.
    async fn owners_of(
        &self,
        transfers: &[TransferLog],
    ) -> AppResult<std::collections::HashMap<Address, UserId>> {
        let mut addresses: Vec<String> = transfers.iter().map(|t| t.to.to_checksum(None)).collect();
        addresses.sort();
        addresses.dedup();
        let owners = self.store.deposit_address_owners(&addresses).await?;
        Ok(owners
            .into_iter()
            .filter_map(|(address, user)| address.parse::<Address>().ok().map(|a| (a, user)))
            .collect())
    }

    /// Records the transfers of blocks `cursor..=head` (not confirmed
    /// yet) as pending deposits; how many there are.
    async fn record_pending(&self, watch: &ChainWatch, cursor: i64, head: u64) -> AppResult<usize> {
        let from = u64::try_from(cursor).unwrap_or(0);
        let transfers = if from <= head {
            watch.rpc.transfers(watch.token, from, head).await?
        } else {
            Vec::new()
        };
        let owners = self.owners_of(&transfers).await?;
        let now = self.clock.now();
        let pending: Vec<PendingDeposit> = transfers
            .iter()
            .filter_map(|t| {
                let user = *owners.get(&t.to)?;
                let amount = micros_of(t.value).filter(|a| !a.is_zero())?;
                Some(PendingDeposit {
                    tx_hash: hash_text(&t.tx_hash),
                    log_index: i64::try_from(t.log_index).ok()?,
                    user,
                    amount,
                    block_number: i64::try_from(t.block_number).ok()?,
                    confirmations: i64::try_from(head - t.block_number + 1).ok()?,
                    seen_at: now,
                })
            })
            .collect();
        self.store.replace_pending_deposits(&pending).await?;
        Ok(pending.len())
    }

    /// Acknowledges reorg `id` with the operator's reason: crediting
    /// resumes from the cursor.
    pub async fn ack_reorg(
        &self,
        id: i64,
        by: &str,
        reason: &str,
    ) -> AppResult<updown_store::Reorg> {
        if reason.trim().is_empty() {
            return Err(AppError::Invalid(
                "acknowledging a reorg needs a reason".into(),
            ));
        }
        let reorg = self
            .store
            .ack_reorg(id, by, reason.trim(), self.clock.now())
            .await?;
        tracing::warn!(
            event = "reorg_acknowledged",
            reorg = id,
            by,
            reason = reason.trim()
        );
        Ok(reorg)
    }

    /// A user's credited deposits (newest first, before deposit
    /// `before`) and their transfers seen but not yet credited.
    pub async fn deposits_of(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> AppResult<(Vec<updown_store::Deposit>, Vec<PendingDeposit>)> {
        Ok((
            self.store.deposits_of_user(user, before, limit).await?,
            self.store.pending_deposits(Some(user), 100).await?,
        ))
    }

    /// The watcher's state as the database has it (cursor, open reorg).
    pub async fn chain_records(
        &self,
    ) -> AppResult<(Option<updown_store::ChainCursor>, Vec<updown_store::Reorg>)> {
        Ok((
            self.store.read_chain_cursor().await?,
            self.store.reorgs(20).await?,
        ))
    }
}

/// A token amount as micro-USDC, if it fits.
fn micros_of(value: U256) -> Option<Micros> {
    let value = i64::try_from(value).ok()?;
    Micros::new(value).ok()
}

/// The token as the cursor records it: lower-case hex with 0x.
pub fn token_text(token: &Address) -> String {
    format!("{token:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_above_i64_micro_usdc_are_not_micros() {
        assert_eq!(
            micros_of(U256::from(5_000_000u64)),
            Some(Micros::new(5_000_000).unwrap())
        );
        assert_eq!(
            micros_of(U256::from(i64::MAX as u64)).map(|m| m.get()),
            Some(i64::MAX)
        );
        assert_eq!(
            micros_of(U256::from(i64::MAX as u64) + U256::from(1u8)),
            None
        );
        assert_eq!(micros_of(U256::MAX), None);
    }
}
