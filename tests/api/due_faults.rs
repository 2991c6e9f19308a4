//! Due work through the faults of a Redis Cluster
//! (docs/decisions/0190-due-notes-on-a-cluster-before-and-after-the-write.md):
//! a write's due note is made before the write and again after it, so an
//! instance killed between the two leaves its team listed; a note waits
//! for the index's master at most its deadline, and one that fails is kept
//! by the instance and lands when the master answers again; a master of the
//! index that comes back empty (or fails over) is repaired by a rescan of
//! every team within seconds.
//!
//! On a Cluster each master holds its own teams' copy of the due indexes,
//! so a master that hangs or dies delays only its own teams' due work
//! (docs/decisions/0230-a-due-index-per-cluster-master.md).
//!
//! `DUE_FAULT_HANG_SECS` sets how long a master hangs in
//! [`a_master_that_hangs_or_dies_delays_only_its_own_teams_due_work`] (10 s
//! unless set; 15 s is the longest hang the gateway is held to): the test
//! prints how late the work came
//! (docs/operations.md#a-fault-of-the-due-indexes-master).
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::store::keys::{due_index_on, due_queue, DUE_INDEX_DUEQ as DUE};
use chatgate::store::{Op, SharedStore};

use crate::helpers::*;
use crate::many_teams::queue_due;
use crate::redis_support::{
    cluster_binaries_present, cluster_store, own_cluster_store, OwnCluster,
};

async fn claim(s: &SharedStore, now: i64, hold: i64) -> Vec<String> {
    s.due_teams_claim(DUE, now, 10, hold).await.unwrap().teams
}

fn queue_add(team: &str, member: &str, at: i64) -> Op {
    Op::QueueAdd {
        key: due_queue(team),
        member: member.into(),
        score: at,
        ttl: Duration::from_secs(600),
    }
}

// An instance killed after its write, before the note after it: the note
// before it lists the team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_note_after_it_is_lost_is_listed_by_the_note_before_it() {
    let test = "a_write_whose_note_after_it_is_lost_is_listed_by_the_note_before_it";
    let Some(store) = cluster_store(test).await else {
        return;
    };
    let s: SharedStore = Arc::new(store.leaving_out_due_notes(false, true));
    s.commit(vec![queue_add("t1", "x:1", 1_000)]).await.unwrap();
    assert_eq!(claim(&s, 1_000, 5_000).await, ["t1"], "listed");
}

// A worker takes the team between the note before a write and the write,
// reads its queue before the write lands and hands the team back with
// nothing queued: the note after the write lists it again. A note whose
// write never came (the instance died between them) costs one look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_taken_between_a_note_and_its_write_is_listed_again_after_the_write() {
    let test = "a_team_taken_between_a_note_and_its_write_is_listed_again_after_the_write";
    let Some(store) = cluster_store(test).await else {
        return;
    };
    // The note before the write is made here, by hand, before the take.
    let s: SharedStore = Arc::new(store.leaving_out_due_notes(true, false));
    s.due_teams_note(DUE, &[("t1".into(), 1_000)])
        .await
        .unwrap();
    assert_eq!(claim(&s, 1_000, 5_000).await, ["t1"]);
    let first = s.queues_first(&[due_queue("t1")]).await.unwrap();
    assert_eq!(first, [None], "read before the write landed");
    s.commit(vec![queue_add("t1", "x:1", 1_000)]).await.unwrap();
    s.due_teams_release(DUE, "t1", 5_000, None).await.unwrap();
    assert_eq!(
        claim(&s, 1_000, 9_000).await,
        ["t1"],
        "listed again by the note after the write"
    );
    // A note without its write: taken, nothing found, handed back with
    // nothing queued, and not listed again.
    s.due_teams_note(DUE, &[("t2".into(), 2_000)])
        .await
        .unwrap();
    assert_eq!(claim(&s, 2_000, 9_000).await, ["t2"]);
    s.due_teams_release(DUE, "t2", 9_000, None).await.unwrap();
    // (t1 is held until 9 000.)
    assert!(claim(&s, 8_999, 20_000).await.is_empty());
}

