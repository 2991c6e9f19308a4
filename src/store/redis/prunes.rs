//! When this process's commits prune an index of its dead members: on its
//! first add to the index (in a while), then on every [`PRUNE_EVERY`]th,
//! each prune removing up to 256 (`PRUNE` in `redis/commit.lua`). Per
//! add that is as many as pruning up to 32 on every add removed, with the
//! expiry set's read (`ZRANGEBYSCORE`) on one add in eight
//! (docs/decisions/0227-an-index-is-pruned-every-eighth-add.md).
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// A process's adds to an index between two prunes of it.
pub(crate) const PRUNE_EVERY: u32 = 8;
/// Dead members one prune removes at most (the script's `PRUNE`).
#[cfg(test)]
pub(crate) const PRUNED_AT_MOST: u32 = 256;
/// At this many indexes counted, the counts start again (each index is
/// then pruned on its next add): a bound on what this remembers.
const FORGET_AT: usize = 4096;

#[derive(Default)]
pub(crate) struct Prunes {
    /// Index key -> this process's adds to it since it last pruned it.
    adds: Mutex<HashMap<String, u32>>,
}

impl Prunes {
    /// Whether this add to index `key` is to prune it: the first this
    /// process makes to it since the counts started, then every
    /// [`PRUNE_EVERY`]th. (Counted per commit that asks, applied or not.)
    pub(crate) fn due(&self, key: &str) -> bool {
        let mut adds = self.adds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = adds.get_mut(key) {
            *n += 1;
            if *n < PRUNE_EVERY {
                return false;
            }
            *n = 0;
            return true;
        }
        if adds.len() >= FORGET_AT {
            adds.clear();
        }
        adds.insert(key.to_owned(), 0);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_is_pruned_at_its_first_add_then_every_eighth() {
        let p = Prunes::default();
        let pruned: Vec<bool> = (0..17).map(|_| p.due("idx")).collect();
        let at: Vec<usize> = (0..17).filter(|&i| pruned[i]).collect();
        assert_eq!(at, vec![0, 8, 16]);
        assert!(p.due("other"), "each index counts on its own");
    }

    #[test]
    fn past_the_bound_the_counts_start_again() {
        let p = Prunes::default();
        assert!(p.due("idx"));
        assert!(!p.due("idx"));
        for i in 0..FORGET_AT {
            p.due(&format!("k{i}"));
        }
        assert!(p.due("idx"), "forgotten: pruned at its next add");
        assert!(p.adds.lock().unwrap().len() <= FORGET_AT);
    }
}
