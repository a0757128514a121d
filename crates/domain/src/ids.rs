//! Typed identifiers and names, so a user id cannot be passed as a round id.

use std::fmt;

use chrono::NaiveDate;
use thiserror::Error;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id_type!(
    /// A player.
    UserId
);
id_type!(
    /// A stored round (one per market and session).
    RoundId
);
id_type!(
    /// One bet; a user may hold several per round.
    BetId
);
id_type!(
    /// A withdrawal request, also its request id toward the chain.
    WithdrawalId
);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("round code {0:?} must be a date written YYYYMMDD")]
    RoundCode(String),
    #[error("market symbol {0:?} must be 1 to 16 upper-case letters or digits")]
    Market(String),
    #[error("email {0:?} is not a valid address")]
    Email(String),
}

/// A round's code: its session date in New York, written `YYYYMMDD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoundCode(NaiveDate);

impl RoundCode {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let text = text.trim();
        if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(NameError::RoundCode(text.to_string()));
        }
        NaiveDate::parse_from_str(text, "%Y%m%d")
            .map(RoundCode)
            .map_err(|_| NameError::RoundCode(text.to_string()))
    }

    pub fn from_date(date: NaiveDate) -> Self {
        RoundCode(date)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }
}

impl fmt::Display for RoundCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format("%Y%m%d"))
    }
}

/// A market symbol such as `NDX`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Market(String);

impl Market {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let ok = (1..=16).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if ok {
            Ok(Market(text.to_string()))
        } else {
            Err(NameError::Market(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Market {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, trimmed and lower-cased; deliberately loose (one `@`,
/// something on each side, a dot in the domain, at most 254 characters).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let normal = text.trim().to_ascii_lowercase();
        let valid = normal.chars().count() <= 254
            && !normal.chars().any(|c| c.is_whitespace() || c.is_control())
            && match normal.split_once('@') {
                Some((local, domain)) => {
                    !local.is_empty()
                        && !domain.contains('@')
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                }
                None => false,
            };
        if valid {
            Ok(Email(normal))
        } else {
            Err(NameError::Email(text.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_codes_are_real_dates() {
        assert_eq!(
            RoundCode::parse("20260105").unwrap().to_string(),
            "20260105"
        );
        assert!(RoundCode::parse("20260230").is_err());
        assert!(RoundCode::parse("2026-01-05").is_err());
        assert!(RoundCode::parse("+2026010").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" User1@Example.com ").unwrap().as_str(),
            "user1@example.com"
        );
        for bad in ["", "a", "a@b", "@b.com", "a@b@c.com", "a b@c.com", "a@.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn market_symbols_are_upper_case() {
        assert!(Market::parse("NDX").is_ok());
        assert!(Market::parse("ndx").is_err());
        assert!(Market::parse("").is_err());
    }
}
