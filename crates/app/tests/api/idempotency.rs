//! Idempotency-Keys written with their effects: a request and its retries,
//! however they interleave, act once and all get one answer; keys belong
//! to the account, not to the credential; cancels and operators' actions
//! replay too.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use updown_app::api;

use crate::support::{at, Db, TestApp};
use crate::{get, keyed, send, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    a_bet_racing_its_retries_is_placed_once_and_every_one_gets_its_answer,
    a_retry_after_rotating_the_api_key_still_finds_its_answer,
    cancels_and_operator_actions_replay_their_first_answer,
    a_retry_after_the_lock_still_gets_its_first_answer,
    a_retry_of_an_answer_that_held_a_secret_acts_once_and_the_secret_is_not_kept,
);

/// A player with 10 USDC and their key.
async fn funded_player(t: &TestApp, name: &str) -> String {
    let (_, user) = send(
        t,
        "POST",
        "/users",
        Some(&format!(r#"{{"email": "{name}@example.com"}}"#)),
        None,
    )
    .await;
    let deposit =
        format!(r#"{{"email": "{name}@example.com", "amount": 10000000, "tx_hash": "0x{name}"}}"#);
    let (status, _) = send(
        t,
        "POST",
        "/simulate/deposit_webhook",
        Some(&deposit),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    user["api_key"].as_str().unwrap().to_string()
}

async fn a_bet_racing_its_retries_is_placed_once_and_every_one_gets_its_answer(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let ann = funded_player(&t, "ann").await;
    let bet = r#"{"side": "UP", "amount": 1000000}"#;
    // A client that timed out and retried many times: all in flight at once.
    let attempts: Vec<_> = (0..12)
        .map(|_| {
            let (t_app, ann) = (t.app.clone(), ann.clone());
            tokio::spawn(async move {
                let request = Request::builder()
                    .method("POST")
                    .uri("/bets")
                    .header("authorization", format!("Bearer {ann}"))
                    .header("content-type", "application/json")
                    .header("idempotency-key", "race-1")
                    .body(Body::from(bet))
                    .unwrap();
                let response = api::router(t_app).oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                (status, bytes.to_vec())
            })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(attempt.await.unwrap());
    }
    let first = answers[0].clone();
    assert_eq!(
        first.0,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&first.1)
    );
    for answer in &answers {
        assert_eq!(answer, &first, "every attempt gets the one answer");
    }
    let (_, round) = get(&t, "/rounds/current").await;
    assert_eq!(round["pool_up"], 1_000_000, "placed once");
    let (_, bets) = send(&t, "GET", "/me/bets", None, Some(&ann)).await;
    assert_eq!(bets.as_array().unwrap().len(), 1);
    t.assert_verified().await;
}

async fn a_retry_after_rotating_the_api_key_still_finds_its_answer(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let ann = funded_player(&t, "ann").await;
    let withdrawal =
        r#"{"amount": 2000000, "address": "0x52908400098527886E0F7030069857D2E4169EE7"}"#;
    let first = keyed(&t, "POST", "/withdrawals", withdrawal, &ann, "w-1").await;
    assert_eq!(first.0, StatusCode::CREATED);
    // The key leaks; ann makes a new one and revokes the old.
    let (status, fresh) = send(&t, "POST", "/me/api-keys", None, Some(&ann)).await;
    assert_eq!(status, StatusCode::CREATED, "{fresh}");
    let fresh_key = fresh["api_key"].as_str().unwrap().to_string();
    let (_, keys) = send(&t, "GET", "/me/api-keys", None, Some(&fresh_key)).await;
    let old_id = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .min()
        .unwrap();
    let (status, _) = send(
        &t,
        "DELETE",
        &format!("/me/api-keys/{old_id}"),
        None,
        Some(&fresh_key),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let retry = keyed(&t, "POST", "/withdrawals", withdrawal, &fresh_key, "w-1").await;
    assert_eq!((retry.0, retry.1), (StatusCode::CREATED, true));
    assert_eq!(retry.2, first.2, "the first answer, byte for byte");
    let (_, me) = send(&t, "GET", "/me", None, Some(&fresh_key)).await;
    assert_eq!(me["available"], 8_000_000, "one withdrawal");
    // Another player's key of the same name is theirs alone.
    let bob = funded_player(&t, "bob").await;
    let bobs = keyed(&t, "POST", "/withdrawals", withdrawal, &bob, "w-1").await;
    assert_eq!((bobs.0, bobs.1), (StatusCode::CREATED, false));
    t.assert_verified().await;
}

async fn cancels_and_operator_actions_replay_their_first_answer(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let reason = r#"{"reason": "opened by hand", "code": "20261124"}"#;
    let opened = keyed(&t, "POST", "/admin/rounds", reason, ADMIN, "open-1").await;
    assert_eq!(opened.0, StatusCode::CREATED);
    // Opening is idempotent by itself; the key replays its first answer
    // (201), where running it again would say 200 "it was open already".
    let again = keyed(&t, "POST", "/admin/rounds", reason, ADMIN, "open-1").await;
    assert_eq!((again.0, again.1), (StatusCode::CREATED, true));
    assert_eq!(again.2, opened.2);

    let ann = funded_player(&t, "ann").await;
    let (_, bet) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "DOWN", "amount": 3000000}"#),
        Some(&ann),
    )
    .await;
    let uri = format!("/bets/{}", bet["id"]);
    let cancelled = keyed(&t, "DELETE", &uri, "", &ann, "cancel-1").await;
    assert_eq!(cancelled.0, StatusCode::OK);
    let retried = keyed(&t, "DELETE", &uri, "", &ann, "cancel-1").await;
    assert_eq!(
        (retried.0, retried.1, &retried.2),
        (StatusCode::OK, true, &cancelled.2),
        "the retry is told it was cancelled, not that it is already"
    );
    let body: Value = serde_json::from_slice(&cancelled.2).unwrap();
    assert_eq!(body["status"], "CANCELLED");
    // Without a key, a second cancel is a conflict.
    let (status, _) = send(&t, "DELETE", &uri, None, Some(&ann)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, me) = send(&t, "GET", "/me", None, Some(&ann)).await;
    assert_eq!(me["available"], 10_000_000);
    t.assert_verified().await;
}

async fn a_retry_after_the_lock_still_gets_its_first_answer(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let ann = funded_player(&t, "ann").await;
    let bet = r#"{"side": "UP", "amount": 1000000}"#;
    let first = keyed(&t, "POST", "/bets", bet, &ann, "late-1").await;
    assert_eq!(first.0, StatusCode::CREATED);
    // Past the lock (15:59:59 New York), a new bet is refused...
    t.clock.advance(chrono::Duration::hours(6));
    let fresh = keyed(&t, "POST", "/bets", bet, &ann, "late-2").await;
    assert!(
        fresh.0.is_client_error(),
        "{}",
        String::from_utf8_lossy(&fresh.2)
    );
    // ...but the retry of the first is answered as it was, not refused.
    let retry = keyed(&t, "POST", "/bets", bet, &ann, "late-1").await;
    assert_eq!((retry.0, retry.1), (StatusCode::CREATED, true));
    assert_eq!(retry.2, first.2);
    // The same key with another request is still a mismatch.
    let other = keyed(
        &t,
        "POST",
        "/bets",
        r#"{"side": "DOWN", "amount": 1}"#,
        &ann,
        "late-1",
    )
    .await;
    assert_eq!(other.0, StatusCode::UNPROCESSABLE_ENTITY);
    t.assert_verified().await;
}

/// An operator added with a key: its retry adds no one else, and neither
/// the retry's answer nor the database holds the generated password.
async fn a_retry_of_an_answer_that_held_a_secret_acts_once_and_the_secret_is_not_kept(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let sue = r#"{"email": "sue@ops.example.com", "role": "support"}"#;
    let added = keyed(&t, "POST", "/admin/operators", sue, ADMIN, "add-sue").await;
    assert_eq!(
        added.0,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&added.2)
    );
    let answer: Value = serde_json::from_slice(&added.2).unwrap();
    let password = answer["password"].as_str().unwrap().to_string();
    let retry = keyed(&t, "POST", "/admin/operators", sue, ADMIN, "add-sue").await;
    assert_eq!((retry.0, retry.1), (StatusCode::CONFLICT, true));
    let told: Value = serde_json::from_slice(&retry.2).unwrap();
    assert_eq!(
        told["error"]["code"], "idempotency_answer_not_kept",
        "{told}"
    );
    assert!(!String::from_utf8_lossy(&retry.2).contains(&password));
    let kept = t
        .app
        .idempotency_key("operator:break-glass", "add-sue")
        .await
        .unwrap()
        .expect("the key is kept");
    assert!(
        !kept.answer.body.contains(&password),
        "{}",
        kept.answer.body
    );
    let operators = t.app.operators().await.unwrap();
    let sues = operators
        .iter()
        .filter(|o| o.email.as_str() == "sue@ops.example.com")
        .count();
    assert_eq!(sues, 1);
}
