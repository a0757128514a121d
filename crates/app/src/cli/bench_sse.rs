//! `updown bench sse`: live fan-out. Many `GET /events` streams held open
//! on the real `updown serve` (one instance, or two sharing events through
//! Redis) while bets arrive at a fixed rate.
//!
//! 1. Seeds funded players with API keys and opens the round.
//! 2. Starts serve (or two, with `REDIS_URL`), opens the streams (split
//!    evenly between the instances) as plain HTTP/1.0 connections.
//! 3. Places bets over HTTP at `--rate` a second for `--seconds`, an open
//!    loop, round robin over the instances.
//! 4. Every stream times each `pools` event from its `since` (when the
//!    first bet it shows was committed and published) to its arrival; it
//!    counts `resync`s and whether it stayed open to the end. Serve's
//!    resident memory is sampled every second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bench::{BenchBackend, XorShift};
use super::bench_http::{
    free_port, prepare, resident_mb, scratch_database, start_serve, stop, unavailable, work_dir,
};
use crate::config::Config;
use crate::error::{AppError, AppResult};

pub struct SseArgs {
    pub backend: BenchBackend,
    pub url: String,
    pub streams: u32,
    pub rate: u32,
    pub seconds: u64,
    pub players: u32,
    /// Two instances sharing events through this Redis.
    pub redis: Option<String>,
}

/// What one stream saw.
#[derive(Default)]
struct Seen {
    /// Milliseconds from each `pools` event's `since` to its arrival.
    latencies: Vec<u32>,
    resyncs: u64,
    /// The stream ended (or failed) before the bench closed it.
    dropped: bool,
}

/// Reads one stream until serve ends it; it counts as dropped if that
/// happens before `done`. An HTTP/1.0 request, so the body is the raw event
/// stream (no chunked framing).
async fn watch(address: SocketAddr, done: Arc<AtomicBool>, opened: Arc<AtomicU64>) -> Seen {
    let mut seen = Seen::default();
    let Ok(mut socket) = tokio::net::TcpStream::connect(address).await else {
        seen.dropped = true;
        return seen;
    };
    if socket
        .write_all(b"GET /events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .is_err()
    {
        seen.dropped = true;
        return seen;
    }
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut answered = false;
    loop {
        let n = match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                seen.dropped = !done.load(Ordering::Relaxed);
                return seen;
            }
            Ok(n) => n,
        };
        let arrived = Utc::now();
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end();
            if !answered {
                if line.starts_with("HTTP/") {
                    answered = line.contains(" 200 ");
                    if !answered {
                        seen.dropped = true;
                        return seen;
                    }
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            if line == "event: resync" {
                seen.resyncs += 1;
            }
            if let Some(since) = line
                .strip_prefix("data: ")
                .filter(|d| d.contains("\"type\":\"pools\""))
                .and_then(since_of)
            {
                let late = (arrived - since).num_milliseconds().max(0);
                seen.latencies.push(late as u32);
            }
        }
    }
}

/// The `since` instant in a `pools` event's JSON.
fn since_of(data: &str) -> Option<DateTime<Utc>> {
    let start = data.find("\"since\":\"")? + "\"since\":\"".len();
    let end = start + data[start..].find('"')?;
    Some(
        DateTime::parse_from_rfc3339(&data[start..end])
            .ok()?
            .with_timezone(&Utc),
    )
}

/// Places bets at `rate` a second for `seconds` over the instances, round
/// robin; returns (accepted, refused or failed).
async fn place_bets(
    addresses: &[SocketAddr],
    keys: &[String],
    rate: u32,
    seconds: u64,
) -> AppResult<(u64, u64)> {
    crate::tls::install_crypto();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| unavailable("HTTP client", e))?;
    let accepted = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let total = u64::from(rate) * seconds;
    let every = Duration::from_secs(1).div_f64(f64::from(rate));
    let started = Instant::now();
    let mut random = XorShift(0x2545_F491_4F6C_DD1D);
    let mut tasks = Vec::with_capacity(total as usize);
    for n in 0..total {
        tokio::time::sleep_until((started + every.mul_f64(n as f64)).into()).await;
        let url = format!("http://{}/bets", addresses[n as usize % addresses.len()]);
        let key = keys[(random.next() % keys.len() as u64) as usize].clone();
        let side = if random.next().is_multiple_of(2) {
            "UP"
        } else {
            "DOWN"
        };
        let body = format!(r#"{{"side":"{side}","amount":{}}}"#, 1_000_000 + n % 1_000);
        let (client, accepted, failed) = (client.clone(), accepted.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let answer = client
                .post(url)
                .header("Authorization", format!("Bearer {key}"))
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await;
            match answer {
                Ok(answer) if answer.status().as_u16() == 201 => {
                    accepted.fetch_add(1, Ordering::Relaxed)
                }
                _ => failed.fetch_add(1, Ordering::Relaxed),
            };
        }));
    }
    for task in tasks {
        task.await.map_err(|e| AppError::Internal(e.into()))?;
    }
    Ok((
        accepted.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    ))
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    Some(sorted[((sorted.len() as f64 - 1.0) * p).round() as usize])
}

