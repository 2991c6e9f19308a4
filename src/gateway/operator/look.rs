//! What the store holds of the teams written through the operator API,
//! and of the resources kept beside them ([`super::KEPT`]: the channels),
//! that an instance has not put in force
//! (docs/operator-api.md#every-instance-at-once): the generation read,
//! the parts of the index it logs as moved since the one the instance
//! holds (every part when it does not log them all), then only the kept
//! ones and teams whose digest moved, and the API teams in force that
//! list a kept one that moved, built again against it.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use futures::StreamExt as _;

use super::forms::{breaks, operator, stored_forms, stored_teams_and_texts};
use super::index::{self, part_of};
use super::kept::{opened_at, read_kept, KeptChanges, NotInForce, Registered};
use super::resource::Resource;
use super::KEPT;
use crate::config::{is_secret_member, Config, ConfigError, Team};
use crate::domain::team_secrets;
use crate::error::Result;
use crate::gateway::records::{
    ApiTeamsGeneration, KeyReservation, Loaded, StoredApiChannels, StoredApiForm, StoredApiTeam,
};
use crate::gateway::Core;
use crate::store::keys;

/// What an instance put in force of the API teams and kept resources:
/// their digests as the indexes gave them, the teams by part of the index.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub teams: BTreeMap<u16, BTreeMap<String, String>>,
    /// Each kept resource's index, by its [`Registered::what`].
    pub kept: BTreeMap<&'static str, BTreeMap<String, String>>,
    /// The generation's `born` and the generation they are of; `None`:
    /// nothing read yet.
    pub at: Option<(u64, u64)>,
    /// Teams indexed that were left out (refused, a key another holds,
    /// indexed but not stored): read again at each move, as their
    /// reason may have gone.
    pub again: BTreeSet<String>,
}

impl Known {
    /// The digest of team `id` as put in force.
    fn digest(&self, id: &str) -> Option<&String> {
        self.teams.get(&part_of(id))?.get(id)
    }

    /// What a look read, applied: the parts it read in place of those
    /// held (all of them for a read of every part), the teams it took out
    /// or left out dropped, those left out read again at the next move.
    pub fn apply(&mut self, read: KnownRead) {
        if read.every_part {
            (self.teams, self.again) = Default::default();
        }
        for (part, teams) in read.parts {
            self.again.retain(|id| part_of(id) != part);
            match teams.is_empty() {
                true => self.teams.remove(&part),
                false => self.teams.insert(part, teams),
            };
        }
        for id in read.dropped {
            if let Some(teams) = self.teams.get_mut(&part_of(&id)) {
                teams.remove(&id);
            }
        }
        self.again.extend(read.again);
        self.kept = read.kept;
        self.at = read.at;
    }
}

/// What a look read of the index, for [`Known::apply`].
#[derive(Debug, Default)]
pub struct KnownRead {
    /// Whether it read every part.
    pub every_part: bool,
    pub parts: Vec<(u16, BTreeMap<String, String>)>,
    /// Teams taken out (gone) or left out.
    pub dropped: Vec<String>,
    /// Of `dropped`, those to read again at the next move.
    pub again: Vec<String>,
    pub kept: BTreeMap<&'static str, BTreeMap<String, String>>,
    pub at: Option<(u64, u64)>,
}

/// What the store holds of the API teams and kept resources that differs
/// from what an instance put in force: the kept ones and teams to put in
/// force (new or changed), those gone, the index read (what is known from
/// now on) and its generation.
#[derive(Default)]
pub struct Changes {
    pub teams: Vec<Arc<Team>>,
    pub gone: Vec<String>,
    /// Each kept resource's, in the order of [`KEPT`].
    pub kept: Vec<KeptChanges>,
    pub known: KnownRead,
    pub generation: u64,
    /// Stored teams that could not be put in force, each with why (never
    /// a value: a pointer, a key id).
    pub refused: Vec<(String, String)>,
    /// Stored teams read together with another, written earlier, that has
    /// one of their API keys (or their `[mcp] oauth` issuer and
    /// audience): left out, each with why (never a value).
    pub clashing: Vec<(String, String)>,
    /// Of `clashing`, API teams in force taken out of force: a team read
    /// now, written earlier, has their `[mcp] oauth` issuer and audience.
    /// Their stored forms stay held.
    pub displaced: Vec<String>,
    /// Of `refused` and the kept ones refused, those whose secrets are
    /// sealed under a key id no longer listed, or whose name a file of this
    /// instance has: what stops a start-up or refuses a reload (`"team"`,
    /// `"channel"`…, the name, why).
    pub stops: Vec<(&'static str, String, String)>,
    /// The stored forms of `teams`, as the store keeps them (sealed), each
    /// its text: what a store reset writes back (those of the kept ones are
    /// in `kept`).
    pub forms: BTreeMap<String, Box<str>>,
    /// Kept ones deleted that stay in force for the API teams in force
    /// that still list them (`"channel"`…, the name, which teams).
    pub still_listed: Vec<(&'static str, String, String)>,
}

/// The stored forms (sealed) of the API teams and kept resources an
/// instance holds in force: what it writes back when the store comes back
/// empty (docs/operations.md#when-redis-comes-back-empty); what `chatgate
/// teams export` prints, as `{"teams": {…}, "channels": {…}}` (a member a
/// kept resource, by its [`Registered::exported_as`]).
#[derive(Debug, Clone, Default)]
pub struct Held {
    pub teams: BTreeMap<String, StoredApiForm>,
    /// By [`Registered::exported_as`], then by name.
    pub kept: BTreeMap<&'static str, BTreeMap<String, StoredApiForm>>,
}

impl Held {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty() && self.kept.values().all(|k| k.is_empty())
    }

    /// The held ones of kept resource `k`, by name.
    pub fn of(&self, k: &Registered) -> impl Iterator<Item = (&String, &StoredApiForm)> {
        self.kept.get(k.exported_as).into_iter().flatten()
    }
}

/// [`Held`] as an instance keeps it between store resets: each API team's
/// stored form as the text the store keeps, parsed only when a reset
/// writes them back; the kept ones' (few) as [`Held`] keeps them
/// (docs/decisions/0841-an-instance-holds-its-api-teams-stored-forms-as-text.md).
#[derive(Debug, Clone, Default)]
pub struct HeldTexts {
    teams: BTreeMap<String, Box<str>>,
    kept: BTreeMap<&'static str, BTreeMap<String, StoredApiForm>>,
}

impl HeldTexts {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty() && self.kept.values().all(|k| k.is_empty())
    }

