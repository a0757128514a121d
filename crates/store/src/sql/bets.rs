//! Bets: a batch placed in one transaction (group commit), a cancel for a
//! full refund, and reads. Deciding a batch is shared; writing it is each
//! engine's hot path (`sqlite::place_bets`, `postgres::place_bets`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use updown_domain::admission::PlayerState;
use updown_domain::ids::{BetId, RoundId, UserId};
use updown_domain::ledger::Posting;
use updown_domain::round::RoundClock;

use super::db::query;
use super::keys::{check_key, keep};
use super::ledger::{invalid, write_posting, TxMeta};
use super::rounds::round_in;
use super::rows::BET_COLUMNS;
use super::{postgres, sqlite, Pools, SqlStore};
use crate::model::{Bet, BetRequest, BetStatus, KeptAnswer, Keyed, RequestKey};
use crate::{BetRefusalReason, BetStore, StoreError, StoreResult};

/// One answer per request of a batch: the bet placed, or why not.
pub(crate) type Answers = Vec<Result<Bet, BetRefusalReason>>;

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
        query(&sql)
            .bind(user.0)
            .bind(before.map(|b| b.0))
            .bind(limit)
            .fetch_records(self.read())
            .await
    }

    async fn bet(&self, bet: BetId) -> StoreResult<Bet> {
        let sql = format!("SELECT {BET_COLUMNS} FROM bets WHERE id = $1");
        let found = query(&sql).bind(bet.0).fetch_record(self.read()).await?;
        found.ok_or_else(|| StoreError::NotFound(format!("bet {bet}")))
    }
}

/// Decides a batch of bets in order: round rules by the clock, then each
/// player's balance, limits and exclusion. `players` holds the state of
/// every known player, read under lock; a missing one is an unknown user.
///
/// A request whose Idempotency-Key is in `used` (recorded by an earlier
/// transaction) is not placed again. Two requests of one batch with the
/// same key are one request: the second gets the first's refusal, or
/// learns that its key is used once the first is placed.
pub(crate) fn decide_batch(
    clock: &RoundClock,
    requests: &[BetRequest],
    players: &mut HashMap<UserId, PlayerState>,
    used: &HashSet<(String, String)>,
) -> Vec<Result<(), BetRefusalReason>> {
    let decide = |request: &BetRequest, players: &mut HashMap<UserId, PlayerState>| {
        clock.check_bet(request.received_at)?;
        let player = players
            .get_mut(&request.user)
            .ok_or(BetRefusalReason::UnknownUser(request.user))?;
        player.admit(request.stake, request.received_at)?;
        Ok(())
    };
    let mut first_with_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut decisions: Vec<Result<(), BetRefusalReason>> = Vec::with_capacity(requests.len());
    for (index, request) in requests.iter().enumerate() {
        let decision = match &request.key {
            None => decide(request, players),
            Some(keyed) => {
                let id = (keyed.key.scope.as_str(), keyed.key.key.as_str());
                if used.contains(&(id.0.to_string(), id.1.to_string())) {
                    Err(BetRefusalReason::KeyUsed)
                } else if let Some(first) = first_with_key.get(&id) {
                    let same_request = requests[*first]
                        .key
                        .as_ref()
                        .is_some_and(|k| k.key.request_hash == keyed.key.request_hash);
                    match &decisions[*first] {
                        // The same request twice gets the same refusal.
                        Err(refusal) if same_request => Err(refusal.clone()),
                        _ => Err(BetRefusalReason::KeyUsed),
                    }
                } else {
                    first_with_key.insert(id, index);
                    decide(request, players)
                }
            }
        };
        decisions.push(decision);
    }
    decisions
}

/// The requests a batch's decisions accepted, in order.
pub(crate) fn accepted<'r>(
    requests: &'r [BetRequest],
    decisions: &[Result<(), BetRefusalReason>],
) -> Vec<&'r BetRequest> {
    requests
        .iter()
        .zip(decisions)
        .filter(|(_, d)| d.is_ok())
        .map(|(r, _)| r)
        .collect()
}

/// The keys of placed bets and the answers to record with them.
pub(crate) fn kept_answers(
    requests: &[BetRequest],
    answers: &Answers,
) -> Vec<(RequestKey, KeptAnswer)> {
    requests
        .iter()
        .zip(answers)
        .filter_map(|(request, answer)| match (&request.key, answer) {
            (Some(keyed), Ok(bet)) => Some((keyed.key.clone(), (keyed.answer)(bet))),
            _ => None,
        })
        .collect()
}

/// One answer per request: the bet (with its id, in order) or the refusal.
pub(crate) fn answers(
    round: RoundId,
    requests: &[BetRequest],
    decisions: Vec<Result<(), BetRefusalReason>>,
    ids: Vec<i64>,
) -> Answers {
    let mut ids = ids.into_iter();
    requests
        .iter()
        .zip(decisions)
        .map(|(request, decision)| {
            decision.map(|()| Bet {
                id: BetId(ids.next().expect("one id per accepted bet")),
                round,
                user: request.user,
                side: request.side,
                stake: request.stake,
                status: BetStatus::Active,
                placed_at: request.received_at,
                cancelled_at: None,
            })
        })
        .collect()
}
