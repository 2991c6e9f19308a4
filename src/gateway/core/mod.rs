//! The core every family stands on: [`Core`], the unit of work, the
//! records and their locks, the view, the outbox and the due teams
//! (docs/architecture.md#the-core-and-its-families).
pub(super) mod change;
pub(super) mod create;
pub(super) mod doors;
pub(super) mod due_teams;
pub(super) mod epochs;
pub(super) mod forget;
mod live;
pub(super) mod outbox;
mod record_locks;
pub(super) mod records;
mod store_errors;
pub(super) mod trail;
pub mod view;
pub(super) mod work;
pub(super) mod writes;

use std::sync::Arc;

pub use live::{Departed, Live};
pub use outbox::{
    left as outbox_left, Dispatcher, Outbox, OutboxItem, Task, BATCH as OUTBOX_BATCH,
};
pub use records::{decode_interaction, encode_interaction, Bookkeeping};
pub use view::InteractionView;

use crate::channels::{self, Channels, Fill, Message, Purpose};
use crate::config::{Config, Team};
use crate::domain::destination_policy;
use crate::domain::destination_policy::Reach;
use crate::domain::interaction::InteractionRecord;
use crate::domain::secrets::Pepper;
use crate::error::{Error, Result};
use crate::events::{EventData, Publisher};
use crate::store::companions::Companions;
use crate::store::SharedStore;
use crate::time::Timestamp;

/// Everything the use cases need. Cheap to share behind an `Arc`.
///
/// `config` and `channels` are one loaded set: a reload builds a new
/// `Core` with [`Core::reloaded`] (everything else shared) and puts
/// it in force through [`Live`].
pub struct Core {
    config: Arc<Config>,
    store: SharedStore,
    channels: Channels,
    events: Publisher,
    pepper: Pepper,
    outbox: Arc<Outbox>,
    /// The teams' identity providers: discovery documents and key sets, cached.
    oidc: Arc<crate::oidc::Providers>,
    /// The teams' number checks: their HTTP clients, tokens and answers,
    /// kept while a team's `[number_checks]` stays as it was.
    number_checks: Arc<crate::number_checks::Askers>,
    /// The Token Status Lists the wallet method fetched, each kept for its
    /// `ttl` and verified again at each use against the asking team's
    /// issuers (docs/wallet.md#status-lists).
    status_lists: Arc<crate::wallet_status::StatusLists>,
    /// The lists of trusted entities the teams' credentials name, each
    /// kept until its next usable copy (docs/wallet.md#trusted-lists).
    trusted_lists: Arc<crate::trusted_lists::TrustedLists>,
    /// Set on SIGTERM: `/readyz` answers 503 while requests are still served.
    draining: Arc<std::sync::atomic::AtomicBool>,
    /// Queues the units of work of one interaction, each handing the
    /// records it committed to the next (see [`work`]).
    record_locks: Arc<record_locks::RecordLocks<records::Pair>>,
    /// Queues the audited commits of one team on its audit head, each
    /// handing the head it wrote to the next (see [`trail`]).
    audit_heads: Arc<record_locks::RecordLocks<records::Loaded<trail::StoredHead>, String>>,
    /// What this process knows of each team's audit trail, to find it
    /// shorter (see [`trail`]).
    audit_known: Arc<trail::Witness>,
    /// Whether this process's audit entries wait for its start's
    /// (see [`trail`]).
    first_entries: Arc<trail::FirstEntries>,
    /// Interaction key → its recognized conversation's key, once seen, so
    /// that a read fetches both in one round trip (see `records`).
    recognition_keys: Arc<crate::store::companions::Companions>,
    /// Interaction key → the subject it names, once seen, for records
    /// another instance wrote (see `records`).
    subject_keys: Arc<crate::store::companions::Companions>,
    /// Recognized conversation's key → the subject of the customer it
    /// remembers, once seen, so that a read fetches it with the rest
    /// (see `records`).
    remembered_subjects: Arc<crate::store::companions::Companions>,
    /// Conversation key → the key of the interaction this process last
    /// found or created there, so that a create-or-get reads both in one
    /// round trip (see `interactions`).
    conversation_interactions: Arc<crate::store::companions::Companions>,
    /// What this process knows of each team's store marker: whether the
    /// store was found reset (see `epochs`).
    epochs: Arc<epochs::StoreEpochs>,
    /// Whether commits append events to the history the live stream reads
    /// (see `outbox::Recorded`); else events go through the outbox.
    appends_history: bool,
}

