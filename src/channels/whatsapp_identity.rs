//! What a WhatsApp Cloud webhook says about who is behind a conversation
//! (docs/channels.md#identity-changes): system messages that the user
//! changed number or business-scoped user id, and the identity hashes
//! Meta puts beside a contact or a status once the business turned its
//! identity check on, with Meta's times; only the changes about the
//! channel's own number (`metadata.phone_number_id`) count. Read after
//! the webhook's signature was checked
//! (`WhatsappConfig::receipt`); parts that do not fit are skipped, never
//! a refusal of the whole webhook (Meta would only send it again).
use serde_json::Value;

/// The longest id of a user (a phone number, a business-scoped user id)
/// or identity hash read; a longer one is skipped.
pub const MAX_ID_LEN: usize = 300;

/// The system message types that say the person behind a conversation
/// changed: the Cloud API's names, then the On-Premises API's.
pub const CHANGE_TYPES: [&str; 4] = [
    "user_changed_number",
    "user_changed_user_id",
    "customer_changed_number",
    "customer_identity_changed",
];

/// One thing a webhook says about a conversation's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySignal {
    /// A system message (its `id`) saying the user behind `ids` changed.
    Changed {
        message_id: String,
        ids: Vec<String>,
    },
    /// The identity hash Meta gives now for the user behind `ids`, at
    /// Meta's time `at` (the message's or status's `timestamp`, in
    /// seconds; `None` when it gave none), beside `from`.
    Hash {
        ids: Vec<String>,
        hash: String,
        at: Option<i64>,
        from: HashFrom,
    },
    /// Meta refused to deliver message `message_id` to `ids` because the
    /// identity hash it carried is no longer theirs (a `failed` status
    /// with [`IDENTITY_REFUSED`]).
    Refused {
        message_id: String,
        ids: Vec<String>,
    },
}

/// What an identity hash came beside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashFrom {
    /// A contact of an incoming message (its `id`, when the webhook
    /// names one).
    Contact { message_id: Option<String> },
    /// A status (`status`) of message `message_id`, one the gateway sent
    /// or not.
    Status { message_id: String, status: String },
}

impl HashFrom {
    /// The delivery this hash came in, the same in each of Meta's retries
    /// of it: `None` when the webhook names none.
    pub fn delivery(&self) -> Option<String> {
        match self {
            HashFrom::Contact { message_id } => message_id.as_ref().map(|id| format!("c:{id}")),
            HashFrom::Status { message_id, status } => Some(format!("s:{status}:{message_id}")),
        }
    }
}

/// What a signed webhook says about identities for one channel: the
/// signals of its own number, in their order, and the other
/// `phone_number_id`s it named (`""`: a change that named none), whose
/// signals count for nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Read {
    pub signals: Vec<IdentitySignal>,
    pub foreign: Vec<String>,
}

/// Meta's error code for a message refused because the identity hash it
/// carried (`recipient_identity_key_hash`) is no longer the recipient's
/// (docs/channels.md#sends-know-the-identity).
const IDENTITY_REFUSED: &str = "137000";

/// The ids that name the recipient of a status.
const RECIPIENT_IDS: [&str; 3] = [
    "recipient_id",
    "recipient_user_id",
    "recipient_parent_user_id",
];

/// Whether status `status` is Meta's refusal of a message for a changed
/// identity: `failed`, its first error [`IDENTITY_REFUSED`].
fn refused(status: &Value) -> bool {
    let code = status.pointer("/errors/0/code");
    status.get("status").and_then(Value::as_str) == Some("failed") && is_identity_refused(code)
}

/// Whether Meta's error `code` (a number, or its digits as a string) is
/// [`IDENTITY_REFUSED`].
pub fn is_identity_refused(code: Option<&Value>) -> bool {
    match code {
        Some(Value::Number(n)) => n.to_string() == IDENTITY_REFUSED,
        Some(Value::String(s)) => s == IDENTITY_REFUSED,
        _ => false,
    }
}

impl IdentitySignal {
    /// The ids (a number or a business-scoped user id) that name the
    /// conversation.
    pub fn ids(&self) -> &[String] {
        match self {
            IdentitySignal::Changed { ids, .. }
            | IdentitySignal::Hash { ids, .. }
            | IdentitySignal::Refused { ids, .. } => ids,
        }
    }
}

/// A string member `name` of `v`, non-empty and within [`MAX_ID_LEN`].
fn short_text(v: &Value, name: &str) -> Option<String> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN)
        .map(str::to_string)
}

