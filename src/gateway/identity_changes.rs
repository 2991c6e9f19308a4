//! The person behind a WhatsApp conversation changed
//! (docs/channels.md#identity-changes): a system message says so, or the
//! identity hash Meta gives for the user is not the one it gave before.
//! Every team that lists the channel then ends what was proven in that
//! conversation: its interaction is logged out (`identity_changed`), its
//! open challenge fails, and the conversation is no longer recognized.
use std::sync::Arc;
use std::time::Duration;

use super::change::{self, Change};
use super::records::{ActedDelivery, ConversationLink, IdentityHash, SentMessage};
use super::work::Step;
use super::{audit, Core};
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
use crate::store::keys;
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
    let memory = |id: &str| keys::answered_request(&team.keyspace, SEEN_KIND, id);
    let sent = |id: &str| keys::whatsapp_sent(&team.keyspace, channel, id);
    let (look, hashes) = match signal {
        IdentitySignal::Changed { message_id, .. } => {
            let look = Look::of(team, channel, ids, Some(memory(message_id)), None);
            (look, Hashes::Leave)
        }
        // A status is about a message of the gateway's, or nothing; the
        // hash Meta refused is no longer the person's: later sends go
        // without it until Meta gives the new one.
        IdentitySignal::Refused { message_id, .. } => {
            let (memory, sent) = (Some(memory(message_id)), Some(sent(message_id)));
            (Look::of(team, channel, ids, memory, sent), Hashes::Forget)
        }
        IdentitySignal::Hash { hash, at, from, .. } => {
            let given = SeenHash {
                hash: hash.clone(),
                // Meta's time, never past ours (none given: now).
                at: Some(at.unwrap_or(i64::MAX).min(now.unix_seconds())),
            };
            let sent = match from {
                HashFrom::Status { message_id, .. } => Some(sent(message_id)),
                _ => None,
            };
            let memory = from.delivery().map(|d| memory(&d));
            (
                Look::of(team, channel, ids, memory, sent),
                Hashes::Keep(given),
            )
        }
    };
    act(core, team, channel, &look, &hashes, acting, now).await
}

/// What is done with the identity hashes kept for a signal's user ids.
enum Hashes {
    /// Left as they are (a system message).
    Leave,
    /// Forgotten (a send refused for a changed identity).
    Forget,
    /// The hash Meta gives now, kept with them: a change when it is one
    /// (`identity_change::take_hash`).
    Keep(SeenHash),
}

/// What one signal for one team is decided on, read in one round trip:
/// where a delivery that acted is remembered, the message a status is
/// about (which must be the gateway's), the hashes kept for the user ids,
/// and each spelling of the conversation (`conversation_ids`) with its
/// link to an interaction and its recognition.
struct Look {
    memory: Option<String>,
    sent: Option<String>,
    hashes: Vec<String>,
    /// `(conversation, its link's key, its recognition's key)`.
    spellings: Vec<(String, String, String)>,
}

impl Look {
    fn of(
        team: &Team,
        channel: &str,
        ids: &[String],
        memory: Option<String>,
        sent: Option<String>,
    ) -> Self {
        let ks = &team.keyspace;
        Look {
            memory,
            sent,
            hashes: ids
                .iter()
                .map(|id| keys::identity_hash(ks, channel, id))
                .collect(),
            spellings: conversation_ids(ids)
                .into_iter()
                .map(|c| {
                    let link = keys::conversation(ks, channel, &c);
                    let recognition = keys::recognition(ks, channel, &c);
                    (c, link, recognition)
                })
                .collect(),
        }
    }

    fn keys(&self) -> Vec<String> {
        let spellings = self.spellings.iter().flat_map(|(_, l, r)| [l, r]);
        (self.memory.iter().chain(&self.sent).chain(&self.hashes))
            .chain(spellings)
            .cloned()
            .collect()
    }
}

/// Takes a signal for `team` on `channel`, looking at `look` (one read):
/// nothing for a status of a message the gateway never sent; else, when
/// it is a change and the same delivery did not act already, the
/// conversations' interactions end (each its own unit of work), then one
/// change keeps or forgets the hashes (`hashes`), forgets what the
/// conversations remember (where an interaction's unit of work did not)
/// and remembers the delivery: ended first, remembered after, so that a
/// failure in between is seen again when Meta retries. How many
/// conversations changed.
async fn act(
    core: &Core,
    team: &Team,
    channel: &str,
    look: &Look,
    hashes: &Hashes,
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    let read = change::read(core, &look.keys()).await?;
    if let Some(sent) = &look.sent {
        if read.get::<SentMessage>(sent)?.value.is_none() {
            return Ok(0);
        }
    }
    let acted = match &look.memory {
        Some(memory) => read.get::<ActedDelivery>(memory)?.value.is_some(),
        None => false,
    };
    let changed = !acted && is_change(&read, look, hashes)?;
    let ended = match changed {
        true => end_interactions(core, team, &read, look, acting, now).await?,
        false => vec![Ended::default(); look.spellings.len()],
    };
    let n = held(team, channel, &read, look, &ended, changed)?;
    // What an ended interaction's unit of work forgot already.
    let forgotten = core.config().recognize_for(team, channel).is_some();
    let ttl = team.settings_for(channel).interaction_ttl.get();
    change::on(core, &team.keyspace, read, now, |c| {
        // A hash is kept whatever the delivery did; one is forgotten only
        // by a change.
        let mut wrote = match (hashes, changed) {
            (Hashes::Forget, false) => false,
            _ => kept_hashes(c, look, hashes, ttl)?,
        };
        if !changed {
            return Ok(step(wrote));
        }
        for ((_, _, rkey), ended) in look.spellings.iter().zip(&ended) {
            let r = c.read::<Recognition>(rkey)?;
            if r.value.is_some() && !(ended.held && forgotten) {
                c.delete(&r);
                wrote = true;
            }
        }
        if let Some(memory) = &look.memory {
            let seen = c.read::<ActedDelivery>(memory)?;
            if seen.value.is_some() {
                // A concurrent twin of the delivery acted: the same work.
                return Ok(Step::Answer(()));
            }
            c.put(&seen, &ActedDelivery { c: n }, Some(SEEN_FOR))?;
            wrote = true;
        }
        Ok(step(wrote))
    })
    .await?;
    Ok(n)
}

