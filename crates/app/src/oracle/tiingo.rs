//! Tiingo's end-of-day prices as an oracle (`ORACLE=tiingo`, or `tiingo`
//! among a quorum's sources).
//!
//! Tiingo documents the endpoint at
//! <https://api.tiingo.com/documentation/end-of-day> and its authentication
//! at <https://api.tiingo.com/docs/general/connecting>:
//! `GET {base}/tiingo/daily/{ticker}/prices?startDate=…&endDate=…`, the key
//! sent as `Authorization: Token <key>` (Tiingo also takes it as a `token`
//! URL parameter; never used here, so it cannot leak into logs). A 200
//! answer is an array with one object per trading day, `[{"date":
//! "2019-01-02T00:00:00.000Z", "open": …, "high": …, "low": …, "close": …,
//! "volume": …, "adjOpen": …, "adjHigh": …, "adjLow": …, "adjClose": …,
//! "adjVolume": …, "divCash": …, "splitFactor": …}]`, prices as JSON
//! numbers; the raw `close` (not `adjClose`, which later dividends and
//! splits rewrite) is read here exactly, never through a float. An empty
//! array, or days other than the one asked for, means no close yet. An
//! unknown ticker is 404 `{"detail": "Error: Ticker 'XYZ' not found"}`;
//! 401 and 403 are the key; 429 the rate limit and 5xx are worth another
//! attempt, as with Polygon.
//!
//! Tiingo's end-of-day data covers US equities, ETFs and mutual funds, not
//! indices: `ORACLE_TIINGO_SYMBOL` must name an instrument the operator's
//! plan covers, and the same one the other sources quote. Tiingo says
//! most US equity closes are in by 17:30 New York time, with corrections
//! until 20:00: later than the default settle instant (16:05), so alone it
//! needs `CLOSE_FETCH_DELAY_MIN` of 90 or more, and in a quorum it often
//! answers "no close yet" when the others settle.

use async_trait::async_trait;
use chrono::NaiveDate;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use updown_domain::round::Price;

use super::http::{
    authorization, endpoint, exact_price, get, said, Api, Failure, HttpSettings, Provider,
};

/// Tiingo's end-of-day prices.
pub struct Tiingo;

/// Tiingo as an oracle (`ORACLE=tiingo`).
pub type TiingoOracle = Provider<Tiingo>;

/// One day of the documented answer (the fields used).
#[derive(Deserialize)]
struct Bar<'a> {
    date: &'a str,
    #[serde(borrow)]
    close: &'a RawValue,
}

/// The documented error answer, `{"detail": "…"}`.
#[derive(Deserialize)]
struct Detail {
    detail: String,
}

#[async_trait]
impl Api for Tiingo {
    const PROVIDER: &'static str = "tiingo";

    async fn attempt(
        client: &reqwest::Client,
        settings: &HttpSettings,
        date: NaiveDate,
    ) -> Result<Option<Price>, Failure> {
        let url = prices_url(&settings.base_url, &settings.ticker, date)
            .map_err(|why| Failure::Final(format!("ORACLE_TIINGO_URL: {why}")))?;
        let key = authorization("Token", &settings.api_key, "ORACLE_TIINGO_KEY")?;
        let (status, body) = get(client, url, key).await?;
        answer(status, &body, &settings.ticker, date)
    }
}

/// `{base}/tiingo/daily/{ticker}/prices?startDate={date}&endDate={date}`,
/// the ticker encoded as one path segment.
fn prices_url(base: &str, ticker: &str, date: NaiveDate) -> Result<reqwest::Url, String> {
    let day = date.to_string();
    endpoint(
        base,
        &["tiingo", "daily", ticker, "prices"],
        &[("startDate", &day), ("endDate", &day)],
    )
}

/// What an answer says about `date`'s close of `ticker`.
fn answer(
    status: StatusCode,
    body: &[u8],
    ticker: &str,
    date: NaiveDate,
) -> Result<Option<Price>, Failure> {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(Failure::Transient(format!(
            "the provider answered {status}"
        )));
    }
    let detail = || {
        serde_json::from_slice::<Detail>(body)
            .map(|answer| said(&answer.detail))
            .ok()
    };
    match status {
        StatusCode::OK => close_of(body, date).map_err(Failure::Final),
        StatusCode::NOT_FOUND => Err(Failure::Final(match detail() {
            Some(detail) => format!(
                "the provider does not know ticker {ticker:?} ({detail}): check ORACLE_TIINGO_SYMBOL"
            ),
            None => "404 without the provider's detail: is ORACLE_TIINGO_URL right?".into(),
        })),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Failure::Final(format!(
            "the provider refused the key ({status}: {}): check ORACLE_TIINGO_KEY",
            detail().unwrap_or_default()
        ))),
        other => Err(Failure::Final(format!(
            "the provider answered {other}: {}",
            detail().unwrap_or_default()
        ))),
    }
}

