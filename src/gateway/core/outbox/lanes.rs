//! The dispatcher's lanes, one per destination of a team's items: their
//! bounds, and what a lane decides without I/O — whether a claimed item
//! starts, waits or goes back to the queue, what a delivery's end changes,
//! which items it brings forward, when it looks in the queue, and how long
//! an item handed back waits. The loop that acts on these is `dispatch.rs`
//! (its notes tell the whole story).
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::item::peek_channel;
use super::{Task, BATCH, LEASE, MAX_BACKOFF, WEBHOOK_TIMEOUT};
use crate::channels::SEND_TIMEOUT;
use crate::config::Team;
use crate::time::Timestamp;

/// Deliveries to one destination in flight at once, per team and instance.
pub(super) const LANE_IN_FLIGHT: usize = 256;
/// Items of one destination claimed and waiting for a free slot, at most:
/// a burst bound for a receiver that answers (a load test's notices) is
/// delivered without going back to the queue; one bound for a receiver
/// that hangs goes back after [`LONGEST_WAIT`].
pub(super) const LANE_WAITING: usize = 16 * BATCH;
/// Items one team's loop holds (in flight or waiting), at most: room for
/// three destinations that hang and the others beside them.
pub(super) const TEAM_HELD: usize = 4 * (LANE_IN_FLIGHT + LANE_WAITING);
/// How long an item may wait for a slot: it must still be delivered and
/// settled within its lease.
pub(super) const LONGEST_WAIT: Duration = Duration::from_secs(12);
const _: () = assert!(
    LONGEST_WAIT.as_secs() + WEBHOOK_TIMEOUT.as_secs() + 5 < LEASE.as_secs()
        && SEND_TIMEOUT.as_secs() <= WEBHOOK_TIMEOUT.as_secs()
);
/// An item handed back for want of a slot comes due again after half its
/// age, within these bounds: an item that has waited long waits longer,
/// so a receiver that stays slow costs a few claims per item, not one a
/// second.
pub(super) const DEFER_MIN: Duration = Duration::from_secs(1);
const DEFER_MAX: Duration = Duration::from_secs(30);
/// Items handed back to the queue that a lane remembers, to bring them
/// forward when its destination answers again (the oldest are forgotten:
/// they come due by their own backoff).
const LANE_LATER: usize = 10_000;
/// While a destination fails and nothing of it is under way, one of its
/// waiting items is brought forward this often: a receiver that comes back
/// is noticed within seconds, whatever the items' backoff.
const PROBE_EVERY: Duration = Duration::from_secs(3);
/// A destination that failed this recently (here, or an item that failed
/// anywhere and was claimed here) may have items of other instances
/// waiting out their backoff: a success looks for them (see
/// `TeamDispatch::look_for_waiting` in `dispatch.rs`).
const FAILED_RECENTLY: Duration = MAX_BACKOFF;
/// Such a look happens at most this often per destination.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Where a look in the queue goes on: the score and member it stopped at.
pub(super) type LookFrom = (i64, String);

/// Where an item goes: what it waits for when it waits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Destination {
    /// The team's event webhook.
    Webhook,
    /// A chat channel, by name.
    Channel(String),
}

impl Destination {
    /// Where the stored item `text` goes, read off it (see [`peek_channel`]).
    pub(super) fn of_stored(team: &Team, text: &str) -> Option<Self> {
        match peek_channel(text)? {
            None => team.webhook.as_ref().map(|_| Destination::Webhook),
            Some(channel) => Some(Destination::Channel(channel)),
        }
    }

    /// Where `task` is delivered; `None`: nowhere (an event of a team
    /// without a webhook is done once published).
    pub(super) fn of(team: &Team, task: &Task) -> Option<Self> {
        match task {
            Task::Event { .. } => team.webhook.as_ref().map(|_| Destination::Webhook),
            Task::Notice { channel, .. } => Some(Destination::Channel(channel.clone())),
        }
    }
}

/// How one delivery ended, as its lane needs to know.
#[derive(Default)]
pub(super) struct Ended {
    pub delivered: bool,
    /// Queued again (failed): its member and due time.
    pub requeued: Option<(String, i64)>,
}

/// What becomes of an item claimed for a lane.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Placement {
    /// A slot is free: deliver it now.
    Start,
    /// No slot, but room in the waiting line.
    Wait,
    /// Neither: back to the queue, a little later ([`defer_for`]).
    HandBack,
}

