//! Creates on Redis: a `Put` expecting its key absent, named by no other
//! op of its commit, is checked by its own `SET … NX` (no `GET`), undone
//! when a later op conflicts or Redis refuses one (a key of another type);
//! a `Delete` expecting its key absent deletes nothing. Seen in TTLs and in
//! a private Redis' command counts.
use std::sync::Arc;
use std::time::Duration;

use chatgate::store::redis::RedisStore;
use chatgate::store::{Commit, Op, SharedStore, Store};

use super::redis_only::{admin_of, assert_unavailable_fast, calls_since_reset, reset_stats};
use super::{commit, delete, index_add, put, read, LONG};
use crate::redis_support::{redis_store, OwnRedis, TestPrefix};

fn append(key: &str, entry: &str) -> Op {
    Op::Append {
        key: key.into(),
        entry: entry.into(),
        max_age: Duration::from_secs(3600),
        ttl: Duration::from_secs(3900),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_create_leaves_the_key_and_its_ttl() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    let held = Some(Duration::from_secs(30));
    commit(&s, vec![put("{t}:b", 0, "b1", held)]).await;
    commit(&s, vec![put("{t}:e", 0, "e1", None)]).await;
    for (key, value) in [("{t}:b", "b1"), ("{t}:e", "e1")] {
        let before = read(&s, key).await;
        let ops = vec![
            put("{t}:a", 0, "a1", Some(LONG)),
            put(key, 0, "again", Some(LONG)),
        ];
        assert_eq!(commit(&s, ops).await, Commit::Conflict { op: 1 });
        assert_eq!(read(&s, key).await, before);
        assert_eq!(before.map(|(_, v)| v).as_deref(), Some(value));
        assert_eq!(prefix.pttl(&prefix.physical("{t}:a")), -2, "undone");
    }
    let ttl = prefix.pttl(&prefix.physical("{t}:b"));
    assert!((1..=30_000).contains(&ttl), "its own TTL: {ttl}");
    assert_eq!(prefix.pttl(&prefix.physical("{t}:e")), -1, "still none");
}

/// Two creates, then `last`.
fn creates_then(last: Op) -> Vec<Op> {
    vec![
        put("{t}:a", 0, "a1", Some(LONG)),
        put("{t}:c", 0, "c1", None),
        last,
    ]
}

/// Two creates, then `last`, which Redis refuses: the commit fails, and
/// the keys are still `before`.
async fn refused(s: &RedisStore, last: Op, prefix: &TestPrefix, before: &[String]) {
    let what = format!("{last:?}");
    assert_unavailable_fast(&what, s.commit(creates_then(last))).await;
    assert_eq!(prefix.keys(), before, "{what}: nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_redis_refuses_after_creates_leaves_nothing_written() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let stream = prefix.physical("{t}:ev");
    let hash = prefix.physical("{t}:h");
    let not_a_stream = || {
        prefix.raw(&["DEL", &stream]);
        prefix.raw(&["SET", &stream, "not a stream", "EX", "60"]);
    };
    not_a_stream();
    prefix.raw(&["HSET", &hash, "f", "v"]);
    prefix.raw(&["EXPIRE", &hash, "60"]);
    let before = prefix.keys();
    // An append to a key that is no stream, on a stream given its
    // lifetime (`XADD`) and on one given it within the minute (`XADD
    // NOMKSTREAM`); a check of a key that is no record, at any version and
    // expecting it absent; and a create of it.
    refused(&store, append("{t}:ev", "s3cret"), &prefix, &before).await;
    prefix.raw(&["DEL", &stream]);
    let ops = vec![append("{t}:ev", "first")];
    assert_eq!(store.commit(ops).await.unwrap(), Commit::Applied);
    not_a_stream();
    let before = prefix.keys();
    refused(&store, append("{t}:ev", "s3cret"), &prefix, &before).await;
    refused(&store, put("{t}:h", 7, "s3cret", None), &prefix, &before).await;
    refused(&store, put("{t}:h", 0, "s3cret", None), &prefix, &before).await;
    refused(&store, delete("{t}:h", 0), &prefix, &before).await;
    // Once the keys are right, the same creates go through.
    prefix.raw(&["DEL", &stream, &hash]);
    let ops = creates_then(append("{t}:ev", "e"));
    assert_eq!(store.commit(ops).await.unwrap(), Commit::Applied);
    assert!(prefix.pttl(&prefix.physical("{t}:a")) > 0);
    assert_eq!(prefix.pttl(&prefix.physical("{t}:c")), -1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_is_checked_by_its_own_set_nx() {
    let Some(server) = OwnRedis::private("a_create_is_checked_by_its_own_set_nx").await else {
        return;
    };
    let mut admin = admin_of(&server).await;
    let s = RedisStore::connect(&server.url(), "nx").await.unwrap();
    let s: SharedStore = Arc::new(s);
    let calls = |admin: &mut redis::Connection| {
        ["get:", "getrange:", "set:", "del:"]
            .map(|c| calls_since_reset(admin, &[&format!("cmdstat_{c}")]))
    };
    // Two creates, a delete of an absent key, an index add: one GET (the
    // delete's check), and nothing to delete.
    reset_stats(&mut admin);
    let ops = vec![
        put("{t}:a", 0, "a1", Some(LONG)),
        put("{t}:b", 0, "b1", None),
        delete("{t}:d", 0),
        index_add("{t}:idx", "a", 1, LONG),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(calls(&mut admin), [1, 0, 2, 0], "GET, GETRANGE, SET, DEL");
    let va = read(&s, "{t}:a").await.unwrap().0;
    // A create of an existing key: its GET names the conflict, the create
    // before it is deleted.
    reset_stats(&mut admin);
    let ops = vec![
        put("{t}:c", 0, "c1", Some(LONG)),
        put("{t}:a", 0, "a2", Some(LONG)),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Conflict { op: 1 });
    assert_eq!(calls(&mut admin), [1, 0, 2, 1], "GET, GETRANGE, SET, DEL");
    assert_eq!(read(&s, "{t}:c").await, None);
    // A key in two ops, each expecting a version: each check reads only
    // the version line (GETRANGE), not the record.
    reset_stats(&mut admin);
    let ops = vec![put("{t}:a", va, "a2", Some(LONG)), delete("{t}:a", va)];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(calls(&mut admin), [0, 2, 1, 1], "GET, GETRANGE, SET, DEL");
}
