//! The `telegram` channel kind (docs/channels.md): the Bot API's
//! `sendMessage`, sent by the bot-token sender (`bot_api.rs`). The bot
//! token is part of the URL path (`/bot{token}/sendMessage`), so no URL
//! ever goes into an error text; Telegram refuses with `"ok": false` and
//! a `description`.
use super::bot_api::{BotApi, BotApiChannel, BotConfig, BotKind, TokenIn};
use super::kind::{Goes, KindInfo, Reach};

/// The keys of a `telegram` channel file: `base_url` (default
/// `https://api.telegram.org`) and the bot `token`.
pub type TelegramConfig = BotConfig<Telegram>;

impl BotKind for Telegram {
    const INFO: KindInfo = KindInfo {
        name: "telegram",
        text_limit: Some(4096),
        addressing: Reach::Conversation,
        serves: &[],
        // A conversation may be a channel or a group: one member's login
        // would vouch for every member (docs/channels.md#who-writes-in-a-conversation).
        vouches_for_sender: false,
        receipts: false,
        chat: true,
        identity_hash: false,
        sms_segments: false,
        secrets_go: &[Goes {
            secret: "token",
            to: &["base_url"],
        }],
    };
    const DEFAULT_BASE_URL: &'static str = "https://api.telegram.org";
}

/// Telegram's Bot API: `{base_url}/bot{token}/sendMessage`.
#[derive(Debug, Clone)]
pub struct Telegram;

impl BotApi for Telegram {
    const NAME: &'static str = "telegram";
    const CONVERSATION: &'static str = "chat_id";
    const REASON: &'static str = "/description";
    const CONTENT_TYPE: &'static str = "application/json";
    const TOKEN: TokenIn = TokenIn::Path;
    // A 429's `description` already says when to retry.
    const RATE_LIMIT_BY_HEADER: bool = false;

    fn path(token: &str) -> [String; 2] {
        [format!("bot{token}"), "sendMessage".into()]
    }
}

pub type TelegramChannel = BotApiChannel<Telegram>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use secrecy::SecretString;
    use serde_json::json;
    use url::Url;
    use uuid::Uuid;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::channels::provider::{answering, closed_url};
    use crate::channels::{Channel, ChannelError, Message, Purpose, Sent};

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
        let ch = channel(&server.uri()).with_timeout(Duration::from_millis(200));
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
