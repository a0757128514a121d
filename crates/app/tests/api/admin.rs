//! The operator's routes over HTTP: rounds by hand with reasons, the
//! withdrawal queue, users, the audit log and verify.

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{at, Db, TestApp};
use crate::{get_as, send, send_with, sign_up, simulate_deposit, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    an_operator_opens_locks_settles_and_voids_rounds_with_reasons,
    an_operator_works_the_withdrawal_queue_and_failures_return_funds,
);

async fn admin(t: &TestApp, uri: &str, body: &str) -> (StatusCode, Value) {
    send(t, "POST", uri, Some(body), Some(ADMIN)).await
}

/// Two named operators' tokens: a result by hand asked with the
/// break-glass token waits for both.
async fn approvers(t: &TestApp) -> [String; 2] {
    let mut tokens = Vec::new();
    for name in ["second", "third"] {
        let email = format!("{name}@ops.example.com");
        t.app
            .add_operator(&email, updown_domain::operator::Role::Operator, "test")
            .await
            .unwrap();
        tokens.push(
            t.app
                .new_operator_token(&email, "test", "test")
                .await
                .unwrap()
                .1,
        );
    }
    [tokens[0].clone(), tokens[1].clone()]
}

/// A result by hand: asked with break-glass (202, waiting), still pending
/// after one approval, settled by the second; the round as settled.
async fn by_hand(t: &TestApp, uri: &str, body: &str, approvers: &[String; 2]) -> Value {
    let (status, approval) = admin(t, uri, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{approval}");
    assert_eq!(
        (approval["state"].as_str(), approval["needed"].as_i64()),
        (Some("pending"), Some(2))
    );
    let approve = format!("/admin/approvals/{}/approve", approval["id"]);
    let mut decided = Value::Null;
    for (i, token) in approvers.iter().enumerate() {
        let (status, answer) = send(
            t,
            "POST",
            &approve,
            Some(r#"{"reason": "checked"}"#),
            Some(token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let expected = if i == 0 { "pending" } else { "approved" };
        assert_eq!(answer["approval"]["state"], expected);
        decided = answer;
    }
    decided["round"].clone()
}

async fn an_operator_opens_locks_settles_and_voids_rounds_with_reasons(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let second = approvers(&t).await;
    let (status, body) = admin(&t, "/admin/rounds", r#"{}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input")),
        "a reason is required"
    );
    let (status, round) = admin(
        &t,
        "/admin/rounds",
        r#"{"reason": "first day", "actor": "ops:jo"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{round}");
    assert_eq!(round["code"], "20261124");
    let (status, _) = admin(&t, "/admin/rounds", r#"{"reason": "again"}"#).await;
    assert_eq!(status, StatusCode::OK, "opening is idempotent");

    let ann = sign_up(&t, "ann").await;
    let bob = sign_up(&t, "bob").await;
    simulate_deposit(&t, "ann", 10_000_000).await;
    simulate_deposit(&t, "bob", 10_000_000).await;
    send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 4000000}"#),
        Some(&ann),
    )
    .await;
    send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "DOWN", "amount": 6000000}"#),
        Some(&bob),
    )
    .await;

    let (status, _) = admin(
        &t,
        "/admin/rounds/20261124/settle",
        r#"{"result": "UP", "reason": "too soon"}"#,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an open round before its lock cannot be settled (its state, not the request, is at fault)"
    );
    let (status, locked) = admin(
        &t,
        "/admin/rounds/20261124/lock",
        r#"{"reason": "feed outage"}"#,
    )
    .await;
    assert_eq!(
        (status, locked["status"].as_str()),
        (StatusCode::OK, Some("LOCKED")),
        "{locked}"
    );
    let (status, refused) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 1000000}"#),
        Some(&ann),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    for bad in [
        r#"{"result": "UP"}"#,
        r#"{"result": "SIDEWAYS", "reason": "x"}"#,
        r#"{"reason": "x"}"#,
        r#"{"result": "UP", "reason": "  "}"#,
    ] {
        let (status, body) = admin(&t, "/admin/rounds/20261124/settle", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    let (status, early) = admin(
        &t,
        "/admin/rounds/20261124/settle",
        r#"{"result": "UP", "reason": "looks up"}"#,
    )
    .await;
    assert_eq!(
        (status, early["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("too_early")),
        "nobody knows the result before the close"
    );
    t.advance(chrono::Duration::hours(6));
    let settled = by_hand(
        &t,
        "/admin/rounds/20261124/settle",
        r#"{"result": "UP", "reason": "official close from the exchange"}"#,
        &second,
    )
    .await;
    assert_eq!(settled["status"], "SETTLED", "{settled}");
    assert_eq!(
        settled["settled_by"],
        "admin (break-glass), approved by second@ops.example.com and third@ops.example.com"
    );
    let (status, again) = admin(
        &t,
        "/admin/rounds/20261124/void",
        r#"{"reason": "second thoughts"}"#,
    )
    .await;
    assert_eq!(
        (status, again["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    let (_, me) = get_as(&t, "/me", &ann).await;
    // Ann wins Bob's 6 minus the fee; a single winner leaves no dust.
    let fee = settled["fee"].as_i64().unwrap();
    assert_eq!(
        me["available"].as_i64().unwrap(),
        6_000_000 + 10_000_000 - fee - settled["dust"].as_i64().unwrap()
    );

    // The next session's round, locked and voided by hand: stakes back.
    let (status, next) = admin(&t, "/admin/rounds", r#"{"reason": "next session"}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    let code = next["code"].as_str().unwrap().to_string();
    assert_ne!(code, "20261124");
    send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "DOWN", "amount": 1000000}"#),
        Some(&bob),
    )
    .await;
    let (_, before) = get_as(&t, "/me", &bob).await;
    let (status, _) = admin(
        &t,
        &format!("/admin/rounds/{code}/void"),
        r#"{"reason": "halt"}"#,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an open round is locked first"
    );
    admin(
        &t,
        &format!("/admin/rounds/{code}/lock"),
        r#"{"reason": "exchange halted"}"#,
    )
    .await;
    let (status, _) = admin(&t, &format!("/admin/rounds/{code}/void"), r#"{}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "voiding needs a reason");
    let voided = by_hand(
        &t,
        &format!("/admin/rounds/{code}/void"),
        r#"{"reason": "exchange halted"}"#,
        &second,
    )
    .await;
    assert_eq!(voided["status"], "VOID", "{voided}");
    let (_, after) = get_as(&t, "/me", &bob).await;
    assert_eq!(
        after["available"].as_i64().unwrap(),
        before["available"].as_i64().unwrap() + 1_000_000
    );

    let (status, audit) = get_as(&t, "/admin/audit", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let actions: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["reason"].as_str().unwrap_or(""),
            )
        })
        .collect();
    for expected in [
        ("open_round", "first day"),
        ("lock_round", "feed outage"),
        ("settle_up", "official close from the exchange"),
        ("settle_void", "exchange halted"),
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} missing from {actions:?}"
        );
    }
    assert!(audit
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "ops:jo (break-glass)"));

    let (status, users) = get_as(&t, "/admin/users?limit=10", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let total: i64 = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["available"].as_i64().unwrap())
        .sum();
    let (_, tvl) = send(&t, "GET", "/tvl", None, None).await;
    assert_eq!(total, tvl["user_balances"].as_i64().unwrap());
    let (status, verify) = get_as(&t, "/admin/verify", ADMIN).await;
    assert_eq!(
        (status, verify["ok"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{verify}"
    );
    assert_eq!(
        get_as(&t, "/admin/verify", &ann).await.0,
        StatusCode::UNAUTHORIZED
    );
    t.assert_verified().await;
}

async fn an_operator_works_the_withdrawal_queue_and_failures_return_funds(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let key = sign_up(&t, "fay").await;
    simulate_deposit(&t, "fay", 10_000_000).await;
    let request = |amount: i64| {
        format!(
            r#"{{"amount": {amount}, "address": "0x52908400098527886e0f7030069857d2e4169ee7"}}"#
        )
    };
    let (_, sent) = send(
        &t,
        "POST",
        "/withdrawals",
        Some(&request(3_000_000)),
        Some(&key),
    )
    .await;
    let (_, bounced) = send(
        &t,
        "POST",
        "/withdrawals",
        Some(&request(2_000_000)),
        Some(&key),
    )
    .await;
    let (_, queued) = get_as(&t, "/admin/withdrawals?status=QUEUED", ADMIN).await;
    assert_eq!(queued.as_array().unwrap().len(), 2);

    let step = |id: &Value, step: &str| format!("/admin/withdrawals/{id}/{step}");
    let (status, submitted) =
        admin(&t, &step(&sent["id"], "submit"), r#"{"tx_hash": "0xfeed"}"#).await;
    assert_eq!(
        (status, submitted["status"].as_str()),
        (StatusCode::OK, Some("SUBMITTED")),
        "{submitted}"
    );
    let (status, confirmed) = admin(&t, &step(&sent["id"], "confirm"), r#"{}"#).await;
    assert_eq!(
        (status, confirmed["chain_tx_hash"].as_str()),
        (StatusCode::OK, Some("0xfeed"))
    );
    let (status, _) = admin(&t, &step(&bounced["id"], "fail"), r#"{}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "failing needs a reason");
    // With an Idempotency-Key, a retried step gets the first answer again
    // (the funds go back once), not a conflict.
    let fail = step(&bounced["id"], "fail");
    let body = Some(r#"{"reason": "address rejected by the chain"}"#);
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "fail-bounced"),
    ];
    let (status, _, failed) = send_with(&t, "POST", &fail, body, &headers).await;
    assert_eq!(
        (status, failed["status"].as_str()),
        (StatusCode::OK, Some("FAILED"))
    );
    let (status, replay_headers, replayed) = send_with(&t, "POST", &fail, body, &headers).await;
    assert_eq!((status, &replayed), (StatusCode::OK, &failed));
    assert!(replay_headers.contains_key("idempotent-replayed"));
    let (status, body) = admin(&t, &step(&sent["id"], "fail"), r#"{"reason": "late"}"#).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    assert_eq!(
        admin(&t, &step(&sent["id"], "teleport"), r#"{}"#).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin(&t, "/admin/withdrawals/999999/confirm", r#"{}"#)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin(
            &t,
            &step(&sent["id"], "confirm"),
            r#"{"tx_hash": "has spaces"}"#
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get_as(&t, "/admin/withdrawals?status=LOST", ADMIN).await.0,
        StatusCode::BAD_REQUEST
    );

    let (_, me) = get_as(&t, "/me", &key).await;
    assert_eq!(me["available"], 7_000_000, "10 in, 3 sent, 2 returned");
    let (_, mine) = get_as(&t, "/me/withdrawals", &key).await;
    assert_eq!(mine[0]["failure_reason"], "address rejected by the chain");
    let (_, tvl) = send(&t, "GET", "/tvl", None, None).await;
    assert_eq!(tvl["withdrawals_pending"], 0);
    t.assert_verified().await;
}
