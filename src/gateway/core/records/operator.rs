//! The stored forms of the teams written through the operator API
//! (docs/operator-api.md#how-the-store-keeps-them): each team under its
//! own hash tag (`{team}:tm`), its JSON form with every secret sealed
//! (docs/decisions/0421-the-stored-form-of-a-secret.md), its digest and
//! when it was written; each channel written through it beside the index
//! (`{~teams}:ch:<name>`), its secrets sealed as a team's; and the
//! indexes of them all (`{~teams}:ix`, `{~teams}:cx`), with the
//! generation every instance watches (`{~teams}:gen`).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Record;
use crate::domain::audit::Actor;
use crate::time::{stored, Timestamp};

/// A team or a channel written through the operator API, as the store
/// keeps it: under the team's own tag (`{team}:tm`, [`StoredApiTeam`]),
/// or beside the indexes (`{~teams}:ch:<name>`, [`StoredApiChannel`]),
/// so that a channel commits with its index and the generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "v", try_from = "StoredApiFormRead")]
pub enum StoredApiForm {
    #[serde(rename = "1")]
    V1 {
        /// The JSON form, each secret sealed where it stands.
        body: serde_json::Value,
        /// The digest of its body (a team's without what it inherits): its
        /// `ETag`.
        digest: String,
        #[serde(with = "stored")]
        at: Timestamp,
        /// A team's incarnation, chosen when it was created: what its
        /// keys are made from besides its id (`store::keys::keyspace`).
        /// None for a channel, and for a team stored before incarnations
        /// were kept, whose keys stay its id's.
        #[serde(rename = "inc", default, skip_serializing_if = "Option::is_none")]
        incarnation: Option<String>,
    },
}

/// `{team}:tm`: a team written through the operator API.
pub type StoredApiTeam = StoredApiForm;

/// A [`StoredApiForm`] as its text is read: straight into its members,
/// where an internally tagged enum is first read whole into serde's
/// buffer and then read again (a start reads every API team's;
/// docs/performance.md#the-build-of-a-start-cut-again).
#[derive(Deserialize)]
struct StoredApiFormRead {
    v: String,
    body: serde_json::Value,
    digest: String,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(rename = "inc", default)]
    incarnation: Option<String>,
}

impl TryFrom<StoredApiFormRead> for StoredApiForm {
    type Error = String;

    fn try_from(read: StoredApiFormRead) -> Result<Self, String> {
        match read.v.as_str() {
            "1" => Ok(StoredApiForm::V1 {
                body: read.body,
                digest: read.digest,
                at: read.at,
                incarnation: read.incarnation,
            }),
            v => Err(format!("unknown variant `{v}`, expected `1`")),
        }
    }
}

/// `{~teams}:ch:<name>`: a channel written through the operator API.
pub type StoredApiChannel = StoredApiForm;

/// `{~teams}:ix:<n>`: the `n`th part of the index of the teams written
/// through the operator API (each id in the part its hash names), by id,
/// with its digest as last written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApiTeams {
    #[serde(rename = "t")]
    pub teams: BTreeMap<String, String>,
}

/// `{~teams}:ix`: the index whole, as an earlier version kept it, or,
/// once it is kept in parts, the number of parts: which an earlier
/// version cannot read, so that none reads or writes an index that no
/// longer moves (docs/decisions/0461-the-index-of-the-api-teams-in-parts.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ApiTeamsIndex {
    InParts { parts: u16 },
    Whole(StoredApiTeams),
}

/// `{~teams}:cx`: every channel written through the operator API, by
/// name, with its digest. A key of its own beside the teams' index, so
/// that a writer of teams that knows nothing of channels (an older
/// instance, during a rolling upgrade) never rewrites it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApiChannels {
    #[serde(rename = "c")]
    pub channels: BTreeMap<String, String>,
}

