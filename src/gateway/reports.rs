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

/// What applying reports found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// No such challenge, or one without a message.
    Unknown,
    /// Applied (or about a ladder step the code has left: nothing changed).
    Taken,
    /// The current step of an open challenge's ladder failed and a later
    /// step may take the code: the caller moves it on.
    Advance,
}

/// Applies `reports` about message `message_id` to challenge `cid` of the
/// interaction in `w`: each moves its delivery state forward only; while
/// the challenge is open, a first arrival and a failure are announced.
///
/// On a delivery ladder (docs/api.md#delivery-ladder) only reports about
/// the current step's message count; a failure with a step left (`has_next`)
/// is not announced but answered [`Applied::Advance`], and an arrival is
/// announced once for the challenge, whichever step it was on.
fn apply(
    w: &mut Work<'_>,
    cid: Uuid,
    message_id: &str,
    reports: &[(DeliveryStatus, Option<DeliveryError>)],
    has_next: bool,
    now: Timestamp,
) -> Applied {
    let Some((c, state)) = w.rec.challenge_at_mut(cid, now) else {
        return Applied::Unknown;
    };
    let Some(mut delivery) = c.delivery_state.clone() else {
        return Applied::Unknown;
    };
    let ladder = c.ladder.as_ref();
    if ladder.is_some_and(|l| !l.is_current_message(message_id)) {
        // An earlier step's message: the ladder has left it
        // (docs/decisions/0075-how-a-ladder-moves.md).
        return Applied::Taken;
    }
    let moves_on = ladder.is_some() && has_next;
    let arrived_before = ladder.is_some_and(|l| l.arrived_before());
    let mut events = Vec::new();
    for (status, error) in reports {
        let moved = delivery.report(*status, error.clone());
        if state != ChallengeState::Open {
            continue;
        }
        // The read after the move, built only for a report announced.
        let challenge = || ReportedChallenge::of(c, state, &delivery);
        match moved {
            Moved::Arrived if !arrived_before => {
                events.push(EventData::ChallengeDelivered(DeliveryReported {
                    challenge: challenge(),
                }))
            }
            Moved::Failed if !moves_on => {
                events.push(EventData::ChallengeUndelivered(DeliveryReported {
                    challenge: challenge(),
                }))
            }
            Moved::Arrived | Moved::Failed | Moved::No | Moved::On => {}
        }
    }
    let advance =
        moves_on && state == ChallengeState::Open && delivery.status == DeliveryStatus::Failed;
    c.delivery_state = Some(delivery);
    for e in events {
        w.emit(e);
    }
    if advance {
        Applied::Advance
    } else {
        Applied::Taken
    }
}

impl Gateway {
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
                    return self
                        .apply_reports(team, i, c, &report.message_id, &one, now)
                        .await;
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

    /// Applies `reports` about `message_id` to challenge `cid` of
    /// interaction `id`, as a unit of work that is nobody's activity, and
    /// moves its ladder on when they failed its current step. Whether it
    /// is known.
    async fn apply_reports(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        message_id: &str,
        reports: &[(DeliveryStatus, Option<DeliveryError>)],
        now: Timestamp,
    ) -> Result<bool> {
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    w.as_announcement();
                    let has_next = self.ladder_has_next(&w.rec, cid, w.settings);
                    let applied = apply(w, cid, message_id, reports, has_next, now);
                    Ok(Step::WriteIfChanged(applied))
                })
            })
            .await;
        match done {
            Ok(done) => {
                self.after_reports(team, id, cid, done.value, now).await?;
                Ok(done.value != Applied::Unknown)
            }
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What applied reports leave to do: a ladder whose current step
    /// failed moves on (docs/api.md#delivery-ladder). A move that cannot
    /// be made (the next destination's send limit, every provider
    /// refusing, the challenge ending meanwhile) leaves the ladder where
    /// it is, its status `failed`.
    async fn after_reports(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        applied: Applied,
        now: Timestamp,
    ) -> Result<()> {
        if applied != Applied::Advance {
            return Ok(());
        }
        let reason = crate::events::types::AdvanceReason::Failed;
        match Box::pin(self.advance_ladder(team, id, cid, reason, now)).await {
            Ok(_) => Ok(()),
            Err(e @ (Error::StoreUnavailable | Error::Internal(_))) => Err(e),
            Err(e) => {
                tracing::info!(team = %team.id, interaction = %id, reason = e.code(), "a failed ladder step could not hand its code on");
                Ok(())
            }
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
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    w.as_announcement();
                    let has_next = self.ladder_has_next(&w.rec, cid, w.settings);
                    let raw = self.store.get(std::slice::from_ref(key)).await?;
                    let read: Loaded<StoredMessage> =
                        Loaded::parse(key.clone(), raw.into_iter().next().flatten())?;
                    let parked: Vec<_> = read
                        .value
                        .iter()
                        .flat_map(|m| m.p.iter())
                        .filter_map(StoredReport::report)
                        .collect();
                    let applied = apply(w, cid, message_id, &parked, has_next, now);
                    let mapped = StoredMessage {
                        i: Some(id),
                        c: Some(cid),
                        p: Vec::new(),
                    };
                    // As long as the interaction may live: receipts keep
                    // moving the status after the challenge ended.
                    let ttl = w.settings.interaction_ttl.get();
                    w.also(put(key, read.version, &mapped, Some(ttl))?);
                    Ok(Step::Write(applied))
                })
            })
            .await?;
        self.after_reports(team, id, cid, done.value, now).await
    }
}
