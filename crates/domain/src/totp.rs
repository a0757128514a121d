//! One-time codes for operators' second factor: TOTP (RFC 6238) over
//! HOTP (RFC 4226), as every authenticator app computes them by default:
//! HMAC-SHA1, 30-second steps counted from the Unix epoch, 6 digits.
//!
//! A code is accepted for the step it was made in and one step either
//! side ([`WINDOW`]), so a phone clock 30 s off still works; the caller
//! records the step each code used and refuses any step not newer than
//! the last one, so a code works once.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps accepted on either side of the current one.
pub const WINDOW: i64 = 1;
/// A new secret's length in bytes: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// A shared secret, 16 to 64 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TotpError {
    #[error("a TOTP secret must be 16 to 64 bytes, not {0}")]
    Length(usize),
    #[error("a stored TOTP secret is not hex")]
    NotHex,
    #[error("a TOTP secret is written in base32 (A-Z, 2-7)")]
    NotBase32,
}

impl TotpSecret {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if !(16..=64).contains(&bytes.len()) {
            return Err(TotpError::Length(bytes.len()));
        }
        Ok(TotpSecret(bytes.to_vec()))
    }

    /// From its stored form (hex).
    pub fn from_hex(text: &str) -> Result<Self, TotpError> {
        Self::from_bytes(&hex::decode(text).map_err(|_| TotpError::NotHex)?)
    }

    /// Its stored form (hex).
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// From the form an app shows: base32, any case, spaces and padding
    /// ignored.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let (mut bytes, mut buffer, mut bits) = (Vec::new(), 0u32, 0u32);
        for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
            let value = BASE32
                .iter()
                .position(|b| char::from(*b) == c.to_ascii_uppercase())
                .ok_or(TotpError::NotBase32)?;
            buffer = (buffer << 5) | value as u32;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
            }
        }
        Self::from_bytes(&bytes)
    }

    /// The form people type into an app: base32 (RFC 4648), unpadded.
    pub fn to_base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://` URI an authenticator app reads from a QR code
    /// (Google Authenticator's key URI format).
    pub fn provisioning_uri(&self, issuer: &str, account: &str) -> String {
        let issuer = percent(issuer);
        format!(
            "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            percent(account),
            self.to_base32()
        )
    }

    /// The code for `step`, zero-padded to [`DIGITS`].
    pub fn code(&self, step: i64) -> String {
        format!(
            "{:0width$}",
            hotp(&self.0, step as u64, DIGITS),
            width = DIGITS as usize
        )
    }

    /// The step within [`WINDOW`] of `now` whose code `code` is, if any.
    /// Every step in the window is compared in full, so the time taken
    /// says nothing about which digits were right.
    pub fn matching_step(&self, code: &str, now: DateTime<Utc>) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = step_at(now);
        let mut found = None;
        for step in current - WINDOW..=current + WINDOW {
            let expected = self.code(step);
            let same = expected
                .bytes()
                .zip(code.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
            if same && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

/// The step `now` falls in.
pub fn step_at(now: DateTime<Utc>) -> i64 {
    now.timestamp().div_euclid(STEP_SECONDS)
}

/// HOTP (RFC 4226 section 5.3): HMAC-SHA1 of the big-endian counter,
/// dynamically truncated to `digits` decimal digits.
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset],
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]) & 0x7fff_ffff;
    word % 10u32.pow(digits)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn percent(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const RFC_KEY: &[u8] = b"12345678901234567890";

    #[test]
    fn hotp_matches_rfc_4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.into_iter().enumerate() {
            assert_eq!(hotp(RFC_KEY, counter as u64, 6), code, "counter {counter}");
        }
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_for_sha1() {
        // (Unix time, 8-digit code) from the RFC's table, SHA1 rows.
        let vectors = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        for (time, code) in vectors {
            let step = step_at(Utc.timestamp_opt(time, 0).unwrap());
            assert_eq!(hotp(RFC_KEY, step as u64, 8), code, "time {time}");
        }
    }

    #[test]
    fn a_code_matches_its_own_step_and_one_either_side_only() {
        let secret = TotpSecret::from_bytes(RFC_KEY).unwrap();
        let now = Utc.timestamp_opt(1_234_567_890, 0).unwrap();
        let current = step_at(now);
        for offset in -1..=1 {
            let code = secret.code(current + offset);
            assert_eq!(secret.matching_step(&code, now), Some(current + offset));
        }
        for offset in [-3, -2, 2, 3] {
            let code = secret.code(current + offset);
            // Six digits can repeat by chance across steps; these do not.
            assert_ne!(code, secret.code(current));
            assert_eq!(secret.matching_step(&code, now), None, "offset {offset}");
        }
        assert_eq!(secret.matching_step("12345", now), None);
        assert_eq!(secret.matching_step("abcdef", now), None);
        assert_eq!(secret.matching_step("", now), None);
    }

    #[test]
    fn codes_are_zero_padded_to_six_digits() {
        let secret = TotpSecret::from_bytes(RFC_KEY).unwrap();
        // Step 37037036 (time 1111111109) truncates to 081804.
        assert_eq!(secret.code(37_037_036), "081804");
    }

    #[test]
    fn base32_follows_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32(plain.as_bytes()), encoded);
        }
        let secret = TotpSecret::from_bytes(RFC_KEY).unwrap();
        assert_eq!(secret.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            TotpSecret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            secret
        );
        assert_eq!(
            TotpSecret::from_base32("GEZDGNBVGY3TQOJ1").unwrap_err(),
            TotpError::NotBase32
        );
    }

    #[test]
    fn the_provisioning_uri_names_issuer_account_and_parameters() {
        let secret = TotpSecret::from_bytes(RFC_KEY).unwrap();
        assert_eq!(
            secret.provisioning_uri("updown", "ana+ops@example.com"),
            "otpauth://totp/updown:ana%2Bops%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=updown&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn secrets_have_bounded_lengths_and_round_trip_through_hex() {
        assert_eq!(
            TotpSecret::from_bytes(&[0; 15]).unwrap_err(),
            TotpError::Length(15)
        );
        assert!(TotpSecret::from_bytes(&[0; 65]).is_err());
        let secret = TotpSecret::from_bytes(RFC_KEY).unwrap();
        assert_eq!(TotpSecret::from_hex(&secret.to_hex()).unwrap(), secret);
        assert_eq!(TotpSecret::from_hex("zz").unwrap_err(), TotpError::NotHex);
        assert_eq!(format!("{secret:?}"), "TotpSecret(..)");
    }
}
