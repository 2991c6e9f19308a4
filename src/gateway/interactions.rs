//! Creating, reading and listing interactions; activity and logout.
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde::Serialize;
use uuid::Uuid;

use super::create::{self, Look, NewIn};
use super::outbox::OutboxItem;
use super::records::{remembered_subject_key, ConversationLink, Loaded, Pair, PairRead};
use super::work::Step;
use super::writes::Writes;
use super::{audit, number_checks, view, Core, InteractionView};
use crate::config::Team;
use crate::domain::audit::{Acting, Action};
use crate::domain::destination_policy::Reach;
use crate::domain::input::{self, ConversationId, CustomerRef};
use crate::domain::interaction::{Contact, InteractionRecord, Status};
use crate::domain::locale::LocaleTag;
use crate::domain::logout::LogoutCause;
use crate::domain::pin::SessionPin;
use crate::domain::recognition::Recognition;
use crate::domain::secrets::Pepper;
use crate::domain::subject::SubjectRecord;
use crate::error::{Error, Result};
use crate::events::types::{LoggedOut, Plain};
use crate::events::EventData;
use crate::store::{keys, IndexEntry, Versioned};
use crate::time::Timestamp;

/// A bot's request to create (or find) an interaction, as received.
#[derive(Debug, Clone, Default)]
pub struct NewInteraction {
    pub channel: String,
    pub conversation_id: String,
    pub customer_ref: Option<String>,
    /// Digits only, `pin.min_length..=pin.max_length`. Stored only hashed.
    pub session_pin: Option<String>,
    pub contact: Option<Contact>,
    /// The language asked for from now on (docs/api.md#languages).
    pub locale: Option<String>,
}

/// A create request, its shape checked.
struct Checked {
    channel: String,
    conversation: ConversationId,
    customer_ref: Option<CustomerRef>,
    pin: Option<SessionPin>,
    contact: Contact,
    locale: Option<LocaleTag>,
}

impl Checked {
    /// 422 for a channel that is not the team's, or a malformed
    /// conversation id, customer reference, session PIN or contact.
    fn parse(team: &Team, req: NewInteraction, reach: Reach, whatsapp: bool) -> Result<Checked> {
        if !team.has_channel(&req.channel) {
            return Err(Error::invalid(
                "channel",
                &format!(
                    "is not one of the team's channels, which are {}",
                    team.channels.join(", ")
                ),
            ));
        }
        let conversation = ConversationId::on(reach, whatsapp, &req.conversation_id)?;
        let customer_ref = req
            .customer_ref
            .as_deref()
            .map(CustomerRef::parse)
            .transpose()?;
        let s = team.settings_for(&req.channel);
        let pin = req
            .session_pin
            .as_deref()
            .map(|p| SessionPin::parse(p, &s.pin))
            .transpose()?;
        let contact = match req.contact {
            Some(c) => Contact {
                phone: c
                    .phone
                    .as_deref()
                    .map(|p| input::phone("contact.phone", p))
                    .transpose()?,
                email: c
                    .email
                    .as_deref()
                    .map(|e| input::email("contact.email", e))
                    .transpose()?,
            },
            None => Contact::default(),
        };
        let locale = req
            .locale
            .as_deref()
            .map(LocaleTag::requested)
            .transpose()?;
        Ok(Checked {
            channel: req.channel,
            conversation,
            customer_ref,
            pin,
            contact,
            locale,
        })
    }

    /// A new interaction of `team` for this request, its session PIN kept
    /// only as its keyed hash.
    fn record(&self, team: &Team, pepper: &Pepper, now: Timestamp) -> InteractionRecord {
        let (channel, conversation) = (&self.channel, self.conversation.as_str());
        let mut rec = InteractionRecord::new(Uuid::now_v7(), &team.id, channel, conversation, now);
        rec.customer_ref = self.customer_ref.clone().map(CustomerRef::into_string);
        rec.session_pin_hash = self.pin.as_ref().map(|p| p.keyed_hash(rec.id, pepper));
        rec.contact = self.contact.clone();
        if let Some(locale) = &self.locale {
            rec.ask_locale(locale, false);
        }
        rec
    }
}

/// What a new interaction's conversation holds, as read.
struct Conversation {
    link: Loaded<ConversationLink>,
    subject: Option<SubjectRecord>,
    recognition: Option<Recognition>,
    /// The subject of the customer it remembers, when the new interaction
    /// names no customer (`records::remembered_subject_key`).
    remembered: Option<SubjectRecord>,
    /// The interaction this process last found or created in the
    /// conversation, read in the same round trip (see [`read_conversation`]).
    guessed: Option<PairRead>,
}

