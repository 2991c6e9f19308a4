//! The transactional outbox (docs/api.md#events, docs/channels.md): what a state change must
//! tell others — its events, and the chat notices nobody waits for
//! (`authenticated`, `expired`) — is written in the same commit as the
//! change (see [`super::work`], [`Core::record`]), then delivered from
//! the store by a dispatcher that runs in every instance.
//!
//! Where the store's commits reach the event log, an event is appended to
//! the team's history by that commit and announced in this process once it
//! applied ([`Core::recorded`]): it becomes an item only for a team
//! with a webhook, marked `published`, so the dispatcher only POSTs it.
//! Elsewhere (a store that cannot reach the log, and items queued by
//! earlier versions) the dispatcher publishes the event, and its item
//! leaves the queue only once the log has it.
//!
//! The dispatcher ([`dispatch`]: one loop per team, deliveries bounded
//! per destination, so a slow receiver only slows itself) claims due items
//! with a lease (an instance that dies mid-delivery leaves its claims to
//! come due again), delivers each, then removes it as soon as its own
//! delivery ends — or, on failure, reschedules it with backoff: notices for an
//! hour (the API reference promises at least ten minutes), events to the team's
//! webhook for 25 hours (at least 24). When a destination answers again,
//! its items waiting out a backoff — whichever instance handed them back
//! — are brought forward rather than left to their own retry time.
//! Delivery is at-least-once: a message
//! may repeat, with the same id, but is not lost while the store keeps it.
//! An item the gateway cannot read is quarantined (logged once, removed)
//! and never stops the others.
//!
//! The parts: [`item`] (the item format), [`dispatch`] (the dispatcher's
//! loop, [`Dispatcher`]), [`lanes`] (what a destination's lane decides,
//! without I/O), [`delivery`] (delivering one item).
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

mod delivery;
mod dispatch;
mod health;
mod item;
mod lanes;

pub use dispatch::Dispatcher;
pub use item::{Notice, OutboxItem, Task};

use super::writes::DueEntry;
use super::Core;
use crate::config::Team;
use crate::error::{Error, Result};
use crate::events::{About, Event};
use crate::store::{keys, Op, Store};
use crate::time::{Clock, Timestamp};

/// How long an item is kept: past the longest retry window.
pub const ITEM_TTL: Duration = Duration::from_secs(25 * 3600);
/// How long a claim holds before another instance may take the item over.
const LEASE: Duration = Duration::from_secs(30);
/// Items claimed per round trip, at most. A queue that is idle or nearly
/// so costs the same one claim whatever the bound; a backlog is read in a
/// quarter of the round trips 16 would take.
pub const BATCH: usize = 64;
/// How often the dispatcher looks, when nothing wakes it sooner.
const POLL: Duration = Duration::from_millis(250);
/// A notice is retried this long, an event's webhook delivery this long.
const NOTICE_GIVE_UP: Duration = Duration::from_secs(3600);
const EVENT_GIVE_UP: Duration = Duration::from_secs(25 * 3600);
/// Retries are at most this far apart.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Timeout of one webhook delivery.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The wake-up bells of this instance's dispatcher (one per team with a
/// loop, which that loop hears, until it forgets its team gone:
/// [`Outbox::forget`]), its HTTP client, and the items this instance has
/// just written, kept for it ([`Kept`]).
pub struct Outbox {
    bells: Mutex<HashMap<String, Arc<watch::Sender<u64>>>>,
    http: crate::outbound::Clients,
    kept: Kept,
    health: health::Health,
    /// Items this instance's commits wrote, handed to its team's loop
    /// as claimed ([`Hand`]), by team.
    hands: Mutex<HashMap<String, Arc<Hand>>>,
    /// Whether this instance's dispatcher runs: only then are the items it
    /// writes born claimed by it (see [`Hand`]).
    dispatching: AtomicBool,
    /// The teams whose loop the dispatcher was asked to start: a team's
    /// loop is made at its first wake, not at the start
    /// (docs/decisions/0752-a-team-s-loop-and-series-are-made-at-its-first-use.md).
    loops: Mutex<Loops>,
}

