//! A store that stalls (docs/operations.md#background-work): expiries that
//! fell due while it stalled are announced within 5 s of its return, also
//! those the sweeper had claimed just before.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgate::store::{
    Commit, DueTaken, History, IndexEntry, Op, SharedStore, Store, StoreError, Versioned,
    WithCompanion,
};

use crate::helpers::*;

/// A store whose every call fails while it is stalled (as Redis' do, after
/// their time-out, during a pause); it stalls right after the sweeper has
/// claimed due entries, when armed. Also used by `operator_writes`.
pub(crate) struct Stalling {
    inner: SharedStore,
    stalled: AtomicBool,
    stall_after_claim: AtomicBool,
}

impl Stalling {
    /// `inner`, not stalled.
    pub(crate) fn over(inner: SharedStore) -> Arc<Stalling> {
        Arc::new(Stalling {
            inner,
            stalled: AtomicBool::new(false),
            stall_after_claim: AtomicBool::new(false),
        })
    }

    /// Every call fails from now on (`true`), or none (`false`).
    pub(crate) fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    async fn check(&self) -> Result<(), StoreError> {
        if self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(StoreError::Unavailable("stalled on purpose".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for Stalling {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.check().await?;
        self.inner.get(keys).await
    }
    async fn get_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
    ) -> Result<WithCompanion, StoreError> {
        self.check().await?;
        self.inner.get_with_companion(key, default).await
    }
    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        self.check().await?;
        self.inner.commit(ops).await
    }
    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.check().await?;
        self.inner.index_desc(key, before, limit).await
    }
    async fn index_claim_due(
        &self,
        key: &str,
        max: i64,
        limit: usize,
        claim: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.check().await?;
        let claimed = self.inner.index_claim_due(key, max, limit, claim).await?;
        if !claimed.is_empty()
            && key.ends_with("}:dueq")
            && self.stall_after_claim.swap(false, Ordering::SeqCst)
        {
            self.stalled.store(true, Ordering::SeqCst);
        }
        Ok(claimed)
    }
    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        self.check().await?;
        self.inner.queue_move_unchanged(key, entries, score).await
    }
    async fn queues_first(&self, queues: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
        self.check().await?;
        self.inner.queues_first(queues).await
    }
    async fn due_teams_claim(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold: i64,
    ) -> Result<DueTaken, StoreError> {
        self.check().await?;
        self.inner.due_teams_claim(index, now, limit, hold).await
    }
    async fn due_teams_release(
        &self,
        index: &str,
        team: &str,
        held: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.due_teams_release(index, team, held, next).await
    }
    async fn due_teams_note(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.due_teams_note(index, teams).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.check().await?;
        self.inner.ping().await
    }
    fn append_history(&self, history: &History) -> bool {
        self.inner.append_history(history)
    }
}

/// Lets `total` of the gateway's time pass in steps of 100 ms, each taking
/// 100 ms of real time.
async fn let_pass(app: &TestApp, total: Duration) {
    let step = Duration::from_millis(100);
    let mut passed = Duration::ZERO;
    while passed < total {
        tokio::time::sleep(step).await;
        app.clock.advance(step);
        passed += step;
    }
}

both_stores!(
    expiries_claimed_before_a_stall_are_announced_within_5_s_of_its_end,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let Some((inner, prefix)) = crate::outbox::own_store(backend).await else {
            return;
        };
        let store = Stalling::over(inner);
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.clone()),
            ..Setup::default()
        };
        let Some(mut app) = spawn_with(backend, setup).await else {
            return;
        };
        let mut ids = Vec::new();
        for i in 0..3 {
            let id = app.new_interaction().await;
            app.authenticate(&id, &format!("cust-{i}")).await;
            ids.push(id);
        }
        ids.sort();
        // The authentications end; the sweeper claims them, and the store
        // stalls for 10 s (of the gateway's time) right after.
        store.stall_after_claim.store(true, Ordering::SeqCst);
        app.advance(31 * 60);
        for _ in 0..50 {
            if store.stalled.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(store.stalled.load(Ordering::SeqCst), "the sweeper claimed");
        let_pass(&app, Duration::from_secs(10)).await;
        store.stalled.store(false, Ordering::SeqCst);
        let back = app.now();

        // Time goes on as usual; every expiry is announced within 5 s.
        let mut expired = Vec::new();
        while expired.len() < ids.len() && app.now() < back.plus(Duration::from_secs(8)) {
            if let Some(e) = app
                .next_event("interaction.expired", Duration::from_millis(100))
                .await
            {
                let data = event_data(&e);
                expired.push((
                    data["interaction"]["id"].as_str().unwrap().to_string(),
                    app.now(),
                ));
                continue;
            }
            app.clock.advance(Duration::from_millis(100));
        }
        let late: Vec<_> = expired
            .iter()
            .filter(|(_, at)| *at > back.plus(Duration::from_secs(5)))
            .collect();
        let mut announced: Vec<String> = expired.iter().map(|(id, _)| id.clone()).collect();
        announced.sort();
        assert_eq!(announced, ids, "every expiry is announced");
        assert!(
            late.is_empty(),
            "announced over 5 s after the store's return: {late:?}"
        );
    }
);
