//! The Redis store: several gateway instances share it, and it survives restarts.
//!
//! # Layout
//!
//! Every physical key is `"{key_prefix}:{logical_key}"`. A record is one
//! string, `"<version>\n<json>"`, so a read of many keys is one `MGET` and a
//! version check is one read inside a script of the version line alone
//! (`GETRANGE`; a `GET` where the key is expected absent) — or none: a
//! create (a `Put` expecting its key absent, the only op of its commit on
//! that key) is checked by its own `SET … NX`. Indexes are sorted sets
//! (scores are doubles in Redis: exact for |score| < 2^53, which covers
//! millisecond timestamps). Record TTLs use `SET ... PX`; a `Put` without
//! TTL is a plain `SET`, which also clears an earlier TTL. Each index `K`
//! of more than one member has an expiry set `K:exp` (member → expiry,
//! Redis time): an index member lives for the TTL of its last `IndexAdd`,
//! writes remove the members whose time is up (one add in eight of this
//! process's to an index, up to 256 at a time), and both keys expire
//! with their longest-lived member, so an index is bounded by what is
//! alive. An index of one member keeps no expiry set: its key lives exactly
//! as long as the member. A queue (due times, the outbox)
//! is a sorted set alone: its worker removes its members. Lifetimes are
//! renewed, not set on each add: once a minute per key and process (or
//! when an add asks for more than the last renewal gave) a commit raises
//! an index's or a queue's to the latest expiry it asks for plus that
//! minute, or plus the TTL asked when shorter (`PEXPIREAT … GT`; a key
//! without one gets it with `NX`). Between
//! renewals, a write to a queue is its one `ZADD` (all its members at
//! once), and an add of a new member to an index reads its expiry set's
//! life (`PEXPIRETIME`; the index lives at least as long) to know that no
//! other writer's recompute lowered the index under what it adds, where
//! a count of its members (`ZCARD`) and a `PEXPIREAT … GT` did
//! (docs/decisions/0240-an-add-between-renewals-reads-the-expiry-set-s-life.md). Each
//! `ZADD` to a queue also adds its keeper, the member `""` at
//! [`KEEPER_SCORE`] (2^53, above every time; finite, so a reader of the
//! previous version parses it, and skips an item it cannot read),
//! which no claim or read returns: Redis deletes a sorted set when its
//! last member goes, and the keeper keeps a drained queue's key, with its
//! TTL, so an add between renewals never makes a key without one (and a
//! `ZADD` that counts the keeper among its new members made a new key,
//! given its life at once). A drained queue's key so stays, holding only
//! its keeper, until its TTL. The script reads no clock: its `now`
//! is this process' reckoning of Redis' time (its own clock, corrected by
//! the offset the last claim's answer showed).
//!
//! A team's event history is a stream (`{team}:ev`, field `e`): an
//! [`Op::Append`] is an `XADD`, after the version checks and before every
//! other write of its commit but its creates. Once a minute per stream and
//! process (or when the stream is new: `XADD NOMKSTREAM` tells) the commit
//! also trims it by age (`XTRIM MINID ~`, its only trim: no count cap) and
//! renews its TTL, so a stream never lives without one.
//!
//! # Atomicity
//!
//! [`Store::commit`] is one Lua script (`redis/commit.lua`) that checks every
//! version before it writes anything but its creates (each checked by its
//! own `SET … NX`), which a conflict or an error reply after them deletes
//! again; [`Store::index_claim_due`] is another (`redis/claim_due.lua`) so
//! each due entry goes to exactly one caller; [`Store::queue_move_unchanged`]
//! a third (`redis/move_unchanged.lua`), so
//! an entry claimed or removed since it was read is left alone.
//! Every script touches only the keys passed to it in `KEYS`.
//! [`Store::index_desc`] is a plain read: one `ZREVRANGEBYSCORE` from
//! below [`KEEPER_SCORE`] (a queue's keeper is no entry), or with a cursor from the
//! cursor's score, dropping the ties at or above
//! the cursor member in Rust (byte order, as Redis orders ties); it pages
//! again only when ties fill a whole batch.
//!
//! [`Store::get_with_companion`] is one `MGET` of the record and the
//! companion its last write here named (remembered in process, see
//! `store/companions.rs`), else the default it is given (the caller's
//! guess, which the caller checks).
//!
//! # Redis Cluster
//!
//! With [`RedisStore::connect_cluster`] the same commands run on a Redis
//! Cluster. Every key a script or commit touches at once belongs to one team
//! and starts with its hash tag `{team}`, so it sits in one slot; the short
//! link key `l:<hash>` has no tag and is always written and read on its
//! own. The store routes the commands itself (`redis/cluster.rs`): each to
//! its slot's master over that master's own connection, a multi-key read
//! (`MGET`) across slots split per slot.
//!
//! # Failure
//!
//! See `redis/conn.rs`: every call answers within ~1.5 s, failures are
//! [`StoreError::Unavailable`], and the store reconnects by itself.
mod cluster;
pub(crate) mod conn;
mod due;
mod note_journal;
mod prunes;
mod renewals;

