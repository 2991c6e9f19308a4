//! Records: versions, conflicts, atomic commits, deletes, TTLs, and a race.
use chatgate::store::{self, Commit, Op, SharedStore, StoreError};
use serde_json::json;

use super::{
    commit, desc, index_add, pairs, put, put_naming, read, version, LONG, PAST_SHORT, SHORT,
};

pub async fn put_get_versions(s: SharedStore) {
    assert_eq!(s.get(&[]).await.unwrap(), vec![]);
    assert_eq!(read(&s, "{t}:a").await, None);
    assert_eq!(
        commit(&s, vec![put("{t}:a", 0, r#"{"n":1}"#, Some(LONG))]).await,
        Commit::Applied
    );
    let (v1, value) = read(&s, "{t}:a").await.unwrap();
    assert_eq!(value, r#"{"n":1}"#);
    assert_ne!(v1, 0);
    assert_eq!(
        commit(
            &s,
            vec![put("{t}:a", v1, "{\"n\":\"two\\nlines\"}", Some(LONG))]
        )
        .await,
        Commit::Applied
    );
    let v2 = version(&s, "{t}:a").await;
    assert_ne!(v2, v1, "every write gives a new version");
    assert_eq!(
        commit(&s, vec![put("{t}:b", 0, "[]", Some(LONG))]).await,
        Commit::Applied
    );
    let vb = version(&s, "{t}:b").await;
    // One read, several keys, in order, absent ones as None.
    let keys = ["{t}:b", "{t}:missing", "{t}:a"].map(String::from);
    let got = s.get(&keys).await.unwrap();
    let got: Vec<_> = got
        .into_iter()
        .map(|v| v.map(|v| (v.version, v.value)))
        .collect();
    let expected = vec![
        Some((vb, "[]".into())),
        None,
        Some((v2, "{\"n\":\"two\\nlines\"}".into())),
    ];
    assert_eq!(got, expected);
    assert_eq!(commit(&s, vec![]).await, Commit::Applied);
    // A record has the version its Put named (so a writer knows what it
    // wrote without reading it back).
    let named = store::fresh_version();
    let mut op = put("{t}:a", v2, "[3]", Some(LONG));
    if let Op::Put { version, .. } = &mut op {
        *version = named;
    }
    assert_eq!(commit(&s, vec![op]).await, Commit::Applied);
    assert_eq!(read(&s, "{t}:a").await, Some((named, "[3]".into())));
}

pub async fn stale_version_and_put_if_absent_conflict(s: SharedStore) {
    commit(&s, vec![put("{t}:a", 0, "1", Some(LONG))]).await;
    let v1 = version(&s, "{t}:a").await;
    commit(&s, vec![put("{t}:a", v1, "2", Some(LONG))]).await;
    let v2 = version(&s, "{t}:a").await;
    // A writer that read the first version lost the race.
    assert_eq!(
        commit(&s, vec![put("{t}:a", v1, "stale", Some(LONG))]).await,
        Commit::Conflict { op: 0 }
    );
    // Put-if-absent on an existing key.
    assert_eq!(
        commit(&s, vec![put("{t}:a", 0, "new", Some(LONG))]).await,
        Commit::Conflict { op: 0 }
    );
    // Expecting a version the key never had, on an absent key.
    assert_eq!(
        commit(&s, vec![put("{t}:none", 3, "x", Some(LONG))]).await,
        Commit::Conflict { op: 0 }
    );
    assert_eq!(read(&s, "{t}:a").await, Some((v2, "2".into())));
    assert_eq!(read(&s, "{t}:none").await, None);
}

pub async fn commit_is_all_or_nothing(s: SharedStore) {
    commit(&s, vec![put("{t}:b", 0, "b1", Some(LONG))]).await;
    let vb = version(&s, "{t}:b").await;
    let ops = vec![
        put("{t}:a", 0, "a1", Some(LONG)),
        index_add("{t}:idx", "a", 1, LONG),
        put("{t}:b", 0, "b-again", Some(LONG)),
        Op::Delete {
            key: "{t}:b".into(),
            expected: vb,
        },
    ];
    assert_eq!(commit(&s, ops).await, Commit::Conflict { op: 2 });
    assert_eq!(read(&s, "{t}:a").await, None, "op 0 must not apply");
    assert_eq!(
        desc(&s, "{t}:idx", None, 10).await,
        vec![],
        "op 1 must not apply"
    );
    assert_eq!(
        read(&s, "{t}:b").await,
        Some((vb, "b1".into())),
        "op 3 must not apply"
    );
    // The first failing op is named even when a later one fails too.
    let ops = vec![put("{t}:x", 9, "", None), put("{t}:b", 7, "", None)];
    assert_eq!(commit(&s, ops).await, Commit::Conflict { op: 0 });
    // And with every version right, all of it applies.
    let ops = vec![
        put("{t}:a", 0, "a1", Some(LONG)),
        index_add("{t}:idx", "a", 1, LONG),
        put("{t}:b", vb, "b2", Some(LONG)),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    assert_eq!(read(&s, "{t}:a").await.map(|(_, v)| v), Some("a1".into()));
    assert_eq!(read(&s, "{t}:b").await.map(|(_, v)| v), Some("b2".into()));
    assert_eq!(desc(&s, "{t}:idx", None, 10).await, pairs(&[("a", 1)]));
}

pub async fn delete_checks_version(s: SharedStore) {
    let delete = |expected| Op::Delete {
        key: "{t}:a".into(),
        expected,
    };
    // Delete of an absent key at version 0 is a passing check.
    assert_eq!(commit(&s, vec![delete(0)]).await, Commit::Applied);
    commit(&s, vec![put("{t}:a", 0, "1", Some(LONG))]).await;
    let v1 = version(&s, "{t}:a").await;
    commit(&s, vec![put("{t}:a", v1, "2", Some(LONG))]).await;
    let v2 = version(&s, "{t}:a").await;
    assert_eq!(
        commit(&s, vec![delete(v1)]).await,
        Commit::Conflict { op: 0 }
    );
    assert_eq!(
        commit(&s, vec![delete(0)]).await,
        Commit::Conflict { op: 0 }
    );
    assert_eq!(read(&s, "{t}:a").await, Some((v2, "2".into())));
    assert_eq!(commit(&s, vec![delete(v2)]).await, Commit::Applied);
    assert_eq!(read(&s, "{t}:a").await, None);
    // Absent again: version 0, and no old version is accepted.
    for old in [v1, v2] {
        assert_eq!(
            commit(&s, vec![put("{t}:a", old, "x", Some(LONG))]).await,
            Commit::Conflict { op: 0 }
        );
    }
    assert_eq!(
        commit(&s, vec![put("{t}:a", 0, "3", Some(LONG))]).await,
        Commit::Applied
    );
    let v3 = version(&s, "{t}:a").await;
    assert!(
        v3 != v1 && v3 != v2,
        "a re-created record never reuses a version"
    );
}

/// The ABA interleaving, step by step: A reads the subject; B
/// deletes it (a success clears it); C re-creates it (a failure); A's write,
/// based on what it read before B, must not overwrite C's.
pub async fn versions_never_repeat_across_delete(s: SharedStore) {
    let key = "{t}:subject";
    commit(&s, vec![put(key, 0, r#"{"failures":2}"#, Some(LONG))]).await;
    let (a_read, _) = read(&s, key).await.unwrap();
    // B: a success deletes it.
    assert_eq!(
        commit(
            &s,
            vec![Op::Delete {
                key: key.into(),
                expected: a_read
            }]
        )
        .await,
        Commit::Applied
    );
    // C: a failure re-creates it.
    assert_eq!(
        commit(&s, vec![put(key, 0, r#"{"failures":1}"#, Some(LONG))]).await,
        Commit::Applied
    );
    // A: its third failure, based on the record it read first.
    assert_eq!(
        commit(&s, vec![put(key, a_read, r#"{"failures":3}"#, Some(LONG))]).await,
        Commit::Conflict { op: 0 },
        "a stale writer overwrote a re-created record"
    );
    assert_eq!(read(&s, key).await.unwrap().1, r#"{"failures":1}"#);
    // Likewise after an expiry.
    commit(&s, vec![put("{t}:e", 0, "1", Some(SHORT))]).await;
    let before = version(&s, "{t}:e").await;
    tokio::time::sleep(PAST_SHORT).await;
    commit(&s, vec![put("{t}:e", 0, "2", Some(LONG))]).await;
    assert_eq!(
        commit(&s, vec![put("{t}:e", before, "3", Some(LONG))]).await,
        Commit::Conflict { op: 0 }
    );
}

pub async fn ttl_expires_records_and_indexes(s: SharedStore) {
    let ops = vec![
        put("{t}:a", 0, "short", Some(SHORT)),
        put("{t}:b", 0, "long", Some(LONG)),
        index_add("{t}:idx", "m", 1, SHORT),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    let va = version(&s, "{t}:a").await;
    let vb = version(&s, "{t}:b").await;
    assert_eq!(read(&s, "{t}:a").await, Some((va, "short".into())));
    assert_eq!(desc(&s, "{t}:idx", None, 10).await, pairs(&[("m", 1)]));
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(read(&s, "{t}:a").await, None);
    assert_eq!(read(&s, "{t}:b").await, Some((vb, "long".into())));
    assert_eq!(desc(&s, "{t}:idx", None, 10).await, vec![]);
    assert_eq!(
        s.index_claim_due("{t}:idx", 100, 10, 200).await.unwrap(),
        vec![]
    );
    // An expired record is absent: version 0, and its old version is refused.
    assert_eq!(
        commit(&s, vec![put("{t}:a", va, "x", Some(LONG))]).await,
        Commit::Conflict { op: 0 }
    );
    assert_eq!(
        commit(&s, vec![put("{t}:a", 0, "again", Some(LONG))]).await,
        Commit::Applied
    );
    assert_eq!(
        read(&s, "{t}:a").await.map(|(_, v)| v),
        Some("again".into())
    );
    // An expired index starts afresh.
    commit(&s, vec![index_add("{t}:idx", "n", 2, LONG)]).await;
    assert_eq!(desc(&s, "{t}:idx", None, 10).await, pairs(&[("n", 2)]));
}

pub async fn ttl_none_persists_and_clears_a_ttl(s: SharedStore) {
    commit(&s, vec![put("{t}:ban", 0, "forever", None)]).await;
    commit(&s, vec![put("{t}:a", 0, "short", Some(SHORT))]).await;
    let va = version(&s, "{t}:a").await;
    // Rewriting without a TTL removes the earlier one.
    assert_eq!(
        commit(&s, vec![put("{t}:a", va, "kept", None)]).await,
        Commit::Applied
    );
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(
        read(&s, "{t}:ban").await.map(|(_, v)| v),
        Some("forever".into())
    );
    assert_eq!(read(&s, "{t}:a").await.map(|(_, v)| v), Some("kept".into()));
}

pub async fn concurrent_counter_is_exact(s: SharedStore) {
    let key = "{t}:counter";
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                store::retry(|| {
                    let s = s.clone();
                    async move {
                        let (version, n) = match read(&s, key).await {
                            Some((v, json)) => {
                                let n = serde_json::from_str::<serde_json::Value>(&json).unwrap()
                                    ["n"]
                                    .as_u64();
                                (v, n.unwrap())
                            }
                            None => (0, 0),
                        };
                        let next = json!({ "n": n + 1 }).to_string();
                        Ok::<_, StoreError>(
                            match s.commit(vec![put(key, version, &next, Some(LONG))]).await? {
                                Commit::Applied => Some(()),
                                Commit::Conflict { .. } => None,
                            },
                        )
                    }
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        read(&s, key).await.map(|(_, v)| v),
        Some(r#"{"n":50}"#.into())
    );
}

pub async fn get_with_companion_reads_both_in_one_call(s: SharedStore) {
    // Absent record: nothing.
    let r = s.get_with_companion("{t}:i", None).await.unwrap();
    assert_eq!(r, store::WithCompanion::default());
    // A record naming a companion that does not exist yet.
    let rec = r#"{"id":1}"#;
    assert_eq!(
        commit(&s, vec![put_naming("{t}:i", 0, rec, "{t}:s", Some(LONG))]).await,
        Commit::Applied
    );
    let r = s.get_with_companion("{t}:i", None).await.unwrap();
    assert_eq!(
        r.record.as_ref().map(|v| (v.version, v.value.as_str())),
        Some((version(&s, "{t}:i").await, rec))
    );
    assert_eq!(r.companion, Some(("{t}:s".to_string(), None)));
    // Then it exists, at its own version.
    assert_eq!(
        commit(&s, vec![put("{t}:s", 0, r#"{"f":2}"#, Some(LONG))]).await,
        Commit::Applied
    );
    let r = s.get_with_companion("{t}:i", None).await.unwrap();
    let (k, v) = r.companion.unwrap();
    assert_eq!(k, "{t}:s");
    assert_eq!(
        v.map(|v| (v.version, v.value)),
        Some((version(&s, "{t}:s").await, r#"{"f":2}"#.to_string()))
    );
    // A record written naming none has none, whatever its text holds:
    // the store never looks into it.
    let plain = r#"{"companion":"{t}:s"}"#;
    assert_eq!(
        commit(&s, vec![put("{t}:p", 0, plain, Some(LONG))]).await,
        Commit::Applied
    );
    let r = s.get_with_companion("{t}:p", None).await.unwrap();
    assert!(r.record.is_some());
    assert_eq!(r.companion, None);
}

pub async fn touch_raises_a_ttl_and_never_creates(s: SharedStore) {
    assert_eq!(
        commit(&s, vec![put("{t}:c", 0, "1", Some(SHORT))]).await,
        Commit::Applied
    );
    let vc = version(&s, "{t}:c").await;
    let touch = |key: &str| Op::Touch {
        key: key.to_string(),
        ttl: LONG,
    };
    assert_eq!(
        commit(&s, vec![touch("{t}:c"), touch("{t}:absent")]).await,
        Commit::Applied
    );
    tokio::time::sleep(PAST_SHORT).await;
    // Still there, at the same version; the absent key was not created.
    assert_eq!(read(&s, "{t}:c").await, Some((vc, "1".into())));
    assert_eq!(read(&s, "{t}:absent").await, None);
    // A touch never shortens.
    let short = Op::Touch {
        key: "{t}:c".to_string(),
        ttl: SHORT,
    };
    assert_eq!(commit(&s, vec![short]).await, Commit::Applied);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(read(&s, "{t}:c").await, Some((vc, "1".into())));
}

pub async fn get_with_companion_follows_a_changed_companion(s: SharedStore) {
    let named = |expected: u64, c: &str| put_naming("{t}:i", expected, "{}", c, Some(LONG));
    let ops = vec![
        named(0, "{t}:s1"),
        put("{t}:s1", 0, "1", Some(LONG)),
        put("{t}:s2", 0, "2", Some(LONG)),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    let companion = |r: store::WithCompanion| r.companion.map(|(k, v)| (k, v.map(|v| v.value)));
    for _ in 0..2 {
        let r = s.get_with_companion("{t}:i", None).await.unwrap();
        assert_eq!(companion(r), Some(("{t}:s1".into(), Some("1".into()))));
    }
    // The record now names another companion: that one is read.
    let v1 = version(&s, "{t}:i").await;
    let ops = vec![named(v1, "{t}:s2")];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    let v2 = version(&s, "{t}:i").await;
    let r = s.get_with_companion("{t}:i", None).await.unwrap();
    assert_eq!(r.record.as_ref().map(|v| v.version), Some(v2));
    assert_eq!(companion(r), Some(("{t}:s2".into(), Some("2".into()))));
    // Deleted, then written again naming the first: still right.
    let del = Op::Delete {
        key: "{t}:i".into(),
        expected: v2,
    };
    assert_eq!(commit(&s, vec![del]).await, Commit::Applied);
    let r = s.get_with_companion("{t}:i", None).await.unwrap();
    assert_eq!(r, store::WithCompanion::default());
    let again = named(0, "{t}:s1");
    assert_eq!(commit(&s, vec![again]).await, Commit::Applied);
    let r = s.get_with_companion("{t}:i", None).await.unwrap();
    assert_eq!(companion(r), Some(("{t}:s1".into(), Some("1".into()))));
}

pub async fn get_with_companion_defaults_only_a_record_naming_none(s: SharedStore) {
    let read = |default: Option<&'static str>| {
        let s = s.clone();
        async move { s.get_with_companion("{t}:i", default).await.unwrap() }
    };
    let companion = |r: &store::WithCompanion| {
        r.companion
            .clone()
            .map(|(k, v)| (k, v.map(|v| (v.version, v.value))))
    };
    // The companion `key` holding `value` at its current version.
    let holding = |key: &'static str, value: &'static str| {
        let s = s.clone();
        async move {
            Some((
                key.to_string(),
                Some((version(&s, key).await, value.into())),
            ))
        }
    };
    // Absent record: nothing, whatever the default.
    assert_eq!(read(Some("{t}:own")).await, store::WithCompanion::default());
    let ops = vec![
        put("{t}:i", 0, r#"{"id":1}"#, Some(LONG)),
        put("{t}:own", 0, "own", Some(LONG)),
        put("{t}:other", 0, "other", Some(LONG)),
    ];
    assert_eq!(commit(&s, ops).await, Commit::Applied);
    let own = holding("{t}:own", "own").await;
    // A record naming none: the default, read with it (twice: a store that
    // remembers companions must not remember this one as named).
    for _ in 0..2 {
        let r = read(Some("{t}:own")).await;
        let value = r.record.as_ref().map(|v| v.value.as_str());
        assert_eq!(value, Some(r#"{"id":1}"#));
        assert_eq!(companion(&r), own);
        // Without a default it has none.
        assert_eq!(read(None).await.companion, None);
    }
    // A default that does not exist is named, with nothing read.
    let r = read(Some("{t}:gone")).await;
    assert_eq!(companion(&r), Some(("{t}:gone".to_string(), None)));
    // A record naming one: that one, never the default.
    let v = version(&s, "{t}:i").await;
    let named = put_naming("{t}:i", v, r#"{"id":1}"#, "{t}:other", Some(LONG));
    assert_eq!(commit(&s, vec![named]).await, Commit::Applied);
    let other = holding("{t}:other", "other").await;
    for _ in 0..2 {
        assert_eq!(companion(&read(Some("{t}:own")).await), other);
    }
    // Naming none again: the default again (not the one remembered).
    let v = version(&s, "{t}:i").await;
    let plain = put("{t}:i", v, r#"{"id":2}"#, Some(LONG));
    assert_eq!(commit(&s, vec![plain]).await, Commit::Applied);
    assert_eq!(companion(&read(Some("{t}:own")).await), own);
}

pub async fn keys_of_several_slots_read_together_and_written_apart(s: SharedStore) {
    // Each commit stays within one hash tag (one Redis Cluster slot); the
    // short-link style key has none and is written on its own.
    for (key, value) in [
        ("{t1}:a", "1"),
        ("{t2}:a", "2"),
        ("{t3}:a", "3"),
        ("l:x", "4"),
    ] {
        let ops = vec![put(key, 0, value, Some(LONG))];
        assert_eq!(commit(&s, ops).await, Commit::Applied);
    }
    let keys = ["l:x", "{t3}:a", "{t1}:missing", "{t2}:a", "{t1}:a"].map(String::from);
    let got: Vec<_> = s
        .get(&keys)
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.map(|v| v.value))
        .collect();
    let expected = [Some("4"), Some("3"), None, Some("2"), Some("1")];
    assert_eq!(got, expected.map(|v| v.map(String::from)));
}
