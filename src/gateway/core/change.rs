//! The second door: one unit of work for the records that are not an
//! interaction (a console session, a sign-in under way, a subject unlocked
//! by an agent, a team's recorded configuration, a marker, a claim), with
//! the audit entries and events of what it does
//! (docs/architecture.md#the-second-door).
//!
//! [`Core::change`] reads the keys it is given in one round trip, lets the
//! use case decide on what it read ([`Change`]: typed reads; puts and
//! deletes; audit drafts; events and notices), and commits all of it at
//! once: the drafts chained after the team's audit head, in the team's
//! line on it (`trail`), the events in the same commit as the outbox
//! writes them. Another writer first (a record's version moved, or the
//! head) makes it read again and decide again, with the unit of work's
//! budget (`store::Backoff`). What [`Core::transact`] does after a commit
//! applied is done here too: the entries counted, the events announced.
use std::time::Duration;

use serde::Serialize;

use super::records::{Loaded, Readable};
use super::trail::{self, HeadPlace};
use super::work::Step;
use super::writes::{Write, Writes};
use super::{Core, OutboxItem};
use crate::domain::audit::{Draft, Entry, Known};
use crate::error::{Error, Result};
use crate::store::{Backoff, Commit, Op, Versioned};
use crate::time::Timestamp;

/// The team of a change of a key found before its team is known (what a
/// browser brings: a state, a link's code), which audits and announces
/// nothing.
pub(in crate::gateway) const NO_TEAM: &str = "";

/// What a change read, and what it decides to write.
pub struct Change {
    read: Vec<(String, Option<Versioned>)>,
    ops: Vec<Op>,
    drafts: Vec<Draft>,
    items: Vec<OutboxItem>,
    /// Creates whose key taken is an answer ([`once`]'s `None`).
    claims: Vec<Op>,
    /// Chain even without drafts: the head is read in line, and a trail
    /// found shorter than known gets its reset entry (`trail::vouch`).
    even_empty: bool,
}

impl Change {
    fn of(read: Vec<(String, Option<Versioned>)>) -> Self {
        Change {
            read,
            ops: Vec::new(),
            drafts: Vec::new(),
            items: Vec::new(),
            claims: Vec::new(),
            even_empty: false,
        }
    }

    /// Chains on the team's head even with no draft of its own.
    pub(super) fn chain_even_empty(&mut self) {
        self.even_empty = true;
    }

    /// The record under `key` as read, with its version; `key` must be
    /// one of those the change named.
    pub fn read<R: Readable>(&self, key: &str) -> Result<Loaded<R>> {
        Loaded::parse(key.to_string(), self.raw(key)?.cloned())
    }

    /// The record under `key` as stored, for a record read leniently;
    /// `key` must be one of those the change named.
    pub fn raw(&self, key: &str) -> Result<Option<&Versioned>> {
        let (_, raw) = self
            .read
            .iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| Error::internal("a change read a key it did not name"))?;
        Ok(raw.as_ref())
    }

    /// [`Writes::put`], named on the change itself so that a family that
    /// only puts, creates, claims and deletes needs no import (so for the
    /// next three).
    pub fn put<R, S: Serialize>(
        &mut self,
        at: &Loaded<R>,
        value: &S,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        Writes::put(self, at, value, ttl)
    }

    /// [`Writes::create`].
    pub fn create<S: Serialize>(
        &mut self,
        key: &str,
        value: &S,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        Writes::create(self, key, value, ttl)
    }

    /// [`Writes::claim`].
    pub fn claim<S: Serialize>(
        &mut self,
        key: &str,
        value: &S,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        Writes::claim(self, key, value, ttl)
    }

    /// [`Writes::delete`].
    pub fn delete<R>(&mut self, at: &Loaded<R>) {
        Writes::delete(self, at)
    }

    /// An op of the core's own in the same commit (a due entry taken).
    pub(super) fn also(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// An audit entry of the change, chained in its commit.
    pub fn audit(&mut self, draft: Draft) {
        self.drafts.push(draft);
    }

    /// An event or notice of the change, written in its commit and
    /// announced once it applied.
    pub fn emit(&mut self, item: OutboxItem) {
        self.items.push(item);
    }
}

impl Writes for Change {
    fn take(&mut self, write: Write) {
        match write.claim {
            true => self.claims.push(write.op),
            false => self.ops.push(write.op),
        }
    }
}

impl Core {
    /// Reads `keys` of `team` (one round trip), lets `decide` change what
    /// it read, and commits the change with its audit entries and events;
    /// reads and decides again when another writer came first. `decide`
    /// may run several times: it must not have effects outside its
    /// [`Change`]. [`Step::Answer`] writes nothing. A change that audits
    /// and names the team's [`crate::store::keys::audit_head`] among `keys`
    /// chains on the head as read with them, sparing a round trip.
    pub(in crate::gateway) async fn change<T>(
        &self,
        team: &str,
        keys: &[String],
        now: Timestamp,
        decide: impl FnMut(&mut Change) -> Result<Step<T>>,
    ) -> Result<T> {
        changed(self, team, keys, now, decide)
            .await
            .map(|(value, _)| value)
    }
}

