//! The `twilio_voice` channel kind (docs/channels.md#twilio_voice-codes-read-by-a-phone-call):
//! a code read by a phone call through Twilio's Calls API. The call's
//! TwiML only asks for a key press (an answering machine never presses);
//! the code is spoken only in the answer to that signed press, built here
//! ([`TwilioVoiceConfig::reading`]). Its status callbacks are its receipts.
use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::kind::{required, Dial, Goes, Kind, KindInfo, Problem, Reach};
use super::twilio::{check_signature, form_field, post_form};
use super::{Channel, ChannelError, Message, Sent};
use crate::domain::challenge::Delivery;
use crate::domain::delivery_status::Report;
use crate::domain::secrets::Secret;
use crate::domain::voice::{call_report, say_language, spoken_digits, GatherId, KeyPress};
use crate::error::Error;

/// The call's status events Twilio reports (one space-separated value).
const STATUS_EVENTS: &str = "initiated ringing answered completed";

/// The keys of a `twilio_voice` channel file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioVoiceConfig {
    #[serde(
        default = "super::twilio::default_base_url",
        deserialize_with = "super::kind::url"
    )]
    pub base_url: Url,
    pub account_sid: String,
    pub auth_token: Secret,
    /// The number the call comes from.
    pub from: String,
    /// Supported locale tag → Twilio's `<Say language>` code
    /// (`{ en = "en-US", es = "es-MX" }`).
    #[serde(default)]
    pub languages: BTreeMap<String, String>,
    /// Twilio's voice name (`<Say voice>`), when set.
    #[serde(default)]
    pub voice: Option<String>,
}

impl Kind for TwilioVoiceConfig {
    const INFO: KindInfo = KindInfo {
        name: "twilio_voice",
        text_limit: None,
        addressing: Reach::Voice,
        serves: &[Delivery::Voice],
        vouches_for_sender: false,
        receipts: true,
        chat: false,
        identity_hash: false,
        sms_segments: false,
        secrets_go: &[Goes {
            secret: "auth_token",
            to: &["base_url"],
        }],
    };

    fn shows_text(&self) -> bool {
        // The call reads the text (`voice_otp_transaction`).
        true
    }

    fn whatsapp_chat(&self) -> bool {
        false
    }

    fn sends_templates(&self) -> bool {
        false
    }

    fn check(&mut self) -> Result<(), Problem> {
        required("account_sid", &self.account_sid)?;
        required("auth_token", self.auth_token.get().expose_secret())?;
        required("from", &self.from)?;
        if let Some(voice) = &self.voice {
            required("voice", voice)?;
        }
        for (tag, code) in &self.languages {
            if tag.trim().is_empty() || code.trim().is_empty() {
                return Err(("languages", "tags and codes must not be empty".into()));
            }
        }
        Ok(())
    }

    fn sender(&self, Dial { http, .. }: Dial) -> Result<Arc<dyn Channel>, ChannelError> {
        Ok(Arc::new(TwilioVoiceChannel {
            http,
            base_url: self.base_url.clone(),
            account_sid: self.account_sid.clone(),
            auth_token: SecretString::from(self.auth_token.get().expose_secret()),
            from: self.from.clone(),
            speaker: Speaker {
                languages: self.languages.clone(),
                voice: self.voice.clone(),
            },
        }))
    }
}

/// How a channel's `<Say>` speaks: its `languages` and `voice`.
#[derive(Debug, Clone)]
struct Speaker {
    languages: BTreeMap<String, String>,
    voice: Option<String>,
}

impl Speaker {
    /// `<Say>` of `text` in locale `locale`: `language` from the table
    /// (absent without an entry), `voice` when set; everything escaped.
    fn say(&self, text: &str, locale: &str) -> String {
        let mut attrs = String::new();
        if let Some(language) = say_language(&self.languages, locale) {
            attrs.push_str(&format!(" language=\"{}\"", xml_escape(language)));
        }
        if let Some(voice) = &self.voice {
            attrs.push_str(&format!(" voice=\"{}\"", xml_escape(voice)));
        }
        format!("<Say{attrs}>{}</Say>", xml_escape(text))
    }
}

/// `s` with XML's five special characters escaped (for text and
/// attribute values alike).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Where Twilio posts a call's status callbacks.
pub fn status_callback(public_url: &str, channel: &str) -> String {
    format!("{public_url}/v1/providers/twilio-voice/{channel}/status")
}

/// Where Twilio posts the key press of call `gather`.
pub fn gather_url(public_url: &str, channel: &str, gather: &str) -> String {
    format!("{public_url}/v1/providers/twilio-voice/{channel}/gather/{gather}")
}

