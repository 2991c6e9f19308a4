//! One reader of a team's events, as the live stream serves them: first
//! the history after the reader's last id (when it resumes), then live
//! entries, each exactly once and in order.
//!
//! The live subscription is taken before the history is read, so nothing
//! falls between the two; live entries at or before the last one delivered
//! are dropped, and so is an event delivered already under another id (the
//! Redis log's appends are at-least-once: a batch whose answer was lost
//! when Redis went away is appended again once it is back). A reader that falls [`LIVE_BUFFER`](super::log::LIVE_BUFFER)
//! entries behind (a slow client) is ended, and so is every reader when the
//! server shuts down: the client resumes with its last id.
use std::collections::VecDeque;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::{broadcast, watch};

use super::log::{EventLog, LogEntry, LogError, LogId};

/// Entries read from the history at a time.
const PAGE: usize = 200;
/// How many of the last events delivered a reader remembers, to drop a
/// repeat (an append retried after an outage follows its first soon).
const RECENT: usize = 256;

/// Where a reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Live entries only (no `Last-Event-ID`).
    Live,
    /// The history after this id, then live.
    After(LogId),
    /// The whole retained history, then live.
    Oldest,
}

impl Start {
    /// Where a client that last saw `last_event_id` resumes: after it when
    /// the log still holds its place (between the oldest and newest ids
    /// retained), else — unknown, malformed, older than the history —
    /// from the oldest retained event. Reads the log's bounds.
    pub async fn resume(
        log: &dyn EventLog,
        team: &str,
        last_event_id: Option<&str>,
    ) -> Result<Start, LogError> {
        let Some(raw) = last_event_id else {
            return Ok(Start::Live);
        };
        let id = raw.parse::<LogId>().ok();
        Ok(match (id, log.bounds(team).await?) {
            (_, None) => Start::Live,
            (Some(id), Some((oldest, newest))) if oldest <= id && id <= newest => Start::After(id),
            (_, Some(_)) => Start::Oldest,
        })
    }
}

enum Phase {
    History { after: Option<LogId> },
    Live,
}

struct Reader {
    log: Arc<dyn EventLog>,
    team: String,
    phase: Phase,
    pending: VecDeque<LogEntry>,
    last: Option<LogId>,
    /// The ids of the last [`RECENT`] events delivered.
    recent: VecDeque<uuid::Uuid>,
    live: broadcast::Receiver<LogEntry>,
    closing: watch::Receiver<bool>,
}

/// `team`'s entries from `start` on, `live` its subscription taken before
/// ([`EventLog::listen`]); ends when `closing` turns true (or its sender
/// is gone), when the reader falls behind, or when the history cannot be
/// read.
pub fn entries(
    log: Arc<dyn EventLog>,
    team: &str,
    start: Start,
    live: broadcast::Receiver<LogEntry>,
    closing: watch::Receiver<bool>,
) -> impl Stream<Item = LogEntry> + Send + 'static {
    let phase = match start {
        Start::Live => Phase::Live,
        Start::After(id) => Phase::History { after: Some(id) },
        Start::Oldest => Phase::History { after: None },
    };
    let reader = Reader {
        log,
        team: team.to_string(),
        phase,
        pending: VecDeque::new(),
        last: None,
        recent: VecDeque::with_capacity(RECENT),
        live,
        closing,
    };
    futures::stream::unfold(reader, |mut r| async move {
        let entry = r.next().await?;
        Some((entry, r))
    })
}

