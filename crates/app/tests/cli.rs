//! The `updown` binary as an operator uses it: real processes, a temporary
//! SQLite database, a simulated clock, `--json` output read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Cli {
    folder: PathBuf,
    clock_start: std::cell::RefCell<String>,
}

impl Cli {
    fn new(name: &str) -> Cli {
        let folder = std::env::temp_dir().join(format!("updown-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        Cli {
            folder,
            // 10:00 in New York on a Tuesday: round 20261124 takes bets.
            clock_start: std::cell::RefCell::new("2026-11-24T15:00:00Z".into()),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updown"));
        for variable in [
            "REDIS_URL",
            "ORACLE",
            "ORACLE_CSV_PATH",
            "FEE_BPS",
            "TIE_POLICY",
            "MAX_BET",
            "EXTRA_CLOSURES",
            "CLOCK_SPEED",
            "RUST_LOG",
        ] {
            command.env_remove(variable);
        }
        command
            .current_dir(&self.folder)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", self.folder.join("cli.db").display()),
            )
            .env("CLOCK_START", self.clock_start.borrow().as_str())
            .args(args)
            .output()
            .expect("run updown")
    }

    /// Runs `args` with `UPDOWN_TEST_CRASH=point`: the process must kill
    /// itself there.
    fn crashes_at(&self, point: &str, args: &[&str]) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updown"));
        let output = command
            .current_dir(&self.folder)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", self.folder.join("cli.db").display()),
            )
            .env("CLOCK_START", self.clock_start.borrow().as_str())
            .env("UPDOWN_TEST_CRASH", point)
            .args(args)
            .output()
            .expect("run updown");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("SIGKILL at {point}")),
            "{args:?} did not reach {point}: {stderr}"
        );
        assert!(!output.status.success(), "killed, not finished");
    }

    /// Runs with --json, expects success, parses stdout.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    /// Runs with --json, expects failure, returns (exit code, error JSON).
    fn json_error(&self, args: &[&str]) -> (i32, Value) {
        let mut all = args.to_vec();
        all.push("--json");
        let output = self.run(&all);
        assert!(!output.status.success(), "{args:?} should fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stderr
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON error in {stderr}"));
        (
            output.status.code().unwrap_or(-1),
            serde_json::from_str(line).unwrap(),
        )
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

fn error_code(error: &Value) -> &str {
    error["error"]["code"].as_str().unwrap_or_default()
}

#[test]
fn an_operator_runs_a_round_from_the_command_line() {
    let cli = Cli::new("round");
    assert_eq!(cli.json(&["migrate"])["backend"], "sqlite");
    let seeded = cli.json(&["seed", "--users", "3", "--balance", "100USDC"]);
    assert_eq!(seeded["created"], 3);
    assert_eq!(cli.json(&["seed", "--users", "3"])["already_existed"], 3);
    let opened = cli.json(&["open-round"]);
    assert_eq!(opened["code"], "20261124");
    assert_eq!(opened["status"], "OPEN");

    // Without --json, `bet` prints the bet id alone.
    let bet = cli.run(&[
        "bet",
        "--user",
        "user1@example.com",
        "--side",
        "UP",
        "--amount",
        "1.5USDC",
    ]);
    assert!(
        bet.status.success(),
        "{}",
        String::from_utf8_lossy(&bet.stderr)
    );
    let id: i64 = String::from_utf8_lossy(&bet.stdout)
        .trim()
        .parse()
        .expect("bet prints its id");
    assert!(id > 0);
    let second = cli.json(&[
        "bet",
        "--user",
        "user2@example.com",
        "--side",
        "down",
        "--amount",
        "2500000",
    ]);
    assert_eq!(second["stake"], 2_500_000);

    let balance = cli.json(&["balance", "--user", "user1@example.com"]);
    assert_eq!(balance["available"], 100_000_000 - 1_500_000);
    let round = cli.json(&["round", "show", "--code", "20261124"]);
    assert_eq!(
        (
            round["status"].as_str(),
            round["pool_up"].as_i64(),
            round["pool_down"].as_i64()
        ),
        (Some("OPEN"), Some(1_500_000), Some(2_500_000))
    );
    assert!(round["result"].is_null());

    cli.json(&[
        "lock-round",
        "--code",
        "20261124",
        "--reason",
        "testing an early lock",
        "--actor",
        "cli:olga",
    ]);
    let (_, too_early) =
        cli.json_error(&["settle-round", "--code", "20261124", "--result", "AUTO"]);
    assert_eq!(error_code(&too_early), "too_early");
    let manual = [
        "settle-round",
        "--code",
        "20261124",
        "--result",
        "DOWN",
        "--reason",
        "test of a manual result",
    ];
    let (_, before_close) = cli.json_error(&manual);
    assert_eq!(
        error_code(&before_close),
        "too_early",
        "no side before the close"
    );
    *cli.clock_start.borrow_mut() = "2026-11-24T21:01:00Z".into();
    let settled = cli.json(&[
        "settle-round",
        "--code",
        "20261124",
        "--result",
        "DOWN",
        "--reason",
        "test of a manual result",
    ]);
    assert_eq!(settled["status"], "SETTLED");
    assert_eq!(settled["result"], "DOWN");
    assert_eq!(settled["fee"], 15_000);
    assert_eq!(settled["dust"], 0);
    let (code, again) = cli.json_error(&[
        "settle-round",
        "--code",
        "20261124",
        "--result",
        "UP",
        "--reason",
        "again",
    ]);
    assert_eq!((code, error_code(&again)), (1, "conflict"));
    assert_eq!(
        cli.json(&["balance", "--user", "user2@example.com"])["available"],
        100_000_000 + 1_500_000 - 15_000
    );

    let withdrawal = cli.json(&[
        "withdraw",
        "--user",
        "user3@example.com",
        "--amount",
        "10USDC",
        "--to",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    ]);
    assert_eq!(withdrawal["status"], "QUEUED");
    assert_eq!(
        withdrawal["address"],
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    );
    let tvl = cli.json(&["tvl"]);
    assert_eq!(tvl["total"], 300_000_000 - 15_000);
    assert_eq!(tvl["withdrawals_pending"], 10_000_000);
    assert_eq!(cli.json(&["rounds"]).as_array().map(Vec::len), Some(1));

    // The withdrawal queue by hand: approve, then the chain tx; a second
    // one fails and its funds come back.
    let id = withdrawal["id"].to_string();
    let queued = cli.json(&["withdrawals", "list", "--status", "queued"]);
    assert_eq!(queued.as_array().map(Vec::len), Some(1));
    assert_eq!(
        cli.json(&["withdrawals", "approve", "--id", &id])["status"],
        "SUBMITTED"
    );
    let confirmed = cli.json(&["withdrawals", "confirm", "--id", &id, "--tx", "0xpaid"]);
    assert_eq!(
        (
            confirmed["status"].as_str(),
            confirmed["chain_tx_hash"].as_str()
        ),
        (Some("CONFIRMED"), Some("0xpaid"))
    );
    let (code, again) = cli.json_error(&["withdrawals", "fail", "--id", &id, "--reason", "late"]);
    assert_eq!((code, error_code(&again)), (1, "conflict"));
    let before = cli.json(&["balance", "--user", "user3@example.com"])["available"]
        .as_i64()
        .unwrap();
    let second = cli.json(&[
        "withdraw",
        "--user",
        "user3@example.com",
        "--amount",
        "2USDC",
        "--to",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    ]);
    let failed = cli.json(&[
        "withdrawals",
        "fail",
        "--id",
        &second["id"].to_string(),
        "--reason",
        "rejected",
    ]);
    assert_eq!(failed["failure_reason"], "rejected");
    assert_eq!(
        cli.json(&["balance", "--user", "user3@example.com"])["available"],
        before
    );
    let tvl = cli.json(&["tvl"]);
    assert_eq!(tvl["withdrawals_pending"], 0);
    assert_eq!(
        tvl["total"],
        300_000_000 - 15_000 - 10_000_000,
        "the confirmed 10 left custody"
    );
    // The first verify checks every transaction and writes checkpoint 1;
    // the next checks none (nothing new) and writes checkpoint 2.
    let verify = cli.json(&["verify"]);
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["scope"], "incremental", "{verify}");
    assert_eq!(verify["checked_transactions"], verify["transactions"]);
    assert_eq!(verify["checkpoint"]["id"], 1, "{verify}");
    let again = cli.json(&["verify"]);
    assert_eq!(again["checked_transactions"], 0, "{again}");
    assert_eq!(again["from_checkpoint"]["id"], 1, "{again}");
    assert_eq!(again["checkpoint"]["id"], 2, "{again}");
    let full = cli.json(&["verify", "--full"]);
    assert_eq!(full["ok"], true, "{full}");
    assert_eq!(full["scope"], "full");
    assert_eq!(full["transactions"], verify["transactions"]);
    let output = cli.run(&["verify"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("verify: OK (incremental: ") && text.contains("wrote checkpoint 3"),
        "{text}"
    );
}

#[test]
fn bad_input_gets_a_json_error_and_a_non_zero_exit() {
    let cli = Cli::new("errors");
    cli.json(&["seed", "--users", "1", "--balance", "5USDC"]);
    cli.json(&["open-round"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "1.5",
            ],
            "invalid_input",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "SIDEWAYS",
                "--amount",
                "1",
            ],
            "invalid_input",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "-3",
            ],
            "invalid_input",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "0.0000001USDC",
            ],
            "invalid_input",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "99999999999999999999",
            ],
            "invalid_input",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "0",
            ],
            "invalid_input",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "6USDC",
            ],
            "insufficient_funds",
        ),
        (
            &[
                "bet",
                "--user",
                "ghost@example.com",
                "--side",
                "UP",
                "--amount",
                "1",
            ],
            "not_found",
        ),
        (
            &[
                "bet",
                "--user",
                "user1@example.com",
                "--side",
                "UP",
                "--amount",
                "1",
                "--round",
                "20261127",
            ],
            "not_found",
        ),
        (
            &[
                "deposit",
                "--user",
                "user1@example.com",
                "--amount",
                "1",
                "--tx",
                "not a hash!",
            ],
            "invalid_input",
        ),
        (
            &[
                "deposit",
                "--user",
                "user1@example.com",
                "--amount",
                "1",
                "--tx",
                "seed-0",
            ],
            "conflict",
        ),
        (
            &["price", "set", "--date", "2026-11-26", "--close", "100"],
            "invalid_input",
        ),
        (
            &["calendar", "--from", "1990-01-01", "--to", "1990-02-01"],
            "invalid_input",
        ),
        (&["round", "show", "--code", "2026-11-24"], "invalid_input"),
    ];
    for (args, expected) in cases {
        let (code, error) = cli.json_error(args);
        assert_ne!(code, 0);
        assert_eq!(error_code(&error), *expected, "{args:?}: {error}");
        assert!(!error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .is_empty());
    }
    cli.json(&[
        "deposit",
        "--user",
        "user1@example.com",
        "--amount",
        "1",
        "--tx",
        "0xabc",
    ]);
    let (_, duplicate) = cli.json_error(&[
        "deposit",
        "--user",
        "user1@example.com",
        "--amount",
        "1",
        "--tx",
        "0xabc",
    ]);
    assert_eq!(error_code(&duplicate), "conflict");
    assert_eq!(
        cli.json(&["balance", "--user", "user1@example.com"])["available"],
        5_000_001
    );
    assert_eq!(cli.json(&["verify"])["ok"], true);
}

