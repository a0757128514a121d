//! Checkpoints of the ledger, for an incremental `verify`.
//!
//! A checkpoint vouches for every ledger transaction up to one id: each was
//! checked, and it carries every account's total of entries up to there.
//! The next verify checks only what came after and adds it to those totals.
//!
//! Two hashes protect what the checkpoint carries:
//! - the balances' digest: the wrapping sum of [`term`] over every account
//!   and its balance at the checkpoint. The next verify recomputes it from
//!   the cached balances it reads less the entries since, so one sum checks
//!   every account, touched or not. A full verify recomputes it from the
//!   entries up to the checkpoint;
//! - the checkpoint's hash: SHA-256 over its fields and the previous
//!   checkpoint's hash, as the audit log's rows are chained
//!   ([`crate::audit`]), so an edited checkpoint no longer gives its hash.

use crate::audit::GENESIS as AUDIT_GENESIS;

/// The hash before the first checkpoint: 64 zeros.
pub const GENESIS: &str = AUDIT_GENESIS;

/// Names a hash as a checkpoint's, and its encoding.
const TAG: &[u8] = b"updown-checkpoint-v1";

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One account's term in the digest: 0 for a zero balance (so an account
/// opened later, empty at the checkpoint, adds nothing), otherwise a 64-bit
/// mix of the account and the balance. It finds accidents and changes made
/// without rewriting the checkpoint; it is no defence against someone who
/// rewrites both (a full verify recomputes the digest from the entries).
/// Fixed forever: stored digests depend on it.
pub fn term(account: i64, balance: i64) -> u64 {
    if balance == 0 {
        return 0;
    }
    mix(mix(account as u64) ^ balance as u64)
}

/// The digest of a set of (account, balance): order does not matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalancesDigest(pub u64);

impl BalancesDigest {
    /// Kept in a BIGINT column: the same 64 bits, signed.
    pub fn from_stored(stored: i64) -> Self {
        Self(stored as u64)
    }

    pub fn stored(self) -> i64 {
        self.0 as i64
    }

    pub fn add(&mut self, account: i64, balance: i64) {
        self.0 = self.0.wrapping_add(term(account, balance));
    }
}

/// What a checkpoint says, as its hash covers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointFields<'a> {
    pub id: i64,
    pub through_tx: i64,
    pub transactions: i64,
    pub entries: i64,
    pub balances_digest: BalancesDigest,
    /// The rounds not settled or void then, as stored ("3,4"), and the
    /// last round: a round settled since is checked in full next time.
    pub unsettled_rounds: &'a str,
    pub last_round: i64,
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
        fields.balances_digest.stored(),
        fields.last_round,
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
            ("balances_digest", Some(&numbers[4])),
            ("unsettled_rounds", Some(fields.unsettled_rounds)),
            ("last_round", Some(&numbers[5])),
            ("created_at", Some(fields.created_at)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_ignores_order_and_zero_balances_and_sees_any_change() {
        let digest = |pairs: &[(i64, i64)]| {
            let mut d = BalancesDigest::default();
            for (account, balance) in pairs {
                d.add(*account, *balance);
            }
            d
        };
        let base = digest(&[(1, 100), (2, -100)]);
        assert_eq!(base, digest(&[(2, -100), (1, 100)]));
        assert_eq!(base, digest(&[(2, -100), (3, 0), (1, 100)]));
        assert_eq!(BalancesDigest::default(), digest(&[(7, 0)]));
        // Any balance, or which account holds it.
        for other in [
            [(1, 99), (2, -100)],
            [(1, 100), (2, -99)],
            [(2, 100), (1, -100)],
            [(1, 101), (2, -101)],
        ] {
            assert_ne!(base, digest(&other), "{other:?}");
        }
        // Fixed forever: stored digests depend on these bits.
        assert_eq!(
            term(1, 100),
            0xf34a_c111_82da_0122_u64,
            "{:#x}",
            term(1, 100)
        );
        assert_eq!(BalancesDigest::from_stored(base.stored()), base);
    }

    #[test]
    fn the_hash_covers_every_field_and_the_previous_checkpoint() {
        let fields = CheckpointFields {
            id: 1,
            through_tx: 10,
            transactions: 10,
            entries: 21,
            balances_digest: BalancesDigest(7),
            unsettled_rounds: "3",
            last_round: 3,
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
                balances_digest: BalancesDigest(8),
                ..fields.clone()
            },
            CheckpointFields {
                unsettled_rounds: "2,3",
                ..fields.clone()
            },
            CheckpointFields {
                last_round: 4,
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
