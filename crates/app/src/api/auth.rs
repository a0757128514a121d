//! Who is calling: `Authorization: Bearer <api key>` for user routes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use updown_store::User;

use super::ApiError;
use crate::error::AppError;
use crate::services::App;

/// The authenticated user; a handler taking it refuses anyone else.
pub struct CurrentUser(pub User);

impl FromRequestParts<App> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                AppError::Unauthorized("send your API key as Authorization: Bearer <key>".into())
            })?;
        Ok(CurrentUser(app.authenticate(key).await?))
    }
}
