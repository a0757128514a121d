//! Placing and cancelling bets.

use chrono::{DateTime, Utc};
use updown_domain::ids::{BetId, RoundCode, UserId};
use updown_domain::round::Side;
use updown_domain::schedule::{round_taking_bets_at, RoundSchedule};
use updown_domain::Micros;
use updown_store::{Bet, BetRequest, Keyed, Round};

use serde_json::json;

use super::App;
use crate::error::{AppError, AppResult};
use crate::events::EventKind;

/// An instant in the journal: RFC 3339 in UTC, to the microsecond.
fn precise(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl App {
    /// The schedule of the round that takes bets at `now`.
    pub fn schedule_taking_bets(&self, now: DateTime<Utc>) -> AppResult<RoundSchedule> {
        if let Some(cached) = *self.taking_bets.read().expect("schedule cache") {
            if cached.open_at <= now && now < cached.lock_at {
                return Ok(cached);
            }
        }
        let schedule = round_taking_bets_at(&self.calendar, &self.config.rounds.schedule, now)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        *self.taking_bets.write().expect("schedule cache") = Some(schedule);
        Ok(schedule)
    }

    /// The round that takes bets now by the calendar, as stored.
    pub async fn current_round(&self) -> AppResult<Round> {
        let schedule = self.schedule_taking_bets(self.clock.now())?;
        self.store.round(&self.config.rounds.market, schedule.code()).await.map_err(|_| {
            AppError::NotFound(format!(
                "round {} (the one taking bets now) is not open yet; the scheduler opens it, or run `updown open-round`",
                schedule.code()
            ))
        })
    }

    /// Places a bet received now; refused at or after the lock instant by
    /// the clock, whatever the round's stored status says. A `key` is
    /// recorded in the bet's own transaction (`KeyUsed` when an earlier
    /// request recorded it: this one placed nothing).
    pub async fn place_bet(
        &self,
        user: UserId,
        side: Side,
        stake: Micros,
        round: Option<RoundCode>,
        key: Option<Keyed<Bet>>,
    ) -> AppResult<Bet> {
        if stake.is_zero() {
            return Err(AppError::Invalid(
                "a bet must be at least 1 micro-USDC".into(),
            ));
        }
        if stake > self.config.limits.max_bet {
            return Err(AppError::LimitExceeded(format!(
                "a bet may be at most {} micro-USDC (MAX_BET); this one is {stake}",
                self.config.limits.max_bet
            )));
        }
        let received_at = self.clock.now();
        let code = match round {
            Some(code) => code,
            None => self.schedule_taking_bets(received_at)?.code(),
        };
        let round_id = self.round_id(code, round.is_none()).await?;
        let request = BetRequest {
            user,
            side,
            stake,
            received_at,
            key,
        };
        let bet = match self.bets.submit(round_id, request).await? {
            Ok(bet) => bet,
            Err(reason) => {
                // The journal keeps the instant each refused bet was
                // received by the clock, as it keeps each placed bet's.
                let error = AppError::from(reason);
                tracing::info!(event = "bet_refused", user = %user, round = %code, side = %side, stake = stake.get(), received_at = %precise(received_at), code = error.code(), reason = %error);
                return Err(error);
            }
        };
        self.touch();
        metrics::counter!("updown_bets_total", "side" => side.as_str()).increment(1);
        metrics::counter!("updown_bet_volume_micro_usdc_total", "side" => side.as_str())
            .increment(stake.get().unsigned_abs());
        tracing::info!(event = "bet_placed", bet = %bet.id, user = %user, round = %code, side = %side, stake = stake.get(), received_at = %precise(bet.placed_at));
        self.publish_bet(EventKind::BetPlaced, &bet, code);
        Ok(bet)
    }

    /// The id of round `code`, from the cache or the store.
    async fn round_id(
        &self,
        code: RoundCode,
        is_current: bool,
    ) -> AppResult<updown_domain::ids::RoundId> {
        if let Some(id) = self.round_ids.read().expect("round id cache").get(&code) {
            return Ok(*id);
        }
        // By `code` always: the current round read again here could be
        // the next one if the clock crossed a lock since `code` was chosen.
        let round = self.round(code).await.map_err(|e| match e {
            AppError::NotFound(_) if is_current => AppError::NotFound(format!(
                "round {code} (the one taking bets now) is not open yet; the scheduler opens it, or run `updown open-round`"
            )),
            other => other,
        })?;
        let mut cache = self.round_ids.write().expect("round id cache");
        // About one round a day is ever asked for; the bound is a backstop.
        if cache.len() >= 64 {
            cache.clear();
        }
        cache.insert(code, round.id);
        Ok(round.id)
    }

    /// Cancels a bet for a full refund until the cut-off before lock.
    /// `owner`, when given, must be the bet's owner.
    pub async fn cancel_bet(
        &self,
        bet: BetId,
        owner: Option<UserId>,
        key: Option<Keyed<Bet>>,
    ) -> AppResult<Bet> {
        let cancelled = self
            .store
            .cancel_bet(
                bet,
                owner,
                self.clock.now(),
                self.config.rounds.cancel_cutoff,
                key.as_ref(),
            )
            .await?;
        self.touch();
        tracing::info!(event = "bet_cancelled", bet = %bet, user = %cancelled.user, stake = cancelled.stake.get());
        if let Some(code) = self.round_code_of(cancelled.round).await {
            self.publish_bet(EventKind::BetCancelled, &cancelled, code);
        }
        Ok(cancelled)
    }

    /// A bet's event: whole to its owner; round, side and stake (what
    /// moves the pools) to everyone.
    fn publish_bet(&self, kind: EventKind, bet: &Bet, round: RoundCode) {
        let public = json!({
            "round": round.to_string(),
            "side": bet.side.as_str(),
            "stake": bet.stake.get(),
        });
        let mut payload = public.clone();
        payload["bet_id"] = json!(bet.id.0);
        self.publish_for(bet.user, kind, payload, Some(public));
    }

    /// The code of round `id`, from the cache or the store.
    async fn round_code_of(&self, id: updown_domain::ids::RoundId) -> Option<RoundCode> {
        let cached = self
            .round_ids
            .read()
            .expect("round id cache")
            .iter()
            .find_map(|(code, cached)| (*cached == id).then_some(*code));
        match cached {
            Some(code) => Some(code),
            None => self.store.round_by_id(id).await.ok().map(|r| r.terms.code),
        }
    }
}
