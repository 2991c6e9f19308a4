//! What the gateway logs: no secret, code, PIN, token or key in any line
//! (capture everything a full flow logs, at TRACE, and search it); the
//! stream (stderr), colour (none off a terminal), the JSON format and the
//! one line per request with its problem code (the built binary, as a
//! child process); start-up messages.
use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[derive(Clone, Default)]
pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Captures what this thread logs at INFO and above, without colour,
    /// while the guard lives.
    pub(crate) fn at_info() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let guard = into_at_info(capture.clone());
        (capture, guard)
    }
}

/// Writes what this thread logs at INFO and above, without colour, to
/// `writer` (a clone a line) while the guard lives.
pub(crate) fn into_at_info<W>(writer: W) -> tracing::subscriber::DefaultGuard
where
    W: Write + Clone + Send + Sync + 'static,
{
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_default(subscriber)
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_flow_logs_no_secret() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        eprintln!(
            "another test installed a global subscriber first; run this test alone (nextest does)"
        );
        return;
    }
    let setup = Setup {
        // Codes long enough not to turn up by chance among logged numbers.
        defaults: "otp = { length = 10 }".into(),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let created = app
        .create(
            json!({"channel": "webchat", "conversation_id": "log-test", "session_pin": "90817263"}),
        )
        .await;
    let id = created["id"].as_str().unwrap();
    let link = app.issue_link(id, json!({"deliver": true})).await;
    let token = link["token"].as_str().unwrap().to_string();
    let code = link["short_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    app.request(Method::GET, &format!("/l/{code}"), None)
        .send()
        .await
        .unwrap();
    app.callback(&token, "success", json!({"id": "cust-42"}))
        .await;
    app.callback(&token, "success", json!({"id": "cust-42"}))
        .await;
    let assertion = app.assertion(app.assertion_claims("cust-42"));
    app.post_json(
        &format!("/v1/interactions/{id}/assertion"),
        Some(&app.keys.bot),
        &json!({"assertion": assertion}),
    )
    .await;
    app.request(
        Method::GET,
        "/v1/interactions",
        Some("cg_wrong_key_in_a_log_test"),
    )
    .send()
    .await
    .unwrap();
    // An OTP answered wrong, then right; a session PIN answered wrong, then right.
    let otp_id = app.new_interaction().await;
    let (cid, otp) = app.start_otp(&otp_id).await;
    // Not `wrong_code` (all 0s and 1s, as in any zero-padded number).
    let wrong_otp: String = otp
        .chars()
        .map(|c| char::from(b'0' + (c as u8 - b'0' + 5) % 10))
        .collect();
    assert_eq!(
        app.verify_code(&otp_id, &cid, &wrong_otp).await.status(),
        401
    );
    assert_eq!(app.verify_code(&otp_id, &cid, &otp).await.status(), 200);
    let pin_id = app
        .create(
            json!({"channel": "webchat", "conversation_id": "log-pin", "session_pin": "57294816"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post_json(
            &format!("/v1/interactions/{pin_id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "pin"}),
        )
        .await;
    let pin_cid = res.json::<serde_json::Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.verify_code(&pin_id, &pin_cid, "57294817")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.verify_code(&pin_id, &pin_cid, "57294816")
            .await
            .status(),
        200
    );
    // A payment approved by a code: its approval token is never logged.
    let pay_id = app
        .create(json!({"channel": "webchat", "conversation_id": "log-pay",
                       "customer_ref": "cust-pay", "contact": {"phone": "+15551230000"}}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let payment = json!({"type": "payment", "amount": "120.00", "currency": "EUR",
                         "payee": "ACME Energy Ltd"});
    let res = app
        .post_json(
            &format!("/v1/interactions/{pay_id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "otp", "delivery": "sms", "transaction": payment}),
        )
        .await;
    let pay_cid = res.json::<serde_json::Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let sms = app.chat.received_requests().await.unwrap();
    let body = sms
        .iter()
        .rev()
        .find(|r| r.url.path().ends_with("/Messages.json"))
        .map(|r| String::from_utf8_lossy(&r.body).to_string())
        .unwrap();
    let pay_code: String = body
        .split("Body=")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let approved: serde_json::Value = app
        .verify_code(&pay_id, &pay_cid, &pay_code)
        .await
        .json()
        .await
        .unwrap();
    let approval = approved["approval"]["token"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logged = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(
        logged.contains("request") && logged.contains("invalid_code"),
        "the capture saw the request lines"
    );
    let acme_b64 = app
        .keys
        .acme_security
        .trim_start_matches("whsec_")
        .to_string();
    for (what, secret) in [
        ("bot API key", app.keys.bot.as_str()),
        ("wrong API key", "cg_wrong_key_in_a_log_test"),
        ("security key", acme_b64.as_str()),
        (
            "webchat secret",
            app.keys.webchat_secret.trim_start_matches("whsec_"),
        ),
        ("login token", token.as_str()),
        ("token signature", token.rsplit('.').next().unwrap()),
        ("short-link code", code.as_str()),
        ("assertion", assertion.as_str()),
        ("session PIN", "90817263"),
        ("OTP code", otp.as_str()),
        ("wrong OTP code", wrong_otp.as_str()),
        ("PIN answered", "57294816"),
        ("wrong PIN", "57294817"),
        ("pepper", "test-pepper-0123456789abcdef"),
        ("payment code", pay_code.as_str()),
        ("approval token", approval.as_str()),
        (
            "approval token signature",
            approval.rsplit('.').next().unwrap(),
        ),
    ] {
        if let Some(at) = logged.find(secret) {
            let line = logged[..at].rsplit('\n').next().unwrap_or_default();
            panic!("the log contains the {what}: {line}…");
        }
    }
}

/// A store outage is one warning when it starts and one line when it ends,
/// not a line per failed request.
#[tokio::test]
async fn a_store_outage_is_logged_once_then_summarised() {
    use crate::redis_support::OwnRedis;
    if !redis_available().await {
        return;
    }
    // This test's own thread (a current-thread runtime runs the gateway here too).
    let (capture, _guard) = Capture::at_info();
    let Some(mut server) = OwnRedis::private("a_store_outage_is_logged_once_then_summarised").await
    else {
        return;
    };
    let port = server.port;
    let setup = Setup {
        redis_url: Some(server.url()),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let id = app.new_interaction().await;
    server.stop();
    for _ in 0..6 {
        let res = app
            .request(
                Method::GET,
                &format!("/v1/interactions/{id}"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
    }
    let _server = OwnRedis::start(port);
    let mut back = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let res = app
            .request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap();
        if res.status() == 200 {
            back = true;
            break;
        }
    }
    assert!(back, "the store came back");
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("store unavailable: requests"), 1, "{text}");
    assert_eq!(count("store is back"), 1, "{text}");
}

/// While the store is down, the background workers (outbox dispatch,
/// expiry sweep) do not warn of each failed call: the store's own outage
/// lines say it. (A cluster failover logged ~190 lines a second.)
#[tokio::test]
async fn background_workers_log_no_line_per_failed_call_during_an_outage() {
    use crate::redis_support::OwnRedis;
    if !redis_available().await {
        return;
    }
    let (capture, _guard) = Capture::at_info();
    let Some(mut server) =
        OwnRedis::private("background_workers_log_no_line_per_failed_call_during_an_outage").await
    else {
        return;
    };
    let port = server.port;
    let setup = Setup {
        redis_url: Some(server.url()),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    app.new_interaction().await;
    server.stop();
    // Two teams, each polled four times a second by its outbox loop and
    // twice by the sweeper: a line per failed call would be ~36 here.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _server = OwnRedis::start(port);
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    // From the outage's first line on.
    let outage = text
        .find("store unavailable")
        .expect("the outage is logged");
    let warnings: Vec<&str> = text[outage..]
        .lines()
        .filter(|l| l.contains("WARN"))
        .collect();
    assert!(
        warnings.len() <= 3,
        "{} warnings in a 3 s outage:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
}

/// A webhook that fails is one warning when its deliveries start failing
/// and one line when they work again, not a line per failed attempt.
#[tokio::test]
async fn a_failing_webhook_is_logged_once_then_summarised() {
    let (capture, _guard) = Capture::at_info();
    let receiver = crate::outbox::receiver_failing_first(12, 500).await;
    let setup = crate::outbox::with_webhook(
        &receiver.uri(),
        &chatgate::domain::secrets::generate_whsec(),
    );
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    for _ in 0..4 {
        app.new_interaction().await;
    }
    // The retries fail (12 attempts of 4 events), then they are delivered.
    let delivered = || async {
        let requests = receiver.received_requests().await.unwrap_or_default();
        requests.len() >= 16
    };
    for _ in 0..600 {
        if delivered().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        app.advance(1);
    }
    assert!(delivered().await, "delivered in the end");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("outbox deliveries failing"), 1, "{text}");
    assert_eq!(count("outbox deliveries work again"), 1, "{text}");
    assert_eq!(count("outbox delivery failed"), 0, "{text}");
}

#[tokio::test]
async fn a_failing_chat_provider_is_logged_once_then_summarised() {
    let (capture, _guard) = Capture::at_info();
    let app = spawn_with(Backend::Memory, Setup::default()).await.unwrap();
    let answering = |status: u16| {
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(status))
    };
    app.chat.reset().await;
    answering(500).mount(&app.chat).await;
    // Ten login links the chat provider refuses to deliver, then one it takes.
    for _ in 0..10 {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({"deliver": true})).await;
        assert_eq!(link["delivered"], false, "{link}");
    }
    app.chat.reset().await;
    answering(200).mount(&app.chat).await;
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], true, "{link}");
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let lines =
        |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).collect() };
    assert_eq!(lines("channel sends failing").len(), 1, "{text}");
    let recovered = lines("channel sends work again");
    assert_eq!(recovered.len(), 1, "{text}");
    assert!(recovered[0].contains("failed_attempts=10"), "{text}");
    assert!(recovered[0].contains("channel=webchat"), "{text}");
    assert_eq!(lines("channel send failed").len(), 0, "{text}");
}

/// The built binary serving the sample config on a free port, its stderr
/// read line by line as it comes.
struct Served {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    base: String,
}

fn chatgate(listen: &str, env: &[(&str, &str)]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"));
    cmd.args(["serve", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/chatgate.toml"))
        .env("CHATGATE_SERVER__LISTEN", listen)
        .env("CHATGATE_SERVER__SHUTDOWN_DRAIN", "0s")
        .env_remove("RUST_LOG")
        .env_remove("CHATGATE_SERVER__LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

impl Served {
    fn start(env: &[(&str, &str)]) -> Served {
        use std::io::BufRead;
        let listen = format!("127.0.0.1:{}", free_port());
        let mut child = chatgate(&listen, env)
            .spawn()
            .expect("the built binary runs");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut served = Served {
            child,
            lines,
            seen: Vec::new(),
            base: format!("http://{listen}"),
        };
        served.wait_for("chatgate listening");
        served
    }

    /// Waits (up to 20 s) for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?} on stderr; saw {:#?}", self.seen),
            }
        }
    }

    /// Stops the server; returns what it wrote to stdout.
    fn stop(mut self) -> String {
        use std::io::Read;
        let _ = self.child.kill();
        let mut out = String::new();
        if let Some(mut stdout) = self.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let _ = self.child.wait();
        out
    }
}

#[tokio::test]
async fn serve_logs_text_to_stderr_without_colour_and_names_its_store() {
    let mut served = Served::start(&[]);
    let listening = served.wait_for("chatgate listening");
    assert!(listening.contains("store=\"memory\""), "{listening}");
    let res = reqwest::get(format!("{}/v1/interactions", served.base))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let line = served.wait_for("route=\"/v1/interactions\"");
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.contains("status=401") && line.contains("code=\"unauthorized\""),
        "{line}"
    );
    let all = served.seen.join("\n");
    let stdout = served.stop();
    assert!(stdout.is_empty(), "stdout holds {stdout:?}");
    assert!(!all.contains('\u{1b}'), "ANSI codes on a pipe: {all:?}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_one_line_per_request() {
    let mut served = Served::start(&[("CHATGATE_SERVER__LOG_FORMAT", "json")]);
    let client = reqwest::Client::new();
    // The sample's demo bot key (config/teams/acme.toml).
    let bot = "cg_djRSRR9F41FRU8gFK4JrTzIA1JXE01jqi4-eFPhRuL0";
    let created: serde_json::Value = client
        .post(format!("{}/v1/interactions", served.base))
        .bearer_auth(bot)
        .json(&json!({"channel": "webchat", "conversation_id": "json-log"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link: serde_json::Value = client
        .post(format!(
            "{}/v1/interactions/{}/login-links",
            served.base,
            created["id"].as_str().unwrap()
        ))
        .bearer_auth(bot)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A login page whose callbacks fail (a wrong key): the operator sees why.
    let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "c"}});
    let res = client
        .post(format!("{}/v1/login/callback", served.base))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_1")
        .header(
            "webhook-timestamp",
            chrono::Utc::now().timestamp().to_string(),
        )
        .header(
            "webhook-signature",
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .header("x-request-id", "req-from-the-login-page")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["x-request-id"], "req-from-the-login-page");
    client
        .get(format!("{}/healthz", served.base))
        .send()
        .await
        .unwrap();
    let res = client
        .get(format!("{}/metrics", served.base))
        .header("x-request-id", "the-last-one")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = client
        .get(format!("{}/v1/interactions", served.base))
        .send()
        .await
        .unwrap();
    let generated = res.headers()["x-request-id"].to_str().unwrap().to_string();
    served.wait_for(&generated);
    let seen = served.seen.clone();
    served.stop();

    let objects: Vec<serde_json::Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| o["message"] == "request")
        .collect();
    let callback: Vec<_> = requests
        .iter()
        .filter(|o| o["request_id"] == "req-from-the-login-page")
        .collect();
    assert_eq!(callback.len(), 1, "one line per request: {seen:#?}");
    let line = callback[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/v1/login/callback");
    assert_eq!(line["status"], 401);
    assert_eq!(line["code"], "invalid_signature");
    assert!(line["latency_ms"].as_f64().is_some(), "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    let created_line = requests
        .iter()
        .find(|o| o["route"] == "/v1/interactions" && o["status"] == 201)
        .expect("the create's line");
    assert_eq!(created_line["team"], "acme", "the API key's team");
    assert!(created_line.get("code").is_none(), "{created_line}");
    let event = objects
        .iter()
        .find(|o| o["message"] == "event" && o["event"] == "interaction.created")
        .expect("the event line");
    assert_eq!(event["interaction"], created["id"]);
    assert_eq!(
        event["subject"].as_str(),
        Some(format!("interaction:{}", created["id"].as_str().unwrap()).as_str())
    );
    assert!(
        requests
            .iter()
            .all(|o| o["route"] != "/healthz" && o["route"] != "/metrics"),
        "probes log at debug: {seen:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|o| o["request_id"] == generated.as_str() && o["status"] == 401),
        "a generated request id is logged: {seen:#?}"
    );
    assert!(
        objects
            .iter()
            .any(|o| o["message"] == "chatgate listening" && o["store"] == "memory"),
        "{seen:#?}"
    );
}

/// The `subject` of the `interaction.created` line of an interaction whose
/// `customer_ref` is a phone number, on the sample config with `env`.
async fn logged_subject_of_a_phone(env: &[(&str, &str)]) -> String {
    let mut env = env.to_vec();
    env.push(("CHATGATE_SERVER__LOG_FORMAT", "json"));
    let mut served = Served::start(&env);
    // The sample's demo bot key (config/teams/acme.toml).
    let bot = "cg_djRSRR9F41FRU8gFK4JrTzIA1JXE01jqi4-eFPhRuL0";
    let conversation = format!("log-ref-{}", uuid::Uuid::now_v7());
    let res = reqwest::Client::new()
        .post(format!("{}/v1/interactions", served.base))
        .bearer_auth(bot)
        .json(&json!({"channel": "webchat", "conversation_id": conversation, "customer_ref": "+15557654321"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
    let line = served.wait_for("interaction.created");
    served.stop();
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    event["subject"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn event_lines_carry_a_digest_of_the_customer_ref_unless_plain_is_asked() {
    let digest = logged_subject_of_a_phone(&[]).await;
    assert!(digest.starts_with("ref:"), "{digest}");
    assert!(!digest.contains("7654321"), "{digest}");
    let plain = logged_subject_of_a_phone(&[("CHATGATE_SERVER__LOG_CUSTOMER_REFS", "plain")]).await;
    assert_eq!(plain, "+15557654321");
    // The digest is stable for one pepper: a customer's lines can be followed.
    assert_eq!(logged_subject_of_a_phone(&[]).await, digest);
}

#[tokio::test]
async fn an_address_in_use_is_one_line_naming_the_address_and_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let out = chatgate(&listen, &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&listen) && last.contains("server.listen") && last.contains("in use"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_bad_log_format_is_a_one_line_config_error() {
    let listen = format!("127.0.0.1:{}", free_port());
    let out = chatgate(&listen, &[("CHATGATE_SERVER__LOG_FORMAT", "xml")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains("server.log_format"), "{stderr}");
    assert!(last.contains("CHATGATE_SERVER__LOG_FORMAT"), "{stderr}");
}

#[tokio::test]
async fn an_issuer_that_is_a_team_id_refuses_to_start() {
    // The sample has a team "acme": its login tokens would pass as its
    // pre-chat assertions.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut child = chatgate(&listen, &[("CHATGATE_SERVER__ISSUER", "acme")])
        .spawn()
        .unwrap();
    // A gateway that starts anyway would serve for ever: stop it after 10 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("server.issuer") && last.contains("must not be a team id"),
        "{stderr}"
    );
    assert!(
        std::net::TcpStream::connect(&listen).is_err(),
        "nothing listens"
    );
}

#[tokio::test]
async fn a_demo_default_is_a_warning_only_in_a_channel_some_team_uses() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["check-config", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/chatgate.toml"))
        .env_remove("WEBCHAT_WEBHOOK_SECRET")
        .env_remove("SLACK_BOT_TOKEN")
        .env_remove("TELEGRAM_BOT_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // webchat is acme's and globex's; no team of the sample uses slack or telegram.
    assert!(stderr.contains("WEBCHAT_WEBHOOK_SECRET"), "{stderr}");
    assert!(!stderr.contains("SLACK_BOT_TOKEN"), "{stderr}");
    assert!(!stderr.contains("TELEGRAM_BOT_TOKEN"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("WARN"));
}

/// An identity provider that refuses its app approvals is one warning
/// when they start failing and one line when it takes one again, not a
/// line per approval (eight in eight seconds here).
#[tokio::test]
async fn a_failing_identity_provider_is_logged_once_then_summarised() {
    let (capture, _guard) = Capture::at_info();
    let Some((app, idp)) = crate::oidc::spawn_idp(Backend::Memory, "ciba = true", "").await else {
        return;
    };
    idp.refuse_ciba(true);
    for _ in 0..8 {
        assert_eq!(app_approval(&app, "cust-42").await, 502);
        app.advance(1);
    }
    idp.refuse_ciba(false);
    assert_eq!(app_approval(&app, "cust-42").await, 201);
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let lines =
        |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).collect() };
    assert_eq!(lines("app approvals are failing").len(), 1, "{text}");
    let recovered = lines("app approvals answered again");
    assert_eq!(recovered.len(), 1, "{text}");
    assert!(recovered[0].contains("failed_attempts=8"), "{text}");
    assert_eq!(lines("identity provider login failed").len(), 0, "{text}");
    // From the first failure on, that is the one warning.
    let failing = text.find("app approvals are failing").unwrap();
    let warnings = text[failing..]
        .lines()
        .filter(|l| l.contains("WARN"))
        .count();
    assert_eq!(warnings, 0, "{text}");
}

/// Starts an app approval for `customer` in a new conversation: its status.
async fn app_approval(app: &TestApp, customer: &str) -> reqwest::StatusCode {
    let body = json!({
        "channel": "webchat",
        "conversation_id": uuid::Uuid::now_v7().to_string(),
        "customer_ref": customer,
    });
    let id = app.create(body).await["id"].as_str().unwrap().to_string();
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &json!({"method": "app"}),
    )
    .await
    .status()
}

/// The same for the polls of approvals under way: eight polled while the
/// token endpoint fails are one warning, and the first answer after it is
/// one line (a discovery answered from its cache is not the provider
/// answering again; counting it so logged a warning and a line per poll).
#[tokio::test]
async fn a_failing_identity_provider_s_polls_are_logged_once_then_summarised() {
    use crate::oidc_provider::{Approval, Misbehave};
    let (capture, _guard) = Capture::at_info();
    let Some((app, idp)) = crate::oidc::spawn_idp(Backend::Memory, "ciba = true", "").await else {
        return;
    };
    idp.approval(Approval::Pending);
    idp.ciba_timing(Some(1), 600);
    for i in 0..8 {
        assert_eq!(app_approval(&app, &format!("cust-{i}")).await, 201);
    }
    let polls = |misbehave: Misbehave| {
        idp.misbehave(misbehave);
        async {
            for _ in 0..3 {
                app.advance(2);
                tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
            }
        }
    };
    polls(Misbehave::TokenEndpointFails).await;
    polls(Misbehave::None).await;
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let lines =
        |needle: &str| -> Vec<&str> { text.lines().filter(|l| l.contains(needle)).collect() };
    let failing = lines("app approvals are failing");
    assert_eq!(failing.len(), 1, "{text}");
    assert!(failing[0].contains("ask=\"poll\""), "{text}");
    assert_eq!(lines("app approvals answered again").len(), 1, "{text}");
}

/// A configuration for the built binary that meets every start-up warning:
/// the memory store, `${NAME:-default}` defaults, secret files others may
/// read (written with the usual umask), a ladder step shorter than a
/// takeover and a voice channel open to any country, on team `id`.
fn warned_of_everything(dir: &std::path::Path, listen: &str) {
    for sub in ["config/teams", "channels"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let system = format!(
        "[server]\nlisten = \"{listen}\"\npublic_url = \"http://{listen}\"\npepper = \"${{file:pepper}}\"\nshutdown_drain = \"0s\"\n"
    );
    std::fs::write(dir.join("config/chatgate.toml"), system).unwrap();
    std::fs::write(dir.join("config/pepper"), "once-test-pepper-0123456789\n").unwrap();
    std::fs::write(
        dir.join("config/webchat-secret"),
        format!("{}\n", chatgate::domain::secrets::generate_whsec()),
    )
    .unwrap();
    let twilio = |name: &str, kind: &str| {
        format!(
            "name = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"http://127.0.0.1:9\"\naccount_sid = \"AC1\"\nauth_token = \"${{CG_TEST_ONCE_TOKEN:-demo}}\"\nfrom = \"+15550006666\"\n"
        )
    };
    let channels = [
        ("webchat", "name = \"webchat\"\nkind = \"webhook\"\nurl = \"${CG_TEST_ONCE_URL:-http://127.0.0.1:9/messages}\"\nsecret = \"${file:../config/webchat-secret}\"\n".to_string()),
        ("sms", twilio("sms", "twilio")),
        ("sms2", twilio("sms2", "twilio")),
        ("voice", twilio("voice", "twilio_voice")),
    ];
    for (name, text) in channels {
        std::fs::write(dir.join(format!("channels/{name}.toml")), text).unwrap();
    }
    warned_team(dir, "initech");
}

/// Team `id` of [`warned_of_everything`]: a short ladder, calls anywhere.
fn warned_team(dir: &std::path::Path, id: &str) {
    let team = format!(
        "id = \"{id}\"\nlogin_url = \"https://login.{id}.test/\"\nchannels = [\"webchat\", \"sms\", \"sms2\"]\nvoice_channel = \"voice\"\n\n\
         [[security_keys]]\nkid = \"{id}-1\"\nsecret = \"{}\"\nprimary = true\n\n\
         [[api_keys]]\nid = \"{id}-bot\"\nrole = \"bot\"\nsha256 = \"{}\"\n\n\
         [settings.otp]\nladder = [\"sms\", \"sms2\"]\nadvance_after = \"2s\"\n",
        chatgate::domain::secrets::generate_whsec(),
        chatgate::domain::secrets::ApiKeyHash::of_key(&chatgate::domain::secrets::generate_api_key()).to_hex()
    );
    std::fs::write(dir.join(format!("config/teams/{id}.toml")), team).unwrap();
}

/// Every start-up warning is logged once per process: two reloads (one
/// reading the same files, one adding a team that meets the same
/// findings) say none of them again (docs/operations.md#logs).
#[tokio::test]
async fn start_up_warnings_are_logged_once_not_again_at_each_reload() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("chatgate-once-{}", uuid::Uuid::now_v7()));
    let listen = format!("127.0.0.1:{}", free_port());
    warned_of_everything(&dir, &listen);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["serve", "--config"])
        .arg(dir.join("config/chatgate.toml"))
        .env_remove("RUST_LOG")
        .env_remove("CHATGATE_SERVER__LOG_FORMAT")
        .env_remove("CG_TEST_ONCE_TOKEN")
        .env_remove("CG_TEST_ONCE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the built binary runs");
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<String> = Vec::new();
    let mut wait_for = |needle: &str, times: usize| -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while seen.iter().filter(|l| l.contains(needle)).count() < times {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => panic!("no line {times} with {needle:?} on stderr; saw {seen:#?}"),
            }
        }
        seen.clone()
    };
    let hang_up = |child: &std::process::Child| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let warnings = [
        "store.backend is memory",
        "environment variable is unset or empty",
        "secret file may be read by group or others",
        "otp.advance_after (2s)",
        "voice_channel without otp.voice_regions",
    ];
    let count = |seen: &[String]| -> Vec<usize> {
        warnings
            .iter()
            .map(|w| seen.iter().filter(|l| l.contains(w)).count())
            .collect()
    };
    let at_start = wait_for("chatgate listening", 1);
    let started = count(&at_start);
    // Each said at start: the defaults once per file and key (the four
    // channel files), each secret file once, the rest once.
    assert_eq!(started, [1, 4, 2, 1, 1], "{at_start:#?}");
    hang_up(&child);
    wait_for("configuration reloaded", 1);
    warned_team(&dir, "initech2");
    hang_up(&child);
    let after = wait_for("teams=2", 1);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(count(&after), started, "{after:#?}");
}

/// A store reset with API teams in force is one ERROR line saying how many
/// teams it wrote back and how many trails it restarted, not a line per
/// team (docs/operations.md#when-redis-comes-back-empty). The runtime runs
/// on this test's thread, so the thread's subscriber sees the gateway's
/// lines and no other test's.
#[tokio::test]
async fn a_store_reset_is_one_error_line_with_the_count_not_a_line_per_team() {
    use crate::operator_writes as writes;
    use chatgate::domain::secrets::ApiKeyHash;
    const TEAMS: usize = 6;
    let (capture, _guard) = Capture::at_info();
    let Some(app) = spawn_with(Backend::Redis, writes::with_operator()).await else {
        return;
    };
    for i in 0..TEAMS {
        let id = format!("reset{i}");
        let mut body = writes::team(&id, &chatgate::domain::secrets::generate_whsec());
        body["api_keys"] = json!([{"id": format!("{id}-bot"), "role": "bot",
            "sha256": ApiKeyHash::of_key(&format!("{id}-bot-key")).to_hex()}]);
        let res = writes::put(&app, &id, &body, &[]).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
    let lines = |capture: &Capture| -> Vec<String> {
        let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
        text.lines().map(str::to_string).collect()
    };
    let before = lines(&capture).len();
    crate::redis_support::TestPrefix::for_prefix(&app.key_prefix).cleanup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for i in 0..TEAMS {
        while writes::stored(&app, &format!("reset{i}")).await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "reset{i} not written back"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after: Vec<String> = lines(&capture).split_off(before);
    let restored: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("written back as they were stored"))
        .collect();
    assert_eq!(restored.len(), 1, "{after:#?}");
    assert!(restored[0].contains("ERROR"), "{restored:?}");
    assert!(
        restored[0].contains(&format!("teams={TEAMS}")),
        "{restored:?}"
    );
    assert!(
        restored[0].contains(&format!("trails_reset={TEAMS}")),
        "{restored:?}"
    );
    let per_team: Vec<&String> = after
        .iter()
        .filter(|l| l.contains("ERROR") && l.contains("team=reset"))
        .collect();
    assert!(per_team.is_empty(), "{per_team:#?}");
}
