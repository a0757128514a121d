//! The operator's routes (admin token): rounds by hand (open, lock,
//! settle, void, each with a reason), the withdrawal queue, users, the
//! audit log and `verify`. Every action is recorded with who and why.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use updown_domain::ids::{RoundCode, WithdrawalId};
use updown_store::{ChainRejection, Withdrawal, WithdrawalChange, WithdrawalStatus};

use super::auth::Admin;
use super::idempotency::{bind, json_answer, respond, CurrentKey, KeyHeader};
use super::paging::Page;
use super::ApiError;
use crate::error::AppError;
use crate::services::{App, SettleRequest};
use crate::wire::{AuditOut, RoundOut, UserSummaryOut, VerifyOut, WithdrawalOut};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Longest reason kept in the audit log.
const MAX_REASON: usize = 500;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(open_round))
        .routes(routes!(lock_round))
        .routes(routes!(settle_round))
        .routes(routes!(void_round))
        .routes(routes!(list_withdrawals))
        .routes(routes!(change_withdrawal))
        .routes(routes!(list_users))
        .routes(routes!(audit_log))
        .routes(routes!(verify))
}

/// Who acted (default `admin`) and why.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Action {
    reason: Option<String>,
    actor: Option<String>,
    /// `open`: the round code; default the round that takes bets now.
    code: Option<String>,
    /// `settle`: AUTO (the oracle), UP, DOWN or VOID.
    result: Option<String>,
    /// Withdrawal steps: the chain transaction hash.
    tx_hash: Option<String>,
}

impl Action {
    fn from_body(body: Result<Json<Action>, JsonRejection>) -> Result<Action, ApiError> {
        let Json(action) = body?;
        if let Some(reason) = &action.reason {
            if reason.trim().is_empty() || reason.len() > MAX_REASON {
                return Err(ApiError::invalid(format!(
                    "reason must be 1 to {MAX_REASON} characters"
                )));
            }
        }
        if let Some(actor) = &action.actor {
            if actor.trim().is_empty() || actor.len() > 100 {
                return Err(ApiError::invalid("actor must be 1 to 100 characters"));
            }
        }
        Ok(action)
    }

    fn actor(&self) -> String {
        self.actor.clone().unwrap_or_else(|| "admin".into())
    }

    fn required_reason(&self) -> Result<String, ApiError> {
        self.reason
            .clone()
            .ok_or_else(|| ApiError::invalid("this action needs a reason"))
    }
}

fn round_code(code: Result<Path<String>, PathRejection>) -> Result<RoundCode, ApiError> {
    let Path(code) = code?;
    RoundCode::parse(&code).map_err(|e| ApiError::invalid(e.to_string()))
}

#[utoipa::path(post, path = "/admin/rounds", tag = "admin", security(("admin_token" = [])), request_body = Action, responses((status = 201, description = "opened (reason required; code optional)", body = RoundOut), (status = 200, description = "it was open already", body = RoundOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn open_round(
    State(app): State<App>,
    _admin: Admin,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<(StatusCode, Json<RoundOut>), ApiError> {
    let action = Action::from_body(body)?;
    let reason = action.required_reason()?;
    let code = action
        .code
        .as_deref()
        .map(RoundCode::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let (round, created) = app
        .operator_open_round(code, &action.actor(), Some(reason))
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(app.round_view(&round).await?)))
}

#[utoipa::path(post, path = "/admin/rounds/{code}/lock", tag = "admin", security(("admin_token" = [])), params(("code" = String, Path, description = "YYYYMMDD")), request_body = Action, responses((status = 200, description = "locked (reason required)", body = RoundOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 404, description = "not found", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn lock_round(
    State(app): State<App>,
    _admin: Admin,
    code: Result<Path<String>, PathRejection>,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Json<RoundOut>, ApiError> {
    let code = round_code(code)?;
    let action = Action::from_body(body)?;
    let reason = action.required_reason()?;
    let round = app
        .operator_lock_round(code, &action.actor(), Some(reason))
        .await?;
    Ok(Json(app.round_view(&round).await?))
}

#[utoipa::path(post, path = "/admin/rounds/{code}/settle", tag = "admin", security(("admin_token" = [])), params(("code" = String, Path, description = "YYYYMMDD")), request_body = Action, responses((status = 200, description = "settled: result AUTO (the oracle) or UP/DOWN/VOID with a reason; UP/DOWN only after the close", body = RoundOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 404, description = "not found", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody), (status = 503, description = "unavailable (e.g. no close from the oracle yet)", body = crate::api::ErrorBody)))]
async fn settle_round(
    State(app): State<App>,
    _admin: Admin,
    code: Result<Path<String>, PathRejection>,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Json<RoundOut>, ApiError> {
    let code = round_code(code)?;
    let action = Action::from_body(body)?;
    let result = action
        .result
        .clone()
        .ok_or_else(|| ApiError::invalid("result is required: AUTO, UP, DOWN or VOID"))?;
    let request = SettleRequest::from_operator(&result, action.actor(), action.reason.clone())?;
    settle(app, code, request).await
}

#[utoipa::path(post, path = "/admin/rounds/{code}/void", tag = "admin", security(("admin_token" = [])), params(("code" = String, Path, description = "YYYYMMDD")), request_body = Action, responses((status = 200, description = "voided, every stake refunded (reason required; the round must be locked)", body = RoundOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 404, description = "not found", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn void_round(
    State(app): State<App>,
    _admin: Admin,
    code: Result<Path<String>, PathRejection>,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Json<RoundOut>, ApiError> {
    let code = round_code(code)?;
    let action = Action::from_body(body)?;
    let request = SettleRequest::from_operator("VOID", action.actor(), action.reason.clone())?;
    settle(app, code, request).await
}

/// Settles in a task of its own: if the request times out or the caller
/// goes away, the settlement still finishes (it is resumable anyway).
async fn settle(
    app: App,
    code: RoundCode,
    request: SettleRequest,
) -> Result<Json<RoundOut>, ApiError> {
    let worker = app.clone();
    let round = tokio::spawn(async move { worker.settle_round(code, request).await })
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("settlement task failed: {e}")))??;
    Ok(Json(app.round_view(&round).await?))
}