#[test]
fn bad_configuration_names_the_variable() {
    let cli = Cli::new("config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_updown"));
    let output = command
        .current_dir(&cli.folder)
        .env("FEE_BPS", "lots")
        .args(["tvl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("FEE_BPS"));
}

#[test]
fn config_explain_says_where_each_value_came_from_and_redacts_secrets() {
    let cli = Cli::new("explain");
    let dotenv = cli.folder.join(".env");
    std::fs::write(
        &dotenv,
        "FEE_BPS=250\nTIE_POLICY=refund\nADMIN_TOKEN=dotenv-admin-token-0123456789\n",
    )
    .unwrap();
    let config = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updown"));
        for variable in [
            "FEE_BPS",
            "MARKET_SYMBOL",
            "ADMIN_TOKEN",
            "REDIS_URL",
            "ORACLE",
            "ORACLE_API_KEY",
            "UPDOWN_ENV",
            "CLOCK_START",
            "CLOCK_SPEED",
        ] {
            command.env_remove(variable);
        }
        command
            .current_dir(&cli.folder)
            // The environment wins over .env.
            .env("TIE_POLICY", "down")
            .env(
                "DATABASE_URL",
                "postgres://updown:hunter2@db.example/updown",
            )
            .env("DEPOSIT_WEBHOOK_SECRET", "environment-webhook-secret-42")
            .args(args)
            .output()
            .unwrap()
    };
    let secrets = [
        "hunter2",
        "dotenv-admin-token",
        "environment-webhook-secret",
    ];
    let output = config(&["config", "--explain", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for secret in secrets {
        assert!(!stdout.contains(secret), "{secret} shown: {stdout}");
    }
    let view: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(view["dotenv"].as_str().unwrap().ends_with(".env"), "{view}");
    let setting = |variable: &str| {
        view["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["variable"] == variable)
            .unwrap_or_else(|| panic!("{variable} is listed"))
            .clone()
    };
    let seen = |variable: &str| {
        let s = setting(variable);
        (
            s["source"].as_str().unwrap().to_string(),
            s["value"].clone(),
        )
    };
    assert_eq!(seen("FEE_BPS"), (".env".into(), "250".into()));
    assert_eq!(seen("TIE_POLICY"), ("environment".into(), "down".into()));
    assert_eq!(seen("MARKET_SYMBOL"), ("default".into(), "NDX".into()));
    assert_eq!(seen("ADMIN_TOKEN"), (".env".into(), "[redacted]".into()));
    assert_eq!(
        seen("DATABASE_URL"),
        ("environment".into(), "postgres:[redacted]".into())
    );
    assert_eq!(
        seen("DEPOSIT_WEBHOOK_SECRET"),
        ("environment".into(), "[redacted]".into())
    );
    assert_eq!(seen("REDIS_URL"), ("default".into(), Value::Null));
    assert!(setting("ORACLE_API_KEY")["unused"].is_string());

    // As text too, and without --explain (values only).
    for args in [&["config", "--explain"][..], &["config"]] {
        let output = config(args);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{args:?}");
        assert!(text.contains("FEE_BPS"), "{args:?}: {text}");
        for secret in secrets {
            assert!(!text.contains(secret), "{args:?}: {secret} shown: {text}");
        }
    }
    let listed = String::from_utf8_lossy(&config(&["config"]).stdout).to_string();
    assert!(listed.lines().any(|line| line == "FEE_BPS=250"), "{listed}");

    // A refused value is explained up to where it came from.
    std::fs::write(&dotenv, "FEE_BPS=lots\n").unwrap();
    let output = config(&["config", "--explain"]);
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("FEE_BPS")).unwrap();
    assert!(line.contains(".env") && line.contains("lots"), "{text}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("FEE_BPS"));
}

#[test]
fn the_calendar_lists_sessions_with_their_close() {
    let cli = Cli::new("calendar");
    let sessions = cli.json(&["calendar", "--from", "2026-11-25", "--to", "2026-11-30"]);
    let pairs: Vec<(String, String)> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["date"].as_str().unwrap().to_string(),
                s["close"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("2026-11-25", "16:00"),
        ("2026-11-27", "13:00"),
        ("2026-11-30", "16:00"),
    ];
    assert_eq!(pairs, expected.map(|(d, c)| (d.to_string(), c.to_string())));
}

#[test]
fn the_demo_tells_the_story_and_verifies() {
    let cli = Cli::new("demo");
    let output = cli.run(&["demo"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for part in [
        "Players deposit",
        "A round opens",
        "Players bet",
        "The round locks",
        "Settlement",
        "Final balances",
        "Total value locked",
        "verify: OK",
    ] {
        assert!(stdout.contains(part), "demo output lacks {part:?}");
    }
    let report: Value = cli.json(&["demo"]);
    assert_eq!(report["ok"], true);
    assert!(
        !Path::new(&cli.folder.join("cli.db")).exists(),
        "the demo uses its own temporary database"
    );
}

#[test]
fn serve_answers_http_and_stops_cleanly_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let cli = Cli::new("serve");
    let mut child = Command::new(env!("CARGO_BIN_EXE_updown"))
        .current_dir(&cli.folder)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", cli.folder.join("serve.db").display()),
        )
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env_remove("CLOCK_START")
        .env_remove("ACCESS_LOG")
        .env_remove("RUST_LOG")
        .arg("serve")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start updown serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    let mut line = String::new();
    // The service announces its address once it listens; read until then.
    while stderr.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            address = rest.split_whitespace().next().map(str::to_string);
            break;
        }
        line.clear();
    }
    let address = address.expect("serve announced its address");
    let get = |path: &str, request_id: &str| {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: test\r\nx-request-id: {request_id}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    };
    let response = get("/health", "req-health");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"database\":\"ok\""), "{response}");
    assert!(get("/me", "req-no-key").starts_with("HTTP/1.1 401"));
    assert!(get("/nowhere", "req-lost").starts_with("HTTP/1.1 404"));
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "serve should exit cleanly on SIGTERM"
    );
    // The access log: one JSON line per request, whatever its answer.
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    for (request_id, route, status) in [
        ("req-health", "/health", 200),
        ("req-no-key", "/me", 401),
        ("req-lost", "unmatched", 404),
    ] {
        let lines: Vec<Value> = rest
            .lines()
            .filter(|l| l.contains(&format!("\"request_id\":\"{request_id}\"")))
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|l: &Value| l["target"] == "access")
            .collect();
        assert_eq!(lines.len(), 1, "{request_id}: {rest}");
        let fields = &lines[0]["fields"];
        assert_eq!(
            (
                fields["method"].as_str(),
                fields["route"].as_str(),
                fields["status"].as_i64()
            ),
            (Some("GET"), Some(route), Some(status)),
            "{}",
            lines[0]
        );
        assert!(fields["latency_us"].as_u64().is_some(), "{}", lines[0]);
    }
}

