//! The chat provider kinds end to end (docs/channels.md): an OTP challenge on
//! an interaction of a `slack`, `telegram` or `whatsapp` channel reaches a
//! fake provider as the provider's documented request, the code read there
//! verifies, and the `authenticated` notice follows through the outbox; a
//! provider's refusal is a 502 `channel_error` carrying its reason.
use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

const SLACK_TOKEN: &str = "xoxb-test-s3cr3t";
const TELEGRAM_TOKEN: &str = "4242:AAtest-s3cr3t";
const WHATSAPP_TOKEN: &str = "EAAtest-s3cr3t";

/// One provider kind: its channel file, the request path and auth it
/// expects, its success answer, and where the text is in its request.
struct Kind {
    name: &'static str,
    file: fn(&str) -> String,
    path: String,
    auth: Option<String>,
    ok: Value,
    text: &'static str,
}

fn slack() -> Kind {
    Kind {
        name: "slack",
        file: |base| {
            format!("name = \"slack\"\nkind = \"slack\"\nbase_url = \"{base}\"\ntoken = \"${{CG_TEST_UNSET_SLACK:-{SLACK_TOKEN}}}\"\n")
        },
        path: "/api/chat.postMessage".into(),
        auth: Some(format!("Bearer {SLACK_TOKEN}")),
        ok: json!({"ok": true, "ts": "1.1"}),
        text: "/text",
    }
}

fn telegram() -> Kind {
    Kind {
        name: "telegram",
        file: |base| {
            format!("name = \"telegram\"\nkind = \"telegram\"\nbase_url = \"{base}\"\ntoken = \"${{CG_TEST_UNSET_TELEGRAM:-{TELEGRAM_TOKEN}}}\"\n")
        },
        path: format!("/bot{TELEGRAM_TOKEN}/sendMessage"),
        auth: None,
        ok: json!({"ok": true, "result": {"message_id": 1}}),
        text: "/text",
    }
}

fn whatsapp() -> Kind {
    Kind {
        name: "whatsapp",
        file: |base| {
            format!("name = \"whatsapp\"\nkind = \"whatsapp\"\nbase_url = \"{base}\"\napi_version = \"v21.0\"\nphone_number_id = \"1065\"\ntoken = \"${{CG_TEST_UNSET_WHATSAPP:-{WHATSAPP_TOKEN}}}\"\n")
        },
        path: "/v21.0/1065/messages".into(),
        auth: Some(format!("Bearer {WHATSAPP_TOKEN}")),
        ok: json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}),
        text: "/text/body",
    }
}

/// The request body the provider should have received for `text`.
fn expected_body(kind: &Kind, conversation: &str, text: &str) -> Value {
    match kind.name {
        "slack" => json!({"channel": conversation, "text": text}),
        "telegram" => json!({"chat_id": conversation, "text": text}),
        _ => json!({
            "messaging_product": "whatsapp",
            "to": conversation,
            "type": "text",
            "text": {"body": text}
        }),
    }
}

/// A fake provider accepting the documented request only, and an app whose
/// acme team has a channel of `kind` pointing at it.
async fn app_with(
    kind: &Kind,
    backend: Backend,
    answer: ResponseTemplate,
) -> Option<(TestApp, MockServer)> {
    let provider = MockServer::start().await;
    let mut mock = Mock::given(method("POST"))
        .and(path(kind.path.as_str()))
        .and(header(
            "content-type",
            if kind.name == "slack" {
                "application/json; charset=utf-8"
            } else {
                "application/json"
            },
        ));
    if let Some(auth) = &kind.auth {
        mock = mock.and(header("authorization", auth.as_str()));
    }
    mock.respond_with(answer).mount(&provider).await;
    let setup = Setup {
        extra_channels: vec![(kind.name.to_string(), (kind.file)(&provider.uri()))],
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, provider))
}

/// The bodies the provider received, as JSON.
async fn received(provider: &MockServer) -> Vec<Value> {
    provider
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice(&r.body).ok())
        .collect()
}

