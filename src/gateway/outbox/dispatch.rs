//! The outbox's dispatcher: in every instance, one loop per team, so that
//! a slow receiver only ever slows itself.
//!
//! A team's loop claims due items with a lease, publishes their events at
//! once (the live stream gets them in the order they came due, whatever
//! their webhook does), and starts each item's delivery on its own. An
//! item is settled — removed, or rescheduled with backoff — as soon as its
//! own delivery ends, not with others. The loop keeps claiming while
//! deliveries are in flight, within two bounds:
//!
//! - per destination (the team's webhook; each chat channel):
//!   [`LANE_IN_FLIGHT`] deliveries at once, and up to [`LANE_WAITING`]
//!   more claimed and waiting for a free slot. Past that, a claimed item of
//!   a busy destination is handed back to the queue for a little later
//!   ([`defer_for`]), so the items behind it — for other destinations —
//!   are still claimed. A waiting item that could not finish within its
//!   lease is handed back too.
//! - per team: [`TEAM_HELD`] items in flight or waiting, at most.
//!
//! A claim is under way while deliveries end: each one that ends starts
//! the next item waiting for its slot at once, whatever the store's round
//! trip. A claim that came back full is followed by another at once,
//! unless it left a lane without room for a further batch: that lane asks
//! for the next claim when a batch fits again. So a backlog for one
//! destination is claimed as fast as it is delivered, and not claimed
//! only to be handed back.
//!
//! A lane remembers the items it handed back to the queue (failed, or no
//! slot). Those handed back for want of a slot are brought forward when
//! the lane has room again. When its destination answers again after
//! failures, the failed ones are brought forward to now, as many as the
//! lane has room for, rather than each waiting out its own backoff; while
//! it fails, one is tried every [`PROBE_EVERY`], so a receiver that comes
//! back is noticed within seconds. Another instance's items for the same
//! destination (or this one's from before a restart) are not remembered
//! here: after a success to a destination that failed recently, the loop
//! also looks in the queue for its items waiting beyond a lease
//! ([`TeamDispatch::look_for_waiting`]: one read of at most [`LOOK_PAGE`]
//! entries per destination and [`LOOK_EVERY`]) and brings them forward
//! too. Bringing forward moves only an entry still as it was handed back
//! or read (`Store::queue_move_unchanged`): one delivered meanwhile is
//! never brought back, one claimed keeps its lease.
//!
//! Settling goes through one task per team that commits every settlement
//! ready at that moment together: one commit per item when the outbox is
//! quiet, fewer under load.
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::item::peek_channel;
use super::{Batch, Claimed, Handled, Task, BATCH, LEASE, MAX_BACKOFF, POLL, WEBHOOK_TIMEOUT};
use crate::channels::SEND_TIMEOUT;
use crate::config::Team;
use crate::error::{Error, Result};
use crate::gateway::{Gateway, Live};
use crate::store::{keys, Commit, IndexEntry, Op, StoreError};
use crate::time::{Clock, Timestamp};

