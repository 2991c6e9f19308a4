//! The event types, one typed list (docs/events.md#the-events): each type's
//! name, whom its `data` is about, and what it carries beside that.
//!
//! [`EventType`] is the `type` of an event, as the outbox item, the log,
//! the live stream and the metric labels name it; [`EventData`] is an event
//! to emit, its type with its typed payload. Both come from the one list
//! in [`event_types!`]: a type is added there, and the compiler then points
//! at every place that must say something about it (CONTRIBUTING.md#add-an-event-type).
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::domain::audit::Actor;
use crate::domain::challenge::{Challenge, ChallengeMethod, ChallengeState, Delivery};
use crate::domain::delivery_status::{DeliveryState, DeliveryStatus};
use crate::domain::logout::LogoutCause;
use crate::time::Timestamp;

/// Whom an event's `data` is about: the member it opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whom {
    /// `{"interaction": <the interaction object>, …}`.
    Interaction,
    /// `{"subject": <the subject object>, …}`.
    Subject,
}

impl Whom {
    /// The member of `data` that holds whom the event is about.
    pub fn member(self) -> &'static str {
        match self {
            Whom::Interaction => "interaction",
            Whom::Subject => "subject",
        }
    }
}

/// Registers the event types: each line a variant, its payload (the
/// members of `data` beside whom it is about), its name and whom it is
/// about. Everything that differs by type asks [`EventType`] or matches on
/// [`EventData`].
macro_rules! event_types {
    ($($(#[$doc:meta])* $variant:ident($payload:ty) = $name:literal about $whom:ident),+ $(,)?) => {
        /// An event's `type`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($(#[$doc])* $variant),+
        }

        impl EventType {
            /// Every type, in the order of docs/events.md#the-events.
            pub const ALL: [EventType; [$($name),+].len()] = [$(EventType::$variant),+];

            /// Every type's name, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The type's name: its `type`, its metric label, the live
            /// stream's `event:`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name),+
                }
            }

            /// Whom the type's `data` is about.
            pub const fn whom(self) -> Whom {
                match self {
                    $(EventType::$variant => Whom::$whom),+
                }
            }
        }

        /// An event to emit: its type, with what its `data` carries beside
        /// whom it is about. Serialized, it is those members alone.
        #[derive(Debug, Clone, PartialEq)]
        pub enum EventData {
            $($(#[$doc])* $variant($payload)),+
        }

        impl EventData {
            pub fn kind(&self) -> EventType {
                match self {
                    $(EventData::$variant(_) => EventType::$variant),+
                }
            }
        }

        impl Serialize for EventData {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self {
                    $(EventData::$variant(payload) => payload.serialize(s)),+
                }
            }
        }
    };
}

event_types! {
    /// A new interaction (not a create that found one).
    InteractionCreated(Plain) = "interaction.created" about Interaction,
    /// A login, assertion or challenge proved the customer.
    InteractionAuthenticated(Plain) = "interaction.authenticated" about Interaction,
    /// `expiry_notice` before the authentication ends.
    InteractionExpiring(Plain) = "interaction.expiring" about Interaction,
    /// The authentication ended.
    InteractionExpired(Plain) = "interaction.expired" about Interaction,
    /// A bot, agent or the website logged the customer out.
    InteractionLoggedOut(LoggedOut) = "interaction.logged_out" about Interaction,
    /// An OTP or PIN challenge started.
    ChallengeCreated(ChallengeCreated) = "challenge.created" about Interaction,
    /// A wrong code.
    ChallengeFailed(ChallengeFailed) = "challenge.failed" about Interaction,
    /// An agent looked at the open OTP.
    ChallengeCodeRevealed(CodeRevealed) = "challenge.code_revealed" about Interaction,
    /// The provider first reported an open challenge's message delivered (or read).
    ChallengeDelivered(DeliveryReported) = "challenge.delivered" about Interaction,
    /// The provider reported an open challenge's message failed.
    ChallengeUndelivered(DeliveryReported) = "challenge.undelivered" about Interaction,
    /// A delivery ladder moved the code on to its next step.
    ChallengeAdvanced(ChallengeAdvanced) = "challenge.advanced" about Interaction,
    /// A code or app approval approved a transaction (never its token).
    TransactionApproved(TransactionApproved) = "transaction.approved" about Interaction,
    /// A wallet's attestation was registered for the customer's payments.
    WalletRegistered(WalletRegistered) = "wallet.registered" about Interaction,
    /// Failures reached the lockout threshold.
    SubjectLocked(SubjectChange) = "subject.locked" about Subject,
    /// The lockout that reaches `max_lockouts_before_ban`.
    SubjectBanned(SubjectChange) = "subject.banned" about Subject,
    /// An admin unlocked the subject.
    SubjectUnlocked(SubjectChange) = "subject.unlocked" about Subject,
}

