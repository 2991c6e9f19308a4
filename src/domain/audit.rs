//! The audit trail's entry and its chain (docs/audit.md): who did what to
//! whom, each entry linked to the one before by `prev` and sealed by
//! `hash`, the SHA-256 of the entry without its `hash` member in RFC 8785
//! canonical JSON. Plain functions: the store and the answers live
//! elsewhere; checking an export (`chatgate audit verify`) is
//! [`verify_chain`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::time::Timestamp;

/// `prev` of the first entry, and the head's `hash` before any entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records. Each name is spelled once, in [`Action::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CodeRevealed,
    LoggedOut,
    SubjectUnlocked,
    RecognitionForgotten,
    SubjectLocked,
    SubjectBanned,
    AccessDenied,
    ConfigChanged,
    AuditRead,
    ConsoleSignedIn,
    ConsoleSignInFailed,
    ConsoleSignedOut,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::CodeRevealed,
        Action::LoggedOut,
        Action::SubjectUnlocked,
        Action::RecognitionForgotten,
        Action::SubjectLocked,
        Action::SubjectBanned,
        Action::AccessDenied,
        Action::ConfigChanged,
        Action::AuditRead,
        Action::ConsoleSignedIn,
        Action::ConsoleSignInFailed,
        Action::ConsoleSignedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::CodeRevealed => "challenge.code_revealed",
            Action::LoggedOut => "interaction.logged_out",
            Action::SubjectUnlocked => "subject.unlocked",
            Action::RecognitionForgotten => "recognition.forgotten",
            Action::SubjectLocked => "subject.locked",
            Action::SubjectBanned => "subject.banned",
            Action::AccessDenied => "access.denied",
            Action::ConfigChanged => "config.changed",
            Action::AuditRead => "audit.read",
            Action::ConsoleSignedIn => "console.signed_in",
            Action::ConsoleSignInFailed => "console.sign_in_failed",
            Action::ConsoleSignedOut => "console.signed_out",
        }
    }
}

/// `success` or `denied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Denied,
}

/// Who acted: the kind of actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    /// A request authenticated by an API key alone.
    ApiKey,
    /// A named person (with the key used, when one was).
    Person,
    /// A website's signed back-channel logout.
    Website,
    /// An identity provider (`id` = its issuer).
    Provider,
    /// The gateway itself: lockouts by failures, its configuration.
    System,
}

/// Who acted, with the members that apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

impl Actor {
    fn of(kind: ActorType) -> Self {
        Actor {
            kind,
            api_key_id: None,
            sub: None,
            name: None,
            id: None,
            ip: None,
        }
    }

    /// A request's API key.
    pub fn api_key(key_id: &str) -> Self {
        Actor {
            api_key_id: Some(key_id.to_string()),
            ..Actor::of(ActorType::ApiKey)
        }
    }

    /// A person a workforce provider named, acting through the key `key_id`.
    pub fn person(sub: &str, name: Option<&str>, key_id: &str) -> Self {
        Actor {
            sub: Some(sub.to_string()),
            name: name.map(str::to_string),
            api_key_id: Some(key_id.to_string()),
            ..Actor::of(ActorType::Person)
        }
    }

    /// A person signed in to the console, acting by its session (no key):
    /// `sub` is `None` for a sign-in refused before the ID token was read.
    pub fn signed_in(sub: Option<&str>, name: Option<&str>) -> Self {
        Actor {
            sub: sub.map(str::to_string),
            name: name.map(str::to_string),
            ..Actor::of(ActorType::Person)
        }
    }

    /// The actor as an event names it: without its address.
    pub fn without_ip(&self) -> Self {
        Actor {
            ip: None,
            ..self.clone()
        }
    }

    /// A website's signed request.
    pub fn website() -> Self {
        Actor::of(ActorType::Website)
    }

    /// An identity provider, by its issuer.
    pub fn provider(issuer: &str) -> Self {
        Actor {
            id: Some(issuer.to_string()),
            ..Actor::of(ActorType::Provider)
        }
    }

    /// The gateway itself.
    pub fn system() -> Self {
        Actor::of(ActorType::System)
    }
}

/// What the action was done to, with the members that apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interaction_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// Where a request came from, for its entries: the peer's address and
/// the request's `X-Request-Id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Via {
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// Who asked, as a request names it: the actor and the request's id
/// (`None` for background work).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acting {
    pub actor: Actor,
    pub request_id: Option<String>,
}

impl Acting {
    /// `actor`, asking through the request `via`.
    pub fn new(mut actor: Actor, via: &Via) -> Self {
        actor.ip = via.ip.clone();
        Acting {
            actor,
            request_id: via.request_id.clone(),
        }
    }

    /// The gateway itself, in background work or a request's side effect.
    pub fn system(request_id: Option<String>) -> Self {
        Acting {
            actor: Actor::system(),
            request_id,
        }
    }
}

/// An entry before the chain places it: everything but `seq`, `prev` and
/// `hash`.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub action: Action,
    pub outcome: Outcome,
    pub actor: Actor,
    pub target: Target,
    pub detail: Map<String, Value>,
    pub request_id: Option<String>,
}

