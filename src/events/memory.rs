//! The in-process event log: per team, the events of the last
//! [`HISTORY_AGE`], however many (no count cap: a resume within the age
//! always finds its place, docs/events.md#history), plus live fan-out. A
//! team's history is trimmed when it is appended to or read. A memory
//! store's commits append to it directly ([`HistorySink`], wired when the
//! gateway starts), in commit order, as the JSON they committed: read into
//! an event only when someone listens or reads it (most are never read);
//! [`EventLog::append`] takes the events of any other store, from the
//! outbox. Ids are
//! `<wall-clock ms>-<seq>`, increasing across the whole process, so an id
//! from before a restart is older than every id after it.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::log::{EventLog, Fanout, LogEntry, LogError, LogId, HISTORY_AGE};
use super::Event;
use crate::store::{History, HistorySink};

#[derive(Default)]
pub struct MemoryLog {
    shared: Arc<Shared>,
}

/// The history and its fan-out; also what a memory store's commits append
/// to ([`HistorySink`]).
#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    fanout: Fanout,
}

#[derive(Default)]
struct Inner {
    last: Option<LogId>,
    teams: HashMap<String, VecDeque<(Instant, Kept)>>,
}

/// An entry of a team's history: the event, or the JSON a commit appended
/// until it is first read.
#[derive(Clone)]
enum Kept {
    Event(LogEntry),
    Json(LogId, Arc<str>),
}

impl Kept {
    fn id(&self) -> LogId {
        match self {
            Kept::Event(e) => e.id,
            Kept::Json(id, _) => *id,
        }
    }

    /// The entry, read once from its JSON (kept read from then on); `None`
    /// for JSON that is no event, logged.
    fn entry(&mut self) -> Option<LogEntry> {
        let entry = match self {
            Kept::Event(e) => return Some(e.clone()),
            Kept::Json(id, json) => read_entry(*id, json)?,
        };
        *self = Kept::Event(entry.clone());
        Some(entry)
    }
}

/// The entry of `json`, an event as `events::history_op` writes it.
fn read_entry(id: LogId, json: &str) -> Option<LogEntry> {
    match serde_json::from_str::<Event>(json) {
        Ok(event) => Some(LogEntry {
            id,
            event: Arc::new(event),
        }),
        // Written by `events::history_op` from an `Event`: a bug.
        Err(_) => {
            tracing::error!(log_id = %id, "an appended event could not be read; skipped");
            None
        }
    }
}

impl MemoryLog {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.lock()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, event: Arc<Event>) {
        self.append_at(event, Instant::now());
    }

    /// [`Shared::append`] at `now`.
    fn append_at(&self, event: Arc<Event>, now: Instant) {
        // The id is given and the entry handed to live readers under one
        // lock: two appends racing would otherwise reach readers out of id
        // order, and a reader skips what is not above the last id it saw.
        // (The fan-out's send never waits and never takes this lock.)
        let mut inner = self.lock();
        let id = inner.next_id();
        let entry = LogEntry { id, event };
        inner.push(&entry.event.team, now, Kept::Event(entry.clone()));
        self.fanout.send(entry);
    }

    /// Appends the event `json` to `team`'s history at `now`: read into an
    /// event here only when the team has live readers.
    fn append_json(&self, team: &str, json: &str, now: Instant) {
        let mut inner = self.lock();
        let id = inner.next_id();
        let mut kept = Kept::Json(id, Arc::from(json));
        let live = (self.fanout.listeners(team) > 0)
            .then(|| kept.entry())
            .flatten();
        inner.push(team, now, kept);
        if let Some(entry) = live {
            self.fanout.send_to(team, entry);
        }
    }
}

/// A memory store's commit appends an event (its JSON), in commit order,
/// to the history `{team}:ev` of its team's keyspace (`store::keys::history`).
impl HistorySink for Shared {
    fn append(&self, key: &str, entry: &str) {
        match crate::store::keys::history_of(key) {
            Some(team) => self.append_json(&team, entry, Instant::now()),
            // Not a history's key: its event names its team.
            None => {
                if let Some(read) = read_entry(LogId { ms: 0, seq: 0 }, entry) {
                    Shared::append(self, read.event);
                }
            }
        }
    }
}

impl Inner {
    /// The next id: the wall clock's ms, or the last id's ms with the next
    /// sequence number when the clock has not moved on (or went back).
    fn next_id(&mut self) -> LogId {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let id = match self.last {
            Some(last) if last.ms >= ms => LogId {
                ms: last.ms,
                seq: last.seq.saturating_add(1),
            },
            _ => LogId { ms, seq: 0 },
        };
        self.last = Some(id);
        id
    }

    /// Appends `kept` to `team`'s history at `now` (made if it has none,
    /// trimmed of what is too old).
    fn push(&mut self, team: &str, now: Instant, kept: Kept) {
        if !self.teams.contains_key(team) {
            self.teams.insert(team.to_owned(), VecDeque::new());
        }
        if let Some(history) = self.history(team, now) {
            history.push_back((now, kept));
        }
    }

    /// `team`'s history without what is too old.
    fn history(&mut self, team: &str, now: Instant) -> Option<&mut VecDeque<(Instant, Kept)>> {
        let history = self.teams.get_mut(team)?;
        while history
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > HISTORY_AGE)
        {
            history.pop_front();
        }
        Some(history)
    }
}

#[async_trait]
impl EventLog for MemoryLog {
    fn append(&self, event: Arc<Event>) {
        self.shared.append(event);
    }

