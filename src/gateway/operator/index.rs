//! The index of the teams written through the operator API and the
//! generation every instance watches (docs/operator-api.md#how-the-store-keeps-them),
//! with the writes under way marked beside the generation
//! (docs/operator-api.md#a-writer-that-stops): a write marks itself, commits
//! its team, then moves the index and clears its mark in one commit; a
//! mark older than [`STOPPED_AFTER`] is a writer that stopped between
//! the two, and the next instance to look indexes what its team's record
//! holds.
use super::forms::stored_forms;
use crate::domain::audit::Actor;
use crate::error::Result;
use crate::gateway::change::{self, Change};
use crate::gateway::records::{
    ApiTeamsGeneration, Loaded, PendingWrite, StoredApiTeam, StoredApiTeams,
};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// How old a mark is when its writer is taken to have stopped: a write
/// takes milliseconds, and waits at most 5 s for its instance.
pub const STOPPED_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// Marks a write of team `id` under way: its token, which
/// [`index`] or [`unmark`] clears.
pub async fn mark(core: &Core, id: &str, now: Timestamp) -> Result<u64> {
    let token = rand::random::<u64>();
    let key = keys::api_teams_generation();
    core.change(change::NO_TEAM, std::slice::from_ref(&key), now, |c| {
        let loaded: Loaded<ApiTeamsGeneration> = c.read(&key)?;
        let mut next = ApiTeamsGeneration::next_of(loaded.value.as_ref());
        let at = now;
        let marks = next.pending.entry(id.to_string()).or_default();
        marks.push(PendingWrite {
            token,
            at,
            channel_by: None,
        });
        c.put(&loaded, &next, None)?;
        Ok(Step::Write(token))
    })
    .await
}

/// Clears mark `token` of team `id`: its write changed nothing.
pub async fn unmark(core: &Core, id: &str, token: u64, now: Timestamp) -> Result<()> {
    let key = keys::api_teams_generation();
    core.change(change::NO_TEAM, std::slice::from_ref(&key), now, |c| {
        let loaded: Loaded<ApiTeamsGeneration> = c.read(&key)?;
        let mut next = loaded.value.clone().unwrap_or_default();
        if !clear(&mut next, id, token) {
            return Ok(Step::Answer(()));
        }
        c.put(&loaded, &next, None)?;
        Ok(Step::Write(()))
    })
    .await
}

/// Mark `token` of team `id` taken out of `generation`: whether it was there.
fn clear(generation: &mut ApiTeamsGeneration, id: &str, token: u64) -> bool {
    let Some(marks) = generation.pending.get_mut(id) else {
        return false;
    };
    let before = marks.len();
    marks.retain(|m| m.token != token);
    let cleared = marks.len() < before;
    if marks.is_empty() {
        generation.pending.remove(id);
    }
    cleared
}

/// In `c`, which read the index and the generation: team `id` at
/// `digest` (`None`: gone), mark `token` cleared and the generation
/// moved. `only_if_marked`: nothing when the mark is gone (its writer
/// indexed the team itself). The generation, or `None` for nothing.
fn indexed(
    c: &mut Change,
    id: &str,
    digest: Option<&str>,
    token: u64,
    only_if_marked: bool,
) -> Result<Option<u64>> {
    let (ix, gen) = (keys::api_teams(), keys::api_teams_generation());
    let loaded: Loaded<StoredApiTeams> = c.read(&ix)?;
    let count: Loaded<ApiTeamsGeneration> = c.read(&gen)?;
    let mut next = ApiTeamsGeneration::next_of(count.value.as_ref());
    if !clear(&mut next, id, token) && only_if_marked {
        return Ok(None);
    }
    let mut teams = loaded.value.clone().unwrap_or_default();
    match digest {
        Some(d) => teams.teams.insert(id.to_string(), d.to_string()),
        None => teams.teams.remove(id),
    };
    c.put(&loaded, &teams, None)?;
    next.generation += 1;
    c.put(&count, &next, None)?;
    Ok(Some(next.generation))
}

