//! A deterministic oracle: the same market and date always give the same
//! close, spread enough that consecutive sessions rarely tie.

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use updown_domain::ids::Market;
use updown_domain::round::Price;

use super::{Oracle, OracleError};

#[derive(Default)]
pub struct MockOracle {
    /// Dates the mock pretends not to know (to exercise voids in tests).
    missing: Vec<NaiveDate>,
}

impl MockOracle {
    pub fn without(missing: Vec<NaiveDate>) -> Self {
        MockOracle { missing }
    }

    /// The close the mock reports: 15,000.00 to 24,999.99, from an FNV-1a
    /// hash of market and date.
    pub fn price_for(market: &Market, date: NaiveDate) -> Price {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("{market}:{}:{}", date.num_days_from_ce(), date).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        let cents = 1_500_000 + (hash % 1_000_000) as i64;
        Price::new(Decimal::new(cents, 2)).expect("positive")
    }
}

#[async_trait]
impl Oracle for MockOracle {
    fn name(&self) -> String {
        "mock".into()
    }

    async fn close(&self, market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        if self.missing.contains(&date) {
            return Ok(None);
        }
        Ok(Some(MockOracle::price_for(market, date)))
    }
}
