//! `updown bench http`: the real `updown serve` binary, in its own process
//! on a fresh database, loaded by `wrk` over loopback.
//!
//! 1. Seeds funded users, each with an API key, and opens the round.
//! 2. Starts `serve` (JSON logs to a file, rate limits off) and times
//!    start to ready; reads its idle memory.
//! 3. `wrk` on `GET /rounds/current`, then on `POST /bets` (each request
//!    from one of the users, round robin), both with `--latency`.
//! 4. Stops `serve` (SIGTERM), checks that every 2xx bet is in the ledger
//!    and that `verify` passes; optionally runs `pgbench -N` on the same
//!    PostgreSQL for the ratio.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use updown_domain::Micros;

use super::bench::BenchBackend;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::oracle::MockOracle;
use updown_store::testing::ScratchDatabase;

pub struct HttpArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub users: u32,
    pub connections: u32,
    pub seconds: u64,
    pub pgbench: bool,
    /// Runs of the bets load, each followed by pgbench with `pgbench`.
    pub pairs: u32,
    /// Every bet with an Idempotency-Key of its own.
    pub idempotency_keys: bool,
}

/// The Lua script that makes wrk bet as the seeded users in turn.
const BETS_SCRIPT: &str = r#"
local keys = {}
for line in io.lines(os.getenv("UPDOWN_BENCH_KEYS")) do keys[#keys + 1] = line end
local keyed = os.getenv("UPDOWN_BENCH_IDEMPOTENCY") == "1"
local threads = 0
function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end
local n = 0
function request()
  n = n + 1
  local key = keys[(offset + n * 104729) % #keys + 1]
  local side = (n % 2 == 0) and "UP" or "DOWN"
  local body = string.format('{"side":"%s","amount":%d}', side, 1000 + n % 1000)
  local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  if keyed then headers["Idempotency-Key"] = string.format("bench-%d-%d", offset, n) end
  return wrk.format("POST", "/bets", headers, body)
end
"#;

pub(super) fn unavailable(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Unavailable(format!("{what}: {e}"))
}

/// Where the bench keeps its files: a fresh folder in the temp dir.
pub(super) fn work_dir() -> AppResult<PathBuf> {
    let dir = std::env::temp_dir().join(format!("updown-bench-http-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| unavailable("work folder", e))?;
    Ok(dir)
}

/// A fresh database for a bench that runs serve, and its URL: a scratch
/// PostgreSQL database (dropped by [`ScratchDatabase::remove`]), or a
/// SQLite file in `dir`.
pub(super) async fn scratch_database(
    backend: BenchBackend,
    url: &str,
    dir: &Path,
) -> AppResult<(Option<ScratchDatabase>, String)> {
    Ok(match backend {
        BenchBackend::Postgres => {
            let db = updown_store::testing::scratch_postgres_database(url)
                .await
                .map_err(AppError::Internal)?;
            let url = db.url.clone();
            (Some(db), url)
        }
        BenchBackend::Sqlite => (None, format!("sqlite://{}", dir.join("bench.db").display())),
    })
}

/// Users, their keys (in a file, one per line) and the open round.
pub(super) async fn prepare(
    config: Config,
    url: &str,
    users: u32,
    keys_file: &Path,
) -> AppResult<()> {
    let store = updown_store::connect(url, 16)
        .await
        .map_err(AppError::Internal)?;
    store.migrate().await?;
    let app = crate::startup::wire(
        config,
        store,
        Arc::new(SystemClock),
        Arc::new(MockOracle::default()),
    );
    let started = Instant::now();
    let ids = super::bench::seed(&app, users, Micros::usdc(1_000)?).await?;
    eprintln!("creating {users} API keys...");
    let keys: Vec<AppResult<(i64, String)>> = futures::stream::iter(ids)
        .map(|id| {
            let app = app.clone();
            async move { app.new_api_key(id).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut text = String::new();
    for key in keys {
        text.push_str(&key?.1);
        text.push('\n');
    }
    std::fs::write(keys_file, text).map_err(|e| unavailable("keys file", e))?;
    app.open_round(None).await?;
    eprintln!("prepared in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A free port on loopback.
pub(super) fn free_port() -> AppResult<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| unavailable("port", e))?;
    Ok(listener
        .local_addr()
        .map_err(|e| unavailable("port", e))?
        .port())
}

/// The status code of a plain `GET path`, or None if nothing answers.
fn http_status(address: SocketAddr, path: &str) -> Option<u16> {
    super::probe::status(address, path, Duration::from_secs(2))
}

/// The command line of a program that runs `serve` for the benches (a
/// profiler), its words split at spaces and put before serve's own. It
/// must become serve in the same process, as `valgrind` does: the bench
/// signals, measures and stops that process. (`perf record` forks serve
/// instead; attach it with `perf record -p` to a bench's serve.)
pub const SERVE_WRAPPER: &str = "UPDOWN_BENCH_SERVE_WRAPPER";

/// Starts `updown serve` (with `settings` on top of the bench's), under
/// [`SERVE_WRAPPER`] when it is set, and waits until `/health` answers 200.
pub(super) fn start_serve(
    url: &str,
    address: SocketAddr,
    dir: &Path,
    settings: &[(&str, &str)],
) -> AppResult<(Child, Duration)> {
    let log =
        std::fs::File::create(dir.join("serve.log")).map_err(|e| unavailable("log file", e))?;
    let err = log.try_clone().map_err(|e| unavailable("log file", e))?;
    let started = Instant::now();
    let own = std::env::current_exe().map_err(|e| unavailable("own binary", e))?;
    // A profiler to run serve under, e.g. "valgrind --tool=callgrind".
    let wrapper = std::env::var(SERVE_WRAPPER).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(own);
            command
        }
        None => Command::new(own),
    };
    let ready_within = Duration::from_secs(if wrapper.trim().is_empty() { 30 } else { 300 });
    let mut child = command
        .arg("serve")
        .env("DATABASE_URL", url)
        .env("BIND_ADDR", address.to_string())
        .env("ADMIN_TOKEN", "bench-admin-token-0123456789")
        .env("RATE_LIMIT_KEY", "off")
        .env("RATE_LIMIT_IP", "off")
        .env("RATE_LIMIT_SIGN_IN", "off")
        .env("LOG_FORMAT", "json")
        // Empty rather than removed, so a CLOCK_START in .env (which
        // serve reads itself) is shadowed too.
        .env("CLOCK_START", "")
        .envs(settings.iter().copied())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| unavailable("start serve", e))?;
    loop {
        if http_status(address, "/health") == Some(200) {
            return Ok((child, started.elapsed()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(AppError::Unavailable(format!(
                "serve exited ({status}); see {}",
                dir.join("serve.log").display()
            )));
        }
        if started.elapsed() > ready_within {
            let _ = child.kill();
            return Err(AppError::Unavailable(format!(
                "serve did not become ready in {} s",
                ready_within.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub(super) fn resident_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A wrk duration ("812.00us", "3.21ms", "1.02s") in milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    match &text[split..] {
        "us" => Some(value / 1000.0),
        "ms" => Some(value),
        "s" => Some(value * 1000.0),
        "m" => Some(value * 60_000.0),
        _ => None,
    }
}

/// Runs wrk and reads requests/s, p50/p99, requests, errors.
fn wrk(
    address: SocketAddr,
    path: &str,
    connections: u32,
    seconds: u64,
    script: Option<&Path>,
    keys: &Path,
    idempotency_keys: bool,
) -> AppResult<Value> {
    eprintln!("wrk -t2 -c{connections} -d{seconds}s {path}...");
    let mut command = Command::new("wrk");
    command
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "--timeout",
            "5s",
        ])
        .env("UPDOWN_BENCH_KEYS", keys)
        .env(
            "UPDOWN_BENCH_IDEMPOTENCY",
            if idempotency_keys { "1" } else { "0" },
        );
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .arg(format!("http://{address}{path}"))
        .output()
        .map_err(|e| unavailable("wrk could not run (apt-get install wrk)", e))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(AppError::Unavailable(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let rps: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let requests: u64 = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket_errors = field("Socket errors:").unwrap_or("none").to_string();
    Ok(json!({
        "path": path,
        "connections": connections,
        "seconds": seconds,
        "requests": requests,
        "requests_per_s": rps.round(),
        "p50_ms": field("50%").and_then(wrk_ms),
        "p99_ms": field("99%").and_then(wrk_ms),
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
    }))
}

pub async fn http(config: Config, args: HttpArgs) -> AppResult<Value> {
    let dir = work_dir()?;
    let keys = dir.join("keys.txt");
    let script = dir.join("bets.lua");
    std::fs::write(&script, BETS_SCRIPT).map_err(|e| unavailable("script", e))?;
    let (scratch, url) = scratch_database(args.backend, &args.url, &dir).await?;
    let market = config.rounds.market.clone();
    prepare(config, &url, args.users, &keys).await?;

    let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let (mut serve, ready) = start_serve(&url, address, &dir, &[])?;
    // A second start on the now-migrated database is the one that counts
    // ("an existing database"); the first also ran the migrations.
    stop(&mut serve)?;
    let (mut serve, ready_existing) = start_serve(&url, address, &dir, &[])?;
    eprintln!(
        "serve ready in {} ms (existing database)",
        ready_existing.as_millis()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_mb = resident_mb(serve.id());

    let current = wrk(
        address,
        "/rounds/current",
        args.connections,
        args.seconds,
        None,
        &keys,
        false,
    )?;
    let pgbench = args.pgbench && args.backend == BenchBackend::Postgres;
    if pgbench {
        super::bench::init_pgbench(&args.url)?;
    }
    // Pairs in turn: the bets, then pgbench for as long, so that both
    // halves of each ratio meet the machine in the same minute.
    let mut bet_runs = Vec::new();
    let mut pgbench_runs = Vec::new();
    for pair in 0..args.pairs {
        if args.pairs > 1 {
            eprintln!("pair {} of {}", pair + 1, args.pairs);
        }
        bet_runs.push(wrk(
            address,
            "/bets",
            args.connections,
            args.seconds,
            Some(&script),
            &keys,
            args.idempotency_keys,
        )?);
        if pgbench {
            pgbench_runs.push(super::bench::pgbench_tps(
                &args.url,
                args.connections as usize,
                args.seconds,
            )?);
        }
    }
    let loaded_mb = resident_mb(serve.id());
    let batch_size = mean_batch_size(address);
    stop(&mut serve)?;

    let store = updown_store::connect(&url, 4)
        .await
        .map_err(AppError::Internal)?;
    let placed: i64 = store.tvl().await?.round_pools;
    let rounds = store.rounds(&market, 1).await?;
    let counts = store.pools(rounds[0].id).await?;
    let bets_in_ledger = counts.bets_up + counts.bets_down;
    eprintln!("verifying the ledger...");
    let report = store.verify().await?;
    drop(store);
    let accepted: u64 = bet_runs
        .iter()
        .map(|run| run["requests"].as_u64().unwrap_or(0) - run["non_2xx"].as_u64().unwrap_or(0))
        .sum();
    let mut result = json!({
        "benchmark": "http",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "users": args.users,
        "idempotency_keys": args.idempotency_keys,
        "start_to_ready_ms": { "first_start_with_migrations": ready.as_millis() as u64, "existing_database": ready_existing.as_millis() as u64 },
        "rss_mb": { "idle": idle_mb, "after_load": loaded_mb },
        "get_rounds_current": current,
        "post_bets": bet_runs[0],
        "bets_in_ledger": bets_in_ledger,
        "mean_bets_per_batch": batch_size,
        "bets_answered_2xx": accepted,
        "pool_micro_usdc": placed,
        "verify_ok": report.ok(),
    });
    if let Some(db) = scratch {
        db.remove().await.map_err(AppError::Internal)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    if pgbench {
        let bets_per_s: Vec<f64> = bet_runs
            .iter()
            .map(|run| run["requests_per_s"].as_f64().unwrap_or(0.0))
            .collect();
        let pairs = Pairs::new(&bets_per_s, &pgbench_runs);
        result["pgbench_tps"] = json!(pairs.median_pgbench().round());
        result["ratio_to_pgbench"] = json!(hundredths(pairs.median_ratio()));
        if args.pairs > 1 {
            result["pairs"] = pairs.to_json();
        }
    }
    Ok(result)
}

/// Bets/s and pgbench TPS measured in turn, one pair per turn.
struct Pairs<'a> {
    bets_per_s: &'a [f64],
    pgbench_tps: &'a [f64],
}

impl<'a> Pairs<'a> {
    fn new(bets_per_s: &'a [f64], pgbench_tps: &'a [f64]) -> Self {
        assert_eq!(bets_per_s.len(), pgbench_tps.len(), "one pgbench per run");
        Self {
            bets_per_s,
            pgbench_tps,
        }
    }

    fn ratios(&self) -> Vec<f64> {
        self.bets_per_s
            .iter()
            .zip(self.pgbench_tps)
            .map(|(bets, tps)| bets / tps)
            .collect()
    }

    /// The median of the pairs' own ratios: a slow minute slows both
    /// halves of its pair, so this moves less than either side alone.
    fn median_ratio(&self) -> f64 {
        median(self.ratios())
    }

    fn median_pgbench(&self) -> f64 {
        median(self.pgbench_tps.to_vec())
    }

    fn to_json(&self) -> Value {
        let ratios = self.ratios();
        Value::Array(
            (0..ratios.len())
                .map(|i| {
                    json!({
                        "bets_per_s": self.bets_per_s[i].round(),
                        "pgbench_tps": self.pgbench_tps[i].round(),
                        "ratio": hundredths(ratios[i]),
                    })
                })
                .collect(),
        )
    }
}

/// The middle value, or the mean of the two middle ones; NaN for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn hundredths(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The mean bets per batch, from serve's own `/metrics`.
fn mean_batch_size(address: SocketAddr) -> Option<f64> {
    let mut stream = TcpStream::connect(address).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    super::bench::mean_batch_size(&text)
}

/// SIGTERM, then wait for a clean exit.
pub(super) fn stop(child: &mut Child) -> AppResult<()> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().map_err(|e| unavailable("serve", e))?;
    if !status.success() {
        return Err(AppError::Unavailable(format!(
            "serve exited with {status} on SIGTERM"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{median, wrk_ms, Pairs};

    #[test]
    fn the_ratio_is_the_median_of_each_pairs_own_ratio() {
        // The second pair met a slow minute on both sides: its ratio holds
        // while its bets alone would drag a ratio of medians down.
        let bets = [9_000.0, 3_000.0, 10_000.0];
        let tps = [5_000.0, 1_500.0, 4_000.0];
        let pairs = Pairs::new(&bets, &tps);
        assert_eq!(pairs.ratios(), vec![1.8, 2.0, 2.5]);
        assert_eq!(pairs.median_ratio(), 2.0);
        assert_eq!(pairs.median_pgbench(), 4_000.0);
        let rows = pairs.to_json();
        assert_eq!(rows[1]["bets_per_s"], 3_000.0);
        assert_eq!(rows[2]["ratio"], 2.5);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![7.0]), 7.0);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn wrk_durations_read_in_milliseconds() {
        assert_eq!(wrk_ms("812.00us"), Some(0.812));
        assert_eq!(wrk_ms("3.21ms"), Some(3.21));
        assert_eq!(wrk_ms("1.02s"), Some(1020.0));
        assert_eq!(wrk_ms("fast"), None);
    }
}
