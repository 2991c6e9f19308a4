//! The core's doors to the store, for what no unit of work holds: an
//! interaction and its subject are written only by [`Core::transact`],
//! every other record by [`Core::change`] (or `change::once`); a family
//! reads here, never through the store itself.
use super::records::{Loaded, Readable};
use super::Core;
use crate::store::{IndexEntry, SharedStore, StoreError, Versioned};

/// The record under `key`, read on its own (one round trip), with its
/// version: for a read that changes nothing, or one a unit of work makes
/// beside its interaction.
pub(in crate::gateway) async fn read<R: Readable>(
    core: &Core,
    key: &str,
) -> crate::error::Result<Loaded<R>> {
    let raw = core.get(&[key.to_string()]).await?.pop().flatten();
    Loaded::parse(key.to_string(), raw)
}

/// A watch of the records `keys`, woken by every later write of one of
/// them on any instance (docs/architecture.md#change-signals); an error
/// while the store cannot tell.
pub(in crate::gateway) async fn watch(
    core: &Core,
    keys: &[String],
) -> Result<crate::store::signals::Watch, StoreError> {
    core.store.watch(keys).await
}

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
