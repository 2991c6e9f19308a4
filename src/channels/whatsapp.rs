//! The `whatsapp` channel kind (docs/channels.md): a text message through the
//! WhatsApp Cloud API (`{base_url}/{api_version}/{phone_number_id}/messages`,
//! bearer token). Refusals carry the Graph API's `error.message` and `code`.
//! A channel with an `otp_template` sends every OTP as that authentication
//! template, never as free text (docs/channels.md#authentication-templates).
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::CONTENT_TYPE;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use url::Url;

use super::kind::{required, Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::provider::{post_once, reason, without_bsuid};
use super::{Channel, ChannelError, Message, Refusal, Sent};
use crate::domain::bsuid::is_bsuid;
use crate::domain::challenge::Delivery;
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Report};
use crate::domain::secrets::Secret;
use crate::error::Error;
use subtle::ConstantTimeEq;

/// The keys of a `whatsapp` channel file.
#[derive(Debug, Clone, serde::Deserialize)]
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
    // Authentication templates (docs/channels.md#authentication-templates).
    /// The approved template (category authentication) every OTP is sent
    /// as; `None`: OTPs go as text.
    #[serde(default)]
    pub otp_template: Option<String>,
    #[serde(default = "default_otp_template_language")]
    pub otp_template_language: String,
    /// Supported language tag → Meta's language code of the template
    /// (`{ es = "es", "pt-BR" = "pt_BR" }`): an OTP goes in the
    /// interaction's language when named here, else in
    /// `otp_template_language`.
    #[serde(default)]
    pub otp_template_languages: std::collections::BTreeMap<String, String>,
}

fn default_otp_template_language() -> String {
    "en_US".into()
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
        receipts: true,
        chat: true,
        identity_hash: true,
        sms_segments: false,
        secrets_go: &[
            Goes {
                secret: "token",
                to: &["base_url"],
            },
            // Both check what comes in: neither is ever sent.
            Goes {
                secret: "app_secret",
                to: &[],
            },
            Goes {
                secret: "verify_token",
                to: &[],
            },
        ],
    };

    fn shows_text(&self) -> bool {
        // Not with `otp_template`: Meta's template carries the code.
        self.otp_template.is_none()
    }

    fn whatsapp_chat(&self) -> bool {
        true
    }

    fn sends_templates(&self) -> bool {
        self.otp_template.is_some()
    }

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
        // Trimmed once, here: the sender and `chatgate whatsapp-template`
        // use the same name.
        self.otp_template = self.otp_template.take().map(|n| n.trim().to_string());
        self.otp_template_language = self.otp_template_language.trim().to_string();
        if let Some(name) = &self.otp_template {
            required("otp_template", name)?;
        }
        required("otp_template_language", &self.otp_template_language)
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        let channel = WhatsappChannel::new(
            http,
            self.base_url.clone(),
            self.api_version.clone(),
            self.phone_number_id.clone(),
            self.token.get(),
        );
        Ok(Arc::new(match &self.otp_template {
            Some(name) => channel
                .with_otp_template(name, &self.otp_template_language)
                .with_template_languages(&self.otp_template_languages),
            None => channel,
        }))
    }
}

/// The body of Meta's `POST /{waba_id}/message_templates` that creates the
/// copy-code authentication template `name` in `language`, for codes that
/// live `ttl` (`chatgate whatsapp-template`,
/// docs/channels.md#authentication-templates): WhatsApp drops a message
/// not delivered within `message_send_ttl_seconds` (30 s to 15 min), and
/// the footer states the minutes (1 to 90).
pub fn authentication_template(name: &str, language: &str, ttl: Duration) -> serde_json::Value {
    let seconds = ttl.as_secs().clamp(30, 900);
    let minutes = ttl.as_secs().div_ceil(60).clamp(1, 90);
    json!({
        "name": name,
        "language": language,
        "category": "AUTHENTICATION",
        "message_send_ttl_seconds": seconds,
        "components": [
            {"type": "body", "add_security_recommendation": true},
            {"type": "footer", "code_expiration_minutes": minutes},
            {"type": "buttons", "buttons": [{"type": "otp", "otp_type": "copy_code"}]}
        ]
    })
}

