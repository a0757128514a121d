//! Every documented route against every kind of caller: none, a wrong
//! key, a revoked key, another user's key, a user's key on admin routes,
//! and the admin token on user routes. Nobody reads or moves another
//! user's money; the owner's balance, bets and keys never change.

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{at, Db, TestApp};
use crate::{get, get_as, send, sign_up, simulate_deposit, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(every_route_refuses_every_caller_it_should,);

/// A body that would do real harm if the caller were let through.
fn body_for(method: &str, path: &str) -> Option<&'static str> {
    match (method, path) {
        ("POST", "/bets") => Some(r#"{"side": "UP", "amount": 1000000}"#),
        ("POST", "/withdrawals") => {
            Some(r#"{"amount": 1000000, "address": "0x52908400098527886E0F7030069857D2E4169EE7"}"#)
        }
        ("PUT", "/me/limits") => Some(r#"{"excluded_until": "2030-01-01"}"#),
        ("POST", "/simulate/deposit_webhook") => {
            Some(r#"{"email": "ann@example.com", "amount": 1000000, "tx_hash": "0xforged"}"#)
        }
        ("POST", "/admin/rounds") => Some(r#"{"reason": "matrix"}"#),
        ("POST", p) if p.starts_with("/admin/") => {
            Some(r#"{"reason": "matrix", "result": "VOID"}"#)
        }
        ("POST", "/users") => Some(r#"{"email": "new@example.com"}"#),
        ("POST", "/sessions") => {
            Some(r#"{"email": "ann@example.com", "password": "not her password"}"#)
        }
        _ => None,
    }
}

/// What Ann owns, so that other callers aim at her things.
struct Owned {
    bet: i64,
    key: i64,
    withdrawal: i64,
}

fn concrete(path: &str, owned: &Owned) -> String {
    let id = if path.starts_with("/bets/") {
        owned.bet
    } else if path.starts_with("/me/api-keys/") {
        owned.key
    } else {
        owned.withdrawal
    };
    path.replace("{code}", "20261124")
        .replace("{id}", &id.to_string())
        .replace("{step}", "fail")
}

async fn snapshot(t: &TestApp, ann: &str) -> Value {
    let (_, me) = get_as(t, "/me", ann).await;
    let (_, bets) = get_as(t, "/me/bets", ann).await;
    let (_, keys) = get_as(t, "/me/api-keys", ann).await;
    let (_, withdrawals) = get_as(t, "/me/withdrawals", ann).await;
    serde_json::json!({ "me": me, "bets": bets, "keys": keys, "withdrawals": withdrawals })
}

async fn every_route_refuses_every_caller_it_should(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let ann = sign_up(&t, "ann").await;
    let bob = sign_up(&t, "bob").await;
    simulate_deposit(&t, "ann", 10_000_000).await;
    simulate_deposit(&t, "bob", 10_000_000).await;
    let (_, bet) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 2000000}"#),
        Some(&ann),
    )
    .await;
    let (_, withdrawal) = send(
        &t,
        "POST",
        "/withdrawals",
        body_for("POST", "/withdrawals"),
        Some(&ann),
    )
    .await;
    let (_, revoked) = send(&t, "POST", "/me/api-keys", None, Some(&ann)).await;
    let revoked_key = revoked["api_key"].as_str().unwrap().to_string();
    let (status, _) = send(
        &t,
        "DELETE",
        &format!("/me/api-keys/{}", revoked["api_key_id"]),
        None,
        Some(&ann),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, keys) = get_as(&t, "/me/api-keys", &ann).await;
    let owned = Owned {
        bet: bet["id"].as_i64().unwrap(),
        key: keys[1]["id"].as_i64().unwrap(),
        withdrawal: withdrawal["id"].as_i64().unwrap(),
    };
    let before = snapshot(&t, &ann).await;
    let (_, tvl_before) = get(&t, "/tvl").await;

    let wrong = format!("ud_{}", "0".repeat(64));
    let (_, doc) = get(&t, "/openapi.json").await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            let schemes: Vec<&str> = operation["security"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|r| r.as_object()?.keys().next().map(String::as_str))
                        .collect()
                })
                .unwrap_or_default();
            let uri = concrete(path, &owned);
            let body = body_for(&method, path);
            let admin_route = schemes.contains(&"admin_token");
            let user_route = schemes.contains(&"api_key");
            // `{}` among the schemes: anyone may call, a bad credential
            // is still refused (the event stream).
            let anonymous_allowed = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            let mut refused_callers = vec![Some(wrong.as_str()), Some(revoked_key.as_str())];
            if !anonymous_allowed {
                refused_callers.push(None);
            }
            if admin_route {
                refused_callers.push(Some(ann.as_str()));
            }
            if user_route {
                refused_callers.push(Some(ADMIN));
            }
            if !(admin_route || user_route) {
                continue;
            }
            for caller in refused_callers {
                let (status, answer) = send(&t, &method, &uri, body, caller).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} as {caller:?}: {answer}"
                );
                assert_eq!(answer["error"]["code"], "unauthorized");
                checked += 1;
            }
            // Bob on a route naming Ann's things: not found, as if they did not exist.
            if user_route && path.contains("{id}") {
                let (status, answer) = send(&t, &method, &uri, body, Some(&bob)).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{method} {uri} as bob: {answer}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 90, "only {checked} refusals checked");

    // Bob's own reads show Bob, never Ann.
    for uri in [
        "/me",
        "/me/bets",
        "/me/statement",
        "/me/withdrawals",
        "/me/api-keys",
    ] {
        let (status, answer) = get_as(&t, uri, &bob).await;
        assert_eq!(status, StatusCode::OK);
        let text = answer.to_string();
        assert!(!text.contains("ann@example.com"), "{uri}: {text}");
        assert!(
            !text.contains(&format!("\"id\":{}", owned.bet)) || uri != "/me/bets",
            "{uri}: {text}"
        );
    }
    let (_, bob_me) = get_as(&t, "/me", &bob).await;
    assert_eq!(bob_me["email"], "bob@example.com");

    assert_eq!(snapshot(&t, &ann).await, before, "nothing of Ann's changed");
    assert_eq!(get(&t, "/tvl").await.1, tvl_before, "no money moved");
    t.assert_verified().await;
}
