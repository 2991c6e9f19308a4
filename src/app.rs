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
use crate::gateway::audit::ConfigSource;
use crate::gateway::operator::in_force::{self, InForce, PutInForce};
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
    /// How long a start on a store without its node markers holds its
    /// first audit entries (not its listener); defaults to
    /// `store_epoch::FRESH_START_WAIT` on Redis, none on a memory store
    /// (docs/audit.md#resets).
    pub fresh_store_wait: Option<std::time::Duration>,
}

pub struct App {
    listener: TcpListener,
    routes: Routes,
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    reloader: Reloader,
    waiting: Arc<crate::http::Waiting>,
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
        let mut gateway = Arc::new(Core::new(Arc::clone(&config), store, channels, events));
        let mut phases = crate::start_phases::Phases::new(true);
        let stored = in_force::at_start(&gateway, clock.now()).await?;
        let known = stored.map(|(config, known)| {
            let channels = senders.for_config(&config);
            gateway = Arc::new(gateway.reloaded(Arc::new(config), channels));
            known
        });
        let config = Arc::clone(gateway.config());
        // The recorder first: series registered before it would be lost.
        let lasting = crate::http::Lasting::new(&config, Arc::clone(&clock), Metrics::install());
        crate::telemetry::register_config(&config);
        // The bank's own certificates on its lists (docs/wallet.md#the-banks-own-certificates).
        let own = crate::gateway::wallet::verify_own_all(&gateway, &config, clock.now())
            .await
            .map_err(std::io::Error::other)?;
        let router = crate::http::router(Arc::clone(&gateway), &lasting);
        let routes: Routes = Arc::new(arc_swap::ArcSwap::from_pointee(router));
        phases.done("the API teams, the metrics, the router", config.teams.len());
        // Recorded before any other entry: a team's trail shows the
        // configuration in force for everything after it.
        let fresh_wait = opts.fresh_store_wait;
        crate::gateway::store_epoch::record_the_start(&gateway, fresh_wait, Arc::clone(&clock))
            .await;
        phases.done("config.changed compared and recorded", 0);
        // The lists read for that check kept; the timer fetches the rest.
        crate::gateway::wallet::lists_in_force(&gateway, own, false, clock.now()).await;
        let live = Live::new(gateway);
        let bell = lasting.operator_bell();
        let waiting = lasting.waiting();
        let putting = Arc::new(Putting {
            live: Arc::clone(&live),
            routes: Arc::clone(&routes),
            lasting,
            senders,
        });
        let put = Arc::clone(&putting);
        let put: PutInForce = Arc::new(move |running, config, out| put.put(running, config, out));
        let known = known.unwrap_or_default();
        let in_force = InForce::new(Arc::clone(&clock), Arc::clone(&live), bell, known, put);
        let reloader = Reloader(Arc::new(Reloading {
            clock: Arc::clone(&clock),
            start_env: Environment::from_process(),
            putting,
            in_force,
        }));
        let listener = bind(&config.server.listen).await?;
        Ok(App {
            listener,
            routes,
            live,
            clock,
            reloader,
            waiting,
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

    /// The waiting calls' budget (docs/operations.md#waiting-calls), which
    /// counts the calls that hold a place now.
    pub fn waiting(&self) -> Arc<crate::http::Waiting> {
        Arc::clone(&self.waiting)
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
        let in_force = Arc::clone(&self.reloader.0.in_force).run(workers.stopped());
        workers.spawn("operator's teams", in_force);
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
    let reserving =
        gateway::operator::claims::run_reservations(live.clone(), clock.clone(), workers.stopped());
    workers.spawn("key reservations", reserving);
    let lists = gateway::wallet::run_trusted_lists(live.clone(), clock.clone(), workers.stopped());
    workers.spawn("trusted lists", lists);
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
    /// Built from the channel files and the operator API's channels, on
    /// the client of each one's reach.
    Built(crate::outbound::Clients),
    /// Given by a test or an embedder: kept as they are.
    Given(Channels),
}

impl Senders {
    fn for_config(&self, config: &Config) -> Channels {
        match self {
            Senders::Built(http) => config.senders(http),
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
    putting: Arc<Putting>,
    /// The worker keeping the operator's teams in force; a reload takes
    /// its turn.
    in_force: Arc<InForce>,
}

/// What puts a configuration in force: the gateway made of it, with the
/// senders of its channels and its teams' metric series, taken from
/// `live` by the workers and by the router of `routes`
/// (docs/operations.md#reloading-the-configuration).
struct Putting {
    live: Arc<Live>,
    routes: Routes,
    lasting: crate::http::Lasting,
    senders: Senders,
}

impl Putting {
    /// `config` in force in place of `running`'s: every request that
    /// starts after this returns is answered with it. The senders of
    /// `running` serve on when the channels are the same ones (a team
    /// written); `takes_out`: `config` may lack a team's keyspace
    /// `running` has.
    fn put(&self, running: &Core, config: Config, takes_out: bool) -> Arc<Core> {
        crate::telemetry::register_config(&config);
        let channels = match Arc::ptr_eq(&running.config().channels, &config.channels) {
            true => running.channels().clone(),
            false => self.senders.for_config(&config),
        };
        let gateway = Arc::new(running.reloaded(Arc::new(config), channels));
        let router = crate::http::router(Arc::clone(&gateway), &self.lasting);
        self.live
            .replace_taking_out(Arc::clone(&gateway), takes_out);
        self.routes.store(Arc::new(router));
        gateway
    }
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
        self.0.putting.live.current()
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
        // No look at the store's teams puts a set in force meanwhile.
        let mut turn = r.in_force.turn().await;
        let running = r.putting.live.current();
        let env = r.start_env.clone();
        let config = Arc::clone(running.config());
        let read = tokio::task::spawn_blocking(move || crate::config::reload(&config, &env)).await;
        let next = match read {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => return refused(e),
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
        let (config, read) = match turn.rebuilt(&running, &next.config).await {
            Ok(rebuilt) => rebuilt,
            Err(e) => return refused(e),
        };
        let own = crate::gateway::wallet::verify_own_all(&running, &config, r.clock.now()).await;
        let own = match own {
            Ok(own) => own,
            Err(e) => return refused(e),
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
        let gateway = r.putting.put(&running, config, true);
        turn.keep(read);
        drop(turn);
        crate::gateway::audit::record_configuration(&gateway, ConfigSource::Reload, &r.clock).await;
        crate::gateway::audit::record_departures(&gateway, &gone, &r.clock).await;
        // The keys of the files reloaded reserved now, not at the next round.
        let reserved =
            crate::gateway::operator::claims::reserve_configured(&gateway, r.clock.now());
        if let Err(e) = reserved.await {
            tracing::warn!(error = %e, "the keys of the file teams and operators are not reserved in the store yet; tried again at the next round");
        }
        // After its `config.changed`: the lists read for the check kept,
        // every other list fetched again by the timer's next round.
        crate::gateway::wallet::lists_in_force(&gateway, own, true, r.clock.now()).await;
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

/// A reload refused for `e`, logged: the running set stays in force.
fn refused(e: crate::config::ConfigError) -> Reloaded {
    tracing::error!(file = %e.file, key = %e.key, problem = %e.problem, "configuration not reloaded: {e}; the running one stays in force");
    Reloaded::Refused(e)
}

impl Reloader {
    /// The worker keeping the operator's teams in force: a test has it
    /// look at the store now.
    pub fn operator(&self) -> &InForce {
        &self.0.in_force
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
    let addr = app.local_addr()?;
    tracing::info!(%addr, store, "chatgate listening");
    let public_url = app.gateway().config().server.public_url.clone();
    if let Some(warning) = crate::http::port_mismatch(&public_url, addr) {
        tracing::warn!("{warning}");
    }
    for line in crate::http::where_things_are(&public_url) {
        tracing::info!("{line}");
    }
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

/// The listener on `server.listen`, or an error that names the key.
async fn bind(listen: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen on {listen} (server.listen): {e}"),
        )
    })
}
