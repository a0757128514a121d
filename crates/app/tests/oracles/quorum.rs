//! A quorum of three sources settling rounds end to end: they agree and
//! the round settles with each answer kept as its proof; one is wrong and
//! is outvoted (quorum 2) or holds the round until it voids (quorum 3),
//! reported to the operators; all are down until the void instant; a
//! close revised after settlement is reported and changes nothing; the
//! dispute window holds payouts, and a void inside it refunds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use updown_app::events::EventKind;
use updown_app::oracle::{Oracle, OracleError, QuorumOracle};
use updown_app::services::{SettleRequest, Tick};
use updown_domain::ids::{Market, UserId};
use updown_domain::round::{Outcome, Price, RoundStatus, Side};
use updown_store::IncidentKind;

use crate::support::{at, usdc, Db, TestApp};
use crate::{CODE, MORNING};

const ADMIN: &str = "admin-token-for-quorum-tests-0123";

/// A source whose answer for each date the test sets: a close, none yet
/// (unset), or a failure.
struct Scripted {
    name: &'static str,
    answers: Mutex<HashMap<NaiveDate, Result<&'static str, String>>>,
}

impl Scripted {
    fn set(&self, date: NaiveDate, answer: Result<&'static str, &str>) {
        self.answers
            .lock()
            .unwrap()
            .insert(date, answer.map_err(str::to_string));
    }
}

#[async_trait]
impl Oracle for Scripted {
    fn name(&self) -> String {
        self.name.to_string()
    }

    async fn close(&self, _market: &Market, date: NaiveDate) -> Result<Option<Price>, OracleError> {
        match self.answers.lock().unwrap().get(&date) {
            None => Ok(None),
            Some(Ok(close)) => Ok(Some(Price::parse(close).unwrap())),
            Some(Err(why)) => Err(OracleError::Source(why.clone())),
        }
    }
}

fn today() -> NaiveDate {
    "2026-11-24".parse().unwrap()
}

fn previous() -> NaiveDate {
    "2026-11-23".parse().unwrap()
}