impl TwilioVoiceConfig {
    fn speaker(&self) -> Speaker {
        Speaker {
            languages: self.languages.clone(),
            voice: self.voice.clone(),
        }
    }

    /// The answer to a press that reads `code`: `voice_otp` (`text`, with
    /// `#PIN#` spoken digit by digit) said twice, then hang up.
    pub fn reading(&self, text: &str, code: &str, locale: &str) -> String {
        let said = self
            .speaker()
            .say(&text.replace("#PIN#", &spoken_digits(code)), locale);
        format!("<Response>{said}{said}<Hangup/></Response>")
    }

    /// The answer to any other press: `voice_unavailable` (`text`), then
    /// hang up.
    pub fn unavailable(&self, text: &str, locale: &str) -> String {
        let said = self.speaker().say(text, locale);
        format!("<Response>{said}<Hangup/></Response>")
    }

    /// 401 `invalid_signature` unless `signature` is Twilio's, under the
    /// channel's `auth_token`, of a POST to `url` with `fields`.
    pub fn check_signed(
        &self,
        url: &str,
        fields: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<(), Error> {
        check_signature(self.auth_token.get(), url, fields, signature)
    }

    /// The key press posted to `url`, the gather URL of call `gather`,
    /// with `fields` and `X-Twilio-Signature` `signature`: 401 for a
    /// missing or wrong signature (nothing read); then the press, as a
    /// plain value: the call it names, whether a key was pressed (a
    /// `Digits` field that is not blank), and the call's `CallSid`.
    pub fn key_press(
        &self,
        url: &str,
        gather: &str,
        fields: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<KeyPress, Error> {
        self.check_signed(url, fields, signature)?;
        let digits = form_field(fields, "Digits");
        Ok(KeyPress {
            gather: GatherId::parse(gather),
            pressed: digits.is_some_and(|d| !d.trim().is_empty()),
            call_sid: form_field(fields, "CallSid")
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// The report of a status callback posted to `url` with `fields` and
    /// `X-Twilio-Signature` `signature`: 401 for a missing or wrong
    /// signature, then 400 without `CallSid` or `CallStatus`; `None` for a
    /// status that reports nothing.
    pub fn receipt(
        &self,
        url: &str,
        fields: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<Option<Report>, Error> {
        self.check_signed(url, fields, signature)?;
        let (Some(sid), Some(status)) = (
            form_field(fields, "CallSid"),
            form_field(fields, "CallStatus"),
        ) else {
            return Err(Error::BadRequest(
                "a status callback needs CallSid and CallStatus".into(),
            ));
        };
        Ok(call_report(status).map(|(status, error)| Report {
            message_id: sid.to_string(),
            status,
            error,
        }))
    }
}

pub struct TwilioVoiceChannel {
    http: reqwest::Client,
    base_url: Url,
    account_sid: String,
    auth_token: SecretString,
    from: String,
    speaker: Speaker,
}

impl TwilioVoiceChannel {
    /// `{base_url}/2010-04-01/Accounts/{account_sid}/Calls.json`.
    fn calls_url(&self) -> Result<Url, ChannelError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| ChannelError::new("twilio_voice base_url cannot take a path"))?
            .pop_if_empty()
            .extend(["2010-04-01", "Accounts", &self.account_sid, "Calls.json"]);
        Ok(url)
    }

    /// The call's TwiML: the text (`voice_gate`) inside a one-key
    /// `<Gather>` whose press comes back to the gather URL, then hang up.
    /// Never the code.
    fn gate(&self, msg: &Message, gather: &str, locale: &str) -> String {
        let action = gather_url(&msg.public_url, &msg.channel, gather);
        format!(
            "<Response><Gather numDigits=\"1\" timeout=\"10\" action=\"{}\">{}</Gather><Hangup/></Response>",
            xml_escape(&action),
            self.speaker.say(&msg.text, locale)
        )
    }
}

#[async_trait]
impl Channel for TwilioVoiceChannel {
    async fn send(&self, msg: &Message) -> Result<Sent, ChannelError> {
        let call = msg
            .call
            .as_ref()
            .ok_or_else(|| ChannelError::new("twilio_voice reads only codes"))?;
        let to = msg
            .to
            .as_deref()
            .map(str::trim)
            .filter(|to| !to.is_empty())
            .ok_or_else(|| ChannelError::new("twilio_voice needs a phone number"))?;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("To", to)
            .append_pair("From", &self.from)
            .append_pair(
                "StatusCallback",
                &status_callback(&msg.public_url, &msg.channel),
            )
            .append_pair("StatusCallbackEvent", STATUS_EVENTS)
            .append_pair("Twiml", &self.gate(msg, &call.gather, &msg.locale))
            .finish();
        let url = self.calls_url()?;
        let account = (self.account_sid.as_str(), &self.auth_token);
        post_form(&self.http, url, account, body, "twilio_voice").await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine;
    use serde_json::json;
    use uuid::Uuid;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::channels::provider::closed_url;
    use crate::channels::twilio::twilio_signature;
    use crate::channels::{Call, Purpose};

    const SID: &str = "AC0123456789abcdef";
    const TOKEN: &str = "t0k3n-s3cr3t";
    const GATHER: &str = "00112233445566778899aabbccddeeff";

    fn config(base: &str, voice: Option<&str>) -> TwilioVoiceConfig {
        TwilioVoiceConfig {
            base_url: Url::parse(base).unwrap(),
            account_sid: SID.into(),
            auth_token: test_secret(TOKEN),
            from: "+15550001111".into(),
            languages: [("en", "en-GB"), ("es", "es-MX")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            voice: voice.map(str::to_string),
        }
    }

    /// A `Secret` as the loader makes it.
    fn test_secret(text: &str) -> Secret {
        use serde::de::value::MapDeserializer;
        use serde::Deserialize;
        let entries = [(
            crate::domain::secrets::SECRET_FIELD.to_string(),
            text.to_string(),
        )];
        let map = MapDeserializer::<_, serde::de::value::Error>::new(entries.into_iter());
        Secret::deserialize(NewtypeOfMap(map)).unwrap()
    }

    /// Answers `deserialize_newtype_struct` with the map, as the loader does.
    struct NewtypeOfMap<M>(M);
    impl<'de, M: serde::de::MapAccess<'de>> serde::Deserializer<'de> for NewtypeOfMap<M> {
        type Error = M::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, v: V) -> Result<V::Value, M::Error> {
            v.visit_map(self.0)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map struct
            enum identifier ignored_any
        }
    }

    fn message(locale: &str) -> Message {
        Message {
            id: Uuid::now_v7(),
            purpose: Purpose::Otp,
            interaction_id: Uuid::now_v7(),
            conversation_id: "conv-1".into(),
            channel: "voice".into(),
            to: Some("+15552223333".into()),
            text: "Press any key <now> & \"listen\".".into(),
            code: Some("482913".into()),
            subject: None,
            public_url: "http://gateway.test".into(),
            code_ttl: None,
            locale: locale.into(),
            call: Some(Call {
                gather: GATHER.into(),
            }),
            identity_key_hash: None,
        }
    }

    fn sender(cfg: &TwilioVoiceConfig) -> Arc<dyn Channel> {
        cfg.sender(Dial::anywhere(reqwest::Client::new())).unwrap()
    }

    #[tokio::test]
    async fn a_call_posts_the_documented_form_whose_twiml_only_asks_for_a_key() {
        let server = MockServer::start().await;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
        Mock::given(method("POST"))
            .and(path(format!("/2010-04-01/Accounts/{SID}/Calls.json")))
            .and(header("authorization", format!("Basic {basic}").as_str()))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "CA1"})))
            .expect(1)
            .mount(&server)
            .await;
        let cfg = config(&server.uri(), Some("Polly.Amy"));
        let sent = sender(&cfg).send(&message("en")).await.unwrap();
        assert_eq!(sent.message_id.as_deref(), Some("CA1"));
        let requests = server.received_requests().await.unwrap();
        let form: BTreeMap<String, String> = url::form_urlencoded::parse(&requests[0].body)
            .into_owned()
            .collect();
        let want: BTreeMap<String, String> = [
            ("To", "+15552223333"),
            ("From", "+15550001111"),
            ("StatusCallback", "http://gateway.test/v1/providers/twilio-voice/voice/status"),
            ("StatusCallbackEvent", "initiated ringing answered completed"),
            (
                "Twiml",
                "<Response><Gather numDigits=\"1\" timeout=\"10\" \
                 action=\"http://gateway.test/v1/providers/twilio-voice/voice/gather/00112233445566778899aabbccddeeff\">\
                 <Say language=\"en-GB\" voice=\"Polly.Amy\">Press any key &lt;now&gt; &amp; &quot;listen&quot;.</Say>\
                 </Gather><Hangup/></Response>",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(form, want);
        let raw = String::from_utf8_lossy(&requests[0].body);
        assert!(
            !raw.contains("482913"),
            "the call never holds the code: {raw}"
        );
    }

    #[tokio::test]
    async fn a_message_that_is_not_a_call_or_has_no_number_is_not_sent() {
        let cfg = config(&closed_url(), None);
        let mut msg = message("en");
        msg.call = None;
        let err = sender(&cfg).send(&msg).await.unwrap_err();
        assert_eq!(err.reason, "twilio_voice reads only codes");
        let mut msg = message("en");
        msg.to = None;
        let err = sender(&cfg).send(&msg).await.unwrap_err();
        assert_eq!(err.reason, "twilio_voice needs a phone number");
        let err = sender(&cfg).send(&message("en")).await.unwrap_err();
        assert_eq!(err.reason, "twilio_voice unreachable");
    }

    #[tokio::test]
    async fn a_refusal_gives_the_status_and_twilio_s_message() {
        let server = crate::channels::provider::answering(
            ResponseTemplate::new(400)
                .set_body_json(json!({"code": 21215, "message": "Geo permission"})),
        )
        .await;
        let cfg = config(&server.uri(), None);
        let err = sender(&cfg).send(&message("en")).await.unwrap_err();
        assert_eq!(
            err.reason,
            "twilio_voice answered HTTP 400: Geo permission (code 21215)"
        );
    }

    #[test]
    fn a_reading_says_the_code_digit_by_digit_twice_and_hangs_up() {
        let cfg = config("https://api.twilio.com", None);
        assert_eq!(
            cfg.reading("Your code is #PIN#.", "4821", "es-AR"),
            "<Response><Say language=\"es-MX\">Your code is 4, 8, 2, 1.</Say>\
             <Say language=\"es-MX\">Your code is 4, 8, 2, 1.</Say><Hangup/></Response>"
        );
        // No entry for the locale: no language.
        assert_eq!(
            cfg.unavailable("Gone & done.", "de"),
            "<Response><Say>Gone &amp; done.</Say><Hangup/></Response>"
        );
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_key_press_is_checked_then_read_into_a_plain_value() {
        let cfg = config("https://api.twilio.com", None);
        let gather = format!("{GATHER}.acme");
        let url = gather_url("http://gateway.test", "voice", &gather);
        let posted = fields(&[("CallSid", "CA1"), ("Digits", "7")]);
        let sig = twilio_signature(TOKEN.as_bytes(), &url, &posted);
        let press = cfg.key_press(&url, &gather, &posted, Some(&sig)).unwrap();
        assert_eq!(press.gather.as_ref().and_then(|g| g.team()), Some("acme"));
        assert!(press.pressed);
        assert_eq!(press.call_sid, "CA1");
        assert!(matches!(
            cfg.key_press(&url, &gather, &posted, Some("wrong")),
            Err(Error::InvalidSignature(_))
        ));
        assert!(matches!(
            cfg.key_press(&url, &gather, &posted, None),
            Err(Error::InvalidSignature(_))
        ));
        // No key, a blank one, or a URL that names no call.
        for (digits, named) in [
            (None, gather.as_str()),
            (Some(" "), gather.as_str()),
            (Some("1"), "nope"),
        ] {
            let url = gather_url("http://gateway.test", "voice", named);
            let mut posted = fields(&[("CallSid", "CA1")]);
            posted.extend(digits.map(|d| ("Digits".to_string(), d.to_string())));
            let sig = twilio_signature(TOKEN.as_bytes(), &url, &posted);
            let press = cfg.key_press(&url, named, &posted, Some(&sig)).unwrap();
            assert!(
                !(press.pressed && press.gather.is_some()),
                "{digits:?} {named}"
            );
        }
    }

    #[test]
    fn a_status_callback_is_checked_then_read() {
        let cfg = config("https://api.twilio.com", None);
        let url = status_callback("http://gateway.test", "voice");
        let posted = fields(&[("CallSid", "CA1"), ("CallStatus", "busy")]);
        let sig = twilio_signature(TOKEN.as_bytes(), &url, &posted);
        let report = cfg.receipt(&url, &posted, Some(&sig)).unwrap().unwrap();
        assert_eq!(report.message_id, "CA1");
        assert_eq!(report.error.unwrap().code, "busy");
        assert!(matches!(
            cfg.receipt(&url, &posted, Some("wrong")),
            Err(Error::InvalidSignature(_))
        ));
        assert!(matches!(
            cfg.receipt(&url, &posted, None),
            Err(Error::InvalidSignature(_))
        ));
        let unread = fields(&[("CallSid", "CA1")]);
        let sig = twilio_signature(TOKEN.as_bytes(), &url, &unread);
        assert!(matches!(
            cfg.receipt(&url, &unread, Some(&sig)),
            Err(Error::BadRequest(_))
        ));
        let answered = fields(&[("CallSid", "CA1"), ("CallStatus", "answered")]);
        let sig = twilio_signature(TOKEN.as_bytes(), &url, &answered);
        assert_eq!(cfg.receipt(&url, &answered, Some(&sig)).unwrap(), None);
    }
}
