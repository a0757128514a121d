//! Withdrawals sent by the hot wallet to a real chain (anvil, the dev
//! token): signed for a nonce from the database and stored before any
//! broadcast, confirmed after MIN_CONFIRMATIONS, refunded when reverted,
//! replaced when stuck, held without funds or gas; exactly one transfer
//! whatever the crash, and one sender at a time across instances.

mod support;

use alloy::primitives::Address;
use serde_json::json;
use support::anvil::{Anvil, HotKeyFile, ACCOUNTS};
use support::{at, usdc, Db, TestApp};
use updown_app::services::{App, WorkerTick};
use updown_domain::ids::{UserId, WithdrawalId};
use updown_store::{on_both_backends, SendState, WithdrawalStatus};

on_both_backends!(
    a_withdrawal_reaches_its_address_once_after_min_confirmations,
    withdrawals_in_one_tick_take_consecutive_nonces_in_order_up_to_the_batch_max,
    a_reverted_transfer_fails_and_refunds_with_the_reason,
    a_stuck_transaction_is_replaced_and_confirmed_once,
    the_sender_holds_without_gas_or_tokens_and_says_why,
    a_nonce_spent_elsewhere_waits_for_an_operator_who_alone_may_refund_it,
    a_reorg_under_a_confirmed_withdrawal_is_detected_and_holds_sending,
    twenty_deposit_addresses_are_swept_with_permits_and_custody_agrees_per_place,
    a_stuck_sweep_is_replaced_and_booked_by_the_sender_of_serve,
    a_sweep_whose_nonce_was_spent_elsewhere_waits_for_an_operator,
);

const MORNING: &str = "2026-11-24T15:00:00Z";
const CONFIRMATIONS: u64 = 3;
const ADMIN: &str = "admin-token-for-sending-tests-01";

/// A fresh recipient address for story `n`.
fn recipient(n: u32) -> String {
    format!("0x{:040x}", 0xbeef_0000u64 + u64::from(n))
}

fn sending(anvil: &Anvil, token: Address, hot: &HotKeyFile) -> Vec<(&'static str, String)> {
    vec![
        ("CHAIN_SENDER", "evm".into()),
        ("EVM_RPC_URL", anvil.url.clone()),
        ("EVM_CHAIN_ID", "31337".into()),
        ("DEPOSIT_TOKEN", token.to_checksum(None)),
        ("MIN_CONFIRMATIONS", CONFIRMATIONS.to_string()),
        ("HOT_WALLET_KEY_FILE", hot.path.display().to_string()),
    ]
}

/// anvil, the token, a hot wallet with `gas` and `float` micro-USDC, and
/// an app sending from it with `extra` settings; `None` without anvil.
struct Story {
    anvil: Anvil,
    token: Address,
    hot: HotKeyFile,
    t: TestApp,
}

async fn story(
    db: Db,
    name: &str,
    seed: u8,
    gas: bool,
    float: u64,
    extra: &[(&'static str, &str)],
) -> Option<Story> {
    let anvil = Anvil::start(name).await?;
    let token = anvil.deploy_token().await;
    let hot = HotKeyFile::new(seed);
    if gas {
        anvil.fund_gas(hot.address).await;
    }
    if float > 0 {
        anvil.mint(token, &hot.checksum(), float).await;
    }
    let mut settings = sending(&anvil, token, &hot);
    settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let t = TestApp::spawn(db, &pairs, at(MORNING)).await;
    Some(Story {
        anvil,
        token,
        hot,
        t,
    })
}

async fn withdraw(app: &App, user: UserId, micros: i64, to: &str) -> WithdrawalId {
    app.withdraw(user, updown_domain::Micros::new(micros).unwrap(), to, None)
        .await
        .unwrap()
        .id
}

async fn step(app: &App) -> WorkerTick {
    let tick = app.withdrawal_step().await.unwrap();
    assert!(tick.errors.is_empty(), "{tick:?}");
    tick
}

async fn status(t: &TestApp, id: WithdrawalId) -> WithdrawalStatus {
    t.store().withdrawal(id).await.unwrap().status
}

async fn a_withdrawal_reaches_its_address_once_after_min_confirmations(db: Db) {
    let Some(s) = story(
        db,
        "a withdrawal on the chain",
        0x11,
        true,
        100_000_000,
        &[],
    )
    .await
    else {
        return;
    };
    let player = s.t.funded("winner", usdc(10)).await;
    let to = recipient(1);
    let id = withdraw(&s.t.app, player, 2_000_000, &to).await;

    let tick = step(&s.t.app).await;
    assert_eq!(tick.submitted, vec![id.0], "{tick:?}");
    let sent = s.t.store().withdrawal(id).await.unwrap();
    assert_eq!(sent.status, WithdrawalStatus::Submitted);
    let sends = s.t.store().sends_of(id).await.unwrap();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].nonce, 0, "a fresh key's first nonce");
    assert_eq!(
        sent.chain_tx_hash.as_deref(),
        Some(sends[0].signed.tx_hash.as_str())
    );
    let to_address: Address = to.parse().unwrap();
    // Mined at once (automine), but one confirmation is not enough.
    s.anvil
        .await_token_balance(s.token, to_address, 2_000_000)
        .await;
    assert!(step(&s.t.app).await.confirmed.is_empty());
    assert_eq!(status(&s.t, id).await, WithdrawalStatus::Submitted);
    s.anvil.mine(CONFIRMATIONS - 1).await;
    let tick = step(&s.t.app).await;
    assert_eq!(tick.confirmed, vec![id.0], "{tick:?}");
    assert_eq!(status(&s.t, id).await, WithdrawalStatus::Confirmed);
    assert_eq!(
        s.t.store().sends_of(id).await.unwrap()[0].state,
        SendState::Mined
    );

    // Nothing more is sent, however often the worker steps.
    for _ in 0..3 {
        assert!(step(&s.t.app).await.is_idle());
    }
    let head = s.anvil.head().await;
    let transfers = s
        .anvil
        .rpc
        .count_transfers_to(s.token, &[to_address], 0, head)
        .await
        .unwrap();
    assert_eq!(transfers, 1);
    assert_eq!(s.anvil.token_balance(s.token, to_address).await, 2_000_000);
    assert_eq!(
        s.anvil.token_balance(s.token, s.hot.address).await,
        98_000_000
    );
    assert_eq!(s.t.app.balance(player).await.unwrap(), usdc(8));
    s.t.assert_verified().await;
}