/// Waits (up to `within`) until `team`'s due queue is empty; how long that
/// took.
async fn drained(store: &SharedStore, team: &str, within: Duration) -> Duration {
    drained_within(store, team, within)
        .await
        .unwrap_or_else(|| panic!("{team}'s due work not acted on within {within:?}"))
}

/// Makes every client's command to node `i` wait for `hang` (`CLIENT
/// PAUSE … ALL`): a master that hangs, as a stalled host does.
fn pause(cluster: &OwnCluster, i: usize, hang: Duration) {
    let url = format!("redis://127.0.0.1:{}", cluster.ports[i]);
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(hang.as_millis().to_string())
        .arg("ALL")
        .query::<()>(&mut conn)
        .unwrap();
}

/// Writes made while a master hangs, each noting its team.
const WRITES: usize = 20;

/// Teams configured besides acme and globex: enough that one master holds
/// some and the others hold others.
const TEAMS: usize = 20;

/// The team among the configured `aaa-…` whose keys master `i` holds, or
/// (`on == false`) another master holds.
fn team_where(cluster: &OwnCluster, prefix: &str, i: usize, on: bool) -> String {
    (0..TEAMS)
        .map(|n| format!("aaa-{n:05}"))
        .find(|t| (cluster.owner_of(&format!("{prefix}:{}", due_queue(t))) == i) == on)
        .expect("a team of each kind")
}

/// A gateway on `cluster` with [`TEAMS`] teams besides its own, the
/// master holding the shared index's tag (`faulty`), a team whose keys it
/// holds (`own`) and one whose keys another master holds (`other`).
struct Teams {
    app: TestApp,
    store: SharedStore,
    prefix: String,
    faulty: usize,
    own: String,
    other: String,
}

async fn teams_on(cluster: &OwnCluster) -> Teams {
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        extra_teams: TEAMS,
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let store = app.gateway.store().clone();
    let prefix = app.key_prefix.clone();
    tokio::task::block_in_place(|| {
        let faulty = cluster.owner_of(&format!("{prefix}:{DUE}"));
        let own = team_where(cluster, &prefix, faulty, true);
        let other = team_where(cluster, &prefix, faulty, false);
        Teams {
            app,
            store,
            prefix,
            faulty,
            own,
            other,
        }
    })
}

