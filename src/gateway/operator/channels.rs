//! Channels written through the operator API (docs/operator-api.md): each
//! kept beside the index of the API teams (`{~teams}:ch:<name>`), its
//! secrets sealed as a team's; a write compare-and-set against the `ETag`
//! the writer names, committed with the index and the generation; then
//! each API team that lists the channel built again against it and
//! stored with its `config.changed` entry
//! (docs/operator-api.md#the-teams-that-list-a-channel).
use std::sync::Arc;

use serde_json::Value;

use super::forms::{
    built, channel_place, etag_of, opened, operator, sealed, stored_forms, written_body,
    Conditions, Write,
};
use super::kept;
use super::teams;
use crate::config::{
    channel_secrets_moved, ChannelConfig, Config, ConfigError, ConfigPrint, FormProblem, Team,
};
use crate::domain::audit::{Acting, Actor};
use crate::domain::secrets_cipher::Salts;
use crate::error::{Error, Result};
use crate::gateway::change::{self, Change, Round};
use crate::gateway::records::{
    ApiTeamsGeneration, ChannelUses, Loaded, PendingWrite, StoredApiChannel, StoredApiChannels,
    StoredApiTeam,
};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// What a channel's write made: its generation also holds the teams
/// built again.
type WrittenChannel = super::resource::Written<ChannelConfig>;

/// The channels the operator API writes (`/v1/channels/{name}`).
pub struct Channels;

impl super::resource::Resource for Channels {
    type Built = ChannelConfig;
    const NAME: &'static str = "channel";
    const PATH: &'static str = "/v1/channels/";
    const MANAGED: &'static str = "this channel is kept in a file: change its file";
    const MISSING: &'static str = "no such channel";

    fn store_key(name: &str) -> String {
        keys::api_kept(<Self as super::resource::Kept>::TAG, name)
    }

    fn place(name: &str) -> String {
        channel_place(name)
    }

    fn in_a_file<'c>(config: &'c Config, name: &str) -> Option<&'c ConfigPrint> {
        config.file_channel(name).map(|c| &c.print)
    }

    fn digest(built: &ChannelConfig) -> String {
        built.print.digest()
    }

    fn form(built: &ChannelConfig) -> std::borrow::Cow<'_, Value> {
        std::borrow::Cow::Borrowed(&built.form)
    }

    async fn write(core: &Core, w: Write<'_>, now: Timestamp) -> Result<WrittenChannel> {
        write_channel(core, w, now).await
    }

    /// A channel's delete records no `config.changed` entry: `_acting`
    /// is not read.
    async fn delete(
        core: &Core,
        name: &str,
        conditions: &Conditions,
        _acting: &Acting,
        now: Timestamp,
    ) -> Result<u64> {
        delete_channel(core, name, conditions, now).await
    }
}

impl super::resource::Kept for Channels {
    const TAG: &'static str = "ch";
    const INDEX: &'static str = "cx";
    const EXPORTED_AS: &'static str = "channels";

    fn name(built: &ChannelConfig) -> &str {
        &built.name
    }

    fn of_stored(
        config: &Config,
        body: &Value,
        salts: &Salts,
        at: Timestamp,
    ) -> std::result::Result<ChannelConfig, Vec<FormProblem>> {
        let mut channel = config.channel_of_json(body, salts)?;
        channel.api = true;
        channel.modified = Some(at);
        Ok(channel)
    }

    fn api_in_force(config: &Config) -> Vec<&ChannelConfig> {
        config.api_channels().collect()
    }

    fn put_in_force(
        config: &Config,
        put: Vec<ChannelConfig>,
        gone: &[String],
    ) -> std::result::Result<Config, ConfigError> {
        config.with_api_channels(put, gone)
    }

    fn listed_by(team: &Team, name: &str) -> bool {
        team.uses_channel(name)
    }
}

/// The channel `w.body` writes, its `{"hmac"}` objects replaced by the
/// secrets `stored` keeps, and the salts of its secrets: 422 for a body
/// that breaks a rule.
fn channel_of(
    config: &Config,
    w: &Write<'_>,
    stored: &Loaded<StoredApiChannel>,
    now: Timestamp,
) -> Result<(ChannelConfig, Value, Salts)> {
    let place = channel_place(w.id);
    let op = operator(config)?;
    let (body, salts) = written_body(op, w, ("name", &place), stored, channel_secrets_moved)?;
    let mut channel = built(op, &body, config.channel_of_json(&body, &salts))?;
    channel.api = true;
    channel.modified = Some(now);
    Ok((channel, body, salts))
}

