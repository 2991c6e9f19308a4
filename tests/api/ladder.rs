//! The delivery ladder (docs/api.md#delivery-ladder): one code on the
//! team's `otp.ladder` steps in turn — which steps are skipped, a
//! provider's refusal, moving on by request and by time (also across a
//! restart and with two instances), `via` and `otp_via`, and the
//! `telegram_gateway` kind (its request, its signed reports, its revoke),
//! and receipts: a failed step hands the code on, the last one's failure
//! is `challenge.undelivered`, an earlier step's late report changes
//! nothing; moves at once (one records and sends, none after the code's
//! use, never past a destination's limit), and a step whose sender dies
//! midway (a dropped task, a process killed or stopped) sent once more.
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

pub(crate) const PHONE: &str = "+447400123456";

const WA: &str = "kind = \"whatsapp\"\nbase_url = \"{CHAT_URL}/wa\"\nphone_number_id = \"PNID\"\ntoken = \"${CG_TEST_UNSET_WA:-wa-test-token}\"\napp_secret = \"${CG_TEST_UNSET_WA_SECRET:-wa-app-secret}\"\n";
const WA_SECRET: &str = "wa-app-secret";
const TWILIO_TOKEN: &str = "twilio-test-token";
pub(crate) const TG: &str = "kind = \"telegram_gateway\"\nbase_url = \"{CHAT_URL}/tg\"\ntoken = \"${CG_TEST_UNSET_TG:-tg-test-token}\"\n";
const TG_TOKEN: &str = "tg-test-token";

/// Acme with channels `wa` (WhatsApp) and `tg` (Telegram's gateway, in no
/// team's channels), the ladder `steps` and more `[settings.otp]` lines.
pub(crate) fn ladder(steps: &[&str], otp: &str) -> Setup {
    Setup {
        extra_channels: vec![("wa".into(), format!("name = \"wa\"\n{WA}"))],
        unlisted_channels: vec![("tg".into(), format!("name = \"tg\"\n{TG}"))],
        team_extra: format!("[settings.otp]\nladder = {steps:?}\n{otp}\n"),
        ..Setup::default()
    }
}

pub(crate) async fn with_phone(app: &TestApp, phone: &str) -> String {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
            "contact": {"phone": phone}}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

pub(crate) async fn start_ladder(app: &TestApp, id: &str) -> reqwest::Response {
    crate::challenges::start(app, id, json!({"method": "otp", "delivery": "ladder"})).await
}

pub(crate) async fn advance(app: &TestApp, id: &str, cid: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges/{cid}/advance"),
        Some(&app.keys.bot),
        &json!({}),
    )
    .await
}

/// Asks `app` to move `id`'s ladder on and goes after `patience`: the
/// move is recorded and its send begun, its sender left waiting on the
/// provider (the request, and the task acting on it, dropped mid-send).
pub(crate) async fn advance_and_leave(app: &TestApp, id: &str, cid: &str, patience: Duration) {
    let impatient = reqwest::Client::builder()
        .timeout(patience)
        .build()
        .unwrap();
    let left = impatient
        .post(app.url(&format!("/v1/interactions/{id}/challenges/{cid}/advance")))
        .bearer_auth(&app.keys.bot)
        .json(&json!({}))
        .send()
        .await;
    assert!(left.is_err(), "the move was still sending when left");
}

fn digits(text: &str) -> String {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .unwrap_or_default()
        .to_string()
}

/// The codes each fake provider received, in order: `(step, code)`.
pub(crate) async fn sent(app: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in app.chat.received_requests().await.unwrap_or_default() {
        let p = r.url.path();
        if p.starts_with("/wa/") {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            out.push(("wa".into(), digits(v["text"]["body"].as_str().unwrap())));
        } else if p.ends_with("/Messages.json") {
            let body: Vec<(String, String)> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            let text = &body.iter().find(|(k, _)| k == "Body").unwrap().1;
            out.push(("sms".into(), digits(text)));
        } else if p.ends_with("/sendVerificationMessage") {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            out.push(("tg".into(), v["code"].as_str().unwrap().to_string()));
        }
    }
    out
}

/// Makes the fake WhatsApp refuse every message.
async fn wa_refuses(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path_regex("^/wa/"))
        .respond_with(ResponseTemplate::new(500))
        .with_priority(1)
        .mount(&app.chat)
        .await;
}

/// Makes the fake Telegram gateway take codes (`request_id` `req-1`).
pub(crate) async fn tg_takes(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path("/tg/sendVerificationMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"ok": true, "result": {"request_id": "req-1", "phone_number": PHONE}}),
        ))
        .with_priority(1)
        .mount(&app.chat)
        .await;
    Mock::given(method("POST"))
        .and(path("/tg/revokeVerificationMessage"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true, "result": true})))
        .with_priority(1)
        .mount(&app.chat)
        .await;
}

