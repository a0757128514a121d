//! A round's state machine, its outcome from two closes, and its published
//! terms.
//!
//! OPEN -> LOCKED -> SETTLED (UP or DOWN) or VOID. Whether a bet may enter
//! is decided by the clock against the lock instant, whatever the stored
//! status says, so a late scheduler cannot let bets in.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ids::{Market, RoundCode};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Up,
    Down,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Up, Side::Down];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Up => "UP",
            Side::Down => "DOWN",
        }
    }

    pub fn other(self) -> Side {
        match self {
            Side::Up => Side::Down,
            Side::Down => Side::Up,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoundStatus {
    Open,
    Locked,
    Settled,
    Void,
}

impl RoundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RoundStatus::Open => "OPEN",
            RoundStatus::Locked => "LOCKED",
            RoundStatus::Settled => "SETTLED",
            RoundStatus::Void => "VOID",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, RoundStatus::Settled | RoundStatus::Void)
    }
}

/// How a round ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Up,
    Down,
    Void,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Up => "UP",
            Outcome::Down => "DOWN",
            Outcome::Void => "VOID",
        }
    }

    pub fn winning_side(self) -> Option<Side> {
        match self {
            Outcome::Up => Some(Side::Up),
            Outcome::Down => Some(Side::Down),
            Outcome::Void => None,
        }
    }

    /// The outcome in which bets on `side` win.
    pub fn won_by(side: Side) -> Outcome {
        match side {
            Side::Up => Outcome::Up,
            Side::Down => Outcome::Down,
        }
    }
}

/// What a tie between the two closes means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TiePolicy {
    /// The seed's rule: a tie is DOWN.
    #[default]
    Down,
    /// A tie voids the round and refunds every stake.
    Refund,
}

impl TiePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            TiePolicy::Down => "down",
            TiePolicy::Refund => "refund",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq, Clone)]
#[error("{kind} {value:?} is not one of {allowed}")]
pub struct ParseEnumError {
    kind: &'static str,
    value: String,
    allowed: &'static str,
}

fn parse_enum<T: Copy>(
    text: &str,
    kind: &'static str,
    allowed: &'static str,
    options: &[(&str, T)],
) -> Result<T, ParseEnumError> {
    let upper = text.trim().to_ascii_uppercase();
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&upper))
        .map(|(_, v)| *v)
        .ok_or(ParseEnumError {
            kind,
            value: text.to_string(),
            allowed,
        })
}

impl FromStr for Side {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            s,
            "side",
            "UP, DOWN",
            &[("UP", Side::Up), ("DOWN", Side::Down)],
        )
    }
}

impl FromStr for RoundStatus {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use RoundStatus::*;
        parse_enum(
            s,
            "round status",
            "OPEN, LOCKED, SETTLED, VOID",
            &[
                ("OPEN", Open),
                ("LOCKED", Locked),
                ("SETTLED", Settled),
                ("VOID", Void),
            ],
        )
    }
}

impl FromStr for Outcome {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use Outcome::*;
        parse_enum(
            s,
            "result",
            "UP, DOWN, VOID",
            &[("UP", Up), ("DOWN", Down), ("VOID", Void)],
        )
    }
}

impl FromStr for TiePolicy {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_enum(
            s,
            "tie policy",
            "down, refund",
            &[("DOWN", TiePolicy::Down), ("REFUND", TiePolicy::Refund)],
        )
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An official close: a strictly positive exact decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(Decimal);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PriceError {
    #[error("price {0:?} is not a decimal number")]
    Malformed(String),
    #[error("price {0:?} must be greater than zero")]
    NotPositive(String),
}

impl Price {
    pub fn parse(text: &str) -> Result<Self, PriceError> {
        let text = text.trim();
        let valid_chars = !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
        let value = if valid_chars {
            Decimal::from_str_exact(text).map_err(|_| PriceError::Malformed(text.to_string()))?
        } else {
            return Err(PriceError::Malformed(text.to_string()));
        };
        Price::new(value).map_err(|_| PriceError::NotPositive(text.to_string()))
    }

    pub fn new(value: Decimal) -> Result<Self, PriceError> {
        if value <= Decimal::ZERO {
            return Err(PriceError::NotPositive(value.to_string()));
        }
        Ok(Price(value.normalize()))
    }

