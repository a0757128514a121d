//! The benchmark commands at a small size, so they keep working: each runs
//! the real binary on a fresh database of its own and its ledger verifies.
//! (Their full-size figures are in BENCHMARKS.md; tests never time.)

use std::process::Command;

use serde_json::Value;
use updown_store::testing::postgres_url;

fn bench(args: &[&str]) -> Value {
    bench_with(args, &[])
}

/// `updown bench ARGS --json` with `envs` set; its report.
fn bench_with(args: &[&str], envs: &[(&str, &str)]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_updown"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .env_remove("DATABASE_URL")
        .envs(envs.iter().copied())
        .output()
        .expect("run updown bench");
    assert!(
        output.status.success(),
        "bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on stdout")
}

/// Each backend to run on: SQLite, and PostgreSQL when TEST_POSTGRES_URL
/// is set.
fn backends(test: &str) -> Vec<Vec<String>> {
    let mut all = vec![vec!["--backend".to_string(), "sqlite".to_string()]];
    if let Some(url) = postgres_url(test) {
        all.push(
            ["--backend", "postgres", "--url", &url]
                .map(String::from)
                .to_vec(),
        );
    }
    all
}

#[test]
fn bench_verify_checks_only_the_bets_after_its_checkpoint() {
    for backend in backends("bench verify") {
        let mut args: Vec<&str> = vec!["verify"];
        args.extend(backend.iter().map(String::as_str));
        args.extend(["--users", "40", "--bets", "2000", "--new-bets", "300"]);
        let report = bench(&args);
        assert_eq!(report["ok"], true, "{report}");
        // 40 deposits and 2,000 bets, then 300 bets after the checkpoint.
        assert_eq!(report["transactions"], 2_340, "{report}");
        assert_eq!(report["incremental_checked_transactions"], 300, "{report}");
        assert_eq!(report["checkpoint"], 2, "{report}");
    }
}

#[test]
fn bench_settle_pays_every_winner_and_verifies() {
    for backend in backends("bench settle") {
        let mut args: Vec<&str> = vec!["settle"];
        args.extend(backend.iter().map(String::as_str));
        args.extend(["--users", "30", "--bets", "600"]);
        let report = bench(&args);
        assert_eq!(report["verify_ok"], true, "{report}");
        assert_eq!(report["bets"], 600);
        assert!(
            report["winning_bets_paid"].as_u64().unwrap() > 0,
            "{report}"
        );
    }
}

#[test]
fn bench_rush_takes_every_bet_before_the_lock_and_none_after() {
    for backend in backends("bench rush") {
        let mut args: Vec<&str> = vec!["rush"];
        args.extend(backend.iter().map(String::as_str));
        args.extend(["--players", "200", "--speed", "30"]);
        let report = bench(&args);
        assert_eq!(report["verify_ok"], true, "{report}");
        assert_eq!(report["exceptions"], 0, "{report}");
        assert_eq!(report["sent"], 200, "{report}");
        let placed = report["answers"]["placed_201"].as_u64().unwrap();
        let closed = report["answers"]["round_closed_409"].as_u64().unwrap();
        assert_eq!(placed + closed, 200, "{report}");
        assert_eq!(report["journal"]["placed"], placed, "{report}");
        assert_eq!(report["bets_in_ledger"], placed, "{report}");
        // Of the few sent after the lock, those received after it by the
        // service's clock were refused (the journal checked which).
        assert!(report["sent_after_lock"].as_u64().unwrap() > 0, "{report}");
        assert!(closed > 0, "{report}");
        assert_eq!(report["round_status"], "LOCKED", "{report}");
        assert_eq!(report["clock_read_from_journal"], true, "{report}");
    }
}

#[test]
fn bench_sse_delivers_the_pools_to_every_stream() {
    let redis = std::env::var("TEST_REDIS_URL").ok();
    for backend in backends("bench sse") {
        let mut runs = vec![None];
        // Two instances through Redis, on PostgreSQL.
        if backend.contains(&"postgres".to_string()) {
            runs.extend(redis.iter().map(Some));
        }
        for redis in runs {
            let mut args: Vec<&str> = vec!["sse"];
            args.extend(backend.iter().map(String::as_str));
            args.extend([
                "--streams",
                "40",
                "--rate",
                "100",
                "--seconds",
                "2",
                "--players",
                "40",
            ]);
            if let Some(redis) = redis {
                args.extend(["--redis", redis.as_str()]);
            }
            let report = bench(&args);
            assert_eq!(report["verify_ok"], true, "{report}");
            assert_eq!(report["instances"], if redis.is_some() { 2 } else { 1 });
            assert_eq!(report["streams_open_before_bets"], 40, "{report}");
            assert_eq!(report["bets_accepted"], 200, "{report}");
            assert_eq!(report["bets_in_ledger"], 200, "{report}");
            assert_eq!(report["streams_dropped"], 0, "{report}");
            assert_eq!(report["streams_that_saw_no_pools"], 0, "{report}");
            assert_eq!(report["resyncs"], 0, "{report}");
            // Coalesced: fewer pools events per stream than bets.
            let per_stream = report["pools_events_received"].as_u64().unwrap() / 40;
            assert!((1..200).contains(&per_stream), "{report}");
        }
    }
}

