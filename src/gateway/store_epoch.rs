//! Noticing a store that came back empty
//! (docs/operations.md#when-redis-comes-back-empty): each team has a marker
//! record in the store, written when first found absent. A marker this
//! process saw before and now finds gone (or rewritten) means the store lost
//! the team's data, and with it the used token ids that stopped replays: for
//! `assertion_max_age` from then, pre-chat assertions and login tokens
//! issued before it are refused.
//!
//! The marker is read beside the one-time ids it guards, in the same round
//! trip as a pre-chat assertion's used `jti` ([`get_noticing_reset`]), so
//! the first request after the store was emptied already finds it so; a
//! login callback whose interaction is gone reads it too before it
//! answers.
//!
//! The marker carries the team's hash tag (one marker per team, so a
//! Cluster master that loses its data is noticed for the teams it held) and
//! a TTL, renewed while any instance runs (docs/decisions/0048-a-store-that-comes-back-empty.md).
//!
//! In the background, every [`CHECK_EVERY`], the watch reads the store's
//! node markers (`Store::node_markers`: one per Cluster master, one on one
//! Redis), not the teams': a node that lost its data lost its marker, and
//! only then are all the teams' markers read, at once. Beside that it reads
//! the markers of teams it has not settled yet (at its start, after a
//! reload adds them) and renews the others' daily, a slice a round
//! ([decision 0196](../../docs/decisions/0196-store-resets-are-watched-per-node.md)).
use std::sync::Arc;
use std::time::Duration;

use super::audit::ConfigSource;
use super::core::epochs::{self, Seen};
use super::core::trail;
use super::records::{Loaded, StoredEpoch};
use super::Core;
use crate::config::Team;
use crate::domain::login_token::LEEWAY_SECS;
use crate::error::{Error, Result};
use crate::store::{keys, Versioned};
use crate::time::every::Every;
use crate::time::{Clock, Timestamp};

/// How often each team's marker is read: a store emptied is noticed within
/// this (and the 5 s docs/operations.md promises).
pub const CHECK_EVERY: Duration = Duration::from_secs(2);
/// The marker's life; every instance renews it every [`RENEW_EVERY`]. It
/// outlives any token's validity, so a marker that expired because no
/// instance ran that long hides no replay.
const MARKER_TTL: Duration = Duration::from_secs(7 * 86_400);
/// Once a day: six of the marker's seven days are left when it is
/// renewed, and an idle instance renews about one team's a second at
/// 100,000 teams, where hourly renewals took 28 (and more than the 25 a
/// second [`RENEWALS_PER_ROUND`] allows: a backlog that never ended;
/// docs/decisions/0701-team-markers-are-renewed-daily.md).
const RENEW_EVERY: Duration = Duration::from_secs(86_400);

/// How long a start that finds the store without one of its node markers
/// (a new store, or one that came back empty) waits before it records
/// anything in a trail: past one [`CHECK_EVERY`] and a second, so that an
/// instance that ran before the store was emptied has noticed it and
/// recorded `audit.trail_reset` first (docs/audit.md#resets,
/// docs/decisions/0489-a-start-on-an-empty-store-lets-the-reset-be-recorded-first.md).
pub const FRESH_START_WAIT: Duration = Duration::from_secs(3);

