//! The teams' due indexes of the memory store (docs/architecture.md#many-teams):
//! for each index, the teams with something queued at their earliest time,
//! and the teams an instance has taken, until when. The same rules as the
//! Redis store's scripts (`redis/due_claim.lua`, `redis/due_release.lua`,
//! `redis/due_note.lua`), in one process.
use std::collections::HashMap;

/// One due index: the teams listed and the teams held.
#[derive(Debug, Default)]
struct Index {
    listed: HashMap<String, i64>,
    held: HashMap<String, i64>,
}

/// Every due index, by its key.
#[derive(Debug, Default)]
pub(crate) struct DueIndexes {
    indexes: HashMap<String, Index>,
}

impl DueIndexes {
    fn index(&mut self, key: &str) -> &mut Index {
        self.indexes.entry(key.to_string()).or_default()
    }

    /// Lists `team` at `at`, or leaves it where it is lower.
    pub(crate) fn note(&mut self, key: &str, team: &str, at: i64) {
        let listed = &mut self.index(key).listed;
        match listed.get_mut(team) {
            Some(score) => *score = (*score).min(at),
            None => {
                listed.insert(team.to_string(), at);
            }
        }
    }

    /// Takes up to `limit` teams due at `now`, lowest first (a hold that
    /// ran out is due at its end), each held until `hold_until`.
    pub(crate) fn claim(
        &mut self,
        key: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
    ) -> Vec<String> {
        let index = self.index(key);
        let ran_out: Vec<(String, i64)> = index
            .held
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(team, until)| (team.clone(), *until))
            .collect();
        for (team, until) in ran_out {
            index.held.remove(&team);
            let score = index.listed.entry(team).or_insert(until);
            *score = (*score).min(until);
        }
        let mut due: Vec<(i64, String)> = index
            .listed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(team, at)| (*at, team.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        due.into_iter()
            .map(|(_, team)| {
                index.listed.remove(&team);
                index.held.insert(team.clone(), hold_until);
                team
            })
            .collect()
    }

    /// Ends the hold taken with `held_until` (if still that one) and
    /// lists the team at `next`, or lower where it is listed lower.
    pub(crate) fn release(&mut self, key: &str, team: &str, held_until: i64, next: Option<i64>) {
        let index = self.index(key);
        if index.held.get(team) == Some(&held_until) {
            index.held.remove(team);
        }
        if let Some(at) = next {
            self.note(key, team, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: &str = "{~due}:dueq";

    #[test]
    fn a_claim_takes_the_due_teams_lowest_first_and_holds_them() {
        let mut d = DueIndexes::default();
        d.note(I, "b", 20);
        d.note(I, "a", 10);
        d.note(I, "c", 99);
        assert_eq!(d.claim(I, 50, 10, 60), ["a", "b"]);
        // Held: not taken again before the hold ends.
        assert!(d.claim(I, 59, 10, 70).is_empty());
        // The hold ran out (its taker died): due again.
        assert_eq!(d.claim(I, 60, 1, 80), ["a"]);
    }

    #[test]
    fn a_release_never_raises_what_a_write_noted_meanwhile() {
        let mut d = DueIndexes::default();
        d.note(I, "a", 10);
        assert_eq!(d.claim(I, 10, 10, 100), ["a"]);
        // A write while the team is held: back in the index at once.
        d.note(I, "a", 40);
        // Its taker read the queue before that write: it saw nothing.
        d.release(I, "a", 100, None);
        assert_eq!(d.claim(I, 40, 10, 200), ["a"]);
        d.release(I, "a", 200, Some(500));
        d.note(I, "a", 300);
        assert!(d.claim(I, 299, 10, 400).is_empty());
        assert_eq!(d.claim(I, 300, 10, 400), ["a"]);
    }

    #[test]
    fn a_release_leaves_a_hold_another_taker_renewed() {
        let mut d = DueIndexes::default();
        d.note(I, "a", 10);
        assert_eq!(d.claim(I, 10, 10, 20), ["a"]);
        // The first taker stalled past its hold; another took the team.
        assert_eq!(d.claim(I, 20, 10, 50), ["a"]);
        d.release(I, "a", 20, None);
        // The second taker's hold stands: should it die, the team comes back.
        assert_eq!(d.claim(I, 50, 10, 90), ["a"]);
    }
}
