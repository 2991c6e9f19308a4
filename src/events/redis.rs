//! The event log on Redis: one stream per team, `{key_prefix}:{team}:ev`
//! (the hash tag keeps it in the team's Cluster slot), field `e` = the
//! event's JSON. Ids are Redis' own (`<ms>-<seq>`).
//!
//! - **Append in the commit**: where the gateway's store is the same
//!   Redis under the same prefix ([`EventLog::history`]), the commit of a
//!   change appends its events itself (`store::Op::Append`, see
//!   `store/redis.rs`): in commit order, once, trimmed by age as below.
//! - **Append from the outbox** (events of items queued by an earlier
//!   version, or a store that is not this Redis): `publish` hands events
//!   to one appender task (a bounded queue, so their order is kept); it
//!   sends them in batches, one script per team (`redis/append.lua`):
//!   `XADD`s, then one `XTRIM … MINID ~ <now − 15 min>` by Redis' own
//!   clock (trimmed by age only, no count cap), `PEXPIRE` (the key lives
//!   20 minutes past its last event). Each
//!   batch carries an id the script remembers for [`BATCH_MEMORY`]
//!   (`{key_prefix}:{team}:evb`), so a batch sent again because its
//!   answer was lost is not appended twice.
//! - **Fan-out**: every instance runs a reader task that follows the teams'
//!   streams with `XREAD BLOCK` on a connection of its own (a blocking read
//!   must not stall the shared one) — one for all teams on one Redis, one
//!   per team on a Cluster (one `XREAD` names keys of one slot) — and hands
//!   each entry to this instance's stream readers, so every instance
//!   streams every event, whichever instance caused it. It starts after
//!   the streams' newest entries as read when the log starts, before the
//!   gateway commits anything.
//! - Appends and history reads use the store's connector
//!   (`store::redis::conn`: one Redis or the cluster client), a link of
//!   their own beside the store's.
//! - **Failure**: every call is bounded; an outage is logged once (and its
//!   end). Appends wait for Redis to come back (the queue is bounded; what
//!   does not fit is dropped and counted, `chatgate_event_log_dropped_total`);
//!   the reader reconnects by itself and goes on from the last id it saw.
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::{Client, Script, Value};
use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::log::{EventLog, Fanout, LogEntry, LogError, LogId, HISTORY_AGE, KEY_TTL_SLACK};
use super::Event;
use crate::store::redis::conn::{Connector, Link};
use crate::store::{keys, History};

/// The longest a read or an append may take.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often a reader whose link broke tries again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// Events waiting to be appended; past this they are dropped (and counted).
const APPEND_QUEUE: usize = 10_000;
/// First pause before an append is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Tries of a batch Redis refuses (not a link failure) before it is dropped.
const REFUSED_TRIES: usize = 3;
/// Events sent in one pipeline.
const APPEND_BATCH: usize = 100;
/// How long one `XREAD` blocks on the reader's connection.
const READ_BLOCK: Duration = Duration::from_secs(5);
/// Entries one `XREAD` returns at most.
const READ_COUNT: usize = 500;
/// How long the script remembers a batch it appended. A batch whose answer
/// was lost is sent again within seconds (the appender's pauses are at most
/// [`RETRY_MAX`]); kept short because under load there are hundreds a second.
const BATCH_MEMORY: Duration = Duration::from_secs(120);
const APPEND_LUA: &str = include_str!("redis/append.lua");

/// An event to append, and who waits to know it is in the log.
type Append = (Arc<Event>, Option<oneshot::Sender<bool>>);

/// One team's part of an append batch: its stream key, its events, and
/// who waits to know they are in the log.
type Stream<'a> = (String, Vec<&'a Event>, Vec<oneshot::Sender<bool>>);

