//! The verbs both doors share (docs/architecture.md#the-second-door): a
//! decision in a unit of work (`work::Work`) and one in a change
//! (`change::Change`) ask for the same writes by the same names, typed —
//! a record put where it was read, created, claimed or deleted; an index
//! entry added or removed; a due entry scheduled or cancelled — and the
//! core alone turns them into the store's ops. A family never names an
//! op (`tools/door_rules.py` counts it).
use std::time::Duration;

use serde::Serialize;

use super::records::{put_versioned, write_subject, Loaded};
use crate::config::Settings;
use crate::domain::subject::SubjectRecord;
use crate::error::Result;
use crate::store::{keys, Op};
use crate::time::Timestamp;

/// One write a decision asks for, as the verbs of [`Writes`] build it:
/// only the core makes one.
pub struct Write {
    pub(super) op: Op,
    /// A create whose key taken is an answer, not a conflict
    /// ([`Writes::claim`]).
    pub(super) claim: bool,
}

impl Write {
    /// A write of the core's own op.
    pub(super) fn op(op: Op) -> Self {
        Write { op, claim: false }
    }
}

/// An entry of a team's due queue, by what it is: each kind names its
/// entries (`<kind>:<name>`, told apart by the sweeper's `handle`), the
/// core writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    queue: String,
    member: String,
}

impl DueEntry {
    /// Entry `member` (`<kind>:<name>`) of `team`'s due queue.
    pub fn new(team: &str, member: impl Into<String>) -> Self {
        DueEntry {
            queue: keys::due_queue(team),
            member: member.into(),
        }
    }

    /// The entry as queued.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The op that leaves it due at `at`, the queue living `ttl` at least.
    pub(super) fn scheduled(&self, at: Timestamp, ttl: Duration) -> Op {
        Op::QueueAdd {
            key: self.queue.clone(),
            member: self.member.clone(),
            score: at.unix_millis(),
            ttl,
        }
    }

    /// The op that takes it off the queue.
    pub(super) fn cancelled(&self) -> Op {
        Op::QueueRemove {
            key: self.queue.clone(),
            member: self.member.clone(),
        }
    }
}

/// What a decision may write beside its own records, in the same commit:
/// the same verbs in a unit of work (`Work`) and in a change (`Change`).
pub trait Writes {
    /// Takes `write` into the decision's commit (the verbs below build
    /// it).
    fn take(&mut self, write: Write);

    /// Writes `value` where `at` was read (its version checked), living
    /// `ttl`: the version it will have.
    fn put<R, S: Serialize>(
        &mut self,
        at: &Loaded<R>,
        value: &S,
        ttl: Option<Duration>,
    ) -> Result<u64> {
        let (op, version) = put_versioned(&at.key, at.version, value, ttl)?;
        self.take(Write::op(op));
        Ok(version)
    }

    /// Writes `value` under `key`, which it did not read, only if no
    /// record is there (another writer first: decided again), living
    /// `ttl`: for a key of fresh random bytes (a state, a session, a
    /// call's record). The version it will have.
    fn create<S: Serialize>(&mut self, key: &str, value: &S, ttl: Option<Duration>) -> Result<u64> {
        let (op, version) = put_versioned(key, 0, value, ttl)?;
        self.take(Write::op(op));
        Ok(version)
    }

    /// Creates `value` under `key` as a claim (a one-time id, a marker),
    /// without a read of the key beforehand: the version it will have.
    /// When the key is taken already nothing is written, and that is an
    /// answer: in a unit of work the decision is made again knowing it
    /// (`Work::claim_taken`); in `change::once` the answer is `None`; in
    /// `Core::change` (which would decide the same again) an error.
    fn claim<S: Serialize>(&mut self, key: &str, value: &S, ttl: Option<Duration>) -> Result<u64> {
        let (op, version) = put_versioned(key, 0, value, ttl)?;
        self.take(Write { op, claim: true });
        Ok(version)
    }

    /// Deletes the record `at` names, as read (its version checked).
    fn delete<R>(&mut self, at: &Loaded<R>) {
        self.take(Write::op(Op::Delete {
            key: at.key.clone(),
            expected: at.version,
        }));
    }

    /// Adds (or moves) `member` in the sorted index `index`, scored by
    /// `at`; the index lives `ttl` at least.
    fn index_add(&mut self, index: &str, member: &str, at: Timestamp, ttl: Duration) {
        self.take(Write::op(Op::IndexAdd {
            key: index.to_string(),
            member: member.to_string(),
            score: at.unix_millis(),
            ttl,
        }));
    }

    /// Takes `member` out of the sorted index `index`.
    fn index_remove(&mut self, index: &str, member: &str) {
        self.take(Write::op(Op::IndexRemove {
            key: index.to_string(),
            member: member.to_string(),
        }));
    }

    /// Leaves `entry` due at `at` (queued, or moved there); its queue
    /// lives `ttl` at least.
    fn schedule(&mut self, entry: &DueEntry, at: Timestamp, ttl: Duration) {
        self.take(Write::op(entry.scheduled(at, ttl)));
    }

    /// Takes `entry` off its due queue.
    fn cancel(&mut self, entry: &DueEntry) {
        self.take(Write::op(entry.cancelled()));
    }
}

/// Writes a subject back in `w`, or deletes it when nothing in it
/// matters (`records::write_subject`), for a change outside its
/// interactions' units of work (an unlock).
pub(in crate::gateway) fn subject_written(
    w: &mut impl Writes,
    loaded: &Loaded<SubjectRecord>,
    subject: &SubjectRecord,
    s: &Settings,
    now: Timestamp,
) -> Result<()> {
    for op in write_subject(loaded, subject, s, now)? {
        w.take(Write::op(op));
    }
    Ok(())
}
