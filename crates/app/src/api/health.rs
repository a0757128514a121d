//! `GET /health`: is the database answering?

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::services::App;

pub fn router() -> Router<App> {
    Router::new().route("/health", get(get_health))
}

async fn get_health(State(app): State<App>) -> (StatusCode, Json<Value>) {
    let database = match app.store.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => {
            tracing::warn!(error = %e, "health: database unreachable");
            "unreachable".to_string()
        }
    };
    let healthy = database == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if healthy { "ok" } else { "unhealthy" }, "database": database })),
    )
}
