//! The `telegram_gateway` channel kind (docs/channels.md#telegram_gateway-codes-through-telegrams-verification-gateway):
//! a code to a phone number's Telegram account through Telegram's
//! verification-code gateway (`{base_url}/sendVerificationMessage`, bearer
//! token). It sends codes only, and serves only as a step of a team's
//! delivery ladder (docs/api.md#delivery-ladder). Its delivery reports
//! come back to `/v1/providers/telegram-gateway/{channel}/report`.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::kind::{required, Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::provider::{post_once, reason};
use super::{Channel, ChannelError, Message, Sent};
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Report};
use crate::domain::secrets::Secret;
use crate::error::Error;
use crate::time::Timestamp;

/// The keys of a `telegram_gateway` channel file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramGatewayConfig {
    #[serde(default = "default_base_url", deserialize_with = "super::kind::url")]
    pub base_url: Url,
    pub token: Secret,
    /// A verified Telegram channel the code is sent from, when set.
    #[serde(default)]
    pub sender_username: Option<String>,
}

fn default_base_url() -> Url {
    super::kind::default_url("https://gatewayapi.telegram.org")
}

/// The shortest and longest `ttl` the gateway takes, in seconds.
const TTL_SECONDS: (u64, u64) = (30, 3600);

impl Kind for TelegramGatewayConfig {
    const INFO: KindInfo = KindInfo {
        name: "telegram_gateway",
        // It sends the code, never a text.
        text_limit: None,
        addressing: Reach::Phone,
        serves: &[],
        vouches_for_sender: false,
        receipts: true,
        chat: false,
        identity_hash: false,
        sms_segments: false,
        secrets_go: &[Goes {
            secret: "token",
            to: &["base_url"],
        }],
    };

    fn shows_text(&self) -> bool {
        // The code goes alone, in Telegram's own text.
        false
    }

    fn whatsapp_chat(&self) -> bool {
        false
    }

    fn sends_templates(&self) -> bool {
        false
    }

    fn check(&mut self) -> Result<(), Problem> {
        required("token", self.token.get().expose_secret())?;
        if let Some(name) = &self.sender_username {
            required("sender_username", name)?;
        }
        Ok(())
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        Ok(Arc::new(TelegramGatewayChannel::new(
            http,
            self.base_url.clone(),
            self.token.get(),
            self.sender_username.clone(),
        )))
    }
}

/// Where the gateway posts a message's delivery reports: the channel's
/// report route under `server.public_url` (docs/api.md#delivery-receipts).
pub fn report_url(public_url: &str, channel: &str) -> String {
    format!("{public_url}/v1/providers/telegram-gateway/{channel}/report")
}

pub struct TelegramGatewayChannel {
    http: reqwest::Client,
    base_url: Url,
    token: SecretString,
    sender_username: Option<String>,
    timeout: Duration,
}

impl TelegramGatewayChannel {
    pub fn new(
        http: reqwest::Client,
        base_url: Url,
        token: &SecretString,
        sender_username: Option<String>,
    ) -> Self {
        TelegramGatewayChannel {
            http,
            base_url,
            token: SecretString::from(token.expose_secret()),
            sender_username,
            timeout: super::SEND_TIMEOUT,
        }
    }

