//! What a channel kind is: the keys of its channel file (a serde struct
//! whose secrets are [`Secret`]s, of `domain::secrets`), its facts
//! ([`KindInfo`]: text limit, whom it sends to, the team delivery it may
//! serve) and its sender ([`Kind`]). The kinds are registered once, in
//! `kinds!` in `mod.rs`.
use std::sync::Arc;

use secrecy::SecretString;
use serde::de::{self, Deserialize, Deserializer};
use url::Url;

use super::{Channel, ChannelError};
use crate::domain::challenge::Delivery;
use crate::domain::secrets::Secret;
pub use crate::domain::team_secrets::Goes;

/// The key of a channel file that is wrong, and what is wrong with it.
pub type Problem = (&'static str, String);

/// Whom a message goes to when the challenge names nobody
/// (docs/channels.md#how-sending-works): the domain's [`Reach`].
pub use crate::domain::destination_policy::Reach;

/// The facts of one kind that the loader, the gateway and the metrics read.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    /// As written in a channel file's `kind`, and the metric label.
    pub name: &'static str,
    /// The longest text the provider takes, in characters; `None`: any
    /// (docs/channels.md#how-sending-works).
    pub text_limit: Option<usize>,
    pub addressing: Reach,
    /// The team deliveries (`sms`, `email`) a channel of this kind may
    /// serve, as the team's `sms_channel` or `email_channel`.
    pub serves: &'static [Delivery],
    /// The provider proves who writes in a conversation
    /// (`vouches_for_sender`'s default).
    pub vouches_for_sender: bool,
    /// The provider reports how far a message got (docs/api.md#delivery-receipts),
    /// so a delivery ladder can move on from a channel of this kind.
    pub receipts: bool,
    /// Its channels carry a chat's messages, so a team may list one in
    /// `channels`; one of a kind that does not serves only as a step of
    /// `otp.ladder` (and, if it reads codes aloud, as the team's
    /// `voice_channel`), and the team's load says so.
    pub chat: bool,
    /// A send that carries a code or a link into a conversation carries
    /// the identity hash Meta last gave for the person behind it, and each
    /// send is remembered for its statuses
    /// (docs/channels.md#sends-know-the-identity): WhatsApp's Cloud API.
    pub identity_hash: bool,
    /// Its texts go as SMS, counted in segments against
    /// `locale.max_sms_segments` (docs/configuration.md#sms-length).
    pub sms_segments: bool,
    /// For each secret it takes, the keys that decide where it is sent:
    /// a write through the operator API that changes one while keeping
    /// the secret as its `{"hmac"}` is refused
    /// (docs/operator-api.md#secrets).
    pub secrets_go: &'static [Goes],
}

/// One channel kind: its keys (`Self`, read with serde, unknown keys
/// refused), its facts and its sender. Register it in `kinds!` (mod.rs).
///
/// Every fact a channel's keys decide is an item without a default, so
/// the compiler asks a new kind about each
/// (docs/decisions/0449-channel-kinds-declare-their-facts.md): a kind
/// that leaves out `shows_text` does not compile.
///
/// ```compile_fail,E0046
/// use std::sync::Arc;
/// use chatgate::channels::kind::{Dial, Kind, KindInfo, Reach};
/// use chatgate::channels::{Channel, ChannelError};
///
/// #[derive(serde::Deserialize)]
/// struct Pigeon {}
///
/// impl Kind for Pigeon {
///     const INFO: KindInfo = KindInfo {
///         name: "pigeon",
///         text_limit: None,
///         addressing: Reach::Conversation,
///         serves: &[],
///         vouches_for_sender: false,
///         receipts: false,
///         chat: true,
///         identity_hash: false,
///         sms_segments: false,
///         secrets_go: &[],
///     };
///     fn whatsapp_chat(&self) -> bool {
///         false
///     }
///     fn sends_templates(&self) -> bool {
///         false
///     }
///     fn sender(&self, _: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
///         Err(ChannelError::new("no pigeons"))
///     }
/// }
/// ```
pub trait Kind: for<'de> Deserialize<'de> {
    const INFO: KindInfo;

    /// Whether a code sent through this channel shows the text of its
    /// template (`#AMOUNT#` and `#PAYEE#` of a payment,
    /// docs/payments.md): not where the provider's own template carries
    /// the code, nor where the code goes alone.
    fn shows_text(&self) -> bool;

    /// Whether a conversation on this channel is a WhatsApp chat, named by
    /// a number or a business-scoped user id
    /// (docs/channels.md#business-scoped-user-ids).
    fn whatsapp_chat(&self) -> bool;

    /// Whether this channel sends every OTP as a WhatsApp authentication
    /// template, which Meta delivers to phone numbers only
    /// (docs/channels.md#authentication-templates).
    fn sends_templates(&self) -> bool;

    /// The rules serde does not state (a value not empty, a key that needs
    /// another); an error names the key.
    fn check(&mut self) -> Result<(), Problem> {
        Ok(())
    }

    /// The sender. An error says why this channel cannot send (logged when
    /// a team uses it); the channel then has no sender.
    fn sender(&self, dial: Dial) -> Result<Arc<dyn Channel>, ChannelError>;
}

/// What a channel's sender connects with: the HTTP client of the
/// channel's reach ([`crate::outbound::Clients`]), and that reach, for a
/// kind that connects itself (an `smtp` server's address,
/// [`crate::outbound::smtp_address`]).
#[derive(Clone)]
pub struct Dial {
    pub http: reqwest::Client,
    pub reach: crate::outbound::Reach,
}

impl Dial {
    /// A sender that may connect anywhere on `http` (a channel file's).
    pub fn anywhere(http: reqwest::Client) -> Dial {
        Dial {
            http,
            reach: crate::outbound::Reach::Anywhere,
        }
    }
}

/// `Err` when `value` is empty or blank.
pub fn required(key: &'static str, value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() {
        Err((key, "must not be empty".into()))
    } else {
        Ok(())
    }
}

/// An absolute `http` or `https` URL with a host.
pub fn http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s.trim()).map_err(|_| "is not an absolute http(s) URL".to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("is not an absolute http(s) URL".to_string());
    }
    Ok(url)
}

/// `#[serde(deserialize_with = "url")]`: a string that is an [`http_url`].
pub fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    http_url(&String::deserialize(d)?).map_err(de::Error::custom)
}

/// A default `base_url`: `s` parsed (a constant of the kind, so it parses).
pub fn default_url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|_| unreachable!("default URLs are valid"))
}

/// The keys of a kind that needs a base URL and a bot token (`slack`,
/// `telegram`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotToken {
    /// After [`BotToken::check`], always set (the kind's default when the
    /// file has none).
    #[serde(default, deserialize_with = "some_url")]
    pub base_url: Option<Url>,
    pub token: Secret,
}

impl BotToken {
    /// The token is not empty; `base_url` defaults to `default`.
    pub fn check(&mut self, default: &str) -> Result<(), Problem> {
        required(
            "token",
            secrecy::ExposeSecret::expose_secret(self.token.get()),
        )?;
        self.base_url.get_or_insert_with(|| default_url(default));
        Ok(())
    }

    /// The base URL and the token of a checked `BotToken`.
    pub fn parts(&self) -> Result<(Url, &SecretString), ChannelError> {
        let url = self.base_url.clone();
        let url = url.ok_or_else(|| ChannelError::new("the channel has no base_url"))?;
        Ok((url, self.token.get()))
    }
}

fn some_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    url(d).map(Some)
}
