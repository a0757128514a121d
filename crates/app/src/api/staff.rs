//! Operators' own account on the console: `POST /admin/sessions` signs in
//! with email, password and (once set up) a one-time code, and sets the
//! operator's session cookie (HttpOnly, SameSite=Strict, Path=/admin,
//! Secure in production); `DELETE /admin/sessions` signs out;
//! `GET /admin/me` says who is signed in and what their role opens;
//! `/admin/me/totp` sets up the second factor, `/admin/me/password`
//! changes the password.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use updown_domain::operator::Area;

use super::auth::{operator_cookie, Admin, Reads, OPERATOR_COOKIE};
use super::ApiError;
use crate::services::{App, OPERATOR_SESSION_TTL};
use crate::wire::OperatorOut;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(me))
        .routes(routes!(begin_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(change_password))
        .routes(routes!(list_tokens, new_token))
        .routes(routes!(revoke_token))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenName {
    /// What it is for: 1 to 64 characters.
    #[schema(min_length = 1, max_length = 64, pattern = r"\S")]
    name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TokenOut {
    id: i64,
    name: String,
    created_at: String,
    revoked_at: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct NewTokenOut {
    id: i64,
    name: String,
    /// `op_...`: shown only in this answer, kept as SHA-256. Send it as
    /// `Authorization: Bearer`.
    token: String,
}

/// A token's id.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
struct TokenPath {
    #[param(minimum = 1)]
    #[allow(dead_code)]
    id: i64,
}

#[utoipa::path(
    get,
    path = "/admin/me/tokens",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "your tokens, newest first (never the tokens themselves)", body = Vec<TokenOut>),
        (status = 422, description = "the break-glass token has no account", body = crate::api::ErrorBody),
    ),
)]
async fn list_tokens(
    State(app): State<App>,
    admin: Admin<Reads>,
) -> Result<Json<Vec<TokenOut>>, ApiError> {
    let tokens = app.my_tokens(&admin.0).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenOut {
                id: t.id,
                name: t.name,
                created_at: crate::wire::instant(t.created_at),
                revoked_at: t.revoked_at.map(crate::wire::instant),
            })
            .collect(),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/me/tokens",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = TokenName,
    responses(
        (status = 201, description = "a personal token for your scripts, shown once; it opens what your role opens", body = NewTokenOut),
        (status = 422, description = "the break-glass token has no account", body = crate::api::ErrorBody),
    ),
)]
async fn new_token(
    State(app): State<App>,
    admin: Admin<Reads>,
    body: Result<Json<TokenName>, JsonRejection>,
) -> Result<(StatusCode, Json<NewTokenOut>), ApiError> {
    let Json(body) = body?;
    let (id, token) = app.new_my_token(&admin.0, &body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewTokenOut {
            id,
            name: body.name.trim().to_string(),
            token,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/me/tokens/{id}",
    tag = "admin",
    security(("admin_token" = [])),
    params(TokenPath),
    responses(
        (status = 204, description = "revoked: it stops at once"),
        (status = 404, description = "no unrevoked token of yours with this id", body = crate::api::ErrorBody),
        (status = 422, description = "the break-glass token has no account", body = crate::api::ErrorBody),
    ),
)]
async fn revoke_token(
    State(app): State<App>,
    admin: Admin<Reads>,
    id: Result<axum::extract::Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let axum::extract::Path(id) = id?;
    app.revoke_my_token(&admin.0, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct OperatorCredentials {
    #[schema(max_length = 254)]
    email: String,
    #[schema(max_length = 512)]
    password: String,
    /// The 6-digit code from the authenticator app, once two-factor is set
    /// up.
    #[schema(pattern = "^[0-9]{6}$")]
    code: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct OperatorSignedIn {
    operator: OperatorOut,
    expires_at: String,
}

/// Who is signed in, and what their role opens.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StaffOut {
    /// The operator's email, or `break-glass`.
    actor: String,
    role: &'static str,
    /// `session:<id>`, `token:<id>` or `break-glass`.
    credential: String,
    /// The areas the role may change or read: read, users, rounds, money,
    /// operators.
    areas: Vec<&'static str>,
    /// Whether sign-in asks for a one-time code; null for break-glass.
    totp: Option<bool>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct TotpSetupOut {
    /// The secret in base32, to type into an app by hand.
    secret: String,
    /// The `otpauth://` URI.
    uri: String,
    /// The URI drawn as a QR code (an SVG document).
    qr_svg: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TotpCode {
    /// A code from the new secret.
    #[schema(pattern = "^[0-9]{6}$")]
    code: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    #[schema(max_length = 512)]
    current: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    new: String,
}

fn cookie(app: &App, value: &str, max_age: i64) -> String {
    super::auth::session_set_cookie(app, OPERATOR_COOKIE, "/admin", value, max_age)
}

#[utoipa::path(
    post,
    path = "/admin/sessions",
    tag = "admin",
    request_body = OperatorCredentials,
    responses(
        (status = 201, description = "signed in; the operator's session cookie is set (HttpOnly, SameSite=Strict, Path=/admin, 12 hours)", body = OperatorSignedIn),
        (status = 401, description = "wrong email or password; a one-time code missing, wrong, expired or used; or sign-in locked for 15 minutes after 5 failures in a row", body = crate::api::ErrorBody),
    ),
)]
async fn sign_in(
    State(app): State<App>,
    body: Result<Json<OperatorCredentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let signed = app
        .operator_sign_in(&body.email, &body.password, body.code.as_deref())
        .await?;
    let set = cookie(&app, &signed.token, OPERATOR_SESSION_TTL.num_seconds());
    Ok((
        StatusCode::CREATED,
        AppendHeaders([(SET_COOKIE, set)]),
        Json(OperatorSignedIn {
            operator: OperatorOut::from(&signed.operator),
            expires_at: crate::wire::instant(signed.expires_at),
        }),
    )
        .into_response())
}

#[utoipa::path(
    delete,
    path = "/admin/sessions",
    tag = "admin",
    responses(
        (status = 204, description = "signed out; the cookie is cleared"),
    ),
)]
async fn sign_out(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = operator_cookie(&headers) {
        app.operator_sign_out(token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(SET_COOKIE, cookie(&app, "", 0))]),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/admin/me",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "who is signed in, their role, and the areas it opens", body = StaffOut),
    ),
)]
async fn me(State(app): State<App>, admin: Admin<Reads>) -> Result<Json<StaffOut>, ApiError> {
    let staff = admin.0;
    let totp = if staff.is_break_glass() {
        None
    } else {
        Some(app.operator_of(&staff).await?.totp_secret.is_some())
    };
    Ok(Json(StaffOut {
        areas: Area::ALL
            .into_iter()
            .filter(|area| staff.role.allows(*area))
            .map(Area::as_str)
            .collect(),
        role: staff.role.as_str(),
        actor: staff.actor,
        credential: staff.credential,
        totp,
    }))
}

