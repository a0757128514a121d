//! `GET /tvl`: total value locked and its parts.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use crate::services::App;
use crate::wire::TvlOut;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_tvl))
}

#[utoipa::path(
    get,
    path = "/tvl",
    tag = "operations",
    responses(
        (status = 200, description = "total value locked: user balances + open pools + pending withdrawals", body = TvlOut),
    ),
)]
async fn get_tvl(State(app): State<App>) -> Result<Json<TvlOut>, ApiError> {
    Ok(Json(TvlOut::from(app.tvl().await?)))
}
