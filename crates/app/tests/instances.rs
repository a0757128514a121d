//! Real `updown serve` processes with accelerated clocks: one runs a
//! round's lock, settlement and the next opening by itself; two on one
//! PostgreSQL and Redis share events, settle once, and the survivor goes
//! on when the acting one is killed.

mod support;

#[path = "bank/cluster.rs"]
mod cluster;

use std::path::PathBuf;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::NaiveDate;
use serde_json::Value;
use support::process::{updown, Serve};
use support::sse::EventStream;
use updown_app::oracle::MockOracle;
use updown_domain::ids::Market;
use updown_domain::round::{decide, TiePolicy};

use support::process::ADMIN;
/// 10:00 in New York on Tuesday 2026-11-24: round 20261124 takes bets.
const MORNING: &str = "2026-11-24T15:00:00Z";

fn folder(name: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("updown-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

/// Runs a CLI command with `--json` at the morning's clock; its answer.
fn cli(database_url: &str, args: &[&str]) -> Value {
    cli_with(&[("DATABASE_URL", database_url)], args)
}

/// As `cli`, with more of the environment.
fn cli_with(env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut all = vec![("CLOCK_START", MORNING)];
    all.extend_from_slice(env);
    let output = updown(&all).args(args).arg("--json").output().unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Two funded players and a bet on each side of round 20261124.
fn prepare(database_url: &str) {
    cli(
        database_url,
        &["seed", "--users", "2", "--balance", "100USDC"],
    );
    cli(database_url, &["open-round"]);
    let bet = |user: &str, side: &str, amount: &str| {
        cli(
            database_url,
            &["bet", "--user", user, "--side", side, "--amount", amount],
        )
    };
    bet("user1@example.com", "UP", "30USDC");
    bet("user2@example.com", "DOWN", "10USDC");
}

/// Polls `GET uri` on `address` until it answers 200 and `done` holds for
/// its answer.
async fn wait_for(
    address: std::net::SocketAddr,
    uri: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    wait_for_answer(address, uri, within, |status, answer| {
        status == StatusCode::OK && done(answer)
    })
    .await
}

/// Polls `GET uri` on `address` until `done` holds for its status and answer.
async fn wait_for_answer(
    address: std::net::SocketAddr,
    uri: &str,
    within: Duration,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (status, answer) = support::call(address, "GET", uri, None, None).await;
        if done(status, &answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{uri} not as expected within {within:?}: {status} {answer}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The result the mock oracle's closes give round `date`.
fn expected_result(date: &str, previous: &str) -> &'static str {
    let market = Market::parse("NDX").unwrap();
    let close = |d: &str| MockOracle::price_for(&market, d.parse::<NaiveDate>().unwrap());
    decide(close(date), close(previous), TiePolicy::Down).as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_fast_clock_locks_settles_and_opens_the_next_round_by_itself() {
    let folder = folder("fast-clock");
    let database_url = format!("sqlite://{}", folder.join("fast.db").display());
    prepare(&database_url);
    // A minute before the lock (15:59:59 in New York), 60 times faster.
    let serve = Serve::start(
        &folder,
        "serve",
        &[
            ("DATABASE_URL", &database_url),
            ("CLOCK_START", "2026-11-24T20:58:59Z"),
            ("CLOCK_SPEED", "60"),
        ],
    );
    // Settlement is due five minutes after the close: about 6 s here.
    let round = wait_for(
        serve.address,
        "/rounds/20261124",
        Duration::from_secs(60),
        |r| r["status"] == "SETTLED",
    )
    .await;
    let result = expected_result("2026-11-24", "2026-11-23");
    assert_eq!(round["result"], result, "{round}");
    assert_eq!(round["close"]["source"], "mock", "{round}");
    let next = wait_for(
        serve.address,
        "/rounds/current",
        Duration::from_secs(10),
        |r| r["code"] == "20261125",
    )
    .await;
    assert_eq!(next["status"], "OPEN");
    serve.signal("-TERM");

    // One on each side: the winner takes the loser's stake less the 1% fee.
    let balance = |user: &str| {
        cli(&database_url, &["balance", "--user", user])["available"]
            .as_i64()
            .unwrap()
    };
    let (up, down) = (balance("user1@example.com"), balance("user2@example.com"));
    if result == "UP" {
        assert_eq!((up, down), (100_000_000 + 9_900_000, 90_000_000));
    } else {
        assert_eq!((up, down), (70_000_000, 100_000_000 + 29_700_000));
    }
    let report = cli(&database_url, &["verify", "--full"]);
    assert_eq!(report["ok"], true, "{report}");
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_events_settle_once_and_the_survivor_takes_over() {
    let (Some(postgres), Some(redis)) = (
        updown_store::testing::postgres_url("two instances"),
        support::redis_url("two instances"),
    ) else {
        return;
    };
    let scratch = updown_store::testing::scratch_postgres_database(&postgres)
        .await
        .unwrap();
    let folder = folder("two-instances");
    prepare(&scratch.url);
    // 2,400 times faster: the first round settles within a second, the
    // next day's round locks and settles about 36 s in.
    let env = [
        ("DATABASE_URL", scratch.url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("CLOCK_START", "2026-11-24T20:55:00Z"),
        ("CLOCK_SPEED", "2400"),
    ];
    let mut instances = vec![
        Serve::start(&folder, "a", &env),
        Serve::start(&folder, "b", &env),
    ];
    let (a, b) = (instances[0].address, instances[1].address);
    // Whatever the scheduler's status: at 2,400 times, a one-second tick
    // is 40 minutes of the clock, so between steps it is rightly stale.
    for address in [a, b] {
        wait_for_answer(address, "/health", Duration::from_secs(10), |_, h| {
            h["redis"] == "ok" && h["database"] == "ok"
        })
        .await;
    }
    wait_for(b, "/rounds/20261124", Duration::from_secs(30), |r| {
        r["status"] == "SETTLED"
    })
    .await;
    // Both were stepping; exactly one settled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled: Vec<usize> = instances.iter().map(|s| s.settled("20261124")).collect();
    assert_eq!(settled.iter().sum::<usize>(), 1, "{settled:?}");

    // A bet placed on A appears on B's event stream.
    let mut stream = EventStream::open(b, None).await.unwrap();
    let (status, carol) = support::call(
        a,
        "POST",
        "/users",
        Some(r#"{"email": "carol@example.com"}"#),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{carol}");
    let key = carol["api_key"].as_str().unwrap();
    let deposit = r#"{"email": "carol@example.com", "amount": 5000000, "tx_hash": "0xcarol"}"#;
    assert_eq!(
        support::call(
            a,
            "POST",
            "/simulate/deposit_webhook",
            Some(deposit),
            Some(ADMIN)
        )
        .await
        .0,
        StatusCode::CREATED
    );
    let (status, bet) = support::call(
        a,
        "POST",
        "/bets",
        Some(r#"{"side": "DOWN", "amount": 1234567}"#),
        Some(key),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bet}");
    // The other instance heard the bet through Redis and shows the pools
    // it reads from the database.
    let seen = stream.expect("pools", Duration::from_secs(5)).await;
    assert_eq!(seen["payload"]["pool_down"], 1_234_567, "{seen}");
    assert_eq!(seen["payload"]["bets_down"], 1, "{seen}");
    assert_eq!(seen["payload"]["round"], "20261125");
    assert!(
        seen["payload"].get("bet_id").is_none(),
        "no ids on the public stream"
    );
    // A CLI command's events reach the instances too: it waits for them
    // to leave before it exits.
    let opened = cli_with(
        &[("DATABASE_URL", &scratch.url), ("REDIS_URL", &redis)],
        &["open-round", "--code", "20261127"],
    );
    assert_eq!(opened["code"], "20261127", "{opened}");
    let seen = stream.expect("round_opened", Duration::from_secs(5)).await;
    assert_eq!(seen["payload"]["round"], "20261127", "{seen}");

    // Kill the one that settled; the survivor locks and settles the next
    // round alone.
    let acting = settled.iter().position(|n| *n == 1).unwrap();
    instances[acting].signal("-KILL");
    let survivor = instances.remove(1 - acting);
    let round = wait_for(
        survivor.address,
        "/rounds/20261125",
        Duration::from_secs(90),
        |r| r["status"] == "SETTLED",
    )
    .await;
    assert_eq!(round["result"], expected_result("2026-11-25", "2026-11-24"));
    // Log lines reach the file a moment after the fact (the writer
    // gathers them for up to 20 ms): poll for the line.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while survivor.settled("20261125") == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(survivor.settled("20261125"), 1);
    drop(instances);
    survivor.signal("-TERM");
    let report = cli(&scratch.url, &["verify", "--full"]);
    assert_eq!(report["ok"], true, "{report}");
    let carol_balance = cli(&scratch.url, &["balance", "--user", "carol@example.com"]);
    // Alone in 20261125: refunded whichever side won.
    assert_eq!(carol_balance["available"], 5_000_000, "{round}");
    drop(survivor);
    scratch.remove().await.unwrap();
    let _ = std::fs::remove_dir_all(&folder);
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (server, _) = base.rsplit_once('/').unwrap();
    if query.is_empty() {
        format!("{server}/{database}")
    } else {
        format!("{server}/{database}?{query}")
    }
}

/// Two new, empty PostgreSQL databases on TEST_POSTGRES_URL's server (a
/// dump holds a whole database, so a schema of the shared one will not
/// do): their URLs.
async fn fresh_databases(url: &str, names: &[&str]) -> Vec<String> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let mut urls = Vec::new();
    for name in names {
        let database = format!("updown_{name}_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
        urls.push(with_database(url, &database));
    }
    urls
}

async fn drop_databases(url: &str, names: &[&str]) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    for name in names {
        let database = format!("updown_{name}_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}

/// The ids of the bets in the database at `url`.
async fn bet_ids(url: &str) -> std::collections::BTreeSet<i64> {
    let ids: Vec<i64> = if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let ids = sqlx::query_scalar("SELECT id FROM bets")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let ids = sqlx::query_scalar("SELECT id FROM bets")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    };
    ids.into_iter().collect()
}

/// `updown backup` while `serve` takes bets, then `updown restore` into an
/// empty database: verify passes there, and every bet acknowledged before
/// the backup started is in it. SQLite always; PostgreSQL too where
/// TEST_POSTGRES_URL is set (required in CI).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_bet_load_restores_with_every_acknowledged_bet() {
    let folder = folder("backup");
    let mut targets = vec![(
        format!("sqlite://{}", folder.join("live.db").display()),
        format!("sqlite://{}", folder.join("restored.db").display()),
    )];
    let postgres = updown_store::testing::postgres_url("the backup story");
    if let Some(url) = &postgres {
        let urls = fresh_databases(url, &["backup_live", "backup_restored"]).await;
        targets.push((urls[0].clone(), urls[1].clone()));
    }
    for (live, restored) in targets {
        backup_under_load(&folder, &live, &restored).await;
    }
    if let Some(url) = &postgres {
        drop_databases(url, &["backup_live", "backup_restored"]).await;
    }
}

async fn backup_under_load(folder: &std::path::Path, live: &str, restored: &str) {
    let engine = if live.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let serve = Serve::start(
        folder,
        &format!("backup-{engine}"),
        &[("DATABASE_URL", live), ("CLOCK_START", MORNING)],
    );
    let address = serve.address;
    wait_for(
        address,
        "/rounds/current",
        Duration::from_secs(20),
        |round| round["code"] == "20261124",
    )
    .await;
    let mut keys = Vec::new();
    for i in 0..8 {
        let email = format!("p{i}@example.com");
        let (status, user) = support::call(
            address,
            "POST",
            "/users",
            Some(&format!(r#"{{"email": "{email}"}}"#)),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let (status, deposit) = support::call(
            address,
            "POST",
            "/simulate/deposit_webhook",
            Some(&format!(
                r#"{{"email": "{email}", "amount": 1000000000, "tx_hash": "0x{:064x}"}}"#,
                i + 1
            )),
            Some(ADMIN),
        )
        .await;
        assert!(status.is_success(), "{deposit}");
        keys.push(user["api_key"].as_str().unwrap().to_string());
    }

    // Players bet all along; each acknowledged bet is noted with the
    // instant its answer came.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut players = Vec::new();
    for key in keys {
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        players.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, bet) = support::call(
                    address,
                    "POST",
                    "/bets",
                    Some(r#"{"side": "UP", "amount": 1000}"#),
                    Some(&key),
                )
                .await;
                assert_eq!(status, StatusCode::CREATED, "{bet}");
                let id = bet["id"].as_i64().unwrap();
                acknowledged
                    .lock()
                    .unwrap()
                    .push((id, std::time::Instant::now()));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let file = folder.join(format!("{engine}.backup"));
    let started = std::time::Instant::now();
    let backup = {
        let (live, file) = (live.to_string(), file.clone());
        tokio::task::spawn_blocking(move || {
            cli_with(
                &[("DATABASE_URL", &live)],
                &["backup", "--to", file.to_str().unwrap()],
            )
        })
        .await
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for player in players {
        player.await.unwrap();
    }
    assert!(backup["bytes"].as_u64().unwrap() > 0, "{backup}");
    let before: Vec<i64> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(id, _)| *id)
        .collect();
    let after = acknowledged.lock().unwrap().len() - before.len();
    assert!(
        before.len() >= 8 && after >= 8,
        "{engine}: bets went on around the backup ({} before, {after} after)",
        before.len()
    );

    let restore = cli_with(
        &[("DATABASE_URL", restored)],
        &["restore", "--from", file.to_str().unwrap()],
    );
    assert_eq!(restore["verify"]["ok"], true, "{engine}: {restore}");
    let ids = bet_ids(restored).await;
    let missing: Vec<&i64> = before.iter().filter(|id| !ids.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "{engine}: acknowledged before the backup, missing from it: {missing:?}"
    );
    assert_eq!(restore["bets"].as_u64().unwrap() as usize, ids.len());
    // Restoring again over it is refused: restores go into empty databases.
    let again = updown(&[("DATABASE_URL", restored), ("CLOCK_START", MORNING)])
        .args(["restore", "--from", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(serve);
}

/// Runs `sql` on a scratch cluster.
async fn on_cluster(url: &str, sql: &str) {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::raw_sql(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

/// DATABASE_READ_URL against a real streaming replica of a scratch
/// cluster (never the shared server): a player's bets are read from it
/// while it keeps up; with its replay paused they come from the primary
/// (the newest bet shows, though the replica has not replayed it) and
/// /health says degraded; killed, reads go on at once from the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_read_from_the_replica_and_from_the_primary_when_it_lags_or_dies() {
    use updown_domain::round::Side;
    use updown_store::ReplicaState;
    // Scratch clusters need PostgreSQL's server programs: present where
    // the PostgreSQL tests run (required in CI), not on a bare machine.
    if updown_store::testing::postgres_url("the read replica story").is_none() {
        return;
    }
    let primary = cluster::Cluster::start("replica-primary");
    let standby = primary.replica("replica-standby");
    let config = updown_app::config::Config::with(&[
        ("DATABASE_URL", primary.url().as_str()),
        ("DATABASE_READ_URL", standby.url().as_str()),
        ("READ_REPLICA_MAX_LAG_MS", "300"),
        ("CLOCK_START", MORNING),
    ])
    .unwrap();
    let app = updown_app::startup::app(config).await.unwrap();
    let ann = app.create_user("ann@example.com").await.unwrap().id;
    app.deposit(
        ann,
        updown_domain::Micros::usdc(100).unwrap(),
        "0xfund-ann",
        0,
        None,
    )
    .await
    .unwrap();
    app.open_round(None).await.unwrap();
    let bet = |app: updown_app::services::App| async move {
        app.place_bet(
            ann,
            Side::Up,
            updown_domain::Micros::usdc(1).unwrap(),
            None,
            None,
        )
        .await
        .unwrap()
        .id
    };
    let first = bet(app.clone()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !matches!(app.check_replica().await, ReplicaState::Ok(_))
        || app.bets_of_user(ann, None, 10).await.unwrap().len() != 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            app.replica_state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Replay paused: the replica falls behind, lists read from the primary.
    on_cluster(&standby.url(), "SELECT pg_wal_replay_pause()").await;
    let second = bet(app.clone()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let ReplicaState::Lagging(lag) = app.check_replica().await {
            assert!(lag > Duration::from_millis(300), "{lag:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            app.replica_state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ids: Vec<_> = app
        .bets_of_user(ann, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, vec![second, first], "the newest bet, from the primary");
    let router = updown_app::api::router(app.clone());
    let health = |router: axum::Router| async move {
        use tower::ServiceExt;
        let response = router
            .oneshot(
                axum::http::Request::get("/health")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    };
    let (status, report) = health(router.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            report["status"].as_str(),
            report["replica"]["status"].as_str()
        ),
        (Some("degraded"), Some("lagging")),
        "{report}"
    );

    // Replay resumed: back to the replica.
    on_cluster(&standby.url(), "SELECT pg_wal_replay_resume()").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !matches!(app.check_replica().await, ReplicaState::Ok(_)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            app.replica_state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health(router.clone()).await.1["replica"]["status"], "ok");

    // Killed: the very next read still answers (from the primary), before
    // any check has noticed.
    assert!(standby.crash());
    let third = bet(app.clone()).await;
    let ids: Vec<_> = app
        .bets_of_user(ann, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ids, vec![third, second, first]);
    assert!(matches!(app.check_replica().await, ReplicaState::Down(_)));
    let (status, report) = health(router).await;
    assert_eq!(
        (status, report["replica"]["status"].as_str()),
        (StatusCode::OK, Some("down"))
    );
    assert!(app.verify().await.unwrap().ok());
}
