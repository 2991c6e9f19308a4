//! The due queue's sweeper ([`Sweeper`]) and time-outs that must be announced (docs/api.md#activity-logout-and-time-outs, docs/api.md#events): a background task
//! takes due entries from each team's due queue and handles each by its
//! kind (`handle`, one arm per kind): an interaction's entry emits
//! `interaction.expiring` / `interaction.expired` (and sends the `expired`
//! template); an app challenge's entry polls the identity provider; a
//! delivery ladder's entry moves its code on to the next step; an outbox
//! item born claimed whose writer did not deliver it in time moves into
//! the outbox; a console session's entry records its end by time. Taking an entry is atomic, so of several gateway instances
//! exactly one handles it. Reads never depend on this task: status is
//! computed from timestamps.
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::due_teams;
use super::outbox::Notice;
use super::polls::Polls;
use super::work::Step;
use super::writes::{DueEntry, Writes};
use super::{Core, Live};
use crate::config::Team;
use crate::domain::interaction::Announcement;
use crate::error::{Error, Result};
use crate::events::types::Plain;
use crate::events::EventData;
use crate::store::{keys, IndexEntry, Store};
use crate::time::every::Every;
use crate::time::{Clock, Timestamp};

/// How often the sweeper looks for due work; well inside the 5 s docs/api.md#events allows.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The expiry sweeper, started by the app: every [`SWEEP_EVERY`] it
/// takes each team's due entries and handles each by its kind
/// (`handle`). It holds the clock and the gateway in force, taken anew
/// at each round: an entry's handling is a use case's unit of work, under
/// the team's settings of the moment. Claiming, renewing and handing back
/// entries need only the store.
pub struct Sweeper {
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    /// Where claimed app polls go to be asked (never asked here).
    polls: Polls,
}

impl Sweeper {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>, polls: Polls) -> Self {
        Sweeper { live, clock, polls }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut rescan = due_teams::Rescan::default();
        let mut rounds = Every::new(SWEEP_EVERY, shutdown);
        while rounds.next().await {
            // The generation before the gateway: never newer than it.
            let generation = due_teams::Generations {
                now: self.live.generation(),
                last_removal: self.live.last_removal(),
            };
            let gw = self.live.current();
            rescan
                .step(gw.store().as_ref(), gw.config(), generation, SWEEP_EVERY)
                .await;
            // The index answers again after failing: its first
            // slice and its sweep at once, not a round later.
            if rescan.taken(self.sweep_due_teams(&gw).await) {
                rescan
                    .step(gw.store().as_ref(), gw.config(), generation, SWEEP_EVERY)
                    .await;
                rescan.taken(self.sweep_due_teams(&gw).await);
            }
        }
    }

    /// Sweeps the teams the due index says have entries due: an idle
    /// gateway reads the index alone (docs/architecture.md#many-teams).
    /// The teams taken are swept in passes, a [`SLICE`] of each team's
    /// entries per pass, round-robin, so a team of a few entries is swept
    /// in the first pass whatever the others' backlogs (decision 0140); a
    /// team whose slice came back short is done and handed back at once.
    /// Answers whether the index answered, every part of it (on a Redis
    /// Cluster, each master's).
    async fn sweep_due_teams(&self, gw: &Core) -> bool {
        let (store, index) = (gw.store().as_ref(), keys::DUE_INDEX_DUEQ);
        let mut whole = true;
        loop {
            // An outage is the store's own log's to tell (once).
            let Ok((taken, hold)) = due_teams::take_telling(store, index, self.clock.now()).await
            else {
                return false;
            };
            whole &= taken.whole;
            let teams = taken.teams;
            let mut going: Vec<&String> = teams.iter().collect();
            for _ in 0..MAX_PASSES {
                let mut more = Vec::with_capacity(going.len());
                for id in going {
                    // A keyspace no team in force has (one deleted, its
                    // id written again or not) is left to its TTLs.
                    let team = gw.config().team_in(id);
                    // Each slice reads the clock anew: the teams before it
                    // may have taken longer than a lease.
                    let full = match team {
                        Some(team) => {
                            match sweep_slice(gw, team, self.clock.now(), &self.polls).await {
                                Ok(full) => full,
                                Err(Error::StoreUnavailable) => false,
                                Err(e) => {
                                    tracing::warn!(team = %team.id, error = %e, "expiry sweep failed; will retry");
                                    false
                                }
                            }
                        }
                        None => false,
                    };
                    if full {
                        more.push(id);
                    } else {
                        due_teams::release(store, index, id, team.is_some(), hold).await;
                    }
                }
                going = more;
                if going.is_empty() {
                    break;
                }
            }
            // Teams with more due than this tick's passes took: the next
            // tick goes on.
            for id in going {
                let known = gw.config().team(id).is_some();
                due_teams::release(store, index, id, known, hold).await;
            }
            if teams.len() < due_teams::TAKE {
                return whole;
            }
        }
    }
}