/// The API teams `listing` (id, body with secrets opened) that cannot be
/// built with `channel` in force: 409 `channel_in_use` naming them.
fn still_built(
    config: &Config,
    channel: &ChannelConfig,
    listing: &[(String, Value)],
) -> Result<()> {
    if listing.is_empty() {
        return Ok(());
    }
    let with = (config.with_api_channels(vec![channel.clone()], &[]))
        .map_err(|e| Error::internal_from("an API channel put in force", e))?;
    let broken: Vec<String> = (listing.iter())
        .filter(|(_, body)| with.stored_team_of_json(body, &Salts::new()).is_err())
        .map(|(id, _)| id.clone())
        .collect();
    match broken.is_empty() {
        true => Ok(()),
        false => Err(Error::ChannelInUse(broken)),
    }
}

/// The stored bodies of API teams `ids`, their secrets opened (a team
/// gone since is left out).
async fn opened_teams(
    core: &Core,
    config: &Config,
    ids: &[String],
) -> Result<Vec<(String, Value)>> {
    let op = operator(config)?;
    let mut read = Vec::new();
    for (id, stored) in ids
        .iter()
        .zip(stored_forms(core, ids, keys::api_team).await?)
    {
        if let Some(StoredApiTeam::V1 { body, .. }) = stored {
            read.push((id.clone(), opened(op, id, &body)?));
        }
    }
    Ok(read)
}

/// In `c`, which read [`channel_keys`]: channel `name` at `digest`
/// (`None`: gone) in the index of the API channels, `marks` (team id →
/// the mark of a team to build again) beside the generation, and the
/// generation moved. The generation.
fn indexed(
    c: &mut Change,
    name: &str,
    digest: Option<&str>,
    marks: &[(String, PendingWrite)],
) -> Result<u64> {
    let (cx, gen) = (keys::api_channels(), keys::api_teams_generation());
    let loaded: Loaded<StoredApiChannels> = c.read(&cx)?;
    let count: Loaded<ApiTeamsGeneration> = c.read(&gen)?;
    let mut index = loaded.value.clone().unwrap_or_default();
    match digest {
        Some(d) => index.channels.insert(name.to_string(), d.to_string()),
        None => index.channels.remove(name),
    };
    c.put(&loaded, &index, None)?;
    let mut next = ApiTeamsGeneration::next_of(count.value.as_ref());
    for (id, mark) in marks {
        next.pending
            .entry(id.clone())
            .or_default()
            .push(mark.clone());
    }
    next.generation += 1;
    c.put(&count, &next, None)?;
    Ok(next.generation)
}

/// The keys a channel's write reads: the channel, the index, the generation.
fn channel_keys(name: &str) -> [String; 3] {
    let (cx, gen) = (keys::api_channels(), keys::api_teams_generation());
    [keys::api_channel(name), cx, gen]
}

/// Writes channel `w.id` (or, for a dry run, checks that it would be
/// written): 412 when the conditions do not hold against the stored
/// channel, 428 for a replace that names no version, 422 for a body that
/// breaks a rule, 409 `channel_in_use` when an API team that lists it
/// would not build with it. The channel, the index and the generation
/// move in one commit, with a mark for each API team that lists it; each
/// is then built again against it and stored with its `config.changed`
/// entry by `w.acting` (docs/operator-api.md#the-teams-that-list-a-channel).
pub async fn write_channel(core: &Core, w: Write<'_>, now: Timestamp) -> Result<WrittenChannel> {
    let config = Arc::clone(core.config());
    let listing = opened_teams(core, &config, &config.api_teams_using(w.id)).await?;
    let by = Some(w.acting.actor.without_ip());
    let mark = || PendingWrite {
        token: rand::random(),
        at: now,
        channel_by: by.clone(),
    };
    let marks: Vec<(String, PendingWrite)> = (listing.iter())
        .map(|(id, _)| (id.clone(), mark()))
        .collect();
    let read = channel_keys(w.id);
    let decide = |c: &mut Change| decide_write(c, &config, &w, &listing, &marks, now);
    let mut written = core.change(change::NO_TEAM, &read, now, decide).await?;
    if w.dry_run {
        return Ok(written);
    }
    let teams: Vec<Rebuilt<'_>> = (marks.iter())
        .map(|(id, mark)| (id.as_str(), mark.token, &w.acting))
        .collect();
    let generation = rebuild(core, &config, &teams, now).await;
    written.generation = written.generation.max(generation);
    Ok(written)
}

/// Decides a channel's write on what `c` read: the conditions against the
/// stored channel, the body checked, the teams `listing` it still built,
/// then the sealed form put with the index, the generation and `marks`.
fn decide_write(
    c: &mut Change,
    config: &Config,
    w: &Write<'_>,
    listing: &[(String, Value)],
    marks: &[(String, PendingWrite)],
    now: Timestamp,
) -> Result<Step<WrittenChannel>> {
    let stored: Loaded<StoredApiChannel> = c.read(&keys::api_channel(w.id))?;
    w.conditions.hold(etag_of(&stored).as_deref())?;
    let (channel, body, salts) = channel_of(config, w, &stored, now)?;
    still_built(config, &channel, listing)?;
    let created = stored.value.is_none();
    if w.dry_run {
        let generation = 0;
        return Ok(Step::Answer(WrittenChannel {
            built: channel,
            created,
            generation,
        }));
    }
    let digest = channel.print.digest();
    let place = channel_place(w.id);
    let record = sealed(
        operator(config)?,
        &place,
        (&body, &salts),
        digest.clone(),
        None,
        now,
    );
    c.put(&stored, &record, None)?;
    let generation = indexed(c, w.id, Some(&digest), marks)?;
    Ok(Step::Write(WrittenChannel {
        built: channel,
        created,
        generation,
    }))
}

