//! The chat provider kinds end to end (docs/channels.md), one row per kind
//! in `chat_kinds`: an OTP challenge on an interaction of each reaches a
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

/// One provider kind, a row of the table [`chat_kinds`]: its channel file,
/// the request it must receive (path, auth, content type, body), its
/// success answer and a refusal with the reason the gateway must report.
/// A new chat kind is tested end to end by adding a row.
struct Kind {
    name: &'static str,
    file: fn(&str) -> String,
    path: String,
    auth: Option<String>,
    content_type: &'static str,
    /// A fresh `conversation_id` of this kind (a WhatsApp one is a number).
    conversation: fn() -> String,
    /// The request body for `text` into `conversation` (as the gateway
    /// answers it: E.164 for a number).
    body: fn(&str, &str) -> Value,
    /// Where the text is in that body.
    text: &'static str,
    ok: Value,
    /// A refusal of the provider, and the reason the 502 must carry.
    refusal: fn() -> (ResponseTemplate, &'static str),
    /// The credential no answer may show.
    token: &'static str,
}

/// Every chat provider kind, one row each. Slack and Telegram files say
/// `vouches_for_sender = true` (an app or bot that talks only in direct
/// messages), so that a code may go into their chats
/// (docs/api.md#what-a-code-proves).
fn chat_kinds() -> Vec<Kind> {
    vec![slack(), telegram(), whatsapp()]
}

fn chat_id() -> String {
    format!("C{}", Uuid::now_v7().simple())
}

fn slack() -> Kind {
    Kind {
        name: "slack",
        file: |base| {
            format!("name = \"slack\"\nkind = \"slack\"\nvouches_for_sender = true\nbase_url = \"{base}\"\ntoken = \"${{CG_TEST_UNSET_SLACK:-{SLACK_TOKEN}}}\"\n")
        },
        path: "/api/chat.postMessage".into(),
        auth: Some(format!("Bearer {SLACK_TOKEN}")),
        content_type: "application/json; charset=utf-8",
        conversation: chat_id,
        body: |conversation, text| json!({"channel": conversation, "text": text}),
        text: "/text",
        ok: json!({"ok": true, "ts": "1.1"}),
        refusal: || {
            (
                ResponseTemplate::new(200)
                    .set_body_json(json!({"ok": false, "error": "channel_not_found"})),
                "channel_not_found",
            )
        },
        token: SLACK_TOKEN,
    }
}

fn telegram() -> Kind {
    Kind {
        name: "telegram",
        file: |base| {
            format!("name = \"telegram\"\nkind = \"telegram\"\nvouches_for_sender = true\nbase_url = \"{base}\"\ntoken = \"${{CG_TEST_UNSET_TELEGRAM:-{TELEGRAM_TOKEN}}}\"\n")
        },
        path: format!("/bot{TELEGRAM_TOKEN}/sendMessage"),
        auth: None,
        content_type: "application/json",
        conversation: chat_id,
        body: |conversation, text| json!({"chat_id": conversation, "text": text}),
        text: "/text",
        ok: json!({"ok": true, "result": {"message_id": 1}}),
        refusal: || {
            (
                ResponseTemplate::new(400).set_body_json(
                    json!({"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}),
                ),
                "Bad Request: chat not found",
            )
        },
        token: TELEGRAM_TOKEN,
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
        content_type: "application/json",
        conversation: || "15552223333".to_string(),
        body: |conversation, text| {
            json!({
                "messaging_product": "whatsapp",
                "to": conversation,
                "type": "text",
                "text": {"body": text}
            })
        },
        text: "/text/body",
        ok: json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}),
        refusal: || {
            (
                ResponseTemplate::new(400).set_body_json(json!({"error": {
                    "message": "(#131030) Recipient phone number not in allowed list",
                    "type": "OAuthException", "code": 131030
                }})),
                "Recipient phone number not in allowed list (code 131030)",
            )
        },
        token: WHATSAPP_TOKEN,
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
        .and(header("content-type", kind.content_type));
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
    let conversation = (kind.conversation)();
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
        (kind.body)(
            &conversation,
            &format!("Your verification code is {code}. It expires in 3 minutes.")
        ),
        "{}",
        kind.name
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
    let authenticated = (kind.body)(&conversation, "Thank you, you are now verified.");
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
        "{}: no authenticated message: {:?}",
        kind.name,
        received(&provider).await
    );
}

mod every_chat_kind_otp_verifies_and_authenticated_follows {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        for kind in chat_kinds() {
            otp_round_trip(kind, Backend::Memory).await;
        }
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        for kind in chat_kinds() {
            otp_round_trip(kind, Backend::Redis).await;
        }
    }
}

/// A provider's refusal answers 502 `channel_error` with its own reason,
/// never the token.
async fn refusal(kind: Kind) {
    let (answer, reason) = (kind.refusal)();
    let token = kind.token;
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
    assert!(detail.contains(reason), "{}: {body}", kind.name);
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
async fn every_chat_kinds_refusal_is_a_channel_error_with_the_providers_reason() {
    for kind in chat_kinds() {
        refusal(kind).await;
    }
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
        code: Some("482913".into()),
        public_url: "http://gateway.test".into(),
        code_ttl: None,
        locale: "en".into(),
        call: None,
        identity_key_hash: None,
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
        vec![(kind.body)(
            conversation,
            &format!("Please sign in to continue: {short}")
        )],
        "{}",
        kind.name
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
    for kind in chat_kinds() {
        login_link_delivery(kind).await;
    }
}
