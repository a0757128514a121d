//! The parimutuel split of a round: fee, each winner's share, dust.
//!
//! Fee = floor(loser_pool * fee_bps / 10_000); distributable = loser_pool -
//! fee; each winning bet gets stake + floor(distributable * stake /
//! winner_pool); what the floors leave is dust for the house rounding
//! account. Nobody on the winning side, or a VOID: every stake back, no fee.
//! Nobody on the losing side: winners get their stakes back, no fee.
//!
//! Before the result is known, a side's implied multiplier says what one
//! unit staked on it returns if it wins, at the pools as they stand.

use std::fmt;

use thiserror::Error;

use crate::money::{Micros, MoneyError};
use crate::round::{Outcome, Side};

/// Fee rates are basis points of the loser pool, at most 100 %.
pub const MAX_FEE_BPS: u32 = 10_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PayoutError {
    #[error("fee {0} bps is above {MAX_FEE_BPS}")]
    FeeTooHigh(u32),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayoutMode {
    /// Winners on `winner` share the other side's pool.
    Parimutuel { winner: Side },
    /// Every active bet gets its stake back.
    RefundAll,
}

/// Everything needed to pay any single bet, computed once per round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayoutPlan {
    pub outcome: Outcome,
    pub mode: PayoutMode,
    pub pool_up: Micros,
    pub pool_down: Micros,
    pub fee: Micros,
    pub distributable: Micros,
}

impl PayoutPlan {
    pub fn new(
        outcome: Outcome,
        pool_up: Micros,
        pool_down: Micros,
        fee_bps: u32,
    ) -> Result<Self, PayoutError> {
        if fee_bps > MAX_FEE_BPS {
            return Err(PayoutError::FeeTooHigh(fee_bps));
        }
        // Checked so that a total pool that cannot exist is refused here.
        pool_up.checked_add(pool_down)?;
        let pool = |side: Side| match side {
            Side::Up => pool_up,
            Side::Down => pool_down,
        };
        let (mode, fee, distributable) = match outcome.winning_side() {
            Some(winner) if !pool(winner).is_zero() => {
                let loser_pool = pool(winner.other());
                let fee = loser_pool.bps_floor(fee_bps);
                (
                    PayoutMode::Parimutuel { winner },
                    fee,
                    loser_pool.checked_sub(fee)?,
                )
            }
            _ => (PayoutMode::RefundAll, Micros::ZERO, Micros::ZERO),
        };
        Ok(PayoutPlan {
            outcome,
            mode,
            pool_up,
            pool_down,
            fee,
            distributable,
        })
    }

    pub fn total_pool(&self) -> Micros {
        Micros::new(self.pool_up.get() + self.pool_down.get()).expect("checked in new")
    }

    /// The pool bets on `side` sit in.
    pub fn pool(&self, side: Side) -> Micros {
        match side {
            Side::Up => self.pool_up,
            Side::Down => self.pool_down,
        }
    }

    /// Whether bets on `side` receive anything.
    pub fn pays(&self, side: Side) -> bool {
        match self.mode {
            PayoutMode::Parimutuel { winner } => side == winner,
            PayoutMode::RefundAll => true,
        }
    }

    /// What one bet receives: zero for a loser, the stake on a refund, stake
    /// plus a floored share for a winner.
    pub fn payout(&self, side: Side, stake: Micros) -> Micros {
        match self.mode {
            PayoutMode::RefundAll => stake,
            PayoutMode::Parimutuel { winner } if side == winner => {
                let share = self.distributable.mul_div_floor(stake, self.pool(winner));
                // stake + share <= winner_pool + loser_pool, which fits.
                stake.checked_add(share).expect("payout within total pool")
            }
            PayoutMode::Parimutuel { .. } => Micros::ZERO,
        }
    }

    /// What one unit staked on `side` returns if `side` wins, at these
    /// pools: (side pool + distributable) / side pool. `None` while nobody
    /// is on `side`, since there is no pool to share in.
    pub fn implied_multiplier(
        pool_up: Micros,
        pool_down: Micros,
        side: Side,
        fee_bps: u32,
    ) -> Result<Option<Multiplier>, PayoutError> {
        let plan = PayoutPlan::new(Outcome::won_by(side), pool_up, pool_down, fee_bps)?;
        let pool = plan.pool(side);
        if pool.is_zero() {
            return Ok(None);
        }
        // Micros are never negative, so each one's magnitude is its value.
        let wide = |amount: Micros| u128::from(amount.get().unsigned_abs());
        let returned = wide(pool) + wide(plan.distributable);
        Ok(Some(Multiplier {
            ten_thousandths: returned * 10_000 / wide(pool),
        }))
    }
}

/// A payout multiplier in ten-thousandths, truncated (never rounded up, so
/// it never promises more than the pools pay): 21_676 reads "2.1676x".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Multiplier {
    ten_thousandths: u128,
}

impl Multiplier {
    pub fn ten_thousandths(self) -> u128 {
        self.ten_thousandths
    }
}

