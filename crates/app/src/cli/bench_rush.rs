//! `updown bench rush`: the last minute before a lock, against the real
//! `updown serve` with its scheduler running.
//!
//! 1. Seeds funded players, each with an API key, and opens the round that
//!    takes bets now.
//! 2. Starts `serve` with its clock (`CLOCK_START`, `CLOCK_SPEED`) set a
//!    little before the last minute of that round, so the minute comes at
//!    once and, with `--speed`, passes faster.
//! 3. Each player bets once, at an instant of that minute: half of them
//!    spread evenly, half piling up in its last seconds (exponentially,
//!    5 s on average before the lock), and a few (2%) in the two seconds
//!    after the lock. Requests leave at their instants whatever came back
//!    before (an open loop), and latency counts from the instant.
//! 4. Stops `serve` and reads its journal: every `bet_placed` must have
//!    been received before the lock instant, every `bet_refused` at or
//!    after it with `round_closed`; the journal must match the answers and
//!    the ledger, the scheduler's lock is timed against the lock instant,
//!    and `verify` must pass.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::bench::{percentile, BenchBackend, XorShift};
use super::bench_http::{
    free_port, prepare, scratch_database, start_serve, stop, unavailable, work_dir,
};
use crate::config::Config;
use crate::error::{AppError, AppResult};

pub struct RushArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub players: u32,
    /// How many times faster than real time the minute passes.
    pub speed: f64,
}

/// The minute before the lock.
const RUSH: Duration = Duration::from_secs(60);
/// Late bets arrive within this long after the lock.
const AFTER_LOCK: Duration = Duration::from_secs(2);
/// Real time between serve's start and the rush, for it to become ready.
const LEAD: Duration = Duration::from_secs(2);

/// One player's bet: when it is due (before the lock if negative), by the
/// service's clock.
struct Planned {
    key: String,
    due: chrono::Duration,
    side: &'static str,
    amount: i64,
}

/// What came back for one bet.
struct Answer {
    due: chrono::Duration,
    /// From its due instant to the answer.
    latency: Duration,
    status: u16,
    code: Option<String>,
}

/// Each player's instant, relative to the lock: see the module doc.
fn plan(keys: Vec<String>, random: &mut XorShift) -> Vec<Planned> {
    let unit = |random: &mut XorShift| (random.next() >> 11) as f64 / (1u64 << 53) as f64;
    let rush = RUSH.as_secs_f64();
    let mut planned: Vec<Planned> = keys
        .into_iter()
        .enumerate()
        .map(|(index, key)| {
            let pick = unit(random);
            let seconds = if index % 50 == 49 {
                // After the lock: these must all be refused.
                unit(random) * AFTER_LOCK.as_secs_f64()
            } else {
                let before = if pick < 0.5 {
                    unit(random) * rush
                } else {
                    // Exponential, mean 5 s before the lock.
                    -5.0 * (1.0 - unit(random)).ln()
                };
                // In the minute, and at least a microsecond before the lock.
                -before.clamp(1e-6, rush)
            };
            Planned {
                key,
                due: chrono::Duration::microseconds((seconds * 1e6) as i64),
                side: if random.next().is_multiple_of(2) {
                    "UP"
                } else {
                    "DOWN"
                },
                amount: 1_000_000 + (random.next() % 1_000_000) as i64,
            }
        })
        .collect();
    planned.sort_by_key(|p| p.due);
    planned
}

/// Sends every planned bet at its instant (`lock` is the real instant the
/// service's clock reaches the lock); returns the answers.
async fn rush(
    address: SocketAddr,
    round: &str,
    planned: Vec<Planned>,
    lock: Instant,
    speed: f64,
) -> AppResult<Vec<Answer>> {
    crate::tls::install_crypto();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| unavailable("HTTP client", e))?;
    let url = format!("http://{address}/bets");
    let mut tasks = Vec::with_capacity(planned.len());
    for bet in planned {
        let real = bet.due.to_std().map_or_else(
            |_| lock - (-bet.due).to_std().unwrap_or_default().div_f64(speed),
            |after| lock + after.div_f64(speed),
        );
        tokio::time::sleep_until(real.into()).await;
        let (client, url) = (client.clone(), url.clone());
        let body = format!(
            r#"{{"side":"{}","amount":{},"round":"{round}"}}"#,
            bet.side, bet.amount
        );
        tasks.push(tokio::spawn(async move {
            let sent = client
                .post(&url)
                .header("Authorization", format!("Bearer {}", bet.key))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            let (status, code) = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    let code = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
                    (status, code)
                }
                Err(_) => (0, Some("no_answer".to_string())),
            };
            Answer {
                due: bet.due,
                latency: real.elapsed(),
                status,
                code,
            }
        }));
    }
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.map_err(|e| AppError::Internal(e.into()))?);
    }
    Ok(answers)
}

