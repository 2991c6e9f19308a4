//! The parts of the store contract only Redis can show: the physical keys
//! (prefix, TTLs, nothing left behind), foreign data, and Redis being down,
//! then back.
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::store::redis::RedisStore;
use chatgate::store::{Commit, Op, SharedStore, Store, StoreError};

use super::{
    commit, delete, desc, index_add, index_remove, pairs, put, put_naming, queue_add, queue_remove,
    read, LONG, SHORT,
};
use crate::redis_support::{redis_store, OwnRedis, TestPrefix};

pub(super) const FAST: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_has_a_ttl_except_an_endless_put() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    let ops = vec![
        put("{t}:i:1", 0, "{}", Some(LONG)),
        put("{t}:i:2", 0, "{}", Some(LONG)),
        put("{t}:aj:x", 0, "1", Some(SHORT * 10)),
        index_add("{t}:idx", "1", 10, LONG),
        index_add("{t}:idx", "2", 20, LONG),
        index_add("{t}:cu:c", "2", 20, LONG),
        queue_add("{t}:dueq", "1", 5, LONG),
        queue_add("{t}:dueq", "2", 9, LONG),
        put("{t}:ban", 0, "{}", None),
    ];
    assert_eq!(s.commit(ops).await.unwrap(), Commit::Applied);
    let v1 = read(&s, "{t}:i:1").await.unwrap().0;
    let v2 = read(&s, "{t}:i:2").await.unwrap().0;
    let ops = vec![
        put("{t}:i:1", v1, "{\"v\":2}", Some(LONG)),
        Op::Delete {
            key: "{t}:i:2".into(),
            expected: v2,
        },
        index_remove("{t}:idx", "2"),
        index_remove("{t}:cu:c", "2"),
    ];
    assert_eq!(s.commit(ops).await.unwrap(), Commit::Applied);
    assert_eq!(
        s.index_claim_due("{t}:dueq", 5, 10, 50)
            .await
            .unwrap()
            .len(),
        1
    );
    s.commit(vec![index_remove("{t}:dueq", "1")]).await.unwrap();

    // An index keeps its members' expiry times beside it (`:exp`; one of a
    // single member does not: see `a_lone_member_keeps_no_expiry_set`); a
    // queue is its sorted set alone; a due queue's team is noted in the
    // teams' due index (docs/architecture.md#many-teams).
    let mut expected: Vec<String> = [
        "{t}:i:1",
        "{t}:aj:x",
        "{t}:idx",
        "{t}:idx:exp",
        "{t}:dueq",
        "{~due}:dueq",
        "{t}:ban",
    ]
    .iter()
    .map(|k| prefix.physical(k))
    .collect();
    expected.sort();
    assert_eq!(
        prefix.keys(),
        expected,
        "prefixed keys; deleted records and emptied indexes leave nothing"
    );
    for key in prefix.keys() {
        let ttl = prefix.pttl(&key);
        if key == prefix.physical("{t}:ban") {
            assert_eq!(ttl, -1, "a ttl: None put keeps no TTL");
        } else {
            assert!(ttl > 0, "{key} has no TTL ({ttl})");
        }
    }
}

#[tokio::test]
async fn index_ttl_follows_its_longest_lived_member() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    s.commit(vec![index_add("{t}:idx", "a", 1, Duration::from_secs(30))])
        .await
        .unwrap();
    s.commit(vec![index_add("{t}:idx", "b", 2, SHORT)])
        .await
        .unwrap();
    assert!(
        prefix.pttl(&prefix.physical("{t}:idx")) > 20_000,
        "not lowered"
    );
    s.commit(vec![index_add("{t}:idx", "c", 3, Duration::from_secs(90))])
        .await
        .unwrap();
    assert!(prefix.pttl(&prefix.physical("{t}:idx")) > 80_000, "raised");
    // Re-adding a member that is already there raises the index and its
    // expiry set with it; moving the longest-lived one earlier lowers both
    // to the next longest-lived (c, 90 s).
    let lifetimes = || ["{t}:idx", "{t}:idx:exp"].map(|k| prefix.pttl(&prefix.physical(k)));
    s.commit(vec![index_add("{t}:idx", "a", 1, Duration::from_secs(120))])
        .await
        .unwrap();
    let t = lifetimes();
    assert!(t.iter().all(|t| *t > 110_000), "raised by a re-add: {t:?}");
    s.commit(vec![index_add("{t}:idx", "a", 1, Duration::from_secs(40))])
        .await
        .unwrap();
    let t = lifetimes();
    assert!(
        t.iter().all(|t| (60_000..=90_000).contains(t)),
        "lowered to the next longest-lived: {t:?}"
    );
    // An index some other writer left without TTL gets one when a member
    // is added to it: the new member's life (a key without a TTL is taken
    // for a new one, alone: no `ZCARD`), then its expiry set with the next
    // add, which counts its members...
    let foreign = left_without_ttl(&prefix, "{t}:foreign");
    commit(&s, vec![index_add("{t}:foreign", "b", 2, LONG)]).await;
    assert!(prefix.pttl(&foreign) > 50_000);
    commit(&s, vec![index_add("{t}:foreign", "c", 3, LONG * 2)]).await;
    assert!(prefix.pttl(&foreign) > 50_000);
    assert!(prefix.pttl(&prefix.physical("{t}:foreign:exp")) > 50_000);
    // ...and when a member it holds is only added again.
    let held = prefix.physical("{t}:held");
    prefix.raw(&["ZADD", &held, "1", "a", "2", "b"]);
    commit(&s, vec![index_add("{t}:held", "a", 1, LONG)]).await;
    assert!(prefix.pttl(&held) > 50_000, "{}", prefix.pttl(&held));
    assert!(prefix.pttl(&prefix.physical("{t}:held:exp")) > 50_000);
}

