//! Rounds: open, lock, settle (from the oracle or by hand) and void, and
//! the closes they rest on.

use chrono::NaiveDate;
use updown_domain::ids::RoundCode;
use updown_domain::round::{decide, Outcome, Price, RoundStatus, RoundTerms};
use updown_domain::schedule::{round_schedule, round_taking_bets_at};
use updown_store::{
    ApprovalKind, AuditEntry, Evidence, NewRound, PriceRecord, Round, SettlementStart, StoreError,
};

use serde_json::json;

use super::App;
use crate::error::{AppError, AppResult};
use crate::events::EventKind;
use crate::wire::instant;

/// How a round's result is decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettleRequest {
    /// From the oracle's two closes; VOID once the void instant passes
    /// without them.
    Auto,
    /// An operator's result, with who and why.
    Manual {
        outcome: Outcome,
        actor: String,
        reason: String,
    },
}

impl SettleRequest {
    /// From an operator's `AUTO|UP|DOWN|VOID` (a manual result's reason is
    /// checked where every settlement starts, `settle_round_with`).
    pub fn from_operator(result: &str, actor: String, reason: Option<String>) -> AppResult<Self> {
        if result.eq_ignore_ascii_case("AUTO") {
            return Ok(SettleRequest::Auto);
        }
        let outcome: Outcome = result.parse().map_err(|_| {
            AppError::Invalid(format!("result {result:?} must be AUTO, UP, DOWN or VOID"))
        })?;
        Ok(SettleRequest::Manual {
            outcome,
            actor,
            reason: reason.unwrap_or_default(),
        })
    }
}

/// Knobs for the settlement loop: progress reports and, in tests, a
/// simulated crash after some chunks.
#[derive(Default)]
pub struct SettleOptions<'a> {
    pub on_progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
    pub fail_after_chunks: Option<usize>,
}

impl App {
    pub async fn round(&self, code: RoundCode) -> AppResult<Round> {
        self.store
            .round(&self.config.rounds.market, code)
            .await
            .map_err(|_| {
                AppError::NotFound(format!(
                    "round {code} of {} does not exist",
                    self.config.rounds.market
                ))
            })
    }

    pub async fn rounds(&self, limit: i64) -> AppResult<Vec<Round>> {
        Ok(self
            .store
            .rounds(&self.config.rounds.market, limit.clamp(1, 1000))
            .await?)
    }

    /// Opens the round for `code`, or the one that should take bets now.
    /// Opening is idempotent: an existing round is returned unchanged.
    pub async fn open_round(&self, code: Option<RoundCode>) -> AppResult<(Round, bool)> {
        self.open_round_by(code, None).await
    }

    /// [`App::open_round`], by an operator (actor, reason) when given: their
    /// audit entry commits with the round it creates.
    async fn open_round_by(
        &self,
        code: Option<RoundCode>,
        operator: Option<(&str, Option<String>)>,
    ) -> AppResult<(Round, bool)> {
        let now = self.clock.now();
        let schedule = match code {
            Some(code) => round_schedule(&self.calendar, &self.config.rounds.schedule, code.date()),
            None => round_taking_bets_at(&self.calendar, &self.config.rounds.schedule, now),
        }
        .map_err(|e| AppError::Invalid(e.to_string()))?;
        if let Ok(existing) = self
            .store
            .round(&self.config.rounds.market, schedule.code())
            .await
        {
            return Ok((existing, false));
        }
        if now >= schedule.lock_at {
            return Err(AppError::Invalid(format!(
                "round {} locked at {}; it can no longer be opened",
                schedule.code(),
                schedule.lock_at
            )));
        }
        let terms = RoundTerms {
            market: self.config.rounds.market.clone(),
            code: schedule.code(),
            previous_session: schedule.previous_session.date,
            open_at: schedule.open_at,
            lock_at: schedule.lock_at,
            close_at: schedule.close_at,
            settle_at: schedule.settle_at,
            void_at: schedule.void_at,
            fee_bps: self.config.rounds.fee_bps,
            tie_policy: self.config.rounds.tie_policy,
            oracle: Some(self.oracle.name()),
            dispute_min: Some(
                self.config
                    .rounds
                    .dispute_window
                    .map_or(0, |window| window.num_minutes() as u32),
            ),
        };
        let entry = operator.map(|(actor, reason)| {
            let subject = format!("round {}", terms.code);
            self.audit_entry(actor, "open_round", subject, reason)
        });
        let (round, created) = self
            .store
            .open_round(&NewRound { terms, now }, entry.as_ref())
            .await?;
        self.touch();
        if created {
            tracing::info!(event = "round_opened", round = %round.terms.code, lock_at = %round.terms.lock_at, digest = %round.terms_digest);
            self.publish(
                EventKind::RoundOpened,
                json!({
                    "round": round.terms.code.to_string(),
                    "market": round.terms.market.as_str(),
                    "open_at": instant(round.terms.open_at),
                    "lock_at": instant(round.terms.lock_at),
                    "terms_digest": round.terms_digest,
                }),
            );
        }
        Ok((round, created))
    }

