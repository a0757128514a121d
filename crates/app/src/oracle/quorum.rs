//! Several sources asked at once; a close is given only when at least
//! `ORACLE_QUORUM` of them report one within `ORACLE_MAX_SPREAD_BPS` of
//! their median. The median is the lower middle one when their number is
//! even, so the close given is always one a source reported. The source
//! recorded names the sources that agreed.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use futures::future::join_all;
use rust_decimal::Decimal;
use updown_domain::ids::Market;
use updown_domain::round::Price;

use super::{Oracle, OracleError, Quote};

pub struct QuorumOracle {
    sources: Vec<Arc<dyn Oracle>>,
    quorum: usize,
    max_spread_bps: u32,
}

/// The median of `prices` when at least `quorum` of them lie within
/// `max_spread_bps` of it, with the indexes of those that do.
pub fn agreed_price(
    prices: &[Price],
    quorum: usize,
    max_spread_bps: u32,
) -> Option<(Price, Vec<usize>)> {
    if prices.is_empty() || prices.len() < quorum {
        return None;
    }
    let mut sorted: Vec<Price> = prices.to_vec();
    sorted.sort();
    let median = sorted[(sorted.len() - 1) / 2];
    let limit = median.value() * Decimal::from(max_spread_bps) / Decimal::from(10_000);
    let agreeing: Vec<usize> = prices
        .iter()
        .enumerate()
        .filter(|(_, p)| (p.value() - median.value()).abs() <= limit)
        .map(|(i, _)| i)
        .collect();
    (agreeing.len() >= quorum.max(1)).then_some((median, agreeing))
}

impl QuorumOracle {
    pub fn new(sources: Vec<Arc<dyn Oracle>>, quorum: usize, max_spread_bps: u32) -> QuorumOracle {
        QuorumOracle {
            sources,
            quorum,
            max_spread_bps,
        }
    }
}

#[async_trait]
impl Oracle for QuorumOracle {
    fn name(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(|s| s.name()).collect();
        format!("quorum({} of {})", self.quorum, names.join(", "))
    }

    async fn close(&self, market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        Ok(self.quote(market, date).await?.map(|quote| quote.price))
    }

    async fn quote(&self, market: &Market, date: NaiveDate) -> Result<Option<Quote>, OracleError> {
        let answers = join_all(self.sources.iter().map(|s| s.quote(market, date))).await;
        let mut quotes = Vec::new();
        let mut failures = Vec::new();
        for answer in answers {
            match answer {
                Ok(Some(quote)) => quotes.push(quote),
                Ok(None) => {}
                Err(e) => failures.push(e.to_string()),
            }
        }
        let prices: Vec<Price> = quotes.iter().map(|q| q.price).collect();
        if let Some((price, agreeing)) = agreed_price(&prices, self.quorum, self.max_spread_bps) {
            let names: Vec<&str> = agreeing
                .iter()
                .map(|i| quotes[*i].source.as_str())
                .collect();
            return Ok(Some(Quote {
                price,
                source: format!(
                    "quorum {}/{}: {}",
                    agreeing.len(),
                    self.sources.len(),
                    names.join(", ")
                ),
            }));
        }
        let told: Vec<String> = quotes
            .iter()
            .map(|q| format!("{} {}", q.source, q.price))
            .collect();
        if quotes.len() >= self.quorum.max(1) {
            // Enough sources answered, and they disagree: one of them is
            // wrong, and the round waits until they agree or it voids.
            metrics::counter!("updown_oracle_disagreements_total").increment(1);
            tracing::warn!(
                event = "oracle_disagreement",
                %date,
                quorum = self.quorum,
                max_spread_bps = self.max_spread_bps,
                closes = ?told,
                "the oracle's sources disagree beyond ORACLE_MAX_SPREAD_BPS"
            );
        }
        tracing::warn!(
            %date,
            quorum = self.quorum,
            closes = ?told,
            failures = ?failures,
            "oracle quorum not reached"
        );
        if failures.is_empty() {
            // Nobody failed; they do not have it (yet), or disagree.
            Ok(None)
        } else {
            Err(OracleError::Source(format!(
                "quorum of {} not reached: closes {told:?}; failures: {}",
                self.quorum,
                failures.join("; ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(texts: &[&str]) -> Vec<Price> {
        texts.iter().map(|t| Price::parse(t).unwrap()).collect()
    }

    #[test]
    fn the_median_stands_when_enough_sources_agree() {
        let (price, agreeing) =
            agreed_price(&prices(&["100.00", "100.04", "99.99"]), 2, 10).unwrap();
        assert_eq!(price.to_string(), "100");
        assert_eq!(agreeing, [0, 1, 2]);
        // One wild source is outvoted.
        let (price, agreeing) = agreed_price(&prices(&["100", "250", "100.01"]), 2, 10).unwrap();
        assert_eq!(price.to_string(), "100.01");
        assert_eq!(agreeing, [0, 2]);
        // Even count: the lower middle one, a price a source reported.
        let (price, _) =
            agreed_price(&prices(&["100.02", "100", "100.01", "100.03"]), 2, 50).unwrap();
        assert_eq!(price.to_string(), "100.01");
    }

    #[test]
    fn no_price_without_a_quorum_within_the_spread() {
        assert!(agreed_price(&prices(&["100"]), 2, 10).is_none());
        assert!(
            agreed_price(&prices(&["100", "101"]), 2, 10).is_none(),
            "1% apart, 0.1% allowed"
        );
        assert!(
            agreed_price(&prices(&["100", "100.1"]), 2, 10).is_some(),
            "exactly at the limit"
        );
        assert!(agreed_price(&[], 0, 10).is_none());
    }
}
