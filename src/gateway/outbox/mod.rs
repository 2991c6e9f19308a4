//! The transactional outbox (docs/api.md#events, docs/channels.md): what a state change must
//! tell others — its events, and the chat notices nobody waits for
//! (`authenticated`, `expired`) — is written in the same commit as the
//! change (see [`super::work`]), then delivered from the store by a
//! dispatcher that runs in every instance.
//!
//! The dispatcher ([`dispatch`]: one loop per team, deliveries bounded
//! per destination, so a slow receiver only slows itself) claims due items
//! with a lease (an instance that dies mid-delivery leaves its claims to
//! come due again), delivers each, then removes it as soon as its own
//! delivery ends — or, on failure, reschedules it with backoff: notices for an
//! hour (the API reference promises at least ten minutes), events to the team's
//! webhook for 25 hours (at least 24). Delivery is at-least-once: a message
//! may repeat, with the same id, but is not lost while the store keeps it.
//! An item the gateway cannot read is quarantined (logged once, removed)
//! and never stops the others.
//!
//! The parts: [`item`] (the item format), [`dispatch`] (the dispatcher),
//! [`delivery`] (delivering one item).
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

mod delivery;
mod dispatch;
mod item;

pub use dispatch::run_dispatcher;
pub use item::{Notice, OutboxItem, Task};

use super::records::put;
use super::Gateway;
use crate::config::Team;
use crate::error::Result;
use crate::store::{keys, IndexEntry, Op};
use crate::time::{Clock, Timestamp};

/// How long an item is kept: past the longest retry window.
pub const ITEM_TTL: Duration = Duration::from_secs(25 * 3600);
/// How long a claim holds before another instance may take the item over.
const LEASE: Duration = Duration::from_secs(30);
/// Items claimed per round trip, at most. A queue that is idle or nearly
/// so costs the same one claim whatever the bound; a backlog is read in a
/// quarter of the round trips 16 would take.
pub const BATCH: usize = 64;
/// How often the dispatcher looks, when nothing wakes it sooner.
const POLL: Duration = Duration::from_millis(250);
/// A notice is retried this long, an event's webhook delivery this long.
const NOTICE_GIVE_UP: Duration = Duration::from_secs(3600);
const EVENT_GIVE_UP: Duration = Duration::from_secs(25 * 3600);
/// Retries are at most this far apart.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Timeout of one webhook delivery.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The wake-up bell of this instance's dispatcher (every team's loop hears
/// it: a count that moves on each commit), its HTTP client, and the
/// items this instance has just written, kept for it ([`Kept`]).
pub struct Outbox {
    bell: watch::Sender<u64>,
    http: reqwest::Client,
    kept: Kept,
}

/// How many items [`Kept`] holds at most (a few MB at most).
const KEPT: usize = 1024;

/// The items this instance has just put into the outbox, as it built them,
/// by id and the version it wrote: its dispatcher takes an item it claims
/// from here rather than parsing the stored copy again (the costliest part
/// of delivering an event), when that copy is still the one written (the
/// same version: a failed delivery rewrites it). An item not found here —
/// another instance's, one written before a restart, one pushed out by
/// newer ones (the oldest go first), one whose commit did not apply (it
/// never takes a version found in the store) — is parsed from the store as
/// before.
#[derive(Default)]
struct Kept(Mutex<KeptItems>);

#[derive(Default)]
struct KeptItems {
    items: HashMap<Uuid, (u64, OutboxItem)>,
    /// Ids in the order kept, some taken already: the oldest goes first.
    order: VecDeque<Uuid>,
}

