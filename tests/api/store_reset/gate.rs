//! One store the instances of a test share and the test empties (a new
//! memory store in place of the old, or the key prefix's keys deleted
//! from Redis), seen by each instance through a gate of its own that
//! holds the commits it is told to until let go: the steps of a
//! write-back after a store reset, taken one at a time
//! (docs/operations.md#when-redis-comes-back-empty).
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chatgate::store::{keys, Op, SharedStore, StoreError};

use crate::helpers::*;
use crate::redis_support::TestPrefix;
use crate::wrapped::{Around, Call, Wrapped};

/// The store every instance of a test reads through its gate.
pub(crate) struct Shared {
    inner: RwLock<SharedStore>,
    backend: Backend,
    prefix: String,
}

impl Shared {
    /// A new store of `backend` under a key prefix of its own, and that
    /// prefix; `None` where Redis tests skip.
    pub(crate) async fn new(backend: Backend) -> Option<(Arc<Shared>, String)> {
        let (inner, prefix) = crate::outbox::own_store(backend).await?;
        let shared = Shared {
            inner: RwLock::new(inner),
            backend,
            prefix: prefix.clone(),
        };
        Some((Arc::new(shared), prefix))
    }

    /// The store loses everything, as a Redis restarted without its data.
    pub(crate) fn empty(&self) {
        match self.backend {
            Backend::Memory => {
                let fresh = chatgate::store::memory::MemoryStore::new();
                *self.inner.write().unwrap() = Arc::new(fresh);
            }
            Backend::Redis => TestPrefix::for_prefix(&self.prefix).cleanup(),
        }
    }

    fn now(&self) -> SharedStore {
        Arc::clone(&self.inner.read().unwrap())
    }
}

/// Which commits a gate holds.
type Holds = Box<dyn Fn(&[Op]) -> bool + Send + Sync>;

/// One instance's way to the [`Shared`] store.
pub(crate) struct Gate {
    store: Arc<Shared>,
    holds: Mutex<Option<Holds>>,
    /// Moved by each [`Gate::let_go`]: what a held commit waits for.
    released: tokio::sync::watch::Sender<u64>,
    /// Commits held now.
    held: AtomicUsize,
    /// Reads of the generation of the API teams alone: one a look.
    looks: AtomicUsize,
}

impl Gate {
    /// A gate to `store` that holds nothing.
    pub(crate) fn over(store: &Arc<Shared>) -> Arc<Wrapped<Gate>> {
        Wrapped::new(Gate {
            store: Arc::clone(store),
            holds: Mutex::new(None),
            released: tokio::sync::watch::Sender::new(0),
            held: AtomicUsize::new(0),
            looks: AtomicUsize::new(0),
        })
    }

    /// From now on, each commit `which` holds waits for [`Gate::let_go`].
    pub(crate) fn hold(&self, which: impl Fn(&[Op]) -> bool + Send + Sync + 'static) {
        *self.holds.lock().unwrap() = Some(Box::new(which));
    }

    /// The commits held go on, and none is held from now on.
    pub(crate) fn let_go(&self) {
        *self.holds.lock().unwrap() = None;
        self.released.send_modify(|n| *n += 1);
    }

    /// Waits until `count` commits are held, for at most 5 s.
    pub(crate) async fn holding(&self, count: usize, what: &str) {
        let mut waited = Duration::ZERO;
        while self.held.load(Ordering::SeqCst) < count {
            assert!(
                waited < Duration::from_secs(5),
                "{what}: not held after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
    }

    /// Waits until the instance starts another look at the API teams (its
    /// look under way, if any, has ended), for at most 5 s.
    pub(crate) async fn next_look(&self) {
        let seen = self.looks.load(Ordering::SeqCst);
        let mut waited = Duration::ZERO;
        while self.looks.load(Ordering::SeqCst) == seen {
            assert!(waited < Duration::from_secs(5), "no look after 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += Duration::from_millis(20);
        }
    }

    async fn pass(&self, ops: &[Op]) {
        let at = *self.released.borrow();
        let held = (self.holds.lock().unwrap().as_ref()).is_some_and(|holds| holds(ops));
        if !held {
            return;
        }
        self.held.fetch_add(1, Ordering::SeqCst);
        let mut released = self.released.subscribe();
        let _ = released.wait_for(|n| *n > at).await;
        self.held.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether `ops` write a key `which` names.
pub(crate) fn writes(ops: &[Op], which: impl Fn(&str) -> bool) -> bool {
    ops.iter()
        .any(|op| matches!(op, Op::Put { key, .. } if which(key)))
}

/// Whether `ops` write one of the records of API teams `ids`.
pub(crate) fn writes_a_team(ops: &[Op], ids: &[String]) -> bool {
    writes(ops, |key| ids.iter().any(|id| keys::api_team(id) == key))
}

/// Whether `ops` move the generation of the API teams.
pub(crate) fn moves_the_generation(ops: &[Op]) -> bool {
    writes(ops, |key| key == keys::api_teams_generation())
}

#[async_trait]
impl Around for Gate {
    fn inner(&self) -> SharedStore {
        self.store.now()
    }

    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        match call {
            Call::Get(read) if read.len() == 1 && read[0] == keys::api_teams_generation() => {
                self.looks.fetch_add(1, Ordering::SeqCst);
            }
            Call::Commit(ops) => self.pass(ops).await,
            _ => {}
        }
        Ok(())
    }
}
