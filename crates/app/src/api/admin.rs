//! The operator's routes (admin token): rounds by hand (open, lock,
//! settle, void, each with a reason), the withdrawal queue, users, the
//! audit log and `verify`. Every action is recorded with who and why.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;
use updown_domain::ids::{RoundCode, UserId, WithdrawalId};
use updown_domain::round::Outcome;
use updown_store::{ChainRejection, Withdrawal, WithdrawalChange, WithdrawalStatus};

use super::auth::{Admin, Money, Reads, Rounds, Users};
use super::idempotency::{bind, json_answer, respond, CurrentKey, KeyHeader};
use super::paging::Page;
use super::ApiError;
use crate::error::AppError;
use crate::services::ByHand;
use crate::services::Staff;
use crate::services::{App, SettleRequest};
use crate::wire::{
    ApprovalOut, AuditOut, RoundOut, UserSummaryOut, VerifyOut, WithdrawalAdminOut, WithdrawalOut,
};
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
        .routes(routes!(submit_withdrawal))
        .routes(routes!(confirm_withdrawal))
        .routes(routes!(fail_withdrawal))
        .routes(routes!(list_users))
        .routes(routes!(set_user_limits))
        .routes(routes!(audit_log))
        .routes(routes!(verify))
}

/// Longest actor name.
const MAX_ACTOR: usize = 100;

/// Who acted: the operator whose token it is; with the break-glass token,
/// the name the body gives (default `admin`), marked break-glass.
fn actor(staff: &Staff, declared: &Option<String>) -> Result<String, ApiError> {
    let declared = match declared {
        None => None,
        Some(actor) => Some(text("actor", actor, MAX_ACTOR)?),
    };
    Ok(staff.actor_for(declared.as_deref()))
}

/// A free text field: 1 to `max` characters, not all blank.
fn text(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{name} must be 1 to {max} characters, not all blank"
        )));
    }
    Ok(value.to_string())
}

/// Why an operator acts: audited with the action.
pub(super) fn reason(reason: &str) -> Result<String, ApiError> {
    text("reason", reason, MAX_REASON)
}

/// Opening a round by hand.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OpenRound {
    /// Why (audited): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
    /// Who acted; default `admin`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    actor: Option<String>,
    /// The round, YYYYMMDD; default the round that takes bets now.
    #[schema(pattern = "^[0-9]{8}$")]
    code: Option<String>,
}

/// Locking or voiding a round by hand.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RoundAction {
    /// Why (audited): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
    /// Who acted; default `admin`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    actor: Option<String>,
}

/// Settling a round: from the oracle (AUTO) or by hand.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Settlement {
    /// AUTO (the oracle's closes), UP, DOWN or VOID.
    #[schema(pattern = "^(AUTO|UP|DOWN|VOID)$")]
    result: String,
    /// Why (audited): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
    /// Who acted; default `admin`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    actor: Option<String>,
}

/// A withdrawal step by hand.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WithdrawalStep {
    /// submit, confirm: the transaction sent. fail: the transaction the
    /// chain rejected (needed once the withdrawal may be on the chain).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,130}$")]
    tx_hash: Option<String>,
    /// Who acted; default `admin`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    actor: Option<String>,
}

/// A failed withdrawal: why is required.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct FailedWithdrawal {
    /// Why it failed (audited, shown to the player): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
    /// The transaction the chain rejected: needed once the withdrawal may
    /// be on the chain (SUBMITTING, SUBMITTED), and then the one recorded.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,130}$")]
    tx_hash: Option<String>,
    /// Who acted; default `admin`.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    actor: Option<String>,
}

fn round_code(code: Result<Path<String>, PathRejection>) -> Result<RoundCode, ApiError> {
    let Path(code) = code?;
    super::rounds::round_code(&code)
}

#[utoipa::path(
    post,
    path = "/admin/rounds",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = OpenRound,
    params(KeyHeader),
    responses(
        (status = 201, description = "opened", body = RoundOut),
        (status = 200, description = "it was open already", body = RoundOut),
        (status = 404, description = "no round: the code is not a calendar date", body = crate::api::ErrorBody),
        (status = 422, description = "refused: not a trading session, or (with a key) idempotency_mismatch", body = crate::api::ErrorBody),
    ),
)]
async fn open_round(
    State(app): State<App>,
    admin: Admin<Rounds>,
    body: Result<Json<OpenRound>, JsonRejection>,
) -> Result<(StatusCode, Json<RoundOut>), ApiError> {
    let Json(body) = body?;
    let (reason, actor) = (reason(&body.reason)?, actor(&admin.0, &body.actor)?);
    let code = body
        .code
        .as_deref()
        .map(super::rounds::round_code)
        .transpose()?;
    let (round, created) = app.operator_open_round(code, &actor, Some(reason)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(app.round_view(&round).await?)))
}