/// `?status=` of the withdrawal queue, with the page.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WithdrawalQuery {
    /// Only withdrawals in this status.
    #[param(inline, value_type = Option<String>, pattern = "^(QUEUED|SUBMITTING|SUBMITTED|CONFIRMED|FAILED)$")]
    status: Option<String>,
    /// Rows to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only rows older than this id: the last id of the previous page.
    #[param(minimum = 1)]
    before: Option<i64>,
}

#[utoipa::path(get, path = "/admin/withdrawals", tag = "admin", security(("admin_token" = [])), params(WithdrawalQuery), responses((status = 200, description = "withdrawals, newest first, a page at a time", body = Vec<WithdrawalOut>), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn list_withdrawals(
    State(app): State<App>,
    _admin: Admin,
    query: Result<Query<WithdrawalQuery>, QueryRejection>,
) -> Result<Json<Vec<WithdrawalOut>>, ApiError> {
    let Query(query) = query?;
    let page = Page::from_query(Ok(Query(Page {
        limit: query.limit,
        before: query.before,
    })))?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            WithdrawalStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
                ApiError::invalid(format!(
                    "status must be QUEUED, SUBMITTING, SUBMITTED, CONFIRMED or FAILED, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let withdrawals = app
        .store
        .withdrawals(None, status, page.before.map(WithdrawalId), page.limit())
        .await
        .map_err(AppError::from)?;
    Ok(Json(withdrawals.iter().map(WithdrawalOut::from).collect()))
}

#[utoipa::path(post, path = "/admin/withdrawals/{id}/{step}", tag = "admin", security(("admin_token" = [])), params(("id" = i64, Path), ("step" = String, Path, description = "submit or confirm (tx_hash optional), fail (reason required: the funds go back; once it may be on the chain, only with the rejected tx_hash)"), KeyHeader), request_body = Action, responses((status = 200, description = "the withdrawal after the step", body = WithdrawalOut), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 404, description = "not found", body = crate::api::ErrorBody), (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn change_withdrawal(
    State(app): State<App>,
    _admin: Admin,
    key: Option<Extension<CurrentKey>>,
    path: Result<Path<(i64, String)>, PathRejection>,
    body: Result<Json<Action>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Path((id, step)) = path?;
    let action = Action::from_body(body)?;
    let change = match step.as_str() {
        "submit" => WithdrawalChange::Submit {
            chain_tx_hash: action.tx_hash.clone(),
        },
        "confirm" => WithdrawalChange::Confirm {
            chain_tx_hash: action.tx_hash.clone(),
        },
        "fail" => WithdrawalChange::Fail {
            reason: action.required_reason()?,
            rejection: action
                .tx_hash
                .clone()
                .map(|tx_hash| ChainRejection::Operator { tx_hash }),
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no withdrawal step {other:?}; use submit, confirm or fail"),
            ))
        }
    };
    let answer = |w: &Withdrawal| json_answer(StatusCode::OK, &WithdrawalOut::from(w));
    let withdrawal = app
        .change_withdrawal(WithdrawalId(id), change, &action.actor(), bind(key, answer))
        .await?;
    Ok(respond(answer(&withdrawal)))
}

#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("admin_token" = [])), params(Page), responses((status = 200, description = "users with balances and limits, newest first, a page at a time", body = Vec<UserSummaryOut>), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn list_users(
    State(app): State<App>,
    _admin: Admin,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<UserSummaryOut>>, ApiError> {
    let page = Page::from_query(page)?;
    let users = app
        .store
        .users(page.before, page.limit())
        .await
        .map_err(AppError::from)?;
    let now = app.clock.now();
    Ok(Json(
        users.iter().map(|u| UserSummaryOut::at(u, now)).collect(),
    ))
}

#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("admin_token" = [])), params(Page), responses((status = 200, description = "operator actions, newest first, with who and why, a page at a time", body = Vec<AuditOut>), (status = 400, description = "invalid input", body = crate::api::ErrorBody), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
async fn audit_log(
    State(app): State<App>,
    _admin: Admin,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<AuditOut>>, ApiError> {
    let page = Page::from_query(page)?;
    let entries = app
        .store
        .audit_log(page.before, page.limit())
        .await
        .map_err(AppError::from)?;
    Ok(Json(entries.iter().map(AuditOut::from).collect()))
}

#[utoipa::path(get, path = "/admin/verify", tag = "admin", security(("admin_token" = [])), responses((status = 200, description = "every ledger invariant, recomputed", body = VerifyOut), (status = 401, description = "no or a bad credential", body = crate::api::ErrorBody), (status = 429, description = "rate limited (see Retry-After)", body = crate::api::ErrorBody)))]
/// Recomputes every ledger invariant: seconds on a large ledger.
async fn verify(State(app): State<App>, _admin: Admin) -> Result<Json<VerifyOut>, ApiError> {
    Ok(Json(VerifyOut::from(&app.verify().await?)))
}
