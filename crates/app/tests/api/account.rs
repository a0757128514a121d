//! A player's own account over HTTP: statement (JSON and CSV), limits and
//! self-exclusion, API keys.

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{at, Db, TestApp};
use crate::{get_as, send, send_raw, sign_up, simulate_deposit, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    the_statement_lists_every_movement_with_running_balances_in_json_and_csv,
    limits_and_self_exclusion_are_the_players_own_and_cannot_be_shortened,
    api_keys_are_listed_without_their_secret_and_revocable,
    bets_and_withdrawals_are_listed_a_page_at_a_time,
);

async fn the_statement_lists_every_movement_with_running_balances_in_json_and_csv(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let key = sign_up(&t, "ann").await;
    simulate_deposit(&t, "ann", 10_000_000).await;
    let (status, bet) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 2000000}"#),
        Some(&key),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bet}");
    let cancel = format!("/bets/{}", bet["id"]);
    assert_eq!(
        send(&t, "DELETE", &cancel, None, Some(&key)).await.0,
        StatusCode::OK
    );
    send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "DOWN", "amount": 3000000}"#),
        Some(&key),
    )
    .await;
    let withdrawal =
        r#"{"amount": 1000000, "address": "0x52908400098527886E0F7030069857D2E4169EE7"}"#;
    assert_eq!(
        send(&t, "POST", "/withdrawals", Some(withdrawal), Some(&key))
            .await
            .0,
        StatusCode::CREATED
    );

    let (status, lines) = get_as(&t, "/me/statement", &key).await;
    assert_eq!(status, StatusCode::OK, "{lines}");
    let lines = lines.as_array().unwrap();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["withdrawal_request", "bet", "bet_cancel", "bet", "deposit"],
        "newest first"
    );
    let amounts: Vec<i64> = lines
        .iter()
        .map(|l| l["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(
        amounts,
        [-1_000_000, -3_000_000, 2_000_000, -2_000_000, 10_000_000]
    );
    let (_, me) = get_as(&t, "/me", &key).await;
    assert_eq!(
        lines[0]["balance_after"], me["available"],
        "the newest line ends at the balance"
    );
    assert_eq!(me["available"], amounts.iter().sum::<i64>());
    assert_eq!(lines[1]["round"], "20261124");
    assert!(lines[1]["bet_id"].is_i64());

    // Pages: `before` continues after the last line seen.
    let (_, first) = get_as(&t, "/me/statement?limit=2", &key).await;
    let last = first[1]["tx_id"].as_i64().unwrap();
    let (_, rest) = get_as(&t, &format!("/me/statement?before={last}"), &key).await;
    assert_eq!(rest.as_array().unwrap().len(), 3);
    assert_eq!(rest[0], lines[2]);

    let (status, content_type, csv) =
        send_raw(&t, "/me/statement?format=csv", &key, "content-type").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.as_deref(), Some("text/csv; charset=utf-8"));
    let records: Vec<&str> = csv.lines().collect();
    assert_eq!(
        records[0],
        "tx_id,at,kind,amount,balance_after,round,bet_id,reference"
    );
    assert_eq!(records.len(), 6);
    let csv_amounts: Vec<i64> = records[1..]
        .iter()
        .map(|r| r.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(csv_amounts, amounts);

    for bad in [
        "/me/statement?format=xml",
        "/me/statement?limit=0",
        "/me/statement?limit=100001",
        "/me/statement?before=x",
        "/me/statement?page=2",
    ] {
        let (status, body) = get_as(&t, bad, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input");
    }
    // Well-formed, but more than a JSON page holds: refused, with the way out.
    let (status, body) = get_as(&t, "/me/statement?limit=1001", &key).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("refused"))
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("format=csv"));
    t.assert_verified().await;
}

