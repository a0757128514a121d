//! The store's errors, and the one place sqlx's errors are mapped to them:
//! a unique violation by the constraint it hit, a check violation as
//! invalid input, anything else as `Other`.

use thiserror::Error;
use updown_domain::round::RoundError;
use updown_domain::Micros;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("insufficient balance: {available} micro-USDC available, {requested} requested")]
    InsufficientFunds {
        available: Micros,
        requested: Micros,
    },
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("{0}")]
    Invalid(String),
    /// A configured limit would be passed.
    #[error("{0}")]
    LimitExceeded(String),
    /// The request's Idempotency-Key was recorded by an earlier request
    /// (this one changed nothing): answer from the record.
    #[error("this Idempotency-Key was used before")]
    KeyUsed,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// The unique constraints, by name (PostgreSQL reports it) and by the
/// columns SQLite reports (`table.column, ...`), with what a clash means.
const UNIQUE_CONSTRAINTS: &[(&str, &str, Clash)] = &[
    (
        "idempotency_keys_pkey",
        "idempotency_keys.scope, idempotency_keys.key",
        Clash::KeyUsed,
    ),
    (
        "deposits_transfer_key",
        "deposits.chain_tx_hash, deposits.log_index",
        Clash::Conflict("this chain transfer (tx hash and log index) was already credited"),
    ),
    (
        "users_email_key",
        "users.email",
        Clash::Conflict("a user with this email already exists"),
    ),
    (
        "users_sequence_key",
        "users.sequence",
        Clash::Conflict("another user was created at the same moment; try again"),
    ),
    (
        "users_deposit_address",
        "users.deposit_address",
        Clash::Conflict("this deposit address belongs to another user"),
    ),
    (
        "rounds_market_code_key",
        "rounds.market, rounds.code",
        Clash::Conflict("this round already exists"),
    ),
    (
        "prices_market_date_key",
        "prices.market, prices.session_date",
        Clash::Conflict("a close is already recorded for this market and date"),
    ),
    (
        "sweeps_open_address",
        "sweeps.deposit_address",
        Clash::Conflict("this deposit address has a sweep in flight already"),
    ),
    (
        "operators_email_key",
        "operators.email",
        Clash::Conflict("an operator with this email exists already"),
    ),
    (
        "operator_tokens_hash_key",
        "operator_tokens.token_hash",
        Clash::Conflict("this credential exists already; try again"),
    ),
    (
        "approvals_pending",
        "approvals.kind, approvals.subject",
        Clash::Conflict("this waits for approval already (GET /admin/approvals)"),
    ),
    (
        "api_keys_hash_key",
        "api_keys.key_hash",
        Clash::Conflict("this credential exists already; try again"),
    ),
];

#[derive(Clone, Copy)]
enum Clash {
    KeyUsed,
    Conflict(&'static str),
}

/// What a unique violation means, by the constraint that was hit.
fn unique_violation(db: &dyn sqlx::error::DatabaseError) -> Option<StoreError> {
    let message = db.message();
    let columns = message.strip_prefix("UNIQUE constraint failed: ");
    let (_, _, clash) = UNIQUE_CONSTRAINTS
        .iter()
        .find(|(name, sqlite, _)| db.constraint() == Some(*name) || columns == Some(*sqlite))?;
    Some(match clash {
        Clash::KeyUsed => StoreError::KeyUsed,
        Clash::Conflict(what) => StoreError::Conflict((*what).to_string()),
    })
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::RowNotFound = error {
            return StoreError::NotFound("row".into());
        }
        if let Some(db) = error.as_database_error() {
            if db.is_unique_violation() {
                if let Some(mapped) = unique_violation(db) {
                    return mapped;
                }
            }
            if db.is_check_violation() {
                return StoreError::Invalid(format!("database check failed: {}", db.message()));
            }
        }
        StoreError::Other(anyhow::Error::new(error))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
