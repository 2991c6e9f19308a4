//! The gateway in force: one `Arc` a reload replaces whole
//! (docs/operations.md#reloading-the-configuration), so whoever takes it
//! works with one configuration from start to end. Background workers take
//! it anew at each round; a request keeps the one it started with.
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, watch};

use super::Core;
use crate::config::Team;

/// A team taken out of the configuration in force, by keyspace: what an
/// audit sink still sends its last entries for.
pub type Departed = (String, Arc<Team>);

pub struct Live {
    current: ArcSwap<Core>,
    /// Counts the replacements, for workers that act on one (new teams).
    replaced: watch::Sender<u64>,
    /// The count of the last replacement that may have taken a team's
    /// keyspace out (one that only adds or changes teams does not move it).
    last_removal: std::sync::atomic::AtomicU64,
    /// Those told of every team a replacement takes out (the audit
    /// sinks), however many replacements come between their rounds.
    departures: std::sync::Mutex<Vec<mpsc::UnboundedSender<Departed>>>,
}

impl Live {
    pub fn new(gateway: Arc<Core>) -> Arc<Live> {
        Arc::new(Live {
            current: ArcSwap::new(gateway),
            replaced: watch::channel(0).0,
            last_removal: Default::default(),
            departures: Default::default(),
        })
    }

    /// The gateway in force now.
    pub fn current(&self) -> Arc<Core> {
        self.current.load_full()
    }

    /// Puts `gateway` in force for everyone who takes it from now on; it
    /// may lack teams of the one it replaces.
    pub fn replace(&self, gateway: Arc<Core>) {
        self.replace_taking_out(gateway, true);
    }

    /// [`Live::replace`], saying whether `gateway` may lack a team's
    /// keyspace of the one it replaces (`false`: it only adds or changes
    /// teams, so a worker that missed it has only new keyspaces to find).
    pub fn replace_taking_out(&self, gateway: Arc<Core>, takes_out: bool) {
        use std::sync::atomic::Ordering;
        if takes_out {
            // Before the count moves: whoever reads the count, then this,
            // sees every removal up to that count.
            let next = self.generation() + 1;
            self.last_removal.fetch_max(next, Ordering::SeqCst);
            self.tell_departures(&self.current(), &gateway);
        }
        self.current.store(gateway);
        self.replaced.send_modify(|n| *n += 1);
    }

    /// The teams every replacement from now on takes out, each with its
    /// keyspace (a team deleted and written again under its id is taken
    /// out too), for a worker that must not miss one between its rounds.
    pub fn departures(&self) -> mpsc::UnboundedReceiver<Departed> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut told = self.departures.lock().unwrap_or_else(|e| e.into_inner());
        told.push(tx);
        rx
    }

    /// Tells whoever listens of the teams of `was` that `next` lacks.
    fn tell_departures(&self, was: &Core, next: &Core) {
        let mut told = self.departures.lock().unwrap_or_else(|e| e.into_inner());
        if told.is_empty() {
            return;
        }
        // The keyspaces the two share are not looked at: a write costs its
        // own team, whatever the number of teams.
        let (was, next) = (was.config(), next.config());
        let gone = (next.sums.keyspaces_gone_since(&was.sums)).filter_map(|k| was.team_in(k));
        for team in gone {
            let departed = (team.keyspace.clone(), Arc::clone(team));
            told.retain(|tx| tx.send(departed.clone()).is_ok());
        }
    }

    /// The count of the last replacement that may have taken a team's
    /// keyspace out (read after [`Live::generation`], never older than
    /// the removals up to it).
    pub fn last_removal(&self) -> u64 {
        self.last_removal.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many times [`Live::replace`] has run: a worker that saw two
    /// generations apart missed a gateway in between.
    pub fn generation(&self) -> u64 {
        *self.replaced.borrow()
    }

    /// Wakes on every [`Live::replace`].
    pub fn replacements(&self) -> watch::Receiver<u64> {
        self.replaced.subscribe()
    }
}
