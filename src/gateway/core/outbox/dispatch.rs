//! The outbox's dispatcher ([`Dispatcher`], started by the app): in every
//! instance, one loop per team, so that a slow receiver only ever slows
//! itself. This file is the loop: claim due items, deliver, settle. What
//! a destination's lane decides without I/O (its bounds, what waits, what
//! is brought forward, how long an item handed back waits) is in
//! `lanes.rs`.
//!
//! A team's loop claims due items with a lease, publishes their events at
//! once (the live stream gets them in the order they came due, whatever
//! their webhook does), and starts each item's delivery on its own. An
//! item is settled — removed, or rescheduled with backoff — as soon as its
//! own delivery ends, not with others. The loop keeps claiming while
//! deliveries are in flight, within two bounds:
//!
//! - per destination (the team's webhook; each chat channel):
//!   `LANE_IN_FLIGHT` deliveries at once, and up to `LANE_WAITING`
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
//! it fails, one is tried every `PROBE_EVERY`, so a receiver that comes
//! back is noticed within seconds. Another instance's items for the same
//! destination (or this one's from before a restart) are not remembered
//! here: after a success to a destination that failed recently, the loop
//! also looks in the queue for its items waiting beyond a lease
//! ([`TeamDispatch::look_for_waiting`]: one read of at most [`LOOK_PAGE`]
//! entries per destination and `LOOK_EVERY`) and brings them forward
//! too. Bringing forward moves only an entry still as it was handed back
//! or read (`Store::queue_move_unchanged`): one delivered meanwhile is
//! never brought back, one claimed keeps its lease.
//!
//! Settling goes through one task per team that commits settlements
//! together: from the first that comes, it waits [`SETTLE_LINGER`] for
//! more, so the removals of items delivered close together are one `ZREM`
//! (docs/decisions/0225-settlements-wait-50-ms-to-go-together.md).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::lanes::{
    defer_for, Destination, Ended, LookFrom, Placement, DEFER_MIN, LONGEST_WAIT, TEAM_HELD,
};
use super::{Batch, Claimed, Handled, Outbox, Task, BATCH, LEASE, POLL};
use crate::config::Team;
use crate::error::{Error, Result};
use crate::events::Publisher;
use crate::gateway::core::{due_teams, Core, Live};
use crate::store::{keys, Commit, IndexEntry, Op, SharedStore, Store, StoreError};
use crate::time::every::ticks;
use crate::time::{Clock, Timestamp};

/// How long settling waits for an event to reach the log before it puts
/// the item back.
const LOG_WAIT: Duration = Duration::from_secs(10);
/// A look in the queue for a lane's items waiting out their backoff reads
/// at most this many entries.
const LOOK_PAGE: usize = BATCH;
/// Settlements committed together, at most.
const SETTLE_BATCH: usize = 256;
/// How long a settlement waits for others to be committed with it. Short
/// beside the lease ([`LEASE`], 30 s) that keeps a delivered item from
/// being claimed again before its removal lands: only an instance that
/// stops within it leaves its items to be delivered again, at least once
/// as ever.
const SETTLE_LINGER: Duration = Duration::from_millis(50);

/// A lane of this loop: its waiting items are claimed items.
type Lane = super::lanes::Lane<Claimed>;

/// This instance's dispatcher, started by the app: a loop per team. It
/// holds what the loops share — the store, the outbox (its bell, the
/// items this instance kept, the deliveries' health), the event
/// publisher and the clock — and the gateway in force, which each round
/// reads anew for the team's configuration and the senders its notices
/// go through (a reload replaces both; the rest stays).
pub struct Dispatcher {
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    store: SharedStore,
    outbox: Arc<Outbox>,
    events: Publisher,
}

