//! The round-trip budget of the hot paths: a status read is one store call,
//! a login callback two (read, commit). Counted with a store wrapper, so it
//! holds for Redis, where each call is one round trip. The same wrapper can
//! slow reads down, to see which of them wait for one another.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgate::store::memory::MemoryStore;
use chatgate::store::signals::Watch;
use chatgate::store::{
    Commit, DueTaken, History, IndexEntry, Op, SharedStore, Store, StoreError, Versioned,
    WithCompanion,
};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

/// A store that counts (and may slow, or fail) the calls of `inner`.
pub(crate) struct Counting {
    inner: SharedStore,
    calls: AtomicUsize,
    /// Reads of a record (and its companion) take [`SLOW_READ`] when set,
    /// the first of them [`FIRST_SLOW_READ`] when that is set too.
    slow_reads: AtomicBool,
    first_slower: AtomicBool,
    reading: AtomicUsize,
    most_reading: AtomicUsize,
    /// Loads of an interaction (with its companion).
    loads: AtomicUsize,
    /// Ops committed that extend what points to an interaction: the
    /// conversation key's TTL, the team's listing and customer indexes.
    extensions: AtomicUsize,
    /// Entries added to (or moved in) a team's due queue by commits, bar
    /// the outbox items born claimed that wait there (`o:`,
    /// docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md).
    due_adds: AtomicUsize,
    /// Commits with an op on a key containing this text fail as a store
    /// that is down would.
    failing: std::sync::Mutex<Option<String>>,
    /// The next claim of due entries of this queue panics, as a fault
    /// nobody foresaw would (then it is taken).
    panic_claiming: std::sync::Mutex<Option<String>>,
    /// Claims that panicked.
    pub(crate) panicked: AtomicUsize,
    /// Commits with an op on a team's audit head: tries of audited commits.
    pub(crate) head_commits: AtomicUsize,
    /// Reads of an audit head take [`SLOW_HEAD_READ`] when set.
    slow_head_reads: AtomicBool,
    /// Told the ops of each commit that applied, once it has.
    after_applied: Option<AfterApplied>,
    /// The keys of each `get`, in order.
    pub(crate) gets: std::sync::Mutex<Vec<Vec<String>>>,
    /// Of the calls, the reads (`get`, a load with its companion) and the
    /// commits.
    pub(crate) reads: AtomicUsize,
    pub(crate) commits: AtomicUsize,
}

/// What a [`Counting`] store tells of each commit that applied.
type AfterApplied = Box<dyn Fn(&[Op]) + Send + Sync>;

impl Default for Counting {
    fn default() -> Self {
        Counting::over(Arc::new(MemoryStore::new()))
    }
}

/// Long enough for reads that may go side by side to overlap; short enough
/// that a line of them stays within the record lock's longest wait (400 ms),
/// past which a request goes ahead out of line.
const SLOW_READ: Duration = Duration::from_millis(25);
/// Long enough for requests sent meanwhile to queue behind the one reading.
const FIRST_SLOW_READ: Duration = Duration::from_millis(150);

/// Long enough for the audited requests of a burst to arrive while the
/// first reads the head.
const SLOW_HEAD_READ: Duration = Duration::from_millis(20);

/// A team's audit head (`{team}:ah`).
fn is_audit_head(key: &str) -> bool {
    key.ends_with("}:ah")
}

impl Counting {
    /// `over(inner)` that tells `hook` the ops of each commit that applied.
    pub(crate) fn telling(
        inner: SharedStore,
        hook: impl Fn(&[Op]) + Send + Sync + 'static,
    ) -> Self {
        Counting {
            after_applied: Some(Box::new(hook)),
            ..Counting::over(inner)
        }
    }

    pub(crate) fn over(inner: SharedStore) -> Self {
        Counting {
            inner,
            calls: AtomicUsize::default(),
            slow_reads: AtomicBool::default(),
            first_slower: AtomicBool::default(),
            reading: AtomicUsize::default(),
            most_reading: AtomicUsize::default(),
            loads: AtomicUsize::default(),
            extensions: AtomicUsize::default(),
            due_adds: AtomicUsize::default(),
            failing: std::sync::Mutex::default(),
            panic_claiming: std::sync::Mutex::default(),
            panicked: AtomicUsize::default(),
            head_commits: AtomicUsize::default(),
            slow_head_reads: AtomicBool::default(),
            after_applied: None,
            gets: std::sync::Mutex::default(),
            reads: AtomicUsize::default(),
            commits: AtomicUsize::default(),
        }
    }