    /// `{base_url}/{method}`.
    fn method_url(&self, method: &str) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| ChannelError::new("telegram_gateway base_url cannot take a path"))?
            .pop_if_empty()
            .push(method);
        Ok(url)
    }

    /// POSTs `body` to `method` and reads the gateway's answer:
    /// `{"ok": true, "result": {...}}`, or a failure with its `error`.
    async fn call(
        &self,
        method: &str,
        body: serde_json::Value,
    ) -> Result<super::provider::Answer, ChannelError> {
        let request = self
            .http
            .post(self.method_url(method)?)
            .bearer_auth(self.token.expose_secret())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = post_once(request, "telegram_gateway", self.timeout).await?;
        let secret = self.token.expose_secret();
        let error = answer.text("/error").map(|e| reason(e, secret));
        if !answer.status.is_success() {
            let status = answer.status.as_u16();
            return Err(ChannelError::new(match error {
                Some(e) => format!("telegram_gateway answered HTTP {status}: {e}"),
                None => format!("telegram_gateway answered HTTP {status}"),
            }));
        }
        match (answer.ok_field(), error) {
            (Some(true), _) => Ok(answer),
            (_, Some(e)) => Err(ChannelError::new(format!(
                "telegram_gateway refused the message: {e}"
            ))),
            (_, None) => Err(ChannelError::new(
                "telegram_gateway answered without \"ok\": true",
            )),
        }
    }
}

/// The code's remaining life in whole seconds, as the gateway takes it.
fn ttl_seconds(left: Option<Duration>) -> u64 {
    let (min, max) = TTL_SECONDS;
    left.map_or(max, |d| d.as_secs()).clamp(min, max)
}

#[async_trait]
impl Channel for TelegramGatewayChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let code = msg
            .otp_code("telegram_gateway")
            .ok_or_else(|| ChannelError::new("telegram_gateway sends only codes"))??;
        let phone = msg
            .to
            .as_deref()
            .map(str::trim)
            .filter(|to| !to.is_empty())
            .ok_or_else(|| ChannelError::new("telegram_gateway needs a phone number"))?;
        let mut body = json!({
            "phone_number": phone,
            "code": code,
            "ttl": ttl_seconds(msg.code_ttl),
            "callback_url": report_url(&msg.public_url, &msg.channel),
        });
        if let Some(name) = &self.sender_username {
            body["sender_username"] = json!(name);
        }
        let answer = self.call("sendVerificationMessage", body).await?;
        // {"ok": true, "result": {"request_id": "...", "phone_number": ..., ...}}
        Ok(Sent::tracked(answer.text("/result/request_id")))
    }

    /// Asks the gateway to withdraw message `message_id` (its code is used,
    /// or the ladder moved past it). Best effort: the caller only logs a
    /// failure.
    async fn revoke(&self, message_id: &str) -> Result<(), ChannelError> {
        let body = json!({"request_id": message_id});
        self.call("revokeVerificationMessage", body)
            .await
            .map(|_| ())
    }
}

// Delivery reports (docs/api.md#delivery-receipts):
// `X-Request-Signature` is the hex HMAC-SHA256, keyed by the SHA-256
// digest of the channel's `token`, of `X-Request-Timestamp`, a newline and
// the raw body.

/// How far a report's `X-Request-Timestamp` may be from the gateway's
/// clock, in seconds, as for every signed request (docs/api.md#signed-requests-standard-webhooks).
pub const REPORT_TOLERANCE_SECS: i64 = 300;

/// Telegram's verification gateway's signature of a report `body` posted
/// with header `X-Request-Timestamp` `timestamp` (hex).
pub fn telegram_gateway_signature(token: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = <sha2::Sha256 as sha2::Digest>::digest(token);
    super::receipts::hmac_sha256_hex(&key, &[timestamp.as_bytes(), b"\n", body])
}

/// Whether `header` is the gateway's signature of this report.
pub fn telegram_gateway_signed(token: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    super::receipts::hex_matches(&telegram_gateway_signature(token, timestamp, body), header)
}

/// What a Telegram gateway report's `delivery_status.status` reports.
pub fn telegram_gateway_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "expired" | "revoked" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

