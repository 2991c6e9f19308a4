//! The `twilio` channel kind (docs/channels.md): SMS and WhatsApp through
//! Twilio's Messages API, a form POST with HTTP basic auth. A WhatsApp
//! sender with an `otp_content_sid` sends every OTP as that Content
//! template, the code its only variable, never as free text
//! (docs/channels.md#authentication-templates).
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use url::Url;

use super::kind::{required, Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::provider::{reason, without_bsuid};
use super::{Channel, ChannelError, Message, Sent};
use crate::domain::bsuid::is_bsuid;
use crate::domain::challenge::Delivery;
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Report};
use crate::domain::secrets::Secret;
use crate::error::Error;
use crate::spans::SendTraced;

/// Twilio writes WhatsApp numbers `whatsapp:+1...`.
const WHATSAPP: &str = "whatsapp:";

/// The keys of a `twilio` channel file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    #[serde(default = "default_base_url", deserialize_with = "super::kind::url")]
    pub base_url: Url,
    pub account_sid: String,
    pub auth_token: Secret,
    /// A phone number, or `whatsapp:+1…` to send WhatsApp.
    pub from: String,
    /// The Content template (`HX…`) every OTP is sent as; only with a
    /// `whatsapp:` sender.
    #[serde(default)]
    pub otp_content_sid: Option<String>,
}

/// Twilio's API, for its messages and its calls (`twilio_voice`).
pub(super) fn default_base_url() -> Url {
    super::kind::default_url("https://api.twilio.com")
}

impl Kind for TwilioConfig {
    const INFO: KindInfo = KindInfo {
        name: "twilio",
        // Ten SMS segments.
        text_limit: Some(1600),
        addressing: Reach::Phone,
        serves: &[Delivery::Sms],
        vouches_for_sender: true,
        receipts: true,
        chat: true,
        identity_hash: false,
        sms_segments: true,
        secrets_go: &[Goes {
            secret: "auth_token",
            to: &["base_url"],
        }],
    };

    fn shows_text(&self) -> bool {
        // Not with `otp_content_sid`: the Content template carries the code.
        self.otp_content_sid.is_none()
    }

    fn whatsapp_chat(&self) -> bool {
        self.sends_whatsapp()
    }

    fn sends_templates(&self) -> bool {
        self.otp_content_sid.is_some()
    }

    fn check(&mut self) -> Result<(), Problem> {
        required("account_sid", &self.account_sid)?;
        required("auth_token", self.auth_token.get().expose_secret())?;
        required("from", &self.from)?;
        if !is_twilio_sender(&self.from) {
            return Err((
                "from",
                "must be an E.164 number (+15550006666), \"whatsapp:\" and one, or a Messaging Service SID (MG and 32 hex digits)".into(),
            ));
        }
        if let Some(sid) = &self.otp_content_sid {
            required("otp_content_sid", sid)?;
            if !self.from.trim().starts_with(WHATSAPP) {
                return Err((
                    "otp_content_sid",
                    "needs a WhatsApp sender: `from` must start with \"whatsapp:\"".into(),
                ));
            }
        }
        Ok(())
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        let channel = TwilioChannel::new(
            http,
            self.base_url.clone(),
            self.account_sid.clone(),
            self.auth_token.get(),
            self.from.clone(),
        );
        Ok(Arc::new(match &self.otp_content_sid {
            Some(sid) => channel.with_otp_content_sid(sid),
            None => channel,
        }))
    }
}