    /// The next claim of due entries of `queue` panics.
    pub(crate) fn panic_at_claim_of(&self, queue: &str) {
        *self.panic_claiming.lock().unwrap() = Some(queue.to_string());
    }

    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }

    async fn maybe_slow(&self) {
        if !self.slow_reads.load(Ordering::SeqCst) {
            return;
        }
        let now = self.reading.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_reading.fetch_max(now, Ordering::SeqCst);
        let first = self.first_slower.swap(false, Ordering::SeqCst);
        tokio::time::sleep(if first { FIRST_SLOW_READ } else { SLOW_READ }).await;
        self.reading.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keys only background work touches on its own (the outbox dispatcher;
/// the check of each team's store marker; the reservations of the file
/// teams' keys, docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md):
/// its calls are not part of any request.
fn outbox_only<'a>(mut keys: impl Iterator<Item = &'a str>) -> bool {
    keys.all(|k| {
        k.contains("}:obi:") || k.ends_with("}:obq") || k.ends_with("}:ep") || k.contains("}:rk:")
    })
}

#[async_trait]
impl Store for Counting {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        if !outbox_only(keys.iter().map(String::as_str)) {
            self.tick();
            self.reads.fetch_add(1, Ordering::SeqCst);
        }
        self.gets.lock().unwrap().push(keys.to_vec());
        let read = self.inner.get(keys).await;
        // Read, then slow: what it read is behind by the time it answers.
        if self.slow_head_reads.load(Ordering::SeqCst) && keys.iter().any(|k| is_audit_head(k)) {
            tokio::time::sleep(SLOW_HEAD_READ).await;
        }
        read
    }
    async fn get_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
    ) -> Result<WithCompanion, StoreError> {
        self.tick();
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.maybe_slow().await;
        self.inner.get_with_companion(key, default).await
    }
    async fn get_with_companion_and(
        &self,
        key: &str,
        default: Option<&str>,
        also: &[String],
    ) -> Result<(WithCompanion, Vec<Option<Versioned>>), StoreError> {
        self.tick();
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.maybe_slow().await;
        self.inner.get_with_companion_and(key, default, also).await
    }
    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        if !outbox_only(ops.iter().map(Op::key)) {
            self.tick();
            self.commits.fetch_add(1, Ordering::SeqCst);
        }
        if ops.iter().any(|op| is_audit_head(op.key())) {
            self.head_commits.fetch_add(1, Ordering::SeqCst);
        }
        let failing = self.failing.lock().unwrap().clone();
        if let Some(text) = failing {
            if ops.iter().any(|op| op.key().contains(&text)) {
                return Err(StoreError::Unavailable("failing on purpose".into()));
            }
        }
        let extends = |op: &&Op| match op {
            Op::Touch { .. } => true,
            Op::IndexAdd { key, .. } => key.ends_with("}:idx") || key.contains("}:cu:"),
            _ => false,
        };
        let n = ops.iter().filter(extends).count();
        self.extensions.fetch_add(n, Ordering::SeqCst);
        let due = |op: &&Op| {
            matches!(op, Op::QueueAdd { key, member, .. }
                if key.ends_with("}:dueq") && !member.starts_with("o:"))
        };
        let n = ops.iter().filter(due).count();
        self.due_adds.fetch_add(n, Ordering::SeqCst);
        let Some(hook) = &self.after_applied else {
            return self.inner.commit(ops).await;
        };
        let done = self.inner.commit(ops.clone()).await?;
        if done == Commit::Applied {
            hook(&ops);
        }
        Ok(done)
    }
    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.tick();
        self.inner.index_desc(key, before, limit).await
    }
    async fn index_claim_due(
        &self,
        key: &str,
        max: i64,
        limit: usize,
        claim: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        let panics = {
            let mut panic_claiming = self.panic_claiming.lock().unwrap();
            let panics = panic_claiming.as_deref() == Some(key);
            if panics {
                *panic_claiming = None;
            }
            panics
        };
        if panics {
            self.panicked.fetch_add(1, Ordering::SeqCst);
            panic!("a claim of {key} panics on purpose");
        }
        // Background work (sweeper, outbox): not part of any request.
        self.inner.index_claim_due(key, max, limit, claim).await
    }
    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        // Background work (the outbox): not part of any request.
        self.inner.queue_move_unchanged(key, entries, score).await
    }
    async fn queues_first(&self, queues: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
        // Background work (the due indexes): not part of any request.
        self.inner.queues_first(queues).await
    }
    async fn due_teams_claim(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold: i64,
    ) -> Result<DueTaken, StoreError> {
        // Background work (the due indexes): not part of any request.
        self.inner.due_teams_claim(index, now, limit, hold).await
    }
    async fn due_teams_release(
        &self,
        index: &str,
        team: &str,
        held: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        // Background work (the due indexes): not part of any request.
        self.inner.due_teams_release(index, team, held, next).await
    }
    async fn due_teams_note(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError> {
        // Background work (the due indexes): not part of any request.
        self.inner.due_teams_note(index, teams).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.tick();
        self.inner.ping().await
    }
    async fn watch(&self, keys: &[String]) -> Result<Watch, StoreError> {
        // No round trip: this process's subscription is shared by all.
        self.inner.watch(keys).await
    }
    fn append_history(&self, history: &History) -> bool {
        self.inner.append_history(history)
    }
}

/// A gateway on the memory store behind a [`Counting`] wrapper.
async fn on_counting_store() -> (Arc<Counting>, TestApp) {
    on_counting_store_with(Setup::default()).await
}

pub(crate) async fn on_counting_store_with(setup: Setup) -> (Arc<Counting>, TestApp) {
    let counting = Arc::new(Counting::default());
    let store: SharedStore = counting.clone();
    let app = spawn_with(
        Backend::Memory,
        Setup {
            store: Some(store),
            ..setup
        },
    )
    .await
    .unwrap();
    (counting, app)
}

/// A [`Counting`] store over `backend` (Redis under a key prefix of its
/// own, returned), or `None` when Redis is not there.
pub(crate) async fn counting_on(backend: Backend) -> Option<(Arc<Counting>, String)> {
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let inner: SharedStore = match backend {
        Backend::Memory => Arc::new(MemoryStore::new()),
        Backend::Redis => {
            if !crate::redis_support::redis_up().await {
                return None;
            }
            let url = crate::redis_support::redis_url();
            let store = chatgate::store::redis::RedisStore::connect(&url, &prefix);
            Arc::new(store.await.expect("valid Redis URL"))
        }
    };
    Some((Arc::new(Counting::over(inner)), prefix))
}

/// A recognized conversation's record is read with the interaction: the
/// status read stays one store call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recognized_status_read_is_one_round_trip() {
    let setup = Setup {
        defaults: r#"recognize_for = "30d""#.into(),
        ..Setup::default()
    };
    let (counting, app) = on_counting_store_with(setup).await;
    let v = app
        .create(json!({"channel": "sms", "conversation_id": "+15551239999", "contact": {"phone": "+15551239999"}}))
        .await;
    let id = v["id"].as_str().unwrap();
    app.authenticate(id, "cust-rt").await;
    let before = counting.calls.load(Ordering::SeqCst);
    let v = app.get(id).await;
    assert_eq!(v["recognized"]["customer_id"], "cust-rt", "{v}");
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        1,
        "status read of a recognized interaction"
    );
}

/// A create-or-get that finds the interaction this gateway created (or
/// found) in the conversation reads both in one store call; without that
/// guess (a new gateway on the same store) it reads the conversation, then
/// the interaction (docs/performance.md#targets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_found_create_or_get_is_one_round_trip() {
    let (counting, app) = on_counting_store().await;
    let body =
        json!({"channel": "webchat", "conversation_id": "rt-found", "customer_ref": "cust-rf"});
    let id = app.create(body.clone()).await["id"].clone();
    for _ in 0..2 {
        let before = counting.calls.load(Ordering::SeqCst);
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["id"], id);
        assert_eq!(
            counting.calls.load(Ordering::SeqCst) - before,
            1,
            "found create-or-get"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_read_is_one_round_trip_and_callback_two() {
    let (counting, app) = on_counting_store().await;
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "rt", "customer_ref": "cust-rt"}))
        .await;
    let id = v["id"].as_str().unwrap();
    let link = app.issue_link(id, json!({})).await;

    let before = counting.calls.load(Ordering::SeqCst);
    let res = app.succeed(&link, "cust-rt").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        2,
        "callback: read + commit"
    );

    let before = counting.calls.load(Ordering::SeqCst);
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        1,
        "status read"
    );
}

