//! The oracle port: official closes per market and session date.
//!
//! `mock` (deterministic, for demos and tests), `csv` (a file of
//! `date,close` lines), `manual` (operators enter closes with `price
//! set`; the oracle itself never answers), `http` (Polygon.io's daily
//! open/close API), `twelvedata` (Twelve Data's daily time series),
//! `tiingo` (Tiingo's end-of-day prices), `marketdata` (Market Data's
//! index candles) and `quorum` (the median of
//! several sources, when enough agree). Whatever price is used is
//! recorded in the store with its source and fetch time.

mod csv;
mod http;
mod marketdata;
mod mock;
mod quorum;
mod tiingo;
mod twelvedata;

use async_trait::async_trait;
use chrono::NaiveDate;
use updown_domain::ids::Market;
use updown_domain::round::Price;

pub use self::csv::CsvOracle;
pub use self::http::{HttpOracle, HttpSettings, Provider};
pub use self::marketdata::MarketDataOracle;
pub use self::mock::MockOracle;
pub use self::quorum::{agreed_price, closes_told, QuorumOracle};
pub use self::tiingo::TiingoOracle;
pub use self::twelvedata::TwelveDataOracle;

#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("oracle source failed: {0}")]
    Source(String),
}

pub use updown_store::SourceAnswer;

/// A close and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub price: Price,
    /// Recorded as the price's source.
    pub source: String,
}

/// What asking an oracle gave: the close, if its sources gave one they
/// agree on, and what each of them answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    pub quote: Option<Quote>,
    /// Each source's answer, in the configured order; empty for an oracle
    /// that is a single source (its quote is its answer).
    pub answers: Vec<SourceAnswer>,
    /// Enough sources gave a close, and they disagree beyond the spread.
    pub disagreement: bool,
}

#[async_trait]
pub trait Oracle: Send + Sync + 'static {
    /// A short name recorded as the price's source.
    fn name(&self) -> String;

    /// The official close of `market` on `date`, or `None` while there is
    /// none (yet).
    async fn close(&self, market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError>;

    /// The close with its source: `name()`, unless the oracle says more
    /// (the quorum names the sources that agreed).
    async fn quote(&self, market: &Market, date: NaiveDate) -> Result<Option<Quote>, OracleError> {
        Ok(self.close(market, date).await?.map(|price| Quote {
            price,
            source: self.name(),
        }))
    }

    /// The close with what each source answered: the quote alone, unless
    /// the oracle asks several (the quorum).
    async fn ask(&self, market: &Market, date: NaiveDate) -> Result<Asked, OracleError> {
        Ok(Asked {
            quote: self.quote(market, date).await?,
            ..Asked::default()
        })
    }
}

/// Closes come only from operators (`updown price set`).
pub struct ManualOracle;

#[async_trait]
impl Oracle for ManualOracle {
    fn name(&self) -> String {
        "manual".into()
    }

    async fn close(
        &self,
        _market: &Market,
        _date: NaiveDate,
    ) -> Result<Option<Price>, OracleError> {
        Ok(None)
    }
}
