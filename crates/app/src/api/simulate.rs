//! `POST /simulate/deposit_webhook` (admin): credit a confirmed transfer by
//! hand, for development, to a user's email or deposit address; each
//! (tx_hash, log_index) is credited once.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use updown_store::{Deposit, KeptAnswer};

use super::auth::Admin;
use super::bets::amount;
use super::idempotency::{bind, json_answer, respond, CurrentKey, KeyHeader};
use super::ApiError;
use crate::services::App;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(simulate_deposit))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SimulatedDeposit {
    /// Who is credited: their email, or their deposit address (`POST /wallets`).
    email: Option<String>,
    address: Option<String>,
    amount: i64,
    tx_hash: String,
    #[serde(default)]
    log_index: i64,
}

#[utoipa::path(post, path = "/simulate/deposit_webhook", tag = "deposits", security(("admin_token" = [])), request_body = SimulatedDeposit, params(KeyHeader), responses((status = 201, description = "credited once per (tx_hash, log_index): deposit_id, user_id, amount, tx_hash, log_index, available", body = Object), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 404, description = "not found", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 422, description = "refused", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn simulate_deposit(
    State(app): State<App>,
    _admin: Admin,
    key: Option<Extension<CurrentKey>>,
    body: Result<Json<SimulatedDeposit>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let user = match (&body.email, &body.address) {
        (Some(email), None) => app.user_by_email(email).await?,
        (None, Some(address)) => app.user_by_deposit_address(address).await?,
        _ => return Err(ApiError::invalid("give either email or address")),
    };
    let deposit = app
        .deposit(
            user.id,
            amount(body.amount)?,
            &body.tx_hash,
            body.log_index,
            bind(key, answer),
        )
        .await?;
    Ok(respond(answer(&deposit)))
}

/// The answer: the credit and the balance right after it.
fn answer(deposit: &Deposit) -> KeptAnswer {
    json_answer(
        StatusCode::CREATED,
        &json!({
            "deposit_id": deposit.id,
            "user_id": deposit.user.0,
            "amount": deposit.amount.get(),
            "tx_hash": deposit.chain_tx_hash,
            "log_index": deposit.log_index,
            "available": deposit.balance_after.map(|b| b.get()),
        }),
    )
}
