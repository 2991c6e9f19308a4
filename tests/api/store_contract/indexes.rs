//! Sorted indexes: order with ties, cursor paging, TTLs, and take-due;
//! queues: members that stay until removed.
use std::collections::HashSet;
use std::time::Duration;

use chatgate::store::{Commit, IndexEntry, Op, SharedStore};

use super::{
    commit, desc, index_add, index_remove, page_all, pairs, queue_add, queue_remove, LONG,
    PAST_SHORT, SHORT,
};

pub async fn index_orders_ties_and_pages(s: SharedStore) {
    let idx = "{t}:idx";
    let adds = [
        ("a", 10),
        ("b", 10),
        ("c", 10),
        ("z", 5),
        ("m", 20),
        ("n", -3),
        ("x", 1),
        ("gone", 7),
    ];
    commit(
        &s,
        adds.iter()
            .map(|(m, score)| index_add(idx, m, *score, LONG))
            .collect(),
    )
    .await;
    // Moving a member and removing another, in one commit.
    let ops = vec![
        index_add(idx, "x", 15, LONG),
        index_remove(idx, "gone"),
        index_remove(idx, "never-there"),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    let all = pairs(&[
        ("m", 20),
        ("x", 15),
        ("c", 10),
        ("b", 10),
        ("a", 10),
        ("z", 5),
        ("n", -3),
    ]);
    assert_eq!(desc(&s, idx, None, 100).await, all);
    assert_eq!(desc(&s, idx, None, 3).await, all[..3].to_vec());
    assert_eq!(desc(&s, idx, None, 0).await, vec![]);
    // Paging by the last entry's (score, member) visits each entry once.
    assert_eq!(page_all(&s, idx, 2).await, all);
    // Strictly below: a cursor between tied members, and one on no member.
    assert_eq!(
        desc(&s, idx, Some((10, "bb")), 2).await,
        pairs(&[("b", 10), ("a", 10)])
    );
    assert_eq!(
        desc(&s, idx, Some((10, "a")), 5).await,
        pairs(&[("z", 5), ("n", -3)])
    );
    assert_eq!(desc(&s, idx, Some((12, "")), 1).await, pairs(&[("c", 10)]));
    assert_eq!(desc(&s, idx, Some((-3, "n")), 5).await, vec![]);
    assert_eq!(desc(&s, "{t}:no-such-index", None, 5).await, vec![]);
}

pub async fn index_pages_through_many_ties(s: SharedStore) {
    let idx = "{t}:ties";
    // Byte order decides ties: "B" < "a" < "z" < "é" (0xC3...).
    let mut members: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    members.extend(["B", "a", "z", "é"].map(String::from));
    let mut ops: Vec<Op> = members
        .iter()
        .map(|m| index_add(idx, m, 100, LONG))
        .collect();
    ops.push(index_add(idx, "low", 50, LONG));
    commit(&s, ops).await;
    members.sort();
    let mut expected: Vec<(String, i64)> = members.iter().rev().map(|m| (m.clone(), 100)).collect();
    expected.push(("low".into(), 50));
    assert_eq!(desc(&s, idx, None, 100).await, expected);
    // Paging by the last entry's (score, member) visits each entry once.
    assert_eq!(page_all(&s, idx, 3).await, expected);
    // Deep in the ties: everything at or above the cursor member is skipped.
    assert_eq!(
        desc(&s, idx, Some((100, "m01")), 4).await,
        pairs(&[("m00", 100), ("a", 100), ("B", 100), ("low", 50)])
    );
}

/// Index members expire one by one (each lives for the TTL of its last add);
/// writes drop members whose time is up (within eight adds: the memory
/// store at each, Redis at a process's first add to the index, then every
/// eighth, docs/decisions/0227-an-index-is-pruned-every-eighth-add.md);
/// the index lives exactly as long as its longest-lived member (an index
/// never outgrows what is alive by more than that slack).
pub async fn index_members_expire_one_by_one(s: SharedStore) {
    let five = Duration::from_secs(5);
    // A short-lived member does not shorten the index's life...
    commit(&s, vec![index_add("{t}:idx", "a", 1, five)]).await;
    commit(&s, vec![index_add("{t}:idx", "b", 2, SHORT)]).await;
    // ...and a long-lived one lengthens it.
    commit(&s, vec![index_add("{t}:grow", "a", 1, SHORT)]).await;
    commit(&s, vec![index_add("{t}:grow", "b", 2, five)]).await;
    // Re-adding a member gives it the new TTL, shorter or longer.
    commit(&s, vec![index_add("{t}:again", "m", 1, SHORT)]).await;
    commit(&s, vec![index_add("{t}:again", "m", 1, five)]).await;
    commit(&s, vec![index_add("{t}:shrink", "m", 1, five)]).await;
    commit(&s, vec![index_add("{t}:shrink", "m", 1, SHORT)]).await;
    tokio::time::sleep(PAST_SHORT).await;
    // Eight writes that add to an index drop its members whose time is up.
    let added = ["w7", "w6", "w5", "w4", "w3", "w2", "w1", "w0"];
    for idx in ["{t}:idx", "{t}:grow", "{t}:again"] {
        for w in added.iter().rev() {
            commit(&s, vec![index_add(idx, w, 0, five)]).await;
        }
    }
    let left = |alive: (&'static str, i64)| {
        let mut all = vec![alive];
        all.extend(added.iter().map(|w| (*w, 0)));
        pairs(&all)
    };
    assert_eq!(desc(&s, "{t}:idx", None, 20).await, left(("a", 1)));
    assert_eq!(desc(&s, "{t}:grow", None, 20).await, left(("b", 2)));
    assert_eq!(desc(&s, "{t}:again", None, 20).await, left(("m", 1)));
    // Its only member's time is up: the index is gone, without any write.
    assert_eq!(desc(&s, "{t}:shrink", None, 10).await, vec![]);
    // Removing the longest-lived member shortens the index's life to the next.
    commit(
        &s,
        vec![
            index_add("{t}:rm", "short", 1, SHORT),
            index_add("{t}:rm", "long", 2, five),
        ],
    )
    .await;
    commit(&s, vec![index_remove("{t}:rm", "long")]).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(desc(&s, "{t}:rm", None, 10).await, vec![]);
}

/// Many members whose time is up, and one write at a time: within eight
/// writes the index shrinks to what is alive (a write drops a bounded
/// number: up to 32 each on memory; on Redis up to 256 on one add in eight
/// of a process's to the index).
pub async fn dead_members_are_pruned_by_writes(s: SharedStore) {
    let idx = "{t}:many";
    let dead: Vec<Op> = (0..100)
        .map(|i| index_add(idx, &format!("d{i:03}"), i, SHORT))
        .collect();
    commit(&s, dead).await;
    tokio::time::sleep(PAST_SHORT).await;
    for i in 0..8 {
        commit(
            &s,
            vec![index_add(idx, &format!("live{i}"), 1000 + i, LONG)],
        )
        .await;
    }
    let left = desc(&s, idx, None, 200).await;
    assert_eq!(left.len(), 8, "{left:?}");
    assert!(left.iter().all(|(m, _)| m.starts_with("live")));
}

pub async fn claim_due_lowest_first_with_a_lease(s: SharedStore) {
    let idx = "{t}:due";
    let adds = [
        ("late", 500),
        ("b", 100),
        ("a", 100),
        ("first", -5),
        ("c", 200),
        ("d", 300),
    ];
    commit(
        &s,
        adds.iter()
            .map(|(m, score)| index_add(idx, m, *score, LONG))
            .collect(),
    )
    .await;
    let claim = |max, n, lease| {
        let s = s.clone();
        async move {
            let got = s.index_claim_due(idx, max, n, lease).await.unwrap();
            got.into_iter()
                .map(|e| (e.member, e.score))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(claim(300, 0, 1000).await, vec![]);
    assert_eq!(
        claim(300, 3, 1000).await,
        pairs(&[("first", -5), ("a", 100), ("b", 100)])
    );
    assert_eq!(claim(300, 10, 1000).await, pairs(&[("c", 200), ("d", 300)]));
    assert_eq!(claim(300, 10, 1000).await, vec![]);
    // Claimed entries wait at their lease; the claimer removes what it handled.
    commit(&s, vec![index_remove(idx, "c")]).await;
    assert_eq!(
        desc(&s, idx, None, 10).await,
        pairs(&[
            ("first", 1000),
            ("d", 1000),
            ("b", 1000),
            ("a", 1000),
            ("late", 500)
        ])
    );
    // A claimer that died: its entries come due again at the lease.
    assert_eq!(
        claim(1000, 2, 2000).await,
        pairs(&[("late", 500), ("a", 1000)])
    );
    assert_eq!(
        s.index_claim_due("{t}:none", 1000, 10, 2000).await.unwrap(),
        vec![]
    );
}

/// Adds and removals on one queue in one commit apply in op order,
/// however the store groups them: a member removed then added again is
/// there, one added then removed is not. A claim of several entries
/// leases each of them.
pub async fn queue_ops_of_one_commit_apply_in_order(s: SharedStore) {
    let q = "{t}:orderq";
    let remove = |m: &str| queue_remove(q, m);
    commit(
        &s,
        vec![queue_add(q, "a", 10, LONG), queue_add(q, "b", 20, LONG)],
    )
    .await;
    commit(
        &s,
        vec![
            remove("a"),
            remove("b"),
            queue_add(q, "a", 30, LONG),
            queue_add(q, "c", 40, LONG),
            queue_add(q, "c", 45, LONG),
            remove("c"),
            remove("d"),
            queue_add(q, "e", 50, LONG),
            remove("e"),
            queue_add(q, "e", 60, LONG),
        ],
    )
    .await;
    assert_eq!(desc(&s, q, None, 10).await, pairs(&[("e", 60), ("a", 30)]));
    let claimed = s.index_claim_due(q, 100, 10, 9000).await.unwrap();
    assert_eq!(claimed.len(), 2, "both due");
    assert_eq!(
        desc(&s, q, None, 10).await,
        pairs(&[("e", 9000), ("a", 9000)]),
        "each leased"
    );
}

pub async fn queue_moves_only_entries_left_as_read(s: SharedStore) {
    let q = "{t}:moveq";
    commit(
        &s,
        ["a", "b", "c", "d", "e"]
            .iter()
            .map(|m| queue_add(q, m, 5000, LONG))
            .collect(),
    )
    .await;
    let read = desc(&s, q, None, 10).await;
    // Since the read: "a" claimed (the lowest of the ties), "c" removed
    // (delivered), "d" moved.
    assert_eq!(s.index_claim_due(q, 5000, 1, 9000).await.unwrap().len(), 1);
    commit(
        &s,
        vec![queue_remove(q, "c"), queue_add(q, "d", 7000, LONG)],
    )
    .await;
    let entries: Vec<IndexEntry> = read
        .into_iter()
        .map(|(member, score)| IndexEntry { member, score })
        .collect();
    let moved = s.queue_move_unchanged(q, &entries, 100).await.unwrap();
    assert_eq!(moved, 2);
    // Only "b" and "e" move; "a" keeps its lease, "c" is not brought back.
    assert_eq!(
        desc(&s, q, None, 10).await,
        pairs(&[("a", 9000), ("d", 7000), ("e", 100), ("b", 100)])
    );
    assert_eq!(
        s.queue_move_unchanged("{t}:none", &entries, 100)
            .await
            .unwrap(),
        0
    );
}

pub async fn claim_due_exactly_once_under_contention(s: SharedStore) {
    // A queue, as the sweeper and the outbox claim from.
    let idx = "{t}:dueq";
    let due: Vec<Op> = (0..300)
        .map(|i| queue_add(idx, &format!("due-{i:03}"), i / 2, LONG))
        .collect();
    let later: Vec<Op> = (0..10)
        .map(|i| queue_add(idx, &format!("later-{i}"), 5000 + i, LONG))
        .collect();
    commit(&s, due.into_iter().chain(later).collect()).await;
    let takers: Vec<_> = (0..20)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut taken = Vec::new();
                loop {
                    let batch = s.index_claim_due(idx, 1000, 7, 10_000).await.unwrap();
                    if batch.is_empty() {
                        return taken;
                    }
                    let keys: Vec<_> = batch.iter().map(|e| (e.score, e.member.clone())).collect();
                    assert!(
                        keys.windows(2).all(|w| w[0] < w[1]),
                        "a batch is lowest first"
                    );
                    taken.extend(batch);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for taker in takers {
        all.extend(taker.await.unwrap());
    }
    assert_eq!(
        all.len(),
        300,
        "each due entry claimed exactly once in total"
    );
    let distinct: HashSet<_> = all.iter().map(|e| e.member.clone()).collect();
    assert_eq!(distinct.len(), 300, "no entry claimed twice");
    assert!(all
        .iter()
        .all(|e| e.member.starts_with("due-") && e.score <= 1000));
    let left = desc(&s, idx, None, 400).await;
    assert_eq!(
        left.iter().filter(|(_, sc)| *sc == 10_000).count(),
        300,
        "claimed wait at their lease"
    );
    assert_eq!(
        left.iter().filter(|(m, _)| m.starts_with("later-")).count(),
        10,
        "future entries stay"
    );
}

/// A queue's members have no expiry of their own: they stay until removed,
/// where an index would drop those whose time is up. The queue lives as
/// long as the latest time any add asked for: a later, shorter add never
/// shortens it. Emptied, it reads empty, and what is added next is kept as
/// long as that add asks (the memory store's new queue lives exactly that:
/// `store_contract::a_new_memory_queue_lives_as_its_first_add_asks`; the
/// Redis store keeps the drained queue's longer life, see
/// `redis_only::a_drained_queue_keeps_its_key_and_lifetime`).
pub async fn queue_members_stay_until_removed(s: SharedStore) {
    let q = "{t}:q";
    commit(&s, vec![queue_add(q, "short", 1, SHORT)]).await;
    commit(&s, vec![queue_add(q, "long", 2, LONG)]).await;
    commit(&s, vec![queue_add(q, "later", 3, SHORT)]).await;
    tokio::time::sleep(PAST_SHORT).await;
    // A new member (an index's add would prune its dead ones here) and a
    // moved one.
    let ops = vec![
        queue_add(q, "new", 4, SHORT),
        queue_add(q, "short", 6, SHORT),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(
        desc(&s, q, None, 10).await,
        pairs(&[("short", 6), ("new", 4), ("later", 3), ("long", 2)])
    );
    // Claimed and removed as an index's members are.
    let claimed = s.index_claim_due(q, 3, 10, 100).await.unwrap();
    let claimed: Vec<_> = claimed.into_iter().map(|e| (e.member, e.score)).collect();
    assert_eq!(claimed, pairs(&[("long", 2), ("later", 3)]));
    commit(&s, vec![index_remove(q, "long"), index_remove(q, "new")]).await;
    assert_eq!(
        desc(&s, q, None, 10).await,
        pairs(&[("later", 100), ("short", 6)])
    );
    commit(&s, vec![index_remove(q, "later"), index_remove(q, "short")]).await;
    assert_eq!(desc(&s, q, None, 10).await, vec![]);
    emptied_then_added_to(&s, q).await;
}

/// `q`, just emptied, added to again: what is added is there, until
/// removed or for as long as its add asks.
pub async fn emptied_then_added_to(s: &SharedStore, q: &str) {
    commit(s, vec![queue_add(q, "again", 1, SHORT)]).await;
    assert_eq!(desc(s, q, None, 10).await, pairs(&[("again", 1)]));
    tokio::time::sleep(SHORT / 2).await;
    assert_eq!(desc(s, q, None, 10).await, pairs(&[("again", 1)]));
    let claimed = s.index_claim_due(q, 1, 10, 50).await.unwrap();
    assert_eq!(claimed.len(), 1, "claimed as any member");
}

/// An index whose longest-lived member is removed lives only as long as
/// the next one; a member then added for longer is kept its whole life,
/// though its writer gave the index a longer life only moments before.
pub async fn an_index_lowered_by_a_removal_keeps_what_is_added_after(s: SharedStore) {
    let idx = "{t}:lowered";
    commit(&s, vec![index_add(idx, "long", 1, LONG)]).await;
    commit(&s, vec![index_add(idx, "a", 2, SHORT)]).await;
    commit(&s, vec![index_add(idx, "b", 3, SHORT)]).await;
    commit(&s, vec![index_remove(idx, "long")]).await;
    commit(&s, vec![index_add(idx, "later", 4, SHORT * 4)]).await;
    tokio::time::sleep(PAST_SHORT).await;
    let left = desc(&s, idx, None, 10).await;
    assert!(
        left.contains(&("later".to_owned(), 4)),
        "a live member outlived by its index: {left:?}"
    );
}
