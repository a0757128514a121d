//! The use-cases end to end on SQLite and PostgreSQL: bad input is refused
//! with a clear error and changes nothing; settlement survives a crash;
//! the clock, not the stored status, closes betting.

mod support;

#[path = "oracles/http.rs"]
mod http_oracle;

use http_oracle::a_provider_talking_nonsense_until_the_void_instant_voids_and_refunds;

#[path = "oracles/quorum.rs"]
mod quorum_oracle;

use quorum_oracle::{
    a_close_revised_after_settlement_is_reported_and_changes_nothing,
    a_round_asks_only_the_oracle_its_terms_name,
    a_void_inside_the_dispute_window_refunds_and_nothing_was_paid,
    a_void_waiting_for_approval_holds_the_payouts_past_the_window,
    a_wrong_source_holds_a_quorum_of_three_until_the_round_voids,
    a_wrong_source_is_outvoted_by_a_quorum_of_two,
    sources_all_down_until_the_void_instant_void_and_refund,
    the_result_is_paid_when_the_dispute_window_ends,
    three_sources_that_agree_settle_and_each_answer_is_shown,
};

use std::sync::Arc;

use chrono::Duration;
use support::{at, usdc, Db, TestApp};
use updown_app::chain::{ChainSender, MockChain, Transfer};
use updown_app::error::AppError;
use updown_app::events::EventKind;
use updown_app::oracle::MockOracle;
use updown_app::services::App;
use updown_app::services::{SettleOptions, SettleRequest};
use updown_domain::ids::{BetId, RoundCode, UserId};
use updown_domain::payout::settle;
use updown_domain::round::{Outcome, Price, RoundStatus, Side};
use updown_domain::Micros;
use updown_store::{on_both_backends, WithdrawalStatus};

on_both_backends!(
    what_the_alerts_watch_is_read_from_the_database,
    bad_input_is_refused_with_a_clear_error_and_changes_nothing,
    a_settlement_that_crashes_midway_resumes_and_pays_everyone_exactly_once,
    the_clock_refuses_bets_at_the_lock_even_before_the_scheduler_locks,
    a_round_locked_by_two_at_once_is_told_and_audited_once,
    a_bet_received_just_before_the_lock_is_filed_in_its_own_round,
    auto_settlement_voids_and_refunds_when_no_close_arrives_in_time,
    a_tie_voids_the_round_under_the_refund_policy,
    bets_can_be_cancelled_until_the_cutoff_only,
    concurrent_bets_through_the_batcher_never_overdraw,
    manual_results_are_audited_and_prices_recorded_by_operators_win,
    the_scheduler_catches_up_a_weekend_in_order,
    the_scheduler_wakes_at_the_lock_instant_not_a_tick_later,
    the_scheduler_waits_for_closes_until_the_void_instant,
    events_and_key_revocations_reach_the_other_instance_through_redis,
    with_redis_unreachable_bets_are_taken_and_local_streams_still_hear_them,
    the_withdrawal_worker_submits_confirms_and_fails_sending_each_transfer_once,
    an_operator_cannot_refund_a_withdrawal_the_worker_is_sending,
    the_withdrawal_worker_steps_the_oldest_first_until_none_is_left,
    withdrawals_keep_to_the_minimum_and_the_daily_maximum,
    a_self_exclusion_survives_any_race_with_a_request_to_lift_it,
    keys_are_purged_after_a_day_and_refused_notifications_after_thirty,
    a_provider_talking_nonsense_until_the_void_instant_voids_and_refunds,
    three_sources_that_agree_settle_and_each_answer_is_shown,
    a_wrong_source_is_outvoted_by_a_quorum_of_two,
    a_wrong_source_holds_a_quorum_of_three_until_the_round_voids,
    sources_all_down_until_the_void_instant_void_and_refund,
    a_close_revised_after_settlement_is_reported_and_changes_nothing,
    a_void_inside_the_dispute_window_refunds_and_nothing_was_paid,
    the_result_is_paid_when_the_dispute_window_ends,
    a_round_asks_only_the_oracle_its_terms_name,
    a_void_waiting_for_approval_holds_the_payouts_past_the_window,
);

const MORNING: &str = "2026-11-24T15:00:00Z"; // 10:00 in New York
const CODE: &str = "20261124";

fn code() -> RoundCode {
    RoundCode::parse(CODE).unwrap()
}

fn message_of<T: std::fmt::Debug>(result: Result<T, AppError>) -> (String, String) {
    let error = result.expect_err("should be refused");
    (error.code().to_string(), error.to_string())
}

