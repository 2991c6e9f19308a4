//! The delivery ladder (docs/api.md#delivery-ladder): an OTP whose one
//! code goes out on the team's `otp.ladder` steps in turn.
//!
//! Which steps may take the code is `domain::ladder`'s; how a step is
//! recorded before it is sent is `steps`'. Here: the start (one
//! challenge and its first step in one unit of work, a provider's
//! refusal passing on to the next step at once), the move to the next
//! step ([`advance_ladder`]: on request, on a step's time-out from the
//! due queue, on a `failed` report), the time-out's lease and the resend
//! of a step whose sender died, and the withdrawal of a message the
//! customer no longer needs.
use std::sync::Arc;

use uuid::Uuid;

use super::read::ChallengeView;
use super::read::StartedChallenge;
use super::steps::{self, send_claimed, Claimed, Found, Move, StepNumber, Took};
use crate::config::{Settings, Team};
use crate::domain::challenge::{ChallengeState, Delivery, NETWORK_STEP};
use crate::domain::delivery_status::{DeliveryState, DeliveryStatus};
use crate::domain::destination_policy::Reach;
use crate::domain::interaction::InteractionRecord;
use crate::domain::ladder::{self, still_open, Ladder, Target, TimeOut};
use crate::domain::number_check::{self, NumberAnswer, Refusal, Verdict};
use crate::domain::otp::{self, OtpCode};
use crate::domain::reveal;
use crate::domain::start_challenge::{ChallengeRequest, Started};
use crate::domain::transaction;
use crate::error::{Error, Result};
use crate::events::types::{AdvanceReason, DeliveryReported, ReportedChallenge};
use crate::events::EventData;
use crate::gateway::polls::{Ask, Polls};
use crate::gateway::reports::{self, FailedStep};
use crate::gateway::work::Step;
use crate::gateway::{number_checks, Core};
use crate::store::{keys, IndexEntry};
use crate::time::{Clock, Timestamp};

/// The due-queue entry kind of ladders' step time-outs:
/// `l:<interaction>:<challenge>`.
pub(in crate::gateway) const KIND: &str = "l";

pub use super::steps::due_member;

/// The interaction and challenge a due-queue member names, if it is a
/// ladder's (`l:<interaction>:<challenge>`).
pub fn parse_due_member(member: &str) -> Option<(Uuid, Uuid)> {
    let rest = member.strip_prefix("l:")?;
    let (id, cid) = rest.split_once(':')?;
    Some((Uuid::parse_str(id).ok()?, Uuid::parse_str(cid).ok()?))
}