/// Handles one claimed due entry, `taken`, at `now`: the one place that
/// tells the kinds of entry apart (by its member's `<kind>:`), an arm
/// each, which calls the kind's own function with the entry, whose
/// removal it commits with what it writes (its write may queue it again).
/// `None`: an entry of no kind this gateway knows, to drop. (Adding a
/// kind: docs/architecture.md#time-outs.)
async fn handle(
    gw: &Core,
    team: &Team,
    taken: &DueEntry,
    lease: i64,
    now: Timestamp,
    polls: &Polls,
) -> Option<Result<()>> {
    let member = taken.member();
    let remove = taken.clone();
    let (kind, key) = member.split_once(':')?;
    Some(match kind {
        // `x:<id>`; `n:<id>`, an earlier version's notice entry, is handled
        // the same way: as what is due when it comes.
        "x" | "n" => announce_due(gw, team, Uuid::parse_str(key).ok()?, remove, now).await,
        // `o:<item>`, an outbox item born claimed whose writer did not
        // settle it within its lease: moved into the outbox, due at once
        // (`core/outbox`, docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md).
        super::outbox::BORN => super::outbox::come_due(gw, team, key, remove, now).await,
        // An app challenge's poll (`challenges/app.rs`), held with `lease`: claimed
        // here, asked by the poller (never awaited here).
        super::challenges::app::KIND => {
            super::challenges::app::claim_app_poll(gw, team, remove, lease, polls).await
        }
        // A delivery ladder's step timed out (`ladder.rs`): held with
        // `lease`, claimed here, moved on by the poller (never awaited
        // here); the entry stays until the move's commit replaces it.
        super::challenges::ladder::KIND => {
            let (id, cid) = super::challenges::ladder::parse_due_member(member)?;
            super::challenges::ladder::claim_ladder_due(gw, team, id, cid, lease, polls).await
        }
        // A console session's end by time (`console.rs`): recorded when it
        // comes, whether or not its cookie comes back.
        super::console::SESSION_END => {
            super::console::session_end_due(gw, team, key, &remove, now).await
        }
        _ => return None,
    })
}

/// How long a claimed due entry waits before another sweep may take it
/// over: short, so that entries whose holder stalled with the store come
/// due again soon after it returns; the holder renews it every
/// [`RENEW_AFTER`] while it works through a batch.
const LEASE: Duration = Duration::from_secs(3);
const RENEW_AFTER: Duration = Duration::from_secs(1);
/// When an entry the store failed to handle is due again.
const RETRY: Duration = Duration::from_secs(1);
/// Due entries one team's slice takes, at most: in a pass, a team waits
/// for at most this many of each team swept before it.
pub const SLICE: usize = 25;
/// Passes over the teams taken per tick, at most: a team's entries handled
/// per tick stay bounded (1 000), the next tick goes on.
const MAX_PASSES: usize = 40;

/// The lease a sweep holds its claimed entries with: until when (the
/// entries' score, ms), counted from the gateway's time `since`, taken at
/// the real instant `taken` (so that it is renewed in time while the
/// sweep's `now` stands still).
struct Lease {
    since: Timestamp,
    until: i64,
    taken: tokio::time::Instant,
}

impl Lease {
    fn new(since: Timestamp) -> Self {
        Lease {
            since,
            until: since.plus(LEASE).unix_millis(),
            taken: tokio::time::Instant::now(),
        }
    }
}

/// Handles a slice of `team`'s entries due at `now`, [`SLICE`] at most;
/// answers whether the slice was full (more may be due). Each is claimed
/// with a lease and removed only in the commit that handles it: an
/// instance that dies mid-way leaves it to come due again when the lease
/// ends (at-least-once). An entry the store fails to handle is due again
/// in [`RETRY`], behind the others, which go on; two failures in a row (an
/// outage) hand the rest back as due. One that can never be handled is
/// quarantined.
async fn sweep_slice(gw: &Core, team: &Team, now: Timestamp, polls: &Polls) -> Result<bool> {
    let store = gw.store().as_ref();
    let index = keys::due_queue(&team.keyspace);
    // The poller's lanes of this team (decision 0098).
    let polls = &polls.for_team(&team.keyspace);
    let mut lease = Lease::new(now);
    let due = store
        .index_claim_due(&index, now.unix_millis(), SLICE, lease.until)
        .await?;
    // Entries the store failed to handle, and how many failed in a row:
    // two in a row are taken for an outage, not a busy record.
    let mut failed: Vec<&IndexEntry> = Vec::new();
    let mut in_a_row = 0;
    for (at, entry) in due.iter().enumerate() {
        renew_lease(store, &index, &mut lease, &due).await;
        let lease = lease.until;
        let taken = DueEntry::new(&team.keyspace, entry.member.clone());
        let handled = handle(gw, team, &taken, lease, now, polls).await;
        if settle(gw, team, &taken, handled, now).await? {
            in_a_row = 0;
            continue;
        }
        // The store failed, or this record is too busy to write: the
        // entry goes behind the others (due again in a second), which go
        // on; after two in a row the rest of the slice is handed back as
        // it was due.
        failed.push(entry);
        in_a_row += 1;
        if in_a_row == 2 {
            hand_back(store, &index, &failed, lease, now.plus(RETRY)).await;
            let rest: Vec<&IndexEntry> = due[at + 1..].iter().collect();
            hand_back(store, &index, &rest, lease, now).await;
            return Err(Error::StoreUnavailable);
        }
    }
    if !failed.is_empty() {
        hand_back(store, &index, &failed, lease.until, now.plus(RETRY)).await;
        return Err(Error::StoreUnavailable);
    }
    Ok(due.len() == SLICE)
}