#[test]
fn production_refuses_to_serve_without_an_admin_token_or_a_wallet_key() {
    let cli = Cli::new("production");
    let serve = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_updown"));
        command
            .current_dir(&cli.folder)
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", cli.folder.join("p.db").display()),
            )
            .env("UPDOWN_ENV", "production")
            .env_remove("ADMIN_TOKEN")
            .env_remove("WALLET_XPUB")
            .env_remove("ORACLE")
            .env_remove("CLOCK_START")
            .env("BIND_ADDR", "127.0.0.1:0")
            .arg("serve");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let refused = |env: &[(&str, &str)], says: &[&str]| {
        let output = serve(env);
        assert_ne!(output.status.code(), Some(0), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for word in says {
            assert!(stderr.contains(word), "{env:?}: {stderr}");
        }
    };
    // The mock oracle (the default) and a simulated clock are refused,
    // and the message says what to set instead.
    refused(&[], &["ORACLE", "ORACLE=http"]);
    refused(&[("ORACLE", "mock")], &["ORACLE", "public"]);
    refused(
        &[
            ("ORACLE", "manual"),
            ("CLOCK_START", "2026-11-24T15:00:00Z"),
        ],
        &["CLOCK_START", "system clock"],
    );
    refused(
        &[("ORACLE", "manual"), ("CHAIN_SENDER", "mock")],
        &["CHAIN_SENDER", "manual"],
    );
    refused(&[("ORACLE", "manual")], &["ADMIN_TOKEN"]);
    refused(
        &[
            ("ORACLE", "manual"),
            ("ADMIN_TOKEN", "a-production-token-0123456789"),
        ],
        &["WALLET_XPUB"],
    );
}

