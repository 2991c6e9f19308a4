//! The hand-off from the sweeper to the poller (docs/architecture.md#time-outs):
//! what a claimed due entry asks ([`Ask`]: one variant per kind of
//! background ask, each run by `poller.rs`), and the bounded queue it
//! waits in. The sweeper reserves a [`Slot`] before it claims, so a claim
//! is never made that the poller cannot take.
use std::sync::Arc;

use tokio::sync::mpsc;
use uuid::Uuid;

use super::records::StoredPoll;
use crate::time::{Clock, Timestamp};

/// A claimed due entry, for the poller to act on.
pub(super) enum Ask {
    /// Ask the identity provider about an app challenge
    /// (docs/api.md#approval-in-the-customers-app).
    AppPoll(ClaimedPoll),
    /// Move a delivery ladder whose current step timed out
    /// (docs/api.md#delivery-ladder).
    LadderTimeOut {
        team: String,
        interaction: Uuid,
        challenge: Uuid,
    },
}

/// A poll the sweeper claimed, for the poller to ask: its entry `member`
/// waits at `due` (the next poll's time, moved there at `claimed_at`).
pub(super) struct ClaimedPoll {
    pub team: String,
    pub id: Uuid,
    pub cid: Uuid,
    pub member: String,
    pub claimed_at: Timestamp,
    pub due: Timestamp,
    pub expires_at: Timestamp,
    pub poll: StoredPoll,
    pub version: u64,
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
    pub(super) fn new(claimed: mpsc::Sender<Ask>, clock: Arc<dyn Clock>) -> Self {
        Polls { claimed, clock }
    }

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
