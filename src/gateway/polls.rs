//! The hand-off from the sweeper to the poller (docs/architecture.md#time-outs):
//! what a claimed due entry asks ([`Ask`]: one variant per kind of
//! background ask, each run by `poller.rs`), and the lanes it waits in
//! (decision 0098, docs/decisions/0098-background-work-in-lanes-per-team.md):
//! one small lane per team and kind ([`Kind`]), each with its own bound
//! on the asks waiting and in flight, taken in turn. So a team whose
//! provider is slow or hangs fills only its own lanes, and a ladder's
//! time-out never waits behind an app poll. The sweeper reserves a
//! [`Slot`] in the team's lane before it claims, so a claim is never
//! made that the lane cannot take.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
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
/// waits at `due` (moved there at `claimed_at`, past the time the ask
/// may take).
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

/// The kinds of background ask, each in lanes of its own: the label
/// `kind` of `chatgate_background_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Ladder,
    AppPoll,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Ladder => "ladder",
            Kind::AppPoll => "app_poll",
        }
    }

    /// Asks of one team's lane of this kind running at once, at most.
    fn in_flight(self) -> usize {
        match self {
            Kind::Ladder => 8,
            Kind::AppPoll => 8,
        }
    }

    /// Asks of one team's lane claimed and waiting for their turn, at
    /// most: the sweeper claims no more (those entries stay at their
    /// lease and come due again).
    fn waiting(self) -> usize {
        match self {
            Kind::Ladder => 64,
            Kind::AppPoll => 16,
        }
    }
}

/// A lane's name: its team and kind.
pub(super) type LaneKey = (String, Kind);

/// One team's lane of one kind.
#[derive(Default)]
struct Lane {
    waiting: VecDeque<Ask>,
    /// Slots reserved and not yet handed (or dropped).
    reserved: usize,
    running: usize,
    /// In [`Board::turns`] (once at most).
    has_turn: bool,
}

impl Lane {
    fn idle(&self) -> bool {
        self.waiting.is_empty() && self.reserved == 0 && self.running == 0
    }
}

/// Every lane, and the order they take turns in.
#[derive(Default)]
struct Board {
    lanes: HashMap<LaneKey, Lane>,
    /// Lanes with asks waiting, in turn.
    turns: VecDeque<LaneKey>,
    stopped: bool,
}

impl Board {
    fn forget_if_idle(&mut self, key: &LaneKey) {
        if self.lanes.get(key).is_some_and(Lane::idle) {
            self.lanes.remove(key);
        }
    }
}

/// The lanes the sweeper hands asks to and the poller takes them from.
#[derive(Default)]
pub(super) struct Lanes {
    board: Mutex<Board>,
    /// Rung when an ask is handed, so that the poller looks.
    pub(super) bell: Notify,
}

/// `chatgate_background_queue{kind}` moves by `by` (each poller adds what
/// it holds, so the process's gauge is their sum).
fn gauge(kind: Kind, by: f64) {
    metrics::gauge!("chatgate_background_queue", "kind" => kind.as_str()).increment(by);
}

impl Lanes {
    fn board(&self) -> MutexGuard<'_, Board> {
        // A panic while the board is held leaves it whole: each change is
        // one field at a time.
        self.board.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next ask to start, by turns over the lanes with asks waiting
    /// and room to run one; `None` when none has.
    pub(super) fn next(&self) -> Option<(LaneKey, Ask)> {
        let mut b = self.board();
        for _ in 0..b.turns.len() {
            let key = b.turns.pop_front()?;
            let Some(lane) = b.lanes.get_mut(&key) else {
                continue;
            };
            if lane.waiting.is_empty() {
                lane.has_turn = false;
                continue;
            }
            if lane.running >= key.1.in_flight() {
                b.turns.push_back(key);
                continue;
            }
            let Some(ask) = lane.waiting.pop_front() else {
                continue;
            };
            lane.running += 1;
            if lane.waiting.is_empty() {
                lane.has_turn = false;
            } else {
                b.turns.push_back(key.clone());
            }
            gauge(key.1, -1.0);
            return Some((key, ask));
        }
        None
    }

    /// An ask of lane `key` ended.
    pub(super) fn finished(&self, key: &LaneKey) {
        let mut b = self.board();
        if let Some(lane) = b.lanes.get_mut(key) {
            lane.running = lane.running.saturating_sub(1);
        }
        b.forget_if_idle(key);
    }

    /// Refuses every slot from now on and drops what waits (its entries
    /// already wait at their next time).
    pub(super) fn stop(&self) {
        let mut b = self.board();
        b.stopped = true;
        for (key, lane) in b.lanes.iter_mut() {
            gauge(key.1, -(lane.waiting.len() as f64));
            lane.waiting.clear();
        }
        b.turns.clear();
    }
}

/// The sweeper's side of the poller: the lanes, the clock each claim
/// reads, and the team whose due entries it is sweeping.
#[derive(Clone)]
pub struct Polls {
    lanes: Arc<Lanes>,
    clock: Arc<dyn Clock>,
    team: Option<Arc<str>>,
}