/// One destination's deliveries: how many are in flight, the claimed items
/// (`W`) waiting for a slot (with the time each was claimed), oldest
/// first, and the items this loop handed back to the queue for later
/// (failed, or no slot), with the due time it gave each.
pub(super) struct Lane<W> {
    pub in_flight: usize,
    pub waiting: VecDeque<(Timestamp, W)>,
    later: VecDeque<(String, i64)>,
    /// The items this loop handed back for want of a slot, with the due
    /// time it gave each: brought forward when the lane has room again.
    deferred: VecDeque<(String, i64)>,
    /// The lane has room again after a claim filled it.
    room: bool,
    /// The last delivery that ended failed.
    failing: bool,
    /// When an attempt last ended or a probe was last brought forward.
    last_try: Option<Instant>,
    /// A delivery succeeded with room in the lane: bring waiting items forward.
    forward: bool,
    /// A claim left this lane without room for another batch: claim again
    /// once it has.
    wants_room: bool,
    /// When a delivery to it last failed here, or an item that had failed
    /// before was claimed for it.
    failed_at: Option<Instant>,
    /// A success since it failed: look in the queue for its items waiting
    /// out their backoff, whoever handed them back.
    look: bool,
    /// When it last looked, and where the next look goes on (highest
    /// score first).
    looked_at: Option<Instant>,
    look_from: Option<LookFrom>,
}

impl<W> Default for Lane<W> {
    fn default() -> Self {
        Lane {
            in_flight: 0,
            waiting: VecDeque::new(),
            later: VecDeque::new(),
            deferred: VecDeque::new(),
            room: false,
            failing: false,
            last_try: None,
            forward: false,
            wants_room: false,
            failed_at: None,
            look: false,
            looked_at: None,
            look_from: None,
        }
    }
}

impl<W> Lane<W> {
    /// Whether a batch more might not fit in the waiting line.
    pub fn full(&self) -> bool {
        self.waiting.len() + BATCH > LANE_WAITING
    }

    /// Items claimed for this destination and not yet settled.
    pub fn held(&self) -> usize {
        self.in_flight + self.waiting.len()
    }

    /// An item was claimed for this lane (`failed_before`: an earlier
    /// attempt at it failed, here or elsewhere): where it goes.
    pub fn place(&mut self, failed_before: bool) -> Placement {
        if failed_before {
            self.failed_at = Some(Instant::now());
        }
        if self.in_flight < LANE_IN_FLIGHT {
            Placement::Start
        } else if self.waiting.len() < LANE_WAITING {
            Placement::Wait
        } else {
            Placement::HandBack
        }
    }

    /// Puts a claimed item in the waiting line; answers whether that left
    /// no room for another batch (the lane then calls for the next claim
    /// when it has: [`Lane::room_again`]).
    pub fn wait(&mut self, since: Timestamp, item: W) -> bool {
        self.waiting.push_back((since, item));
        if self.full() {
            self.wants_room = true;
            return true;
        }
        false
    }