#[utoipa::path(
    post,
    path = "/admin/rounds/{code}/lock",
    tag = "admin",
    security(("admin_token" = [])),
    params(super::rounds::CodePath, KeyHeader),
    request_body = RoundAction,
    responses(
        (status = 200, description = "locked", body = RoundOut),
        (status = 404, description = "no such round", body = crate::api::ErrorBody),
        (status = 409, description = "conflict with the round's state", body = crate::api::ErrorBody),
    ),
)]
async fn lock_round(
    State(app): State<App>,
    admin: Admin<Rounds>,
    code: Result<Path<String>, PathRejection>,
    body: Result<Json<RoundAction>, JsonRejection>,
) -> Result<Json<RoundOut>, ApiError> {
    let code = round_code(code)?;
    let Json(body) = body?;
    let (reason, actor) = (reason(&body.reason)?, actor(&admin.0, &body.actor)?);
    let round = app.operator_lock_round(code, &actor, Some(reason)).await?;
    Ok(Json(app.round_view(&round).await?))
}

#[utoipa::path(
    post,
    path = "/admin/rounds/{code}/settle",
    tag = "admin",
    security(("admin_token" = [])),
    params(super::rounds::CodePath, KeyHeader),
    request_body = Settlement,
    responses(
        (status = 200, description = "settled: AUTO from the oracle's closes, or VOID of a round nobody bet on", body = RoundOut),
        (status = 202, description = "UP or DOWN (only after the close), or VOID of a round with bets: checked, then waiting for a second operator's approval (POST /admin/approvals/{id}/approve)", body = ApprovalOut),
        (status = 404, description = "no such round", body = crate::api::ErrorBody),
        (status = 409, description = "conflict with the round's state (not locked, too early, settling as another result)", body = crate::api::ErrorBody),
        (status = 503, description = "no close from the oracle yet", body = crate::api::ErrorBody),
    ),
)]
async fn settle_round(
    State(app): State<App>,
    admin: Admin<Rounds>,
    code: Result<Path<String>, PathRejection>,
    body: Result<Json<Settlement>, JsonRejection>,
) -> Result<Response, ApiError> {
    let code = round_code(code)?;
    let Json(body) = body?;
    let (reason, actor) = (reason(&body.reason)?, actor(&admin.0, &body.actor)?);
    if !matches!(body.result.as_str(), "AUTO" | "UP" | "DOWN" | "VOID") {
        return Err(ApiError::invalid(format!(
            "result must be AUTO, UP, DOWN or VOID, not {:?}",
            body.result
        )));
    }
    match SettleRequest::from_operator(&body.result, actor, Some(reason))? {
        SettleRequest::Auto => Ok(settle(app, code, SettleRequest::Auto)
            .await?
            .into_response()),
        SettleRequest::Manual {
            outcome, reason, ..
        } => by_hand(&app, &admin.0, code, outcome, reason, body.actor).await,
    }
}

/// A result by hand: settled (VOID of a round nobody bet on), or waiting
/// for a second operator (202 with the approval).
async fn by_hand(
    app: &App,
    staff: &Staff,
    code: RoundCode,
    outcome: Outcome,
    reason: String,
    declared: Option<String>,
) -> Result<Response, ApiError> {
    match app
        .settle_by_hand(staff, code, outcome, reason, declared.as_deref())
        .await?
    {
        ByHand::Settled(round) => Ok(Json(app.round_view(&round).await?).into_response()),
        ByHand::Waiting(approval) => {
            Ok((StatusCode::ACCEPTED, Json(ApprovalOut::from(&approval))).into_response())
        }
    }
}

#[utoipa::path(
    post,
    path = "/admin/rounds/{code}/void",
    tag = "admin",
    security(("admin_token" = [])),
    params(super::rounds::CodePath, KeyHeader),
    request_body = RoundAction,
    responses(
        (status = 200, description = "voided (a round nobody bet on; it must be locked)", body = RoundOut),
        (status = 202, description = "a round with bets: waiting for a second operator's approval, then voided with every stake refunded", body = ApprovalOut),
        (status = 404, description = "no such round", body = crate::api::ErrorBody),
        (status = 409, description = "conflict with the round's state", body = crate::api::ErrorBody),
    ),
)]
async fn void_round(
    State(app): State<App>,
    admin: Admin<Rounds>,
    code: Result<Path<String>, PathRejection>,
    body: Result<Json<RoundAction>, JsonRejection>,
) -> Result<Response, ApiError> {
    let code = round_code(code)?;
    let Json(body) = body?;
    let reason = reason(&body.reason)?;
    actor(&admin.0, &body.actor)?;
    by_hand(&app, &admin.0, code, Outcome::Void, reason, body.actor).await
}