/// At start, before the first request: records the configuration in
/// force (`config.changed`, docs/audit.md#configuration-changes) as this
/// process's first audit entries. At once when the store has all its node
/// markers, `wait` is zero, or the store does not answer (its outage is
/// for the store's own log and the start's reads to tell). Else (a new
/// store, or one come back empty) after `wait` — by default
/// [`FRESH_START_WAIT`] on Redis — in the background: the start goes on
/// and serves, and every other audit entry of this process waits for the
/// start's (`core::trail::FirstEntries`), so that a team's trail still
/// shows a running instance's `audit.trail_reset`, then the configuration
/// in force, then what requests did. A memory store, new and this
/// process's alone (no instance knew its trails), is recorded so by
/// default too, with no wait: the start's time does not depend on the
/// store (10,000 teams' entries are the recording's, not the start's,
/// docs/performance.md#idle-teams).
pub async fn record_the_start(core: &Arc<Core>, wait: Option<Duration>, clock: Arc<dyn Clock>) {
    let in_background = match (wait, &core.config().store.backend) {
        (None, crate::config::StoreBackend::Memory) => Some(Duration::ZERO),
        (wait, _) => {
            let wait = wait.unwrap_or(FRESH_START_WAIT);
            let fresh = !wait.is_zero() && lacks_a_node_marker(core).await;
            fresh.then_some(wait)
        }
    };
    let Some(wait) = in_background else {
        return super::audit::record_configuration(core, ConfigSource::Start, &clock).await;
    };
    if !wait.is_zero() {
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "the store has no node marker (new, or come back empty): the first audit entries wait for a running instance to record the reset"
        );
    }
    core.first_entries().hold();
    let core = Arc::clone(core);
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        let recording = super::audit::record_configuration(&core, ConfigSource::Start, &clock);
        super::core::trail::as_the_start(recording).await;
        core.first_entries().release();
    });
}

/// Whether the store answers without one of its node markers.
async fn lacks_a_node_marker(core: &Core) -> bool {
    let markers = core.node_markers().await;
    core.get(&markers)
        .await
        .is_ok_and(|read| !read.iter().all(Option::is_some))
}

/// The detail of the refusal.
pub const ISSUED_BEFORE_RESET: &str = "issued before the store was reset";

/// What a check of a team's marker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Nothing new.
    Whole,
    /// This check found the marker gone: the store lost the team's data.
    ResetNoticedHere,
    /// Another instance noticed a reset that still counts.
    ResetNoticedElsewhere,
}

/// Whether a token issued at `iat` (unix seconds) is refused after a reset
/// at `reset_at`: issued in a second that began before the reset (so a
/// token of the reset's own second is refused too), while such a token
/// could still be valid: `max_age`, its longest life, plus the leeway its
/// `exp` is checked with; a `max_age` of 0 bounds no life, so then for as
/// long as the marker that remembers the reset lives.
pub fn issued_before_reset(
    iat: i64,
    reset_at: Timestamp,
    max_age: Duration,
    now: Timestamp,
) -> bool {
    let reset_second = (reset_at.unix_millis() + 999).div_euclid(1000);
    let could_be_valid = if max_age.is_zero() {
        MARKER_TTL
    } else {
        max_age + Duration::from_secs(LEEWAY_SECS.unsigned_abs())
    };
    iat < reset_second && now < reset_at.plus(could_be_valid)
}

/// Watches the store every [`CHECK_EVERY`] until `shutdown` resolves; the
/// first round runs at once (start-up) and reads every team's marker.
pub async fn run_store_watch(
    live: Arc<super::Live>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut nodes = NodeMarkers::default();
    let mut rounds = Every::new(CHECK_EVERY, shutdown);
    while rounds.next().await {
        watch_round(&live.current(), &mut nodes, clock.now()).await;
    }
}

/// One round: the node markers; every team's marker when one of them was
/// lost, else the teams not yet settled and a slice of those whose
/// renewal is due.
async fn watch_round(core: &Core, nodes: &mut NodeMarkers, now: Timestamp) {
    let lost = nodes.check(core, now).await;
    if lost {
        core.epochs().lost();
    }
    let all = core.config().teams.values().map(AsRef::as_ref);
    let teams: Vec<&Team> = if lost {
        all.collect()
    } else {
        let epochs = core.epochs();
        let mut renewals = 0;
        all.filter(|team| match epochs.seen(&team.id) {
            Seen { version: None, .. } => true,
            Seen { renewed, .. } if renewed.is_none_or(|r| now >= r.plus(RENEW_EVERY)) => {
                renewals += 1;
                renewals <= RENEWALS_PER_ROUND
            }
            _ => false,
        })
        .collect()
    };
    check_store_epochs(core, &teams, now).await;
    if lost {
        super::audit::record_store_resets(core, &teams, now).await;
    }
}

