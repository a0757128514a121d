//! Money crossing the chain boundary: deposits credited once, their
//! notifications kept, withdrawals queued and stepped.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::{UserId, WithdrawalId};
use updown_domain::ledger::Posting;

use super::db::{query, Tx};
use super::keys::{check_key, keep};
use super::ledger::{credit, invalid, write_posting, TxMeta};
use super::replica::on_replica;
use super::rows::{micros, WITHDRAWAL_COLUMNS};
use super::SqlStore;
use crate::model::*;
use crate::{FundStore, StoreError, StoreResult};

#[async_trait]
impl FundStore for SqlStore {
    async fn credit_deposit(&self, deposit: &NewDeposit) -> StoreResult<Deposit> {
        let mut tx = self.write().begin().await?;
        check_key(&mut tx, deposit.key.as_ref()).await?;
        let id = credit(
            &mut tx,
            deposit.user,
            deposit.amount,
            &deposit.chain_tx_hash,
            deposit.log_index,
            deposit.now,
        )
        .await?;
        let balance: i64 = query(
            "SELECT a.balance FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = $1",
        )
        .bind(deposit.user.0)
        .fetch_one(&mut tx)
        .await?
        .get("balance")?;
        let credited = Deposit {
            id,
            user: deposit.user,
            amount: deposit.amount,
            chain_tx_hash: deposit.chain_tx_hash.clone(),
            log_index: deposit.log_index,
            credited_at: deposit.now,
            balance_after: Some(micros(balance)?),
        };
        keep(&mut tx, deposit.key.as_ref(), &credited).await?;
        tx.commit().await?;
        Ok(credited)
    }

    async fn deposit_by_transfer(
        &self,
        tx_hash: &str,
        log_index: i64,
    ) -> StoreResult<Option<Deposit>> {
        query(
            "SELECT id, user_id, amount, chain_tx_hash, log_index, credited_at FROM deposits \
             WHERE chain_tx_hash = $1 AND log_index = $2",
        )
        .bind(tx_hash)
        .bind(log_index)
        .fetch_record(self.read())
        .await
    }

