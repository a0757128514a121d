//! Two people for what one should not do alone. A withdrawal over
//! WITHDRAWAL_APPROVAL_OVER is held (its funds too) until two treasurers
//! approve it; a result by hand (UP or DOWN, or VOID of a round with bets)
//! waits for a second operator, then settles under both names. Votes are
//! named operators' only (break-glass has no account), one each; the
//! requester never decides their own request; a disabled operator's vote
//! is refused and, cast before, no longer counts. Every request and vote
//! is audited with its reason.

use updown_domain::operator::Area;
use updown_domain::round::Outcome;
use updown_domain::RoundCode;
use updown_store::{Approval, ApprovalKind, ApprovalState, NewApproval, Round, Vote, Withdrawal};

use super::{App, SettleRequest, Staff};
use crate::error::{AppError, AppResult};

/// A result by hand: settled at once (nothing to protect), or waiting.
pub enum ByHand {
    Settled(Box<Round>),
    Waiting(Approval),
}

/// A vote's outcome, with the round it settled, if it did.
pub struct Decision {
    pub approval: Approval,
    pub settled: Option<Round>,
}

/// What an approval's kind lets decide it.
fn area(kind: ApprovalKind) -> Area {
    match kind {
        ApprovalKind::Withdrawal => Area::Money,
        ApprovalKind::Settlement => Area::Rounds,
    }
}

impl App {
    /// An operator's result by hand. VOID of a round nobody bet on settles
    /// at once; any other waits for a second operator's approval, checked
    /// first as the settlement itself would be now (the round locked, UP
    /// or DOWN only after the close).
    pub async fn settle_by_hand(
        &self,
        staff: &Staff,
        code: RoundCode,
        outcome: Outcome,
        reason: String,
        declared_actor: Option<&str>,
    ) -> AppResult<ByHand> {
        let actor = staff.actor_for(declared_actor);
        if reason.trim().is_empty() {
            return Err(AppError::Invalid("a manual result needs a reason".into()));
        }
        let now = self.clock.now();
        let round = self.settleable_round(code, now).await?;
        if let Some(begun) = &round.settlement {
            return Err(AppError::Conflict(format!(
                "round {code} is being settled as {} already (by {}); it finishes by itself at the next \
                 scheduler step, or with settle AUTO",
                begun.plan.outcome.as_str(),
                begun.actor
            )));
        }
        round.clock().check_manual_result(now, outcome)?;
        let pools = self.pools(round.id).await?;
        if outcome == Outcome::Void && pools.bets_up + pools.bets_down == 0 {
            let request = SettleRequest::Manual {
                outcome,
                actor,
                reason,
            };
            return Ok(ByHand::Settled(Box::new(
                self.settle_round(code, request).await?,
            )));
        }
        let entry = |id: i64| {
            self.audit_entry(
                &actor,
                "approval_request",
                format!("approval {id}: settle round {code} {}", outcome.as_str()),
                Some(reason.clone()),
            )
        };
        let approval = self
            .store
            .request_approval(
                &NewApproval {
                    kind: ApprovalKind::Settlement,
                    subject: code.to_string(),
                    action: outcome.as_str().to_string(),
                    reason: Some(reason.clone()),
                    requested_by: actor.clone(),
                    // Whoever holds the break-glass token may also have a
                    // named account: two others must approve.
                    needed: if staff.is_break_glass() { 2 } else { 1 },
                    now,
                },
                Some(&entry),
            )
            .await?;
        tracing::info!(event = "approval_requested", approval = approval.id, round = %code, outcome = outcome.as_str());
        Ok(ByHand::Waiting(approval))
    }

    pub async fn approvals(
        &self,
        state: Option<ApprovalState>,
        before: Option<i64>,
        limit: i64,
    ) -> AppResult<Vec<Approval>> {
        Ok(self.store.approvals(state, before, limit).await?)
    }

