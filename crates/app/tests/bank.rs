//! The bank test, after Jepsen's: money moves exactly once while the
//! service crashes. Two real `updown serve` processes share a scratch
//! PostgreSQL cluster of the test's own. Funded players bet, cancel and
//! withdraw through concurrent clients for about a minute, every request
//! with an `Idempotency-Key` and a random client timeout, while a nemesis
//! SIGKILLs and restarts the serves, crashes PostgreSQL (`pg_ctl stop -m
//! immediate`) and pauses it (SIGSTOP) for longer than serve's request
//! timeout. Every request is journaled with what its client learnt:
//! acknowledged, refused (a definite no), or indeterminate. After the
//! faults, each indeterminate request is sent again with the same key and
//! body until its answer is definite. Then the database, read directly,
//! must agree with the journal: each acknowledged bet, cancel and
//! withdrawal took effect once, nothing unacknowledged did, every balance
//! is deposits minus active stakes minus withdrawals, none is negative,
//! and `updown verify` passes. The totals are printed last and written to
//! `target/bank-report.txt`.
//!
//! It runs when `TEST_POSTGRES_URL` is set (CI), yet never touches that
//! server: it needs PostgreSQL's server programs to make its own.
//! `BANK_SECONDS` (default 60) and `BANK_CLIENTS` (default 24) size the
//! load.

#[path = "bank/checks.rs"]
mod checks;
#[path = "bank/cluster.rs"]
mod cluster;
#[path = "bank/journal.rs"]
mod journal;
#[path = "support/process.rs"]
#[allow(dead_code)]
mod process;
#[path = "bank/report.rs"]
mod report;
#[path = "bank/serve.rs"]
mod serve;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;

use checks::{Player, Violations};
use cluster::{free_port, Cluster};
use journal::{Entry, Operation, Outcome, Request, Rng};
use report::{Counts, Report};
use serve::{Faults, Logs, Nemesis, Serve};

const ADMIN: &str = "admin-token-for-the-bank-test-0123";
/// 10:00 in New York on Tuesday 2026-11-24: round 20261124 takes bets,
/// and cancels, for hours.
const MORNING: &str = "2026-11-24T15:00:00Z";
pub const WITHDRAWAL_ADDRESS: &str = "0x52908400098527886E0F7030069857D2E4169EE7";
const PLAYERS: usize = 300;
/// 1,000 USDC, far more than a minute of bets (0.1 to 2 USDC) and
/// withdrawals (0.1 to 1 USDC) takes; every tenth player gets 30 USDC,
/// so some requests are refused for funds.
const DEPOSIT: i64 = 1_000_000_000;
const SMALL_DEPOSIT: i64 = 30_000_000;
/// How long retries may take to make every indeterminate answer definite.
const RETRY_WINDOW: Duration = Duration::from_secs(180);
/// One retry's timeout: longer than serve's own 10 s.
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn money_moves_exactly_once_while_serves_and_postgres_crash_and_pause() {
    if updown_store::testing::postgres_url("the bank test").is_none() {
        return;
    }
    let started = Instant::now();
    let seconds = setting("BANK_SECONDS", 60);
    let seed = Rng::seed();
    let logs = Logs::new();
    let cluster = Arc::new(Cluster::start("bank"));
    let serves = Arc::new(Mutex::new(Vec::new()));
    let load = Arc::new(setup(&cluster, &serves, &logs.0).await);
    let setup_time = started.elapsed();

    let faults = run_load(&load, &serves, &cluster, seed, seconds).await;
    let load_time = started.elapsed() - setup_time;

    // Time moved on while they were down, as it does in production: the
    // serves come back with their clock later than any claim a crash
    // left, so those claims are stale and a retry is not kept waiting.
    let later = clock_at(started.elapsed() + Duration::from_secs(120));
    for serve in serves.lock().unwrap().iter_mut() {
        serve.set_env("CLOCK_START", &later);
        serve.start().expect("serve starts after the faults");
    }
    let resolved = resolve(&load, RETRY_WINDOW).await;
    let retry_time = started.elapsed() - setup_time - load_time;
    for serve in serves.lock().unwrap().iter_mut() {
        serve.stop();
    }

    let journal = std::mem::take(&mut *load.journal.lock().unwrap());
    let violations = judge(&cluster, &load.players, &journal).await;
    let report = Report {
        violations,
        faults,
        counts: Counts::of(&journal, resolved),
        phases: [setup_time, load_time, retry_time],
        total: started.elapsed(),
        seed,
    };
    report.publish();

    let violations = &report.violations.0;
    assert!(violations.is_empty(), "{} violations", violations.len());
    assert!(
        faults.kills >= (5 * seconds / 60).max(1) as u32,
        "too few kills"
    );
    assert!(
        report.counts.acknowledged >= (1000 * seconds / 60).max(1) as usize,
        "too few acknowledged operations"
    );
}

