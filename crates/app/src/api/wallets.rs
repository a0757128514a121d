//! `POST /wallets`: the caller's deposit address (BIP-44 m/44'/60'/0'/0/i
//! from the operator's xpub), the same every time. `GET /me/deposits`:
//! the caller's credited deposits, and the transfers the chain watcher
//! has seen but not yet credited, with their confirmations.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;

use super::auth::CurrentUser;
use super::paging::Page;
use super::ApiError;
use crate::services::App;
use crate::wire::instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(create_wallet))
        .routes(routes!(list_my_deposits))
}

#[utoipa::path(
    get,
    path = "/me/deposits",
    tag = "deposits",
    security(("api_key" = []), ("session" = [])),
    params(Page),
    responses(
        (status = 200, description = "your credited deposits (newest first, a page at a time) and the transfers seen on the chain but not yet confirmed enough", body = DepositsOut),
    ),
)]
async fn list_my_deposits(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<DepositsOut>, ApiError> {
    let page = Page::from_query(page)?;
    let (credited, pending) = app.deposits_of(user.id, page.before, page.limit()).await?;
    Ok(Json(DepositsOut {
        required_confirmations: app.config.chain.min_confirmations.max(1),
        pending: pending
            .iter()
            .map(|p| PendingDepositOut {
                tx_hash: p.tx_hash.clone(),
                log_index: p.log_index,
                amount: p.amount.get(),
                block_number: p.block_number,
                confirmations: p.confirmations,
                seen_at: instant(p.seen_at),
            })
            .collect(),
        credited: credited
            .iter()
            .map(|d| DepositOut {
                id: d.id,
                tx_hash: d.chain_tx_hash.clone(),
                log_index: d.log_index,
                amount: d.amount.get(),
                credited_at: instant(d.credited_at),
            })
            .collect(),
    }))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct DepositsOut {
    /// Confirmations a transfer needs before it is credited.
    required_confirmations: u32,
    /// Seen on the chain, not credited yet (highest block first).
    pending: Vec<PendingDepositOut>,
    credited: Vec<DepositOut>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct PendingDepositOut {
    tx_hash: String,
    log_index: i64,
    /// micro-USDC.
    amount: i64,
    block_number: i64,
    confirmations: i64,
    seen_at: String,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct DepositOut {
    /// Pass as `before` for the next page.
    id: i64,
    tx_hash: String,
    log_index: i64,
    /// micro-USDC.
    amount: i64,
    credited_at: String,
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
