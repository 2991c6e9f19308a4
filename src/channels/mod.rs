//! Sending text into chats, SMS and e-mail: one [`Channel`] trait, one
//! implementation per provider kind, and the templates (`#URL#`, `#PIN#`,
//! `#MINUTES#`) that make the text.
pub mod provider;
pub mod slack;
pub mod smtp;
pub mod telegram;
pub mod twilio;
pub mod webhook;
pub mod whatsapp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::config::{ChannelConfig, ChannelKind, Config, Settings};

/// Why a message is sent (the template it uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    LoginLink,
    Otp,
    PinPrompt,
    Authenticated,
    Expired,
}

impl Purpose {
    /// Every purpose (metric series are registered for each).
    pub const ALL: [Purpose; 5] = [
        Purpose::LoginLink,
        Purpose::Otp,
        Purpose::PinPrompt,
        Purpose::Authenticated,
        Purpose::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::LoginLink => "login_link",
            Purpose::Otp => "otp",
            Purpose::PinPrompt => "pin_prompt",
            Purpose::Authenticated => "authenticated",
            Purpose::Expired => "expired",
        }
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
    /// The rendered e-mail subject (smtp only).
    pub subject: Option<String>,
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

/// A provider refused or failed a message. The text is safe to show a
/// client: a status code or a provider error name, never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ChannelError(pub String);

#[async_trait]
pub trait Channel: Send + Sync + 'static {
    async fn send(&self, msg: &Message) -> Result<(), ChannelError>;
}

/// Timeout for one provider request.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The configured channels by name, ready to send.
#[derive(Clone, Default)]
pub struct Channels {
    by_name: HashMap<String, Sender>,
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
    /// Builds a sender for every configured channel of a kind this build supports.
    pub fn from_config(config: &Config, http: reqwest::Client) -> Self {
        let mut by_name = HashMap::new();
        for (name, ch) in &config.channels {
            let used = config.teams.values().any(|t| t.uses_channel(name));
            if let Some(channel) = build(ch, http.clone(), used) {
                let kind = ch.kind.name();
                by_name.insert(name.clone(), Sender { kind, channel });
            }
        }
        Channels { by_name }
    }

    pub async fn send(&self, msg: &Message) -> Result<(), ChannelError> {
        let Some(sender) = self.by_name.get(&msg.channel) else {
            return Err(ChannelError(format!(
                "channel {:?} has no sender",
                msg.channel
            )));
        };
        let kind = sender.kind;
        let started = Instant::now();
        let result = sender.channel.send(msg).await;
        metrics::histogram!("chatgate_channel_send_seconds", "kind" => kind)
            .record(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("chatgate_channel_messages_total",
            "channel" => msg.channel.clone(), "kind" => kind, "purpose" => msg.purpose.as_str(), "outcome" => outcome)
        .increment(1);
        if let Err(e) = &result {
            tracing::warn!(channel = %msg.channel, kind, purpose = msg.purpose.as_str(), error = %e, "channel send failed");
        }
        result
    }
}

/// The sender of one channel; `used`: some team uses it (only then is a
/// channel that cannot be built worth a warning).
fn build(ch: &ChannelConfig, http: reqwest::Client, used: bool) -> Option<Arc<dyn Channel>> {
    match &ch.kind {
        ChannelKind::Webhook { url, secret } => Some(Arc::new(webhook::WebhookChannel::new(
            http,
            url.clone(),
            secret,
        ))),
        ChannelKind::Twilio {
            base_url,
            account_sid,
            auth_token,
            from,
        } => Some(Arc::new(twilio::TwilioChannel::new(
            http,
            base_url.clone(),
            account_sid.clone(),
            auth_token,
            from.clone(),
        ))),
        ChannelKind::Smtp {
            host,
            port,
            tls,
            username,
            password,
            from,
        } => {
            let settings = smtp::SmtpSettings {
                host,
                port: *port,
                tls: *tls,
                username: username.as_deref(),
                password: password.as_ref(),
                from,
            };
            match smtp::SmtpChannel::new(settings) {
                Ok(sender) => Some(Arc::new(sender)),
                Err(e) => {
                    if used {
                        tracing::warn!(channel = %ch.name, error = %e, "smtp channel not usable");
                    }
                    None
                }
            }
        }
        ChannelKind::Whatsapp {
            base_url,
            api_version,
            phone_number_id,
            token,
        } => Some(Arc::new(whatsapp::WhatsappChannel::new(
            http,
            base_url.clone(),
            api_version.clone(),
            phone_number_id.clone(),
            token,
        ))),
        ChannelKind::Slack { base_url, token } => Some(Arc::new(slack::SlackChannel::new(
            http,
            base_url.clone(),
            token,
        ))),
        ChannelKind::Telegram { base_url, token } => Some(Arc::new(
            telegram::TelegramChannel::new(http, base_url.clone(), token),
        )),
    }
}

/// The template text for `purpose`: the channel file's override, else the
/// team's (per channel) settings.
pub fn template<'a>(
    purpose: Purpose,
    settings: &'a Settings,
    channel: Option<&'a ChannelConfig>,
) -> &'a str {
    let o = channel.map(|c| &c.templates);
    let pick = |over: Option<&'a Option<String>>, base: &'a String| -> &'a str {
        over.and_then(|x| x.as_deref()).unwrap_or(base.as_str())
    };
    let t = &settings.templates;
    match purpose {
        Purpose::LoginLink => pick(o.map(|o| &o.login_link), &t.login_link),
        Purpose::Otp => pick(o.map(|o| &o.otp), &t.otp),
        Purpose::PinPrompt => pick(o.map(|o| &o.pin_prompt), &t.pin_prompt),
        Purpose::Authenticated => pick(o.map(|o| &o.authenticated), &t.authenticated),
        Purpose::Expired => pick(o.map(|o| &o.expired), &t.expired),
    }
}

/// Values for a template's placeholders.
#[derive(Debug, Default, Clone, Copy)]
pub struct Fill<'a> {
    pub url: Option<&'a str>,
    pub pin: Option<&'a str>,
    /// Rounded up to whole minutes.
    pub ttl: Option<Duration>,
}

/// Fills `#URL#`, `#PIN#` and `#MINUTES#` (rounded up).
pub fn render(template: &str, fill: Fill<'_>) -> String {
    let mut out = template.to_string();
    if let Some(url) = fill.url {
        out = out.replace("#URL#", url);
    }
    if let Some(pin) = fill.pin {
        out = out.replace("#PIN#", pin);
    }
    if let Some(ttl) = fill.ttl {
        out = out.replace("#MINUTES#", &ttl.as_secs().div_ceil(60).to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_fills_and_rounds_minutes_up() {
        let t = "Code #PIN#, #MINUTES# min, #URL#";
        let s = render(
            t,
            Fill {
                url: Some("u"),
                pin: Some("123"),
                ttl: Some(Duration::from_secs(61)),
            },
        );
        assert_eq!(s, "Code 123, 2 min, u");
        let s = render(
            "#MINUTES#",
            Fill {
                ttl: Some(Duration::from_secs(180)),
                ..Fill::default()
            },
        );
        assert_eq!(s, "3");
    }
}
