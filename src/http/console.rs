//! The agent console (docs/api.md#the-agent-console): `GET /console`, one page whose HTML,
//! style sheet and script are compiled into the binary and served from this
//! origin (`/console/console.css`, `/console/console.js`), so the page needs
//! no inline script or style and runs under its own strict CSP.
//!
//! The page holds the agent's API key in `sessionStorage` and sends it only
//! in `Authorization: Bearer`; everything it shows comes from the public API
//! (`GET /v1/interactions`, `GET /v1/events` read with `fetch`, the reveal,
//! logout and unlock endpoints). The test hooks of 3.10 live in the script.
use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::NoQuery;
use super::openapi::E422;
use super::AppState;

const HTML: &str = include_str!("console/console.html");
const CSS: &str = include_str!("console/console.css");
const JS: &str = include_str!("console/console.js");

/// The console's policy: its own script and style only, API calls to this
/// origin only, never framed, no `<base>`, no form submission (the key form
/// is handled by the script and must never be submitted into a URL).
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'none'";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(console))
        .routes(routes!(console_css))
        .routes(routes!(console_js))
}

/// The agent console page; it asks for an agent API key itself.
#[utoipa::path(get, path = "/console", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/html",
               description = "the agent console web page (HTML)"), E422))]
async fn console(_: NoQuery) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
        ],
        HTML,
    )
        .into_response()
}

/// The console's style sheet.
#[utoipa::path(get, path = "/console/console.css", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/css"), E422))]
async fn console_css(_: NoQuery) -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// The console's script.
#[utoipa::path(get, path = "/console/console.js", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/javascript"), E422))]
async fn console_js(_: NoQuery) -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

/// A static file of the console: `no-store`, like the page, so a gateway
/// upgrade never pairs an old script with a new page.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}