    /// What `changes` put in force, or took out, applied to what is held.
    pub fn take(&mut self, changes: &mut Changes) {
        for id in changes.gone.iter() {
            self.teams.remove(id);
        }
        for k in &mut changes.kept {
            let held = self.kept.entry(k.of.exported_as).or_default();
            for name in k.gone.iter() {
                held.remove(name);
            }
            held.extend(std::mem::take(&mut k.forms));
        }
        let forms = std::mem::take(&mut changes.forms);
        let put: BTreeSet<&str> = changes.teams.iter().map(|t| t.id.as_str()).collect();
        let teams = forms
            .into_iter()
            .filter(|(id, _)| put.contains(id.as_str()));
        self.teams.extend(teams);
    }

    /// What is held, each team's text parsed (as it was read before it was
    /// put in force, so none fails but a bug's).
    pub fn parsed(&self) -> Result<Held> {
        let mut teams = BTreeMap::new();
        for (id, text) in &self.teams {
            let raw = crate::store::Versioned {
                value: text.to_string(),
                version: 0,
            };
            let form = Loaded::<StoredApiForm>::parse(keys::api_team(id), Some(raw))?;
            teams.extend(form.value.map(|f| (id.clone(), f)));
        }
        let kept = self.kept.clone();
        Ok(Held { teams, kept })
    }
}

impl serde::Serialize for Held {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(1 + KEPT.len()))?;
        map.serialize_entry("teams", &self.teams)?;
        let none = BTreeMap::new();
        for k in KEPT {
            map.serialize_entry(k.exported_as, self.kept.get(k.exported_as).unwrap_or(&none))?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for Held {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Held, D::Error> {
        d.deserialize_map(HeldVisitor)
    }
}

/// Reads a [`Held`]: `teams` and a member each of [`KEPT`], each at most
/// once, any missing empty, any other refused.
struct HeldVisitor;

impl<'de> serde::de::Visitor<'de> for HeldVisitor {
    type Value = Held;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("the API teams and channels, as `teams export` prints them")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Held, A::Error> {
        use serde::de::Error;
        let mut held = Held::default();
        let (mut teams, mut seen) = (false, BTreeSet::new());
        while let Some(member) = map.next_key::<String>()? {
            if member == "teams" && !std::mem::replace(&mut teams, true) {
                held.teams = map.next_value()?;
                continue;
            }
            let Some(k) = KEPT.iter().find(|k| k.exported_as == member) else {
                let members = std::iter::once("teams").chain(KEPT.iter().map(|k| k.exported_as));
                let members: &'static [&'static str] = Box::leak(members.collect());
                return Err(match member.as_str() {
                    "teams" => A::Error::duplicate_field("teams"),
                    _ => A::Error::unknown_field(&member, members),
                });
            };
            if !seen.insert(k.exported_as) {
                return Err(A::Error::duplicate_field(k.exported_as));
            }
            held.kept.insert(k.exported_as, map.next_value()?);
        }
        Ok(held)
    }
}

impl Changes {
    /// Whether nothing is to be put in force or removed.
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty() && self.gone.is_empty() && self.kept.iter().all(|k| k.is_empty())
    }

    /// The first stored kept one or team sealed under a key id no longer
    /// listed, or whose name a file of this instance has, as what stops a
    /// start-up or refuses a reload: named, with why. Any other that
    /// cannot be put in force is left out ([`Changes::refused`]) and
    /// stops nothing.
    pub fn first_refusal(&self) -> Option<ConfigError> {
        let (what, name, why) = self.stops.first()?;
        let problem = format!("the API {what} {name:?} cannot be put in force: {why}");
        Some(ConfigError::new(
            "the operator API",
            format!("{what}s/{name}"),
            problem,
        ))
    }

    /// `config` with these changes in force: the kept ones, then the teams.
    pub fn applied_to(&self, config: &Config) -> std::result::Result<Config, ConfigError> {
        let kept = kept_applied(&self.kept, config)?;
        let out: Vec<String> = self.gone.iter().chain(&self.displaced).cloned().collect();
        kept.with_api_teams(self.teams.iter().cloned(), &out)
    }

    /// The kept ones refused, each with what it is (`"channel"`…).
    pub fn refused_kept(&self) -> impl Iterator<Item = (&'static str, &String, &String)> {
        (self.kept.iter()).flat_map(|k| k.refused.iter().map(|(n, w)| (k.of.what, n, w)))
    }
}

