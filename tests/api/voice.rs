//! Codes read by a voice call (docs/api.md#codes-read-by-a-voice-call),
//! against a fake Twilio: the call's form and TwiML (never the code), the
//! signed key press that reads the code (three times at most), the press
//! refused or answered "unavailable", the call's status callbacks, a
//! ladder from a failed SMS to a heard call, the voice destination rules
//! and the send limit a number's SMS and calls share; on both stores.
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

const PHONE: &str = "+447400123456";
const VOICE_TOKEN: &str = "voice-test-token";
const VOICE: &str = "name = \"voice\"\nkind = \"twilio_voice\"\nbase_url = \"{CHAT_URL}/voice\"\naccount_sid = \"ACvoice\"\nauth_token = \"${CG_TEST_UNSET_VOICE:-voice-test-token}\"\nfrom = \"+15550001111\"\nlanguages = { en = \"en-GB\", es = \"es-MX\" }\nvoice = \"Polly.Amy\"\n";
const STATUS_URL: &str = "http://gateway.test/v1/providers/twilio-voice/voice/status";

/// Acme with the `voice` channel as its `voice_channel` and `otp` lines
/// in `[settings.otp]`.
pub(crate) fn voice(otp: &str) -> Setup {
    Setup {
        unlisted_channels: vec![("voice".into(), VOICE.into())],
        voice_channel: Some("voice".into()),
        team_extra: format!("[settings.otp]\n{otp}\n"),
        ..Setup::default()
    }
}

/// Makes the fake Twilio take calls (sid `CA1`) and SMS (sid `SM1`).
pub(crate) async fn twilio_takes(app: &TestApp) {
    for (p, sid) in [("/Calls.json$", "CA1"), ("/Messages.json$", "SM1")] {
        Mock::given(method("POST"))
            .and(path_regex(p))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": sid})))
            .with_priority(1)
            .mount(&app.chat)
            .await;
    }
}

/// The form of each call the fake Twilio received.
async fn calls(app: &TestApp) -> Vec<Vec<(String, String)>> {
    let requests = app.chat.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with("/Calls.json"))
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect()
}

fn field<'f>(form: &'f [(String, String)], name: &str) -> &'f str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {form:?}"))
}

/// The gather URL of the last call's TwiML.
async fn gather_url(app: &TestApp) -> String {
    let calls = calls(app).await;
    let twiml = field(calls.last().expect("a call"), "Twiml").to_string();
    let at = twiml.find("action=\"").unwrap() + "action=\"".len();
    twiml[at..].split('"').next().unwrap().to_string()
}

async fn with_phone(app: &TestApp, phone: &str) -> String {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
            "contact": {"phone": phone}}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

async fn start_voice(app: &TestApp, id: &str) -> reqwest::Response {
    crate::challenges::start(app, id, json!({"method": "otp", "delivery": "voice"})).await
}

/// A call to `PHONE`: (interaction, challenge, gather URL).
pub(crate) async fn called(app: &TestApp) -> (String, String, String) {
    let id = with_phone(app, PHONE).await;
    let res = start_voice(app, &id).await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    (id, cid, gather_url(app).await)
}

/// Posts `fields` to `url` (a full public URL), signed under `token`
/// (`None`: unsigned).
async fn post_signed(
    app: &TestApp,
    url: &str,
    fields: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let route = url.trim_start_matches("http://gateway.test");
    let mut rb = app
        .request(reqwest::Method::POST, route, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        let sig = chatgate::channels::twilio::twilio_signature(token.as_bytes(), url, &fields);
        rb = rb.header("x-twilio-signature", sig);
    }
    rb.send().await.unwrap()
}

/// A signed press of key 1 on the call of `url`: its TwiML.
pub(crate) async fn press(app: &TestApp, url: &str) -> String {
    let res = post_signed(
        app,
        url,
        &[("CallSid", "CA1"), ("Digits", "1")],
        Some(VOICE_TOKEN),
    )
    .await;
    assert_eq!(res.status(), 200);
    let kind = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(kind.starts_with("text/xml"), "{kind}");
    res.text().await.unwrap()
}

async fn call_status(app: &TestApp, status: &str) {
    let fields = [("CallSid", "CA1"), ("CallStatus", status)];
    let res = post_signed(app, STATUS_URL, &fields, Some(VOICE_TOKEN)).await;
    assert_eq!(res.status(), 200, "{status}");
}

