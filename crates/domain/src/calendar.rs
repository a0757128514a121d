//! The NASDAQ trading calendar: which dates are sessions and when they close.
//!
//! Full-day holidays follow the exchange's rules (observed dates, New Year's
//! Day on a Saturday not observed, Good Friday, Juneteenth from 2022), early
//! closes at 13:00 New York time follow the published pattern (the day after
//! Thanksgiving, Christmas Eve and July 3 on Monday to Thursday), and the
//! historical exceptions are listed by date. Operators add their own closures.
//! Close instants go through the tz database; no fixed offsets.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::America::New_York;
use thiserror::Error;

/// First and last year the calendar answers for.
pub const FIRST_YEAR: i32 = 2000;
pub const LAST_YEAR: i32 = 2099;

/// Market closures decided ad hoc (national mourning, storms, attacks).
const AD_HOC_CLOSURES: &[(i32, u32, u32)] = &[
    (2001, 9, 11),
    (2001, 9, 12),
    (2001, 9, 13),
    (2001, 9, 14),
    (2004, 6, 11),
    (2007, 1, 2),
    (2012, 10, 29),
    (2012, 10, 30),
    (2018, 12, 5),
    (2025, 1, 9),
];

/// Early closes the exchange published outside the usual pattern.
const AD_HOC_EARLY_CLOSES: &[(i32, u32, u32)] = &[(2002, 7, 5), (2003, 12, 26)];

/// Dates the usual pattern would close early that traded a full day.
const AD_HOC_FULL_DAYS: &[(i32, u32, u32)] = &[(2002, 7, 3)];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CalendarError {
    #[error("{0} is outside the calendar's range {FIRST_YEAR}..={LAST_YEAR}")]
    OutOfRange(NaiveDate),
    #[error("{0} is not a NASDAQ trading session")]
    NotASession(NaiveDate),
}

/// One trading session: its New York date and regular or early close time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Session {
    pub date: NaiveDate,
    pub close: NaiveTime,
}

impl Session {
    pub fn is_early_close(&self) -> bool {
        self.close != regular_close()
    }

    /// The close as an instant, resolved through the tz database.
    pub fn close_at(&self) -> DateTime<Utc> {
        New_York
            .from_local_datetime(&self.date.and_time(self.close))
            .single()
            .expect("NASDAQ closes never fall in a DST transition")
            .with_timezone(&Utc)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Calendar {
    extra_closures: BTreeSet<NaiveDate>,
}

impl Calendar {
    /// The exchange's own calendar with no operator closures.
    pub fn nasdaq() -> Self {
        Self::default()
    }

    /// The exchange's calendar plus closures an operator configured.
    pub fn with_closures(extra: impl IntoIterator<Item = NaiveDate>) -> Self {
        Calendar {
            extra_closures: extra.into_iter().collect(),
        }
    }

    pub fn extra_closures(&self) -> impl Iterator<Item = &NaiveDate> {
        self.extra_closures.iter()
    }

    /// The session on `date`, or why there is none.
    pub fn session(&self, date: NaiveDate) -> Result<Session, CalendarError> {
        check_range(date)?;
        if !self.is_trading_day(date) {
            return Err(CalendarError::NotASession(date));
        }
        let close = if is_early_close(date) {
            early_close()
        } else {
            regular_close()
        };
        Ok(Session { date, close })
    }

    pub fn is_session(&self, date: NaiveDate) -> bool {
        self.session(date).is_ok()
    }

    /// The first session strictly after `date`.
    pub fn next_session(&self, date: NaiveDate) -> Result<Session, CalendarError> {
        self.step(date, 1)
    }

    /// The last session strictly before `date`.
    pub fn previous_session(&self, date: NaiveDate) -> Result<Session, CalendarError> {
        self.step(date, -1)
    }

    /// Every session from `from` to `to`, both included.
    pub fn sessions(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Session>, CalendarError> {
        check_range(from)?;
        check_range(to)?;
        Ok(from
            .iter_days()
            .take_while(|d| *d <= to)
            .filter_map(|d| self.session(d).ok())
            .collect())
    }

    fn step(&self, date: NaiveDate, days: i64) -> Result<Session, CalendarError> {
        let mut cursor = date;
        // No gap between sessions is longer than a week (2001-09-11 closed
        // four days next to a weekend), so the walk is bounded.
        for _ in 0..14 {
            cursor += Duration::days(days);
            check_range(cursor)?;
            if let Ok(session) = self.session(cursor) {
                return Ok(session);
            }
        }
        Err(CalendarError::NotASession(cursor))
    }

    fn is_trading_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
            && !is_holiday(date)
            && !listed(AD_HOC_CLOSURES, date)
            && !self.extra_closures.contains(&date)
    }
}

pub fn regular_close() -> NaiveTime {
    NaiveTime::from_hms_opt(16, 0, 0).expect("valid time")
}

pub fn early_close() -> NaiveTime {
    NaiveTime::from_hms_opt(13, 0, 0).expect("valid time")
}

fn check_range(date: NaiveDate) -> Result<(), CalendarError> {
    if (FIRST_YEAR..=LAST_YEAR).contains(&date.year()) {
        Ok(())
    } else {
        Err(CalendarError::OutOfRange(date))
    }
}

fn listed(list: &[(i32, u32, u32)], date: NaiveDate) -> bool {
    list.iter()
        .any(|&(y, m, d)| date.year() == y && date.month() == m && date.day() == d)
}

fn ymd(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid calendar date")
}

/// The n-th (1-based) `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).expect("valid weekday of month")
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    let mut date = nth_weekday(year, month, weekday, 4);
    while (date + Duration::days(7)).month() == month {
        date += Duration::days(7);
    }
    date
}

/// Saturday holidays move to Friday, Sunday holidays to Monday.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Duration::days(1),
        Weekday::Sun => date + Duration::days(1),
        _ => date,
    }
}

