//! Delivery receipts (docs/receipts.md, docs/api.md#delivery-status): fakes
//! of Twilio and WhatsApp Cloud that answer each message with an id and
//! sign their callbacks as the real ones do; each receipt moves the
//! challenge's `delivery_status` forward only, on both stores, whenever
//! and wherever it arrives.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rand::seq::SliceRandom;
use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

const TWILIO_TOKEN: &str = "twilio-test-token";
const TWILIO_STATUS: &str = "http://gateway.test/v1/providers/twilio/sms/status";
pub(crate) const APP_SECRET: &str = "meta-app-secret";
const VERIFY_TOKEN: &str = "meta-verify-token";

/// Answers each message with the next id (`{prefix}{n}`, from 1), after
/// `delay`, in Twilio's or WhatsApp's answer.
#[derive(Clone)]
pub(crate) struct Ids {
    prefix: &'static str,
    next: Arc<AtomicUsize>,
    delay: Arc<Mutex<Duration>>,
}

impl Ids {
    pub(crate) fn new(prefix: &'static str) -> Self {
        Ids {
            prefix,
            next: Arc::new(AtomicUsize::new(1)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
        }
    }

    /// The id of the `n`th message (from 1).
    fn id(&self, n: usize) -> String {
        format!("{}{n}", self.prefix)
    }

    /// The id the next message will get.
    fn upcoming(&self) -> String {
        self.id(self.next.load(Ordering::SeqCst))
    }

    /// The id the last message got.
    pub(crate) fn last(&self) -> String {
        self.id(self.next.load(Ordering::SeqCst) - 1)
    }
}

impl wiremock::Respond for Ids {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let id = self.id(self.next.fetch_add(1, Ordering::SeqCst));
        let body = if self.prefix.starts_with("wamid") {
            json!({"messaging_product": "whatsapp", "contacts": [], "messages": [{"id": id}]})
        } else {
            json!({"sid": id, "status": "queued"})
        };
        let delay = *self.delay.lock().unwrap();
        ResponseTemplate::new(201)
            .set_body_json(body)
            .set_delay(delay)
    }
}

/// Twilio (the `sms` channel, on the app's chat server) answering with
/// `SM1`, `SM2`, …
pub(crate) async fn fake_twilio(server: &MockServer) -> Ids {
    let ids = Ids::new("SM");
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        .respond_with(ids.clone())
        .with_priority(1)
        .mount(server)
        .await;
    ids
}

/// Posts a Twilio status callback for `sid`, signed as Twilio signs.
pub(crate) async fn twilio(
    app: &TestApp,
    sid: &str,
    status: &str,
    error: Option<&str>,
) -> reqwest::Response {
    let mut fields = vec![
        ("AccountSid".to_string(), "AC123".to_string()),
        ("MessageSid".to_string(), sid.to_string()),
        ("MessageStatus".to_string(), status.to_string()),
    ];
    if let Some(code) = error {
        fields.push(("ErrorCode".to_string(), code.to_string()));
    }
    twilio_fields(app, &fields, Some(TWILIO_TOKEN)).await
}

async fn twilio_fields(
    app: &TestApp,
    fields: &[(String, String)],
    token: Option<&str>,
) -> reqwest::Response {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    let mut rb = app
        .request(
            reqwest::Method::POST,
            "/v1/providers/twilio/sms/status",
            None,
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        let sig =
            chatgate::channels::twilio::twilio_signature(token.as_bytes(), TWILIO_STATUS, fields);
        rb = rb.header("x-twilio-signature", sig);
    }
    rb.send().await.unwrap()
}

/// An interaction with a phone, and an OTP sent to it by SMS (Twilio):
/// (interaction id, challenge id).
pub(crate) async fn sms_challenge(app: &TestApp, phone: &str) -> (String, String) {
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": format!("c-{phone}"), "contact": {"phone": phone}}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = crate::challenges::start(app, &id, json!({"method": "otp", "delivery": "sms"})).await;
    assert_eq!(res.status(), 201);
    let started: Value = res.json().await.unwrap();
    (id, started["challenge_id"].as_str().unwrap().to_string())
}

