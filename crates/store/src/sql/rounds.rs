//! Rounds (opened once, locked, read) and the closes they settle on.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use updown_domain::ids::{Market, RoundCode, RoundId};
use updown_domain::payout::PayoutPlan;
use updown_domain::round::{Outcome, RoundStatus, RoundTerms};

use super::audit::commit_audited;
use super::db::{query, Record, Tx};
use super::replica::on_replica;
use super::rows::{corrupt, micros, optional_micros, parse, parse_price};
use super::SqlStore;
use crate::model::{
    Evidence, IncidentKind, NewRound, OracleIncident, Pools, PriceRecord, PublishedResult, Round,
    SettlementRecord, SourceAnswer,
};
use crate::{AuditEntry, RoundStore, StoreError, StoreResult};

/// Columns of a round, as [`RoundRow`] reads them.
pub(crate) const ROUND_COLUMNS: &str = "id, market, code, status, previous_session, open_at, lock_at, \
    close_at, settle_at, void_at, fee_bps, tie_policy, terms_digest, opened_at, locked_at, outcome, \
    plan_pool_up, plan_pool_down, fee, distributable, settle_cursor, settle_started_at, settled_at, dust, \
    settled_by, settle_reason, close_date, close_price, close_source, close_fetched_at, prev_close_date, \
    prev_close_price, prev_close_source, prev_close_fetched_at, oracle_terms, published_outcome, published_at, payouts_at, dispute_min";

/// A round read in a transaction, `lock` being `for_update()`,
/// `for_share()` or "".
pub(crate) async fn round_in(tx: &mut Tx<'_>, id: RoundId, lock: &str) -> StoreResult<Round> {
    let sql = format!("SELECT {ROUND_COLUMNS} FROM rounds WHERE id = $1{lock}");
    let found = query(&sql).bind(id.0).fetch_record(tx).await?;
    found.ok_or_else(|| StoreError::NotFound(format!("round {id}")))
}

