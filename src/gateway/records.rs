//! Typed access to the store: loading records with their versions and
//! building the ops that write them back, with the TTL each kind of record
//! lives for.
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use super::Gateway;
use crate::config::{Settings, Team};
use crate::domain::devices::CustomerDevices;
use crate::domain::interaction::InteractionRecord;
use crate::domain::recognition::Recognition;
use crate::domain::subject::SubjectRecord;
use crate::error::{Error, Result};
use crate::store::{keys, Op, StoreError, Versioned};
use crate::time::Timestamp;

/// A record as read, with the version to write it back against.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    pub key: String,
    pub version: u64,
    pub value: Option<T>,
}

/// A kind of record as the store holds it: its JSON, and what its key says
/// that the JSON leaves out.
pub trait Record: DeserializeOwned {
    /// Restores what the stored form leaves out because `key` names it
    /// (nothing, for most records). `None`: a key this record cannot be under.
    fn with_key(self, key: &str) -> Option<Self> {
        let _ = key;
        Some(self)
    }
}

impl Record for InteractionRecord {
    /// The id: the key's last segment (see [`keys::interaction`]).
    fn with_key(mut self, key: &str) -> Option<Self> {
        self.id = keys::interaction_id(key)?;
        Some(self)
    }
}

impl Record for SubjectRecord {}
impl Record for CustomerDevices {}
impl Record for crate::domain::destination::DestinationSends {}

