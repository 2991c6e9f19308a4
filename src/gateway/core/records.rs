//! Typed access to the store: loading records with their versions and
//! building the ops that write them back, with the TTL each kind of record
//! lives for.
//!
//! The stored forms of the domain's records are here, and only here:
//! [`interaction`] (with its challenge, links and pending logins),
//! [`subject`], and the [`small`] ones (a conversation's recognition, a
//! customer's devices, a destination's sends, a link's uses), each with conversions both
//! ways. The domain's types are
//! plain; what the store keeps for its own bookkeeping (how long what
//! points to an interaction lives, the due time the due queue holds for
//! it, the key of its subject) is in the stored form, not in the domain's
//! record.
mod background;
mod console;
mod interaction;
mod logins;
mod markers;
mod mcp;
mod operator;
mod small;
mod subject;
mod trail;
mod wallet;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::Core;
use crate::config::{Settings, Team};
use crate::domain::interaction::InteractionRecord;
use crate::domain::recognition::Recognition;
use crate::domain::subject::SubjectRecord;
use crate::error::{Error, Result};
use crate::store::{keys, Op, StoreError, Versioned, WithCompanion};
use crate::time::Timestamp;

pub use background::{StoredGather, StoredMessage, StoredPoll, StoredReport};
pub use console::{SessionTeam, StoredSession, StoredSignIn};
pub use interaction::{contact, StoredInteraction};
pub use markers::{
    ActedDelivery, ConversationLink, EndedSession, IdentityHash, LogoutAnswer, SentMessage,
    ShortLink, StoredChallengeLink, UsedJti,
};
pub use mcp::StoredMcpSession;
pub use operator::{
    ApiKeyClaim, ApiTeamsGeneration, ApiTeamsIndex, ChannelUses, DeletedTeam, KeyReservation,
    PendingWrite, StoredApiChannel, StoredApiChannels, StoredApiForm, StoredApiTeam,
    StoredApiTeams,
};
pub use small::{StoredDevices, StoredEpoch, StoredLinkUses, StoredRecognition, StoredSends};
pub use subject::StoredSubject;
pub use trail::{entry_json, entry_text, ConfigParts, StoredConfig, StoredCursor, StoredHead};
pub use wallet::{StoredRegistrations, StoredWalletKey};

/// A record as read, with the version to write it back against.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub key: String,
    pub version: u64,
    pub value: Option<T>,
}

/// A kind of record the store holds as its own JSON (serde's form of it).
pub trait Record: DeserializeOwned {}

/// A value written as plain JSON: an audit entry, as its sinks and pages
/// read it.
impl Record for serde_json::Value {}

/// A digest or a name kept on its own, as a JSON string.
impl Record for String {}

/// A kind of record as the store holds it: read from its text and its key.
pub trait Readable: Sized {
    /// The record stored under `key` as `text`; `Err` says what is wrong
    /// with it (never its content).
    fn read(text: &str, key: &str) -> std::result::Result<Self, String>;
}

impl<T: Record> Readable for T {
    fn read(text: &str, _key: &str) -> std::result::Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

impl Readable for InteractionRecord {
    fn read(text: &str, key: &str) -> std::result::Result<Self, String> {
        decode_interaction(text, key).map(|(rec, _)| rec)
    }
}

impl Readable for crate::domain::console_session::Session {
    fn read(text: &str, _key: &str) -> std::result::Result<Self, String> {
        let stored: StoredSession = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(stored.into())
    }
}

impl Readable for SubjectRecord {
    fn read(text: &str, _key: &str) -> std::result::Result<Self, String> {
        let stored: StoredSubject = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Ok(stored.into())
    }
}

/// What an interaction's stored form keeps beside the record for the
/// store's own bookkeeping (see [`interaction_ops`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bookkeeping {
    /// Until when what points to it lives.
    pub indexed_until: Option<Timestamp>,
    /// The due time the team's due queue holds for it, as its last write
    /// left it; `None` when nothing was due then, or when an earlier
    /// version wrote it (its next write queues what is due, see
    /// [`write_interaction`]).
    pub due_held: Option<Timestamp>,
}