impl EventType {
    /// The type named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = EventType;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event type")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<EventType, E> {
                EventType::parse(name).ok_or_else(|| E::unknown_variant(name, EventType::NAMES))
            }
        }
        d.deserialize_str(Name)
    }
}

// The payloads. Their members are written in the order of their names,
// as the events were written before they were typed.

/// Nothing beside whom the event is about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Plain;

/// `interaction.logged_out`: what ended the authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedOut {
    pub cause: LogoutCause,
    /// Who asked, for cause `api`: the audit entry's actor without `ip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

/// `challenge.created`: the challenge that started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChallengeCreated {
    pub challenge: CreatedChallenge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedChallenge {
    pub challenge_id: Uuid,
    #[serde(serialize_with = "delivery_name")]
    pub delivery: Delivery,
    pub expires_at: Timestamp,
    #[serde(serialize_with = "method_name")]
    pub method: ChallengeMethod,
    /// What the number check found (docs/number-checks.md); absent when
    /// the team has no `[number_checks]` or nothing was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_check: Option<serde_json::Value>,
    /// The payment it is for, and its hash (docs/api.md#approving-one-payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_hash: Option<String>,
}

/// A transaction as the API writes it (its home is beside the read of a
/// challenge that names it).
pub use super::views::TransactionObject;

/// `transaction.approved`: the challenge that approved it, the transaction
/// and its hash (never the approval token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionApproved {
    pub challenge: ChallengeRef,
    pub transaction: TransactionObject,
    pub transaction_hash: String,
}

/// `challenge.advanced`: the challenge as read now (naming the new
/// `channel`), the channel that had the code, and why it moved on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChallengeAdvanced {
    /// The read of the challenge (docs/api.md#reading-a-challenge).
    pub challenge: Box<super::views::ChallengeView>,
    pub previous_channel: String,
    pub reason: AdvanceReason,
}

/// Why a delivery ladder moved on (the domain's, as the event says it).
pub use crate::domain::challenge::AdvanceReason;

/// `challenge.failed`: the challenge a wrong code was given for, or an app
/// challenge that ended unapproved (with its `reason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChallengeFailed {
    pub challenge: FailedChallenge,
    /// Why an app challenge ended (docs/events.md#the-events): `denied`,
    /// `expired`, `invalid_token`, `customer_mismatch` or `locked`;
    /// `number_refused`; `identity_changed` for any challenge a change of
    /// the person behind a WhatsApp conversation closed; absent for a
    /// wrong code. At `data.reason`, beside `data.challenge`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// The challenge of `challenge.failed`: as `challenge.created` names it
/// (`challenge_id`, `method`, `delivery`, `expires_at`), with the attempts
/// left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedChallenge {
    pub attempts_remaining: u32,
    pub challenge_id: Uuid,
    #[serde(serialize_with = "delivery_name")]
    pub delivery: Delivery,
    pub expires_at: Timestamp,
    #[serde(serialize_with = "method_name")]
    pub method: ChallengeMethod,
}

impl FailedChallenge {
    /// Challenge `c` with `attempts_remaining` left.
    pub fn of(c: &Challenge, attempts_remaining: u32) -> FailedChallenge {
        FailedChallenge {
            attempts_remaining,
            challenge_id: c.id,
            delivery: c.delivery,
            expires_at: c.expires_at,
            method: c.method(),
        }
    }
}

/// `challenge.code_revealed`: whose code, and the API key that saw it
/// (never the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CodeRevealed {
    /// The `id` of the API key that revealed the code.
    pub api_key_id: String,
    /// The audit entry's actor without `ip`: the key, or the person.
    pub actor: Actor,
    pub challenge: ChallengeRef,
}

/// `challenge.delivered` / `challenge.undelivered`: the challenge as its
/// read shows it after the provider's report (docs/api.md#reading-a-challenge).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReported {
    pub challenge: ReportedChallenge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedChallenge {
    pub attempts_remaining: u32,
    pub challenge_id: Uuid,
    pub channel: Option<String>,
    #[serde(serialize_with = "delivery_name")]
    pub delivery: Delivery,
    pub delivery_error: Option<ReportedError>,
    #[serde(serialize_with = "delivery_status_name")]
    pub delivery_status: DeliveryStatus,
    /// Where its code is typed: `chat`, or `page`
    /// (docs/api.md#codes-typed-on-the-gateways-page).
    pub entry: &'static str,
    pub expires_at: Timestamp,
    #[serde(serialize_with = "method_name")]
    pub method: ChallengeMethod,
    #[serde(serialize_with = "state_name")]
    pub state: ChallengeState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_hash: Option<String>,
    /// A proof made on a page waits for its binding code
    /// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat): present
    /// as the challenge's read has it (for a page-entry challenge, and for
    /// any while it is true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_code: Option<bool>,
}