    /// A delivery of this lane ended as `how` says: its slot is free, and
    /// what it tells of the destination is noted.
    pub fn ended(&mut self, how: Ended) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.last_try = Some(Instant::now());
        if how.delivered {
            self.forward |= self.failing && !self.later.is_empty();
            self.failing = false;
            self.look |= self
                .failed_at
                .is_some_and(|at| at.elapsed() < FAILED_RECENTLY);
        } else if how.requeued.is_some() {
            self.failing = true;
            self.failed_at = Some(Instant::now());
            self.handed_back(how.requeued);
        }
    }

    /// Whether a lane that a claim filled has room for a batch again (once:
    /// then claim).
    pub fn room_again(&mut self) -> bool {
        if self.wants_room && !self.full() {
            self.wants_room = false;
            self.room = true;
            return true;
        }
        false
    }

    /// Remembers an item handed back to the queue after a failure, due at `score`.
    fn handed_back(&mut self, requeued: Option<(String, i64)>) {
        remember(&mut self.later, requeued);
    }

    /// Remembers an item handed back for want of a slot, due at `score`.
    pub fn deferred(&mut self, requeued: Option<(String, i64)>) {
        remember(&mut self.deferred, requeued);
    }

    /// Up to `n` remembered failed items not yet due at `now`.
    fn take_later(&mut self, n: usize, now: i64) -> Vec<(String, i64)> {
        take_due_later(&mut self.later, n, now)
    }

    /// The items this lane handed back to bring forward to `now` (unix
    /// ms): after a success, as many as it has room for (its destination
    /// answers again: its backlog need not wait out each item's backoff);
    /// when a claim that filled it left room again, a batch of those
    /// deferred for want of a slot; while it fails with nothing under way,
    /// one every [`PROBE_EVERY`], to notice when it answers again.
    pub fn forward_now(&mut self, now: i64) -> Vec<(String, i64)> {
        let room = (LANE_IN_FLIGHT + LANE_WAITING).saturating_sub(self.held());
        if self.forward && !self.failing && (room >= BATCH / 2 || self.held() == 0) {
            self.forward = false;
            let mut taken = self.take_later(room, now);
            let left = room.saturating_sub(taken.len());
            taken.extend(take_due_later(&mut self.deferred, left, now));
            taken
        } else if std::mem::take(&mut self.room) && !self.failing {
            take_due_later(&mut self.deferred, BATCH, now)
        } else if self.failing
            && self.held() == 0
            && self.last_try.is_none_or(|t| t.elapsed() >= PROBE_EVERY)
        {
            let probe = self.take_later(1, now);
            if !probe.is_empty() {
                self.last_try = Some(Instant::now());
            }
            probe
        } else {
            Vec::new()
        }
    }

    /// Whether this lane is due a look in the queue for its items waiting
    /// out their backoff (after a success following a recent failure, at
    /// most every [`LOOK_EVERY`]): `Some(where the look goes on)`, `None`
    /// for no look now.
    pub fn due_a_look(&mut self) -> Option<Option<LookFrom>> {
        if !self.look || self.failing || self.looked_at.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return None;
        }
        self.look = false;
        self.looked_at = Some(Instant::now());
        Some(self.look_from.take())
    }

    /// A look ended: `next`, where the next one goes on (it stopped short
    /// of the items under a claim); else, when a look from the top found
    /// nothing waiting beyond a lease at all, the recent failure is over.
    pub fn looked(&mut self, next: Option<LookFrom>, nothing_waiting_from_top: bool) {
        match next {
            Some(from) => self.look_from = Some(from),
            None if nothing_waiting_from_top => self.failed_at = None,
            None => {}
        }
    }
}

fn remember(list: &mut VecDeque<(String, i64)>, requeued: Option<(String, i64)>) {
    if let Some(entry) = requeued {
        if list.len() == LANE_LATER {
            list.pop_front();
        }
        list.push_back(entry);
    }
}

/// Up to `n` remembered items not yet due at `now` (the others have come
/// due, or been claimed: they are forgotten).
fn take_due_later(list: &mut VecDeque<(String, i64)>, n: usize, now: i64) -> Vec<(String, i64)> {
    let mut taken = Vec::new();
    while taken.len() < n {
        let Some((member, score)) = list.pop_front() else {
            break;
        };
        if score > now {
            taken.push((member, score));
        }
    }
    taken
}

