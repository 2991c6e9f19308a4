//! The API teams and kept resources ([`super::KEPT`]: the channels) an
//! instance holds in force written back to
//! a store that came back empty (docs/operations.md#when-redis-comes-back-empty):
//! each as it was stored (sealed, the same digest, so the same `ETag`),
//! a team with its `config.changed` entry of source `restore` in the
//! commit that writes it, then the index, the kept ones and the
//! generation in one commit of their slot. A record another instance wrote first is
//! left as it is: the first to see the reset writes back, the others find
//! it done
//! (docs/decisions/0438-a-store-reset-keeps-the-operators-teams.md).
use std::collections::{BTreeMap, BTreeSet};

use super::claims;
use super::forms::stored_forms;
use super::index::{self, part_of};
use super::kept::{opened_at, said_problems, NotInForce, Registered};
use super::look::{built, with_held, Held};
use super::teams::own_on_its_lists;
use super::KEPT;
use crate::config::{is_secret_member, Config};
use crate::domain::team_secrets;
use crate::error::{Error, Result};
use crate::gateway::audit::{record_restore, recorded_keys};
use crate::gateway::change::{self, Change};
use crate::gateway::core::trail;
use crate::gateway::records::{
    ApiTeamsGeneration, Loaded, StoredApiChannels, StoredApiForm, StoredApiTeams,
};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// What a write-back wrote: the teams and kept ones this instance wrote
/// (not those another wrote first), and the generation that holds them.
#[derive(Debug, Default)]
pub struct Restored {
    pub teams: usize,
    pub kept: usize,
    pub generation: u64,
    /// Those an import wrote with another digest (`ETag`) than its file
    /// says, each named (`team ID`, `channel NAME`): an export of an
    /// earlier version, a digest edited, another first `secrets_keys`
    /// entry (docs/operations.md#backing-up-the-api-teams).
    pub moved: Vec<String>,
}

/// How a write-back moves the generation: past `past` (the one the
/// instance put in force), and also when only `teams` records were
/// written (the index unchanged: an instance that read it without their
/// records reads them again).
#[derive(Clone, Copy)]
struct Moved {
    teams: bool,
    past: u64,
}

/// Why a write-back writes.
#[derive(Clone, Copy)]
enum Back {
    /// The store came back empty: what it lacks, each team's trail lost
    /// with it, and the generation moved past the one this instance put
    /// in force.
    Reset { known_generation: u64 },
    /// `teams import`: what the store lacks, or all with `replace`.
    Import { replace: bool },
}

impl Back {
    fn replace(self) -> bool {
        matches!(self, Back::Import { replace: true })
    }
}

/// Teams read in one store call.
const AT_ONCE: usize = 500;

/// Teams written back side by side.
const WRITTEN_AT_ONCE: usize = 64;

/// Writes back what `held` has and the store lacks: each team's record
/// with its entry, then the channels, the index and the generation (moved
/// past `known_generation`, the one this instance put in force, so every
/// instance looks again). Nothing is checked again, `verify_own` neither:
/// they are the teams in force here, checked when they were written
/// (docs/decisions/0851-an-import-checks-a-team-s-own-certificates-as-a-put-does.md). Logs one error line when it wrote anything,
/// with the count of the teams' trails it restarted (not a line each).
pub async fn restore(
    core: &Core,
    held: &Held,
    known_generation: u64,
    now: Timestamp,
) -> Result<Restored> {
    let back = Back::Reset { known_generation };
    let written = write_back(core, core.config(), held, back, now);
    let (restored, trails_reset) = trail::counting_resets(written).await;
    let restored = restored?;
    if restored.teams + restored.kept + trails_reset > 0 {
        tracing::error!(
            teams = restored.teams,
            channels = restored.kept,
            trails_reset,
            "the store came back empty: the API teams and channels this instance held are written back as they were stored, each team's audit trail from its audit.trail_reset"
        );
    }
    Ok(restored)
}