pub async fn sse(config: Config, args: SseArgs) -> AppResult<Value> {
    if args.redis.is_some() && args.backend == BenchBackend::Sqlite {
        return Err(AppError::Invalid(
            "two instances need PostgreSQL (--backend postgres)".into(),
        ));
    }
    let dir = work_dir()?;
    let keys_file = dir.join("keys.txt");
    let (scratch, url) = scratch_database(args.backend, &args.url, &dir).await?;
    let market = config.rounds.market.clone();
    prepare(config, &url, args.players, &keys_file).await?;
    let keys: Vec<String> = std::fs::read_to_string(&keys_file)
        .map_err(|e| unavailable("keys file", e))?
        .lines()
        .map(str::to_string)
        .collect();

    let instances = if args.redis.is_some() { 2 } else { 1 };
    let mut serves = Vec::new();
    let mut addresses = Vec::new();
    for instance in 0..instances {
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let folder = dir.join(format!("instance-{instance}"));
        std::fs::create_dir_all(&folder).map_err(|e| unavailable("work folder", e))?;
        let mut settings = vec![("SCHEDULER", "off")];
        if let Some(redis) = &args.redis {
            settings.push(("REDIS_URL", redis.as_str()));
        }
        let (serve, _) = start_serve(&url, address, &folder, &settings)?;
        serves.push(serve);
        addresses.push(address);
    }
    let idle_mb: Vec<Option<f64>> = serves.iter().map(|s| resident_mb(s.id())).collect();

    eprintln!(
        "opening {} streams over {instances} instance(s)...",
        args.streams
    );
    let done = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let mut watchers = Vec::with_capacity(args.streams as usize);
    for n in 0..args.streams {
        let address = addresses[n as usize % addresses.len()];
        watchers.push(tokio::spawn(watch(address, done.clone(), opened.clone())));
        if n % 500 == 499 {
            // Let the accept queues drain.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while opened.load(Ordering::Relaxed) < u64::from(args.streams) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let open_before_bets = opened.load(Ordering::Relaxed);
    let streams_mb: Vec<Option<f64>> = serves.iter().map(|s| resident_mb(s.id())).collect();
    eprintln!(
        "{open_before_bets} streams open; betting at {}/s for {} s...",
        args.rate, args.seconds
    );

    // Serve's memory, sampled every second while bets arrive.
    let sampling = Arc::new(AtomicBool::new(true));
    let pids: Vec<u32> = serves.iter().map(|s| s.id()).collect();
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak = vec![0.0f64; pids.len()];
            while sampling.load(Ordering::Relaxed) {
                for (peak, pid) in peak.iter_mut().zip(&pids) {
                    *peak = peak.max(resident_mb(*pid).unwrap_or(0.0));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            peak
        })
    };
    let (accepted, failed) = place_bets(&addresses, &keys, args.rate, args.seconds).await?;
    // The last pools events; then serve ends the streams as it stops.
    tokio::time::sleep(Duration::from_millis(500)).await;
    done.store(true, Ordering::Relaxed);
    sampling.store(false, Ordering::Relaxed);
    let peak_mb = sampler.await.map_err(|e| AppError::Internal(e.into()))?;
    for serve in &mut serves {
        stop(serve)?;
    }
    let mut latencies = Vec::new();
    let (mut resyncs, mut dropped, mut starved) = (0u64, 0u64, 0u64);
    for watcher in watchers {
        let seen = watcher.await.map_err(|e| AppError::Internal(e.into()))?;
        resyncs += seen.resyncs;
        dropped += u64::from(seen.dropped);
        starved += u64::from(seen.latencies.is_empty());
        latencies.extend(seen.latencies);
    }
    latencies.sort_unstable();
    let store = updown_store::connect(&url, 4)
        .await
        .map_err(AppError::Internal)?;
    let round = store
        .rounds(&market, 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("the round did not open")))?;
    let pools = store.pools(round.id).await?;
    eprintln!("verifying the ledger...");
    let report = store.verify().await?;
    drop(store);
    if let Some(db) = scratch {
        db.remove().await.map_err(AppError::Internal)?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({
        "benchmark": "sse",
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "instances": instances,
        "streams": args.streams,
        "streams_open_before_bets": open_before_bets,
        "bets_per_s": args.rate,
        "seconds": args.seconds,
        "bets_accepted": accepted,
        "bets_refused_or_failed": failed,
        "bets_in_ledger": pools.bets_up + pools.bets_down,
        "pools_events_received": latencies.len(),
        "delivery_ms": {
            "p50": percentile(&latencies, 0.50),
            "p99": percentile(&latencies, 0.99),
            "max": latencies.last(),
        },
        "streams_dropped": dropped,
        "streams_that_saw_no_pools": starved,
        "resyncs": resyncs,
        "serve_rss_mb": { "idle": idle_mb, "streams_open": streams_mb, "peak_while_betting": peak_mb },
        "verify_ok": report.ok(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_read_from_a_pools_event() {
        let data = r#"{"type":"pools","time":"2026-11-24T20:59:58.120Z","payload":{"round":"20261124","since":"2026-11-24T20:59:58.031Z"}}"#;
        assert_eq!(
            since_of(data).unwrap().to_rfc3339(),
            "2026-11-24T20:59:58.031+00:00"
        );
        assert!(since_of(r#"{"type":"pools"}"#).is_none());
    }
}
