//! The transactional outbox (CONTRACT 3.9, 3.11): what a state change must
//! tell others — its events, and the chat notices nobody waits for
//! (`authenticated`, `expired`) — is written in the same commit as the
//! change (see [`super::work`]), then delivered from the store by a
//! dispatcher that runs in every instance.
//!
//! The dispatcher claims due items with a lease (an instance that dies
//! mid-delivery leaves its claims to come due again), delivers each, then
//! removes it — or, on failure, reschedules it with backoff: notices for an
//! hour (the contract asks for at least ten minutes), events to the team's
//! webhook for 25 hours (at least 24). Delivery is at-least-once: a message
//! may repeat, with the same id, but is not lost while the store keeps it.
//! An item the gateway cannot read is quarantined (logged once, removed)
//! and never stops the others.
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use super::records::put;
use super::Gateway;
use crate::channels::{Fill, Purpose};
use crate::config::{Team, TeamWebhook};
use crate::domain::interaction::Contact;
use crate::domain::webhook_sig;
use crate::error::Result;
use crate::events::Event;
use crate::store::{keys, Commit, Op};
use crate::time::{Clock, Timestamp};

/// How long an item is kept: past the longest retry window.
pub const ITEM_TTL: Duration = Duration::from_secs(25 * 3600);
/// How long a claim holds before another instance may take the item over.
const LEASE: Duration = Duration::from_secs(30);
/// Items claimed per round trip; delivered [`CONCURRENCY`] at a time, so a
/// batch of slow deliveries (10 s each) ends well within its [`LEASE`].
const BATCH: usize = 16;
const CONCURRENCY: usize = 8;
/// Batches one team's dispatch handles per pass, at most.
const MAX_ROUNDS: usize = 8;
/// How often the dispatcher looks, when nothing wakes it sooner.
const POLL: Duration = Duration::from_millis(250);
/// A notice is retried this long, an event's webhook delivery this long.
const NOTICE_GIVE_UP: Duration = Duration::from_secs(3600);
const EVENT_GIVE_UP: Duration = Duration::from_secs(25 * 3600);
/// Retries are at most this far apart.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Timeout of one webhook delivery.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// A chat notice nobody waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    Authenticated,
    Expired,
}

impl Notice {
    fn purpose(self) -> Purpose {
        match self {
            Notice::Authenticated => Purpose::Authenticated,
            Notice::Expired => Purpose::Expired,
        }
    }
}

/// What an item asks for. Written `{"kind": "event", "event": …}` or
/// `{"kind": "notice", "notice": …, …}`; read through [`RawTask`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawTask")]
pub enum Task {
    /// Publish the event (live stream, history) and POST it to the team's webhook.
    Event { event: Event },
    /// Send a notice into the interaction's chat.
    Notice {
        notice: Notice,
        interaction_id: Uuid,
        channel: String,
        conversation_id: String,
        /// Where an SMS or e-mail conversation's messages go.
        #[serde(default)]
        contact: Contact,
    },
}

/// A [`Task`] as read: the same members, one flat struct. (serde reads an
/// internally tagged enum by buffering the whole object first and reading
/// it again; the dispatcher reads every item it delivers.)
#[derive(Deserialize)]
struct RawTask {
    kind: TaskKind,
    event: Option<Event>,
    notice: Option<Notice>,
    interaction_id: Option<Uuid>,
    channel: Option<String>,
    conversation_id: Option<String>,
    #[serde(default)]
    contact: Contact,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum TaskKind {
    Event,
    Notice,
}

impl TryFrom<RawTask> for Task {
    type Error = &'static str;

    fn try_from(raw: RawTask) -> Result<Self, Self::Error> {
        match raw.kind {
            TaskKind::Event => Ok(Task::Event {
                event: raw.event.ok_or("an event task without its event")?,
            }),
            TaskKind::Notice => match (
                raw.notice,
                raw.interaction_id,
                raw.channel,
                raw.conversation_id,
            ) {
                (Some(notice), Some(interaction_id), Some(channel), Some(conversation_id)) => {
                    Ok(Task::Notice {
                        notice,
                        interaction_id,
                        channel,
                        conversation_id,
                        contact: raw.contact,
                    })
                }
                _ => Err("a notice task without its notice, interaction or chat"),
            },
        }
    }
}

/// One item of the outbox. Holds no code, PIN, token or key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The message id: the same on every attempt.
    pub id: Uuid,
    pub created_at: Timestamp,
    #[serde(default)]
    pub attempts: u32,
    /// The event was published already; only the webhook is left.
    #[serde(default)]
    pub published: bool,
    pub task: Task,
}

