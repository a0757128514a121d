//! The withdrawal worker's one step: queued withdrawals are handed to the
//! chain sender and recorded as submitted; submitted ones are asked after
//! and recorded as confirmed, or failed with the funds returned. The
//! withdrawal id is the request id toward the chain, so a step that
//! crashed after sending and before recording sends nothing new when it
//! runs again: the sender finds the first transfer. With the manual sender
//! there is no worker; operators step withdrawals with `updown
//! withdrawals`.

use std::sync::Arc;

use updown_store::{Withdrawal, WithdrawalChange, WithdrawalStatus};

use super::App;
use crate::chain::{ChainSender, Transfer, TransferState};
use crate::error::AppResult;

/// Withdrawals of each status looked at per step.
const BATCH: i64 = 100;

/// What one step did, by withdrawal id.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerTick {
    pub submitted: Vec<i64>,
    pub confirmed: Vec<i64>,
    pub failed: Vec<i64>,
    /// Withdrawals the chain or the store could not take now, with why;
    /// retried next step.
    pub errors: Vec<(i64, String)>,
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
        let Some(chain) = self.chain.clone() else {
            return Ok(WorkerTick::default());
        };
        let Some(lease) = self.store.scheduler_lease().await? else {
            return Ok(WorkerTick {
                held_elsewhere: true,
                ..WorkerTick::default()
            });
        };
        let tick = self.step_withdrawals(chain).await;
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
        let queued = self
            .store
            .withdrawals(None, Some(WithdrawalStatus::Queued), BATCH)
            .await?;
        for withdrawal in queued.iter().rev() {
            let state = chain.send(&transfer(withdrawal)).await;
            self.record_state(&*chain, withdrawal, state, &mut tick)
                .await;
        }
        let submitted = self
            .store
            .withdrawals(None, Some(WithdrawalStatus::Submitted), BATCH)
            .await?;
        for withdrawal in submitted.iter().rev() {
            let state = match chain.status(withdrawal.id).await {
                // Approved by hand, or never sent: send it (once).
                Ok(TransferState::Unknown) => chain.send(&transfer(withdrawal)).await,
                other => other,
            };
            self.record_state(&*chain, withdrawal, state, &mut tick)
                .await;
        }
        Ok(tick)
    }

    /// Records what the chain said about `withdrawal`: the steps from its
    /// status to the chain's, in order; a failed step stops the rest.
    async fn record_state(
        &self,
        chain: &dyn ChainSender,
        withdrawal: &Withdrawal,
        state: Result<TransferState, crate::chain::ChainError>,
        tick: &mut WorkerTick,
    ) {
        let id = withdrawal.id;
        let queued = withdrawal.status == WithdrawalStatus::Queued;
        let submit = |tx_hash: &str| WithdrawalChange::Submit {
            chain_tx_hash: Some(tx_hash.to_string()),
        };
        let steps = match state {
            Err(e) => Err(e.to_string()),
            Ok(TransferState::Unknown) => {
                Err("the chain does not know a transfer it was just sent".to_string())
            }
            Ok(TransferState::Pending { tx_hash }) => {
                Ok(queued.then(|| submit(&tx_hash)).into_iter().collect())
            }
            Ok(TransferState::Confirmed { tx_hash }) => {
                let mut steps: Vec<_> = queued.then(|| submit(&tx_hash)).into_iter().collect();
                steps.push(WithdrawalChange::Confirm {
                    chain_tx_hash: Some(tx_hash),
                });
                Ok(steps)
            }
            Ok(TransferState::Failed { reason }) => Ok(vec![WithdrawalChange::Fail { reason }]),
        };
        let result = match steps {
            Err(why) => Err(why),
            Ok(steps) => self.apply_steps(id, steps, &chain.name(), tick).await,
        };
        if let Err(why) = result {
            tracing::warn!(withdrawal = %id, error = %why, "withdrawal step failed; retrying next step");
            tick.errors.push((id.0, why));
        }
    }

    async fn apply_steps(
        &self,
        id: updown_domain::ids::WithdrawalId,
        steps: Vec<WithdrawalChange>,
        actor: &str,
        tick: &mut WorkerTick,
    ) -> Result<(), String> {
        for step in steps {
            let done = match step {
                WithdrawalChange::Submit { .. } => &mut tick.submitted,
                WithdrawalChange::Confirm { .. } => &mut tick.confirmed,
                WithdrawalChange::Fail { .. } => &mut tick.failed,
            };
            self.change_withdrawal(id, step, actor)
                .await
                .map_err(|e| e.to_string())?;
            done.push(id.0);
        }
        Ok(())
    }
}

fn transfer(withdrawal: &Withdrawal) -> Transfer {
    Transfer {
        request_id: withdrawal.id,
        to: withdrawal.address.clone(),
        amount: withdrawal.amount,
    }
}
