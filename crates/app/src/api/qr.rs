//! `GET /qr.svg`: a deposit address drawn as a QR code, for the pages;
//! [`svg`] also draws an operator's TOTP provisioning URI (never in a URL).

use axum::extract::Query;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ApiError;
use crate::services::App;

pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_qr))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct QrQuery {
    /// An Ethereum address (what the pages draw).
    #[param(pattern = "^0x[0-9a-fA-F]{40}$")]
    text: String,
}

#[utoipa::path(
    get,
    path = "/qr.svg",
    tag = "deposits",
    params(QrQuery),
    responses(
        (status = 200, description = "the address as a QR code (image/svg+xml)", content_type = "image/svg+xml", body = String),
        (status = 422, description = "an address whose EIP-55 checksum fails", body = crate::api::ErrorBody),
    ),
)]
async fn get_qr(
    query: Result<Query<QrQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    // Addresses only: the route is not a free QR service.
    let address = super::shapes::address(&query.text)?;
    let mut response = svg(address.to_checksum().as_bytes())?.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(response)
}

/// `data` drawn as a QR code: an SVG document at least 180 px square.
pub fn svg(data: &[u8]) -> Result<String, ApiError> {
    let code =
        qrcode::QrCode::new(data).map_err(|e| ApiError::invalid(format!("cannot encode: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(180, 180)
        .build())
}
