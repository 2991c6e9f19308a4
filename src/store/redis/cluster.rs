//! A Redis Cluster link that routes each command itself, so that a master
//! that fails holds up only the commands for its own slots
//! (docs/decisions/0054-routing-redis-cluster-commands-per-master.md).
//!
//! The slot map comes from `CLUSTER SLOTS`; each master has its own
//! multiplexed connection, made on first use and made again after it
//! broke (at most one attempt per node at a time, and none for
//! [`RETRY_DOWN`] after one failed, so a dead master costs its callers
//! little). A command goes to the master of its key's slot; `MOVED` is
//! followed (and patches the map), `ASK` is followed once with `ASKING`,
//! `TRYAGAIN` and `LOADING` are retried after a short wait, and a script the
//! node does not know is loaded there. An error reply is read by its leading
//! code word alone ([`Refusal`]), never by its text, which Redis and Valkey
//! word differently. The map is read again in the background — when a
//! node fails, on `MOVED` or `CLUSTERDOWN`, and every [`REFRESH_EVERY`] —
//! by a task that never holds up a request: until it has a new map, the
//! commands for a failed master answer an error at once and every other
//! master's are served as usual.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    cmd, AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use futures::future::join_all;
use tokio::sync::Notify;

use crate::store::keys::SLOTS;

/// After a failed connect, calls to that node fail at once for this long.
const RETRY_DOWN: Duration = Duration::from_millis(500);
/// The slot map is read again at least this often, and at most once per
/// [`REFRESH_GAP`].
const REFRESH_EVERY: Duration = Duration::from_secs(10);
const REFRESH_GAP: Duration = Duration::from_millis(250);
/// How many numbered keys [`Router::one_per_master`] tries: a master
/// serving a few slots may hold none of them (it then has no marker).
const MARKER_SEARCH: u32 = 100_000;
/// Redirections (`MOVED`, `ASK`), `TRYAGAIN`s and `LOADING`s followed per
/// command.
const MAX_REDIRECTS: usize = 5;
/// The wait before a command refused with `TRYAGAIN` (a slot moving),
/// `LOADING` (a node reading its data set) or `CLUSTERDOWN` is sent again.
const TRY_AGAIN_AFTER: Duration = Duration::from_millis(25);
/// How long a command refused with `CLUSTERDOWN` is sent again: a cluster
/// that requires full coverage refuses every command on every master from
/// when a failed master is flagged until its replica is promoted (about a
/// second); a command that waits that out is answered. Below the store's
/// call timeout, so a cluster that stays down answers an error, not a
/// timeout.
const CLUSTER_DOWN_WAIT: Duration = Duration::from_millis(1300);

/// A link to a Redis Cluster; cheap to clone (every clone shares the
/// connections and the map).
#[derive(Clone)]
pub(crate) struct Router {
    inner: Arc<Inner>,
}

struct Inner {
    seeds: Vec<ConnectionInfo>,
    /// Connect and response timeout of each node's connection.
    timeout: Duration,
    map: RwLock<SlotMap>,
    /// Bumped whenever the map changes.
    version: AtomicU64,
    nodes: Mutex<HashMap<String, Arc<Node>>>,
    /// Asks the background task for a fresh map.
    wake: Arc<Notify>,
    /// The body of each script, by its SHA1, to load it on a node that
    /// answers `NOSCRIPT`.
    scripts: HashMap<String, String>,
}

/// Which master serves each slot, as last read or redirected.
#[derive(PartialEq, Eq)]
struct SlotMap {
    /// Per slot, the index of its master in `masters`; `u16::MAX`: none.
    owners: Vec<u16>,
    /// `host:port` of each master.
    masters: Vec<String>,
}

const NO_OWNER: u16 = u16::MAX;

impl SlotMap {
    fn empty() -> Self {
        Self {
            owners: vec![NO_OWNER; usize::from(SLOTS)],
            masters: Vec::new(),
        }
    }

    fn master_of(&self, slot: u16) -> Option<&str> {
        let owner = *self.owners.get(usize::from(slot))?;
        self.masters.get(usize::from(owner)).map(String::as_str)
    }

