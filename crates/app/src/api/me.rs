//! The caller's own account: `GET /me`, their statement, their limits,
//! and their API keys.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use updown_domain::admission::PlayerLimits;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CurrentUser;
use super::bets::amount;
use super::ApiError;
use crate::services::App;
use crate::wire::{ApiKeyOut, LimitsOut, MeOut, NewApiKeyOut, StatementLineOut};

/// Most statement lines one JSON page returns.
const MAX_STATEMENT_PAGE: i64 = 1_000;
/// Most lines one CSV export holds; page with `before` for more.
const MAX_STATEMENT_CSV: i64 = 100_000;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(get_me))
        .routes(routes!(get_statement))
        .routes(routes!(put_limits))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
}

#[utoipa::path(
    get,
    path = "/me",
    tag = "account",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "your balance and limits", body = MeOut),
    ),
)]
async fn get_me(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<MeOut>, ApiError> {
    let balance = app.balance(user.id).await?;
    Ok(Json(MeOut {
        id: user.id.0,
        email: user.email.to_string(),
        available: balance.get(),
        limits: LimitsOut::at(&user.limit_settings(), app.clock.now()),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct StatementQuery {
    /// Lines to return: CSV up to 100000 (the default); JSON 1 to 1000,
    /// default 100 (422 above 1000: page with `before`, or use CSV).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<i64>,
    /// Lines older than this ledger transaction id (the last `tx_id` of
    /// the previous page).
    #[param(minimum = 1)]
    before: Option<i64>,
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

#[utoipa::path(
    get,
    path = "/me/statement",
    tag = "account",
    security(("api_key" = []), ("session" = [])),
    params(StatementQuery),
    responses(
        (status = 200, description = "ledger lines of your account, newest first, each with your balance after it; as CSV with format=csv", content((Vec<StatementLineOut> = "application/json"), (String = "text/csv"))),
        (status = 422, description = "a JSON page of more than 1000 lines", body = crate::api::ErrorBody),
    ),
)]
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
    if !(1..=MAX_STATEMENT_CSV).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_STATEMENT_CSV}"
        )));
    }
    if limit > max {
        return Err(ApiError::refused(format!(
            "a JSON page holds at most {max} lines; page with before, or ask for format=csv"
        )));
    }
    if query.before.is_some_and(|before| before < 1) {
        return Err(ApiError::invalid("before must be a positive id"));
    }
    let lines = app.statement(user.id, query.before, limit).await?;
    let lines: Vec<StatementLineOut> = lines.iter().map(StatementLineOut::from).collect();
    if !csv {
        return Ok(Json(lines).into_response());
    }
    let mut body = String::from(STATEMENT_CSV_HEADER);
    for line in &lines {
        body.push_str(&csv_record(line));
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

const STATEMENT_CSV_HEADER: &str = "tx_id,at,kind,amount,balance_after,round,bet_id,reference\r\n";

/// One statement line as a CSV record (RFC 4180), its columns in the
/// order of the JSON fields, quoted where they need it.
fn csv_record(line: &StatementLineOut) -> String {
    fn field(text: &str) -> String {
        if text.contains([',', '"', '\r', '\n']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text.to_string()
        }
    }
    format!(
        "{},{},{},{},{},{},{},{}\r\n",
        line.tx_id,
        line.at,
        line.kind,
        line.amount,
        line.balance_after,
        line.round.as_deref().unwrap_or(""),
        line.bet_id.map(|b| b.to_string()).unwrap_or_default(),
        field(line.reference.as_deref().unwrap_or("")),
    )
}

/// The whole set of limits; `null` (or absent) removes one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct LimitsIn {
    /// Micro-USDC per round; null for none.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    max_stake_per_round: Option<i64>,
    /// Micro-USDC per New York day; null for none.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "crate::wire::optional_integer")]
    max_stake_per_day: Option<i64>,
    /// An RFC 3339 instant, or a date meaning midnight in New York; in the
    /// future and at most 50 years ahead (422 otherwise).
    #[schema(schema_with = until_schema)]
    excluded_until: Option<String>,
}

