//! One unit of work on an interaction (STYLE 21): load the interaction and
//! its subject in one round trip, let the use case decide on plain values,
//! write back what the decision touched, and commit it atomically — all of
//! it again, on fresh data, after a concurrent write. Every use case that
//! changes an existing interaction goes through [`Gateway::transact`], so
//! versions, TTLs and indexes are handled here, once.
use futures::future::BoxFuture;
use uuid::Uuid;

use super::records::{interaction_ops, write_interaction, write_subject};
use super::{Gateway, InteractionView};
use crate::config::{Settings, Team};
use crate::domain::interaction::InteractionRecord;
use crate::domain::subject::{SubjectRecord, SubjectView};
use crate::error::Result;
use crate::store::{Backoff, Commit, Op};
use crate::time::Timestamp;

/// What a use case decides on: copies of the records as read, to change.
pub struct Work<'a> {
    /// The settings of the interaction's channel.
    pub settings: &'a Settings,
    pub rec: InteractionRecord,
    subject: SubjectRecord,
    subject_used: bool,
    announcement: bool,
    also: Vec<Op>,
}

impl Work<'_> {
    /// The subject (a fresh one if it was never seen), for a decision that
    /// depends on it or changes it. The commit then writes it back — or, if
    /// unchanged, checks that nobody else did — so a concurrent lockout
    /// cannot slip past the decision.
    pub fn subject(&mut self) -> &mut SubjectRecord {
        self.subject_used = true;
        &mut self.subject
    }

    /// Writes `op` in the same commit (a used assertion id, validated
    /// devices).
    pub fn also(&mut self, op: Op) {
        self.also.push(op);
    }

    /// This write announces (an expiry notice) and is nobody's activity: it
    /// does not refresh `interaction_ttl`.
    pub fn as_announcement(&mut self) {
        self.announcement = true;
    }
}

/// What the use case wants done with its decision.
pub enum Step<T> {
    /// Commit what the decision changed, then answer `T`.
    Write(T),
    /// Like [`Step::Write`], but when the interaction did not change at all,
    /// write nothing (and so refresh no TTL).
    WriteIfChanged(T),
    /// Answer `T`; write nothing.
    Answer(T),
}

/// A finished unit of work: the answer and the records as they now stand.
pub struct Done<T> {
    pub value: T,
    pub view: InteractionView,
    pub rec: InteractionRecord,
    pub subject: SubjectView,
}

impl Gateway {
    /// Runs `decide` on interaction `id` of `team` and commits its decision
    /// atomically, retrying on fresh data after a concurrent write (a bounded
    /// number of times, then 503). `decide` may run several times: it must
    /// not have effects outside the [`Work`] (events and messages go after).
    /// An absent or forgotten interaction is `NotFound`.
    ///
    /// `decide` returns a boxed future (`|w| Box::pin(async move { .. })`)
    /// so that it may read the store too, and stays `Send`.
    pub(super) async fn transact<'c, T, F>(
        &self,
        team: &'c Team,
        id: Uuid,
        now: Timestamp,
        mut decide: F,
    ) -> Result<Done<T>>
    where
        F: for<'w> FnMut(&'w mut Work<'c>) -> BoxFuture<'w, Result<Step<T>>>,
    {
        let mut backoff = Backoff::default();
        loop {
            let pair = self.load_pair(team, id, now).await?;
            let read = pair.rec()?;
            let settings = team.settings_for(&read.channel);
            let mut w = Work {
                settings,
                rec: read.clone(),
                subject: pair.subject_or_new()?,
                subject_used: false,
                announcement: false,
                also: Vec::new(),
            };
            let (value, write) = match decide(&mut w).await? {
                Step::Write(v) => (v, true),
                Step::WriteIfChanged(v) => {
                    let changed = w.rec != *read || !w.also.is_empty();
                    (v, changed)
                }
                Step::Answer(v) => (v, false),
            };
            let done = |w: Work<'_>| Done {
                value,
                view: InteractionView::build(&w.rec, Some(&w.subject), settings, now),
                subject: w.subject.view(now, &settings.lockout),
                rec: w.rec,
            };
            if !write {
                return Ok(done(w));
            }
            let version = pair.interaction.version;
            let mut ops = if w.announcement {
                interaction_ops(team, version, &w.rec, now)?
            } else {
                write_interaction(team, version, &mut w.rec, now)?
            };
            if w.subject_used {
                ops.extend(write_subject(&pair.subject, &w.subject, settings, now)?);
            }
            ops.append(&mut w.also);
            match self.store.commit(ops).await? {
                Commit::Applied => return Ok(done(w)),
                Commit::Conflict { .. } => backoff.wait().await?,
            }
        }
    }
}