    /// Stops a round taking bets. Operators may lock early; the clock
    /// refuses bets from the lock instant regardless.
    pub async fn lock_round(&self, code: RoundCode) -> AppResult<Round> {
        self.lock_round_by(code, None).await
    }

    /// [`App::lock_round`], by an operator (actor, reason) when given:
    /// their audit entry commits with the lock, if this call locks it.
    async fn lock_round_by(
        &self,
        code: RoundCode,
        operator: Option<(&str, Option<String>)>,
    ) -> AppResult<Round> {
        let round = self.round(code).await?;
        let entry = operator.map(|(actor, reason)| {
            self.audit_entry(actor, "lock_round", format!("round {code}"), reason)
        });
        let (locked, locked_now) = self
            .store
            .lock_round(round.id, self.clock.now(), entry.as_ref())
            .await?;
        self.touch();
        // Told once, by the call that locked it (of an operator and the
        // scheduler racing, one).
        if locked_now {
            tracing::info!(event = "round_locked", round = %code);
            self.publish(
                EventKind::RoundLocked,
                json!({ "round": code.to_string(), "locked_at": instant(self.clock.now()) }),
            );
        }
        Ok(locked)
    }

    /// An operator opens a round (see `open_round`); recorded in the
    /// audit log, with the round, when it was not open yet.
    pub async fn operator_open_round(
        &self,
        code: Option<RoundCode>,
        actor: &str,
        reason: Option<String>,
    ) -> AppResult<(Round, bool)> {
        self.open_round_by(code, Some((actor, reason))).await
    }

    /// An operator locks a round early; recorded, with the lock, when it
    /// was open.
    pub async fn operator_lock_round(
        &self,
        code: RoundCode,
        actor: &str,
        reason: Option<String>,
    ) -> AppResult<Round> {
        self.lock_round_by(code, Some((actor, reason))).await
    }

