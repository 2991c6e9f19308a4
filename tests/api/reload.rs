//! Reloading the configuration while running
//! (docs/operations.md#reloading-the-configuration): teams, API keys,
//! security keys, settings and channels change for every request after the
//! reload; an invalid set changes nothing; `[server]` changes wait for a
//! restart; a request in flight keeps one whole set.
//!
//! The in-process tests drive [`chatgate::app::Reloader::reload`], the
//! entry point the SIGHUP handler calls, so each one runs on both stores
//! with a manual clock; `sighup_*` sends the real signal to the built
//! binary, to check the handler is wired and what it logs.
use std::path::Path;
use std::time::Duration;

use chatgate::app::Reloaded;
use chatgate::domain::secrets::{generate_api_key, generate_whsec, ApiKeyHash};
use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::outbox::{body, created_events, eventually, header, with_webhook};

/// Reloads and expects the new set in force: the keys needing a restart.
pub(crate) async fn reload_applies(app: &TestApp) -> Vec<String> {
    match app.reloader.reload().await {
        Reloaded::Applied { restart_needed } => restart_needed,
        Reloaded::Refused(e) => panic!("reload refused: {e}"),
    }
}

fn team_file(app: &TestApp, name: &str) -> std::path::PathBuf {
    app.dir.join("config/teams").join(format!("{name}.toml"))
}

/// Replaces `from` (which must be there) with `to` in `path`.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// The HMAC key a `whsec_…` secret stands for.
fn whsec_bytes(whsec: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(whsec.trim_start_matches("whsec_"))
        .unwrap()
}

/// A team file for `initech` with one bot key.
fn initech(bot_key: &str, extra: &str) -> String {
    format!(
        "id = \"initech\"\nlogin_url = \"https://login.initech.test/\"\nchannels = [\"webchat\"]\n\n\
         [[security_keys]]\nkid = \"i1\"\nsecret = \"{}\"\nprimary = true\n\n\
         [[api_keys]]\nid = \"initech-bot\"\nrole = \"bot\"\nsha256 = \"{}\"\n{extra}",
        generate_whsec(),
        ApiKeyHash::of_key(bot_key).to_hex()
    )
}

