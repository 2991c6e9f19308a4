//! Number checks before a phone code is trusted (docs/number-checks.md),
//! against a fake mobile operator built from CAMARA's published API
//! definitions (SIM Swap 2.1.0 and Call Forwarding Signal 0.4.0, release
//! r3.3: its token endpoint, the Open Gateway CIBA backend flow, `check`
//! and `unconditional-call-forwardings`, with errors and hangs on demand)
//! and a fake Twilio Lookup v2: a refused SMS code sends nothing and uses
//! no allowance, a flagged voice code goes and says so, `on_error` open
//! and closed, a ladder's refused step skipped for its e-mail step, the
//! cache and the token reused, a hung operator holding only its own team,
//! and the number in no log line; on both stores.
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;
use crate::voice::twilio_takes;

const PHONE: &str = "+447400123456";
const VOICE: &str = "name = \"voice\"\nkind = \"twilio_voice\"\nbase_url = \"{CHAT_URL}/voice\"\naccount_sid = \"ACvoice\"\nauth_token = \"${CG_TEST_UNSET_VOICE:-voice-test-token}\"\nfrom = \"+15550001111\"\n";

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

/// `[number_checks]` of kind `camara` on the fake operator at `op`, with
/// more lines `extra`.
fn camara(op: &MockServer, extra: &str) -> String {
    format!(
        "[number_checks]\nkind = \"camara\"\nsim_swap_url = \"{u}/sim-swap/v2\"\n\
         token_url = \"{u}/token\"\nclient_id = \"chatgate\"\nclient_secret = \"op-secret\"\n{extra}\n",
        u = op.uri()
    )
}

/// Acme with `[settings.otp]` lines `otp` and the team's `[number_checks]`.
fn setup(otp: &str, checks: String) -> Setup {
    Setup {
        unlisted_channels: vec![("voice".into(), VOICE.into())],
        voice_channel: Some("voice".into()),
        team_extra: format!("[settings.otp]\n{otp}\n\n{checks}"),
        ..Setup::default()
    }
}

/// The operator's token endpoint issues `op-token-1` for an hour.
async fn token_ok(op: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "op-token-1", "token_type": "Bearer", "expires_in": 3600}),
        ))
        .mount(op)
        .await;
}

/// The operator answers `check` with `answer`.
async fn check_answers(op: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/sim-swap/v2/check"))
        .respond_with(answer)
        .mount(op)
        .await;
}

fn swapped(yes: bool) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "swapped": yes }))
}

/// How many requests the fake chat providers got at paths ending `end`.
async fn sent_to(app: &TestApp, end: &str) -> usize {
    let requests = app.chat.received_requests().await.unwrap_or_default();
    requests
        .iter()
        .filter(|r| r.url.path().ends_with(end))
        .count()
}

async fn received(op: &MockServer, p: &str) -> Vec<Request> {
    let requests = op.received_requests().await.unwrap_or_default();
    requests.into_iter().filter(|r| r.url.path() == p).collect()
}

fn form(r: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&r.body).into_owned().collect()
}

fn header<'r>(r: &'r Request, name: &str) -> &'r str {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn with_phone(app: &TestApp) -> String {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
            "contact": {"phone": PHONE, "email": "ada@example.test"}}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

async fn start(app: &TestApp, id: &str, delivery: &str) -> reqwest::Response {
    let body = json!({"method": "otp", "delivery": delivery});
    crate::challenges::start(app, id, body).await
}

async fn read(app: &TestApp, id: &str, cid: &str) -> Value {
    let p = format!("/v1/interactions/{id}/challenges/{cid}");
    app.get_json(&p, Some(&app.keys.admin)).await
}

