//! The embedded store: one process, no persistence. Same semantics as Redis.
//! (Implementation pending.)
use async_trait::async_trait;

use super::{Commit, IndexEntry, Op, Store, StoreError, Versioned};

#[derive(Debug, Default)]
pub struct MemoryStore {}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, _keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        Err(StoreError::Unavailable("todo".into()))
    }
    async fn commit(&self, _ops: Vec<Op>) -> Result<Commit, StoreError> {
        Err(StoreError::Unavailable("todo".into()))
    }
    async fn index_desc(
        &self,
        _key: &str,
        _before: Option<(i64, String)>,
        _limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        Err(StoreError::Unavailable("todo".into()))
    }
    async fn index_take_due(
        &self,
        _key: &str,
        _max_score: i64,
        _limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        Err(StoreError::Unavailable("todo".into()))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
