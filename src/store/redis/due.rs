//! The teams' due indexes on Redis (docs/architecture.md#many-teams): a
//! sorted set per index, team → the earliest time its queue holds, and one
//! of the teams held, team → until when. On one Redis they are under the
//! hash tag `{~due}`, and a write's note there is an op of its commit
//! script ([`RedisStore::add_due_notes`], decision 0175). On a Cluster
//! each master has its own copy, under a tag in one of its slots
//! (`keys::due_index_on`, as the slot map says): a team is noted in the
//! copy of the master holding its own keys, apart from its write, before
//! it and again after it ([`RedisStore::note_apart`], `redis/due_note.lua`,
//! decision 0190), each note waiting at most [`NOTE_DEADLINE`] and kept in
//! this instance's journal (`redis/note_journal.rs`) when it fails; a take
//! reads every copy, each bounded by [`CLAIM_WAIT`], so a master that fails
//! holds up only its own teams (decision 0230). Taking and releasing teams
//! are `redis/due_claim.lua` and `redis/due_release.lua`.
use std::collections::{BTreeSet, HashMap};

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ::redis::{cmd, Script, Value};

use super::cluster::slot_of;
use super::note_journal::{NoteJournal, Teams};
use super::wire::{text, unexpected};
use super::{conn, RedisStore};
use crate::store::{keys, DueTaken, Op, StoreError};

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

/// On a Cluster, how long a take waits for each master's copy of the
/// index (the copies are read together): one that hangs delays the other
/// masters' teams by no more than this per take, and takes nothing when
/// it runs later (`due_claim.lua`'s deadline).
pub(super) const CLAIM_WAIT: Duration = Duration::from_millis(400);

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

/// Per slot, the tag number of its master's due indexes, as of a version
/// of the slot map (`None`: no master known for it, or no tag found).
type Tags = (u64, Arc<Vec<Option<u32>>>);

/// The store's part of the due indexes: their scripts, the notes owed, the
/// copies known on a Cluster and (tests only) the notes to leave out.
pub(super) struct Due {
    claim: Script,
    release: Script,
    note: Script,
    journal: Mutex<NoteJournal>,
    /// [`NoteMoment::bit`]s of the notes made apart that are left out, as
    /// an instance killed there would leave them (tests of that; 0 else).
    skipped: AtomicU8,
    /// On a Cluster, the tags of the masters' copies, by slot.
    tags: Mutex<Option<Tags>>,
    /// On a Cluster, every copy this instance noted in, and the shared
    /// index of a single tag (older instances', or a slot with no master
    /// known): each is read by every take until two looks in a row find it
    /// empty, with no note placed in it between them, while no master's
    /// copy is it; so nothing listed in a copy that a slot's move left
    /// behind is lost.
    known: Mutex<HashMap<String, Known>>,
    /// The copy each team taken came from, until it is handed back.
    taken: Mutex<HashMap<(String, String), String>>,
}

/// A copy of a due index this instance knows: how many notes it placed
/// there, and that count when a take last found the copy empty.
#[derive(Debug, Default)]
struct Known {
    placed: u64,
    empty_at: Option<u64>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Due {
    pub(super) fn new() -> Self {
        Due {
            claim: Script::new(DUE_CLAIM_LUA),
            release: Script::new(DUE_RELEASE_LUA),
            note: Script::new(DUE_NOTE_LUA),
            journal: Mutex::new(NoteJournal::default()),
            skipped: AtomicU8::new(0),
            tags: Mutex::new(None),
            known: Mutex::new(
                [keys::DUE_INDEX_DUEQ, keys::DUE_INDEX_OUTBOX]
                    .map(|index| (index.to_owned(), Known::default()))
                    .into(),
            ),
            taken: Mutex::new(HashMap::new()),
        }
    }

    /// Leaves out the notes made apart at `moment` from now on.
    pub(super) fn skip(&self, moment: NoteMoment) {
        self.skipped.fetch_or(moment.bit(), Ordering::Relaxed);
    }

    fn skips(&self, moment: NoteMoment) -> bool {
        self.skipped.load(Ordering::Relaxed) & moment.bit() != 0
    }

    fn journal(&self) -> MutexGuard<'_, NoteJournal> {
        locked(&self.journal)
    }

    /// Keeps `teams`' notes of `index`, which did not land (`cause`): one
    /// warning when the index's notes start failing, none per note.
    fn keep(&self, index: &str, teams: Teams, cause: &str) {
        if self.journal().keep(index, teams) {
            tracing::warn!(
                index,
                %cause,
                "due notes failing: this instance keeps them and lands them at its next take of \
                 the due index; requests go on without waiting for the index"
            );
        }
    }
}

