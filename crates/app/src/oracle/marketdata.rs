//! Market Data's index candles as an oracle (`ORACLE=marketdata`, or
//! `marketdata` among a quorum's sources).
//!
//! Market Data documents the endpoint at
//! <https://www.marketdata.app/docs/api/indices/candles>, its
//! authentication at <https://www.marketdata.app/docs/api/authentication>
//! and its status codes at
//! <https://www.marketdata.app/docs/api/troubleshooting/http-status-codes>:
//! `GET {base}/v1/indices/candles/D/{symbol}?from=…&to=…`, the symbol
//! without a prefix (`NDX`, not `^NDX` or `I:NDX`), the key sent as
//! `Authorization: Bearer <token>` (Market Data also takes it as a `token`
//! URL parameter; never used here, so it cannot leak into logs). A 200
//! (or 203, the same answer from its cache) is columns of numbers,
//! `{"s": "ok", "o": […], "h": […], "l": […], "c": […], "t": […]}`, one
//! entry per candle; `t` is the candle's time in Unix seconds, for a
//! daily candle the start of its day in New York (the documented example's
//! 1659326400 is 2022-08-01 00:00 EDT). The close `c` is read exactly from
//! the JSON text, never through a float. `{"s": "no_data"}` (documented
//! with a 404, "no data exists for the requested symbol or time period")
//! means no close yet; `{"s": "error", "errmsg": "…"}` is an error. 401 is
//! the key, 402 a plan that does not cover the data; 429 (the rate limit)
//! and 5xx are worth another attempt, as with Polygon.
//!
//! Nothing in an answer marks a day's candle final: asked while the index
//! still moves, `c` is its latest value. The round's settle instant
//! (`CLOSE_FETCH_DELAY_MIN` after the close) is when it is asked; in a
//! quorum the others must agree within the spread, and the hourly
//! revision check reports a close that changed later.
//!
//! The day is asked as `from={date}&to={next day}`, and only the candle
//! whose day is `date` is read, so the answer is the same whether `to` is
//! inclusive or not. Which indices a plan covers is Market Data's to say:
//! the operator checks that theirs covers the round's market.

use async_trait::async_trait;
use chrono::{NaiveDate, TimeZone};
use chrono_tz::America::New_York;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use updown_domain::round::Price;

use super::http::{
    authorization, endpoint, exact_price, get, said, Api, Failure, HttpSettings, Provider,
};

/// Market Data's index candles.
pub struct MarketData;

/// Market Data as an oracle (`ORACLE=marketdata`).
pub type MarketDataOracle = Provider<MarketData>;

/// The documented answer (the fields used): its status, and for `ok` the
/// closes and times, column by column.
#[derive(Deserialize)]
struct Candles<'a> {
    s: &'a str,
    errmsg: Option<String>,
    #[serde(borrow)]
    c: Option<Vec<&'a RawValue>>,
    t: Option<Vec<i64>>,
}

#[async_trait]
impl Api for MarketData {
    const PROVIDER: &'static str = "marketdata";

    async fn attempt(
        client: &reqwest::Client,
        settings: &HttpSettings,
        date: NaiveDate,
    ) -> Result<Option<Price>, Failure> {
        let url = candles_url(&settings.base_url, &settings.ticker, date)
            .map_err(|why| Failure::Final(format!("ORACLE_MARKETDATA_URL: {why}")))?;
        let key = authorization("Bearer", &settings.api_key, "ORACLE_MARKETDATA_KEY")?;
        let (status, body) = get(client, url, key).await?;
        answer(status, &body, &settings.ticker, date)
    }
}

/// `{base}/v1/indices/candles/D/{symbol}?from={date}&to={next day}`, the
/// symbol encoded as one path segment.
fn candles_url(base: &str, symbol: &str, date: NaiveDate) -> Result<reqwest::Url, String> {
    let next = date.succ_opt().ok_or("no day after the date asked")?;
    endpoint(
        base,
        &["v1", "indices", "candles", "D", symbol],
        &[("from", &date.to_string()), ("to", &next.to_string())],
    )
}