impl<T: Record> Loaded<T> {
    pub fn parse(key: String, raw: Option<Versioned>) -> Result<Self> {
        match raw {
            None => Ok(Loaded {
                key,
                version: 0,
                value: None,
            }),
            Some(v) => {
                let value = serde_json::from_str::<T>(&v.value)
                    .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?
                    .with_key(&key)
                    .ok_or_else(|| StoreError::Corrupt(format!("{key}: not a key of its kind")))?;
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
    let value = serde_json::to_string(value)
        .map_err(|e| Error::internal_from("a record could not be encoded", e))?;
    Ok(Op::Put {
        key: key.to_string(),
        expected,
        version: crate::store::fresh_version(),
        value,
        ttl,
    })
}

/// An interaction together with its subject, both as read.
pub struct Pair {
    pub interaction: Loaded<InteractionRecord>,
    pub subject: Loaded<SubjectRecord>,
    /// What its conversation remembers (a recognized conversation), when
    /// its channel remembers any.
    pub recognition: Option<Loaded<Recognition>>,
}

impl Pair {
    pub fn rec(&self) -> Result<&InteractionRecord> {
        self.interaction
            .value
            .as_ref()
            .ok_or(Error::NotFound("no such interaction"))
    }
    /// Whether the interaction is `team`'s and not forgotten at `now` (what
    /// [`Gateway::load_pair`] checks on a read), for records handed over.
    pub fn is_live(&self, team: &Team, now: Timestamp) -> bool {
        self.interaction
            .value
            .as_ref()
            .is_some_and(|rec| is_live(rec, team, now))
    }

    /// The interaction as bots, agents and events see it.
    pub fn view(&self, team: &Team, now: Timestamp) -> Result<super::InteractionView> {
        let rec = self.rec()?;
        Ok(super::InteractionView::build_recognized(
            rec,
            self.subject.value.as_ref(),
            self.recognition.as_ref().and_then(|r| r.value.as_ref()),
            team.settings_for(&rec.channel),
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
/// from the interaction's id ([`Gateway::load_pair`]); its writer leaves it
/// out ([`write_interaction`]).
fn named_subject_key(team: &Team, rec: &InteractionRecord) -> Option<String> {
    rec.customer_ref
        .as_deref()
        .map(|r| keys::subject(&team.id, r))
}

/// Whether `rec` is `team`'s and not forgotten at `now`: a read of anything
/// else answers `NotFound`.
fn is_live(rec: &InteractionRecord, team: &Team, now: Timestamp) -> bool {
    rec.team == team.id && !rec.is_forgotten(now, team.settings_for(&rec.channel))
}

impl Gateway {
    /// Loads an interaction of `team` and its subject. A forgotten or
    /// absent interaction is `NotFound`.
    pub(super) async fn load_pair(&self, team: &Team, id: Uuid, now: Timestamp) -> Result<Pair> {
        let ikey = keys::interaction(&team.id, id);
        // One round trip: the record names its subject as its companion,
        // unless that is its own subject, which it leaves out.
        let own = keys::subject(&team.id, &crate::domain::interaction::own_subject(id));
        // And, where its channel remembers who authenticated in the
        // conversation, that record too, once this process has seen the
        // interaction (its conversation never changes).
        let rguess = self.recognition_keys.get(&ikey);
        let (read, mut more) = self
            .store
            .get_with_companion_and(&ikey, Some(&own), rguess.as_slice())
            .await?;
        let interaction: Loaded<InteractionRecord> = Loaded::parse(ikey, read.record)?;
        let Some(rec) = interaction.value.as_ref() else {
            return Err(Error::NotFound("no such interaction"));
        };
        if !is_live(rec, team, now) {
            return Err(Error::NotFound("no such interaction"));
        }
        // Most interactions are their own subject: its key is at hand (the
        // record's id is the key's, so `own` is its own subject's).
        let skey = named_subject_key(team, rec).unwrap_or(own);
        let subject = match read.companion {
            Some((ckey, raw)) if ckey == skey => Loaded::parse(skey, raw)?,
            _ => {
                let mut raw = self.store.get(std::slice::from_ref(&skey)).await?;
                Loaded::parse(skey, raw.pop().flatten())?
            }
        };
        let recognition = match self.recognition_key(team, rec) {
            None => None,
            Some(rkey) => {
                let raw = match (rguess, more.pop()) {
                    (Some(guess), Some(raw)) if guess == rkey => raw,
                    _ => {
                        self.recognition_keys.remember(&interaction.key, &rkey);
                        let mut raw = self.store.get(std::slice::from_ref(&rkey)).await?;
                        raw.pop().flatten()
                    }
                };
                Some(Loaded::parse(rkey, raw)?)
            }
        };
        Ok(Pair {
            interaction,
            subject,
            recognition,
        })
    }

    /// Loads subject records for many interactions in one round trip.
    pub(super) async fn load_subjects(
        &self,
        team: &Team,
        recs: &[&InteractionRecord],
    ) -> Result<Vec<Option<SubjectRecord>>> {
        let skeys: Vec<String> = recs
            .iter()
            .map(|r| keys::subject(&team.id, &r.subject()))
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

/// An interaction as stored: the record and, when it is not the
/// interaction's own (the store's default, see [`Gateway::load_pair`]),
/// its subject's key.
#[derive(Serialize)]
struct Stored<'a> {
    #[serde(flatten)]
    rec: &'a InteractionRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    companion: Option<String>,
}

/// The ops that write an interaction back over `read` (at version
/// `expected`; `None` for a new one): the record itself; what points to it
/// (its conversation key, the team's listing, its customers' indexes) when
/// their margin runs out or its customers changed; and its due times.
pub fn write_interaction(
    team: &Team,
    expected: u64,
    read: Option<&InteractionRecord>,
    rec: &mut InteractionRecord,
    now: Timestamp,
) -> Result<Vec<Op>> {
    rec.last_write_at = now;
    interaction_ops(team, expected, read, rec, now)
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
/// interaction alive.
pub fn interaction_ops(
    team: &Team,
    expected: u64,
    read: Option<&InteractionRecord>,
    rec: &mut InteractionRecord,
    now: Timestamp,
) -> Result<Vec<Op>> {
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
    let kept_until = rec
        .indexed_until
        .filter(|until| *until >= end.plus(margin / 2));
    let extend = kept_until.is_none();
    let until = kept_until.unwrap_or(end.plus(margin));
    rec.indexed_until = Some(until);
    let kept = until.since(now);
    let rec = &*rec;
    // A customer it was not indexed under is added at once (for as long as
    // the rest); one it no longer names stays until its entry expires (a
    // logout of everywhere checks each interaction it finds).
    let new_customers = read.is_none_or(|read| !customer_ids(read).eq(customer_ids(rec)));
    // Stored with the key of its subject (its "companion"), so the store
    // reads both in one round trip; the domain record knows no store keys.
    // An interaction that is its own subject leaves it out: the reader
    // gives that key as the default.
    let stored = Stored {
        rec,
        companion: named_subject_key(team, rec),
    };
    let mut ops = vec![put(
        &keys::interaction(&team.id, rec.id),
        expected,
        &stored,
        Some(ttl),
    )?];
    if extend {
        // The conversation keeps pointing here for as long as the record lives.
        ops.push(Op::Touch {
            key: keys::conversation(&team.id, &rec.channel, &rec.conversation_id),
            ttl: kept,
        });
        ops.push(Op::IndexAdd {
            key: keys::interactions_index(&team.id),
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
                key: keys::customer_index(&team.id, cid),
                member: rec.id.to_string(),
                score: rec.created_at.unix_millis(),
                ttl: kept,
            });
        }
    }
    ops.extend(due_ops(team, rec, s, now));
    Ok(ops)
}

/// Schedules the expiry notice and the expiry of the current authentication.
fn due_ops(team: &Team, rec: &InteractionRecord, s: &Settings, now: Timestamp) -> Vec<Op> {
    let Some(end) = rec.auth_ends_at(s) else {
        return Vec::new();
    };
    if rec.expiry_announced == Some(end) {
        return Vec::new();
    }
    // Keep the due queue an hour past the last due time it holds.
    let ttl = end.since(now) + Duration::from_secs(3600);
    let mut ops = vec![Op::QueueAdd {
        key: keys::due_queue(&team.id),
        member: format!("x:{}", rec.id),
        score: end.unix_millis(),
        ttl,
    }];
    if let Some(notice) = s.expiry_notice.enabled() {
        if rec.expiring_announced != Some(end) {
            ops.push(Op::QueueAdd {
                key: keys::due_queue(&team.id),
                member: format!("n:{}", rec.id),
                score: end.minus(notice).unix_millis(),
                ttl,
            });
        }
    }
    ops
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
            let mut op = put(&loaded.key, loaded.version, subject, ttl)?;
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

/// [`crate::store::retry`] with the gateway's error type: runs `attempt`
/// until it commits (`Some`), re-reading after each conflict (`None`).
pub async fn retry<T, F, Fut>(attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    crate::store::retry::<T, Error, F, Fut>(attempt).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Option<Versioned> {
        Some(Versioned {
            version: 7,
            value: text.to_string(),
        })
    }

    /// An interaction's id is its key's: left out of the text, read from
    /// the key whatever the text says, and a key of another kind is a
    /// corrupt record, never a record with the nil id.
    #[test]
    fn an_interaction_takes_its_id_from_its_key() {
        let id = Uuid::now_v7();
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        let rec = InteractionRecord::new(id, "acme", "webchat", "c-1", now);
        let text = serde_json::to_string(&rec).expect("json");
        assert!(!text.contains(&id.to_string()), "{text}");
        let key = keys::interaction("acme", id);
        let read = Loaded::<InteractionRecord>::parse(key.clone(), raw(&text)).expect("read");
        assert_eq!((read.version, read.value), (7, Some(rec)));
        // An earlier version's record names an id: the key's is the one.
        let other = Uuid::now_v7();
        let long = text.replacen('{', &format!(r#"{{"id":"{other}","#), 1);
        let read = Loaded::<InteractionRecord>::parse(key, raw(&long)).expect("read long");
        assert_eq!(read.value.map(|r| r.id), Some(id));
        let elsewhere = Loaded::<InteractionRecord>::parse(keys::subject("acme", "x"), raw(&text));
        assert!(
            matches!(elsewhere, Err(Error::Internal(_))),
            "{elsewhere:?}"
        );
        // Records of other kinds read as they are.
        let subject = serde_json::to_string(&SubjectRecord::new("x")).expect("json");
        let read = Loaded::<SubjectRecord>::parse(keys::subject("acme", "x"), raw(&subject));
        assert_eq!(read.expect("subject").value, Some(SubjectRecord::new("x")));
    }
}