    pub fn value(self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// UP when the close beats the previous session's close, DOWN when below;
/// a tie follows the round's tie policy. Decimals compare exactly.
pub fn decide(close: Price, previous_close: Price, tie: TiePolicy) -> Outcome {
    match close.cmp(&previous_close) {
        std::cmp::Ordering::Greater => Outcome::Up,
        std::cmp::Ordering::Less => Outcome::Down,
        std::cmp::Ordering::Equal => match tie {
            TiePolicy::Down => Outcome::Down,
            TiePolicy::Refund => Outcome::Void,
        },
    }
}

/// What a round promises, fixed when it opens and published with a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoundTerms {
    pub market: Market,
    pub code: RoundCode,
    pub previous_session: NaiveDate,
    pub open_at: DateTime<Utc>,
    pub lock_at: DateTime<Utc>,
    pub close_at: DateTime<Utc>,
    pub settle_at: DateTime<Utc>,
    pub void_at: DateTime<Utc>,
    pub fee_bps: u32,
    pub tie_policy: TiePolicy,
    /// Where the closes come from and the rule they must meet, e.g.
    /// `quorum(2 of a, b, c) within 10 bps`; `None` for rounds opened
    /// before the terms named it (their digest is the v1 one).
    pub oracle: Option<String>,
    /// Minutes the payouts wait once the oracle's result is published,
    /// while an operator may still void (`SETTLE_DISPUTE_MIN`; 0: paid at
    /// once). `None` for rounds opened before the terms named it: the
    /// setting when the result is published applies (v1 and v2 digests).
    pub dispute_min: Option<u32>,
}

impl RoundTerms {
    /// The canonical text the digest covers: one `key=value` per line in a
    /// fixed order, instants in RFC 3339 UTC, so anyone can recompute it.
    /// Terms that name their oracle are v2: the v1 lines, then `oracle=`
    /// (line breaks in it written as spaces). Terms that also name the
    /// dispute window are v3: the v2 lines, then `dispute_min=`.
    pub fn canonical_text(&self) -> String {
        let t = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Secs, true);
        // v3 always has the `oracle=` line (empty if unnamed).
        let oracle = match (&self.oracle, self.dispute_min) {
            (Some(oracle), _) => format!("oracle={}\n", oracle.replace(['\n', '\r'], " ")),
            (None, Some(_)) => "oracle=\n".to_string(),
            (None, None) => String::new(),
        };
        let dispute = self
            .dispute_min
            .map_or_else(String::new, |minutes| format!("dispute_min={minutes}\n"));
        let version = match (&self.oracle, self.dispute_min) {
            (_, Some(_)) => "v3",
            (Some(_), None) => "v2",
            (None, None) => "v1",
        };
        format!(
            "updown-round-terms-{version}\nmarket={}\ncode={}\nprevious_session={}\nopen_at={}\nlock_at={}\nclose_at={}\nsettle_at={}\nvoid_at={}\nfee_bps={}\ntie_policy={}\n{oracle}{dispute}",
            self.market,
            self.code,
            self.previous_session,
            t(self.open_at),
            t(self.lock_at),
            t(self.close_at),
            t(self.settle_at),
            t(self.void_at),
            self.fee_bps,
            self.tie_policy.as_str(),
        )
    }

    /// SHA-256 of the canonical text, lower-case hex.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_text().as_bytes()))
    }
}

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum RoundError {
    #[error("round {code} is {status}, not open for bets")]
    NotOpen {
        code: RoundCode,
        status: &'static str,
    },
    #[error("round {code} locked at {lock_at}; bets are no longer accepted")]
    PastLock {
        code: RoundCode,
        lock_at: DateTime<Utc>,
    },
    #[error("round {code} opens at {open_at}; bets are not accepted yet")]
    NotYetOpen {
        code: RoundCode,
        open_at: DateTime<Utc>,
    },
    #[error("bets on round {code} can no longer be cancelled (cut-off was {cutoff})")]
    PastCancelCutoff {
        code: RoundCode,
        cutoff: DateTime<Utc>,
    },
    #[error("round {code} is {status}; only a LOCKED round can be settled")]
    NotSettleable {
        code: RoundCode,
        status: &'static str,
    },
    #[error("round {code}'s session closes at {close_at}; only VOID can be decided before then")]
    SessionNotClosed {
        code: RoundCode,
        close_at: DateTime<Utc>,
    },
    #[error("round {code} cannot be settled from the oracle before {settle_at}")]
    TooEarlyToSettle {
        code: RoundCode,
        settle_at: DateTime<Utc>,
    },
    #[error("round {code} is {status}; only an OPEN round can be locked")]
    NotLockable {
        code: RoundCode,
        status: &'static str,
    },
}

