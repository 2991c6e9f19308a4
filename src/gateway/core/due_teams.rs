//! The teams' due indexes, as the background workers use them
//! (docs/architecture.md#many-teams): each round a worker takes the teams
//! whose queue has something due ([`take`]), works on each, then hands each
//! back at its queue's earliest time ([`release`]); so an idle gateway reads
//! one index per round, whatever the number of teams. A [`Rescan`] repairs
//! what a note lost (a crash between a queue's write and its note): at
//! start it reads every team's queues within seconds, then goes round
//! them all every [`RESCAN_EVERY`], a slice each round.
use std::time::Duration;

use crate::config::Config;
use crate::store::{keys, Store, StoreError};
use crate::time::Timestamp;

/// How long a worker holds the teams it took: should it die, they are due
/// again then. Short, as a team's entries due meanwhile wait for it; a
/// sweep that takes longer lets another instance take the team too, which
/// claims only what is still due.
pub const HOLD: Duration = Duration::from_secs(1);
/// Teams taken per read of an index, at most; a read that came back full is
/// followed by another in the same round.
pub const TAKE: usize = 256;
/// How long the slow rescan takes to go round every team once.
pub const RESCAN_EVERY: Duration = Duration::from_secs(600);
/// Teams the first rescan reads per round, after a start.
const FIRST_PASS: usize = 2_500;

/// Takes the teams of `index` due at `now`, held until the time answered.
pub async fn take(
    store: &dyn Store,
    index: &str,
    now: Timestamp,
) -> Result<(Vec<String>, i64), StoreError> {
    let hold = now.plus(HOLD).unix_millis();
    let teams = store
        .due_teams_claim(index, now.unix_millis(), TAKE, hold)
        .await?;
    Ok((teams, hold))
}

/// Hands `team` back to `index` after its work, at its queue's earliest
/// time as read now (a queue of a team no longer configured is left to the
/// rescan, should the team come back). Best effort: a team not handed back
/// is due again when its hold ends.
pub async fn release(store: &dyn Store, index: &str, team: &str, known: bool, hold: i64) {
    let next = match keys::queue_of_due_index(index, team) {
        Some(queue) if known => match store.queues_first(&[queue]).await {
            Ok(first) => first.into_iter().next().flatten(),
            Err(_) => return,
        },
        _ => None,
    };
    if let Err(e) = store.due_teams_release(index, team, hold, next).await {
        tracing::debug!(team, error = %e, "a team left to its hold");
    }
}

/// The repair of the due indexes: notes every configured team's queues
/// at their earliest time, a slice of the teams each round.
#[derive(Debug, Default)]
pub struct Rescan {
    /// Where the next slice starts, in the teams' order.
    at: usize,
    /// Whether the first pass (after the start) is done.
    first_done: bool,
    /// The fraction of a team owed by earlier rounds of the slow pass.
    owed: f64,
}

impl Rescan {
    /// One round, `every` after the last: reads the next slice of
    /// `config`'s teams and notes what their queues hold.
    pub async fn step(&mut self, store: &dyn Store, config: &Config, every: Duration) {
        let teams = config.teams.len();
        if teams == 0 {
            return;
        }
        let slice = if self.first_done {
            self.owed += teams as f64 * every.as_secs_f64() / RESCAN_EVERY.as_secs_f64();
            let whole = self.owed.floor();
            self.owed -= whole;
            whole as usize
        } else {
            FIRST_PASS
        };
        if slice == 0 {
            return;
        }
        let ids: Vec<&String> = config
            .teams
            .keys()
            .skip(self.at.min(teams))
            .take(slice)
            .collect();
        self.at += ids.len();
        if self.at >= teams {
            self.at = 0;
            self.first_done = true;
        }
        if let Err(e) = note_queues(store, &ids).await {
            tracing::debug!(error = %e, "the due indexes' rescan missed a slice; the next round goes on");
        }
    }
}

/// Reads `teams`' queues of both indexes and notes each that holds something.
async fn note_queues(store: &dyn Store, teams: &[&String]) -> Result<(), StoreError> {
    for index in [keys::DUE_INDEX_DUEQ, keys::DUE_INDEX_OUTBOX] {
        let queues: Vec<String> = teams
            .iter()
            .filter_map(|t| keys::queue_of_due_index(index, t))
            .collect();
        let first = store.queues_first(&queues).await?;
        let found: Vec<(String, i64)> = teams
            .iter()
            .zip(first)
            .filter_map(|(t, at)| Some(((*t).clone(), at?)))
            .collect();
        store.due_teams_note(index, &found).await?;
    }
    Ok(())
}
