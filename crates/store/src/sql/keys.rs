//! Idempotency keys, written in the transaction of the effect they guard
//! (see [`RequestKey`]), and the purge of old keys and notifications.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::db::{query, Query, Tx};
use super::rows::KeyRow;
use super::SqlStore;
use crate::model::{KeptAnswer, KeyRecord, Keyed, Purged, RequestKey};
use crate::{KeyStore, StoreError, StoreResult};

const INSERT_KEY: &str = "INSERT INTO idempotency_keys \
    (scope, key, request_hash, status_code, response_body, created_at, completed_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $6)";

/// Refuses a request whose key an earlier transaction recorded; called
/// first in the effect's transaction.
pub(crate) async fn key_unused(tx: &mut Tx<'_>, key: &RequestKey) -> StoreResult<()> {
    let found = query("SELECT 1 FROM idempotency_keys WHERE scope = $1 AND key = $2")
        .bind(&key.scope)
        .bind(&key.key)
        .fetch_optional(tx)
        .await?;
    match found {
        Some(_) => Err(StoreError::KeyUsed),
        None => Ok(()),
    }
}

/// Records a key with its answer, in the effect's transaction. A
/// concurrent request that recorded it first makes this fail with
/// `KeyUsed`, and the whole transaction with it.
pub(crate) async fn keep_answer(
    tx: &mut Tx<'_>,
    key: &RequestKey,
    answer: &KeptAnswer,
) -> StoreResult<()> {
    insert_key(INSERT_KEY, key, answer).execute(tx).await?;
    Ok(())
}

/// `sql` (an [`INSERT_KEY`]) bound to a key and its answer.
fn insert_key<'s>(sql: &'s str, key: &RequestKey, answer: &KeptAnswer) -> Query<'s> {
    query(sql)
        .bind(&key.scope)
        .bind(&key.key)
        .bind(&key.request_hash)
        .bind(i32::from(answer.status))
        .bind(&answer.body)
        .bind(key.at)
}

/// [`key_unused`] for an optional key.
pub(crate) async fn check_key<T>(tx: &mut Tx<'_>, keyed: Option<&Keyed<T>>) -> StoreResult<()> {
    match keyed {
        Some(keyed) => key_unused(tx, &keyed.key).await,
        None => Ok(()),
    }
}

/// [`keep_answer`] for an optional key, from the effect's result.
pub(crate) async fn keep<T>(
    tx: &mut Tx<'_>,
    keyed: Option<&Keyed<T>>,
    result: &T,
) -> StoreResult<()> {
    match keyed {
        Some(keyed) => keep_answer(tx, &keyed.key, &(keyed.answer)(result)).await,
        None => Ok(()),
    }
}

#[async_trait]
impl KeyStore for SqlStore {
    async fn idempotency_key(&self, scope: &str, key: &str) -> StoreResult<Option<KeyRecord>> {
        let row = query(
            "SELECT key, request_hash, status_code, response_body, created_at FROM idempotency_keys \
             WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(self.read())
        .await?;
        row.map(|row| KeyRecord::try_from(row.decode::<KeyRow>()?))
            .transpose()
    }

    async fn record_idempotency_key(
        &self,
        key: &RequestKey,
        answer: &KeptAnswer,
    ) -> StoreResult<bool> {
        let sql = format!("{INSERT_KEY} ON CONFLICT (scope, key) DO NOTHING");
        let inserted = insert_key(&sql, key, answer).execute(self.write()).await?;
        Ok(inserted == 1)
    }

    async fn purge(
        &self,
        keys_before: DateTime<Utc>,
        notifications_before: DateTime<Utc>,
        limit: i64,
    ) -> StoreResult<Purged> {
        let idempotency_keys = query(
            "DELETE FROM idempotency_keys WHERE (scope, key) IN \
             (SELECT scope, key FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        )
        .bind(keys_before)
        .bind(limit)
        .execute(self.write())
        .await?;
        let deposit_notifications = query(
            "DELETE FROM deposit_notifications WHERE id IN \
             (SELECT id FROM deposit_notifications WHERE outcome = 'refused' AND received_at < $1 \
              ORDER BY received_at LIMIT $2)",
        )
        .bind(notifications_before)
        .bind(limit)
        .execute(self.write())
        .await?;
        Ok(Purged {
            idempotency_keys,
            deposit_notifications,
        })
    }
}
