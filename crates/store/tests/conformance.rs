//! One story of the store, told against SQLite and PostgreSQL alike. Every
//! story that moves money ends with `verify` passing.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use updown_domain::admission::{BetRefusal, PlayerLimits};
use updown_domain::calendar::Calendar;
use updown_domain::ids::{Email, Market, RoundCode, WithdrawalId};
use updown_domain::payout::settle;
use updown_domain::round::{Outcome, RoundError, RoundStatus, RoundTerms, Side, TiePolicy};
use updown_domain::schedule::{round_schedule, ScheduleConfig};
use updown_domain::{Micros, UserId};
use updown_store::*;

use updown_store::on_both_backends;
use updown_store::testing::{behind_the_back, Engine};

on_both_backends!(
    a_round_from_deposits_to_settlement_keeps_every_invariant,
    settlement_interrupted_after_some_chunks_resumes_and_pays_everyone_once,
    sixty_four_concurrent_bets_over_a_balance_for_ten_accept_exactly_ten,
    player_limits_and_self_exclusion_refuse_bets,
    migrations_run_twice_without_harm,
    unique_clashes_say_which_rule_they_broke,
    verify_finds_a_transfer_credited_under_two_spellings_of_its_hash,
    incremental_verify_checks_what_came_after_its_checkpoint_and_full_verify_all,
    incremental_verify_keeps_up_with_bets_placed_while_it_runs,
    idempotency_keys_are_recorded_with_their_effects_and_purged,
    withdrawals_confirm_or_fail_and_the_statement_tells_each_step,
    withdrawals_that_may_be_on_the_chain_fail_only_on_its_word,
    sessions_expire_end_and_are_not_api_keys,
    only_one_process_at_a_time_holds_the_scheduler_lease,
    concurrent_withdrawals_keep_under_the_cap_and_notifications_are_kept,
    the_chain_cursor_moves_only_with_its_credits_and_halts_on_a_reorg,
    a_signed_send_takes_the_next_nonce_with_its_withdrawal_or_not_at_all,
    a_sweep_moves_custody_between_places_once_and_a_reverted_one_books_nothing,
    the_audit_chain_finds_a_row_edited_deleted_or_reordered_behind_its_back,
    a_close_by_hand_is_recorded_with_its_audit_entry_or_neither_is,
    an_approval_request_is_recorded_with_its_audit_entry_or_neither_is,
    operators_have_one_account_per_email_and_a_disabled_ones_tokens_stop,
    operator_sign_in_failures_lock_totp_steps_work_once_and_sessions_end,
);

