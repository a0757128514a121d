//! The HTTP API through its router (no socket), on SQLite and PostgreSQL.

#[path = "../support/mod.rs"]
mod support;

mod account;
mod admin;
mod approvals;
mod auth_matrix;
mod events;
mod idempotency;
mod openapi;
mod operators;
mod ratelimit;
mod roles;
mod sessions;
mod wallets;
mod webhooks;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use support::{at, usdc, Db, TestApp};
use tower::ServiceExt;
use updown_app::api;
use updown_domain::round::Side;
use updown_store::on_both_backends;

on_both_backends!(
    metrics_count_bets_requests_and_show_tvl,
    every_answer_carries_a_request_id,
    idempotency_keys_replay_the_first_answer_and_move_money_once,
    a_player_deposits_bets_cancels_and_withdraws_over_http,
    signing_up_gives_a_key_that_reads_only_its_own_account,
    sign_up_refuses_bad_bodies_with_json_errors,
    the_current_round_shows_pools_and_implied_payouts,
    bad_requests_get_json_errors_never_a_server_error,
    health_and_tvl_answer,
);

async fn get(t: &TestApp, uri: &str) -> (StatusCode, Value) {
    send(t, "GET", uri, None, None).await
}

/// A text answer (e.g. `/metrics`).
async fn get_text(t: &TestApp, uri: &str) -> String {
    let response = api::router(t.app.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{uri}");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn get_as(t: &TestApp, uri: &str, key: &str) -> (StatusCode, Value) {
    send(t, "GET", uri, None, Some(key)).await
}

/// One request through the router; the body's JSON (null when empty).
async fn send(
    t: &TestApp,
    method: &str,
    uri: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let authorization = key.map(|key| format!("Bearer {key}"));
    let headers: Vec<(&str, &str)> = authorization
        .as_deref()
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    let (status, _, body) = send_with(t, method, uri, body, &headers).await;
    (status, body)
}

/// One request with the given headers; status, response headers, JSON.
async fn send_with(
    t: &TestApp,
    method: &str,
    uri: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let response = over_http(t, request).await;
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if bytes.is_empty() {
        return (status, headers, Value::Null);
    }
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{uri}: body is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, headers, body)
}

/// Sends `request` (with a path-only URI) to the test app's port.
async fn over_http(t: &TestApp, request: Request<Body>) -> axum::http::Response<axum::body::Body> {
    support::request(t.address, request).await
}