use ::redis::{cmd, Script, Value};
use async_trait::async_trait;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use self::conn::{query_on, Connector};
use self::prunes::Prunes;
use self::renewals::Renewals;
use super::companions::Companions;
use super::{
    Commit, DueTaken, History, IndexEntry, Op, Store, StoreError, Versioned, WithCompanion,
};

const COMMIT_LUA: &str = include_str!("redis/commit.lua");
const CLAIM_DUE_LUA: &str = include_str!("redis/claim_due.lua");
const MOVE_UNCHANGED_LUA: &str = include_str!("redis/move_unchanged.lua");
/// Every script the store runs (a cluster node that lacks one is given it).
const SCRIPTS: &[&str] = &[
    COMMIT_LUA,
    CLAIM_DUE_LUA,
    MOVE_UNCHANGED_LUA,
    due::DUE_CLAIM_LUA,
    due::DUE_RELEASE_LUA,
    due::DUE_NOTE_LUA,
];

/// Extra entries read per page when a cursor's ties must be skipped.
const TIE_SLACK: usize = 16;
/// The score of a queue's keeper (`redis/commit.lua` writes it): 2^53, the
/// largest integer a double holds exactly, far above any time in ms.
pub(crate) const KEEPER_SCORE: i64 = 1 << 53;
/// Redis refuses expiries beyond `i64` milliseconds; cap at ~100 years.
const MAX_TTL_MS: u128 = 100 * 365 * 24 * 3600 * 1000;

pub struct RedisStore {
    prefix: String,
    /// The Redis URL, or the cluster's seed nodes, as given.
    servers: Vec<String>,
    conn: Connector,
    commit_script: Script,
    claim_due_script: Script,
    move_unchanged_script: Script,
    due: due::Due,
    companions: Companions,
    /// How far this Redis' clock is ahead of ours (ms), as its last claim
    /// answer told: a claim's answer-by time is written in Redis' time.
    redis_ahead_ms: AtomicI64,
    /// When this process last gave each history stream, index and queue
    /// it writes its lifetime (see `redis/commit.lua`).
    renewals: Renewals,
    /// When this process's adds to an index prune it.
    prunes: Prunes,
}