/// [`Core::change`], answering the audit entries it wrote too.
pub(super) async fn changed<T>(
    core: &Core,
    team: &str,
    keys: &[String],
    now: Timestamp,
    decide: impl FnMut(&mut Change) -> Result<Step<T>>,
) -> Result<(T, Vec<Entry>)> {
    let first = read(core, keys).await?;
    changed_on(core, team, first, now, decide).await
}

/// Records of one team read for a change to come, in one round trip
/// ([`read`]), for a use case that must look at what several teams hold
/// before it knows what to change in any (a report whose message may be
/// any team's): it reads each here, then changes the ones it must with
/// [`on`].
pub struct Read(Vec<(String, Option<Versioned>)>);

impl Read {
    /// The record under `key` as read, with its version; `key` must be
    /// one of those read.
    pub fn get<R: Readable>(&self, key: &str) -> Result<Loaded<R>> {
        let (_, raw) = self
            .0
            .iter()
            .find(|(k, _)| k == key)
            .ok_or_else(|| Error::internal("a read names a key it did not read"))?;
        Loaded::parse(key.to_string(), raw.clone())
    }
}

/// `keys` read in one round trip (none: no read), for [`on`].
pub(in crate::gateway) async fn read(core: &Core, keys: &[String]) -> Result<Read> {
    let raw = match keys.is_empty() {
        true => Vec::new(),
        false => core.get(keys).await?,
    };
    Ok(Read(keys.iter().cloned().zip(raw).collect()))
}

/// [`Core::change`] of the keys `first` read: its first decision is on
/// what `first` holds (no read again), the next ones, after another
/// writer, on a fresh read of the same keys.
pub(in crate::gateway) async fn on<T>(
    core: &Core,
    team: &str,
    first: Read,
    now: Timestamp,
    decide: impl FnMut(&mut Change) -> Result<Step<T>>,
) -> Result<T> {
    changed_on(core, team, first, now, decide)
        .await
        .map(|(value, _)| value)
}

/// [`on`], answering the audit entries it wrote too.
async fn changed_on<T>(
    core: &Core,
    team: &str,
    first: Read,
    now: Timestamp,
    mut decide: impl FnMut(&mut Change) -> Result<Step<T>>,
) -> Result<(T, Vec<Entry>)> {
    // In the team's line on its audit head from the first try that
    // audits something, to the commit (see `trail`).
    let mut place: Option<HeadPlace<'_>> = None;
    let mut backoff = Backoff::default();
    let keys: Vec<String> = first.0.iter().map(|(k, _)| k.clone()).collect();
    let mut next = Some(first);
    loop {
        let Read(records) = match next.take() {
            Some(first) => first,
            None => read(core, &keys).await?,
        };
        let mut change = Change::of(records);
        let value = match decide(&mut change)? {
            Step::Answer(value) => return Ok((value, Vec::new())),
            Step::Write(value) | Step::WriteIfChanged(value) => value,
        };
        match commit(core, team, change, &mut place, now).await? {
            Tried::Applied(entries) => return Ok((value, entries)),
            Tried::ClaimTaken => {
                return Err(Error::internal("a retried change claimed a taken key"));
            }
            Tried::HandedHeadStale => {}
            Tried::Conflict => backoff.wait().await?,
        }
    }
}

/// One change, as [`Core::change`] makes it — `keys` of `team` read in
/// one round trip (none: no read), `decide` on what was read — committed
/// once: `None` when another writer came first (a version moved, a
/// claim's key taken), and nothing was written — for a use case to which
/// that is an answer (a lease another instance holds, a state another
/// request consumed, a marker a twin wrote). A `once` that audits takes a
/// head moved meanwhile for such a race too: an audited change that must
/// land is a [`Core::change`].
pub(in crate::gateway) async fn once<T>(
    core: &Core,
    team: &str,
    keys: &[String],
    now: Timestamp,
    decide: impl FnOnce(&mut Change) -> Result<Step<T>>,
) -> Result<Option<T>> {
    let Read(records) = read(core, keys).await?;
    let mut change = Change::of(records);
    let value = match decide(&mut change)? {
        Step::Answer(value) => return Ok(Some(value)),
        Step::Write(value) | Step::WriteIfChanged(value) => value,
    };
    let mut place = None;
    Ok(match commit(core, team, change, &mut place, now).await? {
        Tried::Applied(_) => Some(value),
        Tried::ClaimTaken | Tried::HandedHeadStale | Tried::Conflict => None,
    })
}

/// What one round of [`until!`] found: done, with its answer, or that
/// what it read moved meanwhile, so it is to be made again.
pub(in crate::gateway) enum Round<T> {
    Done(T),
    Again,
}

