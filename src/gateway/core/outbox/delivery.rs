//! Delivering one claimed item: its event's webhook POST or its chat
//! notice, and the ops that then remove it or reschedule it with backoff.
use std::time::Duration;

use super::health::Receiver;
use super::{
    backoff, Claimed, Handled, OutboxItem, Task, EVENT_GIVE_UP, NOTICE_GIVE_UP, WEBHOOK_TIMEOUT,
};
use crate::channels::webhook::{post_signed, PostFailed};
use crate::channels::Fill;
use crate::config::{Team, TeamWebhook};
use crate::error::Result;
use crate::events::Event;
use crate::gateway::core::Core;
use crate::outbound::{Refused, Unbuilt};
use crate::time::Timestamp;

/// Why a delivery did not succeed.
#[derive(Debug)]
struct Failed {
    reason: String,
    retry_after: Option<Duration>,
    /// Never to be sent: a notice to a phone number the SMS rules refuse.
    refused: bool,
}

/// Who an item of `kind` goes to: the team's webhook or chat channel `name`.
fn receiver(team: &Team, kind: &'static str, name: &str) -> Receiver {
    Receiver {
        team: team.id.clone(),
        kind,
        name: name.to_string(),
    }
}

/// POSTs `event` to the team's webhook, signed with its secret;
/// `webhook-id` is the event id on every attempt, the timestamp fresh.
async fn post_event(
    http: Result<&reqwest::Client, Unbuilt>,
    hook: &TeamWebhook,
    event: &Event,
    now: Timestamp,
) -> Result<(), Failed> {
    let failed = |reason: String, retry_after| Failed {
        reason,
        retry_after,
        refused: false,
    };
    let body =
        serde_json::to_vec(event).map_err(|_| failed("could not encode the event".into(), None))?;
    let id = event.id.to_string();
    let http = http.map_err(|e| failed(e.to_string(), None))?;
    let sent = post_signed(http, &hook.url, &hook.key, &id, now, body, WEBHOOK_TIMEOUT).await;
    sent.map_err(|e| match e {
        PostFailed::TimedOut => failed("timed out".into(), None),
        PostFailed::Unreachable => failed("unreachable".into(), None),
        PostFailed::Refused => failed(format!("/webhook/url {Refused}"), None),
        PostFailed::Status(status, retry_after) => {
            failed(format!("answered HTTP {status}"), retry_after)
        }
    })
}

/// Delivers one item at `now` and answers the ops that remove it or,
/// after a failure, reschedule it.
pub(super) async fn settle_item(
    core: &Core,
    team: &Team,
    queue: &str,
    claimed: Claimed,
    now: Timestamp,
) -> Result<Handled> {
    let Claimed {
        stored,
        item: mut value,
        ..
    } = claimed;
    let id = value.id;
    let outcome = deliver(core, team, &value, now).await;
    let (to, give_up) = match &value.task {
        Task::Event { .. } => (receiver(team, "event", "webhook"), EVENT_GIVE_UP),
        Task::Notice { channel, .. } => (receiver(team, "notice", channel), NOTICE_GIVE_UP),
    };
    let (kind, health) = (to.kind, &core.outbox.health);
    let failed = match outcome {
        Ok(()) => {
            metrics::counter!("chatgate_outbox_delivered_total", "team" => team.id.clone(), "kind" => kind).increment(1);
            health.settled(&to, id, true, now);
            let mut done = Handled::removed(stored.take_out(queue));
            done.delivered = true;
            return Ok(done);
        }
        Err(failed) => failed,
    };
    if failed.refused {
        // One line, naming the rule, never the number.
        tracing::warn!(team = %team.id, item = %id, kind, reason = %failed.reason, "notice dropped: the SMS rules refuse its recipient");
        return Ok(Handled::removed(stored.take_out(queue)));
    }
    let age = now.since(value.created_at);
    value.attempts = value.attempts.saturating_add(1);
    metrics::counter!("chatgate_outbox_failed_attempts_total", "team" => team.id.clone(), "kind" => kind).increment(1);
    if age >= give_up {
        tracing::error!(team = %team.id, item = %id, kind, attempts = value.attempts, reason = %failed.reason, "outbox item given up");
        metrics::counter!("chatgate_outbox_given_up_total", "team" => team.id.clone(), "kind" => kind).increment(1);
        health.settled(&to, id, false, now);
        return Ok(Handled::removed(stored.take_out(queue)));
    }
    let next = now.plus(backoff(value.attempts, failed.retry_after));
    health.failed(&to, id, value.created_at, next, &failed.reason, now);
    Ok(Handled {
        ops: stored.replace(queue, &value, next)?,
        delivered: false,
        unlogged: None,
    })
}

/// One attempt at one item (an event is published before: only its
/// webhook is left).
async fn deliver(
    core: &Core,
    team: &Team,
    item: &OutboxItem,
    now: Timestamp,
) -> Result<(), Failed> {
    match &item.task {
        Task::Event { event, .. } => match &team.webhook {
            Some(hook) => {
                let http = core
                    .outbox
                    .http
                    .of(core.config().reach_of(team.api.is_some()));
                post_event(http, hook, event, now).await
            }
            None => Ok(()),
        },
        Task::Notice {
            notice,
            interaction_id,
            channel,
            conversation_id,
            contact,
            locale,
        } => {
            let chat = crate::gateway::core::Chat {
                interaction_id: *interaction_id,
                channel,
                conversation_id,
                locale: locale.as_deref(),
            };
            let to = core
                .recipient(team, &chat, contact, channel, None)
                .map_err(|e| Failed {
                    reason: e.to_string(),
                    retry_after: None,
                    refused: true,
                })?;
            core.send_message(
                team,
                &chat,
                channel,
                to,
                notice.purpose(),
                Fill::default(),
                item.id,
                None,
                now,
            )
            .await
            .map(|_| ())
            .map_err(|e| Failed {
                reason: e.to_string(),
                retry_after: None,
                refused: false,
            })
        }
    }
}
