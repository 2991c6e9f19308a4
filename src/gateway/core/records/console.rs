//! The stored forms of the console's sign-in (docs/console-sign-in.md): a
//! sign-in under way, kept under the digest of its state; the pointer
//! from a session's hash to its team; and the session itself.
use serde::{Deserialize, Serialize};

use super::Record;
use crate::domain::console_session::{ConsoleRole, Session};
use crate::oidc::flow::Flow;
use crate::time::{stored, Timestamp};

/// `csi:<digest of the state>`: a sign-in started at
/// `GET /console/{team}/sign-in`, until the provider's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSignIn {
    #[serde(rename = "t")]
    pub team: String,
    #[serde(flatten)]
    pub flow: Flow,
    /// Another browser presented it, and that was recorded: once per
    /// state, so that a started sign-in records at most one
    /// `state_mismatch` (docs/console-sign-in.md#refused-sign-ins).
    #[serde(rename = "mm", default, skip_serializing_if = "std::ops::Not::not")]
    pub mismatch_recorded: bool,
}

/// `cst:<hash>`: the team of a session, found from its cookie alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTeam {
    #[serde(rename = "t")]
    pub team: String,
}

/// `{team}:cs:<hash>`: a console session, under the keyed hash of its id
/// (the id itself is only in the browser's cookie).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    t: String,
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    r: ConsoleRole,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(with = "stored")]
    seen: Timestamp,
}

impl Record for StoredSignIn {}
impl Record for SessionTeam {}
impl Record for StoredSession {}

impl From<&Session> for StoredSession {
    fn from(s: &Session) -> Self {
        StoredSession {
            t: s.team.clone(),
            s: s.sub.clone(),
            n: s.name.clone(),
            r: s.role,
            at: s.signed_in_at,
            seen: s.last_seen,
        }
    }
}

impl From<StoredSession> for Session {
    fn from(s: StoredSession) -> Self {
        Session {
            team: s.t,
            sub: s.s,
            name: s.n,
            role: s.r,
            signed_in_at: s.at,
            last_seen: s.seen,
        }
    }
}
