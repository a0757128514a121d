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
mod frame;
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

use axum::Router;
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;

pub use error::{ApiError, ErrorBody};

use crate::services::App;

/// Longest a request may take before it is answered 503 `timeout`.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

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
/// limits. Layers run outside-in: the frame ([`frame`]: request id, audit
/// context, trace span, rate limits, deadline, `no-store`, access log)
/// sits outside the body limit and the idempotency layer, so its access
/// log sees every answer.
pub fn router(app: App) -> Router {
    router_with(
        app,
        events::EventStreams::default(),
        health::Draining::default(),
    )
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
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            frame::Frame {
                timeout: REQUEST_TIMEOUT,
                access_log: app.config.http.access_log,
                limits: ratelimit::RateLimits::new(&app.config),
            },
            frame::frame,
        ))
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