/// How often a writer gives a history stream, an index or a queue it
/// writes its lifetime: a stream lives its TTL less this past its last
/// entry; an index or a queue at least this past the latest expiry a
/// renewal asked for.
const LIFETIME_EVERY: Duration = Duration::from_secs(60);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to one Redis (with connect and response timeouts) under
    /// `key_prefix`. Fails only on a malformed URL: when Redis is down, the
    /// store still starts, answers `Unavailable`, and connects once Redis is
    /// back.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        let conn = Connector::single(url).await?;
        Ok(Self::with(conn, vec![url.to_owned()], key_prefix))
    }

    /// Connects to a Redis Cluster through any of the seed `nodes`
    /// (`redis://host:port` URLs), under `key_prefix`. Fails only on no node
    /// or a malformed URL; a cluster that is down is handled as in
    /// [`RedisStore::connect`].
    pub async fn connect_cluster(nodes: &[String], key_prefix: &str) -> Result<Self, StoreError> {
        let conn = Connector::cluster_running(nodes, SCRIPTS).await?;
        Ok(Self::with(conn, nodes.to_vec(), key_prefix))
    }

    fn with(conn: Connector, servers: Vec<String>, key_prefix: &str) -> Self {
        Self {
            prefix: key_prefix.to_owned(),
            servers,
            conn,
            commit_script: Script::new(COMMIT_LUA),
            claim_due_script: Script::new(CLAIM_DUE_LUA),
            move_unchanged_script: Script::new(MOVE_UNCHANGED_LUA),
            due: due::Due::new(),
            companions: Companions::new(),
            redis_ahead_ms: AtomicI64::new(0),
            renewals: Renewals::new(LIFETIME_EVERY),
            prunes: Prunes::default(),
        }
    }

    /// Until when, in Redis' time as this process reckons it (ms), a caller
    /// waits for a call sent now: `wait`, at most `CALL_TIMEOUT`. A claim
    /// that runs later (queued while Redis was paused) must take nothing.
    fn answer_by(&self, wait: Duration) -> i64 {
        unix_ms()
            .saturating_add(self.redis_ahead_ms.load(Ordering::Relaxed))
            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
    }

    /// This store, leaving out the due notes a Cluster's commit (or a
    /// queue's move) makes apart from its write before it (`before`) or
    /// after it (`after`), as an instance killed there would: for tests of
    /// such a kill (docs/decisions/0190-due-notes-on-a-cluster-before-and-after-the-write.md).
    #[doc(hidden)]
    #[must_use]
    pub fn leaving_out_due_notes(self, before: bool, after: bool) -> Self {
        if before {
            self.due.skip(due::NoteMoment::Before);
        }
        if after {
            self.due.skip(due::NoteMoment::After);
        }
        self
    }

    /// This store, renewing lifetimes every `every` instead of every
    /// minute: for tests that watch keys outlive what they hold at a short
    /// scale.
    #[must_use]
    pub fn renewing_every(mut self, every: Duration) -> Self {
        self.renewals = Renewals::new(every);
        self
    }

    /// The indexes and queues `ops` add to, each once: the latest time an
    /// add asks it to live until (ms, Redis' time as reckoned: `now` plus
    /// the add's TTL), whether this commit renews its lifetime, and the
    /// slack of a renewal: the renewal period, or that add's TTL when
    /// shorter (a short-lived key outlives what it holds by no more than
    /// it lives; it is renewed as often, when an add asks for more).
    fn lives<'o>(&self, ops: &'o [Op], now: i64, started: Instant) -> Vec<Life<'o>> {
        let mut lives: Vec<Life<'o>> = Vec::new();
        for op in ops {
            let (Op::IndexAdd { key, ttl, .. } | Op::QueueAdd { key, ttl, .. }) = op else {
                continue;
            };
            let until = now.saturating_add_unsigned(ttl_ms(*ttl));
            match lives.iter_mut().find(|l| l.key == key) {
                Some(life) => life.latest = life.latest.max(until),
                None => lives.push(Life {
                    key,
                    latest: until,
                    renew: false,
                    slack: 0,
                    prune: matches!(op, Op::IndexAdd { .. }) && self.prunes.due(key),
                }),
            }
        }
        let every = u64::try_from(self.renewals.every().as_millis()).unwrap_or(u64::MAX);
        for life in &mut lives {
            life.renew = self.renewals.due(life.key, started, life.latest);
            life.slack = every.min(life.latest.saturating_sub(now).unsigned_abs());
        }
        lives
    }

    fn key(&self, logical: &str) -> String {
        let mut physical = String::with_capacity(self.prefix.len() + 1 + logical.len());
        self.push_key(&mut physical, logical);
        physical
    }

    /// Appends `logical`'s physical key (`<prefix>:<logical>`) to `out`.
    fn push_key(&self, out: &mut String, logical: &str) {
        out.push_str(&self.prefix);
        out.push(':');
        out.push_str(logical);
    }

    /// One `MGET` of the logical `keys`, decoded. The physical keys are
    /// written into the command through one reused buffer.
    async fn mget<K: AsRef<str> + Sync>(
        &self,
        keys: &[K],
    ) -> Result<Vec<Option<Versioned>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = cmd("MGET");
        let mut physical = String::new();
        for key in keys {
            physical.clear();
            self.push_key(&mut physical, key.as_ref());
            mget.arg(physical.as_str());
        }
        let reply = self.conn.query("get", &mget).await?;
        let Value::Array(items) = reply else {
            return Err(unexpected("get"));
        };
        if items.len() != keys.len() {
            return Err(unexpected("get"));
        }
        let decoded = keys.iter().zip(items).map(|(key, item)| match item {
            Value::Nil => Ok(None),
            Value::BulkString(raw) => decode(key.as_ref(), raw).map(Some),
            _ => Err(StoreError::Corrupt(format!(
                "record {} is not a string",
                key.as_ref()
            ))),
        });
        decoded.collect()
    }

    /// The one `ZREM` that is a commit of removals from one queue alone
    /// (nothing checked, nothing else written), if `ops` are that.
    fn lone_queue_removal(&self, ops: &[Op]) -> Option<::redis::Cmd> {
        let Some(Op::QueueRemove { key: queue, .. }) = ops.first() else {
            return None;
        };
        let mut zrem = cmd("ZREM");
        zrem.arg(self.key(queue));
        for op in ops {
            match op {
                Op::QueueRemove { key, member } if key == queue => zrem.arg(member),
                _ => return None,
            };
        }
        Some(zrem)
    }

    /// After a commit, the companions its records name, so that the first
    /// [`Store::get_with_companion`] of a record written here is one round
    /// trip too.
    fn remember_companions(&self, ops: &[Op]) {
        for op in ops {
            if let Op::Put { key, companion, .. } = op {
                match companion {
                    Some(named) => self.companions.remember(key, named),
                    None => self.companions.forget(key),
                }
            }
        }
    }
}