/// The provider's error, with `failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportedError {
    pub code: String,
    pub title: Option<String>,
}

impl ReportedChallenge {
    /// Challenge `c` in `state`, whose message has a delivery state.
    pub fn of(c: &Challenge, state: ChallengeState, delivery: &DeliveryState) -> Self {
        let (transaction, transaction_hash) = TransactionObject::with_hash(c.transaction.as_ref());
        ReportedChallenge {
            attempts_remaining: c.attempts_remaining(),
            challenge_id: c.id,
            channel: c.channel.clone(),
            delivery: c.delivery,
            delivery_error: delivery.error.as_ref().map(|e| ReportedError {
                code: e.code.clone(),
                title: e.title.clone(),
            }),
            delivery_status: delivery.status,
            entry: if c.page_entry() { "page" } else { "chat" },
            expires_at: c.expires_at,
            method: c.method(),
            state,
            transaction,
            transaction_hash,
            awaiting_code: {
                let awaiting = c.awaits_code() && state == ChallengeState::Open;
                (c.page_entry() || awaiting).then_some(awaiting)
            },
        }
    }
}

/// A challenge, by its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChallengeRef {
    pub challenge_id: Uuid,
}

/// `wallet.registered`: the challenge whose binding code registered the
/// attestation, its issuer (the certificate's subject, RFC 4514) and its
/// holder key's RFC 7638 thumbprint; never a claim
/// (docs/wallet.md#registering-the-wallet-for-payments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WalletRegistered {
    pub challenge: ChallengeRef,
    pub issuer: String,
    pub thumbprint: String,
}

/// `subject.*`: the origin locked, banned or unlocked; `None` for the
/// whole subject (or, for `subject.locked`, the strangers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectChange {
    pub origin: Option<String>,
    /// Who unlocked (`subject.unlocked`): the audit entry's actor without `ip`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
}

fn method_name<S: Serializer>(m: &ChallengeMethod, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

fn delivery_status_name<S: Serializer>(d: &DeliveryStatus, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

fn state_name<S: Serializer>(d: &ChallengeState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

fn delivery_name<S: Serializer>(d: &Delivery, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(d.as_str())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The types docs/events.md lists in its table: the first cell of each
    /// row under `## The events`, written `` `name` ``.
    fn documented() -> Vec<String> {
        let doc = include_str!("../../docs/events.md");
        let section = doc
            .split("\n## The events\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/events.md has a section `## The events`");
        section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|cell| cell.split_once('`'))
            .map(|(name, _)| name.to_string())
            .collect()
    }

    #[test]
    fn docs_events_md_lists_every_type_once_and_no_other() {
        let documented = documented();
        let listed: Vec<String> = EventType::ALL
            .iter()
            .map(|t| t.as_str().to_string())
            .collect();
        let undocumented: BTreeSet<_> = listed.iter().filter(|t| !documented.contains(t)).collect();
        assert!(
            undocumented.is_empty(),
            "event types missing from docs/events.md#the-events: {undocumented:?}"
        );
        let unknown: BTreeSet<_> = documented.iter().filter(|t| !listed.contains(t)).collect();
        assert!(
            unknown.is_empty(),
            "docs/events.md#the-events lists types the gateway does not emit: {unknown:?}"
        );
        assert_eq!(
            documented, listed,
            "docs/events.md#the-events lists each type once, in the order of EventType::ALL"
        );
    }

    #[test]
    fn every_type_reads_back_by_its_name_and_no_name_is_written_twice() {
        for t in EventType::ALL {
            let text = serde_json::to_string(&t).unwrap();
            assert_eq!(text, format!("\"{}\"", t.as_str()));
            assert_eq!(serde_json::from_str::<EventType>(&text).unwrap(), t);
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let whom = if t.as_str().starts_with("subject.") {
                Whom::Subject
            } else {
                Whom::Interaction
            };
            assert_eq!(t.whom(), whom, "{t:?}");
        }
        let names: BTreeSet<_> = EventType::NAMES.iter().collect();
        assert_eq!(names.len(), EventType::ALL.len());
        let err = serde_json::from_str::<EventType>("\"challenge.unknown\"").unwrap_err();
        assert!(err.to_string().contains("challenge.unknown"), "{err}");
    }
}
