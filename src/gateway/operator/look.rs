//! What the store holds of the teams and channels written through the
//! operator API that an instance has not put in force
//! (docs/operator-api.md#every-instance-at-once): the generation read,
//! the parts of the index it logs as moved since the one the instance
//! holds (every part when it does not log them all), then only the
//! channels and teams whose digest moved, and the API teams in force that
//! list a channel that moved, built again against it.
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use super::forms::{breaks, channel_place, operator, stored_forms};
use super::index::{self, part_of};
use super::resource::Resource;
use crate::config::{is_secret_member, ChannelConfig, Config, ConfigError, Team};
use crate::domain::secrets_cipher::OpenError;
use crate::domain::team_secrets;
use crate::error::Result;
use crate::gateway::records::{
    ApiTeamsGeneration, Loaded, StoredApiChannel, StoredApiChannels, StoredApiForm, StoredApiTeam,
};
use crate::gateway::Core;
use crate::store::keys;

/// What an instance put in force of the API teams and channels: their
/// digests as the index gave them, the teams by part of the index.
#[derive(Debug, Clone, Default)]
pub struct Known {
    pub teams: BTreeMap<u16, BTreeMap<String, String>>,
    pub channels: BTreeMap<String, String>,
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
        self.channels = read.channels;
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
    pub channels: BTreeMap<String, String>,
    pub at: Option<(u64, u64)>,
}

/// What the store holds of the API teams and channels that differs from
/// what an instance put in force: the channels and teams to put in force
/// (new or changed), those gone, the index read (what is known from now
/// on) and its generation.
#[derive(Default)]
pub struct Changes {
    pub teams: Vec<Arc<Team>>,
    pub gone: Vec<String>,
    pub channels: Vec<ChannelConfig>,
    pub channels_gone: Vec<String>,
    pub known: KnownRead,
    pub generation: u64,
    /// Stored teams that could not be put in force, each with why (never
    /// a value: a pointer, a key id).
    pub refused: Vec<(String, String)>,
    /// Stored channels that could not be put in force, each with why.
    pub refused_channels: Vec<(String, String)>,
    /// Stored teams read together with another, written earlier, that has
    /// one of their API keys: left out, each with why (never a value).
    pub clashing: Vec<(String, String)>,
    /// Of `refused` and `refused_channels`, those whose secrets are sealed
    /// under a key id no longer listed, or whose id a file of this
    /// instance has: what stops a start-up or refuses a reload (`"team"`
    /// or `"channel"`, the name, why).
    pub stops: Vec<(&'static str, String, String)>,
    /// The stored forms of `teams` and `channels`, as the store keeps
    /// them (sealed): what a store reset writes back.
    pub forms: Held,
}

/// The stored forms (sealed) of the API teams and channels an instance
/// holds in force: what it writes back when the store comes back empty
/// (docs/operations.md#when-redis-comes-back-empty).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Held {
    pub teams: BTreeMap<String, StoredApiForm>,
    pub channels: BTreeMap<String, StoredApiForm>,
}

impl Held {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty() && self.channels.is_empty()
    }

    /// What `changes` put in force, or took out, applied to what is held.
    pub fn take(&mut self, changes: &mut Changes) {
        for id in changes.gone.iter() {
            self.teams.remove(id);
        }
        for name in changes.channels_gone.iter() {
            self.channels.remove(name);
        }
        let forms = std::mem::take(&mut changes.forms);
        let put: BTreeSet<&str> = changes.teams.iter().map(|t| t.id.as_str()).collect();
        let teams = forms
            .teams
            .into_iter()
            .filter(|(id, _)| put.contains(id.as_str()));
        self.teams.extend(teams);
        self.channels.extend(forms.channels);
    }
}

/// Why a stored team or channel is not put in force: a rule it breaks
/// (it is left out), or what stops a start-up (a secret sealed under a
/// key id no longer listed, a file of this instance with its id).
enum NotInForce {
    Breaks(String),
    Stops(String),
}

impl NotInForce {
    fn why(self, what: &'static str, name: &str, changes: &mut Changes) -> String {
        match self {
            NotInForce::Breaks(why) => why,
            NotInForce::Stops(why) => {
                (changes.stops).push((what, name.to_string(), why.clone()));
                why
            }
        }
    }
}

impl Changes {
    /// Whether nothing is to be put in force or removed.
    pub fn is_empty(&self) -> bool {
        self.teams.is_empty()
            && self.gone.is_empty()
            && self.channels.is_empty()
            && self.channels_gone.is_empty()
    }

