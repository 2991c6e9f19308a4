//! One unit of work at a time per interaction, in this process.
//!
//! Compare-and-set keeps records exact, but N concurrent writers of one
//! record make N−1 of them re-read, back off and try again, round after
//! round: a brute force on one challenge, or a burst of callbacks on one
//! interaction, turned into retry storms with p99 in seconds. Queueing the
//! units of work of one record behind an async lock lets each commit at its
//! first attempt; compare-and-set stays, for other instances and for
//! writers outside [`Core::transact`](super::Core).
//!
//! The lock also hands over what the last unit of work commits (`T`, the
//! records with their new versions), so the next in line decides on it
//! without reading the store again, and goes on as soon as that commit is
//! sent (see `Core::transact`): on a hot record the commits follow each
//! other on the store's connection without a round trip in between.
//! Compare-and-set still checks everything handed over: a commit that did
//! not apply, or a record another instance changed meanwhile, makes the
//! next commit conflict, and that unit of work reads afresh. A unit of work
//! that writes nothing on what it was handed gives its turn up at once,
//! handing the same records on, and confirms its answer on a read of its
//! own outside the line.
//!
//! Entries live in a sharded map only while someone holds or waits for
//! them (what they hand over goes with them). A wait longer than
//! [`MAX_WAIT`] (a store that hangs) gives up the queue and goes ahead
//! unserialised, without a hand-over: correctness never depends on the lock.
//!
//! The lines are keyed by any id: an interaction's, or a team's for its
//! audit head, the one record every audited action of the team writes
//! (`core/trail`; docs/architecture.md#hot-records-the-record-lock).
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use uuid::Uuid;

const SHARDS: usize = 64;

/// The longest a unit of work waits for its turn before going ahead anyway.
/// Short, because a store that hangs makes the one ahead wait for its own
/// call to time out (`store::redis::conn`, 1.5 s): the wait and this unit's
/// own failing call must stay within the 2 s in which a request answers 503
/// `store_unavailable` when the store is down (docs/operations.md#stores).
pub const MAX_WAIT: Duration = Duration::from_millis(400);

type Slot<T> = Arc<AsyncMutex<Option<T>>>;

/// The lines of records named by `K`: an interaction's id, or a team's id
/// for its audit head (`core/trail`).
pub struct RecordLocks<T, K = Uuid> {
    shards: Vec<Mutex<HashMap<K, Slot<T>>>>,
    hasher: RandomState,
}

impl<T, K> Default for RecordLocks<T, K> {
    fn default() -> Self {
        RecordLocks {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }
}

/// Held for the unit of work; on drop, the next in line goes, and the entry
/// is removed when nobody else holds or waits for it.
pub struct Turn<'a, T, K: Eq + Hash = Uuid> {
    locks: &'a RecordLocks<T, K>,
    id: K,
    guard: Option<OwnedMutexGuard<Option<T>>>,
}

impl<T, K: Eq + Hash> Turn<'_, T, K> {
    /// What the previous unit of work handed over, if any (taken: a second
    /// call answers `None`).
    pub fn take_handed(&mut self) -> Option<T> {
        self.guard.as_mut().and_then(|g| g.take())
    }

    /// Hands `value` to the next in line (nothing without the lock).
    pub fn hand_over(&mut self, value: T) {
        if let Some(g) = self.guard.as_mut() {
            **g = Some(value);
        }
    }
}

/// Which records a unit of work's next try decides on, and whether it waits
/// in line for them: the one state that [`Place`] keeps across tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// In line: on what the one ahead handed over, when it is there and
    /// still usable; else on a fresh read.
    InLine,
    /// In line, on a fresh read whatever is handed over: a commit on handed
    /// records conflicted, a claim found its key taken, or handed records
    /// proved behind the store. Never left for [`Standing::InLine`] again.
    Afresh,
    /// Out of the line, for one decision on a fresh read of its own, after
    /// a decision on handed records that wrote nothing: the turn went on at
    /// once. Answered from here, or back in line ([`Standing::Afresh`]) to
    /// write.
    Outside,
}

/// A unit of work's place in its record's line, across all its tries: the
/// turn it holds (if any), and its [`Standing`]. `Core::transact` drives
/// it; every hand-over goes through it.
pub struct Place<'a, T, K: Eq + Hash + Clone = Uuid> {
    locks: &'a RecordLocks<T, K>,
    id: K,
    turn: Option<Turn<'a, T, K>>,
    standing: Standing,
}

impl<'a, T, K: Eq + Hash + Clone> Place<'a, T, K> {
    /// Joins `id`'s line and waits for its turn (at most [`MAX_WAIT`]).
    pub async fn join(locks: &'a RecordLocks<T, K>, id: K) -> Self {
        Place {
            locks,
            turn: Some(locks.turn(id.clone()).await),
            id,
            standing: Standing::InLine,
        }
    }

    pub fn standing(&self) -> Standing {
        self.standing
    }

