//! Teams written through the operator API (docs/operator-api.md): kept in
//! the store under their own hash tag, secrets sealed, each write
//! compare-and-set against the `ETag` the writer names and recorded as a
//! `config.changed` entry of the team in the same commit; then the index
//! of the API teams, and its generation, moved
//! (docs/operator-api.md#how-the-store-keeps-them).
use std::sync::Arc;

use serde_json::Value;

use super::audit::{record_api_write, recorded_keys};
use super::change::Change;
use super::operator_forms::{
    built, etag_of, opened, operator, sealed, written_body, Conditions, Write,
};
use super::operator_index;
use super::records::{Loaded, StoredApiTeam};
use super::work::Step;
use super::Core;
use crate::config::{is_secret_member, Config, Team};
use crate::domain::audit::Acting;
use crate::domain::secrets_cipher::Salts;
use crate::domain::team_secrets;
use crate::error::{Error, Result};
use crate::store::keys;
use crate::time::Timestamp;

/// What a write made: the team, whether it is new, and the generation
/// of the API teams that holds it (`0` for a dry run).
pub struct Written {
    pub team: Team,
    pub created: bool,
    pub generation: u64,
}

/// Decides a write on what `c` read: the conditions against the stored
/// team, the body checked, the sealed form put with its audit entry.
fn decide_write(
    c: &mut Change,
    config: &Config,
    w: &Write<'_>,
    now: Timestamp,
) -> Result<Step<Written>> {
    let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(w.id))?;
    w.conditions.hold(etag_of(&stored).as_deref())?;
    let op = operator(config)?;
    let (body, salts) = written_body(op, w, "id", w.id, &stored)?;
    let team = built(op, &body, config.team_of_json(&body, &salts))?;
    let created = stored.value.is_none();
    if w.dry_run {
        let generation = 0;
        return Ok(Step::Answer(Written {
            team,
            created,
            generation,
        }));
    }
    put_team(c, config, &stored, &team, (&body, &salts), &w.acting, now)?;
    let generation = 0;
    Ok(Step::Write(Written {
        team,
        created,
        generation,
    }))
}

/// In `c`, which read `stored` and [`recorded_keys`] of `team`: `team`,
/// made of `body`, stored with its secrets sealed with their salts, and
/// its `config.changed` entry by `acting`.
fn put_team(
    c: &mut Change,
    config: &Config,
    stored: &Loaded<StoredApiTeam>,
    team: &Team,
    body: (&Value, &Salts),
    acting: &Acting,
    now: Timestamp,
) -> Result<()> {
    let record = sealed(operator(config)?, &team.id, body, team.print.digest(), now);
    c.put(stored, &record, None)?;
    record_api_write(c, &team.id, Some(team), acting, config.audit.retention)
}

/// An edit of a stored API team: the body it makes and what to answer,
/// or only what to answer when nothing changes.
pub enum Edited<T> {
    To(Value, T),
    Unchanged(T),
}

/// Changes stored API team `id` by `edit`, given the configuration in
/// force and the team's body with its secrets opened: the body it makes
/// is checked as a `PUT`'s (422), stored sealed with its `config.changed`
/// entry by `acting`, and indexed. 404 when the store holds no such team;
/// no precondition (the change is made on the version read, and made
/// again on a newer one). Answers what `edit` answered and the generation
/// of the API teams that holds the change (`None`: nothing changed).
pub async fn edit_team<T>(
    core: &Core,
    id: &str,
    acting: &Acting,
    now: Timestamp,
    edit: impl FnMut(&Config, &Value) -> Result<Edited<T>>,
) -> Result<(T, Option<u64>)> {
    let config = Arc::clone(core.config());
    let edit = edited(core, &config, id, Purpose::Edit, acting, now, edit);
    marked(core, id, now, edit).await
}

/// Why a stored team is built again.
#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    /// A change of its own, checked as a `PUT` (its API keys against the
    /// API teams in force too); nothing to index when nothing changed.
    Edit,
    /// A channel it lists written: built as the look builds it; indexed
    /// at its digest even when that did not move, so that a writer that
    /// stopped between the team's commit and the index's leaves nothing
    /// behind.
    Rebuild,
}

