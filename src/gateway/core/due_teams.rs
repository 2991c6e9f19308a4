//! The teams' due indexes, as the background workers use them
//! (docs/architecture.md#many-teams): each round a worker takes the teams
//! whose queue has something due ([`take`]), works on each, then hands each
//! back at its queue's earliest time ([`release`]); so an idle gateway reads
//! one index per round, whatever the number of teams. A [`Rescan`] repairs
//! what the index lost: at start, and after a fault of the index's master
//! (a take that failed, then one that answered), it reads every team's
//! queues within seconds; it notes at once the queues of the teams a
//! reload adds; and it goes round all the teams every [`RESCAN_EVERY`], a
//! slice each round (decision 0190), at most [`SLOW_PACE`] teams a second
//! (decision 0700).
use std::collections::HashSet;
use std::time::Duration;

use crate::config::Config;
use crate::store::{keys, DueTaken, Store, StoreError};
use crate::time::Timestamp;

/// How long a worker holds the teams it took: should it die, they are due
/// again then. Short, as a team's entries due meanwhile wait for it; a
/// sweep that takes longer lets another instance take the team too, which
/// claims only what is still due.
pub const HOLD: Duration = Duration::from_secs(1);
/// Teams taken per read of an index, at most; a read that came back full is
/// followed by another in the same round.
pub const TAKE: usize = 256;
/// How long the slow rescan takes to go round every team once, at least:
/// more teams than [`SLOW_PACE`] reads in this take longer.
pub const RESCAN_EVERY: Duration = Duration::from_secs(600);
/// Teams the slow rescan reads a second, at most (two reads each): what it
/// costs an idle instance's store stays bounded however many teams it
/// serves (15,000 teams go round in 600 s; 100,000 in about 67 minutes).
/// The first pass and the passes after a fault are not slowed
/// (docs/decisions/0700-the-slow-rescan-reads-at-a-pace-of-its-own.md).
pub const SLOW_PACE: f64 = 25.0;
/// Teams the first rescan reads per round, after a start.
const FIRST_PASS: usize = 2_500;

/// Takes the teams of `index` due at `now`, held until the time answered.
pub async fn take(
    store: &dyn Store,
    index: &str,
    now: Timestamp,
) -> Result<(Vec<String>, i64), StoreError> {
    let (taken, hold) = take_telling(store, index, now).await?;
    Ok((taken.teams, hold))
}

/// [`take`], telling besides whether every part of the index answered (on
/// a Redis Cluster, each master holds its teams' part: one that fails
/// holds up only its own teams; decision 0230).
pub async fn take_telling(
    store: &dyn Store,
    index: &str,
    now: Timestamp,
) -> Result<(DueTaken, i64), StoreError> {
    let hold = now.plus(HOLD).unix_millis();
    let taken = store
        .due_teams_claim(index, now.unix_millis(), TAKE, hold)
        .await?;
    Ok((taken, hold))
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
/// at their earliest time, a slice of the teams each round; at once for
/// the teams a reload adds, and all of them within seconds of a start or
/// of a fault of the index's master (decision 0190).
#[derive(Debug, Default)]
pub struct Rescan {
    /// Where the next slice starts, in the teams' order.
    at: usize,
    /// Whether the first pass (after the start, or a fault) is done.
    first_done: bool,
    /// The fraction of a team owed by earlier rounds of the slow pass.
    owed: f64,
    /// The configuration's generation last seen (the reloads counted), and
    /// its teams.
    seen: Option<(u64, HashSet<String>)>,
    /// A take of a due index failed since the last that answered.
    failed: bool,
}

impl Rescan {
    /// After a take of a due index: whether it answered. The first that
    /// answers after one that failed starts a pass over every team, as at
    /// a start: a failover of the index's master may have lost notes it
    /// had acknowledged, a master that came back empty lost them all.
    /// Answers whether that pass starts now.
    pub fn taken(&mut self, answered: bool) -> bool {
        if !answered {
            self.failed = true;
            return false;
        }
        if !std::mem::take(&mut self.failed) {
            return false;
        }
        tracing::info!(
            "the due indexes answer again after failing: every team's queues are noted again"
        );
        self.again();
        true
    }

    /// Goes round every team again at the first pass's pace.
    fn again(&mut self) {
        self.at = 0;
        self.first_done = false;
        self.owed = 0.0;
    }

    /// One round, `every` after the last: notes at once the queues of the
    /// teams `config` (of reload `generations.now`) has and the last
    /// round's had not, then reads the next slice of its teams and notes
    /// what their queues hold.
    pub async fn step(
        &mut self,
        store: &dyn Store,
        config: &Config,
        generations: Generations,
        every: Duration,
    ) {
        self.note_added(store, config, generations).await;
        let teams = config.teams.len();
        if teams == 0 {
            return;
        }
        let slice = if self.first_done {
            self.owed += slow_slice(teams, every);
            let whole = self.owed.floor();
            self.owed -= whole;
            whole as usize
        } else {
            FIRST_PASS
        };
        if slice == 0 {
            return;
        }
        let ids: Vec<&String> = (config.keyspaces())
            .skip(self.at.min(teams))
            .take(slice)
            .collect();
        // A slice that failed is read again next round. The slow pass's
        // few teams wait no longer than a round: one whose master hangs
        // must not hold up the round's work for the others (decision 0230).
        let noted = if self.first_done {
            tokio::time::timeout(every, note_queues(store, &ids))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer within a round".into())))
        } else {
            note_queues(store, &ids).await
        };
        if let Err(e) = noted {
            tracing::debug!(error = %e, "the due indexes' rescan missed a slice; the next round tries it again");
            return;
        }
        self.at += ids.len();
        if self.at >= teams {
            self.at = 0;
            self.first_done = true;
        }
    }

    /// Notes the queues of the teams a reload added since the last round
    /// (new to this process, or added back: a worker dropped a team no
    /// longer configured from the index, whatever its queue held). Several
    /// reloads since the last round, one of which may have taken a team
    /// out, may have removed and added back a team in between: every team
    /// is gone round again. Several that only added or changed teams (API
    /// teams written one after the other) left nothing to find but the
    /// keyspaces new since the last round.
    async fn note_added(&mut self, store: &dyn Store, config: &Config, generations: Generations) {
        let generation = generations.now;
        let Some((last, teams)) = self.seen.as_mut() else {
            // The start's first pass reads every team.
            let teams = config.keyspaces().cloned().collect();
            self.seen = Some((generation, teams));
            return;
        };
        if *last == generation {
            return;
        }
        let added: Vec<&String> = config.keyspaces().filter(|t| !teams.contains(*t)).collect();
        let again = goes_round_again(*last, generations, added.len());
        let added: Vec<String> = added.into_iter().cloned().collect();
        if generations.last_removal > *last {
            *teams = config.keyspaces().cloned().collect();
        } else {
            // Nothing taken out: the teams are those seen and the new ones.
            teams.extend(added.iter().cloned());
        }
        *last = generation;
        let added: Vec<&String> = added.iter().collect();
        if again {
            self.again();
        } else if let Err(e) = note_queues(store, &added).await {
            tracing::debug!(error = %e, "the added teams' queues were not noted; every team is gone round again");
            self.again();
        }
    }
}

/// The teams (a fraction carried) the slow pass reads in a round `every`
/// long over `teams`: round them all in [`RESCAN_EVERY`], at most
/// [`SLOW_PACE`] a second.
fn slow_slice(teams: usize, every: Duration) -> f64 {
    let per_second = teams as f64 / RESCAN_EVERY.as_secs_f64();
    per_second.min(SLOW_PACE) * every.as_secs_f64()
}

/// Whether a round that saw `generations`, the last round having seen
/// reload `last`, goes round every team again rather than noting the
/// `added` teams' queues: when it missed a reload that may have taken a
/// team out (and added it back since), or when there are too many.
fn goes_round_again(last: u64, generations: Generations, added: usize) -> bool {
    let missed_a_removal = generations.now > last + 1 && generations.last_removal > last;
    missed_a_removal || added > FIRST_PASS
}

/// The reloads a worker saw: the count of the gateway it took, and of the
/// last one that may have taken a team out (`Live::generation`, then
/// `Live::last_removal`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Generations {
    pub now: u64,
    pub last_removal: u64,
}

