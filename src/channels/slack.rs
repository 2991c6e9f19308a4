//! The `slack` channel kind (docs/channels.md): `chat.postMessage` with a bot
//! token, sent by the bot-token sender (`bot_api.rs`). Slack answers HTTP
//! 200 with `"ok": false` and an `error` name when it refuses a message,
//! and 429 with `Retry-After` when rate limited.
use super::bot_api::{BotApi, BotApiChannel, BotConfig, BotKind, TokenIn};
use super::kind::{Goes, KindInfo, Reach};

/// The keys of a `slack` channel file: `base_url` (default
/// `https://slack.com`) and the bot `token`.
pub type SlackConfig = BotConfig<Slack>;

impl BotKind for Slack {
    const INFO: KindInfo = KindInfo {
        name: "slack",
        text_limit: Some(40_000),
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
    const DEFAULT_BASE_URL: &'static str = "https://slack.com";
}

/// Slack's Web API: `{base_url}/api/chat.postMessage`, the token as a
/// bearer.
#[derive(Debug, Clone)]
pub struct Slack;

impl BotApi for Slack {
    const NAME: &'static str = "slack";
    const CONVERSATION: &'static str = "channel";
    const REASON: &'static str = "/error";
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";
    const TOKEN: TokenIn = TokenIn::Bearer;
    const RATE_LIMIT_BY_HEADER: bool = true;

    fn path(_token: &str) -> [String; 2] {
        ["api".into(), "chat.postMessage".into()]
    }
}

pub type SlackChannel = BotApiChannel<Slack>;

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
        let ch = channel(&server.uri()).with_timeout(Duration::from_millis(200));
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
