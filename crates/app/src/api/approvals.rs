//! The approval queue: `GET /admin/approvals` lists what waits for (or was
//! decided by) a second person; `POST /admin/approvals/{id}/approve` and
//! `/reject` decide, each open to the roles of the approval's area
//! (treasurers for withdrawals, operators for settlements, admins both).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use updown_store::ApprovalState;

use super::auth::{Admin, Decides, Reads};
use super::paging::Page;
use super::ApiError;
use crate::services::{App, Decision};
use crate::wire::{ApprovalOut, RoundOut};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_approvals))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ApprovalQuery {
    /// Only approvals in this state.
    #[param(inline, value_type = Option<String>, pattern = "^(pending|approved|rejected)$")]
    state: Option<String>,
    /// Rows to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only rows older than this id: the last id of the previous page.
    #[param(minimum = 1)]
    before: Option<i64>,
}

/// An approval's id.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct IdPath {
    #[param(minimum = 1)]
    #[allow(dead_code)]
    id: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Approve {
    /// Why (audited): up to 500 characters.
    #[schema(max_length = 500)]
    reason: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Reject {
    /// Why (audited; shown to the player on a withdrawal): 1 to 500
    /// characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct DecisionOut {
    approval: ApprovalOut,
    /// The round, when this vote approved a settlement and it was carried
    /// out.
    round: Option<RoundOut>,
}

fn approval_id(id: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    let Path(id) = id?;
    if id < 1 {
        return Err(ApiError::invalid("an approval id is a positive number"));
    }
    Ok(id)
}

fn optional_reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason {
        Some(reason) if reason.trim().is_empty() => Ok(None),
        Some(reason) => super::admin::reason(&reason).map(Some),
        None => Ok(None),
    }
}

async fn answer(app: &App, decision: Decision) -> Result<Json<DecisionOut>, ApiError> {
    let round = match &decision.settled {
        Some(round) => Some(app.round_view(round).await?),
        None => None,
    };
    Ok(Json(DecisionOut {
        approval: ApprovalOut::from(&decision.approval),
        round,
    }))
}

#[utoipa::path(
    get,
    path = "/admin/approvals",
    tag = "admin",
    security(("admin_token" = [])),
    params(ApprovalQuery),
    responses(
        (status = 200, description = "approvals, newest first, each with its votes", body = Vec<ApprovalOut>),
    ),
)]
async fn list_approvals(
    State(app): State<App>,
    _admin: Admin<Reads>,
    query: Result<Query<ApprovalQuery>, QueryRejection>,
) -> Result<Json<Vec<ApprovalOut>>, ApiError> {
    let Query(query) = query?;
    let page = Page::from_query(Ok(Query(Page {
        limit: query.limit,
        before: query.before,
    })))?;
    let state = query
        .state
        .as_deref()
        .map(|s| {
            ApprovalState::parse(s).ok_or_else(|| {
                ApiError::invalid(format!(
                    "state must be pending, approved or rejected, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let found = app.approvals(state, page.before, page.limit()).await?;
    Ok(Json(found.iter().map(ApprovalOut::from).collect()))
}

#[utoipa::path(
    post,
    path = "/admin/approvals/{id}/approve",
    tag = "admin",
    security(("admin_token" = [])),
    params(IdPath),
    request_body = Approve,
    responses(
        (status = 200, description = "voted yes; once enough have, a withdrawal goes to the sender and a settlement is carried out (its round in the answer; should this process die first, the scheduler carries it out)", body = DecisionOut),
        (status = 403, description = "the approval's area is not your role's (treasurers decide withdrawals, operators settlements)", body = crate::api::ErrorBody),
        (status = 404, description = "no such approval", body = crate::api::ErrorBody),
        (status = 409, description = "decided already; you asked for it; you voted already; or you are disabled", body = crate::api::ErrorBody),
        (status = 422, description = "the break-glass token has no account to vote with", body = crate::api::ErrorBody),
    ),
)]
async fn approve(
    State(app): State<App>,
    admin: Admin<Decides>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Approve>, JsonRejection>,
) -> Result<Json<DecisionOut>, ApiError> {
    let id = approval_id(id)?;
    let Json(body) = body?;
    let reason = optional_reason(body.reason)?;
    let decision = app.decide_approval(&admin.0, id, true, reason).await?;
    answer(&app, decision).await
}

#[utoipa::path(
    post,
    path = "/admin/approvals/{id}/reject",
    tag = "admin",
    security(("admin_token" = [])),
    params(IdPath),
    request_body = Reject,
    responses(
        (status = 200, description = "rejected: a withdrawal fails and its funds return to the player; a settlement is not carried out", body = DecisionOut),
        (status = 403, description = "the approval's area is not your role's", body = crate::api::ErrorBody),
        (status = 404, description = "no such approval", body = crate::api::ErrorBody),
        (status = 409, description = "decided already; you asked for it; you voted already; or you are disabled", body = crate::api::ErrorBody),
        (status = 422, description = "the break-glass token has no account to vote with", body = crate::api::ErrorBody),
    ),
)]
async fn reject(
    State(app): State<App>,
    admin: Admin<Decides>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Reject>, JsonRejection>,
) -> Result<Json<DecisionOut>, ApiError> {
    let id = approval_id(id)?;
    let Json(body) = body?;
    let reason = super::admin::reason(&body.reason)?;
    let decision = app
        .decide_approval(&admin.0, id, false, Some(reason))
        .await?;
    answer(&app, decision).await
}
