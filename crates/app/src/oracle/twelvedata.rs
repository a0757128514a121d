//! Twelve Data's daily time series as an oracle (`ORACLE=twelvedata`, or
//! `twelvedata` among a quorum's sources).
//!
//! Twelve Data documents the endpoint at <https://twelvedata.com/docs#time-series>
//! (the OpenAPI text: <https://api.twelvedata.com/doc/swagger/openapi.json>):
//! `GET {base}/time_series?symbol=NDX&interval=1day&start_date=…&end_date=…`,
//! the key sent as `Authorization: apikey <key>` (never in the URL, so it
//! cannot leak into logs). A 200 answer is
//! `{"meta": {…}, "values": [{"datetime": "2023-01-09", "open": "…",
//! "high": "…", "low": "…", "close": "…", "volume": "…"}], "status": "ok"}`,
//! with prices as strings, read here exactly. An error is
//! `{"code": 400, "message": "…", "status": "error"}` (Twelve Data may send
//! it with HTTP status 200): 400 "No data is available on the specified
//! dates" means no close yet; 401 and 403 are the key; 404 the symbol; 429
//! the rate limit and 5xx are worth another attempt, as with Polygon.

use async_trait::async_trait;
use chrono::NaiveDate;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use updown_domain::round::Price;

use super::http::{authorization, exact_price, get, said, Api, Failure, HttpSettings, Provider};

/// Twelve Data's daily time series.
pub struct TwelveData;

/// Twelve Data as an oracle (`ORACLE=twelvedata`).
pub type TwelveDataOracle = Provider<TwelveData>;

/// The documented answer, an error or a series (the fields used).
#[derive(Deserialize)]
struct Answer<'a> {
    status: &'a str,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default, borrow)]
    values: Vec<Bar<'a>>,
}

#[derive(Deserialize)]
struct Bar<'a> {
    datetime: &'a str,
    #[serde(borrow)]
    close: &'a RawValue,
}

#[async_trait]
impl Api for TwelveData {
    const PROVIDER: &'static str = "twelvedata";

    async fn attempt(
        client: &reqwest::Client,
        settings: &HttpSettings,
        date: NaiveDate,
    ) -> Result<Option<Price>, Failure> {
        let url = format!("{}/time_series", settings.base_url.trim_end_matches('/'));
        let next = date.succ_opt().unwrap_or(date).to_string();
        let url = reqwest::Url::parse_with_params(
            &url,
            [
                ("symbol", settings.ticker.as_str()),
                ("interval", "1day"),
                ("start_date", &date.to_string()),
                ("end_date", &next),
                ("order", "asc"),
            ],
        )
        .map_err(|e| Failure::Final(format!("ORACLE_TWELVEDATA_URL: {e}")))?;
        let key = authorization("apikey", &settings.api_key, "ORACLE_TWELVEDATA_KEY")?;
        let (status, body) = get(client, url, key).await?;
        answer(status, &body, date)
    }
}

/// What an answer says about `date`'s close.
fn answer(status: StatusCode, body: &[u8], date: NaiveDate) -> Result<Option<Price>, Failure> {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(Failure::Transient(format!(
            "the provider answered {status}"
        )));
    }
    let parsed: Answer = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        Failure::Final(format!("not the documented answer ({e}): {start:?}"))
    })?;
    match (parsed.status, status) {
        ("ok", StatusCode::OK) => close_of(&parsed.values, date).map_err(Failure::Final),
        ("error", _) => error(parsed.code.unwrap_or(status.as_u16()), parsed.message),
        (other, _) => Err(Failure::Final(format!(
            "status {other:?} with HTTP {status}, not a series"
        ))),
    }
}

/// `date`'s bar's close, or `None` when the series has no bar for it yet.
fn close_of(values: &[Bar], date: NaiveDate) -> Result<Option<Price>, String> {
    let day = date.to_string();
    let mut bars = values.iter().filter(|bar| bar.datetime == day);
    let Some(bar) = bars.next() else {
        return Ok(None);
    };
    if bars.next().is_some() {
        return Err(format!("two bars for {day}"));
    }
    // Documented as a string; a number is read as exactly.
    let text = bar.close.get();
    let text = serde_json::from_str::<&str>(text).unwrap_or(text);
    exact_price(text).map(Some)
}

