//! The Redis connection slot: connect lazily, fail fast, recover by itself.
//!
//! The slot holds a [`ConnectionManager`] once one connection has worked;
//! from then on the manager reconnects on its own whenever a request finds
//! the link broken. Until the first success the slot is empty and every call
//! answers [`StoreError::Unavailable`] at once, except that at most one call
//! per [`RECONNECT_EVERY`] tries to fill it. Every call, connecting included,
//! is bounded by [`CALL_TIMEOUT`], so a dead or black-holed Redis costs a
//! request at most that long.
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Cmd, RedisError, ScriptInvocation, Value};
use tokio::sync::RwLock;

use crate::store::StoreError;

/// The longest any store call may take before answering `Unavailable`.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often an empty slot may try to connect.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// One attempt per (re)connect, bounded by the timeouts. The manager's own
/// retries would first wait `min_delay` (1 s in redis 0.32's backoff) plus
/// jitter, longer than a request may take; instead every request that finds
/// the link broken starts a fresh attempt, so failures stay fast and the
/// next request after Redis returns reconnects.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(1))
        .set_response_timeout(Duration::from_secs(1))
        .set_number_of_retries(0)
}

/// A store error for a failed Redis call. Redis' own messages name the
/// failure (refused, timed out, script error), never a key's value.
fn unavailable(what: &str, e: &RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis {what}: {e}"))
}

pub(super) struct Connector {
    client: Client,
    slot: RwLock<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
}

impl Connector {
    /// Parses `url` (never echoed: it may hold a password) and tries to
    /// connect once; a failure leaves the slot empty for a later retry.
    pub(super) async fn new(url: &str) -> Result<Self, StoreError> {
        let client =
            Client::open(url).map_err(|_| StoreError::Unavailable("invalid Redis URL".into()))?;
        let connector = Self {
            client,
            slot: RwLock::new(None),
            last_attempt: Mutex::new(None),
        };
        match tokio::time::timeout(CALL_TIMEOUT, connector.manager()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "Redis not reachable at start; will retry"),
            Err(_) => tracing::warn!("Redis did not answer at start; will retry"),
        }
        Ok(connector)
    }

    /// Runs `work` under [`CALL_TIMEOUT`]; a timeout becomes `Unavailable`.
    pub(super) async fn timed<T>(
        &self,
        what: &str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(CALL_TIMEOUT, work).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {} ms",
                CALL_TIMEOUT.as_millis()
            ))),
        }
    }

    /// One command, connection included, under [`CALL_TIMEOUT`].
    pub(super) async fn query(&self, what: &str, command: &Cmd) -> Result<Value, StoreError> {
        self.timed(what, async {
            let mut conn = self.manager().await?;
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
            let mut conn = self.manager().await?;
            call.invoke_async::<Value>(&mut conn)
                .await
                .map_err(|e| unavailable(what, &e))
        })
        .await
    }

    /// The connection manager, connecting first when none exists yet and the
    /// last attempt is old enough.
    pub(super) async fn manager(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(manager) = self.slot.read().await.as_ref() {
            return Ok(manager.clone());
        }
        if !self.may_attempt() {
            return Err(StoreError::Unavailable("redis: not connected".into()));
        }
        let manager = ConnectionManager::new_with_config(self.client.clone(), manager_config())
            .await
            .map_err(|e| unavailable("connect", &e))?;
        let mut slot = self.slot.write().await;
        Ok(slot.get_or_insert(manager).clone())
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

/// One command on a connection already in hand (no timeout of its own).
pub(super) async fn query_on(
    conn: &mut ConnectionManager,
    what: &str,
    command: &Cmd,
) -> Result<Value, StoreError> {
    command
        .query_async::<Value>(conn)
        .await
        .map_err(|e| unavailable(what, &e))
}