    /// Gives `slot` to `addr` (a `MOVED` said so).
    fn assign(&mut self, slot: u16, addr: &str) {
        let index = match self.masters.iter().position(|m| m == addr) {
            Some(i) => i,
            None => {
                self.masters.push(addr.to_owned());
                self.masters.len() - 1
            }
        };
        if let (Some(owner), Ok(index)) =
            (self.owners.get_mut(usize::from(slot)), u16::try_from(index))
        {
            *owner = index;
        }
    }
}

/// One node's connection, made when first needed and again after it broke.
struct Node {
    client: Client,
    /// The connection, with its generation (so only the broken one is dropped).
    conn: Mutex<Option<(u64, MultiplexedConnection)>>,
    /// Held while connecting; when the last attempt failed.
    connecting: tokio::sync::Mutex<Option<Instant>>,
}

impl Node {
    fn current(&self) -> Option<(u64, MultiplexedConnection)> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The node's connection, connecting when it has none (one attempt at a
    /// time; none within [`RETRY_DOWN`] of a failed one).
    async fn connection(
        &self,
        config: &AsyncConnectionConfig,
        timeout: Duration,
    ) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        let mut failed = self.connecting.lock().await;
        if let Some(conn) = self.current() {
            return Ok(conn);
        }
        if failed.is_some_and(|at| at.elapsed() < RETRY_DOWN) {
            return Err(RedisError::from((
                ErrorKind::IoError,
                "cluster node down",
                "its last connect failed".to_owned(),
            )));
        }
        let connect = self
            .client
            .get_multiplexed_async_connection_with_config(config);
        let made = match tokio::time::timeout(timeout, connect).await {
            Ok(made) => made,
            Err(_) => Err(RedisError::from((
                ErrorKind::IoError,
                "cluster node did not answer",
                format!("no connection within {} ms", timeout.as_millis()),
            ))),
        };
        match made {
            Ok(conn) => {
                *failed = None;
                let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
                let generation = slot.as_ref().map_or(0, |(g, _)| g + 1);
                *slot = Some((generation, conn.clone()));
                Ok((generation, conn))
            }
            Err(e) => {
                *failed = Some(Instant::now());
                Err(e)
            }
        }
    }

    /// Drops connection `generation`: it broke.
    fn broken(&self, generation: u64) {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
            *slot = None;
        }
    }
}

/// Where a command goes.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The master of this slot.
    Slot(u16),
    /// An `MGET` over several slots: split by slot, answers put back in
    /// order.
    Split,
    /// No key (`PING`): any master that answers.
    AnyMaster,
    /// `SCRIPT …`: every master.
    AllMasters,
}

/// Per master (by its place in `map`), the least `n` below
/// [`MARKER_SEARCH`] whose `key(n)` lies in a slot it serves.
fn least_per_master(map: &SlotMap, key: impl Fn(u32) -> String) -> Vec<Option<u32>> {
    let mut found: Vec<Option<u32>> = vec![None; map.masters.len()];
    let serving = map.owners.iter().filter(|o| **o != NO_OWNER);
    let mut missing = {
        let mut served: Vec<u16> = serving.copied().collect();
        served.sort_unstable();
        served.dedup();
        served.len()
    };
    let mut n = 0;
    while missing > 0 && n < MARKER_SEARCH {
        let owner = map.owners.get(usize::from(slot_of(key(n).as_bytes())));
        if let Some(slot) = owner.and_then(|o| found.get_mut(usize::from(*o))) {
            if slot.is_none() {
                *slot = Some(n);
                missing -= 1;
            }
        }
        n += 1;
    }
    found
}

pub(crate) use crate::store::keys::slot_of;

/// The arguments of `cmd`, as bytes.
fn args(cmd: &Cmd) -> Vec<&[u8]> {
    cmd.args_iter()
        .filter_map(|a| match a {
            ::redis::Arg::Simple(bytes) => Some(bytes),
            ::redis::Arg::Cursor => None,
        })
        .collect()
}