/// The teams woken so far, and where the dispatcher hears of a new one.
#[derive(Default)]
struct Loops {
    started: std::collections::HashSet<String>,
    to: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// How many items a team's [`Hand`] holds at most: past that, an item is
/// left to come due at its lease's end, as one of a dead instance would.
const HANDED: usize = 1024;

/// The items this instance's commits wrote, handed to the team's loop in
/// this process without a claim
/// (docs/decisions/0209-an-item-is-born-claimed-by-its-writer.md). While
/// the dispatcher runs, an item is written claimed by its writer from the
/// start: its entry, `o:` and the item's text ([`BORN`]), waits in the
/// team's due queue until the end of a lease ([`LEASE`]) from its commit,
/// beside the commit's other due entries, not in the outbox
/// (docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md).
/// Once the commit applied, the item goes here, and the loop delivers and
/// settles it as any claimed item (its settlement takes the due queue's
/// entry out): no claim round trip. Should this instance die first, the
/// entry comes due when its lease ends, and the sweeper of any instance
/// moves the item into the outbox due at once ([`come_due`]), where any
/// dispatcher claims it, as a claimed item would have come due.
#[derive(Default)]
pub(super) struct Hand {
    items: Mutex<Vec<(String, OutboxItem)>>,
    ready: tokio::sync::Notify,
}

impl Hand {
    /// The first `n` items handed, in the order written; the rest stay.
    pub(super) fn take_up_to(&self, n: usize) -> Vec<(String, OutboxItem)> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let n = n.min(items.len());
        items.drain(..n).collect()
    }

    /// Whether items wait to be taken.
    pub(super) fn holds_any(&self) -> bool {
        !self
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Resolves once items were handed since the last wake.
    pub(super) async fn handed(&self) {
        self.ready.notified().await;
    }
}

/// How many items [`Kept`] holds at most (a few MB at most).
const KEPT: usize = 1024;

/// The items this instance has just put into the outbox, as it built them,
/// by id and the digest of the text it wrote: its dispatcher takes an item
/// it claims from here rather than parsing the stored copy again (the
/// costliest part of delivering an event), when that copy is still the text
/// written (a failed delivery writes another). An item not found here —
/// another instance's, one written before a restart, one pushed out by
/// newer ones (the oldest go first) — is parsed from the store as before.
#[derive(Default)]
struct Kept(Mutex<KeptItems>);

#[derive(Default)]
struct KeptItems {
    items: HashMap<Uuid, (u64, OutboxItem)>,
    /// Ids in the order kept, some taken already: the oldest goes first.
    order: VecDeque<Uuid>,
}

impl Kept {
    /// The items, whole even after a panic elsewhere (each change to them
    /// is one call that cannot be left half done).
    fn items(&self) -> std::sync::MutexGuard<'_, KeptItems> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, id: Uuid, digest: u64, item: OutboxItem) {
        let pushed_out = {
            let mut kept = self.items();
            let oldest = if kept.order.len() >= KEPT {
                kept.order.pop_front()
            } else {
                None
            };
            let pushed_out = oldest.and_then(|o| kept.items.remove(&o));
            kept.order.push_back(id);
            kept.items.insert(id, (digest, item));
            pushed_out
        };
        // Freed outside the lock.
        drop(pushed_out);
    }

    /// The item `id` as kept, if the store holds the text of `digest`;
    /// either way it is no longer kept.
    fn take(&self, id: Uuid, digest: u64) -> Option<OutboxItem> {
        let (kept_as, item) = self.items().items.remove(&id)?;
        (kept_as == digest).then_some(item)
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        // Fails only where start-up's own client was refused already.
        let http = crate::channels::provider::client_or_none(WEBHOOK_TIMEOUT);
        Outbox {
            bells: Mutex::default(),
            http,
            kept: Kept::default(),
            health: health::Health::default(),
            hands: Mutex::default(),
            dispatching: AtomicBool::new(false),
            loops: Mutex::default(),
        }
    }

    /// From now on, each team woken for the first time is sent to `to`,
    /// which starts its loop; `None`: no longer (the dispatcher stopped,
    /// and the next one starts every loop again at its wake).
    pub(super) fn loops_to(&self, to: Option<tokio::sync::mpsc::UnboundedSender<String>>) {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        *loops = Loops {
            started: Default::default(),
            to,
        };
    }

    /// `team`'s loop is started if it was not: sent to the dispatcher.
    fn needs_loop(&self, team: &str) {
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        if loops.started.contains(team) {
            return;
        }
        let Some(to) = loops.to.clone() else { return };
        if to.send(team.to_string()).is_ok() {
            loops.started.insert(team.to_string());
        }
    }

    /// How many teams' loops this instance's dispatcher started: those
    /// woken since it started (a team with no outbox work has none).
    pub fn team_loops(&self) -> usize {
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        loops.started.len()
    }

    /// `team`'s hand (see [`Hand`]), which its loop takes from.
    pub(super) fn hand(&self, team: &str) -> Arc<Hand> {
        let mut hands = self.hands.lock().unwrap_or_else(|e| e.into_inner());
        let hand = hands.entry(team.to_string()).or_default();
        Arc::clone(hand)
    }

