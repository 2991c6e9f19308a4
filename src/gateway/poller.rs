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
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::challenges::{app, ladder};
use super::polls::{Ask, Polls};
use super::{Core, Live};
use crate::time::Clock;

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

impl Poller {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>) -> (Poller, Polls) {
        let (tx, rx) = mpsc::channel(WAITING);
        let polls = Polls::new(tx, clock.clone());
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
                    asks.spawn(run_ask(ask, self.live.current(), self.clock.clone()));
                }
                Some(_) = asks.join_next(), if !asks.is_empty() => {}
            }
        }
        asks.shutdown().await;
    }
}

/// One claimed entry's ask, with the gateway in force when it starts:
/// every kind of background ask is named here.
async fn run_ask(ask: Ask, core: Arc<Core>, clock: Arc<dyn Clock>) {
    match ask {
        Ask::AppPoll(claimed) => app::ask_app(&core, claimed, clock.as_ref()).await,
        Ask::LadderTimeOut {
            team,
            interaction,
            challenge,
        } => ladder::time_out_step(&core, &team, interaction, challenge, clock.as_ref()).await,
    }
}