    /// Before a try: in line again if a sent commit gave the turn up (not
    /// when [`Standing::Outside`]); then what the one ahead handed over, if
    /// this try decides on it and `usable` accepts it (`None`: read the
    /// store). In line, what is handed is taken either way: a try that reads
    /// afresh does not hand it on.
    pub async fn handed(&mut self, usable: impl FnOnce(&T) -> bool) -> Option<T> {
        if self.turn.is_none() && self.standing != Standing::Outside {
            self.turn = Some(self.locks.turn(self.id.clone()).await);
        }
        let handed = self.turn.as_mut().and_then(Turn::take_handed);
        handed.filter(|h| self.standing == Standing::InLine && usable(h))
    }

    /// A decision on `handed` records wrote nothing: they go on, unchanged,
    /// to the next in line at once, and the next try decides on a fresh read
    /// outside the line ([`Standing::Outside`]).
    pub fn give_way(&mut self, handed: T) {
        if let Some(mut t) = self.turn.take() {
            t.hand_over(handed);
        }
        self.standing = Standing::Outside;
    }

    /// A decision outside the line wants to write where the handed records
    /// wrote nothing: they were behind the store. Back in line (at the next
    /// try), on fresh reads from now on.
    pub fn rejoin(&mut self) {
        self.standing = Standing::Afresh;
    }

    /// A commit is sent: the next in line goes on with what it will have
    /// written (`None`: the next reads afresh), and this unit of work gives
    /// its turn up.
    pub fn sent(&mut self, committed: Option<T>) {
        if let (Some(mut t), Some(next)) = (self.turn.take(), committed) {
            t.hand_over(next);
        }
    }

    /// What was handed over cannot be trusted (a commit on it conflicted, a
    /// claim was taken): fresh reads from now on.
    pub fn read_afresh(&mut self) {
        self.standing = Standing::Afresh;
    }

    /// Whether this unit of work holds its record's turn now.
    #[cfg(test)]
    fn in_turn(&self) -> bool {
        self.turn.is_some()
    }
}

impl<T, K: Eq + Hash> RecordLocks<T, K> {
    fn shard(&self, id: &K) -> &Mutex<HashMap<K, Slot<T>>> {
        let i = (self.hasher.hash_one(id) as usize) % SHARDS;
        &self.shards[i]
    }