/// Where the log's Redis is: the store's own settings.
#[derive(Debug, Clone, Copy)]
pub enum Servers<'a> {
    /// One Redis (`store.redis_url`).
    Single(&'a str),
    /// A Redis Cluster (`store.cluster_nodes`).
    Cluster(&'a [String]),
}

pub struct RedisLog {
    prefix: String,
    /// The Redis URL or the cluster's seed nodes, as configured.
    servers: Vec<String>,
    conn: Arc<Connector>,
    fanout: Arc<Fanout>,
    appends: mpsc::Sender<Append>,
    /// Starts readers, also for teams a reload adds ([`EventLog::follow`]).
    readers: Readers,
    /// The teams whose streams a reader follows.
    followed: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Dropped with the log: the reader tasks end.
    _stop: watch::Sender<()>,
}

impl RedisLog {
    /// Starts the appender and the readers of `teams`' streams: on one
    /// Redis one reader for all, on a cluster one per team (a blocking read
    /// names keys of one slot). Fails only on a malformed URL: a Redis that
    /// is down is tried again later.
    pub async fn start(
        servers: Servers<'_>,
        key_prefix: &str,
        teams: Vec<String>,
    ) -> Result<Self, LogError> {
        let configured = match servers {
            Servers::Single(url) => vec![url.to_owned()],
            Servers::Cluster(nodes) => nodes.to_vec(),
        };
        let invalid = |_| LogError("invalid Redis URL".into());
        let (conn, dedicated) = match servers {
            Servers::Single(url) => (
                Connector::single(url).await,
                Dedicated::Single(Client::open(url).map_err(invalid)?),
            ),
            Servers::Cluster(nodes) => (
                Connector::cluster(nodes).await,
                Dedicated::Cluster(
                    ClusterClientBuilder::new(nodes.to_vec())
                        .connection_timeout(Duration::from_secs(1))
                        .response_timeout(READ_BLOCK + Duration::from_secs(2))
                        .build()
                        .map_err(invalid)?,
                ),
            ),
        };
        let conn = Arc::new(conn.map_err(|e| LogError(e.to_string()))?);
        let fanout = Arc::new(Fanout::default());
        let (appends, queue) = mpsc::channel(APPEND_QUEUE);
        let (stop, stopped) = watch::channel(());
        tokio::spawn(run_appender(
            queue,
            Arc::clone(&conn),
            key_prefix.to_string(),
        ));
        let followed = std::sync::Mutex::new(teams.iter().cloned().collect());
        let readers = Readers {
            dedicated,
            conn: Arc::clone(&conn),
            prefix: key_prefix.to_string(),
            fanout: Arc::clone(&fanout),
            stopped,
        };
        readers.start(teams).await;
        Ok(RedisLog {
            prefix: key_prefix.to_string(),
            servers: configured,
            conn,
            fanout,
            appends,
            readers,
            followed,
            _stop: stop,
        })
    }
}

/// What starting a stream reader takes.
struct Readers {
    dedicated: Dedicated,
    conn: Arc<Connector>,
    prefix: String,
    fanout: Arc<Fanout>,
    stopped: watch::Receiver<()>,
}

impl Readers {
    /// Starts the readers of `teams`' streams: on one Redis one reader for
    /// all, on a cluster one per team (a blocking read names keys of one
    /// slot).
    async fn start(&self, teams: Vec<String>) {
        let (dedicated, conn, key_prefix) = (&self.dedicated, &self.conn, self.prefix.as_str());
        let groups = match dedicated {
            Dedicated::Single(_) => vec![teams],
            Dedicated::Cluster(_) => teams.into_iter().map(|t| vec![t]).collect(),
        };
        // Where each reader starts: the streams' newest entries now, read
        // before the gateway commits anything (a commit appends at once,
        // and a reader that first connected later would skip what came
        // before). Should Redis not answer in time, the reader reads them
        // when it first connects.
        let keys: Vec<Vec<String>> = groups
            .iter()
            .map(|teams| teams.iter().map(|t| stream_key(key_prefix, t)).collect())
            .collect();
        let all: Vec<&String> = keys.iter().flatten().collect();
        let newest = futures::future::join_all(all.iter().map(|k| newest_id(conn, k)));
        let mut newest = match tokio::time::timeout(CALL_TIMEOUT, newest).await {
            Ok(ids) => ids.into_iter(),
            Err(_) => Vec::new().into_iter(),
        };
        for (teams, keys) in groups.into_iter().zip(keys) {
            let ids: Vec<Option<String>> = keys.iter().map(|_| newest.next().flatten()).collect();
            let last: Option<Vec<String>> = ids.into_iter().collect();
            let reader = Reader {
                dedicated: dedicated.clone(),
                keys,
                teams,
                fanout: Arc::clone(&self.fanout),
                last,
            };
            tokio::spawn(reader.run(self.stopped.clone()));
        }
    }
}

/// The stream of one team (`store::keys::history` under the prefix).
fn stream_key(prefix: &str, team: &str) -> String {
    format!("{prefix}:{}", keys::history(team))
}

/// The id of `key`'s newest entry (`0-0` for none); `None` when Redis did
/// not answer.
async fn newest_id(conn: &Connector, key: &str) -> Option<String> {
    let mut cmd = ::redis::cmd("XREVRANGE");
    cmd.arg(key).arg("+").arg("-").arg("COUNT").arg(1);
    let reply: Value = call(conn, "read", |mut c| async move {
        cmd.query_async(&mut c).await
    })
    .await
    .ok()?;
    Some(
        entries(&reply)
            .first()
            .map_or_else(|| "0-0".to_string(), |(id, _)| id.to_string()),
    )
}

/// The batches lately appended to `stream`'s team (same Cluster slot).
fn batches_key(stream: &str) -> String {
    format!("{stream}b")
}

#[async_trait]
impl EventLog for RedisLog {
    async fn follow(&self, teams: &[String]) {
        let new: Vec<String> = {
            let mut followed = self.followed.lock().unwrap_or_else(|e| e.into_inner());
            teams
                .iter()
                .filter(|t| followed.insert((*t).clone()))
                .cloned()
                .collect()
        };
        if !new.is_empty() {
            self.readers.start(new).await;
        }
    }

    fn append(&self, event: Arc<Event>) {
        if self.appends.try_send((event, None)).is_err() {
            metrics::counter!("chatgate_event_log_dropped_total").increment(1);
            tracing::warn!("event log queue full; event not logged");
        }
    }

    fn append_confirmed(&self, event: Arc<Event>, done: oneshot::Sender<bool>) {
        // A full queue drops `done` with the event: not confirmed.
        if self.appends.try_send((event, Some(done))).is_err() {
            metrics::counter!("chatgate_event_log_dropped_total").increment(1);
            tracing::warn!("event log queue full; event not logged");
        }
    }

    async fn bounds(&self, team: &str) -> Result<Option<(LogId, LogId)>, LogError> {
        let key = stream_key(&self.prefix, team);
        let mut pipe = ::redis::pipe();
        pipe.cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
        pipe.cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1);
        let (first, last): (Value, Value) = call(&self.conn, "bounds", |mut c| async move {
            pipe.query_async(&mut c).await
        })
        .await
        .map_err(|e| e.error)?;
        let id = |v: &Value| entries(v).first().map(|(id, _)| *id);
        Ok(id(&first).zip(id(&last)))
    }

    async fn read_after(
        &self,
        team: &str,
        after: Option<LogId>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        let key = stream_key(&self.prefix, team);
        let start = after.map_or_else(|| "-".to_string(), |id| format!("({id}"));
        let mut cmd = ::redis::cmd("XRANGE");
        cmd.arg(&key).arg(start).arg("+").arg("COUNT").arg(limit);
        let reply: Value = call(&self.conn, "read", |mut c| async move {
            cmd.query_async(&mut c).await
        })
        .await
        .map_err(|e| e.error)?;
        Ok(entries(&reply)
            .into_iter()
            .filter_map(|(id, raw)| decode(team, id, raw))
            .collect())
    }

    fn subscribe(&self, team: &str) -> broadcast::Receiver<LogEntry> {
        self.fanout.subscribe(team)
    }

    fn history(&self) -> Option<History> {
        Some(History::Redis {
            servers: self.servers.clone(),
            key_prefix: self.prefix.clone(),
        })
    }
}

