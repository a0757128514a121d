//! One story of the store, told against SQLite and PostgreSQL alike. Every
//! story that moves money ends with `verify` passing.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use updown_domain::admission::{BetRefusal, PlayerLimits};
use updown_domain::calendar::Calendar;
use updown_domain::ids::{Email, Market, RoundCode};
use updown_domain::payout::settle;
use updown_domain::round::{Outcome, RoundError, RoundStatus, RoundTerms, Side, TiePolicy};
use updown_domain::schedule::{round_schedule, ScheduleConfig};
use updown_domain::{Micros, UserId};
use updown_store::*;

macro_rules! on_both_backends {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let db = updown_store::testing::sqlite().await;
                    super::$story(db.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let Some(url) = updown_store::testing::postgres_url(stringify!($story)) else { return };
                    let db = updown_store::testing::postgres(&url, 16).await;
                    super::$story(db.store.clone()).await;
                }
            )*
        }
    };
}

on_both_backends!(
    a_round_from_deposits_to_settlement_keeps_every_invariant,
    settlement_interrupted_after_some_chunks_resumes_and_pays_everyone_once,
    sixty_four_concurrent_bets_over_a_balance_for_ten_accept_exactly_ten,
    player_limits_and_self_exclusion_refuse_bets,
    migrations_run_twice_without_harm,
    idempotency_keys_claim_replay_refuse_and_expire,
    withdrawals_confirm_or_fail_and_the_statement_tells_each_step,
    sessions_expire_end_and_are_not_api_keys,
    only_one_process_at_a_time_holds_the_scheduler_lease,
    concurrent_withdrawals_keep_under_the_cap_and_notifications_are_kept,
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
    }
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
    }
}

