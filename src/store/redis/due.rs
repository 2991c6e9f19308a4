//! The teams' due indexes on Redis (docs/architecture.md#many-teams): a
//! sorted set per index, team → the earliest time its queue holds, and one
//! of the teams held, team → until when, both under the hash tag `{~due}`
//! (their own slot on a Cluster). A write to a team's queue is in the
//! team's slot; on a Cluster its note here is a second write after it
//! (`redis/due_note.lua`), on one Redis an op of the same commit script
//! ([`RedisStore::add_due_notes`]). Taking and releasing teams are
//! `redis/due_claim.lua` and `redis/due_release.lua`.
use ::redis::{cmd, Script, Value};

use super::{entries, unexpected, RedisStore, KEEPER_SCORE};
use crate::store::{keys, Op, StoreError};

pub(super) const DUE_CLAIM_LUA: &str = include_str!("due_claim.lua");
pub(super) const DUE_RELEASE_LUA: &str = include_str!("due_release.lua");
pub(super) const DUE_NOTE_LUA: &str = include_str!("due_note.lua");

/// A due index's life past its last write (every note, take and release
/// renews it): far longer than any instance is down between restarts; an
/// index lost anyway is rebuilt by the start-up rescan.
const INDEX_TTL_MS: u64 = 7 * 86_400 * 1000;

/// The scripts of the due indexes.
pub(super) struct DueScripts {
    claim: Script,
    release: Script,
    note: Script,
}

impl DueScripts {
    pub(super) fn new() -> Self {
        DueScripts {
            claim: Script::new(DUE_CLAIM_LUA),
            release: Script::new(DUE_RELEASE_LUA),
            note: Script::new(DUE_NOTE_LUA),
        }
    }
}

impl RedisStore {
    /// After a write that applied: notes the teams whose drained queue
    /// `queued` added to or moved in (queue, time). Best effort: a note
    /// lost (the store failed in between) is found by the rescan.
    pub(super) async fn note_queued<'a>(&self, queued: impl IntoIterator<Item = (&'a str, i64)>) {
        let mut notes: Vec<(&'static str, Vec<(String, i64)>)> = Vec::new();
        for (queue, at) in queued {
            let Some((index, team)) = keys::due_index_of(queue) else {
                continue;
            };
            let pos = notes.iter().position(|(i, _)| *i == index);
            let pos = pos.unwrap_or_else(|| {
                notes.push((index, Vec::new()));
                notes.len() - 1
            });
            notes[pos].1.push((team.to_string(), at));
        }
        for (index, teams) in notes {
            if let Err(e) = self.note_due(index, &teams).await {
                tracing::debug!(error = %e, "a due index note was lost; the rescan finds it");
            }
        }
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
        let mut notes: Vec<(&'static str, &str, i64)> = Vec::new();
        for (queue, at) in Self::queued(ops) {
            let Some((index, team)) = keys::due_index_of(queue) else {
                continue;
            };
            match notes.iter_mut().find(|(i, t, _)| *i == index && *t == team) {
                Some(note) => note.2 = note.2.min(at),
                None => notes.push((index, team, at)),
            }
        }
        let mut renewing = Vec::new();
        for (index, team, at) in notes {
            let renew = renewing.contains(&index)
                || self
                    .renewals
                    .due(index, started, super::renewals::BY_PERIOD);
            if renew && !renewing.contains(&index) {
                renewing.push(index);
            }
            call.key(self.key(index))
                .arg("N")
                .arg(INDEX_TTL_MS)
                .arg(if renew { "1" } else { "0" })
                .arg(at)
                .arg(team);
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
        let mut call = self.due_scripts.note.prepare_invoke();
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
        let mut call = self.due_scripts.claim.prepare_invoke();
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
        let mut call = self.due_scripts.release.prepare_invoke();
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