/// An index or a queue a commit adds to (see [`RedisStore::lives`]).
struct Life<'o> {
    key: &'o str,
    latest: i64,
    renew: bool,
    /// ms.
    slack: u64,
    /// An index this commit prunes of its dead members.
    prune: bool,
}

/// Beside every sorted index, a sorted set of when each member expires
/// (Redis time, ms): writes drop the members whose time is up, and the index
/// lives as long as its longest-lived member. Same hash tag as the index.
fn expiry_set(index: &str) -> String {
    format!("{index}:exp")
}

/// The part of `key` Redis Cluster hashes: the text between the first `{`
/// and the next `}` when not empty, else the whole key. (The key prefix
/// has no braces, so a logical key's tag is its physical key's.)
fn hash_tag(key: &str) -> &str {
    key.split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .map(|(tag, _)| tag)
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key)
}

/// Whether every key of `ops` has the same hash tag (so one cluster slot).
fn one_hash_tag(ops: &[Op]) -> bool {
    let mut tags = ops.iter().map(|op| hash_tag(op.key()));
    let first = tags.next();
    tags.all(|t| Some(t) == first)
}

/// `"<version>\n<json>"`.
fn encode(version: u64, json: &str) -> String {
    format!("{version}\n{json}")
}

/// The reply's own buffer becomes the value, the version line cut off its
/// front in place: no second allocation for the record.
fn decode(key: &str, raw: Vec<u8>) -> Result<Versioned, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("record {key} has no valid version line"));
    let mut text = String::from_utf8(raw).map_err(|_| corrupt())?;
    let newline = text.find('\n').ok_or_else(corrupt)?;
    let version: u64 = text[..newline].parse().map_err(|_| corrupt())?;
    if version == 0 {
        return Err(corrupt());
    }
    text.drain(..=newline);
    Ok(Versioned {
        version,
        value: text,
    })
}

/// Milliseconds for `PX`/`PEXPIRE`: at least 1 (0 is refused), at most ~100 years.
fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis().clamp(1, MAX_TTL_MS)).unwrap_or(1)
}

fn unexpected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("redis {what}: unexpected reply shape"))
}

fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A flat `member, score, ...` reply as entries.
fn entries(what: &str, reply: Value) -> Result<Vec<IndexEntry>, StoreError> {
    let items = match reply {
        Value::Array(items) => items,
        Value::Nil => Vec::new(),
        _ => return Err(unexpected(what)),
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        let [member, score] = pair else {
            return Err(unexpected(what));
        };
        let member = text(member).ok_or_else(|| unexpected(what))?.to_owned();
        let score = match score {
            Value::Int(i) => *i,
            Value::Double(d) => score_from_f64(*d).ok_or_else(|| unexpected(what))?,
            other => parse_score(text(other).ok_or_else(|| unexpected(what))?)
                .ok_or_else(|| unexpected(what))?,
        };
        out.push(IndexEntry { member, score });
    }
    Ok(out)
}

/// A claim's answer: Redis' time (ms) when it ran, then its entries.
fn claim_reply(reply: Value) -> Result<(i64, Vec<IndexEntry>), StoreError> {
    const WHAT: &str = "index_claim_due";
    let Value::Array(mut items) = reply else {
        return Err(unexpected(WHAT));
    };
    if items.is_empty() {
        return Err(unexpected(WHAT));
    }
    let now = match items.remove(0) {
        Value::Int(ms) => ms,
        _ => return Err(unexpected(WHAT)),
    };
    Ok((now, entries(WHAT, Value::Array(items))?))
}

/// This host's time, ms since the Unix epoch.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn parse_score(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| score_from_f64(s.parse::<f64>().ok()?))
}

#[allow(clippy::cast_possible_truncation)]
fn score_from_f64(d: f64) -> Option<i64> {
    d.is_finite().then(|| d.round() as i64)
}

