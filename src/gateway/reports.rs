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

use uuid::Uuid;

use super::records::{Loaded, StoredMessage, StoredReport};
use super::work::{Step, Work};
use super::writes::Writes;
use super::Core;
use super::{change, doors};
use crate::config::Team;
use crate::domain::challenge::ChallengeState;
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Moved, Report};
use crate::error::{Error, Result};
use crate::events::types::{DeliveryReported, ReportedChallenge};
use crate::events::EventData;
use crate::store::keys;
use crate::time::Timestamp;

/// How long reports about a message not yet known are kept for the write
/// that makes it known (the time a send takes to be answered, with room).
const PARKED_FOR: Duration = Duration::from_secs(600);

/// A message id longer than this names no message the gateway sent.
const MAX_MESSAGE_ID: usize = 256;

/// What a signed receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// It names a message the gateway does not know (or no longer
    /// remembers): answered 200 so the provider does not retry.
    Unknown,
    /// It named a message the gateway sent; its status moved forward, or
    /// already stood there.
    Taken,
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
    let ladder = c.ladder();
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

/// The first reading of a call's code (`message_id`, the call's sid) on
/// challenge `cid` of the interaction in `w`: its message arrived
/// (docs/api.md#codes-read-by-a-voice-call), as a receipt would say.
pub(super) fn arrived_by_voice(
    core: &Core,
    w: &mut Work<'_>,
    cid: Uuid,
    message_id: &str,
    now: Timestamp,
) {
    let has_next = ladder_has_next(core, &w.rec, cid, w.settings);
    let delivered = [(DeliveryStatus::Delivered, None)];
    apply(w, cid, message_id, &delivered, has_next, now);
}

/// What one report leaves to do once applied.
pub(super) struct Taken<'t> {
    /// It named a message the gateway knows.
    pub known: bool,
    /// The current step of a ladder failed and a later one can take the
    /// code: the caller moves the ladder on (docs/api.md#delivery-ladder).
    pub failed_step: Option<FailedStep<'t>>,
}

/// A ladder whose current step failed, to be moved on.
pub(super) struct FailedStep<'t> {
    pub team: &'t Team,
    pub interaction: Uuid,
    pub challenge: Uuid,
}

impl<'t> FailedStep<'t> {
    fn after(applied: Applied, team: &'t Team, interaction: Uuid, challenge: Uuid) -> Option<Self> {
        (applied == Applied::Advance).then_some(FailedStep {
            team,
            interaction,
            challenge,
        })
    }
}

/// Whether `report` can name a message the gateway sent at all.
pub(super) fn names_a_message(report: &Report) -> bool {
    !report.message_id.is_empty() && report.message_id.len() <= MAX_MESSAGE_ID
}

/// One report: applied to the challenge its message id leads to, or
/// parked under that id in every team that lists the channel.
pub(super) async fn take_report<'t>(
    core: &Core,
    teams: &[&'t Team],
    channel: &str,
    report: &Report,
    now: Timestamp,
) -> Result<Taken<'t>> {
    let mut unmapped = Vec::with_capacity(teams.len());
    // One read per team: their keys live in different slots.
    for team in teams {
        let key = keys::message(&team.keyspace, channel, &report.message_id);
        let read = change::read(core, std::slice::from_ref(&key)).await?;
        if let Some((i, c)) = mapped(&read.get(&key)?) {
            return apply_one(core, team, (i, c), report, now).await;
        }
        unmapped.push((*team, key, read));
    }
    let stored = StoredReport::of(report);
    for (team, key, read) in unmapped {
        // Parked on what was read; mapped meanwhile (read again after
        // another writer), it is applied there instead.
        let parked = change::on(core, &team.keyspace, read, now, |c| {
            let read = c.read::<StoredMessage>(&key)?;
            if let Some(found) = mapped(&read) {
                return Ok(Step::Answer(Some(found)));
            }
            let mut parked = read.value.clone().unwrap_or_default();
            if !parked.p.contains(&stored) {
                parked.p.push(stored.clone());
            }
            c.put(&read, &parked, Some(PARKED_FOR))?;
            Ok(Step::Write(None))
        });
        if let Some(found) = parked.await? {
            return apply_one(core, team, found, report, now).await;
        }
    }
    Ok(Taken {
        known: false,
        failed_step: None,
    })
}

/// The interaction and challenge a message's record names, once its send
/// was remembered.
fn mapped(read: &Loaded<StoredMessage>) -> Option<(Uuid, Uuid)> {
    read.value.as_ref().and_then(|m| m.i.zip(m.c))
}

/// `report` applied to challenge `cid` of interaction `id` of `team`.
async fn apply_one<'t>(
    core: &Core,
    team: &'t Team,
    (id, cid): (Uuid, Uuid),
    report: &Report,
    now: Timestamp,
) -> Result<Taken<'t>> {
    let one = [(report.status, report.error.clone())];
    apply_reports(core, team, id, cid, &report.message_id, &one, now).await
}

/// Applies `reports` about `message_id` to challenge `cid` of
/// interaction `id`, as a unit of work that is nobody's activity.
async fn apply_reports<'t>(
    core: &Core,
    team: &'t Team,
    id: Uuid,
    cid: Uuid,
    message_id: &str,
    reports: &[(DeliveryStatus, Option<DeliveryError>)],
    now: Timestamp,
) -> Result<Taken<'t>> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                w.as_announcement();
                let has_next = ladder_has_next(core, &w.rec, cid, w.settings);
                let applied = apply(w, cid, message_id, reports, has_next, now);
                Ok(Step::WriteIfChanged(applied))
            })
        })
        .await;
    match done {
        Ok(done) => Ok(Taken {
            known: done.value != Applied::Unknown,
            failed_step: FailedStep::after(done.value, team, id, cid),
        }),
        Err(Error::NotFound(_)) => Ok(Taken {
            known: false,
            failed_step: None,
        }),
        Err(e) => Err(e),
    }
}

/// Remembers that challenge `cid` of interaction `id` sent its message
/// through `channel` as the provider's `message_id`, and applies the
/// reports that came before, in one commit. A ladder step they failed
/// is the caller's to move on.
pub(super) async fn remember_message<'t>(
    core: &Core,
    team: &'t Team,
    id: Uuid,
    cid: Uuid,
    channel: &str,
    message_id: &str,
    now: Timestamp,
) -> Result<Option<FailedStep<'t>>> {
    if message_id.len() > MAX_MESSAGE_ID {
        return Ok(None);
    }
    let key = keys::message(&team.keyspace, channel, message_id);
    let key = &key;
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                w.as_announcement();
                let has_next = ladder_has_next(core, &w.rec, cid, w.settings);
                let read: Loaded<StoredMessage> = doors::read(core, key).await?;
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
                w.put(&read, &mapped, Some(ttl))?;
                Ok(Step::Write(applied))
            })
        })
        .await?;
    Ok(FailedStep::after(done.value, team, id, cid))
}

/// Whether challenge `cid` of `rec` has a ladder with a step after the
/// current one that could take its code (settings `s`).
pub(super) fn ladder_has_next(
    core: &Core,
    rec: &crate::domain::interaction::InteractionRecord,
    cid: Uuid,
    s: &crate::config::Settings,
) -> bool {
    let Some(l) = rec
        .challenge
        .as_ref()
        .filter(|c| c.id == cid)
        .and_then(|c| c.ladder())
    else {
        return false;
    };
    crate::domain::ladder::targets(&l.steps, l.later_steps(), |ch| core.reach(ch), &s.otp, rec)
        .is_ok()
}