impl Kept {
    /// The items, whole even after a panic elsewhere (each change to them
    /// is one call that cannot be left half done).
    fn items(&self) -> std::sync::MutexGuard<'_, KeptItems> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, id: Uuid, version: u64, item: OutboxItem) {
        let pushed_out = {
            let mut kept = self.items();
            let oldest = if kept.order.len() >= KEPT {
                kept.order.pop_front()
            } else {
                None
            };
            let pushed_out = oldest.and_then(|o| kept.items.remove(&o));
            kept.order.push_back(id);
            kept.items.insert(id, (version, item));
            pushed_out
        };
        // Freed outside the lock.
        drop(pushed_out);
    }

    /// The item `id` as kept, if the store holds it at `version`; either
    /// way it is no longer kept.
    fn take(&self, id: Uuid, version: u64) -> Option<OutboxItem> {
        let (kept_at, item) = self.items().items.remove(&id)?;
        (kept_at == version).then_some(item)
    }

    /// Forgets item `id` (the store no longer holds it).
    fn forget(&self, id: Uuid) {
        let gone = self.items().items.remove(&id);
        drop(gone);
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Outbox {
            bell: watch::Sender::new(0),
            http,
            kept: Kept::default(),
        }
    }

    /// Something was committed: look now rather than at the next poll.
    pub fn wake(&self) {
        self.bell.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The ops that put `item` into `team`'s outbox, due at once; the item
    /// is kept for this instance's dispatcher (see [`Kept`]).
    pub fn enqueue(&self, team: &str, item: OutboxItem, now: Timestamp) -> Result<[Op; 2]> {
        let put = put(&keys::outbox_item(team, item.id), 0, &item, Some(ITEM_TTL))?;
        let queue = Op::QueueAdd {
            key: keys::outbox(team),
            member: item.id.to_string(),
            score: now.unix_millis(),
            ttl: ITEM_TTL,
        };
        if let Op::Put { version, .. } = &put {
            self.kept.keep(item.id, *version, item);
        }
        Ok([put, queue])
    }
}

/// The wait before attempt `attempts + 1`: 2 s after the first failure
/// (within the 5 s docs/api.md#events allows), then doubling, ±20 % jitter, at most an
/// hour; a provider's `Retry-After` is honoured (within the same cap).
pub fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs(2).saturating_mul(1 << attempts.saturating_sub(1).min(16));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let wait = base.mul_f64(jitter).max(retry_after.unwrap_or_default());
    wait.min(MAX_BACKOFF)
}

/// What handling one claimed item decided: the ops that remove or
/// reschedule it, its age when it stays pending, and whether it was
/// delivered (its destination answers again).
struct Handled {
    ops: Vec<Op>,
    pending: Option<Duration>,
    delivered: bool,
    /// The event this claim published, not yet known to be in the log:
    /// its item leaves the queue (or is marked published) only once it is.
    unlogged: Option<Box<Unlogged>>,
}

/// An item whose event was published by its claim, and the answer that
/// says when the event is in the log.
struct Unlogged {
    appended: tokio::sync::oneshot::Receiver<bool>,
    member: String,
    key: String,
    version: u64,
    item: OutboxItem,
}

impl Unlogged {
    /// Whether the event reached the log (within `wait`).
    async fn logged(&mut self, wait: Duration) -> bool {
        matches!(
            tokio::time::timeout(wait, &mut self.appended).await,
            Ok(Ok(true))
        )
    }

    /// The ops that put the item back, its event to be published again,
    /// due at `at` (instead of removing it or marking it published).
    fn put_back(self, queue: &str, at: Timestamp) -> Result<Vec<Op>> {
        let mut item = self.item;
        item.published = false;
        let keep = ITEM_TTL
            .saturating_sub(at.since(item.created_at))
            .max(Duration::from_secs(1));
        Ok(vec![
            put(&self.key, self.version, &item, Some(keep))?,
            Op::QueueAdd {
                key: queue.to_string(),
                member: self.member,
                score: at.unix_millis(),
                ttl: keep,
            },
        ])
    }
}

