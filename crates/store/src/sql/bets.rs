//! Bets: a batch placed in one transaction (group commit), a cancel for a
//! full refund, and reads. Deciding a batch is shared (`batch.rs`);
//! writing it is each engine's hot path (`sqlite::place_bets`,
//! `postgres::place_bets`).

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use updown_domain::ids::{BetId, RoundId, UserId};
use updown_domain::ledger::Posting;

use super::batch::Answers;
use super::db::query;
use super::keys::{check_key, keep};
use super::ledger::{invalid, write_posting, TxMeta};
use super::replica::on_replica;
use super::rounds::round_in;
use super::rows::BET_COLUMNS;
use super::{postgres, sqlite, Pools, SqlStore};
use crate::model::{Bet, BetRequest, BetStatus, Keyed};
use crate::{BetStore, StoreError, StoreResult};

#[async_trait]
impl BetStore for SqlStore {
    async fn place_bets(&self, round: RoundId, requests: &[BetRequest]) -> StoreResult<Answers> {
        match &self.pools {
            Pools::Sqlite { writer, .. } => sqlite::place_bets(writer, round, requests).await,
            Pools::Postgres(pool) => postgres::place_bets(pool, round, requests).await,
        }
    }

    async fn cancel_bet(
        &self,
        bet: BetId,
        owner: Option<UserId>,
        now: DateTime<Utc>,
        cancel_cutoff: Duration,
        key: Option<&Keyed<Bet>>,
    ) -> StoreResult<Bet> {
        let not_found = || StoreError::NotFound(format!("bet {bet}"));
        let mut tx = self.write().begin().await?;
        check_key(&mut tx, key).await?;
        let sql = format!(
            "SELECT {BET_COLUMNS} FROM bets WHERE id = $1{}",
            self.for_update()
        );
        let found: Bet = query(&sql)
            .bind(bet.0)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(not_found)?;
        if owner.is_some_and(|o| o != found.user) {
            // Someone else's bet does not exist, as far as callers learn.
            return Err(not_found());
        }
        if found.status == BetStatus::Cancelled {
            return Err(StoreError::Conflict(format!(
                "bet {bet} is already cancelled"
            )));
        }
        let round = round_in(&mut tx, found.round, self.for_share()).await?;
        round.clock().check_cancel(now, cancel_cutoff)?;
        let posting = Posting::cancel_bet(found.user, found.round, found.side, found.stake)
            .map_err(invalid)?;
        let meta = TxMeta {
            round: Some(found.round),
            user: Some(found.user),
            bet: Some(bet),
            reference: None,
        };
        write_posting(&mut tx, &posting, meta, now).await?;
        let sql = format!(
            "UPDATE bets SET status = 'CANCELLED', cancelled_at = $2 WHERE id = $1 RETURNING {BET_COLUMNS}"
        );
        let cancelled: Bet = query(&sql)
            .bind(bet.0)
            .bind(now)
            .fetch_one(&mut tx)
            .await?
            .record()?;
        keep(&mut tx, key, &cancelled).await?;
        tx.commit().await?;
        Ok(cancelled)
    }

    async fn bets_of_user(
        &self,
        user: UserId,
        before: Option<BetId>,
        limit: i64,
    ) -> StoreResult<Vec<Bet>> {
        let sql = format!(
            "SELECT {BET_COLUMNS} FROM bets WHERE user_id = $1 AND ($2 IS NULL OR id < $2) \
             ORDER BY id DESC LIMIT $3"
        );
        on_replica!(self, |pool| query(&sql)
            .bind(user.0)
            .bind(before.map(|b| b.0))
            .bind(limit)
            .fetch_records(pool))
    }

    async fn bet(&self, bet: BetId) -> StoreResult<Bet> {
        let sql = format!("SELECT {BET_COLUMNS} FROM bets WHERE id = $1");
        let found = query(&sql).bind(bet.0).fetch_record(self.read()).await?;
        found.ok_or_else(|| StoreError::NotFound(format!("bet {bet}")))
    }
}