impl Draft {
    /// A successful `action` by `acting` on `target`.
    pub fn success(action: Action, acting: &Acting, target: Target) -> Self {
        Draft {
            action,
            outcome: Outcome::Success,
            actor: acting.actor.clone(),
            target,
            detail: Map::new(),
            request_id: acting.request_id.clone(),
        }
    }

    /// `detail.name` = `value`.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(name.to_string(), value.into());
        self
    }
}

/// One entry of the trail, as written, answered and exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub id: Uuid,
    pub time: String,
    pub team: String,
    pub action: String,
    pub outcome: Outcome,
    pub actor: Actor,
    pub target: Target,
    pub detail: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub prev: String,
    pub hash: String,
}

/// The latest entry of a team's chain, or the start (`seq` 0, [`GENESIS`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
    pub time: Option<String>,
}

impl Head {
    pub fn genesis() -> Self {
        Head {
            seq: 0,
            hash: GENESIS.to_string(),
            time: None,
        }
    }

    /// The head once `entry` is its latest.
    pub fn of(entry: &Entry) -> Self {
        Head {
            seq: entry.seq,
            hash: entry.hash.clone(),
            time: Some(entry.time.clone()),
        }
    }
}

/// An entry's time: RFC 3339, UTC, always with milliseconds.
pub fn entry_time(now: Timestamp) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(now.unix_millis())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Places `draft` after `head` in `team`'s chain: `seq` the next,
/// `prev` the head's hash, and `hash` over the result.
pub fn seal(head: &Head, team: &str, draft: Draft, id: Uuid, now: Timestamp) -> Entry {
    let mut entry = Entry {
        seq: head.seq + 1,
        id,
        time: entry_time(now),
        team: team.to_string(),
        action: draft.action.as_str().to_string(),
        outcome: draft.outcome,
        actor: draft.actor,
        target: draft.target,
        detail: draft.detail,
        request_id: draft.request_id,
        prev: head.hash.clone(),
        hash: String::new(),
    };
    entry.hash = match serde_json::to_value(&entry) {
        Ok(Value::Object(members)) => hash_of(&members),
        // An entry is always an object; a hash that cannot match says so.
        _ => String::new(),
    };
    entry
}

/// The lowercase hex SHA-256 of `entry` without its `hash` member,
/// serialised by RFC 8785.
pub fn hash_of(entry: &Map<String, Value>) -> String {
    let mut without = entry.clone();
    without.remove("hash");
    let canonical = serde_json_canonicalizer::to_vec(&Value::Object(without)).unwrap_or_default();
    hex::encode(Sha256::digest(&canonical))
}

/// What is wrong with a chain, at its first bad entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// The entry's `hash` is not the hash of its contents.
    HashMismatch { team: String, seq: u64 },
    /// The entry's `prev` is not the previous entry's `hash`.
    PrevMismatch { team: String, seq: u64 },
    /// `seq` does not follow the previous entry's (`seq` is the entry found).
    Gap { team: String, seq: u64 },
    /// Not an entry at all (no `team`, `seq`, `prev` or `hash`).
    Malformed { line: usize },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::HashMismatch { team, seq } => {
                write!(f, "team {team}, seq {seq}: hash mismatch")
            }
            Broken::PrevMismatch { team, seq } => {
                write!(f, "team {team}, seq {seq}: prev mismatch")
            }
            Broken::Gap { team, seq } => write!(f, "team {team}, seq {seq}: gap before seq {seq}"),
            Broken::Malformed { line } => write!(f, "entry {line}: not an audit entry"),
        }
    }
}

/// Where each team's chain ends, once checked: its last `seq` and `hash`.
pub type Ends = BTreeMap<String, (u64, String)>;