fn route(cmd: &Cmd) -> Route {
    let args = args(cmd);
    let name = args
        .first()
        .map(|n| n.to_ascii_uppercase())
        .unwrap_or_default();
    let key = match name.as_slice() {
        b"PING" | b"TIME" | b"INFO" => return Route::AnyMaster,
        b"SCRIPT" => return Route::AllMasters,
        b"EVALSHA" | b"EVAL" | b"FCALL" => {
            let keys = args.get(2).and_then(|n| std::str::from_utf8(n).ok());
            match keys.and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if n > 0 => args.get(3),
                _ => return Route::AnyMaster,
            }
        }
        b"MGET" => {
            let mut slots = args.iter().skip(1).map(|k| slot_of(k));
            let first = slots.next();
            if slots.any(|s| Some(s) != first) {
                return Route::Split;
            }
            args.get(1)
        }
        _ => args.get(1),
    };
    key.map_or(Route::AnyMaster, |k| Route::Slot(slot_of(k)))
}

/// `cmd` on `conn`; an error reply (`MOVED`, `CLUSTERDOWN`, …) as an
/// error, as `query_async` gives it.
async fn send(conn: &mut MultiplexedConnection, cmd: &Cmd) -> RedisResult<Value> {
    conn.req_packed_command(cmd)
        .await
        .and_then(Value::extract_error)
}

fn node_error(what: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::IoError, what, detail))
}

/// Whether `e` means the connection that gave it is no good any more.
fn breaks_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}

/// What an error reply asks of the router, read from the reply's leading
/// code word and nothing else: Redis and Valkey word the text after it
/// differently (`NOSCRIPT No matching script. Please use EVAL.` against
/// `NOSCRIPT No matching script.`), and either may change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// `MOVED`: the slot lives elsewhere now; follow it and patch the map.
    Moved,
    /// `ASK`: this one command goes elsewhere, once, with `ASKING`.
    Ask,
    /// `TRYAGAIN`: a slot is moving; send it again shortly.
    TryAgain,
    /// `LOADING`: the node is reading its data set; send it again shortly.
    Loading,
    /// `CLUSTERDOWN`: the cluster refuses every command until a replica is
    /// promoted.
    ClusterDown,
    /// `NOSCRIPT`: load the script there and send it again.
    NoScript,
    /// `BUSY`: a script runs too long on that node; answered as the
    /// command's failure (the store fails closed), the connection kept.
    Busy,
    /// Anything else: the command's own failure.
    Other,
}

impl Refusal {
    fn of(e: &RedisError) -> Self {
        match e.code() {
            Some("MOVED") => Refusal::Moved,
            Some("ASK") => Refusal::Ask,
            Some("TRYAGAIN") => Refusal::TryAgain,
            Some("LOADING") => Refusal::Loading,
            Some("CLUSTERDOWN") => Refusal::ClusterDown,
            Some("NOSCRIPT") => Refusal::NoScript,
            Some("BUSY") => Refusal::Busy,
            _ => Refusal::Other,
        }
    }
}

impl Router {
    /// A router over the cluster reached through any of `seeds`, with its
    /// first slot map read (else the error of the last seed tried). The
    /// map is then kept fresh by a background task that ends soon after
    /// the last clone of the router is dropped. `scripts`: the bodies of
    /// the scripts the store runs, loaded on a node that lacks one.
    pub(crate) async fn connect(
        seeds: &[String],
        timeout: Duration,
        scripts: &[&str],
    ) -> RedisResult<Self> {
        let seeds = seeds
            .iter()
            .map(|s| s.as_str().into_connection_info())
            .collect::<RedisResult<Vec<_>>>()?;
        let scripts = scripts
            .iter()
            .map(|body| {
                let hash = ::redis::Script::new(body).get_hash().to_owned();
                (hash, (*body).to_owned())
            })
            .collect();
        let inner = Arc::new(Inner {
            seeds,
            timeout,
            map: RwLock::new(SlotMap::empty()),
            version: AtomicU64::new(0),
            nodes: Mutex::new(HashMap::new()),
            wake: Arc::new(Notify::new()),
            scripts,
        });
        inner.refresh().await?;
        tokio::spawn(keep_fresh(Arc::downgrade(&inner), inner.wake.clone()));
        Ok(Self { inner })
    }

