//! Configuration: defaults, then `.env` and the environment (which wins),
//! parsed once at start into typed values, one part per concern. A bad
//! value fails at start with a message that names the variable, and every
//! value read is noted with its source for `updown config --explain`.
//!
//! # Layout
//! - `reader`: [`Reader`], the typed getters every part parses itself
//!   with; `sources`: [`Sources`], the environment and `.env` they read,
//!   and [`Setting`], how each variable was read.
//! - `service`: the database, events, HTTP, the scheduler, batching and
//!   logging.
//! - `rounds`: the rounds and their calendar, the limits on money, the
//!   simulated clock.
//! - `oracle`: where closes come from.
//! - `chain`: the deposit wallet, deposits (the webhook, the chain
//!   watcher's node), who sends withdrawals.
//! - `production`: what UPDOWN_ENV=production refuses, in one place.

mod chain;
mod oracle;
mod production;
mod reader;
#[cfg(test)]
mod reader_tests;
mod rounds;
mod service;
mod sources;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;

pub use self::chain::{Chain, ChainSenderKind, DepositSource, Evm, USDC_ETHEREUM};
pub use self::oracle::{OracleKind, OracleSettings};
pub use self::production::{refuse_unsafe_production, Purpose};
pub use self::reader::{ConfigError, Rate, Reader, Unit, FLAG_SPELLINGS, REDACTED};
pub use self::rounds::{ClockOverride, Limits, Rounds};
pub use self::service::{
    Batching, Database, Events, Http, LogFormat, Scheduler, Telemetry, DEFAULT_DATABASE_URL,
};
pub use self::sources::{Setting, Source, Sources};
pub use crate::secret::Secret;

#[derive(Clone, Debug)]
pub struct Config {
    /// UPDOWN_ENV=production refuses development conveniences (see
    /// [`refuse_unsafe_production`]).
    pub production: bool,
    pub database: Database,
    pub events: Events,
    pub http: Http,
    pub rounds: Rounds,
    pub limits: Limits,
    pub oracle: OracleSettings,
    /// A simulated clock (CLOCK_START, CLOCK_SPEED), for demos and tests.
    pub clock: Option<ClockOverride>,
    pub chain: Chain,
    pub scheduler: Scheduler,
    pub batching: Batching,
    pub telemetry: Telemetry,
    explanation: Explanation,
}

/// How a configuration was read: every variable with its source and
/// value (secrets redacted), and the `.env` file if one was read.
#[derive(Clone, Debug, Default)]
pub struct Explanation {
    pub settings: Vec<Setting>,
    pub dotenv_path: Option<PathBuf>,
    /// Why reading `.env` stopped early, if it did.
    pub dotenv_problem: Option<String>,
    /// Secrets given in the environment or `.env` rather than in files.
    pub plain_secrets: Vec<&'static str>,
}

impl Explanation {
    /// What `reader` read so far (all of it once a configuration is read,
    /// up to the bad value when one was refused).
    pub fn of(reader: &Reader) -> Explanation {
        Explanation {
            settings: reader.settings().to_vec(),
            dotenv_path: reader.sources().dotenv_path.clone(),
            dotenv_problem: reader.sources().dotenv_problem.clone(),
            plain_secrets: reader.plain_secrets().to_vec(),
        }
    }
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_reader(&mut Reader::new(Sources::of_process()))
    }

    /// Reads `vars` as the environment (no `.env`).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_reader(&mut Reader::new(Sources::of_vars(vars)))
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

    /// Each part reads itself, in the order `config --explain` lists
    /// them; then production's refusals, which need the whole.
    pub fn from_reader(r: &mut Reader) -> Result<Config, ConfigError> {
        let production = r.choice(
            "UPDOWN_ENV",
            "development",
            &[("development", false), ("production", true)],
        )?;
        let database = Database::from_reader(r)?;
        let events = Events::from_reader(r)?;
        let http = Http::from_reader(r)?;
        let rounds = Rounds::from_reader(r)?;
        let limits = Limits::from_reader(r)?;
        let oracle = OracleSettings::from_reader(r, &rounds.market)?;
        let clock = ClockOverride::from_reader(r)?;
        let chain = Chain::from_reader(r, production)?;
        let scheduler = Scheduler::from_reader(r)?;
        let batching = Batching::from_reader(r)?;
        let telemetry = Telemetry::from_reader(r)?;
        let config = Config {
            production,
            database,
            events,
            http,
            rounds,
            limits,
            oracle,
            clock,
            chain,
            scheduler,
            batching,
            telemetry,
            explanation: Explanation::of(r),
        };
        refuse_unsafe_production(&config, Purpose::Command)?;
        Ok(config)
    }

    /// Every variable read, with its source and value (secrets redacted).
    pub fn explanation(&self) -> &Explanation {
        &self.explanation
    }
}