/// Changes made in rounds until they settle: `change::until!(rounds, |n|
/// { round })` makes `round` (a block of the use case: its reads and its
/// changes, each through a door that retries its own conflicts) again
/// while it answers [`Round::Again`] — a change whose keys depend on what
/// a first read found (a team's tenant, an index's parts), claims taken
/// over before a claim is tried again, teams built again while what they
/// were built against moved — at most `rounds` times, `n` its number
/// (from 0). Answers `Some` of the first [`Round::Done`], `None` when the
/// last round still answered `Again`: what that means (an error, or what
/// was done so far) is the caller's. A `?` in `round` is the use case's
/// own, as in any block. The one loop of rounds around the doors
/// (`tools/door_rules.py` counts any other in the families); a macro, not
/// a function over an async closure, because such a closure's future,
/// which borrows what the round keeps across rounds, is not yet proven
/// `Send` where the use cases run (a spawned worker, an `async_trait`
/// method): docs/decisions/0527-rounds-of-changes-are-one-door.md.
macro_rules! until {
    ($rounds:expr, |$n:pat_param| $round:block) => {{
        let mut done = ::std::option::Option::None;
        for $n in 0..$rounds {
            if let $crate::gateway::change::Round::Done(value) = $round {
                done = ::std::option::Option::Some(value);
                break;
            }
        }
        done
    }};
}
pub(in crate::gateway) use until;

/// Writes `drafts` (made by `make` on each try) to `team`'s trail, on
/// their own: [`Core::change`] of nothing else. Answers the entries
/// written.
pub async fn append(
    core: &Core,
    team: &str,
    make: impl Fn() -> Vec<Draft>,
    now: Timestamp,
) -> Result<Vec<Entry>> {
    let (_, entries) = changed(core, team, &[], now, |c| {
        make().into_iter().for_each(|d| c.audit(d));
        Ok(Step::Write(()))
    })
    .await?;
    Ok(entries)
}

/// A sink's cursor says it sent `team`'s trail up to `cursor`: when the
/// trail is shorter than that, and no reset was recorded since, records
/// the reset (`audit.trail_reset`, on its own). Answers the entries
/// written (none when nothing was to record, or another writer did).
pub(in crate::gateway) async fn vouch(
    core: &Core,
    team: &str,
    cursor: &Known,
    now: Timestamp,
) -> Result<Vec<Entry>> {
    core.audit_known.vouch(team, cursor);
    let (_, entries) = changed(core, team, &[], now, |c| {
        c.chain_even_empty();
        Ok(Step::Write(()))
    })
    .await?;
    Ok(entries)
}

/// How one commit of a change went.
enum Tried {
    /// It applied, with these audit entries.
    Applied(Vec<Entry>),
    /// A claim's key was taken: nothing else was.
    ClaimTaken,
    /// The head handed over in line was not the store's: read it afresh.
    HandedHeadStale,
    /// Another writer moved a record read.
    Conflict,
}

/// Commits `change`: its ops and claims, its drafts chained after the
/// team's head (in line at `place`, joined when first needed), its
/// events; what a commit that applied leads to is done.
async fn commit<'a>(
    core: &'a Core,
    team: &str,
    change: Change,
    place: &mut Option<HeadPlace<'a>>,
    now: Timestamp,
) -> Result<Tried> {
    let Change {
        mut ops,
        drafts,
        items,
        mut claims,
        even_empty,
        read,
        ..
    } = change;
    if team == NO_TEAM && !(drafts.is_empty() && items.is_empty() && !even_empty) {
        return Err(Error::internal("a change of no team audited or announced"));
    }
    let claimed = ops.len()..ops.len() + claims.len();
    ops.append(&mut claims);
    let (chained, handed) = match drafts.is_empty() && !even_empty {
        true => (trail::Chained::none(), false),
        false => {
            let place = match place {
                Some(place) => place,
                None => place.insert(trail::join_head(core, team).await),
            };
            // The head, when the change read it with its records.
            let head = crate::store::keys::audit_head(team);
            let head = read
                .into_iter()
                .find(|(k, _)| *k == head)
                .map(|(_, raw)| raw);
            trail::chain_in_line(core, team, place, head, drafts, now).await?
        }
    };
    ops.extend(chained.ops);
    let mut recorded = super::outbox::record(core, team, items, now)?;
    ops.append(&mut recorded.ops);
    if ops.is_empty() {
        return Ok(Tried::Applied(Vec::new()));
    }
    let mut commit = std::pin::pin!(core.store().commit(ops));
    let sent = futures::poll!(&mut commit);
    if let Some(place) = place.as_mut() {
        place.sent(chained.head);
    }
    let outcome = match sent {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => commit.await,
    };
    let stale = |place: &mut Option<HeadPlace<'a>>| {
        if let Some(place) = place.as_mut() {
            place.read_afresh();
        }
    };
    Ok(match outcome? {
        Commit::Applied => {
            super::outbox::recorded(core, recorded);
            trail::written(core, team, &chained.entries);
            Tried::Applied(chained.entries)
        }
        // Every op before it matched: the claim alone is refused.
        Commit::Conflict { op } if claimed.contains(&op) => {
            stale(place);
            Tried::ClaimTaken
        }
        // The head handed over was not the store's (the commit ahead did
        // not apply, or another writer moved it): read afresh, in line,
        // at once.
        Commit::Conflict { .. } if handed => {
            stale(place);
            Tried::HandedHeadStale
        }
        Commit::Conflict { .. } => Tried::Conflict,
    })
}
