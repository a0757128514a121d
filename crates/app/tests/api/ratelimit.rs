//! Rate limits: per key, per address, stricter on sign-in; 429 with
//! Retry-After, and other callers unaffected.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use tower::ServiceExt;
use updown_app::api;

use crate::support::{at, Db, TestApp};
use crate::{sign_up, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(over_a_limit_callers_get_429_with_retry_after_and_others_go_on,);

/// A request through one router (the limits live as long as it does):
/// its status and Retry-After.
async fn hit(
    router: &Router,
    method: &str,
    uri: &str,
    key: Option<&str>,
    ip: &str,
) -> (StatusCode, Option<u64>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("x-forwarded-for", format!("10.9.9.9, {ip}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let body = if method == "POST" {
        r#"{"email": "x@example.com", "password": "wrong password"}"#
    } else {
        ""
    };
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status(), retry_after)
}

async fn over_a_limit_callers_get_429_with_retry_after_and_others_go_on(db: Db) {
    let t = TestApp::spawn(
        db,
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("RATE_LIMIT_KEY", "3/min"),
            ("RATE_LIMIT_IP", "6/min"),
            ("RATE_LIMIT_SIGN_IN", "2/min"),
            ("TRUST_FORWARDED_FOR", "true"),
        ],
        at("2026-11-24T15:00:00Z"),
    )
    .await;
    let ann = sign_up(&t, "ann").await;
    let bob = sign_up(&t, "bob").await;
    let router = api::router(t.app.clone());

    // Per key: three, then 429 for ann only.
    for _ in 0..3 {
        assert_eq!(
            hit(&router, "GET", "/me", Some(&ann), "192.0.2.1").await.0,
            StatusCode::OK
        );
    }
    let (status, retry_after) = hit(&router, "GET", "/me", Some(&ann), "192.0.2.2").await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the key's limit holds from any address"
    );
    let retry_after = retry_after.expect("Retry-After");
    assert!(
        (1..=20).contains(&retry_after),
        "one request per 20 s comes back: {retry_after}"
    );
    assert_eq!(
        hit(&router, "GET", "/me", Some(&bob), "192.0.2.1").await.0,
        StatusCode::OK
    );

    // Per address: 192.0.2.1 has made 4 requests of its 6.
    assert_eq!(
        hit(&router, "GET", "/health", None, "192.0.2.1").await.0,
        StatusCode::OK
    );
    assert_eq!(
        hit(&router, "GET", "/health", None, "192.0.2.1").await.0,
        StatusCode::OK
    );
    assert_eq!(
        hit(&router, "GET", "/health", None, "192.0.2.1").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        hit(&router, "GET", "/health", None, "192.0.2.3").await.0,
        StatusCode::OK,
        "another address goes on"
    );

    // Sign-in: two attempts a minute per address.
    for _ in 0..2 {
        assert_eq!(
            hit(&router, "POST", "/sessions", None, "192.0.2.4").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (status, retry_after) = hit(&router, "POST", "/sessions", None, "192.0.2.4").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.unwrap() >= 1);
    assert_eq!(
        hit(&router, "GET", "/health", None, "192.0.2.4").await.0,
        StatusCode::OK,
        "only sign-in is held back"
    );
}
