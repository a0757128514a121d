//! Players and their money: accounts, deposits, withdrawals, limits, and
//! the ledger-wide reports (TVL, verify).

use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{Email, UserId, WithdrawalId};
use updown_domain::Micros;
use updown_store::{
    AuditEntry, ChainRejection, Checkpoint, Deposit, IncrementalVerify, Keyed, NewDeposit,
    NewWithdrawal, Tvl, User, VerifyReport, Withdrawal, WithdrawalCap, WithdrawalChange,
    WithdrawalStatus,
};

use serde_json::json;

use super::App;
use crate::error::{AppError, AppResult};
use crate::events::EventKind;

/// A chain transaction hash in its one canonical form, so that one
/// transfer written two ways (`0xAB…`, `0xab…`, without `0x`) is one
/// transfer. Accepted: 1 to 130 letters, digits, `-` or `_`. A 32-byte hash
/// (64 hex digits, with or without `0x`) becomes `0x` and lower case; a
/// readable reference (what simulators and operators' manual credits use)
/// is lower-cased.
pub fn normalize_tx_hash(hash: &str) -> AppResult<String> {
    let readable = (1..=130).contains(&hash.len())
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !readable {
        return Err(AppError::Invalid(format!(
            "transaction hash {hash:?} must be 1 to 130 letters, digits, '-' or '_' (a chain's: 0x and 64 hex digits)"
        )));
    }
    let body = hash
        .strip_prefix("0x")
        .or_else(|| hash.strip_prefix("0X"))
        .unwrap_or(hash);
    if body.len() == 64 && body.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(format!("0x{}", body.to_ascii_lowercase()));
    }
    Ok(hash.to_ascii_lowercase())
}

/// A real chain transaction hash (what a deposit provider sends), in the
/// canonical form of [`normalize_tx_hash`].
pub fn chain_tx_hash(hash: &str) -> AppResult<String> {
    let normal = normalize_tx_hash(hash)?;
    if normal.len() == 66
        && normal.starts_with("0x")
        && normal[2..].bytes().all(|b| b.is_ascii_hexdigit())
    {
        Ok(normal)
    } else {
        Err(AppError::Invalid(format!(
            "transaction hash {hash:?} must be 32 bytes: 0x and 64 hex digits"
        )))
    }
}

/// Checks what a step carries: tx hashes in their canonical form, and a
/// failure's reason.
fn normalize_change(change: WithdrawalChange) -> AppResult<WithdrawalChange> {
    let hash = |h: Option<String>| h.as_deref().map(normalize_tx_hash).transpose();
    Ok(match change {
        WithdrawalChange::Claim => WithdrawalChange::Claim,
        WithdrawalChange::Submit { chain_tx_hash } => WithdrawalChange::Submit {
            chain_tx_hash: hash(chain_tx_hash)?,
        },
        WithdrawalChange::Confirm { chain_tx_hash } => WithdrawalChange::Confirm {
            chain_tx_hash: hash(chain_tx_hash)?,
        },
        WithdrawalChange::Fail { reason, rejection } => {
            if reason.trim().is_empty() || reason.len() > 500 {
                return Err(AppError::Invalid(
                    "a failed withdrawal needs a reason of 1 to 500 characters".into(),
                ));
            }
            let rejection = match rejection {
                Some(ChainRejection::Operator { tx_hash }) => Some(ChainRejection::Operator {
                    tx_hash: normalize_tx_hash(&tx_hash)?,
                }),
                other => other,
            };
            WithdrawalChange::Fail { reason, rejection }
        }
    })
}

const ZERO_ADDRESS: &str = "0x0000000000000000000000000000000000000000";

/// Longest self-exclusion a player can set themselves: 50 years.
const MAX_EXCLUSION_DAYS: i64 = 50 * 366;

impl App {
    pub async fn create_user(&self, email: &str) -> AppResult<User> {
        let email = Email::parse(email).map_err(|e| AppError::Invalid(e.to_string()))?;
        let user = self.store.create_user(&email, self.clock.now()).await?;
        tracing::info!(event = "user_created", user = %user.id, email = %user.email);
        Ok(user)
    }

