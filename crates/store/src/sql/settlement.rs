//! Settlement: begin once (the payout plan and the fee), pay in chunks of
//! bet ids (each engine's hot path), finish (dust, status). Each step is
//! one transaction on the locked round and safe to repeat after a crash.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::RoundId;
use updown_domain::ledger::Posting;
use updown_domain::payout::PayoutPlan;
use updown_domain::round::{Outcome, RoundStatus, Side};
use updown_domain::Micros;

use super::approvals::close_pending;
use super::batch::Chunk;
use super::db::{query, Tx};
use super::ledger::{invalid, pool_balances, write_posting, TxMeta};
use super::rounds::round_in;
use super::{postgres, sqlite, SqlStore};
use crate::model::{ApprovalKind, PriceRecord, Round, SettlementStart};
use crate::{SettlementStore, StoreError, StoreResult};

/// A ledger link to the round alone.
fn of_round(round: RoundId) -> TxMeta {
    TxMeta {
        round: Some(round),
        ..TxMeta::default()
    }
}

#[async_trait]
impl SettlementStore for SqlStore {
    async fn begin_settlement(
        &self,
        round: RoundId,
        start: &SettlementStart,
    ) -> StoreResult<Round> {
        let mut tx = self.write().begin().await?;
        let current = round_in(&mut tx, round, self.for_update()).await?;
        let code = current.terms.code.to_string();
        // Results by hand still waiting have nothing left to decide once
        // settlement begins or resumes (a new one is refused from then on;
        // one asked by an earlier build may wait). Undone with the rest if
        // this refuses.
        close_pending(&mut tx, ApprovalKind::Settlement, &code, start.now).await?;
        if let Some(existing) = &current.settlement {
            // Begun before (perhaps by a crashed run): resume it, but never
            // with a different result.
            if existing.plan.outcome != start.outcome {
                return Err(StoreError::Conflict(format!(
                    "round {} is already being settled as {}",
                    current.terms.code,
                    existing.plan.outcome.as_str()
                )));
            }
            tx.commit().await?;
            return Ok(current);
        }
        if current.status != RoundStatus::Locked {
            current.clock().check_settle(start.now, false)?;
        }
        // A result by hand approved, and not carried out yet (its approver
        // is about to, or died first: the scheduler will), decides the
        // round: no other result begins. A vote takes the round's row as
        // this does, so the two cannot cross.
        let approved = query(
            "SELECT id, action FROM approvals WHERE kind = $1 AND subject = $2 AND state = 'approved' \
             ORDER BY id DESC LIMIT 1",
        )
        .bind(ApprovalKind::Settlement.as_str())
        .bind(&code)
        .fetch_optional(&mut tx)
        .await?;
        if let Some(row) = approved {
            let (id, action): (i64, String) = (row.get_at(0)?, row.get_at(1)?);
            if action != start.outcome.as_str() {
                return Err(StoreError::Conflict(format!(
                    "round {code}: {action} by hand was approved (approval {id}) and is carried out first"
                )));
            }
        }
        let (pool_up, pool_down) = pool_balances(&mut tx, &current).await?;
        let plan = PayoutPlan::new(start.outcome, pool_up, pool_down, current.terms.fee_bps)
            .map_err(invalid)?;
        let evidence = |p: &Option<PriceRecord>| {
            let p = p.as_ref();
            (
                p.map(|p| p.date.to_string()),
                p.map(|p| p.close.to_string()),
                p.map(|p| p.source.clone()),
                p.map(|p| p.fetched_at),
            )
        };
        let close = evidence(&start.evidence.close);
        let prev = evidence(&start.evidence.previous_close);
        query(
            "UPDATE rounds SET outcome = $2, plan_pool_up = $3, plan_pool_down = $4, fee = $5, distributable = $6, \
             settle_cursor = 0, settle_started_at = $7, settled_by = $8, settle_reason = $9, \
             close_date = $10, close_price = $11, close_source = $12, close_fetched_at = $13, \
             prev_close_date = $14, prev_close_price = $15, prev_close_source = $16, prev_close_fetched_at = $17 \
             WHERE id = $1",
        )
        .bind(round.0)
        .bind(start.outcome.as_str())
        .bind(pool_up.get())
        .bind(pool_down.get())
        .bind(plan.fee.get())
        .bind(plan.distributable.get())
        .bind(start.now)
        .bind(&start.actor)
        .bind(&start.reason)
        .bind(close.0)
        .bind(close.1)
        .bind(close.2)
        .bind(close.3)
        .bind(prev.0)
        .bind(prev.1)
        .bind(prev.2)
        .bind(prev.3)
        .execute(&mut tx)
        .await?;
        if let Some(fee) = Posting::fee(round, &plan).map_err(invalid)? {
            write_posting(&mut tx, &fee, of_round(round), start.now).await?;
        }
        if let Some(entry) = &start.audit {
            super::audit::append(&mut tx, entry).await?;
        }
        let begun = round_in(&mut tx, round, "").await?;
        tx.commit().await?;
        Ok(begun)
    }