/// Three sources, all giving `closes` for today and 19000 for the
/// previous session.
fn sources(closes: [&'static str; 3]) -> [Arc<Scripted>; 3] {
    let names = ["alpha:stub", "beta:stub", "gamma:stub"];
    let sources = names.map(|name| {
        Arc::new(Scripted {
            name,
            answers: Mutex::default(),
        })
    });
    for (source, close) in sources.iter().zip(closes) {
        source.set(today(), Ok(close));
        source.set(previous(), Ok("19000"));
    }
    sources
}

/// The service on `db` with a quorum of `sources` (spread 10 bps), its
/// round open, and ann UP 4 and bob DOWN 6 from 10 USDC each.
async fn round_with_bets(
    db: Db,
    sources: &[Arc<Scripted>; 3],
    quorum: usize,
) -> (TestApp, UserId, UserId) {
    round_with_bets_and(db, sources, quorum, &[]).await
}

/// [`round_with_bets`], with more settings.
async fn round_with_bets_and(
    db: Db,
    sources: &[Arc<Scripted>; 3],
    quorum: usize,
    overrides: &[(&str, &str)],
) -> (TestApp, UserId, UserId) {
    let sources: Vec<Arc<dyn Oracle>> = sources
        .iter()
        .map(|s| s.clone() as Arc<dyn Oracle>)
        .collect();
    let mut settings = vec![("ADMIN_TOKEN", ADMIN)];
    settings.extend_from_slice(overrides);
    let t = TestApp::spawn_with_timed_oracle(db, &settings, at(MORNING), |clock| {
        Arc::new(QuorumOracle::new(sources, quorum, 10).with_clock(clock))
    })
    .await;
    assert_eq!(t.app.scheduler_step().await.unwrap().opened, [CODE]);
    let ann = t.funded("ann", usdc(10)).await;
    let bob = t.funded("bob", usdc(10)).await;
    t.app
        .place_bet(ann, Side::Up, usdc(4), None, None)
        .await
        .unwrap();
    t.app
        .place_bet(bob, Side::Down, usdc(6), None, None)
        .await
        .unwrap();
    (t, ann, bob)
}

/// The scheduler's step at `instant`.
async fn step_at(t: &TestApp, instant: chrono::DateTime<chrono::Utc>) -> Tick {
    t.clock.set(instant);
    t.app.scheduler_step().await.unwrap()
}

/// A counter's value in this process's metrics (0 before it exists).
fn counter(name: &str) -> u64 {
    let text = updown_app::metrics::handle().render();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map_or(0, |count| count.trim().parse::<u64>().unwrap())
}

/// `GET path` as JSON, with the admin token.
async fn get(t: &TestApp, path: &str) -> serde_json::Value {
    updown_app::tls::install_crypto();
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", t.address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

pub async fn three_sources_that_agree_settle_and_each_answer_is_shown(db: Db) {
    let sources = sources(["20000.00", "20000.50", "19999.90"]);
    let (t, ann, bob) = round_with_bets(db, &sources, 2).await;
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(step_at(&t, round.terms.settle_at).await.settled, [CODE]);

    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(round.status, RoundStatus::Settled);
    assert!(t.app.balance(ann).await.unwrap() > usdc(10), "UP won");
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(4));

    // The proof, through the API: every source, its exact close, when it
    // answered (the service's clock), and that all three agreed.
    let view = get(&t, &format!("/rounds/{CODE}")).await;
    let close = &view["close"];
    assert_eq!(close["close"], "20000", "the median");
    let answered: Vec<(&str, &str, bool)> = close["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert_eq!(s["answered_at"], close["fetched_at"]);
            assert!(s["error"].is_null());
            (
                s["source"].as_str().unwrap(),
                s["close"].as_str().unwrap(),
                s["agreed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        answered,
        [
            ("alpha:stub", "20000", true),
            ("beta:stub", "20000.5", true),
            ("gamma:stub", "19999.9", true)
        ]
    );
    assert_eq!(
        view["previous_close"]["sources"].as_array().unwrap().len(),
        3
    );

    // The terms name the sources and the rule, and the digest covers them
    // as the README says (recomputed here from the JSON alone).
    assert_eq!(
        view["oracle"],
        "quorum(2 of alpha:stub, beta:stub, gamma:stub) within 10 bps"
    );
    let second = |field: &str| {
        let text = view[field].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    assert_eq!(view["dispute_min"], 0, "paid at once");
    let mut text = "updown-round-terms-v3\n".to_string();
    for field in ["market", "code", "previous_session"] {
        text.push_str(&format!("{field}={}\n", view[field].as_str().unwrap()));
    }
    for field in ["open_at", "lock_at", "close_at", "settle_at", "void_at"] {
        text.push_str(&format!("{field}={}\n", second(field)));
    }
    text.push_str(&format!(
        "fee_bps={}\ntie_policy={}\noracle={}\ndispute_min={}\n",
        view["fee_bps"],
        view["tie_policy"].as_str().unwrap(),
        view["oracle"].as_str().unwrap(),
        view["dispute_min"]
    ));
    use sha2::Digest as _;
    assert_eq!(
        view["terms_digest"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(text.as_bytes()))
    );
    // Lists leave the proof out.
    let list = get(&t, "/rounds?limit=5").await;
    assert!(list[0]["close"].get("sources").is_none(), "{list}");
    t.assert_verified().await;
}

pub async fn a_wrong_source_is_outvoted_by_a_quorum_of_two(db: Db) {
    let sources = sources(["20000", "20001", "21000"]);
    let (t, ann, _) = round_with_bets(db, &sources, 2).await;
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(step_at(&t, round.terms.settle_at).await.settled, [CODE]);
    assert!(t.app.balance(ann).await.unwrap() > usdc(10), "UP won");

    let round = t.app.round(crate::code()).await.unwrap();
    let view = t.app.round_view_with_proof(&round).await.unwrap();
    let close = view.close.unwrap();
    assert_eq!(close.close, "20001", "the median of the three");
    assert!(
        close
            .source
            .starts_with("quorum 2/3: alpha:stub, beta:stub"),
        "{}",
        close.source
    );
    let agreed: Vec<(String, bool)> = close
        .sources
        .unwrap()
        .iter()
        .map(|s| (s.close.clone().unwrap(), s.agreed))
        .collect();
    assert_eq!(
        agreed,
        [
            ("20000".to_string(), true),
            ("20001".to_string(), true),
            ("21000".to_string(), false)
        ]
    );
    // Outvoted is not a disagreement: the quorum was met.
    assert!(t.app.oracle_incidents(10).await.unwrap().is_empty());
    t.assert_verified().await;
}

pub async fn a_wrong_source_holds_a_quorum_of_three_until_the_round_voids(db: Db) {
    let sources = sources(["20000", "20001", "21000"]);
    let (t, ann, bob) = round_with_bets(db, &sources, 3).await;
    let mut heard = t.app.events.subscribe();
    let counted = counter("updown_oracle_disagreements_total");
    let round = t.app.round(crate::code()).await.unwrap();
    t.clock.set(round.terms.settle_at);
    for _ in 0..2 {
        let tick = t.app.scheduler_step().await.unwrap();
        assert!(
            tick.settled.is_empty() && tick.voided.is_empty(),
            "{tick:?}"
        );
        let (code, why) = &tick.waiting[0];
        assert_eq!(code, CODE);
        assert!(
            why.contains("disagree") && why.contains("gamma:stub 21000"),
            "{why}"
        );
    }
    // Counted each time, for the alert (UpdownOracleDisagrees); reported
    // once however often it is seen: one incident, one event.
    assert!(counter("updown_oracle_disagreements_total") >= counted + 2);
    let incidents = t.app.oracle_incidents(10).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].kind, IncidentKind::Disagreement);
    assert_eq!(incidents[0].date, today());
    assert_eq!(
        incidents[0].detail,
        "alpha:stub 20000, beta:stub 20001, gamma:stub 21000"
    );
    let mut events = Vec::new();
    while let Ok(event) = heard.try_recv() {
        events.push(event.kind);
    }
    assert_eq!(
        events
            .iter()
            .filter(|k| **k == EventKind::OracleIncident)
            .count(),
        1,
        "{events:?}"
    );
    // The console's view of it.
    let report = get(&t, "/admin/oracle").await;
    assert_eq!(report["incidents"][0]["kind"], "disagreement");
    assert!(report["oracle"]
        .as_str()
        .unwrap()
        .starts_with("quorum(3 of alpha:stub"));
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(6), "nothing paid");

    assert_eq!(step_at(&t, round.terms.void_at).await.voided, [CODE]);
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10), "refunded");
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(10), "refunded");
    t.assert_verified().await;
}