/// `logical` as another writer might leave it: a sorted set of one member
/// and no TTL. Its physical key.
fn left_without_ttl(prefix: &TestPrefix, logical: &str) -> String {
    let key = prefix.physical(logical);
    prefix.raw(&["ZADD", &key, "1", "a"]);
    assert_eq!(prefix.pttl(&key), -1);
    key
}

/// An index of one member (most customers' indexes) keeps no expiry set:
/// the key lives exactly as long as its member. A second member writes
/// what is left of the first's life into a new expiry set; an index back
/// to one member drops it when that member is added again.
#[tokio::test]
async fn a_lone_member_keeps_no_expiry_set() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    let idx = prefix.physical("{t}:cu");
    let exp = prefix.physical("{t}:cu:exp");
    let secs = Duration::from_secs;
    commit(&s, vec![index_add("{t}:cu", "a", 1, secs(30))]).await;
    assert!((25_000..=30_000).contains(&prefix.pttl(&idx)));
    assert_eq!(prefix.pttl(&exp), -2, "no expiry set");
    // Re-added, its life is the new one, shorter or longer.
    commit(&s, vec![index_add("{t}:cu", "a", 1, secs(10))]).await;
    assert!((5_000..=10_000).contains(&prefix.pttl(&idx)), "shortened");
    commit(&s, vec![index_add("{t}:cu", "a", 1, secs(30))]).await;
    assert!((25_000..=30_000).contains(&prefix.pttl(&idx)), "lengthened");
    // A second member: the first's remaining life moves into the new set.
    commit(&s, vec![index_add("{t}:cu", "b", 2, secs(90))]).await;
    let left = |m: &str| prefix.expiry_left(&exp, m);
    assert!(
        left("a").is_some_and(|l| (25_000..=30_000).contains(&l)),
        "{:?}",
        left("a")
    );
    assert!(
        left("b").is_some_and(|l| (85_000..=90_000).contains(&l)),
        "{:?}",
        left("b")
    );
    assert!(prefix.pttl(&idx) > 85_000 && prefix.pttl(&exp) > 85_000);
    // Back to one member: its life is kept in the set until the next add...
    commit(&s, vec![index_remove("{t}:cu", "b")]).await;
    assert!(
        (25_000..=30_000).contains(&prefix.pttl(&idx)),
        "lowered to a's"
    );
    // ...which leaves it alone again, without the set.
    commit(&s, vec![index_add("{t}:cu", "a", 1, secs(60))]).await;
    assert!((55_000..=60_000).contains(&prefix.pttl(&idx)));
    assert_eq!(prefix.pttl(&exp), -2, "the expiry set is gone");
    assert_eq!(desc(&s, "{t}:cu", None, 10).await.len(), 1);
    // Two members added in one commit: each keeps its own life.
    commit(
        &s,
        vec![
            index_add("{t}:two", "x", 1, secs(20)),
            index_add("{t}:two", "y", 2, secs(40)),
        ],
    )
    .await;
    let two = prefix.physical("{t}:two:exp");
    let x = prefix.expiry_left(&two, "x");
    assert!(x.is_some_and(|l| (15_000..=20_000).contains(&l)), "{x:?}");
    let y = prefix.expiry_left(&two, "y");
    assert!(y.is_some_and(|l| (35_000..=40_000).contains(&l)), "{y:?}");
    assert!(prefix.pttl(&prefix.physical("{t}:two")) > 35_000);
    assert!(prefix.pttl(&two) > 35_000);
    // A lone member some other writer left without TTL: a second member
    // gives the index the second's life (the first's is unknown).
    let lone = prefix.physical("{t}:lone");
    prefix.raw(&["ZADD", &lone, "1", "a"]);
    commit(&s, vec![index_add("{t}:lone", "b", 2, secs(30))]).await;
    assert!((25_000..=30_000).contains(&prefix.pttl(&lone)));
    assert_eq!(desc(&s, "{t}:lone", None, 10).await.len(), 2);
}

