//! What the entry points list and look up, read-only: pages of bets,
//! withdrawals, users, statements, audit entries and deposit
//! notifications; a player's API keys; the records of Idempotency-Keys;
//! the database's health. The entry points call these, never the store.

use updown_domain::ids::{BetId, RoundId, UserId, WithdrawalId};
use updown_store::{
    ApiKeyInfo, AuditEntry, Backend, Bet, DepositNotification, KeptAnswer, KeyRecord, Pools,
    RequestKey, StatementLine, UserSummary, Withdrawal, WithdrawalStatus,
};

use super::App;
use crate::error::AppResult;

/// See [`App::overdue`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overdue {
    pub settlement_seconds: i64,
    pub withdrawal_seconds: i64,
}

impl App {
    /// `user`'s bets, newest first, before `before`.
    pub async fn bets_of_user(
        &self,
        user: UserId,
        before: Option<BetId>,
        limit: i64,
    ) -> AppResult<Vec<Bet>> {
        Ok(self.store.bets_of_user(user, before, limit).await?)
    }

    /// Withdrawals, newest first, before `before`; of one user and in one
    /// status when given.
    pub async fn withdrawals(
        &self,
        user: Option<UserId>,
        status: Option<WithdrawalStatus>,
        before: Option<WithdrawalId>,
        limit: i64,
    ) -> AppResult<Vec<Withdrawal>> {
        Ok(self.store.withdrawals(user, status, before, limit).await?)
    }

    /// As [`App::withdrawals`], each with the hot wallet's transactions
    /// for it, as the operator sees them; confirmations as of `head`, or
    /// of the sender's last step.
    pub async fn withdrawals_for_operators(
        &self,
        status: Option<WithdrawalStatus>,
        before: Option<WithdrawalId>,
        limit: i64,
        head: Option<u64>,
    ) -> AppResult<Vec<crate::wire::WithdrawalAdminOut>> {
        let withdrawals = self.store.withdrawals(None, status, before, limit).await?;
        let ids: Vec<WithdrawalId> = withdrawals.iter().map(|w| w.id).collect();
        let sends = self.store.sends_of_many(&ids).await?;
        let head = head.or_else(|| self.sender.as_ref().and_then(|s| s.status().head));
        let explorer = self.config.chain.explorer_tx_url.as_deref();
        Ok(withdrawals
            .iter()
            .map(|w| crate::wire::WithdrawalAdminOut {
                withdrawal: crate::wire::WithdrawalOut::from(w),
                transactions: sends
                    .iter()
                    .filter(|s| s.withdrawal == Some(w.id))
                    .map(|s| crate::wire::ChainTxOut::of(s, head, explorer))
                    .collect(),
            })
            .collect())
    }

    /// Users with their balances, newest first, before `before`.
    pub async fn users(&self, before: Option<i64>, limit: i64) -> AppResult<Vec<UserSummary>> {
        Ok(self.store.users(before, limit).await?)
    }

