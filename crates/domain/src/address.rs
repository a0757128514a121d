//! Ethereum addresses: `0x` and 40 hex digits, with the EIP-55 mixed-case
//! checksum verified when the address is written in mixed case.

use std::fmt;

use sha3::{Digest, Keccak256};
use thiserror::Error;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address([u8; 20]);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("address {0:?} must be 0x followed by 40 hexadecimal digits")]
    Malformed(String),
    #[error("address {0:?} fails its EIP-55 checksum (a mistyped letter?)")]
    BadChecksum(String),
}

impl Address {
    pub fn parse(text: &str) -> Result<Address, AddressError> {
        let text = text.trim();
        let hex = text
            .strip_prefix("0x")
            .filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| AddressError::Malformed(text.to_string()))?;
        let mut bytes = [0u8; 20];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| AddressError::Malformed(text.to_string()))?;
        }
        let address = Address(bytes);
        let all_lower = hex.bytes().all(|b| !b.is_ascii_uppercase());
        let all_upper = hex.bytes().all(|b| !b.is_ascii_lowercase());
        if !(all_lower || all_upper) && address.to_checksum() != text {
            return Err(AddressError::BadChecksum(text.to_string()));
        }
        Ok(address)
    }

    pub fn from_bytes(bytes: [u8; 20]) -> Address {
        Address(bytes)
    }

    pub fn to_bytes(&self) -> [u8; 20] {
        self.0
    }

    /// The EIP-55 checksummed form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = Keccak256::digest(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            out.push(if c.is_ascii_alphabetic() && nibble >= 8 {
                c.to_ascii_uppercase()
            } else {
                c
            });
        }
        out
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.to_checksum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test vectors of EIP-55 itself.
    const VECTORS: &[&str] = &[
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn eip55_vectors_round_trip() {
        for vector in VECTORS {
            let address = Address::parse(vector).unwrap();
            assert_eq!(&address.to_checksum(), vector);
        }
    }

    #[test]
    fn single_case_addresses_are_accepted_without_checksum() {
        let lower = VECTORS[0].to_ascii_lowercase();
        assert_eq!(Address::parse(&lower).unwrap().to_checksum(), VECTORS[0]);
    }

    #[test]
    fn a_changed_letter_case_fails_the_checksum() {
        let tampered = VECTORS[0].replacen("aA", "Aa", 1);
        assert!(matches!(
            Address::parse(&tampered),
            Err(AddressError::BadChecksum(_))
        ));
        assert!(matches!(
            Address::parse("0x1234"),
            Err(AddressError::Malformed(_))
        ));
        assert!(matches!(
            Address::parse("5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
            Err(AddressError::Malformed(_))
        ));
    }
}