/// Checks `entries` (in the order given) per team: `seq` continuity
/// from the team's first entry given, every `prev` the previous entry's
/// `hash`, every `hash` its entry's. An export may start after `seq` 1
/// (the retention period dropped the oldest): its first entry's `prev`
/// is then taken as given. Answers where each team's chain ends.
pub fn verify_chain(entries: &[Map<String, Value>]) -> Result<Ends, Broken> {
    let mut ends: Ends = BTreeMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let malformed = Broken::Malformed { line: i + 1 };
        let team = entry.get("team").and_then(Value::as_str);
        let seq = entry.get("seq").and_then(Value::as_u64);
        let prev = entry.get("prev").and_then(Value::as_str);
        let hash = entry.get("hash").and_then(Value::as_str);
        let (Some(team), Some(seq), Some(prev), Some(hash)) = (team, seq, prev, hash) else {
            return Err(malformed);
        };
        let at = |team: &str| (team.to_string(), seq);
        match ends.get(team) {
            Some((last, _)) if seq != last + 1 => {
                let (team, seq) = at(team);
                return Err(Broken::Gap { team, seq });
            }
            Some((_, last_hash)) if prev != last_hash => {
                let (team, seq) = at(team);
                return Err(Broken::PrevMismatch { team, seq });
            }
            None if seq == 1 && prev != GENESIS => {
                let (team, seq) = at(team);
                return Err(Broken::PrevMismatch { team, seq });
            }
            _ => {}
        }
        if hash_of(entry) != hash {
            let (team, seq) = at(team);
            return Err(Broken::HashMismatch { team, seq });
        }
        ends.insert(team.to_string(), (seq, hash.to_string()));
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<Map<String, Value>> {
        let mut head = Head::genesis();
        let via = Via {
            ip: Some("203.0.113.9".into()),
            request_id: Some("r-1".into()),
        };
        let acting = Acting::new(Actor::api_key("acme-agent"), &via);
        (0..n)
            .map(|i| {
                let target = Target {
                    subject: Some(format!("cust-{i}")),
                    ..Target::default()
                };
                let draft = Draft::success(Action::SubjectUnlocked, &acting, target);
                let now = Timestamp::from_unix_millis(1_800_000_000_000 + i as i64);
                let e = seal(&head, "acme", draft, Uuid::now_v7(), now);
                head = Head::of(&e);
                match serde_json::to_value(&e) {
                    Ok(Value::Object(m)) => m,
                    other => panic!("not an object: {other:?}"),
                }
            })
            .collect()
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let entries = chain(5);
        assert_eq!(entries[0]["prev"], GENESIS);
        assert_eq!(entries[1]["prev"], entries[0]["hash"]);
        let ends = verify_chain(&entries).unwrap();
        assert_eq!(ends["acme"].0, 5);
    }

    /// The hash is over RFC 8785's form: member order and spacing of the
    /// text do not count, a changed value does.
    #[test]
    fn the_hash_is_over_the_canonical_form() {
        let text = r#"{"seq":1,"b":"é","a":1e2,"hash":"x"}"#;
        let reordered = r#"{ "a" : 100, "hash":"y", "b":"\u00e9", "seq":1 }"#;
        let m = |t: &str| serde_json::from_str::<Map<String, Value>>(t).unwrap();
        assert_eq!(hash_of(&m(text)), hash_of(&m(reordered)));
        // The canonical text of {"a":100,"b":"é","seq":1}, hashed by hand.
        let want = hex::encode(Sha256::digest(
            "{\"a\":100,\"b\":\"é\",\"seq\":1}".as_bytes(),
        ));
        assert_eq!(hash_of(&m(text)), want);
        assert_ne!(
            hash_of(&m(text)),
            hash_of(&m(r#"{"seq":2,"b":"é","a":100}"#))
        );
    }

    #[test]
    fn a_changed_entry_is_a_hash_mismatch() {
        let mut entries = chain(4);
        entries[2].insert("action".into(), "audit.read".into());
        let want = Broken::HashMismatch {
            team: "acme".into(),
            seq: 3,
        };
        assert_eq!(verify_chain(&entries), Err(want));
    }

    #[test]
    fn a_removed_entry_is_a_gap() {
        let mut entries = chain(4);
        entries.remove(1);
        let want = Broken::Gap {
            team: "acme".into(),
            seq: 3,
        };
        assert_eq!(verify_chain(&entries), Err(want.clone()));
        assert_eq!(want.to_string(), "team acme, seq 3: gap before seq 3");
    }

    #[test]
    fn reordered_entries_are_a_gap() {
        let mut entries = chain(4);
        entries.swap(1, 2);
        assert!(matches!(
            verify_chain(&entries),
            Err(Broken::Gap { seq: 3, .. })
        ));
    }

    /// A rewritten entry whose hash was recomputed still breaks the next
    /// entry's `prev`.
    #[test]
    fn a_rehashed_entry_breaks_the_next_prev() {
        let mut entries = chain(4);
        entries[1].insert("outcome".into(), "denied".into());
        let rehashed = hash_of(&entries[1]);
        entries[1].insert("hash".into(), rehashed.into());
        assert_eq!(
            verify_chain(&entries),
            Err(Broken::PrevMismatch {
                team: "acme".into(),
                seq: 3
            })
        );
    }

    #[test]
    fn a_first_entry_must_start_at_genesis() {
        let mut entries = chain(2);
        entries[0].insert("prev".into(), "ab".repeat(32).into());
        assert!(matches!(
            verify_chain(&entries),
            Err(Broken::PrevMismatch { seq: 1, .. })
        ));
        // An export that starts later (retention) is taken from where it starts.
        let later = chain(3).split_off(1);
        assert_eq!(verify_chain(&later).unwrap()["acme"].0, 3);
    }

    #[test]
    fn an_entry_spells_its_members_as_written() {
        let e = &chain(1)[0];
        let actor = &e["actor"];
        assert_eq!(actor["type"], "api_key");
        assert_eq!(actor["api_key_id"], "acme-agent");
        assert!(actor.get("sub").is_none());
        assert_eq!(e["action"], "subject.unlocked");
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["time"], "2027-01-15T08:00:00.000Z");
        assert_eq!(e["request_id"], "r-1");
    }
}