/// Where a chat message goes: an interaction's conversation.
pub struct Chat<'a> {
    pub interaction_id: uuid::Uuid,
    /// The interaction's own channel (its settings pick the template).
    pub channel: &'a str,
    pub conversation_id: &'a str,
    /// The language the interaction asked for, as asked; its channel's
    /// settings match it (docs/api.md#languages).
    pub locale: Option<&'a str>,
}

impl<'a> Chat<'a> {
    pub fn of(rec: &'a InteractionRecord) -> Self {
        Chat {
            interaction_id: rec.id,
            channel: &rec.channel,
            conversation_id: &rec.conversation_id,
            locale: rec.requested_locale.as_ref().map(|l| l.tag.as_str()),
        }
    }
}

impl Core {
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
        let appends_history = events.appended_by(store.as_ref());
        Core {
            appends_history,
            config,
            store,
            channels,
            events,
            pepper,
            outbox: Arc::new(Outbox::new()),
            oidc: Arc::default(),
            number_checks: Arc::default(),
            status_lists: Arc::default(),
            trusted_lists: Arc::default(),
            draining: Arc::default(),
            record_locks: Arc::default(),
            audit_heads: Arc::default(),
            audit_known: Arc::default(),
            first_entries: Arc::default(),
            recognition_keys: Arc::new(crate::store::companions::Companions::new()),
            subject_keys: Arc::new(crate::store::companions::Companions::new()),
            remembered_subjects: Arc::new(crate::store::companions::Companions::new()),
            conversation_interactions: Arc::new(crate::store::companions::Companions::new()),
            epochs: Arc::default(),
        }
    }

    /// This gateway with a reloaded configuration and the senders of its
    /// channels; the store, events, outbox, caches and what it has seen of
    /// the store are shared with this one.
    pub fn reloaded(&self, config: Arc<Config>, channels: Channels) -> Core {
        let pepper = {
            use secrecy::ExposeSecret;
            Pepper::new(config.server.pepper.expose_secret())
        };
        // A team whose `[number_checks]` changed, or went, starts afresh.
        self.number_checks.retain(|team| {
            let checks = config.teams.get(team)?.number_checks.as_ref();
            checks.map(crate::number_checks::NumberChecks::fingerprint)
        });
        Core {
            config,
            channels,
            pepper,
            store: Arc::clone(&self.store),
            events: self.events.clone(),
            outbox: Arc::clone(&self.outbox),
            oidc: Arc::clone(&self.oidc),
            number_checks: Arc::clone(&self.number_checks),
            status_lists: Arc::clone(&self.status_lists),
            trusted_lists: Arc::clone(&self.trusted_lists),
            draining: Arc::clone(&self.draining),
            record_locks: Arc::clone(&self.record_locks),
            audit_heads: Arc::clone(&self.audit_heads),
            audit_known: Arc::clone(&self.audit_known),
            first_entries: Arc::clone(&self.first_entries),
            recognition_keys: Arc::clone(&self.recognition_keys),
            subject_keys: Arc::clone(&self.subject_keys),
            remembered_subjects: Arc::clone(&self.remembered_subjects),
            conversation_interactions: Arc::clone(&self.conversation_interactions),
            epochs: Arc::clone(&self.epochs),
            appends_history: self.appends_history,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The senders of the channels in force.
    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The event publisher: the history, the live streams.
    pub fn events(&self) -> &Publisher {
        &self.events
    }

    /// The outbox: its bell, its HTTP client, the items kept.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Set on SIGTERM: `/readyz` answers 503 while requests are still served.
    pub fn draining(&self) -> &std::sync::atomic::AtomicBool {
        &self.draining
    }

    /// The pepper of the hashes the records keep of codes and tokens.
    pub(in crate::gateway) fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// The teams' identity providers, cached.
    pub(in crate::gateway) fn oidc(&self) -> &crate::oidc::Providers {
        &self.oidc
    }

    /// The teams' number checks, with what they keep between requests.
    pub(in crate::gateway) fn number_checks(&self) -> &crate::number_checks::Askers {
        &self.number_checks
    }

    /// The Token Status Lists fetched for the wallet method, kept.
    pub(in crate::gateway) fn status_lists(&self) -> &crate::wallet_status::StatusLists {
        &self.status_lists
    }

    pub(in crate::gateway) fn trusted_lists(&self) -> &crate::trusted_lists::TrustedLists {
        &self.trusted_lists
    }

    /// Whether this process's audit entries wait for its start's.
    pub(in crate::gateway) fn first_entries(&self) -> &trail::FirstEntries {
        &self.first_entries
    }

    /// What this process saw of each team's store marker.
    pub(in crate::gateway) fn epochs(&self) -> &epochs::StoreEpochs {
        &self.epochs
    }

    /// The keys this process saw the records of an interaction name: its
    /// recognized conversation's, and that conversation's customer's
    /// subject (see `records`).
    pub(in crate::gateway) fn companions(&self) -> (&Companions, &Companions) {
        (&self.recognition_keys, &self.remembered_subjects)
    }

    /// The interaction this process last found or created in each
    /// conversation, by their keys (see `interactions`).
    pub(in crate::gateway) fn conversation_interactions(&self) -> &Companions {
        &self.conversation_interactions
    }

    /// The team of an authenticated caller. Teams come from the config, so a
    /// caller's team always exists; a miss is a bug.
    pub fn team(&self, id: &str) -> Result<&Arc<Team>> {
        self.config
            .teams
            .get(id)
            .ok_or_else(|| Error::internal("an API key names a team the config lacks"))
    }

    /// Renders a purpose's template for `rec`'s channel and sends it there
    /// (or to `to` for SMS/e-mail channels), at once: for the messages a
    /// caller waits for (links, codes, prompts). Their use cases asked
    /// [`Core::recipient`] before they committed, so a recipient the SMS
    /// rules refuse is refused there; one refused here (the settings were
    /// reloaded meanwhile) is a failed send. `call`: what a voice call
    /// needs, prepared by the caller that sends a code (`voice::call_for`).
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        team: &Team,
        rec: &InteractionRecord,
        channel: &str,
        to: Option<String>,
        purpose: Purpose,
        fill: Fill<'_>,
        call: Option<channels::Call>,
        now: Timestamp,
    ) -> std::result::Result<channels::Sent, channels::ChannelError> {
        let chat = Chat::of(rec);
        let to = self
            .recipient(team, &chat, &rec.contact, channel, to)
            .map_err(|e| channels::ChannelError::new(e.to_string()))?;
        let id = uuid::Uuid::now_v7();
        self.send_message(team, &chat, channel, to, purpose, fill, id, call, now)
            .await
    }

    /// Renders and sends one message with id `id` (the same on every
    /// attempt). One a WhatsApp Cloud API channel sent is remembered by
    /// Meta's id, so that its statuses are known for the gateway's.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_message(
        &self,
        team: &Team,
        chat: &Chat<'_>,
        channel: &str,
        to: Option<String>,
        purpose: Purpose,
        fill: Fill<'_>,
        id: uuid::Uuid,
        call: Option<channels::Call>,
        now: Timestamp,
    ) -> std::result::Result<channels::Sent, channels::ChannelError> {
        let settings = team.settings_for(chat.channel);
        let channel_cfg = self.config.channels.get(channel);
        let l = &settings.locale;
        let locale = crate::domain::locale::matched(chat.locale, &l.supported, &l.default);
        let mut key = crate::config::template_key(purpose, channel_cfg);
        if fill.amount.is_some() {
            key = crate::config::for_transaction(key);
        }
        let text = channels::render(
            crate::config::text(key, settings, channel_cfg, locale),
            fill,
        );
        let subject = channel_cfg
            .and_then(|c| c.templates.subject.as_deref())
            .map(|s| channels::render(s, fill));
        // A WhatsApp Cloud API channel: its sends know the identity, and
        // are remembered for their statuses (docs/channels.md#identity-changes).
        let cloud_api = channel_cfg.is_some_and(|c| c.kind.info().identity_hash);
        let identity_key_hash =
            identity_key_hash(self, team, chat, (channel, cloud_api), &to, purpose)
                .await
                .map_err(|e| channels::ChannelError::new(e.to_string()))?;
        let msg = Message {
            id,
            purpose,
            interaction_id: chat.interaction_id,
            conversation_id: chat.conversation_id.to_string(),
            channel: channel.to_string(),
            to,
            text,
            subject,
            // The code alone, for kinds that send it through a provider's
            // template (docs/channels.md#authentication-templates).
            code: (purpose == Purpose::Otp)
                .then(|| fill.pin.map(str::to_string))
                .flatten(),
            public_url: self.config.server.public_url.clone(),
            code_ttl: fill.ttl,
            locale: locale.to_string(),
            call,
            identity_key_hash,
        };
        let sent = self.channels.send(&msg).await?;
        if cloud_api {
            remember_sent(self, team, chat, channel, &sent, now).await;
        }
        Ok(sent)
    }

    /// Whom a message on `channel` into `chat` goes to, and whether it may:
    /// every message the gateway sends asks here
    /// (`destination_policy::recipient`). `to` when given, else, on kinds
    /// that send to a person rather than a conversation (`Reach`), the
    /// interaction's contact (docs/channels.md); `None`: the conversation,
    /// or nobody to send to. 403/422 for a phone number the SMS rules of
    /// the interaction's channel refuse (docs/api.md#where-an-otp-may-go).
    pub fn recipient(
        &self,
        team: &Team,
        chat: &Chat<'_>,
        contact: &crate::domain::interaction::Contact,
        channel: &str,
        to: Option<String>,
    ) -> Result<Option<String>> {
        let otp = &team.settings_for(chat.channel).otp;
        let reach = self.reach(channel);
        // The interaction's own WhatsApp chat named by a business-scoped
        // user id is reached as the conversation, whatever the kind
        // (docs/channels.md#business-scoped-user-ids).
        let bsuid_chat = channel == chat.channel
            && self.config.whatsapp_chat(channel)
            && crate::domain::bsuid::is_bsuid(chat.conversation_id);
        let reach = if bsuid_chat && to.is_none() {
            Reach::PhoneChat
        } else {
            reach
        };
        destination_policy::recipient(reach, otp, contact, chat.conversation_id, to)
    }

    /// Whom `channel` sends to: a conversation, or a person by phone or
    /// e-mail address (its kind's addressing).
    pub fn reach(&self, channel: &str) -> Reach {
        self.config
            .channels
            .get(channel)
            .map_or(Reach::Conversation, |c| c.kind.info().addressing)
    }

    /// An event about one interaction, outside an interaction's unit of
    /// work (a read, a challenge once sent): into the outbox on its own.
    pub async fn emit(
        &self,
        data: EventData,
        now: Timestamp,
        view: &InteractionView,
    ) -> Result<()> {
        let item = OutboxItem::about_interaction(&data, now, view)?;
        self.enqueue_now(&view.team, vec![item], now).await
    }
}

