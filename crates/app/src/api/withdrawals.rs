//! Withdrawals: request one (the amount moves to pending at once), list mine.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use updown_domain::ids::WithdrawalId;
use updown_store::Withdrawal;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::bets::amount;
use super::idempotency::{bind, json_answer, respond, CurrentKey, KeyHeader};
use super::paging::Page;
use super::ApiError;
use crate::services::App;
use crate::wire::WithdrawalOut;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(request_withdrawal))
        .routes(routes!(list_my_withdrawals))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewWithdrawal {
    /// Micro-USDC; at least WITHDRAWAL_MIN (422 below it).
    #[schema(example = 1000000, minimum = 1)]
    #[serde(deserialize_with = "crate::wire::integer")]
    amount: i64,
    /// An Ethereum address; EIP-55 checked when written in mixed case (422
    /// when the checksum fails, or for the zero address).
    #[schema(
        example = "0x52908400098527886E0F7030069857D2E4169EE7",
        pattern = "^0x[0-9a-fA-F]{40}$"
    )]
    address: String,
}

#[utoipa::path(
    post,
    path = "/withdrawals",
    tag = "withdrawals",
    security(("api_key" = []), ("session" = [])),
    request_body = NewWithdrawal,
    params(KeyHeader),
    responses(
        (status = 201, description = "queued; the amount is pending", body = WithdrawalOut),
        (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody),
        (status = 422, description = "refused: funds, limits, self-exclusion, or an Idempotency-Key reused with another request", body = crate::api::ErrorBody),
    ),
)]
async fn request_withdrawal(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    key: Option<Extension<CurrentKey>>,
    body: Result<Json<NewWithdrawal>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    super::shapes::address(&body.address)?;
    let answer = |w: &Withdrawal| json_answer(StatusCode::CREATED, &WithdrawalOut::from(w));
    let withdrawal = app
        .withdraw(
            user.id,
            amount(body.amount)?,
            &body.address,
            bind(key, answer),
        )
        .await?;
    Ok(respond(answer(&withdrawal)))
}

#[utoipa::path(
    get,
    path = "/me/withdrawals",
    tag = "withdrawals",
    security(("api_key" = []), ("session" = [])),
    params(Page),
    responses(
        (status = 200, description = "your withdrawals, newest first, a page at a time", body = Vec<WithdrawalOut>),
    ),
)]
async fn list_my_withdrawals(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<WithdrawalOut>>, ApiError> {
    let page = Page::from_query(page)?;
    let withdrawals = app
        .withdrawals(
            Some(user.id),
            None,
            page.before.map(WithdrawalId),
            page.limit(),
        )
        .await?;
    Ok(Json(withdrawals.iter().map(WithdrawalOut::from).collect()))
}