/// The real instant serve's clock started, from its `clock_override`
/// line's timestamp.
fn clock_origin(log: &Path) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let entry: Value = serde_json::from_str(line).ok()?;
        if entry["fields"]["event"] != "clock_override" {
            return None;
        }
        let at = DateTime::parse_from_rfc3339(entry["timestamp"].as_str()?).ok()?;
        Some(at.with_timezone(&Utc))
    })
}

/// What the journal (serve's JSON log) says of the bets on `round`.
#[derive(Default)]
struct Journal {
    placed: u64,
    refused_round_closed: u64,
    /// Placed though received at or after the lock.
    placed_at_or_after_lock: u64,
    /// Refused as closed though received before the lock.
    refused_before_lock: u64,
    /// Refused for another reason (funds, limits...), with why.
    refused_otherwise: Vec<String>,
}

fn read_journal(log: &Path, round: &str, lock_at: DateTime<Utc>) -> AppResult<Journal> {
    let text = std::fs::read_to_string(log).map_err(|e| unavailable("serve's log", e))?;
    let mut journal = Journal::default();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let fields = &entry["fields"];
        let event = fields["event"].as_str().unwrap_or_default();
        if !matches!(event, "bet_placed" | "bet_refused") || fields["round"] != round {
            continue;
        }
        let received_at = fields["received_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!(
                    "a {event} line without received_at: {line}"
                ))
            })?;
        let before_lock = received_at < lock_at;
        if event == "bet_placed" {
            journal.placed += 1;
            journal.placed_at_or_after_lock += u64::from(!before_lock);
        } else if fields["code"] == "round_closed" {
            journal.refused_round_closed += 1;
            journal.refused_before_lock += u64::from(before_lock);
        } else {
            journal
                .refused_otherwise
                .push(fields["reason"].as_str().unwrap_or_default().to_string());
        }
    }
    Ok(journal)
}

fn milliseconds(latencies: &[Duration], p: f64) -> f64 {
    (percentile(latencies, p) * 100.0).round() / 100.0
}

