//! `POST /wallets`: HD-derived deposit addresses, stable per user, and
//! deposits credited by address.

use axum::http::StatusCode;

use crate::support::{at, Db, TestApp};
use crate::{get_as, send, sign_up, ADMIN};
use updown_store::on_both_backends;

on_both_backends!(each_user_gets_their_own_stable_deposit_address_and_deposits_find_them,);

async fn each_user_gets_their_own_stable_deposit_address_and_deposits_find_them(db: Db) {
    let t = TestApp::spawn(db, &[("ADMIN_TOKEN", ADMIN)], at("2026-11-24T15:00:00Z")).await;
    let ann = sign_up(&t, "ann").await;
    let bob = sign_up(&t, "bob").await;
    let (status, bob_wallet) = send(&t, "POST", "/wallets", None, Some(&bob)).await;
    assert_eq!(status, StatusCode::OK, "{bob_wallet}");
    let (_, ann_wallet) = send(&t, "POST", "/wallets", None, Some(&ann)).await;
    // Without WALLET_XPUB: the public development mnemonic, whose first
    // accounts everyone knows (Hardhat, Foundry); ann was created first.
    assert_eq!(
        ann_wallet["address"],
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
    assert_eq!(ann_wallet["derivation_path"], "m/44'/60'/0'/0/0");
    assert_eq!(
        bob_wallet["address"],
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    );
    assert_eq!(bob_wallet["derivation_path"], "m/44'/60'/0'/0/1");
    let (_, again) = send(&t, "POST", "/wallets", None, Some(&bob)).await;
    assert_eq!(again, bob_wallet, "the same address every time");
    assert_eq!(
        send(&t, "POST", "/wallets", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );

    // A deposit to bob's address is bob's, whatever case it is written in.
    let to = bob_wallet["address"].as_str().unwrap().to_lowercase();
    let body = format!(r#"{{"address": "{to}", "amount": 5000000, "tx_hash": "0xto-bob"}}"#);
    let (status, credited) = send(
        &t,
        "POST",
        "/simulate/deposit_webhook",
        Some(&body),
        Some(ADMIN),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{credited}");
    assert_eq!(get_as(&t, "/me", &bob).await.1["available"], 5_000_000);
    assert_eq!(get_as(&t, "/me", &ann).await.1["available"], 0);
    for (bad, expected) in [
        (
            r#"{"address": "0x0000000000000000000000000000000000000001", "amount": 1, "tx_hash": "0x1"}"#,
            StatusCode::NOT_FOUND,
        ),
        (
            r#"{"address": "0xnothex", "amount": 1, "tx_hash": "0x2"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"amount": 1, "tx_hash": "0x3"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"email": "ann@example.com", "address": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "amount": 1, "tx_hash": "0x4"}"#,
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = send(
            &t,
            "POST",
            "/simulate/deposit_webhook",
            Some(bad),
            Some(ADMIN),
        )
        .await;
        assert_eq!(status, expected, "{bad}: {body}");
    }
    t.assert_verified().await;
}
