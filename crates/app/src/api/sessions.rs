//! `POST /sessions` signs a person in with email and password and sets the
//! session cookie (HttpOnly, SameSite=Strict, Secure in production);
//! `DELETE /sessions` signs out.

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::auth::{session_cookie, SESSION_COOKIE};
use super::ApiError;
use crate::services::{App, SESSION_TTL};
use crate::wire::UserOut;

pub fn router() -> Router<App> {
    Router::new().route("/sessions", post(sign_in).delete(sign_out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

fn cookie(app: &App, value: &str, max_age: i64) -> String {
    let secure = if app.config.production {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

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
        Json(json!({ "user": UserOut::from(&user), "expires_at": expires_at })),
    )
        .into_response())
}

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
