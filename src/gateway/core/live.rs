//! The gateway in force: one `Arc` a reload replaces whole
//! (docs/operations.md#reloading-the-configuration), so whoever takes it
//! works with one configuration from start to end. Background workers take
//! it anew at each round; a request keeps the one it started with.
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use super::Core;

pub struct Live {
    current: ArcSwap<Core>,
    /// Counts the replacements, for workers that act on one (new teams).
    replaced: watch::Sender<u64>,
}

impl Live {
    pub fn new(gateway: Arc<Core>) -> Arc<Live> {
        Arc::new(Live {
            current: ArcSwap::new(gateway),
            replaced: watch::channel(0).0,
        })
    }

    /// The gateway in force now.
    pub fn current(&self) -> Arc<Core> {
        self.current.load_full()
    }

    /// Puts `gateway` in force for everyone who takes it from now on.
    pub fn replace(&self, gateway: Arc<Core>) {
        self.current.store(gateway);
        self.replaced.send_modify(|n| *n += 1);
    }

    /// How many times [`Live::replace`] has run: a worker that saw two
    /// generations apart missed a gateway in between.
    pub fn generation(&self) -> u64 {
        *self.replaced.borrow()
    }

    /// Wakes on every [`Live::replace`].
    pub fn replacements(&self) -> watch::Receiver<u64> {
        self.replaced.subscribe()
    }
}
