//! `config.changed` (docs/audit.md#configuration-changes): at start and at
//! each reload, a team whose effective configuration differs from the one
//! last recorded for it gets one entry — the digest, the keys that
//! changed, the API keys and security keys added and removed, never a
//! value. The last recorded configuration (`{team}:acfg`) and its digest
//! kept apart (`{team}:acfgd`, what a start reads of every team) are
//! moved in the entry's commit, against the versions read, so of several
//! instances starting with one configuration one records it. A team that
//! leaves the configuration at a reload gets its entry in its own trail,
//! recorded as the empty configuration: everything removed
//! (docs/decisions/0216-a-team-that-leaves-is-recorded-in-its-own-trail.md).

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::config::{ConfigPrint, Team};
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::gateway::change::Change;
use crate::gateway::records::{ConfigParts as Parts, Loaded, StoredConfig};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::{Clock, Timestamp};

/// Why the configuration is recorded: `start`, `reload`, a write
/// through the operator API (`api`), or an API team written back after
/// the store came back empty (`restore`).
#[derive(Debug, Clone, Copy)]
pub enum Source {
    Start,
    Reload,
    Api,
    Restore,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Start => "start",
            Source::Reload => "reload",
            Source::Api => "api",
            Source::Restore => "restore",
        }
    }
}

/// Teams recorded at once (a gateway may serve thousands).
const AT_ONCE: usize = 128;

/// Teams whose recorded digest is read in one store call (on a Cluster,
/// one `MGET` per slot of them, side by side).
const READ_AT_ONCE: usize = 500;

/// Calls of [`READ_AT_ONCE`] teams in flight at once: a start of 100 000
/// teams waits on 200 calls, not one after the other.
const READS_AT_ONCE: usize = 8;

/// Records `config.changed` for each team of the configuration in force
/// whose configuration is not the one last recorded. The digests recorded
/// (`{team}:acfgd`) are read first, [`READ_AT_ONCE`] teams a call: only a
/// team whose digest differs has its record read and moved. A failure
/// (the store down) is one warning, and the recording is kept: tried again
/// every [`RETRY`] in the background until it is written (one line then),
/// or until a newer recording of this process (a later reload) takes over,
/// which records whatever is still unrecorded against the configuration
/// then in force (docs/audit.md#configuration-changes).
pub async fn record_configuration(core: &Arc<Core>, source: Source, clock: &Arc<dyn Clock>) {
    let ticket = core.first_entries().next_recording();
    let first = record_changed(core, source, clock.now()).await;
    if let Err(e) = first {
        tracing::warn!(error = %e, "config.changed not recorded in the audit trail yet; kept and tried again until it is");
        let (core, clock) = (Arc::clone(core), Arc::clone(clock));
        tokio::spawn(async move {
            let again = |now| record_changed(&core, source, now);
            until_written(&core, &clock, ticket, again).await
        });
    }
}

/// How long a recording the store refused waits before it is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Tries `record` again every [`RETRY`] until it is written, or until a
/// recording newer than `ticket` began; one line when it is written.
async fn until_written<'a, F, Fut>(core: &'a Core, clock: &Arc<dyn Clock>, ticket: u64, record: F)
where
    F: Fn(Timestamp) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<()>> + 'a,
{
    let mut attempts = 1u64;
    loop {
        tokio::time::sleep(RETRY).await;
        if core.first_entries().latest_recording() != ticket {
            return;
        }
        attempts += 1;
        if record(clock.now()).await.is_ok() {
            tracing::info!(attempts, "config.changed recorded in the audit trail");
            return;
        }
    }
}

/// [`record_configuration`]'s one try: the first failure stops it.
async fn record_changed(core: &Core, source: Source, now: Timestamp) -> crate::error::Result<()> {
    use futures::TryStreamExt as _;
    let mut phases = crate::start_phases::Phases::new(matches!(source, Source::Start));
    let changed = changed_teams(core).await?;
    phases.done(
        "config.changed: the recorded digests compared",
        core.config().teams.len(),
    );
    let n = changed.len();
    futures::stream::iter(changed.into_iter().map(Ok))
        .try_for_each_concurrent(AT_ONCE, |team| record_team(core, team, source, now))
        .await?;
    phases.done("config.changed: the changed ones recorded", n);
    Ok(())
}