pub async fn rush_bench(config: Config, args: RushArgs) -> AppResult<Value> {
    if !(args.speed >= 1.0 && args.speed <= 100.0) {
        return Err(AppError::Invalid(format!(
            "--speed must be between 1 and 100, not {}",
            args.speed
        )));
    }
    let dir = work_dir()?;
    let keys_file = dir.join("keys.txt");
    let (scratch, url) = scratch_database(args.backend, &args.url, &dir).await?;
    let market = config.rounds.market.clone();
    prepare(config, &url, args.players, &keys_file).await?;
    let store = updown_store::connect(&url, 4)
        .await
        .map_err(AppError::Internal)?;
    let round = store
        .rounds(&market, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the round did not open")))?;
    let (code, lock_at) = (round.terms.code.to_string(), round.terms.lock_at);
    let keys: Vec<String> = std::fs::read_to_string(&keys_file)
        .map_err(|e| unavailable("keys file", e))?
        .lines()
        .map(str::to_string)
        .collect();
    let planned = plan(keys, &mut XorShift(0xA076_1D64_78BD_642F));
    let due_after_lock = planned
        .iter()
        .filter(|p| p.due >= chrono::Duration::zero())
        .count();

    // The service's clock reaches the start of the minute LEAD (real time)
    // after serve starts.
    let lead_on_its_clock = chrono::Duration::from_std(LEAD.mul_f64(args.speed))
        .map_err(|e| AppError::Internal(e.into()))?;
    let rush_duration =
        chrono::Duration::from_std(RUSH).map_err(|e| AppError::Internal(e.into()))?;
    let clock_start = lock_at - rush_duration - lead_on_its_clock;
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let speed = args.speed.to_string();
    let start = clock_start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let spawned = Instant::now();
    let (mut serve, _ready) = start_serve(
        &url,
        address,
        &dir,
        &[("CLOCK_START", &start), ("CLOCK_SPEED", &speed)],
    )?;
    // Serve writes its log lines every 20 ms (`telemetry`): its ready
    // answer can come before the line is in the file.
    let mut origin = clock_origin(&dir.join("serve.log"));
    for _ in 0..50 {
        if origin.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        origin = clock_origin(&dir.join("serve.log"));
    }
    let clock_read_from_journal = origin.is_some();
    let lock = match origin {
        // The real instant serve's clock reaches the lock.
        Some(origin) => {
            let at = origin
                + chrono::Duration::microseconds(
                    ((lock_at - clock_start).num_microseconds().unwrap_or(0) as f64 / args.speed)
                        as i64,
                );
            let ahead = (at - Utc::now()).to_std().unwrap_or_default();
            Instant::now() + ahead
        }
        None => spawned + LEAD + RUSH.div_f64(args.speed),
    };
    if Instant::now() > lock - RUSH.div_f64(args.speed) + Duration::from_millis(250) {
        let _ = stop(&mut serve);
        return Err(AppError::Unavailable(
            "serve became ready after the minute had begun; run again on a quieter machine".into(),
        ));
    }
    eprintln!(
        "rush: {} players over the last {} s before {lock_at} (x{}), {due_after_lock} of them after it...",
        args.players,
        RUSH.as_secs(),
        args.speed
    );
    let answers = rush(address, &code, planned, lock, args.speed).await?;
    // Past the late bets, then a moment for the scheduler's lock.
    tokio::time::sleep_until(
        (lock + AFTER_LOCK.div_f64(args.speed) + Duration::from_millis(500)).into(),
    )
    .await;
    stop(&mut serve)?;

    let journal = read_journal(&dir.join("serve.log"), &code, lock_at)?;
    let locked = store.round_by_id(round.id).await?;
    let pools = store.pools(round.id).await?;
    eprintln!("verifying the ledger...");
    let report = store.verify().await?;
    drop(store);

    let accepted = answers.iter().filter(|a| a.status == 201).count() as u64;
    let closed = answers
        .iter()
        .filter(|a| a.code.as_deref() == Some("round_closed"))
        .count() as u64;
    let mut other: Vec<String> = answers
        .iter()
        .filter(|a| a.status != 201 && a.code.as_deref() != Some("round_closed"))
        .map(|a| format!("{} {}", a.status, a.code.as_deref().unwrap_or("")))
        .collect();
    other.sort();
    other.dedup();
    let mut all: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    all.sort_unstable();
    let last_seconds = chrono::Duration::seconds(-5);
    let mut last: Vec<Duration> = answers
        .iter()
        .filter(|a| a.due >= last_seconds && a.due < chrono::Duration::zero())
        .map(|a| a.latency)
        .collect();
    last.sort_unstable();
    let bets_in_ledger = (pools.bets_up + pools.bets_down) as u64;
    let exceptions = journal.placed_at_or_after_lock
        + journal.refused_before_lock
        + journal.refused_otherwise.len() as u64
        + u64::from(journal.placed != accepted)
        + u64::from(journal.refused_round_closed != closed)
        + u64::from(bets_in_ledger != journal.placed);
    let lock_late_ms = locked.locked_at.map(|at| {
        (at - lock_at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0 / args.speed
    });
    if let Some(db) = scratch {
        db.remove().await.map_err(AppError::Internal)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "benchmark": "rush",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "players": args.players,
        "speed": args.speed,
        "sent": answers.len(),
        "sent_after_lock": due_after_lock,
        "answers": { "placed_201": accepted, "round_closed_409": closed, "other": other },
        "latency_ms": {
            "p50": milliseconds(&all, 0.50),
            "p99": milliseconds(&all, 0.99),
            "max": milliseconds(&all, 1.0),
            "last_5_s_before_lock": { "bets": last.len(), "p50": milliseconds(&last, 0.50), "p99": milliseconds(&last, 0.99) },
        },
        "journal": {
            "placed": journal.placed,
            "refused_round_closed": journal.refused_round_closed,
            "placed_at_or_after_lock": journal.placed_at_or_after_lock,
            "refused_before_lock": journal.refused_before_lock,
            "refused_otherwise": journal.refused_otherwise,
        },
        "bets_in_ledger": bets_in_ledger,
        "exceptions": exceptions,
        "scheduler_locked_late_ms_real_time": lock_late_ms,
        "clock_read_from_journal": clock_read_from_journal,
        "round_status": locked.status.as_str(),
        "verify_ok": report.ok(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_piles_up_before_the_lock_and_sends_a_few_after_it() {
        let keys = (0..10_000).map(|i| format!("k{i}")).collect();
        let planned = plan(keys, &mut XorShift(7));
        let seconds = |p: &Planned| p.due.num_milliseconds() as f64 / 1000.0;
        let after = planned
            .iter()
            .filter(|p| p.due >= chrono::Duration::zero())
            .count();
        assert_eq!(after, 200, "one in fifty after the lock");
        assert!(planned.iter().all(|p| (-60.0..2.0).contains(&seconds(p))));
        let last_five = planned
            .iter()
            .filter(|p| (-5.0..0.0).contains(&seconds(p)))
            .count();
        let first_five = planned
            .iter()
            .filter(|p| (-60.0..-55.0).contains(&seconds(p)))
            .count();
        assert!(
            last_five > 5 * first_five,
            "{last_five} bets in the last 5 s, {first_five} in the first 5 s"
        );
        assert!(planned.windows(2).all(|w| w[0].due <= w[1].due));
    }
}
