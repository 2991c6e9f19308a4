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
    TrailReset,
    /// A wallet's attestation registered for the customer's payments
    /// (docs/wallet.md#registering-the-wallet-for-payments).
    WalletRegistered,
    /// A registered attestation removed.
    WalletUnregistered,
    /// A trusted list's services changed (docs/wallet.md#trusted-lists).
    TrustedListChanged,
}

impl Action {
    pub const ALL: [Action; 16] = [
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
        Action::TrailReset,
        Action::WalletRegistered,
        Action::WalletUnregistered,
        Action::TrustedListChanged,
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
            Action::TrailReset => "audit.trail_reset",
            Action::WalletRegistered => "wallet.registered",
            Action::WalletUnregistered => "wallet.unregistered",
            Action::TrustedListChanged => "wallet.trusted_list.changed",
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

/// Why a trail is shorter than what was known of it
/// (docs/audit.md#resets): the store has no head at all, or a head behind
/// the one known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetReason {
    StoreReset,
    RolledBack,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::StoreReset => "store_reset",
            ResetReason::RolledBack => "rolled_back",
        }
    }
}

/// What a witness (an instance, a sink's cursor) knows of a team's trail:
/// the highest `seq` it saw, and the `id` of the latest
/// `audit.trail_reset` entry it saw (`None`: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    pub seq: u64,
    pub reset: Option<String>,
}

/// A team's head as the store holds it, for the reset rules: its `seq`,
/// and the latest `audit.trail_reset` entry of its chain (`seq`, `id`).
/// `None` where the store has no head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub reset: Option<(u64, String)>,
}

/// Whether reset `a` (an entry's `id`, a UUIDv7, so ordered by time) was
/// recorded after `b`; any recorded reset is after none.
fn later(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a > b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// The reset a witness that knew `known` finds in the head `found`, not
/// recorded yet: the trail is shorter than it knew, and no reset was
/// recorded since it looked. `None`: the trail is as known, or longer,
/// or its shortening was recorded already.
pub fn unrecorded_reset(known: &Known, found: Option<&Found>) -> Option<ResetReason> {
    let (seq, reset) = found.map_or((0, None), |f| {
        (f.seq, f.reset.as_ref().map(|(_, id)| id.as_str()))
    });
    if later(reset, known.reset.as_deref()) || seq >= known.seq {
        return None;
    }
    Some(match found {
        None => ResetReason::StoreReset,
        Some(_) => ResetReason::RolledBack,
    })
}

/// Whether a trail whose team's data a witness saw the store lose (a
/// store come back empty, a team written back) still lacks the reset's
/// entry in the head `found`: no head at all, or one whose chain has no
/// reset. Whatever the witness knew of the trail before: one it never
/// read is lost as well (docs/audit.md#resets).
pub fn loss_unrecorded(found: Option<&Found>) -> bool {
    found.is_none_or(|f| f.reset.is_none())
}

/// What `known` becomes once the head `found` is seen: a reset recorded
/// since is taken as the truth; a longer trail raises it; a shorter one
/// (an unrecorded reset) leaves it as it was, to be recorded.
pub fn seen(known: &Known, found: Option<&Found>) -> Known {
    let (seq, reset) = found.map_or((0, None), |f| {
        (f.seq, f.reset.as_ref().map(|(_, id)| id.clone()))
    });
    if later(reset.as_deref(), known.reset.as_deref()) {
        return Known { seq, reset };
    }
    Known {
        seq: known.seq.max(seq),
        reset: known.reset.clone(),
    }
}

/// The `audit.trail_reset` entry of a trail found shorter than `known`.
pub fn trail_reset(known: &Known, reason: ResetReason) -> Draft {
    let previous = if known.seq == 0 {
        Value::Null
    } else {
        Value::from(known.seq)
    };
    Draft::success(Action::TrailReset, &Acting::system(None), Target::default())
        .with("previous_seq", previous)
        .with("reason", reason.as_str())
}

/// What a sink does with a team's trail before it sends
/// (docs/audit.md#resets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkStep {
    /// Send what follows the cursor.
    Send,
    /// A reset was recorded since the cursor last moved: send again from
    /// after `seq` (the entry before the reset's, or earlier), and know
    /// the reset `reset` from now on.
    Rewind { seq: u64, reset: String },
    /// The cursor is ahead of the head, and no reset was recorded since:
    /// the trail must record one first.
    Record(ResetReason),
}

