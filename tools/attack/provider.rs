//! The provider-side attacks (docs/operations.md#teams-that-bring-their-own-identity-provider-the-threat-model):
//! a small hostile OpenID provider on loopback that one team of the
//! gateway has as its `[oidc] issuer`, and the browser steps that drive a
//! login through it.
//!
//! - `oversized-provider`: its token endpoint answers `--mib` MiB of JSON
//!   (whitespace, in 64 KiB chunks, no `Content-Length`). The gateway
//!   should read 1 MiB of it and answer the customer 502; with `--pid` the
//!   gateway's resident memory is printed before and after.
//! - `mix-up`: the attacker's chat at the victim's team starts a login and
//!   keeps its authorization request; the victim opens a link of the
//!   attacker's team, whose provider (this one) forwards her browser to the
//!   victim team's provider with that request and its own team's state.
//!   Every code that reaches this provider's token endpoint is replayed
//!   under the attacker's state. The gateway should answer the victim 400
//!   and never send the code here; the attacker's chat stays
//!   unauthenticated. The victim's provider must sign in at once (a test
//!   provider); where it shows a sign-in page the tool says so and stops.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

/// What the hostile provider does, and what it saw.
#[derive(Default)]
pub struct Hostile {
    /// `oversized-provider`: MiB of token answer.
    pub token_mib: usize,
    /// `mix-up`: `/authorize` forwards the browser here (plus its `state`).
    pub forward_to: Option<String>,
    /// Codes sent to its token endpoint.
    pub codes: Vec<String>,
}

pub type Shared = Arc<Mutex<Hostile>>;

/// Serves the hostile provider at `listen`; its issuer is `http://{listen}`.
pub async fn serve(listen: SocketAddr, hostile: Shared) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/jwks", get(|| async { Json(json!({"keys": []})) }))
        .with_state((hostile, issuer.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(issuer)
}

type St = State<(Shared, String)>;

async fn discovery(State((_, iss)): St) -> Json<Value> {
    Json(json!({
        "issuer": iss,
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn authorize(State((h, iss)): St, Query(q): Query<HashMap<String, String>>) -> Response {
    let state = q.get("state").cloned().unwrap_or_default();
    let forward = h.lock().map(|h| h.forward_to.clone()).ok().flatten();
    let target = match forward {
        Some(to) => url::Url::parse(&to).map(|mut u| {
            u.query_pairs_mut().append_pair("state", &state);
            u
        }),
        None => url::Url::parse(q.get("redirect_uri").map_or("", String::as_str)).map(|mut u| {
            u.query_pairs_mut()
                .append_pair("code", "hostile-code")
                .append_pair("state", &state)
                .append_pair("iss", &iss);
            u
        }),
    };
    match target {
        Ok(u) => Redirect::to(u.as_str()).into_response(),
        Err(_) => (axum::http::StatusCode::BAD_REQUEST, "no redirect_uri").into_response(),
    }
}

async fn token(State((h, _)): St, Form(form): Form<HashMap<String, String>>) -> Response {
    let mib = match h.lock() {
        Ok(mut h) => {
            h.codes.push(form.get("code").cloned().unwrap_or_default());
            h.token_mib
        }
        Err(_) => 0,
    };
    if mib == 0 {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let chunk = bytes_of(64 << 10);
    let chunks = std::iter::once(bytes::Bytes::from_static(b"{"))
        .chain(std::iter::repeat_n(chunk, mib * 16))
        .chain(std::iter::once(bytes::Bytes::from_static(b"}")))
        .map(Ok::<_, std::io::Error>);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(futures::stream::iter(chunks)),
    )
        .into_response()
}

fn bytes_of(n: usize) -> bytes::Bytes {
    bytes::Bytes::from(vec![b' '; n])
}

/// A browser for these scenarios: no automatic redirects, the gateway
/// reached at `target` whatever its `public_url` says.
pub struct Browser {
    pub http: reqwest::Client,
    pub public_url: String,
    pub base: String,
}

/// One step's answer: status, `Location`, the first `Set-Cookie` pair.
pub struct Step {
    pub status: u16,
    pub location: Option<String>,
    pub cookie: Option<String>,
}

impl Browser {
    pub fn new(target: SocketAddr, public_url: Option<String>) -> Browser {
        let base = format!("http://{target}");
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            public_url: public_url.unwrap_or_else(|| base.clone()),
            base,
        }
    }

    /// `url` with the gateway's public origin replaced by `target`.
    pub fn local(&self, url: &str) -> String {
        url.strip_prefix(&self.public_url)
            .map_or_else(|| url.to_string(), |rest| format!("{}{rest}", self.base))
    }

    pub fn is_gateway(&self, url: &str) -> bool {
        url.starts_with(&self.public_url) || url.starts_with(&self.base)
    }

    pub async fn get(&self, url: &str, cookie: Option<&str>) -> Result<Step, String> {
        let mut req = self.http.get(self.local(url)).header("accept", "text/html");
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().await.map_err(|e| format!("GET {url}: {e}"))?;
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Ok(Step {
            status: res.status().as_u16(),
            location: header("location"),
            cookie: header("set-cookie").and_then(|c| c.split(';').next().map(str::to_string)),
        })
    }

    /// A bot's new interaction and an `oidc` link for it: (id, short URL).
    pub async fn oidc_link(&self, bot: &str) -> Result<(String, String), String> {
        let created: Value = self
            .http
            .post(format!("{}/v1/interactions", self.base))
            .bearer_auth(bot)
            .json(&json!({"channel": "webchat", "conversation_id": format!("attack-{}", uuid::Uuid::now_v7())}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let id = created["id"]
            .as_str()
            .ok_or(format!(
                "no interaction: {created} (a webchat channel and a bot key?)"
            ))?
            .to_string();
        let link: Value = self
            .http
            .post(format!("{}/v1/interactions/{id}/login-links", self.base))
            .bearer_auth(bot)
            .json(&json!({"provider": "oidc"}))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let url = link["short_url"]
            .as_str()
            .ok_or(format!("no link: {link} (does the team have [oidc]?)"))?
            .to_string();
        Ok((id, url))
    }

    /// The interaction's status, as its bot reads it.
    pub async fn status(&self, bot: &str, id: &str) -> String {
        let v: Value = match self
            .http
            .get(format!("{}/v1/interactions/{id}", self.base))
            .bearer_auth(bot)
            .send()
            .await
        {
            Ok(res) => res.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        format!("{} {}", v["status"], v["customer"])
    }
}

/// The gateway's resident memory, from `/proc/{pid}/status`.
pub fn rss(pid: Option<u32>) -> String {
    pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "VmRSS: (give --pid)".into())
}