/// `GET /v1/interactions` filters and paging.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<Status>,
    pub channel: Option<String>,
    pub limit: usize,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    pub items: Vec<InteractionView>,
    pub next_cursor: Option<String>,
}

/// Creates the interaction, or returns the team's existing one for the
/// same channel and conversation. `true` when newly created.
pub async fn create_interaction(
    core: &Core,
    team: &Team,
    req: NewInteraction,
    now: Timestamp,
) -> Result<(InteractionView, bool)> {
    let reach = core.reach(&req.channel);
    let whatsapp = core.config().whatsapp_chat(&req.channel);
    let new = Checked::parse(team, req, reach, whatsapp)?;
    let look = || look_in_conversation(core, team, &new, now);
    let (view, created) = create::create_or_find(core, team, now, look).await?;
    if created {
        let conversation = new.conversation.as_str();
        let ckey = keys::conversation(&team.keyspace, &new.channel, conversation);
        let rkey = core
            .config()
            .recognize_for(team, &new.channel)
            .map(|_| keys::recognition(&team.keyspace, &new.channel, conversation));
        remember_created(core, team, view.id, &ckey, rkey.as_deref());
        metrics::counter!("chatgate_interactions_created_total").increment(1);
    }
    Ok((view, created))
}

/// One look of [`create_interaction`]: the conversation's interaction if
/// it has a live one, else a new one to create there.
async fn look_in_conversation(
    core: &Core,
    team: &Team,
    new: &Checked,
    now: Timestamp,
) -> Result<Look<InteractionView>> {
    let mut seen = read_conversation(core, team, new, now).await?;
    let guesses = core.conversation_interactions();
    let linked = seen.link.value.as_ref().map(|l| l.id);
    // A guess the conversation as read does not name is forgotten; one it
    // names is remembered already (no guess: nothing to forget).
    let guessed = match seen.guessed.take() {
        Some(read) if Some(read.id) == linked => Some(read),
        Some(_) => {
            guesses.forget(&seen.link.key);
            None
        }
        None => None,
    };
    let hit = guessed.is_some();
    if let Some(id) = linked {
        let found = match &new.locale {
            // The conversation switched language (docs/api.md#languages).
            Some(locale) => switch_locale(core, team, id, locale, now).await,
            None => match found_pair(core, team, id, guessed, now).await {
                Ok(pair) => pair.view(team, now),
                Err(e) => Err(e),
            },
        };
        match found {
            Ok(view) => {
                if !hit {
                    guesses.remember(&seen.link.key, &keys::interaction(&team.keyspace, id));
                }
                return Ok(Look::Found(view));
            }
            Err(Error::NotFound(_)) => {} // forgotten: start a new one
            Err(e) => return Err(e),
        }
    }
    new_in(core, team, new, seen, now).await
}

/// A new interaction for the conversation `seen`, with its
/// `interaction.created`; once created, this process remembers it as the
/// conversation's.
async fn new_in(
    core: &Core,
    team: &Team,
    new: &Checked,
    seen: Conversation,
    now: Timestamp,
) -> Result<Look<InteractionView>> {
    let s = team.settings_for(&new.channel);
    let mut rec = new.record(team, core.pepper(), now);
    if seen.recognition.is_some() {
        rec.recognition_refused = number_checks::refuses_recognition(core, team, &rec, now).await;
    }
    let (subject, recognition) = (seen.subject.as_ref(), seen.recognition.as_ref());
    let remembered = seen.remembered.as_ref();
    let view = InteractionView::build_recognized(&rec, subject, recognition, remembered, s, now)
        .in_conversation(team.conversation_kind(&rec));
    let created = OutboxItem::about_interaction(&EventData::InteractionCreated(Plain), now, &view)?;
    let link = seen.link;
    Ok(Look::Create(Box::new(NewIn { link, rec, created }), view))
}

/// This process remembers interaction `id`, just created, as the one of
/// its conversation (`ckey`), and where its conversation's recognition
/// is kept (`rkey`, where its channel remembers any).
fn remember_created(core: &Core, team: &Team, id: Uuid, ckey: &str, rkey: Option<&str>) {
    let ikey = keys::interaction(&team.keyspace, id);
    core.conversation_interactions().remember(ckey, &ikey);
    if let Some(rkey) = rkey {
        core.companions().0.remember(&ikey, rkey);
    }
}