/// Stored API team `id` built again against `config` (which has a channel
/// it lists written), under mark `token`: when its digest moved, stored
/// with its `config.changed` entry by `acting` and indexed. The
/// generation that holds it (`None`: nothing changed, or the team is gone
/// or no longer builds, logged).
pub async fn rebuild_team(
    core: &Core,
    config: &Config,
    id: &str,
    token: u64,
    acting: &Acting,
    now: Timestamp,
) -> Result<Option<u64>> {
    let same = |_: &Config, body: &Value| Ok(Edited::To(body.clone(), ()));
    let rebuilt = async {
        match edited(core, config, id, Purpose::Rebuild, acting, now, same).await {
            Err(Error::NotFound(_)) => Ok(((), ToIndex::Nothing)),
            Err(Error::InvalidConfig(problems)) => {
                let at: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
                tracing::error!(team = %id, pointers = %at.join(","), "an API team no longer builds with a channel written; it stays as it was");
                Ok(((), ToIndex::Nothing))
            }
            other => other,
        }
    };
    Ok(with_mark(core, id, token, now, rebuilt).await?.1)
}

/// In one change of team `id`'s slot: the stored team, its secrets
/// opened, changed by `edit` and checked against `config`, stored with
/// its `config.changed` entry by `acting` when its digest moved; what
/// `edit` answered and what is left to index.
async fn edited<T>(
    core: &Core,
    config: &Config,
    id: &str,
    purpose: Purpose,
    acting: &Acting,
    now: Timestamp,
    mut edit: impl FnMut(&Config, &Value) -> Result<Edited<T>>,
) -> Result<(T, ToIndex)> {
    let mut read = vec![keys::api_team(id)];
    read.extend(recorded_keys(id));
    let (answer, digest) = core
        .change(id, &read, now, |c| {
            let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(id))?;
            let Some(StoredApiTeam::V1 { body, digest, .. }) = &stored.value else {
                return Err(Error::NotFound("no such team"));
            };
            let stored_body = body;
            let op = operator(config)?;
            let opened = opened(op, id, body)?;
            let (body, answer) = match edit(config, &opened)? {
                Edited::Unchanged(answer) => return Ok(Step::Answer((answer, None))),
                Edited::To(body, answer) => (body, answer),
            };
            let secrets = team_secrets::secrets_at(&opened, &is_secret_member);
            let salts = team_secrets::salts_of(stored_body, &is_secret_member);
            let kept = team_secrets::Kept {
                secrets: &secrets,
                salts: &salts,
            };
            let salts = team_secrets::salts_of_edit(&body, &is_secret_member, &kept);
            let team = match purpose {
                Purpose::Edit => config.team_of_json(&body, &salts),
                Purpose::Rebuild => config.stored_team_of_json(&body, &salts),
            };
            let team = team.map_err(Error::InvalidConfig)?;
            if team.print.digest() == *digest {
                let index = (purpose == Purpose::Rebuild).then(|| digest.clone());
                return Ok(Step::Answer((answer, index)));
            }
            put_team(c, config, &stored, &team, (&body, &salts), acting, now)?;
            Ok(Step::Write((answer, Some(team.print.digest()))))
        })
        .await?;
    Ok((answer, digest.map_or(ToIndex::Nothing, ToIndex::At)))
}

/// Writes team `w.id` (or, for a dry run, checks that it would be
/// written): 412 when the conditions do not hold against the stored team,
/// 428 for a replace that names no version, 422 for a body that breaks a
/// rule. Two writers naming one `ETag`: the commit's compare-and-set lets
/// one through, the other reads again and is 412.
pub async fn write_team(core: &Core, w: Write<'_>, now: Timestamp) -> Result<Written> {
    let config = std::sync::Arc::clone(core.config());
    let mut read = vec![keys::api_team(w.id)];
    read.extend(recorded_keys(w.id));
    let decide = |c: &mut Change| decide_write(c, &config, &w, now);
    if w.dry_run {
        return core.change(w.id, &read, now, decide).await;
    }
    let write = async {
        let written = core.change(w.id, &read, now, decide).await?;
        let digest = written.team.print.digest();
        Ok((written, ToIndex::At(digest)))
    };
    let (mut written, generation) = marked(core, w.id, now, write).await?;
    written.generation = generation.unwrap_or_default();
    Ok(written)
}

