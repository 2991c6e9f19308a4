//! The audit trail (docs/audit.md): entries chained into the commit of
//! the action they record, an entry on its own (an `access.denied`, a
//! read of the trail), pages of the trail and its signed head.
//! The chain itself is the core's (`gateway/core/trail/`), part of the
//! unit of work.
mod config_change;
mod cursor;
mod deleted;
mod sink;
mod syslog;
mod webhook;

use std::sync::Arc;

use serde::Serialize;

pub(super) use super::change::append;
use super::change::vouch;
pub use super::core::trail::StoredHead;
use super::core::trail::{head_of, read_head};
/// An entry's JSON as its record stores it (tests and tools read the
/// store itself).
pub use super::records::entry_json;
use super::{Core, Live, Workers};
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::domain::interaction::InteractionRecord;
use crate::error::{Error, Result};
use crate::gateway::records::Loaded;
use crate::store::keys;
use crate::time::{Clock, Timestamp};
pub use config_change::{
    record_api_write, record_configuration, record_departures, record_restore, recorded_keys,
    Source as ConfigSource,
};
pub use deleted::deleted_trail;

/// Starts the audit sinks (docs/audit.md#wiring-a-siem), each a worker
/// of `workers`; a sink is one line here (CONTRIBUTING.md#add-an-audit-sink).
pub fn spawn_sinks(workers: &mut Workers, live: &Arc<Live>, clock: &Arc<dyn Clock>) {
    sink::spawn::<syslog::SyslogSink>(workers, live, clock);
    sink::spawn::<webhook::WebhookSink>(workers, live, clock);
}

/// After a store reset noticed (docs/audit.md#resets): each of `teams`
/// whose trail this process knew longer than the store holds now, or
/// found lost with its marker, gets its `audit.trail_reset` entry at
/// once, before a restarted instance's `config.changed` or any action
/// writes to it; one whose reset was recorded already, or that this
/// process neither knew nor found lost, gets nothing.
/// A failure is left to the team's next entry, which records it then.
pub async fn record_store_resets(core: &Core, teams: &[&crate::config::Team], now: Timestamp) {
    let nothing_more = crate::domain::audit::Known::default();
    for chunk in teams.chunks(RESETS_AT_ONCE) {
        let mut marks = Vec::with_capacity(chunk.len());
        for team in chunk {
            marks.push(vouch(core, &team.keyspace, &nothing_more, now));
        }
        for marked in futures::future::join_all(marks).await {
            if let Err(e) = marked {
                tracing::debug!(error = %e, "a reset not recorded now; the team's next entry records it");
            }
        }
    }
}

/// Teams whose reset is recorded side by side.
const RESETS_AT_ONCE: usize = 64;

/// The most entries one page answers.
pub const MAX_PAGE: usize = 1000;

/// `action` by `acting` on the interaction `rec` (and its subject).
pub fn on_interaction(action: Action, acting: &Acting, rec: &InteractionRecord) -> Draft {
    let target = Target {
        interaction_id: Some(rec.id),
        subject: Some(rec.subject()),
        ..Target::default()
    };
    Draft::success(action, acting, target)
}

/// `access.denied` by `acting`, for a request refused 403 with `reason`
/// (the problem's `code`) on `route`: written before the answer.
pub async fn denied(
    core: &Core,
    team: &str,
    acting: &Acting,
    reason: &str,
    route: &str,
    now: Timestamp,
) -> Result<()> {
    let make = || {
        let mut d = Draft::success(Action::AccessDenied, acting, Target::default())
            .with("reason", reason)
            .with("route", route);
        d.outcome = crate::domain::audit::Outcome::Denied;
        vec![d]
    };
    append(core, team, make, now).await.map(|_| ())
}

/// A page of the trail: entries with `seq` > `after`, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Each entry as written (docs/audit.md#an-entry).
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<serde_json::Value>,
    /// The last `seq` answered, or `after` when none.
    pub next: u64,
}

