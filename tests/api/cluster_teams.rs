//! Many teams on a Redis Cluster (docs/architecture.md#many-teams): an
//! idle instance costs the cluster per node, not per team — its event
//! stream reads only the teams with a listener, its store watch one marker
//! per master (docs/architecture.md#event-streams,
//! docs/decisions/0196-store-resets-are-watched-per-node.md) — and its log
//! stays bounded through a master's loss and empty return
//! (docs/operations.md#logs). A team id written again after a delete is a
//! new tenant there too
//! (docs/operator-api.md#a-deleted-id-written-again).
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::events::redis::{RedisLog, Servers};
use chatgate::events::{Event, EventLog, EventType};
use chatgate::time::Timestamp;
use reqwest::Method;
use serde_json::json;

use crate::cluster_outage::Lines;
use crate::helpers::*;
use crate::redis_support::{cluster_binaries_present, shared_cluster, OwnCluster};

impl Lines {
    fn with(&self, text: &str) -> usize {
        let lines = self.0.lock().unwrap();
        lines.iter().filter(|(_, l)| l.contains(text)).count()
    }
}

/// Teams besides acme and globex: about 500 on each master, so a list of
/// one master's teams would be a line of some 5 KB.
const TEAMS: usize = 1_500;

/// The least number of commands the cluster counted in one of three
/// windows of `window`, and the calls of `only` in the same window (other
/// work of the process may add to a window, never take from it).
/// (The counts are read on this thread: a few quick calls.)
async fn least_calls(cluster: &OwnCluster, window: Duration, only: &[&str]) -> (u64, u64) {
    let mut least = (u64::MAX, u64::MAX);
    for _ in 0..3 {
        let (all, some) = (cluster.calls(&[]), cluster.calls(only));
        tokio::time::sleep(window).await;
        let all = cluster.calls(&[]) - all;
        let some = cluster.calls(only) - some;
        if all < least.0 {
            least = (all, some);
        }
    }
    least
}

