//! The `webhook` channel kind (docs/channels.md): POST the message as JSON to
//! the bot's URL, signed by Standard Webhooks with the channel's secret.
//! [`post_signed`] is the one Standard Webhooks sender: the outbox's POST
//! of an event to a team's webhook uses it too.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use url::Url;
use uuid::Uuid;

use super::kind::{Dial, Goes, Kind, KindInfo, Reach};
use super::{Channel, ChannelError, Message, Purpose, Sent, SEND_TIMEOUT};
use crate::domain::secrets::{HmacKey, Secret, SecretBytes};
use crate::domain::webhook_sig::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use crate::spans::SendTraced;
use crate::time::{Clock, SystemClock, Timestamp};

/// Why a signed POST did not succeed. Never names the URL (it may carry a
/// secret query).
#[derive(Debug)]
pub enum PostFailed {
    /// No answer within the time allowed.
    TimedOut,
    /// Not reached (refused, no route, TLS, …).
    Unreachable,
    /// Not connected to: its address is not one the team's reach allows
    /// ([`crate::outbound::Refused`]).
    Refused,
    /// Answered, not with a 2xx: the status, and a `Retry-After` in seconds.
    Status(u16, Option<Duration>),
}

/// The headers' names and the body's type, made once rather than parsed
/// (and copied) on every POST.
const ID: HeaderName = HeaderName::from_static(HEADER_ID);
const TIMESTAMP: HeaderName = HeaderName::from_static(HEADER_TIMESTAMP);
const SIGNATURE: HeaderName = HeaderName::from_static(HEADER_SIGNATURE);
const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// POSTs `body` (JSON) to `url`, signed by Standard Webhooks with
/// `key` over exactly the bytes sent: `webhook-id` is `id` (the
/// same on every attempt), the timestamp `now`'s. Any 2xx is success.
pub async fn post_signed(
    http: &reqwest::Client,
    url: &Url,
    key: &HmacKey,
    id: &str,
    now: Timestamp,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), PostFailed> {
    let timestamp = now.unix_seconds();
    let signature = webhook_sig::sign_with(key, id, timestamp, &body);
    let response = http
        .post(url.clone())
        .timeout(timeout)
        .header(CONTENT_TYPE, JSON)
        .header(ID, id)
        .header(TIMESTAMP, timestamp)
        .header(SIGNATURE, signature)
        .body(body)
        .send_traced()
        .await
        // reqwest's error text includes the URL: it is not kept.
        .map_err(|e| {
            if crate::outbound::is_refused(&e) {
                PostFailed::Refused
            } else if e.is_timeout() {
                PostFailed::TimedOut
            } else {
                PostFailed::Unreachable
            }
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(PostFailed::Status(status.as_u16(), retry_after))
}

pub struct WebhookChannel {
    http: reqwest::Client,
    url: Url,
    key: HmacKey,
}

/// The keys of a `webhook` channel file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The bot's endpoint.
    #[serde(deserialize_with = "super::kind::url")]
    pub url: Url,
    /// `whsec_…`: signs every message.
    pub secret: Secret<SecretBytes>,
}

impl Kind for WebhookConfig {
    const INFO: KindInfo = KindInfo {
        name: "webhook",
        text_limit: None,
        addressing: Reach::Conversation,
        serves: &[],
        vouches_for_sender: false,
        receipts: false,
        chat: true,
        identity_hash: false,
        sms_segments: false,
        secrets_go: &[Goes {
            secret: "secret",
            to: &["url"],
        }],
    };

    fn shows_text(&self) -> bool {
        true
    }

    fn whatsapp_chat(&self) -> bool {
        false
    }

    fn sends_templates(&self) -> bool {
        false
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        Ok(Arc::new(WebhookChannel::new(
            http,
            self.url.clone(),
            self.secret.get(),
        )))
    }
}

impl WebhookChannel {
    pub fn new(http: reqwest::Client, url: Url, secret: &SecretBytes) -> Self {
        let key = HmacKey::new(secret.expose());
        WebhookChannel { http, url, key }
    }
}

/// The JSON the bot receives.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    purpose: Purpose,
    interaction_id: Uuid,
    conversation_id: &'a str,
    channel: &'a str,
    text: &'a str,
}

