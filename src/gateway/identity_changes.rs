//! The person behind a WhatsApp conversation changed
//! (docs/channels.md#identity-changes): a system message says so, or the
//! identity hash Meta gives for the user is not the one it gave before.
//! Every team that lists the channel then ends what was proven in that
//! conversation: its interaction is logged out (`identity_changed`), its
//! open challenge fails, and the conversation is no longer recognized.
use std::sync::Arc;
use std::time::Duration;

use super::records::{ConversationLink, IdentityHash, Loaded, LogoutAnswer};
use super::work::Step;
use super::{audit, change, Core};
use crate::channels::whatsapp_identity::{HashFrom, IdentitySignal};
use crate::channels::{ChannelError, Refusal};
use crate::config::Team;
use crate::domain::audit::{Acting, Action, Actor, Via};
use crate::domain::identity_change::{self, KnownHashes, SeenHash, REASON};
use crate::domain::interaction::InteractionRecord;
use crate::domain::logout::LogoutCause;
use crate::domain::recognition::Recognition;
use crate::error::{Error, Result};
use crate::events::types::{ChallengeFailed, FailedChallenge, LoggedOut};
use crate::events::EventData;
use crate::store::{keys, Op};
use crate::time::Timestamp;
use uuid::Uuid;

/// How long a delivery that acted (a system message, a refusal, a hash
/// that was a change) is remembered by its id, so that Meta's retries of
/// it act once: longer than Meta retries a webhook (up to 7 days).
const SEEN_FOR: Duration = Duration::from_secs(8 * 86_400);

/// The `kind` of [`keys::answered_request`] a delivery that acted is
/// remembered under (in its team's slot).
const SEEN_KIND: &str = "wa-identity";

/// Takes what a signed webhook of `channel` says about identities, for
/// every team that lists the channel: how many changes it made
/// (`chatgate_whatsapp_identity_changes_total`), one for each signal and
/// team that ended something. A conversation the gateway does not hold
/// is left alone; a delivery that acted once acts no more.
pub async fn take_signals(
    core: &Arc<Core>,
    channel: &str,
    signals: &[IdentitySignal],
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    if signals.is_empty() {
        return Ok(0);
    }
    let config = Arc::clone(core.config());
    let mut changes = 0;
    for team in config.teams.values().filter(|t| t.uses_channel(channel)) {
        for signal in signals {
            if take(core, team, channel, signal, acting, now).await? > 0 {
                changes += 1;
            }
        }
    }
    if changes > 0 {
        metrics::counter!("chatgate_whatsapp_identity_changes_total").increment(changes as u64);
    }
    Ok(changes)
}

/// One signal for `team`: how many of its conversations changed.
async fn take(
    core: &Arc<Core>,
    team: &Team,
    channel: &str,
    signal: &IdentitySignal,
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    let ids = signal.ids();
    match signal {
        IdentitySignal::Changed { message_id, .. } | IdentitySignal::Refused { message_id, .. } => {
            let memory = keys::answered_request(&team.keyspace, SEEN_KIND, message_id);
            let mut read = vec![memory.clone()];
            if let IdentitySignal::Refused { .. } = signal {
                // A status is about a message of the gateway's, or nothing.
                read.push(keys::whatsapp_sent(&team.keyspace, channel, message_id));
            }
            let found = core.get(&read).await?;
            let sent = found.get(1).is_none_or(Option::is_some);
            if found[0].is_some() || !sent {
                return Ok(0);
            }
            let n = end_conversations(core, team, channel, ids, acting, now).await?;
            if let IdentitySignal::Refused { .. } = signal {
                // The hash Meta refused is no longer the person's: later
                // sends go without it until Meta gives the new one.
                forget_hashes(core, team, channel, ids, now).await?;
            }
            remember(core, team, &memory, n, now).await?;
            Ok(n)
        }
        IdentitySignal::Hash { hash, at, from, .. } => {
            let given = SeenHash {
                hash: hash.clone(),
                // Meta's time, never past ours (none given: now).
                at: Some(at.unwrap_or(i64::MAX).min(now.unix_seconds())),
            };
            take_hash(core, team, (channel, ids), given, from, acting, now).await
        }
    }
}