impl fmt::Display for Multiplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.ten_thousandths / 10_000;
        let fraction = self.ten_thousandths % 10_000;
        write!(f, "{whole}.{fraction:04}x")
    }
}

/// The whole round paid at once: used by tests and by `verify`'s
/// cross-check; the services pay the same amounts chunk by chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub payouts: Vec<Micros>,
    pub fee: Micros,
    pub dust: Micros,
}

pub fn settle(
    outcome: Outcome,
    bets: &[(Side, Micros)],
    fee_bps: u32,
) -> Result<Settlement, PayoutError> {
    let pool_of = |s: Side| {
        Micros::sum(
            bets.iter()
                .filter(|(side, _)| *side == s)
                .map(|(_, stake)| *stake),
        )
    };
    let plan = PayoutPlan::new(outcome, pool_of(Side::Up)?, pool_of(Side::Down)?, fee_bps)?;
    let payouts: Vec<Micros> = bets
        .iter()
        .map(|(side, stake)| plan.payout(*side, *stake))
        .collect();
    let paid = Micros::sum(payouts.iter().copied())?;
    let dust = plan.total_pool().checked_sub(paid)?.checked_sub(plan.fee)?;
    Ok(Settlement {
        payouts,
        fee: plan.fee,
        dust,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(v: i64) -> Micros {
        Micros::new(v).unwrap()
    }

    #[test]
    fn winners_share_the_loser_pool_minus_fee_and_dust_goes_to_the_house() {
        // UP: 3 + 4 = 7; DOWN: 10. Fee 1 % of 10 = 0 (floor of 0.1).
        let bets = [(Side::Up, m(3)), (Side::Up, m(4)), (Side::Down, m(10))];
        let s = settle(Outcome::Up, &bets, 100).unwrap();
        // shares: floor(10*3/7)=4, floor(10*4/7)=5, dust 1.
        assert_eq!(s.payouts, vec![m(7), m(9), m(0)]);
        assert_eq!(s.fee, m(0));
        assert_eq!(s.dust, m(1));
    }

    #[test]
    fn fee_is_a_floor_of_basis_points_of_the_loser_pool() {
        let bets = [(Side::Up, m(1_000_000)), (Side::Down, m(2_500_000))];
        let s = settle(Outcome::Down, &bets, 100).unwrap();
        assert_eq!(s.fee, m(10_000));
        assert_eq!(s.payouts, vec![m(0), m(2_500_000 + 990_000)]);
        assert_eq!(s.dust, m(0));
    }

    #[test]
    fn empty_winning_side_refunds_everyone_without_fee() {
        let bets = [(Side::Down, m(5)), (Side::Down, m(7))];
        let s = settle(Outcome::Up, &bets, 100).unwrap();
        assert_eq!(s.payouts, vec![m(5), m(7)]);
        assert_eq!((s.fee, s.dust), (m(0), m(0)));
    }

    #[test]
    fn empty_losing_side_returns_stakes_without_fee() {
        let bets = [(Side::Up, m(5)), (Side::Up, m(7))];
        let s = settle(Outcome::Up, &bets, 100).unwrap();
        assert_eq!(s.payouts, vec![m(5), m(7)]);
        assert_eq!(s.fee, m(0));
    }

    #[test]
    fn void_refunds_every_stake() {
        let bets = [(Side::Up, m(5)), (Side::Down, m(7))];
        let s = settle(Outcome::Void, &bets, 500).unwrap();
        assert_eq!(s.payouts, vec![m(5), m(7)]);
        assert_eq!(s.fee, m(0));
    }

    #[test]
    fn fee_above_one_hundred_percent_is_refused() {
        assert_eq!(
            PayoutPlan::new(Outcome::Up, m(1), m(1), 10_001),
            Err(PayoutError::FeeTooHigh(10_001))
        );
    }

    fn implied(up: i64, down: i64, side: Side, fee_bps: u32) -> Option<String> {
        PayoutPlan::implied_multiplier(m(up), m(down), side, fee_bps)
            .unwrap()
            .map(|multiplier| multiplier.to_string())
    }

    #[test]
    fn a_side_returns_its_pool_and_the_other_pool_after_fee_per_unit() {
        // UP 195, DOWN 230 USDC at 1 %: UP returns (195 + 230 - 2.3) / 195,
        // DOWN returns (230 + 195 - 1.95) / 230.
        let (up, down) = (195_000_000, 230_000_000);
        assert_eq!(implied(up, down, Side::Up, 100).as_deref(), Some("2.1676x"));
        assert_eq!(
            implied(up, down, Side::Down, 100).as_deref(),
            Some("1.8393x")
        );
    }

    #[test]
    fn multipliers_are_truncated_to_four_decimals_never_rounded_up() {
        // 5 / 3 = 1.66666...: rounding would promise 1.6667x.
        assert_eq!(implied(3, 2, Side::Up, 0).as_deref(), Some("1.6666x"));
        assert_eq!(implied(20, 1, Side::Up, 0).as_deref(), Some("1.0500x"));
    }

    #[test]
    fn an_empty_side_has_no_multiplier_and_faces_an_empty_one_at_one() {
        assert_eq!(implied(120, 0, Side::Down, 100), None);
        assert_eq!(implied(120, 0, Side::Up, 100).as_deref(), Some("1.0000x"));
        assert_eq!(implied(0, 0, Side::Up, 100), None);
    }

    #[test]
    fn no_multiplier_is_implied_at_a_fee_above_one_hundred_percent() {
        assert_eq!(
            PayoutPlan::implied_multiplier(m(1), m(1), Side::Up, 10_001),
            Err(PayoutError::FeeTooHigh(10_001))
        );
    }

    fn bets_strategy() -> impl Strategy<Value = Vec<(Side, Micros)>> {
        let side = prop_oneof![Just(Side::Up), Just(Side::Down)];
        // Stakes up to 10^12 micro-USDC (a million USDC) each, and a few
        // huge ones, so 128-bit intermediates are exercised.
        let stake = prop_oneof![
            8 => 1i64..1_000_000_000_000,
            1 => 1i64..(i64::MAX / 4096),
        ];
        prop::collection::vec((side, stake.prop_map(|v| Micros::new(v).unwrap())), 0..200)
    }

    fn outcome_strategy() -> impl Strategy<Value = Outcome> {
        prop_oneof![Just(Outcome::Up), Just(Outcome::Down), Just(Outcome::Void)]
    }

    proptest! {
        #[test]
        fn money_is_conserved_to_the_micro(bets in bets_strategy(), outcome in outcome_strategy(), fee_bps in 0u32..=10_000) {
            let s = settle(outcome, &bets, fee_bps).unwrap();
            let total: i128 = bets.iter().map(|(_, v)| i128::from(v.get())).sum();
            let paid: i128 = s.payouts.iter().map(|v| i128::from(v.get())).sum();
            prop_assert_eq!(paid + i128::from(s.fee.get()) + i128::from(s.dust.get()), total);
        }

        #[test]
        fn every_winner_gets_at_least_the_stake(bets in bets_strategy(), outcome in outcome_strategy(), fee_bps in 0u32..=10_000) {
            let s = settle(outcome, &bets, fee_bps).unwrap();
            let winners_exist = outcome.winning_side().is_some_and(|w| bets.iter().any(|(side, _)| *side == w));
            for ((side, stake), payout) in bets.iter().zip(&s.payouts) {
                let is_winner = match outcome.winning_side() {
                    Some(w) if winners_exist => *side == w,
                    _ => true, // refund: everyone is paid back
                };
                if is_winner {
                    prop_assert!(payout >= stake, "winner paid {payout} for stake {stake}");
                } else {
                    prop_assert_eq!(*payout, Micros::ZERO);
                }
            }
        }

        #[test]
        fn dust_is_less_than_the_number_of_winning_bets(bets in bets_strategy(), outcome in outcome_strategy(), fee_bps in 0u32..=10_000) {
            let s = settle(outcome, &bets, fee_bps).unwrap();
            let paid_bets = s.payouts.iter().filter(|p| !p.is_zero()).count() as i64;
            prop_assert!(s.dust.get() < paid_bets.max(1), "dust {} with {} winners", s.dust, paid_bets);
        }

        #[test]
        fn a_side_is_paid_its_implied_multiplier_when_it_wins(up in 0i64..(i64::MAX / 2), down in 0i64..(i64::MAX / 2), fee_bps in 0u32..=10_000) {
            for side in [Side::Up, Side::Down] {
                let implied = PayoutPlan::implied_multiplier(m(up), m(down), side, fee_bps).unwrap();
                let plan = PayoutPlan::new(Outcome::won_by(side), m(up), m(down), fee_bps).unwrap();
                let pool = plan.pool(side);
                if pool.is_zero() {
                    prop_assert_eq!(implied, None);
                    continue;
                }
                // The whole side staked as one bet is paid its pool plus the
                // distributable: the multiplier is that per unit, truncated.
                let paid = u128::from(plan.payout(side, pool).get().unsigned_abs());
                let pool = u128::from(pool.get().unsigned_abs());
                let implied = implied.unwrap().ten_thousandths();
                prop_assert!(implied >= 10_000, "a winner gets at least the stake back");
                prop_assert_eq!(implied, paid * 10_000 / pool);
            }
        }

        #[test]
        fn fee_never_exceeds_its_share_of_the_loser_pool(bets in bets_strategy(), outcome in outcome_strategy(), fee_bps in 0u32..=10_000) {
            let s = settle(outcome, &bets, fee_bps).unwrap();
            let loser_pool: i128 = match outcome.winning_side() {
                Some(w) => bets.iter().filter(|(side, _)| *side != w).map(|(_, v)| i128::from(v.get())).sum(),
                None => 0,
            };
            prop_assert!(i128::from(s.fee.get()) * 10_000 <= loser_pool * i128::from(fee_bps));
        }
    }
}