pub struct WhatsappChannel {
    http: reqwest::Client,
    base_url: Url,
    api_version: String,
    phone_number_id: String,
    token: SecretString,
    timeout: Duration,
    otp_template: Option<OtpTemplate>,
}

/// The authentication template OTPs are sent as: its name and language.
struct OtpTemplate {
    name: String,
    language: String,
    /// `otp_template_languages`: tag → Meta's code.
    languages: std::collections::BTreeMap<String, String>,
}

impl OtpTemplate {
    /// Meta's code for a message in `locale`: the table's, else
    /// `otp_template_language`.
    fn language_for(&self, locale: &str) -> &str {
        self.languages
            .iter()
            .find(|(tag, _)| tag.eq_ignore_ascii_case(locale))
            .map_or(self.language.as_str(), |(_, code)| code.as_str())
    }
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
            otp_template: None,
        }
    }

    /// Sends every OTP as the authentication template `name` in `language`
    /// (as checked: trimmed by the configuration).
    pub fn with_otp_template(mut self, name: &str, language: &str) -> Self {
        self.otp_template = Some(OtpTemplate {
            name: name.to_string(),
            language: language.to_string(),
            languages: Default::default(),
        });
        self
    }

    /// The template's language codes by the interaction's language tag.
    pub fn with_template_languages(
        mut self,
        languages: &std::collections::BTreeMap<String, String>,
    ) -> Self {
        if let Some(t) = &mut self.otp_template {
            t.languages = languages.clone();
        }
        self
    }

    /// The Cloud API body of `msg` to `to`: the authentication template for
    /// an OTP when the channel has one (the code its only parameter, in the
    /// body and in the copy-code button), else a text message.
    /// A business-scoped user id goes in `recipient`, a number in `to`
    /// (docs/channels.md#business-scoped-user-ids).
    /// The identity hash the message carries goes beside them, so that
    /// Meta refuses it for a changed identity
    /// (docs/channels.md#sends-know-the-identity).
    fn body(&self, msg: &Message, to: &str) -> Result<serde_json::Value, ChannelError> {
        let mut body = self.bare_body(msg, to)?;
        if let Some(hash) = &msg.identity_key_hash {
            body["recipient_identity_key_hash"] = json!(hash);
        }
        Ok(body)
    }

    /// [`Self::body`] without the identity hash.
    fn bare_body(&self, msg: &Message, to: &str) -> Result<serde_json::Value, ChannelError> {
        let member = if is_bsuid(to) { "recipient" } else { "to" };
        let template = self.otp_template.as_ref();
        let (Some(template), Some(code)) = (template, msg.otp_code("whatsapp")) else {
            let mut body = json!({
                "messaging_product": "whatsapp",
                "type": "text",
                "text": {"body": msg.text},
            });
            body[member] = json!(to);
            return Ok(body);
        };
        // Never the text instead: a code must not go as free text here.
        let code = code?;
        if member == "recipient" {
            // Meta sends authentication templates to numbers only; the
            // gateway refuses such a code before it gets here.
            return Err(ChannelError::new(
                "whatsapp: an authentication template needs a phone number, \
                 not a business-scoped user id",
            ));
        }
        Ok(json!({
            "messaging_product": "whatsapp",
            "to": to,
            "type": "template",
            "template": {
                "name": template.name,
                "language": {"code": template.language_for(&msg.locale)},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": code}]},
                    {
                        "type": "button",
                        "sub_type": "url",
                        "index": "0",
                        "parameters": [{"type": "text", "text": code}]
                    }
                ]
            }
        }))
    }

    /// `{base_url}/{api_version}/{phone_number_id}/messages`, each one segment.
    fn messages_url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| ChannelError::new("whatsapp base_url cannot take a path"))?
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
        // The conversation is the customer's WhatsApp number or
        // business-scoped user id; a code sent here as the team's
        // `sms_channel` goes to the phone it was sent to.
        let to = msg
            .to
            .as_deref()
            .map(str::trim)
            .filter(|to| !to.is_empty())
            .unwrap_or(&msg.conversation_id);
        let body = self.body(msg, to)?;
        let request = self
            .http
            .post(self.messages_url()?)
            .bearer_auth(self.token.expose_secret())
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_string());
        let answer = post_once(request, "whatsapp", self.timeout)
            .await
            .map_err(|e| without_bsuid(e, to))?;
        if answer.status.is_success() {
            // {"messaging_product": "whatsapp", "contacts": [...], "messages": [{"id": "wamid...."}]}
            return Ok(Sent::tracked(answer.text("/messages/0/id")));
        }
        // {"error": {"message": ..., "type": "OAuthException", "code": 190, "fbtrace_id": ...}}
        let status = answer.status.as_u16();
        let message = answer
            .text("/error/message")
            .map(|m| reason(m, self.token.expose_secret()));
        let code = answer.number("/error/code");
        let reason = match (message, code) {
            (Some(m), Some(code)) => {
                format!("whatsapp answered HTTP {status}: {m} (code {code})")
            }
            (Some(m), None) => format!("whatsapp answered HTTP {status}: {m}"),
            (None, Some(code)) => format!("whatsapp answered HTTP {status} (code {code})"),
            (None, None) => format!("whatsapp answered HTTP {status}"),
        };
        // The `recipient_identity_key_hash` the message carried is no
        // longer the recipient's (docs/channels.md#sends-know-the-identity).
        let code_given = answer.body.as_ref().and_then(|b| b.pointer("/error/code"));
        let e = match super::whatsapp_identity::is_identity_refused(code_given) {
            true => ChannelError::refused(reason, Refusal::IdentityChanged),
            false => ChannelError::new(reason),
        };
        Err(without_bsuid(e, to))
    }
}