    /// Hands `items`, just committed to `team`'s outbox claimed by this
    /// instance, to the team's loop. Those it has no room for come due at
    /// their lease's end. They are put in the hand while the hands are
    /// held: a loop that forgets its team ([`Outbox::forget`]) sees them,
    /// or they go to the hand of the loop started next.
    fn hand_over(&self, team: &str, items: Vec<(String, OutboxItem)>) {
        let hand = {
            let mut hands = self.hands.lock().unwrap_or_else(|e| e.into_inner());
            let hand = Arc::clone(hands.entry(team.to_string()).or_default());
            let mut held = hand.items.lock().unwrap_or_else(|e| e.into_inner());
            let room = HANDED.saturating_sub(held.len());
            held.extend(items.into_iter().take(room));
            drop(held);
            hand
        };
        hand.ready.notify_one();
        self.needs_loop(team);
    }

    /// The dispatcher of this instance runs (`true`) or stopped.
    pub(super) fn set_dispatching(&self, on: bool) {
        self.dispatching.store(on, Ordering::SeqCst);
    }

    /// Something was committed to `team`'s outbox, or the teams' due
    /// index says it has items due: its loop looks now.
    pub fn wake(&self, team: &str) {
        self.bell(team).send_modify(|n| *n = n.wrapping_add(1));
        self.needs_loop(team);
    }

    /// `team`'s bell, which its loop hears (a count that moves on each
    /// wake).
    fn bell(&self, team: &str) -> Arc<watch::Sender<u64>> {
        let mut bells = self.bells.lock().unwrap_or_else(|e| e.into_inner());
        let bell = bells
            .entry(team.to_string())
            .or_insert_with(|| Arc::new(watch::Sender::new(0)));
        Arc::clone(bell)
    }

