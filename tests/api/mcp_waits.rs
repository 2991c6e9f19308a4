//! A waiting `get_verification` (docs/agents.md#get_verification) wakes
//! on every change of its interaction, made on any instance, whether or
//! not an event says it: the store's change signals
//! (docs/architecture.md#change-signals). Its `cursor`: equal answers,
//! equal cursors; one that is not ours is no `after` at all.
use std::time::{Duration, Instant};

use chatgate::store::{keys, Op, SharedStore, Store};
use serde_json::{json, Value};

use crate::code_entry::{open as open_page, type_code};
use crate::helpers::*;
use crate::mcp::{call, last_sms_code, open, setup};

/// `get_verification` of `id` with `args` merged in: its answer.
async fn get(app: &TestApp, session: &str, id: &str, args: Value) -> Value {
    let mut all = json!({"interaction_id": id});
    all.as_object_mut()
        .unwrap()
        .extend(args.as_object().unwrap().clone());
    let (text, r) = call(app, session, "get_verification", all).await;
    assert_eq!(r["isError"], false, "{text}");
    r["structuredContent"].clone()
}

both_stores!(
    mcp_a_login_link_issued_through_the_http_api_wakes_a_wait,
    setup: setup(false),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let id = app.new_interaction().await;
        let first = get(&app, &session, &id, json!({})).await;
        assert_eq!(first["status"], "unauthenticated");
        let cursor = first["cursor"].as_str().unwrap().to_string();
        // Equal answers, equal cursors; nothing of the answer in it.
        let again = get(&app, &session, &id, json!({"after": cursor})).await;
        assert_eq!(again, first);
        assert!(!cursor.contains("unauthenticated"), "{cursor}");
        // No event says a link was issued: the wait wakes all the same.
        let waited = Instant::now();
        let wait = get(&app, &session, &id, json!({"after": cursor, "wait_seconds": 25}));
        let issue = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            app.issue_link(&id, json!({})).await;
        };
        let (v, ()) = tokio::join!(wait, issue);
        assert!(waited.elapsed() < Duration::from_secs(20), "answered on the change: {v}");
        assert_eq!(v["status"], "pending", "{v}");
        assert_ne!(v["cursor"], first["cursor"]);
    }
);

both_stores!(
    mcp_a_cursor_that_is_not_ours_is_no_after_and_no_error,
    setup: setup(false),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let id = app.new_interaction().await;
        let other = app.new_interaction().await;
        let theirs = get(&app, &session, &other, json!({})).await["cursor"].clone();
        let first = get(&app, &session, &id, json!({})).await;
        let cursor = first["cursor"].as_str().unwrap();
        // A cursor's digest with another mark, another interaction's
        // cursor, garbage: no `after`. In the session, which has seen
        // the answer, that waits (1 s) and answers it, no error.
        let forged = format!("{}{}", &cursor[..32], "0".repeat(16));
        for after in [json!(forged), theirs, json!("x"), json!("ü".repeat(40))] {
            let waited = Instant::now();
            let v = get(&app, &session, &id, json!({"after": after, "wait_seconds": 1})).await;
            assert_eq!(v, first, "{after}");
            assert!(waited.elapsed() >= Duration::from_millis(900), "{after}: waited as without `after`");
        }
        // A new session has seen nothing: the same cursors answer at once.
        let fresh = open(&app, &app.keys.bot).await;
        let waited = Instant::now();
        let v = get(&app, &fresh, &id, json!({"after": forged, "wait_seconds": 25})).await;
        assert_eq!(v, first);
        assert!(waited.elapsed() < Duration::from_secs(20), "answered at once");
    }
);

/// Two instances on one Redis: a code typed on the page through one
/// wakes a wait on the other within 1.5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_a_page_proof_through_one_instance_wakes_a_wait_on_the_other() {
    let Some(a) = spawn_with(Backend::Redis, setup(false)).await else {
        return;
    };
    let b = spawn_beside(&a, setup(false)).await;
    let session = open(&a, &a.keys.bot).await;
    let conversation =
        json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()});
    let args = json!({"conversation": conversation, "customer_ref": "cust-wake",
                      "contact": {"phone": "+15551230077"}, "proof": "code"});
    let (text, r) = call(&a, &session, "start_verification", args).await;
    let id = r["structuredContent"]["interaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r["structuredContent"]["status"], "pending", "{text}");
    let code = last_sms_code(&a).await;
    let link = last_code_page_link(&a, "code_entry_link").await;
    let first = get(&b, &session, &id, json!({})).await;
    assert_eq!(first["challenge"]["state"], "open");
    let page = open_page(&a, &link).await;
    assert_eq!(page.status, 200);
    let wait = get(
        &b,
        &session,
        &id,
        json!({"after": first["cursor"], "wait_seconds": 25}),
    );
    let typed = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let p = type_code(
            &a,
            &link,
            page.cookie.as_deref(),
            page.token.as_deref(),
            &code,
        )
        .await;
        assert_eq!(p.status, 200, "{}", p.body);
        Instant::now()
    };
    let (v, typed_at) = tokio::join!(wait, typed);
    let woke_after = typed_at.elapsed();
    assert!(
        woke_after < Duration::from_millis(1500),
        "woke {woke_after:?} after the proof: {v}"
    );
    assert_ne!(v, first, "the proof changed the answer: {v}");
    assert!(!v.to_string().contains(&code));
    b.stop_keeping_keys().await;
    a.stop().await;
}

