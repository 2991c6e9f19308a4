//! The `telegram` channel kind (docs/channels.md): the Bot API's
//! `sendMessage`. The bot token is part of the URL path
//! (`/bot{token}/sendMessage`), so no URL ever goes into an error text;
//! Telegram refuses with `"ok": false` and a `description`.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::kind::{BotToken, Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::provider::{post_once, reason};
use super::{Channel, ChannelError, Message, Sent};

/// The keys of a `telegram` channel file: `base_url` (default
/// `https://api.telegram.org`) and the bot `token`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct TelegramConfig(pub BotToken);

impl Kind for TelegramConfig {
    const INFO: KindInfo = KindInfo {
        name: "telegram",
        text_limit: Some(4096),
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
        self.0.check("https://api.telegram.org")
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        let (base_url, token) = self.0.parts()?;
        Ok(Arc::new(TelegramChannel::new(http, base_url, token)))
    }
}

pub struct TelegramChannel {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    timeout: Duration,
}

impl TelegramChannel {
    pub fn new(http: reqwest::Client, base_url: Url, token: &SecretString) -> Self {
        TelegramChannel {
            http,
            base_url,
            token: SecretString::from(token.expose_secret()),
            timeout: super::SEND_TIMEOUT,
        }
    }

    /// `{base_url}/bot{token}/sendMessage`. Holds the token: never log it.
    fn send_message_url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        let bot = format!("bot{}", self.token.expose_secret());
        url.path_segments_mut()
            .map_err(|_| ChannelError::new("telegram base_url cannot take a path"))?
            .pop_if_empty()
            .extend([bot.as_str(), "sendMessage"]);
        Ok(url)
    }
}

#[async_trait]
impl Channel for TelegramChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let body = json!({"chat_id": msg.conversation_id, "text": msg.text});
        let request = self
            .http
            .post(self.send_message_url()?)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = post_once(request, "telegram", self.timeout).await?;
        if answer.status.is_success() && answer.ok_field() == Some(true) {
            return Ok(Sent::untracked());
        }
        // {"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}
        let description = answer
            .text("/description")
            .map(|d| reason(d, self.token.expose_secret()));
        Err(ChannelError::new(
            match (answer.status.is_success(), description) {
                (true, Some(d)) => format!("telegram refused the message: {d}"),
                (true, None) => "telegram answered without \"ok\": true".into(),
                (false, Some(d)) => {
                    format!("telegram answered HTTP {}: {d}", answer.status.as_u16())
                }
                (false, None) => format!("telegram answered HTTP {}", answer.status.as_u16()),
            },
        ))
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

    const TOKEN: &str = "123456789:AAHs3cr3t-t0k3n_x";
    const TEXT: &str = "Your code is 123456. \"Quoted\" ünïcode & <b>";

    fn message() -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "-1001234567890".into(),
            channel: "telegram".into(),
            to: None,
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

    fn channel(base: &str) -> TelegramChannel {
        TelegramChannel::new(
            reqwest::Client::new(),
            Url::parse(base).unwrap(),
            &SecretString::from(TOKEN),
        )
    }

    async fn send_to(server: &MockServer) -> Result<Sent, ChannelError> {
        channel(&server.uri()).send(&message()).await
    }

    #[tokio::test]
    async fn posts_send_message_with_the_token_in_the_path_and_exact_json() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(format!("/tg/bot{TOKEN}/sendMessage")))
            .and(header("content-type", "application/json"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": true, "result": {"message_id": 7}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        channel(&format!("{}/tg", server.uri()))
            .send(&message())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        assert!(requests[0].headers.get("authorization").is_none());
        let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(body, json!({"chat_id": "-1001234567890", "text": TEXT}));
    }

    #[tokio::test]
    async fn client_error_carries_the_description() {
        let server = answering(ResponseTemplate::new(400).set_body_json(json!({
            "ok": false, "error_code": 400, "description": "Bad Request: chat not found"
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.reason,
            "telegram answered HTTP 400: Bad Request: chat not found"
        );
    }

    #[tokio::test]
    async fn ok_false_on_http_200_is_a_failure() {
        let server = answering(ResponseTemplate::new(200).set_body_json(json!({
            "ok": false, "description": "Forbidden: bot was blocked by the user"
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.reason,
            "telegram refused the message: Forbidden: bot was blocked by the user"
        );
    }

    #[tokio::test]
    async fn rate_limited_carries_telegrams_description() {
        let server = answering(ResponseTemplate::new(429).set_body_json(json!({
            "ok": false, "error_code": 429,
            "description": "Too Many Requests: retry after 35",
            "parameters": {"retry_after": 35}
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.reason,
            "telegram answered HTTP 429: Too Many Requests: retry after 35"
        );
    }

    #[tokio::test]
    async fn server_error_gives_the_status() {
        let server = answering(ResponseTemplate::new(502).set_body_string("<html>")).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.reason, "telegram answered HTTP 502");
    }

    #[tokio::test]
    async fn an_echoed_token_is_redacted() {
        let server = answering(ResponseTemplate::new(401).set_body_json(json!({
            "ok": false, "error_code": 401, "description": format!("Unauthorized bot{TOKEN}")
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert!(!err.reason.contains(TOKEN), "{}", err.reason);
        assert_eq!(
            err.reason,
            "telegram answered HTTP 401: Unauthorized bot[redacted]"
        );
    }

    #[tokio::test]
    async fn slow_answer_times_out_without_the_url() {
        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true}))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let mut ch = channel(&server.uri());
        ch.timeout = Duration::from_millis(200);
        let err = ch.send(&message()).await.unwrap_err();
        assert_eq!(err.reason, "telegram did not answer in time");
        server.verify().await;
    }

    #[tokio::test]
    async fn unreachable_says_so_without_the_token() {
        let err = channel(&closed_url()).send(&message()).await.unwrap_err();
        assert_eq!(err.reason, "telegram unreachable");
    }
}