    /// Rings `team`'s bell if its loop has one, without starting a loop:
    /// its loop looks whether its team is still in force.
    fn ring(&self, team: &str) {
        let bells = self.bells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bell) = bells.get(team) {
            bell.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// How many destinations this instance holds a deliveries' health of
    /// (a team's webhook, each of its chat channels once used): none of a
    /// team gone.
    pub fn destinations_held(&self) -> usize {
        self.health.destinations()
    }

    /// How many teams' bells this instance holds: one a team whose loop
    /// was started, until that loop forgets its team.
    pub fn bells(&self) -> usize {
        self.bells.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Forgets `team`'s bell, hand and loop, for a loop that is idle and
    /// whose team left the configuration in force, unless a wake came
    /// since the loop last heard its bell (`heard`) or items wait in its
    /// hand: then the loop goes on and looks. Once forgotten, a later wake
    /// starts another loop with a bell and hand of its own, as a first
    /// wake does
    /// (docs/decisions/0850-a-team-s-outbox-loop-ends-once-its-team-is-gone.md).
    pub(super) fn forget(&self, team: &str, heard: &watch::Receiver<u64>) -> bool {
        // Held throughout: a wake rings the bell before it asks for a
        // loop here, so one that came after the look below starts a loop.
        let mut loops = self.loops.lock().unwrap_or_else(|e| e.into_inner());
        if heard.has_changed().unwrap_or(false) {
            return false;
        }
        let mut hands = self.hands.lock().unwrap_or_else(|e| e.into_inner());
        if hands.get(team).is_some_and(|hand| hand.holds_any()) {
            return false;
        }
        hands.remove(team);
        let bell = self
            .bells
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(team);
        loops.started.remove(team);
        drop((hands, loops));
        // Freed outside the locks.
        drop(bell);
        true
    }

    /// The op that puts `item` into `team`'s outbox, due at once: the
    /// queue's entry is the item itself; the item is kept for this
    /// instance's dispatcher (see [`Kept`]).
    pub fn enqueue(&self, team: &str, item: OutboxItem, now: Timestamp) -> Result<[Op; 1]> {
        let member = item.text()?;
        self.kept.keep(item.id, digest(&member), item);
        Ok([queue_add(team, member, now)])
    }

    /// What a commit of this instance writes to put `item` into `team`'s
    /// outbox: while this instance's dispatcher runs, the op that queues
    /// it born claimed by this instance, in the team's due queue until the
    /// end of a lease from `now` ([`Hand`]), and the item with its entry,
    /// to hand to the dispatcher once the commit applied; otherwise
    /// [`Outbox::enqueue`]'s op.
    fn write(
        &self,
        team: &str,
        item: OutboxItem,
        now: Timestamp,
    ) -> Result<(Op, Option<(String, OutboxItem)>)> {
        if !self.dispatching.load(Ordering::SeqCst) {
            let [op] = self.enqueue(team, item, now)?;
            return Ok((op, None));
        }
        let member = item.text_after(BORN_ENTRY)?;
        let op = Op::QueueAdd {
            key: keys::due_queue(team),
            member: member.clone(),
            score: now.plus(LEASE).unix_millis(),
            // As long as the outbox keeps it: an item whose writer died
            // waits for a sweeper however long the gateway is down.
            ttl: ITEM_TTL,
        };
        Ok((op, Some((member, item))))
    }
}

/// The kind of a due-queue entry that is an outbox item born claimed by
/// its writer: `o:` and the item's text, as the outbox would hold it
/// ([`Hand`]).
pub(in crate::gateway) const BORN: &str = "o";
/// What such an entry starts with: its kind, then `:`.
const BORN_ENTRY: &str = "o:";

/// An item born claimed whose writer did not settle it within its lease
/// (it died, or its hand was full or held it too long: [`Hand`]) came due
/// in `team`'s due queue as `o:<text>`: the sweeper moves it into the
/// outbox, due at once, in one commit with the removal of `remove` (its
/// due entry). The outbox's due note wakes the dispatcher of any instance,
/// which claims it as any item; the text is not read here (an unreadable
/// one is the claim's to quarantine).
pub(in crate::gateway) async fn come_due(
    gw: &Core,
    team: &Team,
    text: &str,
    remove: DueEntry,
    now: Timestamp,
) -> Result<()> {
    if text.is_empty() {
        return Err(Error::internal(
            "a born-claimed outbox entry without its item",
        ));
    }
    let add = queue_add(&team.keyspace, text.to_string(), now);
    gw.store.commit(vec![remove.cancelled(), add]).await?;
    gw.outbox.wake(&team.keyspace);
    Ok(())
}

/// How many of `team`'s outbox items wait to be delivered, `limit` at
/// most: those in its outbox, and those born claimed whose entries wait
/// in its due queue (due by a lease from `now` at the latest). For tools
/// and tests that wait for the outbox to drain; it reads the due queue's
/// entries due by then, a page at a time (a gateway never calls it).
pub async fn left(
    store: &dyn Store,
    team: &str,
    now: Timestamp,
    limit: usize,
) -> std::result::Result<usize, crate::store::StoreError> {
    const PAGE: usize = 256;
    let mut left = store
        .index_desc(&keys::outbox(team), None, limit)
        .await?
        .len();
    let queue = keys::due_queue(team);
    let mut from = Some((
        now.plus(LEASE).unix_millis().saturating_add(1),
        String::new(),
    ));
    while left < limit {
        let page = store.index_desc(&queue, from, PAGE).await?;
        left += page
            .iter()
            .filter(|e| e.member.starts_with(BORN_ENTRY))
            .count();
        match page.last() {
            Some(last) if page.len() == PAGE => from = Some((last.score, last.member.clone())),
            _ => break,
        }
    }
    Ok(left.min(limit))
}

/// The op that queues `member` in `team`'s outbox, due at `at`.
fn queue_add(team: &str, member: String, at: Timestamp) -> Op {
    Op::QueueAdd {
        key: keys::outbox(team),
        member,
        score: at.unix_millis(),
        ttl: ITEM_TTL,
    }
}

/// The wait before attempt `attempts + 1`: 2 s after the first failure
/// (within the 5 s docs/api.md#events allows), then doubling, ±20 % jitter, at most an
/// hour; a provider's `Retry-After` is honoured (within the same cap).
pub fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs(2).saturating_mul(1 << attempts.saturating_sub(1).min(16));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let wait = base.mul_f64(jitter).max(retry_after.unwrap_or_default());
    wait.min(MAX_BACKOFF)
}

/// What handling one claimed item decided: the ops that remove or
/// reschedule it, and whether it was delivered (its destination answers
/// again).
struct Handled {
    ops: Vec<Op>,
    delivered: bool,
    /// The event this claim published, not yet known to be in the log:
    /// its item leaves the queue (or is marked published) only once it is.
    unlogged: Option<Box<Unlogged>>,
}

/// Where a claimed item is stored: its queue entry (the item itself), and
/// for an item stored the earlier way (the entry its id), its own key and
/// the version read; for an item born claimed by this instance, the due
/// queue whose entry (`o:` and the item) holds it ([`Hand`]).
#[derive(Clone)]
struct Stored {
    member: String,
    legacy: Option<(String, u64)>,
    /// The team's due queue, where `member` is, for an item born claimed;
    /// `None`: `member` is in the outbox.
    born_in: Option<String>,
}

impl Stored {
    /// An item stored as its outbox entry, `member`.
    fn queued(member: String) -> Self {
        Stored {
            member,
            legacy: None,
            born_in: None,
        }
    }

    /// The ops that take the stored copy out of the outbox (out of the due
    /// queue, for an item born claimed).
    fn take_out(&self, queue: &str) -> Vec<Op> {
        let mut ops = vec![Op::QueueRemove {
            key: self.born_in.as_deref().unwrap_or(queue).to_string(),
            member: self.member.clone(),
        }];
        if let Some((key, version)) = &self.legacy {
            ops.push(Op::Delete {
                key: key.clone(),
                expected: *version,
            });
        }
        ops
    }

