//! The event log behind the publisher: an ordered history of each team's
//! events of the last [`HISTORY_AGE`], plus live fan-out to this instance's
//! stream readers (docs/api.md#events). Two implementations: `memory` (one process) and `redis`
//! (one Redis stream per team, shared by every instance).
//!
//! Positions are [`LogId`]s, `<ms>-<seq>` like Redis stream ids: totally
//! ordered within a team, so a reader that knows the last id it delivered
//! can resume after it and drop what it already has.
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::Event;
use crate::store::History;

/// How long an event is kept, however many a team has: trimmed by age
/// only (docs/events.md#history). docs/api.md#events promises a resume at
/// least 10 minutes back; the 5 minutes more leave a reconnecting client
/// room beyond that. The Redis trims cut by Redis' own time (the commit's
/// reckoning of it, or `TIME`), so a host clock ahead of Redis' takes
/// nothing from it. Redis trims about once a minute, so a stream holds a
/// little more.
pub const HISTORY_AGE: Duration = Duration::from_secs(15 * 60);
/// Live entries one stream reader may fall behind before it is dropped.
pub const LIVE_BUFFER: usize = 1024;
/// A Redis stream key outlives its last event by this much beyond
/// [`HISTORY_AGE`].
pub const KEY_TTL_SLACK: Duration = Duration::from_secs(300);

/// A position in a team's log: `<ms>-<seq>`, ordered by both parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

impl FromStr for LogId {
    type Err = ();

    /// Exactly `<digits>-<digits>`, each fitting a `u64`.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.trim().split_once('-').ok_or(())?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(());
        }
        Ok(LogId {
            ms: ms.parse().map_err(|_| ())?,
            seq: seq.parse().map_err(|_| ())?,
        })
    }
}

/// One event at its place in its team's log.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub id: LogId,
    pub event: Arc<Event>,
}

/// The log could not be read (Redis down or slow). The text names the
/// failure, never an event's content.
#[derive(Debug, thiserror::Error)]
#[error("event log unavailable: {0}")]
pub struct LogError(pub String);

#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event to its team's log and fans it out. Never blocks
    /// and never fails the caller: a failure is logged and counted.
    fn append(&self, event: Arc<Event>);

    /// [`EventLog::append`], and `done` answers `true` once the event is
    /// in the log (`false`, or dropped, when it never will be). The memory
    /// log appends at once.
    fn append_confirmed(&self, event: Arc<Event>, done: tokio::sync::oneshot::Sender<bool>) {
        self.append(event);
        let _ = done.send(true);
    }

    /// The oldest and newest ids `team`'s log holds, `None` when empty.
    async fn bounds(&self, team: &str) -> Result<Option<(LogId, LogId)>, LogError>;

    /// Up to `limit` of `team`'s entries after `after` (from the oldest
    /// retained when `None`), in order.
    async fn read_after(
        &self,
        team: &str,
        after: Option<LogId>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, LogError>;

    /// Every entry of `team` appended from now on, by any instance sharing
    /// the log. A receiver more than [`LIVE_BUFFER`] behind gets `Lagged`.
    fn subscribe(&self, team: &str) -> broadcast::Receiver<LogEntry>;

    /// [`EventLog::subscribe`], once the log follows `team`'s stream: every
    /// entry appended after this returns reaches the receiver. A log shared
    /// by instances follows a team's stream only while it has a listener
    /// (docs/architecture.md#event-streams); the first one waits for
    /// where the stream stands, and fails when the log cannot tell.
    async fn listen(&self, team: &str) -> Result<broadcast::Receiver<LogEntry>, LogError> {
        Ok(self.subscribe(team))
    }

    /// Where the history is kept, for a store whose commits may append to
    /// it ([`crate::store::Op::Append`]); `None`: only through
    /// [`EventLog::append`].
    fn history(&self) -> Option<History> {
        None
    }
}

/// In-process fan-out: one broadcast channel per team that has had a reader.
#[derive(Default)]
pub struct Fanout {
    teams: Mutex<HashMap<String, broadcast::Sender<LogEntry>>>,
}

impl Fanout {
    pub fn subscribe(&self, team: &str) -> broadcast::Receiver<LogEntry> {
        let mut teams = self.teams.lock().unwrap_or_else(|e| e.into_inner());
        teams
            .entry(team.to_string())
            .or_insert_with(|| broadcast::channel(LIVE_BUFFER).0)
            .subscribe()
    }

    /// How many receivers of `team`'s entries are open.
    pub fn listeners(&self, team: &str) -> usize {
        let teams = self.teams.lock().unwrap_or_else(|e| e.into_inner());
        teams.get(team).map_or(0, broadcast::Sender::receiver_count)
    }

    /// Forgets the teams nobody listens to any more: a team costs the
    /// fan-out nothing once its last reader left.
    pub fn forget_unheard(&self) {
        let mut teams = self.teams.lock().unwrap_or_else(|e| e.into_inner());
        teams.retain(|_, tx| tx.receiver_count() > 0);
    }

    /// Hands `entry` to its team's readers; none listening is fine.
    pub fn send(&self, entry: LogEntry) {
        let team = entry.event.team.clone();
        self.send_to(&team, entry);
    }

    /// Hands `entry` to the receivers of `team`, the keyspace of the
    /// history it was read from (`store::keys::keyspace`): a team written
    /// again under a deleted team's id hears nothing of the deleted one.
    pub fn send_to(&self, team: &str, entry: LogEntry) {
        let teams = self.teams.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = teams.get(team) {
            let _ = tx.send(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_print_and_order() {
        let a: LogId = "1700000000000-0".parse().unwrap();
        let b: LogId = "1700000000000-12".parse().unwrap();
        let c: LogId = "1700000000001-0".parse().unwrap();
        assert!(a < b && b < c);
        assert_eq!(b.to_string(), "1700000000000-12");
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "x-1",
            "1-1-1",
            "+1-2",
            "99999999999999999999-0",
        ] {
            assert!(bad.parse::<LogId>().is_err(), "{bad}");
        }
    }
}