/// An add between its writer's renewals to an index of several members
/// reads the life of the index's expiry set instead of counting the
/// members (redis/commit.lua): an index a removal lowered under the new
/// member's life is raised to outlive it, both keys; an expiry set gone
/// without its index (another writer's `DEL`, or an eviction) is made
/// again with a life at once.
#[tokio::test]
async fn an_add_between_renewals_reads_the_expiry_set_s_life() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    let (idx, exp) = (prefix.physical("{t}:idx"), prefix.physical("{t}:idx:exp"));
    let add = |m: &str, secs: u64| index_add("{t}:idx", m, 1, Duration::from_secs(secs));
    let left = |m: &str| prefix.expiry_left(&exp, m);
    // Renewed by the first add (30 s and as much slack); none of the
    // others asks for more. The second finds no expiry set: counted, the
    // set made with both lives.
    commit(&s, vec![add("a", 30)]).await;
    commit(&s, vec![add("b", 20)]).await;
    let a = left("a");
    assert!(a.is_some_and(|l| (25_000..=30_000).contains(&l)), "{a:?}");
    let b = left("b");
    assert!(b.is_some_and(|l| (15_000..=20_000).contains(&l)), "{b:?}");
    assert!((25_000..=30_000).contains(&prefix.pttl(&idx)));
    assert!((25_000..=30_000).contains(&prefix.pttl(&exp)));
    // The set's life is under c's: both raised.
    commit(&s, vec![add("c", 50)]).await;
    assert!(prefix.pttl(&idx) > 49_000 && prefix.pttl(&exp) > 49_000);
    // c goes: both lowered to a's life, under the next member's.
    commit(&s, vec![index_remove("{t}:idx", "c")]).await;
    let lowered = prefix.pttl(&idx);
    assert!(lowered <= 30_000, "lowered: {lowered}");
    commit(&s, vec![add("d", 55)]).await;
    for key in [&idx, &exp] {
        let left = prefix.pttl(key);
        assert!(left > 54_000, "{key} raised to outlive d: {left}");
    }
    // The expiry set goes alone: the next add makes it again, with a life.
    prefix.raw(&["DEL", &exp]);
    commit(&s, vec![add("e", 20)]).await;
    let left = prefix.pttl(&exp);
    assert!(
        left > 15_000,
        "the expiry set made again with a life: {left}"
    );
    assert!(prefix.pttl(&idx) > 54_000, "the index's life kept");
    assert_eq!(desc(&s, "{t}:idx", None, 10).await.len(), 4);
}

/// Such an add to an index of several members costs its two `ZADD`s and
/// the expiry set's `PEXPIRETIME`: no `ZCARD`, no `PEXPIREAT` (counted on
/// a private Redis).
#[tokio::test]
async fn an_add_between_renewals_neither_counts_nor_checks_the_index() {
    let Some(server) = OwnRedis::private("an_add_between_renewals_neither…").await else {
        return;
    };
    let mut admin = admin_of(&server).await;
    let writer = RedisStore::connect(&server.url(), "rt").await.unwrap();
    let add = |m: &str| index_add("{t}:idx", m, 1, Duration::from_secs(60));
    // Each add a millisecond of Redis' time after the last, so that the
    // third finds the set's life (its members' latest) under its own
    // member's and raises it with its slack: only then is the index's life
    // past what the fourth add asks.
    for m in ["a", "b", "c"] {
        assert_eq!(writer.commit(vec![add(m)]).await.unwrap(), Commit::Applied);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let life: i64 = redis::cmd("PTTL")
        .arg("rt:{t}:idx:exp")
        .query(&mut admin)
        .unwrap();
    assert!(
        life > 60_000,
        "the expiry set's life, with slack: {life} ms"
    );
    let calls = commands_of_commit(&mut admin, &writer, vec![add("d")]).await;
    assert_eq!(
        calls,
        commands(&[("evalsha", 1), ("pexpiretime", 1), ("zadd", 2)])
    );
}

/// The commands one commit of `ops` by `writer` makes, counted on a
/// private Redis (`INFO commandstats`), each command that ran once with
/// its count.
async fn commands_of_commit(
    admin: &mut redis::Connection,
    writer: &RedisStore,
    ops: Vec<Op>,
) -> std::collections::BTreeMap<String, u64> {
    reset_stats(admin);
    assert_eq!(writer.commit(ops).await.unwrap(), Commit::Applied);
    let mut calls = calls_by_command(admin);
    calls.retain(|_, n| *n > 0);
    calls
}

/// `expected` in the form [`commands_of_commit`] answers.
fn commands(expected: &[(&str, u64)]) -> std::collections::BTreeMap<String, u64> {
    expected.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

/// A customer who comes back: each add renews the index, as an instance
/// that sees the customer minutes after the last does (the writer renews
/// on every commit here). The second member makes the lone index a pair:
/// both lives go into the expiry set, and both keys live as long as the
/// later, without reading the set back. The third raises the set's life
/// with its renewal, which says the index had members: not counted (counted
/// on a private Redis: docs/decisions/0245-a-returning-customer-s-index.md).
#[tokio::test]
async fn a_returning_customer_s_index_is_neither_read_back_nor_counted() {
    let Some(server) = OwnRedis::private("a_returning_customer_s_index…").await else {
        return;
    };
    let mut admin = admin_of(&server).await;
    let writer = RedisStore::connect(&server.url(), "rt")
        .await
        .unwrap()
        .renewing_every(Duration::ZERO);
    let pttl = |admin: &mut redis::Connection, key: &str| -> i64 {
        redis::cmd("PTTL").arg(key).query(admin).unwrap()
    };
    let (idx, exp) = ("rt:{t}:cu", "rt:{t}:cu:exp");
    let secs = Duration::from_secs;
    // The script known to Redis first.
    let warm = vec![index_add("{t}:warm", "w", 1, secs(30))];
    assert_eq!(writer.commit(warm).await.unwrap(), Commit::Applied);
    let add = |m: &str, score, ttl| vec![index_add("{t}:cu", m, score, ttl)];
    let first = commands_of_commit(&mut admin, &writer, add("a", 1, secs(30))).await;
    assert_eq!(
        first,
        commands(&[("evalsha", 1), ("pexpireat", 1), ("zadd", 1)])
    );
    let second = commands_of_commit(&mut admin, &writer, add("b", 2, secs(90))).await;
    // The index's ZADD, its new-key probe, the set's life probe, the
    // count with the names, the lone member's life, both lives in one
    // ZADD, both keys' lives.
    let pair = [
        ("evalsha", 1),
        ("pexpireat", 4),
        ("pttl", 1),
        ("zadd", 2),
        ("zrange", 1),
    ];
    assert_eq!(second, commands(&pair));
    for key in [idx, exp] {
        let left = pttl(&mut admin, key);
        assert!((85_000..=90_000).contains(&left), "{key}: {left}");
    }
    let third = commands_of_commit(&mut admin, &writer, add("c", 3, secs(120))).await;
    // The index's ZADD, the new-key probe, the set's life raised, the
    // member's expiry, the index's life raised.
    assert_eq!(
        third,
        commands(&[("evalsha", 1), ("pexpireat", 3), ("zadd", 2)])
    );
    // Raised to c's life (the newest interaction's is the longest), and
    // the renewal's slack, none for a writer that renews on every commit.
    for key in [idx, exp] {
        let left = pttl(&mut admin, key);
        assert!((115_000..=120_000).contains(&left), "{key}: {left}");
    }
    let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(exp)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut admin)
        .unwrap();
    let names: Vec<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"], "each member's own life");
}

/// A removal and an add to one index in one commit: the add makes the
/// index a pair again, while the key's TTL is still the removed member's
/// (its recompute comes at the end). The member left keeps its own
/// recorded life, and both keys live as long as the longer of the two.
#[tokio::test]
async fn a_removal_then_an_add_in_one_commit_keep_each_member_s_life() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store.renewing_every(Duration::ZERO));
    let secs = Duration::from_secs;
    let (idx, exp) = (prefix.physical("{t}:ra"), prefix.physical("{t}:ra:exp"));
    let add = |m: &str, ttl| index_add("{t}:ra", m, 1, ttl);
    commit(&s, vec![add("a", secs(20)), add("b", secs(100))]).await;
    commit(&s, vec![index_remove("{t}:ra", "b"), add("c", secs(30))]).await;
    let a = prefix.expiry_left(&exp, "a");
    assert!(a.is_some_and(|l| (15_000..=20_000).contains(&l)), "{a:?}");
    let c = prefix.expiry_left(&exp, "c");
    assert!(c.is_some_and(|l| (25_000..=30_000).contains(&l)), "{c:?}");
    for key in [&idx, &exp] {
        let left = prefix.pttl(key);
        assert!((25_000..=30_000).contains(&left), "{key}: {left}");
    }
}