    async fn settle_chunk(&self, round: RoundId, chunk_size: i64) -> StoreResult<Option<u64>> {
        let mut tx = self.write().begin().await?;
        let current = round_in(&mut tx, round, self.for_update()).await?;
        let Some(settlement) = current
            .settlement
            .as_ref()
            .filter(|s| s.finished_at.is_none())
        else {
            return Ok(None);
        };
        // The next unpaid bet id: an index probe, cheap whatever the
        // table's statistics say.
        let next: Option<i64> = query("SELECT MIN(id) FROM bets WHERE round_id = $1 AND id > $2")
            .bind(round.0)
            .bind(settlement.cursor)
            .fetch_one(&mut tx)
            .await?
            .get_at(0)?;
        let Some(first) = next else {
            tx.commit().await?;
            return Ok(None);
        };
        let last = first.saturating_add(chunk_size.max(1) - 1);
        let chunk = Chunk {
            round: &current,
            plan: &settlement.plan,
            first,
            last,
        };
        let paid = pay_chunk(&mut tx, chunk).await?;
        query("UPDATE rounds SET settle_cursor = $2 WHERE id = $1")
            .bind(round.0)
            .bind(last)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Some(paid))
    }

    async fn finish_settlement(&self, round: RoundId, now: DateTime<Utc>) -> StoreResult<Round> {
        let mut tx = self.write().begin().await?;
        let current = round_in(&mut tx, round, self.for_update()).await?;
        let settlement = current.settlement.clone().ok_or_else(|| {
            StoreError::Conflict(format!(
                "round {} has no settlement in progress",
                current.terms.code
            ))
        })?;
        if settlement.finished_at.is_some() {
            tx.commit().await?;
            return Ok(current);
        }
        let paying: Vec<&str> = Side::BOTH
            .into_iter()
            .filter(|s| settlement.plan.pays(*s))
            .map(Side::as_str)
            .collect();
        if !paying.is_empty() {
            let sql = format!(
                "SELECT COUNT(*) FROM bets WHERE round_id = $1 AND status = 'ACTIVE' AND id > $2 \
                 AND side IN ('{}')",
                paying.join("', '")
            );
            let still_to_pay: i64 = query(&sql)
                .bind(round.0)
                .bind(settlement.cursor)
                .fetch_one(&mut tx)
                .await?
                .get_at(0)?;
            if still_to_pay > 0 {
                return Err(StoreError::Conflict(format!(
                    "{still_to_pay} bets of round {} are not paid yet",
                    current.terms.code
                )));
            }
        }
        // What the payout floors left in the pools is dust.
        let (up, down) = pool_balances(&mut tx, &current).await?;
        let mut dust = Micros::ZERO;
        for (side, left) in [(Side::Up, up), (Side::Down, down)] {
            if let Some(posting) = Posting::dust(round, side, left).map_err(invalid)? {
                write_posting(&mut tx, &posting, of_round(round), now).await?;
                dust = dust.checked_add(left).map_err(invalid)?;
            }
        }
        let status = match settlement.plan.outcome {
            Outcome::Void => "VOID",
            Outcome::Up | Outcome::Down => "SETTLED",
        };
        query("UPDATE rounds SET status = $2, settled_at = $3, dust = $4 WHERE id = $1")
            .bind(round.0)
            .bind(status)
            .bind(now)
            .bind(dust.get())
            .execute(&mut tx)
            .await?;
        let finished = round_in(&mut tx, round, "").await?;
        tx.commit().await?;
        Ok(finished)
    }
}

/// Pays a chunk's winning bets: how many were paid.
async fn pay_chunk(tx: &mut Tx<'_>, chunk: Chunk<'_>) -> StoreResult<u64> {
    match tx {
        Tx::Sqlite(_) => sqlite::pay_chunk(tx, chunk).await,
        Tx::Postgres(_) => postgres::pay_chunk(tx, chunk).await,
    }
}