/// The `(id, e field)` pairs of an `XRANGE`-shaped reply; anything else is
/// skipped.
fn entries(reply: &Value) -> Vec<(LogId, Option<&[u8]>)> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let [id, fields] = pair.as_slice() else {
                return None;
            };
            let id = text(id)?.parse().ok()?;
            let raw = match fields {
                Value::Array(f) => f
                    .chunks(2)
                    .find(|kv| kv.first().and_then(bytes) == Some(b"e".as_slice()))
                    .and_then(|kv| kv.get(1).and_then(bytes)),
                _ => None,
            };
            Some((id, raw))
        })
        .collect()
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<&str> {
    bytes(v).and_then(|b| std::str::from_utf8(b).ok())
}

/// The entry, when it holds an event of `team`; else logged (by id only)
/// and skipped: one bad entry never stops the rest.
fn decode(team: &str, id: LogId, raw: Option<&[u8]>) -> Option<LogEntry> {
    match raw.and_then(|r| serde_json::from_slice::<Event>(r).ok()) {
        Some(event) if event.team == team => Some(LogEntry {
            id,
            event: Arc::new(event),
        }),
        _ => {
            tracing::warn!(team, log_id = %id, "unreadable event log entry skipped");
            None
        }
    }
}

/// Appends queued events in order: per batch, one transaction per team's
/// stream (one Cluster slot each). A transaction that failed because Redis
/// could not be reached is tried again (with backoff, for as long as the
/// log lives: queued events wait, new ones are dropped once the queue is
/// full); one Redis refused is tried [`REFUSED_TRIES`] times, then dropped
/// and counted.
async fn run_appender(mut queue: mpsc::Receiver<Append>, conn: Arc<Connector>, prefix: String) {
    let script = Script::new(APPEND_LUA);
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    let mut failing = false;
    while queue.recv_many(&mut batch, APPEND_BATCH).await > 0 {
        let mut streams: Vec<Stream<'_>> = Vec::new();
        for (event, done) in &mut batch {
            let key = stream_key(&prefix, &event.team);
            let at = match streams.iter().position(|(k, _, _)| *k == key) {
                Some(at) => at,
                None => {
                    streams.push((key, Vec::new(), Vec::new()));
                    streams.len() - 1
                }
            };
            streams[at].1.push(event);
            streams[at].2.extend(done.take());
        }
        for (key, events, waiting) in streams {
            let (key, events) = (&key, &events);
            let mut appended = false;
            // Sent again as it is, under the same id, until it is answered.
            let batch = format!("{:016x}", rand::random::<u64>());
            let mut pause = RETRY_FIRST;
            let mut refused = 0;
            loop {
                let Err(e) = append(&conn, &script, key, &batch, events).await else {
                    if failing {
                        tracing::info!("event log appends work again");
                        failing = false;
                    }
                    appended = true;
                    break;
                };
                if !failing {
                    tracing::warn!(error = %e.error, "event log append failed; retrying");
                    failing = true;
                }
                refused += usize::from(!e.link);
                if refused >= REFUSED_TRIES || queue.is_closed() {
                    tracing::warn!(error = %e.error, events = events.len(), "event log append given up; events not logged");
                    metrics::counter!("chatgate_event_log_dropped_total")
                        .increment(events.len() as u64);
                    break;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
            for done in waiting {
                let _ = done.send(appended);
            }
        }
        batch.clear();
    }
}

/// One script: the events onto `key`'s stream (trimming entries older than
/// [`HISTORY_AGE`]; however many are younger, all are kept), its TTL
/// renewed — so the key never exists without a TTL — unless batch `batch`
/// was appended already.
async fn append(
    conn: &Connector,
    script: &Script,
    key: &str,
    batch: &str,
    events: &[&Event],
) -> Result<(), CallError> {
    let ttl_ms = (HISTORY_AGE + KEY_TTL_SLACK).as_millis() as u64;
    let mut invocation = script.prepare_invoke();
    invocation
        .key(key)
        .key(batches_key(key))
        .arg(batch)
        .arg(HISTORY_AGE.as_millis() as u64)
        .arg(ttl_ms)
        .arg(BATCH_MEMORY.as_millis() as u64);
    for event in events {
        let json = serde_json::to_string(event).map_err(|e| CallError {
            error: LogError(e.to_string()),
            link: false,
        })?;
        invocation.arg(json);
    }
    call(conn, "append", |mut c| async move {
        invocation.invoke_async::<()>(&mut c).await
    })
    .await
}

/// A failed call, and whether it failed on the link (Redis unreachable,
/// connection lost, no answer in time) rather than by Redis refusing it.
struct CallError {
    error: LogError,
    link: bool,
}

/// One call on the store's connector (its own link, lazily connected, at
/// most one attempt a second while Redis is away), bounded by
/// [`CALL_TIMEOUT`].
async fn call<T, F, Fut>(conn: &Connector, what: &str, work: F) -> Result<T, CallError>
where
    F: FnOnce(Link) -> Fut,
    Fut: std::future::Future<Output = ::redis::RedisResult<T>>,
{
    let attempt = async {
        let link = conn.link().await.map_err(|e| CallError {
            error: LogError(e.to_string()),
            link: true,
        })?;
        work(link).await.map_err(|e| CallError {
            link: e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_unrecoverable_error(),
            error: LogError(format!("redis {what}: {e}")),
        })
    };
    tokio::time::timeout(CALL_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(CallError {
                error: LogError(format!("redis {what}: no answer in time")),
                link: true,
            })
        })
}

/// Where a reader opens its own connection (never the shared one: a
/// blocking read holds its connection for up to [`READ_BLOCK`]).
#[derive(Clone)]
enum Dedicated {
    Single(Client),
    Cluster(ClusterClient),
}

impl Dedicated {
    async fn connect(&self) -> Result<Link, LogError> {
        let link = match self {
            Dedicated::Single(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_secs(1))
                    .set_response_timeout(READ_BLOCK + Duration::from_secs(2))
                    .set_number_of_retries(0);
                ConnectionManager::new_with_config(client.clone(), config)
                    .await
                    .map(Link::Single)
            }
            Dedicated::Cluster(client) => client.get_async_connection().await.map(Link::Cluster),
        };
        link.map_err(|e| LogError(format!("redis connect: {e}")))
    }
}