/// An add that renews an index whose members are all dead (the key kept
/// alive by an earlier renewal's slack) raises the expiry set's life, then
/// prunes every member, which takes the set with them: the set made again
/// for the new member gets its life, as the index does.
#[tokio::test]
async fn a_prune_that_empties_the_expiry_set_leaves_it_a_life() {
    let Some((first, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(first);
    let (idx, exp) = (prefix.physical("{t}:dead"), prefix.physical("{t}:dead:exp"));
    // Each lives a second; the third's add raises the index's life to its
    // own and a second's slack (a renewal's slack is the TTL asked, when
    // shorter than a minute).
    for m in ["a", "b", "c"] {
        commit(
            &s,
            vec![index_add("{t}:dead", m, 1, Duration::from_secs(1))],
        )
        .await; // A millisecond of Redis' time after the last: each asks for more.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(1400)).await;
    assert!(prefix.pttl(&idx) > 0, "kept by the slack past its members");
    // Another instance, whose first add to the index renews and prunes it.
    let other = RedisStore::connect(&crate::redis_support::redis_url(), &prefix.prefix)
        .await
        .unwrap();
    let other: SharedStore = Arc::new(other);
    commit(&other, vec![index_add("{t}:dead", "d", 2, LONG)]).await;
    assert_eq!(desc(&other, "{t}:dead", None, 10).await, pairs(&[("d", 2)]));
    for key in [&idx, &exp] {
        let left = prefix.pttl(key);
        assert!(left > 50_000, "{key}: {left}");
    }
}

/// A queue's key lives as long as the latest time an add asked for: a
/// shorter add never lowers it, a longer one (new member or not) raises it.
/// (Renewed on every commit, without slack: the lives are the adds' own.)
#[tokio::test]
async fn queue_ttl_is_only_ever_raised() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store.renewing_every(Duration::ZERO));
    let q = prefix.physical("{t}:q");
    s.commit(vec![queue_add("{t}:q", "a", 1, Duration::from_secs(30))])
        .await
        .unwrap();
    let t = prefix.pttl(&q);
    assert!(
        (20_000..=30_000).contains(&t),
        "a new queue's first life: {t}"
    );
    s.commit(vec![queue_add("{t}:q", "b", 2, SHORT)])
        .await
        .unwrap();
    assert!(prefix.pttl(&q) > 20_000, "not lowered by a new member");
    s.commit(vec![queue_add("{t}:q", "a", 5, SHORT)])
        .await
        .unwrap();
    assert!(prefix.pttl(&q) > 20_000, "not lowered by a move");
    s.commit(vec![queue_add("{t}:q", "a", 1, Duration::from_secs(90))])
        .await
        .unwrap();
    assert!(prefix.pttl(&q) > 80_000, "raised by a move");
    assert_eq!(
        prefix.pttl(&prefix.physical("{t}:q:exp")),
        -2,
        "no expiry set"
    );
    // A queue some other writer left without TTL gets one with its next
    // new member.
    let foreign = left_without_ttl(&prefix, "{t}:foreign");
    commit(&s, vec![queue_add("{t}:foreign", "b", 2, LONG)]).await;
    assert!(prefix.pttl(&foreign) > 50_000);
}

/// Redis deletes a sorted set when its last member goes; a queue's keeper
/// (the member `""`, which no read or claim returns) keeps a drained
/// queue's key, with its lifetime, so an add that does not renew it (this
/// writer renewed it moments before) finds it there, with a TTL. A queue
/// deleted anyway (by another writer) gets its life with the add that
/// makes it again.
#[tokio::test]
async fn a_drained_queue_keeps_its_key_and_lifetime() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    let q = prefix.physical("{t}:q");
    commit(&s, vec![queue_add("{t}:q", "a", 1, LONG)]).await;
    let lived = prefix.pttl(&q);
    assert!(
        lived > LONG.as_millis() as i64,
        "renewed with slack: {lived}"
    );
    let remove = |m: &str| queue_remove("{t}:q", m);
    commit(&s, vec![remove("a")]).await;
    assert_eq!(desc(&s, "{t}:q", None, 10).await, vec![], "reads empty");
    assert!(
        prefix.pttl(&q) > LONG.as_millis() as i64,
        "kept, with its life"
    );
    assert!(s
        .index_claim_due("{t}:q", i64::MAX, 10, 5)
        .await
        .unwrap()
        .is_empty());
    super::indexes::emptied_then_added_to(&s, "{t}:q").await;
    assert!(
        prefix.pttl(&q) > LONG.as_millis() as i64,
        "{}",
        prefix.pttl(&q)
    );
    prefix.raw(&["DEL", &q]);
    commit(&s, vec![queue_add("{t}:q", "b", 1, SHORT)]).await;
    let made = prefix.pttl(&q);
    assert!(
        made >= SHORT.as_millis() as i64,
        "made again, with a TTL: {made}"
    );
}

