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
    TwelveData,
    Tiingo,
    MarketData,
    Quorum,
}

impl OracleKind {
    const NAMES: [(&'static str, OracleKind); 8] = [
        ("mock", OracleKind::Mock),
        ("csv", OracleKind::Csv),
        ("manual", OracleKind::Manual),
        ("http", OracleKind::Http),
        ("twelvedata", OracleKind::TwelveData),
        ("tiingo", OracleKind::Tiingo),
        ("marketdata", OracleKind::MarketData),
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
const HTTP_VARIABLES: [&str; 3] = ["ORACLE_API_KEY", "ORACLE_HTTP_URL", "ORACLE_TICKER"];

/// Twelve Data's, listed as unused when no source is twelvedata.
const TWELVEDATA_VARIABLES: [&str; 3] = [
    "ORACLE_TWELVEDATA_KEY",
    "ORACLE_TWELVEDATA_URL",
    "ORACLE_TWELVEDATA_SYMBOL",
];

/// Tiingo's, listed as unused when no source is tiingo.
const TIINGO_VARIABLES: [&str; 3] = [
    "ORACLE_TIINGO_KEY",
    "ORACLE_TIINGO_URL",
    "ORACLE_TIINGO_SYMBOL",
];

/// Market Data's, listed as unused when no source is marketdata.
const MARKETDATA_VARIABLES: [&str; 3] = [
    "ORACLE_MARKETDATA_KEY",
    "ORACLE_MARKETDATA_URL",
    "ORACLE_MARKETDATA_SYMBOL",
];

/// What every HTTP provider shares, listed as unused when none is asked.
const PROVIDER_VARIABLES: [&str; 2] = ["ORACLE_TIMEOUT_MS", "ORACLE_ATTEMPTS"];

#[derive(Clone, Debug)]
pub struct OracleSettings {
    /// ORACLE.
    pub kind: OracleKind,
    /// A file of `date,close` lines (ORACLE_CSV_PATH), for csv.
    pub csv_path: Option<PathBuf>,
    /// The HTTP provider, when ORACLE=http or a quorum source is http.
    pub http: Option<HttpSettings>,
    /// Twelve Data, when ORACLE=twelvedata or a quorum source is.
    pub twelvedata: Option<HttpSettings>,
    /// Tiingo, when ORACLE=tiingo or a quorum source is.
    pub tiingo: Option<HttpSettings>,
    /// Market Data, when ORACLE=marketdata or a quorum source is.
    pub marketdata: Option<HttpSettings>,
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
        let asks_a_provider = uses(OracleKind::Http)
            || uses(OracleKind::TwelveData)
            || uses(OracleKind::Tiingo)
            || uses(OracleKind::MarketData);
        let (timeout, attempts) = if asks_a_provider {
            (
                r.duration("ORACLE_TIMEOUT_MS", Unit::Millis, 5000, 100..=60_000)?,
                r.number("ORACLE_ATTEMPTS", 3u32, 1..=10)?,
            )
        } else {
            for variable in PROVIDER_VARIABLES {
                r.optional_text(variable);
            }
            r.mark_unused(
                &PROVIDER_VARIABLES,
                "only for an HTTP provider (http, twelvedata, tiingo, marketdata)",
            );
            (std::time::Duration::ZERO, 0)
        };
        let provider = |r: &mut Reader, names: Provider<'_>| -> Result<HttpSettings, ConfigError> {
            let api_key = r.secret(names.key, |_| Ok(()))?.ok_or_else(|| {
                ConfigError::new(names.key, "", "is required for this provider (its key)")
            })?;
            let base_url = r.parse(names.url, names.default_url, |url| {
                if url.starts_with("https://") || url.starts_with("http://") {
                    Ok(url.to_string())
                } else {
                    Err("must be an http:// or https:// URL".into())
                }
            })?;
            Ok(HttpSettings {
                base_url,
                api_key,
                ticker: r.text(names.symbol, &names.default_symbol),
                timeout,
                attempts,
                retry_wait: std::time::Duration::from_millis(250),
            })
        };
        let unused = |r: &mut Reader, variables: &'static [&'static str; 3], why| {
            // Read unchecked, so the explanation lists them as unused.
            let _ = r.secret(variables[0], |_| Ok(()));
            for variable in &variables[1..] {
                r.optional_text(variable);
            }
            r.mark_unused(variables, why);
        };
        let http = if uses(OracleKind::Http) {
            Some(provider(
                r,
                Provider {
                    key: "ORACLE_API_KEY",
                    url: "ORACLE_HTTP_URL",
                    default_url: "https://api.polygon.io",
                    symbol: "ORACLE_TICKER",
                    default_symbol: format!("I:{market}"),
                },
            )?)
        } else {
            unused(
                r,
                &HTTP_VARIABLES,
                "only for ORACLE=http or an http quorum source",
            );
            None
        };
        let twelvedata = if uses(OracleKind::TwelveData) {
            Some(provider(
                r,
                Provider {
                    key: "ORACLE_TWELVEDATA_KEY",
                    url: "ORACLE_TWELVEDATA_URL",
                    default_url: "https://api.twelvedata.com",
                    symbol: "ORACLE_TWELVEDATA_SYMBOL",
                    default_symbol: market.to_string(),
                },
            )?)
        } else {
            unused(
                r,
                &TWELVEDATA_VARIABLES,
                "only for ORACLE=twelvedata or a twelvedata quorum source",
            );
            None
        };
        let tiingo = if uses(OracleKind::Tiingo) {
            Some(provider(
                r,
                Provider {
                    key: "ORACLE_TIINGO_KEY",
                    url: "ORACLE_TIINGO_URL",
                    default_url: "https://api.tiingo.com",
                    symbol: "ORACLE_TIINGO_SYMBOL",
                    default_symbol: market.to_string(),
                },
            )?)
        } else {
            unused(
                r,
                &TIINGO_VARIABLES,
                "only for ORACLE=tiingo or a tiingo quorum source",
            );
            None
        };
        let marketdata = if uses(OracleKind::MarketData) {
            let settings = provider(
                r,
                Provider {
                    key: "ORACLE_MARKETDATA_KEY",
                    url: "ORACLE_MARKETDATA_URL",
                    default_url: "https://api.marketdata.app",
                    symbol: "ORACLE_MARKETDATA_SYMBOL",
                    default_symbol: market.to_string(),
                },
            )?;
            // Market Data answers an index it does not know as it answers a
            // day without data (404 `no_data`), so a prefix from another
            // provider would leave the source silent, not failing.
            if settings.ticker.is_empty()
                || !settings
                    .ticker
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.')
            {
                return Err(ConfigError::new(
                    "ORACLE_MARKETDATA_SYMBOL",
                    &settings.ticker,
                    "must be an index symbol without a prefix, letters and digits only (NDX, not ^NDX or I:NDX)",
                ));
            }
            Some(settings)
        } else {
            unused(
                r,
                &MARKETDATA_VARIABLES,
                "only for ORACLE=marketdata or a marketdata quorum source",
            );
            None
        };
        Ok(OracleSettings {
            kind,
            csv_path,
            http,
            twelvedata,
            tiingo,
            marketdata,
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

/// A provider's variables and defaults.
struct Provider<'a> {
    key: &'static str,
    url: &'static str,
    default_url: &'a str,
    symbol: &'static str,
    default_symbol: String,
}

/// `http,csv`: the sources a quorum asks.
fn quorum_sources(text: &str) -> Result<Vec<OracleKind>, String> {
    let allowed = [
        OracleKind::Mock,
        OracleKind::Csv,
        OracleKind::Http,
        OracleKind::TwelveData,
        OracleKind::Tiingo,
        OracleKind::MarketData,
    ];
    text.split(',')
        .map(|source| {
            allowed
                .into_iter()
                .find(|kind| source.trim().eq_ignore_ascii_case(kind.as_str()))
                .ok_or_else(|| {
                    "sources are mock, csv, http, twelvedata, tiingo and marketdata, separated by commas"
                        .into()
                })
        })
        .collect()
}
