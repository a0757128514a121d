//! The part of the configuration that says where closes come from.

use std::path::PathBuf;

use updown_domain::ids::Market;

use super::reader::{ConfigError, Reader, Unit};
use crate::oracle::HttpSettings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OracleKind {
    Mock,
    Csv,
    Manual,
    Http,
    Quorum,
}

impl OracleKind {
    const NAMES: [(&'static str, OracleKind); 5] = [
        ("mock", OracleKind::Mock),
        ("csv", OracleKind::Csv),
        ("manual", OracleKind::Manual),
        ("http", OracleKind::Http),
        ("quorum", OracleKind::Quorum),
    ];

    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, kind)| *kind == self)
            .map(|(name, _)| *name)
            .expect("every kind is named")
    }
}

/// The http oracle's variables, listed as unused when no source is http.
const HTTP_VARIABLES: [&str; 5] = [
    "ORACLE_API_KEY",
    "ORACLE_HTTP_URL",
    "ORACLE_TICKER",
    "ORACLE_TIMEOUT_MS",
    "ORACLE_ATTEMPTS",
];

#[derive(Clone, Debug)]
pub struct OracleSettings {
    /// ORACLE.
    pub kind: OracleKind,
    /// A file of `date,close` lines (ORACLE_CSV_PATH), for csv.
    pub csv_path: Option<PathBuf>,
    /// The HTTP provider, when ORACLE=http or a quorum source is http.
    pub http: Option<HttpSettings>,
    /// With ORACLE=quorum: the sources asked (ORACLE_SOURCES), how many
    /// must agree (ORACLE_QUORUM) and how closely (ORACLE_MAX_SPREAD_BPS).
    pub sources: Vec<OracleKind>,
    pub quorum: usize,
    pub max_spread_bps: u32,
}

impl OracleSettings {
    /// The http oracle's ticker defaults to the `market`'s index.
    pub fn from_reader(r: &mut Reader, market: &Market) -> Result<OracleSettings, ConfigError> {
        let kind = r.choice("ORACLE", "mock", &OracleKind::NAMES)?;
        let sources = match r.optional("ORACLE_SOURCES", quorum_sources)? {
            Some(sources) => sources,
            None if kind == OracleKind::Quorum => {
                return Err(ConfigError::new(
                    "ORACLE_SOURCES",
                    "",
                    "is required when ORACLE=quorum: a list such as http,csv",
                ))
            }
            None => Vec::new(),
        };
        let quorum = r.number("ORACLE_QUORUM", 2usize, 1..=16)?;
        if kind == OracleKind::Quorum && quorum > sources.len() {
            return Err(ConfigError::new(
                "ORACLE_QUORUM",
                &quorum.to_string(),
                "cannot exceed the number of ORACLE_SOURCES",
            ));
        }
        let max_spread_bps = r.number("ORACLE_MAX_SPREAD_BPS", 10u32, 0..=10_000)?;
        let uses =
            |source| kind == source || (kind == OracleKind::Quorum && sources.contains(&source));
        let csv_path = r.optional_text("ORACLE_CSV_PATH").map(PathBuf::from);
        if uses(OracleKind::Csv) && csv_path.is_none() {
            return Err(ConfigError::new(
                "ORACLE_CSV_PATH",
                "",
                "is required when ORACLE=csv (a file of date,close lines)",
            ));
        }
        let http = if uses(OracleKind::Http) {
            Some(http_settings(r, market)?)
        } else {
            // Read unchecked, so the explanation lists them as unused.
            r.secret("ORACLE_API_KEY", |_| Ok(()))?;
            for variable in &HTTP_VARIABLES[1..] {
                r.optional_text(variable);
            }
            r.mark_unused(
                &HTTP_VARIABLES,
                "only for ORACLE=http or an http quorum source",
            );
            None
        };
        Ok(OracleSettings {
            kind,
            csv_path,
            http,
            sources,
            quorum,
            max_spread_bps,
        })
    }

    /// Whether the mock oracle answers, alone or among a quorum's sources.
    pub fn uses_mock(&self) -> bool {
        self.kind == OracleKind::Mock
            || (self.kind == OracleKind::Quorum && self.sources.contains(&OracleKind::Mock))
    }
}

/// `http,csv`: the sources a quorum asks.
fn quorum_sources(text: &str) -> Result<Vec<OracleKind>, String> {
    let allowed = [OracleKind::Mock, OracleKind::Csv, OracleKind::Http];
    text.split(',')
        .map(|source| {
            allowed
                .into_iter()
                .find(|kind| source.trim().eq_ignore_ascii_case(kind.as_str()))
                .ok_or_else(|| "sources are mock, csv and http, separated by commas".into())
        })
        .collect()
}

fn http_settings(r: &mut Reader, market: &Market) -> Result<HttpSettings, ConfigError> {
    let api_key = r.secret("ORACLE_API_KEY", |_| Ok(()))?.ok_or_else(|| {
        ConfigError::new(
            "ORACLE_API_KEY",
            "",
            "is required for the http oracle (the provider's key)",
        )
    })?;
    let base_url = r.parse("ORACLE_HTTP_URL", "https://api.polygon.io", |url| {
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url.to_string())
        } else {
            Err("must be an http:// or https:// URL".into())
        }
    })?;
    Ok(HttpSettings {
        base_url,
        api_key,
        ticker: r.text("ORACLE_TICKER", &format!("I:{market}")),
        timeout: r.duration("ORACLE_TIMEOUT_MS", Unit::Millis, 5000, 100..=60_000)?,
        attempts: r.number("ORACLE_ATTEMPTS", 3u32, 1..=10)?,
        retry_wait: std::time::Duration::from_millis(250),
    })
}