/// The members of `v` among `names` that hold an id, in that order.
fn ids_of(v: &Value, names: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in names.iter().filter_map(|n| short_text(v, n)) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The items of list `name` of `v` (none when it is absent or not a list).
fn items<'v>(v: &'v Value, name: &str) -> &'v [Value] {
    v.get(name)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Meta's `timestamp` of `v` (seconds, as digits or a number).
fn timestamp(v: &Value) -> Option<i64> {
    match v.get("timestamp")? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The incoming message of `value` a contact (named by `ids`) sent: the
/// one from one of `ids`, or the only message.
fn message_of<'v>(value: &'v Value, ids: &[String]) -> Option<&'v Value> {
    let messages = items(value, "messages");
    let from = ["from", "from_user_id", "from_parent_user_id"];
    messages
        .iter()
        .find(|m| ids_of(m, &from).iter().any(|id| ids.contains(id)))
        .or(match messages {
            [only] => Some(only),
            _ => None,
        })
}

/// The identity hash beside each contact of `value`.
fn contact_hashes(value: &Value, out: &mut Vec<IdentitySignal>) {
    for contact in items(value, "contacts") {
        let ids = ids_of(contact, &["wa_id", "user_id", "parent_user_id"]);
        let Some(hash) = short_text(contact, "identity_key_hash") else {
            continue;
        };
        if ids.is_empty() {
            continue;
        }
        let message = message_of(value, &ids);
        out.push(IdentitySignal::Hash {
            at: message.and_then(timestamp),
            from: HashFrom::Contact {
                message_id: message.and_then(|m| short_text(m, "id")),
            },
            ids,
            hash,
        });
    }
}

/// The identity hash beside each status of `value` (a refusal's hash is
/// the one refused, not news of the person).
fn status_hashes(value: &Value, out: &mut Vec<IdentitySignal>) {
    for status in items(value, "statuses").iter().filter(|s| !refused(s)) {
        let ids = ids_of(status, &RECIPIENT_IDS);
        let (Some(hash), Some(message_id), Some(name)) = (
            short_text(status, "recipient_identity_key_hash"),
            short_text(status, "id"),
            short_text(status, "status"),
        ) else {
            continue;
        };
        if ids.is_empty() {
            continue;
        }
        out.push(IdentitySignal::Hash {
            ids,
            hash,
            at: timestamp(status),
            from: HashFrom::Status {
                message_id,
                status: name,
            },
        });
    }
}

/// What `value` (one `entry[].changes[].value`) says.
fn signals_of(value: &Value, out: &mut Vec<IdentitySignal>) {
    for message in items(value, "messages") {
        let system_type = message.get("system").and_then(|s| s.get("type"));
        let change = message.get("type").and_then(Value::as_str) == Some("system")
            && system_type
                .and_then(Value::as_str)
                .is_some_and(|t| CHANGE_TYPES.contains(&t));
        let ids = ids_of(message, &["from", "from_user_id", "from_parent_user_id"]);
        if let (true, Some(message_id), false) = (change, short_text(message, "id"), ids.is_empty())
        {
            out.push(IdentitySignal::Changed { message_id, ids });
        }
    }
    for status in items(value, "statuses").iter().filter(|s| refused(s)) {
        let ids = ids_of(status, &RECIPIENT_IDS);
        if let (Some(message_id), false) = (short_text(status, "id"), ids.is_empty()) {
            out.push(IdentitySignal::Refused { message_id, ids });
        }
    }
    contact_hashes(value, out);
    status_hashes(value, out);
}

/// What a signed webhook `body` says about identities, in its order, for
/// the channel of number `own` (its `phone_number_id`): only a change
/// whose `metadata.phone_number_id` is `own` counts (one Meta app signs
/// for all its numbers); the ids of the others are named once each
/// (nothing for a body that is not JSON: the receipts' reading refuses it).
pub fn identity_signals(body: &[u8], own: &str) -> Read {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Read::default();
    };
    let mut read = Read::default();
    for entry in items(&body, "entry") {
        for change in items(entry, "changes") {
            let Some(value) = change.get("value") else {
                continue;
            };
            let number = value.pointer("/metadata/phone_number_id");
            let number = match number {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                _ => String::new(),
            };
            if !number.is_empty() && number == own.trim() {
                signals_of(value, &mut read.signals);
                continue;
            }
            let mut theirs = Vec::new();
            signals_of(value, &mut theirs);
            if !theirs.is_empty() && !read.foreign.contains(&number) {
                read.foreign.push(number.chars().take(MAX_ID_LEN).collect());
            }
        }
    }
    read
}

