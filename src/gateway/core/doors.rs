//! The core's doors to the store, for what no unit of work holds: an
//! interaction and its subject are written only by [`Core::transact`];
//! a family reads and writes the small records of its own (claims,
//! markers, gathers, counts, recognitions) here, never through the store
//! itself.
use super::Core;
use crate::store::{Commit, IndexEntry, Op, SharedStore, StoreError, Versioned};

impl Core {
    /// Records by key, in one round trip.
    pub(in crate::gateway) async fn get(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.store.get(keys).await
    }

    /// The keys of the store's node markers (`Store::node_markers`).
    pub(in crate::gateway) async fn node_markers(&self) -> Vec<String> {
        self.store.node_markers().await
    }

    /// One commit of records outside an interaction's unit of work: all of
    /// `ops` apply, or none.
    pub(in crate::gateway) async fn write(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        self.store.commit(ops).await
    }

    /// Entries of a sorted index, highest first, strictly below `before`.
    pub(in crate::gateway) async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.store.index_desc(key, before, limit).await
    }

    /// Moves `entries` of the queue `key` to `score`, each only while it
    /// is unchanged; how many moved.
    pub(in crate::gateway) async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        self.store.queue_move_unchanged(key, entries, score).await
    }

    /// The store itself, for the workers that take teams from the due
    /// indexes and for the readiness probe.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }
}
