//! People signing in to the web pages: passwords hashed with argon2id
//! (OWASP's parameters: 19 MiB, 2 passes), and sessions that are random
//! tokens stored as their SHA-256 hash, sent back as a cookie, expiring.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::Duration;
use updown_domain::ids::{Email, UserId};
use updown_store::User;

use super::keys::{hash, random_hex};
use super::App;
use crate::error::{AppError, AppResult};

/// How long a session lasts from sign-in.
pub const SESSION_TTL: Duration = Duration::days(7);
/// Session tokens start with this, so they are told from API keys.
const SESSION_PREFIX: &str = "uds_";
const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 128;

/// Checks a new password's length (in characters).
pub fn check_password(password: &str) -> AppResult<()> {
    let length = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&length) {
        return Err(AppError::Invalid(format!(
            "a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}

/// argon2id, in the blocking pool: about 20 ms of CPU and 19 MiB each.
pub(super) async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness available: {e}")))?;
        let salt = SaltString::encode_b64(&salt)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("password hash: {e}")))
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("password hash task: {e}")))?
}

/// Whether `password` matches the PHC string `stored`; a malformed stored
/// hash never matches.
pub(super) async fn verify_password(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Hashed once per process: verified against when the email is unknown,
/// so a wrong email takes as long as a wrong password.
static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Spends the time a password check takes, for an unknown account.
pub(super) async fn decoy_verify(password: &str) -> AppResult<()> {
    let decoy = DECOY
        .get_or_try_init(|| hash_password("decoy password".into()))
        .await?;
    verify_password(password.to_string(), decoy.clone()).await;
    Ok(())
}

impl App {
    /// Sets a user's password (checked, then hashed).
    pub async fn set_password(&self, user: UserId, password: &str) -> AppResult<()> {
        check_password(password)?;
        let hashed = hash_password(password.to_string()).await?;
        self.store.set_password_hash(user, &hashed).await?;
        Ok(())
    }

    /// Signs a person in: their user and a new session token (returned
    /// once). Unknown email and wrong password are the same refusal.
    pub async fn sign_in(&self, email: &str, password: &str) -> AppResult<(User, String)> {
        let refused = || AppError::Unauthorized("wrong email or password".into());
        if password.len() > 4 * MAX_PASSWORD {
            return Err(refused());
        }
        let found = match Email::parse(email) {
            Ok(email) => self.store.password_hash(&email).await?,
            Err(_) => None,
        };
        let Some((user, Some(stored))) = found else {
            decoy_verify(password).await?;
            return Err(refused());
        };
        if !verify_password(password.to_string(), stored).await {
            tracing::info!(event = "sign_in_refused", user = %user.id);
            return Err(refused());
        }
        let token = format!("{SESSION_PREFIX}{}", random_hex()?);
        let now = self.clock.now();
        self.store
            .create_session(user.id, &hash(&token), now, now + SESSION_TTL)
            .await?;
        tracing::info!(event = "signed_in", user = %user.id);
        Ok((user, token))
    }

    /// The user a session token belongs to, while it lasts.
    pub async fn session_user(&self, token: &str) -> AppResult<User> {
        let refused = || AppError::Unauthorized("your session has ended; sign in again".into());
        if !token.starts_with(SESSION_PREFIX) || token.len() > 128 {
            return Err(refused());
        }
        self.store
            .user_by_session(&hash(token), self.clock.now())
            .await?
            .ok_or_else(refused)
    }

    pub async fn sign_out(&self, token: &str) -> AppResult<()> {
        self.store
            .end_session(&hash(token), self.clock.now())
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify_only_themselves() {
        let stored = hash_password("correct horse".into()).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify_password("correct horse".into(), stored.clone()).await);
        assert!(!verify_password("correct horsE".into(), stored.clone()).await);
        assert_ne!(
            hash_password("correct horse".into()).await.unwrap(),
            stored,
            "salted"
        );
        assert!(!verify_password("x".into(), "not a hash".into()).await);
    }

    #[test]
    fn passwords_have_bounded_lengths() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"é".repeat(128)).is_ok());
        assert!(check_password(&"a".repeat(129)).is_err());
    }
}