    /// The ops that store `item` in place of the stored copy, due at `at`.
    /// An item stored the earlier way is checked at the version read; one
    /// stored as its queue entry is a new entry (the old one, removed, is
    /// not brought back by a later settlement: its text is gone).
    fn replace(&self, queue: &str, item: &OutboxItem, at: Timestamp) -> Result<Vec<Op>> {
        let member = item.text()?;
        let mut ops = if self.born_in.is_none() && member == self.member {
            Vec::with_capacity(1)
        } else {
            self.take_out(queue)
        };
        ops.push(Op::QueueAdd {
            key: queue.to_string(),
            member,
            score: at.unix_millis(),
            ttl: item.keep_at(at),
        });
        Ok(ops)
    }

    /// The ops that queue the stored copy, as it is, in the outbox due at
    /// `at`, to live `ttl`: moved there, for an item born claimed.
    fn requeue(&self, queue: &str, at: Timestamp, ttl: Duration) -> Vec<Op> {
        let (mut ops, member) = match &self.born_in {
            None => (Vec::with_capacity(1), self.member.clone()),
            Some(_) => {
                let text = self.member.strip_prefix(BORN_ENTRY).unwrap_or_default();
                (self.take_out(queue), text.to_string())
            }
        };
        ops.push(Op::QueueAdd {
            key: queue.to_string(),
            member,
            score: at.unix_millis(),
            ttl,
        });
        ops
    }
}

/// An item whose event was published by its claim, and the answer that
/// says when the event is in the log.
struct Unlogged {
    appended: tokio::sync::oneshot::Receiver<bool>,
    stored: Stored,
    item: OutboxItem,
}

impl Unlogged {
    /// Whether the event reached the log (within `wait`).
    async fn logged(&mut self, wait: Duration) -> bool {
        matches!(
            tokio::time::timeout(wait, &mut self.appended).await,
            Ok(Ok(true))
        )
    }

    /// The ops that put the item back, its event to be published again,
    /// due at `at` (instead of removing it or marking it published).
    fn put_back(self, queue: &str, at: Timestamp) -> Result<Vec<Op>> {
        let mut item = self.item;
        item.published = false;
        self.stored.replace(queue, &item, at)
    }
}

impl Handled {
    /// The item is done with: `ops` take it out.
    fn removed(ops: Vec<Op>) -> Self {
        Handled {
            ops,
            delivered: false,
            unlogged: None,
        }
    }

