//! The store: a small versioned key-value trait with atomic compare-and-set
//! transactions, and two implementations, [`memory::MemoryStore`] (one
//! process) and [`redis::RedisStore`] (production, several instances).
//!
//! # Model
//!
//! Every record is a JSON string with a version. A use case reads the records
//! it needs ([`Store::get`], one round trip), lets the domain compute the new
//! state, and writes it back with [`Store::commit`]: a list of [`Op`]s that
//! either all apply or none does. A `Put` names the version it read (0 for
//! "absent"; versions never repeat, see [`fresh_version`]), so a concurrent writer makes the commit fail with
//! [`Commit::Conflict`] and the use case retries on fresh data
//! ([`retry`]). That makes one-time ids, attempt counters and lockouts exact
//! under concurrency, with the rules written once, in Rust.
//!
//! Sorted indexes (newest-first listings, customer → interactions) and
//! queues (due times, the outbox) sit beside the records; updates to them
//! ride in the same commit. An index's members expire one by one, so it
//! holds only what is alive; a queue's members stay until its worker removes
//! them, which spares every write the bookkeeping of their expiries.
//!
//! Keys are logical (`{team}:i:<id>`, see [`keys`]); the Redis store puts
//! `key_prefix:` in front. All keys of one team share the hash tag `{team}`,
//! so every transaction stays in one Redis Cluster slot.
//!
//! A team's event history (a stream, in Redis) sits beside them too: a
//! commit may append the events of its change to it ([`Op::Append`]), so
//! an event is in the history exactly when its change committed.
//!
//! Every `Put` has a TTL except where docs/operations.md#keys allows none (a ban until
//! an admin unlocks), and every index, queue and history has one, renewed while it is
//! written to (docs/architecture.md#keys-and-slots).
pub(crate) mod companions;
pub(crate) mod due_index;
pub mod keys;
pub mod memory;
pub mod redis;
pub mod signals;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

/// The store could not do its work. Never carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable, timed out, or refused: the request fails closed with 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record that does not parse: a bug or a foreign writer.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// A record as read: its JSON text and version (≥ 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub version: u64,
    pub value: String,
}

/// One step of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write `value` if the key is still at version `expected` (0 = absent);
    /// the record then has version `version`, a [`fresh_version`] (chosen by
    /// the writer, so it knows what it wrote without reading it back).
    /// `ttl: None` keeps it until deleted. `companion`: the key of the
    /// record this one goes with, which [`Store::get_with_companion`] reads
    /// beside it (the store never looks inside `value` for it).
    Put {
        key: String,
        expected: u64,
        version: u64,
        value: String,
        ttl: Option<Duration>,
        companion: Option<String>,
    },
    /// Delete the key if it is still at version `expected` (0 = absent: a no-op check).
    Delete { key: String, expected: u64 },
    /// Add or move `member` in the sorted index `key` to `score`, and set the
    /// index's TTL to at least `ttl`. Never conflicts.
    IndexAdd {
        key: String,
        member: String,
        score: i64,
        ttl: Duration,
    },
    /// Remove `member` from the sorted index `key`. Never conflicts.
    IndexRemove { key: String, member: String },
    /// Remove `member` from the queue `key` (see [`Op::QueueAdd`]). Never
    /// conflicts.
    QueueRemove { key: String, member: String },
    /// Add or move `member` in the queue `key` (a sorted index its worker
    /// drains) to `score`. Unlike an [`Op::IndexAdd`]'s, the member has no
    /// expiry of its own: it stays until removed, or until the whole queue
    /// expires. The queue lives at least `ttl` from now; no add shortens
    /// its life (a store may keep it longer: the Redis store renews it
    /// with a minute's slack, and keeps a drained queue until then). A key
    /// is used as an index or as a queue, never both. `member` is never
    /// empty (the Redis store keeps a member `""` of its own in a queue).
    /// Never conflicts.
    QueueAdd {
        key: String,
        member: String,
        score: i64,
        ttl: Duration,
    },
    /// Raise the TTL of the record `key` to at least `ttl`, if it exists
    /// (a record that names something living as long as the writer).
    /// Never conflicts; the version is unchanged.
    Touch { key: String, ttl: Duration },
    /// Append `entry` to the history `key` (a team's event stream, see
    /// [`keys::history`]), after every entry of earlier commits: commit
    /// order is history order. Only for a store whose
    /// [`Store::append_history`] said yes. The history keeps entries
    /// about `max_age` (older ones are dropped, within a minute or so),
    /// however many that is, and its key lives `ttl` past its last
    /// append, renewed at least once a minute while appends come. Applied
    /// before every other write of the commit (on Redis: but its creates,
    /// which a refused append deletes again), so a history that refuses
    /// the entry leaves nothing written. Never conflicts.
    Append {
        key: String,
        entry: String,
        max_age: Duration,
        ttl: Duration,
    },
}