/// A console session's request costs what an API key's does, and the
/// session's two reads (the pointer that names its team, then its record):
/// its `last_seen` is written at most once a minute (a tenth of
/// `session_idle` when that is shorter: 6 s here), not on every request
/// (docs/decisions/0350-a-session-is-renewed-once-a-minute.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_request_costs_an_api_key_s_and_its_session_s_two_reads() {
    use crate::console_sign_in::{sign_in, spawn_console_with, with_session, HTTP};
    let counting = Arc::new(Counting::default());
    let setup = Setup {
        store: Some(counting.clone()),
        ..Setup::default()
    };
    let Some((app, _idp)) = spawn_console_with(Backend::Memory, HTTP, "", setup).await else {
        return;
    };
    let id = app.new_interaction().await;
    let path = format!("/v1/interactions/{id}");
    let session = sign_in(&app).await.session();
    let cost = |by_key: bool| {
        let (app, path, session, counting) = (&app, &path, &session, &counting);
        async move {
            let before = counting.calls.load(Ordering::SeqCst);
            let gets = counting.gets.lock().unwrap().len();
            let req = if by_key {
                app.request(Method::GET, path, Some(&app.keys.agent))
            } else {
                with_session(app, Method::GET, path, session, false)
            };
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let read: Vec<Vec<String>> = counting.gets.lock().unwrap()[gets..].to_vec();
            (counting.calls.load(Ordering::SeqCst) - before, read)
        }
    };
    let (by_key, _) = cost(true).await;
    assert_eq!(by_key, 1, "an agent key's status read");
    for _ in 0..3 {
        app.advance(1);
        let (by_session, read) = cost(false).await;
        assert_eq!(by_session, by_key + 2, "a session's request: {read:?}");
        assert!(
            read[0][0].contains("cst:") && read[1][0].contains("}:cs:"),
            "{read:?}"
        );
    }
    // Its renewal is due: one commit more, once.
    app.advance(6);
    assert_eq!(cost(false).await.0, by_key + 3, "the renewal");
    assert_eq!(cost(false).await.0, by_key + 2, "renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_changes_nothing_is_not_written() {
    let (counting, app) = on_counting_store().await;
    let id = app.new_interaction().await;
    let before = counting.calls.load(Ordering::SeqCst);
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/logout"),
            Some(&app.keys.bot),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        1,
        "a logout with nothing to end is one read"
    );
}

/// A write extends what points to an interaction (its conversation key,
/// listing and customer entries) past the record's end by a margin (an hour
/// by default), so the writes within it leave them be; one that moves the
/// record's end past it extends them, and a new customer is indexed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_within_the_margin_leave_the_conversation_key_and_indexes_be() {
    let (counting, app) = on_counting_store().await;
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "m", "customer_ref": "cust-m"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let extensions = || counting.extensions.load(Ordering::SeqCst);
    // The conversation key is written with the interaction for as long
    // as an extension would keep it: no op of its own.
    assert_eq!(extensions(), 2, "created: listing, customer");
    let activity = || async {
        let path = format!("/v1/interactions/{id}/activity");
        let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
        assert_eq!(res.status(), 200);
    };
    for _ in 0..3 {
        app.advance(600);
        activity().await;
    }
    assert_eq!(extensions(), 2, "30 min of writes within the margin");
    app.advance(3600);
    activity().await;
    assert_eq!(extensions(), 5, "past it: all three extended");
    activity().await;
    assert_eq!(extensions(), 5, "then left be again");
    // Authenticated as another customer: its customers' entries are written
    // at once (the link issued before it changed nothing of them).
    app.authenticate(&id, "cust-other").await;
    assert_eq!(extensions(), 7, "both customers' entries written");
}

/// An authenticated interaction's due entry (one: at the notice before its
/// expiry, then at the expiry) is queued by the write that sets it; a
/// write that moves neither leaves the queue be, and one that moves the end
/// queues it again (docs/architecture.md#time-outs). The expiry tests of
/// `outbox.rs` and `login_callback.rs` show they are still announced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_move_no_due_time_queue_nothing() {
    let (counting, mut app) = on_counting_store().await;
    let id = app.new_interaction().await;
    let due = || counting.due_adds.load(Ordering::SeqCst);
    assert_eq!(due(), 0, "nothing due before an authentication");
    app.authenticate(&id, "cust-d").await;
    assert_eq!(
        due(),
        1,
        "authenticated: one entry, for the notice, then the expiry"
    );
    // Activity is written (its time moves), but with no idle timeout the
    // authentication's end stays where it was.
    let writes = counting.calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        app.advance(60);
        let path = format!("/v1/interactions/{id}/activity");
        let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
        assert_eq!(res.status(), 200);
    }
    assert!(
        counting.calls.load(Ordering::SeqCst) >= writes + 6,
        "each activity read and wrote"
    );
    assert_eq!(due(), 1, "writes that move no due time");
    // Authenticated again later: a new end, queued anew.
    app.advance(60);
    app.authenticate(&id, "cust-d").await;
    assert_eq!(due(), 2, "the end moved");
    // The notice comes; the sweeper's write queues the expiry, and its
    // record says so: activity after it queues nothing either.
    app.advance(30 * 60 - 60 + 1);
    app.next_event("interaction.expiring", Duration::from_secs(5))
        .await
        .expect("the notice, a minute before the expiry");
    assert_eq!(due(), 3, "the sweeper queued the expiry");
    for _ in 0..2 {
        app.advance(10);
        let path = format!("/v1/interactions/{id}/activity");
        let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(due(), 3, "writes after the notice that move no due time");
}

/// An expiry whose commit the store fails holds up none of the others due
/// with it: they are announced at once, and it follows once the store
/// takes it (docs/architecture.md#time-outs). The failing one is the
/// oldest, so the sweep claims it first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_the_store_fails_holds_up_no_other() {
    let (counting, mut app) = on_counting_store().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = app.new_interaction().await;
        app.authenticate(&id, &format!("cust-f{i}")).await;
        ids.push(id);
    }
    *counting.failing.lock().unwrap() = Some(ids[0].clone());
    app.advance(31 * 60);
    let mut others = ids[1..].to_vec();
    others.sort();
    assert_eq!(
        app.next_expired(2).await,
        others,
        "the others expire at once"
    );
    *counting.failing.lock().unwrap() = None;
    // Due again a second later (handed back), not at the end of its lease.
    app.advance(2);
    assert_eq!(
        app.next_expired(1).await,
        vec![ids[0].clone()],
        "the failed one follows"
    );
}

