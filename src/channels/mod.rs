//! Sending text into chats, SMS and e-mail: one [`Channel`] trait, one
//! implementation per provider kind, the register of kinds ([`ChannelKind`])
//! and the placeholders (`#URL#`, `#PIN#`, `#MINUTES#`) that make the text.
//! Nothing here reads the configuration: the loader (`config`) reads each
//! kind's keys with the kind's own type.
pub mod bot_api;
pub mod kind;
pub mod provider;
pub mod receipts;
pub mod slack;
pub mod smtp;
pub mod telegram;
pub mod telegram_gateway;
pub mod twilio;
pub mod twilio_voice;
pub mod webhook;
pub mod whatsapp;
pub mod whatsapp_identity;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use kind::{Dial, Kind, KindInfo, Problem};

use crate::domain::challenge::Page;
use crate::domain::settings::TextKey;
use crate::fared::{Failing, Fared};
use crate::outbound::{Clients, Reach};

/// Registers the channel kinds: each line a `ChannelKind` variant and the
/// type of its keys, which implements [`Kind`] (its name, limits,
/// addressing and sender). Everything that differs by kind asks that type.
macro_rules! kinds {
    ($($variant:ident($keys:ty)),+ $(,)?) => {
        /// A channel file's kind with its keys (docs/channels.md).
        #[derive(Debug, Clone)]
        pub enum ChannelKind {
            $($variant($keys)),+
        }

        impl ChannelKind {
            /// Every kind, in the order docs/channels.md lists them.
            pub const ALL: &'static [KindInfo] = &[$(<$keys as Kind>::INFO),+];

            pub fn info(&self) -> &'static KindInfo {
                match self {
                    $(ChannelKind::$variant(_) => &<$keys as Kind>::INFO),+
                }
            }

            /// Whether a code sent through this channel shows the text of
            /// its template ([`Kind::shows_text`]).
            pub fn shows_text(&self) -> bool {
                match self {
                    $(ChannelKind::$variant(keys) => keys.shows_text()),+
                }
            }

            /// Whether a conversation on this channel is a WhatsApp chat
            /// ([`Kind::whatsapp_chat`]): there `conversation_id` is a
            /// number or a business-scoped user id
            /// (docs/channels.md#business-scoped-user-ids).
            pub fn whatsapp_chat(&self) -> bool {
                match self {
                    $(ChannelKind::$variant(keys) => keys.whatsapp_chat()),+
                }
            }

            /// Whether this channel sends every OTP as a WhatsApp
            /// authentication template ([`Kind::sends_templates`]), which
            /// Meta delivers to phone numbers only
            /// (docs/channels.md#business-scoped-user-ids).
            pub fn otp_template(&self) -> bool {
                match self {
                    $(ChannelKind::$variant(keys) => keys.sends_templates()),+
                }
            }

            /// The sender of a channel of this kind.
            pub fn sender(&self, dial: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
                match self {
                    $(ChannelKind::$variant(keys) => keys.sender(dial)),+
                }
            }

            /// Reads the keys of the kind named `name` from `keys`, then
            /// checks them. `None`: no kind has that name.
            pub fn parse<'de, D: Deserializer<'de>>(
                name: &str,
                keys: D,
            ) -> Option<Result<Result<Self, Problem>, D::Error>> {
                $(
                    if name == <$keys as Kind>::INFO.name {
                        return Some(<$keys>::deserialize(keys).map(|mut k| {
                            k.check().map(|()| ChannelKind::$variant(k))
                        }));
                    }
                )+
                None
            }
        }
    };
}

kinds! {
    Webhook(webhook::WebhookConfig),
    Twilio(twilio::TwilioConfig),
    TwilioVoice(twilio_voice::TwilioVoiceConfig),
    Whatsapp(whatsapp::WhatsappConfig),
    Slack(slack::SlackConfig),
    Telegram(telegram::TelegramConfig),
    TelegramGateway(telegram_gateway::TelegramGatewayConfig),
    Smtp(smtp::SmtpConfig),
}