    async fn bounds(&self, team: &str) -> Result<Option<(LogId, LogId)>, LogError> {
        let mut inner = self.lock();
        let Some(history) = inner.history(team, Instant::now()) else {
            return Ok(None);
        };
        Ok(history
            .front()
            .zip(history.back())
            .map(|((_, first), (_, last))| (first.id(), last.id())))
    }

    async fn read_after(
        &self,
        team: &str,
        after: Option<LogId>,
        limit: usize,
    ) -> Result<Vec<LogEntry>, LogError> {
        let mut inner = self.lock();
        let Some(history) = inner.history(team, Instant::now()) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(0, |a| history.partition_point(|(_, e)| e.id() <= a));
        Ok(history
            .range_mut(start..)
            .filter_map(|(_, kept)| kept.entry())
            .take(limit)
            .collect())
    }

    fn subscribe(&self, team: &str) -> broadcast::Receiver<LogEntry> {
        self.shared.fanout.subscribe(team)
    }

    /// This process' history: a memory store hands it what it commits.
    fn history(&self) -> Option<History> {
        Some(History::InProcess(
            Arc::clone(&self.shared) as Arc<dyn HistorySink>
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;
    use crate::time::Timestamp;
    use std::time::Duration;

    fn event(team: &str) -> Arc<Event> {
        let now = Timestamp::from_unix_seconds(1_795_000_000);
        Arc::new(
            Event::new(
                EventType::InteractionCreated,
                now,
                team,
                &serde_json::json!({}),
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn history_is_per_team_ordered_and_resumable() {
        let log = MemoryLog::new();
        let mut live = log.subscribe("acme");
        for team in ["acme", "globex", "acme", "acme"] {
            log.append(event(team));
        }
        let all = log.read_after("acme", None, 100).await.unwrap();
        assert_eq!(all.len(), 3);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        let rest = log.read_after("acme", Some(all[0].id), 100).await.unwrap();
        assert_eq!(
            rest.iter().map(|e| e.id).collect::<Vec<_>>(),
            [all[1].id, all[2].id]
        );
        assert_eq!(log.read_after("acme", None, 2).await.unwrap().len(), 2);
        assert_eq!(
            log.bounds("acme").await.unwrap(),
            Some((all[0].id, all[2].id))
        );
        assert_eq!(log.bounds("initech").await.unwrap(), None);
        for expected in &all {
            assert_eq!(live.recv().await.unwrap().id, expected.id);
        }
    }

    /// No count cap: a resume from the first of more than 10 000 events
    /// gets every later one (docs/events.md#history).
    #[tokio::test]
    async fn history_keeps_every_event_of_its_age_however_many() {
        const EVENTS: usize = 10_500;
        let log = MemoryLog::new();
        for _ in 0..EVENTS {
            log.append(event("acme"));
        }
        let all = log.read_after("acme", None, usize::MAX).await.unwrap();
        assert_eq!(all.len(), EVENTS);
        let rest = log.read_after("acme", Some(all[0].id), usize::MAX);
        let rest: Vec<LogId> = rest.await.unwrap().iter().map(|e| e.id).collect();
        let expected: Vec<LogId> = all[1..].iter().map(|e| e.id).collect();
        assert_eq!(rest, expected);
    }

    /// A commit's event (its JSON, through the store's sink) is read only
    /// when someone listens or reads it: kept as JSON while nobody does,
    /// then read once, the same event either way.
    #[tokio::test]
    async fn a_committed_event_is_read_when_it_is_read() {
        let log = MemoryLog::new();
        let sink = Arc::clone(&log.shared);
        let json = |e: &Event| serde_json::to_string(e).unwrap();
        let quiet = event("acme");
        HistorySink::append(sink.as_ref(), "{acme}:ev", &json(&quiet));
        let kept = |i: usize| matches!(log.lock().teams["acme"][i].1, Kept::Json(..));
        assert!(kept(0), "nobody listens: kept as its JSON");
        let mut live = log.subscribe("acme");
        let heard = event("acme");
        HistorySink::append(sink.as_ref(), "{acme}:ev", &json(&heard));
        assert_eq!(live.recv().await.unwrap().event.id, heard.id, "live");
        assert!(!kept(1), "read for its listener");
        let all = log.read_after("acme", None, 10).await.unwrap();
        let ids: Vec<_> = all.iter().map(|e| e.event.id).collect();
        assert_eq!(ids, [quiet.id, heard.id]);
        assert!(!kept(0), "read once, kept read");
        HistorySink::append(sink.as_ref(), "{acme}:ev", "not an event");
        assert_eq!(log.read_after("acme", None, 10).await.unwrap().len(), 2);
    }

    /// An event is kept 15 minutes by this process' clock, then trimmed
    /// (when its team's history is read or appended to).
    #[test]
    fn history_is_trimmed_after_15_minutes() {
        let log = MemoryLog::new();
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let t0 = Instant::now();
        log.shared.append_at(event("acme"), t0);
        log.shared.append_at(event("acme"), t0 + minutes(5));
        let held = |at: Instant| {
            let mut inner = log.lock();
            let history = inner.history("acme", at).unwrap();
            history.iter().map(|(_, e)| e.id()).collect::<Vec<_>>()
        };
        let both = held(t0);
        assert_eq!(both.len(), 2);
        assert_eq!(held(t0 + minutes(10)), both, "10 minutes on: both");
        assert_eq!(held(t0 + minutes(15)), both, "15 minutes on: both");
        let later = t0 + minutes(15) + Duration::from_millis(1);
        assert_eq!(held(later), both[1..], "the first is trimmed");
        // An append trims its team's history too.
        log.shared.append_at(event("acme"), t0 + minutes(21));
        let left = held(t0 + minutes(21));
        assert_eq!(left.len(), 1);
        assert!(left[0] > both[1], "only the newest is left");
    }
}
