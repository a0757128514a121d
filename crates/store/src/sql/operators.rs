//! Operators and their personal tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::Email;
use updown_domain::operator::Role;

use super::audit::commit_audited;
use super::db::{query, Tx};
use super::rows::corrupt;
use super::SqlStore;
use crate::model::{AuditEntry, Operator, OperatorToken};
use crate::{AuditFor, AuditFrom, OperatorStore, StoreError, StoreResult};

const OPERATOR_COLUMNS: &str = "id, email, role, password_hash, created_at, disabled_at, \
    totp_secret, totp_pending, totp_last_step, failed_sign_ins, locked_until";

#[derive(sqlx::FromRow)]
pub(crate) struct OperatorRow {
    id: i64,
    email: String,
    role: String,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
    totp_secret: Option<String>,
    totp_pending: Option<String>,
    totp_last_step: Option<i64>,
    failed_sign_ins: i32,
    locked_until: Option<DateTime<Utc>>,
}

impl TryFrom<OperatorRow> for Operator {
    type Error = StoreError;

    fn try_from(row: OperatorRow) -> StoreResult<Operator> {
        Ok(Operator {
            id: row.id,
            email: Email::parse(&row.email).map_err(|_| corrupt("operator email", &row.email))?,
            role: Role::parse(&row.role).ok_or_else(|| corrupt("operator role", &row.role))?,
            password_hash: row.password_hash,
            created_at: row.created_at,
            disabled_at: row.disabled_at,
            totp_secret: row.totp_secret,
            totp_pending: row.totp_pending,
            totp_last_step: row.totp_last_step,
            failed_sign_ins: row.failed_sign_ins,
            locked_until: row.locked_until,
        })
    }
}

impl super::db::Record for Operator {
    type Row = OperatorRow;
}