/// Many commits to an index and a queue, renewing their lifetimes every
/// 200 ms: members added between renewals, long after the last one, an
/// index lowered by removals, a queue drained and added to again. After
/// every commit each key has a TTL, an index outlives its longest-lived
/// member and a queue the latest time an add asked for.
#[tokio::test]
async fn lifetimes_outlive_what_they_hold() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store.renewing_every(Duration::from_millis(200)));
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let (idx, q) = ("{t}:idx", "{t}:q");
    // Member -> when it expires (ms); the queue's latest asked time.
    let mut members: Vec<(String, i64)> = Vec::new();
    let mut queued: Vec<String> = Vec::new();
    let mut queue_until = 0i64;
    for round in 0..60i64 {
        let ttl = Duration::from_millis([900, 2500, 400, 1800, 3000, 600][round as usize % 6]);
        let before = unix_ms();
        let member = format!("m{round}");
        let mut ops = vec![
            index_add(idx, &member, round, ttl),
            queue_add(q, &member, round, ttl),
        ];
        if round % 7 == 6 {
            // The index's longest-lived member goes: its life is recomputed.
            if let Some((longest, _)) = members.iter().max_by_key(|(_, at)| *at).cloned() {
                ops.push(index_remove(idx, &longest));
                members.retain(|(m, _)| *m != longest);
            }
        }
        if round % 5 == 4 {
            // The queue drained: its members removed before this add.
            let mut drain: Vec<Op> = queued.drain(..).map(|m| queue_remove(q, &m)).collect();
            drain.extend(ops);
            ops = drain;
        }
        commit(&s, ops).await;
        members.push((member.clone(), before + ttl.as_millis() as i64));
        queued.push(member);
        queue_until = queue_until.max(before + ttl.as_millis() as i64);
        for key in prefix.keys() {
            // -2: gone since listed (a stalled machine).
            let left = prefix.pttl(&key);
            assert_ne!(left, -1, "round {round}: {key} has no TTL");
        }
        // What is left of a key's life, and of the times it must outlive,
        // read after it (2 ms for the clocks' granularity).
        let lives = |key: &str| {
            let left = prefix.pttl(&prefix.physical(key));
            (left + 2, unix_ms())
        };
        let at_exp = members.iter().map(|(_, at)| *at).max().unwrap_or(0);
        for key in [idx, "{t}:idx:exp"] {
            let (left, now) = lives(key);
            assert!(
                left == 0 && key.ends_with(":exp") || left >= at_exp - now,
                "round {round}: {key} lives {left} ms, a member {} ms",
                at_exp - now
            );
        }
        let (left, now) = lives(q);
        assert!(
            left >= queue_until - now,
            "round {round}: the queue lives {left} ms, asked {} ms",
            queue_until - now
        );
        members.retain(|(_, at)| *at > now);
        // Now and then, a pause longer than the renewal period.
        let pause = if round % 9 == 8 { 450 } else { 40 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Random commits of one to three adds and removals on one index, from
/// writers that renew at their own pace, with the members' lives short and
/// the pauses between commits long enough for members to die and be
/// pruned. After every commit, read against what was added and removed:
/// neither key is without a TTL; every member surely alive (300 ms from
/// its end) is in the index, which lives at least as long; while the index
/// has two members or more, each such member has its expiry recorded, at
/// least its life, and the expiry set lives at least that long; the set
/// never outlives the index; no removed member is left. (A fixed seed: the
/// ops are the same on every run; the times are the machine's.)
#[tokio::test]
async fn random_commits_keep_an_index_s_lifetimes() {
    use rand::{Rng, SeedableRng};
    let Some((first, prefix)) = redis_store().await else {
        return;
    };
    let url = crate::redis_support::redis_url();
    let connect = || RedisStore::connect(&url, &prefix.prefix);
    // One that renews on every commit, one every 250 ms, and one made anew
    // for each of its commits, whose first add to the index renews and
    // prunes it (as an instance that sees the index for the first time in
    // a while).
    let mut writers: [SharedStore; 3] = [
        Arc::new(first.renewing_every(Duration::ZERO)),
        Arc::new(
            connect()
                .await
                .unwrap()
                .renewing_every(Duration::from_millis(250)),
        ),
        Arc::new(connect().await.unwrap()),
    ];
    let mut conn = redis::Client::open(crate::redis_support::redis_url())
        .unwrap()
        .get_connection()
        .unwrap();
    let unix_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let (idx, exp) = (prefix.physical("{t}:r"), prefix.physical("{t}:r:exp"));
    // Clocks' granularity and the time between a read and the next.
    const TOLERANCE: i64 = 25;
    const SURELY_ALIVE: i64 = 300;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1DE5);
    // Member -> the end of its life (ms), as the last add gave it.
    let mut lives: std::collections::HashMap<String, i64> = Default::default();
    for step in 0..60 {
        let chosen = rng.gen_range(0..3);
        if chosen == 2 {
            writers[2] = Arc::new(connect().await.unwrap());
        }
        let writer = &writers[chosen];
        let mut ops = Vec::new();
        let mut added = Vec::new();
        for _ in 0..[1, 1, 1, 2, 2, 3][rng.gen_range(0..6)] {
            let member = ["x", "y", "z"][rng.gen_range(0..3)];
            if rng.gen_bool(0.35) {
                ops.push(index_remove("{t}:r", member));
                added.push((member, None));
            } else {
                let ttl = [200, 300, 600, 900, 1500][rng.gen_range(0..5)];
                ops.push(index_add("{t}:r", member, 1, Duration::from_millis(ttl)));
                added.push((member, Some(ttl)));
            }
        }
        let before = unix_ms();
        commit(writer, ops.clone()).await;
        for (member, ttl) in added {
            match ttl {
                Some(ttl) => lives.insert(member.to_string(), before + ttl as i64),
                None => lives.remove(member),
            };
        }
        let at = |key: &str, conn: &mut redis::Connection| -> i64 {
            redis::cmd("PEXPIRETIME").arg(key).query(conn).unwrap()
        };
        let (index_ends, set_ends) = (at(&idx, &mut conn), at(&exp, &mut conn));
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg(&idx)
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .unwrap();
        let recorded: Vec<(String, i64)> = redis::cmd("ZRANGE")
            .arg(&exp)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut conn)
            .unwrap();
        let recorded: std::collections::HashMap<String, i64> = recorded.into_iter().collect();
        let said = format!("step {step}: {ops:?}");
        assert_ne!(index_ends, -1, "{said}: the index has no TTL");
        assert_ne!(set_ends, -1, "{said}: the expiry set has no TTL");
        if set_ends > 0 {
            assert!(
                set_ends <= index_ends + TOLERANCE,
                "{said}: the set outlives the index"
            );
        }
        let now = unix_ms();
        for (member, &end) in lives.iter().filter(|(_, end)| **end > now + SURELY_ALIVE) {
            assert!(
                members.contains(member),
                "{said}: {member} is alive, not in the index"
            );
            assert!(
                index_ends >= end - TOLERANCE,
                "{said}: the index ends before {member}"
            );
            if members.len() >= 2 {
                let entry = recorded.get(member).copied();
                assert!(
                    entry.is_some_and(|e| e >= end - TOLERANCE && set_ends >= e - TOLERANCE),
                    "{said}: {member}'s expiry {entry:?}, its end {end}, the set's {set_ends}"
                );
            }
        }
        for member in &members {
            assert!(
                lives.contains_key(member.as_str()),
                "{said}: {member} was removed"
            );
        }
        let pause = [0, 0, 50, 150, 400][rng.gen_range(0..5)];
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

#[tokio::test]
async fn a_foreign_record_is_corrupt_and_never_overwritten() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    prefix.raw(&["SET", &prefix.physical("{t}:bad"), "no version line"]);
    let got = s.get(&["{t}:bad".to_owned()]).await;
    assert!(
        matches!(got, Err(StoreError::Corrupt(ref m)) if !m.contains("no version")),
        "{got:?}"
    );
    let put_if_absent = put("{t}:bad", 0, "{}", Some(LONG));
    assert_eq!(
        s.commit(vec![put_if_absent]).await.unwrap(),
        Commit::Conflict { op: 0 }
    );
}

/// A commit's check reads only a value's first bytes for its version line
/// (redis/commit.lua): the longest version matches; a longer number there,
/// version 0 (no writer stores it), an empty value or none is no version,
/// and conflicts with every expected one; nothing is written.
#[tokio::test]
async fn a_version_check_reads_the_whole_version_line() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let s: SharedStore = Arc::new(store);
    // 23 digits: its first 20 are a version a writer could expect.
    let long = "12345678901234567890123\n{}";
    let expected: u64 = 12_345_678_901_234_567_890;
    for (value, versions) in [
        (long, vec![expected, 1]),
        ("0\n{}", vec![0, 1]),
        ("", vec![0, 1]),
        ("no version line", vec![0, 1]),
    ] {
        let physical = prefix.physical("{t}:v");
        prefix.raw(&["SET", &physical, value]);
        for version in versions {
            for op in [
                put("{t}:v", version, "{}", Some(LONG)),
                delete("{t}:v", version),
            ] {
                assert_eq!(
                    s.commit(vec![op]).await.unwrap(),
                    Commit::Conflict { op: 0 },
                    "{value:?} expecting {version}"
                );
                assert_eq!(
                    prefix.raw(&["GET", &physical]),
                    redis::Value::BulkString(value.into())
                );
            }
        }
    }
    // The largest version a u64 holds has 20 digits: read whole, it matches.
    let physical = prefix.physical("{t}:v");
    prefix.raw(&["SET", &physical, &format!("{}\n{{}}", u64::MAX)]);
    let op = delete("{t}:v", u64::MAX);
    assert_eq!(s.commit(vec![op]).await.unwrap(), Commit::Applied);
    assert_eq!(prefix.raw(&["EXISTS", &physical]), redis::Value::Int(0));
}

