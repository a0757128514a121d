//! The caller's own account: `GET /me`, and rotating API keys.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use updown_domain::Micros;

use super::auth::CurrentUser;
use super::ApiError;
use crate::services::App;
use crate::wire::instant;

pub fn router() -> Router<App> {
    Router::new()
        .route("/me", get(get_me))
        .route("/me/api-keys", post(create_api_key))
        .route("/me/api-keys/{id}", delete(revoke_api_key))
}

async fn get_me(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let balance = app.balance(user.id).await?;
    Ok(Json(json!({
        "id": user.id.0,
        "email": user.email.as_str(),
        "available": balance.get(),
        "limits": {
            "max_stake_per_round": user.limits.max_stake_per_round.map(Micros::get),
            "max_stake_per_day": user.limits.max_stake_per_day.map(Micros::get),
            "excluded_until": user.limits.excluded_until.map(instant),
        },
    })))
}

async fn create_api_key(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, key) = app.new_api_key(user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "api_key_id": id, "api_key": key })),
    ))
}

async fn revoke_api_key(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    app.revoke_api_key(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
