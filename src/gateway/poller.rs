//! The poller ([`Poller`]): asks the providers what the sweeper claimed
//! — the identity providers' token endpoints for the app challenges'
//! polls (docs/api.md#approval-in-the-customers-app), and the next step's
//! channel for a delivery ladder whose step timed out
//! (docs/api.md#delivery-ladder) — beside the sweeper, so that no
//! provider's round trip ever holds up a time-out
//! (docs/architecture.md#time-outs). The sweeper claims a due entry
//! (`app.rs`, `ladder.rs`), then hands it here through [`Polls`] into
//! its team's lane (`polls.rs`); the lanes take turns, each running a
//! bounded number of asks at once, so that one team's slow provider
//! holds up no other team (decision 0098). Each ask reads the clock when
//! it asks and when it applies the answer.
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::challenges::{app, ladder};
use super::polls::{Ask, LaneKey, Lanes, Polls};
use super::{Core, Live};
use crate::time::Clock;

/// Asks running at once over every lane, at most: a bound on the
/// process's work, far above what the lanes' own bounds let one team take.
const IN_FLIGHT: usize = 1024;

/// The poller, started and stopped by the app: runs the asks the sweeper
/// hands it, lane by lane in turn, each with the gateway in force when it
/// starts. Stopping abandons the asks in flight and those waiting: their
/// entries already wait in the due queue, a poll's at its next turn and a
/// ladder's at its lease, for whichever instance comes next.
pub struct Poller {
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    lanes: Arc<Lanes>,
}

impl Poller {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>) -> (Poller, Polls) {
        let lanes = Arc::new(Lanes::default());
        let polls = Polls::new(lanes.clone(), clock.clone());
        let poller = Poller { live, clock, lanes };
        (poller, polls)
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut asks = JoinSet::new();
        let mut lane_of: HashMap<tokio::task::Id, LaneKey> = HashMap::new();
        loop {
            while asks.len() < IN_FLIGHT {
                let Some((key, ask)) = self.lanes.next() else {
                    break;
                };
                let run = run_ask(ask, self.live.current(), self.clock.clone());
                lane_of.insert(asks.spawn(run).id(), key);
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.lanes.bell.notified() => {}
                Some(done) = asks.join_next_with_id(), if !asks.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => e.id(),
                    };
                    if let Some(key) = lane_of.remove(&id) {
                        self.lanes.finished(&key);
                    }
                }
            }
        }
        self.lanes.stop();
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