/// The pair of interaction `id`, which the conversation names: as read
/// beside the conversation when that read is of `id` (`guessed`, one
/// snapshot on Redis), else read now. Gone as read beside it, it is read
/// again before it is taken for gone: a store that does not read both at
/// once may have read the interaction before the commit that created it
/// with its conversation key.
async fn found_pair(
    core: &Core,
    team: &Team,
    id: Uuid,
    guessed: Option<PairRead>,
    now: Timestamp,
) -> Result<Pair> {
    match guessed {
        Some(read) => match core.pair_of(team, read, now).await {
            Err(Error::NotFound(_)) => core.load_pair(team, id, now).await,
            found => found,
        },
        None => core.load_pair(team, id, now).await,
    }
}

/// The interaction speaks `locale` from now on.
async fn switch_locale(
    core: &Core,
    team: &Team,
    id: Uuid,
    locale: &LocaleTag,
    now: Timestamp,
) -> Result<InteractionView> {
    let (view, ()) = core
        .update_interaction(team, id, now, |w| {
            w.rec.ask_locale(locale, false);
            Ok(())
        })
        .await?;
    Ok(view)
}

/// What a new interaction's conversation already holds, in one round
/// trip: its link to an interaction; when the bot names the customer,
/// the subject they may have locked or banned; and what the
/// conversation remembers, where its channel does, and the subject of the
/// customer it remembers (as last seen: one more round trip when that
/// guess is wrong). Where this process last found or created an
/// interaction in the conversation, and the request switches no language,
/// that interaction with what its pair reads beside it too
/// (docs/performance.md#targets): the caller uses it when the conversation
/// as read names it.
async fn read_conversation(
    core: &Core,
    team: &Team,
    new: &Checked,
    now: Timestamp,
) -> Result<Conversation> {
    let conversation = new.conversation.as_str();
    let ckey = keys::conversation(&team.keyspace, &new.channel, conversation);
    let iguess = new
        .locale
        .is_none()
        .then(|| core.conversation_interactions().get(&ckey))
        .flatten()
        .and_then(|k| keys::interaction_id(&k));
    let skey = new
        .customer_ref
        .as_ref()
        .map(|r| keys::subject(&team.keyspace, r.as_str()));
    let rkey = core
        .config()
        .recognize_for(team, &new.channel)
        .map(|_| keys::recognition(&team.keyspace, &new.channel, conversation));
    let cguess = rkey.as_ref().and_then(|k| core.companions().1.get(k));
    let wanted: Vec<String> = std::iter::once(ckey.clone())
        .chain(skey.clone())
        .chain(rkey.clone())
        .chain(cguess.clone())
        .collect();
    let (guessed, raw) = match iguess {
        Some(id) => {
            let (read, raw) = core.read_pair_and(team, id, &wanted).await?;
            (Some(read), raw)
        }
        None => (None, core.get(&wanted).await?),
    };
    let mut raw = raw.into_iter();
    let link = Loaded::parse(ckey, raw.next().flatten())?;
    let subject = match skey {
        Some(k) => Loaded::parse(k, raw.next().flatten())?.value,
        None => None,
    };
    let recognition = match &rkey {
        Some(k) => Loaded::parse(k.clone(), raw.next().flatten())?.value,
        None => None,
    };
    let customer_ref = new.customer_ref.as_ref().map(|r| r.as_str());
    let theirs = remembered_subject_key(team, customer_ref, recognition.as_ref(), now);
    let beside = raw.next().flatten();
    let remembered = remembered_subject(core, theirs, rkey.as_deref(), cguess, beside).await?;
    Ok(Conversation {
        link,
        subject,
        recognition,
        remembered,
        guessed,
    })
}

/// The subject of the customer a conversation remembers, at `theirs`
/// (what its recognition at `rkey` names): as read beside the conversation
/// (`beside`) when the guess `cguess` was right; else read now, in one
/// more round trip, and the guess corrected.
async fn remembered_subject(
    core: &Core,
    theirs: Option<String>,
    rkey: Option<&str>,
    cguess: Option<String>,
    beside: Option<Versioned>,
) -> Result<Option<SubjectRecord>> {
    let (Some(theirs), Some(rkey)) = (theirs, rkey) else {
        return Ok(None);
    };
    let read = match cguess {
        Some(guess) if guess == theirs => beside,
        _ => {
            core.companions().1.remember(rkey, &theirs);
            let mut more = core.get(std::slice::from_ref(&theirs)).await?;
            more.pop().flatten()
        }
    };
    Ok(Loaded::<SubjectRecord>::parse(theirs, read)?.value)
}

