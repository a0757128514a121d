//! The HTTP oracles against local stubs of Polygon.io's daily open/close
//! API, Twelve Data's time series, Tiingo's end-of-day prices and Market
//! Data's index candles:
//! documented answers, errors, timeouts and garbage; the quorum over
//! several stubs; and a round that voids and refunds when the provider
//! talks nonsense until the void instant.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use updown_app::config::Secret;
use updown_app::oracle::{
    HttpOracle, HttpSettings, MarketDataOracle, Oracle, QuorumOracle, TiingoOracle,
    TwelveDataOracle,
};
use updown_domain::ids::Market;
use updown_domain::round::Side;

use crate::support::{at, usdc, Db, TestApp};
use crate::{CODE, MORNING};

/// What the stub answers next.
#[derive(Clone)]
enum Answer {
    Close(&'static str),
    NotFound,
    Status(StatusCode),
    Slow(Duration),
    Garbage,
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    /// Answer once the script runs out.
    otherwise: Mutex<Option<Answer>>,
    requests: Mutex<Vec<(String, String, Option<String>)>>,
}

async fn open_close(
    State(script): State<Arc<Script>>,
    Path((ticker, date)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    script
        .requests
        .lock()
        .unwrap()
        .push((ticker.clone(), date.clone(), auth));
    let next = script.answers.lock().unwrap().pop_front();
    let answer = next.or_else(|| script.otherwise.lock().unwrap().clone());
    match answer.unwrap_or(Answer::NotFound) {
        Answer::Close(close) => (
            StatusCode::OK,
            format!(
                r#"{{"afterHours":1.0,"close":{close},"from":"{date}","high":2.0,"low":1.0,"open":1.5,"preMarket":1.2,"status":"OK","symbol":"{ticker}","volume":100}}"#
            ),
        )
            .into_response(),
        Answer::NotFound => (
            StatusCode::NOT_FOUND,
            r#"{"status":"NOT_FOUND","request_id":"abc","message":"Data not found."}"#,
        )
            .into_response(),
        Answer::Status(status) => (
            status,
            r#"{"status":"ERROR","request_id":"abc","error":"something"}"#,
        )
            .into_response(),
        Answer::Slow(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "{}").into_response()
        }
        Answer::Garbage => (StatusCode::OK, "<html>upstream broke</html>").into_response(),
    }
}

/// A stub server on a port of its own; its base URL and script.
async fn stub() -> (String, Arc<Script>) {
    let script = Arc::new(Script::default());
    let app = axum::Router::new()
        .route(
            "/v1/open-close/{ticker}/{date}",
            axum::routing::get(open_close),
        )
        .with_state(script.clone());
    (listen(app).await, script)
}

/// Serves `app` on a port of its own; its base URL.
async fn listen(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

fn oracle(base_url: &str) -> HttpOracle {
    HttpOracle::new(stub_settings(base_url.to_string(), "stub-key", "I:NDX")).unwrap()
}

fn day() -> NaiveDate {
    "2026-11-24".parse().unwrap()
}

fn ndx() -> Market {
    Market::parse("NDX").unwrap()
}

fn script(script: &Script, answers: &[Answer]) {
    *script.answers.lock().unwrap() = answers.iter().cloned().collect();
    script.requests.lock().unwrap().clear();
}

#[tokio::test]
async fn the_http_oracle_reads_the_documented_answer_and_retries_only_what_may_pass() {
    let (url, stubbed) = stub().await;
    let oracle = oracle(&url);

    script(&stubbed, &[Answer::Close("20111.05")]);
    let close = oracle.close(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(close.to_string(), "20111.05");
    let requests = stubbed.requests.lock().unwrap().clone();
    assert_eq!(
        requests,
        [(
            "I:NDX".to_string(),
            "2026-11-24".to_string(),
            Some("Bearer stub-key".to_string())
        )],
        "the key goes in a header, not the URL"
    );

    // No data for the session yet: no close, and no retry.
    script(&stubbed, &[Answer::NotFound]);
    assert_eq!(oracle.close(&ndx(), day()).await.unwrap(), None);
    assert_eq!(stubbed.requests.lock().unwrap().len(), 1);

    // Transient failures are retried: a 500, a 429 and a timeout, then
    // the close.
    script(
        &stubbed,
        &[
            Answer::Status(StatusCode::INTERNAL_SERVER_ERROR),
            Answer::Status(StatusCode::TOO_MANY_REQUESTS),
            Answer::Close("20000"),
        ],
    );
    assert_eq!(
        oracle
            .close(&ndx(), day())
            .await
            .unwrap()
            .unwrap()
            .to_string(),
        "20000"
    );
    assert_eq!(stubbed.requests.lock().unwrap().len(), 3);
    script(
        &stubbed,
        &[
            Answer::Slow(Duration::from_secs(2)),
            Answer::Slow(Duration::from_secs(2)),
            Answer::Slow(Duration::from_secs(2)),
        ],
    );
    let started = std::time::Instant::now();
    let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
    assert!(
        error.contains("3 attempts failed") && error.contains("timed out"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "each attempt is cut at its timeout"
    );

    // What asking again will not mend fails at once.
    for (answer, says) in [
        (Answer::Status(StatusCode::UNAUTHORIZED), "ORACLE_API_KEY"),
        (Answer::Garbage, "not the documented answer"),
        (Answer::Close("-3"), "-3"),
        (Answer::Close("\"soon\""), "not a number"),
    ] {
        script(&stubbed, &[answer]);
        let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
        assert_eq!(stubbed.requests.lock().unwrap().len(), 1, "{error}");
    }

    // Nothing listening at all.
    let gone = self::oracle("http://127.0.0.1:1");
    let error = gone.close(&ndx(), day()).await.unwrap_err().to_string();
    assert!(error.contains("could not connect"), "{error}");
}

#[tokio::test]
async fn the_quorum_gives_the_median_of_agreeing_sources_and_nothing_otherwise() {
    let (a_url, a) = stub().await;
    let (b_url, b) = stub().await;
    let (c_url, c) = stub().await;
    let sources: Vec<Arc<dyn Oracle>> = [&a_url, &b_url, &c_url]
        .iter()
        .map(|url| Arc::new(oracle(url)) as Arc<dyn Oracle>)
        .collect();
    let quorum = QuorumOracle::new(sources, 2, 10);

    script(&a, &[Answer::Close("20000.00")]);
    script(&b, &[Answer::Close("20001.00")]);
    script(&c, &[Answer::Close("25000")]);
    let quote = quorum.quote(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(quote.price.to_string(), "20001");
    assert!(
        quote.source.starts_with("quorum 2/3: polygon:127.0.0.1"),
        "{}",
        quote.source
    );

    // One close and two without data: no price, and no error.
    script(&a, &[Answer::Close("20000")]);
    script(&b, &[Answer::NotFound]);
    script(&c, &[Answer::NotFound]);
    assert_eq!(quorum.quote(&ndx(), day()).await.unwrap(), None);

    // Two that disagree beyond the spread and one failing: a
    // disagreement, with every answer (the failure's too) for the report.
    script(&a, &[Answer::Close("20000")]);
    script(&b, &[Answer::Close("20100")]);
    script(&c, &[Answer::Garbage]);
    let asked = quorum.ask(&ndx(), day()).await.unwrap();
    assert!(asked.disagreement && asked.quote.is_none());
    let told: Vec<(Option<String>, bool)> = asked
        .answers
        .iter()
        .map(|a| (a.close.map(|c| c.to_string()), a.error.is_some()))
        .collect();
    assert_eq!(
        told,
        [
            (Some("20000".to_string()), false),
            (Some("20100".to_string()), false),
            (None, true)
        ]
    );

    // Too few closes with failures among the rest: an error that says so.
    script(&a, &[Answer::Close("20000")]);
    script(&b, &[Answer::Garbage]);
    script(&c, &[Answer::NotFound]);
    let error = quorum.quote(&ndx(), day()).await.unwrap_err().to_string();
    assert!(error.contains("quorum of 2 not reached"), "{error}");
}

/// A provider's stub: answers scripted (status, body) pairs, then its
/// "no data" answer once they run out, and records each request's path,
/// query and Authorization header.
struct Scripted {
    answers: Mutex<VecDeque<(StatusCode, String)>>,
    requests: Mutex<Vec<Seen>>,
    no_data: &'static str,
}

#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: String,
    auth: Option<String>,
}

impl Scripted {
    /// Answers these next, with no request seen yet.
    fn answer(&self, answers: Vec<(StatusCode, String)>) {
        *self.answers.lock().unwrap() = answers.into();
        self.requests.lock().unwrap().clear();
    }

    fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }
}

async fn scripted(
    State(stub): State<Arc<Scripted>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    stub.requests.lock().unwrap().push(Seen {
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string()),
    });
    let next = stub.answers.lock().unwrap().pop_front();
    next.unwrap_or((StatusCode::OK, stub.no_data.to_string()))
        .into_response()
}

/// A scripted stub serving `route`; its base URL.
async fn serve_scripted(route: &str, no_data: &'static str) -> (String, Arc<Scripted>) {
    let stub = Arc::new(Scripted {
        answers: Mutex::default(),
        requests: Mutex::default(),
        no_data,
    });
    let app = axum::Router::new()
        .route(route, axum::routing::get(scripted))
        .with_state(stub.clone());
    (listen(app).await, stub)
}

/// A provider's settings for a stub, with short timeouts and waits.
fn stub_settings(base_url: String, key: &str, ticker: &str) -> HttpSettings {
    HttpSettings {
        base_url,
        api_key: Secret::new(key),
        ticker: ticker.into(),
        timeout: Duration::from_millis(300),
        attempts: 3,
        retry_wait: Duration::from_millis(10),
    }
}

async fn twelvedata_stub() -> (TwelveDataOracle, Arc<Scripted>) {
    let (url, series) = serve_scripted(
        "/time_series",
        r#"{"code":400,"message":"No data is available on the specified dates.","status":"error"}"#,
    )
    .await;
    let oracle = TwelveDataOracle::new(stub_settings(url, "twelve-key", "NDX")).unwrap();
    (oracle, series)
}

/// A day's bar in Twelve Data's documented shape, with the next day's.
fn bar(close: &str) -> (StatusCode, String) {
    (
        StatusCode::OK,
        format!(
            r#"{{"meta":{{"symbol":"NDX","interval":"1day","currency":"USD","exchange_timezone":"America/New_York","exchange":"NASDAQ","mic_code":"XNGS","type":"Index"}},"values":[{{"datetime":"2026-11-24","open":"1","high":"2","low":"1","close":"{close}","volume":"0"}},{{"datetime":"2026-11-25","open":"1","high":"2","low":"1","close":"99999","volume":"0"}}],"status":"ok"}}"#
        ),
    )
}

#[tokio::test]
async fn twelvedata_reads_the_days_bar_with_the_key_in_a_header() {
    let (oracle, series) = twelvedata_stub().await;
    series.answer(vec![
        // The documented rate-limit error, then a 503: both retried.
        (
            StatusCode::OK,
            r#"{"code":429,"message":"You have run out of API credits for the current minute.","status":"error"}"#.to_string(),
        ),
        (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string()),
        bar("20111.050000001"),
    ]);
    let close = oracle.close(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(close.to_string(), "20111.050000001");
    let requests = series.requests();
    assert_eq!(requests.len(), 3);
    for seen in &requests {
        assert_eq!(seen.path, "/time_series");
        assert_eq!(
            seen.query,
            "symbol=NDX&interval=1day&start_date=2026-11-24&end_date=2026-11-25&order=asc"
        );
        assert_eq!(seen.auth.as_deref(), Some("apikey twelve-key"));
    }
    assert!(oracle.name().starts_with("twelvedata:127.0.0.1"));

    // No data for the day yet: no close, no error, one request.
    series.answer(Vec::new());
    assert_eq!(oracle.close(&ndx(), day()).await.unwrap(), None);
    assert_eq!(series.requests().len(), 1);

    // A refused key fails at once and says which variable.
    series.answer(vec![(
        StatusCode::OK,
        r#"{"code":401,"message":"**apikey** parameter is incorrect or not specified.","status":"error"}"#.to_string(),
    )]);
    let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
    assert!(error.contains("ORACLE_TWELVEDATA_KEY"), "{error}");
    assert_eq!(series.requests().len(), 1);
}

/// Polygon and Twelve Data in one quorum: they agree, and the close's
/// source names both.
#[tokio::test]
async fn a_quorum_of_two_providers_settles_on_what_they_agree() {
    let (polygon_url, polygon) = stub().await;
    let (twelve, series) = twelvedata_stub().await;
    let quorum = QuorumOracle::new(
        vec![Arc::new(oracle(&polygon_url)), Arc::new(twelve)],
        2,
        10,
    );
    script(&polygon, &[Answer::Close("20000.00")]);
    series.answer(vec![bar("20001.00")]);
    let quote = quorum.quote(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(quote.price.to_string(), "20000");
    assert!(
        quote.source.contains("polygon:127.0.0.1") && quote.source.contains("twelvedata:127.0.0.1"),
        "{}",
        quote.source
    );
    // Beyond the spread: no close, and a disagreement (which the service
    // reports: a round waits).
    script(&polygon, &[Answer::Close("20000")]);
    series.answer(vec![bar("20100")]);
    let asked = quorum.ask(&ndx(), day()).await.unwrap();
    assert!(asked.quote.is_none() && asked.disagreement);
    // One source without data is not a disagreement.
    script(&polygon, &[Answer::Close("20000")]);
    let asked = quorum.ask(&ndx(), day()).await.unwrap();
    assert!(asked.quote.is_none() && !asked.disagreement);
}

async fn tiingo_stub() -> (TiingoOracle, Arc<Scripted>) {
    let (url, prices) = serve_scripted("/tiingo/daily/{ticker}/prices", "[]").await;
    let oracle = TiingoOracle::new(stub_settings(url, "tiingo-key", "QQQ")).unwrap();
    (oracle, prices)
}

/// A 200 answer in Tiingo's documented shape: one day, its raw close.
fn tiingo_day(date: &str, close: &str) -> (StatusCode, String) {
    (
        StatusCode::OK,
        format!(
            r#"[{{"date":"{date}T00:00:00.000Z","close":{close},"high":2.5,"low":1.25,"open":2.0,"volume":1234567,"adjClose":1.75,"adjHigh":2.5,"adjLow":1.25,"adjOpen":2.0,"adjVolume":1234567,"divCash":0.0,"splitFactor":1.0}}]"#
        ),
    )
}

#[tokio::test]
async fn tiingo_reads_the_days_raw_close_with_the_key_in_a_header() {
    let (oracle, prices) = tiingo_stub().await;
    let answers = |answers: Vec<(StatusCode, String)>| prices.answer(answers);
    // The rate limit and a 5xx are retried, then the day's close.
    answers(vec![
        (StatusCode::TOO_MANY_REQUESTS, "slow down".into()),
        (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>".into()),
        tiingo_day("2026-11-24", "20431.987654321098765"),
    ]);
    let close = oracle.close(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(close.to_string(), "20431.987654321098765");
    let requests = prices.requests();
    assert_eq!(requests.len(), 3);
    for seen in &requests {
        assert_eq!(seen.path, "/tiingo/daily/QQQ/prices");
        assert_eq!(seen.query, "startDate=2026-11-24&endDate=2026-11-24");
        assert_eq!(seen.auth.as_deref(), Some("Token tiingo-key"));
    }
    assert!(oracle.name().starts_with("tiingo:127.0.0.1"));

    // No data for the day yet (an empty array, or only another day): no
    // close, no error, one request.
    for answer in [
        (StatusCode::OK, "[]".to_string()),
        tiingo_day("2026-11-23", "1"),
    ] {
        answers(vec![answer]);
        assert_eq!(oracle.close(&ndx(), day()).await.unwrap(), None);
        assert_eq!(prices.requests().len(), 1);
    }

    // What asking again will not mend fails at once, and says what to fix.
    for (status, body, says) in [
        (
            StatusCode::NOT_FOUND,
            r#"{"detail":"Error: Ticker 'QQQ' not found"}"#,
            "ticker \"QQQ\"",
        ),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"detail":"Invalid token."}"#,
            "ORACLE_TIINGO_KEY",
        ),
        (
            StatusCode::OK,
            r#"{"detail":"odd"}"#,
            "not the documented answer",
        ),
    ] {
        answers(vec![(status, body.to_string())]);
        let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
        assert_eq!(prices.requests().len(), 1, "{error}");
    }

    // A provider down for every attempt: an error after the last.
    answers(vec![(StatusCode::SERVICE_UNAVAILABLE, String::new()); 3]);
    let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
    assert!(error.contains("3 attempts failed"), "{error}");
    assert_eq!(prices.requests().len(), 3);
}

/// Polygon, Twelve Data and Tiingo in one quorum of two: when all three
/// agree the close's source names all three; a source quoting something
/// else is left out.
#[tokio::test]
async fn a_quorum_of_three_providers_settles_on_what_they_agree_and_names_them() {
    let (polygon_url, polygon) = stub().await;
    let (twelve, series) = twelvedata_stub().await;
    let (tiingo, prices) = tiingo_stub().await;
    let quorum = QuorumOracle::new(
        vec![
            Arc::new(oracle(&polygon_url)),
            Arc::new(twelve),
            Arc::new(tiingo),
        ],
        2,
        10,
    );
    script(&polygon, &[Answer::Close("20000.00")]);
    series.answer(vec![bar("20001.00")]);
    prices.answer(vec![tiingo_day("2026-11-24", "20000.50")]);
    let quote = quorum.quote(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(quote.price.to_string(), "20000.5", "the median");
    assert!(
        quote.source.starts_with("quorum 3/3: ")
            && [
                "polygon:127.0.0.1",
                "twelvedata:127.0.0.1",
                "tiingo:127.0.0.1"
            ]
            .iter()
            .all(|name| quote.source.contains(name)),
        "{}",
        quote.source
    );
    // Tiingo quoting another instrument (an ETF, not the index): the two
    // that agree settle it, and Tiingo is not named.
    script(&polygon, &[Answer::Close("20000.00")]);
    series.answer(vec![bar("20001.00")]);
    prices.answer(vec![tiingo_day("2026-11-24", "487.12")]);
    let quote = quorum.quote(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(quote.price.to_string(), "20000");
    assert!(
        quote.source.starts_with("quorum 2/3: ") && !quote.source.contains("tiingo"),
        "{}",
        quote.source
    );
}

async fn marketdata_stub() -> (MarketDataOracle, Arc<Scripted>) {
    let (url, candles) =
        serve_scripted("/v1/indices/candles/D/{symbol}", r#"{"s":"no_data"}"#).await;
    let oracle = MarketDataOracle::new(stub_settings(url, "marketdata-key", "NDX")).unwrap();
    (oracle, candles)
}

/// A 200 answer in Market Data's documented shape: 2026-11-24's candle
/// (its time the day's start in New York) and the next day's.
fn candle(close: &str) -> (StatusCode, String) {
    (
        StatusCode::OK,
        format!(
            r#"{{"s":"ok","c":[{close},99999],"h":[2.5,2.5],"l":[1.25,1.25],"o":[2.0,2.0],"t":[1795496400,1795582800]}}"#
        ),
    )
}

#[tokio::test]
async fn marketdata_reads_the_days_index_close_with_the_key_in_a_header() {
    let (oracle, candles) = marketdata_stub().await;
    let answers = |answers: Vec<(StatusCode, String)>| candles.answer(answers);
    // The rate limit and a 5xx are retried, then the day's close.
    answers(vec![
        (StatusCode::TOO_MANY_REQUESTS, "slow down".into()),
        (StatusCode::BAD_GATEWAY, "<html>bad gateway</html>".into()),
        candle("20431.987654321098765"),
    ]);
    let close = oracle.close(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(close.to_string(), "20431.987654321098765");
    let requests = candles.requests();
    assert_eq!(requests.len(), 3);
    for seen in &requests {
        assert_eq!(seen.path, "/v1/indices/candles/D/NDX");
        assert_eq!(seen.query, "from=2026-11-24&to=2026-11-25");
        assert_eq!(seen.auth.as_deref(), Some("Bearer marketdata-key"));
    }
    assert!(oracle.name().starts_with("marketdata:127.0.0.1"));

    // No data for the day yet (the documented 404 `no_data`, or only the
    // day before): no close, no error, one request.
    for answer in [
        (
            StatusCode::NOT_FOUND,
            r#"{"s":"no_data","nextTime":null,"prevTime":null}"#.to_string(),
        ),
        (
            StatusCode::OK,
            r#"{"s":"ok","c":[1],"h":[1],"l":[1],"o":[1],"t":[1795410000]}"#.to_string(),
        ),
    ] {
        answers(vec![answer]);
        assert_eq!(oracle.close(&ndx(), day()).await.unwrap(), None);
        assert_eq!(candles.requests().len(), 1);
    }

    // What asking again will not mend fails at once, and says what to fix.
    for (status, body, says) in [
        (
            StatusCode::NOT_FOUND,
            r#"{"s":"error","errmsg":"Invalid symbol."}"#,
            "ORACLE_MARKETDATA_SYMBOL",
        ),
        (
            StatusCode::UNAUTHORIZED,
            r#"{"s":"error","errmsg":"Invalid token."}"#,
            "ORACLE_MARKETDATA_KEY",
        ),
        (
            StatusCode::PAYMENT_REQUIRED,
            r#"{"s":"error","errmsg":"Upgrade."}"#,
            "plan does not cover",
        ),
        (StatusCode::OK, "[1,2,3]", "not the documented answer"),
    ] {
        answers(vec![(status, body.to_string())]);
        let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
        assert!(error.contains(says), "{error}");
        assert_eq!(candles.requests().len(), 1, "{error}");
    }

    // A provider down for every attempt: an error after the last.
    answers(vec![(StatusCode::SERVICE_UNAVAILABLE, String::new()); 3]);
    let error = oracle.close(&ndx(), day()).await.unwrap_err().to_string();
    assert!(error.contains("3 attempts failed"), "{error}");
    assert_eq!(candles.requests().len(), 3);
}

/// Three independent sources of the index itself (Polygon, Twelve Data,
/// Market Data): all three agree and are named; one wrong beyond the
/// spread is outvoted with a quorum of two and holds the close back with
/// a quorum of three.
#[tokio::test]
async fn three_index_sources_settle_when_enough_agree() {
    let sources = || async {
        let (polygon_url, polygon) = stub().await;
        let (twelve, series) = twelvedata_stub().await;
        let (marketdata, candles) = marketdata_stub().await;
        let oracles: Vec<Arc<dyn Oracle>> = vec![
            Arc::new(oracle(&polygon_url)),
            Arc::new(twelve),
            Arc::new(marketdata),
        ];
        (oracles, polygon, series, candles)
    };
    let (oracles, polygon, series, candles) = sources().await;
    let quorum = QuorumOracle::new(oracles, 2, 10);
    script(&polygon, &[Answer::Close("20000.00")]);
    series.answer(vec![bar("20001.00")]);
    candles.answer(vec![candle("20000.50")]);
    let quote = quorum.quote(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(quote.price.to_string(), "20000.5", "the median");
    assert!(
        quote.source.starts_with("quorum 3/3: ")
            && [
                "polygon:127.0.0.1",
                "twelvedata:127.0.0.1",
                "marketdata:127.0.0.1"
            ]
            .iter()
            .all(|name| quote.source.contains(name)),
        "{}",
        quote.source
    );

    // Market Data wrong by 1%, beyond 10 bps: the two that agree settle.
    script(&polygon, &[Answer::Close("20000.00")]);
    series.answer(vec![bar("20001.00")]);
    candles.answer(vec![candle("20200")]);
    let quote = quorum.quote(&ndx(), day()).await.unwrap().unwrap();
    assert_eq!(quote.price.to_string(), "20001");
    assert!(
        quote.source.starts_with("quorum 2/3: ") && !quote.source.contains("marketdata"),
        "{}",
        quote.source
    );

    // The same answers with all three required: no close, a disagreement.
    let (oracles, polygon, series, candles) = sources().await;
    let all_three = QuorumOracle::new(oracles, 3, 10);
    script(&polygon, &[Answer::Close("20000.00")]);
    series.answer(vec![bar("20001.00")]);
    candles.answer(vec![candle("20200")]);
    let asked = all_three.ask(&ndx(), day()).await.unwrap();
    assert!(asked.quote.is_none() && asked.disagreement, "{asked:?}");
    assert_eq!(asked.answers.len(), 3);
}

pub async fn a_provider_talking_nonsense_until_the_void_instant_voids_and_refunds(db: Db) {
    let (url, stubbed) = stub().await;
    *stubbed.otherwise.lock().unwrap() = Some(Answer::Garbage);
    let t = TestApp::spawn_with_oracle(db, &[], at(MORNING), Arc::new(oracle(&url))).await;
    assert_eq!(t.app.scheduler_step().await.unwrap().opened, [CODE]);
    let ann = t.funded("ann", usdc(10)).await;
    t.app
        .place_bet(ann, Side::Up, usdc(4), None, None)
        .await
        .unwrap();
    let round = t.app.round(crate::code()).await.unwrap();

    t.clock.set(round.terms.settle_at);
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.waiting.len(), 1, "{tick:?}");
    assert!(
        tick.waiting[0].1.contains("not the documented answer"),
        "{tick:?}"
    );
    t.clock.set(round.terms.void_at);
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.voided, [CODE], "{tick:?}");
    assert_eq!(
        t.app.balance(ann).await.unwrap(),
        usdc(10),
        "refunded in full"
    );
    t.assert_verified().await;
}