    /// The first stored channel or team sealed under a key id no longer
    /// listed, or whose id a file of this instance has, as what stops a
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

    /// `config` with these changes in force: the channels, then the teams.
    pub fn applied_to(&self, config: &Config) -> std::result::Result<Config, ConfigError> {
        let channels = config.with_api_channels(self.channels.clone(), &self.channels_gone)?;
        channels.with_api_teams(self.teams.iter().cloned(), &self.gone)
    }
}

/// Stored teams read in one store call.
const READ_AT_ONCE: usize = 500;

/// The API teams and channels of the store that differ from `known`: the
/// generation and the channels' index read, the parts of the teams'
/// index moved since `known` (with those of the teams it left out), then
/// only the channels and teams whose digest moved, [`READ_AT_ONCE`] a
/// call, and the API teams in force that list a channel that moved.
pub async fn changes(core: &Core, known: &Known) -> Result<Changes> {
    let (cx, gen) = (keys::api_channels(), keys::api_teams_generation());
    let mut raw = core.get(&[cx.clone(), gen.clone()]).await?.into_iter();
    let channels = Loaded::<StoredApiChannels>::parse(cx, raw.next().flatten())?;
    let count = Loaded::<ApiTeamsGeneration>::parse(gen, raw.next().flatten())?;
    let channels = channels.value.unwrap_or_default().channels;
    let count = count.value.unwrap_or_default();
    let (every_part, parts) = parts_to_read(&count, known);
    let read = index::read_parts(core, &parts).await?;
    let mut changes = Changes {
        generation: count.generation,
        ..Changes::default()
    };
    let config = core.config();
    read_channels(core, config, &channels, &known.channels, &mut changes).await?;
    let touched: BTreeSet<&String> = (changes.channels.iter().map(|c| &c.name))
        .chain(&changes.channels_gone)
        .collect();
    let mut moved = moved_in_parts(known, &read, &mut changes.gone);
    // No channel moved (a team's write): the teams are built against the
    // configuration as it is, and no other is made.
    let against = match touched.is_empty() {
        true => std::borrow::Cow::<Config>::Borrowed(config),
        false => {
            let lists_touched = |t: &&Arc<Team>| touched.iter().any(|n| t.uses_channel(n));
            for team in config.api_teams().filter(lists_touched) {
                if known.digest(&team.id).is_some() && !changes.gone.contains(&team.id) {
                    moved.insert(&team.id);
                }
            }
            let with = config.with_api_channels(changes.channels.clone(), &changes.channels_gone);
            let with = with
                .map_err(|e| crate::error::Error::internal_from("API channels put in force", e))?;
            std::borrow::Cow::Owned(with)
        }
    };
    let moved: Vec<&String> = moved.into_iter().collect();
    let gone_from_index = changes.gone.len();
    for chunk in moved.chunks(READ_AT_ONCE) {
        read_teams(core, &against, chunk, &mut changes).await?;
    }
    // Indexed but not stored (a Cluster master that lost it, until
    // written back): read again at the next move.
    let unstored = changes.gone[gone_from_index..].to_vec();
    changes.clashing = one_team_per_key(config, &changes.gone, &mut changes.teams);
    changes.known = KnownRead {
        every_part,
        parts: read,
        channels,
        at: Some((count.born, count.generation)),
        ..KnownRead::default()
    };
    keep_listed_channels(config, &mut changes);
    left_out_known(&mut changes, unstored);
    Ok(changes)
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
/// stored (a Cluster master that lost it, until written back); the
/// channels refused dropped.
fn left_out_known(changes: &mut Changes, unstored: Vec<String>) {
    let left_out = changes.refused.iter().chain(&changes.clashing);
    let mut left_out: Vec<String> = left_out.map(|(id, _)| id.clone()).collect();
    changes.known.dropped = (left_out.iter().chain(&changes.gone)).cloned().collect();
    left_out.extend(unstored);
    changes.known.again = left_out;
    for (name, _) in &changes.refused_channels {
        changes.known.channels.remove(name);
    }
}

/// The names of `index` whose digest is not the one of `known`.
fn moved<'a>(
    index: &'a BTreeMap<String, String>,
    known: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = &'a String> {
    (index.iter())
        .filter(|(name, digest)| known.get(*name) != Some(digest))
        .map(|(name, _)| name)
}

/// The names of `known` that `index` no longer has.
fn gone(index: &BTreeMap<String, String>, known: &BTreeMap<String, String>) -> Vec<String> {
    let gone = known.keys().filter(|name| !index.contains_key(*name));
    gone.cloned().collect()
}