/// Follows every team's stream and fans the entries out in this instance.
struct Reader {
    dedicated: Dedicated,
    teams: Vec<String>,
    keys: Vec<String>,
    fanout: Arc<Fanout>,
    /// Per stream, the last id handed out (set on the first connection).
    last: Option<Vec<String>>,
}

impl Reader {
    async fn run(mut self, mut stop: watch::Receiver<()>) {
        if self.keys.is_empty() {
            return;
        }
        let mut failing = false;
        loop {
            let err = tokio::select! {
                _ = stop.changed() => return,
                err = self.follow(&mut failing) => err,
            };
            if !failing {
                tracing::warn!(error = %err, "event stream reader lost Redis; reconnecting");
                failing = true;
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(RECONNECT_EVERY) => {}
            }
        }
    }

    /// Connects and reads until something fails; returns the failure.
    async fn follow(&mut self, failing: &mut bool) -> LogError {
        let mut conn = match tokio::time::timeout(CALL_TIMEOUT, self.dedicated.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return e,
            Err(_) => return LogError("redis connect: no answer in time".into()),
        };
        if self.last.is_none() {
            match self.newest_ids(&mut conn).await {
                Ok(ids) => self.last = Some(ids),
                Err(e) => return e,
            }
        }
        if *failing {
            tracing::info!("event stream reader reconnected");
            *failing = false;
        }
        loop {
            if let Err(e) = self.read_once(&mut conn).await {
                return e;
            }
        }
    }