    /// Where the item is queued again, if it is: its member and due time.
    fn requeued(&self) -> Option<(String, i64)> {
        self.ops.iter().find_map(|op| match op {
            Op::QueueAdd { member, score, .. } => Some((member.clone(), *score)),
            _ => None,
        })
    }
}

/// A claimed item, read and understood, to deliver.
struct Claimed {
    stored: Stored,
    item: OutboxItem,
    /// Whether the stored copy says its event was published.
    stored_published: bool,
    /// The log's answer for the event this claim published.
    appended: Option<tokio::sync::oneshot::Receiver<bool>>,
}

impl Claimed {
    /// What settling it must wait for: the event this claim published
    /// reaching the log.
    fn unlogged(&mut self) -> Option<Box<Unlogged>> {
        let appended = self.appended.take()?;
        Some(Box::new(Unlogged {
            appended,
            stored: self.stored.clone(),
            item: self.item.clone(),
        }))
    }
}

/// One claimed batch of a team's due items, in the order they came due:
/// those to deliver, and those already settled while read (gone, not an
/// item, unreadable).
struct Batch {
    queue: String,
    ready: Vec<Claimed>,
    settled: Vec<Handled>,
}

impl Batch {
    /// Whether the claim took as many entries as it asked for: more may be due.
    fn full(&self, asked: usize) -> bool {
        self.ready.len() + self.settled.len() == asked
    }
}

/// The id of the item a queue entry holds (`{"id":"<uuid>",…`, the first
/// member written), read without parsing the rest.
fn id_in(member: &str) -> Option<Uuid> {
    let rest = member.strip_prefix("{\"id\":\"")?;
    Uuid::try_parse(rest.get(..36)?).ok()
}

/// A short digest of an entry's text: a kept item is used only for the
/// very text it was written as.
fn digest(text: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(text)
}

/// What a commit writes of a change's events and notices ([`Core::record`]):
/// its ops, the events it appends to the history (announced in this
/// process once it applied) and whether it queues items (the dispatcher is
/// woken then).
#[derive(Default)]
pub(in crate::gateway) struct Recorded {
    pub ops: Vec<Op>,
    appended: Vec<(Event, Option<About>)>,
    /// The team whose outbox the commit adds to, if it does.
    queued: Option<String>,
    /// Its items born claimed by this instance, with their entries' text,
    /// for the dispatcher once it applied ([`Hand`]).
    handed: Vec<(String, OutboxItem)>,
}

impl Core {
    /// Commits `items` on their own (for events of changes that are not an
    /// interaction's unit of work) and announces or queues them.
    pub(in crate::gateway) async fn enqueue_now(
        &self,
        team: &str,
        items: Vec<OutboxItem>,
        now: Timestamp,
    ) -> Result<()> {
        let mut written = record(self, team, items, now)?;
        let ops = std::mem::take(&mut written.ops);
        // Nothing here can conflict: no op names a version.
        self.store.commit(ops).await?;
        recorded(self, written);
        Ok(())
    }
}

/// The ops that write `items` (a change's events and notices) with its
/// commit. Where the store's commits reach the event log
/// ([`Publisher::appended_by`](crate::events::Publisher::appended_by)),
/// an event is appended to the team's history in the commit, and only
/// a team with a webhook gets an item for it, marked published: its
/// dispatcher only POSTs it. Elsewhere an event is an item, which the
/// dispatcher publishes. A notice is always an item.
pub(super) fn record(
    core: &Core,
    team: &str,
    items: Vec<OutboxItem>,
    now: Timestamp,
) -> Result<Recorded> {
    let webhook = core
        .config
        .team_in(team)
        .is_some_and(|t| t.webhook.is_some());
    let mut recorded = Recorded::default();
    for item in items {
        let item = match item.task {
            Task::Event { event, about } if core.appends_history => {
                recorded.ops.push(crate::events::history_op(team, &event)?);
                // Queued only for the webhook, already published.
                let queued = webhook.then(|| OutboxItem {
                    task: Task::Event {
                        event: event.clone(),
                        about: about.clone(),
                    },
                    published: true,
                    ..item
                });
                recorded.appended.push((event, about));
                match queued {
                    Some(item) => item,
                    None => continue,
                }
            }
            _ => item,
        };
        let (op, handed) = core.outbox.write(team, item, now)?;
        recorded.ops.push(op);
        recorded.handed.extend(handed);
        recorded.queued = Some(team.to_string());
    }
    Ok(recorded)
}

/// The commit of `recorded` applied: its appended events are announced
/// here (log line, metric, in-process broadcast; the log has them
/// already), and the dispatcher woken for its items.
pub(super) fn recorded(core: &Core, recorded: Recorded) {
    for (event, about) in recorded.appended {
        core.events.announce(event, about.as_ref());
    }
    match &recorded.queued {
        Some(team) if !recorded.handed.is_empty() => {
            core.outbox.hand_over(team, recorded.handed);
        }
        Some(team) => core.outbox.wake(team),
        None => {}
    }
}

impl Outbox {
    /// Claims up to `limit` of `team`'s items due now, earliest first: one
    /// claim, whose entries are the items themselves (items stored the
    /// earlier way, under their own keys, take one read more: an `MGET`).
    async fn claim_batch(
        &self,
        store: &dyn Store,
        team: &Team,
        clock: &dyn Clock,
        limit: usize,
    ) -> Result<Batch> {
        let queue = keys::outbox(&team.keyspace);
        let now = clock.now();
        let lease = now.plus(LEASE).unix_millis();
        let claimed = store
            .index_claim_due(&queue, now.unix_millis(), limit, lease)
            .await?;
        let legacy: Vec<Option<Uuid>> = claimed
            .iter()
            .map(|e| Uuid::try_parse(&e.member).ok())
            .collect();
        let item_keys: Vec<String> = legacy
            .iter()
            .flatten()
            .map(|id| keys::outbox_item(&team.keyspace, *id))
            .collect();
        let mut read = if item_keys.is_empty() {
            Vec::new()
        } else {
            store.get(&item_keys).await?
        }
        .into_iter()
        .zip(item_keys);
        let mut batch = Batch {
            queue,
            ready: Vec::with_capacity(claimed.len()),
            settled: Vec::new(),
        };
        for (entry, old) in claimed.into_iter().zip(legacy) {
            let opened = match old {
                Some(id) => {
                    let (raw, key) = read.next().unwrap_or_default();
                    self.open_legacy(team, &batch.queue, entry.member, id, key, raw)
                }
                None => self.open_item(team, &batch.queue, entry.member),
            };
            match opened {
                Ok(claimed) => batch.ready.push(claimed),
                Err(handled) => batch.settled.push(handled),
            }
        }
        Ok(batch)
    }

    /// Understands one claimed entry, the item itself: the item to
    /// deliver, or, for one that cannot be read, the ops that settle it.
    fn open_item(&self, team: &Team, queue: &str, member: String) -> Result<Claimed, Handled> {
        let kept = id_in(&member).and_then(|id| self.kept.take(id, digest(&member)));
        let stored = Stored::queued(member);
        match kept.or_else(|| serde_json::from_str::<OutboxItem>(&stored.member).ok()) {
            Some(item) => Ok(Claimed {
                stored,
                stored_published: item.published,
                appended: None,
                item,
            }),
            None => Err(quarantined(team, queue, &stored)),
        }
    }