    /// Waits for `id`'s turn (at most [`MAX_WAIT`]).
    pub async fn turn(&self, id: K) -> Turn<'_, T, K>
    where
        K: Clone,
    {
        let slot = {
            let mut map = self
                .shard(&id)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(id.clone()).or_default())
        };
        let guard = tokio::time::timeout(MAX_WAIT, slot.lock_owned()).await.ok();
        Turn {
            locks: self,
            id,
            guard,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

impl<T, K: Eq + Hash> Drop for Turn<'_, T, K> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self
            .locks
            .shard(&self.id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Only the map's own reference left: nobody holds or waits.
        if map.get(&self.id).is_some_and(|s| Arc::strong_count(s) == 1) {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Turns on one record never overlap, and the map empties afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_turn_at_a_time_per_record_and_no_leftovers() {
        let locks = Arc::new(RecordLocks::<()>::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let id = Uuid::now_v7();
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _turn = locks.turn(id).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(locks.len(), 0);
    }

    /// Different records do not wait for each other.
    #[tokio::test]
    async fn other_records_go_at_once() {
        let locks = RecordLocks::<()>::default();
        let _a = locks.turn(Uuid::now_v7()).await;
        let b = tokio::time::timeout(Duration::from_millis(100), locks.turn(Uuid::now_v7())).await;
        assert!(b.is_ok());
        assert_eq!(locks.len(), 2);
    }

    /// Lines keyed by team (the audit heads') keep teams apart as well.
    #[tokio::test]
    async fn lines_keyed_by_team_keep_teams_apart() {
        let locks = RecordLocks::<u32, String>::default();
        let mut acme = locks.turn("acme".to_string()).await;
        let globex = locks.turn("globex".to_string());
        assert!(at_once(globex).await.is_some(), "another team goes at once");
        let next = locks.turn("acme".to_string());
        tokio::pin!(next);
        assert!(futures::poll!(&mut next).is_pending(), "in line");
        acme.hand_over(3);
        drop(acme);
        assert_eq!(next.await.take_handed(), Some(3));
        assert_eq!(locks.len(), 0);
    }

    /// What one turn hands over, the next takes, once; it goes when the
    /// queue empties.
    #[tokio::test]
    async fn a_turn_hands_over_to_the_next_and_nothing_outlives_the_queue() {
        let locks = RecordLocks::<u32>::default();
        let id = Uuid::now_v7();
        let mut first = locks.turn(id).await;
        assert_eq!(first.take_handed(), None);
        let waiting = locks.turn(id);
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending(), "in line");
        first.hand_over(7);
        drop(first);
        let mut second = waiting.await;
        assert_eq!(second.take_handed(), Some(7));
        assert_eq!(second.take_handed(), None);
        second.hand_over(8);
        drop(second);
        // Nobody was waiting: the entry, and what it held, are gone.
        assert_eq!(locks.len(), 0);
        assert_eq!(locks.turn(id).await.take_handed(), None);
    }

    /// Resolves `f` if it is ready at its first poll.
    async fn at_once<F: std::future::Future>(f: F) -> Option<F::Output> {
        tokio::pin!(f);
        match futures::poll!(&mut f) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
    }

    /// In line, a try decides on what the commit ahead will have written;
    /// its own sent commit hands on and gives the turn up, and the next try
    /// is in line again. What a try may not use is not handed on either.
    #[tokio::test]
    async fn in_line_a_place_decides_on_what_the_one_ahead_sent() {
        let locks = RecordLocks::<u32>::default();
        let id = Uuid::now_v7();
        let mut first = Place::join(&locks, id).await;
        assert_eq!(first.handed(|_| true).await, None, "nobody ahead");
        let second = Place::join(&locks, id);
        tokio::pin!(second);
        assert!(futures::poll!(&mut second).is_pending(), "in line");
        first.sent(Some(7));
        assert!(!first.in_turn());
        let mut second = second.await;
        assert_eq!(second.standing(), Standing::InLine);
        assert_eq!(second.handed(|_| true).await, Some(7));
        // After a conflict on fresh records: in line again, on what is
        // handed, but only when usable (taken all the same).
        second.sent(None);
        assert!(!second.in_turn());
        let mut third = Place::join(&locks, id).await;
        {
            let wait = second.handed(|h| *h != 8);
            tokio::pin!(wait);
            assert!(futures::poll!(&mut wait).is_pending(), "waits its turn");
            third.sent(Some(8));
            assert_eq!(wait.await, None, "not usable");
        }
        assert!(second.in_turn());
        assert_eq!(second.standing(), Standing::InLine);
        let fourth = locks.turn(id);
        tokio::pin!(fourth);
        assert!(futures::poll!(&mut fourth).is_pending());
        drop(second);
        assert_eq!(fourth.await.take_handed(), None, "not handed on");
    }

    /// A place that gives way hands the same records on at once and
    /// decides outside the line, without waiting; to write, it goes back in
    /// line on fresh reads.
    #[tokio::test]
    async fn a_place_that_gives_way_decides_outside_then_rejoins_afresh() {
        let locks = RecordLocks::<u32>::default();
        let id = Uuid::now_v7();
        let mut ahead = Place::join(&locks, id).await;
        let place = Place::join(&locks, id);
        let next = Place::join(&locks, id);
        tokio::pin!(place, next);
        assert!(futures::poll!(&mut place).is_pending());
        ahead.sent(Some(7));
        let mut place = place.await;
        assert!(futures::poll!(&mut next).is_pending(), "behind it");
        let handed = place.handed(|_| true).await.expect("handed");
        place.give_way(handed);
        assert_eq!(place.standing(), Standing::Outside);
        assert!(!place.in_turn());
        let mut next = next.await;
        assert_eq!(next.handed(|_| true).await, Some(7), "handed on as is");
        // Outside: a fresh read, at once, though `next` holds the turn.
        assert_eq!(at_once(place.handed(|_| true)).await, Some(None));
        assert!(!place.in_turn());
        // To write, back in line.
        place.rejoin();
        assert_eq!(place.standing(), Standing::Afresh);
        {
            let wait = place.handed(|_| true);
            tokio::pin!(wait);
            assert!(futures::poll!(&mut wait).is_pending(), "waits its turn");
            next.sent(Some(8));
            assert_eq!(wait.await, None, "afresh, whatever is handed");
        }
        assert!(place.in_turn());
        place.sent(None);
        assert_eq!(locks.len(), 0);
    }

    /// After a conflict on handed records, a place reads afresh, in line,
    /// whatever the one ahead hands over.
    #[tokio::test]
    async fn after_a_conflict_on_handed_records_a_place_reads_afresh() {
        let locks = RecordLocks::<u32>::default();
        let id = Uuid::now_v7();
        let mut place = Place::join(&locks, id).await;
        let other = Place::join(&locks, id);
        tokio::pin!(other);
        assert!(futures::poll!(&mut other).is_pending());
        place.sent(Some(1));
        place.read_afresh();
        assert_eq!(place.standing(), Standing::Afresh);
        let mut other = other.await;
        assert_eq!(other.handed(|_| true).await, Some(1));
        {
            let wait = place.handed(|_| true);
            tokio::pin!(wait);
            assert!(futures::poll!(&mut wait).is_pending(), "in line again");
            other.sent(Some(2));
            assert_eq!(wait.await, None);
        }
        assert!(place.in_turn());
        assert_eq!(place.standing(), Standing::Afresh);
    }
}
