//! The small records whose presence, or one field, is all they say: a
//! used token id (`{team}:wr:…`, `revocation.rs`), what a conversation's
//! key points at (`{team}:c:…`, `interactions.rs`), what a website's
//! back-channel logout was answered (`website.rs`), a provider session
//! its back-channel logout ended (`{team}:ose:…`, `oidc_logout.rs`), and
//! what a login link's short code leads to (`l:…`, `login.rs`), the
//! identity hashes of a WhatsApp conversation and the messages a WhatsApp
//! channel sent (`identity_changes.rs`). Pinned by the bytes tests in
//! `tests.rs`.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Record;
use crate::domain::identity_change::{KnownHashes, SeenHash};
use crate::domain::login_token::LoginClaims;
use crate::time::Timestamp;

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

/// A WhatsApp delivery that acted on identities (a system message, a
/// refusal, a hash that was a change), remembered by its id so that
/// Meta's retries of it act once (docs/channels.md#identity-changes):
/// `c`, how many conversations it changed. Its presence is what counts:
/// what an earlier version wrote there (`{"logged_out":n}`) reads as one
/// that changed none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActedDelivery {
    #[serde(default)]
    pub c: usize,
}

impl Record for ActedDelivery {}

/// The identity hashes Meta gave for the user behind a WhatsApp
/// conversation (docs/channels.md#identity-changes): `hash` the newest
/// (all the previous version wrote, and all it reads: it ignores the
/// rest), `at` Meta's time for it in seconds, `seen` the ones before it,
/// newest first, each `[hash, at]`. A record without `at` was written
/// before times were kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityHash {
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<(String, Option<i64>)>,
}

impl Record for IdentityHash {}

impl From<IdentityHash> for KnownHashes {
    fn from(h: IdentityHash) -> Self {
        KnownHashes {
            newest: SeenHash {
                hash: h.hash,
                at: h.at,
            },
            earlier: h
                .seen
                .into_iter()
                .map(|(hash, at)| SeenHash { hash, at })
                .collect(),
        }
    }
}

impl From<&KnownHashes> for IdentityHash {
    fn from(k: &KnownHashes) -> Self {
        IdentityHash {
            hash: k.newest.hash.clone(),
            at: k.newest.at,
            seen: k.earlier.iter().map(|h| (h.hash.clone(), h.at)).collect(),
        }
    }
}

/// A message a WhatsApp Cloud API channel sent, by its id
/// (`{team}:wsm:…`): its presence is all it says, that a status about it
/// is about a message of the gateway's (docs/channels.md#identity-changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {}

impl Record for SentMessage {}

/// What a short code leads to. It holds no token: the token is signed again
/// from these claims when the link is followed (HS256 is deterministic, so
/// it is the very token issued), and reading the store yields no live
/// credential. The interaction, the link and the end are the claims' `sub`,
/// `jti` and `exp` (earlier versions wrote them out beside the claims as
/// well, under long names that are read as aliases; the copies are
/// ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShortLink {
    /// The security key that signed the token.
    #[serde(rename = "k", alias = "kid")]
    pub kid: String,
    #[serde(rename = "c", alias = "claims")]
    pub claims: LoginClaims,
    /// The login runs at the team's identity provider, not its login page.
    #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
    pub oidc: bool,
    /// The `acr_values` its login asks the identity provider for instead
    /// of the team's; empty: the team's.
    #[serde(rename = "a", default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
}

impl ShortLink {
    /// The interaction and the link it leads to (`None` for claims this
    /// gateway did not sign: it writes UUIDs).
    pub fn target(&self) -> Option<(Uuid, Uuid)> {
        let interaction = Uuid::parse_str(&self.claims.sub).ok()?;
        Some((interaction, Uuid::parse_str(&self.claims.jti).ok()?))
    }

    pub fn expires_at(&self) -> Option<Timestamp> {
        self.claims.exp.map(Timestamp::from_unix_seconds)
    }
}

impl Record for ShortLink {}

/// A provider session its back-channel logout ended: its presence is all
/// it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSession {}

impl Record for EndedSession {}

/// `n:<code>`, `wl:<code>`, `ce:<code>`: where a challenge link leads,
/// found from its code alone (docs/architecture.md#challenge-links): `t`
/// its team, `i` its interaction, `c` its challenge. One form for every
/// kind of link (`gateway::links`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredChallengeLink {
    pub t: String,
    pub i: Uuid,
    pub c: Uuid,
}

impl Record for StoredChallengeLink {}