async fn withdrawals_in_one_tick_take_consecutive_nonces_in_order_up_to_the_batch_max(db: Db) {
    let Some(s) = story(
        db,
        "withdrawals in one tick",
        0x12,
        true,
        100_000_000,
        &[("WITHDRAWAL_BATCH_MAX", "10")],
    )
    .await
    else {
        return;
    };
    let player = s.t.funded("many", usdc(50)).await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(
            withdraw(
                &s.t.app,
                player,
                1_000_000 + i64::from(n),
                &recipient(100 + n),
            )
            .await,
        );
    }
    let first = step(&s.t.app).await;
    assert_eq!(
        first.submitted,
        ids[..10].iter().map(|id| id.0).collect::<Vec<_>>()
    );
    let second = step(&s.t.app).await;
    assert_eq!(
        second.submitted,
        ids[10..].iter().map(|id| id.0).collect::<Vec<_>>()
    );
    let sends = s.t.store().sends_of_many(&ids).await.unwrap();
    let nonces: Vec<i64> = sends.iter().map(|s| s.nonce).collect();
    assert_eq!(
        nonces,
        (0..12).collect::<Vec<i64>>(),
        "oldest first, no gap"
    );
    s.anvil.mine(CONFIRMATIONS).await;
    let done = step(&s.t.app).await;
    // Each was mined in a block of its own (automine): the first ones had
    // their confirmations by the second step.
    let confirmed: Vec<i64> = [second.confirmed, done.confirmed].concat();
    assert_eq!(confirmed, ids.iter().map(|id| id.0).collect::<Vec<_>>());
    for n in 0..12u32 {
        let to: Address = recipient(100 + n).parse().unwrap();
        assert_eq!(
            s.anvil.token_balance(s.token, to).await,
            1_000_000 + u64::from(n)
        );
    }
    s.t.assert_verified().await;
}

async fn a_reverted_transfer_fails_and_refunds_with_the_reason(db: Db) {
    let Some(s) = story(db, "a reverted transfer", 0x13, true, 100_000_000, &[]).await else {
        return;
    };
    let to = recipient(7);
    // The token refuses transfers to this address, as USDC's blocklist.
    let call = alloy::sol_types::SolCall::abi_encode(&blocked::setBlockedCall {
        account: to.parse().unwrap(),
        isBlocked: true,
    });
    s.anvil
        .call(
            "eth_sendTransaction",
            json!([{ "from": ACCOUNTS[0], "to": s.token.to_checksum(None),
                     "data": format!("0x{}", hex::encode(call)) }]),
        )
        .await;
    let player = s.t.funded("blocked", usdc(10)).await;
    let id = withdraw(&s.t.app, player, 3_000_000, &to).await;
    assert_eq!(s.t.app.balance(player).await.unwrap(), usdc(7));
    assert_eq!(step(&s.t.app).await.submitted, vec![id.0]);
    s.anvil.mine(CONFIRMATIONS).await;
    let tick = step(&s.t.app).await;
    assert_eq!(tick.failed, vec![id.0], "{tick:?}");
    let failed = s.t.store().withdrawal(id).await.unwrap();
    assert_eq!(failed.status, WithdrawalStatus::Failed);
    let reason = failed.failure_reason.unwrap();
    assert!(reason.contains("reverted"), "{reason}");
    assert!(reason.contains("DevUSDC: blocked address"), "{reason}");
    assert_eq!(
        s.t.store().sends_of(id).await.unwrap()[0].state,
        SendState::Reverted
    );
    assert_eq!(s.t.app.balance(player).await.unwrap(), usdc(10), "refunded");
    assert_eq!(
        s.anvil.token_balance(s.token, s.hot.address).await,
        100_000_000
    );
    s.t.assert_verified().await;
}

mod blocked {
    alloy::sol! {
        function setBlocked(address account, bool isBlocked) external;
    }
}

async fn a_stuck_transaction_is_replaced_and_confirmed_once(db: Db) {
    let Some(s) = story(
        db,
        "a stuck transaction",
        0x14,
        true,
        100_000_000,
        &[
            ("WITHDRAWAL_STUCK_AFTER_S", "60"),
            ("EXPLORER_TX_URL", "https://explorer.example/tx/{tx}"),
            ("ADMIN_TOKEN", ADMIN),
        ],
    )
    .await
    else {
        return;
    };
    // Nothing is mined unless asked: the transaction waits in the pool.
    s.anvil.call("evm_setAutomine", json!([false])).await;
    let player = s.t.funded("stuck", usdc(10)).await;
    let to = recipient(9);
    let id = withdraw(&s.t.app, player, 4_000_000, &to).await;
    assert_eq!(step(&s.t.app).await.submitted, vec![id.0]);
    // Not stuck yet: nothing replaced.
    s.t.advance(chrono::Duration::seconds(30));
    assert!(step(&s.t.app).await.replaced.is_empty());
    s.t.advance(chrono::Duration::seconds(31));
    let tick = step(&s.t.app).await;
    assert_eq!(tick.replaced, vec![id.0], "{tick:?}");
    let sends = s.t.store().sends_of(id).await.unwrap();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].nonce, sends[1].nonce);
    let fee = |i: usize| sends[i].signed.max_fee_per_gas.parse::<u128>().unwrap();
    assert!(fee(1) * 10 >= fee(0) * 11, "raised by at least a tenth");

    s.anvil.mine(CONFIRMATIONS).await;
    let tick = step(&s.t.app).await;
    assert_eq!(tick.confirmed, vec![id.0], "{tick:?}");
    let sends = s.t.store().sends_of(id).await.unwrap();
    let states: Vec<SendState> = sends.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![SendState::Replaced, SendState::Mined]);
    let confirmed = s.t.store().withdrawal(id).await.unwrap();
    assert_eq!(
        confirmed.chain_tx_hash.as_deref(),
        Some(sends[1].signed.tx_hash.as_str())
    );
    let to_address: Address = to.parse().unwrap();
    assert_eq!(s.anvil.token_balance(s.token, to_address).await, 4_000_000);

    // The operator sees both transactions, linked, the mined one with its
    // confirmations.
    let (status, queue) =
        support::call(s.t.address, "GET", "/admin/withdrawals", None, Some(ADMIN)).await;
    assert_eq!(status, 200, "{queue}");
    let txs = &queue[0]["transactions"];
    assert_eq!(txs[0]["state"], "replaced", "{queue}");
    assert_eq!(txs[1]["state"], "mined");
    assert_eq!(txs[1]["tx_hash"], sends[1].signed.tx_hash.as_str());
    assert!(
        txs[1]["confirmations"].as_i64().unwrap() >= CONFIRMATIONS as i64,
        "{queue}"
    );
    assert_eq!(
        txs[0]["explorer_url"],
        format!("https://explorer.example/tx/{}", sends[0].signed.tx_hash).as_str()
    );
    s.t.assert_verified().await;
}

