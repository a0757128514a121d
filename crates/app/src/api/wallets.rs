//! `POST /wallets`: the caller's deposit address (BIP-44 m/44'/60'/0'/0/i
//! from the operator's xpub), the same every time.

use axum::extract::State;
use axum::Json;

use super::auth::CurrentUser;
use super::ApiError;
use crate::services::App;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(create_wallet))
}

#[utoipa::path(
    post,
    path = "/wallets",
    tag = "deposits",
    security(("api_key" = []), ("session" = [])),
    responses(
        (status = 200, description = "your deposit address, the same every time", body = WalletOut),
    ),
)]
async fn create_wallet(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<WalletOut>, ApiError> {
    let (address, derivation_path) = app.deposit_address(&user).await?;
    Ok(Json(WalletOut {
        user_id: user.id.0,
        address,
        derivation_path,
        chain: "ethereum",
        token: "USDC",
    }))
}

/// Where to send USDC to fund the account.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct WalletOut {
    user_id: i64,
    /// EIP-55 checksummed.
    #[schema(example = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266")]
    address: String,
    #[schema(example = "m/44'/60'/0'/0/0")]
    derivation_path: String,
    chain: &'static str,
    token: &'static str,
}