impl Dispatcher {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>) -> Self {
        let gw = live.current();
        Dispatcher {
            store: Arc::clone(&gw.store),
            outbox: Arc::clone(&gw.outbox),
            events: gw.events.clone(),
            live,
            clock,
        }
    }

    /// Runs until `shutdown` resolves: a loop per team, made at the
    /// team's first wake (a commit of this instance, the outbox's due
    /// index): a team with no outbox work has none
    /// (docs/decisions/0752-a-team-s-loop-and-series-are-made-at-its-first-use.md).
    /// What it has not delivered stays in the store for the next look, or
    /// another instance (its claims come due again after their lease).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let this = Arc::new(self);
        let (to, mut woken) = mpsc::unbounded_channel();
        this.outbox.loops_to(Some(to));
        // From here on this instance's writes hand their items to the
        // loops (`super::Hand`); no longer once it stops.
        this.outbox.set_dispatching(true);
        let _stopped = Stopped(Arc::clone(&this.outbox));
        tokio::pin!(shutdown);
        // Dropped at the end: every team's loop and its deliveries stop.
        let mut teams = Loops::default();
        // The teams each replacement takes out, as the audit sinks hear
        // them: a gone team's idle loop is rung, to see it gone and end.
        let mut departures = this.live.departures();
        let mut watch = ticks(POLL);
        loop {
            // A loop is a keyspace's: a team written again under a deleted
            // team's id gets one of its own at its first wake. A removed
            // team's loop finds no team and delivers nothing: what it was
            // handed or had claimed goes back to the outbox due at once,
            // for an instance that has the team (`hand_back_unknown`).
            tokio::select! {
                () = &mut shutdown => return,
                Some(keyspace) = woken.recv() => teams.start(&this, keyspace),
                Some(ended) = teams.set.join_next_with_id() => teams.ended(&this, ended),
                Some((keyspace, team)) = departures.recv() => this.departed(&keyspace, &team),
                _ = watch.tick() => {
                    teams.start_again(&this);
                    this.wake_due_teams().await;
                }
            }
        }
    }

    /// A team the gateway in force no longer has: its idle loop is rung,
    /// to see it gone and end, and what this instance holds of it goes.
    fn departed(&self, keyspace: &str, team: &Team) {
        self.outbox.ring(keyspace);
        self.forget_if_gone(&team.id, team.api.is_some());
    }

    /// Forgets the deliveries' health of team `id`, and for a team
    /// written through the operator API (`api`) its metric series, once
    /// no team in force has that id: at the team's departure, and again
    /// when its loop ends (a delivery that ended meanwhile may have
    /// counted). A team written again under the id keeps them
    /// (docs/decisions/0890-a-gone-team-s-series-and-health-are-dropped.md).
    fn forget_if_gone(&self, id: &str, api: bool) {
        if self.live.current().config.team(id).is_some() {
            return;
        }
        self.outbox.health.forget(id);
        if api {
            crate::telemetry::forget_team(id);
        }
    }

    /// Wakes the loops of the teams the outbox's due index says have items
    /// due (another instance's, or ones handed back for later): an idle
    /// gateway reads the index alone (docs/architecture.md#many-teams).
    /// Each team is handed back at once at its queue's earliest time: one
    /// whose loop has not claimed yet is due again at the next round.
    async fn wake_due_teams(&self) {
        let (store, index) = (self.store.as_ref(), keys::DUE_INDEX_OUTBOX);
        loop {
            // An outage is the store's own log's to tell (once).
            let Ok((teams, hold)) = due_teams::take(store, index, self.clock.now()).await else {
                return;
            };
            let gw = self.live.current();
            for id in &teams {
                let known = gw.config.team_in(id).is_some();
                if known {
                    self.outbox.wake(id);
                }
                due_teams::release(store, index, id, known, hold).await;
            }
            if teams.len() < due_teams::TAKE {
                return;
            }
        }
    }
}