/// Every API team and kept one the store holds, as it keeps them
/// (sealed): what `chatgate teams export` prints.
pub async fn export(core: &Core) -> Result<Held> {
    let mut held = Held::default();
    let parts = index::read_parts(core, &index::every_part()).await?;
    let ids: Vec<String> = (parts.into_iter())
        .flat_map(|(_, teams)| teams.into_keys())
        .collect();
    for chunk in ids.chunks(AT_ONCE) {
        let read = stored_forms(core, chunk, keys::api_team).await?;
        let found = chunk.iter().cloned().zip(read);
        let found = found.filter_map(|(id, form)| Some((id.clone(), rebound(core, &id, form?))));
        held.teams.extend(found);
    }
    for k in KEPT {
        let cx = k.index_key();
        let raw = core.get(std::slice::from_ref(&cx)).await?.pop().flatten();
        let index = Loaded::<StoredApiChannels>::parse(cx, raw)?;
        let names: Vec<String> = index
            .value
            .unwrap_or_default()
            .channels
            .into_keys()
            .collect();
        let read = stored_forms(core, &names, k.store_key).await?;
        let found = names.into_iter().zip(read);
        let found = found.filter_map(|(name, form)| {
            let form = rebound(core, &(k.place)(&name), form?);
            Some((name, form))
        });
        held.kept.insert(k.exported_as, found.collect());
    }
    Ok(held)
}

/// `form` (of `place`) as exported: each secret sealed before secrets
/// were bound to where they go sealed again, bound
/// (`team_secrets::rebind`: same salt, same read-back, same digest).
fn rebound(core: &Core, place: &str, form: StoredApiForm) -> StoredApiForm {
    let Some(op) = core.config().operator.as_deref() else {
        return form;
    };
    let StoredApiForm::V1 {
        body,
        digest,
        at,
        incarnation,
    } = form;
    let body = team_secrets::rebind(&body, place, super::forms::members(), &op.secrets);
    StoredApiForm::V1 {
        body,
        digest,
        at,
        incarnation,
    }
}

/// Writes `exported` (what `teams export` printed) into the store: each
/// team with its `config.changed` entry (source `restore`, where this
/// configuration builds it), then the kept ones, the index and the
/// generation. Nothing is written when one of its names is a file's here,
/// or, without `replace`, when the store holds one already: `Err` names
/// them.
pub async fn import(
    core: &Core,
    exported: &Held,
    replace: bool,
    now: Timestamp,
) -> Result<std::result::Result<Restored, Vec<String>>> {
    let files = files_of(core.config(), exported);
    if !files.is_empty() {
        return Ok(Err(files));
    }
    let file = exported;
    let exported = match checked(core, exported, now).await? {
        Ok(checked) => checked,
        Err(refused) => return Ok(Err(refused)),
    };
    if !replace {
        let exist = stored_of(core, &exported).await?;
        if !exist.is_empty() {
            return Ok(Err(exist));
        }
    }
    let config = with_held(core.config(), &exported);
    let back = Back::Import { replace };
    let mut restored = write_back(core, &config, &exported, back, now).await?;
    restored.moved = moved(file, &exported);
    Ok(Ok(restored))
}

/// Those of `file` whose digest `checked` (the import's own) is not the
/// one the file says, each named.
fn moved(file: &Held, checked: &Held) -> Vec<String> {
    let digest = |form: &StoredApiForm| {
        let StoredApiForm::V1 { digest, .. } = form;
        digest.clone()
    };
    let differ = |a: Option<&StoredApiForm>, b: &StoredApiForm| a.map(digest) != Some(digest(b));
    let teams = (checked.teams.iter()).filter(|(id, form)| differ(file.teams.get(*id), form));
    let mut moved: Vec<String> = teams.map(|(id, _)| format!("team {id}")).collect();
    for k in KEPT {
        let was = |name: &String| file.kept.get(k.exported_as).and_then(|m| m.get(name));
        let ones = checked.of(k).filter(|(name, form)| differ(was(name), form));
        moved.extend(ones.map(|(name, _)| format!("{} {name}", k.what)));
    }
    moved
}

