//! Capped exponential backoff with jitter, for everything that retries
//! an outside service (Redis, the oracle's HTTP provider).

use std::time::Duration;

/// The waits between attempts: `min`, doubling up to `max`, each with up
/// to half of it again added at random, so instances do not retry in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let current = self.next;
        self.next = (self.next * 2).min(self.max);
        let mut byte = [0u8; 1];
        let _ = getrandom::fill(&mut byte);
        current + current.mul_f64(f64::from(byte[0]) / 510.0)
    }

    /// After a success: the next failure waits `min` again.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// Whether no attempt has failed since the start or the last reset.
    pub fn is_fresh(&self) -> bool {
        self.next == self.min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_to_their_cap_with_at_most_half_again_of_jitter() {
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(10));
        let mut backoff = Backoff::new(min, max);
        let waits: Vec<Duration> = (0..10).map(|_| backoff.next_wait()).collect();
        assert!(waits[0] >= min && waits[0] <= min.mul_f64(1.5));
        assert!(waits[1] >= min * 2);
        assert!(waits[9] >= max && waits.iter().all(|w| *w <= max.mul_f64(1.5)));
        backoff.reset();
        assert!(backoff.is_fresh());
        assert!(backoff.next_wait() <= min.mul_f64(1.5));
    }
}