/// The teams' loops the dispatcher runs, by task. A loop runs as long as
/// the dispatcher, or until its team has left the configuration in force
/// ([`LoopEnd::TeamGone`]): one that ends otherwise (it returned, or
/// panicked) is started again at the dispatcher's next round ([`POLL`]),
/// with one error line naming the team, so that its events are not left
/// undelivered until a restart. What it had in hand stays in the store:
/// claimed items come due again after their lease, the new loop looks at
/// once.
#[derive(Default)]
struct Loops {
    set: JoinSet<LoopEnd>,
    /// The team of each loop, by its task.
    team_of: HashMap<tokio::task::Id, String>,
    /// The teams whose loop ended, to start again.
    ended: Vec<String>,
}

impl Loops {
    /// A loop for `keyspace`.
    fn start(&mut self, dispatcher: &Arc<Dispatcher>, keyspace: String) {
        let run = TeamDispatch::new(Arc::clone(dispatcher), keyspace.clone()).run();
        let id = self.set.spawn(run).id();
        self.team_of.insert(id, keyspace);
    }

    /// A loop ended: its team's is started again at the next round, unless
    /// the team is gone (then what the dispatcher holds of it goes).
    fn ended(
        &mut self,
        dispatcher: &Dispatcher,
        ended: std::result::Result<(tokio::task::Id, LoopEnd), tokio::task::JoinError>,
    ) {
        let (id, panicked) = match ended {
            Ok((id, LoopEnd::TeamGone)) => {
                if let Some(gone) = self.team_of.remove(&id) {
                    let api = keys::incarnation_of(&gone).is_some();
                    dispatcher.forget_if_gone(keys::team_of(&gone), api);
                }
                return;
            }
            Ok((id, LoopEnd::Broken)) => (id, false),
            Err(e) => (e.id(), e.is_panic()),
        };
        let Some(team) = self.team_of.remove(&id) else {
            return;
        };
        tracing::error!(team = %team, panicked, "a team's outbox loop ended; it is started again");
        self.ended.push(team);
    }

    /// Each loop that ended since the last round, started again.
    fn start_again(&mut self, dispatcher: &Arc<Dispatcher>) {
        for team in std::mem::take(&mut self.ended) {
            self.start(dispatcher, team);
        }
    }
}

/// How a team's loop ended.
enum LoopEnd {
    /// Its team left the configuration in force while the loop held
    /// nothing: the outbox forgot the team's bell, hand and loop
    /// ([`Outbox::forget`]); a later wake starts another.
    TeamGone,
    /// Its bell was dropped, or its settling task ended: started again.
    Broken,
}

/// Marks the dispatcher stopped when its run ends (returns or is
/// dropped): later writes are due at once, for the next dispatcher.
struct Stopped(Arc<Outbox>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.set_dispatching(false);
        self.0.loops_to(None);
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
    /// What every team's loop shares.
    shared: Arc<Dispatcher>,
    /// The gateway this round took from the one in force: the team's
    /// configuration, and the senders its notices go through. `None`
    /// while the loop sleeps with nothing in hand: an idle team's loop
    /// keeps no configuration alive once another is in force (each team
    /// written through the operator API starts its loop on a gateway of
    /// its own).
    gw: Option<Arc<Core>>,
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
    /// The team's bell, heard from the loop's creation on: a wake rung
    /// before the loop first runs is not lost.
    bell: watch::Receiver<u64>,
}

