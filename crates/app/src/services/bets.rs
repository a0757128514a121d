//! Placing and cancelling bets.

use updown_domain::ids::{BetId, RoundCode, UserId};
use updown_domain::round::Side;
use updown_domain::schedule::round_taking_bets_at;
use updown_domain::Micros;
use updown_store::{Bet, BetRequest, Round};

use super::App;
use crate::error::{AppError, AppResult};

impl App {
    /// The round that takes bets now by the calendar, as stored.
    pub async fn current_round(&self) -> AppResult<Round> {
        let now = self.clock.now();
        let schedule = round_taking_bets_at(&self.calendar, &self.config.schedule, now)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        self.store.round(&self.config.market, schedule.code()).await.map_err(|_| {
            AppError::NotFound(format!(
                "round {} (the one taking bets now) is not open yet; the scheduler opens it, or run `updown open-round`",
                schedule.code()
            ))
        })
    }

    /// Places a bet received now; refused at or after the lock instant by
    /// the clock, whatever the round's stored status says.
    pub async fn place_bet(
        &self,
        user: UserId,
        side: Side,
        stake: Micros,
        round: Option<RoundCode>,
    ) -> AppResult<Bet> {
        if stake.is_zero() {
            return Err(AppError::Invalid(
                "a bet must be at least 1 micro-USDC".into(),
            ));
        }
        if stake > self.config.max_bet {
            return Err(AppError::Invalid(format!(
                "a bet may be at most {} micro-USDC (MAX_BET); this one is {stake}",
                self.config.max_bet
            )));
        }
        let round = match round {
            Some(code) => self.round(code).await?,
            None => self.current_round().await?,
        };
        let request = BetRequest {
            user,
            side,
            stake,
            received_at: self.clock.now(),
        };
        let bet = self.bets.submit(round.id, request).await??;
        tracing::info!(event = "bet_placed", bet = %bet.id, user = %user, round = %round.terms.code, side = %side, stake = stake.get());
        Ok(bet)
    }

    /// Cancels a bet for a full refund until the cut-off before lock.
    /// `owner`, when given, must be the bet's owner.
    pub async fn cancel_bet(&self, bet: BetId, owner: Option<UserId>) -> AppResult<Bet> {
        let cancelled = self
            .store
            .cancel_bet(bet, owner, self.clock.now(), self.config.cancel_cutoff)
            .await?;
        tracing::info!(event = "bet_cancelled", bet = %bet, user = %cancelled.user, stake = cancelled.stake.get());
        Ok(cancelled)
    }
}
