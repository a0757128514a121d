//! Two-person approvals: requests, votes, and the one decision, taken in
//! the vote's transaction with the approval's row held, together with what
//! it decides for a withdrawal (released to the sender, or failed with its
//! funds returned).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use updown_domain::ids::WithdrawalId;

use super::audit::commit_audited;
use super::db::{query, Tx};
use super::funds::{change_withdrawal_in, lock_withdrawal};
use super::rows::{corrupt, WITHDRAWAL_COLUMNS};
use super::SqlStore;
use crate::model::{
    Approval, ApprovalKind, ApprovalState, ApprovalVote, NewApproval, Vote, Withdrawal,
    WithdrawalChange,
};
use crate::{ApprovalStore, AuditFor, AuditWith, StoreError, StoreResult};

const APPROVAL_COLUMNS: &str =
    "id, kind, subject, action, reason, requested_by, requested_at, needed, state, decided_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ApprovalRow {
    id: i64,
    kind: String,
    subject: String,
    action: String,
    reason: Option<String>,
    requested_by: String,
    requested_at: DateTime<Utc>,
    needed: i32,
    state: String,
    decided_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;

    fn try_from(row: ApprovalRow) -> StoreResult<Approval> {
        Ok(Approval {
            id: row.id,
            kind: ApprovalKind::parse(&row.kind)
                .ok_or_else(|| corrupt("approval kind", &row.kind))?,
            subject: row.subject,
            action: row.action,
            reason: row.reason,
            requested_by: row.requested_by,
            requested_at: row.requested_at,
            needed: row.needed,
            state: ApprovalState::parse(&row.state)
                .ok_or_else(|| corrupt("approval state", &row.state))?,
            decided_at: row.decided_at,
            votes: Vec::new(),
        })
    }
}

impl super::db::Record for Approval {
    type Row = ApprovalRow;
}

#[derive(sqlx::FromRow)]
pub(crate) struct VoteRow {
    approval_id: i64,
    email: String,
    approve: bool,
    reason: Option<String>,
    at: DateTime<Utc>,
}

impl TryFrom<VoteRow> for (i64, ApprovalVote) {
    type Error = StoreError;

    fn try_from(row: VoteRow) -> StoreResult<(i64, ApprovalVote)> {
        Ok((
            row.approval_id,
            ApprovalVote {
                operator: row.email,
                approve: row.approve,
                reason: row.reason,
                at: row.at,
            },
        ))
    }
}

impl super::db::Record for (i64, ApprovalVote) {
    type Row = VoteRow;
}

/// Requests an approval inside `tx` (a withdrawal's, with its request).
pub(crate) async fn insert_approval(tx: &mut Tx<'_>, new: &NewApproval) -> StoreResult<Approval> {
    let sql = format!(
        "INSERT INTO approvals (kind, subject, action, reason, requested_by, requested_at, needed, state) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending') RETURNING {APPROVAL_COLUMNS}"
    );
    query(&sql)
        .bind(new.kind.as_str())
        .bind(&new.subject)
        .bind(&new.action)
        .bind(&new.reason)
        .bind(&new.requested_by)
        .bind(new.now)
        .bind(new.needed)
        .fetch_one(&mut *tx)
        .await?
        .record()
}

/// Whether the round `code` (in any market) has begun settling or is
/// final, read with `lock` on its row.
async fn settlement_begun(tx: &mut Tx<'_>, code: &str, lock: &str) -> StoreResult<bool> {
    let sql = format!(
        "SELECT settle_started_at IS NOT NULL OR status IN ('SETTLED', 'VOID') FROM rounds WHERE code = $1{lock}"
    );
    let mut begun = false;
    for row in query(&sql).bind(code).fetch_all(tx).await? {
        begun |= row.get_at::<bool>(0)?;
    }
    Ok(begun)
}