/// Settles in a task of its own: if the request times out or the caller
/// goes away, the settlement still finishes (it is resumable anyway).
async fn settle(
    app: App,
    code: RoundCode,
    request: SettleRequest,
) -> Result<Json<RoundOut>, ApiError> {
    let worker = app.clone();
    let round =
        crate::services::context::spawn(async move { worker.settle_round(code, request).await })
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

#[utoipa::path(
    get,
    path = "/admin/withdrawals",
    tag = "admin",
    security(("admin_token" = [])),
    params(WithdrawalQuery),
    responses(
        (status = 200, description = "withdrawals, newest first, a page at a time, each with the hot wallet's transactions for it (CHAIN_SENDER=evm): hash, nonce, state, confirmations, and a link when EXPLORER_TX_URL is set", body = Vec<WithdrawalAdminOut>),
    ),
)]
async fn list_withdrawals(
    State(app): State<App>,
    _admin: Admin<Reads>,
    query: Result<Query<WithdrawalQuery>, QueryRejection>,
) -> Result<Json<Vec<WithdrawalAdminOut>>, ApiError> {
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
        .withdrawals_for_operators(status, page.before.map(WithdrawalId), page.limit(), None)
        .await?;
    Ok(Json(withdrawals))
}

/// A withdrawal in a path.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct WithdrawalPath {
    /// The withdrawal's id.
    #[param(minimum = 1)]
    id: i64,
}

/// Applies a step; the answer is the withdrawal after it.
async fn step(
    app: App,
    key: Option<Extension<CurrentKey>>,
    id: Result<Path<i64>, PathRejection>,
    change: WithdrawalChange,
    actor: String,
) -> Result<Response, ApiError> {
    let Path(id) = id?;
    let answer = |w: &Withdrawal| json_answer(StatusCode::OK, &WithdrawalOut::from(w));
    let withdrawal = app
        .change_withdrawal(WithdrawalId(id), change, &actor, bind(key, answer))
        .await?;
    Ok(respond(answer(&withdrawal)))
}

#[utoipa::path(
    post,
    path = "/admin/withdrawals/{id}/submit",
    tag = "admin",
    security(("admin_token" = [])),
    params(WithdrawalPath, KeyHeader),
    request_body = WithdrawalStep,
    responses(
        (status = 200, description = "QUEUED or SUBMITTING -> SUBMITTED: an operator sent it (tx_hash when known)", body = WithdrawalOut),
        (status = 404, description = "no such withdrawal", body = crate::api::ErrorBody),
        (status = 409, description = "not allowed from its status", body = crate::api::ErrorBody),
    ),
)]
async fn submit_withdrawal(
    State(app): State<App>,
    admin: Admin<Money>,
    key: Option<Extension<CurrentKey>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<WithdrawalStep>, JsonRejection>,
) -> Result<Response, ApiError> {
    let sent = |chain_tx_hash| WithdrawalChange::Submit { chain_tx_hash };
    sent_step(app, &admin.0, key, id, body, sent).await
}

/// A step that says the transfer went out: submit or confirm.
async fn sent_step(
    app: App,
    staff: &Staff,
    key: Option<Extension<CurrentKey>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<WithdrawalStep>, JsonRejection>,
    change: impl FnOnce(Option<String>) -> WithdrawalChange,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let actor = actor(staff, &body.actor)?;
    step(app, key, id, change(body.tx_hash), actor).await
}

#[utoipa::path(
    post,
    path = "/admin/withdrawals/{id}/confirm",
    tag = "admin",
    security(("admin_token" = [])),
    params(WithdrawalPath, KeyHeader),
    request_body = WithdrawalStep,
    responses(
        (status = 200, description = "-> CONFIRMED: the funds left custody (tx_hash when known)", body = WithdrawalOut),
        (status = 404, description = "no such withdrawal", body = crate::api::ErrorBody),
        (status = 409, description = "not allowed from its status", body = crate::api::ErrorBody),
    ),
)]
async fn confirm_withdrawal(
    State(app): State<App>,
    admin: Admin<Money>,
    key: Option<Extension<CurrentKey>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<WithdrawalStep>, JsonRejection>,
) -> Result<Response, ApiError> {
    let confirmed = |chain_tx_hash| WithdrawalChange::Confirm { chain_tx_hash };
    sent_step(app, &admin.0, key, id, body, confirmed).await
}

