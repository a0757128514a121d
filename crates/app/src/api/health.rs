//! `GET /health`: the database and, when configured, Redis; 200 when all
//! answer, 503 otherwise. Each check gives up after two seconds.

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

#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, description = "everything answers: {\"status\": \"ok\", \"database\": \"ok\", \"redis\": \"ok\" or \"not configured\"}", body = Object), (status = 503, description = "a dependency does not answer", body = Object)))]
async fn get_health(State(app): State<App>) -> (StatusCode, Json<Value>) {
    let database = check("database", app.store.ping()).await;
    let redis = match &app.redis {
        Some(client) => check("redis", ping_redis(client)).await,
        None => "not configured".into(),
    };
    let healthy = database == "ok" && matches!(redis.as_str(), "ok" | "not configured");
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
        })),
    )
}
