//! What the providers' delivery reports do (docs/api.md#delivery-status):
//! a message id leads to the challenge whose message it is, and each report
//! moves that challenge's delivery status forward, through the unit of
//! work, emitting `challenge.delivered` / `challenge.undelivered` while the
//! challenge is open.
//!
//! The provider's message id is known once the send answered, and its
//! first receipt may come before that answer is written here. So the
//! record under the message id (`keys::message`) holds either the
//! challenge it leads to, or the reports that came before it did (parked),
//! and both sides change that one record with a version check: a report
//! either finds the challenge or is parked where the write of the
//! challenge finds it (docs/decisions/0058-message-ids-and-early-receipts.md).
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::receipts::{Receipt, Report};
use super::records::{put, Loaded};
use super::work::{Step, Work};
use super::Gateway;
use crate::config::Team;
use crate::domain::challenge::ChallengeState;
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Moved};
use crate::error::{Error, Result};
use crate::events::types::{DeliveryReported, ReportedChallenge};
use crate::events::EventData;
use crate::store::{keys, Commit};
use crate::time::Timestamp;

/// How long reports about a message not yet known are kept for the write
/// that makes it known (the time a send takes to be answered, with room).
const PARKED_FOR: Duration = Duration::from_secs(600);

/// A message id longer than this names no message the gateway sent.
const MAX_MESSAGE_ID: usize = 256;

/// Tries of a report against concurrent writes of its message's record.
const TRIES: usize = 16;

/// The record under a message id, as stored: the interaction and challenge
/// it leads to, once known, and the reports that came before.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    p: Vec<StoredReport>,
}

impl super::records::Record for StoredMessage {}

/// A parked report: its status's name, and the provider's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredReport {
    s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    et: Option<String>,
}

impl StoredReport {
    fn of(r: &Report) -> Self {
        StoredReport {
            s: r.status.as_str().to_string(),
            ec: r.error.as_ref().map(|e| e.code.clone()),
            et: r.error.as_ref().and_then(|e| e.title.clone()),
        }
    }

    /// The report, if its status is one this gateway names.
    fn report(&self) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
        let status = DeliveryStatus::parse(&self.s)?;
        let error = self.ec.clone().map(|code| DeliveryError {
            code,
            title: self.et.clone(),
        });
        Some((status, error))
    }
}

/// Applies `reports` to challenge `cid` of the interaction in `w`: each
/// moves its delivery state forward only; while the challenge is open, a
/// first arrival and a failure are announced. Whether the challenge is
/// known (with a message).
fn apply(
    w: &mut Work<'_>,
    cid: Uuid,
    reports: &[(DeliveryStatus, Option<DeliveryError>)],
    now: Timestamp,
) -> bool {
    let Some((c, state)) = w.rec.challenge_at_mut(cid, now) else {
        return false;
    };
    let Some(mut delivery) = c.delivery_state.clone() else {
        return false;
    };
    let mut events = Vec::new();
    for (status, error) in reports {
        let moved = delivery.report(*status, error.clone());
        if state != ChallengeState::Open {
            continue;
        }
        let challenge = ReportedChallenge::of(c, state, &delivery);
        match moved {
            Moved::Arrived => events.push(EventData::ChallengeDelivered(DeliveryReported {
                challenge,
            })),
            Moved::Failed => events.push(EventData::ChallengeUndelivered(DeliveryReported {
                challenge,
            })),
            Moved::No | Moved::On => {}
        }
    }
    c.delivery_state = Some(delivery);
    for e in events {
        w.emit(e);
    }
    true
}

impl Gateway {
    /// Applies signed `reports` about messages `channel` sent to the
    /// challenges that sent them, at the clock's time (for callers without
    /// a request's own `now`; see [`Gateway::take_reports_at`]).
    pub async fn take_reports(&self, channel: &str, reports: Vec<Report>) -> Result<Receipt> {
        use crate::time::{Clock, SystemClock};
        self.take_reports_at(channel, reports, SystemClock.now())
            .await
    }

