//! Whether a bet may enter: the player's balance, limits and exclusion.
//!
//! Applied in order to every bet of a batch while the player's balance row
//! is locked, so bets from one player in one batch see each other.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::money::Micros;

/// Limits a player set on themselves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlayerLimits {
    pub max_stake_per_round: Option<Micros>,
    pub max_stake_per_day: Option<Micros>,
    pub excluded_until: Option<DateTime<Utc>>,
}

impl PlayerLimits {
    pub fn is_unlimited(&self) -> bool {
        *self == PlayerLimits::default()
    }
}

/// What is known of a player while a batch is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlayerState {
    pub balance: Micros,
    pub limits: PlayerLimits,
    /// Active stakes already in this round.
    pub staked_in_round: Micros,
    /// Stakes placed on the same New York day (cancelled ones excluded).
    pub staked_today: Micros,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum BetRefusal {
    #[error("insufficient balance: {available} micro-USDC available, stake is {stake}")]
    InsufficientFunds { available: Micros, stake: Micros },
    #[error("self-excluded until {until}")]
    SelfExcluded { until: DateTime<Utc> },
    #[error(
        "stake would bring this round's total to {would_be}, above your limit of {limit} per round"
    )]
    RoundLimit { limit: Micros, would_be: Micros },
    #[error("stake would bring today's total to {would_be}, above your limit of {limit} per day")]
    DayLimit { limit: Micros, would_be: Micros },
}

impl PlayerState {
    /// Admits one stake at `now`, updating the state, or says why not.
    pub fn admit(&mut self, stake: Micros, now: DateTime<Utc>) -> Result<(), BetRefusal> {
        if let Some(until) = self.limits.excluded_until {
            if now < until {
                return Err(BetRefusal::SelfExcluded { until });
            }
        }
        let in_round = self
            .staked_in_round
            .checked_add(stake)
            .unwrap_or(Micros::MAX);
        if let Some(limit) = self.limits.max_stake_per_round {
            if in_round > limit {
                return Err(BetRefusal::RoundLimit {
                    limit,
                    would_be: in_round,
                });
            }
        }
        let today = self.staked_today.checked_add(stake).unwrap_or(Micros::MAX);
        if let Some(limit) = self.limits.max_stake_per_day {
            if today > limit {
                return Err(BetRefusal::DayLimit {
                    limit,
                    would_be: today,
                });
            }
        }
        let balance =
            self.balance
                .checked_sub(stake)
                .map_err(|_| BetRefusal::InsufficientFunds {
                    available: self.balance,
                    stake,
                })?;
        self.balance = balance;
        self.staked_in_round = in_round;
        self.staked_today = today;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(v: i64) -> Micros {
        Micros::new(v).unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn state(balance: i64, limits: PlayerLimits) -> PlayerState {
        PlayerState {
            balance: m(balance),
            limits,
            staked_in_round: Micros::ZERO,
            staked_today: Micros::ZERO,
        }
    }

    #[test]
    fn bets_are_admitted_until_the_balance_runs_out() {
        let mut s = state(25, PlayerLimits::default());
        assert!(s.admit(m(10), now()).is_ok());
        assert!(s.admit(m(10), now()).is_ok());
        assert_eq!(
            s.admit(m(10), now()),
            Err(BetRefusal::InsufficientFunds {
                available: m(5),
                stake: m(10)
            })
        );
        assert_eq!(s.balance, m(5));
    }

    #[test]
    fn limits_and_exclusion_are_enforced() {
        let limits = PlayerLimits {
            max_stake_per_round: Some(m(15)),
            max_stake_per_day: Some(m(100)),
            excluded_until: None,
        };
        let mut s = state(1000, limits);
        assert!(s.admit(m(10), now()).is_ok());
        assert!(matches!(
            s.admit(m(10), now()),
            Err(BetRefusal::RoundLimit { .. })
        ));
        s.staked_in_round = Micros::ZERO;
        s.staked_today = m(95);
        assert!(matches!(
            s.admit(m(10), now()),
            Err(BetRefusal::DayLimit { .. })
        ));
        let excluded = PlayerLimits {
            excluded_until: Some(now() + chrono::Duration::days(1)),
            ..PlayerLimits::default()
        };
        assert!(matches!(
            state(1000, excluded).admit(m(1), now()),
            Err(BetRefusal::SelfExcluded { .. })
        ));
    }
}
