//! Channels written through the operator API (docs/operator-api.md): each
//! kept beside the index of the API teams (`{~teams}:ch:<name>`), its
//! secrets sealed as a team's; a write compare-and-set against the `ETag`
//! the writer names, committed with the index and the generation; then
//! each API team that lists the channel built again against it and
//! stored with its `config.changed` entry
//! (docs/operator-api.md#the-teams-that-list-a-channel).
use std::sync::Arc;

use serde_json::Value;

use super::change::{self, Change};
use super::operator_teams::{self, operator, Conditions};
use super::records::{ApiTeamsGeneration, Loaded, PendingWrite, StoredApiChannel, StoredApiTeams};
use super::work::Step;
use super::Core;
use crate::config::{is_secret_member, ChannelConfig, Config};
use crate::domain::audit::{Acting, Actor};
use crate::domain::team_secrets;
use crate::error::{Error, Pointed, Result};
use crate::store::keys;
use crate::time::Timestamp;

/// A write of channel `name` through the operator API.
pub struct ChannelWrite<'a> {
    pub name: &'a str,
    /// The body as sent (secrets written, or sent back as `{"hmac"}`).
    pub body: &'a Value,
    pub conditions: Conditions,
    /// Check everything and answer as the write would, writing nothing.
    pub dry_run: bool,
    pub acting: Acting,
}

/// What a channel's write made: the channel, whether it is new, and the
/// generation of the API teams and channels that holds it and the teams
/// built again (`0` for a dry run).
pub struct WrittenChannel {
    pub channel: ChannelConfig,
    pub created: bool,
    pub generation: u64,
}

/// The place a channel's sealed secrets are bound to: no team id has a `~`.
fn sealed_as(name: &str) -> String {
    format!("~channel:{name}")
}

/// The quoted `ETag` of a stored channel.
fn etag_of(stored: &Loaded<StoredApiChannel>) -> Option<String> {
    let StoredApiChannel::V1 { digest, .. } = stored.value.as_ref()?;
    Some(format!("\"{digest}\""))
}

/// The channel a stored record writes, put in force as an API channel;
/// why not (a secret sealed under a key no longer listed, a rule it now
/// breaks: named by key id and pointer, never by value).
pub fn channel_of_record(
    config: &Config,
    name: &str,
    stored: StoredApiChannel,
) -> std::result::Result<ChannelConfig, String> {
    let StoredApiChannel::V1 { body, at, .. } = stored;
    let op = operator(config).map_err(|_| "the operator API is off".to_string())?;
    let body = team_secrets::open(&body, &sealed_as(name), &is_secret_member, &op.secrets)
        .map_err(|(pointer, e)| format!("{pointer}: {e}"))?;
    let mut channel = config.channel_of_json(&body).map_err(|problems| {
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        format!("breaks a rule at {}", pointers.join(", "))
    })?;
    channel.api = true;
    channel.modified = Some(at);
    Ok(channel)
}

/// The channel `w.body` writes, its `{"hmac"}` objects replaced by the
/// secrets `stored` keeps: 422 for a body that breaks a rule.
fn channel_of(
    config: &Config,
    w: &ChannelWrite<'_>,
    stored: &Loaded<StoredApiChannel>,
    now: Timestamp,
) -> Result<(ChannelConfig, Value)> {
    let op = operator(config)?;
    if (w.body.get("name").and_then(Value::as_str)).is_some_and(|n| n != w.name) {
        return Err(Error::InvalidConfig(vec![Pointed {
            pointer: "/name".into(),
            detail: "is not the name of the path".into(),
        }]));
    }
    let kept = match &stored.value {
        Some(StoredApiChannel::V1 { body, .. }) => {
            let opened =
                team_secrets::open(body, &sealed_as(w.name), &is_secret_member, &op.secrets)
                    .map_err(|(_, e)| {
                        Error::internal_from("a stored channel's secret does not open", e)
                    })?;
            team_secrets::secrets_of(&opened, &is_secret_member)
        }
        None => Vec::new(),
    };
    let read_back = |v: &str| op.secrets.read_back(v);
    let body = team_secrets::keep(w.body, &is_secret_member, &kept, &read_back)
        .map_err(Error::InvalidConfig)?;
    let mut channel = config
        .channel_of_json(&body)
        .map_err(Error::InvalidConfig)?;
    channel.api = true;
    channel.modified = Some(now);
    Ok((channel, body))
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
        .filter(|(_, body)| with.stored_team_of_json(body).is_err())
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
    let read: Vec<String> = ids.iter().map(|id| keys::api_team(id)).collect();
    let mut opened = Vec::new();
    for (id, raw) in ids.iter().zip(core.get(&read).await?) {
        let stored = Loaded::<super::records::StoredApiTeam>::parse(keys::api_team(id), raw)?;
        if let Some(super::records::StoredApiTeam::V1 { body, .. }) = stored.value {
            let body = team_secrets::open(&body, id, &is_secret_member, &op.secrets).map_err(
                |(_, e)| Error::internal_from("a stored team's secret does not open", e),
            )?;
            opened.push((id.clone(), body));
        }
    }
    Ok(opened)
}