/// The database against the journal, and `updown verify`.
async fn judge(cluster: &Cluster, players: &[Player], journal: &[Entry]) -> Violations {
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&cluster.url())
        .await
        .expect("connect to the scratch cluster");
    let mut violations = checks::check(&pool, players, journal).await;
    pool.close().await;
    if let Some(failure) = verify(&cluster.url()) {
        violations.add("verify", failure);
    }
    violations
}

/// The load's shared state: the players, which of their bets may still be
/// cancelled, and the journal.
struct Load {
    http: reqwest::Client,
    addresses: Vec<SocketAddr>,
    players: Vec<Player>,
    /// Each player's acknowledged bets no cancel was sent for yet: one
    /// cancel per bet.
    cancellable: Vec<Mutex<Vec<i64>>>,
    journal: Mutex<Vec<Entry>>,
}

impl Load {
    /// A random operation for `player`: bet, cancel or withdraw.
    fn next_request(&self, rng: &mut Rng, player: usize) -> Request {
        let key = rng.key();
        let roll = rng.below(100);
        if roll < 25 {
            let mut bets = self.cancellable[player].lock().unwrap();
            if !bets.is_empty() {
                let pick = rng.below(bets.len() as u64) as usize;
                let bet = bets.swap_remove(pick);
                return Request::new(Operation::Cancel { bet }, player, key);
            }
        }
        let operation = if roll < 45 {
            Operation::Withdraw {
                amount: 100_000 + rng.below(900_000) as i64,
            }
        } else {
            Operation::Bet {
                side: if rng.below(2) == 0 { "UP" } else { "DOWN" },
                stake: 100_000 + rng.below(1_900_000) as i64,
            }
        };
        Request::new(operation, player, key)
    }

    /// Journals an answer; an acknowledged bet becomes cancellable.
    fn record(&self, request: Request, outcome: Outcome) {
        if let (Operation::Bet { .. }, Outcome::Acknowledged(bet)) = (&request.operation, &outcome)
        {
            if let Some(id) = bet["id"].as_i64() {
                self.cancellable[request.player].lock().unwrap().push(id);
            }
        }
        self.journal.lock().unwrap().push(Entry {
            request,
            outcome,
            attempts: 1,
        });
    }
}

