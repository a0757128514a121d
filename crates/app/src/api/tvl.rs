//! `GET /tvl`: total value locked and its parts.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::ApiError;
use crate::services::App;
use crate::wire::TvlOut;

pub fn router() -> Router<App> {
    Router::new().route("/tvl", get(get_tvl))
}

async fn get_tvl(State(app): State<App>) -> Result<Json<TvlOut>, ApiError> {
    Ok(Json(TvlOut::from(app.tvl().await?)))
}