/// How long `team`'s due queue is left with something in it, checked
/// every 50 ms, at most `within` (`None` after that). A read that fails
/// (its master down, or not yet known to be replaced) counts as not empty.
async fn drained_within(store: &SharedStore, team: &str, within: Duration) -> Option<Duration> {
    let (since, queue) = (Instant::now(), due_queue(team));
    while !matches!(store.index_desc(&queue, None, 1).await, Ok(left) if left.is_empty()) {
        if since.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(since.elapsed())
}

// One master hangs — the one that holds the shared index's hash tag, which
// every team's due work went through before each master had its own copy
// (docs/decisions/0230-a-due-index-per-cluster-master.md) — then is
// killed and comes back empty. Another master's team goes on as usual:
// its writes answer at once and its work, due during the hang and while
// the master is down, is acted on within seconds, long before the fault
// ends. The hung master's own team's work, due during the hang, is acted
// on within 5 s of its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_that_hangs_or_dies_delays_only_its_own_teams_due_work() {
    let test = "a_master_that_hangs_or_dies_delays_only_its_own_teams_due_work";
    if !cluster_binaries_present(test) {
        return;
    }
    let hang = Duration::from_secs(
        std::env::var("DUE_FAULT_HANG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    );
    // Its own cluster, no replicas (a node timeout of 15 s: a master down
    // for seconds is not failed over, and the others answer meanwhile).
    let mut cluster = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap()
        .expect("a local Redis Cluster starts");
    let Teams {
        app,
        store,
        faulty,
        own,
        other,
        ..
    } = teams_on(&cluster).await;
    // The hung master's team: work due a minute on, which comes due
    // during the hang.
    let later = app.now().plus(Duration::from_secs(60)).unix_millis();
    queue_due(&store, &own, later, 2).await;

    // The hang.
    tokio::task::block_in_place(|| pause(&cluster, faulty, hang));
    let paused = Instant::now();
    app.advance(60);
    for _ in 0..WRITES {
        queue_due(&store, &other, app.now().unix_millis(), 1).await;
    }
    let writes = paused.elapsed();
    assert!(
        writes < Duration::from_secs(3),
        "{WRITES} writes of a team on another master took {writes:?} while one master hung"
    );
    let during_hang = drained_within(&store, &other, Duration::from_secs(4)).await;
    let left = hang.saturating_sub(paused.elapsed());
    let during_hang = during_hang.unwrap_or_else(|| {
        panic!("another master's team's due work waited for the hung master ({left:?} of its hang left)")
    });
    assert!(
        left > Duration::from_secs(2),
        "acted on {during_hang:?} after it came due, only {left:?} before the hang's end"
    );
    tokio::time::sleep(left).await;
    let after_hang = drained(&store, &own, Duration::from_secs(5)).await;

    // The kill: the dead master's team waits; another's work goes on.
    tokio::task::block_in_place(|| cluster.kill(faulty));
    queue_due(&store, &other, app.now().unix_millis(), 3).await;
    let while_down = drained_within(&store, &other, Duration::from_secs(4))
        .await
        .expect("another master's team's due work waited for the dead master");
    tokio::task::block_in_place(|| cluster.restart(faulty));
    let back = Instant::now();
    let write = || queue_add(&own, "x:after", app.now().unix_millis());
    while let Err(e) = store.commit(vec![write()]).await {
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "no write after the restart: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after_kill = drained(&store, &own, Duration::from_secs(5)).await;
    println!(
        "due lateness: {WRITES} writes of another master's team during a {} s hang took {} ms, \
         their work was acted on {} ms after it came due; the hung master's team's work {} ms \
         after the hang's end; another team's work {} ms after it came due while the master \
         was down; the master's own team's, {} ms after it answered again (empty)",
        hang.as_secs(),
        writes.as_millis(),
        during_hang.as_millis(),
        after_hang.as_millis(),
        while_down.as_millis(),
        after_kill.as_millis()
    );
}

/// A command to node `i` of `cluster`.
fn on_node<T: redis::FromRedisValue>(cluster: &OwnCluster, i: usize, command: &redis::Cmd) -> T {
    let url = format!("redis://127.0.0.1:{}", cluster.ports[i]);
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    command.query(&mut conn).unwrap()
}

/// Moves `slot`, with its keys, from master `from` to master `to`, as a
/// resharding does.
fn move_slot(cluster: &OwnCluster, slot: i64, from: usize, to: usize) {
    let cluster_cmd = |args: &[&str]| {
        let mut c = redis::cmd("CLUSTER");
        c.arg(args);
        c
    };
    let id = |i: usize| -> String { on_node(cluster, i, &cluster_cmd(&["MYID"])) };
    let (from_id, to_id, slot_arg) = (id(from), id(to), slot.to_string());
    let set = |i: usize, how: &str, node: &str| {
        on_node::<()>(cluster, i, &cluster_cmd(&["SETSLOT", &slot_arg, how, node]));
    };
    set(to, "IMPORTING", &from_id);
    set(from, "MIGRATING", &to_id);
    loop {
        let keys: Vec<String> = on_node(
            cluster,
            from,
            &cluster_cmd(&["GETKEYSINSLOT", &slot_arg, "100"]),
        );
        if keys.is_empty() {
            break;
        }
        let mut migrate = redis::cmd("MIGRATE");
        migrate
            .arg("127.0.0.1")
            .arg(cluster.ports[to])
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys);
        on_node::<()>(cluster, from, &migrate);
    }
    for i in 0..cluster.ports.len() {
        set(i, "NODE", &to_id);
    }
}

// A slot moves to another master with the copy of the due indexes its tag
// names (docs/decisions/0230-a-due-index-per-cluster-master.md): the copy
// is no longer any master's own, and the team it lists is still taken
// from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_due_index_that_a_slot_move_left_behind_is_still_read() {
    let test = "a_copy_of_the_due_index_that_a_slot_move_left_behind_is_still_read";
    if !cluster_binaries_present(test) {
        return;
    }
    let (cluster, store, prefix) = own_cluster_store().await;
    let s: SharedStore = Arc::new(store);
    let copy = |n: u32| format!("{prefix}:{}", due_index_on(DUE, n));
    // Each master's copy: the least tag in its slots. The team is on the
    // master whose copy's tag is the greatest; its copy's slot moves to
    // the master whose tag is the least, which keeps its own.
    let (first, last, tag, team) = tokio::task::block_in_place(|| {
        let mut least: Vec<Option<u32>> = vec![None; cluster.ports.len()];
        let mut n = 0;
        while least.iter().any(Option::is_none) {
            let owner = cluster.owner_of(&copy(n));
            least[owner].get_or_insert(n);
            n += 1;
        }
        let least: Vec<u32> = least.into_iter().flatten().collect();
        let last = (0..least.len()).max_by_key(|i| least[*i]).unwrap();
        let first = (0..least.len()).min_by_key(|i| least[*i]).unwrap();
        let team = (0..100)
            .map(|i| format!("t{i}"))
            .find(|t| cluster.owner_of(&format!("{prefix}:{}", due_queue(t))) == last)
            .expect("a team on that master");
        (first, last, least[last], team)
    });
    s.due_teams_note(DUE, &[(team.clone(), 1_000)])
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        let mut keyslot = redis::cmd("CLUSTER");
        keyslot.arg("KEYSLOT").arg(copy(tag));
        let slot: i64 = on_node(&cluster, first, &keyslot);
        move_slot(&cluster, slot, last, first);
    });
    // The store learns the move (a MOVED answer), as it would from its
    // next read of the slot map.
    let moved = format!("{}:moved", due_index_on(DUE, tag));
    s.get(&[moved]).await.unwrap();
    assert_eq!(
        claim(&s, 1_000, 5_000).await,
        [team],
        "taken from the copy the move left behind"
    );
}

