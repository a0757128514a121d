//! The chain watcher's state: its cursor, moved in the transaction that
//! credits its range; the hashes of the last scanned blocks; pending
//! deposits; reorgs deeper than the confirmations; custody checks.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::UserId;

use super::db::{query, Tx};
use super::ledger::credit;
use super::rows::micros;
use super::SqlStore;
use crate::model::*;
use crate::{ChainStore, StoreError, StoreResult};

/// Addresses per `IN (...)` list.
const ADDRESSES_PER_QUERY: usize = 500;

#[async_trait]
impl ChainStore for SqlStore {
    async fn chain_cursor(
        &self,
        chain_id: i64,
        token: &str,
        start_block: i64,
        now: DateTime<Utc>,
    ) -> StoreResult<ChainCursor> {
        query(
            "INSERT INTO chain_cursor (id, chain_id, token, next_block, updated_at) \
             VALUES (1, $1, $2, $3, $4) ON CONFLICT (id) DO NOTHING",
        )
        .bind(chain_id)
        .bind(token)
        .bind(start_block)
        .bind(now)
        .execute(self.write())
        .await?;
        let cursor = self
            .read_chain_cursor()
            .await?
            .ok_or_else(|| StoreError::NotFound("the chain cursor".into()))?;
        if cursor.chain_id != chain_id || cursor.token != token {
            return Err(StoreError::Conflict(format!(
                "this database watches token {} on chain {}, not token {token} on chain {chain_id}; \
                 a database follows one chain and token",
                cursor.token, cursor.chain_id
            )));
        }
        Ok(cursor)
    }

    async fn read_chain_cursor(&self) -> StoreResult<Option<ChainCursor>> {
        let row = query("SELECT chain_id, token, next_block, updated_at FROM chain_cursor")
            .fetch_optional(self.write())
            .await?;
        row.map(|row| {
            Ok(ChainCursor {
                chain_id: row.get("chain_id")?,
                token: row.get("token")?,
                next_block: row.get("next_block")?,
                updated_at: row.get("updated_at")?,
            })
        })
        .transpose()
    }

    async fn scanned_blocks(&self, limit: i64) -> StoreResult<Vec<ScannedBlock>> {
        query("SELECT number, hash, parent_hash FROM chain_blocks ORDER BY number DESC LIMIT $1")
            .bind(limit)
            .fetch_all(self.write())
            .await?
            .iter()
            .map(|row| {
                Ok(ScannedBlock {
                    number: row.get("number")?,
                    hash: row.get("hash")?,
                    parent_hash: row.get("parent_hash")?,
                })
            })
            .collect()
    }

