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

/// The route template a request matched, for the access log
/// ([`super::frame`]).
#[derive(Clone)]
pub struct RouteTemplate(pub String);
