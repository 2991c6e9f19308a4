//! Reads of records: one `MGET` of the logical keys, and a record read
//! with the companion its last write here named, else the caller's guess
//! (`store/companions.rs`), in that same `MGET`.
use ::redis::{cmd, Value};

use super::wire::{decode, unexpected};
use super::RedisStore;
use crate::store::{StoreError, Versioned, WithCompanion};

impl RedisStore {
    /// One `MGET` of the logical `keys`, decoded. The physical keys are
    /// written into the command through one reused buffer.
    pub(super) async fn mget<K: AsRef<str> + Sync>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Versioned>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = cmd("MGET");
        let mut physical = String::new();
        for key in keys {
            physical.clear();
            self.prefix.push(&mut physical, key.as_ref());
            mget.arg(physical.as_str());
        }
        let reply = self.conn.query("get", &mget).await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("get"));
        };
        if items.len() != keys.len() {
            return Err(unexpected("get"));
        }
        let decoded = keys.iter().zip(items).map(|(key, item)| match item {
            Value::Nil => Ok(None),
            Value::BulkString(raw) => decode(key.as_ref(), raw).map(Some),
            _ => Err(StoreError::Corrupt(format!(
                "record {} is not a string",
                key.as_ref()
            ))),
        });
        decoded.collect()
    }

    /// One `MGET` of the record, its companion as known or guessed
    /// (`default`), and `also`: [`crate::store::Store::get_with_companion_and`].
    pub(super) async fn mget_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
        also: &[String],
    ) -> Result<(WithCompanion, Vec<Option<Versioned>>), StoreError> {
        let cached = self.companions.get(key);
        let companion = cached.as_deref().or(default);
        let mut wanted: Vec<&str> = Vec::with_capacity(2 + also.len());
        wanted.push(key);
        wanted.extend(companion);
        wanted.extend(also.iter().map(String::as_str));
        let mut read = self.mget(&wanted).await?;
        let more = read.split_off(1 + usize::from(companion.is_some()));
        let mut read = read.into_iter();
        let Some(record) = read.next().flatten() else {
            if cached.is_some() {
                self.companions.forget(key);
            }
            return Ok((WithCompanion::default(), more));
        };
        let read = WithCompanion {
            record: Some(record),
            companion: companion.map(|c| (c.to_owned(), read.next().flatten())),
        };
        Ok((read, more))
    }
}