/// `date`'s close in a 200 answer, or `None` when it has no bar for the
/// day yet.
fn close_of(body: &[u8], date: NaiveDate) -> Result<Option<Price>, String> {
    let bars: Vec<Bar> = serde_json::from_slice(body).map_err(|e| {
        let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
        format!("not the documented answer ({e}): {start:?}")
    })?;
    let mut found = None;
    for bar in &bars {
        // `2019-01-02T00:00:00.000Z`: the day is the part before the time.
        let day = bar.date.split('T').next().unwrap_or_default();
        let day: NaiveDate = day
            .parse()
            .map_err(|_| format!("bar date {:?} is not a date", bar.date))?;
        if day != date {
            continue;
        }
        if found.is_some() {
            return Err(format!("two bars for {date}"));
        }
        found = Some(bar.close.get());
    }
    found.map(exact_price).transpose()
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
            "QQQ",
            date(),
        ))
    }

    /// One day in the documented shape, with every documented field.
    fn day(date: &str, close: &str) -> String {
        format!(
            r#"{{"date":"{date}T00:00:00.000Z","close":{close},"high":20500.5,"low":20300.25,"open":20400.0,"volume":48765432,"adjClose":20001.123,"adjHigh":20500.5,"adjLow":20300.25,"adjOpen":20400.0,"adjVolume":48765432,"divCash":0.0,"splitFactor":1.0}}"#
        )
    }

    #[test]
    fn the_documented_answer_gives_the_days_raw_close_exactly() {
        let body = format!("[{}]", day("2023-01-09", "20431.987654"));
        assert_eq!(read(200, &body), Ok(Some("20431.987654".into())));
        // Digits a float would lose are kept.
        let body = format!("[{}]", day("2023-01-09", "20431.987654321098765432"));
        assert_eq!(
            read(200, &body),
            Ok(Some("20431.987654321098765432".into()))
        );
        // The day asked for among others.
        let body = format!(
            "[{},{},{}]",
            day("2023-01-06", "1"),
            day("2023-01-09", "312.5"),
            day("2023-01-10", "2")
        );
        assert_eq!(read(200, &body), Ok(Some("312.5".into())));
    }

    #[test]
    fn no_bar_for_the_day_is_no_close_yet() {
        assert_eq!(read(200, "[]"), Ok(None));
        let others = format!("[{},{}]", day("2023-01-06", "1"), day("2023-01-10", "2"));
        assert_eq!(read(200, &others), Ok(None));
    }

    #[test]
    fn errors_are_retried_only_when_asking_again_may_mend_them() {
        let twice = format!("[{},{}]", day("2023-01-09", "1"), day("2023-01-09", "2"));
        let negative = format!("[{}]", day("2023-01-09", "-5"));
        let zero = format!("[{}]", day("2023-01-09", "0"));
        let text = format!("[{}]", day("2023-01-09", r#""abc""#));
        let null = format!("[{}]", day("2023-01-09", "null"));
        for (status, body, says) in [
            (429, "", "transient: the provider answered 429"),
            (500, "", "transient"),
            (503, "<html>down</html>", "transient"),
            (
                404,
                r#"{"detail":"Error: Ticker 'QQQ' not found"}"#,
                r#"final: the provider does not know ticker "QQQ" (Error: Ticker 'QQQ' not found)"#,
            ),
            (404, "<html>nothing here</html>", "final: 404 without"),
            (
                401,
                r#"{"detail":"Invalid token."}"#,
                "final: the provider refused the key (401 Unauthorized: Invalid token.): check ORACLE_TIINGO_KEY",
            ),
            (403, "", "ORACLE_TIINGO_KEY"),
            (
                400,
                r#"{"detail":"Error: startDate is invalid"}"#,
                "final: the provider answered 400 Bad Request: Error: startDate",
            ),
            (200, "<html>Bad gateway</html>", "final: not the documented answer"),
            (
                200,
                r#"{"detail":"Error: Ticker 'QQQ' not found"}"#,
                "final: not the documented answer",
            ),
            (200, r#"[{"date":"2023-01-09T00:00:00.000Z"}]"#, "missing field `close`"),
            (
                200,
                r#"[{"date":"soon","close":1}]"#,
                r#"final: bar date "soon" is not a date"#,
            ),
            (200, &twice, "final: two bars for 2023-01-09"),
            (200, &negative, "final: close -5"),
            (200, &zero, "final: close 0"),
            (200, &text, "not a number"),
            (200, &null, "not a number"),
        ] {
            let read = read(status, body);
            assert!(
                matches!(&read, Err(why) if why.contains(says)),
                "{status} {body}: {read:?}"
            );
        }
    }

    #[test]
    fn the_url_names_the_ticker_and_day_but_never_the_key() {
        let url = prices_url("https://api.tiingo.com/", "BRK.B", date()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.tiingo.com/tiingo/daily/BRK.B/prices?startDate=2023-01-09&endDate=2023-01-09"
        );
        // A base with a path keeps it; a ticker cannot add path segments.
        let url = prices_url("http://127.0.0.1:9/proxy", "A/B", date()).unwrap();
        assert_eq!(url.path(), "/proxy/tiingo/daily/A%2FB/prices");
    }
}