both!(
    a_swapped_number_is_refused_and_nothing_is_sent_nor_counted,
    |backend| async move {
        let op = MockServer::start().await;
        let checks = camara(&op, "cache = \"0s\"");
        let Some(mut app) = spawn_with(backend, setup("max_sends = 1", checks)).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(true)).await;
        let id = with_phone(&app).await;
        let body = assert_problem(start(&app, &id, "sms").await, 403, "number_refused").await;
        assert_eq!(body["reason"], "sim_swap");
        assert_eq!(sent_to(&app, "/Messages.json").await, 0, "nothing sent");
        let failed = app
            .next_event("challenge.failed", Duration::from_secs(5))
            .await;
        let failed = event_data(&failed.expect("challenge.failed"));
        assert_eq!(failed["reason"], "number_refused");

        // What the operator received: a client-credentials token, then the
        // check with the number and the team's maxAge in hours.
        let tokens = received(&op, "/token").await;
        assert_eq!(tokens.len(), 1);
        let form = form(&tokens[0]);
        assert!(
            form.contains(&("grant_type".into(), "client_credentials".into())),
            "{form:?}"
        );
        let scope = (
            "scope".into(),
            "dpv:FraudPreventionAndDetection#sim-swap".into(),
        );
        assert!(form.contains(&scope), "{form:?}");
        // client_secret_basic: base64("chatgate:op-secret").
        assert_eq!(
            header(&tokens[0], "authorization"),
            "Basic Y2hhdGdhdGU6b3Atc2VjcmV0"
        );
        let checks = received(&op, "/sim-swap/v2/check").await;
        assert_eq!(checks.len(), 1);
        assert_eq!(header(&checks[0], "authorization"), "Bearer op-token-1");
        let sent: Value = serde_json::from_slice(&checks[0].body).unwrap();
        assert_eq!(sent, json!({"phoneNumber": PHONE, "maxAge": 72}));

        // No allowance was used: with max_sends = 1, a clean number's
        // code still goes, and says what was found.
        op.reset().await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        let res = start(&app, &id, "sms").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        let found = json!({"sim_swap": false, "call_forwarding": null,
            "checked_at": app.now().to_rfc3339(), "source": "camara"});
        assert_eq!(c["number_check"], found, "{c}");
        assert_eq!(sent_to(&app, "/Messages.json").await, 1);
        let cid = c["challenge_id"].as_str().unwrap();
        assert_eq!(read(&app, &id, cid).await["number_check"], found);
        let created = app
            .next_event("challenge.created", Duration::from_secs(5))
            .await;
        let created = event_data(&created.expect("challenge.created"));
        assert_eq!(created["challenge"]["number_check"], found);
        assert_eq!(
            received(&op, "/token").await.len(),
            0,
            "the token was reused"
        );
    }
);

both!(
    a_voice_code_to_a_forwarded_number_is_refused_or_flagged,
    |backend| async move {
        let op = MockServer::start().await;
        let extra = format!(
            "call_forwarding_url = \"{}/call-forwarding-signal/v0.4\"\ncall_forwarding = \"flag\"",
            op.uri()
        );
        let Some(app) = spawn_with(backend, setup("", camara(&op, &extra))).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        Mock::given(method("POST"))
            .and(path(
                "/call-forwarding-signal/v0.4/unconditional-call-forwardings",
            ))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"active": true})))
            .mount(&op)
            .await;
        let id = with_phone(&app).await;
        let res = start(&app, &id, "voice").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["number_check"]["sim_swap"], false);
        assert_eq!(c["number_check"]["call_forwarding"], true, "flagged: {c}");
        assert_eq!(sent_to(&app, "/Calls.json").await, 1, "the call went");
        let fwd = received(
            &op,
            "/call-forwarding-signal/v0.4/unconditional-call-forwardings",
        )
        .await;
        assert_eq!(fwd.len(), 1);
        let sent: Value = serde_json::from_slice(&fwd[0].body).unwrap();
        assert_eq!(sent, json!({"phoneNumber": PHONE}));
        // An SMS code does not ask about forwarding (its answer is cached).
        let res = start(&app, &with_phone(&app).await, "sms").await;
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["number_check"]["call_forwarding"], Value::Null);
        assert_eq!(received(&op, "/sim-swap/v2/check").await.len(), 1, "cached");
    }
);

both!(
    a_ladder_moved_on_to_its_voice_step_says_what_was_found_about_forwarding,
    |backend| async move {
        let op = MockServer::start().await;
        let extra = format!(
            "call_forwarding_url = \"{}/cfs/v0.4\"\ncall_forwarding = \"flag\"",
            op.uri()
        );
        let otp = "ladder = [\"sms\", \"voice\"]";
        let Some(app) = spawn_with(backend, setup(otp, camara(&op, &extra))).await else {
            return;
        };
        no_swap_but_forwarded(&app, &op).await;
        let id = with_phone(&app).await;
        let res = start(&app, &id, "ladder").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "sms", "{c}");
        // The SMS code: forwarding is not its question.
        assert_eq!(c["number_check"]["call_forwarding"], Value::Null, "{c}");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let res = crate::ladder::advance(&app, &id, &cid).await;
        assert_eq!(res.status(), 200);
        assert_eq!(sent_to(&app, "/Calls.json").await, 1, "the call went");
        // The code now rings on a forwarded phone, and the challenge says
        // so: an intent asking for a clean number is not met by it.
        let read = read(&app, &id, &cid).await;
        assert_eq!(read["number_check"]["sim_swap"], false, "{read}");
        assert_eq!(read["number_check"]["call_forwarding"], true, "{read}");
    }
);

