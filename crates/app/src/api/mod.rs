//! The HTTP API (axum): one file per resource, each exporting `router()`,
//! merged here with the limits every request gets (a timeout, a body size
//! cap, tracing).

mod admin;
mod approvals;
pub(crate) mod auth;
mod bets;
mod chain;
mod docs;
mod error;
mod events;
mod fanout;
mod health;
mod idempotency;
mod me;
mod metrics;
mod operators;
mod oracle;
mod paging;
mod qr;
mod ratelimit;
mod rounds;
mod server;
mod sessions;
pub(crate) mod shapes;
mod simulate;
mod staff;
mod tvl;
mod users;
mod wallets;
mod webhooks;
mod withdrawals;

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderName, HeaderValue, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub use error::{ApiError, ErrorBody};

use crate::services::App;

/// Longest a request may take before it is answered 503 `timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Answers 503 `timeout` (in the API's error format, with `Retry-After`)
/// when a request has no answer within `limit` ([`REQUEST_TIMEOUT`]).
/// Not 408, which says the request itself did not arrive in time and which
/// a client may repeat on its own: here the work may still take effect,
/// and only a retry with the same Idempotency-Key is safe.
async fn deadline(
    State(limit): State<Duration>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
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

/// A new request id when the caller sent none: 16 random hex digits.
#[derive(Clone, Copy)]
struct NewRequestId;

impl MakeRequestId for NewRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).ok()?;
        let id = hex::encode(bytes);
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(RequestId::new)
    }
}

/// The span every log line of a request is written in: method, path and
/// request id.
fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %request_id)
}

/// Every documented route, and the OpenAPI document they make.
pub fn routes() -> (Router<App>, utoipa::openapi::OpenApi) {
    use utoipa::OpenApi;
    let (router, mut document) =
        utoipa_axum::router::OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
            .merge(admin::router())
            .merge(approvals::router())
            .merge(chain::router())
            .merge(bets::router())
            .merge(events::router())
            .merge(health::router())
            .merge(me::router())
            .merge(metrics::router())
            .merge(operators::router())
            .merge(oracle::router())
            .merge(rounds::router())
            .merge(sessions::router())
            .merge(simulate::router())
            .merge(staff::router())
            .merge(tvl::router())
            .merge(users::router())
            .merge(wallets::router())
            .merge(webhooks::router())
            .merge(qr::router())
            .merge(withdrawals::router())
            .split_for_parts();
    docs::add_shared_answers(&mut document);
    (router, document)
}

/// The OpenAPI document alone (for `updown openapi` and tests).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// Every route, `/openapi.json` and the `/docs` page, with the request
/// limits. Layers run outside-in: the request id is set first, so the
/// trace span, the access log and the answer carry it; the access log sits
/// outside the timeout, the rate limits and the idempotency layer, so it
/// sees every answer (and outside the trace span: its line carries the
/// request id among its own fields, not the span's twice).
pub fn router(app: App) -> Router {
    router_with(
        app,
        events::EventStreams::default(),
        health::Draining::default(),
    )
}

/// Operators' requests carry who asked (address, request id, and the
/// credential once known) to the audit log; players' requests skip it.
async fn audit_context(
    State(trust_forwarded_for): State<bool>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !(path.starts_with("/admin") || path.starts_with("/simulate")) {
        return next.run(request).await;
    }
    let client = ratelimit::client_ip(&request, trust_forwarded_for);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    crate::services::context::RequestContext::new(Some(client), request_id)
        .scope(next.run(request))
        .await
}

/// [`router`], its event streams and draining flag given (so the server
/// can end them and fail readiness).
fn router_with(app: App, streams: events::EventStreams, draining: health::Draining) -> Router {
    let (routes, document) = routes();
    routes
        .merge(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", document))
        .merge(crate::web::pages())
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(error::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            idempotency::idempotency,
        ))
        .layer(axum::middleware::from_fn_with_state(
            ratelimit::RateLimits::new(&app.config),
            ratelimit::rate_limit,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            REQUEST_TIMEOUT,
            deadline,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn_with_state(
            app.config.http.trust_forwarded_for,
            audit_context,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            metrics::access_log,
        ))
        // Answers hold balances, keys, passwords shown once and TOTP
        // secrets: no cache keeps them, unless a route says otherwise (the
        // pages' assets, the QR codes).
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            ),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, NewRequestId))
        .layer(axum::Extension(streams))
        .layer(axum::Extension(draining))
        .with_state(app)
}

/// Serves until `shutdown` resolves, then drains: readiness fails at once
/// (so load balancers stop sending) while requests still get answers for
/// SHUTDOWN_DRAIN_SECS; then the listener closes, event streams end with
/// a reconnect hint, and requests in flight finish.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let streams = events::EventStreams::default();
    let draining = health::Draining::default();
    let drain_for = app.config.http.shutdown_drain;
    let router = router_with(app, streams.clone(), draining.clone());
    server::serve_http1(listener, router, server::Waits::SERVE, async move {
            shutdown.await;
            draining.start();
            if !drain_for.is_zero() {
                tracing::info!(
                    "draining: readiness fails; still answering for {drain_for:?} (SHUTDOWN_DRAIN_SECS)"
                );
                tokio::time::sleep(drain_for).await;
            }
            tracing::info!("shutting down: finishing requests in flight");
            // Event streams never end by themselves.
            streams.stop();
    })
    .await
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_request_with_no_answer_in_time_is_told_its_outcome_is_unknown() {
        let limit = Duration::from_millis(50);
        let app = Router::new()
            .route(
                "/slow",
                axum::routing::post(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "done"
                }),
            )
            .route("/quick", axum::routing::post(|| async { "done" }))
            .layer(axum::middleware::from_fn_with_state(limit, deadline));
        let ask = |path: &str| Request::post(path).body(axum::body::Body::empty()).unwrap();
        let late = app.clone().oneshot(ask("/slow")).await.unwrap();
        assert_eq!(late.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(late.headers()["retry-after"], "1");
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
}