/// An interaction stored under `key` as `text`, and its stored form's
/// bookkeeping. The id is the key's last segment (see
/// [`keys::interaction`]): a key of another kind is an error, never a
/// record with the nil id.
pub fn decode_interaction(
    text: &str,
    key: &str,
) -> std::result::Result<(InteractionRecord, Bookkeeping), String> {
    let stored: StoredInteraction = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let id = keys::interaction_id(key).ok_or("not a key of its kind")?;
    let kept = Bookkeeping {
        indexed_until: stored.iu,
        due_held: stored.dq,
    };
    Ok((stored.into_record(id)?, kept))
}

/// The text [`decode_interaction`] reads: `rec` with its bookkeeping, and
/// the key of the subject it names when that is not its own.
pub fn encode_interaction(
    rec: &InteractionRecord,
    kept: Bookkeeping,
    companion: Option<String>,
) -> Result<String> {
    let mut stored = StoredInteraction::from(rec);
    stored.iu = kept.indexed_until;
    stored.dq = kept.due_held;
    stored.companion = companion;
    crate::store::json_text(&stored)
        .map_err(|e| Error::internal_from("a record could not be encoded", e))
}

impl<T: Readable> Loaded<T> {
    pub fn parse(key: String, raw: Option<Versioned>) -> Result<Self> {
        match raw {
            None => Ok(Loaded {
                key,
                version: 0,
                value: None,
            }),
            Some(v) => {
                let value = T::read(&v.value, &key)
                    .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
                Ok(Loaded {
                    key,
                    version: v.version,
                    value: Some(value),
                })
            }
        }
    }
}

/// `Put` of a record, written back against the version it was read at.
pub fn put<T: Serialize>(key: &str, expected: u64, value: &T, ttl: Option<Duration>) -> Result<Op> {
    put_versioned(key, expected, value, ttl).map(|(op, _)| op)
}

/// [`put`], and the version the record will have once it is written (for
/// a writer that checks it later: a lease, a claim it may release).
pub fn put_versioned<T: Serialize>(
    key: &str,
    expected: u64,
    value: &T,
    ttl: Option<Duration>,
) -> Result<(Op, u64)> {
    let value = crate::store::json_text(value)
        .map_err(|e| Error::internal_from("a record could not be encoded", e))?;
    let version = crate::store::fresh_version();
    let op = Op::Put {
        key: key.to_string(),
        expected,
        version,
        value,
        ttl,
        companion: None,
    };
    Ok((op, version))
}

/// `Put` of a record's text, naming its companion (see
/// [`crate::store::Store::get_with_companion`]).
fn put_text(
    key: &str,
    expected: u64,
    value: String,
    ttl: Option<Duration>,
    companion: Option<String>,
) -> Op {
    Op::Put {
        key: key.to_string(),
        expected,
        version: crate::store::fresh_version(),
        value,
        ttl,
        companion,
    }
}

/// An interaction together with its subject, both as read.
pub struct Pair {
    pub interaction: Loaded<InteractionRecord>,
    pub subject: Loaded<SubjectRecord>,
    /// What its conversation remembers (a recognized conversation), when
    /// its channel remembers any.
    pub recognition: Option<Loaded<Recognition>>,
    /// The subject of the customer the conversation remembers, when a
    /// view must know where it stands apart from the interaction's own
    /// ([`remembered_subject_key`]).
    pub remembered: Option<Loaded<SubjectRecord>>,
    /// What the interaction's stored form keeps beside it (see
    /// [`interaction_ops`]).
    pub kept: Bookkeeping,
}