impl Reader {
    /// Notes `entry` as delivered; false when its event was already.
    fn first_time(&mut self, entry: &LogEntry) -> bool {
        self.last = Some(entry.id);
        if self.recent.contains(&entry.event.id) {
            return false;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(entry.event.id);
        true
    }

    async fn next(&mut self) -> Option<LogEntry> {
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(entry) = self.pending.pop_front() {
                if self.first_time(&entry) {
                    return Some(entry);
                }
                continue;
            }
            match self.phase {
                Phase::History { after } => {
                    let page = tokio::select! {
                        _ = self.closing.wait_for(|c| *c) => return None,
                        page = self.log.read_after(&self.team, after, PAGE) => page,
                    };
                    match page {
                        Ok(page) if page.is_empty() => self.phase = Phase::Live,
                        Ok(page) => {
                            self.phase = Phase::History {
                                after: page.last().map(|e| e.id),
                            };
                            self.pending.extend(page);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "event history unreadable; ending the stream");
                            return None;
                        }
                    }
                }
                Phase::Live => {
                    let received = tokio::select! {
                        _ = self.closing.wait_for(|c| *c) => return None,
                        received = self.live.recv() => received,
                    };
                    match received {
                        Ok(entry) if self.last.is_some_and(|l| entry.id <= l) => {}
                        Ok(entry) => {
                            if self.first_time(&entry) {
                                return Some(entry);
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            metrics::counter!("chatgate_event_streams_dropped_total").increment(1);
                            tracing::info!("event stream reader fell behind; ending its stream");
                            return None;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::memory::MemoryLog;
    use crate::events::{Event, EventType};
    use crate::time::Timestamp;
    use futures::StreamExt;

    fn event() -> Arc<Event> {
        Arc::new(
            Event::new(
                EventType::InteractionCreated,
                Timestamp::from_unix_seconds(1_795_000_000),
                "acme",
                &serde_json::json!({}),
            )
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn resumes_after_an_id_then_goes_live_without_repeats() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        for _ in 0..3 {
            log.append(event());
        }
        let all = log.read_after("acme", None, 10).await.unwrap();
        let first = all[0].id.to_string();
        let start = Start::resume(&*log, "acme", Some(&first)).await.unwrap();
        assert_eq!(start, Start::After(all[0].id));
        let (_tx, closing) = watch::channel(false);
        let mut s = Box::pin(entries(
            Arc::clone(&log),
            "acme",
            start,
            log.subscribe("acme"),
            closing,
        ));
        log.append(event());
        let got: Vec<LogId> = s.by_ref().take(3).map(|e| e.id).collect().await;
        assert_eq!(got[..2], [all[1].id, all[2].id]);
        assert!(got[2] > all[2].id);
    }

    #[tokio::test]
    async fn an_event_the_log_holds_twice_is_delivered_once() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let (_tx, closing) = watch::channel(false);
        let (a, b) = (event(), event());
        // Live: the repeat comes under a later id.
        let mut s = Box::pin(entries(
            Arc::clone(&log),
            "acme",
            Start::Live,
            log.subscribe("acme"),
            closing.clone(),
        ));
        for e in [&a, &a, &b] {
            log.append(Arc::clone(e));
        }
        let got: Vec<_> = s.by_ref().take(2).map(|e| e.event.id).collect().await;
        assert_eq!(got, [a.id, b.id]);
        // From the history, likewise.
        let mut h = Box::pin(entries(
            Arc::clone(&log),
            "acme",
            Start::Oldest,
            log.subscribe("acme"),
            closing,
        ));
        let got: Vec<_> = h.by_ref().take(2).map(|e| e.event.id).collect().await;
        assert_eq!(got, [a.id, b.id]);
    }

    #[tokio::test]
    async fn unknown_ids_start_from_the_oldest() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        assert_eq!(
            Start::resume(&*log, "acme", Some("1-0")).await.unwrap(),
            Start::Live
        );
        log.append(event());
        for raw in ["garbage", "1-0", "99999999999999-0"] {
            assert_eq!(
                Start::resume(&*log, "acme", Some(raw)).await.unwrap(),
                Start::Oldest
            );
        }
        assert_eq!(
            Start::resume(&*log, "acme", None).await.unwrap(),
            Start::Live
        );
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_is_ended_and_closing_ends_all() {
        let log: Arc<dyn EventLog> = Arc::new(MemoryLog::new());
        let (tx, closing) = watch::channel(false);
        let mut slow = Box::pin(entries(
            Arc::clone(&log),
            "acme",
            Start::Live,
            log.subscribe("acme"),
            closing.clone(),
        ));
        for _ in 0..super::super::log::LIVE_BUFFER + 1 {
            log.append(event());
        }
        assert!(slow.next().await.is_none());
        let mut idle = Box::pin(entries(
            Arc::clone(&log),
            "acme",
            Start::Live,
            log.subscribe("acme"),
            closing,
        ));
        tx.send(true).unwrap();
        assert!(idle.next().await.is_none());
    }
}