impl OutboxItem {
    pub fn new(task: Task, now: Timestamp) -> Self {
        let id = match &task {
            Task::Event { event } => event.id,
            Task::Notice { .. } => Uuid::now_v7(),
        };
        OutboxItem {
            id,
            created_at: now,
            attempts: 0,
            published: false,
            task,
        }
    }
}

/// The ops that put `item` into `team`'s outbox, due at once.
pub fn enqueue(team: &str, item: &OutboxItem, now: Timestamp) -> Result<Vec<Op>> {
    Ok(vec![
        put(&keys::outbox_item(team, item.id), 0, item, Some(ITEM_TTL))?,
        Op::QueueAdd {
            key: keys::outbox(team),
            member: item.id.to_string(),
            score: now.unix_millis(),
            ttl: ITEM_TTL,
        },
    ])
}

/// The wake-up bell of this instance's dispatcher, and its HTTP client.
pub struct Outbox {
    bell: Notify,
    http: reqwest::Client,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Outbox {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Outbox {
            bell: Notify::new(),
            http,
        }
    }

    /// Something was committed: look now rather than at the next poll.
    pub fn wake(&self) {
        self.bell.notify_one();
    }
}

/// The wait before attempt `attempts + 1`: 2 s after the first failure
/// (within the contract's 5 s), then doubling, ±20 % jitter, at most an
/// hour; a provider's `Retry-After` is honoured (within the same cap).
pub fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs(2).saturating_mul(1 << attempts.saturating_sub(1).min(16));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    let wait = base.mul_f64(jitter).max(retry_after.unwrap_or_default());
    wait.min(MAX_BACKOFF)
}

/// Why a delivery did not succeed.
#[derive(Debug)]
struct Failed {
    reason: String,
    retry_after: Option<Duration>,
}

