//! The logical key layout. Every key of a team starts with the hash tag
//! `{team}`; user-supplied parts (conversation ids, subjects, jtis) are
//! hashed so they cannot break out of their segment.
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn h(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    hex::encode(&d[..16])
}

/// The interaction record.
pub fn interaction(team: &str, id: Uuid) -> String {
    format!("{{{team}}}:i:{id}")
}

/// The id an [`interaction`] key names (the record leaves it out).
pub fn interaction_id(key: &str) -> Option<Uuid> {
    let (_, id) = key.rsplit_once("}:i:")?;
    Uuid::parse_str(id).ok()
}

/// (channel, conversation_id) → the interaction's id, for create-or-get.
pub fn conversation(team: &str, channel: &str, conversation_id: &str) -> String {
    format!(
        "{{{team}}}:c:{}",
        h(&format!("{channel}\n{conversation_id}"))
    )
}

/// The subject record: failures, lockouts, ban.
pub fn subject(team: &str, subject: &str) -> String {
    format!("{{{team}}}:s:{}", h(subject))
}

/// A used pre-chat assertion `jti`.
pub fn assertion_jti(team: &str, jti: &str) -> String {
    format!("{{{team}}}:aj:{}", h(jti))
}

/// Newest-first index of the team's interactions (score: created, ms).
pub fn interactions_index(team: &str) -> String {
    format!("{{{team}}}:idx")
}

/// Index of the interactions a customer id or `customer_ref` names.
pub fn customer_index(team: &str, customer_id: &str) -> String {
    format!("{{{team}}}:cu:{}", h(customer_id))
}

/// The queue of expiry work (notices, expirations), score: due, ms.
pub fn due_queue(team: &str) -> String {
    format!("{{{team}}}:dueq")
}

/// A short login link code → where it leads. Not team-scoped: the code is
/// all a browser has.
pub fn short_link(code: &str) -> String {
    format!("l:{}", h(code))
}

/// A signed request (its Standard Webhooks `webhook-id`) already answered,
/// with its answer: a replay or retry gets that answer and changes nothing.
pub fn answered_request(team: &str, kind: &str, webhook_id: &str) -> String {
    format!("{{{team}}}:wr:{kind}:{}", h(webhook_id))
}

/// The team's outbox: a queue of item ids by when they are due (ms).
pub fn outbox(team: &str) -> String {
    format!("{{{team}}}:obq")
}

/// Where versions up to stop 20 (main 42f416a) kept [`due_queue`] and
/// [`outbox`]: as indexes whose members expire one by one (see
/// `gateway::expiry::move_legacy_queues`, which drains them). Never
/// written: an instance of such a version recomputes an index's life from
/// its members' expiries, and would cut short a queue member added without
/// one.
pub fn legacy_queues(team: &str) -> [String; 2] {
    [format!("{{{team}}}:due"), format!("{{{team}}}:ob")]
}

/// One outbox item (an event or a notice to deliver).
pub fn outbox_item(team: &str, id: Uuid) -> String {
    format!("{{{team}}}:obi:{id}")
}

/// Fingerprints and region validated for a customer (step-up).
pub fn devices(team: &str, customer_id: &str) -> String {
    format!("{{{team}}}:dv:{}", h(customer_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interaction_key_names_its_id_and_no_other_key_does() {
        let id = Uuid::now_v7();
        assert_eq!(interaction_id(&interaction("acme", id)), Some(id));
        assert_eq!(interaction_id(&interaction("a:i:b", id)), Some(id));
        for other in [
            subject("acme", &id.to_string()),
            conversation("acme", "webchat", &id.to_string()),
            format!("{{acme}}:i:{id}x"),
            "{acme}:i:".to_string(),
            id.to_string(),
        ] {
            assert_eq!(interaction_id(&other), None, "{other}");
        }
    }
}