/// Deliveries to one destination in flight at once, per team and instance.
const LANE_IN_FLIGHT: usize = 256;
/// Items of one destination claimed and waiting for a free slot, at most:
/// a burst bound for a receiver that answers (a load test's notices) is
/// delivered without going back to the queue; one bound for a receiver
/// that hangs goes back after [`LONGEST_WAIT`].
const LANE_WAITING: usize = 16 * BATCH;
/// Items one team's loop holds (in flight or waiting), at most: room for
/// three destinations that hang and the others beside them.
const TEAM_HELD: usize = 4 * (LANE_IN_FLIGHT + LANE_WAITING);
/// How long an item may wait for a slot: it must still be delivered and
/// settled within its lease.
const LONGEST_WAIT: Duration = Duration::from_secs(12);
const _: () = assert!(
    LONGEST_WAIT.as_secs() + WEBHOOK_TIMEOUT.as_secs() + 5 < LEASE.as_secs()
        && SEND_TIMEOUT.as_secs() <= WEBHOOK_TIMEOUT.as_secs()
);
/// An item handed back for want of a slot comes due again after half its
/// age, within these bounds: an item that has waited long waits longer,
/// so a receiver that stays slow costs a few claims per item, not one a
/// second.
const DEFER_MIN: Duration = Duration::from_secs(1);
const DEFER_MAX: Duration = Duration::from_secs(30);
/// Items handed back to the queue that a lane remembers, to bring them
/// forward when its destination answers again (the oldest are forgotten:
/// they come due by their own backoff).
const LANE_LATER: usize = 10_000;
/// While a destination fails and nothing of it is under way, one of its
/// waiting items is brought forward this often: a receiver that comes back
/// is noticed within seconds, whatever the items' backoff.
const PROBE_EVERY: Duration = Duration::from_secs(3);
/// How long settling waits for an event to reach the log before it puts
/// the item back.
const LOG_WAIT: Duration = Duration::from_secs(10);
/// A destination that failed this recently (here, or an item that failed
/// anywhere and was claimed here) may have items of other instances
/// waiting out their backoff: a success looks for them (see
/// [`TeamDispatch::look_for_waiting`]).
const FAILED_RECENTLY: Duration = MAX_BACKOFF;
/// Such a look happens at most this often per destination, and reads at
/// most [`LOOK_PAGE`] queue entries.
const LOOK_EVERY: Duration = Duration::from_secs(1);
const LOOK_PAGE: usize = BATCH;
/// Settlements committed together, at most.
const SETTLE_BATCH: usize = 256;

/// Where a look in the queue goes on: the score and member it stopped at.
type LookFrom = (i64, String);

/// Where an item goes: what it waits for when it waits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Destination {
    /// The team's event webhook.
    Webhook,
    /// A chat channel, by name.
    Channel(String),
}

impl Destination {
    /// Where the stored item `text` goes, read off it (see [`peek_channel`]).
    fn of_stored(team: &Team, text: &str) -> Option<Self> {
        match peek_channel(text)? {
            None => team.webhook.as_ref().map(|_| Destination::Webhook),
            Some(channel) => Some(Destination::Channel(channel)),
        }
    }

    /// Where `task` is delivered; `None`: nowhere (an event of a team
    /// without a webhook is done once published).
    fn of(team: &Team, task: &Task) -> Option<Self> {
        match task {
            Task::Event { .. } => team.webhook.as_ref().map(|_| Destination::Webhook),
            Task::Notice { channel, .. } => Some(Destination::Channel(channel.clone())),
        }
    }
}

/// One destination's deliveries: how many are in flight, the claimed items
/// waiting for a slot (with the time each was claimed), oldest first, and
/// the items this loop handed back to the queue for later (failed, or no
/// slot), with the due time it gave each.
#[derive(Default)]
struct Lane {
    in_flight: usize,
    waiting: VecDeque<(Timestamp, Claimed)>,
    later: VecDeque<(String, i64)>,
    /// The items this loop handed back for want of a slot, with the due
    /// time it gave each: brought forward when the lane has room again.
    deferred: VecDeque<(String, i64)>,
    /// The lane has room again after a claim filled it.
    room: bool,
    /// The last delivery that ended failed.
    failing: bool,
    /// When an attempt last ended or a probe was last brought forward.
    last_try: Option<std::time::Instant>,
    /// A delivery succeeded with room in the lane: bring waiting items forward.
    forward: bool,
    /// A claim left this lane without room for another batch: claim again
    /// once it has.
    wants_room: bool,
    /// When a delivery to it last failed here, or an item that had failed
    /// before was claimed for it.
    failed_at: Option<std::time::Instant>,
    /// A success since it failed: look in the queue for its items waiting
    /// out their backoff, whoever handed them back.
    look: bool,
    /// When it last looked, and where the next look goes on (highest
    /// score first).
    looked_at: Option<std::time::Instant>,
    look_from: Option<LookFrom>,
}

impl Lane {
    /// Whether a batch more might not fit in the waiting line.
    fn full(&self) -> bool {
        self.waiting.len() + BATCH > LANE_WAITING
    }