/// `config` with every kept resource's `changes` in force, in turn.
fn kept_applied(
    changes: &[KeptChanges],
    config: &Config,
) -> std::result::Result<Config, ConfigError> {
    let mut next: Option<Config> = None;
    for k in changes {
        next = Some(k.applied_to(next.as_ref().unwrap_or(config))?);
    }
    Ok(next.unwrap_or_else(|| config.clone()))
}

/// This configuration of files with the API teams and kept resources of
/// `running` kept: a file that now has an API team's id, or a kept one's
/// name, is an error.
pub fn keeping_api(files: &Config, running: &Config) -> std::result::Result<Config, ConfigError> {
    let mut next: Option<Config> = None;
    for k in KEPT {
        next = Some((k.keep)(next.as_ref().unwrap_or(files), running)?);
    }
    let kept: Vec<Arc<Team>> = running.api_teams().cloned().collect();
    for team in &kept {
        file_key_logged(files, team);
    }
    next.as_ref().unwrap_or(files).with_api_teams(kept, &[])
}

/// One error line for each API key of `team` (an API team kept in force)
/// that a file team of `files` holds: the key acts for the file team
/// (`KeyHolders::holder`), named by the team and the pointer, never the
/// key (docs/decisions/0552-a-file-team-s-key-acts-for-it.md).
fn file_key_logged(files: &Config, team: &Team) {
    for (i, key) in team.api_keys.iter().enumerate() {
        if files.key_holders.holders(&key.sha256).any(|h| !h.api) {
            let pointer = format!("/api_keys/{i}/sha256");
            tracing::error!(team = %team.id, %pointer, "an API team holds a file team's key: the key acts for the file team");
        }
    }
}

/// Stored teams read in one store call.
const READ_AT_ONCE: usize = 500;

/// Batches of [`READ_AT_ONCE`] read ahead of the one being built: the
/// store's answers come while the teams are built, and a Cluster's masters
/// each have some in hand.
const READS_AHEAD: usize = 4;

/// The API teams and kept resources of the store that differ from
/// `known`: the generation and the kept ones' indexes read, the parts of
/// the teams' index moved since `known` (with those of the teams it left
/// out), then only the kept ones and teams whose digest moved,
/// [`READ_AT_ONCE`] a call, and the API teams in force that list a kept
/// one that moved.
pub async fn changes(core: &Core, known: &Known) -> Result<Changes> {
    let mut phases = crate::start_phases::Phases::new(known.at.is_none());
    let (indexes, count) = indexes_and_generation(core).await?;
    let (every_part, parts) = parts_to_read(&count, known);
    let read = index::read_parts(core, &parts).await?;
    phases.done("the API teams' index read", parts.len());
    let mut changes = Changes {
        generation: count.generation,
        ..Changes::default()
    };
    let config = core.config();
    for (k, index) in KEPT.iter().zip(&indexes) {
        let known = known.kept.get(k.what);
        let kept = read_kept(core, config, k, index, known, &mut changes.stops).await?;
        changes.kept.push(kept);
    }
    let mut moved = moved_in_parts(known, &read, &mut changes.gone);
    // Nothing kept moved (a team's write): the teams are built against the
    // configuration as it is, and no other is made.
    let against = match changes.kept.iter().all(|k| k.is_empty()) {
        true => std::borrow::Cow::<Config>::Borrowed(config),
        false => {
            let touched = |t: &&Arc<Team>| changes.kept.iter().any(|k| k.touches(t));
            for team in config.api_teams().filter(touched) {
                if known.digest(&team.id).is_some() && !changes.gone.contains(&team.id) {
                    moved.insert(&team.id);
                }
            }
            let with = kept_applied(&changes.kept, config);
            let with = with
                .map_err(|e| crate::error::Error::internal_from("API channels put in force", e))?;
            std::borrow::Cow::Owned(with)
        }
    };
    let moved: Vec<&String> = moved.into_iter().collect();
    let gone_from_index = changes.gone.len();
    read_teams(core, &against, &moved, &mut changes).await?;
    // Indexed but not stored (a Cluster master that lost it, until
    // written back): read again at the next move.
    let unstored = changes.gone[gone_from_index..].to_vec();
    changes.clashing = one_team_per_key(config, &changes.gone, &mut changes.teams);
    let (audiences, displaced) = one_team_per_audience(config, &changes.gone, &mut changes.teams);
    changes.clashing.extend(audiences);
    changes.displaced = displaced;
    let kept = KEPT.iter().map(|k| k.what).zip(indexes).collect();
    changes.known = KnownRead {
        every_part,
        parts: read,
        kept,
        at: Some((count.born, count.generation)),
        ..KnownRead::default()
    };
    keep_listed(config, &mut changes);
    left_out_known(&mut changes, unstored);
    Ok(changes)
}