/// The round fields the rules need.
#[derive(Clone, Copy, Debug)]
pub struct RoundClock {
    pub code: RoundCode,
    pub status: RoundStatus,
    pub open_at: DateTime<Utc>,
    pub lock_at: DateTime<Utc>,
    pub close_at: DateTime<Utc>,
    pub settle_at: DateTime<Utc>,
    /// When the round was locked (by the scheduler at the lock instant, or
    /// early by an operator).
    pub locked_at: Option<DateTime<Utc>>,
    /// Settlement has begun: the pools are decided.
    pub settling: bool,
}

impl RoundClock {
    /// A bet received at `now` may enter a round that was still open at
    /// that instant, and never at or after the lock instant: the clock wins
    /// over a stale status. A bet received just before the lock may reach
    /// the database just after the lock was recorded; it is accepted, as
    /// long as settlement has not begun.
    pub fn check_bet(&self, now: DateTime<Utc>) -> Result<(), RoundError> {
        if now >= self.lock_at {
            return Err(RoundError::PastLock {
                code: self.code,
                lock_at: self.lock_at,
            });
        }
        let open_then = match self.status {
            RoundStatus::Open => true,
            RoundStatus::Locked => !self.settling && self.locked_at.is_some_and(|at| now < at),
            RoundStatus::Settled | RoundStatus::Void => false,
        };
        if !open_then {
            return Err(RoundError::NotOpen {
                code: self.code,
                status: self.status.as_str(),
            });
        }
        if now < self.open_at {
            return Err(RoundError::NotYetOpen {
                code: self.code,
                open_at: self.open_at,
            });
        }
        Ok(())
    }

    /// The last instant (exclusive) a bet may be cancelled.
    pub fn cancel_cutoff(&self, cancel_cutoff: Duration) -> DateTime<Utc> {
        self.lock_at - cancel_cutoff
    }

    pub fn check_cancel(
        &self,
        now: DateTime<Utc>,
        cancel_cutoff: Duration,
    ) -> Result<(), RoundError> {
        let cutoff = self.cancel_cutoff(cancel_cutoff);
        if now >= cutoff {
            return Err(RoundError::PastCancelCutoff {
                code: self.code,
                cutoff,
            });
        }
        if self.status != RoundStatus::Open {
            return Err(RoundError::NotOpen {
                code: self.code,
                status: self.status.as_str(),
            });
        }
        Ok(())
    }

    pub fn check_lock(&self) -> Result<(), RoundError> {
        if self.status != RoundStatus::Open {
            return Err(RoundError::NotLockable {
                code: self.code,
                status: self.status.as_str(),
            });
        }
        Ok(())
    }

    /// Settlement needs a LOCKED round (an OPEN one past its lock instant is
    /// locked first by the caller); the oracle may only be asked from the
    /// settle instant, while an operator's manual result is accepted after
    /// the lock.
    /// An operator's result: VOID once locked; UP or DOWN only once the
    /// session has closed (nobody knows the result before).
    pub fn check_manual_result(
        &self,
        now: DateTime<Utc>,
        outcome: Outcome,
    ) -> Result<(), RoundError> {
        self.check_settle(now, false)?;
        if outcome != Outcome::Void && now < self.close_at {
            return Err(RoundError::SessionNotClosed {
                code: self.code,
                close_at: self.close_at,
            });
        }
        Ok(())
    }