    /// Records an operator's action (who, what, on what, why) in the audit
    /// log, with the credential, client address and request id when it
    /// came over HTTP (`context`).
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: String,
        reason: Option<String>,
    ) -> AppResult<()> {
        self.store
            .record_audit(&self.audit_entry(actor, action, subject, reason))
            .await?;
        Ok(())
    }

    /// An audit entry by `actor` now, with the request's credential,
    /// client and id; for a store call that writes it with its effect.
    pub(crate) fn audit_entry(
        &self,
        actor: &str,
        action: &str,
        subject: String,
        reason: Option<String>,
    ) -> AuditEntry {
        let asked = super::context::audit_context();
        AuditEntry {
            id: 0,
            at: self.clock.now(),
            actor: actor.to_string(),
            action: action.to_string(),
            subject,
            reason,
            credential: asked.credential,
            client: asked.client,
            request_id: asked.request_id,
            chain: None,
        }
    }

    /// Records an operator's official close for a session that has closed.
    pub async fn set_price(
        &self,
        date: NaiveDate,
        close: Price,
        actor: &str,
    ) -> AppResult<PriceRecord> {
        let session = self
            .calendar
            .session(date)
            .map_err(|e| AppError::Invalid(format!("{e}; closes exist only for sessions")))?;
        let now = self.clock.now();
        if session.close_at() > now {
            return Err(AppError::Invalid(format!(
                "the session of {date} closes at {}; it has no close yet",
                session.close_at()
            )));
        }
        let record = PriceRecord {
            market: self.config.rounds.market.clone(),
            date,
            close,
            source: format!("manual:{actor}"),
            fetched_at: now,
        };
        // Audited with the close it records: no crash leaves a close by
        // hand without who entered it.
        let entry = self.audit_entry(
            actor,
            "price_set",
            format!("{} {date} close {close}", self.config.rounds.market),
            None,
        );
        match self.store.record_price(&record, &[], Some(&entry)).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                let existing = self
                    .store
                    .price(&self.config.rounds.market, date)
                    .await?
                    .expect("conflict means it exists");
                return Err(AppError::Conflict(format!(
                    "a close for {date} is already recorded: {} from {}",
                    existing.close, existing.source
                )));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(event = "price_recorded", date = %date, close = %close, source = %record.source);
        Ok(record)
    }

    /// A round that may be settled now: not final, and locked (a round
    /// still open past its lock instant is locked here, as the scheduler
    /// would).
    pub(super) async fn settleable_round(
        &self,
        code: RoundCode,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<Round> {
        let round = self.round(code).await?;
        if round.status.is_final() {
            return Err(AppError::Conflict(format!(
                "round {code} is already {}",
                round.status.as_str()
            )));
        }
        if round.status == RoundStatus::Open {
            if now < round.terms.lock_at {
                return Err(AppError::Conflict(format!(
                    "round {code} takes bets until {}; lock it first (`updown lock-round --code {code}`)",
                    round.terms.lock_at
                )));
            }
            return Ok(self.store.lock_round(round.id, now, None).await?.0);
        }
        Ok(round)
    }

    pub async fn settle_round(&self, code: RoundCode, request: SettleRequest) -> AppResult<Round> {
        self.settle_round_with(code, request, SettleOptions::default())
            .await
    }

    /// Decides the result and pays everyone, chunk by chunk. Safe to run
    /// again after a crash: it resumes where the last chunk committed.
    pub async fn settle_round_with(
        &self,
        code: RoundCode,
        request: SettleRequest,
        options: SettleOptions<'_>,
    ) -> AppResult<Round> {
        if let SettleRequest::Manual { reason, .. } = &request {
            if reason.trim().is_empty() {
                return Err(AppError::Invalid(
                    "a manual result needs a reason (--reason, or \"reason\")".into(),
                ));
            }
        }
        let now = self.clock.now();
        let round = self.settleable_round(code, now).await?;
        let start = match (&round.settlement, &request) {
            // Resuming: the stored decision stands.
            (Some(begun), SettleRequest::Auto) => SettlementStart {
                outcome: begun.plan.outcome,
                evidence: begun.evidence.clone(),
                actor: begun.actor.clone(),
                reason: begun.reason.clone(),
                now,
                audit: None,
            },
            (
                _,
                SettleRequest::Manual {
                    outcome,
                    actor,
                    reason,
                },
            ) => {
                round.clock().check_manual_result(now, *outcome)?;
                SettlementStart {
                    outcome: *outcome,
                    evidence: self.recorded_evidence(&round).await?,
                    actor: actor.clone(),
                    reason: Some(reason.clone()),
                    now,
                    audit: Some(self.audit_entry(
                        actor,
                        &format!("settle_{}", outcome.as_str().to_ascii_lowercase()),
                        format!("round {code}"),
                        Some(reason.clone()),
                    )),
                }
            }
            (None, SettleRequest::Auto) => {
                let start = self.decide_from_oracle(&round).await?;
                if let Some(held) = self.held_for_dispute(&round, &start).await? {
                    return Ok(held);
                }
                start
            }
        };
        let begun = self.store.begin_settlement(round.id, &start).await?;
        crate::faults::crash_point("settle_after_begin", self.config.production);
        let paying = std::time::Instant::now();
        self.pay_in_chunks(&begun, &options).await?;
        let finished = self
            .store
            .finish_settlement(round.id, self.clock.now())
            .await?;
        self.touch();
        metrics::histogram!("updown_settlement_duration_seconds")
            .record(paying.elapsed().as_secs_f64());
        let settlement = finished.settlement.as_ref().expect("finished settlement");
        let voided = finished.status == RoundStatus::Void;
        let close = |record: &Option<PriceRecord>| record.as_ref().map(|r| r.close.to_string());
        self.publish(
            if voided {
                EventKind::RoundVoided
            } else {
                EventKind::RoundSettled
            },
            json!({
                "round": code.to_string(),
                "result": settlement.plan.outcome.as_str(),
                "pool_up": settlement.plan.pool_up.get(),
                "pool_down": settlement.plan.pool_down.get(),
                "fee": settlement.plan.fee.get(),
                "close": close(&settlement.evidence.close),
                "previous_close": close(&settlement.evidence.previous_close),
                "reason": settlement.reason,
            }),
        );
        tracing::info!(
            event = if voided { "round_voided" } else { "round_settled" },
            round = %code,
            outcome = settlement.plan.outcome.as_str(),
            fee = settlement.plan.fee.get(),
            dust = settlement.dust.map(|d| d.get()).unwrap_or(0),
            pool_up = settlement.plan.pool_up.get(),
            pool_down = settlement.plan.pool_down.get(),
        );
        Ok(finished)
    }

    /// How long a round's result waits to be paid: its terms' dispute
    /// window, or for a round opened before the terms named it, the
    /// setting's (`SETTLE_DISPUTE_MIN`) now. `None`: paid at once.
    fn dispute_window(&self, round: &Round) -> Option<chrono::Duration> {
        match round.terms.dispute_min {
            Some(0) => None,
            Some(minutes) => Some(chrono::Duration::minutes(i64::from(minutes))),
            None => self.config.rounds.dispute_window,
        }
    }

    /// With a dispute window in its terms, the oracle's UP or DOWN is
    /// published first (once; the `round_result` event) with the instant
    /// its payouts start, fixed then. Until that instant,
    /// and while an operator's result by hand waits for approval, nothing
    /// is paid and no fee taken, and an operator may still void the round
    /// or set another result, with a reason. The round while it waits;
    /// `None` once it may be paid (or for a VOID, which refunds at once).
    async fn held_for_dispute(
        &self,
        round: &Round,
        start: &SettlementStart,
    ) -> AppResult<Option<Round>> {
        let round = match (round.published, self.dispute_window(round)) {
            (Some(_), _) => round.clone(),
            (None, None) => return Ok(None),
            (None, Some(_)) if start.outcome == Outcome::Void => return Ok(None),
            (None, Some(window)) => self.publish_result(round, start, window).await?,
        };
        let Some(published) = round.published else {
            // Settlement began meanwhile (another instance, or an
            // operator): resume it as it stands.
            return Ok(None);
        };
        if published.outcome != start.outcome {
            return Err(AppError::Conflict(format!(
                "round {} was published as {}, but the recorded closes now give {}: \
                 an operator must decide (`updown settle-round --result ... --reason ...`)",
                round.terms.code,
                published.outcome.as_str(),
                start.outcome.as_str()
            )));
        }
        let asked = self
            .store
            .pending_approval(ApprovalKind::Settlement, &round.terms.code.to_string())
            .await?;
        if start.now < published.payouts_at || asked.is_some() {
            return Ok(Some(round));
        }
        Ok(None)
    }

    /// Publishes the oracle's result, to be paid after `window`.
    async fn publish_result(
        &self,
        round: &Round,
        start: &SettlementStart,
        window: chrono::Duration,
    ) -> AppResult<Round> {
        let payouts_at = start.now + window;
        let (published, now_published) = self
            .store
            .publish_result(round.id, start.outcome, start.now, payouts_at)
            .await?;
        if now_published {
            self.touch();
            tracing::info!(event = "round_result", round = %round.terms.code, outcome = start.outcome.as_str(), payouts_at = %payouts_at);
            self.publish(
                EventKind::RoundResult,
                json!({
                    "round": round.terms.code.to_string(),
                    "result": start.outcome.as_str(),
                    "payouts_at": instant(payouts_at),
                }),
            );
        }
        Ok(published)
    }

    async fn pay_in_chunks(&self, round: &Round, options: &SettleOptions<'_>) -> AppResult<()> {
        let plan = round.settlement.as_ref().expect("settlement begun").plan;
        // The total is only for a progress bar: counting the bets reads
        // the whole round (6.5 s at ten million), so only when one is shown.
        let total = match options.on_progress {
            Some(_) => {
                let pools = self.store.pools(round.id).await?;
                [
                    (updown_domain::round::Side::Up, pools.bets_up),
                    (updown_domain::round::Side::Down, pools.bets_down),
                ]
                .iter()
                .filter(|(side, _)| plan.pays(*side))
                .map(|(_, n)| *n as u64)
                .sum::<u64>()
            }
            None => 0,
        };
        let mut paid = 0u64;
        let mut chunks = 0usize;
        loop {
            if options
                .fail_after_chunks
                .is_some_and(|limit| chunks >= limit)
            {
                return Err(AppError::Internal(anyhow::anyhow!(
                    "simulated crash after {chunks} settlement chunks"
                )));
            }
            let started = std::time::Instant::now();
            let Some(covered) = self
                .store
                .settle_chunk(round.id, self.config.batching.settle_chunk_size)
                .await?
            else {
                break;
            };
            tracing::debug!(round = %round.terms.code, bets = covered, ms = started.elapsed().as_millis() as u64, "settlement chunk paid");
            chunks += 1;
            paid += covered;
            if let Some(report) = options.on_progress {
                report(paid, total);
            }
        }
        Ok(())
    }

    /// Whatever closes are already recorded, for a manual result's evidence.
    async fn recorded_evidence(&self, round: &Round) -> AppResult<Evidence> {
        Ok(Evidence {
            close: self
                .store
                .price(&self.config.rounds.market, round.terms.code.date())
                .await?,
            previous_close: self
                .store
                .price(&self.config.rounds.market, round.terms.previous_session)
                .await?,
        })
    }

    async fn decide_from_oracle(&self, round: &Round) -> AppResult<SettlementStart> {
        let now = self.clock.now();
        round.clock().check_settle(now, true)?;
        // Past the void instant a failing oracle is as good as a silent
        // one: the round voids and refunds instead of waiting forever.
        let past_void = now >= round.terms.void_at;
        // The terms promise an oracle: closes not recorded yet are asked
        // of that one only. After a change of ORACLE or its sources, an
        // older round settles on closes recorded (by an operator's `price
        // set`), by hand, or voids.
        let promised = round
            .terms
            .oracle
            .as_deref()
            .filter(|named| *named != self.oracle.name())
            .map(|named| {
                format!(
                    "round {}'s terms name the oracle {named}, and this service asks {}: \
                     it settles on closes recorded with `updown price set`, or by hand, \
                     or voids at {}",
                    round.terms.code,
                    self.oracle.name(),
                    round.terms.void_at
                )
            });
        let promised = &promised;
        let fetch = |date| async move {
            let fetched = match promised {
                None => self.close_of(date).await,
                Some(why) => match self.store.price(&self.config.rounds.market, date).await? {
                    Some(recorded) => Ok(Some(recorded)),
                    None => Err(AppError::Unavailable(why.clone())),
                },
            };
            match fetched {
                Err(AppError::Unavailable(_)) if past_void => Ok(None),
                other => other,
            }
        };
        let close = fetch(round.terms.code.date()).await?;
        let previous_close = fetch(round.terms.previous_session).await?;
        let evidence = Evidence {
            close: close.clone(),
            previous_close: previous_close.clone(),
        };
        match (close, previous_close) {
            (Some(close), Some(previous)) => Ok(SettlementStart {
                outcome: decide(close.close, previous.close, round.terms.tie_policy),
                evidence,
                actor: format!("oracle:{}", close.source),
                reason: None,
                now,
                audit: None,
            }),
            _ if now >= round.terms.void_at => Ok(SettlementStart {
                outcome: Outcome::Void,
                evidence,
                actor: "oracle".into(),
                reason: Some(format!(
                    "no official close by the void instant {}",
                    round.terms.void_at
                )),
                now,
                audit: None,
            }),
            (close, _) => {
                let missing = if close.is_none() {
                    round.terms.code.date()
                } else {
                    round.terms.previous_session
                };
                Err(AppError::Unavailable(format!(
                    "no official close for {missing} from {} yet; retry until {}, when the round voids",
                    self.oracle.name(),
                    round.terms.void_at
                )))
            }
        }
    }
}