/// Whether `from` is a sender Twilio sends from: an E.164 number, the
/// same after `whatsapp:`, or a Messaging Service SID (`MG` and 32 hex
/// digits). A file and an API write are held to this one rule.
pub fn is_twilio_sender(from: &str) -> bool {
    let e164 = |n: &str| {
        n.strip_prefix('+').is_some_and(|d| {
            (2..=15).contains(&d.len())
                && d.bytes().all(|b| b.is_ascii_digit())
                && !d.starts_with('0')
        })
    };
    let service = |s: &str| {
        s.strip_prefix("MG")
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    e164(from) || from.strip_prefix(WHATSAPP).is_some_and(e164) || service(from)
}

impl TwilioConfig {
    /// The channel sends WhatsApp (`from` = `whatsapp:+1…`).
    pub fn sends_whatsapp(&self) -> bool {
        self.from.trim().starts_with(WHATSAPP)
    }
}

pub struct TwilioChannel {
    http: reqwest::Client,
    base_url: Url,
    account_sid: String,
    auth_token: SecretString,
    from: String,
    otp_content_sid: Option<String>,
}

impl TwilioChannel {
    pub fn new(
        http: reqwest::Client,
        base_url: Url,
        account_sid: String,
        auth_token: &SecretString,
        from: String,
    ) -> Self {
        let auth_token = SecretString::from(auth_token.expose_secret());
        TwilioChannel {
            http,
            base_url,
            account_sid,
            auth_token,
            from,
            otp_content_sid: None,
        }
    }

    /// Sends every OTP as the Content template `sid`.
    pub fn with_otp_content_sid(mut self, sid: &str) -> Self {
        self.otp_content_sid = Some(sid.trim().to_string());
        self
    }

    /// What the message says: `Body` = the text, or, for an OTP on a
    /// channel with a Content template, `ContentSid` and `ContentVariables`
    /// = `{"1": CODE}` (never the text).
    fn content(&self, msg: &Message) -> Result<Vec<(&'static str, String)>, ChannelError> {
        let sid = self.otp_content_sid.as_ref();
        let (Some(sid), Some(code)) = (sid, msg.otp_code("twilio")) else {
            return Ok(vec![("Body", msg.text.clone())]);
        };
        let code = code?;
        Ok(vec![
            ("ContentSid", sid.clone()),
            (
                "ContentVariables",
                serde_json::json!({"1": code}).to_string(),
            ),
        ])
    }

    /// `{base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, the sid
    /// encoded as one path segment.
    fn messages_url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| ChannelError::new("twilio base_url cannot take a path"))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", &self.account_sid, "Messages.json"]);
        Ok(url)
    }

    /// The `To` field: `msg.to`, prefixed `whatsapp:` when sending WhatsApp;
    /// without one, a WhatsApp sender's conversation when it is a
    /// business-scoped user id (docs/channels.md#business-scoped-user-ids).
    fn recipient(&self, msg: &Message) -> Result<String, ChannelError> {
        let whatsapp = self.from.starts_with(WHATSAPP);
        let conversation =
            (whatsapp && is_bsuid(&msg.conversation_id)).then_some(msg.conversation_id.as_str());
        let to = msg
            .to
            .as_deref()
            .map(str::trim)
            .filter(|to| !to.is_empty())
            .or(conversation)
            .ok_or_else(|| ChannelError::new("twilio needs a recipient phone number"))?;
        if self.otp_content_sid.is_some() && msg.otp_code("twilio").is_some() && is_bsuid(to) {
            // Meta sends authentication templates to numbers only; the
            // gateway refuses such a code before it gets here.
            return Err(ChannelError::new(
                "twilio: an authentication template needs a phone number, \
                 not a business-scoped user id",
            ));
        }
        if self.from.starts_with(WHATSAPP) && !to.starts_with(WHATSAPP) {
            Ok(format!("{WHATSAPP}{to}"))
        } else {
            Ok(to.to_string())
        }
    }
}

/// Where Twilio posts the message's delivery receipts: the channel's
/// receipt route under `server.public_url` (docs/api.md#delivery-receipts).
pub fn status_callback(public_url: &str, channel: &str) -> String {
    format!("{public_url}/v1/providers/twilio/{channel}/status")
}

#[async_trait]
impl Channel for TwilioChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let to = self.recipient(msg)?;
        let content = self.content(msg)?;
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("To", &to).append_pair("From", &self.from);
            for (name, value) in &content {
                form.append_pair(name, value);
            }
            form.append_pair(
                "StatusCallback",
                &status_callback(&msg.public_url, &msg.channel),
            )
            .finish()
        };
        let url = self.messages_url()?;
        let account = (self.account_sid.as_str(), &self.auth_token);
        let sent = post_form(&self.http, url, account, body, "twilio").await;
        sent.map_err(|e| without_bsuid(e, &to))
    }
}