/// Reads `teams`' queues of both indexes and notes each that holds something.
async fn note_queues(store: &dyn Store, teams: &[&String]) -> Result<(), StoreError> {
    if teams.is_empty() {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloads_missed_that_only_added_teams_note_the_new_ones_and_go_round_no_other() {
        let seen = |now, last_removal| Generations { now, last_removal };
        // API teams written one after the other, several between two
        // rounds: nothing taken out, only the new keyspaces to note.
        assert!(!goes_round_again(3, seen(40, 0), 37));
        assert!(
            !goes_round_again(3, seen(40, 3), 37),
            "the removal was seen"
        );
        assert!(
            !goes_round_again(3, seen(4, 4), 1),
            "one reload: none missed"
        );
        // One of those missed may have taken a team out and another added
        // it back: every team again.
        assert!(goes_round_again(3, seen(40, 4), 0));
        assert!(goes_round_again(3, seen(40, 40), 0));
        assert!(goes_round_again(3, seen(4, 0), FIRST_PASS + 1), "too many");
    }

    #[test]
    fn the_slow_pass_reads_at_most_its_pace_however_many_teams() {
        let second = |teams| {
            let rounds = 20;
            (0..rounds)
                .map(|_| slow_slice(teams, Duration::from_millis(50)))
                .sum::<f64>()
        };
        // Every team within the round's ten minutes while they are few.
        assert!((second(1_000) - 1_000.0 / 600.0).abs() < 1e-9);
        assert!((second(10_000) - 10_000.0 / 600.0).abs() < 1e-9);
        // Beyond, the pace: two reads a team, 50 commands a second at
        // 100,000 teams where 10 minutes would take 333.
        assert!((second(100_000) - SLOW_PACE).abs() < 1e-9);
        assert!((second(1_000_000) - SLOW_PACE).abs() < 1e-9);
        for teams in [1_000, 10_000, 100_000] {
            let commands = 2.0 * second(teams);
            assert!(
                commands / (teams as f64 / 1_000.0) <= 3.4,
                "{teams} teams: {commands} reads a second"
            );
        }
    }

    #[test]
    fn a_take_that_answers_after_one_that_failed_starts_a_pass_over_every_team() {
        let mut r = Rescan {
            at: 7,
            first_done: true,
            ..Rescan::default()
        };
        assert!(!r.taken(true), "nothing failed");
        assert!(!r.taken(false));
        assert!(!r.taken(false), "still failing");
        assert!(
            (r.at, r.first_done) == (7, true),
            "the slow pass goes on meanwhile"
        );
        assert!(r.taken(true), "answered again");
        assert_eq!(
            (r.at, r.first_done),
            (0, false),
            "from the first team, at the first pass's pace"
        );
        assert!(!r.taken(true), "once");
    }
}