impl Handled {
    /// The item is done with: its queue entry goes, and `extra` (its key).
    fn removed(queue: &str, entry: &IndexEntry, extra: Option<Op>) -> Self {
        Handled {
            ops: std::iter::once(Op::IndexRemove {
                key: queue.to_string(),
                member: entry.member.clone(),
            })
            .chain(extra)
            .collect(),
            pending: None,
            delivered: false,
            unlogged: None,
        }
    }

    /// Where the item is queued again, if it is: its member and due time.
    fn requeued(&self) -> Option<(String, i64)> {
        self.ops.iter().find_map(|op| match op {
            Op::QueueAdd { member, score, .. } => Some((member.clone(), *score)),
            _ => None,
        })
    }
}

/// A claimed item, read and understood, to deliver.
struct Claimed {
    entry: IndexEntry,
    key: String,
    version: u64,
    item: OutboxItem,
    /// Whether the stored copy says its event was published.
    stored_published: bool,
    /// The log's answer for the event this claim published.
    appended: Option<tokio::sync::oneshot::Receiver<bool>>,
}

impl Claimed {
    /// What settling it must wait for: the event this claim published
    /// reaching the log.
    fn unlogged(&mut self) -> Option<Box<Unlogged>> {
        let appended = self.appended.take()?;
        Some(Box::new(Unlogged {
            appended,
            member: self.entry.member.clone(),
            key: self.key.clone(),
            version: self.version,
            item: self.item.clone(),
        }))
    }
}

/// One claimed batch of a team's due items, in the order they came due:
/// those to deliver, and those already settled while read (gone, not an
/// item, unreadable).
struct Batch {
    queue: String,
    ready: Vec<Claimed>,
    settled: Vec<Handled>,
}

impl Batch {
    /// Whether the claim took as many entries as it asked for: more may be due.
    fn full(&self, asked: usize) -> bool {
        self.ready.len() + self.settled.len() == asked
    }
}

impl Gateway {
    /// Commits `items` on their own (for events of changes that are not an
    /// interaction's unit of work) and wakes the dispatcher.
    pub(super) async fn enqueue_now(
        &self,
        team: &str,
        items: Vec<OutboxItem>,
        now: Timestamp,
    ) -> Result<()> {
        let mut ops = Vec::new();
        for item in items {
            ops.extend(self.outbox.enqueue(team, item, now)?);
        }
        self.store.commit(ops).await?;
        self.outbox.wake();
        Ok(())
    }

    /// Claims up to `limit` of `team`'s items due now, earliest first, and
    /// reads them (one claim and one read: an `MGET` on Redis).
    async fn claim_batch(&self, team: &Team, clock: &dyn Clock, limit: usize) -> Result<Batch> {
        let queue = keys::outbox(&team.id);
        let now = clock.now();
        let lease = now.plus(LEASE).unix_millis();
        let claimed = self
            .store
            .index_claim_due(&queue, now.unix_millis(), limit, lease)
            .await?;
        let ids: Vec<Option<Uuid>> = claimed
            .iter()
            .map(|e| Uuid::parse_str(&e.member).ok())
            .collect();
        let item_keys: Vec<String> = ids
            .iter()
            .flatten()
            .map(|id| keys::outbox_item(&team.id, *id))
            .collect();
        let read = self.store.get(&item_keys).await?;
        let mut read = item_keys.into_iter().zip(read);
        let mut batch = Batch {
            queue,
            ready: Vec::with_capacity(claimed.len()),
            settled: Vec::new(),
        };
        for (entry, id) in claimed.into_iter().zip(ids) {
            let item = id.and_then(|id| read.next().map(|(key, raw)| (id, key, raw)));
            match self.open_item(team, &batch.queue, entry, item) {
                Ok(claimed) => batch.ready.push(claimed),
                Err(handled) => batch.settled.push(handled),
            }
        }
        Ok(batch)
    }