async fn limits_and_self_exclusion_are_the_players_own_and_cannot_be_shortened(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let key = sign_up(&t, "cat").await;
    simulate_deposit(&t, "cat", 10_000_000).await;
    let bet = |amount: i64| format!(r#"{{"side": "UP", "amount": {amount}}}"#);

    let (status, limits) = send(
        &t,
        "PUT",
        "/me/limits",
        Some(r#"{"max_stake_per_round": 1500000}"#),
        Some(&key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_eq!(limits["max_stake_per_round"], 1_500_000);
    assert_eq!(limits["max_stake_per_day"], Value::Null);
    let (status, refused) = send(&t, "POST", "/bets", Some(&bet(2_000_000)), Some(&key)).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limit_exceeded"))
    );
    assert_eq!(
        send(&t, "POST", "/bets", Some(&bet(1_000_000)), Some(&key))
            .await
            .0,
        StatusCode::CREATED
    );

    let (status, limits) = send(
        &t,
        "PUT",
        "/me/limits",
        Some(r#"{"excluded_until": "2026-12-01"}"#),
        Some(&key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_eq!(
        limits["excluded_until"], "2026-12-01T05:00:00Z",
        "midnight in New York"
    );
    // PUT replaces the whole set, but lifting a limit waits out the
    // cooling-off period (LIMIT_RAISE_COOLOFF_HOURS, 24 by default).
    assert_eq!(limits["max_stake_per_round"], 1_500_000, "{limits}");
    assert_eq!(limits["pending"]["max_stake_per_round"], Value::Null);
    assert_eq!(limits["pending"]["from"], "2026-11-25T15:00:00Z");
    let (status, refused) = send(&t, "POST", "/bets", Some(&bet(1_000_000)), Some(&key)).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("self_excluded"))
    );
    let (_, me) = get_as(&t, "/me", &key).await;
    assert_eq!(me["limits"]["excluded_until"], "2026-12-01T05:00:00Z");

    for shorter in [r#"{}"#, r#"{"excluded_until": "2026-11-30"}"#] {
        let (status, body) = send(&t, "PUT", "/me/limits", Some(shorter), Some(&key)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("conflict")),
            "{shorter}"
        );
    }
    let (status, _) = send(
        &t,
        "PUT",
        "/me/limits",
        Some(r#"{"excluded_until": "2027-01-01T00:00:00Z"}"#),
        Some(&key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "extending is allowed");

    // A day later the raise is in force.
    t.clock.advance(chrono::Duration::hours(24));
    let (_, me) = get_as(&t, "/me", &key).await;
    assert_eq!(me["limits"]["max_stake_per_round"], Value::Null, "{me}");
    assert_eq!(me["limits"]["pending"], Value::Null);
    // Lowering applies at once and drops a waiting raise.
    let (status, limits) = send(
        &t,
        "PUT",
        "/me/limits",
        Some(r#"{"max_stake_per_day": 100, "excluded_until": "2027-01-01T00:00:00Z"}"#),
        Some(&key),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{limits}");
    assert_eq!(
        (limits["max_stake_per_day"].as_i64(), &limits["pending"]),
        (Some(100), &Value::Null)
    );

    let other = sign_up(&t, "dan").await;
    for bad in [
        r#"{"max_stake_per_round": -1}"#,
        r#"{"max_stake_per_day": "lots"}"#,
        r#"{"excluded_until": "2020-01-01"}"#,
        r#"{"excluded_until": "tomorrow"}"#,
        r#"{"excluded_until": "9999-01-01"}"#,
        r#"{"surprise": 1}"#,
        r#"not json"#,
    ] {
        let (status, body) = send(&t, "PUT", "/me/limits", Some(bad), Some(&other)).await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {status} {body}"
        );
        assert!(body["error"]["code"].is_string(), "{bad}: {body}");
    }
    let (_, dan) = get_as(&t, "/me", &other).await;
    assert_eq!(
        dan["limits"]["excluded_until"],
        Value::Null,
        "bad input changed nothing"
    );
    t.assert_verified().await;
}

async fn api_keys_are_listed_without_their_secret_and_revocable(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let first = sign_up(&t, "eve").await;
    let (status, created) = send(&t, "POST", "/me/api-keys", None, Some(&first)).await;
    assert_eq!(status, StatusCode::CREATED);
    let second = created["api_key"].as_str().unwrap().to_string();
    let (status, keys) = get_as(&t, "/me/api-keys", &second).await;
    assert_eq!(status, StatusCode::OK);
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        !keys.iter().any(|k| k.to_string().contains(&first[8..])),
        "no key is shown again"
    );
    assert_eq!(keys[0]["id"], created["api_key_id"]);
    assert!(second.starts_with(keys[0]["prefix"].as_str().unwrap()));

    let revoke = format!("/me/api-keys/{}", keys[1]["id"]);
    assert_eq!(
        send(&t, "DELETE", &revoke, None, Some(&second)).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(get_as(&t, "/me", &first).await.0, StatusCode::UNAUTHORIZED);
    let (_, keys) = get_as(&t, "/me/api-keys", &second).await;
    assert!(keys[1]["revoked_at"].is_string());
    assert!(keys[0]["revoked_at"].is_null());
}

async fn bets_and_withdrawals_are_listed_a_page_at_a_time(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let key = sign_up(&t, "pat").await;
    simulate_deposit(&t, "pat", 10_000_000).await;
    let user = t.app.authenticate(&key).await.unwrap().id;
    let mut placed = Vec::new();
    for _ in 0..150 {
        let one = updown_domain::Micros::new(1).unwrap();
        let bet = t
            .app
            .place_bet(user, updown_domain::round::Side::Up, one, None, None)
            .await
            .unwrap();
        placed.push(bet.id.0);
    }
    placed.reverse();
    let ids = |page: &Value| -> Vec<i64> {
        page.as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_i64().unwrap())
            .collect()
    };
    let (status, first) = get_as(&t, "/me/bets", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&first), placed[..100], "newest first, 100 by default");
    let last = placed[99];
    let (_, second) = get_as(&t, &format!("/me/bets?before={last}"), &key).await;
    assert_eq!(ids(&second), placed[100..], "the 50 oldest, none lost");
    let (_, none) = get_as(&t, &format!("/me/bets?before={}", placed[149]), &key).await;
    assert_eq!(ids(&none), Vec::<i64>::new());
    let (_, small) = get_as(&t, "/me/bets?limit=7", &key).await;
    assert_eq!(ids(&small), placed[..7]);

    let address = "0x52908400098527886E0F7030069857D2E4169EE7";
    let mut withdrawals = Vec::new();
    for _ in 0..3 {
        let body = format!(r#"{{"amount": 1000000, "address": "{address}"}}"#);
        let (status, w) = send(&t, "POST", "/withdrawals", Some(&body), Some(&key)).await;
        assert_eq!(status, StatusCode::CREATED, "{w}");
        withdrawals.insert(0, w["id"].as_i64().unwrap());
    }
    let (_, page) = get_as(&t, "/me/withdrawals?limit=2", &key).await;
    assert_eq!(ids(&page), withdrawals[..2]);
    let (_, rest) = get_as(
        &t,
        &format!("/me/withdrawals?limit=2&before={}", withdrawals[1]),
        &key,
    )
    .await;
    assert_eq!(ids(&rest), withdrawals[2..]);
    let (_, queue) = get_as(
        &t,
        &format!(
            "/admin/withdrawals?status=QUEUED&limit=1&before={}",
            withdrawals[0]
        ),
        ADMIN,
    )
    .await;
    assert_eq!(ids(&queue), withdrawals[1..2]);

    for bad in [
        "/me/bets?limit=0",
        "/me/bets?limit=1001",
        "/me/bets?before=0",
        "/me/bets?before=x",
        "/me/withdrawals?page=2",
    ] {
        let (status, body) = get_as(&t, bad, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    for bad in [
        "/admin/users?limit=5000",
        "/admin/audit?before=-1",
        "/admin/deposits?limit=0",
        "/admin/withdrawals?status=LOST",
    ] {
        let (status, body) = get_as(&t, bad, ADMIN).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    t.assert_verified().await;
}
