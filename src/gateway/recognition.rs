//! Recognized conversations (docs/api.md#recognized-conversations): which
//! channels remember who authenticated in a conversation, how the
//! remembered authentication is stored (one key per team, channel and
//! conversation, living exactly as long as it is remembered), and the ways
//! it is forgotten outside an authentication: `/forget`, and a website's
//! back-channel logout of the customer. A logout and a ban forget it in
//! their own unit of work (`work`).
use super::records::{remembered_subject_key, Loaded};
use super::Core;
use crate::config::Team;
use crate::domain::interaction::InteractionRecord;
use crate::domain::recognition::Recognition;
use crate::domain::subject::SubjectRecord;
use crate::error::Result;
use crate::store::{keys, Commit, Op};
use crate::time::Timestamp;

/// Index entries of a customer's recognized conversations read at once.
const PAGE: usize = 500;

/// Forgets every conversation of `team` that remembers `customer_id` (a
/// website's back-channel logout of that customer), also those whose
/// interactions are long gone. A conversation that now remembers
/// another customer is left be. Returns how many were forgotten.
pub(super) async fn forget_recognitions_of(
    core: &Core,
    team: &Team,
    customer_id: &str,
) -> Result<usize> {
    let index = keys::recognitions_of(&team.id, customer_id);
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

/// The recognitions of many interactions (a list page), in one round
/// trip; `None` where the channel remembers none.
pub(super) async fn load_recognitions(
    core: &Core,
    team: &Team,
    recs: &[&InteractionRecord],
) -> Result<Vec<Option<Recognition>>> {
    let rkeys: Vec<Option<String>> = recs
        .iter()
        .map(|r| super::records::recognition_key(&core.config, team, r))
        .collect();
    let wanted: Vec<String> = rkeys.iter().flatten().cloned().collect();
    if wanted.is_empty() {
        return Ok(vec![None; recs.len()]);
    }
    let mut raw = core.store.get(&wanted).await?.into_iter();
    rkeys
        .into_iter()
        .map(|k| match k {
            None => Ok(None),
            Some(k) => Ok(Loaded::<Recognition>::parse(k, raw.next().flatten())?.value),
        })
        .collect()
}

/// The subjects of the customers the conversations of `recs` remember
/// (`recognitions`, as [`load_recognitions`] read them), where a view
/// must know where they stand (`records::remembered_subject_key`): all
/// in one round trip, none when no row needs one.
pub(super) async fn load_remembered(
    core: &Core,
    team: &Team,
    recs: &[&InteractionRecord],
    recognitions: &[Option<Recognition>],
    now: Timestamp,
) -> Result<Vec<Option<SubjectRecord>>> {
    let ckeys: Vec<Option<String>> = recs
        .iter()
        .zip(recognitions)
        .map(|(rec, r)| remembered_subject_key(team, rec.customer_ref.as_deref(), r.as_ref(), now))
        .collect();
    let wanted: Vec<String> = ckeys.iter().flatten().cloned().collect();
    if wanted.is_empty() {
        return Ok(vec![None; recs.len()]);
    }
    let mut raw = core.store.get(&wanted).await?.into_iter();
    ckeys
        .into_iter()
        .map(|k| match k {
            None => Ok(None),
            Some(k) => Ok(Loaded::<SubjectRecord>::parse(k, raw.next().flatten())?.value),
        })
        .collect()
}
