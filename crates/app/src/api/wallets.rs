//! `POST /wallets`: the caller's deposit address (BIP-44 m/44'/60'/0'/0/i
//! from the operator's xpub), the same every time.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::auth::CurrentUser;
use super::ApiError;
use crate::services::App;

pub fn router() -> Router<App> {
    Router::new().route("/wallets", post(create_wallet))
}

async fn create_wallet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let (address, derivation_path) = app.deposit_address(&user).await?;
    Ok(Json(json!({
        "user_id": user.id.0,
        "address": address,
        "derivation_path": derivation_path,
        "chain": "ethereum",
        "token": "USDC",
    })))
}
