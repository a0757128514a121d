//! `GET /admin/oracle`: what the oracle's sources did that an operator
//! must look at, for the console: sources that disagree beyond the spread
//! (the round waits) and closes revised after they were recorded (never
//! re-settled automatically).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Admin, Reads};
use super::ApiError;
use crate::services::App;
use crate::wire::instant;

/// Incidents listed, newest first.
const LISTED: i64 = 50;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_oracle_report))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct OracleReportOut {
    /// The oracle in use, e.g. `quorum(2 of polygon:api.polygon.io,
    /// twelvedata:api.twelvedata.com) within 10 bps`.
    pub oracle: String,
    /// The latest 50 incidents, newest first.
    pub incidents: Vec<IncidentOut>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct IncidentOut {
    /// `disagreement` or `revision`.
    #[schema(value_type = String, pattern = "^(disagreement|revision)$", example = "disagreement")]
    pub kind: &'static str,
    /// The session whose close it concerns.
    pub date: String,
    /// Each source's close, or what was recorded and what is given now.
    pub detail: String,
    /// When it was first seen (RFC 3339).
    pub at: String,
}

#[utoipa::path(
    get,
    path = "/admin/oracle",
    tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "the oracle in use and its latest incidents: sources that disagreed, closes revised after they were recorded", body = OracleReportOut),
    ),
)]
async fn get_oracle_report(
    State(app): State<App>,
    _admin: Admin<Reads>,
) -> Result<Json<OracleReportOut>, ApiError> {
    let incidents = app.oracle_incidents(LISTED).await?;
    Ok(Json(OracleReportOut {
        oracle: app.oracle.name(),
        incidents: incidents
            .iter()
            .map(|i| IncidentOut {
                kind: i.kind.as_str(),
                date: i.date.to_string(),
                detail: i.detail.clone(),
                at: instant(i.at),
            })
            .collect(),
    }))
}