/// Operators managed from the host, every change in the audit log, and
/// the log's chain verified and its head printed.
#[test]
fn operators_are_managed_from_the_command_line_and_the_audit_chain_holds() {
    let cli = Cli::new("operators");
    let added = cli.json(&[
        "operator",
        "add",
        "--email",
        "Tess@Ops.example.com",
        "--role",
        "treasurer",
    ]);
    assert_eq!(added["email"], "tess@ops.example.com");
    assert_eq!(added["role"], "treasurer");
    assert_eq!(added["password"].as_str().unwrap().len(), 24);
    let token = cli.json(&[
        "operator",
        "token",
        "--email",
        "tess@ops.example.com",
        "--name",
        "laptop",
    ]);
    assert!(
        token["token"].as_str().unwrap().starts_with("op_"),
        "{token}"
    );
    let changed = cli.json(&[
        "operator",
        "set-role",
        "--email",
        "tess@ops.example.com",
        "--role",
        "viewer",
        "--reason",
        "moved teams",
    ]);
    assert_eq!(changed["role"], "viewer");
    let reset = cli.json(&[
        "operator",
        "reset-password",
        "--email",
        "tess@ops.example.com",
    ]);
    assert_ne!(reset["password"], added["password"]);
    let cleared = cli.json(&[
        "operator",
        "reset-totp",
        "--email",
        "tess@ops.example.com",
        "--reason",
        "lost phone",
    ]);
    assert_eq!(cleared["totp"], false);
    let disabled = cli.json(&[
        "operator",
        "disable",
        "--email",
        "tess@ops.example.com",
        "--reason",
        "left",
        "--actor",
        "boss",
    ]);
    assert!(disabled["disabled_at"].is_string());
    let listed = cli.json(&["operator", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (code, error) = cli.json_error(&[
        "operator",
        "add",
        "--email",
        "tess@ops.example.com",
        "--role",
        "admin",
    ]);
    assert_eq!((code, error_code(&error)), (1, "conflict"));
    let text = cli.run(&[
        "operator",
        "add",
        "--email",
        "x@ops.example.com",
        "--role",
        "root",
    ]);
    assert!(!text.status.success());

    // Each change is audited, and the chain holds.
    let audit = cli.json(&["audit"]);
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "operator_disable",
            "operator_reset_totp",
            "operator_reset_password",
            "operator_set_role",
            "operator_token",
            "operator_add"
        ]
    );
    assert_eq!(audit[0]["actor"], "boss");
    assert_eq!(audit[0]["prev_hash"], audit[1]["hash"]);
    let verified = cli.json(&["audit", "verify"]);
    assert_eq!(
        (verified["ok"].as_bool(), verified["rows"].as_i64()),
        (Some(true), Some(6))
    );
    let head = cli.run(&["audit", "head"]);
    let head = String::from_utf8_lossy(&head.stdout);
    assert_eq!(
        head.trim(),
        format!("{} {}", audit[0]["id"], audit[0]["hash"].as_str().unwrap())
    );
}