/// In `c`, which read the index and the generation: channel `name` at
/// `digest` (`None`: gone) in the index, the generation moved, and a mark
/// for each of `marks` (team id, token): a team to build again, by
/// `by`. The generation.
fn indexed(
    c: &mut Change,
    name: &str,
    digest: Option<&str>,
    marks: &[(String, u64)],
    by: &Actor,
    now: Timestamp,
) -> Result<u64> {
    let (ix, gen) = (keys::api_teams(), keys::api_teams_generation());
    let loaded: Loaded<StoredApiTeams> = c.read(&ix)?;
    let count: Loaded<ApiTeamsGeneration> = c.read(&gen)?;
    let mut index = loaded.value.clone().unwrap_or_default();
    match digest {
        Some(d) => index.channels.insert(name.to_string(), d.to_string()),
        None => index.channels.remove(name),
    };
    c.put(&loaded, &index, None)?;
    let mut next = count.value.clone().unwrap_or_default();
    for (id, token) in marks {
        next.pending
            .entry(id.clone())
            .or_default()
            .push(PendingWrite {
                token: *token,
                at: now,
                channel_by: Some(by.without_ip()),
            });
    }
    next.generation += 1;
    c.put(&count, &next, None)?;
    Ok(next.generation)
}

/// The keys a channel's write reads: the channel, the index, the generation.
fn channel_keys(name: &str) -> [String; 3] {
    let (ix, gen) = (keys::api_teams(), keys::api_teams_generation());
    [keys::api_channel(name), ix, gen]
}

/// Writes channel `w.name` (or, for a dry run, checks that it would be
/// written): 412 when the conditions do not hold against the stored
/// channel, 428 for a replace that names no version, 422 for a body that
/// breaks a rule, 409 `channel_in_use` when an API team that lists it
/// would not build with it. The channel, the index and the generation
/// move in one commit, with a mark for each API team that lists it; each
/// is then built again against it and stored with its `config.changed`
/// entry by `w.acting` (docs/operator-api.md#the-teams-that-list-a-channel).
pub async fn write_channel(
    core: &Core,
    w: ChannelWrite<'_>,
    now: Timestamp,
) -> Result<WrittenChannel> {
    let config = Arc::clone(core.config());
    let listing = opened_teams(core, &config, &config.api_teams_using(w.name)).await?;
    let marks: Vec<(String, u64)> = (listing.iter())
        .map(|(id, _)| (id.clone(), rand::random()))
        .collect();
    let read = channel_keys(w.name);
    let mut written = core
        .change(change::NO_TEAM, &read, now, |c| {
            let stored: Loaded<StoredApiChannel> = c.read(&keys::api_channel(w.name))?;
            w.conditions.hold(etag_of(&stored).as_deref())?;
            let (channel, body) = channel_of(&config, &w, &stored, now)?;
            still_built(&config, &channel, &listing)?;
            let created = stored.value.is_none();
            if w.dry_run {
                let generation = 0;
                return Ok(Step::Answer(WrittenChannel {
                    channel,
                    created,
                    generation,
                }));
            }
            let op = operator(&config)?;
            let digest = channel.print.digest();
            let record = StoredApiChannel::V1 {
                body: team_secrets::seal(&body, &sealed_as(w.name), &is_secret_member, &op.secrets),
                digest: digest.clone(),
                at: now,
            };
            c.put(&stored, &record, None)?;
            let generation = indexed(c, w.name, Some(&digest), &marks, &w.acting.actor, now)?;
            Ok(Step::Write(WrittenChannel {
                channel,
                created,
                generation,
            }))
        })
        .await?;
    if w.dry_run {
        return Ok(written);
    }
    let with = (config.with_api_channels(vec![written.channel.clone()], &[]))
        .map_err(|e| Error::internal_from("an API channel put in force", e))?;
    for (id, token) in &marks {
        let rebuilt = operator_teams::rebuild_team(core, &with, id, *token, &w.acting, now).await?;
        written.generation = written.generation.max(rebuilt.unwrap_or_default());
    }
    Ok(written)
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
    core.change(change::NO_TEAM, &channel_keys(name), now, |c| {
        let stored: Loaded<StoredApiChannel> = c.read(&keys::api_channel(name))?;
        let current = etag_of(&stored).ok_or(Error::NotFound("no such channel"))?;
        conditions.hold(Some(&current))?;
        if !using.is_empty() {
            return Err(Error::ChannelInUse(using.clone()));
        }
        c.delete(&stored);
        let nobody = Actor::system();
        Ok(Step::Write(indexed(c, name, None, &[], &nobody, now)?))
    })
    .await
}

/// The API teams whose writers stopped after a channel they list was
/// written and before they were built again (`marks`: team id, token, who
/// wrote the channel), built again against `core`'s configuration.
pub async fn rebuild_stopped(
    core: &Core,
    marks: &[(String, u64, Actor)],
    now: Timestamp,
) -> Result<()> {
    for (id, token, by) in marks {
        tracing::warn!(team = %id, "a channel's write stopped before a team that lists it was built again; built now");
        let acting = Acting {
            actor: by.clone(),
            request_id: None,
        };
        operator_teams::rebuild_team(core, core.config(), id, *token, &acting, now).await?;
    }
    Ok(())
}