async fn otp_round_trip(kind: Kind, backend: Backend) {
    let Some((app, provider)) = app_with(
        &kind,
        backend,
        ResponseTemplate::new(200).set_body_json(kind.ok.clone()),
    )
    .await
    else {
        return;
    };
    let conversation = match kind.name {
        "whatsapp" => "15552223333".to_string(),
        _ => format!("C{}", Uuid::now_v7().simple()),
    };
    let created = app
        .create(json!({"channel": kind.name, "conversation_id": conversation}))
        .await;
    // A WhatsApp conversation is the customer's number, kept in E.164.
    let conversation = created["conversation_id"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "otp"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["delivered"], true);

    let bodies = received(&provider).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let text = bodies[0]
        .pointer(kind.text)
        .and_then(Value::as_str)
        .unwrap();
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .unwrap()
        .to_string();
    assert_eq!(
        bodies[0],
        expected_body(
            &kind,
            &conversation,
            &format!("Your verification code is {code}. It expires in 3 minutes.")
        )
    );
    assert!(
        app.chat_messages().await.is_empty(),
        "nothing went to the webchat"
    );

    let cid = challenge["challenge_id"].as_str().unwrap();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges/{cid}/verify"),
            Some(&app.keys.bot),
            &json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);

    // The notice is delivered by the outbox dispatcher: wait for it.
    let authenticated = expected_body(&kind, &conversation, "Thank you, you are now verified.");
    let mut seen = false;
    for _ in 0..100 {
        if received(&provider).await.contains(&authenticated) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "no authenticated message: {:?}",
        received(&provider).await
    );
}

macro_rules! round_trip {
    ($name:ident, $kind:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                otp_round_trip($kind, Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                otp_round_trip($kind, Backend::Redis).await;
            }
        }
    };
}

round_trip!(slack_otp_verifies_and_authenticated_follows, slack());
round_trip!(telegram_otp_verifies_and_authenticated_follows, telegram());
round_trip!(whatsapp_otp_verifies_and_authenticated_follows, whatsapp());

