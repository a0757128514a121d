//! Operators managed from the console by admins, as `updown operator`
//! does on the host: list, add (a generated password, shown once), change
//! a role, disable, reset a password or a second factor. The last enabled
//! admin can be neither demoted nor disabled here, checked with every
//! admin's row held (on the host it can, and break-glass comes back).

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use updown_domain::operator::Role;
use updown_store::Operator;

use super::admin::reason;
use super::auth::{Admin, Operators, Reads};
use super::ApiError;
use crate::error::AppError;
use crate::services::App;
use crate::wire::OperatorOut;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_operators, add_operator))
        .routes(routes!(set_role))
        .routes(routes!(disable))
        .routes(routes!(reset_password))
        .routes(routes!(reset_totp))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NewOperator {
    #[schema(
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f][^@\s\x00-\x1f\x7f-\x9f]*\.[^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f]$",
        max_length = 254,
        example = "ana@ops.example.com"
    )]
    email: String,
    /// viewer, support, operator, treasurer or admin.
    #[schema(pattern = "^(viewer|support|operator|treasurer|admin)$")]
    role: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    #[schema(pattern = "^(viewer|support|operator|treasurer|admin)$")]
    role: String,
    /// Why (audited): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Why {
    /// Why (audited): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct WithPassword {
    operator: OperatorOut,
    /// Shown once: give it to them privately.
    password: String,
}

/// An operator's id.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct IdPath {
    #[param(minimum = 1)]
    #[allow(dead_code)]
    id: i64,
}

fn role(text: &str) -> Result<Role, ApiError> {
    Role::parse(text).ok_or_else(|| {
        ApiError::invalid("role must be viewer, support, operator, treasurer or admin")
    })
}

/// Operator `id`, from the path.
async fn target(app: &App, id: Result<Path<i64>, PathRejection>) -> Result<Operator, ApiError> {
    let Path(id) = id?;
    app.operators()
        .await?
        .into_iter()
        .find(|o| o.id == id)
        .ok_or_else(|| AppError::NotFound(format!("operator {id} does not exist")).into())
}

#[utoipa::path(
    get,
    path = "/admin/operators",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "every operator, oldest first: role, two-factor, disabled, locked", body = Vec<OperatorOut>),
    ),
)]
async fn list_operators(
    State(app): State<App>,
    _admin: Admin<Reads>,
) -> Result<Json<Vec<OperatorOut>>, ApiError> {
    let all = app.operators().await?;
    Ok(Json(all.iter().map(OperatorOut::from).collect()))
}

#[utoipa::path(
    post,
    path = "/admin/operators",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = NewOperator,
    responses(
        (status = 201, description = "added, with a generated password shown once", body = WithPassword),
        (status = 409, description = "an operator with this email exists", body = crate::api::ErrorBody),
    ),
)]
async fn add_operator(
    State(app): State<App>,
    admin: Admin<Operators>,
    body: Result<Json<NewOperator>, JsonRejection>,
) -> Result<(StatusCode, Json<WithPassword>), ApiError> {
    let Json(body) = body?;
    super::shapes::email(&body.email)?;
    let role = role(&body.role)?;
    let (operator, password) = app
        .add_operator(&body.email, role, &admin.0.actor_for(None))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(WithPassword {
            operator: OperatorOut::from(&operator),
            password,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/operators/{id}/role",
    tag = "admin",
    security(("admin_token" = [])),
    params(IdPath),
    request_body = RoleChange,
    responses(
        (status = 200, description = "the role changed", body = OperatorOut),
        (status = 404, description = "no such operator", body = crate::api::ErrorBody),
        (status = 409, description = "the last enabled admin", body = crate::api::ErrorBody),
    ),
)]
async fn set_role(
    State(app): State<App>,
    admin: Admin<Operators>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<RoleChange>, JsonRejection>,
) -> Result<Json<OperatorOut>, ApiError> {
    let target = target(&app, id).await?;
    let Json(body) = body?;
    let (role, reason) = (role(&body.role)?, reason(&body.reason)?);
    let changed = app
        .set_operator_role_keeping_an_admin(
            target.email.as_str(),
            role,
            &admin.0.actor_for(None),
            &reason,
        )
        .await?;
    Ok(Json(OperatorOut::from(&changed)))
}

#[utoipa::path(
    post,
    path = "/admin/operators/{id}/disable",
    tag = "admin",
    security(("admin_token" = [])),
    params(IdPath),
    request_body = Why,
    responses(
        (status = 200, description = "disabled: their tokens are revoked and sessions ended at once", body = OperatorOut),
        (status = 404, description = "no such operator", body = crate::api::ErrorBody),
        (status = 409, description = "disabled already, or the last enabled admin", body = crate::api::ErrorBody),
    ),
)]
async fn disable(
    State(app): State<App>,
    admin: Admin<Operators>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Why>, JsonRejection>,
) -> Result<Json<OperatorOut>, ApiError> {
    let target = target(&app, id).await?;
    let Json(body) = body?;
    let reason = reason(&body.reason)?;
    let disabled = app
        .disable_operator_keeping_an_admin(target.email.as_str(), &admin.0.actor_for(None), &reason)
        .await?;
    Ok(Json(OperatorOut::from(&disabled)))
}

#[utoipa::path(
    post,
    path = "/admin/operators/{id}/reset-password",
    tag = "admin",
    security(("admin_token" = [])),
    params(IdPath),
    responses(
        (status = 200, description = "a new generated password, shown once; their sessions ended and any lock lifted", body = WithPassword),
        (status = 404, description = "no such operator", body = crate::api::ErrorBody),
    ),
)]
async fn reset_password(
    State(app): State<App>,
    admin: Admin<Operators>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<WithPassword>, ApiError> {
    let target = target(&app, id).await?;
    let (operator, password) = app
        .reset_operator_password(target.email.as_str(), &admin.0.actor_for(None))
        .await?;
    Ok(Json(WithPassword {
        operator: OperatorOut::from(&operator),
        password,
    }))
}

#[utoipa::path(
    post,
    path = "/admin/operators/{id}/reset-totp",
    tag = "admin",
    security(("admin_token" = [])),
    params(IdPath),
    request_body = Why,
    responses(
        (status = 200, description = "two-factor removed (a lost phone) and their sessions ended; they set it up again after signing in", body = OperatorOut),
        (status = 404, description = "no such operator", body = crate::api::ErrorBody),
    ),
)]
async fn reset_totp(
    State(app): State<App>,
    admin: Admin<Operators>,
    id: Result<Path<i64>, PathRejection>,
    body: Result<Json<Why>, JsonRejection>,
) -> Result<Json<OperatorOut>, ApiError> {
    let target = target(&app, id).await?;
    let Json(body) = body?;
    let reason = reason(&body.reason)?;
    let cleared = app
        .reset_operator_totp(target.email.as_str(), &admin.0.actor_for(None), &reason)
        .await?;
    Ok(Json(OperatorOut::from(&cleared)))
}
