//! Who is calling: `Authorization: Bearer <api key>` for programs, or the
//! session cookie for people on the web pages; an operator's token, their
//! console session cookie (or the break-glass admin token) for admin
//! routes, each route open to the roles of what it touches. A request that changes state with the cookie must come from
//! our own origin (the `Origin` header matches `Host`), so another site
//! cannot make a signed-in browser act.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use std::marker::PhantomData;

use updown_domain::operator::Area;
use updown_store::User;

use super::ApiError;
use crate::error::AppError;
use crate::services::{App, Staff, BREAK_GLASS};

/// The credential in `Authorization: Bearer <credential>`, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "updown_session";

/// The name of an operator's console session cookie (Path=/admin).
pub const OPERATOR_COOKIE: &str = "updown_operator";

/// The value of cookie `wanted` in the `Cookie` header, if any.
fn cookie<'h>(headers: &'h HeaderMap, wanted: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, token)| token.trim())
}

/// The player's session token in the `Cookie` header, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// The operator's console session token in the `Cookie` header, if any.
pub fn operator_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, OPERATOR_COOKIE)
}

/// A `Set-Cookie` value for a session cookie: HttpOnly, SameSite=Strict,
/// Secure in production; `max_age` 0 clears it.
pub fn session_set_cookie(app: &App, name: &str, path: &str, value: &str, max_age: i64) -> String {
    let secure = if app.config.production {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

/// The answer to a cookie-authenticated change from another origin.
fn cross_origin() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "a signed-in browser may change things only from this site's own pages (Origin must match Host)",
    )
}

/// Whether a cookie-authenticated request may change state: safe methods
/// always; others only with an `Origin` naming this very host.
fn same_origin(parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(host)) = (header(ORIGIN), header(HOST)) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// The authenticated user; a handler taking it refuses anyone else.
pub struct CurrentUser(pub User);

impl FromRequestParts<App> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        if let Some(key) = bearer(parts) {
            return Ok(CurrentUser(app.authenticate(key).await?));
        }
        let Some(token) = session_cookie(&parts.headers) else {
            return Err(AppError::Unauthorized(
                "send your API key as Authorization: Bearer <key>, or sign in".into(),
            )
            .into());
        };
        if !same_origin(parts) {
            return Err(cross_origin());
        }
        Ok(CurrentUser(app.session_user(token).await?))
    }
}

/// What an admin route touches: the roles that may call it follow
/// (`updown_domain::operator`).
pub trait Needs: Send + Sync + 'static {
    const AREA: Area;
}

/// Reading anything: every role.
pub struct Reads;
/// Rounds and prices: operator, admin.
pub struct Rounds;
/// Withdrawals, deposits by hand, sweeps: treasurer, admin.
pub struct Money;
/// Users and their limits: support, admin.
pub struct Users;
/// Operators' accounts: admin.
pub struct Operators;
/// Deciding approvals: operator, treasurer, admin (each approval then only
/// by its own area's roles).
pub struct Decides;

impl Needs for Reads {
    const AREA: Area = Area::Read;
}
impl Needs for Rounds {
    const AREA: Area = Area::Rounds;
}
impl Needs for Money {
    const AREA: Area = Area::Money;
}
impl Needs for Users {
    const AREA: Area = Area::Users;
}
impl Needs for Operators {
    const AREA: Area = Area::Operators;
}
impl Needs for Decides {
    const AREA: Area = Area::Approvals;
}

/// An operator allowed on this route: `Authorization: Bearer` with their
/// own token, the console's session cookie (changes only from this
/// origin), or the break-glass admin token (audited at every use).
pub struct Admin<N: Needs = Reads>(pub Staff, PhantomData<N>);

impl<N: Needs> FromRequestParts<App> for Admin<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Self::Rejection> {
        let staff = if let Some(presented) = bearer(parts) {
            app.staff_by_bearer(presented).await?
        } else if let Some(token) = operator_cookie(&parts.headers) {
            if !same_origin(parts) {
                return Err(cross_origin());
            }
            app.staff_by_session(token).await?
        } else {
            return Err(AppError::Unauthorized(
                "this route needs an operator: sign in to the console, or send Authorization: Bearer op_... \
                 (or the admin token)"
                    .into(),
            )
            .into());
        };
        if !staff.role.allows(N::AREA) {
            let roles: Vec<&str> = N::AREA.roles().iter().map(|r| r.as_str()).collect();
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "{} is {}: this route needs one of {}",
                    staff.actor,
                    staff.role.as_str(),
                    roles.join(", ")
                ),
            ));
        }
        crate::services::context::set_credential(&staff.credential);
        if staff.is_break_glass() {
            app.audit(
                BREAK_GLASS,
                "break_glass",
                format!("{} {}", parts.method, parts.uri.path()),
                None,
            )
            .await?;
        }
        Ok(Admin(staff, PhantomData))
    }
}

/// Whether `presented` is the admin token.
pub fn is_admin(app: &App, presented: &str) -> bool {
    app.config
        .http
        .admin_token
        .as_ref()
        .is_some_and(|token| constant_time_eq(presented.as_bytes(), token.expose().as_bytes()))
}

/// Compares without stopping at the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abcdef", b"abcdef"));
        assert!(!constant_time_eq(b"abcdef", b"abcdeg"));
        assert!(!constant_time_eq(b"abc", b"abcdef"));
    }
}