impl ChannelKind {
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Whether a conversation on this channel is an SMS conversation with
    /// the phone number its `conversation_id` names: a `twilio` channel
    /// that does not send WhatsApp. Only the SIM is in such a
    /// conversation (docs/network-authentication.md#the-code-typed-into-the-chat).
    pub fn sms_conversation(&self) -> bool {
        match self {
            ChannelKind::Twilio(k) => !k.sends_whatsapp(),
            ChannelKind::Webhook(_)
            | ChannelKind::TwilioVoice(_)
            | ChannelKind::Whatsapp(_)
            | ChannelKind::Slack(_)
            | ChannelKind::Telegram(_)
            | ChannelKind::TelegramGateway(_)
            | ChannelKind::Smtp(_) => false,
        }
    }

    /// The conversation's channel in words, as a network link's page
    /// names it to the customer (`#CHANNEL#`).
    pub fn in_words(&self) -> &'static str {
        match self {
            ChannelKind::Whatsapp(_) => "WhatsApp",
            ChannelKind::Twilio(k) if k.sends_whatsapp() => "WhatsApp",
            ChannelKind::Twilio(_) => "SMS",
            ChannelKind::Slack(_) => "Slack",
            ChannelKind::Telegram(_) | ChannelKind::TelegramGateway(_) => "Telegram",
            ChannelKind::TwilioVoice(_) => "phone call",
            ChannelKind::Smtp(_) => "e-mail",
            ChannelKind::Webhook(_) => "chat",
        }
    }

    /// The kind names, for a message: `a, b or c`.
    pub fn names() -> String {
        crate::domain::challenge::one_of(Self::ALL, |k: KindInfo| k.name)
    }
}

crate::domain::every::every! {
    /// Why a message is sent (the template it uses). Its name (`as_str`)
    /// is its template's key, in a metric label, a webhook's `purpose`
    /// and a channel file's `[templates]`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Purpose {
        LoginLink,
        Otp,
        PinPrompt,
        Authenticated,
        Expired,
        /// The binding code of an app challenge: approve in the app.
        AppPrompt,
        /// The link to a page of the gateway that moves a challenge: the
        /// network challenge's (docs/network-authentication.md), the
        /// wallet's (docs/wallet.md#the-link-page), the page a code is
        /// typed on (docs/api.md#codes-typed-on-the-gateways-page). Its
        /// text and where it may go are the page's (`Page::link`), so a
        /// page added is a purpose without a line here
        /// (docs/decisions/0830-a-page-s-link-message-is-one-purpose.md).
        Link(Page),
        /// The link to the code-entry page where the customer types their
        /// session PIN; it replaces the PIN prompt.
        PinEntryLink,
    }
}

impl Purpose {
    /// Whether its message carries a proof (a code or a challenge's
    /// link), so that one into a Cloud API conversation is sent with the
    /// identity key it is for (docs/channels.md#sends-know-the-identity).
    /// Every purpose is named, so a new one does not build until it is
    /// placed.
    pub fn carries_proof(self) -> bool {
        match self {
            Purpose::Otp
            | Purpose::LoginLink
            | Purpose::AppPrompt
            | Purpose::Link(_)
            | Purpose::PinEntryLink => true,
            Purpose::PinPrompt | Purpose::Authenticated | Purpose::Expired => false,
        }
    }

    /// Its own template key, the one its name spells; a page's link's is
    /// the page's ([`Page::link`]).
    pub fn key(self) -> TextKey {
        match self {
            Purpose::LoginLink => TextKey::LoginLink,
            Purpose::Otp => TextKey::Otp,
            Purpose::PinPrompt => TextKey::PinPrompt,
            Purpose::Authenticated => TextKey::Authenticated,
            Purpose::Expired => TextKey::Expired,
            Purpose::AppPrompt => TextKey::AppPrompt,
            Purpose::Link(page) => page.link().text,
            Purpose::PinEntryLink => TextKey::PinEntryLink,
        }
    }

    /// Its name: its template key's ([`Purpose::key`]).
    pub fn as_str(self) -> &'static str {
        self.key().as_str()
    }
}