#[utoipa::path(
    post,
    path = "/admin/withdrawals/{id}/fail",
    tag = "admin",
    security(("admin_token" = [])),
    params(WithdrawalPath, KeyHeader),
    request_body = FailedWithdrawal,
    responses(
        (status = 200, description = "-> FAILED: the funds go back to the player. From QUEUED at any time; once it may be on the chain (SUBMITTING, SUBMITTED) only with the rejected tx_hash", body = WithdrawalOut),
        (status = 404, description = "no such withdrawal", body = crate::api::ErrorBody),
        (status = 409, description = "not allowed from its status, or it may be on the chain and no (or another) tx_hash was given", body = crate::api::ErrorBody),
    ),
)]
async fn fail_withdrawal(
    State(app): State<App>,
    admin: Admin<Money>,
    key: Option<Extension<CurrentKey>>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<FailedWithdrawal>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let actor = actor(&admin.0, &body.actor)?;
    let change = WithdrawalChange::Fail {
        reason: reason(&body.reason)?,
        rejection: body
            .tx_hash
            .map(|tx_hash| ChainRejection::Operator { tx_hash }),
    };
    step(app, key, id, change, actor).await
}

#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    security(("admin_token" = [])),
    params(Page),
    responses(
        (status = 200, description = "users with balances and limits, newest first, a page at a time", body = Vec<UserSummaryOut>),
    ),
)]
async fn list_users(
    State(app): State<App>,
    _admin: Admin<Reads>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<UserSummaryOut>>, ApiError> {
    let page = Page::from_query(page)?;
    let users = app.users(page.before, page.limit()).await?;
    let now = app.clock.now();
    Ok(Json(
        users.iter().map(|u| UserSummaryOut::at(u, now)).collect(),
    ))
}

/// A player's limits set by support, on their behalf: the same rules as
/// their own `PUT /me/limits`, with a reason.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UserLimits {
    /// Micro-USDC per round; null for none.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    max_stake_per_round: Option<i64>,
    /// Micro-USDC per New York day; null for none.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    max_stake_per_day: Option<i64>,
    #[schema(schema_with = super::me::until_schema)]
    excluded_until: Option<String>,
    /// Why (audited): 1 to 500 characters, such as the player's ticket.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

/// A user's id.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct UserPath {
    #[param(minimum = 1)]
    #[allow(dead_code)]
    id: i64,
}

#[utoipa::path(
    put,
    path = "/admin/users/{id}/limits",
    tag = "admin",
    security(("admin_token" = [])),
    params(UserPath),
    request_body = UserLimits,
    responses(
        (status = 200, description = "the player's limits now, under the player's own rules: stricter at once, looser after LIMIT_RAISE_COOLOFF_HOURS, a self-exclusion in force never shortened (409)", body = crate::wire::LimitsOut),
        (status = 404, description = "no such user", body = crate::api::ErrorBody),
        (status = 409, description = "a self-exclusion in force cannot be shortened", body = crate::api::ErrorBody),
        (status = 422, description = "excluded_until in the past or more than 50 years ahead", body = crate::api::ErrorBody),
    ),
)]
async fn set_user_limits(
    State(app): State<App>,
    admin: Admin<Users>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<UserLimits>, JsonRejection>,
) -> Result<Json<crate::wire::LimitsOut>, ApiError> {
    let Path(id) = id?;
    let Json(body) = body?;
    let reason = reason(&body.reason)?;
    let limits = super::me::player_limits(
        body.max_stake_per_round,
        body.max_stake_per_day,
        body.excluded_until.as_deref(),
    )?;
    let user = app
        .set_limits_for(UserId(id), limits, &admin.0.actor_for(None), reason)
        .await?;
    Ok(Json(crate::wire::LimitsOut::at(
        &user.limit_settings(),
        app.clock.now(),
    )))
}

#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin",
    security(("admin_token" = [])),
    params(Page),
    responses(
        (status = 200, description = "operator actions, newest first, with who and why, a page at a time", body = Vec<AuditOut>),
    ),
)]
async fn audit_log(
    State(app): State<App>,
    _admin: Admin<Reads>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Vec<AuditOut>>, ApiError> {
    let page = Page::from_query(page)?;
    let entries = app.audit_log(page.before, page.limit()).await?;
    Ok(Json(entries.iter().map(AuditOut::from).collect()))
}

#[utoipa::path(
    get,
    path = "/admin/verify",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "every ledger invariant, recomputed", body = VerifyOut),
    ),
)]
/// Recomputes every ledger invariant: seconds on a large ledger.
async fn verify(State(app): State<App>, _admin: Admin<Reads>) -> Result<Json<VerifyOut>, ApiError> {
    Ok(Json(VerifyOut::from(&app.verify().await?)))
}
