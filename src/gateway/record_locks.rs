//! One unit of work at a time per interaction, in this process.
//!
//! Compare-and-set keeps records exact, but N concurrent writers of one
//! record make N−1 of them re-read, back off and try again, round after
//! round: a brute force on one challenge, or a burst of callbacks on one
//! interaction, turned into retry storms with p99 in seconds. Queueing the
//! units of work of one record behind an async lock lets each commit at its
//! first attempt; compare-and-set stays, for other instances and for
//! writers outside [`Gateway::transact`](super::Gateway).
//!
//! The lock also hands over what the last unit of work commits (`T`, the
//! records with their new versions), so the next in line decides on it
//! without reading the store again, and goes on as soon as that commit is
//! sent (see `Gateway::transact`): on a hot record the commits follow each
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
use std::collections::HashMap;
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

pub struct RecordLocks<T> {
    shards: Vec<Mutex<HashMap<Uuid, Slot<T>>>>,
}

impl<T> Default for RecordLocks<T> {
    fn default() -> Self {
        RecordLocks {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// Held for the unit of work; on drop, the next in line goes, and the entry
/// is removed when nobody else holds or waits for it.
pub struct Turn<'a, T> {
    locks: &'a RecordLocks<T>,
    id: Uuid,
    guard: Option<OwnedMutexGuard<Option<T>>>,
}

impl<T> Turn<'_, T> {
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

impl<T> RecordLocks<T> {
    fn shard(&self, id: Uuid) -> &Mutex<HashMap<Uuid, Slot<T>>> {
        // UUIDv7's low bits are random.
        let i = (id.as_u128() as usize) % SHARDS;
        &self.shards[i]
    }

    /// Waits for `id`'s turn (at most [`MAX_WAIT`]).
    pub async fn turn(&self, id: Uuid) -> Turn<'_, T> {
        let slot = {
            let mut map = self
                .shard(id)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(map.entry(id).or_default())
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

impl<T> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self
            .locks
            .shard(self.id)
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
}
