//! The team's audit webhook (`[audit] webhook` of a team file,
//! docs/audit.md#wiring-a-siem): each entry POSTed in `seq` order, signed
//! by Standard Webhooks (`webhook-id` = the entry's `id`) through the one
//! signed-webhook sender, at least once, retried with the event
//! webhooks' backoff, from a worker of its own: a receiver that is down
//! delays no request.
//!
//! A team's cursor (`{team}:awh`) holds the last `seq` the receiver
//! answered 2xx, which instance sends, until when, and the latest reset
//! of the trail it knew (as the syslog sink's, `syslog.rs`, whose rules
//! for a reset it shares: docs/audit.md#resets).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;

use super::syslog::{hold, settle};
use crate::channels::webhook::{post_signed, PostFailed};
use crate::config::TeamWebhook;
use crate::gateway::outbox::backoff;
use crate::gateway::{Core, Live};
use crate::store::keys;
use crate::time::{Clock, Timestamp};

/// How often the worker looks for entries to send.
const TICK: Duration = Duration::from_millis(500);
/// Entries POSTed per team and round, one after another.
const BATCH: u64 = 50;
/// The longest one POST may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// A team's failed attempts in a row, and when to try again.
#[derive(Debug, Clone, Copy)]
struct Failing {
    attempts: u32,
    next: Timestamp,
}

/// The worker that sends each team's entries to its `[audit] webhook`.
pub struct WebhookSink {
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// This instance, as a cursor's `holder` names it.
    me: String,
    /// By team, the time of the oldest entry its receiver has not taken
    /// (docs/audit.md#wiring-a-siem): the lag, also while a POST hangs.
    waiting: Mutex<HashMap<String, Timestamp>>,
}

impl WebhookSink {
    pub fn new(live: Arc<Live>, clock: Arc<dyn Clock>) -> Self {
        WebhookSink {
            live,
            clock,
            http: crate::channels::provider::client(POST_TIMEOUT).unwrap_or_default(),
            me: uuid::Uuid::now_v7().to_string(),
            waiting: Mutex::default(),
        }
    }

    /// Notes the time of `team`'s oldest entry not taken (`None`: none).
    fn note_waiting(&self, team: &str, oldest: Option<Timestamp>) {
        let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
        match oldest {
            Some(t) => waiting.insert(team.to_string(), t),
            None => waiting.remove(team),
        };
    }

