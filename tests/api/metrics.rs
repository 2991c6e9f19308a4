//! `/metrics`: every family has `# HELP`, the families are exactly the
//! metrics table of docs/operations.md (both ways), the request duration is a histogram
//! with a status label, counters exist at 0 before their first event, and
//! labels come from a closed set (a made-up method is not a new series).
use std::collections::BTreeSet;

use reqwest::Method;
use uuid::Uuid;

use crate::helpers::*;

/// `(name, type)` of each row of the metrics table in docs/operations.md.
fn readme_families() -> BTreeSet<(String, String)> {
    let doc = include_str!("../../docs/operations.md");
    let ops = doc
        .split("\n## Metrics")
        .nth(1)
        .expect("a Metrics section in docs/operations.md");
    ops.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("| `chatgate_") || l.starts_with("| `process_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].to_string())
        })
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    let res = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_families_are_the_readmes_table_each_with_help() {
    // A trusted list configured: its families' series are registered.
    let setup = crate::trusted_lists::with_a_list();
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    // The HTTP families have a series once a request was answered.
    app.request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    let text = scrape(&app).await;
    let typed: BTreeSet<(String, String)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect();
    let readme = readme_families();
    let undocumented: Vec<_> = typed.difference(&readme).collect();
    let missing: Vec<_> = readme.difference(&typed).collect();
    assert!(
        undocumented.is_empty() && missing.is_empty(),
        "not in the table of docs/operations.md: {undocumented:?}; in the table, not at /metrics: {missing:?}"
    );
    for (name, _) in &typed {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP"
        );
    }
    assert!(typed
        .iter()
        .any(|(n, _)| n == "process_resident_memory_bytes"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_duration_is_a_histogram_with_a_status_label() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    let res = app
        .request(Method::GET, "/v1/interactions", Some("cg_not_a_key"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let text = scrape(&app).await;
    assert!(text.contains("# TYPE chatgate_http_request_duration_seconds histogram"));
    for le in ["0.0005", "10", "+Inf"] {
        let bucket = format!(
            "chatgate_http_request_duration_seconds_bucket{{route=\"/v1/interactions\",method=\"GET\",status=\"401\",le=\"{le}\"}}"
        );
        assert!(text.contains(&bucket), "no {bucket} in {text}");
    }
    assert!(text.contains(
        "chatgate_http_requests_total{route=\"/v1/interactions\",method=\"GET\",status=\"401\"}"
    ));
}

const METRICS_TOKEN: &str = "scrape-me-0123456789abcdef";

/// `/metrics` with the token: every series, the teams' too.
async fn scrape_all(app: &TestApp) -> String {
    let res = app.request(Method::GET, "/metrics", Some(METRICS_TOKEN));
    res.send().await.unwrap().text().await.unwrap()
}

/// A gateway with the operator API and a metrics token.
async fn operated_gateway() -> TestApp {
    let setup = Setup {
        server: with_metrics_token().server,
        ..crate::operator_writes::with_operator()
    };
    spawn_with(Backend::Memory, setup).await.unwrap()
}

/// A team written through the operator API as `edit` changes it, under
/// an id (`{prefix}-…`) no other test writes, for the metrics recorder is
/// the process's: the id, its `team="…"` label and the `PUT`'s answer.
async fn an_api_team(
    app: &TestApp,
    prefix: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> (String, String, reqwest::Response) {
    use crate::operator_writes::{put, team};
    let id = format!("{prefix}-{}", &Uuid::now_v7().simple().to_string()[20..]);
    let label = format!("team=\"{id}\"");
    let mut body = team(&id, &chatgate::domain::secrets::generate_whsec());
    edit(&mut body);
    let res = put(app, &id, &body, &[]).await;
    assert_eq!(res.status(), 201);
    (id, label, res)
}

/// The API team's first interaction, as its bot (`newco-bot-key`).
async fn first_interaction(app: &TestApp) {
    let body =
        serde_json::json!({"channel": "webchat", "conversation_id": Uuid::now_v7().to_string()});
    app.create_as("newco-bot-key", body).await;
}

fn with_metrics_token() -> Setup {
    Setup {
        server: format!("metrics_token = \"{METRICS_TOKEN}\""),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_exist_before_their_first_event() {
    let app = spawn_with(Backend::Memory, with_metrics_token())
        .await
        .unwrap();
    let res = app
        .request(Method::GET, "/metrics", Some(METRICS_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for series in [
        "chatgate_lockouts_total{kind=\"subject.locked\"}",
        "chatgate_lockouts_total{kind=\"subject.banned\"}",
        "chatgate_auth_failures_total{kind=\"login_callback\"}",
        "chatgate_authentications_total{method=\"otp\"}",
        "chatgate_events_total{type=\"subject.unlocked\"}",
        "chatgate_unlocks_total ",
        "chatgate_connections_shed_total ",
        // Per team and per channel of this app's config.
        "chatgate_outbox_given_up_total{team=\"globex\",kind=\"event\"}",
        "chatgate_channel_messages_total{channel=\"sms\",kind=\"twilio\",purpose=\"otp\",outcome=\"error\"}",
        "chatgate_channel_send_seconds_bucket{kind=\"twilio\",le=\"10\"}",
    ] {
        assert!(text.contains(series), "no {series} in {text}");
    }
}

/// How much background work waits, by kind (docs/operations.md#metrics):
/// each kind's series is there at 0 before any work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_queue_has_a_series_per_kind_from_the_start() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    let text = scrape(&app).await;
    assert!(
        text.contains("# TYPE chatgate_background_queue gauge"),
        "{text}"
    );
    for kind in ["ladder", "app_poll"] {
        let series = format!("chatgate_background_queue{{kind=\"{kind}\"}} ");
        let value = text.lines().find_map(|l| l.strip_prefix(series.as_str()));
        let value: f64 = value
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .trim()
            .parse()
            .unwrap();
        assert!(value >= 0.0, "{series}{value}");
    }
}

/// A sample line labelled by `team`, if any.
fn team_sample(text: &str) -> Option<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.contains("{team=\"") || l.contains(",team=\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_metrics_are_public_but_list_no_team() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    let text = scrape(&app).await;
    assert_eq!(team_sample(&text), None, "a team id is listed");
    assert!(!text.contains("globex"), "{text}");
    // The families stay, with their help.
    assert!(text.contains("# TYPE chatgate_outbox_delivered_total counter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_metrics_need_it_and_show_every_series() {
    let app = spawn_with(Backend::Memory, with_metrics_token())
        .await
        .unwrap();
    let wrong = format!("{METRICS_TOKEN}x");
    for key in [
        None,
        Some("scrape-me"),
        Some(wrong.as_str()),
        Some(&*app.keys.agent),
    ] {
        let res = app
            .request(Method::GET, "/metrics", key)
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 401, "unauthorized").await;
        assert!(!body.to_string().contains(METRICS_TOKEN), "{body}");
    }
    // Another scheme with the right token is not a bearer token either.
    let res = app
        .request(Method::GET, "/metrics", None)
        .header("authorization", format!("Basic {METRICS_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = app
        .request(Method::GET, "/metrics", None)
        .header("authorization", format!("bearer  {METRICS_TOKEN} "))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(team_sample(&text).is_some(), "{text}");
    assert!(
        text.contains("chatgate_outbox_delivered_total{team=\"acme\""),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_random_not_counted() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = app
            .request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap();
        ids.push(res.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    // A counter's ids share all but their last digits; random ones do not.
    let shared = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    assert!(
        shared(&ids[0], &ids[1]) < 16 && shared(&ids[1], &ids[2]) < 16,
        "{ids:?}"
    );
}

both_stores!(
    metric_labels_come_from_a_closed_set,
    |app: TestApp| async move {
        let mut made_up = Vec::new();
        for _ in 0..5 {
            made_up.push(format!("M{}", Uuid::now_v7().simple()).to_uppercase());
        }
        // Long, but within the 16 KiB head.
        made_up.push("X".repeat(12_000));
        for m in &made_up {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            let res = app.request(method, "/healthz", None).send().await.unwrap();
            assert_eq!(res.status(), 405);
        }
        let unknown_path = format!("/no-such-path-{}", Uuid::now_v7().simple());
        let res = app
            .request(Method::GET, &unknown_path, None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        let text = app
            .request(Method::GET, "/metrics", None)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for m in &made_up {
            assert!(
                !text.contains(&m[..20]),
                "a method made up by the client is a label"
            );
        }
        assert!(!text.contains(&unknown_path), "an unknown path is a label");
        assert!(text.contains("method=\"OTHER\""));
        assert!(text.contains("route=\"unmatched\""));
    }
);

/// A team with no outbox work has no loop in the dispatcher, and an API
/// team no series: each is made at the team's first use
/// (docs/decisions/0752-a-team-s-loop-and-series-are-made-at-its-first-use.md).
/// A file team's series are there at 0 from the start, as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_team_has_no_outbox_loop_and_an_idle_api_team_no_series() {
    let app = operated_gateway().await;
    let (_, label, _) = an_api_team(&app, "idle", |_| {}).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        app.gateway.outbox().team_loops(),
        0,
        "no team has outbox work"
    );
    let text = scrape_all(&app).await;
    assert!(
        !text.contains(&label),
        "an idle API team has no series: {text}"
    );
    assert!(text.contains("chatgate_outbox_given_up_total{team=\"globex\",kind=\"event\"}"));
    // The team's first interaction: its event for the team's webhook starts
    // its loop, and no other, and with it its series.
    first_interaction(&app).await;
    for _ in 0..50 {
        if app.gateway.outbox().team_loops() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.gateway.outbox().team_loops(),
        1,
        "the team's loop alone"
    );
    // The loop registers its series when it first runs, a moment after
    // it is counted: the scrape waits for that run, not for a timer.
    let series = format!("chatgate_outbox_given_up_total{{{label},kind=\"event\"}}");
    let mut text = scrape_all(&app).await;
    for _ in 0..50 {
        if text.contains(&series) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = scrape_all(&app).await;
    }
    assert!(text.contains(&series), "{text}");
}

/// A team written through the operator API and deleted leaves neither
/// series nor deliveries' health behind on an instance, so that a fleet
/// that writes and deletes teams does not grow
/// (docs/decisions/0890-a-gone-team-s-series-and-health-are-dropped.md).
/// While it lives, its failing webhook's oldest pending item is its id's
/// series, as its deliveries count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_team_s_series_and_health_are_dropped() {
    use crate::operator_writes::{delete, etag_of};
    use crate::outbox::eventually;
    let app = operated_gateway().await;
    let outbox = app.gateway.outbox();
    let held = outbox.destinations_held();
    // A webhook nobody answers: its delivery fails and waits for a retry.
    let (id, label, res) = an_api_team(&app, "gone", |body| {
        body["webhook"]["url"] = serde_json::json!("http://127.0.0.1:9/events");
    })
    .await;
    let etag = etag_of(&res);
    first_interaction(&app).await;
    let value = |text: &str, series: &str| {
        let line = text.lines().find_map(|l| l.strip_prefix(series));
        line.and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let failed = format!("chatgate_outbox_failed_attempts_total{{{label},kind=\"event\"}} ");
    eventually("the webhook's delivery failed", || async {
        value(&scrape_all(&app).await, &failed) > 0.0
    })
    .await;
    // The failed item grows old on the gateway's clock.
    app.advance(30);
    let pending = format!("chatgate_outbox_oldest_pending_seconds{{{label},kind=\"event\"}} ");
    eventually("the failed item's age, under the team's id", || async {
        value(&scrape_all(&app).await, &pending) >= 30.0
    })
    .await;
    assert!(outbox.destinations_held() > held, "its webhook's health");
    let res = delete(&app, &id, &[("If-Match", &etag)]).await;
    assert_eq!(res.status(), 204);
    eventually("the deleted team's series and health gone", || async {
        !scrape_all(&app).await.contains(&label) && outbox.destinations_held() == held
    })
    .await;
    assert_eq!(outbox.team_loops(), 0, "its loop ended");
}