/// The providers take the messages; the operator at `op` finds no swap
/// and forwarding active (`call_forwarding_url` at `{op}/cfs/v0.4`).
async fn no_swap_but_forwarded(app: &TestApp, op: &MockServer) {
    twilio_takes(app).await;
    token_ok(op).await;
    check_answers(op, swapped(false)).await;
    Mock::given(method("POST"))
        .and(path("/cfs/v0.4/unconditional-call-forwardings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"active": true})))
        .mount(op)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_refuses_a_voice_code_by_default() {
    let op = MockServer::start().await;
    let extra = format!("call_forwarding_url = \"{}/cfs/v0.4\"", op.uri());
    let app = spawn_with(Backend::Memory, setup("", camara(&op, &extra)))
        .await
        .unwrap();
    no_swap_but_forwarded(&app, &op).await;
    let id = with_phone(&app).await;
    let body = assert_problem(start(&app, &id, "voice").await, 403, "number_refused").await;
    assert_eq!(body["reason"], "call_forwarding");
    assert_eq!(sent_to(&app, "/Calls.json").await, 0, "no call");
}

both!(
    a_failing_check_lets_the_code_go_open_and_refuses_it_closed,
    |backend| async move {
        let op = MockServer::start().await;
        let open = camara(&op, "");
        let Some(app) = spawn_with(backend, setup("", open)).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, ResponseTemplate::new(503)).await;
        let res = start(&app, &with_phone(&app).await, "sms").await;
        assert_eq!(res.status(), 201, "on_error = \"open\" is the default");
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["number_check"]["sim_swap"], Value::Null);
        drop(app);

        let closed = camara(&op, "on_error = \"closed\"");
        let app = spawn_with(backend, setup("", closed)).await.unwrap();
        twilio_takes(&app).await;
        let res = start(&app, &with_phone(&app).await, "sms").await;
        let body = assert_problem(res, 403, "number_refused").await;
        assert_eq!(body["reason"], "check_failed");
        assert_eq!(sent_to(&app, "/Messages.json").await, 0);

        // An operator that does not serve the number (404) is unknown, not
        // an error: the code goes even closed.
        op.reset().await;
        token_ok(&op).await;
        check_answers(&op, ResponseTemplate::new(404)).await;
        let res = start(&app, &with_phone(&app).await, "sms").await;
        assert_eq!(res.status(), 201);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_operator_holds_only_its_own_team_and_the_check_ends_in_5_s() {
    let op = MockServer::start().await;
    let mut s = setup("", camara(&op, ""));
    s.globex_channels = vec!["sms".into()];
    let app = spawn_with(Backend::Memory, s).await.unwrap();
    twilio_takes(&app).await;
    token_ok(&op).await;
    check_answers(&op, swapped(false).set_delay(Duration::from_secs(30))).await;
    let id = with_phone(&app).await;
    let began = Instant::now();
    let hung = start(&app, &id, "sms");
    let other = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Globex, whose SMS conversation is answered while acme waits.
        let v = app
            .request(
                reqwest::Method::POST,
                "/v1/interactions",
                Some(&app.keys.globex_bot),
            )
            .json(
                &json!({"channel": "sms", "conversation_id": "+447400999888",
                "contact": {"phone": "+447400999888"}}),
            )
            .send()
            .await
            .unwrap();
        let v: Value = v.json().await.unwrap();
        let gid = v["id"].as_str().unwrap().to_string();
        let at = Instant::now();
        let res = app
            .request(
                reqwest::Method::POST,
                &format!("/v1/interactions/{gid}/challenges"),
                Some(&app.keys.globex_bot),
            )
            .json(&json!({"method": "otp", "delivery": "chat"}))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, at.elapsed(), res.text().await.unwrap())
    };
    let (res, (other_status, other_took, other_body)) = tokio::join!(hung, other);
    let took = began.elapsed();
    assert_eq!(other_status, 201, "{other_body}");
    assert!(
        other_took < Duration::from_secs(2),
        "globex waited {other_took:?}"
    );
    assert_eq!(res.status(), 201, "on_error = \"open\"");
    assert!(
        (Duration::from_millis(4500)..Duration::from_secs(8)).contains(&took),
        "the check ended after {took:?}"
    );
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["number_check"]["sim_swap"], Value::Null);
}

