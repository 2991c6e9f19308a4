//! The publisher seam every state change goes through (docs/api.md#events).
//!
//! An event reaches the team's event log ([`log`]: memory or Redis), which
//! the live stream `GET /v1/events` reads ([`stream`]), one of two ways:
//!
//! - **In the commit** of the change it tells of, where the store's
//!   commits reach the log ([`Publisher::appended_by`]: Redis streams on
//!   the store's own Redis, or the in-process log of a memory store): the
//!   use case adds a [`history_op`] to its commit, and once it applied,
//!   [`Publisher::announce`]s the event in this process (log line,
//!   metric, the in-process broadcast [`Publisher::subscribe`]).
//! - **Through the outbox** otherwise (and for items queued by earlier
//!   versions): its dispatcher calls [`Publisher::publish`], which
//!   announces the event and appends it to the log.
pub mod log;
pub mod memory;
pub mod redis;
pub mod slots;
pub mod stream;
pub mod types;
pub mod views;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

pub use self::log::{EventLog, LogEntry, LogError, LogId};
pub use self::types::{EventData, EventType, Whom};

use crate::domain::customer_refs::SubjectNames;
use crate::error::{Error, Result};
use crate::store::{keys, Op};
use crate::time::Timestamp;

/// One event. `data` never holds a code, PIN, token or key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: EventType,
    pub timestamp: Timestamp,
    pub team: String,
    /// A JSON object, kept as its text from where the event is made to
    /// every place it goes (outbox, log, live stream, webhook): written
    /// once, never parsed into a tree and written again.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// Whom an event is about, as its log line names them: the interaction's
/// id and the subject. Known where the event is made, and carried beside it
/// (through the outbox), so that publishing need not read them back out of
/// `data` ([`Event::ids`] does for an item written without them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct About {
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub interaction: Option<String>,
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl About {
    /// An interaction, and its subject (its `customer_ref`, else its own).
    pub fn interaction(id: Uuid, customer_ref: Option<&str>) -> Self {
        About {
            interaction: Some(id.to_string()),
            subject: Some(crate::domain::interaction::subject_of(id, customer_ref)),
        }
    }

    /// A subject, no interaction.
    pub fn subject(name: &str) -> Self {
        About {
            interaction: None,
            subject: Some(name.to_string()),
        }
    }
}

/// `data` of an event: `{"interaction": …}` or `{"subject": …}`, then
/// the members of its payload.
#[derive(Serialize)]
struct Data<'a, T> {
    #[serde(skip_serializing_if = "Option::is_none")]
    interaction: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a T>,
    #[serde(flatten)]
    more: &'a EventData,
}

impl Event {
    /// An event of type `kind` whose `data` is `data` as JSON (an
    /// object), as given, whatever its type carries: what [`Event::of`]
    /// builds on, and for tests of the log. The gateway emits events
    /// through [`Event::of`]. A value that cannot be written as JSON (a map
    /// with keys that are not strings) is the gateway's own fault: an
    /// internal error.
    pub fn new(kind: EventType, now: Timestamp, team: &str, data: &impl Serialize) -> Result<Self> {
        Ok(Event {
            id: Uuid::now_v7(),
            kind,
            timestamp: now,
            team: team.to_string(),
            data: serde_json::value::to_raw_value(data)
                .map_err(|e| Error::internal_from("an event could not be encoded", e))?,
        })
    }

    /// The event `data` tells of, about `whom` (its type's
    /// [`EventType::whom`]: an interaction's view, or a subject's): `data`
    /// is `{"interaction": view}` or `{"subject": view}`, then the members
    /// of its payload. An event about another than its type is about is
    /// the gateway's own fault: an internal error.
    pub fn of(
        data: &EventData,
        now: Timestamp,
        team: &str,
        whom: Whom,
        view: &impl Serialize,
    ) -> Result<Self> {
        let kind = data.kind();
        if kind.whom() != whom {
            return Err(Error::internal(
                "an event about another than its type is about",
            ));
        }
        let (interaction, subject) = match whom {
            Whom::Interaction => (Some(view), None),
            Whom::Subject => (None, Some(view)),
        };
        let data = Data {
            interaction,
            subject,
            more: data,
        };
        Self::new(kind, now, team, &data)
    }

