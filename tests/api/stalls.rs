//! A store that stalls (docs/operations.md#background-work): expiries that
//! fell due while it stalled are announced within 5 s of its return, also
//! those the sweeper had claimed just before.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chatgate::store::{History, IndexEntry, SharedStore, StoreError};

use crate::helpers::*;
use crate::wrapped::{Around, Call, Wrapped};

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
    pub(crate) fn over(inner: SharedStore) -> Arc<Wrapped<Stalling>> {
        Wrapped::new(Stalling {
            inner,
            stalled: AtomicBool::new(false),
            stall_after_claim: AtomicBool::new(false),
        })
    }

    /// Every call fails from now on (`true`), or none (`false`).
    pub(crate) fn stall(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

#[async_trait]
impl Around for Stalling {
    fn inner(&self) -> SharedStore {
        Arc::clone(&self.inner)
    }

    async fn before(&self, _call: Call<'_>) -> Result<(), StoreError> {
        if self.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return Err(StoreError::Unavailable("stalled on purpose".into()));
        }
        Ok(())
    }

    fn claimed(&self, key: &str, claimed: &[IndexEntry]) {
        if !claimed.is_empty()
            && key.ends_with("}:dueq")
            && self.stall_after_claim.swap(false, Ordering::SeqCst)
        {
            self.stalled.store(true, Ordering::SeqCst);
        }
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
