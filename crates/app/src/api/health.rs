//! `GET /health`: the database, Redis when configured, and the scheduler's
//! freshness when this process runs it; 200 when all are well, 503
//! otherwise. Each check gives up after two seconds. The chain watcher and
//! custody (DEPOSIT_SOURCE=evm) degrade the status without failing it: a
//! halted watcher or a custody shortfall needs an operator, not a load
//! balancer taking the instance out.

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
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "everything answers: {\"status\": \"ok\", \"database\": \"ok\", \"redis\": \"ok\" or \"not configured\", \"chain\": ...}; \"status\": \"degraded\" when the chain watcher is halted by a reorg or failing, or custody is short (\"chain\".\"problems\" says why), or the withdrawal sender holds or has a nonce conflict (\"sender\": address, eth_wei, token_balance, holding, nonce_conflict)", body = Object),
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
    let chain = chain_health(&app).await;
    let sender = sender_health(&app);
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
            "status": match (
                healthy,
                chain["status"] == "degraded" || sender["status"] == "degraded",
            ) {
                (false, _) => "unhealthy",
                (true, true) => "degraded",
                (true, false) => "ok",
            },
            "database": database,
            "redis": redis,
            "scheduler": scheduler,
            "chain": chain,
            "sender": sender,
        })),
    )
}
