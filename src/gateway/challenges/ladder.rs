//! The delivery ladder (docs/api.md#delivery-ladder): an OTP whose one
//! code goes out on the team's `otp.ladder` steps in turn.
//!
//! Which steps may take the code is `domain::ladder`'s. Here: the start
//! (one challenge, then each step's destination counted as it is tried, a
//! provider's refusal passing on to the next step at once), the move to
//! the next step ([`Core::advance_ladder`]: on request, on a step's
//! time-out from the due queue, on a `failed` report), and the withdrawal
//! of a message the customer no longer needs.
use std::sync::Arc;

use uuid::Uuid;

use super::read::ChallengeView;
use super::read::StartedChallenge;
use crate::channels::{ChannelError, Fill, Purpose, Sent};
use crate::config::Team;
use crate::domain::challenge::{ChallengeState, Delivery};
use crate::domain::delivery_status::{DeliveryState, DeliveryStatus};
use crate::domain::interaction::InteractionRecord;
use crate::domain::ladder::{self, still_open, Ladder, SentStep, StepRecord, Target};
use crate::domain::otp::{self, OtpCode};
use crate::domain::reveal;
use crate::domain::start_challenge::{ChallengeRequest, Started};
use crate::error::{Error, Result};
use crate::events::types::{AdvanceReason, ChallengeAdvanced, DeliveryReported, ReportedChallenge};
use crate::events::EventData;
use crate::gateway::polls::{Ask, Polls};
use crate::gateway::records::{put, retry, StoredSends};
use crate::gateway::reports::{self, FailedStep};
use crate::gateway::work::Step;
use crate::gateway::{Core, InteractionView};
use crate::store::{keys, Commit, Op};
use crate::time::{Clock, Timestamp};

/// The due-queue entry kind of ladders' step time-outs:
/// `l:<interaction>:<challenge>`.
pub(in crate::gateway) const KIND: &str = "l";

/// The due-queue member of challenge `cid` of interaction `id`: its
/// current step's time-out (`l:<interaction>:<challenge>`).
pub fn due_member(id: Uuid, cid: Uuid) -> String {
    format!("l:{id}:{cid}")
}

/// The interaction and challenge a due-queue member names, if it is a
/// ladder's (`l:<interaction>:<challenge>`).
pub fn parse_due_member(member: &str) -> Option<(Uuid, Uuid)> {
    let rest = member.strip_prefix("l:")?;
    let (id, cid) = rest.split_once(':')?;
    Some((Uuid::parse_str(id).ok()?, Uuid::parse_str(cid).ok()?))
}

/// When a time-out whose move the store failed is due again.
const TIME_OUT_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// A step's message, sent.
struct Took {
    target: Target,
    sent: Sent,
    /// The key its destination's send was counted under.
    dkey: String,
}

impl Took {
    /// The step it was, sent at `now`.
    fn step(&self, now: Timestamp) -> SentStep {
        SentStep {
            index: self.target.index,
            channel: self.target.channel.clone(),
            destination: self.target.destination.clone(),
            message_id: self.sent.message_id.clone(),
            sent_at: now,
            left_at: None,
        }
    }
}

