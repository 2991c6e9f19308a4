//! Use cases: what a bot, a login page, a website or an agent asks of the
//! gateway. Each one that changes an interaction is one unit of work
//! ([`work`]: load the interaction and its subject, let the domain decide,
//! commit atomically, retry on a concurrent write), and only then publishes
//! events and sends channel messages.
//!
//! Every function takes `now`; none reads the clock.
mod assertion;
mod challenges;
mod expiry;
mod interactions;
mod login;
mod records;
mod subjects;
mod verify;
mod view;
mod website;
mod work;

use std::sync::Arc;

pub use assertion::AssertionOutcome;
pub use challenges::{NewChallenge, StartedChallenge};
pub use expiry::run_sweeper;
pub use interactions::{ListQuery, NewInteraction, Page};
pub use login::{Callback, CallbackOutcome, IssuedLink, LinkRequest, ShortLinkTarget};
pub use verify::{RevealedCode, Verified};
pub use view::InteractionView;
pub use website::SignatureHeaders;

use crate::channels::{self, Channels, Fill, Message, Purpose};
use crate::config::{Config, Team};
use crate::domain::interaction::InteractionRecord;
use crate::domain::secrets::Pepper;
use crate::domain::subject::{FailureOutcome, SubjectView};
use crate::error::{Error, Result};
use crate::events::{Event, EventType, Publisher};
use crate::store::SharedStore;
use crate::time::Timestamp;

/// Everything the use cases need. Cheap to share behind an `Arc`.
pub struct Gateway {
    pub config: Arc<Config>,
    pub store: SharedStore,
    pub channels: Channels,
    pub events: Publisher,
    pub pepper: Pepper,
}

impl Gateway {
    pub fn new(
        config: Arc<Config>,
        store: SharedStore,
        channels: Channels,
        events: Publisher,
    ) -> Self {
        let pepper = {
            use secrecy::ExposeSecret;
            Pepper::new(config.server.pepper.expose_secret())
        };
        Gateway {
            config,
            store,
            channels,
            events,
            pepper,
        }
    }

    /// The team of an authenticated caller. Teams come from the config, so a
    /// caller's team always exists; a miss is a bug.
    pub fn team(&self, id: &str) -> Result<&Team> {
        self.config.team(id).ok_or(Error::Internal)
    }

    /// Renders a purpose's template for `rec`'s channel and sends it there
    /// (or to `to` for SMS/e-mail channels).
    pub async fn send(
        &self,
        team: &Team,
        rec: &InteractionRecord,
        channel: &str,
        to: Option<String>,
        purpose: Purpose,
        fill: Fill<'_>,
    ) -> std::result::Result<(), channels::ChannelError> {
        let settings = team.settings_for(&rec.channel);
        let channel_cfg = self.config.channels.get(channel);
        let text = channels::render(channels::template(purpose, settings, channel_cfg), fill);
        let subject = channel_cfg
            .and_then(|c| c.templates.subject.as_deref())
            .map(|s| channels::render(s, fill));
        let msg = Message {
            purpose,
            interaction_id: rec.id,
            conversation_id: rec.conversation_id.clone(),
            channel: channel.to_string(),
            to,
            text,
            subject,
        };
        self.channels.send(&msg).await
    }

    /// Sends a message whose failure must not fail the request (confirmations,
    /// expiry notices): in the background, failures only logged.
    pub fn send_in_background(
        self: &Arc<Self>,
        team_id: &str,
        rec: InteractionRecord,
        purpose: Purpose,
    ) {
        let gw = Arc::clone(self);
        let team_id = team_id.to_string();
        tokio::spawn(async move {
            if let Ok(team) = gw.team(&team_id) {
                let channel = rec.channel.clone();
                // Errors are logged by `Channels::send`.
                let _ = gw
                    .send(team, &rec, &channel, None, purpose, Fill::default())
                    .await;
            }
        });
    }

    /// Publishes an event about one interaction.
    pub fn emit(&self, kind: EventType, now: Timestamp, view: &InteractionView) {
        let data = serde_json::json!({ "interaction": view });
        self.events.publish(Event::new(kind, now, &view.team, data));
    }
}

impl Gateway {
    /// After an authentication is committed: the event (and the expiry
    /// notice when it is due at once), the metric, and the confirmation
    /// into the chat.
    pub fn announce_authenticated(
        self: &Arc<Self>,
        team: &Team,
        view: &InteractionView,
        rec: InteractionRecord,
        now: Timestamp,
    ) {
        let method = view.method.map_or("none", |m| m.as_str());
        metrics::counter!("chatgate_authentications_total", "method" => method).increment(1);
        self.emit(EventType::InteractionAuthenticated, now, view);
        if rec.expiring_due_at_once(team.settings_for(&rec.channel)) {
            self.emit(EventType::InteractionExpiring, now, view);
        }
        self.send_in_background(&team.id, rec, Purpose::Authenticated);
    }

    /// `subject.locked` / `subject.banned` for a failure that locked or banned.
    pub fn emit_lockout(
        &self,
        outcome: FailureOutcome,
        now: Timestamp,
        team: &str,
        subject: &SubjectView,
    ) {
        let kind = match outcome {
            FailureOutcome::Locked { .. } => EventType::SubjectLocked,
            FailureOutcome::Banned { .. } => EventType::SubjectBanned,
            FailureOutcome::Counted { .. } => return,
        };
        metrics::counter!("chatgate_lockouts_total", "kind" => kind.as_str()).increment(1);
        self.events.publish(Event::new(
            kind,
            now,
            team,
            serde_json::json!({ "subject": subject }),
        ));
    }
}