    /// The newest id of every stream (`0-0` for an empty one): where the
    /// reader starts.
    async fn newest_ids(&self, conn: &mut Link) -> Result<Vec<String>, LogError> {
        let mut pipe = ::redis::pipe();
        for key in &self.keys {
            pipe.cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
        }
        let replies: Vec<Value> = bounded(pipe.query_async(conn), CALL_TIMEOUT).await?;
        Ok(replies
            .iter()
            .map(|r| {
                entries(r)
                    .first()
                    .map_or_else(|| "0-0".to_string(), |(id, _)| id.to_string())
            })
            .collect())
    }

    /// One `XREAD BLOCK` over all streams; fans out what it returns.
    async fn read_once(&mut self, conn: &mut Link) -> Result<(), LogError> {
        let Some(last) = self.last.as_mut() else {
            return Err(LogError("reader not started".into()));
        };
        let mut cmd = ::redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(READ_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.keys)
            .arg(&*last);
        let reply: Value =
            bounded(cmd.query_async(conn), READ_BLOCK + Duration::from_secs(3)).await?;
        let Value::Array(streams) = reply else {
            return Ok(()); // Nil: nothing within the block time
        };
        for stream in &streams {
            let Value::Array(pair) = stream else { continue };
            let [key, items] = pair.as_slice() else {
                continue;
            };
            let Some(i) = text(key).and_then(|k| self.keys.iter().position(|x| x == k)) else {
                continue;
            };
            for (id, raw) in entries(items) {
                last[i] = id.to_string();
                if let Some(entry) = decode(&self.teams[i], id, raw) {
                    self.fanout.send(entry);
                }
            }
        }
        Ok(())
    }
}

async fn bounded<T>(
    work: impl std::future::Future<Output = ::redis::RedisResult<T>>,
    limit: Duration,
) -> Result<T, LogError> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(LogError(format!("redis: {e}"))),
        Err(_) => Err(LogError("redis: no answer in time".into())),
    }
}
