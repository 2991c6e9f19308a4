//! The audit trail's sinks and reads seen from outside
//! (docs/audit.md#wiring-a-siem): a head set back, or a store come back
//! empty, continues with an `audit.trail_reset` entry, one ERROR line, and
//! both sinks send every entry from it on (docs/audit.md#resets); the
//! webhook sink's lag while its receiver hangs; paging the trail as
//! docs/audit.md#reading-it says.
use std::time::Duration;

use chatgate::domain::audit::verify_chain;
use chatgate::store::{keys, Op, SharedStore, Versioned};
use serde_json::{Map, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::audit::{audit_setup, auditor_key, json_of, of, receiver, trail, unlock, Received};
use crate::helpers::*;
use crate::redis_support::OwnRedis;

/// A syslog receiver and a team audit webhook that take everything.
struct Sinks {
    syslog: Received,
    hook: MockServer,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Sinks {
    /// The sinks, and the lines of the system file and of acme's file
    /// that send to them.
    async fn start() -> (Sinks, String, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let syslog = Received::default();
        let stop = receiver(listener, syslog.clone());
        let hook = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/audit"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&hook)
            .await;
        let secret = chatgate::domain::secrets::generate_whsec();
        let system = format!("[audit.syslog]\naddress = \"tcp://127.0.0.1:{port}\"\n");
        let team = format!(
            "[audit]\nwebhook = {{ url = \"{}/audit\", secret = \"{secret}\" }}\n",
            hook.uri()
        );
        let sinks = Sinks {
            syslog,
            hook,
            _stop: stop,
        };
        (sinks, system, team)
    }

    /// The entries each sink received, as JSON.
    async fn received(&self) -> (Vec<Value>, Vec<Value>) {
        let syslog = self
            .syslog
            .lock()
            .unwrap()
            .iter()
            .map(|(_, msg)| serde_json::from_str(json_of(msg)).unwrap())
            .collect();
        let hook = self
            .hook
            .received_requests()
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        (syslog, hook)
    }

    /// Waits (up to 15 s) until both sinks have received every entry of
    /// `entries` (told apart by `id`).
    async fn delivered(&self, entries: &[Map<String, Value>]) -> bool {
        let ids = |got: &[Value]| -> std::collections::BTreeSet<String> {
            got.iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect()
        };
        for _ in 0..150 {
            let (syslog, hook) = self.received().await;
            let (syslog, hook) = (ids(&syslog), ids(&hook));
            if entries.iter().all(|e| {
                let id = e["id"].as_str().unwrap();
                syslog.contains(id) && hook.contains(id)
            }) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

/// `audit_setup` of `seed` on the store of `base`, with the sinks' lines
/// of the system file and of acme's file.
fn sinks_setup(seed: &str, base: Setup, system: String, team: &str) -> Setup {
    Setup {
        system_extra: system,
        store: base.store,
        redis_url: base.redis_url,
        key_prefix: base.key_prefix,
        ..audit_setup(seed, team)
    }
}

/// acme's entries up to `seq`, as the store holds them (no read of the
/// trail, which would add entries).
async fn stored_entries(store: &SharedStore, last: u64) -> Vec<Map<String, Value>> {
    let wanted: Vec<String> = (1..=last).map(|s| keys::audit_entry("acme", s)).collect();
    store
        .get(&wanted)
        .await
        .unwrap()
        .into_iter()
        .map(|raw| chatgate::gateway::audit::entry_json(raw.expect("an entry").value).unwrap())
        .map(|json| serde_json::from_str(&json).unwrap())
        .collect()
}

async fn head(store: &SharedStore) -> Option<Versioned> {
    let key = keys::audit_head("acme");
    store.get(&[key]).await.unwrap().pop().flatten()
}

fn head_seq(head: &Versioned) -> u64 {
    let v: Value = serde_json::from_str(&head.value).unwrap();
    v["seq"].as_u64().unwrap()
}

/// Sets acme's head back to `old` (as it was read) and removes the
/// entries after it, as someone with the store's password would.
async fn roll_back(store: &SharedStore, old: &Versioned) {
    let now = head(store).await.unwrap();
    let (from, to) = (head_seq(old) + 1, head_seq(&now));
    let wanted: Vec<String> = (from..=to).map(|s| keys::audit_entry("acme", s)).collect();
    let mut ops = vec![Op::Put {
        key: keys::audit_head("acme"),
        expected: now.version,
        version: chatgate::store::fresh_version(),
        value: old.value.clone(),
        ttl: Some(Duration::from_secs(86_400)),
        companion: None,
    }];
    for (key, raw) in wanted.iter().zip(store.get(&wanted).await.unwrap()) {
        ops.push(Op::Delete {
            key: key.clone(),
            expected: raw.unwrap().version,
        });
    }
    assert_eq!(
        store.commit(ops).await.unwrap(),
        chatgate::store::Commit::Applied
    );
}

/// The store of a test: memory, or a Redis of the test's own.
async fn own_store(backend: Backend, test: &str) -> Option<(SharedStore, Setup, Option<OwnRedis>)> {
    match backend {
        Backend::Memory => {
            let store: SharedStore =
                std::sync::Arc::new(chatgate::store::memory::MemoryStore::new());
            let setup = Setup {
                store: Some(store.clone()),
                ..Setup::default()
            };
            Some((store, setup, None))
        }
        Backend::Redis => {
            let server = OwnRedis::private(test).await?;
            let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
            let store: SharedStore = std::sync::Arc::new(
                chatgate::store::redis::RedisStore::connect(&server.url(), &prefix)
                    .await
                    .unwrap(),
            );
            let setup = Setup {
                store: Some(store.clone()),
                redis_url: Some(server.url()),
                key_prefix: Some(prefix),
                ..Setup::default()
            };
            Some((store, setup, Some(server)))
        }
    }
}

/// The ERROR lines of `capture` that say the trail was reset.
fn reset_errors(capture: &crate::logs::Capture) -> Vec<String> {
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    text.lines()
        .filter(|l| l.contains("ERROR") && l.contains("audit.trail_reset"))
        .map(str::to_string)
        .collect()
}

/// A head set back (8 -> 4, the later entries removed): the trail goes
/// on at 5 with `audit.trail_reset` (`rolled_back`, `previous_seq` 8),
/// one ERROR line, the chain unbroken from it, and both sinks receive
/// every entry of the trail as it now stands, the reset's and those after
/// it included (their cursors were at 8: ahead of the head).
async fn a_rolled_back_head_is_recorded_and_reaches_both_sinks(backend: Backend) {
    let (capture, _guard) = crate::logs::Capture::at_info();
    let test = "a_rolled_back_head_is_recorded_and_reaches_both_sinks";
    let Some((store, base, _server)) = own_store(backend, test).await else {
        return;
    };
    let (sinks, system, team) = Sinks::start().await;
    let setup = sinks_setup("rollback", base, system, &team);
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    for i in 1..=3 {
        unlock(&app, i).await;
    }
    let at_four = head(&store).await.unwrap();
    assert_eq!(head_seq(&at_four), 4);
    for i in 4..=7 {
        unlock(&app, i).await;
    }
    let before = stored_entries(&store, 8).await;
    assert!(sinks.delivered(&before).await, "{backend:?}: 1..=8 sent");

    roll_back(&store, &at_four).await;
    for i in 8..=9 {
        unlock(&app, i).await;
    }

    let entries = trail(&app, &auditor_key("rollback")).await;
    let reset = &entries[4];
    assert_eq!(reset["seq"], 5, "{backend:?}: {entries:#?}");
    assert_eq!(reset["action"], "audit.trail_reset");
    assert_eq!(reset["actor"], serde_json::json!({"type": "system"}));
    assert_eq!(
        reset["detail"],
        serde_json::json!({"previous_seq": 8, "reason": "rolled_back"})
    );
    assert!(reset.get("request_id").is_none());
    assert_eq!(
        reset["prev"], before[3]["hash"],
        "chained after the head found"
    );
    assert_eq!(of(&entries, "audit.trail_reset").len(), 1, "recorded once");
    let unlocked: Vec<&Value> = entries[5..7]
        .iter()
        .map(|e| &e["target"]["subject"])
        .collect();
    assert_eq!(unlocked, ["cust-8", "cust-9"]);
    verify_chain(&entries).expect("the chain holds through the reset");
    verify_chain(&entries[4..]).expect("and from the reset entry on");

    // Both copies get every entry of the trail as it stands: none skipped
    // for a cursor that was ahead.
    assert!(
        sinks.delivered(&entries[..7]).await,
        "{backend:?}: both sinks, from the reset on: {:?}",
        sinks.received().await
    );
    let errors = reset_errors(&capture);
    assert_eq!(errors.len(), 1, "{backend:?}: one ERROR line: {errors:#?}");
    assert!(errors[0].contains("rolled_back"), "{}", errors[0]);
}

#[tokio::test]
async fn a_rolled_back_head_is_recorded_and_reaches_both_sinks_on_memory() {
    a_rolled_back_head_is_recorded_and_reaches_both_sinks(Backend::Memory).await;
}

#[tokio::test]
async fn a_rolled_back_head_is_recorded_and_reaches_both_sinks_on_redis() {
    a_rolled_back_head_is_recorded_and_reaches_both_sinks(Backend::Redis).await;
}

/// A Redis that comes back empty: acme's trail starts again at seq 1
/// with `audit.trail_reset` (`store_reset`, `previous_seq` the highest
/// seq known), one ERROR line; the syslog receiver and the webhook get
/// the new seq 1 (another `id` than the first seq 1) and what follows.
#[tokio::test]
async fn a_store_come_back_empty_restarts_the_audit_trail_with_its_reset() {
    let (capture, _guard) = crate::logs::Capture::at_info();
    let test = "a_store_come_back_empty_restarts_the_audit_trail_with_its_reset";
    let Some((store, base, Some(server))) = own_store(Backend::Redis, test).await else {
        return;
    };
    let (sinks, system, team) = Sinks::start().await;
    let setup = sinks_setup("emptied", base, system, &team);
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    for i in 1..=3 {
        unlock(&app, i).await;
    }
    let before = stored_entries(&store, 4).await;
    assert!(sinks.delivered(&before).await, "1..=4 sent");

    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut admin).unwrap();
    unlock(&app, 4).await;

    let entries = trail(&app, &auditor_key("emptied")).await;
    let reset = &entries[0];
    assert_eq!(reset["seq"], 1, "{entries:#?}");
    assert_eq!(reset["action"], "audit.trail_reset");
    assert_eq!(
        reset["detail"],
        serde_json::json!({"previous_seq": 4, "reason": "store_reset"})
    );
    assert_eq!(reset["prev"], chatgate::domain::audit::GENESIS);
    assert_ne!(reset["id"], before[0]["id"]);
    assert_eq!(entries[1]["action"], "subject.unlocked");
    assert_eq!(entries[1]["target"]["subject"], "cust-4");
    verify_chain(&entries).expect("a chain from the reset entry");
    assert!(
        sinks.delivered(&entries[..2]).await,
        "both sinks get the new seq 1 and 2: {:?}",
        sinks.received().await
    );
    let (syslog, _) = sinks.received().await;
    let mut firsts: Vec<(&Value, &Value)> = syslog
        .iter()
        .filter(|e| e["seq"] == 1 && e["team"] == "acme")
        .map(|e| (&e["action"], &e["id"]))
        .collect();
    // (At least once: an entry may come twice.)
    firsts.dedup();
    let actions: Vec<&Value> = firsts.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        actions,
        ["config.changed", "audit.trail_reset"],
        "seq 1 twice, told apart by id"
    );
    let errors = reset_errors(&capture);
    assert_eq!(errors.len(), 1, "one ERROR line: {errors:#?}");
    assert!(errors[0].contains("store_reset"), "{}", errors[0]);
}

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
    // Well within the POST's 10 s time-out; often, as the gauge is the
    // process's, which other gateways of this test process set too.
    let mut lag = 0.0;
    for _ in 0..300 {
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
        if lag >= week as f64 && lag < (week + 60) as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lag >= week as f64 && lag < (week + 60) as f64,
        "the lag is the oldest entry's age: {lag}"
    );
    hanging.abort();
}

both_stores!(
    paging_until_a_short_page_reads_the_whole_audit_trail_and_stops,
    setup: audit_setup("paging", ""),
    |app: TestApp| async move {
        let auditor = auditor_key("paging");
        for i in 0..7 {
            unlock(&app, i).await;
        }
        // As docs/audit.md#reading-it says: page on from `next` until a
        // page holds fewer than `limit` entries.
        let limit = 3;
        let mut after = 0;
        let mut read = Vec::new();
        let mut pages = 0;
        loop {
            let page = app
                .get_json(&format!("/v1/audit?after={after}&limit={limit}"), Some(&auditor))
                .await;
            pages += 1;
            assert!(pages <= 10, "paging stops");
            let got: Vec<Map<String, Value>> = page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_object().unwrap().clone())
                .collect();
            after = page["next"].as_u64().unwrap();
            let short = got.len() < limit;
            read.extend(got);
            if short {
                break;
            }
        }
        // 8 entries (the configuration, 7 unlocks), then 3 reads: pages
        // of 3, 3, 3 (the first read's entry among them) and 2.
        assert_eq!(pages, 4);
        let seqs: Vec<u64> = read.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
        assert_eq!(of(&read, "subject.unlocked").len(), 7);
        // No page held its own read: each is written after the page it
        // answered.
        for r in of(&read, "audit.read") {
            assert!(r["seq"].as_u64() > r["detail"]["next"].as_u64(), "{r:?}");
        }
        verify_chain(&read).unwrap();
    }
);

/// A team's audit webhook that refuses every entry is asked again after
/// the backoff, and its failing is one warning however many attempts
/// fail, not one an attempt (docs/audit.md#wiring-a-siem).
#[tokio::test]
async fn a_refusing_audit_webhook_is_one_warning_however_many_attempts_fail() {
    // This test's own thread (a current-thread runtime runs the sink here too).
    let (capture, _guard) = crate::logs::Capture::at_info();
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/audit"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&hook)
        .await;
    let secret = chatgate::domain::secrets::generate_whsec();
    let extra = format!(
        "[audit]\nwebhook = {{ url = \"{}/audit\", secret = \"{secret}\" }}\n",
        hook.uri()
    );
    let app = spawn_with(Backend::Memory, audit_setup("refusing-hook", &extra))
        .await
        .unwrap();
    // Each attempt once its backoff is over on the gateway's clock.
    let mut attempts = 0;
    for _ in 0..150 {
        attempts = hook.received_requests().await.unwrap().len();
        if attempts >= 3 {
            break;
        }
        app.advance(3600);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(attempts >= 3, "asked again after its backoff: {attempts}");
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("audit webhook"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(warnings[0].contains("HTTP 500"), "{}", warnings[0]);
}

/// While the store does not answer, the sinks say nothing of their own:
/// no line per team and round for the webhook, no failing and recovering
/// syslog receiver (the store's outage is the store's to tell, once).
// On this test's one thread: the sinks' lines are captured.
#[tokio::test]
async fn a_store_that_does_not_answer_floods_no_log_from_the_sinks() {
    let (sinks, system, team) = Sinks::start().await;
    let (inner, prefix) = crate::outbox::own_store(Backend::Memory).await.unwrap();
    let store = crate::stalls::Stalling::over(inner);
    let base = Setup {
        key_prefix: Some(prefix),
        store: Some(store.clone()),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Memory, sinks_setup("flood", base, system, &team))
        .await
        .unwrap();
    let (lines, _guard) = crate::cluster_outage::Lines::at_info();
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    store.stall(true);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    store.stall(false);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let said = |what: &str| -> Vec<String> {
        let lines = lines.0.lock().unwrap();
        let found = lines.iter().filter(|(_, l)| l.contains(what));
        found.map(|(_, l)| l.clone()).collect()
    };
    let per_team = said("audit entries not sent to the team's webhook");
    assert!(per_team.is_empty(), "{per_team:?}");
    let syslog = said("127.0.0.1");
    assert!(syslog.is_empty(), "{syslog:?}");
    drop(sinks);
    drop(app);
}

/// The instance that sends acme's entries stops without a word (its
/// lease on the team's sending is not given back, as after a kill):
/// another instance sends acme's next entry within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_instance_takes_over_the_sinks_within_five_seconds_of_a_kill() {
    let (sinks, system, team) = Sinks::start().await;
    let setup = || sinks_setup("takeover", Setup::default(), system.clone(), &team);
    let Some(a) = spawn_with(Backend::Redis, setup()).await else {
        return;
    };
    let hooked = |action: &'static str| {
        let sinks = &sinks;
        async move {
            let (_, hook) = sinks.received().await;
            hook.iter().any(|e| e["action"] == action)
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !hooked("config.changed").await {
        assert!(std::time::Instant::now() < deadline, "a sends nothing");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let b = spawn_beside(&a, setup()).await;
    // Each instance's clock stands still but for the test: b's is set to
    // 5 s after a's last round.
    let since = a.now();
    a.stop_keeping_keys().await;
    let ahead = since.plus(std::time::Duration::from_secs(5));
    b.clock.advance(std::time::Duration::from_millis(
        (ahead.unix_millis() - b.now().unix_millis()).max(0) as u64,
    ));
    unlock(&b, 1).await;
    let stopped = std::time::Instant::now();
    while !hooked("subject.unlocked").await {
        let waited = stopped.elapsed();
        assert!(
            waited < std::time::Duration::from_secs(2),
            "not taken over 5 s after the stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
