//! `Idempotency-Key` on the requests that move money: a retry with the
//! same key gets the first answer again, byte for byte, and never acts a
//! second time; the same key with another request is 422.
//!
//! The key is written in the same database transaction as the effect it
//! names, together with the answer (Stripe's "atomic phase", with one
//! phase): a bet, a cancel, a withdrawal, a deposit credit, an operator's
//! withdrawal step. So a crash, a timeout, a lost commit acknowledgement
//! or an error answer can never leave an effect without its key, nor a key
//! without its effect. The effect's transaction checks the key first: one
//! recorded before (or by a concurrent request that commits first) makes
//! it fail with `KeyUsed`, acting on nothing, and this layer answers from
//! the record. A request refused before it reached its transaction (the
//! round locked since the first attempt, say) is looked up too, so a
//! retry never sees another answer than the first; a success needs no
//! extra lookup.
//!
//! Operators' round actions (open, lock, settle, void) are idempotent by
//! the round's own states (a settlement resumes and pays once); their key
//! is recorded right after they succeed, and a retry after a lost answer
//! runs again to the same state.
//!
//! An answer holding a secret shown once (a generated password, a token)
//! is recorded with a stand-in: the secret is never kept in the clear,
//! and a retry is told the request took effect (409).
//!
//! Only effects are recorded: an answer given before any money moved (bad
//! input, a refusal for funds or limits) is not, so a retry is decided
//! afresh. Keys are scoped by the account (`user:<id>`, `operator:<email>`, `operator:break-glass`),
//! not by the credential, and kept 24 hours, then purged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use updown_store::{KeptAnswer, KeyRecord, Keyed, RequestKey};

use super::{ApiError, MAX_BODY_BYTES};
use crate::error::{AppError, AppResult};
use crate::services::App;

/// The player routes whose POSTs move money.
const MONEY_ROUTES: &[&str] = &["/bets", "/withdrawals"];
/// Operator routes whose effect's transaction checks the key itself.
const OPERATOR_ROUTES_CHECKED: &[&str] = &["/simulate/deposit_webhook", "/admin/withdrawals/"];
/// The operator's routes: every POST under them (deposits, settling,
/// voiding and withdrawal steps move money).
const OPERATOR_ROUTES: &[&str] = &["/admin/", "/simulate/"];
/// Operator routes whose request carries a password: no key is kept for
/// them, since the key's row would hold a fast hash of the body (a
/// password and a six-digit code can be guessed back from SHA-256). A
/// retry signs in again, or is told the current password is wrong.
const PASSWORD_ROUTES: &[&str] = &["/admin/sessions", "/admin/me/password"];
/// Largest answer kept for replay.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Longest key accepted.
pub const MAX_KEY_LENGTH: usize = 255;

/// The `Idempotency-Key` header, as documented on each route that keeps it.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct KeyHeader {
    /// Any 1 to 255 printable ASCII characters, new for each operation
    /// (a UUID will do). A retry with the same key gets the first answer
    /// (`Idempotent-Replayed: true`) and never acts twice; the same key
    /// with another request is 422 `idempotency_mismatch`. Kept 24 hours.
    #[serde(rename = "Idempotency-Key")]
    #[param(pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// Marks an answer given because the key was recorded by an earlier
/// request: this layer replaces it with the recorded answer.
#[derive(Clone, Copy)]
pub struct KeyUsedMarker;

/// The key of the request being served, for its handler; `bind` it to
/// the effect so it is recorded in the effect's transaction.
#[derive(Clone)]
pub struct CurrentKey {
    key: RequestKey,
    /// Set once a handler handed the key to its effect.
    bound: Arc<AtomicBool>,
}

impl CurrentKey {
    /// The key, with how the effect's result `T` is answered. The handler
    /// answers a fresh request with the same function, so the recorded
    /// answer and the first one are the same bytes.
    pub fn bind<T>(&self, answer: impl Fn(&T) -> KeptAnswer + Send + Sync + 'static) -> Keyed<T> {
        self.bound.store(true, Ordering::Release);
        Keyed::new(self.key.clone(), answer)
    }
}

/// Binds an optional key (a request without `Idempotency-Key` has none).
pub fn bind<T>(
    key: Option<axum::Extension<CurrentKey>>,
    answer: impl Fn(&T) -> KeptAnswer + Send + Sync + 'static,
) -> Option<Keyed<T>> {
    key.map(|axum::Extension(key)| key.bind(answer))
}

/// An answer as kept: `status` and the JSON of `value`.
pub fn json_answer<T: Serialize>(status: StatusCode, value: &T) -> KeptAnswer {
    KeptAnswer {
        status: status.as_u16(),
        body: serde_json::to_string(value).expect("wire types serialise"),
    }
}

