//! The embedded store: one process, no persistence, the same semantics as Redis.
//!
//! One `std::sync::Mutex` guards all state and is never held across an
//! `.await`: every trait method locks, works on plain maps, and unlocks
//! before returning. Expired records and indexes behave as absent (version
//! 0; the next write gets a fresh version, never an old one). An ordered
//! set of deadlines (one per record or index, removed with it, rescheduled
//! lazily when a write moved its expiry later) lets every commit drop up to
//! [`EXPIRE_PER_COMMIT`] whose time is up: memory stays bounded, and no
//! write ever scans all records (the full sweep it replaced stalled every
//! 1024th commit for O(live records)).
//!
//! Sorted indexes of up to eight members are one sorted `Vec`; larger ones
//! keep a `BTreeSet<(score, member)>` for ordered walks and a member → score
//! map for moves. Both give Redis' order exactly: by score, ties by member
//! compared byte-wise.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::num::NonZeroU64;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::due_index::DueIndexes;
use super::signals::{Signals, Watch};
use super::{
    keys, Commit, DueTaken, History, HistorySink, IndexEntry, Op, Store, StoreError, Versioned,
    WithCompanion,
};

/// How many due deadlines one commit handles, at most (amortised: a commit
/// adds at most one per op).
const EXPIRE_PER_COMMIT: usize = 64;

#[derive(Debug)]
struct Record {
    version: u64,
    /// Exactly as long as the text (a serialised record's `String` has up
    /// to twice the room; at a million live interactions that slack was a
    /// few hundred bytes each).
    value: Box<str>,
    /// `None`: kept until deleted.
    expires_at: Option<Moment>,
    /// The deadline this record has in the heap, if any (≤ `expires_at`).
    scheduled: Option<Moment>,
}

impl Record {
    /// The record as a read hands it out: a copy of its value.
    fn versioned(&self) -> Versioned {
        Versioned {
            version: self.version,
            value: String::from(&*self.value),
        }
    }
}

/// What a deadline in the heap is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Record,
    Index,
}

/// How many members whose time is up one write removes from an index, at most.
const PRUNE: usize = 32;

/// Up to this many members an index is one sorted `Vec`; past it, two
/// ordered sets and a member map. Most indexes are a customer's, with one
/// or two members, for which those would cost about a kilobyte.
const SMALL: usize = 8;

/// A sorted index whose members expire one by one: each lives for the TTL of
/// its last add, writes drop a few whose time is up, and the index itself
/// lives as long as its longest-lived member. A queue is one whose members
/// have no expiry (`None`): they stay until removed, and the queue lives
/// until its own `lifetime`.
#[derive(Debug, Default)]
struct Index {
    members: Members,
    /// A queue's life: the latest any of its adds asked for.
    lifetime: Option<Moment>,
    /// The deadline this index has in the heap, if any.
    scheduled: Option<Moment>,
}

/// One member of a small index: score, name, expiry.
type Entry = (i64, Arc<str>, Option<Moment>);

#[derive(Debug)]
enum Members {
    /// Sorted by (score, member): Redis' order.
    Small(Vec<Entry>),
    /// Boxed: its three maps would make every index, small ones too, 72
    /// bytes larger in the store's map of indexes.
    Large(Box<Large>),
}

impl Default for Members {
    fn default() -> Self {
        Members::Small(Vec::new())
    }
}

/// An index past [`SMALL`] members.
///
/// A member's name is kept once and shared by its entries (`Arc`): an add
/// allocates it once, a move or a removal not at all.
#[derive(Debug, Default)]
struct Large {
    ordered: BTreeSet<(i64, Arc<str>)>,
    /// member → (score, expiry). Ordered, not hashed: an index of a
    /// team's every interaction grows to hundreds of thousands, and a hash
    /// map doubling at that size held the store's lock for tens of ms.
    members: BTreeMap<Arc<str>, (i64, Option<Moment>)>,
    by_expiry: BTreeSet<(Moment, Arc<str>)>,
}

/// Puts `entry` in its place in a small index's order.
fn insert_sorted(small: &mut Vec<Entry>, entry: Entry) {
    let at = small.partition_point(|(score, name, _)| (*score, &**name) < (entry.0, &*entry.1));
    small.insert(at, entry);
}

