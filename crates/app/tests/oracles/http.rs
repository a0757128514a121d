//! The HTTP oracle against a local stub of Polygon.io's daily open/close
//! API: documented answers, errors, timeouts and garbage; the quorum over
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
use updown_app::oracle::{HttpOracle, HttpSettings, Oracle, QuorumOracle};
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), script)
}

fn oracle(base_url: &str) -> HttpOracle {
    HttpOracle::new(HttpSettings {
        base_url: base_url.to_string(),
        api_key: Secret::new("stub-key"),
        ticker: "I:NDX".into(),
        timeout: Duration::from_millis(300),
        attempts: 3,
        retry_wait: Duration::from_millis(10),
    })
    .unwrap()
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

    // Two that disagree beyond the spread and one failing: an error that
    // says so.
    script(&a, &[Answer::Close("20000")]);
    script(&b, &[Answer::Close("20100")]);
    script(&c, &[Answer::Garbage]);
    let error = quorum.quote(&ndx(), day()).await.unwrap_err().to_string();
    assert!(error.contains("quorum of 2 not reached"), "{error}");
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