/// An operator's step for a withdrawal and its audit entry commit together:
/// a crash right after the commit (the process SIGKILLed) leaves both.
#[test]
fn a_crash_right_after_failing_a_withdrawal_leaves_its_audit_entry() {
    let cli = Cli::new("audit-crash");
    cli.json(&["migrate"]);
    cli.json(&["seed", "--users", "1", "--balance", "100USDC"]);
    let withdrawal = cli.json(&[
        "withdraw",
        "--user",
        "user1@example.com",
        "--amount",
        "10USDC",
        "--to",
        "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed",
    ]);
    let id = withdrawal["id"].to_string();
    cli.crashes_at(
        "withdrawal_after_commit",
        &[
            "withdrawals",
            "fail",
            "--id",
            &id,
            "--reason",
            "address blocked",
            "--actor",
            "ops",
        ],
    );
    let failed = cli.json(&["withdrawals", "list", "--status", "failed"]);
    assert_eq!(failed.as_array().map(Vec::len), Some(1), "{failed}");
    assert_eq!(
        cli.json(&["balance", "--user", "user1@example.com"])["available"],
        100_000_000,
        "refunded"
    );
    let audit = cli.json(&["audit"]);
    let entry = &audit[0];
    assert_eq!(entry["action"], "withdrawal_failed", "{audit}");
    assert_eq!(entry["actor"], "ops");
    assert_eq!(entry["subject"], format!("withdrawal {id}"));
    assert_eq!(entry["reason"], "address blocked");
    assert_eq!(cli.json(&["audit", "verify"])["ok"], true);
    assert_eq!(cli.json(&["verify"])["ok"], true);
}