/// The cluster, the round, two serves and the funded players.
async fn setup(cluster: &Cluster, serves: &Mutex<Vec<Serve>>, logs: &std::path::Path) -> Load {
    let env = serve_env(&cluster.url(), MORNING);
    let opened = process::updown(&env)
        .args(["open-round", "--json"])
        .output()
        .unwrap();
    assert!(
        opened.status.success(),
        "open-round: {}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let mut addresses = Vec::new();
    for name in ["a", "b"] {
        let mut serve = Serve::new(name, logs.to_path_buf(), env.clone());
        serve.start().expect("serve starts");
        addresses.push(serve.address);
        serves.lock().unwrap().push(serve);
    }
    updown_app::tls::install_crypto();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let players: Vec<Player> = stream::iter(0..PLAYERS)
        .map(|index| sign_up(&http, addresses[index % 2], index))
        .buffered(8)
        .collect()
        .await;
    Load {
        http,
        addresses,
        cancellable: players.iter().map(|_| Mutex::new(Vec::new())).collect(),
        players,
        journal: Mutex::new(Vec::new()),
    }
}

/// A player: signed up (no password: fast) and credited.
async fn sign_up(http: &reqwest::Client, address: SocketAddr, index: usize) -> Player {
    let email = format!("bank{index}@example.com");
    let user = post(http, address, "/users", None, json!({ "email": email })).await;
    let deposits = if index % 10 == 9 {
        SMALL_DEPOSIT
    } else {
        DEPOSIT
    };
    let deposit = json!({
        "email": email, "amount": deposits, "tx_hash": format!("0xbank{index}"), "log_index": 0,
    });
    post(
        http,
        address,
        "/simulate/deposit_webhook",
        Some(ADMIN),
        deposit,
    )
    .await;
    Player {
        email,
        api_key: user["api_key"].as_str().unwrap().to_string(),
        user_id: user["user"]["id"].as_i64().unwrap(),
        deposits,
    }
}

/// A setup POST, which must answer 201.
async fn post(
    http: &reqwest::Client,
    address: SocketAddr,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> Value {
    let mut request = http
        .post(format!("http://{address}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .timeout(Duration::from_secs(30));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    let response = request.send().await.expect(path);
    let status = response.status();
    let answer: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    assert_eq!(status.as_u16(), 201, "{path}: {answer}");
    answer
}

/// The clients against the nemesis for `seconds`; what the nemesis did.
async fn run_load(
    load: &Arc<Load>,
    serves: &Arc<Mutex<Vec<Serve>>>,
    cluster: &Arc<Cluster>,
    seed: u64,
    seconds: u64,
) -> Faults {
    let mut rng = Rng::new(seed);
    let until = Instant::now() + Duration::from_secs(seconds);
    let nemesis = Nemesis::start(serves.clone(), cluster.clone(), rng.next(), until);
    let clients: Vec<_> = (0..setting("BANK_CLIENTS", 24))
        .map(|_| tokio::spawn(client(load.clone(), rng.next(), until)))
        .collect();
    for client in futures::future::join_all(clients).await {
        client.expect("a client");
    }
    tokio::task::spawn_blocking(move || nemesis.finish())
        .await
        .unwrap()
        .expect("the nemesis")
}

/// One client: random player, instance, operation and timeout, until
/// `until`. After an indeterminate answer it waits a little, so an
/// outage does not fill the journal.
async fn client(load: Arc<Load>, seed: u64, until: Instant) {
    let mut rng = Rng::new(seed);
    while Instant::now() < until {
        let player = rng.below(load.players.len() as u64) as usize;
        let request = load.next_request(&mut rng, player);
        let address = load.addresses[rng.below(load.addresses.len() as u64) as usize];
        let timeout = Duration::from_millis(50 + rng.below(2950));
        let api_key = &load.players[player].api_key;
        let outcome = journal::send(&load.http, address, api_key, &request, timeout).await;
        let definite = outcome.is_definite();
        load.record(request, outcome);
        if !definite {
            tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        }
    }
}

/// Sends every indeterminate request again, same key and body, until its
/// answer is definite or `within` has passed; how many it resolved.
async fn resolve(load: &Load, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let pending: Vec<(usize, Request)> = load
        .journal
        .lock()
        .unwrap()
        .iter()
        .enumerate()
        .filter(|(_, e)| !e.outcome.is_definite())
        .map(|(index, e)| (index, e.request.clone()))
        .collect();
    let answers: Vec<(usize, Outcome, u32)> = stream::iter(pending)
        .map(|(index, request)| async move {
            let (outcome, attempts) = retry(load, &request, deadline).await;
            (index, outcome, attempts)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut journal = load.journal.lock().unwrap();
    let mut resolved = 0;
    for (index, outcome, attempts) in answers {
        resolved += usize::from(outcome.is_definite());
        journal[index].outcome = outcome;
        journal[index].attempts += attempts;
    }
    resolved
}

/// One request's retries; its final outcome and the attempts made.
async fn retry(load: &Load, request: &Request, deadline: Instant) -> (Outcome, u32) {
    let player = &load.players[request.player];
    let mut attempts = 0;
    loop {
        let address = load.addresses[attempts as usize % load.addresses.len()];
        attempts += 1;
        // A retried cancel whose first attempt went through is answered
        // from its key (200), never "already cancelled": a 409 here is a
        // refusal, and the checks count it if the bet was cancelled.
        let outcome =
            journal::send(&load.http, address, &player.api_key, request, RETRY_TIMEOUT).await;
        if outcome.is_definite() || Instant::now() >= deadline {
            return (outcome, attempts);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `updown verify --full --json` on the cluster: a violation unless it exits 0
/// and reports OK.
fn verify(database_url: &str) -> Option<String> {
    let env = [("DATABASE_URL".to_string(), database_url.to_string())];
    let output = process::updown(&env)
        .args(["verify", "--full", "--json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (!output.status.success() || report["ok"] != true).then(|| {
        format!(
            "updown verify failed ({}): {report} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The serves' environment (their address is added per serve).
fn serve_env(database_url: &str, clock: &str) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", database_url),
        ("CLOCK_START", clock),
        ("ADMIN_TOKEN", ADMIN),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
        ("SCHEDULER_TICK_SECS", "1"),
        ("RATE_LIMIT_IP", "off"),
        ("RATE_LIMIT_KEY", "off"),
        ("RATE_LIMIT_SIGN_IN", "off"),
        ("WITHDRAWAL_MIN", "1"),
        ("WITHDRAWAL_DAILY_MAX", "1000000USDC"),
        ("DB_MAX_CONNECTIONS", "8"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect()
}

/// The morning plus `elapsed`, in RFC 3339.
fn clock_at(elapsed: Duration) -> String {
    let morning: DateTime<Utc> = MORNING.parse().unwrap();
    (morning + chrono::Duration::from_std(elapsed).unwrap())
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A number from the environment, else `default`.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
