//! The teams' due indexes on Redis (docs/architecture.md#many-teams): a
//! sorted set per index, team → the earliest time its queue holds, and one
//! of the teams held, team → until when, both under the hash tag `{~due}`
//! (their own slot on a Cluster). A write to a team's queue is in the
//! team's slot; on one Redis its note here is an op of the same commit
//! script ([`RedisStore::add_due_notes`], decision 0175); on a Cluster it
//! is noted apart, before the write and again after it
//! ([`RedisStore::note_apart`], `redis/due_note.lua`, decision 0190), each
//! note waiting at most [`NOTE_DEADLINE`] and kept in this instance's
//! journal (`redis/note_journal.rs`) when it fails. Taking and releasing
//! teams are `redis/due_claim.lua` and `redis/due_release.lua`.
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ::redis::{cmd, Script, Value};

use super::note_journal::{NoteJournal, Notes};
use super::{entries, unexpected, RedisStore, KEEPER_SCORE};
use crate::store::{keys, Op, StoreError};

pub(super) const DUE_CLAIM_LUA: &str = include_str!("due_claim.lua");
pub(super) const DUE_RELEASE_LUA: &str = include_str!("due_release.lua");
pub(super) const DUE_NOTE_LUA: &str = include_str!("due_note.lua");

/// A due index's life past its last write (every note, take and release
/// renews it): far longer than any instance is down between restarts; an
/// index lost anyway is rebuilt by the start-up rescan.
const INDEX_TTL_MS: u64 = 7 * 86_400 * 1000;

/// How long a note made apart from its write waits for the index's
/// master: a request never waits on it longer (the master may hang), and
/// a note that did not land by then is kept in the journal.
pub(super) const NOTE_DEADLINE: Duration = Duration::from_millis(50);

/// Teams per call when the journal lands what it keeps.
const LAND_CHUNK: usize = 1_000;

/// When a note made apart is made: before its write or after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum NoteMoment {
    Before,
    After,
}

impl NoteMoment {
    /// Its bit in [`Due::skipped`].
    fn bit(self) -> u8 {
        match self {
            NoteMoment::Before => 1,
            NoteMoment::After => 2,
        }
    }
}

/// The store's part of the due indexes: their scripts, the notes owed, and
/// (tests only) the notes to leave out.
pub(super) struct Due {
    claim: Script,
    release: Script,
    note: Script,
    journal: Mutex<NoteJournal>,
    /// [`NoteMoment::bit`]s of the notes made apart that are left out, as
    /// an instance killed there would leave them (tests of that; 0 else).
    skipped: AtomicU8,
}

impl Due {
    pub(super) fn new() -> Self {
        Due {
            claim: Script::new(DUE_CLAIM_LUA),
            release: Script::new(DUE_RELEASE_LUA),
            note: Script::new(DUE_NOTE_LUA),
            journal: Mutex::new(NoteJournal::default()),
            skipped: AtomicU8::new(0),
        }
    }

    /// Leaves out the notes made apart at `moment` from now on.
    pub(super) fn skip(&self, moment: NoteMoment) {
        self.skipped.fetch_or(moment.bit(), Ordering::Relaxed);
    }

    fn skips(&self, moment: NoteMoment) -> bool {
        self.skipped.load(Ordering::Relaxed) & moment.bit() != 0
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, NoteJournal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `notes`, which did not land (`cause`): one warning when notes
    /// start failing, none per note.
    fn keep(&self, notes: Notes, cause: &str) {
        if self.journal().keep(notes) {
            tracing::warn!(
                %cause,
                "due notes failing: this instance keeps them and lands them at its next take of \
                 the due index; requests go on without waiting for the index"
            );
        }
    }
}

/// `queued` (queue, time) as due notes: per index, each team once at its
/// earliest time. Queues no index lists are left out.
fn notes_of<'a>(queued: impl IntoIterator<Item = (&'a str, i64)>) -> Notes {
    let mut notes: Notes = Vec::new();
    for (queue, at) in queued {
        let Some((index, team)) = keys::due_index_of(queue) else {
            continue;
        };
        let pos = notes.iter().position(|(i, _)| *i == index);
        let pos = pos.unwrap_or_else(|| {
            notes.push((index, Vec::new()));
            notes.len() - 1
        });
        let teams = &mut notes[pos].1;
        match teams.iter_mut().find(|(t, _)| t == team) {
            Some(note) => note.1 = note.1.min(at),
            None => teams.push((team.to_string(), at)),
        }
    }
    notes
}