    /// Applies signed `reports` about messages `channel` sent to the
    /// challenges that sent them: `Taken` when one of them named a message
    /// the gateway knows. A report about a message not (yet) known is
    /// parked for the write that makes it known.
    pub async fn take_reports_at(
        &self,
        channel: &str,
        reports: Vec<Report>,
        now: Timestamp,
    ) -> Result<Receipt> {
        let config = std::sync::Arc::clone(&self.config);
        let teams: Vec<&Team> = config
            .teams
            .values()
            .filter(|t| t.uses_channel(channel))
            .collect();
        let mut receipt = Receipt::Unknown;
        for report in &reports {
            if report.message_id.is_empty() || report.message_id.len() > MAX_MESSAGE_ID {
                continue;
            }
            if self.take_report(&teams, channel, report, now).await? {
                receipt = Receipt::Taken;
            }
        }
        Ok(receipt)
    }

    /// One report: applied to the challenge its message id leads to, or
    /// parked under that id in every team that lists the channel. Whether
    /// it was applied.
    async fn take_report(
        &self,
        teams: &[&Team],
        channel: &str,
        report: &Report,
        now: Timestamp,
    ) -> Result<bool> {
        'again: for _ in 0..TRIES {
            let mut unmapped = Vec::with_capacity(teams.len());
            // One read per team: their keys live in different slots.
            for team in teams {
                let key = keys::message(&team.id, channel, &report.message_id);
                let raw = self.store.get(std::slice::from_ref(&key)).await?;
                let read: Loaded<StoredMessage> =
                    Loaded::parse(key, raw.into_iter().next().flatten())?;
                if let Some((i, c)) = read.value.as_ref().and_then(|m| m.i.zip(m.c)) {
                    let one = [(report.status, report.error.clone())];
                    return self.apply_reports(team, i, c, &one, now).await;
                }
                unmapped.push((team, read));
            }
            for (_, read) in unmapped {
                let mut parked = read.value.unwrap_or_default();
                let stored = StoredReport::of(report);
                if !parked.p.contains(&stored) {
                    parked.p.push(stored);
                }
                let op = put(&read.key, read.version, &parked, Some(PARKED_FOR))?;
                if let Commit::Conflict { .. } = self.store.commit(vec![op]).await? {
                    continue 'again;
                }
            }
            return Ok(false);
        }
        Err(Error::StoreUnavailable)
    }

    /// Applies `reports` to challenge `cid` of interaction `id`, as a
    /// unit of work that is nobody's activity. Whether it is known.
    async fn apply_reports(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        reports: &[(DeliveryStatus, Option<DeliveryError>)],
        now: Timestamp,
    ) -> Result<bool> {
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    w.as_announcement();
                    let known = apply(w, cid, reports, now);
                    Ok(Step::WriteIfChanged(known))
                })
            })
            .await;
        match done {
            Ok(done) => Ok(done.value),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remembers that challenge `cid` of interaction `id` sent its message
    /// through `channel` as the provider's `message_id`, and applies the
    /// reports that came before, in one commit.
    pub(super) async fn remember_message(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        channel: &str,
        message_id: &str,
        now: Timestamp,
    ) -> Result<()> {
        if message_id.len() > MAX_MESSAGE_ID {
            return Ok(());
        }
        let key = keys::message(&team.id, channel, message_id);
        let key = &key;
        self.transact(team, id, now, |w| {
            Box::pin(async move {
                w.as_announcement();
                let raw = self.store.get(std::slice::from_ref(key)).await?;
                let read: Loaded<StoredMessage> =
                    Loaded::parse(key.clone(), raw.into_iter().next().flatten())?;
                let parked: Vec<_> = read
                    .value
                    .iter()
                    .flat_map(|m| m.p.iter())
                    .filter_map(StoredReport::report)
                    .collect();
                apply(w, cid, &parked, now);
                let mapped = StoredMessage {
                    i: Some(id),
                    c: Some(cid),
                    p: Vec::new(),
                };
                // As long as the interaction may live: receipts keep
                // moving the status after the challenge ended.
                let ttl = w.settings.interaction_ttl.get();
                w.also(put(key, read.version, &mapped, Some(ttl))?);
                Ok(Step::Write(()))
            })
        })
        .await
        .map(|_| ())
    }
}
