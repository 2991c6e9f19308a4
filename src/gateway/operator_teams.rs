//! Teams written through the operator API (docs/operator-api.md): kept in
//! the store under their own hash tag, secrets sealed, each write
//! compare-and-set against the `ETag` the writer names and recorded as a
//! `config.changed` entry of the team in the same commit; then the index
//! of the API teams, and its generation, moved
//! (docs/operator-api.md#how-the-store-keeps-them).
use serde_json::Value;

use super::audit::{record_api_write, recorded_keys};
use super::change::Change;
use super::records::{ApiTeamsGeneration, Loaded, StoredApiTeam, StoredApiTeams};
use super::work::Step;
use super::Core;
use crate::config::is_secret_member;
use crate::config::{Config, OperatorConfig, Team};
use crate::domain::audit::Acting;
use crate::domain::preconditions::{self, Refusal};
use crate::domain::team_secrets;
use crate::error::{Error, Pointed, Result};
use crate::store::keys;
use crate::time::Timestamp;

/// A write's conditions, as its request sent them.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

/// A write of team `id` through the operator API.
pub struct TeamWrite<'a> {
    pub id: &'a str,
    /// The body as sent (secrets written, or sent back as `{"hmac"}`).
    pub body: &'a Value,
    pub conditions: Conditions,
    /// Check everything and answer as the write would, writing nothing.
    pub dry_run: bool,
    pub acting: Acting,
}

/// What a write made: the team, and whether it is new.
pub struct Written {
    pub team: Team,
    pub created: bool,
}

/// The operator section in force: a write needs it.
fn operator(config: &Config) -> Result<&OperatorConfig> {
    (config.operator.as_deref()).ok_or(Error::NotFound("no such resource"))
}

/// The quoted `ETag` of a stored team.
fn etag_of(stored: &Loaded<StoredApiTeam>) -> Option<String> {
    let StoredApiTeam::V1 { digest, .. } = stored.value.as_ref()?;
    Some(format!("\"{digest}\""))
}

/// Whether the conditions let a write to what has `current` go ahead.
fn holds(conditions: &Conditions, current: Option<&str>) -> Result<()> {
    let (m, n) = (&conditions.if_match, &conditions.if_none_match);
    preconditions::check(m.as_deref(), n.as_deref(), current).map_err(|r| match r {
        Refusal::Required => Error::PreconditionRequired,
        Refusal::Failed => Error::PreconditionFailed,
    })
}

/// The secrets a stored team keeps, opened.
fn kept_secrets(
    op: &OperatorConfig,
    id: &str,
    stored: &Loaded<StoredApiTeam>,
) -> Result<Vec<String>> {
    let Some(StoredApiTeam::V1 { body, .. }) = &stored.value else {
        return Ok(Vec::new());
    };
    let opened = team_secrets::open(body, id, &is_secret_member, &op.secrets)
        .map_err(|(_, e)| Error::internal_from("a stored team's secret does not open", e))?;
    Ok(team_secrets::secrets_of(&opened, &is_secret_member))
}

/// The team `body` writes, its `{"hmac"}` objects replaced by the stored
/// secrets they name: 422 for a body that breaks a rule.
fn team_of(config: &Config, w: &TeamWrite<'_>, kept: &[String]) -> Result<(Team, Value)> {
    let op = operator(config)?;
    if (w.body.get("id").and_then(Value::as_str)).is_some_and(|b| b != w.id) {
        return Err(Error::InvalidConfig(vec![Pointed {
            pointer: "/id".into(),
            detail: "is not the id of the path".into(),
        }]));
    }
    let read_back = |v: &str| op.secrets.read_back(v);
    let body = team_secrets::keep(w.body, &is_secret_member, kept, &read_back)
        .map_err(Error::InvalidConfig)?;
    let team = config.team_of_json(&body).map_err(Error::InvalidConfig)?;
    Ok((team, body))
}

/// Decides a write on what `c` read: the conditions against the stored
/// team, the body checked, the sealed form put with its audit entry.
fn decide_write(
    c: &mut Change,
    config: &Config,
    w: &TeamWrite<'_>,
    now: Timestamp,
) -> Result<Step<Written>> {
    let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(w.id))?;
    holds(&w.conditions, etag_of(&stored).as_deref())?;
    let op = operator(config)?;
    let kept = kept_secrets(op, w.id, &stored)?;
    let (team, body) = team_of(config, w, &kept)?;
    let created = stored.value.is_none();
    if w.dry_run {
        return Ok(Step::Answer(Written { team, created }));
    }
    let record = StoredApiTeam::V1 {
        body: team_secrets::seal(&body, w.id, &is_secret_member, &op.secrets),
        digest: team.print.digest(),
        at: now,
    };
    c.put(&stored, &record, None)?;
    record_api_write(c, w.id, Some(&team), &w.acting, config.audit.retention)?;
    Ok(Step::Write(Written { team, created }))
}

/// Writes team `w.id` (or, for a dry run, checks that it would be
/// written): 412 when the conditions do not hold against the stored team,
/// 428 for a replace that names no version, 422 for a body that breaks a
/// rule. Two writers naming one `ETag`: the commit's compare-and-set lets
/// one through, the other reads again and is 412.
pub async fn write_team(core: &Core, w: TeamWrite<'_>, now: Timestamp) -> Result<Written> {
    let config = std::sync::Arc::clone(core.config());
    let mut read = vec![keys::api_team(w.id)];
    read.extend(recorded_keys(w.id));
    let written = core
        .change(w.id, &read, now, |c| decide_write(c, &config, &w, now))
        .await?;
    if !w.dry_run {
        index(core, w.id, Some(written.team.print.digest()), now).await?;
    }
    Ok(written)
}

/// Deletes team `id` written through the operator API: 404 when there is
/// none, 428 without `If-Match`, 412 with another `ETag`. Its last
/// `config.changed` entry records the empty configuration.
pub async fn delete_team(
    core: &Core,
    id: &str,
    conditions: &Conditions,
    acting: &Acting,
    now: Timestamp,
) -> Result<()> {
    let retention = core.config().audit.retention;
    let mut read = vec![keys::api_team(id)];
    read.extend(recorded_keys(id));
    core.change(id, &read, now, |c| {
        let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(id))?;
        let current = etag_of(&stored).ok_or(Error::NotFound("no such team"))?;
        holds(conditions, Some(&current))?;
        c.delete(&stored);
        record_api_write(c, id, None, acting, retention)?;
        Ok(Step::Write(()))
    })
    .await?;
    index(core, id, None, now).await
}

/// The index of the API teams with `id` at `digest` (`None`: gone), and
/// its generation moved, in one commit of their own slot.
async fn index(core: &Core, id: &str, digest: Option<String>, now: Timestamp) -> Result<()> {
    let (ix, generation) = (keys::api_teams(), keys::api_teams_generation());
    let read = [ix.clone(), generation.clone()];
    core.change("", &read, now, |c| {
        let loaded: Loaded<StoredApiTeams> = c.read(&ix)?;
        let count: Loaded<ApiTeamsGeneration> = c.read(&generation)?;
        let mut teams = loaded.value.clone().unwrap_or_default();
        match &digest {
            Some(d) => teams.teams.insert(id.to_string(), d.clone()),
            None => teams.teams.remove(id),
        };
        c.put(&loaded, &teams, None)?;
        let next = ApiTeamsGeneration {
            generation: count.value.unwrap_or_default().generation + 1,
        };
        c.put(&count, &next, None)?;
        Ok(Step::Write(()))
    })
    .await
}