/// Runs this instance's dispatcher until `shutdown` resolves. What it has
/// not delivered stays in the store for the next round, or another instance.
pub async fn run_dispatcher(
    gw: Arc<Gateway>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    // Whether the last pass left due items behind (a team used all its
    // rounds): then the next pass starts at once, not at the next poll.
    let mut behind = false;
    loop {
        if behind {
            tokio::select! {
                biased;
                _ = &mut shutdown => return,
                _ = tokio::task::yield_now() => {}
            }
        } else {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = gw.outbox.bell.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        // Teams side by side: one team's slow webhook never holds up another's.
        let pass = futures::future::join_all(gw.config.teams.values().map(|team| {
            let (gw, clock) = (&gw, &clock);
            async move {
                for _ in 0..MAX_ROUNDS {
                    match gw.dispatch_team(team, clock.as_ref()).await {
                        Ok(n) if n == BATCH => continue,
                        Ok(_) => return false,
                        Err(e) => {
                            tracing::warn!(team = %team.id, error = %e, "outbox round failed; will retry");
                            return false;
                        }
                    }
                }
                true
            }
        }));
        // A stop interrupts a pass: what was claimed comes due again after
        // its lease, for this or another instance.
        tokio::select! {
            _ = &mut shutdown => return,
            left = pass => behind = left.into_iter().any(|more| more),
        }
    }
}

/// What handling one claimed item decided: the ops that remove or
/// reschedule it, and its age when it stays pending.
struct Handled {
    ops: Vec<Op>,
    pending: Option<Duration>,
}

impl Gateway {
    /// Commits `items` on their own (for events of changes that are not an
    /// interaction's unit of work) and wakes the dispatcher.
    pub(super) async fn enqueue_now(
        &self,
        team: &str,
        items: &[OutboxItem],
        now: Timestamp,
    ) -> Result<()> {
        let mut ops = Vec::new();
        for item in items {
            ops.extend(enqueue(team, item, now)?);
        }
        self.store.commit(ops).await?;
        self.outbox.wake();
        Ok(())
    }

    /// Delivers the items of `team` due now, a few at a time, each with the
    /// time it is handled at; returns how many it claimed.
    pub async fn dispatch_team(&self, team: &Team, clock: &dyn Clock) -> Result<usize> {
        let queue = keys::outbox(&team.id);
        let now = clock.now();
        let lease = now.plus(LEASE).unix_millis();
        let claimed = self
            .store
            .index_claim_due(&queue, now.unix_millis(), BATCH, lease)
            .await?;
        let n = claimed.len();
        // The claimed items in one read (one MGET on Redis), not one each.
        let ids: Vec<Option<Uuid>> = claimed
            .iter()
            .map(|e| Uuid::parse_str(&e.member).ok())
            .collect();
        let item_keys: Vec<String> = ids
            .iter()
            .flatten()
            .map(|id| keys::outbox_item(&team.id, *id))
            .collect();
        let mut read = self.store.get(&item_keys).await?.into_iter();
        let loaded: Vec<_> = claimed
            .into_iter()
            .zip(ids)
            .map(|(entry, id)| {
                let item = id.map(|id| (id, read.next().flatten()));
                (entry, item)
            })
            .collect();
        let queue = &queue;
        let handled: Vec<Handled> = futures::stream::iter(loaded)
            .map(|(entry, item)| async move {
                match self.dispatch_item(team, queue, entry, item, clock.now()).await {
                    Ok(handled) => Some(handled),
                    // The claim's lease brings it back.
                    Err(e) => {
                        tracing::warn!(team = %team.id, error = %e, "outbox item not handled; will retry");
                        None
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .filter_map(std::future::ready)
            .collect()
            .await;
        // The batch's removals and reschedules in one commit; should another
        // instance have touched one of its items (a lease that ran out), each
        // item's ops on their own, so the others still land.
        let all: Vec<Op> = handled.iter().flat_map(|h| h.ops.iter().cloned()).collect();
        if self.store.commit(all).await? != Commit::Applied {
            for h in &handled {
                // One item the store refuses does not keep the others back.
                if let Err(e) = self.store.commit(h.ops.clone()).await {
                    tracing::warn!(team = %team.id, error = %e, "outbox item not settled; will retry");
                }
            }
        }
        let oldest = handled
            .iter()
            .filter_map(|h| h.pending)
            .max()
            .unwrap_or_default();
        metrics::gauge!("chatgate_outbox_oldest_pending_seconds", "team" => team.id.clone())
            .set(oldest.as_secs_f64());
        Ok(n)
    }

    /// Handles one claimed item at `now`, as read with its batch (`None`
    /// when its member is not an item id): delivers it and answers the ops
    /// that remove it or, after a failure, reschedule it.
    async fn dispatch_item(
        &self,
        team: &Team,
        queue: &str,
        entry: crate::store::IndexEntry,
        item: Option<(Uuid, Option<crate::store::Versioned>)>,
        now: Timestamp,
    ) -> Result<Handled> {
        let done = |extra: Option<Op>| Handled {
            ops: std::iter::once(Op::IndexRemove {
                key: queue.to_string(),
                member: entry.member.clone(),
            })
            .chain(extra)
            .collect(),
            pending: None,
        };
        let Some((id, raw)) = item else {
            tracing::error!(team = %team.id, "outbox entry is not an item id; dropped");
            return Ok(done(None));
        };
        let key = keys::outbox_item(&team.id, id);
        let Some(raw) = raw else {
            // Delivered by another instance, or expired.
            return Ok(done(None));
        };
        let version = raw.version;
        let delete = |key: String| {
            Some(Op::Delete {
                key,
                expected: version,
            })
        };
        let Ok(mut value) = serde_json::from_str::<OutboxItem>(&raw.value) else {
            // Quarantined: one bad item never stops the others.
            tracing::error!(team = %team.id, item = %id, "outbox item unreadable; dropped");
            metrics::counter!("chatgate_outbox_quarantined_total").increment(1);
            return Ok(done(delete(key)));
        };
        let outcome = self.deliver(team, &mut value, now).await;
        let kind = match value.task {
            Task::Event { .. } => "event",
            Task::Notice { .. } => "notice",
        };
        let failed = match outcome {
            Ok(()) => {
                metrics::counter!("chatgate_outbox_delivered_total", "team" => team.id.clone(), "kind" => kind).increment(1);
                return Ok(done(delete(key)));
            }
            Err(failed) => failed,
        };
        let age = now.since(value.created_at);
        let give_up = match value.task {
            Task::Event { .. } => EVENT_GIVE_UP,
            Task::Notice { .. } => NOTICE_GIVE_UP,
        };
        value.attempts = value.attempts.saturating_add(1);
        metrics::counter!("chatgate_outbox_failed_attempts_total", "team" => team.id.clone(), "kind" => kind).increment(1);
        if age >= give_up {
            tracing::error!(team = %team.id, item = %id, kind, attempts = value.attempts, reason = %failed.reason, "outbox item given up");
            metrics::counter!("chatgate_outbox_given_up_total", "team" => team.id.clone(), "kind" => kind).increment(1);
            return Ok(done(delete(key)));
        }
        let next = now.plus(backoff(value.attempts, failed.retry_after));
        tracing::warn!(team = %team.id, item = %id, kind, attempts = value.attempts, reason = %failed.reason, "outbox delivery failed; will retry");
        let keep = ITEM_TTL.saturating_sub(age).max(Duration::from_secs(1));
        Ok(Handled {
            ops: vec![
                put(&key, version, &value, Some(keep))?,
                Op::QueueAdd {
                    key: queue.to_string(),
                    member: entry.member.clone(),
                    score: next.unix_millis(),
                    ttl: keep,
                },
            ],
            pending: Some(age),
        })
    }

    /// One attempt at one item.
    async fn deliver(
        &self,
        team: &Team,
        item: &mut OutboxItem,
        now: Timestamp,
    ) -> Result<(), Failed> {
        match &item.task {
            Task::Event { event } => {
                if !item.published {
                    self.events.publish(event.clone());
                    item.published = true;
                }
                match &team.webhook {
                    Some(hook) => post_event(&self.outbox.http, hook, event, now).await,
                    None => Ok(()),
                }
            }
            Task::Notice {
                notice,
                interaction_id,
                channel,
                conversation_id,
                contact,
            } => {
                let chat = super::Chat {
                    interaction_id: *interaction_id,
                    channel,
                    conversation_id,
                };
                let to = self.recipient(contact, channel, None);
                self.send_message(
                    team,
                    &chat,
                    channel,
                    to,
                    notice.purpose(),
                    Fill::default(),
                    item.id,
                )
                .await
                .map_err(|e| Failed {
                    reason: e.to_string(),
                    retry_after: None,
                })
            }
        }
    }
}

/// POSTs `event` to the team's webhook, signed by Standard Webhooks with its
/// secret; `webhook-id` is the event id on every attempt, the timestamp
/// fresh. Any 2xx is success.
async fn post_event(
    http: &reqwest::Client,
    hook: &TeamWebhook,
    event: &Event,
    now: Timestamp,
) -> Result<(), Failed> {
    let failed = |reason: String, retry_after| Failed {
        reason,
        retry_after,
    };
    let body =
        serde_json::to_vec(event).map_err(|_| failed("could not encode the event".into(), None))?;
    let id = event.id.to_string();
    let ts = now.unix_seconds();
    let signature = webhook_sig::sign(hook.secret.expose(), &id, ts, &body);
    let response = http
        .post(hook.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(webhook_sig::HEADER_ID, &id)
        .header(webhook_sig::HEADER_TIMESTAMP, ts.to_string())
        .header(webhook_sig::HEADER_SIGNATURE, signature)
        .body(body)
        .send()
        .await
        // reqwest's error text includes the URL, which may carry a secret query.
        .map_err(|e| {
            failed(
                if e.is_timeout() {
                    "timed out"
                } else {
                    "unreachable"
                }
                .into(),
                None,
            )
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(failed(
        format!("answered HTTP {}", status.as_u16()),
        retry_after,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;

    #[test]
    fn tasks_read_back_as_written_and_incomplete_ones_are_refused() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let event = Event::new(
            EventType::ChallengeFailed,
            now,
            "acme",
            &serde_json::json!({"interaction": {"id": "x"}}),
        )
        .unwrap();
        let notice = Task::Notice {
            notice: Notice::Expired,
            interaction_id: Uuid::now_v7(),
            channel: "webchat".into(),
            conversation_id: "c-1".into(),
            contact: Contact {
                phone: Some("+15550100".into()),
                email: None,
            },
        };
        for task in [Task::Event { event }, notice] {
            let item = OutboxItem::new(task, now);
            let json = serde_json::to_string(&item).unwrap();
            let back: OutboxItem = serde_json::from_str(&json).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }
        let written = serde_json::to_value(Task::Notice {
            notice: Notice::Authenticated,
            interaction_id: Uuid::nil(),
            channel: "sms".into(),
            conversation_id: "c".into(),
            contact: Contact::default(),
        })
        .unwrap();
        assert_eq!(written["kind"], "notice");
        assert_eq!(written["notice"], "authenticated");
        for bad in [
            r#"{"kind":"event"}"#,
            r#"{"kind":"notice","notice":"expired","channel":"sms","conversation_id":"c"}"#,
            r#"{"kind":"other"}"#,
        ] {
            assert!(serde_json::from_str::<Task>(bad).is_err(), "{bad}");
        }
    }
}
