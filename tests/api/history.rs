//! An event is in its team's history (the log `GET /v1/events` resumes
//! from) as soon as the change it tells of is committed: the commit itself
//! appends it, in commit order, exactly once (docs/architecture.md#the-outbox).
//! Only a team with a webhook still gets an outbox item for it, which the
//! dispatcher POSTs without publishing the event again.
use std::sync::Arc;
use std::time::Duration;

use chatgate::app::{App, Options};
use chatgate::domain::secrets::generate_whsec;
use chatgate::events::memory::MemoryLog;
use chatgate::events::redis::{RedisLog, Servers};
use chatgate::events::{history_op, Event, EventLog, EventType, LogEntry, Publisher};
use chatgate::gateway::NewInteraction;
use chatgate::store::{keys, Commit, Op, SharedStore, Store};
use chatgate::time::{Clock, SystemClock};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::outbox::{eventually, own_store, receiver_failing_first, with_webhook};
use crate::outbox_drain::copy_dir;

/// `data` of a logged event.
fn data(entry: &LogEntry) -> Value {
    serde_json::from_str(entry.event.data.get()).unwrap()
}

/// The team's whole history as `log` holds it.
async fn history(log: &dyn EventLog) -> Vec<LogEntry> {
    log.read_after("acme", None, 10_000).await.unwrap()
}

/// The event log a gateway on `backend` would read, under `prefix`.
async fn log_of(backend: Backend, prefix: &str) -> Arc<dyn EventLog> {
    match backend {
        Backend::Memory => Arc::new(MemoryLog::new()),
        Backend::Redis => {
            let url = crate::redis_support::redis_url();
            let log = RedisLog::start(Servers::Single(&url), prefix);
            Arc::new(log.await.unwrap())
        }
    }
}

/// Runs `test` on each store, with a fresh one and its key prefix; the
/// prefix is cleaned up after.
macro_rules! on_each_store {
    ($name:ident, $test:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((store, prefix)) = own_store(Backend::Memory).await {
                    ($test)(Backend::Memory, store, prefix).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if !redis_available().await {
                    return;
                }
                if let Some((store, prefix)) = own_store(Backend::Redis).await {
                    ($test)(Backend::Redis, store, prefix.clone()).await;
                    delete_prefix(&prefix);
                }
            }
        }
    };
}