impl Op {
    /// The key the op works on.
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. }
            | Op::Delete { key, .. }
            | Op::IndexAdd { key, .. }
            | Op::IndexRemove { key, .. }
            | Op::QueueRemove { key, .. }
            | Op::QueueAdd { key, .. }
            | Op::Touch { key, .. }
            | Op::Append { key, .. } => key,
        }
    }
}

/// Takes the entries a commit appends to a history kept in this process
/// (the in-process event log), in commit order.
pub trait HistorySink: Send + Sync {
    /// `entry` is appended to the history `key` (called while the commit
    /// holds its lock: quick, and never back into the store).
    fn append(&self, key: &str, entry: &str);
}

/// Where the event log keeps its history, for [`Store::append_history`].
#[derive(Clone)]
pub enum History {
    /// In this process: the memory store hands it each entry.
    InProcess(Arc<dyn HistorySink>),
    /// Redis streams on `servers` (the Redis URL, or the cluster's seed
    /// nodes, as configured) under `key_prefix`.
    Redis {
        servers: Vec<String>,
        key_prefix: String,
    },
}

/// `value` as JSON text, written into a buffer sized for a stored record,
/// an outbox item or an event (most are 0.3–2 KB): one allocation where
/// `serde_json::to_string`, starting at 128 bytes, grows and copies its
/// buffer three or four times on each write of a record.
pub fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    json_text_after("", value)
}

/// [`json_text`] after `prefix` (a queue entry's kind, say), in the same
/// buffer: one allocation for the whole entry.
pub fn json_text_after<T: serde::Serialize + ?Sized>(
    prefix: &str,
    value: &T,
) -> serde_json::Result<String> {
    let mut text = Vec::with_capacity(JSON_TEXT_CAPACITY + prefix.len());
    text.extend_from_slice(prefix.as_bytes());
    serde_json::to_writer(&mut text, value)?;
    // serde_json writes only UTF-8; the check costs a pass over the bytes.
    String::from_utf8(text).map_err(|e| serde_json::Error::io(std::io::Error::other(e)))
}

/// The buffer [`json_text`] starts with.
const JSON_TEXT_CAPACITY: usize = 1024;

/// The version a `Put` gives its record: random and never 0, so a version
/// never repeats for the life of a key name — not even across a delete or an
/// expiry. (With "previous + 1", a record deleted and written again would
/// restart at 1, and a writer that read the old version 1 would overwrite
/// the new record: the ABA problem, which let concurrent failures of one
/// subject go uncounted.) Two writes share a version with probability 2⁻⁶⁴.
pub fn fresh_version() -> u64 {
    loop {
        let v = rand::random::<u64>();
        if v != 0 {
            return v;
        }
    }
}

/// The outcome of [`Store::commit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Applied,
    /// The `Put`/`Delete` at this position in the op list found another version.
    Conflict {
        op: usize,
    },
}

