//! A team's cursor in an audit sink (docs/audit.md#wiring-a-siem), one
//! record per sink and team: the last `seq` the sink confirmed sent, which
//! instance sends the team's entries until when (a lease: one instance at
//! a time sends a team's entries), and the latest reset of the trail it
//! knew. A cursor ahead of the head is a reset, recorded before anything
//! is sent, and once one is recorded the sink sends again from its entry,
//! so a reset never makes a sink skip an entry (docs/audit.md#resets).
//! Every sink shares these rules through `sink.rs`.
use std::time::Duration;

use super::{head_of, read_head, vouch, StoredHead};
use crate::domain::audit::{sink_step, Head, Known, SinkStep};
use crate::gateway::change;
use crate::gateway::records::{Loaded, StoredCursor};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::time::Timestamp;

/// How long an instance keeps a team's sending once it stops renewing
/// (each round renews it, every 0.5 s while the team has entries to
/// send): another instance takes over within 5 s of a crash
/// (docs/audit.md#wiring-a-siem). A round that outlasts it (a receiver
/// that hangs) may see another instance send the same entries: at least
/// once.
const LEASE: Duration = Duration::from_secs(3);

/// A team's cursor as this instance holds it: its version, and what it
/// knows of the trail (the last `seq` sent, the latest reset).
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub version: u64,
    pub known: Known,
}

/// Takes or renews, for `me`, the sending of the team whose cursor is
/// `key`, for [`LEASE`]; moves the cursor to `done`'s `seq` when it is
/// still at `done`'s version (nobody took it over since). Answers the
/// cursor as held, or `None` while another instance holds it (or took it
/// just now).
pub(super) async fn hold(
    core: &Core,
    team: &str,
    key: &str,
    me: &str,
    done: Option<(u64, u64)>,
    now: Timestamp,
) -> crate::error::Result<Option<Held>> {
    let retention = Some(core.config().audit.retention);
    let keys = [key.to_string()];
    let held = change::once(core, team, &keys, now, |c| {
        let cursor: Loaded<StoredCursor> = c.read(key)?;
        let (mut seq, reset, held_by_other) = match &cursor.value {
            Some(StoredCursor::V1 {
                seq,
                holder,
                until,
                r,
            }) => (*seq, r.clone(), holder != me && *until > now.unix_millis()),
            None => (0, None, false),
        };
        if held_by_other {
            return Ok(Step::Answer(None));
        }
        if let Some((version, through)) = done {
            if version == cursor.version {
                seq = seq.max(through);
            }
        }
        let known = Known { seq, reset };
        let version = c.put(&cursor, &mine(me, &known, now), retention)?;
        Ok(Step::Write(Some(Held { version, known })))
    });
    Ok(held.await?.flatten())
}

/// The cursor holding `known`, held by `me` for [`LEASE`] from `now`.
fn mine(me: &str, known: &Known, now: Timestamp) -> StoredCursor {
    StoredCursor::V1 {
        seq: known.seq,
        holder: me.to_string(),
        until: now.plus(LEASE).unix_millis(),
        r: known.reset.clone(),
    }
}

/// Writes `known` to the cursor as read (`cursor`), held by `me` for
/// [`LEASE`]; `None` when another writer moved it first.
async fn put_cursor(
    core: &Core,
    team: &str,
    cursor: &Loaded<StoredCursor>,
    me: &str,
    known: Known,
    now: Timestamp,
) -> crate::error::Result<Option<Held>> {
    let mine = mine(me, &known, now);
    let retention = Some(core.config().audit.retention);
    let version = change::once(core, team, &[], now, |c| {
        Ok(Step::Write(c.put(cursor, &mine, retention)?))
    });
    Ok(version.await?.map(|version| Held { version, known }))
}

/// The head of `team`'s trail, and the cursor `held` (at `key`) as it
/// stands after any reset of the trail (docs/audit.md#resets): rewound to
/// send again from the reset's entry when one was recorded since it
/// moved; when it is ahead of the head and none was recorded, the reset
/// is recorded first, and nothing is sent this round (`None`, as when
/// another writer moved the cursor meanwhile).
pub(super) async fn settle(
    core: &Core,
    team: &str,
    key: &str,
    me: &str,
    held: Held,
    now: Timestamp,
) -> crate::error::Result<Option<(Held, Head)>> {
    let loaded = read_head(core, team).await?;
    let found = loaded.value.as_ref().map(StoredHead::found);
    match sink_step(&held.known, found.as_ref()) {
        SinkStep::Send => Ok(Some((held, head_of(&loaded)))),
        SinkStep::Rewind { seq, reset } => {
            let cursor = Loaded {
                key: key.to_string(),
                version: held.version,
                // Only its version is checked.
                value: None,
            };
            let known = Known {
                seq,
                reset: Some(reset),
            };
            let rewound = put_cursor(core, team, &cursor, me, known, now).await?;
            Ok(rewound.map(|held| (held, head_of(&loaded))))
        }
        SinkStep::Record(_) => {
            vouch(core, team, &held.known, now).await?;
            Ok(None)
        }
    }
}
