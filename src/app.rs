//! Building and serving the app: [`App::build`] wires the store, channels,
//! events and router from a [`Config`] and binds the listener (port 0 in
//! tests); [`App::serve`] runs until the shutdown future resolves (the
//! connection loop and its limits are in `server/mod.rs`); [`Reloader::reload`]
//! puts a re-read configuration in force (on SIGHUP, see [`run`]).
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::channels::Channels;
use crate::config::{warn_once, Config, Environment, StartupWarning, StoreBackend};
use crate::domain::secrets::Pepper;
use crate::events::redis::{RedisLog, Servers};
use crate::events::Publisher;
use crate::fared::{Failing, Fared};
use crate::gateway::audit::ConfigSource;
use crate::gateway::{self, Core, Dispatcher, Live, Poller, Sweeper, Workers};
use crate::server::Routes;
use crate::store::memory::MemoryStore;
use crate::store::redis::RedisStore;
use crate::store::SharedStore;
use crate::telemetry::{Metrics, SubjectNames};
use crate::time::{Clock, SystemClock};

/// What tests and embedders may replace.
#[derive(Default)]
pub struct Options {
    /// Defaults to the wall clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Defaults to the store the config names.
    pub store: Option<SharedStore>,
    /// Defaults to senders built from the channel files.
    pub channels: Option<Channels>,
    /// Keep-alive interval of the live event stream; defaults to 15 s.
    pub sse_keep_alive: Option<std::time::Duration>,
}

pub struct App {
    listener: TcpListener,
    routes: Routes,
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    reloader: Reloader,
}

