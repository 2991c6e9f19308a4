//! The `slack` channel kind (docs/channels.md): `chat.postMessage` with a bot
//! token. Slack answers HTTP 200 with `"ok": false` and an `error` name
//! when it refuses a message, and 429 with `Retry-After` when rate limited.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::kind::{BotToken, Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::provider::{post_once, reason};
use super::{Channel, ChannelError, Message, Sent};

/// The keys of a `slack` channel file: `base_url` (default
/// `https://slack.com`) and the bot `token`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct SlackConfig(pub BotToken);

impl Kind for SlackConfig {
    const INFO: KindInfo = KindInfo {
        name: "slack",
        text_limit: Some(40_000),
        addressing: Reach::Conversation,
        serves: &[],
        // A conversation may be a channel or a group: one member's login
        // would vouch for every member (docs/channels.md#who-writes-in-a-conversation).
        vouches_for_sender: false,
        receipts: false,
        identity_hash: false,
        sms_segments: false,
        secrets_go: &[Goes {
            secret: "token",
            to: &["base_url"],
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

    fn check(&mut self) -> Result<(), Problem> {
        self.0.check("https://slack.com")
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        let (base_url, token) = self.0.parts()?;
        Ok(Arc::new(SlackChannel::new(http, base_url, token)))
    }
}

pub struct SlackChannel {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    timeout: Duration,
}

impl SlackChannel {
    pub fn new(http: reqwest::Client, base_url: Url, token: &SecretString) -> Self {
        SlackChannel {
            http,
            base_url,
            token: SecretString::from(token.expose_secret()),
            timeout: super::SEND_TIMEOUT,
        }
    }

    /// `{base_url}/api/chat.postMessage`.
    fn post_message_url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| ChannelError::new("slack base_url cannot take a path"))?
            .pop_if_empty()
            .extend(["api", "chat.postMessage"]);
        Ok(url)
    }
}

#[async_trait]
impl Channel for SlackChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let body = json!({"channel": msg.conversation_id, "text": msg.text});
        let request = self
            .http
            .post(self.post_message_url()?)
            .bearer_auth(self.token.expose_secret())
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body.to_string());
        let answer = post_once(request, "slack", self.timeout).await?;
        let secret = self.token.expose_secret();
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            return Err(ChannelError::new(match answer.retry_after {
                Some(s) => format!("slack rate limited the message (retry after {s} s)"),
                None => "slack rate limited the message".into(),
            }));
        }
        if !answer.status.is_success() {
            return Err(ChannelError::new(match answer.text("/error") {
                Some(e) => format!(
                    "slack answered HTTP {}: {}",
                    answer.status.as_u16(),
                    reason(e, secret)
                ),
                None => format!("slack answered HTTP {}", answer.status.as_u16()),
            }));
        }
        match (answer.ok_field(), answer.text("/error")) {
            (Some(true), _) => Ok(Sent::untracked()),
            (_, Some(e)) => Err(ChannelError::new(format!(
                "slack refused the message: {}",
                reason(e, secret)
            ))),
            (_, None) => Err(ChannelError::new("slack answered without \"ok\": true")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::channels::provider::{answering, closed_url};
    use crate::channels::Purpose;

    const TOKEN: &str = "xoxb-1234-s3cr3t";
    const TEXT: &str = "Your code is 123456. \"Quoted\" ünïcode & <tags>";

    fn message() -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "C0123ABCD".into(),
            channel: "slack".into(),
            to: Some("+15550000000".into()),
            text: TEXT.into(),
            subject: None,
            code: None,
            public_url: "http://gateway.test".into(),
            code_ttl: None,
            locale: "en".into(),
            call: None,
            identity_key_hash: None,
        }
    }

    fn channel(base: &str) -> SlackChannel {
        SlackChannel::new(
            reqwest::Client::new(),
            Url::parse(base).unwrap(),
            &SecretString::from(TOKEN),
        )
    }

    async fn send_to(server: &MockServer) -> Result<Sent, ChannelError> {
        channel(&server.uri()).send(&message()).await
    }

    #[tokio::test]
    async fn posts_chat_post_message_with_bearer_token_and_exact_json() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/slack/api/chat.postMessage"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("content-type", "application/json; charset=utf-8"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "channel": "C0123ABCD", "ts": "1.2"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        channel(&format!("{}/slack/", server.uri()))
            .send(&message())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(body, json!({"channel": "C0123ABCD", "text": TEXT}));
    }

    #[tokio::test]
    async fn ok_false_on_http_200_is_a_failure_with_slacks_error() {
        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
        )
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.reason, "slack refused the message: channel_not_found");
    }

    #[tokio::test]
    async fn http_200_without_ok_is_a_failure() {
        let server = answering(ResponseTemplate::new(200).set_body_string("fine")).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.reason, "slack answered without \"ok\": true");
    }

    #[tokio::test]
    async fn rate_limited_says_so_with_retry_after() {
        let server = answering(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"ok": false, "error": "ratelimited"})),
        )
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.reason,
            "slack rate limited the message (retry after 30 s)"
        );
    }

    #[tokio::test]
    async fn client_error_carries_slacks_error_not_the_token() {
        let server = answering(
            ResponseTemplate::new(401)
                .set_body_json(json!({"ok": false, "error": format!("invalid_auth {TOKEN}")})),
        )
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.reason,
            "slack answered HTTP 401: invalid_auth [redacted]"
        );
    }

    #[tokio::test]
    async fn server_error_gives_the_status() {
        let server = answering(ResponseTemplate::new(503).set_body_string("upstream")).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.reason, "slack answered HTTP 503");
    }

    #[tokio::test]
    async fn slow_answer_times_out_after_one_attempt() {
        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true}))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let mut ch = channel(&server.uri());
        ch.timeout = Duration::from_millis(200);
        let err = ch.send(&message()).await.unwrap_err();
        assert_eq!(err.reason, "slack did not answer in time");
        server.verify().await;
    }

    #[tokio::test]
    async fn unreachable_says_so() {
        let err = channel(&closed_url()).send(&message()).await.unwrap_err();
        assert_eq!(err.reason, "slack unreachable");
    }
}
