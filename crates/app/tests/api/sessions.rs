//! People on the web pages: passwords, the session cookie, its Origin
//! check, signing out, expiry.

use axum::http::StatusCode;

use crate::support::{at, Db, TestApp};
use crate::{send, send_with, simulate_deposit, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(a_person_signs_in_with_a_password_and_the_cookie_works_only_from_our_own_pages,);

async fn a_person_signs_in_with_a_password_and_the_cookie_works_only_from_our_own_pages(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    t.open("20261124").await;
    let (status, body) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "gil@example.com", "password": "short"}"#),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_input"))
    );
    let (status, _) = send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "gil@example.com", "password": "a long passphrase"}"#),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a refused sign-up created nobody"
    );
    send(
        &t,
        "POST",
        "/users",
        Some(r#"{"email": "kim@example.com"}"#),
        None,
    )
    .await;
    simulate_deposit(&t, "gil", 5_000_000).await;

    let sign_in = |email: &str, password: &str| {
        format!(r#"{{"email": "{email}", "password": "{password}"}}"#)
    };
    let wrong = send(
        &t,
        "POST",
        "/sessions",
        Some(&sign_in("gil@example.com", "a long passphrasE")),
        None,
    )
    .await;
    let unknown = send(
        &t,
        "POST",
        "/sessions",
        Some(&sign_in("who@example.com", "a long passphrase")),
        None,
    )
    .await;
    let no_password = send(
        &t,
        "POST",
        "/sessions",
        Some(&sign_in("kim@example.com", "a long passphrase")),
        None,
    )
    .await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong, unknown,
        "an unknown email looks like a wrong password"
    );
    assert_eq!(no_password, wrong);

    let (status, headers, body) = send_with(
        &t,
        "POST",
        "/sessions",
        Some(&sign_in("gil@example.com", "a long passphrase")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["user"]["email"], "gil@example.com");
    let set_cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(set_cookie.contains(part), "{set_cookie} lacks {part}");
    }
    assert!(!set_cookie.contains("Secure"), "plain http in development");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("updown_session=uds_"));

    let (status, _, me) = send_with(&t, "GET", "/me", None, &[("cookie", &cookie)]).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (StatusCode::OK, Some("gil@example.com"))
    );
    let bet = Some(r#"{"side": "UP", "amount": 1000000}"#);
    let host = ("host", "updown.example:8000");
    for origin in [
        None,
        Some("https://evil.example"),
        Some("http://updown.example:8001"),
        Some("null"),
    ] {
        let mut headers = vec![("cookie", cookie.as_str()), host];
        headers.extend(origin.map(|o| ("origin", o)));
        let (status, _, body) = send_with(&t, "POST", "/bets", bet, &headers).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{origin:?}"
        );
    }
    let ours = [
        ("cookie", cookie.as_str()),
        host,
        ("origin", "http://updown.example:8000"),
    ];
    let (status, _, placed) = send_with(&t, "POST", "/bets", bet, &ours).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");

    let (status, headers, _) = send_with(&t, "DELETE", "/sessions", None, &ours).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let (status, _, _) = send_with(&t, "GET", "/me", None, &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "signed out");

    // A new session lasts seven days.
    let (_, headers, _) = send_with(
        &t,
        "POST",
        "/sessions",
        Some(&sign_in("gil@example.com", "a long passphrase")),
        &[],
    )
    .await;
    let cookie = headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    t.advance(chrono::Duration::days(7) - chrono::Duration::seconds(1));
    assert_eq!(
        send_with(&t, "GET", "/me", None, &[("cookie", &cookie)])
            .await
            .0,
        StatusCode::OK
    );
    t.advance(chrono::Duration::seconds(1));
    assert_eq!(
        send_with(&t, "GET", "/me", None, &[("cookie", &cookie)])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let forged =
        "updown_session=uds_0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        send_with(&t, "GET", "/me", None, &[("cookie", forged)])
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    t.assert_verified().await;
}
