//! What a WhatsApp Cloud webhook says about who is behind a conversation
//! (docs/channels.md#identity-changes): system messages that the user
//! changed number or business-scoped user id, and the identity hashes
//! Meta puts beside a contact or a status once the business turned its
//! identity check on. Read after the webhook's signature was checked
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
    /// The identity hash Meta gives now for the user behind `ids`.
    Hash { ids: Vec<String>, hash: String },
    /// Meta refused to deliver message `message_id` to `ids` because the
    /// identity hash it carried is no longer theirs (a `failed` status
    /// with [`IDENTITY_REFUSED`]).
    Refused {
        message_id: String,
        ids: Vec<String>,
    },
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
    let hashed = [
        (
            "contacts",
            "identity_key_hash",
            ["wa_id", "user_id", "parent_user_id"],
        ),
        ("statuses", "recipient_identity_key_hash", RECIPIENT_IDS),
    ];
    for (list, member, names) in hashed {
        // A refusal's hash is the one refused, not news of the person.
        for item in items(value, list).iter().filter(|i| !refused(i)) {
            let ids = ids_of(item, &names);
            if let (Some(hash), false) = (short_text(item, member), ids.is_empty()) {
                out.push(IdentitySignal::Hash { ids, hash });
            }
        }
    }
}

/// What a signed webhook `body` says about identities, in its order
/// (nothing for a body that is not JSON: the receipts' reading refuses it).
pub fn identity_signals(body: &[u8]) -> Vec<IdentitySignal> {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in items(&body, "entry") {
        for change in items(entry, "changes") {
            if let Some(value) = change.get("value") {
                signals_of(value, &mut out);
            }
        }
    }
    out
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
            identity_signals(body),
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
    fn hashes_beside_contacts_and_statuses_are_read() {
        let body = br#"{"entry":[{"changes":[{"value":{
            "contacts":[{"profile":{"name":"A"},"wa_id":"15552223333","user_id":"US.1","identity_key_hash":"h1"},
                        {"profile":{"name":"B"},"wa_id":"15552224444"}],
            "messages":[{"from":"15552223333","id":"wamid.in","type":"text","text":{"body":"hi"}}],
            "statuses":[{"id":"wamid.A","status":"delivered","recipient_id":"15552225555","recipient_identity_key_hash":"h2"},
                        {"id":"wamid.B","status":"read","recipient_user_id":"US.2","recipient_parent_user_id":"US.P","recipient_identity_key_hash":"h3"},
                        {"id":"wamid.C","status":"read","recipient_id":"15552226666"}]}}]}]}"#;
        assert_eq!(
            identity_signals(body),
            vec![
                IdentitySignal::Hash {
                    ids: ids(&["15552223333", "US.1"]),
                    hash: "h1".into()
                },
                IdentitySignal::Hash {
                    ids: ids(&["15552225555"]),
                    hash: "h2".into()
                },
                IdentitySignal::Hash {
                    ids: ids(&["US.2", "US.P"]),
                    hash: "h3".into()
                },
            ]
        );
    }

    #[test]
    fn a_failed_status_with_137000_is_a_refusal() {
        let body = br#"{"entry":[{"changes":[{"value":{
            "statuses":[{"id":"wamid.R","status":"failed","recipient_id":"15552225555","recipient_identity_key_hash":"h9",
                         "errors":[{"code":137000,"title":"Identity key hash mismatch"}]},
                        {"id":"wamid.S","status":"failed","recipient_user_id":"US.2","errors":[{"code":"137000"}]},
                        {"id":"wamid.T","status":"failed","recipient_id":"15552226666","errors":[{"code":131047}]},
                        {"id":"wamid.U","status":"delivered","recipient_id":"15552227777","errors":[{"code":137000}]}]}}]}]}"#;
        assert_eq!(
            identity_signals(body),
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
            r#"{{"entry":[{{"changes":[{{"value":{{
            "contacts":[{{"wa_id":"{long}","identity_key_hash":"h"}},{{"wa_id":"1","identity_key_hash":"{long}"}},
                        {{"wa_id":5,"identity_key_hash":"h"}},{{"wa_id":"","identity_key_hash":"h"}}],
            "messages":[{{"from":"{long}","id":"wamid.x","type":"system","system":{{"type":"user_changed_number"}}}}],
            "statuses":"nope"}}}}]}}]}}"#
        );
        assert!(identity_signals(body.as_bytes()).is_empty());
        for body in [&b"not json"[..], b"[]", br#"{"entry":{}}"#, b"{}"] {
            assert!(identity_signals(body).is_empty());
        }
    }
}
