//! The Redis store: several gateway instances, survives restarts.
//! (Implementation pending.)
use async_trait::async_trait;

use super::{Commit, IndexEntry, Op, Store, StoreError, Versioned};

#[derive(Debug)]
pub struct RedisStore {}

#[async_trait]
impl Store for RedisStore {
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

impl RedisStore {
    /// Connects (with connect and response timeouts) under `key_prefix`.
    pub async fn connect(_url: &str, _key_prefix: &str) -> Result<Self, StoreError> {
        Err(StoreError::Unavailable("todo".into()))
    }
}
