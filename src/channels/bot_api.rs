//! One sender for the chat platforms whose bots post a message with a bot
//! token and answer `{"ok": true}` (`slack`, `telegram`;
//! docs/channels.md): what differs between them — the call's path, where
//! the token goes, the body's conversation member, where a refusal's
//! reason is — is a [`BotApi`], one small `impl` per platform; the
//! request, its one attempt and the judging of the answer are written
//! once here. A platform that posts this way is one more `impl`.
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::kind::{BotToken, Dial, Kind, KindInfo, Problem};
use super::provider::{post_once, reason};
use super::{Channel, ChannelError, Message, Sent};

/// What one chat platform's "post a message as the bot" call is.
pub trait BotApi: Send + Sync + 'static {
    /// The kind's name, in every error text.
    const NAME: &'static str;
    /// The body's member naming the conversation (`channel`, `chat_id`).
    const CONVERSATION: &'static str;
    /// The answer's member giving a refusal's reason, a JSON pointer.
    const REASON: &'static str;
    /// The request's `Content-Type`.
    const CONTENT_TYPE: &'static str;
    /// Where the token goes.
    const TOKEN: TokenIn;
    /// Whether a 429 is told as a rate limit, with its `Retry-After`,
    /// rather than as any other refusal with the platform's reason.
    const RATE_LIMIT_BY_HEADER: bool;

    /// The call's path segments below `base_url`, given the token (which
    /// a segment may hold: such a URL is never logged).
    fn path(token: &str) -> [String; 2];
}

/// A [`BotApi`] platform as a channel kind: its facts and its default
/// `base_url`. Its configuration is a [`BotConfig`].
pub trait BotKind: BotApi {
    const INFO: KindInfo;
    const DEFAULT_BASE_URL: &'static str;
}

/// The keys of a bot-token platform's channel file: `base_url` (default
/// the platform's, [`BotKind::DEFAULT_BASE_URL`]) and the bot `token`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent, bound = "")]
pub struct BotConfig<A> {
    pub keys: BotToken,
    #[serde(skip)]
    api: PhantomData<A>,
}

impl<A: BotKind> Kind for BotConfig<A> {
    const INFO: KindInfo = A::INFO;

    fn shows_text(&self) -> bool {
        true
    }

    fn whatsapp_chat(&self) -> bool {
        false
    }

    fn sends_templates(&self) -> bool {
        false
    }

    fn check(&mut self) -> Result<(), Problem> {
        self.keys.check(A::DEFAULT_BASE_URL)
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        let (base_url, token) = self.keys.parts()?;
        Ok(Arc::new(BotApiChannel::<A>::new(http, base_url, token)))
    }
}

/// Where a [`BotApi`] call carries the bot token.
pub enum TokenIn {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// A path segment ([`BotApi::path`]).
    Path,
}

/// A channel that sends through the bot API `A`.
pub struct BotApiChannel<A> {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    timeout: Duration,
    api: PhantomData<A>,
}

impl<A: BotApi> BotApiChannel<A> {
    pub fn new(http: reqwest::Client, base_url: Url, token: &SecretString) -> Self {
        BotApiChannel {
            http,
            base_url,
            token: SecretString::from(token.expose_secret()),
            timeout: super::SEND_TIMEOUT,
            api: PhantomData,
        }
    }

    /// The call's URL. May hold the token: never log it.
    fn url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        let path = A::path(self.token.expose_secret());
        url.path_segments_mut()
            .map_err(|_| ChannelError::new(format!("{} base_url cannot take a path", A::NAME)))?
            .pop_if_empty()
            .extend(&path);
        Ok(url)
    }

    #[cfg(test)]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl<A: BotApi> Channel for BotApiChannel<A> {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let body = json!({A::CONVERSATION: msg.conversation_id, "text": msg.text});
        let mut request = self
            .http
            .post(self.url()?)
            .header(CONTENT_TYPE, A::CONTENT_TYPE)
            .body(body.to_string());
        if let TokenIn::Bearer = A::TOKEN {
            request = request.bearer_auth(self.token.expose_secret());
        }
        let answer = post_once(request, A::NAME, self.timeout).await?;
        let name = A::NAME;
        if A::RATE_LIMIT_BY_HEADER && answer.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ChannelError::new(match answer.retry_after {
                Some(s) => format!("{name} rate limited the message (retry after {s} s)"),
                None => format!("{name} rate limited the message"),
            }));
        }
        let why = answer
            .text(A::REASON)
            .map(|r| reason(r, self.token.expose_secret()));
        let status = answer.status.as_u16();
        match (answer.status.is_success(), answer.ok_field(), why) {
            (true, Some(true), _) => Ok(Sent::untracked()),
            (true, _, Some(r)) => Err(ChannelError::new(format!(
                "{name} refused the message: {r}"
            ))),
            (true, _, None) => Err(ChannelError::new(format!(
                "{name} answered without \"ok\": true"
            ))),
            (false, _, Some(r)) => Err(ChannelError::new(format!(
                "{name} answered HTTP {status}: {r}"
            ))),
            (false, _, None) => Err(ChannelError::new(format!("{name} answered HTTP {status}"))),
        }
    }
}
