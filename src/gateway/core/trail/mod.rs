//! The audit trail's chain, part of the unit of work
//! (docs/audit.md#how-it-is-stored): drafts chained after a team's head
//! into the commit of the action they record, or on their own.
//!
//! Each team's chain has a head record (`seq`, `hash`); an entry is
//! written under its `seq` in the same commit as the head moves to it,
//! with the head's version checked. Two writers that read one head
//! cannot both commit: the second conflicts, reads the new head and
//! chains after it, so `seq` has no gap and `prev` is always the entry
//! before, across instances
//! (docs/decisions/0145-an-audit-entry-commits-with-its-action.md).
//!
//! Within an instance, the audited commits of one team take their turn on
//! its head (`record_locks`, keyed by the team): each chains after the head
//! the one ahead will have written, handed over when its commit is sent, so
//! a burst of one team's audited actions commits one after another without
//! re-reading the head and without conflicts; compare-and-set still checks
//! every hand-over, and only another instance's writes make a commit retry
//! (docs/decisions/0220-a-team-s-audited-commits-queue-on-its-head.md).
//!
//! A trail found shorter than this process, or a sink, knew of it (the
//! store came back empty, or its head was set back) continues with an
//! `audit.trail_reset` entry, chained after the head as found, and one
//! ERROR line (docs/audit.md#resets, `known`); so does a trail this
//! process saw lost with its team's data ([`lose`]) whose chain records
//! no reset.
mod first;
mod known;

use std::time::Duration;

use uuid::Uuid;

use super::record_locks::Place;
pub use super::records::StoredHead;
use super::records::{put, Loaded};
use super::Core;
use crate::domain::audit::{
    seal, trail_reset, unrecorded_reset, Action, Draft, Entry, Found, Head, ResetReason,
};
use crate::error::{Error, Result};
use crate::store::{keys, Op};
use crate::time::Timestamp;
pub use first::{as_the_start, FirstEntries};
pub use known::Witness;

/// Drafts chained after a head: the ops that write them and move the
/// head, and the entries as written.
pub(in crate::gateway) struct Chained {
    pub ops: Vec<Op>,
    pub entries: Vec<Entry>,
    /// The head as the commit leaves it (`None`: nothing chained), for the
    /// next in line.
    pub head: Option<Loaded<StoredHead>>,
}

impl Chained {
    /// Nothing chained.
    pub(super) fn none() -> Self {
        Chained {
            ops: Vec::new(),
            entries: Vec::new(),
            head: None,
        }
    }
}

/// A unit of work's place in its team's line on the audit head.
pub(super) type HeadPlace<'a> = Place<'a, Loaded<StoredHead>, String>;

/// Joins `team`'s line on its audit head and waits for its turn, once
/// the start's own entries are recorded (`first`).
pub(super) async fn join_head<'a>(core: &'a Core, team: &str) -> HeadPlace<'a> {
    core.first_entries.pass().await;
    Place::join(&core.audit_heads, team.to_string()).await
}

/// `drafts` chained after `team`'s head, in line at `place`: what the
/// commit ahead handed over, else the head as `read` with other records
/// (the value of [`keys::audit_head`]), else a read of its own. Answers
/// whether it was handed over (a conflict then reads afresh at once).
pub(super) async fn chain_in_line(
    core: &Core,
    team: &str,
    place: &mut HeadPlace<'_>,
    read: Option<Option<crate::store::Versioned>>,
    drafts: Vec<Draft>,
    now: Timestamp,
) -> Result<(Chained, bool)> {
    let (loaded, handed) = match (place.handed(|_| true).await, read) {
        (Some(head), _) => (head, true),
        (None, Some(raw)) => {
            let loaded = Loaded::parse(keys::audit_head(team), raw)?;
            see(core, team, &loaded);
            (loaded, false)
        }
        (None, None) => (read_head(core, team).await?, false),
    };
    let drafts = with_reset(core, team, &loaded, drafts, now);
    let chained = chain_after(team, &loaded, drafts, now, core.config().audit.retention)?;
    Ok((chained, handed))
}

