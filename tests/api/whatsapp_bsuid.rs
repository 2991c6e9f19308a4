//! WhatsApp conversations named by a business-scoped user id
//! (docs/channels.md#business-scoped-user-ids), against fakes of the Cloud
//! API built from Meta's published examples (a send with `recipient`, its
//! answer naming `contacts[].user_id`, the refusal `131062`) and of
//! Twilio's Messages API: the id is kept and sent exactly as given, in
//! `recipient` and never `to`; a malformed id is 422; a code never goes
//! to it as an authentication template (422; a ladder's WhatsApp step goes
//! to the contact's number); a `131062` refusal is a failed send; no
//! number check or SMS rule reads it; the read says `conversation_kind`;
//! on both stores.
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const BSUID: &str = "US.13491208655302741918";
const PARENT: &str = "US.ENT.11815799212886844830";
const PHONE: &str = "+447400123456";

/// Runs `$body(backend)` on each store.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                ($body)(Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                ($body)(Backend::Redis).await;
            }
        }
    };
}

/// A `whatsapp` channel `name` on the fake at `base`, sending from the
/// number id `number_id`, with more keys `keys`.
fn wa(name: &str, base: &str, number_id: &str, keys: &str) -> (String, String) {
    let file = format!(
        "name = \"{name}\"\nkind = \"whatsapp\"\nbase_url = \"{base}\"\napi_version = \"v21.0\"\n\
         phone_number_id = \"{number_id}\"\ntoken = \"${{CG_TEST_UNSET_WA:-wa-token}}\"\n{keys}"
    );
    (name.to_string(), file)
}

/// A `twilio` channel `name` sending WhatsApp, on the fake at `base`.
fn twa(name: &str, base: &str, keys: &str) -> (String, String) {
    let file = format!(
        "name = \"{name}\"\nkind = \"twilio\"\nbase_url = \"{base}\"\naccount_sid = \"AC123\"\n\
         auth_token = \"${{CG_TEST_UNSET_TWILIO:-twilio-test-token}}\"\n\
         from = \"whatsapp:+15550007777\"\n{keys}"
    );
    (name.to_string(), file)
}

/// A fake Cloud API: number id `1065` accepts every message as Meta's
/// example answers a send to a business-scoped user id; `2065` refuses
/// every one with `131062`.
async fn cloud_api() -> MockServer {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/1065/messages"))
        .and(header("authorization", "Bearer wa-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": BSUID, "user_id": BSUID}],
            "messages": [{"id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI"}]
        })))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/v21.0/2065/messages"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": {
                "message": "(#131062) Business-scoped User ID recipients are not supported for this message.",
                "type": "OAuthException",
                "code": 131062,
                "error_data": {
                    "messaging_product": "whatsapp",
                    "details": "Business-scoped User ID recipients are not supported for this message."
                },
                "fbtrace_id": "AbCdEf"
            }
        })))
        .mount(&provider)
        .await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&provider)
        .await;
    provider
}

/// Acme with `wa` (text), `wa_tpl` (an authentication template),
/// `wa_refusing` (answers 131062), `twa` and `twa_tpl` (Twilio WhatsApp,
/// the second with a Content template), all on `provider`; `team_extra`
/// appended to the team file. The SMS rules allow Great Britain alone.
async fn app(backend: Backend, provider: &MockServer, team_extra: &str) -> Option<TestApp> {
    let base = provider.uri();
    let setup = Setup {
        extra_channels: vec![
            wa("wa", &base, "1065", ""),
            wa(
                "wa_tpl",
                &base,
                "1065",
                "otp_template = \"chatgate_otp\"\notp_template_language = \"en_US\"\n",
            ),
            wa("wa_refusing", &base, "2065", ""),
            twa("twa", &base, ""),
            twa("twa_tpl", &base, "otp_content_sid = \"HXabc\"\n"),
        ],
        team_extra: format!("[settings.otp]\nsms_regions = [\"GB\"]\n{team_extra}\n"),
        ..Setup::default()
    };
    spawn_with(backend, setup).await
}

/// The JSON bodies the fake Cloud API received.
async fn cloud_bodies(provider: &MockServer) -> Vec<Value> {
    let requests = provider.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/messages"))
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

/// The forms the fake Twilio received.
async fn twilio_forms(provider: &MockServer) -> Vec<Vec<(String, String)>> {
    let requests = provider.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/Messages.json"))
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect()
}

fn field<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The six-digit code in a message's text.
fn code_in(text: &str) -> String {
    let digits: Vec<char> = text.chars().collect();
    digits
        .windows(6)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .unwrap_or_else(|| panic!("no code in {text:?}"))
}

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/v1/interactions", Some(&app.keys.bot), &body)
        .await
}

/// A new interaction on `channel` in conversation `conversation`: its
/// answer.
async fn created(app: &TestApp, channel: &str, conversation: &str, contact: Value) -> Value {
    let res = create(
        app,
        json!({"channel": channel, "conversation_id": conversation, "contact": contact}),
    )
    .await;
    assert_eq!(res.status(), 201, "{channel} {conversation}");
    res.json().await.unwrap()
}