/// A place in one team's lane, reserved before the claim that fills it;
/// given back if dropped unused.
pub(super) struct Slot {
    lanes: Arc<Lanes>,
    key: Option<LaneKey>,
}

impl Slot {
    pub(super) fn hand(mut self, ask: Ask) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut b = self.lanes.board();
        let kind = key.1;
        let lane = b.lanes.entry(key.clone()).or_default();
        lane.reserved = lane.reserved.saturating_sub(1);
        if b.stopped {
            b.forget_if_idle(&key);
            return;
        }
        let lane = b.lanes.entry(key.clone()).or_default();
        lane.waiting.push_back(ask);
        if !lane.has_turn {
            lane.has_turn = true;
            b.turns.push_back(key);
        }
        drop(b);
        gauge(kind, 1.0);
        self.lanes.bell.notify_one();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            let mut b = self.lanes.board();
            if let Some(lane) = b.lanes.get_mut(&key) {
                lane.reserved = lane.reserved.saturating_sub(1);
            }
            b.forget_if_idle(&key);
        }
    }
}

impl Polls {
    pub(super) fn new(lanes: Arc<Lanes>, clock: Arc<dyn Clock>) -> Self {
        Polls {
            lanes,
            clock,
            team: None,
        }
    }

    /// The same, for the due entries of `team`.
    pub(super) fn for_team(&self, team: &str) -> Polls {
        Polls {
            team: Some(team.into()),
            ..self.clone()
        }
    }

    /// The time of the moment (not of the sweep).
    pub(super) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// A place in this team's lane of ladder time-outs (`ladder.rs`);
    /// `None` while that lane is full or the poller stopped.
    pub(super) fn slot(&self) -> Option<Slot> {
        self.slot_for(Kind::Ladder)
    }

    /// A place in this team's lane of `kind`; `None` while that lane is
    /// full (other teams' lanes do not count) or the poller stopped.
    pub(super) fn slot_for(&self, kind: Kind) -> Option<Slot> {
        let team = self.team.as_deref()?;
        let key = (team.to_string(), kind);
        let mut b = self.lanes.board();
        if b.stopped {
            return None;
        }
        let lane = b.lanes.entry(key.clone()).or_default();
        if lane.waiting.len() + lane.reserved >= kind.waiting() {
            b.forget_if_idle(&key);
            return None;
        }
        lane.reserved += 1;
        Some(Slot {
            lanes: self.lanes.clone(),
            key: Some(key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(team: &str) -> Ask {
        Ask::LadderTimeOut {
            team: team.into(),
            interaction: Uuid::nil(),
            challenge: Uuid::nil(),
        }
    }

    fn polls() -> (Arc<Lanes>, Polls) {
        let lanes = Arc::new(Lanes::default());
        let clock = Arc::new(crate::time::ManualClock::new(Timestamp::from_unix_seconds(
            0,
        )));
        (lanes.clone(), Polls::new(lanes, clock))
    }

    #[test]
    fn a_full_lane_refuses_only_its_own_team_and_kind() {
        let (_, polls) = polls();
        let a = polls.for_team("a");
        let held: Vec<Slot> = (0..Kind::AppPoll.waiting())
            .map(|_| a.slot_for(Kind::AppPoll).unwrap())
            .collect();
        assert!(a.slot_for(Kind::AppPoll).is_none(), "a's app lane is full");
        assert!(a.slot().is_some(), "a's ladder lane is its own");
        assert!(polls.for_team("b").slot_for(Kind::AppPoll).is_some());
        drop(held);
        assert!(
            a.slot_for(Kind::AppPoll).is_some(),
            "dropped slots come back"
        );
        assert!(polls.slot().is_none(), "no slot without a team");
    }

    #[test]
    fn lanes_take_turns_and_each_runs_its_bound_at_most() {
        let (lanes, polls) = polls();
        for team in ["a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "b"] {
            polls.for_team(team).slot().unwrap().hand(ask(team));
        }
        let mut started = Vec::new();
        while let Some((key, _)) = lanes.next() {
            started.push(key.0);
        }
        assert_eq!(started[..2], ["a".to_string(), "b".to_string()], "in turn");
        assert_eq!(
            started.len(),
            Kind::Ladder.in_flight() + 1,
            "a runs its bound"
        );
        lanes.finished(&("a".into(), Kind::Ladder));
        assert_eq!(lanes.next().map(|(k, _)| k.0), Some("a".into()));
        assert!(lanes.next().is_none());
    }

    #[test]
    fn the_metric_names_every_kind() {
        let names = [Kind::Ladder, Kind::AppPoll].map(Kind::as_str);
        assert_eq!(names, crate::telemetry::BACKGROUND_KINDS);
    }

    #[test]
    fn a_stopped_poller_takes_nothing() {
        let (lanes, polls) = polls();
        let a = polls.for_team("a");
        a.slot().unwrap().hand(ask("a"));
        lanes.stop();
        assert!(lanes.next().is_none());
        assert!(a.slot().is_none());
    }
}