impl Index {
    fn add(&mut self, member: String, score: i64, expires_at: Option<Moment>, now: Moment) {
        let grown = match &mut self.members {
            Members::Small(small) => {
                let name = match small.iter().position(|(_, m, _)| **m == *member) {
                    Some(i) => small.remove(i).1,
                    None => member.into(),
                };
                insert_sorted(small, (score, name, expires_at));
                // Dropping every member whose time is up: a few at most.
                small.retain(|(_, _, at)| live(*at, now));
                small.len() > SMALL
            }
            Members::Large(large) => {
                large.add(member, score, expires_at, now);
                false
            }
        };
        if grown {
            if let Members::Small(small) = std::mem::take(&mut self.members) {
                let mut large = Box::<Large>::default();
                for (score, name, at) in small {
                    large.insert(name, score, at);
                }
                self.members = Members::Large(large);
            }
        }
    }

    /// Removes `member`, if it is there.
    fn remove(&mut self, member: &str) {
        match &mut self.members {
            Members::Small(small) => small.retain(|(_, m, _)| **m != *member),
            Members::Large(large) => large.remove(member),
        }
    }

    /// The score of `member`, if it is there.
    fn score(&self, member: &str) -> Option<i64> {
        match &self.members {
            Members::Small(small) => small
                .iter()
                .find(|(_, m, _)| **m == *member)
                .map(|(s, _, _)| *s),
            Members::Large(large) => large.members.get(member).map(|(s, _)| *s),
        }
    }

    /// Moves `member` to `score`, keeping its expiry.
    fn rescore(&mut self, member: &str, score: i64) {
        match &mut self.members {
            Members::Small(small) => {
                if let Some(i) = small.iter().position(|(_, m, _)| **m == *member) {
                    let (_, name, at) = small.remove(i);
                    insert_sorted(small, (score, name, at));
                }
            }
            Members::Large(large) => large.rescore(member, score),
        }
    }

    fn is_empty(&self) -> bool {
        match &self.members {
            Members::Small(small) => small.is_empty(),
            Members::Large(large) => large.ordered.is_empty(),
        }
    }

    /// When the index expires: with its longest-lived member, or a queue
    /// at the end of its lifetime.
    fn expires_at(&self) -> Option<Moment> {
        let last = match &self.members {
            Members::Small(small) => small.iter().filter_map(|(_, _, at)| *at).max(),
            Members::Large(large) => large.by_expiry.last().map(|(at, _)| *at),
        };
        last.max(self.lifetime)
    }

    /// Up to `limit` entries, highest first, strictly below `before`.
    fn desc(&self, before: Option<(i64, String)>, limit: usize) -> Vec<IndexEntry> {
        let entry = |score: i64, member: &str| IndexEntry {
            member: member.to_owned(),
            score,
        };
        match &self.members {
            Members::Small(small) => {
                let below = |score: i64, name: &str| {
                    before
                        .as_ref()
                        .is_none_or(|(s, m)| (score, name) < (*s, m.as_str()))
                };
                let entries = small.iter().rev().filter(|(s, m, _)| below(*s, m));
                let entries = entries.take(limit).map(|(s, m, _)| entry(*s, m));
                entries.collect()
            }
            Members::Large(large) => {
                let upper = before.map_or(Bound::Unbounded, |(score, member)| {
                    Bound::Excluded((score, Arc::from(member)))
                });
                let entries = large.ordered.range((Bound::Unbounded, upper)).rev();
                let entries = entries.take(limit).map(|(s, m)| entry(*s, m));
                entries.collect()
            }
        }
    }

    /// Up to `limit` entries scored at most `max_score`, lowest first.
    fn due(&self, max_score: i64, limit: usize) -> Vec<IndexEntry> {
        let entry = |score: i64, member: &str| IndexEntry {
            member: member.to_owned(),
            score,
        };
        match &self.members {
            Members::Small(small) => {
                let entries = small.iter().take_while(|(s, _, _)| *s <= max_score);
                let entries = entries.take(limit).map(|(s, m, _)| entry(*s, m));
                entries.collect()
            }
            Members::Large(large) => {
                let entries = large.ordered.iter().take_while(|(s, _)| *s <= max_score);
                let entries = entries.take(limit).map(|(s, m)| entry(*s, m));
                entries.collect()
            }
        }
    }
}

