//! The live event stream (docs/api.md#events): `GET /v1/events`, Server-Sent
//! Events of the caller's team, resumable with `Last-Event-ID`.
//!
//! Each event is `id: <log id>`, `event: <type>`, `data: <the event JSON on
//! one line>`; an idle stream gets a `: keep-alive` comment every 15 s. The
//! request deadline bounds only the answer's head (the history bounds are
//! read before it); the stream itself lasts until the client leaves, falls
//! behind, or the server shuts down. Resume rules: `events::stream::Start`.
use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::QueryParams;
use super::openapi::{ApiKeyErrors, E403, E422};
use super::AppState;
use crate::error::{Error, Result};
use crate::events::stream::{self, Start};
use crate::events::LogEntry;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// The team's events as `text/event-stream` (agent, admin). With
/// `Last-Event-ID`, first the retained events after that id; an id the
/// history no longer (or never) held starts from the oldest retained event.
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("api_key" = [])),
    params(("Last-Event-ID" = Option<String>, Header,
        description = "the `id:` of the last event received; resumes after it")),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "`id:`, `event:` (the type), `data:` (the event JSON) per event; `: keep-alive` every 15 s"),
        ApiKeyErrors, E403, E422))]
async fn events(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    QueryParams(query): QueryParams<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>> {
    caller.require_agent()?;
    if let Some(name) = query.keys().next() {
        return Err(Error::invalid(name, "is not a parameter of this endpoint"));
    }
    let publisher = &st.gateway.events;
    let log = publisher.log();
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let start = Start::resume(&*log, &caller.team, last_event_id)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "event log unavailable");
            Error::StoreUnavailable
        })?;
    let entries = stream::entries(log, &caller.team, start, publisher.closing());
    let keep_alive = KeepAlive::new()
        .interval(publisher.keep_alive())
        .text("keep-alive");
    Ok(Sse::new(entries.map(|e| Ok(frame(&e)))).keep_alive(keep_alive))
}

fn frame(entry: &LogEntry) -> sse::Event {
    // An `Event` always serialises (plain fields and a JSON value), on one line.
    let data = serde_json::to_string(&*entry.event).unwrap_or_default();
    sse::Event::default()
        .id(entry.id.to_string())
        .event(entry.event.kind.as_str())
        .data(data)
}