/// The status of creating a webchat interaction with `key`.
async fn create_status(app: &TestApp, key: &str) -> u16 {
    app.request(Method::POST, "/v1/interactions", Some(key))
        .json(&json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both_stores!(
    a_team_added_to_the_files_is_served_after_a_reload,
    |app: TestApp| async move {
        let key = generate_api_key();
        std::fs::write(team_file(&app, "initech"), initech(&key, "")).unwrap();
        assert_eq!(
            create_status(&app, &key).await,
            401,
            "not before the reload"
        );
        assert!(reload_applies(&app).await.is_empty());
        // Its events reach the live stream (on Redis: this instance
        // follows the new team's stream once it has a listener).
        let mut live = app.gateway.events().log().listen("initech").await.unwrap();
        assert_eq!(create_status(&app, &key).await, 201);
        let entry = tokio::time::timeout(Duration::from_secs(5), live.recv())
            .await
            .expect("the new team's event within 5 s")
            .unwrap();
        assert_eq!(entry.event.team, "initech");
        // The teams there before are served as before; state is untouched.
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-reload").await;
        reload_applies(&app).await;
        assert_eq!(app.get(&id).await["status"], "authenticated");
        // A team removed from the files is gone for its keys.
        std::fs::remove_file(team_file(&app, "initech")).unwrap();
        reload_applies(&app).await;
        assert_eq!(create_status(&app, &key).await, 401);
    }
);

both_stores!(
    api_keys_added_rotated_and_removed_apply_after_a_reload,
    |app: TestApp| async move {
        let acme = team_file(&app, "acme");
        let old_bot = app.keys.bot.clone();
        let new_bot = generate_api_key();
        // Rotation: the new key beside the old one, both work.
        let added = format!(
            "\n[[api_keys]]\nid = \"acme-bot-2\"\nrole = \"bot\"\nsha256 = \"{}\"\n",
            ApiKeyHash::of_key(&new_bot).to_hex()
        );
        let text = std::fs::read_to_string(&acme).unwrap();
        std::fs::write(&acme, format!("{text}{added}")).unwrap();
        assert_eq!(create_status(&app, &new_bot).await, 401);
        reload_applies(&app).await;
        assert_eq!(create_status(&app, &new_bot).await, 201);
        assert_eq!(create_status(&app, &old_bot).await, 201);
        // The old one removed: refused at once, the new one goes on.
        edit(
            &acme,
            &format!(
                "[[api_keys]]\nid = \"acme-bot\"\nrole = \"bot\"\nsha256 = \"{}\"\n",
                ApiKeyHash::of_key(&old_bot).to_hex()
            ),
            "",
        );
        reload_applies(&app).await;
        assert_eq!(create_status(&app, &old_bot).await, 401);
        assert_eq!(create_status(&app, &new_bot).await, 201);
    }
);

both_stores!(
    a_security_key_rotated_by_the_runbook_signs_and_verifies_after_each_reload,
    |app: TestApp| async move {
        let acme = team_file(&app, "acme");
        let old = app.keys.acme_key_bytes();
        let new_whsec = generate_whsec();
        let new = whsec_bytes(&new_whsec);
        let callback = |key: Vec<u8>| {
            let app = &app;
            async move {
                let id = app.new_interaction().await;
                let link = app.issue_link(&id, json!({})).await;
                let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "c-rot"}});
                app.post_signed("/v1/login/callback", &body, Some(&key))
                    .await
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(
            callback(new.clone()).await,
            401,
            "unknown before the reload"
        );
        // 1. Add the new key (not primary), reload: both verify.
        let text = std::fs::read_to_string(&acme).unwrap();
        std::fs::write(
            &acme,
            format!("{text}\n[[security_keys]]\nkid = \"2026-12\"\nsecret = \"{new_whsec}\"\n"),
        )
        .unwrap();
        reload_applies(&app).await;
        assert_eq!(callback(new.clone()).await, 200);
        assert_eq!(callback(old.clone()).await, 200);
        // 2. Switch primary, reload: login tokens are signed with the new key.
        edit(&acme, "kid = \"2026-11\"", "kid = \"2026-11x\"");
        edit(&acme, "primary = true\n", "");
        edit(
            &acme,
            "kid = \"2026-12\"\n",
            "kid = \"2026-12\"\nprimary = true\n",
        );
        reload_applies(&app).await;
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("2026-12"));
        // 3. Remove the old key, reload: it verifies nothing any more.
        let text = std::fs::read_to_string(&acme).unwrap();
        let start = text.find("[[security_keys]]\nkid = \"2026-11x\"").unwrap();
        let end = start + text[start..].find("\n\n").unwrap();
        std::fs::write(&acme, format!("{}{}", &text[..start], &text[end..])).unwrap();
        reload_applies(&app).await;
        assert_eq!(callback(old.clone()).await, 401);
        assert_eq!(callback(new.clone()).await, 200);
    }
);

/// A second chat receiver.
async fn receiver() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    server
}

async fn texts(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|v| v["text"].as_str().map(str::to_string))
        .collect()
}

both_stores!(
    changed_settings_and_channels_apply_after_a_reload,
    setup: Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
    let id = app.new_interaction().await;
    let (_, code) = app.agent_otp(&id).await;
    assert_eq!(code.len(), 6);
    let other = receiver().await;
    let system = app.dir.join("config/chatgate.toml");
    let text = std::fs::read_to_string(&system).unwrap();
    std::fs::write(&system, format!("{text}\n[defaults.otp]\nlength = 8\n")).unwrap();
    let webchat = app.dir.join("channels/webchat.toml");
    edit(&webchat, &app.chat.uri(), &other.uri());
    let text = std::fs::read_to_string(&webchat).unwrap();
    std::fs::write(&webchat, format!("{text}\n[templates]\nlogin_link = \"Reloaded: #URL#\"\n")).unwrap();
    reload_applies(&app).await;
    let id = app.new_interaction().await;
    let (_, code) = app.agent_otp(&id).await;
    assert_eq!(code.len(), 8, "the new [defaults] apply");
    let before = app.chat_messages().await.len();
    let link = app.issue_link(&id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], true);
    let sent = texts(&other).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].starts_with("Reloaded: "), "{sent:?}");
    assert_eq!(app.chat_messages().await.len(), before, "nothing to the old url");
    }
);