/// What an answer says about `date`'s close of `symbol`.
fn answer(
    status: StatusCode,
    body: &[u8],
    symbol: &str,
    date: NaiveDate,
) -> Result<Option<Price>, Failure> {
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        return Err(Failure::Transient(format!(
            "the provider answered {status}"
        )));
    }
    let documented = serde_json::from_slice::<Candles>(body);
    let errmsg = || {
        documented
            .as_ref()
            .ok()
            .and_then(|answer| answer.errmsg.as_deref().map(said))
            .unwrap_or_default()
    };
    match status {
        StatusCode::OK | StatusCode::NON_AUTHORITATIVE_INFORMATION => {
            let answer = documented.map_err(|e| {
                let start = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
                Failure::Final(format!("not the documented answer ({e}): {start:?}"))
            })?;
            match answer.s {
                "ok" => close_of(&answer, date).map_err(Failure::Final),
                "no_data" => Ok(None),
                other => Err(Failure::Final(format!(
                    "status {:?}: {}",
                    said(other),
                    said(answer.errmsg.as_deref().unwrap_or_default())
                ))),
            }
        }
        StatusCode::NOT_FOUND => match &documented {
            Ok(answer) if answer.s == "no_data" => Ok(None),
            Ok(answer) => Err(Failure::Final(format!(
                "the provider knows no index {symbol:?} ({}): check ORACLE_MARKETDATA_SYMBOL",
                said(answer.errmsg.as_deref().unwrap_or(answer.s))
            ))),
            Err(_) => Err(Failure::Final(
                "404 without the provider's answer: is ORACLE_MARKETDATA_URL right?".into(),
            )),
        },
        StatusCode::UNAUTHORIZED => Err(Failure::Final(format!(
            "the provider refused the key ({status}: {}): check ORACLE_MARKETDATA_KEY",
            errmsg()
        ))),
        StatusCode::PAYMENT_REQUIRED => Err(Failure::Final(format!(
            "the key's plan does not cover index {symbol:?} on this day ({status}: {})",
            errmsg()
        ))),
        other => Err(Failure::Final(format!(
            "the provider answered {other}: {}",
            errmsg()
        ))),
    }
}

/// `date`'s close in an `ok` answer, or `None` when it has no candle for
/// the day yet.
fn close_of(answer: &Candles, date: NaiveDate) -> Result<Option<Price>, String> {
    let (Some(closes), Some(times)) = (&answer.c, &answer.t) else {
        return Err("an ok answer without its columns c and t".into());
    };
    if closes.len() != times.len() {
        return Err(format!("{} closes for {} times", closes.len(), times.len()));
    }
    let mut found = None;
    for (close, time) in closes.iter().zip(times) {
        if candle_day(*time)? != date {
            continue;
        }
        if found.is_some() {
            return Err(format!("two candles for {date}"));
        }
        found = Some(close.get());
    }
    found.map(exact_price).transpose()
}

/// The day a daily candle's time starts: midnight in New York, as the
/// documented example stamps it, or midnight UTC (no instant is both, so
/// the day is never in doubt, and a change of convention on Market Data's
/// side does not silence the source); any other time is not a daily
/// candle.
fn candle_day(time: i64) -> Result<NaiveDate, String> {
    let not_daily = || format!("candle time {time} is not the start of a day");
    let instant = chrono::DateTime::from_timestamp(time, 0).ok_or_else(not_daily)?;
    let local = New_York.from_utc_datetime(&instant.naive_utc());
    if local.time() == chrono::NaiveTime::MIN {
        return Ok(local.date_naive());
    }
    if instant.time() == chrono::NaiveTime::MIN {
        return Ok(instant.date_naive());
    }
    Err(not_daily())
}

#[cfg(test)]
mod tests {
    use super::super::http::told;
    use super::*;

    fn date() -> NaiveDate {
        "2023-01-09".parse().unwrap()
    }

    /// 2023-01-09 00:00 in New York (EST).
    const JAN_9: i64 = 1_673_240_400;
    const DAY: i64 = 86_400;

    fn read(status: u16, body: &str) -> Result<Option<String>, String> {
        told(answer(
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
            "NDX",
            date(),
        ))
    }

    /// An `ok` answer in the documented shape, with every documented field.
    fn candles(days: &[(i64, &str)]) -> String {
        let column =
            |f: &dyn Fn(&(i64, &str)) -> String| days.iter().map(f).collect::<Vec<_>>().join(",");
        format!(
            r#"{{"s":"ok","c":[{}],"h":[{}],"l":[{}],"o":[{}],"t":[{}]}}"#,
            column(&|(_, close)| close.to_string()),
            column(&|_| "20500.5".into()),
            column(&|_| "20300.25".into()),
            column(&|_| "20400".into()),
            column(&|(time, _)| time.to_string()),
        )
    }

    #[test]
    fn the_documented_answer_gives_the_days_close_exactly() {
        // The documentation's own example: 2022-08-01's close is 22.84.
        let documented = r#"{
          "s":"ok",
          "c":[22.84,23.93,21.95,21.44,21.15],
          "h":[23.27,24.68,23.92,22.66,22.58],
          "l":[22.26,22.67,21.68,21.44,20.76],
          "o":[22.41,24.08,23.86,22.06,21.5],
          "t":[1659326400,1659412800,1659499200,1659585600,1659672000]
        }"#;
        let day = |d: &str| d.parse::<NaiveDate>().unwrap();
        let read_day = |d| answer(StatusCode::OK, documented.as_bytes(), "VIX", day(d));
        assert!(matches!(read_day("2022-08-01"), Ok(Some(p)) if p.to_string() == "22.84"));
        assert!(matches!(read_day("2022-08-05"), Ok(Some(p)) if p.to_string() == "21.15"));
        assert!(matches!(read_day("2022-08-08"), Ok(None)));

