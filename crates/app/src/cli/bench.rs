//! `updown bench`: speed measured on a fresh database, never in tests.
//!
//! - `bench bets`: concurrent tasks place bets through the service layer
//!   (group commit included) over many funded users; optionally runs
//!   `pgbench -N` against the same PostgreSQL with the same URL in the same
//!   run and reports the ratio.
//! - `bench settle`: one round with many bets settled from the oracle;
//!   reports the time and the process's peak memory during settlement.
//! - `bench verify`: a full verify against an incremental one from a
//!   checkpoint, on a large ledger with new bets after the checkpoint.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use serde_json::{json, Value};
use updown_domain::ids::UserId;
use updown_domain::round::Side;
use updown_domain::schedule::round_taking_bets_at;
use updown_domain::Micros;
use updown_store::testing::{self, TestDb};
use updown_store::BetRequest;

use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::oracle::MockOracle;
use crate::services::{App, SettleRequest};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchBackend {
    Sqlite,
    Postgres,
}

/// A fresh database for one benchmark: a temporary SQLite file, or a new
/// schema in the PostgreSQL at `url`.
pub(crate) async fn fresh_database(backend: BenchBackend, url: &str, connections: u32) -> TestDb {
    match backend {
        BenchBackend::Sqlite => testing::sqlite().await,
        BenchBackend::Postgres => testing::postgres(url, connections).await,
    }
}

/// An app on a fresh database with a manual clock inside an open round.
async fn bench_app(config: Config, db: &TestDb) -> AppResult<(App, Arc<ManualClock>)> {
    let schedule = round_taking_bets_at(
        &config.rounds.calendar(),
        &config.rounds.schedule,
        chrono::Utc::now(),
    )
    .map_err(|e| AppError::Invalid(e.to_string()))?;
    let clock = Arc::new(ManualClock::new(schedule.open_at + Duration::minutes(1)));
    let app = crate::startup::wire(
        config,
        db.store.clone(),
        clock.clone(),
        Arc::new(MockOracle::default()),
    );
    Ok((app, clock))
}

/// A small deterministic generator, so runs place the same bets.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

pub(crate) fn percentile(sorted: &[StdDuration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

pub(crate) async fn seed(app: &App, users: u32, balance: Micros) -> AppResult<Vec<UserId>> {
    eprintln!("seeding {users} users...");
    let started = Instant::now();
    app.seed_users(users, balance, &|_| {}).await?;
    // Paged, so a million users are never held as summaries at once.
    let mut ids = Vec::with_capacity(users as usize);
    let mut before = None;
    loop {
        let page = app.store.users(before, 10_000).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.user.id.0);
        ids.extend(page.iter().map(|u| u.user.id));
    }
    eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    Ok(ids)
}

pub struct BetsArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub users: u32,
    pub concurrency: usize,
    pub seconds: u64,
    pub pgbench: bool,
}

