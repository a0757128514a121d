//! Operators on the console: password and one-time code (TOTP) sign-in,
//! the session cookie and its Origin check, codes outside their window or
//! used twice, the lock after five failures, and what ends a session.

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::Value;
use updown_app::clock::Clock;
use updown_domain::operator::Role;
use updown_domain::totp::{step_at, TotpSecret};

use crate::support::{at, Db, TestApp};
use crate::{send, send_with, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(
    an_operator_signs_in_with_password_and_code_and_the_console_cookie_obeys_the_role,
    an_admin_manages_operators_from_the_console_and_support_sets_a_players_limits,
    the_lock_after_failed_sign_ins_holds_when_the_audit_log_cannot_be_written,
    two_operators_changing_one_role_at_once_record_what_each_changed_from,
);

const HOST: (&str, &str) = ("host", "updown.example:8000");
const ORIGIN: (&str, &str) = ("origin", "http://updown.example:8000");

fn credentials(email: &str, password: &str, code: Option<&str>) -> String {
    let mut body = serde_json::json!({ "email": email, "password": password });
    if let Some(code) = code {
        body["code"] = code.into();
    }
    body.to_string()
}

/// `POST /admin/sessions`: the status, the cookie (name=value) when one
/// is set, and the answer.
async fn sign_in(
    t: &TestApp,
    email: &str,
    password: &str,
    code: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let body = credentials(email, password, code);
    let (status, headers, answer) = send_with(t, "POST", "/admin/sessions", Some(&body), &[]).await;
    let cookie = headers
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
    (status, cookie, answer)
}

/// A sign-in refused because the account is locked, even with the right
/// password (and code).
fn assert_locked((status, _, answer): (StatusCode, Option<String>, Value)) {
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("locked until"),
        "{answer}"
    );
}

/// A request with the console cookie from our own origin.
async fn as_operator(
    t: &TestApp,
    cookie: &str,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let headers = [("cookie", cookie), HOST, ORIGIN];
    let (status, _, answer) = send_with(t, method, uri, body, &headers).await;
    (status, answer)
}