async fn bad_input_is_refused_with_a_clear_error_and_changes_nothing(db: Db) {
    let t = TestApp::spawn(db, &[("MAX_BET", "100USDC")], at(MORNING)).await;
    let app = &t.app;
    let ann = t.funded("ann", usdc(50)).await;
    let round = t.open(CODE).await;
    let before = (app.balance(ann).await.unwrap(), app.tvl().await.unwrap());

    let cases: Vec<(&str, Result<(), AppError>, &str, &str)> = vec![
        (
            "unknown user",
            app.user_by_email("nobody@example.com").await.map(drop),
            "not_found",
            "nobody@example.com",
        ),
        (
            "malformed email",
            app.user_by_email("not-an-email").await.map(drop),
            "invalid_input",
            "not-an-email",
        ),
        (
            "zero bet",
            app.place_bet(ann, Side::Up, Micros::ZERO, None, None)
                .await
                .map(drop),
            "invalid_input",
            "at least 1",
        ),
        (
            "bet above MAX_BET",
            app.place_bet(ann, Side::Up, usdc(101), None, None)
                .await
                .map(drop),
            "limit_exceeded",
            "MAX_BET",
        ),
        (
            "bet beyond balance",
            app.place_bet(ann, Side::Up, usdc(60), None, None)
                .await
                .map(drop),
            "insufficient_funds",
            "available",
        ),
        (
            "unknown user bets",
            app.place_bet(UserId(9999), Side::Up, usdc(1), None, None)
                .await
                .map(drop),
            "not_found",
            "9999",
        ),
        (
            "bet on a missing round",
            app.place_bet(
                ann,
                Side::Up,
                usdc(1),
                Some(RoundCode::parse("20261201").unwrap()),
                None,
            )
            .await
            .map(drop),
            "not_found",
            "20261201",
        ),
        (
            "withdrawal beyond balance",
            app.withdraw(
                ann,
                usdc(51),
                "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                None,
            )
            .await
            .map(drop),
            "insufficient_funds",
            "available",
        ),
        (
            "withdrawal to a bad checksum",
            app.withdraw(
                ann,
                usdc(1),
                "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
                None,
            )
            .await
            .map(drop),
            "refused",
            "EIP-55",
        ),
        (
            "withdrawal to garbage",
            app.withdraw(ann, usdc(1), "0x12", None).await.map(drop),
            "invalid_input",
            "40 hexadecimal",
        ),
        (
            "duplicate deposit tx",
            app.deposit(ann, usdc(5), "0xfund-ann", 0, None)
                .await
                .map(drop),
            "conflict",
            "already credited",
        ),
        (
            "zero deposit",
            app.deposit(ann, Micros::ZERO, "0xnew", 0, None)
                .await
                .map(drop),
            "invalid_input",
            "at least 1",
        ),
        (
            "AUTO before the settle instant",
            app.settle_round(code(), SettleRequest::Auto)
                .await
                .map(drop),
            "conflict",
            "lock it first",
        ),
        (
            "manual result without a reason",
            app.settle_round(
                code(),
                SettleRequest::Manual {
                    outcome: Outcome::Up,
                    actor: "op".into(),
                    reason: " ".into(),
                },
            )
            .await
            .map(drop),
            "invalid_input",
            "reason",
        ),
        (
            "a price for a Saturday",
            app.set_price(
                "2026-11-28".parse().unwrap(),
                Price::parse("100").unwrap(),
                "op",
            )
            .await
            .map(drop),
            "invalid_input",
            "not a NASDAQ trading session",
        ),
        (
            "a price for a session not yet closed",
            app.set_price(
                "2026-11-24".parse().unwrap(),
                Price::parse("100").unwrap(),
                "op",
            )
            .await
            .map(drop),
            "invalid_input",
            "no close yet",
        ),
        (
            "cancel a missing bet",
            app.cancel_bet(BetId(424242), None, None).await.map(drop),
            "not_found",
            "424242",
        ),
        (
            "open a round already locked",
            app.open_round(Some(RoundCode::parse("20261120").unwrap()))
                .await
                .map(drop),
            "invalid_input",
            "can no longer be opened",
        ),
        (
            "open a round on a holiday",
            app.open_round(Some(RoundCode::parse("20261126").unwrap()))
                .await
                .map(drop),
            "invalid_input",
            "not a NASDAQ",
        ),
    ];
    for (what, result, expected_code, expected_text) in cases {
        let (code, message) = message_of(result);
        assert_eq!(code, expected_code, "{what}: {message}");
        assert!(
            message.contains(expected_text),
            "{what}: {message:?} should mention {expected_text:?}"
        );
    }

    // Locked, then settled: bets refused with the round's state in words.
    app.lock_round(code()).await.unwrap();
    let (code_locked, message) = message_of(
        app.place_bet(ann, Side::Up, usdc(1), Some(code()), None)
            .await,
    );
    assert_eq!(code_locked, "round_closed");
    assert!(message.contains("LOCKED"), "{message}");
    let (too_early, message) = message_of(app.settle_round(code(), SettleRequest::Auto).await);
    assert_eq!(too_early, "too_early", "{message}");
    t.clock.set(round.terms.settle_at);
    app.settle_round(code(), SettleRequest::Auto).await.unwrap();
    let (twice, message) = message_of(app.settle_round(code(), SettleRequest::Auto).await);
    assert_eq!(twice, "conflict");
    assert!(message.contains("already SETTLED"), "{message}");
    let (settled_bet, _) = message_of(
        app.place_bet(ann, Side::Up, usdc(1), Some(code()), None)
            .await,
    );
    assert_eq!(settled_bet, "round_closed");

    assert_eq!(
        (app.balance(ann).await.unwrap(), app.tvl().await.unwrap()),
        before
    );
    t.assert_verified().await;
}