/// An interaction as [`Core::read_pair_and`] read it, with the guesses
/// it was read with: [`Core::pair_of`] checks them against the record and
/// builds its [`Pair`].
pub struct PairRead {
    /// The interaction read.
    pub id: Uuid,
    ikey: String,
    /// The key of its own subject (the companion read when none is known).
    own: String,
    sguess: Option<String>,
    rguess: Option<String>,
    cguess: Option<String>,
    read: WithCompanion,
    rread: Option<Option<Versioned>>,
    cread: Option<Option<Versioned>>,
}

/// See [`Pair::seen`].
type Seen<'a> = (
    &'a InteractionRecord,
    Option<&'a SubjectRecord>,
    Option<&'a Recognition>,
    Option<&'a SubjectRecord>,
    &'a Settings,
);

impl Pair {
    /// The keys of the records its view is read from besides the
    /// interaction's: its subject, and what its conversation remembers.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        let recognition = self.recognition.as_ref().map(|r| r.key.as_str());
        let remembered = self.remembered.as_ref().map(|r| r.key.as_str());
        std::iter::once(self.subject.key.as_str())
            .chain(recognition)
            .chain(remembered)
    }

    pub fn rec(&self) -> Result<&InteractionRecord> {
        self.interaction
            .value
            .as_ref()
            .ok_or(Error::NotFound("no such interaction"))
    }
    /// Whether the interaction is `team`'s and not forgotten at `now` (what
    /// [`Core::load_pair`] checks on a read), for records handed over.
    pub fn is_live(&self, team: &Team, now: Timestamp) -> bool {
        self.interaction
            .value
            .as_ref()
            .is_some_and(|rec| is_live(rec, team, now))
    }

    /// What a view of the interaction is built from: the record, its
    /// subject and recognition as read, and its channel's settings.
    fn seen<'a>(&'a self, team: &'a Team) -> Result<Seen<'a>> {
        let rec = self.rec()?;
        let recognition = self.recognition.as_ref().and_then(|r| r.value.as_ref());
        Ok((
            rec,
            self.subject.value.as_ref(),
            recognition,
            remembered_of(self.remembered.as_ref(), &team.keyspace, recognition),
            team.settings_for(&rec.channel),
        ))
    }

    /// The interaction as bots, agents and events see it.
    pub fn view(&self, team: &Team, now: Timestamp) -> Result<super::InteractionView> {
        let (rec, subject, recognition, remembered, s) = self.seen(team)?;
        Ok(
            super::InteractionView::build_recognized(rec, subject, recognition, remembered, s, now)
                .in_conversation(team.conversation_kind(rec)),
        )
    }

    /// What [`Self::view`] shows of the authentication, in the domain's terms.
    pub fn shown(&self, team: &Team, now: Timestamp) -> Result<crate::domain::assurance::Shown> {
        let (rec, subject, recognition, remembered, s) = self.seen(team)?;
        Ok(super::view::shown(
            rec,
            subject,
            recognition,
            remembered,
            s,
            now,
        ))
    }

    /// The subject record, or a fresh one for a subject never seen.
    pub fn subject_or_new(&self) -> Result<SubjectRecord> {
        let rec = self.rec()?;
        Ok(self
            .subject
            .value
            .clone()
            .unwrap_or_else(|| SubjectRecord::new(&rec.subject())))
    }
}

/// The key of the subject `rec` names (its `customer_ref`'s), if any. An
/// interaction without one is its own subject, whose key its reader derives
/// from the interaction's id ([`Core::load_pair`]); its writer leaves it
/// out ([`write_interaction`]).
fn named_subject_key(team: &Team, rec: &InteractionRecord) -> Option<String> {
    rec.customer_ref
        .as_deref()
        .map(|r| keys::subject(&team.keyspace, r))
}

/// The key of the subject of the customer `recognition` remembers, when
/// a view of an interaction naming `customer_ref` must know where that
/// subject stands apart from its own: the conversation remembers someone
/// at `now`, and the interaction names no customer (naming one, its
/// subject is the remembered customer's, or nothing is shown).
pub(in crate::gateway) fn remembered_subject_key(
    team: &Team,
    customer_ref: Option<&str>,
    recognition: Option<&Recognition>,
    now: Timestamp,
) -> Option<String> {
    let r = recognition.filter(|r| now < r.until)?;
    customer_ref
        .is_none()
        .then(|| keys::subject(&team.keyspace, &r.customer_id))
}

