//! What only a Redis Cluster shows: a master killed (its slots answer
//! `Unavailable` fast, the others keep working) and back (the store
//! recovers by itself), and restarts that lose nothing, at the store and
//! through the gateway configured with `cluster_nodes`.
//!
//! Two kinds of failover: a cluster without replicas whose master comes
//! back on its port with its node file, and one with a replica per master,
//! where the replica is promoted in place of the killed master (the client
//! re-reads the slot map when it cannot reach a slot's node, or on MOVED).
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::store::redis::RedisStore;
use chatgate::store::{Commit, Op, SharedStore};
use serde_json::json;

use super::redis_only::{assert_all_unavailable, assert_unavailable_fast, FAST};
use super::{desc, index_add, put, put_naming, read, version, LONG};
use crate::helpers::*;
use crate::redis_support::{cluster_binaries_present, shared_cluster, OwnCluster};

async fn value(s: &SharedStore, key: &str) -> Option<String> {
    read(s, key).await.map(|(_, value)| value)
}

/// One hash tag per master of `cluster` (three), for keys under `prefix`.
fn a_tag_per_master(cluster: &OwnCluster, prefix: &str) -> Vec<String> {
    let mut tags = std::collections::BTreeMap::new();
    for n in 0.. {
        let tag = format!("{{t{n}}}");
        let owner = cluster.owner_of(&format!("{prefix}:{tag}:a"));
        tags.entry(owner).or_insert(tag);
        if tags.len() == 3 {
            break;
        }
    }
    tags.into_values().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_master_answers_unavailable_fast_and_recovers_when_back() {
    if !cluster_binaries_present("a_killed_master_answers_unavailable_fast_and_recovers_when_back")
    {
        return;
    }
    // Its own cluster: killing a master must not disturb the shared one.
    let mut cluster = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap()
        .expect("a local Redis Cluster starts");
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let tags = tokio::task::block_in_place(|| a_tag_per_master(&cluster, &prefix));
    let redis = Arc::new(
        RedisStore::connect_cluster(&cluster.urls(), &prefix)
            .await
            .unwrap(),
    );
    let s: SharedStore = redis.clone();
    for tag in &tags {
        let ops = vec![
            put(&format!("{tag}:a"), 0, "1", Some(LONG)),
            index_add(&format!("{tag}:idx"), "m", 1, LONG),
        ];
        assert_eq!(s.commit(ops).await.unwrap(), Commit::Applied);
    }

    let dead = tags[0].clone();
    let victim = cluster.owner_of(&format!("{prefix}:{dead}:a"));
    cluster.kill(victim);
    let key = format!("{dead}:a");
    assert_unavailable_fast("get", s.get(std::slice::from_ref(&key))).await;
    assert_unavailable_fast("get_with_companion", s.get_with_companion(&key, None)).await;
    assert_unavailable_fast("commit", s.commit(vec![put(&key, 0, "s3cret", Some(LONG))])).await;
    assert_unavailable_fast("index_desc", s.index_desc(&format!("{dead}:idx"), None, 5)).await;
    assert_unavailable_fast(
        "index_claim_due",
        s.index_claim_due(&format!("{dead}:idx"), 5, 5, 50),
    )
    .await;
    // Again, now that the client knows the node is gone: still fast.
    assert_unavailable_fast("get again", s.get(std::slice::from_ref(&key))).await;
    // The other masters' slots keep working (the node timeout, 15 s, has
    // not marked the cluster failed).
    for tag in tags.iter().filter(|t| **t != dead) {
        assert_eq!(value(&s, &format!("{tag}:a")).await, Some("1".into()));
    }
    // PING goes to the masters the client holds a link to: it may or may
    // not fail now, but it answers fast.
    let started = Instant::now();
    let _ = s.ping().await;
    assert!(
        started.elapsed() < FAST,
        "ping took {:?}",
        started.elapsed()
    );

    // The master comes back on its port with its node file (and no data:
    // nothing is saved); the store follows by itself.
    tokio::task::block_in_place(|| cluster.restart(victim));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.get(std::slice::from_ref(&key)).await {
            Ok(got) => {
                assert_eq!(got, vec![None], "the restarted master kept no data");
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "the store did not recover by itself: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.commit(vec![put(&key, 0, "2", Some(LONG))]).await.unwrap(),
        Commit::Applied
    );
    assert_eq!(value(&s, &key).await, Some("2".into()));
    s.ping().await.unwrap();
    for tag in tags.iter().filter(|t| **t != dead) {
        assert_eq!(value(&s, &format!("{tag}:a")).await, Some("1".into()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuilt_store_finds_everything_on_the_cluster() {
    const TEST: &str = "a_rebuilt_store_finds_everything_on_the_cluster";
    let Some(cluster) = tokio::task::spawn_blocking(|| shared_cluster(TEST))
        .await
        .unwrap()
    else {
        return;
    };
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let tags = tokio::task::block_in_place(|| a_tag_per_master(cluster, &prefix));
    let first: SharedStore = Arc::new(
        RedisStore::connect_cluster(&cluster.urls(), &prefix)
            .await
            .unwrap(),
    );
    for tag in &tags {
        let ops = vec![
            put_naming(
                &format!("{tag}:i"),
                0,
                "{}",
                &format!("{tag}:s"),
                Some(LONG),
            ),
            put(&format!("{tag}:s"), 0, "{}", Some(LONG)),
            put(&format!("{tag}:ban"), 0, "{}", None),
            index_add(&format!("{tag}:idx"), "i", 7, LONG),
            index_add(&format!("{tag}:due"), "i", 9, LONG),
        ];
        assert_eq!(first.commit(ops).await.unwrap(), Commit::Applied);
    }
    let short = put("l:code", 0, "{}", Some(LONG));
    assert_eq!(first.commit(vec![short]).await.unwrap(), Commit::Applied);
    drop(first);

    let second: SharedStore = Arc::new(
        RedisStore::connect_cluster(&cluster.urls(), &prefix)
            .await
            .unwrap(),
    );
    for tag in &tags {
        let r = second
            .get_with_companion(&format!("{tag}:i"), Some(format!("{tag}:s").as_str()))
            .await
            .unwrap();
        // Its version, read after the rebuild, is the one a commit checks.
        let rv = r.record.as_ref().map(|v| v.version).expect("the record");
        let (ckey, companion) = r.companion.unwrap();
        assert_eq!(ckey, format!("{tag}:s"));
        assert_eq!(companion.map(|v| v.value), Some("{}".into()));
        assert_eq!(
            value(&second, &format!("{tag}:ban")).await,
            Some("{}".into())
        );
        assert_eq!(
            desc(&second, &format!("{tag}:idx"), None, 5).await,
            vec![("i".to_string(), 7)]
        );
        let due = second
            .index_claim_due(&format!("{tag}:due"), 10, 5, 100)
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        let next = put(&format!("{tag}:i"), rv, "{}", Some(LONG));
        let gone = Op::Delete {
            key: format!("{tag}:ban"),
            expected: version(&second, &format!("{tag}:ban")).await,
        };
        assert_eq!(
            second.commit(vec![next, gone]).await.unwrap(),
            Commit::Applied
        );
    }
    assert_eq!(value(&second, "l:code").await, Some("{}".into()));
    let keys = cluster.keys(&prefix);
    assert!(keys.iter().all(|k| !k.ends_with(":ban")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_the_cluster_restarts_and_loses_nothing() {
    const TEST: &str = "a_gateway_on_the_cluster_restarts_and_loses_nothing";
    let Some(cluster) = tokio::task::spawn_blocking(|| shared_cluster(TEST))
        .await
        .unwrap()
    else {
        return;
    };
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        ..Setup::default()
    };
    let a = spawn_with(Backend::Redis, setup.clone()).await.unwrap();
    let id = a.new_interaction().await;
    let link = a.issue_link(&id, json!({})).await;
    let token = link["token"].as_str().unwrap();
    let res = a.callback(token, "success", json!({"id": "cust-7"})).await;
    assert_eq!(res.status(), 200);
    let short = link["short_url"].as_str().unwrap().to_owned();
    let restarted = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..setup
    };
    a.stop().await;

    let b = spawn_with(Backend::Redis, restarted).await.unwrap();
    assert_eq!(b.get(&id).await["status"], "authenticated");
    let res = b.callback(token, "success", json!({"id": "cust-7"})).await;
    assert_problem(res, 409, "token_used").await;
    // The short link (its key has no team tag: another slot) survived too.
    let path = short.trim_start_matches("http://gateway.test");
    let res = b
        .client
        .get(format!("{}{path}", b.base))
        .send()
        .await
        .unwrap();
    assert_ne!(res.status(), 404, "short link lost");
    let keys = tokio::task::block_in_place(|| cluster.keys(&b.key_prefix));
    assert!(!keys.is_empty());
}

#[tokio::test]
async fn a_cluster_that_is_down_starts_and_answers_unavailable_fast() {
    let nodes = [
        "redis://127.0.0.1:1".to_owned(),
        "redis://127.0.0.1:2".to_owned(),
    ];
    let started = Instant::now();
    let store = RedisStore::connect_cluster(&nodes, "chatgate-test-down")
        .await
        .expect("starting while the cluster is down must not fail");
    assert!(
        started.elapsed() < FAST,
        "connect took {:?}",
        started.elapsed()
    );
    assert_all_unavailable(&store).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_all_unavailable(&store).await;
    // No node at all, or a malformed one, is refused at once.
    assert!(RedisStore::connect_cluster(&[], "p").await.is_err());
    let bad = ["not a url".to_owned()];
    assert!(RedisStore::connect_cluster(&bad, "p").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_promoted_in_place_of_a_killed_master_serves_its_data() {
    if !cluster_binaries_present("a_replica_promoted_in_place_of_a_killed_master_serves_its_data") {
        return;
    }
    // Six nodes; a node silent for 2 s counts as failed.
    let mut cluster = tokio::task::spawn_blocking(|| OwnCluster::start_with_replicas(2000))
        .await
        .unwrap()
        .expect("a local Redis Cluster with replicas starts");
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let tags = tokio::task::block_in_place(|| a_tag_per_master(&cluster, &prefix));
    let s: SharedStore = Arc::new(
        RedisStore::connect_cluster(&cluster.urls(), &prefix)
            .await
            .unwrap(),
    );
    for tag in &tags {
        let ops = vec![
            put(&format!("{tag}:a"), 0, "1", Some(LONG)),
            index_add(&format!("{tag}:idx"), "m", 1, LONG),
        ];
        assert_eq!(s.commit(ops).await.unwrap(), Commit::Applied);
    }
    let dead = tags[0].clone();
    let key = format!("{dead}:a");
    let victim = cluster.owner_of(&format!("{prefix}:{key}"));
    tokio::task::block_in_place(|| cluster.wait_replicated(victim));

    cluster.kill(victim);
    assert_unavailable_fast("get", s.get(std::slice::from_ref(&key))).await;
    // Until the replica takes over every call answers fast, one way or the
    // other; then the data is there, on the new master.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let started = Instant::now();
        let got = s.get(std::slice::from_ref(&key)).await;
        assert!(started.elapsed() < FAST, "get took {:?}", started.elapsed());
        match got {
            Ok(got) => {
                assert_eq!(got[0].as_ref().map(|v| v.value.as_str()), Some("1"));
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "no replica took over, or the store did not follow: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every node learns of the new master by gossip, soon.
    let physical = format!("{prefix}:{key}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::task::block_in_place(|| cluster.owner_of(&physical)) == victim {
        assert!(Instant::now() < deadline, "a replica serves the slot now");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.commit(vec![put(&key, version(&s, &key).await, "2", Some(LONG))])
            .await
            .unwrap(),
        Commit::Applied
    );
    assert_eq!(value(&s, &key).await, Some("2".into()));
    assert_eq!(
        desc(&s, &format!("{dead}:idx"), None, 5).await,
        vec![("m".to_string(), 1)]
    );
}