/// Team markers renewed in one round at most: 10 000 teams' in under
/// seven minutes, at a few commands a second; 100 000 teams' in about 67
/// minutes, of the six days a daily renewal leaves.
const RENEWALS_PER_ROUND: usize = 50;

/// What this process saw of the store's node markers: each one's version
/// and when it renewed it.
#[derive(Default)]
struct NodeMarkers {
    seen: std::collections::HashMap<String, (u64, Timestamp)>,
}

impl NodeMarkers {
    /// Reads the node markers (one `MGET`: one command per master on a
    /// Cluster), writes those absent and renews the others daily; true
    /// when one seen before is gone or was written anew by another
    /// instance (its node lost its data). A marker not seen before (the
    /// first round, a new master) is only recorded.
    async fn check(&mut self, core: &Core, now: Timestamp) -> bool {
        let markers = core.node_markers().await;
        // An outage is the store's own log's to tell (once).
        let Ok(read) = core.get(&markers).await else {
            return false;
        };
        let mut lost = false;
        for (key, raw) in markers.into_iter().zip(read) {
            let before = self.seen.get(&key).copied();
            let (version, renewed) = match raw {
                Some(found) => (found.version, before.map_or(now, |(_, r)| r)),
                None => {
                    let marker = StoredEpoch {
                        at: now,
                        r: before.is_some(),
                    };
                    match write_marker(core, &key, 0, marker).await {
                        Ok(Some(version)) => (version, now),
                        // Another instance wrote it first, or the store
                        // failed: read at the next round.
                        Ok(None) | Err(_) => {
                            lost |= before.is_some();
                            self.seen.remove(&key);
                            continue;
                        }
                    }
                }
            };
            lost |= before.is_some_and(|(v, _)| v != version);
            let renewed = if now >= renewed.plus(RENEW_EVERY) {
                match epochs::renew_marker(core, &key, MARKER_TTL).await {
                    Ok(_) => now,
                    Err(_) => renewed,
                }
            } else {
                renewed
            };
            self.seen.insert(key, (version, renewed));
        }
        lost
    }
}

/// How many times this process found a node of the store that lost its
/// data (on a Cluster, one master; on one Redis, the store): what the
/// API teams held are checked against, and written back where lost
/// (docs/operations.md#when-redis-comes-back-empty).
pub fn node_losses(core: &Core) -> u64 {
    core.epochs().losses()
}

/// Refuses a token issued at `iat` (unix seconds) before the team's
/// store was found reset, for `max_age` after the reset.
pub(crate) fn refuse_issued_before_reset(
    core: &Core,
    team: &Team,
    iat: i64,
    max_age: Duration,
    now: Timestamp,
) -> Result<()> {
    match core.epochs().seen(&team.id).reset_at {
        Some(reset_at) if issued_before_reset(iat, reset_at, max_age, now) => {
            Err(Error::InvalidToken(ISSUED_BEFORE_RESET))
        }
        _ => Ok(()),
    }
}

/// Reads `keys` of `team` and, in the same round trip, its marker,
/// which it settles (and logs) before it answers: a request that reads
/// a one-time id so knows whether the store lost it.
pub(crate) async fn get_noticing_reset(
    core: &Core,
    team: &Team,
    mut keys: Vec<String>,
    now: Timestamp,
) -> Result<Vec<Option<Versioned>>> {
    keys.push(keys::store_epoch(&team.id));
    let mut read = core.get(&keys).await?;
    let marker = read.pop().flatten();
    let found = settle_marker(core, team, marker, now).await?;
    say_resets(&[(team.id.as_str(), found)]);
    Ok(read)
}

/// Reads `team`'s marker and settles it (and logs what it found).
pub(crate) async fn notice_reset(core: &Core, team: &Team, now: Timestamp) -> Result<()> {
    get_noticing_reset(core, team, Vec::new(), now).await?;
    Ok(())
}