/// The teams of the configuration in force whose recorded digest is not
/// their configuration's (or none is recorded).
async fn changed_teams(core: &Core) -> crate::error::Result<Vec<&Team>> {
    use futures::{StreamExt as _, TryStreamExt as _};
    let teams: Vec<&Team> = core.config().teams.values().map(|t| &**t).collect();
    let read = |chunk: &[&Team]| {
        let digests: Vec<String> = chunk
            .iter()
            .map(|t| keys::audit_config_digest(&t.keyspace))
            .collect();
        async move { core.get(&digests).await }
    };
    let chunks = teams.chunks(READ_AT_ONCE);
    let mut reads = futures::stream::iter(chunks.clone().map(read)).buffered(READS_AT_ONCE);
    let mut changed = Vec::new();
    for chunk in chunks {
        let Some(read) = reads.try_next().await? else {
            break;
        };
        for (team, kept) in chunk.iter().zip(read) {
            if kept_digest(kept.as_ref()).as_deref() != Some(team.print.digest().as_str()) {
                changed.push(*team);
            }
        }
    }
    Ok(changed)
}

/// Records `config.changed` at a reload for each of `gone`, the teams the
/// configuration no longer has (by keyspace, `keys::keyspace`), in the
/// team's own trail: its configuration
/// is now the empty one (no key, no API key, no security key), so the
/// entry names every key as changed and every key id as removed, and
/// `digest` is the empty configuration's. Recorded once however many
/// instances reload, as any change is.
/// Kept as [`record_configuration`] keeps its recording, with the
/// reload's: tried again until written, or until a newer reload.
pub async fn record_departures(core: &Arc<Core>, gone: &[String], clock: &Arc<dyn Clock>) {
    let ticket = core.first_entries().latest_recording();
    if let Err(e) = record_gone(core, gone, clock.now()).await {
        tracing::warn!(error = %e, "config.changed of a removed team not recorded in the audit trail yet; kept and tried again until it is");
        let (core, clock, gone) = (Arc::clone(core), Arc::clone(clock), gone.to_vec());
        tokio::spawn(async move {
            let again = |now| record_gone(&core, &gone, now);
            until_written(&core, &clock, ticket, again).await
        });
    }
}

/// [`record_departures`]' one try: the first failure stops it.
async fn record_gone(core: &Core, gone: &[String], now: Timestamp) -> crate::error::Result<()> {
    use futures::TryStreamExt as _;
    let empty = ConfigPrint::default();
    let teams = gone.iter().map(|id| Recorded::gone(id, &empty));
    futures::stream::iter(teams.map(Ok::<_, crate::error::Error>))
        .try_for_each_concurrent(AT_ONCE, |team| record(core, team, Source::Reload, now))
        .await
}

/// A team's configuration as its entry records it.
struct Recorded<'a> {
    /// The team's keyspace (`keys::keyspace`): where its trail is.
    id: &'a str,
    print: &'a ConfigPrint,
    api_keys: Vec<String>,
    kids: Vec<String>,
}

impl<'a> Recorded<'a> {
    /// `team` as it is, in its keyspace.
    fn of(team: &'a Team) -> Self {
        Recorded {
            id: &team.keyspace,
            print: &team.print,
            api_keys: team.api_keys.iter().map(|k| k.id.clone()).collect(),
            kids: team.security_keys.iter().map(|k| k.kid.clone()).collect(),
        }
    }

    /// The team of keyspace `id` gone: the empty configuration `empty`.
    fn gone(id: &'a str, empty: &'a ConfigPrint) -> Self {
        Recorded {
            id,
            print: empty,
            api_keys: Vec::new(),
            kids: Vec::new(),
        }
    }
}

async fn record_team(
    core: &Core,
    team: &Team,
    source: Source,
    now: Timestamp,
) -> crate::error::Result<()> {
    record(core, Recorded::of(team), source, now).await
}

/// Records `team`'s configuration when it is not the one last recorded:
/// its record, the digest kept beside it and the entry, in one change;
/// a record whose digest alone was not kept gets it now.
async fn record(
    core: &Core,
    team: Recorded<'_>,
    source: Source,
    now: Timestamp,
) -> crate::error::Result<()> {
    let read = recorded_keys(team.id);
    let retention = Some(core.config().audit.retention);
    let acting = Acting::system(None);
    core.change(team.id, &read, now, |c| {
        match record_in(c, &team, source, &acting, retention)? {
            true => Ok(Step::Write(())),
            false => Ok(Step::Answer(())),
        }
    })
    .await
}

/// The keys a change reads to record a team's configuration with
/// [`record_in`]: the recorded configuration, the team's audit head and
/// the digest kept beside it, by the team's keyspace (`keys::keyspace`).
pub fn recorded_keys(id: &str) -> [String; 3] {
    [
        keys::audit_config(id),
        keys::audit_head(id),
        keys::audit_config_digest(id),
    ]
}

