//! Configuration: defaults, then `.env` and the environment, parsed once at
//! start into typed values. A bad value fails at start with a message that
//! names the variable.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use updown_domain::calendar::Calendar;
use updown_domain::ids::Market;
use updown_domain::payout::MAX_FEE_BPS;
use updown_domain::round::TiePolicy;
use updown_domain::schedule::ScheduleConfig;
use updown_domain::Micros;

pub use crate::secret::Secret;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/updown.db";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleKind {
    Mock,
    Csv,
    Manual,
    Http,
    Quorum,
}

impl OracleKind {
    fn parse(text: &str) -> Option<OracleKind> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "mock" => OracleKind::Mock,
            "csv" => OracleKind::Csv,
            "manual" => OracleKind::Manual,
            "http" => OracleKind::Http,
            "quorum" => OracleKind::Quorum,
            _ => return None,
        })
    }
}

/// Who sends withdrawals to the chain (CHAIN_SENDER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainSenderKind {
    /// A simulated chain that accepts and confirms every transfer.
    Mock,
    /// An operator sends them and records the outcome (`updown
    /// withdrawals`).
    Manual,
}

/// The USDC contract on Ethereum mainnet: the default deposit token.
pub const USDC_ETHEREUM: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";

/// A request rate: `count` per `per` (RATE_LIMIT_* as `20/s`, `10/min`,
/// `500/h`); `None` where the variable is `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: std::time::Duration,
}

impl Rate {
    fn parse(text: &str) -> Option<Option<Rate>> {
        if text.eq_ignore_ascii_case("off") {
            return Some(None);
        }
        let (count, unit) = text.split_once('/')?;
        let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
        let per = match unit.trim() {
            "s" => std::time::Duration::from_secs(1),
            "min" => std::time::Duration::from_secs(60),
            "h" => std::time::Duration::from_secs(3600),
            _ => return None,
        };
        Some(Some(Rate { count, per }))
    }
}

