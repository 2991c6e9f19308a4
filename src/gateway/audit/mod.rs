//! The audit trail (docs/audit.md): entries chained into the commit of
//! the action they record, an entry on its own (an `access.denied`, a
//! read of the trail), pages of the trail and its signed head.
//!
//! Each team's chain has a head record (`seq`, `hash`); an entry is
//! written under its `seq` in the same commit as the head moves to it,
//! with the head's version checked. Two writers that read one head
//! cannot both commit: the second conflicts, reads the new head and
//! chains after it, so `seq` has no gap and `prev` is always the entry
//! before, across instances
//! (docs/decisions/0145-an-audit-entry-commits-with-its-action.md).
mod config_change;
mod stored;
mod syslog;
mod webhook;

use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::records::{put, Loaded};
use super::{Core, OutboxItem};
use crate::domain::audit::{seal, Acting, Action, Draft, Entry, Head, Target};
use crate::domain::interaction::InteractionRecord;
use crate::error::{Error, Result};
use crate::store::{keys, Backoff, Commit, Op};
use crate::time::Timestamp;
pub use config_change::{record_configuration, Source as ConfigSource};
pub use stored::StoredHead;
pub use syslog::SyslogSink;
pub use webhook::WebhookSink;

/// The most entries one page answers.
pub const MAX_PAGE: usize = 1000;

/// Drafts chained after a head: the ops that write them and move the
/// head, and the entries as written.
pub(super) struct Chained {
    pub ops: Vec<Op>,
    pub entries: Vec<Entry>,
}

/// Reads `team`'s head (one round trip).
async fn read_head(core: &Core, team: &str) -> Result<Loaded<StoredHead>> {
    let key = keys::audit_head(team);
    let raw = core
        .store
        .get(std::slice::from_ref(&key))
        .await?
        .pop()
        .flatten();
    Loaded::parse(key, raw)
}

/// `drafts` chained after `team`'s head as read with other records
/// (`raw`, the value of [`keys::audit_head`]), sparing a round trip.
pub(super) fn chain_on(
    core: &Core,
    team: &str,
    raw: Option<crate::store::Versioned>,
    drafts: Vec<Draft>,
    now: Timestamp,
) -> Result<Chained> {
    let loaded = Loaded::parse(keys::audit_head(team), raw)?;
    chain_after(team, &loaded, drafts, now, core.config.audit.retention)
}

/// The head as `loaded` holds it, or the start of the chain.
fn head_of(loaded: &Loaded<StoredHead>) -> Head {
    loaded.value.clone().map_or_else(Head::genesis, Head::from)
}

/// The ops that write `drafts` after the head as `loaded`, each entry
/// and the head living `retention` from now.
fn chain_after(
    team: &str,
    loaded: &Loaded<StoredHead>,
    drafts: Vec<Draft>,
    now: Timestamp,
    retention: Duration,
) -> Result<Chained> {
    let mut head = head_of(loaded);
    let mut ops = Vec::with_capacity(drafts.len() + 1);
    let mut entries = Vec::with_capacity(drafts.len());
    for draft in drafts {
        let entry = seal(&head, team, draft, Uuid::now_v7(), now);
        let text = stored::entry_text(&entry)
            .map_err(|e| Error::internal_from("an audit entry could not be encoded", e))?;
        ops.push(Op::Put {
            key: keys::audit_entry(team, entry.seq),
            expected: 0,
            version: crate::store::fresh_version(),
            value: text,
            ttl: Some(retention),
            companion: None,
        });
        head = Head::of(&entry);
        entries.push(entry);
    }
    if let Some(last) = entries.last() {
        let moved = put(
            &loaded.key,
            loaded.version,
            &StoredHead::from(last),
            Some(retention),
        )?;
        ops.push(moved);
    }
    Ok(Chained { ops, entries })
}

/// `drafts` chained after `team`'s head as it stands now (one read): the
/// ops go into the commit of the action they record, which conflicts,
/// and is decided again, should another writer move the head first.
pub(super) async fn chain(
    core: &Core,
    team: &str,
    drafts: Vec<Draft>,
    now: Timestamp,
) -> Result<Chained> {
    if drafts.is_empty() {
        return Ok(Chained {
            ops: Vec::new(),
            entries: Vec::new(),
        });
    }
    let loaded = read_head(core, team).await?;
    chain_after(team, &loaded, drafts, now, core.config.audit.retention)
}

/// `action` by `acting` on the interaction `rec` (and its subject).
pub fn on_interaction(action: Action, acting: &Acting, rec: &InteractionRecord) -> Draft {
    let target = Target {
        interaction_id: Some(rec.id),
        subject: Some(rec.subject()),
        ..Target::default()
    };
    Draft::success(action, acting, target)
}

/// The entries of a commit that applied are counted.
pub(super) fn written(entries: &[Entry]) {
    for e in entries {
        let action = Action::ALL
            .into_iter()
            .find(|a| a.as_str() == e.action)
            .map_or("other", Action::as_str);
        metrics::counter!("chatgate_audit_entries_total", "action" => action).increment(1);
    }
}

/// Writes `drafts` (made by `make` on each try) to `team`'s trail with
/// `more` ops in one commit, after the head as read; read again and
/// retried when another writer moved it. Answers the entries written.
pub async fn append(
    core: &Core,
    team: &str,
    make: impl Fn() -> Vec<Draft>,
    now: Timestamp,
) -> Result<Vec<Entry>> {
    append_announcing(core, team, make, Vec::new, now).await
}

/// [`append`], with the outbox items `items` (the action's event) in the
/// same commit.
pub(super) async fn append_announcing(
    core: &Core,
    team: &str,
    make: impl Fn() -> Vec<Draft>,
    items: impl Fn() -> Vec<OutboxItem>,
    now: Timestamp,
) -> Result<Vec<Entry>> {
    let mut backoff = Backoff::default();
    loop {
        let Chained { ops, entries } = chain(core, team, make(), now).await?;
        let mut recorded = core.record(team, items(), now)?;
        let mut all = std::mem::take(&mut recorded.ops);
        all.extend(ops);
        if all.is_empty() {
            return Ok(entries);
        }
        match core.store.commit(all).await? {
            Commit::Applied => {
                core.recorded(recorded);
                written(&entries);
                return Ok(entries);
            }
            Commit::Conflict { .. } => backoff.wait().await?,
        }
    }
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
        for raw in core.store.get(&wanted).await? {
            // An entry that expired while read ends the page.
            let Some(raw) = raw else { break };
            let entry: serde_json::Value = serde_json::from_str(&raw.value)
                .map_err(|e| crate::store::StoreError::Corrupt(format!("audit entry: {e}")))?;
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
        .store
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
        team,
        seq: head.seq,
        hash: &head.hash,
        time: head.time.as_deref(),
        iat: now.unix_seconds(),
    };
    let signature = core.config.audit.keys.sign(&claims);
    let read = || {
        vec![Draft::success(Action::AuditRead, acting, Target::default()).with("head", head.seq)]
    };
    append(core, team, read, now).await?;
    Ok(SignedHead {
        team: team.to_string(),
        seq: head.seq,
        hash: head.hash,
        time: head.time,
        signature,
    })
}
