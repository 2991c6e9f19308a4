//! The API teams and channels an instance holds in force written back to
//! a store that came back empty (docs/operations.md#when-redis-comes-back-empty):
//! each as it was stored (sealed, the same digest, so the same `ETag`),
//! a team with its `config.changed` entry of source `restore` in the
//! commit that writes it, then the index, the channels and the generation
//! in one commit of their slot. A record another instance wrote first is
//! left as it is: the first to see the reset writes back, the others find
//! it done
//! (docs/decisions/0438-a-store-reset-keeps-the-operators-teams.md).
use std::collections::{BTreeMap, BTreeSet};

use super::forms::stored_forms;
use super::index::{self, part_of};
use super::look::{built, with_held_channels, Held};
use crate::config::Config;
use crate::error::Result;
use crate::gateway::audit::{record_restore, recorded_keys};
use crate::gateway::change::{self, Change};
use crate::gateway::records::{
    ApiTeamsGeneration, Loaded, StoredApiChannels, StoredApiForm, StoredApiTeams,
};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// What a write-back wrote: the teams and channels this instance wrote
/// (not those another wrote first), and the generation that holds them.
#[derive(Debug, Default)]
pub struct Restored {
    pub teams: usize,
    pub channels: usize,
    pub generation: u64,
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

/// Teams read in one store call.
const AT_ONCE: usize = 500;

/// Teams written back side by side.
const WRITTEN_AT_ONCE: usize = 64;

/// Writes back what `held` has and the store lacks: each team's record
/// with its entry, then the channels, the index and the generation (moved
/// past `known_generation`, the one this instance put in force, so every
/// instance looks again). Logs one error line when it wrote anything.
pub async fn restore(
    core: &Core,
    held: &Held,
    known_generation: u64,
    now: Timestamp,
) -> Result<Restored> {
    let restored = write_back(core, core.config(), held, false, known_generation, now).await?;
    if restored.teams + restored.channels > 0 {
        tracing::error!(
            teams = restored.teams,
            channels = restored.channels,
            "the store came back empty: the API teams and channels this instance held are written back as they were stored"
        );
    }
    Ok(restored)
}

/// Every API team and channel the store holds, as it keeps them (sealed):
/// what `chatgate teams export` prints.
pub async fn export(core: &Core) -> Result<Held> {
    let cx = keys::api_channels();
    let raw = core.get(std::slice::from_ref(&cx)).await?.pop().flatten();
    let channels = Loaded::<StoredApiChannels>::parse(cx, raw)?;
    let mut held = Held::default();
    let parts = index::read_parts(core, &index::every_part()).await?;
    let ids: Vec<String> = (parts.into_iter())
        .flat_map(|(_, teams)| teams.into_keys())
        .collect();
    for chunk in ids.chunks(AT_ONCE) {
        let read = stored_forms(core, chunk, keys::api_team).await?;
        let found = chunk.iter().cloned().zip(read);
        held.teams
            .extend(found.filter_map(|(id, form)| Some((id, form?))));
    }
    let names: Vec<String> = channels
        .value
        .unwrap_or_default()
        .channels
        .into_keys()
        .collect();
    let read = stored_forms(core, &names, keys::api_channel).await?;
    let found = names.into_iter().zip(read);
    held.channels
        .extend(found.filter_map(|(name, form)| Some((name, form?))));
    Ok(held)
}

/// Writes `exported` (what `teams export` printed) into the store: each
/// team with its `config.changed` entry (source `restore`, where this
/// configuration builds it), then the channels, the index and the
/// generation. Nothing is written when one of its ids is a file's here,
/// or, without `replace`, when the store holds one already: `Err` names
/// them.
pub async fn import(
    core: &Core,
    exported: &Held,
    replace: bool,
    now: Timestamp,
) -> Result<std::result::Result<Restored, Vec<String>>> {
    let config = core.config();
    let files = (exported
        .teams
        .keys()
        .filter(|id| config.file_team(id).is_some()))
    .map(|id| format!("team {id} (a team file's id)"))
    .chain(
        (exported
            .channels
            .keys()
            .filter(|n| config.file_channel(n).is_some()))
        .map(|name| format!("channel {name} (a channel file's name)")),
    );
    let files: Vec<String> = files.collect();
    if !files.is_empty() {
        return Ok(Err(files));
    }
    if !replace {
        let ids: Vec<&String> = exported.teams.keys().collect();
        let names: Vec<&String> = exported.channels.keys().collect();
        let teams = stored_forms(core, &ids, keys::api_team).await?;
        let channels = stored_forms(core, &names, keys::api_channel).await?;
        let teams = ids.iter().zip(teams).filter(|(_, f)| f.is_some());
        let channels = names.iter().zip(channels).filter(|(_, f)| f.is_some());
        let exist: Vec<String> = (teams.map(|(id, _)| format!("team {id}")))
            .chain(channels.map(|(name, _)| format!("channel {name}")))
            .collect();
        if !exist.is_empty() {
            return Ok(Err(exist));
        }
    }
    let config = with_held_channels(core.config(), exported);
    Ok(Ok(
        write_back(core, &config, exported, replace, 0, now).await?
    ))
}

/// `held` written: each team the store lacks (all, with `replace`) with
/// its entry, then the channels, the index and the generation.
async fn write_back(
    core: &Core,
    config: &Config,
    held: &Held,
    replace: bool,
    known_generation: u64,
    now: Timestamp,
) -> Result<Restored> {
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
            writes.push(write_team(core, config, id, &held.teams[*id], replace, now));
        }
        let written = futures::future::try_join_all(writes).await?;
        teams += written.iter().flatten().count();
        digests.extend(written.into_iter().flatten());
    }
    super::claims::claim_held(core, &held.teams, now).await?;
    let moved = Moved {
        teams: teams > 0,
        past: known_generation,
    };
    let mut restored = write_index(core, held, &digests, replace, moved, now).await?;
    restored.teams = teams;
    Ok(restored)
}

