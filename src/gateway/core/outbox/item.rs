//! The item format: what one outbox item asks for, as it is stored.
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ITEM_TTL;
use crate::channels::Purpose;
use crate::domain::interaction::Contact;
use crate::error::{Error, Result};
use crate::events::{About, Event, EventData, Whom};
use crate::gateway::core::view::SubjectView;
use crate::gateway::core::InteractionView;
use crate::time::Timestamp;

/// A chat notice nobody waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    Authenticated,
    Expired,
}

impl Notice {
    pub(super) fn purpose(self) -> Purpose {
        match self {
            Notice::Authenticated => Purpose::Authenticated,
            Notice::Expired => Purpose::Expired,
        }
    }
}

/// What an item asks for. Written `{"kind": "event", "event": …, "about": …}`
/// (`about` only where known) or `{"kind": "notice", "notice": …, …}`; read
/// through [`RawTask`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawTask")]
pub enum Task {
    /// Publish the event (live stream, history) and POST it to the team's
    /// webhook. `about` names whom it is about for the log line (`None` in
    /// an item written before it was kept: read from the event's `data`).
    Event {
        event: Event,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        about: Option<About>,
    },
    /// Send a notice into the interaction's chat.
    Notice {
        notice: Notice,
        interaction_id: Uuid,
        channel: String,
        conversation_id: String,
        /// Where an SMS or e-mail conversation's messages go.
        #[serde(default, with = "crate::gateway::core::records::contact")]
        contact: Contact,
        /// The language the interaction asked for (its requested tag,
        /// docs/api.md#languages); none in an item written before languages.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locale: Option<String>,
    },
}

/// A [`Task`] as read: the same members, one flat struct. (serde reads an
/// internally tagged enum by buffering the whole object first and reading
/// it again; the dispatcher reads every item it delivers.)
#[derive(Deserialize)]
struct RawTask {
    kind: TaskKind,
    event: Option<Event>,
    #[serde(default)]
    about: Option<About>,
    notice: Option<Notice>,
    interaction_id: Option<Uuid>,
    channel: Option<String>,
    conversation_id: Option<String>,
    #[serde(default, with = "crate::gateway::core::records::contact")]
    contact: Contact,
    #[serde(default)]
    locale: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaskKind {
    Event,
    Notice,
}

impl TryFrom<RawTask> for Task {
    type Error = &'static str;

    fn try_from(raw: RawTask) -> Result<Self, Self::Error> {
        match raw.kind {
            TaskKind::Event => Ok(Task::Event {
                event: raw.event.ok_or("an event task without its event")?,
                about: raw.about,
            }),
            TaskKind::Notice => match (
                raw.notice,
                raw.interaction_id,
                raw.channel,
                raw.conversation_id,
            ) {
                (Some(notice), Some(interaction_id), Some(channel), Some(conversation_id)) => {
                    Ok(Task::Notice {
                        notice,
                        interaction_id,
                        channel,
                        conversation_id,
                        contact: raw.contact,
                        locale: raw.locale,
                    })
                }
                _ => Err("a notice task without its notice, interaction or chat"),
            },
        }
    }
}

/// Where a stored item goes, read off its text without the rest (its
/// event is skipped, not built): `Some(None)` for an event, a notice's
/// channel; `None` when the text is not a readable item's (an entry stored
/// the earlier way is its id).
pub(super) fn peek_channel(text: &str) -> Option<Option<String>> {
    #[derive(Deserialize)]
    struct Peek {
        task: PeekTask,
    }
    #[derive(Deserialize)]
    struct PeekTask {
        kind: TaskKind,
        #[serde(default)]
        channel: Option<String>,
    }
    let peek: Peek = serde_json::from_str(text).ok()?;
    match peek.task.kind {
        TaskKind::Event => Some(None),
        TaskKind::Notice => peek.task.channel.map(Some),
    }
}

/// One item of the outbox. Holds no code, PIN, token or key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The message id: the same on every attempt. Written first: the
    /// dispatcher reads it off a queue entry's text without the rest.
    pub id: Uuid,
    pub created_at: Timestamp,
    #[serde(default)]
    pub attempts: u32,
    /// The event was published already; only the webhook is left.
    #[serde(default)]
    pub published: bool,
    pub task: Task,
}