both_stores!(
    one_code_goes_out_on_each_step_in_turn_and_via_names_them,
    setup: {
        let mut s = ladder(&["wa", "sms"], "");
        s.team_extra += "[settings.intents.pay]\notp_via = [\"sms\"]\n[settings.intents.any]\notp_via = [\"wa\", \"sms\"]\n";
        s
    },
    |mut app: TestApp| async move {
        let id = with_phone(&app, PHONE).await;
        let res = start_ladder(&app, &id).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["delivery"], "ladder");
        assert_eq!(c["channel"], "wa");
        assert_eq!(c["delivery_status"], "accepted");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let first = sent(&app).await;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, "wa");
        assert_eq!(first[0].1.len(), 6);

        // On request: the same code on the next step, the same challenge.
        let res = advance(&app, &id, &cid).await;
        assert_eq!(res.status(), 200);
        let read: Value = res.json().await.unwrap();
        assert_eq!(read["challenge_id"], cid.as_str());
        assert_eq!(read["channel"], "sms");
        assert_eq!(read["delivery"], "ladder");
        assert_eq!(read["state"], "open");
        assert_eq!(read["attempts_remaining"], 3);
        let all = sent(&app).await;
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], ("sms".to_string(), first[0].1.clone()));
        let e = app
            .next_event("challenge.advanced", Duration::from_secs(5))
            .await
            .expect("challenge.advanced");
        let data = event_data(&e);
        assert_eq!(data["previous_channel"], "wa");
        assert_eq!(data["reason"], "requested");
        assert_eq!(data["challenge"]["channel"], "sms");
        assert_eq!(data["challenge"]["challenge_id"], cid.as_str());

        // No step left.
        let res = advance(&app, &id, &cid).await;
        assert_problem(res, 409, "no_next_step").await;

        // A wrong code counts on the one challenge.
        let res = app.verify_code(&id, &cid, &wrong_code(&first[0].1)).await;
        assert_eq!(res.status(), 401);
        let res = app.verify_code(&id, &cid, &first[0].1).await;
        assert_eq!(res.status(), 200);
        let v = app.get(&id).await;
        assert_eq!(v["method"], "otp");
        assert_eq!(v["via"], json!(["wa", "sms"]));
        let res = advance(&app, &id, &cid).await;
        assert_problem(res, 409, "challenge_used").await;

        // otp_via: every channel of via must be listed.
        let ask = |intent: &str| format!("/v1/interactions/{id}/assurance?intent={intent}");
        let a = app.get_json(&ask("pay"), Some(&app.keys.bot)).await;
        assert_eq!(a["unmet"], json!(["via"]));
        assert_eq!(a["satisfied"], false);
        let a = app.get_json(&ask("any"), Some(&app.keys.bot)).await;
        assert_eq!(a["satisfied"], true, "{a}");

        // A plain OTP's via is its channel; an agent's OTP has none.
        let (cid, code) = app.start_otp(&id).await;
        let res = app.verify_code(&id, &cid, &code).await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&id).await["via"], json!(["webchat"]));
        // A challenge without a ladder has no next step.
        let (cid, _) = app.start_otp(&id).await;
        let res = advance(&app, &id, &cid).await;
        assert_problem(res, 409, "no_next_step").await;
    }
);

both_stores!(
    steps_without_a_destination_or_refused_are_skipped,
    setup: ladder(&["wa", "sms"], "sms_number_types = [\"mobile\"]"),
    |app: TestApp| async move {
        // No phone: no step has a destination.
        let id = app.new_interaction().await;
        let res = start_ladder(&app, &id).await;
        assert_problem(res, 422, "invalid_request").await;
        // A fixed line the rules refuse on every step: 403, nothing sent.
        let id = with_phone(&app, "+442071838750").await;
        let res = start_ladder(&app, &id).await;
        assert_problem(res, 403, "forbidden").await;
        assert!(sent(&app).await.is_empty());
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        // `to` with a ladder is 422.
        let res = crate::challenges::start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "ladder", "to": PHONE}),
        )
        .await;
        assert_problem(res, 422, "invalid_request").await;
    }
);

both_stores!(
    the_own_channel_is_skipped_under_require_other_channel,
    setup: ladder(&["wa", "sms"], "require_other_channel = true"),
    |app: TestApp| async move {
        let v = app
            .create(json!({"channel": "wa", "conversation_id": PHONE, "contact": {"phone": PHONE}}))
            .await;
        let id = v["id"].as_str().unwrap();
        let res = start_ladder(&app, id).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "sms");
    }
);

both_stores!(an_empty_ladder_is_422, |app: TestApp| async move {
    let id = with_phone(&app, PHONE).await;
    let res = start_ladder(&app, &id).await;
    assert_problem(res, 422, "invalid_request").await;
});

both_stores!(
    a_provider_refusal_moves_on_at_once_and_all_refused_uses_no_allowance,
    setup: ladder(&["wa", "sms"], "max_sends = 1"),
    |app: TestApp| async move {
        wa_refuses(&app).await;
        let id = with_phone(&app, PHONE).await;
        let res = start_ladder(&app, &id).await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "sms");
        let cid = c["challenge_id"].as_str().unwrap();
        // The refused step was tried first, with the same code.
        let tried = sent(&app).await;
        assert_eq!(tried.len(), 2);
        assert_eq!((tried[0].0.as_str(), tried[1].0.as_str()), ("wa", "sms"));
        assert_eq!(tried[0].1, tried[1].1);
        let res = app.verify_code(&id, cid, &tried[1].1).await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&id).await["via"], json!(["sms"]));
    }
);

both_stores!(
    every_provider_refusing_is_502_and_uses_no_allowance,
    setup: ladder(&["wa"], "max_sends = 1"),
    |app: TestApp| async move {
        wa_refuses(&app).await;
        let id = with_phone(&app, PHONE).await;
        for _ in 0..2 {
            let res = start_ladder(&app, &id).await;
            assert_problem(res, 502, "channel_error").await;
        }
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        // Nothing was used up: the subject's single send is still there.
        let (_, code) = app.start_otp(&id).await;
        assert_eq!(code.len(), 6);
    }
);

