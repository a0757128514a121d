//! The shapes the OpenAPI document states for strings (patterns and
//! lengths), checked here exactly as stated: a request the document says
//! is well-formed is never refused as malformed (400), and one it says is
//! malformed never gets through. What no schema can state (an EIP-55
//! checksum, a calendar date, a configured limit, the state of an
//! account) is refused afterwards with 404, 409 or 422.

use updown_domain::address::{Address, AddressError};

use super::ApiError;

/// Longest email, in characters.
pub const EMAIL_MAX: usize = 254;

/// An Ethereum address of the documented shape (400 otherwise) whose
/// EIP-55 checksum holds when written in mixed case (422 otherwise).
pub fn address(text: &str) -> Result<Address, ApiError> {
    let hex = text.strip_prefix("0x").unwrap_or_default();
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(format!(
            "address {text:?} must be 0x followed by 40 hexadecimal digits"
        )));
    }
    Address::parse(text).map_err(|e| match e {
        AddressError::BadChecksum(_) => ApiError::refused(e.to_string()),
        AddressError::Malformed(_) => ApiError::invalid(e.to_string()),
    })
}

/// An email of the documented shape (the pattern on `NewUser.email`) and
/// at most [`EMAIL_MAX`] characters.
pub fn email(text: &str) -> Result<&str, ApiError> {
    let allowed = |c: char| c != '@' && !c.is_whitespace() && !c.is_control();
    let well_formed = text.chars().count() <= EMAIL_MAX
        && match text.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.chars().all(allowed)
                    && domain.chars().all(allowed)
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && inner(domain).contains('.')
            }
            None => false,
        };
    if well_formed {
        Ok(text)
    } else {
        Err(ApiError::invalid(format!(
            "{text:?} is not an email address (local part, @, a domain with a dot)"
        )))
    }
}

/// `text` without its first and last characters.
fn inner(text: &str) -> &str {
    let mut chars = text.chars();
    chars.next();
    chars.next_back();
    chars.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `0x` and 40 hex digits.
    const ADDRESS_PATTERN: &str = "^0x[0-9a-fA-F]{40}$";
    /// A local part, `@`, and a domain with a dot inside it; no whitespace or
    /// control characters.
    const EMAIL_PATTERN: &str = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]$";

    #[test]
    fn emails_are_checked_as_the_document_states() {
        for good in [
            "a@b.c",
            "ann@example.com",
            "x@a..b",
            "é@ex.ample",
            "UP@CASE.COM",
            "a@éé.é",
        ] {
            assert!(email(good).is_ok(), "{good}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "a",
            "@b.c",
            "a@b",
            "a@.b",
            "a@b.",
            "a@b@c.d",
            " a@b.c",
            "a@b.c ",
            "a b@c.d",
            "a\u{1}@b.c",
            "a@é.",
            "a@.é",
            &long,
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_are_whole_numbers_however_written_and_read_exactly() {
        let read = crate::wire::whole_number;
        assert_eq!(read("21617"), Some(21617));
        assert_eq!(read("21617.0"), Some(21617));
        assert_eq!(read("-3.000"), Some(-3));
        assert_eq!(read("1e3"), Some(1000));
        assert_eq!(read("1E+16"), Some(10_000_000_000_000_000));
        assert_eq!(read("9223372036854775807"), Some(i64::MAX));
        // Exactly, where a float would round it.
        assert_eq!(
            read("4611686018427387905.0"),
            Some(4_611_686_018_427_387_905)
        );
        for bad in [
            "1.5",
            "9223372036854775808",
            "1e30",
            "\"5\"",
            "true",
            "null",
            "1e-3",
        ] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_document_states_these_very_shapes() {
        let document = serde_json::to_value(crate::api::openapi()).unwrap();
        let schemas = &document["components"]["schemas"];
        assert_eq!(
            schemas["NewUser"]["properties"]["email"]["pattern"],
            EMAIL_PATTERN
        );
        assert_eq!(
            schemas["NewUser"]["properties"]["email"]["maxLength"],
            EMAIL_MAX
        );
        assert_eq!(
            schemas["NewOperator"]["properties"]["email"]["pattern"],
            EMAIL_PATTERN
        );
        assert_eq!(
            schemas["NewWithdrawal"]["properties"]["address"]["pattern"],
            ADDRESS_PATTERN
        );
    }

    #[test]
    fn addresses_are_malformed_or_fail_their_checksum() {
        assert!(address("0x52908400098527886E0F7030069857D2E4169EE7").is_ok());
        assert!(address("0x52908400098527886e0f7030069857d2e4169ee7").is_ok());
        let bad_sum = address("0x52908400098527886E0F7030069857D2E4169Ee7").unwrap_err();
        assert_eq!(
            bad_sum.status(),
            axum::http::StatusCode::UNPROCESSABLE_ENTITY
        );
        for malformed in [
            "",
            "0x",
            "52908400098527886E0F7030069857D2E4169EE7",
            " 0x52908400098527886E0F7030069857D2E4169EE7",
        ] {
            assert_eq!(
                address(malformed).unwrap_err().status(),
                axum::http::StatusCode::BAD_REQUEST
            );
        }
    }
}