    /// Items claimed for this destination and not yet settled.
    fn held(&self) -> usize {
        self.in_flight + self.waiting.len()
    }

    /// Remembers an item handed back to the queue after a failure, due at `score`.
    fn handed_back(&mut self, requeued: Option<(String, i64)>) {
        remember(&mut self.later, requeued);
    }

    /// Remembers an item handed back for want of a slot, due at `score`.
    fn deferred(&mut self, requeued: Option<(String, i64)>) {
        remember(&mut self.deferred, requeued);
    }

    /// Up to `n` remembered failed items not yet due at `now`.
    fn take_later(&mut self, n: usize, now: i64) -> Vec<(String, i64)> {
        take_due_later(&mut self.later, n, now)
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

/// Runs this instance's dispatcher until `shutdown` resolves: a loop per
/// team. What it has not delivered stays in the store for the next look,
/// or another instance (its claims come due again after their lease).
pub async fn run_dispatcher(
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // Dropped at the end: every team's loop and its deliveries stop.
    let mut teams = JoinSet::new();
    let mut started = std::collections::HashSet::new();
    let mut replaced = live.replacements();
    loop {
        // A team a reload added gets its loop; a removed team's loop finds
        // no team and hands nothing out (its items wait in the store).
        for id in live.current().config.teams.keys() {
            if started.insert(id.clone()) {
                let dispatch = TeamDispatch::new(Arc::clone(&live), Arc::clone(&clock), id.clone());
                teams.spawn(dispatch.run());
            }
        }
        tokio::select! {
            () = &mut shutdown => return,
            changed = replaced.changed() => if changed.is_err() {
                shutdown.await;
                return;
            },
        }
    }
}

/// A claim under way: how many it asked for, and the batch.
type Claiming =
    std::pin::Pin<Box<dyn std::future::Future<Output = (usize, Result<Option<Batch>>)> + Send>>;

/// The answer of the claim under way (never, when none is).
async fn until_claimed(claiming: &mut Option<Claiming>) -> (usize, Result<Option<Batch>>) {
    match claiming.as_mut() {
        Some(claim) => claim.await,
        None => std::future::pending().await,
    }
}

/// One team's loop (see the module's notes).
struct TeamDispatch {
    /// The gateway in force, and the one this round took from it.
    live: Arc<Live>,
    gw: Arc<Gateway>,
    clock: Arc<dyn Clock>,
    team: String,
    queue: String,
    lanes: HashMap<Destination, Lane>,
    /// Items in flight or waiting.
    held: usize,
    /// Deliveries under way (each answers how it ended), and the
    /// destination of each.
    running: JoinSet<Ended>,
    running_to: HashMap<tokio::task::Id, Destination>,
    /// A lane that a claim filled has room for a batch again: claim.
    room_again: bool,
    /// Settlements, to the team's settling task.
    settle: mpsc::UnboundedSender<Handled>,
    settled: Option<mpsc::UnboundedReceiver<Handled>>,
}

impl TeamDispatch {
    fn new(live: Arc<Live>, clock: Arc<dyn Clock>, team: String) -> Self {
        let (settle, settled) = mpsc::unbounded_channel();
        TeamDispatch {
            queue: keys::outbox(&team),
            gw: live.current(),
            live,
            clock,
            team,
            lanes: HashMap::new(),
            held: 0,
            running: JoinSet::new(),
            running_to: HashMap::new(),
            room_again: false,
            settle,
            settled: Some(settled),
        }
    }

    async fn run(mut self) {
        let Some(settled) = self.settled.take() else {
            return;
        };
        let mut settler = JoinSet::new();
        settler.spawn(settle_loop(
            Arc::clone(&self.gw),
            Arc::clone(&self.clock),
            self.team.clone(),
            settled,
        ));
        let mut bell = self.gw.outbox.bell.subscribe();
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Look at once; then whenever woken, at each poll, and as long as
        // the last claim came back full (more may be due) while there is room.
        let (mut look, mut behind) = (true, false);
        // The claim under way: deliveries that end meanwhile start the
        // next items waiting, without waiting for its answer.
        let mut claiming: Option<Claiming> = None;
        loop {
            // Each round works with the configuration in force (a reload
            // may have changed the team's webhook or channels).
            self.gw = self.live.current();
            while let Some(ended) = self.running.try_join_next_with_id() {
                self.ended(ended);
            }
            self.release_overdue().await;
            let room_again = std::mem::take(&mut self.room_again);
            if self.bring_forward().await || room_again {
                look = true;
            }
            if (look || behind) && self.held < TEAM_HELD && claiming.is_none() {
                look = false;
                behind = false;
                claiming = Some(self.claim());
            }
            tokio::select! {
                Some(ended) = self.running.join_next_with_id() => self.ended(ended),
                (asked, claimed) = until_claimed(&mut claiming), if claiming.is_some() => {
                    claiming = None;
                    let placed = match claimed {
                        Ok(batch) => self.place(batch, asked).await,
                        Err(e) => Err(e),
                    };
                    behind = match placed {
                        Ok(full) => full,
                        // An outage is the store's own log's to tell (once).
                        Err(Error::StoreUnavailable) => false,
                        Err(e) => {
                            tracing::warn!(team = %self.team, error = %e, "outbox claim failed; will retry");
                            false
                        }
                    };
                }
                changed = bell.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    look = true;
                }
                _ = poll.tick() => {
                    look = true;
                    self.gw.outbox.health.publish(&self.team, self.clock.now());
                }
            }
        }
    }

    /// A claim of what there is room for: how many it asks, and the batch.
    fn claim(&self) -> Claiming {
        let (gw, clock, team) = (
            Arc::clone(&self.gw),
            Arc::clone(&self.clock),
            self.team.clone(),
        );
        let asked = (TEAM_HELD - self.held).min(BATCH);
        Box::pin(async move {
            let Some(team) = gw.config.team(&team) else {
                return (asked, Ok(None));
            };
            let batch = gw.claim_batch(team, clock.as_ref(), asked).await;
            (asked, batch.map(Some))
        })
    }

    /// Publishes a claimed batch's events in order, and starts, keeps
    /// waiting or hands back each item. Answers whether to claim again at
    /// once: the claim came back full and no lane it filled would turn the
    /// next batch away.
    async fn place(&mut self, batch: Option<Batch>, asked: usize) -> Result<bool> {
        let gw = Arc::clone(&self.gw);
        let (Some(team), Some(mut batch)) = (gw.config.team(&self.team), batch) else {
            return Ok(false);
        };
        let full = batch.full(asked);
        let now = self.clock.now();
        // Events reach the live stream in the order they came due, before
        // any delivery: a slow webhook does not let a later event by.
        for claimed in &mut batch.ready {
            let item = &mut claimed.item;
            if let Task::Event { event, about } = &item.task {
                if !item.published {
                    let appended = gw.events.publish_confirmed(event.clone(), about.as_ref());
                    claimed.appended = Some(appended);
                    item.published = true;
                }
            }
        }
        let Batch {
            ready, mut settled, ..
        } = batch;
        // Claim again at once only if no lane this claim filled would turn
        // the next batch away: such a lane calls for the next claim when it
        // has room (see `ended`).
        let mut filled = false;
        for claimed in ready {
            match Destination::of(team, &claimed.item.task) {
                // Nothing to deliver: done once published.
                None => match deliver_and_settle(&gw, team, &self.queue, claimed, now).await {
                    Ok(handled) => settled.push(handled),
                    Err(e) => {
                        tracing::warn!(team = %self.team, error = %e, "outbox item not handled; will retry");
                    }
                },
                Some(to) => {
                    let lane = self.lanes.entry(to.clone()).or_default();
                    if claimed.item.attempts > 0 {
                        lane.failed_at = Some(std::time::Instant::now());
                    }
                    if lane.in_flight < LANE_IN_FLIGHT {
                        self.start(to, claimed);
                    } else if lane.waiting.len() < LANE_WAITING {
                        lane.waiting.push_back((now, claimed));
                        self.held += 1;
                        if lane.full() {
                            lane.wants_room = true;
                            filled = true;
                        }
                    } else {
                        filled = true;
                        let handed = deferred(&self.queue, claimed, now)?;
                        lane.deferred(handed.requeued());
                        settled.push(handed);
                    }
                }
            }
        }
        for handled in settled {
            let _ = self.settle.send(handled);
        }
        Ok(full && !filled)
    }

    /// Starts delivering `claimed` to `to`; it settles itself when done.
    fn start(&mut self, to: Destination, claimed: Claimed) {
        self.lanes.entry(to.clone()).or_default().in_flight += 1;
        self.held += 1;
        let (gw, clock, team) = (
            Arc::clone(&self.gw),
            Arc::clone(&self.clock),
            self.team.clone(),
        );
        let (queue, settle) = (self.queue.clone(), self.settle.clone());
        let task = self.running.spawn(async move {
            let mut ended = Ended::default();
            if let Some(team) = gw.config.team(&team) {
                match deliver_and_settle(&gw, team, &queue, claimed, clock.now()).await {
                    Ok(handled) => {
                        ended = Ended {
                            delivered: handled.delivered,
                            requeued: handled.requeued(),
                        };
                        let _ = settle.send(handled);
                    }
                    // The claim's lease brings it back.
                    Err(e) => {
                        tracing::warn!(team = %team.id, error = %e, "outbox item not handled; will retry");
                    }
                }
            }
            ended
        });
        self.running_to.insert(task.id(), to);
    }

    /// A delivery ended (a panic too: the lease brings its item back):
    /// its slot goes to the next item waiting for its destination.
    fn ended(
        &mut self,
        ended: std::result::Result<(tokio::task::Id, Ended), tokio::task::JoinError>,
    ) {
        self.held = self.held.saturating_sub(1);
        let (id, how) = match ended {
            Ok((id, how)) => (id, how),
            Err(e) => (e.id(), Ended::default()),
        };
        let Some(to) = self.running_to.remove(&id) else {
            return;
        };
        let lane = self.lanes.entry(to.clone()).or_default();
        lane.in_flight = lane.in_flight.saturating_sub(1);
        lane.last_try = Some(std::time::Instant::now());
        if how.delivered {
            lane.forward |= lane.failing && !lane.later.is_empty();
            lane.failing = false;
            lane.look |= lane
                .failed_at
                .is_some_and(|at| at.elapsed() < FAILED_RECENTLY);
        } else if how.requeued.is_some() {
            lane.failing = true;
            lane.failed_at = Some(std::time::Instant::now());
            lane.handed_back(how.requeued);
        }
        if let Some((_, next)) = lane.waiting.pop_front() {
            self.held -= 1;
            self.start(to.clone(), next);
        }
        let lane = self.lanes.entry(to).or_default();
        if lane.wants_room && !lane.full() {
            lane.wants_room = false;
            lane.room = true;
            self.room_again = true;
        }
    }

    /// Hands back to the queue the waiting items that could no longer be
    /// delivered within their lease.
    async fn release_overdue(&mut self) {
        let now = self.clock.now();
        for lane in self.lanes.values_mut() {
            while lane
                .waiting
                .front()
                .is_some_and(|(since, _)| now.since(*since) >= LONGEST_WAIT)
            {
                let Some((_, claimed)) = lane.waiting.pop_front() else {
                    break;
                };
                self.held -= 1;
                match deferred(&self.queue, claimed, now) {
                    Ok(handled) => {
                        lane.deferred(handled.requeued());
                        let _ = self.settle.send(handled);
                    }
                    Err(e) => {
                        tracing::warn!(team = %self.team, error = %e, "outbox item not handed back; will retry");
                    }
                }
            }
        }
    }

    /// After a success to a destination that failed recently, items of it
    /// waiting out their backoff beyond a lease — handed back by any
    /// instance — to bring forward: at most [`LOOK_PAGE`] entries read per
    /// destination and [`LOOK_EVERY`] (one read for all destinations whose
    /// look goes on from the same place), from the latest due down, going
    /// on where the last look stopped. A look that finds nothing waiting
    /// beyond a lease at all ends the destination's recent failure.
    async fn look_for_waiting(&mut self) -> Vec<IndexEntry> {
        let gw = Arc::clone(&self.gw);
        let Some(team) = gw.config.team(&self.team) else {
            return Vec::new();
        };
        let now = self.clock.now();
        // Beyond any lease taken up to now: not under a claim.
        let beyond = now.plus(LEASE).unix_millis();
        // The lanes due a look, grouped by where their look goes on: lanes
        // that go on from the same place (most often the top) share one
        // read of the queue.
        let mut groups: Vec<(Option<LookFrom>, Vec<Destination>)> = Vec::new();
        for (to, lane) in &mut self.lanes {
            if !lane.look
                || lane.failing
                || lane.looked_at.is_some_and(|t| t.elapsed() < LOOK_EVERY)
            {
                continue;
            }
            lane.look = false;
            lane.looked_at = Some(std::time::Instant::now());
            let from = lane.look_from.take();
            match groups.iter_mut().find(|(f, _)| *f == from) {
                Some((_, tos)) => tos.push(to.clone()),
                None => groups.push((from, vec![to.clone()])),
            }
        }
        let mut found = Vec::new();
        for (from, tos) in groups {
            let from_top = from.is_none();
            let Ok(page) = gw.store.index_desc(&self.queue, from, LOOK_PAGE).await else {
                continue;
            };
            let mut to_the_end = page.len() < LOOK_PAGE;
            let mut waiting = false;
            for entry in &page {
                if entry.score <= beyond {
                    to_the_end = true;
                    break;
                }
                waiting = true;
                if Destination::of_stored(team, &entry.member).is_some_and(|d| tos.contains(&d)) {
                    found.push(entry.clone());
                }
            }
            let next = page.last().filter(|_| !to_the_end);
            for to in &tos {
                let Some(lane) = self.lanes.get_mut(to) else {
                    continue;
                };
                match next {
                    Some(e) => lane.look_from = Some((e.score, e.member.clone())),
                    None if from_top && !waiting => lane.failed_at = None,
                    None => {}
                }
            }
        }
        found
    }

    /// Brings items this loop handed back to the queue forward to now:
    /// after a success, as many as the destination's lane has room for
    /// (it answers again: its backlog need not wait out each item's
    /// backoff); while it fails with nothing under way, one every
    /// [`PROBE_EVERY`], to notice when it answers again. Answers whether
    /// any was brought forward (then claim at once).
    async fn bring_forward(&mut self) -> bool {
        let now = self.clock.now().unix_millis();
        let mut members = Vec::new();
        for lane in self.lanes.values_mut() {
            let room = (LANE_IN_FLIGHT + LANE_WAITING).saturating_sub(lane.held());
            if lane.forward && !lane.failing && (room >= BATCH / 2 || lane.held() == 0) {
                lane.forward = false;
                let mut taken = lane.take_later(room, now);
                let left = room.saturating_sub(taken.len());
                taken.extend(take_due_later(&mut lane.deferred, left, now));
                members.extend(taken);
            } else if std::mem::take(&mut lane.room) && !lane.failing {
                members.extend(take_due_later(&mut lane.deferred, BATCH, now));
            } else if lane.failing
                && lane.held() == 0
                && lane.last_try.is_none_or(|t| t.elapsed() >= PROBE_EVERY)
            {
                let probe = lane.take_later(1, now);
                if !probe.is_empty() {
                    lane.last_try = Some(std::time::Instant::now());
                }
                members.extend(probe);
            }
        }
        let mut entries: Vec<IndexEntry> = members
            .into_iter()
            .map(|(member, score)| IndexEntry { member, score })
            .collect();
        entries.extend(self.look_for_waiting().await);
        if entries.is_empty() {
            return false;
        }
        // Only entries still as handed back: one delivered or claimed by
        // another instance meanwhile is left alone.
        let moved = self
            .gw
            .store
            .queue_move_unchanged(&self.queue, &entries, now)
            .await;
        match moved {
            Ok(moved) => moved > 0,
            // They come due by their own backoff.
            Err(StoreError::Unavailable(_)) => false,
            Err(e) => {
                tracing::warn!(team = %self.team, error = %e, "outbox items not brought forward");
                false
            }
        }
    }
}

/// How one delivery ended, as its lane needs to know.
#[derive(Default)]
struct Ended {
    delivered: bool,
    /// Queued again (failed): its member and due time.
    requeued: Option<(String, i64)>,
}

/// How long an item handed back for want of a slot waits: half its age,
/// within [`DEFER_MIN`] and [`DEFER_MAX`], ±20 %.
fn defer_for(age: Duration) -> Duration {
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    (age / 2).clamp(DEFER_MIN, DEFER_MAX).mul_f64(jitter)
}

/// The ops that hand `claimed` back to the queue, due again a little later
/// ([`defer_for`]); not an attempt. An event published by this claim is
/// written again, marked published, so it is not published twice.
fn deferred(queue: &str, mut claimed: Claimed, now: Timestamp) -> Result<Handled> {
    let unlogged = claimed.unlogged();
    let Claimed {
        stored,
        item,
        stored_published,
        ..
    } = claimed;
    let at = now.plus(defer_for(now.since(item.created_at)));
    let ops = if item.published && !stored_published {
        stored.replace(queue, &item, at)?
    } else {
        vec![Op::QueueAdd {
            key: queue.to_string(),
            member: stored.member,
            score: at.unix_millis(),
            ttl: item.keep_at(at),
        }]
    };
    Ok(Handled {
        ops,
        delivered: false,
        unlogged,
    })
}

/// Delivers `claimed` and answers how to settle it, keeping what the
/// settling must wait for (its event reaching the log).
async fn deliver_and_settle(
    gw: &Gateway,
    team: &Team,
    queue: &str,
    mut claimed: Claimed,
    now: Timestamp,
) -> Result<Handled> {
    let unlogged = claimed.unlogged();
    let mut handled = gw
        .settle_item(team, queue, claimed, now)
        .instrument(crate::spans::background("outbox delivery"))
        .await?;
    handled.unlogged = unlogged;
    Ok(handled)
}

/// Commits a team's settlements as they come, every one ready at that
/// moment together.
async fn settle_loop(
    gw: Arc<Gateway>,
    clock: Arc<dyn Clock>,
    team: String,
    mut settled: mpsc::UnboundedReceiver<Handled>,
) {
    let queue = keys::outbox(&team);
    let mut ready = Vec::new();
    while settled.recv_many(&mut ready, SETTLE_BATCH).await > 0 {
        // An item leaves the queue (or is marked published) only once the
        // event its claim published is in the log; one whose event did not
        // get there is put back, to be published again.
        for handled in &mut ready {
            let Some(mut unlogged) = handled.unlogged.take() else {
                continue;
            };
            if unlogged.logged(LOG_WAIT).await {
                continue;
            }
            let again = clock.now().plus(DEFER_MIN);
            // Should it not be written, its lease brings it back.
            handled.ops = unlogged.put_back(&queue, again).unwrap_or_default();
        }
        gw.commit_settled(&team, &ready).await;
        ready.clear();
    }
}

impl Gateway {
    /// Removes or reschedules settled items in one commit; should another
    /// instance have touched one of them (a lease that ran out), each
    /// item's ops on their own, so the others still land. A store that
    /// fails leaves them to their lease.
    async fn commit_settled(&self, team: &str, settled: &[Handled]) {
        let all: Vec<Op> = settled.iter().flat_map(|h| h.ops.iter().cloned()).collect();
        match self.store.commit(all).await {
            Ok(Commit::Applied) => {}
            Ok(Commit::Conflict { .. }) => {
                for h in settled {
                    // One item the store refuses does not keep the others back.
                    if let Err(e) = self.store.commit(h.ops.clone()).await {
                        tracing::warn!(team = %team, error = %e, "outbox item not settled; will retry");
                    }
                }
            }
            // An outage is the store's own log's to tell (once).
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => {
                tracing::warn!(team = %team, error = %e, "outbox items not settled; will retry");
            }
        }
    }
}
