//! The hot wallet's sending: the nonce taken, the transaction signed and
//! stored, and the withdrawal recorded SUBMITTED, all in one database
//! transaction before anything is broadcast; the mined send and its
//! withdrawal's end in another.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::WithdrawalId;

use super::db::{query, Tx};
use super::funds::{change_withdrawal_in, lock_withdrawal};
use super::rows::corrupt;
use super::SqlStore;
use crate::model::*;
use crate::{SendStore, SignWith, StoreError, StoreResult};

/// Columns of a send, as [`ChainSendRow`] reads them.
pub(crate) const SEND_COLUMNS: &str =
    "id, chain_id, sender, nonce, withdrawal_id, sweep_id, tx_hash, raw_tx, \
    max_fee_per_gas, max_priority_fee_per_gas, state, signed_at, broadcast_at, mined_block, \
    mined_block_hash";

#[derive(sqlx::FromRow)]
pub(crate) struct ChainSendRow {
    id: i64,
    chain_id: i64,
    sender: String,
    nonce: i64,
    withdrawal_id: Option<i64>,
    sweep_id: Option<i64>,
    tx_hash: String,
    raw_tx: String,
    max_fee_per_gas: String,
    max_priority_fee_per_gas: String,
    state: String,
    signed_at: DateTime<Utc>,
    broadcast_at: Option<DateTime<Utc>>,
    mined_block: Option<i64>,
    mined_block_hash: Option<String>,
}

impl TryFrom<ChainSendRow> for ChainSend {
    type Error = StoreError;

    fn try_from(row: ChainSendRow) -> StoreResult<ChainSend> {
        Ok(ChainSend {
            id: row.id,
            chain_id: row.chain_id,
            sender: row.sender,
            nonce: row.nonce,
            withdrawal: row.withdrawal_id.map(WithdrawalId),
            sweep: row.sweep_id,
            signed: SignedTx {
                tx_hash: row.tx_hash,
                raw_tx: row.raw_tx,
                max_fee_per_gas: row.max_fee_per_gas,
                max_priority_fee_per_gas: row.max_priority_fee_per_gas,
            },
            state: SendState::parse(&row.state).ok_or_else(|| corrupt("send state", &row.state))?,
            signed_at: row.signed_at,
            broadcast_at: row.broadcast_at,
            mined_block: row.mined_block,
            mined_block_hash: row.mined_block_hash,
        })
    }
}

impl super::db::Record for ChainSend {
    type Row = ChainSendRow;
}

/// Takes `count` consecutive nonces of `sender` (from `first_nonce` when
/// it never sent) and returns the first: one statement advances the
/// counter and holds its row until `tx` ends.
pub(crate) async fn take_nonces(
    tx: &mut Tx<'_>,
    sender: &Sender,
    first_nonce: i64,
    count: i64,
) -> StoreResult<i64> {
    query(
        "INSERT INTO chain_nonces (chain_id, sender, next_nonce) VALUES ($1, $2, $3) \
         ON CONFLICT (chain_id, sender) DO NOTHING",
    )
    .bind(sender.chain_id)
    .bind(&sender.address)
    .bind(first_nonce)
    .execute(&mut *tx)
    .await?;
    query(
        "UPDATE chain_nonces SET next_nonce = next_nonce + $3 \
         WHERE chain_id = $1 AND sender = $2 RETURNING next_nonce - $3",
    )
    .bind(sender.chain_id)
    .bind(&sender.address)
    .bind(count)
    .fetch_one(&mut *tx)
    .await?
    .get_at(0)
}

