//! The clock port. The domain never reads time; the app asks a `Clock`, so
//! tests and demos can hold or speed up time.

use std::sync::Mutex;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};

use crate::config::ClockOverride;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// How long in real time until this clock reads `at` (zero once it
    /// has); `None` for a clock that moves only when told to.
    fn real_time_until(&self, at: DateTime<Utc>) -> Option<std::time::Duration> {
        Some((at - self.now()).to_std().unwrap_or_default())
    }
}

/// Wall-clock time.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Time that moves only when told to (tests, the demo).
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }

    fn real_time_until(&self, _at: DateTime<Utc>) -> Option<std::time::Duration> {
        None
    }
}

/// Starts at a chosen instant and runs `speed` times faster than real time
/// (CLOCK_START, CLOCK_SPEED).
pub struct ScaledClock {
    start: DateTime<Utc>,
    speed: f64,
    origin: Instant,
}

impl ScaledClock {
    pub fn new(setting: ClockOverride) -> Self {
        ScaledClock {
            start: setting.start,
            speed: setting.speed,
            origin: Instant::now(),
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = self.origin.elapsed().as_secs_f64() * self.speed;
        self.start + Duration::microseconds((elapsed * 1_000_000.0) as i64)
    }

    fn real_time_until(&self, at: DateTime<Utc>) -> Option<std::time::Duration> {
        let ahead = (at - self.now()).to_std().unwrap_or_default();
        Some(ahead.div_f64(self.speed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scaled_clock_starts_where_told_and_runs_faster() {
        let start = DateTime::parse_from_rfc3339("2026-11-24T20:58:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ScaledClock::new(ClockOverride {
            start,
            speed: 1000.0,
        });
        let first = clock.now();
        assert!(first >= start);
        std::thread::sleep(std::time::Duration::from_millis(20));
        // 20 ms of real time is at least 20 s at 1000x.
        assert!(clock.now() - start >= Duration::seconds(20));
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = DateTime::parse_from_rfc3339("2026-11-24T20:58:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::minutes(3));
        assert_eq!(clock.now(), start + Duration::minutes(3));
    }
}
