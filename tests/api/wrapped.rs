//! A test's store around another: every `Store` call forwarded once, here,
//! so a wrapper says only what it adds before a call (`stalls::Stalling`
//! fails while stalled, `store_reset::gate::Gate` holds commits and counts
//! looks) and never forgets a call the trait gains.
use std::ops::Deref;
use std::sync::Arc;

use async_trait::async_trait;
use chatgate::store::{
    Commit, DueTaken, History, IndexEntry, Op, SharedStore, Store, StoreError, Versioned,
    WithCompanion,
};

/// A call as [`Around::before`] sees it.
pub(crate) enum Call<'a> {
    Get(&'a [String]),
    Commit(&'a [Op]),
    /// Any other call that can fail.
    Other,
}

/// What a wrapper does around the store it wraps.
#[async_trait]
pub(crate) trait Around: Send + Sync + 'static {
    /// The store a call goes to now.
    fn inner(&self) -> SharedStore;

    /// Before each call that can fail: an error is the call's answer.
    async fn before(&self, call: Call<'_>) -> Result<(), StoreError>;

    /// After a claim of due entries of `key` that took `claimed`.
    fn claimed(&self, key: &str, claimed: &[IndexEntry]) {
        let _ = (key, claimed);
    }

    /// As [`Store::append_history`]: `false` unless the wrapper hands it on.
    fn append_history(&self, history: &History) -> bool {
        let _ = history;
        false
    }
}

/// `A` as a store; it derefs to `A`, for the test's own handles.
pub(crate) struct Wrapped<A>(A);

impl<A: Around> Wrapped<A> {
    pub(crate) fn new(around: A) -> Arc<Wrapped<A>> {
        Arc::new(Wrapped(around))
    }

    /// As a store for `Setup::store`.
    pub(crate) fn store(self: &Arc<Self>) -> SharedStore {
        Arc::clone(self) as SharedStore
    }
}

impl<A> Deref for Wrapped<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.0
    }
}

#[async_trait]
impl<A: Around> Store for Wrapped<A> {
    async fn get(&self, keys: &[String]) -> Result<Vec<Option<Versioned>>, StoreError> {
        self.0.before(Call::Get(keys)).await?;
        self.0.inner().get(keys).await
    }
    async fn get_with_companion(
        &self,
        key: &str,
        default: Option<&str>,
    ) -> Result<WithCompanion, StoreError> {
        self.0.before(Call::Other).await?;
        self.0.inner().get_with_companion(key, default).await
    }
    async fn commit(&self, ops: Vec<Op>) -> Result<Commit, StoreError> {
        self.0.before(Call::Commit(&ops)).await?;
        self.0.inner().commit(ops).await
    }
    async fn index_desc(
        &self,
        key: &str,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.0.before(Call::Other).await?;
        self.0.inner().index_desc(key, before, limit).await
    }
    async fn index_claim_due(
        &self,
        key: &str,
        max: i64,
        limit: usize,
        claim: i64,
    ) -> Result<Vec<IndexEntry>, StoreError> {
        self.0.before(Call::Other).await?;
        let inner = self.0.inner();
        let claimed = inner.index_claim_due(key, max, limit, claim).await?;
        self.0.claimed(key, &claimed);
        Ok(claimed)
    }
    async fn queue_move_unchanged(
        &self,
        key: &str,
        entries: &[IndexEntry],
        score: i64,
    ) -> Result<usize, StoreError> {
        self.0.before(Call::Other).await?;
        self.0
            .inner()
            .queue_move_unchanged(key, entries, score)
            .await
    }
    async fn queues_first(&self, queues: &[String]) -> Result<Vec<Option<i64>>, StoreError> {
        self.0.before(Call::Other).await?;
        self.0.inner().queues_first(queues).await
    }
    async fn due_teams_claim(
        &self,
        index: &str,
        now: i64,
        limit: usize,
        hold: i64,
    ) -> Result<DueTaken, StoreError> {
        self.0.before(Call::Other).await?;
        self.0
            .inner()
            .due_teams_claim(index, now, limit, hold)
            .await
    }
    async fn due_teams_release(
        &self,
        index: &str,
        team: &str,
        held: i64,
        next: Option<i64>,
    ) -> Result<(), StoreError> {
        self.0.before(Call::Other).await?;
        (self.0.inner())
            .due_teams_release(index, team, held, next)
            .await
    }
    async fn due_teams_note(&self, index: &str, teams: &[(String, i64)]) -> Result<(), StoreError> {
        self.0.before(Call::Other).await?;
        self.0.inner().due_teams_note(index, teams).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.before(Call::Other).await?;
        self.0.inner().ping().await
    }
    async fn node_markers(&self) -> Vec<String> {
        self.0.inner().node_markers().await
    }
    fn append_history(&self, history: &History) -> bool {
        self.0.append_history(history)
    }
}