/// Whether `copy` is `index` (`{~due}…`) or a master's copy of it
/// (`{~due<n>}…`).
fn is_copy_of(copy: &str, index: &str) -> bool {
    let (Some(rest), Some(suffix)) = (copy.strip_prefix("{~due"), index.strip_prefix("{~due}"))
    else {
        return copy == index;
    };
    rest.split_once('}')
        .is_some_and(|(n, r)| n.bytes().all(|b| b.is_ascii_digit()) && r == suffix)
}

/// Where `team`'s notes of `index` go, by `tags` (`RedisStore::tags`;
/// `key`: a logical key's physical one): the copy of the master holding
/// the team's keys; the shared index on one Redis, or while no copy is
/// known for the team's slot.
fn copy_for(
    tags: Option<&[Option<u32>]>,
    index: &str,
    team: &str,
    key: impl Fn(&str) -> String,
) -> String {
    let tag = tags.and_then(|tags| {
        let queue = keys::queue_of_due_index(index, team)?;
        let slot = usize::from(slot_of(key(&queue).as_bytes()));
        tags.get(slot).copied().flatten()
    });
    tag.map_or_else(|| index.to_owned(), |n| keys::due_index_on(index, n))
}

/// `queued` (queue, time) as due notes: per index, each team once at its
/// earliest time. Queues no index lists are left out.
fn notes_of<'a>(queued: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<(&'static str, Teams)> {
    let mut notes: Vec<(&'static str, Teams)> = Vec::new();
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
        match teams.iter_mut().find(|(t, _)| *t == *team) {
            Some(note) => note.1 = note.1.min(at),
            None => teams.push((team.to_string(), at)),
        }
    }
    notes
}

/// The queues a commit's ops add to, with each add's time.
pub(super) fn queued(ops: &[Op]) -> impl Iterator<Item = (&str, i64)> {
    ops.iter().filter_map(|op| match op {
        Op::QueueAdd { key, score, .. } => Some((key.as_str(), *score)),
        _ => None,
    })
}

