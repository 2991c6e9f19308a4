//! The round-trip budget of the hot paths: a status read is one store call,
//! a login callback two (read, commit). Counted with a store wrapper, so it
//! holds for Redis, where each call is one round trip.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chatgate::store::memory::MemoryStore;
use chatgate::store::{
    Commit, IndexEntry, Op, SharedStore, Store, StoreError, Versioned, WithCompanion,
};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

struct Counting {
    inner: MemoryStore,
    calls: AtomicUsize,
}

impl Counting {
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

/// Keys only the background outbox dispatcher touches on its own: its
/// calls are not part of any request.
fn outbox_only<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.all(|k| k.contains("}:ob:") || k.contains("}:obi:") || k.ends_with("}:ob"))
}

fn op_key(op: &Op) -> &str {
    match op {
        Op::Put { key, .. }
        | Op::Delete { key, .. }
        | Op::IndexAdd { key, .. }
        | Op::IndexRemove { key, .. }
        | Op::Touch { key, .. } => key,
    }
}

#[async_trait]
impl Store for Counting {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        if !outbox_only(keys.iter().map(String::as_str)) {
            self.tick();
        }
        self.inner.get(keys).await
    }
    async fn get_with_companion(&self, key: &str) -> Result<WithCompanion, StoreError> {
        self.tick();
        self.inner.get_with_companion(key).await
    }
    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        if !outbox_only(ops.iter().map(op_key)) {
            self.tick();
        }
        self.inner.commit(ops).await
    }
    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.tick();
        self.inner.index_desc(key, before, limit).await
    }
    async fn index_claim_due(
        &self,
        key: &str,
        max: i64,
        limit: usize,
        claim: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        // Background work (sweeper, outbox): not part of any request.
        self.inner.index_claim_due(key, max, limit, claim).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.tick();
        self.inner.ping().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_read_is_one_round_trip_and_callback_two() {
    let counting = Arc::new(Counting {
        inner: MemoryStore::new(),
        calls: AtomicUsize::new(0),
    });
    let store: SharedStore = counting.clone();
    let app = spawn_with(
        Backend::Memory,
        Setup {
            store: Some(store),
            ..Setup::default()
        },
    )
    .await
    .unwrap();
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "rt", "customer_ref": "cust-rt"}))
        .await;
    let id = v["id"].as_str().unwrap();
    let link = app.issue_link(id, json!({})).await;

    let before = counting.calls.load(Ordering::SeqCst);
    let res = app
        .callback(
            link["token"].as_str().unwrap(),
            "success",
            json!({"id": "cust-rt"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        2,
        "callback: read + commit"
    );

    let before = counting.calls.load(Ordering::SeqCst);
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        1,
        "status read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_changes_nothing_is_not_written() {
    let counting = Arc::new(Counting {
        inner: MemoryStore::new(),
        calls: AtomicUsize::new(0),
    });
    let store: SharedStore = counting.clone();
    let app = spawn_with(
        Backend::Memory,
        Setup {
            store: Some(store),
            ..Setup::default()
        },
    )
    .await
    .unwrap();
    let id = app.new_interaction().await;
    let before = counting.calls.load(Ordering::SeqCst);
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/logout"),
            Some(&app.keys.bot),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        1,
        "a logout with nothing to end is one read"
    );
}