/// Easter Sunday (anonymous Gregorian algorithm).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month as u32, day as u32)
}

fn thanksgiving(year: i32) -> NaiveDate {
    nth_weekday(year, 11, Weekday::Thu, 4)
}

fn is_holiday(date: NaiveDate) -> bool {
    let year = date.year();
    // New Year's Day on a Sunday is observed on Monday; on a Saturday it is
    // not observed at all (the exchange keeps the year-end session).
    let new_year = ymd(year, 1, 1);
    let new_year_holiday = new_year.weekday() != Weekday::Sat && observed(new_year) == date;
    let mut holidays = vec![
        nth_weekday(year, 1, Weekday::Mon, 3), // Martin Luther King Jr. Day
        nth_weekday(year, 2, Weekday::Mon, 3), // Washington's Birthday
        easter(year) - Duration::days(2),      // Good Friday
        last_weekday(year, 5, Weekday::Mon),   // Memorial Day
        observed(ymd(year, 7, 4)),             // Independence Day
        nth_weekday(year, 9, Weekday::Mon, 1), // Labor Day
        thanksgiving(year),
        observed(ymd(year, 12, 25)), // Christmas
    ];
    if year >= 2022 {
        holidays.push(observed(ymd(year, 6, 19))); // Juneteenth
    }
    new_year_holiday || holidays.contains(&date)
}

fn is_early_close(date: NaiveDate) -> bool {
    if listed(AD_HOC_EARLY_CLOSES, date) {
        return true;
    }
    if listed(AD_HOC_FULL_DAYS, date) {
        return false;
    }
    let monday_to_thursday = matches!(
        date.weekday(),
        Weekday::Mon | Weekday::Tue | Weekday::Wed | Weekday::Thu
    );
    let day_after_thanksgiving = thanksgiving(date.year()) + Duration::days(1) == date;
    let christmas_eve = date.month() == 12 && date.day() == 24 && monday_to_thursday;
    let july_third = date.month() == 7 && date.day() == 3 && monday_to_thursday;
    day_after_thanksgiving || christmas_eve || july_third
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn easter_dates_match_known_years() {
        assert_eq!(easter(2000), d("2000-04-23"));
        assert_eq!(easter(2019), d("2019-04-21"));
        assert_eq!(easter(2024), d("2024-03-31"));
        assert_eq!(easter(2038), d("2038-04-25"));
    }

    #[test]
    fn monday_after_a_holiday_friday_compares_with_thursday() {
        let cal = Calendar::nasdaq();
        // 2024-03-29 was Good Friday.
        let previous = cal.previous_session(d("2024-04-01")).unwrap();
        assert_eq!(previous.date, d("2024-03-28"));
    }

    #[test]
    fn new_year_on_saturday_is_not_observed_on_friday() {
        let cal = Calendar::nasdaq();
        assert!(cal.is_session(d("2021-12-31")));
        assert!(
            !cal.is_session(d("2023-01-02")),
            "Sunday New Year moves to Monday"
        );
    }

    #[test]
    fn early_close_resolves_through_the_time_zone() {
        let cal = Calendar::nasdaq();
        let friday = cal.session(d("2026-11-27")).unwrap();
        assert!(friday.is_early_close());
        // 13:00 EST is 18:00 UTC; a July session at 16:00 EDT is 20:00 UTC.
        assert_eq!(friday.close_at().to_rfc3339(), "2026-11-27T18:00:00+00:00");
        let july = cal.session(d("2026-07-02")).unwrap();
        assert_eq!(july.close_at().to_rfc3339(), "2026-07-02T20:00:00+00:00");
    }

    #[test]
    fn operator_closures_remove_sessions() {
        let cal = Calendar::with_closures([d("2031-01-02")]);
        assert!(!cal.is_session(d("2031-01-02")));
        assert!(Calendar::nasdaq().is_session(d("2031-01-02")));
        assert_eq!(
            cal.next_session(d("2031-01-01")).unwrap().date,
            d("2031-01-03")
        );
    }

    #[test]
    fn dates_outside_the_range_are_refused() {
        let cal = Calendar::nasdaq();
        assert_eq!(
            cal.session(d("1999-12-31")),
            Err(CalendarError::OutOfRange(d("1999-12-31")))
        );
        assert!(cal.next_session(d("2099-12-31")).is_err());
    }
}