/// The index of the API teams with `id` at `digest` (`None`: gone), mark
/// `token` cleared and the generation moved, in one commit of their own
/// slot: the generation.
pub async fn index(
    core: &Core,
    id: &str,
    digest: Option<String>,
    token: u64,
    now: Timestamp,
) -> Result<u64> {
    let read = [keys::api_teams(), keys::api_teams_generation()];
    let digest = digest.as_deref();
    core.change(change::NO_TEAM, &read, now, |c| {
        let generation = indexed(c, id, digest, token, false)?;
        Ok(Step::Write(generation.unwrap_or_default()))
    })
    .await
}

/// What a look at the generation found: the generation, and the teams
/// to build again for a channel's writer that stopped (team id, token,
/// who wrote the channel).
#[derive(Debug, Default)]
pub struct Looked {
    pub generation: u64,
    /// The generation record's `born` (0: the store has none): another
    /// one than an instance read before is a store that came back empty.
    pub born: u64,
    pub rebuild: Vec<(String, u64, Actor)>,
}

/// The generation of the API teams: one read of a small record, whatever
/// the number of teams. A mark older than [`STOPPED_AFTER`] of a team's
/// write is repaired first: its team indexed as its record holds it, the
/// generation moved; one of a channel's write is left to the caller to
/// build its team again, once the channel is in force.
pub async fn generation(core: &Core, now: Timestamp) -> Result<Looked> {
    let key = keys::api_teams_generation();
    let raw = core.get(std::slice::from_ref(&key)).await?.pop().flatten();
    let loaded = Loaded::<ApiTeamsGeneration>::parse(key, raw)?;
    let read = loaded.value.unwrap_or_default();
    let stopped = (read.pending.iter())
        .flat_map(|(id, marks)| marks.iter().map(move |m| (id, m)))
        .filter(|(_, m)| m.at.plus(STOPPED_AFTER) <= now);
    let mut looked = Looked {
        generation: read.generation,
        born: read.born,
        ..Looked::default()
    };
    for (id, mark) in stopped.collect::<Vec<_>>() {
        match &mark.channel_by {
            Some(by) => (looked.rebuild).push((id.clone(), mark.token, by.clone())),
            None => {
                let repaired = repair(core, id, mark.token, now).await?;
                looked.generation = looked.generation.max(repaired);
            }
        }
    }
    Ok(looked)
}

/// What the index keeps of a team at `digest` whose keys are made from
/// `keyspace`: the digest, and after a `~` the team's incarnation when it
/// has one, so that a team deleted and written again with the same
/// configuration moves the index, and every instance puts the new
/// tenant in force (docs/decisions/0437-a-team-id-written-again-is-a-new-tenant.md).
pub fn indexed_as(digest: &str, incarnation: Option<&str>) -> String {
    match incarnation {
        Some(incarnation) => format!("{digest}~{incarnation}"),
        None => digest.to_string(),
    }
}

/// Team `id` indexed as its record holds it, for a write (mark `token`)
/// whose writer stopped: the generation.
async fn repair(core: &Core, id: &str, token: u64, now: Timestamp) -> Result<u64> {
    let stored = stored_forms(core, &[id], keys::api_team)
        .await?
        .pop()
        .flatten();
    let digest = stored.map(
        |StoredApiTeam::V1 {
             digest,
             incarnation,
             ..
         }| { indexed_as(&digest, incarnation.as_deref()) },
    );
    tracing::warn!(team = %id, "a write of an API team stopped before its index; indexed as stored");
    let read = [keys::api_teams(), keys::api_teams_generation()];
    let digest = digest.as_deref();
    core.change(change::NO_TEAM, &read, now, |c| {
        match indexed(c, id, digest, token, true)? {
            Some(generation) => Ok(Step::Write(generation)),
            None => Ok(Step::Answer(0)),
        }
    })
    .await
}