both_stores!(
    the_next_destination_s_limit_is_429_and_an_ended_challenge_410,
    setup: ladder(&["wa", "sms"], "max_sends = 1"),
    |app: TestApp| async move {
        // wa and sms reach one phone: its one send is used by the first step.
        let id = with_phone(&app, PHONE).await;
        let res = start_ladder(&app, &id).await;
        let c: Value = res.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let res = advance(&app, &id, &cid).await;
        assert_problem(res, 429, "rate_limited").await;
        let read = app
            .get_json(&format!("/v1/interactions/{id}/challenges/{cid}"), Some(&app.keys.bot))
            .await;
        assert_eq!(read["channel"], "wa", "the ladder stays");
        assert_eq!(sent(&app).await.len(), 1);
        // Exhausted, then expired.
        let code = sent(&app).await[0].1.clone();
        for _ in 0..3 {
            app.verify_code(&id, &cid, &wrong_code(&code)).await;
        }
        let res = advance(&app, &id, &cid).await;
        assert_problem(res, 410, "challenge_exhausted").await;
    }
);

both_stores!(
    an_expired_ladder_challenge_is_410,
    setup: ladder(&["wa", "sms"], ""),
    |app: TestApp| async move {
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        app.advance(181);
        let res = advance(&app, &id, &cid).await;
        assert_problem(res, 410, "challenge_expired").await;
    }
);

