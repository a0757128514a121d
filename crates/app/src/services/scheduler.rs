//! The scheduler's one step: every overdue transition, oldest round first
//! (lock at the lock instant, settle from the oracle from the settle
//! instant, void once the void instant passes without closes), then the
//! round that should take bets now is opened. Each transition is
//! idempotent, so a step can be repeated, and one after downtime catches
//! up in order: a service down over a weekend locks and settles Friday's
//! round, then opens Monday's.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use updown_domain::ids::RoundCode;
use updown_domain::round::RoundStatus;

use super::{App, SettleRequest};
use crate::error::{AppError, AppResult};

/// What one step did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tick {
    pub opened: Vec<String>,
    pub locked: Vec<String>,
    pub settled: Vec<String>,
    pub voided: Vec<String>,
    /// Rounds waiting for the oracle's closes, with why.
    pub waiting: Vec<(String, String)>,
    /// Transitions that failed, with why; retried next step.
    pub failed: Vec<(String, String)>,
    /// Another process was taking the step.
    pub held_elsewhere: bool,
}

impl Tick {
    pub fn is_idle(&self) -> bool {
        *self == Tick::default()
    }
}

/// How often each instance sees whether the revision check is due (it
/// runs once per `REVISION_CHECK_EVERY` for all: `revision_step`).
const REVISION_POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// How often `serve` purges what is kept only for a while.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);
/// Rows of each kind deleted per statement, and statements per purge: a
/// purge never holds the database for long, and catches up over steps.
const PURGE_BATCH: i64 = 10_000;
const PURGE_BATCHES: usize = 10;
/// Idempotency-Keys are kept (and replayed) this long, then purged.
pub const IDEMPOTENCY_KEPT_FOR: chrono::Duration = chrono::Duration::hours(24);
/// Refused deposit notifications are kept this long (for the operator's
/// investigations), then purged.
pub const REFUSED_NOTIFICATIONS_KEPT_FOR: chrono::Duration = chrono::Duration::days(30);

fn count(kind: &'static str) {
    metrics::counter!("updown_scheduler_transitions_total", "kind" => kind).increment(1);
}

/// Whether this process's scheduler runs, and when it last stepped (by
/// the app's clock), for `/health`.
pub struct Heartbeat {
    running: AtomicBool,
    /// Milliseconds since the epoch; `i64::MIN` before the first step.
    last: AtomicI64,
    /// The next instant a round falls due (a lock, a settle instant), in
    /// microseconds since the epoch; `i64::MAX` when none is known.
    next_due: AtomicI64,
}

impl Default for Heartbeat {
    fn default() -> Heartbeat {
        Heartbeat {
            running: AtomicBool::new(false),
            last: AtomicI64::new(i64::MIN),
            next_due: AtomicI64::new(i64::MAX),
        }
    }
}

impl Heartbeat {
    fn beat(&self, at: DateTime<Utc>) {
        self.last.store(at.timestamp_millis(), Ordering::Relaxed);
        metrics::gauge!("updown_scheduler_last_step_timestamp_seconds").set(at.timestamp() as f64);
    }
}