/// Raises `sender`'s next nonce to `floor` if it is below (the chain
/// counted transactions another tool sent).
pub(crate) async fn raise_nonce(tx: &mut Tx<'_>, sender: &Sender, floor: i64) -> StoreResult<()> {
    query(
        "UPDATE chain_nonces SET next_nonce = $3 \
         WHERE chain_id = $1 AND sender = $2 AND next_nonce < $3",
    )
    .bind(sender.chain_id)
    .bind(&sender.address)
    .bind(floor)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Signs with `sign` for `nonce`; a refusal to sign is the caller's error.
pub(crate) fn signed(sign: SignWith<'_>, nonce: i64) -> StoreResult<SignedTx> {
    sign(nonce).map_err(|why| StoreError::Other(anyhow::anyhow!("signing nonce {nonce}: {why}")))
}

/// What a send moves: (withdrawal, sweep), exactly one of them.
pub(crate) type Purpose = (Option<WithdrawalId>, Option<i64>);

pub(crate) async fn insert_send(
    tx: &mut Tx<'_>,
    sender: &Sender,
    nonce: i64,
    (withdrawal, sweep): Purpose,
    signed: &SignedTx,
    now: DateTime<Utc>,
) -> StoreResult<ChainSend> {
    let sql = format!(
        "INSERT INTO chain_sends (chain_id, sender, nonce, withdrawal_id, sweep_id, tx_hash, raw_tx, \
         max_fee_per_gas, max_priority_fee_per_gas, state, signed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'sent', $10) RETURNING {SEND_COLUMNS}"
    );
    query(&sql)
        .bind(sender.chain_id)
        .bind(&sender.address)
        .bind(nonce)
        .bind(withdrawal.map(|w| w.0))
        .bind(sweep)
        .bind(&signed.tx_hash)
        .bind(&signed.raw_tx)
        .bind(&signed.max_fee_per_gas)
        .bind(&signed.max_priority_fee_per_gas)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .record()
}

/// Records `send` mined (or reverted) as `mined` says, and the other sends
/// of its nonce replaced; a conflict unless it is still `sent`. The caller
/// holds the row of what it moves.
pub(crate) async fn settle_send(
    tx: &mut Tx<'_>,
    send: &ChainSend,
    mined: &MinedSend,
) -> StoreResult<()> {
    let current: Option<String> = query("SELECT state FROM chain_sends WHERE id = $1")
        .bind(send.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.get_at(0))
        .transpose()?;
    if current.as_deref() != Some(SendState::Sent.as_str()) {
        return Err(StoreError::Conflict(format!(
            "send {} is {} already",
            send.id,
            current.unwrap_or_default()
        )));
    }
    let state = if mined.success {
        SendState::Mined
    } else {
        SendState::Reverted
    };
    query(
        "UPDATE chain_sends SET state = $2, mined_block = $3, mined_block_hash = $4 WHERE id = $1",
    )
    .bind(send.id)
    .bind(state.as_str())
    .bind(mined.block)
    .bind(&mined.block_hash)
    .execute(&mut *tx)
    .await?;
    query(
        "UPDATE chain_sends SET state = 'replaced' \
         WHERE chain_id = $1 AND sender = $2 AND nonce = $3 AND id <> $4 AND state = 'sent'",
    )
    .bind(send.chain_id)
    .bind(&send.sender)
    .bind(send.nonce)
    .bind(send.id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl SendStore for SqlStore {
    async fn submit_signed(
        &self,
        id: WithdrawalId,
        sender: &Sender,
        first_nonce: i64,
        sign: SignWith<'_>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<(Withdrawal, ChainSend)> {
        let mut tx = self.write().begin().await?;
        // The withdrawal first (locked, and still SUBMITTING), then the
        // nonce: taken and advanced by one statement, which holds its row
        // until the commit.
        let current = lock_withdrawal(&mut tx, id).await?;
        if current.status != WithdrawalStatus::Submitting {
            return Err(StoreError::Conflict(format!(
                "withdrawal {id} is {}, not SUBMITTING: it is not this sender's to sign",
                current.status.as_str()
            )));
        }
        let nonce = take_nonces(&mut tx, sender, first_nonce, 1).await?;
        let signed = signed(sign, nonce)?;
        let send = insert_send(&mut tx, sender, nonce, (Some(id), None), &signed, now).await?;
        let change = WithdrawalChange::Submit {
            chain_tx_hash: Some(signed.tx_hash),
        };
        let withdrawal = change_withdrawal_in(&mut tx, id, &change, now).await?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok((withdrawal, send))
    }

    async fn replace_send(
        &self,
        previous: &ChainSend,
        sign: SignWith<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<ChainSend> {
        let mut tx = self.write().begin().await?;
        let sql = format!(
            "UPDATE chain_sends SET state = state WHERE chain_id = $1 AND sender = $2 AND nonce = $3 \
             RETURNING {SEND_COLUMNS}"
        );
        let same_nonce: Vec<ChainSend> = query(&sql)
            .bind(previous.chain_id)
            .bind(&previous.sender)
            .bind(previous.nonce)
            .fetch_records(&mut tx)
            .await?;
        if let Some(newer) = same_nonce.iter().find(|s| s.id > previous.id) {
            // Another follower (serve's sender, `updown sweep`) replaced it
            // first: the newest is what to replace, next time.
            return Err(StoreError::Conflict(format!(
                "nonce {} was replaced already ({})",
                previous.nonce, newer.signed.tx_hash
            )));
        }
        if let Some(done) = same_nonce.iter().find(|s| s.state != SendState::Sent) {
            return Err(StoreError::Conflict(format!(
                "nonce {} is settled ({} is {}): nothing to replace",
                previous.nonce,
                done.signed.tx_hash,
                done.state.as_str()
            )));
        }
        let signed = signed(sign, previous.nonce)?;
        let sender = Sender {
            chain_id: previous.chain_id,
            address: previous.sender.clone(),
        };
        let send = insert_send(
            &mut tx,
            &sender,
            previous.nonce,
            (previous.withdrawal, previous.sweep),
            &signed,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(send)
    }

    async fn note_mined(&self, send_id: i64, block: i64, block_hash: &str) -> StoreResult<()> {
        query(
            "UPDATE chain_sends SET mined_block = $2, mined_block_hash = $3 \
             WHERE id = $1 AND state = 'sent'",
        )
        .bind(send_id)
        .bind(block)
        .bind(block_hash)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn mark_broadcast(&self, send_id: i64, now: DateTime<Utc>) -> StoreResult<()> {
        query("UPDATE chain_sends SET broadcast_at = $2 WHERE id = $1")
            .bind(send_id)
            .bind(now)
            .execute(self.write())
            .await?;
        Ok(())
    }

    async fn sends_of(&self, id: WithdrawalId) -> StoreResult<Vec<ChainSend>> {
        self.sends_of_many(&[id]).await
    }

    async fn sends_of_many(&self, ids: &[WithdrawalId]) -> StoreResult<Vec<ChainSend>> {
        let mut all = Vec::new();
        for chunk in ids.chunks(500) {
            let list = chunk
                .iter()
                .map(|id| id.0.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "SELECT {SEND_COLUMNS} FROM chain_sends WHERE withdrawal_id IN ({list}) \
                 ORDER BY withdrawal_id, id"
            );
            all.extend(query(&sql).fetch_records::<ChainSend>(self.read()).await?);
        }
        Ok(all)
    }

    async fn finish_send(&self, mined: &MinedSend, audit: &AuditEntry) -> StoreResult<Withdrawal> {
        let mut tx = self.write().begin().await?;
        let sql = format!("SELECT {SEND_COLUMNS} FROM chain_sends WHERE id = $1");
        let send: ChainSend = query(&sql)
            .bind(mined.send_id)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("send {}", mined.send_id)))?;
        let Some(withdrawal_id) = send.withdrawal else {
            return Err(StoreError::Conflict(format!(
                "send {} pays no withdrawal",
                send.id
            )));
        };
        // The withdrawal's row first, as every other writer takes it.
        lock_withdrawal(&mut tx, withdrawal_id).await?;
        settle_send(&mut tx, &send, mined).await?;
        let change = if mined.success {
            WithdrawalChange::Confirm {
                chain_tx_hash: Some(send.signed.tx_hash.clone()),
            }
        } else {
            WithdrawalChange::Fail {
                reason: mined
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("transaction {} reverted", send.signed.tx_hash)),
                rejection: Some(ChainRejection::Sender),
            }
        };
        let mut withdrawal =
            change_withdrawal_in(&mut tx, withdrawal_id, &change, mined.now).await?;
        if mined.success {
            // The transaction that paid it, which a replacement may be.
            query("UPDATE withdrawals SET chain_tx_hash = $2 WHERE id = $1")
                .bind(withdrawal_id.0)
                .bind(&send.signed.tx_hash)
                .execute(&mut tx)
                .await?;
            withdrawal.chain_tx_hash = Some(send.signed.tx_hash.clone());
        }
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(withdrawal)
    }

    async fn resolve_nonce(
        &self,
        id: WithdrawalId,
        nonce_floor: i64,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> StoreResult<Withdrawal> {
        let mut tx = self.write().begin().await?;
        let current = lock_withdrawal(&mut tx, id).await?;
        let sql =
            format!("SELECT {SEND_COLUMNS} FROM chain_sends WHERE withdrawal_id = $1 ORDER BY id");
        let sends: Vec<ChainSend> = query(&sql).bind(id.0).fetch_records(&mut tx).await?;
        let Some(first) = sends.first() else {
            return Err(StoreError::Conflict(format!(
                "withdrawal {id} was never signed by the hot wallet: nothing to resolve"
            )));
        };
        if current.status != WithdrawalStatus::Submitted
            || sends.iter().any(|s| s.state != SendState::Sent)
        {
            return Err(StoreError::Conflict(format!(
                "withdrawal {id} is {} and its transactions are settled: nothing to resolve",
                current.status.as_str()
            )));
        }
        query("UPDATE chain_sends SET state = 'replaced' WHERE withdrawal_id = $1")
            .bind(id.0)
            .execute(&mut tx)
            .await?;
        let sender = Sender {
            chain_id: first.chain_id,
            address: first.sender.clone(),
        };
        raise_nonce(&mut tx, &sender, nonce_floor).await?;
        let change = WithdrawalChange::Fail {
            reason: reason.to_string(),
            rejection: Some(ChainRejection::Sender),
        };
        let failed = change_withdrawal_in(&mut tx, id, &change, now).await?;
        super::audit::append(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(failed)
    }

    async fn mined_since(&self, from: i64) -> StoreResult<Vec<ChainSend>> {
        let sql = format!(
            "SELECT {SEND_COLUMNS} FROM chain_sends WHERE mined_block >= $1 \
             AND state IN ('mined', 'reverted') ORDER BY mined_block, id"
        );
        query(&sql).bind(from).fetch_records(self.read()).await
    }

    async fn raise_next_nonce(&self, sender: &Sender, floor: i64) -> StoreResult<()> {
        let mut tx = self.write().begin().await?;
        raise_nonce(&mut tx, sender, floor).await?;
        tx.commit().await
    }

    async fn next_nonce(&self, sender: &Sender) -> StoreResult<Option<i64>> {
        let row = query("SELECT next_nonce FROM chain_nonces WHERE chain_id = $1 AND sender = $2")
            .bind(sender.chain_id)
            .bind(&sender.address)
            .fetch_optional(self.read())
            .await?;
        row.map(|row| row.get_at(0)).transpose()
    }
}