both_stores!(
    a_step_not_delivered_in_time_hands_the_code_on_and_the_last_stays,
    setup: ladder(&["wa", "sms"], "advance_after = \"20s\""),
    |mut app: TestApp| async move {
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        app.advance(19);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(sent(&app).await.len(), 1, "not yet");
        app.advance(2);
        let e = app
            .next_event("challenge.advanced", Duration::from_secs(5))
            .await
            .expect("challenge.advanced on time-out");
        let data = event_data(&e);
        assert_eq!(data["reason"], "timeout");
        assert_eq!(data["previous_channel"], "wa");
        let all = sent(&app).await;
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].1, all[1].1, "the same code");
        // The last step times out and stays.
        app.advance(30);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(sent(&app).await.len(), 2);
        let read = app
            .get_json(&format!("/v1/interactions/{id}/challenges/{cid}"), Some(&app.keys.bot))
            .await;
        assert_eq!(read["channel"], "sms");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_timer_survives_a_restart_and_fires_once_across_instances() {
    let setup = ladder(&["wa", "sms"], "advance_after = \"20s\"");
    let Some(a) = spawn_with(Backend::Redis, setup.clone()).await else {
        return;
    };
    let id = with_phone(&a, PHONE).await;
    let c: Value = start_ladder(&a, &id).await.json().await.unwrap();
    assert_eq!(c["channel"], "wa");
    let start = a.now();
    let same = Setup {
        extra_channels: setup.extra_channels.clone(),
        unlisted_channels: setup.unlisted_channels.clone(),
        team_extra: setup.team_extra.clone(),
        ..a.same_store()
    };
    let mut a = a;
    a.backend = Backend::Memory;
    a.stop_keeping_keys().await;

    // Two instances after the restart, on the same Redis.
    let b = spawn_with(Backend::Redis, same.clone()).await.unwrap();
    let c2 = spawn_with(Backend::Redis, same).await.unwrap();
    b.clock.set(start);
    c2.clock.set(start);
    b.advance(21);
    c2.advance(21);
    let cid = c["challenge_id"].as_str().unwrap();
    let read = format!("/v1/interactions/{id}/challenges/{cid}");
    let mut moved = false;
    for _ in 0..50 {
        if b.get_json(&read, Some(&b.keys.bot)).await["channel"] == "sms" {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(moved, "the ladder moved on after the restart");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // One SMS between them, not two.
    let sms = |v: Vec<(String, String)>| v.into_iter().filter(|(s, _)| s == "sms").count();
    assert_eq!(sms(sent(&b).await) + sms(sent(&c2).await), 1);
}

both_stores!(
    telegram_s_gateway_gets_the_code_and_its_reports_are_signed,
    setup: ladder(&["tg", "sms"], ""),
    |mut app: TestApp| async move {
        tg_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        assert_eq!(c["channel"], "tg");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let reqs = app.chat.received_requests().await.unwrap();
        let send = reqs
            .iter()
            .find(|r| r.url.path() == "/tg/sendVerificationMessage")
            .expect("a send to the gateway");
        assert_eq!(
            send.headers.get("authorization").unwrap().to_str().unwrap(),
            format!("Bearer {TG_TOKEN}")
        );
        let body: Value = serde_json::from_slice(&send.body).unwrap();
        assert_eq!(body["phone_number"], PHONE);
        assert_eq!(body["ttl"], 180);
        assert_eq!(
            body["callback_url"],
            "http://gateway.test/v1/providers/telegram-gateway/tg/report"
        );
        let code = body["code"].as_str().unwrap().to_string();

        // Reports: signed by the token's digest, checked first.
        let report = |status: &str| {
            json!({"request_id": "req-1", "delivery_status": {"status": status, "updated_at": 1}})
                .to_string()
        };
        let sign = |ts: &str, body: &str| {
            let key = Sha256::digest(TG_TOKEN.as_bytes());
            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
            mac.update(format!("{ts}\n{body}").as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        let now = chatgate::time::Clock::now(app.clock.as_ref()).unix_seconds();
        let ts = now.to_string();
        let post_at = |ts: String, body: String, sig: Option<String>| {
            let mut r = app
                .client
                .post(app.url("/v1/providers/telegram-gateway/tg/report"))
                .header("content-type", "application/json")
                .header("x-request-timestamp", ts)
                .body(body);
            if let Some(sig) = sig {
                r = r.header("x-request-signature", sig);
            }
            r.send()
        };
        let post = |body: String, sig: Option<String>| post_at(ts.clone(), body, sig);
        let res = post(report("delivered"), None).await.unwrap();
        assert_problem(res, 401, "invalid_signature").await;
        let res = post(report("delivered"), Some(sign(&(now + 1).to_string(), &report("delivered"))))
            .await
            .unwrap();
        assert_problem(res, 401, "invalid_signature").await;
        let res = post("{not json".into(), Some(sign(&ts, "{not json")))
            .await
            .unwrap();
        assert_problem(res, 400, "invalid_request").await;
        // Signed right, but a member named twice: not valid JSON, nothing
        // changes (the status stays as checked below).
        let twice = r#"{"request_id": "req-1", "delivery_status": {"status": "failed", "updated_at": 1, "status": "delivered"}}"#;
        let res = post(twice.into(), Some(sign(&ts, twice))).await.unwrap();
        assert_problem(res, 400, "invalid_request").await;
        let body = report("delivered");
        // Signed right, but recorded more than 5 minutes ago (or ahead):
        // refused, nothing changes.
        for stale in [now - 301, now + 301] {
            let stale = stale.to_string();
            let res = post_at(stale.clone(), body.clone(), Some(sign(&stale, &body)))
                .await
                .unwrap();
            assert_problem(res, 401, "invalid_signature").await;
        }
        let before: Value = app.get_json(&format!("/v1/interactions/{id}/challenges/{cid}"), Some(&app.keys.bot)).await;
        assert_ne!(before["delivery_status"], "delivered", "{before}");
        let res = post(body.clone(), Some(sign(&ts, &body))).await.unwrap();
        assert_eq!(res.status(), 200);
        // Another channel's route, or one that is not telegram_gateway: 404.
        let res = app
            .client
            .post(app.url("/v1/providers/telegram-gateway/sms/report"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);

        // Moving past the step withdraws its message.
        let res = advance(&app, &id, &cid).await;
        assert_eq!(res.status(), 200);
        let revoked: Vec<Value> = app
            .chat
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/tg/revokeVerificationMessage")
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        assert_eq!(revoked, [json!({"request_id": "req-1"})]);
        assert_eq!(sent(&app).await[1], ("sms".to_string(), code.clone()));
        let e = app.next_event("challenge.advanced", Duration::from_secs(5)).await;
        assert!(e.is_some());
    }
);

/// Makes the fake Telegram gateway take codes only after `delay` (real
/// time), so that a move is still sending while something else happens.
pub(crate) async fn tg_takes_after(app: &TestApp, delay: Duration) {
    Mock::given(method("POST"))
        .and(path("/tg/sendVerificationMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    json!({"ok": true, "result": {"request_id": "req-1", "phone_number": PHONE}}),
                )
                .set_delay(delay),
        )
        .with_priority(1)
        .mount(&app.chat)
        .await;
    tg_takes(app).await;
}

/// A ladder's challenge started on WhatsApp, whose Telegram step takes
/// 1.5 s to answer: (interaction, challenge).
async fn started_with_a_slow_telegram(app: &TestApp) -> (String, String) {
    providers_answer_with_ids(app).await;
    tg_takes_after(app, Duration::from_millis(1500)).await;
    let id = with_phone(app, PHONE).await;
    let c: Value = start_ladder(app, &id).await.json().await.unwrap();
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    (id, cid)
}

/// The gateway's calls to Telegram's revoke.
async fn tg_revokes(app: &TestApp) -> usize {
    app.chat
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/tg/revokeVerificationMessage")
        .count()
}

both_stores!(
    two_moves_at_once_record_one_and_only_it_sends,
    setup: ladder(&["wa", "tg", "sms"], ""),
    |app: TestApp| async move {
        let (id, cid) = started_with_a_slow_telegram(&app).await;
        // Both start from WhatsApp; the move recorded first sends on
        // Telegram, the other finds it moved (or sending) and sends
        // nothing: the read, not a 410.
        let (a, b) = tokio::join!(advance(&app, &id, &cid), advance(&app, &id, &cid));
        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
        assert_eq!((a["channel"].clone(), b["channel"].clone()), (json!("tg"), json!("tg")));
        let steps: Vec<Value> = app.get(&id).await["open_challenge"]["ladder"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].clone())
            .collect();
        assert_eq!(steps, [json!("left"), json!("current"), json!("ahead")]);
        let steps: Vec<String> = sent(&app).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, ["wa", "tg"], "one send for the two moves");
        assert_eq!(tg_revokes(&app).await, 0, "nothing to withdraw");
        // The next move goes on from Telegram, once.
        assert_eq!(advance(&app, &id, &cid).await.status(), 200);
        let steps: Vec<String> = sent(&app).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, ["wa", "tg", "sms"]);
    }
);

both_stores!(
    a_move_after_the_code_s_use_sends_nothing_and_is_challenge_used,
    setup: ladder(&["wa", "tg"], ""),
    |app: TestApp| async move {
        let (id, cid) = started_with_a_slow_telegram(&app).await;
        let code = sent(&app).await[0].1.clone();
        // A move recorded before the code's use sends once; its message
        // is withdrawn when its answer finds the code used.
        let moving = advance(&app, &id, &cid);
        let using = async {
            for _ in 0..250 {
                if sent(&app).await.iter().any(|(s, _)| s == "tg") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            app.verify_code(&id, &cid, &code).await
        };
        let (moved, used) = tokio::join!(moving, using);
        assert_eq!(used.status(), 200);
        assert_problem(moved, 409, "challenge_used").await;
        assert_eq!(tg_revokes(&app).await, 1, "the late step's message is withdrawn");
        // Moves after the use send nothing.
        let again = futures::future::join_all((0..5).map(|_| advance(&app, &id, &cid))).await;
        for res in again {
            assert_problem(res, 409, "challenge_used").await;
        }
        let steps: Vec<String> = sent(&app).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, ["wa", "tg"]);
    }
);

both_stores!(
    ten_moves_at_once_send_once_and_never_past_the_destination_s_limit,
    setup: ladder(&["wa", "tg", "sms"], "max_sends = 2"),
    |app: TestApp| async move {
        // Every step sends to the one phone number: two sends at most.
        // Telegram holds its send, so that the moves are all under way
        // before the first is answered.
        providers_answer_with_ids(&app).await;
        tg_takes_after(&app, Duration::from_millis(1000)).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let moves = || futures::future::join_all((0..10).map(|_| advance(&app, &id, &cid)));
        for res in moves().await {
            assert_eq!(res.status(), 200);
            let read: Value = res.json().await.unwrap();
            assert_eq!(read["channel"], "tg");
        }
        let steps: Vec<String> = sent(&app).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, ["wa", "tg"], "ten moves at once, one send");
        // The limit is reached: ten more moves are each 429, nothing sent.
        for res in moves().await {
            assert_problem(res, 429, "rate_limited").await;
        }
        assert_eq!(sent(&app).await.len(), 2);
        assert_eq!(app.get(&id).await["open_challenge"]["channel"], "tg");
    }
);

both_stores!(
    ten_moves_at_once_and_the_code_s_use_send_at_most_once,
    setup: ladder(&["wa", "tg", "sms"], ""),
    |app: TestApp| async move {
        providers_answer_with_ids(&app).await;
        tg_takes_after(&app, Duration::from_millis(1000)).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let code = sent(&app).await[0].1.clone();
        let moves = futures::future::join_all((0..10).map(|_| advance(&app, &id, &cid)));
        let (moved, used) = tokio::join!(moves, app.verify_code(&id, &cid, &code));
        assert_eq!(used.status(), 200);
        let mut statuses: Vec<u16> = moved.iter().map(|r| r.status().as_u16()).collect();
        statuses.dedup();
        assert!(statuses.iter().all(|s| [200, 409].contains(s)), "{statuses:?}");
        // One send for the moves, or none if the code was used first;
        // via names every step that sent, and no more.
        let steps: Vec<String> = sent(&app).await.into_iter().map(|(s, _)| s).collect();
        assert!(steps == ["wa"] || steps == ["wa", "tg"], "{steps:?}");
        assert_eq!(app.get(&id).await["via"], json!(steps));
        let again = advance(&app, &id, &cid).await;
        assert_problem(again, 409, "challenge_used").await;
        assert_eq!(sent(&app).await.len(), steps.len());
    }
);

both_stores!(
    using_the_code_withdraws_the_gateway_s_message,
    setup: ladder(&["tg", "sms"], ""),
    |app: TestApp| async move {
        tg_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap();
        let code = sent(&app).await[0].1.clone();
        let res = app.verify_code(&id, cid, &code).await;
        assert_eq!(res.status(), 200);
        let revoked = app
            .chat
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/tg/revokeVerificationMessage")
            .count();
        assert_eq!(revoked, 1);
        assert_eq!(app.get(&id).await["via"], json!(["tg"]));
    }
);

both_stores!(
    a_login_link_the_gateway_delivered_names_its_channel_as_via,
    |app: TestApp| async move {
        // Delivered into the chat: via is the chat's channel.
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({"deliver": true})).await;
        assert_eq!(link["delivered"], true);
        let res = app.succeed(&link, "cust-1").await;
        assert_eq!(res.status(), 200);
        let v = app.get(&id).await;
        assert_eq!(
            (v["method"].clone(), v["via"].clone()),
            (json!("login_link"), json!(["webchat"]))
        );
        // A link the bot passes on itself: no via.
        let link = app.issue_link(&id, json!({})).await;
        let res = app.succeed(&link, "cust-1").await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&id).await["via"], Value::Null);
        // A delivery that failed delivered nothing.
        Mock::given(method("POST"))
            .and(path("/messages"))
            .respond_with(ResponseTemplate::new(500))
            .with_priority(1)
            .mount(&app.chat)
            .await;
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({"deliver": true})).await;
        assert_eq!(link["delivered"], false);
        let res = app.succeed(&link, "cust-1").await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&id).await["via"], Value::Null);
    }
);

