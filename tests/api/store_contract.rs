//! The store contract, written once and run on both stores: every behaviour
//! is an `async fn(SharedStore)` in `records`, `creates` or `indexes`, and
//! [`contract!`] turns each into a test in `memory::`, one in `redis::`
//! (its own key prefix, cleaned up afterwards) and one in `cluster::`: a
//! real local Redis Cluster of three masters, started once per test process
//! and shared (each test under its own key prefix). Checks only Redis can
//! show (TTLs of physical keys, Redis down and back) sit in `redis_only`;
//! the cluster's own (a master killed and back, restarts) in `cluster_only`.
mod cluster_only;
mod creates;
mod due_teams;
mod indexes;
mod records;
mod redis_creates;
pub(crate) mod redis_only;

use std::time::Duration;

use chatgate::store::{Commit, IndexEntry, Op, SharedStore};

pub const LONG: Duration = Duration::from_secs(60);
pub const SHORT: Duration = Duration::from_millis(300);
/// Comfortably past [`SHORT`].
pub const PAST_SHORT: Duration = Duration::from_millis(600);

macro_rules! contract {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let store = chatgate::store::memory::MemoryStore::new();
                    super::$module::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some((store, _prefix)) = crate::redis_support::redis_store().await else {
                        return;
                    };
                    super::$module::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
        mod cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let test = concat!("cluster::", stringify!($name));
                    let Some(store) = crate::redis_support::cluster_store(test).await else {
                        return;
                    };
                    super::$module::$name(std::sync::Arc::new(store)).await;
                }
            )*
        }
    };
}

contract!(
    records::put_get_versions,
    records::stale_version_and_put_if_absent_conflict,
    records::commit_is_all_or_nothing,
    records::delete_checks_version,
    records::versions_never_repeat_across_delete,
    records::ttl_expires_records_and_indexes,
    records::ttl_none_persists_and_clears_a_ttl,
    records::concurrent_counter_is_exact,
    records::get_with_companion_reads_both_in_one_call,
    records::get_with_companion_follows_a_changed_companion,
    records::get_with_companion_defaults_only_a_record_naming_none,
    records::keys_of_several_slots_read_together_and_written_apart,
    records::touch_raises_a_ttl_and_never_creates,
    creates::a_conflict_after_creates_leaves_nothing_written,
    creates::a_key_in_several_ops_is_checked_as_it_was_before,
    indexes::index_orders_ties_and_pages,
    indexes::index_pages_through_many_ties,
    indexes::index_members_expire_one_by_one,
    indexes::dead_members_are_pruned_by_writes,
    indexes::claim_due_lowest_first_with_a_lease,
    indexes::claim_due_exactly_once_under_contention,
    indexes::queue_moves_only_entries_left_as_read,
    indexes::queue_ops_of_one_commit_apply_in_order,
    indexes::queue_members_stay_until_removed,
    indexes::an_index_lowered_by_a_removal_keeps_what_is_added_after,
    due_teams::queue_writes_note_their_team_and_releases_never_raise_a_note,
);

/// The memory store's queue, emptied, is gone: a new one lives exactly as
/// long as its first add asks (see `indexes::queue_members_stay_until_removed`).
#[tokio::test]
async fn a_new_memory_queue_lives_as_its_first_add_asks() {
    let s: SharedStore = std::sync::Arc::new(chatgate::store::memory::MemoryStore::new());
    let q = "{t}:q";
    commit(&s, vec![queue_add(q, "old", 1, LONG)]).await;
    commit(&s, vec![queue_remove(q, "old")]).await;
    indexes::emptied_then_added_to(&s, q).await;
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(desc(&s, q, None, 10).await, vec![], "expired with its life");
}

pub fn put(key: &str, expected: u64, value: &str, ttl: Option<Duration>) -> Op {
    put_with(key, expected, value, ttl, None)
}

/// [`put`], naming `companion` as the record's companion.
pub fn put_naming(
    key: &str,
    expected: u64,
    value: &str,
    companion: &str,
    ttl: Option<Duration>,
) -> Op {
    put_with(key, expected, value, ttl, Some(companion))
}

fn put_with(
    key: &str,
    expected: u64,
    value: &str,
    ttl: Option<Duration>,
    companion: Option<&str>,
) -> Op {
    Op::Put {
        key: key.into(),
        expected,
        version: chatgate::store::fresh_version(),
        value: value.into(),
        ttl,
        companion: companion.map(str::to_owned),
    }
}

pub fn index_add(key: &str, member: &str, score: i64, ttl: Duration) -> Op {
    Op::IndexAdd {
        key: key.into(),
        member: member.into(),
        score,
        ttl,
    }
}

pub fn index_remove(key: &str, member: &str) -> Op {
    Op::IndexRemove {
        key: key.into(),
        member: member.into(),
    }
}

pub fn queue_add(key: &str, member: &str, score: i64, ttl: Duration) -> Op {
    Op::QueueAdd {
        key: key.into(),
        member: member.into(),
        score,
        ttl,
    }
}

pub fn queue_remove(key: &str, member: &str) -> Op {
    Op::QueueRemove {
        key: key.into(),
        member: member.into(),
    }
}

pub fn delete(key: &str, expected: u64) -> Op {
    Op::Delete {
        key: key.into(),
        expected,
    }
}

pub async fn read(s: &SharedStore, key: &str) -> Option<(u64, String)> {
    let mut got = s.get(&[key.to_owned()]).await.unwrap();
    assert_eq!(got.len(), 1);
    got.pop().unwrap().map(|v| (v.version, v.value))
}

/// The current version of `key` (which must exist).
pub async fn version(s: &SharedStore, key: &str) -> u64 {
    read(s, key).await.expect("the record exists").0
}

pub async fn commit(s: &SharedStore, ops: Vec<Op>) -> Commit {
    s.commit(ops).await.unwrap()
}

pub async fn desc(
    s: &SharedStore,
    key: &str,
    before: Option<(i64, &str)>,
    n: usize,
) -> Vec<(String, i64)> {
    let before = before.map(|(score, m)| (score, m.to_owned()));
    let entries = s.index_desc(key, before, n).await.unwrap();
    entries
        .into_iter()
        .map(|IndexEntry { member, score }| (member, score))
        .collect()
}

pub fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
}

/// The whole index, read `page` entries at a time by the last entry's cursor.
pub async fn page_all(s: &SharedStore, key: &str, page: usize) -> Vec<(String, i64)> {
    let mut all: Vec<(String, i64)> = Vec::new();
    loop {
        let cursor = all.last().map(|(m, score)| (*score, m.as_str()));
        let next = desc(s, key, cursor, page).await;
        if next.is_empty() {
            return all;
        }
        all.extend(next);
    }
}