    /// Understands one claimed item, as read with its batch (its id, key
    /// and stored value; `None` when its member is not an item id): the
    /// item to deliver, or, for one that is gone or cannot be read, the ops
    /// that settle it.
    fn open_item(
        &self,
        team: &Team,
        queue: &str,
        entry: IndexEntry,
        item: Option<(Uuid, String, Option<crate::store::Versioned>)>,
    ) -> Result<Claimed, Handled> {
        let Some((id, key, raw)) = item else {
            tracing::error!(team = %team.id, "outbox entry is not an item id; dropped");
            return Err(Handled::removed(queue, &entry, None));
        };
        let Some(raw) = raw else {
            // Delivered by another instance, or expired.
            self.outbox.kept.forget(id);
            return Err(Handled::removed(queue, &entry, None));
        };
        let version = raw.version;
        let kept = self.outbox.kept.take(id, version);
        match kept.or_else(|| serde_json::from_str::<OutboxItem>(&raw.value).ok()) {
            Some(item) => Ok(Claimed {
                entry,
                key,
                version,
                stored_published: item.published,
                appended: None,
                item,
            }),
            None => {
                // Quarantined: one bad item never stops the others.
                tracing::error!(team = %team.id, item = %id, "outbox item unreadable; dropped");
                metrics::counter!("chatgate_outbox_quarantined_total").increment(1);
                let delete = Op::Delete {
                    key,
                    expected: version,
                };
                Err(Handled::removed(queue, &entry, Some(delete)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::interaction::Contact;

    fn notice_item(now: Timestamp) -> OutboxItem {
        OutboxItem::new(
            Task::Notice {
                notice: Notice::Expired,
                interaction_id: Uuid::now_v7(),
                channel: "webchat".into(),
                conversation_id: "c-1".into(),
                contact: Contact::default(),
            },
            now,
        )
    }

    #[test]
    fn a_kept_item_is_taken_once_and_only_at_the_version_written() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let outbox = Outbox::new();
        let item = notice_item(now);
        let id = item.id;
        let [Op::Put { version, value, .. }, Op::QueueAdd { member, .. }] =
            outbox.enqueue("acme", item, now).unwrap()
        else {
            panic!("a put and a queue add");
        };
        assert_eq!(member, id.to_string());
        let taken = outbox.kept.take(id, version).expect("kept");
        assert_eq!(serde_json::to_string(&taken).unwrap(), value);
        assert!(outbox.kept.take(id, version).is_none(), "taken once");

        // A stored copy at another version (rewritten by a retry, or a
        // commit that did not apply): not this one, and it is dropped.
        let item = notice_item(now);
        let id = item.id;
        let [Op::Put { version, .. }, _] = outbox.enqueue("acme", item, now).unwrap() else {
            panic!("a put");
        };
        assert!(outbox.kept.take(id, version.wrapping_add(1)).is_none());
        assert!(outbox.kept.take(id, version).is_none());

        // One the store no longer holds is forgotten.
        let item = notice_item(now);
        let id = item.id;
        let [Op::Put { version, .. }, _] = outbox.enqueue("acme", item, now).unwrap() else {
            panic!("a put");
        };
        outbox.kept.forget(id);
        assert!(outbox.kept.take(id, version).is_none());
    }

    #[test]
    fn kept_items_are_bounded_the_oldest_going_first() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let outbox = Outbox::new();
        let mut written = Vec::new();
        for _ in 0..KEPT + 10 {
            let item = notice_item(now);
            let id = item.id;
            let [Op::Put { version, .. }, _] = outbox.enqueue("acme", item, now).unwrap() else {
                panic!("a put");
            };
            written.push((id, version));
        }
        let held = outbox.kept.0.lock().unwrap().items.len();
        assert_eq!(held, KEPT);
        let (first, v) = written[0];
        assert!(outbox.kept.take(first, v).is_none(), "pushed out");
        let (last, v) = written[KEPT + 9];
        assert!(outbox.kept.take(last, v).is_some());
    }
}