async fn the_sender_holds_without_gas_or_tokens_and_says_why(db: Db) {
    let Some(s) = story(db, "a sender without funds", 0x15, false, 1_000_000, &[]).await else {
        return;
    };
    let player = s.t.funded("patient", usdc(10)).await;
    let id = withdraw(&s.t.app, player, 2_000_000, &recipient(11)).await;
    let tick = step(&s.t.app).await;
    assert!(tick.submitted.is_empty());
    let why = tick.held.unwrap();
    assert!(why.contains("MIN_GAS_BALANCE"), "{why}");
    assert_eq!(status(&s.t, id).await, WithdrawalStatus::Queued);
    let shown = s.t.app.sender.as_ref().unwrap().status();
    assert_eq!(shown.holding.as_deref(), Some(why.as_str()));
    let (_, health) = support::call(s.t.address, "GET", "/health", None, None).await;
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["sender"]["holding"], why.as_str());
    assert_eq!(health["sender"]["eth_wei"], "0");

    s.anvil.fund_gas(s.hot.address).await;
    let tick = step(&s.t.app).await;
    let why = tick.held.unwrap();
    assert!(why.contains("needs 2000000"), "{why}");
    assert_eq!(status(&s.t, id).await, WithdrawalStatus::Queued);

    s.anvil.mint(s.token, &s.hot.checksum(), 5_000_000).await;
    let tick = step(&s.t.app).await;
    assert_eq!(tick.submitted, vec![id.0]);
    assert_eq!(tick.held, None);
    assert_eq!(s.t.app.sender.as_ref().unwrap().status().holding, None);
}

/// The store on the SQLite file `url`, read directly.
async fn store_on(url: &str) -> std::sync::Arc<dyn updown_store::Store> {
    updown_store::connect(url, 2).await.unwrap()
}

