//! The `whatsapp` channel kind (docs/channels.md): a text message through the
//! WhatsApp Cloud API (`{base_url}/{api_version}/{phone_number_id}/messages`,
//! bearer token). Refusals carry the Graph API's `error.message` and `code`.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::kind::{required, Kind, KindInfo, Problem, Reach, Secret};
use super::provider::{post_once, reason};
use super::{Channel, ChannelError, Message, Sent};
use crate::domain::challenge::Delivery;

/// The keys of a `whatsapp` channel file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappConfig {
    #[serde(default = "default_base_url", deserialize_with = "super::kind::url")]
    pub base_url: Url,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The sending number's id (not the number).
    pub phone_number_id: String,
    pub token: Secret,
    /// The Meta app's secret: checks `X-Hub-Signature-256` of the status
    /// webhooks (docs/receipts.md); without it the webhook's `POST` is 404.
    #[serde(default)]
    pub app_secret: Option<Secret>,
    /// Answers Meta's subscription handshake; without it the webhook's
    /// `GET` is 404.
    #[serde(default)]
    pub verify_token: Option<Secret>,
}

fn default_base_url() -> Url {
    super::kind::default_url("https://graph.facebook.com")
}

fn default_api_version() -> String {
    "v21.0".into()
}

impl Kind for WhatsappConfig {
    const INFO: KindInfo = KindInfo {
        name: "whatsapp",
        text_limit: Some(4096),
        addressing: Reach::PhoneChat,
        // As a team's `sms_channel` it sends to the challenge's `to`.
        serves: &[Delivery::Sms],
        vouches_for_sender: true,
    };

    fn check(&mut self) -> Result<(), Problem> {
        required("api_version", &self.api_version)?;
        required("phone_number_id", &self.phone_number_id)?;
        required("token", self.token.get().expose_secret())?;
        if let Some(secret) = &self.app_secret {
            required("app_secret", secret.get().expose_secret())?;
        }
        if let Some(token) = &self.verify_token {
            required("verify_token", token.get().expose_secret())?;
        }
        Ok(())
    }

    fn sender(&self, http: reqwest::Client) -> Result<Arc<dyn Channel>, ChannelError> {
        Ok(Arc::new(WhatsappChannel::new(
            http,
            self.base_url.clone(),
            self.api_version.clone(),
            self.phone_number_id.clone(),
            self.token.get(),
        )))
    }
}

pub struct WhatsappChannel {
    http: reqwest::Client,
    base_url: Url,
    api_version: String,
    phone_number_id: String,
    token: SecretString,
    timeout: Duration,
}

impl WhatsappChannel {
    pub fn new(
        http: reqwest::Client,
        base_url: Url,
        api_version: String,
        phone_number_id: String,
        token: &SecretString,
    ) -> Self {
        WhatsappChannel {
            http,
            base_url,
            api_version,
            phone_number_id,
            token: SecretString::from(token.expose_secret()),
            timeout: super::SEND_TIMEOUT,
        }
    }

    /// `{base_url}/{api_version}/{phone_number_id}/messages`, each one segment.
    fn messages_url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| ChannelError("whatsapp base_url cannot take a path".into()))?
            .pop_if_empty()
            .extend([
                self.api_version.trim(),
                self.phone_number_id.trim(),
                "messages",
            ]);
        Ok(url)
    }
}

