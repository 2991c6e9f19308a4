//! What a new user meets first (docs/configuration.md#command-line,
//! docs/api.md#operations-endpoints): `chatgate serve --listen ADDR` on the
//! sample configuration warns that its loopback `public_url` names another
//! port and says where things are; `GET /` names them too; `/console/` is
//! the console; a missing configuration file's error says how to name one;
//! and the errors a first call meets say what to fix.
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// The built binary, run from the repository's folder, without the
/// variables that would choose another file or address.
fn chatgate() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chatgate"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("CHATGATE_CONFIG")
        .env_remove("CHATGATE_SERVER__LISTEN")
        .env_remove("CHATGATE_SERVER__PUBLIC_URL")
        .env_remove("RUST_LOG");
    cmd
}

/// Kills the child when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_listen_warns_of_the_public_url_and_says_where_things_are() {
    let port = free_port();
    let child = chatgate()
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the built binary runs");
    let mut running = Running(child);
    // The log (stderr), up to the last place it names, or 30 s.
    let log = running.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut said = String::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        said.push_str(&line);
        said.push('\n');
        if line.contains("docs/api.md") {
            break;
        }
    }
    assert!(said.contains("chatgate listening"), "{said}");
    let warning = said
        .lines()
        .find(|l| l.contains("WARN") && l.contains("server.public_url"))
        .unwrap_or_else(|| panic!("no warning of the public_url's port: {said}"));
    assert!(warning.contains("port 8080"), "{warning}");
    assert!(
        warning.contains(&format!("http://127.0.0.1:{port}")),
        "{warning}"
    );
    for place in ["/console", "/openapi.json", "/mcp", "docs/api.md"] {
        assert!(said.contains(place), "{place} not named: {said}");
    }

    let base = format!("http://127.0.0.1:{port}");
    let page = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let ct = page.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/html"), "{ct}");
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.unwrap();
    for link in [
        "href=\"/console\"",
        "href=\"/openapi.json\"",
        "href=\"/mcp\"",
    ] {
        assert!(html.contains(link), "{link} not on the page: {html}");
    }
    assert!(html.contains("docs/api.md"), "{html}");

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let slash = client.get(format!("{base}/console/")).send().await.unwrap();
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "/console");
}

#[test]
fn a_missing_configuration_file_says_how_to_name_one() {
    for command in ["serve", "check-config"] {
        let out = chatgate()
            .args([command, "--config", "no/such/chatgate.toml"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{command}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no/such/chatgate.toml"), "{command}: {err}");
        assert!(err.contains("--config"), "{command}: {err}");
        assert!(err.contains("CHATGATE_CONFIG"), "{command}: {err}");
    }
}

both_stores!(a_key_without_bearer_is_told_so, |app: TestApp| async move {
    for header in [app.keys.agent.clone(), format!("Token {}", app.keys.agent)] {
        let res = app
            .client
            .get(format!("{}/v1/interactions", app.base))
            .header("authorization", &header)
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 401, "unauthorized").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("Bearer "), "{detail}");
        assert!(!detail.contains(&app.keys.agent), "{detail}");
    }
});

both_stores!(
    a_403_names_the_role_and_the_role_needed,
    |app: TestApp| async move {
        let res = app
            .post_json(
                "/v1/interactions",
                Some(&app.keys.agent),
                &json!({"channel": "webchat", "conversation_id": "c"}),
            )
            .await;
        let body = assert_problem(res, 403, "forbidden").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("role is agent"), "{detail}");
        assert!(detail.contains("a bot or admin API key"), "{detail}");
        let res = app
            .request(Method::GET, "/v1/interactions", Some(&app.keys.bot))
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 403, "forbidden").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("role is bot"), "{detail}");
        assert!(detail.contains("an agent or admin API key"), "{detail}");
    }
);

both_stores!(
    an_unknown_channel_lists_the_team_s,
    |app: TestApp| async move {
        let res = app
            .post_json(
                "/v1/interactions",
                Some(&app.keys.bot),
                &json!({"channel": "web-chat", "conversation_id": "c"}),
            )
            .await;
        let body = assert_problem(res, 422, "invalid_request").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.starts_with("channel: "), "{detail}");
        assert!(detail.contains("webchat, sms"), "{detail}");
    }
);