/// Signs `name@example.com` up over HTTP; their API key.
async fn sign_up(t: &TestApp, name: &str) -> String {
    let body = format!(r#"{{"email": "{name}@example.com"}}"#);
    let (status, answer) = send(t, "POST", "/users", Some(&body), None).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["api_key"].as_str().unwrap().to_string()
}

/// Credits `name@example.com` through the admin's simulated webhook.
async fn simulate_deposit(t: &TestApp, name: &str, amount: i64) {
    let body = format!(
        r#"{{"email": "{name}@example.com", "amount": {amount}, "tx_hash": "0xdep-{name}-{amount}"}}"#
    );
    let (status, answer) = send(
        t,
        "POST",
        "/simulate/deposit_webhook",
        Some(&body),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// One request; the status, one header and the raw body.
async fn send_raw(
    t: &TestApp,
    uri: &str,
    key: &str,
    header: &str,
) -> (StatusCode, Option<String>, String) {
    let request = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let response = api::router(t.app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let value = response
        .headers()
        .get(header)
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, value, String::from_utf8(bytes.to_vec()).unwrap())
}

const ADMIN: &str = "admin-token-for-tests-0123456789";

/// One request with a JSON body, a bearer key and an Idempotency-Key:
/// status, whether it was replayed, and the raw answer, to compare bytes.
async fn keyed(
    t: &TestApp,
    method: &str,
    uri: &str,
    body: &str,
    bearer: &str,
    key: &str,
) -> (StatusCode, bool, Vec<u8>) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = api::router(t.app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, replayed, bytes.to_vec())
}

async fn idempotency_keys_replay_the_first_answer_and_move_money_once(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let (_, ann) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "ann@example.com"}"#),
        None,
    )
    .await;
    let ann_key = ann["api_key"].as_str().unwrap().to_string();
    let (_, bob) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "bob@example.com"}"#),
        None,
    )
    .await;
    let bob_key = bob["api_key"].as_str().unwrap().to_string();
    for email in ["ann", "bob"] {
        let body = format!(
            r#"{{"email": "{email}@example.com", "amount": 10000000, "tx_hash": "0x{email}"}}"#
        );
        let (status, _, _) = keyed(
            &t,
            "POST",
            "/simulate/deposit_webhook",
            &body,
            ADMIN,
            &format!("deposit-{email}"),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }

    let bet = r#"{"side": "UP", "amount": 2000000}"#;
    let first = keyed(&t, "POST", "/bets", bet, &ann_key, "bet-1").await;
    assert_eq!((first.0, first.1), (StatusCode::CREATED, false));
    let retry = keyed(&t, "POST", "/bets", bet, &ann_key, "bet-1").await;
    assert_eq!((retry.0, retry.1), (StatusCode::CREATED, true));
    assert_eq!(
        retry.2, first.2,
        "a retry gets the first answer byte for byte"
    );
    let (_, round) = get(&t, "/rounds/current").await;
    assert_eq!(
        round["pool_up"], 2_000_000,
        "the retry placed no second bet"
    );

    let changed = keyed(
        &t,
        "POST",
        "/bets",
        r#"{"side": "DOWN", "amount": 2000000}"#,
        &ann_key,
        "bet-1",
    )
    .await;
    assert_eq!(changed.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(String::from_utf8_lossy(&changed.2).contains("idempotency_mismatch"));
    // Keys are per caller: bob's "bet-1" is his own.
    let bobs = keyed(&t, "POST", "/bets", bet, &bob_key, "bet-1").await;
    assert_eq!((bobs.0, bobs.1), (StatusCode::CREATED, false));
    // A refusal moved nothing and is not recorded: a retry is decided
    // afresh, refused while the funds are short, placed once they arrive.
    let too_big = r#"{"side": "UP", "amount": 9000000}"#;
    let refused = keyed(&t, "POST", "/bets", too_big, &ann_key, "bet-2").await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        keyed(&t, "POST", "/bets", too_big, &ann_key, "bet-2")
            .await
            .2,
        refused.2
    );
    let top_up = r#"{"email": "ann@example.com", "amount": 1000000, "tx_hash": "0xtop-up"}"#;
    let (status, _, _) = keyed(
        &t,
        "POST",
        "/simulate/deposit_webhook",
        top_up,
        ADMIN,
        "top-up",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let placed = keyed(&t, "POST", "/bets", too_big, &ann_key, "bet-2").await;
    assert_eq!((placed.0, placed.1), (StatusCode::CREATED, false));
    let (status, _, _) = keyed(&t, "POST", "/bets", bet, &ann_key, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, me) = send(&t, "GET", "/me", None, Some(&ann_key)).await;
    assert_eq!(me["available"], 0);
    t.assert_verified().await;
}

async fn a_player_deposits_bets_cancels_and_withdraws_over_http(db: Db) {
    let t = TestApp::spawn(
        db,
        &[("ADMIN_TOKEN", ADMIN), ("MAX_BET", "100USDC")],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    t.open("20261124").await;
    let (_, ann) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "ann@example.com"}"#),
        None,
    )
    .await;
    let ann_key = ann["api_key"].as_str().unwrap().to_string();
    let (_, bob) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "bob@example.com"}"#),
        None,
    )
    .await;
    let bob_key = bob["api_key"].as_str().unwrap().to_string();

    let deposit = r#"{"email": "ann@example.com", "amount": 20000000, "tx_hash": "0xabc"}"#;
    for key in [
        None,
        Some(ann_key.as_str()),
        Some("admin-token-for-tests-0123456780"),
    ] {
        let (status, body) =
            send(&t, "POST", "/simulate/deposit_webhook", Some(deposit), key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {body}");
    }
    let (status, credited) = send(
        &t,
        "POST",
        "/simulate/deposit_webhook",
        Some(deposit),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{credited}");
    assert_eq!(credited["available"], 20_000_000);
    // The same transfer again, however its hash is written: no credit.
    for again in [deposit, &deposit.replace("0xabc", "0xABC")] {
        let (status, answer) = send(
            &t,
            "POST",
            "/simulate/deposit_webhook",
            Some(again),
            Some(ADMIN),
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict")),
            "{again}"
        );
    }

    let (status, bet) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 3000000}"#),
        Some(&ann_key),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bet}");
    let (_, round) = get(&t, "/rounds/current").await;
    assert_eq!(round["pool_up"], 3_000_000);
    for (body, status, code) in [
        (
            r#"{"side": "UP", "amount": 0}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"side": "UP", "amount": -5}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"side": "UP", "amount": "5"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"side": "UP", "amount": 1.5}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"side": "UP", "amount": 99999999999999999999}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"side": "SIDEWAYS", "amount": 5}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"side": "UP", "amount": 100000001}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "limit_exceeded",
        ),
        (
            r#"{"side": "UP", "amount": 18000000}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "insufficient_funds",
        ),
        (
            r#"{"side": "UP", "amount": 5, "round": "20261125"}"#,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            r#"{"side": "UP", "amount": 5, "round": "tomorrow"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
    ] {
        let (got, answer) = send(&t, "POST", "/bets", Some(body), Some(&ann_key)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, _) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 5}"#),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let bet_id = bet["id"].as_i64().unwrap();
    let (status, _) = send(
        &t,
        "DELETE",
        &format!("/bets/{bet_id}"),
        None,
        Some(&bob_key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob cannot see ann's bet");
    let (status, cancelled) = send(
        &t,
        "DELETE",
        &format!("/bets/{bet_id}"),
        None,
        Some(&ann_key),
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (StatusCode::OK, Some("CANCELLED"))
    );
    let (_, mine) = send(&t, "GET", "/me/bets", None, Some(&ann_key)).await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1));
    let (_, theirs) = send(&t, "GET", "/me/bets", None, Some(&bob_key)).await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(0));

    let withdrawal =
        r#"{"amount": 5000000, "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}"#;
    let (status, queued) = send(&t, "POST", "/withdrawals", Some(withdrawal), Some(&ann_key)).await;
    assert_eq!(
        (status, queued["status"].as_str()),
        (StatusCode::CREATED, Some("QUEUED")),
        "{queued}"
    );
    for (body, status) in [
        // Well-formed, but its EIP-55 checksum fails: a mistyped letter.
        (
            r#"{"amount": 5000000, "address": "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            r#"{"amount": 5000000, "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"amount": 500000000, "address": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        assert_eq!(
            send(&t, "POST", "/withdrawals", Some(body), Some(&ann_key))
                .await
                .0,
            status,
            "{body}"
        );
    }
    let (_, listed) = send(&t, "GET", "/me/withdrawals", None, Some(&ann_key)).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let (_, me) = send(&t, "GET", "/me", None, Some(&ann_key)).await;
    assert_eq!(me["available"], 15_000_000);
    t.assert_verified().await;
}

