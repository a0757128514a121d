//! Rounds: the one taking bets, any round by code (with its evidence once
//! settled), and the latest rounds.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use updown_domain::ids::RoundCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use crate::services::App;
use crate::wire::RoundOut;

/// Most rounds one listing returns.
const MAX_LIMIT: i64 = 100;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_rounds))
        .routes(routes!(get_current_round))
        .routes(routes!(get_round))
}

#[utoipa::path(
    get,
    path = "/rounds/current",
    tag = "rounds",
    responses(
        (status = 200, description = "the round taking bets: instants, pools, bet counts, implied multipliers, terms digest", body = RoundOut),
        (status = 404, description = "not found", body = crate::api::ErrorBody),
    ),
)]
/// Served from memory (see `services::views`): at most 100 ms behind
/// changes on any instance (through events), 1 s should an event be lost.
async fn get_current_round(State(app): State<App>) -> Result<Response, ApiError> {
    let body = app.current_round_json().await?;
    // The service's clock, so a page counts down to the lock by it.
    let now = app
        .clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    Ok((
        [
            (CONTENT_TYPE, "application/json".to_string()),
            (SERVER_TIME, now),
        ],
        body,
    )
        .into_response())
}

/// The header carrying the service's clock.
const SERVER_TIME: axum::http::HeaderName = axum::http::HeaderName::from_static("x-server-time");

/// A round code in a path: `YYYYMMDD`, the session's New York date.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(super) struct CodePath {
    /// YYYYMMDD: the session's New York date.
    #[param(pattern = "^[0-9]{8}$")]
    code: String,
}

/// A round code as written in a request: eight digits (400 otherwise). A
/// code that is not a calendar date names no round: 404.
pub(super) fn round_code(text: &str) -> Result<RoundCode, ApiError> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(format!(
            "a round code is eight digits, YYYYMMDD; not {text:?}"
        )));
    }
    RoundCode::parse(text).map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no round {text}: it is not a calendar date"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/rounds/{code}",
    tag = "rounds",
    params(CodePath),
    responses(
        (status = 200, description = "the round, with its evidence once settled: both closes, and what each source asked for them answered", body = RoundOut),
        (status = 404, description = "no such round", body = crate::api::ErrorBody),
    ),
)]
async fn get_round(
    State(app): State<App>,
    code: Result<Path<String>, PathRejection>,
) -> Result<Json<RoundOut>, ApiError> {
    let Path(code) = code?;
    let code = round_code(&code)?;
    let round = app.round(code).await?;
    Ok(Json(app.round_view_with_proof(&round).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Rounds to return, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/rounds",
    tag = "rounds",
    params(ListQuery),
    responses(
        (status = 200, description = "the latest rounds, newest first", body = Vec<RoundOut>),
    ),
)]
async fn list_rounds(
    State(app): State<App>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<RoundOut>>, ApiError> {
    let Query(query) = query?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let rounds = app.rounds(limit).await?;
    let mut views = Vec::with_capacity(rounds.len());
    for round in &rounds {
        views.push(app.round_view(round).await?);
    }
    Ok(Json(views))
}