    /// Understands one claimed entry of an item stored the earlier way, as
    /// read with its batch (its id, key and stored value).
    fn open_legacy(
        &self,
        team: &Team,
        queue: &str,
        member: String,
        id: Uuid,
        key: String,
        raw: Option<crate::store::Versioned>,
    ) -> Result<Claimed, Handled> {
        let Some(raw) = raw else {
            // Delivered by another instance, or expired.
            return Err(Handled::removed(vec![Op::QueueRemove {
                key: queue.to_string(),
                member,
            }]));
        };
        let stored = Stored {
            member,
            legacy: Some((key, raw.version)),
            born_in: None,
        };
        match serde_json::from_str::<OutboxItem>(&raw.value) {
            Ok(item) if item.id == id => Ok(Claimed {
                stored,
                stored_published: item.published,
                appended: None,
                item,
            }),
            _ => Err(quarantined(team, queue, &stored)),
        }
    }
}

/// An entry that is not a readable item: logged once and removed, so one
/// bad item never stops the others.
fn quarantined(team: &Team, queue: &str, stored: &Stored) -> Handled {
    tracing::error!(team = %team.id, "outbox item unreadable; dropped");
    metrics::counter!("chatgate_outbox_quarantined_total").increment(1);
    Handled::removed(stored.take_out(queue))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::interaction::Contact;

    fn notice_item(now: Timestamp) -> OutboxItem {
        OutboxItem::new(
            Task::Notice {
                notice: Notice::Expired,
                interaction_id: Uuid::now_v7(),
                channel: "webchat".into(),
                conversation_id: "c-1".into(),
                contact: Contact::default(),
                locale: None,
            },
            now,
        )
    }

    /// Enqueues `item`: its id and the text of its queue entry.
    fn enqueued(outbox: &Outbox, item: OutboxItem, now: Timestamp) -> (Uuid, String) {
        let id = item.id;
        let [Op::QueueAdd { member, key, .. }] = outbox.enqueue("acme", item, now).unwrap() else {
            panic!("a queue add");
        };
        assert_eq!(key, keys::outbox("acme"));
        (id, member)
    }

    #[test]
    fn the_queue_entry_is_the_item_and_names_its_id_first() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let (id, member) = enqueued(&Outbox::new(), notice_item(now), now);
        assert_eq!(id_in(&member), Some(id));
        let back: OutboxItem = serde_json::from_str(&member).unwrap();
        assert_eq!(back.id, id);
        assert_eq!(back.text().unwrap(), member);
        assert_eq!(
            id_in(&id.to_string()),
            None,
            "an entry stored the earlier way"
        );
        assert_eq!(id_in("{\"id\":\"not-a-uuid\"}"), None);
    }

    #[test]
    fn a_kept_item_is_taken_once_and_only_for_the_text_written() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let outbox = Outbox::new();
        let (id, member) = enqueued(&outbox, notice_item(now), now);
        let taken = outbox.kept.take(id, digest(&member)).expect("kept");
        assert_eq!(taken.text().unwrap(), member);
        assert!(
            outbox.kept.take(id, digest(&member)).is_none(),
            "taken once"
        );

