//! The live event stream (docs/api.md#events): `GET /v1/events`, Server-Sent
//! Events of the caller's team, resumable with `Last-Event-ID`.
//!
//! Each event is `id: <log id>`, `event: <type>`, `data: <the event JSON on
//! one line>`; an idle stream gets a `: keep-alive` comment every 15 s. The
//! request deadline bounds only the answer's head (the history bounds are
//! read before it); the stream itself lasts until the client leaves, falls
//! behind, cannot be written to for `server.write_timeout`, or the server
//! shuts down; one a console session opened, also when that session ends.
//! Resume rules: `events::stream::Start`. Open streams are capped per API
//! key, per team and in all (`events::slots`).
use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{self, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Agent;
use super::extract::QueryParams;
use super::openapi::{ApiKeyErrors, E429Streams, E403, E422};
use super::{AppState, WriteTimedOut};
use crate::error::{Error, Result};
use crate::events::slots::StreamRefusal;
use crate::events::stream::{self, Start};
use crate::events::LogEntry;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The team's events as `text/event-stream` (agent, admin). With
/// `Last-Event-ID`, first the retained events after that id (the history
/// keeps the last 15 minutes of events, however many); an id the history
/// no longer (or never) held starts from the oldest retained event.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("api_key" = []), ("console_session" = [])),
    params(("Last-Event-ID" = Option<String>, Header,
        description = "the `id:` of the last event received; resumes after it")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "`id:`, `event:` (the type), `data:` (the event JSON) per event; `: keep-alive` every 15 s"),
        ApiKeyErrors, E403, E422, E429Streams))]
async fn events(
    State(st): State<AppState>,
    agent: Agent,
    timed_out: Option<Extension<WriteTimedOut>>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<HashMap<String, String>>,
) -> Result<Response> {
    if let Some(name) = query.keys().next() {
        return Err(Error::invalid(name, "is not a parameter of this endpoint"));
    }
    let slot = match st.streams.open(&agent.team_id, &agent.key_id) {
        Ok(slot) => slot,
        Err(why) => return Ok(refused(why)),
    };
    let publisher = st.gateway.events();
    let log = publisher.log();
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let unavailable = |e: crate::events::LogError| {
        tracing::warn!(error = %e, "event log unavailable");
        Error::StoreUnavailable
    };
    // Listening first: nothing appended from now on falls between the
    // history read below and the live entries.
    // The history is its team's keyspace's: a team written again under a
    // deleted team's id reads none of the deleted team's events.
    let team = agent.team().keyspace.as_str();
    let live = log.listen(team).await.map_err(unavailable)?;
    let start = Start::resume(&*log, team, last_event_id)
        .await
        .map_err(unavailable)?;
    let entries = stream::entries(log, team, start, live, publisher.closing())
        .take_until(session_ended(st.clone(), agent.session.clone()));
    let keep_alive = KeepAlive::new()
        .interval(publisher.keep_alive())
        .text("keep-alive");
    // The slot goes with the stream: its place is free when the stream
    // ends; so does the count of a stream its connection's write time-out
    // ended.
    let dropped = DroppedIfTimedOut(timed_out.map(|Extension(t)| t));
    let frames = entries.map(move |e| {
        let _open = (&slot, &dropped);
        Ok::<_, Infallible>(frame(&e))
    });
    Ok(Sse::new(frames).keep_alive(keep_alive).into_response())
}

/// How often a stream a console session opened looks whether the session
/// still lives.
const SESSION_RECHECK: Duration = Duration::from_secs(5);

/// Resolves when the console session `session` ends (signed out, idle or
/// at its limit, or its team's `[console.oidc]` gone), looked at every
/// [`SESSION_RECHECK`]: a stream opened with the session's cookie cannot
/// outlive it (docs/console-sign-in.md#what-a-session-may-do). Never, for
/// a stream an API key opened.
async fn session_ended(st: AppState, session: Option<SecretString>) {
    let Some(session) = session else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(SESSION_RECHECK).await;
        let now = st.clock.now();
        if !crate::gateway::console::session_lives(&st.gateway, session.expose_secret(), now).await
        {
            return;
        }
    }
}

/// Counts a stream in `chatgate_event_streams_dropped_total` when it goes
/// because its connection could not be written to for
/// `server.write_timeout` (a reader that stopped reading), as one whose
/// reader fell behind is (`events::stream`).
struct DroppedIfTimedOut(Option<WriteTimedOut>);

impl Drop for DroppedIfTimedOut {
    fn drop(&mut self) {
        if self.0.as_ref().is_some_and(WriteTimedOut::is_set) {
            metrics::counter!("chatgate_event_streams_dropped_total").increment(1);
            tracing::info!(
                "event stream reader stopped reading (server.write_timeout); ending its stream"
            );
        }
    }
}

/// Seconds a client refused a stream is told to wait.
const STREAM_RETRY_AFTER: &str = "5";

/// 429 `rate_limited` over a key's or a team's cap; 503 `overloaded` when
/// streams hold half of the connections.
fn refused(why: StreamRefusal) -> Response {
    let detail = match why {
        StreamRefusal::Key => "this API key has server.max_streams_per_key event streams open",
        StreamRefusal::Team => "this team has server.max_streams_per_team event streams open",
        StreamRefusal::All => return super::overloaded(),
    };
    let mut res = super::problem::response(StatusCode::TOO_MANY_REQUESTS, "rate_limited", detail);
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(STREAM_RETRY_AFTER),
    );
    res
}

fn frame(entry: &LogEntry) -> sse::Event {
    // An `Event` always serialises (plain fields and a JSON value), on one line.
    let data = serde_json::to_string(&*entry.event).unwrap_or_default();
    sse::Event::default()
        .id(entry.id.to_string())
        .event(entry.event.kind.as_str())
        .data(data)
}