impl TeamDispatch {
    fn new(shared: Arc<Dispatcher>, team: String) -> Self {
        let (settle, settled) = mpsc::unbounded_channel();
        TeamDispatch {
            bell: shared.outbox.bell(&team).subscribe(),
            queue: keys::outbox(&team),
            gw: None,
            shared,
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

    async fn run(mut self) -> LoopEnd {
        let Some(settled) = self.settled.take() else {
            return LoopEnd::Broken;
        };
        let mut settler = self.settler(settled);
        let mut bell = self.bell.clone();
        let hand = self.shared.outbox.hand(&self.team);
        let mut poll = ticks(POLL);
        // Look whenever woken (by a commit of this instance, or by the
        // outbox's due index), and as long as the last claim came back
        // full (more may be due) while there is room. The poll only
        // publishes the team's health, and only once the loop has lanes: an
        // idle team costs the store nothing and the process next to nothing.
        // A loop is made by its team's first wake, which it did not hear:
        // it looks at once.
        let (mut look, mut behind) = (true, false);
        self.register_series();
        // The claim under way: deliveries that end meanwhile start the
        // next items waiting, without waiting for its answer.
        let mut claiming: Option<Claiming> = None;
        loop {
            // Each round works with the configuration in force (a reload
            // may have changed the team's webhook or channels).
            self.gw = Some(self.shared.live.current());
            while let Some(ended) = self.running.try_join_next_with_id() {
                self.ended(ended);
            }
            self.release_overdue().await;
            let room_again = std::mem::take(&mut self.room_again);
            if self.bring_forward().await || room_again {
                look = true;
            }
            self.take_handed(&hand).await; // what waited for room
            if (look || behind) && self.held < TEAM_HELD && claiming.is_none() {
                look = false;
                behind = false;
                claiming = Some(self.claim());
            }
            if claiming.is_none() && self.idle_and_gone(&bell) {
                return self.end_gone(settler).await;
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
                        return LoopEnd::Broken;
                    }
                    look = true;
                }
                () = hand.handed() => self.take_handed(&hand).await,
                // The settling task ended (it can only have panicked): the
                // loop ends too, and is started again with another (`Loops`).
                Some(_) = settler.join_next() => return LoopEnd::Broken,
                // Only a loop that holds items or has delivered here has
                // lanes to look after and health to publish: an idle
                // team's loop sleeps until woken.
                _ = poll.tick(), if self.held > 0 || !self.lanes.is_empty() => {
                    self.publish_health();
                }
            }
        }
    }

    /// Publishes the team's deliveries' health, under its id as its
    /// deliveries record it (not its keyspace).
    fn publish_health(&self) {
        let id = keys::team_of(&self.team);
        self.shared
            .outbox
            .health
            .publish(id, self.shared.clock.now());
    }

    /// With nothing in flight or waiting (and no claim under way), the
    /// loop lets go of its gateway while it sleeps; `true` when its team
    /// has left the configuration in force too and the outbox forgot the
    /// team ([`Outbox::forget`], unless woken since `heard`): it ends.
    fn idle_and_gone(&mut self, heard: &watch::Receiver<u64>) -> bool {
        if self.held > 0 || !self.running.is_empty() {
            return false;
        }
        let gone = self.gw().config.team_in(&self.team).is_none();
        if gone && self.shared.outbox.forget(&self.team, heard) {
            return true;
        }
        self.gw = None;
        false
    }

    /// The end of the loop of a team gone: what it handed back is
    /// settled first (its settling task ends with the last sender, the
    /// loop's own).
    async fn end_gone(self, mut settler: JoinSet<()>) -> LoopEnd {
        drop(self);
        while settler.join_next().await.is_some() {}
        LoopEnd::TeamGone
    }

    /// The loop that settles this team's delivered items, which ends with
    /// the `JoinSet` it returns.
    fn settler(&self, settled: mpsc::UnboundedReceiver<Handled>) -> JoinSet<()> {
        let mut settler = JoinSet::new();
        settler.spawn(settle_loop(
            Arc::clone(&self.shared.store),
            Arc::clone(&self.shared.clock),
            self.team.clone(),
            settled,
        ));
        settler
    }

    /// An API team's outbox series, made with its loop (a file team's are
    /// made when its configuration is loaded).
    fn register_series(&self) {
        if let Some(team) = self.shared.live.current().config.team_in(&self.team) {
            if team.api.is_some() {
                crate::telemetry::register_team(&team.id);
            }
        }
    }

