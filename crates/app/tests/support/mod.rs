//! Test helpers: `TestApp::spawn` is the spawn-app helper: an `App` on a
//! fresh database (SQLite, or PostgreSQL when `TEST_POSTGRES_URL` is set),
//! a manual clock, the mock oracle, and the HTTP API serving it on a port
//! of its own (port 0: the system picks).

#![allow(dead_code)]

pub mod anvil;
pub mod process;
pub mod sse;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use updown_app::clock::ManualClock;
use updown_app::config::Config;
use updown_app::oracle::{MockOracle, Oracle};
use updown_app::services::App;
use updown_app::startup;
use updown_domain::ids::{RoundCode, UserId};
use updown_domain::Micros;
use updown_store::testing::{self, TestDb};
use updown_store::Round;

pub struct TestApp {
    pub app: App,
    pub clock: Arc<ManualClock>,
    /// Where the API answers.
    pub address: std::net::SocketAddr,
    /// Sent by [`TestApp::shut_down`], or dropped with the TestApp: the
    /// server shuts down.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _db: TestDb,
}

/// The engine a story runs on.
pub use updown_store::testing::Engine as Db;

pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// Redis for the stories that need one: required when `TEST_REDIS_URL` is
/// set (CI), else the story says it skipped.
pub fn redis_url(story: &str) -> Option<String> {
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {story} (TEST_REDIS_URL is not set)");
            None
        }
    }
}

/// Polls `check` every 20 ms until it holds; panics after `within`.
pub async fn eventually<F, Fut>(what: &str, within: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sends `request` (a path-only URI) to `address` over a real socket.
pub async fn request(
    address: std::net::SocketAddr,
    request: axum::http::Request<axum::body::Body>,
) -> axum::http::Response<axum::body::Body> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let (mut parts, body) = request.into_parts();
    parts.uri = format!("http://{address}{}", parts.uri).parse().unwrap();
    let client: Client<_, axum::body::Body> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .request(axum::http::Request::from_parts(parts, body))
        .await
        .expect("the server answers");
    response.map(axum::body::Body::new)
}

/// A JSON request with an optional bearer credential; the status and the
/// answer's JSON (null when empty).
pub async fn call(
    address: std::net::SocketAddr,
    method: &str,
    uri: &str,
    body: Option<&str>,
    bearer: Option<&str>,
) -> (axum::http::StatusCode, serde_json::Value) {
    use http_body_util::BodyExt;
    let mut builder = axum::http::Request::builder().method(method).uri(uri);
    if let Some(bearer) = bearer {
        builder = builder.header("authorization", format!("Bearer {bearer}"));
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let body = body
        .map(|b| axum::body::Body::from(b.to_string()))
        .unwrap_or_else(axum::body::Body::empty);
    let response = request(address, builder.body(body).unwrap()).await;
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{uri}: not JSON: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value)
}

pub fn usdc(whole: i64) -> Micros {
    Micros::usdc(whole).unwrap()
}

impl TestApp {
    pub async fn spawn(db: Db, overrides: &[(&str, &str)], now: DateTime<Utc>) -> TestApp {
        Self::spawn_with_oracle(db, overrides, now, Arc::new(MockOracle::default())).await
    }

    pub async fn spawn_with_oracle(
        db: Db,
        overrides: &[(&str, &str)],
        now: DateTime<Utc>,
        oracle: Arc<dyn Oracle>,
    ) -> TestApp {
        Self::spawn_with_timed_oracle(db, overrides, now, |_| oracle).await
    }

    /// With an oracle that reads the test's clock (a quorum times its
    /// sources' answers by it).
    pub async fn spawn_with_timed_oracle(
        db: Db,
        overrides: &[(&str, &str)],
        now: DateTime<Utc>,
        oracle: impl FnOnce(Arc<ManualClock>) -> Arc<dyn Oracle>,
    ) -> TestApp {
        let test_db = match db {
            Db::Sqlite => testing::sqlite().await,
            Db::Postgres => {
                let url = testing::postgres_url("app test").expect("checked by the macro");
                testing::postgres(&url, 16).await
            }
        };
        // Rate limits are off unless a story turns them on: stories send
        // bursts from one address by design.
        let mut settings = vec![
            ("RATE_LIMIT_IP", "off"),
            ("RATE_LIMIT_KEY", "off"),
            ("RATE_LIMIT_SIGN_IN", "off"),
        ];
        settings.extend_from_slice(overrides);
        let config = Config::with(&settings).expect("test config");
        let clock = Arc::new(ManualClock::new(now));
        let oracle = oracle(clock.clone());
        let app = startup::wire(config, test_db.store.clone(), clock.clone(), oracle);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let address = listener.local_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(updown_app::api::serve(app.clone(), listener, async move {
            let _ = stopped.await;
        }));
        TestApp {
            app,
            clock,
            address,
            stop: Some(stop),
            _db: test_db,
        }
    }

    /// Tells the server to stop, as SIGTERM does `serve`.
    pub fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// The test's database, for what no use-case shows (a story checks
    /// the records a use-case wrote).
    pub fn store(&self) -> Arc<dyn updown_store::Store> {
        self._db.store.clone()
    }

    /// Runs `sql` on the test's database behind the service's back, as a
    /// fault or a bad restore would change it.
    pub async fn behind_the_back(&self, sql: &str) {
        updown_store::testing::behind_the_back(&self._db.url, sql).await;
    }

    /// Another instance on the same database and clock, as a second
    /// `serve` process would be (its own caches, batcher and event bus).
    pub fn twin(&self, overrides: &[(&str, &str)]) -> App {
        let mut settings = vec![("RATE_LIMIT_IP", "off"), ("RATE_LIMIT_KEY", "off")];
        settings.extend_from_slice(overrides);
        startup::wire(
            Config::with(&settings).expect("test config"),
            self.store(),
            self.clock.clone(),
            self.app.oracle.clone(),
        )
    }

    pub async fn funded(&self, name: &str, amount: Micros) -> UserId {
        let user = self
            .app
            .create_user(&format!("{name}@example.com"))
            .await
            .unwrap();
        self.app
            .deposit(user.id, amount, &format!("0xfund-{name}"), 0, None)
            .await
            .unwrap();
        user.id
    }

    pub async fn open(&self, code: &str) -> Round {
        self.app
            .open_round(Some(RoundCode::parse(code).unwrap()))
            .await
            .unwrap()
            .0
    }

    pub async fn assert_verified(&self) {
        let report = self.app.verify().await.unwrap();
        assert!(report.ok(), "verify failed: {:?}", report.failures());
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}
