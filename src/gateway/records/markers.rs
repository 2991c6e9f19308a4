//! The small records whose presence, or one field, is all they say: a
//! used token id (`{team}:wr:…`, `revocation.rs`), what a conversation's
//! key points at (`{team}:c:…`, `interactions.rs`), what a website's
//! back-channel logout was answered (`website.rs`), and a provider
//! session its back-channel logout ended (`{team}:ose:…`,
//! `oidc_logout.rs`). Pinned by the bytes tests in `tests.rs`.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Record;

/// A used token id's record: its presence is all it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsedJti {}

impl Record for UsedJti {}

/// What the conversation key points at: its interaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationLink {
    pub id: Uuid,
}

impl Record for ConversationLink {}

/// What a back-channel logout was answered, remembered per `webhook-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogoutAnswer {
    pub logged_out: usize,
}

impl Record for LogoutAnswer {}

/// A provider session its back-channel logout ended: its presence is all
/// it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSession {}

impl Record for EndedSession {}