/// What a write leaves the index to do.
enum ToIndex {
    At(String),
    Gone,
    Nothing,
}

/// `write` of team `id`, marked under way before and indexed after
/// (docs/operator-api.md#a-writer-that-stops): what it answered and the
/// generation that holds it (`None`: nothing changed). A write refused
/// clears its mark (a mark left behind is repaired by the next look).
async fn marked<T>(
    core: &Core,
    id: &str,
    now: Timestamp,
    write: impl std::future::Future<Output = Result<(T, ToIndex)>>,
) -> Result<(T, Option<u64>)> {
    let token = operator_index::mark(core, id, now).await?;
    with_mark(core, id, token, now, write).await
}

/// `write` of team `id`, marked under way by `token`, then indexed and the
/// mark cleared (see [`marked`]).
async fn with_mark<T>(
    core: &Core,
    id: &str,
    token: u64,
    now: Timestamp,
    write: impl std::future::Future<Output = Result<(T, ToIndex)>>,
) -> Result<(T, Option<u64>)> {
    let (answer, digest) = match write.await {
        Ok((answer, ToIndex::At(digest))) => (answer, Some(digest)),
        Ok((answer, ToIndex::Gone)) => (answer, None),
        Ok((answer, ToIndex::Nothing)) => {
            unmark(core, id, token, now).await;
            return Ok((answer, None));
        }
        Err(e) => {
            unmark(core, id, token, now).await;
            return Err(e);
        }
    };
    let generation = operator_index::index(core, id, digest, token, now).await?;
    Ok((answer, Some(generation)))
}

/// Clears mark `token` of a write that changed nothing; one that is not
/// cleared is repaired by the next look.
async fn unmark(core: &Core, id: &str, token: u64, now: Timestamp) {
    if let Err(e) = operator_index::unmark(core, id, token, now).await {
        tracing::warn!(team = %id, error = %e, "the mark of a write was not cleared; the next look clears it");
    }
}

/// Deletes team `id` written through the operator API: 404 when there is
/// none, 428 without `If-Match`, 412 with another `ETag`. Its last
/// `config.changed` entry records the empty configuration. Answers the
/// generation of the API teams without it.
pub async fn delete_team(
    core: &Core,
    id: &str,
    conditions: &Conditions,
    acting: &Acting,
    now: Timestamp,
) -> Result<u64> {
    let retention = core.config().audit.retention;
    let mut read = vec![keys::api_team(id)];
    read.extend(recorded_keys(id));
    let delete = async {
        core.change(id, &read, now, |c| {
            let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(id))?;
            let current = etag_of(&stored).ok_or(Error::NotFound("no such team"))?;
            conditions.hold(Some(&current))?;
            c.delete(&stored);
            record_api_write(c, id, None, acting, retention)?;
            Ok(Step::Write(()))
        })
        .await?;
        Ok(((), ToIndex::Gone))
    };
    let ((), generation) = marked(core, id, now, delete).await?;
    Ok(generation.unwrap_or_default())
}

/// Rung by a write to have the API teams put in force at once; says which
/// generation is in force.
pub struct ApiTeamsBell {
    ring: tokio::sync::Notify,
    applied: tokio::sync::watch::Sender<u64>,
}

impl Default for ApiTeamsBell {
    fn default() -> Self {
        ApiTeamsBell {
            ring: tokio::sync::Notify::new(),
            applied: tokio::sync::watch::channel(0).0,
        }
    }
}

impl ApiTeamsBell {
    /// Waits until `generation` (or a later one) is in force, at most
    /// `within`, after ringing: whether it is.
    pub async fn applied(&self, generation: u64, within: std::time::Duration) -> bool {
        let mut seen = self.applied.subscribe();
        self.ring.notify_one();
        let reached = tokio::time::timeout(within, seen.wait_for(|g| *g >= generation)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Resolves when a write rang.
    pub async fn rung(&self) {
        self.ring.notified().await;
    }

    /// `generation` is in force.
    pub fn in_force(&self, generation: u64) {
        self.applied.send_if_modified(|g| {
            let moved = generation > *g;
            *g = (*g).max(generation);
            moved
        });
    }
}
