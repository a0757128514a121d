//! `Idempotency-Key` on money-moving POSTs: the first response is kept and
//! a retry with the same key gets it again, byte for byte; the same key
//! with another request is 422, and while the first is still running, 409.
//! Keys are scoped per caller (their credentials' hash: bearer and session)
//! and kept 24 hours.
//! Answers that carry secrets (sign-up, new API keys) are never stored.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use sha2::{Digest, Sha256};
use updown_store::Idempotency;

use super::{ApiError, MAX_BODY_BYTES};
use crate::error::AppError;
use crate::services::App;

/// The routes whose POSTs move money; and every admin POST (settling,
/// voiding and withdrawal steps move money too).
const MONEY_ROUTES: &[&str] = &["/bets", "/withdrawals", "/simulate/deposit_webhook"];
const ADMIN_ROUTES: &str = "/admin/";
/// How long a key is remembered.
const KEPT_FOR: Duration = Duration::hours(24);
/// A claim still running after this long was left by a crash.
const STALE_AFTER: Duration = Duration::minutes(1);
/// Largest response kept for replay.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub async fn idempotency(State(app): State<App>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let applies = request.method() == Method::POST
        && (MONEY_ROUTES.contains(&path) || path.starts_with(ADMIN_ROUTES));
    let Some(key) = request.headers().get("idempotency-key").filter(|_| applies) else {
        return next.run(request).await;
    };
    let key = match key.to_str() {
        Ok(k) if (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
            k.to_string()
        }
        _ => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_input",
                "Idempotency-Key must be 1 to 255 printable ASCII characters",
            )
            .into_response()
        }
    };
    let credentials = request
        .headers()
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let session = super::auth::session_cookie(request.headers()).unwrap_or_default();
    let scope = sha256_hex(&[credentials, session.as_bytes()]);
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_input",
            "request body too large",
        )
        .into_response();
    };
    let request_hash = sha256_hex(&[
        parts.method.as_str().as_bytes(),
        parts.uri.path().as_bytes(),
        &bytes,
    ]);
    let now = app.clock.now();
    let claim = app
        .store
        .claim_idempotency_key(
            &scope,
            &key,
            &request_hash,
            now,
            now - KEPT_FOR,
            now - STALE_AFTER,
        )
        .await;
    match claim {
        Err(e) => ApiError::from(AppError::from(e)).into_response(),
        Ok(Idempotency::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
        Ok(Idempotency::Mismatch) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_mismatch",
            "this Idempotency-Key was used with a different request",
        )
        .into_response(),
        Ok(Idempotency::InProgress) => ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )
        .into_response(),
        Ok(Idempotency::New) => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            remember(&app, &scope, &key, response).await
        }
    }
}

/// Keeps the answer for retries (a server error is released instead, so a
/// retry runs again), then sends it.
async fn remember(app: &App, scope: &str, key: &str, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_RESPONSE_BYTES).await else {
        let _ = app.store.release_idempotency_key(scope, key).await;
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
        .into_response();
    };
    let stored = if parts.status.is_server_error() {
        app.store.release_idempotency_key(scope, key).await
    } else {
        let text = String::from_utf8_lossy(&bytes);
        app.store
            .complete_idempotency_key(scope, key, parts.status.as_u16(), &text, app.clock.now())
            .await
    };
    if let Err(e) = stored {
        // The request itself succeeded; a retry will be told it is still
        // in progress until the claim goes stale, never run twice.
        tracing::error!(error = %e, "could not record an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}