/// `POST /v1/interactions/{id}/challenges` with `delivery: "ladder"`:
/// one challenge, recorded with the first step that takes it as
/// sending, then sent there (docs/api.md#delivery-ladder).
pub(in crate::gateway) async fn start_ladder(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<StartedChallenge> {
    if let Some(started) = network_first(core, team, id, req, now).await? {
        return Ok(started);
    }
    let cid = Uuid::now_v7();
    let checked = check_numbers(core, team, id, cid, now).await?;
    let opened = open_ladder(core, team, id, cid, req, checked.as_ref(), now);
    let (rec, started, code, targets, claimed) = opened.await?;
    // 2. Send on the step recorded, or the next that takes it.
    let mv = Move {
        id,
        cid,
        from: None,
        allowance: started.allowance.clone(),
        reason: None,
        found: checked.map(|c| c.found).unwrap_or_default(),
        asked: Vec::new(),
    };
    let expires_at = started.expires_at;
    let sending = send_claimed(
        core, team, &mv, &rec, claimed, &targets, &code, expires_at, now,
    );
    let took = match sending.await {
        Ok(took) => took,
        Err(e) => {
            // Every step refused (each gave its count back): the previous
            // challenge and the subject's send come back.
            super::destinations::undo_challenge(core, team, id, cid, &started, now).await?;
            return Err(e);
        }
    };
    // 3. Record the provider's answer.
    let Some(done) = steps::record_sent(core, team, &mv, &took, now).await? else {
        withdraw(core, &took).await;
        return Err(Error::ChallengeExpired);
    };
    // Then, and only then, the page's link goes into the conversation.
    let linked =
        super::entry::after_ladder_code(core, team, &done.rec, (cid, req), expires_at, now);
    linked.await?;
    super::announce(core, team, &done.rec, cid, &started, Delivery::Ladder, now).await?;
    remember_step(core, team, id, cid, &took, now).await;
    let step = Some(took.claimed.target.channel.clone());
    let accepted = DeliveryState::accepted();
    let answer = StartedChallenge::of(cid, &started, Delivery::Ladder, step, true, Some(&accepted));
    let found = done.rec.challenge.as_ref().filter(|c| c.id == cid);
    Ok(answer
        .checked(found.and_then(|c| c.number_check()))
        .for_transaction(req.transaction.as_ref())
        .entered(req.page_entry))
}

/// A ladder that begins with the network step sends its link first
/// (`None`: it does not, or the step is skipped); a code typed on the
/// page skips that step, whose page shows a code to type into the chat.
async fn network_first(
    core: &Core,
    team: &Team,
    id: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<Option<StartedChallenge>> {
    if req.page_entry {
        return Ok(None);
    }
    super::network::start_network_ladder(core, team, id, req, now).await
}

/// The number checks of a ladder's steps (docs/number-checks.md): the
/// steps to a refused number, what refused the first, what was found
/// about each other step's number, and the answers asked of the provider
/// for it (the ladder keeps them: its steps to one number share one).
#[derive(Debug, Default)]
struct Checked {
    refused: Vec<(StepNumber, Refusal)>,
    found: Vec<Found>,
    asked: Vec<NumberAnswer>,
}

impl Checked {
    /// `targets` without the refused steps; the first refusal when only
    /// refused steps were left.
    fn keep(&self, targets: Vec<Target>) -> std::result::Result<Vec<Target>, Refusal> {
        let refused = |t: &Target| self.refused.iter().any(|(step, _)| step.is(t));
        let first = self.refused.first().map(|(_, r)| *r);
        let left: Vec<Target> = targets.into_iter().filter(|t| !refused(t)).collect();
        match (left.is_empty(), first) {
            (true, Some(r)) => Err(r),
            _ => Ok(left),
        }
    }
}

/// Asks the team's provider about each phone number the ladder's steps
/// would take the code to, once per number (a voice step's question
/// asks about forwarding too; its steps share the answer, which the
/// ladder keeps for its moves), on the records as read now. `None` without `[number_checks]`; 403
/// `number_refused` (and `challenge.failed`) when no step is left.
async fn check_numbers(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    now: Timestamp,
) -> Result<Option<Checked>> {
    if team.number_checks.is_none() {
        return Ok(None);
    }
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    let s = team.settings_for(&rec.channel);
    let steps = &s.otp.ladder;
    let Ok(targets) = ladder::targets(steps, 0..steps.len(), |c| core.reach(c), &s.otp, rec) else {
        return Ok(None); // the start answers it
    };
    let checked = check_targets(core, team, &targets, &[], now).await;
    if let Err(r) = checked.keep(targets) {
        let asked = number_checks::refused_challenge(cid, Delivery::Ladder, now);
        return Err(number_checks::refused(core, team, rec, asked, r, now).await);
    }
    Ok(Some(checked))
}

/// The verdicts on `targets`' phone numbers, each number asked once:
/// not at all when the ladder `kept` an answer about it that serves its
/// steps (docs/number-checks.md#what-is-checked-and-when).
async fn check_targets(
    core: &Core,
    team: &Team,
    targets: &[Target],
    kept: &[NumberAnswer],
    now: Timestamp,
) -> Checked {
    let mut checked = Checked::default();
    let Some(nc) = team.number_checks.as_ref() else {
        return checked;
    };
    let by_voice = |t: &Target| match core.reach(&t.channel) {
        Reach::Phone | Reach::PhoneChat => Some(false),
        Reach::Voice => Some(true),
        Reach::Conversation | Reach::Email => None,
    };
    let mut answers: Vec<NumberAnswer> = Vec::new();
    for t in targets {
        let number = &t.destination;
        if by_voice(t).is_none() || answers.iter().any(|a| a.number == *number) {
            continue;
        }
        let voice = targets
            .iter()
            .any(|o| o.destination == *number && by_voice(o) == Some(true));
        let serves =
            |k: &&NumberAnswer| k.number == *number && k.answer.serves(&nc.settings, voice);
        let answer = match kept.iter().find(serves) {
            Some(k) => k.clone(),
            None => {
                let answer = core.number_checks().ask(nc, number, voice, now).await;
                let asked = NumberAnswer {
                    number: number.clone(),
                    answer,
                };
                checked.asked.push(asked.clone());
                asked
            }
        };
        answers.push(answer);
    }
    for t in targets {
        let (Some(voice), Some(a)) = (
            by_voice(t),
            answers.iter().find(|a| a.number == t.destination),
        ) else {
            continue;
        };
        match number_check::verdict(&nc.settings, &a.answer, voice, nc.source()) {
            Verdict::Refuse(r) => checked.refused.push((StepNumber::of(t), r)),
            Verdict::Go(check) => checked.found.push(Found {
                step: StepNumber::of(t),
                check,
            }),
        }
    }
    checked
}

/// The steps of the team's `otp.ladder` that may take a code for `req`:
/// without the network step (skipped, the ladder starts at its next
/// step: no phone, a payment, a refused number) and, for a payment, only
/// those that show its text; 422 for a team without a ladder.
fn code_steps(core: &Core, s: &Settings, req: &ChallengeRequest) -> Result<Vec<String>> {
    if s.otp.ladder.is_empty() {
        return Err(Error::invalid("delivery", "the team has no otp.ladder"));
    }
    let mut steps = s.otp.ladder.clone();
    steps.retain(|c| c != NETWORK_STEP);
    if req.transaction.is_none() {
        return Ok(steps);
    }
    let shows = |c: &str| crate::config::shows_text(core.config().channels.get(c));
    transaction::steps_showing(steps, shows)
}

/// A started ladder's challenge, as opened: the interaction as
/// committed, the start, its code, the steps that may take it, and the
/// one recorded as taking it.
type Opened = (InteractionRecord, Started, OtpCode, Vec<Target>, Claimed);

/// Opens the ladder's challenge (the subject's send counted) with its
/// first step that is within its destination's limit recorded as
/// sending, in one unit of work; or refuses (nothing written).
async fn open_ladder(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    req: &ChallengeRequest,
    checked: Option<&Checked>,
    now: Timestamp,
) -> Result<Opened> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let s = w.settings;
                let steps = code_steps(core, s, req)?;
                let targets =
                    ladder::targets(&steps, 0..steps.len(), |c| core.reach(c), &s.otp, &w.rec)?;
                let targets = match checked {
                    Some(checked) => checked.keep(targets)?,
                    None => targets,
                };
                let code = otp::generate(s.otp.length);
                let started = super::decide(core, team, w, req, cid, &code, now)?;
                let sealed_code = reveal::seal(&code, cid, core.pepper())?;
                if let Some(o) = w
                    .rec
                    .challenge
                    .as_mut()
                    .and_then(|c| c.proof.otp_state_mut())
                {
                    o.ladder = Some(Ladder {
                        steps,
                        sent: Vec::new(),
                        sealed_code,
                        answers: checked.map(|c| c.asked.clone()).unwrap_or_default(),
                    });
                    // The first step's that goes to a number; the step
                    // recorded below sets its own.
                    o.number_check = checked.and_then(|c| c.found.first()).map(|f| f.check);
                }
                let allowance = started.allowance.clone();
                let mv = Move {
                    id,
                    cid,
                    from: None,
                    allowance,
                    reason: None,
                    found: checked.map(|c| c.found.clone()).unwrap_or_default(),
                    asked: Vec::new(),
                };
                let claimed = steps::claim_in(core, team, w, &mv, &targets, false, now).await?;
                let claimed = claimed.ok_or(Error::internal("a new ladder did not stand"))?;
                Ok(Step::Write((started, code, targets, claimed)))
            })
        })
        .await?;
    let (started, code, targets, claimed) = done.value;
    Ok((done.rec, started, code, targets, claimed))
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
    let verdict = ladder::next_move(c, state, timed_out, |ch| core.reach(ch), &s.otp, rec, now)?;
    let (Some(targets), Some(l)) = (verdict, c.ladder()) else {
        // Another move's send is under way: this is that move.
        return Ok(ChallengeView::of(c, state));
    };
    let (targets, checked) = checked_targets(core, team, targets, &l.answers, now).await?;
    let code = reveal::open(&l.sealed_code, cid, core.pepper())?;
    let (from, expires_at) = (l.current().cloned(), c.expires_at);
    // Whose allowance at each step's destination the move uses.
    let allowance = pair
        .subject_or_new()?
        .allowance_of(rec.lockout_origin(s).as_deref(), now);
    let mv = Move {
        id,
        cid,
        from,
        allowance,
        reason: Some(reason),
        found: checked.found,
        asked: checked.asked,
    };
    // 2. Record the move (one of moves at once), then send.
    let Some(claimed) = steps::claim(core, team, &mv, &targets, now).await? else {
        return lost_move(core, team, id, cid, now).await;
    };
    let took = send_claimed(
        core, team, &mv, rec, claimed, &targets, &code, expires_at, now,
    );
    let took = took.await?;
    // 3. Record the answer, with the move's `challenge.advanced`; the
    // previous step's message is withdrawn.
    let Some(done) = steps::record_sent(core, team, &mv, &took, now).await? else {
        withdraw(core, &took).await;
        return lost_move(core, team, id, cid, now).await;
    };
    steps::count_move(done.value);
    withdraw_left(core, &mv).await;
    let read = view_at(&done.rec, cid, now)?;
    // Reports that came first may move it on again (boxed, for the
    // recursion); the answer is the read as of this move.
    Box::pin(remember_step(core, team, id, cid, &took, now)).await;
    Ok(read)
}

