//! What the identity provider's two revocation receivers share
//! (docs/api.md#revocation-from-the-identity-provider): a token id used
//! once (claimed atomically, released when the logout it allowed could not
//! be done), the interactions and customers an index names, and the
//! receivers' metrics.
use std::sync::Arc;
use std::time::Duration;

use super::change;
use super::records::{Loaded, UsedJti};
use super::work::Step;
use super::Core;
use crate::config::Team;
use crate::domain::audit::Acting;
use crate::domain::logout::{Receiver, RefusalReason};
use crate::error::Result;
use crate::store::{keys, IndexEntry};
use crate::time::Timestamp;

/// A token received by `receiver` for `team`.
pub fn count_received(team: &Team, receiver: Receiver) {
    metrics::counter!("chatgate_revocation_tokens_total",
        "team" => team.id.clone(), "receiver" => receiver.as_str())
    .increment(1);
}

/// A token refused (or ignored as a replay) for `reason`.
pub fn count_refused(team: &Team, receiver: Receiver, reason: RefusalReason) {
    metrics::counter!("chatgate_revocation_refused_total",
        "team" => team.id.clone(), "receiver" => receiver.as_str(), "reason" => reason.as_str())
    .increment(1);
}

/// Customers logged out by a valid token.
pub fn count_logged_out(team: &Team, receiver: Receiver, customers: usize) {
    metrics::counter!("chatgate_revocation_customers_logged_out_total",
        "team" => team.id.clone(), "receiver" => receiver.as_str())
    .increment(customers as u64);
}

/// A token id claimed by [`Core::claim_jti`]: released again when the
/// work it allowed fails, so that the sender's retry is not a replay.
#[derive(Debug)]
pub struct ClaimedJti {
    team: String,
    /// Its record, as the claim wrote it.
    written: Loaded<UsedJti>,
}

/// Claims `jti` for `receiver` of `team` for `memory`: `None` when it
/// was claimed before (a replay). Atomic: of concurrent twins, one
/// claims it.
pub(super) async fn claim_jti(
    core: &Core,
    team: &Team,
    receiver: Receiver,
    jti: &str,
    memory: Duration,
    now: Timestamp,
) -> Result<Option<ClaimedJti>> {
    let key = keys::revocation_jti(&team.keyspace, receiver.as_str(), jti);
    let claimed = change::once(core, &team.keyspace, &[], now, |c| {
        Ok(Step::Write(c.claim(&key, &UsedJti {}, Some(memory))?))
    });
    Ok(claimed.await?.map(|version| ClaimedJti {
        team: team.id.clone(),
        written: Loaded {
            key,
            version,
            value: Some(UsedJti {}),
        },
    }))
}

/// Forgets a claimed token id whose logout could not be done (best
/// effort: the store is likely failing already).
pub(super) async fn release_jti(core: &Core, claimed: ClaimedJti, now: Timestamp) {
    let released = change::once(core, &claimed.team, &[], now, |c| {
        c.delete(&claimed.written);
        Ok(Step::Write(()))
    });
    if let Err(e) = released.await {
        tracing::warn!(error = %e, "a revocation token id could not be released; the sender's retry will be taken for a replay");
    }
}

/// Every entry of the index `key`, newest first.
pub(super) async fn index_entries(core: &Core, key: &str) -> Result<Vec<IndexEntry>> {
    const PAGE: usize = 500;
    let mut all: Vec<IndexEntry> = Vec::new();
    loop {
        let before = all.last().map(|e| (e.score, e.member.clone()));
        let page = core.index_desc(key, before, PAGE).await?;
        let full = page.len() == PAGE;
        all.extend(page);
        if !full {
            return Ok(all);
        }
    }
}

/// Logs each of `customers` out everywhere (as a website's back-channel
/// logout does) for `receiver`; returns how many interactions ended.
pub(super) async fn revoke_customers(
    core: &Arc<Core>,
    team: &Team,
    receiver: Receiver,
    customers: &[String],
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    let mut n = 0;
    for customer_id in customers {
        n += crate::gateway::website::log_out_everywhere(
            core,
            team,
            customer_id,
            receiver.cause(),
            acting,
            now,
        )
        .await?;
    }
    count_logged_out(team, receiver, customers.len());
    Ok(n)
}
