//! Who is calling: `Authorization: Bearer <api key>` for user routes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use updown_store::User;

use super::ApiError;
use crate::error::AppError;
use crate::services::App;

/// The credential in `Authorization: Bearer <credential>`, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The authenticated user; a handler taking it refuses anyone else.
pub struct CurrentUser(pub User);

impl FromRequestParts<App> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let key = bearer(parts).ok_or_else(|| {
            AppError::Unauthorized("send your API key as Authorization: Bearer <key>".into())
        })?;
        Ok(CurrentUser(app.authenticate(key).await?))
    }
}

/// The operator, proven by `Authorization: Bearer <ADMIN_TOKEN>`.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let presented = bearer(parts).unwrap_or_default();
        match &app.config.admin_token {
            Some(token) if constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) => {
                Ok(Admin)
            }
            _ => Err(AppError::Unauthorized("this route needs the admin token".into()).into()),
        }
    }
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
    }
}