/// Its name, as a webhook's `purpose` carries it.
impl Serialize for Purpose {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One message to deliver.
#[derive(Clone)]
pub struct Message {
    /// The same for every attempt to deliver this message (the `webhook`
    /// kind sends it as `webhook-id`, so a receiver can drop repeats).
    pub id: Uuid,
    pub purpose: Purpose,
    pub interaction_id: Uuid,
    pub conversation_id: String,
    /// The channel's name (`channels/<name>.toml`).
    pub channel: String,
    /// Phone number or e-mail address for `twilio` and `smtp` (and for
    /// `whatsapp` as a team's `sms_channel`); chat kinds send to
    /// `conversation_id`, and `to` is None for chat deliveries.
    pub to: Option<String>,
    /// The rendered text. May contain a code: never log it.
    pub text: String,
    /// The code alone, for an `otp` message (`None` for every other
    /// purpose): kinds that send codes through a provider's own template
    /// (docs/channels.md#authentication-templates) or send a code rather
    /// than a text (`telegram_gateway`) send this, not `text`. Never log
    /// it (`Debug` leaves it out).
    pub code: Option<String>,
    /// The rendered e-mail subject (smtp only).
    pub subject: Option<String>,
    /// `server.public_url`: where a provider's delivery receipts come back
    /// (docs/api.md#delivery-receipts).
    pub public_url: String,
    /// The code's remaining life, with `code`.
    pub code_ttl: Option<Duration>,
    /// The interaction's language (an entry of `locale.supported`) that
    /// `text` is in; a provider's own template follows it
    /// (docs/channels.md#authentication-templates), as a call's `<Say
    /// language>` does.
    pub locale: String,
    /// For a code read by a voice call (`twilio_voice`): what the call
    /// needs beside its text; `None` for every other message.
    pub call: Option<Call>,
    /// The identity hash Meta last gave for the person behind the
    /// WhatsApp conversation this message carries a code or a link into
    /// (docs/channels.md#sends-know-the-identity): the Cloud API kind
    /// sends it as `recipient_identity_key_hash`, so that Meta refuses to
    /// deliver to a changed identity. `None` for every other message.
    pub identity_key_hash: Option<String>,
}

/// What a voice call carries beside its text (docs/channels.md#twilio_voice-codes-read-by-a-phone-call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The opaque id the call's key press comes back under (128 random
    /// bits, `domain::voice::GatherId`).
    pub gather: String,
}

impl Message {
    /// The code a templated kind (`kind`, for the error) sends in place of
    /// the text: `None` for every purpose but `otp`; an OTP without its
    /// code is an error, never sent as text
    /// (docs/channels.md#authentication-templates).
    pub fn otp_code(&self, kind: &str) -> Option<Result<&str, ChannelError>> {
        (self.purpose == Purpose::Otp).then(|| {
            self.code
                .as_deref()
                .ok_or_else(|| ChannelError::new(format!("{kind}: an OTP without its code")))
        })
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("purpose", &self.purpose)
            .field("interaction_id", &self.interaction_id)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// A provider refused or failed a message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct ChannelError {
    /// Safe to show a client: a status code or a provider error name,
    /// never a secret.
    pub reason: String,
    /// What the refusal means beyond a failed send, when the provider
    /// said.
    pub refusal: Option<Refusal>,
}

impl ChannelError {
    /// A failed send, and nothing more.
    pub fn new(reason: impl Into<String>) -> Self {
        ChannelError {
            reason: reason.into(),
            refusal: None,
        }
    }

    /// A refusal that means `refusal`.
    pub fn refused(reason: impl Into<String>, refusal: Refusal) -> Self {
        ChannelError {
            reason: reason.into(),
            refusal: Some(refusal),
        }
    }
}

/// A provider's refusal that the gateway acts on beyond failing the send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// WhatsApp refused the message because the identity hash it carried
    /// is no longer the recipient's (docs/channels.md#sends-know-the-identity).
    IdentityChanged,
}

/// A message the provider took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The provider's id of the message, which its delivery receipts name
    /// (Twilio's `sid`, WhatsApp's `messages[0].id`); `None` for kinds
    /// without receipts.
    pub message_id: Option<String>,
}

impl Sent {
    /// Taken by a kind that reports nothing afterwards.
    pub fn untracked() -> Self {
        Sent::default()
    }

