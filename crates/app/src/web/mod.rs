//! The web pages `updown serve` hands out: the player page at `/` and the
//! operator console at `/admin`. Plain HTML, CSS and JavaScript with no
//! library, compiled into the binary (`include_str!`), so nothing is
//! fetched from anywhere else; a Content-Security-Policy keeps it so. The
//! pages talk to the API on the same origin and follow `GET /events`.
//! `GET /qr.svg` draws a deposit address as a QR code for the page.

use axum::extract::{Path, Query};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::ApiError;
use crate::services::App;

/// Only this origin: no CDN, no inline script, no framing by other sites.
const POLICY: &str = "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Every file the pages use, with its content type.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("assets/style.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/common.js"),
    ),
    (
        "player.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/player.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/admin.js"),
    ),
];

const PLAYER_PAGE: &str = include_str!("assets/index.html");
const ADMIN_PAGE: &str = include_str!("assets/admin.html");

/// The pages and their files (not part of the API document).
pub fn pages() -> Router<App> {
    Router::new()
        .route("/", get(|| async { page(PLAYER_PAGE) }))
        .route("/admin", get(|| async { page(ADMIN_PAGE) }))
        .route("/assets/{file}", get(asset))
}

/// `GET /qr.svg`, documented with the API.
pub fn router() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(get_qr))
}

fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Small, and new with every release: always revalidated.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn page(html: &'static str) -> Response {
    with_headers("text/html; charset=utf-8", html)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => with_headers(content_type, body),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no asset {file:?}"),
        )
        .into_response(),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct QrQuery {
    /// An Ethereum address (what the pages draw).
    #[param(pattern = "^0x[0-9a-fA-F]{40}$")]
    text: String,
}

#[utoipa::path(get, path = "/qr.svg", tag = "deposits", params(QrQuery), responses((status = 200, description = "the address as a QR code (image/svg+xml)", content_type = "image/svg+xml", body = String), (status = 422, description = "an address whose EIP-55 checksum fails", body = crate::api::ErrorBody)))]
async fn get_qr(
    query: Result<Query<QrQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    // Addresses only: the route is not a free QR service.
    let address = crate::api::shapes::address(&query.text)?;
    let code = qrcode::QrCode::new(address.to_checksum().as_bytes())
        .map_err(|e| ApiError::invalid(format!("cannot encode: {e}")))?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(180, 180)
        .build();
    let mut response = svg.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_load_nothing_from_elsewhere() {
        for text in [PLAYER_PAGE, ADMIN_PAGE]
            .into_iter()
            .chain(ASSETS.iter().map(|(_, _, body)| *body))
        {
            for outside in ["http://", "https://", "//cdn", "<script>"] {
                // The SVG namespace is a name, not a request.
                let text = text.replace("http://www.w3.org/2000/svg", "");
                assert!(!text.contains(outside), "{outside} in an asset");
            }
        }
        for page in [PLAYER_PAGE, ADMIN_PAGE] {
            for reference in page
                .split("src=\"")
                .skip(1)
                .chain(page.split("href=\"").skip(1))
            {
                let path = reference.split('"').next().unwrap();
                let file = path.strip_prefix("/assets/").expect("assets only");
                assert!(
                    ASSETS.iter().any(|(name, _, _)| *name == file),
                    "{file} is not served"
                );
            }
        }
    }
}
