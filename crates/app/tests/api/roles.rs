//! The README's role table, route by route: every admin route of the
//! OpenAPI document is in it, and each role's own token, through a real
//! socket, is let through exactly where the table says yes. Named
//! operators' actions are recorded under their email; the break-glass
//! token is audited at every use; a disabled operator's token stops.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use updown_domain::operator::Role;

use crate::support::{at, call, Db, TestApp};
use crate::ADMIN;
use updown_store::on_both_backends;

on_both_backends!(every_admin_route_is_open_to_exactly_the_roles_the_readme_names,);

/// `(method, path) -> roles allowed`, from the README's table.
fn readme_roles() -> BTreeMap<(String, String), Vec<Role>> {
    let readme = include_str!("../../../../README.md");
    let section = readme
        .split("### Operators and roles")
        .nth(1)
        .expect("the README has the section")
        .split("\n### ")
        .next()
        .unwrap();
    let mut table = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let (method, path) = cells[0].trim_matches('`').split_once(' ').unwrap();
        let allowed = Role::ALL
            .iter()
            .zip(&cells[1..])
            .filter(|(_, cell)| **cell == "yes")
            .map(|(role, _)| *role)
            .collect();
        let before = table.insert((method.to_string(), path.to_string()), allowed);
        assert!(before.is_none(), "{line} twice");
    }
    table
}

fn body_for(method: &str, path: &str) -> Option<&'static str> {
    match (method, path) {
        ("POST", "/simulate/deposit_webhook") => {
            Some(r#"{"email": "nobody@example.com", "amount": 1000000, "tx_hash": "0xroles"}"#)
        }
        ("POST", "/admin/rounds") => Some(r#"{"reason": "roles"}"#),
        ("POST", "/admin/rounds/{code}/settle") => Some(r#"{"result": "VOID", "reason": "roles"}"#),
        ("POST", _) => Some(r#"{"reason": "roles"}"#),
        _ => None,
    }
}

async fn every_admin_route_is_open_to_exactly_the_roles_the_readme_names(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let table = readme_roles();
    let (_, doc) = call(t.address, "GET", "/openapi.json", None, None).await;
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("admin_token").is_some()));
            if secured {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    documented.sort();
    let listed: Vec<(String, String)> = table.keys().cloned().collect();
    assert_eq!(
        documented, listed,
        "the README's role table lists every admin route, once"
    );

    let mut tokens = Vec::new();
    for role in Role::ALL {
        let email = format!("{}@ops.example.com", role.as_str());
        t.app.add_operator(&email, role, "test").await.unwrap();
        let (_, token) = t
            .app
            .new_operator_token(&email, "roles", "test")
            .await
            .unwrap();
        tokens.push((role, email, token));
    }
    for ((method, path), allowed) in &table {
        let uri = path.replace("{code}", "20261124").replace("{id}", "999999");
        for (role, _, token) in &tokens {
            let (status, answer) =
                call(t.address, method, &uri, body_for(method, path), Some(token)).await;
            if allowed.contains(role) {
                assert!(
                    status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                    "{method} {path} as {role:?}: {status} {answer}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} as {role:?}: {answer}"
                );
                assert_eq!(answer["error"]["code"], "forbidden", "{answer}");
            }
        }
        // Nobody without a credential, or with a made-up one.
        let (status, _) = call(t.address, method, &uri, body_for(method, path), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        let (status, _) = call(
            t.address,
            method,
            &uri,
            body_for(method, path),
            Some("op_forged"),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }

    // The operator's name is on what they did; break-glass is audited.
    let log = t.app.audit_log(None, 500).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.actor == "operator@ops.example.com" && e.action.contains("open")),
        "{log:?}"
    );
    let (status, _) = call(t.address, "GET", "/admin/users", None, Some(ADMIN)).await;
    assert_eq!(status, StatusCode::OK);
    let log = t.app.audit_log(None, 1).await.unwrap();
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str()),
        ("break-glass", "break_glass")
    );
    assert_eq!(log[0].subject, "GET /admin/users");

    // Disabled: the token stops at once.
    let (_, email, token) = &tokens[4];
    t.app
        .disable_operator(email, "test", "left the company")
        .await
        .unwrap();
    let (status, _) = call(t.address, "GET", "/admin/users", None, Some(token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(t.app.audit_chain().await.unwrap().broken.is_none());
}

/// With UPDOWN_ENV=production, ADMIN_TOKEN opens the way until the first
/// admin operator exists, and is refused from then on (and again usable
/// once no enabled admin is left).
#[tokio::test]
async fn in_production_break_glass_is_refused_once_an_admin_exists() {
    let folder = std::env::temp_dir().join(format!("updown-break-glass-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    let closes = folder.join("closes.csv");
    std::fs::write(&closes, "date,close\n").unwrap();
    let db = format!("sqlite://{}", folder.join("prod.db").display());
    let xpub = updown_domain::wallet::DepositWallet::account_xpub(
        "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
    )
    .unwrap();
    let config = updown_app::config::Config::with(&[
        ("DATABASE_URL", db.as_str()),
        ("UPDOWN_ENV", "production"),
        ("ADMIN_TOKEN", ADMIN),
        ("ORACLE", "csv"),
        ("ORACLE_CSV_PATH", closes.to_str().unwrap()),
        ("WALLET_XPUB", xpub.as_str()),
    ])
    .unwrap();
    assert!(config.production);
    let app = updown_app::startup::app(config).await.unwrap();
    assert!(app.staff_by_bearer(ADMIN).await.unwrap().is_break_glass());
    app.add_operator("viewer@ops.example.com", Role::Viewer, "cli:root")
        .await
        .unwrap();
    assert!(
        app.staff_by_bearer(ADMIN).await.is_ok(),
        "a viewer is no admin"
    );
    app.add_operator("boss@ops.example.com", Role::Admin, "cli:root")
        .await
        .unwrap();
    let refused = app.staff_by_bearer(ADMIN).await.unwrap_err();
    assert!(refused.to_string().contains("break-glass"), "{refused}");
    app.disable_operator("boss@ops.example.com", "cli:root", "left")
        .await
        .unwrap();
    assert!(
        app.staff_by_bearer(ADMIN).await.is_ok(),
        "no enabled admin: break-glass again"
    );
    let _ = std::fs::remove_dir_all(&folder);
}