    /// The lines of `user`'s account, newest first, before ledger
    /// transaction `before`.
    pub async fn statement(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> AppResult<Vec<StatementLine>> {
        Ok(self.store.statement(user, before, limit).await?)
    }

    /// Operators' actions, newest first, before `before`.
    /// The audit log's hash chain, walked from its first row.
    pub async fn audit_chain(&self) -> AppResult<updown_store::AuditChain> {
        Ok(self.store.audit_chain().await?)
    }

    pub async fn audit_log(&self, before: Option<i64>, limit: i64) -> AppResult<Vec<AuditEntry>> {
        Ok(self.store.audit_log(before, limit).await?)
    }

    /// Deposit notifications, newest first, before `before`.
    pub async fn deposit_notifications(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> AppResult<Vec<DepositNotification>> {
        Ok(self.store.deposit_notifications(before, limit).await?)
    }

    /// `user`'s API keys, newest first (never the keys themselves).
    pub async fn api_keys(&self, user: UserId) -> AppResult<Vec<ApiKeyInfo>> {
        Ok(self.store.api_keys(user).await?)
    }

    /// A round's pools, from its active bets.
    pub async fn pools(&self, round: RoundId) -> AppResult<Pools> {
        Ok(self.store.pools(round).await?)
    }

    /// The record of an Idempotency-Key, if one was kept.
    pub async fn idempotency_key(&self, scope: &str, key: &str) -> AppResult<Option<KeyRecord>> {
        Ok(self.store.idempotency_key(scope, key).await?)
    }

    /// Records the answer of an action idempotent by itself, unless its
    /// key is recorded already; whether this call recorded it.
    pub async fn record_idempotency_key(
        &self,
        key: &RequestKey,
        answer: &KeptAnswer,
    ) -> AppResult<bool> {
        Ok(self.store.record_idempotency_key(key, answer).await?)
    }

    /// A cheap round trip to the database, for health checks.
    pub async fn ping_database(&self) -> AppResult<()> {
        Ok(self.store.ping().await?)
    }

    /// Why this process cannot take money requests now, if it cannot: the
    /// database that takes writes is behind this build's migrations (an
    /// error when it does not answer).
    pub async fn unready(&self) -> AppResult<Option<String>> {
        Ok(self.store.unready().await?)
    }

    /// How many rounds are in each status (all markets).
    pub async fn round_counts(&self) -> AppResult<Vec<(String, i64)>> {
        Ok(self.store.round_counts().await?)
    }

    /// What the alerts watch, read now: how long past its settle instant
    /// the most overdue unfinished round is, and how long the oldest
    /// withdrawal not yet confirmed or failed has waited (0: none).
    pub async fn overdue(&self) -> AppResult<Overdue> {
        let now = self.clock.now();
        let since = |at: chrono::DateTime<chrono::Utc>| (now - at).num_seconds().max(0);
        let settlement = self
            .store
            .unfinished_rounds(&self.config.rounds.market)
            .await?
            .iter()
            .map(|round| since(round.terms.settle_at))
            .max()
            .unwrap_or(0);
        let mut withdrawal = 0;
        for status in [
            WithdrawalStatus::Queued,
            WithdrawalStatus::Submitting,
            WithdrawalStatus::Submitted,
        ] {
            if let Some(oldest) = self
                .store
                .withdrawals_to_step(status, None, 1)
                .await?
                .first()
            {
                withdrawal = withdrawal.max(since(oldest.created_at));
            }
        }
        Ok(Overdue {
            settlement_seconds: settlement,
            withdrawal_seconds: withdrawal,
        })
    }

    /// Checks the read replica's lag every second, for good: lists read
    /// from it only while it answers within READ_REPLICA_MAX_LAG_MS.
    /// Exports `updown_replica_lag_seconds`, `updown_replica_usable` (0:
    /// lists read from the primary) and `updown_dependency_up{dependency="replica"}`.
    pub async fn follow_replica(self) {
        loop {
            let state = self.check_replica().await;
            let (usable, up) = match &state {
                updown_store::ReplicaState::Ok(_) => (1.0, 1.0),
                updown_store::ReplicaState::Lagging(_) => (0.0, 1.0),
                _ => (0.0, 0.0),
            };
            if let updown_store::ReplicaState::Ok(lag) | updown_store::ReplicaState::Lagging(lag) =
                &state
            {
                metrics::gauge!("updown_replica_lag_seconds").set(lag.as_secs_f64());
            }
            metrics::gauge!("updown_replica_usable").set(usable);
            metrics::gauge!("updown_dependency_up", "dependency" => "replica").set(up);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Checks the read replica now (reads follow what it finds) and keeps
    /// the answer for [`App::replica_state`].
    pub async fn check_replica(&self) -> updown_store::ReplicaState {
        let state = self
            .store
            .check_replica(self.config.database.replica_max_lag)
            .await;
        let previous = std::mem::replace(
            &mut *self.replica.write().expect("not poisoned"),
            state.clone(),
        );
        if std::mem::discriminant(&previous) != std::mem::discriminant(&state) {
            tracing::warn!(
                ?state,
                "read replica: lists now read from {}",
                match state {
                    updown_store::ReplicaState::Ok(_) => "the replica",
                    _ => "the primary",
                }
            );
        }
        state
    }

    /// The read replica as last checked.
    pub fn replica_state(&self) -> updown_store::ReplicaState {
        self.replica.read().expect("not poisoned").clone()
    }

    /// Which engine the database runs on.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}
