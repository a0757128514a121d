//! Deposits read from a real chain: anvil, the dev token, the watcher.
//! Credited after exactly MIN_CONFIRMATIONS and once, through reorgs,
//! restarts, a second instance and a failing node; a deep reorg halts
//! crediting until acknowledged; custody reconciles against the chain.

mod support;

use std::sync::Arc;

use alloy::primitives::{Address, U256};
use serde_json::{json, Value};
use support::anvil::{Anvil, ACCOUNTS, HOT_WALLET};
use support::{at, call, usdc, Db, TestApp};
use updown_app::services::App;
use updown_domain::ids::UserId;
use updown_domain::Micros;
use updown_store::on_both_backends;

on_both_backends!(
    a_deposit_is_pending_until_min_confirmations_then_credited_once,
    a_reorg_that_drops_an_unconfirmed_deposit_never_credits_it,
    a_reorg_that_moves_a_deposit_credits_it_once,
    a_deep_reorg_halts_crediting_until_an_operator_acknowledges_it,
    the_watcher_backs_off_from_a_failing_node_and_catches_up,
    custody_reconciles_equal_and_finds_a_shortfall_behind_the_ledgers_back,
);

const MORNING: &str = "2026-11-24T15:00:00Z";
const ADMIN: &str = "admin-token-for-chain-tests-0123";
const CONFIRMATIONS: u64 = 3;
const FIVE_USDC: u64 = 5_000_000;

/// The settings of an app watching `token` on `anvil`.
fn watching(url: &str, token: Address) -> Vec<(&'static str, String)> {
    vec![
        ("DEPOSIT_SOURCE", "evm".into()),
        ("EVM_RPC_URL", url.into()),
        ("EVM_CHAIN_ID", "31337".into()),
        ("DEPOSIT_TOKEN", token.to_checksum(None)),
        ("MIN_CONFIRMATIONS", CONFIRMATIONS.to_string()),
        ("HOT_WALLET_ADDRESS", HOT_WALLET.into()),
        ("ADMIN_TOKEN", ADMIN.into()),
    ]
}

