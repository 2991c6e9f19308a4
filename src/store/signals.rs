//! Change signals (docs/architecture.md#change-signals): a commit that
//! writes a record a wait reads ([`super::keys::signalled`]: an
//! interaction, a subject, a recognized conversation) raises its key's
//! signal, and every [`Watch`] of that key in this process wakes. The
//! memory store raises them from its commit; the Redis store's commit
//! publishes them (`redis/commit.lua`) and one subscriber per process
//! hands them here (`redis/signals.rs`). While that subscription is down
//! no watch is given, and the watches there were wake as lost: a wait
//! answers what it knows rather than hang past its time.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The watches of this process, by the key each watches.
#[derive(Default)]
pub struct Signals {
    inner: Mutex<Inner>,
    /// How many watches there are: a commit raises nothing while none.
    watches: AtomicUsize,
    /// Told whenever the subscription comes up or goes down.
    turned: Notify,
}

#[derive(Default)]
struct Inner {
    /// No change reaches this process now (a store whose subscription is
    /// not up): no watch is given.
    down: bool,
    watched: HashMap<String, Vec<Arc<Waiter>>>,
}

/// One watch's wake-up: a permit kept when no one waits yet, so a change
/// between the watch and its wait is not lost.
#[derive(Default)]
struct Waiter {
    notify: Notify,
    lost: AtomicBool,
}

/// What woke a [`Watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woken {
    /// A commit wrote one of its keys.
    Changed,
    /// The signals stopped reaching this process: a change may be missed.
    Lost,
}

/// A watch of some records' keys, until dropped.
pub struct Watch {
    signals: Arc<Signals>,
    keys: Vec<String>,
    waiter: Arc<Waiter>,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signals").finish_non_exhaustive()
    }
}

impl Signals {
    /// A hub whose signals reach it from the start (the memory store's).
    pub fn up() -> Arc<Self> {
        Arc::new(Signals::default())
    }

    /// A hub that gives no watch until [`Signals::set_down`] says it is up.
    pub fn down() -> Arc<Self> {
        let s = Signals::default();
        s.lock().down = true;
        Arc::new(s)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A watch of `keys`, or `None` while signals do not reach this process.
    pub fn watch(self: &Arc<Self>, keys: &[String]) -> Option<Watch> {
        let waiter = Arc::new(Waiter::default());
        let mut inner = self.lock();
        if inner.down {
            return None;
        }
        for key in keys {
            inner
                .watched
                .entry(key.clone())
                .or_default()
                .push(Arc::clone(&waiter));
        }
        drop(inner);
        self.watches.fetch_add(1, Ordering::Relaxed);
        Some(Watch {
            signals: Arc::clone(self),
            keys: keys.to_vec(),
            waiter,
        })
    }

    /// A watch of `keys` once signals reach this process, waiting for that
    /// at most `within`; `None` when they do not by then.
    pub async fn watch_within(
        self: &Arc<Self>,
        keys: &[String],
        within: std::time::Duration,
    ) -> Option<Watch> {
        let until = tokio::time::Instant::now() + within;
        loop {
            let turned = self.turned.notified();
            if let Some(w) = self.watch(keys) {
                return Some(w);
            }
            tokio::time::timeout_at(until, turned).await.ok()?;
        }
    }

    /// A commit wrote `key`: every watch of it wakes.
    pub fn raise(&self, key: &str) {
        if self.watches.load(Ordering::Relaxed) == 0 {
            return;
        }
        if let Some(waiters) = self.lock().watched.get(key) {
            for w in waiters {
                w.notify.notify_one();
            }
        }
    }

    /// Whether a commit's writes are worth raising: some watch is there.
    pub fn watched(&self) -> bool {
        self.watches.load(Ordering::Relaxed) > 0
    }

    /// Signals stop (`true`) or start again (`false`) reaching this
    /// process. Stopping wakes every watch as [`Woken::Lost`] and forgets
    /// them: their waits answer what they know.
    pub fn set_down(&self, down: bool) {
        let mut inner = self.lock();
        inner.down = down;
        if down {
            for (_, waiters) in inner.watched.drain() {
                for w in waiters {
                    w.lost.store(true, Ordering::Relaxed);
                    w.notify.notify_one();
                }
            }
        }
        drop(inner);
        self.turned.notify_waiters();
    }

    /// How many keys are watched in this process (a test's view).
    pub fn keys_watched(&self) -> usize {
        self.lock().watched.len()
    }
}

impl Watch {
    /// Until a commit writes one of its keys (since the watch began), or
    /// the signals stop reaching this process.
    pub async fn changed(&self) -> Woken {
        self.waiter.notify.notified().await;
        match self.waiter.lost.load(Ordering::Relaxed) {
            true => Woken::Lost,
            false => Woken::Changed,
        }
    }

    /// Watches `key` too, from now on (`false`, nothing done, while
    /// signals do not reach this process).
    pub fn add(&mut self, key: &str) -> bool {
        if self.keys.iter().any(|k| k == key) {
            return true;
        }
        let mut inner = self.signals.lock();
        if inner.down || self.waiter.lost.load(Ordering::Relaxed) {
            return false;
        }
        let waiters = inner.watched.entry(key.to_string()).or_default();
        waiters.push(Arc::clone(&self.waiter));
        drop(inner);
        self.keys.push(key.to_string());
        true
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut inner = self.signals.lock();
        for key in &self.keys {
            if let Some(waiters) = inner.watched.get_mut(key) {
                waiters.retain(|w| !Arc::ptr_eq(w, &self.waiter));
                if waiters.is_empty() {
                    inner.watched.remove(key);
                }
            }
        }
        drop(inner);
        self.signals.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_raise_wakes_the_watches_of_its_key_and_no_other() {
        let hub = Signals::up();
        let a = hub.watch(&["a".into()]).unwrap();
        let b = hub.watch(&["b".into()]).unwrap();
        // Raised before the wait: kept.
        hub.raise("a");
        assert_eq!(a.changed().await, Woken::Changed);
        let quiet = tokio::time::timeout(Duration::from_millis(20), b.changed()).await;
        assert!(quiet.is_err(), "b was not written");
        drop((a, b));
        assert_eq!(hub.keys_watched(), 0);
        assert!(!hub.watched());
    }

    #[tokio::test]
    async fn a_lost_subscription_wakes_every_watch_and_gives_none_until_back() {
        let hub = Signals::down();
        assert!(hub.watch(&["a".into()]).is_none());
        hub.set_down(false);
        let mut w = hub.watch(&["a".into()]).unwrap();
        assert!(w.add("b"));
        hub.set_down(true);
        assert_eq!(w.changed().await, Woken::Lost);
        assert!(!w.add("c"));
        let a = ["a".to_string()];
        assert!(hub
            .watch_within(&a, Duration::from_millis(20))
            .await
            .is_none());
        let back = {
            let hub = Arc::clone(&hub);
            tokio::spawn(async move {
                hub.watch_within(&["a".into()], Duration::from_secs(5))
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        hub.set_down(false);
        assert!(back.await.unwrap().is_some());
    }
}
