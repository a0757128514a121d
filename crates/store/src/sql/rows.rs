//! The tables' rows as `FromRow` structs, and their conversion into the
//! model: every stored value is parsed back into its domain type, and a
//! value that does not parse is reported as corrupt, never guessed at.

use chrono::{DateTime, Utc};
use updown_domain::admission::{LimitSettings, PendingLimits, PlayerLimits};
use updown_domain::ids::{BetId, Email, RoundCode, RoundId, UserId, WithdrawalId};
use updown_domain::round::{Price, Side};
use updown_domain::Micros;

use super::db::Record;
use crate::model::*;
use crate::{StoreError, StoreResult};

/// Columns of a user, as [`UserRow`] reads them.
pub(crate) const USER_COLUMNS: &str = "id, email, sequence, created_at, max_stake_per_round, \
    max_stake_per_day, excluded_until, pending_max_stake_per_round, pending_max_stake_per_day, \
    limits_pending_from";

/// [`USER_COLUMNS`] of the users table aliased `u`.
pub(crate) const U_USER_COLUMNS: &str = "u.id, u.email, u.sequence, u.created_at, \
    u.max_stake_per_round, u.max_stake_per_day, u.excluded_until, u.pending_max_stake_per_round, \
    u.pending_max_stake_per_day, u.limits_pending_from";

pub(crate) const BET_COLUMNS: &str =
    "id, round_id, user_id, side, stake, status, placed_at, cancelled_at";

pub(crate) const WITHDRAWAL_COLUMNS: &str = "id, user_id, amount, address, status, chain_tx_hash, \
    failure_reason, created_at, updated_at, awaiting_approval";

pub(crate) fn corrupt(what: &str, value: impl std::fmt::Display) -> StoreError {
    StoreError::Other(anyhow::anyhow!("stored {what} {value} is not valid"))
}

pub(crate) fn micros(value: i64) -> StoreResult<Micros> {
    Micros::new(value).map_err(|_| corrupt("amount", value))
}

pub(crate) fn optional_micros(value: Option<i64>) -> StoreResult<Option<Micros>> {
    value.map(micros).transpose()
}

pub(crate) fn parse<T: std::str::FromStr>(what: &str, text: &str) -> StoreResult<T> {
    text.parse().map_err(|_| corrupt(what, text))
}

pub(crate) fn parse_side(text: &str) -> StoreResult<Side> {
    parse("side", text)
}

pub(crate) fn parse_price(text: &str) -> StoreResult<Price> {
    Price::parse(text).map_err(|_| corrupt("price", text))
}

/// A player's limit columns, set and pending.
#[derive(sqlx::FromRow)]
pub(crate) struct LimitColumns {
    max_stake_per_round: Option<i64>,
    max_stake_per_day: Option<i64>,
    excluded_until: Option<DateTime<Utc>>,
    pending_max_stake_per_round: Option<i64>,
    pending_max_stake_per_day: Option<i64>,
    limits_pending_from: Option<DateTime<Utc>>,
}

impl TryFrom<LimitColumns> for LimitSettings {
    type Error = StoreError;

