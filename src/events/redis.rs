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
//! - **Fan-out, per listener**: a team's stream is read only while this
//!   instance has a listener for it (a `GET /v1/events`, the console's
//!   stream): [`EventLog::listen`] reads where the stream stands (one
//!   `XREVRANGE … COUNT 1`) before it answers, and from then on one poll
//!   loop ([`run_poller`]) reads every listened stream after its last id,
//!   non-blocking (`XREAD` without `BLOCK`), every [`POLL_EVERY`] on one
//!   Redis (one `XREAD` for all) and [`POLL_EVERY_CLUSTER`] on a Cluster
//!   (one `XREAD` per slot, all sent at once over each master's one
//!   connection), and hands each entry to this instance's readers. A team
//!   whose last listener left is dropped at the next round. So a team
//!   nobody listens to costs nothing, and the log holds no connection of
//!   its own per team ([decision 0195](../../docs/decisions/0195-event-streams-are-read-per-listener.md)).
//!   Webhooks do not read the streams: the outbox delivers them.
//! - Appends and history reads use the store's connector
//!   (`store::redis::conn`: one Redis or the cluster client), a link of
//!   their own beside the store's.
//! - **Failure**: every call is bounded; an outage is logged once (and its
//!   end). Appends wait for Redis to come back (the queue is bounded; what
//!   does not fit is dropped and counted, `chatgate_event_log_dropped_total`);
//!   the poll loop goes on from the last id it saw, and says once that it
//!   lost Redis and once that it is back (not per team, not per round).
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use ::redis::{Script, Value};
use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::log::{EventLog, Fanout, LogEntry, LogError, LogId, HISTORY_AGE, KEY_TTL_SLACK};
use super::Event;
use crate::store::redis::conn::{slot_of, Connector, Link};
use crate::store::{keys, History};
use crate::time::every::Every;

/// The longest a read or an append may take.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often the listened streams are read, on one Redis (one `XREAD`
/// for all of them a round).
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often on a Cluster (one `XREAD` per slot with a listener a round).
pub const POLL_EVERY_CLUSTER: Duration = Duration::from_millis(500);
/// Events waiting to be appended; past this they are dropped (and counted).
const APPEND_QUEUE: usize = 10_000;
/// First pause before an append is tried again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Tries of a batch Redis refuses (not a link failure) before it is dropped.
const REFUSED_TRIES: usize = 3;
/// Events sent in one pipeline.
const APPEND_BATCH: usize = 100;
/// Entries one `XREAD` returns of each stream at most.
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
    /// The teams listened to in this instance, each with the last id read.
    listened: Arc<Listened>,
    /// Dropped with the log: the poll loop ends.
    _stop: watch::Sender<()>,
}

/// Per team listened to, the id after which its stream is read next.
pub(crate) type Listened = std::sync::Mutex<HashMap<String, String>>;