// A master fails over (killed; its replica is promoted after the node
// timeout of 2 s): another master's team's work, due meanwhile, is acted
// on as usual, and the failed master's team's work, due meanwhile, within
// 5 s of the promotion, from the copy of the due indexes the replica holds
// (docs/decisions/0230-a-due-index-per-cluster-master.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_delays_only_the_failed_masters_teams_due_work() {
    let test = "a_failover_delays_only_the_failed_masters_teams_due_work";
    if !cluster_binaries_present(test) {
        return;
    }
    let mut cluster = tokio::task::spawn_blocking(|| OwnCluster::start_with_replicas(2000))
        .await
        .unwrap()
        .expect("a local Redis Cluster with replicas starts");
    let t = teams_on(&cluster).await;
    let (app, store, faulty, own, other) = (t.app, t.store, t.faulty, t.own, t.other);
    let prefix = t.prefix;
    let own_queue = |own: &str| format!("{prefix}:{}", due_queue(own));
    let later = app.now().plus(Duration::from_secs(60)).unix_millis();
    queue_due(&store, &own, later, 2).await;
    tokio::task::block_in_place(|| {
        cluster.wait_replicated(faulty);
        cluster.kill(faulty);
    });
    let killed = Instant::now();
    app.advance(60);
    queue_due(&store, &other, app.now().unix_millis(), 3).await;
    let other_done = drained_within(&store, &other, Duration::from_secs(4))
        .await
        .expect("another master's team's due work waited for the failover");
    let other_done_at = killed.elapsed();
    let promoted = tokio::task::block_in_place(|| {
        // No master for the slot yet (as the node asked sees it) is not
        // yet a promotion.
        while cluster
            .serving(&own_queue(&own))
            .is_none_or(|o| o == faulty)
        {
            assert!(
                killed.elapsed() < Duration::from_secs(20),
                "no replica promoted"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        killed.elapsed()
    });
    assert!(
        other_done_at < promoted,
        "another master's team's work was acted on {other_done_at:?} after the kill, after the \
         promotion ({promoted:?})"
    );
    let own_done = drained(&store, &own, Duration::from_secs(5)).await;
    println!(
        "due lateness through a failover: another master's team's work acted on {} ms after it \
         came due; the replica promoted {} ms after the kill, the failed master's team's work \
         acted on {} ms after that",
        other_done.as_millis(),
        promoted.as_millis(),
        own_done.as_millis()
    );
}
