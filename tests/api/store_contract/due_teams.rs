//! The teams' due indexes (docs/architecture.md#many-teams): a write to a
//! team's due queue or outbox notes the team at the entry's time; a claim
//! takes the due teams and holds them; a release never raises what a
//! write noted meanwhile; a hold that runs out makes its team due again.
use chatgate::store::keys::{due_queue, outbox, DUE_INDEX_DUEQ as DUE, DUE_INDEX_OUTBOX as OUT};
use chatgate::store::{IndexEntry, SharedStore};

use super::{commit, queue_add, LONG};

async fn claim(s: &SharedStore, index: &str, now: i64, hold: i64) -> Vec<String> {
    s.due_teams_claim(index, now, 10, hold).await.unwrap().teams
}

pub async fn queue_writes_note_their_team_and_releases_never_raise_a_note(s: SharedStore) {
    let (q1, q2) = (due_queue("t1"), outbox("t2"));
    commit(&s, vec![queue_add(&q1, "x:1", 1_000, LONG)]).await;
    commit(&s, vec![queue_add(&q2, "o:1", 500, LONG)]).await;
    let none = due_queue("t3");
    let first = s.queues_first(&[q1.clone(), q2.clone(), none]).await;
    assert_eq!(first.unwrap(), [Some(1_000), Some(500), None]);
    assert!(claim(&s, DUE, 999, 5_000).await.is_empty(), "not due yet");
    assert_eq!(claim(&s, OUT, 999, 5_000).await, ["t2"], "each index apart");
    assert_eq!(claim(&s, DUE, 1_000, 5_000).await, ["t1"]);
    assert!(claim(&s, DUE, 4_999, 6_000).await.is_empty(), "held");
    // A write while t1 is held notes it again at once...
    commit(&s, vec![queue_add(&q1, "x:2", 3_000, LONG)]).await;
    // ...and its taker, which read the queue before that write, cannot
    // raise it.
    s.due_teams_release(DUE, "t1", 5_000, None).await.unwrap();
    assert!(claim(&s, DUE, 2_999, 9_000).await.is_empty());
    assert_eq!(claim(&s, DUE, 3_000, 9_000).await, ["t1"]);
    s.due_teams_release(DUE, "t1", 9_000, Some(7_000))
        .await
        .unwrap();
    assert!(
        claim(&s, DUE, 6_999, 20_000).await.is_empty(),
        "released at its next time"
    );
    // Moving an entry notes its team at the new time too.
    let held = IndexEntry {
        member: "x:1".into(),
        score: 1_000,
    };
    assert_eq!(
        s.queue_move_unchanged(&q1, &[held], 6_000).await.unwrap(),
        1
    );
    assert_eq!(claim(&s, DUE, 6_000, 8_000).await, ["t1"]);
    // Its taker dies: due again when the hold ends, not before.
    assert!(claim(&s, DUE, 7_999, 9_000).await.is_empty());
    assert_eq!(claim(&s, DUE, 8_000, 9_000).await, ["t1"]);
    // A rescan's note lists a team, never above a lower time.
    s.due_teams_note(OUT, &[("t2".into(), 100), ("t4".into(), 50)])
        .await
        .unwrap();
    assert_eq!(claim(&s, OUT, 100, 200).await, ["t4", "t2"]);
}
