//! The poller ([`Poller`]): asks the providers what the sweeper claimed
//! — the identity providers' token endpoints for the app challenges'
//! polls (docs/api.md#approval-in-the-customers-app), and the next step's
//! channel for a delivery ladder whose step timed out
//! (docs/api.md#delivery-ladder) — beside the sweeper, so that no
//! provider's round trip ever holds up a time-out
//! (docs/architecture.md#time-outs). The sweeper claims a due entry
//! (`ciba.rs`, `ladder.rs`), then hands it here through [`Polls`]; a
//! bounded number of asks run at once, each reading the clock when it
//! asks and when it applies the answer.
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Gateway, Live};
use crate::time::{Clock, Timestamp};

/// One claimed poll's ask, run with the gateway in force and the clock.
pub(super) type Ask = Box<
    dyn FnOnce(Arc<Gateway>, Arc<dyn Clock>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send,
>;

/// Asks at once, at most; a claimed poll beyond them waits in the hand-off.
const IN_FLIGHT: usize = 32;
/// Claimed polls waiting for an ask, at most: the sweeper claims no more
/// (those entries stay at their lease and come due again).
const WAITING: usize = 256;

/// The poller, started and stopped by the app: runs the asks the sweeper
/// hands it, [`IN_FLIGHT`] at most at a time, each with the gateway in
/// force when it starts. Stopping abandons the asks in flight: their
/// entries already wait at the next poll's time.
pub struct Poller {
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    claimed: mpsc::Receiver<Ask>,
}

/// The sweeper's side of the poller: the hand-off, and the clock each
/// claim reads.
#[derive(Clone)]
pub struct Polls {
    claimed: mpsc::Sender<Ask>,
    clock: Arc<dyn Clock>,
}

/// A place in the hand-off, reserved before the claim that fills it.
pub(super) struct Slot(mpsc::OwnedPermit<Ask>);

impl Slot {
    pub(super) fn hand(self, ask: Ask) {
        self.0.send(ask);
    }
}

impl Polls {
    /// The time of the moment (not of the sweep).
    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A place for one claimed poll; `None` while the poller is full or
    /// stopped.
    pub(super) fn slot(&self) -> Option<Slot> {
        self.claimed.clone().try_reserve_owned().ok().map(Slot)
    }
}

impl Poller {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>) -> (Poller, Polls) {
        let (tx, rx) = mpsc::channel(WAITING);
        let polls = Polls {
            claimed: tx,
            clock: clock.clone(),
        };
        let poller = Poller {
            live,
            clock,
            claimed: rx,
        };
        (poller, polls)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut asks = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(ask) = self.claimed.recv(), if asks.len() < IN_FLIGHT => {
                    asks.spawn(ask(self.live.current(), self.clock.clone()));
                }
                Some(_) = asks.join_next(), if !asks.is_empty() => {}
            }
        }
        asks.shutdown().await;
    }
}