    /// Sets the lag gauge: the age of the oldest entry of any team that
    /// its receiver has not taken, 0 when none.
    fn show_lag(&self) {
        let now = self.clock.now();
        let lag = self
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|t| now.since(*t))
            .max()
            .unwrap_or(Duration::ZERO);
        metrics::gauge!("chatgate_audit_sink_lag_seconds", "sink" => "webhook")
            .set(lag.as_secs_f64());
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failing: HashMap<String, Failing> = HashMap::new();
        // Whether the gauge was last set with no team webhook to send to.
        let mut idle_shown = false;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(TICK) => {}
            }
            let core = self.live.current();
            let teams = &core.config().teams;
            let hooked = |team: &String| teams.get(team).is_some_and(|t| t.audit_webhook.is_some());
            failing.retain(|team, _| hooked(team));
            self.waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|team, _| hooked(team));
            for team in teams.values() {
                let Some(hook) = &team.audit_webhook else {
                    continue;
                };
                let now = self.clock.now();
                if failing.get(&team.id).is_some_and(|f| f.next > now) {
                    continue;
                }
                // While a round waits on the receiver the gauge still
                // moves: a receiver that hangs is an entry growing old.
                let round = self.send_team(&core, &team.id, hook, now);
                tokio::pin!(round);
                let done = loop {
                    tokio::select! {
                        done = &mut round => break done,
                        () = tokio::time::sleep(TICK) => self.show_lag(),
                    }
                };
                note_round(&mut failing, &team.id, now, done);
            }
            // With no team webhook the gauge is 0, set once, not each round.
            let idle = !teams.values().any(|t| t.audit_webhook.is_some());
            if !(idle && idle_shown) {
                self.show_lag();
            }
            idle_shown = idle;
        }
    }

    /// One round for `team`: POSTs what follows its cursor, in order,
    /// until one is refused; moves the cursor past those taken. Answers
    /// why one was refused (and the `Retry-After` it asked), if one was.
    async fn send_team(
        &self,
        core: &Core,
        team: &str,
        hook: &TeamWebhook,
        now: Timestamp,
    ) -> crate::error::Result<Option<Refused>> {
        let key = keys::audit_webhook_cursor(team);
        let Some(held) = hold(core, &key, &self.me, None, now).await? else {
            // Another instance sends the team's entries, and shows their lag.
            self.note_waiting(team, None);
            return Ok(None);
        };
        // After a reset of the trail, from its entry on
        // (docs/audit.md#resets).
        let Some((held, head)) = settle(core, team, &key, &self.me, held, now).await? else {
            return Ok(None);
        };
        let (version, from) = (held.version, held.known.seq);
        if head.seq <= from {
            self.note_waiting(team, None);
            return Ok(None);
        }
        let last = head.seq.min(from + BATCH);
        let wanted: Vec<String> = (from + 1..=last)
            .map(|s| keys::audit_entry(team, s))
            .collect();
        let mut taken = from;
        let mut refused = None;
        for raw in core.get(&wanted).await?.into_iter().flatten() {
            let Ok(entry) = serde_json::from_str::<Value>(&raw.value) else {
                continue;
            };
            let seq = entry.get("seq").and_then(Value::as_u64).unwrap_or(taken);
            let time = entry
                .get("time")
                .and_then(Value::as_str)
                .and_then(Timestamp::parse_rfc3339);
            self.note_waiting(team, time.or(Some(now)));
            let id = entry.get("id").and_then(Value::as_str).unwrap_or_default();
            let body = raw.value.clone().into_bytes();
            let sent = post_signed(
                &self.http,
                &hook.url,
                &hook.key,
                id,
                self.clock.now(),
                body,
                POST_TIMEOUT,
            )
            .await;
            match sent {
                Ok(()) => taken = seq,
                Err(e) => {
                    refused = Some(match e {
                        PostFailed::TimedOut => ("timed out".to_string(), None),
                        PostFailed::Unreachable => ("unreachable".to_string(), None),
                        PostFailed::Status(status, after) => {
                            (format!("answered HTTP {status}"), after)
                        }
                    });
                    break;
                }
            }
        }
        if refused.is_none() && taken >= head.seq {
            self.note_waiting(team, None);
        }
        if taken > from {
            // Taken: the cursor moves past them (another instance that
            // took the team meanwhile may send them again: at least once).
            hold(core, &key, &self.me, Some((version, taken)), now).await?;
        }
        Ok(refused)
    }
}

/// Notes how `team`'s round at `now` went: a refusal is a failed attempt
/// more (tried again after the event webhooks' backoff, or the wait the
/// receiver asked for), one warning each; a round that went through ends
/// the failing.
fn note_round(
    failing: &mut HashMap<String, Failing>,
    team: &str,
    now: Timestamp,
    done: crate::error::Result<Option<Refused>>,
) {
    match done {
        Ok(None) => {
            failing.remove(team);
        }
        Ok(Some((reason, retry_after))) => {
            let f = failing.entry(team.to_string()).or_insert(Failing {
                attempts: 0,
                next: now,
            });
            f.attempts += 1;
            f.next = now.plus(backoff(f.attempts, retry_after));
            tracing::warn!(team = %team, reason, attempts = f.attempts,
                "audit entry not taken by the team's audit webhook: retried with backoff");
        }
        Err(e) => {
            tracing::warn!(team = %team, error = %e, "audit entries not sent to the team's webhook");
        }
    }
}

/// Why a receiver did not take an entry, and the wait it asked for.
type Refused = (String, Option<Duration>);