both_stores!(
    an_invalid_set_changes_nothing_and_names_file_key_and_problem,
    |app: TestApp| async move {
        let key = generate_api_key();
        std::fs::write(team_file(&app, "initech"), initech(&key, "")).unwrap();
        // One bad value in another file: the whole set is refused.
        let acme = team_file(&app, "acme");
        edit(
            &acme,
            "login_url = \"https://login.acme.test/chat?lang=en\"",
            "login_url = \"not a url\"",
        );
        match app.reloader.reload().await {
            Reloaded::Refused(e) => {
                assert!(e.file.ends_with("acme.toml"), "{e}");
                assert_eq!(e.key, "login_url", "{e}");
                assert!(!e.problem.is_empty());
            }
            Reloaded::Applied { .. } => panic!("an invalid set was applied"),
        }
        assert_eq!(
            create_status(&app, &key).await,
            401,
            "the new team is not in force"
        );
        assert_eq!(
            create_status(&app, &app.keys.bot).await,
            201,
            "the old set is"
        );
        // A secret file that is missing: refused, naming the key and the path.
        edit(
            &acme,
            "login_url = \"not a url\"",
            "login_url = \"https://login.acme.test/chat?lang=en\"",
        );
        std::fs::write(
        team_file(&app, "initech"),
        initech(&key, "\n[webhook]\nurl = \"https://hooks.initech.test/\"\nsecret = \"${file:../secrets/initech-webhook}\"\n"),
    )
    .unwrap();
        match app.reloader.reload().await {
            Reloaded::Refused(e) => {
                assert!(e.file.ends_with("initech.toml"), "{e}");
                assert_eq!(e.key, "webhook.secret", "{e}");
                assert!(e.problem.contains("secrets/initech-webhook"), "{e}");
            }
            Reloaded::Applied { .. } => panic!("a set with a missing secret file was applied"),
        }
        assert_eq!(create_status(&app, &key).await, 401);
        // The file written: the set applies, the secret read from it.
        std::fs::create_dir_all(app.dir.join("config/secrets")).unwrap();
        std::fs::write(
            app.dir.join("config/secrets/initech-webhook"),
            format!("{}\n", generate_whsec()),
        )
        .unwrap();
        reload_applies(&app).await;
        assert_eq!(create_status(&app, &key).await, 201);
    }
);

both_stores!(
    a_server_change_needs_a_restart_and_the_rest_still_applies,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let before = app.issue_link(&id, json!({})).await["short_url"]
            .as_str()
            .unwrap()
            .to_string();
        let system = app.dir.join("config/chatgate.toml");
        edit(
            &system,
            "public_url = \"http://gateway.test\"",
            "public_url = \"http://moved.test\"",
        );
        edit(
            &system,
            "issuer = \"chatgate-test\"",
            "issuer = \"chatgate-test\"\nmax_connections = 99",
        );
        let key = generate_api_key();
        std::fs::write(team_file(&app, "initech"), initech(&key, "")).unwrap();
        let restart = reload_applies(&app).await;
        assert_eq!(restart, ["server.max_connections", "server.public_url"]);
        assert_eq!(create_status(&app, &key).await, 201, "the rest applies");
        let after = app.issue_link(&id, json!({})).await["short_url"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            before.starts_with("http://gateway.test/") && after.starts_with("http://gateway.test/"),
            "{after}"
        );
        // Still not applied: the next reload says so again.
        assert_eq!(reload_applies(&app).await.len(), 2);
    }
);