impl App {
    /// Wires everything and binds `server.listen`.
    pub async fn build(config: Config, opts: Options) -> std::io::Result<App> {
        let config = Arc::new(config);
        let store: SharedStore = match opts.store {
            Some(s) => s,
            None => store_of(&config).await?,
        };
        let http = crate::channels::provider::client(crate::channels::SEND_TIMEOUT)
            .map_err(std::io::Error::other)?;
        let senders = match opts.channels {
            Some(given) => Senders::Given(given),
            None => Senders::Built(http),
        };
        let channels = senders.for_config(&config);
        let clock = opts.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let names = SubjectNames::new(
            config.server.log_customer_refs,
            Pepper::new(config.server.pepper.expose_secret()),
        );
        let mut events = event_publisher(&config).await?.with_subject_names(names);
        if let Some(every) = opts.sse_keep_alive {
            events = events.with_keep_alive(every);
        }
        let gateway = Arc::new(Core::new(Arc::clone(&config), store, channels, events));
        let (gateway, api) = with_api_teams(gateway, &senders).await?;
        let config = Arc::clone(gateway.config());
        // The recorder first: series registered before it would be lost.
        let lasting = crate::http::Lasting::new(&config, Arc::clone(&clock), Metrics::install());
        lasting.api_teams().in_force(api.generation);
        metrics::gauge!("chatgate_api_teams_refused").set(api.left_out.len() as f64);
        crate::telemetry::register_config(&config);
        let router = crate::http::router(Arc::clone(&gateway), &lasting);
        let routes: Routes = Arc::new(arc_swap::ArcSwap::from_pointee(router));
        // Recorded before the first request: a team's trail shows the
        // configuration in force for everything after it.
        let started = clock.now();
        crate::gateway::audit::record_configuration(&gateway, ConfigSource::Start, started).await;
        let live = Live::new(gateway);
        let reloader = Reloader(Arc::new(Reloading {
            clock: Arc::clone(&clock),
            start_env: Environment::from_process(),
            live: Arc::clone(&live),
            routes: Arc::clone(&routes),
            lasting,
            senders,
            one_at_a_time: tokio::sync::Mutex::new(()),
            api: tokio::sync::Mutex::new(api),
            failing: Failing::default(),
        }));
        let listen = &config.server.listen;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {listen} (server.listen): {e}"),
            )
        })?;
        Ok(App {
            listener,
            routes,
            live,
            clock,
            reloader,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The gateway in force (a reload replaces it; its store, events and
    /// outbox stay the same).
    pub fn gateway(&self) -> Arc<Core> {
        self.live.current()
    }

    /// What puts a re-read configuration in force (the SIGHUP handler's).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut workers = start_workers(&self.live, &self.clock, stop_rx);
        let sync = self.reloader.clone().keep_api_teams(workers.stopped());
        workers.spawn("api teams", sync);
        // `[server]` is kept by a reload: the gateway in force has the start's.
        let gateway = self.live.current();
        let limits = gateway.config().server.limits;
        let drain = gateway.config().server.shutdown_drain;
        // On the signal: first drain (`/readyz` 503, everything still
        // served, so a load balancer moves away), then stop accepting and
        // finish what is in flight. Undelivered notices and events stay in
        // the store's outbox for the next instance.
        let stop = async move {
            shutdown.await;
            gateway
                .draining()
                .store(true, std::sync::atomic::Ordering::Relaxed);
            if !drain.is_zero() {
                tracing::info!(
                    drain_secs = drain.as_secs_f64(),
                    "draining: /readyz answers 503"
                );
                tokio::time::sleep(drain).await;
            }
            let _ = stop_tx.send(true);
            // Live event streams never end by themselves: end them, so the
            // server's wait for requests in flight is not endless.
            gateway.events().end_streams();
        };
        let result = crate::server::serve(self.listener, self.routes, limits, stop).await;
        workers.join().await;
        result
    }
}

/// The background workers, each stopped with the server (once `stop`
/// holds `true`): a new worker is one line here.
fn start_workers(
    live: &Arc<Live>,
    clock: &Arc<dyn Clock>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Workers {
    let mut workers = Workers::new(stop);
    let (poller, polls) = Poller::new(live.clone(), clock.clone());
    workers.spawn("poller", poller.run(workers.stopped()));
    let sweeper = Sweeper::new(live.clone(), clock.clone(), polls);
    workers.spawn("sweeper", sweeper.run(workers.stopped()));
    let dispatcher = Dispatcher::new(live.clone(), clock.clone());
    workers.spawn("dispatcher", dispatcher.run(workers.stopped()));
    gateway::spawn_sinks(&mut workers, live, clock);
    let watch = gateway::run_store_watch(live.clone(), clock.clone(), workers.stopped());
    workers.spawn("store watch", watch);
    workers
}

/// The store `config` names.
pub(crate) async fn store_of(config: &Config) -> std::io::Result<SharedStore> {
    Ok(match config.store.backend {
        StoreBackend::Memory => {
            warn_once(StartupWarning::MemoryStore, "", || {
                tracing::warn!(
                    "store.backend is memory: the audit trail lives only as long as this process (docs/audit.md#retention)"
                )
            });
            Arc::new(MemoryStore::new())
        }
        StoreBackend::Redis => {
            let store = &config.store;
            let redis = if store.cluster_nodes.is_empty() {
                RedisStore::connect(&store.redis_url, &store.key_prefix).await
            } else {
                RedisStore::connect_cluster(&store.cluster_nodes, &store.key_prefix).await
            };
            Arc::new(redis.map_err(std::io::Error::other)?)
        }
    })
}

/// The core of `config` on the store it names, for a command that reads
/// or writes what the store keeps (`chatgate teams export`): no listener,
/// no worker, no API team put in force.
pub async fn core_for_command(config: Config) -> std::io::Result<Arc<Core>> {
    let config = Arc::new(config);
    let store = store_of(&config).await?;
    let http = crate::channels::provider::client(crate::channels::SEND_TIMEOUT)
        .map_err(std::io::Error::other)?;
    let channels = Senders::Built(http).for_config(&config);
    let events = event_publisher(&config).await?;
    Ok(Arc::new(Core::new(config, store, channels, events)))
}

/// The event publisher and its log, on the store the config names: Redis
/// streams (shared by every instance) or an in-process history.
async fn event_publisher(config: &Config) -> std::io::Result<Publisher> {
    let store = &config.store;
    Ok(match store.backend {
        StoreBackend::Memory => Publisher::new(),
        StoreBackend::Redis => {
            let servers = if store.cluster_nodes.is_empty() {
                Servers::Single(&store.redis_url)
            } else {
                Servers::Cluster(&store.cluster_nodes)
            };
            let log = RedisLog::start(servers, &store.key_prefix)
                .await
                .map_err(std::io::Error::other)?;
            Publisher::with_log(Arc::new(log))
        }
    })
}

/// Where a reloaded set's channel senders come from.
enum Senders {
    /// Built from the channel files, on this HTTP client.
    Built(reqwest::Client),
    /// Given by a test or an embedder: kept as they are.
    Given(Channels),
}

impl Senders {
    fn for_config(&self, config: &Config) -> Channels {
        match self {
            Senders::Built(http) => config.senders(http.clone()),
            Senders::Given(given) => given.clone(),
        }
    }
}

/// Puts a re-read configuration in force; cheap to clone.
#[derive(Clone)]
pub struct Reloader(Arc<Reloading>);

struct Reloading {
    clock: Arc<dyn Clock>,
    /// The environment as it was at start: `${NAME}` keeps its value.
    start_env: Environment,
    live: Arc<Live>,
    routes: Routes,
    lasting: crate::http::Lasting,
    senders: Senders,
    /// Two signals in a row reload one after the other.
    one_at_a_time: tokio::sync::Mutex<()>,
    /// The API teams in force: their digests as the store's index gave
    /// them, and its generation.
    api: tokio::sync::Mutex<ApiKnown>,
    /// Whether the looks at the API teams fail, for a log said once.
    failing: Failing,
}

/// What an instance put in force of the API teams.
#[derive(Default)]
struct ApiKnown {
    known: gateway::operator_look::Known,
    generation: u64,
    /// Their stored forms, written back when the store comes back empty.
    held: gateway::operator_look::Held,
    /// The `born` of the generation's record last read (`None`: not read
    /// yet): another one is a store that came back empty.
    born: Option<u64>,
    /// The nodes of the store found to have lost their data, as counted
    /// at the last look: a loss since is a Cluster master that may have
    /// lost API teams while the index stayed.
    losses: u64,
    /// The stored teams and channels left out, each with why: each is
    /// logged when it is first left out (or for another reason).
    left_out: std::collections::BTreeSet<(String, String)>,
}

impl ApiKnown {
    /// What was read of the API teams (all of them: `Default` known),
    /// put in force, the left out logged and counted.
    fn read(mut changes: gateway::operator_look::Changes) -> ApiKnown {
        let mut api = ApiKnown::default();
        api.took(&mut changes);
        api
    }

    /// What a look read, put in force: the left out logged once each and
    /// counted by `chatgate_api_teams_refused`.
    fn took(&mut self, changes: &mut gateway::operator_look::Changes) {
        self.held.take(changes);
        let left_out = (changes
            .refused_channels
            .iter()
            .map(|(n, w)| ("channel", n, w)))
        .chain(changes.refused.iter().map(|(n, w)| ("team", n, w)))
        .chain(changes.clashing.iter().map(|(n, w)| ("team", n, w)));
        let mut now = std::collections::BTreeSet::new();
        for (what, name, why) in left_out {
            if !self.left_out.contains(&(name.clone(), why.clone())) {
                log_left_out(what, name, why);
            }
            now.insert((name.clone(), why.clone()));
        }
        metrics::gauge!("chatgate_api_teams_refused").set(now.len() as f64);
        self.left_out = now;
        self.known = std::mem::take(&mut changes.known);
        self.generation = changes.generation;
    }
}

/// How often an instance reads the generation of the API teams.
const API_TEAMS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The name of the looks at the API teams in [`Reloading::failing`].
const API_TEAMS_LOOK: &str = "api teams";

/// `gateway` with every API team the store holds (none while the operator
/// API is off): a stored team or channel sealed under a key id no longer
/// listed stops the start-up, naming it and the key id; one that cannot
/// be put in force for another reason (a rule it breaks against the
/// files, a channel it lists gone) is left out with one error line.
async fn with_api_teams(
    gateway: Arc<Core>,
    senders: &Senders,
) -> std::io::Result<(Arc<Core>, ApiKnown)> {
    if gateway.config().operator.is_none() {
        return Ok((gateway, ApiKnown::default()));
    }
    let changes = gateway::operator_look::changes(&gateway, &Default::default())
        .await
        .map_err(|e| std::io::Error::other(format!("cannot read the API teams: {e}")))?;
    if let Some(e) = changes.first_refusal() {
        return Err(std::io::Error::other(e.to_string()));
    }
    let config =
        (changes.applied_to(gateway.config())).map_err(|e| std::io::Error::other(e.to_string()))?;
    let channels = senders.for_config(&config);
    let gateway = Arc::new(gateway.reloaded(Arc::new(config), channels));
    Ok((gateway, ApiKnown::read(changes)))
}

/// What a reload did.
#[derive(Debug)]
pub enum Reloaded {
    /// The new set is in force; these keys changed but need a restart.
    Applied { restart_needed: Vec<String> },
    /// The new set was refused (nothing changed), for this problem.
    Refused(crate::config::ConfigError),
}

impl Reloader {
    /// The gateway in force: what the next request is answered with.
    pub fn in_force(&self) -> Arc<Core> {
        self.0.live.current()
    }

    /// Re-reads the team files, channel files, `[defaults]` and the secret
    /// files they name, builds the API teams of the store again against
    /// them, validates the whole set, then puts it in force at once: every
    /// request that starts after this returns is answered with it, and the
    /// background workers take it at their next round. An invalid set
    /// changes nothing. Each outcome is logged in one line (and one more
    /// naming the keys that need a restart)
    /// (docs/operations.md#reloading-the-configuration).
    pub async fn reload(&self) -> Reloaded {
        let r = &self.0;
        // In the order a look at the API teams takes them.
        let mut api = r.api.lock().await;
        let _one = r.one_at_a_time.lock().await;
        let running = r.live.current();
        let env = r.start_env.clone();
        let config = Arc::clone(running.config());
        let read = tokio::task::spawn_blocking(move || crate::config::reload(&config, &env)).await;
        let next = match read {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                tracing::error!(file = %e.file, key = %e.key, problem = %e.problem, "configuration not reloaded: {e}; the running one stays in force");
                return Reloaded::Refused(e);
            }
            Err(join) => {
                let e = crate::config::ConfigError::new(
                    &running.config().path.display().to_string(),
                    "",
                    format!("reading stopped: {join}"),
                );
                tracing::error!(error = %e, "configuration not reloaded; the running one stays in force");
                return Reloaded::Refused(e);
            }
        };
        let (config, read) = match self.with_api_teams_rebuilt(&running, &next.config).await {
            Ok(rebuilt) => rebuilt,
            Err(e) => {
                tracing::error!(file = %e.file, key = %e.key, problem = %e.problem, "configuration not reloaded: {e}; the running one stays in force");
                return Reloaded::Refused(e);
            }
        };
        let (team_count, channel_count) = (config.teams.len(), config.channels.len());
        // Teams of the set in force that the new one lacks, by keyspace
        // (a team written again under a deleted team's id is another
        // team): their trails record the departure once the new set is in
        // force.
        let gone: Vec<String> = running
            .config()
            .teams
            .values()
            .filter(|t| config.team_in(&t.keyspace).is_none())
            .map(|t| t.keyspace.clone())
            .collect();
        let gateway = self.put_in_force(&running, config);
        if let Some(read) = read {
            *api = ApiKnown {
                born: api.born,
                losses: api.losses,
                ..read
            };
            r.lasting.api_teams().in_force(api.generation);
        }
        drop(api);
        let now = r.clock.now();
        crate::gateway::audit::record_configuration(&gateway, ConfigSource::Reload, now).await;
        crate::gateway::audit::record_departures(&gateway, &gone, now).await;
        tracing::info!(
            teams = team_count,
            channels = channel_count,
            "configuration reloaded"
        );
        if !next.restart_needed.is_empty() {
            tracing::warn!(
                keys = %next.restart_needed.join(","),
                "configuration reloaded, but these changed keys need a restart to apply: {}",
                next.restart_needed.join(", ")
            );
        }
        Reloaded::Applied {
            restart_needed: next.restart_needed,
        }
    }
}

impl Reloader {
    /// `files` (the configuration re-read, its teams from files) with every
    /// API team the store holds built again against it, and what was read
    /// of them (docs/operator-api.md#every-instance-at-once). A file with
    /// an API team's id, or a stored team sealed under a key id no longer
    /// listed, refuses the reload, naming the team and why; a stored team
    /// these files refuse (a channel it lists gone, a rule it now breaks)
    /// is left out with one error line; a store that does not answer keeps the API teams in
    /// force as they were built (one line), and the files apply
    /// (docs/decisions/0427-a-reload-builds-the-api-teams-again.md).
    async fn with_api_teams_rebuilt(
        &self,
        running: &Core,
        files: &Config,
    ) -> Result<(Config, Option<ApiKnown>), crate::config::ConfigError> {
        let kept = files.keeping_api_teams(running.config())?;
        if kept.operator.is_none() {
            return Ok((kept, None));
        }
        // A gateway of the new files, to build the stored teams against.
        let kept = Arc::new(kept);
        let probe = running.reloaded(Arc::clone(&kept), running.channels().clone());
        let read = gateway::operator_look::changes(&probe, &Default::default()).await;
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

    /// `config` in force in place of `running`'s: every request that
    /// starts after this returns is answered with it.
    fn put_in_force(&self, running: &Core, config: Config) -> Arc<Core> {
        let r = &self.0;
        crate::telemetry::register_config(&config);
        let channels = r.senders.for_config(&config);
        let gateway = Arc::new(running.reloaded(Arc::new(config), channels));
        let router = crate::http::router(Arc::clone(&gateway), &r.lasting);
        r.live.replace(Arc::clone(&gateway));
        r.routes.store(Arc::new(router));
        gateway
    }

    /// Puts the API teams the store holds in force, once a second and
    /// whenever a write rings, until `stop`
    /// (docs/operator-api.md#every-instance-at-once).
    async fn keep_api_teams(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let bell = self.0.lasting.api_teams();
        let mut tick = tokio::time::interval(API_TEAMS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {}
                _ = bell.rung() => {}
            }
            self.sync_api_teams().await;
        }
    }

    /// One look at the API teams: the generation read (one small record,
    /// whatever the number of teams); when it moved, the teams whose
    /// digest moved read and put in force, those gone removed. A store
    /// that does not answer changes nothing: the teams in force stay. It
    /// is said once when the looks start failing, and once when one reads
    /// again (docs/operations.md#logs).
    pub async fn sync_api_teams(&self) {
        let r = &self.0;
        if r.live.current().config().operator.is_none() {
            return;
        }
        let looked = self.look_at_api_teams().await;
        let fared = (r.failing).fared(API_TEAMS_LOOK, looked.is_err(), r.clock.now());
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

    /// [`Reloader::sync_api_teams`]' look: the store's error, if any.
    async fn look_at_api_teams(&self) -> crate::error::Result<()> {
        let r = &self.0;
        let bell = r.lasting.api_teams();
        let mut api = r.api.lock().await;
        let now = r.clock.now();
        let looked = gateway::operator_index::generation(&r.live.current(), now).await?;
        // The store came back empty: what this instance holds is written
        // back before anything is read as gone.
        let losses = gateway::store_epoch::node_losses(&r.live.current());
        let reset = api.born.is_some_and(|born| born != looked.born) || losses != api.losses;
        if reset && !api.held.is_empty() {
            let running = r.live.current();
            gateway::operator_restore::restore(&running, &api.held, api.generation, now).await?;
        }
        (api.born, api.losses) = (Some(looked.born), losses);
        if looked.generation != api.generation {
            let _one = r.one_at_a_time.lock().await;
            let running = r.live.current();
            let mut changes = gateway::operator_look::changes(&running, &api.known).await?;
            if !changes.is_empty() {
                match changes.applied_to(running.config()) {
                    Ok(config) => drop(self.put_in_force(&running, config)),
                    Err(e) => {
                        tracing::error!(problem = %e.problem, "the API teams were not put in force")
                    }
                }
            }
            api.took(&mut changes);
        }
        bell.in_force(api.generation);
        // A channel's writer that stopped: its teams built again, now that
        // the channel is in force here.
        let rebuild = &looked.rebuild;
        gateway::operator_channels::rebuild_stopped(&r.live.current(), rebuild, now).await;
        Ok(())
    }
}

/// The error line of an API team or channel left out: named, with why
/// (a pointer, a key id; never a value).
fn log_left_out(what: &str, name: &str, why: &str) {
    match what {
        "channel" => {
            tracing::error!(channel = %name, problem = %why, "an API channel was not put in force; the one in force, if any, stays")
        }
        _ => {
            tracing::error!(team = %name, problem = %why, "an API team was not put in force; the one in force, if any, stays")
        }
    }
}

/// Runs the gateway until Ctrl-C or SIGTERM; SIGHUP reloads the
/// configuration.
pub async fn run(config: Config) -> std::io::Result<()> {
    let app = App::build(config, Options::default()).await?;
    // Listening for SIGHUP before saying "listening": from then on a signal
    // reloads instead of ending the process.
    reload_on_hangup(app.reloader())?;
    let store = app.gateway().config().store.location();
    tracing::info!(addr = %app.local_addr()?, store, "chatgate listening");
    app.serve(shutdown_signal()).await
}

/// Reloads on every SIGHUP, one after the other.
#[cfg(unix)]
fn reload_on_hangup(reloader: Reloader) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            reloader.reload().await;
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_hangup(_reloader: Reloader) -> std::io::Result<()> {
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
