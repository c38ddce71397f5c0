//! The web dashboard, served from the binary (HTML, CSS and a small
//! script embedded at build time; no CDN, works with loopback only): the
//! agents with tags and last seen, a run form with a live preview of the
//! targets a node set and tags select, a run view with per-target state
//! chips, a progress bar, grouped output and each host's live output, and
//! the run history. The page asks for an API token once and keeps it in
//! the browser's local storage; it calls the same JSON endpoints as any
//! client (events are read from `/runs/{id}/events` with `fetch`, so the
//! token travels in the Authorization header).

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Paths served without a token (they hold no data).
pub fn is_asset(path: &str) -> bool {
    matches!(path, "/" | "/app.js" | "/style.css" | "/favicon.ico")
}

pub fn routes() -> Router<Arc<super::App>> {
    Router::new()
        .route("/", get(|| async { ([(CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response() }))
        .route(
            "/app.js",
            get(|| async { ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response() }),
        )
        .route("/style.css", get(|| async { ([(CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response() }))
        // No icon: say so without a token, so browsers do not log a 401.
        .route("/favicon.ico", get(|| async { axum::http::StatusCode::NO_CONTENT }))
}