    /// Taken, and known to the provider as `message_id` (an empty id is
    /// none).
    pub fn tracked(message_id: Option<&str>) -> Self {
        Sent {
            message_id: message_id
                .map(str::trim)
                .filter(|id| !id.is_empty())
                .map(str::to_string),
        }
    }
}

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError>;

    /// Withdraws message `message_id` (a `Sent`'s id) where the provider
    /// can (`telegram_gateway`); nothing elsewhere. Best effort.
    async fn revoke(&self, _message_id: &str) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// Timeout for one provider request.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The configured channels by name, ready to send.
#[derive(Clone, Default)]
pub struct Channels {
    by_name: HashMap<String, Sender>,
    /// The channels whose sends fail (docs/operations.md#logs).
    failing: Arc<Failing>,
}

/// One channel's sender and its kind (a metric label).
#[derive(Clone)]
struct Sender {
    kind: &'static str,
    channel: Arc<dyn Channel>,
}

/// Upper bounds (seconds) of `chatgate_channel_send_seconds`: up to the
/// longest send timeout.
pub const SEND_SECONDS_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0];

impl Channels {
    /// A sender for every channel `(name, kind, used, reach)` whose kind
    /// can build one, on the client of its reach; `used`: some team sends
    /// through it (only then is a channel that cannot send worth a
    /// warning).
    pub fn new<'a>(
        channels: impl IntoIterator<Item = (&'a str, &'a ChannelKind, bool, Reach)>,
        http: &Clients,
    ) -> Self {
        let mut by_name = HashMap::new();
        for (name, kind, used, reach) in channels {
            let dial =
                (http.of(reach).map_err(|e| ChannelError::new(e.to_string()))).map(|http| Dial {
                    http: http.clone(),
                    reach,
                });
            match dial.and_then(|dial| kind.sender(dial)) {
                Ok(channel) => {
                    let kind = kind.name();
                    by_name.insert(name.to_string(), Sender { kind, channel });
                }
                Err(e) if used => {
                    tracing::warn!(channel = %name, kind = kind.name(), error = %e, "channel not usable");
                }
                Err(_) => {}
            }
        }
        Channels {
            by_name,
            failing: Arc::default(),
        }
    }

    pub async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let Some(sender) = self.by_name.get(&msg.channel) else {
            return Err(ChannelError::new(format!(
                "channel {:?} has no sender",
                msg.channel
            )));
        };
        let kind = sender.kind;
        let started = Instant::now();
        let result = crate::waits::on_provider(kind, &msg.channel, sender.channel.send(msg)).await;
        metrics::histogram!("chatgate_channel_send_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("chatgate_channel_messages_total",
            "channel" => msg.channel.clone(), "kind" => kind, "purpose" => msg.purpose.as_str(), "outcome" => outcome)
        .increment(1);
        // One warning when a channel starts failing, one line when it
        // sends again (docs/operations.md#logs).
        let now = crate::time::Clock::now(&crate::time::SystemClock);
        match (
            &result,
            self.failing.fared(&msg.channel, result.is_err(), now),
        ) {
            (Err(e), Fared::StartedFailing) => {
                tracing::warn!(channel = %msg.channel, kind, purpose = msg.purpose.as_str(), error = %e,
                    "channel sends failing: one line when it sends again");
            }
            (Err(e), _) => {
                tracing::debug!(channel = %msg.channel, kind, purpose = msg.purpose.as_str(), error = %e, "channel send failed");
            }
            (Ok(_), Fared::Recovered { since, failed }) => {
                tracing::info!(channel = %msg.channel, kind, failing_secs = now.since(since).as_secs_f64(),
                    failed_attempts = failed, "channel sends work again");
            }
            (Ok(_), _) => {}
        }
        result
    }
}

impl Channels {
    /// Withdraws message `message_id` that `channel` sent, where its kind
    /// can; a failure is logged, never answered (best effort).
    pub async fn revoke(&self, channel: &str, message_id: &str) {
        let Some(sender) = self.by_name.get(channel) else {
            return;
        };
        if let Err(e) = sender.channel.revoke(message_id).await {
            tracing::warn!(channel = %channel, kind = sender.kind, error = %e, "revoking a message failed");
        }
    }
}