pub async fn get_interaction(
    core: &Core,
    team: &Team,
    id: Uuid,
    now: Timestamp,
) -> Result<InteractionView> {
    let pair = core.load_pair(team, id, now).await?;
    pair.view(team, now)
}

/// The one interaction of a conversation (channel and the chat's own id),
/// if it exists: one read of the conversation key, then the interaction.
pub async fn find_conversation(
    core: &Core,
    team: &Team,
    channel: &str,
    conversation: &ConversationId,
    now: Timestamp,
) -> Result<Option<InteractionView>> {
    let ckey = keys::conversation(&team.keyspace, channel, conversation.as_str());
    let raw = core.get(std::slice::from_ref(&ckey)).await?.pop().flatten();
    let Some(link) = Loaded::<ConversationLink>::parse(ckey, raw)?.value else {
        return Ok(None);
    };
    match get_interaction(core, team, link.id, now).await {
        Ok(view) => Ok(Some(view)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The team's interactions, newest first, filtered, paged by an opaque
/// cursor. A filtered page may come back short (even empty) with a
/// cursor: it walks a bounded stretch of the index, so it costs
/// O(limit) whatever the team's size.
pub async fn list_interactions(
    core: &Core,
    team: &Team,
    q: ListQuery,
    now: Timestamp,
) -> Result<Page> {
    let mut before = match q.cursor.as_deref() {
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| Error::invalid("cursor", "is not a cursor this gateway issued"))?,
        ),
        None => None,
    };
    let batch = (q.limit * 2).clamp(20, 500);
    let mut items = Vec::new();
    // Where the last item kept sits in the index.
    let mut kept: Option<(i64, String)> = None;
    // A filter may match few: a page walks at most MAX_BATCHES batches
    // of the index, then answers what it found (perhaps nothing) with a
    // cursor to go on. A page costs O(limit), never O(team).
    for _ in 0..MAX_BATCHES {
        let (mut live, exhausted) = live_batch(core, team, before.clone(), batch, now).await?;
        if let Some((entry, _)) = live.last() {
            before = Some((entry.score, entry.member.clone()));
        }
        // Only the asked channel's records are worth reading their
        // subjects and recognitions for.
        if let Some(channel) = q.channel.as_deref() {
            live.retain(|(_, rec)| rec.channel == channel);
        }
        for (entry, view) in views(core, team, &live, now).await? {
            if q.status
                .is_some_and(|st| view::Status::from(st) != view.status)
            {
                continue;
            }
            // One past the page tells whether a next page exists, so the
            // last page ends with `next_cursor: null`.
            if items.len() == q.limit {
                let next_cursor = kept.as_ref().map(|(s, m)| encode_cursor(*s, m));
                return Ok(Page { items, next_cursor });
            }
            items.push(view);
            kept = Some((entry.score, entry.member.clone()));
        }
        if exhausted {
            let next_cursor = None;
            return Ok(Page { items, next_cursor });
        }
    }
    let next_cursor = before.as_ref().map(|(s, m)| encode_cursor(*s, m));
    Ok(Page { items, next_cursor })
}

/// The next `batch` entries of the team's index before `before`, with
/// their live records (`true` when the index has no more). Entries
/// whose records expired, or that this version cannot read, are left
/// out and dropped from the index.
async fn live_batch(
    core: &Core,
    team: &Team,
    before: Option<(i64, String)>,
    batch: usize,
    now: Timestamp,
) -> Result<(Vec<(IndexEntry, InteractionRecord)>, bool)> {
    let index = keys::interactions_index(&team.keyspace);
    let entries = core.index_desc(&index, before, batch).await?;
    let exhausted = entries.len() < batch;
    let ids: Vec<(IndexEntry, Uuid)> = entries
        .into_iter()
        .filter_map(|e| Uuid::parse_str(&e.member).ok().map(|id| (e, id)))
        .collect();
    let rkeys: Vec<String> = ids
        .iter()
        .map(|(_, id)| keys::interaction(&team.keyspace, *id))
        .collect();
    let raw = if rkeys.is_empty() {
        Vec::new()
    } else {
        core.get(&rkeys).await?
    };
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for ((entry, _), (key, r)) in ids.into_iter().zip(rkeys.into_iter().zip(raw)) {
        // A record this version cannot read is left out (and its
        // index entry dropped), never a 500 for the whole list.
        let parsed = Loaded::<InteractionRecord>::parse(key, r).unwrap_or_else(|e| {
            tracing::error!(error = %e, "unreadable interaction left out of a list");
            Loaded {
                key: String::new(),
                version: 0,
                value: None,
            }
        });
        match parsed.value {
            Some(rec) if !rec.is_forgotten(now, team.settings_for(&rec.channel)) => {
                live.push((entry, rec))
            }
            _ => gone.push(entry.member),
        }
    }
    if !gone.is_empty() {
        // Lazy clean-up of ids whose records expired; never conflicts.
        core.change(&team.keyspace, &[], now, |c| {
            gone.iter()
                .for_each(|member| c.index_remove(&index, member));
            Ok(Step::Write(()))
        })
        .await?;
    }
    Ok((live, exhausted))
}

/// The views of `live` records, with their subjects and what their
/// conversations remember, read side by side.
async fn views<'e>(
    core: &Core,
    team: &Team,
    live: &'e [(IndexEntry, InteractionRecord)],
    now: Timestamp,
) -> Result<Vec<(&'e IndexEntry, InteractionView)>> {
    let recs: Vec<&InteractionRecord> = live.iter().map(|(_, r)| r).collect();
    let (subjects, recognitions) = futures::future::try_join(
        core.load_subjects(team, &recs),
        crate::gateway::recognition::load_recognitions(core, team, &recs),
    )
    .await?;
    let remembered =
        crate::gateway::recognition::load_remembered(core, team, &recs, &recognitions, now).await?;
    let read = subjects.into_iter().zip(recognitions).zip(remembered);
    let views =
        live.iter()
            .zip(read)
            .map(|((entry, rec), ((subject, recognition), remembered))| {
                let s = team.settings_for(&rec.channel);
                let view = InteractionView::build_recognized(
                    rec,
                    subject.as_ref(),
                    recognition.as_ref(),
                    remembered.as_ref(),
                    s,
                    now,
                )
                .in_conversation(team.conversation_kind(rec));
                (entry, view)
            });
    Ok(views.collect())
}