/// The head to chain after, in line: what the commit ahead handed over, or
/// a read (one round trip). Answers whether it was handed over.
async fn head_in_line(
    core: &Core,
    team: &str,
    place: &mut HeadPlace<'_>,
) -> Result<(Loaded<StoredHead>, bool)> {
    Ok(match place.handed(|_| true).await {
        Some(head) => (head, true),
        None => (read_head(core, team).await?, false),
    })
}

/// Reads `team`'s head (one round trip), and notes what it says of the
/// trail.
pub(in crate::gateway) async fn read_head(core: &Core, team: &str) -> Result<Loaded<StoredHead>> {
    let key = keys::audit_head(team);
    let raw = core.get(std::slice::from_ref(&key)).await?.pop().flatten();
    let loaded = Loaded::parse(key, raw)?;
    see(core, team, &loaded);
    Ok(loaded)
}

/// Notes `team`'s head as read from the store (never a head handed over
/// in line, which its commit may not have written).
fn see(core: &Core, team: &str, loaded: &Loaded<StoredHead>) {
    let found = loaded.value.as_ref().map(StoredHead::found);
    core.audit_known.see(team, found.as_ref());
}

/// `drafts`, after an `audit.trail_reset` entry when the trail as
/// `loaded` is shorter than this process knows of it and no reset was
/// recorded since, or when this process saw it lost and its chain
/// records no reset (docs/audit.md#resets).
fn with_reset(
    core: &Core,
    team: &str,
    loaded: &Loaded<StoredHead>,
    drafts: Vec<Draft>,
    now: Timestamp,
) -> Vec<Draft> {
    let found = loaded.value.as_ref().map(StoredHead::found);
    let known = core.audit_known.known(team);
    // A trail this process saw lost: the store's reset, whatever it knew
    // of the trail.
    let lost = core.audit_known.lost(team, found.as_ref());
    let reason = match unrecorded_reset(&known, found.as_ref()) {
        _ if lost => ResetReason::StoreReset,
        None => return drafts,
        Some(reason) => reason,
    };
    // A trail restarted by an instance that knew nothing of it, in the
    // seconds before this one noticed the store reset: the reset's.
    let reset_at = core.epochs().seen(team).reset_at;
    let reason = match reason {
        ResetReason::RolledBack if reset_at.is_some_and(|at| now < at.plus(RESET_LATELY)) => {
            ResetReason::StoreReset
        }
        reason => reason,
    };
    std::iter::once(trail_reset(&known, reason))
        .chain(drafts)
        .collect()
}

/// How long after this process noticed a team's store reset a trail found
/// set back is taken as that reset, not a rollback; and how recent a reset
/// another instance noticed is for this process to take the team's trail
/// as lost ([`lose`]).
pub(in crate::gateway) const RESET_LATELY: Duration = Duration::from_secs(600);

/// `team`'s trail (by keyspace) is lost with its data: its next entry is
/// `audit.trail_reset`, reason `store_reset`, until a head read or
/// written records one (docs/audit.md#resets).
pub(in crate::gateway) fn lose(core: &Core, team: &str) {
    core.audit_known.lose(team);
}

/// The head as `loaded` holds it, or the start of the chain.
pub(in crate::gateway) fn head_of(loaded: &Loaded<StoredHead>) -> Head {
    loaded.value.clone().map_or_else(Head::genesis, Head::from)
}