both_stores!(
    a_rotated_webhook_secret_reaches_the_background_deliveries,
    setup: with_webhook(&receiver_uri_placeholder(), &generate_whsec()),
    |app: TestApp| async move {
        // The webhook URL of the setup is a placeholder: point it at a
        // receiver, with a new secret, by reload.
        let receiver = receiver().await;
        let secret = generate_whsec();
        let acme = team_file(&app, "acme");
        let text = std::fs::read_to_string(&acme).unwrap();
        let start = text.find("[webhook]").unwrap();
        std::fs::write(
            &acme,
            format!("{}[webhook]\nurl = \"{}/events\"\nsecret = \"{secret}\"\n", &text[..start], receiver.uri()),
        )
        .unwrap();
        reload_applies(&app).await;
        let id = app.new_interaction().await;
        let created = || created_events(&receiver);
        eventually("the delivery", || async { !created().await.is_empty() }).await;
        let r = &created().await[0];
        assert_eq!(body(r)["data"]["interaction"]["id"], id.as_str());
        let key = whsec_bytes(&secret);
        let ts = header(r, "webhook-timestamp");
        chatgate::domain::webhook_sig::verify(
            &[&key],
            Some(&header(r, "webhook-id")),
            Some(&ts),
            Some(&header(r, "webhook-signature")),
            &r.body,
            chatgate::time::Timestamp::from_unix_seconds(ts.parse().unwrap()),
        )
        .expect("signed with the rotated secret");
    }
);

/// A URL nothing listens on (the setup's webhook before the reload).
fn receiver_uri_placeholder() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

both_stores!(
    a_request_in_flight_during_a_reload_finishes_with_one_whole_set,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let other = receiver().await;
        // The request's head arrives; its body waits until the reload is done.
        let body = serde_json::to_vec(&json!({"deliver": true})).unwrap();
        let head = format!(
        "POST /v1/interactions/{id}/login-links HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        app.keys.bot,
        body.len()
    );
        let addr = app.base.trim_start_matches("http://").to_string();
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The reload moves the channel and changes its text at once.
        let webchat = app.dir.join("channels/webchat.toml");
        edit(&webchat, &app.chat.uri(), &other.uri());
        let text = std::fs::read_to_string(&webchat).unwrap();
        std::fs::write(
            &webchat,
            format!("{text}\n[templates]\nlogin_link = \"Reloaded: #URL#\"\n"),
        )
        .unwrap();
        reload_applies(&app).await;
        conn.write_all(&body).await.unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        // Whichever set the request had, it had all of it: the new text never
        // went to the old place, nor the old text to the new one.
        let old_place = app.chat_messages().await;
        let old_place: Vec<&str> = old_place
            .iter()
            .filter_map(|v| v["text"].as_str())
            .collect();
        let new_place = texts(&other).await;
        assert_eq!(
            old_place.len() + new_place.len(),
            1,
            "{old_place:?} {new_place:?}"
        );
        assert!(
            old_place.iter().all(|t| !t.starts_with("Reloaded: ")),
            "{old_place:?}"
        );
        assert!(
            new_place.iter().all(|t| t.starts_with("Reloaded: ")),
            "{new_place:?}"
        );
        // It started before the reload: the set it started with.
        assert_eq!(
            old_place.len(),
            1,
            "the request kept the set it started with"
        );
        // A request after the reload has the new set.
        app.issue_link(&id, json!({"deliver": true})).await;
        let new_place = texts(&other).await;
        assert_eq!(new_place.len(), 1, "{new_place:?}");
    }
);

/// Writes a one-team configuration for the built binary into `dir`.
fn write_binary_config(dir: &Path, listen: &str, bot_key: &str) {
    std::fs::create_dir_all(dir.join("config/teams")).unwrap();
    std::fs::create_dir_all(dir.join("channels")).unwrap();
    std::fs::write(
        dir.join("config/chatgate.toml"),
        format!(
            "[server]\nlisten = \"{listen}\"\npublic_url = \"http://{listen}\"\npepper = \"${{file:pepper}}\"\nshutdown_drain = \"0s\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("config/pepper"), "binary-test-pepper-0123456789\n").unwrap();
    std::fs::write(
        dir.join("channels/webchat.toml"),
        "name = \"webchat\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/messages\"\nsecret = \"${file:../config/webchat-secret}\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config/webchat-secret"),
        format!("{}\n", generate_whsec()),
    )
    .unwrap();
    std::fs::write(dir.join("config/teams/initech.toml"), initech(bot_key, "")).unwrap();
}

/// The binary's stderr, line by line as it comes.
struct Stderr(std::sync::mpsc::Receiver<String>, Vec<String>);

impl Stderr {
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.1.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) => self.1.push(line),
                Err(_) => panic!("no line with {needle:?} on stderr; saw {:#?}", self.1),
            }
        }
    }
}