async fn a_settlement_that_crashes_midway_resumes_and_pays_everyone_exactly_once(db: Db) {
    let t = TestApp::spawn(db, &[("SETTLE_CHUNK_SIZE", "3")], at(MORNING)).await;
    let app = &t.app;
    let round = t.open(CODE).await;
    let mut placed = Vec::new();
    let mut users = Vec::new();
    for i in 0..10 {
        let user = t.funded(&format!("p{i}"), usdc(100)).await;
        users.push(user);
        for (j, side) in [Side::Up, Side::Down].into_iter().enumerate() {
            let stake = Micros::new(1_000_000 + 137_911 * (i * 2 + j as i64)).unwrap();
            app.place_bet(user, side, stake, None, None).await.unwrap();
            placed.push((user, side, stake));
        }
    }
    t.clock.set(round.terms.settle_at);
    let crashed = app
        .settle_round_with(
            code(),
            SettleRequest::Auto,
            SettleOptions {
                on_progress: None,
                fail_after_chunks: Some(2),
            },
        )
        .await;
    assert!(matches!(crashed, Err(AppError::Internal(_))), "{crashed:?}");
    let halfway = app.round(code()).await.unwrap();
    assert_eq!(halfway.status, RoundStatus::Locked);
    assert!(
        halfway.settlement.as_ref().unwrap().cursor > 0,
        "two chunks were committed"
    );
    t.assert_verified().await;

    // Half paid as the oracle said: no result by hand may be asked for
    // now (approved, it could never run, and would hold the round).
    let staff = updown_app::services::Staff {
        actor: "oli@ops.example.com".into(),
        role: updown_domain::operator::Role::Operator,
        credential: "token:1".into(),
    };
    let refused = app
        .settle_by_hand(
            &staff,
            code(),
            updown_domain::round::Outcome::Void,
            "halt".into(),
            None,
        )
        .await;
    assert!(
        matches!(&refused, Err(AppError::Conflict(m)) if m.contains("being settled")),
        "{:?}",
        refused.as_ref().err()
    );

    let done = app.settle_round(code(), SettleRequest::Auto).await.unwrap();
    assert_eq!(done.status, RoundStatus::Settled);
    let outcome = done.settlement.as_ref().unwrap().plan.outcome;
    let expected = settle(
        outcome,
        &placed.iter().map(|(_, s, v)| (*s, *v)).collect::<Vec<_>>(),
        100,
    )
    .unwrap();
    for user in users {
        let staked: i64 = placed
            .iter()
            .filter(|(u, _, _)| *u == user)
            .map(|(_, _, v)| v.get())
            .sum();
        let paid: i64 = placed
            .iter()
            .zip(&expected.payouts)
            .filter(|((u, _, _), _)| *u == user)
            .map(|(_, p)| p.get())
            .sum();
        assert_eq!(
            app.balance(user).await.unwrap().get(),
            100_000_000 - staked + paid
        );
    }
    t.assert_verified().await;
}

/// An operator's early lock racing another lock (the scheduler's, or a
/// second operator's): the round locks once, `round_locked` is published
/// once, and only an operator whose call locked it is in the audit log.
async fn a_round_locked_by_two_at_once_is_told_and_audited_once(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    t.open(CODE).await;
    let mut heard = t.app.events.subscribe();
    let (by_hand, by_clock) = tokio::join!(
        t.app
            .operator_lock_round(code(), "ops", Some("outage".into())),
        t.app.lock_round(code()),
    );
    let (by_hand, by_clock) = (by_hand.unwrap(), by_clock.unwrap());
    assert_eq!(by_hand.locked_at, by_clock.locked_at);
    assert_eq!(by_hand.status, RoundStatus::Locked);
    let mut told = 0;
    while let Ok(event) = heard.try_recv() {
        told += usize::from(event.kind == EventKind::RoundLocked);
    }
    assert_eq!(told, 1, "round_locked published once");
    let lock_entries = || async {
        let log = t.app.audit_log(None, 10).await.unwrap();
        log.iter().filter(|e| e.action == "lock_round").count()
    };
    let audited = lock_entries().await;
    // Either call may have won the lock: the audit says which.
    let locked_by_hand = audited == 1;
    assert!(audited <= 1, "{audited} entries");
    // Again, by hand: it was locked already, so no entry and no event.
    t.app
        .operator_lock_round(code(), "ops", Some("again".into()))
        .await
        .unwrap();
    assert_eq!(lock_entries().await, usize::from(locked_by_hand));
    assert!(heard.try_recv().is_err(), "nothing more told");
}

async fn the_clock_refuses_bets_at_the_lock_even_before_the_scheduler_locks(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let ann = t.funded("ann", usdc(10)).await;
    let round = t.open(CODE).await;
    t.clock.set(round.terms.lock_at - Duration::seconds(1));
    t.app
        .place_bet(ann, Side::Up, usdc(1), Some(code()), None)
        .await
        .unwrap();
    t.clock.set(round.terms.lock_at);
    let (code_, message) = message_of(
        t.app
            .place_bet(ann, Side::Up, usdc(1), Some(code()), None)
            .await,
    );
    assert_eq!(code_, "round_closed");
    assert!(message.contains("locked at"), "{message}");
    assert_eq!(
        t.app.round(code()).await.unwrap().status,
        RoundStatus::Open,
        "nobody locked it"
    );
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(9));
    t.assert_verified().await;
}

/// A clock that reads `before` once, then `after`: the lock instant passes
/// between a request's arrival and its next look at the time.
struct CrossesOnce {
    read: std::sync::atomic::AtomicBool,
    before: chrono::DateTime<chrono::Utc>,
    after: chrono::DateTime<chrono::Utc>,
}

impl updown_app::clock::Clock for CrossesOnce {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        if self.read.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.after
        } else {
            self.before
        }
    }
}