async fn start(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    crate::challenges::start(app, id, body).await
}

async fn bsuid_conversation_takes_a_link_and_a_code_by_recipient(backend: Backend) {
    let provider = cloud_api().await;
    let Some(app) = app(backend, &provider, "").await else {
        return;
    };
    let v = created(&app, "wa", BSUID, json!({})).await;
    assert_eq!(v["conversation_id"], BSUID);
    assert_eq!(v["conversation_kind"], "bsuid");
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(app.get(&id).await["conversation_kind"], "bsuid");

    // A login link goes with `recipient`, never `to`.
    app.issue_link(&id, json!({"deliver": true})).await;
    let bodies = cloud_bodies(&provider).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["recipient"], BSUID);
    assert!(bodies[0].get("to").is_none(), "{}", bodies[0]);
    assert_eq!(bodies[0]["type"], "text");

    // A code too; the SMS rules (Great Britain only) do not read the id.
    let res = start(&app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["delivered"], true, "{challenge}");
    let bodies = cloud_bodies(&provider).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["recipient"], BSUID);
    assert!(bodies[1].get("to").is_none(), "{}", bodies[1]);
    let code = code_in(bodies[1]["text"]["body"].as_str().unwrap());
    let cid = challenge["challenge_id"].as_str().unwrap();
    assert_eq!(app.verify_code(&id, cid, &code).await.status(), 200);
    let read = app.get(&id).await;
    assert_eq!(read["status"], "authenticated");
    assert_eq!(read["via"], json!(["wa"]));

    // A parent id, kept as given.
    let v = created(&app, "wa", PARENT, json!({})).await;
    assert_eq!(
        (&v["conversation_id"], &v["conversation_kind"]),
        (&json!(PARENT), &json!("bsuid"))
    );
    // A number conversation says so; other channels say nothing.
    let v = created(&app, "wa", "447400123456", json!({})).await;
    assert_eq!(
        (&v["conversation_id"], &v["conversation_kind"]),
        (&json!(PHONE), &json!("number"))
    );
    let v = created(&app, "webchat", BSUID, json!({})).await;
    assert!(v.get("conversation_kind").is_none(), "{v}");
    let id = v["id"].as_str().unwrap();
    assert!(app.get(id).await.get("conversation_kind").is_none());
}

both!(
    whatsapp_bsuid_conversation_takes_a_link_and_a_code_by_recipient,
    bsuid_conversation_takes_a_link_and_a_code_by_recipient
);

async fn a_malformed_id_is_422_naming_conversation_id(backend: Backend) {
    let provider = cloud_api().await;
    let Some(app) = app(backend, &provider, "").await else {
        return;
    };
    let too_long = format!("US.{}", "1".repeat(257));
    for channel in ["wa", "twa"] {
        for bad in [
            "us.13491208655302741918",
            "USA.13491208655302741918",
            "US.",
            "US.ENT.",
            "US.1349-1208",
            "US.ENT.ENT.1",
            "US 13491208655302741918",
            "not-a-number",
            too_long.as_str(),
        ] {
            let res = create(&app, json!({"channel": channel, "conversation_id": bad})).await;
            assert_eq!(res.status(), 422, "{channel} {bad}");
            let problem: Value = res.json().await.unwrap();
            let detail = problem["detail"].as_str().unwrap_or_default();
            assert!(detail.starts_with("conversation_id"), "{problem}");
        }
        // The longest id is one.
        let longest = format!("DE.ENT.{}", "a".repeat(256));
        let v = created(&app, channel, &longest, json!({})).await;
        assert_eq!(v["conversation_id"], longest.as_str());
    }
    // Twilio's WhatsApp conversations are numbers or ids too.
    let v = created(&app, "twa", "+15552223333", json!({})).await;
    assert_eq!(v["conversation_kind"], "number");
    let v = created(&app, "twa", PARENT, json!({})).await;
    assert_eq!(v["conversation_kind"], "bsuid");
    // Nothing was sent.
    assert!(provider.received_requests().await.unwrap().is_empty());
}

both!(
    whatsapp_malformed_bsuid_is_422,
    a_malformed_id_is_422_naming_conversation_id
);