/// POSTs the form `body` to Twilio's `url` once, with the account's
/// (`sid`, `auth_token`) HTTP basic auth: the `sid` of the answer (what
/// its callbacks name), or an error with Twilio's message and code, never
/// the URL or the token (`kind` names the channel kind in it).
pub(super) async fn post_form(
    http: &reqwest::Client,
    url: Url,
    (sid, auth_token): (&str, &SecretString),
    body: String,
    kind: &str,
) -> Result<Sent, ChannelError> {
    let response = http
        .post(url)
        .timeout(super::SEND_TIMEOUT)
        .basic_auth(sid, Some(auth_token.expose_secret()))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send_traced()
        .await
        // reqwest's error text includes the URL: keep it out.
        .map_err(|e| match e.is_connect() || e.is_timeout() {
            true => super::provider::transport_error(kind, &e),
            false => ChannelError::new(format!("{kind} unreachable")),
        })?;
    let status = response.status();
    // {"sid": "SM...", "status": "queued", ...}, or Twilio's error body:
    // {"code": 20003, "message": ..., "status": 401}.
    let body = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let field = |name: &str| body.as_ref().and_then(|v| v.get(name));
    if status.is_success() {
        return Ok(Sent::tracked(field("sid").and_then(|s| s.as_str())));
    }
    let code = field("code").and_then(serde_json::Value::as_u64);
    let message = field("message")
        .and_then(serde_json::Value::as_str)
        .map(|m| reason(m, auth_token.expose_secret()));
    let status = status.as_u16();
    Err(ChannelError::new(match (message, code) {
        (Some(m), Some(code)) => format!("{kind} answered HTTP {status}: {m} (code {code})"),
        (Some(m), None) => format!("{kind} answered HTTP {status}: {m}"),
        (None, Some(code)) => format!("{kind} answered HTTP {status} (code {code})"),
        (None, None) => format!("{kind} answered HTTP {status}"),
    }))
}

// Status callbacks (docs/api.md#delivery-receipts): `X-Twilio-Signature`
// is the base64 HMAC-SHA1, under the channel's `auth_token`, of the full
// public URL followed by every posted field's name and value, fields
// sorted by name.

/// Twilio's signature of a POST to `url` with form `fields`.
pub fn twilio_signature(auth_token: &[u8], url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token) else {
        // HMAC takes keys of any length; unreachable.
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    B64.encode(mac.finalize().into_bytes())
}

/// Whether `header` is Twilio's signature of this POST.
pub fn twilio_signed(
    auth_token: &[u8],
    url: &str,
    fields: &[(String, String)],
    header: &str,
) -> bool {
    let want = twilio_signature(auth_token, url, fields);
    !want.is_empty() && bool::from(want.as_bytes().ct_eq(header.trim().as_bytes()))
}

/// 401 `invalid_signature` unless `signature` (the `X-Twilio-Signature`
/// header) is Twilio's signature, under `auth_token`, of a POST to `url`
/// with form `fields`.
pub fn check_signature(
    auth_token: &SecretString,
    url: &str,
    fields: &[(String, String)],
    signature: Option<&str>,
) -> Result<(), Error> {
    let token = auth_token.expose_secret().as_bytes();
    if signature.is_some_and(|sig| twilio_signed(token, url, fields, sig)) {
        Ok(())
    } else {
        Err(Error::InvalidSignature(
            "X-Twilio-Signature is missing or wrong",
        ))
    }
}

/// The value of the posted field `name`, when it is there and not empty.
pub fn form_field<'f>(fields: &'f [(String, String)], name: &str) -> Option<&'f str> {
    fields
        .iter()
        .find(|(k, v)| k == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// What a Twilio `MessageStatus` reports (`None`: nothing here:
/// `queued`, `accepted`, `sending`, and the like).
pub fn twilio_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "undelivered" | "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// What a `MessageStatus` (with its `ErrorCode`) reports; `None`
/// for the statuses that change nothing (`queued`, `sending`, …).
pub fn twilio_report(
    status: &str,
    error_code: Option<&str>,
) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
    let status = twilio_status(status)?;
    let error = error_code
        .filter(|c| !c.is_empty() && status == DeliveryStatus::Failed)
        .map(|code| DeliveryError {
            code: code.to_string(),
            title: None,
        });
    Some((status, error))
}