/// Requests on one interaction queue behind each other in this process (so
/// that concurrent writes do not retry against each other), but a request
/// that only refuses need not wait in that line for its read of the store:
/// callbacks with a link already used, queued behind a write, each read
/// the store as soon as its turn comes and goes, side by side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callbacks_on_a_busy_interaction_read_side_by_side() {
    let (counting, app) = on_counting_store().await;
    let id = app.new_interaction().await;
    let used = app.issue_link(&id, json!({})).await;
    let used = used["token"].as_str().unwrap();
    let res = app.callback(used, "success", json!({"id": "c-1"})).await;
    assert_eq!(res.status(), 200);

    counting.first_slower.store(true, Ordering::SeqCst);
    counting.slow_reads.store(true, Ordering::SeqCst);
    // A write holds the interaction's turn, reading; the refused callbacks
    // queue behind it.
    let issue = app.issue_link(&id, json!({}));
    let refused = async {
        while counting.reading.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        futures::future::join_all(
            (0..8).map(|_| app.callback(used, "success", json!({"id": "c-1"}))),
        )
        .await
    };
    let (_, refused) = tokio::join!(issue, refused);
    for res in refused {
        assert_eq!(res.status(), 409);
    }
    assert!(
        counting.most_reading.load(Ordering::SeqCst) >= 2,
        "the refused callbacks read the store one after the other, in line"
    );
}

/// What a create, a login callback and a wrong code cost Redis, counted on
/// a private `redis-server` (`INFO commandstats`, less what the idle
/// gateway's background work issues in the same time; commands a script
/// runs are counted apart from the script's own call), each with the work
/// it leaves behind (the outbox publishing its events, the chat notice):
/// printed for docs/performance.md, and held to ceilings
/// (docs/performance.md#targets). Counts, not timings: it does not flake
/// on a busy machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_callback_a_wrong_code_and_a_create_cost_redis() {
    use crate::redis_support::OwnRedis;
    use crate::store_contract::redis_only::{calls_per_run, idle_calls, show_rates, Rates};
    let Some((server, app)) = OwnRedis::gateway(
        "what_a_callback_a_wrong_code_and_a_create_cost_redis",
        Setup::default(),
    )
    .await
    else {
        return;
    };
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let settle = Duration::from_millis(1500);
    const N: usize = 30;
    // Warm: the team's keys and the scripts known to Redis.
    app.authenticate(&app.new_interaction().await, "cust-warm")
        .await;
    tokio::time::sleep(settle).await;
    let idle = idle_calls(&mut admin, 3).await;

    let creates = calls_per_run(&mut admin, &idle, N, settle, async {
        for i in 0..N {
            let new = json!({"channel": "webchat", "conversation_id": format!("cost-{i}")});
            assert!(app.create(new).await["id"].is_string());
        }
    })
    .await;

    // The same conversations again: each finds the interaction this
    // gateway created there, read with its conversation in one `MGET`.
    let found = calls_per_run(&mut admin, &idle, N, settle, async {
        for i in 0..N {
            let again = json!({"channel": "webchat", "conversation_id": format!("cost-{i}")});
            let res = app
                .post_json("/v1/interactions", Some(&app.keys.bot), &again)
                .await;
            assert_eq!(res.status(), 200, "found");
        }
    })
    .await;

    let mut links = Vec::new();
    for _ in 0..N {
        let id = app.new_interaction().await;
        links.push(app.issue_link(&id, json!({})).await);
    }
    tokio::time::sleep(settle).await;
    let callbacks = calls_per_run(&mut admin, &idle, N, settle, async {
        for (i, link) in links.iter().enumerate() {
            let res = app.succeed(link, &format!("cust-{i}")).await;
            assert_eq!(res.status(), 200);
        }
    })
    .await;

    // The same customers log in again, each on a new interaction: its
    // second login (the customer's index goes from one member to two),
    // then its third (an index of several members). Each round's callbacks
    // go to an instance of their own, which has renewed no customer's index
    // yet, as an instance that sees the customer come back minutes later
    // has not (each writer renews a key once a minute).
    let mut returning = Vec::new();
    for _ in 0..2 {
        let mut links = Vec::new();
        for _ in 0..N {
            let id = app.new_interaction().await;
            links.push(app.issue_link(&id, json!({})).await);
        }
        let other = Setup {
            redis_url: Some(server.url()),
            ..app.same_store()
        };
        let other = crate::helpers::spawn_with(crate::helpers::Backend::Redis, other)
            .await
            .expect("a second instance on the private Redis");
        tokio::time::sleep(settle).await;
        // Both instances' background work.
        let idle = idle_calls(&mut admin, 3).await;
        returning.push(
            calls_per_run(&mut admin, &idle, N, settle, async {
                for (i, link) in links.iter().enumerate() {
                    let res = other.succeed(link, &format!("cust-{i}")).await;
                    assert_eq!(res.status(), 200);
                }
            })
            .await,
        );
    }

    let mut challenges = Vec::new();
    for _ in 0..N {
        let id = app.new_interaction().await;
        let res = crate::challenges::start(&app, &id, json!({"method": "otp"})).await;
        assert_eq!(res.status(), 201);
        let c: serde_json::Value = res.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let code = app.last_code().await;
        let first = if code.starts_with('9') { '0' } else { '9' };
        challenges.push((id, cid, format!("{first}{}", &code[1..])));
    }
    tokio::time::sleep(settle).await;
    let wrong = calls_per_run(&mut admin, &idle, N, settle, async {
        for (id, cid, code) in &challenges {
            let res = app.verify_code(id, cid, code).await;
            assert_eq!(res.status(), 401, "a wrong code");
        }
    })
    .await;

    let commands = |r: &Rates| r.values().sum::<f64>();
    // The scripts called, the reads, and the outbox's removal of a
    // delivered item (a `ZREM` of its own: no commit script on these
    // paths runs one): every `GET` and `SET` here is a check or a write
    // inside a script.
    let round_trips = |r: &Rates| {
        ["evalsha", "mget", "zrem"]
            .iter()
            .filter_map(|c| r.get(*c))
            .sum::<f64>()
    };
    eprintln!("idle gateway, per second: {}", show_rates(&idle));
    // (what, its rates, ceiling of commands, ceiling of round trips). The
    // targets are 4 commands per create, 10 per callback and 6 per wrong
    // code (docs/performance.md#targets); none is met yet, so each ceiling
    // is what this test counts today (11.0, 8.4 and 7.0 commands; a
    // returning customer's callback 17.1 at the second login, when its
    // index becomes a pair, and 15.0 from the third: the index's own
    // commands, docs/decisions/0245-a-returning-customer-s-index.md; a
    // callback's round trips are 2: its read and its commit, with no claim
    // since the notice is born claimed by the instance that wrote it, and
    // its notice's removal once delivered shared with the others delivered
    // within 50 ms: one `ZREM` for all 30) and up to 0.8 of noise from
    // the idle gateway's background work (a full suite on two busy cores
    // once counted 0.5: the due indexes' take, one script, landing in a
    // third of the samples): a change that adds a command fails it. A found create-or-get is one `MGET` and nothing
    // else (its ceiling: 1 and the noise). Nothing reads the event stream
    // here (no `GET /v1/events` is open), so no `XREAD` is counted.
    // Each commit that writes an interaction or its subject also
    // publishes its change signal: one `PUBLISH` inside its script
    // (docs/architecture.md#change-signals), one command more than before.
    let rows: [(&str, &Rates, f64, f64); 6] = [
        ("create-or-get (new)", &creates, 10.2, 2.3),
        ("create-or-get (found)", &found, 1.2, 1.2),
        ("login callback", &callbacks, 12.8, 2.3),
        ("login callback (second login)", &returning[0], 18.8, 2.3),
        ("login callback (third login)", &returning[1], 16.8, 2.3),
        ("wrong code", &wrong, 8.8, 2.3),
    ];
    for (what, r, _, _) in &rows {
        eprintln!(
            "{what}: {:.1} commands, {:.1} round trips; per command: {}",
            commands(r),
            round_trips(r),
            show_rates(r)
        );
    }
    // A callback's `ZADD`s: the customer's index, one of the team's due
    // queue for both its expiry's entry and its notice (born claimed, it
    // waits there: docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md),
    // and that queue's one due note. The notice in the outbox was a
    // second queue's `ZADD` and a second due note: 5.
    let zadd = callbacks.get("zadd").copied().unwrap_or(0.0);
    assert!(
        (zadd - 3.0).abs() < 0.2,
        "login callback: {}",
        show_rates(&callbacks)
    );
    let mget = found.get("mget").copied().unwrap_or(0.0);
    assert!(
        (mget - 1.0).abs() < 0.2,
        "create-or-get (found): {}",
        show_rates(&found)
    );
    for (what, r, most_commands, most_trips) in rows {
        assert!(commands(r) <= most_commands, "{what}: {}", show_rates(r));
        assert!(round_trips(r) <= most_trips, "{what}: {}", show_rates(r));
    }
}