#[async_trait]
impl Channel for WhatsappChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        // The conversation is the customer's WhatsApp number; a code sent
        // here as the team's `sms_channel` goes to the phone it was sent to.
        let to = msg
            .to
            .as_deref()
            .map(str::trim)
            .filter(|to| !to.is_empty())
            .unwrap_or(&msg.conversation_id);
        let body = json!({
            "messaging_product": "whatsapp",
            "to": to,
            "type": "text",
            "text": {"body": msg.text},
        });
        let request = self
            .http
            .post(self.messages_url()?)
            .bearer_auth(self.token.expose_secret())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = post_once(request, "whatsapp", self.timeout).await?;
        if answer.status.is_success() {
            // {"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid...."}]}
            return Ok(Sent::tracked(answer.text("/messages/0/id")));
        }
        // {"error": {"message": ..., "type": "OAuthException", "code": 190, "fbtrace_id": ...}}
        let status = answer.status.as_u16();
        let message = answer
            .text("/error/message")
            .map(|m| reason(m, self.token.expose_secret()));
        Err(ChannelError(
            match (message, answer.number("/error/code")) {
                (Some(m), Some(code)) => {
                    format!("whatsapp answered HTTP {status}: {m} (code {code})")
                }
                (Some(m), None) => format!("whatsapp answered HTTP {status}: {m}"),
                (None, Some(code)) => format!("whatsapp answered HTTP {status} (code {code})"),
                (None, None) => format!("whatsapp answered HTTP {status}"),
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

    const TOKEN: &str = "EAAGs3cr3tT0k3n";
    const TEXT: &str = "Your code is 123456. \"Quoted\" ünïcode & more";

    fn message() -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "15552223333".into(),
            channel: "whatsapp".into(),
            to: None,
            text: TEXT.into(),
            subject: None,
            public_url: "http://gateway.test".into(),
        }
    }

    fn channel(base: &str) -> WhatsappChannel {
        WhatsappChannel::new(
            reqwest::Client::new(),
            Url::parse(base).unwrap(),
            "v21.0".into(),
            "106540352242922".into(),
            &SecretString::from(TOKEN),
        )
    }

    async fn send_to(server: &MockServer) -> Result<Sent, ChannelError> {
        channel(&server.uri()).send(&message()).await
    }

    #[tokio::test]
    async fn posts_the_cloud_api_text_message_with_bearer_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/graph/v21.0/106540352242922/messages"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("content-type", "application/json"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "15552223333", "wa_id": "15552223333"}],
                "messages": [{"id": "wamid.HBgL"}]
            })))
            .expect(1)
            .mount(&server)
            .await;
        let sent = channel(&format!("{}/graph/", server.uri()))
            .send(&message())
            .await
            .unwrap();
        // The id its status webhooks will name.
        assert_eq!(sent.message_id.as_deref(), Some("wamid.HBgL"));
        let requests = server.received_requests().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp",
                "to": "15552223333",
                "type": "text",
                "text": {"body": TEXT}
            })
        );
    }

    #[tokio::test]
    async fn a_message_with_a_phone_goes_to_that_phone() {
        let server = answering(ResponseTemplate::new(200).set_body_json(json!({}))).await;
        let mut msg = message();
        msg.to = Some("+15559998888".into());
        channel(&server.uri()).send(&msg).await.unwrap();
        let requests = server.received_requests().await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
        assert_eq!(body["to"], "+15559998888");
    }

    #[tokio::test]
    async fn client_error_carries_the_graph_message_and_code() {
        let server = answering(ResponseTemplate::new(401).set_body_json(json!({
            "error": {
                "message": "Invalid OAuth access token - Cannot parse access token",
                "type": "OAuthException",
                "code": 190,
                "fbtrace_id": "Azq3"
            }
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.0,
            "whatsapp answered HTTP 401: Invalid OAuth access token - Cannot parse access token (code 190)"
        );
    }

    #[tokio::test]
    async fn an_echoed_token_is_redacted() {
        let server = answering(ResponseTemplate::new(400).set_body_json(json!({
            "error": {"message": format!("bad token {TOKEN}"), "code": 190}
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.0,
            "whatsapp answered HTTP 400: bad token [redacted] (code 190)"
        );
    }

    #[tokio::test]
    async fn server_error_gives_the_status() {
        let server = answering(ResponseTemplate::new(500).set_body_string("oops")).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.0, "whatsapp answered HTTP 500");
    }

    #[tokio::test]
    async fn rate_limited_carries_the_graph_reason() {
        let server = answering(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"message": "(#130429) Rate limit hit", "code": 130429}
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.0,
            "whatsapp answered HTTP 429: (#130429) Rate limit hit (code 130429)"
        );
    }

    #[tokio::test]
    async fn slow_answer_times_out_after_one_attempt() {
        let server = answering(
            ResponseTemplate::new(200)
                .set_body_json(json!({"messages": [{"id": "wamid.x"}]}))
                .set_delay(Duration::from_secs(3)),
        )
        .await;
        let mut ch = channel(&server.uri());
        ch.timeout = Duration::from_millis(200);
        let err = ch.send(&message()).await.unwrap_err();
        assert_eq!(err.0, "whatsapp did not answer in time");
        server.verify().await;
    }

    #[tokio::test]
    async fn unreachable_says_so() {
        let err = channel(&closed_url()).send(&message()).await.unwrap_err();
        assert_eq!(err.0, "whatsapp unreachable");
    }
}
