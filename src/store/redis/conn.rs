//! The Redis connection slot: connect lazily, fail fast, recover by itself.
//!
//! Two kinds of link sit behind one code path ([`Link`] implements
//! [`ConnectionLike`]): one Redis (`redis_url`), through a
//! [`ConnectionManager`], or a Redis Cluster (`cluster_nodes`), through
//! [`Router`] (`redis/cluster.rs`), which routes each command to the master
//! of its key's slot over that master's own connection, follows MOVED and
//! ASK, re-reads the slot map in the background after a failover and
//! reconnects to a node that went away and came back — so a failing master
//! holds up only its own slots' commands.
//!
//! The slot holds a link once one connection has worked; from then on the
//! link reconnects on its own whenever a request finds it broken. Until the
//! first success the slot is empty and every call answers
//! [`StoreError::Unavailable`] at once, except that at most one call per
//! [`RECONNECT_EVERY`] tries to fill it. Every call, connecting included, is
//! bounded by [`CALL_TIMEOUT`], so a dead or black-holed Redis (or cluster
//! master) costs a request at most that long.
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::{
    Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, ScriptInvocation, Value,
};
use tokio::sync::RwLock;

/// The slot of a key on a Redis Cluster (for callers that group keys by slot).
pub(crate) use super::cluster::slot_of;
use super::cluster::Router;
use crate::store::StoreError;

/// The longest any store call may take before answering `Unavailable`.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often an empty slot may try to connect.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Connecting to one node, and one node's answer.
const NODE_TIMEOUT: Duration = Duration::from_secs(1);

/// One attempt per (re)connect, bounded by the timeouts. The manager's own
/// retries would first wait `min_delay` (1 s in redis 0.32's backoff) plus
/// jitter, longer than a request may take; instead every request that finds
/// the link broken starts a fresh attempt, so failures stay fast and the
/// next request after Redis returns reconnects.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(NODE_TIMEOUT)
        .set_response_timeout(NODE_TIMEOUT)
        .set_number_of_retries(0)
}

/// A store error for a failed Redis call. Redis' own messages name the
/// failure (refused, timed out, script error), never a key's value.
fn unavailable(what: &str, e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis {what}: {e}"))
}

/// Where to connect.
enum Target {
    Single(Client),
    /// The seed nodes, and the bodies of the scripts the store runs.
    Cluster(Vec<String>, &'static [&'static str]),
}

/// A working link to Redis; cheap to clone (both kinds multiplex).
#[derive(Clone)]
pub(crate) enum Link {
    Single(ConnectionManager),
    /// The store's routing ([`Router`]).
    Routed(Router),
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Single(c) => c.req_packed_command(cmd),
            Link::Routed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Single(c) => c.req_packed_commands(cmd, offset, count),
            Link::Routed(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Single(c) => c.get_db(),
            Link::Routed(c) => c.get_db(),
        }
    }
}

pub(crate) struct Connector {
    target: Target,
    /// How long no call may fail before an outage counts as over: zero for
    /// one Redis, [`CLUSTER_QUIET`] for a cluster.
    quiet: Duration,
    slot: RwLock<Option<Link>>,
    last_attempt: Mutex<Option<Instant>>,
    outage: Mutex<Option<Outage>>,
}

/// The store has been failing since `since`: logged once when it starts, as
/// a reminder every [`OUTAGE_REMINDER`], and as a summary when it ends — not
/// once per failed request.
struct Outage {
    since: Instant,
    failed_calls: u64,
    /// Calls that succeeded meanwhile (a cluster's other masters).
    answered_calls: u64,
    last_failure: Instant,
    reminded: Instant,
}

const OUTAGE_REMINDER: Duration = Duration::from_secs(60);

/// In a cluster, one master down fails only its slots' calls: the other
/// masters' calls succeed in between, and do not prove it back. Its outage
/// ends on a success once no call has failed for this long, so it is one
/// warning and one summary, not a pair per success between two failures.
/// Longer than [`CALL_TIMEOUT`] (a paused master fails a call only when it
/// times out) and than the background workers' polls of a team.
const CLUSTER_QUIET: Duration = Duration::from_secs(3);