impl RedisStore {
    /// Notes the teams whose drained queue `queued` adds to or moves in
    /// (queue, time), apart from the write, at `moment`: a Cluster's commit
    /// notes before its write and after it, a move before and after
    /// (decision 0190). Waits at most [`NOTE_DEADLINE`], and not at all
    /// for an index whose notes fail: a note that does not land is kept in
    /// the journal, landed at the next take of its index, and the caller
    /// goes on.
    pub(super) async fn note_apart<'a>(
        &self,
        queued: impl IntoIterator<Item = (&'a str, i64)>,
        moment: NoteMoment,
    ) {
        let notes = notes_of(queued);
        if notes.is_empty() || self.due.skips(moment) {
            return;
        }
        let mut trying = Vec::new();
        for (index, teams) in self.placed(notes).await {
            if self.due.journal().failing(&index) {
                self.due.keep(&index, teams, "the due index failed before");
            } else {
                trying.push((index, teams));
            }
        }
        let landing = trying.iter().map(|(index, teams)| async move {
            tokio::time::timeout(NOTE_DEADLINE, self.note_on(index, teams)).await
        });
        let landed = futures::future::join_all(landing).await;
        for ((index, teams), result) in trying.into_iter().zip(landed) {
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => self.due.keep(&index, teams, &e.to_string()),
                Err(_) => self.due.keep(
                    &index,
                    teams,
                    &format!("no answer within {} ms", NOTE_DEADLINE.as_millis()),
                ),
            }
        }
    }

    /// Lands the notes the journal keeps for `index`, before a take of it:
    /// an error when they still fail (the take fails with it, so its
    /// worker knows the index failed). The end of a failure is told once,
    /// with how many notes were kept. Cut short (a take waits a bounded
    /// time), it loses nothing: what is owed stays owed until it landed,
    /// and what landed is paid chunk by chunk, so the next take goes on.
    async fn land_owed(&self, index: &str) -> Result<(), StoreError> {
        let owed = self.due.journal().owed(index);
        for chunk in owed.chunks(LAND_CHUNK) {
            self.note_on(index, chunk).await?;
            let ended = self.due.journal().landed(index, chunk);
            if let Some((secs, notes)) = ended {
                tracing::warn!(
                    index,
                    failing_secs = secs,
                    notes,
                    "due notes land again: every note kept meanwhile is in the due index"
                );
            }
        }
        Ok(())
    }

    /// Per slot, the tag of its master's copies of the due indexes, as the
    /// slot map last read says; `None` on one Redis.
    async fn tags(&self) -> Option<Arc<Vec<Option<u32>>>> {
        if !self.conn.is_cluster() {
            return None;
        }
        let Ok(conn::Link::Routed(router)) = self.conn.link().await else {
            return Some(Arc::new(Vec::new()));
        };
        let version = router.map_version();
        if let Some((seen, tags)) = locked(&self.due.tags).as_ref() {
            if *seen == version {
                return Some(tags.clone());
            }
        }
        let tag = |n: u32| {
            self.prefix
                .key(&keys::due_index_on(keys::DUE_INDEX_DUEQ, n))
        };
        let (version, tags) = router.per_slot(tag);
        let tags = Arc::new(tags);
        *locked(&self.due.tags) = Some((version, tags.clone()));
        Some(tags)
    }

    /// `notes` (per index) per copy of the index they go to
    /// ([`copy_for`]); each copy is known from now on.
    async fn placed(&self, notes: Vec<(&str, Teams)>) -> Vec<(String, Teams)> {
        let tags = self.tags().await;
        let mut placed: Vec<(String, Teams)> = Vec::new();
        for (index, teams) in notes {
            for (team, at) in teams {
                let copy = copy_for(tags.as_deref().map(Vec::as_slice), index, &team, |k| {
                    self.prefix.key(k)
                });
                match placed.iter_mut().find(|(c, _)| *c == copy) {
                    Some((_, teams)) => teams.push((team, at)),
                    None => placed.push((copy, vec![(team, at)])),
                }
            }
        }
        if tags.is_some() {
            let mut known = locked(&self.due.known);
            for (copy, _) in &placed {
                known.entry(copy.clone()).or_default().placed += 1;
            }
        }
        placed
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
        for (index, teams) in notes_of(queued(ops)) {
            let renew = self
                .renewals
                .due(index, started, super::renewals::BY_PERIOD);
            if renew {
                renewing.push(index);
            }
            for (team, at) in teams {
                call.key(self.prefix.key(index))
                    .arg("N")
                    .arg(INDEX_TTL_MS)
                    .arg(if renew { "1" } else { "0" })
                    .arg(at)
                    .arg(team);
            }
        }
        renewing
    }

    /// Notes `teams` in `index` (a rescan's repair), each in its copy on a
    /// Cluster: an error when any copy failed.
    pub(super) async fn note_due(
        &self,
        index: &str,
        teams: &[(String, i64)],
    ) -> Result<(), StoreError> {
        let placed = self.placed(vec![(index, teams.to_vec())]).await;
        let landing = placed.iter().map(|(copy, teams)| self.note_on(copy, teams));
        futures::future::try_join_all(landing).await.map(drop)
    }

    /// `due_note.lua` on the index (or copy) `index`.
    async fn note_on(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError> {
        if teams.is_empty() {
            return Ok(());
        }
        let mut call = self.due.note.prepare_invoke();
        call.key(self.prefix.key(index)).arg(INDEX_TTL_MS);
        for (team, at) in teams {
            call.arg(*at).arg(team);
        }
        self.conn.invoke("due_teams_note", &call).await.map(drop)
    }

    /// Takes the teams of `index` due at `now`: on one Redis from the
    /// index, waiting as any call; on a Cluster from every master's copy
    /// and every other copy known ([`Due::known`]), together, each bounded
    /// by [`CLAIM_WAIT`] (decision 0230).
    pub(super) async fn claim_due_teams(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
    ) -> Result<DueTaken, StoreError> {
        let Some(tags) = self.tags().await else {
            let teams = self
                .claim_on(index, now, limit, hold_until, conn::CALL_TIMEOUT)
                .await?;
            return Ok(DueTaken { teams, whole: true });
        };
        let current: BTreeSet<String> = tags
            .iter()
            .flatten()
            .map(|n| keys::due_index_on(index, *n))
            .collect();
        let mut copies = current.clone();
        copies.extend(
            locked(&self.due.known)
                .keys()
                .filter(|k| is_copy_of(k, index))
                .cloned(),
        );
        let current = &current;
        let takes = copies.iter().map(|copy| async move {
            let take = self.claim_on(copy, now, limit, hold_until, CLAIM_WAIT);
            let taken = match tokio::time::timeout(CLAIM_WAIT, take).await {
                Ok(taken) => taken,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "due_teams_claim: no answer within {} ms",
                    CLAIM_WAIT.as_millis()
                ))),
            };
            if matches!(&taken, Ok(t) if t.is_empty()) && !current.contains(copy) {
                self.forget_if_empty(copy).await;
            }
            (copy, taken)
        });
        let mut taken = DueTaken {
            teams: Vec::new(),
            whole: true,
        };
        let mut failed = None;
        let mut answered = false;
        for (copy, result) in futures::future::join_all(takes).await {
            match result {
                Ok(teams) => {
                    answered = true;
                    let mut held = locked(&self.due.taken);
                    for team in &teams {
                        held.insert((index.to_owned(), team.clone()), copy.clone());
                    }
                    taken.teams.extend(teams);
                }
                Err(e) => {
                    taken.whole = false;
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) if !answered => Err(e),
            _ => Ok(taken),
        }
    }

    /// Forgets `copy`, a copy of a due index no master's copy is now, the
    /// second time in a row it holds no team, listed or held, with no note
    /// placed there meanwhile and none owed to it.
    async fn forget_if_empty(&self, copy: &str) {
        if self.due.journal().failing(copy) {
            return;
        }
        let placed = locked(&self.due.known).get(copy).map(|k| k.placed);
        let mut exists = cmd("EXISTS");
        exists
            .arg(self.prefix.key(copy))
            .arg(self.prefix.key(&keys::due_index_held(copy)));
        let empty = matches!(
            self.conn.query("due_teams_claim", &exists).await,
            Ok(Value::Int(0))
        );
        let mut known = locked(&self.due.known);
        let Some(k) = known.get_mut(copy) else {
            return;
        };
        if !empty || Some(k.placed) != placed {
            k.empty_at = None;
        } else if k.empty_at == placed {
            known.remove(copy);
        } else {
            k.empty_at = placed;
        }
    }

    /// `due_claim.lua` on the index (or copy) `index`, after landing what
    /// the journal keeps for it; it takes nothing when it runs more than
    /// `wait` from now.
    async fn claim_on(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
        wait: Duration,
    ) -> Result<Vec<String>, StoreError> {
        self.land_owed(index).await?;
        let mut call = self.due.claim.prepare_invoke();
        call.key(self.prefix.key(index))
            .key(self.prefix.key(&keys::due_index_held(index)))
            .arg(now)
            .arg(limit)
            .arg(hold_until)
            .arg(INDEX_TTL_MS)
            .arg(self.clock.answer_by(wait));
        match self.conn.invoke("due_teams_claim", &call).await? {
            Value::Array(teams) => teams
                .iter()
                .map(|t| {
                    text(t)
                        .map(str::to_owned)
                        .ok_or_else(|| unexpected("due_teams_claim"))
                })
                .collect(),
            _ => Err(unexpected("due_teams_claim")),
        }
    }

    /// Hands `team` back to the copy of `index` it was taken from (on a
    /// Cluster; else, its master's copy).
    pub(super) async fn release_due_team(
        &self,
        index: &str,
        team: &str,
        held_until: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        let from = locked(&self.due.taken).remove(&(index.to_owned(), team.to_owned()));
        let copy = match from {
            Some(copy) => copy,
            None => {
                let tags = self.tags().await;
                copy_for(tags.as_deref().map(Vec::as_slice), index, team, |k| {
                    self.prefix.key(k)
                })
            }
        };
        let mut call = self.due.release.prepare_invoke();
        call.key(self.prefix.key(&copy))
            .key(self.prefix.key(&keys::due_index_held(&copy)))
            .arg(team)
            .arg(held_until)
            .arg(next.map_or_else(String::new, |at| at.to_string()))
            .arg(INDEX_TTL_MS);
        self.conn.invoke("due_teams_release", &call).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_an_index_is_its_masters_or_the_shared_one() {
        let (dueq, obq) = (keys::DUE_INDEX_DUEQ, keys::DUE_INDEX_OUTBOX);
        assert!(is_copy_of(&keys::due_index_on(dueq, 12), dueq));
        assert!(is_copy_of(dueq, dueq));
        assert!(!is_copy_of(&keys::due_index_on(obq, 12), dueq));
        assert!(!is_copy_of("{~dueX}:dueq", dueq));
        assert!(!is_copy_of(&keys::due_index_held(dueq), dueq));
    }
}
