//! The caller's own account: `GET /me`, their statement, their limits,
//! and their API keys.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use updown_domain::admission::PlayerLimits;

use super::auth::CurrentUser;
use super::bets::amount;
use super::ApiError;
use crate::services::App;
use crate::wire::{instant, LimitsOut, StatementLineOut};

/// Most statement lines one JSON page returns.
const MAX_STATEMENT_PAGE: i64 = 1_000;
/// Most lines one CSV export holds; page with `before` for more.
const MAX_STATEMENT_CSV: i64 = 100_000;

pub fn router() -> Router<App> {
    Router::new()
        .route("/me", get(get_me))
        .route("/me/statement", get(get_statement))
        .route("/me/limits", put(put_limits))
        .route("/me/api-keys", get(list_api_keys).post(create_api_key))
        .route("/me/api-keys/{id}", delete(revoke_api_key))
}

async fn get_me(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let balance = app.balance(user.id).await?;
    Ok(Json(json!({
        "id": user.id.0,
        "email": user.email.as_str(),
        "available": balance.get(),
        "limits": LimitsOut::from(&user.limits),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementQuery {
    limit: Option<i64>,
    /// Lines older than this ledger transaction id (the last `tx_id` of
    /// the previous page).
    before: Option<i64>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

async fn get_statement(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    query: Result<Query<StatementQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format must be json or csv, not {other:?}"
            )))
        }
    };
    let max = if csv {
        MAX_STATEMENT_CSV
    } else {
        MAX_STATEMENT_PAGE
    };
    let limit = query.limit.unwrap_or(if csv { max } else { 100 });
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {max}"
        )));
    }
    let lines = app
        .store
        .statement(user.id, query.before, limit)
        .await
        .map_err(crate::error::AppError::from)?;
    let lines: Vec<StatementLineOut> = lines.iter().map(StatementLineOut::from).collect();
    if !csv {
        return Ok(Json(lines).into_response());
    }
    let mut body = String::from(StatementLineOut::CSV_HEADER);
    for line in &lines {
        body.push_str(&line.csv_record());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"updown-statement.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The whole set of limits; `null` (or absent) removes one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsIn {
    max_stake_per_round: Option<i64>,
    max_stake_per_day: Option<i64>,
    /// An RFC 3339 instant, or a date meaning midnight in New York.
    excluded_until: Option<String>,
}

fn parse_until(text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        ApiError::invalid(format!(
            "excluded_until must be an RFC 3339 instant or a YYYY-MM-DD date, not {text:?}"
        ))
    })?;
    Ok(crate::services::new_york_midnight(date)?)
}

async fn put_limits(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    body: Result<Json<LimitsIn>, JsonRejection>,
) -> Result<Json<LimitsOut>, ApiError> {
    let Json(body) = body?;
    let limits = PlayerLimits {
        max_stake_per_round: body.max_stake_per_round.map(amount).transpose()?,
        max_stake_per_day: body.max_stake_per_day.map(amount).transpose()?,
        excluded_until: body
            .excluded_until
            .as_deref()
            .map(parse_until)
            .transpose()?,
    };
    let user = app.set_own_limits(&user, limits).await?;
    Ok(Json(LimitsOut::from(&user.limits)))
}

async fn list_api_keys(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let keys = app
        .store
        .api_keys(user.id)
        .await
        .map_err(crate::error::AppError::from)?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| json!({ "id": k.id, "prefix": k.prefix, "created_at": instant(k.created_at), "revoked_at": k.revoked_at.map(instant) }))
        .collect();
    Ok(Json(Value::Array(keys)))
}

async fn create_api_key(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (id, key) = app.new_api_key(user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "api_key_id": id, "api_key": key })),
    ))
}

async fn revoke_api_key(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    app.revoke_api_key(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
