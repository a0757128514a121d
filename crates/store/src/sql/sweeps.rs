//! Sweeps: a deposit address's tokens moved into the hot wallet. The sweep
//! row, the two nonces and both signed transactions are written in one
//! database transaction before anything is broadcast; the booking (a move
//! between the custody places) in another, once the chain confirmed it.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::UserId;
use updown_domain::ledger::Posting;

use super::db::{query, Tx};
use super::ledger::{write_posting, TxMeta};
use super::rows::{corrupt, micros};
use super::sending::{insert_send, raise_nonce, settle_send, signed, take_nonces, SEND_COLUMNS};
use super::SqlStore;
use crate::model::*;
use crate::{SignWith, StoreError, StoreResult, SweepStore};

const SWEEP_COLUMNS: &str = "id, chain_id, user_id, deposit_address, hot_wallet, amount, status, \
    reason, ledger_tx_id, created_at, finished_at";

#[derive(sqlx::FromRow)]
pub(crate) struct SweepRow {
    id: i64,
    chain_id: i64,
    user_id: i64,
    deposit_address: String,
    hot_wallet: String,
    amount: i64,
    status: String,
    reason: Option<String>,
    ledger_tx_id: Option<i64>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<SweepRow> for Sweep {
    type Error = StoreError;

    fn try_from(row: SweepRow) -> StoreResult<Sweep> {
        Ok(Sweep {
            id: row.id,
            chain_id: row.chain_id,
            user: UserId(row.user_id),
            deposit_address: row.deposit_address,
            hot_wallet: row.hot_wallet,
            amount: micros(row.amount)?,
            status: SweepStatus::parse(&row.status)
                .ok_or_else(|| corrupt("sweep status", &row.status))?,
            reason: row.reason,
            ledger_tx: row.ledger_tx_id,
            created_at: row.created_at,
            finished_at: row.finished_at,
        })
    }
}

impl super::db::Record for Sweep {
    type Row = SweepRow;
}

/// Sweep `id` as it stands, its row locked until `tx` ends.
async fn lock_sweep(tx: &mut Tx<'_>, id: i64) -> StoreResult<Sweep> {
    let sql = format!("UPDATE sweeps SET status = status WHERE id = $1 RETURNING {SWEEP_COLUMNS}");
    query(&sql)
        .bind(id)
        .fetch_record(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("sweep {id}")))
}

async fn sends_of_sweep(tx: &mut Tx<'_>, id: i64) -> StoreResult<Vec<ChainSend>> {
    let sql =
        format!("SELECT {SEND_COLUMNS} FROM chain_sends WHERE sweep_id = $1 ORDER BY nonce, id");
    query(&sql).bind(id).fetch_records(&mut *tx).await
}

