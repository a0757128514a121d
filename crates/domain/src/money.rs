//! Money: integer micro-USDC with checked arithmetic and exact parsing.
//!
//! One unit everywhere: 1 USDC = 1_000_000 micro-USDC. [`Micros`] is never
//! negative and always fits a signed 64-bit database column, so every value
//! that exists can be stored. Products go through 128-bit intermediates and
//! rounding is always named (`mul_div_floor`).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Micro-USDC per USDC.
pub const MICROS_PER_USDC: i64 = 1_000_000;
const USDC_DECIMALS: usize = 6;

/// A non-negative amount of micro-USDC (0 ..= i64::MAX).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Micros(i64);

#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum MoneyError {
    #[error("amount is empty")]
    Empty,
    #[error("amount must not be negative: {0:?}")]
    Negative(String),
    #[error("amount {0:?} is not a number; use integer micro-USDC (\"1500000\") or USDC with the suffix (\"1.5USDC\")")]
    Malformed(String),
    #[error("amount {0:?} has more than 6 decimals; the smallest unit is 0.000001 USDC")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    Overflow(String),
    #[error(
        "decimal amount {0:?} needs the USDC suffix (\"{0}USDC\"); plain integers are micro-USDC"
    )]
    DecimalWithoutUnit(String),
    #[error("arithmetic overflow")]
    ArithmeticOverflow,
    #[error("arithmetic underflow: result would be negative")]
    ArithmeticUnderflow,
}

impl Micros {
    pub const ZERO: Micros = Micros(0);
    pub const MAX: Micros = Micros(i64::MAX);

    /// Builds an amount from a raw micro-USDC count, refusing negatives.
    pub fn new(micros: i64) -> Result<Self, MoneyError> {
        if micros < 0 {
            return Err(MoneyError::Negative(micros.to_string()));
        }
        Ok(Micros(micros))
    }

    pub fn from_u64(micros: u64) -> Result<Self, MoneyError> {
        i64::try_from(micros)
            .map(Micros)
            .map_err(|_| MoneyError::Overflow(micros.to_string()))
    }

    /// Whole USDC, for tests and seeds.
    pub fn usdc(whole: i64) -> Result<Self, MoneyError> {
        whole
            .checked_mul(MICROS_PER_USDC)
            .ok_or(MoneyError::ArithmeticOverflow)
            .and_then(Micros::new)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub fn checked_add(self, other: Micros) -> Result<Micros, MoneyError> {
        self.0
            .checked_add(other.0)
            .map(Micros)
            .ok_or(MoneyError::ArithmeticOverflow)
    }

    pub fn checked_sub(self, other: Micros) -> Result<Micros, MoneyError> {
        match self.0.checked_sub(other.0) {
            Some(v) if v >= 0 => Ok(Micros(v)),
            _ => Err(MoneyError::ArithmeticUnderflow),
        }
    }

    /// floor(self * numerator / denominator) with a 128-bit intermediate.
    /// A zero denominator yields zero (nothing to share).
    pub fn mul_div_floor(self, numerator: Micros, denominator: Micros) -> Micros {
        if denominator.0 == 0 {
            return Micros::ZERO;
        }
        let product = i128::from(self.0) * i128::from(numerator.0);
        let quotient = product / i128::from(denominator.0);
        // Both factors are non-negative, so floor is truncation; the result
        // fits whenever numerator <= denominator, which callers guarantee.
        Micros(i64::try_from(quotient).unwrap_or(i64::MAX))
    }

    /// floor(self * bps / 10_000).
    pub fn bps_floor(self, bps: u32) -> Micros {
        let product = i128::from(self.0) * i128::from(bps);
        Micros(i64::try_from(product / 10_000).unwrap_or(i64::MAX))
    }

    pub fn sum<I: IntoIterator<Item = Micros>>(items: I) -> Result<Micros, MoneyError> {
        items
            .into_iter()
            .try_fold(Micros::ZERO, |acc, x| acc.checked_add(x))
    }

    /// Parses what a person types on the command line: an integer is
    /// micro-USDC; a decimal must carry the `USDC` suffix ("1.5USDC",
    /// "1.5 USDC", case-insensitive). Anything inexact is refused.
    pub fn parse_cli(input: &str) -> Result<Micros, MoneyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MoneyError::Empty);
        }
        let upper = trimmed.to_ascii_uppercase();
        if let Some(number) = upper.strip_suffix("USDC") {
            return parse_decimal(number.trim_end(), trimmed);
        }
        if trimmed.contains('.') {
            check_sign(trimmed, trimmed)?;
            // Still reject garbage first, so the message fits the input.
            parse_decimal(trimmed, trimmed)?;
            return Err(MoneyError::DecimalWithoutUnit(trimmed.to_string()));
        }
        parse_integer(trimmed, trimmed)
    }

    /// Parses a USDC decimal as typed in a web form ("1.5", "2", "0.000001").
    pub fn parse_usdc(input: &str) -> Result<Micros, MoneyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(MoneyError::Empty);
        }
        parse_decimal(trimmed, trimmed)
    }

    /// The amount as a USDC decimal with all six places ("1.500000").
    pub fn to_usdc_string(self) -> String {
        format!(
            "{}.{:06}",
            self.0 / MICROS_PER_USDC,
            self.0 % MICROS_PER_USDC
        )
    }
}