/// Remembers that WhatsApp Cloud API channel `channel` of `team` sent
/// `sent` (docs/channels.md#identity-changes: a status about a message
/// the gateway never sent changes nothing), for as long as the chat's
/// interaction may live. The message
/// went: a failure to remember it is logged, and its statuses are then
/// taken for another sender's.
async fn remember_sent(
    core: &Core,
    team: &Team,
    chat: &Chat<'_>,
    channel: &str,
    sent: &channels::Sent,
    now: Timestamp,
) {
    let Some(message_id) = sent.message_id.as_deref() else {
        return;
    };
    let key = crate::store::keys::whatsapp_sent(&team.keyspace, channel, message_id);
    let ttl = team.settings_for(chat.channel).interaction_ttl.get();
    let done = change::once(core, &team.keyspace, &[], now, |c| {
        c.claim(&key, &records::SentMessage {}, Some(ttl))?;
        Ok(work::Step::Write(()))
    })
    .await;
    if let Err(e) = done {
        tracing::warn!(team = %team.id, channel, error = %e, "a WhatsApp message sent was not remembered: its statuses will change no identity");
    }
}

/// The identity hash a message of `purpose` on `channel` into `chat`
/// carries (docs/channels.md#sends-know-the-identity): the one Meta last
/// gave for the person behind the conversation, for a code or a link into
/// the interaction's own conversation on a Cloud API channel (`channel`
/// and whether it is one). One read of the store for those, none for any
/// other message.
async fn identity_key_hash(
    core: &Core,
    team: &Team,
    chat: &Chat<'_>,
    (channel, cloud_api): (&str, bool),
    to: &Option<String>,
    purpose: Purpose,
) -> Result<Option<String>> {
    let carries_proof = purpose.carries_proof();
    let into_chat =
        channel == chat.channel && to.as_deref().is_none_or(|to| to == chat.conversation_id);
    if !(carries_proof && cloud_api && into_chat) {
        return Ok(None);
    }
    let user_id = crate::domain::identity_change::meta_user_id(chat.conversation_id);
    let key = crate::store::keys::identity_hash(&team.keyspace, channel, user_id);
    let raw = core.get(std::slice::from_ref(&key)).await?.pop().flatten();
    let known = records::Loaded::<records::IdentityHash>::parse(key, raw)?;
    Ok(known.value.map(|h| h.hash))
}
