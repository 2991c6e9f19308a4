//! The waiting calls' budget (docs/operations.md#waiting-calls): the
//! requests that hold their connection while they wait — an MCP
//! `get_verification` waiting for a change, and the requests that wait on
//! a team's provider (`team_gate.rs`) — hold at most `server.max_waits`
//! connections together (a quarter of `max_connections` at most), and one
//! API key's `get_verification` calls at most `server.max_waits_per_key`.
//! With the event streams' half (`events::slots`), a quarter of the
//! connections is always left to the customers' pages, `/healthz`,
//! `/readyz` and every request that waits on nobody. A place is taken
//! without waiting for one: a call that finds none answers at once, or is
//! refused at once, as its endpoint says. A provider's request that finds
//! the budget spent takes the place of the oldest `get_verification`
//! wait, which then answers at once as it would have past the budget: a
//! bot's waits never refuse another team's login. The one budget lives
//! as long as the process (a reload keeps it; a `[server]` change needs a
//! restart).
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Waiting calls by (team, key id): key ids are unique within a team only.
type ByKey = Arc<Mutex<HashMap<(Arc<str>, Arc<str>), usize>>>;

/// The `get_verification` waits whose place a provider's request may
/// take, oldest first.
type Yielding = Arc<Mutex<BTreeMap<u64, Arc<Handover>>>>;

/// The connections waiting calls hold, and each API key's share.
pub struct Waiting {
    size: usize,
    all: Arc<Semaphore>,
    per_key: usize,
    keys: ByKey,
    yielding: Yielding,
    next: AtomicU64,
}

/// A place in all, counted in `chatgate_waiting_calls` while it is held,
/// by whichever call holds it.
#[derive(Debug)]
struct Permit {
    _held: OwnedSemaphorePermit,
}

impl Drop for Permit {
    fn drop(&mut self) {
        metrics::gauge!("chatgate_waiting_calls").decrement(1.0);
    }
}

/// One waiting call's place in all; given back when dropped.
#[derive(Debug)]
pub struct Place {
    _all: Permit,
}

/// A `get_verification` wait's place in all, until a provider's request
/// takes it (and tells the wait to end).
struct Handover {
    permit: Mutex<Option<Permit>>,
    ended: Notify,
}

/// One waiting call of an API key: its key's place and one in all.
pub struct KeyPlace {
    handover: Arc<Handover>,
    order: u64,
    yielding: Yielding,
    keys: ByKey,
    id: (Arc<str>, Arc<str>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counts: still right after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Waiting {
    /// `all` places in all (at least 1), `per_key` for each API key.
    pub fn new(all: usize, per_key: usize) -> Self {
        Waiting {
            size: all.max(1),
            all: Arc::new(Semaphore::new(all.max(1))),
            per_key,
            keys: Arc::default(),
            yielding: Arc::default(),
            next: AtomicU64::new(0),
        }
    }

    fn permit(&self) -> Option<Permit> {
        let permit = Arc::clone(&self.all).try_acquire_owned().ok()?;
        metrics::gauge!("chatgate_waiting_calls").increment(1.0);
        Some(Permit { _held: permit })
    }

    /// A place in all for a provider's request: a free one, else the
    /// oldest `get_verification` wait's, which is told to end.
    pub fn any(&self) -> Option<Place> {
        if let Some(permit) = self.permit() {
            return Some(Place { _all: permit });
        }
        let mut yielding = lock(&self.yielding);
        while let Some((_, wait)) = yielding.pop_first() {
            if let Some(permit) = lock(&wait.permit).take() {
                wait.ended.notify_one();
                return Some(Place { _all: permit });
            }
        }
        None
    }

    /// A place for one more waiting call of `key` of `team`, if its key
    /// has fewer than `max_waits_per_key` and one in all is free.
    pub fn for_key(&self, team: &Arc<str>, key: &Arc<str>) -> Option<KeyPlace> {
        let id = (Arc::clone(team), Arc::clone(key));
        let mut keys = lock(&self.keys);
        if keys.get(&id).copied().unwrap_or(0) >= self.per_key {
            return None;
        }
        let handover = Arc::new(Handover {
            permit: Mutex::new(Some(self.permit()?)),
            ended: Notify::new(),
        });
        *keys.entry(id.clone()).or_insert(0) += 1;
        let order = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.yielding).insert(order, Arc::clone(&handover));
        Some(KeyPlace {
            handover,
            order,
            yielding: Arc::clone(&self.yielding),
            keys: Arc::clone(&self.keys),
            id,
        })
    }

    /// Waiting calls now, of every kind.
    pub fn held(&self) -> usize {
        self.size - self.all.available_permits()
    }
}

impl KeyPlace {
    /// Until a provider's request took this wait's place: the wait then
    /// ends, as one past the budget would.
    pub async fn taken(&self) {
        self.handover.ended.notified().await;
    }
}

impl Drop for KeyPlace {
    fn drop(&mut self) {
        lock(&self.yielding).remove(&self.order);
        lock(&self.handover.permit).take();
        let mut keys = lock(&self.keys);
        if let Some(n) = keys.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                keys.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_its_share_and_all_together_the_budget() {
        let waiting = Waiting::new(5, 2);
        let (acme, globex) = (Arc::from("acme"), Arc::from("globex"));
        let (a, b) = (Arc::from("bot"), Arc::from("bot-2"));
        let a1 = waiting.for_key(&acme, &a).unwrap();
        let _a2 = waiting.for_key(&acme, &a).unwrap();
        assert!(waiting.for_key(&acme, &a).is_none(), "past its key's share");
        // The same key id in another team is another key.
        let _g = waiting.for_key(&globex, &a).unwrap();
        let _b = waiting.for_key(&acme, &b).unwrap();
        let provider = waiting.any().unwrap();
        assert_eq!(waiting.held(), 5);
        assert!(waiting.for_key(&acme, &b).is_none(), "no place in all");
        drop(a1);
        let again = waiting.for_key(&acme, &a);
        assert!(again.is_some(), "a place comes back");
        drop(provider);
        assert_eq!(waiting.held(), 4);
        drop(again);
        assert_eq!(waiting.held(), 3);
    }

    #[tokio::test]
    async fn a_provider_s_request_takes_the_oldest_wait_s_place() {
        let waiting = Waiting::new(2, 64);
        let (acme, bot) = (Arc::from("acme"), Arc::from("bot"));
        let oldest = waiting.for_key(&acme, &bot).unwrap();
        let newer = waiting.for_key(&acme, &bot).unwrap();
        let login = waiting.any().expect("the oldest wait's place");
        assert_eq!(waiting.held(), 2, "a place changed hands: none more");
        // The oldest wait is told to end.
        tokio::time::timeout(std::time::Duration::from_secs(5), oldest.taken())
            .await
            .expect("told");
        let second = waiting.any().expect("the newer wait's place");
        drop((oldest, newer));
        assert_eq!(waiting.held(), 2, "the logins hold both");
        assert!(waiting.any().is_none(), "no wait left to end");
        assert!(waiting.for_key(&acme, &bot).is_none());
        drop((login, second));
        assert_eq!(waiting.held(), 0);
    }
}
