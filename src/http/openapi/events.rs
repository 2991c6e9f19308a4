//! The event object of docs/api.md#events, as JSON Schema: what a frame's
//! `data:` of `GET /v1/events` holds (each frame as a client parses it:
//! `EventFrame`) and what a team's `[webhook]` receives (the document's
//! `webhooks`). Closed at every level it owns, so
//! a member an event gains without being listed here fails the test that
//! checks emitted events against it (tests/api/openapi.rs).
use serde_json::{json, Value};

use crate::domain::logout::LogoutCause;
use crate::events::EventType;

/// `data.actor`: who acted, as the audit entry names it, without `ip`
/// (docs/audit.md#an-entry).
fn actor() -> Value {
    let text = json!({"type": "string"});
    json!({"type": "object", "additionalProperties": false, "required": ["type"],
        "description": "Who acted: the API key, or the person a Chatgate-Actor token named (docs/api.md#a-person-behind-every-agent-action).",
        "properties": {"type": {"type": "string", "enum": ["api_key", "person"]},
            "api_key_id": text, "sub": text, "name": text}})
}

/// The `reason`s of `challenge.failed`: an app challenge's, a number
/// check's refusal, a change of the person behind a WhatsApp
/// conversation, and a wallet presentation's.
fn failed_reasons() -> Vec<&'static str> {
    let mut reasons = crate::domain::app_challenge::REASONS.to_vec();
    reasons.push("number_refused");
    reasons.push(crate::domain::network_auth::MISMATCH);
    reasons.push(crate::domain::identity_change::REASON);
    // A wallet's presentation: its result, or a payment's key that is
    // not registered to the customer.
    for r in crate::domain::wallet_state::WalletResult::ALL {
        if r != crate::domain::wallet_state::WalletResult::Verified {
            reasons.push(r.as_str());
        }
    }
    reasons.push(crate::domain::wallet::registration::NOT_REGISTERED);
    reasons
}

/// A closed object: exactly these `properties`, these of them `required`.
fn closed(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": properties, "required": required})
}

/// `data.interaction`: the interaction the event is about.
fn interaction() -> Value {
    json!({"$ref": "#/components/schemas/InteractionView"})
}

/// A `challenge_id` (or any other id): a UUID.
fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

/// `transaction`: the payment a challenge approves.
fn transaction() -> Value {
    json!({"$ref": "#/components/schemas/Transaction"})
}

/// `transaction_hash`: the hash of the transaction a challenge approves.
fn transaction_hash() -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
        "description": "The base64url SHA-256 of the transaction's RFC 8785 canonical JSON (docs/api.md#approving-one-payment)."})
}

/// The members of `data`, by the events that carry them.
fn data_of(kind: EventType) -> Value {
    match kind {
        EventType::InteractionCreated
        | EventType::InteractionAuthenticated
        | EventType::InteractionExpiring
        | EventType::InteractionExpired => {
            closed(json!({"interaction": interaction()}), &["interaction"])
        }
        EventType::InteractionLoggedOut => logged_out(),
        EventType::ChallengeCreated => challenge_created(),
        EventType::TransactionApproved => transaction_approved(),
        EventType::WalletRegistered => wallet_registered(),
        EventType::ChallengeFailed => challenge_failed(),
        EventType::ChallengeAdvanced => challenge_advanced(),
        EventType::ChallengeCodeRevealed => code_revealed(),
        EventType::ChallengeDelivered | EventType::ChallengeUndelivered => closed(
            json!({
                "interaction": interaction(),
                "challenge": {"$ref": "#/components/schemas/ChallengeView"},
            }),
            &["interaction", "challenge"],
        ),
        EventType::SubjectLocked | EventType::SubjectBanned | EventType::SubjectUnlocked => {
            subject_changed()
        }
    }
}

/// `data` of `interaction.logged_out`: the interaction and what ended it.
fn logged_out() -> Value {
    let causes: Vec<&str> = LogoutCause::ALL.iter().map(|c| c.as_str()).collect();
    closed(
        json!({"interaction": interaction(), "cause": {"type": "string", "enum": causes,
            "description": "What ended the authentication: a Shared Signals event, the identity provider's back-channel logout, the website's back-channel logout, or the API's logout."},
            "actor": actor()}),
        &["interaction", "cause"],
    )
}

