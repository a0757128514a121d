//! Players and their money: accounts, deposits, withdrawals, limits, and
//! the ledger-wide reports (TVL, verify).

use updown_domain::address::Address;
use updown_domain::admission::PlayerLimits;
use updown_domain::ids::{Email, UserId, WithdrawalId};
use updown_domain::Micros;
use updown_store::{
    Deposit, NewDeposit, NewWithdrawal, Tvl, User, VerifyReport, Withdrawal, WithdrawalCap,
    WithdrawalChange,
};

use serde_json::json;

use super::App;
use crate::error::{AppError, AppResult};
use crate::events::EventKind;

/// Chain transaction hashes: `0x` and 1 to 128 characters of letters,
/// digits, `-` or `_` (real hashes are 64 hex digits; simulators and
/// operators' manual credits use readable ids).
fn check_tx_hash(hash: &str) -> AppResult<()> {
    let body = hash.strip_prefix("0x").unwrap_or(hash);
    let ok = (1..=128).contains(&body.len())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::Invalid(format!(
            "transaction hash {hash:?} must be 1 to 128 letters, digits, '-' or '_' (optionally after 0x)"
        )))
    }
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

    /// Credits a confirmed chain transfer, once per (tx hash, log index).
    pub async fn deposit(
        &self,
        user: UserId,
        amount: Micros,
        tx_hash: &str,
        log_index: i64,
    ) -> AppResult<Deposit> {
        if amount.is_zero() {
            return Err(AppError::Invalid(
                "a deposit must be at least 1 micro-USDC".into(),
            ));
        }
        check_tx_hash(tx_hash)?;
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
            })
            .await?;
        tracing::info!(event = "deposit_credited", user = %user, amount = amount.get(), tx_hash, log_index);
        self.publish_for(
            user,
            EventKind::DepositCredited,
            json!({
                "deposit_id": deposit.id,
                "amount": amount.get(),
                "tx_hash": tx_hash,
                "log_index": log_index,
            }),
            None,
        );
        Ok(deposit)
    }

    /// Moves `amount` from available to pending at once and queues the
    /// withdrawal for the chain: at least `WITHDRAWAL_MIN`, and at most
    /// `WITHDRAWAL_DAILY_MAX` per user over any 24 hours.
    pub async fn withdraw(&self, user: UserId, amount: Micros, to: &str) -> AppResult<Withdrawal> {
        if amount < self.config.withdrawal_min {
            return Err(AppError::Invalid(format!(
                "a withdrawal must be at least {} micro-USDC (WITHDRAWAL_MIN); this one is {amount}",
                self.config.withdrawal_min
            )));
        }
        let address = Address::parse(to).map_err(|e| AppError::Invalid(e.to_string()))?;
        if address.to_checksum() == ZERO_ADDRESS {
            return Err(AppError::Invalid(
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
                    max: self.config.withdrawal_daily_max,
                    after: now - chrono::Duration::hours(24),
                }),
            })
            .await?;
        tracing::info!(event = "withdrawal_queued", user = %user, amount = amount.get(), withdrawal = %withdrawal.id);
        self.publish_withdrawal(&withdrawal);
        Ok(withdrawal)
    }

    /// An operator's (or the chain adapter's) step for a withdrawal:
    /// checked, applied with its ledger movement, logged and audited.
    pub async fn change_withdrawal(
        &self,
        id: WithdrawalId,
        change: WithdrawalChange,
        actor: &str,
    ) -> AppResult<Withdrawal> {
        match &change {
            WithdrawalChange::Submit { chain_tx_hash }
            | WithdrawalChange::Confirm { chain_tx_hash } => {
                if let Some(hash) = chain_tx_hash {
                    check_tx_hash(hash)?;
                }
            }
            WithdrawalChange::Fail { reason } => {
                if reason.trim().is_empty() || reason.len() > 500 {
                    return Err(AppError::Invalid(
                        "a failed withdrawal needs a reason of 1 to 500 characters".into(),
                    ));
                }
            }
        }
        let changed = self
            .store
            .change_withdrawal(id, &change, self.clock.now())
            .await?;
        tracing::info!(
            event = "withdrawal_updated",
            withdrawal = %id,
            user = %changed.user,
            amount = changed.amount.get(),
            status = changed.status.as_str(),
            chain_tx_hash = changed.chain_tx_hash.as_deref().unwrap_or(""),
        );
        self.publish_withdrawal(&changed);
        let reason = match change {
            WithdrawalChange::Fail { reason } => Some(reason),
            _ => None,
        };
        let action = format!(
            "withdrawal_{}",
            changed.status.as_str().to_ascii_lowercase()
        );
        self.audit(actor, &action, format!("withdrawal {id}"), reason)
            .await?;
        Ok(changed)
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
            }),
            None,
        );
    }

    pub async fn set_limits(&self, user: UserId, limits: PlayerLimits) -> AppResult<User> {
        let user = self.store.set_limits(user, limits).await?;
        self.credentials.forget_user(user.id);
        tracing::info!(event = "limits_set", user = %user.id, ?limits);
        self.publish_for(
            user.id,
            EventKind::CredentialsChanged,
            json!({ "limits": true }),
            None,
        );
        Ok(user)
    }

    /// A player's own limits, from the API: a self-exclusion in force
    /// can be extended but not shortened or lifted.
    pub async fn set_own_limits(&self, user: &User, limits: PlayerLimits) -> AppResult<User> {
        let now = self.clock.now();
        if let Some(until) = limits.excluded_until {
            if until <= now {
                return Err(AppError::Invalid(
                    "excluded_until must be in the future (leave it null for no exclusion)".into(),
                ));
            }
            if until > now + chrono::Duration::days(MAX_EXCLUSION_DAYS) {
                return Err(AppError::Invalid(format!(
                    "excluded_until may be at most {MAX_EXCLUSION_DAYS} days ahead"
                )));
            }
        }
        if let Some(current) = user.limits.excluded_until.filter(|until| *until > now) {
            if limits.excluded_until.is_none_or(|until| until < current) {
                return Err(AppError::Conflict(format!(
                    "you are self-excluded until {current}; an exclusion can be extended, not shortened"
                )));
            }
        }
        self.set_limits(user.id, limits).await
    }

    pub async fn tvl(&self) -> AppResult<Tvl> {
        Ok(self.store.tvl().await?)
    }

    pub async fn verify(&self) -> AppResult<VerifyReport> {
        Ok(self.store.verify().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_hashes_are_bounded_and_plain() {
        assert!(check_tx_hash("0xabc123").is_ok());
        assert!(check_tx_hash("cli-1700000000-1").is_ok());
        assert!(check_tx_hash("").is_err());
        assert!(check_tx_hash("0x").is_err());
        assert!(check_tx_hash("0xabc def").is_err());
        assert!(check_tx_hash(&"a".repeat(129)).is_err());
    }
}