/// Limits set from the host apply under the player's own rules and are
/// audited with who set them and why; a refused one leaves no entry.
#[test]
fn limits_set_from_the_command_line_are_audited() {
    let cli = Cli::new("limits");
    cli.json(&["seed", "--users", "1", "--balance", "100USDC"]);
    let set = cli.json(&[
        "limits",
        "--user",
        "user1@example.com",
        "--per-round",
        "5USDC",
        "--exclude-until",
        "2027-01-01",
        "--reason",
        "asked by phone",
        "--actor",
        "support",
    ]);
    assert_eq!(set["max_stake_per_round"], 5_000_000, "{set}");
    assert!(set["excluded_until"].is_string(), "{set}");
    // An exclusion in force is never lifted, from the host either.
    let (code, error) = cli.json_error(&["limits", "--user", "user1@example.com"]);
    assert_ne!(code, 0);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("extended"),
        "{error}"
    );
    let audit = cli.json(&["audit"]);
    let entries = audit.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(
        (
            &entries[0]["action"],
            &entries[0]["actor"],
            &entries[0]["reason"]
        ),
        (
            &Value::from("user_limits"),
            &Value::from("support"),
            &Value::from("asked by phone")
        )
    );
    assert_eq!(cli.json(&["audit", "verify"])["ok"], true);
}

