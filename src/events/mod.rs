//! The publisher seam every state change goes through (CONTRACT 3.9).
//!
//! Use cases call [`Publisher::publish`] after their commit. Today the
//! publisher logs each event, counts it, and fans it out in-process through a
//! broadcast channel; the live stream and the webhooks subscribe behind this
//! seam without touching the use cases.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use uuid::Uuid;

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

/// Where use cases send events.
#[derive(Clone)]
pub struct Publisher {
    tx: broadcast::Sender<Arc<Event>>,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(4096);
        Publisher { tx }
    }

    pub fn publish(&self, event: Event) {
        tracing::info!(event_id = %event.id, event = event.kind.as_str(), team = %event.team, "event");
        metrics::counter!("chatgate_events_total", "type" => event.kind.as_str()).increment(1);
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.tx.send(Arc::new(event));
    }

    /// Every event published after this call, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