/// How long an item handed back for want of a slot waits: half its age,
/// within [`DEFER_MIN`] and [`DEFER_MAX`], ±20 %.
pub(super) fn defer_for(age: Duration) -> Duration {
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    (age / 2).clamp(DEFER_MIN, DEFER_MAX).mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestLane = Lane<()>;

    fn in_flight(n: usize) -> TestLane {
        Lane {
            in_flight: n,
            ..Lane::default()
        }
    }

    fn entry(n: i64) -> Option<(String, i64)> {
        Some((format!("m{n}"), n))
    }

    fn failed(n: i64) -> Ended {
        Ended {
            delivered: false,
            requeued: entry(n),
        }
    }

    fn delivered() -> Ended {
        Ended {
            delivered: true,
            requeued: None,
        }
    }

    #[test]
    fn a_claimed_item_starts_then_waits_then_goes_back() {
        let mut lane = TestLane::default();
        assert_eq!(lane.place(false), Placement::Start);
        lane.in_flight = LANE_IN_FLIGHT;
        assert_eq!(lane.place(false), Placement::Wait);
        let now = Timestamp::from_unix_millis(0);
        let mut filled = false;
        while lane.waiting.len() < LANE_WAITING {
            filled |= lane.wait(now, ());
        }
        assert!(
            filled,
            "a waiting line without room for a batch calls for room"
        );
        assert_eq!(lane.place(false), Placement::HandBack);
        assert_eq!(lane.held(), LANE_IN_FLIGHT + LANE_WAITING);
    }

    #[test]
    fn a_filled_lane_asks_for_a_claim_once_a_batch_fits_again() {
        let mut lane = TestLane::default();
        let now = Timestamp::from_unix_millis(0);
        while !lane.wait(now, ()) {}
        assert!(!lane.room_again(), "still full");
        lane.waiting.pop_front();
        assert!(lane.room_again());
        assert!(!lane.room_again(), "asked once");
    }

    #[test]
    fn a_success_after_failures_brings_the_failed_items_forward() {
        let mut lane = in_flight(2);
        lane.ended(failed(100));
        assert!(lane.failing);
        lane.ended(delivered());
        assert!(!lane.failing);
        assert_eq!(lane.forward_now(50), vec![("m100".to_string(), 100)]);
        assert!(lane.forward_now(50).is_empty(), "brought forward once");
    }

    #[test]
    fn items_already_due_are_not_brought_forward() {
        let mut lane = in_flight(3);
        lane.ended(failed(10));
        lane.ended(failed(100));
        lane.ended(delivered());
        assert_eq!(lane.forward_now(50), vec![("m100".to_string(), 100)]);
    }

    #[test]
    fn a_failing_lane_with_nothing_under_way_probes_one_item() {
        let mut lane = in_flight(1);
        lane.ended(failed(100));
        lane.deferred(entry(200));
        // Its last attempt ended just now: the probe waits.
        assert!(lane.forward_now(0).is_empty());
        lane.last_try = None;
        assert_eq!(lane.forward_now(0), vec![("m100".to_string(), 100)]);
        assert!(lane.forward_now(0).is_empty(), "one per PROBE_EVERY");
    }

    #[test]
    fn room_again_brings_the_deferred_forward() {
        let mut lane = TestLane::default();
        lane.deferred(entry(100));
        assert!(lane.forward_now(0).is_empty(), "no room asked for");
        lane.wants_room = true;
        assert!(lane.room_again());
        assert_eq!(lane.forward_now(0), vec![("m100".to_string(), 100)]);
    }

    #[test]
    fn a_lane_remembers_a_bounded_number_of_items() {
        let mut lane = TestLane::default();
        for n in 0..=LANE_LATER as i64 {
            lane.deferred(entry(n + 1));
        }
        let taken = take_due_later(&mut lane.deferred, usize::MAX, 0);
        assert_eq!(taken.len(), LANE_LATER);
        assert_eq!(taken[0].1, 2, "the oldest is forgotten");
    }

    #[test]
    fn a_success_after_a_recent_failure_looks_once_per_interval() {
        let mut lane = TestLane::default();
        assert_eq!(lane.due_a_look(), None);
        lane.in_flight = 2;
        lane.ended(failed(100));
        assert_eq!(lane.due_a_look(), None, "not while failing");
        lane.ended(delivered());
        assert_eq!(lane.due_a_look(), Some(None), "from the top");
        lane.looked(Some((5, "m5".into())), false);
        lane.look = true;
        assert_eq!(lane.due_a_look(), None, "within LOOK_EVERY");
        lane.looked_at = None;
        assert_eq!(lane.due_a_look(), Some(Some((5, "m5".into()))));
        lane.looked(None, true);
        assert!(
            lane.failed_at.is_none(),
            "nothing waiting: the failure is over"
        );
    }

    #[test]
    fn an_item_handed_back_waits_half_its_age_within_bounds() {
        let within =
            |d: Duration, lo: Duration, hi: Duration| d >= lo.mul_f64(0.8) && d <= hi.mul_f64(1.2);
        assert!(within(defer_for(Duration::ZERO), DEFER_MIN, DEFER_MIN));
        let ten = Duration::from_secs(10);
        assert!(within(defer_for(2 * ten), ten, ten));
        assert!(within(
            defer_for(Duration::from_secs(3600)),
            DEFER_MAX,
            DEFER_MAX
        ));
    }
}