/// Two stores over one backend: a Redis store under one prefix twice (two
/// instances), or the one memory store.
async fn two_stores(backend: Backend) -> Option<(SharedStore, SharedStore)> {
    let (counting, prefix) = crate::round_trips::counting_on(backend).await?;
    let watcher: SharedStore = counting;
    let writer: SharedStore = match backend {
        Backend::Memory => watcher.clone(),
        Backend::Redis => {
            let url = crate::redis_support::redis_url();
            let store = chatgate::store::redis::RedisStore::connect(&url, &prefix);
            std::sync::Arc::new(store.await.unwrap())
        }
    };
    Some((watcher, writer))
}

/// A thousand watches, each of its own interaction, all wake once their
/// interactions are written by another instance, and only those.
async fn a_thousand_watches_wake_after_their_interactions_change(backend: Backend) {
    let Some((watcher, writer)) = two_stores(backend).await else {
        return;
    };
    let team = format!("t{}", uuid::Uuid::now_v7().simple());
    let ids: Vec<uuid::Uuid> = (0..1001).map(|_| uuid::Uuid::now_v7()).collect();
    let mut watches = Vec::new();
    for id in &ids {
        watches.push(
            watcher
                .watch(&[keys::interaction(&team, *id)])
                .await
                .unwrap(),
        );
    }
    let unwritten = watches.pop().unwrap();
    let puts = ids[..1000].iter().map(|id| {
        let writer = writer.clone();
        let key = keys::interaction(&team, *id);
        async move {
            let put = Op::Put {
                key,
                expected: 0,
                version: chatgate::store::fresh_version(),
                value: "{}".into(),
                ttl: Some(Duration::from_secs(60)),
                companion: None,
            };
            writer.commit(vec![put]).await.unwrap();
        }
    });
    futures::future::join_all(puts).await;
    let woken = watches
        .iter()
        .map(|w| tokio::time::timeout(Duration::from_secs(10), w.changed()));
    let woken = futures::future::join_all(woken).await;
    let missed = woken.iter().filter(|w| w.is_err()).count();
    assert_eq!(missed, 0, "every watch of a written interaction woke");
    let quiet = tokio::time::timeout(Duration::from_millis(200), unwritten.changed()).await;
    assert!(quiet.is_err(), "a watch of an unwritten one did not");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watches_wake_after_their_interactions_change_on_memory() {
    a_thousand_watches_wake_after_their_interactions_change(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watches_wake_after_their_interactions_change_on_redis() {
    a_thousand_watches_wake_after_their_interactions_change(Backend::Redis).await;
}

/// A Redis that does not answer gives no watch, within a call's time: a
/// wait answers what it read rather than hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_watch_is_given_while_the_subscription_is_down() {
    let store = chatgate::store::redis::RedisStore::connect("redis://127.0.0.1:1", "down");
    let store = store.await.unwrap();
    let asked = Instant::now();
    let key = keys::interaction("t", uuid::Uuid::now_v7());
    assert!(store.watch(&[key]).await.is_err());
    assert!(asked.elapsed() < Duration::from_secs(3));
}

/// On a Redis Cluster: watches of interactions of teams spread over its
/// masters, on one instance, wake once another instance writes them (a
/// classic `PUBLISH` from each master's commit reaches the subscriber's
/// node).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watches_wake_on_a_cluster_whichever_master_holds_their_team() {
    const TEST: &str = "watches_wake_on_a_cluster_whichever_master_holds_their_team";
    let cluster = tokio::task::spawn_blocking(|| crate::redis_support::shared_cluster(TEST));
    let Some(cluster) = cluster.await.unwrap() else {
        return;
    };
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let urls = cluster.urls();
    let connect = || chatgate::store::redis::RedisStore::connect_cluster(&urls, &prefix);
    let (watcher, writer) = (connect().await.unwrap(), connect().await.unwrap());
    let written: Vec<String> = (0..12)
        .map(|n| keys::interaction(&format!("t{n}"), uuid::Uuid::now_v7()))
        .collect();
    let mut watches = Vec::new();
    for key in &written {
        watches.push(watcher.watch(std::slice::from_ref(key)).await.unwrap());
    }
    for key in &written {
        let put = Op::Put {
            key: key.clone(),
            expected: 0,
            version: chatgate::store::fresh_version(),
            value: "{}".into(),
            ttl: Some(Duration::from_secs(60)),
            companion: None,
        };
        writer.commit(vec![put]).await.unwrap();
    }
    for (w, key) in watches.iter().zip(&written) {
        let woken = tokio::time::timeout(Duration::from_secs(10), w.changed()).await;
        assert!(woken.is_ok(), "{key}");
    }
}