/// A provider's refusal answers 502 `channel_error` with its own reason,
/// never the token.
async fn refusal(kind: Kind, answer: ResponseTemplate, reason: &str, token: &str) {
    let Some((app, _provider)) = app_with(&kind, Backend::Memory, answer).await else {
        return;
    };
    let created = app
        .create(json!({"channel": kind.name, "conversation_id": "15550001111"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "otp"}),
        )
        .await;
    let body = assert_problem(res, 502, "channel_error").await;
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(reason), "{body}");
    assert!(!body.to_string().contains(token), "{body}");

    // Counted by kind, timed in a histogram by kind, the token nowhere.
    let metrics = app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let bucket = format!(
        "chatgate_channel_send_seconds_bucket{{kind=\"{}\",le=\"5\"}}",
        kind.name
    );
    assert!(metrics.contains(&bucket), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("chatgate_channel_messages_total{")
                && l.contains(&format!("kind=\"{}\"", kind.name))
                && l.contains("outcome=\"error\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
    assert!(!metrics.contains(token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_ok_false_is_a_channel_error_with_slacks_reason() {
    refusal(
        slack(),
        ResponseTemplate::new(200)
            .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
        "channel_not_found",
        SLACK_TOKEN,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_refusal_is_a_channel_error_with_the_description() {
    refusal(
        telegram(),
        ResponseTemplate::new(400).set_body_json(
            json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
        ),
        "Bad Request: chat not found",
        TELEGRAM_TOKEN,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_refusal_is_a_channel_error_with_the_graph_message() {
    refusal(
        whatsapp(),
        ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "(#131030) Recipient phone number not in allowed list",
            "type": "OAuthException", "code": 131030
        }})),
        "Recipient phone number not in allowed list (code 131030)",
        WHATSAPP_TOKEN,
    )
    .await;
}

/// The Python with `aiosmtpd` (`.ci/run` installs one and names it in
/// `CHATGATE_TEST_SMTP_PYTHON`), or None: mandatory with `CI=true`, else
/// the test skips, loudly.
fn aiosmtpd_python() -> Option<String> {
    let python =
        std::env::var("CHATGATE_TEST_SMTP_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let found = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(python);
    }
    assert!(
        std::env::var("CI").is_err(),
        "aiosmtpd is required in CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: no Python with aiosmtpd (set CHATGATE_TEST_SMTP_PYTHON); the real SMTP server test did not run");
    None
}

/// A real SMTP server (aiosmtpd, writing a Maildir) on loopback, stopped on drop.
struct SmtpServer {
    child: std::process::Child,
    port: u16,
    maildir: std::path::PathBuf,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

async fn start_aiosmtpd(python: &str) -> SmtpServer {
    let port = crate::helpers::free_port();
    // Must not exist yet: the Maildir handler creates it with its folders.
    let maildir = std::env::temp_dir().join(format!("chatgate-smtp-{}", Uuid::now_v7()));
    let child = std::process::Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(&maildir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = SmtpServer {
        child,
        port,
        maildir,
    };
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("aiosmtpd did not listen on {port} within 10 s");
}

/// The messages in the Maildir, as text.
fn mails(maildir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(maildir.join("new"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_to_a_real_smtp_server_without_tls() {
    use chatgate::channels::smtp::{SmtpChannel, SmtpSettings};
    use chatgate::channels::{Channel, Message, Purpose};
    use chatgate::config::SmtpTls;

    let Some(python) = aiosmtpd_python() else {
        return;
    };
    let server = start_aiosmtpd(&python).await;
    let channel = SmtpChannel::new(SmtpSettings {
        host: "127.0.0.1",
        port: server.port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Acme Support <no-reply@acme.example>",
    })
    .unwrap();
    let msg = Message {
        id: Uuid::now_v7(),
        purpose: Purpose::Otp,
        interaction_id: Uuid::now_v7(),
        conversation_id: "conv-1".into(),
        channel: "email".into(),
        to: Some("customer@example.com".into()),
        text: "Your verification code is 482913. It expires in 3 minutes.".into(),
        subject: Some("Your Acme verification".into()),
        code: None,
        public_url: "http://gateway.test".into(),
    };
    channel.send(&msg).await.unwrap();

    let mut got = Vec::new();
    for _ in 0..100 {
        got = mails(&server.maildir);
        if !got.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(got.len(), 1, "one mail in the Maildir");
    let mail = &got[0];
    for expected in [
        "From: \"Acme Support\" <no-reply@acme.example>",
        // The envelope, as the server recorded it.
        "X-MailFrom: no-reply@acme.example",
        "X-RcptTo: customer@example.com",
        "To: customer@example.com",
        "Subject: Your Acme verification",
        "Content-Type: text/plain",
        "Your verification code is 482913. It expires in 3 minutes.",
    ] {
        assert!(mail.contains(expected), "{expected:?} missing in:\n{mail}");
    }
}

/// A delivered login link reaches each provider with `#URL#` as the short
/// URL, and a refused one is `delivered: false`.
async fn login_link_delivery(kind: Kind) {
    let Some((app, provider)) = app_with(
        &kind,
        Backend::Memory,
        ResponseTemplate::new(200).set_body_json(kind.ok.clone()),
    )
    .await
    else {
        return;
    };
    let created = app
        .create(json!({"channel": kind.name, "conversation_id": "15550001111"}))
        .await;
    let id = created["id"].as_str().unwrap();
    let conversation = created["conversation_id"].as_str().unwrap();
    let link = app.issue_link(id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], true);
    let short = link["short_url"].as_str().unwrap();
    assert!(short.starts_with("http://gateway.test/l/"), "{link}");
    let bodies = received(&provider).await;
    assert_eq!(
        bodies,
        vec![expected_body(
            &kind,
            conversation,
            &format!("Please sign in to continue: {short}")
        )]
    );

    provider.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&provider)
        .await;
    let link = app.issue_link(id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_links_are_delivered_on_every_chat_provider() {
    login_link_delivery(slack()).await;
    login_link_delivery(telegram()).await;
    login_link_delivery(whatsapp()).await;
}