/// The index of each kept resource, in the order of [`KEPT`], and the
/// generation, read in one call (one slot).
async fn indexes_and_generation(
    core: &Core,
) -> Result<(Vec<BTreeMap<String, String>>, ApiTeamsGeneration)> {
    let mut read: Vec<String> = KEPT.iter().map(|k| k.index_key()).collect();
    let gen = keys::api_teams_generation();
    read.push(gen.clone());
    let mut raw = core.get(&read).await?.into_iter();
    let mut indexes = Vec::with_capacity(KEPT.len());
    for key in read.into_iter().take(KEPT.len()) {
        let index = Loaded::<StoredApiChannels>::parse(key, raw.next().flatten())?;
        indexes.push(index.value.unwrap_or_default().channels);
    }
    let count = Loaded::<ApiTeamsGeneration>::parse(gen, raw.next().flatten())?;
    Ok((indexes, count.value.unwrap_or_default()))
}

/// The parts of the index to read after `known` at generation `count`:
/// those it logs as moved since, with those of the teams `known` left
/// out; or, `true`, every part.
fn parts_to_read(count: &ApiTeamsGeneration, known: &Known) -> (bool, Vec<u16>) {
    let since = (known.at).and_then(|(born, at)| index::moved_since(count, born, at));
    match since {
        Some(mut parts) => {
            parts.extend(known.again.iter().map(|id| part_of(id)));
            (false, parts.into_iter().collect())
        }
        None => (true, index::every_part()),
    }
}

/// The teams of the parts `read` whose digest is not the one `known`
/// holds; into `gone`, those `known` holds that the parts no longer have.
fn moved_in_parts<'a>(
    known: &Known,
    read: &'a [(u16, BTreeMap<String, String>)],
    gone: &mut Vec<String>,
) -> BTreeSet<&'a String> {
    let mut moved = BTreeSet::new();
    for (part, teams) in read {
        let held = known.teams.get(part);
        let differs =
            |(id, digest): &(&String, &String)| held.and_then(|h| h.get(*id)) != Some(*digest);
        moved.extend(teams.iter().filter(differs).map(|(id, _)| id));
        let was = held.into_iter().flat_map(|h| h.keys());
        gone.extend(was.filter(|id| !teams.contains_key(*id)).cloned());
    }
    moved
}

/// Into `changes.known`: the teams left out and gone dropped, and those
/// left out read again at the next move (once the team that holds their
/// key has changed, they may go in), with `unstored`, indexed but not
/// stored (a Cluster master that lost it, until written back); the kept
/// ones refused dropped.
fn left_out_known(changes: &mut Changes, unstored: Vec<String>) {
    let left_out = changes.refused.iter().chain(&changes.clashing);
    let mut left_out: Vec<String> = left_out.map(|(id, _)| id.clone()).collect();
    changes.known.dropped = (left_out.iter().chain(&changes.gone)).cloned().collect();
    left_out.extend(unstored);
    changes.known.again = left_out;
    for k in &changes.kept {
        if let Some(known) = changes.known.kept.get_mut(k.of.what) {
            for (name, _) in &k.refused {
                known.remove(name);
            }
        }
    }
}

/// Into `changes`: stored teams `ids`, [`READ_AT_ONCE`] a call, the next
/// [`READS_AHEAD`] calls read while one batch is built ([`put_batch`]).
async fn read_teams(
    core: &Core,
    config: &Config,
    ids: &[&String],
    changes: &mut Changes,
) -> Result<()> {
    let chunks: Vec<&[&String]> = ids.chunks(READ_AT_ONCE).collect();
    let mut reads = futures::stream::FuturesOrdered::new();
    for chunk in chunks.iter().take(READS_AHEAD) {
        reads.push_back(read_batch(core, chunk));
    }
    let mut next = READS_AHEAD;
    let (mut waited, mut built) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for chunk in &chunks {
        let at = std::time::Instant::now();
        let Some(read) = reads.next().await else {
            break;
        };
        waited += at.elapsed();
        if let Some(ahead) = chunks.get(next) {
            reads.push_back(read_batch(core, ahead));
            next += 1;
        }
        let at = std::time::Instant::now();
        put_batch(config, chunk, read?, changes);
        built += at.elapsed();
    }
    let (waited_ms, built_ms) = (waited.as_secs_f64() * 1e3, built.as_secs_f64() * 1e3);
    tracing::debug!(target: crate::start_phases::TARGET, teams = ids.len(), waited_ms, built_ms, "the stored teams: waited on the store, built");
    Ok(())
}