        // A stored copy of other text (rewritten by a retry): not this one,
        // and it is dropped.
        let (id, member) = enqueued(&outbox, notice_item(now), now);
        let mut retried: OutboxItem = serde_json::from_str(&member).unwrap();
        retried.attempts = 1;
        let other = retried.text().unwrap();
        assert_ne!(digest(&other), digest(&member));
        assert!(outbox.kept.take(id, digest(&other)).is_none());
        assert!(outbox.kept.take(id, digest(&member)).is_none());
    }

    /// While the dispatcher runs, a write's item is born claimed: its
    /// entry (`o:` and the item) waits in the team's due queue until the
    /// end of a lease (should this instance die, a sweeper moves it into
    /// the outbox then), and it is handed to the team's loop with the very
    /// entry written; otherwise it is due at once in the outbox. A hand
    /// holds a bounded number of items.
    #[test]
    fn an_item_written_while_dispatching_is_born_claimed_for_a_lease() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let outbox = Outbox::new();
        let (op, handed) = outbox.write("acme", notice_item(now), now).unwrap();
        assert!(handed.is_none(), "no dispatcher: nothing handed");
        assert!(matches!(op, Op::QueueAdd { key, score, .. }
            if key == keys::outbox("acme") && score == now.unix_millis()));

        outbox.set_dispatching(true);
        let (op, handed) = outbox.write("acme", notice_item(now), now).unwrap();
        let Op::QueueAdd {
            key, member, score, ..
        } = op
        else {
            panic!("a queue add");
        };
        assert_eq!(key, keys::due_queue("acme"), "in the team's due queue");
        assert_eq!(
            score,
            now.plus(LEASE).unix_millis(),
            "due at its lease's end"
        );
        let (written, item) = handed.expect("handed to the loop");
        assert_eq!(written, member);
        let text = item.text().unwrap();
        assert_eq!(member, format!("o:{text}"));
        assert!(
            outbox.kept.take(item.id, digest(&text)).is_none(),
            "handed, not kept"
        );
        let text = written;

        let hand = outbox.hand("acme");
        outbox.hand_over("acme", vec![(text, item)]);
        assert_eq!(hand.take_up_to(usize::MAX).len(), 1);
        let many = (0..HANDED + 5)
            .map(|_| {
                let item = notice_item(now);
                (item.text().unwrap(), item)
            })
            .collect();
        outbox.hand_over("acme", many);
        assert_eq!(
            hand.take_up_to(usize::MAX).len(),
            HANDED,
            "the rest wait for their lease"
        );
        outbox.set_dispatching(false);
        assert!(outbox
            .write("acme", notice_item(now), now)
            .unwrap()
            .1
            .is_none());
    }

    /// An item born claimed is settled in the due queue that holds it:
    /// removed from there when done; moved into the outbox, its text alone,
    /// when it is rescheduled or handed back.
    #[test]
    fn a_born_item_is_taken_out_of_the_due_queue_and_requeued_in_the_outbox() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let (queue, due_queue) = (keys::outbox("acme"), keys::due_queue("acme"));
        let mut item = notice_item(now);
        let text = item.text().unwrap();
        assert_eq!(BORN_ENTRY, format!("{BORN}:"));
        let born = Stored {
            member: item.text_after(BORN_ENTRY).unwrap(),
            legacy: None,
            born_in: Some(due_queue.clone()),
        };
        let removed = |ops: &[Op]| {
            matches!(ops.first(), Some(Op::QueueRemove { key, member })
                if *key == due_queue && *member == format!("o:{text}"))
        };
        let done = born.take_out(&queue);
        assert!(removed(&done) && done.len() == 1, "out of the due queue");

        let later = now.plus(Duration::from_secs(5));
        let handed_back = born.requeue(&queue, later, ITEM_TTL);
        assert!(removed(&handed_back));
        assert!(
            matches!(&handed_back[1..], [Op::QueueAdd { key, member, score, .. }]
                if *key == queue && *member == text && *score == later.unix_millis()),
            "the item itself, in the outbox"
        );

        item.attempts = 1;
        let retried = born.replace(&queue, &item, later).unwrap();
        assert!(removed(&retried));
        assert!(matches!(&retried[1..], [Op::QueueAdd { key, member, .. }]
            if *key == queue && *member == item.text().unwrap()));
    }

    #[test]
    fn kept_items_are_bounded_the_oldest_going_first() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let outbox = Outbox::new();
        let mut written = Vec::new();
        for _ in 0..KEPT + 10 {
            written.push(enqueued(&outbox, notice_item(now), now));
        }
        let held = outbox.kept.0.lock().unwrap().items.len();
        assert_eq!(held, KEPT);
        let (first, m) = &written[0];
        assert!(outbox.kept.take(*first, digest(m)).is_none(), "pushed out");
        let (last, m) = &written[KEPT + 9];
        assert!(outbox.kept.take(*last, digest(m)).is_some());
    }

    #[test]
    fn a_replaced_item_leaves_its_old_entry_and_a_legacy_key_is_checked() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let queue = keys::outbox("acme");
        let (_, member) = enqueued(&Outbox::new(), notice_item(now), now);
        let mut item: OutboxItem = serde_json::from_str(&member).unwrap();
        let stored = Stored::queued(member.clone());
        // The same text: only moved.
        let later = now.plus(Duration::from_secs(5));
        let moved = stored.replace(&queue, &item, later).unwrap();
        assert!(
            matches!(moved.as_slice(), [Op::QueueAdd { member: m, score, .. }]
            if *m == member && *score == later.unix_millis())
        );
        // Other text: the old entry goes, the new one comes.
        item.attempts = 2;
        let ops = stored.replace(&queue, &item, later).unwrap();
        assert!(
            matches!(ops.as_slice(), [Op::QueueRemove { member: old, .. }, Op::QueueAdd { member: new, .. }]
            if *old == member && *new == item.text().unwrap())
        );
        // Stored the earlier way: its key goes too, at the version read.
        let legacy = Stored {
            member: item.id.to_string(),
            legacy: Some((keys::outbox_item("acme", item.id), 7)),
            born_in: None,
        };
        let ops = legacy.take_out(&queue);
        assert!(matches!(
            ops.as_slice(),
            [Op::QueueRemove { .. }, Op::Delete { expected: 7, .. }]
        ));
    }
}