impl Large {
    fn add(&mut self, member: String, score: i64, expires_at: Option<Moment>, now: Moment) {
        if let Some((name, &(old_score, old_expiry))) = self.members.get_key_value(member.as_str())
        {
            // A member already there moves only in the orders whose key
            // changed (a listing's score is its creation: it seldom does).
            let name = Arc::clone(name);
            shift(&mut self.ordered, &name, Some(old_score), Some(score));
            shift(&mut self.by_expiry, &name, old_expiry, expires_at);
            self.members.insert(name, (score, expires_at));
        } else {
            self.insert(member.into(), score, expires_at);
        }
        self.prune(now);
    }

    /// Adds a member that is not there yet.
    fn insert(&mut self, name: Arc<str>, score: i64, expires_at: Option<Moment>) {
        self.ordered.insert((score, Arc::clone(&name)));
        if let Some(at) = expires_at {
            self.by_expiry.insert((at, Arc::clone(&name)));
        }
        self.members.insert(name, (score, expires_at));
    }

    /// Removes `member`, if it is there.
    fn remove(&mut self, member: &str) {
        if let Some((name, (score, expires_at))) = self.members.remove_entry(member) {
            self.ordered.remove(&(score, Arc::clone(&name)));
            shift(&mut self.by_expiry, &name, expires_at, None);
        }
    }

    /// Moves `member` to `score`, keeping its expiry.
    fn rescore(&mut self, member: &str, score: i64) {
        if let Some((name, entry)) = self.members.get_key_value(member) {
            let (name, (old, expires_at)) = (Arc::clone(name), *entry);
            shift(&mut self.ordered, &name, Some(old), Some(score));
            self.members.insert(name, (score, expires_at));
        }
    }

    /// Drops up to [`PRUNE`] members whose time is up.
    fn prune(&mut self, now: Moment) {
        let dead: Vec<Arc<str>> = self
            .by_expiry
            .iter()
            .take_while(|(at, _)| !live(Some(*at), now))
            .take(PRUNE)
            .map(|(_, m)| Arc::clone(m))
            .collect();
        for m in dead {
            self.remove(&m);
        }
    }
}

/// Moves `name` in one of an index's orders from key `from` to `to`, where
/// `None` is "not in that order" (nothing to do when they are equal).
fn shift<K: Ord + Copy>(
    order: &mut BTreeSet<(K, Arc<str>)>,
    name: &Arc<str>,
    from: Option<K>,
    to: Option<K>,
) {
    if from != to {
        if let Some(from) = from {
            order.remove(&(from, Arc::clone(name)));
        }
        if let Some(to) = to {
            order.insert((to, Arc::clone(name)));
        }
    }
}

/// A point on the monotonic clock, in nanoseconds since the first one this
/// process took, in eight bytes (an `Instant` takes sixteen, and so does an
/// `Option` of one; `Option<Moment>` stays at eight). A store holds a few of
/// them per record, index entry and deadline: at a million live
/// interactions this saved about 220 bytes each (2 634 → 2 414 B of RSS).
/// `u64` nanoseconds last 584 years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Moment(NonZeroU64);

impl Moment {
    fn now() -> Moment {
        static START: OnceLock<Instant> = OnceLock::new();
        let since = START.get_or_init(Instant::now).elapsed().as_nanos();
        Moment::at(u64::try_from(since).unwrap_or(u64::MAX))
    }

    /// `nanos` since the start, counted from one (zero is `None`'s niche).
    fn at(nanos: u64) -> Moment {
        Moment(NonZeroU64::MIN.saturating_add(nanos))
    }

    /// `None` past the end of time, as `Instant::checked_add`.
    fn checked_add(self, d: Duration) -> Option<Moment> {
        let d = u64::try_from(d.as_nanos()).ok()?;
        self.0.checked_add(d).map(Moment)
    }
}

/// The longest deadline: a TTL too large to represent ends here.
const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);