    async fn record_deposit_notification(&self, n: &DepositNotification) -> StoreResult<()> {
        let (Some(received_at), Some(outcome)) = (n.received_at, n.outcome) else {
            return Err(StoreError::Invalid(
                "a recorded notification needs its time and outcome".into(),
            ));
        };
        query(
            "INSERT INTO deposit_notifications (received_at, outcome, reason, chain, token, tx_hash, \
             log_index, to_address, amount, confirmations, user_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(received_at)
        .bind(outcome.as_str())
        .bind(&n.reason)
        .bind(&n.chain)
        .bind(&n.token)
        .bind(&n.tx_hash)
        .bind(n.log_index)
        .bind(&n.to_address)
        .bind(n.amount)
        .bind(n.confirmations)
        .bind(n.user.map(|u| u.0))
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn deposit_notifications(
        &self,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<DepositNotification>> {
        on_replica!(self, |pool| {
            query(
            "SELECT id, received_at, outcome, reason, chain, token, tx_hash, log_index, to_address, \
             amount, confirmations, user_id FROM deposit_notifications \
             WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(before)
        .bind(limit).fetch_records(pool)
        })
    }

    async fn request_withdrawal(&self, request: &NewWithdrawal) -> StoreResult<Withdrawal> {
        let posting = Posting::withdrawal_request(request.user, request.amount).map_err(invalid)?;
        let mut tx = self.write().begin().await?;
        check_key(&mut tx, request.key.as_ref()).await?;
        let meta = TxMeta {
            user: Some(request.user),
            ..TxMeta::default()
        };
        // Moving the funds first locks the user's balance row, so their
        // concurrent withdrawals take the cap's sum in turn.
        let ledger_tx = write_posting(&mut tx, &posting, meta, request.now).await?;
        let mut hold = false;
        if let Some(cap) = request.cap {
            let recent: i64 = query(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS recent FROM withdrawals \
                 WHERE user_id = $1 AND created_at > $2 AND status <> 'FAILED'",
            )
            .bind(request.user.0)
            .bind(cap.after)
            .fetch_one(&mut tx)
            .await?
            .get("recent")?;
            let total = recent.saturating_add(request.amount.get());
            if total > cap.max.get() {
                return Err(StoreError::LimitExceeded(format!(
                    "withdrawals are limited to {} micro-USDC per day; {recent} already withdrawn since {}, so at most {} more",
                    cap.max,
                    cap.after.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    (cap.max.get() - recent).max(0)
                )));
            }
            // Over the line counting the last 24 hours, not this one alone:
            // five withdrawals just under it are one large outflow.
            hold = cap.approval_over.is_some_and(|over| total > over.get());
        }
        let sql = format!(
            "INSERT INTO withdrawals (user_id, amount, address, status, ledger_tx_id, created_at, updated_at, \
             awaiting_approval) VALUES ($1, $2, $3, 'QUEUED', $4, $5, $5, $6) RETURNING {WITHDRAWAL_COLUMNS}"
        );
        let withdrawal: Withdrawal = query(&sql)
            .bind(request.user.0)
            .bind(request.amount.get())
            .bind(&request.address)
            .bind(ledger_tx)
            .bind(request.now)
            .bind(hold)
            .fetch_one(&mut tx)
            .await?
            .record()?;
        if hold {
            let approval = NewApproval {
                kind: ApprovalKind::Withdrawal,
                subject: withdrawal.id.0.to_string(),
                action: "send".into(),
                reason: None,
                requested_by: format!("player:{}", request.user.0),
                needed: WITHDRAWAL_APPROVALS,
                now: request.now,
            };
            super::approvals::insert_approval(&mut tx, &approval).await?;
        }
        query("UPDATE ledger_transactions SET reference = $1 WHERE id = $2")
            .bind(format!("withdrawal:{}", withdrawal.id))
            .bind(ledger_tx)
            .execute(&mut tx)
            .await?;
        keep(&mut tx, request.key.as_ref(), &withdrawal).await?;
        tx.commit().await?;
        Ok(withdrawal)
    }

    async fn withdrawals(
        &self,
        user: Option<UserId>,
        status: Option<WithdrawalStatus>,
        before: Option<WithdrawalId>,
        limit: i64,
    ) -> StoreResult<Vec<Withdrawal>> {
        let sql = format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE ($1 IS NULL OR user_id = $1) \
             AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        on_replica!(self, |pool| query(&sql)
            .bind(user.map(|u| u.0))
            .bind(status.map(WithdrawalStatus::as_str))
            .bind(before.map(|w| w.0))
            .bind(limit)
            .fetch_records(pool))
    }

    async fn withdrawals_to_step(
        &self,
        status: WithdrawalStatus,
        after: Option<WithdrawalId>,
        limit: i64,
    ) -> StoreResult<Vec<Withdrawal>> {
        let sql = format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE status = $1 AND id > $2 \
             AND NOT awaiting_approval ORDER BY id LIMIT $3"
        );
        query(&sql)
            .bind(status.as_str())
            .bind(after.map_or(0, |w| w.0))
            .bind(limit)
            .fetch_records(self.read())
            .await
    }

    async fn withdrawal(&self, id: WithdrawalId) -> StoreResult<Withdrawal> {
        let sql = format!("SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = $1");
        let found = query(&sql).bind(id.0).fetch_record(self.read()).await?;
        found.ok_or_else(|| StoreError::NotFound(format!("withdrawal {id}")))
    }

    async fn change_withdrawal(
        &self,
        id: WithdrawalId,
        change: &WithdrawalChange,
        now: DateTime<Utc>,
        key: Option<&Keyed<Withdrawal>>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Withdrawal> {
        let mut tx = self.write().begin().await?;
        check_key(&mut tx, key).await?;
        // Locked first: the sender signs under the same lock, so the
        // count below cannot miss a signing that commits meanwhile.
        lock_withdrawal(&mut tx, id).await?;
        refuse_if_signed(&mut tx, id, change).await?;
        let changed = change_withdrawal_in(&mut tx, id, change, now).await?;
        keep(&mut tx, key, &changed).await?;
        if let Some(entry) = audit {
            super::audit::append(&mut tx, entry).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }
}
/// A withdrawal the hot wallet signed moves on its receipts alone (or an
/// operator's `resolve_nonce`): a step by hand could refund a transfer
/// still on its way to being mined.
async fn refuse_if_signed(
    tx: &mut Tx<'_>,
    id: WithdrawalId,
    change: &WithdrawalChange,
) -> StoreResult<()> {
    if *change == WithdrawalChange::Claim {
        return Ok(());
    }
    let signed: i64 = query("SELECT COUNT(*) FROM chain_sends WHERE withdrawal_id = $1")
        .bind(id.0)
        .fetch_one(&mut *tx)
        .await?
        .get_at(0)?;
    if signed > 0 {
        return Err(StoreError::Conflict(format!(
            "withdrawal {id} was signed and sent by the hot wallet: only its receipts on the chain decide it \
             (if its nonce was used by another transaction, see `updown withdrawals resolve-nonce`)"
        )));
    }
    Ok(())
}

/// Takes `change` for withdrawal `id` inside `tx`: the step decided on the
/// row as it stands (locked), its posting written, the row updated.
pub(crate) async fn change_withdrawal_in(
    tx: &mut Tx<'_>,
    id: WithdrawalId,
    change: &WithdrawalChange,
    now: DateTime<Utc>,
) -> StoreResult<Withdrawal> {
    // The step is decided on the status as it stands, not as a caller
    // read it.
    let current = lock_withdrawal(tx, id).await?;
    change.check(&current).map_err(StoreError::Conflict)?;
    if current.awaiting_approval {
        // Failed before anyone decided: nothing is left to approve.
        super::approvals::close_pending(tx, ApprovalKind::Withdrawal, &id.0.to_string(), now)
            .await?;
    }
    let posting = match change {
        WithdrawalChange::Claim | WithdrawalChange::Submit { .. } => None,
        WithdrawalChange::Confirm { .. } => Some(Posting::withdrawal_confirm(current.amount)),
        WithdrawalChange::Fail { .. } => {
            Some(Posting::withdrawal_fail(current.user, current.amount))
        }
    };
    if let Some(posting) = posting {
        let meta = TxMeta {
            user: Some(current.user),
            reference: Some(format!("withdrawal:{id}")),
            ..TxMeta::default()
        };
        write_posting(tx, &posting.map_err(invalid)?, meta, now).await?;
    }
    let (hash, reason) = match change {
        WithdrawalChange::Claim => (None, None),
        WithdrawalChange::Submit { chain_tx_hash }
        | WithdrawalChange::Confirm { chain_tx_hash } => (chain_tx_hash.clone(), None),
        WithdrawalChange::Fail { reason, rejection } => {
            let hash = match rejection {
                Some(ChainRejection::Operator { tx_hash }) => Some(tx_hash.clone()),
                _ => None,
            };
            (hash, Some(reason.clone()))
        }
    };
    let sql = format!(
        "UPDATE withdrawals SET status = $2, chain_tx_hash = COALESCE(chain_tx_hash, $3), \
         failure_reason = $4, updated_at = $5 WHERE id = $1 RETURNING {WITHDRAWAL_COLUMNS}"
    );
    let changed: Withdrawal = query(&sql)
        .bind(id.0)
        .bind(change.target().as_str())
        .bind(hash)
        .bind(reason)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .record()?;
    Ok(changed)
}

/// Withdrawal `id` as it stands, its row locked until `tx` ends (a no-op
/// update takes the row lock on both engines).
pub(crate) async fn lock_withdrawal(tx: &mut Tx<'_>, id: WithdrawalId) -> StoreResult<Withdrawal> {
    let sql = format!(
        "UPDATE withdrawals SET updated_at = updated_at WHERE id = $1 RETURNING {WITHDRAWAL_COLUMNS}"
    );
    query(&sql)
        .bind(id.0)
        .fetch_record(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("withdrawal {id}")))
}
