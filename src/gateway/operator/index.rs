//! The index of the teams written through the operator API and the
//! generation every instance watches (docs/operator-api.md#how-the-store-keeps-them),
//! with the writes under way marked beside the generation
//! (docs/operator-api.md#a-writer-that-stops): a write marks itself, commits
//! its team, then moves the index and clears its mark in one commit; a
//! mark older than [`STOPPED_AFTER`] is a writer that stopped between
//! the two, and the next instance to look indexes what its team's record
//! holds.
//!
//! The index is kept in [`PARTS`] parts, each id in the one its hash
//! names, and the generation logs the parts its last moves changed: a
//! write reads and writes one part, and an instance that looks reads the
//! parts moved since the generation it holds, whatever the number of
//! teams (docs/decisions/0461-the-index-of-the-api-teams-in-parts.md).
use std::collections::{BTreeMap, BTreeSet};

use super::forms::stored_forms;
use crate::domain::audit::Actor;
use crate::error::Result;
use crate::gateway::change::{self, Change, Round};
use crate::gateway::records::{
    ApiTeamsGeneration, ApiTeamsIndex, Loaded, PendingWrite, StoredApiTeam, StoredApiTeams,
};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// How old a mark is when its writer is taken to have stopped: a write
/// takes milliseconds, and waits at most 5 s for its instance.
pub const STOPPED_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The parts the index of the API teams is kept in: at 10 000 teams,
/// about ten ids a part.
pub const PARTS: u16 = 1024;

/// The moves of the index the generation logs: an instance that holds a
/// generation further behind reads every part.
pub const LOGGED: usize = 256;

/// The part of the index that holds team `id`.
pub fn part_of(id: &str) -> u16 {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(id.as_bytes());
    u16::from_be_bytes([hash[0], hash[1]]) % PARTS
}

/// `generation` moved once, by a change of `parts` of the index (none:
/// the channels' index), logged.
pub fn moved(generation: &mut ApiTeamsGeneration, parts: impl IntoIterator<Item = u16>) {
    let before = generation.generation;
    generation.generation += 1;
    let at = generation.generation;
    (generation.logged_since).get_or_insert(before);
    generation.log.extend(parts.into_iter().map(|p| (at, p)));
    let over = generation.log.len().saturating_sub(LOGGED);
    if let Some((dropped, _)) = generation.log.drain(..over).next_back() {
        generation.logged_since = Some(dropped);
    }
}

/// The parts of the index moved after generation `held` (of the record
/// born `born`), as `read` logs them; `None` when it does not log them
/// all (a new record, a store reset, too far behind): every part is to
/// be read.
pub fn moved_since(read: &ApiTeamsGeneration, born: u64, held: u64) -> Option<BTreeSet<u16>> {
    let logged = read.logged_since.is_some_and(|s| s <= held);
    if read.born != born || !logged || held > read.generation {
        return None;
    }
    let after = read.log.iter().filter(|(at, _)| *at > held);
    Some(after.map(|(_, part)| *part).collect())
}

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

/// In `c`, which read [`index_keys`] of `id`: team `id` at `digest`
/// (`None`: gone) in its part of the index, mark `token` cleared and the
/// generation moved. `only_if_marked`: nothing when the mark is gone (its
/// writer indexed the team itself). The generation, or `None` for
/// nothing.
fn indexed(
    c: &mut Change,
    id: &str,
    digest: Option<&str>,
    token: u64,
    only_if_marked: bool,
) -> Result<Option<u64>> {
    let [ix, gen] = index_keys(id);
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
    put_part(c, &loaded, &teams)?;
    moved(&mut next, [part_of(id)]);
    c.put(&count, &next, None)?;
    Ok(Some(next.generation))
}

/// In `c`, which read part `loaded`: `teams` in its place (an empty part
/// deleted). The record lives until deleted, as the teams it names.
pub(super) fn put_part(
    c: &mut Change,
    loaded: &Loaded<StoredApiTeams>,
    teams: &StoredApiTeams,
) -> Result<()> {
    match (teams.teams.is_empty(), &loaded.value) {
        (true, Some(_)) => c.delete(loaded),
        (true, None) => {}
        (false, _) => drop(c.put(loaded, teams, None)?),
    }
    Ok(())
}

/// What indexing team `id` reads: its part of the index, the generation.
fn index_keys(id: &str) -> [String; 2] {
    [
        keys::api_teams_part(part_of(id)),
        keys::api_teams_generation(),
    ]
}

/// The parts `parts` of the index, read [`READ_AT_ONCE`] a call: each
/// with its teams (id → digest).
pub async fn read_parts(
    core: &Core,
    parts: &[u16],
) -> Result<Vec<(u16, BTreeMap<String, String>)>> {
    let mut read = Vec::with_capacity(parts.len());
    for chunk in parts.chunks(READ_AT_ONCE) {
        let keys: Vec<String> = chunk.iter().map(|p| keys::api_teams_part(*p)).collect();
        let raw = core.get(&keys).await?;
        for ((part, key), raw) in chunk.iter().zip(keys).zip(raw) {
            let teams = Loaded::<StoredApiTeams>::parse(key, raw)?.value;
            read.push((*part, teams.unwrap_or_default().teams));
        }
    }
    Ok(read)
}