    /// The interaction id and the subject an event is about, for its log
    /// line: `data.interaction.id`; `data.subject.subject`, else the
    /// interaction's `customer_ref`, else `interaction:<id>` (the rule of
    /// [`About`], read back). Read from `data`'s text without building it
    /// (the rest is skipped), for an event that comes without its [`About`].
    fn ids(&self) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
        #[derive(Deserialize)]
        struct Ids<'a> {
            #[serde(borrow, default)]
            interaction: Option<InteractionIds<'a>>,
            #[serde(borrow, default)]
            subject: Option<SubjectIds<'a>>,
        }
        #[derive(Deserialize)]
        struct InteractionIds<'a> {
            #[serde(borrow, default)]
            id: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            customer_ref: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct SubjectIds<'a> {
            #[serde(borrow, default)]
            subject: Option<Cow<'a, str>>,
        }
        let Ok(ids) = serde_json::from_str::<Ids<'_>>(self.data.get()) else {
            return (None, None);
        };
        let (id, customer_ref) = ids
            .interaction
            .map_or((None, None), |i| (i.id, i.customer_ref));
        let subject = ids
            .subject
            .and_then(|s| s.subject)
            .or(customer_ref)
            .or_else(|| {
                id.as_deref()
                    .map(|id| crate::domain::interaction::own_subject(id).into())
            });
        (id, subject)
    }
}

/// How often an idle live stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The op that appends `event` to the history of its team's keyspace
/// `team` (`keys::keyspace`) in a commit, on a store whose commits reach
/// the log ([`crate::store::Store::append_history`]), trimmed by age as the
/// log trims its history. Announce it after the commit
/// ([`Publisher::announce`]), and do not publish it again.
pub fn history_op(team: &str, event: &Event) -> Result<Op> {
    let entry = crate::store::json_text(event)
        .map_err(|e| Error::internal_from("an event could not be encoded", e))?;
    Ok(Op::Append {
        key: keys::history(team),
        entry,
        max_age: log::HISTORY_AGE,
        ttl: log::HISTORY_AGE + log::KEY_TTL_SLACK,
    })
}

/// Where use cases send events; also what the live stream reads.
#[derive(Clone)]
pub struct Publisher {
    tx: broadcast::Sender<Arc<Event>>,
    log: Arc<dyn EventLog>,
    closing: Arc<watch::Sender<bool>>,
    keep_alive: Duration,
    subject_names: SubjectNames,
}

impl Default for Publisher {
    fn default() -> Self {
        Self::new()
    }
}

impl Publisher {
    /// A publisher with an in-process log.
    pub fn new() -> Self {
        Self::with_log(Arc::new(memory::MemoryLog::new()))
    }

    pub fn with_log(log: Arc<dyn EventLog>) -> Self {
        let (tx, _) = broadcast::channel(4096);
        Publisher {
            tx,
            log,
            closing: Arc::new(watch::channel(false).0),
            keep_alive: KEEP_ALIVE,
            subject_names: SubjectNames::Plain,
        }
    }

    /// How event lines name a subject (`server.log_customer_refs`).
    pub fn with_subject_names(mut self, names: SubjectNames) -> Self {
        self.subject_names = names;
        self
    }

    /// Another keep-alive interval for the live stream (tests).
    pub fn with_keep_alive(mut self, every: Duration) -> Self {
        self.keep_alive = every;
        self
    }

    /// Publishes `event`; `about` names whom it is about in its log line
    /// (`None`: read from `data`, and only for a line that is written).
    pub fn publish(&self, event: Event, about: Option<&About>) {
        let event = self.announce(event, about);
        self.log.append(event);
    }

    /// [`Publisher::publish`], and the answer says whether the event is in
    /// the log (the history `Last-Event-ID` resumes from): `true` once it
    /// is, `false` (or dropped) when it never will be.
    pub fn publish_confirmed(
        &self,
        event: Event,
        about: Option<&About>,
    ) -> tokio::sync::oneshot::Receiver<bool> {
        let event = self.announce(event, about);
        let (done, appended) = tokio::sync::oneshot::channel();
        self.log.append_confirmed(event, done);
        appended
    }