/// The subject `remembered` as read, when it is the one of the customer
/// `recognition` remembers (a decision may have changed whom it
/// remembers since).
pub(in crate::gateway) fn remembered_of<'a>(
    remembered: Option<&'a Loaded<SubjectRecord>>,
    team: &str,
    recognition: Option<&Recognition>,
) -> Option<&'a SubjectRecord> {
    let (loaded, r) = (remembered?, recognition?);
    (loaded.key == keys::subject(team, &r.customer_id))
        .then_some(loaded.value.as_ref())
        .flatten()
}

/// Whether `rec` is `team`'s and not forgotten at `now`: a read of anything
/// else answers `NotFound`.
fn is_live(rec: &InteractionRecord, team: &Team, now: Timestamp) -> bool {
    rec.team == team.id && !rec.is_forgotten(now, team.settings_for(&rec.channel))
}

impl Core {
    /// Loads an interaction of `team` and its subject. A forgotten or
    /// absent interaction is `NotFound`.
    pub(in crate::gateway) async fn load_pair(
        &self,
        team: &Team,
        id: Uuid,
        now: Timestamp,
    ) -> Result<Pair> {
        let (read, _) = self.read_pair_and(team, id, &[]).await?;
        self.pair_of(team, read, now).await
    }

    /// Reads interaction `id` of `team` with what [`Self::pair_of`] builds
    /// its pair from, and the keys `also` in the same round trip: what is
    /// read of the pair, and what is read of `also`, in its order.
    pub(in crate::gateway) async fn read_pair_and(
        &self,
        team: &Team,
        id: Uuid,
        also: &[String],
    ) -> Result<(PairRead, Vec<Option<Versioned>>)> {
        let ikey = keys::interaction(&team.keyspace, id);
        // One round trip: the record's write named its subject as its
        // companion, unless that is its own subject. A store that does not
        // know it (another instance wrote it) reads the one this process
        // last found, else the interaction's own.
        let own = keys::subject(&team.keyspace, &crate::domain::interaction::own_subject(id));
        let sguess = self.subject_keys.get(&ikey);
        // And, where its channel remembers who authenticated in the
        // conversation, that record too, once this process has seen the
        // interaction (its conversation never changes).
        let rguess = self.recognition_keys.get(&ikey);
        // And the subject of the customer it remembers, as last seen.
        let cguess = rguess
            .as_ref()
            .and_then(|r| self.remembered_subjects.get(r));
        let mut wanted: Vec<String> = rguess.iter().chain(&cguess).cloned().collect();
        let guessed = wanted.len();
        wanted.extend_from_slice(also);
        let (read, mut more) = self
            .store
            .get_with_companion_and(&ikey, Some(sguess.as_deref().unwrap_or(&own)), &wanted)
            .await?;
        let asked = more.split_off(guessed.min(more.len()));
        let mut more = more.into_iter();
        let (rread, cread) = (more.next(), more.next());
        let read = PairRead {
            id,
            ikey,
            own,
            sguess,
            rguess,
            cguess,
            read,
            rread,
            cread,
        };
        Ok((read, asked))
    }

