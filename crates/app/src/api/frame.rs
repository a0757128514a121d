//! What every request gets on its way in and out, in one layer: its
//! request id, the audit context of an operator's request, the trace span
//! its log lines carry, the rate limits, the 10 s deadline,
//! `Cache-Control: no-store`, and the access log's line.
//!
//! These were eight tower layers, each boxing and moving the request's
//! future once more; as one, serve spends 16% fewer instructions per bet
//! (BENCHMARKS.md, "The peak minute"). The order is theirs:
//! the id is set first, so the span, the access log and the answer carry
//! it; the access log sees every answer, the timeout's included, and is
//! written outside the span (its line carries the request id among its
//! own fields, not the span's twice).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use super::metrics::RouteTemplate;
use super::{ratelimit, ApiError};
use crate::services::context::RequestContext;

/// The header that names a request, the caller's or ours.
pub(super) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the frame needs to know of the configuration.
#[derive(Clone)]
pub(super) struct Frame {
    /// Longest a request may take before it is answered 503 `timeout`.
    pub timeout: Duration,
    /// `ACCESS_LOG`: one line per request.
    pub access_log: bool,
    /// The `RATE_LIMIT_*` limits (which also know whose address a client's
    /// is, for the audit log).
    pub limits: Arc<ratelimit::RateLimits>,
}

pub(super) async fn frame(
    State(frame): State<Frame>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = match request.headers().get(&REQUEST_ID) {
        Some(id) => id.clone(),
        None => {
            let id = new_request_id();
            request.headers_mut().insert(REQUEST_ID, id.clone());
            id
        }
    };
    let started = Instant::now();
    let method = request.method().clone();
    let span = request_span(&request, &request_id);
    let path = request.uri().path();
    // Operators' requests carry who asked (address, request id, and the
    // credential once known) to the audit log; players' requests skip it.
    let context = (path.starts_with("/admin") || path.starts_with("/simulate")).then(|| {
        RequestContext::new(
            Some(frame.limits.client_ip(&request)),
            request_id.to_str().ok().map(str::to_string),
        )
    });
    let work = async {
        match ratelimit::check(&frame.limits, &request) {
            Some(refused) => refused,
            None => within(frame.timeout, next.run(request)).await,
        }
    }
    .instrument(span.clone());
    let mut response = match context {
        Some(context) => context.scope(work).await,
        None => work.await,
    };
    let status = response.status();
    if status.is_server_error() {
        span.in_scope(|| {
            tracing::error!(
                status = status.as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                "response failed"
            )
        });
    }
    let headers = response.headers_mut();
    // Answers hold balances, keys, passwords shown once and TOTP secrets:
    // no cache keeps them, unless a route says otherwise (the pages'
    // assets, the QR codes).
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !headers.contains_key(&REQUEST_ID) {
        headers.insert(REQUEST_ID, request_id.clone());
    }
    if frame.access_log {
        let route = response
            .extensions()
            .get::<RouteTemplate>()
            .map_or("unmatched", |r| r.0.as_str());
        tracing::info!(
            target: "access",
            method = %method,
            route,
            status = status.as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            request_id = request_id.to_str().unwrap_or("-"),
            "request"
        );
    }
    response
}

/// `work`'s answer, or 503 `timeout` (in the API's error format, with
/// `Retry-After`) when it has none within `limit`. Not 408, which says the
/// request itself did not arrive in time and which a client may repeat on
/// its own: here the work may still take effect, and only a retry with the
/// same Idempotency-Key is safe.
async fn within(limit: Duration, work: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, work).await {
        Ok(response) => response,
        Err(_) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "no answer within {} s: the request may still take effect; \
                     retry it with the same Idempotency-Key to learn its outcome \
                     (without a key, look before repeating it)",
                    limit.as_secs_f64()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// A new request id when the caller sent none: 16 random hex digits (or
/// `-` in the unlikely case the system has no randomness to give).
fn new_request_id() -> HeaderValue {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => HeaderValue::from_str(&hex::encode(bytes)).expect("hex is a header value"),
        Err(_) => HeaderValue::from_static("-"),
    }
}

/// The span every log line written while serving a request carries.
fn request_span(request: &Request, request_id: &HeaderValue) -> tracing::Span {
    let request_id = request_id.to_str().unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::Router;
    use tower::ServiceExt;

    fn app(timeout: Duration, rate_per_ip: &str) -> Router {
        let config = crate::config::Config::with(&[("RATE_LIMIT_IP", rate_per_ip)]).unwrap();
        let frame = Frame {
            timeout,
            access_log: true,
            limits: ratelimit::RateLimits::new(&config),
        };
        Router::new()
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "done"
                }),
            )
            .route("/quick", post(|| async { "done" }))
            .route(
                "/cached",
                post(|| async { ([(header::CACHE_CONTROL, "max-age=60")], "done") }),
            )
            .layer(axum::middleware::from_fn_with_state(frame, super::frame))
    }

    fn ask(path: &str) -> Request {
        Request::post(path).body(axum::body::Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_request_with_no_answer_in_time_is_told_its_outcome_is_unknown() {
        let app = app(Duration::from_millis(50), "off");
        let late = app.clone().oneshot(ask("/slow")).await.unwrap();
        assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(late.headers()["retry-after"], "1");
        assert!(late.headers().contains_key(&REQUEST_ID));
        let body = http_body_util::BodyExt::collect(late.into_body())
            .await
            .unwrap()
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "timeout", "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"));
        let quick = app.oneshot(ask("/quick")).await.unwrap();
        assert_eq!(quick.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn every_answer_has_a_request_id_and_is_not_cached_unless_the_route_says_so() {
        let app = app(Duration::from_secs(10), "off");
        let fresh = app.clone().oneshot(ask("/quick")).await.unwrap();
        let id = fresh.headers()[&REQUEST_ID].to_str().unwrap().to_string();
        assert_eq!(id.len(), 16, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], "no-store");
        let again = app.clone().oneshot(ask("/quick")).await.unwrap();
        assert_ne!(again.headers()[&REQUEST_ID], id.as_str());

        let mut named = ask("/cached");
        named
            .headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static("caller-7"));
        let named = app.oneshot(named).await.unwrap();
        assert_eq!(named.headers()[&REQUEST_ID], "caller-7");
        assert_eq!(named.headers()[header::CACHE_CONTROL], "max-age=60");
    }

    #[tokio::test]
    async fn a_caller_over_the_rate_limit_is_refused_in_the_frame() {
        let app = app(Duration::from_secs(10), "2/min");
        for _ in 0..2 {
            let answer = app.clone().oneshot(ask("/quick")).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let refused = app.oneshot(ask("/quick")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(header::RETRY_AFTER));
        assert!(refused.headers().contains_key(&REQUEST_ID));
    }
}