/// `targets` without the steps to a number its check refuses (the
/// answers the ladder `kept` reused, so a number is asked only once per
/// ladder), and the checks (what was found about the others', what was
/// asked); 409 `no_next_step` when none is left.
async fn checked_targets(
    core: &Core,
    team: &Team,
    targets: Vec<Target>,
    kept: &[NumberAnswer],
    now: Timestamp,
) -> Result<(Vec<Target>, Checked)> {
    let checked = check_targets(core, team, &targets, kept, now).await;
    let left = checked.keep(targets);
    let left = left.map_err(|_| Error::NoNextStep(ALL_REFUSED))?;
    Ok((left, checked))
}

/// Why a ladder does not move when its check refused every step left.
const ALL_REFUSED: &str = "every step left goes to a refused number";

/// Challenge `cid` of `rec` as it stands at `now`.
fn view_at(rec: &InteractionRecord, cid: Uuid, now: Timestamp) -> Result<ChallengeView> {
    let (c, state) = rec
        .challenge_at(cid, now)
        .ok_or(Error::NotFound("no such challenge"))?;
    Ok(ChallengeView::of(c, state))
}

/// Withdraws the message of the step `mv` moved from, where its step
/// can: best effort.
async fn withdraw_left(core: &Core, mv: &Move) {
    if let Some(p) = mv.from.as_ref() {
        if let Some(m) = &p.message_id {
            core.channels().revoke(&p.channel, m).await;
        }
    }
}