/// Asserts that `call` fails with `Unavailable` within [`FAST`].
pub(super) async fn assert_unavailable_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = call.await;
    let took = started.elapsed();
    match result {
        Err(StoreError::Unavailable(msg)) => assert!(
            !msg.contains("s3cret"),
            "{what}: message carries a value: {msg}"
        ),
        other => panic!("{what}: expected Unavailable, got {other:?}"),
    }
    assert!(took < FAST, "{what} took {took:?}");
}

pub(super) async fn assert_all_unavailable(s: &RedisStore) {
    assert_unavailable_fast("get", s.get(&["{t}:a".to_owned()])).await;
    assert_unavailable_fast(
        "commit",
        s.commit(vec![put("{t}:a", 0, "s3cret", Some(LONG))]),
    )
    .await;
    assert_unavailable_fast("index_desc", s.index_desc("{t}:idx", None, 5)).await;
    assert_unavailable_fast("index_claim_due", s.index_claim_due("{t}:due", 5, 5, 50)).await;
    assert_unavailable_fast("ping", s.ping()).await;
}

#[tokio::test]
async fn redis_down_starts_and_answers_unavailable_fast() {
    let started = Instant::now();
    let store = RedisStore::connect("redis://127.0.0.1:1", "chatgate-test-down").await;
    let store = store.expect("starting while Redis is down must not fail");
    assert!(
        started.elapsed() < FAST,
        "connect took {:?}",
        started.elapsed()
    );
    assert_all_unavailable(&store).await;
    // Past the reconnect interval the calls try to connect again, still fast.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_all_unavailable(&store).await;
}

