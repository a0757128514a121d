//! Two people for large outflows and results by hand: a withdrawal over
//! WITHDRAWAL_APPROVAL_OVER waits for two treasurers before the worker may
//! claim it; a settlement by hand waits for a second operator. Nobody
//! approves twice or their own request; a disabled operator's vote stops
//! counting; of two approvals racing, one decides.

use axum::http::StatusCode;
use serde_json::{json, Value};
use updown_app::clock::Clock;
use updown_app::services::{SettleOptions, SettleRequest};
use updown_domain::operator::Role;

use crate::support::{at, call, Db, TestApp};
use crate::{sign_up, simulate_deposit, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    a_large_withdrawal_waits_for_two_treasurers_before_the_worker_may_send_it,
    a_result_by_hand_waits_for_a_second_operator_and_names_both,
    a_result_by_hand_and_the_oracles_never_cross,
);

const TO: &str = "0x52908400098527886e0f7030069857d2e4169ee7";

/// Operators by role, each with a token: (email, token).
async fn staff(t: &TestApp, people: &[(&str, Role)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, role) in people {
        let email = format!("{name}@ops.example.com");
        t.app.add_operator(&email, *role, "test").await.unwrap();
        let (_, token) = t
            .app
            .new_operator_token(&email, "test", "test")
            .await
            .unwrap();
        out.push((email, token));
    }
    out
}

async fn post(t: &TestApp, uri: &str, body: &str, token: &str) -> (StatusCode, Value) {
    call(t.address, "POST", uri, Some(body), Some(token)).await
}