/// An app on the SQLite file `url`, as a command would open it.
async fn app_on(url: &str) -> App {
    let config = updown_app::config::Config::with(&[("DATABASE_URL", url)]).unwrap();
    updown_app::startup::app(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_at_each_step_of_a_send_leaves_exactly_one_transfer() {
    let Some(anvil) = Anvil::start("serve killed while sending").await else {
        return;
    };
    let token = anvil.deploy_token().await;
    let hot = HotKeyFile::new(0x21);
    anvil.fund_gas(hot.address).await;
    anvil.mint(token, &hot.checksum(), 100_000_000).await;
    let folder = std::env::temp_dir().join(format!("updown-send-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let db_url = format!("sqlite://{}", folder.join("updown.db").display());
    let app = app_on(&db_url).await;
    let player = app.create_user("crashy@example.com").await.unwrap().id;
    app.deposit(player, usdc(50), "0xfund-crashy", 0, None)
        .await
        .unwrap();
    let mut settings = sending(&anvil, token, &hot);
    settings.retain(|(k, _)| *k != "MIN_CONFIRMATIONS");
    settings.push(("MIN_CONFIRMATIONS", "1".into()));
    settings.push(("DATABASE_URL", db_url.clone()));
    let serve = |name: &str, crash: Option<&str>| {
        let mut env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(point) = crash {
            env.push(("UPDOWN_TEST_CRASH", point));
        }
        support::process::Serve::start(&folder, name, &env)
    };
    let transfers_to = |to: Address| {
        let anvil = &anvil;
        async move {
            let head = anvil.head().await;
            anvil
                .rpc
                .count_transfers_to(token, &[to], 0, head)
                .await
                .unwrap()
        }
    };
    // Each point: (where it dies, what is stored and on the chain then).
    let points = [
        ("send_after_nonce", WithdrawalStatus::Submitting, 0, 0),
        ("send_after_sign", WithdrawalStatus::Submitting, 0, 0),
        ("send_after_store", WithdrawalStatus::Submitted, 1, 0),
        ("send_after_broadcast", WithdrawalStatus::Submitted, 1, 1),
        ("send_after_mined", WithdrawalStatus::Submitted, 1, 1),
    ];
    for (n, (point, status_then, sends_then, transfers_then)) in points.into_iter().enumerate() {
        let to = recipient(500 + n as u32);
        let to_address: Address = to.parse().unwrap();
        let amount = 1_000_000 + n as i64;
        let id = withdraw(&app_on(&db_url).await, player, amount, &to).await;
        let mut crashed = serve(point, Some(point));
        crashed.wait_killed();
        let store = store_on(&db_url).await;
        let w = store.withdrawal(id).await.unwrap();
        assert_eq!(w.status, status_then, "{point}");
        let sends = store.sends_of(id).await.unwrap();
        assert_eq!(sends.len(), sends_then, "{point}");
        assert_eq!(transfers_to(to_address).await, transfers_then, "{point}");

        // A healthy restart finishes it: one transfer, confirmed.
        let healthy = serve(&format!("{point}-healthy"), None);
        support::eventually(point, std::time::Duration::from_secs(30), || async {
            store_on(&db_url).await.withdrawal(id).await.unwrap().status
                == WithdrawalStatus::Confirmed
        })
        .await;
        drop(healthy);
        assert_eq!(transfers_to(to_address).await, 1, "{point}");
        assert_eq!(
            anvil.token_balance(token, to_address).await,
            amount as u64,
            "{point}"
        );
    }
    let app = app_on(&db_url).await;
    let report = app.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.failures());

    // The operator's list: each with its one transaction, and the hot
    // wallet's balances.
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listed = support::process::updown(&env)
        .args(["withdrawals", "list", "--json"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{listed:?}");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);
    for w in listed.as_array().unwrap() {
        assert_eq!(w["status"], "CONFIRMED", "{w}");
        assert_eq!(w["transactions"].as_array().unwrap().len(), 1, "{w}");
        assert_eq!(w["transactions"][0]["state"], "mined");
    }
    let text = support::process::updown(&env)
        .args(["withdrawals", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(" nonce 4 mined, "), "{text}");
    assert!(text.contains(" confirmations"), "{text}");
    assert!(
        text.contains(&format!("hot wallet {}", hot.checksum())),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&folder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_send_one_at_a_time_and_never_reuse_a_nonce() {
    if updown_store::testing::postgres_url("two senders").is_none() {
        return;
    }
    let Some(s) = story(Db::Postgres, "two senders", 0x22, true, 100_000_000, &[]).await else {
        return;
    };
    let settings = sending(&s.anvil, s.token, &s.hot);
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let twin = s.t.twin(&pairs);
    let player = s.t.funded("twins", usdc(60)).await;
    let mut ids = Vec::new();
    for round in 0..5u32 {
        for n in 0..4u32 {
            let to = recipient(700 + round * 10 + n);
            ids.push(withdraw(&s.t.app, player, 1_000_000, &to).await);
        }
        // Both step at once, again and again.
        let (a, b) = tokio::join!(
            async {
                let mut n = 0;
                for _ in 0..3 {
                    n += s.t.app.withdrawal_step().await.unwrap().submitted.len();
                }
                n
            },
            async {
                let mut n = 0;
                for _ in 0..3 {
                    n += twin.withdrawal_step().await.unwrap().submitted.len();
                }
                n
            },
        );
        assert_eq!(a + b, 4, "round {round}: each signed once between them");
    }
    let sends = s.t.store().sends_of_many(&ids).await.unwrap();
    let mut nonces: Vec<i64> = sends.iter().map(|s| s.nonce).collect();
    nonces.sort_unstable();
    assert_eq!(nonces, (0..20).collect::<Vec<i64>>());
    s.anvil.mine(CONFIRMATIONS).await;
    step(&s.t.app).await;
    for id in &ids {
        assert_eq!(status(&s.t, *id).await, WithdrawalStatus::Confirmed);
    }
    s.t.assert_verified().await;
}

async fn a_nonce_spent_elsewhere_waits_for_an_operator_who_alone_may_refund_it(db: Db) {
    let Some(s) = story(db, "a nonce conflict", 0x16, true, 100_000_000, &[]).await else {
        return;
    };
    s.anvil.call("evm_setAutomine", json!([false])).await;
    let player = s.t.funded("conflicted", usdc(10)).await;
    let id = withdraw(&s.t.app, player, 3_000_000, &recipient(21)).await;
    assert_eq!(step(&s.t.app).await.submitted, vec![id.0]);
    let sent = s.t.store().withdrawal(id).await.unwrap();

    // In the pool, perhaps mined any moment: nobody refunds it by hand,
    // even naming its own transaction, and resolve-nonce sees the nonce
    // unused.
    let by_hand =
        s.t.app
            .change_withdrawal(
                id,
                updown_store::WithdrawalChange::Fail {
                    reason: "the player asked".into(),
                    rejection: Some(updown_store::ChainRejection::Operator {
                        tx_hash: sent.chain_tx_hash.clone().unwrap(),
                    }),
                },
                "ops",
                None,
            )
            .await
            .unwrap_err();
    assert!(by_hand.to_string().contains("hot wallet"), "{by_hand}");
    let early =
        s.t.app
            .resolve_nonce(id, "ops", "too early")
            .await
            .unwrap_err();
    assert!(
        early.to_string().contains("not used on the chain"),
        "{early}"
    );

    // Another tool spends nonce 0 of the hot wallet with a higher fee.
    let hot = s.hot.checksum();
    s.anvil.impersonate(&hot).await;
    s.anvil
        .call(
            "eth_sendTransaction",
            json!([{ "from": hot, "to": hot, "value": "0x0", "nonce": "0x0", "gas": "0x5208",
                     "maxFeePerGas": "0x174876e800", "maxPriorityFeePerGas": "0x174876e800" }]),
        )
        .await;
    s.anvil
        .call("anvil_stopImpersonatingAccount", json!([hot]))
        .await;
    s.anvil.mine(1).await;
    let tick = s.t.app.withdrawal_step().await.unwrap();
    assert!(
        tick.errors
            .iter()
            .any(|(w, why)| *w == id.0 && why.contains("nonce 0")),
        "{tick:?}"
    );
    assert_eq!(status(&s.t, id).await, WithdrawalStatus::Submitted);
    let (_, health) = support::call(s.t.address, "GET", "/health", None, None).await;
    assert_eq!(health["sender"]["status"], "degraded", "{health}");
    assert!(health["sender"]["nonce_conflict"]
        .as_str()
        .unwrap()
        .contains("resolve-nonce"));

    // Not before the other transaction has its confirmations (a reorg
    // could still take it away, and ours be mined).
    let shallow =
        s.t.app
            .resolve_nonce(id, "ops", "too soon")
            .await
            .unwrap_err();
    assert!(shallow.to_string().contains("confirmations"), "{shallow}");
    s.anvil.mine(CONFIRMATIONS).await;

    // The operator resolves it: refunded, and the next nonce follows the
    // chain.
    let resolved =
        s.t.app
            .resolve_nonce(id, "ops", "checked: a manual top-up tool spent nonce 0")
            .await
            .unwrap();
    assert_eq!(resolved.status, WithdrawalStatus::Failed);
    assert!(resolved.failure_reason.unwrap().contains("resolved by ops"));
    assert_eq!(s.t.app.balance(player).await.unwrap(), usdc(10));
    let again = s.t.app.resolve_nonce(id, "ops", "twice").await.unwrap_err();
    assert!(again.to_string().contains("nothing to resolve"), "{again}");
    let audit = s.t.store().audit_log(None, 5).await.unwrap();
    assert_eq!(
        (audit[0].action.as_str(), audit[0].actor.as_str()),
        ("withdrawal_failed", "ops"),
        "once, by the operator"
    );
    assert_ne!(audit[1].action, "withdrawal_failed");
    let next = withdraw(&s.t.app, player, 2_000_000, &recipient(22)).await;
    assert_eq!(step(&s.t.app).await.submitted, vec![next.0]);
    assert_eq!(s.t.store().sends_of(next).await.unwrap()[0].nonce, 1);
    s.anvil.mine(CONFIRMATIONS).await;
    let tick = step(&s.t.app).await;
    assert_eq!(tick.confirmed, vec![next.0]);
    let (_, health) = support::call(s.t.address, "GET", "/health", None, None).await;
    assert_eq!(health["sender"]["status"], "ok", "{health}");
    s.t.assert_verified().await;
}

async fn a_reorg_under_a_confirmed_withdrawal_is_detected_and_holds_sending(db: Db) {
    let Some(s) = story(
        db,
        "a reorg under a withdrawal",
        0x17,
        true,
        100_000_000,
        &[],
    )
    .await
    else {
        return;
    };
    let player = s.t.funded("reorged", usdc(10)).await;
    let id = withdraw(&s.t.app, player, 2_000_000, &recipient(31)).await;
    assert_eq!(step(&s.t.app).await.submitted, vec![id.0]);
    s.anvil
        .await_token_balance(s.token, recipient(31).parse().unwrap(), 2_000_000)
        .await;
    s.anvil.mine(CONFIRMATIONS).await;
    assert_eq!(step(&s.t.app).await.confirmed, vec![id.0]);
    let mined = s.t.store().sends_of(id).await.unwrap()[0]
        .mined_block
        .unwrap();

    // The chain replaces the withdrawal's block and those after it.
    let depth = s.anvil.head().await - mined as u64 + 1;
    s.anvil.reorg(depth, json!([])).await;
    let tick = s.t.app.withdrawal_step().await.unwrap();
    let why = tick.held.clone().unwrap();
    assert!(why.contains("ack-reorg"), "{tick:?}");
    let reorg = s.t.app.chain_report().await.unwrap()["reorgs"][0].clone();
    assert_eq!(reorg["fork_block"], mined, "{reorg}");
    let affected = reorg["affected"].to_string();
    assert!(
        affected.contains(&format!("withdrawal {}", id.0)),
        "{affected}"
    );
    // The reorg dropped the transfer; the sender put the same bytes back.
    assert_eq!(tick.rebroadcast, vec![id.0], "{tick:?}");
    s.anvil
        .await_token_balance(s.token, recipient(31).parse().unwrap(), 2_000_000)
        .await;
    let (_, health) = support::call(s.t.address, "GET", "/health", None, None).await;
    assert_eq!(health["status"], "degraded", "{health}");

    // Nothing is sent while it waits.
    let next = withdraw(&s.t.app, player, 1_000_000, &recipient(32)).await;
    let tick = s.t.app.withdrawal_step().await.unwrap();
    assert!(tick.submitted.is_empty(), "{tick:?}");
    assert_eq!(status(&s.t, next).await, WithdrawalStatus::Queued);

    // Acknowledged: sending resumes, and the old block is not reported again.
    let reorg_id = reorg["id"].as_i64().unwrap();
    s.t.app
        .ack_reorg(reorg_id, "ops", "checked: the transfer was mined again")
        .await
        .unwrap();
    let tick = step(&s.t.app).await;
    assert_eq!(tick.submitted, vec![next.0], "{tick:?}");
    assert_eq!(tick.held, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_killed_after_storing_a_replacement_broadcasts_it_after_the_restart() {
    let Some(anvil) = Anvil::start("serve killed after a replacement").await else {
        return;
    };
    let token = anvil.deploy_token().await;
    let hot = HotKeyFile::new(0x23);
    anvil.fund_gas(hot.address).await;
    anvil.mint(token, &hot.checksum(), 100_000_000).await;
    anvil.call("evm_setAutomine", json!([false])).await;
    let folder = std::env::temp_dir().join(format!("updown-replace-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let db_url = format!("sqlite://{}", folder.join("updown.db").display());
    let app = app_on(&db_url).await;
    let player = app.create_user("stuck@example.com").await.unwrap().id;
    app.deposit(player, usdc(10), "0xfund-stuck", 0, None)
        .await
        .unwrap();
    let to = recipient(900);
    let id = withdraw(&app, player, 3_000_000, &to).await;
    let mut settings = sending(&anvil, token, &hot);
    settings.retain(|(k, _)| *k != "MIN_CONFIRMATIONS");
    settings.push(("MIN_CONFIRMATIONS", "1".into()));
    settings.push(("WITHDRAWAL_STUCK_AFTER_S", "5".into()));
    settings.push(("DATABASE_URL", db_url.clone()));
    let serve = |name: &str, crash: Option<&str>| {
        let mut env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(point) = crash {
            env.push(("UPDOWN_TEST_CRASH", point));
        }
        support::process::Serve::start(&folder, name, &env)
    };
    // Sent, never mined, stuck after 5 s: the replacement is stored, and
    // the process dies before it is broadcast.
    let mut crashed = serve("replace", Some("send_after_replace"));
    crashed.wait_killed();
    let sends = store_on(&db_url).await.sends_of(id).await.unwrap();
    assert_eq!(sends.len(), 2);
    assert!(anvil.rpc.knows(&sends[0].signed.tx_hash).await.unwrap());
    assert!(!anvil.rpc.knows(&sends[1].signed.tx_hash).await.unwrap());

    // After the restart the stored replacement reaches the node; mined, it
    // confirms the withdrawal, once.
    let healthy = serve("healthy", None);
    let replacement = sends[1].signed.tx_hash.clone();
    support::eventually(
        "the replacement broadcast",
        std::time::Duration::from_secs(20),
        || async { anvil.rpc.knows(&replacement).await.unwrap() },
    )
    .await;
    anvil.mine(1).await;
    support::eventually("confirmed", std::time::Duration::from_secs(20), || async {
        store_on(&db_url).await.withdrawal(id).await.unwrap().status == WithdrawalStatus::Confirmed
    })
    .await;
    drop(healthy);
    let to_address: Address = to.parse().unwrap();
    let head = anvil.head().await;
    let transfers = anvil
        .rpc
        .count_transfers_to(token, &[to_address], 0, head)
        .await
        .unwrap();
    assert_eq!(transfers, 1);
    assert_eq!(anvil.token_balance(token, to_address).await, 3_000_000);
    let sends = store_on(&db_url).await.sends_of(id).await.unwrap();
    let states: Vec<SendState> = sends.iter().map(|s| s.state).collect();
    assert!(states.contains(&SendState::Mined), "{states:?}");
    assert_eq!(states.iter().filter(|s| **s == SendState::Mined).count(), 1);
    let _ = std::fs::remove_dir_all(&folder);
}

/// A mnemonic none of whose addresses anvil funds (its own are the
/// development mnemonic's), so the deposit addresses start with 0 ETH.
const SWEEP_MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

/// A seed file as `updown sweep` reads it, private.
fn seed_file(folder: &std::path::Path, name: &str, phrase: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = folder.join(name);
    std::fs::write(&path, format!("{phrase}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// A folder with a private seed file of [`SWEEP_MNEMONIC`], its account
/// xpub, and the deposit keys; the folder goes when dropped.
struct SweepSeed {
    folder: std::path::PathBuf,
    path: String,
    xpub: String,
}

impl SweepSeed {
    fn new(name: &str) -> SweepSeed {
        let folder = std::env::temp_dir().join(format!(
            "updown-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&folder).unwrap();
        let path = seed_file(&folder, "seed", SWEEP_MNEMONIC);
        let xpub = updown_domain::wallet::DepositWallet::account_xpub(SWEEP_MNEMONIC).unwrap();
        SweepSeed { folder, path, xpub }
    }

    fn keys(&self) -> updown_domain::wallet::DepositKeys {
        updown_app::hot_key::load_deposit_keys(std::path::Path::new(&self.path), true).unwrap()
    }
}

impl Drop for SweepSeed {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// A player with a deposit address holding `micros` on the chain, credited.
async fn funded_deposit_address(s: &Story, name: &str, micros: u64) -> (UserId, String) {
    let user =
        s.t.app
            .create_user(&format!("{name}@example.com"))
            .await
            .unwrap();
    let (address, _) = s.t.app.deposit_address(&user).await.unwrap();
    s.anvil.mint(s.token, &address, micros).await;
    s.t.app
        .deposit(
            user.id,
            updown_domain::Micros::new(micros as i64).unwrap(),
            &format!("0xfund-{name}"),
            0,
            None,
        )
        .await
        .unwrap();
    s.anvil.mine(CONFIRMATIONS).await;
    (user.id, address)
}

async fn twenty_deposit_addresses_are_swept_with_permits_and_custody_agrees_per_place(db: Db) {
    use updown_domain::wallet::DepositKeys;
    let sweep_seed = SweepSeed::new("sweep");
    let (seed, xpub) = (sweep_seed.path.clone(), sweep_seed.xpub.clone());
    let Some(s) = story(
        db,
        "the sweep",
        0x51,
        true,
        0,
        &[
            ("DEPOSIT_SOURCE", "evm"),
            ("WALLET_XPUB", &xpub),
            ("SWEEP_SEED_FILE", &seed),
            ("SWEEP_MIN", "2USDC"),
        ],
    )
    .await
    else {
        return;
    };
    let app = &s.t.app;
    // Twenty deposits of 2..=21 USDC, and one of 1.5 USDC below SWEEP_MIN.
    let mut owners = Vec::new();
    for i in 0..21u64 {
        let user = app
            .create_user(&format!("sweep{i}@example.com"))
            .await
            .unwrap();
        let (address, _) = app.deposit_address(&user).await.unwrap();
        let micros = if i == 20 {
            1_500_000
        } else {
            (i + 2) * 1_000_000
        };
        s.anvil.mint(s.token, &address, micros).await;
        owners.push((address.parse::<Address>().unwrap(), micros));
    }
    let swept: u64 = owners[..20].iter().map(|(_, m)| m).sum();
    s.anvil.mine(CONFIRMATIONS).await;
    assert_eq!(app.watch_step().await.unwrap().credited, 21);
    let eth_at_deposits = || async {
        let mut total = alloy::primitives::U256::ZERO;
        for (owner, _) in &owners {
            total += s.anvil.rpc.eth_balance(*owner).await.unwrap();
        }
        total
    };
    assert!(
        eth_at_deposits().await.is_zero(),
        "deposit addresses start without ETH"
    );

    // A seed that is not WALLET_XPUB's signs nothing.
    let wrong = DepositKeys::from_seed_text(updown_domain::wallet::DEVELOPMENT_MNEMONIC).unwrap();
    let refused = app
        .sweep_step(Some(&wrong), false, false)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("not the seed of WALLET_XPUB"),
        "{refused}"
    );
    // A dry run lists the twenty, signs nothing.
    let keys = sweep_seed.keys();
    let dry = app.sweep_step(Some(&keys), false, true).await.unwrap();
    assert_eq!(dry.planned.len(), 20, "{dry:?}");
    assert_eq!(dry.below_min, 1);
    assert!(dry.planned.iter().all(|l| l.sweep.is_none()));
    assert_eq!(
        dry.planned.iter().map(|l| l.amount as u64).sum::<u64>(),
        swept
    );
    assert_eq!(s.t.store().next_nonce(&hot_sender(&s)).await.unwrap(), None);

    // The sweep: forty transactions of the hot wallet, nonces 0..40.
    let step = app.sweep_step(Some(&keys), false, false).await.unwrap();
    assert_eq!(step.planned.len(), 20, "{step:?}");
    assert!(step.errors.is_empty(), "{step:?}");
    assert_eq!((step.open, step.open_micros as u64), (20, swept));
    assert_eq!(
        s.t.store().next_nonce(&hot_sender(&s)).await.unwrap(),
        Some(40)
    );
    s.anvil
        .await_token_balance(s.token, s.hot.address, swept)
        .await;
    // Mined, not booked yet: the ledger still has them at the deposit
    // addresses, and reconcile (at the watcher's block, past most of
    // them) counts each where the chain has it.
    app.watch_step().await.unwrap();
    let r = app.reconcile().await.unwrap();
    assert_eq!(r.status, "equal", "{r:?}");
    assert!(r.places.iter().all(|p| p.difference == "0"), "{r:?}");
    assert_eq!(
        s.t.store().custody_places().await.unwrap().1,
        0,
        "nothing booked yet"
    );
    // Running again meanwhile sweeps nothing twice (it may book those
    // with their confirmations already).
    let again = app.sweep_step(Some(&keys), false, false).await.unwrap();
    assert!(again.planned.is_empty(), "{again:?}");
    s.anvil.mine(CONFIRMATIONS).await;
    let done = app.sweep_step(None, true, false).await.unwrap();
    assert_eq!(
        again.confirmed.len() + done.confirmed.len(),
        20,
        "{again:?} {done:?}"
    );
    assert_eq!((done.open, done.failed.len()), (0, 0), "{done:?}");

    // Nothing stranded: each swept address holds 0, the one below the
    // minimum keeps its 1.5 USDC, the hot wallet has the rest; no ETH was
    // ever sent to a deposit address.
    for (owner, micros) in &owners {
        let left = s.anvil.token_balance(s.token, *owner).await;
        assert_eq!(left, if *micros == 1_500_000 { 1_500_000 } else { 0 });
    }
    assert_eq!(s.anvil.token_balance(s.token, s.hot.address).await, swept);
    assert!(
        eth_at_deposits().await.is_zero(),
        "no ETH reached a deposit address"
    );
    let (at_deposits, at_hot) = s.t.store().custody_places().await.unwrap();
    assert_eq!((at_deposits, at_hot), (1_500_000, swept as i64));
    let r = app.reconcile().await.unwrap();
    assert_eq!(r.status, "equal", "{r:?}");
    for place in &r.places {
        assert_eq!(place.difference, "0", "{r:?}");
    }
    assert_eq!(r.places.len(), 2);
    // At the head the watcher reaches, all of it is in the hot wallet.
    app.watch_step().await.unwrap();
    let r = app.reconcile().await.unwrap();
    assert_eq!(r.places[1].chain, swept.to_string(), "{r:?}");
    assert!(r.places.iter().all(|p| p.difference == "0"), "{r:?}");
    // Booked once each, and the money rules hold.
    let sweeps = s.t.store().sweeps(50).await.unwrap();
    assert_eq!(sweeps.len(), 20);
    assert!(sweeps.iter().all(|w| w.ledger_tx.is_some()));
    assert!(app
        .sweep_step(Some(&keys), false, false)
        .await
        .unwrap()
        .planned
        .is_empty());
    s.t.assert_verified().await;
}

fn hot_sender(s: &Story) -> updown_store::Sender {
    updown_store::Sender {
        chain_id: 31337,
        address: format!("{:#x}", s.hot.address),
    }
}

/// `updown sweep` killed at each step of a sweep (signed but not
/// committed, stored but not broadcast, mined but not booked), then run
/// again: each address is swept by exactly one transferFrom, booked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_killed_at_each_step_moves_each_address_once() {
    use std::os::unix::process::ExitStatusExt;
    let Some(anvil) = Anvil::start("sweep killed").await else {
        return;
    };
    let token = anvil.deploy_token().await;
    let hot = HotKeyFile::new(0x61);
    anvil.fund_gas(hot.address).await;
    let folder = std::env::temp_dir().join(format!("updown-sweep-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let seed = seed_file(&folder, "seed", SWEEP_MNEMONIC);
    let xpub = updown_domain::wallet::DepositWallet::account_xpub(SWEEP_MNEMONIC).unwrap();
    let db_url = format!("sqlite://{}", folder.join("updown.db").display());
    let mut settings = sending(&anvil, token, &hot);
    settings.retain(|(k, _)| *k != "MIN_CONFIRMATIONS");
    settings.extend([
        ("MIN_CONFIRMATIONS", "1".to_string()),
        ("DATABASE_URL", db_url.clone()),
        ("WALLET_XPUB", xpub.clone()),
        ("SWEEP_SEED_FILE", seed),
        ("SWEEP_MIN", "1USDC".into()),
        ("EVM_POLL_MS", "100".into()),
    ]);
    let env: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = {
        let config = updown_app::config::Config::with(&[
            ("DATABASE_URL", db_url.as_str()),
            ("WALLET_XPUB", xpub.as_str()),
        ])
        .unwrap();
        updown_app::startup::app(config).await.unwrap()
    };
    let sweep = |crash: Option<&str>| {
        let mut env = env.clone();
        if let Some(point) = crash {
            env.push(("UPDOWN_TEST_CRASH", point));
        }
        support::process::updown(&env)
            .args(["sweep", "--wait-secs", "30"])
            .output()
            .unwrap()
    };
    // Each point: (where it dies, sweeps recorded then, tokens moved then).
    let points = [
        ("sweep_after_sign", 0, false),
        ("sweep_after_store", 1, false),
        ("sweep_after_mined", 1, true),
    ];
    let mut moved = 0u64;
    for (n, (point, recorded_then, moved_then)) in points.into_iter().enumerate() {
        let user = app
            .create_user(&format!("swept{n}@example.com"))
            .await
            .unwrap();
        let (address, _) = app.deposit_address(&user).await.unwrap();
        let amount = 3_000_000 + n as u64;
        anvil.mint(token, &address, amount).await;
        app.deposit(
            user.id,
            updown_domain::Micros::new(amount as i64).unwrap(),
            &format!("0xfund-{n}"),
            0,
            None,
        )
        .await
        .unwrap();
        let owner: Address = address.parse().unwrap();

        let crashed = sweep(Some(point));
        assert_eq!(
            crashed.status.signal(),
            Some(9),
            "{point}: {}",
            String::from_utf8_lossy(&crashed.stderr)
        );
        let store = store_on(&db_url).await;
        let recorded: Vec<_> = store
            .sweeps(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|w| w.deposit_address == address)
            .collect();
        assert_eq!(recorded.len(), recorded_then, "{point}");
        let left = if moved_then { 0 } else { amount };
        anvil.await_token_balance(token, owner, left).await;

        // A healthy run finishes it: one transferFrom, booked once.
        let healthy = sweep(None);
        assert!(
            healthy.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&healthy.stdout)
        );
        moved += amount;
        assert_eq!(anvil.token_balance(token, owner).await, 0, "{point}");
        assert_eq!(
            anvil.token_balance(token, hot.address).await,
            moved,
            "{point}"
        );
        let head = anvil.head().await;
        assert_eq!(
            anvil
                .rpc
                .count_transfers_to(token, &[hot.address], 0, head)
                .await
                .unwrap(),
            n + 1,
            "{point}: one transferFrom per address"
        );
        let swept: Vec<_> = store
            .sweeps(100)
            .await
            .unwrap()
            .into_iter()
            .filter(|w| w.deposit_address == address)
            .collect();
        assert_eq!(swept.len(), 1, "{point}: {swept:?}");
        assert!(swept[0].ledger_tx.is_some(), "{point}");
    }
    let store = store_on(&db_url).await;
    assert_eq!(store.custody_places().await.unwrap(), (0, moved as i64));
    let report = app.verify().await.unwrap();
    assert!(report.ok(), "{:?}", report.failures());
    let _ = std::fs::remove_dir_all(&folder);
}

async fn a_stuck_sweep_is_replaced_and_booked_by_the_sender_of_serve(db: Db) {
    let seed = SweepSeed::new("sweep-stuck");
    let Some(s) = story(
        db,
        "a stuck sweep",
        0x52,
        true,
        0,
        &[
            ("WALLET_XPUB", &seed.xpub),
            ("SWEEP_MIN", "1USDC"),
            ("WITHDRAWAL_STUCK_AFTER_S", "60"),
        ],
    )
    .await
    else {
        return;
    };
    let app = &s.t.app;
    funded_deposit_address(&s, "stuck-sweep", 7_000_000).await;
    // Nothing is mined unless asked: the sweep waits in the pool.
    s.anvil.call("evm_setAutomine", json!([false])).await;
    let keys = seed.keys();
    let sent = app.sweep_step(Some(&keys), false, false).await.unwrap();
    assert_eq!(sent.planned.len(), 1, "{sent:?}");
    let id = sent.planned[0].sweep.unwrap();
    let sends_of = || async {
        let open = s.t.store().open_sweeps().await.unwrap();
        open.into_iter()
            .find(|(w, _)| w.id == id)
            .map(|(_, sends)| sends)
    };
    // Not stuck yet; then stuck: serve's step replaces the lowest pending
    // nonce (the permit) and leaves the transferFrom behind it alone.
    s.t.advance(chrono::Duration::seconds(30));
    step(app).await;
    assert_eq!(sends_of().await.unwrap().len(), 2);
    s.t.advance(chrono::Duration::seconds(31));
    step(app).await;
    let sends = sends_of().await.unwrap();
    assert_eq!(sends.len(), 3, "{sends:?}");
    let permits: Vec<_> = sends.iter().filter(|x| x.nonce == sends[0].nonce).collect();
    assert_eq!(permits.len(), 2);
    let fee = |x: &updown_store::ChainSend| x.signed.max_fee_per_gas.parse::<u128>().unwrap();
    assert!(
        fee(permits[1]) * 10 >= fee(permits[0]) * 11,
        "raised by at least a tenth"
    );

    // Mined and confirmed: serve's sender books it, once.
    s.anvil.mine(1).await;
    s.anvil.mine(CONFIRMATIONS).await;
    let tick = step(app).await;
    assert_eq!(tick.swept, vec![id], "{tick:?}");
    assert!(s.t.store().open_sweeps().await.unwrap().is_empty());
    assert_eq!(
        s.anvil.token_balance(s.token, s.hot.address).await,
        7_000_000
    );
    assert_eq!(s.t.store().custody_places().await.unwrap(), (0, 7_000_000));
    let states: Vec<SendState> =
        s.t.store()
            .mined_since(0)
            .await
            .unwrap()
            .iter()
            .filter(|x| x.sweep == Some(id))
            .map(|x| x.state)
            .collect();
    assert_eq!(
        states,
        vec![SendState::Mined, SendState::Mined],
        "the replacement and the transferFrom"
    );
    assert!(step(app).await.swept.is_empty());
    s.t.assert_verified().await;
}

async fn a_sweep_whose_nonce_was_spent_elsewhere_waits_for_an_operator(db: Db) {
    let seed = SweepSeed::new("sweep-conflict");
    let Some(s) = story(
        db,
        "a sweep's nonce spent elsewhere",
        0x53,
        true,
        0,
        &[("WALLET_XPUB", &seed.xpub), ("SWEEP_MIN", "1USDC")],
    )
    .await
    else {
        return;
    };
    let app = &s.t.app;
    funded_deposit_address(&s, "conflicted-sweep", 4_000_000).await;
    s.anvil.call("evm_setAutomine", json!([false])).await;
    let keys = seed.keys();
    let sent = app.sweep_step(Some(&keys), false, false).await.unwrap();
    let id = sent.planned[0].sweep.unwrap();
    let early = app.resolve_sweep(id, "ops", "too early").await.unwrap_err();
    assert!(
        early.to_string().contains("not used on the chain"),
        "{early}"
    );

    // Another tool spends nonces 0 and 1 of the hot wallet, fees higher.
    let hot = s.hot.checksum();
    s.anvil.impersonate(&hot).await;
    for nonce in ["0x0", "0x1"] {
        s.anvil
            .call(
                "eth_sendTransaction",
                json!([{ "from": hot, "to": hot, "value": "0x0", "nonce": nonce, "gas": "0x5208",
                         "maxFeePerGas": "0x174876e800", "maxPriorityFeePerGas": "0x174876e800" }]),
            )
            .await;
    }
    s.anvil
        .call("anvil_stopImpersonatingAccount", json!([hot]))
        .await;
    s.anvil.mine(1).await;
    // Serve's step and the command both see the conflict and guess nothing.
    step(app).await;
    let status = app.sender.as_ref().unwrap().status();
    assert!(
        status
            .nonce_conflict
            .as_deref()
            .unwrap_or("")
            .contains("nonce 1"),
        "{status:?}"
    );
    let seen = app.sweep_step(None, true, false).await.unwrap();
    assert!(seen.nonce_conflict.is_some(), "{seen:?}");
    assert_eq!(seen.open, 1);
    // Not deep enough yet; then with MIN_CONFIRMATIONS: resolved, audited,
    // nothing booked, the tokens still at the deposit address.
    let shallow = app.resolve_sweep(id, "ops", "checked").await.unwrap_err();
    assert!(shallow.to_string().contains("confirmations"), "{shallow}");
    assert!(app.resolve_sweep(id, "ops", " ").await.is_err());
    s.anvil.mine(CONFIRMATIONS).await;
    let failed = app
        .resolve_sweep(id, "ops", "our own script spent it")
        .await
        .unwrap();
    assert_eq!(failed.status, updown_store::SweepStatus::Failed);
    assert!(failed.reason.unwrap().contains("our own script spent it"));
    assert_eq!(s.t.store().custody_places().await.unwrap(), (4_000_000, 0));
    assert_eq!(
        s.t.store().next_nonce(&hot_sender(&s)).await.unwrap(),
        Some(2)
    );
    let audit = s.t.store().audit_log(None, 5).await.unwrap();
    assert_eq!(audit[0].action, "resolve_sweep");
    assert!(app.resolve_sweep(id, "ops", "again").await.is_err());

    // The next run sweeps it, from nonce 2.
    s.anvil.call("evm_setAutomine", json!([true])).await;
    let again = app.sweep_step(Some(&keys), false, false).await.unwrap();
    assert_eq!(again.planned.len(), 1, "{again:?}");
    s.anvil
        .await_token_balance(s.token, s.hot.address, 4_000_000)
        .await;
    s.anvil.mine(CONFIRMATIONS).await;
    assert_eq!(
        app.sweep_step(None, true, false)
            .await
            .unwrap()
            .confirmed
            .len(),
        1
    );
    assert_eq!(s.t.store().custody_places().await.unwrap(), (0, 4_000_000));
    s.t.assert_verified().await;
}
