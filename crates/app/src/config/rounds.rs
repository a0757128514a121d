//! The parts of the configuration about the game: the rounds and their
//! calendar, the limits on money moving, and the simulated clock.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use updown_domain::calendar::Calendar;
use updown_domain::ids::Market;
use updown_domain::payout::MAX_FEE_BPS;
use updown_domain::round::{ParseEnumError, TiePolicy};
use updown_domain::schedule::ScheduleConfig;
use updown_domain::Micros;

use super::reader::{ConfigError, Reader, Unit};

#[derive(Clone, Debug)]
pub struct Rounds {
    /// TIMEZONE: the seed's "round timing time zone". Rounds follow the
    /// NASDAQ close, so only America/New_York is accepted.
    pub timezone: chrono_tz::Tz,
    /// What rounds are about (MARKET_SYMBOL).
    pub market: Market,
    pub fee_bps: u32,
    pub tie_policy: TiePolicy,
    /// When to ask the oracle and when to give up (CLOSE_FETCH_DELAY_MIN,
    /// SETTLE_GRACE_MIN).
    pub schedule: ScheduleConfig,
    /// Bets can be cancelled until this long before lock
    /// (CANCEL_CUTOFF_MIN).
    pub cancel_cutoff: Duration,
    /// The operator's closures beyond the exchange's (EXTRA_CLOSURES).
    pub extra_closures: Vec<NaiveDate>,
    /// How long the oracle's UP or DOWN stays published before it is
    /// paid, while an operator may still void the round
    /// (SETTLE_DISPUTE_MIN; `None` for 0, paid at once).
    pub dispute_window: Option<Duration>,
}

impl Rounds {
    pub fn from_reader(r: &mut Reader) -> Result<Rounds, ConfigError> {
        Ok(Rounds {
            timezone: r.parse("TIMEZONE", "America/New_York", new_york)?,
            market: r.parse("MARKET_SYMBOL", "NDX", |text| {
                Market::parse(text).map_err(|e| e.to_string())
            })?,
            fee_bps: r.number("FEE_BPS", 100u32, 0..=MAX_FEE_BPS)?,
            tie_policy: r.parse("TIE_POLICY", "down", |text| {
                text.parse().map_err(|e: ParseEnumError| e.to_string())
            })?,
            schedule: ScheduleConfig {
                close_fetch_delay: span(r, "CLOSE_FETCH_DELAY_MIN", 5, 0..=240)?,
                settle_grace: span(r, "SETTLE_GRACE_MIN", 30, 1..=1440)?,
            },
            cancel_cutoff: span(r, "CANCEL_CUTOFF_MIN", 15, 0..=1440)?,
            extra_closures: r.optional("EXTRA_CLOSURES", dates)?.unwrap_or_default(),
            dispute_window: Some(span(r, "SETTLE_DISPUTE_MIN", 0, 0..=10_080)?)
                .filter(|window| !window.is_zero()),
        })
    }

    /// The exchange's calendar with the operator's closures.
    pub fn calendar(&self) -> Calendar {
        Calendar::with_closures(self.extra_closures.iter().copied())
    }
}

fn new_york(text: &str) -> Result<chrono_tz::Tz, String> {
    let timezone: chrono_tz::Tz = text
        .parse()
        .map_err(|_| "not a time zone of the tz database (e.g. America/New_York)")?;
    if timezone != chrono_tz::America::New_York {
        return Err("rounds follow the NASDAQ close at 16:00 New York time; \
                    TIMEZONE must be America/New_York (or unset)"
            .into());
    }
    Ok(timezone)
}

/// `2031-01-02,2031-01-03`.
fn dates(text: &str) -> Result<Vec<NaiveDate>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|date| !date.is_empty())
        .map(|date| {
            date.parse()
                .map_err(|_| format!("{date}: dates must be YYYY-MM-DD, separated by commas"))
        })
        .collect()
}

/// Minutes, as the domain's schedule counts time.
fn span(
    r: &mut Reader,
    variable: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Duration, ConfigError> {
    let span = r.duration(variable, Unit::Minutes, default, range)?;
    Ok(Duration::from_std(span).expect("bounded by its range"))
}

/// Limits on money moving.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest single bet (MAX_BET).
    pub max_bet: Micros,
    /// Smallest withdrawal (WITHDRAWAL_MIN).
    pub withdrawal_min: Micros,
    /// Most one user may withdraw over 24 hours (WITHDRAWAL_DAILY_MAX).
    pub withdrawal_daily_max: Micros,
    /// A withdrawal of more waits for two treasurers' approval
    /// (WITHDRAWAL_APPROVAL_OVER).
    pub withdrawal_approval_over: Micros,
    /// How long a raise of a player's stake limits waits before it takes
    /// effect (LIMIT_RAISE_COOLOFF_HOURS).
    pub limit_raise_cooloff: Duration,
}

impl Limits {
    pub fn from_reader(r: &mut Reader) -> Result<Limits, ConfigError> {
        let max_bet = r.amount("MAX_BET", "10000USDC")?;
        let withdrawal_min = r.amount("WITHDRAWAL_MIN", "1USDC")?;
        let withdrawal_daily_max = r.amount("WITHDRAWAL_DAILY_MAX", "50000USDC")?;
        if withdrawal_daily_max < withdrawal_min {
            return Err(ConfigError::new(
                "WITHDRAWAL_DAILY_MAX",
                &withdrawal_daily_max.to_string(),
                "must be at least WITHDRAWAL_MIN",
            ));
        }
        let withdrawal_approval_over = r.amount("WITHDRAWAL_APPROVAL_OVER", "10000USDC")?;
        let cooloff = r.duration("LIMIT_RAISE_COOLOFF_HOURS", Unit::Hours, 24, 0..=720)?;
        Ok(Limits {
            max_bet,
            withdrawal_min,
            withdrawal_daily_max,
            withdrawal_approval_over,
            limit_raise_cooloff: Duration::from_std(cooloff).expect("bounded by its range"),
        })
    }
}

/// Where the clock starts and how fast it runs, for demos and tests only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockOverride {
    pub start: DateTime<Utc>,
    pub speed: f64,
}

impl ClockOverride {
    /// CLOCK_START and CLOCK_SPEED; `None` for the system clock.
    pub fn from_reader(r: &mut Reader) -> Result<Option<ClockOverride>, ConfigError> {
        let start = r.optional("CLOCK_START", |text| {
            DateTime::parse_from_rfc3339(text)
                .map(|start| start.with_timezone(&Utc))
                .map_err(|_| "must be an RFC 3339 instant, e.g. 2026-11-24T20:58:00Z".into())
        })?;
        let speed = r.optional_text("CLOCK_SPEED");
        let Some(start) = start else {
            return match speed {
                Some(speed) => Err(ConfigError::new(
                    "CLOCK_SPEED",
                    &speed,
                    "only makes sense with CLOCK_START",
                )),
                None => Ok(None),
            };
        };
        let speed = match speed {
            None => 1.0,
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0 && *v <= 100_000.0)
                .ok_or_else(|| {
                    ConfigError::new(
                        "CLOCK_SPEED",
                        &text,
                        "must be a number above 0 and at most 100000",
                    )
                })?,
        };
        Ok(Some(ClockOverride { start, speed }))
    }
}