    /// The pair of an interaction as [`Self::read_pair_and`] read it,
    /// with what that read missed read now. A forgotten or absent
    /// interaction is `NotFound`.
    pub(in crate::gateway) async fn pair_of(
        &self,
        team: &Team,
        read: PairRead,
        now: Timestamp,
    ) -> Result<Pair> {
        let PairRead {
            ikey,
            own,
            sguess,
            rguess,
            cguess,
            read,
            rread,
            cread,
            ..
        } = read;
        let Some(raw) = read.record else {
            return Err(Error::NotFound("no such interaction"));
        };
        let (rec, kept) = decode_interaction(&raw.value, &ikey)
            .map_err(|e| StoreError::Corrupt(format!("{ikey}: {e}")))?;
        let interaction = Loaded {
            key: ikey,
            version: raw.version,
            value: Some(rec),
        };
        let Some(rec) = interaction.value.as_ref() else {
            return Err(Error::NotFound("no such interaction"));
        };
        if !is_live(rec, team, now) {
            return Err(Error::NotFound("no such interaction"));
        }
        // Most interactions are their own subject: its key is at hand (the
        // record's id is the key's, so `own` is its own subject's).
        let named = named_subject_key(team, rec);
        let is_named = named.is_some();
        let skey = named.unwrap_or(own);
        let subject = match read.companion {
            Some((ckey, raw)) if ckey == skey => Loaded::parse(skey, raw)?,
            _ => {
                // Neither the store nor this process knew it: remembered
                // for the next read (or forgotten, when the guess was stale).
                if is_named {
                    self.subject_keys.remember(&interaction.key, &skey);
                } else if sguess.is_some() {
                    self.subject_keys.forget(&interaction.key);
                }
                Loaded::parse(skey.clone(), read_one(self, &skey).await?)?
            }
        };
        let recognition = match recognition_key(&self.config, team, rec) {
            None => None,
            Some(rkey) => {
                Some(recognition_read(self, &interaction.key, rkey, rguess, rread).await?)
            }
        };
        let remembered =
            load_remembered(self, team, rec, recognition.as_ref(), (cguess, cread), now).await?;
        Ok(Pair {
            interaction,
            subject,
            recognition,
            remembered,
            kept,
        })
    }

    /// Loads subject records for many interactions in one round trip.
    pub(in crate::gateway) async fn load_subjects(
        &self,
        team: &Team,
        recs: &[&InteractionRecord],
    ) -> Result<Vec<Option<SubjectRecord>>> {
        let skeys: Vec<String> = recs
            .iter()
            .map(|r| keys::subject(&team.keyspace, &r.subject()))
            .collect();
        if skeys.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self.store.get(&skeys).await?;
        skeys
            .into_iter()
            .zip(raw)
            .map(|(k, r)| Loaded::<SubjectRecord>::parse(k, r).map(|l| l.value))
            .collect()
    }
}

/// The subject of the customer `recognition` remembers, when a view
/// of `rec` needs it ([`remembered_subject_key`]): `read` is the
/// guess read beside the interaction and what it found.
async fn load_remembered(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    recognition: Option<&Loaded<Recognition>>,
    read: (Option<String>, Option<Option<Versioned>>),
    now: Timestamp,
) -> Result<Option<Loaded<SubjectRecord>>> {
    let remembers = recognition.and_then(|r| Some((&r.key, r.value.as_ref()?)));
    let Some((rkey, r)) = remembers else {
        return Ok(None);
    };
    let customer_ref = rec.customer_ref.as_deref();
    let Some(ckey) = remembered_subject_key(team, customer_ref, Some(r), now) else {
        return Ok(None);
    };
    let raw = match read {
        (Some(guess), Some(raw)) if guess == ckey => raw,
        _ => {
            core.remembered_subjects.remember(rkey, &ckey);
            let mut raw = core.store.get(std::slice::from_ref(&ckey)).await?;
            raw.pop().flatten()
        }
    };
    Ok(Some(Loaded::parse(ckey, raw)?))
}

/// The ops that write an interaction, and the bookkeeping its stored form
/// then holds (to hand over with the record, see `work`). Its ops are what
/// it iterates over.
pub struct Written {
    pub ops: Vec<Op>,
    pub kept: Bookkeeping,
}

impl IntoIterator for Written {
    type Item = Op;
    type IntoIter = std::vec::IntoIter<Op>;
    fn into_iter(self) -> Self::IntoIter {
        self.ops.into_iter()
    }
}

