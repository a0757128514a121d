//! From a session to a round's instants: open, lock, close, settle, void.
//!
//! A round opens when the previous session's round locks, so exactly one
//! round per market takes bets at any moment; it locks one second before the
//! close, settles from close + fetch delay, and voids at settle + grace.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::America::New_York;

use crate::calendar::{Calendar, CalendarError, Session};
use crate::ids::RoundCode;

/// Operator-tunable delays around a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// Wait after the close before asking the oracle (CLOSE_FETCH_DELAY_MIN).
    pub close_fetch_delay: Duration,
    /// How long to keep trying before voiding (SETTLE_GRACE_MIN).
    pub settle_grace: Duration,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            close_fetch_delay: Duration::minutes(5),
            settle_grace: Duration::minutes(30),
        }
    }
}

/// The instants of one round, all derived from the calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundSchedule {
    pub session: Session,
    pub previous_session: Session,
    pub open_at: DateTime<Utc>,
    pub lock_at: DateTime<Utc>,
    pub close_at: DateTime<Utc>,
    pub settle_at: DateTime<Utc>,
    pub void_at: DateTime<Utc>,
}

impl RoundSchedule {
    pub fn code(&self) -> RoundCode {
        RoundCode::from_date(self.session.date)
    }
}

/// Bets are refused from this instant on: one second before the close.
pub fn lock_instant(session: &Session) -> DateTime<Utc> {
    session.close_at() - Duration::seconds(1)
}

/// The schedule of the round for the session on `date`.
pub fn round_schedule(
    calendar: &Calendar,
    config: &ScheduleConfig,
    date: NaiveDate,
) -> Result<RoundSchedule, CalendarError> {
    let session = calendar.session(date)?;
    let previous_session = calendar.previous_session(date)?;
    let close_at = session.close_at();
    let settle_at = close_at + config.close_fetch_delay;
    Ok(RoundSchedule {
        session,
        previous_session,
        open_at: lock_instant(&previous_session),
        lock_at: lock_instant(&session),
        close_at,
        settle_at,
        void_at: settle_at + config.settle_grace,
    })
}

/// The round that takes bets at `now`: the first session whose lock is
/// still ahead.
pub fn round_taking_bets_at(
    calendar: &Calendar,
    config: &ScheduleConfig,
    now: DateTime<Utc>,
) -> Result<RoundSchedule, CalendarError> {
    let today = now.with_timezone(&New_York).date_naive();
    if let Ok(session) = calendar.session(today) {
        if now < lock_instant(&session) {
            return round_schedule(calendar, config, today);
        }
    }
    let next = calendar.next_session(today)?;
    round_schedule(calendar, config, next.date)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_monday_round_opens_at_fridays_lock_and_locks_a_second_before_close() {
        let cal = Calendar::nasdaq();
        let s = round_schedule(
            &cal,
            &ScheduleConfig::default(),
            "2026-11-30".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(s.previous_session.date.to_string(), "2026-11-27");
        // Friday 2026-11-27 closes early at 13:00 EST.
        assert_eq!(s.open_at, at("2026-11-27T12:59:59-05:00"));
        assert_eq!(s.lock_at, at("2026-11-30T15:59:59-05:00"));
        assert_eq!(s.settle_at, at("2026-11-30T16:05:00-05:00"));
        assert_eq!(s.void_at, at("2026-11-30T16:35:00-05:00"));
    }

    #[test]
    fn dst_changes_move_the_utc_instants() {
        let cal = Calendar::nasdaq();
        // 2026-03-06 (EST) and 2026-03-09 (EDT, DST began on the 8th).
        let s = round_schedule(
            &cal,
            &ScheduleConfig::default(),
            "2026-03-09".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(s.open_at.to_rfc3339(), "2026-03-06T20:59:59+00:00");
        assert_eq!(s.lock_at.to_rfc3339(), "2026-03-09T19:59:59+00:00");
    }

    #[test]
    fn the_round_taking_bets_switches_at_the_lock_instant() {
        let cal = Calendar::nasdaq();
        let cfg = ScheduleConfig::default();
        let before = round_taking_bets_at(&cal, &cfg, at("2026-11-24T15:59:58-05:00")).unwrap();
        assert_eq!(before.code().to_string(), "20261124");
        let at_lock = round_taking_bets_at(&cal, &cfg, at("2026-11-24T15:59:59-05:00")).unwrap();
        assert_eq!(at_lock.code().to_string(), "20261125");
        // Over Thanksgiving (Thursday 26th) the next round is Friday's.
        let wednesday_evening =
            round_taking_bets_at(&cal, &cfg, at("2026-11-25T18:00:00-05:00")).unwrap();
        assert_eq!(wednesday_evening.code().to_string(), "20261127");
        let saturday = round_taking_bets_at(&cal, &cfg, at("2026-11-28T10:00:00-05:00")).unwrap();
        assert_eq!(saturday.code().to_string(), "20261130");
    }
}
