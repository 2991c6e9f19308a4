//! The API channels an API team's write lists, claimed in the store before
//! the team commits (docs/operator-api.md#the-teams-that-list-a-channel):
//! the claim reads the channel and moves it, and writes the team beside it
//! (`{~teams}:cu:<name>`), in the channel's slot; a delete of the channel
//! reads the claims and deletes them with it. So of a team's write that
//! lists a channel and the channel's delete at once, one is refused: the
//! write, 422 at the channel's pointer (it is gone), or the delete, 409
//! `channel_in_use` naming the team. A claim binds a delete for
//! [`FRESH_FOR`], past which every instance has the team in force (the
//! delete's check of the teams in force names it then), or its write
//! failed; a write that fails takes its claims back.
use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Pointed, Result};
use crate::gateway::change;
use crate::gateway::records::{ChannelUses, Loaded, StoredApiChannel};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// How long a write's claim of a channel refuses the channel's delete on
/// its own: past it, the team is in force on every instance (within 2 s
/// of its write), or its write failed.
pub const FRESH_FOR: std::time::Duration = super::index::STOPPED_AFTER;

/// The channels `body` (a team's JSON form) names, each once, with the
/// pointer of its first mention: `channels`, `sms_channel`,
/// `email_channel`, `voice_channel`, an `otp.ladder` step of its settings
/// or of a channel's, and the channels of `channel_settings`.
pub fn named(body: &Value) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut note = |name: Option<&str>, pointer: String| {
        if let Some(name) = name {
            found.entry(name.to_string()).or_insert(pointer);
        }
    };
    let each = |v: Option<&Value>| v.and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, c) in each(body.get("channels")).iter().enumerate() {
        note(c.as_str(), format!("/channels/{i}"));
    }
    for member in ["sms_channel", "email_channel", "voice_channel"] {
        note(
            body.get(member).and_then(Value::as_str),
            format!("/{member}"),
        );
    }
    let ladder = |settings: Option<&Value>| each(settings.and_then(|s| s.pointer("/otp/ladder")));
    for (i, step) in ladder(body.get("settings")).iter().enumerate() {
        note(step.as_str(), format!("/settings/otp/ladder/{i}"));
    }
    let per_channel = body.get("channel_settings").and_then(Value::as_object);
    for (name, settings) in per_channel.into_iter().flatten() {
        let at = format!("/channel_settings/{}", crate::config::pointer_token(name));
        for (i, step) in ladder(Some(settings)).iter().enumerate() {
            note(step.as_str(), format!("{at}/otp/ladder/{i}"));
        }
        note(Some(name), at);
    }
    found
}

/// Claims, for team `id`, each of `channels` (API channels its write
/// lists, name → pointer) in the store: 422 at the pointer of each the
/// store no longer holds, and nothing claimed.
pub async fn claim(
    core: &Core,
    id: &str,
    channels: &BTreeMap<String, String>,
    now: Timestamp,
) -> Result<()> {
    if channels.is_empty() {
        return Ok(());
    }
    let read: Vec<String> = (channels.keys())
        .flat_map(|name| [keys::api_channel(name), keys::api_channel_uses(name)])
        .collect();
    core.change(change::NO_TEAM, &read, now, |c| {
        let mut gone = Vec::new();
        for (name, pointer) in channels {
            let stored: Loaded<StoredApiChannel> = c.read(&keys::api_channel(name))?;
            let Some(channel) = stored.value.as_ref() else {
                gone.push(Pointed {
                    pointer: pointer.clone(),
                    detail: format!("the channel {name:?} was deleted"),
                });
                continue;
            };
            // Moved, so that a delete that read it reads again.
            c.put(&stored, channel, None)?;
            let uses: Loaded<ChannelUses> = c.read(&keys::api_channel_uses(name))?;
            let mut next = uses.value.clone().unwrap_or_default();
            next.teams.insert(id.to_string(), now.unix_millis());
            c.put(&uses, &next, None)?;
        }
        match gone.is_empty() {
            true => Ok(Step::Write(())),
            false => Err(Error::InvalidConfig(gone)),
        }
    })
    .await
}

/// Takes back team `id`'s claims of `channels` (its write failed); a
/// failure is left to [`FRESH_FOR`], after which a claim binds nothing.
pub async fn release(core: &Core, id: &str, channels: &BTreeMap<String, String>, now: Timestamp) {
    if channels.is_empty() {
        return;
    }
    let read: Vec<String> = channels.keys().map(|n| keys::api_channel_uses(n)).collect();
    let released = core.change(change::NO_TEAM, &read, now, |c| {
        for key in &read {
            let uses: Loaded<ChannelUses> = c.read(key)?;
            let Some(mut next) = uses.value.clone() else {
                continue;
            };
            if next.teams.remove(id).is_some() {
                c.put(&uses, &next, None)?;
            }
        }
        Ok(Step::WriteIfChanged(()))
    });
    if let Err(e) = released.await {
        tracing::debug!(team = %id, error = %e, "claims of API channels not taken back; they lapse");
    }
}

/// The teams whose claim in `uses` still binds a delete at `now`.
pub fn fresh(uses: &Loaded<ChannelUses>, now: Timestamp) -> Vec<String> {
    let since = now.unix_millis() - FRESH_FOR.as_millis() as i64;
    let teams = uses.value.iter().flat_map(|u| u.teams.iter());
    teams
        .filter(|(_, at)| **at > since)
        .map(|(id, _)| id.clone())
        .collect()
}
