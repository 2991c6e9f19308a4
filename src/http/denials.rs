//! The `access.denied` audit entry of a request whose API key is valid
//! and that is answered 403 `forbidden`, whichever step refused it
//! (docs/decisions/0146-what-an-entry-records.md): written before the
//! answer leaves.
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::domain::audit::{Acting, Actor, Via};
use crate::time::Timestamp;

/// The team and actor of a request's valid API key or console session,
/// set by the `Caller` extractor (or by the `Operator` extractor, for the
/// team an operator key's path names), for the `access.denied` of a 403; and
/// the check its `Chatgate-Actor` failed, for that of its 401.
#[derive(Clone, Default)]
pub struct CallerSlot(
    Arc<OnceLock<(Arc<str>, Actor)>>,
    Arc<OnceLock<&'static str>>,
);

impl CallerSlot {
    pub fn set(&self, team: &Arc<str>, actor: Actor) {
        let _ = self.0.set((Arc::clone(team), actor));
    }

    /// The actor an OAuth access token made (`oauth:` + its `sub`,
    /// docs/agents.md#oauth-access-tokens), for the request's log line.
    pub fn oauth_actor(&self) -> Option<&str> {
        let (_, actor) = self.0.get()?;
        (actor.api_key_id.as_deref()).filter(|id| id.starts_with("oauth:"))
    }

    /// The `Chatgate-Actor` was refused by the check `reason`.
    pub fn actor_refused(&self, reason: &'static str) {
        let _ = self.1.set(reason);
    }
}

/// Where a request comes from: its peer's address and its `X-Request-Id`
/// (set by `observe.rs` before any handler runs).
pub(super) fn via_of(parts: &Parts) -> Via {
    let ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string());
    let request_id = parts
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Via { ip, request_id }
}

/// `res`, once a 403 `forbidden` or `person_required` answered to a valid
/// key or session, or the 401 of its refused `Chatgate-Actor`, is recorded as
/// `access.denied` (before the answer leaves: should that fail, the
/// answer is 503, as every store failure).
pub(super) async fn record_denial(
    st: &AppState,
    slot: &CallerSlot,
    (peer, request_id): (Option<IpAddr>, &str),
    route: &str,
    res: Response,
) -> Response {
    let code = res.extensions().get::<super::ProblemLabel>().map(|c| c.0);
    let reason = match (code, slot.1.get()) {
        (Some("invalid_token"), Some(check)) => *check,
        (Some(code @ ("forbidden" | "person_required")), _) => code,
        _ => return res,
    };
    let Some((team, actor)) = slot.0.get() else {
        return res;
    };
    let via = Via {
        ip: peer.map(|ip| ip.to_string()),
        request_id: Some(request_id.to_string()),
    };
    let acting = Acting::new(actor.clone(), &via);
    let now: Timestamp = st.clock.now();
    // The team's trail is its keyspace's (`keys::keyspace`).
    let config = st.gateway.config();
    let team = config.team(team).map_or(&**team, |t| t.keyspace.as_str());
    match crate::gateway::audit::denied(&st.gateway, team, &acting, reason, route, now).await {
        Ok(()) => res,
        Err(e) => e.into_response(),
    }
}