impl Connector {
    /// Whether this is a Redis Cluster: a script there reaches the keys of
    /// one slot only.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(..))
    }

    /// One Redis at `url` (never echoed: it may hold a password).
    pub(crate) async fn single(url: &str) -> Result<Self, StoreError> {
        let client =
            Client::open(url).map_err(|_| StoreError::Unavailable("invalid Redis URL".into()))?;
        Ok(Self::start(Target::Single(client), Duration::ZERO).await)
    }

    /// A Redis Cluster reached through any of the seed `nodes` (never
    /// echoed: they may hold a password).
    pub(crate) async fn cluster(nodes: &[String]) -> Result<Self, StoreError> {
        Self::cluster_running(nodes, &[]).await
    }

    /// [`Connector::cluster`] for calls that run `scripts`.
    pub(crate) async fn cluster_running(
        nodes: &[String],
        scripts: &'static [&'static str],
    ) -> Result<Self, StoreError> {
        if nodes.is_empty() {
            return Err(StoreError::Unavailable("no Redis Cluster node".into()));
        }
        if nodes
            .iter()
            .any(|n| n.as_str().into_connection_info().is_err())
        {
            return Err(StoreError::Unavailable(
                "invalid Redis Cluster node URL".into(),
            ));
        }
        let target = Target::Cluster(nodes.to_vec(), scripts);
        Ok(Self::start(target, CLUSTER_QUIET).await)
    }

    /// Tries to connect once; a failure leaves the slot empty for a later retry.
    async fn start(target: Target, quiet: Duration) -> Self {
        let connector = Self {
            target,
            quiet,
            slot: RwLock::new(None),
            last_attempt: Mutex::new(None),
            outage: Mutex::new(None),
        };
        match tokio::time::timeout(CALL_TIMEOUT, connector.link()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "Redis not reachable at start; will retry"),
            Err(_) => tracing::warn!("Redis did not answer at start; will retry"),
        }
        connector
    }

    /// Runs `work` under [`CALL_TIMEOUT`]; a timeout becomes `Unavailable`.
    pub(super) async fn timed<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(CALL_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {} ms",
                CALL_TIMEOUT.as_millis()
            ))),
        };
        self.note(&result, started);
        result
    }

    /// Keeps the outage log: one line when the store starts failing, a
    /// reminder while it goes on, a summary when it answers again. Only a
    /// call begun after the outage was noticed proves the store is back: one
    /// already under way (its answer read before the link broke) does not;
    /// in a cluster, only once no call has failed for [`CLUSTER_QUIET`].
    fn note<T>(&self, result: &Result<T, StoreError>, started: Instant) {
        let mut outage = self
            .outage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match (result, outage.as_mut()) {
            (Err(StoreError::Unavailable(cause)), None) => {
                tracing::warn!(%cause, "store unavailable: requests that need it answer 503 until it is back");
                *outage = Some(Outage {
                    since: now,
                    failed_calls: 1,
                    answered_calls: 0,
                    last_failure: now,
                    reminded: now,
                });
            }
            (Err(StoreError::Unavailable(cause)), Some(o)) => {
                o.failed_calls += 1;
                o.last_failure = now;
                if now.duration_since(o.reminded) >= OUTAGE_REMINDER {
                    o.reminded = now;
                    tracing::warn!(%cause, down_secs = now.duration_since(o.since).as_secs(), failed_calls = o.failed_calls, "store still unavailable");
                }
            }
            (Ok(_), Some(o))
                if started >= o.since && now.duration_since(o.last_failure) >= self.quiet =>
            {
                tracing::info!(
                    down_secs = now.duration_since(o.since).as_secs_f64(),
                    failed_calls = o.failed_calls,
                    answered_calls = o.answered_calls,
                    "store is back"
                );
                *outage = None;
            }
            (Ok(_), Some(o)) => o.answered_calls += 1,
            _ => {}
        }
    }

    /// One command, connection included, under [`CALL_TIMEOUT`].
    pub(super) async fn query(&self, what: &str, command: &Cmd) -> Result<Value, StoreError> {
        self.timed(what, async {
            let mut conn = self.link().await?;
            query_on(&mut conn, what, command).await
        })
        .await
    }

    /// One script call (EVALSHA, loading the script when Redis lacks it),
    /// connection included, under [`CALL_TIMEOUT`].
    pub(super) async fn invoke(
        &self,
        what: &str,
        call: &ScriptInvocation<'_>,
    ) -> Result<Value, StoreError> {
        self.timed(what, async {
            let mut conn = self.link().await?;
            call.invoke_async::<Value>(&mut conn)
                .await
                .map_err(|e| unavailable(what, &e))
        })
        .await
    }

    /// The link, connecting first when none exists yet and the last
    /// attempt is old enough.
    pub(crate) async fn link(&self) -> Result<Link, StoreError> {
        if let Some(link) = self.slot.read().await.as_ref() {
            return Ok(link.clone());
        }
        if !self.may_attempt() {
            return Err(StoreError::Unavailable("redis: not connected".into()));
        }
        let link = match &self.target {
            Target::Single(client) => {
                ConnectionManager::new_with_config(client.clone(), manager_config())
                    .await
                    .map(Link::Single)
            }
            Target::Cluster(nodes, scripts) => Router::connect(nodes, NODE_TIMEOUT, scripts)
                .await
                .map(Link::Routed),
        }
        .map_err(|e| unavailable("connect", &e))?;
        let mut slot = self.slot.write().await;
        Ok(slot.get_or_insert(link).clone())
    }

    /// True at most once per [`RECONNECT_EVERY`].
    fn may_attempt(&self) -> bool {
        let now = Instant::now();
        let mut last = self.last_attempt.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < RECONNECT_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// One command on a link already in hand (no timeout of its own).
pub(super) async fn query_on(
    conn: &mut Link,
    what: &str,
    command: &Cmd,
) -> Result<Value, StoreError> {
    command
        .query_async::<Value>(conn)
        .await
        .map_err(|e| unavailable(what, &e))
}