        assert_eq!(
            read(200, &candles(&[(JAN_9, "20431.987654321098765432")])),
            Ok(Some("20431.987654321098765432".into())),
            "digits a float would lose are kept"
        );
        // 203 is the same answer from Market Data's cache.
        assert_eq!(
            read(203, &candles(&[(JAN_9, "312.5")])),
            Ok(Some("312.5".into()))
        );
        // The day asked for among others (an inclusive `to`), and a
        // candle stamped at midnight UTC instead of New York.
        let around = candles(&[(JAN_9 - 3 * DAY, "1"), (JAN_9, "312.5"), (JAN_9 + DAY, "2")]);
        assert_eq!(read(200, &around), Ok(Some("312.5".into())));
        let utc_midnight = candles(&[(JAN_9 - 5 * 3600, "7")]);
        assert_eq!(read(200, &utc_midnight), Ok(Some("7".into())));
    }

    #[test]
    fn no_candle_for_the_day_is_no_close_yet() {
        assert_eq!(read(200, r#"{"s":"no_data"}"#), Ok(None));
        assert_eq!(
            read(404, r#"{"s":"no_data","nextTime":null,"prevTime":null}"#),
            Ok(None)
        );
        assert_eq!(
            read(
                404,
                r#"{"s":"no_data","errmsg":"Market closed on this date."}"#
            ),
            Ok(None)
        );
        assert_eq!(read(200, &candles(&[(JAN_9 - 3 * DAY, "1")])), Ok(None));
        assert_eq!(read(200, r#"{"s":"ok","c":[],"t":[]}"#), Ok(None));
        assert_eq!(
            read(200, r#"{"s":"ok"}"#),
            Err("final: an ok answer without its columns c and t".into())
        );
    }

    #[test]
    fn errors_are_retried_only_when_asking_again_may_mend_them() {
        let twice = candles(&[(JAN_9, "1"), (JAN_9, "2")]);
        let negative = candles(&[(JAN_9, "-5")]);
        let zero = candles(&[(JAN_9, "0")]);
        let text = candles(&[(JAN_9, r#""abc""#)]);
        let null = candles(&[(JAN_9, "null")]);
        let noon = candles(&[(JAN_9 + 12 * 3600, "1")]);
        for (status, body, says) in [
            (429, "", "transient: the provider answered 429"),
            (500, "", "transient"),
            (503, "<html>down</html>", "transient"),
            (
                404,
                r#"{"s":"error","errmsg":"Invalid symbol."}"#,
                r#"final: the provider knows no index "NDX" (Invalid symbol.): check ORACLE_MARKETDATA_SYMBOL"#,
            ),
            (404, "<html>nothing here</html>", "final: 404 without"),
            (
                401,
                r#"{"s":"error","errmsg":"Invalid token."}"#,
                "final: the provider refused the key (401 Unauthorized: Invalid token.): check ORACLE_MARKETDATA_KEY",
            ),
            (
                402,
                r#"{"s":"error","errmsg":"Upgrade your plan."}"#,
                r#"final: the key's plan does not cover index "NDX" on this day (402 Payment Required: Upgrade your plan.)"#,
            ),
            (
                400,
                r#"{"s":"error","errmsg":"Invalid date."}"#,
                "final: the provider answered 400 Bad Request: Invalid date.",
            ),
            (
                200,
                r#"{"s":"error","errmsg":"Something broke."}"#,
                r#"final: status "error": Something broke."#,
            ),
            (200, "<html>Bad gateway</html>", "final: not the documented answer"),
            (200, r#"[1,2]"#, "final: not the documented answer"),
            (200, r#"{"s":"ok","c":[1],"t":[]}"#, "final: 1 closes for 0 times"),
            (200, r#"{"s":"ok","c":[1],"t":["soon"]}"#, "final: not the documented answer"),
            (200, &noon, "is not the start of a day"),
            (200, &twice, "final: two candles for 2023-01-09"),
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
    fn the_url_names_the_symbol_and_the_days() {
        let url = candles_url("https://api.marketdata.app/", "NDX", date()).unwrap();
        assert_eq!(
            url.as_str(),
            "https://api.marketdata.app/v1/indices/candles/D/NDX?from=2023-01-09&to=2023-01-10"
        );
        // A base with a path keeps it; a symbol cannot add path segments.
        let url = candles_url("http://127.0.0.1:9/proxy", "A/B", date()).unwrap();
        assert_eq!(url.path(), "/proxy/v1/indices/candles/D/A%2FB");
    }
}