/// The ops that write an interaction back over `read` (at version
/// `expected`, with its stored bookkeeping `kept`; `None` and nothing for a
/// new one): the record itself; what points to it (its conversation key,
/// the team's listing, its customers' indexes) when their margin runs out
/// or its customers changed; and its due time.
pub fn write_interaction(
    team: &Team,
    expected: u64,
    read: Option<&InteractionRecord>,
    kept: Bookkeeping,
    rec: &mut InteractionRecord,
    now: Timestamp,
) -> Result<Written> {
    rec.last_write_at = now;
    // A call's record goes in the commit that ends its challenge.
    let read_challenge = read.and_then(|r| r.challenge.as_ref());
    let ended = crate::domain::challenge::ended_call(read_challenge, rec.challenge.as_mut(), now);
    // The due queue holds what the write of `read` left there, as its
    // stored form says. A record an earlier version wrote does not say, and
    // its due time under today's settings may not be the one it was queued
    // at: what is due is queued again (from then on the record says, until
    // an earlier version writes it again).
    let mut written = interaction_ops(team, expected, read, kept, rec, now)?;
    if let Some(call) = ended {
        written.ops.push(Op::Delete {
            key: keys::gather(&team.keyspace, &call.channel, call.gather.as_str()),
            expected: call.version,
        });
    }
    Ok(written)
}

/// The customer ids an interaction is indexed under: its `customer_ref`, and
/// whom it is authenticated as, stepping up for, or waiting to bind.
fn customer_ids(rec: &InteractionRecord) -> impl Iterator<Item = &String> {
    rec.customer_ref
        .iter()
        .chain(rec.auth.as_ref().and_then(|a| a.customer.get("id")))
        .chain(rec.step_up.as_ref().and_then(|p| p.customer.get("id")))
        .chain(rec.binding.as_ref().and_then(|b| b.customer.get("id")))
}

/// How much longer than the record what points to it is kept when a write
/// extends it: a quarter of `interaction_ttl`, at most an hour.
fn index_margin(s: &Settings) -> Duration {
    (s.interaction_ttl.get() / 4).min(Duration::from_secs(3600))
}

/// The ops of [`write_interaction`] without stamping a write: for the
/// sweeper's announcements, which are nobody's write and must not keep the
/// interaction alive. `kept`: the stored form's bookkeeping as the commit
/// leaves it before this write; its `due_held` is the due time the team's
/// due queue holds for it (none when this commit takes its entry off the
/// queue): a due time it does not hold is queued.
pub fn interaction_ops(
    team: &Team,
    expected: u64,
    read: Option<&InteractionRecord>,
    kept: Bookkeeping,
    rec: &InteractionRecord,
    now: Timestamp,
) -> Result<Written> {
    let Bookkeeping {
        indexed_until,
        due_held: held,
    } = kept;
    let s = team.settings_for(&rec.channel);
    // The store keeps the record exactly as long as it is alive: until
    // `last_write_at + interaction_ttl`. Writes that are not the customer's
    // or a caller's (expiry announcements) leave `last_write_at`, and so
    // this end, where it was.
    let end = rec.last_write_at.plus(s.interaction_ttl.get());
    let ttl = end.since(now).max(Duration::from_secs(1));
    // What points here must live at least as long. It is extended past
    // that end by a margin, so the writes that leave it half the margin
    // beyond their end leave it be (up to nine store calls fewer each); that
    // half absorbs another writer's clock or a commit sent late. A reader
    // that follows it to a record already gone finds nothing, as it would
    // after an expiry.
    let margin = index_margin(s);
    let kept_until = indexed_until.filter(|until| *until >= end.plus(margin / 2));
    let extend = kept_until.is_none();
    let until = kept_until.unwrap_or(end.plus(margin));
    let kept = until.since(now);
    // A customer it was not indexed under is added at once (for as long as
    // the rest); one it no longer names stays until its entry expires (a
    // logout of everywhere checks each interaction it finds).
    let new_customers = read.is_none_or(|read| !customer_ids(read).eq(customer_ids(rec)));
    // Written naming the key of its subject (its "companion"), so the
    // store reads both in one round trip; the domain record knows no store
    // keys. An interaction that is its own subject names none: the reader
    // gives that key as the default.
    let companion = named_subject_key(team, rec);
    // The queue holds what this commit leaves there, which its record says.
    let (queue, due_held) = due_op(&team.keyspace, held, rec, s, now);
    let bookkeeping = Bookkeeping {
        indexed_until: Some(until),
        due_held,
    };
    let text = encode_interaction(rec, bookkeeping, companion.clone())?;
    let mut ops = vec![put_text(
        &keys::interaction(&team.keyspace, rec.id),
        expected,
        text,
        Some(ttl),
        companion,
    )];
    ops.extend(pointers(team, rec, extend, new_customers, kept));
    ops.extend(queue);
    Ok(Written {
        ops,
        kept: bookkeeping,
    })
}

