//! `GET /events`: round events for everyone, a player's own events whole
//! on their authenticated stream only.

use std::time::Duration;

use axum::http::StatusCode;

use crate::support::sse::EventStream;
use crate::support::{at, call, eventually, Db, TestApp};
use crate::{send, sign_up, simulate_deposit, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    the_event_stream_shows_round_events_to_all_and_a_players_own_only_to_them,
    a_stopping_server_fails_readiness_answers_while_draining_then_ends_streams_with_a_retry,
);

const WAIT: Duration = Duration::from_secs(5);

async fn the_event_stream_shows_round_events_to_all_and_a_players_own_only_to_them(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let ann = sign_up(&t, "ann").await;
    let bob = sign_up(&t, "bob").await;
    let mut anyone = EventStream::open(t.address, None).await.unwrap();
    let mut ann_stream = EventStream::open(t.address, Some(&ann)).await.unwrap();
    let mut bob_stream = EventStream::open(t.address, Some(&bob)).await.unwrap();
    assert_eq!(
        EventStream::open(t.address, Some("ud_not_a_key"))
            .await
            .err(),
        Some(StatusCode::UNAUTHORIZED),
        "a bad credential is refused, not served the public stream"
    );

    let (status, _) = send(
        &t,
        "POST",
        "/admin/rounds",
        Some(r#"{"reason": "test"}"#),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let opened = anyone.expect("round_opened", WAIT).await;
    assert_eq!(opened["type"], "round_opened");
    assert_eq!(opened["payload"]["round"], "20261124");
    assert!(opened["time"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-24T15:00:00"));

    simulate_deposit(&t, "ann", 5_000_000).await;
    let (status, bet) = send(
        &t,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 2000000}"#),
        Some(&ann),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bet}");

    // Ann sees her deposit, then her bet with its id.
    let credited = ann_stream.next_within(WAIT).await.unwrap();
    assert_eq!(credited.0, "round_opened");
    let credited = ann_stream.next_within(WAIT).await.unwrap();
    assert_eq!(credited.0, "deposit_credited");
    assert_eq!(credited.1["payload"]["amount"], 5_000_000);
    let placed = ann_stream.expect("bet_placed", WAIT).await;
    assert_eq!(placed["payload"]["bet_id"], bet["id"]);

    // Bob and anyone see the bet move the pools, with no ids, and never
    // Ann's deposit or her bet itself: their next event after the opening
    // is the pools.
    let (_, current) = send(&t, "GET", "/rounds/current", None, None).await;
    for stream in [&mut bob_stream, &mut anyone] {
        let mut kinds = Vec::new();
        while let Some((kind, data)) = stream.next_within(Duration::from_millis(500)).await {
            if kind == "pools" {
                let payload = &data["payload"];
                assert_eq!(payload["round"], "20261124", "{data}");
                assert_eq!(payload["pool_up"], 2_000_000, "{data}");
                assert_eq!(payload["pool_down"], 0, "{data}");
                assert_eq!(payload["bets_up"], 1, "{data}");
                // As the round's own view shows them.
                for field in ["implied_multiplier_up", "implied_multiplier_down"] {
                    assert_eq!(payload[field], current[field], "{data}");
                }
                assert!(payload.get("bet_id").is_none(), "{data}");
                assert!(payload["since"]
                    .as_str()
                    .unwrap()
                    .starts_with("2026-11-24T15:00:00"));
            }
            kinds.push(kind);
        }
        assert_eq!(kinds.last().map(String::as_str), Some("pools"), "{kinds:?}");
        assert!(!kinds.iter().any(|k| k == "deposit_credited"), "{kinds:?}");
        assert_eq!(
            kinds.iter().filter(|k| *k == "bet_placed").count(),
            0,
            "{kinds:?}"
        );
    }

    // A burst of bets is one pools event (or a few), not one per bet, and
    // its totals are the database's.
    simulate_deposit(&t, "bob", 30_000_000).await;
    for _ in 0..20 {
        let (status, _) = send(
            &t,
            "POST",
            "/bets",
            Some(r#"{"side": "DOWN", "amount": 1000000}"#),
            Some(&bob),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut pools = Vec::new();
    while let Some((kind, data)) = anyone.next_within(Duration::from_millis(500)).await {
        assert_eq!(kind, "pools", "{data}");
        pools.push(data);
    }
    assert!(
        (1..20).contains(&pools.len()),
        "{} pools events",
        pools.len()
    );
    let last = &pools.last().unwrap()["payload"];
    assert_eq!(last["pool_down"], 20_000_000, "{last}");
    assert_eq!(last["bets_down"], 20, "{last}");
    t.assert_verified().await;
}

/// SIGTERM (here the test's stop signal) with SHUTDOWN_DRAIN_SECS: the
/// load balancer sees readiness fail at once, while bets still get their
/// answers; then the listener closes and each stream gets a `retry:` hint
/// before it ends.
async fn a_stopping_server_fails_readiness_answers_while_draining_then_ends_streams_with_a_retry(
    db: Db,
) {
    let mut t = TestApp::spawn(
        db,
        &[("ADMIN_TOKEN", ADMIN), ("SHUTDOWN_DRAIN_SECS", "2")],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    let ann = sign_up(&t, "ann").await;
    simulate_deposit(&t, "ann", 5_000_000).await;
    t.open("20261124").await;
    let mut stream = EventStream::open(t.address, Some(&ann)).await.unwrap();
    let ready = |t: &TestApp| {
        let address = t.address;
        async move { call(address, "GET", "/health/ready", None, None).await }
    };
    assert_eq!(ready(&t).await.0, StatusCode::OK);

    t.shut_down();
    let address = t.address;
    eventually("readiness fails", WAIT, || async {
        call(address, "GET", "/health/ready", None, None).await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let (_, body) = ready(&t).await;
    assert_eq!(body["status"], "draining");
    let (_, health) = call(address, "GET", "/health", None, None).await;
    assert_eq!(health["status"], "draining");
    assert_eq!(
        call(address, "GET", "/health/live", None, None).await.0,
        StatusCode::OK
    );
    // Still answering money requests while the balancer catches up.
    let (status, bet) = call(
        address,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 1000000}"#),
        Some(&ann),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{bet}");
    // The stream carries that bet, then the hint, then ends.
    let rest = stream.rest_within(WAIT).await.expect("the stream ends");
    let hint = rest
        .lines()
        .find_map(|line| line.strip_prefix("retry:"))
        .unwrap_or_else(|| panic!("no retry: in {rest:?}"));
    let millis: u64 = hint.trim().parse().unwrap();
    assert!((1_000..=5_096).contains(&millis), "{millis}");
    assert!(rest.contains("bet_placed"), "{rest}");
    t.assert_verified().await;
}