async fn wait_until_reachable(s: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.ping().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the store did not recover by itself"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_by_itself_when_redis_comes_back() {
    if !OwnRedis::available() {
        eprintln!(
            "!!! SKIPPING recovers_by_itself_when_redis_comes_back: no redis-server binary on PATH"
        );
        return;
    }
    let port = crate::helpers::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let redis = Arc::new(
        RedisStore::connect(&url, "chatgate-test-recover")
            .await
            .unwrap(),
    );
    let s: SharedStore = redis.clone();
    assert!(matches!(s.ping().await, Err(StoreError::Unavailable(_))));

    // Redis appears after start-up.
    let server = OwnRedis::start(port);
    wait_until_reachable(&redis).await;
    assert_eq!(
        s.commit(vec![put("{t}:a", 0, "1", Some(LONG))])
            .await
            .unwrap(),
        Commit::Applied
    );
    assert_eq!(read(&s, "{t}:a").await.map(|(_, v)| v), Some("1".into()));

    // Redis goes away: fast failures, never stale data.
    drop(server);
    assert_all_unavailable(&redis).await;

    // Redis returns (empty: this one keeps no data); the store follows.
    let _server = OwnRedis::start(port);
    wait_until_reachable(&redis).await;
    assert_eq!(
        s.commit(vec![put("{t}:a", 0, "2", Some(LONG))])
            .await
            .unwrap(),
        Commit::Applied
    );
    assert_eq!(desc(&s, "{t}:idx", None, 5).await, vec![]);
}

/// Calls of the read commands since the last `CONFIG RESETSTAT`.
fn reads_since_reset(admin: &mut redis::Connection) -> u64 {
    calls_since_reset(
        admin,
        &[
            "cmdstat_get:",
            "cmdstat_mget:",
            "cmdstat_eval",
            "cmdstat_fcall",
        ],
    )
}

/// Calls since the last `CONFIG RESETSTAT` of the commands whose
/// `INFO commandstats` line starts with one of `lines`.
pub(super) fn calls_since_reset(admin: &mut redis::Connection, lines: &[&str]) -> u64 {
    let info: String = redis::cmd("INFO").arg("commandstats").query(admin).unwrap();
    info.lines()
        .filter(|l| lines.iter().any(|c| l.starts_with(c)))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Calls of each command since the last `CONFIG RESETSTAT`, by name,
/// without the test's own (`info`, `config`).
pub(crate) fn calls_by_command(
    admin: &mut redis::Connection,
) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(admin).unwrap();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .filter(|(name, _)| name != "info" && !name.starts_with("config"))
        .collect()
}

pub(crate) fn reset_stats(admin: &mut redis::Connection) {
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query::<()>(admin)
        .unwrap()
}

/// Calls per command, per second or per run.
pub(crate) type Rates = std::collections::BTreeMap<String, f64>;