/// `data` of `challenge.created`: the interaction and the new challenge.
fn challenge_created() -> Value {
    closed(
        json!({"interaction": interaction(), "challenge": closed(json!({
            "challenge_id": uuid(),
            "method": {"$ref": "#/components/schemas/ChallengeMethod"},
            "delivery": {"$ref": "#/components/schemas/Delivery"},
            "expires_at": {"$ref": "#/components/schemas/Timestamp"},
            "number_check": {"$ref": "#/components/schemas/NumberCheckView"},
            "transaction": transaction(),
            "transaction_hash": transaction_hash(),
        }), &["challenge_id", "method", "delivery", "expires_at"])}),
        &["interaction", "challenge"],
    )
}

/// `data` of `transaction.approved`: the interaction, the challenge and the
/// transaction it approved.
fn transaction_approved() -> Value {
    closed(
        json!({
            "interaction": interaction(),
            "challenge": closed(json!({"challenge_id": uuid()}), &["challenge_id"]),
            "transaction": transaction(),
            "transaction_hash": transaction_hash(),
        }),
        &[
            "interaction",
            "challenge",
            "transaction",
            "transaction_hash",
        ],
    )
}

/// `data` of `challenge.failed`: the interaction, the challenge (as
/// `challenge.created` names it) with its attempts left and, for an `app`
/// challenge or a number check, why.
/// `data` of `wallet.registered`: the interaction, the challenge, the
/// attestation's issuer and its holder key's thumbprint.
fn wallet_registered() -> Value {
    let text = json!({"type": "string"});
    closed(
        json!({
            "interaction": interaction(),
            "challenge": closed(json!({"challenge_id": uuid()}), &["challenge_id"]),
            "issuer": text,
            "thumbprint": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$",
                "description": "The RFC 7638 thumbprint (SHA-256, base64url) of the attestation's `cnf.jwk` (docs/wallet.md#registering-the-wallet-for-payments)."},
        }),
        &["interaction", "challenge", "issuer", "thumbprint"],
    )
}

fn challenge_failed() -> Value {
    closed(
        json!({"interaction": interaction(), "challenge": closed(json!({
            "challenge_id": uuid(),
            "method": {"$ref": "#/components/schemas/ChallengeMethod"},
            "delivery": {"$ref": "#/components/schemas/Delivery"},
            "expires_at": {"$ref": "#/components/schemas/Timestamp"},
            "attempts_remaining": {"type": "integer", "minimum": 0},
        }), &["challenge_id", "method", "delivery", "expires_at", "attempts_remaining"]),
        "reason": {"enum": failed_reasons(),
                   "description": "Why an `app` challenge ended unapproved, `number_refused` (a number check refused the phone number), `number_mismatch` (a `network` challenge the mobile operator answered with another number, docs/network-authentication.md), or `identity_changed` (the person behind a WhatsApp conversation changed, docs/channels.md#identity-changes), a wallet presentation's result (`claims_mismatch`, `untrusted_issuer`, `revoked`, `invalid_presentation`, or `not_registered`: a payment's attestation not registered to the customer, docs/wallet.md#registering-the-wallet-for-payments); absent for a wrong code."}}),
        &["interaction", "challenge"],
    )
}

/// `data` of `challenge.advanced`: the interaction, the challenge on its
/// next step, the step before and why it moved on.
fn challenge_advanced() -> Value {
    let reasons: Vec<&str> = crate::events::types::AdvanceReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    closed(
        json!({
            "interaction": interaction(),
            "challenge": {"$ref": "#/components/schemas/ChallengeView"},
            "previous_channel": {"type": "string", "description": "The step that had the code."},
            "reason": {"type": "string", "enum": reasons,
                "description": "`failed`: the provider reported the message failed; `timeout`: not delivered within `otp.advance_after`; `requested`: the bot asked."},
        }),
        &["interaction", "challenge", "previous_channel", "reason"],
    )
}

