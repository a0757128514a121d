//! Whether a bet may enter: the player's balance, limits and exclusion;
//! and how a player's request to change their limits is applied.
//!
//! Admission is applied in order to every bet of a batch while the
//! player's balance row is locked, so bets from one player in one batch
//! see each other. Limit changes follow what regulated operators do: a
//! stricter limit applies at once, a looser one only after a cooling-off
//! period, and a self-exclusion in force can be extended, never shortened.

use chrono::{DateTime, Duration, Utc};
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

/// A raise of the stake limits, waiting out its cooling-off period: from
/// `from` on, these are the stake limits (`None`: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingLimits {
    pub max_stake_per_round: Option<Micros>,
    pub max_stake_per_day: Option<Micros>,
    pub from: DateTime<Utc>,
}

/// A player's limits as kept: those set, and a raise that may be waiting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitSettings {
    pub set: PlayerLimits,
    pub pending: Option<PendingLimits>,
}

#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LimitChangeError {
    #[error("you are self-excluded until {until}; an exclusion can be extended, not shortened or lifted")]
    ExclusionInForce { until: DateTime<Utc> },
}

/// Whether stake limit `new` is at least as strict as `old` (`None`: no
/// limit, the loosest).
fn at_least_as_strict(new: Option<Micros>, old: Option<Micros>) -> bool {
    match (new, old) {
        (_, None) => true,
        (Some(new), Some(old)) => new <= old,
        (None, Some(_)) => false,
    }
}

impl LimitSettings {
    /// The limits in force at `now`: a pending raise applies from its
    /// instant on.
    pub fn in_force(&self, now: DateTime<Utc>) -> PlayerLimits {
        self.settled(now).set
    }

    /// The settings with a raise that is due folded in.
    pub fn settled(&self, now: DateTime<Utc>) -> LimitSettings {
        match self.pending {
            Some(pending) if pending.from <= now => LimitSettings {
                set: PlayerLimits {
                    max_stake_per_round: pending.max_stake_per_round,
                    max_stake_per_day: pending.max_stake_per_day,
                    excluded_until: self.set.excluded_until,
                },
                pending: None,
            },
            _ => *self,
        }
    }

    /// The settings after the player asks for `wanted` at `now`. A stake
    /// limit made stricter (or kept) applies at once; one made looser or
    /// removed waits `cooloff`, the stricter one staying in force until
    /// then (a new request replaces a waiting raise). A self-exclusion in
    /// force can only be kept or extended; a new one applies at once.
    pub fn request(
        &self,
        wanted: PlayerLimits,
        now: DateTime<Utc>,
        cooloff: Duration,
    ) -> Result<LimitSettings, LimitChangeError> {
        let current = self.in_force(now);
        if let Some(until) = current.excluded_until.filter(|until| *until > now) {
            if wanted.excluded_until.is_none_or(|wanted| wanted < until) {
                return Err(LimitChangeError::ExclusionInForce { until });
            }
        }
        let pick = |wanted: Option<Micros>, current: Option<Micros>| {
            if at_least_as_strict(wanted, current) {
                (wanted, false)
            } else {
                (current, true)
            }
        };
        let (round, round_waits) = pick(wanted.max_stake_per_round, current.max_stake_per_round);
        let (day, day_waits) = pick(wanted.max_stake_per_day, current.max_stake_per_day);
        let pending = (round_waits || day_waits).then_some(PendingLimits {
            max_stake_per_round: wanted.max_stake_per_round,
            max_stake_per_day: wanted.max_stake_per_day,
            from: now + cooloff,
        });
        Ok(LimitSettings {
            set: PlayerLimits {
                max_stake_per_round: round,
                max_stake_per_day: day,
                excluded_until: wanted.excluded_until,
            },
            pending,
        })
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

    fn limits(round: Option<i64>, day: Option<i64>) -> PlayerLimits {
        PlayerLimits {
            max_stake_per_round: round.map(m),
            max_stake_per_day: day.map(m),
            excluded_until: None,
        }
    }

    #[test]
    fn a_stricter_limit_applies_at_once_and_a_looser_one_after_the_cooling_off() {
        let day = Duration::hours(24);
        let start = LimitSettings {
            set: limits(Some(100), None),
            pending: None,
        };
        let lowered = start
            .request(limits(Some(50), Some(500)), now(), day)
            .unwrap();
        assert_eq!(lowered.in_force(now()), limits(Some(50), Some(500)));
        assert_eq!(lowered.pending, None);

        let raised = lowered.request(limits(Some(80), None), now(), day).unwrap();
        // Both are looser: the old ones stay in force for a day.
        assert_eq!(raised.in_force(now()), limits(Some(50), Some(500)));
        let just_before = now() + day - Duration::seconds(1);
        assert_eq!(raised.in_force(just_before), limits(Some(50), Some(500)));
        assert_eq!(raised.in_force(now() + day), limits(Some(80), None));

        // One stricter, one looser: the stricter at once, the looser later.
        let mixed = lowered
            .request(limits(Some(10), Some(900)), now(), day)
            .unwrap();
        assert_eq!(mixed.in_force(now()), limits(Some(10), Some(500)));
        assert_eq!(mixed.in_force(now() + day), limits(Some(10), Some(900)));

        // Asking again for the stricter limits drops the waiting raise.
        let back = raised
            .request(limits(Some(50), Some(500)), now(), day)
            .unwrap();
        assert_eq!(back.pending, None);
        assert_eq!(back.in_force(now() + day), limits(Some(50), Some(500)));
    }

    #[test]
    fn an_exclusion_in_force_is_extended_never_shortened() {
        let day = Duration::hours(24);
        let until = now() + Duration::days(30);
        let excluded = LimitSettings {
            set: PlayerLimits {
                excluded_until: Some(until),
                ..PlayerLimits::default()
            },
            pending: None,
        };
        let lift = excluded.request(PlayerLimits::default(), now(), day);
        assert_eq!(lift, Err(LimitChangeError::ExclusionInForce { until }));
        let shorten = PlayerLimits {
            excluded_until: Some(until - Duration::days(1)),
            ..PlayerLimits::default()
        };
        assert!(excluded.request(shorten, now(), day).is_err());
        let extend = PlayerLimits {
            excluded_until: Some(until + Duration::days(1)),
            ..PlayerLimits::default()
        };
        assert_eq!(
            excluded
                .request(extend, now(), day)
                .unwrap()
                .set
                .excluded_until,
            extend.excluded_until
        );
        // Once it has run out, it may be cleared.
        let later = until + Duration::seconds(1);
        assert!(excluded
            .request(PlayerLimits::default(), later, day)
            .is_ok());
    }
}
