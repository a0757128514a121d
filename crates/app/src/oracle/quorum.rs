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

use super::{Asked, Oracle, OracleError, Quote, SourceAnswer};
use crate::clock::{Clock, SystemClock};

pub struct QuorumOracle {
    sources: Vec<Arc<dyn Oracle>>,
    quorum: usize,
    max_spread_bps: u32,
    /// When each source answered.
    clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        }
    }

    /// Answers timed by `clock` (the service's) instead of the system's.
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> QuorumOracle {
        QuorumOracle { clock, ..self }
    }
}

/// `source close` for each source that gave one.
pub fn closes_told(answers: &[SourceAnswer]) -> Vec<String> {
    answers
        .iter()
        .filter_map(|a| a.close.map(|close| format!("{} {close}", a.source)))
        .collect()
}

#[async_trait]
impl Oracle for QuorumOracle {
    fn name(&self) -> String {
        let names: Vec<String> = self.sources.iter().map(|s| s.name()).collect();
        format!(
            "quorum({} of {}) within {} bps",
            self.quorum,
            names.join(", "),
            self.max_spread_bps
        )
    }

    async fn close(&self, market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        Ok(self.quote(market, date).await?.map(|quote| quote.price))
    }

    async fn quote(&self, market: &Market, date: NaiveDate) -> Result<Option<Quote>, OracleError> {
        Ok(self.ask(market, date).await?.quote)
    }

    async fn ask(&self, market: &Market, date: NaiveDate) -> Result<Asked, OracleError> {
        let mut answers: Vec<SourceAnswer> = join_all(self.sources.iter().map(|s| async {
            let answer = s.quote(market, date).await;
            let answered_at = self.clock.now();
            let (source, close, error) = match answer {
                Ok(Some(quote)) => (quote.source, Some(quote.price), None),
                Ok(None) => (s.name(), None, None),
                Err(e) => (s.name(), None, Some(e.to_string())),
            };
            SourceAnswer {
                source,
                close,
                error,
                answered_at,
                agreed: false,
            }
        }))
        .await;
        let with_close: Vec<usize> = (0..answers.len())
            .filter(|i| answers[*i].close.is_some())
            .collect();
        let prices: Vec<Price> = with_close
            .iter()
            .filter_map(|i| answers[*i].close)
            .collect();
        if let Some((price, agreeing)) = agreed_price(&prices, self.quorum, self.max_spread_bps) {
            let mut names = Vec::new();
            for i in agreeing {
                let answer = &mut answers[with_close[i]];
                answer.agreed = true;
                names.push(answer.source.clone());
            }
            let quote = Quote {
                price,
                source: format!(
                    "quorum {}/{}: {}",
                    names.len(),
                    self.sources.len(),
                    names.join(", ")
                ),
            };
            return Ok(Asked {
                quote: Some(quote),
                answers,
                disagreement: false,
            });
        }
        let told = closes_told(&answers);
        let failures: Vec<String> = answers
            .iter()
            .filter_map(|a| a.error.as_ref().map(|e| format!("{}: {e}", a.source)))
            .collect();
        // Enough sources answered, and they disagree: one of them is
        // wrong. The caller reports it (and a round waits).
        let disagreement = prices.len() >= self.quorum.max(1);
        if disagreement || failures.is_empty() {
            // They disagree (the caller says so), or nobody failed and
            // they do not have it (yet).
            Ok(Asked {
                quote: None,
                answers,
                disagreement,
            })
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
