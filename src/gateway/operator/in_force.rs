//! The API teams kept in force on this instance
//! (docs/operator-api.md#every-instance-at-once): a worker of its own
//! reads their generation once a second and whenever a write rings, reads
//! the teams whose digest moved and has them put in force through the one
//! callback the app gives it ([`PutInForce`]: this folder builds no
//! router); a reload builds them again against the files it read, in a
//! [`Turn`] of its own.
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use super::look::{self, Changes, HeldTexts, Known};
use super::teams::ApiTeamsBell;
use super::{channels, index, restore};
use crate::config::{Config, ConfigError};
use crate::fared::{Failing, Fared};
use crate::gateway::{store_epoch, Core, Live};
use crate::time::every::ticks;
use crate::time::Clock;

/// Puts a configuration in force in place of the gateway running, and
/// answers the gateway made of it: every request that starts after it
/// returns is answered with it. Its `bool`: whether the configuration may
/// lack a team's keyspace the running one has.
pub type PutInForce = Arc<dyn Fn(&Core, Config, bool) -> Arc<Core> + Send + Sync>;

/// How often an instance reads the generation of the API teams.
const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The name of the looks at the API teams in [`InForce::failing`].
const LOOK: &str = "api teams";

/// What an instance put in force of the API teams.
#[derive(Default)]
pub struct ApiKnown {
    known: Known,
    generation: u64,
    /// Their stored forms, written back when the store comes back empty.
    held: HeldTexts,
    /// The `born` of the generation's record last read (`None`: not read
    /// yet): another one is a store that came back empty.
    born: Option<u64>,
    /// The nodes of the store found to have lost their data, as counted
    /// at the last look: a loss since is a Cluster master that may have
    /// lost API teams while the index stayed.
    losses: u64,
    /// The stored teams and channels left out, each with why: each is
    /// logged when it is first left out (or for another reason).
    left_out: BTreeSet<(String, String)>,
    /// The kept ones deleted that stay for the teams that list them, with
    /// those teams: each logged when it first stays (or for other teams).
    still_listed: BTreeSet<(String, String)>,
}

impl ApiKnown {
    /// What was read of the API teams (all of them: `Default` known),
    /// put in force, the left out logged and counted.
    fn read(mut changes: Changes) -> ApiKnown {
        let mut api = ApiKnown::default();
        api.took(&mut changes);
        api
    }

    /// What a look read, put in force: the left out logged once each and
    /// counted by `chatgate_api_teams_refused`.
    fn took(&mut self, changes: &mut Changes) {
        self.held.take(changes);
        let left_out = (changes.refused_kept())
            .chain(changes.refused.iter().map(|(n, w)| ("team", n, w)))
            .chain(changes.clashing.iter().map(|(n, w)| ("team", n, w)));
        let mut now = BTreeSet::new();
        for (what, name, why) in left_out {
            if !self.left_out.contains(&(name.clone(), why.clone())) {
                log_left_out(what, name, why);
            }
            now.insert((name.clone(), why.clone()));
        }
        metrics::gauge!("chatgate_api_teams_refused").set(now.len() as f64);
        self.left_out = now;
        let mut listed = BTreeSet::new();
        for (what, name, why) in std::mem::take(&mut changes.still_listed) {
            if !self.still_listed.contains(&(name.clone(), why.clone())) {
                tracing::error!(resource = what, name = %name, problem = %why, "an API {what} deleted is still listed by an API team in force; it stays until that team changes");
            }
            listed.insert((name, why));
        }
        self.still_listed = listed;
        self.known.apply(std::mem::take(&mut changes.known));
        self.generation = changes.generation;
    }
}