/// An error answer by its code.
fn error(code: u16, message: Option<String>) -> Result<Option<Price>, Failure> {
    let message = message.as_deref().map(said).unwrap_or_default();
    match code {
        400 if message.starts_with("No data is available") => Ok(None),
        401 | 403 => Err(Failure::Final(format!(
            "the provider refused the key ({code}: {message}): check ORACLE_TWELVEDATA_KEY"
        ))),
        429 | 500..=599 => Err(Failure::Transient(format!("error {code}: {message}"))),
        _ => Err(Failure::Final(format!("error {code}: {message}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::http::told;
    use super::*;

    fn date() -> NaiveDate {
        "2023-01-09".parse().unwrap()
    }

    fn read(status: u16, body: &str) -> Result<Option<String>, String> {
        told(answer(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            date(),
        ))
    }

    #[test]
    fn the_documented_series_gives_its_close_exactly() {
        // The documented shape, for a daily series of NDX.
        let body = r#"{"meta":{"symbol":"NDX","interval":"1day","currency":"USD","exchange_timezone":"America/New_York","exchange":"NASDAQ","mic_code":"XNGS","type":"Index"},"values":[{"datetime":"2023-01-09","open":"11135.06055","high":"11277.93945","low":"11080.30664","close":"11108.44922","volume":"0"},{"datetime":"2023-01-10","open":"1","high":"1","low":"1","close":"11200.00001","volume":"0"}],"status":"ok"}"#;
        assert_eq!(read(200, body), Ok(Some("11108.44922".into())));
        // Digits a float would lose are kept; a number is read as exactly.
        let precise = r#"{"values":[{"datetime":"2023-01-09","close":"11108.000000000000000001"}],"status":"ok"}"#;
        assert_eq!(
            read(200, precise),
            Ok(Some("11108.000000000000000001".into()))
        );
        let number = r#"{"values":[{"datetime":"2023-01-09","close":11108.5}],"status":"ok"}"#;
        assert_eq!(read(200, number), Ok(Some("11108.5".into())));
        // No bar for the day yet, or the documented "no data" error.
        let other_day = r#"{"values":[{"datetime":"2023-01-06","close":"1"}],"status":"ok"}"#;
        assert_eq!(read(200, other_day), Ok(None));
        let no_data = r#"{"code":400,"message":"No data is available on the specified dates. Try setting different start/end dates.","status":"error"}"#;
        assert_eq!(read(200, no_data), Ok(None));
        assert_eq!(read(400, no_data), Ok(None));
    }

    #[test]
    fn errors_are_retried_only_when_asking_again_may_mend_them() {
        for (status, body, says) in [
            (
                200,
                r#"{"code":429,"message":"You have run out of API credits","status":"error"}"#,
                "transient: error 429",
            ),
            (429, "", "transient"),
            (503, "<html>down</html>", "transient"),
            (
                200,
                r#"{"code":500,"message":"oops","status":"error"}"#,
                "transient",
            ),
            (
                200,
                r#"{"code":401,"message":"**apikey** parameter is incorrect","status":"error"}"#,
                "final: the provider refused the key (401",
            ),
            (
                403,
                r#"{"code":403,"message":"plan","status":"error"}"#,
                "ORACLE_TWELVEDATA_KEY",
            ),
            (
                200,
                r#"{"code":404,"message":"**symbol** not found: NDX","status":"error"}"#,
                "final: error 404",
            ),
            (
                200,
                r#"{"code":400,"message":"**interval** is invalid","status":"error"}"#,
                "final: error 400",
            ),
            (
                200,
                "<html>Bad gateway</html>",
                "final: not the documented answer",
            ),
            (
                200,
                r#"{"values":[{"datetime":"2023-01-09","close":"-5"}],"status":"ok"}"#,
                "-5",
            ),
            (
                200,
                r#"{"values":[{"datetime":"2023-01-09","close":"abc"}],"status":"ok"}"#,
                "not a number",
            ),
            (
                200,
                r#"{"values":[{"datetime":"2023-01-09","close":"1"},{"datetime":"2023-01-09","close":"2"}],"status":"ok"}"#,
                "two bars",
            ),
            (
                200,
                r#"{"values":[],"status":"pending"}"#,
                "final: status \"pending\"",
            ),
        ] {
            let read = read(status, body);
            assert!(
                matches!(&read, Err(why) if why.contains(says)),
                "{status} {body}: {read:?}"
            );
        }
    }
}
