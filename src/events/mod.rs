//! The publisher seam every state change goes through (CONTRACT 3.9).
//!
//! Use cases call [`Publisher::publish`] after their commit. The publisher
//! logs each event, counts it, fans it out in-process through a broadcast
//! channel ([`Publisher::subscribe`]), and appends it to the team's event
//! log ([`log`]: memory or Redis), which the live stream `GET /v1/events`
//! reads ([`stream`]).
pub mod log;
pub mod memory;
pub mod redis;
pub mod stream;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

pub use self::log::{EventLog, LogEntry, LogError, LogId};

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventType {
    #[serde(rename = "interaction.created")]
    InteractionCreated,
    #[serde(rename = "interaction.authenticated")]
    InteractionAuthenticated,
    #[serde(rename = "interaction.expiring")]
    InteractionExpiring,
    #[serde(rename = "interaction.expired")]
    InteractionExpired,
    #[serde(rename = "interaction.logged_out")]
    InteractionLoggedOut,
    #[serde(rename = "challenge.created")]
    ChallengeCreated,
    #[serde(rename = "challenge.failed")]
    ChallengeFailed,
    #[serde(rename = "challenge.code_revealed")]
    ChallengeCodeRevealed,
    #[serde(rename = "subject.locked")]
    SubjectLocked,
    #[serde(rename = "subject.banned")]
    SubjectBanned,
    #[serde(rename = "subject.unlocked")]
    SubjectUnlocked,
}

impl EventType {
    /// Every type, in the contract's order.
    pub const ALL: [EventType; 11] = [
        EventType::InteractionCreated,
        EventType::InteractionAuthenticated,
        EventType::InteractionExpiring,
        EventType::InteractionExpired,
        EventType::InteractionLoggedOut,
        EventType::ChallengeCreated,
        EventType::ChallengeFailed,
        EventType::ChallengeCodeRevealed,
        EventType::SubjectLocked,
        EventType::SubjectBanned,
        EventType::SubjectUnlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::InteractionCreated => "interaction.created",
            EventType::InteractionAuthenticated => "interaction.authenticated",
            EventType::InteractionExpiring => "interaction.expiring",
            EventType::InteractionExpired => "interaction.expired",
            EventType::InteractionLoggedOut => "interaction.logged_out",
            EventType::ChallengeCreated => "challenge.created",
            EventType::ChallengeFailed => "challenge.failed",
            EventType::ChallengeCodeRevealed => "challenge.code_revealed",
            EventType::SubjectLocked => "subject.locked",
            EventType::SubjectBanned => "subject.banned",
            EventType::SubjectUnlocked => "subject.unlocked",
        }
    }
}

/// One event. `data` never holds a code, PIN, token or key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub timestamp: Timestamp,
    pub team: String,
    pub data: serde_json::Value,
}

impl Event {
    pub fn new(kind: EventType, now: Timestamp, team: &str, data: serde_json::Value) -> Self {
        Event {
            id: Uuid::now_v7(),
            kind,
            timestamp: now,
            team: team.to_string(),
            data,
        }
    }
}

impl Event {
    /// The interaction id and the subject an event is about, for its log
    /// line: `data.interaction.id`; `data.subject.subject`, else the
    /// interaction's `customer_ref`, else `interaction:<id>`.
    fn ids(&self) -> (Option<&str>, Option<std::borrow::Cow<'_, str>>) {
        let interaction = self.data.get("interaction");
        let id = interaction
            .and_then(|i| i.get("id"))
            .and_then(|v| v.as_str());
        let subject = self
            .data
            .get("subject")
            .and_then(|s| s.get("subject"))
            .and_then(|v| v.as_str())
            .or_else(|| {
                interaction
                    .and_then(|i| i.get("customer_ref"))
                    .and_then(|v| v.as_str())
            })
            .map(std::borrow::Cow::Borrowed)
            .or_else(|| id.map(|id| crate::domain::interaction::own_subject(id).into()));
        (id, subject)
    }
}

/// How often an idle live stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where use cases send events; also what the live stream reads.
#[derive(Clone)]
pub struct Publisher {
    tx: broadcast::Sender<Arc<Event>>,
    log: Arc<dyn EventLog>,
    closing: Arc<watch::Sender<bool>>,
    keep_alive: Duration,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher with an in-process log.
    pub fn new() -> Self {
        Self::with_log(Arc::new(memory::MemoryLog::new()))
    }

    pub fn with_log(log: Arc<dyn EventLog>) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Publisher {
            tx,
            log,
            closing: Arc::new(watch::channel(false).0),
            keep_alive: KEEP_ALIVE,
        }
    }

    /// Another keep-alive interval for the live stream (tests).
    pub fn with_keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    pub fn publish(&self, event: Event) {
        let (interaction, subject) = event.ids();
        tracing::info!(event_id = %event.id, event = event.kind.as_str(), team = %event.team, interaction, subject = subject.as_deref(), "event");
        metrics::counter!("chatgate_events_total", "type" => event.kind.as_str()).increment(1);
        let event = Arc::new(event);
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.tx.send(Arc::clone(&event));
        self.log.append(event);
    }

    /// Every event published after this call, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// The event log the live stream reads.
    pub fn log(&self) -> Arc<dyn EventLog> {
        Arc::clone(&self.log)
    }

    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// Turns true when the server shuts down: live streams end then.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Ends every live stream (the server is shutting down; clients
    /// resume elsewhere or later with `Last-Event-ID`).
    pub fn end_streams(&self) {
        self.closing.send_replace(true);
    }
}