// Webhooks (docs/api.md#delivery-receipts): Meta's subscription
// handshake, and `X-Hub-Signature-256` = `sha256=` and the hex
// HMAC-SHA256 of the raw body, under the app's `app_secret`.

/// Meta's `X-Hub-Signature-256` of `body` (`sha256=<hex>`).
pub fn hub_signature(app_secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        super::receipts::hmac_sha256_hex(app_secret, &[body])
    )
}

/// Whether `header` is Meta's signature of `body`.
pub fn hub_signed(app_secret: &[u8], body: &[u8], header: &str) -> bool {
    super::receipts::hex_matches(&hub_signature(app_secret, body), header)
}

/// What a WhatsApp Cloud `statuses[].status` reports.
pub fn whatsapp_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// The reports of a WhatsApp Cloud webhook body: each
/// `entry[].changes[].value.statuses[]` with a status this gateway names
/// (others, and incoming messages, change nothing). 400 for a body that is
/// not such an object, or a status without `id` or `status`.
pub fn whatsapp_reports(body: &[u8]) -> Result<Vec<Report>, Error> {
    use serde_json::Value;
    let unreadable = |what: &str| Error::BadRequest(format!("the webhook body {what}"));
    // A member name twice is not valid JSON (docs/api.md#errors).
    if crate::domain::json_members::repeated_member(body).is_some() {
        return Err(unreadable("names a member twice in one object"));
    }
    let body: Value = serde_json::from_slice(body).map_err(|_| unreadable("is not JSON"))?;
    let list = |v: &Value, name: &str| -> Result<Vec<Value>, Error> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(unreadable(&format!("has `{name}` that is not a list"))),
        }
    };
    if !body.is_object() {
        return Err(unreadable("is not a JSON object"));
    }
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let mut reports = Vec::new();
    for entry in list(&body, "entry")? {
        for change in list(&entry, "changes")? {
            let Some(value) = change.get("value") else {
                continue;
            };
            for status in list(value, "statuses")? {
                let (Some(id), Some(name)) = (
                    text(&status, "id").filter(|s| !s.is_empty()),
                    text(&status, "status").filter(|s| !s.is_empty()),
                ) else {
                    return Err(Error::BadRequest(
                        "a status of the webhook needs `id` and `status`".into(),
                    ));
                };
                let Some(status_of) = whatsapp_status(&name) else {
                    continue;
                };
                let error = (status_of == DeliveryStatus::Failed)
                    .then(|| status.get("errors").and_then(|e| e.get(0)))
                    .flatten()
                    .map(|e| DeliveryError {
                        code: match e.get("code") {
                            Some(Value::Number(n)) => n.to_string(),
                            Some(Value::String(s)) => s.clone(),
                            _ => String::new(),
                        },
                        title: text(e, "title"),
                    })
                    .filter(|e| !e.code.is_empty());
                reports.push(Report {
                    message_id: id,
                    status: status_of,
                    error,
                });
            }
        }
    }
    Ok(reports)
}