async fn a_bet_received_just_before_the_lock_is_filed_in_its_own_round(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let ann = t.funded("ann", usdc(10)).await;
    let round = t.open(CODE).await;
    let next = t.open("20261125").await;
    // A fresh instance (nothing cached) whose clock crosses the lock just
    // after the bet arrives.
    let clock = Arc::new(CrossesOnce {
        read: Default::default(),
        before: round.terms.lock_at - Duration::milliseconds(1),
        after: round.terms.lock_at + Duration::milliseconds(1),
    });
    let app = updown_app::startup::wire(
        updown_app::config::Config::with(&[]).unwrap(),
        t.store(),
        clock,
        t.app.oracle.clone(),
    );
    let bet = app
        .place_bet(ann, Side::Up, usdc(1), None, None)
        .await
        .expect("received before the lock: accepted");
    assert_eq!(
        bet.round, round.id,
        "filed in the round it was received for"
    );
    // And the code still names that round: after the lock it refuses.
    let (code_, _) = message_of(
        app.place_bet(ann, Side::Up, usdc(1), Some(code()), None)
            .await,
    );
    assert_eq!(code_, "round_closed");
    assert_eq!(t.store().pools(next.id).await.unwrap().bets_up, 0);
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(9));
    t.assert_verified().await;
}

async fn the_scheduler_wakes_at_the_lock_instant_not_a_tick_later(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let round = t.open(CODE).await;
    // An instance whose clock runs by itself from 300 ms before the lock,
    // stepping once a minute.
    let clock = Arc::new(updown_app::clock::ScaledClock::new(
        updown_app::config::ClockOverride {
            start: round.terms.lock_at - Duration::milliseconds(300),
            speed: 1.0,
        },
    ));
    let app = updown_app::startup::wire(
        updown_app::config::Config::with(&[("SCHEDULER_TICK_SECS", "60")]).unwrap(),
        t.store(),
        clock,
        t.app.oracle.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let app = app.clone();
        tokio::spawn(async move {
            app.run_scheduler(async move {
                let _ = stopped.await;
            })
            .await
        })
    };
    support::eventually(
        "the round is locked well before the next tick",
        std::time::Duration::from_secs(20),
        || async { app.round(code()).await.unwrap().status == RoundStatus::Locked },
    )
    .await;
    let locked_at = app.round(code()).await.unwrap().locked_at.unwrap();
    let late = locked_at - round.terms.lock_at;
    assert!(
        late >= Duration::zero() && late < Duration::seconds(5),
        "locked {late} after the lock instant"
    );
    let _ = stop.send(());
    runner.await.unwrap();
}

async fn auto_settlement_voids_and_refunds_when_no_close_arrives_in_time(db: Db) {
    let oracle = Arc::new(MockOracle::without(vec!["2026-11-24".parse().unwrap()]));
    let t = TestApp::spawn_with_oracle(db, &[], at(MORNING), oracle).await;
    let (ann, bob) = (
        t.funded("ann", usdc(10)).await,
        t.funded("bob", usdc(10)).await,
    );
    let round = t.open(CODE).await;
    t.app
        .place_bet(ann, Side::Up, usdc(3), None, None)
        .await
        .unwrap();
    t.app
        .place_bet(bob, Side::Down, usdc(7), None, None)
        .await
        .unwrap();
    t.clock.set(round.terms.settle_at + Duration::minutes(1));
    let (code_, message) = message_of(t.app.settle_round(code(), SettleRequest::Auto).await);
    assert_eq!(code_, "unavailable");
    assert!(message.contains("2026-11-24"), "{message}");
    t.clock.set(round.terms.void_at);
    let voided = t
        .app
        .settle_round(code(), SettleRequest::Auto)
        .await
        .unwrap();
    assert_eq!(voided.status, RoundStatus::Void);
    assert_eq!(voided.settlement.as_ref().unwrap().plan.fee, Micros::ZERO);
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10));
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(10));
    t.assert_verified().await;
}

async fn a_tie_voids_the_round_under_the_refund_policy(db: Db) {
    let t = TestApp::spawn(
        db,
        &[("TIE_POLICY", "refund"), ("ORACLE", "manual")],
        at(MORNING),
    )
    .await;
    let ann = t.funded("ann", usdc(10)).await;
    let round = t.open(CODE).await;
    t.app
        .place_bet(ann, Side::Up, usdc(4), None, None)
        .await
        .unwrap();
    t.clock.set(round.terms.settle_at);
    for date in ["2026-11-23", "2026-11-24"] {
        t.app
            .set_price(
                date.parse().unwrap(),
                Price::parse("20100.50").unwrap(),
                "op",
            )
            .await
            .unwrap();
    }
    let settled = t
        .app
        .settle_round(code(), SettleRequest::Auto)
        .await
        .unwrap();
    assert_eq!(settled.status, RoundStatus::Void);
    let evidence = &settled.settlement.as_ref().unwrap().evidence;
    assert_eq!(evidence.close.as_ref().unwrap().source, "manual:op");
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10));
    t.assert_verified().await;
}

async fn bets_can_be_cancelled_until_the_cutoff_only(db: Db) {
    let t = TestApp::spawn(db, &[("CANCEL_CUTOFF_MIN", "15")], at(MORNING)).await;
    let (ann, bob) = (
        t.funded("ann", usdc(10)).await,
        t.funded("bob", usdc(10)).await,
    );
    let round = t.open(CODE).await;
    let first = t
        .app
        .place_bet(ann, Side::Up, usdc(2), None, None)
        .await
        .unwrap();
    let second = t
        .app
        .place_bet(ann, Side::Down, usdc(3), None, None)
        .await
        .unwrap();
    let (code_, _) = message_of(t.app.cancel_bet(first.id, Some(bob), None).await);
    assert_eq!(code_, "not_found", "someone else's bet is invisible");
    t.app.cancel_bet(first.id, Some(ann), None).await.unwrap();
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(7));
    t.clock.set(round.terms.lock_at - Duration::minutes(15));
    let (code_, message) = message_of(t.app.cancel_bet(second.id, Some(ann), None).await);
    assert_eq!(code_, "round_closed");
    assert!(message.contains("cut-off"), "{message}");
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(7));
    t.assert_verified().await;
}