both_stores!(
    a_failed_report_moves_the_ladder_through_the_same_function,
    setup: ladder(&["wa", "sms"], ""),
    |mut app: TestApp| async move {
        // What a `failed` receipt about the current step's message calls.
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let gw = app.gateway.clone();
        let team = gw.team("acme").unwrap();
        let (iid, ccid) = (id.parse().unwrap(), cid.parse().unwrap());
        let failed = chatgate::events::types::AdvanceReason::Failed;
        let read = chatgate::gateway::challenges::ladder::advance_ladder(&gw, team, iid, ccid, failed, app.now())
            .await
            .unwrap();
        assert_eq!(read.channel.as_deref(), Some("sms"));
        let e = app
            .next_event("challenge.advanced", Duration::from_secs(5))
            .await
            .expect("challenge.advanced");
        assert_eq!(event_data(&e)["reason"], "failed");
        // The last step failing leaves nowhere to go.
        let again = chatgate::gateway::challenges::ladder::advance_ladder(&gw, team, iid, ccid, failed, app.now()).await;
        assert!(matches!(again, Err(chatgate::error::Error::NoNextStep(_))));
    }
);

// Receipts on a ladder.

/// Makes the fake WhatsApp take messages as `wamid.L1`.
async fn wa_answers_with_its_id(app: &TestApp) {
    Mock::given(method("POST"))
        .and(path_regex("^/wa/"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.L1"}]})),
        )
        .with_priority(1)
        .mount(&app.chat)
        .await;
}

/// Makes the fake WhatsApp take messages as `wamid.L1` and the fake
/// Twilio as `SML1`.
pub(crate) async fn providers_answer_with_ids(app: &TestApp) {
    wa_answers_with_its_id(app).await;
    Mock::given(method("POST"))
        .and(path_regex("/Messages.json$"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SML1"})))
        .with_priority(1)
        .mount(&app.chat)
        .await;
}

/// Posts a WhatsApp status webhook for `id`, signed as Meta signs.
pub(crate) async fn wa_report(app: &TestApp, id: &str, status: &str) {
    let mut item = json!({"id": id, "status": status, "timestamp": "1"});
    if status == "failed" {
        item["errors"] = json!([{"code": 131047, "title": "Re-engagement message"}]);
    }
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
        {"field": "messages", "value": {"messaging_product": "whatsapp", "statuses": [item]}}]}]});
    let bytes = serde_json::to_vec(&body).unwrap();
    let sig = chatgate::channels::whatsapp::hub_signature(WA_SECRET.as_bytes(), &bytes);
    let res = app
        .client
        .post(app.url("/v1/providers/whatsapp/wa/webhook"))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sig)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// Posts a Twilio status callback for `sid`, signed as Twilio signs.