async fn spawn(db: Db, settings: &[(&'static str, String)]) -> TestApp {
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::spawn(db, &pairs, at(MORNING)).await
}

/// A user with a deposit address.
async fn depositor(app: &App, name: &str) -> (UserId, String) {
    let user = app
        .create_user(&format!("{name}@example.com"))
        .await
        .unwrap();
    let (address, _) = app.deposit_address(&user).await.unwrap();
    (user.id, address)
}

async fn balance(app: &App, user: UserId) -> Micros {
    app.balance(user).await.unwrap()
}

/// The chain, the token and an app watching it; `None` without anvil.
async fn chain_and_app(db: Db, story: &str) -> Option<(Anvil, Address, TestApp)> {
    let anvil = Anvil::start(story).await?;
    let token = anvil.deploy_token().await;
    let t = spawn(db, &watching(&anvil.url, token)).await;
    Some((anvil, token, t))
}

async fn a_deposit_is_pending_until_min_confirmations_then_credited_once(db: Db) {
    let Some((anvil, token, t)) = chain_and_app(db, "deposit confirmations").await else {
        return;
    };
    let (user, address) = depositor(&t.app, "alice").await;
    anvil.mint(token, &address, FIVE_USDC).await;
    let mined_in = anvil.head().await;

    // One confirmation, then two: pending, with its confirmations.
    for confirmations in 1..CONFIRMATIONS {
        let tick = t.app.watch_step().await.unwrap();
        assert_eq!((tick.credited, tick.pending), (0, 1), "{confirmations}");
        let (credited, pending) = t.app.deposits_of(user, None, 10).await.unwrap();
        assert!(credited.is_empty());
        assert_eq!(pending[0].confirmations, confirmations as i64);
        assert_eq!(pending[0].block_number, mined_in as i64);
        assert_eq!(pending[0].amount.get(), FIVE_USDC as i64);
        assert_eq!(balance(&t.app, user).await, Micros::ZERO);
        anvil.mine(1).await;
    }
    // MIN_CONFIRMATIONS: credited, no longer pending.
    let tick = t.app.watch_step().await.unwrap();
    assert_eq!((tick.credited, tick.pending), (1, 0));
    assert_eq!(balance(&t.app, user).await, usdc(5));

    // Seen again, and told by the operator's CLI path: still one credit.
    anvil.mine(5).await;
    assert_eq!(t.app.watch_step().await.unwrap().credited, 0);
    let (credited, pending) = t.app.deposits_of(user, None, 10).await.unwrap();
    assert_eq!((credited.len(), pending.len()), (1, 0));
    let again = t
        .app
        .deposit(
            user,
            usdc(5),
            &credited[0].chain_tx_hash,
            credited[0].log_index,
            None,
        )
        .await;
    assert!(again.is_err(), "the same transfer credited twice");
    assert_eq!(balance(&t.app, user).await, usdc(5));

    // An amount no 64-bit micro-USDC holds is refused, not credited, and
    // the watcher goes on.
    let (whale, whale_address) = depositor(&t.app, "whale").await;
    anvil
        .rpc
        .mint(
            token,
            whale_address.parse().unwrap(),
            U256::from(1u128 << 70),
        )
        .await
        .unwrap();
    anvil.mint(token, &address, FIVE_USDC).await;
    anvil.mine(CONFIRMATIONS).await;
    let tick = t.app.watch_step().await.unwrap();
    assert_eq!((tick.credited, tick.pending), (1, 0));
    assert_eq!(balance(&t.app, whale).await, Micros::ZERO);
    assert_eq!(balance(&t.app, user).await, usdc(10));

    // The player sees it over HTTP too.
    let (_, created) = call(
        t.address,
        "POST",
        "/users",
        Some(r#"{"email":"bob@example.com"}"#),
        None,
    )
    .await;
    let key = created["api_key"].as_str().unwrap().to_string();
    let (status, mine) = call(t.address, "GET", "/me/deposits", None, Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(mine["required_confirmations"], CONFIRMATIONS);
    assert_eq!(mine["credited"], json!([]));
    t.assert_verified().await;
}

async fn a_reorg_that_drops_an_unconfirmed_deposit_never_credits_it(db: Db) {
    let Some((anvil, token, t)) = chain_and_app(db, "reorg drops a deposit").await else {
        return;
    };
    let (user, address) = depositor(&t.app, "alice").await;
    anvil.mint(token, &address, FIVE_USDC).await;
    assert_eq!(t.app.watch_step().await.unwrap().pending, 1);
    // Its block is replaced by an empty one, and the chain goes on.
    anvil.reorg(1, json!([])).await;
    anvil.mine(CONFIRMATIONS * 2).await;
    let tick = t.app.watch_step().await.unwrap();
    assert_eq!(
        (tick.credited, tick.pending, tick.halted_by_reorg),
        (0, 0, None)
    );
    assert_eq!(balance(&t.app, user).await, Micros::ZERO);
    t.assert_verified().await;
}

async fn a_reorg_that_moves_a_deposit_credits_it_once(db: Db) {
    let Some((anvil, token, t)) = chain_and_app(db, "reorg moves a deposit").await else {
        return;
    };
    let (user, address) = depositor(&t.app, "alice").await;
    anvil.mine(1).await;
    anvil.mint(token, &address, FIVE_USDC).await;
    let first = anvil.head().await;
    assert_eq!(t.app.watch_step().await.unwrap().pending, 1);
    // The last two blocks replaced; the transfer lands in the first.
    anvil
        .reorg(2, json!([[Anvil::mint_tx(token, &address, FIVE_USDC), 0]]))
        .await;
    t.app.watch_step().await.unwrap();
    let (_, pending) = t.app.deposits_of(user, None, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].block_number,
        first as i64 - 1,
        "moved a block down"
    );
    anvil.mine(CONFIRMATIONS).await;
    assert_eq!(t.app.watch_step().await.unwrap().credited, 1);
    anvil.mine(CONFIRMATIONS).await;
    assert_eq!(t.app.watch_step().await.unwrap().credited, 0);
    assert_eq!(balance(&t.app, user).await, usdc(5));
    t.assert_verified().await;
}

async fn a_deep_reorg_halts_crediting_until_an_operator_acknowledges_it(db: Db) {
    let Some((anvil, token, t)) = chain_and_app(db, "deep reorg").await else {
        return;
    };
    let mut events = t.app.events.subscribe();
    let (user, address) = depositor(&t.app, "alice").await;
    // Blocks enough that the reorg below leaves the token's deployment.
    anvil.mine(10).await;
    anvil.mint(token, &address, FIVE_USDC).await;
    anvil.mine(CONFIRMATIONS).await;
    assert_eq!(t.app.watch_step().await.unwrap().credited, 1);

    // Deeper than the confirmations: the credited block is replaced.
    anvil.reorg(CONFIRMATIONS + 2, json!([])).await;
    anvil.mint(token, &address, 2 * FIVE_USDC).await;
    anvil.mine(CONFIRMATIONS).await;
    let tick = t.app.watch_step().await.unwrap();
    let reorg = tick.halted_by_reorg.expect("halted");
    assert_eq!(tick.credited, 0);
    // Nothing reversed, nothing more credited, and it says so.
    assert_eq!(balance(&t.app, user).await, usdc(5));
    let (_, reorgs) = t.app.chain_records().await.unwrap();
    assert_eq!(reorgs[0].id, reorg);
    assert_eq!(
        reorgs[0].affected.lines().count(),
        1,
        "{}",
        reorgs[0].affected
    );
    assert!(reorgs[0].affected.contains(&format!("user {}", user.0)));
    let (_, health) = call(t.address, "GET", "/health", None, None).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["chain"]["status"], "degraded");
    let event = loop {
        let event = events.recv().await.unwrap();
        if event.kind.as_str() == "reorg_detected" {
            break event;
        }
    };
    assert_eq!(event.payload["reorg_id"], reorg);
    // The operator console shows it, with its credit.
    let (status, report) = call(t.address, "GET", "/admin/chain", None, Some(ADMIN)).await;
    assert_eq!(status, 200);
    assert_eq!(report["reorgs"][0]["id"], reorg);
    assert!(report["reorgs"][0]["acked_at"].is_null());
    assert_eq!(report["reorgs"][0]["affected"].as_array().unwrap().len(), 1);
    assert_eq!(
        call(t.address, "GET", "/admin/chain", None, None).await.0,
        401
    );
    // Still halted on the next poll.
    assert_eq!(
        t.app.watch_step().await.unwrap().halted_by_reorg,
        Some(reorg)
    );
    assert_eq!(balance(&t.app, user).await, usdc(5));

    // Acknowledged with a reason: crediting resumes from the cursor.
    assert!(t.app.ack_reorg(reorg, "cli:ops", " ").await.is_err());
    t.app
        .ack_reorg(reorg, "cli:ops", "checked on a block explorer")
        .await
        .unwrap();
    assert!(t.app.ack_reorg(reorg, "cli:ops", "twice").await.is_err());
    let tick = t.app.watch_step().await.unwrap();
    assert_eq!((tick.credited, tick.halted_by_reorg), (1, None));
    assert_eq!(balance(&t.app, user).await, usdc(15));
    let (_, health) = call(t.address, "GET", "/health", None, None).await;
    assert_eq!(health["status"], "ok", "{health}");
    t.assert_verified().await;
}

/// A node in front of anvil that fails as real providers do: 429, 503,
/// garbage, and "range too big" for eth_getLogs over more than 4 blocks.
async fn failing_proxy(
    upstream: String,
    failures: Arc<std::sync::Mutex<Vec<&'static str>>>,
) -> String {
    use axum::body::Bytes;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let handler = move |body: Bytes| {
        let (client, upstream, failures) = (client.clone(), upstream.clone(), failures.clone());
        async move {
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let next = failures.lock().unwrap().pop();
            match next {
                Some("429") => return (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response(),
                Some("503") => return (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
                Some("garbage") => {
                    return (StatusCode::OK, "{\"jsonrpc\":\"2.0\",\"id\":").into_response()
                }
                _ => {}
            }
            if request["method"] == "eth_getLogs" {
                let block = |name: &str| {
                    u64::from_str_radix(
                        request["params"][0][name]
                            .as_str()
                            .unwrap_or("0x0")
                            .trim_start_matches("0x"),
                        16,
                    )
                    .unwrap_or(0)
                };
                if block("toBlock") - block("fromBlock") + 1 > 4 {
                    let error = json!({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32005, "message": "query exceeds max block range 4"}});
                    return (StatusCode::OK, error.to_string()).into_response();
                }
            }
            let answer = client
                .post(&upstream)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                answer,
            )
                .into_response()
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::Router::new().route("/", axum::routing::post(handler)),
        )
        .await
        .unwrap()
    });
    format!("http://{address}")
}

async fn the_watcher_backs_off_from_a_failing_node_and_catches_up(db: Db) {
    let Some(anvil) = Anvil::start("failing node").await else {
        return;
    };
    let token = anvil.deploy_token().await;
    let failures = Arc::new(std::sync::Mutex::new(vec!["garbage", "503", "429"]));
    let proxy = failing_proxy(anvil.url.clone(), failures.clone()).await;
    let mut settings = watching(&proxy, token);
    settings.push(("EVM_LOG_RANGE", "64".into()));
    let t = spawn(db, &settings).await;
    let (user, address) = depositor(&t.app, "alice").await;
    anvil.mine(20).await;
    anvil.mint(token, &address, FIVE_USDC).await;
    anvil.mine(20).await;

    // Each failure fails one poll, by kind; then the range is halved until
    // the node takes it, and the watcher catches up.
    let mut errors = Vec::new();
    let mut credited = 0;
    for _ in 0..40 {
        match t.app.watch_step().await {
            Ok(tick) => credited += tick.credited,
            Err(e) => errors.push(e.to_string()),
        }
        if credited > 0 && failures.lock().unwrap().is_empty() {
            break;
        }
    }
    assert_eq!(credited, 1, "{errors:?}");
    for kind in ["rate_limited", "server", "garbage"] {
        assert!(
            errors.iter().any(|e| e.contains(kind)),
            "{kind} in {errors:?}"
        );
    }
    assert_eq!(balance(&t.app, user).await, usdc(5));
    let head = anvil.head().await;
    let (cursor, _) = t.app.chain_records().await.unwrap();
    assert_eq!(cursor.unwrap().next_block as u64, head + 2 - CONFIRMATIONS);
    t.assert_verified().await;
}

async fn custody_reconciles_equal_and_finds_a_shortfall_behind_the_ledgers_back(db: Db) {
    let Some((anvil, token, t)) = chain_and_app(db, "custody").await else {
        return;
    };
    let (_, alice) = depositor(&t.app, "alice").await;
    let (_, bob) = depositor(&t.app, "bob").await;
    anvil.mint(token, &alice, FIVE_USDC).await;
    anvil.mint(token, &bob, 2 * FIVE_USDC).await;
    anvil.mine(CONFIRMATIONS).await;
    assert_eq!(t.app.watch_step().await.unwrap().credited, 2);
    let r = t.app.reconcile().await.unwrap();
    assert_eq!(
        (r.status, r.chain_total.as_str(), r.ledger_total),
        ("equal", "15000000", 15_000_000)
    );
    assert_eq!(r.addresses, 3, "the hot wallet and two deposit addresses");

    // Tokens nobody credited: a surplus.
    let hot: Address = HOT_WALLET.parse().unwrap();
    anvil.mint(token, HOT_WALLET, 1_000_000).await;
    anvil.mine(CONFIRMATIONS).await;
    t.app.watch_step().await.unwrap();
    let r = t.app.reconcile().await.unwrap();
    assert_eq!((r.status, r.difference.as_str()), ("surplus", "1000000"));

    // Alice's deposit swept into the hot wallet (its key signs, here
    // impersonated): custody is where it was.
    anvil.impersonate(&alice).await;
    anvil.impersonate(HOT_WALLET).await;
    anvil
        .rpc
        .transfer_unlocked(token, alice.parse().unwrap(), hot, U256::from(FIVE_USDC))
        .await
        .unwrap();
    anvil.mine(CONFIRMATIONS).await;
    t.app.watch_step().await.unwrap();
    assert_eq!(t.app.reconcile().await.unwrap().status, "surplus");

    // Out of the hot wallet behind the ledger's back: a shortfall.
    let mut events = t.app.events.subscribe();
    anvil
        .rpc
        .transfer_unlocked(
            token,
            hot,
            ACCOUNTS[3].parse().unwrap(),
            U256::from(1_000_001u64),
        )
        .await
        .unwrap();
    anvil.mine(CONFIRMATIONS).await;
    t.app.watch_step().await.unwrap();
    let r = t.app.reconcile().await.unwrap();
    assert_eq!((r.status, r.difference.as_str()), ("shortfall", "-1"));
    assert_eq!(
        events.recv().await.unwrap().kind.as_str(),
        "custody_shortfall"
    );
    let (_, health) = call(t.address, "GET", "/health", None, None).await;
    assert_eq!(health["chain"]["custody"], "shortfall", "{health}");
    assert_eq!(health["status"], "degraded");
}

/// An app on the SQLite file `url`, as a command would open it.
async fn app_on(url: &str) -> App {
    let config = updown_app::config::Config::with(&[("DATABASE_URL", url)]).unwrap();
    updown_app::startup::app(config).await.unwrap()
}

/// `serve` watching `token` on `anvil`, crashing at `crash` if given;
/// waits until it exits (killed) when it crashes.
fn serve_watching(
    folder: &std::path::Path,
    name: &str,
    db_url: &str,
    anvil: &Anvil,
    token: Address,
    crash: Option<&str>,
) -> support::process::Serve {
    let settings = watching(&anvil.url, token);
    let mut env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("DATABASE_URL", db_url));
    env.push(("EVM_POLL_MS", "100"));
    if let Some(point) = crash {
        env.push(("UPDOWN_TEST_CRASH", point));
    }
    support::process::Serve::start(folder, name, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_just_before_and_just_after_a_credit_commits_credits_it_once() {
    let Some(anvil) = Anvil::start("serve killed around a credit").await else {
        return;
    };
    let token = anvil.deploy_token().await;
    let folder = std::env::temp_dir().join(format!("updown-chain-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let db_url = format!("sqlite://{}", folder.join("updown.db").display());
    let app = app_on(&db_url).await;
    let (user, address) = depositor(&app, "alice").await;
    anvil.mint(token, &address, FIVE_USDC).await;
    anvil.mine(CONFIRMATIONS).await;

    // Killed before the credit's commit: nothing credited.
    let mut serve = serve_watching(
        &folder,
        "before",
        &db_url,
        &anvil,
        token,
        Some("watcher_before_commit"),
    );
    serve.wait_killed();
    assert_eq!(balance(&app_on(&db_url).await, user).await, Micros::ZERO);

    // Killed right after it: credited, once.
    let mut serve = serve_watching(
        &folder,
        "after",
        &db_url,
        &anvil,
        token,
        Some("watcher_after_commit"),
    );
    serve.wait_killed();
    assert_eq!(balance(&app_on(&db_url).await, user).await, usdc(5));

    // A healthy restart goes on from the cursor: the next deposit is
    // credited, the first never again.
    anvil.mint(token, &address, FIVE_USDC).await;
    anvil.mine(CONFIRMATIONS).await;
    let serve = serve_watching(&folder, "healthy", &db_url, &anvil, token, None);
    support::eventually(
        "the second deposit",
        std::time::Duration::from_secs(20),
        || async { balance(&app_on(&db_url).await, user).await == usdc(10) },
    )
    .await;
    anvil.mine(CONFIRMATIONS).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(serve);
    let app = app_on(&db_url).await;
    assert_eq!(balance(&app, user).await, usdc(10));
    let report = app.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.failures());

    // What an operator reads from the CLI agrees.
    let settings = watching(&anvil.url, token);
    let mut env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("DATABASE_URL", &db_url));
    let cli = |args: &[&str]| support::process::updown(&env).args(args).output().unwrap();
    let status = cli(&["chain", "status", "--json"]);
    assert!(status.status.success(), "{status:?}");
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["cursor"].as_i64().unwrap() > 0, "{status}");
    assert_eq!(status["lag"], 0, "{status}");
    let text = String::from_utf8(cli(&["chain", "status"]).stdout).unwrap();
    assert!(text.contains("lag: 0 confirmed blocks"), "{text}");
    let polled = cli(&["chain", "watch", "--json"]);
    assert!(polled.status.success(), "{polled:?}");
    let polled: Value = serde_json::from_slice(&polled.stdout).unwrap();
    assert_eq!(polled["credited"], 0, "nothing credited twice: {polled}");
    let reconciled = cli(&["reconcile", "--json"]);
    assert!(reconciled.status.success(), "{reconciled:?}");
    let reconciled: Value = serde_json::from_slice(&reconciled.stdout).unwrap();
    assert_eq!(reconciled["status"], "equal", "{reconciled}");
    assert_eq!(reconciled["ledger_total"], 10_000_000);
    let text = String::from_utf8(cli(&["reconcile"]).stdout).unwrap();
    assert!(text.contains(": equal ("), "{text}");
    let unknown = cli(&["chain", "ack-reorg", "--id", "77", "--reason", "checked"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("77"),
        "{unknown:?}"
    );
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_credit_each_transfer_once() {
    if updown_store::testing::postgres_url("two watchers").is_none() {
        return;
    }
    let Some((anvil, token, t)) = chain_and_app(Db::Postgres, "two watchers").await else {
        return;
    };
    let settings = watching(&anvil.url, token);
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let twin = t.twin(&pairs);
    let mut users = Vec::new();
    for i in 0..4 {
        users.push(depositor(&t.app, &format!("p{i}")).await);
    }
    for round in 1..=5u64 {
        for (_, address) in &users {
            anvil.mint(token, address, round * 1_000_000).await;
        }
        anvil.mine(CONFIRMATIONS).await;
        // Both poll at once, again and again.
        let (a, b) = tokio::join!(
            async {
                let mut n = 0;
                for _ in 0..3 {
                    n += t.app.watch_step().await.map_or(0, |tick| tick.credited);
                }
                n
            },
            async {
                let mut n = 0;
                for _ in 0..3 {
                    n += twin.watch_step().await.map_or(0, |tick| tick.credited);
                }
                n
            },
        );
        assert_eq!(
            a + b,
            users.len(),
            "round {round}: each transfer credited once between them"
        );
    }
    for (user, _) in &users {
        assert_eq!(balance(&t.app, *user).await, usdc(15));
    }
    t.assert_verified().await;
    let reconciled = t.app.reconcile().await.unwrap();
    assert_eq!(reconciled.status, "equal", "{reconciled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_story_through_the_whole_product_on_a_local_chain() {
    let Some(anvil) = Anvil::start("the whole story on a chain").await else {
        return;
    };
    // The dev token, deployed by the CLI (on a database of its own).
    let scratch = std::env::temp_dir().join(format!("updown-story-cli-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let cli_db = format!("sqlite://{}", scratch.join("cli.db").display());
    let cli = |args: &[&str]| {
        let output = support::process::updown(&[
            ("EVM_RPC_URL", anvil.url.as_str()),
            ("DATABASE_URL", cli_db.as_str()),
        ])
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let deployed = cli(&["chain", "dev-token"]);
    let token: Address = deployed["address"].as_str().unwrap().parse().unwrap();
    // The hot wallet sends withdrawals: a key of its own, gas, and a
    // float the house put there (outside the ledger: a surplus).
    let hot = support::anvil::HotKeyFile::new(0x31);
    anvil.fund_gas(hot.address).await;
    const FLOAT: u64 = 50_000_000;
    anvil.mint(token, &hot.checksum(), FLOAT).await;
    let mut settings = watching(&anvil.url, token);
    settings.retain(|(k, _)| *k != "HOT_WALLET_ADDRESS");
    settings.push(("CHAIN_SENDER", "evm".into()));
    settings.push(("HOT_WALLET_KEY_FILE", hot.path.display().to_string()));
    let t = spawn(Db::Sqlite, &settings).await;

    // Two players sign up and ask for their deposit addresses.
    let mut players = Vec::new();
    for (name, usdc_amount) in [("ann", "40USDC"), ("ben", "25USDC")] {
        let body = format!(r#"{{"email":"{name}@example.com"}}"#);
        let (status, created) = call(t.address, "POST", "/users", Some(&body), None).await;
        assert_eq!(status, 201);
        let key = created["api_key"].as_str().unwrap().to_string();
        let (_, wallet) = call(t.address, "POST", "/wallets", None, Some(&key)).await;
        let address = wallet["address"].as_str().unwrap().to_string();
        // Funded on the chain: the CLI mints to the address.
        let minted = cli(&[
            "chain",
            "dev-token",
            "--token",
            &token.to_checksum(None),
            "--mint-to",
            &address,
            "--amount",
            usdc_amount,
        ]);
        assert_eq!(minted["minted"]["to"], address.as_str());
        players.push(key);
    }
    anvil.mine(CONFIRMATIONS).await;
    assert_eq!(t.app.watch_step().await.unwrap().credited, 2);
    let (_, deposits) = call(t.address, "GET", "/me/deposits", None, Some(&players[0])).await;
    assert_eq!(deposits["credited"][0]["amount"], 40_000_000);

    // They bet; the round locks and settles from the oracle.
    let round = t.open("20261124").await;
    for (key, side, stake) in [
        (&players[0], "UP", 30_000_000),
        (&players[1], "DOWN", 20_000_000),
    ] {
        let body = json!({ "side": side, "amount": stake }).to_string();
        let (status, bet) = call(t.address, "POST", "/bets", Some(&body), Some(key)).await;
        assert_eq!(status, 201, "{bet}");
    }
    t.clock.set(round.terms.settle_at);
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.settled, vec!["20261124".to_string()], "{tick:?}");

    // The books balance, and the chain holds what the ledger owes (and
    // the house's float).
    t.assert_verified().await;
    let reconciled = t.app.reconcile().await.unwrap();
    assert_eq!(
        (reconciled.status, reconciled.ledger_total),
        ("surplus", 65_000_000)
    );
    assert_eq!(reconciled.difference, FLOAT.to_string());

    // The winner withdraws 2 USDC to a fresh address; the hot wallet
    // sends it.
    let to = "0x00000000000000000000000000000000000b0b02";
    let body = json!({ "amount": 2_000_000, "address": to }).to_string();
    let (status, queued) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&body),
        Some(&players[0]),
    )
    .await;
    assert_eq!(status, 201, "{queued}");
    let tick = t.app.withdrawal_step().await.unwrap();
    assert_eq!(tick.submitted.len(), 1, "{tick:?}");
    let to_address: Address = to.parse().unwrap();
    anvil
        .await_token_balance(token, to_address, 2_000_000)
        .await;
    // Mined, not confirmed yet: gone from the chain, pending in the
    // ledger, and no shortfall.
    let reconciled = t.app.reconcile().await.unwrap();
    assert_eq!(reconciled.status, "surplus", "{reconciled:?}");
    assert_eq!(reconciled.difference, FLOAT.to_string());
    anvil.mine(CONFIRMATIONS).await;
    let tick = t.app.withdrawal_step().await.unwrap();
    assert_eq!(tick.confirmed.len(), 1, "{tick:?}");
    let (_, mine) = call(t.address, "GET", "/me/withdrawals", None, Some(&players[0])).await;
    assert_eq!(mine[0]["status"], "CONFIRMED", "{mine}");
    assert!(mine[0]["chain_tx_hash"].as_str().unwrap().starts_with("0x"));
    t.app.watch_step().await.unwrap();
    let reconciled = t.app.reconcile().await.unwrap();
    assert_eq!(
        (reconciled.status, reconciled.ledger_total),
        ("surplus", 63_000_000),
        "{reconciled:?}"
    );
    assert_eq!(reconciled.difference, FLOAT.to_string());
    let (_, health) = call(t.address, "GET", "/health", None, None).await;
    assert_eq!(health["sender"]["status"], "ok", "{health}");
    assert_eq!(health["sender"]["address"], hot.checksum().as_str());
    t.assert_verified().await;
    let _ = std::fs::remove_dir_all(&scratch);
}