async fn concurrent_bets_through_the_batcher_never_overdraw(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let racer = t.funded("racer", usdc(10)).await;
    t.open(CODE).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let app = t.app.clone();
            let side = if i % 2 == 0 { Side::Up } else { Side::Down };
            tokio::spawn(async move { app.place_bet(racer, side, usdc(1), None, None).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.code(), "insufficient_funds", "{e}"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(t.app.balance(racer).await.unwrap(), Micros::ZERO);
    t.assert_verified().await;
}

async fn manual_results_are_audited_and_prices_recorded_by_operators_win(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let ann = t.funded("ann", usdc(10)).await;
    let round = t.open(CODE).await;
    t.app
        .place_bet(ann, Side::Up, usdc(4), None, None)
        .await
        .unwrap();
    t.clock.set(round.terms.lock_at);
    let manual = SettleRequest::Manual {
        outcome: Outcome::Down,
        actor: "cli:olga".into(),
        reason: "index provider restated the close".into(),
    };
    let early = t
        .app
        .settle_round(code(), manual.clone())
        .await
        .unwrap_err();
    assert_eq!(early.code(), "too_early", "a side only after the close");
    t.clock.set(round.terms.close_at);
    let settled = t.app.settle_round(code(), manual).await.unwrap();
    assert_eq!(settled.status, RoundStatus::Settled);
    assert_eq!(settled.settlement.as_ref().unwrap().actor, "cli:olga");
    let audit = t.store().audit_log(None, 10).await.unwrap();
    assert!(audit.iter().any(|a| a.actor == "cli:olga"
        && a.action == "settle_down"
        && a.reason.as_deref() == Some("index provider restated the close")));
    // Nobody won: the stake comes back (the seed's MVP kept it; we do not).
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10));
    // An operator's close for a closed session is recorded once.
    t.clock.set(round.terms.settle_at);
    t.app
        .set_price(
            "2026-11-24".parse().unwrap(),
            Price::parse("1.5").unwrap(),
            "op",
        )
        .await
        .unwrap();
    let (code_, message) = message_of(
        t.app
            .set_price(
                "2026-11-24".parse().unwrap(),
                Price::parse("2").unwrap(),
                "op",
            )
            .await,
    );
    assert_eq!(code_, "conflict");
    assert!(message.contains("1.5 from manual:op"), "{message}");
    let close = t
        .app
        .close_of("2026-11-24".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(close.close, Price::parse("1.5").unwrap());
    t.assert_verified().await;
}

async fn the_scheduler_catches_up_a_weekend_in_order(db: Db) {
    // Friday 10:00 in New York: the step opens Friday's round.
    let t = TestApp::spawn(db, &[], at("2026-11-20T15:00:00Z")).await;
    // While another instance holds the lease (PostgreSQL), a step waits.
    if t.store().backend() == updown_store::Backend::Postgres {
        let held = t.store().scheduler_lease().await.unwrap().unwrap();
        let tick = t.app.scheduler_step().await.unwrap();
        assert!(tick.held_elsewhere && tick.opened.is_empty(), "{tick:?}");
        held.release().await.unwrap();
    }
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.opened, ["20261120"]);
    assert!(
        t.app.scheduler_step().await.unwrap().is_idle(),
        "a repeated step does nothing"
    );
    // The step knows when the round locks: the scheduler wakes then.
    let friday = t
        .app
        .round(RoundCode::parse("20261120").unwrap())
        .await
        .unwrap();
    assert_eq!(t.app.scheduler_next_due(), Some(friday.terms.lock_at));
    if t.store().backend() == updown_store::Backend::Postgres {
        let held = t.store().scheduler_lease().await.unwrap().unwrap();
        assert!(t.app.scheduler_step().await.unwrap().held_elsewhere);
        assert_eq!(
            t.app.scheduler_next_due(),
            None,
            "a step held elsewhere waits a whole tick, not for an instant it did not read"
        );
        held.release().await.unwrap();
    }
    let (ann, bob) = (
        t.funded("ann", usdc(10)).await,
        t.funded("bob", usdc(10)).await,
    );
    t.app
        .place_bet(ann, Side::Up, usdc(4), None, None)
        .await
        .unwrap();
    t.app
        .place_bet(bob, Side::Down, usdc(6), None, None)
        .await
        .unwrap();

    // Down from Friday morning to Monday morning: one step locks and
    // settles Friday's round, then opens Monday's.
    t.clock.set(at("2026-11-23T15:00:00Z"));
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.locked, ["20261120"]);
    assert_eq!(
        tick.settled.len() + tick.voided.len(),
        1,
        "Friday's round is finished: {tick:?}"
    );
    assert_eq!(tick.opened, ["20261123"]);
    assert!(
        tick.failed.is_empty() && tick.waiting.is_empty(),
        "{tick:?}"
    );
    let friday = t
        .app
        .round(RoundCode::parse("20261120").unwrap())
        .await
        .unwrap();
    assert!(friday.status.is_final());
    assert_eq!(
        t.app.scheduler_last_tick(),
        Some(at("2026-11-23T15:00:00Z"))
    );
    // Everything staked went back out: to the winner, the fee and dust.
    let tvl = t.app.tvl().await.unwrap();
    assert_eq!(tvl.round_pools, 0);
    assert_eq!(
        tvl.user_balances + tvl.house_fees + tvl.house_rounding,
        20_000_000
    );
    assert!(t.app.scheduler_step().await.unwrap().is_idle());
    t.assert_verified().await;
}

