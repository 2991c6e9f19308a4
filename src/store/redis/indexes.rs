//! Reads and moves of indexes and queues (sorted sets): a page of an
//! index from the top, or below a cursor (`ZREVRANGEBYSCORE`); a queue's
//! due entries claimed (`redis/claim_due.lua`, each to exactly one
//! caller); entries moved if unchanged (`redis/move_unchanged.lua`); each
//! queue's first entry. None reaches a queue's keeper.
use ::redis::{cmd, Value};

use super::conn::{self, query_on};
use super::due::NoteMoment;
use super::wire::{entries, unexpected};
use super::{RedisStore, KEEPER_SCORE};
use crate::store::{IndexEntry, StoreError};

pub(super) const CLAIM_DUE_LUA: &str = include_str!("claim_due.lua");
pub(super) const MOVE_UNCHANGED_LUA: &str = include_str!("move_unchanged.lua");

/// Extra entries read per page when a cursor's ties must be skipped.
const TIE_SLACK: usize = 16;

impl RedisStore {
    /// [`crate::store::Store::index_desc`]: one `ZREVRANGEBYSCORE` from
    /// below the keeper, or with a cursor from its score, the ties at or
    /// above the cursor's member dropped here (byte order, as Redis orders
    /// ties); it pages again only when ties fill a whole batch.
    pub(super) async fn descending(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let limit = limit.min(u32::MAX as usize);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let physical = self.prefix.key(key);
        let Some((score, member)) = before else {
            // Below the keeper's score: a queue's keeper is not an entry
            // (see `redis/commit.lua`).
            let mut range = cmd("ZREVRANGEBYSCORE");
            range
                .arg(&physical)
                .arg(format!("({KEEPER_SCORE}"))
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
            return entries("index_desc", self.conn.query("index_desc", &range).await?);
        };
        let batch = limit + TIE_SLACK;
        let page_at = |offset: usize| {
            let mut range = cmd("ZREVRANGEBYSCORE");
            range
                .arg(&physical)
                .arg(score)
                .arg("-inf")
                .arg("WITHSCORES");
            range.arg("LIMIT").arg(offset).arg(batch);
            range
        };
        let cursor = (score, member.as_str());
        self.conn
            .timed("index_desc", async {
                let mut conn = self.conn.link().await?;
                let mut out = Vec::new();
                let mut offset = 0usize;
                loop {
                    let reply = query_on(&mut conn, "index_desc", &page_at(offset)).await?;
                    let page = entries("index_desc", reply)?;
                    let full = page.len() == batch;
                    let below = page
                        .into_iter()
                        .filter(|e| (e.score, e.member.as_str()) < cursor);
                    out.extend(below.take(limit - out.len()));
                    if out.len() == limit || !full {
                        return Ok(out);
                    }
                    offset += batch;
                }
            })
            .await
    }

    /// [`crate::store::Store::index_claim_due`]: `redis/claim_due.lua`,
    /// whose answer also tells Redis' time.
    pub(super) async fn claim_due(
        &self,
        key: &str,
        max_score: i64,
        limit: usize,
        claim_score: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let limit = limit.min(u32::MAX as usize);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let answer_by = self.clock.answer_by(conn::CALL_TIMEOUT);
        let mut call = self.claim_due_script.prepare_invoke();
        // Never up to a queue's keeper.
        call.key(self.prefix.key(key))
            .arg(max_score.min(KEEPER_SCORE - 1))
            .arg(limit)
            .arg(claim_score)
            .arg(answer_by);
        let reply = self.conn.invoke("index_claim_due", &call).await?;
        let (redis_now, claimed) = claim_reply(reply)?;
        self.clock.learn(redis_now);
        Ok(claimed)
    }

    /// [`crate::store::Store::queue_move_unchanged`]:
    /// `redis/move_unchanged.lua`, noted before and after as a Cluster's
    /// commit is.
    pub(super) async fn move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        // Noted before and after, as a Cluster's commit is.
        self.note_apart([(key, score)], NoteMoment::Before).await;
        let mut call = self.move_unchanged_script.prepare_invoke();
        call.key(self.prefix.key(key)).arg(score);
        for entry in entries {
            call.arg(&entry.member).arg(entry.score);
        }
        let moved = match self.conn.invoke("queue_move_unchanged", &call).await? {
            Value::Int(n) => usize::try_from(n).unwrap_or(0),
            _ => return Err(unexpected("queue_move_unchanged")),
        };
        if moved > 0 {
            self.note_apart([(key, score)], NoteMoment::After).await;
        }
        Ok(moved)
    }

    /// [`crate::store::Store::queues_first`]: one `ZRANGEBYSCORE … LIMIT
    /// 0 1` per queue, below the keeper, sent together (the connection
    /// pipelines them).
    pub(super) async fn first_of_queues(
        &self,
        queues: &[String],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let reads = queues.iter().map(|queue| {
            let mut range = cmd("ZRANGEBYSCORE");
            range
                .arg(self.prefix.key(queue))
                .arg("-inf")
                .arg(format!("({KEEPER_SCORE}"))
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(1);
            async move {
                let reply = self.conn.query("queues_first", &range).await?;
                Ok::<_, StoreError>(entries("queues_first", reply)?.first().map(|e| e.score))
            }
        });
        futures::future::try_join_all(reads).await
    }
}

/// A claim's answer: Redis' time (ms) when it ran, then its entries.
fn claim_reply(reply: Value) -> Result<(i64, Vec<IndexEntry>), StoreError> {
    const WHAT: &str = "index_claim_due";
    let Value::Array(mut items) = reply else {
        return Err(unexpected(WHAT));
    };
    if items.is_empty() {
        return Err(unexpected(WHAT));
    }
    let now = match items.remove(0) {
        Value::Int(ms) => ms,
        _ => return Err(unexpected(WHAT)),
    };
    Ok((now, entries(WHAT, Value::Array(items))?))
}
