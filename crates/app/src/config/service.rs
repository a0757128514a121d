//! The parts of the configuration about running the service: the
//! database, events between instances, HTTP, the scheduler, batching and
//! logging.

use std::net::SocketAddr;

use updown_store::Backend;

use super::reader::{ConfigError, Rate, Reader, Unit};
use crate::secret::Secret;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://./data/updown.db";

#[derive(Clone, Debug)]
pub struct Database {
    /// DATABASE_URL: `sqlite://path` or `postgres://...`.
    pub url: Secret,
    /// The pool size (DB_MAX_CONNECTIONS).
    pub max_connections: u32,
    /// A PostgreSQL read replica for the read-only lists
    /// (DATABASE_READ_URL).
    pub read_url: Option<Secret>,
    /// The most the replica may lag before lists read from the primary
    /// (READ_REPLICA_MAX_LAG_MS).
    pub replica_max_lag: std::time::Duration,
}

impl Database {
    pub fn from_reader(r: &mut Reader) -> Result<Database, ConfigError> {
        let database = Database {
            url: r.secret_url("DATABASE_URL", DEFAULT_DATABASE_URL, |url| {
                // The store decides which URLs it speaks; asked here so a
                // bad one fails at start, before any command runs.
                Backend::of_url(url).map(drop).map_err(|e| e.to_string())
            })?,
            max_connections: r.number("DB_MAX_CONNECTIONS", 16u32, 1..=500)?,
            read_url: r.optional_secret_url("DATABASE_READ_URL", |url| {
                match Backend::of_url(url) {
                    Ok(Backend::Postgres) => Ok(()),
                    _ => Err(
                        "must be a postgres:// URL (a streaming replica of DATABASE_URL)".into(),
                    ),
                }
            })?,
            replica_max_lag: r.duration(
                "READ_REPLICA_MAX_LAG_MS",
                Unit::Millis,
                1_000,
                0..=600_000,
            )?,
        };
        let primary = Backend::of_url(database.url.expose());
        if database.read_url.is_some() && primary != Ok(Backend::Postgres) {
            return Err(ConfigError::new(
                "DATABASE_READ_URL",
                super::REDACTED,
                "a read replica needs DATABASE_URL on PostgreSQL",
            ));
        }
        Ok(database)
    }
}

#[derive(Clone, Debug)]
pub struct Events {
    /// Redis, through which events reach every instance (REDIS_URL).
    pub redis_url: Option<Secret>,
}

impl Events {
    pub fn from_reader(r: &mut Reader) -> Result<Events, ConfigError> {
        let redis_url = r.secret("REDIS_URL", |url| {
            // No TLS client is built in (it would be a second TLS stack).
            if url.starts_with("redis://") && redis::Client::open(url).is_ok() {
                Ok(())
            } else {
                Err("must be a redis://host:port/db URL (TLS, rediss://, is not supported)".into())
            }
        })?;
        Ok(Events { redis_url })
    }
}

#[derive(Clone, Debug)]
pub struct Http {
    /// Where `serve` listens (BIND_ADDR).
    pub bind_addr: SocketAddr,
    /// The operator's token for admin routes (ADMIN_TOKEN).
    pub admin_token: Option<Secret>,
    /// Requests per API key or session (RATE_LIMIT_KEY).
    pub rate_per_key: Option<Rate>,
    /// Requests per client IP (RATE_LIMIT_IP).
    pub rate_per_ip: Option<Rate>,
    /// Sign-ins and sign-ups per client IP (RATE_LIMIT_SIGN_IN).
    pub rate_sign_in: Option<Rate>,
    /// Take the client IP from the last `X-Forwarded-For` entry
    /// (TRUST_FORWARDED_FOR, behind a reverse proxy you run).
    pub trust_forwarded_for: bool,
    /// One JSON line per request (ACCESS_LOG).
    pub access_log: bool,
    /// How long `serve` keeps answering after SIGTERM with readiness
    /// failing, so a load balancer stops sending first
    /// (SHUTDOWN_DRAIN_SECS).
    pub shutdown_drain: std::time::Duration,
}