    /// Creates user{first}..user{last}@example.com, each funded with
    /// `balance`, in transactions of `SEED_CHUNK` users; users that already
    /// exist are skipped. Returns (created, already existing).
    pub async fn seed_users(
        &self,
        count: u32,
        balance: Micros,
        on_progress: &(dyn Fn(u64) + Sync),
    ) -> AppResult<(u32, u32)> {
        const SEED_CHUNK: u32 = 500;
        let (mut created, mut existing) = (0u32, 0u32);
        let mut first = 1;
        while first <= count {
            let last = (first + SEED_CHUNK - 1).min(count);
            let emails: Vec<Email> = (first..=last)
                .map(|i| Email::parse(&format!("user{i}@example.com")).expect("valid seed email"))
                .collect();
            match self
                .store
                .create_users(&emails, balance, self.clock.now())
                .await
            {
                Ok(users) => created += users.len() as u32,
                // Some exist already: go one by one for this chunk.
                Err(updown_store::StoreError::Conflict(_)) => {
                    for email in &emails {
                        match self
                            .store
                            .create_users(std::slice::from_ref(email), balance, self.clock.now())
                            .await
                        {
                            Ok(_) => created += 1,
                            Err(updown_store::StoreError::Conflict(_)) => existing += 1,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
            on_progress(u64::from(last));
            first = last + 1;
        }
        tracing::info!(
            event = "users_seeded",
            created,
            existing,
            balance_each = balance.get()
        );
        Ok((created, existing))
    }

    pub async fn user_by_email(&self, email: &str) -> AppResult<User> {
        let email = Email::parse(email).map_err(|e| AppError::Invalid(e.to_string()))?;
        self.store
            .user_by_email(&email)
            .await
            .map_err(|_| AppError::NotFound(format!("no user with email {email}")))
    }

    pub async fn balance(&self, user: UserId) -> AppResult<Micros> {
        Ok(self.store.balance(user).await?)
    }

    /// Credits a confirmed chain transfer, once per (tx hash, log index);
    /// a `key` is recorded in the credit's transaction.
    pub async fn deposit(
        &self,
        user: UserId,
        amount: Micros,
        tx_hash: &str,
        log_index: i64,
        key: Option<Keyed<Deposit>>,
    ) -> AppResult<Deposit> {
        if amount.is_zero() {
            return Err(AppError::Invalid(
                "a deposit must be at least 1 micro-USDC".into(),
            ));
        }
        let tx_hash = &normalize_tx_hash(tx_hash)?;
        if log_index < 0 {
            return Err(AppError::Invalid("log index must not be negative".into()));
        }
        let deposit = self
            .store
            .credit_deposit(&NewDeposit {
                user,
                amount,
                chain_tx_hash: tx_hash.to_string(),
                log_index,
                now: self.clock.now(),
                key,
            })
            .await?;
        tracing::info!(event = "deposit_credited", user = %user, amount = amount.get(), tx_hash, log_index);
        self.announce_deposit(&deposit);
        Ok(deposit)
    }

    /// Tells the player a deposit was credited (after its commit).
    pub(crate) fn announce_deposit(&self, deposit: &Deposit) {
        self.publish_for(
            deposit.user,
            EventKind::DepositCredited,
            json!({
                "deposit_id": deposit.id,
                "amount": deposit.amount.get(),
                "tx_hash": deposit.chain_tx_hash,
                "log_index": deposit.log_index,
            }),
            None,
        );
    }

    /// Moves `amount` from available to pending at once and queues the
    /// withdrawal for the chain: at least `WITHDRAWAL_MIN`, and at most
    /// `WITHDRAWAL_DAILY_MAX` per user over any 24 hours.
    /// A `key` is recorded in the request's transaction.
    pub async fn withdraw(
        &self,
        user: UserId,
        amount: Micros,
        to: &str,
        key: Option<Keyed<Withdrawal>>,
    ) -> AppResult<Withdrawal> {
        if amount < self.config.limits.withdrawal_min {
            return Err(AppError::LimitExceeded(format!(
                "a withdrawal must be at least {} micro-USDC (WITHDRAWAL_MIN); this one is {amount}",
                self.config.limits.withdrawal_min
            )));
        }
        let address = super::wallets::parse_address(to)?;
        if address.to_checksum() == ZERO_ADDRESS {
            return Err(AppError::Rejected(
                "the zero address burns whatever is sent to it; give your own address".into(),
            ));
        }
        let now = self.clock.now();
        let withdrawal = self
            .store
            .request_withdrawal(&NewWithdrawal {
                user,
                amount,
                address: address.to_checksum(),
                now,
                cap: Some(WithdrawalCap {
                    max: self.config.limits.withdrawal_daily_max,
                    after: now - chrono::Duration::hours(24),
                    approval_over: Some(self.config.limits.withdrawal_approval_over),
                }),
                key,
            })
            .await?;
        tracing::info!(event = "withdrawal_queued", user = %user, amount = amount.get(), withdrawal = %withdrawal.id);
        self.publish_withdrawal(&withdrawal);
        Ok(withdrawal)
    }

    /// An operator's (or the chain adapter's) step for a withdrawal:
    /// checked on its row as it stands, applied with its ledger movement,
    /// logged and audited; a `key` is recorded in the step's transaction.
    pub async fn change_withdrawal(
        &self,
        id: WithdrawalId,
        change: WithdrawalChange,
        actor: &str,
        key: Option<Keyed<Withdrawal>>,
    ) -> AppResult<Withdrawal> {
        let change = normalize_change(change)?;
        let now = self.clock.now();
        if change == WithdrawalChange::Claim {
            // The worker's own bookkeeping before it sends; not an action.
            let changed = self
                .store
                .change_withdrawal(id, &change, now, key.as_ref(), None)
                .await?;
            self.publish_withdrawal(&changed);
            return Ok(changed);
        }
        let reason = match &change {
            WithdrawalChange::Fail { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        // Audited in the step's own transaction: no crash leaves it
        // without its entry.
        let entry = self.withdrawal_entry(actor, id, change.target(), reason);
        let changed = self
            .store
            .change_withdrawal(id, &change, now, key.as_ref(), Some(&entry))
            .await?;
        crate::faults::crash_point("withdrawal_after_commit", self.config.production);
        self.withdrawal_announced(&changed);
        Ok(changed)
    }

    /// The audit entry of withdrawal `id`'s step to `status` by `actor`,
    /// for the store to write with the step.
    pub(crate) fn withdrawal_entry(
        &self,
        actor: &str,
        id: WithdrawalId,
        status: WithdrawalStatus,
        reason: Option<String>,
    ) -> AuditEntry {
        self.audit_entry(
            actor,
            &format!("withdrawal_{}", status.as_str().to_ascii_lowercase()),
            format!("withdrawal {id}"),
            reason,
        )
    }

    /// A withdrawal's step told: the log line and its owner's event.
    pub(crate) fn withdrawal_announced(&self, changed: &Withdrawal) {
        let id = changed.id;
        tracing::info!(
            event = "withdrawal_updated",
            withdrawal = %id,
            user = %changed.user,
            amount = changed.amount.get(),
            status = changed.status.as_str(),
            chain_tx_hash = changed.chain_tx_hash.as_deref().unwrap_or(""),
        );
        self.publish_withdrawal(changed);
    }

    /// A withdrawal's `withdrawal_updated` event, to its owner.
    fn publish_withdrawal(&self, withdrawal: &Withdrawal) {
        self.publish_for(
            withdrawal.user,
            EventKind::WithdrawalUpdated,
            json!({
                "withdrawal_id": withdrawal.id.0,
                "status": withdrawal.status.as_str(),
                "amount": withdrawal.amount.get(),
                "address": withdrawal.address,
                "chain_tx_hash": withdrawal.chain_tx_hash,
                "failure_reason": withdrawal.failure_reason,
                "awaiting_approval": withdrawal.awaiting_approval,
            }),
            None,
        );
    }

    /// Support sets a player's limits on their behalf, under the player's
    /// own rules, audited with the reason.
    pub async fn set_limits_for(
        &self,
        user: UserId,
        limits: PlayerLimits,
        actor: &str,
        reason: String,
    ) -> AppResult<User> {
        let described = format!(
            "user {user}: per round {:?}, per day {:?}, excluded until {:?}",
            limits.max_stake_per_round.map(|m| m.get()),
            limits.max_stake_per_day.map(|m| m.get()),
            limits.excluded_until.map(crate::wire::instant)
        );
        let entry = self.audit_entry(actor, "user_limits", described, Some(reason));
        self.change_limits(user, limits, Some(&entry)).await
    }

    /// A player's request for their limits, from the API or an operator
    /// on their behalf: a stricter stake limit applies at once, a looser
    /// one after `LIMIT_RAISE_COOLOFF_HOURS`; a self-exclusion in force
    /// can be extended, never shortened or lifted. Decided by the store on
    /// the row as it stands, never on a cached read.
    pub async fn set_limits(&self, user: UserId, limits: PlayerLimits) -> AppResult<User> {
        self.change_limits(user, limits, None).await
    }

    /// [`App::set_limits`], with the operator's audit entry, when given,
    /// committed with the change.
    async fn change_limits(
        &self,
        user: UserId,
        limits: PlayerLimits,
        audit: Option<&AuditEntry>,
    ) -> AppResult<User> {
        let now = self.clock.now();
        if let Some(until) = limits.excluded_until {
            if until <= now {
                return Err(AppError::Rejected(
                    "excluded_until must be in the future (leave it null for no exclusion)".into(),
                ));
            }
            if until > now + chrono::Duration::days(MAX_EXCLUSION_DAYS) {
                return Err(AppError::Rejected(format!(
                    "excluded_until may be at most {MAX_EXCLUSION_DAYS} days ahead"
                )));
            }
        }
        let user = self
            .store
            .change_limits(
                user,
                limits,
                now,
                self.config.limits.limit_raise_cooloff,
                audit,
            )
            .await?;
        self.credentials.forget_user(user.id);
        tracing::info!(event = "limits_set", user = %user.id, limits = ?user.limits, pending = ?user.pending_limits);
        self.publish_for(
            user.id,
            EventKind::CredentialsChanged,
            json!({ "limits": true }),
            None,
        );
        Ok(user)
    }

    pub async fn tvl(&self) -> AppResult<Tvl> {
        Ok(self.store.tvl().await?)
    }

    /// Every invariant over the whole ledger (`verify --full`).
    pub async fn verify(&self) -> AppResult<VerifyReport> {
        Ok(self.store.verify().await?)
    }

    /// The invariants over what came after the latest checkpoint; a new
    /// checkpoint when they hold (`verify`).
    pub async fn verify_incremental(&self) -> AppResult<IncrementalVerify> {
        Ok(self.store.verify_incremental(self.clock.now()).await?)
    }

    pub async fn latest_checkpoint(&self) -> AppResult<Option<Checkpoint>> {
        Ok(self.store.latest_checkpoint().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_hashes_have_one_form() {
        let hash = "AB".repeat(32);
        let canonical = format!("0x{}", "ab".repeat(32));
        assert_eq!(normalize_tx_hash(&format!("0x{hash}")).unwrap(), canonical);
        assert_eq!(normalize_tx_hash(&format!("0X{hash}")).unwrap(), canonical);
        assert_eq!(normalize_tx_hash(&hash).unwrap(), canonical);
        assert_eq!(normalize_tx_hash("0xCLI-Ref").unwrap(), "0xcli-ref");
        assert_eq!(
            normalize_tx_hash("cli-1700000000-1").unwrap(),
            "cli-1700000000-1"
        );
        assert!(normalize_tx_hash("").is_err());
        assert!(normalize_tx_hash("0xabc def").is_err());
        assert!(normalize_tx_hash(&"a".repeat(131)).is_err());
        assert!(normalize_tx_hash(&"a".repeat(130)).is_ok());
        assert_eq!(chain_tx_hash(&hash.to_lowercase()).unwrap(), canonical);
        assert!(chain_tx_hash("0xabc").is_err());
    }
}
