//! Operators and their personal tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::Email;
use updown_domain::operator::Role;

use super::db::query;
use super::rows::corrupt;
use super::SqlStore;
use crate::model::Operator;
use crate::{OperatorStore, StoreError, StoreResult};

const OPERATOR_COLUMNS: &str = "id, email, role, password_hash, created_at, disabled_at";

#[derive(sqlx::FromRow)]
pub(crate) struct OperatorRow {
    id: i64,
    email: String,
    role: String,
    password_hash: Option<String>,
    created_at: DateTime<Utc>,
    disabled_at: Option<DateTime<Utc>>,
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
    ) -> StoreResult<Operator> {
        let sql = format!(
            "INSERT INTO operators (email, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING {OPERATOR_COLUMNS}"
        );
        query(&sql)
            .bind(email.as_str())
            .bind(role.as_str())
            .bind(password_hash)
            .bind(now)
            .fetch_one(self.write())
            .await?
            .record()
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

    async fn set_operator_role(&self, email: &Email, role: Role) -> StoreResult<Operator> {
        let sql =
            format!("UPDATE operators SET role = $2 WHERE email = $1 RETURNING {OPERATOR_COLUMNS}");
        query(&sql)
            .bind(email.as_str())
            .bind(role.as_str())
            .fetch_record(self.write())
            .await?
            .ok_or_else(|| not_found(email))
    }

    async fn set_operator_password(
        &self,
        email: &Email,
        password_hash: &str,
    ) -> StoreResult<Operator> {
        let sql = format!(
            "UPDATE operators SET password_hash = $2 WHERE email = $1 RETURNING {OPERATOR_COLUMNS}"
        );
        query(&sql)
            .bind(email.as_str())
            .bind(password_hash)
            .fetch_record(self.write())
            .await?
            .ok_or_else(|| not_found(email))
    }

    async fn disable_operator(&self, email: &Email, now: DateTime<Utc>) -> StoreResult<Operator> {
        let mut tx = self.write().begin().await?;
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
        tx.commit().await?;
        Ok(disabled)
    }

    async fn create_operator_token(
        &self,
        operator: i64,
        name: &str,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<i64> {
        query(
            "INSERT INTO operator_tokens (operator_id, name, token_hash, created_at) \
             SELECT id, $2, $3, $4 FROM operators WHERE id = $1 AND disabled_at IS NULL RETURNING id",
        )
        .bind(operator)
        .bind(name)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.write())
        .await?
        .ok_or_else(|| StoreError::Conflict(format!("operator {operator} is disabled or unknown")))?
        .get_at(0)
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

    async fn count_admins(&self) -> StoreResult<i64> {
        query("SELECT COUNT(*) FROM operators WHERE role = 'admin' AND disabled_at IS NULL")
            .fetch_one(self.read())
            .await?
            .get_at(0)
    }
}
