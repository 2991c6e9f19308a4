//! Building and serving the app: [`App::build`] wires the store, channels,
//! events and router from a [`Config`] and binds the listener (port 0 in
//! tests); [`App::serve`] runs until the shutdown future resolves (the
//! connection loop and its limits are in `server.rs`).
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::channels::Channels;
use crate::config::{Config, StoreBackend};
use crate::domain::secrets::Pepper;
use crate::events::redis::{RedisLog, Servers};
use crate::events::Publisher;
use crate::gateway::{self, Gateway};
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
    router: axum::Router,
    gateway: Arc<Gateway>,
    clock: Arc<dyn Clock>,
}

impl App {
    /// Wires everything and binds `server.listen`.
    pub async fn build(config: Config, opts: Options) -> std::io::Result<App> {
        let config = Arc::new(config);
        let store: SharedStore = match opts.store {
            Some(s) => s,
            None => match config.store.backend {
                StoreBackend::Memory => Arc::new(MemoryStore::new()),
                StoreBackend::Redis => {
                    let store = &config.store;
                    let redis = if store.cluster_nodes.is_empty() {
                        RedisStore::connect(&store.redis_url, &store.key_prefix).await
                    } else {
                        RedisStore::connect_cluster(&store.cluster_nodes, &store.key_prefix).await
                    };
                    Arc::new(redis.map_err(std::io::Error::other)?)
                }
            },
        };
        let http = reqwest::Client::builder()
            .timeout(crate::channels::SEND_TIMEOUT)
            .connect_timeout(crate::channels::provider::CONNECT_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let channels = opts.channels.unwrap_or_else(|| config.senders(http));
        let clock = opts.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let names = SubjectNames::new(
            config.server.log_customer_refs,
            Pepper::new(config.server.pepper.expose_secret()),
        );
        let mut events = event_publisher(&config).await?.with_subject_names(names);
        if let Some(every) = opts.sse_keep_alive {
            events = events.with_keep_alive(every);
        }
        let gateway = Arc::new(Gateway::new(Arc::clone(&config), store, channels, events));
        let metrics = Metrics::install();
        crate::telemetry::register_config(&config);
        let router = crate::http::router(Arc::clone(&gateway), Arc::clone(&clock), metrics);
        let listen = &config.server.listen;
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on {listen} (server.listen): {e}"),
            )
        })?;
        Ok(App {
            listener,
            router,
            gateway,
            clock,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn gateway(&self) -> Arc<Gateway> {
        Arc::clone(&self.gateway)
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // The background workers, each stopped with the server.
        let stopped = || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }
        };
        let (gw, clock) = (&self.gateway, &self.clock);
        let sweeper = tokio::spawn(gateway::run_sweeper(gw.clone(), clock.clone(), stopped()));
        let dispatcher = tokio::spawn(gateway::run_dispatcher(
            gw.clone(),
            clock.clone(),
            stopped(),
        ));
        let watch = tokio::spawn(gateway::run_store_watch(
            gw.clone(),
            clock.clone(),
            stopped(),
        ));
        let limits = self.gateway.config.server.limits;
        let drain = self.gateway.config.server.shutdown_drain;
        let gateway = Arc::clone(&self.gateway);
        // On the signal: first drain (`/readyz` 503, everything still
        // served, so a load balancer moves away), then stop accepting and
        // finish what is in flight. Undelivered notices and events stay in
        // the store's outbox for the next instance.
        let stop = async move {
            shutdown.await;
            gateway
                .draining
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
            gateway.events.end_streams();
        };
        let result = crate::server::serve(self.listener, self.router, limits, stop).await;
        let _ = sweeper.await;
        let _ = dispatcher.await;
        let _ = watch.await;
        result
    }
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
            let teams = config.teams.keys().cloned().collect();
            let log = RedisLog::start(servers, &store.key_prefix, teams)
                .await
                .map_err(std::io::Error::other)?;
            Publisher::with_log(Arc::new(log))
        }
    })
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run(config: Config) -> std::io::Result<()> {
    let app = App::build(config, Options::default()).await?;
    let store = app.gateway.config.store.location();
    tracing::info!(addr = %app.local_addr()?, store, "chatgate listening");
    app.serve(shutdown_signal()).await
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