pub async fn bets(config: Config, args: BetsArgs) -> AppResult<Value> {
    crate::metrics::handle();
    let db = fresh_database(args.backend, &args.url, config.database.max_connections).await;
    let (app, _clock) = bench_app(config, &db).await?;
    let users = Arc::new(seed(&app, args.users, Micros::usdc(1_000)?).await?);
    app.open_round(None).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    eprintln!(
        "placing bets with {} tasks for {} s...",
        args.concurrency, args.seconds
    );
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let (app, users, stop, accepted, refused) = (
            app.clone(),
            users.clone(),
            stop.clone(),
            accepted.clone(),
            refused.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut random = XorShift(0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1));
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let user = users[(random.next() % users.len() as u64) as usize];
                let side = if random.next().is_multiple_of(2) {
                    Side::Up
                } else {
                    Side::Down
                };
                let stake = Micros::new(1_000 + (random.next() % 1_000) as i64).expect("positive");
                let started = Instant::now();
                match app.place_bet(user, side, stake, None, None).await {
                    Ok(_) => {
                        latencies.push(started.elapsed());
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(StdDuration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.map_err(|e| AppError::Internal(e.into()))?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let tps = accepted.load(Ordering::Relaxed) as f64 / elapsed;
    eprintln!("verifying the ledger...");
    let report = app.verify().await?;
    let mut result = json!({
        "benchmark": "bets",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "users": args.users,
        "concurrency": args.concurrency,
        "seconds": elapsed,
        "accepted": accepted.load(Ordering::Relaxed),
        "refused": refused.load(Ordering::Relaxed),
        "tps": tps.round(),
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "verify_ok": report.ok(),
        "mean_bets_per_batch": mean_batch_size(&crate::metrics::handle().render()),
    });
    drop(app);
    drop(db);
    if args.pgbench && args.backend == BenchBackend::Postgres {
        let pgbench_tps = run_pgbench(&args.url, args.concurrency, args.seconds)?;
        result["pgbench_tps"] = json!(pgbench_tps.round());
        result["ratio_to_pgbench"] = json!(((tps / pgbench_tps) * 100.0).round() / 100.0);
    }
    Ok(result)
}

/// The mean of the `updown_bet_batch_size` histogram in Prometheus text.
pub(crate) fn mean_batch_size(text: &str) -> Option<f64> {
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
    };
    Some(value("updown_bet_batch_size_sum ")? / value("updown_bet_batch_size_count ")?)
}

/// `pgbench -N -c C -j 2 -T S` against the same URL (scale 10, initialised
/// first); returns its TPS.
pub(crate) fn run_pgbench(url: &str, clients: usize, seconds: u64) -> AppResult<f64> {
    init_pgbench(url)?;
    pgbench_tps(url, clients, seconds)
}

/// Runs pgbench with `args` against `url`; its standard output.
fn pgbench(url: &str, args: &[&str]) -> AppResult<String> {
    let output = std::process::Command::new("pgbench")
        .args(args)
        .arg(url)
        .output()
        .map_err(|e| {
            AppError::Unavailable(format!(
                "pgbench could not run ({e}); install postgresql-contrib or run without --pgbench"
            ))
        })?;
    if !output.status.success() {
        return Err(AppError::Unavailable(format!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `pgbench -i` at scale 10: fresh pgbench tables in `url`'s database.
pub(crate) fn init_pgbench(url: &str) -> AppResult<()> {
    eprintln!("pgbench: initialising (scale 10)...");
    pgbench(url, &["-i", "-q", "-s", "10"]).map(drop)
}

/// One `pgbench -N -c C -j 2 -T S` on tables [`init_pgbench`] made; its TPS.
pub(crate) fn pgbench_tps(url: &str, clients: usize, seconds: u64) -> AppResult<f64> {
    eprintln!("pgbench -N -c {clients} -j 2 -T {seconds}...");
    let clients = clients.to_string();
    let seconds = seconds.to_string();
    let out = pgbench(
        url,
        &["-N", "-n", "-c", &clients, "-j", "2", "-T", &seconds],
    )?;
    out.lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .ok_or_else(|| AppError::Unavailable(format!("no tps line in pgbench output: {out}")))
}

pub struct SettleArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub users: u32,
    pub bets: u64,
}

pub async fn settle(config: Config, args: SettleArgs) -> AppResult<Value> {
    let db = fresh_database(args.backend, &args.url, config.database.max_connections).await;
    let (app, clock) = bench_app(config, &db).await?;
    let users = seed(&app, args.users, Micros::usdc(100_000)?).await?;
    let (round, _) = app.open_round(None).await?;
    let mut random = XorShift(0xD1B5_4A32_D192_ED03);
    place_many(&app, &round, &users, args.bets, &clock, &mut random).await?;
    clock.set(round.terms.settle_at);
    reset_peak_memory();
    let started = Instant::now();
    let settled = app
        .settle_round(round.terms.code, SettleRequest::Auto)
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let peak_mb = peak_memory_mb();
    let pools = app.store.pools(round.id).await?;
    let winners = match settled
        .settlement
        .as_ref()
        .and_then(|s| s.plan.outcome.winning_side())
    {
        Some(Side::Up) => pools.bets_up,
        Some(Side::Down) => pools.bets_down,
        None => pools.bets_up + pools.bets_down,
    };
    eprintln!("verifying the ledger...");
    let verify_started = Instant::now();
    let report = app.verify().await?;
    Ok(json!({
        "benchmark": "settle",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "users": args.users,
        "bets": args.bets,
        "winning_bets_paid": winners,
        "result": settled.settlement.as_ref().map(|s| s.plan.outcome.as_str()),
        "settle_seconds": (seconds * 100.0).round() / 100.0,
        "peak_rss_mb_during_settlement": peak_mb,
        "verify_seconds": (verify_started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
        "verify_ok": report.ok(),
    }))
}

/// Places `count` bets on `round` straight through the store, in batches
/// of 2,000, every user in turn (no batch holds a user twice), random sides
/// and stakes.
async fn place_many(
    app: &App,
    round: &updown_store::Round,
    users: &[UserId],
    count: u64,
    clock: &ManualClock,
    random: &mut XorShift,
) -> AppResult<()> {
    eprintln!("placing {count} bets...");
    let started = Instant::now();
    let mut placed = 0u64;
    const BATCH: u64 = 2_000;
    while placed < count {
        let size = BATCH.min(count - placed);
        let requests: Vec<BetRequest> = (0..size)
            .map(|i| BetRequest {
                user: users[((placed + i) % users.len() as u64) as usize],
                side: if random.next().is_multiple_of(2) {
                    Side::Up
                } else {
                    Side::Down
                },
                stake: Micros::new(1_000 + (random.next() % 1_000_000) as i64).expect("positive"),
                received_at: clock.now(),
                key: None,
            })
            .collect();
        let answers = app.store.place_bets(round.id, &requests).await?;
        if let Some(Err(refusal)) = answers.iter().find(|a| a.is_err()) {
            return Err(AppError::Internal(anyhow::anyhow!(
                "setup bet refused: {refusal}"
            )));
        }
        placed += size;
        if placed.is_multiple_of(1_000_000) {
            eprintln!(
                "  {placed} placed ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!("placed in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

pub struct VerifyArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub users: u32,
    pub bets: u64,
    pub new_bets: u64,
}

/// What `work` gave, and how long it took in seconds (to the millisecond).
async fn timed<T>(work: impl std::future::Future<Output = AppResult<T>>) -> AppResult<(T, f64)> {
    let started = Instant::now();
    let value = work.await?;
    Ok((
        value,
        (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    ))
}

/// `bench verify`: a ledger of `bets` bets, verified in full and then
/// incrementally (the first checkpoint); then `new_bets` more, verified
/// incrementally from that checkpoint and in full again.
pub async fn verify(config: Config, args: VerifyArgs) -> AppResult<Value> {
    let db = fresh_database(args.backend, &args.url, config.database.max_connections).await;
    let (app, clock) = bench_app(config, &db).await?;
    let users = seed(&app, args.users, Micros::usdc(100_000)?).await?;
    let (round, _) = app.open_round(None).await?;
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    place_many(&app, &round, &users, args.bets, &clock, &mut random).await?;
    eprintln!("verifying in full...");
    let (full_before, full_before_seconds) = timed(app.verify()).await?;
    eprintln!("first incremental verify (from no checkpoint)...");
    let (first, first_seconds) = timed(app.verify_incremental()).await?;
    place_many(&app, &round, &users, args.new_bets, &clock, &mut random).await?;
    eprintln!("incremental verify...");
    let (incremental, incremental_seconds) = timed(app.verify_incremental()).await?;
    eprintln!("verifying in full...");
    let (full_after, full_after_seconds) = timed(app.verify()).await?;
    let ok = full_before.ok() && first.report.ok() && incremental.report.ok() && full_after.ok();
    Ok(json!({
        "benchmark": "verify",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "users": args.users,
        "bets": args.bets,
        "new_bets": args.new_bets,
        "transactions": full_after.transactions,
        "entries": full_after.entries,
        "full_seconds_before": full_before_seconds,
        "first_incremental_seconds": first_seconds,
        "incremental_seconds": incremental_seconds,
        "incremental_checked_transactions": incremental.checked_transactions,
        "full_seconds_after": full_after_seconds,
        "checkpoint": incremental.written.as_ref().map(|c| c.id),
        "ok": ok,
    }))
}

/// Resets the kernel's peak-RSS mark of this process (Linux), so the peak
/// read afterwards covers only what follows.
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb / 1024.0 * 10.0).round() / 10.0)
}
