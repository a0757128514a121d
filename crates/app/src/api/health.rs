//! `GET /health`: the database and, when configured, Redis; 200 when all
//! answer, 503 otherwise. Each check gives up after two seconds.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::services::App;

/// Longest a dependency may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<App> {
    Router::new().route("/health", get(get_health))
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
