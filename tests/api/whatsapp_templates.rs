//! WhatsApp authentication templates end to end
//! (docs/channels.md#authentication-templates): an OTP on a `whatsapp`
//! channel with an `otp_template` reaches the fake Cloud API as that
//! template, the code its parameter and nowhere as free text (in the chat
//! and as the team's `sms_channel`); other messages stay text; a WhatsApp
//! `twilio` channel with `otp_content_sid` sends its Content template; and
//! `chatgate whatsapp-template` prints the body that creates the template.
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;

/// A WhatsApp channel `wa` with the template `chatgate_otp` in `pt_BR`,
/// sending to `base`.
fn templated_channel(base: &str) -> String {
    format!(
        "name = \"wa\"\nkind = \"whatsapp\"\nbase_url = \"{base}\"\napi_version = \"v21.0\"\n\
         phone_number_id = \"1065\"\ntoken = \"${{CG_TEST_UNSET_WA:-wa-token}}\"\n\
         otp_template = \"chatgate_otp\"\notp_template_language = \"pt_BR\"\n"
    )
}

/// A fake Cloud API accepting the documented request, and an app whose
/// acme team has the templated channel `wa` (its `sms_channel` when `sms`).
async fn app_with_template(backend: Backend, sms: bool) -> Option<(TestApp, MockServer)> {
    app_with(backend, sms, "", "").await
}

/// [`app_with_template`], with `keys` added to the channel file and
/// `defaults` to `[defaults]`.
async fn app_with(
    backend: Backend,
    sms: bool,
    keys: &str,
    defaults: &str,
) -> Option<(TestApp, MockServer)> {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v21.0/1065/messages"))
        .and(header("authorization", "Bearer wa-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}),
        ))
        .mount(&provider)
        .await;
    let setup = Setup {
        extra_channels: vec![("wa".into(), templated_channel(&provider.uri()) + keys)],
        sms_channel: sms.then(|| "wa".to_string()),
        defaults: defaults.into(),
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

/// The template request the contract documents, for `code` to `to`.
fn template_body(to: &str, code: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "to": to,
        "type": "template",
        "template": {
            "name": "chatgate_otp",
            "language": {"code": "pt_BR"},
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
    })
}

/// Starts an OTP challenge with `body` on interaction `id`; its id.
async fn start(app: &TestApp, id: &str, body: Value) -> String {
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &body,
        )
        .await;
    assert_eq!(res.status(), 201);
    let challenge: Value = res.json().await.unwrap();
    assert_eq!(challenge["delivered"], true, "{challenge}");
    challenge["challenge_id"].as_str().unwrap().to_string()
}

/// The code of a template request: its body parameter.
fn code_of(body: &Value) -> String {
    body.pointer("/template/components/0/parameters/0/text")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("not a template: {body}"))
        .to_string()
}

async fn verify(app: &TestApp, id: &str, cid: &str, code: &str) {
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges/{cid}/verify"),
            Some(&app.keys.bot),
            &json!({"code": code}),
        )
        .await;
    assert_eq!(res.status(), 200);
}

