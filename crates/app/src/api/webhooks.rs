//! `POST /webhooks/deposits`: the deposit provider's signed notifications
//! (see `services::webhooks`), and `GET /admin/deposits`, what became of
//! the latest ones.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use updown_store::DepositOutcome;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Reads};
use super::ApiError;
use crate::services::webhooks::{DepositNotice, SignedRequest};
use crate::services::App;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(receive_deposit))
        .routes(routes!(list_deposit_notifications))
}

#[utoipa::path(
    post,
    path = "/webhooks/deposits",
    tag = "deposits",
    request_body = DepositNotice,
    params(
        ("X-Webhook-Timestamp" = String, Header, description = "Unix seconds when the provider signed; at most 300 s from the service's clock"),
        ("X-Webhook-Signature" = String, Header, description = "sha256=<hex HMAC-SHA256 of \"<timestamp>.<raw body>\" with DEPOSIT_WEBHOOK_SECRET>"),
    ),
    responses(
        (status = 201, description = "credited: status, user_id, deposit_id, tx_hash, log_index, amount, confirmations", body = Object),
        (status = 200, description = "this transfer was credited before; nothing more is", body = Object),
        (status = 202, description = "recorded as pending: fewer than MIN_CONFIRMATIONS (required_confirmations); a later notification credits it", body = Object),
        (status = 400, description = "not a valid notification", body = crate::api::ErrorBody),
        (status = 401, description = "missing or bad signature, or a stale timestamp", body = crate::api::ErrorBody),
        (status = 409, description = "the transfer was credited with other terms", body = crate::api::ErrorBody),
        (status = 422, description = "refused: another chain or token, or an address that is no user's", body = crate::api::ErrorBody),
        (status = 404, description = "the webhook is off (no DEPOSIT_WEBHOOK_SECRET)", body = crate::api::ErrorBody),
    ),
)]
async fn receive_deposit(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (outcome, answer) = app
        .receive_deposit_notification(SignedRequest {
            timestamp: header("x-webhook-timestamp"),
            signature: header("x-webhook-signature"),
            body: &body,
        })
        .await?;
    let status = match outcome {
        DepositOutcome::Credited => StatusCode::CREATED,
        DepositOutcome::Pending => StatusCode::ACCEPTED,
        DepositOutcome::Duplicate | DepositOutcome::Refused => StatusCode::OK,
    };
    Ok((status, Json(answer)))
}

#[utoipa::path(
    get,
    path = "/admin/deposits",
    tag = "admin",
    security(("admin_token" = [])),
    params(super::paging::Page),
    responses(
        (status = 200, description = "webhook notifications, newest first, a page at a time: id, received_at, outcome (credited, duplicate, pending, refused), reason, chain, token, tx_hash, log_index, to, amount, confirmations, user_id", body = Vec<Object>),
    ),
)]
async fn list_deposit_notifications(
    State(app): State<App>,
    _admin: Admin<Reads>,
    query: Result<Query<super::paging::Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let page = super::paging::Page::from_query(query)?;
    let notifications = app.deposit_notifications(page.before, page.limit()).await?;
    Ok(Json(
        notifications
            .iter()
            .map(|n| {
                json!({
                    "id": n.id,
                    "received_at": n.received_at.map(crate::wire::instant),
                    "outcome": n.outcome.map(|o| o.as_str()),
                    "reason": n.reason,
                    "chain": n.chain,
                    "token": n.token,
                    "tx_hash": n.tx_hash,
                    "log_index": n.log_index,
                    "to": n.to_address,
                    "amount": n.amount,
                    "confirmations": n.confirmations,
                    "user_id": n.user.map(|u| u.0),
                })
            })
            .collect(),
    ))
}
