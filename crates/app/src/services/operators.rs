//! Operators as people: named accounts with a role, managed from the
//! command line, each with personal tokens (`op_` + 64 hex digits, shown
//! once, kept as SHA-256) for the admin API and scripts. `ADMIN_TOKEN`
//! stays as break-glass: the admin role, audited at every use, and with
//! UPDOWN_ENV=production refused once an enabled admin operator exists.

use updown_domain::ids::Email;
use updown_domain::operator::Role;
use updown_store::Operator;

use super::keys::{hash, random_hex};
use super::App;
use crate::error::{AppError, AppResult};

const TOKEN_PREFIX: &str = "op_";
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

impl App {
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
        let operator = self
            .store
            .create_operator(&address, role, &hashed, self.clock.now())
            .await?;
        self.audit(
            by,
            "operator_add",
            format!("operator {address} as {}", role.as_str()),
            None,
        )
        .await?;
        tracing::info!(event = "operator_added", operator = %address, role = role.as_str(), by);
        Ok((operator, password))
    }

    pub async fn operators(&self) -> AppResult<Vec<Operator>> {
        Ok(self.store.operators().await?)
    }

    pub async fn set_operator_role(
        &self,
        address: &str,
        role: Role,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        let address = email(address)?;
        let before = self.store.operator_by_email(&address).await?;
        let changed = self.store.set_operator_role(&address, role).await?;
        self.audit(
            by,
            "operator_set_role",
            format!(
                "operator {address}: {} -> {}",
                before.role.as_str(),
                role.as_str()
            ),
            Some(reason.to_string()),
        )
        .await?;
        Ok(changed)
    }

    /// Disables an operator and revokes their tokens.
    pub async fn disable_operator(
        &self,
        address: &str,
        by: &str,
        reason: &str,
    ) -> AppResult<Operator> {
        let address = email(address)?;
        let disabled = self
            .store
            .disable_operator(&address, self.clock.now())
            .await?;
        self.audit(
            by,
            "operator_disable",
            format!("operator {address}"),
            Some(reason.to_string()),
        )
        .await?;
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
        let operator = self.store.set_operator_password(&address, &hashed).await?;
        self.audit(
            by,
            "operator_reset_password",
            format!("operator {address}"),
            None,
        )
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
        let id = self
            .store
            .create_operator_token(operator.id, name, &hash(&token), self.clock.now())
            .await?;
        self.audit(
            by,
            "operator_token",
            format!("operator {address}: token {id} ({name})"),
            None,
        )
        .await?;
        Ok((id, token))
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
