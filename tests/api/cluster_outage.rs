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

/// Every formatted line, with when it was written (also read by
/// `cluster_teams`).
#[derive(Clone, Default)]
pub(crate) struct Lines(pub(crate) Arc<Mutex<Vec<(Instant, String)>>>);

impl Lines {
    /// Keeps what this thread logs at INFO and above, without colour,
    /// while the guard lives, line by line with its time.
    pub(crate) fn at_info() -> (Lines, tracing::subscriber::DefaultGuard) {
        let lines = Lines::default();
        let guard = crate::logs::into_at_info(lines.clone());
        (lines, guard)
    }
}

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
    let (lines, _guard) = Lines::at_info();
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

/// One team's answers during a failover: how many, how many 503s, the
/// slowest, and any other status than the expected ones.
#[derive(Default, Debug)]
struct Tally {
    answers: usize,
    unavailable: usize,
    slowest: Duration,
    unexpected: Vec<u16>,
}

impl Tally {
    fn add(&mut self, status: u16, took: Duration) {
        self.answers += 1;
        self.slowest = self.slowest.max(took);
        match status {
            200 | 201 | 302 => {}
            503 => self.unavailable += 1,
            other => self.unexpected.push(other),
        }
    }
}

/// A create, a status read, a login link issued and its short link
/// followed, for one team, each tallied: the link's code is found by the
/// browser alone, in its team's slot (docs/architecture.md#many-teams).
async fn team_round(app: &TestApp, bot: &str, agent: &str, tally: &Arc<Mutex<Tally>>) {
    let started = Instant::now();
    let res = app
        .request(Method::POST, "/v1/interactions", Some(bot))
        .json(&json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    tally.lock().unwrap().add(status, started.elapsed());
    let Some(id) = body["id"].as_str() else {
        return;
    };
    let started = Instant::now();
    let res = app
        .request(Method::GET, &format!("/v1/interactions/{id}"), Some(agent))
        .send()
        .await
        .unwrap();
    tally
        .lock()
        .unwrap()
        .add(res.status().as_u16(), started.elapsed());
    let started = Instant::now();
    let res = app
        .request(
            Method::POST,
            &format!("/v1/interactions/{id}/login-links"),
            Some(bot),
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let link: serde_json::Value = res.json().await.unwrap_or_default();
    tally.lock().unwrap().add(status, started.elapsed());
    let Some(short) = link["short_url"].as_str() else {
        return;
    };
    let code = short.rsplit('/').next().unwrap_or_default();
    let started = Instant::now();
    let res = app
        .request(Method::GET, &format!("/l/{code}"), None)
        .send()
        .await
        .unwrap();
    tally
        .lock()
        .unwrap()
        .add(res.status().as_u16(), started.elapsed());
}

/// A node of the test cluster, by port.
fn node(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(1))
        .expect("a cluster node answers")
}

/// The process id of the node at `port`.
fn process_id(port: u16) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut node(port))
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("INFO server names the process")
}

/// Sends `signal` (`STOP`, `KILL`) to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Gives `tag`'s slot (empty yet) to another master than the one holding
/// it, on every node; that master's index in `ports`.
fn move_slot_of(cluster: &OwnCluster, tag: &str) -> usize {
    let from = cluster.owner_of(&format!("{{{tag}}}"));
    let mut conn = node(cluster.ports[from]);
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(tag)
        .query(&mut conn)
        .unwrap();
    let to = (0..)
        .map(|i| cluster.owner_of(&format!("{{other-{i}}}")))
        .find(|owner| *owner != from)
        .expect("another master");
    let id: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut node(cluster.ports[to]))
        .unwrap();
    // The masters are told; their replicas follow them.
    for port in &cluster.ports {
        let told: redis::RedisResult<()> = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&id)
            .query(&mut node(*port));
        if let Err(e) = told {
            assert!(e.to_string().contains("only with masters"), "{e}");
        }
    }
    let _: redis::Value = redis::cmd("CLUSTER")
        .arg("BUMPEPOCH")
        .query(&mut node(cluster.ports[to]))
        .unwrap();
    assert_eq!(cluster.owner_of(&format!("{{{tag}}}")), to);
    to
}