/// In `c`, which read [`recorded_keys`]: `team`'s configuration recorded
/// with its entry by `acting`, when it is not the one last recorded.
/// Whether anything is to be written.
fn record_in(
    c: &mut Change,
    team: &Recorded<'_>,
    source: Source,
    acting: &Acting,
    retention: Option<std::time::Duration>,
) -> crate::error::Result<bool> {
    let [key, _, digest_key] = recorded_keys(team.id);
    let digest = team.print.digest();
    let loaded: Loaded<StoredConfig> = c.read(&key)?;
    let kept = c.raw(&digest_key)?;
    let kept_is_current = kept_digest(kept).as_deref() == Some(digest.as_str());
    // The digest moves with the record, against the version read.
    let kept = Loaded::<()> {
        key: digest_key.clone(),
        version: kept.map_or(0, |k| k.version),
        value: None,
    };
    let before = loaded.value.clone().map(StoredConfig::into_parts);
    if before.as_ref().map(|b| b.0.as_str()) == Some(digest.as_str()) {
        if kept_is_current {
            return Ok(false);
        }
        // Recorded, but its digest not kept beside it: kept now.
        c.put(&kept, &digest, retention)?;
        return Ok(true);
    }
    c.audit(entry(team, source, acting, &digest, before.as_ref()));
    let stored = StoredConfig::of_parts((
        digest.clone(),
        team.print.recorded_keys(),
        team.api_keys.clone(),
        team.kids.clone(),
    ));
    c.put(&loaded, &stored, retention)?;
    c.put(&kept, &digest, retention)?;
    Ok(true)
}

/// In `c`, which read [`recorded_keys`] of `id` (a team's keyspace,
/// `keys::keyspace`, `team`'s when there is one): the `config.changed`
/// entry of a write through the operator API by `acting`, the team now
/// `team` (`None`: deleted, recorded as the empty configuration), when
/// its configuration is not the one last recorded: whether anything is
/// to be written.
pub fn record_api_write(
    c: &mut Change,
    id: &str,
    team: Option<&Team>,
    acting: &Acting,
    retention: std::time::Duration,
) -> crate::error::Result<bool> {
    let empty = ConfigPrint::default();
    let recorded = match team {
        Some(t) => Recorded::of(t),
        None => Recorded::gone(id, &empty),
    };
    record_in(c, &recorded, Source::Api, acting, Some(retention))
}

/// In `c`, which read [`recorded_keys`] of `team`: its configuration
/// recorded as written back by the system after the store came back
/// empty (docs/operations.md#when-redis-comes-back-empty).
pub fn record_restore(
    c: &mut Change,
    team: &Team,
    retention: std::time::Duration,
) -> crate::error::Result<()> {
    let acting = Acting::system(None);
    record_in(
        c,
        &Recorded::of(team),
        Source::Restore,
        &acting,
        Some(retention),
    )
    .map(|_| ())
}

/// The `config.changed` entry of `team`, now at `digest`, from what was
/// recorded `before` (none: the first time).
fn entry(
    team: &Recorded<'_>,
    source: Source,
    acting: &Acting,
    digest: &str,
    before: Option<&Parts>,
) -> Draft {
    let empty = Parts::default();
    let (previous, old_keys, old_api, old_kids) = before.unwrap_or(&empty);
    let (api_keys, kids) = (&team.api_keys, &team.kids);
    let detail = json!({
        "source": source.as_str(),
        "digest": digest,
        "previous_digest": before.map(|_| previous),
        "changed": team.print.changed_since(old_keys),
        "api_keys_added": missing_from(api_keys, old_api),
        "api_keys_removed": missing_from(old_api, api_keys),
        "security_keys_added": missing_from(kids, old_kids),
        "security_keys_removed": missing_from(old_kids, kids),
    });
    let mut draft = Draft::success(Action::ConfigChanged, acting, Target::default());
    if let serde_json::Value::Object(d) = detail {
        draft.detail = d;
    }
    draft
}

/// The digest kept beside a team's recorded configuration, if any.
fn kept_digest(kept: Option<&crate::store::Versioned>) -> Option<String> {
    Loaded::<String>::parse(String::new(), kept.cloned())
        .ok()?
        .value
}

/// The members of `these` that `those` lacks, in order.
fn missing_from(these: &[String], those: &[String]) -> Vec<String> {
    these
        .iter()
        .filter(|x| !those.contains(x))
        .cloned()
        .collect()
}