/// `excluded_until`: a date-time, a date, or null.
pub(super) fn until_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
    };
    let string = |format| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(format)))
    };
    let any = AnyOfBuilder::new()
        .item(string(KnownFormat::DateTime))
        .item(string(KnownFormat::Date))
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .description(Some(
            "An RFC 3339 instant, or a date meaning midnight in New York; in the future and at most 50 years ahead",
        ))
        .build();
    Schema::AnyOf(any)
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

#[utoipa::path(
    put,
    path = "/me/limits",
    tag = "account",
    security(("api_key" = []), ("session" = [])),
    request_body = LimitsIn,
    responses(
        (status = 200, description = "your limits now (the whole set is replaced): a stricter limit applies at once, a looser or removed one after LIMIT_RAISE_COOLOFF_HOURS (shown as pending); a self-exclusion in force can be extended, not shortened (409)", body = LimitsOut),
        (status = 422, description = "excluded_until in the past or more than 50 years ahead", body = crate::api::ErrorBody),
        (status = 409, description = "conflict with the current state", body = crate::api::ErrorBody),
    ),
)]
async fn put_limits(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    body: Result<Json<LimitsIn>, JsonRejection>,
) -> Result<Json<LimitsOut>, ApiError> {
    let Json(body) = body?;
    let limits = player_limits(
        body.max_stake_per_round,
        body.max_stake_per_day,
        body.excluded_until.as_deref(),
    )?;
    let user = app.set_limits(user.id, limits).await?;
    Ok(Json(LimitsOut::at(&user.limit_settings(), app.clock.now())))
}

/// A whole set of limits from the request's fields, checked.
pub(super) fn player_limits(
    max_stake_per_round: Option<i64>,
    max_stake_per_day: Option<i64>,
    excluded_until: Option<&str>,
) -> Result<PlayerLimits, ApiError> {
    Ok(PlayerLimits {
        max_stake_per_round: max_stake_per_round.map(amount).transpose()?,
        max_stake_per_day: max_stake_per_day.map(amount).transpose()?,
        excluded_until: excluded_until.map(parse_until).transpose()?,
    })
}

#[utoipa::path(
    get,
    path = "/me/api-keys",
    tag = "account",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "your API keys, newest first; never the keys themselves", body = Vec<ApiKeyOut>),
    ),
)]
async fn list_api_keys(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<ApiKeyOut>>, ApiError> {
    let keys = app.api_keys(user.id).await?;
    Ok(Json(keys.iter().map(ApiKeyOut::from).collect()))
}

#[utoipa::path(
    post,
    path = "/me/api-keys",
    tag = "account",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 201, description = "a new key, shown once", body = NewApiKeyOut),
    ),
)]
async fn create_api_key(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<(StatusCode, Json<NewApiKeyOut>), ApiError> {
    let (id, key) = app.new_api_key(user.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewApiKeyOut {
            api_key_id: id,
            api_key: key,
        }),
    ))
}

#[utoipa::path(
    delete,
    path = "/me/api-keys/{id}",
    tag = "account",
    security(("api_key" = []), ("session" = [])),
    params(("id" = i64, Path, description = "the key id")),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "not found", body = crate::api::ErrorBody),
    ),
)]
async fn revoke_api_key(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    app.revoke_api_key(user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_record_quotes_only_a_reference_that_needs_it() {
        let mut line = StatementLineOut {
            tx_id: 7,
            at: "2026-11-24T15:00:00Z".into(),
            kind: "WITHDRAWAL",
            amount: -5_000_000,
            balance_after: 1_000_000,
            round: None,
            bet_id: None,
            reference: Some("plain".into()),
        };
        assert_eq!(
            csv_record(&line),
            "7,2026-11-24T15:00:00Z,WITHDRAWAL,-5000000,1000000,,,plain\r\n"
        );
        line.reference = Some("a \"quoted\", note".into());
        assert!(csv_record(&line).ends_with(",,,\"a \"\"quoted\"\", note\"\r\n"));
    }
}