on_each_store!(
    an_event_is_in_the_history_right_after_its_commit,
    |backend: Backend, store: SharedStore, prefix: String| async move {
        // A gateway that does not serve: no dispatcher runs.
        let setup = Setup {
            key_prefix: Some(prefix.clone()),
            store: Some(store.clone()),
            ..Setup::default()
        };
        let first = spawn_with(backend, setup).await.unwrap();
        let dir = copy_dir(&first.dir);
        first.stop().await;
        let config = chatgate::config::load(&dir.join("config/chatgate.toml")).unwrap();
        let opts = Options {
            store: Some(store.clone()),
            ..Options::default()
        };
        let app = App::build(config, opts).await.unwrap();
        let gw = app.gateway();
        let team = gw.team("acme").unwrap();
        let mut announced = gw.events().subscribe();
        let req = NewInteraction {
            channel: "webchat".into(),
            conversation_id: "c-1".into(),
            ..NewInteraction::default()
        };
        let (view, created) =
            chatgate::gateway::interactions::create_interaction(&gw, team, req, SystemClock.now())
                .await
                .unwrap();
        assert!(created);
        let logged = history(gw.events().log().as_ref()).await;
        assert_eq!(logged.len(), 1, "in the history once, at once");
        assert_eq!(logged[0].event.kind, EventType::InteractionCreated);
        assert_eq!(data(&logged[0])["interaction"]["id"], view.id.to_string());
        // Announced in this process too (log line, metrics, broadcast).
        assert_eq!(announced.try_recv().unwrap().id, logged[0].event.id);
        // No webhook: nothing queued for it.
        let queued = store.index_desc(&keys::outbox("acme"), None, 10).await;
        assert!(queued.unwrap().is_empty());
        if backend == Backend::Redis {
            // The stream has its lifetime: the history's 15 minutes and
            // five more.
            let keys = crate::redis_support::TestPrefix::for_prefix(&prefix);
            let ttl = keys.pttl(&keys.physical("{acme}:ev"));
            assert!(ttl > 15 * 60 * 1000 && ttl <= 20 * 60 * 1000, "pttl {ttl}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
);

on_each_store!(
    a_conflicting_commit_appends_nothing,
    |backend: Backend, store: SharedStore, prefix: String| async move {
        let log = log_of(backend, &prefix).await;
        let publisher = Publisher::with_log(Arc::clone(&log));
        assert!(publisher.appended_by(store.as_ref()));
        let now = SystemClock.now();
        let event =
            |n: u64| Event::new(EventType::SubjectUnlocked, now, "acme", &json!({ "n": n }));
        let key = keys::subject("acme", "cust-1");
        let put = |expected: u64| Op::Put {
            key: key.clone(),
            expected,
            version: chatgate::store::fresh_version(),
            value: "{}".into(),
            ttl: Some(Duration::from_secs(60)),
            companion: None,
        };
        // The append comes first; the version check after it fails.
        let stale = vec![history_op("acme", &event(1).unwrap()).unwrap(), put(7)];
        assert_eq!(
            store.commit(stale).await.unwrap(),
            Commit::Conflict { op: 1 }
        );
        assert!(history(log.as_ref()).await.is_empty(), "nothing appended");
        let fresh = vec![history_op("acme", &event(2).unwrap()).unwrap(), put(0)];
        assert_eq!(store.commit(fresh).await.unwrap(), Commit::Applied);
        let logged = history(log.as_ref()).await;
        assert_eq!(
            logged
                .iter()
                .map(|e| data(e)["n"].clone())
                .collect::<Vec<_>>(),
            [json!(2)]
        );
    }
);

on_each_store!(
    the_history_is_in_commit_order,
    |backend: Backend, store: SharedStore, prefix: String| async move {
        // Writers race to raise one counter; each commit appends the value
        // it wrote. The history holds 1, 2, 3, … in that order: an append
        // lands in the history in the order its commit applied.
        const WRITERS: u64 = 8;
        const EACH: u64 = 20;
        let log = log_of(backend, &prefix).await;
        assert!(Publisher::with_log(Arc::clone(&log)).appended_by(store.as_ref()));
        let key = keys::subject("acme", "counter");
        let mut writers = tokio::task::JoinSet::new();
        for _ in 0..WRITERS {
            let (store, key) = (Arc::clone(&store), key.clone());
            writers.spawn(async move {
                let mut done = 0;
                while done < EACH {
                    let read = store
                        .get(std::slice::from_ref(&key))
                        .await
                        .unwrap()
                        .pop()
                        .flatten();
                    let (expected, n) =
                        read.map_or((0, 0), |r| (r.version, r.value.parse::<u64>().unwrap()));
                    let event = Event::new(
                        EventType::SubjectUnlocked,
                        SystemClock.now(),
                        "acme",
                        &json!({ "n": n + 1 }),
                    );
                    let ops = vec![
                        Op::Put {
                            key: key.clone(),
                            expected,
                            version: chatgate::store::fresh_version(),
                            value: (n + 1).to_string(),
                            ttl: Some(Duration::from_secs(60)),
                            companion: None,
                        },
                        history_op("acme", &event.unwrap()).unwrap(),
                    ];
                    if store.commit(ops).await.unwrap() == Commit::Applied {
                        done += 1;
                    }
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        let logged: Vec<u64> = history(log.as_ref())
            .await
            .iter()
            .map(|e| data(e)["n"].as_u64().unwrap())
            .collect();
        assert_eq!(logged, (1..=WRITERS * EACH).collect::<Vec<_>>());
    }
);

/// A team with a webhook: the event is in the history once, at its commit,
/// and its POST still comes (again after a failed attempt) without
/// appending it again.
async fn a_webhook_still_gets_its_post(backend: Backend) {
    let receiver = receiver_failing_first(1, 500).await;
    let setup = with_webhook(&receiver.uri(), &generate_whsec());
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let log = app.gateway.events().log();
    let id = app.new_interaction().await;
    let logged = history(log.as_ref()).await;
    assert_eq!(logged.len(), 1, "in the history at its commit");
    assert_eq!(data(&logged[0])["interaction"]["id"], id.as_str());
    let event_id = logged[0].event.id.to_string();
    let posts = || async {
        let all = receiver.received_requests().await.unwrap_or_default();
        all.iter()
            .filter(|r| crate::outbox::body(r)["id"] == event_id.as_str())
            .count()
    };
    eventually("the first attempt", || async { posts().await == 1 }).await;
    app.advance(3);
    eventually("the delivery, on retry", || async { posts().await == 2 }).await;
    let queue = keys::outbox("acme");
    eventually("the item settled", || async {
        let left = app.gateway.store().index_desc(&queue, None, 10).await;
        left.is_ok_and(|l| l.is_empty())
    })
    .await;
    let logged = history(log.as_ref()).await;
    let times = logged
        .iter()
        .filter(|e| e.event.id.to_string() == event_id)
        .count();
    assert_eq!(times, 1, "the event is in the history once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_still_gets_its_post_on_memory() {
    a_webhook_still_gets_its_post(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_still_gets_its_post_on_redis() {
    a_webhook_still_gets_its_post(Backend::Redis).await;
}

/// A Redis store under an in-process log (the config names the memory
/// store, a test brings Redis): commits cannot append to that log, so
/// events go through the outbox, and the dispatcher publishes them there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_reach_the_log_goes_through_the_outbox() {
    if !redis_available().await {
        return;
    }
    let Some((store, prefix)) = own_store(Backend::Redis).await else {
        return;
    };
    let setup = Setup {
        key_prefix: Some(prefix.clone()),
        store: Some(store),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let log = app.gateway.events().log();
    let id = app.new_interaction().await;
    eventually("the event in the in-process history", || async {
        let logged = history(log.as_ref()).await;
        logged.len() == 1 && data(&logged[0])["interaction"]["id"] == id.as_str()
    })
    .await;
    let redis_keys = crate::redis_support::TestPrefix::for_prefix(&prefix);
    let stream = redis_keys.physical("{acme}:ev");
    let exists = redis_keys.raw(&["EXISTS", &stream]);
    assert_eq!(exists, redis::Value::Int(0), "no Redis stream");
    eventually("the item settled", || async {
        let left = app
            .gateway
            .store()
            .index_desc(&keys::outbox("acme"), None, 10)
            .await;
        left.is_ok_and(|l| l.is_empty())
    })
    .await;
    drop(app);
    delete_prefix(&prefix);
}

/// More than 10 000 events of one team.
const MANY: u64 = 10_500;

/// Every `data.n` of the team's history after `after`, read page by page as
/// the live stream reads it.
async fn numbers_after(log: &dyn EventLog, mut after: Option<chatgate::events::LogId>) -> Vec<u64> {
    let mut numbers = Vec::new();
    loop {
        let page = log.read_after("acme", after, 200).await.unwrap();
        let Some(last) = page.last() else {
            return numbers;
        };
        after = Some(last.id);
        numbers.extend(page.iter().map(|e| data(e)["n"].as_u64().unwrap()));
    }
}

/// The history is trimmed by age only (docs/events.md#history): events
/// appended from the outbox (`redis/append.lua`, the Redis log's appender)
/// are all kept, however many, and a resume from the first finds its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appender_keeps_more_than_10_000_events_of_one_team() {
    if !redis_available().await {
        return;
    }
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let _cleanup = crate::redis_support::TestPrefix::for_prefix(&prefix);
    let log = log_of(Backend::Redis, &prefix).await;
    let now = SystemClock.now();
    let numbers: Vec<u64> = (1..=MANY).collect();
    // 500 at a time: the appender's queue holds 10 000.
    for chunk in numbers.chunks(500) {
        let mut waiting = Vec::new();
        for n in chunk {
            let event = Event::new(EventType::SubjectUnlocked, now, "acme", &json!({ "n": n }));
            let (done, appended) = tokio::sync::oneshot::channel();
            log.append_confirmed(Arc::new(event.unwrap()), done);
            waiting.push(appended);
        }
        for appended in waiting {
            assert!(appended.await.unwrap(), "appended");
        }
    }
    let all = numbers_after(log.as_ref(), None).await;
    assert!(all == numbers, "{} kept, from {:?}", all.len(), all.first());
    let first = log.read_after("acme", None, 1).await.unwrap()[0].id;
    let rest = numbers_after(log.as_ref(), Some(first)).await;
    assert!(rest == numbers[1..], "{} after the first", rest.len());
}

/// A commit's append trims the team's stream of the events older than 15
/// minutes (the first append of a store does; then once a minute) and
/// keeps one of 10 minutes ago.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_trims_the_stream_of_events_older_than_15_minutes() {
    let Some((store, keys)) = crate::redis_support::redis_store().await else {
        return;
    };
    let stream = keys.physical("{acme}:ev");
    // Stream ids are Redis' ms; Redis runs on this host, by the same clock.
    let now_ms = SystemClock.now().unix_millis();
    let old = now_ms - 16 * 60 * 1000;
    for seq in 0..300 {
        keys.raw(&["XADD", &stream, &format!("{old}-{seq}"), "e", "{}"]);
    }
    let recent = format!("{}-0", now_ms - 10 * 60 * 1000);
    keys.raw(&["XADD", &stream, &recent, "e", "{}"]);
    let event = Event::new(
        EventType::SubjectUnlocked,
        SystemClock.now(),
        "acme",
        &json!({}),
    );
    let ops = vec![history_op("acme", &event.unwrap()).unwrap()];
    assert_eq!(store.commit(ops).await.unwrap(), Commit::Applied);
    // `MINID ~` drops whole nodes of the stream (up to 100 entries each):
    // of the 300 old events, at most the last node's may stay.
    let redis::Value::Int(len) = keys.raw(&["XLEN", &stream]) else {
        panic!("XLEN");
    };
    assert!(len <= 100 + 2, "the old events trimmed: {len} left");
    let kept = keys.raw(&["XRANGE", &stream, &recent, &recent]);
    assert!(
        matches!(&kept, redis::Value::Array(e) if e.len() == 1),
        "the event of 10 minutes ago kept: {kept:?}"
    );
    let first_old = format!("{old}-0");
    let kept_first = keys.raw(&["XRANGE", &stream, &first_old, &first_old]);
    assert!(
        matches!(&kept_first, redis::Value::Array(e) if e.is_empty()),
        "the oldest trimmed: {kept_first:?}"
    );
}
