//! The withdrawal worker's one step, oldest first and in bounded pages
//! until nothing is left:
//! 1. each QUEUED withdrawal is claimed (QUEUED -> SUBMITTING, on its row as
//!    it stands, so one an operator failed meanwhile is skipped) before
//!    anything is sent, then handed to the chain sender;
//! 2. each SUBMITTING one (a send that crashed or erred) is asked after and
//!    sent again only if the chain has never seen it;
//! 3. each SUBMITTED one is asked after until it is confirmed or failed
//!    (one an operator submitted, sent by hand and unknown to the chain
//!    sender, is left to them).
//!
//! The withdrawal id is the request id toward the chain, so sending again
//! after a crash finds the first transfer. Once claimed, a withdrawal fails
//! only on the chain's word: an operator can no longer refund what may be
//! on its way. With the manual sender there is no worker; operators step
//! withdrawals with `updown withdrawals`.

use std::sync::Arc;

use updown_domain::ids::WithdrawalId;
use updown_store::{ChainRejection, Withdrawal, WithdrawalChange, WithdrawalStatus};

use super::App;
use crate::chain::{ChainError, ChainSender, Transfer, TransferState};
use crate::error::AppResult;

/// Withdrawals read per page.
const PAGE: i64 = 100;

/// What one step did, by withdrawal id.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerTick {
    pub submitted: Vec<i64>,
    pub confirmed: Vec<i64>,
    pub failed: Vec<i64>,
    /// Withdrawals the chain or the store could not take now, with why;
    /// retried next step.
    pub errors: Vec<(i64, String)>,
    /// Sent again: the node had dropped them or never got them.
    pub rebroadcast: Vec<i64>,
    /// Stuck, and replaced with higher fees.
    pub replaced: Vec<i64>,
    /// Sweeps (ids) whose transfer this step booked.
    pub swept: Vec<i64>,
    /// Why the sender signs nothing now (funds, gas, fees), if so.
    pub held: Option<String>,
    /// Another process was taking the step.
    pub held_elsewhere: bool,
}

impl WorkerTick {
    pub fn is_idle(&self) -> bool {
        *self == WorkerTick::default()
    }
}

impl App {
    /// One worker step, if there is a chain sender and no other process is
    /// taking a step (the store's scheduler lease).
    pub async fn withdrawal_step(&self) -> AppResult<WorkerTick> {
        if self.chain.is_none() && self.sender.is_none() {
            return Ok(WorkerTick::default());
        }
        let Some(lease) = self.store.scheduler_lease().await? else {
            return Ok(WorkerTick {
                held_elsewhere: true,
                ..WorkerTick::default()
            });
        };
        let tick = match (&self.sender, &self.chain) {
            (Some(sender), _) => self.evm_withdrawals(sender).await,
            (None, Some(chain)) => self.step_withdrawals(chain.clone()).await,
            (None, None) => Ok(WorkerTick::default()),
        };
        if let Err(e) = lease.release().await {
            tracing::warn!(error = %e, "releasing the scheduler lease failed; the connection closes it");
        }
        let tick = tick?;
        if !tick.is_idle() {
            tracing::info!(event = "withdrawal_step", ?tick);
        }
        Ok(tick)
    }

    async fn step_withdrawals(&self, chain: Arc<dyn ChainSender>) -> AppResult<WorkerTick> {
        let mut tick = WorkerTick::default();
        for status in [
            WithdrawalStatus::Queued,
            WithdrawalStatus::Submitting,
            WithdrawalStatus::Submitted,
        ] {
            let mut after = None;
            loop {
                let page = self.store.withdrawals_to_step(status, after, PAGE).await?;
                for withdrawal in &page {
                    self.step_one(&*chain, withdrawal, &mut tick).await;
                }
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => after = Some(last.id),
                    _ => break,
                }
            }
        }
        Ok(tick)
    }

    /// Moves one withdrawal as far as the chain allows now.
    async fn step_one(
        &self,
        chain: &dyn ChainSender,
        withdrawal: &Withdrawal,
        tick: &mut WorkerTick,
    ) {
        let id = withdrawal.id;
        let state = match withdrawal.status {
            WithdrawalStatus::Queued => {
                // Claimed first: from here on nobody refunds it but the chain.
                match self
                    .change_withdrawal(id, WithdrawalChange::Claim, &chain.name(), None)
                    .await
                {
                    Ok(_) => chain.send(&transfer(withdrawal)).await,
                    // Failed or stepped by an operator meanwhile: not ours.
                    Err(crate::error::AppError::Conflict(_)) => return,
                    Err(e) => Err(ChainError(format!("claiming it: {e}"))),
                }
            }
            WithdrawalStatus::Submitting => match chain.status(id).await {
                // Claimed but never sent (a crash, an error): send it
                // (once, by its request id).
                Ok(TransferState::Unknown) => chain.send(&transfer(withdrawal)).await,
                other => other,
            },
            _ => match chain.status(id).await {
                // Submitted by an operator, who sent it by hand: theirs to
                // confirm or fail, never sent again from here.
                Ok(TransferState::Unknown) => return,
                other => other,
            },
        };
        let result = match steps(state) {
            Err(why) => Err(why),
            Ok(steps) => self.apply_steps(id, steps, &chain.name(), tick).await,
        };
        if let Err(why) = result {
            tracing::warn!(withdrawal = %id, error = %why, "withdrawal step failed; retrying next step");
            tick.errors.push((id.0, why));
        }
    }

    /// Applies `steps` in order; a step already taken (its status reached
    /// before) is skipped, and a failed one stops the rest.
    async fn apply_steps(
        &self,
        id: WithdrawalId,
        steps: Vec<WithdrawalChange>,
        actor: &str,
        tick: &mut WorkerTick,
    ) -> Result<(), String> {
        for step in steps {
            let current = self.store.withdrawal(id).await.map_err(|e| e.to_string())?;
            if current.status == step.target() {
                continue;
            }
            let done = match step {
                WithdrawalChange::Claim => continue,
                WithdrawalChange::Submit { .. } => &mut tick.submitted,
                WithdrawalChange::Confirm { .. } => &mut tick.confirmed,
                WithdrawalChange::Fail { .. } => &mut tick.failed,
            };
            self.change_withdrawal(id, step, actor, None)
                .await
                .map_err(|e| e.to_string())?;
            done.push(id.0);
        }
        Ok(())
    }
}

/// What the chain's answer means for a claimed or submitted withdrawal:
/// the steps to take, in order.
fn steps(state: Result<TransferState, ChainError>) -> Result<Vec<WithdrawalChange>, String> {
    let submit = |tx_hash: &str| WithdrawalChange::Submit {
        chain_tx_hash: Some(tx_hash.to_string()),
    };
    match state {
        Err(e) => Err(e.to_string()),
        Ok(TransferState::Unknown) => {
            Err("the chain does not know a transfer it was just sent".to_string())
        }
        Ok(TransferState::Pending { tx_hash }) => Ok(vec![submit(&tx_hash)]),
        Ok(TransferState::Confirmed { tx_hash }) => Ok(vec![
            submit(&tx_hash),
            WithdrawalChange::Confirm {
                chain_tx_hash: Some(tx_hash),
            },
        ]),
        Ok(TransferState::Failed { reason }) => Ok(vec![WithdrawalChange::Fail {
            reason,
            rejection: Some(ChainRejection::Sender),
        }]),
    }
}

fn transfer(withdrawal: &Withdrawal) -> Transfer {
    Transfer {
        request_id: withdrawal.id,
        to: withdrawal.address.clone(),
        amount: withdrawal.amount,
    }
}