/// Remembers under `memory`, for Meta's retry window, that a delivery
/// acted (ended `n` conversations), once it did: a failure before is
/// seen again when Meta retries. A conflict is a concurrent twin.
async fn remember(core: &Core, team: &Team, memory: &str, n: usize, now: Timestamp) -> Result<()> {
    let answer = LogoutAnswer { logged_out: n };
    change::once(core, &team.keyspace, now, |c| {
        c.claim(memory, &answer, Some(SEEN_FOR))?;
        Ok(Step::Write(()))
    })
    .await?;
    Ok(())
}

/// The identity hash Meta gives now (`given`, beside `from`) for the user
/// behind `ids` on `channel`, for `team`: the conversations end when it is
/// a change (`identity_change::take_hash`), unless the same delivery
/// acted already, and what is known of the hashes is kept. A status of a
/// message the gateway never sent changes nothing. How many
/// conversations changed.
async fn take_hash(
    core: &Arc<Core>,
    team: &Team,
    (channel, ids): (&str, &[String]),
    given: SeenHash,
    from: &HashFrom,
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    let mut read: Vec<String> = ids
        .iter()
        .map(|id| keys::identity_hash(&team.keyspace, channel, id))
        .collect();
    let hashes = read.len();
    let memory = from
        .delivery()
        .map(|d| keys::answered_request(&team.keyspace, SEEN_KIND, &d));
    read.extend(memory.clone());
    if let HashFrom::Status { message_id, .. } = from {
        read.push(keys::whatsapp_sent(&team.keyspace, channel, message_id));
    }
    let mut raw = core.get(&read).await?;
    if matches!(from, HashFrom::Status { .. }) && raw.pop().flatten().is_none() {
        return Ok(0);
    }
    let acted = memory.is_some() && raw.get(hashes).is_some_and(Option::is_some);
    let mut taken = Vec::with_capacity(hashes);
    for (key, raw) in read.into_iter().zip(raw).take(hashes) {
        let known = Loaded::<IdentityHash>::parse(key, raw)?;
        let was = known.value.clone().map(KnownHashes::from);
        taken.push((
            known,
            identity_change::take_hash(was.as_ref(), given.clone()),
        ));
    }
    let changed = !acted && taken.iter().any(|(_, t)| t.change);
    // Ended first, remembered after: a failure in between is seen
    // again when Meta retries.
    let n = match changed {
        true => end_conversations(core, team, channel, ids, acting, now).await?,
        false => 0,
    };
    let ttl = team.settings_for(channel).interaction_ttl.get();
    for (known, keep) in taken
        .iter()
        .filter_map(|(k, t)| Some((k, t.keep.as_ref()?)))
    {
        // A conflict is a concurrent webhook's hash: it stands.
        change::once(core, &team.keyspace, now, |c| {
            c.put(known, &IdentityHash::from(keep), Some(ttl))?;
            Ok(Step::Write(()))
        })
        .await?;
    }
    if let (true, Some(memory)) = (changed, memory) {
        remember(core, team, &memory, n, now).await?;
    }
    Ok(n)
}

/// A send of `team` on `channel` for interaction `rec` failed with
/// `err`: when WhatsApp refused it for a changed identity
/// (docs/channels.md#sends-know-the-identity), what was proven in the
/// interaction's conversation ends as a change ends it, and the refused
/// hash is forgotten: whether it was such a refusal. Any other failure,
/// or a send elsewhere, changes nothing. Every use case that sends a
/// code or a link calls it on a failed send.
pub async fn on_send_error(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    channel: &str,
    err: &ChannelError,
    now: Timestamp,
) -> Result<bool> {
    if err.refusal != Some(Refusal::IdentityChanged) || channel != rec.channel {
        return Ok(false);
    }
    let ids = [identity_change::meta_user_id(&rec.conversation_id).to_string()];
    let acting = Acting::new(Actor::provider("whatsapp"), &Via::default());
    let changes = end_conversations(core, team, channel, &ids, &acting, now).await?;
    forget_hashes(core, team, channel, &ids, now).await?;
    if changes > 0 {
        metrics::counter!("chatgate_whatsapp_identity_changes_total").increment(1);
    }
    Ok(true)
}

