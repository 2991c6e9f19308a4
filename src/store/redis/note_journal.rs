//! The due notes this instance owes the teams' due indexes
//! (docs/decisions/0190-due-notes-on-a-cluster-before-and-after-the-write.md):
//! a note made apart from its write (on a Cluster, or a queue's move) waits
//! at most [`super::due::NOTE_DEADLINE`] for the index's master; one that
//! failed or timed out is kept here, and the request goes on. While notes
//! fail, new ones come here at once (no request waits on a master known to
//! be failing); every take of a due index lands what is kept first
//! (`RedisStore::claim_due_teams`). Plain data: the Redis calls are the
//! store's.
use std::collections::HashMap;
use std::time::Instant;

/// The notes kept, and since when notes fail.
#[derive(Debug, Default)]
pub(super) struct NoteJournal {
    /// (index, team) → the earliest time owed.
    owed: HashMap<(&'static str, String), i64>,
    /// Since when notes fail, and how many were kept since.
    failing: Option<(Instant, u64)>,
}

/// Notes grouped by index: (index, [(team, time)]).
pub(super) type Notes = Vec<(&'static str, Vec<(String, i64)>)>;

impl NoteJournal {
    /// Whether notes fail now: a new one is kept at once, not tried.
    pub(super) fn failing(&self) -> bool {
        self.failing.is_some()
    }

    /// Keeps `notes`, which failed or were not tried; `true` when this
    /// starts a failure (the one warning).
    pub(super) fn keep(&mut self, notes: Notes) -> bool {
        let kept = self.merge(notes);
        match &mut self.failing {
            Some((_, count)) => {
                *count += kept;
                false
            }
            None => {
                self.failing = Some((Instant::now(), kept));
                true
            }
        }
    }

    /// Puts back what [`NoteJournal::take`] took, which failed again.
    pub(super) fn put_back(&mut self, notes: Notes) {
        self.merge(notes);
    }

    /// Adds `notes` to what is owed, each team at its earliest time; how
    /// many there were.
    fn merge(&mut self, notes: Notes) -> u64 {
        let mut count = 0;
        for (index, teams) in notes {
            for (team, at) in teams {
                count += 1;
                let owed = self.owed.entry((index, team)).or_insert(at);
                *owed = (*owed).min(at);
            }
        }
        count
    }

    /// Everything owed, taken out to be noted (put back with
    /// [`NoteJournal::put_back`] should that fail).
    pub(super) fn take(&mut self) -> Notes {
        let mut notes: Notes = Vec::new();
        for ((index, team), at) in self.owed.drain() {
            match notes.iter_mut().find(|(i, _)| *i == index) {
                Some((_, teams)) => teams.push((team, at)),
                None => notes.push((index, vec![(team, at)])),
            }
        }
        notes
    }

    /// What was taken has landed: when nothing is owed any more, the end
    /// of a failure, with how long it lasted (s) and how many notes were
    /// kept.
    pub(super) fn landed(&mut self) -> Option<(f64, u64)> {
        if !self.owed.is_empty() {
            return None;
        }
        self.failing
            .take()
            .map(|(since, count)| (since.elapsed().as_secs_f64(), count))
    }

    /// Whether anything is owed.
    pub(super) fn is_empty(&self) -> bool {
        self.owed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: &str = "{~due}:dueq";
    const O: &str = "{~due}:obq";

    #[test]
    fn a_failure_is_told_once_and_its_end_with_a_count() {
        let mut j = NoteJournal::default();
        assert!(!j.failing());
        assert!(
            j.keep(vec![(I, vec![("a".into(), 20)])]),
            "the first failure"
        );
        assert!(j.failing(), "the next notes are kept at once");
        assert!(!j.keep(vec![
            (I, vec![("a".into(), 10)]),
            (O, vec![("b".into(), 5)])
        ]));
        let mut taken = j.take();
        taken.sort_by_key(|(i, _)| *i);
        assert_eq!(
            taken,
            vec![(I, vec![("a".into(), 10)]), (O, vec![("b".into(), 5)])],
            "one note per team and index, at its earliest time"
        );
        // A try that fails puts them back: still failing, nothing told.
        j.put_back(taken);
        assert!(j.failing());
        assert_eq!(j.landed(), None, "still owed");
        j.take();
        let (_, count) = j.landed().expect("the end of the failure");
        assert_eq!(count, 3, "every note kept, counted once");
        assert!(!j.failing());
        assert_eq!(j.landed(), None, "told once");
    }
}
