//! Health, in the three parts load balancers and operators each need:
//!
//! - `GET /health/live`: the process answers (restart it if not);
//! - `GET /health/ready`: it can take money requests now: the database
//!   that takes writes answers and holds this build's migrations, and the
//!   server is not draining for a shutdown (send it traffic only if so);
//! - `GET /health`: the detailed report. 503 only when the database does
//!   not answer or the server drains; an optional dependency that fails
//!   (Redis, which only carries events; the read replica lagging or down;
//!   the scheduler falling behind; the
//!   chain watcher, custody or the sender needing an operator) makes it
//!   `degraded` with 200: an operator's matter, not a load balancer's.
//!
//! Each check gives up after two seconds. `GET /metrics` exports the same
//! checks as `updown_dependency_up{dependency}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::services::App;

/// Longest a dependency may take to answer a health check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_health))
        .routes(routes!(get_live))
        .routes(routes!(get_ready))
}

/// Set once the server is told to stop: readiness fails from then on, so
/// load balancers stop sending while requests in flight (and those still
/// arriving during SHUTDOWN_DRAIN_SECS) get their answers.
#[derive(Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
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

/// Redis's state ("ok", "unreachable", "timeout" or "not configured"),
/// also set as `updown_dependency_up{dependency="redis"}`.
pub async fn redis_status(app: &App) -> String {
    let Some(client) = app.events.redis_client() else {
        return "not configured".into();
    };
    let status = check("redis", ping_redis(client)).await;
    metrics::gauge!("updown_dependency_up", "dependency" => "redis").set(if status == "ok" {
        1.0
    } else {
        0.0
    });
    status
}

/// The database's state, also set as
/// `updown_dependency_up{dependency="database"}`.
pub async fn database_status(app: &App) -> String {
    let status = check("database", app.ping_database()).await;
    metrics::gauge!("updown_dependency_up", "dependency" => "database").set(if status == "ok" {
        1.0
    } else {
        0.0
    });
    status
}

/// The scheduler's last step: "stale" (degraded) when it is more than
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

/// The read replica (DATABASE_READ_URL) as last checked: "ok" with its
/// lag, "lagging" or "down" (lists read from the primary meanwhile:
/// degraded), or "not configured".
fn replica_health(app: &App) -> Value {
    use updown_store::ReplicaState;
    let lag_ms = |lag: &Duration| lag.as_millis() as u64;
    match app.replica_state() {
        ReplicaState::NotConfigured if app.config.database.read_url.is_some() => {
            json!({ "status": "starting" })
        }
        ReplicaState::NotConfigured => json!({ "status": "not configured" }),
        ReplicaState::Ok(lag) => json!({ "status": "ok", "lag_ms": lag_ms(&lag) }),
        ReplicaState::Lagging(lag) => json!({
            "status": "lagging",
            "lag_ms": lag_ms(&lag),
            "max_lag_ms": lag_ms(&app.config.database.replica_max_lag),
            "reads": "from the primary",
        }),
        ReplicaState::Down(why) => json!({
            "status": "down",
            "error": why,
            "reads": "from the primary",
        }),
    }
}

/// The chain watcher's and custody's state: "degraded" when crediting is
/// halted by a reorg, the node has failed several polls in a row, or the
/// last custody check found a shortfall.
async fn chain_health(app: &App) -> Value {
    let Some(watch) = &app.watch else {
        return json!({ "status": "not configured" });
    };
    let status = watch.status();
    let custody = match tokio::time::timeout(CHECK_TIMEOUT, app.custody_checks(1)).await {
        Ok(Ok(checks)) => checks.first().map(|c| c.status.as_str()),
        _ => None,
    };
    let mut problems = Vec::new();
    if let Some(reorg) = status.halted_by_reorg {
        problems.push(format!(
            "crediting halted by reorg {reorg}: an operator must acknowledge it (updown chain ack-reorg)"
        ));
    }
    if status.consecutive_failures >= crate::services::watcher::FAILURES_DEGRADED {
        problems.push(format!(
            "the node failed {} polls in a row: {}",
            status.consecutive_failures,
            status.last_error.as_deref().unwrap_or("")
        ));
    }
    if custody == Some("shortfall") {
        problems
            .push("custody: the chain holds less than the ledger owes (updown reconcile)".into());
    }
    json!({
        "status": if problems.is_empty() { "ok" } else { "degraded" },
        "problems": problems,
        "head": status.head,
        "cursor": status.cursor,
        "lag": status.lag,
        "last_success": status.last_success.map(crate::wire::instant),
        "custody": custody,
    })
}