async fn the_scheduler_waits_for_closes_until_the_void_instant(db: Db) {
    let oracle = Arc::new(MockOracle::without(vec!["2026-11-24".parse().unwrap()]));
    let t = TestApp::spawn_with_oracle(db, &[], at(MORNING), oracle).await;
    assert_eq!(t.app.scheduler_step().await.unwrap().opened, [CODE]);
    let ann = t.funded("ann", usdc(10)).await;
    t.app
        .place_bet(ann, Side::Up, usdc(3), None, None)
        .await
        .unwrap();
    let round = t.app.round(code()).await.unwrap();

    t.clock.set(round.terms.settle_at);
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.locked, [CODE]);
    assert_eq!(tick.waiting.len(), 1, "no close yet: {tick:?}");
    assert!(tick.settled.is_empty() && tick.voided.is_empty());

    t.clock.set(round.terms.void_at);
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.voided, [CODE]);
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10), "refunded");
    t.assert_verified().await;
}

async fn events_and_key_revocations_reach_the_other_instance_through_redis(db: Db) {
    let Some(redis) = support::redis_url("events through Redis") else {
        return;
    };
    let settings = [("REDIS_URL", redis.as_str())];
    let t = TestApp::spawn(db, &settings, at(MORNING)).await;
    let other = t.twin(&settings);
    let wait = std::time::Duration::from_secs(5);
    for app in [&t.app, &other] {
        support::eventually("both instances reach Redis", wait, || async {
            app.events.redis_connected() == Some(true)
        })
        .await;
    }
    let mut heard = other.events.subscribe();
    let ann = t.funded("ann", usdc(10)).await;
    t.open(CODE).await;
    let bet = t
        .app
        .place_bet(ann, Side::Up, usdc(3), None, None)
        .await
        .unwrap();
    // Other stories may share this Redis: look for this bet's event.
    let found = tokio::time::timeout(wait, async {
        loop {
            let event = heard.recv().await.unwrap();
            if event.kind == EventKind::BetPlaced && event.payload["bet_id"] == bet.id.0 {
                return event;
            }
        }
    })
    .await
    .expect("the other instance hears the bet");
    assert_eq!(found.user, Some(ann.0));
    assert_eq!(found.payload["stake"], 3_000_000);

    // A key revoked on one instance stops working on the other at once,
    // not after the other's 30 s cache.
    let (key_id, key) = t.app.new_api_key(ann).await.unwrap();
    assert_eq!(other.authenticate(&key).await.unwrap().id, ann);
    t.app.revoke_api_key(ann, key_id).await.unwrap();
    support::eventually(
        "the revocation reaches the other instance",
        wait,
        || async { other.authenticate(&key).await.is_err() },
    )
    .await;
    t.assert_verified().await;
}

async fn with_redis_unreachable_bets_are_taken_and_local_streams_still_hear_them(db: Db) {
    let t = TestApp::spawn(db, &[("REDIS_URL", "redis://127.0.0.1:1")], at(MORNING)).await;
    let mut heard = t.app.events.subscribe();
    let ann = t.funded("ann", usdc(10)).await;
    t.open(CODE).await;
    for _ in 0..20 {
        t.app
            .place_bet(ann, Side::Down, Micros::new(1).unwrap(), None, None)
            .await
            .unwrap();
    }
    assert_eq!(t.app.events.redis_connected(), Some(false));
    let mut bets = 0;
    while let Ok(event) = heard.try_recv() {
        bets += usize::from(event.kind == EventKind::BetPlaced);
    }
    assert_eq!(bets, 20);
    assert_eq!(t.app.balance(ann).await.unwrap().get(), 10_000_000 - 20);
    t.assert_verified().await;
}

const GOOD: &str = "0x52908400098527886E0F7030069857D2E4169EE7";
const REFUSED: &str = "0x8617E340B3D01FA5F11F306F4090FD50E238070D";

async fn the_withdrawal_worker_submits_confirms_and_fails_sending_each_transfer_once(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let chain = Arc::new(MockChain::refusing(REFUSED));
    let app = updown_app::startup::wire_with_chain(
        (*t.app.config).clone(),
        t.store(),
        t.clock.clone(),
        t.app.oracle.clone(),
        Some(chain.clone()),
    );
    let ann = t.funded("ann", usdc(100)).await;
    let good = app.withdraw(ann, usdc(10), GOOD, None).await.unwrap();
    let refused = app.withdraw(ann, usdc(5), REFUSED, None).await.unwrap();
    assert_eq!(app.balance(ann).await.unwrap(), usdc(85));

    // A step that sent the first withdrawal and crashed before recording.
    chain
        .send(&Transfer {
            request_id: good.id,
            to: good.address.clone(),
            amount: good.amount,
        })
        .await
        .unwrap();
    let tick = app.withdrawal_step().await.unwrap();
    assert_eq!(tick.submitted, [good.id.0]);
    assert_eq!(tick.failed, [refused.id.0]);
    assert_eq!(
        app.balance(ann).await.unwrap(),
        usdc(90),
        "the failed one is refunded"
    );
    let mut confirmed = Vec::new();
    for _ in 0..5 {
        let tick = app.withdrawal_step().await.unwrap();
        assert!(tick.errors.is_empty(), "{tick:?}");
        confirmed.extend(tick.confirmed);
    }
    assert_eq!(confirmed, [good.id.0]);
    assert_eq!(chain.transfers_made(), 1, "sent once, despite the crash");
    let good = t.store().withdrawal(good.id).await.unwrap();
    assert_eq!(good.status, WithdrawalStatus::Confirmed);
    assert!(good.chain_tx_hash.unwrap().starts_with("0x"));
    let refused = t.store().withdrawal(refused.id).await.unwrap();
    assert_eq!(refused.status, WithdrawalStatus::Failed);
    assert!(refused.failure_reason.unwrap().contains("refused"));
    let tvl = app.tvl().await.unwrap();
    assert_eq!(
        (tvl.withdrawals_pending, tvl.user_balances),
        (0, 90_000_000)
    );
    // The operator's manual sender has no worker: a step does nothing.
    let manual = t.twin(&[("CHAIN_SENDER", "manual")]);
    manual.withdraw(ann, usdc(1), GOOD, None).await.unwrap();
    assert!(manual.withdrawal_step().await.unwrap().is_idle());
    t.assert_verified().await;
}

