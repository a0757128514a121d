//! API keys: 32 random bytes shown once (`ud_` + 64 hex digits), stored only
//! as their SHA-256 hash. A key is high-entropy, so a fast hash suffices;
//! people's passwords get a slow one.

use sha2::{Digest, Sha256};
use updown_domain::ids::UserId;
use updown_store::User;

use super::App;
use crate::error::{AppError, AppResult};
use crate::events::EventKind;

const KEY_PREFIX: &str = "ud_";

/// SHA-256 of a high-entropy token (API key, session), as stored.
pub(super) fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn new_key() -> AppResult<String> {
    Ok(format!("{KEY_PREFIX}{}", random_hex()?))
}

/// 32 random bytes as 64 hex digits (API keys, a development admin token).
pub fn random_hex() -> AppResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness available: {e}")))?;
    Ok(hex::encode(bytes))
}

impl App {
    /// Creates a user and their first API key; the key is returned once.
    pub async fn create_user_with_key(&self, email: &str) -> AppResult<(User, i64, String)> {
        let user = self.create_user(email).await?;
        let (id, key) = self.new_api_key(user.id).await?;
        Ok((user, id, key))
    }

    /// A new key for `user`; the plain key is returned once and not kept.
    pub async fn new_api_key(&self, user: UserId) -> AppResult<(i64, String)> {
        let key = new_key()?;
        let prefix: String = key.chars().take(KEY_PREFIX.len() + 6).collect();
        let id = self
            .store
            .create_api_key(user, &prefix, &hash(&key), self.clock.now())
            .await?;
        tracing::info!(event = "api_key_created", user = %user, key = id, prefix);
        Ok((id, key))
    }

    pub async fn revoke_api_key(&self, user: UserId, key: i64) -> AppResult<()> {
        self.store
            .revoke_api_key(user, key, self.clock.now())
            .await?;
        self.credentials.forget_user(user);
        tracing::info!(event = "api_key_revoked", user = %user, key);
        self.publish_for(
            user,
            EventKind::CredentialsChanged,
            serde_json::json!({ "revoked_key": key }),
            None,
        );
        Ok(())
    }

    /// The user a presented key belongs to; any unknown, malformed or
    /// revoked key is the same refusal.
    pub async fn authenticate(&self, key: &str) -> AppResult<User> {
        let refused = || AppError::Unauthorized("missing or invalid API key".into());
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return Err(refused());
        }
        let hashed = hash(key);
        if let Some(user) = self.credentials.get(&hashed) {
            return Ok(user);
        }
        let user = self
            .store
            .user_by_api_key(&hashed)
            .await?
            .ok_or_else(refused)?;
        self.credentials.put(hashed, user.clone());
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("ud_") && a.len() == 3 + 64, "{a}");
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
    }
}