/// Sends a kept answer.
pub fn respond(answer: KeptAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    let mut response = (status, answer.body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// Whether the effect's own transaction checks the key (a key recorded
/// before makes it fail with `KeyUsed`, acting on nothing): then the
/// lookup is needed only when the answer is not a success. Other routes
/// (the operators' round actions) are looked up before they run.
fn checked_in_effect(method: &Method, path: &str) -> bool {
    *method == Method::DELETE
        || MONEY_ROUTES.contains(&path)
        || OPERATOR_ROUTES_CHECKED
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// Whether the request is one whose key this layer keeps.
fn applies(method: &Method, path: &str) -> bool {
    let player = MONEY_ROUTES.contains(&path);
    let operator = OPERATOR_ROUTES
        .iter()
        .any(|prefix| path.starts_with(prefix))
        && !PASSWORD_ROUTES.contains(&path);
    let cancel = path
        .strip_prefix("/bets/")
        .is_some_and(|id| !id.is_empty() && !id.contains('/'));
    (*method == Method::POST && (player || operator)) || (*method == Method::DELETE && cancel)
}

/// Whose key it is: the operator, or the player the credential names.
/// `Ok(None)` when the credential is missing or refused (the handler
/// refuses it too). A lookup that failed otherwise (the database) is an
/// error: the request must not run without its key, since the handler's
/// own lookup may then succeed and act a second time for a retry.
async fn scope_of(app: &App, path: &str, headers: &HeaderMap) -> AppResult<Option<String>> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    if OPERATOR_ROUTES
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        let staff = match (bearer, super::auth::operator_cookie(headers)) {
            (Some(token), _) => app.staff_by_bearer(token).await,
            (None, Some(session)) => app.staff_by_session(session).await,
            (None, None) => return Ok(None),
        };
        return Ok(refused_as_none(staff)?.map(|staff| format!("operator:{}", staff.actor)));
    }
    let user = match (bearer, super::auth::session_cookie(headers)) {
        (Some(key), _) => app.authenticate(key).await,
        (None, Some(token)) => app.session_user(token).await,
        (None, None) => return Ok(None),
    };
    Ok(refused_as_none(user)?.map(|user| format!("user:{}", user.id)))
}

/// A credential refused is `None`; any other failure stays an error.
fn refused_as_none<T>(lookup: AppResult<T>) -> AppResult<Option<T>> {
    match lookup {
        Ok(found) => Ok(Some(found)),
        Err(AppError::Unauthorized(_) | AppError::Forbidden(_)) => Ok(None),
        Err(other) => Err(other),
    }
}

fn parse_key(value: &HeaderValue) -> Result<String, ApiError> {
    match value.to_str() {
        Ok(k)
            if (1..=MAX_KEY_LENGTH).contains(&k.len())
                && k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(k.to_string())
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"),
        )),
    }
}

pub async fn idempotency(State(app): State<App>, request: Request, next: Next) -> Response {
    if !applies(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_string();
    let Some(header) = request.headers().get("idempotency-key") else {
        return next.run(request).await;
    };
    let key = match parse_key(header) {
        Ok(key) => key,
        Err(refused) => return refused.into_response(),
    };
    let scope = match scope_of(&app, &path, request.headers()).await {
        Ok(Some(scope)) => scope,
        Ok(None) => return next.run(request).await,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let (mut parts, body) = request.into_parts();
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
    let checked = checked_in_effect(&parts.method, &path);
    if !checked {
        match app.idempotency_key(&scope, &key).await {
            Err(e) => return ApiError::from(e).into_response(),
            Ok(Some(record)) => return replay(record, &request_hash),
            Ok(None) => {}
        }
    }
    let current = CurrentKey {
        key: RequestKey {
            scope,
            key,
            request_hash: request_hash.clone(),
            at: app.clock.now(),
        },
        bound: Arc::default(),
    };
    parts.extensions.insert(current.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let key_used = response.extensions().get::<KeyUsedMarker>().is_some();
    if key_used || !response.status().is_success() {
        // An earlier request (or a concurrent one that committed first)
        // recorded the key: its answer is this one's. A request that did
        // not get that far (the round has locked since, say) is answered
        // from the record too.
        return match app
            .idempotency_key(&current.key.scope, &current.key.key)
            .await
        {
            Ok(Some(record)) => replay(record, &request_hash),
            Ok(None) if !key_used => response,
            Ok(None) | Err(_) => in_progress(),
        };
    }
    let recorded_with_effect = current.bound.load(Ordering::Acquire);
    if !response.status().is_success() || recorded_with_effect {
        return response;
    }
    record_after(&app, &current.key, &path, response).await
}

/// Records the answer of an action idempotent by itself, then sends it; if
/// a concurrent request with the key recorded first, sends that answer.
async fn record_after(app: &App, key: &RequestKey, path: &str, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_RESPONSE_BYTES).await else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; it has been logged",
        )
        .into_response();
    };
    let answer = if answer_holds_secret(path) {
        secret_not_kept()
    } else {
        KeptAnswer {
            status: parts.status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    };
    match app.record_idempotency_key(key, &answer).await {
        Ok(true) => Response::from_parts(parts, Body::from(bytes)),
        Ok(false) => match app.idempotency_key(&key.scope, &key.key).await {
            Ok(Some(record)) => replay(record, &key.request_hash),
            Ok(None) | Err(_) => in_progress(),
        },
        Err(e) => {
            // The action is done and idempotent by itself: a retry runs it
            // again to the same state.
            tracing::warn!(error = %e, "could not record an idempotent answer");
            Response::from_parts(parts, Body::from(bytes))
        }
    }
}

/// Operator routes whose answer holds a secret shown once: a generated
/// password, a personal token, a second factor's secret. The
/// key of such a request is kept, so a retry never acts twice, but with a
/// stand-in answer ([`secret_not_kept`]): the database keeps tokens and
/// passwords only as hashes, never in the clear.
fn answer_holds_secret(path: &str) -> bool {
    matches!(
        path,
        "/admin/operators" | "/admin/me/tokens" | "/admin/me/totp"
    ) || path
        .strip_prefix("/admin/operators/")
        .is_some_and(|rest| rest.ends_with("/reset-password"))
}

/// What a retry of a request whose answer held a secret is told.
fn secret_not_kept() -> KeptAnswer {
    let told = ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_answer_not_kept",
        "a request with this Idempotency-Key took effect; its answer held a secret \
         shown once, which is not kept: list what exists (operators, tokens) and \
         reset or revoke what was not received",
    );
    json_answer(told.status(), &told.body())
}

