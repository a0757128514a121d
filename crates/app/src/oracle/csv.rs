//! Closes from a CSV file of `date,close` lines (a header line and `#`
//! comments are allowed). The file is read on every question, so an
//! operator can append to it while the service runs.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::NaiveDate;
use updown_domain::ids::Market;
use updown_domain::round::Price;

use super::{Oracle, OracleError};

pub struct CsvOracle {
    path: PathBuf,
}

impl CsvOracle {
    pub fn new(path: PathBuf) -> Self {
        CsvOracle { path }
    }

    fn find(text: &str, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty()
                || line.starts_with('#')
                || line.to_ascii_lowercase().starts_with("date")
            {
                continue;
            }
            let bad =
                |what: &str| OracleError::Source(format!("line {}: {what}: {line:?}", number + 1));
            let (day, close) = line
                .split_once(',')
                .ok_or_else(|| bad("expected date,close"))?;
            let day: NaiveDate = day
                .trim()
                .parse()
                .map_err(|_| bad("date must be YYYY-MM-DD"))?;
            if day == date {
                return Price::parse(close.trim())
                    .map(Some)
                    .map_err(|e| bad(&e.to_string()));
            }
        }
        Ok(None)
    }
}

#[async_trait]
impl Oracle for CsvOracle {
    fn name(&self) -> String {
        format!("csv:{}", self.path.display())
    }

    async fn close(&self, _market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| OracleError::Source(format!("reading {}: {e}", self.path.display())))?;
        CsvOracle::find(&text, date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_close_of_a_date_and_reports_bad_lines() {
        let text = "date,close\n# comment\n2026-11-23,20100.5\n2026-11-24,20111.25\n";
        let date: NaiveDate = "2026-11-24".parse().unwrap();
        assert_eq!(
            CsvOracle::find(text, date).unwrap().unwrap().to_string(),
            "20111.25"
        );
        assert!(CsvOracle::find(text, "2026-11-25".parse().unwrap())
            .unwrap()
            .is_none());
        assert!(CsvOracle::find("2026-11-24;1\n", date).is_err());
        assert!(CsvOracle::find("2026-11-24,-3\n", date).is_err());
    }
}
