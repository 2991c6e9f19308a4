//! One team never holds another (docs/operations.md#one-team-never-holds-another):
//! the endpoints without API keys that may wait on a team's provider (a
//! hosted login's short link and its callback, the back-channel logout,
//! the Shared Signals receiver) hold at most [`PER_TEAM`] requests of one
//! team at a time, and all teams together no more than the waiting calls'
//! budget lets them (`waiting.rs`: `server.max_waits`, a quarter of
//! `server.max_connections` at most, shared with the MCP server's waits,
//! so that teams that share one slow provider cannot fill the connections
//! between them); more are answered at once, 503 with `Retry-After`, each
//! in its endpoint's format. Gates exist only for the configured teams,
//! so a stranger naming teams cannot grow them; they outlive a reload.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{header, HeaderValue};
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::waiting::{self, Waiting};
use crate::config::Config;

/// Requests of one team in flight at most on the gated endpoints.
pub const PER_TEAM: usize = 32;

/// A team's gate is full: answer at once, 503 with `Retry-After`.
#[derive(Debug)]
pub struct Full;

impl Full {
    /// `res` (the endpoint's own 503) with `Retry-After: 1`.
    pub fn answer(res: Response) -> Response {
        let mut res = res;
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        res
    }
}

/// A request's place on the gated endpoints: its team's and one of all
/// teams', held until it drops.
#[derive(Debug)]
pub struct Place {
    _team: OwnedSemaphorePermit,
    _all: waiting::Place,
}

/// The gates, one per team seen, and the waiting calls' budget they share.
pub struct TeamGates {
    teams: Mutex<HashMap<String, Arc<Semaphore>>>,
    all: Arc<Waiting>,
}

impl TeamGates {
    /// Gates whose requests all together hold places of `all`.
    pub fn new(all: Arc<Waiting>) -> Self {
        TeamGates {
            teams: Mutex::default(),
            all,
        }
    }

    /// A place for one request naming `team`, held until it drops:
    /// `Ok(None)` for a team `config` does not have (answered without
    /// waiting on anyone), `Err(Full)` when [`PER_TEAM`] of its requests
    /// are in flight, or the waiting calls' budget is spent.
    pub fn enter(&self, config: &Config, team: &str) -> Result<Option<Place>, Full> {
        if config.team(team).is_none() {
            return Ok(None);
        }
        self.place(team).map(Some).ok_or(Full)
    }

    fn place(&self, team: &str) -> Option<Place> {
        let team = self.team_place(team)?;
        let all = self.all.any()?;
        Some(Place {
            _team: team,
            _all: all,
        })
    }

    fn team_place(&self, team: &str) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.teams.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(
                gates
                    .entry(team.to_string())
                    .or_insert_with(|| Arc::new(Semaphore::new(PER_TEAM))),
            )
        };
        gate.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gates(all: usize) -> TeamGates {
        TeamGates::new(Arc::new(Waiting::new(all, 64)))
    }

    #[test]
    fn a_team_holds_at_most_its_share_and_never_anothers() {
        let gates = gates(256);
        let held: Vec<_> = (0..PER_TEAM)
            .map(|_| gates.place("acme").unwrap())
            .collect();
        assert!(gates.place("acme").is_none(), "the 33rd waits for nothing");
        assert!(gates.place("globex").is_some(), "another team is let in");
        drop(held);
        assert!(gates.place("acme").is_some(), "a place comes back");
    }

    #[test]
    fn all_teams_together_hold_at_most_the_waiting_calls_budget() {
        let gates = gates(256);
        // Teams sharing one slow provider: 24 of them, 32 each, would
        // take 768 places; the budget (a quarter of 1024) is all they get.
        let mut held = Vec::new();
        for t in 0..24 {
            for _ in 0..PER_TEAM {
                if let Some(p) = gates.place(&format!("brand-{t}")) {
                    held.push(p);
                }
            }
        }
        assert_eq!(held.len(), 256);
        assert!(gates.place("acme").is_none(), "full for every team");
        // A team refused by the cap keeps no place of its own.
        held.pop();
        assert!(gates.place("acme").is_some());
    }

    #[test]
    fn the_mcp_server_s_waits_and_the_gates_share_one_budget() {
        let waiting = Arc::new(Waiting::new(3, 64));
        let gates = TeamGates::new(Arc::clone(&waiting));
        let (team, key) = (Arc::from("acme"), Arc::from("bot"));
        let _w1 = waiting.for_key(&team, &key).unwrap();
        let _w2 = waiting.for_key(&team, &key).unwrap();
        let _g = gates.place("globex").unwrap();
        assert!(
            waiting.for_key(&team, &key).is_none(),
            "the budget is spent"
        );
        // A login takes the waits' places, never the other way round.
        let _g2 = gates.place("globex").unwrap();
        let _g3 = gates.place("initech").unwrap();
        assert_eq!(waiting.held(), 3);
        assert!(gates.place("globex").is_none(), "logins hold every place");
    }
}
