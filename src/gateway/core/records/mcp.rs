//! The stored form of an MCP session (docs/agents.md#the-server): the bot
//! key that opened it, when, and what its last `get_verification` of each
//! interaction answered (a digest), so that a wait answers at once when
//! something changed since.
use serde::{Deserialize, Serialize};

use super::Record;
use crate::time::{stored, Timestamp};

/// `{team}:mcp:<hash>`: a session, under the keyed hash of its id (the
/// id itself is only in the client's `Mcp-Session-Id` header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMcpSession {
    /// The id of the API key that opened it: only that key may use it.
    #[serde(rename = "k")]
    pub key_id: String,
    #[serde(rename = "at", with = "stored")]
    pub opened_at: Timestamp,
    /// Its last use as recorded (at most once a minute); none: its opening.
    #[serde(
        rename = "u",
        default,
        skip_serializing_if = "Option::is_none",
        with = "stored::opt"
    )]
    pub used_at: Option<Timestamp>,
    /// Interaction id → the digest of the answer last given for it, the
    /// most recent last; at most [`StoredMcpSession::SEEN`] of them.
    #[serde(rename = "s", default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<(String, String)>,
}

impl Record for StoredMcpSession {}

impl StoredMcpSession {
    /// Its last use as recorded.
    pub fn last_used(&self) -> Timestamp {
        self.used_at.unwrap_or(self.opened_at)
    }

    /// The interactions a session remembers its last answer of.
    pub const SEEN: usize = 32;

    /// The digest of the last answer about `interaction`, if any.
    pub fn seen(&self, interaction: &str) -> Option<&str> {
        self.seen
            .iter()
            .find(|(i, _)| i == interaction)
            .map(|(_, d)| d.as_str())
    }

    /// Remembers `digest` as the last answer about `interaction`, the
    /// oldest forgotten past [`StoredMcpSession::SEEN`].
    pub fn note(&mut self, interaction: &str, digest: &str) {
        self.seen.retain(|(i, _)| i != interaction);
        if self.seen.len() >= Self::SEEN {
            self.seen.remove(0);
        }
        self.seen
            .push((interaction.to_string(), digest.to_string()));
    }
}
