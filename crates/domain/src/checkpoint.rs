//! Checkpoints of the ledger, for an incremental `verify`.
//!
//! A checkpoint vouches for every ledger transaction up to one id: each was
//! checked, and it carries every account's total of entries up to there.
//! The next verify checks only what came after and adds it to those totals.
//!
//! Two hashes protect what the checkpoint carries:
//! - the totals' digest: the wrapping sum of [`term`] over every (account,
//!   total), which a verify keeps up to date by taking an account's old term
//!   out and putting its new one in, and which a full verify recomputes
//!   from the stored totals;
//! - the checkpoint's hash: SHA-256 over its fields and the previous
//!   checkpoint's hash, as the audit log's rows are chained
//!   ([`crate::audit`]), so an edited checkpoint no longer gives its hash.

use sha2::{Digest as _, Sha256};

pub use crate::audit::GENESIS;

/// Names a hash as a checkpoint's, and its encoding.
const TAG: &[u8] = b"updown-checkpoint-v1";

/// One account's term in the digest: the first 8 bytes of SHA-256 over its
/// id and total (both i64, big-endian).
pub fn term(account: i64, total: i64) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(account.to_be_bytes());
    hasher.update(total.to_be_bytes());
    let hash = hasher.finalize();
    u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"))
}

/// The digest of a set of (account, total): order does not matter, and one
/// account's change is two terms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TotalsDigest(pub u64);

impl TotalsDigest {
    /// Kept in a BIGINT column: the same 64 bits, signed.
    pub fn from_stored(stored: i64) -> Self {
        Self(stored as u64)
    }

    pub fn stored(self) -> i64 {
        self.0 as i64
    }

    pub fn add(&mut self, account: i64, total: i64) {
        self.0 = self.0.wrapping_add(term(account, total));
    }

    pub fn remove(&mut self, account: i64, total: i64) {
        self.0 = self.0.wrapping_sub(term(account, total));
    }
}

/// What a checkpoint says, as its hash covers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointFields<'a> {
    pub id: i64,
    pub through_tx: i64,
    pub transactions: i64,
    pub entries: i64,
    pub totals_digest: TotalsDigest,
    /// RFC 3339, as stored.
    pub created_at: &'a str,
}

/// The checkpoint's hash after the one whose hash is `prev_hash`
/// ([`GENESIS`] for the first), as lower-case hex.
pub fn hash(prev_hash: &str, fields: &CheckpointFields<'_>) -> String {
    let numbers = [
        fields.id,
        fields.through_tx,
        fields.transactions,
        fields.entries,
        fields.totals_digest.stored(),
    ]
    .map(|n| n.to_string());
    crate::audit::tagged_hash(
        TAG,
        prev_hash,
        &[
            ("id", Some(&numbers[0])),
            ("through_tx", Some(&numbers[1])),
            ("transactions", Some(&numbers[2])),
            ("entries", Some(&numbers[3])),
            ("totals_digest", Some(&numbers[4])),
            ("created_at", Some(fields.created_at)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_order_and_follows_every_change() {
        let mut a = TotalsDigest::default();
        a.add(1, 100);
        a.add(2, -100);
        let mut b = TotalsDigest::default();
        b.add(2, -100);
        b.add(1, 100);
        assert_eq!(a, b);
        // Account 1 moves from 100 to 70.
        a.remove(1, 100);
        a.add(1, 70);
        assert_ne!(a, b);
        let mut c = TotalsDigest::default();
        c.add(1, 70);
        c.add(2, -100);
        assert_eq!(a, c);
        // Which account holds a total matters, not only the totals.
        let mut d = TotalsDigest::default();
        d.add(2, 70);
        d.add(1, -100);
        assert_ne!(c, d);
        assert_eq!(TotalsDigest::from_stored(c.stored()), c);
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_checkpoint() {
        let fields = CheckpointFields {
            id: 1,
            through_tx: 10,
            transactions: 10,
            entries: 21,
            totals_digest: TotalsDigest(7),
            created_at: "2026-11-30T08:00:00Z",
        };
        let first = hash(GENESIS, &fields);
        assert_eq!(first.len(), 64);
        assert_eq!(first, hash(GENESIS, &fields));
        assert_ne!(first, hash(&first, &fields));
        let changed = [
            CheckpointFields {
                id: 2,
                ..fields.clone()
            },
            CheckpointFields {
                through_tx: 11,
                ..fields.clone()
            },
            CheckpointFields {
                transactions: 9,
                ..fields.clone()
            },
            CheckpointFields {
                entries: 20,
                ..fields.clone()
            },
            CheckpointFields {
                totals_digest: TotalsDigest(8),
                ..fields.clone()
            },
            CheckpointFields {
                created_at: "2026-11-30T08:00:01Z",
                ..fields.clone()
            },
        ];
        for other in changed {
            assert_ne!(first, hash(GENESIS, &other), "{other:?}");
        }
    }
}