/// UPDOWN_BENCH_SERVE_WRAPPER runs serve under another program (a
/// profiler): here a script that notes its arguments, then runs them.
#[test]
fn a_bench_runs_serve_under_the_wrapper_it_is_given() {
    use std::os::unix::fs::PermissionsExt;
    let folder = std::env::temp_dir().join(format!("updown-wrapper-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let (script, noted) = (folder.join("wrap.sh"), folder.join("noted"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexec \"$@\"\n",
            noted.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |wrapper: &str| {
        Command::new(env!("CARGO_BIN_EXE_updown"))
            .args(["bench", "sse", "--backend", "sqlite", "--json"])
            .args([
                "--streams",
                "2",
                "--rate",
                "10",
                "--seconds",
                "1",
                "--players",
                "2",
            ])
            .env_remove("DATABASE_URL")
            .env("UPDOWN_BENCH_SERVE_WRAPPER", wrapper)
            .output()
            .expect("run updown bench")
    };
    let output = run(&format!("{} ", script.display()));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verify_ok"], true, "{report}");
    let noted = std::fs::read_to_string(&noted).unwrap();
    assert!(noted.trim_end().ends_with(" serve"), "{noted}");
    let program = noted.split_whitespace().next().unwrap();
    assert_eq!(
        std::fs::canonicalize(program).unwrap(),
        std::fs::canonicalize(env!("CARGO_BIN_EXE_updown")).unwrap()
    );
    // A wrapper that is not there: serve never starts, and the bench says so.
    let output = run("/no/such/profiler");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("start serve"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&folder);
}

/// wrk, from `TEST_WRK` (CI sets it, so there the test cannot skip) or the
/// PATH.
fn wrk() -> Option<String> {
    if let Ok(path) = std::env::var("TEST_WRK") {
        if !path.is_empty() {
            return Some(path);
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v wrk"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    (!path.is_empty()).then_some(path)
}

#[test]
fn bench_http_pairs_each_bets_run_with_a_pgbench_run() {
    let Some(wrk) = wrk() else {
        eprintln!("skipped: bench http (no wrk; apt-get install wrk, or set TEST_WRK)");
        return;
    };
    let folder = std::path::Path::new(&wrk).parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        folder.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for backend in backends("bench http") {
        let postgres = backend.contains(&"postgres".to_string());
        let mut args: Vec<&str> = vec!["http"];
        args.extend(backend.iter().map(String::as_str));
        // Few connections: pgbench's share the test server with other tests.
        args.extend(["--users", "50", "--connections", "4", "--seconds", "1"]);
        if postgres {
            args.extend(["--pgbench", "--pairs", "2"]);
        }
        let report = bench_with(&args, &[("PATH", &path)]);
        assert_eq!(report["verify_ok"], true, "{report}");
        assert_eq!(report["post_bets"]["non_2xx"], 0, "{report}");
        // wrk stops with requests in flight: those may commit unanswered.
        let answered = report["bets_answered_2xx"].as_u64().unwrap();
        let in_ledger = report["bets_in_ledger"].as_u64().unwrap();
        assert!(answered > 0, "{report}");
        assert!(
            (answered..=answered + 2 * 4).contains(&in_ledger),
            "{report}"
        );
        if !postgres {
            assert!(report.get("ratio_to_pgbench").is_none(), "{report}");
            continue;
        }
        let pairs = report["pairs"].as_array().expect("pairs listed");
        assert_eq!(pairs.len(), 2, "{report}");
        let mut ratios = Vec::new();
        for pair in pairs {
            let bets = pair["bets_per_s"].as_f64().unwrap();
            let tps = pair["pgbench_tps"].as_f64().unwrap();
            assert!(bets > 0.0 && tps > 0.0, "{report}");
            let ratio = pair["ratio"].as_f64().unwrap();
            assert!((ratio - bets / tps).abs() < 0.01, "{report}");
            ratios.push(ratio);
        }
        let median = report["ratio_to_pgbench"].as_f64().unwrap();
        assert!(
            (median - (ratios[0] + ratios[1]) / 2.0).abs() <= 0.011,
            "{report}"
        );
    }
}
