//! Creates (a `Put` expecting its key absent) and checks that a key is
//! still absent (a `Delete` expecting version 0) beside other ops: a
//! conflict at any position leaves nothing written, whichever op the store
//! wrote first, and a key named by several ops is checked against what was
//! there before the commit.
use chatgate::store::{Commit, Op, SharedStore};

use super::{commit, delete, index_add, put, read, version, LONG, PAST_SHORT, SHORT};

pub async fn a_conflict_after_creates_leaves_nothing_written(s: SharedStore) {
    commit(&s, vec![put("{t}:b", 0, "b1", Some(LONG))]).await;
    let vb = version(&s, "{t}:b").await;
    let a = || put("{t}:a", 0, "a1", Some(LONG));
    let c = || put("{t}:c", 0, "c1", None);
    let cases = [
        // A create, then a create of an existing key: the second
        // conflicts, and the key keeps its value (and its TTL: see
        // `redis_creates`).
        (
            "two creates",
            vec![a(), put("{t}:b", 0, "b-again", None)],
            1,
        ),
        // Creates, then an op of another kind that conflicts.
        (
            "a stale put after creates",
            vec![
                a(),
                index_add("{t}:idx", "a", 1, LONG),
                c(),
                put("{t}:b", vb ^ 1, "b-stale", Some(LONG)),
            ],
            3,
        ),
        (
            "a delete expecting an existing key absent",
            vec![a(), delete("{t}:d", 0), delete("{t}:b", 0), c()],
            2,
        ),
        // The first conflict is named; the ops after it are never checked.
        (
            "a conflict first",
            vec![
                put("{t}:b", 0, "b-again", None),
                a(),
                put("{t}:c", 7, "", None),
            ],
            0,
        ),
    ];
    for (what, ops, op) in cases {
        assert_eq!(commit(&s, ops).await, Commit::Conflict { op }, "{what}");
        for key in ["{t}:a", "{t}:c", "{t}:d"] {
            assert_eq!(read(&s, key).await, None, "{what}: {key} not created");
        }
        assert_eq!(read(&s, "{t}:b").await, Some((vb, "b1".into())), "{what}");
        assert_eq!(super::desc(&s, "{t}:idx", None, 10).await, vec![]);
    }
    // With every check passing, all of it applies.
    let ops = vec![a(), delete("{t}:d", 0), put("{t}:b", vb, "b2", None), c()];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    for (key, value) in [("{t}:a", "a1"), ("{t}:b", "b2"), ("{t}:c", "c1")] {
        assert_eq!(read(&s, key).await.map(|(_, v)| v).as_deref(), Some(value));
    }
    assert_eq!(read(&s, "{t}:d").await, None);
}

pub async fn a_key_in_several_ops_is_checked_as_it_was_before(s: SharedStore) {
    // Put then Delete, both expecting it absent: both pass, the delete
    // comes last.
    let ops = vec![put("{t}:a", 0, "a1", Some(LONG)), delete("{t}:a", 0)];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(read(&s, "{t}:a").await, None);
    // Two creates of one key: the last one's value.
    let ops = vec![
        put("{t}:a", 0, "first", Some(LONG)),
        put("{t}:a", 0, "second", Some(LONG)),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(
        read(&s, "{t}:a").await.map(|(_, v)| v),
        Some("second".into())
    );
    let va = version(&s, "{t}:a").await;
    // A create of an absent key and a delete of it at a version it has
    // not yet: the delete conflicts, nothing is written.
    let ops = vec![put("{t}:n", 0, "n1", Some(LONG)), delete("{t}:n", va)];
    assert_eq!(commit(&s, ops).await, Commit::Conflict { op: 1 });
    assert_eq!(read(&s, "{t}:n").await, None);
    // Delete (expecting absent) then create: created.
    let ops = vec![delete("{t}:n", 0), put("{t}:n", 0, "n1", Some(LONG))];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(read(&s, "{t}:n").await.map(|(_, v)| v), Some("n1".into()));
    // A create then a touch of it: the touch raises the new record's TTL.
    let touch = Op::Touch {
        key: "{t}:m".into(),
        ttl: LONG,
    };
    let ops = vec![put("{t}:m", 0, "m1", Some(SHORT)), touch];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(read(&s, "{t}:m").await.map(|(_, v)| v), Some("m1".into()));
}