impl RedisLog {
    /// Starts the appender and the poll loop (which reads nothing until a
    /// team has a listener). Fails only on a malformed URL: a Redis that
    /// is down is tried again later.
    pub async fn start(servers: Servers<'_>, key_prefix: &str) -> Result<Self, LogError> {
        let configured = match servers {
            Servers::Single(url) => vec![url.to_owned()],
            Servers::Cluster(nodes) => nodes.to_vec(),
        };
        let (conn, every) = match servers {
            Servers::Single(url) => (Connector::single(url).await, POLL_EVERY),
            Servers::Cluster(nodes) => (Connector::cluster(nodes).await, POLL_EVERY_CLUSTER),
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
        let listened = Arc::new(Listened::default());
        let poller = Poller {
            conn: Arc::clone(&conn),
            prefix: key_prefix.to_string(),
            fanout: Arc::clone(&fanout),
            listened: Arc::clone(&listened),
            outage: None,
        };
        tokio::spawn(poller.run(every, stopped));
        Ok(RedisLog {
            prefix: key_prefix.to_string(),
            servers: configured,
            conn,
            fanout,
            appends,
            listened,
            _stop: stop,
        })
    }

    /// The teams whose streams the poll loop reads (a test's view).
    pub fn listened(&self) -> Vec<String> {
        let listened = self.listened.lock().unwrap_or_else(|e| e.into_inner());
        let mut teams: Vec<String> = listened.keys().cloned().collect();
        teams.sort();
        teams
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

    async fn listen(&self, team: &str) -> Result<broadcast::Receiver<LogEntry>, LogError> {
        // Subscribed first: the poll loop keeps a team with a receiver.
        let live = self.fanout.subscribe(team);
        let followed = {
            let listened = self.listened.lock().unwrap_or_else(|e| e.into_inner());
            listened.contains_key(team)
        };
        if !followed {
            let key = stream_key(&self.prefix, team);
            let newest = newest_id(&self.conn, &key)
                .await
                .ok_or_else(|| LogError("redis read: the stream's newest id".into()))?;
            let mut listened = self.listened.lock().unwrap_or_else(|e| e.into_inner());
            listened.entry(team.to_string()).or_insert(newest);
        }
        Ok(live)
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
        Some(event) if event.team == keys::team_of(team) => Some(LogEntry {
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

/// The loop that reads the listened streams, in the background.
struct Poller {
    conn: Arc<Connector>,
    prefix: String,
    fanout: Arc<Fanout>,
    listened: Arc<Listened>,
    /// Since when reads fail, and how many did: logged once when it
    /// starts, once when it ends.
    outage: Option<(std::time::Instant, usize)>,
}

impl Poller {
    async fn run(mut self, period: Duration, mut stop: watch::Receiver<()>) {
        let stopped = async move {
            let _ = stop.changed().await;
        };
        let mut rounds = Every::new(period, stopped);
        while rounds.next().await {
            self.round().await;
        }
    }

    /// Drops the teams nobody listens to any more; the cursors of the rest.
    fn listened_now(&self) -> Vec<(String, String)> {
        let mut listened = self.listened.lock().unwrap_or_else(|e| e.into_inner());
        listened.retain(|team, _| self.fanout.listeners(team) > 0);
        self.fanout.forget_unheard();
        listened
            .iter()
            .map(|(t, id)| (t.clone(), id.clone()))
            .collect()
    }

    /// One read of every listened stream: one `XREAD` per slot (all of them
    /// in one on one Redis), sent at once; their entries fanned out.
    async fn round(&mut self) {
        let teams = self.listened_now();
        if teams.is_empty() {
            return;
        }
        let groups = by_slot(&self.prefix, teams, self.conn.is_cluster());
        let reads = groups
            .iter()
            .map(|group| read_group(&self.conn, &self.prefix, group));
        let answers = futures::future::join_all(reads).await;
        let mut failed = 0;
        let mut first_error = None;
        for (group, answer) in groups.iter().zip(answers) {
            match answer {
                Ok(read) => self.hand_out(group, read),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        self.note(failed, first_error);
    }

    /// Fans out what one `XREAD` returned and moves its teams' cursors on.
    fn hand_out(&self, group: &[(String, String)], read: Vec<(usize, Vec<LogEntry>, String)>) {
        let mut listened = self.listened.lock().unwrap_or_else(|e| e.into_inner());
        for (i, entries, last) in read {
            let Some((team, _)) = group.get(i) else {
                continue;
            };
            if let Some(cursor) = listened.get_mut(team) {
                last.clone_into(cursor);
            }
            for entry in entries {
                self.fanout.send_to(team, entry);
            }
        }
    }

    /// One line when reads start failing, one when a round reads all again.
    fn note(&mut self, failed: usize, error: Option<LogError>) {
        match (&mut self.outage, error) {
            (None, Some(e)) => {
                tracing::warn!(error = %e, "event stream reader lost Redis; retrying");
                self.outage = Some((std::time::Instant::now(), failed));
            }
            (Some((_, n)), Some(_)) => *n += failed,
            (Some((since, n)), None) => {
                tracing::info!(
                    down_secs = since.elapsed().as_secs_f64(),
                    failed_reads = *n,
                    "event stream reader reads Redis again"
                );
                self.outage = None;
            }
            (None, None) => {}
        }
    }
}

/// `teams` (with their cursors) in groups one `XREAD` may name: all of
/// them on one Redis, those of one slot on a Cluster.
fn by_slot(
    prefix: &str,
    teams: Vec<(String, String)>,
    cluster: bool,
) -> Vec<Vec<(String, String)>> {
    if !cluster {
        return vec![teams];
    }
    let mut groups: HashMap<u16, Vec<(String, String)>> = HashMap::new();
    for (team, id) in teams {
        let slot = slot_of(stream_key(prefix, &team).as_bytes());
        groups.entry(slot).or_default().push((team, id));
    }
    groups.into_values().collect()
}

/// One `XREAD` (no `BLOCK`) of `group`'s streams after their cursors: per
/// stream that had entries, its index in `group`, its entries and the last
/// id read.
async fn read_group(
    conn: &Connector,
    prefix: &str,
    group: &[(String, String)],
) -> Result<Vec<(usize, Vec<LogEntry>, String)>, LogError> {
    let keys: Vec<String> = group.iter().map(|(t, _)| stream_key(prefix, t)).collect();
    let ids: Vec<&str> = group.iter().map(|(_, id)| id.as_str()).collect();
    let mut cmd = ::redis::cmd("XREAD");
    cmd.arg("COUNT")
        .arg(READ_COUNT)
        .arg("STREAMS")
        .arg(&keys)
        .arg(&ids);
    let reply: Value = call(conn, "read", |mut c| async move {
        cmd.query_async(&mut c).await
    })
    .await
    .map_err(|e| e.error)?;
    let Value::Array(streams) = reply else {
        return Ok(Vec::new()); // Nil: nothing new
    };
    let mut read = Vec::new();
    for stream in &streams {
        let Value::Array(pair) = stream else { continue };
        let [key, items] = pair.as_slice() else {
            continue;
        };
        let Some(i) = text(key).and_then(|k| keys.iter().position(|x| x == k)) else {
            continue;
        };
        let Some((team, _)) = group.get(i) else {
            continue;
        };
        let mut last = None;
        let mut fresh = Vec::new();
        for (id, raw) in entries(items) {
            last = Some(id.to_string());
            fresh.extend(decode(team, id, raw));
        }
        if let Some(last) = last {
            read.push((i, fresh, last));
        }
    }
    Ok(read)
}