async fn twilio_report(app: &TestApp, sid: &str, status: &str) {
    let mut fields = vec![
        ("MessageSid".to_string(), sid.to_string()),
        ("MessageStatus".to_string(), status.to_string()),
    ];
    if status == "undelivered" {
        fields.push(("ErrorCode".to_string(), "30003".to_string()));
    }
    let sig = chatgate::channels::twilio::twilio_signature(
        TWILIO_TOKEN.as_bytes(),
        "http://gateway.test/v1/providers/twilio/sms/status",
        &fields,
    );
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    let res = app
        .client
        .post(app.url("/v1/providers/twilio/sms/status"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The `challenge.*` events that come within `within`, up to and with the
/// first of kind `last`: `(kind, timestamp, data)`.
async fn challenge_events(
    app: &mut TestApp,
    last: &str,
    within: Duration,
) -> Vec<(String, String, Value)> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        let Ok(Ok(e)) = tokio::time::timeout(left, app.events.recv()).await else {
            break;
        };
        let kind = e.kind.as_str().to_string();
        if !kind.starts_with("challenge.") {
            continue;
        }
        let stamp = serde_json::to_value(e.timestamp).unwrap();
        out.push((
            kind.clone(),
            stamp.as_str().unwrap_or_default().to_string(),
            event_data(&e),
        ));
        if kind == last {
            break;
        }
    }
    out
}

fn kinds(events: &[(String, String, Value)]) -> Vec<&str> {
    events.iter().map(|(k, _, _)| k.as_str()).collect()
}

async fn read_challenge(app: &TestApp, id: &str, cid: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(&app.keys.bot),
    )
    .await
}

both_stores!(
    a_failed_receipt_hands_the_same_code_to_the_next_step,
    setup: ladder(&["wa", "sms"], ""),
    |mut app: TestApp| async move {
        providers_answer_with_ids(&app).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        assert_eq!(c["channel"], "wa");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        wa_report(&app, "wamid.L1", "failed").await;
        let events = challenge_events(&mut app, "challenge.advanced", Duration::from_secs(5)).await;
        assert_eq!(kinds(&events), ["challenge.created", "challenge.advanced"], "no challenge.undelivered");
        let data = &events[1].2;
        assert_eq!(data["reason"], "failed");
        assert_eq!(data["previous_channel"], "wa");
        assert_eq!(data["challenge"]["channel"], "sms");
        assert_eq!(data["challenge"]["delivery_status"], "accepted");
        let all = sent(&app).await;
        assert_eq!(all.len(), 2);
        assert_eq!((all[1].0.as_str(), &all[1].1), ("sms", &all[0].1), "the same code");
        let read = read_challenge(&app, &id, &cid).await;
        assert_eq!((read["channel"].clone(), read["delivery_status"].clone()), (json!("sms"), json!("accepted")));
        // The interaction shows the steps and where the code is now.
        let open = &app.get(&id).await["open_challenge"];
        assert_eq!(open["channel"], "sms");
        assert_eq!(
            open["ladder"],
            json!([
                {"channel": "wa", "step": "left", "delivery_status": "failed"},
                {"channel": "sms", "step": "current", "delivery_status": "accepted"},
            ])
        );
        // The same report again changes nothing.
        wa_report(&app, "wamid.L1", "failed").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(sent(&app).await.len(), 2);
    }
);