/// `POST /v1/interactions/{id}/challenges` with `delivery: "ladder"`:
/// one challenge, sent on the first step that takes it.
pub(in crate::gateway) async fn start_ladder(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<StartedChallenge> {
    let cid = Uuid::now_v7();
    let (rec, started, code, targets) = open_ladder(core, team, id, cid, req, now).await?;
    // 2. Send on the first step that takes it.
    let expires_at = started.expires_at;
    let allowance = started.allowance.as_deref();
    let sending = send_on_steps(
        core, team, id, &rec, &targets, &code, expires_at, false, allowance, now,
    );
    let took = match sending.await {
        Ok(took) => took,
        Err(e) => {
            // No destination of its own (each step's was given back as it
            // failed): the previous challenge and the subject's send come back.
            super::destinations::undo_challenge(core, team, id, cid, &started, now).await?;
            return Err(e);
        }
    };
    // 3. Record where it went, and when it moves on.
    let done = record_step(core, team, id, cid, None, &took, now)
        .await?
        .ok_or(Error::ChallengeExpired)?;
    super::announce(core, team, &done.rec, cid, &started, Delivery::Ladder, now).await?;
    remember_step(core, team, id, cid, &took, now).await;
    let step = Some(took.target.channel.clone());
    let accepted = DeliveryState::accepted();
    let answer = StartedChallenge::of(cid, &started, Delivery::Ladder, step, true, Some(&accepted));
    Ok(answer)
}

/// Opens the ladder's challenge (the subject's send counted), or refuses:
/// the interaction as committed, the challenge, its code and the steps
/// that may take it.
async fn open_ladder(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<(InteractionRecord, Started, OtpCode, Vec<Target>)> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let s = w.settings;
                if s.otp.ladder.is_empty() {
                    return Err(Error::invalid("delivery", "the team has no otp.ladder"));
                }
                let steps = s.otp.ladder.clone();
                let targets =
                    ladder::targets(&steps, 0..steps.len(), |c| core.reach(c), &s.otp, &w.rec)?;
                let code = otp::generate(s.otp.length);
                let started = super::decide(core, team, w, req, cid, &code, now)?;
                let sealed_code = reveal::seal(&code, cid, &core.pepper)?;
                if let Some(c) = w.rec.challenge.as_mut() {
                    c.ladder = Some(Ladder {
                        steps,
                        sent: Vec::new(),
                        sealed_code,
                    });
                }
                Ok(Step::Write((started, code, targets)))
            })
        })
        .await?;
    let (started, code, targets) = done.value;
    Ok((done.rec, started, code, targets))
}

/// Moves challenge `cid` of interaction `id` on to the next step of
/// its ladder at once, for `reason`, and answers its read: the same
/// code, the same attempts. The one place every move goes through —
/// the bot's request, a step's time-out, and a `failed` report about
/// the current step's message.
///
/// 409 `no_next_step` (no step left that can take it, or no ladder),
/// 409 `challenge_used`, 410 `challenge_exhausted` / `challenge_expired`;
/// 429 when the next step's destination has used its send limit, 502
/// when every step left refused the message — in each case the ladder
/// stays where it is. A time-out that finds the step delivered, or no
/// longer due, changes nothing (answered as `no_next_step`).
pub async fn advance_ladder(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    reason: AdvanceReason,
    now: Timestamp,
) -> Result<ChallengeView> {
    // 1. Where it stands, and which steps may take the code next.
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    let s = team.settings_for(&rec.channel);
    let (c, state) = rec
        .challenge_at(cid, now)
        .ok_or(Error::NotFound("no such challenge"))?;
    let timed_out = reason == AdvanceReason::Timeout;
    let targets = ladder::next_move(c, state, timed_out, |ch| core.reach(ch), &s.otp, rec, now)?;
    let Some(l) = c.ladder.as_ref() else {
        return Err(Error::internal("a ladder's move found no ladder"));
    };
    let current = l.current().cloned();
    let code = reveal::open(&l.sealed_code, cid, &core.pepper)?;
    let expires_at = c.expires_at;
    // 2. Send on the next step that takes it (the first must be
    // within its send limit).
    // Whose allowance at each step's destination the move uses.
    let origin = rec.lockout_origin(s);
    let allowance = pair.subject_or_new()?.allowance_of(origin.as_deref(), now);
    let allowance = allowance.as_deref();
    let sending = send_on_steps(
        core, team, id, rec, &targets, &code, expires_at, true, allowance, now,
    );
    let took = sending.await?;
    // 3. Record the move; the previous step's message is withdrawn.
    let previous = current.as_ref().map(|p| p.channel.clone());
    let done = record_step(core, team, id, cid, current.as_ref(), &took, now).await?;
    let Some(done) = done else {
        return lost_move(core, team, id, cid, &took, now).await;
    };
    if let Some(p) = &current {
        if let Some(m) = &p.message_id {
            core.channels.revoke(&p.channel, m).await;
        }
    }
    let (c, state) = done
        .rec
        .challenge_at(cid, now)
        .ok_or(Error::NotFound("no such challenge"))?;
    let read = ChallengeView::of(c, state);
    let challenge = serde_json::to_value(&read)
        .map_err(|e| Error::internal_from("a challenge read could not be encoded", e))?;
    let advanced = EventData::ChallengeAdvanced(ChallengeAdvanced {
        challenge,
        previous_channel: previous.unwrap_or_default(),
        reason,
    });
    let interaction =
        InteractionView::build(&done.rec, None, team.settings_for(&done.rec.channel), now);
    core.emit(advanced, now, &interaction).await?;
    metrics::counter!("chatgate_ladder_advances_total", "reason" => reason.as_str()).increment(1);
    // Reports that came first may move it on again (boxed, for the
    // recursion); the answer is the read as of this move.
    Box::pin(remember_step(core, team, id, cid, &took, now)).await;
    Ok(read)
}