/// The conversation ids a user id from Meta may be: itself, and for a
/// number (Meta writes digits alone) also with `+`.
fn conversation_ids(ids: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(ids.len() * 2);
    for id in ids {
        out.push(id.clone());
        if id.bytes().all(|b| b.is_ascii_digit()) {
            out.push(format!("+{id}"));
        }
    }
    out
}

/// Ends what was proven in the conversations of `team` on `channel`
/// named by `ids`: how many of them the gateway held (an interaction, or
/// a recognition).
async fn end_conversations(
    core: &Core,
    team: &Team,
    channel: &str,
    ids: &[String],
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    let mut found = 0;
    for conversation in conversation_ids(ids) {
        let ckey = keys::conversation(&team.keyspace, channel, &conversation);
        let raw = core.get(std::slice::from_ref(&ckey)).await?.pop().flatten();
        let mut held = false;
        if let Some(link) = Loaded::<ConversationLink>::parse(ckey, raw)?.value {
            held |= end_interaction(core, team, link.id, acting, now).await?;
        }
        held |= forget_recognition(core, team, channel, &conversation, now).await?;
        if held {
            tracing::info!(team = %team.id, channel, "the person behind a WhatsApp conversation changed: what was proven in it ended");
            found += 1;
        }
    }
    Ok(found)
}

/// Ends interaction `id` of `team` as a change of identity ends it
/// (`domain::identity_change::end`), announced and recorded: whether it
/// exists.
async fn end_interaction(
    core: &Core,
    team: &Team,
    id: Uuid,
    acting: &Acting,
    now: Timestamp,
) -> Result<bool> {
    let result = core
        .update_interaction(team, id, now, |w| {
            let entry = audit::on_interaction(Action::LoggedOut, acting, &w.rec);
            let ended = identity_change::end(&mut w.rec, w.settings, now);
            if let Some(c) = &ended.challenge {
                w.emit(EventData::ChallengeFailed(ChallengeFailed {
                    challenge: FailedChallenge::of(c, c.attempts_remaining()),
                    reason: Some(REASON),
                }));
            }
            if ended.logged_out {
                let cause = LogoutCause::IdentityChanged;
                w.audit(entry.with("cause", cause.as_str()));
                w.emit(EventData::InteractionLoggedOut(LoggedOut {
                    cause,
                    actor: None,
                }));
            }
            w.forget_recognition();
            Ok(())
        })
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Forgets the identity hashes kept for `ids` of `team` on `channel`.
async fn forget_hashes(
    core: &Core,
    team: &Team,
    channel: &str,
    ids: &[String],
    now: Timestamp,
) -> Result<()> {
    let hkeys: Vec<String> = ids
        .iter()
        .map(|id| keys::identity_hash(&team.keyspace, channel, id))
        .collect();
    let raw = core.get(&hkeys).await?;
    for (key, raw) in hkeys.into_iter().zip(raw) {
        let Some(version) = raw.map(|v| v.version) else {
            continue;
        };
        // A conflict is a concurrent webhook's newer hash: it stands.
        change::once(core, &team.keyspace, now, |c| {
            c.also(Op::Delete {
                key,
                expected: version,
            });
            Ok(Step::Write(()))
        })
        .await?;
    }
    Ok(())
}

/// Forgets what conversation `conversation` of `team` on `channel`
/// remembers, also when its interaction is gone: whether it remembered
/// someone.
async fn forget_recognition(
    core: &Core,
    team: &Team,
    channel: &str,
    conversation: &str,
    now: Timestamp,
) -> Result<bool> {
    let rkey = keys::recognition(&team.keyspace, channel, conversation);
    core.change(&team.keyspace, std::slice::from_ref(&rkey), now, |c| {
        let loaded = c.read::<Recognition>(&rkey)?;
        if loaded.value.is_none() {
            return Ok(Step::Answer(false));
        }
        c.delete(&loaded);
        Ok(Step::Write(true))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_from_meta_is_also_looked_up_with_its_plus() {
        let ids = [
            "15552223333".to_string(),
            "US.13491208655302741918".to_string(),
        ];
        assert_eq!(
            conversation_ids(&ids),
            ["15552223333", "+15552223333", "US.13491208655302741918"]
        );
    }
}
