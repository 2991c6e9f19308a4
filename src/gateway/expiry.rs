//! Time-outs that must be announced (docs/api.md#activity-logout-and-time-outs, docs/api.md#events): a background task
//! takes due entries from each team's due queue and emits
//! `interaction.expiring` / `interaction.expired` (and sends the `expired`
//! template). Taking an entry is atomic, so of several gateway instances
//! exactly one handles it. Reads never depend on this task: status is
//! computed from timestamps.
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::outbox::Notice;
use super::work::Step;
use super::Gateway;
use crate::config::Team;
use crate::domain::interaction::Announcement;
use crate::error::{Error, Result};
use crate::events::types::Plain;
use crate::events::EventData;
use crate::store::{keys, IndexEntry, Op};
use crate::time::{Clock, Timestamp};

/// How often the sweeper looks for due work; well inside the 5 s docs/api.md#events allows.
pub const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// Runs until `shutdown` resolves.
pub async fn run_sweeper(
    live: Arc<super::Live>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tick.tick() => {
                let gw = live.current();
                // Each team's sweep reads the clock anew: the teams before
                // it may have taken longer than a lease.
                for team in gw.config.teams.values() {
                    match gw.sweep_team(team, clock.now()).await {
                        // An outage is the store's own log's to tell (once).
                        Ok(()) | Err(Error::StoreUnavailable) => {}
                        Err(e) => {
                            tracing::warn!(team = %team.id, error = %e, "expiry sweep failed; will retry");
                        }
                    }
                }
            }
        }
    }
}

/// How long a claimed due entry waits before another sweep may take it
/// over: short, so that entries whose holder stalled with the store come
/// due again soon after it returns; the holder renews it every
/// [`RENEW_AFTER`] while it works through a batch.
const LEASE: Duration = Duration::from_secs(3);
const RENEW_AFTER: Duration = Duration::from_secs(1);
/// When an entry the store failed to handle is due again.
const RETRY: Duration = Duration::from_secs(1);
/// Batches of 100 one team's sweep handles per tick, at most.
const MAX_ROUNDS: usize = 10;

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