// A team whose keys live on a master that stays up is answered as usual
// while another master fails over, its login links issued and followed
// too (their codes carry the team's slot); the failing master's team gets 503s
// (fast, never a hang or a 500) until its replica is promoted, then both
// work (docs/operations.md#redis-cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_answers_503_only_to_the_team_on_the_failing_master() {
    if !cluster_binaries_present("a_failover_answers_503_only_to_the_team_on_the_failing_master") {
        return;
    }
    // Six nodes; a master silent for 2 s counts as failed. Redis' default
    // cluster-require-full-coverage: every master refuses every command
    // from when the failed master is flagged until its replica is promoted.
    let cluster = tokio::task::spawn_blocking(|| {
        let cluster = OwnCluster::start_with_replicas(2000)?;
        let healthy = move_slot_of(&cluster, "globex");
        Ok::<_, String>((cluster, healthy))
    })
    .await
    .unwrap()
    .expect("a local Redis Cluster with replicas starts");
    let (cluster, healthy) = (cluster.0, cluster.1);
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        ..Setup::default()
    };
    let app = Arc::new(spawn_with(Backend::Redis, setup).await.unwrap());
    let victim = cluster.owner_of("{acme}");
    assert_ne!(victim, healthy);
    // Both teams work, and the victim's writes reached its replica.
    app.new_interaction().await;
    let (acme, globex) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(Mutex::new(Tally::default())),
    );
    team_round(&app, &app.keys.globex_bot, &app.keys.globex_agent, &globex).await;
    assert_eq!(globex.lock().unwrap().answers, 4, "{globex:?}");
    tokio::task::block_in_place(|| cluster.wait_replicated(victim));
    *acme.lock().unwrap() = Tally::default();
    *globex.lock().unwrap() = Tally::default();

    // Load on both teams from the kill until 2 s after the promotion.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for (team, bot, agent) in [
        (&acme, app.keys.bot.clone(), app.keys.agent.clone()),
        (
            &globex,
            app.keys.globex_bot.clone(),
            app.keys.globex_agent.clone(),
        ),
    ] {
        for _ in 0..2 {
            let (app, team, stop) = (app.clone(), (*team).clone(), stop.clone());
            let (bot, agent) = (bot.clone(), agent.clone());
            load.push(tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    team_round(&app, &bot, &agent, &team).await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
    }
    // Frozen (SIGSTOP), as a hung host or a paused container: its
    // connections stay open and answer nothing.
    let pid = process_id(cluster.ports[victim]);
    signal(pid, "STOP");
    let killed = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        // No master for the slot yet, as the node asked sees it, is not yet
        // a takeover.
        let owner = tokio::task::block_in_place(|| cluster.serving("{acme}"));
        if owner.is_some_and(|owner| owner != victim) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no replica took over"
        );
    }
    let promoted = killed.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (acme, globex) = (
        std::mem::take(&mut *acme.lock().unwrap()),
        std::mem::take(&mut *globex.lock().unwrap()),
    );
    eprintln!(
        "failover: promoted after {:.1} s; acme (failing master) {} × 503 of {} answers, slowest {} ms; \
         globex (healthy master) {} × 503 of {} answers, slowest {} ms",
        promoted.as_secs_f64(),
        acme.unavailable,
        acme.answers,
        acme.slowest.as_millis(),
        globex.unavailable,
        globex.answers,
        globex.slowest.as_millis(),
    );
    assert_eq!(
        globex.unavailable, 0,
        "the healthy master's team: {globex:?}"
    );
    assert!(globex.unexpected.is_empty(), "{globex:?}");
    assert!(globex.answers > 20, "{globex:?}");
    assert!(globex.slowest < Duration::from_secs(2), "{globex:?}");
    assert!(acme.unexpected.is_empty(), "never a 500: {acme:?}");
    assert!(
        acme.slowest < Duration::from_secs(2),
        "a 503 within 2 s, never a hang: {acme:?}"
    );

    // After the promotion both teams are answered as usual.
    let (acme, globex) = (
        Arc::new(Mutex::new(Tally::default())),
        Arc::new(Mutex::new(Tally::default())),
    );
    team_round(&app, &app.keys.bot, &app.keys.agent, &acme).await;
    team_round(&app, &app.keys.globex_bot, &app.keys.globex_agent, &globex).await;
    for tally in [acme, globex] {
        let tally = tally.lock().unwrap();
        assert_eq!((tally.answers, tally.unavailable), (4, 0), "{tally:?}");
        assert!(tally.unexpected.is_empty(), "{tally:?}");
    }
}

// A slot given to another master after the store read the slot map: the
// store follows the MOVED answer (and keeps the new owner) rather than
// failing (docs/operations.md#redis-cluster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_moved_to_another_master_is_followed() {
    use crate::store_contract::{put, read, LONG};
    use chatgate::store::{Commit, SharedStore};
    if !cluster_binaries_present("a_slot_moved_to_another_master_is_followed") {
        return;
    }
    let (cluster, store, prefix) = crate::redis_support::own_cluster_store().await;
    let store: SharedStore = Arc::new(store);
    let key = "{moved}:a";
    assert_eq!(read(&store, key).await, None);
    let from = cluster.owner_of("{moved}");
    let to = tokio::task::block_in_place(|| move_slot_of(&cluster, "moved"));
    assert_ne!(from, to);
    for round in 0..3 {
        let expected = read(&store, key).await.map_or(0, |(v, _)| v);
        let put = put(key, expected, &round.to_string(), Some(LONG));
        assert_eq!(store.commit(vec![put]).await.unwrap(), Commit::Applied);
        assert_eq!(
            read(&store, key).await.map(|(_, v)| v),
            Some(round.to_string())
        );
    }
    assert_eq!(
        cluster.keys(&prefix).len(),
        1,
        "written once, where the slot now is"
    );
}