async fn a_template_channel_refuses_a_code_to_an_id(backend: Backend) {
    let provider = cloud_api().await;
    let Some(app) = app(backend, &provider, "ladder = [\"wa_tpl\", \"sms\"]").await else {
        return;
    };
    for channel in ["wa_tpl", "twa_tpl"] {
        let v = created(&app, channel, BSUID, json!({})).await;
        let id = v["id"].as_str().unwrap().to_string();
        let res = start(&app, &id, json!({"method": "otp"})).await;
        assert_eq!(res.status(), 422, "{channel}");
        let problem: Value = res.json().await.unwrap();
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("delivery"), "{problem}");
        assert!(detail.contains("business-scoped user id"), "{problem}");
        assert!(!detail.contains(BSUID), "{problem}");
        assert!(app.get(&id).await["open_challenge"].is_null());
        assert!(
            provider.received_requests().await.unwrap().is_empty(),
            "{channel}: nothing sent"
        );
    }
    // A link on the same channel is text: it goes, with `recipient`.
    let v = created(&app, "wa_tpl", "BR.a1B2c3", json!({})).await;
    let id = v["id"].as_str().unwrap().to_string();
    app.issue_link(&id, json!({"deliver": true})).await;
    let bodies = cloud_bodies(&provider).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        (&bodies[0]["recipient"], &bodies[0]["type"]),
        (&json!("BR.a1B2c3"), &json!("text"))
    );

    // A ladder's WhatsApp step never sends to the id: without a phone it
    // is passed over (and the SMS step too: 422)…
    let res = start(&app, &id, json!({"method": "otp", "delivery": "ladder"})).await;
    assert_eq!(res.status(), 422);
    assert_eq!(cloud_bodies(&provider).await.len(), 1);
    // …with one, the template goes to that number.
    let v = created(&app, "wa_tpl", PARENT, json!({"phone": PHONE})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start(&app, &id, json!({"method": "otp", "delivery": "ladder"})).await;
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["channel"], "wa_tpl", "{challenge}");
    let bodies = cloud_bodies(&provider).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(
        (&bodies[1]["to"], &bodies[1]["type"]),
        (&json!(PHONE), &json!("template"))
    );
    assert!(bodies[1].get("recipient").is_none(), "{}", bodies[1]);
}

both!(
    whatsapp_template_channel_refuses_a_code_to_a_bsuid,
    a_template_channel_refuses_a_code_to_an_id
);

async fn a_131062_refusal_fails_the_send(backend: Backend) {
    let provider = cloud_api().await;
    let ladder = "ladder = [\"wa_refusing\", \"sms\"]";
    let Some(app) = app(backend, &provider, ladder).await else {
        return;
    };
    // A single delivery: 502 channel_error, nothing opened.
    let v = created(&app, "wa_refusing", BSUID, json!({})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start(&app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 502);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "channel_error", "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("131062"), "{problem}");
    assert!(!detail.contains(BSUID), "{problem}");
    assert!(app.get(&id).await["open_challenge"].is_null());

    // A ladder: the refused step failed, the next one took the code.
    let v = created(&app, "wa_refusing", PARENT, json!({"phone": PHONE})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start(&app, &id, json!({"method": "otp", "delivery": "ladder"})).await;
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["channel"], "sms", "{challenge}");
    let refused = cloud_bodies(&provider).await;
    assert_eq!(refused.len(), 2, "{refused:?}");
}

both!(
    whatsapp_131062_fails_the_step,
    a_131062_refusal_fails_the_send
);

async fn twilio_sends_to_whatsapp_and_the_id(backend: Backend) {
    let provider = cloud_api().await;
    let Some(app) = app(backend, &provider, "").await else {
        return;
    };
    let v = created(&app, "twa", PARENT, json!({})).await;
    assert_eq!(v["conversation_kind"], "bsuid");
    let id = v["id"].as_str().unwrap().to_string();
    app.issue_link(&id, json!({"deliver": true})).await;
    let res = start(&app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    let forms = twilio_forms(&provider).await;
    assert_eq!(forms.len(), 2, "{forms:?}");
    for form in &forms {
        assert_eq!(
            field(form, "To"),
            Some(format!("whatsapp:{PARENT}").as_str())
        );
        assert_eq!(field(form, "From"), Some("whatsapp:+15550007777"));
    }
    let code = code_in(field(&forms[1], "Body").unwrap());
    let cid = challenge["challenge_id"].as_str().unwrap();
    assert_eq!(app.verify_code(&id, cid, &code).await.status(), 200);
}

both!(
    twilio_whatsapp_sends_to_the_bsuid,
    twilio_sends_to_whatsapp_and_the_id
);

async fn no_number_check_is_asked_for_an_id(backend: Backend) {
    let provider = cloud_api().await;
    let op = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "op-token-1", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .mount(&op)
        .await;
    Mock::given(method("POST"))
        .and(path("/sim-swap/v2/check"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"swapped": true})))
        .mount(&op)
        .await;
    let checks = format!(
        "[number_checks]\nkind = \"camara\"\nsim_swap_url = \"{u}/sim-swap/v2\"\n\
         token_url = \"{u}/token\"\nclient_id = \"chatgate\"\nclient_secret = \"op-secret\"\n",
        u = op.uri()
    );
    let Some(app) = app(backend, &provider, &format!("\n{checks}")).await else {
        return;
    };
    let v = created(&app, "wa", BSUID, json!({})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start(&app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    assert!(
        op.received_requests().await.unwrap().is_empty(),
        "no number check"
    );
    assert_eq!(cloud_bodies(&provider).await.len(), 1);
    // The same chat named by a swapped number is checked, and refused.
    let v = created(&app, "wa", PHONE, json!({})).await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = start(&app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 403);
    assert!(!op.received_requests().await.unwrap().is_empty());
}

both!(
    whatsapp_bsuid_asks_no_number_check,
    no_number_check_is_asked_for_an_id
);