/// `data` of `challenge.code_revealed`: the interaction, the challenge and
/// who revealed its code.
fn code_revealed() -> Value {
    closed(
        json!({
            "interaction": interaction(),
            "challenge": closed(json!({"challenge_id": uuid()}), &["challenge_id"]),
            "api_key_id": {"type": "string", "description": "The `id` of the API key that revealed the code."},
            "actor": actor(),
        }),
        &["interaction", "challenge", "api_key_id", "actor"],
    )
}

/// `data` of `subject.locked`, `subject.banned` and `subject.unlocked`: the
/// subject, the origin and who acted.
fn subject_changed() -> Value {
    closed(
        json!({
            "subject": {"$ref": "#/components/schemas/SubjectView"},
            "origin": {"type": ["string", "null"], "description": "The origin locked, banned or unlocked; null for the whole subject (or, for `subject.locked`, the strangers)."},
            "actor": actor(),
        }),
        &["subject", "origin"],
    )
}

/// `Event`: one variant per shape of `data`, chosen by `type`.
pub fn schema() -> Value {
    let mut variants: Vec<(Value, Vec<&str>)> = Vec::new();
    for kind in EventType::ALL {
        let data = data_of(kind);
        match variants.iter_mut().find(|(d, _)| *d == data) {
            Some((_, kinds)) => kinds.push(kind.as_str()),
            None => variants.push((data, vec![kind.as_str()])),
        }
    }
    let one_of: Vec<Value> = variants
        .into_iter()
        .map(|(data, kinds)| {
            json!({
                "title": kinds.join(", "),
                "type": "object",
                "additionalProperties": false,
                "required": ["id", "type", "timestamp", "team", "data"],
                "properties": {
                    "id": {"type": "string", "format": "uuid", "description": "The event's own id (a webhook's `webhook-id`)."},
                    "type": {"enum": kinds},
                    "timestamp": {"$ref": "#/components/schemas/Timestamp"},
                    "team": {"type": "string"},
                    "data": data,
                },
            })
        })
        .collect();
    json!({
        "description": "One event (docs/api.md#events): a frame's `data:` in `GET /v1/events`, and the body \
            a team's `[webhook]` receives. Never a code, PIN, token or key.",
        "oneOf": one_of,
    })
}

/// `EventFrame`: one frame of `GET /v1/events` as a Server-Sent Events
/// client parses it (`id:`, `event:` and `data:` lines): the frame's place
/// in the history, the event's type and its data, a string holding the
/// [`schema`] `Event`'s JSON (`contentSchema`), as a schema-driven client
/// or fuzzer reads the stream.
pub fn frame_schema() -> Value {
    let kinds: Vec<&str> = EventType::ALL.iter().map(|k| k.as_str()).collect();
    json!({
        "description": "One frame of `GET /v1/events` (docs/api.md#events) as a Server-Sent Events \
            client parses it: its `id:`, `event:` and `data:` lines. The stream is `text/event-stream` \
            text, one such frame per event; `: keep-alive` comment lines are not frames.",
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^[0-9]+-[0-9]+$",
                "description": "The frame's place in the team's history (not the event's `id`): \
                    send it as `Last-Event-ID` to resume after it."},
            "event": {"type": "string", "enum": kinds, "description": "The event's `type`."},
            "data": {"type": "string", "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/Event"},
                "description": "The `data:` line as a client reads it: the event's JSON, a string \
                    that parses to an `Event`."},
        },
    })
}

/// The document's `webhooks`: each event POSTed to the team's `[webhook]`
/// `url`, signed by Standard Webhooks.
pub fn webhooks() -> Value {
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
    json!({
        "event": {
            "post": {
                "operationId": "event_webhook",
                "summary": "Each event, POSTed to the team's `[webhook]` url (at least once).",
                "security": [],
                "parameters": [
                    header("webhook-id", "The event's `id`: the same on every attempt."),
                    header("webhook-timestamp", "Unix seconds of this attempt."),
                    header("webhook-signature", "`v1,<base64 HMAC-SHA256 of \"id.timestamp.body\">` with the webhook's `secret`."),
                ],
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Event"}}},
                },
                "responses": {
                    "2XX": {"description": "Delivered."},
                    "4XX": {"description": "Not delivered: retried, with growing backoff."},
                },
            }
        }
    })
}