    /// Per master serving slots, the least `n` below [`MARKER_SEARCH`]
    /// whose `key(n)` (a key with a hash tag) lies in a slot it serves, by
    /// the slot map last read; in increasing order. Every instance reading
    /// the same map picks the same keys, and a failover (a replica taking
    /// its master's slots) keeps them.
    pub(crate) fn one_per_master(&self, key: impl Fn(u32) -> String) -> Vec<u32> {
        let found = least_per_master(&self.inner.map(), key);
        let mut picked: Vec<u32> = found.into_iter().flatten().collect();
        picked.sort_unstable();
        picked
    }

    /// Per slot, the `n` [`Router::one_per_master`] picks for the master
    /// serving it (`None`: no master known, or none found for it), with
    /// the version of the map read ([`Router::map_version`]).
    pub(crate) fn per_slot(&self, key: impl Fn(u32) -> String) -> (u64, Vec<Option<u32>>) {
        let version = self.map_version();
        let map = self.inner.map();
        let found = least_per_master(&map, key);
        let per_slot = map
            .owners
            .iter()
            .map(|o| found.get(usize::from(*o)).copied().flatten())
            .collect();
        (version, per_slot)
    }

    /// Changes whenever the slot map does: what was read of an older
    /// version may be stale.
    pub(crate) fn map_version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    async fn execute(&self, cmd: &Cmd) -> RedisResult<Value> {
        match route(cmd) {
            Route::Slot(slot) => self.inner.on_slot(slot, cmd).await,
            Route::Split => self.inner.split_mget(cmd).await,
            Route::AnyMaster => self.inner.on_any_master(cmd).await,
            Route::AllMasters => self.inner.on_all_masters(cmd).await,
        }
    }
}

impl ConnectionLike for Router {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.execute(cmd))
    }

    /// A pipeline goes, whole, where its first command would.
    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let slot = match pipeline.cmd_iter().next().map(route) {
                Some(Route::Slot(slot)) => Some(slot),
                _ => None,
            };
            let inner = &self.inner;
            let addr = match slot {
                Some(slot) => inner.master_of(slot)?,
                None => inner.any_master()?,
            };
            let (node, (generation, mut conn)) = inner.connection(&addr).await?;
            let answer = conn.req_packed_commands(pipeline, offset, count).await;
            if let Err(e) = &answer {
                inner.failed(&node, generation, e);
            }
            answer
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Reads the map again when asked (at most once per [`REFRESH_GAP`]) and
/// every [`REFRESH_EVERY`], until the router is gone.
async fn keep_fresh(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(REFRESH_EVERY) => {}
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(e) = inner.refresh().await {
            tracing::debug!(error = %e, "Redis Cluster slot map not read; will retry");
        }
        drop(inner);
        tokio::time::sleep(REFRESH_GAP).await;
    }
}