async fn an_operator_signs_in_with_password_and_code_and_the_console_cookie_obeys_the_role(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:10Z")).await;
    t.open("20261124").await;
    let tre = "tre@ops.example.com";
    let (_, password) = t
        .app
        .add_operator(tre, Role::Treasurer, "test")
        .await
        .unwrap();

    // Wrong password and unknown email are one answer.
    let wrong = sign_in(&t, tre, "not it at all", None).await;
    let unknown = sign_in(&t, "who@ops.example.com", &password, None).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);

    // Password alone until two-factor is on. The cookie is the console's.
    let (status, headers, answer) = send_with(
        &t,
        "POST",
        "/admin/sessions",
        Some(&credentials(tre, &password, None)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["operator"]["role"], "treasurer");
    assert!(answer["operator"].get("password_hash").is_none());
    assert_eq!(headers["cache-control"], "no-store", "no cache keeps it");
    let set_cookie = headers.get("set-cookie").unwrap().to_str().unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=43200",
    ] {
        assert!(set_cookie.contains(part), "{set_cookie} lacks {part}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("updown_operator=ops_"), "{cookie}");

    let (status, me) = as_operator(&t, &cookie, "GET", "/admin/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["actor"], tre);
    assert_eq!(
        me["areas"],
        serde_json::json!(["read", "money", "approvals"])
    );
    assert_eq!(me["totp"], false);
    assert!(me["credential"].as_str().unwrap().starts_with("session:"));

    // The role holds through the cookie; a change from another origin,
    // or with no Origin, is refused before anything else.
    let (status, _) = as_operator(
        &t,
        &cookie,
        "POST",
        "/admin/rounds/20261124/lock",
        Some(r#"{"reason": "not mine"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for origin in [None, Some("https://evil.example")] {
        let mut headers = vec![("cookie", cookie.as_str()), HOST];
        headers.extend(origin.map(|o| ("origin", o)));
        let (status, _, answer) = send_with(&t, "POST", "/admin/me/totp", None, &headers).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{origin:?}"
        );
    }

    // Two-factor: a new secret with its QR; a wrong code does not confirm
    // it, the right one does.
    let (status, setup) = as_operator(&t, &cookie, "POST", "/admin/me/totp", None).await;
    assert_eq!(status, StatusCode::CREATED, "{setup}");
    let uri = setup["uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/updown:tre%40ops.example.com?secret="),
        "{uri}"
    );
    assert!(setup["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = TotpSecret::from_base32(setup["secret"].as_str().unwrap()).unwrap();
    let code_at = |offset: i64| secret.code(step_at(t.clock.now()) + offset);
    let wrong_code = if code_at(0) == "000000" {
        "000001"
    } else {
        "000000"
    };
    let confirm = |code: String| format!(r#"{{"code": "{code}"}}"#);
    let (status, _) = as_operator(
        &t,
        &cookie,
        "POST",
        "/admin/me/totp/confirm",
        Some(&confirm(wrong_code.into())),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, answer) = as_operator(
        &t,
        &cookie,
        "POST",
        "/admin/me/totp/confirm",
        Some(&confirm(code_at(0))),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let (_, me) = as_operator(&t, &cookie, "GET", "/admin/me", None).await;
    assert_eq!(me["totp"], true);
    let (status, _) = as_operator(&t, &cookie, "POST", "/admin/me/totp", None).await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a session cannot swap the factor"
    );

    // The audit log names who, with which credential, from where, in
    // which request; what the command line did has no request.
    let log = t.app.audit_log(None, 20).await.unwrap();
    let on = log.iter().find(|e| e.action == "operator_totp_on").unwrap();
    assert_eq!(on.actor, tre);
    assert_eq!(on.credential.as_deref(), me["credential"].as_str());
    assert_eq!(on.client.as_deref(), Some("127.0.0.1"));
    assert!(on.request_id.as_ref().is_some_and(|id| !id.is_empty()));
    let added = log.iter().find(|e| e.action == "operator_add").unwrap();
    assert_eq!((&added.credential, &added.client), (&None, &None));

    // From now on: no code, no session; the code that confirmed is spent;
    // codes two steps away are outside the window. None of it signs in.
    let (status, _, answer) = sign_in(&t, tre, &password, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("code"));
    assert_eq!(
        sign_in(&t, tre, &password, Some(&code_at(0))).await.0,
        StatusCode::UNAUTHORIZED
    );
    t.advance(Duration::seconds(30));
    for offset in [-2, 2] {
        let (status, cookie, _) = sign_in(&t, tre, &password, Some(&code_at(offset))).await;
        assert_eq!(
            (status, cookie),
            (StatusCode::UNAUTHORIZED, None),
            "{offset}"
        );
    }
    // One step either side is a phone clock slightly off: accepted, once.
    let (status, second, _) = sign_in(&t, tre, &password, Some(&code_at(1))).await;
    assert_eq!(status, StatusCode::CREATED);
    let second = second.unwrap();
    let replayed = sign_in(&t, tre, &password, Some(&code_at(1))).await;
    assert_eq!(replayed.0, StatusCode::UNAUTHORIZED, "a code works once");
    let earlier = sign_in(&t, tre, &password, Some(&code_at(0))).await;
    assert_eq!(
        earlier.0,
        StatusCode::UNAUTHORIZED,
        "nor an older one after it"
    );

    // Five wrong codes in a row lock sign-in for 15 minutes, even with
    // the right password and code; then it works again.
    t.advance(Duration::seconds(60));
    let (status, _, _) = sign_in(&t, tre, &password, Some(&code_at(0))).await;
    assert_eq!(status, StatusCode::CREATED, "a sign-in clears the failures");
    t.advance(Duration::seconds(30));
    for failures in 1..=5 {
        let (status, _, _) = sign_in(&t, tre, &password, Some(wrong_code)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let all = t.app.operators().await.unwrap();
        let counted = all.iter().find(|o| o.email.as_str() == tre).unwrap();
        let locked = counted.locked_until.is_some();
        assert_eq!(locked, failures == 5, "after {failures} failures");
    }
    assert_locked(sign_in(&t, tre, &password, Some(&code_at(0))).await);
    let log = t.app.audit_log(None, 20).await.unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "operator_locked" && e.actor == tre));
    t.advance(Duration::minutes(15));
    let (status, third, _) = sign_in(&t, tre, &password, Some(&code_at(0))).await;
    assert_eq!(status, StatusCode::CREATED);
    let third = third.unwrap();

    // Sessions end: signing out ends that one only; a password change
    // ends every one; the break-glass token has no account to change.
    let (status, _, _) = send_with(
        &t,
        "DELETE",
        "/admin/sessions",
        None,
        &[("cookie", second.as_str()), HOST, ORIGIN],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        as_operator(&t, &second, "GET", "/admin/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        as_operator(&t, &third, "GET", "/admin/me", None).await.0,
        StatusCode::OK
    );
    let change = format!(r#"{{"current": "{password}", "new": "a longer passphrase"}}"#);
    let (status, answer) =
        as_operator(&t, &third, "POST", "/admin/me/password", Some(&change)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    assert_eq!(
        as_operator(&t, &third, "GET", "/admin/me", None).await.0,
        StatusCode::UNAUTHORIZED
    );
    t.advance(Duration::seconds(30));
    let (status, fourth, _) = sign_in(&t, tre, "a longer passphrase", Some(&code_at(0))).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, answer) = send(&t, "POST", "/admin/me/totp", None, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    // Disabled: the session stops at once, and nobody signs in as them.
    t.app
        .disable_operator(tre, "test", "left the company")
        .await
        .unwrap();
    assert_eq!(
        as_operator(&t, &fourth.unwrap(), "GET", "/admin/me", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    t.advance(Duration::seconds(30));
    let (status, _, _) = sign_in(&t, tre, "a longer passphrase", Some(&code_at(0))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(t.app.audit_chain().await.unwrap().broken.is_none());
}

/// The lock commits with its audit entry; should the entry fail (the log's
/// chain broken, here its head moved past the id sequence), the failure
/// is still counted and the lock still falls: guessing never goes on.
async fn the_lock_after_failed_sign_ins_holds_when_the_audit_log_cannot_be_written(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:10Z")).await;
    let tre = "tre@ops.example.com";
    let (_, password) = t
        .app
        .add_operator(tre, Role::Treasurer, "test")
        .await
        .unwrap();
    t.behind_the_back("UPDATE audit_head SET last_id = last_id + 1000000")
        .await;
    for failures in 1..=4 {
        let (status, _, _) = sign_in(&t, tre, "not it at all", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "after {failures}");
    }
    // The fifth locks; its entry cannot be written, which is an error.
    let (status, _, answer) = sign_in(&t, tre, "not it at all", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{answer}");
    let all = t.app.operators().await.unwrap();
    let counted = all.iter().find(|o| o.email.as_str() == tre).unwrap();
    assert!(counted.locked_until.is_some(), "{counted:?}");
    assert_locked(sign_in(&t, tre, &password, None).await);
}

async fn an_admin_manages_operators_from_the_console_and_support_sets_a_players_limits(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:10Z")).await;
    let boss = "boss@ops.example.com";
    let (_, password) = t.app.add_operator(boss, Role::Admin, "test").await.unwrap();
    let (_, cookie, _) = sign_in(&t, boss, &password, None).await;
    let cookie = cookie.unwrap();

    // A token of their own for scripts: shown once, listed without the
    // token, working until revoked.
    let (status, made) = as_operator(
        &t,
        &cookie,
        "POST",
        "/admin/me/tokens",
        Some(r#"{"name": "nightly report"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    let (status, me) = send(&t, "GET", "/admin/me", None, Some(&token)).await;
    assert_eq!((status, me["actor"].as_str()), (StatusCode::OK, Some(boss)));
    let (_, listed) = as_operator(&t, &cookie, "GET", "/admin/me/tokens", None).await;
    assert_eq!(listed[0]["name"], "nightly report");
    assert!(listed[0].get("token").is_none());
    let revoke = format!("/admin/me/tokens/{}", made["id"]);
    assert_eq!(
        as_operator(&t, &cookie, "DELETE", &revoke, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        as_operator(&t, &cookie, "DELETE", &revoke, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&t, "GET", "/admin/me", None, Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Add a support operator: a password shown once, which signs in.
    let (status, added) = as_operator(
        &t,
        &cookie,
        "POST",
        "/admin/operators",
        Some(r#"{"email": "sue@ops.example.com", "role": "support"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let sue_id = added["operator"]["id"].as_i64().unwrap();
    let sue_password = added["password"].as_str().unwrap().to_string();
    let (status, sue, _) = sign_in(&t, "sue@ops.example.com", &sue_password, None).await;
    assert_eq!(status, StatusCode::CREATED);
    let sue = sue.unwrap();
    // Support may not manage operators.
    let (status, _) = as_operator(
        &t,
        &sue,
        "POST",
        "/admin/operators",
        Some(r#"{"email": "x@ops.example.com", "role": "admin"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Support sets a player's limits on their behalf, audited with why.
    let player = t.funded("gil", crate::support::usdc(10)).await;
    let limits = format!("/admin/users/{}/limits", player.0);
    let (status, set) = as_operator(
        &t,
        &sue,
        "PUT",
        &limits,
        Some(r#"{"max_stake_per_round": 1000000, "reason": "ticket 42: asked for a limit"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["max_stake_per_round"], 1_000_000);
    let (status, _) = as_operator(
        &t,
        &sue,
        "PUT",
        "/admin/users/999999/limits",
        Some(r#"{"reason": "nobody"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let log = t.app.audit_log(None, 10).await.unwrap();
    let entry = log.iter().find(|e| e.action == "user_limits").unwrap();
    assert_eq!(
        (entry.actor.as_str(), entry.reason.as_deref()),
        ("sue@ops.example.com", Some("ticket 42: asked for a limit"))
    );

    // A role change and a password reset end nothing but what they must;
    // disabling ends Sue's session at once.
    let (status, changed) = as_operator(
        &t,
        &cookie,
        "POST",
        &format!("/admin/operators/{sue_id}/role"),
        Some(r#"{"role": "viewer", "reason": "moved team"}"#),
    )
    .await;
    assert_eq!(
        (status, changed["role"].as_str()),
        (StatusCode::OK, Some("viewer")),
        "{changed}"
    );
    let (status, reset) = as_operator(
        &t,
        &cookie,
        "POST",
        &format!("/admin/operators/{sue_id}/reset-password"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_ne!(reset["password"], sue_password.as_str());
    assert_eq!(
        as_operator(&t, &sue, "GET", "/admin/me", None).await.0,
        StatusCode::UNAUTHORIZED,
        "a reset ends sessions"
    );
    let (status, cleared) = as_operator(
        &t,
        &cookie,
        "POST",
        &format!("/admin/operators/{sue_id}/reset-totp"),
        Some(r#"{"reason": "lost phone"}"#),
    )
    .await;
    assert_eq!(
        (status, cleared["totp"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    // With the console's cookie, an Idempotency-Key is the operator's: a
    // retry gets the first answer, not "disabled already".
    let keyed = [
        ("cookie", cookie.as_str()),
        HOST,
        ORIGIN,
        ("idempotency-key", "disable-sue"),
    ];
    let disable = format!("/admin/operators/{sue_id}/disable");
    let left = Some(r#"{"reason": "left"}"#);
    let (status, _, disabled) = send_with(&t, "POST", &disable, left, &keyed).await;
    assert_eq!(status, StatusCode::OK, "{disabled}");
    assert!(disabled["disabled_at"].is_string());
    let (status, headers, again) = send_with(&t, "POST", &disable, left, &keyed).await;
    assert_eq!((status, &again), (StatusCode::OK, &disabled));
    assert!(headers.contains_key("idempotent-replayed"));

    // The last enabled admin stays: neither demoted nor disabled here.
    let boss_id = t
        .app
        .operators()
        .await
        .unwrap()
        .iter()
        .find(|o| o.email.as_str() == boss)
        .unwrap()
        .id;
    for (uri, body) in [
        (
            format!("/admin/operators/{boss_id}/role"),
            r#"{"role": "viewer", "reason": "oops"}"#,
        ),
        (
            format!("/admin/operators/{boss_id}/disable"),
            r#"{"reason": "oops"}"#,
        ),
    ] {
        let (status, answer) = as_operator(&t, &cookie, "POST", &uri, Some(body)).await;
        assert_eq!(status, StatusCode::CONFLICT, "{uri}: {answer}");
    }
    let (status, list) = as_operator(&t, &cookie, "GET", "/admin/operators", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        list.to_string().find("argon2").is_none(),
        "no password hash leaves"
    );
    assert!(t.app.audit_chain().await.unwrap().broken.is_none());
}

/// Two operators change one role at the same moment: the audit log tells
/// the changes in order, each from the role the one before left (a role
/// read before the change's transaction would say both changed it from
/// the same one), and setting the role it has records nothing.
async fn two_operators_changing_one_role_at_once_record_what_each_changed_from(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:10Z")).await;
    let sue = "sue@ops.example.com";
    t.app
        .add_operator(sue, Role::Support, "test")
        .await
        .unwrap();
    for _ in 0..4 {
        let (up, down) = tokio::join!(
            t.app.set_operator_role(sue, Role::Operator, "ann", "more"),
            t.app.set_operator_role(sue, Role::Viewer, "bob", "less"),
        );
        up.unwrap();
        down.unwrap();
        t.app
            .set_operator_role(sue, Role::Support, "test", "back")
            .await
            .unwrap();
    }
    t.app
        .set_operator_role(sue, Role::Support, "test", "again")
        .await
        .unwrap();
    let mut log = t.app.audit_log(None, 100).await.unwrap();
    log.reverse();
    let changes: Vec<(String, String)> = log
        .iter()
        .filter(|e| e.action == "operator_set_role")
        .map(|e| {
            let (from, to) = e
                .subject
                .split_once(": ")
                .unwrap()
                .1
                .split_once(" -> ")
                .unwrap();
            (from.to_string(), to.to_string())
        })
        .collect();
    assert_eq!(changes.len(), 12, "{changes:?}");
    let mut role = "support".to_string();
    for (from, to) in &changes {
        assert_eq!(from, &role, "{changes:?}");
        assert_ne!(from, to, "{changes:?}");
        role = to.clone();
    }
    assert_eq!(role, "support");
}