async fn an_otp_in_the_chat_is_the_template_and_a_link_is_text(backend: Backend) {
    let Some((app, provider)) = app_with_template(backend, false).await else {
        return;
    };
    let created = app
        .create(json!({"channel": "wa", "conversation_id": "15552223333"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let cid = start(&app, &id, json!({"method": "otp"})).await;
    let bodies = received(&provider).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let code = code_of(&bodies[0]);
    assert_eq!(code.len(), 6, "{code}");
    assert_eq!(bodies[0], template_body("+15552223333", &code));

    // A login link on the same channel is text, as before.
    app.issue_link(&id, json!({"deliver": true})).await;
    let bodies = received(&provider).await;
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["type"], "text", "{}", bodies[1]);
    assert!(bodies[1]["text"]["body"].as_str().unwrap().contains("http"));

    // The code the template carried is the challenge's.
    verify(&app, &id, &cid, &code).await;
}

async fn an_otp_by_sms_through_a_templated_channel_is_the_template(backend: Backend) {
    let Some((app, provider)) = app_with_template(backend, true).await else {
        return;
    };
    let created = app
        .create(json!({"channel": "webchat", "conversation_id": "c-sms-wa"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let cid = start(
        &app,
        &id,
        json!({"method": "otp", "delivery": "sms", "to": "+15559998888"}),
    )
    .await;
    let bodies = received(&provider).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    let code = code_of(&bodies[0]);
    assert_eq!(bodies[0], template_body("+15559998888", &code));
    assert!(
        app.chat_messages().await.is_empty(),
        "nothing went to the webchat"
    );
    verify(&app, &id, &cid, &code).await;
}

macro_rules! on_both_stores {
    ($name:ident, $test:ident) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                $test(Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                $test(Backend::Redis).await;
            }
        }
    };
}

on_both_stores!(
    whatsapp_otp_goes_as_the_authentication_template,
    an_otp_in_the_chat_is_the_template_and_a_link_is_text
);
on_both_stores!(
    whatsapp_sms_channel_sends_the_otp_as_the_template,
    an_otp_by_sms_through_a_templated_channel_is_the_template
);

async fn an_otp_through_twilio_whatsapp_is_the_content_template(backend: Backend) {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/2010-04-01/Accounts/AC123/Messages.json"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"sid": "SM1"})))
        .mount(&provider)
        .await;
    let file = format!(
        "name = \"twa\"\nkind = \"twilio\"\nbase_url = \"{}\"\naccount_sid = \"AC123\"\n\
         auth_token = \"${{CG_TEST_UNSET_TWILIO:-twilio-test-token}}\"\n\
         from = \"whatsapp:+15550007777\"\notp_content_sid = \"HXabc\"\n",
        provider.uri()
    );
    let setup = Setup {
        extra_channels: vec![("twa".into(), file)],
        sms_channel: Some("twa".into()),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let created = app
        .create(json!({"channel": "webchat", "conversation_id": "c-twa"}))
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let cid = start(
        &app,
        &id,
        json!({"method": "otp", "delivery": "sms", "to": "+15559998888"}),
    )
    .await;
    let requests = provider.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&requests[0].body)
        .into_owned()
        .collect();
    let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "To",
            "From",
            "ContentSid",
            "ContentVariables",
            "StatusCallback"
        ]
    );
    assert_eq!(form[0].1, "whatsapp:+15559998888");
    assert_eq!(form[2].1, "HXabc");
    let variables: Value = serde_json::from_str(&form[3].1).unwrap();
    let code = variables["1"].as_str().unwrap().to_string();
    assert_eq!(variables, json!({"1": code}));
    assert_eq!(code.len(), 6, "{code}");
    verify(&app, &id, &cid, &code).await;
}

on_both_stores!(
    twilio_whatsapp_sends_the_otp_as_the_content_template,
    an_otp_through_twilio_whatsapp_is_the_content_template
);

/// What `chatgate whatsapp-template` printed, as JSON; it must succeed.
fn printed(out: &std::process::Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `chatgate whatsapp-template` on `app`'s configuration.
fn whatsapp_template(app: &TestApp, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .arg("whatsapp-template")
        .args(args)
        .arg("--config")
        .arg(app.dir.join("config/chatgate.toml"))
        .env_remove("CHATGATE_CONFIG")
        .output()
        .unwrap()
}

/// The one line a refused command wrote after the configuration's
/// warnings, having printed nothing.
fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains("WARN")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    lines[0].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_template_prints_the_body_for_the_teams_code_lifetime() {
    let setup = Setup {
        extra_channels: vec![("wa".into(), templated_channel("http://127.0.0.1:9"))],
        // acme's codes live 10 min, 20 min on this channel.
        team_extra: "[settings.otp]\nttl = \"10m\"\n\n[channel_settings.wa.otp]\nttl = \"20m\"\n"
            .into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let out = whatsapp_template(&app, &["--channel", "wa"]);
    let printed = printed(&out);
    assert_eq!(
        printed,
        json!({
            "name": "chatgate_otp",
            "language": "pt_BR",
            "category": "AUTHENTICATION",
            "message_send_ttl_seconds": 900,
            "components": [
                {"type": "body", "add_security_recommendation": true},
                {"type": "footer", "code_expiration_minutes": 20},
                {"type": "buttons", "buttons": [{"type": "otp", "otp_type": "copy_code"}]}
            ]
        })
    );
    // Named explicitly, the same.
    let again = whatsapp_template(&app, &["--channel", "wa", "--team", "acme"]);
    assert_eq!(again.stdout, out.stdout);

    let e = refused(&whatsapp_template(&app, &["--channel", "nope"]));
    assert!(e.contains("no channel \"nope\""), "{e}");
    let e = refused(&whatsapp_template(&app, &["--channel", "sms"]));
    assert!(e.contains("kind twilio"), "{e}");
    let e = refused(&whatsapp_template(
        &app,
        &["--channel", "wa", "--team", "globex"],
    ));
    assert!(
        e.contains("team \"globex\" does not use channel \"wa\""),
        "{e}"
    );
    let e = refused(&whatsapp_template(
        &app,
        &["--channel", "wa", "--team", "initech"],
    ));
    assert!(e.contains("no team \"initech\""), "{e}");

    // A whatsapp channel without a template, and one no team uses.
    let plain = templated_channel("http://127.0.0.1:9")
        .replace("name = \"wa\"", "name = \"wa-plain\"")
        .replace("otp_template = \"chatgate_otp\"\n", "");
    std::fs::write(app.dir.join("channels/wa-plain.toml"), plain).unwrap();
    let e = refused(&whatsapp_template(&app, &["--channel", "wa-plain"]));
    assert!(e.contains("has no otp_template"), "{e}");
    let unused =
        templated_channel("http://127.0.0.1:9").replace("name = \"wa\"", "name = \"wa-unused\"");
    std::fs::write(app.dir.join("channels/wa-unused.toml"), unused).unwrap();
    let e = refused(&whatsapp_template(&app, &["--channel", "wa-unused"]));
    assert!(e.contains("no team uses channel \"wa-unused\""), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_template_asks_which_team_when_several_use_the_channel() {
    let setup = Setup {
        extra_channels: vec![("wa".into(), templated_channel("http://127.0.0.1:9"))],
        globex_channels: vec!["wa".into()],
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let e = refused(&whatsapp_template(&app, &["--channel", "wa"]));
    assert!(
        e.contains("used by teams acme, globex") && e.contains("--team"),
        "{e}"
    );
    // globex's codes live the default 3 minutes.
    let out = whatsapp_template(&app, &["--channel", "wa", "--team", "globex"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["message_send_ttl_seconds"], 180);
    assert_eq!(printed["components"][1]["code_expiration_minutes"], 3);
}

/// With `otp_template_languages`, an OTP's template goes in the
/// interaction's language when the table names it, else in
/// `otp_template_language` (docs/api.md#languages).
async fn the_template_speaks_the_interaction_s_language(backend: Backend) {
    let keys = "otp_template_languages = { es = \"es_MX\" }\n";
    let defaults = "[defaults.locale]\nsupported = [\"en\", \"es\", \"ar\"]\n";
    let Some((app, provider)) = app_with(backend, false, keys, defaults).await else {
        return;
    };
    for (locale, code) in [("es-MX", "es_MX"), ("ar", "pt_BR")] {
        let conversation = format!("+1555222{}", if locale == "ar" { "4444" } else { "3333" });
        let created = app
            .create(json!({"channel": "wa", "conversation_id": conversation, "locale": locale}))
            .await;
        let id = created["id"].as_str().unwrap();
        start(&app, id, json!({"method": "otp"})).await;
        let sent = received(&provider).await;
        let last = sent.last().expect("a template");
        assert_eq!(last["template"]["language"]["code"], code, "{locale}");
    }
}

on_both_stores!(
    whatsapp_template_in_the_interaction_s_language,
    the_template_speaks_the_interaction_s_language
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_template_prints_one_body_per_language_code() {
    let channel = templated_channel("http://127.0.0.1:9")
        + "otp_template_languages = { es = \"es_MX\", ar = \"ar\", en = \"pt_BR\" }\n";
    let setup = Setup {
        extra_channels: vec![("wa".into(), channel)],
        defaults: "[defaults.locale]\nsupported = [\"en\", \"es\", \"ar\"]\n".into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let out = whatsapp_template(&app, &["--channel", "wa"]);
    let printed = printed(&out);
    let languages: Vec<&str> = printed
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|b| b["language"].as_str().unwrap())
        .collect();
    assert_eq!(languages, ["pt_BR", "ar", "es_MX"]);
}