/// Ends what is pending for `subject`: its withdrawal failed, or its
/// round settled, before anyone decided.
pub(crate) async fn close_pending(
    tx: &mut Tx<'_>,
    kind: ApprovalKind,
    subject: &str,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    query(
        "UPDATE approvals SET state = 'rejected', decided_at = $3 \
         WHERE kind = $1 AND subject = $2 AND state = 'pending'",
    )
    .bind(kind.as_str())
    .bind(subject)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// `approvals` with their votes, oldest vote first.
async fn with_votes(tx: &mut Tx<'_>, mut approvals: Vec<Approval>) -> StoreResult<Vec<Approval>> {
    let (Some(low), Some(high)) = (
        approvals.iter().map(|a| a.id).min(),
        approvals.iter().map(|a| a.id).max(),
    ) else {
        return Ok(approvals);
    };
    let votes: Vec<(i64, ApprovalVote)> = query(
        "SELECT v.approval_id, o.email, v.approve, v.reason, v.at FROM approval_votes v \
         JOIN operators o ON o.id = v.operator_id \
         WHERE v.approval_id BETWEEN $1 AND $2 ORDER BY v.at, o.id",
    )
    .bind(low)
    .bind(high)
    .fetch_records(&mut *tx)
    .await?;
    for approval in &mut approvals {
        approval.votes = votes
            .iter()
            .filter(|(id, _)| *id == approval.id)
            .map(|(_, vote)| vote.clone())
            .collect();
    }
    Ok(approvals)
}

async fn one_with_votes(tx: &mut Tx<'_>, id: i64) -> StoreResult<Approval> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
    let found: Approval = query(&sql)
        .bind(id)
        .fetch_record(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
    Ok(with_votes(tx, vec![found]).await?.remove(0))
}

#[async_trait]
impl ApprovalStore for SqlStore {
    async fn request_approval(
        &self,
        approval: &NewApproval,
        audit: Option<AuditFor<'_>>,
    ) -> StoreResult<Approval> {
        let mut tx = self.write().begin().await?;
        // Checked again under the round's row: a request filed once its
        // settlement began would wait for a decision nobody can take.
        if approval.kind == ApprovalKind::Settlement
            && settlement_begun(&mut tx, &approval.subject, self.for_share()).await?
        {
            return Err(StoreError::Conflict(format!(
                "round {} is settled or being settled already",
                approval.subject
            )));
        }
        let requested = insert_approval(&mut tx, approval).await?;
        commit_audited(tx, audit.map(|entry| entry(requested.id)).as_ref()).await?;
        Ok(requested)
    }

    async fn approval(&self, id: i64) -> StoreResult<Approval> {
        let mut tx = self.read().begin().await?;
        let found = one_with_votes(&mut tx, id).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn approved(&self, kind: ApprovalKind, subject: &str) -> StoreResult<Option<Approval>> {
        self.newest_approval(kind, subject, ApprovalState::Approved)
            .await
    }

    async fn pending_approval(
        &self,
        kind: ApprovalKind,
        subject: &str,
    ) -> StoreResult<Option<Approval>> {
        self.newest_approval(kind, subject, ApprovalState::Pending)
            .await
    }

    async fn approvals(
        &self,
        state: Option<ApprovalState>,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Approval>> {
        let mut tx = self.read().begin().await?;
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE ($1 IS NULL OR state = $1) \
             AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
        );
        let found: Vec<Approval> = query(&sql)
            .bind(state.map(ApprovalState::as_str))
            .bind(before)
            .bind(limit)
            .fetch_records(&mut tx)
            .await?;
        let found = with_votes(&mut tx, found).await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn vote(&self, vote: &Vote, audit: AuditWith<'_>) -> StoreResult<Approval> {
        let id = vote.approval;
        let mut tx = self.write().begin().await?;
        // Locks in the order every writer takes them: a withdrawal's row
        // before its approval's (failing a held withdrawal by hand locks
        // the withdrawal, then closes its approval), so the two never wait
        // on each other.
        let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1");
        let unlocked: Approval = query(&sql)
            .bind(id)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
        let withdrawal = match unlocked.kind {
            ApprovalKind::Withdrawal => {
                Some(WithdrawalId(unlocked.subject.parse().map_err(|_| {
                    corrupt("approval's withdrawal", &unlocked.subject)
                })?))
            }
            ApprovalKind::Settlement => None,
        };
        match withdrawal {
            Some(withdrawal) => {
                lock_withdrawal(&mut tx, withdrawal).await?;
            }
            // The round's row, as a settlement's beginning takes it (and
            // for update: two votes on one round's requests take turns):
            // a result by hand is approved only while none has begun and
            // no other approved waits to be carried out, and none begins
            // against one approved.
            None => {
                if settlement_begun(&mut tx, &unlocked.subject, self.for_update()).await? {
                    return Err(StoreError::Conflict(format!(
                        "round {} is settled or being settled already: approval {id} has nothing left to decide",
                        unlocked.subject
                    )));
                }
                let waiting = query(
                    "SELECT id FROM approvals WHERE kind = $1 AND subject = $2 AND state = 'approved' AND id <> $3",
                )
                .bind(ApprovalKind::Settlement.as_str())
                .bind(&unlocked.subject)
                .bind(id)
                .fetch_optional(&mut tx)
                .await?;
                if let Some(row) = waiting {
                    return Err(StoreError::Conflict(format!(
                        "round {}: approval {} was approved and is carried out first",
                        unlocked.subject,
                        row.get_at::<i64>(0)?
                    )));
                }
            }
        }
        // Held until the commit: a second vote waits here, then finds the
        // decision this one made.
        let sql = format!(
            "UPDATE approvals SET state = state WHERE id = $1 RETURNING {APPROVAL_COLUMNS}"
        );
        let approval: Approval = query(&sql)
            .bind(id)
            .fetch_record(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("approval {id}")))?;
        if approval.state != ApprovalState::Pending {
            return Err(StoreError::Conflict(format!(
                "approval {id} is {} already",
                approval.state.as_str()
            )));
        }
        let voter = query("SELECT email, disabled_at FROM operators WHERE id = $1")
            .bind(vote.operator)
            .fetch_optional(&mut tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("operator {}", vote.operator)))?;
        let email: String = voter.get("email")?;
        let disabled: Option<DateTime<Utc>> = voter.get("disabled_at")?;
        if disabled.is_some() {
            return Err(StoreError::Conflict(format!(
                "{email} is disabled: their vote does not count"
            )));
        }
        if email == approval.requested_by {
            return Err(StoreError::Conflict(format!(
                "{email} asked for approval {id}: another person must decide it"
            )));
        }
        if let Some(withdrawal) = withdrawal {
            // An operator who is also the player: their own withdrawal.
            let player: Option<String> = query(
                "SELECT u.email FROM withdrawals w JOIN users u ON u.id = w.user_id WHERE w.id = $1",
            )
            .bind(withdrawal.0)
            .fetch_optional(&mut tx)
            .await?
            .map(|row| row.get_at(0))
            .transpose()?;
            if player.is_some_and(|player| player.eq_ignore_ascii_case(&email)) {
                return Err(StoreError::Conflict(format!(
                    "{email} is the player who asked for withdrawal {withdrawal}: another person must decide it"
                )));
            }
        }
        let voted: i64 = query(
            "SELECT COUNT(*) FROM approval_votes WHERE approval_id = $1 AND operator_id = $2",
        )
        .bind(id)
        .bind(vote.operator)
        .fetch_one(&mut tx)
        .await?
        .get_at(0)?;
        if voted > 0 {
            return Err(StoreError::Conflict(format!(
                "{email} has approved {id} already: it needs another person"
            )));
        }
        query(
            "INSERT INTO approval_votes (approval_id, operator_id, approve, reason, at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(vote.operator)
        .bind(vote.approve)
        .bind(&vote.reason)
        .bind(vote.now)
        .execute(&mut tx)
        .await?;
        let decided = if vote.approve {
            // Only yeses of operators still enabled and still in a role
            // that decides this kind count: one disabled or moved since
            // voting no longer vouches for anything.
            let roles = match approval.kind {
                ApprovalKind::Withdrawal => "('treasurer', 'admin')",
                ApprovalKind::Settlement => "('operator', 'admin')",
            };
            let count = format!(
                "SELECT COUNT(*) FROM approval_votes v JOIN operators o ON o.id = v.operator_id \
                 WHERE v.approval_id = $1 AND v.approve AND o.disabled_at IS NULL AND o.email <> $2 \
                 AND o.role IN {roles}"
            );
            let yes: i64 = query(&count)
                .bind(id)
                .bind(&approval.requested_by)
                .fetch_one(&mut tx)
                .await?
                .get_at(0)?;
            (yes >= i64::from(approval.needed)).then_some(ApprovalState::Approved)
        } else {
            Some(ApprovalState::Rejected)
        };
        let mut decided_withdrawal = None;
        if let Some(state) = decided {
            query("UPDATE approvals SET state = $2, decided_at = $3 WHERE id = $1")
                .bind(id)
                .bind(state.as_str())
                .bind(vote.now)
                .execute(&mut tx)
                .await?;
            if let Some(withdrawal) = withdrawal {
                decided_withdrawal =
                    Some(decide_withdrawal(&mut tx, withdrawal, state, &email, vote).await?);
            }
        }
        let decided = one_with_votes(&mut tx, id).await?;
        for entry in audit(&decided, decided_withdrawal.as_ref()) {
            super::audit::append(&mut tx, &entry).await?;
        }
        tx.commit().await?;
        Ok(decided)
    }
}

/// Releases an approved withdrawal to the sender, or fails a rejected one
/// (its funds back to the player), in the vote's transaction: the
/// withdrawal as it then stands.
async fn decide_withdrawal(
    tx: &mut Tx<'_>,
    withdrawal: WithdrawalId,
    state: ApprovalState,
    voter: &str,
    vote: &Vote,
) -> StoreResult<Withdrawal> {
    if state == ApprovalState::Rejected {
        let reason = match &vote.reason {
            Some(reason) => format!("rejected by {voter}: {reason}"),
            None => format!("rejected by {voter}"),
        };
        let fail = WithdrawalChange::Fail {
            reason,
            rejection: None,
        };
        return change_withdrawal_in(tx, withdrawal, &fail, vote.now).await;
    }
    let sql = format!(
        "UPDATE withdrawals SET awaiting_approval = FALSE, updated_at = $2 \
         WHERE id = $1 AND status = 'QUEUED' AND awaiting_approval RETURNING {WITHDRAWAL_COLUMNS}"
    );
    query(&sql)
        .bind(withdrawal.0)
        .bind(vote.now)
        .fetch_record(&mut *tx)
        .await?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "withdrawal {withdrawal} no longer waits for approval"
            ))
        })
}

impl SqlStore {
    /// The newest approval of `subject` in `state`, with its votes.
    async fn newest_approval(
        &self,
        kind: ApprovalKind,
        subject: &str,
        state: ApprovalState,
    ) -> StoreResult<Option<Approval>> {
        let mut tx = self.read().begin().await?;
        let sql = format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE kind = $1 AND subject = $2 \
             AND state = $3 ORDER BY id DESC LIMIT 1"
        );
        let found: Vec<Approval> = query(&sql)
            .bind(kind.as_str())
            .bind(subject)
            .bind(state.as_str())
            .fetch_records(&mut tx)
            .await?;
        let found = with_votes(&mut tx, found).await?;
        tx.commit().await?;
        Ok(found.into_iter().next())
    }
}