/// What the audit trail costs (docs/audit.md#what-it-costs): an unlock
/// reads the subject with the trail's head, then commits the unlock, its
/// event and its entry at once (2 calls, as before); a reveal reads the
/// interaction, then the head, then commits its entry with its event (3
/// calls, 2 before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlock_and_a_reveal_cost_their_audit_round_trips() {
    let setup = Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    };
    let (counting, app) = on_counting_store_with(setup).await;
    let before = counting.calls.load(Ordering::SeqCst);
    let res = app
        .post_json(
            "/v1/subjects/cust-u/unlock",
            Some(&app.keys.admin),
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(counting.calls.load(Ordering::SeqCst) - before, 2, "unlock");

    let id = app.new_interaction().await;
    let cid = app.agent_challenge(&id).await;
    let before = counting.calls.load(Ordering::SeqCst);
    let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let res = app
        .request(Method::GET, &path, Some(&app.keys.agent))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(counting.calls.load(Ordering::SeqCst) - before, 3, "reveal");
}

/// A burst of one team's audited actions on one instance takes its turn on
/// the team's audit head (docs/architecture.md#hot-records-the-record-lock):
/// each commit chains after the head the one ahead handed over, so 32
/// reveals at once commit at their first try (a few more at most, should a
/// request wait past the line's longest wait), and the chain has no gap.
/// Without the line every reveal read the head at once and all but one
/// conflicted, round after round.
async fn a_burst_of_reveals_of_one_team_commits_once_each(backend: Backend) {
    let Some((counting, prefix)) = counting_on(backend).await else {
        return;
    };
    let setup = Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        key_prefix: Some(prefix),
        store: Some(counting.clone()),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await.unwrap();
    const N: usize = 32;
    let mut paths = Vec::new();
    for _ in 0..N {
        let id = app.new_interaction().await;
        let cid = app.agent_challenge(&id).await;
        paths.push(format!("/v1/interactions/{id}/challenges/{cid}/code"));
    }
    // On memory a read of the head is instant: slowed, so that every
    // reveal of the burst arrives while the first one reads it.
    counting
        .slow_head_reads
        .store(backend == Backend::Memory, Ordering::SeqCst);
    let before = counting.head_commits.load(Ordering::SeqCst);
    let reveals = paths.iter().map(|path| async {
        app.request(Method::GET, path, Some(&app.keys.agent))
            .send()
            .await
            .unwrap()
            .status()
    });
    for status in futures::future::join_all(reveals).await {
        assert_eq!(status, 200);
    }
    let tries = counting.head_commits.load(Ordering::SeqCst) - before;
    counting.slow_head_reads.store(false, Ordering::SeqCst);
    assert!(tries >= N, "one commit per reveal at least: {tries}");
    assert!(tries <= N + 3, "{N} reveals, {tries} commits on the head");

    let page = app
        .get_json("/v1/audit?after=0&limit=1000", Some(&app.keys.admin))
        .await;
    let entries: Vec<_> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_object().unwrap().clone())
        .collect();
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    chatgate::domain::audit::verify_chain(&entries).expect("a valid chain");
    let revealed = entries
        .iter()
        .filter(|e| e["action"] == "challenge.code_revealed")
        .count();
    assert_eq!(revealed, N, "one entry per reveal");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reveals_of_one_team_commits_once_each_on_memory() {
    a_burst_of_reveals_of_one_team_commits_once_each(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reveals_of_one_team_commits_once_each_on_redis() {
    a_burst_of_reveals_of_one_team_commits_once_each(Backend::Redis).await;
}

/// An action and its entry take effect together: a store that fails the
/// commit of the entry fails the action (503), which leaves nothing
/// changed and shows no code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_cannot_be_written_stops_its_action() {
    let setup = Setup {
        defaults: "lockout = { threshold = 1 }".into(),
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    };
    let (counting, app) = on_counting_store_with(setup).await;
    let other = app.new_interaction().await;
    let other_cid = app.agent_challenge(&other).await;
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": "fail-1", "customer_ref": "cust-f"}),
        )
        .await;
    let id = v["id"].as_str().unwrap();
    let (cid, code) = app.agent_otp(id).await;
    let res = app.verify_code(id, &cid, &wrong_code(&code)).await;
    assert_eq!(res.status(), 423);
    // Every commit that writes an audit entry fails.
    *counting.failing.lock().unwrap() = Some("}:a:".into());
    let res = app
        .post_json(
            "/v1/subjects/cust-f/unlock",
            Some(&app.keys.admin),
            &json!({}),
        )
        .await;
    assert_problem(res, 503, "store_unavailable").await;
    let path = format!("/v1/interactions/{other}/challenges/{other_cid}/code");
    let res = app
        .request(Method::GET, &path, Some(&app.keys.agent))
        .send()
        .await
        .unwrap();
    assert_problem(res, 503, "store_unavailable").await;
    *counting.failing.lock().unwrap() = None;
    let subject = app
        .get_json("/v1/subjects/cust-f", Some(&app.keys.agent))
        .await;
    assert!(
        !subject["locked_until"].is_null(),
        "still locked: {subject}"
    );
}