impl OutboxItem {
    /// An item that publishes `event`, about `about`.
    pub fn event(event: Event, about: About, now: Timestamp) -> Self {
        Self::new(
            Task::Event {
                event,
                about: Some(about),
            },
            now,
        )
    }

    /// An item that publishes `data` about the interaction `view`.
    pub fn about_interaction(
        data: &EventData,
        now: Timestamp,
        view: &InteractionView,
    ) -> Result<Self> {
        let event = Event::of(data, now, &view.team, Whom::Interaction, view)?;
        let about = About::interaction(view.id, view.customer_ref.as_deref());
        Ok(Self::event(event, about, now))
    }

    /// An item that publishes `data` about the subject `view`.
    pub fn about_subject(
        data: &EventData,
        now: Timestamp,
        team: &str,
        view: &SubjectView,
    ) -> Result<Self> {
        let event = Event::of(data, now, team, Whom::Subject, view)?;
        Ok(Self::event(event, About::subject(&view.subject), now))
    }

    /// The item as stored: the text of its queue entry.
    pub(super) fn text(&self) -> Result<String> {
        self.text_after("")
    }

    /// [`Self::text`] after `prefix` (a due-queue entry's kind), in one
    /// buffer.
    pub(super) fn text_after(&self, prefix: &str) -> Result<String> {
        crate::store::json_text_after(prefix, self)
            .map_err(|e| Error::internal_from("an outbox item could not be encoded", e))
    }

    /// How long the outbox keeps it, seen from `at`: what is left of
    /// [`ITEM_TTL`], at least a second.
    pub(super) fn keep_at(&self, at: Timestamp) -> Duration {
        ITEM_TTL
            .saturating_sub(at.since(self.created_at))
            .max(Duration::from_secs(1))
    }

    pub fn new(task: Task, now: Timestamp) -> Self {
        let id = match &task {
            Task::Event { event, .. } => event.id,
            Task::Notice { .. } => Uuid::now_v7(),
        };
        OutboxItem {
            id,
            created_at: now,
            attempts: 0,
            published: false,
            task,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_read_back_as_written_and_incomplete_ones_are_refused() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let event = Event::new(
            crate::events::EventType::ChallengeFailed,
            now,
            "acme",
            &serde_json::json!({"interaction": {"id": "x"}}),
        )
        .unwrap();
        let notice = Task::Notice {
            notice: Notice::Expired,
            interaction_id: Uuid::now_v7(),
            channel: "webchat".into(),
            conversation_id: "c-1".into(),
            contact: Contact {
                phone: Some("+15550100".into()),
                email: None,
            },
            locale: Some("es-MX".into()),
        };
        let about = About::interaction(Uuid::nil(), Some("cust-1"));
        let with_about = OutboxItem::event(event.clone(), about.clone(), now);
        // An item written before `about` was kept: read, it has none.
        let legacy = OutboxItem::new(Task::Event { event, about: None }, now);
        for item in [with_about, legacy, OutboxItem::new(notice, now)] {
            let json = serde_json::to_string(&item).unwrap();
            let back: OutboxItem = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), json);
            if let Task::Event { about: read, .. } = back.task {
                let kept = json.contains(
                    r#""about":{"i":"00000000-0000-0000-0000-000000000000","s":"cust-1"}"#,
                );
                assert_eq!(read.as_ref() == Some(&about), kept, "{json}");
                assert!(kept || !json.contains("about"), "{json}");
            }
        }
        let written = serde_json::to_value(Task::Notice {
            notice: Notice::Authenticated,
            interaction_id: Uuid::nil(),
            channel: "sms".into(),
            conversation_id: "c".into(),
            contact: Contact::default(),
            locale: None,
        })
        .unwrap();
        assert_eq!(written["kind"], "notice");
        assert_eq!(written["notice"], "authenticated");
        assert!(written.get("locale").is_none(), "{written}");
        for bad in [
            r#"{"kind":"event"}"#,
            r#"{"kind":"notice","notice":"expired","channel":"sms","conversation_id":"c"}"#,
            r#"{"kind":"other"}"#,
        ] {
            assert!(serde_json::from_str::<Task>(bad).is_err(), "{bad}");
        }
    }
}