    /// The gateway of this round (the one in force, for a loop woken from
    /// its sleep).
    fn gw(&self) -> Arc<Core> {
        (self.gw.clone()).unwrap_or_else(|| self.shared.live.current())
    }

    /// A claim of what there is room for: how many it asks, and the batch.
    fn claim(&self) -> Claiming {
        let (gw, shared, team) = (self.gw(), Arc::clone(&self.shared), self.team.clone());
        let asked = (TEAM_HELD - self.held).min(BATCH);
        Box::pin(async move {
            let Some(team) = gw.config.team_in(&team) else {
                return (asked, Ok(None));
            };
            let store = shared.store.as_ref();
            let batch = shared
                .outbox
                .claim_batch(store, team, shared.clock.as_ref(), asked)
                .await;
            (asked, batch.map(Some))
        })
    }

    /// Places the items this instance's commits handed over, born claimed
    /// by it ([`super::Hand`]), as a claimed batch: no claim round trip.
    /// As many as there is room for; the rest stay in the hand until
    /// deliveries end and make room (a burst is not left to its lease).
    /// An item handed over half a lease ago or more is left to come due at
    /// its lease's end, where the sweeper moves it into the outbox for a
    /// claim: never delivered from the hand once it could be moved too.
    async fn take_handed(&mut self, hand: &super::Hand) {
        let room = TEAM_HELD.saturating_sub(self.held);
        if room == 0 || !hand.holds_any() {
            return;
        }
        let now = self.shared.clock.now();
        let fresh = |item: &super::OutboxItem| now.since(item.created_at) < LEASE / 2;
        let due_queue = keys::due_queue(&self.team);
        let ready: Vec<Claimed> = hand
            .take_up_to(room)
            .into_iter()
            .filter(|(_, item)| fresh(item))
            .map(|(member, item)| Claimed {
                stored: super::Stored {
                    member,
                    legacy: None,
                    born_in: Some(due_queue.clone()),
                },
                stored_published: item.published,
                appended: None,
                item,
            })
            .collect();
        if ready.is_empty() {
            return;
        }
        let batch = Batch {
            queue: self.queue.clone(),
            ready,
            settled: Vec::new(),
        };
        // Not a claim: nothing says more is due.
        if let Err(e) = self.place(Some(batch), usize::MAX).await {
            tracing::warn!(team = %self.team, error = %e, "outbox items not placed; their lease brings them back");
        }
    }

    /// Publishes a claimed batch's events in order, and starts, keeps
    /// waiting or hands back each item. Answers whether to claim again at
    /// once: the claim came back full and no lane it filled would turn the
    /// next batch away.
    async fn place(&mut self, batch: Option<Batch>, asked: usize) -> Result<bool> {
        let gw = self.gw();
        let Some(mut batch) = batch else {
            return Ok(false);
        };
        let now = self.shared.clock.now();
        let Some(team) = gw.config.team_in(&self.team) else {
            self.hand_back_unknown(batch, now)?;
            return Ok(false);
        };
        let full = batch.full(asked);
        // Events reach the live stream in the order they came due, before
        // any delivery: a slow webhook does not let a later event by.
        for claimed in &mut batch.ready {
            let item = &mut claimed.item;
            if let Task::Event { event, about } = &item.task {
                if !item.published {
                    let events = &self.shared.events;
                    let appended = events.publish_confirmed(event.clone(), about.as_ref());
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
                    match lane.place(claimed.item.attempts > 0) {
                        Placement::Start => self.start(to, claimed),
                        Placement::Wait => {
                            filled |= lane.wait(now, claimed);
                            self.held += 1;
                        }
                        Placement::HandBack => {
                            filled = true;
                            let handed = deferred(&self.queue, claimed, now)?;
                            lane.deferred(handed.requeued());
                            settled.push(handed);
                        }
                    }
                }
            }
        }
        for handled in settled {
            let _ = self.settle.send(handled);
        }
        Ok(full && !filled)
    }