async fn signing_up_gives_a_key_that_reads_only_its_own_account(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    let (status, ann) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "ann@example.com"}"#),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ann}");
    let ann_key = ann["api_key"].as_str().unwrap().to_string();
    assert!(ann_key.starts_with("ud_"));
    let (_, bob) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "bob@example.com"}"#),
        None,
    )
    .await;
    let bob_key = bob["api_key"].as_str().unwrap().to_string();
    let ann_id = updown_domain::UserId(ann["user"]["id"].as_i64().unwrap());
    t.app
        .deposit(ann_id, usdc(5), "0xann", 0, None)
        .await
        .unwrap();

    let (status, me) = send(&t, "GET", "/me", None, Some(&ann_key)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["email"].as_str(), me["available"].as_i64()),
        (Some("ann@example.com"), Some(5_000_000))
    );
    let (_, bob_me) = send(&t, "GET", "/me", None, Some(&bob_key)).await;
    assert_eq!(
        (bob_me["email"].as_str(), bob_me["available"].as_i64()),
        (Some("bob@example.com"), Some(0))
    );

    for key in [
        None,
        Some("ud_0000"),
        Some("not-a-key"),
        Some(&bob_key[..bob_key.len() - 1]),
    ] {
        let (status, body) = send(&t, "GET", "/me", None, key).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    // Rotation: a new key works; the old one stops working once revoked;
    // nobody can revoke someone else's key.
    let (status, fresh) = send(&t, "POST", "/me/api-keys", None, Some(&ann_key)).await;
    assert_eq!(status, StatusCode::CREATED);
    let fresh_key = fresh["api_key"].as_str().unwrap().to_string();
    let old_id = ann["api_key_id"].as_i64().unwrap();
    let (status, _) = send(
        &t,
        "DELETE",
        &format!("/me/api-keys/{old_id}"),
        None,
        Some(&bob_key),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(
        &t,
        "DELETE",
        &format!("/me/api-keys/{old_id}"),
        None,
        Some(&fresh_key),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&t, "GET", "/me", None, Some(&ann_key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        send(&t, "GET", "/me", None, Some(&fresh_key)).await.0,
        StatusCode::OK
    );
    t.assert_verified().await;
}

async fn sign_up_refuses_bad_bodies_with_json_errors(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "ann@example.com"}"#),
        None,
    )
    .await;
    for (body, status, code) in [
        (
            r#"{"email": "ann@example.com"}"#,
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            r#"{"email": "not-an-email"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (r#"{"email": 42}"#, StatusCode::BAD_REQUEST, "invalid_input"),
        (
            r#"{"mail": "x@example.com"}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            r#"{"email": "x@example.com", "admin": true}"#,
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (r#"{"email": "#, StatusCode::BAD_REQUEST, "invalid_input"),
        ("", StatusCode::BAD_REQUEST, "invalid_input"),
    ] {
        let (got, answer) = send(&t, "POST", "/users", Some(body), None).await;
        assert_eq!(got, status, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
    }
}

async fn the_current_round_shows_pools_and_implied_payouts(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    let (status, body) = get(&t, "/rounds/current").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    t.open("20261124").await;
    let (ann, bob) = (
        t.funded("ann", usdc(100)).await,
        t.funded("bob", usdc(100)).await,
    );
    t.app
        .place_bet(ann, Side::Up, usdc(30), None, None)
        .await
        .unwrap();
    t.app
        .place_bet(bob, Side::Down, usdc(10), None, None)
        .await
        .unwrap();
    let (status, body) = get(&t, "/rounds/current").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["code"], "20261124");
    assert_eq!(body["status"], "OPEN");
    assert_eq!(
        (body["pool_up"].as_i64(), body["pool_down"].as_i64()),
        (Some(30_000_000), Some(10_000_000))
    );
    assert_eq!(
        (body["bets_up"].as_i64(), body["bets_down"].as_i64()),
        (Some(1), Some(1))
    );
    // UP wins 10 - 1% fee on 30: 1.33x; DOWN wins 30 - 0.3 on 10: 3.97x.
    assert_eq!(body["implied_multiplier_up"], "1.3300x");
    assert_eq!(body["implied_multiplier_down"], "3.9700x");
    assert_eq!(body["lock_at"], "2026-11-24T20:59:59Z");
    assert_eq!(body["terms_digest"].as_str().map(str::len), Some(64));
    let (status, by_code) = get(&t, "/rounds/20261124").await;
    assert_eq!(
        (status, &by_code["pool_up"]),
        (StatusCode::OK, &body["pool_up"])
    );
    let (status, listing) = get(&t, "/rounds?limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listing.as_array().map(Vec::len), Some(1));

    // The view is kept in memory; a new bet shows within its 100 ms.
    t.app
        .place_bet(bob, Side::Down, usdc(5), None, None)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        let (_, body) = get(&t, "/rounds/current").await;
        if body["pool_down"] == 15_000_000 {
            assert_eq!(body["bets_down"], 2);
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "the view never caught up: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // At the lock instant the next session's round is the current one,
    // not yet open: no stale view of this one.
    t.clock.set(at("2026-11-24T20:59:59Z"));
    let (status, body) = get(&t, "/rounds/current").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("20261125"),
        "{body}"
    );
    t.assert_verified().await;
}

async fn bad_requests_get_json_errors_never_a_server_error(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    for (uri, status, code) in [
        (
            "/rounds/2026-11-24",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        // Eight digits, but no calendar date: no such round.
        ("/rounds/20261301", StatusCode::NOT_FOUND, "not_found"),
        ("/rounds/2026112", StatusCode::BAD_REQUEST, "invalid_input"),
        ("/rounds/20261125", StatusCode::NOT_FOUND, "not_found"),
        ("/rounds?limit=0", StatusCode::BAD_REQUEST, "invalid_input"),
        (
            "/rounds?limit=1000",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "/rounds?limit=abc",
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        ("/no/such/route", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, body) = get(&t, uri).await;
        assert_eq!(got, status, "{uri}: {body}");
        assert_eq!(body["error"]["code"], code, "{uri}: {body}");
        assert!(
            !body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{uri}"
        );
    }
}

async fn health_and_tvl_answer(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    t.funded("ann", usdc(7)).await;
    let (status, health) = get(&t, "/health").await;
    assert_eq!(
        (status, &health["database"]),
        (StatusCode::OK, &Value::from("ok"))
    );
    assert_eq!(health["redis"], "not configured");
    assert_eq!(health["scheduler"]["status"], "not running");

    // Liveness and readiness, for load balancers.
    let (status, live) = get(&t, "/health/live").await;
    assert_eq!(
        (status, live["status"].as_str()),
        (StatusCode::OK, Some("live"))
    );
    let (status, ready) = get(&t, "/health/ready").await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );

    // With the scheduler running: fresh after a step, stale once it is
    // more than three ticks behind the clock: degraded, not out of service
    // (a load balancer taking every instance out would not step it).
    let ticking = TestApp::spawn(
        db,
        &[("SCHEDULER_TICK_SECS", "60")],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let app = ticking.app.clone();
    let scheduler = tokio::spawn(async move {
        app.run_scheduler(async move {
            let _ = stopped.await;
        })
        .await
    });
    while ticking.app.scheduler_last_tick().is_none() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (status, health) = get(&ticking, "/health").await;
    assert_eq!(
        (status, health["scheduler"]["status"].as_str()),
        (StatusCode::OK, Some("ok")),
        "{health}"
    );
    assert_eq!(health["scheduler"]["last_step"], "2026-11-24T15:00:00Z");
    let (_, current) = get(&ticking, "/rounds/current").await;
    assert_eq!(current["code"], "20261124", "the step opened the round");
    ticking.advance(chrono::Duration::minutes(4));
    let (status, health) = get(&ticking, "/health").await;
    assert_eq!(
        (
            status,
            health["scheduler"]["status"].as_str(),
            health["status"].as_str()
        ),
        (StatusCode::OK, Some("stale"), Some("degraded")),
        "{health}"
    );
    stop.send(()).unwrap();
    scheduler.await.unwrap();

    // Redis configured but not answering: degraded, still ready (it only
    // carries events), and the metric says so.
    let down = TestApp::spawn(
        db,
        &[("REDIS_URL", "redis://127.0.0.1:1")],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    let (status, health) = get(&down, "/health").await;
    assert_eq!(
        (status, health["redis"].as_str(), health["status"].as_str()),
        (StatusCode::OK, Some("unreachable"), Some("degraded"))
    );
    assert_eq!(get(&down, "/health/ready").await.0, StatusCode::OK);
    // The gauge is the process's: the other engine's run of this story
    // may set it to 1 with its live Redis in between, hence a few reads.
    let mut redis_down_seen = false;
    for _ in 0..5 {
        let metrics = get_text(&down, "/metrics").await;
        assert!(
            metrics.contains("updown_dependency_up{dependency=\"database\"} 1"),
            "{metrics}"
        );
        if metrics.contains("updown_dependency_up{dependency=\"redis\"} 0") {
            redis_down_seen = true;
            break;
        }
    }
    assert!(redis_down_seen, "updown_dependency_up for Redis never 0");
    // And answering (required in CI, where TEST_REDIS_URL is set).
    match std::env::var("TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let up = TestApp::spawn(
                db,
                &[("REDIS_URL", url.as_str())],
                at("2026-11-24T15:00:00Z"),
            )
            .await;
            let (status, health) = get(&up, "/health").await;
            assert_eq!(
                (status, health["redis"].as_str()),
                (StatusCode::OK, Some("ok")),
                "{health}"
            );
        }
        _ => eprintln!("skipped: /health with a live Redis (TEST_REDIS_URL is not set)"),
    }

    let (status, tvl) = get(&t, "/tvl").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tvl["total"], 7_000_000);
    assert_eq!(tvl["user_balances"], 7_000_000);
    t.assert_verified().await;
}

async fn every_answer_carries_a_request_id(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    let ask = |id: Option<&'static str>| {
        let mut request = Request::get("/health");
        if let Some(id) = id {
            request = request.header("x-request-id", id);
        }
        api::router(t.app.clone()).oneshot(request.body(Body::empty()).unwrap())
    };
    let echoed = ask(Some("trace-me-123")).await.unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
    let generated = ask(None).await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 16, "{id}");
    let another = ask(None).await.unwrap();
    assert_ne!(another.headers()["x-request-id"].to_str().unwrap(), id);
    // Errors carry it too.
    let missing = api::router(t.app.clone())
        .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert!(missing.headers().contains_key("x-request-id"));
}

async fn metrics_count_bets_requests_and_show_tvl(db: Db) {
    let t = TestApp::spawn(db, &[], at("2026-11-24T15:00:00Z")).await;
    updown_app::metrics::handle();
    t.open("20261124").await;
    let (_, ann) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "ann@example.com"}"#),
        None,
    )
    .await;
    let key = ann["api_key"].as_str().unwrap().to_string();
    t.app
        .deposit(
            updown_domain::UserId(ann["user"]["id"].as_i64().unwrap()),
            usdc(9),
            "0xm",
            0,
            None,
        )
        .await
        .unwrap();
    send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "DOWN", "amount": 1000000}"#),
        Some(&key),
    )
    .await;
    get(&t, "/rounds/current").await;
    // One periodic verify of each scope (their shutdown already come, each
    // runs once): the incremental one writes a checkpoint.
    let hour = std::time::Duration::from_secs(3600);
    t.app.run_periodic_verify(hour, None, async {}).await;
    t.app
        .run_periodic_verify(hour, Some(std::time::Duration::ZERO), async {})
        .await;
    let text = get_text(&t, "/metrics").await;
    let stamped = t.app.clock.now().timestamp();
    for expected in [
        "updown_ledger_verified{scope=\"incremental\",result=\"ok\"} 1".to_string(),
        "updown_ledger_verified{scope=\"incremental\",result=\"failed\"} 0".to_string(),
        "updown_ledger_verified{scope=\"full\",result=\"ok\"} 1".to_string(),
        format!("updown_ledger_verified_timestamp_seconds{{scope=\"full\"}} {stamped}"),
        "updown_ledger_checkpoint_age_seconds 0".to_string(),
        "updown_round_settle_overdue_seconds 0".to_string(),
        "updown_dependency_up{dependency=\"database\"} 1".to_string(),
    ] {
        assert!(
            text.contains(&expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
    for expected in [
        "updown_tvl_micro_usdc",
        "updown_rounds{status=\"OPEN\"}",
        "updown_bets_total{side=\"DOWN\"}",
        "updown_bet_volume_micro_usdc_total{side=\"DOWN\"}",
        // Each batch's time in the database and each bet's wait for its
        // batch, in buckets finer than the requests' (from 250 us).
        "updown_bet_batch_seconds_bucket{le=\"0.00025\"}",
        "updown_bet_queue_seconds_bucket{le=\"0.00025\"}",
        "updown_bet_batch_seconds_count",
        "http_requests_total{method=\"GET\",route=\"/rounds/current\",status=\"200\"}",
        "http_request_duration_seconds",
    ] {
        assert!(
            text.contains(expected),
            "/metrics lacks {expected}:\n{text}"
        );
    }
    t.assert_verified().await;
}
