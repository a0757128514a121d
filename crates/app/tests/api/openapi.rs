//! The OpenAPI document and the /docs page: generated from the routes,
//! served with no internet, and every documented operation is routed.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use updown_app::api;

use crate::support::{at, Db, TestApp};
use crate::{get, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(the_openapi_document_lists_every_route_and_the_docs_page_works_offline,);

async fn raw(t: &TestApp, method: &str, uri: &str) -> (StatusCode, String, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {ADMIN}"))
        .header("content-type", "application/json")
        .body(Body::from(if method == "GET" || method == "DELETE" {
            ""
        } else {
            "{}"
        }))
        .unwrap();
    let response = api::router(t.app.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn the_openapi_document_lists_every_route_and_the_docs_page_works_offline(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let (status, doc) = get(&t, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let schemes = &doc["components"]["securitySchemes"];
    for scheme in ["api_key", "session", "admin_token"] {
        assert!(
            schemes[scheme].is_object(),
            "security scheme {scheme} missing"
        );
    }
    for schema in [
        "BetOut",
        "RoundOut",
        "ErrorBody",
        "NewBet",
        "WithdrawalOut",
        "TvlOut",
        "MeOut",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    let paths = doc["paths"].as_object().unwrap();
    for seed_path in [
        "/users",
        "/wallets",
        "/bets",
        "/withdrawals",
        "/tvl",
        "/rounds/current",
        "/health",
        "/metrics",
        "/simulate/deposit_webhook",
    ] {
        assert!(
            paths.contains_key(seed_path),
            "{seed_path} is not documented"
        );
    }

    // Every documented operation reaches a handler: never the router's
    // "no such route", never 405.
    let mut operations = 0;
    for (path, item) in paths {
        let uri = path
            .replace("{code}", "20261124")
            .replace("{id}", "1")
            .replace("{step}", "confirm");
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let (status, _, body) = raw(&t, &method.to_uppercase(), &uri).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains("no such route"),
                "{method} {path} is documented but not routed"
            );
            assert!(
                !status.is_server_error(),
                "{method} {path}: {status} {body}"
            );
        }
    }
    assert!(operations >= 30, "only {operations} operations documented");

    let (status, content_type, page) = raw(&t, "GET", "/docs/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(
        !page.contains("https://"),
        "the page loads nothing from the internet"
    );
    let (status, _, config) = raw(&t, "GET", "/docs/swagger-initializer.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(config.contains("/openapi.json"), "{config}");
    let (status, _, script) = raw(&t, "GET", "/docs/swagger-ui-bundle.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        script.len() > 100_000,
        "the bundle is served from the binary"
    );
}
