//! The web pages `updown serve` hands out: the player page at `/` and the
//! operator console at `/admin`. Plain HTML, CSS and JavaScript with no
//! library, compiled into the binary (`include_str!`), so nothing is
//! fetched from anywhere else; a Content-Security-Policy keeps it so. The
//! pages talk to the API on the same origin and follow `GET /events`
//! (and draw deposit addresses with the API's `GET /qr.svg`).

use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

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

/// The pages and their files (not part of the API document); any other
/// path under `/assets` is the API's 404.
pub fn pages<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new()
        .route("/", get(|| async { page(PLAYER_PAGE) }))
        .route("/admin", get(|| async { page(ADMIN_PAGE) }));
    for (name, content_type, body) in ASSETS {
        router = router.route(
            &format!("/assets/{name}"),
            get(move || async move { with_headers(content_type, body) }),
        );
    }
    router
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