/// A key press names its team in its gather id: the call's record is
/// read once, in that team alone, then the interaction, then one commit
/// (docs/decisions/0212-a-gather-id-names-its-team.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_press_reads_its_call_once_in_its_own_team() {
    let (counting, app) = on_counting_store_with(crate::voice::voice("")).await;
    crate::voice::twilio_takes(&app).await;
    let (_, _, url) = crate::voice::called(&app).await;
    let before = counting.calls.load(Ordering::SeqCst);
    let heard = crate::voice::press(&app, &url).await;
    assert!(heard.contains("Your verification code is"), "{heard}");
    assert_eq!(
        counting.calls.load(Ordering::SeqCst) - before,
        3,
        "a press: the call's record, the interaction, the commit"
    );
}

/// A Dialogflow turn answers with the interaction as its action left it:
/// a status turn loads it once (finding it); a sent code, a sent link, a
/// wrong and a right code load it where their use case must (finding it,
/// then each unit of work of the action), with no read after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialogflow_turn_loads_its_interaction_only_where_it_must() {
    let setup = Setup {
        team_extra: "[dialogflow]\nchannel = \"webchat\"\n".into(),
        ..Setup::default()
    };
    let (counting, app) = on_counting_store_with(setup).await;
    let loads = || counting.loads.load(Ordering::SeqCst);
    let turn = |tag: &str| crate::dialogflow::turn(tag, "df-loads");
    let call = |body: serde_json::Value| {
        let app = &app;
        async move {
            let res = app
                .post_json("/v1/integrations/dialogflow-cx", Some(&app.keys.bot), &body)
                .await;
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    // Counts the loads of one turn, and checks what it answered.
    let counted = |body: serde_json::Value, result: &'static str| {
        let call = &call;
        async move {
            let before = loads();
            let answer = call(body).await;
            let params = &answer["sessionInfo"]["parameters"];
            assert_eq!(params["chatgate_result"], result, "{answer}");
            (loads() - before, answer)
        }
    };
    call(turn("status")).await;
    let (n, _) = counted(turn("status"), "not_authenticated").await;
    assert_eq!(n, 1, "a status turn: finding it");
    let (n, sent) = counted(turn("send_code"), "code_sent").await;
    let cid = &sent["sessionInfo"]["parameters"]["chatgate_challenge_id"];
    assert!(
        cid.is_string(),
        "the answer names the new challenge: {sent}"
    );
    assert_eq!(n, 2, "a sent code: finding it, the start's commit");
    let code = app.last_code().await;
    let mut wrong = turn("check_code");
    wrong["sessionInfo"]["parameters"]["code"] = "000000".into();
    if code == "000000" {
        wrong["sessionInfo"]["parameters"]["code"] = "111111".into();
    }
    let (n, _) = counted(wrong, "wrong_code").await;
    assert_eq!(n, 2, "a wrong code: finding it, the verdict's commit");
    let mut check = turn("check_code");
    check["sessionInfo"]["parameters"]["code"] = code.into();
    let (n, _) = counted(check, "authenticated").await;
    assert_eq!(n, 2, "a right code: finding it, the verdict's commit");
    let (n, _) = counted(turn("send_link"), "link_sent").await;
    assert_eq!(n, 2, "a sent link: finding it, the issue's commit");
}

/// A gateway with acme's `[wallet]` (`wallet.rs`) as `setup` makes it,
/// its clock at the wallet fixtures' `now`.
async fn wallet_gateway(backend: Backend, setup: Setup) -> (TestApp, crate::wallet::Access) {
    let a = crate::wallet::access();
    let setup = Setup {
        team_extra: crate::wallet::wallet_setup(&a, "").team_extra,
        ..setup
    };
    let app = spawn_with(backend, setup).await.unwrap();
    let now = crate::wallet::fixtures()["now"].as_i64().unwrap();
    app.clock
        .set(chatgate::time::Timestamp::from_unix_seconds(now));
    (app, a)
}

/// Starts a wallet challenge on `id`: the path of its link.
async fn start_wallet(app: &TestApp, id: &str) -> String {
    crate::wallet::start(app, id, crate::wallet::ada()).await.1
}

/// The binding code of the verified answer whose `redirect_uri` is
/// `redirect`, shown where the wallet opens it.
async fn shown_code(app: &TestApp, redirect: &str) -> String {
    crate::wallet::code_at(app, redirect).await.0
}