fn not_found(email: &Email) -> StoreError {
    StoreError::NotFound(format!("operator {}", email.as_str()))
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn create_operator(
        &self,
        email: &Email,
        role: Role,
        password_hash: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
        let sql = format!(
            "INSERT INTO operators (email, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING {OPERATOR_COLUMNS}"
        );
        let created = query(&sql)
            .bind(email.as_str())
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now)
            .fetch_one(&mut tx)
            .await?
            .record()?;
        commit_audited(tx, audit).await?;
        Ok(created)
    }

    async fn operators(&self) -> StoreResult<Vec<Operator>> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY id");
        query(&sql).fetch_records(self.read()).await
    }

    async fn operator_by_email(&self, email: &Email) -> StoreResult<Operator> {
        let sql = format!("SELECT {OPERATOR_COLUMNS} FROM operators WHERE email = $1");
        query(&sql)
            .bind(email.as_str())
            .fetch_record(self.read())
            .await?
            .ok_or_else(|| not_found(email))
    }

    async fn set_operator_role(
        &self,
        email: &Email,
        role: Role,
        keep_an_admin: bool,
        audit: Option<AuditFrom<'_, Operator>>,
    ) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
        if keep_an_admin && role != Role::Admin {
            keep_one_admin(&mut tx, email).await?;
        }
        // The row as it is, held (a write that changes nothing: on
        // PostgreSQL the lock other writes of the row take, not the one that
        // would also stop their sessions' and votes' key checks; on SQLite a
        // write first, as every writer starts): the entry says what it was
        // changed from even when another operator changed it a moment before.
        let sql = format!(
            "UPDATE operators SET role = role WHERE email = $1 RETURNING {OPERATOR_COLUMNS}"
        );
        let before: Operator = query(&sql)
            .bind(email.as_str())
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| not_found(email))?;
        if before.role == role {
            // Nothing changes, so nothing is recorded.
            tx.rollback().await?;
            return Ok(before);
        }
        let sql =
            format!("UPDATE operators SET role = $2 WHERE email = $1 RETURNING {OPERATOR_COLUMNS}");
        let changed = query(&sql)
            .bind(email.as_str())
            .bind(role.as_str())
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| not_found(email))?;
        let entry = audit.map(|audit| audit(&before));
        commit_audited(tx, entry.as_ref()).await?;
        Ok(changed)
    }

    async fn set_operator_password(
        &self,
        email: &Email,
        password_hash: &str,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
        let sql = format!(
            "UPDATE operators SET password_hash = $2, failed_sign_ins = 0, locked_until = NULL \
             WHERE email = $1 RETURNING {OPERATOR_COLUMNS}"
        );
        let changed: Operator = query(&sql)
            .bind(email.as_str())
            .bind(password_hash)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| not_found(email))?;
        end_sessions(&mut tx, changed.id, now).await?;
        commit_audited(tx, audit).await?;
        Ok(changed)
    }

    async fn disable_operator(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        keep_an_admin: bool,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
        if keep_an_admin {
            keep_one_admin(&mut tx, email).await?;
        }
        let sql = format!(
            "UPDATE operators SET disabled_at = $2 WHERE email = $1 AND disabled_at IS NULL \
             RETURNING {OPERATOR_COLUMNS}"
        );
        let Some(disabled): Option<Operator> = query(&sql)
            .bind(email.as_str())
            .bind(now)
            .fetch_record(&mut tx)
            .await?
        else {
            return Err(match self.operator_by_email(email).await {
                Ok(_) => {
                    StoreError::Conflict(format!("operator {} is disabled already", email.as_str()))
                }
                Err(e) => e,
            });
        };
        query("UPDATE operator_tokens SET revoked_at = $2 WHERE operator_id = $1 AND revoked_at IS NULL")
            .bind(disabled.id)
            .bind(now)
            .execute(&mut tx)
            .await?;
        end_sessions(&mut tx, disabled.id, now).await?;
        commit_audited(tx, audit).await?;
        Ok(disabled)
    }

    async fn create_operator_token(
        &self,
        operator: i64,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        audit: Option<AuditFor<'_>>,
    ) -> StoreResult<i64> {
        let mut tx = self.write().begin().await?;
        let id: i64 = query(
            "INSERT INTO operator_tokens (operator_id, name, token_hash, created_at) \
             SELECT id, $2, $3, $4 FROM operators WHERE id = $1 AND disabled_at IS NULL RETURNING id",
        )
        .bind(operator)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("operator {operator} is disabled or unknown")))?
        .get_at(0)?;
        commit_audited(tx, audit.map(|entry| entry(id)).as_ref()).await?;
        Ok(id)
    }

    async fn operator_tokens(&self, operator: i64) -> StoreResult<Vec<OperatorToken>> {
        let rows = query(
            "SELECT id, operator_id, name, created_at, revoked_at FROM operator_tokens \
             WHERE operator_id = $1 ORDER BY id DESC",
        )
        .bind(operator)
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OperatorToken {
                    id: row.get("id")?,
                    operator: row.get("operator_id")?,
                    name: row.get("name")?,
                    created_at: row.get("created_at")?,
                    revoked_at: row.get("revoked_at")?,
                })
            })
            .collect()
    }

    async fn revoke_operator_token(
        &self,
        operator: i64,
        token: i64,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()> {
        let mut tx = self.write().begin().await?;
        let revoked = query(
            "UPDATE operator_tokens SET revoked_at = $3 \
             WHERE id = $2 AND operator_id = $1 AND revoked_at IS NULL",
        )
        .bind(operator)
        .bind(token)
        .bind(now)
        .execute(&mut tx)
        .await?;
        if revoked != 1 {
            return Err(StoreError::NotFound(format!(
                "token {token} of yours that is not revoked"
            )));
        }
        commit_audited(tx, audit).await
    }

    async fn operator_by_token(&self, token_hash: &str) -> StoreResult<Option<(Operator, i64)>> {
        let sql = format!(
            "SELECT t.id AS token_id, o.{} FROM operator_tokens t JOIN operators o ON o.id = t.operator_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND o.disabled_at IS NULL",
            OPERATOR_COLUMNS.replace(", ", ", o.")
        );
        let Some(row) = query(&sql)
            .bind(token_hash)
            .fetch_optional(self.read())
            .await?
        else {
            return Ok(None);
        };
        let token: i64 = row.get("token_id")?;
        Ok(Some((row.record()?, token)))
    }

    async fn record_sign_in_failure(
        &self,
        operator: i64,
        lock_after: i32,
        lock_until: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
        // Every right-hand side reads the row as it was: the failure that
        // reaches `lock_after` locks and starts the count again.
        let sql = format!(
            "UPDATE operators SET \
               failed_sign_ins = CASE WHEN failed_sign_ins + 1 >= $2 THEN 0 ELSE failed_sign_ins + 1 END, \
               locked_until = CASE WHEN failed_sign_ins + 1 >= $2 THEN $3 ELSE locked_until END \
             WHERE id = $1 RETURNING {OPERATOR_COLUMNS}"
        );
        let counted: Operator = query(&sql)
            .bind(operator)
            .bind(lock_after)
            .bind(lock_until)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("operator {operator}")))?;
        // The count starts again (at 0) only with the failure that locks.
        let locked_now = counted.failed_sign_ins == 0;
        commit_audited(tx, audit.filter(|_| locked_now)).await?;
        Ok(counted)
    }

    async fn clear_sign_in_failures(&self, operator: i64) -> StoreResult<()> {
        query("UPDATE operators SET failed_sign_ins = 0 WHERE id = $1 AND failed_sign_ins <> 0")
            .bind(operator)
            .execute(self.write())
            .await?;
        Ok(())
    }

    async fn use_totp_step(&self, operator: i64, step: i64) -> StoreResult<bool> {
        let done = query(
            "UPDATE operators SET totp_last_step = $2 \
             WHERE id = $1 AND totp_secret IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(operator)
        .bind(step)
        .execute(self.write())
        .await?;
        Ok(done == 1)
    }

    async fn set_totp_pending(&self, operator: i64, secret: &str) -> StoreResult<()> {
        let done =
            query("UPDATE operators SET totp_pending = $2 WHERE id = $1 AND disabled_at IS NULL")
                .bind(operator)
                .bind(secret)
                .execute(self.write())
                .await?;
        if done != 1 {
            return Err(StoreError::Conflict(format!(
                "operator {operator} is disabled or unknown"
            )));
        }
        Ok(())
    }

    async fn confirm_totp(
        &self,
        operator: i64,
        step: i64,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let mut tx = self.write().begin().await?;
        let done = query(
            "UPDATE operators SET totp_secret = totp_pending, totp_pending = NULL, totp_last_step = $2 \
             WHERE id = $1 AND totp_pending IS NOT NULL AND disabled_at IS NULL \
               AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(operator)
        .bind(step)
        .execute(&mut tx)
        .await?;
        if done != 1 {
            return Ok(false);
        }
        commit_audited(tx, audit).await?;
        Ok(true)
    }

    async fn clear_totp(
        &self,
        email: &Email,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
        let sql = format!(
            "UPDATE operators SET totp_secret = NULL, totp_pending = NULL, totp_last_step = NULL \
             WHERE email = $1 RETURNING {OPERATOR_COLUMNS}"
        );
        let changed: Operator = query(&sql)
            .bind(email.as_str())
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| not_found(email))?;
        end_sessions(&mut tx, changed.id, now).await?;
        commit_audited(tx, audit).await?;
        Ok(changed)
    }

    async fn create_operator_session(
        &self,
        operator: i64,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        audit: Option<AuditFor<'_>>,
    ) -> StoreResult<i64> {
        let mut tx = self.write().begin().await?;
        let id: i64 = query(
            "INSERT INTO operator_sessions (operator_id, token_hash, created_at, expires_at) \
             SELECT id, $2, $3, $4 FROM operators WHERE id = $1 AND disabled_at IS NULL RETURNING id",
        )
        .bind(operator)
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .fetch_optional(&mut tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("operator {operator} is disabled or unknown")))?
        .get_at(0)?;
        commit_audited(tx, audit.map(|entry| entry(id)).as_ref()).await?;
        Ok(id)
    }

    async fn operator_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(Operator, i64)>> {
        let sql = format!(
            "SELECT s.id AS session_id, o.{} FROM operator_sessions s JOIN operators o ON o.id = s.operator_id \
             WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 AND o.disabled_at IS NULL",
            OPERATOR_COLUMNS.replace(", ", ", o.")
        );
        let Some(row) = query(&sql)
            .bind(token_hash)
            .bind(now)
            .fetch_optional(self.write())
            .await?
        else {
            return Ok(None);
        };
        let session: i64 = row.get("session_id")?;
        Ok(Some((row.record()?, session)))
    }

    async fn end_operator_session(&self, token_hash: &str, now: DateTime<Utc>) -> StoreResult<()> {
        query(
            "UPDATE operator_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn count_admins(&self) -> StoreResult<i64> {
        query("SELECT COUNT(*) FROM operators WHERE role = 'admin' AND disabled_at IS NULL")
            .fetch_one(self.read())
            .await?
            .get_at(0)
    }
}

/// Ends every open session of an operator (disabled, password reset, or
/// second factor removed), in the caller's transaction.
async fn end_sessions(tx: &mut Tx<'_>, operator: i64, now: DateTime<Utc>) -> StoreResult<()> {
    query("UPDATE operator_sessions SET ended_at = $2 WHERE operator_id = $1 AND ended_at IS NULL")
        .bind(operator)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}

/// Refuses a change that would leave no enabled admin: every enabled
/// admin's row is locked first (a no-op update), so two such changes take
/// turns and the second counts what the first left.
async fn keep_one_admin(tx: &mut Tx<'_>, email: &Email) -> StoreResult<()> {
    let admins = query(
        "UPDATE operators SET role = role WHERE role = 'admin' AND disabled_at IS NULL RETURNING email",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut emails = Vec::with_capacity(admins.len());
    for row in &admins {
        emails.push(row.get_at::<String>(0)?);
    }
    if emails.len() <= 1 && emails.iter().any(|e| e == email.as_str()) {
        return Err(StoreError::Conflict(format!(
            "{} is the last enabled admin: make someone else admin first",
            email.as_str()
        )));
    }
    Ok(())
}
