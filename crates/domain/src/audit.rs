//! The audit log's hash chain: each row's hash covers its own fields and
//! the hash of the row before it, so a row edited, deleted, inserted or
//! moved behind the service's back breaks the chain from there on, and the
//! last hash (the head), kept outside, vouches for every row before it.
//!
//! A row's hash is SHA-256 over a fixed tag, the previous hash, and the
//! row's present fields, sorted by name, each as its name and value with
//! their lengths (u32, big-endian) before them. An absent field adds
//! nothing, so a field added to the log later (absent from older rows)
//! leaves their hashes as they were.

use sha2::{Digest, Sha256};

/// The hash before the first row: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Names a hash as belonging to this chain and its encoding.
const TAG: &[u8] = b"updown-audit-v1";

/// The hash of a row with `fields` (name, value; `None` when absent)
/// after the row whose hash is `prev_hash`, as lower-case hex.
pub fn chain_hash(prev_hash: &str, fields: &[(&str, Option<&str>)]) -> String {
    tagged_hash(TAG, prev_hash, fields)
}

/// [`chain_hash`] for a chain of its own, named by `tag`.
pub(crate) fn tagged_hash(tag: &[u8], prev_hash: &str, fields: &[(&str, Option<&str>)]) -> String {
    let mut present: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(name, value)| value.map(|v| (*name, v)))
        .collect();
    present.sort_unstable();
    let mut hasher = Sha256::new();
    hasher.update(tag);
    let mut put = |bytes: &[u8]| {
        hasher.update((bytes.len() as u32).to_be_bytes());
        hasher.update(bytes);
    };
    put(prev_hash.as_bytes());
    for (name, value) in present {
        put(name.as_bytes());
        put(value.as_bytes());
    }
    hex::encode(hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_the_order_and_the_previous_row() {
        let row = [
            ("id", Some("1")),
            ("action", Some("settle")),
            ("reason", Some("close was late")),
        ];
        let hash = chain_hash(GENESIS, &row);
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, chain_hash(GENESIS, &row), "deterministic");
        // Any field, the previous hash, or which field a value is in.
        assert_ne!(
            hash,
            chain_hash(GENESIS, &[("id", Some("2")), row[1], row[2]])
        );
        assert_ne!(hash, chain_hash(&hash, &row));
        assert_ne!(
            hash,
            chain_hash(
                GENESIS,
                &[
                    ("id", Some("1")),
                    ("action", Some("close was late")),
                    ("reason", Some("settle"))
                ]
            )
        );
        // Lengths keep "ab"+"c" apart from "a"+"bc".
        assert_ne!(
            chain_hash(GENESIS, &[("a", Some("bc"))]),
            chain_hash(GENESIS, &[("ab", Some("c"))])
        );
        // The order given does not matter; an absent field adds nothing,
        // and is not the same as an empty one.
        assert_eq!(hash, chain_hash(GENESIS, &[row[2], row[0], row[1]]));
        assert_eq!(
            hash,
            chain_hash(GENESIS, &[row[0], row[1], row[2], ("client", None)])
        );
        assert_ne!(
            hash,
            chain_hash(GENESIS, &[row[0], row[1], row[2], ("client", Some(""))])
        );
    }

    /// Pins the encoding: a change to it would break every stored chain.
    #[test]
    fn the_encoding_is_stable() {
        let mut hasher = Sha256::new();
        hasher.update(b"updown-audit-v1");
        for part in [GENESIS, "id", "7"] {
            hasher.update((part.len() as u32).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        assert_eq!(
            chain_hash(GENESIS, &[("id", Some("7"))]),
            hex::encode(hasher.finalize())
        );
    }
}