/// The code in the last SMS the fake Twilio took.
async fn last_sms_code(app: &TestApp) -> String {
    let sent = app.chat.received_requests().await.unwrap();
    let last = sent
        .iter()
        .rev()
        .find(|r| r.url.path().ends_with("/Messages.json"))
        .expect("an SMS");
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&last.body)
        .into_owned()
        .collect();
    form["Body"]
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .unwrap()
        .to_string()
}

async fn read(app: &TestApp, id: &str, cid: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(&app.keys.bot),
    )
    .await
}

async fn status_of(app: &TestApp, id: &str, cid: &str) -> Value {
    read(app, id, cid).await["delivery_status"].clone()
}

/// The next `challenge.delivered` / `challenge.undelivered` within `within`.
async fn next_delivery_event(app: &mut TestApp, within: Duration) -> Option<(String, Value)> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(tokio::time::Instant::now())?;
        match tokio::time::timeout(left, app.events.recv()).await {
            Ok(Ok(e)) if e.kind.as_str().ends_with("delivered") => {
                return Some((e.kind.as_str().to_string(), event_data(&e)))
            }
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
            _ => return None,
        }
    }
}

both_stores!(
    twilio_receipts_move_the_status_forward_only,
    |mut app: TestApp| async move {
        let ids = fake_twilio(&app.chat).await;
        let (id, cid) = sms_challenge(&app, "+15551230001").await;
        let sid = ids.last();
        assert_eq!(status_of(&app, &id, &cid).await, "accepted");
        // Signature first: unsigned, or signed under another token, is 401
        // and changes nothing.
        let fields = vec![
            ("MessageSid".to_string(), sid.clone()),
            ("MessageStatus".to_string(), "delivered".to_string()),
        ];
        assert_problem(
            twilio_fields(&app, &fields, None).await,
            401,
            "invalid_signature",
        )
        .await;
        assert_problem(
            twilio_fields(&app, &fields, Some("not-the-token")).await,
            401,
            "invalid_signature",
        )
        .await;
        // Signed but without a status: 400, nothing changes.
        assert_problem(
            twilio_fields(&app, &fields[..1], Some(TWILIO_TOKEN)).await,
            400,
            "invalid_request",
        )
        .await;
        // A message the gateway never sent: 200, ignored.
        assert_eq!(
            twilio(&app, "SM-unknown", "delivered", None).await.status(),
            200
        );
        assert_eq!(status_of(&app, &id, &cid).await, "accepted");
        // Statuses that report nothing: nothing.
        assert_eq!(twilio(&app, &sid, "queued", None).await.status(), 200);
        assert_eq!(status_of(&app, &id, &cid).await, "accepted");
        assert!(next_delivery_event(&mut app, Duration::from_millis(300))
            .await
            .is_none());
        // sent, then undelivered with its error code: failed, announced.
        assert_eq!(twilio(&app, &sid, "sent", None).await.status(), 200);
        assert_eq!(status_of(&app, &id, &cid).await, "sent");
        assert_eq!(
            twilio(&app, &sid, "undelivered", Some("30003"))
                .await
                .status(),
            200
        );
        let c = read(&app, &id, &cid).await;
        assert_eq!(c["delivery_status"], "failed");
        assert_eq!(c["delivery_error"], json!({"code": "30003", "title": null}));
        let (kind, data) = next_delivery_event(&mut app, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(kind, "challenge.undelivered");
        assert_eq!(
            data["challenge"], c,
            "data.challenge is the read after the move"
        );
        assert_eq!(data["interaction"]["id"], id.as_str());
        // A lower status, or a repeat: nothing.
        assert_eq!(twilio(&app, &sid, "sent", None).await.status(), 200);
        assert_eq!(
            twilio(&app, &sid, "failed", Some("30008")).await.status(),
            200
        );
        assert_eq!(read(&app, &id, &cid).await, c);
        // Failed, then delivered: it did arrive; announced once.
        assert_eq!(twilio(&app, &sid, "delivered", None).await.status(), 200);
        let c = read(&app, &id, &cid).await;
        assert_eq!(c["delivery_status"], "delivered");
        assert_eq!(c["delivery_error"], Value::Null);
        let (kind, data) = next_delivery_event(&mut app, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(kind, "challenge.delivered");
        assert_eq!(data["challenge"]["delivery_status"], "delivered");
        assert_eq!(data["challenge"]["state"], "open");
        // The interaction shows it beside the open challenge.
        let v = app.get(&id).await;
        assert_eq!(v["open_challenge"]["delivery_status"], "delivered");
        // Failed after delivered: nothing. Read: moves on, no event.
        assert_eq!(
            twilio(&app, &sid, "failed", Some("30008")).await.status(),
            200
        );
        assert_eq!(status_of(&app, &id, &cid).await, "delivered");
        assert_eq!(twilio(&app, &sid, "read", None).await.status(), 200);
        assert_eq!(twilio(&app, &sid, "delivered", None).await.status(), 200);
        assert_eq!(status_of(&app, &id, &cid).await, "read");
        assert!(next_delivery_event(&mut app, Duration::from_millis(500))
            .await
            .is_none());
    }
);

both_stores!(
    receipts_after_the_end_move_the_status_without_events,
    |mut app: TestApp| async move {
        let ids = fake_twilio(&app.chat).await;
        let (id, cid) = sms_challenge(&app, "+15551230002").await;
        let sid = ids.last();
        // Used: the right code.
        let code = last_sms_code(&app).await;
        assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        assert_eq!(read(&app, &id, &cid).await["state"], "used");
        assert_eq!(
            twilio(&app, &sid, "failed", Some("30005")).await.status(),
            200
        );
        assert_eq!(status_of(&app, &id, &cid).await, "failed");
        assert_eq!(twilio(&app, &sid, "read", None).await.status(), 200);
        let c = read(&app, &id, &cid).await;
        assert_eq!(
            (c["state"].as_str(), c["delivery_status"].as_str()),
            (Some("used"), Some("read"))
        );
        assert!(next_delivery_event(&mut app, Duration::from_millis(500))
            .await
            .is_none());
        // Replaced by a newer challenge: its receipts still land on it.
        let (id2, first) = sms_challenge(&app, "+15551230003").await;
        let first_sid = ids.last();
        let res =
            crate::challenges::start(&app, &id2, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(res.status(), 201);
        assert_eq!(
            twilio(&app, &first_sid, "delivered", None).await.status(),
            200
        );
        let c = read(&app, &id2, &first).await;
        assert_eq!(
            (c["state"].as_str(), c["delivery_status"].as_str()),
            (Some("replaced"), Some("delivered"))
        );
        assert!(next_delivery_event(&mut app, Duration::from_millis(500))
            .await
            .is_none());
    }
);

both_stores!(
    a_receipt_that_comes_before_the_send_is_answered_still_counts,
    |mut app: TestApp| async move {
        let ids = fake_twilio(&app.chat).await;
        // Twilio calls back before it answers the send.
        *ids.delay.lock().unwrap() = Duration::from_millis(1500);
        let sid = ids.upcoming();
        let starting = {
            let app = &app;
            async move { sms_challenge(app, "+15551230004").await }
        };
        let receipts = async {
            loop {
                let sent = app.chat.received_requests().await.unwrap_or_default();
                if sent
                    .iter()
                    .any(|r| r.url.path().ends_with("/Messages.json"))
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Twice, and out of order: the end is the same.
            for (status, error) in [
                ("delivered", None),
                ("undelivered", Some("30003")),
                ("delivered", None),
            ] {
                assert_eq!(twilio(&app, &sid, status, error).await.status(), 200);
            }
        };
        let ((id, cid), ()) = tokio::join!(starting, receipts);
        assert_eq!(status_of(&app, &id, &cid).await, "delivered");
        // As if each had come after the send: delivered, then a failure
        // that changes nothing.
        let (kind, data) = next_delivery_event(&mut app, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(kind, "challenge.delivered");
        assert_eq!(data["challenge"]["challenge_id"], cid.as_str());
        assert!(next_delivery_event(&mut app, Duration::from_millis(500))
            .await
            .is_none());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_one_redis_take_each_other_s_receipts() {
    let Some(one) = spawn_app(Backend::Redis).await else {
        return;
    };
    let ids = fake_twilio(&one.chat).await;
    let two = spawn_with(Backend::Redis, one.same_store()).await.unwrap();
    let (id, cid) = sms_challenge(&one, "+15551230005").await;
    assert_eq!(
        twilio(&two, &ids.last(), "delivered", None).await.status(),
        200
    );
    assert_eq!(status_of(&one, &id, &cid).await, "delivered");
    // One that comes to the other instance before the send is answered.
    let early = ids.upcoming();
    assert_eq!(twilio(&two, &early, "read", None).await.status(), 200);
    let (id, cid) = sms_challenge(&one, "+15551230006").await;
    assert_eq!(status_of(&two, &id, &cid).await, "read");
    // Every message record sits in its team's slot and expires: those that
    // lead to a challenge with the interaction, a parked one in minutes.
    assert_eq!(twilio(&two, "SM-never", "sent", None).await.status(), 200);
    let redis = crate::redis_support::TestPrefix::for_prefix(&one.key_prefix);
    let records: Vec<String> = redis
        .keys()
        .into_iter()
        .filter(|k| k.contains(":msg:"))
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    let mut lives: Vec<i64> = records
        .iter()
        .map(|k| {
            assert!(k.contains("{acme}:msg:"), "{k}");
            redis.pttl(k)
        })
        .collect();
    lives.sort();
    assert!(lives[0] > 0 && lives[0] <= 600_000, "parked: {lives:?}");
    assert!(lives[1] > 3_600_000, "known: {lives:?}");
    two.stop_keeping_keys().await;
    one.stop().await;
}

/// The order of the statuses (docs/api.md#delivery-status).
fn rank(status: &str) -> usize {
    ["accepted", "sent", "failed", "delivered", "read"]
        .iter()
        .position(|s| *s == status)
        .unwrap()
}

both_stores!(
    a_storm_of_receipts_leaves_every_status_exact,
    |app: TestApp| async move {
        let ids = fake_twilio(&app.chat).await;
        let mut challenges = Vec::new();
        for n in 0..100 {
            let (id, cid) = sms_challenge(&app, &format!("+1555124{n:04}")).await;
            challenges.push((id, cid, ids.last()));
        }
        // Ten receipts a challenge, repeated and in any order.
        let mut rng = rand::thread_rng();
        let statuses = ["sent", "delivered", "read", "undelivered", "failed"];
        let mut receipts = Vec::new();
        let mut want = Vec::new();
        for (i, (_, _, sid)) in challenges.iter().enumerate() {
            // Some never get past failed, some never arrive at all.
            let allowed: &[&str] = match i % 4 {
                0 => &statuses[..1],
                1 => &["sent", "failed", "undelivered"],
                _ => &statuses,
            };
            let mut best = "accepted";
            for _ in 0..10 {
                let s = *allowed.choose(&mut rng).unwrap();
                let as_reported = if s == "undelivered" { "failed" } else { s };
                if rank(as_reported) > rank(best) {
                    best = as_reported;
                }
                receipts.push((sid.clone(), s));
            }
            want.push(best);
        }
        receipts.shuffle(&mut rng);
        let answers: Vec<u16> = futures::stream::iter(receipts)
            .map(|(sid, s)| {
                let app = &app;
                async move {
                    let error = matches!(s, "failed" | "undelivered").then_some("30003");
                    twilio(app, &sid, s, error).await.status().as_u16()
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
        for ((id, cid, _), want) in challenges.iter().zip(want) {
            let c = read(&app, id, cid).await;
            assert_eq!(c["delivery_status"], want, "{c}");
            let error = if want == "failed" {
                json!({"code": "30003", "title": null})
            } else {
                Value::Null
            };
            assert_eq!(c["delivery_error"], error, "{c}");
        }
    }
);

// WhatsApp Cloud.

/// A `whatsapp` channel on `provider`, with `app_secret` and `verify_token`
/// (`${VAR:-default}` like every secret), and `wa-plain` without them.
pub(crate) fn whatsapp_setup(provider: &MockServer) -> Setup {
    let base = provider.uri();
    let file = format!(
        "name = \"whatsapp\"\nkind = \"whatsapp\"\nbase_url = \"{base}\"\nphone_number_id = \"1065\"\ntoken = \"${{CG_TEST_UNSET_WHATSAPP:-wa-token}}\"\napp_secret = \"${{CG_TEST_UNSET_APP_SECRET:-{APP_SECRET}}}\"\nverify_token = \"${{CG_TEST_UNSET_VERIFY:-{VERIFY_TOKEN}}}\"\n"
    );
    let plain = format!(
        "name = \"wa-plain\"\nkind = \"whatsapp\"\nbase_url = \"{base}\"\nphone_number_id = \"1066\"\ntoken = \"${{CG_TEST_UNSET_WHATSAPP:-wa-token}}\"\n"
    );
    Setup {
        extra_channels: vec![("whatsapp".into(), file), ("wa-plain".into(), plain)],
        ..Setup::default()
    }
}

/// Posts a webhook `body` to `channel`, signed under `secret` as Meta signs.
pub(crate) async fn meta(
    app: &TestApp,
    channel: &str,
    body: &Value,
    secret: Option<&str>,
) -> reqwest::Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut rb = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/providers/whatsapp/{channel}/webhook"),
            None,
        )
        .header("content-type", "application/json")
        .body(bytes.clone());
    if let Some(secret) = secret {
        let sig = chatgate::channels::whatsapp::hub_signature(secret.as_bytes(), &bytes);
        rb = rb.header("x-hub-signature-256", sig);
    }
    rb.send().await.unwrap()
}

/// A webhook body as Meta sends it: `statuses` beside an incoming message.
fn statuses(items: Value) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550006666", "phone_number_id": "1065"},
        "messages": [{"from": "15552223333", "id": "wamid.incoming", "timestamp": "1", "type": "text", "text": {"body": "hello"}}],
        "statuses": items}}]}]})
}

