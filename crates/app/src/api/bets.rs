//! Bets: place one on the round taking bets, cancel it, list mine.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use updown_domain::ids::{BetId, RoundCode};
use updown_domain::round::Side;
use updown_domain::Micros;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::ApiError;
use crate::services::App;
use crate::wire::BetOut;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(place_bet))
        .routes(routes!(cancel_bet))
        .routes(routes!(list_my_bets))
}

/// Amounts on the wire are integers of micro-USDC.
pub(super) fn amount(value: i64) -> Result<Micros, ApiError> {
    Micros::new(value).map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewBet {
    /// UP or DOWN.
    #[schema(example = "UP")]
    side: String,
    /// Micro-USDC (1 USDC = 1000000).
    #[schema(example = 2000000)]
    amount: i64,
    /// A round code; default: the round taking bets now.
    round: Option<String>,
}

#[utoipa::path(post, path = "/bets", tag = "bets", security(("api_key" = []), ("session" = [])), request_body = NewBet, params(("Idempotency-Key" = Option<String>, Header, description = "retries with the same key get the first answer")), responses((status = 201, description = "the bet, in the pool", body = BetOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 403, description = "a cookie request from another origin", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 422, description = "refused: funds, limits, self-exclusion, or an Idempotency-Key reused with another request", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn place_bet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    body: Result<Json<NewBet>, JsonRejection>,
) -> Result<(StatusCode, Json<BetOut>), ApiError> {
    let Json(body) = body?;
    let side: Side = body
        .side
        .parse()
        .map_err(|e: updown_domain::round::ParseEnumError| ApiError::invalid(e.to_string()))?;
    let round = body
        .round
        .as_deref()
        .map(RoundCode::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let bet = app
        .place_bet(user.id, side, amount(body.amount)?, round)
        .await?;
    Ok((StatusCode::CREATED, Json(BetOut::from(&bet))))
}

#[utoipa::path(delete, path = "/bets/{id}", tag = "bets", security(("api_key" = []), ("session" = [])), params(("id" = i64, Path, description = "the bet")), responses((status = 200, description = "cancelled; the stake is back", body = BetOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 403, description = "a cookie request from another origin", body = crate::api::ErrorBody), (status = 404, description = "not found", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn cancel_bet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<BetOut>, ApiError> {
    let Path(id) = id?;
    let bet = app.cancel_bet(BetId(id), Some(user.id)).await?;
    Ok(Json(BetOut::from(&bet)))
}

#[utoipa::path(get, path = "/me/bets", tag = "bets", security(("api_key" = []), ("session" = [])), responses((status = 200, description = "your latest 100 bets, newest first", body = Vec<BetOut>), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn list_my_bets(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<BetOut>>, ApiError> {
    let bets = app
        .store
        .bets_of_user(user.id, 100)
        .await
        .map_err(crate::error::AppError::from)?;
    Ok(Json(bets.iter().map(BetOut::from).collect()))
}
