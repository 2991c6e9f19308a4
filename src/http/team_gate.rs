//! One team never holds another (docs/operations.md#one-team-never-holds-another):
//! the endpoints without API keys that may wait on a team's provider (the
//! hosted login's callback, the back-channel logout, the Shared Signals
//! receiver) hold at most [`PER_TEAM`] requests of one team at a time;
//! more are answered at once, 503 with `Retry-After`, each in its
//! endpoint's format. Gates exist only for the configured teams, so a
//! stranger naming teams cannot grow them; they outlive a reload.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// The gates, one per team seen.
#[derive(Default)]
pub struct TeamGates(Mutex<HashMap<String, Arc<Semaphore>>>);

impl TeamGates {
    /// A place for one request naming `team`, held until it drops:
    /// `Ok(None)` for a team `config` does not have (answered without
    /// waiting on anyone), `Err(Full)` when [`PER_TEAM`] of its requests
    /// are in flight.
    pub fn enter(&self, config: &Config, team: &str) -> Result<Option<OwnedSemaphorePermit>, Full> {
        if config.team(team).is_none() {
            return Ok(None);
        }
        self.place(team).map(Some).ok_or(Full)
    }

    fn place(&self, team: &str) -> Option<OwnedSemaphorePermit> {
        let gate = {
            let mut gates = self.0.lock().unwrap_or_else(|p| p.into_inner());
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
            .map(|_| gates.place("acme").unwrap())
            .collect();
        assert!(gates.place("acme").is_none(), "the 33rd waits for nothing");
        assert!(gates.place("globex").is_some(), "another team is let in");
        drop(held);
        assert!(gates.place("acme").is_some(), "a place comes back");
    }
}
