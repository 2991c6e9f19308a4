//! A Redis Cluster master down for 10 s under light load, through the
//! gateway: the log says so in a few lines (a warning when it starts, a
//! summary when it ends), not a line per failed call, although the other
//! masters keep answering in between (docs/operations.md#logs).
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
use crate::redis_support::{cluster_binaries_present, OwnCluster};

/// Every formatted line, with when it was written.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<(Instant, String)>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let now = Instant::now();
        let mut lines = self.0.lock().unwrap();
        for line in String::from_utf8_lossy(buf).lines() {
            lines.push((now, line.to_owned()));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How long the master stays down.
const OUTAGE: Duration = Duration::from_secs(10);

/// One round of light load: a create, a status read, a callback whose
/// short link may sit on a live master while its interaction does not,
/// and a load balancer's readiness check.
async fn one_round(app: &TestApp, id: &str, tokens: &mut Vec<String>, i: usize) {
    let create = json!({"channel": "webchat", "conversation_id": format!("outage-{i}")});
    let _ = app
        .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
        .json(&create)
        .send()
        .await;
    let _ = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.agent),
        )
        .send()
        .await;
    if let Some(token) = tokens.pop() {
        let _ = app
            .callback(&token, "success", json!({"id": "cust-outage"}))
            .await;
    }
    let _ = app.request(Method::GET, "/readyz", None).send().await;
}

// The runtime runs on this test's thread, so the thread's subscriber sees
// the gateway's lines and no other test's.
#[tokio::test]
async fn a_cluster_master_down_for_10_s_logs_at_most_a_line_a_second() {
    if !cluster_binaries_present("a_cluster_master_down_for_10_s_logs_at_most_a_line_a_second") {
        return;
    }
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // Its own cluster (a node timeout of 15 s: the other masters' slots
    // keep answering through a 10 s outage).
    let mut cluster = OwnCluster::start().expect("a local Redis Cluster starts");
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let id = app.new_interaction().await;
    // Links for callbacks during the outage, each on its own interaction.
    let mut tokens = Vec::new();
    for _ in 0..200 {
        let other = app.new_interaction().await;
        let link = app.issue_link(&other, json!({})).await;
        tokens.push(link["token"].as_str().unwrap().to_owned());
    }
    let physical = format!(
        "{}:{}",
        app.key_prefix,
        chatgate::store::keys::interaction("acme", id.parse().unwrap())
    );
    let victim = cluster.owner_of(&physical);

    cluster.kill(victim);
    let down = Instant::now();
    let mut i = 0;
    while down.elapsed() < OUTAGE {
        one_round(&app, &id, &mut tokens, i).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.restart(victim);
    let up = Instant::now();
    // Until a status read answers again (404: the master came back with no
    // data, nothing is saved), then 3 s more.
    let mut back = None;
    while back.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(3)) {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "the gateway did not recover"
        );
        let res = app
            .request(
                Method::GET,
                &format!("/v1/interactions/{id}"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        if back.is_none() && res.status() != 503 {
            back = Some(Instant::now());
        }
        one_round(&app, &id, &mut tokens, i).await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let window = down.elapsed();
    let lines = lines.0.lock().unwrap().clone();
    let warnings: Vec<&(Instant, String)> = lines
        .iter()
        .filter(|(at, l)| *at >= down && l.contains("WARN"))
        .collect();
    let mut per_second = std::collections::BTreeMap::<u64, usize>::new();
    for (at, _) in &warnings {
        *per_second
            .entry(at.duration_since(down).as_secs())
            .or_default() += 1;
    }
    let text: Vec<&str> = warnings.iter().map(|(_, l)| l.as_str()).collect();
    eprintln!(
        "{} warnings in {:.1} s ({} rounds of load); the busiest second {}; per second {per_second:?}",
        warnings.len(),
        window.as_secs_f64(),
        i,
        per_second.values().max().unwrap_or(&0),
    );
    assert!(
        warnings.len() as f64 <= window.as_secs_f64(),
        "{} warnings in {:.1} s:\n{}",
        warnings.len(),
        window.as_secs_f64(),
        text.join("\n")
    );
    let summaries = lines
        .iter()
        .filter(|(at, l)| *at >= down && l.contains("store is back"))
        .count();
    assert!(summaries >= 1, "the outage's end is logged");
}
