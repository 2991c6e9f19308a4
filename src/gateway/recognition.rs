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
use crate::time::Timestamp;

pub(super) use super::core::forget::forget_recognitions_of;

/// The recognitions of many interactions (a list page), in one round
/// trip; `None` where the channel remembers none.
pub(super) async fn load_recognitions(
    core: &Core,
    team: &Team,
    recs: &[&InteractionRecord],
) -> Result<Vec<Option<Recognition>>> {
    let rkeys: Vec<Option<String>> = recs
        .iter()
        .map(|r| super::records::recognition_key(core.config(), team, r))
        .collect();
    let wanted: Vec<String> = rkeys.iter().flatten().cloned().collect();
    if wanted.is_empty() {
        return Ok(vec![None; recs.len()]);
    }
    let mut raw = core.get(&wanted).await?.into_iter();
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
    let mut raw = core.get(&wanted).await?.into_iter();
    ckeys
        .into_iter()
        .map(|k| match k {
            None => Ok(None),
            Some(k) => Ok(Loaded::<SubjectRecord>::parse(k, raw.next().flatten())?.value),
        })
        .collect()
}