    /// A named operator's vote on approval `id`: yes or no, with a reason
    /// (required to say no). A settlement approved here is carried out at
    /// once under both names (and by the scheduler, should this process
    /// die first: [`App::carry_out_approved`]).
    pub async fn decide_approval(
        &self,
        staff: &Staff,
        id: i64,
        approve: bool,
        reason: Option<String>,
    ) -> AppResult<Decision> {
        let operator = self.operator_of(staff).await?;
        let approval = self.store.approval(id).await?;
        let needs = area(approval.kind);
        if !staff.role.allows(needs) {
            return Err(AppError::Forbidden(format!(
                "{} is {}: a {} approval is decided by one of {}",
                staff.actor,
                staff.role.as_str(),
                approval.kind.as_str(),
                needs
                    .roles()
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if !approve && reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
            return Err(AppError::Invalid(
                "a rejection needs a reason (the requester sees it)".into(),
            ));
        }
        // The vote's entry, and its withdrawal's step when it decided
        // one, are written in the vote's transaction.
        let entries = |decided: &Approval, withdrawal: Option<&Withdrawal>| {
            let mut entries = vec![self.audit_entry(
                &staff.actor,
                if approve {
                    "approval_approve"
                } else {
                    "approval_reject"
                },
                format!(
                    "approval {id}: {} {} {} ({})",
                    decided.kind.as_str(),
                    decided.subject,
                    decided.action,
                    decided.state.as_str()
                ),
                reason.clone(),
            )];
            if let Some(withdrawal) = withdrawal {
                entries.push(self.withdrawal_entry(
                    &staff.actor,
                    withdrawal.id,
                    withdrawal.status,
                    withdrawal.failure_reason.clone(),
                ));
            }
            entries
        };
        let decided = self
            .store
            .vote(
                &Vote {
                    approval: id,
                    operator: operator.id,
                    approve,
                    reason: reason.clone(),
                    now: self.clock.now(),
                },
                &entries,
            )
            .await?;
        tracing::info!(event = "approval_vote", approval = id, operator = %staff.actor, approve, state = decided.state.as_str());
        if decided.kind == ApprovalKind::Withdrawal && decided.state != ApprovalState::Pending {
            if let Ok(subject) = decided.subject.parse() {
                let withdrawal = self
                    .store
                    .withdrawal(updown_domain::WithdrawalId(subject))
                    .await?;
                self.withdrawal_announced(&withdrawal);
            }
        }
        let settled = if decided.kind == ApprovalKind::Settlement
            && decided.state == ApprovalState::Approved
        {
            Some(self.carry_out(&decided).await?)
        } else {
            None
        };
        Ok(Decision {
            approval: decided,
            settled,
        })
    }

    /// Carries out the approved result by hand of a locked round, if one
    /// waits (its approver's process died before carrying it out); the
    /// scheduler asks at every step.
    pub async fn carry_out_approved(&self, code: RoundCode) -> AppResult<Option<Round>> {
        let Some(approval) = self
            .store
            .approved(ApprovalKind::Settlement, &code.to_string())
            .await?
        else {
            return Ok(None);
        };
        if self.round(code).await?.settlement.is_some() {
            // Begun already (this result, or one before it): the stored
            // decision resumes as any other.
            return Ok(None);
        }
        Ok(Some(self.carry_out(&approval).await?))
    }

    /// Settles an approved result by hand, under the requester's and the
    /// approver's names; safe to repeat (a settlement resumes).
    async fn carry_out(&self, approval: &Approval) -> AppResult<Round> {
        let code = RoundCode::parse(&approval.subject).map_err(|_| {
            AppError::Internal(anyhow::anyhow!("approval {}: bad round", approval.id))
        })?;
        let outcome: Outcome = approval.action.parse().map_err(|_| {
            AppError::Internal(anyhow::anyhow!("approval {}: bad result", approval.id))
        })?;
        let approvers: Vec<&str> = approval
            .votes
            .iter()
            .filter(|v| v.approve)
            .map(|v| v.operator.as_str())
            .collect();
        let request = SettleRequest::Manual {
            outcome,
            actor: format!(
                "{}, approved by {}",
                approval.requested_by,
                approvers.join(" and ")
            ),
            reason: approval.reason.clone().unwrap_or_default(),
        };
        let worker = self.clone();
        super::context::spawn(async move { worker.settle_round(code, request).await })
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("settlement task failed: {e}")))?
    }
}
