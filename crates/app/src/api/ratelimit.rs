//! Rate limits (GCRA, from `governor`): per client IP on every request,
//! per credential (API key, session, admin token) on authenticated ones,
//! and a stricter one per IP on sign-in and sign-up. Over a limit: 429
//! with `Retry-After`. Limits live as long as the router.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::auth::session_cookie;
use super::ApiError;
use crate::config::{Config, Rate};

type Limiter = DefaultKeyedRateLimiter<String>;

/// Forget idle keys every this many requests, so memory stays bounded.
const PURGE_EVERY: u64 = 10_000;

pub struct RateLimits {
    per_ip: Option<Limiter>,
    per_key: Option<Limiter>,
    sign_in: Option<Limiter>,
    trust_forwarded_for: bool,
    seen: AtomicU64,
}

/// The client's address: the last `X-Forwarded-For` hop when the proxy in
/// front is trusted (TRUST_FORWARDED_FOR), else the peer's; `local` when
/// there is no socket (a router called directly).
fn client_ip(request: &Request, trust_forwarded_for: bool) -> String {
    if trust_forwarded_for {
        let forwarded = request
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
        if let Some(ip) = forwarded {
            return ip.to_string();
        }
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_else(|| "local".into())
}

fn limiter(rate: Option<Rate>) -> Option<Limiter> {
    let rate = rate?;
    let count = NonZeroU32::new(rate.count)?;
    // `count` at once, then one every `per / count`.
    let quota = Quota::with_period(rate.per / rate.count)?.allow_burst(count);
    Some(Limiter::keyed(quota))
}

impl RateLimits {
    pub fn new(config: &Config) -> Arc<RateLimits> {
        Arc::new(RateLimits {
            per_ip: limiter(config.http.rate_per_ip),
            per_key: limiter(config.http.rate_per_key),
            sign_in: limiter(config.http.rate_sign_in),
            trust_forwarded_for: config.http.trust_forwarded_for,
            seen: AtomicU64::new(0),
        })
    }

    /// The client's address, `TRUST_FORWARDED_FOR` obeyed.
    pub fn client_ip(&self, request: &Request) -> String {
        client_ip(request, self.trust_forwarded_for)
    }

    fn purge_now_and_then(&self) {
        if self.seen.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            for limiter in [&self.per_ip, &self.per_key, &self.sign_in]
                .into_iter()
                .flatten()
            {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
    }
}

/// 429 with how long to wait, in whole seconds (at least 1).
fn too_many(what: &str, wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests {what}; retry in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The refusal when the caller is over `limiter`'s rate, else None. The
/// key is computed only when the limit is on (all are off in benchmarks).
fn refusal(
    limiter: &Option<Limiter>,
    key: impl FnOnce() -> String,
    what: &str,
) -> Option<Response> {
    let limiter = limiter.as_ref()?;
    let not_until = limiter.check_key(&key()).err()?;
    Some(too_many(
        what,
        not_until.wait_time_from(DefaultClock::default().now()),
    ))
}

/// The refusal (429) when `request` is over one of the limits, else None;
/// the frame ([`super::frame`]) asks before the request goes further.
pub fn check(limits: &RateLimits, request: &Request) -> Option<Response> {
    limits.purge_now_and_then();
    let ip = || limits.client_ip(request);
    if let Some(refused) = refusal(&limits.per_ip, ip, "from your address") {
        return Some(refused);
    }
    let signing_in = request.method() == Method::POST
        && matches!(
            request.uri().path(),
            "/sessions" | "/users" | "/admin/sessions" | "/admin/me/password"
        );
    if signing_in {
        if let Some(refused) = refusal(&limits.sign_in, ip, "to sign in or up from your address") {
            return Some(refused);
        }
    }
    let credential = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .or_else(|| session_cookie(request.headers()));
    if let Some(credential) = credential {
        // Keyed by the credential's last 24 characters (96 random bits):
        // enough to tell credentials apart, never a whole secret kept.
        let key = || credential.chars().rev().take(24).collect();
        return refusal(&limits.per_key, key, "with this key");
    }
    None
}
