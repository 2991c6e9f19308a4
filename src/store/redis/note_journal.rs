//! The due notes this instance owes the teams' due indexes
//! (docs/decisions/0190-due-notes-on-a-cluster-before-and-after-the-write.md,
//! docs/decisions/0230-a-due-index-per-cluster-master.md): a note made
//! apart from its write (on a Cluster, or a queue's move) waits at most
//! [`super::due::NOTE_DEADLINE`] for the index's master; one that failed or
//! timed out is kept here, per index (on a Cluster, per master), and the
//! request goes on. While an index's notes fail, new ones for it come here
//! at once (no request waits on a master known to be failing), and the
//! other indexes' notes are made as usual; every take of an index lands
//! what is kept for it first (`RedisStore::claim_due_teams`). Plain data:
//! the Redis calls are the store's.
use std::collections::HashMap;
use std::time::Instant;

/// The notes kept, per index.
#[derive(Debug, Default)]
pub(super) struct NoteJournal {
    /// A failing index → what it is owed.
    owed: HashMap<String, Owed>,
}

/// What one failing index is owed: team → the earliest time, since when
/// its notes fail, and how many were kept since.
#[derive(Debug)]
struct Owed {
    teams: HashMap<String, i64>,
    since: Instant,
    kept: u64,
}

/// Notes of one index: [(team, time)].
pub(super) type Teams = Vec<(String, i64)>;

impl NoteJournal {
    /// Whether `index`'s notes fail now: a new one is kept at once, not
    /// tried.
    pub(super) fn failing(&self, index: &str) -> bool {
        self.owed.contains_key(index)
    }

    /// Keeps `teams`' notes of `index`, which failed or were not tried;
    /// `true` when this starts a failure of that index (its one warning).
    pub(super) fn keep(&mut self, index: &str, teams: Teams) -> bool {
        let starts = !self.owed.contains_key(index);
        let owed = self.owed.entry(index.to_owned()).or_insert_with(|| Owed {
            teams: HashMap::new(),
            since: Instant::now(),
            kept: 0,
        });
        for (team, at) in teams {
            owed.kept += 1;
            let time = owed.teams.entry(team).or_insert(at);
            *time = (*time).min(at);
        }
        starts
    }

    /// A copy of what `index` is owed, to be noted; it stays owed until
    /// [`NoteJournal::landed`] (a landing cut short loses nothing).
    pub(super) fn owed(&self, index: &str) -> Teams {
        self.owed.get(index).map_or_else(Vec::new, |owed| {
            owed.teams.iter().map(|(t, at)| (t.clone(), *at)).collect()
        })
    }

    /// `noted` (of a copy [`NoteJournal::owed`] gave) landed in `index`: each
    /// team owed no earlier is paid. When nothing is owed any more, the
    /// end of the index's failure, with how long it lasted (s) and how many
    /// notes were kept.
    pub(super) fn landed(&mut self, index: &str, noted: &[(String, i64)]) -> Option<(f64, u64)> {
        let owed = self.owed.get_mut(index)?;
        for (team, at) in noted {
            if owed.teams.get(team).is_some_and(|owed| owed >= at) {
                owed.teams.remove(team);
            }
        }
        if !owed.teams.is_empty() {
            return None;
        }
        let owed = self.owed.remove(index)?;
        Some((owed.since.elapsed().as_secs_f64(), owed.kept))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: &str = "{~due1}:dueq";
    const O: &str = "{~due1}:obq";
    const J: &str = "{~due2}:dueq";

    fn sorted(mut teams: Teams) -> Teams {
        teams.sort();
        teams
    }

    #[test]
    fn a_failure_is_told_once_per_index_and_its_end_with_a_count() {
        let mut j = NoteJournal::default();
        assert!(!j.failing(I));
        assert!(j.keep(I, vec![("a".into(), 20)]), "the first failure");
        assert!(j.failing(I), "the next notes are kept at once");
        assert!(!j.failing(J), "another master's index is not");
        assert!(!j.keep(I, vec![("a".into(), 10), ("b".into(), 5)]));
        assert!(j.keep(O, vec![("b".into(), 5)]), "its own failure");
        let owed = j.owed(I);
        assert_eq!(
            sorted(owed.clone()),
            [("a".into(), 10), ("b".into(), 5)],
            "one note per team, at its earliest time"
        );
        // A note kept while the copy was landing, earlier than it: still owed.
        j.keep(I, vec![("a".into(), 3)]);
        assert_eq!(j.landed(I, &owed), None, "still owed");
        assert!(j.failing(I));
        assert_eq!(j.owed(I), [("a".to_string(), 3)]);
        let (_, count) = j.landed(I, &j.owed(I)).expect("the end of the failure");
        assert_eq!(count, 4, "every note kept, counted once");
        assert!(!j.failing(I));
        assert_eq!(j.landed(I, &Vec::new()), None, "told once");
        assert!(j.failing(O), "the other index still fails");
    }
}