fn m(v: i64) -> Micros {
    Micros::new(v).unwrap()
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn terms(code: &str) -> RoundTerms {
    let code = RoundCode::parse(code).unwrap();
    let s = round_schedule(&Calendar::nasdaq(), &ScheduleConfig::default(), code.date()).unwrap();
    RoundTerms {
        market: Market::parse("NDX").unwrap(),
        code,
        previous_session: s.previous_session.date,
        open_at: s.open_at,
        lock_at: s.lock_at,
        close_at: s.close_at,
        settle_at: s.settle_at,
        void_at: s.void_at,
        fee_bps: 100,
        tie_policy: TiePolicy::Down,
        oracle: Some("mock".into()),
        dispute_min: Some(30),
    }
}

/// An audit entry by `actor` doing `action` on `subject`.
fn entry(actor: &str, action: &str, subject: String, at: DateTime<Utc>) -> AuditEntry {
    AuditEntry {
        id: 0,
        at,
        actor: actor.into(),
        action: action.into(),
        subject,
        reason: None,
        credential: None,
        client: None,
        request_id: None,
        chain: None,
    }
}

/// The audit log's (action, subject) pairs, oldest first.
async fn audited(store: &Arc<dyn Store>) -> Vec<(String, String)> {
    let mut log = store.audit_log(None, 100).await.unwrap();
    log.reverse();
    log.into_iter().map(|e| (e.action, e.subject)).collect()
}

async fn assert_verified(store: &Arc<dyn Store>) {
    let report = store.verify().await.unwrap();
    assert!(report.ok(), "verify failed: {:?}", report.failures());
}

async fn funded_user(
    store: &Arc<dyn Store>,
    name: &str,
    amount: i64,
    now: DateTime<Utc>,
) -> UserId {
    let user = store
        .create_user(&email(&format!("{name}@example.com")), now)
        .await
        .unwrap();
    if amount > 0 {
        store
            .credit_deposit(&NewDeposit {
                user: user.id,
                amount: m(amount),
                chain_tx_hash: format!("0xfund-{name}"),
                log_index: 0,
                now,
                key: None,
            })
            .await
            .unwrap();
    }
    user.id
}

fn bet(user: UserId, side: Side, stake: i64, at: DateTime<Utc>) -> BetRequest {
    BetRequest {
        user,
        side,
        stake: m(stake),
        received_at: at,
        key: None,
    }
}

async fn a_round_from_deposits_to_settlement_keeps_every_invariant(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(1);
    let a = funded_user(&store, "a", 100, now).await;
    let b = funded_user(&store, "b", 50, now).await;
    assert_eq!(store.user(a).await.unwrap().sequence, 0);
    assert_eq!(store.user(b).await.unwrap().sequence, 1);
    assert!(matches!(
        store.create_user(&email("a@example.com"), now).await,
        Err(StoreError::Conflict(_))
    ));
    let duplicate = store
        .credit_deposit(&NewDeposit {
            user: a,
            amount: m(100),
            chain_tx_hash: "0xfund-a".into(),
            log_index: 0,
            now,
            key: None,
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(store.balance(a).await.unwrap(), m(100));

    let by = |action: &str| entry("ops", action, format!("round {}", t.code), now);
    let (round, created) = store
        .open_round(
            &NewRound {
                terms: t.clone(),
                now,
            },
            Some(&by("open_round")),
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(round.terms_digest, t.digest());
    assert_eq!(round.terms, t, "the terms read back as written");
    let (again, created_again) = store
        .open_round(
            &NewRound {
                terms: t.clone(),
                now,
            },
            Some(&by("open_round")),
        )
        .await
        .unwrap();
    assert_eq!((again.id, created_again), (round.id, false));

    let answers = store
        .place_bets(
            round.id,
            &[
                bet(a, Side::Up, 30, now),
                bet(b, Side::Down, 20, now),
                bet(a, Side::Down, 10, now),
                bet(b, Side::Up, 100, now),
                bet(UserId(999), Side::Up, 1, now),
                bet(a, Side::Up, 1, t.lock_at),
            ],
        )
        .await
        .unwrap();
    assert!(answers[..3].iter().all(Result::is_ok), "{answers:?}");
    assert!(matches!(
        answers[3],
        Err(BetRefusalReason::Player(
            BetRefusal::InsufficientFunds { .. }
        ))
    ));
    assert!(matches!(answers[4], Err(BetRefusalReason::UnknownUser(_))));
    assert!(matches!(
        answers[5],
        Err(BetRefusalReason::Round(RoundError::PastLock { .. }))
    ));
    let pools = store.pools(round.id).await.unwrap();
    assert_eq!(
        (pools.up, pools.down, pools.bets_up, pools.bets_down),
        (m(30), m(30), 1, 2)
    );

    let down_bet = answers[2].as_ref().unwrap().id;
    let cutoff = Duration::minutes(15);
    assert!(matches!(
        store.cancel_bet(down_bet, Some(b), now, cutoff, None).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .cancel_bet(down_bet, Some(a), now, cutoff, None)
        .await
        .unwrap();
    assert!(matches!(
        store.cancel_bet(down_bet, Some(a), now, cutoff, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.balance(a).await.unwrap(), m(70));
    assert_eq!(store.pools(round.id).await.unwrap().down, m(20));

    let withdrawal = NewWithdrawal {
        user: b,
        amount: m(10),
        address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
        now,
        cap: None,
        key: None,
    };
    store.request_withdrawal(&withdrawal).await.unwrap();
    let too_much = store
        .request_withdrawal(&NewWithdrawal {
            amount: m(1000),
            ..withdrawal
        })
        .await;
    assert!(
        matches!(too_much, Err(StoreError::InsufficientFunds { .. })),
        "{too_much:?}"
    );
    assert_verified(&store).await;

    // An operator's early lock: a bet received from then on is refused.
    let (locked, locked_now) = store
        .lock_round(round.id, now, Some(&by("lock_round")))
        .await
        .unwrap();
    assert_eq!((locked.status, locked_now), (RoundStatus::Locked, true));
    let (again, locked_again) = store
        .lock_round(round.id, now, Some(&by("lock_round")))
        .await
        .unwrap();
    assert_eq!((again.locked_at, locked_again), (locked.locked_at, false));
    // Only the calls that opened and locked it left an entry.
    assert_eq!(
        audited(&store).await,
        [
            ("open_round", "round 20261124"),
            ("lock_round", "round 20261124")
        ]
        .map(|(a, s)| (a.to_string(), s.to_string()))
    );
    let late = store
        .place_bets(round.id, &[bet(a, Side::Up, 1, now)])
        .await
        .unwrap();
    assert!(matches!(
        late[0],
        Err(BetRefusalReason::Round(RoundError::NotOpen { .. }))
    ));

    let start = SettlementStart {
        outcome: Outcome::Up,
        evidence: Evidence::default(),
        actor: "test".into(),
        reason: Some("conformance".into()),
        now: t.settle_at,
        audit: None,
    };
    store.begin_settlement(round.id, &start).await.unwrap();
    while store.settle_chunk(round.id, 1).await.unwrap().is_some() {}
    let settled = store
        .finish_settlement(round.id, t.settle_at)
        .await
        .unwrap();
    assert_eq!(settled.status, RoundStatus::Settled);
    // a staked 30 on UP against 20 on DOWN: fee floor(0.2) = 0, so 50 back.
    assert_eq!(store.balance(a).await.unwrap(), m(70 + 50));
    assert_eq!(store.balance(b).await.unwrap(), m(20));
    let again = store
        .begin_settlement(
            round.id,
            &SettlementStart {
                outcome: Outcome::Down,
                ..start
            },
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store
            .finish_settlement(round.id, t.settle_at)
            .await
            .unwrap()
            .status,
        RoundStatus::Settled
    );

    let tvl = store.tvl().await.unwrap();
    assert_eq!(tvl.total, 150);
    assert_eq!(
        tvl.user_balances + tvl.round_pools + tvl.withdrawals_pending,
        tvl.total
    );
    assert_eq!(tvl.withdrawals_pending, 10);
    assert_verified(&store).await;
}

async fn settlement_interrupted_after_some_chunks_resumes_and_pays_everyone_once(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261125");
    let now = t.open_at + Duration::minutes(5);
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(funded_user(&store, &format!("p{i}"), 1_000_000, now).await);
    }
    let (round, _) = store
        .open_round(
            &NewRound {
                terms: t.clone(),
                now,
            },
            None,
        )
        .await
        .unwrap();
    let mut requests = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let side = if i % 3 == 0 { Side::Down } else { Side::Up };
        requests.push(bet(*user, side, 1_000 + 7 * i as i64, now));
        requests.push(bet(*user, Side::Up, 333 + i as i64, now));
    }
    let answers = store.place_bets(round.id, &requests).await.unwrap();
    assert!(answers.iter().all(Result::is_ok));
    // The scheduler records the lock a few milliseconds late. A bet received
    // just before the lock instant, decided after that, still enters; one
    // received at the instant does not.
    let recorded = t.lock_at + Duration::milliseconds(7);
    store.lock_round(round.id, recorded, None).await.unwrap();
    let just_before = bet(
        users[0],
        Side::Up,
        555,
        t.lock_at - Duration::milliseconds(1),
    );
    let at_lock = bet(users[1], Side::Up, 556, t.lock_at);
    let rush = store
        .place_bets(round.id, &[just_before.clone(), at_lock])
        .await
        .unwrap();
    assert!(rush[0].is_ok(), "{:?}", rush[0]);
    assert!(
        matches!(
            rush[1],
            Err(BetRefusalReason::Round(RoundError::PastLock { .. }))
        ),
        "{:?}",
        rush[1]
    );
    requests.push(just_before.clone());

    let start = SettlementStart {
        outcome: Outcome::Down,
        evidence: Evidence::default(),
        actor: "test".into(),
        reason: None,
        now: t.settle_at,
        audit: None,
    };
    store.begin_settlement(round.id, &start).await.unwrap();
    // Once settlement has begun the pools are decided: nothing enters.
    let after_begin = store.place_bets(round.id, &[just_before]).await.unwrap();
    assert!(
        matches!(
            after_begin[0],
            Err(BetRefusalReason::Round(RoundError::NotOpen { .. }))
        ),
        "{:?}",
        after_begin[0]
    );
    // Two chunks, then the process "crashes".
    assert!(store.settle_chunk(round.id, 2).await.unwrap().is_some());
    assert!(store.settle_chunk(round.id, 2).await.unwrap().is_some());
    // A restart begins again (resuming, not re-paying) and runs to the end.
    let resumed = store.begin_settlement(round.id, &start).await.unwrap();
    assert!(resumed.settlement.unwrap().cursor > 0);
    while store.settle_chunk(round.id, 2).await.unwrap().is_some() {}
    let done = store
        .finish_settlement(round.id, t.settle_at)
        .await
        .unwrap();

    let expected = settle(
        Outcome::Down,
        &requests
            .iter()
            .map(|r| (r.side, r.stake))
            .collect::<Vec<_>>(),
        t.fee_bps,
    )
    .unwrap();
    for user in &users {
        let staked: i64 = requests
            .iter()
            .filter(|r| r.user == *user)
            .map(|r| r.stake.get())
            .sum();
        let paid: i64 = requests
            .iter()
            .zip(&expected.payouts)
            .filter(|(r, _)| r.user == *user)
            .map(|(_, p)| p.get())
            .sum();
        assert_eq!(
            store.balance(*user).await.unwrap().get(),
            1_000_000 - staked + paid,
            "user {user}"
        );
    }
    let settlement = done.settlement.unwrap();
    assert_eq!(settlement.plan.fee, expected.fee);
    assert_eq!(settlement.dust, Some(expected.dust));
    assert_verified(&store).await;
}

async fn sixty_four_concurrent_bets_over_a_balance_for_ten_accept_exactly_ten(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(2);
    let user = funded_user(&store, "racer", 10 * 1_000, now).await;
    let (round, _) = store
        .open_round(&NewRound { terms: t, now }, None)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            let side = if i % 2 == 0 { Side::Up } else { Side::Down };
            tokio::spawn(async move {
                store
                    .place_bets(round.id, &[bet(user, side, 1_000, now)])
                    .await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        let answers = task.await.unwrap().unwrap();
        match &answers[0] {
            Ok(_) => accepted += 1,
            Err(BetRefusalReason::Player(BetRefusal::InsufficientFunds { .. })) => {}
            Err(other) => panic!("unexpected refusal {other}"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(store.balance(user).await.unwrap(), Micros::ZERO);
    let pools = store.pools(round.id).await.unwrap();
    assert_eq!(pools.up.get() + pools.down.get(), 10_000);
    assert_verified(&store).await;
}

async fn player_limits_and_self_exclusion_refuse_bets(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(3);
    let user = funded_user(&store, "careful", 1_000_000, now).await;
    let (round, _) = store
        .open_round(&NewRound { terms: t, now }, None)
        .await
        .unwrap();
    let limits = PlayerLimits {
        max_stake_per_round: Some(m(500)),
        max_stake_per_day: Some(m(10_000)),
        excluded_until: None,
    };
    let day = Duration::hours(24);
    let by = |what: &str| entry("support", "user_limits", what.into(), now);
    let set = store
        .change_limits(user, limits, now, day, Some(&by("set")))
        .await
        .unwrap();
    assert_eq!((set.limits, set.pending_limits), (limits, None));
    let answers = store
        .place_bets(
            round.id,
            &[bet(user, Side::Up, 400, now), bet(user, Side::Up, 200, now)],
        )
        .await
        .unwrap();
    assert!(answers[0].is_ok());
    assert!(matches!(
        answers[1],
        Err(BetRefusalReason::Player(BetRefusal::RoundLimit { .. }))
    ));
    // The limit counts what is already stored, not only this batch.
    let later = store
        .place_bets(round.id, &[bet(user, Side::Down, 101, now)])
        .await
        .unwrap();
    assert!(matches!(
        later[0],
        Err(BetRefusalReason::Player(BetRefusal::RoundLimit { .. }))
    ));
    let excluded = PlayerLimits {
        excluded_until: Some(now + Duration::days(30)),
        ..limits
    };
    store
        .change_limits(user, excluded, now, day, None)
        .await
        .unwrap();
    // Written conditionally: an exclusion in force is never shortened,
    // and a raise waits out the cooling-off period.
    let lifted = store
        .change_limits(user, limits, now, day, Some(&by("lifted")))
        .await;
    assert!(matches!(lifted, Err(StoreError::Conflict(_))), "{lifted:?}");
    let raised = PlayerLimits {
        max_stake_per_round: Some(m(900)),
        ..excluded
    };
    let user_now = store
        .change_limits(user, raised, now, day, Some(&by("raised")))
        .await
        .unwrap();
    // An operator's change commits with its audit entry; a refused one
    // leaves none.
    assert_eq!(
        audited(&store).await,
        [("user_limits", "set"), ("user_limits", "raised")].map(|(a, s)| (a.into(), s.into()))
    );
    assert_eq!(user_now.limits.max_stake_per_round, Some(m(500)));
    let pending = user_now.pending_limits.unwrap();
    assert_eq!(
        (pending.max_stake_per_round, pending.from),
        (Some(m(900)), now + day)
    );
    let answers = store
        .place_bets(round.id, &[bet(user, Side::Up, 1, now)])
        .await
        .unwrap();
    assert!(matches!(
        answers[0],
        Err(BetRefusalReason::Player(BetRefusal::SelfExcluded { .. }))
    ));
    assert_eq!(store.balance(user).await.unwrap(), m(1_000_000 - 400));
    assert_verified(&store).await;
}

async fn verify_finds_a_transfer_credited_under_two_spellings_of_its_hash(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now = "2026-11-24T15:00:00Z".parse().unwrap();
    let user = funded_user(&store, "twice", 0, now).await;
    let hash = "9fc76417374aa880d4449a1f7f31ec597f00b1f6f3dd2d66f4c9c6c445836d8b";
    // The store takes what it is given; the service writes one spelling.
    for spelling in [format!("0x{hash}"), hash.to_uppercase()] {
        store
            .credit_deposit(&NewDeposit {
                user,
                amount: m(5),
                chain_tx_hash: spelling,
                log_index: 0,
                now,
                key: None,
            })
            .await
            .unwrap();
    }
    let report = store.verify().await.unwrap();
    let failed: Vec<_> = report.failures().iter().map(|c| c.name).collect();
    assert_eq!(
        failed,
        ["no transfer is credited twice under two spellings of its hash"]
    );
}

fn failed_names(report: &VerifyReport) -> Vec<&'static str> {
    report.failures().iter().map(|c| c.name).collect()
}

async fn incremental_verify_checks_what_came_after_its_checkpoint_and_full_verify_all(
    engine: Engine,
) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(1);
    let users = [
        funded_user(&store, "inc-a", 1_000, now).await,
        funded_user(&store, "inc-b", 1_000, now).await,
        funded_user(&store, "inc-c", 1_000, now).await,
    ];
    let (round, _) = store
        .open_round(
            &NewRound {
                terms: t.clone(),
                now,
            },
            None,
        )
        .await
        .unwrap();
    let place = |stake: i64| {
        let store = store.clone();
        async move {
            let bets: Vec<BetRequest> = users
                .iter()
                .map(|u| bet(*u, Side::Up, stake, now))
                .collect();
            let answers = store.place_bets(round.id, &bets).await.unwrap();
            answers
                .into_iter()
                .map(|a| a.unwrap().id)
                .collect::<Vec<_>>()
        }
    };
    place(10).await;

    // The first run checks everything and writes checkpoint 1.
    let first = store.verify_incremental(now).await.unwrap();
    assert!(first.report.ok(), "{:?}", first.report.failures());
    assert_eq!(first.from, None);
    let one = first.written.clone().expect("a checkpoint");
    assert_eq!(one.id, 1);
    // 3 deposits and 3 bets.
    assert_eq!((first.checked_transactions, one.transactions), (6, 6));
    assert_eq!(one.entries, 12);
    assert_eq!(first.report.transactions, 6);
    assert_verified(&store).await;

    // Nothing new: a checkpoint all the same, so its age says when the
    // ledger was last vouched for.
    let idle = store.verify_incremental(now).await.unwrap();
    assert!(idle.report.ok());
    assert_eq!(idle.checked_transactions, 0);
    let again = idle.written.clone().expect("a checkpoint");
    assert_eq!((again.id, again.through_tx), (2, one.through_tx));
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(again.clone())
    );

    // Only what came after checkpoint 1 is checked: three bets and a
    // cancel.
    let placed = place(20).await;
    store
        .cancel_bet(placed[2], Some(users[2]), now, Duration::zero(), None)
        .await
        .unwrap();
    let second = store
        .verify_incremental(now + Duration::minutes(5))
        .await
        .unwrap();
    assert!(second.report.ok(), "{:?}", second.report.failures());
    assert_eq!(second.checked_transactions, 4);
    let two = second.written.clone().expect("a checkpoint");
    assert_eq!((two.id, two.transactions, two.entries), (3, 10, 20));
    assert_eq!(two.prev_hash, again.hash);
    assert_verified(&store).await;

    // A deposit before the checkpoint rewritten behind the service's back,
    // both its entries (it still balances), the cached balances left alone:
    // the incremental verify cannot see it, as documented; the full one
    // does.
    let rewrite = |delta: i64, balances: bool| {
        let moved = if balances {
            format!(
                "UPDATE accounts SET balance = balance + (CASE WHEN kind = 'user' THEN ({delta}) ELSE 0 - ({delta}) END) \
                   WHERE id IN (SELECT account_id FROM ledger_entries WHERE tx_id = (SELECT tx_id FROM target));"
            )
        } else {
            String::new()
        };
        format!(
            "CREATE TEMPORARY TABLE target AS SELECT MIN(tx_id) AS tx_id FROM ledger_entries \
               WHERE account_id = (SELECT account_id FROM users WHERE id = {user}); {moved} \
             UPDATE ledger_entries SET amount = amount + (CASE WHEN amount > 0 THEN ({delta}) ELSE 0 - ({delta}) END) \
               WHERE tx_id = (SELECT tx_id FROM target); \
             DROP TABLE target;",
            user = users[0].0
        )
    };
    behind_the_back(&db.url, &rewrite(-1, false)).await;
    let blind = store
        .verify_incremental(now + Duration::minutes(10))
        .await
        .unwrap();
    assert!(blind.report.ok(), "{:?}", blind.report.failures());
    assert_eq!(
        failed_names(&store.verify().await.unwrap()),
        [
            "cached balances equal recomputed ones",
            "the latest checkpoint's totals equal the entries up to it"
        ]
    );
    behind_the_back(&db.url, &rewrite(1, false)).await;
    assert_verified(&store).await;
    // Rewritten with the balances too, so every invariant holds: the
    // incremental verify sees the balances moved (its digest), the full one
    // the entries behind the checkpoint.
    behind_the_back(&db.url, &rewrite(-1, true)).await;
    let seen = store
        .verify_incremental(now + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!(
        failed_names(&seen.report),
        ["cached balances equal recomputed ones"]
    );
    assert_eq!(
        failed_names(&store.verify().await.unwrap()),
        ["the latest checkpoint's totals equal the entries up to it"]
    );
    behind_the_back(&db.url, &rewrite(1, true)).await;
    assert_verified(&store).await;

    // The cancelled bet made active again with no transaction: the full
    // verify sees the pool differ from the active stakes; the incremental
    // one, whose cancel is behind the checkpoint, cannot.
    let reactivate = |status: &str| {
        format!(
            "UPDATE bets SET status = '{status}' WHERE id = {}",
            placed[2].0
        )
    };
    behind_the_back(&db.url, &reactivate("ACTIVE")).await;
    let blind = store
        .verify_incremental(now + Duration::minutes(12))
        .await
        .unwrap();
    assert!(blind.report.ok(), "{:?}", blind.report.failures());
    assert_eq!(
        failed_names(&store.verify().await.unwrap()),
        ["open pools equal their active stakes"]
    );
    behind_the_back(&db.url, &reactivate("CANCELLED")).await;

    // An entry after the checkpoint changed behind the service's back:
    // both verifies see it, and no checkpoint vouches for it.
    place(30).await;
    let late = |delta: i64| {
        format!(
            "UPDATE ledger_entries SET amount = amount + ({delta}) WHERE account_id = {a} \
               AND tx_id = (SELECT MAX(tx_id) FROM ledger_entries WHERE account_id = {a});",
            a = format!("(SELECT account_id FROM users WHERE id = {})", users[1].0)
        )
    };
    behind_the_back(&db.url, &late(-1)).await;
    let caught = store
        .verify_incremental(now + Duration::minutes(15))
        .await
        .unwrap();
    assert_eq!(
        failed_names(&caught.report),
        [
            "every transaction balances",
            "cached balances equal recomputed ones"
        ]
    );
    assert_eq!(caught.written, None);
    // The last that passed (the blind run) still stands.
    assert_eq!(caught.latest().map(|c| c.id), Some(5));
    assert!(failed_names(&store.verify().await.unwrap()).contains(&"every transaction balances"));
    behind_the_back(&db.url, &late(1)).await;

    // A new bet whose stake no longer matches what went into its pool.
    let fresh = place(40).await;
    let restake = |delta: i64| {
        format!(
            "UPDATE bets SET stake = stake + ({delta}) WHERE id = {}",
            fresh[0].0
        )
    };
    behind_the_back(&db.url, &restake(1)).await;
    let restaked = store
        .verify_incremental(now + Duration::minutes(17))
        .await
        .unwrap();
    assert_eq!(
        failed_names(&restaked.report),
        ["every new bet and cancel moved its stake into or out of its pool"]
    );
    assert_eq!(
        failed_names(&store.verify().await.unwrap()),
        ["open pools equal their active stakes"]
    );
    behind_the_back(&db.url, &restake(-1)).await;

    // Two verifiers at once never write two checkpoints with one id.
    let (x, y) = tokio::join!(
        store.verify_incremental(now + Duration::minutes(20)),
        store.verify_incremental(now + Duration::minutes(20))
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert!(x.report.ok() && y.report.ok());
    let mut written: Vec<i64> = [&x, &y]
        .iter()
        .filter_map(|v| v.written.as_ref().map(|c| c.id))
        .collect();
    written.sort_unstable();
    // Overlapping (PostgreSQL), one extends 5 and the other finds 6 taken;
    // one after the other (SQLite's reads may), the second extends 6.
    assert!(written == [6] || written == [6, 7], "{written:?}");
    let latest = store.latest_checkpoint().await.unwrap().unwrap();
    assert_eq!(Some(&latest.id), written.last());
    assert_verified(&store).await;

    // A checkpoint edited behind the service's back.
    behind_the_back(
        &db.url,
        &format!(
            "UPDATE ledger_checkpoints SET entries = entries + 1 WHERE id = {}",
            latest.id
        ),
    )
    .await;
    let edited = store
        .verify_incremental(now + Duration::minutes(25))
        .await
        .unwrap();
    assert_eq!(
        failed_names(&edited.report),
        ["the checkpoint is as it was written"]
    );
    assert_eq!(
        failed_names(&store.verify().await.unwrap()),
        [
            "the checkpoints are as they were written",
            "the latest checkpoint counts what it vouches for"
        ]
    );
    behind_the_back(
        &db.url,
        &format!(
            "UPDATE ledger_checkpoints SET entries = entries - 1 WHERE id = {}",
            latest.id
        ),
    )
    .await;

    // The pools' totals the checkpoint carries, changed (only the up pool
    // has bets, so its total moves by 5): its digest covers them.
    let pools = |delta: i64| {
        format!(
            "UPDATE ledger_checkpoint_pools SET total = total + (CASE WHEN account_id = \
               (SELECT pool_up_account FROM rounds WHERE id = {id}) THEN ({delta}) ELSE 0 - ({delta}) END) \
             WHERE account_id IN (SELECT pool_up_account FROM rounds WHERE id = {id} \
               UNION SELECT pool_down_account FROM rounds WHERE id = {id})",
            id = round.id.0
        )
    };
    behind_the_back(&db.url, &pools(5)).await;
    let moved = store
        .verify_incremental(now + Duration::minutes(26))
        .await
        .unwrap();
    assert_eq!(
        failed_names(&moved.report),
        [
            "the sum of all accounts is zero",
            "cached balances equal recomputed ones"
        ]
    );
    assert_eq!(
        failed_names(&store.verify().await.unwrap()),
        ["the latest checkpoint's totals equal the entries up to it"]
    );
    behind_the_back(&db.url, &pools(-5)).await;

    // A settlement with a checkpoint in its middle: the round is checked
    // whole once it is settled, however few transactions come after.
    store.lock_round(round.id, t.lock_at, None).await.unwrap();
    let start = SettlementStart {
        outcome: Outcome::Down,
        evidence: Evidence::default(),
        actor: "test".into(),
        reason: None,
        now: t.settle_at,
        audit: None,
    };
    store.begin_settlement(round.id, &start).await.unwrap();
    store.settle_chunk(round.id, 1).await.unwrap();
    let middle = store.verify_incremental(t.settle_at).await.unwrap();
    assert!(middle.report.ok(), "{:?}", middle.report.failures());
    assert_eq!(
        middle.written.as_ref().map(|c| c.unsettled_rounds.clone()),
        Some(vec![round.id.0])
    );
    while store.settle_chunk(round.id, 1).await.unwrap().is_some() {}
    store
        .finish_settlement(round.id, t.settle_at)
        .await
        .unwrap();
    let fee = |delta: i64| {
        format!(
            "UPDATE rounds SET fee = fee + ({delta}) WHERE id = {}",
            round.id.0
        )
    };
    behind_the_back(&db.url, &fee(1)).await;
    let settled = store.verify_incremental(t.settle_at).await.unwrap();
    assert_eq!(
        failed_names(&settled.report),
        ["payouts + fee + dust = each settled round's total pool"]
    );
    behind_the_back(&db.url, &fee(-1)).await;
    let settled = store.verify_incremental(t.settle_at).await.unwrap();
    assert!(settled.report.ok(), "{:?}", settled.report.failures());
    assert_eq!(
        settled.written.as_ref().map(|c| c.unsettled_rounds.len()),
        Some(0)
    );

    // A round without bets settles with no transaction at all: still
    // checked whole, as one not settled at the checkpoint.
    let quiet_terms = terms("20261125");
    let (quiet, _) = store
        .open_round(
            &NewRound {
                terms: quiet_terms.clone(),
                now: quiet_terms.open_at,
            },
            None,
        )
        .await
        .unwrap();
    let before = store.verify_incremental(quiet_terms.open_at).await.unwrap();
    assert!(before.report.ok(), "{:?}", before.report.failures());
    store
        .lock_round(quiet.id, quiet_terms.lock_at, None)
        .await
        .unwrap();
    store
        .begin_settlement(
            quiet.id,
            &SettlementStart {
                now: quiet_terms.settle_at,
                ..start.clone()
            },
        )
        .await
        .unwrap();
    while store.settle_chunk(quiet.id, 10).await.unwrap().is_some() {}
    store
        .finish_settlement(quiet.id, quiet_terms.settle_at)
        .await
        .unwrap();
    let fee = |delta: i64| {
        format!(
            "UPDATE rounds SET fee = COALESCE(fee, 0) + ({delta}) WHERE id = {}",
            quiet.id.0
        )
    };
    behind_the_back(&db.url, &fee(1)).await;
    let quiet_run = store
        .verify_incremental(quiet_terms.settle_at)
        .await
        .unwrap();
    assert_eq!(quiet_run.checked_transactions, 0);
    assert_eq!(
        failed_names(&quiet_run.report),
        ["payouts + fee + dust = each settled round's total pool"]
    );
    behind_the_back(&db.url, &fee(-1)).await;
    assert_verified(&store).await;
}

async fn incremental_verify_keeps_up_with_bets_placed_while_it_runs(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(1);
    let mut users = Vec::new();
    for i in 0..8 {
        users.push(funded_user(&store, &format!("stream-{i}"), 1_000_000, now).await);
    }
    let (round, _) = store
        .open_round(
            &NewRound {
                terms: t.clone(),
                now,
            },
            None,
        )
        .await
        .unwrap();
    // Bets commit all the while, so a verify's snapshot holds transactions
    // beyond the bound it vouches for; each checkpoint must still add up.
    let placing = {
        let store = store.clone();
        let users = users.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                let bets: Vec<BetRequest> = users
                    .iter()
                    .map(|u| {
                        bet(
                            *u,
                            if i % 2 == 0 { Side::Up } else { Side::Down },
                            1 + i,
                            now,
                        )
                    })
                    .collect();
                let answers = store.place_bets(round.id, &bets).await.unwrap();
                assert!(answers.iter().all(Result::is_ok));
            }
        })
    };
    let mut runs = 0;
    while !placing.is_finished() || runs < 3 {
        let run = store.verify_incremental(now).await.unwrap();
        assert!(run.report.ok(), "run {runs}: {:?}", run.report.failures());
        runs += 1;
    }
    placing.await.unwrap();
    let last = store.verify_incremental(now).await.unwrap();
    assert!(last.report.ok(), "{:?}", last.report.failures());
    let checkpoint = last.written.unwrap();
    assert_eq!(checkpoint.transactions, 8 + 150 * 8);
    assert_verified(&store).await;
}

async fn unique_clashes_say_which_rule_they_broke(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now = "2026-11-24T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "clash-a", 0, now).await;
    let b = funded_user(&store, "clash-b", 0, now).await;
    let address = "0x52908400098527886E0F7030069857D2E4169EE7";
    store.assign_deposit_address(a, address).await.unwrap();
    let taken = store.assign_deposit_address(b, address).await;
    assert!(
        matches!(&taken, Err(StoreError::Conflict(why)) if why.contains("deposit address")),
        "{taken:?}"
    );
    let twin = store.create_user(&email("clash-a@example.com"), now).await;
    assert!(
        matches!(&twin, Err(StoreError::Conflict(why)) if why.contains("email")),
        "{twin:?}"
    );
}

async fn migrations_run_twice_without_harm(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_eq!(store.unready().await.unwrap(), None);
    // A database behind this build (its last migration undone, as after a
    // restore of an older backup): not ready, and it says what to run.
    behind_the_back(
        &db.url,
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .await;
    let why = store.unready().await.unwrap().expect("behind");
    assert!(why.contains("updown migrate"), "{why}");
    assert_verified(&store).await;
}

fn request_key(scope: &str, key: &str, hash: &str, at: DateTime<Utc>) -> RequestKey {
    RequestKey {
        scope: scope.into(),
        key: key.into(),
        request_hash: hash.into(),
        at,
    }
}

/// A key whose answer is the effect's debug text (any function will do).
fn keyed<T: std::fmt::Debug>(key: &str, at: DateTime<Utc>) -> Keyed<T> {
    Keyed::new(request_key("user:1", key, "hash", at), |result: &T| {
        KeptAnswer {
            status: 201,
            body: format!("{result:?}"),
        }
    })
}

async fn idempotency_keys_are_recorded_with_their_effects_and_purged(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(2);
    let ann = funded_user(&store, "ann", 1_000, now).await;
    let (round, _) = store
        .open_round(&NewRound { terms: t, now }, None)
        .await
        .unwrap();
    let keyed_bet = |key: &str, stake: i64| BetRequest {
        key: Some(keyed(key, now)),
        ..bet(ann, Side::Up, stake, now)
    };

    // A bet with a key: placed once, its answer recorded with it.
    let first = store
        .place_bets(round.id, &[keyed_bet("b1", 100)])
        .await
        .unwrap();
    let placed = first[0].clone().unwrap();
    let record = store
        .idempotency_key("user:1", "b1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.answer.status, 201);
    assert_eq!(record.answer.body, format!("{placed:?}"));
    assert_eq!(record.request_hash, "hash");
    // Again, alone or twice in one batch: nothing more is placed.
    let again = store
        .place_bets(
            round.id,
            &[
                keyed_bet("b1", 100),
                keyed_bet("b2", 50),
                keyed_bet("b2", 50),
            ],
        )
        .await
        .unwrap();
    assert_eq!(again[0], Err(BetRefusalReason::KeyUsed));
    assert!(again[1].is_ok());
    assert_eq!(again[2], Err(BetRefusalReason::KeyUsed));
    // A refused request records nothing; its twin in the batch is refused too.
    let refused = store
        .place_bets(round.id, &[keyed_bet("b3", 5_000), keyed_bet("b3", 5_000)])
        .await
        .unwrap();
    assert!(matches!(
        refused[0],
        Err(BetRefusalReason::Player(
            BetRefusal::InsufficientFunds { .. }
        ))
    ));
    assert_eq!(refused[0], refused[1]);
    assert_eq!(store.idempotency_key("user:1", "b3").await.unwrap(), None);
    assert_eq!(store.balance(ann).await.unwrap(), m(850));

    // Many concurrent requests with one key place one bet.
    let racers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let request = keyed_bet("race", 10);
            tokio::spawn(async move { store.place_bets(round.id, &[request]).await })
        })
        .collect();
    let mut placed_once = 0;
    for racer in racers {
        match racer.await.unwrap().unwrap().remove(0) {
            Ok(_) => placed_once += 1,
            Err(BetRefusalReason::KeyUsed) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(placed_once, 1);
    assert_eq!(store.balance(ann).await.unwrap(), m(840));

    // Cancels, withdrawals, deposits and withdrawal steps likewise.
    let cutoff = Duration::minutes(15);
    let cancel_key = keyed("c1", now);
    store
        .cancel_bet(placed.id, Some(ann), now, cutoff, Some(&cancel_key))
        .await
        .unwrap();
    let twice = store
        .cancel_bet(placed.id, Some(ann), now, cutoff, Some(&cancel_key))
        .await;
    assert!(matches!(twice, Err(StoreError::KeyUsed)), "{twice:?}");
    let withdrawal = NewWithdrawal {
        user: ann,
        amount: m(40),
        address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
        now,
        cap: None,
        key: Some(keyed("w1", now)),
    };
    let sent = store.request_withdrawal(&withdrawal).await.unwrap();
    let twice = store.request_withdrawal(&withdrawal).await;
    assert!(matches!(twice, Err(StoreError::KeyUsed)), "{twice:?}");
    let deposit = NewDeposit {
        user: ann,
        amount: m(5),
        chain_tx_hash: "0xkeyed".into(),
        log_index: 0,
        now,
        key: Some(keyed("d1", now)),
    };
    let credited = store.credit_deposit(&deposit).await.unwrap();
    assert_eq!(credited.balance_after, Some(m(840 + 100 - 40 + 5)));
    assert!(matches!(
        store.credit_deposit(&deposit).await,
        Err(StoreError::KeyUsed)
    ));
    let step = keyed("s1", now);
    let fail = WithdrawalChange::Fail {
        reason: "changed my mind".into(),
        rejection: None,
    };
    store
        .change_withdrawal(sent.id, &fail, now, Some(&step), None)
        .await
        .unwrap();
    let twice = store
        .change_withdrawal(sent.id, &fail, now, Some(&step), None)
        .await;
    assert!(matches!(twice, Err(StoreError::KeyUsed)), "{twice:?}");
    assert_eq!(
        store
            .withdrawals(Some(ann), None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // Actions idempotent by themselves record their answer afterwards.
    let answer = KeptAnswer {
        status: 200,
        body: "{}".into(),
    };
    let operator = request_key("operator:admin", "o1", "h", now);
    assert!(store
        .record_idempotency_key(&operator, &answer)
        .await
        .unwrap());
    assert!(!store
        .record_idempotency_key(&operator, &answer)
        .await
        .unwrap());
    // Another account's key of the same name is theirs alone.
    assert_eq!(store.idempotency_key("user:2", "b1").await.unwrap(), None);

    // Purged after the keeping time, the recent ones kept.
    let old = request_key("user:1", "old", "h", now - Duration::hours(30));
    store.record_idempotency_key(&old, &answer).await.unwrap();
    let purged = store
        .purge(now - Duration::hours(24), now - Duration::days(30), 1_000)
        .await
        .unwrap();
    assert_eq!(purged.idempotency_keys, 1);
    assert_eq!(store.idempotency_key("user:1", "old").await.unwrap(), None);
    assert!(store
        .idempotency_key("user:1", "b1")
        .await
        .unwrap()
        .is_some());
    assert_verified(&store).await;
}

async fn withdrawals_that_may_be_on_the_chain_fail_only_on_its_word(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "inflight", 1_000, now).await;
    let request = |amount| NewWithdrawal {
        user: a,
        amount: m(amount),
        address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
        now,
        cap: None,
        key: None,
    };
    let mut ids = Vec::new();
    for amount in [100, 200, 300] {
        ids.push(store.request_withdrawal(&request(amount)).await.unwrap().id);
    }
    // The worker's pages: oldest first, after a cursor.
    let page = store
        .withdrawals_to_step(WithdrawalStatus::Queued, None, 2)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|w| w.id).collect::<Vec<_>>(), ids[..2]);
    let next = store
        .withdrawals_to_step(WithdrawalStatus::Queued, Some(ids[1]), 2)
        .await
        .unwrap();
    assert_eq!(next.iter().map(|w| w.id).collect::<Vec<_>>(), ids[2..]);

    let step = |id, change: WithdrawalChange| {
        let store = store.clone();
        async move { store.change_withdrawal(id, &change, now, None, None).await }
    };
    let fail = |rejection| WithdrawalChange::Fail {
        reason: "rejected".into(),
        rejection,
    };
    // Claimed: the worker may be sending it; nobody refunds it now.
    let claimed = step(ids[0], WithdrawalChange::Claim).await.unwrap();
    assert_eq!(claimed.status, WithdrawalStatus::Submitting);
    assert!(matches!(
        step(ids[0], WithdrawalChange::Claim).await,
        Err(StoreError::Conflict(_))
    ));
    let refused = step(ids[0], fail(None)).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(why)) if why.contains("chain's word")),
        "{refused:?}"
    );
    // Submitted with its hash: an operator fails it only naming that hash.
    let hash = format!("0x{}", "ab".repeat(32));
    step(
        ids[0],
        WithdrawalChange::Submit {
            chain_tx_hash: Some(hash.clone()),
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        step(ids[0], fail(None)).await,
        Err(StoreError::Conflict(_))
    ));
    let other = ChainRejection::Operator {
        tx_hash: format!("0x{}", "cd".repeat(32)),
    };
    assert!(matches!(
        step(ids[0], fail(Some(other))).await,
        Err(StoreError::Conflict(_))
    ));
    let named = ChainRejection::Operator { tx_hash: hash };
    let failed = step(ids[0], fail(Some(named))).await.unwrap();
    assert_eq!(failed.status, WithdrawalStatus::Failed);
    // Claimed, no transaction known yet: an operator cannot name one; the
    // chain sender's own word fails it.
    step(ids[1], WithdrawalChange::Claim).await.unwrap();
    let guess = ChainRejection::Operator {
        tx_hash: format!("0x{}", "ef".repeat(32)),
    };
    let refused = step(ids[1], fail(Some(guess))).await;
    assert!(
        matches!(&refused, Err(StoreError::Conflict(why)) if why.contains("SUBMITTING")),
        "{refused:?}"
    );
    step(ids[1], fail(Some(ChainRejection::Sender)))
        .await
        .unwrap();
    // Nothing in flight: an operator fails a queued one at once.
    step(ids[2], fail(None)).await.unwrap();
    assert_eq!(store.balance(a).await.unwrap(), m(1_000));
    assert_eq!(store.tvl().await.unwrap().withdrawals_pending, 0);
    assert_verified(&store).await;
}

async fn withdrawals_confirm_or_fail_and_the_statement_tells_each_step(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "wd", 1_000, now).await;
    let request = |amount| NewWithdrawal {
        user: a,
        amount: m(amount),
        address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
        now,
        cap: None,
        key: None,
    };
    let sent = store.request_withdrawal(&request(300)).await.unwrap();
    let bounced = store.request_withdrawal(&request(200)).await.unwrap();
    assert_eq!(store.tvl().await.unwrap().withdrawals_pending, 500);
    assert_verified(&store).await;

    let submitted = store
        .change_withdrawal(
            sent.id,
            &WithdrawalChange::Submit {
                chain_tx_hash: Some("0xabc".into()),
            },
            now,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(submitted.status, WithdrawalStatus::Submitted);
    assert_eq!(submitted.chain_tx_hash.as_deref(), Some("0xabc"));
    let again = store
        .change_withdrawal(
            sent.id,
            &WithdrawalChange::Submit {
                chain_tx_hash: None,
            },
            now,
            None,
            None,
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let confirmed = store
        .change_withdrawal(
            sent.id,
            &WithdrawalChange::Confirm {
                chain_tx_hash: None,
            },
            now,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(confirmed.status, WithdrawalStatus::Confirmed);
    assert_eq!(
        confirmed.chain_tx_hash.as_deref(),
        Some("0xabc"),
        "the hash is kept"
    );
    let failed = store
        .change_withdrawal(
            bounced.id,
            &WithdrawalChange::Fail {
                reason: "gas".into(),
                rejection: None,
            },
            now,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("gas"));
    let late = store
        .change_withdrawal(
            sent.id,
            &WithdrawalChange::Fail {
                reason: "late".into(),
                rejection: Some(ChainRejection::Sender),
            },
            now,
            None,
            None,
        )
        .await;
    assert!(
        matches!(late, Err(StoreError::Conflict(_))),
        "a confirmed withdrawal cannot fail"
    );
    let missing = store
        .change_withdrawal(
            updown_domain::ids::WithdrawalId(999_999),
            &WithdrawalChange::Fail {
                reason: "x".into(),
                rejection: None,
            },
            now,
            None,
            None,
        )
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));

    // 1000 in, 300 and 200 out, 200 back: 700 left, nothing pending.
    assert_eq!(store.balance(a).await.unwrap(), m(700));
    assert_eq!(store.tvl().await.unwrap().withdrawals_pending, 0);
    assert_verified(&store).await;

    let lines = store.statement(a, None, 100).await.unwrap();
    let amounts: Vec<i64> = lines.iter().map(|l| l.amount).collect();
    assert_eq!(
        amounts,
        vec![200, -200, -300, 1_000],
        "newest first; the confirm does not touch the player"
    );
    let balances: Vec<i64> = lines.iter().map(|l| l.balance_after).collect();
    assert_eq!(balances, vec![700, 500, 700, 1_000]);
    assert_eq!(lines[0].kind, updown_domain::ledger::TxKind::WithdrawalFail);
    let older = store.statement(a, Some(lines[1].tx_id), 1).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(
        older[0].tx_id, lines[2].tx_id,
        "a page before a line starts right after it"
    );
    assert_eq!(older[0].balance_after, 700);
}

async fn sessions_expire_end_and_are_not_api_keys(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let user = store
        .create_user(&email("web@example.com"), now)
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(&user.email).await.unwrap(),
        Some((user.clone(), None))
    );
    store
        .set_password_hash(user.id, "$argon2id$fake")
        .await
        .unwrap();
    let (found, hash) = store.password_hash(&user.email).await.unwrap().unwrap();
    assert_eq!(
        (found.id, hash.as_deref()),
        (user.id, Some("$argon2id$fake"))
    );
    assert_eq!(
        store
            .password_hash(&email("nobody@example.com"))
            .await
            .unwrap(),
        None
    );

    store
        .create_session(user.id, "s1", now, now + Duration::hours(1))
        .await
        .unwrap();
    let during = store
        .user_by_session("s1", now + Duration::minutes(59))
        .await
        .unwrap();
    assert_eq!(during.map(|u| u.id), Some(user.id));
    assert_eq!(
        store
            .user_by_session("s1", now + Duration::hours(1))
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.user_by_api_key("s1").await.unwrap(),
        None,
        "a session token is not an API key"
    );
    assert!(
        store.api_keys(user.id).await.unwrap().is_empty(),
        "sessions are not listed as keys"
    );

    store
        .create_api_key(user.id, "ud_1", "k1", now)
        .await
        .unwrap();
    assert_eq!(
        store.user_by_session("k1", now).await.unwrap(),
        None,
        "an API key is not a session"
    );
    assert_eq!(store.api_keys(user.id).await.unwrap().len(), 1);

    store.end_session("s1", now).await.unwrap();
    assert_eq!(
        store.user_by_session("s1", now).await.unwrap(),
        None,
        "signed out"
    );
}

async fn only_one_process_at_a_time_holds_the_scheduler_lease(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let first = store
        .scheduler_lease()
        .await
        .unwrap()
        .expect("a free lease is granted");
    let second = store.scheduler_lease().await.unwrap();
    match store.backend() {
        Backend::Postgres => assert!(second.is_none(), "held by the first"),
        // One process owns a SQLite file.
        Backend::Sqlite => assert!(second.is_some()),
    }
    if let Some(second) = second {
        second.release().await.unwrap();
    }
    first.release().await.unwrap();
    let again = store
        .scheduler_lease()
        .await
        .unwrap()
        .expect("free again once released");
    again.release().await.unwrap();
}

async fn concurrent_withdrawals_keep_under_the_cap_and_notifications_are_kept(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "cap", 1_000, now).await;
    let cap = WithdrawalCap {
        max: m(100),
        after: now - chrono::Duration::hours(24),
        approval_over: None,
    };
    // Sixteen withdrawals of 10 at once under a cap of 100: exactly ten.
    let attempts = (0..16).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .request_withdrawal(&NewWithdrawal {
                    user: a,
                    amount: m(10),
                    address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
                    now,
                    cap: Some(cap),
                    key: None,
                })
                .await
        })
    });
    let mut accepted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(StoreError::LimitExceeded(_)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(store.balance(a).await.unwrap(), m(900));

    let credited = store
        .credit_deposit(&NewDeposit {
            user: a,
            amount: m(5),
            chain_tx_hash: "0xnotified".into(),
            log_index: 3,
            now,
            key: None,
        })
        .await
        .unwrap();
    let found = store.deposit_by_transfer("0xnotified", 3).await.unwrap();
    assert_eq!(
        found,
        Some(Deposit {
            balance_after: None,
            ..credited
        })
    );
    assert_eq!(
        store.deposit_by_transfer("0xnotified", 4).await.unwrap(),
        None
    );
    for (outcome, reason) in [
        (DepositOutcome::Refused, Some("bad signature".to_string())),
        (DepositOutcome::Credited, None),
    ] {
        store
            .record_deposit_notification(&DepositNotification {
                received_at: Some(now),
                outcome: Some(outcome),
                reason,
                tx_hash: Some("0xnotified".into()),
                log_index: Some(3),
                amount: Some(5),
                confirmations: Some(12),
                user: Some(a),
                ..DepositNotification::default()
            })
            .await
            .unwrap();
    }
    let kept = store.deposit_notifications(None, 10).await.unwrap();
    assert_eq!(kept.len(), 2);
    let older = store.deposit_notifications(kept[0].id, 10).await.unwrap();
    assert_eq!(older.len(), 1);
    assert_eq!(older[0].outcome, Some(DepositOutcome::Refused));
    // Refused ones are purged after their keeping time; credited ones kept.
    let purged = store
        .purge(now, now + Duration::days(1), 1_000)
        .await
        .unwrap();
    assert_eq!(purged.deposit_notifications, 1);
    assert_eq!(
        store.deposit_notifications(None, 10).await.unwrap().len(),
        1
    );
    assert_eq!(
        kept[0].outcome,
        Some(DepositOutcome::Credited),
        "newest first"
    );
    assert_eq!(kept[1].reason.as_deref(), Some("bad signature"));
    assert_eq!(kept[1].received_at, Some(now));
    let incomplete = store
        .record_deposit_notification(&DepositNotification::default())
        .await;
    assert!(matches!(incomplete, Err(StoreError::Invalid(_))));
    assert!(store.verify().await.unwrap().ok());
}