impl RedisStore {
    /// Notes the teams whose drained queue `queued` adds to or moves in
    /// (queue, time), apart from the write, at `moment`: a Cluster's commit
    /// notes before its write and after it, a move before and after
    /// (decision 0190). Waits at most [`NOTE_DEADLINE`], and not at all
    /// while notes fail: a note that does not land is kept in the journal,
    /// landed at the next take of the index, and the caller goes on.
    pub(super) async fn note_apart<'a>(
        &self,
        queued: impl IntoIterator<Item = (&'a str, i64)>,
        moment: NoteMoment,
    ) {
        let notes = notes_of(queued);
        if notes.is_empty() || self.due.skips(moment) {
            return;
        }
        if self.due.journal().failing() {
            self.due.keep(notes, "the due index failed before");
            return;
        }
        let landing = futures::future::try_join_all(
            notes
                .iter()
                .map(|(index, teams)| self.note_due(index, teams)),
        );
        match tokio::time::timeout(NOTE_DEADLINE, landing).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => self.due.keep(notes, &e.to_string()),
            Err(_) => self.due.keep(
                notes,
                &format!("no answer within {} ms", NOTE_DEADLINE.as_millis()),
            ),
        }
    }

    /// Lands the notes the journal keeps, before a take of a due index:
    /// an error when they still fail (the take fails with it, so its
    /// worker knows the index failed). The end of a failure is told once,
    /// with how many notes were kept.
    async fn land_owed(&self) -> Result<(), StoreError> {
        // (Empty while another take lands them: that one tells the end.)
        let owed = {
            let mut journal = self.due.journal();
            if journal.is_empty() {
                return Ok(());
            }
            journal.take()
        };
        for (index, teams) in &owed {
            for chunk in teams.chunks(LAND_CHUNK) {
                if let Err(e) = self.note_due(index, chunk).await {
                    self.due.journal().put_back(owed);
                    return Err(e);
                }
            }
        }
        let ended = self.due.journal().landed();
        if let Some((secs, notes)) = ended {
            tracing::warn!(
                failing_secs = secs,
                notes,
                "due notes land again: every note kept meanwhile is in the due index"
            );
        }
        Ok(())
    }

    /// On one Redis: the due notes of the queues `ops` add to, as ops of
    /// the commit script `call` (one per team and index, at its earliest
    /// add), so the commit and its notes are one round trip and one atomic
    /// write. A note renews its index's life only when this process has
    /// not in the last minute (the renewals of `started`), or when it
    /// lists its team anew (the key may be new): answers the indexes it
    /// renews, for the commit to record once applied (`Renewals::given`).
    pub(super) fn add_due_notes(
        &self,
        call: &mut ::redis::ScriptInvocation<'_>,
        ops: &[Op],
        started: std::time::Instant,
    ) -> Vec<&'static str> {
        let mut renewing = Vec::new();
        for (index, teams) in notes_of(Self::queued(ops)) {
            let renew = self
                .renewals
                .due(index, started, super::renewals::BY_PERIOD);
            if renew {
                renewing.push(index);
            }
            for (team, at) in teams {
                call.key(self.key(index))
                    .arg("N")
                    .arg(INDEX_TTL_MS)
                    .arg(if renew { "1" } else { "0" })
                    .arg(at)
                    .arg(team);
            }
        }
        renewing
    }

    /// The queues a commit's ops add to, with each add's time.
    pub(super) fn queued(ops: &[Op]) -> impl Iterator<Item = (&str, i64)> {
        ops.iter().filter_map(|op| match op {
            Op::QueueAdd { key, score, .. } => Some((key.as_str(), *score)),
            _ => None,
        })
    }

    pub(super) async fn note_due(
        &self,
        index: &str,
        teams: &[(String, i64)],
    ) -> Result<(), StoreError> {
        if teams.is_empty() {
            return Ok(());
        }
        let mut call = self.due.note.prepare_invoke();
        call.key(self.key(index)).arg(INDEX_TTL_MS);
        for (team, at) in teams {
            call.arg(*at).arg(team);
        }
        self.conn.invoke("due_teams_note", &call).await.map(drop)
    }

    pub(super) async fn claim_due_teams(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.land_owed().await?;
        let mut call = self.due.claim.prepare_invoke();
        call.key(self.key(index))
            .key(self.key(&keys::due_index_held(index)))
            .arg(now)
            .arg(limit)
            .arg(hold_until)
            .arg(INDEX_TTL_MS)
            .arg(self.answer_by());
        match self.conn.invoke("due_teams_claim", &call).await? {
            Value::Array(teams) => teams
                .iter()
                .map(|t| {
                    super::text(t)
                        .map(str::to_owned)
                        .ok_or_else(|| unexpected("due_teams_claim"))
                })
                .collect(),
            _ => Err(unexpected("due_teams_claim")),
        }
    }

    pub(super) async fn release_due_team(
        &self,
        index: &str,
        team: &str,
        held_until: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut call = self.due.release.prepare_invoke();
        call.key(self.key(index))
            .key(self.key(&keys::due_index_held(index)))
            .arg(team)
            .arg(held_until)
            .arg(next.map_or_else(String::new, |at| at.to_string()))
            .arg(INDEX_TTL_MS);
        self.conn.invoke("due_teams_release", &call).await.map(drop)
    }

    /// One `ZRANGEBYSCORE … LIMIT 0 1` per queue, below the keeper, sent
    /// together (the connection pipelines them).
    pub(super) async fn first_of_queues(
        &self,
        queues: &[String],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let reads = queues.iter().map(|queue| {
            let mut range = cmd("ZRANGEBYSCORE");
            range
                .arg(self.key(queue))
                .arg("-inf")
                .arg(format!("({KEEPER_SCORE}"))
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(1);
            async move {
                let reply = self.conn.query("queues_first", &range).await?;
                Ok::<_, StoreError>(entries("queues_first", reply)?.first().map(|e| e.score))
            }
        });
        futures::future::try_join_all(reads).await
    }
}