/// Deletes channel `name` written through the operator API: 404 when
/// there is none, 428 without `If-Match`, 412 with another `ETag`, 409
/// `channel_in_use` naming the API teams in force that list it. Answers
/// the generation without it.
pub async fn delete_channel(
    core: &Core,
    name: &str,
    conditions: &Conditions,
    now: Timestamp,
) -> Result<u64> {
    let using = core.config().api_teams_using(name);
    let mut read = channel_keys(name).to_vec();
    read.push(keys::api_channel_uses(name));
    core.change(change::NO_TEAM, &read, now, |c| {
        let stored: Loaded<StoredApiChannel> = c.read(&keys::api_channel(name))?;
        let current = etag_of(&stored).ok_or(Error::NotFound("no such channel"))?;
        conditions.hold(Some(&current))?;
        // The teams in force here, and those another instance's write
        // claimed it for, which may not be in force here yet.
        let claims: Loaded<ChannelUses> = c.read(&keys::api_channel_uses(name))?;
        let mut using = using.clone();
        using.extend(super::uses::fresh(&claims, now));
        using.sort();
        using.dedup();
        if !using.is_empty() {
            return Err(Error::ChannelInUse(using));
        }
        c.delete(&stored);
        c.delete(&claims);
        Ok(Step::Write(indexed(c, name, None, &[])?))
    })
    .await
}

/// The API teams whose writers stopped after a channel they list was
/// written and before they were built again (`marks`: team id, token, who
/// wrote the channel), built again against the channels the store holds;
/// one that cannot be is logged, its mark left to the next look.
pub async fn rebuild_stopped(core: &Core, marks: &[(String, u64, Actor)], now: Timestamp) {
    if marks.is_empty() {
        return;
    }
    let acting: Vec<Acting> = (marks.iter())
        .map(|(_, _, by)| Acting {
            actor: by.clone(),
            request_id: None,
        })
        .collect();
    let teams: Vec<Rebuilt<'_>> = (marks.iter().zip(&acting))
        .map(|((id, token, _), acting)| (id.as_str(), *token, acting))
        .collect();
    tracing::warn!(
        teams = teams.len(),
        "a channel's write stopped before the teams that list it were built again; built now"
    );
    rebuild(core, core.config(), &teams, now).await;
}

/// A team to build again: its id, the token of its mark, and who wrote
/// the channel.
type Rebuilt<'a> = (&'a str, u64, &'a Acting);

/// How often the teams are built again when a channel moves while they
/// are being built.
const REBUILDS: usize = 3;

/// API `teams` built again (each under its mark) against the API channels
/// the store holds, read once for them all, then again with every team
/// while one moved meanwhile (at most [`REBUILDS`] times): two channels a
/// team lists written at once leave it built against both. The
/// generation that holds them. A team that cannot be built again (the
/// store, or a channel this instance refuses, as a file channel of its
/// name) is logged and left to a later look, its mark kept.
async fn rebuild(core: &Core, config: &Config, teams: &[Rebuilt<'_>], now: Timestamp) -> u64 {
    let mut generation = 0;
    let rounds = async {
        let rebuilt = change::until!(REBUILDS, |_| {
            let stored = kept::stored::<Channels>(core, config).await?;
            let refused = |t: &Arc<Team>| stored.refused.iter().any(|n| t.uses_channel(n));
            for (id, token, acting) in teams {
                if config.teams.get(*id).is_some_and(refused) {
                    tracing::warn!(team = %id, "a team lists an API channel this instance does not put in force; another instance builds it");
                    continue;
                }
                match teams::rebuild_team(core, &stored.config, id, *token, acting, now).await {
                    Ok(rebuilt) => generation = generation.max(rebuilt.unwrap_or_default()),
                    Err(e) => {
                        tracing::warn!(team = %id, error = %e, "a team that lists a channel written was not built again; its mark has a later look do it")
                    }
                }
            }
            match kept::digests::<Channels>(core).await? == stored.digests {
                true => Round::Done(()),
                false => Round::Again,
            }
        });
        Ok::<_, Error>(rebuilt)
    };
    match rounds.await {
        Ok(_) => generation,
        Err(e) => not_rebuilt(generation, e),
    }
}

/// `generation`, once the store failed before the teams were all built
/// again (said in one line: their marks have a later look do it).
fn not_rebuilt(generation: u64, e: Error) -> u64 {
    tracing::warn!(error = %e, "the teams that list a channel written were not all built again; their marks have a later look do it");
    generation
}
