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

use super::auth::{Admin, Money};
use super::bets::amount;
use super::idempotency::{bind, json_answer, respond, CurrentKey, KeyHeader};
use super::ApiError;
use crate::services::App;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(simulate_deposit))
}

/// A confirmed transfer to credit: to a user named by their email, or by
/// their deposit address (`POST /wallets`). Documented as one of the two
/// shapes below; read as one struct (the integers need their own reader,
/// which an untagged enum cannot host), checked to be one of them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SimulatedDeposit {
    email: Option<String>,
    address: Option<String>,
    #[serde(deserialize_with = "crate::wire::integer")]
    amount: i64,
    tx_hash: String,
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    log_index: Option<i64>,
}

// Documentation only: the body is read as `SimulatedDeposit`.
/// To a user named by their email, or by their deposit address.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum SimulatedDepositDoc {
    ToEmail(DepositToEmail),
    ToAddress(DepositToAddress),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DepositToEmail {
    #[schema(
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]$",
        max_length = 254
    )]
    email: String,
    /// Micro-USDC.
    #[schema(minimum = 1)]
    amount: i64,
    /// The chain transaction (or a readable reference); one credit per
    /// (tx_hash, log_index), whatever the case it is written in.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,130}$")]
    tx_hash: String,
    /// Default 0.
    #[schema(minimum = 0)]
    log_index: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct DepositToAddress {
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    address: String,
    /// Micro-USDC.
    #[schema(minimum = 1)]
    amount: i64,
    /// The chain transaction (or a readable reference); one credit per
    /// (tx_hash, log_index), whatever the case it is written in.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,130}$")]
    tx_hash: String,
    /// Default 0.
    #[schema(minimum = 0)]
    log_index: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/simulate/deposit_webhook",
    tag = "deposits",
    security(("admin_token" = [])),
    request_body = SimulatedDepositDoc,
    params(KeyHeader),
    responses(
        (status = 201, description = "credited once per (tx_hash, log_index): deposit_id, user_id, amount, tx_hash, log_index, available", body = Object),
        (status = 404, description = "no user with this email or deposit address", body = crate::api::ErrorBody),
        (status = 409, description = "this transfer was credited already", body = crate::api::ErrorBody),
        (status = 422, description = "refused: an address whose checksum fails; idempotency_mismatch", body = crate::api::ErrorBody),
    ),
)]
async fn simulate_deposit(
    State(app): State<App>,
    _admin: Admin<Money>,
    key: Option<Extension<CurrentKey>>,
    body: Result<Json<SimulatedDeposit>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let user = match (&body.email, &body.address) {
        (Some(email), None) => app.user_by_email(super::shapes::email(email)?).await?,
        (None, Some(address)) => {
            let address = super::shapes::address(address)?;
            app.user_by_deposit_address(&address.to_checksum()).await?
        }
        _ => return Err(ApiError::invalid("give either email or address, not both")),
    };
    let (amount_given, tx_hash, log_index) =
        (body.amount, &body.tx_hash, body.log_index.unwrap_or(0));
    let deposit = app
        .deposit(
            user.id,
            amount(amount_given)?,
            tx_hash,
            log_index,
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