/// Values for a template's placeholders.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fill<'a> {
    pub url: Option<&'a str>,
    pub pin: Option<&'a str>,
    /// Rounded up to whole minutes.
    pub ttl: Option<Duration>,
    /// An app challenge's binding code.
    pub code: Option<&'a str>,
    /// The transaction a challenge is for (docs/api.md#approving-one-payment):
    /// its amount and currency (`#AMOUNT#`) and payee (`#PAYEE#`). With
    /// them, a code or app prompt uses the transaction's text.
    pub amount: Option<&'a str>,
    pub payee: Option<&'a str>,
}

/// Fills `#URL#`, `#PIN#`, `#CODE#`, `#MINUTES#` (rounded up), `#AMOUNT#`
/// and `#PAYEE#`. The payee is filled last: its text is never read for
/// placeholders.
pub fn render(template: &str, fill: Fill<'_>) -> String {
    let mut out = template.to_string();
    if let Some(url) = fill.url {
        out = out.replace("#URL#", url);
    }
    if let Some(pin) = fill.pin {
        out = out.replace("#PIN#", pin);
    }
    if let Some(code) = fill.code {
        out = out.replace("#CODE#", code);
    }
    if let Some(ttl) = fill.ttl {
        out = out.replace("#MINUTES#", &ttl.as_secs().div_ceil(60).to_string());
    }
    if let Some(amount) = fill.amount {
        out = out.replace("#AMOUNT#", amount);
    }
    if let Some(payee) = fill.payee {
        out = out.replace("#PAYEE#", payee);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_unique_and_listed_in_order() {
        let names: Vec<&str> = ChannelKind::ALL.iter().map(|k| k.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        assert_eq!(
            ChannelKind::names(),
            "webhook, twilio, twilio_voice, whatsapp, slack, telegram, telegram_gateway or smtp"
        );
    }

    #[test]
    fn render_fills_and_rounds_minutes_up() {
        let t = "Code #PIN#, #MINUTES# min, #URL# #CODE#";
        let s = render(
            t,
            Fill {
                url: Some("u"),
                pin: Some("123"),
                ttl: Some(Duration::from_secs(61)),
                code: Some("4821"),
                ..Fill::default()
            },
        );
        assert_eq!(s, "Code 123, 2 min, u 4821");
        let s = render(
            "#PIN# pays #AMOUNT# to #PAYEE#",
            Fill {
                pin: Some("123"),
                amount: Some("120.00 EUR"),
                payee: Some("#PIN# Ltd"),
                ..Fill::default()
            },
        );
        assert_eq!(s, "123 pays 120.00 EUR to #PIN# Ltd");
        let s = render(
            "#MINUTES#",
            Fill {
                ttl: Some(Duration::from_secs(180)),
                ..Fill::default()
            },
        );
        assert_eq!(s, "3");
    }
    /// The names of every purpose, as the metric labels, the webhooks'
    /// `purpose` and the channel files' `[templates]` have always spelled
    /// them, in the order of `ALL`.
    #[test]
    fn every_purpose_keeps_its_name() {
        let names: Vec<&str> = Purpose::ALL.map(Purpose::as_str).to_vec();
        assert_eq!(
            names,
            [
                "login_link",
                "otp",
                "pin_prompt",
                "authenticated",
                "expired",
                "app_prompt",
                "network_link",
                "wallet_link",
                "code_entry_link",
                "pin_entry_link",
            ]
        );
        for purpose in Purpose::ALL {
            let json = serde_json::to_value(purpose).unwrap();
            assert_eq!(json, serde_json::json!(purpose.as_str()));
        }
    }

    #[test]
    fn a_message_shows_neither_its_text_nor_its_code() {
        let msg = Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "15552223333".into(),
            channel: "whatsapp".into(),
            to: Some("+15552223333".into()),
            text: "Your code is 918273".into(),
            subject: None,
            code: Some("918273".into()),
            public_url: "http://gateway.test".into(),
            code_ttl: None,
            locale: "en".into(),
            call: None,
            identity_key_hash: None,
        };
        let shown = format!("{msg:?} {msg:#?}");
        assert!(!shown.contains("918273"), "{shown}");
        assert!(shown.contains("whatsapp"), "{shown}");
    }
}
