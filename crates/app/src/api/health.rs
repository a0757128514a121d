//! `GET /health`: the database, Redis when configured, and the scheduler's
//! freshness when this process runs it; 200 when all are well, 503
//! otherwise. Each check gives up after two seconds.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::services::App;

/// Longest a dependency may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_health))
}

/// "ok", or why not (logged).
async fn check<F, E>(name: &str, probe: F) -> String
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: {name} unreachable");
            "unreachable".into()
        }
        Err(_) => {
            tracing::warn!("health: {name} did not answer within {CHECK_TIMEOUT:?}");
            "timeout".into()
        }
    }
}

async fn ping_redis(client: &redis::Client) -> redis::RedisResult<()> {
    let mut connection = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<()>(&mut connection).await
}

/// The scheduler's last step: "stale" (unhealthy) when it is more than
/// three ticks (and at least a minute) behind; "not running" in processes
/// that do not run it.
fn scheduler_health(app: &App) -> Value {
    if !app.scheduler_running() {
        return json!({ "status": "not running" });
    }
    let Some(last) = app.scheduler_last_tick() else {
        return json!({ "status": "starting" });
    };
    let limit = (app.config.scheduler.tick * 3).max(Duration::from_secs(60));
    let behind = (app.clock.now() - last).to_std().unwrap_or_default();
    let status = if behind > limit { "stale" } else { "ok" };
    json!({ "status": status, "last_step": crate::wire::instant(last) })
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "everything answers: {\"status\": \"ok\", \"database\": \"ok\", \"redis\": \"ok\" or \"not configured\"}", body = Object),
        (status = 503, description = "a dependency does not answer, or the scheduler has not stepped for three ticks", body = Object),
    ),
)]
async fn get_health(State(app): State<App>) -> (StatusCode, Json<Value>) {
    let database = check("database", app.ping_database()).await;
    let redis = match app.events.redis_client() {
        Some(client) => check("redis", ping_redis(client)).await,
        None => "not configured".into(),
    };
    let scheduler = scheduler_health(&app);
    let healthy = database == "ok"
        && matches!(redis.as_str(), "ok" | "not configured")
        && scheduler["status"] != "stale";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if healthy { "ok" } else { "unhealthy" },
            "database": database,
            "redis": redis,
            "scheduler": scheduler,
        })),
    )
}
