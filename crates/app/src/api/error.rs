//! The API's one error type: an HTTP status and `{"error": {"code",
//! "message"}}`. A 5xx reveals nothing; the cause is logged once.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::AppError;

/// Every error answer: a stable machine code and a message for people.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// One of: invalid_input, unauthorized, forbidden, not_found, conflict,
    /// round_closed, too_early, insufficient_funds, limit_exceeded,
    /// self_excluded, rate_limited, unavailable, timeout, internal.
    #[schema(example = "insufficient_funds")]
    code: String,
    message: String,
}

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }

    /// 422 `refused`: well-formed, but refused by a rule no schema states.
    pub fn refused(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", message)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The answer's JSON body: `{"error": {"code", "message"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({ "error": { "code": self.code, "message": self.message } })
    }
}

impl From<AppError> for ApiError {
    fn from(error: AppError) -> Self {
        let status = match error.code() {
            "not_found" => StatusCode::NOT_FOUND,
            "unauthorized" => StatusCode::UNAUTHORIZED,
            "forbidden" => StatusCode::FORBIDDEN,
            "conflict" | "round_closed" | "too_early" | "idempotency_key_used" => {
                StatusCode::CONFLICT
            }
            "invalid_input" => StatusCode::BAD_REQUEST,
            "insufficient_funds" | "limit_exceeded" | "self_excluded" | "refused" => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() && !matches!(error, AppError::Unavailable(_)) {
            tracing::error!(error = format!("{error:#}"), "request failed");
            return ApiError::new(status, "internal", "internal error; it has been logged");
        }
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            rejection.body_text(),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            rejection.body_text(),
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            rejection.body_text(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.code == "idempotency_key_used" {
            response
                .extensions_mut()
                .insert(super::idempotency::KeyUsedMarker);
        }
        response
    }
}

/// Unknown paths answer in the same format.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}
