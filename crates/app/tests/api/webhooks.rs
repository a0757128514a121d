//! `POST /webhooks/deposits`: signed provider notifications, credited once
//! per transfer when confirmed enough; everything else refused and
//! recorded.

use axum::http::StatusCode;
use serde_json::{json, Value};
use updown_app::clock::Clock;
use updown_app::services::webhooks::sign;

use crate::support::{at, Db, TestApp};
use crate::{get_as, send, send_with, sign_up, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    deposits_are_credited_once_when_confirmed_and_everything_else_is_refused_and_recorded,
);

const SECRET: &str = "webhook-secret-for-tests-0123";
const USDC: &str = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48";
/// A transfer's hash, as one provider writes it; another writes it in
/// capitals.
const TX: &str = "0x9fc76417374aa880d4449a1f7f31ec597f00b1f6f3dd2d66f4c9c6c445836d8b";
const FRESH: &str = "0xffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0001";

/// Posts `notice` signed with `secret` at `timestamp`.
async fn notify(t: &TestApp, notice: &Value, secret: &str, timestamp: i64) -> (StatusCode, Value) {
    let body = notice.to_string();
    let signature = sign(secret, timestamp, body.as_bytes());
    let timestamp = timestamp.to_string();
    let headers = [
        ("x-webhook-timestamp", timestamp.as_str()),
        ("x-webhook-signature", signature.as_str()),
    ];
    let (status, _, answer) =
        send_with(t, "POST", "/webhooks/deposits", Some(&body), &headers).await;
    (status, answer)
}

async fn deposits_are_credited_once_when_confirmed_and_everything_else_is_refused_and_recorded(
    db: Db,
) {
    let settings = [
        ("ADMIN_TOKEN", ADMIN),
        ("DEPOSIT_WEBHOOK_SECRET", SECRET),
        ("MIN_CONFIRMATIONS", "3"),
    ];
    let t = TestApp::spawn(db, &settings, at("2026-11-24T15:00:00Z")).await;
    let now = t.clock.now().timestamp();
    let ann = sign_up(&t, "ann").await;
    let (_, wallet) = send(&t, "POST", "/wallets", None, Some(&ann)).await;
    let to = wallet["address"].as_str().unwrap().to_lowercase();
    let notice = |confirmations: i64| {
        json!({"chain": "ethereum", "token": USDC, "tx_hash": TX, "log_index": 7,
               "to": to, "amount": 5_000_000, "confirmations": confirmations})
    };
    // Too few confirmations: pending, nothing credited, whatever the retries.
    for _ in 0..2 {
        let (status, answer) = notify(&t, &notice(1), SECRET, now).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        assert_eq!(answer["status"], "pending");
        assert_eq!(answer["required_confirmations"], 3);
    }
    assert_eq!(get_as(&t, "/me", &ann).await.1["available"], 0);

    let (status, answer) = notify(&t, &notice(3), SECRET, now).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["status"], "credited");
    // Replayed, retried and late notifications credit nothing more, nor
    // does the same hash in capitals or without 0x.
    let shouting = |confirmations| {
        let mut n = notice(confirmations);
        n["tx_hash"] = json!(format!("0x{}", TX[2..].to_uppercase()));
        n
    };
    let bare = |confirmations| {
        let mut n = notice(confirmations);
        n["tx_hash"] = json!(TX[2..]);
        n
    };
    for n in [notice(3), shouting(12), bare(2)] {
        let (status, answer) = notify(&t, &n, SECRET, now + 60).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (StatusCode::OK, Some("duplicate")),
            "{answer}"
        );
    }
    assert_eq!(get_as(&t, "/me", &ann).await.1["available"], 5_000_000);

    // The same transfer told with another amount is a conflict, not a credit.
    let mut changed = notice(12);
    changed["amount"] = json!(9_000_000);
    assert_eq!(
        notify(&t, &changed, SECRET, now).await.0,
        StatusCode::CONFLICT
    );

    let fresh = |field: &str, value: Value| {
        let mut n = notice(12);
        n["tx_hash"] = json!(FRESH);
        n[field] = value;
        n
    };
    let refusals = [
        (
            fresh("log_index", json!(0)),
            "wrong secret",
            StatusCode::UNAUTHORIZED,
            "the signature does not match",
        ),
        (
            fresh("log_index", json!(0)),
            "stale",
            StatusCode::UNAUTHORIZED,
            "replayed or delayed",
        ),
        (
            fresh("log_index", json!(0)),
            "from the dawn of time",
            StatusCode::UNAUTHORIZED,
            "replayed or delayed",
        ),
        (
            fresh("tx_hash", json!("0xabc1")),
            "",
            StatusCode::BAD_REQUEST,
            "32 bytes",
        ),
        (
            fresh("token", json!("0x52908400098527886E0F7030069857D2E4169EE7")),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "DEPOSIT_TOKEN",
        ),
        (
            fresh("chain", json!("polygon")),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "DEPOSIT_CHAIN",
        ),
        (
            fresh("to", json!("0x0000000000000000000000000000000000000001")),
            "",
            StatusCode::UNPROCESSABLE_ENTITY,
            "no user has the deposit address",
        ),
        (
            fresh("amount", json!(-5)),
            "",
            StatusCode::BAD_REQUEST,
            "positive",
        ),
        (
            json!({"hello": "world"}),
            "",
            StatusCode::BAD_REQUEST,
            "is not valid",
        ),
    ];
    for (body, how, expected, says) in &refusals {
        let (secret, timestamp) = match *how {
            "wrong secret" => ("another-secret-0123456789", now),
            "stale" => (SECRET, now - 301),
            // Checked arithmetic: this overflowed before.
            "from the dawn of time" => (SECRET, i64::MIN),
            _ => (SECRET, now),
        };
        let (status, answer) = notify(&t, body, secret, timestamp).await;
        assert_eq!(status, *expected, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    // No signature at all.
    let (status, _, _) = send_with(
        &t,
        "POST",
        "/webhooks/deposits",
        Some(&notice(12).to_string()),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(get_as(&t, "/me", &ann).await.1["available"], 5_000_000);

    // Every notification is on record, with what became of it.
    let (status, kept) = get_as(&t, "/admin/deposits", ADMIN).await;
    assert_eq!(status, StatusCode::OK);
    let outcomes: Vec<&str> = kept
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["outcome"].as_str().unwrap())
        .collect();
    let count = |outcome: &str| outcomes.iter().filter(|o| **o == outcome).count();
    assert_eq!(count("pending"), 2);
    assert_eq!(count("credited"), 1);
    assert_eq!(count("duplicate"), 3);
    assert_eq!(count("refused"), 1 + refusals.len() + 1);
    let stale = kept.as_array().unwrap().iter().find(|n| {
        n["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replayed or delayed"))
    });
    assert_eq!(stale.unwrap()["tx_hash"], FRESH);

    // Without a secret there is no webhook.
    let off = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    assert_eq!(
        notify(&off, &notice(12), SECRET, now).await.0,
        StatusCode::NOT_FOUND
    );
    t.assert_verified().await;
}