/// Into `changes`: the API channels of `index` whose digest moved from
/// `known`, read (one slot: one call) and built, and those gone.
async fn read_channels(
    core: &Core,
    config: &Config,
    index: &BTreeMap<String, String>,
    known: &BTreeMap<String, String>,
    changes: &mut Changes,
) -> Result<()> {
    changes.channels_gone = gone(index, known);
    let moved: Vec<&String> = moved(index, known).collect();
    if moved.is_empty() {
        return Ok(());
    }
    let read = stored_forms(core, &moved, keys::api_channel).await?;
    for (name, stored) in moved.iter().zip(read) {
        if config.file_channel(name).is_some() {
            let why = "a channel file of this instance has its name: one name, one source";
            let why = NotInForce::Stops(why.into()).why("channel", name, changes);
            changes.refused_channels.push(((*name).clone(), why));
            continue;
        }
        let form = stored.clone();
        match stored.map(|s| channel_of_record(config, name, s)) {
            Some(Ok(channel)) => {
                changes.channels.push(channel);
                (changes.forms.channels).extend(form.map(|f| ((*name).clone(), f)));
            }
            Some(Err(not)) => {
                let why = not.why("channel", name, changes);
                changes.refused_channels.push(((*name).clone(), why));
            }
            None => changes.channels_gone.push((*name).clone()),
        }
    }
    Ok(())
}

/// The API channels as the store holds them, beside those `config` has
/// in force: what a team that lists one is built against.
pub struct StoredChannels {
    /// `config` with the stored API channels in force.
    pub config: Config,
    /// The index read: name → digest.
    pub digests: BTreeMap<String, String>,
    /// Stored channels that could not be put in force (a file channel of
    /// the name on this instance, a key no longer listed).
    pub refused: Vec<String>,
}

/// The API channels the store holds, read where they differ from those
/// `config` has in force.
pub async fn stored_channels(core: &Core, config: &Config) -> Result<StoredChannels> {
    let digests = channel_digests(core).await?;
    let in_force = (config.api_channels())
        .map(|c| (c.name.clone(), c.print.digest()))
        .collect();
    let mut read = Changes::default();
    read_channels(core, config, &digests, &in_force, &mut read).await?;
    let config = (config.with_api_channels(read.channels, &read.channels_gone))
        .map_err(|e| crate::error::Error::internal_from("API channels put in force", e))?;
    let refused = read
        .refused_channels
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    Ok(StoredChannels {
        config,
        digests,
        refused,
    })
}

/// The index of the API channels: name → digest.
pub async fn channel_digests(core: &Core) -> Result<BTreeMap<String, String>> {
    let cx = keys::api_channels();
    let raw = core.get(std::slice::from_ref(&cx)).await?.pop().flatten();
    let read = Loaded::<StoredApiChannels>::parse(cx, raw)?;
    Ok(read.value.unwrap_or_default().channels)
}

/// Into `changes`: stored teams `ids`, read in one call and built against
/// `config` (the API channels read with them in force); one that lists a
/// channel refused here is refused too, rather than built against a file
/// channel of the name.
async fn read_teams(
    core: &Core,
    config: &Config,
    ids: &[&String],
    changes: &mut Changes,
) -> Result<()> {
    let read = stored_forms(core, ids, keys::api_team).await?;
    for (id, stored) in ids.iter().zip(read) {
        if config.file_team(id).is_some() {
            let why = "a team file of this instance has its id: one id, one source";
            let why = NotInForce::Stops(why.into()).why("team", id, changes);
            changes.refused.push(((*id).clone(), why));
            continue;
        }
        let refused_channel = |team: &Team| {
            let names = changes.refused_channels.iter().map(|(name, _)| name);
            names.clone().find(|name| team.uses_channel(name)).cloned()
        };
        let form = stored.clone();
        match stored.map(|s| team_of_record(config, id, s)) {
            Some(Ok(team)) => match refused_channel(&team) {
                None => {
                    changes.teams.push(Arc::new(team));
                    (changes.forms.teams).extend(form.map(|f| ((*id).clone(), f)));
                }
                Some(name) => {
                    let why =
                        format!("it lists the API channel {name:?}, which was not put in force");
                    changes.refused.push(((*id).clone(), why));
                }
            },
            Some(Err(not)) => {
                let why = not.why("team", id, changes);
                changes.refused.push(((*id).clone(), why));
            }
            // Indexed but not stored (a writer stopped between): none.
            None => changes.gone.push((*id).clone()),
        }
    }
    Ok(())
}