/// Into `changes`: stored teams `ids`, read together ([`read_batch`]) and
/// built against `config` (the kept ones read with them in force), on
/// every core at once ([`built_on_every_core`]); one that lists a kept one refused here
/// is refused too, rather than built against a file's of the name.
fn put_batch(config: &Config, ids: &[&String], batch: Batch, changes: &mut Changes) {
    let Batch {
        read,
        texts,
        reserved,
    } = batch;
    let mut to_build = Vec::with_capacity(ids.len());
    for (id, stored) in ids.iter().zip(read) {
        let step = match stored {
            // Named among the stops below, in the batch's order.
            _ if config.file_team(id).is_some() => {
                let why = "a team file of this instance has its id: one id, one source";
                Err(Some(NotInForce::Stops(why.into())))
            }
            Some(stored) => match reserved_for_another(id, &stored, &reserved) {
                Some(at) => {
                    let StoredApiForm::V1 { body, .. } = &stored;
                    let why = breaks(config, body, vec![crate::config::api_key_taken_at(at)]);
                    Err(Some(NotInForce::Breaks(why)))
                }
                None => Ok(stored),
            },
            None => Err(None),
        };
        to_build.push(((*id).clone(), step));
    }
    let built = built_on_every_core(config, to_build);
    for ((id, built), text) in built.into_iter().zip(texts) {
        let refused_kept = |team: &Team| {
            let kept = changes.kept.iter();
            (kept.clone()).find_map(|k| Some((k.of.what, k.refused_of(team)?.clone())))
        };
        match built {
            Ok(Ok(team)) => match refused_kept(&team) {
                None => {
                    changes.teams.push(Arc::new(team));
                    (changes.forms).extend(text.map(|t| (id, t)));
                }
                Some((what, name)) => {
                    let why =
                        format!("it lists the API {what} {name:?}, which was not put in force");
                    changes.refused.push((id, why));
                }
            },
            Ok(Err(not)) | Err(Some(not)) => {
                let why = not.why("team", &id, &mut changes.stops);
                changes.refused.push((id, why));
            }
            // Indexed but not stored (a writer stopped between): none.
            Err(None) => changes.gone.push(id),
        }
    }
}

/// Stored teams read together: their forms, the text of each, and the
/// reservations of their keys.
struct Batch {
    read: Vec<Option<StoredApiForm>>,
    texts: Vec<Option<Box<str>>>,
    reserved: BTreeMap<String, String>,
}

/// Stored teams `ids` read, in one call, and their keys' reservations in
/// another (none when they hold no key).
async fn read_batch(core: &Core, ids: &[&String]) -> Result<Batch> {
    let read = stored_teams_and_texts(core, ids).await?;
    let (read, texts): (Vec<_>, Vec<_>) = read.into_iter().map(Option::unzip).unzip();
    let reserved = reserved_keys(core, &read).await?;
    Ok(Batch {
        read,
        texts,
        reserved,
    })
}

/// A stored team read, to build (`Ok`), or not in force before it is
/// built (why), or indexed but not stored (`None`); once built, the team
/// or why it is not in force. What stops a start is named once the batch
/// is built, in its order, whether found before the build or by it.
type ToBuild<T> = (String, std::result::Result<T, Option<NotInForce>>);