/// Calls per command of `n` runs of `work` on a private Redis (with the
/// background work it leaves, such as the outbox publishing its events,
/// given `settle` to finish), less `idle` calls per second: what the idle
/// gateway's background work issues in the same time. Commands a script
/// runs are counted apart from the script's own call.
pub(crate) async fn calls_per_run(
    admin: &mut redis::Connection,
    idle: &Rates,
    n: usize,
    settle: Duration,
    work: impl std::future::Future<Output = ()>,
) -> Rates {
    reset_stats(admin);
    let t = tokio::time::Instant::now();
    work.await;
    tokio::time::sleep(settle).await;
    let secs = t.elapsed().as_secs_f64();
    calls_by_command(admin)
        .into_iter()
        .map(|(k, v)| {
            let less = idle.get(&k).copied().unwrap_or(0.0) * secs;
            (k, ((v as f64 - less) / n as f64).max(0.0))
        })
        .filter(|(_, v)| *v >= 0.05)
        .collect()
}

/// What the idle gateway issues per second, counted over `secs` seconds.
pub(crate) async fn idle_calls(admin: &mut redis::Connection, secs: u64) -> Rates {
    let idle = calls_per_run(admin, &Rates::new(), 1, Duration::from_secs(secs), async {}).await;
    idle.into_iter()
        .map(|(k, v)| (k, v / secs as f64))
        .collect()
}

/// Round trips among `r`: the calls a client makes (a script's inner
/// commands are the script's).
pub(crate) fn round_trips(r: &Rates) -> f64 {
    ["evalsha", "mget", "get"]
        .iter()
        .filter_map(|c| r.get(*c))
        .sum::<f64>()
}

/// `r` as one line: `command calls, …`.
pub(crate) fn show_rates(r: &Rates) -> String {
    r.iter()
        .map(|(k, v)| format!("{k} {v:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A connection to `server`, a private Redis just started, once it answers.
pub(super) async fn admin_of(server: &OwnRedis) -> redis::Connection {
    for _ in 0..100 {
        let conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_millis(200));
        if let Ok(c) = conn {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("private redis-server does not answer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_companion_is_one_round_trip_once_the_companion_is_known() {
    if !OwnRedis::available() {
        eprintln!(
            "!!! SKIPPING get_with_companion_is_one_round_trip…: no redis-server binary on PATH"
        );
        return;
    }
    // A private Redis, so that its command counts are this test's alone.
    let server = OwnRedis::start(crate::helpers::free_port());
    let mut admin = admin_of(&server).await;
    let writer = RedisStore::connect(&server.url(), "rt").await.unwrap();
    let ops = vec![
        put_naming("{t}:i", 0, "{}", "{t}:s", Some(LONG)),
        put("{t}:s", 0, "{}", Some(LONG)),
    ];
    assert_eq!(writer.commit(ops).await.unwrap(), Commit::Applied);

    // The instance that wrote the record knows its companion: one MGET.
    reset_stats(&mut admin);
    let r = writer.get_with_companion("{t}:i", None).await.unwrap();
    assert!(r.companion.as_ref().unwrap().1.is_some());
    assert_eq!(reads_since_reset(&mut admin), 1, "writer's first read");

    // Another instance does not know it: one MGET with the caller's
    // guess, which is the companion when the guess is right.
    let reader = RedisStore::connect(&server.url(), "rt").await.unwrap();
    reset_stats(&mut admin);
    let unknown = reader.get_with_companion("{t}:i", None).await.unwrap();
    assert_eq!(reads_since_reset(&mut admin), 1, "a record never read here");
    assert_eq!(unknown.companion, None);
    assert_eq!(unknown.record, r.record);
    reset_stats(&mut admin);
    let guessed = reader
        .get_with_companion("{t}:i", Some("{t}:s"))
        .await
        .unwrap();
    assert_eq!(reads_since_reset(&mut admin), 1, "with a guess");
    assert_eq!(guessed, r);

    // A record that names no companion, read with its default: one MGET,
    // also on an instance that never read it (an interaction that is its
    // own subject, on any instance).
    let plain = vec![put("{t}:own", 0, r#"{"id":1}"#, Some(LONG))];
    assert_eq!(writer.commit(plain).await.unwrap(), Commit::Applied);
    let fresh = RedisStore::connect(&server.url(), "rt").await.unwrap();
    reset_stats(&mut admin);
    let r = fresh
        .get_with_companion("{t}:own", Some("{t}:s"))
        .await
        .unwrap();
    let companion = r.companion.map(|(k, v)| (k, v.map(|v| v.value)));
    assert_eq!(
        companion,
        Some(("{t}:s".to_string(), Some("{}".to_string())))
    );
    assert_eq!(reads_since_reset(&mut admin), 1, "a default, first read");
}

#[tokio::test]
async fn a_commit_across_hash_tags_is_refused_as_a_cluster_would() {
    let Some((store, prefix)) = redis_store().await else {
        return;
    };
    let ops = vec![
        put("{t1}:a", 0, "1", Some(LONG)),
        put("{t2}:a", 0, "2", Some(LONG)),
    ];
    let got = store.commit(ops).await;
    assert!(matches!(got, Err(StoreError::Unavailable(_))), "{got:?}");
    assert!(prefix.keys().is_empty(), "nothing written");
    let untagged = vec![
        put("{t1}:a", 0, "1", Some(LONG)),
        put("l:x", 0, "2", Some(LONG)),
    ];
    assert!(store.commit(untagged).await.is_err());
}
