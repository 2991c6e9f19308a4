//! No secret, code, token or key in any log line: capture everything a full
//! flow logs (at TRACE) and search it.
use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

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
    let app = spawn_app(Backend::Memory).await.unwrap();
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
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let logged = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(
        logged.contains("request"),
        "the capture saw the request spans"
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
        ("pepper", "test-pepper-0123456789abcdef"),
    ] {
        assert!(!logged.contains(secret), "the log contains the {what}");
    }
}

/// A store outage is one warning when it starts and one line when it ends,
/// not a line per failed request (issue 8).
#[tokio::test]
async fn a_store_outage_is_logged_once_then_summarised() {
    use crate::redis_support::OwnRedis;
    if !redis_available().await {
        return;
    }
    if !OwnRedis::available() {
        eprintln!("!!! SKIPPING: no redis-server binary on PATH");
        return;
    }
    // This test's own thread (a current-thread runtime runs the gateway here too).
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let port = OwnRedis::free_port();
    let mut server = OwnRedis::start(port);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
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