#[utoipa::path(
    post,
    path = "/admin/me/totp",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "a new secret, pending until a code from it is confirmed", body = TotpSetupOut),
        (status = 409, description = "two-factor is on already: an admin resets it for a new phone", body = crate::api::ErrorBody),
        (status = 422, description = "the break-glass token has no account to set up", body = crate::api::ErrorBody),
    ),
)]
async fn begin_totp(
    State(app): State<App>,
    admin: Admin<Reads>,
) -> Result<(StatusCode, Json<TotpSetupOut>), ApiError> {
    let setup = app.begin_totp(&admin.0).await?;
    let qr_svg = super::qr::svg(setup.uri.as_bytes())?;
    Ok((
        StatusCode::CREATED,
        Json(TotpSetupOut {
            secret: setup.secret,
            uri: setup.uri,
            qr_svg,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/admin/me/totp/confirm",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = TotpCode,
    responses(
        (status = 204, description = "two-factor is on: signing in now needs a code"),
        (status = 409, description = "nothing is being set up", body = crate::api::ErrorBody),
        (status = 422, description = "the code does not match the new secret, or was used", body = crate::api::ErrorBody),
    ),
)]
async fn confirm_totp(
    State(app): State<App>,
    admin: Admin<Reads>,
    body: Result<Json<TotpCode>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    app.confirm_totp(&admin.0, &body.code).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/admin/me/password",
    tag = "admin",
    security(("admin_token" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "changed; every session of the operator ended, so sign in again"),
        (status = 401, description = "the current password is wrong (it counts toward the lock), or sign-in is locked", body = crate::api::ErrorBody),
        (status = 422, description = "the break-glass token has no account", body = crate::api::ErrorBody),
    ),
)]
async fn change_password(
    State(app): State<App>,
    admin: Admin<Reads>,
    body: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(body) = body?;
    app.change_operator_password(&admin.0, &body.current, &body.new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