/// `e` of a unit of work on the interaction of a token issued at `iat`:
/// an interaction that is gone may have gone with the store's data,
/// which its marker tells; then the token is refused as issued before
/// the reset.
pub(crate) async fn gone_with_store(
    core: &Core,
    team: &Team,
    iat: i64,
    max_age: Duration,
    now: Timestamp,
    e: Error,
) -> Error {
    if !matches!(e, Error::NotFound(_)) {
        return e;
    }
    if let Err(read) = notice_reset(core, team, now).await {
        return read;
    }
    match refuse_issued_before_reset(core, team, iat, max_age, now) {
        Err(refused) => refused,
        Ok(()) => e,
    }
}

/// Teams a reset line names; the rest are counted.
const NAMED: usize = 10;

/// One line for the teams whose reset was noticed here, one for those
/// another instance noticed; none when nothing was found. Each counts its
/// teams and names the first [`NAMED`].
fn say_resets(found: &[(&str, Found)]) {
    let teams = |which: Found| {
        let teams: Vec<&str> = found
            .iter()
            .filter(|(_, f)| *f == which)
            .map(|(t, _)| *t)
            .collect();
        let first = teams.iter().take(NAMED).copied().collect::<Vec<_>>();
        (teams.len(), first.join(","))
    };
    let (count, first) = teams(Found::ResetNoticedHere);
    if count > 0 {
        tracing::warn!(
            teams = count,
            first = %first,
            "the store was reset: its data is lost; assertions and login tokens issued before now are refused for assertion_max_age"
        );
    }
    let (count, first) = teams(Found::ResetNoticedElsewhere);
    if count > 0 {
        tracing::info!(
            teams = count,
            first = %first,
            "the store was reset (noticed by another instance); assertions and login tokens issued before it are refused"
        );
    }
}

/// Markers read per round trip: one `MGET` (per slot on a Cluster).
const MARKERS_PER_READ: usize = 1_000;

/// Reads and settles `teams`' markers, with one log line for the resets
/// noticed. The markers are read [`MARKERS_PER_READ`] at a time, so one
/// costs one Redis a few reads, not one per team.
async fn check_store_epochs(core: &Core, teams: &[&Team], now: Timestamp) {
    let mut found = Vec::new();
    for chunk in teams.chunks(MARKERS_PER_READ) {
        let markers: Vec<String> = chunk.iter().map(|t| keys::store_epoch(&t.id)).collect();
        // An outage is the store's own log's to tell (once).
        let Ok(read) = core.get(&markers).await else {
            break;
        };
        for (team, raw) in chunk.iter().zip(read) {
            match settle_marker(core, team, raw, now).await {
                Ok(f) => found.push((team.id.as_str(), f)),
                Err(Error::StoreUnavailable) => {}
                Err(e) => {
                    tracing::warn!(team = %team.id, error = %e, "the store's marker could not be checked; will retry");
                }
            }
        }
    }
    say_resets(&found);
}

/// Settles `team`'s marker as read (`raw`): writes it when absent (a
/// reset if this process had seen it), marks a marker another instance
/// wrote in its place as a reset, and renews its TTL now and then.
async fn settle_marker(
    core: &Core,
    team: &Team,
    raw: Option<Versioned>,
    now: Timestamp,
) -> Result<Found> {
    let key = keys::store_epoch(&team.id);
    let known = core.epochs().seen(&team.id);
    let read = Loaded::<StoredEpoch>::parse(key.clone(), raw)?;
    let Some(marker) = read.value else {
        return write_absent_marker(core, team, &key, known, now).await;
    };
    let mut version = read.version;
    let rewritten = known.version.is_some_and(|v| v != read.version);
    if rewritten && !marker.r {
        // Written as a first start by an instance that had not seen the
        // store before the loss: a reset for every instance.
        let reset = StoredEpoch { r: true, ..marker };
        match write_marker(core, &key, read.version, reset).await? {
            Some(v) => version = v,
            None => return Ok(Found::Whole),
        }
    }
    let reset = (marker.r || rewritten).then_some(marker.at);
    let newer = reset.filter(|at| known.reset_at.is_none_or(|k| k < *at));
    if newer.is_some_and(|at| now < at.plus(trail::RESET_LATELY)) {
        trail::lose(core, &team.keyspace);
    }
    let mut renewed = known.renewed;
    if renewed.is_none_or(|r| now >= r.plus(RENEW_EVERY)) {
        epochs::renew_marker(core, &key, MARKER_TTL).await?;
        renewed = Some(now);
    }
    core.epochs().set(
        &team.id,
        Seen {
            version: Some(version),
            reset_at: newer.or(known.reset_at),
            renewed,
        },
    );
    let max_age = team.settings.assertion_max_age.get();
    Ok(match newer {
        Some(at) if now < at.plus(max_age) => Found::ResetNoticedElsewhere,
        _ => Found::Whole,
    })
}