/// The customer was active now (docs/api.md#activity-logout-and-time-outs).
pub async fn record_activity(
    core: &Core,
    team: &Team,
    id: Uuid,
    now: Timestamp,
) -> Result<InteractionView> {
    core.update_interaction(team, id, now, |w| {
        w.rec.touch_activity(now, w.settings);
        Ok(())
    })
    .await
    .map(|(view, _)| view)
}

/// Ends the authentication; status `unauthenticated`; the
/// conversation is no longer recognized.
pub async fn logout(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    acting: &Acting,
    now: Timestamp,
) -> Result<InteractionView> {
    let (view, _) = core
        .update_interaction(team, id, now, |w| {
            // Recorded, as announced, when it ends an authentication.
            if w.rec.auth.is_some() {
                let entry = audit::on_interaction(Action::LoggedOut, acting, &w.rec);
                w.audit(entry.with("cause", LogoutCause::Api.as_str()));
                w.emit(EventData::InteractionLoggedOut(LoggedOut {
                    cause: LogoutCause::Api,
                    actor: Some(acting.actor.without_ip()),
                }));
            }
            w.rec.log_out(now);
            w.forget_recognition();
            Ok(())
        })
        .await?;
    Ok(view)
}

/// Index batches one list page reads at most (see `list`).
const MAX_BATCHES: usize = 4;

fn encode_cursor(score: i64, member: &str) -> String {
    B64URL.encode(format!("{score}:{member}"))
}

fn decode_cursor(c: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(B64URL.decode(c).ok()?).ok()?;
    let (score, member) = raw.split_once(':')?;
    Uuid::parse_str(member).ok()?;
    Some((score.parse().ok()?, member.to_string()))
}

/// `POST /v1/interactions/{id}/forget`: the conversation is no longer
/// recognized. Answers the interaction.
pub async fn forget_conversation(
    core: &Core,
    team: &Team,
    id: Uuid,
    acting: &Acting,
    now: Timestamp,
) -> Result<InteractionView> {
    let (view, ()) = core
        .update_interaction(team, id, now, |w| {
            // Recorded when the conversation remembered someone.
            if w.recognized().is_some() {
                let entry = audit::on_interaction(Action::RecognitionForgotten, acting, &w.rec);
                w.audit(entry);
            }
            w.forget_recognition();
            Ok(())
        })
        .await?;
    Ok(view)
}