/// `now + ttl`; a TTL too large to represent is capped at a [`CENTURY`].
fn deadline(now: Moment, ttl: Duration) -> Moment {
    now.checked_add(ttl)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

fn live(expires_at: Option<Moment>, now: Moment) -> bool {
    expires_at.is_none_or(|at| at > now)
}

/// Maps in each of which a key's shard is picked by its hash.
const SHARDS: usize = 64;

/// A hash map cut into [`SHARDS`] maps by key: growing, each doubles on
/// its own, moving a 64th of the entries. One map of a million records
/// doubling moved them all under the store's one lock (a 385 ms stall of
/// every request, measured while the store grew to 500 k interactions).
#[derive(Debug)]
struct Sharded<V> {
    shards: Box<[HashMap<Arc<str>, V>]>,
}

impl<V> Default for Sharded<V> {
    fn default() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl<V> Sharded<V> {
    /// The shard of `key` (FNV-1a of its bytes: keys end in ids and
    /// digests, so shards fill evenly).
    fn shard(key: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % SHARDS as u64) as usize
    }

    fn get(&self, key: &str) -> Option<&V> {
        self.shards[Self::shard(key)].get(key)
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.shards[Self::shard(key)].get_mut(key)
    }

    fn get_key_value(&self, key: &str) -> Option<(&Arc<str>, &V)> {
        self.shards[Self::shard(key)].get_key_value(key)
    }

    fn insert(&mut self, key: Arc<str>, value: V) -> Option<V> {
        self.shards[Self::shard(&key)].insert(key, value)
    }

    fn remove(&mut self, key: &str) -> Option<V> {
        self.shards[Self::shard(key)].remove(key)
    }

    fn remove_entry(&mut self, key: &str) -> Option<(Arc<str>, V)> {
        self.shards[Self::shard(key)].remove_entry(key)
    }

    #[cfg(test)]
    fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Default)]
struct State {
    /// Keys are shared with their deadline (`Arc<str>`), so a scheduled
    /// record costs one copy of its key, not two.
    records: Sharded<Record>,
    indexes: Sharded<Index>,
    /// At most one per record or index, removed with it: a record deleted
    /// long before its expiry (a delivered outbox item) leaves nothing
    /// behind.
    deadlines: BTreeSet<(Moment, Kind, Arc<str>)>,
    /// The companion each record's last `Put` named, for the records that
    /// named one (beside the records, not in them: most name none, and a
    /// record stays 40 bytes). Removed with its record.
    companions: HashMap<Arc<str>, Box<str>>,
}

impl State {
    fn record(&self, key: &str, now: Moment) -> Option<&Record> {
        self.records.get(key).filter(|r| live(r.expires_at, now))
    }

    fn version(&self, key: &str, now: Moment) -> u64 {
        self.record(key, now).map_or(0, |r| r.version)
    }

    /// The live index at `key`, dropping it first when it has expired.
    fn index_mut(&mut self, key: &str, now: Moment) -> Option<&mut Index> {
        if self.index(key, now).is_none() {
            self.drop_index(key);
        }
        self.indexes.get_mut(key)
    }

    /// Removes the record at `key`, and its deadline.
    fn drop_record(&mut self, key: &str) {
        self.companions.remove(key);
        if let Some((key, r)) = self.records.remove_entry(key) {
            if let Some(at) = r.scheduled {
                self.deadlines.remove(&(at, Kind::Record, key));
            }
        }
    }

    /// Removes the index at `key`, and its deadline.
    fn drop_index(&mut self, key: &str) {
        if let Some((key, i)) = self.indexes.remove_entry(key) {
            if let Some(at) = i.scheduled {
                self.deadlines.remove(&(at, Kind::Index, key));
            }
        }
    }

    fn index(&self, key: &str, now: Moment) -> Option<&Index> {
        self.indexes
            .get(key)
            .filter(|i| i.expires_at().is_some_and(|at| live(Some(at), now)))
    }