/// Writes `team`'s marker (at `key`), found absent, where this process
/// had seen it as `known`: a reset when it had seen one before.
async fn write_absent_marker(
    core: &Core,
    team: &Team,
    key: &str,
    known: Seen,
    now: Timestamp,
) -> Result<Found> {
    let lost = known.version.is_some();
    if lost {
        // Lost, whoever writes the marker again: refused from now,
        // also by a request of this process that reads it meanwhile; and
        // the team's trail with it.
        let reset_at = Some(now);
        core.epochs().set(&team.id, Seen { reset_at, ..known });
        trail::lose(core, &team.keyspace);
    }
    let marker = StoredEpoch { at: now, r: lost };
    // Another instance wrote it first: read at the next check.
    let Some(version) = write_marker(core, key, 0, marker).await? else {
        return Ok(Found::Whole);
    };
    core.epochs().set(
        &team.id,
        Seen {
            version: Some(version),
            reset_at: if lost { Some(now) } else { known.reset_at },
            renewed: Some(now),
        },
    );
    Ok(if lost {
        Found::ResetNoticedHere
    } else {
        Found::Whole
    })
}

/// Writes `marker` over version `expected` (0: absent); its version,
/// or `None` when another writer came first.
async fn write_marker(
    core: &Core,
    key: &str,
    expected: u64,
    marker: StoredEpoch,
) -> Result<Option<u64>> {
    epochs::write_marker(core, key, expected, &marker, MARKER_TTL).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_AGE: Duration = Duration::from_secs(600);

    #[test]
    fn a_token_of_a_second_that_began_before_the_reset_is_refused_while_it_could_be_valid() {
        let reset = Timestamp::from_unix_millis(1_000_500);
        let soon = reset.plus(Duration::from_secs(1));
        assert!(issued_before_reset(999, reset, MAX_AGE, soon));
        assert!(issued_before_reset(1_000, reset, MAX_AGE, soon));
        assert!(!issued_before_reset(1_001, reset, MAX_AGE, soon));
        // A reset on a whole second: that second's tokens come after it.
        let whole = Timestamp::from_unix_millis(1_000_000);
        assert!(issued_before_reset(999, whole, MAX_AGE, soon));
        assert!(!issued_before_reset(1_000, whole, MAX_AGE, soon));
        // Until max_age and the exp leeway have passed, a token issued
        // before could still be valid; after that, no refusal.
        let leeway = Duration::from_secs(LEEWAY_SECS.unsigned_abs());
        assert!(issued_before_reset(
            999,
            reset,
            MAX_AGE,
            reset.plus(MAX_AGE)
        ));
        assert!(!issued_before_reset(
            999,
            reset,
            MAX_AGE,
            reset.plus(MAX_AGE + leeway)
        ));
        // A max_age of 0 bounds no token's life: refused while the marker
        // remembers the reset.
        let zero = Duration::ZERO;
        assert!(issued_before_reset(
            999,
            reset,
            zero,
            reset.plus(MAX_AGE * 100)
        ));
        assert!(!issued_before_reset(
            999,
            reset,
            zero,
            reset.plus(MARKER_TTL)
        ));
    }
}