/// A channel gone that an API team staying in force still lists (one
/// refused, whose team in force stays as it was built) stays in force
/// too, and is looked at again at the next move.
fn keep_listed_channels(in_force: &Config, changes: &mut Changes) {
    if changes.channels_gone.is_empty() {
        return;
    }
    let put: HashSet<&str> = changes.teams.iter().map(|t| t.id.as_str()).collect();
    let stays = |t: &&Arc<Team>| !put.contains(t.id.as_str()) && !changes.gone.contains(&t.id);
    let staying: Vec<&Arc<Team>> = in_force.api_teams().filter(stays).collect();
    let (mut kept, mut gone) = (Vec::new(), Vec::new());
    for name in std::mem::take(&mut changes.channels_gone) {
        match staying.iter().any(|t| t.uses_channel(&name)) {
            true => kept.push(name),
            false => gone.push(name),
        }
    }
    for name in &kept {
        tracing::error!(channel = %name, "a channel deleted is still listed by an API team in force; it stays until that team changes");
    }
    changes.channels_gone = gone;
    // Known as something no index holds: looked at again at the next move.
    for name in kept {
        changes.known.channels.insert(name, String::new());
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

/// The team a stored record writes, put in force as an API team; why not
/// (a secret sealed under a key no longer listed, a rule it now breaks:
/// named by key id and pointer, never by value).
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
    let body = opened_at(config, id, &body)?;
    let team = config.stored_team_of_json(&body, &salts);
    let mut team = team.map_err(|p| NotInForce::Breaks(breaks(p)))?;
    team.keyspace = keys::keyspace(id, incarnation.as_deref());
    team.api = Some(digest);
    team.modified = Some(at);
    Ok(team)
}

/// `config` with the channels of `held` that can be put in force in it
/// put in force: what its teams are built against.
pub fn with_held_channels(config: &Config, held: &Held) -> Config {
    let built = (held.channels.iter())
        .filter(|(name, _)| config.file_channel(name).is_none())
        .filter_map(|(name, form)| channel_of_record(config, name, form.clone()).ok());
    let with = config.with_api_channels(built.collect(), &[]);
    with.unwrap_or_else(|_| config.clone())
}

/// Team `id` as `stored` writes it, built against `config`; `None` when
/// it cannot be.
pub fn built(config: &Config, id: &str, stored: &StoredApiForm) -> Option<Team> {
    team_of_record(config, id, stored.clone()).ok()
}

/// The channel a stored record writes, put in force as an API channel;
/// why not (a secret sealed under a key no longer listed, a rule it now
/// breaks: named by key id and pointer, never by value).
fn channel_of_record(
    config: &Config,
    name: &str,
    stored: StoredApiChannel,
) -> std::result::Result<ChannelConfig, NotInForce> {
    let StoredApiChannel::V1 { body, at, .. } = stored;
    let salts = team_secrets::salts_of(&body, &is_secret_member);
    let body = opened_at(config, &channel_place(name), &body)?;
    let channel = config.channel_of_json(&body, &salts);
    let mut channel = channel.map_err(|p| NotInForce::Breaks(breaks(p)))?;
    channel.api = true;
    channel.modified = Some(at);
    Ok(channel)
}

/// A stored body's secrets, sealed at `place`, opened; why not (the
/// pointer and the key id of the first that does not open).
fn opened_at(
    config: &Config,
    place: &str,
    body: &serde_json::Value,
) -> std::result::Result<serde_json::Value, NotInForce> {
    let op = operator(config).map_err(|_| NotInForce::Breaks("the operator API is off".into()))?;
    team_secrets::open(body, place, &is_secret_member, &op.secrets).map_err(|(pointer, e)| {
        let why = format!("{pointer}: {e}");
        match e {
            OpenError::UnknownKey(_) => NotInForce::Stops(why),
            _ => NotInForce::Breaks(why),
        }
    })
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
    /// is answered where no version of it is in force (one left out).
    pub fn form(&self, core: &Core) -> Result<serde_json::Value> {
        let op = operator(core.config())?;
        let opened = super::forms::opened(op, &self.place, &self.body)?;
        let salts = team_secrets::salts_of(&self.body, &is_secret_member);
        let read_back = |pointer: &str, v: &str| {
            (op.secrets).read_back(&self.place, pointer, salts.get(pointer), v)
        };
        Ok(read_back_secrets(&opened, "", false, &read_back))
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
