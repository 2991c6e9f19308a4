//! One team never holds another (docs/operations.md#one-team-never-holds-another):
//! the endpoints without API keys that may wait on a team's provider (a
//! hosted login's short link and its callback, the back-channel logout,
//! the Shared Signals receiver) hold at most [`PER_TEAM`] requests of one
//! team at a time, and all teams together at most a quarter of
//! `server.max_connections` ([`all_teams`]: teams that share one slow
//! provider cannot fill the connections between them); more are answered
//! at once, 503 with `Retry-After`, each in its endpoint's format. Gates
//! exist only for the configured teams, so a stranger naming teams cannot
//! grow them; they outlive a reload.
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{header, HeaderValue};
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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

/// Requests of all teams together in flight at most on the gated
/// endpoints: a quarter of `max_connections` (at least one), so that the
/// rest always serve the requests that wait on nobody's provider.
pub fn all_teams(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

/// A request's place on the gated endpoints: its team's and one of all
/// teams', held until it drops.
#[derive(Debug)]
pub struct Place {
    _team: OwnedSemaphorePermit,
    _all: OwnedSemaphorePermit,
}

/// The gates, one per team seen, and the one of all teams.
#[derive(Default)]
pub struct TeamGates {
    teams: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Sized from `server.max_connections` at the first request (a
    /// `[server]` change needs a restart).
    all: OnceLock<Arc<Semaphore>>,
}

impl TeamGates {
    /// A place for one request naming `team`, held until it drops:
    /// `Ok(None)` for a team `config` does not have (answered without
    /// waiting on anyone), `Err(Full)` when [`PER_TEAM`] of its requests,
    /// or [`all_teams`] requests of every team, are in flight.
    pub fn enter(&self, config: &Config, team: &str) -> Result<Option<Place>, Full> {
        if config.team(team).is_none() {
            return Ok(None);
        }
        self.place(team, all_teams(config.server.limits.max_connections))
            .map(Some)
            .ok_or(Full)
    }

    fn place(&self, team: &str, all_teams: usize) -> Option<Place> {
        let all = self.all.get_or_init(|| Arc::new(Semaphore::new(all_teams)));
        let team = self.team_place(team)?;
        let all = Arc::clone(all).try_acquire_owned().ok()?;
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

    #[test]
    fn a_team_holds_at_most_its_share_and_never_anothers() {
        let gates = TeamGates::default();
        let held: Vec<_> = (0..PER_TEAM)
            .map(|_| gates.place("acme", 1024).unwrap())
            .collect();
        assert!(
            gates.place("acme", 1024).is_none(),
            "the 33rd waits for nothing"
        );
        assert!(
            gates.place("globex", 1024).is_some(),
            "another team is let in"
        );
        drop(held);
        assert!(gates.place("acme", 1024).is_some(), "a place comes back");
    }

    #[test]
    fn all_teams_together_hold_at_most_a_quarter_of_the_connections() {
        assert_eq!(all_teams(1024), 256);
        assert_eq!(all_teams(3), 1);
        let gates = TeamGates::default();
        // Teams sharing one slow provider: 24 of them, 32 each, would
        // take 768 places; a quarter of 1024 connections is all they get.
        let mut held = Vec::new();
        for t in 0..24 {
            for _ in 0..PER_TEAM {
                if let Some(p) = gates.place(&format!("brand-{t}"), all_teams(1024)) {
                    held.push(p);
                }
            }
        }
        assert_eq!(held.len(), 256);
        assert!(gates.place("acme", 1024).is_none(), "full for every team");
        // A team refused by the cap keeps no place of its own.
        held.pop();
        assert!(gates.place("acme", 1024).is_some());
    }
}