/// `gateway`'s configuration with every API team the store holds (`None`
/// while the operator API is off), and what was read of them: a stored
/// team or channel sealed under a key id no longer listed stops the
/// start-up, naming it and the key id; one that cannot be put in force for
/// another reason (a rule it breaks against the files, a channel it lists
/// gone) is left out with one error line.
pub async fn at_start(
    gateway: &Core,
    now: crate::time::Timestamp,
) -> std::io::Result<Option<(Config, ApiKnown)>> {
    if gateway.config().operator.is_none() {
        return Ok(None);
    }
    let mut phases = crate::start_phases::Phases::new(true);
    index::keep_in_parts(gateway, now).await.map_err(|e| {
        std::io::Error::other(format!("cannot keep the API teams' index in parts: {e}"))
    })?;
    phases.done("the API teams' index kept in parts", 0);
    let changes = look::changes(gateway, &Default::default())
        .await
        .map_err(|e| std::io::Error::other(format!("cannot read the API teams: {e}")))?;
    let read = changes.teams.len();
    phases.done("the API teams read, built, their keys settled", read);
    if let Some(e) = changes.first_refusal() {
        return Err(std::io::Error::other(e.to_string()));
    }
    let config =
        (changes.applied_to(gateway.config())).map_err(|e| std::io::Error::other(e.to_string()))?;
    phases.done(
        "the API teams put in the configuration",
        changes.teams.len(),
    );
    let known = ApiKnown::read(changes);
    phases.done("the API teams' index and forms kept", 0);
    Ok(Some((config, known)))
}

/// The worker that keeps the API teams the store holds in force, and the
/// turn a reload takes with it.
pub struct InForce {
    clock: Arc<dyn Clock>,
    live: Arc<Live>,
    bell: Arc<ApiTeamsBell>,
    put: PutInForce,
    /// The API teams in force; held through a look or a reload, so that
    /// they put their sets in force one after the other.
    api: tokio::sync::Mutex<ApiKnown>,
    /// Whether the looks at the API teams fail, for a log said once.
    failing: Failing,
}

impl InForce {
    /// The worker of `live`, which holds `known` in force; a write rings
    /// `bell`, which says the generation in force.
    pub fn new(
        clock: Arc<dyn Clock>,
        live: Arc<Live>,
        bell: Arc<ApiTeamsBell>,
        known: ApiKnown,
        put: PutInForce,
    ) -> Arc<InForce> {
        bell.in_force(known.generation);
        metrics::gauge!("chatgate_api_teams_refused").set(known.left_out.len() as f64);
        Arc::new(InForce {
            clock,
            live,
            bell,
            put,
            api: tokio::sync::Mutex::new(known),
            failing: Failing::default(),
        })
    }

    /// Puts the API teams the store holds in force, once a second and
    /// whenever a write rings, until `stop`.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let bell = Arc::clone(&self.bell);
        let mut tick = ticks(EVERY);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
                _ = bell.rung() => {}
            }
            self.sync().await;
        }
    }

    /// One look at the API teams: the generation read (one small record,
    /// whatever the number of teams); when it moved, the teams whose
    /// digest moved read and put in force, those gone removed. A store
    /// that does not answer changes nothing: the teams in force stay. It
    /// is said once when the looks start failing, and once when one reads
    /// again (docs/operations.md#logs).
    pub async fn sync(&self) {
        if self.live.current().config().operator.is_none() {
            return;
        }
        let looked = self.look().await;
        let fared = (self.failing).fared(LOOK, looked.is_err(), self.clock.now());
        match (looked, fared) {
            (Err(e), Fared::StartedFailing) => {
                tracing::warn!(error = %e, "the API teams cannot be read: those in force stay (said once while it lasts)")
            }
            (Ok(()), Fared::Recovered { since, failed }) => {
                tracing::info!(failed_looks = failed, since = %since, "the API teams are read again")
            }
            _ => {}
        }
    }

    /// [`InForce::sync`]'s look: the store's error, if any.
    async fn look(&self) -> crate::error::Result<()> {
        let mut api = self.api.lock().await;
        let now = self.clock.now();
        let looked = index::generation(&self.live.current(), now).await?;
        // The store came back empty: what this instance holds is written
        // back before anything is read as gone.
        let losses = store_epoch::node_losses(&self.live.current());
        let reset = api.born.is_some_and(|born| born != looked.born) || losses != api.losses;
        if reset && !api.held.is_empty() {
            let running = self.live.current();
            restore::restore(&running, &api.held.parsed()?, api.generation, now).await?;
        }
        (api.born, api.losses) = (Some(looked.born), losses);
        if looked.generation != api.generation {
            let running = self.live.current();
            let mut changes = look::changes(&running, &api.known).await?;
            if !changes.is_empty() {
                match changes.applied_to(running.config()) {
                    Ok(config) => {
                        let takes_out = takes_out(&running, &changes);
                        drop((self.put)(&running, config, takes_out));
                    }
                    Err(e) => {
                        tracing::error!(problem = %e.problem, "the API teams were not put in force")
                    }
                }
            }
            api.took(&mut changes);
        }
        self.bell.in_force(api.generation);
        // A channel's writer that stopped: its teams built again, now that
        // the channel is in force here.
        let rebuild = &looked.rebuild;
        channels::rebuild_stopped(&self.live.current(), rebuild, now).await;
        Ok(())
    }

    /// The turn of a reload: no look puts a set in force until it ends.
    pub async fn turn(&self) -> Turn<'_> {
        Turn {
            api: self.api.lock().await,
            bell: &self.bell,
        }
    }
}