/// A record and its companion: the one its last write named, or the
/// default it was read with (see [`Store::get_with_companion`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WithCompanion {
    pub record: Option<Versioned>,
    /// The companion's logical key and record, when the record names one or
    /// was read with a default.
    pub companion: Option<(String, Option<Versioned>)>,
}

/// One entry of a sorted index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub member: String,
    pub score: i64,
}

/// What a take of a due index ([`Store::due_teams_claim`]) took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueTaken {
    /// The teams taken, each held until the take's `hold_until`.
    pub teams: Vec<String>,
    /// Whether every part of the index answered (on a Redis Cluster, every
    /// master's): `false` while one fails, whose teams wait for it.
    pub whole: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads several keys in one round trip; `None` for absent ones.
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError>;

    /// Reads `key` and, in the same round trip, its companion: the record
    /// whose logical key the last `Put` of `key` named in its `companion`
    /// (an interaction with a `customer_ref` names its subject) where the
    /// store knows it, else `default`. The memory store always knows it;
    /// the Redis store knows what this process wrote (see
    /// `store/companions.rs`), so a caller reading what another instance
    /// wrote gives its own guess as the default. The companion's key is
    /// returned so the caller can check it is the one it expects: the store
    /// never reads it from the record's text.
    async fn get_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
    ) -> Result<WithCompanion, StoreError>;

    /// [`Store::get_with_companion`], and the records `also` in the same
    /// round trip (an interaction's recognized conversation, whose key the
    /// caller knows once it has read the record somewhere).
    async fn get_with_companion_and(
        &self,
        key: &str,
        default: Option<&str>,
        also: &[String],
    ) -> Result<(WithCompanion, Vec<Option<Versioned>>), StoreError> {
        let read = self.get_with_companion(key, default).await?;
        let more = if also.is_empty() {
            Vec::new()
        } else {
            self.get(also).await?
        };
        Ok((read, more))
    }

    /// Applies all ops atomically, or none of them.
    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError>;

    /// Entries of a sorted index, highest score first (ties: highest member
    /// first), strictly below `before` (score, member) when given.
    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError>;

    /// Claims up to `limit` entries whose score is ≤ `max_score`, lowest
    /// first: atomically moves each to `claim_score` (a lease: the time it
    /// comes due again unless the claimer removes or moves it) and returns
    /// them with the score they had. Of several callers, each entry goes to
    /// one; an entry whose claimer died comes due again at `claim_score`.
    async fn index_claim_due(
        &self,
        key: &str,
        max_score: i64,
        limit: usize,
        claim_score: i64,
    ) -> Result<Vec<IndexEntry>, StoreError>;

    /// Moves each of `entries` (a member of the queue `key`, with the score
    /// it was read at) that is still there at that very score to `score`:
    /// an entry claimed, moved or removed since it was read is left as it
    /// is (a removed one is never brought back). Atomic; answers how many
    /// moved.
    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError>;

    /// The earliest score of each of `queues` (a queue's keeper aside),
    /// `None` for an empty or absent queue; one round trip however many.
    async fn queues_first(&self, queues: &[String]) -> Result<Vec<Option<i64>>, StoreError>;

    /// Takes up to `limit` teams of the due index `index`
    /// ([`keys::DUE_INDEX_DUEQ`], [`keys::DUE_INDEX_OUTBOX`]) whose earliest
    /// time is ≤ `now`, lowest first: each leaves the index and is held
    /// until `hold_until`, when, unless released, it is due again (its
    /// taker died). A team held that a write notes meanwhile is back in the
    /// index at once, and may be taken again (docs/architecture.md#many-teams).
    /// Every add or move of an entry of a team's queue that a due index
    /// lists ([`keys::due_index_of`]: a commit's `QueueAdd`, a
    /// [`Store::queue_move_unchanged`]) notes the queue's team there at
    /// that time: with the write itself, or (where the index is in another
    /// slot) before the write and again after it, so a team in no index and
    /// held by nobody has nothing due that any write made due since it was
    /// taken. A note the index's master did not take may be kept by the
    /// store and landed before its next take, which fails while it cannot
    /// (docs/decisions/0190-due-notes-on-a-cluster-before-and-after-the-write.md).
    /// On a Redis Cluster each master holds its own part of the index, its
    /// teams', and `limit` is per part: a master that fails or hangs keeps
    /// only its own teams ([`DueTaken::whole`] tells it); an error only when
    /// no part answered (docs/decisions/0230-a-due-index-per-cluster-master.md).
    async fn due_teams_claim(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold_until: i64,
    ) -> Result<DueTaken, StoreError>;

    /// Ends the hold on `team` taken with `held_until` (a hold another
    /// taker has since renewed is left alone), and puts the team back in
    /// the index at `next`, its queue's earliest time as read after its
    /// work (`None`: nothing queued), or lower where a write noted it
    /// lower meanwhile: never raises what the index holds.
    async fn due_teams_release(
        &self,
        index: &str,
        team: &str,
        held_until: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Notes each team of `teams` in the due index at its time, or leaves it
    /// where it is lower (a rescan's repair: see [`Store::due_teams_claim`]).
    async fn due_teams_note(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError>;

    /// Answers when the store is reachable.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The keys of the store's node markers ([`keys::node_marker`]): one
    /// per Redis Cluster master, as the slot map last read says (none
    /// while it is unknown); else one. A node that lost its data lost its
    /// marker, so reading these tells a reset without a read per team.
    async fn node_markers(&self) -> Vec<String> {
        vec![keys::node_marker(0)]
    }

    /// A watch of the records `keys` ([`keys::signalled`] ones): woken by
    /// every later commit that writes one of them, made by any instance
    /// (docs/architecture.md#change-signals). `Unavailable` while the
    /// store cannot tell (its subscription is down, or it raises no
    /// signal): the caller answers what it knows, without waiting.
    async fn watch(&self, keys: &[String]) -> Result<signals::Watch, StoreError> {
        let _ = keys;
        Err(StoreError::Unavailable(
            "this store raises no change signal".into(),
        ))
    }

    /// Whether this store's commits can append to `history`, where the
    /// event log reads it ([`Op::Append`]); an in-process history is wired
    /// to the store by this call. `false` (the default): events go the
    /// long way, through the outbox, whose dispatcher publishes them.
    fn append_history(&self, history: &History) -> bool {
        let _ = history;
        false
    }
}

pub type SharedStore = Arc<dyn Store>;

/// How many times a use case re-reads and re-tries a conflicting commit
/// before giving up with 503. Under N concurrent writers each round lets
/// one through, so this bounds the contention a single record tolerates.
pub const MAX_RETRIES: usize = 256;

/// The pause between attempts after a conflict: a yield for the first few,
/// then 1–4 ms with jitter; after [`MAX_RETRIES`] the caller gives up (503).
#[derive(Debug, Default)]
pub struct Backoff {
    conflicts: usize,
}

impl Backoff {
    /// Waits before the next attempt, or refuses when there were too many.
    pub async fn wait(&mut self) -> Result<(), StoreError> {
        self.conflicts += 1;
        if self.conflicts >= MAX_RETRIES {
            return Err(StoreError::Unavailable(
                "too much contention on one record".into(),
            ));
        }
        if self.conflicts > 9 {
            let jitter = rand::random::<u64>() % 4;
            tokio::time::sleep(Duration::from_millis(1 + jitter)).await;
        } else {
            tokio::task::yield_now().await;
        }
        Ok(())
    }
}

/// Runs `attempt` until it returns `Ok(Some(_))`, at most [`MAX_RETRIES`]
/// times; `Ok(None)` means "conflict, read again" (see [`Backoff`]).
pub async fn retry<T, E, F, Fut>(mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, E>>,
    E: From<StoreError>,
{
    let mut backoff = Backoff::default();
    loop {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
        backoff.wait().await?;
    }
}