both!(
    twilio_lookup_refuses_a_recent_swap_by_its_date,
    |backend| async move {
        let lookup = MockServer::start().await;
        let checks = format!(
            "[number_checks]\nkind = \"twilio_lookup\"\naccount_sid = \"ACnum\"\n\
             auth_token = \"lookup-token\"\nbase_url = \"{}\"\n",
            lookup.uri()
        );
        let Some(app) = spawn_with(backend, setup("", checks)).await else {
            return;
        };
        twilio_takes(&app).await;
        let recent = app.now().minus(Duration::from_secs(3600)).to_rfc3339();
        Mock::given(method("GET"))
            .and(path_regex("^/v2/PhoneNumbers/"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "phone_number": PHONE,
                "sim_swap": {"last_sim_swap": {"last_sim_swap_date": recent,
                    "swapped_period": "PT24H", "swapped_in_period": false},
                    "carrier_name": "Vodafone UK", "mobile_country_code": "234",
                    "mobile_network_code": "15", "error_code": null},
                "call_forwarding": null})))
            .mount(&lookup)
            .await;
        let id = with_phone(&app).await;
        let body = assert_problem(start(&app, &id, "sms").await, 403, "number_refused").await;
        assert_eq!(body["reason"], "sim_swap", "the date within 72h wins");
        let asked = lookup.received_requests().await.unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].url.path(), "/v2/PhoneNumbers/%2B447400123456");
        assert_eq!(asked[0].url.query(), Some("Fields=sim_swap"));
        // base64("ACnum:lookup-token")
        assert_eq!(
            header(&asked[0], "authorization"),
            "Basic QUNudW06bG9va3VwLXRva2Vu"
        );
        assert_eq!(sent_to(&app, "/Messages.json").await, 0);
    }
);

/// A ladder's start `res` answered 201 with its e-mail step, and no SMS
/// went to the swapped number.
async fn by_mail_alone(app: &TestApp, res: reqwest::Response) {
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["channel"], "mail", "{c}");
    assert_eq!(
        sent_to(app, "/Messages.json").await,
        0,
        "the SMS step was skipped"
    );
}

/// A fake SMTP server on loopback that takes every message: its port,
/// and how many messages it took so far.
async fn smtp_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let taken = std::sync::Arc::new(AtomicUsize::new(0));
    let count = taken.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let (r, mut w) = socket.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 fake ESMTP\r\n").await;
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        count.fetch_add(1, Ordering::SeqCst);
                        b"250 taken\r\n"
                    } else {
                        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                            "EHLO" | "HELO" => b"250 fake\r\n",
                            "DATA" => {
                                in_data = true;
                                b"354 go on\r\n"
                            }
                            "QUIT" => {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                break;
                            }
                            _ => b"250 ok\r\n",
                        }
                    };
                    if w.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, taken)
}

both!(
    a_ladder_skips_its_refused_sms_step_and_its_email_step_sends,
    |backend| async move {
        use std::sync::atomic::Ordering;
        let op = MockServer::start().await;
        let (port, taken) = smtp_server().await;
        let mail = format!(
            "name = \"mail\"\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"codes@acme.test\"\n"
        );
        let mut s = setup("ladder = [\"sms\", \"mail\"]", camara(&op, ""));
        s.unlisted_channels.push(("mail".into(), mail.clone()));
        let Some(app) = spawn_with(backend, s).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(true)).await;
        let id = with_phone(&app).await;
        by_mail_alone(&app, start(&app, &id, "ladder").await).await;
        assert_eq!(taken.load(Ordering::SeqCst), 1, "the e-mail went");
        assert_eq!(received(&op, "/sim-swap/v2/check").await.len(), 1);

        // A payment's ladder keeps only the steps that show it (not the
        // Telegram gateway's), so its steps stand elsewhere than in the
        // team's ladder: the refused ones are still those to the swapped
        // number, and its e-mail step goes.
        drop(app);
        let mut s = setup("ladder = [\"tg\", \"sms\", \"mail\"]", camara(&op, ""));
        s.unlisted_channels
            .push(("tg".into(), format!("name = \"tg\"\n{}", crate::ladder::TG)));
        s.unlisted_channels.push(("mail".into(), mail));
        let app = spawn_with(backend, s).await.unwrap();
        twilio_takes(&app).await;
        let payment = crate::payments::payment();
        let body = json!({"method": "otp", "delivery": "ladder", "transaction": payment});
        let res = crate::challenges::start(&app, &with_phone(&app).await, body).await;
        by_mail_alone(&app, res).await;
        assert_eq!(taken.load(Ordering::SeqCst), 2, "the payment's e-mail went");

        // A ladder with only the refused step left is refused like a
        // single delivery.
        drop(app);
        let app = spawn_with(backend, setup("ladder = [\"sms\"]", camara(&op, "")))
            .await
            .unwrap();
        let res = start(&app, &with_phone(&app).await, "ladder").await;
        let body = assert_problem(res, 403, "number_refused").await;
        assert_eq!(body["reason"], "sim_swap");
    }
);

