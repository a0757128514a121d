//! `GET /metrics` (Prometheus text) and the per-request counters.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use crate::services::App;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_metrics))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
    ),
)]
async fn get_metrics(State(app): State<App>) -> Result<Response, ApiError> {
    // The recorder first, so the check's gauge is recorded; the database's
    // is set by `render`, whose queries need it anyway.
    crate::metrics::handle();
    super::health::redis_status(&app).await;
    let text = crate::metrics::render(&app).await?;
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Counts and times each request by method, route template and status
/// (the template, not the path, so ids do not explode the label set).
pub async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    let mut response = response;
    response.extensions_mut().insert(RouteTemplate(route));
    response
}

/// The route template a request matched, for the access log.
#[derive(Clone)]
pub struct RouteTemplate(pub String);

/// The access log: one line per request (JSON with `LOG_FORMAT=json`),
/// whatever became of it: method, route template, status, latency and
/// request id, at `info` on target `access`. `ACCESS_LOG=off` skips it.
pub async fn access_log(State(app): State<App>, request: Request, next: Next) -> Response {
    if !app.config.http.access_log {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map_or("unmatched", |r| r.0.as_str());
    tracing::info!(
        target: "access",
        method = %method,
        route,
        status = response.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        request_id = %request_id,
        "request"
    );
    response
}
