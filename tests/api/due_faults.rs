//! Due work through the faults of a Redis Cluster
//! (docs/decisions/0190-due-notes-on-a-cluster-before-and-after-the-write.md):
//! a write's due note is made before the write and again after it, so an
//! instance killed between the two leaves its team listed; a note waits
//! for the index's master at most its deadline, and one that fails is kept
//! by the instance and lands when the master answers again; a master of the
//! index that comes back empty (or fails over) is repaired by a rescan of
//! every team within seconds.
//!
//! `DUE_FAULT_HANG_SECS` sets how long the index's master hangs in
//! [`due_work_survives_a_hang_and_a_restart_of_the_index_master`] (4 s
//! unless set; 15 s is the longest hang the gateway is held to): the test
//! prints how late the work came after each fault's end
//! (docs/operations.md#a-fault-of-the-due-indexes-master).
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatgate::store::keys::{self, due_queue, DUE_INDEX_DUEQ as DUE};
use chatgate::store::{Op, SharedStore};

use crate::helpers::*;
use crate::many_teams::{left_in, queue_due};
use crate::redis_support::{cluster_binaries_present, cluster_store, OwnCluster};

async fn claim(s: &SharedStore, now: i64, hold: i64) -> Vec<String> {
    s.due_teams_claim(DUE, now, 10, hold).await.unwrap()
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
    let since = Instant::now();
    while left_in(store, team).await > 0 {
        assert!(
            since.elapsed() < within,
            "{team}'s due work not acted on within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    since.elapsed()
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

/// Writes made while the index's master hangs, each noting its team.
const WRITES: usize = 20;

// The master of the teams' due indexes hangs, then is killed and comes
// back empty. Another team's writes during the hang answer at once (no
// note waits beyond its deadline); their work, noted in the instance's
// journal, is acted on within 5 s of the hang's end; work noted before
// the kill, lost with the index, is found again by the rescan within 5 s
// of the master's return.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn due_work_survives_a_hang_and_a_restart_of_the_index_master() {
    let test = "due_work_survives_a_hang_and_a_restart_of_the_index_master";
    if !cluster_binaries_present(test) {
        return;
    }
    let hang = Duration::from_secs(
        std::env::var("DUE_FAULT_HANG_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4),
    );
    // Its own cluster, no replicas (a node timeout of 15 s: a master down
    // for seconds is not failed over, and the others answer meanwhile).
    let mut cluster = tokio::task::spawn_blocking(OwnCluster::start)
        .await
        .unwrap()
        .expect("a local Redis Cluster starts");
    let setup = Setup {
        cluster_nodes: cluster.urls(),
        extra_teams: 3,
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let store = app.gateway.store().clone();
    let prefix = app.key_prefix.clone();
    let (index_master, team) = tokio::task::block_in_place(|| {
        let index_master = cluster.owner_of(&format!("{prefix}:{DUE}"));
        let team = (0..3)
            .map(|i| format!("aaa-{i:05}"))
            .find(|t| cluster.owner_of(&format!("{prefix}:{}", keys::due_queue(t))) != index_master)
            .expect("a team on another master");
        (index_master, team)
    });

    // The hang.
    tokio::task::block_in_place(|| pause(&cluster, index_master, hang));
    let paused = Instant::now();
    for _ in 0..WRITES {
        queue_due(&store, &team, app.now().unix_millis(), 1).await;
    }
    let writes = paused.elapsed();
    assert!(
        writes < Duration::from_secs(3),
        "{WRITES} writes of a team on another master took {writes:?} while the index's master hung"
    );
    assert_eq!(left_in(&store, &team).await, WRITES, "nothing swept yet");
    tokio::time::sleep(hang.saturating_sub(paused.elapsed())).await;
    let after_hang = drained(&store, &team, Duration::from_secs(5)).await;

    // The kill: work noted before it, due while the master is down.
    queue_due(
        &store,
        &team,
        app.now().plus(Duration::from_secs(5)).unix_millis(),
        3,
    )
    .await;
    tokio::task::block_in_place(|| cluster.kill(index_master));
    app.advance(10);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(left_in(&store, &team).await, 3, "nothing swept while down");
    tokio::task::block_in_place(|| cluster.restart(index_master));
    let after_kill = drained(&store, &team, Duration::from_secs(5)).await;
    println!(
        "due lateness: {WRITES} writes during a {} s hang of the index's master took {} ms; \
         their work was acted on {} ms after the hang's end; work noted before a kill of that \
         master, {} ms after it answered again (empty)",
        hang.as_secs(),
        writes.as_millis(),
        after_hang.as_millis(),
        after_kill.as_millis()
    );
}