both!(
    an_answer_is_reused_for_cache_and_asked_again_after,
    |backend| async move {
        let op = MockServer::start().await;
        let Some(app) = spawn_with(backend, setup("", camara(&op, "cache = \"10m\""))).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        for _ in 0..3 {
            let res = start(&app, &with_phone(&app).await, "sms").await;
            assert_eq!(res.status(), 201);
        }
        assert_eq!(received(&op, "/sim-swap/v2/check").await.len(), 1);
        app.advance(601);
        let res = start(&app, &with_phone(&app).await, "sms").await;
        assert_eq!(res.status(), 201);
        assert_eq!(received(&op, "/sim-swap/v2/check").await.len(), 2);
        assert_eq!(
            received(&op, "/token").await.len(),
            1,
            "one token for an hour"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ciba_backend_flow_asks_a_token_for_the_number() {
    let op = MockServer::start().await;
    let extra = format!(
        "auth = \"ciba\"\nbc_authorize_url = \"{}/bc-authorize\"",
        op.uri()
    );
    let app = spawn_with(Backend::Memory, setup("", camara(&op, &extra)))
        .await
        .unwrap();
    twilio_takes(&app).await;
    Mock::given(method("POST"))
        .and(path("/bc-authorize"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"auth_req_id": "arid-1", "expires_in": 120, "interval": 1})),
        )
        .mount(&op)
        .await;
    // Pending once, then the token.
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(
            ResponseTemplate::new(400).set_body_json(json!({"error": "authorization_pending"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&op)
        .await;
    token_ok(&op).await;
    check_answers(&op, swapped(false)).await;
    let res = start(&app, &with_phone(&app).await, "sms").await;
    assert_eq!(res.status(), 201);
    let bc = received(&op, "/bc-authorize").await;
    assert_eq!(bc.len(), 1);
    let f = form(&bc[0]);
    assert!(
        f.contains(&("login_hint".into(), format!("tel:{PHONE}"))),
        "{f:?}"
    );
    let tokens = received(&op, "/token").await;
    assert_eq!(tokens.len(), 2, "polled while pending");
    let f = form(&tokens[1]);
    assert!(f.contains(&(
        "grant_type".into(),
        "urn:openid:params:grant-type:ciba".into()
    )));
    assert!(f.contains(&("auth_req_id".into(), "arid-1".into())));
}

/// Captures what this thread logs at DEBUG and above.
#[derive(Clone, Default)]
struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_failing_operator_is_logged_once_and_the_number_never() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let op = MockServer::start().await;
    let app = spawn_with(Backend::Memory, setup("", camara(&op, "")))
        .await
        .unwrap();
    twilio_takes(&app).await;
    token_ok(&op).await;
    // The operator fails, echoing what it was sent.
    check_answers(
        &op,
        ResponseTemplate::new(500).set_body_json(json!({"message": format!("bad {PHONE}")})),
    )
    .await;
    for _ in 0..3 {
        let res = start(&app, &with_phone(&app).await, "sms").await;
        assert_eq!(res.status(), 201);
    }
    op.reset().await;
    token_ok(&op).await;
    check_answers(&op, swapped(false)).await;
    let res = start(&app, &with_phone(&app).await, "sms").await;
    assert_eq!(res.status(), 201);
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let failing = logged.matches("number checks failing").count();
    assert_eq!(failing, 1, "{logged}");
    assert_eq!(
        logged.matches("number checks answer again").count(),
        1,
        "{logged}"
    );
    for hidden in [PHONE, "447400123456", "op-token-1", "op-secret"] {
        assert!(!logged.contains(hidden), "{hidden} logged:\n{logged}");
    }
    // Counted by kind and result, never by number.
    let metrics = app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |result: &str| {
        let line = format!("chatgate_number_checks_total{{kind=\"camara\",result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        series("error") >= 3.0 && series("clean") >= 1.0,
        "{metrics}"
    );
    assert!(!metrics.contains("447400123456"), "a number in /metrics");
}

/// The code of the last SMS the fake Twilio took.
async fn last_sms_code(app: &TestApp) -> String {
    let requests = app.chat.received_requests().await.unwrap_or_default();
    let sms = requests
        .iter()
        .rev()
        .find(|r| r.url.path().ends_with("/Messages.json"))
        .expect("an SMS");
    let body = form(sms)
        .into_iter()
        .find(|(k, _)| k == "Body")
        .map(|(_, v)| v)
        .unwrap();
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .unwrap()
        .to_string()
}

async fn payment(app: &TestApp, id: &str) -> Value {
    let p = format!("/v1/interactions/{id}/assurance?intent=payment");
    app.get_json(&p, Some(&app.keys.bot)).await
}

/// An SMS code to `id`'s phone, typed back.
async fn sms_code(app: &TestApp, id: &str) {
    let res = start(app, id, "sms").await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    let cid = c["challenge_id"].as_str().unwrap();
    let code = last_sms_code(app).await;
    assert_eq!(app.verify_code(id, cid, &code).await.status(), 200);
}

both!(
    an_intent_asking_a_clean_check_is_met_only_after_one,
    |backend| async move {
        let op = MockServer::start().await;
        let intent = "[settings.intents.payment]\nmax_age = \"5m\"\nmethods = [\"otp\", \"login_link\"]\nnumber_check = \"clean\"\n\n";
        let checks = camara(&op, "on_sim_swap = \"flag\"\ncache = \"0s\"");
        let Some(app) = spawn_with(backend, setup("", format!("{intent}{checks}"))).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        let id = with_phone(&app).await;
        sms_code(&app, &id).await;
        let a = payment(&app, &id).await;
        assert_eq!(a["satisfied"], true, "{a}");

        // A flagged swap lets the code go, and it proves the customer,
        // but not for this intent.
        op.reset().await;
        token_ok(&op).await;
        check_answers(&op, swapped(true)).await;
        sms_code(&app, &id).await;
        let a = payment(&app, &id).await;
        assert_eq!(a["satisfied"], false, "{a}");
        assert_eq!(a["unmet"], json!(["number_check"]));
        // A login link is not bound by it.
        app.authenticate(&id, "cust-42").await;
        assert_eq!(payment(&app, &id).await["satisfied"], true);
    }
);

both!(
    a_refused_number_is_not_recognized_and_stays_remembered,
    |backend| async move {
        let op = MockServer::start().await;
        let s = Setup {
            defaults: "recognize_for = \"30d\"".into(),
            team_extra: camara(&op, "cache = \"0s\""),
            ..Setup::default()
        };
        let Some(app) = spawn_with(backend, s).await else {
            return;
        };
        token_ok(&op).await;
        check_answers(&op, swapped(true)).await;
        let sms = || {
            app.create(
                json!({"channel": "sms", "conversation_id": PHONE, "contact": {"phone": PHONE}}),
            )
        };
        let first = sms().await;
        let id = first["id"].as_str().unwrap().to_string();
        app.authenticate(&id, "cust-42").await;
        assert_eq!(
            received(&op, "/sim-swap/v2/check").await.len(),
            0,
            "not remembered yet"
        );

        // The next day, a new interaction of the conversation: its number
        // was swapped, so it is not recognized.
        app.advance(86_400 + 60);
        let second = sms().await;
        assert_ne!(second["id"], first["id"]);
        assert_eq!(second["recognized"], Value::Null, "{second}");
        let read = app.get(second["id"].as_str().unwrap()).await;
        assert_eq!(read["recognized"], Value::Null);
        assert_eq!(received(&op, "/sim-swap/v2/check").await.len(), 1);

        // The conversation stays remembered: once the number is clean, a
        // new interaction is recognized.
        op.reset().await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        app.advance(86_400 + 60);
        let third = sms().await;
        assert_eq!(third["recognized"]["customer_id"], "cust-42", "{third}");
    }
);

both!(
    a_cached_answer_keeps_the_time_the_operator_gave_it,
    |backend| async move {
        let op = MockServer::start().await;
        let Some(app) = spawn_with(backend, setup("", camara(&op, "cache = \"10m\""))).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        let answered = app.now().to_rfc3339();
        let res = start(&app, &with_phone(&app).await, "sms").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["number_check"]["checked_at"], answered.as_str(), "{c}");

        // Two minutes on, a second code is sent on the kept answer: it
        // says when the operator gave it, not now.
        app.advance(120);
        let id = with_phone(&app).await;
        let res = start(&app, &id, "sms").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["number_check"]["checked_at"], answered.as_str(), "{c}");
        let cid = c["challenge_id"].as_str().unwrap();
        let read = read(&app, &id, cid).await;
        assert_eq!(read["number_check"]["checked_at"], answered.as_str());
        assert_eq!(received(&op, "/sim-swap/v2/check").await.len(), 1, "cached");
    }
);

both!(
    a_reload_keeps_the_answers_and_token_while_the_section_stays_as_it_was,
    |backend| async move {
        let op = MockServer::start().await;
        let Some(app) = spawn_with(backend, setup("", camara(&op, "cache = \"10m\""))).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        let asked = || async {
            let checks = received(&op, "/sim-swap/v2/check").await.len();
            (checks, received(&op, "/token").await.len())
        };
        assert_eq!(
            start(&app, &with_phone(&app).await, "sms").await.status(),
            201
        );
        assert_eq!(asked().await, (1, 1));

        // The files read again, `[number_checks]` the same (a comment
        // added): the answer and the token are kept.
        let acme = app.dir.join("config/teams/acme.toml");
        let text = std::fs::read_to_string(&acme).unwrap();
        let kept = text.replace("cache = \"10m\"", "cache = \"10m\" # ten minutes");
        assert_ne!(kept, text);
        std::fs::write(&acme, &kept).unwrap();
        crate::reload::reload_applies(&app).await;
        assert_eq!(
            start(&app, &with_phone(&app).await, "sms").await.status(),
            201
        );
        assert_eq!(asked().await, (1, 1), "kept across the reload");

        // Changed: the team starts afresh, token included.
        std::fs::write(&acme, kept.replace("cache = \"10m\"", "cache = \"11m\"")).unwrap();
        crate::reload::reload_applies(&app).await;
        assert_eq!(
            start(&app, &with_phone(&app).await, "sms").await.status(),
            201
        );
        assert_eq!(asked().await, (2, 2), "dropped by the changed section");
    }
);

both!(
    a_refused_challenge_s_event_names_the_challenge,
    |backend| async move {
        let op = MockServer::start().await;
        let checks = camara(&op, "cache = \"0s\"");
        let Some(mut app) = spawn_with(backend, setup("ladder = [\"sms\"]", checks)).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        check_answers(&op, swapped(true)).await;
        let id = with_phone(&app).await;
        for delivery in ["sms", "ladder"] {
            let refused_at = app.now().to_rfc3339();
            let res = start(&app, &id, delivery).await;
            assert_problem(res, 403, "number_refused").await;
            let failed = app
                .next_event("challenge.failed", Duration::from_secs(5))
                .await;
            let failed = event_data(&failed.expect("challenge.failed"));
            assert_eq!(failed["reason"], "number_refused");
            let c = &failed["challenge"];
            assert_eq!(c["method"], "otp", "{failed}");
            assert_eq!(c["delivery"], delivery, "{failed}");
            // Refused before it opened: it ended as it was asked for.
            assert_eq!(c["expires_at"], refused_at.as_str(), "{failed}");
            assert_eq!(c["attempts_remaining"], 0);
            assert!(c["challenge_id"].is_string());
            app.advance(1);
        }

        // A wrong code's challenge.failed names its challenge the same way.
        op.reset().await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        let res = start(&app, &id, "sms").await;
        assert_eq!(res.status(), 201);
        let started: Value = res.json().await.unwrap();
        let cid = started["challenge_id"].as_str().unwrap();
        let code = last_sms_code(&app).await;
        let res = app.verify_code(&id, cid, &wrong_code(&code)).await;
        assert_eq!(res.status(), 401);
        let failed = app
            .next_event("challenge.failed", Duration::from_secs(5))
            .await;
        let failed = event_data(&failed.expect("challenge.failed"));
        let c = &failed["challenge"];
        assert_eq!(c["challenge_id"], cid);
        assert_eq!(
            (&c["method"], &c["delivery"]),
            (&json!("otp"), &json!("sms"))
        );
        assert_eq!(c["expires_at"], started["expires_at"], "{failed}");
        assert_eq!(c["attempts_remaining"], 2);
    }
);

both!(
    a_ladder_s_steps_to_one_number_share_one_answer,
    |backend| async move {
        let op = MockServer::start().await;
        // Nothing kept between questions: only the ladder shares one.
        let mut s = crate::ladder::ladder(&["sms", "wa"], "");
        s.team_extra += &camara(&op, "cache = \"0s\"");
        let Some(app) = spawn_with(backend, s).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        Mock::given(method("POST"))
            .and(path("/sim-swap/v2/check"))
            .respond_with(swapped(false))
            .expect(1)
            .mount(&op)
            .await;
        let id = crate::ladder::with_phone(&app, PHONE).await;
        let answered = app.now().to_rfc3339();
        let res = start(&app, &id, "ladder").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "sms", "{c}");
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        app.advance(10);
        let res = crate::ladder::advance(&app, &id, &cid).await;
        assert_eq!(res.status(), 200);
        let moved: Value = res.json().await.unwrap();
        assert_eq!(moved["channel"], "wa", "{moved}");
        assert_eq!(
            sent_to(&app, "/messages").await,
            1,
            "the WhatsApp code went"
        );
        // The WhatsApp step's number is the SMS step's: the one answer, of
        // its time.
        assert_eq!(
            received(&op, "/sim-swap/v2/check").await.len(),
            1,
            "one question per number and ladder"
        );
        op.verify().await;
        let read = read(&app, &id, &cid).await;
        assert_eq!(read["number_check"]["sim_swap"], false, "{read}");
        assert_eq!(read["number_check"]["checked_at"], answered.as_str());
    }
);

/// An answer of `content_type` holding `body`, with status 200.
fn raw_answer(content_type: &str, body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), content_type)
}