#[async_trait]
impl SweepStore for SqlStore {
    async fn submit_sweep(
        &self,
        sweep: &NewSweep,
        sender: &Sender,
        first_nonce: i64,
        sign_permit: SignWith<'_>,
        sign_transfer: SignWith<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<(Sweep, Vec<ChainSend>)> {
        let mut tx = self.write().begin().await?;
        let sql = format!(
            "INSERT INTO sweeps (chain_id, user_id, deposit_address, hot_wallet, amount, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'SUBMITTED', $6) RETURNING {SWEEP_COLUMNS}"
        );
        let recorded: Sweep = query(&sql)
            .bind(sweep.chain_id)
            .bind(sweep.user.0)
            .bind(&sweep.deposit_address)
            .bind(&sweep.hot_wallet)
            .bind(sweep.amount.get())
            .bind(now)
            .fetch_one(&mut tx)
            .await?
            .record()?;
        let nonce = take_nonces(&mut tx, sender, first_nonce, 2).await?;
        let mut sends = Vec::with_capacity(2);
        for (nonce, sign) in [(nonce, sign_permit), (nonce + 1, sign_transfer)] {
            let signed = signed(sign, nonce)?;
            sends.push(
                insert_send(
                    &mut tx,
                    sender,
                    nonce,
                    (None, Some(recorded.id)),
                    &signed,
                    now,
                )
                .await?,
            );
        }
        tx.commit().await?;
        Ok((recorded, sends))
    }

    async fn open_sweeps(&self) -> StoreResult<Vec<(Sweep, Vec<ChainSend>)>> {
        let mut tx = self.snapshot().await?;
        let sql =
            format!("SELECT {SWEEP_COLUMNS} FROM sweeps WHERE status = 'SUBMITTED' ORDER BY id");
        let open: Vec<Sweep> = query(&sql).fetch_records(&mut tx).await?;
        let mut all = Vec::with_capacity(open.len());
        for sweep in open {
            let sends = sends_of_sweep(&mut tx, sweep.id).await?;
            all.push((sweep, sends));
        }
        tx.commit().await?;
        Ok(all)
    }

    async fn finish_sweep(&self, mined: &MinedSweep, reason: Option<&str>) -> StoreResult<Sweep> {
        let mut tx = self.write().begin().await?;
        let current = lock_sweep(&mut tx, mined.sweep_id).await?;
        if current.status != SweepStatus::Submitted {
            return Err(StoreError::Conflict(format!(
                "sweep {} is {} already",
                current.id,
                current.status.as_str()
            )));
        }
        let sends = sends_of_sweep(&mut tx, current.id).await?;
        for step in [&mined.permit, &mined.transfer] {
            let send = sends.iter().find(|s| s.id == step.send_id).ok_or_else(|| {
                StoreError::Conflict(format!(
                    "send {} is not sweep {}'s",
                    step.send_id, current.id
                ))
            })?;
            settle_send(&mut tx, send, step).await?;
        }
        let now = mined.transfer.now;
        let finished: Sweep = if mined.transfer.success {
            let posting =
                Posting::sweep(current.amount).map_err(|e| StoreError::Invalid(e.to_string()))?;
            let meta = TxMeta {
                user: Some(current.user),
                reference: Some(format!("sweep:{}", current.id)),
                ..TxMeta::default()
            };
            let ledger_tx = write_posting(&mut tx, &posting, meta, now).await?;
            let sql = format!(
                "UPDATE sweeps SET status = 'CONFIRMED', ledger_tx_id = $2, finished_at = $3 \
                 WHERE id = $1 RETURNING {SWEEP_COLUMNS}"
            );
            query(&sql)
                .bind(current.id)
                .bind(ledger_tx)
                .bind(now)
                .fetch_one(&mut tx)
                .await?
                .record()?
        } else {
            let sql = format!(
                "UPDATE sweeps SET status = 'FAILED', reason = $2, finished_at = $3 \
                 WHERE id = $1 RETURNING {SWEEP_COLUMNS}"
            );
            query(&sql)
                .bind(current.id)
                .bind(reason.unwrap_or("the transferFrom reverted").to_string())
                .bind(now)
                .fetch_one(&mut tx)
                .await?
                .record()?
        };
        tx.commit().await?;
        Ok(finished)
    }

    async fn resolve_sweep(
        &self,
        id: i64,
        nonce_floor: i64,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<Sweep> {
        let mut tx = self.write().begin().await?;
        let current = lock_sweep(&mut tx, id).await?;
        if current.status != SweepStatus::Submitted {
            return Err(StoreError::Conflict(format!(
                "sweep {id} is {}: nothing to resolve",
                current.status.as_str()
            )));
        }
        let sends = sends_of_sweep(&mut tx, id).await?;
        if let Some(last) = sends.last() {
            if sends
                .iter()
                .any(|s| s.nonce == last.nonce && s.state != SendState::Sent)
            {
                return Err(StoreError::Conflict(format!(
                    "sweep {id}'s transferFrom is settled on the chain: nothing to resolve"
                )));
            }
            let sender = Sender {
                chain_id: last.chain_id,
                address: last.sender.clone(),
            };
            raise_nonce(&mut tx, &sender, nonce_floor).await?;
        }
        query("UPDATE chain_sends SET state = 'replaced' WHERE sweep_id = $1 AND state = 'sent'")
            .bind(id)
            .execute(&mut tx)
            .await?;
        let sql = format!(
            "UPDATE sweeps SET status = 'FAILED', reason = $2, finished_at = $3 WHERE id = $1 \
             RETURNING {SWEEP_COLUMNS}"
        );
        let failed: Sweep = query(&sql)
            .bind(id)
            .bind(reason)
            .bind(now)
            .fetch_one(&mut tx)
            .await?
            .record()?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(failed)
    }

    async fn sweeps(&self, limit: i64) -> StoreResult<Vec<Sweep>> {
        let sql = format!("SELECT {SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC LIMIT $1");
        query(&sql).bind(limit).fetch_records(self.read()).await
    }

    async fn custody_places(&self) -> StoreResult<(i64, i64)> {
        let row = query(
            "SELECT (SELECT -balance FROM accounts WHERE id = 1), (SELECT -balance FROM accounts WHERE id = 0)",
        )
        .fetch_one(self.read())
        .await?;
        Ok((row.get_at(0)?, row.get_at(1)?))
    }

    async fn booked_after(&self, block: i64) -> StoreResult<(i64, i64)> {
        let row = query(
            "SELECT \
             (SELECT CAST(COALESCE(SUM(s.amount), 0) AS BIGINT) FROM sweeps s WHERE s.status = 'CONFIRMED' \
              AND EXISTS (SELECT 1 FROM chain_sends c WHERE c.sweep_id = s.id AND c.state = 'mined' \
              AND c.mined_block > $1 AND c.nonce = (SELECT MAX(d.nonce) FROM chain_sends d WHERE d.sweep_id = s.id))), \
             (SELECT CAST(COALESCE(SUM(w.amount), 0) AS BIGINT) FROM withdrawals w WHERE w.status = 'CONFIRMED' \
              AND EXISTS (SELECT 1 FROM chain_sends c WHERE c.withdrawal_id = w.id AND c.state = 'mined' \
              AND c.mined_block > $1))",
        )
        .bind(block)
        .fetch_one(self.read())
        .await?;
        Ok((row.get_at(0)?, row.get_at(1)?))
    }
}