/// The step of a sink whose cursor is `cursor` (the last `seq` it sent,
/// the latest reset it knew) before the head `found`. A cursor ahead of
/// the head is a reset: it never makes the sink skip an entry.
pub fn sink_step(cursor: &Known, found: Option<&Found>) -> SinkStep {
    if let Some((seq, id)) = found.and_then(|f| f.reset.as_ref()) {
        if later(Some(id), cursor.reset.as_deref()) {
            return SinkStep::Rewind {
                seq: cursor.seq.min(seq.saturating_sub(1)),
                reset: id.clone(),
            };
        }
    }
    match unrecorded_reset(cursor, found) {
        Some(reason) => SinkStep::Record(reason),
        None => SinkStep::Send,
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

    fn known(seq: u64, reset: Option<&str>) -> Known {
        Known {
            seq,
            reset: reset.map(str::to_string),
        }
    }

    fn found(seq: u64, reset: Option<(u64, &str)>) -> Found {
        Found {
            seq,
            reset: reset.map(|(s, id)| (s, id.to_string())),
        }
    }

    #[test]
    fn a_trail_shorter_than_known_is_a_reset_until_one_is_recorded() {
        let k = known(606, None);
        assert_eq!(
            unrecorded_reset(&k, Some(&found(590, None))),
            Some(ResetReason::RolledBack)
        );
        assert_eq!(unrecorded_reset(&k, None), Some(ResetReason::StoreReset));
        // As long, or longer: no reset.
        assert_eq!(unrecorded_reset(&k, Some(&found(606, None))), None);
        assert_eq!(unrecorded_reset(&k, Some(&found(700, None))), None);
        // Nothing known: nothing to miss.
        assert_eq!(unrecorded_reset(&Known::default(), None), None);
        // A reset recorded since: the trail is what it says.
        let recorded = found(591, Some((591, "0193b")));
        assert_eq!(unrecorded_reset(&k, Some(&recorded)), None);
        // A head set back to before a reset this witness knew of is one.
        let after = known(595, Some("0193b"));
        assert_eq!(
            unrecorded_reset(&after, Some(&found(590, Some((1, "0193a"))))),
            Some(ResetReason::RolledBack)
        );
    }

    #[test]
    fn a_lost_trail_is_a_reset_until_its_chain_records_one() {
        // Emptied: nothing to chain after.
        assert!(loss_unrecorded(None));
        // Written since by a writer that did not know: no reset in it.
        assert!(loss_unrecorded(Some(&found(1, None))));
        // A reset recorded, by whichever witness.
        assert!(!loss_unrecorded(Some(&found(2, Some((1, "0193b"))))));
    }

    #[test]
    fn what_is_known_rises_with_the_trail_and_follows_a_recorded_reset() {
        let k = known(606, None);
        assert_eq!(seen(&k, Some(&found(610, None))), known(610, None));
        // Shorter and not recorded: kept, to be recorded.
        assert_eq!(seen(&k, Some(&found(590, None))), k);
        assert_eq!(seen(&k, None), k);
        // Recorded: the trail as found is the truth again.
        assert_eq!(
            seen(&k, Some(&found(592, Some((591, "0193b"))))),
            known(592, Some("0193b"))
        );
    }

    #[test]
    fn a_reset_entry_names_what_was_known_and_why() {
        let d = trail_reset(&known(606, None), ResetReason::RolledBack);
        assert_eq!(d.action.as_str(), "audit.trail_reset");
        assert_eq!(d.actor, Actor::system());
        assert_eq!(d.request_id, None);
        assert_eq!(
            Value::Object(d.detail),
            serde_json::json!({"previous_seq": 606, "reason": "rolled_back"})
        );
        let d = trail_reset(&Known::default(), ResetReason::StoreReset);
        assert_eq!(
            Value::Object(d.detail),
            serde_json::json!({"previous_seq": null, "reason": "store_reset"})
        );
    }

    #[test]
    fn a_sink_ahead_of_the_head_never_skips_an_entry() {
        // Ahead, nothing recorded: record first.
        assert_eq!(
            sink_step(&known(606, None), Some(&found(590, None))),
            SinkStep::Record(ResetReason::RolledBack)
        );
        assert_eq!(
            sink_step(&known(606, None), None),
            SinkStep::Record(ResetReason::StoreReset)
        );
        // Recorded (at 591): from the reset entry on, even once the head
        // has passed the cursor again.
        for head in [595, 700] {
            assert_eq!(
                sink_step(&known(606, None), Some(&found(head, Some((591, "0193b"))))),
                SinkStep::Rewind {
                    seq: 590,
                    reset: "0193b".into()
                }
            );
        }
        // Behind the reset entry: nothing it has not sent is skipped.
        assert_eq!(
            sink_step(&known(300, None), Some(&found(595, Some((591, "0193b"))))),
            SinkStep::Rewind {
                seq: 300,
                reset: "0193b".into()
            }
        );
        // A store reset recorded at seq 1: from seq 1.
        assert_eq!(
            sink_step(&known(606, None), Some(&found(3, Some((1, "0193c"))))),
            SinkStep::Rewind {
                seq: 0,
                reset: "0193c".into()
            }
        );
        // The reset known already: on as usual.
        let k = known(595, Some("0193b"));
        assert_eq!(
            sink_step(&k, Some(&found(600, Some((591, "0193b"))))),
            SinkStep::Send
        );
        assert_eq!(
            sink_step(&known(5, None), Some(&found(9, None))),
            SinkStep::Send
        );
    }

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
