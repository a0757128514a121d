//! Withdrawals: request one (the amount moves to pending at once), list mine.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::CurrentUser;
use super::bets::amount;
use super::ApiError;
use crate::services::App;
use crate::wire::WithdrawalOut;

pub fn router() -> Router<App> {
    Router::new()
        .route("/withdrawals", post(request_withdrawal))
        .route("/me/withdrawals", get(list_my_withdrawals))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewWithdrawal {
    amount: i64,
    address: String,
}

async fn request_withdrawal(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    body: Result<Json<NewWithdrawal>, JsonRejection>,
) -> Result<(StatusCode, Json<WithdrawalOut>), ApiError> {
    let Json(body) = body?;
    let withdrawal = app
        .withdraw(user.id, amount(body.amount)?, &body.address)
        .await?;
    Ok((StatusCode::CREATED, Json(WithdrawalOut::from(&withdrawal))))
}

async fn list_my_withdrawals(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<WithdrawalOut>>, ApiError> {
    let withdrawals = app
        .store
        .withdrawals(Some(user.id), None, 100)
        .await
        .map_err(crate::error::AppError::from)?;
    Ok(Json(withdrawals.iter().map(WithdrawalOut::from).collect()))
}