/// Every part of the index: what a start, a reload and an export read.
pub fn every_part() -> Vec<u16> {
    (0..PARTS).collect()
}

/// Parts read in one store call.
const READ_AT_ONCE: usize = 512;

/// How often the index as an earlier version kept it is read again while
/// it moves under the move into parts.
const MOVE_TRIES: usize = 5;

/// The index as an earlier version kept it (`{~teams}:ix`, whole) moved
/// into its parts, and `{~teams}:ix` left saying so, which an earlier
/// version cannot read: its looks fail (it keeps the teams it has in
/// force) and its writes stop before their index, whose marks an
/// instance of this version repairs
/// (docs/decisions/0461-the-index-of-the-api-teams-in-parts.md). Done
/// once, by the first instance to start: the others find it done; a
/// store without it has nothing to move.
pub async fn keep_in_parts(core: &Core, now: Timestamp) -> Result<()> {
    let ix = keys::api_teams();
    let moved = change::until!(MOVE_TRIES, |_| {
        let raw = core.get(std::slice::from_ref(&ix)).await?.pop().flatten();
        match Loaded::<ApiTeamsIndex>::parse(ix.clone(), raw)?.value {
            Some(ApiTeamsIndex::InParts { .. }) => Round::Done(()),
            Some(ApiTeamsIndex::Whole(whole)) => {
                let parts: BTreeSet<u16> = whole.teams.keys().map(|id| part_of(id)).collect();
                let mut read = vec![ix.clone(), keys::api_teams_generation()];
                read.extend(parts.iter().map(|p| keys::api_teams_part(*p)));
                let moved_in = core.change(change::NO_TEAM, &read, now, |c| move_in(c, &parts));
                match moved_in.await? {
                    true => Round::Done(()),
                    false => Round::Again,
                }
            }
            // A new store: nothing to move.
            None => Round::Done(()),
        }
    });
    moved.ok_or_else(|| {
        crate::error::Error::internal("the index of the API teams moved while it was put in parts")
    })
}

/// [`keep_in_parts`] in `c`, which read `{~teams}:ix`, the generation and
/// `parts`: whether it is done (`false`: the index read names another
/// part, to read again).
fn move_in(c: &mut Change, parts: &BTreeSet<u16>) -> Result<Step<bool>> {
    let ix = keys::api_teams();
    let read = c.read::<ApiTeamsIndex>(&ix);
    let read = read.map_err(|e| crate::error::Error::internal_from("the API teams' index", e))?;
    let version = read.version;
    let whole = match read.value {
        Some(ApiTeamsIndex::InParts { .. }) | None => return Ok(Step::Answer(true)),
        Some(ApiTeamsIndex::Whole(whole)) => whole.teams,
    };
    if whole.keys().any(|id| !parts.contains(&part_of(id))) {
        return Ok(Step::Answer(false));
    }
    let mut by_part: BTreeMap<u16, BTreeMap<String, String>> = BTreeMap::new();
    for (id, digest) in whole {
        by_part.entry(part_of(&id)).or_default().insert(id, digest);
    }
    for (part, teams) in by_part {
        let loaded: Loaded<StoredApiTeams> = c.read(&keys::api_teams_part(part))?;
        let mut next = loaded.value.clone().unwrap_or_default();
        next.teams.extend(teams);
        put_part(c, &loaded, &next)?;
    }
    let marker = Loaded::<ApiTeamsIndex> {
        key: ix,
        version,
        value: None,
    };
    c.put(&marker, &ApiTeamsIndex::InParts { parts: PARTS }, None)?;
    let gen: Loaded<ApiTeamsGeneration> = c.read(&keys::api_teams_generation())?;
    let mut next = ApiTeamsGeneration::next_of(gen.value.as_ref());
    next.generation += 1;
    (next.log, next.logged_since) = (Vec::new(), None);
    c.put(&gen, &next, None)?;
    Ok(Step::Write(true))
}

/// Team `id` at `digest` (`None`: gone) in its part of the index, mark
/// `token` cleared and the generation moved, in one commit of their own
/// slot: the generation.
pub async fn index(
    core: &Core,
    id: &str,
    digest: Option<String>,
    token: u64,
    now: Timestamp,
) -> Result<u64> {
    let read = index_keys(id);
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
    let read = index_keys(id);
    let digest = digest.as_deref();
    core.change(change::NO_TEAM, &read, now, |c| {
        match indexed(c, id, digest, token, true)? {
            Some(generation) => Ok(Step::Write(generation)),
            None => Ok(Step::Answer(0)),
        }
    })
    .await
}