pub async fn sources_all_down_until_the_void_instant_void_and_refund(db: Db) {
    let sources = sources(["20000", "20000", "20000"]);
    for source in &sources {
        source.set(today(), Err("connection refused"));
    }
    let (t, ann, bob) = round_with_bets(db, &sources, 2).await;
    let round = t.app.round(crate::code()).await.unwrap();
    let tick = step_at(&t, round.terms.settle_at).await;
    assert!(tick.waiting[0].1.contains("connection refused"), "{tick:?}");
    assert!(t.app.oracle_incidents(10).await.unwrap().is_empty());
    assert_eq!(step_at(&t, round.terms.void_at).await.voided, [CODE]);
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10));
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(10));
    t.assert_verified().await;
}

pub async fn a_close_revised_after_settlement_is_reported_and_changes_nothing(db: Db) {
    let sources = sources(["20000", "20001", "19999"]);
    let (t, ann, bob) = round_with_bets(db, &sources, 2).await;
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(step_at(&t, round.terms.settle_at).await.settled, [CODE]);
    let paid = (
        t.app.balance(ann).await.unwrap(),
        t.app.balance(bob).await.unwrap(),
    );
    let revisions = || counter("updown_oracle_revisions_total");
    let counted = revisions();

    // Nothing changed: nothing to report. The check runs once an hour
    // for all instances: another instance finds it run.
    let checked_at = round.terms.settle_at + chrono::Duration::hours(3);
    t.clock.set(checked_at);
    assert_eq!(t.app.revision_step().await.unwrap(), Some(0));
    let other = t.twin(&[]);
    assert_eq!(other.revision_step().await.unwrap(), None);
    t.clock.set(checked_at + chrono::Duration::minutes(59));
    assert_eq!(other.revision_step().await.unwrap(), None);
    t.clock.set(checked_at + chrono::Duration::hours(1));
    assert_eq!(other.revision_step().await.unwrap(), Some(0));
    assert_eq!(t.app.revision_step().await.unwrap(), None);

    // One source revises its close: reported once, however often checked.
    sources[1].set(today(), Ok("20012.5"));
    assert_eq!(t.app.check_revisions().await.unwrap(), 1);
    assert_eq!(t.app.check_revisions().await.unwrap(), 0);
    let incidents = t.app.oracle_incidents(10).await.unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].kind, IncidentKind::Revision);
    assert_eq!(incidents[0].detail, "beta:stub gave 20001, now 20012.5");
    assert!(revisions() > counted, "counted for the alert");

    // All of them move to a close under the previous one: the result
    // would differ, and still nothing is re-settled.
    for source in &sources {
        source.set(today(), Ok("18000"));
    }
    assert_eq!(t.app.check_revisions().await.unwrap(), 3);
    let incidents = t.app.oracle_incidents(10).await.unwrap();
    let details: Vec<&str> = incidents.iter().map(|i| i.detail.as_str()).collect();
    assert_eq!(
        details,
        [
            "gamma:stub gave 19999, now 18000",
            "beta:stub gave 20001, now 18000",
            "alpha:stub gave 20000, now 18000",
            "beta:stub gave 20001, now 20012.5",
        ]
    );
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(round.status, RoundStatus::Settled);
    let view = t.app.round_view_with_proof(&round).await.unwrap();
    assert_eq!(view.close.unwrap().close, "20000");
    assert_eq!(
        (
            t.app.balance(ann).await.unwrap(),
            t.app.balance(bob).await.unwrap()
        ),
        paid,
        "balances unchanged"
    );
    t.assert_verified().await;
}