/// On its own cluster of three masters, an instance of 1 502 teams, with
/// live streams open for two of them:
/// - idle, it issues at most 200 commands a second across the masters
///   and holds at most 16 connections to each, and its store watch reads
///   a few markers a round, not the teams' (a reader and a connection per
///   team, and a read of every team's marker every 2 s, cost thousands);
/// - a master killed, then back empty: each kind of connection says it
///   lost the node once and that it is back once (not per team), the
///   reset is noticed and logged in one line of the teams' count, and no
///   line is longer than 4 KiB.
// The runtime runs on this test's thread, so the thread's subscriber sees
// the gateway's lines and no other test's.
#[tokio::test]
async fn an_idle_instance_costs_the_cluster_per_node_and_its_log_stays_bounded() {
    const TEST: &str = "an_idle_instance_costs_the_cluster_per_node_and_its_log_stays_bounded";
    if !cluster_binaries_present(TEST) {
        return;
    }
    let (lines, _guard) = Lines::at_info();
    let mut cluster = OwnCluster::start().expect("a local Redis Cluster starts");
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        extra_teams: TEAMS,
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let mut streams = Vec::new();
    for key in [&app.keys.agent, &app.keys.globex_agent] {
        let res = app
            .request(Method::GET, "/v1/events", Some(key))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        streams.push(res);
    }
    // Past the start: every team's marker settled, the rescan's first turn.
    tokio::time::sleep(Duration::from_secs(8)).await;

    let window = Duration::from_secs(2);
    let (all, reads) = least_calls(&cluster, window, &["get", "mget"]).await;
    let per_second = all as f64 / window.as_secs_f64();
    let clients = cluster.clients();
    eprintln!(
        "{TEAMS} teams, idle: {per_second:.0} commands/s across the masters, \
         {reads} GET/MGET in {window:?}, connections per node {clients:?}"
    );
    assert!(
        per_second <= 200.0,
        "{per_second:.0} commands a second, idle, with {TEAMS} teams"
    );
    assert!(
        clients.iter().all(|c| *c <= 16),
        "connections per node: {clients:?}"
    );
    // One round of the store watch reads three markers; the teams' were
    // a read each (1 502 a round).
    assert!(reads <= 30, "{reads} GET/MGET in {window:?}");

    // The master of acme's marker dies, and comes back without its data.
    let marker = format!(
        "{}:{}",
        app.key_prefix,
        chatgate::store::keys::store_epoch("acme")
    );
    let victim = cluster.owner_of(&marker);
    let down = Instant::now();
    cluster.kill(victim);
    for i in 0..30 {
        let create = json!({"channel": "webchat", "conversation_id": format!("down-{i}")});
        let _ = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
            .json(&create)
            .send()
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.restart(victim);
    let back = Instant::now();
    // Noticed within 5 s of the node's return, without a request: the
    // watch writes acme's marker again, as a reset.
    loop {
        let stored = cluster.get(&marker);
        if stored.is_some_and(|m| m.contains("\"r\":true")) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the reset of acme's master not noticed within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every kind of connection back on its own.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(streams);

    let all_lines = lines.0.lock().unwrap().clone();
    let since: Vec<&String> = all_lines
        .iter()
        .filter(|(at, _)| *at >= down)
        .map(|(_, l)| l)
        .collect();
    let longest = all_lines.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    let count = |text: &str| since.iter().filter(|l| l.contains(text)).count();
    eprintln!(
        "{} lines since the kill; the longest of the run {longest} bytes",
        since.len()
    );
    for (lost, back) in [
        (
            "event stream reader lost Redis",
            "event stream reader reads Redis again",
        ),
        ("store unavailable", "store is back"),
    ] {
        assert_eq!(count(lost), 1, "{lost}:\n{}", join(&since));
        assert!(count(back) <= 1, "{back}:\n{}", join(&since));
    }
    assert!(
        count("event stream reader reads Redis again") == 1,
        "the event stream's return is logged:\n{}",
        join(&since)
    );
    assert_eq!(
        lines.with("the store was reset: its data is lost"),
        1,
        "{}",
        join(&since)
    );
    assert!(longest <= 4096, "a line of {longest} bytes");
}

fn join(lines: &[&String]) -> String {
    lines
        .iter()
        .map(|l| l.chars().take(300).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An event of acme, for the log.
fn event() -> Arc<Event> {
    Arc::new(
        Event::new(
            EventType::InteractionCreated,
            Timestamp::from_unix_seconds(1_795_000_000),
            "acme",
            &json!({}),
        )
        .unwrap(),
    )
}

/// On a cluster: a team with no listener is not read; its first listener
/// has it read, and gets what another instance appends; once it leaves,
/// the team is read no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_is_read_only_while_it_has_a_listener() {
    const TEST: &str = "a_team_is_read_only_while_it_has_a_listener";
    let Some(cluster) = tokio::task::spawn_blocking(|| shared_cluster(TEST))
        .await
        .unwrap()
    else {
        return;
    };
    let urls = cluster.urls();
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let here = RedisLog::start(Servers::Cluster(&urls), &prefix)
        .await
        .unwrap();
    let other = RedisLog::start(Servers::Cluster(&urls), &prefix)
        .await
        .unwrap();
    other.append(event());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(here.listened().is_empty(), "no listener, nothing read");

    let mut live = here.listen("acme").await.unwrap();
    assert_eq!(here.listened(), ["acme"]);
    let sent = event();
    other.append(Arc::clone(&sent));
    let got = tokio::time::timeout(Duration::from_secs(5), live.recv())
        .await
        .expect("the other instance's event within 5 s")
        .unwrap();
    assert_eq!(got.event.id, sent.id, "only what came after the listener");

    drop(live);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !here.listened().is_empty() {
        assert!(
            Instant::now() < deadline,
            "still read after its listener left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Deletes, on the master at `url`, every key under `prefix` it holds:
/// that master back without this test's data.
fn empty_master(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
            .unwrap();
        for key in keys {
            let _: i64 = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// On a Cluster, the master that holds an API team's record comes back
/// without its data while the index of the API teams, on another master,
/// keeps it: the instances that hold the team write it back as it was,
/// its trail starting with the reset, and an instance that starts
/// afterwards has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_back_without_its_data_gets_the_api_teams_it_held_written_back() {
    use crate::operator_writes as writes;
    use chatgate::store::keys;
    const TEST: &str = "a_master_back_without_its_data_gets_the_api_teams_it_held_written_back";
    let cluster = tokio::task::spawn_blocking(|| shared_cluster(TEST));
    let Some(cluster) = cluster.await.unwrap() else {
        return;
    };
    let on_cluster = || Setup {
        cluster_nodes: cluster.urls(),
        ..writes::with_operator()
    };
    let a = spawn_with(Backend::Redis, on_cluster()).await.unwrap();
    let b = spawn_beside(&a, on_cluster()).await;
    let physical = |logical: String| format!("{}:{logical}", a.key_prefix);
    let index_owner = cluster.owner_of(&physical(keys::api_teams()));
    let id = (0..50)
        .map(|i| format!("newco{i}"))
        .find(|id| cluster.owner_of(&physical(keys::api_team(id))) != index_owner)
        .unwrap();
    let owner = cluster.owner_of(&physical(keys::api_team(&id)));
    let res = writes::put(
        &a,
        &id,
        &writes::team(&id, &chatgate::domain::secrets::generate_whsec()),
        &[],
    )
    .await;
    assert_eq!(res.status(), 201);
    let tag = res.headers()["etag"].to_str().unwrap().to_string();
    writes::within_two_seconds(&b, "newco-bot-key", 200).await;
    let stored = writes::stored(&a, &id).await.unwrap();

    empty_master(&cluster.urls()[owner], &a.key_prefix);
    assert!(
        writes::stored(&a, &id).await.is_none(),
        "the master lost it"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while writes::stored(&a, &id).await.is_none() {
        assert!(Instant::now() < deadline, "not written back within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(writes::stored(&a, &id).await.unwrap(), stored, "as it was");
    // Its trail, lost with it, starts with the reset, then the restore
    // (docs/audit.md#resets), whichever instance wrote it back.
    let trail = writes::entries(&a, &id).await;
    assert_eq!(trail[0]["action"], "audit.trail_reset", "{trail:?}");
    assert_eq!(trail[0]["detail"]["reason"], "store_reset", "{trail:?}");
    assert_eq!(trail[1]["detail"]["source"], "restore", "{trail:?}");
    let c = spawn_beside(&a, on_cluster()).await;
    assert_eq!(writes::key_status(&c, "newco-bot-key").await, 200);
    for app in [&a, &b, &c] {
        let res = app
            .request(Method::GET, &format!("/v1/teams/{id}"), Some(writes::OPS))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["etag"].to_str().unwrap(), tag);
    }
}

/// On a cluster, two instances: a team deleted and written again under
/// its id on one is a new tenant on the other within 2 s — its key in
/// force, the deleted team's refused, nothing the deleted team left read
/// for it (every incarnation of the id is in one slot, on one master).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_a_cluster_an_id_written_again_is_a_new_tenant() {
    use crate::new_tenant::written_again_on_one_is_new_on_the_other;
    use crate::operator_writes::with_operator;
    const TEST: &str = "on_a_cluster_an_id_written_again_is_a_new_tenant";
    let cluster = tokio::task::spawn_blocking(|| shared_cluster(TEST));
    let Some(cluster) = cluster.await.unwrap() else {
        return;
    };
    let on_cluster = || Setup {
        cluster_nodes: cluster.urls(),
        ..with_operator()
    };
    let a = spawn_with(Backend::Redis, on_cluster()).await.unwrap();
    let b = spawn_beside(&a, on_cluster()).await;
    written_again_on_one_is_new_on_the_other(&a, b).await;
}