/// `{~teams}:gen`: moved with every change of the index; beside it, the
/// writes under way: each marked before its team's commit and cleared by
/// the index's, so that a writer that stops between the two leaves a
/// mark another instance finds (docs/operator-api.md#a-writer-that-stops).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTeamsGeneration {
    #[serde(rename = "g")]
    pub generation: u64,
    /// Team id → the marks of the writes under way.
    #[serde(rename = "p", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending: BTreeMap<String, Vec<PendingWrite>>,
    /// A random number drawn when the record is created, kept by every
    /// write: another one than an instance read before is a store that
    /// came back empty (0: a record written before it was kept).
    #[serde(rename = "b", default, skip_serializing_if = "is_zero")]
    pub born: u64,
    /// The parts of the index the last moves changed, each with the
    /// generation that moved it, oldest first (a bounded number).
    #[serde(rename = "l", default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<(u64, u16)>,
    /// Every part moved after this generation is in `log`; `None`: not
    /// known (a new record, one a write-back or an earlier version
    /// wrote), and an instance reads every part.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub logged_since: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ApiTeamsGeneration {
    /// What a write of the record starts from: `read`, or a record created
    /// now, with its own `born`.
    pub fn next_of(read: Option<&ApiTeamsGeneration>) -> ApiTeamsGeneration {
        match read {
            Some(read) => read.clone(),
            None => ApiTeamsGeneration {
                born: crate::store::fresh_version(),
                ..ApiTeamsGeneration::default()
            },
        }
    }
}

/// A write of a team under way: its writer's token and when it began;
/// for a team that lists a channel written, who wrote the channel (the
/// team's entry is theirs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingWrite {
    #[serde(rename = "k")]
    pub token: u64,
    #[serde(rename = "a", with = "stored")]
    pub at: Timestamp,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub channel_by: Option<Actor>,
}

/// `{team}:tmd`: where the API team last deleted under an id left its
/// audit trail, kept for the trail's retention
/// (docs/decisions/0437-a-team-id-written-again-is-a-new-tenant.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedTeam {
    /// Its keyspace (`store::keys::keyspace`).
    #[serde(rename = "ks")]
    pub keyspace: String,
    #[serde(rename = "at", with = "stored")]
    pub at: Timestamp,
}

/// `{~teams}:key:<sha256 hex>`: the API team that claimed an API key,
/// taken before the team's write that holds it commits, so that two
/// stored API teams never hold one key (docs/operator-api.md#keys). No
/// TTL: deleted once its team no longer holds the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyClaim {
    /// The team's id.
    #[serde(rename = "t")]
    pub team: String,
    /// When a write of the team last claimed it.
    #[serde(rename = "at", with = "stored")]
    pub at: Timestamp,
}

/// `{~teams}:rk:<sha256 hex>`: a key an instance's configuration holds
/// outside the operator API (a file team's API key, an `[operator]` key),
/// reserved for its holder, so that an instance or an import whose
/// configuration lacks that team or operator refuses the key to an API
/// team (docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md).
/// Kept a day, renewed by every instance that holds the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReservation {
    /// The file team's id, or `~operator` for an `[operator]` key.
    #[serde(rename = "t")]
    pub holder: String,
    /// When an instance holding the key last renewed it.
    #[serde(rename = "at", with = "stored")]
    pub at: Timestamp,
}

/// `{~teams}:cu:<name>`: the API teams whose writes listing API channel
/// `name` claimed it, each with when, taken before the team's write
/// commits, so that a delete of the channel and a write of a team that
/// lists it, at once, cannot both go through
/// (docs/operator-api.md#the-teams-that-list-a-channel). No TTL: deleted
/// with its channel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelUses {
    /// Team id → when a write of it last claimed the channel (unix ms).
    #[serde(rename = "t")]
    pub teams: BTreeMap<String, i64>,
}

impl Record for ChannelUses {}
impl Record for ApiKeyClaim {}
impl Record for KeyReservation {}
impl Record for StoredApiForm {}
impl Record for DeletedTeam {}
impl Record for ApiTeamsGeneration {}
impl Record for StoredApiTeams {}
impl Record for ApiTeamsIndex {}
impl Record for StoredApiChannels {}