/// The teams of `read` to build, built against `config` (each with its
/// print's digest made, which a start compares with the one recorded), the
/// list cut into one run for each core: a start of many teams takes as
/// long as its share of them, not as all of them.
fn built_on_every_core(
    config: &Config,
    mut read: Vec<ToBuild<StoredApiForm>>,
) -> Vec<ToBuild<std::result::Result<Team, NotInForce>>> {
    let build = |run: Vec<ToBuild<StoredApiForm>>| -> Vec<_> {
        let one = |id: &str, stored| {
            let built =
                team_of_record(config, id, stored).and_then(|t| no_file_s_audience(config, t));
            if let Ok(team) = &built {
                team.print.digest();
            }
            built
        };
        (run.into_iter())
            .map(|(id, step)| {
                let built = step.map(|stored| one(&id, stored));
                (id, built)
            })
            .collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core = read.len().div_ceil(cores).max(BUILT_ALONE);
    if read.len() <= per_core {
        return build(read);
    }
    let mut runs = Vec::with_capacity(cores);
    while read.len() > per_core {
        let rest = read.split_off(per_core);
        runs.push(std::mem::replace(&mut read, rest));
    }
    std::thread::scope(|s| {
        let others: Vec<_> = (runs.into_iter())
            .map(|run| s.spawn(|| build(run)))
            .collect();
        let last = build(read);
        let mut all = Vec::new();
        for other in others {
            match other.join() {
                Ok(built) => all.extend(built),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all.extend(last);
        all
    })
}

/// Fewer teams than this are built on the task's own thread: a write's
/// one team is not worth a thread.
const BUILT_ALONE: usize = 64;

/// `team` (a stored team, built), unless a file team's `[mcp] oauth`
/// names its issuer and audience: as a file with its id, that stops a
/// start-up or refuses a reload, naming the team and the member
/// (docs/decisions/0740-one-issuer-and-audience-one-team-at-every-write.md).
fn no_file_s_audience(config: &Config, team: Team) -> std::result::Result<Team, NotInForce> {
    let oauth = team.mcp_oauth.as_ref();
    match oauth.and_then(|o| config.mcp_audience_holder(&team.id, o, false)) {
        None => Ok(team),
        Some(file) => {
            let taken = crate::config::mcp_audience_taken(&file.id);
            let why = format!("{}: {}", taken.pointer, taken.detail);
            Err(NotInForce::Stops(why))
        }
    }
}

/// The reservations in the store of the API keys `read` (stored teams)
/// hold, by digest: whom an instance holds each for
/// (docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md).
/// One read for all of them (one slot), none when they hold no key.
async fn reserved_keys(
    core: &Core,
    read: &[Option<StoredApiForm>],
) -> Result<BTreeMap<String, String>> {
    let digests: BTreeSet<String> = (read.iter().flatten())
        .flat_map(|StoredApiForm::V1 { body, .. }| super::claims::digests_of(body))
        .collect();
    if digests.is_empty() {
        return Ok(BTreeMap::new());
    }
    let keys: Vec<String> = digests.iter().map(|d| keys::api_key_reserved(d)).collect();
    let raw = core.get(&keys).await?;
    let mut reserved = BTreeMap::new();
    for ((digest, key), raw) in digests.into_iter().zip(keys).zip(raw) {
        match Loaded::<KeyReservation>::parse(key, raw) {
            Ok(loaded) => reserved.extend(loaded.value.map(|r| (digest, r.holder))),
            // One unreadable reservation refuses the teams that hold its
            // key (no holder is a team's id), not every team of the load.
            Err(e) => {
                tracing::warn!(error = %e, "a key reservation in the store cannot be read: the stored teams holding its key are refused");
                reserved.insert(digest, String::new());
            }
        }
    }
    Ok(reserved)
}

/// The place in `api_keys` of the first key of stored team `id` that an
/// instance reserved for another holder (a file team of another id, an
/// operator): such a team is refused wherever it is put in force, as the
/// write or import that made it would be refused now, whether or not this
/// instance holds that file team or key
/// (docs/decisions/0751-a-stored-team-holding-a-reserved-key-is-refused-where-it-is-loaded.md).
fn reserved_for_another(
    id: &str,
    stored: &StoredApiForm,
    reserved: &BTreeMap<String, String>,
) -> Option<usize> {
    let StoredApiForm::V1 { body, .. } = stored;
    let mut held = super::claims::keys_of(body);
    held.find(|(_, digest)| reserved.get(digest).is_some_and(|holder| holder != id))
        .map(|(at, _)| at)
}

/// A kept one gone that an API team staying in force still lists (one
/// refused, whose team in force stays as it was built) stays in force
/// too, and is looked at again at the next move.
fn keep_listed(in_force: &Config, changes: &mut Changes) {
    if changes.kept.iter().all(|k| k.gone.is_empty()) {
        return;
    }
    let put: HashSet<&str> = changes.teams.iter().map(|t| t.id.as_str()).collect();
    let stays = |t: &&Arc<Team>| !put.contains(t.id.as_str()) && !changes.gone.contains(&t.id);
    let staying: Vec<&Arc<Team>> = in_force.api_teams().filter(stays).collect();
    for k in &mut changes.kept {
        let (mut kept, mut gone) = (Vec::new(), Vec::new());
        for name in std::mem::take(&mut k.gone) {
            match staying.iter().any(|t| (k.of.listed_by)(t, &name)) {
                true => kept.push(name),
                false => gone.push(name),
            }
        }
        let what = k.of.what;
        for name in &kept {
            let listing = staying.iter().filter(|t| (k.of.listed_by)(t, name));
            let listing: Vec<&str> = listing.map(|t| t.id.as_str()).collect();
            let why = format!("the API teams {} still list it", listing.join(", "));
            changes.still_listed.push((what, name.clone(), why));
        }
        k.gone = gone;
        // Known as something no index holds: looked at again at the next
        // move.
        let known = changes.known.kept.entry(what).or_default();
        for name in kept {
            known.insert(name, String::new());
        }
    }
}

/// Of `teams` read together, those whose API key another API team holds
/// taken out, each with why: one in force that stays (not replaced, not
/// `gone`), else one of `teams` written earlier (then by id). A key names
/// one team; every instance that starts with the same teams keeps the
/// same ones (docs/operator-api.md#keys).
fn one_team_per_key(
    in_force: &Config,
    gone: &[String],
    teams: &mut Vec<Arc<Team>>,
) -> Vec<(String, String)> {
    if teams.is_empty() {
        return Vec::new();
    }
    teams.sort_by(|a, b| (a.modified, &a.id).cmp(&(b.modified, &b.id)));
    // Of the API teams in force that stay, the holders of the keys of the
    // teams read: one lookup a key.
    let mut holders: BTreeMap<String, (String, String)> = BTreeMap::new();
    let read: std::collections::HashSet<&str> = teams.iter().map(|t| t.id.as_str()).collect();
    let stays = |h: &&crate::config::KeyHolder| {
        h.api && !read.contains(&*h.team) && !gone.iter().any(|g| *g == *h.team)
    };
    for key in teams.iter().flat_map(|t| &t.api_keys) {
        for h in in_force.key_holders.holders(&key.sha256).filter(stays) {
            holders.insert(
                key.sha256.to_hex(),
                (h.team.to_string(), h.key_id.to_string()),
            );
        }
    }
    drop(read);
    let mut clashing = Vec::new();
    teams.retain(|team| {
        let held =
            (team.api_keys.iter()).find_map(|k| holders.get(&k.sha256.to_hex()).map(|h| (k, h)));
        if let Some((key, (holder, its_key))) = held {
            let why = format!(
                "its API key {:?} is team {holder:?}'s key {its_key:?}",
                key.id
            );
            clashing.push((team.id.clone(), why));
            return false;
        }
        for key in &team.api_keys {
            holders.insert(key.sha256.to_hex(), (team.id.clone(), key.id.clone()));
        }
        true
    });
    clashing
}

/// Of `teams` read together (in the order written, as
/// [`one_team_per_key`] left them), those whose `[mcp] oauth` issuer and
/// audience a team written earlier has taken out, each with why: an API
/// team in force that stays, or one of `teams`. An API team in force
/// written later than the team read that has its pair is taken out of
/// force (the second list) and named with why. Two writes at once on two
/// instances may both be stored; every instance keeps the one written
/// first (docs/decisions/0740-one-issuer-and-audience-one-team-at-every-write.md).
fn one_team_per_audience(
    in_force: &Config,
    gone: &[String],
    teams: &mut Vec<Arc<Team>>,
) -> (Vec<(String, String)>, Vec<String>) {
    let read: HashSet<&str> = teams.iter().map(|t| t.id.as_str()).collect();
    let stays =
        |t: &&Arc<Team>| t.api.is_some() && !read.contains(t.id.as_str()) && !gone.contains(&t.id);
    let written = |t: &Team| (t.modified, t.id.clone());
    let (mut clashing, mut displaced) = (Vec::new(), Vec::new());
    let mut held: BTreeMap<(&str, &str), String> = BTreeMap::new();
    let mut kept = Vec::with_capacity(teams.len());
    for team in teams.iter() {
        let Some(oauth) = &team.mcp_oauth else {
            kept.push(true);
            continue;
        };
        let pair = (oauth.provider.issuer.as_str(), oauth.audience.as_str());
        let in_force_holder = (in_force.sums.mcp_teams_of(pair.0))
            .filter_map(|id| in_force.teams.get(id))
            .filter(stays)
            .filter(|t| !displaced.contains(&t.id))
            .find(|t| (t.mcp_oauth.as_ref()).is_some_and(|o| o.takes_tokens_of(oauth)));
        let earlier = match (held.get(&pair), in_force_holder) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(h)) if written(h) < written(team) => Some(h.id.clone()),
            (None, Some(h)) => {
                let why = format!(
                    "its /mcp/oauth issuer and audience are team {:?}'s, written earlier",
                    team.id
                );
                clashing.push((h.id.clone(), why));
                displaced.push(h.id.clone());
                None
            }
            (None, None) => None,
        };
        match earlier {
            Some(holder) => {
                let why = format!("its /mcp/oauth issuer and audience are team {holder:?}'s");
                clashing.push((team.id.clone(), why));
                kept.push(false);
            }
            None => {
                held.insert(pair, team.id.clone());
                kept.push(true);
            }
        }
    }
    let mut keep = kept.into_iter();
    teams.retain(|_| keep.next().unwrap_or(true));
    (clashing, displaced)
}

/// The team a stored record writes, put in force as an API team; why not
/// (a secret sealed under a key no longer listed, a rule it now breaks:
/// in words, by key id and pointer, never by value).
fn team_of_record(
    config: &Config,
    id: &str,
    stored: StoredApiTeam,
) -> std::result::Result<Team, NotInForce> {
    let StoredApiTeam::V1 {
        body,
        at,
        digest,
        incarnation,
    } = stored;
    let salts = team_secrets::salts_of(&body, &is_secret_member);
    let opened = opened_at(config, id, &body)?;
    let team = config.stored_team_of_json(&opened, &salts);
    let mut team = team.map_err(|p| NotInForce::Breaks(breaks(config, &body, p)))?;
    team.keyspace = keys::keyspace(id, incarnation.as_deref());
    team.api = Some(digest);
    team.modified = Some(at);
    Ok(team)
}

/// `config` without the kept ones of the operator API it has in force
/// that the store no longer indexes (deleted, though a team in force
/// still listed them): what a reload builds the stored teams against, as
/// a start does, so that a team listing one is refused there as on
/// every instance that starts (docs/operator-api.md#every-instance-at-once).
pub async fn without_unindexed(core: &Core, config: Config) -> Result<Config> {
    let (indexes, _) = indexes_and_generation(core).await?;
    let mut config = config;
    for (k, index) in KEPT.iter().zip(&indexes) {
        let in_force = (k.in_force)(&config);
        let gone: Vec<String> = (in_force.into_keys())
            .filter(|name| !index.contains_key(name))
            .collect();
        if !gone.is_empty() {
            config = (k.take_out(&config, &gone))
                .map_err(|e| crate::error::Error::internal_from("API channels taken out", e))?;
        }
    }
    Ok(config)
}

/// `config` with the kept ones of `held` that can be put in force in it
/// put in force: what its teams are built against.
pub fn with_held(config: &Config, held: &Held) -> Config {
    let mut next: Option<Config> = None;
    for k in KEPT {
        let forms = held.kept.get(k.exported_as).cloned().unwrap_or_default();
        next = Some((k.with_held)(next.as_ref().unwrap_or(config), &forms));
    }
    next.unwrap_or_else(|| config.clone())
}

/// Team `id` as `stored` writes it, built against `config`; `None` when
/// it cannot be.
pub fn built(config: &Config, id: &str, stored: &StoredApiForm) -> Option<Team> {
    tracing::trace!(team = %id, "a stored team built");
    team_of_record(config, id, stored.clone()).ok()
}

/// A stored API team or channel as a read answers it: its `ETag` (the
/// digest the store keeps, the one `If-Match` is checked against, whether
/// or not that version is in force here) and its stored form.
pub struct StoredRead {
    pub etag: String,
    pub at: crate::time::Timestamp,
    body: serde_json::Value,
    place: String,
}

impl StoredRead {
    /// The stored form as a read shows it, its secrets read back: what
    /// is answered where no version of it is in force (one left out). A
    /// secret that does not open with this gateway's `secrets_keys` reads
    /// as `null` (sent back so, the write is refused at its pointer), and
    /// the stored one is refused: why, by pointer and never by value.
    pub fn form(&self, core: &Core) -> Result<(serde_json::Value, Option<String>)> {
        let op = operator(core.config())?;
        let (opened, refused) = team_secrets::open_each(
            &self.body,
            &self.place,
            super::forms::members(),
            &op.secrets,
        );
        let salts = team_secrets::salts_of(&self.body, &is_secret_member);
        let read_back = |pointer: &str, v: &str| {
            (op.secrets).read_back(&self.place, pointer, salts.get(pointer), v)
        };
        let refused = refused.map(|(pointer, e)| format!("{pointer}: {e}"));
        Ok((read_back_secrets(&opened, "", false, &read_back), refused))
    }
}

/// Resource `R` named `id` (an API team, an API channel) as the store
/// keeps it; `None` when it holds none.
pub async fn stored_read<R: Resource>(core: &Core, id: &str) -> Result<Option<StoredRead>> {
    let place = R::place(id);
    let stored = stored_forms(core, &[id], R::store_key)
        .await?
        .pop()
        .flatten();
    Ok(stored.map(
        |StoredApiForm::V1 {
             body, digest, at, ..
         }| StoredRead {
            etag: format!("\"{digest}\""),
            at,
            body,
            place,
        },
    ))
}

/// `v`, at `pointer`, with each secret string (under a secret member)
/// shown as `{"hmac"}`, as a read shows a team in force: read back at its
/// pointer by `read_back`.
fn read_back_secrets(
    v: &serde_json::Value,
    pointer: &str,
    secret: bool,
    read_back: &dyn Fn(&str, &str) -> String,
) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::String(s) if secret => serde_json::json!({ "hmac": read_back(pointer, s) }),
        Value::Object(o) => {
            let members = o.iter().map(|(name, v)| {
                let at = format!("{pointer}/{}", crate::config::pointer_token(name));
                let shown = read_back_secrets(v, &at, is_secret_member(name), read_back);
                (name.clone(), shown)
            });
            Value::Object(members.collect())
        }
        Value::Array(a) => Value::Array(
            (a.iter().enumerate())
                .map(|(i, v)| read_back_secrets(v, &format!("{pointer}/{i}"), secret, read_back))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The quoted `ETag` of every API team the store's index lists, by id:
/// what a list answers, as each read does, whether or not that version
/// is in force here (docs/operator-api.md#concurrency). Every part of the
/// index, [`index::read_parts`]'s calls.
pub async fn stored_team_etags(core: &Core) -> Result<BTreeMap<String, String>> {
    let parts = index::read_parts(core, &index::every_part()).await?;
    let teams = parts.into_iter().flat_map(|(_, teams)| teams);
    Ok(teams
        .map(|(id, indexed)| (id, etag_indexed(&indexed)))
        .collect())
}

/// The quoted `ETag` of every API channel the store's index lists, by
/// name (one read).
pub async fn stored_channel_etags(core: &Core) -> Result<BTreeMap<String, String>> {
    let index = super::kept::digests::<super::channels::Channels>(core).await?;
    Ok(index
        .into_iter()
        .map(|(name, indexed)| (name, etag_indexed(&indexed)))
        .collect())
}

/// The quoted `ETag` of what an index keeps (its digest, and after a `~`
/// an incarnation, `index::indexed_as`).
fn etag_indexed(indexed: &str) -> String {
    let digest = indexed
        .split_once('~')
        .map_or(indexed, |(digest, _)| digest);
    format!("\"{digest}\"")
}

/// When each of `names` (resources `R`) was written, as the store keeps
/// them (one read): `None` for one it does not hold.
pub async fn stored_times<R: Resource>(
    core: &Core,
    names: &[&str],
) -> Result<Vec<Option<crate::time::Timestamp>>> {
    let stored = stored_forms(core, names, R::store_key).await?;
    Ok(stored
        .into_iter()
        .map(|s| s.map(|StoredApiForm::V1 { at, .. }| at))
        .collect())
}