async fn read(app: &TestApp, id: &str, cid: &str) -> Value {
    let res = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/interactions/{id}/challenges/{cid}"),
            Some(&app.keys.bot),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

const UNAVAILABLE: &str = "<Response><Say language=\"en-GB\" voice=\"Polly.Amy\">This code is no longer available. Goodbye.</Say><Hangup/></Response>";

/// The TwiML that reads `code`.
fn reading(code: &str) -> String {
    let spoken: Vec<String> = code.chars().map(String::from).collect();
    let say = format!(
        "<Say language=\"en-GB\" voice=\"Polly.Amy\">Your verification code is {}.</Say>",
        spoken.join(", ")
    );
    format!("<Response>{say}{say}<Hangup/></Response>")
}

/// The code a reading says.
fn code_of(twiml: &str) -> String {
    let said = twiml
        .split("is ")
        .nth(1)
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    said.replace(", ", "")
}

/// Masks the digits of a reading, for printing.
fn masked(twiml: &str) -> String {
    twiml
        .chars()
        .map(|c| if c.is_ascii_digit() { '•' } else { c })
        .collect()
}

both_stores!(
    a_call_asks_for_a_key_and_the_signed_press_reads_the_code_twice,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let res = start_voice(&app, &id).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
assert_eq!(c["delivery"], "voice");
        assert_eq!(c["delivery_status"], "accepted");
        let cid = c["challenge_id"].as_str().unwrap().to_string();

        let calls = calls(&app).await;
        assert_eq!(calls.len(), 1);
        let form = &calls[0];
        let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["To", "From", "StatusCallback", "StatusCallbackEvent", "Twiml"]);
        assert_eq!(field(form, "To"), PHONE);
        assert_eq!(field(form, "From"), "+15550001111");
        assert_eq!(field(form, "StatusCallback"), STATUS_URL);
        assert_eq!(field(form, "StatusCallbackEvent"), "initiated ringing answered completed");
        let twiml = field(form, "Twiml");
        println!("the call's TwiML: {twiml}");
        let url = gather_url(&app).await;
        let gather = url.rsplit('/').next().unwrap();
        let (random, team) = gather.split_once('.').unwrap();
        assert_eq!((random.len(), team), (32, "acme"), "128 random bits in hex, and its team: {gather}");
        assert!(!url.contains(&id) && !url.contains(&cid), "opaque: {url}");
        assert_eq!(
            twiml,
            format!("<Response><Gather numDigits=\"1\" timeout=\"10\" action=\"{url}\"><Say language=\"en-GB\" voice=\"Polly.Amy\">Press any key to hear your verification code.</Say></Gather><Hangup/></Response>")
        );

        let heard = press(&app, &url).await;
        let code = code_of(&heard);
        assert_eq!(code.len(), 6);
        assert!(!twiml.contains(&code), "the call never holds the code");
        assert_eq!(heard, reading(&code));
        println!("the press's TwiML: {}", masked(&heard));
        let read_back = read(&app, &id, &cid).await;
        assert_eq!(read_back["delivery_status"], "delivered");
        assert_eq!(read_back["channel"], "voice");

        // The code read aloud is the challenge's; once used, a press reads it no more.
        assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        assert_eq!(press(&app, &url).await, UNAVAILABLE);
    }
);

both_stores!(
    a_code_is_read_three_times_and_the_fourth_press_hears_it_is_gone,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let (_, _, url) = called(&app).await;
        let first = press(&app, &url).await;
        let code = code_of(&first);
        assert_eq!(press(&app, &url).await, reading(&code));
        assert_eq!(press(&app, &url).await, reading(&code));
        assert_eq!(press(&app, &url).await, UNAVAILABLE);
    }
);

both_stores!(
    of_presses_at_once_exactly_three_read_the_code,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let (_, _, url) = called(&app).await;
        let presses = (0..8).map(|_| press(&app, &url));
        let answers = futures::future::join_all(presses).await;
        let read = answers.iter().filter(|a| a.contains("Your verification code is")).count();
        assert_eq!(read, 3, "{answers:?}");
        assert_eq!(answers.iter().filter(|a| *a == UNAVAILABLE).count(), 5);
    }
);

both_stores!(
    a_press_unsigned_or_wrongly_signed_is_401_and_reads_nothing,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let (id, cid, url) = called(&app).await;
        let fields = [("CallSid", "CA1"), ("Digits", "1")];
        for token in [None, Some("another-token")] {
            let res = post_signed(&app, &url, &fields, token).await;
            assert_eq!(res.status(), 401);
            let p: Value = res.json().await.unwrap();
            assert_eq!(p["code"], "invalid_signature");
        }
        // Nothing was read: three readings are still left.
        assert_eq!(read(&app, &id, &cid).await["delivery_status"], "accepted");
        for _ in 0..3 {
            assert!(press(&app, &url).await.contains("Your verification code is"));
        }
    }
);