    async fn commit_range(&self, range: &ScannedRange) -> StoreResult<RangeCommitted> {
        let mut tx = self.write().begin().await?;
        // Halted by a reorg: checked in the credits' own transaction.
        if let Some(row) = query("SELECT id FROM chain_reorgs WHERE acked_at IS NULL LIMIT 1")
            .fetch_optional(&mut tx)
            .await?
        {
            let id: i64 = row.get("id")?;
            return Err(StoreError::Conflict(format!(
                "reorg {id} waits for an operator's acknowledgement (updown chain ack-reorg); nothing is credited until then"
            )));
        }
        let moved = query(
            "UPDATE chain_cursor SET next_block = $1, updated_at = $2 WHERE id = 1 AND next_block = $3",
        )
        .bind(range.to)
        .bind(range.now)
        .bind(range.from)
        .execute(&mut tx)
        .await?;
        if moved != 1 {
            return Err(StoreError::Conflict(format!(
                "the chain cursor is no longer at block {}: another watcher moved it",
                range.from
            )));
        }
        let mut committed = RangeCommitted::default();
        for c in &range.credits {
            if query("SELECT id FROM deposits WHERE chain_tx_hash = $1 AND log_index = $2")
                .bind(&c.tx_hash)
                .bind(c.log_index)
                .fetch_optional(&mut tx)
                .await?
                .is_some()
            {
                committed.already_credited += 1;
                continue;
            }
            let id = credit(
                &mut tx,
                c.user,
                c.amount,
                &c.tx_hash,
                c.log_index,
                range.now,
            )
            .await?;
            query(
                "INSERT INTO chain_deposits (deposit_id, block_number, block_hash) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(c.block_number)
            .bind(&c.block_hash)
            .execute(&mut tx)
            .await?;
            query("DELETE FROM pending_deposits WHERE tx_hash = $1 AND log_index = $2")
                .bind(&c.tx_hash)
                .bind(c.log_index)
                .execute(&mut tx)
                .await?;
            committed.credited.push(Deposit {
                id,
                user: c.user,
                amount: c.amount,
                chain_tx_hash: c.tx_hash.clone(),
                log_index: c.log_index,
                credited_at: range.now,
                balance_after: None,
            });
        }
        for block in &range.blocks {
            query(
                "INSERT INTO chain_blocks (number, hash, parent_hash) VALUES ($1, $2, $3) \
                 ON CONFLICT (number) DO UPDATE SET hash = excluded.hash, parent_hash = excluded.parent_hash",
            )
            .bind(block.number)
            .bind(&block.hash)
            .bind(&block.parent_hash)
            .execute(&mut tx)
            .await?;
        }
        query("DELETE FROM chain_blocks WHERE number < $1")
            .bind(range.keep_blocks_from)
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(committed)
    }

    async fn replace_pending_deposits(&self, pending: &[PendingDeposit]) -> StoreResult<()> {
        let mut tx = self.write().begin().await?;
        query("DELETE FROM pending_deposits")
            .execute(&mut tx)
            .await?;
        for p in pending {
            query(
                "INSERT INTO pending_deposits (tx_hash, log_index, user_id, amount, block_number, confirmations, seen_at) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 \
                 WHERE NOT EXISTS (SELECT 1 FROM deposits WHERE chain_tx_hash = $1 AND log_index = $2) \
                 ON CONFLICT (tx_hash, log_index) DO NOTHING",
            )
            .bind(&p.tx_hash)
            .bind(p.log_index)
            .bind(p.user.0)
            .bind(p.amount.get())
            .bind(p.block_number)
            .bind(p.confirmations)
            .bind(p.seen_at)
            .execute(&mut tx)
            .await?;
        }
        tx.commit().await
    }

    async fn pending_deposits(
        &self,
        user: Option<UserId>,
        limit: i64,
    ) -> StoreResult<Vec<PendingDeposit>> {
        query(
            "SELECT tx_hash, log_index, user_id, amount, block_number, confirmations, seen_at \
             FROM pending_deposits WHERE $1 IS NULL OR user_id = $1 \
             ORDER BY block_number DESC, log_index DESC LIMIT $2",
        )
        .bind(user.map(|u| u.0))
        .bind(limit)
        .fetch_all(self.read())
        .await?
        .iter()
        .map(|row| {
            Ok(PendingDeposit {
                tx_hash: row.get("tx_hash")?,
                log_index: row.get("log_index")?,
                user: UserId(row.get("user_id")?),
                amount: micros(row.get("amount")?)?,
                block_number: row.get("block_number")?,
                confirmations: row.get("confirmations")?,
                seen_at: row.get("seen_at")?,
            })
        })
        .collect()
    }

    async fn deposits_of_user(
        &self,
        user: UserId,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Deposit>> {
        query(
            "SELECT id, user_id, amount, chain_tx_hash, log_index, credited_at FROM deposits \
             WHERE user_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(user.0)
        .bind(before)
        .bind(limit)
        .fetch_records(self.read())
        .await
    }

    async fn record_reorg(&self, reorg: &NewReorg) -> StoreResult<Reorg> {
        let mut tx = self.write().begin().await?;
        if let Some(open) = open_reorg(&mut tx).await? {
            tx.commit().await?;
            return Ok(open);
        }
        let affected = query(
            "SELECT d.id, d.user_id, d.amount, d.chain_tx_hash, d.log_index, c.block_number \
             FROM chain_deposits c JOIN deposits d ON d.id = c.deposit_id \
             WHERE c.block_number >= $1 ORDER BY d.id",
        )
        .bind(reorg.fork_block)
        .fetch_all(&mut tx)
        .await?
        .iter()
        .map(|row| {
            Ok(format!(
                "deposit {} user {} {} {}:{} block {}",
                row.get::<i64>("id")?,
                row.get::<i64>("user_id")?,
                row.get::<i64>("amount")?,
                row.get::<String>("chain_tx_hash")?,
                row.get::<i64>("log_index")?,
                row.get::<i64>("block_number")?,
            ))
        })
        .collect::<StoreResult<Vec<String>>>()?;
        // And the hot wallet's transactions mined in those blocks.
        let sent = query(
            "SELECT withdrawal_id, tx_hash, mined_block FROM chain_sends \
             WHERE mined_block >= $1 AND state IN ('mined', 'reverted') AND withdrawal_id IS NOT NULL \
             ORDER BY id",
        )
        .bind(reorg.fork_block)
        .fetch_all(&mut tx)
        .await?
        .iter()
        .map(|row| {
            Ok(format!(
                "withdrawal {} {} block {}",
                row.get::<i64>("withdrawal_id")?,
                row.get::<String>("tx_hash")?,
                row.get::<i64>("mined_block")?,
            ))
        })
        .collect::<StoreResult<Vec<String>>>()?;
        let affected = [affected, sent].concat().join("\n");
        query(
            "INSERT INTO chain_reorgs (detected_at, fork_block, depth, old_hash, new_hash, affected) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(reorg.detected_at)
        .bind(reorg.fork_block)
        .bind(reorg.depth)
        .bind(&reorg.old_hash)
        .bind(&reorg.new_hash)
        .bind(affected)
        .execute(&mut tx)
        .await?;
        let recorded = open_reorg(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound("the reorg just recorded".into()))?;
        tx.commit().await?;
        Ok(recorded)
    }

    async fn open_reorg(&self) -> StoreResult<Option<Reorg>> {
        let mut tx = self.write().begin().await?;
        let open = open_reorg(&mut tx).await?;
        tx.commit().await?;
        Ok(open)
    }

    async fn reorgs(&self, limit: i64) -> StoreResult<Vec<Reorg>> {
        let sql = format!("SELECT {REORG_COLUMNS} FROM chain_reorgs ORDER BY id DESC LIMIT $1");
        query(&sql)
            .bind(limit)
            .fetch_all(self.write())
            .await?
            .iter()
            .map(reorg_of)
            .collect()
    }

    async fn ack_reorg(
        &self,
        id: i64,
        by: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Reorg> {
        let mut tx = self.write().begin().await?;
        let acked = query(
            "UPDATE chain_reorgs SET acked_at = $1, acked_by = $2, ack_reason = $3 \
             WHERE id = $4 AND acked_at IS NULL RETURNING fork_block",
        )
        .bind(now)
        .bind(by)
        .bind(reason)
        .bind(id)
        .fetch_optional(&mut tx)
        .await?;
        let Some(row) = acked else {
            return Err(
                match query("SELECT id FROM chain_reorgs WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut tx)
                    .await?
                {
                    Some(_) => StoreError::Conflict(format!("reorg {id} was acknowledged already")),
                    None => StoreError::NotFound(format!("reorg {id}")),
                },
            );
        };
        // The kept hashes of the old branch are forgotten: the watcher
        // goes on from its cursor on the chain as the node has it now.
        let fork: i64 = row.get("fork_block")?;
        query("DELETE FROM chain_blocks WHERE number >= $1")
            .bind(fork)
            .execute(&mut tx)
            .await?;
        // So are the blocks the hot wallet's settled transactions were
        // mined in: what became of them is the operator's to check.
        query(
            "UPDATE chain_sends SET mined_block_hash = NULL \
             WHERE mined_block >= $1 AND state IN ('mined', 'reverted')",
        )
        .bind(fork)
        .execute(&mut tx)
        .await?;
        let sql = format!("SELECT {REORG_COLUMNS} FROM chain_reorgs WHERE id = $1");
        let reorg = reorg_of(&query(&sql).bind(id).fetch_one(&mut tx).await?)?;
        tx.commit().await?;
        Ok(reorg)
    }

    async fn record_custody_check(&self, check: &CustodyCheck) -> StoreResult<CustodyCheck> {
        let id: i64 = query(
            "INSERT INTO custody_checks (checked_at, block_number, addresses, chain_total, ledger_total, status) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(check.checked_at)
        .bind(check.block_number)
        .bind(check.addresses)
        .bind(&check.chain_total)
        .bind(check.ledger_total)
        .bind(check.status.as_str())
        .fetch_one(self.write())
        .await?
        .get("id")?;
        Ok(CustodyCheck {
            id,
            ..check.clone()
        })
    }

    async fn custody_checks(&self, limit: i64) -> StoreResult<Vec<CustodyCheck>> {
        query(
            "SELECT id, checked_at, block_number, addresses, chain_total, ledger_total, status \
             FROM custody_checks ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(self.read())
        .await?
        .iter()
        .map(|row| {
            let status: String = row.get("status")?;
            Ok(CustodyCheck {
                id: row.get("id")?,
                checked_at: row.get("checked_at")?,
                block_number: row.get("block_number")?,
                addresses: row.get("addresses")?,
                chain_total: row.get("chain_total")?,
                ledger_total: row.get("ledger_total")?,
                status: CustodyStatus::parse(&status).ok_or_else(|| {
                    StoreError::Invalid(format!("unknown custody status {status:?}"))
                })?,
            })
        })
        .collect()
    }

    async fn deposit_addresses(
        &self,
        after: Option<UserId>,
        limit: i64,
    ) -> StoreResult<Vec<(UserId, String)>> {
        query(
            "SELECT id, deposit_address FROM users WHERE deposit_address IS NOT NULL \
             AND ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after.map(|u| u.0))
        .bind(limit)
        .fetch_all(self.read())
        .await?
        .iter()
        .map(|row| Ok((UserId(row.get("id")?), row.get("deposit_address")?)))
        .collect()
    }

    async fn deposit_address_owners(
        &self,
        addresses: &[String],
    ) -> StoreResult<Vec<(String, UserId)>> {
        let mut owners = Vec::new();
        for chunk in addresses.chunks(ADDRESSES_PER_QUERY) {
            let placeholders = (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT id, deposit_address FROM users WHERE deposit_address IN ({placeholders})"
            );
            let rows = chunk
                .iter()
                .fold(query(&sql), |q, address| q.bind(address.as_str()))
                .fetch_all(self.read())
                .await?;
            for row in &rows {
                owners.push((row.get("deposit_address")?, UserId(row.get("id")?)));
            }
        }
        Ok(owners)
    }
}

const REORG_COLUMNS: &str =
    "id, detected_at, fork_block, depth, old_hash, new_hash, affected, acked_at, acked_by, ack_reason";

async fn open_reorg(tx: &mut Tx<'_>) -> StoreResult<Option<Reorg>> {
    let sql = format!(
        "SELECT {REORG_COLUMNS} FROM chain_reorgs WHERE acked_at IS NULL ORDER BY id LIMIT 1"
    );
    query(&sql)
        .fetch_optional(tx)
        .await?
        .as_ref()
        .map(reorg_of)
        .transpose()
}

fn reorg_of(row: &super::db::Row) -> StoreResult<Reorg> {
    Ok(Reorg {
        id: row.get("id")?,
        detected_at: row.get("detected_at")?,
        fork_block: row.get("fork_block")?,
        depth: row.get("depth")?,
        old_hash: row.get("old_hash")?,
        new_hash: row.get("new_hash")?,
        affected: row.get("affected")?,
        acked_at: row.get("acked_at")?,
        acked_by: row.get("acked_by")?,
        ack_reason: row.get("ack_reason")?,
    })
}