#[async_trait]
impl RoundStore for SqlStore {
    async fn open_round(
        &self,
        new: &NewRound,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<(Round, bool)> {
        let terms = &new.terms;
        if let Ok(existing) = self.round(&terms.market, terms.code).await {
            return Ok((existing, false));
        }
        let fee_bps = i32::try_from(terms.fee_bps)
            .map_err(|_| StoreError::Invalid("fee_bps too large".into()))?;
        let dispute_min = terms
            .dispute_min
            .map(|m| {
                i32::try_from(m).map_err(|_| StoreError::Invalid("dispute_min too large".into()))
            })
            .transpose()?;
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
             void_at, fee_bps, tie_policy, terms_digest, pool_up_account, pool_down_account, opened_at, oracle_terms, dispute_min) \
             VALUES ($1, $2, 'OPEN', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING {ROUND_COLUMNS}"
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
            .bind(terms.oracle.clone())
            .bind(dispute_min)
            .fetch_one(&mut tx)
            .await;
        match inserted {
            Ok(row) => {
                let round = row.record()?;
                commit_audited(tx, audit).await?;
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
        on_replica!(self, |pool| query(&sql)
            .bind(market.as_str())
            .bind(limit)
            .fetch_records(pool))
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

    async fn lock_round(
        &self,
        round: RoundId,
        now: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<(Round, bool)> {
        let mut tx = self.write().begin().await?;
        let current = round_in(&mut tx, round, self.for_update()).await?;
        let mut locked_now = false;
        match current.status {
            RoundStatus::Open => {
                query("UPDATE rounds SET status = 'LOCKED', locked_at = $2 WHERE id = $1")
                    .bind(round.0)
                    .bind(now)
                    .execute(&mut tx)
                    .await?;
                locked_now = true;
            }
            RoundStatus::Locked => {}
            _ => current.clock().check_lock()?,
        }
        let locked = round_in(&mut tx, round, "").await?;
        // Only the call that locked it says so in the audit log.
        commit_audited(tx, audit.filter(|_| locked_now)).await?;
        Ok((locked, locked_now))
    }

    async fn publish_result(
        &self,
        round: RoundId,
        outcome: Outcome,
        at: DateTime<Utc>,
        payouts_at: DateTime<Utc>,
    ) -> StoreResult<(Round, bool)> {
        let mut tx = self.write().begin().await?;
        let published = query(
            "UPDATE rounds SET published_outcome = $2, published_at = $3, payouts_at = $4 \
             WHERE id = $1 AND status = 'LOCKED' AND published_at IS NULL AND outcome IS NULL",
        )
        .bind(round.0)
        .bind(outcome.as_str())
        .bind(at)
        .bind(payouts_at)
        .execute(&mut tx)
        .await?;
        let round = round_in(&mut tx, round, "").await?;
        tx.commit().await?;
        Ok((round, published == 1))
    }

    async fn record_price(
        &self,
        price: &PriceRecord,
        sources: &[SourceAnswer],
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()> {
        let mut tx = self.write().begin().await?;
        query(
            "INSERT INTO prices (market, session_date, close, source, fetched_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(price.market.as_str())
        .bind(price.date.to_string())
        .bind(price.close.to_string())
        .bind(&price.source)
        .bind(price.fetched_at)
        .execute(&mut tx)
        .await?;
        for (position, answer) in sources.iter().enumerate() {
            query(
                "INSERT INTO price_sources (market, session_date, position, source, close, error, answered_at, agreed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(price.market.as_str())
            .bind(price.date.to_string())
            .bind(position as i64)
            .bind(&answer.source)
            .bind(answer.close.map(|close| close.to_string()))
            .bind(&answer.error)
            .bind(answer.answered_at)
            .bind(answer.agreed)
            .execute(&mut tx)
            .await?;
        }
        if let Some(entry) = audit {
            super::audit::append(&mut tx, entry).await?;
        }
        tx.commit().await
    }

    async fn price_sources(
        &self,
        market: &Market,
        date: NaiveDate,
    ) -> StoreResult<Vec<SourceAnswer>> {
        let rows = query(
            "SELECT source, close, error, answered_at, agreed FROM price_sources \
             WHERE market = $1 AND session_date = $2 ORDER BY position",
        )
        .bind(market.as_str())
        .bind(date.to_string())
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SourceAnswer {
                    source: row.get("source")?,
                    close: row
                        .get::<Option<String>>("close")?
                        .map(|close| parse_price(&close))
                        .transpose()?,
                    error: row.get("error")?,
                    answered_at: row.get("answered_at")?,
                    agreed: row.get("agreed")?,
                })
            })
            .collect()
    }

    async fn prices_since(
        &self,
        market: &Market,
        since: NaiveDate,
    ) -> StoreResult<Vec<PriceRecord>> {
        let rows = query(
            "SELECT session_date, close, source, fetched_at FROM prices \
             WHERE market = $1 AND session_date >= $2 ORDER BY session_date",
        )
        .bind(market.as_str())
        .bind(since.to_string())
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PriceRecord {
                    market: market.clone(),
                    date: parse("session_date", &row.get::<String>("session_date")?)?,
                    close: parse_price(&row.get::<String>("close")?)?,
                    source: row.get("source")?,
                    fetched_at: row.get("fetched_at")?,
                })
            })
            .collect()
    }

    async fn record_oracle_incident(&self, incident: &OracleIncident) -> StoreResult<bool> {
        let inserted = query(
            "INSERT INTO oracle_incidents (market, session_date, kind, detail, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (market, session_date, kind, detail) DO NOTHING",
        )
        .bind(incident.market.as_str())
        .bind(incident.date.to_string())
        .bind(incident.kind.as_str())
        .bind(&incident.detail)
        .bind(incident.at)
        .execute(self.write())
        .await?;
        Ok(inserted == 1)
    }

    async fn oracle_incidents(
        &self,
        market: &Market,
        limit: i64,
    ) -> StoreResult<Vec<OracleIncident>> {
        let rows = query(
            "SELECT session_date, kind, detail, at FROM oracle_incidents \
             WHERE market = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(market.as_str())
        .bind(limit)
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|row| {
                let kind: String = row.get("kind")?;
                Ok(OracleIncident {
                    market: market.clone(),
                    date: parse("session_date", &row.get::<String>("session_date")?)?,
                    kind: match kind.as_str() {
                        "disagreement" => IncidentKind::Disagreement,
                        "revision" => IncidentKind::Revision,
                        _ => return Err(corrupt("oracle incident kind", &kind)),
                    },
                    detail: row.get("detail")?,
                    at: row.get("at")?,
                })
            })
            .collect()
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

/// A close kept with a round as evidence (`close_*` or `prev_close_*`).
struct EvidenceColumns {
    date: Option<String>,
    price: Option<String>,
    source: Option<String>,
    fetched_at: Option<DateTime<Utc>>,
}

impl EvidenceColumns {
    fn record(self, market: &Market) -> StoreResult<Option<PriceRecord>> {
        let Some(date) = self.date else {
            return Ok(None);
        };
        let missing = || corrupt("evidence of date", &date);
        Ok(Some(PriceRecord {
            market: market.clone(),
            date: parse::<NaiveDate>("date", &date)?,
            close: parse_price(self.price.as_deref().ok_or_else(missing)?)?,
            source: self.source.clone().ok_or_else(missing)?,
            fetched_at: self.fetched_at.ok_or_else(missing)?,
        }))
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RoundRow {
    id: i64,
    market: String,
    code: String,
    status: String,
    previous_session: String,
    open_at: DateTime<Utc>,
    lock_at: DateTime<Utc>,
    close_at: DateTime<Utc>,
    settle_at: DateTime<Utc>,
    void_at: DateTime<Utc>,
    fee_bps: i32,
    tie_policy: String,
    terms_digest: String,
    opened_at: DateTime<Utc>,
    locked_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    plan_pool_up: Option<i64>,
    plan_pool_down: Option<i64>,
    fee: Option<i64>,
    distributable: Option<i64>,
    settle_cursor: Option<i64>,
    settle_started_at: Option<DateTime<Utc>>,
    settled_at: Option<DateTime<Utc>>,
    dust: Option<i64>,
    settled_by: Option<String>,
    settle_reason: Option<String>,
    close_date: Option<String>,
    close_price: Option<String>,
    close_source: Option<String>,
    close_fetched_at: Option<DateTime<Utc>>,
    prev_close_date: Option<String>,
    prev_close_price: Option<String>,
    prev_close_source: Option<String>,
    prev_close_fetched_at: Option<DateTime<Utc>>,
    oracle_terms: Option<String>,
    published_outcome: Option<String>,
    published_at: Option<DateTime<Utc>>,
    payouts_at: Option<DateTime<Utc>>,
    dispute_min: Option<i32>,
}

impl TryFrom<RoundRow> for Round {
    type Error = StoreError;

    fn try_from(row: RoundRow) -> StoreResult<Round> {
        let market = Market::parse(&row.market).map_err(|_| corrupt("market", &row.market))?;
        let code = RoundCode::parse(&row.code).map_err(|_| corrupt("round code", &row.code))?;
        let terms = RoundTerms {
            market: market.clone(),
            code,
            previous_session: parse("date", &row.previous_session)?,
            open_at: row.open_at,
            lock_at: row.lock_at,
            close_at: row.close_at,
            settle_at: row.settle_at,
            void_at: row.void_at,
            fee_bps: u32::try_from(row.fee_bps).map_err(|_| corrupt("fee_bps", row.fee_bps))?,
            tie_policy: parse("tie policy", &row.tie_policy)?,
            oracle: row.oracle_terms,
            dispute_min: row
                .dispute_min
                .map(|m| u32::try_from(m).map_err(|_| corrupt("dispute_min", m)))
                .transpose()?,
        };
        let settlement = match row.outcome {
            None => None,
            Some(outcome) => {
                let missing = || corrupt("settlement of round", code);
                let outcome: Outcome = parse("outcome", &outcome)?;
                let plan = PayoutPlan::new(
                    outcome,
                    micros(row.plan_pool_up.ok_or_else(missing)?)?,
                    micros(row.plan_pool_down.ok_or_else(missing)?)?,
                    terms.fee_bps,
                )
                .map_err(|e| corrupt("payout plan", e))?;
                // Paired assertion: what was stored is what the rules give.
                if Some(plan.fee.get()) != row.fee
                    || Some(plan.distributable.get()) != row.distributable
                {
                    return Err(corrupt("settlement figures of round", code));
                }
                let close = EvidenceColumns {
                    date: row.close_date,
                    price: row.close_price,
                    source: row.close_source,
                    fetched_at: row.close_fetched_at,
                };
                let previous_close = EvidenceColumns {
                    date: row.prev_close_date,
                    price: row.prev_close_price,
                    source: row.prev_close_source,
                    fetched_at: row.prev_close_fetched_at,
                };
                Some(SettlementRecord {
                    plan,
                    evidence: Evidence {
                        close: close.record(&market)?,
                        previous_close: previous_close.record(&market)?,
                    },
                    actor: row.settled_by.ok_or_else(missing)?,
                    reason: row.settle_reason,
                    started_at: row.settle_started_at.ok_or_else(missing)?,
                    cursor: row.settle_cursor.ok_or_else(missing)?,
                    finished_at: row.settled_at,
                    dust: optional_micros(row.dust)?,
                })
            }
        };
        let published = match (row.published_outcome, row.published_at, row.payouts_at) {
            (Some(outcome), Some(at), Some(payouts_at)) => Some(PublishedResult {
                outcome: parse("published outcome", &outcome)?,
                at,
                payouts_at,
            }),
            (None, None, None) => None,
            _ => return Err(corrupt("published result of round", code)),
        };
        Ok(Round {
            id: RoundId(row.id),
            terms_digest: row.terms_digest,
            status: parse("round status", &row.status)?,
            opened_at: row.opened_at,
            locked_at: row.locked_at,
            settlement,
            terms,
            published,
        })
    }
}

impl Record for Round {
    type Row = RoundRow;
}