both_stores!(
    a_press_for_a_call_the_gateway_never_placed_or_after_expiry_is_unavailable,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let base = "http://gateway.test/v1/providers/twilio-voice/voice/gather/";
        for unknown in ["00112233445566778899aabbccddeeff", "not-an-id"] {
            assert_eq!(press(&app, &format!("{base}{unknown}")).await, UNAVAILABLE, "{unknown}");
        }
        let (_, _, url) = called(&app).await;
        app.advance(10 * 60);
        assert_eq!(press(&app, &url).await, UNAVAILABLE);
        // A channel of another kind has no gather route.
        let sms = "http://gateway.test/v1/providers/twilio-voice/sms/gather/00112233445566778899aabbccddeeff";
        let res = post_signed(&app, sms, &[("Digits", "1")], Some(VOICE_TOKEN)).await;
        assert_eq!(res.status(), 404);
    }
);

/// Whether the record of the call of `url` (the code sealed) is in the
/// store.
async fn call_record_kept(app: &TestApp, url: &str) -> bool {
    let gather = url.rsplit('/').next().unwrap();
    let key = chatgate::store::keys::gather("acme", "voice", gather);
    let got = app.gateway.store().get(&[key]).await.unwrap();
    got[0].is_some()
}

both_stores!(
    the_call_s_record_is_gone_in_the_commit_that_ends_its_challenge,
    setup: voice("max_sends = 100"),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        // Verified.
        let (id, cid, url) = called(&app).await;
        let code = code_of(&press(&app, &url).await);
        assert!(call_record_kept(&app, &url).await, "kept while the challenge is open");
        assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        assert!(!call_record_kept(&app, &url).await, "gone once verified");
        // Replaced by a newer challenge, whose own call is kept.
        let (id, _, url) = called(&app).await;
        assert_eq!(start_voice(&app, &id).await.status(), 201);
        assert!(!call_record_kept(&app, &url).await, "gone once replaced");
        assert!(call_record_kept(&app, &gather_url(&app).await).await);
        // Exhausted.
        let (id, cid, url) = called(&app).await;
        let wrong = if code_of(&press(&app, &url).await) == "000000" { "111111" } else { "000000" };
        for _ in 0..3 {
            app.verify_code(&id, &cid, wrong).await;
        }
        assert!(!call_record_kept(&app, &url).await, "gone once exhausted");
        assert_eq!(press(&app, &url).await, UNAVAILABLE);
    }
);

both_stores!(
    a_new_challenge_leaves_the_old_call_unavailable,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let (id, _, url) = called(&app).await;
        assert_eq!(start_voice(&app, &id).await.status(), 201);
        assert_eq!(press(&app, &url).await, UNAVAILABLE);
    }
);

both_stores!(
    call_statuses_move_the_delivery_status,
    setup: voice("max_sends = 100"),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        for status in ["initiated", "ringing", "in-progress"] {
            let (id, cid, _) = called(&app).await;
            call_status(&app, status).await;
            let c = read(&app, &id, &cid).await;
            assert_eq!((c["delivery_status"].as_str(), &c["delivery_error"]), (Some("sent"), &Value::Null), "{status}");
        }
        for status in ["busy", "no-answer", "failed", "canceled"] {
            let (id, cid, _) = called(&app).await;
            call_status(&app, status).await;
            let c = read(&app, &id, &cid).await;
            assert_eq!(c["delivery_status"], "failed", "{status}");
            assert_eq!(c["delivery_error"], json!({"code": status, "title": null}));
        }
        // Completed without a reading: not heard.
        let (id, cid, _) = called(&app).await;
        call_status(&app, "completed").await;
        let c = read(&app, &id, &cid).await;
        assert_eq!(c["delivery_status"], "failed");
        assert_eq!(c["delivery_error"], json!({"code": "not_heard", "title": null}));
        // Completed after a reading: delivered it stays.
        let (id, cid, url) = called(&app).await;
        press(&app, &url).await;
        call_status(&app, "completed").await;
        assert_eq!(read(&app, &id, &cid).await["delivery_status"], "delivered");
        // Unsigned: 401, nothing changes.
        let (id, cid, _) = called(&app).await;
        let res = post_signed(&app, STATUS_URL, &[("CallSid", "CA1"), ("CallStatus", "busy")], None).await;
        assert_eq!(res.status(), 401);
        assert_eq!(read(&app, &id, &cid).await["delivery_status"], "accepted");
    }
);

