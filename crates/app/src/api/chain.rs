//! `GET /admin/chain`: the deposit watcher and custody, for the operator
//! console: the cursor, the node's head and the lag, the reorgs (an open
//! one halts crediting), the last custody checks.

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Reads};
use super::ApiError;
use crate::services::App;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(chain_report))
}

#[utoipa::path(
    get,
    path = "/admin/chain",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the watcher's cursor, the node's head and the lag, reorgs (one not acknowledged halts crediting), the last custody checks", body = Object),
    ),
)]
async fn chain_report(
    State(app): State<App>,
    _admin: Admin<Reads>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(app.chain_report().await?))
}