both_stores!(
    the_last_step_s_failure_is_undelivered_and_an_earlier_step_s_late_report_changes_nothing,
    setup: ladder(&["wa", "sms"], ""),
    |mut app: TestApp| async move {
        providers_answer_with_ids(&app).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        assert_eq!(advance(&app, &id, &cid).await.status(), 200);
        // WhatsApp's message arrives after all: the ladder has left it.
        wa_report(&app, "wamid.L1", "delivered").await;
        wa_report(&app, "wamid.L1", "failed").await;
        let read = read_challenge(&app, &id, &cid).await;
        assert_eq!((read["channel"].clone(), read["delivery_status"].clone()), (json!("sms"), json!("accepted")));
        // The last step fails: undelivered, and the ladder stays.
        twilio_report(&app, "SML1", "undelivered").await;
        let events = challenge_events(&mut app, "challenge.undelivered", Duration::from_secs(5)).await;
        assert_eq!(
            kinds(&events),
            ["challenge.created", "challenge.advanced", "challenge.undelivered"],
            "the late WhatsApp report announced nothing"
        );
        let data = &events[2].2;
        assert_eq!(data["challenge"]["channel"], "sms");
        assert_eq!(data["challenge"]["delivery_error"], json!({"code": "30003", "title": null}));
        let read = read_challenge(&app, &id, &cid).await;
        assert_eq!((read["channel"].clone(), read["delivery_status"].clone()), (json!("sms"), json!("failed")));
        assert_eq!(sent(&app).await.len(), 2);
    }
);

both_stores!(
    whatsapp_fails_telegram_times_out_sms_delivers,
    setup: ladder(&["wa", "tg", "sms"], "advance_after = \"20s\""),
    |mut app: TestApp| async move {
        providers_answer_with_ids(&app).await;
        tg_takes(&app).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        app.advance(3);
        wa_report(&app, "wamid.L1", "failed").await;
        let mut events = challenge_events(&mut app, "challenge.advanced", Duration::from_secs(5)).await;
        app.advance(21);
        events.extend(challenge_events(&mut app, "challenge.advanced", Duration::from_secs(5)).await);
        app.advance(4);
        twilio_report(&app, "SML1", "delivered").await;
        events.extend(challenge_events(&mut app, "challenge.delivered", Duration::from_secs(5)).await);
        eprintln!("ladder timeline (whatsapp fails, telegram times out, sms delivers):");
        for (kind, at, data) in &events {
            eprintln!(
                "  {at}  {kind:<22} channel={} previous={} reason={} delivery_status={}",
                data["challenge"]["channel"], data["previous_channel"], data["reason"],
                data["challenge"]["delivery_status"]
            );
        }
        assert_eq!(
            kinds(&events),
            ["challenge.created", "challenge.advanced", "challenge.advanced", "challenge.delivered"]
        );
        let moves: Vec<(Value, Value, Value)> = events[1..3]
            .iter()
            .map(|(_, _, d)| (d["previous_channel"].clone(), d["challenge"]["channel"].clone(), d["reason"].clone()))
            .collect();
        assert_eq!(
            moves,
            [
                (json!("wa"), json!("tg"), json!("failed")),
                (json!("tg"), json!("sms"), json!("timeout")),
            ]
        );
        assert_eq!(events[3].2["challenge"]["channel"], "sms");
        let codes: Vec<String> = sent(&app).await.into_iter().map(|(_, c)| c).collect();
        assert_eq!(codes.len(), 3);
        assert!(codes.iter().all(|c| c == &codes[0]), "one code on every step");
        let code = codes[0].clone();
        assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        assert_eq!(app.get(&id).await["via"], json!(["wa", "tg", "sms"]));
    }
);

/// What a ladder costs the store, counted on a private Redis (`INFO
/// commandstats`, less what the idle gateway's background work issues in
/// the same time; commands a script runs are counted apart from the
/// script's own call): printed for docs/performance.md, and held to bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_ladder_step_costs_the_store() {
    use crate::redis_support::OwnRedis;
    use crate::store_contract::redis_only::{
        calls_per_run as measure, idle_calls, round_trips as trips, show_rates as show, Rates,
    };
    let Some(server) = OwnRedis::private("what_a_ladder_step_costs_the_store").await else {
        return;
    };
    let mut setup = ladder(&["wa", "sms"], "");
    setup.redis_url = Some(server.url());
    let Some(mut app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    providers_answer_with_ids(&app).await;
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let settle = Duration::from_millis(1500);
    const N: usize = 20;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            app.create(
                json!({"channel": "webchat", "conversation_id": format!("cost-{i}"),
                "contact": {"phone": format!("+4474001{i:05}")}}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    tokio::time::sleep(settle).await;
    let idle = idle_calls(&mut admin, 3).await;
    let starts = measure(&mut admin, &idle, N, settle, async {
        for id in &ids {
            assert_eq!(start_ladder(&app, id).await.status(), 201);
        }
    })
    .await;
    // For comparison: an ordinary OTP by SMS to each of them.
    let sms = measure(&mut admin, &idle, N, settle, async {
        for id in &ids {
            let res =
                crate::challenges::start(&app, id, json!({"method": "otp", "delivery": "sms"}))
                    .await;
            assert_eq!(res.status(), 201);
        }
    })
    .await;
    for id in &ids {
        assert_eq!(start_ladder(&app, id).await.status(), 201);
    }
    let mut cids = Vec::new();
    for id in &ids {
        let v = app.get(id).await;
        cids.push(
            v["open_challenge"]["challenge_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let moves = measure(&mut admin, &idle, N, settle, async {
        for (id, cid) in ids.iter().zip(&cids) {
            assert_eq!(advance(&app, id, cid).await.status(), 200);
        }
    })
    .await;
    // A failed receipt that moves the ladder: one at a time (the fake
    // WhatsApp names every message alike).
    const R: usize = 5;
    let mut report = Rates::new();
    for i in 0..R {
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": format!("cost-r{i}"),
                "contact": {"phone": format!("+4474002{i:05}")}}),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        assert_eq!(start_ladder(&app, &id).await.status(), 201);
        tokio::time::sleep(settle).await;
        let one = measure(&mut admin, &idle, 1, settle, async {
            wa_report(&app, "wamid.L1", "failed").await;
        })
        .await;
        assert!(app
            .next_event("challenge.advanced", Duration::from_secs(5))
            .await
            .is_some());
        for (k, v) in one {
            *report.entry(k).or_insert(0.0) += v / R as f64;
        }
    }
    eprintln!("idle gateway, per second: {}", show(&idle));
    for (what, r) in [
        ("ordinary OTP by SMS", &sms),
        ("ladder start (first step)", &starts),
        ("advance by request", &moves),
        ("failed receipt that advances", &report),
    ] {
        eprintln!(
            "{what}: {:.1} round trips; per command: {}",
            trips(r),
            show(r)
        );
    }
    // A step is a handful of round trips, not dozens.
    for r in [&starts, &moves, &report] {
        assert!(trips(r) < 16.0, "{}", show(r));
    }
}

both_stores!(
    a_failed_step_that_cannot_hand_its_code_on_is_announced_undelivered,
    setup: ladder(&["wa", "sms"], ""),
    |mut app: TestApp| async move {
        // WhatsApp takes the code; the next step's provider refuses every message.
        wa_answers_with_its_id(&app).await;
        Mock::given(method("POST"))
            .and(path_regex("/Messages.json$"))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"message": "refused"})))
            .with_priority(1)
            .mount(&app.chat)
            .await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        assert_eq!(c["channel"], "wa");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        wa_report(&app, "wamid.L1", "failed").await;
        let events =
            challenge_events(&mut app, "challenge.undelivered", Duration::from_secs(5)).await;
        assert_eq!(kinds(&events), ["challenge.created", "challenge.undelivered"]);
        let data = &events[1].2;
        assert_eq!(data["challenge"]["challenge_id"], cid.as_str(), "{data}");
        assert_eq!(data["challenge"]["delivery_status"], "failed", "{data}");
        // It stays where it is.
        let read = read_challenge(&app, &id, &cid).await;
        assert_eq!(read["state"], "open", "{read}");
    }
);

