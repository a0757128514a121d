//! Bets: place one on the round taking bets, cancel it, list mine.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use updown_domain::ids::{BetId, RoundCode};
use updown_domain::round::Side;
use updown_domain::Micros;

use super::auth::CurrentUser;
use super::ApiError;
use crate::services::App;
use crate::wire::BetOut;

pub fn router() -> Router<App> {
    Router::new()
        .route("/bets", post(place_bet))
        .route("/bets/{id}", delete(cancel_bet))
        .route("/me/bets", get(list_my_bets))
}

/// Amounts on the wire are integers of micro-USDC.
pub(super) fn amount(value: i64) -> Result<Micros, ApiError> {
    Micros::new(value).map_err(|e| ApiError::invalid(e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBet {
    side: String,
    amount: i64,
    /// A round code; default: the round taking bets now.
    round: Option<String>,
}

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

async fn cancel_bet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<BetOut>, ApiError> {
    let Path(id) = id?;
    let bet = app.cancel_bet(BetId(id), Some(user.id)).await?;
    Ok(Json(BetOut::from(&bet)))
}

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