impl Gateway {
    /// Handles every entry of `team` due at `now`. Each is claimed with a
    /// lease and removed only in the commit that handles it: an instance
    /// that dies mid-way leaves it to come due again when the lease ends
    /// (at-least-once). An entry the store fails to handle is due again in
    /// [`RETRY`], behind the others, which go on; two failures in a row
    /// (an outage) hand the rest back as due. One that can never be
    /// handled is quarantined.
    pub async fn sweep_team(&self, team: &Team, now: Timestamp) -> Result<()> {
        let index = keys::due_queue(&team.id);
        let mut rounds = 0;
        let started = tokio::time::Instant::now();
        loop {
            // From the time of this round, not of the sweep: rounds before
            // it may have taken longer than a lease.
            let mut lease = Lease::new(now.plus(started.elapsed()));
            let due = self
                .store
                .index_claim_due(&index, now.unix_millis(), 100, lease.until)
                .await?;
            let n = due.len();
            // Entries the store failed to handle, and how many failed in a
            // row: two in a row are taken for an outage, not a busy record.
            let mut failed: Vec<&IndexEntry> = Vec::new();
            let mut in_a_row = 0;
            for (at, entry) in due.iter().enumerate() {
                self.renew_lease(&index, &mut lease, &due).await;
                let lease = lease.until;
                let remove = Op::QueueRemove {
                    key: index.clone(),
                    member: entry.member.clone(),
                };
                // `x:<id>`; `n:<id>`, an earlier version's notice entry, is
                // handled the same way: as what is due when it comes.
                // An app challenge's poll (`ciba.rs`).
                if super::ciba::is_poll(&entry.member) {
                    match self.poll_app(team, &entry.member, lease, now).await {
                        Err(Error::StoreUnavailable) => failed.push(entry),
                        Err(e) => {
                            tracing::warn!(team = %team.id, error = %e, "app poll failed; will retry")
                        }
                        Ok(()) => {}
                    }
                    continue;
                }
                let parsed = match entry.member.split_once(':') {
                    Some(("x" | "n", id)) => Uuid::parse_str(id).ok(),
                    _ => None,
                };
                let Some(id) = parsed else {
                    tracing::error!(team = %team.id, "due entry names no interaction; dropped");
                    self.store.commit(vec![remove]).await?;
                    continue;
                };
                match self.handle_due(team, id, remove.clone(), now).await {
                    Ok(()) => in_a_row = 0,
                    // Gone: nothing to announce.
                    Err(Error::NotFound(_)) => {
                        self.store.commit(vec![remove]).await?;
                        in_a_row = 0;
                    }
                    // The store failed, or this record is too busy to
                    // write: the entry goes behind the others (due again
                    // in a second), which go on; after two in a row the
                    // rest of the batch is handed back as it was due.
                    Err(Error::StoreUnavailable) => {
                        failed.push(entry);
                        in_a_row += 1;
                        if in_a_row == 2 {
                            self.hand_back(&index, &failed, lease, now.plus(RETRY))
                                .await;
                            let rest: Vec<&IndexEntry> = due[at + 1..].iter().collect();
                            self.hand_back(&index, &rest, lease, now).await;
                            return Err(Error::StoreUnavailable);
                        }
                    }
                    // A record this gateway cannot handle (a foreign or
                    // newer writer): quarantined, so it never stops the rest.
                    Err(e) => {
                        tracing::error!(team = %team.id, interaction = %id, error = %e, "due entry cannot be handled; quarantined");
                        metrics::counter!("chatgate_due_quarantined_total").increment(1);
                        self.store.commit(vec![remove]).await?;
                        in_a_row = 0;
                    }
                }
            }
            if !failed.is_empty() {
                self.hand_back(&index, &failed, lease.until, now.plus(RETRY))
                    .await;
                return Err(Error::StoreUnavailable);
            }
            // At most a bounded amount of work per tick: the next tick goes on.
            rounds += 1;
            if n < 100 || rounds == MAX_ROUNDS {
                return Ok(());
            }
        }
    }

    /// Moves the batch's entries still held (`claimed`: those handled were
    /// removed or moved already, and are left as they are) to a new lease
    /// when theirs is due for renewal. Best effort: a store that cannot
    /// take it leaves them to the lease they have, which ends soon.
    async fn renew_lease(&self, index: &str, lease: &mut Lease, claimed: &[IndexEntry]) {
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
        let renewed = self.store.queue_move_unchanged(index, &held, next.until);
        match renewed.await {
            Ok(_) => *lease = next,
            Err(e) => tracing::debug!(error = %e, "due entries left to their lease"),
        }
    }

    /// Moves `entries`, claimed with `lease`, to be due at `at` (best
    /// effort: a store that cannot take even that leaves them to their
    /// lease).
    async fn hand_back(&self, index: &str, entries: &[&IndexEntry], lease: i64, at: Timestamp) {
        let leased: Vec<IndexEntry> = entries
            .iter()
            .map(|e| IndexEntry {
                member: e.member.clone(),
                score: lease,
            })
            .collect();
        let back = self
            .store
            .queue_move_unchanged(index, &leased, at.unix_millis());
        if let Err(e) = back.await {
            tracing::debug!(error = %e, "due entries left to their lease");
        }
    }

    /// Announces what is due of an interaction when its entry comes: its
    /// expiry once its authentication has ended (the event and the
    /// `expired` text), else its expiry notice once due; committed (with
    /// the entry's removal) in the outbox. The write puts the entry back at
    /// what is due next, if anything.
    async fn handle_due(&self, team: &Team, id: Uuid, entry: Op, now: Timestamp) -> Result<()> {
        let done = self
            .transact(team, id, now, |w| {
                let s = w.settings;
                let mut expired = false;
                // The taken entry goes first: the write may put it back at a
                // new due time.
                w.first(entry.clone());
                // Nothing due (moved by activity, or announced already):
                // the write re-schedules it.
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
}