impl TelegramGatewayConfig {
    /// The report of a delivery report posted with the raw `body` and
    /// headers `X-Request-Timestamp` `timestamp` and
    /// `X-Request-Signature` `signature`, received at `now`: 401
    /// `invalid_signature` for a missing or wrong signature, or a
    /// timestamp (unix seconds) more than [`REPORT_TOLERANCE_SECS`] from
    /// `now` (a recorded report replayed later); then 400 for a body
    /// without `request_id` or `delivery_status.status`; `None` for a
    /// status that changes nothing.
    pub fn report(
        &self,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
        now: Timestamp,
    ) -> Result<Option<Report>, Error> {
        let token = self.token.get().expose_secret().as_bytes();
        let fresh = |ts: &str| {
            ts.parse::<i64>().is_ok_and(|t| {
                now.unix_seconds().abs_diff(t) <= REPORT_TOLERANCE_SECS.unsigned_abs()
            })
        };
        let signed = match (timestamp, signature) {
            (Some(ts), Some(sig)) => telegram_gateway_signed(token, ts, body, sig) && fresh(ts),
            _ => false,
        };
        if !signed {
            return Err(Error::InvalidSignature(
                "X-Request-Timestamp or X-Request-Signature is missing or wrong, \
                 or the timestamp is more than 5 minutes from now",
            ));
        }
        let unreadable =
            || Error::BadRequest("a report needs request_id and delivery_status.status".into());
        // A member name twice is not valid JSON (docs/api.md#errors).
        if crate::domain::json_members::repeated_member(body).is_some() {
            return Err(Error::BadRequest(
                "the report names a member twice in one object".into(),
            ));
        }
        let report: serde_json::Value = serde_json::from_slice(body).map_err(|_| unreadable())?;
        let text = |pointer: &str| {
            report
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
        };
        let (Some(request_id), Some(status)) =
            (text("/request_id"), text("/delivery_status/status"))
        else {
            return Err(unreadable());
        };
        let Some(status_of) = telegram_gateway_status(status) else {
            return Ok(None);
        };
        let error = (status_of == DeliveryStatus::Failed).then(|| DeliveryError {
            code: status.to_string(),
            title: None,
        });
        Ok(Some(Report {
            message_id: request_id.to_string(),
            status: status_of,
            error,
        }))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::channels::provider::closed_url;
    use crate::channels::Purpose;

    const TOKEN: &str = "AAGtg-s3cr3t";

    fn message(purpose: Purpose) -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose,
            interaction_id: Uuid::now_v7(),
            conversation_id: "conv-1".into(),
            channel: "tg-codes".into(),
            to: Some("+447400123456".into()),
            text: "Your code is 123456".into(),
            subject: None,
            public_url: "http://gateway.test".into(),
            code: Some("123456".into()),
            code_ttl: Some(Duration::from_secs(290)),
            locale: "en".into(),
            call: None,
            identity_key_hash: None,
        }
    }

    fn channel(base: &str, sender: Option<&str>) -> TelegramGatewayChannel {
        TelegramGatewayChannel::new(
            reqwest::Client::new(),
            Url::parse(base).unwrap(),
            &SecretString::from(TOKEN),
            sender.map(str::to_string),
        )
    }

    #[tokio::test]
    async fn sends_the_code_with_bearer_token_and_reads_the_request_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/tg/sendVerificationMessage"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_json(json!({
                "phone_number": "+447400123456",
                "code": "123456",
                "ttl": 290,
                "callback_url": "http://gateway.test/v1/providers/telegram-gateway/tg-codes/report",
                "sender_username": "acme_codes",
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": true,
                "result": {"request_id": "req-77", "phone_number": "+447400123456"},
            })))
            .expect(1)
            .mount(&server)
            .await;
        let base = format!("{}/tg", server.uri());
        let sent = channel(&base, Some("acme_codes"))
            .send(&message(Purpose::Otp))
            .await
            .unwrap();
        assert_eq!(sent, Sent::tracked(Some("req-77")));
    }

    #[test]
    fn the_ttl_is_the_codes_remaining_life_clamped() {
        assert_eq!(ttl_seconds(Some(Duration::from_secs(5))), 30);
        assert_eq!(ttl_seconds(Some(Duration::from_secs(290))), 290);
        assert_eq!(ttl_seconds(Some(Duration::from_secs(7200))), 3600);
        assert_eq!(ttl_seconds(None), 3600);
    }

    #[tokio::test]
    async fn ok_false_is_a_failure_naming_the_error_never_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "ok": false, "error": "PHONE_NUMBER_INVALID",
            })))
            .mount(&server)
            .await;
        let err = channel(&server.uri(), None)
            .send(&message(Purpose::Otp))
            .await
            .unwrap_err();
        assert!(err.reason.contains("PHONE_NUMBER_INVALID"), "{err}");
        assert!(!err.reason.contains(TOKEN));
        assert!(!err.reason.contains("123456"));
    }

    #[tokio::test]
    async fn an_http_error_and_an_unreachable_gateway_are_failures() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "ok": false, "error": "ACCESS_TOKEN_INVALID",
            })))
            .mount(&server)
            .await;
        let err = channel(&server.uri(), None)
            .send(&message(Purpose::Otp))
            .await
            .unwrap_err();
        assert!(err.reason.contains("401") && err.reason.contains("ACCESS_TOKEN_INVALID"));
        let err = channel(&closed_url(), None)
            .send(&message(Purpose::Otp))
            .await
            .unwrap_err();
        assert!(!err.reason.contains(TOKEN));
    }

    #[tokio::test]
    async fn anything_but_a_code_is_refused_without_a_request() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let c = channel(&server.uri(), None);
        assert!(c.send(&message(Purpose::LoginLink)).await.is_err());
        let mut no_code = message(Purpose::Otp);
        no_code.code = None;
        assert!(c.send(&no_code).await.is_err());
        let mut nobody = message(Purpose::Otp);
        nobody.to = None;
        assert!(c.send(&nobody).await.is_err());
    }

    #[tokio::test]
    async fn revoke_posts_the_request_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/revokeVerificationMessage"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(body_json(json!({"request_id": "req-77"})))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let c: Arc<dyn Channel> = Arc::new(channel(&server.uri(), None));
        c.revoke("req-77").await.unwrap();
    }

    /// A vector computed outside this code from the gateway's documented
    /// scheme (HMAC-SHA256 keyed by SHA-256 of the token, over the
    /// timestamp, a newline and the body).
    #[test]
    fn telegram_gateway_signs_as_documented() {
        let token = b"AAGtg-s3cr3t";
        let ts = "1732530000";
        let body = br#"{"request_id":"req-77","delivery_status":{"status":"delivered","updated_at":1732530000}}"#;
        let want = "3a803707375394daeb3196ca9d0cd7e46cc424efc51b3d8ac86dc268644828cb";
        assert_eq!(telegram_gateway_signature(token, ts, body), want);
        assert!(telegram_gateway_signed(token, ts, body, want));
        assert!(telegram_gateway_signed(
            token,
            ts,
            body,
            &want.to_uppercase()
        ));
        assert!(!telegram_gateway_signed(b"another", ts, body, want));
        assert!(!telegram_gateway_signed(token, "1732530001", body, want));
        assert!(!telegram_gateway_signed(token, ts, &body[1..], want));
        assert!(!telegram_gateway_signed(token, ts, body, &want[1..]));
        assert!(!telegram_gateway_signed(token, ts, body, ""));
        // Keyed by the token's digest, not the token itself.
        let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(token).unwrap();
        hmac::Mac::update(&mut mac, b"1732530000\n");
        hmac::Mac::update(&mut mac, body);
        let raw_key = hex::encode(hmac::Mac::finalize(mac).into_bytes());
        assert!(!telegram_gateway_signed(token, ts, body, &raw_key));
    }

    #[test]
    fn telegram_gateway_statuses_map_to_the_gateway_s() {
        use DeliveryStatus::*;
        for (tg, want) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("expired", Some(Failed)),
            ("revoked", Some(Failed)),
            ("pending", None),
        ] {
            assert_eq!(telegram_gateway_status(tg), want, "{tg}");
        }
    }
}