async fn a_round_from_deposits_to_settlement_keeps_every_invariant(store: Arc<dyn Store>) {
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
        })
        .await;
    assert!(
        matches!(duplicate, Err(StoreError::Conflict(_))),
        "{duplicate:?}"
    );
    assert_eq!(store.balance(a).await.unwrap(), m(100));

    let (round, created) = store
        .open_round(&NewRound {
            terms: t.clone(),
            now,
        })
        .await
        .unwrap();
    assert!(created);
    assert_eq!(round.terms_digest, t.digest());
    let (again, created_again) = store
        .open_round(&NewRound {
            terms: t.clone(),
            now,
        })
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
        store.cancel_bet(down_bet, Some(b), now, cutoff).await,
        Err(StoreError::NotFound(_))
    ));
    store
        .cancel_bet(down_bet, Some(a), now, cutoff)
        .await
        .unwrap();
    assert!(matches!(
        store.cancel_bet(down_bet, Some(a), now, cutoff).await,
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

    let locked = store.lock_round(round.id, t.lock_at).await.unwrap();
    assert_eq!(locked.status, RoundStatus::Locked);
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

async fn settlement_interrupted_after_some_chunks_resumes_and_pays_everyone_once(
    store: Arc<dyn Store>,
) {
    let t = terms("20261125");
    let now = t.open_at + Duration::minutes(5);
    let mut users = Vec::new();
    for i in 0..12 {
        users.push(funded_user(&store, &format!("p{i}"), 1_000_000, now).await);
    }
    let (round, _) = store
        .open_round(&NewRound {
            terms: t.clone(),
            now,
        })
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
    store.lock_round(round.id, t.lock_at).await.unwrap();

    let start = SettlementStart {
        outcome: Outcome::Down,
        evidence: Evidence::default(),
        actor: "test".into(),
        reason: None,
        now: t.settle_at,
    };
    store.begin_settlement(round.id, &start).await.unwrap();
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

async fn sixty_four_concurrent_bets_over_a_balance_for_ten_accept_exactly_ten(
    store: Arc<dyn Store>,
) {
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(2);
    let user = funded_user(&store, "racer", 10 * 1_000, now).await;
    let (round, _) = store.open_round(&NewRound { terms: t, now }).await.unwrap();
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

async fn player_limits_and_self_exclusion_refuse_bets(store: Arc<dyn Store>) {
    let t = terms("20261124");
    let now = t.open_at + Duration::hours(3);
    let user = funded_user(&store, "careful", 1_000_000, now).await;
    let (round, _) = store.open_round(&NewRound { terms: t, now }).await.unwrap();
    let limits = PlayerLimits {
        max_stake_per_round: Some(m(500)),
        max_stake_per_day: Some(m(10_000)),
        excluded_until: None,
    };
    assert_eq!(store.set_limits(user, limits).await.unwrap().limits, limits);
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
    store.set_limits(user, excluded).await.unwrap();
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

async fn migrations_run_twice_without_harm(store: Arc<dyn Store>) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    assert_verified(&store).await;
}

async fn idempotency_keys_claim_replay_refuse_and_expire(store: Arc<dyn Store>) {
    let now = DateTime::parse_from_rfc3339("2026-11-24T15:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let (expired, stale) = (now - Duration::hours(24), now - Duration::minutes(1));
    let claim = |hash: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key(
                    "caller",
                    "k1",
                    hash,
                    at,
                    at - Duration::hours(24),
                    at - Duration::minutes(1),
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("h1", now).await, Idempotency::New);
    assert_eq!(claim("h1", now).await, Idempotency::InProgress);
    assert_eq!(claim("h2", now).await, Idempotency::Mismatch);
    store
        .complete_idempotency_key("caller", "k1", 201, "{\"id\":1}", now)
        .await
        .unwrap();
    assert_eq!(
        claim("h1", now).await,
        Idempotency::Replay {
            status: 201,
            body: "{\"id\":1}".into()
        }
    );
    // Another caller's key of the same name is theirs alone.
    let other = store
        .claim_idempotency_key("someone else", "k1", "h9", now, expired, stale)
        .await
        .unwrap();
    assert_eq!(other, Idempotency::New);
    // After 24 hours the key is free again.
    assert_eq!(
        claim("h2", now + Duration::hours(25)).await,
        Idempotency::New
    );
    // A claim left running by a crash is taken over after a minute; a
    // released one at once.
    assert_eq!(
        store
            .claim_idempotency_key("caller", "k2", "h", now, expired, stale)
            .await
            .unwrap(),
        Idempotency::New
    );
    let later = now + Duration::minutes(2);
    assert_eq!(
        store
            .claim_idempotency_key(
                "caller",
                "k2",
                "h",
                later,
                later - Duration::hours(24),
                later - Duration::minutes(1)
            )
            .await
            .unwrap(),
        Idempotency::New
    );
    store.release_idempotency_key("caller", "k2").await.unwrap();
    assert_eq!(
        store
            .claim_idempotency_key("caller", "k2", "h", later, expired, stale)
            .await
            .unwrap(),
        Idempotency::New
    );
}

async fn withdrawals_confirm_or_fail_and_the_statement_tells_each_step(store: Arc<dyn Store>) {
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "wd", 1_000, now).await;
    let request = |amount| NewWithdrawal {
        user: a,
        amount: m(amount),
        address: "0x52908400098527886E0F7030069857D2E4169EE7".into(),
        now,
        cap: None,
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
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("gas"));
    let late = store
        .change_withdrawal(
            sent.id,
            &WithdrawalChange::Fail {
                reason: "late".into(),
            },
            now,
        )
        .await;
    assert!(
        matches!(late, Err(StoreError::Conflict(_))),
        "a confirmed withdrawal cannot fail"
    );
    let missing = store
        .change_withdrawal(
            updown_domain::ids::WithdrawalId(999_999),
            &WithdrawalChange::Fail { reason: "x".into() },
            now,
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

async fn sessions_expire_end_and_are_not_api_keys(store: Arc<dyn Store>) {
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

async fn only_one_process_at_a_time_holds_the_scheduler_lease(store: Arc<dyn Store>) {
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

async fn concurrent_withdrawals_keep_under_the_cap_and_notifications_are_kept(
    store: Arc<dyn Store>,
) {
    let now: DateTime<Utc> = "2026-11-23T15:00:00Z".parse().unwrap();
    let a = funded_user(&store, "cap", 1_000, now).await;
    let cap = WithdrawalCap {
        max: m(100),
        after: now - chrono::Duration::hours(24),
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
        })
        .await
        .unwrap();
    let found = store.deposit_by_transfer("0xnotified", 3).await.unwrap();
    assert_eq!(found, Some(credited));
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
    let kept = store.deposit_notifications(10).await.unwrap();
    assert_eq!(kept.len(), 2);
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