/// Settles one due entry after its handling (`None`: it names no
/// interaction): `false` when the store failed to handle it and it is to
/// be tried again; else it is done — handled, gone (`NotFound`), or
/// quarantined because this gateway can never handle it (a foreign or
/// newer writer), so that it never stops the rest.
async fn settle(
    gw: &Core,
    team: &Team,
    entry: &DueEntry,
    handled: Option<Result<()>>,
    now: Timestamp,
) -> Result<bool> {
    match handled {
        None => {
            tracing::error!(team = %team.id, "due entry names no interaction; dropped");
        }
        Some(Ok(())) => return Ok(true),
        Some(Err(Error::NotFound(_))) => {}
        Some(Err(Error::StoreUnavailable)) => return Ok(false),
        Some(Err(e)) => {
            tracing::error!(team = %team.id, entry = %entry.member(), error = %e, "due entry cannot be handled; quarantined");
            metrics::counter!("chatgate_due_quarantined_total").increment(1);
        }
    }
    gw.change(&team.keyspace, &[], now, |c| {
        c.cancel(entry);
        Ok(Step::Write(()))
    })
    .await?;
    Ok(true)
}

/// Moves the batch's entries still held (`claimed`: those handled were
/// removed or moved already, and are left as they are) to a new lease when
/// theirs is due for renewal. Best effort: a store that cannot take it
/// leaves them to the lease they have, which ends soon.
async fn renew_lease(store: &dyn Store, index: &str, lease: &mut Lease, claimed: &[IndexEntry]) {
    if lease.taken.elapsed() < RENEW_AFTER {
        return;
    }
    let next = Lease::new(lease.since.plus(lease.taken.elapsed()));
    let held: Vec<IndexEntry> = claimed
        .iter()
        .map(|e| IndexEntry {
            member: e.member.clone(),
            score: lease.until,
        })
        .collect();
    match store.queue_move_unchanged(index, &held, next.until).await {
        Ok(_) => *lease = next,
        Err(e) => tracing::debug!(error = %e, "due entries left to their lease"),
    }
}

/// Moves `entries`, claimed with `lease`, to be due at `at` (best effort: a
/// store that cannot take even that leaves them to their lease).
async fn hand_back(
    store: &dyn Store,
    index: &str,
    entries: &[&IndexEntry],
    lease: i64,
    at: Timestamp,
) {
    let leased: Vec<IndexEntry> = entries
        .iter()
        .map(|e| IndexEntry {
            member: e.member.clone(),
            score: lease,
        })
        .collect();
    let back = store.queue_move_unchanged(index, &leased, at.unix_millis());
    if let Err(e) = back.await {
        tracing::debug!(error = %e, "due entries left to their lease");
    }
}

/// Announces what is due of interaction `id` when its entry comes: its
/// expiry once its authentication has ended (the event and the `expired`
/// text), else its expiry notice once due; committed (with `entry`, the
/// entry's removal) in the outbox. The write puts the entry back at what is
/// due next, if anything.
async fn announce_due(
    gw: &Core,
    team: &Team,
    id: Uuid,
    entry: DueEntry,
    now: Timestamp,
) -> Result<()> {
    let done = gw
        .transact(team, id, now, |w| {
            let s = w.settings;
            let mut expired = false;
            // The taken entry goes first: the write may put it back at a
            // new due time.
            w.cancel_first(&entry);
            // Nothing due (moved by activity, or announced already): the
            // write re-schedules it.
            match w.rec.announce_due(now, s) {
                Some(Announcement::Expired) => {
                    w.emit(EventData::InteractionExpired(Plain));
                    w.notify(Notice::Expired);
                    expired = true;
                }
                Some(Announcement::Expiring) => {
                    w.emit(EventData::InteractionExpiring(Plain));
                }
                None => {}
            }
            // Announcements are not activity and do not refresh interaction_ttl.
            w.as_announcement();
            Box::pin(std::future::ready(Ok(Step::Write(expired))))
        })
        .await?;
    if done.value {
        metrics::counter!("chatgate_expirations_total").increment(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::SWEEP_EVERY;
    use crate::domain::ladder::{LEASE, TAKEOVER};

    /// A ladder step whose instance died comes due when its lease runs
    /// out, and the next sweep takes it: within the takeover time that
    /// docs/decisions/0200-an-advance-after-shorter-than-a-takeover-warns.md
    /// warns of.
    #[test]
    fn a_dead_instance_s_step_is_taken_over_within_the_takeover_time() {
        assert!(
            LEASE + SWEEP_EVERY <= TAKEOVER,
            "{LEASE:?} + {SWEEP_EVERY:?}"
        );
    }
}