/// A chain whose sends wait while `hold` is locked, and which keeps the
/// order of the request ids it was sent.
#[derive(Default)]
struct GatedChain {
    inner: MockChain,
    hold: tokio::sync::Mutex<()>,
    sending: tokio::sync::Notify,
    sent: std::sync::Mutex<Vec<i64>>,
}

#[async_trait::async_trait]
impl ChainSender for GatedChain {
    fn name(&self) -> String {
        "chain:gated".into()
    }

    async fn send(
        &self,
        transfer: &Transfer,
    ) -> Result<updown_app::chain::TransferState, updown_app::chain::ChainError> {
        self.sending.notify_one();
        let _open = self.hold.lock().await;
        self.sent.lock().unwrap().push(transfer.request_id.0);
        self.inner.send(transfer).await
    }

    async fn status(
        &self,
        request_id: updown_domain::ids::WithdrawalId,
    ) -> Result<updown_app::chain::TransferState, updown_app::chain::ChainError> {
        self.inner.status(request_id).await
    }
}

fn with_chain(t: &TestApp, chain: Arc<dyn ChainSender>) -> App {
    updown_app::startup::wire_with_chain(
        (*t.app.config).clone(),
        t.store(),
        t.clock.clone(),
        t.app.oracle.clone(),
        Some(chain),
    )
}

async fn an_operator_cannot_refund_a_withdrawal_the_worker_is_sending(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let chain = Arc::new(GatedChain::default());
    let app = with_chain(&t, chain.clone());
    let ann = t.funded("ann", usdc(100)).await;
    let queued = app.withdraw(ann, usdc(10), GOOD, None).await.unwrap();

    // The worker has read the queue and is sending; the operator clicks
    // "fail" at that moment.
    let gate = chain.hold.lock().await;
    let worker = {
        let app = app.clone();
        tokio::spawn(async move { app.withdrawal_step().await })
    };
    chain.sending.notified().await;
    let fail = |rejection| updown_store::WithdrawalChange::Fail {
        reason: "operator changed their mind".into(),
        rejection,
    };
    let (code, message) = message_of(
        app.change_withdrawal(queued.id, fail(None), "operator", None)
            .await,
    );
    assert_eq!(code, "conflict");
    assert!(message.contains("chain's word"), "{message}");
    drop(gate);
    let tick = worker.await.unwrap().unwrap();
    assert_eq!(tick.submitted, [queued.id.0]);
    // Paid once, never refunded.
    assert_eq!(chain.inner.transfers_made(), 1);
    assert_eq!(app.balance(ann).await.unwrap(), usdc(90));
    assert_eq!(
        t.store().withdrawal(queued.id).await.unwrap().status,
        WithdrawalStatus::Submitted
    );
    // A withdrawal failed before the worker claims it is never sent.
    let second = app.withdraw(ann, usdc(5), GOOD, None).await.unwrap();
    app.change_withdrawal(second.id, fail(None), "operator", None)
        .await
        .unwrap();
    app.withdrawal_step().await.unwrap();
    assert_eq!(*chain.sent.lock().unwrap(), [queued.id.0]);
    assert_eq!(app.balance(ann).await.unwrap(), usdc(90));
    t.assert_verified().await;
}

async fn the_withdrawal_worker_steps_the_oldest_first_until_none_is_left(db: Db) {
    let t = TestApp::spawn(db, &[("WITHDRAWAL_MIN", "1")], at(MORNING)).await;
    let chain = Arc::new(GatedChain::default());
    let app = with_chain(&t, chain.clone());
    let ann = t.funded("ann", usdc(100)).await;
    // More than one page (100) of them.
    let mut ids = Vec::new();
    for _ in 0..150 {
        let withdrawal = app
            .withdraw(ann, Micros::new(1).unwrap(), GOOD, None)
            .await
            .unwrap();
        ids.push(withdrawal.id.0);
    }
    let tick = app.withdrawal_step().await.unwrap();
    assert_eq!(tick.submitted, ids, "every one, oldest first");
    assert_eq!(*chain.sent.lock().unwrap(), ids);
    let confirmed = app.withdrawal_step().await.unwrap().confirmed;
    assert_eq!(confirmed, ids);
    t.assert_verified().await;
}