    /// Logs, counts and fans out `event` in this process, without
    /// appending it to the log: for an event a commit appended
    /// ([`history_op`]), and by [`Publisher::publish`].
    pub fn announce(&self, event: Event, about: Option<&About>) -> Arc<Event> {
        if tracing::enabled!(tracing::Level::INFO) {
            let read;
            let (interaction, subject) = match about {
                Some(a) => (a.interaction.as_deref(), a.subject.as_deref()),
                None => {
                    read = event.ids();
                    (read.0.as_deref(), read.1.as_deref())
                }
            };
            let subject = subject.map(|s| self.subject_names.show(s));
            let subject = subject.as_deref();
            tracing::info!(event_id = %event.id, event = event.kind.as_str(), team = %event.team, interaction, subject, "event");
        }
        metrics::counter!("chatgate_events_total", "type" => event.kind.as_str()).increment(1);
        let event = Arc::new(event);
        // No subscriber is not an error: nobody is listening yet.
        let _ = self.tx.send(Arc::clone(&event));
        event
    }

    /// Every event published after this call, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// The event log the live stream reads.
    pub fn log(&self) -> Arc<dyn EventLog> {
        Arc::clone(&self.log)
    }

    /// Whether `store`'s commits append to this publisher's log (then use
    /// cases append their events with [`history_op`]); wires an
    /// in-process log to the store.
    pub fn appended_by(&self, store: &dyn crate::store::Store) -> bool {
        self.log
            .history()
            .is_some_and(|history| store.append_history(&history))
    }

    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// Turns true when the server shuts down: live streams end then.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Ends every live stream (the server is shutting down; clients
    /// resume elsewhere or later with `Last-Event-ID`).
    pub fn end_streams(&self) {
        self.closing.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at() -> Timestamp {
        Timestamp::from_unix_seconds(1_795_000_000)
    }

    #[test]
    fn data_is_whom_it_is_about_then_the_payload_as_written_before_it_was_typed() {
        use types::*;
        let view = json!({"id": "i-1", "status": "pending"});
        let subject = json!({"subject": "cust-1"});
        let cid = Uuid::from_u128(0x01a2_02d5_ace6_73ea_b68d_1eb9_9ac4_339f);
        let ts = serde_json::to_string(&at()).unwrap();
        let i = r#"{"interaction":{"id":"i-1","status":"pending"}"#;
        let s = r#"{"subject":{"subject":"cust-1"}"#;
        // Each type's `data`, byte for byte as the untyped events wrote it.
        let cases = [
            (EventData::InteractionCreated(Plain), format!("{i}}}")),
            (
                EventData::InteractionLoggedOut(LoggedOut {
                    cause: crate::domain::logout::LogoutCause::Website,
                    actor: None,
                }),
                format!(r#"{i},"cause":"website"}}"#),
            ),
            (
                EventData::ChallengeCreated(ChallengeCreated {
                    challenge: CreatedChallenge {
                        challenge_id: cid,
                        delivery: crate::domain::challenge::Delivery::Sms,
                        expires_at: at(),
                        method: crate::domain::challenge::ChallengeMethod::Otp,
                        number_check: None,
                        transaction: None,
                        transaction_hash: None,
                    },
                }),
                format!(
                    r#"{i},"challenge":{{"challenge_id":"{cid}","delivery":"sms","expires_at":{ts},"method":"otp"}}}}"#
                ),
            ),
            (
                EventData::ChallengeFailed(ChallengeFailed {
                    challenge: FailedChallenge {
                        attempts_remaining: 2,
                        challenge_id: cid,
                        delivery: crate::domain::challenge::Delivery::Sms,
                        expires_at: at(),
                        method: crate::domain::challenge::ChallengeMethod::Otp,
                    },
                    reason: None,
                }),
                format!(
                    r#"{i},"challenge":{{"attempts_remaining":2,"challenge_id":"{cid}","delivery":"sms","expires_at":{ts},"method":"otp"}}}}"#
                ),
            ),
            (
                EventData::ChallengeFailed(ChallengeFailed {
                    challenge: FailedChallenge {
                        attempts_remaining: 0,
                        challenge_id: cid,
                        delivery: crate::domain::challenge::Delivery::App,
                        expires_at: at(),
                        method: crate::domain::challenge::ChallengeMethod::App,
                    },
                    reason: Some("denied"),
                }),
                format!(
                    r#"{i},"challenge":{{"attempts_remaining":0,"challenge_id":"{cid}","delivery":"app","expires_at":{ts},"method":"app"}},"reason":"denied"}}"#
                ),
            ),
            (
                EventData::ChallengeCodeRevealed(CodeRevealed {
                    api_key_id: "acme-agent".into(),
                    actor: crate::domain::audit::Actor::person("alice-1", None, "acme-agent"),
                    challenge: ChallengeRef { challenge_id: cid },
                }),
                format!(
                    r#"{i},"api_key_id":"acme-agent","actor":{{"type":"person","api_key_id":"acme-agent","sub":"alice-1"}},"challenge":{{"challenge_id":"{cid}"}}}}"#
                ),
            ),
            (
                EventData::SubjectLocked(SubjectChange {
                    origin: Some("sms:+447400123456".into()),
                    actor: None,
                }),
                format!(r#"{s},"origin":"sms:+447400123456"}}"#),
            ),
            (
                EventData::SubjectUnlocked(SubjectChange {
                    origin: None,
                    actor: None,
                }),
                format!(r#"{s},"origin":null}}"#),
            ),
        ];
        for (data, want) in cases {
            let whom = data.kind().whom();
            let about = if whom == Whom::Interaction {
                &view
            } else {
                &subject
            };
            let e = Event::of(&data, at(), "acme", whom, about).unwrap();
            assert_eq!(e.kind, data.kind());
            assert_eq!(e.data.get(), want, "{:?}", data.kind());
            // Carried as text through the outbox item, read back unchanged.
            let text = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&text).unwrap();
            assert_eq!(back.data.get(), e.data.get());
            assert_eq!(back.kind, e.kind);
            // An event about another than its type is about is refused.
            let other = if whom == Whom::Interaction {
                Whom::Subject
            } else {
                Whom::Interaction
            };
            assert!(Event::of(&data, at(), "acme", other, about).is_err());
        }
    }

    #[test]
    fn the_log_line_names_the_interaction_and_its_subject() {
        let ids = |data: serde_json::Value| {
            let e = Event::new(EventType::InteractionCreated, at(), "acme", &data).unwrap();
            let (i, s) = e.ids();
            (i.map(Cow::into_owned), s.map(Cow::into_owned))
        };
        let some = |s: &str| Some(s.to_string());
        // The interaction's customer_ref is its subject.
        assert_eq!(
            ids(
                json!({"interaction": {"id": "i-1", "customer_ref": "cust-42", "links": [{"id": "x"}]}})
            ),
            (some("i-1"), some("cust-42"))
        );
        // Without one, its own subject.
        assert_eq!(
            ids(json!({"interaction": {"id": "i-1", "customer_ref": null}})),
            (some("i-1"), some("interaction:i-1"))
        );
        // A subject event names its subject; escaped text is read too.
        assert_eq!(
            ids(json!({"subject": {"subject": "caf\u{e9} \"q\"", "locked": true}})),
            (None, some("caf\u{e9} \"q\""))
        );
        assert_eq!(ids(json!({"other": 1})), (None, None));
        assert_eq!(ids(json!({"interaction": {"id": 7}})), (None, None));
    }

    #[test]
    fn about_names_what_the_data_names() {
        // What an event carries beside it is what its log line would read
        // from `data` without it.
        let id = Uuid::now_v7();
        let read = |data: serde_json::Value| {
            let e = Event::new(EventType::InteractionCreated, at(), "acme", &data).unwrap();
            let (i, s) = e.ids();
            About {
                interaction: i.map(Cow::into_owned),
                subject: s.map(Cow::into_owned),
            }
        };
        for customer_ref in [Some("cust-42"), None] {
            assert_eq!(
                About::interaction(id, customer_ref),
                read(json!({"interaction": {"id": id, "customer_ref": customer_ref}}))
            );
        }
        assert_eq!(
            About::subject("caf\u{e9}"),
            read(json!({"subject": {"subject": "caf\u{e9}", "locked": false}}))
        );
    }
}