    fn try_from(row: LimitColumns) -> StoreResult<LimitSettings> {
        let pending = match row.limits_pending_from {
            None => None,
            Some(from) => Some(PendingLimits {
                max_stake_per_round: optional_micros(row.pending_max_stake_per_round)?,
                max_stake_per_day: optional_micros(row.pending_max_stake_per_day)?,
                from,
            }),
        };
        Ok(LimitSettings {
            set: PlayerLimits {
                max_stake_per_round: optional_micros(row.max_stake_per_round)?,
                max_stake_per_day: optional_micros(row.max_stake_per_day)?,
                excluded_until: row.excluded_until,
            },
            pending,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: i64,
    email: String,
    sequence: i64,
    created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    limits: LimitColumns,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> StoreResult<User> {
        let settings = LimitSettings::try_from(row.limits)?;
        Ok(User {
            id: UserId(row.id),
            email: Email::parse(&row.email).map_err(|_| corrupt("email", &row.email))?,
            sequence: row.sequence,
            created_at: row.created_at,
            limits: settings.set,
            pending_limits: settings.pending,
        })
    }
}

/// A user with their balance (`a.balance AS balance`).
#[derive(sqlx::FromRow)]
pub(crate) struct UserSummaryRow {
    #[sqlx(flatten)]
    user: UserRow,
    balance: i64,
}

impl TryFrom<UserSummaryRow> for UserSummary {
    type Error = StoreError;

    fn try_from(row: UserSummaryRow) -> StoreResult<UserSummary> {
        Ok(UserSummary {
            user: User::try_from(row.user)?,
            balance: micros(row.balance)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BetRow {
    id: i64,
    round_id: i64,
    user_id: i64,
    side: String,
    stake: i64,
    status: String,
    placed_at: DateTime<Utc>,
    cancelled_at: Option<DateTime<Utc>>,
}

impl TryFrom<BetRow> for Bet {
    type Error = StoreError;

    fn try_from(row: BetRow) -> StoreResult<Bet> {
        Ok(Bet {
            id: BetId(row.id),
            round: RoundId(row.round_id),
            user: UserId(row.user_id),
            side: parse_side(&row.side)?,
            stake: micros(row.stake)?,
            status: match row.status.as_str() {
                "ACTIVE" => BetStatus::Active,
                "CANCELLED" => BetStatus::Cancelled,
                other => return Err(corrupt("bet status", other)),
            },
            placed_at: row.placed_at,
            cancelled_at: row.cancelled_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct WithdrawalRow {
    id: i64,
    user_id: i64,
    amount: i64,
    address: String,
    status: String,
    chain_tx_hash: Option<String>,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    awaiting_approval: bool,
}

impl TryFrom<WithdrawalRow> for Withdrawal {
    type Error = StoreError;

    fn try_from(row: WithdrawalRow) -> StoreResult<Withdrawal> {
        Ok(Withdrawal {
            id: WithdrawalId(row.id),
            user: UserId(row.user_id),
            amount: micros(row.amount)?,
            address: row.address,
            status: WithdrawalStatus::parse(&row.status)
                .ok_or_else(|| corrupt("withdrawal status", &row.status))?,
            chain_tx_hash: row.chain_tx_hash,
            failure_reason: row.failure_reason,
            awaiting_approval: row.awaiting_approval,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DepositRow {
    id: i64,
    user_id: i64,
    amount: i64,
    chain_tx_hash: String,
    log_index: i64,
    credited_at: DateTime<Utc>,
}

impl TryFrom<DepositRow> for Deposit {
    type Error = StoreError;

    fn try_from(row: DepositRow) -> StoreResult<Deposit> {
        Ok(Deposit {
            id: row.id,
            user: UserId(row.user_id),
            amount: micros(row.amount)?,
            chain_tx_hash: row.chain_tx_hash,
            log_index: row.log_index,
            credited_at: row.credited_at,
            balance_after: None,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct NotificationRow {
    id: i64,
    received_at: DateTime<Utc>,
    outcome: String,
    reason: Option<String>,
    chain: Option<String>,
    token: Option<String>,
    tx_hash: Option<String>,
    log_index: Option<i64>,
    to_address: Option<String>,
    amount: Option<i64>,
    confirmations: Option<i64>,
    user_id: Option<i64>,
}

impl TryFrom<NotificationRow> for DepositNotification {
    type Error = StoreError;

    fn try_from(row: NotificationRow) -> StoreResult<DepositNotification> {
        Ok(DepositNotification {
            id: Some(row.id),
            received_at: Some(row.received_at),
            outcome: DepositOutcome::parse(&row.outcome),
            reason: row.reason,
            chain: row.chain,
            token: row.token,
            tx_hash: row.tx_hash,
            log_index: row.log_index,
            to_address: row.to_address,
            amount: row.amount,
            confirmations: row.confirmations,
            user: row.user_id.map(UserId),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StatementRow {
    tx_id: i64,
    kind: String,
    created_at: DateTime<Utc>,
    amount: i64,
    balance_after: i64,
    round_code: Option<String>,
    bet_id: Option<i64>,
    reference: Option<String>,
}

impl TryFrom<StatementRow> for StatementLine {
    type Error = StoreError;

    fn try_from(row: StatementRow) -> StoreResult<StatementLine> {
        let kind = updown_domain::ledger::TxKind::parse(&row.kind)
            .ok_or_else(|| corrupt("transaction kind", &row.kind))?;
        let round = row
            .round_code
            .map(|c| RoundCode::parse(&c).map_err(|_| corrupt("round code", &c)))
            .transpose()?;
        Ok(StatementLine {
            tx_id: row.tx_id,
            kind,
            at: row.created_at,
            amount: row.amount,
            balance_after: row.balance_after,
            round,
            bet: row.bet_id.map(BetId),
            reference: row.reference,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: i64,
    prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKeyInfo {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> StoreResult<ApiKeyInfo> {
        Ok(ApiKeyInfo {
            id: row.id,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: String,
    reason: Option<String>,
    credential: Option<String>,
    client: Option<String>,
    request_id: Option<String>,
    prev_hash: Option<String>,
    hash: Option<String>,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: row.id,
            at: row.at,
            actor: row.actor,
            action: row.action,
            subject: row.subject,
            reason: row.reason,
            credential: row.credential,
            client: row.client,
            request_id: row.request_id,
            chain: row
                .prev_hash
                .zip(row.hash)
                .map(|(prev_hash, hash)| AuditLink { prev_hash, hash }),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    key: String,
    request_hash: String,
    status_code: Option<i32>,
    response_body: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<KeyRow> for KeyRecord {
    type Error = StoreError;

    fn try_from(row: KeyRow) -> StoreResult<KeyRecord> {
        let status = row
            .status_code
            .ok_or_else(|| corrupt("idempotency answer of key", &row.key))?;
        Ok(KeyRecord {
            request_hash: row.request_hash,
            answer: KeptAnswer {
                status: u16::try_from(status).map_err(|_| corrupt("status code", status))?,
                body: row.response_body.unwrap_or_default(),
            },
            at: row.created_at,
        })
    }
}

impl Record for LimitSettings {
    type Row = LimitColumns;
}

impl Record for User {
    type Row = UserRow;
}

impl Record for UserSummary {
    type Row = UserSummaryRow;
}

impl Record for Bet {
    type Row = BetRow;
}

impl Record for Withdrawal {
    type Row = WithdrawalRow;
}

impl Record for Deposit {
    type Row = DepositRow;
}

impl Record for DepositNotification {
    type Row = NotificationRow;
}

impl Record for StatementLine {
    type Row = StatementRow;
}

impl Record for ApiKeyInfo {
    type Row = ApiKeyRow;
}

impl Record for AuditEntry {
    type Row = AuditRow;
}

impl Record for KeyRecord {
    type Row = KeyRow;
}

#[cfg(test)]
mod tests {
    use super::{USER_COLUMNS, U_USER_COLUMNS};

    #[test]
    fn the_aliased_user_columns_are_the_user_columns() {
        let columns =
            |text: &str| -> Vec<String> { text.split(',').map(|c| c.trim().to_string()).collect() };
        let aliased: Vec<String> = columns(USER_COLUMNS)
            .iter()
            .map(|c| format!("u.{c}"))
            .collect();
        assert_eq!(columns(U_USER_COLUMNS), aliased);
    }
}