// docs/number-checks.md#how-answers-are-read: a member named twice (at
// any depth), or a body not declared `application/json`, is the
// operator's error, never a finding: with `on_error = "open"` the code
// goes and the check says `null`.
both!(
    an_answer_read_loosely_is_an_error_never_a_finding,
    |backend| async move {
        let op = MockServer::start().await;
        let extra = format!(
            "cache = \"0s\"\ncall_forwarding_url = \"{}/cfs/v0.4\"\ncall_forwarding = \"flag\"",
            op.uri()
        );
        let Some(app) = spawn_with(backend, setup("", camara(&op, &extra))).await else {
            return;
        };
        twilio_takes(&app).await;
        token_ok(&op).await;
        let json = "application/json";
        let swaps = [
            (json, r#"{"swapped": true, "swapped": false}"#),
            (
                json,
                r#"{"swapped": false, "x": {"a": [{"b": 1, "b": 2}]}}"#,
            ),
            ("text/plain", r#"{"swapped": false}"#),
            ("application/problem+json", r#"{"swapped": false}"#),
        ];
        for (content_type, body) in swaps {
            op.reset().await;
            token_ok(&op).await;
            check_answers(&op, raw_answer(content_type, body)).await;
            let res = start(&app, &with_phone(&app).await, "sms").await;
            assert_eq!(res.status(), 201, "{content_type} {body}");
            let c: Value = res.json().await.unwrap();
            assert_eq!(c["number_check"]["sim_swap"], Value::Null, "{body}: {c}");
        }
        // Call forwarding: the swap answered cleanly, forwarding twice.
        op.reset().await;
        token_ok(&op).await;
        check_answers(&op, swapped(false)).await;
        Mock::given(method("POST"))
            .and(path("/cfs/v0.4/unconditional-call-forwardings"))
            .respond_with(raw_answer(json, r#"{"active": false, "active": true}"#))
            .mount(&op)
            .await;
        let res = start(&app, &with_phone(&app).await, "voice").await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["number_check"]["sim_swap"], false, "{c}");
        assert_eq!(c["number_check"]["call_forwarding"], Value::Null, "{c}");
    }
);

// The same for Twilio Lookup: `sim_swap` twice, or a `text/plain` body.
both!(
    a_lookup_answer_read_loosely_is_an_error_never_a_finding,
    |backend| async move {
        let lookup = MockServer::start().await;
        let checks = format!(
            "[number_checks]\nkind = \"twilio_lookup\"\naccount_sid = \"ACnum\"\n\
             auth_token = \"lookup-token\"\nbase_url = \"{}\"\ncache = \"0s\"\n",
            lookup.uri()
        );
        let Some(app) = spawn_with(backend, setup("", checks)).await else {
            return;
        };
        twilio_takes(&app).await;
        let recent = app.now().minus(Duration::from_secs(3600)).to_rfc3339();
        let swap = |date: &str| {
            format!(
                r#"{{"last_sim_swap": {{"last_sim_swap_date": {date}, "swapped_period": "PT24H",
                "swapped_in_period": false}}, "error_code": null}}"#
            )
        };
        let clean = swap("null");
        let swapped = swap(&format!("\"{recent}\""));
        let answers = [
            (
                "application/json",
                format!(
                    r#"{{"phone_number": "{PHONE}", "sim_swap": {swapped}, "sim_swap": {clean}}}"#
                ),
            ),
            (
                "text/plain",
                format!(r#"{{"phone_number": "{PHONE}", "sim_swap": {clean}}}"#),
            ),
        ];
        for (content_type, body) in answers {
            lookup.reset().await;
            Mock::given(method("GET"))
                .and(path_regex("^/v2/PhoneNumbers/"))
                .respond_with(raw_answer(content_type, &body))
                .mount(&lookup)
                .await;
            let res = start(&app, &with_phone(&app).await, "sms").await;
            assert_eq!(res.status(), 201, "{content_type} {body}");
            let c: Value = res.json().await.unwrap();
            assert_eq!(c["number_check"]["sim_swap"], Value::Null, "{body}: {c}");
        }
    }
);