/// The id of interaction `id`'s open challenge.
async fn open_challenge(app: &TestApp, id: &str) -> String {
    let v = app.get(id).await;
    v["open_challenge"]["challenge_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Opens the page of `link`: the path of the request object it made.
async fn open_wallet_page(app: &TestApp, link: &str) -> String {
    let page = app
        .request(Method::GET, link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let rid = page
        .split("%2Frequest%2F")
        .nth(1)
        .and_then(|r| r.split('&').next())
        .expect("the request's id");
    format!("{link}/request/{rid}")
}

/// Fetches the request object at `path` as a wallet does: its claims.
async fn fetch_request_object(app: &TestApp, path: &str) -> serde_json::Value {
    let res = app
        .request(Method::POST, path, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("wallet_nonce=wn-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let jwt = res.text().await.unwrap();
    let claims = jwt.split('.').nth(1).unwrap();
    let claims = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims);
    serde_json::from_slice(&claims.unwrap()).unwrap()
}

/// The test wallet's answer (`wallet.rs`) to the request of `claims`,
/// posted: a matching credential.
/// Answers the request of `claims` as a wallet does: its `redirect_uri`.
async fn answer_request(app: &TestApp, claims: &serde_json::Value) -> String {
    use crate::wallet::{answer_for, present, respond};
    let now = app.now().unix_seconds();
    let jwe = answer_for(claims, &present("es256", claims, None, now));
    let res = respond(app, &jwe).await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["redirect_uri"].as_str().unwrap().to_string()
}

/// The store calls of a wallet challenge (docs/performance.md#a-wallet-challenge),
/// beside an OTP challenge's, each with the work it leaves (reads,
/// commits): an OTP's start (1, 2) and its right code (1, 2: the verdict,
/// then its due entry removed); a wallet's start (1, 3: the challenge, its
/// link's key, then an event appended on its own), each fetch of its page
/// (4, 3: the link and the interaction read, the link's fetches of the
/// minute counted, then the new request written with the interaction
/// read again, and its key's index), its request
/// object (2, 0: the link, the interaction; nothing written), the answer
/// (3, 1: the key's index, the interaction, read again by the verdict's
/// commit, which leaves the challenge awaiting its binding code), the
/// redirect the wallet opens (3, 1: the link, the interaction, read again
/// by the commit that ties the code to its browser) and the binding code
/// from the chat (1, 2: as an OTP's right code). The same on both stores:
/// a change that adds or saves a round trip fails it.
async fn what_a_wallet_challenge_costs_the_store(backend: Backend) {
    let Some((counting, prefix)) = counting_on(backend).await else {
        return;
    };
    let setup = Setup {
        key_prefix: Some(prefix),
        store: Some(counting.clone()),
        ..Setup::default()
    };
    let (app, _) = wallet_gateway(backend, setup).await;
    let calls = || {
        (
            counting.reads.load(Ordering::SeqCst),
            counting.commits.load(Ordering::SeqCst),
        )
    };
    let mut rows: Vec<(&str, (usize, usize))> = Vec::new();
    // Each step with the work it leaves behind (its message's delivery).
    let settled = || tokio::time::sleep(Duration::from_millis(300));
    let mut count = |what: &'static str, before: (usize, usize)| {
        let after = calls();
        rows.push((what, (after.0 - before.0, after.1 - before.1)));
    };

    let id = app.new_interaction().await;
    let before = calls();
    let res = crate::challenges::start(&app, &id, json!({"method": "otp"})).await;
    assert_eq!(res.status(), 201);
    settled().await;
    count("otp start", before);
    let cid = res.json::<serde_json::Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let code = app.last_code().await;
    let before = calls();
    assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
    settled().await;
    count("otp code check", before);

    let id = app.new_interaction().await;
    let before = calls();
    let link = start_wallet(&app, &id).await;
    settled().await;
    count("wallet start", before);
    let before = calls();
    let request = open_wallet_page(&app, &link).await;
    settled().await;
    count("wallet page (a fresh request)", before);
    let before = calls();
    let claims = fetch_request_object(&app, &request).await;
    settled().await;
    count("wallet request object", before);
    let before = calls();
    let redirect = answer_request(&app, &claims).await;
    settled().await;
    count("wallet answer", before);
    let before = calls();
    let code = shown_code(&app, &redirect).await;
    settled().await;
    count("wallet redirect (its binding code)", before);
    let cid = open_challenge(&app, &id).await;
    let before = calls();
    crate::wallet::typed_in_chat(&app, &id, &cid, &code).await;
    settled().await;
    count("wallet binding code check", before);
    assert_eq!(app.get(&id).await["method"], "wallet");

    for (what, (reads, commits)) in &rows {
        eprintln!("{backend:?} {what}: {reads} reads, {commits} commits");
    }
    let expected = [
        ("otp start", (1, 2)),
        ("otp code check", (1, 2)),
        ("wallet start", (1, 3)),
        ("wallet page (a fresh request)", (4, 3)),
        ("wallet request object", (2, 0)),
        ("wallet answer", (3, 1)),
        ("wallet redirect (its binding code)", (3, 1)),
        ("wallet binding code check", (1, 2)),
    ];
    assert_eq!(rows, expected, "store calls (reads, commits)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_wallet_challenge_costs_the_store_on_memory() {
    what_a_wallet_challenge_costs_the_store(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_wallet_challenge_costs_the_store_on_redis() {
    what_a_wallet_challenge_costs_the_store(Backend::Redis).await;
}

/// What a wallet challenge costs Redis in commands, beside an OTP
/// challenge's, counted on a private `redis-server` as
/// [`what_a_callback_a_wrong_code_and_a_create_cost_redis`] counts (`INFO
/// commandstats` less the idle gateway's, with the work each leaves):
/// printed for docs/performance.md#a-wallet-challenge and held to
/// ceilings: the most this test counted and the idle gateway's noise,
/// about half a command over 10 runs (an
/// answer's notice is removed by a `ZREM` of its own, or of several
/// delivered within 50 ms: 11.0 to 12.0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_wallet_challenge_costs_redis() {
    use crate::redis_support::OwnRedis;
    use crate::store_contract::redis_only::{calls_per_run, idle_calls, show_rates, Rates};
    let Some(server) = OwnRedis::private("what_a_wallet_challenge_costs_redis").await else {
        return;
    };
    let setup = Setup {
        redis_url: Some(server.url()),
        ..Setup::default()
    };
    let (app, _) = wallet_gateway(Backend::Redis, setup).await;
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let settle = Duration::from_millis(1500);
    const N: usize = 10;
    // Warm: the team's keys and the scripts known to Redis.
    let warm = app.new_interaction().await;
    let warm_link = open_wallet_page(&app, &start_wallet(&app, &warm).await).await;
    let redirect = answer_request(&app, &fetch_request_object(&app, &warm_link).await).await;
    let (warm_cid, warm_code) = (
        open_challenge(&app, &warm).await,
        shown_code(&app, &redirect).await,
    );
    crate::wallet::typed_in_chat(&app, &warm, &warm_cid, &warm_code).await;
    tokio::time::sleep(settle).await;
    let idle = idle_calls(&mut admin, 3).await;

    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(app.new_interaction().await);
    }
    let mut otps = Vec::new();
    let otp_starts = calls_per_run(&mut admin, &idle, N, settle, async {
        for id in &ids {
            let res = crate::challenges::start(&app, id, json!({"method": "otp"})).await;
            assert_eq!(res.status(), 201);
            let c: serde_json::Value = res.json().await.unwrap();
            let cid = c["challenge_id"].as_str().unwrap().to_string();
            otps.push((id.clone(), cid, app.last_code().await));
        }
    })
    .await;
    let otp_checks = calls_per_run(&mut admin, &idle, N, settle, async {
        for (id, cid, code) in &otps {
            assert_eq!(app.verify_code(id, cid, code).await.status(), 200);
        }
    })
    .await;

    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(app.new_interaction().await);
    }
    let mut links = Vec::new();
    let starts = calls_per_run(&mut admin, &idle, N, settle, async {
        for id in &ids {
            links.push(start_wallet(&app, id).await);
        }
    })
    .await;
    let mut requests = Vec::new();
    let pages = calls_per_run(&mut admin, &idle, N, settle, async {
        for link in &links {
            requests.push(open_wallet_page(&app, link).await);
        }
    })
    .await;
    let mut asked = Vec::new();
    let objects = calls_per_run(&mut admin, &idle, N, settle, async {
        for request in &requests {
            asked.push(fetch_request_object(&app, request).await);
        }
    })
    .await;
    let mut redirects = Vec::new();
    let answers = calls_per_run(&mut admin, &idle, N, settle, async {
        for claims in &asked {
            redirects.push(answer_request(&app, claims).await);
        }
    })
    .await;
    let mut codes = Vec::new();
    let shown = calls_per_run(&mut admin, &idle, N, settle, async {
        for redirect in &redirects {
            codes.push(shown_code(&app, redirect).await);
        }
    })
    .await;
    let mut cids = Vec::new();
    for id in &ids {
        cids.push(open_challenge(&app, id).await);
    }
    let checks = calls_per_run(&mut admin, &idle, N, settle, async {
        for ((id, cid), code) in ids.iter().zip(&cids).zip(&codes) {
            crate::wallet::typed_in_chat(&app, id, cid, code).await;
        }
    })
    .await;
    for id in &ids {
        assert_eq!(app.get(id).await["method"], "wallet");
    }

    let commands = |r: &Rates| r.values().sum::<f64>();
    eprintln!("idle gateway, per second: {}", show_rates(&idle));
    // Each write of the interaction publishes its change signal too: one
    // `PUBLISH` inside its commit (docs/architecture.md#change-signals).
    let rows: [(&str, &Rates, f64); 8] = [
        ("otp start", &otp_starts, 8.8),
        ("otp code check", &otp_checks, 10.7),
        ("wallet start", &starts, 9.7),
        ("wallet page (a fresh request)", &pages, 10.7),
        // Two reads; under 3.0 so that a third fails, with room for the
        // background a busy machine leaves in the count.
        ("wallet request object", &objects, 2.9),
        ("wallet answer", &answers, 9.8),
        ("wallet redirect (its binding code)", &shown, 7.8),
        // 10.1 of its own (as the OTP's code check, with its one
        // reservation's `ZREM` in ten); under 11.1, so that a command more
        // fails, with room for the due scans a loaded run leaves in it.
        ("wallet binding code check", &checks, 11.0),
    ];
    for (what, r, _) in &rows {
        eprintln!(
            "{what}: {:.1} commands; per command: {}",
            commands(r),
            show_rates(r)
        );
    }
    for (what, r, most) in rows {
        assert!(commands(r) <= most, "{what}: {}", show_rates(r));
    }
}

/// A page's browser cookie (`name=value`) and form token, from its answer.
async fn form_of(res: reqwest::Response) -> (String, String) {
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let body = res.text().await.unwrap();
    let token = body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the form token")
        .to_string();
    (cookie, token)
}

/// The store calls of the pages of a challenge link
/// (docs/architecture.md#challenge-links), each with the work it leaves
/// (reads, commits): the code page's `GET /c/{code}` (2, 0: the link, the
/// interaction; nothing written), its `POST` of the right code (3, 2: the
/// link and the interaction, the link's POSTs of the minute counted, then
/// the verdict's commit on the interaction as the open read found it), and
/// a network link's Vonage landing, `POST /n/landing` (3, 2: the state
/// taken, the interaction read by the answer and again by its verdict's
/// commit). The same on both stores: a change that adds or saves a round
/// trip fails it.
async fn what_the_link_pages_cost_the_store(backend: Backend) {
    let Some((counting, prefix)) = counting_on(backend).await else {
        return;
    };
    let vonage = crate::network_vonage_fake::FakeVonage::start().await;
    let setup = Setup {
        key_prefix: Some(prefix),
        store: Some(counting.clone()),
        team_extra: vonage.team_section(""),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await.unwrap();
    let calls = || {
        (
            counting.reads.load(Ordering::SeqCst),
            counting.commits.load(Ordering::SeqCst),
        )
    };
    let settled = || tokio::time::sleep(Duration::from_millis(300));
    let mut rows: Vec<(&str, (usize, usize))> = Vec::new();
    let mut count = |what: &'static str, before: (usize, usize)| {
        let after = calls();
        rows.push((what, (after.0 - before.0, after.1 - before.1)));
    };

    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": "cust-page", "session_pin": "482913"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "pin", "entry": "page"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    settled().await;
    let msgs = app.chat_messages().await;
    let text = msgs.iter().rev().find(|m| m["purpose"] == "pin_entry_link");
    let text = text.expect("the page's link")["text"].as_str().unwrap();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://gateway.test/c/"))
        .expect("the link");
    let link = url.trim_start_matches("http://gateway.test").to_string();
    let before = calls();
    let page = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let (cookie, token) = form_of(page).await;
    settled().await;
    count("code page (GET)", before);
    let before = calls();
    let typed = app
        .request(Method::POST, &link, None)
        .header("accept", "text/html")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(format!("code=482913&form_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(typed.status(), 200);
    assert!(typed.text().await.unwrap().contains("<strong>"));
    settled().await;
    count("code page (POST, the right code)", before);

    let id = crate::network::interaction(&app).await;
    let (_, link) = crate::network::start(&app, &id).await;
    let page = crate::network::confirm_page(&app, &link).await;
    let form = format!("form_token={}", page.form_token);
    let pressed = crate::network::press(&app, &link, Some(&page.browser), &form).await;
    assert_eq!(pressed.status(), 302);
    let cookie = pressed.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let (rid, started) = vonage.started().pop().expect("a verification started");
    settled().await;
    let before = calls();
    let landed = app
        .request(Method::POST, "/n/landing", None)
        .header("accept", "text/html")
        .header("cookie", cookie)
        .json(&json!({"request_id": rid, "code": started.code}))
        .send()
        .await
        .unwrap();
    assert_eq!(landed.status(), 200);
    settled().await;
    count("network landing (POST /n/landing)", before);

    for (what, (reads, commits)) in &rows {
        eprintln!("{backend:?} {what}: {reads} reads, {commits} commits");
    }
    let expected = [
        ("code page (GET)", (2, 0)),
        ("code page (POST, the right code)", (3, 2)),
        ("network landing (POST /n/landing)", (3, 2)),
    ];
    assert_eq!(rows, expected, "store calls (reads, commits)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_link_pages_cost_the_store_on_memory() {
    what_the_link_pages_cost_the_store(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_link_pages_cost_the_store_on_redis() {
    what_the_link_pages_cost_the_store(Backend::Redis).await;
}