#[async_trait]
impl Store for RedisStore {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.mget(keys).await
    }

    /// One MGET of the record and the companion its last write here named,
    /// else the `default` one (the caller checks the key it gets back).
    async fn get_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
    ) -> Result<WithCompanion, StoreError> {
        Ok(self.get_with_companion_and(key, default, &[]).await?.0)
    }

    /// One MGET of the record, its companion as known or guessed, and `also`.
    async fn get_with_companion_and(
        &self,
        key: &str,
        default: Option<&str>,
        also: &[String],
    ) -> Result<(WithCompanion, Vec<Option<Versioned>>), StoreError> {
        let cached = self.companions.get(key);
        let companion = cached.as_deref().or(default);
        let mut wanted: Vec<&str> = Vec::with_capacity(2 + also.len());
        wanted.push(key);
        wanted.extend(companion);
        wanted.extend(also.iter().map(String::as_str));
        let mut read = self.mget(&wanted).await?;
        let more = read.split_off(1 + usize::from(companion.is_some()));
        let mut read = read.into_iter();
        let Some(record) = read.next().flatten() else {
            if cached.is_some() {
                self.companions.forget(key);
            }
            return Ok((WithCompanion::default(), more));
        };
        let read = WithCompanion {
            record: Some(record),
            companion: companion.map(|c| (c.to_owned(), read.next().flatten())),
        };
        Ok((read, more))
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        if ops.is_empty() {
            return Ok(Commit::Applied);
        }
        if !one_hash_tag(&ops) {
            // Redis Cluster would refuse it (CROSSSLOT); refused here on one
            // Redis too, so every test on Redis checks it.
            return Err(StoreError::Unavailable(
                "redis commit: keys with different hash tags (several cluster slots)".into(),
            ));
        }
        // A lone create (a short link): the script's check and write are
        // one `SET … NX`, without the cost of running a script.
        if let [Op::Put {
            key,
            expected: 0,
            version,
            value,
            ttl,
            ..
        }] = ops.as_slice()
        {
            let mut set = cmd("SET");
            set.arg(self.key(key))
                .arg(encode(*version, value))
                .arg("NX");
            if let Some(ttl) = ttl {
                set.arg("PX").arg(ttl_ms(*ttl));
            }
            return match self.conn.query("commit", &set).await? {
                Value::Okay => {
                    self.remember_companions(&ops);
                    Ok(Commit::Applied)
                }
                Value::Nil => Ok(Commit::Conflict { op: 0 }),
                _ => Err(unexpected("commit")),
            };
        }
        // Removals from one queue alone (the outbox's settlements): the
        // script would run one `ZREM`; it is that `ZREM`, without the
        // script (its keeper stays, so the key does too).
        if let Some(zrem) = self.lone_queue_removal(&ops) {
            return match self.conn.query("commit", &zrem).await? {
                Value::Int(_) => Ok(Commit::Applied),
                _ => Err(unexpected("commit")),
            };
        }
        let started = Instant::now();
        // Redis' time as this process reckons it: the script's `now`.
        let now = unix_ms().saturating_add(self.redis_ahead_ms.load(Ordering::Relaxed));
        let lives = self.lives(&ops, now, started);
        // The streams this commit gives their lifetime.
        let mut given: Vec<&str> = Vec::new();
        let mut call = self.commit_script.prepare_invoke();
        call.arg(now);
        // Each op's keys go in its order (an index op's followed by its
        // expiry set): the script finds them by position, not by number.
        let key = |call: &mut ::redis::ScriptInvocation<'_>, logical: &str, index: bool| {
            call.key(self.key(logical));
            if index {
                call.key(self.key(&expiry_set(logical)));
            }
        };
        for op in &ops {
            match op {
                Op::Put {
                    key: k,
                    expected,
                    version,
                    value,
                    ttl,
                    ..
                } => {
                    key(&mut call, k, false);
                    let next = encode(*version, value);
                    let ttl = ttl.map_or(0, ttl_ms);
                    call.arg("P").arg(*expected).arg(next).arg(ttl);
                }
                Op::Delete { key: k, expected } => {
                    key(&mut call, k, false);
                    call.arg("D").arg(*expected);
                }
                Op::IndexAdd {
                    key: k,
                    member,
                    score,
                    ttl,
                }
                | Op::QueueAdd {
                    key: k,
                    member,
                    score,
                    ttl,
                } => {
                    // A queue has no expiry set.
                    let index = matches!(op, Op::IndexAdd { .. });
                    key(&mut call, k, index);
                    let life = lives.iter().find(|l| l.key == k);
                    let (renew, slack) = life.map_or((false, 0), |l| (l.renew, l.slack));
                    call.arg(if index { "A" } else { "Q" })
                        .arg(member)
                        .arg(*score)
                        .arg(ttl_ms(*ttl))
                        .arg(if renew { "1" } else { "0" })
                        .arg(slack);
                    if index {
                        let prune = life.is_some_and(|l| l.prune);
                        call.arg(if prune { "1" } else { "0" });
                    }
                }
                Op::Touch { key: k, ttl } => {
                    key(&mut call, k, false);
                    call.arg("T").arg(ttl_ms(*ttl));
                }
                Op::IndexRemove { key: k, member } => {
                    key(&mut call, k, true);
                    call.arg("R").arg(member);
                }
                Op::QueueRemove { key: k, member } => {
                    key(&mut call, k, false);
                    call.arg("U").arg(member);
                }
                Op::Append {
                    key: k,
                    entry,
                    max_age,
                    ttl,
                } => {
                    key(&mut call, k, false);
                    // A stream is renewed by the period alone
                    // ([`renewals::BY_PERIOD`]): each renewal gives it its
                    // whole TTL, which outlives the period.
                    let renewing = given.contains(&k.as_str());
                    let fresh = renewing || self.renewals.due(k, started, renewals::BY_PERIOD);
                    if fresh && !renewing {
                        given.push(k);
                    }
                    // Entries older than `max_age` by Redis' time (stream
                    // ids are Redis' ms), as the script's `now` is.
                    let oldest =
                        now.saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
                    call.arg("X")
                        .arg(entry)
                        .arg(format!("{}-0", oldest.max(0)))
                        .arg(ttl_ms(*ttl))
                        .arg(if fresh { "1" } else { "0" });
                }
            }
        }
        // On one Redis the due notes are the script's last ops; a Cluster
        // keeps them in a slot of their own, noted apart: before the
        // commit, so that an instance killed after it leaves its team
        // listed, and after it, for a worker that took the team between
        // the two (decision 0190).
        let cluster = self.conn.is_cluster();
        if cluster {
            self.note_apart(Self::queued(&ops), due::NoteMoment::Before)
                .await;
        } else {
            given.extend(self.add_due_notes(&mut call, &ops, started));
        }
        match self.conn.invoke("commit", &call).await? {
            Value::Int(0) => {
                self.remember_companions(&ops);
                if cluster {
                    self.note_apart(Self::queued(&ops), due::NoteMoment::After)
                        .await;
                }
                let renewed = lives.iter().filter(|l| l.renew);
                let renewed = renewed.map(|l| (l.key, l.latest.saturating_add_unsigned(l.slack)));
                let streams = given.into_iter().map(|k| (k, renewals::BY_PERIOD));
                self.renewals.given(renewed.chain(streams), started);
                Ok(Commit::Applied)
            }
            Value::Int(n) => match n.checked_sub(1).map(usize::try_from) {
                Some(Ok(op)) if op < ops.len() => Ok(Commit::Conflict { op }),
                _ => Err(unexpected("commit")),
            },
            _ => Err(unexpected("commit")),
        }
    }

    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let limit = limit.min(u32::MAX as usize);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let physical = self.key(key);
        let Some((score, member)) = before else {
            // Below the keeper's score: a queue's keeper is not an entry
            // (see `redis/commit.lua`).
            let mut range = cmd("ZREVRANGEBYSCORE");
            range
                .arg(&physical)
                .arg(format!("({KEEPER_SCORE}"))
                .arg("-inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
            return entries("index_desc", self.conn.query("index_desc", &range).await?);
        };
        let batch = limit + TIE_SLACK;
        let page_at = |offset: usize| {
            let mut range = cmd("ZREVRANGEBYSCORE");
            range
                .arg(&physical)
                .arg(score)
                .arg("-inf")
                .arg("WITHSCORES");
            range.arg("LIMIT").arg(offset).arg(batch);
            range
        };
        let cursor = (score, member.as_str());
        self.conn
            .timed("index_desc", async {
                let mut conn = self.conn.link().await?;
                let mut out = Vec::new();
                let mut offset = 0usize;
                loop {
                    let reply = query_on(&mut conn, "index_desc", &page_at(offset)).await?;
                    let page = entries("index_desc", reply)?;
                    let full = page.len() == batch;
                    let below = page
                        .into_iter()
                        .filter(|e| (e.score, e.member.as_str()) < cursor);
                    out.extend(below.take(limit - out.len()));
                    if out.len() == limit || !full {
                        return Ok(out);
                    }
                    offset += batch;
                }
            })
            .await
    }

    async fn index_claim_due(
        &self,
        key: &str,
        max_score: i64,
        limit: usize,
        claim_score: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let limit = limit.min(u32::MAX as usize);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let answer_by = self.answer_by(conn::CALL_TIMEOUT);
        let mut call = self.claim_due_script.prepare_invoke();
        // Never up to a queue's keeper.
        call.key(self.key(key))
            .arg(max_score.min(KEEPER_SCORE - 1))
            .arg(limit)
            .arg(claim_score)
            .arg(answer_by);
        let reply = self.conn.invoke("index_claim_due", &call).await?;
        let (redis_now, claimed) = claim_reply(reply)?;
        self.redis_ahead_ms
            .store(redis_now.saturating_sub(unix_ms()), Ordering::Relaxed);
        Ok(claimed)
    }

    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        // Noted before and after, as a Cluster's commit is.
        self.note_apart([(key, score)], due::NoteMoment::Before)
            .await;
        let mut call = self.move_unchanged_script.prepare_invoke();
        call.key(self.key(key)).arg(score);
        for entry in entries {
            call.arg(&entry.member).arg(entry.score);
        }
        let moved = match self.conn.invoke("queue_move_unchanged", &call).await? {
            Value::Int(n) => usize::try_from(n).unwrap_or(0),
            _ => return Err(unexpected("queue_move_unchanged")),
        };
        if moved > 0 {
            self.note_apart([(key, score)], due::NoteMoment::After)
                .await;
        }
        Ok(moved)
    }

    async fn queues_first(&self, queues: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
        self.first_of_queues(queues).await
    }

    async fn due_teams_claim(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
    ) -> Result<DueTaken, StoreError> {
        self.claim_due_teams(index, now, limit, hold_until).await
    }

    async fn due_teams_release(
        &self,
        index: &str,
        team: &str,
        held_until: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        self.release_due_team(index, team, held_until, next).await
    }

    async fn due_teams_note(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError> {
        self.note_due(index, teams).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self.conn.query("ping", &cmd("PING")).await? {
            Value::SimpleString(s) if s == "PONG" => Ok(()),
            Value::Okay => Ok(()),
            _ => Err(unexpected("ping")),
        }
    }

    /// On a Cluster, the least marker of each master serving slots.
    async fn node_markers(&self) -> Vec<String> {
        if !self.conn.is_cluster() {
            return vec![super::keys::node_marker(0)];
        }
        match self.conn.link().await {
            Ok(conn::Link::Routed(router)) => {
                let tag = |n: u32| format!("{}:{}", self.prefix, super::keys::node_marker(n));
                router
                    .one_per_master(tag)
                    .into_iter()
                    .map(super::keys::node_marker)
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Streams on the same Redis (as configured: the same URL or seed
    /// nodes) under the same prefix: the event log's own history.
    fn append_history(&self, history: &History) -> bool {
        match history {
            History::Redis {
                servers,
                key_prefix,
            } => *servers == self.servers && *key_prefix == self.prefix,
            History::InProcess(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_script_prunes_as_many_as_prunes_says() {
        let line = format!("local PRUNE = {}\n", prunes::PRUNED_AT_MOST);
        assert!(COMMIT_LUA.contains(&line), "commit.lua: {line}");
    }

    #[test]
    fn the_commit_script_writes_the_keeper_at_its_score() {
        let literal = format!("'{KEEPER_SCORE}'");
        assert!(COMMIT_LUA.contains(&literal), "commit.lua names {literal}");
        assert_eq!(
            KEEPER_SCORE as f64 as i64, KEEPER_SCORE,
            "a double holds it"
        );
    }

    #[test]
    fn decode_takes_the_version_line_off_the_reply() {
        let v = decode("k", b"17\n{\"a\":\"x\ny\"}".to_vec()).expect("valid");
        assert_eq!(v.version, 17);
        assert_eq!(
            v.value, "{\"a\":\"x\ny\"}",
            "only the first line is the version"
        );
        let empty = decode("k", b"3\n".to_vec()).expect("valid");
        assert_eq!((empty.version, empty.value.as_str()), (3, ""));
        for bad in [
            &b"{\"no\":\"version\"}"[..],
            b"0\n{}",
            b"-1\n{}",
            b"x1\n{}",
            b"\n{}",
            b"1\n\xff",
        ] {
            match decode("the-key", bad.to_vec()) {
                Err(StoreError::Corrupt(m)) => {
                    assert!(m.contains("the-key"), "{m}");
                    assert!(!m.contains('{'), "no value in the message: {m}");
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }

    #[test]
    fn hash_tags_follow_redis_cluster() {
        assert_eq!(hash_tag("{acme}:i:1"), "acme");
        assert_eq!(hash_tag("p:{acme}:s:{x}"), "acme");
        assert_eq!(hash_tag("l:abc"), "l:abc");
        assert_eq!(hash_tag("{}:a"), "{}:a");
        assert_eq!(hash_tag("{open"), "{open");
        let put = |key: &str| Op::Put {
            key: key.into(),
            expected: 0,
            version: crate::store::fresh_version(),
            value: "{}".into(),
            ttl: None,
            companion: None,
        };
        assert!(one_hash_tag(&[put("{a}:x"), put("{a}:y")]));
        assert!(one_hash_tag(&[put("l:x")]));
        assert!(!one_hash_tag(&[put("{a}:x"), put("{b}:x")]));
        assert!(!one_hash_tag(&[put("{a}:x"), put("l:x")]));
    }

    /// Commands that take no key.
    const KEYLESS: &[&str] = &["'TIME'"];

    /// The arguments of a call, from just after its `(` to the matching `)`.
    fn arguments(text: &str) -> Vec<&str> {
        let (mut depth, mut start, mut out) = (0i32, 0usize, Vec::new());
        for (i, c) in text.char_indices() {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' if depth == 0 => {
                    out.push(text[start..i].trim());
                    return out;
                }
                ')' | ']' | '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(text[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out
    }

    /// The `redis.call`s and `redis.pcall`s of `script` whose key is not
    /// passed in `KEYS`: directly (`KEYS[...]`), through a local bound to
    /// one, or through a parameter of a local function whose every call
    /// passes such a key where a redis call takes that parameter as its key.
    fn calls_outside_keys(script: &str) -> Vec<String> {
        let mut aliases: Vec<&str> = Vec::new();
        let mut functions: Vec<(&str, Vec<&str>)> = Vec::new();
        for line in script.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("local function ") {
                if let Some((name, params)) = rest.split_once('(') {
                    let params = arguments(params);
                    aliases.extend(&params);
                    functions.push((name.trim(), params));
                }
            } else if let Some((name, value)) =
                line.strip_prefix("local ").and_then(|l| l.split_once('='))
            {
                if value.trim().starts_with("KEYS[") {
                    aliases.push(name.trim());
                }
            }
        }
        let a_key =
            |arg: &str| (arg.starts_with("KEYS[") && arg.ends_with(']')) || aliases.contains(&arg);
        let mut outside = Vec::new();
        // What the redis calls take as their key.
        let mut keys_taken = Vec::new();
        for call in ["redis.call(", "redis.pcall("] {
            for args in script.split(call).skip(1).map(arguments) {
                let command = args.first().copied().unwrap_or("");
                if KEYLESS.contains(&command) {
                    continue;
                }
                if !args.get(1).is_some_and(|k| a_key(k)) {
                    outside.push(format!("{call}{})", args.join(", ")));
                }
                keys_taken.extend(args.get(1).copied());
            }
        }
        for (f, params) in functions {
            let keyed: Vec<usize> = (0..params.len())
                .filter(|&i| keys_taken.contains(&params[i]))
                .collect();
            let pattern = format!("{f}(");
            for (at, _) in script.match_indices(&pattern) {
                // A call of `f`, not of a name ending in it (`refused(`
                // for `used(`), nor its definition.
                let named = script[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_');
                if named || script[..at].ends_with("function ") {
                    continue;
                }
                let args = arguments(&script[at + pattern.len()..]);
                if !keyed.iter().all(|&i| args.get(i).is_some_and(|a| a_key(a))) {
                    outside.push(format!("{f}({})", args.join(", ")));
                }
            }
        }
        outside
    }

    /// Redis' scripting rule, which Redis Cluster and key-checking proxies
    /// rely on: a script touches only the keys passed in `KEYS`, never one
    /// built from `ARGV` or from stored data.
    #[test]
    fn scripts_touch_only_the_keys_passed_in_keys() {
        for (name, script) in [
            ("commit.lua", COMMIT_LUA),
            ("claim_due.lua", CLAIM_DUE_LUA),
            ("due_claim.lua", due::DUE_CLAIM_LUA),
            ("due_release.lua", due::DUE_RELEASE_LUA),
            ("due_note.lua", due::DUE_NOTE_LUA),
        ] {
            assert!(script.contains("redis.call("), "{name}");
            assert_eq!(calls_outside_keys(script), Vec::<String>::new(), "{name}");
        }
        // What the check catches: the companion read the store once did.
        let built = "local c = redis.call('GET', KEYS[1])\nreturn redis.call('GET', ARGV[1] .. c)";
        assert_eq!(
            calls_outside_keys(built),
            ["redis.call('GET', ARGV[1] .. c)"]
        );
        let through = "local function f(k)\n  redis.call('DEL', k)\nend\nf(KEYS[2])\nf(ARGV[1])";
        assert_eq!(calls_outside_keys(through), ["f(ARGV[1])"]);
        let suffix =
            "local function used(k)\n  redis.call('DEL', k)\nend\nused(KEYS[2])\nrefused(ARGV[1])";
        assert_eq!(
            calls_outside_keys(suffix),
            Vec::<String>::new(),
            "refused is not used"
        );
        let protected = "local r = redis.pcall('GET', ARGV[1])\nreturn redis.pcall('GET', KEYS[1])";
        assert_eq!(
            calls_outside_keys(protected),
            ["redis.pcall('GET', ARGV[1])"]
        );
        // A parameter no redis call takes as its key may be anything.
        let checked = "local function g(reply, k)\n  redis.call('DEL', k)\n  return reply\nend\n\
                       g(ARGV[1], KEYS[1])\ng(KEYS[1], ARGV[2])";
        assert_eq!(calls_outside_keys(checked), ["g(KEYS[1], ARGV[2])"]);
    }
}