/// The hot wallet's sender (CHAIN_SENDER=evm): its address and balances
/// as last read; "degraded" while it holds (funds, gas, fees) or a nonce
/// conflict waits for an operator.
fn sender_health(app: &App) -> Value {
    let Some(sender) = &app.sender else {
        return json!({ "status": "not configured" });
    };
    let status = sender.status();
    let degraded = status.holding.is_some() || status.nonce_conflict.is_some();
    let mut view = serde_json::to_value(&status).unwrap_or_default();
    view["status"] = json!(if degraded { "degraded" } else { "ok" });
    view
}

#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    responses(
        (status = 200, description = "the process answers: {\"status\": \"live\"}", body = Object),
    ),
)]
async fn get_live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "it can take money requests: {\"status\": \"ready\"}", body = Object),
        (status = 503, description = "not now: {\"status\": \"draining\"} after SIGTERM, or {\"status\": \"unready\", \"reason\": ...} when the database does not answer or lacks this build's migrations", body = Object),
    ),
)]
async fn get_ready(
    State(app): State<App>,
    Extension(draining): Extension<Draining>,
) -> (StatusCode, Json<Value>) {
    if draining.is_on() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        );
    }
    let reason = match tokio::time::timeout(CHECK_TIMEOUT, app.unready()).await {
        Ok(Ok(None)) => return (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Ok(Ok(Some(why))) => why,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            "the database does not answer".into()
        }
        Err(_) => format!("the database did not answer within {CHECK_TIMEOUT:?}"),
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unready", "reason": reason })),
    )
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "the database answers: {\"status\": \"ok\" or \"degraded\", \"database\": \"ok\", \"redis\": \"ok\", \"unreachable\", \"timeout\" or \"not configured\", \"scheduler\", \"chain\", \"sender\", \"replica\": its status and lag_ms}; \"degraded\" (still 200) when Redis does not answer, the read replica lags more than READ_REPLICA_MAX_LAG_MS or is down (lists then read from the primary), the scheduler is more than three ticks behind, the chain watcher is halted by a reorg or failing, custody is short (\"chain\".\"problems\" says why), or the withdrawal sender holds or has a nonce conflict", body = Object),
        (status = 503, description = "the database does not answer (\"status\": \"unhealthy\"), or the server is draining for a shutdown (\"status\": \"draining\")", body = Object),
    ),
)]
async fn get_health(
    State(app): State<App>,
    Extension(draining): Extension<Draining>,
) -> (StatusCode, Json<Value>) {
    let database = database_status(&app).await;
    let redis = redis_status(&app).await;
    let scheduler = scheduler_health(&app);
    let chain = chain_health(&app).await;
    let sender = sender_health(&app);
    let replica = replica_health(&app);
    let degraded = !matches!(redis.as_str(), "ok" | "not configured")
        || matches!(replica["status"].as_str(), Some("lagging" | "down"))
        || scheduler["status"] == "stale"
        || chain["status"] == "degraded"
        || sender["status"] == "degraded";
    let (code, status) = if database != "ok" {
        (StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    } else if draining.is_on() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else if degraded {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    (
        code,
        Json(json!({
            "status": status,
            "database": database,
            "redis": redis,
            "scheduler": scheduler,
            "chain": chain,
            "sender": sender,
            "replica": replica,
        })),
    )
}