/// Team `id` written back as `form` with its `config.changed` entry
/// (source `restore`; where `config` has it, or builds it), unless
/// the store holds it again (another instance wrote it first) and not
/// `replace`: its id and digest when written here.
async fn write_team(
    core: &Core,
    config: &Config,
    id: &str,
    form: &StoredApiForm,
    replace: bool,
    now: Timestamp,
) -> Result<Option<(String, String)>> {
    let key = keys::api_team(id);
    let StoredApiForm::V1 { incarnation, .. } = form;
    let keyspace = keys::keyspace(id, incarnation.as_deref());
    let mut read = vec![key.clone()];
    read.extend(recorded_keys(&keyspace));
    let team = match config.teams.get(id).filter(|t| t.api.is_some()) {
        Some(team) => Some(team.clone()),
        None => built(config, id, form).map(std::sync::Arc::new),
    };
    let retention = config.audit.retention;
    core.change(&keyspace, &read, now, |c| {
        let stored: Loaded<StoredApiForm> = c.read(&key)?;
        if stored.value.is_some() && !replace {
            return Ok(Step::Answer(None));
        }
        c.put(&stored, form, None)?;
        if let Some(team) = team.as_deref() {
            record_restore(c, team, retention)?;
        }
        let StoredApiForm::V1 { digest, .. } = form;
        let indexed = super::index::indexed_as(digest, incarnation.as_deref());
        Ok(Step::Write(Some((id.to_string(), indexed))))
    })
    .await
}

/// In one commit of their slot: the channels of `held` the store lacks
/// (all, with `replace`) written back, every team of `teams` (id → the
/// digest stored) and every channel held indexed, and the generation
/// moved past `moved.past`; nothing when nothing moves.
async fn write_index(
    core: &Core,
    held: &Held,
    teams: &BTreeMap<String, String>,
    replace: bool,
    moved: Moved,
    now: Timestamp,
) -> Result<Restored> {
    let (cx, gen) = (keys::api_channels(), keys::api_teams_generation());
    let parts: BTreeSet<u16> = teams.keys().map(|id| part_of(id)).collect();
    let mut read = vec![cx.clone(), gen.clone()];
    read.extend(parts.iter().map(|p| keys::api_teams_part(*p)));
    read.extend(held.channels.keys().map(|name| keys::api_channel(name)));
    core.change(change::NO_TEAM, &read, now, |c| {
        let channels = write_channels(c, held, replace)?;
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
        if !indexed && channels == 0 && !moved.teams {
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
            channels,
            generation,
        }))
    })
    .await
}

/// In `c`, which read the channels' index and every held channel's
/// record: those the store lacks (all, with `replace`) written back, and
/// every held channel indexed at the digest stored. How many were
/// written.
fn write_channels(c: &mut Change, held: &Held, replace: bool) -> Result<usize> {
    let cx = keys::api_channels();
    let index: Loaded<StoredApiChannels> = c.read(&cx)?;
    let mut next = index.value.clone().unwrap_or_default();
    let mut written = 0;
    for (name, form) in &held.channels {
        let stored: Loaded<StoredApiForm> = c.read(&keys::api_channel(name))?;
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