/// Logs once per process, for each channel and other number id (`""`:
/// none), that its identity changes were ignored
/// (docs/channels.md#identity-changes): Meta sends the same webhook again
/// and again, and a line a webhook would flood the log. At most 1 000
/// pairs are remembered; past that nothing more is said. How many lines
/// it said.
pub fn ignored_once(channel: &str, foreign: &[String]) -> usize {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, PoisonError};
    static SAID: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let mut lines = 0;
    for number in foreign {
        let mut said = SAID.lock().unwrap_or_else(PoisonError::into_inner);
        if said.len() >= 1_000 || !said.insert((channel.to_string(), number.clone())) {
            continue;
        }
        drop(said);
        tracing::warn!(
            channel,
            phone_number_id = %number,
            "a WhatsApp webhook's identity changes were ignored: they are not about this channel's phone_number_id (logged once per number id)"
        );
        lines += 1;
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Meta's published system message of a changed number, with the
    /// business-scoped user ids beside the number.
    #[test]
    fn a_changed_number_or_user_id_names_its_conversation() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"WABA","changes":[{"field":"messages","value":{
            "messaging_product":"whatsapp",
            "metadata":{"display_phone_number":"15550006666","phone_number_id":"1065"},
            "messages":[
              {"from":"15552223333","from_user_id":"US.13491208655302741918","id":"wamid.sys1","timestamp":"1",
               "type":"system","system":{"body":"User A changed from 15552223333 to 15552224444","wa_id":"15552224444","type":"user_changed_number"}},
              {"from_user_id":"US.ENT.11815799212886844830","from_parent_user_id":"US.ENT.99","id":"wamid.sys2","timestamp":"2",
               "type":"system","system":{"body":"User A changed","type":"user_changed_user_id"}},
              {"from":"15552225555","id":"wamid.sys3","type":"system","system":{"type":"customer_identity_changed"}},
              {"from":"15552226666","id":"wamid.sys4","type":"system","system":{"type":"customer_changed_number"}},
              {"from":"15552227777","id":"wamid.other","type":"system","system":{"type":"something_else"}},
              {"from":"15552228888","id":"wamid.text","type":"text","text":{"body":"user_changed_number"}},
              {"from":"15552229999","type":"system","system":{"type":"user_changed_number"}}
            ]}}]}]}"#;
        assert_eq!(
            identity_signals(body, "1065").signals,
            vec![
                IdentitySignal::Changed {
                    message_id: "wamid.sys1".into(),
                    ids: ids(&["15552223333", "US.13491208655302741918"])
                },
                IdentitySignal::Changed {
                    message_id: "wamid.sys2".into(),
                    ids: ids(&["US.ENT.11815799212886844830", "US.ENT.99"])
                },
                IdentitySignal::Changed {
                    message_id: "wamid.sys3".into(),
                    ids: ids(&["15552225555"])
                },
                IdentitySignal::Changed {
                    message_id: "wamid.sys4".into(),
                    ids: ids(&["15552226666"])
                },
            ]
        );
    }

    #[test]
    fn hashes_beside_contacts_and_statuses_are_read_with_their_times() {
        let body = br#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"1065"},
            "contacts":[{"profile":{"name":"A"},"wa_id":"15552223333","user_id":"US.1","identity_key_hash":"h1"},
                        {"profile":{"name":"B"},"wa_id":"15552224444"}],
            "messages":[{"from":"15552223333","id":"wamid.in","timestamp":"1764064800","type":"text","text":{"body":"hi"}}],
            "statuses":[{"id":"wamid.A","status":"delivered","timestamp":1764064801,"recipient_id":"15552225555","recipient_identity_key_hash":"h2"},
                        {"id":"wamid.B","status":"read","recipient_user_id":"US.2","recipient_parent_user_id":"US.P","recipient_identity_key_hash":"h3"},
                        {"id":"wamid.C","status":"read","recipient_id":"15552226666"}]}}]}]}"#;
        assert_eq!(
            identity_signals(body, "1065").signals,
            vec![
                IdentitySignal::Hash {
                    ids: ids(&["15552223333", "US.1"]),
                    hash: "h1".into(),
                    at: Some(1_764_064_800),
                    from: HashFrom::Contact {
                        message_id: Some("wamid.in".into())
                    },
                },
                IdentitySignal::Hash {
                    ids: ids(&["15552225555"]),
                    hash: "h2".into(),
                    at: Some(1_764_064_801),
                    from: HashFrom::Status {
                        message_id: "wamid.A".into(),
                        status: "delivered".into()
                    },
                },
                IdentitySignal::Hash {
                    ids: ids(&["US.2", "US.P"]),
                    hash: "h3".into(),
                    at: None,
                    from: HashFrom::Status {
                        message_id: "wamid.B".into(),
                        status: "read".into()
                    },
                },
            ]
        );
    }

    #[test]
    fn another_number_is_logged_once_per_channel() {
        let theirs = ["2077".to_string(), String::new()];
        assert_eq!(ignored_once("once-test-wa", &theirs), 2);
        assert_eq!(ignored_once("once-test-wa", &theirs), 0);
        assert_eq!(ignored_once("once-test-wa-2", &theirs[..1]), 1);
    }

    /// One Meta app signs for all its numbers: a change of another
    /// number's, or of none, is not this channel's; its id is named once.
    #[test]
    fn only_the_channel_s_own_number_counts() {
        let value = |number: &str| {
            format!(
                r#"{{"changes":[{{"value":{{{number}"contacts":[{{"wa_id":"1555","identity_key_hash":"h"}}],
                "messages":[{{"from":"1555","id":"wamid.in","type":"system","system":{{"type":"user_changed_number"}}}}]}}}}]}}"#
            )
        };
        let body = format!(
            r#"{{"entry":[{},{},{},{},{}]}}"#,
            value(r#""metadata":{"phone_number_id":"2077"},"#),
            value(r#""metadata":{"phone_number_id":"2077"},"#),
            value(r#""metadata":{},"#),
            value(""),
            value(r#""metadata":{"phone_number_id":1065},"#),
        );
        let read = identity_signals(body.as_bytes(), "1065");
        assert_eq!(read.foreign, ["2077", ""]);
        assert_eq!(read.signals.len(), 2, "{:?}", read.signals);
        let ours = identity_signals(body.as_bytes(), "2077");
        assert_eq!(ours.signals.len(), 4);
        assert_eq!(ours.foreign, ["", "1065"]);
    }

    #[test]
    fn a_failed_status_with_137000_is_a_refusal() {
        let body = br#"{"entry":[{"changes":[{"value":{"metadata":{"phone_number_id":"1065"},
            "statuses":[{"id":"wamid.R","status":"failed","recipient_id":"15552225555","recipient_identity_key_hash":"h9",
                         "errors":[{"code":137000,"title":"Identity key hash mismatch"}]},
                        {"id":"wamid.S","status":"failed","recipient_user_id":"US.2","errors":[{"code":"137000"}]},
                        {"id":"wamid.T","status":"failed","recipient_id":"15552226666","errors":[{"code":131047}]},
                        {"id":"wamid.U","status":"delivered","recipient_id":"15552227777","errors":[{"code":137000}]}]}}]}]}"#;
        assert_eq!(
            identity_signals(body, "1065").signals,
            vec![
                IdentitySignal::Refused {
                    message_id: "wamid.R".into(),
                    ids: ids(&["15552225555"])
                },
                IdentitySignal::Refused {
                    message_id: "wamid.S".into(),
                    ids: ids(&["US.2"])
                },
            ]
        );
    }

    #[test]
    fn what_does_not_fit_is_skipped() {
        let long = "9".repeat(MAX_ID_LEN + 1);
        let body = format!(
            r#"{{"entry":[{{"changes":[{{"value":{{"metadata":{{"phone_number_id":"1065"}},
            "contacts":[{{"wa_id":"{long}","identity_key_hash":"h"}},{{"wa_id":"1","identity_key_hash":"{long}"}},
                        {{"wa_id":5,"identity_key_hash":"h"}},{{"wa_id":"","identity_key_hash":"h"}}],
            "messages":[{{"from":"{long}","id":"wamid.x","type":"system","system":{{"type":"user_changed_number"}}}}],
            "statuses":"nope"}}}}]}}]}}"#
        );
        assert!(identity_signals(body.as_bytes(), "1065").signals.is_empty());
        for body in [&b"not json"[..], b"[]", br#"{"entry":{}}"#, b"{}"] {
            assert!(identity_signals(body, "1065").signals.is_empty());
        }
    }
}