/// Withdraws `took`'s message where its step can (its move was
/// overtaken after it went out): best effort.
async fn withdraw(core: &Core, took: &Took) {
    if let Some(m) = &took.sent.message_id {
        core.channels()
            .revoke(&took.claimed.target.channel, m)
            .await;
    }
}

/// A move that found the challenge ended, or the ladder moved on by
/// another move (a report, a time-out, a second request): it sent
/// nothing. The answer is where the challenge stands now — its read
/// while it is still open, else 409 `challenge_used` or 410
/// (`ladder::still_open`).
async fn lost_move(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    now: Timestamp,
) -> Result<ChallengeView> {
    tracing::debug!(team = %team.id, interaction = %id, "a ladder move found it moved or ended; nothing sent");
    let (read, state) = super::read::challenge_and_state(core, team, id, cid, now).await?;
    still_open(state)?;
    Ok(read)
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
    let channel = &took.claimed.target.channel;
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

/// The sweeper's turn at a ladder's due-queue entry (for challenge `cid`
/// of interaction `id`), which it holds with the lease `lease` (ms): its
/// current step timed out, or the send of a step whose sender died is
/// left to this one. The entry is not removed: this instance takes it
/// by moving it from its lease to a lease of its own (of several
/// instances, one does), and hands it to the poller, which acts beside
/// the sweep. The move's own commit, or its settling, sets the entry
/// anew; an instance that dies meanwhile leaves it to come due again
/// (docs/decisions/0097-a-ladder-time-out-is-a-lease.md). A full poller
/// leaves the entry at its lease, due again. Never sends itself.
pub(in crate::gateway) async fn claim_ladder_due(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    lease: i64,
    polls: &Polls,
) -> Result<()> {
    let Some(slot) = polls.slot() else {
        tracing::debug!(team = %team.id, "ladder time-out left for the next sweep: the poller is full");
        return Ok(());
    };
    let queue = keys::due_queue(&team.keyspace);
    let held = IndexEntry {
        member: due_member(id, cid),
        score: lease,
    };
    let to = polls.now().plus(ladder::LEASE).unix_millis();
    if core.queue_move_unchanged(&queue, &[held], to).await? > 0 {
        slot.hand(Ask::LadderTimeOut {
            team: team.keyspace.clone(),
            interaction: id,
            challenge: cid,
        });
    }
    Ok(())
}

/// The poller's turn at a ladder's due entry it claimed: a step whose
/// send is still recorded as under way is sent once more (or, the
/// second time, given up on); else its time-out moves the code on. A
/// time-out that moves nothing (delivered, ended, no step left, the
/// next destination's limit used up, every provider refusing) settles
/// the entry where the ladder is next due. A store that fails leaves the
/// entry at its lease, due again in a few seconds.
pub(in crate::gateway) async fn time_out_step(
    core: &Core,
    team_id: &str,
    id: Uuid,
    cid: Uuid,
    clock: &dyn Clock,
) {
    let Some(team) = core.config().team_in(team_id) else {
        return;
    };
    let now = clock.now();
    let mv = Move {
        id,
        cid,
        from: None,
        allowance: None,
        reason: None,
        found: Vec::new(),
        asked: Vec::new(),
    };
    let acted = match resume(core, team, id, cid, now).await {
        Ok(true) => Ok(()),
        Ok(false) => match advance_ladder(core, team, id, cid, AdvanceReason::Timeout, now).await {
            Ok(_) => Ok(()),
            Err(e @ (Error::StoreUnavailable | Error::Internal(_))) => Err(e),
            Err(e) => {
                tracing::debug!(team = %team.id, interaction = %id, reason = e.code(), "ladder stays");
                steps::settle(core, team, &mv, now).await
            }
        },
        Err(e) => Err(e),
    };
    match acted {
        Ok(()) | Err(Error::StoreUnavailable) => {}
        Err(e) => {
            tracing::warn!(team = %team.id, interaction = %id, error = %e, "a ladder's time-out could not be handled");
        }
    }
}

/// A step of challenge `cid` whose send was recorded as under way and
/// whose sender died: sent once more (the one extra send
/// docs/api.md#delivery-ladder allows), or, when that resend's sender
/// died too, taken as sent. `false`: no such step, the time-out is a
/// move.
async fn resume(core: &Core, team: &Team, id: Uuid, cid: Uuid, now: Timestamp) -> Result<bool> {
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    let s = team.settings_for(&rec.channel);
    let Some((c, state)) = rec.challenge_at(cid, now) else {
        return Ok(false);
    };
    let (step, resend) = match ladder::time_out(c, state) {
        TimeOut::Move => return Ok(false),
        TimeOut::Resend(step) => (step, true),
        TimeOut::GiveUp(step) => (step, false),
    };
    let Some(l) = c.ladder() else {
        return Ok(false);
    };
    let origin = rec.lockout_origin(s);
    let allowance = pair.subject_or_new()?.allowance_of(origin.as_deref(), now);
    let from = l.sent.iter().rev().nth(1).cloned();
    // The same step again: its number's check stands as recorded.
    let mv = Move {
        id,
        cid,
        from,
        allowance,
        reason: step.reason,
        found: Vec::new(),
        asked: Vec::new(),
    };
    let Some(claimed) = steps::claim_again(core, team, &mv, &step, resend, now).await? else {
        return Ok(true);
    };
    let code = reveal::open(&l.sealed_code, cid, core.pepper())?;
    let targets = resend_targets(core, s, rec, l, step.index, &claimed);
    let took = send_claimed(
        core,
        team,
        &mv,
        rec,
        claimed,
        &targets,
        &code,
        c.expires_at,
        now,
    );
    let took = took.await?;
    record_resent(core, team, &mv, &took, now).await?;
    remember_step(core, team, id, cid, &took, now).await;
    Ok(true)
}

/// Where the step at `index` of `l`, claimed again as `claimed`, may send:
/// its own target, then the later steps' (none when they cannot be
/// found).
fn resend_targets(
    core: &Core,
    s: &Settings,
    rec: &InteractionRecord,
    l: &Ladder,
    index: usize,
    claimed: &Claimed,
) -> Vec<Target> {
    let later = l.steps.len();
    let rest = ladder::targets(&l.steps, index + 1..later, |ch| core.reach(ch), &s.otp, rec);
    std::iter::once(claimed.target.clone())
        .chain(rest.unwrap_or_default())
        .collect()
}

/// A resent step's answer, recorded with the move's `challenge.advanced`
/// (the mover died before it could announce it): the move counted and
/// the previous step's message withdrawn; what was sent is withdrawn when
/// the answer cannot be recorded.
async fn record_resent(
    core: &Core,
    team: &Team,
    mv: &Move,
    took: &Took,
    now: Timestamp,
) -> Result<()> {
    match steps::record_sent(core, team, mv, took, now).await? {
        Some(done) => {
            steps::count_move(done.value);
            withdraw_left(core, mv).await;
        }
        None => withdraw(core, took).await,
    }
    Ok(())
}

/// Withdraws the messages of `ladder`'s steps that can be withdrawn
/// (the code was used): best effort.
pub(in crate::gateway) async fn revoke_ladder(core: &Core, ladder: &Ladder) {
    for step in &ladder.sent {
        if let Some(m) = &step.message_id {
            core.channels().revoke(&step.channel, m).await;
        }
    }
}
