//! Bets: place one on the round taking bets, cancel it, list mine.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use updown_domain::ids::BetId;
use updown_domain::round::Side;
use updown_domain::Micros;
use updown_store::Bet;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::idempotency::{bind, json_answer, respond, CurrentKey, KeyHeader};
use super::paging::Page;
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
    #[schema(example = "UP", pattern = "^(UP|DOWN)$")]
    side: String,
    /// Micro-USDC (1 USDC = 1000000); at most MAX_BET (422 above it).
    #[schema(example = 2000000, minimum = 1)]
    #[serde(deserialize_with = "crate::wire::integer")]
    amount: i64,
    /// A round code, YYYYMMDD; default: the round taking bets now.
    #[schema(pattern = "^[0-9]{8}$")]
    round: Option<String>,
}

/// A side as the API writes it: exactly UP or DOWN.
pub(super) fn side(text: &str) -> Result<Side, ApiError> {
    match text {
        "UP" => Ok(Side::Up),
        "DOWN" => Ok(Side::Down),
        other => Err(ApiError::invalid(format!(
            "side must be UP or DOWN, not {other:?}"
        ))),
    }
}

#[utoipa::path(
    post,
    path = "/bets",
    tag = "bets",
    security(("api_key" = []), ("session" = [])),
    request_body = NewBet,
    params(KeyHeader),
    responses(
        (status = 201, description = "the bet, in the pool", body = BetOut),
        (status = 404, description = "no such round, or the round taking bets is not open yet", body = crate::api::ErrorBody),
        (status = 409, description = "round_closed: the round no longer takes bets; idempotency_in_progress", body = crate::api::ErrorBody),
        (status = 422, description = "refused: funds, limits, self-exclusion, or an Idempotency-Key reused with another request", body = crate::api::ErrorBody),
    ),
)]
async fn place_bet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    key: Option<Extension<CurrentKey>>,
    body: Result<Json<NewBet>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let side = side(&body.side)?;
    let round = body
        .round
        .as_deref()
        .map(super::rounds::round_code)
        .transpose()?;
    let answer = |bet: &Bet| json_answer(StatusCode::CREATED, &BetOut::from(bet));
    let bet = app
        .place_bet(
            user.id,
            side,
            amount(body.amount)?,
            round,
            bind(key, answer),
        )
        .await?;
    Ok(respond(answer(&bet)))
}

#[utoipa::path(
    delete,
    path = "/bets/{id}",
    tag = "bets",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "the bet", minimum = 1), KeyHeader),
    responses(
        (status = 200, description = "cancelled; the stake is back", body = BetOut),
        (status = 404, description = "not found", body = crate::api::ErrorBody),
        (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody),
    ),
)]
async fn cancel_bet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    key: Option<Extension<CurrentKey>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let answer = |bet: &Bet| json_answer(StatusCode::OK, &BetOut::from(bet));
    let bet = app
        .cancel_bet(BetId(id), Some(user.id), bind(key, answer))
        .await?;
    Ok(respond(answer(&bet)))
}

#[utoipa::path(
    get,
    path = "/me/bets",
    tag = "bets",
    security(("api_key" = []), ("session" = [])),
    params(Page),
    responses(
        (status = 200, description = "your bets, newest first, a page at a time", body = Vec<BetOut>),
    ),
)]
async fn list_my_bets(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<BetOut>>, ApiError> {
    let page = Page::from_query(page)?;
    let bets = app
        .bets_of_user(user.id, page.before.map(BetId), page.limit())
        .await?;
    Ok(Json(bets.iter().map(BetOut::from).collect()))
}