impl TwilioConfig {
    /// The report of a status callback posted to `url` (the channel's
    /// `StatusCallback`) with form `fields` and header
    /// `X-Twilio-Signature` `signature`: 401 `invalid_signature` for a
    /// missing or wrong signature, then 400 without `MessageSid` or
    /// `MessageStatus`; `None` for a status that changes nothing.
    pub fn receipt(
        &self,
        url: &str,
        fields: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<Option<Report>, Error> {
        check_signature(self.auth_token.get(), url, fields, signature)?;
        let field = |name: &str| form_field(fields, name);
        let (Some(sid), Some(status)) = (field("MessageSid"), field("MessageStatus")) else {
            return Err(Error::BadRequest(
                "a status callback needs MessageSid and MessageStatus".into(),
            ));
        };
        Ok(
            twilio_report(status, field("ErrorCode")).map(|(status, error)| Report {
                message_id: sid.to_string(),
                status,
                error,
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::channels::provider::closed_url;
    use base64::Engine;
    use serde_json::json;
    use uuid::Uuid;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::channels::Purpose;

    const SID: &str = "AC0123456789abcdef";
    const TOKEN: &str = "t0k3n-s3cr3t";
    const TEXT: &str = "Code 123456 & more + ünïcode = ok";

    fn message(to: Option<&str>) -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "conv-1".into(),
            channel: "sms".into(),
            to: to.map(String::from),
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

    fn channel(base: &str, from: &str) -> TwilioChannel {
        TwilioChannel::new(
            reqwest::Client::new(),
            Url::parse(base).unwrap(),
            SID.into(),
            &SecretString::from(TOKEN),
            from.into(),
        )
    }

    fn messages_path() -> String {
        format!("/2010-04-01/Accounts/{SID}/Messages.json")
    }

    async fn accepting_server(prefix: &str) -> MockServer {
        let server = MockServer::start().await;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
        Mock::given(method("POST"))
            .and(path(format!("{prefix}{}", messages_path())))
            .and(header("authorization", format!("Basic {basic}").as_str()))
            .and(header("content-type", "application/x-www-form-urlencoded"))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
            .expect(1)
            .mount(&server)
            .await;
        server
    }

    /// The form fields of the one request `server` received.
    async fn received_form(server: &MockServer) -> BTreeMap<String, String> {
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&requests[0].body)
            .into_owned()
            .collect();
        assert_eq!(
            pairs.len(),
            4,
            "exactly To, From, Body, StatusCallback: {pairs:?}"
        );
        pairs.into_iter().collect()
    }

    fn form(to: &str, from: &str) -> BTreeMap<String, String> {
        [
            ("To", to),
            ("From", from),
            ("Body", TEXT),
            (
                "StatusCallback",
                "http://gateway.test/v1/providers/twilio/sms/status",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[tokio::test]
    async fn posts_the_documented_form_with_basic_auth() {
        let server = accepting_server("").await;
        let sent = channel(&server.uri(), "+15550001111")
            .send(&message(Some("+15552223333")))
            .await
            .unwrap();
        // The sid its status callbacks will name.
        assert_eq!(sent.message_id.as_deref(), Some("SM1"));
        assert_eq!(
            received_form(&server).await,
            form("+15552223333", "+15550001111")
        );
    }

    #[tokio::test]
    async fn base_url_with_a_path_keeps_it() {
        let server = accepting_server("/twilio").await;
        channel(&format!("{}/twilio/", server.uri()), "+15550001111")
            .send(&message(Some("+15552223333")))
            .await
            .unwrap();
        server.verify().await;
    }

    #[tokio::test]
    async fn whatsapp_sender_prefixes_the_recipient_once() {
        for to in ["+15552223333", "whatsapp:+15552223333"] {
            let server = accepting_server("").await;
            channel(&server.uri(), "whatsapp:+14155238886")
                .send(&message(Some(to)))
                .await
                .unwrap();
            assert_eq!(
                received_form(&server).await,
                form("whatsapp:+15552223333", "whatsapp:+14155238886")
            );
        }
    }

    /// A WhatsApp conversation named by a business-scoped user id, with no
    /// phone: `To` is `whatsapp:<id>`, the id exactly as given.
    #[tokio::test]
    async fn whatsapp_sender_sends_to_a_business_scoped_user_id() {
        let server = accepting_server("").await;
        let mut msg = message(None);
        msg.conversation_id = "US.ENT.11815799212886844830".into();
        channel(&server.uri(), "whatsapp:+14155238886")
            .send(&msg)
            .await
            .unwrap();
        assert_eq!(
            received_form(&server).await,
            form(
                "whatsapp:US.ENT.11815799212886844830",
                "whatsapp:+14155238886"
            )
        );
        // An SMS sender has no such conversation.
        let err = channel(&server.uri(), "+15550001111")
            .send(&msg)
            .await
            .unwrap_err();
        assert!(
            err.reason.contains("recipient phone number"),
            "{}",
            err.reason
        );
    }

    #[tokio::test]
    async fn a_content_template_never_goes_to_a_business_scoped_user_id() {
        let server = MockServer::start().await;
        let mut msg = message(None);
        msg.conversation_id = "US.13491208655302741918".into();
        msg.code = Some("123456".into());
        let err = channel(&server.uri(), "whatsapp:+14155238886")
            .with_otp_content_sid("HXabc")
            .send(&msg)
            .await
            .unwrap_err();
        assert!(err.reason.contains("phone number"), "{}", err.reason);
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn error_answer_gives_status_and_twilios_message_and_code() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401
            })))
            .mount(&server)
            .await;
        let err = channel(&server.uri(), "+15550001111")
            .send(&message(Some("+15552223333")))
            .await
            .unwrap_err();
        assert_eq!(
            err.reason,
            "twilio answered HTTP 401: Authenticate (code 20003)"
        );
    }

    #[tokio::test]
    async fn error_without_json_gives_the_status() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
            .mount(&server)
            .await;
        let err = channel(&server.uri(), "+15550001111")
            .send(&message(Some("+15552223333")))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "twilio answered HTTP 503");
    }

    #[tokio::test]
    async fn missing_recipient_sends_nothing() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201))
            .expect(0)
            .mount(&server)
            .await;
        for to in [None, Some("  ")] {
            let err = channel(&server.uri(), "+15550001111")
                .send(&message(to))
                .await
                .unwrap_err();
            assert_eq!(err.reason, "twilio needs a recipient phone number");
        }
    }

    #[tokio::test]
    async fn unreachable_says_so_without_url_or_token() {
        let err = channel(&closed_url(), "+15550001111")
            .send(&message(Some("+15552223333")))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "twilio unreachable");
    }
    /// Every purpose but `otp`.
    fn not_otp() -> impl Iterator<Item = Purpose> {
        Purpose::ALL.into_iter().filter(|p| *p != Purpose::Otp)
    }

    fn otp_message() -> Message {
        let mut msg = message(Some("+15552223333"));
        msg.code = Some("123456".into());
        msg
    }

    #[tokio::test]
    async fn an_otp_with_a_content_template_sends_the_code_as_its_variable_and_no_body() {
        let server = accepting_server("").await;
        channel(&server.uri(), "whatsapp:+14155238886")
            .with_otp_content_sid("HX0123456789abcdef")
            .send(&otp_message())
            .await
            .unwrap();
        let requests = server.received_requests().await.unwrap();
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&requests[0].body)
            .into_owned()
            .collect();
        let expected: Vec<(String, String)> = [
            ("To", "whatsapp:+15552223333"),
            ("From", "whatsapp:+14155238886"),
            ("ContentSid", "HX0123456789abcdef"),
            ("ContentVariables", r#"{"1":"123456"}"#),
            (
                "StatusCallback",
                "http://gateway.test/v1/providers/twilio/sms/status",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, expected);
        // The free text, which holds the code too, is not sent.
        let raw = String::from_utf8_lossy(&requests[0].body);
        assert!(!raw.contains("Body"), "{raw}");
    }

    #[tokio::test]
    async fn other_purposes_with_a_content_template_still_send_the_text() {
        for purpose in not_otp() {
            let server = accepting_server("").await;
            let mut msg = message(Some("+15552223333"));
            msg.purpose = purpose;
            channel(&server.uri(), "whatsapp:+14155238886")
                .with_otp_content_sid("HX0123456789abcdef")
                .send(&msg)
                .await
                .unwrap();
            assert_eq!(
                received_form(&server).await,
                form("whatsapp:+15552223333", "whatsapp:+14155238886"),
                "{purpose:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_otp_without_its_code_is_not_sent_as_text() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201))
            .expect(0)
            .mount(&server)
            .await;
        let err = channel(&server.uri(), "whatsapp:+14155238886")
            .with_otp_content_sid("HX0123456789abcdef")
            .send(&message(Some("+15552223333")))
            .await
            .unwrap_err();
        assert_eq!(err.reason, "twilio: an OTP without its code");
    }

    fn posted(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example of Twilio's own documentation of request validation:
    /// auth token `12345`, this URL and these fields sign as
    /// `0/KCTR6DLpKmkAf8muzZqo1nDgQ=`.
    #[test]
    fn twilio_signs_as_its_published_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let posted = posted(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        let want = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(twilio_signature(b"12345", url, &posted), want);
        assert!(twilio_signed(b"12345", url, &posted, want));
        // Another token, URL, field value or signature: refused.
        assert!(!twilio_signed(b"12346", url, &posted, want));
        assert!(!twilio_signed(
            b"12345",
            "https://mycompany.com/myapp.php",
            &posted,
            want
        ));
        let mut changed = posted.clone();
        changed[0].1 = "1235".into();
        assert!(!twilio_signed(b"12345", url, &changed, want));
        assert!(!twilio_signed(b"12345", url, &posted, ""));
        assert!(!twilio_signed(
            b"12345",
            url,
            &posted,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
    }

    #[test]
    fn a_sender_is_a_number_a_whatsapp_number_or_a_messaging_service() {
        for ok in [
            "+15550006666",
            "whatsapp:+14155238886",
            "MG0123456789abcdef0123456789ABCDEF",
        ] {
            assert!(is_twilio_sender(ok), "{ok}");
        }
        for bad in [
            "",
            "15550006666",
            "+0555",
            "+1",
            "+1234567890123456",
            "+1 555 000 6666",
            " +15550006666",
            "whatsapp:15550006666",
            "whatsapp:",
            "ACME",
            "MG0123",
            "MG0123456789abcdef0123456789abcdeg",
            "https://127.0.0.1/",
        ] {
            assert!(!is_twilio_sender(bad), "{bad}");
        }
    }

    #[test]
    fn twilio_statuses_map_to_the_gateway_s() {
        use DeliveryStatus::*;
        for (twilio, want) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("undelivered", Some(Failed)),
            ("failed", Some(Failed)),
            ("queued", None),
            ("sending", None),
            ("accepted", None),
        ] {
            assert_eq!(twilio_status(twilio), want, "{twilio}");
        }
    }

    #[test]
    fn twilio_statuses_become_reports_with_their_error_code_only_when_failed() {
        use DeliveryStatus::{Delivered, Failed, Read, Sent};
        let failed = |code: &str| {
            Some((
                Failed,
                Some(DeliveryError {
                    code: code.into(),
                    title: None,
                }),
            ))
        };
        assert_eq!(twilio_report("sent", Some("30008")), Some((Sent, None)));
        assert_eq!(twilio_report("delivered", None), Some((Delivered, None)));
        assert_eq!(twilio_report("read", Some("")), Some((Read, None)));
        assert_eq!(twilio_report("undelivered", Some("30003")), failed("30003"));
        assert_eq!(twilio_report("failed", Some("30008")), failed("30008"));
        assert_eq!(twilio_report("failed", Some("")), Some((Failed, None)));
        assert_eq!(twilio_report("failed", None), Some((Failed, None)));
        for nothing in ["queued", "accepted", "sending", "scheduled", "canceled", ""] {
            assert_eq!(twilio_report(nothing, Some("1")), None, "{nothing}");
        }
    }
}
