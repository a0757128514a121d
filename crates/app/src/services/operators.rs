//! Operators as people: named accounts with a role, managed from the
//! command line, each with personal tokens (`op_` + 64 hex digits, shown
//! once, kept as SHA-256) for the admin API and scripts. `ADMIN_TOKEN`
//! stays as break-glass: the admin role, audited at every use, and with
//! UPDOWN_ENV=production refused once an enabled admin operator exists.

use chrono::{DateTime, Duration, Utc};
use updown_domain::ids::Email;
use updown_domain::operator::Role;
use updown_domain::totp::{TotpSecret, SECRET_BYTES};
use updown_store::{Operator, OperatorToken};

use super::keys::{hash, random_hex};
use super::sessions::{check_password, decoy_verify, verify_password};
use super::App;
use crate::error::{AppError, AppResult};

const TOKEN_PREFIX: &str = "op_";
/// Console session tokens start with this (players' start with `uds_`).
const SESSION_PREFIX: &str = "ops_";
/// How long a console session lasts from sign-in: a working day.
pub const OPERATOR_SESSION_TTL: Duration = Duration::hours(12);
/// Wrong passwords or codes in a row that lock an operator's sign-in...
pub const LOCK_AFTER: i32 = 5;
/// ...for this long.
pub const LOCK_FOR: Duration = Duration::minutes(15);
/// The issuer an authenticator app shows next to the codes.
const TOTP_ISSUER: &str = "updown";
/// What the audit log names a break-glass actor by.
pub const BREAK_GLASS: &str = "break-glass";

/// Who is acting on the admin API, and with what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staff {
    /// The operator's email, or `break-glass`.
    pub actor: String,
    pub role: Role,
    /// `token:<id>` or `break-glass`.
    pub credential: String,
}

impl Staff {
    pub fn is_break_glass(&self) -> bool {
        self.credential == BREAK_GLASS
    }

    /// The name recorded for an action: the operator's own; with the
    /// break-glass token, the name the caller gave (or `admin`) marked as
    /// break-glass.
    pub fn actor_for(&self, declared: Option<&str>) -> String {
        if self.is_break_glass() {
            format!("{} ({BREAK_GLASS})", declared.unwrap_or("admin"))
        } else {
            self.actor.clone()
        }
    }
}

fn email(text: &str) -> AppResult<Email> {
    Email::parse(text).map_err(|e| AppError::Invalid(e.to_string()))
}

/// A fresh password: 24 random hex digits (96 bits), shown once.
fn new_password() -> AppResult<String> {
    Ok(random_hex()?[..24].to_string())
}

/// A second factor being set up: what the operator's app needs.
pub struct TotpSetup {
    /// The secret in base32, to type in by hand.
    pub secret: String,
    /// The `otpauth://` URI, drawn as a QR code.
    pub uri: String,
}

