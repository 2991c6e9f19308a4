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
mod clock;
mod cluster;
mod commit;
pub(crate) mod conn;
mod due;
mod indexes;
mod note_journal;
mod prunes;
mod reads;
mod renewals;
mod scripts;
mod signals;
mod wire;

use ::redis::{cmd, Script, Value};
use async_trait::async_trait;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use self::clock::RedisClock;
use self::conn::Connector;
use self::prunes::Prunes;
use self::renewals::Renewals;
use self::wire::unexpected;
use super::companions::Companions;
use super::signals::{Signals, Watch};
use super::{
    Commit, DueTaken, History, IndexEntry, Op, Store, StoreError, Versioned, WithCompanion,
};

/// The score of a queue's keeper (`redis/commit.lua` writes it): 2^53, the
/// largest integer a double holds exactly, far above any time in ms.
pub(crate) const KEEPER_SCORE: i64 = 1 << 53;

/// Which concern of the store lives where (`store/redis/`): the records'
/// reads in `reads.rs`, the commit in `commit.rs`, the indexes' and
/// queues' reads, claims and moves in `indexes.rs`, the teams' due
/// indexes in `due.rs`; the scripts in `scripts.rs`; what goes over the wire in `wire.rs`, Redis' time
/// as reckoned in `clock.rs`, connections in `conn.rs` and `cluster.rs`.
pub struct RedisStore {
    prefix: Prefix,
    /// The Redis URL, or the cluster's seed nodes, as given.
    servers: Vec<String>,
    conn: Connector,
    commit_script: Script,
    claim_due_script: Script,
    move_unchanged_script: Script,
    due: due::Due,
    companions: Companions,
    /// Redis' time as this process reckons it: a claim's answer-by time
    /// and a commit's `now` are written in it.
    clock: RedisClock,
    /// When this process last gave each history stream, index and queue
    /// it writes its lifetime (see `redis/commit.lua`).
    renewals: Renewals,
    /// When this process's adds to an index prune it.
    prunes: Prunes,
    /// The change signals that reach this process (`redis/signals.rs`).
    signals: Arc<Signals>,
    /// Its subscriber, started at the first watch; it ends when this is
    /// dropped.
    subscriber: OnceLock<tokio::sync::watch::Sender<()>>,
}

/// How often a writer gives a history stream, an index or a queue it
/// writes its lifetime: a stream lives its TTL less this past its last
/// entry; an index or a queue at least this past the latest expiry a
/// renewal asked for.
const LIFETIME_EVERY: Duration = Duration::from_secs(60);

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix.0)
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
        let conn = Connector::cluster_running(nodes, scripts::SCRIPTS).await?;
        Ok(Self::with(conn, nodes.to_vec(), key_prefix))
    }

    fn with(conn: Connector, servers: Vec<String>, key_prefix: &str) -> Self {
        Self {
            prefix: Prefix(key_prefix.to_owned()),
            servers,
            conn,
            commit_script: Script::new(commit::COMMIT_LUA),
            claim_due_script: Script::new(indexes::CLAIM_DUE_LUA),
            move_unchanged_script: Script::new(indexes::MOVE_UNCHANGED_LUA),
            due: due::Due::new(),
            companions: Companions::new(),
            clock: RedisClock::default(),
            renewals: Renewals::new(LIFETIME_EVERY),
            prunes: Prunes::default(),
            signals: Signals::down(),
            subscriber: OnceLock::new(),
        }
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
}

/// The store's key prefix: every physical key is
/// `"{key_prefix}:{logical_key}"`.
struct Prefix(String);

impl Prefix {
    /// `logical`'s physical key.
    fn key(&self, logical: &str) -> String {
        let mut physical = String::with_capacity(self.0.len() + 1 + logical.len());
        self.push(&mut physical, logical);
        physical
    }

    /// Appends `logical`'s physical key (`<prefix>:<logical>`) to `out`.
    fn push(&self, out: &mut String, logical: &str) {
        out.push_str(&self.0);
        out.push(':');
        out.push_str(logical);
    }
}

/// Each method is one concern's (see [`RedisStore`]).
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
        Ok(self.mget_with_companion(key, default, &[]).await?.0)
    }

    /// One MGET of the record, its companion as known or guessed, and `also`.
    async fn get_with_companion_and(
        &self,
        key: &str,
        default: Option<&str>,
        also: &[String],
    ) -> Result<(WithCompanion, Vec<Option<Versioned>>), StoreError> {
        self.mget_with_companion(key, default, also).await
    }

    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        self.commit_ops(ops).await
    }

    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.descending(key, before, limit).await
    }

    async fn index_claim_due(
        &self,
        key: &str,
        max_score: i64,
        limit: usize,
        claim_score: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.claim_due(key, max_score, limit, claim_score).await
    }

    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        self.move_unchanged(key, entries, score).await
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

    /// Once this process's subscription to the change channels is up
    /// (`redis/signals.rs`, started here at the first watch), within a
    /// call's time; else `Unavailable`.
    async fn watch(&self, keys: &[String]) -> Result<Watch, StoreError> {
        if let Some(w) = self.signals.watch(keys) {
            return Ok(w);
        }
        self.subscriber.get_or_init(|| {
            let servers = self.servers.clone();
            signals::start(servers, &self.prefix.0, Arc::clone(&self.signals))
        });
        let within = self.signals.watch_within(keys, conn::CALL_TIMEOUT);
        within
            .await
            .ok_or_else(|| StoreError::Unavailable("redis change signals: not subscribed".into()))
    }

    /// On a Cluster, the least marker of each master serving slots.
    async fn node_markers(&self) -> Vec<String> {
        if !self.conn.is_cluster() {
            return vec![super::keys::node_marker(0)];
        }
        match self.conn.link().await {
            Ok(conn::Link::Routed(router)) => {
                let tag = |n: u32| self.prefix.key(&super::keys::node_marker(n));
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
            } => *servers == self.servers && *key_prefix == self.prefix.0,
            History::InProcess(_) => false,
        }
    }
}
