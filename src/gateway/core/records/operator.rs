//! The stored forms of the teams written through the operator API
//! (docs/operator-api.md#how-the-store-keeps-them): each team under its
//! own hash tag (`{team}:tm`), its JSON form with every secret sealed
//! (docs/decisions/0421-the-stored-form-of-a-secret.md), its digest and
//! when it was written; and the index of them all (`{~teams}:ix`), with
//! the generation every instance watches (`{~teams}:gen`).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Record;
use crate::time::{stored, Timestamp};

/// `{team}:tm`: a team written through the operator API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum StoredApiTeam {
    #[serde(rename = "1")]
    V1 {
        /// The team's JSON form, each secret sealed where it stands.
        body: serde_json::Value,
        /// The digest of its effective configuration: its `ETag`.
        digest: String,
        #[serde(with = "stored")]
        at: Timestamp,
    },
}

/// `{~teams}:ix`: every team written through the operator API, by id,
/// with its digest as last written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredApiTeams {
    #[serde(rename = "t")]
    pub teams: BTreeMap<String, String>,
}

/// `{~teams}:gen`: moved with every change of the index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTeamsGeneration {
    #[serde(rename = "g")]
    pub generation: u64,
}

impl Record for StoredApiTeam {}
impl Record for ApiTeamsGeneration {}
impl Record for StoredApiTeams {}
