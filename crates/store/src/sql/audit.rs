//! The audit log's hash chain (`updown_domain::audit`): a row is written
//! with its links in one transaction that holds `audit_head` (so writers
//! chain one after another, on both engines), and read back to verify.

use chrono::{DateTime, Utc};
use updown_domain::audit::{chain_hash, GENESIS};

use super::db::{query, Tx};
use crate::model::{AuditChain, AuditEntry};
use crate::{StoreError, StoreResult};

/// Rows read per page when verifying.
const PAGE: i64 = 1_000;

pub(crate) const AUDIT_COLUMNS: &str =
    "id, at, actor, action, subject, reason, credential, client, request_id, prev_hash, hash";

/// The instant as the log keeps it: whole microseconds (what PostgreSQL
/// stores), so the hash of what was written is the hash of what is read.
pub(crate) fn stored_instant(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at)
}

/// The hash of `entry` (its id set) after `prev_hash`.
fn entry_hash(prev_hash: &str, entry: &AuditEntry) -> String {
    let id = entry.id.to_string();
    let at = entry.at.timestamp_micros().to_string();
    chain_hash(
        prev_hash,
        &[
            ("id", Some(&id)),
            ("at", Some(&at)),
            ("actor", Some(&entry.actor)),
            ("action", Some(&entry.action)),
            ("subject", Some(&entry.subject)),
            ("reason", entry.reason.as_deref()),
            ("credential", entry.credential.as_deref()),
            ("client", entry.client.as_deref()),
            ("request_id", entry.request_id.as_deref()),
        ],
    )
}

/// The head, locked until `tx` ends: (last id, hash, legacy_through).
async fn lock_head(tx: &mut Tx<'_>) -> StoreResult<(i64, String, i64)> {
    let row = query(
        "UPDATE audit_head SET last_id = last_id WHERE id = 1 RETURNING last_id, hash, legacy_through",
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok((row.get_at(0)?, row.get_at(1)?, row.get_at(2)?))
}

async fn link(tx: &mut Tx<'_>, id: i64, prev_hash: &str, hash: &str) -> StoreResult<()> {
    query("UPDATE audit_log SET prev_hash = $2, hash = $3 WHERE id = $1")
        .bind(id)
        .bind(prev_hash)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Records `entry` as the chain's next row; the rows from before the chain
/// are chained first, once.
pub(crate) async fn append(tx: &mut Tx<'_>, entry: &AuditEntry) -> StoreResult<()> {
    let (mut last_id, mut head, legacy_through) = lock_head(tx).await?;
    if last_id < legacy_through {
        let sql =
            format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id > $1 AND id <= $2 ORDER BY id");
        let legacy: Vec<AuditEntry> = query(&sql)
            .bind(last_id)
            .bind(legacy_through)
            .fetch_records(&mut *tx)
            .await?;
        for row in legacy {
            let hash = entry_hash(&head, &row);
            link(tx, row.id, &head, &hash).await?;
            (last_id, head) = (row.id, hash);
        }
    }
    let at = stored_instant(entry.at);
    let id: i64 = query(
        "INSERT INTO audit_log (at, actor, action, subject, reason, credential, client, request_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(at)
    .bind(&entry.actor)
    .bind(&entry.action)
    .bind(&entry.subject)
    .bind(&entry.reason)
    .bind(&entry.credential)
    .bind(&entry.client)
    .bind(&entry.request_id)
    .fetch_one(&mut *tx)
    .await?
    .get_at(0)?;
    if id <= last_id {
        // Not a conflict: the callers take a conflict for a refused step
        // (a price there already, a withdrawal moved on). This is the log
        // broken (its id sequence behind, after a bad restore, say), and
        // nothing is written until an operator repairs it.
        return Err(StoreError::Other(anyhow::anyhow!(
            "audit row {id} would come before the chain's head {last_id}: \
             the audit log's id sequence is behind its rows"
        )));
    }
    let written = AuditEntry {
        id,
        at,
        chain: None,
        ..entry.clone()
    };
    let hash = entry_hash(&head, &written);
    link(tx, id, &head, &hash).await?;
    query("UPDATE audit_head SET last_id = $1, hash = $2 WHERE id = 1")
        .bind(id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Walks the chain from the first row: every row's links must follow from
/// the one before it, and the last must be the head.
pub(crate) async fn verify(tx: &mut Tx<'_>) -> StoreResult<AuditChain> {
    let (head_id, head_hash, legacy_through) = {
        let row = query("SELECT last_id, hash, legacy_through FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        (
            row.get_at::<i64>(0)?,
            row.get_at::<String>(1)?,
            row.get_at::<i64>(2)?,
        )
    };
    let mut chain = AuditChain {
        rows: 0,
        head_id,
        head_hash: head_hash.clone(),
        broken: None,
    };
    let mut expected = GENESIS.to_string();
    let mut last_chained = 0i64;
    let mut after = 0i64;
    let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2");
    loop {
        let page: Vec<AuditEntry> = query(&sql)
            .bind(after)
            .bind(PAGE)
            .fetch_records(&mut *tx)
            .await?;
        for row in &page {
            chain.rows += 1;
            let Some(links) = &row.chain else {
                // Unchained: only rows from before the chain, after the head.
                if row.id > head_id && row.id <= legacy_through {
                    continue;
                }
                chain.broken = Some((
                    row.id,
                    "has no hash: written behind the service's back".into(),
                ));
                return Ok(chain);
            };
            if links.prev_hash != expected {
                chain.broken = Some((
                    row.id,
                    "does not follow the row before it: a row was deleted, inserted or moved"
                        .into(),
                ));
                return Ok(chain);
            }
            if entry_hash(&expected, row) != links.hash {
                chain.broken = Some((
                    row.id,
                    "was edited: its fields no longer give its hash".into(),
                ));
                return Ok(chain);
            }
            expected = links.hash.clone();
            last_chained = row.id;
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.id,
            _ => break,
        }
    }
    if (last_chained, expected.as_str()) != (head_id, head_hash.as_str()) {
        chain.broken = Some((
            head_id,
            format!(
                "the chain ends at row {last_chained}, not at the head (row {head_id}): rows at the end were deleted"
            ),
        ));
    }
    Ok(chain)
}

/// Commits `tx` with `audit`, when given, as the audit log's next entry:
/// a step and who took it commit together or not at all.
pub(crate) async fn commit_audited(mut tx: Tx<'_>, audit: Option<&AuditEntry>) -> StoreResult<()> {
    if let Some(entry) = audit {
        append(&mut tx, entry).await?;
    }
    tx.commit().await?;
    Ok(())
}
