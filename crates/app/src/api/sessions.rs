//! `POST /sessions` signs a person in with email and password and sets the
//! session cookie (HttpOnly, SameSite=Strict, Secure in production);
//! `DELETE /sessions` signs out.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::auth::{session_cookie, SESSION_COOKIE};
use super::ApiError;
use crate::services::{App, SESSION_TTL};
use crate::wire::UserOut;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(sign_in, sign_out))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct SignedIn {
    user: UserOut,
    expires_at: String,
}

fn cookie(app: &App, value: &str, max_age: i64) -> String {
    super::auth::session_set_cookie(app, SESSION_COOKIE, "/", value, max_age)
}

#[utoipa::path(
    post,
    path = "/sessions",
    tag = "account",
    request_body = Credentials,
    responses(
        (status = 201, description = "signed in; the session cookie is set (HttpOnly, SameSite=Strict, 7 days)", body = SignedIn),
        (status = 401, description = "wrong email or password", body = crate::api::ErrorBody),
    ),
)]
async fn sign_in(
    State(app): State<App>,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let (user, token) = app.sign_in(&body.email, &body.password).await?;
    let set = cookie(&app, &token, SESSION_TTL.num_seconds());
    let expires_at = crate::wire::instant(app.clock.now() + SESSION_TTL);
    Ok((
        StatusCode::CREATED,
        AppendHeaders([(SET_COOKIE, set)]),
        Json(SignedIn {
            user: UserOut::from(&user),
            expires_at,
        }),
    )
        .into_response())
}

#[utoipa::path(
    delete,
    path = "/sessions",
    tag = "account",
    responses(
        (status = 204, description = "signed out; the cookie is cleared"),
    ),
)]
async fn sign_out(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&headers) {
        app.sign_out(token).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        AppendHeaders([(SET_COOKIE, cookie(&app, "", 0))]),
    )
        .into_response())
}