    /// Hands a batch of a team this instance's configuration lacks back to
    /// the outbox due at once, untried: a reload removed the team between
    /// the write and here (or this loop's view predates the reload that
    /// added it back). Any instance that has the team claims them at once,
    /// and one whose reload adds it back finds them by its rescan
    /// (docs/architecture.md#many-teams): never left to their lease.
    fn hand_back_unknown(&mut self, batch: Batch, now: Timestamp) -> Result<()> {
        for claimed in batch.ready {
            let _ = self.settle.send(handed_back(&self.queue, claimed, now)?);
        }
        for handled in batch.settled {
            let _ = self.settle.send(handled);
        }
        Ok(())
    }

    /// Starts delivering `claimed` to `to`; it settles itself when done.
    fn start(&mut self, to: Destination, claimed: Claimed) {
        self.lanes.entry(to.clone()).or_default().in_flight += 1;
        self.held += 1;
        let (gw, clock, team) = (self.gw(), Arc::clone(&self.shared.clock), self.team.clone());
        let (queue, settle) = (self.queue.clone(), self.settle.clone());
        let task = self.running.spawn(async move {
            let mut ended = Ended::default();
            let Some(team) = gw.config.team_in(&team) else {
                // A reload removed the team since it was placed: back to
                // the outbox due at once, as `hand_back_unknown`.
                match handed_back(&queue, claimed, clock.now()) {
                    Ok(handled) => {
                        let _ = settle.send(handled);
                    }
                    Err(e) => {
                        tracing::warn!(team = %team, error = %e, "outbox item not handed back; its lease brings it back");
                    }
                }
                return ended;
            };
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
        lane.ended(how);
        if let Some((_, next)) = lane.waiting.pop_front() {
            self.held -= 1;
            self.start(to.clone(), next);
        }
        if self.lanes.entry(to).or_default().room_again() {
            self.room_again = true;
        }
    }

    /// Hands back to the queue the waiting items that could no longer be
    /// delivered within their lease.
    async fn release_overdue(&mut self) {
        let now = self.shared.clock.now();
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
    /// destination and look interval (one read for all destinations whose
    /// look goes on from the same place), from the latest due down, going
    /// on where the last look stopped. A look that finds nothing waiting
    /// beyond a lease at all ends the destination's recent failure.
    async fn look_for_waiting(&mut self) -> Vec<IndexEntry> {
        let gw = self.gw();
        let Some(team) = gw.config.team_in(&self.team) else {
            return Vec::new();
        };
        let now = self.shared.clock.now();
        // Beyond any lease taken up to now: not under a claim.
        let beyond = now.plus(LEASE).unix_millis();
        // The lanes due a look, grouped by where their look goes on: lanes
        // that go on from the same place (most often the top) share one
        // read of the queue.
        let mut groups: Vec<(Option<LookFrom>, Vec<Destination>)> = Vec::new();
        for (to, lane) in &mut self.lanes {
            let Some(from) = lane.due_a_look() else {
                continue;
            };
            match groups.iter_mut().find(|(f, _)| *f == from) {
                Some((_, tos)) => tos.push(to.clone()),
                None => groups.push((from, vec![to.clone()])),
            }
        }
        let mut found = Vec::new();
        for (from, tos) in groups {
            let from_top = from.is_none();
            let read = self.shared.store.index_desc(&self.queue, from, LOOK_PAGE);
            let Ok(page) = read.await else {
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
                if let Some(lane) = self.lanes.get_mut(to) {
                    let next = next.map(|e| (e.score, e.member.clone()));
                    lane.looked(next, from_top && !waiting);
                }
            }
        }
        found
    }

    /// Brings items this loop handed back to the queue forward to now, as
    /// each lane decides (`Lane::forward_now`), and those another
    /// instance handed back that a look found ([`Self::look_for_waiting`]).
    /// Answers whether any was brought forward (then claim at once).
    async fn bring_forward(&mut self) -> bool {
        let now = self.shared.clock.now().unix_millis();
        let mut entries: Vec<IndexEntry> = Vec::new();
        for lane in self.lanes.values_mut() {
            let taken = lane.forward_now(now);
            entries.extend(
                taken
                    .into_iter()
                    .map(|(member, score)| IndexEntry { member, score }),
            );
        }
        entries.extend(self.look_for_waiting().await);
        if entries.is_empty() {
            return false;
        }
        // Only entries still as handed back: one delivered or claimed by
        // another instance meanwhile is left alone.
        let moved = self
            .shared
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

/// The ops that hand `claimed` back to the queue, due again a little later
/// ([`defer_for`]); not an attempt.
fn deferred(queue: &str, claimed: Claimed, now: Timestamp) -> Result<Handled> {
    let at = now.plus(defer_for(now.since(claimed.item.created_at)));
    handed_back(queue, claimed, at)
}

/// The ops that hand `claimed` back to the queue, due at `at`; not an
/// attempt. An event published by this claim is written again, marked
/// published, so it is not published twice.
fn handed_back(queue: &str, mut claimed: Claimed, at: Timestamp) -> Result<Handled> {
    let unlogged = claimed.unlogged();
    let Claimed {
        stored,
        item,
        stored_published,
        ..
    } = claimed;
    let ops = if item.published && !stored_published {
        stored.replace(queue, &item, at)?
    } else {
        stored.requeue(queue, at, item.keep_at(at))
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
    gw: &Core,
    team: &Team,
    queue: &str,
    mut claimed: Claimed,
    now: Timestamp,
) -> Result<Handled> {
    let unlogged = claimed.unlogged();
    let mut handled = super::delivery::settle_item(gw, team, queue, claimed, now)
        .instrument(crate::spans::background("outbox delivery"))
        .await?;
    handled.unlogged = unlogged;
    Ok(handled)
}

/// Commits a team's settlements as they come, every one ready at that
/// moment together.
async fn settle_loop(
    store: SharedStore,
    clock: Arc<dyn Clock>,
    team: String,
    mut settled: mpsc::UnboundedReceiver<Handled>,
) {
    let queue = keys::outbox(&team);
    let mut ready = Vec::new();
    while settled.recv_many(&mut ready, SETTLE_BATCH).await > 0 {
        linger(&mut settled, &mut ready).await;
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
        commit_settled(store.as_ref(), &team, &ready).await;
        ready.clear();
    }
}

/// Adds to `ready` what else is settled within [`SETTLE_LINGER`] of now,
/// up to [`SETTLE_BATCH`] in all.
async fn linger(settled: &mut mpsc::UnboundedReceiver<Handled>, ready: &mut Vec<Handled>) {
    let until = tokio::time::Instant::now() + SETTLE_LINGER;
    while ready.len() < SETTLE_BATCH {
        let room = SETTLE_BATCH - ready.len();
        // `recv_many` is cancel safe: at the deadline nothing is lost.
        match tokio::time::timeout_at(until, settled.recv_many(ready, room)).await {
            Ok(n) if n > 0 => {}
            _ => return,
        }
    }
}

/// Removes or reschedules settled items in one commit; should another
/// instance have touched one of them (a lease that ran out), each item's
/// ops on their own, so the others still land. A store that fails leaves
/// them to their lease.
async fn commit_settled(store: &dyn Store, team: &str, settled: &[Handled]) {
    let all: Vec<Op> = settled.iter().flat_map(|h| h.ops.iter().cloned()).collect();
    match store.commit(all).await {
        Ok(Commit::Applied) => {}
        Ok(Commit::Conflict { .. }) => {
            for h in settled {
                // One item the store refuses does not keep the others back.
                if let Err(e) = store.commit(h.ops.clone()).await {
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
