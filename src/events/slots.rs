//! How many live event streams may be open at once: per API key
//! (`server.max_streams_per_key`), per team (`server.max_streams_per_team`)
//! and in all (half of `server.max_connections`, so requests always have
//! room). A stream holds a [`StreamSlot`] for its life.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRefusal {
    /// The API key has `max_streams_per_key` open.
    Key,
    /// The team has `max_streams_per_team` open.
    Team,
    /// Streams hold half of the connections.
    All,
}

pub struct StreamSlots {
    per_key: usize,
    per_team: usize,
    all: usize,
    open: Arc<Mutex<Open>>,
}

#[derive(Default)]
struct Open {
    /// By (team, key id): key ids are unique within a team only.
    keys: HashMap<(Arc<str>, Arc<str>), usize>,
    teams: HashMap<Arc<str>, usize>,
    all: usize,
}

/// One open stream; its place is given back when dropped.
pub struct StreamSlot {
    open: Arc<Mutex<Open>>,
    team: Arc<str>,
    key: Arc<str>,
}

fn lock(open: &Mutex<Open>) -> MutexGuard<'_, Open> {
    // Plain counts: still right after a panic elsewhere.
    open.lock().unwrap_or_else(|e| e.into_inner())
}

impl StreamSlots {
    pub fn new(per_key: usize, per_team: usize, all: usize) -> Self {
        StreamSlots {
            per_key,
            per_team,
            all,
            open: Arc::default(),
        }
    }

    /// A place for one more stream of `key` of `team`, if the caps allow.
    pub fn open(&self, team: &Arc<str>, key: &Arc<str>) -> Result<StreamSlot, StreamRefusal> {
        let mut open = lock(&self.open);
        let id = (Arc::clone(team), Arc::clone(key));
        if open.keys.get(&id).copied().unwrap_or(0) >= self.per_key {
            return Err(StreamRefusal::Key);
        }
        if open.teams.get(team).copied().unwrap_or(0) >= self.per_team {
            return Err(StreamRefusal::Team);
        }
        if open.all >= self.all {
            return Err(StreamRefusal::All);
        }
        *open.keys.entry(id).or_insert(0) += 1;
        *open.teams.entry(Arc::clone(team)).or_insert(0) += 1;
        open.all += 1;
        Ok(StreamSlot {
            open: Arc::clone(&self.open),
            team: Arc::clone(team),
            key: Arc::clone(key),
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        let id = (Arc::clone(&self.team), Arc::clone(&self.key));
        if let Some(n) = open.keys.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                open.keys.remove(&id);
            }
        }
        if let Some(n) = open.teams.get_mut(&self.team) {
            *n -= 1;
            if *n == 0 {
                open.teams.remove(&self.team);
            }
        }
        open.all -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_holds_and_a_closed_stream_gives_its_place_back() {
        let slots = StreamSlots::new(2, 3, 4);
        let (acme, globex, other) = (Arc::from("acme"), Arc::from("globex"), Arc::from("x"));
        let (a, b, c) = (Arc::from("a"), Arc::from("b"), Arc::from("c"));
        let a1 = slots.open(&acme, &a).unwrap();
        let _a2 = slots.open(&acme, &a).unwrap();
        assert_eq!(slots.open(&acme, &a).err(), Some(StreamRefusal::Key));
        // The same key id in another team is another key.
        let _g = slots.open(&globex, &a).unwrap();
        let _b = slots.open(&acme, &b).unwrap();
        assert_eq!(slots.open(&acme, &c).err(), Some(StreamRefusal::Team));
        assert_eq!(slots.open(&other, &c).err(), Some(StreamRefusal::All));
        drop(a1);
        assert!(slots.open(&acme, &a).is_ok());
    }
}
