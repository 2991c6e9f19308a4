//! Forgetting every conversation that remembers a customer: a ban does it
//! after its commit (`work`), a website's back-channel logout and a
//! provider's logout through `recognition`
//! (docs/api.md#recognized-conversations).
use super::records::Loaded;
use super::Core;
use crate::config::Team;
use crate::domain::recognition::Recognition;
use crate::error::Result;
use crate::store::{keys, Commit, Op};

/// Index entries of a customer's recognized conversations read at once.
const PAGE: usize = 500;

/// Forgets every conversation of `team` that remembers `customer_id` (a
/// website's back-channel logout of that customer), also those whose
/// interactions are long gone. A conversation that now remembers
/// another customer is left be. Returns how many were forgotten.
pub(in crate::gateway) async fn forget_recognitions_of(
    core: &Core,
    team: &Team,
    customer_id: &str,
) -> Result<usize> {
    let index = keys::recognitions_of(&team.keyspace, customer_id);
    let mut forgotten = 0;
    let mut before = None;
    loop {
        let entries = core.store.index_desc(&index, before.take(), PAGE).await?;
        let full = entries.len() == PAGE;
        if let Some(last) = entries.last() {
            before = Some((last.score, last.member.clone()));
        }
        let rkeys: Vec<String> = entries.into_iter().map(|e| e.member).collect();
        for rkey in &rkeys {
            forgotten += usize::from(forget_if_theirs(core, &index, rkey, customer_id).await?);
        }
        if !full {
            return Ok(forgotten);
        }
    }
}

/// Deletes the recognition `rkey` if it remembers `customer_id`
/// (re-read after a concurrent write), and its entry in `index`.
async fn forget_if_theirs(core: &Core, index: &str, rkey: &str, customer_id: &str) -> Result<bool> {
    super::records::retry(|| async {
        let raw = core.store.get(&[rkey.to_string()]).await?.pop().flatten();
        let loaded = Loaded::<Recognition>::parse(rkey.to_string(), raw)?;
        let theirs = loaded
            .value
            .as_ref()
            .is_some_and(|r| r.customer_id == customer_id);
        let mut ops = vec![Op::IndexRemove {
            key: index.to_string(),
            member: rkey.to_string(),
        }];
        if theirs {
            ops.push(Op::Delete {
                key: loaded.key.clone(),
                expected: loaded.version,
            });
        }
        match core.store.commit(ops).await? {
            Commit::Applied => Ok(Some(theirs)),
            Commit::Conflict { .. } => Ok(None),
        }
    })
    .await
}