    fn apply(&mut self, op: Op, now: Moment) {
        let queue = matches!(op, Op::QueueAdd { .. });
        match op {
            Op::Put {
                key,
                version,
                value,
                ttl,
                companion,
                ..
            } => {
                // `expected` was checked before any op applied.
                let expires_at = ttl.and_then(|ttl| now.checked_add(ttl));
                // A deadline no later than the new expiry stays: when it
                // comes, it reschedules. A later one is moved. (The map
                // keeps the key it has: the deadline shares that one.)
                let (key, old) = match self.records.get_key_value(key.as_str()) {
                    Some((k, r)) => (Arc::clone(k), r.scheduled),
                    None => (Arc::from(key), None),
                };
                let kept = old.filter(|s| expires_at.is_none_or(|e| *s <= e));
                if let (None, Some(old)) = (kept, old) {
                    self.deadlines
                        .remove(&(old, Kind::Record, Arc::clone(&key)));
                }
                let scheduled = kept.or_else(|| {
                    let at = expires_at?;
                    self.deadlines.insert((at, Kind::Record, Arc::clone(&key)));
                    Some(at)
                });
                let record = Record {
                    version,
                    // Shrunk before the lock was taken (`commit`): free here.
                    value: value.into_boxed_str(),
                    expires_at,
                    scheduled,
                };
                match companion {
                    Some(c) => self.companions.insert(Arc::clone(&key), c.into_boxed_str()),
                    None => self.companions.remove(&key),
                };
                self.records.insert(key, record);
            }
            Op::Delete { key, .. } => self.drop_record(&key),
            Op::IndexAdd {
                key,
                member,
                score,
                ttl,
            }
            | Op::QueueAdd {
                key,
                member,
                score,
                ttl,
            } => {
                // An index member expires on its own; a queue's stays,
                // and the queue lives at least as long.
                let until = deadline(now, ttl);
                self.add_to_index(key, now, |index| {
                    if queue {
                        index.lifetime = index.lifetime.max(Some(until));
                    }
                    index.add(member, score, (!queue).then_some(until), now);
                });
            }
            Op::Touch { key, ttl } => {
                if let Some(r) = self
                    .records
                    .get_mut(key.as_str())
                    .filter(|r| live(r.expires_at, now))
                {
                    if let (Some(current), Some(wanted)) = (r.expires_at, now.checked_add(ttl)) {
                        r.expires_at = Some(current.max(wanted));
                    }
                }
            }
            Op::IndexRemove { key, member } | Op::QueueRemove { key, member } => {
                let emptied = self.index_mut(&key, now).is_some_and(|index| {
                    index.remove(&member);
                    index.is_empty()
                });
                if emptied {
                    self.drop_index(&key);
                }
            }
            // Handed to the history's sinks by `commit`: no state here.
            Op::Append { .. } => {}
        }
    }

    /// Runs `add` on the live index or queue at `key` (a new one if there
    /// is none) and gives it a deadline in the heap if it has none.
    fn add_to_index(&mut self, key: String, now: Moment, add: impl FnOnce(&mut Index)) {
        if self.index_mut(&key, now).is_none() {
            self.indexes.insert(key.as_str().into(), Index::default());
        }
        let Some(index) = self.indexes.get_mut(key.as_str()) else {
            return;
        };
        add(index);
        let Some(at) = index.expires_at().filter(|_| index.scheduled.is_none()) else {
            return;
        };
        index.scheduled = Some(at);
        // The deadline shares the map's key.
        if let Some((name, _)) = self.indexes.get_key_value(key.as_str()) {
            self.deadlines.insert((at, Kind::Index, Arc::clone(name)));
        }
    }

