//! How deliveries to each destination fare, as this instance sees them
//! (docs/operations.md#metrics, docs/operations.md#logs): the items that
//! failed and wait for a retry, whose oldest gives
//! `chatgate_outbox_oldest_pending_seconds` whatever else settles; and the
//! log of a destination that fails, as the store's outage log does: one
//! warning when it starts failing, a summary when it delivers again.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use uuid::Uuid;

use crate::time::Timestamp;

/// An item that failed here and was not seen again this long after its
/// retry was due was taken by another instance (or given up there): it no
/// longer counts here.
const FORGET_AFTER: Duration = Duration::from_secs(120);

/// Who deliveries go to: a team's webhook (its events) or one of its chat
/// channels (its notices).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Receiver {
    pub team: String,
    /// `event` (the team's webhook) or `notice` (a chat channel), as the
    /// outbox metrics' `kind` label.
    pub kind: &'static str,
    /// The channel's name; `webhook` for the team's webhook.
    pub name: String,
}

#[derive(Default)]
struct State {
    /// Items that failed here and wait for a retry: when each was created
    /// and when its retry is due.
    pending: HashMap<Uuid, (Timestamp, Timestamp)>,
    failing: Option<Failing>,
}

struct Failing {
    since: Timestamp,
    failed_attempts: u64,
}

/// The deliveries' health of every destination, for one instance; and
/// the gauge's values it last set, by team and kind (set again only when
/// they change).
#[derive(Default)]
pub struct Health {
    receivers: Mutex<HashMap<Receiver, State>>,
    published: Mutex<HashMap<(String, &'static str), u64>>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Receiver, State>> {
        self.receivers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An attempt at item `id` (created at `created`) failed; it is retried
    /// at `retry_at`. The first failure of a destination that worked is
    /// logged; the others are counted for the summary.
    pub fn failed(
        &self,
        to: &Receiver,
        id: Uuid,
        created: Timestamp,
        retry_at: Timestamp,
        reason: &str,
        now: Timestamp,
    ) {
        let mut all = self.lock();
        let state = all.entry(to.clone()).or_default();
        state.pending.insert(id, (created, retry_at));
        match &mut state.failing {
            Some(f) => {
                f.failed_attempts += 1;
                tracing::debug!(team = %to.team, kind = to.kind, destination = %to.name, item = %id, reason, "outbox delivery failed; will retry");
            }
            None => {
                tracing::warn!(team = %to.team, kind = to.kind, destination = %to.name, item = %id, reason, "outbox deliveries failing: retried with backoff until it answers again");
                state.failing = Some(Failing {
                    since: now,
                    failed_attempts: 1,
                });
            }
        }
    }

    /// Item `id` is done with: delivered (`delivered`), or given up. A
    /// delivery to a failing destination ends its failure, with a summary.
    pub fn settled(&self, to: &Receiver, id: Uuid, delivered: bool, now: Timestamp) {
        let mut all = self.lock();
        let state = all.entry(to.clone()).or_default();
        state.pending.remove(&id);
        if !delivered {
            return;
        }
        if let Some(f) = state.failing.take() {
            tracing::info!(
                team = %to.team,
                kind = to.kind,
                destination = %to.name,
                failing_secs = now.since(f.since).as_secs_f64(),
                failed_attempts = f.failed_attempts,
                still_pending = state.pending.len(),
                "outbox deliveries work again"
            );
        }
    }

    /// Forgets what it holds of team `id`: its destinations' pending
    /// items and failures, and the gauge's values it last set (a team
    /// that left the configuration in force, its id no team's in force).
    pub fn forget(&self, id: &str) {
        self.lock().retain(|to, _| to.team != id);
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        published.retain(|(team, _), _| team != id);
    }

    /// How many destinations it holds a state of.
    pub fn destinations(&self) -> usize {
        self.lock().len()
    }

    /// Sets `chatgate_outbox_oldest_pending_seconds` of `team` (its id), per kind:
    /// the age of the oldest item still to deliver that failed here (0
    /// when none).
    pub fn publish(&self, team: &str, now: Timestamp) {
        let mut all = self.lock();
        let mut oldest: HashMap<&'static str, Duration> = HashMap::new();
        for (to, state) in all.iter_mut().filter(|(to, _)| to.team == team) {
            state
                .pending
                .retain(|_, (_, retry_at)| now < retry_at.plus(FORGET_AFTER));
            let age = state
                .pending
                .values()
                .map(|(created, _)| now.since(*created))
                .max()
                .unwrap_or_default();
            let kind = oldest.entry(to.kind).or_default();
            *kind = (*kind).max(age);
        }
        drop(all);
        let mut published = self.published.lock().unwrap_or_else(|e| e.into_inner());
        for kind in crate::telemetry::OUTBOX_KINDS {
            let age = oldest.get(kind).copied().unwrap_or_default();
            let secs = age.as_secs();
            if published
                .insert((team.to_string(), kind), secs)
                .unwrap_or(0)
                == secs
            {
                continue;
            }
            metrics::gauge!("chatgate_outbox_oldest_pending_seconds", "team" => team.to_string(), "kind" => kind)
                .set(age.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> Receiver {
        Receiver {
            team: "acme".into(),
            kind: "event",
            name: "webhook".into(),
        }
    }

    #[test]
    fn pending_items_are_forgotten_when_delivered_or_long_unseen() {
        let h = Health::default();
        let t0 = Timestamp::from_unix_millis(1_000_000);
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let retry = t0.plus(Duration::from_secs(2));
        h.failed(&hook(), a, t0, retry, "answered HTTP 500", t0);
        h.failed(&hook(), b, t0, retry, "answered HTTP 500", t0);
        let pending = |h: &Health| h.lock()[&hook()].pending.len();
        h.settled(&hook(), a, true, t0);
        assert_eq!(pending(&h), 1);
        assert!(h.lock()[&hook()].failing.is_none());
        h.publish("acme", retry.plus(FORGET_AFTER));
        assert_eq!(pending(&h), 0, "another instance took it");
    }

    #[test]
    fn a_team_forgotten_leaves_nothing_and_the_others_stay() {
        let h = Health::default();
        let t0 = Timestamp::from_unix_millis(1_000_000);
        let other = Receiver {
            team: "globex".into(),
            ..hook()
        };
        let retry = t0.plus(Duration::from_secs(2));
        h.failed(&hook(), Uuid::now_v7(), t0, retry, "answered HTTP 500", t0);
        h.failed(&other, Uuid::now_v7(), t0, retry, "answered HTTP 500", t0);
        h.publish("acme", retry);
        h.publish("globex", retry);
        assert_eq!(h.destinations(), 2);
        h.forget("acme");
        assert_eq!(h.destinations(), 1);
        assert!(h.lock().contains_key(&other));
        let published = h.published.lock().unwrap();
        assert!(published.keys().all(|(team, _)| team == "globex"));
        assert_eq!(published.len(), 2, "globex's two kinds");
    }
}