/// A console sign-in that worked.
pub struct OperatorSignIn {
    pub operator: Operator,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl App {
    /// Signs an operator in to the console with their password and, once
    /// set up, a one-time code: a session token, returned once. Each wrong
    /// password or code counts; the fifth in a row locks sign-in for 15
    /// minutes. A code works once (its step is recorded conditionally).
    pub async fn operator_sign_in(
        &self,
        address: &str,
        password: &str,
        code: Option<&str>,
    ) -> AppResult<OperatorSignIn> {
        let refused = || AppError::Unauthorized("wrong email or password".into());
        let now = self.clock.now();
        let found = match Email::parse(address) {
            Ok(address) => match self.store.operator_by_email(&address).await {
                Ok(operator) => Some(operator),
                Err(updown_store::StoreError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            },
            Err(_) => None,
        };
        let operator = match found {
            Some(operator) if operator.disabled_at.is_none() && password.len() <= 512 => operator,
            _ => {
                decoy_verify(password).await?;
                return Err(refused());
            }
        };
        if let Some(until) = operator.locked_until.filter(|until| *until > now) {
            return Err(AppError::Unauthorized(format!(
                "too many failed sign-ins: {} is locked until {}",
                operator.email,
                crate::wire::instant(until)
            )));
        }
        let stored = operator.password_hash.clone().unwrap_or_default();
        if !verify_password(password.to_string(), stored).await {
            self.sign_in_failed(&operator, "password").await?;
            return Err(refused());
        }
        if let Some(secret) = &operator.totp_secret {
            let secret = TotpSecret::from_hex(secret).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("operator {}: {e}", operator.id))
            })?;
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                return Err(AppError::Unauthorized(
                    "this account signs in with a one-time code too: send `code` from your authenticator app"
                        .into(),
                ));
            };
            let used = match secret.matching_step(code, now) {
                Some(step) => self.store.use_totp_step(operator.id, step).await?,
                None => false,
            };
            if !used {
                self.sign_in_failed(&operator, "code").await?;
                return Err(AppError::Unauthorized(
                    "wrong, expired or already used one-time code".into(),
                ));
            }
        }
        self.store.clear_sign_in_failures(operator.id).await?;
        let token = format!("{SESSION_PREFIX}{}", random_hex()?);
        let expires_at = now + OPERATOR_SESSION_TTL;
        let entry = |session: i64| {
            self.audit_entry(
                operator.email.as_str(),
                "operator_sign_in",
                format!("session {session}"),
                None,
            )
        };
        let session = self
            .store
            .create_operator_session(operator.id, &hash(&token), now, expires_at, Some(&entry))
            .await?;
        tracing::info!(event = "operator_signed_in", operator = %operator.email, session);
        Ok(OperatorSignIn {
            operator,
            token,
            expires_at,
        })
    }

    /// Counts a failed sign-in; the one that locks is audited.
    async fn sign_in_failed(&self, operator: &Operator, what: &str) -> AppResult<()> {
        let now = self.clock.now();
        // Recorded by the store only with the failure that locks.
        let locked = self.audit_entry(
            operator.email.as_str(),
            "operator_locked",
            format!("operator {}", operator.email),
            Some(format!("{LOCK_AFTER} failed sign-ins in a row")),
        );
        let counted = self
            .store
            .record_sign_in_failure(operator.id, LOCK_AFTER, now + LOCK_FOR, Some(&locked))
            .await;
        tracing::info!(event = "operator_sign_in_refused", operator = %operator.email, wrong = what);
        if let Err(e) = counted {
            // The lock matters more than its entry: with the audit log
            // unwritable, guessing must not go on unlimited. Count the
            // failure without it (twice, at worst, which locks sooner).
            self.store
                .record_sign_in_failure(operator.id, LOCK_AFTER, now + LOCK_FOR, None)
                .await?;
            return Err(e.into());
        }
        Ok(())
    }

    /// Who a console session is: an enabled operator's open session.
    pub async fn staff_by_session(&self, token: &str) -> AppResult<Staff> {
        let refused = || AppError::Unauthorized("your session has ended; sign in again".into());
        if !token.starts_with(SESSION_PREFIX) || token.len() > 128 {
            return Err(refused());
        }
        let (operator, session) = self
            .store
            .operator_by_session(&hash(token), self.clock.now())
            .await?
            .ok_or_else(refused)?;
        Ok(Staff {
            actor: operator.email.to_string(),
            role: operator.role,
            credential: format!("session:{session}"),
        })
    }

    pub async fn operator_sign_out(&self, token: &str) -> AppResult<()> {
        self.store
            .end_operator_session(&hash(token), self.clock.now())
            .await?;
        Ok(())
    }

    /// The named operator acting (not break-glass, which has no account).
    pub async fn operator_of(&self, staff: &Staff) -> AppResult<Operator> {
        if staff.is_break_glass() {
            return Err(AppError::Rejected(
                "the break-glass token has no operator account: sign in as a named operator".into(),
            ));
        }
        Ok(self.store.operator_by_email(&email(&staff.actor)?).await?)
    }

    /// Starts setting up a second factor: a new secret, pending until a
    /// code from it confirms it ([`App::confirm_totp`]); replaces any
    /// earlier pending secret. Refused once two-factor is on (an admin
    /// resets it for a new phone).
    pub async fn begin_totp(&self, staff: &Staff) -> AppResult<TotpSetup> {
        let operator = self.operator_of(staff).await?;
        if operator.totp_secret.is_some() {
            // Someone holding a stolen session must not swap the factor.
            return Err(AppError::Conflict(
                "two-factor is on already: to move it to another phone, an admin resets it first \
                 (updown operator reset-totp, or the console)"
                    .into(),
            ));
        }
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("no randomness available: {e}")))?;
        let secret = TotpSecret::from_bytes(&bytes)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
        self.store
            .set_totp_pending(operator.id, &secret.to_hex())
            .await?;
        Ok(TotpSetup {
            secret: secret.to_base32(),
            uri: secret.provisioning_uri(TOTP_ISSUER, operator.email.as_str()),
        })
    }

    /// Confirms the pending secret with a code from it: from then on,
    /// signing in needs a code.
    pub async fn confirm_totp(&self, staff: &Staff, code: &str) -> AppResult<()> {
        let operator = self.operator_of(staff).await?;
        let Some(pending) = &operator.totp_pending else {
            return Err(AppError::Conflict(
                "nothing to confirm: start setting up two-factor first".into(),
            ));
        };
        let secret = TotpSecret::from_hex(pending)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("operator {}: {e}", operator.id)))?;
        let entry = self.audit_entry(
            operator.email.as_str(),
            "operator_totp_on",
            format!("operator {}", operator.email),
            None,
        );
        let confirmed = match secret.matching_step(code, self.clock.now()) {
            Some(step) => {
                self.store
                    .confirm_totp(operator.id, step, Some(&entry))
                    .await?
            }
            None => false,
        };
        if !confirmed {
            return Err(AppError::Rejected(
                "that code does not match the new secret (check the phone's clock), or was used"
                    .into(),
            ));
        }
        Ok(())
    }

    /// An operator changes their own password (the generated one, say):
    /// the current one is needed; every session ends, this one included.
    pub async fn change_operator_password(
        &self,
        staff: &Staff,
        current: &str,
        new: &str,
    ) -> AppResult<()> {
        let operator = self.operator_of(staff).await?;
        if let Some(until) = operator
            .locked_until
            .filter(|until| *until > self.clock.now())
        {
            return Err(AppError::Unauthorized(format!(
                "too many wrong passwords or codes: locked until {}",
                crate::wire::instant(until)
            )));
        }
        let stored = operator.password_hash.clone().unwrap_or_default();
        if current.len() > 512 || !verify_password(current.to_string(), stored).await {
            self.sign_in_failed(&operator, "password").await?;
            return Err(AppError::Unauthorized(
                "the current password is wrong".into(),
            ));
        }
        check_password(new)?;
        let hashed = super::sessions::hash_password(new.to_string()).await?;
        let entry = self.audit_entry(
            operator.email.as_str(),
            "operator_password",
            format!("operator {}", operator.email),
            None,
        );
        self.store
            .set_operator_password(&operator.email, &hashed, self.clock.now(), Some(&entry))
            .await?;
        Ok(())
    }

    /// Removes an operator's second factor (a lost phone) and ends their
    /// sessions; they set it up again at their next sign-in.
    pub async fn reset_operator_totp(
        &self,
        address: &str,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        let address = email(address)?;
        let entry = self.audit_entry(
            by,
            "operator_reset_totp",
            format!("operator {address}"),
            Some(reason.to_string()),
        );
        Ok(self
            .store
            .clear_totp(&address, self.clock.now(), Some(&entry))
            .await?)
    }

    /// Adds an operator with a generated password, returned once.
    pub async fn add_operator(
        &self,
        address: &str,
        role: Role,
        by: &str,
    ) -> AppResult<(Operator, String)> {
        let address = email(address)?;
        let password = new_password()?;
        let hashed = super::sessions::hash_password(password.clone()).await?;
        let entry = self.audit_entry(
            by,
            "operator_add",
            format!("operator {address} as {}", role.as_str()),
            None,
        );
        let operator = self
            .store
            .create_operator(&address, role, &hashed, self.clock.now(), Some(&entry))
            .await?;
        self.operator_changed();
        tracing::info!(event = "operator_added", operator = %address, role = role.as_str(), by);
        Ok((operator, password))
    }

    /// Where a crash test kills the process: an operator added, given a
    /// role or disabled, committed with its audit entry, nothing told yet.
    fn operator_changed(&self) {
        crate::faults::crash_point("operator_after_commit", self.config.production);
    }

    pub async fn operators(&self) -> AppResult<Vec<Operator>> {
        Ok(self.store.operators().await?)
    }

    /// Changes a role (from the host: even the last admin's).
    pub async fn set_operator_role(
        &self,
        address: &str,
        role: Role,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        self.change_role(address, role, by, reason, false).await
    }

    /// Changes a role, refused if it would leave no enabled admin (the
    /// console's way: nobody locks every admin out over HTTP).
    pub async fn set_operator_role_keeping_an_admin(
        &self,
        address: &str,
        role: Role,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        self.change_role(address, role, by, reason, true).await
    }

    async fn change_role(
        &self,
        address: &str,
        role: Role,
        by: &str,
        reason: &str,
        keep_an_admin: bool,
    ) -> AppResult<Operator> {
        let address = email(address)?;
        // Written from the row as the store holds it, so two operators
        // changing one role at once each record what they changed from.
        let entry = |before: &Operator| {
            self.audit_entry(
                by,
                "operator_set_role",
                format!(
                    "operator {address}: {} -> {}",
                    before.role.as_str(),
                    role.as_str()
                ),
                Some(reason.to_string()),
            )
        };
        let changed = self
            .store
            .set_operator_role(&address, role, keep_an_admin, Some(&entry))
            .await?;
        self.operator_changed();
        Ok(changed)
    }

    /// Disables an operator, revokes their tokens and ends their sessions
    /// (from the host: even the last admin).
    pub async fn disable_operator(
        &self,
        address: &str,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        self.disable(address, by, reason, false).await
    }

    /// Disables an operator, refused if it would leave no enabled admin.
    pub async fn disable_operator_keeping_an_admin(
        &self,
        address: &str,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        self.disable(address, by, reason, true).await
    }

    async fn disable(
        &self,
        address: &str,
        by: &str,
        reason: &str,
        keep_an_admin: bool,
    ) -> AppResult<Operator> {
        let address = email(address)?;
        let entry = self.audit_entry(
            by,
            "operator_disable",
            format!("operator {address}"),
            Some(reason.to_string()),
        );
        let disabled = self
            .store
            .disable_operator(&address, self.clock.now(), keep_an_admin, Some(&entry))
            .await?;
        self.operator_changed();
        Ok(disabled)
    }

    /// A new generated password for an operator, returned once.
    pub async fn reset_operator_password(
        &self,
        address: &str,
        by: &str,
    ) -> AppResult<(Operator, String)> {
        let address = email(address)?;
        let password = new_password()?;
        let hashed = super::sessions::hash_password(password.clone()).await?;
        let entry = self.audit_entry(
            by,
            "operator_reset_password",
            format!("operator {address}"),
            None,
        );
        let operator = self
            .store
            .set_operator_password(&address, &hashed, self.clock.now(), Some(&entry))
            .await?;
        Ok((operator, password))
    }

    /// A personal token for an operator's scripts, returned once.
    pub async fn new_operator_token(
        &self,
        address: &str,
        name: &str,
        by: &str,
    ) -> AppResult<(i64, String)> {
        let address = email(address)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 {
            return Err(AppError::Invalid(
                "a token's name must be 1 to 64 characters".into(),
            ));
        }
        let operator = self.store.operator_by_email(&address).await?;
        let token = format!("{TOKEN_PREFIX}{}", random_hex()?);
        let entry = |id: i64| {
            self.audit_entry(
                by,
                "operator_token",
                format!("operator {address}: token {id} ({name})"),
                None,
            )
        };
        let id = self
            .store
            .create_operator_token(
                operator.id,
                name,
                &hash(&token),
                self.clock.now(),
                Some(&entry),
            )
            .await?;
        Ok((id, token))
    }

    /// The signed-in operator's own tokens (never the tokens themselves).
    pub async fn my_tokens(&self, staff: &Staff) -> AppResult<Vec<OperatorToken>> {
        let operator = self.operator_of(staff).await?;
        Ok(self.store.operator_tokens(operator.id).await?)
    }

    /// A token for the signed-in operator's own scripts, returned once.
    pub async fn new_my_token(&self, staff: &Staff, name: &str) -> AppResult<(i64, String)> {
        let operator = self.operator_of(staff).await?;
        self.new_operator_token(operator.email.as_str(), name, &staff.actor)
            .await
    }

    /// Revokes one of the signed-in operator's own tokens.
    pub async fn revoke_my_token(&self, staff: &Staff, token: i64) -> AppResult<()> {
        let operator = self.operator_of(staff).await?;
        let entry = self.audit_entry(
            &staff.actor,
            "operator_token_revoke",
            format!("operator {}: token {token}", operator.email),
            None,
        );
        self.store
            .revoke_operator_token(operator.id, token, self.clock.now(), Some(&entry))
            .await?;
        Ok(())
    }

    /// Who a bearer credential is: the break-glass admin token, or an
    /// enabled operator's unrevoked token.
    pub async fn staff_by_bearer(&self, presented: &str) -> AppResult<Staff> {
        if crate::api::auth::is_admin(self, presented) {
            if self.config.production && self.store.count_admins().await? > 0 {
                return Err(AppError::Unauthorized(
                    "ADMIN_TOKEN is break-glass: with UPDOWN_ENV=production it is refused once an admin operator \
                     exists; use your own operator token"
                        .into(),
                ));
            }
            return Ok(Staff {
                actor: BREAK_GLASS.into(),
                role: Role::Admin,
                credential: BREAK_GLASS.into(),
            });
        }
        if presented.starts_with(TOKEN_PREFIX) {
            if let Some((operator, token)) = self.store.operator_by_token(&hash(presented)).await? {
                return Ok(Staff {
                    actor: operator.email.to_string(),
                    role: operator.role,
                    credential: format!("token:{token}"),
                });
            }
        }
        Err(AppError::Unauthorized(
            "this route needs an operator's token (updown operator token) or the admin token"
                .into(),
        ))
    }
}