    /// Handles up to [`EXPIRE_PER_COMMIT`] deadlines that are due: drops
    /// what has expired and reschedules what a later write kept alive.
    fn expire_due(&mut self, now: Moment) {
        for _ in 0..EXPIRE_PER_COMMIT {
            let due = self.deadlines.first().is_some_and(|(at, ..)| *at <= now);
            if !due {
                return;
            }
            let Some((at, kind, key)) = self.deadlines.pop_first() else {
                return;
            };
            let next = match kind {
                Kind::Record => match self.records.get_mut(&key) {
                    Some(r) if r.scheduled == Some(at) => {
                        if !live(r.expires_at, now) {
                            self.records.remove(&key);
                            self.companions.remove(&key);
                            None
                        } else {
                            r.scheduled = r.expires_at;
                            r.expires_at
                        }
                    }
                    _ => None,
                },
                Kind::Index => match self.indexes.get_mut(&key) {
                    Some(i) if i.scheduled == Some(at) => {
                        let until = i.expires_at().filter(|e| live(Some(*e), now));
                        if until.is_none() {
                            self.indexes.remove(&key);
                        } else {
                            i.scheduled = until;
                        }
                        until
                    }
                    _ => None,
                },
            };
            if let Some(at) = next {
                self.deadlines.insert((at, kind, key));
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    /// The in-process histories its commits append to ([`Op::Append`]):
    /// each gets every entry, in commit order. (Several apps of one test
    /// may share a store; one that ended is dropped.)
    histories: Mutex<Vec<Weak<dyn HistorySink>>>,
    /// The teams' due indexes (docs/architecture.md#many-teams).
    due: Mutex<DueIndexes>,
    /// The change signals its commits raise, in this process.
    signals: Arc<Signals>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state; a panic elsewhere cannot leave it half-written (no code
    /// path panics while holding the lock), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn due(&self) -> MutexGuard<'_, DueIndexes> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes, after a write, the teams whose drained queue it added to or
    /// moved in (see `Store::due_teams_claim`).
    fn note_queued<'a>(&self, queued: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut due = None;
        for (queue, at) in queued {
            if let Some((index, team)) = keys::due_index_of(queue) {
                due.get_or_insert_with(|| self.due()).note(index, &team, at);
            }
        }
    }

    fn histories(&self) -> MutexGuard<'_, Vec<Weak<dyn HistorySink>>> {
        self.histories
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        let now = Moment::now();
        let state = self.lock();
        let found = keys
            .iter()
            .map(|key| state.record(key, now).map(Record::versioned));
        Ok(found.collect())
    }

    async fn get_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
    ) -> Result<WithCompanion, StoreError> {
        // Under one lock: the record and the companion its write named, else `default`.
        let now = Moment::now();
        let state = self.lock();
        let Some(found) = state.record(key, now) else {
            return Ok(WithCompanion::default());
        };
        let named = state.companions.get(key).map(|c| &**c);
        let companion = named.or(default).map(|c| {
            let v = state.record(c, now).map(Record::versioned);
            (c.to_owned(), v)
        });
        Ok(WithCompanion {
            record: Some(found.versioned()),
            companion,
        })
    }

    async fn commit(&self, mut ops: Vec<Op>) -> Result<Commit, StoreError> {
        // A value is kept at its exact length; the copy that takes is made
        // here, outside the lock.
        for op in &mut ops {
            if let Op::Put { value, .. } = op {
                value.shrink_to_fit();
            }
        }
        let now = Moment::now();
        let mut state = self.lock();
        for (i, op) in ops.iter().enumerate() {
            if let Op::Put { key, expected, .. } | Op::Delete { key, expected } = op {
                if state.version(key, now) != *expected {
                    return Ok(Commit::Conflict { op: i });
                }
            }
        }
        // Appends reach the histories while the commit holds the lock: in
        // commit order.
        let mut histories = None;
        let queued: Vec<(String, i64)> = ops
            .iter()
            .filter_map(|op| match op {
                Op::QueueAdd { key, score, .. } => Some((key.clone(), *score)),
                _ => None,
            })
            .collect();
        // The records a wait reads that this commit writes: raised once
        // it applied.
        let signalled: Vec<String> = match self.signals.watched() {
            false => Vec::new(),
            true => ops
                .iter()
                .filter(|op| matches!(op, Op::Put { .. } | Op::Delete { .. }))
                .map(Op::key)
                .filter(|k| keys::signalled(k).is_some())
                .map(str::to_string)
                .collect(),
        };
        for op in ops {
            if let Op::Append { key, entry, .. } = &op {
                let sinks = histories.get_or_insert_with(|| self.histories());
                sinks.retain(|sink| sink.strong_count() > 0);
                for sink in sinks.iter().filter_map(Weak::upgrade) {
                    sink.append(key, entry);
                }
            }
            state.apply(op, now);
        }
        state.expire_due(now);
        drop(state);
        self.note_queued(queued.iter().map(|(k, at)| (k.as_str(), *at)));
        for key in signalled {
            self.signals.raise(&key);
        }
        Ok(Commit::Applied)
    }

    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let now = Moment::now();
        let state = self.lock();
        Ok(state
            .index(key, now)
            .map_or_else(Vec::new, |index| index.desc(before, limit)))
    }