/// The round of [`round_with_bets`] with a dispute window of an hour.
async fn disputable(db: Db) -> (TestApp, UserId, UserId) {
    let sources = sources(["20000", "20001", "19999"]);
    round_with_bets_and(db, &sources, 2, &[("SETTLE_DISPUTE_MIN", "60")]).await
}

pub async fn a_void_inside_the_dispute_window_refunds_and_nothing_was_paid(db: Db) {
    let (t, ann, bob) = disputable(db).await;
    let mut heard = t.app.events.subscribe();
    let round = t.app.round(crate::code()).await.unwrap();
    for minutes in [0, 30, 59] {
        let tick = step_at(
            &t,
            round.terms.settle_at + chrono::Duration::minutes(minutes),
        )
        .await;
        assert!(tick.settled.is_empty(), "{tick:?}");
        assert!(
            tick.waiting[0].1.contains("result UP published"),
            "{tick:?}"
        );
        // Nothing paid, no fee taken.
        assert_eq!(t.app.balance(ann).await.unwrap(), usdc(6));
        assert_eq!(t.app.balance(bob).await.unwrap(), usdc(4));
    }
    let held = t.app.round(crate::code()).await.unwrap();
    assert_eq!(held.status, RoundStatus::Locked);
    let view = t.app.round_view(&held).await.unwrap();
    assert_eq!(view.published_result, Some("UP"));
    assert_eq!(view.result, None, "not paid yet");
    // The closes it was decided on, shown while it can be disputed.
    assert_eq!(view.close.as_ref().unwrap().close, "20000");
    assert_eq!(view.previous_close.as_ref().unwrap().close, "19000");
    assert_eq!(
        view.payouts_at.as_deref(),
        Some(
            updown_app::wire::instant(round.terms.settle_at + chrono::Duration::minutes(60))
                .as_str()
        )
    );
    let mut published = 0;
    while let Ok(event) = heard.try_recv() {
        published += usize::from(event.kind == EventKind::RoundResult);
    }
    assert_eq!(published, 1, "published once");

    // An operator voids inside the window: everyone is refunded in full.
    let voided = t
        .app
        .settle_round(
            crate::code(),
            SettleRequest::Manual {
                outcome: Outcome::Void,
                actor: "ops@example.com".into(),
                reason: "a source's close was wrong".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(voided.status, RoundStatus::Void);
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(10));
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(10));
    t.assert_verified().await;
}