/// A move whose code went out on `took`'s step while the challenge
/// ended, or another move (a report, a time-out, a second request)
/// took it on first: this one did not happen. Its destination's count
/// is given back and its message withdrawn where the step can; the
/// answer is where the challenge stands now — its read while it is
/// still open (the ladder moved), else 409 `challenge_used` or 410.
async fn lost_move(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    took: &Took,
    now: Timestamp,
) -> Result<ChallengeView> {
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    give_back_destination(core, &took.dkey, team.settings_for(&rec.channel), now).await?;
    if let Some(m) = &took.sent.message_id {
        core.channels.revoke(&took.target.channel, m).await;
    }
    tracing::info!(team = %team.id, interaction = %id, step = %took.target.channel, "a ladder move lost to another; its send is given back");
    let (c, state) = rec
        .challenge_at(cid, now)
        .ok_or(Error::NotFound("no such challenge"))?;
    still_open(state)?;
    Ok(ChallengeView::of(c, state))
}

/// Remembers that `took`'s message is challenge `cid`'s, so that its
/// receipts find it (docs/api.md#delivery-receipts), and applies the
/// reports that came before; after the step's event, so that they are
/// announced after it. Best effort: the code went out, and the
/// challenge stands without its receipts.
async fn remember_step(core: &Core, team: &Team, id: Uuid, cid: Uuid, took: &Took, now: Timestamp) {
    let Some(message_id) = took.sent.message_id.as_deref() else {
        return;
    };
    let channel = &took.target.channel;
    let remembered = reports::remember_message(core, team, id, cid, channel, message_id, now).await;
    let moved = match remembered {
        // A report that came before the send's answer failed the step.
        Ok(Some(step)) => move_on_failure(core, step, now).await,
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = moved {
        tracing::warn!(error = %e, "a ladder step's message id could not be remembered");
    }
}

/// A ladder whose current step a delivery report failed moves on
/// (docs/api.md#delivery-ladder). A move that cannot
/// be made (the next destination's send limit, every provider
/// refusing, the challenge ending meanwhile) leaves the ladder where
/// it is, its status `failed`.
pub(in crate::gateway) async fn move_on_failure(
    core: &Core,
    step: FailedStep<'_>,
    now: Timestamp,
) -> Result<()> {
    let FailedStep {
        team,
        interaction: id,
        challenge: cid,
    } = step;
    let reason = crate::events::types::AdvanceReason::Failed;
    match Box::pin(advance_ladder(core, team, id, cid, reason, now)).await {
        Ok(_) => Ok(()),
        Err(e @ (Error::StoreUnavailable | Error::Internal(_))) => Err(e),
        Err(e) => {
            tracing::info!(team = %team.id, interaction = %id, reason = e.code(), "a failed ladder step could not hand its code on");
            announce_undelivered(core, team, id, cid, now).await
        }
    }
}

/// A failed step whose code could not move on: while the challenge is
/// open and its current step's status is `failed`, the bot hears
/// `challenge.undelivered` (docs/api.md#delivery-ladder), as it does for
/// a failed message with no step after it.
async fn announce_undelivered(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    now: Timestamp,
) -> Result<()> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                w.as_announcement();
                let Some(event) = undelivered(&w.rec, cid, now) else {
                    return Ok(Step::Answer(()));
                };
                w.emit(event);
                Ok(Step::Write(()))
            })
        })
        .await;
    match done {
        Ok(_) | Err(Error::NotFound(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `challenge.undelivered` for challenge `cid` of `rec`, if it is open and
/// its current step failed.
fn undelivered(rec: &InteractionRecord, cid: Uuid, now: Timestamp) -> Option<EventData> {
    let (c, state) = rec.challenge_at(cid, now)?;
    let delivery = c.delivery_state.as_ref()?;
    let failed = state == ChallengeState::Open && delivery.status == DeliveryStatus::Failed;
    failed.then(|| {
        EventData::ChallengeUndelivered(DeliveryReported {
            challenge: ReportedChallenge::of(c, state, delivery),
        })
    })
}

/// The sweeper's turn at a ladder's due-queue entry `entry` (for
/// challenge `cid` of interaction `id`): its current step timed out.
/// The entry is taken off the queue — of several instances, only the
/// one holding its lease does — and the move is handed to the poller,
/// which sends on the next step beside the sweep: no provider's round
/// trip holds up a time-out. A full poller leaves the entry at its
/// lease, due again. Never sends itself.
pub(in crate::gateway) async fn claim_ladder_due(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    entry: Op,
    polls: &Polls,
) -> Result<()> {
    let Some(slot) = polls.slot() else {
        tracing::debug!(team = %team.id, "ladder time-out left for the next sweep: the poller is full");
        return Ok(());
    };
    core.store.commit(vec![entry]).await?;
    slot.hand(Ask::LadderTimeOut {
        team: team.id.clone(),
        interaction: id,
        challenge: cid,
    });
    Ok(())
}

/// The poller's move of a step that timed out. A move schedules its
/// own entry anew; one that cannot be made (delivered, ended, no step
/// left, the next destination's limit used up, every provider
/// refusing) leaves the ladder where it is. A store that fails puts the
/// entry back, due again in a few seconds.
pub(in crate::gateway) async fn time_out_step(
    core: &Core,
    team_id: &str,
    id: Uuid,
    cid: Uuid,
    clock: &dyn Clock,
) {
    let Some(team) = core.config.teams.get(team_id) else {
        return;
    };
    let now = clock.now();
    match advance_ladder(core, team, id, cid, AdvanceReason::Timeout, now).await {
        Ok(_) => {}
        Err(Error::StoreUnavailable) => {
            let again = Op::QueueAdd {
                key: keys::due_queue(&team.id),
                member: due_member(id, cid),
                score: now.plus(TIME_OUT_RETRY).unix_millis(),
                ttl: std::time::Duration::from_secs(3600),
            };
            if let Err(e) = core.store.commit(vec![again]).await {
                tracing::warn!(team = %team.id, interaction = %id, error = %e, "a ladder's time-out is lost: the store failed");
            }
        }
        Err(e @ Error::Internal(_)) => {
            tracing::warn!(team = %team.id, interaction = %id, error = %e, "a ladder's time-out could not be handled");
        }
        Err(e) => {
            tracing::debug!(team = %team.id, interaction = %id, reason = e.code(), "ladder stays");
        }
    }
}

/// Withdraws the messages of `ladder`'s steps that can be withdrawn
/// (the code was used): best effort.
pub(in crate::gateway) async fn revoke_ladder(core: &Core, ladder: &Ladder) {
    for step in &ladder.sent {
        if let Some(m) = &step.message_id {
            core.channels.revoke(&step.channel, m).await;
        }
    }
}

/// Sends `code` on the first of `targets` that takes it, each step's
/// destination counted as it is tried and given back when its provider
/// refuses. `strict`: the first step's send limit is the answer (429)
/// rather than a step to pass over. 429 when no step is within its
/// limit, 502 when every provider refused.
#[allow(clippy::too_many_arguments)]
async fn send_on_steps(
    core: &Core,
    team: &Team,
    id: Uuid,
    rec: &InteractionRecord,
    targets: &[Target],
    code: &OtpCode,
    expires_at: Timestamp,
    strict: bool,
    allowance: Option<&str>,
    now: Timestamp,
) -> Result<Took> {
    let s = team.settings_for(&rec.channel);
    let ttl = expires_at.since(now);
    let mut limited = None;
    let mut refused: Option<ChannelError> = None;
    for (i, target) in targets.iter().enumerate() {
        let dkey = super::destinations::destination_key(core, team, &target.destination, allowance);
        match count_destination_now(core, team, &target.destination, allowance, s, now).await {
            Ok(()) => {}
            Err(e @ Error::RateLimited { .. }) if strict && i == 0 => return Err(e),
            Err(e @ Error::RateLimited { .. }) => {
                limited.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        }
        let fill = Fill {
            pin: Some(code.expose()),
            ttl: Some(ttl),
            ..Fill::default()
        };
        let to = Some(target.destination.clone());
        match core
            .send(team, rec, &target.channel, to, Purpose::Otp, fill)
            .await
        {
            Ok(sent) => {
                return Ok(Took {
                    target: target.clone(),
                    sent,
                    dkey,
                })
            }
            Err(e) => {
                give_back_destination(core, &dkey, s, now).await?;
                tracing::info!(team = %team.id, interaction = %id, step = %target.channel, "ladder step refused the code; trying the next");
                refused = Some(e);
            }
        }
    }
    match (refused, limited) {
        (Some(e), _) => Err(Error::Channel(e.to_string())),
        (None, Some(e)) => Err(e),
        (None, None) => Err(Error::NoNextStep("the challenge's ladder has no step left")),
    }
}

/// Counts one send to `destination` at `now` on its own (429 at its
/// limit), retrying a concurrent writer's conflict.
async fn count_destination_now(
    core: &Core,
    team: &Team,
    destination: &str,
    allowance: Option<&str>,
    s: &crate::config::Settings,
    now: Timestamp,
) -> Result<()> {
    retry(|| async {
        let count =
            super::destinations::count_destination(core, team, destination, allowance, s, now);
        let op = count.await?;
        Ok((core.store.commit(vec![op]).await? == Commit::Applied).then_some(()))
    })
    .await
}

/// Gives back the send counted at `now` to the destination under `dkey`.
async fn give_back_destination(
    core: &Core,
    dkey: &str,
    s: &crate::config::Settings,
    now: Timestamp,
) -> Result<()> {
    retry(|| async {
        let read = super::destinations::destination_sends(core, dkey).await?;
        let Some(mut sends) = read.value else {
            return Ok(Some(()));
        };
        sends.give_back(now);
        let sends = StoredSends::from(&sends);
        let op = put(dkey, read.version, &sends, Some(s.otp.send_window.get()))?;
        Ok((core.store.commit(vec![op]).await? == Commit::Applied).then_some(()))
    })
    .await
}

/// Records that `took`'s step has the code of challenge `cid` now (the
/// move from `from`, the step that had it; `None` at the start), and
/// schedules its time-out unless it is the last step. `None` when the
/// challenge ended or moved meanwhile (nothing written).
async fn record_step(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    from: Option<&SentStep>,
    took: &Took,
    now: Timestamp,
) -> Result<Option<crate::gateway::work::Done<()>>> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let s = w.settings;
                let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == cid) else {
                    return Ok(Step::Answer(false));
                };
                let next = took.step(now);
                let StepRecord::Recorded { time_out_at } =
                    ladder::record_step(c, from, next, &s.otp, now)
                else {
                    return Ok(Step::Answer(false));
                };
                let kept_for = c.expires_at.since(now) + std::time::Duration::from_secs(3600);
                let queue = keys::due_queue(&team.id);
                let member = due_member(id, cid);
                w.also(match time_out_at {
                    Some(at) => Op::QueueAdd {
                        key: queue,
                        member,
                        score: at.unix_millis(),
                        ttl: kept_for,
                    },
                    None => Op::QueueRemove { key: queue, member },
                });
                Ok(Step::Write(true))
            })
        })
        .await?;
    Ok(if done.value {
        Some(crate::gateway::work::Done {
            value: (),
            view: done.view,
            rec: done.rec,
        })
    } else {
        None
    })
}