/// `exported` checked as a write of each would be (docs/operations.md#backing-up-the-api-teams):
/// each kept one, then each team against them — its secrets opened at
/// its place with this gateway's `secrets_keys`, its body by every rule a
/// `PUT` checks, its API keys against the other teams of the file, the
/// teams in force and the store's claims, then its own certificates on
/// its lists ([`own_not_held`]) — each with the digest made
/// here, whatever the file says; or every refusal, naming the team (the
/// channel) and the pointer.
async fn checked(
    core: &Core,
    exported: &Held,
    now: Timestamp,
) -> Result<std::result::Result<Held, Vec<String>>> {
    let config = core.config();
    let mut refused = Vec::new();
    let mut held = Held::default();
    for k in KEPT {
        let mut forms = BTreeMap::new();
        for (name, form) in exported.of(k) {
            match (k.checked)(config, name, form) {
                Ok(form) => drop(forms.insert(name.clone(), form)),
                Err(why) => refused.push(format!("{} {name}: {why}", k.what)),
            }
        }
        held.kept.insert(k.exported_as, forms);
    }
    let with = with_held(config, &held);
    let mut keys: BTreeMap<String, &String> = BTreeMap::new();
    let mut teams = Vec::new();
    for (id, team, claimed) in claimed_teams(core, &with, exported, now).await? {
        // A key another team of the file holds: named by its pointer,
        // never by the key or the team.
        let twice = (team.iter()).flat_map(|(_, opened, _)| claims::keys_of(opened));
        let twice = twice.filter(|(_, d)| keys.insert(d.clone(), id).is_some_and(|o| o != id));
        let twice: Vec<String> = twice
            .map(|(i, _)| format!("/api_keys/{i}/sha256 {}", claims::KEY_TAKEN))
            .collect();
        match (team, claimed) {
            (Err(why), _) => refused.push(format!("team {id}: {why}")),
            (Ok(_), Err(Error::InvalidConfig(problems))) => {
                refused.push(format!("team {id}: {}", said_problems(&problems)));
            }
            (Ok(_), Err(e)) => return Err(e),
            (Ok(_), Ok(_)) if !twice.is_empty() => {
                refused.push(format!("team {id}: {}", twice.join("; ")));
            }
            (Ok((form, _, team)), Ok(_)) => {
                held.teams.insert(id.clone(), form);
                teams.push(std::sync::Arc::new(team));
            }
        }
    }
    if refused.is_empty() {
        refused = own_not_held(core, &teams, now).await?;
    }
    if refused.is_empty() {
        refused = audiences_taken(core, &with, teams).await?;
    }
    Ok(match refused.is_empty() {
        true => Ok(held),
        false => Err(refused),
    })
}

/// A team of an import checked as a `PUT` of it would be ([`checked_team`]).
type CheckedTeam =
    std::result::Result<(StoredApiForm, serde_json::Value, crate::config::Team), String>;

/// Each team of `exported` checked against `config` ([`checked_team`]),
/// with what a dry run of the claims of its keys answers: of every team
/// that builds, read together ([`claims::check_bodies`]), not a store
/// round trip a team.
async fn claimed_teams<'a>(
    core: &Core,
    config: &Config,
    exported: &'a Held,
    now: Timestamp,
) -> Result<Vec<(&'a String, CheckedTeam, Result<()>)>> {
    let built: Vec<(&String, CheckedTeam)> = (exported.teams.iter())
        .map(|(id, form)| (id, checked_team(config, id, form)))
        .collect();
    let bodies = built.iter().filter_map(|(id, team)| {
        let opened = team.as_ref().ok().map(|(_, opened, _)| opened);
        opened.map(|opened| (id.as_str(), opened))
    });
    let bodies: Vec<(&str, &serde_json::Value)> = bodies.collect();
    let mut claimed = claims::check_bodies(core, &bodies, now).await?.into_iter();
    let mut each = Vec::with_capacity(built.len());
    for (id, team) in built {
        let claim = match &team {
            Ok(_) => claimed.next().unwrap_or(Ok(())),
            Err(_) => Ok(()),
        };
        each.push((id, team, claim));
    }
    Ok(each)
}