/// The ops that keep what points to `rec` alive for `kept`: its
/// conversation and the team's index when they are `extend`ed, and its
/// customers' indexes then too or when it names `new_customers`.
fn pointers(
    team: &Team,
    rec: &InteractionRecord,
    extend: bool,
    new_customers: bool,
    kept: Duration,
) -> Vec<Op> {
    let mut ops = Vec::new();
    if extend {
        // The conversation keeps pointing here for as long as the record lives.
        ops.push(Op::Touch {
            key: keys::conversation(&team.keyspace, &rec.channel, &rec.conversation_id),
            ttl: kept,
        });
        ops.push(Op::IndexAdd {
            key: keys::interactions_index(&team.keyspace),
            member: rec.id.to_string(),
            score: rec.created_at.unix_millis(),
            ttl: kept,
        });
    }
    if extend || new_customers {
        // Scored by creation, which never changes: a walk through a
        // customer's index by cursor (a logout of everywhere) meets each
        // entry once, however its interactions are written meanwhile.
        for cid in customer_ids(rec) {
            ops.push(Op::IndexAdd {
                key: keys::customer_index(&team.keyspace, cid),
                member: rec.id.to_string(),
                score: rec.created_at.unix_millis(),
                ttl: kept,
            });
        }
    }
    ops
}

/// Schedules what is next due of `rec`'s current authentication
/// ([`InteractionRecord::next_announcement_at`]: the expiry notice while
/// one is to come, else its end; nothing once the expiry is announced) in
/// `team`'s due queue, unless the queue holds it already (`held`). Answers
/// the op, if any, and the due time the queue then holds for `rec` (none
/// when nothing is due). A write whose due time is the one held (that
/// changes neither the end nor what was announced, under the settings it
/// was queued under) queues nothing; any other moves the entry.
///
/// One entry per interaction, `x:<id>` (the name earlier versions gave the
/// expiry's, so they handle it too); the sweeper announces what is due
/// when it comes (src/gateway/expiry.rs).
fn due_op(
    team: &str,
    held: Option<Timestamp>,
    rec: &InteractionRecord,
    s: &Settings,
    now: Timestamp,
) -> (Option<Op>, Option<Timestamp>) {
    let Some(due) = rec.next_announcement_at(s) else {
        return (None, None);
    };
    if held == Some(due) {
        return (None, held);
    }
    // Keep the due queue an hour past the last due time it holds (a due
    // time is never after the end).
    let end = rec.auth_ends_at(s).unwrap_or(due);
    let ttl = end.since(now) + Duration::from_secs(3600);
    let op = Op::QueueAdd {
        key: keys::due_queue(team),
        member: format!("x:{}", rec.id),
        score: due.unix_millis(),
        ttl,
    };
    (Some(op), Some(due))
}

/// One key of the store, read on its own.
async fn read_one(core: &Core, key: &str) -> Result<Option<Versioned>> {
    Ok(core.store.get(&[key.to_string()]).await?.pop().flatten())
}