/// Bets on round `code`, locks it and asks `by` to void it: the waiting
/// approval (202).
async fn void_asked_with_a_bet(t: &TestApp, code: &str, player: &str, by: &str) -> Value {
    let bet = format!(r#"{{"side": "UP", "amount": 1000000, "round": "{code}"}}"#);
    let (status, placed) = call(t.address, "POST", "/bets", Some(&bet), Some(player)).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    let lock = format!("/admin/rounds/{code}/lock");
    post(t, &lock, r#"{"reason": "halt"}"#, by).await;
    let void = format!("/admin/rounds/{code}/void");
    let (status, asked) = post(t, &void, r#"{"reason": "exchange halted"}"#, by).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    asked
}

/// `email`'s yes to approval `asked`, committed as the store records a
/// vote, and nothing after it: as if their process died before carrying
/// the approval out.
async fn yes_not_carried_out(t: &TestApp, asked: &Value, email: &str) {
    let operator = t
        .app
        .operators()
        .await
        .unwrap()
        .iter()
        .find(|o| o.email.as_str() == email)
        .unwrap()
        .id;
    // The store writes the vote's entry in the vote's transaction.
    let entry = |decided: &updown_store::Approval, _: Option<&updown_store::Withdrawal>| {
        vec![updown_store::AuditEntry {
            id: 0,
            at: t.clock.now(),
            actor: email.to_string(),
            action: "approval_approve".into(),
            subject: format!("approval {} ({})", decided.id, decided.state.as_str()),
            reason: None,
            credential: None,
            client: None,
            request_id: None,
            chain: None,
        }]
    };
    let decided = t
        .store()
        .vote(
            &updown_store::Vote {
                approval: asked["id"].as_i64().unwrap(),
                operator,
                approve: true,
                reason: None,
                now: t.clock.now(),
            },
            &entry,
        )
        .await
        .unwrap();
    let last = &t.app.audit_log(None, 1).await.unwrap()[0];
    assert_eq!(
        (last.actor.as_str(), last.subject.clone()),
        (email, format!("approval {} (approved)", decided.id))
    );
}

async fn pending(t: &TestApp) -> Vec<Value> {
    let (status, list) = call(
        t.address,
        "GET",
        "/admin/approvals?state=pending",
        None,
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    list.as_array().unwrap().clone()
}

async fn withdrawal(t: &TestApp, id: &Value) -> Value {
    let (_, all) = call(t.address, "GET", "/admin/withdrawals", None, Some(ADMIN)).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == *id)
        .unwrap()
        .clone()
}

async fn a_large_withdrawal_waits_for_two_treasurers_before_the_worker_may_send_it(db: Db) {
    let t = TestApp::spawn(
        db,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("CHAIN_SENDER", "mock"),
            ("WITHDRAWAL_APPROVAL_OVER", "100USDC"),
        ],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    let people = staff(
        &t,
        &[
            ("ana", Role::Treasurer),
            ("ben", Role::Treasurer),
            ("cy", Role::Treasurer),
            ("dee", Role::Treasurer),
            ("oli", Role::Operator),
            ("vic", Role::Viewer),
        ],
    )
    .await;
    let [ana, ben, cy, dee, oli, vic] = &people[..] else {
        unreachable!()
    };
    let fay = sign_up(&t, "fay").await;
    simulate_deposit(&t, "fay", 1_000_000_000).await;
    let ask = |amount: i64| json!({ "amount": amount, "address": TO }).to_string();

    // 100 USDC is not over the line; 300 and 200 are.
    let (_, small) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&ask(100_000_000)),
        Some(&fay),
    )
    .await;
    let (status, large) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&ask(300_000_000)),
        Some(&fay),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{large}");
    assert_eq!(
        (
            small["awaiting_approval"].as_bool(),
            large["awaiting_approval"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(large["status"], "QUEUED");
    let (_, refused) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&ask(200_000_000)),
        Some(&fay),
    )
    .await;

    // Nothing sends it meanwhile: not the worker, not a hand.
    let tick = t.app.withdrawal_step().await.unwrap();
    assert_eq!(
        tick.submitted,
        vec![small["id"].as_i64().unwrap()],
        "{tick:?}"
    );
    let submit = format!("/admin/withdrawals/{}/submit", large["id"]);
    let (status, answer) = post(&t, &submit, "{}", &ana.1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");

    let queue = pending(&t).await;
    assert_eq!(queue.len(), 2);
    let approval = queue
        .iter()
        .find(|a| a["subject"].as_str() == Some(&large["id"].to_string()))
        .unwrap();
    assert_eq!(
        (approval["kind"].as_str(), approval["needed"].as_i64()),
        (Some("withdrawal"), Some(2))
    );
    let approve = format!("/admin/approvals/{}/approve", approval["id"]);
    let yes = r#"{"reason": "known customer"}"#;

    // Not an operator's (rounds) or a viewer's to decide.
    assert_eq!(
        post(&t, &approve, yes, &oli.1).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&t, &approve, yes, &vic.1).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(&t, &approve, yes, ADMIN).await.0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "break-glass has no vote"
    );

    // A treasurer who is also the player: not theirs to approve.
    let own = staff(&t, &[("fay-at-work", Role::Treasurer)]).await;
    t.app
        .add_operator("fay@example.com", Role::Treasurer, "test")
        .await
        .unwrap();
    let (_, fay_staff) = t
        .app
        .new_operator_token("fay@example.com", "test", "test")
        .await
        .unwrap();
    let (status, answer) = post(&t, &approve, yes, &fay_staff).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("the player"));
    // Nor does a treasurer's yes count once they are moved to another role.
    let (status, _) = post(&t, &approve, yes, &own[0].1).await;
    assert_eq!(status, StatusCode::OK);
    t.app
        .set_operator_role(&own[0].0, Role::Viewer, "test", "moved")
        .await
        .unwrap();

    // Ana says yes, and cannot again; then she is disabled: her token
    // stops, and her yes no longer counts.
    let (status, first) = post(&t, &approve, yes, &ana.1).await;
    assert_eq!(
        (status, first["approval"]["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{first}"
    );
    let (status, twice) = post(&t, &approve, yes, &ana.1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{twice}");
    t.app
        .disable_operator(&ana.0, "test", "left")
        .await
        .unwrap();
    assert_eq!(
        post(&t, &approve, yes, &ana.1).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, second) = post(&t, &approve, yes, &ben.1).await;
    assert_eq!(
        (status, second["approval"]["state"].as_str()),
        (StatusCode::OK, Some("pending")),
        "{second}"
    );
    assert_eq!(
        withdrawal(&t, &large["id"]).await["awaiting_approval"],
        true
    );

    // Cy and Dee say yes at once: one decides, the other finds it decided.
    let (a, b) = tokio::join!(
        post(&t, &approve, yes, &cy.1),
        post(&t, &approve, yes, &dee.1)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let decided = if a.0 == StatusCode::OK { a.1 } else { b.1 };
    assert_eq!(decided["approval"]["state"], "approved");
    // Four yeses, two of which no longer count: Ana's (disabled) and the
    // one moved to viewer.
    assert_eq!(decided["approval"]["votes"].as_array().unwrap().len(), 4);

    // Released: the worker claims and sends it once.
    let tick = t.app.withdrawal_step().await.unwrap();
    assert_eq!(
        tick.submitted,
        vec![large["id"].as_i64().unwrap()],
        "{tick:?}"
    );
    assert!(t.app.withdrawal_step().await.unwrap().submitted.is_empty());

    // The other one: a no needs a reason, fails it, and returns the funds.
    let other = pending(&t).await;
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["subject"], refused["id"].to_string());
    let reject = format!("/admin/approvals/{}/reject", other[0]["id"]);
    let (_, before) = call(t.address, "GET", "/me", None, Some(&fay)).await;
    assert_eq!(
        post(&t, &reject, "{}", &ben.1).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, rejected) = post(
        &t,
        &reject,
        r#"{"reason": "address on a sanctions list"}"#,
        &ben.1,
    )
    .await;
    assert_eq!(
        (status, rejected["approval"]["state"].as_str()),
        (StatusCode::OK, Some("rejected")),
        "{rejected}"
    );
    let failed = withdrawal(&t, &refused["id"]).await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(
        failed["failure_reason"],
        "rejected by ben@ops.example.com: address on a sanctions list"
    );
    let (_, after) = call(t.address, "GET", "/me", None, Some(&fay)).await;
    assert_eq!(
        after["available"].as_i64().unwrap(),
        before["available"].as_i64().unwrap() + 200_000_000
    );
    assert_eq!(
        post(&t, &approve, yes, &ben.1).await.0,
        StatusCode::CONFLICT,
        "decided"
    );

    // A held withdrawal failed by hand ends its approval too.
    let (_, third) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&ask(150_000_000)),
        Some(&fay),
    )
    .await;
    let fail = format!("/admin/withdrawals/{}/fail", third["id"]);
    let (status, answer) = post(&t, &fail, r#"{"reason": "customer asked"}"#, &ben.1).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(pending(&t).await.is_empty());

    // The line counts the last 24 hours, not one withdrawal alone: after
    // 400 USDC sent today, even 1 USDC waits.
    let (status, tiny) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&ask(1_000_000)),
        Some(&fay),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{tiny}");
    assert_eq!(tiny["awaiting_approval"], true);
    t.advance(chrono::Duration::hours(25));
    let (_, later) = call(
        t.address,
        "POST",
        "/withdrawals",
        Some(&ask(1_000_000)),
        Some(&fay),
    )
    .await;
    assert_eq!(later["awaiting_approval"], false, "a day later: {later}");

    let log = t.app.audit_log(None, 100).await.unwrap();
    assert!(log.iter().any(|e| e.action == "approval_reject"
        && e.actor == ben.0
        && e.reason.as_deref() == Some("address on a sanctions list")));
    // What each decision did to its withdrawal, audited with the vote.
    assert!(log.iter().any(|e| e.action == "withdrawal_failed"
        && e.actor == ben.0
        && e.subject == format!("withdrawal {}", refused["id"])
        && e.reason.as_deref().is_some_and(|r| r.contains("sanctions"))));
    assert!(log.iter().any(|e| e.action == "withdrawal_queued"
        && (e.actor == cy.0 || e.actor == dee.0)
        && e.subject == format!("withdrawal {}", large["id"])));
    t.assert_verified().await;
}

async fn a_result_by_hand_waits_for_a_second_operator_and_names_both(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let people = staff(
        &t,
        &[
            ("oli", Role::Operator),
            ("pat", Role::Operator),
            ("quin", Role::Operator),
            ("tess", Role::Treasurer),
        ],
    )
    .await;
    let [oli, pat, quin, tess] = &people[..] else {
        unreachable!()
    };
    t.open("20261124").await;
    let ann = sign_up(&t, "ann").await;
    simulate_deposit(&t, "ann", 10_000_000).await;
    call(
        t.address,
        "POST",
        "/bets",
        Some(r#"{"side": "UP", "amount": 4000000}"#),
        Some(&ann),
    )
    .await;
    t.advance(chrono::Duration::hours(6));

    let settle = "/admin/rounds/20261124/settle";
    let (status, asked) = post(
        &t,
        settle,
        r#"{"result": "UP", "reason": "feed down; exchange says up"}"#,
        &oli.1,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    assert_eq!(
        (
            asked["kind"].as_str(),
            asked["action"].as_str(),
            asked["requested_by"].as_str()
        ),
        (Some("settlement"), Some("UP"), Some(oli.0.as_str()))
    );
    let (status, again) = post(
        &t,
        settle,
        r#"{"result": "DOWN", "reason": "changed my mind"}"#,
        &pat.1,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one request at a time: {again}"
    );
    let (_, round) = call(t.address, "GET", "/rounds/20261124", None, None).await;
    assert_eq!(round["status"], "LOCKED", "nothing is settled yet");

    let approve = format!("/admin/approvals/{}/approve", asked["id"]);
    assert_eq!(
        post(&t, &approve, "{}", &oli.1).await.0,
        StatusCode::CONFLICT,
        "not their own"
    );
    assert_eq!(
        post(&t, &approve, "{}", &tess.1).await.0,
        StatusCode::FORBIDDEN,
        "not a treasurer's"
    );

    // Pat and Quin approve at once: one carries it out, once.
    let (a, b) = tokio::join!(
        post(&t, &approve, "{}", &pat.1),
        post(&t, &approve, "{}", &quin.1)
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let (winner, decided) = if a.0 == StatusCode::OK {
        (pat, a.1)
    } else {
        (quin, b.1)
    };
    assert_eq!(decided["round"]["status"], "SETTLED", "{decided}");
    let by = format!("{}, approved by {}", oli.0, winner.0);
    let (_, round) = call(t.address, "GET", "/rounds/20261124", None, None).await;
    assert_eq!(
        (round["result"].as_str(), round["settled_by"].as_str()),
        (Some("UP"), Some(by.as_str()))
    );
    assert_eq!(round["settle_reason"], "feed down; exchange says up");
    let log = t.app.audit_log(None, 50).await.unwrap();
    assert_eq!(log.iter().filter(|e| e.action == "settle_up").count(), 1);

    // Approved, and the approver's process dies before carrying it out
    // (the vote committed, nothing else): the scheduler carries it out.
    let (status, _) = post(
        &t,
        "/admin/rounds",
        r#"{"reason": "next", "code": "20261125"}"#,
        &oli.1,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let asked = void_asked_with_a_bet(&t, "20261125", &ann, &oli.1).await;
    yes_not_carried_out(&t, &asked, &pat.0).await;
    let (_, round) = call(t.address, "GET", "/rounds/20261125", None, None).await;
    assert_eq!(round["status"], "LOCKED");
    let tick = t.app.scheduler_step().await.unwrap();
    assert_eq!(tick.settled, vec!["20261125".to_string()], "{tick:?}");
    let (_, round) = call(t.address, "GET", "/rounds/20261125", None, None).await;
    let by = format!("{}, approved by {}", oli.0, pat.0);
    assert_eq!(
        (round["status"].as_str(), round["settled_by"].as_str()),
        (Some("VOID"), Some(by.as_str()))
    );

    // VOID of a round nobody bet on needs nobody else.
    let (status, next) = post(
        &t,
        "/admin/rounds",
        r#"{"reason": "next", "code": "20261127"}"#,
        &oli.1,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{next}");
    let (status, locked) = post(
        &t,
        "/admin/rounds/20261127/lock",
        r#"{"reason": "halt"}"#,
        &oli.1,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{locked}");
    let (status, voided) = post(
        &t,
        "/admin/rounds/20261127/void",
        r#"{"reason": "halt"}"#,
        &oli.1,
    )
    .await;
    assert_eq!(
        (status, voided["status"].as_str()),
        (StatusCode::OK, Some("VOID")),
        "{voided}"
    );

    // A request still waiting when the round settles from the oracle has
    // nothing left to decide: it is closed, and approving it is refused.
    let (status, _) = post(
        &t,
        "/admin/rounds",
        r#"{"reason": "later", "code": "20261130"}"#,
        &oli.1,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let round = t
        .app
        .round(updown_domain::RoundCode::parse("20261130").unwrap())
        .await
        .unwrap();
    t.clock
        .set(round.terms.open_at + chrono::Duration::seconds(1));
    let asked = void_asked_with_a_bet(&t, "20261130", &ann, &oli.1).await;
    let round = t
        .app
        .round(updown_domain::RoundCode::parse("20261130").unwrap())
        .await
        .unwrap();
    t.clock.set(round.terms.settle_at);
    let tick = t.app.scheduler_step().await.unwrap();
    assert!(tick.settled.contains(&"20261130".to_string()), "{tick:?}");
    let approve = format!("/admin/approvals/{}/approve", asked["id"]);
    let (status, answer) = post(&t, &approve, "{}", &pat.1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (_, closed) = call(
        t.address,
        "GET",
        "/admin/approvals?state=rejected",
        None,
        Some(ADMIN),
    )
    .await;
    assert!(
        closed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == asked["id"]),
        "{closed}"
    );
    t.assert_verified().await;
}

/// The oracle's settlement and a result by hand never both decide a
/// round: once the oracle's has begun, a waiting request is closed and
/// approving it is refused (not approved and left undone); once one is
/// approved, the oracle's does not begin, and the scheduler carries out
/// the approved one.
async fn a_result_by_hand_and_the_oracles_never_cross(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let people = staff(
        &t,
        &[
            ("oli", Role::Operator),
            ("pat", Role::Operator),
            ("quin", Role::Operator),
        ],
    )
    .await;
    let [oli, pat, quin] = &people[..] else {
        unreachable!()
    };
    let ann = sign_up(&t, "ann").await;
    simulate_deposit(&t, "ann", 10_000_000).await;
    let code = |text: &str| updown_domain::RoundCode::parse(text).unwrap();
    let approvals = |state: &'static str| {
        let t = &t;
        async move {
            let uri = format!("/admin/approvals?state={state}");
            let (_, list) = call(t.address, "GET", &uri, None, Some(ADMIN)).await;
            list.as_array().unwrap().clone()
        }
    };

    // The oracle's settlement begins (its process dies before paying a
    // chunk) while oli's VOID waits.
    t.open("20261124").await;
    let asked = void_asked_with_a_bet(&t, "20261124", &ann, &oli.1).await;
    let round = t.app.round(code("20261124")).await.unwrap();
    t.clock.set(round.terms.settle_at);
    let crashed = t
        .app
        .settle_round_with(
            code("20261124"),
            SettleRequest::Auto,
            SettleOptions {
                on_progress: None,
                fail_after_chunks: Some(0),
            },
        )
        .await;
    assert!(crashed.is_err());
    let begun = t.app.round(code("20261124")).await.unwrap();
    let oracles = begun.settlement.as_ref().expect("begun").plan.outcome;
    assert_ne!(oracles, updown_domain::round::Outcome::Void);
    let approve = format!("/admin/approvals/{}/approve", asked["id"]);
    let (status, answer) = post(&t, &approve, "{}", &pat.1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        approvals("approved").await.is_empty(),
        "nothing approved and left undone"
    );
    assert!(approvals("rejected")
        .await
        .iter()
        .any(|a| a["id"] == asked["id"]));
    let tick = t.app.scheduler_step().await.unwrap();
    assert!(tick.settled.contains(&"20261124".to_string()), "{tick:?}");
    let settled = t.app.round(code("20261124")).await.unwrap();
    assert_eq!(settled.settlement.unwrap().plan.outcome, oracles);

    // Pat's yes committed and the process died before carrying it out:
    // the oracle's result does not begin over it.
    let round = t.open("20261125").await;
    t.clock
        .set(round.terms.open_at + chrono::Duration::seconds(1));
    let asked = void_asked_with_a_bet(&t, "20261125", &ann, &oli.1).await;
    yes_not_carried_out(&t, &asked, &pat.0).await;
    t.clock.set(round.terms.settle_at);
    // Another result by hand may be asked, but not approved over it.
    let (status, other) = post(
        &t,
        "/admin/rounds/20261125/settle",
        r#"{"result": "DOWN", "reason": "the exchange says down"}"#,
        &quin.1,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    let approve_other = format!("/admin/approvals/{}/approve", other["id"]);
    let (status, answer) = post(&t, &approve_other, "{}", &oli.1).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let refused = t
        .app
        .settle_round(code("20261125"), SettleRequest::Auto)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("approval"), "{refused}");
    assert!(t
        .app
        .round(code("20261125"))
        .await
        .unwrap()
        .settlement
        .is_none());
    let tick = t.app.scheduler_step().await.unwrap();
    assert!(tick.settled.contains(&"20261125".to_string()), "{tick:?}");
    let voided = t.app.round(code("20261125")).await.unwrap();
    assert_eq!(voided.status, updown_domain::round::RoundStatus::Void);
    assert!(voided.settlement.unwrap().actor.contains("approved by"));
    t.assert_verified().await;
}