both_stores!(
    a_step_whose_sender_dies_midway_is_sent_once_more_by_the_lease,
    setup: ladder(&["wa", "tg", "sms"], ""),
    |app: TestApp| async move {
        providers_answer_with_ids(&app).await;
        tg_takes_after(&app, Duration::from_millis(2000)).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        // The move is recorded and its send begun; then the request (and
        // the task acting on it) is dropped while Telegram holds the send.
        advance_and_leave(&app, &id, &cid, Duration::from_millis(400)).await;
        let tg = |v: Vec<(String, String)>| v.into_iter().filter(|(s, _)| s == "tg").count();
        assert_eq!(tg(sent(&app).await), 1);
        let read = read_challenge(&app, &id, &cid).await;
        assert_eq!(read["channel"], "tg", "recorded before it was sent");
        // Past the sender's lease: the step is sent once more, within 5 s.
        app.advance(5);
        let mut resent = false;
        for _ in 0..50 {
            if tg(sent(&app).await) == 2 {
                resent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(resent, "the lease came back and the step was sent again");
        // Its answer is recorded; never a third send.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        app.advance(5);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(tg(sent(&app).await), 2, "once more, never more");
        let read = read_challenge(&app, &id, &cid).await;
        assert_eq!(read["channel"], "tg");
        let steps: Vec<String> = sent(&app).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, ["wa", "tg", "tg"]);
    }
);

/// Two gateway processes on one Redis: the first takes a step's time-out
/// and sends on Telegram, which holds the send; the first is then ended
/// with `signal`, and the second sends that step once more within 5 s
/// of its end — and never a third time.
async fn a_time_out_outlives_its_instance(signal: &str) {
    let setup = ladder(&["wa", "tg"], "advance_after = \"1s\"");
    let Some(app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    providers_answer_with_ids(&app).await;
    tg_takes_after(&app, Duration::from_secs(20)).await;
    let first = Instance::start(&app.dir).await;
    let key = app.keys.bot.clone();
    let contact = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
        "contact": {"phone": PHONE}});
    let id = first.post(&key, "/v1/interactions", contact).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let start = json!({"method": "otp", "delivery": "ladder"});
    let c = first
        .post(&key, &format!("/v1/interactions/{id}/challenges"), start)
        .await;
    assert_eq!(c["channel"], "wa", "{c}");
    let tg = || async {
        let all = sent(&app).await;
        all.into_iter().filter(|(s, _)| s == "tg").count()
    };
    // The step times out: the first instance (the only one) sends on
    // Telegram, which holds it.
    let mut waited = 0;
    while tg().await == 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(tg().await, 1, "the time-out sent on Telegram");
    let second = Instance::start(&app.dir).await;
    assert_eq!(
        tg().await,
        1,
        "the first instance's lease holds while it lives"
    );
    first.signal(signal);
    let ended = std::time::Instant::now();
    while tg().await < 2 && ended.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = ended.elapsed();
    assert_eq!(tg().await, 2, "the second instance sent the step once more");
    assert!(took <= Duration::from_millis(5200), "within 5 s: {took:?}");
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(tg().await, 2, "never a third send");
    drop(second);
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_out_outlives_an_instance_killed_midway() {
    a_time_out_outlives_its_instance("-KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_out_outlives_an_instance_stopped_midway() {
    a_time_out_outlives_its_instance("-TERM").await;
}
