//! The calendar agrees with an independent reference on every session date
//! and close time from 2000 to 2030 (fixture generated with the
//! exchange_calendars package's XNAS calendar; see the file's header).

use chrono::NaiveDate;
use updown_domain::calendar::Calendar;

const REFERENCE: &str = include_str!("fixtures/xnas_sessions_2000_2030.csv");

#[test]
fn every_session_and_close_time_from_2000_to_2030_matches_the_reference() {
    let expected: Vec<(NaiveDate, String)> = REFERENCE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with("date"))
        .map(|l| {
            let (date, close) = l.split_once(',').expect("date,close");
            (date.parse().expect("date"), close.to_string())
        })
        .collect();
    assert!(expected.len() > 7_700, "fixture looks truncated");
    let from = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    let to = NaiveDate::from_ymd_opt(2030, 12, 31).unwrap();
    let actual: Vec<(NaiveDate, String)> = Calendar::nasdaq()
        .sessions(from, to)
        .unwrap()
        .into_iter()
        .map(|s| (s.date, s.close.format("%H:%M").to_string()))
        .collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|e| !actual.contains(e))
        .take(10)
        .collect();
    let extra: Vec<_> = actual
        .iter()
        .filter(|a| !expected.contains(a))
        .take(10)
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(actual, expected);
}

#[test]
fn the_calendar_extends_to_2035_with_its_rules() {
    let cal = Calendar::nasdaq();
    let sessions = cal
        .sessions(
            NaiveDate::from_ymd_opt(2035, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2035, 12, 31).unwrap(),
        )
        .unwrap();
    // 261 weekdays in 2035 minus 10 holidays on weekdays.
    assert_eq!(sessions.len(), 251);
    let good_friday = NaiveDate::from_ymd_opt(2035, 3, 23).unwrap();
    assert!(!cal.is_session(good_friday));
}