/// The ops that write `drafts` after the head as `loaded`, each entry
/// and the head living `retention` from now.
fn chain_after(
    team: &str,
    loaded: &Loaded<StoredHead>,
    drafts: Vec<Draft>,
    now: Timestamp,
    retention: Duration,
) -> Result<Chained> {
    let mut head = head_of(loaded);
    let mut reset = loaded.value.as_ref().and_then(|h| h.found().reset);
    let mut ops = Vec::with_capacity(drafts.len() + 1);
    let mut entries = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let is_reset = draft.action == Action::TrailReset;
        let entry = seal(&head, keys::team_of(team), draft, Uuid::now_v7(), now);
        if is_reset {
            reset = Some((entry.seq, entry.id.to_string()));
        }
        let text = super::records::entry_text(&entry)
            .map_err(|e| Error::internal_from("an audit entry could not be encoded", e))?;
        ops.push(Op::Put {
            key: keys::audit_entry(team, entry.seq),
            expected: 0,
            version: crate::store::fresh_version(),
            value: text,
            ttl: Some(retention),
            companion: None,
        });
        head = Head::of(&entry);
        entries.push(entry);
    }
    let stored = entries.last().map(|last| StoredHead::after(last, reset));
    if let Some(stored) = &stored {
        ops.push(put(&loaded.key, loaded.version, stored, Some(retention))?);
    }
    let head = match (ops.last(), stored) {
        (Some(Op::Put { key, version, .. }), Some(stored)) => Some(Loaded {
            key: key.clone(),
            version: *version,
            value: Some(stored),
        }),
        _ => None,
    };
    Ok(Chained { ops, entries, head })
}

/// `drafts` chained after `team`'s head, in its line: the ops go into the
/// commit of the action they record, which conflicts, and is decided
/// again, should another writer move the head first. The place (none when
/// there is nothing to chain) holds the turn until the commit is sent:
/// then [`HeadPlace::sent`] hands [`Chained::head`] on.
pub(super) async fn chain<'a>(
    core: &'a Core,
    team: &str,
    drafts: Vec<Draft>,
    now: Timestamp,
) -> Result<(Chained, Option<HeadPlace<'a>>)> {
    if drafts.is_empty() {
        return Ok((Chained::none(), None));
    }
    let mut place = join_head(core, team).await;
    let (loaded, _) = head_in_line(core, team, &mut place).await?;
    let drafts = with_reset(core, team, &loaded, drafts, now);
    let chained = chain_after(team, &loaded, drafts, now, core.config().audit.retention)?;
    Ok((chained, Some(place)))
}

tokio::task_local! {
    /// The trail resets recorded by a write-back ([`counting_resets`]).
    static COUNTED_RESETS: std::cell::Cell<usize>;
}

/// Runs `work` (a store reset's write-back of the teams) with the trail
/// resets it records counted rather than logged one line each: its one
/// line says how many (docs/operations.md#when-redis-comes-back-empty).
/// Answers `work`'s answer and the count.
pub(in crate::gateway) async fn counting_resets<T>(
    work: impl std::future::Future<Output = T>,
) -> (T, usize) {
    let counted = async {
        let out = work.await;
        (out, COUNTED_RESETS.with(std::cell::Cell::get))
    };
    COUNTED_RESETS.scope(std::cell::Cell::new(0), counted).await
}

/// The entries of a commit of `team` (a keyspace) that applied are
/// counted; a reset recorded is one ERROR line, or counted within
/// [`counting_resets`].
pub(super) fn written(core: &Core, team: &str, entries: &[Entry]) {
    // What this process wrote it knows of too: the `previous_seq` of a
    // later reset counts it.
    if let Some(last) = entries.last() {
        let resets = entries.iter().rev();
        let reset = (resets
            .clone()
            .find(|e| e.action == Action::TrailReset.as_str()))
        .map(|e| (e.seq, e.id.to_string()));
        let found = Found {
            seq: last.seq,
            reset,
        };
        core.audit_known.see(team, Some(&found));
    }
    for e in entries {
        let reset = e.action == Action::TrailReset.as_str();
        if reset && COUNTED_RESETS.try_with(|n| n.set(n.get() + 1)).is_err() {
            tracing::error!(
                team = %e.team,
                seq = e.seq,
                previous_seq = %e.detail.get("previous_seq").unwrap_or(&serde_json::Value::Null),
                reason = %e.detail.get("reason").and_then(serde_json::Value::as_str).unwrap_or("-"),
                "the audit trail is shorter than it was known to be (the store came back empty, or its head was set back): recorded as audit.trail_reset, and the sinks send again from it (docs/audit.md#resets)"
            );
        }
        let action = Action::ALL
            .into_iter()
            .find(|a| a.as_str() == e.action)
            .map_or("other", Action::as_str);
        metrics::counter!("chatgate_audit_entries_total", "action" => action).increment(1);
    }
}