/// A change to an operator and its audit entry commit together: a crash
/// right after the commit leaves the account and who made it.
#[test]
fn a_crash_right_after_adding_or_disabling_an_operator_leaves_its_audit_entry() {
    let cli = Cli::new("operator-crash");
    cli.json(&["migrate"]);
    let add = [
        "operator",
        "add",
        "--email",
        "tess@ops.example.com",
        "--role",
        "admin",
        "--actor",
        "root",
    ];
    cli.crashes_at("operator_after_commit", &add);
    let disable = [
        "operator",
        "disable",
        "--email",
        "tess@ops.example.com",
        "--reason",
        "left",
        "--actor",
        "boss",
    ];
    cli.crashes_at("operator_after_commit", &disable);
    let listed = cli.json(&["operator", "list"]);
    assert!(listed[0]["disabled_at"].is_string(), "{listed}");
    let audit = cli.json(&["audit"]);
    let done: Vec<_> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str(),
                e["actor"].as_str(),
                e["reason"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        done,
        [
            (Some("operator_disable"), Some("boss"), Some("left")),
            (Some("operator_add"), Some("root"), None),
        ],
        "{audit}"
    );
    assert_eq!(cli.json(&["audit", "verify"])["ok"], true);
}

/// A result by hand and its audit entry commit together: a crash right
/// after the settlement begins leaves both, and a second run pays it out.
#[test]
fn a_crash_right_after_a_result_by_hand_begins_leaves_its_audit_entry() {
    let cli = Cli::new("settle-crash");
    cli.json(&["migrate"]);
    cli.json(&["seed", "--users", "2", "--balance", "100USDC"]);
    cli.json(&["open-round"]);
    for (user, side) in [("user1@example.com", "UP"), ("user2@example.com", "DOWN")] {
        cli.json(&["bet", "--user", user, "--side", side, "--amount", "10USDC"]);
    }
    cli.json(&[
        "lock-round",
        "--code",
        "20261124",
        "--reason",
        "closing time",
    ]);
    *cli.clock_start.borrow_mut() = "2026-11-24T21:01:00Z".into();
    let manual = [
        "settle-round",
        "--code",
        "20261124",
        "--result",
        "DOWN",
        "--reason",
        "the exchange's own close",
        "--actor",
        "ops",
    ];
    cli.crashes_at("settle_after_begin", &manual);
    let audit = cli.json(&["audit"]);
    assert_eq!(audit[0]["action"], "settle_down", "{audit}");
    assert_eq!(audit[0]["actor"], "ops");
    assert_eq!(audit[0]["subject"], "round 20261124");
    assert_eq!(audit[0]["reason"], "the exchange's own close");
    // Run again: it resumes, pays, and writes no second entry.
    let settled = cli.json(&manual);
    assert_eq!(settled["status"], "SETTLED");
    assert_eq!(settled["result"], "DOWN");
    let audit = cli.json(&["audit"]);
    let entries = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "settle_down")
        .count();
    assert_eq!(entries, 1, "{audit}");
    assert_eq!(cli.json(&["audit", "verify"])["ok"], true);
    assert_eq!(cli.json(&["verify"])["ok"], true);
}