fn block(number: i64, hash: &str) -> ScannedBlock {
    ScannedBlock {
        number,
        hash: hash.into(),
        parent_hash: format!("parent-of-{hash}"),
    }
}

async fn the_chain_cursor_moves_only_with_its_credits_and_halts_on_a_reorg(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now = terms("20261124").open_at + Duration::hours(1);
    let alice = funded_user(&store, "alice", 0, now).await;
    store
        .assign_deposit_address(alice, "0xA11ce00000000000000000000000000000000001")
        .await
        .unwrap();
    let owners = store
        .deposit_address_owners(&[
            "0xA11ce00000000000000000000000000000000001".into(),
            "0xunknown".into(),
        ])
        .await
        .unwrap();
    assert_eq!(
        owners,
        vec![(
            "0xA11ce00000000000000000000000000000000001".to_string(),
            alice
        )]
    );

    let cursor = store.chain_cursor(31337, "0xtoken", 10, now).await.unwrap();
    assert_eq!(cursor.next_block, 10);
    // Another chain or token on the same database is refused.
    assert!(matches!(
        store.chain_cursor(1, "0xtoken", 10, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.chain_cursor(31337, "0xother", 10, now).await,
        Err(StoreError::Conflict(_))
    ));

    let credit = |tx: &str, log: i64, amount: i64, number: i64| ChainCredit {
        user: alice,
        amount: m(amount),
        tx_hash: tx.into(),
        log_index: log,
        block_number: number,
        block_hash: format!("0xhash{number}"),
    };
    // A transfer the webhook credited first is not credited again.
    store
        .credit_deposit(&NewDeposit {
            user: alice,
            amount: m(7),
            chain_tx_hash: "0xbb".into(),
            log_index: 0,
            now,
            key: None,
        })
        .await
        .unwrap();
    store
        .replace_pending_deposits(&[PendingDeposit {
            tx_hash: "0xaa".into(),
            log_index: 1,
            user: alice,
            amount: m(5),
            block_number: 12,
            confirmations: 1,
            seen_at: now,
        }])
        .await
        .unwrap();
    assert_eq!(
        store.pending_deposits(Some(alice), 10).await.unwrap().len(),
        1
    );
    let range = ScannedRange {
        from: 10,
        to: 13,
        blocks: vec![block(11, "0xhash11"), block(12, "0xhash12")],
        credits: vec![credit("0xaa", 1, 5, 12), credit("0xbb", 0, 7, 12)],
        keep_blocks_from: 11,
        now,
    };
    let committed = store.commit_range(&range).await.unwrap();
    assert_eq!(
        (committed.credited.len(), committed.already_credited),
        (1, 1)
    );
    assert_eq!(store.balance(alice).await.unwrap(), m(12));
    assert!(
        store.pending_deposits(None, 10).await.unwrap().is_empty(),
        "credited: no longer pending"
    );
    // The same range again (a crash after the commit, a second watcher):
    // refused, nothing credited twice.
    assert!(matches!(
        store.commit_range(&range).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.balance(alice).await.unwrap(), m(12));
    assert_eq!(
        store.read_chain_cursor().await.unwrap().unwrap().next_block,
        13
    );
    let kept = store.scanned_blocks(10).await.unwrap();
    assert_eq!(
        kept.iter().map(|b| b.number).collect::<Vec<_>>(),
        vec![12, 11]
    );
    // Pending deposits never show one credited meanwhile.
    store
        .replace_pending_deposits(&[PendingDeposit {
            tx_hash: "0xaa".into(),
            log_index: 1,
            user: alice,
            amount: m(5),
            block_number: 12,
            confirmations: 9,
            seen_at: now,
        }])
        .await
        .unwrap();
    assert!(store.pending_deposits(None, 10).await.unwrap().is_empty());

    // A deep reorg lists what came from its blocks and halts crediting.
    let reorg = store
        .record_reorg(&NewReorg {
            fork_block: 12,
            depth: 1,
            old_hash: "0xhash12".into(),
            new_hash: "0xnew12".into(),
            detected_at: now,
        })
        .await
        .unwrap();
    assert_eq!(reorg.affected.lines().count(), 1, "{}", reorg.affected);
    assert!(reorg.affected.contains("0xaa:1"));
    let again = store
        .record_reorg(&NewReorg {
            fork_block: 11,
            depth: 2,
            old_hash: "x".into(),
            new_hash: "y".into(),
            detected_at: now,
        })
        .await
        .unwrap();
    assert_eq!(again.id, reorg.id, "one open reorg at a time");
    let next = ScannedRange {
        from: 13,
        to: 14,
        blocks: vec![],
        credits: vec![credit("0xcc", 0, 3, 13)],
        keep_blocks_from: 0,
        now,
    };
    assert!(matches!(
        store.commit_range(&next).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.balance(alice).await.unwrap(), m(12));
    store
        .ack_reorg(reorg.id, "ops", "checked", now)
        .await
        .unwrap();
    assert!(matches!(
        store.ack_reorg(reorg.id, "ops", "again", now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.ack_reorg(999, "ops", "none", now).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.scanned_blocks(10).await.unwrap().len(),
        1,
        "the old branch's hashes forgotten"
    );
    store.commit_range(&next).await.unwrap();
    assert_eq!(store.balance(alice).await.unwrap(), m(15));
    assert_eq!(
        store.deposits_of_user(alice, None, 10).await.unwrap().len(),
        3
    );

    let check = store
        .record_custody_check(&CustodyCheck {
            id: 0,
            checked_at: now,
            block_number: 13,
            addresses: 2,
            chain_total: "15".into(),
            ledger_total: 15,
            status: CustodyStatus::Equal,
        })
        .await
        .unwrap();
    assert_eq!(store.custody_checks(5).await.unwrap(), vec![check]);
    assert_verified(&store).await;
}

/// A fake signature: the hash names the nonce and a tag.
fn signer(tag: &'static str) -> impl Fn(i64) -> Result<SignedTx, String> + Send + Sync {
    move |nonce| {
        Ok(SignedTx {
            tx_hash: format!("0x{tag}{nonce:0>width$}", width = 64 - tag.len()),
            raw_tx: format!("0x02{tag}{nonce}"),
            max_fee_per_gas: "2000000000".into(),
            max_priority_fee_per_gas: "1000000000".into(),
        })
    }
}

async fn a_signed_send_takes_the_next_nonce_with_its_withdrawal_or_not_at_all(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "sender", 1_000, now).await;
    let mut ids = Vec::new();
    for amount in [100, 200, 300] {
        let w = store
            .request_withdrawal(&NewWithdrawal {
                user: a,
                amount: m(amount),
                address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
                now,
                cap: None,
                key: None,
            })
            .await
            .unwrap();
        ids.push(w.id);
    }
    let hot = Sender {
        chain_id: 31337,
        address: format!("0x{}", "42".repeat(20)),
    };
    assert_eq!(store.next_nonce(&hot).await.unwrap(), None);
    let sign_entry = |id: WithdrawalId| {
        entry(
            "chain",
            "withdrawal_submitted",
            format!("withdrawal {id}"),
            now,
        )
    };
    // Not claimed: not the sender's to sign.
    let refused = store
        .submit_signed(ids[0], &hot, 7, &signer("a"), now, &sign_entry(ids[0]))
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    assert_eq!(store.next_nonce(&hot).await.unwrap(), None);
    for id in &ids {
        store
            .change_withdrawal(*id, &WithdrawalChange::Claim, now, None, None)
            .await
            .unwrap();
    }
    // The first send starts from the node's count; the next follow it.
    let (w0, s0) = store
        .submit_signed(ids[0], &hot, 7, &signer("a"), now, &sign_entry(ids[0]))
        .await
        .unwrap();
    assert_eq!((s0.nonce, s0.state), (7, SendState::Sent));
    assert_eq!(w0.status, WithdrawalStatus::Submitted);
    assert_eq!(
        w0.chain_tx_hash.as_deref(),
        Some(s0.signed.tx_hash.as_str())
    );
    // A signer that fails leaves nothing: no nonce taken, still claimed.
    let broken = |_: i64| -> Result<SignedTx, String> { Err("no key".into()) };
    assert!(store
        .submit_signed(ids[1], &hot, 0, &broken, now, &sign_entry(ids[1]))
        .await
        .is_err());
    assert_eq!(store.next_nonce(&hot).await.unwrap(), Some(8));
    assert_eq!(
        store.withdrawal(ids[1]).await.unwrap().status,
        WithdrawalStatus::Submitting
    );
    let (_, s1) = store
        .submit_signed(ids[1], &hot, 0, &signer("a"), now, &sign_entry(ids[1]))
        .await
        .unwrap();
    let (_, s2) = store
        .submit_signed(ids[2], &hot, 0, &signer("a"), now, &sign_entry(ids[2]))
        .await
        .unwrap();
    assert_eq!((s1.nonce, s2.nonce), (8, 9));
    // Signed once: a second signing of a SUBMITTED withdrawal is refused.
    assert!(matches!(
        store
            .submit_signed(ids[0], &hot, 0, &signer("b"), now, &sign_entry(ids[0]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store.mark_broadcast(s0.id, now).await.unwrap();

    // A replacement keeps the nonce; the one mined wins, the other is
    // recorded replaced, and the withdrawal carries the mined hash.
    let r0 = store.replace_send(&s0, &signer("b"), now).await.unwrap();
    assert_eq!((r0.nonce, r0.withdrawal), (7, Some(ids[0])));
    let done = store
        .finish_send(
            &MinedSend {
                send_id: r0.id,
                block: 12,
                block_hash: format!("0x{}", "12".repeat(32)),
                success: true,
                reason: None,
                now,
            },
            &entry(
                "chain",
                "withdrawal_confirmed",
                format!("withdrawal {}", ids[0]),
                now,
            ),
        )
        .await
        .unwrap();
    assert_eq!(done.status, WithdrawalStatus::Confirmed);
    assert_eq!(
        done.chain_tx_hash.as_deref(),
        Some(r0.signed.tx_hash.as_str())
    );
    let sends = store.sends_of(ids[0]).await.unwrap();
    let states: Vec<_> = sends.iter().map(|s| (s.id, s.state)).collect();
    assert_eq!(
        states,
        vec![(s0.id, SendState::Replaced), (r0.id, SendState::Mined)]
    );
    assert!(sends[0].broadcast_at.is_some());
    assert!(matches!(
        store.replace_send(&s0, &signer("c"), now).await,
        Err(StoreError::Conflict(_))
    ));
    // Reverted: failed, refunded, with the reason.
    let failed = store
        .finish_send(
            &MinedSend {
                send_id: s1.id,
                block: 13,
                block_hash: format!("0x{}", "13".repeat(32)),
                success: false,
                reason: Some("reverted: blocked".into()),
                now,
            },
            &entry(
                "chain",
                "withdrawal_failed",
                format!("withdrawal {}", ids[1]),
                now,
            ),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, WithdrawalStatus::Failed);
    assert_eq!(failed.failure_reason.as_deref(), Some("reverted: blocked"));
    let many = store.sends_of_many(&ids).await.unwrap();
    assert_eq!(many.len(), 4);
    assert_eq!(store.balance(a).await.unwrap(), m(1_000 - 100 - 300));
    // Each step's entry came with it, and none with a step refused.
    let step = |action: &str, id: WithdrawalId| (action.to_string(), format!("withdrawal {id}"));
    assert_eq!(
        audited(&store).await,
        vec![
            step("withdrawal_submitted", ids[0]),
            step("withdrawal_submitted", ids[1]),
            step("withdrawal_submitted", ids[2]),
            step("withdrawal_confirmed", ids[0]),
            step("withdrawal_failed", ids[1]),
        ]
    );
    assert_verified(&store).await;
}

async fn a_sweep_moves_custody_between_places_once_and_a_reverted_one_books_nothing(
    engine: Engine,
) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "swept", 1_000, now).await;
    let address = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94";
    store.assign_deposit_address(a, address).await.unwrap();
    assert_eq!(store.custody_places().await.unwrap(), (1_000, 0));
    let hot = Sender {
        chain_id: 31337,
        address: format!("0x{}", "42".repeat(20)),
    };
    let sweep = |amount: i64| NewSweep {
        chain_id: 31337,
        user: a,
        deposit_address: address.into(),
        hot_wallet: hot.address.clone(),
        amount: m(amount),
    };
    let (first, sends) = store
        .submit_sweep(&sweep(600), &hot, 3, &signer("p"), &signer("t"), now)
        .await
        .unwrap();
    assert_eq!(first.status, SweepStatus::Submitted);
    // Its permit and transferFrom take the next two nonces, in order.
    let nonces: Vec<(i64, Option<i64>)> = sends.iter().map(|s| (s.nonce, s.sweep)).collect();
    assert_eq!(nonces, vec![(3, Some(first.id)), (4, Some(first.id))]);
    assert_eq!(store.next_nonce(&hot).await.unwrap(), Some(5));
    // One sweep in flight per address; the refused one takes no nonce.
    let twice = store
        .submit_sweep(&sweep(600), &hot, 0, &signer("q"), &signer("u"), now)
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(store.next_nonce(&hot).await.unwrap(), Some(5));
    assert_eq!(store.open_sweeps().await.unwrap().len(), 1);
    // Unbooked until finished: custody still at the deposit addresses.
    assert_eq!(store.custody_places().await.unwrap(), (1_000, 0));
    let mined = |send: &ChainSend, success: bool| MinedSend {
        send_id: send.id,
        block: 10 + send.nonce,
        block_hash: format!("0x{:064x}", send.nonce),
        success,
        reason: None,
        now,
    };
    let done = MinedSweep {
        sweep_id: first.id,
        permit: mined(&sends[0], true),
        transfer: mined(&sends[1], true),
    };
    let finished = store.finish_sweep(&done, None).await.unwrap();
    assert_eq!(finished.status, SweepStatus::Confirmed);
    assert!(finished.ledger_tx.is_some());
    assert_eq!(store.custody_places().await.unwrap(), (400, 600));
    // A second finish (another run of the command) books nothing more.
    let again = store.finish_sweep(&done, None).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(store.custody_places().await.unwrap(), (400, 600));
    // Mined after block 13 (the transferFrom, block 14): booked, and not
    // yet in a balance read at block 13.
    assert_eq!(store.booked_after(13).await.unwrap(), (600, 0));
    assert_eq!(store.booked_after(14).await.unwrap(), (0, 0));

    // A reverted sweep: FAILED with its reason, nothing booked.
    let (second, sends) = store
        .submit_sweep(&sweep(400), &hot, 0, &signer("r"), &signer("v"), now)
        .await
        .unwrap();
    let reverted = MinedSweep {
        sweep_id: second.id,
        permit: mined(&sends[0], false),
        transfer: mined(&sends[1], false),
    };
    let failed = store
        .finish_sweep(&reverted, Some("permit expired"))
        .await
        .unwrap();
    assert_eq!(failed.status, SweepStatus::Failed);
    assert_eq!(failed.reason.as_deref(), Some("permit expired"));
    assert_eq!(failed.ledger_tx, None);
    assert_eq!(store.custody_places().await.unwrap(), (400, 600));
    assert!(store.open_sweeps().await.unwrap().is_empty());
    assert_eq!(store.sweeps(10).await.unwrap().len(), 2);

    // A confirmed withdrawal leaves from the hot wallet's place.
    let w = store
        .request_withdrawal(&NewWithdrawal {
            user: a,
            amount: m(100),
            address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
            now,
            cap: None,
            key: None,
        })
        .await
        .unwrap();
    for change in [
        WithdrawalChange::Claim,
        WithdrawalChange::Submit {
            chain_tx_hash: Some(format!("0x{}", "ab".repeat(32))),
        },
        WithdrawalChange::Confirm {
            chain_tx_hash: None,
        },
    ] {
        store
            .change_withdrawal(w.id, &change, now, None, None)
            .await
            .unwrap();
    }
    assert_eq!(store.custody_places().await.unwrap(), (400, 500));
    assert_eq!(store.tvl().await.unwrap().custody, 900);
    assert_verified(&store).await;
}

/// Runs `sql` on the database directly, as an insider with its credentials
/// would, behind the store's back.
async fn a_close_by_hand_is_recorded_with_its_audit_entry_or_neither_is(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T22:00:00Z".parse().unwrap();
    let close = |text: &str| PriceRecord {
        market: Market::parse("NDX").unwrap(),
        date: "2026-11-23".parse().unwrap(),
        close: updown_domain::round::Price::parse(text).unwrap(),
        source: "manual:ops".into(),
        fetched_at: now,
    };
    let said = |text: &str| {
        entry(
            "ops",
            "price_set",
            format!("NDX 2026-11-23 close {text}"),
            now,
        )
    };
    store
        .record_price(&close("20001.5"), &[], Some(&said("20001.5")))
        .await
        .unwrap();
    let twice = store
        .record_price(&close("19999"), &[], Some(&said("19999")))
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(
        audited(&store).await,
        vec![(
            "price_set".to_string(),
            "NDX 2026-11-23 close 20001.5".to_string()
        )],
        "the refused close left no entry"
    );
}

async fn an_approval_request_is_recorded_with_its_audit_entry_or_neither_is(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-24T22:00:00Z".parse().unwrap();
    let asked = NewApproval {
        kind: ApprovalKind::Settlement,
        subject: "20261124".into(),
        action: "UP".into(),
        reason: Some("feed down".into()),
        requested_by: "oli".into(),
        needed: 1,
        now,
    };
    // The entry names the approval, so it is made from the new row's id.
    let said = |id: i64| entry("oli", "approval_request", format!("approval {id}"), now);
    let approval = store.request_approval(&asked, Some(&said)).await.unwrap();
    let twice = store.request_approval(&asked, Some(&said)).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(
        audited(&store).await,
        vec![(
            "approval_request".to_string(),
            format!("approval {}", approval.id)
        )],
        "the refused request left no entry"
    );
}

async fn the_audit_chain_finds_a_row_edited_deleted_or_reordered_behind_its_back(engine: Engine) {
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00.123456789Z".parse().unwrap();
    let chain = store.audit_chain().await.unwrap();
    assert_eq!((chain.rows, chain.head_id, chain.broken), (0, 0, None));
    for i in 1..=5 {
        store
            .record_audit(&AuditEntry {
                id: 0,
                at: now + Duration::seconds(i),
                actor: format!("op{i}"),
                action: "settle".into(),
                subject: format!("round NDX-2026-11-2{i}"),
                reason: (i % 2 == 0).then(|| format!("reason {i}")),
                credential: None,
                client: None,
                request_id: None,
                chain: None,
            })
            .await
            .unwrap();
    }
    let log = store.audit_log(None, 10).await.unwrap();
    assert_eq!(log.len(), 5);
    // Newest first; each row links to the one before it.
    for pair in log.windows(2) {
        let (newer, older) = (
            pair[0].chain.as_ref().unwrap(),
            pair[1].chain.as_ref().unwrap(),
        );
        assert_eq!(newer.prev_hash, older.hash);
    }
    let chain = store.audit_chain().await.unwrap();
    assert_eq!(chain.broken, None);
    assert_eq!(chain.rows, 5);
    assert_eq!(
        (chain.head_id, chain.head_hash.as_str()),
        (log[0].id, log[0].chain.as_ref().unwrap().hash.as_str())
    );
    assert!(store.verify().await.unwrap().ok());
    let broken_at = |chain: AuditChain| chain.broken.map(|(id, _)| id);
    let ids: Vec<i64> = log.iter().rev().map(|e| e.id).collect();

    // Edited: the reason of the third row.
    behind_the_back(
        &db.url,
        &format!(
            "UPDATE audit_log SET reason = 'nothing to see' WHERE id = {}",
            ids[2]
        ),
    )
    .await;
    assert_eq!(broken_at(store.audit_chain().await.unwrap()), Some(ids[2]));
    let report = store.verify().await.unwrap();
    let failed: Vec<_> = report.failures().iter().map(|c| c.name).collect();
    assert_eq!(failed, ["the audit log's hash chain is unbroken"]);
    behind_the_back(
        &db.url,
        &format!("UPDATE audit_log SET reason = NULL WHERE id = {}", ids[2]),
    )
    .await;
    assert_eq!(
        store.audit_chain().await.unwrap().broken,
        None,
        "put back as it was"
    );

    // Reordered: two rows' contents swapped.
    let swap = format!(
        "UPDATE audit_log SET actor = CASE WHEN id = {a} THEN 'op2' ELSE 'op1' END WHERE id IN ({a}, {b})",
        a = ids[0],
        b = ids[1]
    );
    behind_the_back(&db.url, &swap).await;
    assert_eq!(broken_at(store.audit_chain().await.unwrap()), Some(ids[0]));
    let back = format!(
        "UPDATE audit_log SET actor = CASE WHEN id = {a} THEN 'op1' ELSE 'op2' END WHERE id IN ({a}, {b})",
        a = ids[0],
        b = ids[1]
    );
    behind_the_back(&db.url, &back).await;
    assert_eq!(store.audit_chain().await.unwrap().broken, None);

    // Deleted: a row in the middle, then the last one.
    behind_the_back(
        &db.url,
        &format!("DELETE FROM audit_log WHERE id = {}", ids[3]),
    )
    .await;
    assert_eq!(broken_at(store.audit_chain().await.unwrap()), Some(ids[4]));
    let db2 = engine.fresh().await;
    for i in 1..=2 {
        db2.store
            .record_audit(&AuditEntry {
                id: 0,
                at: now,
                actor: "op".into(),
                action: "void".into(),
                subject: format!("round {i}"),
                reason: None,
                credential: None,
                client: None,
                request_id: None,
                chain: None,
            })
            .await
            .unwrap();
    }
    let last = db2.store.audit_chain().await.unwrap().head_id;
    behind_the_back(
        &db2.url,
        &format!("DELETE FROM audit_log WHERE id = {last}"),
    )
    .await;
    assert_eq!(
        broken_at(db2.store.audit_chain().await.unwrap()),
        Some(last)
    );
    // A row slipped in without the chain.
    let db3 = engine.fresh().await;
    db3.store
        .record_audit(&AuditEntry {
            id: 0,
            at: now,
            actor: "op".into(),
            action: "void".into(),
            subject: "round 1".into(),
            reason: None,
            credential: None,
            client: None,
            request_id: None,
            chain: None,
        })
        .await
        .unwrap();
    behind_the_back(
        &db3.url,
        "INSERT INTO audit_log (at, actor, action, subject) VALUES ('2026-11-23T15:00:00+00:00', 'ghost', 'settle', 'round 2')",
    )
    .await;
    assert!(db3.store.audit_chain().await.unwrap().broken.is_some());

    // Rows from before the chain (as migration 0011 finds them) are
    // chained, in order, by the next entry.
    let db4 = engine.fresh().await;
    behind_the_back(
        &db4.url,
        "INSERT INTO audit_log (at, actor, action, subject) VALUES ('2026-11-01T15:00:00+00:00', 'old', 'open', 'round 1'); \
         INSERT INTO audit_log (at, actor, action, subject) VALUES ('2026-11-02T15:00:00+00:00', 'old', 'lock', 'round 1'); \
         UPDATE audit_head SET legacy_through = (SELECT MAX(id) FROM audit_log)",
    )
    .await;
    assert_eq!(db4.store.audit_chain().await.unwrap().broken, None);
    db4.store
        .record_audit(&AuditEntry {
            id: 0,
            at: now,
            actor: "new".into(),
            action: "settle".into(),
            subject: "round 1".into(),
            reason: None,
            credential: None,
            client: None,
            request_id: None,
            chain: None,
        })
        .await
        .unwrap();
    let chain = db4.store.audit_chain().await.unwrap();
    assert_eq!((chain.rows, chain.broken), (3, None));
    assert!(db4
        .store
        .audit_log(None, 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.chain.is_some()));
}

async fn operators_have_one_account_per_email_and_a_disabled_ones_tokens_stop(engine: Engine) {
    use updown_domain::operator::Role;
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let ann = email("Ann@Ops.example.com");
    // Every change carries its audit entry, written with it or not at all.
    let by = |what: &str| entry("root", what, format!("{what} done"), now);
    let added = store
        .create_operator(&ann, Role::Treasurer, "$argon2id$x", now, Some(&by("add")))
        .await
        .unwrap();
    assert_eq!((added.role, added.disabled_at), (Role::Treasurer, None));
    let twice = store
        .create_operator(&ann, Role::Viewer, "$argon2id$y", now, Some(&by("twice")))
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(store.count_admins().await.unwrap(), 0);
    let boss = email("boss@ops.example.com");
    store
        .create_operator(&boss, Role::Admin, "$argon2id$z", now, None)
        .await
        .unwrap();
    assert_eq!(store.count_admins().await.unwrap(), 1);

    let token_entry = |id: i64| entry("root", "token", format!("token {id}"), now);
    let token = store
        .create_operator_token(added.id, "laptop", "hash-1", now, Some(&token_entry))
        .await
        .unwrap();
    let (found, id) = store.operator_by_token("hash-1").await.unwrap().unwrap();
    assert_eq!((found.email.as_str(), id), ("ann@ops.example.com", token));
    assert!(store.operator_by_token("hash-2").await.unwrap().is_none());
    // The entry is made from the row as the store held it; the role it
    // has already changes and records nothing.
    let role_from = |before: &updown_store::Operator| {
        entry(
            "root",
            "role",
            format!("from {}", before.role.as_str()),
            now,
        )
    };
    let changed = store
        .set_operator_role(&ann, Role::Viewer, false, Some(&role_from))
        .await
        .unwrap();
    assert_eq!(changed.role, Role::Viewer);
    let same = store
        .set_operator_role(&ann, Role::Viewer, false, Some(&role_from))
        .await
        .unwrap();
    assert_eq!(same.role, Role::Viewer);
    let reset = store
        .set_operator_password(&ann, "$argon2id$new", now, Some(&by("password")))
        .await
        .unwrap();
    assert_eq!(reset.password_hash.as_deref(), Some("$argon2id$new"));

    // Disabled: the token stops, no new one is made, a second disable is
    // a conflict, an unknown email is not found.
    let disabled = store
        .disable_operator(&ann, now, false, Some(&by("disable")))
        .await
        .unwrap();
    assert_eq!(disabled.disabled_at, Some(now));
    assert!(store.operator_by_token("hash-1").await.unwrap().is_none());
    assert!(matches!(
        store
            .create_operator_token(added.id, "again", "hash-3", now, Some(&token_entry))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .disable_operator(&ann, now, false, Some(&by("again")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .disable_operator(&email("who@ops.example.com"), now, false, None)
            .await,
        Err(StoreError::NotFound(_))
    ));
    let all = store.operators().await.unwrap();
    assert_eq!(all.len(), 2);
    // Kept, the last enabled admin stays; from the host it can go.
    assert!(matches!(
        store
            .disable_operator(&boss, now, true, Some(&by("last admin")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .set_operator_role(
                &boss,
                Role::Viewer,
                true,
                Some(&|_: &updown_store::Operator| by("last role"))
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .disable_operator(&boss, now, false, None)
        .await
        .unwrap();
    assert_eq!(store.count_admins().await.unwrap(), 0);
    let done = |what: &str| (what.to_string(), format!("{what} done"));
    assert_eq!(
        audited(&store).await,
        [
            done("add"),
            ("token".into(), format!("token {token}")),
            ("role".into(), "from treasurer".into()),
            done("password"),
            done("disable"),
        ]
    );
}

async fn operator_sign_in_failures_lock_totp_steps_work_once_and_sessions_end(engine: Engine) {
    use updown_domain::operator::Role;
    let db = engine.fresh().await;
    let store = db.store.clone();
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let later = now + chrono::Duration::minutes(15);
    let ann = email("ann@ops.example.com");
    let id = store
        .create_operator(&ann, Role::Treasurer, "$argon2id$x", now, None)
        .await
        .unwrap()
        .id;
    let by = |what: &str| entry("ann", what, String::new(), now);

    // Four failures count; the fifth locks and starts the count again.
    for expected in 1..=4 {
        let counted = store
            .record_sign_in_failure(id, 5, later, Some(&by("locked")))
            .await
            .unwrap();
        assert_eq!(
            (counted.failed_sign_ins, counted.locked_until),
            (expected, None)
        );
    }
    let locked = store
        .record_sign_in_failure(id, 5, later, Some(&by("locked")))
        .await
        .unwrap();
    assert_eq!(
        (locked.failed_sign_ins, locked.locked_until),
        (0, Some(later))
    );
    store
        .record_sign_in_failure(id, 5, later, Some(&by("locked")))
        .await
        .unwrap();
    store.clear_sign_in_failures(id).await.unwrap();
    let cleared = store.operator_by_email(&ann).await.unwrap();
    assert_eq!(cleared.failed_sign_ins, 0);

    // TOTP: nothing to use before a secret is confirmed; the pending
    // secret becomes the operator's with its first step; each later step
    // works once, and never an older one.
    assert!(!store.use_totp_step(id, 100).await.unwrap());
    assert!(
        !store
            .confirm_totp(id, 100, Some(&by("nothing pending")))
            .await
            .unwrap(),
        "nothing pending"
    );
    store.set_totp_pending(id, "00ff").await.unwrap();
    assert!(store
        .confirm_totp(id, 100, Some(&by("totp on")))
        .await
        .unwrap());
    assert!(
        !store
            .confirm_totp(id, 101, Some(&by("twice")))
            .await
            .unwrap(),
        "confirmed once"
    );
    let set = store.operator_by_email(&ann).await.unwrap();
    assert_eq!(
        (
            set.totp_secret.as_deref(),
            set.totp_pending,
            set.totp_last_step
        ),
        (Some("00ff"), None, Some(100))
    );
    assert!(!store.use_totp_step(id, 100).await.unwrap(), "replayed");
    assert!(!store.use_totp_step(id, 99).await.unwrap(), "older");
    assert!(store.use_totp_step(id, 101).await.unwrap());

    // Sessions: found while open and unexpired; ended by sign-out, by a
    // password reset, by removing the second factor, and by disabling.
    let session = |hash: &'static str| {
        let store = store.clone();
        async move {
            store
                .create_operator_session(id, hash, now, later, Some(&|_| by("signed in")))
                .await
                .unwrap()
        }
    };
    let first = session("s1").await;
    let (found, session_id) = store.operator_by_session("s1", now).await.unwrap().unwrap();
    assert_eq!((found.id, session_id), (id, first));
    assert!(
        store
            .operator_by_session("s1", later)
            .await
            .unwrap()
            .is_none(),
        "expired"
    );
    store.end_operator_session("s1", now).await.unwrap();
    assert!(store
        .operator_by_session("s1", now)
        .await
        .unwrap()
        .is_none());
    session("s2").await;
    store
        .set_operator_password(&ann, "$argon2id$y", now, None)
        .await
        .unwrap();
    assert!(store
        .operator_by_session("s2", now)
        .await
        .unwrap()
        .is_none());
    session("s3").await;
    let cleared = store
        .clear_totp(&ann, now, Some(&by("totp reset")))
        .await
        .unwrap();
    assert_eq!((cleared.totp_secret, cleared.totp_last_step), (None, None));
    assert!(store
        .operator_by_session("s3", now)
        .await
        .unwrap()
        .is_none());
    session("s4").await;
    store
        .disable_operator(&ann, now, false, None)
        .await
        .unwrap();
    assert_eq!(
        audited(&store).await,
        [
            "locked",
            "totp on",
            "signed in",
            "signed in",
            "signed in",
            "totp reset",
            "signed in"
        ]
        .map(|what| (what.to_string(), String::new())),
        "one lock, and no entry for what was refused"
    );
    assert!(store
        .operator_by_session("s4", now)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store
            .create_operator_session(id, "s5", now, later, Some(&|_| by("s5")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.set_totp_pending(id, "00ff").await,
        Err(StoreError::Conflict(_))
    ));
}