impl WhatsappConfig {
    /// Meta's subscription handshake: the `hub.challenge` to answer when
    /// `hub.mode` is `subscribe` and `hub.verify_token` is the channel's
    /// `verify_token` (compared in constant time); 403 otherwise; 404 for
    /// a channel without a `verify_token`.
    pub fn handshake(
        &self,
        mode: Option<&str>,
        verify_token: Option<&str>,
        challenge: Option<&str>,
    ) -> Result<String, Error> {
        let want = self.verify_token.as_ref().ok_or(Error::NotFound(
            "no whatsapp channel with a verify_token of this name",
        ))?;
        let matches = verify_token.is_some_and(|given| {
            bool::from(
                given
                    .as_bytes()
                    .ct_eq(want.get().expose_secret().as_bytes()),
            )
        });
        match (mode, challenge) {
            (Some("subscribe"), Some(challenge)) if matches => Ok(challenge.to_string()),
            _ => Err(Error::Forbidden("the verify token does not match")),
        }
    }

    /// The reports of a webhook posted with the raw `body` and header
    /// `X-Hub-Signature-256` `signature`: 404 for a channel without an
    /// `app_secret`, 401 `invalid_signature` for a missing or wrong
    /// signature, 400 for a body that cannot be read
    /// ([`whatsapp_reports`]).
    pub fn receipt(&self, body: &[u8], signature: Option<&str>) -> Result<Vec<Report>, Error> {
        let secret = self.app_secret.as_ref().ok_or(Error::NotFound(
            "no whatsapp channel with an app_secret of this name",
        ))?;
        let secret = secret.get().expose_secret().as_bytes();
        if !signature.is_some_and(|sig| hub_signed(secret, body, sig)) {
            return Err(Error::InvalidSignature(
                "X-Hub-Signature-256 is missing or wrong",
            ));
        }
        whatsapp_reports(body)
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
            code: None,
            public_url: "http://gateway.test".into(),
            code_ttl: None,
            locale: "en".into(),
            call: None,
            identity_key_hash: None,
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

    /// A conversation named by a business-scoped user id: the id, exactly
    /// as given, in `recipient`, and no `to` (Meta's Cloud API answers with
    /// `contacts[].user_id` then).
    #[tokio::test]
    async fn a_business_scoped_user_id_goes_in_recipient() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "messaging_product": "whatsapp",
                "contacts": [{"input": "US.13491208655302741918", "user_id": "US.13491208655302741918"}],
                "messages": [{"id": "wamid.HBgM"}]
            })))
            .expect(2)
            .mount(&server)
            .await;
        for id in ["US.13491208655302741918", "US.ENT.11815799212886844830"] {
            let mut msg = message();
            msg.conversation_id = id.into();
            msg.purpose = Purpose::LoginLink;
            let sent = channel(&server.uri()).send(&msg).await.unwrap();
            assert_eq!(sent.message_id.as_deref(), Some("wamid.HBgM"));
        }
        let requests = server.received_requests().await.unwrap();
        let bodies: Vec<serde_json::Value> = requests
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(
            bodies[0],
            json!({
                "messaging_product": "whatsapp",
                "recipient": "US.13491208655302741918",
                "type": "text",
                "text": {"body": TEXT}
            })
        );
        assert_eq!(bodies[1]["recipient"], "US.ENT.11815799212886844830");
        assert!(bodies[1].get("to").is_none(), "{}", bodies[1]);
    }

    /// An authentication template never goes to a business-scoped user id
    /// (Meta sends them to numbers only): nothing is posted.
    #[tokio::test]
    async fn a_template_code_to_a_business_scoped_user_id_is_not_sent() {
        let server = MockServer::start().await;
        let mut msg = message();
        msg.conversation_id = "US.13491208655302741918".into();
        msg.code = Some("123456".into());
        let err = channel(&server.uri())
            .with_otp_template("chatgate_otp", "en_US")
            .send(&msg)
            .await
            .unwrap_err();
        assert!(err.reason.contains("phone number"), "{}", err.reason);
        assert!(server.received_requests().await.unwrap().is_empty());
    }

    /// Meta's refusal of a message to a business-scoped user id (131062)
    /// is a failure carrying its code, and the id is in no error.
    #[tokio::test]
    async fn a_131062_refusal_is_a_failure_without_the_id() {
        let server = answering(ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "message": "(#131062) Business-scoped User ID recipients are not supported for this message: US.13491208655302741918",
                "type": "OAuthException",
                "code": 131062,
                "fbtrace_id": "AbC"
            }
        })))
        .await;
        let mut msg = message();
        msg.conversation_id = "US.13491208655302741918".into();
        let err = channel(&server.uri()).send(&msg).await.unwrap_err();
        assert!(err.reason.contains("(code 131062)"), "{}", err.reason);
        assert!(!err.reason.contains("US.1349"), "{}", err.reason);
    }

    /// docs/channels.md#sends-know-the-identity: the hash the message
    /// carries goes as `recipient_identity_key_hash`, in a text and in a
    /// template; none when it carries none.
    #[tokio::test]
    async fn the_known_identity_goes_beside_the_recipient() {
        for (ch, msg) in [
            (channel as fn(&str) -> WhatsappChannel, message()),
            (templated, otp_message()),
        ] {
            let server = answering(
                ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.H"}]})),
            )
            .await;
            let msg = Message {
                identity_key_hash: Some("B64hash=".into()),
                ..msg
            };
            ch(&server.uri()).send(&msg).await.unwrap();
            let body = sent_body(&server).await;
            assert_eq!(body["recipient_identity_key_hash"], "B64hash=", "{body}");
        }
        let server = answering(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.N"}]})),
        )
        .await;
        channel(&server.uri()).send(&message()).await.unwrap();
        let body = sent_body(&server).await;
        assert!(body.get("recipient_identity_key_hash").is_none(), "{body}");
    }

    /// Meta's refusal for a changed identity (137000) is told apart from
    /// every other failure, by its code alone.
    #[tokio::test]
    async fn a_137000_refusal_is_a_changed_identity() {
        let error = |code: serde_json::Value| {
            let error = json!({"message": "(#137000) Identity key hash mismatch",
                "type": "OAuthException", "code": code, "fbtrace_id": "A"});
            ResponseTemplate::new(400).set_body_json(json!({ "error": error }))
        };
        let server = answering(error(json!(137000))).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.refusal, Some(Refusal::IdentityChanged), "{err}");
        let server = answering(error(json!("137000"))).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.refusal, Some(Refusal::IdentityChanged), "{err}");
        for other in [
            error(json!(131047)),
            error(json!("131047")),
            error(serde_json::Value::Null),
            ResponseTemplate::new(502),
        ] {
            let server = answering(other).await;
            let err = send_to(&server).await.unwrap_err();
            assert_eq!(err.refusal, None, "{err}");
        }
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
            err.reason,
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
            err.reason,
            "whatsapp answered HTTP 400: bad token [redacted] (code 190)"
        );
    }

    #[tokio::test]
    async fn server_error_gives_the_status() {
        let server = answering(ResponseTemplate::new(500).set_body_string("oops")).await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(err.reason, "whatsapp answered HTTP 500");
    }

    #[tokio::test]
    async fn rate_limited_carries_the_graph_reason() {
        let server = answering(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"message": "(#130429) Rate limit hit", "code": 130429}
        })))
        .await;
        let err = send_to(&server).await.unwrap_err();
        assert_eq!(
            err.reason,
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
        assert_eq!(err.reason, "whatsapp did not answer in time");
        server.verify().await;
    }

    #[tokio::test]
    async fn unreachable_says_so() {
        let err = channel(&closed_url()).send(&message()).await.unwrap_err();
        assert_eq!(err.reason, "whatsapp unreachable");
    }
    const CODE: &str = "123456";

    fn templated(base: &str) -> WhatsappChannel {
        channel(base).with_otp_template("chatgate_otp", "pt_BR")
    }

    fn otp_message() -> Message {
        let mut msg = message();
        msg.code = Some(CODE.into());
        msg
    }

    async fn sent_body(server: &MockServer) -> serde_json::Value {
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1);
        serde_json::from_slice(&requests[0].body).unwrap()
    }

    /// The template goes in the interaction's language when the table names
    /// it, else in `otp_template_language`.
    #[tokio::test]
    async fn the_template_follows_the_interaction_s_language_where_the_table_names_it() {
        let languages = [("es".to_string(), "es_MX".to_string())].into();
        for (locale, code) in [
            ("es", "es_MX"),
            ("ES", "es_MX"),
            ("ar", "pt_BR"),
            ("en", "pt_BR"),
        ] {
            let server = answering(
                ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.L"}]})),
            )
            .await;
            let ch = templated(&server.uri()).with_template_languages(&languages);
            let msg = Message {
                locale: locale.into(),
                ..otp_message()
            };
            ch.send(&msg).await.unwrap();
            let body = sent_body(&server).await;
            assert_eq!(body["template"]["language"]["code"], code, "{locale}");
        }
    }

    #[tokio::test]
    async fn an_otp_on_a_templated_channel_is_the_authentication_template() {
        let server = answering(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.T"}]})),
        )
        .await;
        let sent = templated(&server.uri()).send(&otp_message()).await.unwrap();
        assert_eq!(sent.message_id.as_deref(), Some("wamid.T"));
        assert_eq!(
            sent_body(&server).await,
            json!({
                "messaging_product": "whatsapp",
                "to": "15552223333",
                "type": "template",
                "template": {
                    "name": "chatgate_otp",
                    "language": {"code": "pt_BR"},
                    "components": [
                        {"type": "body", "parameters": [{"type": "text", "text": CODE}]},
                        {
                            "type": "button",
                            "sub_type": "url",
                            "index": "0",
                            "parameters": [{"type": "text", "text": CODE}]
                        }
                    ]
                }
            })
        );
    }

    #[tokio::test]
    async fn other_purposes_on_a_templated_channel_are_text() {
        for purpose in Purpose::ALL.into_iter().filter(|p| *p != Purpose::Otp) {
            let server = answering(ResponseTemplate::new(200).set_body_json(json!({}))).await;
            let mut msg = message();
            msg.purpose = purpose;
            templated(&server.uri()).send(&msg).await.unwrap();
            let body = sent_body(&server).await;
            assert_eq!(body["type"], "text", "{purpose:?}");
            assert_eq!(body["text"]["body"], TEXT, "{purpose:?}");
        }
    }

    #[tokio::test]
    async fn an_otp_to_a_phone_on_a_templated_channel_is_the_template_too() {
        // As a team's `sms_channel`: `delivery: "sms"` sends to the phone.
        let server = answering(ResponseTemplate::new(200).set_body_json(json!({}))).await;
        let mut msg = otp_message();
        msg.to = Some("+15559998888".into());
        templated(&server.uri()).send(&msg).await.unwrap();
        let body = sent_body(&server).await;
        assert_eq!(
            (body["to"].as_str(), body["type"].as_str()),
            (Some("+15559998888"), Some("template"))
        );
        assert!(body.get("text").is_none(), "{body}");
    }

    #[tokio::test]
    async fn an_otp_without_its_code_is_not_sent_as_text() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .expect(0)
            .mount(&server)
            .await;
        let err = templated(&server.uri()).send(&message()).await.unwrap_err();
        assert_eq!(err.reason, "whatsapp: an OTP without its code");
    }
    #[test]
    fn the_authentication_template_lives_as_long_as_the_code() {
        let t = authentication_template("chatgate_otp", "en_US", Duration::from_secs(300));
        assert_eq!(
            t,
            json!({
                "name": "chatgate_otp",
                "language": "en_US",
                "category": "AUTHENTICATION",
                "message_send_ttl_seconds": 300,
                "components": [
                    {"type": "body", "add_security_recommendation": true},
                    {"type": "footer", "code_expiration_minutes": 5},
                    {"type": "buttons", "buttons": [{"type": "otp", "otp_type": "copy_code"}]}
                ]
            })
        );
    }

    #[test]
    fn the_authentication_template_clamps_to_what_meta_takes() {
        // (otp.ttl seconds, message_send_ttl_seconds, code_expiration_minutes)
        for (ttl, seconds, minutes) in [
            (10, 30, 1),
            (30, 30, 1),
            (61, 61, 2),
            (900, 900, 15),
            (901, 900, 16),
            (3600, 900, 60),
            (90 * 60 + 1, 900, 90),
            (86_400, 900, 90),
        ] {
            let t = authentication_template("n", "en", Duration::from_secs(ttl));
            assert_eq!(t["message_send_ttl_seconds"], seconds, "{ttl}");
            assert_eq!(
                t["components"][1]["code_expiration_minutes"], minutes,
                "{ttl}"
            );
        }
    }

    /// The same scheme's published example (GitHub's documentation of
    /// `X-Hub-Signature-256`, which Meta's webhooks use too).
    #[test]
    fn meta_signs_as_the_published_example() {
        let (secret, body) = (b"It's a Secret to Everybody".as_slice(), b"Hello, World!");
        let want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(hub_signature(secret, body), want);
        assert!(hub_signed(secret, body, want));
        assert!(hub_signed(
            secret,
            body,
            &want.to_uppercase().replace("SHA256", "sha256")
        ));
        assert!(!hub_signed(secret, b"Hello, World?", want));
        assert!(!hub_signed(b"another", body, want));
        assert!(!hub_signed(secret, body, &want["sha256=".len()..]));
        assert!(!hub_signed(secret, body, ""));
    }

    #[test]
    fn whatsapp_statuses_map_to_the_gateway_s() {
        use DeliveryStatus::*;
        for (meta, want) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("failed", Some(Failed)),
            ("deleted", None),
        ] {
            assert_eq!(whatsapp_status(meta), want, "{meta}");
        }
    }

    #[test]
    fn whatsapp_statuses_become_reports_and_messages_are_ignored() {
        use DeliveryStatus::{Delivered, Failed};
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"messaging_product":"whatsapp",
              "messages":[{"from":"15550001111","id":"wamid.in","type":"text","text":{"body":"hi"}}],
              "statuses":[
                {"id":"wamid.A","status":"delivered","timestamp":"1"},
                {"id":"wamid.B","status":"failed","errors":[{"code":131047,"title":"Re-engagement message"}]},
                {"id":"wamid.C","status":"deleted"}]}}]}]}"#;
        let reports = whatsapp_reports(body).unwrap();
        assert_eq!(
            reports,
            vec![
                Report {
                    message_id: "wamid.A".into(),
                    status: Delivered,
                    error: None
                },
                Report {
                    message_id: "wamid.B".into(),
                    status: Failed,
                    error: Some(DeliveryError {
                        code: "131047".into(),
                        title: Some("Re-engagement message".into())
                    })
                },
            ]
        );
        assert!(
            whatsapp_reports(br#"{"entry":[{"changes":[{"value":{"messages":[{}]}}]}]}"#)
                .unwrap()
                .is_empty()
        );
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"entry":{}}"#,
            br#"{"entry":[{"changes":[{"value":{"statuses":[{"status":"read"}]}}]}]}"#,
            br#"{"entry":[{"changes":[{"value":{"statuses":[{"id":"wamid.A"}]}}]}]}"#,
            // A member name twice (here a status's), however deep.
            br#"{"entry":[{"changes":[{"value":{"statuses":[{"id":"wamid.A","status":"failed","status":"read"}]}}]}]}"#,
        ] {
            assert!(
                matches!(whatsapp_reports(bad), Err(Error::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