fn check_sign(number: &str, original: &str) -> Result<(), MoneyError> {
    if number.starts_with('-') {
        return Err(MoneyError::Negative(original.to_string()));
    }
    Ok(())
}

fn parse_integer(digits: &str, original: &str) -> Result<Micros, MoneyError> {
    check_sign(digits, original)?;
    let digits = digits.replace('_', "");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MoneyError::Malformed(original.to_string()));
    }
    digits
        .parse::<i64>()
        .map(Micros)
        .map_err(|_| MoneyError::Overflow(original.to_string()))
}

fn parse_decimal(number: &str, original: &str) -> Result<Micros, MoneyError> {
    check_sign(number, original)?;
    let (whole, fraction) = match number.split_once('.') {
        Some((w, f)) => (w, f),
        None => (number, ""),
    };
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return Err(MoneyError::Malformed(original.to_string()));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > USDC_DECIMALS {
        return Err(MoneyError::TooPrecise(original.to_string()));
    }
    let overflow = || MoneyError::Overflow(original.to_string());
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| overflow())?
    };
    let fraction_micros: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().map_err(|_| overflow())?
    };
    whole
        .checked_mul(MICROS_PER_USDC)
        .and_then(|w| w.checked_add(fraction_micros))
        .map(Micros)
        .ok_or_else(overflow)
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Micros {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Micros::parse_cli(s)
    }
}

impl TryFrom<i64> for Micros {
    type Error = MoneyError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Micros::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_are_micro_usdc_and_decimals_need_the_suffix() {
        assert_eq!(Micros::parse_cli("1500000"), Ok(Micros(1_500_000)));
        assert_eq!(Micros::parse_cli("1.5USDC"), Ok(Micros(1_500_000)));
        assert_eq!(Micros::parse_cli("1.5 USDC"), Ok(Micros(1_500_000)));
        assert_eq!(Micros::parse_cli("2usdc"), Ok(Micros(2_000_000)));
        assert_eq!(Micros::parse_cli("0.000001USDC"), Ok(Micros(1)));
        assert_eq!(
            Micros::parse_cli("1.5"),
            Err(MoneyError::DecimalWithoutUnit("1.5".into()))
        );
    }

    #[test]
    fn inexact_negative_and_huge_amounts_are_refused() {
        assert!(matches!(
            Micros::parse_cli("1.0000001USDC"),
            Err(MoneyError::TooPrecise(_))
        ));
        assert!(matches!(
            Micros::parse_cli("-5"),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            Micros::parse_cli("-1.5USDC"),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            Micros::parse_cli("99999999999999999999"),
            Err(MoneyError::Overflow(_))
        ));
        assert!(matches!(
            Micros::parse_cli("9999999999999USDC"),
            Err(MoneyError::Overflow(_))
        ));
        assert!(matches!(
            Micros::parse_cli("abc"),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            Micros::parse_cli("1e6"),
            Err(MoneyError::Malformed(_))
        ));
        assert!(matches!(
            Micros::parse_cli(".USDC"),
            Err(MoneyError::Malformed(_))
        ));
        assert_eq!(Micros::parse_cli("  "), Err(MoneyError::Empty));
    }

    #[test]
    fn trailing_zeros_beyond_six_places_are_exact_and_accepted() {
        assert_eq!(Micros::parse_usdc("1.50000000"), Ok(Micros(1_500_000)));
    }

    #[test]
    fn subtraction_never_goes_below_zero() {
        assert_eq!(
            Micros(1).checked_sub(Micros(2)),
            Err(MoneyError::ArithmeticUnderflow)
        );
        assert_eq!(
            Micros::MAX.checked_add(Micros(1)),
            Err(MoneyError::ArithmeticOverflow)
        );
    }

    proptest! {
        #[test]
        fn usdc_string_round_trips(raw in 0i64..=i64::MAX) {
            let amount = Micros(raw);
            prop_assert_eq!(Micros::parse_usdc(&amount.to_usdc_string()), Ok(amount));
        }

        #[test]
        fn mul_div_floor_matches_wide_arithmetic(a in 0i64..=i64::MAX, n in 0i64..=i64::MAX, d in 1i64..=i64::MAX) {
            let (n, d) = if n <= d { (n, d) } else { (d, n) };
            let expected = (i128::from(a) * i128::from(n)) / i128::from(d);
            prop_assert_eq!(i128::from(Micros(a).mul_div_floor(Micros(n), Micros(d)).get()), expected);
        }
    }
}
