//! Who an API key (by hash) belongs to, kept in memory for a moment:
//! every authenticated request needs it, and a database round trip each
//! time costs the hot route (bets) much of its throughput. A revoked key
//! or new limits take effect at once here, and on the other instances as
//! soon as the `credentials_changed` event reaches them through Redis;
//! `TTL` (30 s) bounds the delay should that event be lost. Money is never
//! decided from this copy: bets re-read the player's balance and limits
//! under lock. Sessions are not cached (they expire by the clock).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use updown_domain::ids::UserId;
use updown_store::User;

/// How long a looked-up credential is trusted without asking again.
pub const TTL: Duration = Duration::from_secs(30);
/// Entries kept at most; past this the cache starts over.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, (User, Instant)>>,
}

impl CredentialCache {
    pub fn get(&self, hash: &str) -> Option<User> {
        let entries = self.entries.lock().expect("credential cache");
        let (user, at) = entries.get(hash)?;
        (at.elapsed() < TTL).then(|| user.clone())
    }

    pub fn put(&self, hash: String, user: User) {
        let mut entries = self.entries.lock().expect("credential cache");
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(hash, (user, Instant::now()));
    }

    /// Forgets every credential of `user` (a key revoked, limits changed).
    pub fn forget_user(&self, user: UserId) {
        self.entries
            .lock()
            .expect("credential cache")
            .retain(|_, (cached, _)| cached.id != user);
    }

    /// Forgets everything (when events about it may have been missed).
    pub fn clear(&self) {
        self.entries.lock().expect("credential cache").clear();
    }
}
