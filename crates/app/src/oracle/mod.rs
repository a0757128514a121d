//! The oracle port: official closes per market and session date.
//!
//! `mock` (deterministic, for demos and tests), `csv` (a file of
//! `date,close` lines), `manual` (operators enter closes with `price
//! set`; the oracle itself never answers), `http` (Polygon.io's daily
//! open/close API), `twelvedata` (Twelve Data's daily time series) and
//! `quorum` (the median of several sources, when enough agree). Whatever price is used is recorded in the store with its
//! source and fetch time.

mod csv;
mod http;
mod mock;
mod quorum;
mod twelvedata;

use async_trait::async_trait;
use chrono::NaiveDate;
use updown_domain::ids::Market;
use updown_domain::round::Price;

pub use self::csv::CsvOracle;
pub use self::http::{HttpOracle, HttpSettings, Provider};
pub use self::mock::MockOracle;
pub use self::quorum::{agreed_price, QuorumOracle};
pub use self::twelvedata::TwelveDataOracle;

#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("oracle source failed: {0}")]
    Source(String),
}

/// A close and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub price: Price,
    /// Recorded as the price's source.
    pub source: String,
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