    async fn index_claim_due(
        &self,
        key: &str,
        max_score: i64,
        limit: usize,
        claim_score: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let now = Moment::now();
        let mut state = self.lock();
        let Some(index) = state.index_mut(key, now) else {
            return Ok(Vec::new());
        };
        let due = index.due(max_score, limit);
        for entry in &due {
            index.rescore(&entry.member, claim_score);
        }
        Ok(due)
    }

    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        let now = Moment::now();
        let mut state = self.lock();
        let Some(index) = state.index_mut(key, now) else {
            return Ok(0);
        };
        let mut moved = 0;
        for entry in entries {
            if index.score(&entry.member) == Some(entry.score) {
                index.rescore(&entry.member, score);
                moved += 1;
            }
        }
        drop(state);
        if moved > 0 {
            self.note_queued([(key, score)]);
        }
        Ok(moved)
    }

    async fn queues_first(&self, queues: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
        let now = Moment::now();
        let state = self.lock();
        let first = |queue: &String| {
            let index = state.index(queue, now)?;
            index.due(i64::MAX, 1).first().map(|e| e.score)
        };
        Ok(queues.iter().map(first).collect())
    }

    async fn due_teams_claim(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
    ) -> Result<DueTaken, StoreError> {
        Ok(DueTaken {
            teams: self.due().claim(index, now, limit, hold_until),
            whole: true,
        })
    }

    async fn due_teams_release(
        &self,
        index: &str,
        team: &str,
        held_until: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        self.due().release(index, team, held_until, next);
        Ok(())
    }

    async fn due_teams_note(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError> {
        let mut due = self.due();
        for (team, at) in teams {
            due.note(index, team, *at);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// In process: every commit here raises its signals itself.
    async fn watch(&self, keys: &[String]) -> Result<Watch, StoreError> {
        self.signals
            .watch(keys)
            .ok_or_else(|| StoreError::Unavailable("change signals".into()))
    }

    /// An in-process history: from now on it gets every entry committed.
    fn append_history(&self, history: &History) -> bool {
        match history {
            History::InProcess(sink) => {
                self.histories().push(Arc::downgrade(sink));
                true
            }
            History::Redis { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_evenly_over_the_shards() {
        // A shard that takes much more than its share would double (and
        // stall the store) as a whole map once did.
        let mut counts = [0usize; SHARDS];
        let n = 64 * 1000;
        for _ in 0..n {
            let key = crate::store::keys::interaction("acme", uuid::Uuid::now_v7());
            counts[Sharded::<()>::shard(&key)] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(
            *min > 800 && *max < 1200,
            "{min}..{max} of {} each",
            n / SHARDS
        );
    }

    #[test]
    fn moments_are_eight_bytes_ordered_and_end_where_instants_do() {
        assert_eq!(std::mem::size_of::<Option<Moment>>(), 8);
        // What a million live interactions hold several of each.
        assert!(std::mem::size_of::<Record>() <= 40);
        assert!(std::mem::size_of::<Index>() <= 40);
        let a = Moment::now();
        let b = Moment::now();
        assert!(a <= b);
        let later = deadline(a, Duration::from_millis(1));
        assert!(later > a && live(Some(later), a));
        assert!(!live(Some(a), later));
        assert_eq!(a.checked_add(Duration::MAX), None);
        assert_eq!(
            Moment::at(u64::MAX).checked_add(Duration::from_nanos(1)),
            None
        );
        // A TTL too large for the clock is a century, not forever or now.
        let century = deadline(a, Duration::MAX);
        assert_eq!(century, a.checked_add(CENTURY).unwrap());
        assert!(century > later);
    }

    fn put(key: String, ttl: Duration) -> Op {
        Op::Put {
            key,
            expected: 0,
            version: crate::store::fresh_version(),
            value: "{}".into(),
            ttl: Some(ttl),
            companion: None,
        }
    }

    /// Expired entries nobody reads again are dropped by later commits, so
    /// memory stays bounded; an entry written again with a longer TTL stays.
    #[tokio::test]
    async fn expired_entries_are_dropped_by_later_commits() {
        let store = MemoryStore::new();
        let short = Duration::from_millis(1);
        // k0 lives long enough to be written again below however slow this
        // machine is (with 1 ms it sometimes expired first); its first
        // deadline is due by the time the later commits run.
        let first_k0 = Duration::from_millis(500);
        for i in 0..100 {
            let index = Op::IndexAdd {
                key: format!("idx{i}"),
                member: "m".into(),
                score: 1,
                ttl: short,
            };
            let ttl = if i == 0 { first_k0 } else { short };
            let ops = vec![put(format!("k{i}"), ttl), index];
            assert_eq!(store.commit(ops).await.ok(), Some(Commit::Applied));
        }
        let kept = put("kept".into(), Duration::from_secs(60));
        assert_eq!(store.commit(vec![kept]).await.ok(), Some(Commit::Applied));
        let mut renewed = put("k0".into(), Duration::from_secs(60));
        if let Op::Put { expected, .. } = &mut renewed {
            *expected = store.get(&["k0".to_string()]).await.unwrap()[0]
                .as_ref()
                .unwrap()
                .version;
        }
        assert_eq!(
            store.commit(vec![renewed]).await.ok(),
            Some(Commit::Applied)
        );
        tokio::time::sleep(first_k0 + Duration::from_millis(50)).await;
        let noop = || {
            vec![Op::IndexRemove {
                key: "none".into(),
                member: "m".into(),
            }]
        };
        // 200 deadlines due, 64 a commit: four commits handle them all.
        for _ in 0..4 {
            assert_eq!(store.commit(noop()).await.ok(), Some(Commit::Applied));
        }
        let state = store.lock();
        assert_eq!(state.records.len(), 2);
        assert!(state.records.contains_key("kept"));
        assert!(state.records.contains_key("k0"));
        assert!(state.indexes.is_empty());
        // One deadline each for the two records still alive (k0 rescheduled).
        assert_eq!(state.deadlines.len(), 2);
    }

    /// A small index (a sorted `Vec`) answers as a large one would, before
    /// and after it grows past [`SMALL`]: the same ops on an index that
    /// starts small and on one built large give the same walks.
    mod small_and_large_agree {
        use super::super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Step {
            Add(u8, i64, bool),
            Remove(u8),
            Rescore(u8, i64),
        }

        fn step() -> impl Strategy<Value = Step> {
            prop_oneof![
                3 => (0u8..20, -3i64..4, any::<bool>()).prop_map(|(m, s, q)| Step::Add(m, s, q)),
                1 => (0u8..20).prop_map(Step::Remove),
                1 => (0u8..20, -3i64..4).prop_map(|(m, s)| Step::Rescore(m, s)),
            ]
        }

        proptest! {
            #[test]
            fn walks_agree(steps in proptest::collection::vec(step(), 1..80)) {
                let now = Moment::now();
                let later = deadline(now, Duration::from_secs(3600));
                let mut small = Index::default();
                let mut large = Index {
                    members: Members::Large(Box::default()),
                    ..Index::default()
                };
                for step in steps {
                    for index in [&mut small, &mut large] {
                        match &step {
                            // Members named so that ties sort byte-wise.
                            Step::Add(m, score, queued) => {
                                let at = (!queued).then_some(later);
                                index.add(format!("m{m}"), *score, at, now);
                            }
                            Step::Remove(m) => index.remove(&format!("m{m}")),
                            Step::Rescore(m, score) => index.rescore(&format!("m{m}"), *score),
                        }
                    }
                    let walk = |i: &Index| {
                        let all = i.desc(None, 100);
                        let cursor = all.get(all.len() / 2).map(|e| (e.score, e.member.clone()));
                        (all, i.desc(cursor, 5), i.due(1, 4), i.expires_at(), i.is_empty())
                    };
                    prop_assert_eq!(walk(&small), walk(&large));
                }
            }
        }
    }

    /// A record deleted, an index emptied, or a record written again to
    /// expire sooner, long before the deadline it had, leaves no deadline
    /// behind: a delivered outbox item costs nothing after its delete.
    #[tokio::test]
    async fn deletes_and_earlier_expiries_leave_no_deadline_behind() {
        let store = MemoryStore::new();
        let long = Duration::from_secs(3600);
        let queue = |member: &str| Op::QueueAdd {
            key: "q".into(),
            member: member.into(),
            score: 1,
            ttl: long,
        };
        let ops = vec![put("a".into(), long), put("b".into(), long), queue("m")];
        assert_eq!(store.commit(ops).await.ok(), Some(Commit::Applied));
        assert_eq!(store.lock().deadlines.len(), 3);
        let version = |key: &str| {
            let state = store.lock();
            state.records.get(key).map(|r| r.version).unwrap()
        };
        let mut sooner = put("b".into(), Duration::from_secs(60));
        if let Op::Put { expected, .. } = &mut sooner {
            *expected = version("b");
        }
        let ops = vec![
            Op::Delete {
                key: "a".into(),
                expected: version("a"),
            },
            sooner,
            Op::IndexRemove {
                key: "q".into(),
                member: "m".into(),
            },
        ];
        assert_eq!(store.commit(ops).await.ok(), Some(Commit::Applied));
        let state = store.lock();
        let left: Vec<&str> = state.deadlines.iter().map(|(_, _, k)| &**k).collect();
        assert_eq!(left, ["b"], "only b's, moved to its new expiry");
        let b = state.records.get("b").and_then(|r| r.scheduled);
        assert_eq!(state.deadlines.first().map(|d| d.0), b);
    }
}