async fn a_self_exclusion_survives_any_race_with_a_request_to_lift_it(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let ann = t.funded("ann", usdc(10)).await;
    t.open(CODE).await;
    // Two instances, each with its own caches, take the two requests.
    let other = t.twin(&[]);
    let mut furthest = None;
    let mut races = Vec::new();
    for round in 0..10 {
        let until = at(MORNING) + Duration::days(30) + Duration::minutes(round);
        furthest = Some(until);
        let exclude = updown_domain::admission::PlayerLimits {
            excluded_until: Some(until),
            ..Default::default()
        };
        let (a, b) = (t.app.clone(), other.clone());
        races.push(tokio::spawn(async move {
            a.set_limits(ann, exclude).await.map(drop)
        }));
        races.push(tokio::spawn(async move {
            b.set_limits(ann, Default::default()).await.map(drop)
        }));
    }
    for race in races {
        match race.await.unwrap() {
            Ok(()) => {}
            Err(AppError::Conflict(why)) => assert!(why.contains("excluded"), "{why}"),
            Err(other) => panic!("{other:?}"),
        }
    }
    let user = t.store().user(ann).await.unwrap();
    assert_eq!(
        user.limits.excluded_until, furthest,
        "never lifted nor shortened once set"
    );
    let (code, _) = message_of(t.app.place_bet(ann, Side::Up, usdc(1), None, None).await);
    assert_eq!(code, "self_excluded");
}

async fn keys_are_purged_after_a_day_and_refused_notifications_after_thirty(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let store = t.store();
    let now = at(MORNING);
    let key = |name: &str| updown_store::RequestKey {
        scope: "user:1".into(),
        key: name.into(),
        request_hash: "h".into(),
        at: now,
    };
    let answer = updown_store::KeptAnswer {
        status: 201,
        body: "{}".into(),
    };
    store
        .record_idempotency_key(&key("k1"), &answer)
        .await
        .unwrap();
    store
        .record_deposit_notification(&updown_store::DepositNotification {
            received_at: Some(now),
            outcome: Some(updown_store::DepositOutcome::Refused),
            reason: Some("unsigned".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Within a day both stay; a retry still finds its answer.
    t.clock.advance(Duration::hours(23));
    assert_eq!(
        t.app.purge_step().await.unwrap(),
        updown_store::Purged::default()
    );
    t.clock.advance(Duration::hours(2));
    let purged = t.app.purge_step().await.unwrap();
    assert_eq!(
        (purged.idempotency_keys, purged.deposit_notifications),
        (1, 0)
    );
    assert!(store
        .idempotency_key("user:1", "k1")
        .await
        .unwrap()
        .is_none());
    t.clock.advance(Duration::days(30));
    assert_eq!(t.app.purge_step().await.unwrap().deposit_notifications, 1);
}

async fn withdrawals_keep_to_the_minimum_and_the_daily_maximum(db: Db) {
    let limits = [
        ("WITHDRAWAL_MIN", "2USDC"),
        ("WITHDRAWAL_DAILY_MAX", "20USDC"),
    ];
    let t = TestApp::spawn(db, &limits, at(MORNING)).await;
    let app = &t.app;
    let ann = t.funded("ann", usdc(100)).await;
    let (code, message) = message_of(app.withdraw(ann, usdc(1), GOOD, None).await);
    assert_eq!(code, "limit_exceeded");
    assert!(message.contains("WITHDRAWAL_MIN"), "{message}");
    let (code, _) = message_of(
        app.withdraw(
            ann,
            usdc(5),
            "0x0000000000000000000000000000000000000000",
            None,
        )
        .await,
    );
    assert_eq!(code, "refused", "the zero address burns what it gets");

    app.withdraw(ann, usdc(12), GOOD, None).await.unwrap();
    let (code, message) = message_of(app.withdraw(ann, usdc(9), GOOD, None).await);
    assert_eq!(code, "limit_exceeded");
    assert!(message.contains("at most 8000000 more"), "{message}");
    assert_eq!(app.balance(ann).await.unwrap(), usdc(88), "nothing moved");
    app.withdraw(ann, usdc(8), GOOD, None).await.unwrap();
    // A day later the window has moved on.
    t.advance(Duration::hours(24));
    app.withdraw(ann, usdc(20), GOOD, None).await.unwrap();
    assert_eq!(app.balance(ann).await.unwrap(), usdc(60));
    t.assert_verified().await;
}

/// The figures `/metrics` exports for the alerts: how long past its settle
/// instant the most overdue round is, and how long the oldest withdrawal
/// not yet done has waited.
async fn what_the_alerts_watch_is_read_from_the_database(db: Db) {
    let t = TestApp::spawn(db, &[], at(MORNING)).await;
    let app = &t.app;
    assert_eq!(app.overdue().await.unwrap(), Default::default());
    let ann = t.funded("ann", usdc(100)).await;
    let round = t.open("20261124").await;
    let withdrawal = app.withdraw(ann, usdc(5), GOOD, None).await.unwrap();
    t.advance(Duration::minutes(10));
    let overdue = app.overdue().await.unwrap();
    assert_eq!(
        (overdue.settlement_seconds, overdue.withdrawal_seconds),
        (0, 600),
        "the round is not due yet"
    );
    // Two hours past the settle instant, the round still unsettled.
    let past = round.terms.settle_at + Duration::hours(2) - t.app.clock.now();
    t.advance(past);
    let overdue = app.overdue().await.unwrap();
    assert_eq!(overdue.settlement_seconds, 7_200);
    assert_eq!(
        overdue.withdrawal_seconds,
        (round.terms.settle_at + Duration::hours(2) - at(MORNING)).num_seconds()
    );
    // Done, neither waits any longer.
    app.settle_round(round.terms.code, SettleRequest::Auto)
        .await
        .unwrap();
    let fail = updown_store::WithdrawalChange::Fail {
        reason: "refused by the operator".into(),
        rejection: None,
    };
    app.change_withdrawal(withdrawal.id, fail, "operator", None)
        .await
        .unwrap();
    assert_eq!(app.overdue().await.unwrap(), Default::default());
    t.assert_verified().await;
}
