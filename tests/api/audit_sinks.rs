//! The audit trail's sinks seen from outside (docs/audit.md#wiring-a-siem):
//! the webhook sink's lag while its receiver hangs.
use std::time::Duration;

use crate::audit::audit_setup;
use crate::helpers::*;

/// A team's audit webhook that takes a POST and never answers: while the
/// POST waits, `chatgate_audit_sink_lag_seconds{sink="webhook"}` is the
/// age of the oldest entry not taken (a week on the gateway's clock
/// here), not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_audit_webhook_shows_its_lag_while_it_hangs() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = accepted.clone();
    let hanging = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(sock);
        }
    });
    let secret = chatgate::domain::secrets::generate_whsec();
    let extra = format!(
        "[audit]\nwebhook = {{ url = \"http://127.0.0.1:{port}/audit\", secret = \"{secret}\" }}\n"
    );
    let app = spawn_with(Backend::Memory, audit_setup("hang-hook", &extra))
        .await
        .unwrap();
    for _ in 0..100 {
        if accepted.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "a POST waits"
    );
    let week = 7 * 86_400;
    app.advance(week);
    // Well within the POST's 10 s time-out.
    let mut lag = 0.0;
    for _ in 0..30 {
        let text = app
            .request(reqwest::Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        lag = text
            .lines()
            .find_map(|l| l.strip_prefix("chatgate_audit_sink_lag_seconds{sink=\"webhook\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        // Other gateways of this test process set the same gauge.
        if lag >= week as f64 && lag < (week + 60) as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        lag >= week as f64 && lag < (week + 60) as f64,
        "the lag is the oldest entry's age: {lag}"
    );
    hanging.abort();
}