pub async fn the_result_is_paid_when_the_dispute_window_ends(db: Db) {
    let (t, ann, bob) = disputable(db).await;
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(
        round.terms.dispute_min,
        Some(60),
        "the window is in the terms"
    );
    // An instance restarted with the window off still holds the round:
    // its terms promised an hour.
    let restarted = t.twin(&[("SETTLE_DISPUTE_MIN", "0")]);
    t.clock.set(round.terms.settle_at);
    assert!(restarted.scheduler_step().await.unwrap().settled.is_empty());
    let held = t.app.round(crate::code()).await.unwrap();
    assert_eq!(
        held.published.map(|p| p.payouts_at),
        Some(round.terms.settle_at + chrono::Duration::minutes(60))
    );
    assert!(step_at(&t, round.terms.settle_at).await.settled.is_empty());
    assert_eq!(
        step_at(&t, round.terms.settle_at + chrono::Duration::minutes(60))
            .await
            .settled,
        [CODE]
    );
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(round.status, RoundStatus::Settled);
    assert!(t.app.balance(ann).await.unwrap() > usdc(10), "UP won");
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(4));
    // Too late to void now.
    let late = t
        .app
        .settle_round(
            crate::code(),
            SettleRequest::Manual {
                outcome: Outcome::Void,
                actor: "ops@example.com".into(),
                reason: "too late".into(),
            },
        )
        .await;
    assert!(late.is_err());
    t.assert_verified().await;
}

pub async fn a_round_asks_only_the_oracle_its_terms_name(db: Db) {
    let sources = sources(["20000", "20001", "19999"]);
    let (t, ann, _) = round_with_bets(db, &sources, 2).await;
    let round = t.app.round(crate::code()).await.unwrap();
    assert_eq!(
        round.terms.oracle.as_deref(),
        Some("quorum(2 of alpha:stub, beta:stub, gamma:stub) within 10 bps")
    );
    // An instance restarted with another oracle: it does not ask it.
    let other = updown_app::startup::wire(
        updown_app::config::Config::with(&[("RATE_LIMIT_IP", "off")]).unwrap(),
        t.store(),
        t.clock.clone(),
        Arc::new(updown_app::oracle::MockOracle::default()),
    );
    t.clock.set(round.terms.settle_at);
    let error = other
        .settle_round(crate::code(), SettleRequest::Auto)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("terms name the oracle quorum(2 of alpha:stub"),
        "{error}"
    );
    assert!(t
        .store()
        .price(&round.terms.market, today())
        .await
        .unwrap()
        .is_none());
    // Closes an operator records settle it.
    for (date, close) in [(today(), "20000"), (previous(), "19000")] {
        other
            .set_price(date, Price::parse(close).unwrap(), "ops@example.com")
            .await
            .unwrap();
    }
    let settled = other
        .settle_round(crate::code(), SettleRequest::Auto)
        .await
        .unwrap();
    assert_eq!(settled.status, RoundStatus::Settled);
    assert!(t.app.balance(ann).await.unwrap() > usdc(10), "UP won");
    t.assert_verified().await;
}

pub async fn a_void_waiting_for_approval_holds_the_payouts_past_the_window(db: Db) {
    let (t, ann, bob) = disputable(db).await;
    let round = t.app.round(crate::code()).await.unwrap();
    assert!(step_at(&t, round.terms.settle_at).await.settled.is_empty());
    // An operator asks for VOID inside the window; a second must approve.
    let staff = updown_app::services::Staff {
        actor: "oli@ops.example.com".into(),
        role: updown_domain::operator::Role::Operator,
        credential: "token:1".into(),
    };
    let asked = t
        .app
        .settle_by_hand(
            &staff,
            crate::code(),
            Outcome::Void,
            "a source's close was wrong".into(),
            None,
        )
        .await
        .unwrap();
    assert!(matches!(asked, updown_app::services::ByHand::Waiting(_)));
    // The window ends: still held while the request waits.
    let tick = step_at(&t, round.terms.settle_at + chrono::Duration::minutes(90)).await;
    assert!(tick.settled.is_empty(), "{tick:?}");
    assert_eq!(t.app.balance(ann).await.unwrap(), usdc(6), "nothing paid");
    assert_eq!(t.app.balance(bob).await.unwrap(), usdc(4));
    assert_eq!(
        t.app.round(crate::code()).await.unwrap().status,
        RoundStatus::Locked
    );
    t.assert_verified().await;
}