impl Http {
    pub fn from_reader(r: &mut Reader) -> Result<Http, ConfigError> {
        Ok(Http {
            bind_addr: r.parse("BIND_ADDR", "127.0.0.1:8000", |text| {
                text.parse().map_err(|_| {
                    "must be an address and port, e.g. 127.0.0.1:8000 or 0.0.0.0:8000".into()
                })
            })?,
            admin_token: r.secret("ADMIN_TOKEN", at_least_16_characters)?,
            rate_per_key: r.rate("RATE_LIMIT_KEY", "20/s")?,
            rate_per_ip: r.rate("RATE_LIMIT_IP", "100/s")?,
            rate_sign_in: r.rate("RATE_LIMIT_SIGN_IN", "10/min")?,
            trust_forwarded_for: r.flag("TRUST_FORWARDED_FOR", false)?,
            access_log: r.flag("ACCESS_LOG", true)?,
            shutdown_drain: r.duration("SHUTDOWN_DRAIN_SECS", Unit::Seconds, 0, 0..=300)?,
        })
    }
}

/// The check of a token or signing key.
pub fn at_least_16_characters(secret: &str) -> Result<(), String> {
    if secret.len() < 16 {
        return Err("must be at least 16 characters".into());
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
pub struct Scheduler {
    /// Whether `serve` runs the scheduler (SCHEDULER).
    pub enabled: bool,
    /// How often it steps (SCHEDULER_TICK_SECS).
    pub tick: std::time::Duration,
    /// How often `serve` verifies the ledger since its latest checkpoint,
    /// for the alerts (VERIFY_EVERY_MIN; `None` for 0, off).
    pub verify_every: Option<std::time::Duration>,
    /// How often that task verifies the whole ledger instead
    /// (VERIFY_FULL_EVERY_HOURS; `None` for 0, never).
    pub verify_full_every: Option<std::time::Duration>,
}

impl Scheduler {
    pub fn from_reader(r: &mut Reader) -> Result<Scheduler, ConfigError> {
        Ok(Scheduler {
            enabled: r.flag("SCHEDULER", true)?,
            tick: r.duration("SCHEDULER_TICK_SECS", Unit::Seconds, 5, 1..=3600)?,
            verify_every: Some(r.duration("VERIFY_EVERY_MIN", Unit::Minutes, 5, 0..=10_080)?)
                .filter(|every| !every.is_zero()),
            verify_full_every: Some(r.duration(
                "VERIFY_FULL_EVERY_HOURS",
                Unit::Hours,
                24,
                0..=8_760,
            )?)
            .filter(|every| !every.is_zero()),
        })
    }
}

/// How much work goes into one transaction, and how many at once.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    /// Most bets committed in one transaction (BET_BATCH_MAX).
    pub bet_batch_max: usize,
    /// Batches of bets in flight at once, each on its own connection
    /// (BET_WORKERS).
    pub bet_workers: usize,
    /// How long a batch waits for more bets after its first, group commit
    /// (BET_BATCH_WAIT_US).
    pub bet_batch_wait: std::time::Duration,
    /// Bets paid per settlement transaction (SETTLE_CHUNK_SIZE).
    pub settle_chunk_size: i64,
}

impl Batching {
    pub fn from_reader(r: &mut Reader) -> Result<Batching, ConfigError> {
        Ok(Batching {
            bet_batch_max: r.number("BET_BATCH_MAX", 256usize, 1..=10_000)?,
            bet_workers: r.number("BET_WORKERS", 2usize, 1..=64)?,
            bet_batch_wait: r.duration("BET_BATCH_WAIT_US", Unit::Micros, 5000, 0..=100_000)?,
            settle_chunk_size: r.number("SETTLE_CHUNK_SIZE", 10_000i64, 1..=100_000)?,
        })
    }
}

/// Logging (see [`crate::telemetry`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Telemetry {
    pub log_format: LogFormat,
    /// The filter (RUST_LOG); unset, or not a filter, means the command's
    /// default (`warn`, `info` for `serve`).
    pub log_filter: Option<String>,
}

/// LOG_FORMAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
    /// `pretty` on a terminal, else `json`.
    Auto,
}

impl Telemetry {
    pub fn from_reader(r: &mut Reader) -> Result<Telemetry, ConfigError> {
        // Any other spelling meant `auto` before LOG_FORMAT was a setting,
        // so it still does rather than stop a service over its logs.
        let log_format = match r.text("LOG_FORMAT", "auto").to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            _ => LogFormat::Auto,
        };
        Ok(Telemetry {
            log_format,
            log_filter: r.optional_text("RUST_LOG"),
        })
    }
}
