//! Where things are (docs/api.md#operations-endpoints): `GET /` answers a
//! small page naming the console, the OpenAPI document, the MCP server and
//! the docs, and `serve` says the same after "chatgate listening"; a
//! `public_url` on this machine whose port is not the one listened on is
//! warned of, since every `short_url` would then point elsewhere.
use std::net::{IpAddr, SocketAddr};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::NoQuery;
use super::openapi::E422;
use super::pages::{escape, Frame};
use super::AppState;

/// The places a newcomer looks for first: what each is, and its path
/// (`None`: in the repository, not served).
pub const PLACES: [(&str, Option<&str>); 5] = [
    ("the agent console", Some("/console")),
    ("the OpenAPI document", Some("/openapi.json")),
    ("the MCP server (bots on a language model)", Some("/mcp")),
    ("readiness", Some("/readyz")),
    ("the docs: docs/api.md in the repository", None),
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(home))
        // A browser's trailing slash, not an operation of the API: kept out
        // of the document, whose lint refuses a path ending in a slash.
        .route("/console/", axum::routing::get(console_slash))
}

/// The lines `serve` writes after it listens, `public_url` before each path.
pub fn lines(public_url: &str) -> Vec<String> {
    let base = public_url.trim_end_matches('/');
    PLACES
        .iter()
        .map(|(what, path)| match path {
            Some(path) => format!("{what}: {base}{path}"),
            None => what.to_string(),
        })
        .collect()
}

/// The warning for a `public_url` on a loopback address whose port is not
/// the one listened on (links would lead to another port), else `None`.
pub fn port_mismatch(public_url: &str, listening: SocketAddr) -> Option<String> {
    let url = url::Url::parse(public_url).ok()?;
    let loopback = match url.host()? {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => IpAddr::V4(ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(ip).is_loopback(),
    };
    let port = url.port_or_known_default()?;
    if !loopback || port == listening.port() {
        return None;
    }
    let mut suggested = url.clone();
    suggested.set_port(Some(listening.port())).ok()?;
    Some(format!(
        "server.public_url {public_url} is port {port} of this machine, but the gateway \
         listens on port {}: every short_url and page link will point at port {port}; \
         set [server] public_url (or CHATGATE_SERVER__PUBLIC_URL) to {}",
        listening.port(),
        suggested.as_str().trim_end_matches('/')
    ))
}

/// A page saying where the console, the OpenAPI document, the MCP server
/// and the docs are. No key needed; it names no team.
#[utoipa::path(get, path = "/", tag = "operations", security(),
    responses((status = 200, body = String, content_type = "text/html",
               description = "a page naming the console, `/openapi.json`, `/mcp` and the docs (HTML)"), E422))]
async fn home(_: NoQuery) -> Response {
    let items: String = PLACES
        .iter()
        .map(|(what, path)| match path {
            Some(path) => format!("<li>{}: <a href=\"{path}\">{path}</a></li>\n", escape(what)),
            None => format!("<li>{}</li>\n", escape(what)),
        })
        .collect();
    let main = format!(
        "<h1>chatgate</h1>\n<p>An authentication gateway for conversational messaging.</p>\n\
         <ul>\n{items}</ul>\n"
    );
    let page = Frame {
        lang: "en",
        title: "chatgate",
        main: &main,
        ..Frame::default()
    };
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.html(),
    )
        .into_response()
}

/// The console with a trailing slash is the console: 308 to `/console`.
async fn console_slash() -> Response {
    axum::response::Redirect::permanent("/console").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_loopback_public_url_on_another_port_is_warned_of() {
        let said = port_mismatch("http://127.0.0.1:8080", at(9090)).unwrap();
        assert!(said.contains("port 8080"), "{said}");
        assert!(said.contains("http://127.0.0.1:9090"), "{said}");
        assert!(said.contains("CHATGATE_SERVER__PUBLIC_URL"), "{said}");
        assert!(port_mismatch("http://localhost/", at(8080)).is_some());
        assert!(port_mismatch("http://[::1]:8080", at(8081)).is_some());
    }

    #[test]
    fn the_same_port_or_another_host_is_not() {
        assert_eq!(port_mismatch("http://127.0.0.1:8080", at(8080)), None);
        assert_eq!(port_mismatch("http://localhost:8080/", at(8080)), None);
        // A public host is reached through a proxy: any port may be right.
        assert_eq!(port_mismatch("https://chat.example.com", at(8080)), None);
        assert_eq!(port_mismatch("http://10.0.0.5:8080", at(9090)), None);
    }

    #[test]
    fn serve_names_the_console_the_document_the_mcp_server_and_the_docs() {
        let said = lines("http://127.0.0.1:8080/").join("\n");
        for want in [
            "http://127.0.0.1:8080/console",
            "http://127.0.0.1:8080/openapi.json",
            "http://127.0.0.1:8080/mcp",
            "docs/api.md",
        ] {
            assert!(said.contains(want), "{said}");
        }
    }
}