async fn handshake(app: &TestApp, channel: &str, query: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::GET,
        &format!("/v1/providers/whatsapp/{channel}/webhook?{query}"),
        None,
    )
    .send()
    .await
    .unwrap()
}

mod whatsapp_webhooks_are_handshaken_signed_and_move_the_status {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        run(Backend::Memory).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        run(Backend::Redis).await;
    }

    async fn run(backend: Backend) {
        let provider = MockServer::start().await;
        let ids = Ids::new("wamid.");
        Mock::given(method("POST"))
            .and(path("/v21.0/1065/messages"))
            .respond_with(ids.clone())
            .mount(&provider)
            .await;
        let Some(mut app) = spawn_with(backend, whatsapp_setup(&provider)).await else {
            return;
        };
        // The handshake.
        let res = handshake(
            &app,
            "whatsapp",
            &format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"),
        )
        .await;
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(res.text().await.unwrap(), "1158201444");
        for wrong in [
            "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
            "hub.mode=subscribe&hub.challenge=1",
            &format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
        ] {
            assert_problem(handshake(&app, "whatsapp", wrong).await, 403, "forbidden").await;
        }
        let ok = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1");
        assert_problem(handshake(&app, "wa-plain", &ok).await, 404, "not_found").await;
        assert_problem(handshake(&app, "sms", &ok).await, 404, "not_found").await;
        // A code sent on WhatsApp.
        let v = app
            .create(json!({"channel": "whatsapp", "conversation_id": "15552223333"}))
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let res = crate::challenges::start(&app, &id, json!({"method": "otp"})).await;
        assert_eq!(res.status(), 201);
        let cid = res.json::<Value>().await.unwrap()["challenge_id"]
            .as_str()
            .unwrap()
            .to_string();
        let wamid = ids.last();
        let delivered = statuses(
            json!([{"id": wamid, "status": "delivered", "timestamp": "2", "recipient_id": "15552223333"}]),
        );
        // Signature first: missing, wrong secret: 401, nothing changes.
        assert_problem(
            meta(&app, "whatsapp", &delivered, None).await,
            401,
            "invalid_signature",
        )
        .await;
        assert_problem(
            meta(&app, "whatsapp", &delivered, Some("another")).await,
            401,
            "invalid_signature",
        )
        .await;
        assert_eq!(status_of(&app, &id, &cid).await, "accepted");
        // No app_secret: 404.
        assert_problem(
            meta(&app, "wa-plain", &delivered, Some(APP_SECRET)).await,
            404,
            "not_found",
        )
        .await;
        // Signed but unreadable, or a status without its id: 400.
        let bad = statuses(json!([{"status": "delivered"}]));
        assert_problem(
            meta(&app, "whatsapp", &bad, Some(APP_SECRET)).await,
            400,
            "invalid_request",
        )
        .await;
        let res = app
            .request(
                reqwest::Method::POST,
                "/v1/providers/whatsapp/whatsapp/webhook",
                None,
            )
            .header(
                "x-hub-signature-256",
                chatgate::channels::whatsapp::hub_signature(APP_SECRET.as_bytes(), b"{nope"),
            )
            .body("{nope")
            .send()
            .await
            .unwrap();
        assert_problem(res, 400, "invalid_request").await;
        // Unknown message: 200; incoming messages alone: 200.
        let unknown = statuses(json!([{"id": "wamid.unknown", "status": "read"}]));
        assert_eq!(
            meta(&app, "whatsapp", &unknown, Some(APP_SECRET))
                .await
                .status(),
            200
        );
        assert_eq!(status_of(&app, &id, &cid).await, "accepted");
        // Failed with Meta's error, then delivered.
        let failed = statuses(
            json!([{"id": wamid, "status": "failed", "errors": [{"code": 131047, "title": "Re-engagement message"}]}]),
        );
        assert_eq!(
            meta(&app, "whatsapp", &failed, Some(APP_SECRET))
                .await
                .status(),
            200
        );
        let c = read(&app, &id, &cid).await;
        assert_eq!(
            c["delivery_error"],
            json!({"code": "131047", "title": "Re-engagement message"})
        );
        let (kind, _) = next_delivery_event(&mut app, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(kind, "challenge.undelivered");
        assert_eq!(
            meta(&app, "whatsapp", &delivered, Some(APP_SECRET))
                .await
                .status(),
            200
        );
        assert_eq!(status_of(&app, &id, &cid).await, "delivered");
        let (kind, data) = next_delivery_event(&mut app, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(kind, "challenge.delivered");
        assert_eq!(data["challenge"]["channel"], "whatsapp");
    }
}

/// On a Redis Cluster, with two teams (on different slots) listing the
/// channel: a receipt finds its message in the team that sent it, and one
/// that comes first is parked where that team's send finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_receipts_find_their_team_s_message() {
    const TEST: &str = "on_a_cluster_receipts_find_their_team_s_message";
    let Some(cluster) = tokio::task::spawn_blocking(|| crate::redis_support::shared_cluster(TEST))
        .await
        .unwrap()
    else {
        return;
    };
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        globex_channels: vec!["sms".into()],
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let ids = fake_twilio(&app.chat).await;
    let (id, cid) = sms_challenge(&app, "+15551230041").await;
    assert_eq!(
        twilio(&app, &ids.last(), "delivered", None).await.status(),
        200
    );
    assert_eq!(status_of(&app, &id, &cid).await, "delivered");
    let early = ids.upcoming();
    assert_eq!(twilio(&app, &early, "read", None).await.status(), 200);
    let (id, cid) = sms_challenge(&app, "+15551230042").await;
    assert_eq!(status_of(&app, &id, &cid).await, "read");
    app.stop().await;
}