/// The conversation's recognition at `rkey`: as read beside its
/// interaction when this process guessed its key (`guess`, read as
/// `read`), else read now and its key remembered for the next read.
async fn recognition_read(
    core: &Core,
    ikey: &str,
    rkey: String,
    guess: Option<String>,
    read: Option<Option<Versioned>>,
) -> Result<Loaded<Recognition>> {
    let raw = match (guess, read) {
        (Some(guess), Some(raw)) if guess == rkey => raw,
        _ => {
            core.recognition_keys.remember(ikey, &rkey);
            read_one(core, &rkey).await?
        }
    };
    Loaded::parse(rkey, raw)
}

/// The ops that write what a conversation remembers over `read`: the
/// record, living until it is forgotten, and its customer's index entry;
/// or its deletion. Also the record as the commit leaves it.
pub fn recognition_ops(
    team: &Team,
    read: &Loaded<Recognition>,
    next: Option<&Recognition>,
    now: Timestamp,
) -> Result<(Vec<Op>, Loaded<Recognition>)> {
    let Some(next) = next else {
        let op = Op::Delete {
            key: read.key.clone(),
            expected: read.version,
        };
        let gone = Loaded {
            key: read.key.clone(),
            version: 0,
            value: None,
        };
        return Ok((vec![op], gone));
    };
    let ttl = next.until.since(now).max(Duration::from_secs(1));
    let op = put(
        &read.key,
        read.version,
        &StoredRecognition::from(next),
        Some(ttl),
    )?;
    let version = match &op {
        Op::Put { version, .. } => *version,
        _ => 0,
    };
    let index = Op::IndexAdd {
        key: keys::recognitions_of(&team.keyspace, &next.customer_id),
        member: read.key.clone(),
        score: next.authenticated_at.unix_millis(),
        ttl,
    };
    let written = Loaded {
        key: read.key.clone(),
        version,
        value: Some(next.clone()),
    };
    Ok((vec![op, index], written))
}

/// The ops that write a subject back, or delete it when nothing in it matters.
pub fn write_subject(
    loaded: &Loaded<SubjectRecord>,
    subject: &SubjectRecord,
    s: &Settings,
    now: Timestamp,
) -> Result<Vec<Op>> {
    match subject.keep_for(now, &s.lockout, &s.otp) {
        Some(d) if d.is_zero() => {
            // Deleting at version 0 is a check that it is still absent, so
            // a concurrent lockout makes this commit conflict.
            Ok(vec![Op::Delete {
                key: loaded.key.clone(),
                expected: loaded.version,
            }])
        }
        ttl => {
            let mut op = put(
                &loaded.key,
                loaded.version,
                &StoredSubject::from(subject),
                ttl,
            )?;
            // Unchanged: the write is a check that nobody else wrote it, and
            // keeps its version, so the subject's other interactions (queued
            // apart, see `work`) do not conflict with a write that changed
            // nothing.
            if let Op::Put { version, .. } = &mut op {
                if loaded.version != 0 && loaded.value.as_ref() == Some(subject) {
                    *version = loaded.version;
                }
            }
            Ok(vec![op])
        }
    }
}

/// The one retry of a read-modify-write outside the unit of work (a
/// record of its own key: a destination's sends, a message's record, a
/// recognition): [`crate::store::retry`] with the gateway's error type.
/// Runs `attempt` until it commits (`Some`), re-reading after each
/// conflict (`None`), at most [`crate::store::MAX_RETRIES`] times with
/// [`crate::store::Backoff`]'s pauses, then 503 `store_unavailable`.
pub async fn retry<T, F, Fut>(attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    crate::store::retry::<T, Error, F, Fut>(attempt).await
}

#[cfg(test)]
mod tests;

/// The key of `rec`'s recognized conversation, when its channel
/// remembers one (`Config::recognize_for`).
pub(in crate::gateway) fn recognition_key(
    config: &crate::config::Config,
    team: &Team,
    rec: &InteractionRecord,
) -> Option<String> {
    config.recognize_for(team, &rec.channel)?;
    Some(keys::recognition(
        &team.keyspace,
        &rec.channel,
        &rec.conversation_id,
    ))
}