    pub fn check_settle(&self, now: DateTime<Utc>, from_oracle: bool) -> Result<(), RoundError> {
        if self.status != RoundStatus::Locked {
            return Err(RoundError::NotSettleable {
                code: self.code,
                status: self.status.as_str(),
            });
        }
        if from_oracle && now < self.settle_at {
            return Err(RoundError::TooEarlyToSettle {
                code: self.code,
                settle_at: self.settle_at,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Price {
        Price::parse(s).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn outcome_compares_exact_decimals_and_ties_follow_policy() {
        assert_eq!(
            decide(p("100.01"), p("100.00"), TiePolicy::Down),
            Outcome::Up
        );
        assert_eq!(
            decide(p("99.999"), p("100"), TiePolicy::Down),
            Outcome::Down
        );
        assert_eq!(
            decide(p("100.10"), p("100.1"), TiePolicy::Down),
            Outcome::Down
        );
        assert_eq!(
            decide(p("100.10"), p("100.1"), TiePolicy::Refund),
            Outcome::Void
        );
        // 0.1 + 0.2 style float traps do not exist here.
        assert_eq!(
            decide(p("0.3"), p("0.30000000000000004"), TiePolicy::Down),
            Outcome::Down
        );
    }

    #[test]
    fn prices_must_be_positive_decimals() {
        assert!(Price::parse("0").is_err());
        assert!(Price::parse("-1.5").is_err());
        assert!(Price::parse("1e3").is_err());
        assert!(Price::parse("NaN").is_err());
        assert_eq!(p("20123.450").to_string(), "20123.45");
    }

    fn clock(status: RoundStatus) -> RoundClock {
        RoundClock {
            code: RoundCode::parse("20261124").unwrap(),
            status,
            open_at: at("2026-11-23T20:59:59Z"),
            lock_at: at("2026-11-24T20:59:59Z"),
            close_at: at("2026-11-24T21:00:00Z"),
            settle_at: at("2026-11-24T21:05:00Z"),
            locked_at: None,
            settling: false,
        }
    }

    #[test]
    fn an_operator_may_void_once_locked_but_call_a_side_only_after_the_close() {
        let locked = clock(RoundStatus::Locked);
        let before_close = at("2026-11-24T20:59:59Z");
        assert!(locked
            .check_manual_result(before_close, Outcome::Void)
            .is_ok());
        for side in [Outcome::Up, Outcome::Down] {
            assert!(matches!(
                locked.check_manual_result(before_close, side),
                Err(RoundError::SessionNotClosed { .. })
            ));
            assert!(locked
                .check_manual_result(at("2026-11-24T21:00:00Z"), side)
                .is_ok());
        }
        assert!(clock(RoundStatus::Open)
            .check_manual_result(at("2026-11-24T22:00:00Z"), Outcome::Void)
            .is_err());
    }

    #[test]
    fn the_clock_refuses_bets_at_the_lock_even_if_status_is_open() {
        let round = clock(RoundStatus::Open);
        assert!(round.check_bet(at("2026-11-24T20:59:58Z")).is_ok());
        assert!(matches!(
            round.check_bet(at("2026-11-24T20:59:59Z")),
            Err(RoundError::PastLock { .. })
        ));
        assert!(matches!(
            clock(RoundStatus::Locked).check_bet(at("2026-11-24T12:00:00Z")),
            Err(RoundError::NotOpen { .. })
        ));
    }

    #[test]
    fn a_bet_received_before_the_lock_took_effect_enters_until_settlement_begins() {
        let locked = RoundClock {
            locked_at: Some(at("2026-11-24T20:59:59.004Z")),
            ..clock(RoundStatus::Locked)
        };
        // Received a millisecond before the lock instant, decided after the
        // scheduler recorded the lock: still in.
        assert!(locked.check_bet(at("2026-11-24T20:59:58.999Z")).is_ok());
        assert!(matches!(
            locked.check_bet(at("2026-11-24T20:59:59Z")),
            Err(RoundError::PastLock { .. })
        ));
        // An operator's early lock: bets received after it are out.
        let early = RoundClock {
            locked_at: Some(at("2026-11-24T20:00:00Z")),
            ..clock(RoundStatus::Locked)
        };
        assert!(early.check_bet(at("2026-11-24T19:59:59Z")).is_ok());
        assert!(matches!(
            early.check_bet(at("2026-11-24T20:00:00Z")),
            Err(RoundError::NotOpen { .. })
        ));
        // Once settlement has begun the pools are decided: nothing enters.
        let settling = RoundClock {
            settling: true,
            ..early
        };
        assert!(matches!(
            settling.check_bet(at("2026-11-24T19:59:59Z")),
            Err(RoundError::NotOpen { .. })
        ));
        for status in [RoundStatus::Settled, RoundStatus::Void] {
            let done = RoundClock { status, ..early };
            assert!(done.check_bet(at("2026-11-24T19:59:59Z")).is_err());
        }
    }

    #[test]
    fn cancel_is_allowed_until_the_cutoff() {
        let round = clock(RoundStatus::Open);
        let cutoff = Duration::minutes(15);
        assert!(round
            .check_cancel(at("2026-11-24T20:44:58Z"), cutoff)
            .is_ok());
        assert!(round
            .check_cancel(at("2026-11-24T20:44:59Z"), cutoff)
            .is_err());
    }

    #[test]
    fn the_oracle_is_not_asked_before_the_settle_instant() {
        let round = clock(RoundStatus::Locked);
        assert!(round
            .check_settle(at("2026-11-24T21:04:59Z"), true)
            .is_err());
        assert!(round
            .check_settle(at("2026-11-24T21:04:59Z"), false)
            .is_ok());
        assert!(round.check_settle(at("2026-11-24T21:05:00Z"), true).is_ok());
        assert!(clock(RoundStatus::Settled)
            .check_settle(at("2026-11-25T00:00:00Z"), false)
            .is_err());
    }

    #[test]
    fn terms_digest_changes_with_any_term() {
        let terms = RoundTerms {
            market: Market::parse("NDX").unwrap(),
            code: RoundCode::parse("20261124").unwrap(),
            previous_session: "2026-11-23".parse().unwrap(),
            open_at: at("2026-11-23T20:59:59Z"),
            lock_at: at("2026-11-24T20:59:59Z"),
            close_at: at("2026-11-24T21:00:00Z"),
            settle_at: at("2026-11-24T21:05:00Z"),
            void_at: at("2026-11-24T21:35:00Z"),
            fee_bps: 100,
            tie_policy: TiePolicy::Down,
            oracle: None,
            dispute_min: None,
        };
        let digest = terms.digest();
        assert!(terms
            .canonical_text()
            .starts_with("updown-round-terms-v1\n"));
        assert_eq!(digest.len(), 64);
        assert_eq!(
            digest,
            hex::encode(Sha256::digest(terms.canonical_text().as_bytes()))
        );
        let changed = RoundTerms {
            fee_bps: 101,
            ..terms.clone()
        };
        assert_ne!(changed.digest(), digest);
        // Naming the oracle makes them v2, and the oracle is covered.
        let named = RoundTerms {
            oracle: Some("quorum(2 of a, b, c) within 10 bps".into()),
            ..terms.clone()
        };
        assert!(named
            .canonical_text()
            .starts_with("updown-round-terms-v2\n"));
        assert!(named
            .canonical_text()
            .ends_with("\ntie_policy=down\noracle=quorum(2 of a, b, c) within 10 bps\n"));
        let other = RoundTerms {
            oracle: Some("quorum(3 of a, b, c) within 10 bps".into()),
            ..terms.clone()
        };
        assert_ne!(named.digest(), digest);
        assert_ne!(named.digest(), other.digest());
        // A line break cannot forge another line.
        let forged = RoundTerms {
            oracle: Some("mock\nfee_bps=0".into()),
            ..terms.clone()
        };
        assert_eq!(forged.canonical_text().lines().count(), 12);
        // Naming the dispute window makes them v3, and it is covered.
        let disputable = RoundTerms {
            dispute_min: Some(60),
            ..named.clone()
        };
        assert!(disputable
            .canonical_text()
            .starts_with("updown-round-terms-v3\n"));
        assert!(disputable
            .canonical_text()
            .ends_with("\noracle=quorum(2 of a, b, c) within 10 bps\ndispute_min=60\n"));
        let at_once = RoundTerms {
            dispute_min: Some(0),
            ..named.clone()
        };
        let unnamed = RoundTerms {
            dispute_min: Some(60),
            ..terms.clone()
        };
        assert!(unnamed
            .canonical_text()
            .ends_with("\ntie_policy=down\noracle=\ndispute_min=60\n"));
        assert_ne!(disputable.digest(), named.digest());
        assert_ne!(disputable.digest(), at_once.digest());
    }
}