/// Where the clock starts and how fast it runs, for demos and tests only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClockOverride {
    pub start: DateTime<Utc>,
    pub speed: f64,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: Secret,
    pub redis_url: Option<Secret>,
    /// Where `serve` listens (BIND_ADDR).
    pub bind_addr: std::net::SocketAddr,
    /// UPDOWN_ENV=production refuses development conveniences.
    pub production: bool,
    /// The operator's token for admin routes (ADMIN_TOKEN).
    pub admin_token: Option<Secret>,
    /// Requests per API key or session (RATE_LIMIT_KEY).
    pub rate_per_key: Option<Rate>,
    /// Requests per client IP (RATE_LIMIT_IP).
    pub rate_per_ip: Option<Rate>,
    /// Sign-ins and sign-ups per client IP (RATE_LIMIT_SIGN_IN).
    pub rate_sign_in: Option<Rate>,
    /// Whether `serve` runs the scheduler (SCHEDULER=on|off).
    pub scheduler: bool,
    /// How often the scheduler steps (SCHEDULER_TICK_SECS).
    pub scheduler_tick: std::time::Duration,
    /// Take the client IP from the last `X-Forwarded-For` entry
    /// (TRUST_FORWARDED_FOR=true, behind a reverse proxy you run).
    pub trust_forwarded_for: bool,
    /// The operator's account-level extended public key (WALLET_XPUB,
    /// m/44'/60'/0'), from which deposit addresses are derived.
    pub wallet_xpub: Option<String>,
    /// The deposit provider's webhook signing secret
    /// (DEPOSIT_WEBHOOK_SECRET); without it the webhook is off.
    pub deposit_webhook_secret: Option<Secret>,
    /// Confirmations a transfer needs before it is credited.
    pub min_confirmations: u32,
    /// The chain and token contract deposits must come on.
    pub deposit_chain: String,
    pub deposit_token: updown_domain::address::Address,
    /// Who sends withdrawals (CHAIN_SENDER).
    pub chain_sender: ChainSenderKind,
    /// Smallest withdrawal (WITHDRAWAL_MIN).
    pub withdrawal_min: Micros,
    /// Most one user may withdraw over 24 hours (WITHDRAWAL_DAILY_MAX).
    pub withdrawal_daily_max: Micros,
    /// TIMEZONE: the seed's "round timing time zone". Rounds follow the
    /// NASDAQ close, so only America/New_York is accepted.
    pub timezone: chrono_tz::Tz,
    pub market: Market,
    pub fee_bps: u32,
    pub tie_policy: TiePolicy,
    pub schedule: ScheduleConfig,
    pub cancel_cutoff: Duration,
    pub max_bet: Micros,
    pub extra_closures: Vec<NaiveDate>,
    pub oracle: OracleKind,
    pub oracle_csv_path: Option<PathBuf>,
    /// The HTTP provider, when ORACLE=http or a quorum source is http.
    pub oracle_http: Option<crate::oracle::HttpSettings>,
    /// With ORACLE=quorum: the sources asked (ORACLE_SOURCES), how many
    /// must agree (ORACLE_QUORUM) and how closely (ORACLE_MAX_SPREAD_BPS).
    pub oracle_sources: Vec<OracleKind>,
    pub oracle_quorum: usize,
    pub oracle_max_spread_bps: u32,
    pub clock: Option<ClockOverride>,
    pub db_max_connections: u32,
    pub settle_chunk_size: i64,
    pub bet_batch_max: usize,
    /// Batches of bets in flight at once (each on its own connection).
    pub bet_workers: usize,
    /// How long a batch waits for more bets after its first (group commit).
    pub bet_batch_wait: std::time::Duration,
    /// How long a raise of a player's stake limits waits before it takes
    /// effect (LIMIT_RAISE_COOLOFF_HOURS).
    pub limit_raise_cooloff: Duration,
    /// One JSON line per request (ACCESS_LOG=on|off).
    pub access_log: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {variable}={value:?}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub problem: String,
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is reported by parsing.
        let _ = dotenvy::dotenv();
        Config::from_vars(&std::env::vars().collect())
    }

    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |name: &str| {
            vars.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let fail = |variable: &'static str, value: &str, problem: &str| ConfigError {
            variable,
            value: value.to_string(),
            problem: problem.to_string(),
        };
        fn number<T>(
            get: &dyn Fn(&str) -> Option<String>,
            variable: &'static str,
            default: T,
            range: std::ops::RangeInclusive<T>,
        ) -> Result<T, ConfigError>
        where
            T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
        {
            let Some(text) = get(variable) else {
                return Ok(default);
            };
            let value: T = text.parse().map_err(|_| ConfigError {
                variable,
                value: text.clone(),
                problem: "not a whole number".into(),
            })?;
            if !range.contains(&value) {
                return Err(ConfigError {
                    variable,
                    value: text,
                    problem: format!("must be between {} and {}", range.start(), range.end()),
                });
            }
            Ok(value)
        }

        let database_url = get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(fail(
                "DATABASE_URL",
                "[redacted]",
                "must start with sqlite: or postgres://",
            ));
        }
        let redis_url = get("REDIS_URL");
        if let Some(url) = &redis_url {
            // No TLS client is built in (it would be a second TLS stack).
            if !url.starts_with("redis://") || redis::Client::open(url.as_str()).is_err() {
                return Err(fail(
                    "REDIS_URL",
                    "[redacted]",
                    "must be a redis://host:port/db URL (TLS, rediss://, is not supported)",
                ));
            }
        }
        let timezone_text = get("TIMEZONE").unwrap_or_else(|| "America/New_York".into());
        let timezone: chrono_tz::Tz = timezone_text.parse().map_err(|_| {
            fail(
                "TIMEZONE",
                &timezone_text,
                "not a time zone of the tz database (e.g. America/New_York)",
            )
        })?;
        if timezone != chrono_tz::America::New_York {
            return Err(fail(
                "TIMEZONE",
                &timezone_text,
                "rounds follow the NASDAQ close at 16:00 New York time; TIMEZONE must be America/New_York (or unset)",
            ));
        }
        let market_text = get("MARKET_SYMBOL").unwrap_or_else(|| "NDX".into());
        let market = Market::parse(&market_text)
            .map_err(|e| fail("MARKET_SYMBOL", &market_text, &e.to_string()))?;
        let tie_text = get("TIE_POLICY").unwrap_or_else(|| "down".into());
        let tie_policy: TiePolicy =
            tie_text
                .parse()
                .map_err(|e: updown_domain::round::ParseEnumError| {
                    fail("TIE_POLICY", &tie_text, &e.to_string())
                })?;
        let max_bet = match get("MAX_BET") {
            None => Micros::usdc(10_000).expect("constant"),
            Some(text) => {
                let amount =
                    Micros::parse_cli(&text).map_err(|e| fail("MAX_BET", &text, &e.to_string()))?;
                if amount.is_zero() {
                    return Err(fail("MAX_BET", &text, "must be at least 1 micro-USDC"));
                }
                amount
            }
        };
        let extra_closures = match get("EXTRA_CLOSURES") {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(|d| {
                    d.parse::<NaiveDate>().map_err(|_| {
                        fail(
                            "EXTRA_CLOSURES",
                            d,
                            "dates must be YYYY-MM-DD, separated by commas",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let oracle_text = get("ORACLE").unwrap_or_else(|| "mock".into());
        let oracle = OracleKind::parse(&oracle_text).ok_or_else(|| {
            fail(
                "ORACLE",
                &oracle_text,
                "must be one of mock, csv, manual, http, quorum",
            )
        })?;
        let oracle_sources = match get("ORACLE_SOURCES") {
            None if oracle == OracleKind::Quorum => {
                return Err(fail(
                    "ORACLE_SOURCES",
                    "",
                    "is required when ORACLE=quorum: a list such as http,csv",
                ))
            }
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(|source| match OracleKind::parse(source) {
                    Some(kind @ (OracleKind::Mock | OracleKind::Csv | OracleKind::Http)) => {
                        Ok(kind)
                    }
                    _ => Err(fail(
                        "ORACLE_SOURCES",
                        &text,
                        "sources are mock, csv and http, separated by commas",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let oracle_quorum = number(&get, "ORACLE_QUORUM", 2usize, 1..=16)?;
        if oracle == OracleKind::Quorum && oracle_quorum > oracle_sources.len() {
            return Err(fail(
                "ORACLE_QUORUM",
                &oracle_quorum.to_string(),
                "cannot exceed the number of ORACLE_SOURCES",
            ));
        }
        let oracle_max_spread_bps = number(&get, "ORACLE_MAX_SPREAD_BPS", 10u32, 0..=10_000)?;
        let uses = |kind| {
            oracle == kind || (oracle == OracleKind::Quorum && oracle_sources.contains(&kind))
        };
        let oracle_http = if uses(OracleKind::Http) {
            let api_key = get("ORACLE_API_KEY").ok_or_else(|| {
                fail(
                    "ORACLE_API_KEY",
                    "",
                    "is required for the http oracle (the provider's key)",
                )
            })?;
            let base_url =
                get("ORACLE_HTTP_URL").unwrap_or_else(|| "https://api.polygon.io".into());
            if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
                return Err(fail(
                    "ORACLE_HTTP_URL",
                    &base_url,
                    "must be an http:// or https:// URL",
                ));
            }
            Some(crate::oracle::HttpSettings {
                base_url,
                api_key: Secret::new(api_key),
                ticker: get("ORACLE_TICKER").unwrap_or_else(|| format!("I:{market}")),
                timeout: std::time::Duration::from_millis(number(
                    &get,
                    "ORACLE_TIMEOUT_MS",
                    5000u64,
                    100..=60_000,
                )?),
                attempts: number(&get, "ORACLE_ATTEMPTS", 3u32, 1..=10)?,
                retry_wait: std::time::Duration::from_millis(250),
            })
        } else {
            None
        };
        let oracle_csv_path = get("ORACLE_CSV_PATH").map(PathBuf::from);
        if uses(OracleKind::Csv) && oracle_csv_path.is_none() {
            return Err(fail(
                "ORACLE_CSV_PATH",
                "",
                "is required when ORACLE=csv (a file of date,close lines)",
            ));
        }
        let clock = match get("CLOCK_START") {
            None => {
                if let Some(speed) = get("CLOCK_SPEED") {
                    return Err(fail(
                        "CLOCK_SPEED",
                        &speed,
                        "only makes sense with CLOCK_START",
                    ));
                }
                None
            }
            Some(text) => {
                let start = DateTime::parse_from_rfc3339(&text)
                    .map_err(|_| {
                        fail(
                            "CLOCK_START",
                            &text,
                            "must be an RFC 3339 instant, e.g. 2026-11-24T20:58:00Z",
                        )
                    })?
                    .with_timezone(&Utc);
                let speed = match get("CLOCK_SPEED") {
                    None => 1.0,
                    Some(s) => s
                        .parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 100_000.0)
                        .ok_or_else(|| {
                            fail(
                                "CLOCK_SPEED",
                                &s,
                                "must be a number above 0 and at most 100000",
                            )
                        })?,
                };
                Some(ClockOverride { start, speed })
            }
        };
        let close_fetch_delay_min = number(&get, "CLOSE_FETCH_DELAY_MIN", 5i64, 0..=240)?;
        let settle_grace_min = number(&get, "SETTLE_GRACE_MIN", 30i64, 1..=1440)?;
        let cancel_cutoff_min = number(&get, "CANCEL_CUTOFF_MIN", 15i64, 0..=1440)?;
        let bind_text = get("BIND_ADDR").unwrap_or_else(|| "127.0.0.1:8000".into());
        let bind_addr = bind_text.parse().map_err(|_| {
            fail(
                "BIND_ADDR",
                &bind_text,
                "must be an address and port, e.g. 127.0.0.1:8000 or 0.0.0.0:8000",
            )
        })?;
        let production = match get("UPDOWN_ENV").as_deref() {
            None | Some("development") => false,
            Some("production") => true,
            Some(other) => {
                return Err(fail(
                    "UPDOWN_ENV",
                    other,
                    "must be development or production",
                ))
            }
        };
        if production {
            // What would let anyone know results in advance, or move time.
            if oracle == OracleKind::Mock
                || (oracle == OracleKind::Quorum && oracle_sources.contains(&OracleKind::Mock))
                || get("ORACLE").is_none()
            {
                return Err(fail(
                    "ORACLE",
                    &get("ORACLE").unwrap_or_default(),
                    "UPDOWN_ENV=production refuses the mock oracle (its closes are a public hash of market and date, \
                     so anyone who reads the source knows every result); set ORACLE=http with ORACLE_API_KEY, \
                     ORACLE=quorum with real ORACLE_SOURCES, csv, or manual",
                ));
            }
            if let Some(start) = get("CLOCK_START") {
                return Err(fail(
                    "CLOCK_START",
                    &start,
                    "UPDOWN_ENV=production runs on the system clock; unset CLOCK_START and CLOCK_SPEED (they are for demos and tests)",
                ));
            }
        }
        let admin_token = get("ADMIN_TOKEN");
        if let Some(token) = &admin_token {
            if token.len() < 16 {
                return Err(fail(
                    "ADMIN_TOKEN",
                    "[redacted]",
                    "must be at least 16 characters",
                ));
            }
        }
        let rate = |name: &'static str, default: &str| -> Result<Option<Rate>, ConfigError> {
            let text = get(name).unwrap_or_else(|| default.to_string());
            Rate::parse(&text).ok_or_else(|| {
                fail(
                    name,
                    &text,
                    "must be a rate like 20/s, 10/min or 500/h, or off",
                )
            })
        };
        let rate_per_key = rate("RATE_LIMIT_KEY", "20/s")?;
        let rate_per_ip = rate("RATE_LIMIT_IP", "100/s")?;
        let rate_sign_in = rate("RATE_LIMIT_SIGN_IN", "10/min")?;
        let trust_forwarded_for = match get("TRUST_FORWARDED_FOR").as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => return Err(fail("TRUST_FORWARDED_FOR", other, "must be true or false")),
        };
        let access_log = match get("ACCESS_LOG").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(fail("ACCESS_LOG", other, "must be on or off")),
        };
        let scheduler = match get("SCHEDULER").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(fail("SCHEDULER", other, "must be on or off")),
        };
        let scheduler_tick =
            std::time::Duration::from_secs(number(&get, "SCHEDULER_TICK_SECS", 5u64, 1..=3600)?);
        let deposit_webhook_secret = get("DEPOSIT_WEBHOOK_SECRET");
        if deposit_webhook_secret
            .as_ref()
            .is_some_and(|s| s.len() < 16)
        {
            return Err(fail(
                "DEPOSIT_WEBHOOK_SECRET",
                "[redacted]",
                "must be at least 16 characters",
            ));
        }
        let deposit_token_text = get("DEPOSIT_TOKEN").unwrap_or_else(|| USDC_ETHEREUM.into());
        let deposit_token = updown_domain::address::Address::parse(&deposit_token_text)
            .map_err(|e| fail("DEPOSIT_TOKEN", &deposit_token_text, &e.to_string()))?;
        let deposit_chain = get("DEPOSIT_CHAIN").unwrap_or_else(|| "ethereum".into());
        if deposit_chain.len() > 32
            || !deposit_chain
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(fail(
                "DEPOSIT_CHAIN",
                &deposit_chain,
                "must be a chain name such as ethereum (lower-case letters, digits, '-')",
            ));
        }
        let chain_sender = match get("CHAIN_SENDER").as_deref() {
            None if production => ChainSenderKind::Manual,
            None | Some("mock") => ChainSenderKind::Mock,
            Some("manual") => ChainSenderKind::Manual,
            Some(other) => return Err(fail("CHAIN_SENDER", other, "must be mock or manual")),
        };
        if production && chain_sender == ChainSenderKind::Mock {
            return Err(fail(
                "CHAIN_SENDER",
                "mock",
                "the mock chain only pretends to send; UPDOWN_ENV=production needs CHAIN_SENDER=manual \
                 (operators send and record withdrawals with `updown withdrawals`)",
            ));
        }
        let amount = |variable: &'static str, default: i64| -> Result<Micros, ConfigError> {
            match get(variable) {
                None => Ok(Micros::usdc(default).expect("constant")),
                Some(text) => {
                    let amount = Micros::parse_cli(&text)
                        .map_err(|e| fail(variable, &text, &e.to_string()))?;
                    if amount.is_zero() {
                        return Err(fail(variable, &text, "must be at least 1 micro-USDC"));
                    }
                    Ok(amount)
                }
            }
        };
        let withdrawal_min = amount("WITHDRAWAL_MIN", 1)?;
        let withdrawal_daily_max = amount("WITHDRAWAL_DAILY_MAX", 50_000)?;
        if withdrawal_daily_max < withdrawal_min {
            return Err(fail(
                "WITHDRAWAL_DAILY_MAX",
                &withdrawal_daily_max.to_string(),
                "must be at least WITHDRAWAL_MIN",
            ));
        }
        let wallet_xpub = get("WALLET_XPUB");
        if let Some(xpub) = &wallet_xpub {
            if let Err(e) = updown_domain::wallet::DepositWallet::from_xpub(xpub) {
                return Err(fail("WALLET_XPUB", xpub, &e.to_string()));
            }
        }
        Ok(Config {
            database_url: Secret::new(database_url),
            bind_addr,
            production,
            admin_token: admin_token.map(Secret::new),
            wallet_xpub,
            deposit_webhook_secret: deposit_webhook_secret.map(Secret::new),
            min_confirmations: number(&get, "MIN_CONFIRMATIONS", 12u32, 0..=10_000)?,
            deposit_chain,
            deposit_token,
            chain_sender,
            withdrawal_min,
            withdrawal_daily_max,
            scheduler,
            scheduler_tick,
            rate_per_key,
            rate_per_ip,
            rate_sign_in,
            trust_forwarded_for,
            redis_url: redis_url.map(Secret::new),
            timezone,
            market,
            fee_bps: number(&get, "FEE_BPS", 100u32, 0..=MAX_FEE_BPS)?,
            tie_policy,
            schedule: ScheduleConfig {
                close_fetch_delay: Duration::minutes(close_fetch_delay_min),
                settle_grace: Duration::minutes(settle_grace_min),
            },
            cancel_cutoff: Duration::minutes(cancel_cutoff_min),
            max_bet,
            extra_closures,
            oracle,
            oracle_csv_path,
            oracle_http,
            oracle_sources,
            oracle_quorum,
            oracle_max_spread_bps,
            clock,
            db_max_connections: number(&get, "DB_MAX_CONNECTIONS", 16u32, 1..=500)?,
            settle_chunk_size: number(&get, "SETTLE_CHUNK_SIZE", 10_000i64, 1..=100_000)?,
            bet_batch_max: number(&get, "BET_BATCH_MAX", 256usize, 1..=10_000)?,
            bet_workers: number(&get, "BET_WORKERS", 2usize, 1..=64)?,
            bet_batch_wait: std::time::Duration::from_micros(number(
                &get,
                "BET_BATCH_WAIT_US",
                5000u64,
                0..=100_000,
            )?),
            limit_raise_cooloff: Duration::hours(number(
                &get,
                "LIMIT_RAISE_COOLOFF_HOURS",
                24i64,
                0..=720,
            )?),
            access_log,
        })
    }

    pub fn calendar(&self) -> Calendar {
        Calendar::with_closures(self.extra_closures.iter().copied())
    }

    /// A configuration for tests and the demo: defaults plus `overrides`.
    pub fn with(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(
            &overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_seed() {
        let config = Config::with(&[]).unwrap();
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.fee_bps, 100);
        assert_eq!(
            config.rate_sign_in,
            Some(Rate {
                count: 10,
                per: std::time::Duration::from_secs(60)
            })
        );
        assert_eq!(
            Config::with(&[("RATE_LIMIT_IP", "off")])
                .unwrap()
                .rate_per_ip,
            None
        );
        assert_eq!(config.schedule, ScheduleConfig::default());
        assert_eq!(config.cancel_cutoff, Duration::minutes(15));
        assert_eq!(config.market.as_str(), "NDX");
        assert_eq!(config.tie_policy, TiePolicy::Down);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("FEE_BPS", "10001"),
            ("FEE_BPS", "1.5"),
            ("SETTLE_GRACE_MIN", "-1"),
            ("TIE_POLICY", "coinflip"),
            ("MAX_BET", "1.5"),
            ("EXTRA_CLOSURES", "2031-13-01"),
            ("ORACLE", "magic"),
            ("ORACLE_SOURCES", "mock,oracle-of-delphi"),
            ("ORACLE_QUORUM", "0"),
            ("ORACLE_MAX_SPREAD_BPS", "10001"),
            ("CLOCK_START", "yesterday"),
            ("TIMEZONE", "Mars/Olympus"),
            ("TIMEZONE", "Europe/London"),
            ("DATABASE_URL", "mysql://x"),
            ("BIND_ADDR", "localhost"),
            ("ADMIN_TOKEN", "short"),
            ("SCHEDULER", "sometimes"),
            ("SCHEDULER_TICK_SECS", "0"),
            ("REDIS_URL", "rediss://cache.example:6380"),
            ("RATE_LIMIT_KEY", "20"),
            ("RATE_LIMIT_IP", "0/s"),
            ("RATE_LIMIT_SIGN_IN", "5/day"),
            ("TRUST_FORWARDED_FOR", "yes"),
            ("WALLET_XPUB", "xpub-not-a-key"),
            ("DEPOSIT_WEBHOOK_SECRET", "short"),
            ("DEPOSIT_TOKEN", "USDC"),
            ("DEPOSIT_CHAIN", "Ethereum Mainnet"),
            ("MIN_CONFIRMATIONS", "-1"),
            ("CHAIN_SENDER", "carrier-pigeon"),
            ("WITHDRAWAL_MIN", "0"),
            ("WITHDRAWAL_DAILY_MAX", "1.0000001USDC"),
            // A master key (depth 0), not the account m/44'/60'/0'.
            ("WALLET_XPUB", "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8"),
            ("UPDOWN_ENV", "staging"),
        ] {
            let error = Config::with(&[(variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable, "{error}");
        }
    }

    #[test]
    fn the_http_and_quorum_oracles_name_what_they_miss() {
        let missing = |vars: &[(&str, &str)]| Config::with(vars).unwrap_err().variable;
        assert_eq!(missing(&[("ORACLE", "http")]), "ORACLE_API_KEY");
        assert_eq!(missing(&[("ORACLE", "quorum")]), "ORACLE_SOURCES");
        assert_eq!(
            missing(&[("ORACLE", "quorum"), ("ORACLE_SOURCES", "mock,http")]),
            "ORACLE_API_KEY"
        );
        assert_eq!(
            missing(&[
                ("ORACLE", "quorum"),
                ("ORACLE_SOURCES", "mock"),
                ("ORACLE_QUORUM", "2")
            ]),
            "ORACLE_QUORUM"
        );
        let config = Config::with(&[
            ("ORACLE", "quorum"),
            ("ORACLE_SOURCES", "mock, http"),
            ("ORACLE_API_KEY", "key"),
        ])
        .unwrap();
        assert_eq!(config.oracle_sources, [OracleKind::Mock, OracleKind::Http]);
        let http = config.oracle_http.unwrap();
        assert_eq!(
            (http.base_url.as_str(), http.ticker.as_str()),
            ("https://api.polygon.io", "I:NDX")
        );
        assert!(
            !format!("{http:?}").contains("key\""),
            "the key is redacted"
        );
    }

    #[test]
    fn production_sends_withdrawals_by_hand_and_refuses_the_mock_chain() {
        let production = [("UPDOWN_ENV", "production"), ("ORACLE", "manual")];
        assert_eq!(
            Config::with(&production).unwrap().chain_sender,
            ChainSenderKind::Manual
        );
        assert_eq!(
            Config::with(&[]).unwrap().chain_sender,
            ChainSenderKind::Mock
        );
        let error = Config::with(&[
            ("UPDOWN_ENV", "production"),
            ("ORACLE", "manual"),
            ("CHAIN_SENDER", "mock"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, "CHAIN_SENDER");
        let error = Config::with(&[
            ("WITHDRAWAL_MIN", "10USDC"),
            ("WITHDRAWAL_DAILY_MAX", "5USDC"),
        ])
        .unwrap_err();
        assert_eq!(error.variable, "WITHDRAWAL_DAILY_MAX");
    }

    #[test]
    fn production_refuses_the_mock_oracle_and_a_simulated_clock() {
        let refused = |vars: &[(&str, &str)]| {
            let mut all = vec![("UPDOWN_ENV", "production")];
            all.extend_from_slice(vars);
            Config::with(&all).unwrap_err()
        };
        let unset = refused(&[]);
        assert_eq!(unset.variable, "ORACLE");
        assert!(unset.problem.contains("ORACLE=http"), "{unset}");
        assert_eq!(refused(&[("ORACLE", "mock")]).variable, "ORACLE");
        let quorum = [
            ("ORACLE", "quorum"),
            ("ORACLE_SOURCES", "csv,mock"),
            ("ORACLE_CSV_PATH", "closes.csv"),
        ];
        assert_eq!(refused(&quorum).variable, "ORACLE");
        let clock = refused(&[
            ("ORACLE", "manual"),
            ("CLOCK_START", "2026-11-24T20:58:00Z"),
        ]);
        assert_eq!(clock.variable, "CLOCK_START");
        assert!(clock.problem.contains("system clock"));
        let speed = refused(&[
            ("ORACLE", "manual"),
            ("CLOCK_START", "2026-11-24T20:58:00Z"),
            ("CLOCK_SPEED", "60"),
        ]);
        assert_eq!(speed.variable, "CLOCK_START");
        // Development keeps its conveniences.
        assert!(Config::with(&[("CLOCK_START", "2026-11-24T20:58:00Z")]).is_ok());
        assert!(Config::with(&[("UPDOWN_ENV", "production"), ("ORACLE", "manual")]).is_ok());
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let config = Config::with(&[("DATABASE_URL", "postgres://u:hunter2@h/db")]).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn operator_closures_reach_the_calendar() {
        let config = Config::with(&[("EXTRA_CLOSURES", "2031-01-02, 2031-01-03")]).unwrap();
        assert!(!config.calendar().is_session("2031-01-02".parse().unwrap()));
    }
}