both_stores!(
    a_ladder_moves_from_a_failed_sms_to_a_call_that_is_heard,
    setup: {
        let mut s = voice("ladder = [\"sms\", \"voice\"]");
        s.voice_channel = None;
        s
    },
    |mut app: TestApp| async move {
        twilio_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let res = crate::challenges::start(&app, &id, json!({"method": "otp", "delivery": "ladder"})).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "sms");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let mut events = Vec::new();
        // The SMS is reported failed: the same code goes out by call.
        let fields = [("MessageSid", "SM1"), ("MessageStatus", "undelivered"), ("ErrorCode", "30003")];
        let res = post_signed(&app, "http://gateway.test/v1/providers/twilio/sms/status", &fields, Some("twilio-test-token")).await;
        assert_eq!(res.status(), 200);
        let advanced = app.next_event("challenge.advanced", Duration::from_secs(5)).await.expect("advanced");
        events.push(("challenge.advanced", event_data(&advanced)));
        let url = gather_url(&app).await;
        let heard = press(&app, &url).await;
        let delivered = app.next_event("challenge.delivered", Duration::from_secs(5)).await.expect("delivered");
        events.push(("challenge.delivered", event_data(&delivered)));
        for (kind, data) in &events {
            println!("{kind}: {data}");
        }
        assert_eq!(events[0].1["previous_channel"], "sms");
        assert_eq!(events[0].1["reason"], "failed");
        assert_eq!(events[0].1["challenge"]["channel"], "voice");
        assert_eq!(events[1].1["challenge"]["channel"], "voice");
        assert_eq!(events[1].1["challenge"]["delivery_status"], "delivered");
        assert_eq!(app.verify_code(&id, &cid, &code_of(&heard)).await.status(), 200);
        assert_eq!(app.get(&id).await["via"], json!(["sms", "voice"]));
    }
);

both_stores!(
    voice_regions_refuse_a_call_the_sms_rules_allow,
    setup: voice("voice_regions = [\"US\"]\nsms_regions = [\"GB\"]"),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let res = start_voice(&app, &id).await;
        assert_eq!(res.status(), 403);
        let p: Value = res.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains("otp.voice_regions"), "{p}");
        assert!(calls(&app).await.is_empty());
        let res = crate::challenges::start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(res.status(), 201);
        let us = with_phone(&app, "+12024561111").await;
        assert_eq!(start_voice(&app, &us).await.status(), 201);
    }
);

both_stores!(
    sms_and_calls_to_one_number_share_its_send_limit,
    setup: voice("max_sends = 2"),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let a = with_phone(&app, PHONE).await;
        let sms = crate::challenges::start(&app, &a, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(sms.status(), 201);
        // The same number written another way is the same destination.
        let b = with_phone(&app, "+4407400123456").await;
        assert_eq!(start_voice(&app, &b).await.status(), 201);
        let c = with_phone(&app, PHONE).await;
        assert_eq!(start_voice(&app, &c).await.status(), 429);
        assert_eq!(calls(&app).await.len(), 1);
    }
);

both_stores!(
    a_team_without_a_voice_channel_answers_422,
    |app: TestApp| async move {
        let id = with_phone(&app, PHONE).await;
        let res = start_voice(&app, &id).await;
        assert_eq!(res.status(), 422);
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["code"], "invalid_request", "{p}");
        assert!(p["detail"].as_str().unwrap().contains("delivery"), "{p}");
    }
);

both_stores!(
    a_payment_s_call_reads_its_amount_and_payee_with_the_code,
    setup: voice(""),
    |app: TestApp| async move {
        twilio_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let payment = json!({"type": "payment", "amount": "120.00", "currency": "EUR",
                             "payee": "Smith & Sons"});
        let res = crate::challenges::start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "voice", "transaction": payment}),
        )
        .await;
        assert_eq!(res.status(), 201);
        let url = gather_url(&app).await;
        let twiml = field(calls(&app).await.last().unwrap(), "Twiml").to_string();
        assert!(twiml.contains("Press any key to hear your verification code."), "{twiml}");
        let heard = press(&app, &url).await;
        let code = heard
            .split(" is ")
            .nth(1)
            .unwrap()
            .split('.')
            .next()
            .unwrap()
            .replace(", ", "");
        let spoken: Vec<String> = code.chars().map(String::from).collect();
        let say = format!(
            "<Say language=\"en-GB\" voice=\"Polly.Amy\">Your code to pay 120.00 EUR to Smith &amp; Sons is {}.</Say>",
            spoken.join(", ")
        );
        assert_eq!(heard, format!("<Response>{say}{say}<Hangup/></Response>"));
    }
);
