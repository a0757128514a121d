//! The use-cases' error: what went wrong in words a caller can act on, and
//! a stable code for machines (the CLI's JSON errors and the API's).

use updown_domain::admission::BetRefusal;
use updown_domain::money::MoneyError;
use updown_domain::round::RoundError;
use updown_store::{BetRefusalReason, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    InsufficientFunds(String),
    #[error("{0}")]
    LimitExceeded(String),
    /// Well-formed but not acceptable (a deposit on another chain, to an
    /// unknown address).
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Round(#[from] RoundError),
    #[error("{0}")]
    Refused(BetRefusalReason),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Unauthorized(String),
    /// Known, but their role does not open this.
    #[error("{0}")]
    Forbidden(String),
    /// The request's Idempotency-Key was recorded by an earlier request;
    /// this one changed nothing. The API answers from the record.
    #[error("this Idempotency-Key was used by an earlier request")]
    KeyUsed,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Invalid(_) => "invalid_input",
            AppError::InsufficientFunds(_) => "insufficient_funds",
            AppError::LimitExceeded(_) => "limit_exceeded",
            AppError::Rejected(_) => "refused",
            AppError::Round(
                RoundError::TooEarlyToSettle { .. } | RoundError::SessionNotClosed { .. },
            ) => "too_early",
            AppError::Round(_) => "round_closed",
            AppError::Refused(reason) => match reason {
                BetRefusalReason::Player(BetRefusal::InsufficientFunds { .. }) => {
                    "insufficient_funds"
                }
                BetRefusalReason::Player(BetRefusal::SelfExcluded { .. }) => "self_excluded",
                BetRefusalReason::Player(_) => "limit_exceeded",
                BetRefusalReason::Round(RoundError::TooEarlyToSettle { .. }) => "too_early",
                BetRefusalReason::Round(_) => "round_closed",
                BetRefusalReason::UnknownUser(_) => "not_found",
                BetRefusalReason::KeyUsed => "idempotency_key_used",
            },
            AppError::KeyUsed => "idempotency_key_used",
            AppError::Unavailable(_) => "unavailable",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden(_) => "forbidden",
            AppError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for AppError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(what) => AppError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => AppError::Conflict(what),
            e @ StoreError::InsufficientFunds { .. } => AppError::InsufficientFunds(e.to_string()),
            StoreError::Round(e) => AppError::Round(e),
            StoreError::Invalid(what) => AppError::Invalid(what),
            StoreError::LimitExceeded(what) => AppError::LimitExceeded(what),
            StoreError::KeyUsed => AppError::KeyUsed,
            StoreError::Other(e) => AppError::Internal(e),
        }
    }
}

impl From<MoneyError> for AppError {
    fn from(error: MoneyError) -> Self {
        AppError::Invalid(error.to_string())
    }
}

impl From<BetRefusalReason> for AppError {
    fn from(reason: BetRefusalReason) -> Self {
        match reason {
            BetRefusalReason::KeyUsed => AppError::KeyUsed,
            other => AppError::Refused(other),
        }
    }
}