/// The teams of an import with `verify_own` whose access or registration
/// certificate a usable list of its kind does not hold, each named with
/// the pointer, as a `PUT` of it is refused: its `wrpac` and `wrprc`
/// lists fetched now, nothing kept; a list with no usable copy is no
/// refusal (docs/decisions/0851-an-import-checks-a-team-s-own-certificates-as-a-put-does.md).
/// Only once nothing else refused the import: nothing is fetched for a
/// file that writes nothing.
async fn own_not_held(
    core: &Core,
    teams: &[std::sync::Arc<crate::config::Team>],
    now: Timestamp,
) -> Result<Vec<String>> {
    let mut refused = Vec::new();
    for team in teams {
        match own_on_its_lists(core, team, now).await {
            Ok(()) => {}
            Err(Error::InvalidConfig(problems)) => {
                refused.push(format!("team {}: {}", team.id, said_problems(&problems)));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(refused)
}

/// The teams of an import (`teams`, built against `config`) whose `[mcp]
/// oauth` issuer and audience a team the store holds and the import does
/// not write over has, or another of its teams before it by id: each
/// named with the member
/// (docs/decisions/0740-one-issuer-and-audience-one-team-at-every-write.md).
/// Checked as a `PUT` is, by the index of issuers kept with the teams
/// (`Config::mcp_audience_holders`), the import's teams in force over
/// `config`: a stored team's pair is read from its body, and only a
/// stored team whose pair an imported one has is built (a stored team
/// that no longer builds holds none), so an import against many stored
/// teams reads them but builds next to none
/// (docs/decisions/0811-an-import-checks-issuers-and-audiences-by-the-write-s-index.md).
async fn audiences_taken(
    core: &Core,
    config: &Config,
    teams: Vec<std::sync::Arc<crate::config::Team>>,
) -> Result<Vec<String>> {
    if !teams.iter().any(|t| t.mcp_oauth.is_some()) {
        return Ok(Vec::new());
    }
    let ids: BTreeSet<String> = teams.iter().map(|t| t.id.clone()).collect();
    // A file team's id was refused before (`files_of`).
    let with = (config.with_api_teams(teams, &[]))
        .map_err(|e| Error::internal_from("an import's teams put in force", e))?;
    let imported = |t: &&std::sync::Arc<crate::config::Team>| ids.contains(&t.id);
    // Each imported team refused, by id, with the team that has its pair.
    let mut holders: BTreeMap<String, String> = BTreeMap::new();
    let stored = super::look::stored_team_etags(core).await?;
    let others: Vec<&String> = stored.keys().filter(|id| !ids.contains(*id)).collect();
    let public_url = &with.server.public_url;
    for chunk in others.chunks(AT_ONCE) {
        let forms = stored_forms(core, chunk, keys::api_team).await?;
        for (id, form) in chunk.iter().zip(forms) {
            let Some(form) = form else { continue };
            let StoredApiForm::V1 { body, .. } = &form;
            let Some((issuer, audience)) = crate::config::mcp_pair_of_body(body, public_url) else {
                continue;
            };
            let takers = with.mcp_audience_holders(id, &issuer, &audience, true);
            let takers: Vec<&String> = takers.filter(imported).map(|t| &t.id).collect();
            if takers.is_empty() || built(config, id, &form).is_none() {
                continue;
            }
            for taker in takers {
                holders
                    .entry(taker.clone())
                    .or_insert_with(|| (*id).clone());
            }
        }
    }
    // Of the imported teams of one pair no stored team has, the first by id keeps it.
    for id in &ids {
        let Some(oauth) = with.teams.get(id).and_then(|t| t.mcp_oauth.as_ref()) else {
            continue;
        };
        if holders.contains_key(id) {
            continue;
        }
        let (issuer, audience) = (&oauth.provider.issuer, &oauth.audience);
        let mut first = with.mcp_audience_holders(id, issuer, audience, true);
        if let Some(first) = first.find(imported).filter(|f| f.id < *id) {
            holders.insert(id.clone(), first.id.clone());
        }
    }
    let refused = holders.into_iter().map(|(id, holder)| {
        let problem = crate::config::mcp_audience_taken(&holder);
        format!("team {id}: {} {}", problem.pointer, problem.detail)
    });
    Ok(refused.collect())
}

/// Team `id` of an import checked as a `PUT` of it would be, against
/// `config` (the import's channels in force): the form with the digest
/// made here, its body opened, and the team; or why not.
fn checked_team(config: &Config, id: &str, stored: &StoredApiForm) -> CheckedTeam {
    let StoredApiForm::V1 {
        body,
        at,
        incarnation,
        ..
    } = stored;
    if body.get("id").and_then(serde_json::Value::as_str) != Some(id) {
        return Err("/id is not the team's id".into());
    }
    super::kept::unbound(body)?;
    let salts = team_secrets::salts_of(body, &is_secret_member);
    let opened = opened_at(config, id, body).map_err(NotInForce::said)?;
    let op = super::forms::operator(config).map_err(|e| e.to_string())?;
    let team = super::forms::built(op, &opened, config.team_of_json(&opened, &salts));
    let team = team.map_err(|e| match e {
        Error::InvalidConfig(problems) => said_problems(&problems),
        e => e.to_string(),
    })?;
    let form = StoredApiForm::V1 {
        body: body.clone(),
        digest: team.own_digest.clone(),
        at: *at,
        incarnation: incarnation.clone(),
    };
    Ok((form, opened, team))
}

/// Those of `exported` a file of `config` keeps, each named.
fn files_of(config: &Config, exported: &Held) -> Vec<String> {
    let teams = exported.teams.keys();
    let teams = teams.filter(|id| config.file_team(id).is_some());
    let mut files: Vec<String> = teams
        .map(|id| format!("team {id} (a team file's id)"))
        .collect();
    for k in KEPT {
        let names = exported.of(k).map(|(name, _)| name);
        let names = names.filter(|name| (k.in_a_file)(config, name));
        let what = k.what;
        files.extend(names.map(|name| format!("{what} {name} (a {what} file's name)")));
    }
    files
}

/// Those of `exported` the store holds, each named.
async fn stored_of(core: &Core, exported: &Held) -> Result<Vec<String>> {
    let ids: Vec<&String> = exported.teams.keys().collect();
    let teams = stored_forms(core, &ids, keys::api_team).await?;
    let teams = ids.iter().zip(teams).filter(|(_, f)| f.is_some());
    let mut exist: Vec<String> = teams.map(|(id, _)| format!("team {id}")).collect();
    for k in KEPT {
        let names: Vec<&String> = exported.of(k).map(|(name, _)| name).collect();
        let stored = stored_forms(core, &names, k.store_key).await?;
        let stored = names.iter().zip(stored).filter(|(_, f)| f.is_some());
        exist.extend(stored.map(|(name, _)| format!("{} {name}", k.what)));
    }
    Ok(exist)
}

/// `held` written: each team the store lacks (all, with `replace`) with
/// its entry, then the channels, the index and the generation. The index
/// names every team held, those another instance wrote back first
/// included, at the digest stored: an instance puts in force what it
/// reads there once it wrote back, and a team it lacks would leave
/// (docs/operations.md#when-redis-comes-back-empty).
async fn write_back(
    core: &Core,
    config: &Config,
    held: &Held,
    back: Back,
    now: Timestamp,
) -> Result<Restored> {
    let replace = back.replace();
    let ids: Vec<&String> = held.teams.keys().collect();
    let mut digests = BTreeMap::new();
    let mut absent = Vec::new();
    for chunk in ids.chunks(AT_ONCE) {
        let read = stored_forms(core, chunk, keys::api_team).await?;
        for (id, stored) in chunk.iter().zip(read) {
            match stored {
                Some(StoredApiForm::V1 {
                    digest,
                    incarnation,
                    ..
                }) if !replace => {
                    let indexed = super::index::indexed_as(&digest, incarnation.as_deref());
                    digests.insert((*id).clone(), indexed);
                }
                _ => absent.push(*id),
            }
        }
    }
    let mut teams = 0;
    for chunk in absent.chunks(WRITTEN_AT_ONCE) {
        let mut writes = Vec::with_capacity(chunk.len());
        for id in chunk {
            writes.push(write_team(core, config, id, &held.teams[*id], back, now));
        }
        let written = futures::future::try_join_all(writes).await?;
        for (id, (indexed, here)) in chunk.iter().zip(written) {
            teams += usize::from(here);
            digests.insert((*id).clone(), indexed);
        }
    }
    super::claims::claim_held(core, &held.teams, now).await?;
    let moved = Moved {
        teams: teams > 0,
        past: match back {
            Back::Reset { known_generation } => known_generation,
            Back::Import { .. } => 0,
        },
    };
    let mut restored = write_index(core, held, &digests, replace, moved, now).await?;
    restored.teams = teams;
    Ok(restored)
}

/// Team `id` written back as `form` with its `config.changed` entry
/// (source `restore`; where `config` has it, or builds it), unless
/// the store holds it again (another instance wrote it first) and not
/// `replace`: the digest as indexed of what the store holds (`index::indexed_as`),
/// and whether it was written here. After a reset the team's trail is
/// lost with its record: the entry comes after `audit.trail_reset`
/// (docs/audit.md#resets).
async fn write_team(
    core: &Core,
    config: &Config,
    id: &str,
    form: &StoredApiForm,
    back: Back,
    now: Timestamp,
) -> Result<(String, bool)> {
    let key = keys::api_team(id);
    let replace = back.replace();
    let StoredApiForm::V1 { incarnation, .. } = form;
    let keyspace = keys::keyspace(id, incarnation.as_deref());
    if let Back::Reset { .. } = back {
        trail::lose(core, &keyspace);
    }
    let mut read = vec![key.clone()];
    read.extend(recorded_keys(&keyspace));
    let team = match config.teams.get(id).filter(|t| t.api.is_some()) {
        Some(team) => Some(team.clone()),
        None => built(config, id, form).map(std::sync::Arc::new),
    };
    let retention = config.audit.retention;
    let indexed =
        |StoredApiForm::V1 {
             digest,
             incarnation,
             ..
         }: &StoredApiForm| { super::index::indexed_as(digest, incarnation.as_deref()) };
    core.change(&keyspace, &read, now, |c| {
        let stored: Loaded<StoredApiForm> = c.read(&key)?;
        match &stored.value {
            Some(there) if !replace => return Ok(Step::Answer((indexed(there), false))),
            _ => {}
        }
        c.put(&stored, form, None)?;
        if let Some(team) = team.as_deref() {
            record_restore(c, team, retention)?;
        }
        Ok(Step::Write((indexed(form), true)))
    })
    .await
}

/// In one commit of their slot: the kept ones of `held` the store lacks
/// (all, with `replace`) written back, every team of `teams` (id → the
/// digest stored) and every kept one held indexed, and the generation
/// moved past `moved.past`; nothing when nothing moves.
async fn write_index(
    core: &Core,
    held: &Held,
    teams: &BTreeMap<String, String>,
    replace: bool,
    moved: Moved,
    now: Timestamp,
) -> Result<Restored> {
    let gen = keys::api_teams_generation();
    let parts: BTreeSet<u16> = teams.keys().map(|id| part_of(id)).collect();
    let mut read: Vec<String> = KEPT.iter().map(|k| k.index_key()).collect();
    read.push(gen.clone());
    read.extend(parts.iter().map(|p| keys::api_teams_part(*p)));
    for k in KEPT {
        read.extend(held.of(k).map(|(name, _)| (k.store_key)(name)));
    }
    core.change(change::NO_TEAM, &read, now, |c| {
        let mut kept = 0;
        for k in KEPT {
            kept += write_kept(c, k, held, replace)?;
        }
        let mut by_part: BTreeMap<u16, Vec<(&String, &String)>> = BTreeMap::new();
        for (id, digest) in teams {
            by_part.entry(part_of(id)).or_default().push((id, digest));
        }
        let mut indexed = false;
        for (part, teams) in by_part {
            let loaded: Loaded<StoredApiTeams> = c.read(&keys::api_teams_part(part))?;
            let before = loaded.value.clone().unwrap_or_default();
            let mut next = before.clone();
            next.teams
                .extend(teams.into_iter().map(|(i, d)| (i.clone(), d.clone())));
            if next != before {
                index::put_part(c, &loaded, &next)?;
                indexed = true;
            }
        }
        if !indexed && kept == 0 && !moved.teams {
            return Ok(Step::Answer(Restored::default()));
        }
        let count: Loaded<ApiTeamsGeneration> = c.read(&gen)?;
        let mut generation = ApiTeamsGeneration::next_of(count.value.as_ref());
        generation.generation = generation.generation.max(moved.past) + 1;
        // Many parts at once: every instance reads every part.
        (generation.log, generation.logged_since) = (Vec::new(), None);
        c.put(&count, &generation, None)?;
        let generation = generation.generation;
        Ok(Step::Write(Restored {
            teams: 0,
            kept,
            generation,
            moved: Vec::new(),
        }))
    })
    .await
}

/// In `c`, which read kept resource `k`'s index and the record of every
/// one of it held: those the store lacks (all, with `replace`) written
/// back, and every one held indexed at the digest stored. How many were
/// written.
fn write_kept(c: &mut Change, k: &Registered, held: &Held, replace: bool) -> Result<usize> {
    let index: Loaded<StoredApiChannels> = c.read(&k.index_key())?;
    let mut next = index.value.clone().unwrap_or_default();
    let mut written = 0;
    for (name, form) in held.of(k) {
        let stored: Loaded<StoredApiForm> = c.read(&(k.store_key)(name))?;
        let digest = match &stored.value {
            Some(StoredApiForm::V1 { digest, .. }) if !replace => digest.clone(),
            _ => {
                c.put(&stored, form, None)?;
                written += 1;
                let StoredApiForm::V1 { digest, .. } = form;
                digest.clone()
            }
        };
        next.channels.insert(name.clone(), digest);
    }
    if next != index.value.clone().unwrap_or_default() {
        c.put(&index, &next, None)?;
    }
    Ok(written)
}