#[async_trait]
impl Channel for WebhookChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let body = serde_json::to_vec(&Body {
            kind: "message",
            purpose: msg.purpose,
            interaction_id: msg.interaction_id,
            conversation_id: &msg.conversation_id,
            channel: &msg.channel,
            text: &msg.text,
        })
        .map_err(|_| ChannelError::new("could not encode the webhook message"))?;
        // The id is the message's own, the same on every attempt.
        let id = format!("msg_{}", msg.id.simple());
        let sent = post_signed(
            &self.http,
            &self.url,
            &self.key,
            &id,
            SystemClock.now(),
            body,
            SEND_TIMEOUT,
        )
        .await;
        sent.map(|()| Sent::untracked())
            .map_err(|failed| match failed {
                PostFailed::Status(status, _) => {
                    ChannelError::new(format!("webhook answered HTTP {status}"))
                }
                PostFailed::TimedOut | PostFailed::Unreachable => {
                    ChannelError::new("webhook unreachable")
                }
                PostFailed::Refused => {
                    ChannelError::new(format!("webhook at /url {}", crate::outbound::Refused))
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::channels::provider::closed_url;
    use serde_json::json;
    use wiremock::matchers::{method, path, query_param};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    const KEY: [u8; 32] = [5u8; 32];

    fn message() -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "conv-1".into(),
            channel: "webchat".into(),
            to: Some("+15550000000".into()),
            text: "Your verification code is 123456. \"Quoted\" ünïcode".into(),
            subject: None,
            code: None,
            public_url: "http://gateway.test".into(),
            code_ttl: None,
            locale: "en".into(),
            call: None,
            identity_key_hash: None,
        }
    }

    fn channel(url: &str) -> WebhookChannel {
        WebhookChannel::new(
            reqwest::Client::new(),
            Url::parse(url).unwrap(),
            &SecretBytes::new(KEY.to_vec()),
        )
    }

    #[tokio::test]
    async fn posts_the_exact_json_signed_over_the_sent_bytes() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .and(query_param("k", "v"))
            .respond_with(ResponseTemplate::new(204))
            .expect(1)
            .mount(&server)
            .await;
        let msg = message();
        channel(&format!("{}/hook?k=v", server.uri()))
            .send(&msg)
            .await
            .unwrap();

        let requests = server.received_requests().await.unwrap();
        let req = &requests[0];
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({
                "type": "message",
                "purpose": "otp",
                "interaction_id": msg.interaction_id.to_string(),
                "conversation_id": "conv-1",
                "channel": "webchat",
                "text": msg.text,
            })
        );
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(header("content-type"), Some("application/json"));
        assert!(header(HEADER_ID).unwrap().starts_with("msg_"));
        webhook_sig::verify(
            &[&KEY],
            header(HEADER_ID),
            header(HEADER_TIMESTAMP),
            header(HEADER_SIGNATURE),
            &req.body,
            SystemClock.now(),
        )
        .unwrap();
        let other = [6u8; 32];
        let wrong = webhook_sig::verify(
            &[&other],
            header(HEADER_ID),
            header(HEADER_TIMESTAMP),
            header(HEADER_SIGNATURE),
            &req.body,
            SystemClock.now(),
        );
        assert!(wrong.is_err());
    }

    #[tokio::test]
    async fn non_2xx_is_a_channel_error_with_the_status() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let err = channel(&format!("{}/hook?secret=s3cr3t", server.uri()))
            .send(&message())
            .await
            .unwrap_err();
        assert_eq!(err.reason, "webhook answered HTTP 500");
    }

    #[tokio::test]
    async fn unreachable_says_so_without_the_url() {
        let err = channel(&(closed_url() + "/hook?secret=s3cr3t"))
            .send(&message())
            .await
            .unwrap_err();
        assert_eq!(err.reason, "webhook unreachable");
    }
}