/// Up to `limit` (1..=[`MAX_PAGE`]) entries of `team` after `after`,
/// then this read's own `audit.read` (fail closed: a read that cannot
/// be recorded answers nothing).
pub async fn page(
    core: &Core,
    team: &str,
    after: u64,
    limit: usize,
    acting: &Acting,
    now: Timestamp,
) -> Result<AuditPage> {
    let head = head_of(&read_head(core, team).await?);
    let first = first_living(core, team, after + 1, head.seq).await?;
    let last = head
        .seq
        .min(first.saturating_add(limit as u64).saturating_sub(1));
    let mut entries = Vec::new();
    if first <= last {
        let wanted: Vec<String> = (first..=last).map(|s| keys::audit_entry(team, s)).collect();
        let read = core.get(&wanted).await?;
        for (key, raw) in wanted.into_iter().zip(read) {
            // An entry that expired while read ends the page.
            let Some(mut raw) = raw else {
                break;
            };
            raw.value = entry_json(raw.value).map_err(|e| {
                Error::internal_from("an audit entry does not read", std::io::Error::other(e))
            })?;
            let Some(entry) = Loaded::<serde_json::Value>::parse(key, Some(raw))?.value else {
                break;
            };
            entries.push(entry);
        }
    }
    let next = entries
        .last()
        .and_then(|e| e.get("seq"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(after);
    let read = || {
        vec![Draft::success(Action::AuditRead, acting, Target::default())
            .with("after", after)
            .with("limit", limit as u64)
            .with("next", next)]
    };
    append(core, team, read, now).await?;
    Ok(AuditPage { entries, next })
}

/// The first `seq` from `from` to `last` whose entry is still kept
/// (the retention period drops the oldest first), or `from` when it is.
/// One read when nothing expired; else a binary search, one read a step.
async fn first_living(core: &Core, team: &str, from: u64, last: u64) -> Result<u64> {
    if from > last || exists(core, team, from).await? {
        return Ok(from);
    }
    // Entries expire oldest first: those kept are a run that ends at `last`.
    let (mut gone, mut kept) = (from, last + 1);
    while kept - gone > 1 {
        let mid = gone + (kept - gone) / 2;
        if exists(core, team, mid).await? {
            kept = mid;
        } else {
            gone = mid;
        }
    }
    Ok(kept)
}

async fn exists(core: &Core, team: &str, seq: u64) -> Result<bool> {
    let key = keys::audit_entry(team, seq);
    Ok(core
        .get(std::slice::from_ref(&key))
        .await?
        .pop()
        .flatten()
        .is_some())
}

/// The latest entry of a team's trail, signed.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedHead {
    pub team: String,
    /// 0 before the first entry.
    pub seq: u64,
    /// 64 zeros before the first entry.
    pub hash: String,
    /// The latest entry's time; null before the first.
    pub time: Option<String>,
    /// A compact JWS (`EdDSA`, header `kid`) of `{"team", "seq", "hash",
    /// "time", "iat"}`, or null when no signing key is configured.
    pub signature: Option<String>,
}

/// What a head's signature signs.
#[derive(Debug, Serialize)]
struct HeadClaims<'a> {
    team: &'a str,
    seq: u64,
    hash: &'a str,
    time: Option<&'a str>,
    iat: i64,
}

/// `team`'s head as it stands, signed, then this read's `audit.read`.
pub async fn head(core: &Core, team: &str, acting: &Acting, now: Timestamp) -> Result<SignedHead> {
    let head = head_of(&read_head(core, team).await?);
    let claims = HeadClaims {
        team: keys::team_of(team),
        seq: head.seq,
        hash: &head.hash,
        time: head.time.as_deref(),
        iat: now.unix_seconds(),
    };
    let signature = core.config().audit.keys.sign(&claims);
    let read = || {
        vec![Draft::success(Action::AuditRead, acting, Target::default()).with("head", head.seq)]
    };
    append(core, team, read, now).await?;
    Ok(SignedHead {
        team: keys::team_of(team).to_string(),
        seq: head.seq,
        hash: head.hash,
        time: head.time,
        signature,
    })
}