/// Whether `changes` put in force in place of `running`'s teams may take
/// a team's keyspace out: a team gone, or one whose keyspace is another.
fn takes_out(running: &Core, changes: &Changes) -> bool {
    let in_force = &running.config().teams;
    let moved = |t: &&Arc<crate::config::Team>| {
        (in_force.get(&t.id)).is_some_and(|was| was.keyspace != t.keyspace)
    };
    let out = !changes.gone.is_empty() || !changes.displaced.is_empty();
    out || changes.teams.iter().any(|t| moved(&t))
}

/// A reload's turn with the API teams: taken before it reads the files,
/// given back once its set is in force.
pub struct Turn<'a> {
    api: tokio::sync::MutexGuard<'a, ApiKnown>,
    bell: &'a ApiTeamsBell,
}

impl Turn<'_> {
    /// `files` (the configuration re-read, its teams from files) with every
    /// API team the store holds built again against it, and what was read
    /// of them (docs/operator-api.md#every-instance-at-once). A file with
    /// an API team's id, or a stored team sealed under a key id no longer
    /// listed, refuses the reload, naming the team and why; a stored team
    /// these files refuse (a channel it lists gone, a rule it now breaks)
    /// is left out with one error line; a store that does not answer keeps
    /// the API teams in force as they were built (one line), and the files
    /// apply (docs/decisions/0427-a-reload-builds-the-api-teams-again.md).
    pub async fn rebuilt(
        &self,
        running: &Core,
        files: &Config,
    ) -> Result<(Config, Option<ApiKnown>), ConfigError> {
        let kept = look::keeping_api(files, running.config())?;
        if kept.operator.is_none() {
            return Ok((kept, None));
        }
        // A gateway of the new files, to build the stored teams against
        // (without a kept one the store no longer holds, as at a start).
        let kept = Arc::new(kept);
        let probe = running.reloaded(Arc::clone(&kept), running.channels().clone());
        let read = match look::without_unindexed(&probe, (*kept).clone()).await {
            Ok(against) => {
                let probe = running.reloaded(Arc::new(against), running.channels().clone());
                look::changes(&probe, &Default::default()).await
            }
            Err(e) => Err(e),
        };
        drop(probe);
        let changes = match read {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(error = %e, "the API teams were not read at the reload: those in force stay as they were built");
                return Ok((Arc::unwrap_or_clone(kept), None));
            }
        };
        if let Some(e) = changes.first_refusal() {
            return Err(e);
        }
        let config = changes.applied_to(files)?;
        Ok((config, Some(ApiKnown::read(changes))))
    }

    /// What [`Turn::rebuilt`] read, now in force.
    pub fn keep(&mut self, read: Option<ApiKnown>) {
        let Some(read) = read else {
            return;
        };
        let api = &mut *self.api;
        *api = ApiKnown {
            born: api.born,
            losses: api.losses,
            ..read
        };
        self.bell.in_force(api.generation);
    }
}

/// The error line of an API team or kept one (a channel) left out:
/// named, with why (the rule it breaks in words and its pointer, a key
/// id; never a value).
fn log_left_out(what: &str, name: &str, why: &str) {
    match what {
        "team" => {
            tracing::error!(team = %name, problem = %why, "an API team was not put in force; the one in force, if any, stays")
        }
        _ => {
            tracing::error!(resource = %what, name = %name, problem = %why, "an API {what} was not put in force; the one in force, if any, stays")
        }
    }
}