fn hang_up(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_running_binary_and_logs_each_outcome_in_one_line() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("chatgate-reload-{}", uuid::Uuid::now_v7()));
    let listen = format!("127.0.0.1:{}", free_port());
    let (bot, second) = (generate_api_key(), generate_api_key());
    write_binary_config(&dir, &listen, &bot);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"))
        .args(["serve", "--config"])
        .arg(dir.join("config/chatgate.toml"))
        .env_remove("RUST_LOG")
        .env_remove("CHATGATE_SERVER__LOG_FORMAT")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the built binary runs");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Stderr(rx, Vec::new());
    log.wait_for("chatgate listening");
    let base = format!("http://{listen}");
    let client = reqwest::Client::new();
    let status = |key: String| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client
                .post(format!("{base}/v1/interactions"))
                .bearer_auth(key)
                .json(&json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(bot.clone()).await, 201);

    // An invalid set: one line naming file, key and problem; nothing changes.
    let webhook_secret_value = "whsec_bm90LWEtcmVhbC1zZWNyZXQtYnV0LXNlY3JldC1lbm91Z2g=";
    std::fs::write(
        dir.join("config/teams/initech.toml"),
        initech(&second, "\n[webhook]\nurl = \"https://hooks.initech.test/\"\nsecret = \"${file:missing-secret}\"\n"),
    )
    .unwrap();
    hang_up(&child);
    let refused = log.wait_for("configuration not reloaded");
    assert!(refused.contains("initech.toml"), "{refused}");
    assert!(refused.contains("webhook.secret"), "{refused}");
    assert!(
        refused.contains("missing-secret") && refused.contains("does not exist"),
        "{refused}"
    );
    assert_eq!(status(bot.clone()).await, 201, "the running set stays");
    assert_eq!(status(second.clone()).await, 401);

    // A valid set with a [server] change: applied, and the change named.
    std::fs::write(
        dir.join("config/teams/missing-secret"),
        format!("{webhook_secret_value}\n"),
    )
    .unwrap();
    let system = dir.join("config/chatgate.toml");
    let text = std::fs::read_to_string(&system).unwrap();
    std::fs::write(&system, format!("{text}max_connections = 99\n")).unwrap();
    hang_up(&child);
    let restart = log.wait_for("need a restart");
    assert!(restart.contains("server.max_connections"), "{restart}");
    log.wait_for("configuration reloaded");
    assert_eq!(status(second.clone()).await, 201, "the new key is in force");
    assert_eq!(status(bot.clone()).await, 401, "the old key is gone");

    // A valid reload says in one line how many teams and channels are in
    // force, and `chatgate_teams` says so too
    // (docs/operations.md#reloading-the-configuration).
    let third = initech(&generate_api_key(), "")
        .replacen("id = \"initech\"", "id = \"initech2\"", 1)
        .replacen("kid = \"i1\"", "kid = \"i2\"", 1);
    std::fs::write(dir.join("config/teams/initech2.toml"), third).unwrap();
    hang_up(&child);
    let applied = log.wait_for("teams=2");
    assert!(
        applied.contains("configuration reloaded") && applied.contains("channels=1"),
        "{applied}"
    );
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l == "chatgate_teams 2"),
        "{metrics}"
    );

    let _ = child.kill();
    let _ = child.wait();
    let all = log.1.join("\n");
    assert!(!all.contains(webhook_secret_value), "a secret was logged");
    assert!(!all.contains("binary-test-pepper"), "the pepper was logged");
    let _ = std::fs::remove_dir_all(&dir);
}