impl App {
    /// Steps every `SCHEDULER_TICK_SECS` until `shutdown` resolves: the
    /// rounds, then the withdrawal worker. A failed step is logged and
    /// retried at the next tick.
    pub async fn run_scheduler(&self, shutdown: impl Future<Output = ()>) {
        self.heartbeat.running.store(true, Ordering::Relaxed);
        tokio::pin!(shutdown);
        self.warn_of_another_oracle().await;
        let mut last_purge: Option<tokio::time::Instant> = None;
        // A task of its own: it asks the oracle's sources (timeouts,
        // retries) and must never hold up a step, nor be held by one.
        let revisions = tokio::spawn({
            let app = self.clone();
            async move {
                loop {
                    if let Err(e) = app.revision_step().await {
                        tracing::error!(error = %e, "the revision check failed; retrying later");
                    }
                    tokio::time::sleep(REVISION_POLL_EVERY).await;
                }
            }
        });
        loop {
            if let Err(e) = self.scheduler_step().await {
                tracing::error!(error = %e, "scheduler step failed; retrying at the next tick");
            }
            if let Err(e) = self.withdrawal_step().await {
                tracing::error!(error = %e, "withdrawal step failed; retrying at the next tick");
            }
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                last_purge = Some(tokio::time::Instant::now());
                if let Err(e) = self.purge_step().await {
                    tracing::error!(error = %e, "purge failed; retrying later");
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.until_next_step()) => {}
            }
        }
        // Stopped wherever it is: it records an incident in one statement.
        revisions.abort();
        self.heartbeat.running.store(false, Ordering::Relaxed);
    }

    /// Says loudly, at the start, which unfinished rounds' terms name
    /// another oracle than this process's: they will not ask it.
    async fn warn_of_another_oracle(&self) {
        let asks = self.oracle.name();
        let rounds = match self
            .store
            .unfinished_rounds(&self.config.rounds.market)
            .await
        {
            Ok(rounds) => rounds,
            Err(e) => return tracing::warn!(error = %e, "reading the unfinished rounds failed"),
        };
        for round in rounds {
            if let Some(named) = round.terms.oracle.as_deref().filter(|named| *named != asks) {
                tracing::error!(
                    event = "oracle_changed",
                    round = %round.terms.code,
                    named,
                    asks = %asks,
                    "this round's terms name another oracle: it settles on closes recorded with \
                     `updown price set`, by hand, or voids at its void instant"
                );
            }
        }
    }

    /// The tick, or less when a round falls due sooner: the scheduler
    /// wakes at the lock instant itself rather than up to a tick after it.
    fn until_next_step(&self) -> std::time::Duration {
        let tick = self.config.scheduler.tick;
        let Some(at) = self.scheduler_next_due() else {
            return tick;
        };
        match self.clock.real_time_until(at) {
            // At least a millisecond: a wake a hair early must not spin.
            Some(wait) => wait.clamp(std::time::Duration::from_millis(1), tick),
            None => tick,
        }
    }

    /// Verifies the ledger every `every` until `shutdown` resolves: what came
    /// after the latest checkpoint (a new checkpoint when it holds), and the
    /// whole ledger instead when `full_every` has passed since the last full
    /// one by any instance (kept in the database, so restarts do not put it
    /// off; a ledger never verified in full gets one first). For the alerts:
    /// `updown_ledger_verified{scope, result}` is 1 for the last run's result
    /// (`ok`, `failed`) in its scope (`incremental`, `full`) and 0 for the
    /// other, and `updown_ledger_verified_timestamp_seconds` says when. A
    /// failed check is logged with what failed; a verify that cannot run sets
    /// nothing (the checkpoint ages, which alerts too). A run stopped half-way
    /// leaves nothing: the checkpoint is written in one transaction.
    pub async fn run_periodic_verify(
        &self,
        every: std::time::Duration,
        full_every: Option<std::time::Duration>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let full = match full_every {
                None => false,
                Some(every) => match self.store.last_verify_run("full").await {
                    Ok(last) => last.is_none_or(|at| {
                        (self.clock.now() - at).to_std().unwrap_or_default() >= every
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "periodic verify: when the last full one ran is unknown");
                        false
                    }
                },
            };
            let (scope, outcome) = if full {
                ("full", self.verify().await)
            } else {
                (
                    "incremental",
                    self.verify_incremental().await.map(|run| run.report),
                )
            };
            match outcome {
                Ok(report) => {
                    let ok = report.ok();
                    if !ok {
                        tracing::error!(
                            scope,
                            failures = ?report.failures(),
                            "periodic verify: a ledger invariant fails"
                        );
                    }
                    for (result, set) in [("ok", ok), ("failed", !ok)] {
                        metrics::gauge!("updown_ledger_verified", "scope" => scope, "result" => result)
                            .set(if set { 1.0 } else { 0.0 });
                    }
                    metrics::gauge!("updown_ledger_verified_timestamp_seconds", "scope" => scope)
                        .set(self.clock.now().timestamp() as f64);
                    if let Err(e) = self
                        .store
                        .record_verify_run(scope, self.clock.now(), ok)
                        .await
                    {
                        tracing::warn!(error = %e, "periodic verify: its run could not be recorded");
                    }
                }
                Err(e) => tracing::warn!(scope, error = %e, "periodic verify could not run"),
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One scheduler step at the clock's now, if no other process is
    /// taking one (the store's scheduler lease); otherwise nothing, and
    /// `held_elsewhere` says so.
    pub async fn scheduler_step(&self) -> AppResult<Tick> {
        // Only a step that read the rounds knows the next due instant: a
        // step held elsewhere or failed waits a whole tick, rather than
        // waking again and again for an instant already past.
        self.heartbeat.next_due.store(i64::MAX, Ordering::Relaxed);
        let Some(lease) = self.store.scheduler_lease().await? else {
            self.heartbeat.beat(self.clock.now());
            return Ok(Tick {
                held_elsewhere: true,
                ..Tick::default()
            });
        };
        let tick = self.step_holding_lease().await;
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "releasing the scheduler lease failed; the connection closes it");
        }
        tick
    }

    async fn step_holding_lease(&self) -> AppResult<Tick> {
        let now = self.clock.now();
        let mut tick = Tick::default();
        let mut rounds = self
            .store
            .unfinished_rounds(&self.config.rounds.market)
            .await?;
        rounds.sort_by_key(|r| r.terms.code);
        let next_due = rounds
            .iter()
            .filter_map(|r| match r.status {
                RoundStatus::Open => Some(r.terms.lock_at),
                RoundStatus::Locked => Some(r.terms.settle_at),
                RoundStatus::Settled | RoundStatus::Void => None,
            })
            .filter(|at| *at > now)
            .min();
        self.heartbeat.next_due.store(
            next_due.map_or(i64::MAX, |at| at.timestamp_micros()),
            Ordering::Relaxed,
        );
        for round in rounds {
            let code = round.terms.code;
            let mut status = round.status;
            if status == RoundStatus::Open && now >= round.terms.lock_at {
                match self.lock_round(code).await {
                    Ok(_) => {
                        tick.locked.push(code.to_string());
                        count("lock");
                        status = RoundStatus::Locked;
                    }
                    Err(e) => {
                        tick.failed.push((code.to_string(), e.to_string()));
                        continue;
                    }
                }
            }
            if status == RoundStatus::Locked {
                // A result by hand, approved, goes before the oracle.
                match self.carry_out_approved(code).await {
                    Ok(Some(round)) => {
                        tick.settled.push(code.to_string());
                        count(if round.status == RoundStatus::Void {
                            "void"
                        } else {
                            "settle"
                        });
                        continue;
                    }
                    Ok(None) => {}
                    // Whatever went wrong, the oracle's way (resume, or
                    // void at the void instant) still runs below.
                    Err(e) => tick.failed.push((code.to_string(), e.to_string())),
                }
            }
            if status == RoundStatus::Locked && now >= round.terms.settle_at {
                self.settle_overdue(code, &mut tick).await;
            }
        }
        match self.open_round(None).await {
            Ok((round, true)) => {
                tick.opened.push(round.terms.code.to_string());
                count("open");
            }
            Ok((_, false)) => {}
            Err(e) => tick.failed.push(("open".into(), e.to_string())),
        }
        self.heartbeat.beat(now);
        if !tick.is_idle() {
            tracing::info!(event = "scheduler_step", ?tick);
        }
        Ok(tick)
    }

    /// Deletes Idempotency-Keys older than `KEPT_FOR` (24 h) and refused
    /// deposit notifications older than 30 days, in bounded batches.
    pub async fn purge_step(&self) -> AppResult<updown_store::Purged> {
        let now = self.clock.now();
        let mut total = updown_store::Purged::default();
        for _ in 0..PURGE_BATCHES {
            let purged = self
                .store
                .purge(
                    now - IDEMPOTENCY_KEPT_FOR,
                    now - REFUSED_NOTIFICATIONS_KEPT_FOR,
                    PURGE_BATCH,
                )
                .await?;
            total.idempotency_keys += purged.idempotency_keys;
            total.deposit_notifications += purged.deposit_notifications;
            if purged.idempotency_keys < PURGE_BATCH as u64
                && purged.deposit_notifications < PURGE_BATCH as u64
            {
                break;
            }
        }
        if total != updown_store::Purged::default() {
            tracing::info!(
                event = "purged",
                idempotency_keys = total.idempotency_keys,
                deposit_notifications = total.deposit_notifications
            );
        }
        Ok(total)
    }

    async fn settle_overdue(&self, code: RoundCode, tick: &mut Tick) {
        match self.settle_round(code, SettleRequest::Auto).await {
            Ok(round) if round.status == RoundStatus::Void => {
                tick.voided.push(code.to_string());
                count("void");
            }
            // Held for the dispute window (SETTLE_DISPUTE_MIN).
            Ok(round) if round.status == RoundStatus::Locked => {
                let published = round.published.map_or_else(String::new, |p| {
                    format!("result {} published at {}; ", p.outcome.as_str(), p.at)
                });
                tick.waiting.push((
                    code.to_string(),
                    format!(
                        "{published}paid once the dispute window (SETTLE_DISPUTE_MIN) has passed"
                    ),
                ));
            }
            Ok(_) => {
                tick.settled.push(code.to_string());
                count("settle");
            }
            // No closes yet: retried until the void instant, then voided.
            Err(AppError::Unavailable(why)) => tick.waiting.push((code.to_string(), why)),
            Err(e) => tick.failed.push((code.to_string(), e.to_string())),
        }
    }
}

impl App {
    /// Whether this process runs the scheduler loop now.
    pub fn scheduler_running(&self) -> bool {
        self.heartbeat.running.load(Ordering::Relaxed)
    }

    /// When this process's scheduler last stepped, if it ever has.
    /// The next instant a round falls due, as the last step that read the
    /// rounds found it: the scheduler wakes then (`None`: a whole tick).
    pub fn scheduler_next_due(&self) -> Option<DateTime<Utc>> {
        match self.heartbeat.next_due.load(Ordering::Relaxed) {
            i64::MAX => None,
            micros => DateTime::from_timestamp_micros(micros),
        }
    }

    pub fn scheduler_last_tick(&self) -> Option<DateTime<Utc>> {
        match self.heartbeat.last.load(Ordering::Relaxed) {
            i64::MIN => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }
}