/// What ending a conversation's interaction found.
#[derive(Debug, Clone, Copy, Default)]
struct Ended {
    /// The conversation's link named an interaction that exists.
    held: bool,
    /// It had something proven or under way, which ended now.
    proven: bool,
}

/// How many spellings of `look` held what a change (`changed`) ended: an
/// interaction's authentication or open challenge (`ended`), or a
/// recognition (as `read`). A change already taken (by an earlier signal
/// of it, another message or a refusal) finds nothing left to end and
/// counts nothing: the metric counts changes, not deliveries.
fn held(
    team: &Team,
    channel: &str,
    read: &change::Read,
    look: &Look,
    ended: &[Ended],
    changed: bool,
) -> Result<usize> {
    let mut n = 0;
    for ((_, _, rkey), ended) in look.spellings.iter().zip(ended) {
        let remembered = read.get::<Recognition>(rkey)?.value.is_some();
        if ended.proven || (changed && remembered) {
            tracing::info!(team = %team.id, channel, "the person behind a WhatsApp conversation changed: what was proven in it ended");
            n += 1;
        }
    }
    Ok(n)
}

/// Whether a signal is a change: any but a hash is; a hash is when it is
/// not the one known (`identity_change::take_hash`).
fn is_change(read: &change::Read, look: &Look, hashes: &Hashes) -> Result<bool> {
    let Hashes::Keep(given) = hashes else {
        return Ok(true);
    };
    for key in &look.hashes {
        let was = read.get::<IdentityHash>(key)?.value.map(KnownHashes::from);
        if identity_change::take_hash(was.as_ref(), given.clone()).change {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Ends the interactions the conversations' links (as `read`) name:
/// what each spelling of `look` held.
async fn end_interactions(
    core: &Core,
    team: &Team,
    read: &change::Read,
    look: &Look,
    acting: &Acting,
    now: Timestamp,
) -> Result<Vec<Ended>> {
    let mut ended = Vec::with_capacity(look.spellings.len());
    for (_, link, _) in &look.spellings {
        let held = match read.get::<ConversationLink>(link)?.value {
            Some(link) => end_interaction(core, team, link.id, acting, now).await?,
            None => Ended::default(),
        };
        ended.push(held);
    }
    Ok(ended)
}

/// Keeps or forgets in `c` the hashes of `look` as `hashes` says, each as
/// read (a conflict reads them again: a concurrent webhook's hash is
/// kept with this one): whether it wrote any.
fn kept_hashes(c: &mut Change, look: &Look, hashes: &Hashes, ttl: Duration) -> Result<bool> {
    let mut wrote = false;
    for key in &look.hashes {
        let known = c.read::<IdentityHash>(key)?;
        match hashes {
            Hashes::Leave => {}
            Hashes::Forget if known.value.is_none() => {}
            Hashes::Forget => {
                c.delete(&known);
                wrote = true;
            }
            Hashes::Keep(given) => {
                let was = known.value.clone().map(KnownHashes::from);
                let taken = identity_change::take_hash(was.as_ref(), given.clone());
                if let Some(keep) = &taken.keep {
                    c.put(&known, &IdentityHash::from(keep), Some(ttl))?;
                    wrote = true;
                }
            }
        }
    }
    Ok(wrote)
}

/// Commits what was decided, or answers with nothing to write.
fn step(wrote: bool) -> Step<()> {
    match wrote {
        true => Step::Write(()),
        false => Step::Answer(()),
    }
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
    let look = Look::of(team, channel, &ids, None, None);
    let changes = act(core, team, channel, &look, &Hashes::Forget, &acting, now).await?;
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

/// Ends interaction `id` of `team` as a change of identity ends it
/// (`domain::identity_change::end`), announced and recorded: whether it
/// exists, and whether it had something to end.
async fn end_interaction(
    core: &Core,
    team: &Team,
    id: Uuid,
    acting: &Acting,
    now: Timestamp,
) -> Result<Ended> {
    let result = core
        .update_interaction(team, id, now, |w| {
            let entry = audit::on_interaction(Action::LoggedOut, acting, &w.rec);
            // A login or step-up under way ends too, as a logout ends it.
            let under_way = w.rec.auth.is_some() || w.rec.is_pending(now);
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
            Ok(ended.logged_out || ended.challenge.is_some() || under_way)
        })
        .await;
    match result {
        Ok((_, proven)) => Ok(Ended { held: true, proven }),
        Err(Error::NotFound(_)) => Ok(Ended::default()),
        Err(e) => Err(e),
    }
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
