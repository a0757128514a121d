//! Rounds (opened once, locked, read) and the closes they settle on.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use updown_domain::ids::{Market, RoundCode, RoundId};
use updown_domain::round::RoundStatus;

use super::db::{query, Tx};
use super::rows::{micros, parse_price, ROUND_COLUMNS};
use super::SqlStore;
use crate::model::{NewRound, Pools, PriceRecord, Round};
use crate::{RoundStore, StoreError, StoreResult};

/// A round read in a transaction, `lock` being `for_update()`,
/// `for_share()` or "".
pub(crate) async fn round_in(tx: &mut Tx<'_>, id: RoundId, lock: &str) -> StoreResult<Round> {
    let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1{lock}");
    let found = query(&sql).bind(id.0).fetch_record(tx).await?;
    found.ok_or_else(|| StoreError::NotFound(format!("round {id}")))
}

#[async_trait]
impl RoundStore for SqlStore {
    async fn open_round(&self, new: &NewRound) -> StoreResult<(Round, bool)> {
        let terms = &new.terms;
        if let Ok(existing) = self.round(&terms.market, terms.code).await {
            return Ok((existing, false));
        }
        let fee_bps = i32::try_from(terms.fee_bps)
            .map_err(|_| StoreError::Invalid("fee_bps too large".into()))?;
        let mut tx = self.write().begin().await?;
        let mut pool = [0i64; 2];
        for slot in pool.iter_mut() {
            *slot = query("INSERT INTO accounts (kind, balance) VALUES ('pool', 0) RETURNING id")
                .fetch_one(&mut tx)
                .await?
                .get("id")?;
        }
        let sql = format!(
            "INSERT INTO rounds (market, code, status, previous_session, open_at, lock_at, close_at, settle_at, \
             void_at, fee_bps, tie_policy, terms_digest, pool_up_account, pool_down_account, opened_at) \
             VALUES ($1, $2, 'OPEN', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {ROUND_COLUMNS}"
        );
        let inserted = query(&sql)
            .bind(terms.market.as_str())
            .bind(terms.code.to_string())
            .bind(terms.previous_session.to_string())
            .bind(terms.open_at)
            .bind(terms.lock_at)
            .bind(terms.close_at)
            .bind(terms.settle_at)
            .bind(terms.void_at)
            .bind(fee_bps)
            .bind(terms.tie_policy.as_str())
            .bind(terms.digest())
            .bind(pool[0])
            .bind(pool[1])
            .bind(new.now)
            .fetch_one(&mut tx)
            .await;
        match inserted {
            Ok(row) => {
                let round = row.record()?;
                tx.commit().await?;
                Ok((round, true))
            }
            // Another caller opened it between our read and insert.
            Err(StoreError::Conflict(_)) => {
                tx.rollback().await?;
                Ok((self.round(&terms.market, terms.code).await?, false))
            }
            Err(other) => Err(other),
        }
    }

    async fn round(&self, market: &Market, code: RoundCode) -> StoreResult<Round> {
        let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE market = $1 AND code = $2");
        let found = query(&sql)
            .bind(market.as_str())
            .bind(code.to_string())
            .fetch_record(self.read())
            .await?;
        found.ok_or_else(|| StoreError::NotFound(format!("round {market} {code}")))
    }

    async fn round_by_id(&self, id: RoundId) -> StoreResult<Round> {
        let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1");
        let found = query(&sql).bind(id.0).fetch_record(self.read()).await?;
        found.ok_or_else(|| StoreError::NotFound(format!("round {id}")))
    }

    async fn rounds(&self, market: &Market, limit: i64) -> StoreResult<Vec<Round>> {
        let sql = format!(
            "SELECT {ROUND_COLUMNS} FROM rounds WHERE market = $1 ORDER BY code DESC LIMIT $2"
        );
        query(&sql)
            .bind(market.as_str())
            .bind(limit)
            .fetch_records(self.read())
            .await
    }

    async fn unfinished_rounds(&self, market: &Market) -> StoreResult<Vec<Round>> {
        let sql = format!(
            "SELECT {ROUND_COLUMNS} FROM rounds WHERE market = $1 AND status IN ('OPEN', 'LOCKED') ORDER BY code"
        );
        query(&sql)
            .bind(market.as_str())
            .fetch_records(self.read())
            .await
    }

    async fn pools(&self, round: RoundId) -> StoreResult<Pools> {
        let row = query(
            "SELECT \
               CAST(COALESCE(SUM(CASE WHEN side = 'UP' THEN stake ELSE 0 END), 0) AS BIGINT) AS up, \
               CAST(COALESCE(SUM(CASE WHEN side = 'DOWN' THEN stake ELSE 0 END), 0) AS BIGINT) AS down, \
               CAST(COALESCE(SUM(CASE WHEN side = 'UP' THEN 1 ELSE 0 END), 0) AS BIGINT) AS bets_up, \
               CAST(COALESCE(SUM(CASE WHEN side = 'DOWN' THEN 1 ELSE 0 END), 0) AS BIGINT) AS bets_down \
             FROM bets WHERE round_id = $1 AND status = 'ACTIVE'",
        )
        .bind(round.0)
        .fetch_one(self.read())
        .await?;
        Ok(Pools {
            up: micros(row.get("up")?)?,
            down: micros(row.get("down")?)?,
            bets_up: row.get("bets_up")?,
            bets_down: row.get("bets_down")?,
        })
    }

    async fn lock_round(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round> {
        let mut tx = self.write().begin().await?;
        let current = round_in(&mut tx, round, self.for_update()).await?;
        match current.status {
            RoundStatus::Open => {
                query("UPDATE rounds SET status = 'LOCKED', locked_at = $2 WHERE id = $1")
                    .bind(round.0)
                    .bind(now)
                    .execute(&mut tx)
                    .await?;
            }
            RoundStatus::Locked => {}
            _ => current.clock().check_lock()?,
        }
        let locked = round_in(&mut tx, round, "").await?;
        tx.commit().await?;
        Ok(locked)
    }

    async fn record_price(&self, price: &PriceRecord) -> StoreResult<()> {
        query(
            "INSERT INTO prices (market, session_date, close, source, fetched_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(price.market.as_str())
        .bind(price.date.to_string())
        .bind(price.close.to_string())
        .bind(&price.source)
        .bind(price.fetched_at)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn price(&self, market: &Market, date: NaiveDate) -> StoreResult<Option<PriceRecord>> {
        let row = query(
            "SELECT close, source, fetched_at FROM prices WHERE market = $1 AND session_date = $2",
        )
        .bind(market.as_str())
        .bind(date.to_string())
        .fetch_optional(self.read())
        .await?;
        row.map(|row| {
            Ok(PriceRecord {
                market: market.clone(),
                date,
                close: parse_price(row.get("close")?)?,
                source: row.get("source")?,
                fetched_at: row.get("fetched_at")?,
            })
        })
        .transpose()
    }
}