impl Inner {
    fn config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.timeout)
    }

    /// Node `addr` (`host:port`), known from now on.
    fn node(&self, addr: &str) -> RedisResult<Arc<Node>> {
        let mut nodes = self.nodes.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(node) = nodes.get(addr) {
            return Ok(node.clone());
        }
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)))
            .ok_or_else(|| node_error("bad cluster node address", String::new()))?;
        let seed = self
            .seeds
            .first()
            .ok_or_else(|| node_error("no cluster seed", String::new()))?;
        let info = ConnectionInfo {
            addr: match &seed.addr {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host: host.to_owned(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host.to_owned(), port),
            },
            redis: seed.redis.clone(),
        };
        let node = Arc::new(Node {
            client: Client::open(info)?,
            conn: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(None),
        });
        nodes.insert(addr.to_owned(), node.clone());
        Ok(node)
    }

    async fn connection(
        &self,
        addr: &str,
    ) -> RedisResult<(Arc<Node>, (u64, MultiplexedConnection))> {
        let node = self.node(addr)?;
        match node.connection(&self.config(), self.timeout).await {
            Ok(conn) => Ok((node, conn)),
            Err(e) => {
                self.wake.notify_one();
                Err(e)
            }
        }
    }

    /// After a call on `node`'s connection `generation` failed with `e`.
    fn failed(&self, node: &Node, generation: u64, e: &RedisError) {
        if breaks_connection(e) {
            node.broken(generation);
            self.wake.notify_one();
        } else if matches!(Refusal::of(e), Refusal::Moved | Refusal::ClusterDown) {
            self.wake.notify_one();
        }
    }

    fn map(&self) -> std::sync::RwLockReadGuard<'_, SlotMap> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn master_of(&self, slot: u16) -> RedisResult<String> {
        self.map()
            .master_of(slot)
            .map(str::to_owned)
            .ok_or_else(|| {
                self.wake.notify_one();
                node_error("no master for the slot", format!("slot {slot}"))
            })
    }

    fn masters(&self) -> Vec<String> {
        let map = self.map();
        let mut served: Vec<bool> = vec![false; map.masters.len()];
        for owner in &map.owners {
            if let Some(s) = served.get_mut(usize::from(*owner)) {
                *s = true;
            }
        }
        map.masters
            .iter()
            .zip(served)
            .filter(|(_, s)| *s)
            .map(|(m, _)| m.clone())
            .collect()
    }

    fn any_master(&self) -> RedisResult<String> {
        self.masters()
            .into_iter()
            .next()
            .ok_or_else(|| node_error("no cluster master known", String::new()))
    }

    /// `cmd` on the master of `slot`, following redirections.
    async fn on_slot(&self, slot: u16, cmd: &Cmd) -> RedisResult<Value> {
        let started = Instant::now();
        let mut addr = self.master_of(slot)?;
        let mut asking = false;
        let mut loaded = false;
        let mut redirects = 0;
        loop {
            let (node, (generation, mut conn)) = match self.connection(&addr).await {
                Ok(c) => c,
                Err(e) => {
                    // The map may have moved on since (a replica promoted).
                    match self.map().master_of(slot) {
                        Some(now) if now != addr && redirects < MAX_REDIRECTS => {
                            redirects += 1;
                            addr = now.to_owned();
                            continue;
                        }
                        _ => return Err(e),
                    }
                }
            };
            let answer = if asking {
                let mut pipe = ::redis::pipe();
                pipe.cmd("ASKING").add_command(cmd.clone());
                conn.req_packed_commands(&pipe, 1, 1)
                    .await
                    .and_then(|mut v| {
                        v.pop()
                            .ok_or_else(|| node_error("no answer", String::new()))
                    })
                    .and_then(Value::extract_error)
            } else {
                send(&mut conn, cmd).await
            };
            let e = match answer {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            self.failed(&node, generation, &e);
            let refusal = Refusal::of(&e);
            if refusal == Refusal::ClusterDown && started.elapsed() < CLUSTER_DOWN_WAIT {
                tokio::time::sleep(TRY_AGAIN_AFTER).await;
                if let Some(now) = self.map().master_of(slot) {
                    now.clone_into(&mut addr);
                }
                continue;
            }
            if redirects >= MAX_REDIRECTS {
                return Err(e);
            }
            redirects += 1;
            asking = false;
            match refusal {
                Refusal::Moved => {
                    let Some((to, moved)) = e.redirect_node() else {
                        return Err(e);
                    };
                    let to = to.to_owned();
                    self.map
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .assign(moved, &to);
                    self.version.fetch_add(1, Ordering::AcqRel);
                    addr = to;
                }
                Refusal::Ask => {
                    let Some((to, _)) = e.redirect_node() else {
                        return Err(e);
                    };
                    addr = to.to_owned();
                    asking = true;
                }
                Refusal::TryAgain | Refusal::Loading => tokio::time::sleep(TRY_AGAIN_AFTER).await,
                Refusal::NoScript if !loaded => {
                    loaded = true;
                    self.load_script(&mut conn, cmd).await?;
                }
                Refusal::NoScript | Refusal::Busy | Refusal::ClusterDown | Refusal::Other => {
                    return Err(e)
                }
            }
        }
    }

    /// Loads the script `cmd` (an `EVALSHA`) calls on `conn`'s node.
    async fn load_script(&self, conn: &mut MultiplexedConnection, cmd: &Cmd) -> RedisResult<()> {
        let hash = args(cmd)
            .get(1)
            .and_then(|h| std::str::from_utf8(h).ok())
            .map(str::to_ascii_lowercase);
        let Some(body) = hash.and_then(|h| self.scripts.get(&h)) else {
            return Err(RedisError::from((
                ErrorKind::NoScriptError,
                "script not known to the cluster router",
            )));
        };
        let mut load = ::redis::cmd("SCRIPT");
        load.arg("LOAD").arg(body);
        send(conn, &load).await.map(|_| ())
    }

    /// An `MGET` whose keys sit in several slots: one `MGET` per slot, at
    /// once; the answers in the keys' order. Fails when any part fails.
    async fn split_mget(&self, mget: &Cmd) -> RedisResult<Value> {
        let keys: Vec<&[u8]> = args(mget).into_iter().skip(1).collect();
        let mut parts: Vec<(u16, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let slot = slot_of(key);
            match parts.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, at)) => at.push(i),
                None => parts.push((slot, vec![i])),
            }
        }
        let commands: Vec<Cmd> = parts
            .iter()
            .map(|(_, at)| {
                let mut part = cmd("MGET");
                for i in at {
                    part.arg(keys[*i]);
                }
                part
            })
            .collect();
        let answers = join_all(
            parts
                .iter()
                .zip(&commands)
                .map(|((slot, _), part)| self.on_slot(*slot, part)),
        )
        .await;
        let mut out = vec![Value::Nil; keys.len()];
        for ((_, at), answer) in parts.iter().zip(answers) {
            let Value::Array(values) = answer? else {
                return Err(node_error("MGET answered no array", String::new()));
            };
            if values.len() != at.len() {
                return Err(node_error("MGET answered a short array", String::new()));
            }
            for (i, v) in at.iter().zip(values) {
                out[*i] = v;
            }
        }
        Ok(Value::Array(out))
    }

    /// A keyless command on the masters in turn until one answers.
    async fn on_any_master(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut last = node_error("no cluster master known", String::new());
        for addr in self.masters() {
            let (node, (generation, mut conn)) = match self.connection(&addr).await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            match send(&mut conn, cmd).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.failed(&node, generation, &e);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// A command for every master (`SCRIPT LOAD`): the first answer, once
    /// every master that answers has it; an error when none does.
    async fn on_all_masters(&self, cmd: &Cmd) -> RedisResult<Value> {
        let masters = self.masters();
        let answers = join_all(masters.iter().map(|addr| async move {
            let (node, (generation, mut conn)) = self.connection(addr).await?;
            let answer = send(&mut conn, cmd).await;
            if let Err(e) = &answer {
                self.failed(&node, generation, e);
            }
            answer
        }))
        .await;
        let mut last = node_error("no cluster master known", String::new());
        let mut first = None;
        for answer in answers {
            match answer {
                Ok(v) => {
                    first.get_or_insert(v);
                }
                Err(e) => last = e,
            }
        }
        first.ok_or(last)
    }

    /// Reads the slot map from a master known to answer, else from any
    /// known node, else from a seed.
    async fn refresh(&self) -> RedisResult<()> {
        let mut candidates = self.masters();
        let known: Vec<String> = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for addr in known {
            if !candidates.contains(&addr) {
                candidates.push(addr);
            }
        }
        for seed in &self.seeds {
            if let ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } =
                &seed.addr
            {
                let addr = format!("{host}:{port}");
                if !candidates.contains(&addr) {
                    candidates.push(addr);
                }
            }
        }
        // Those with a connection first: they answered last time.
        let mut ordered = Vec::with_capacity(candidates.len());
        let (live, rest): (Vec<String>, Vec<String>) = candidates
            .into_iter()
            .partition(|a| self.node(a).is_ok_and(|n| n.current().is_some()));
        ordered.extend(live);
        ordered.extend(rest);
        let mut last = node_error("no cluster node known", String::new());
        for addr in ordered {
            match self.read_map(&addr).await {
                Ok(map) => {
                    let mut current = self.map.write().unwrap_or_else(PoisonError::into_inner);
                    if *current != map {
                        *current = map;
                        self.version.fetch_add(1, Ordering::AcqRel);
                    }
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `CLUSTER SLOTS` of node `addr`.
    async fn read_map(&self, addr: &str) -> RedisResult<SlotMap> {
        let (node, (generation, mut conn)) = self.connection(addr).await?;
        let mut slots = cmd("CLUSTER");
        slots.arg("SLOTS");
        let answer = send(&mut conn, &slots).await;
        if let Err(e) = &answer {
            if breaks_connection(e) {
                node.broken(generation);
            }
        }
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        parse_slots(&answer?, host)
    }
}

/// A `CLUSTER SLOTS` answer (entries of start, end, then the master's
/// host, port, …); a master without a host is at `asked_host`.
fn parse_slots(answer: &Value, asked_host: &str) -> RedisResult<SlotMap> {
    let bad = || node_error("unexpected CLUSTER SLOTS answer", String::new());
    let int = |v: &Value| match v {
        Value::Int(i) => u16::try_from(*i).ok(),
        _ => None,
    };
    let Value::Array(entries) = answer else {
        return Err(bad());
    };
    let mut map = SlotMap::empty();
    for entry in entries {
        let Value::Array(fields) = entry else {
            return Err(bad());
        };
        let (Some(start), Some(end), Some(Value::Array(master))) = (
            fields.first().and_then(int),
            fields.get(1).and_then(int),
            fields.get(2),
        ) else {
            return Err(bad());
        };
        let host = match master.first() {
            Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
            Some(Value::SimpleString(h)) => h.clone(),
            _ => String::new(),
        };
        let host = if host.is_empty() || host == "?" {
            asked_host.to_owned()
        } else {
            host
        };
        let port = master.get(1).and_then(int).ok_or_else(bad)?;
        if start > end || end >= SLOTS {
            return Err(bad());
        }
        let addr = format!("{host}:{port}");
        for slot in start..=end {
            map.assign(slot, &addr);
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error reply as the node sends it.
    fn reply(line: &str) -> RedisError {
        ::redis::parse_redis_value(format!("{line}\r\n").as_bytes())
            .and_then(Value::extract_error)
            .expect_err("an error reply")
    }

    #[test]
    fn a_refusal_is_read_from_its_code_word_as_redis_or_valkey_words_it() {
        // Redis 7's wording, Valkey 9's, and a wording neither uses yet.
        let cases = [
            ("-MOVED 3999 127.0.0.1:6381", Refusal::Moved),
            ("-ASK 3999 127.0.0.1:6381", Refusal::Ask),
            ("-TRYAGAIN Multiple keys request during rehashing of slot", Refusal::TryAgain),
            ("-TRYAGAIN slot migrating", Refusal::TryAgain),
            ("-CLUSTERDOWN The cluster is down", Refusal::ClusterDown),
            ("-CLUSTERDOWN Hash slot not served", Refusal::ClusterDown),
            ("-LOADING Redis is loading the dataset in memory", Refusal::Loading),
            ("-LOADING Valkey is loading the dataset in memory", Refusal::Loading),
            ("-NOSCRIPT No matching script. Please use EVAL.", Refusal::NoScript),
            ("-NOSCRIPT No matching script.", Refusal::NoScript),
            ("-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", Refusal::Busy),
            ("-BUSY Valkey is busy running a script. You can only call FUNCTION KILL, SCRIPT KILL or SHUTDOWN NOSAVE.", Refusal::Busy),
            ("-ERR unknown command 'FOO'", Refusal::Other),
            ("-WRONGTYPE Operation against a key holding the wrong kind of value", Refusal::Other),
            // A text that names a code word is not that code.
            ("-ERR NOSCRIPT MOVED TRYAGAIN", Refusal::Other),
        ];
        for (line, want) in cases {
            assert_eq!(Refusal::of(&reply(line)), want, "{line}");
        }
        // The router's own refusal of a script it does not know.
        let own = RedisError::from((ErrorKind::NoScriptError, "script not known"));
        assert_eq!(Refusal::of(&own), Refusal::NoScript);
    }

    #[test]
    fn slots_follow_redis_cluster() {
        // Values of CLUSTER KEYSLOT.
        assert_eq!(slot_of(b"foo"), 12_182);
        assert_eq!(slot_of(b"{acme}:i:1"), slot_of(b"acme"));
        assert_eq!(slot_of(b"p:{acme}:s:{x}"), slot_of(b"acme"));
        // An empty or unclosed tag: the whole key is hashed.
        let whole = |k: &[u8]| crc16::State::<crc16::XMODEM>::calculate(k) % SLOTS;
        assert_eq!(slot_of(b"{}:a"), whole(b"{}:a"));
        assert_eq!(slot_of(b"{open"), whole(b"{open"));
    }

    #[test]
    fn commands_go_where_their_keys_are() {
        let mut mget = cmd("MGET");
        mget.arg("{a}:x").arg("{a}:y");
        assert_eq!(route(&mget), Route::Slot(slot_of(b"a")));
        mget.arg("{b}:z");
        assert_eq!(route(&mget), Route::Split);
        let mut eval = cmd("EVALSHA");
        eval.arg("abc").arg(2).arg("{t}:k").arg("{t}:l").arg("x");
        assert_eq!(route(&eval), Route::Slot(slot_of(b"t")));
        let mut keyless = cmd("EVALSHA");
        keyless.arg("abc").arg(0);
        assert_eq!(route(&keyless), Route::AnyMaster);
        assert_eq!(route(&cmd("PING")), Route::AnyMaster);
        let mut load = cmd("SCRIPT");
        load.arg("LOAD").arg("return 1");
        assert_eq!(route(&load), Route::AllMasters);
        let mut set = cmd("SET");
        set.arg("l:abc").arg("v");
        assert_eq!(route(&set), Route::Slot(slot_of(b"l:abc")));
    }

    #[test]
    fn the_slot_map_is_read_from_cluster_slots() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let answer = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(8191),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![Value::Int(8192), Value::Int(16383), node("", 7001)]),
        ]);
        let map = parse_slots(&answer, "10.0.0.9").unwrap();
        assert_eq!(map.master_of(0), Some("10.0.0.1:7000"));
        assert_eq!(map.master_of(8191), Some("10.0.0.1:7000"));
        assert_eq!(map.master_of(8192), Some("10.0.0.9:7001"));
        assert_eq!(map.master_of(16383), Some("10.0.0.9:7001"));
        let partial = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(10),
            node("h", 1),
        ])]);
        assert_eq!(parse_slots(&partial, "x").unwrap().master_of(11), None);
        assert!(parse_slots(&Value::Int(3), "x").is_err());
    }

    #[test]
    fn each_master_serving_slots_gets_the_least_key_in_its_slots() {
        let key = |n: u32| format!("p:{{~due{n}}}:dueq");
        let mut map = SlotMap::empty();
        for slot in 0..SLOTS {
            map.assign(slot, if slot < 100 { "a:1" } else { "b:2" });
        }
        // A master the map names that serves no slot (moved away).
        map.masters.push("c:3".into());
        let found = least_per_master(&map, key);
        let (a, b) = (found[0].unwrap(), found[1].unwrap());
        assert!(slot_of(key(a).as_bytes()) < 100);
        assert!(
            (0..a).all(|n| slot_of(key(n).as_bytes()) >= 100),
            "the least"
        );
        assert!(slot_of(key(b).as_bytes()) >= 100);
        assert!(
            (0..b).all(|n| slot_of(key(n).as_bytes()) < 100),
            "the least"
        );
        assert_eq!(found[2], None, "a master without slots has none");
    }
}