/// The recorded answer, or 422 when the key came with another request.
fn replay(record: KeyRecord, request_hash: &str) -> Response {
    if record.request_hash != request_hash {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_mismatch",
            "this Idempotency-Key was used with a different request",
        )
        .into_response();
    }
    let mut response = respond(record.answer);
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

fn in_progress() -> Response {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "a request with this Idempotency-Key is being processed; retry shortly",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::{answer_holds_secret, applies, refused_as_none};
    use crate::error::AppError;
    use axum::http::Method;

    /// A credential the database could not check is not "no credential":
    /// the request would run without its key, and the handler's own
    /// lookup, succeeding a moment later, would act again for a retry.
    #[test]
    fn a_failed_credential_lookup_stops_a_keyed_request() {
        assert_eq!(refused_as_none(Ok::<_, AppError>(7)).unwrap(), Some(7));
        let refused = refused_as_none::<i64>(Err(AppError::Unauthorized("bad key".into())));
        assert_eq!(refused.unwrap(), None);
        let forbidden = refused_as_none::<i64>(Err(AppError::Forbidden("disabled".into())));
        assert_eq!(forbidden.unwrap(), None);
        let down =
            refused_as_none::<i64>(Err(AppError::Internal(anyhow::anyhow!("connection reset"))));
        assert!(matches!(down, Err(AppError::Internal(_))));
        let unavailable = refused_as_none::<i64>(Err(AppError::Unavailable("pool".into())));
        assert!(matches!(unavailable, Err(AppError::Unavailable(_))));
    }

    #[test]
    fn keys_are_kept_for_money_routes_only() {
        assert!(applies(&Method::POST, "/bets"));
        assert!(applies(&Method::POST, "/withdrawals"));
        assert!(applies(&Method::DELETE, "/bets/7"));
        assert!(applies(&Method::POST, "/admin/rounds/20261124/settle"));
        assert!(applies(&Method::POST, "/simulate/deposit_webhook"));
        assert!(!applies(&Method::GET, "/bets"));
        assert!(!applies(&Method::POST, "/users"));
        assert!(!applies(&Method::DELETE, "/bets/"));
        assert!(!applies(&Method::DELETE, "/me/keys/3"));
        // Requests that carry a password keep no key (nor its hash).
        assert!(!applies(&Method::POST, "/admin/sessions"));
        assert!(!applies(&Method::POST, "/admin/me/password"));
        assert!(applies(&Method::POST, "/admin/me/tokens"));
    }

    #[test]
    fn answers_with_secrets_are_the_ones_shown_once() {
        for path in [
            "/admin/operators",
            "/admin/operators/7/reset-password",
            "/admin/me/tokens",
            "/admin/me/totp",
        ] {
            assert!(answer_holds_secret(path), "{path}");
        }
        for path in [
            "/admin/operators/7/role",
            "/admin/operators/7/reset-totp",
            "/admin/me/totp/confirm",
            "/admin/rounds",
        ] {
            assert!(!answer_holds_secret(path), "{path}");
        }
    }
}
