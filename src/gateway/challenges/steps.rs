//! A delivery ladder's step, recorded before it is sent
//! (docs/api.md#delivery-ladder): a move is one unit of work that finds
//! the ladder still where the move started, picks the step, counts its
//! destination's send and records the step as sending — then the code
//! goes out, and the provider's answer is recorded (or the count given
//! back and the next step recorded the same way). Of moves at once, one
//! records and sends; the others send nothing. While a step's send is
//! under way its due-queue entry is a lease its sender renews, so a
//! sender that dies leaves the step to another instance
//! (docs/decisions/0097-a-ladder-time-out-is-a-lease.md).
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use uuid::Uuid;

use crate::channels::{ChannelError, Fill, Purpose, Sent};
use crate::config::Team;
use crate::domain::challenge::Challenge;
use crate::domain::delivery_status::DeliveryState;
use crate::domain::destination::DestinationSends;
use crate::domain::interaction::InteractionRecord;
use crate::domain::ladder::{self, AdvanceReason, SentStep, StepRecord, Target, LEASE};
use crate::domain::number_check::{NumberAnswer, NumberCheck};
use crate::domain::otp::OtpCode;
use crate::domain::settings::OtpSettings;
use crate::error::{Error, Result};
use crate::events::types::ChallengeAdvanced;
use crate::events::EventData;
use crate::gateway::records::{Loaded, StoredSends};
use crate::gateway::work::{Done, Step, Work};
use crate::gateway::writes::{DueEntry, Writes};
use crate::gateway::{identity_changes, voice, Core};
use crate::store::{keys, IndexEntry};
use crate::time::Timestamp;

/// How often a sender renews its lease while the provider answers.
const RENEW_EVERY: Duration = Duration::from_millis(1500);

/// The due-queue member of challenge `cid` of interaction `id`: its
/// current step's time-out (`l:<interaction>:<challenge>`).
pub fn due_member(id: Uuid, cid: Uuid) -> String {
    format!("l:{id}:{cid}")
}

/// A move of challenge `cid` of interaction `id`: from the step that
/// had the code when it started (`None`: none yet), counting each
/// destination in `allowance`'s count, for `reason` (`None`: the
/// ladder's start, which is no move).
pub(super) struct Move {
    pub id: Uuid,
    pub cid: Uuid,
    pub from: Option<SentStep>,
    pub allowance: Option<String>,
    pub reason: Option<AdvanceReason>,
    /// What the number checks of this move found about its steps'
    /// numbers: the step recorded keeps its own on the challenge
    /// (docs/number-checks.md#the-challenges-number_check).
    pub found: Vec<Found>,
    /// The answers this move asked the provider for (numbers the ladder
    /// had no answer about): the ladder keeps them for its later steps.
    pub asked: Vec<NumberAnswer>,
}

/// A ladder step as a number check sees it: its channel and number, not
/// its place (a payment's ladder keeps only the steps that show it, so
/// places differ between the team's ladder and the one opened).
#[derive(Debug, Clone)]
pub(super) struct StepNumber {
    channel: String,
    number: String,
}

impl StepNumber {
    pub fn of(target: &Target) -> StepNumber {
        StepNumber {
            channel: target.channel.clone(),
            number: target.destination.clone(),
        }
    }

    pub fn is(&self, target: &Target) -> bool {
        self.channel == target.channel && self.number == target.destination
    }
}

/// What a number check found about one step's number.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub step: StepNumber,
    pub check: NumberCheck,
}

/// A step recorded as taking the code, its send under way.
pub(super) struct Claimed {
    pub target: Target,
    pub step: SentStep,
    /// The key its destination's send was counted under.
    pub dkey: String,
    /// The challenge's delivery state before the move, for a refusal to
    /// put back.
    pub before: Option<DeliveryState>,
    /// The score its due entry was left at: the sender's lease.
    pub lease: i64,
}

/// A step's message, sent.
pub(super) struct Took {
    pub claimed: Claimed,
    pub sent: Sent,
}

/// The sends counted at the destinations a decision reads, as read
/// (one round trip), and which of them it changed.
struct Counts {
    read: BTreeMap<String, Loaded<DestinationSends>>,
    changed: BTreeSet<String>,
}

impl Counts {
    async fn load(core: &Core, dkeys: Vec<String>) -> Result<Self> {
        let dkeys: Vec<String> = dkeys
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let raw = core.get(&dkeys).await?;
        let mut read = BTreeMap::new();
        for (k, v) in dkeys.into_iter().zip(raw) {
            read.insert(k.clone(), Loaded::parse(k, v)?);
        }
        Ok(Counts {
            read,
            changed: BTreeSet::new(),
        })
    }

    fn sends(&mut self, dkey: &str) -> Option<&mut DestinationSends> {
        let l = self.read.get_mut(dkey)?;
        Some(l.value.get_or_insert_with(DestinationSends::default))
    }

    /// Counts one send at `now` under `dkey` (429 at its limit).
    fn take(&mut self, dkey: &str, now: Timestamp, otp: &OtpSettings) -> Result<()> {
        let sends = self
            .sends(dkey)
            .ok_or(Error::internal("a count was not read"))?;
        sends.take(now, otp)?;
        self.changed.insert(dkey.to_string());
        Ok(())
    }

    /// Gives back the send counted at `at` under `dkey`.
    fn give_back(&mut self, dkey: &str, at: Timestamp) {
        if let Some(sends) = self.sends(dkey) {
            sends.give_back(at);
            self.changed.insert(dkey.to_string());
        }
    }

    /// Writes the counts changed, in `w`'s commit.
    fn write(self, w: &mut Work<'_>) -> Result<()> {
        let window = w.settings.otp.send_window.get();
        for dkey in &self.changed {
            let Some(l) = self.read.get(dkey) else {
                continue;
            };
            let sends = StoredSends::from(&l.value.clone().unwrap_or_default());
            w.put(l, &sends, Some(window))?;
        }
        Ok(())
    }
}

/// Where a challenge's due entry is to be left: due at a time (its queue
/// living a TTL), or taken off the queue.
struct LeftDue {
    entry: DueEntry,
    at: Option<(Timestamp, Duration)>,
}

impl LeftDue {
    /// Leaves the entry there, in `w`'s commit.
    fn write(self, w: &mut impl Writes) {
        match self.at {
            Some((at, ttl)) => w.schedule(&self.entry, at, ttl),
            None => w.cancel(&self.entry),
        }
    }
}

/// Where challenge `c`'s due entry is left when it is next due
/// (`ladder::next_due`), and that score.
fn due_op(
    team: &Team,
    mv: &Move,
    c: &Challenge,
    otp: &OtpSettings,
    now: Timestamp,
) -> (LeftDue, i64) {
    due_op_at(team, mv, c, ladder::next_due(c, otp, now, LEASE), now)
}

/// Where a move that did not happen leaves challenge `c`'s due entry
/// (`ladder::due_after_failed_move`).
fn due_op_after_failed_move(
    team: &Team,
    mv: &Move,
    c: &Challenge,
    otp: &OtpSettings,
    now: Timestamp,
) -> LeftDue {
    due_op_at(
        team,
        mv,
        c,
        ladder::due_after_failed_move(c, otp, now, LEASE),
        now,
    )
    .0
}

/// Challenge `c`'s due entry left at `due` (`None`: removed), and that
/// score (0: none).
fn due_op_at(
    team: &Team,
    mv: &Move,
    c: &Challenge,
    due: Option<Timestamp>,
    now: Timestamp,
) -> (LeftDue, i64) {
    let entry = due_entry(team, mv.id, mv.cid);
    let ttl = c.expires_at.since(now) + Duration::from_secs(3600);
    let score = due.map_or(0, Timestamp::unix_millis);
    let at = due.map(|at| (at, ttl));
    (LeftDue { entry, at }, score)
}

/// The due entry of challenge `cid` of interaction `id`, in `team`'s
/// queue ([`due_member`]).
pub(super) fn due_entry(team: &Team, id: Uuid, cid: Uuid) -> DueEntry {
    DueEntry::new(&team.keyspace, due_member(id, cid))
}

/// Records in `w` the move `mv`: from its step, the first of `targets`
/// within its destination's limit takes the code (`strict`: the first's
/// limit is the answer, 429), its send counted and the step recorded
/// as sending, its due entry a lease. `None`: the challenge ended or the
/// ladder moved meanwhile — nothing is written, nothing is to be sent.
pub(super) async fn claim_in(
    core: &Core,
    team: &Team,
    w: &mut Work<'_>,
    mv: &Move,
    targets: &[Target],
    strict: bool,
    now: Timestamp,
) -> Result<Option<Claimed>> {
    let stands = |c: &Challenge| c.id == mv.cid && ladder::stands_at(c, mv.from.as_ref(), now);
    if !w.rec.challenge.as_ref().is_some_and(stands) {
        return Ok(None);
    }
    let s = w.settings;
    let dkey = |t: &Target| {
        super::destinations::destination_key(core, team, &t.destination, mv.allowance.as_deref())
    };
    let mut counts = Counts::load(core, targets.iter().map(dkey).collect()).await?;
    let picked = ladder::pick(targets, strict, |t| counts.take(&dkey(t), now, &s.otp))?;
    let claimed = record_claim(team, w, mv, &targets[picked], dkey(&targets[picked]), now)?;
    counts.write(w)?;
    Ok(claimed)
}

/// Records step `target` as sending, in `w`, and leases its due entry.
fn record_claim(
    team: &Team,
    w: &mut Work<'_>,
    mv: &Move,
    target: &Target,
    dkey: String,
    now: Timestamp,
) -> Result<Option<Claimed>> {
    let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == mv.cid) else {
        return Ok(None);
    };
    let before = c.delivery_state.clone();
    let step = SentStep {
        index: target.index,
        channel: target.channel.clone(),
        destination: target.destination.clone(),
        message_id: None,
        sent_at: now,
        left_at: None,
        in_flight: 1,
        reason: mv.reason,
    };
    let otp = &w.settings.otp;
    if ladder::record_step(c, mv.from.as_ref(), step.clone(), otp, now) == StepRecord::Lost {
        return Ok(None);
    }
    // The code goes to this step's number now: what was found about it
    // (a voice step's forwarding, say) is the challenge's.
    if let Some(o) = c.proof.otp_state_mut() {
        if let Some(found) = mv.found.iter().find(|f| f.step.is(target)) {
            o.number_check = Some(found.check);
        }
        if let Some(l) = o.ladder.as_mut() {
            l.keep_answers(&mv.asked);
        }
    }
    let (due, lease) = due_op(team, mv, c, otp, now);
    due.write(w);
    let target = target.clone();
    Ok(Some(Claimed {
        target,
        step,
        dkey,
        before,
        lease,
    }))
}

/// [`claim_in`] as its own unit of work.
pub(super) async fn claim(
    core: &Core,
    team: &Team,
    mv: &Move,
    targets: &[Target],
    now: Timestamp,
) -> Result<Option<Claimed>> {
    let done = core
        .transact(team, mv.id, now, |w| {
            Box::pin(async move {
                Ok(
                    match claim_in(core, team, w, mv, targets, true, now).await? {
                        Some(c) => Step::Write(Some(c)),
                        None => Step::Answer(None),
                    },
                )
            })
        })
        .await?;
    Ok(done.value)
}

/// Step `refused` was refused by its provider: its count is given back
/// and the next of `rest` within its limit is recorded instead, the
/// same way (`Some`, to send); else the step before it has the code
/// again (`None`). One unit of work.
pub(super) async fn refused(
    core: &Core,
    team: &Team,
    mv: &Move,
    refused: &Claimed,
    rest: &[Target],
    now: Timestamp,
) -> Result<Option<Claimed>> {
    let done = core
        .transact(team, mv.id, now, |w| {
            Box::pin(async move {
                let dkey = |t: &Target| {
                    let a = mv.allowance.as_deref();
                    super::destinations::destination_key(core, team, &t.destination, a)
                };
                let mut all: Vec<String> = rest.iter().map(dkey).collect();
                all.push(refused.dkey.clone());
                let mut counts = Counts::load(core, all).await?;
                let s = w.settings;
                counts.give_back(&refused.dkey, refused.step.sent_at);
                let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == mv.cid) else {
                    counts.write(w)?;
                    return Ok(Step::Write(None));
                };
                if !ladder::withdraw_step(c, &refused.step, refused.before.clone()) {
                    counts.write(w)?;
                    return Ok(Step::Write(None));
                }
                let from = c.ladder().and_then(|l| l.current().cloned());
                let next = Move {
                    from,
                    allowance: mv.allowance.clone(),
                    found: mv.found.clone(),
                    asked: mv.asked.clone(),
                    ..*mv
                };
                let op = due_op_after_failed_move(team, mv, c, &s.otp, now);
                let picked = ladder::pick(rest, false, |t| counts.take(&dkey(t), now, &s.otp));
                let claimed = match picked {
                    Ok(i) => record_claim(team, w, &next, &rest[i], dkey(&rest[i]), now)?,
                    Err(_) => {
                        op.write(w);
                        None
                    }
                };
                counts.write(w)?;
                Ok(Step::Write(claimed))
            })
        })
        .await?;
    Ok(done.value)
}

/// Sends `code` on `claimed`'s step of `rec`, renewing the step's lease
/// while the provider answers; a refusal moves on to the next of
/// `targets` ([`refused`]) until one takes it. 502 when every step left
/// refused (the ladder back where the move found it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn send_claimed(
    core: &Core,
    team: &Team,
    mv: &Move,
    rec: &InteractionRecord,
    mut claimed: Claimed,
    targets: &[Target],
    code: &OtpCode,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<Took> {
    loop {
        match send_step(core, team, mv, rec, &claimed, code, expires_at, now).await {
            Ok(sent) => return Ok(Took { claimed, sent }),
            Err(e) => {
                tracing::info!(team = %team.id, interaction = %mv.id, step = %claimed.target.channel, "ladder step refused the code; trying the next");
                // A changed identity fails the challenge: no next step.
                let channel = &claimed.target.channel;
                identity_changes::on_send_error(core, team, rec, channel, &e, now).await?;
                let at = targets.iter().position(|t| t.index == claimed.step.index);
                let rest = at.map_or(&[][..], |i| &targets[i + 1..]);
                match refused(core, team, mv, &claimed, rest, now).await? {
                    Some(next) => claimed = next,
                    None => return Err(Error::Channel(e.to_string())),
                }
            }
        }
    }
}

/// One send of `claimed`'s step, its lease renewed meanwhile.
#[allow(clippy::too_many_arguments)]
async fn send_step(
    core: &Core,
    team: &Team,
    mv: &Move,
    rec: &InteractionRecord,
    claimed: &Claimed,
    code: &OtpCode,
    expires_at: Timestamp,
    now: Timestamp,
) -> std::result::Result<Sent, ChannelError> {
    let transaction = rec
        .challenge
        .as_ref()
        .filter(|c| c.id == mv.cid)
        .and_then(|c| c.transaction.as_ref());
    let amount = transaction.map(|t| t.amount_text());
    let fill = Fill {
        pin: Some(code.expose()),
        ttl: Some(expires_at.since(now)),
        amount: amount.as_deref(),
        payee: transaction.map(|t| t.payee.as_str()),
        ..Fill::default()
    };
    let to = Some(claimed.target.destination.clone());
    let channel = &claimed.target.channel;
    let sending = async {
        let message = (channel.as_str(), Purpose::Otp);
        let call = voice::call_for(core, team, rec, message, fill.pin, now).await?;
        core.send(team, rec, channel, to, Purpose::Otp, fill, call, now)
            .await
    };
    tokio::select! {
        sent = sending => sent,
        never = renew(core, team, mv, claimed.lease, now) => match never {},
    }
}

/// Moves the due entry of `mv`'s challenge, left at `lease` by its
/// claim, on by [`LEASE`] every [`RENEW_EVERY`], while it is unchanged;
/// never returns.
async fn renew(
    core: &Core,
    team: &Team,
    mv: &Move,
    mut lease: i64,
    now: Timestamp,
) -> std::convert::Infallible {
    let started = tokio::time::Instant::now();
    let queue = keys::due_queue(&team.keyspace);
    let member = due_member(mv.id, mv.cid);
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        if lease == 0 {
            continue;
        }
        let to = now.plus(started.elapsed() + LEASE).unix_millis();
        let held = IndexEntry {
            member: member.clone(),
            score: lease,
        };
        match core.queue_move_unchanged(&queue, &[held], to).await {
            Ok(1) => lease = to,
            Ok(_) => lease = 0,
            Err(e) => tracing::debug!(error = %e, "a ladder step's lease left as it is"),
        }
    }
}

/// Records the provider's answer to `took`'s step: its message id, its
/// send done, its due entry at the step's time-out (at once when that has
/// passed), and the move that brought the ladder there announced
/// (`challenge.advanced`), all in one commit — so a move is announced
/// once, by whichever of its senders records it (the mover, or the
/// instance that took the step over). `None`: the challenge ended or
/// moved past the step meanwhile, or another sender recorded it (nothing
/// written); else the reason of the move announced, if it was one.
pub(super) async fn record_sent(
    core: &Core,
    team: &Team,
    mv: &Move,
    took: &Took,
    now: Timestamp,
) -> Result<Option<Done<Option<AdvanceReason>>>> {
    let m = took.sent.message_id.clone();
    let done = record_answer(core, team, mv, &took.claimed.step, m, now).await?;
    Ok(match done.value {
        Some(announced) => Some(Done {
            value: announced,
            view: done.view,
            rec: done.rec,
        }),
        None => None,
    })
}

/// [`record_sent`]'s unit of work: step `step`'s answer, `message_id`
/// (`None`: given up on), and its move's event. `value`: `None` when it
/// was not recorded; else the reason of the move announced.
async fn record_answer(
    core: &Core,
    team: &Team,
    mv: &Move,
    step: &SentStep,
    message_id: Option<String>,
    now: Timestamp,
) -> Result<Done<Option<Option<AdvanceReason>>>> {
    core.transact(team, mv.id, now, |w| {
        let message_id = message_id.clone();
        Box::pin(async move {
            let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == mv.cid) else {
                return Ok(Step::Answer(None));
            };
            if !ladder::record_message(c, step, message_id, now) {
                return Ok(Step::Answer(None));
            }
            let due = due_op(team, mv, c, &w.settings.otp, now).0;
            let event = advanced(c, now)?;
            due.write(w);
            let reason = event.map(|(data, reason)| {
                w.emit(data);
                reason
            });
            Ok(Step::Write(Some(reason)))
        })
    })
    .await
}

/// `challenge.advanced` for the move that brought challenge `c`'s ladder
/// to its current step (`ladder::announced_move`), with the challenge's
/// read at `now`, and the move's reason; `None` on its first step.
fn advanced(c: &Challenge, now: Timestamp) -> Result<Option<(EventData, AdvanceReason)>> {
    let Some((previous_channel, reason)) = ladder::announced_move(c) else {
        return Ok(None);
    };
    let data = EventData::ChallengeAdvanced(ChallengeAdvanced {
        challenge: Box::new(super::read::ChallengeView::of(c, c.state(now))),
        previous_channel,
        reason,
    });
    Ok(Some((data, reason)))
}

/// Counts a move announced (`chatgate_ladder_advances_total`), once its
/// commit is in.
pub(super) fn count_move(reason: Option<AdvanceReason>) {
    if let Some(reason) = reason {
        metrics::counter!("chatgate_ladder_advances_total", "reason" => reason.as_str())
            .increment(1);
    }
}

/// Leaves the due entry of `mv`'s challenge where its ladder is next due
/// (`ladder::next_due`): after a time-out that moved nothing, its lease
/// is not left to come due again. An interaction gone drops the entry.
pub(super) async fn settle(core: &Core, team: &Team, mv: &Move, now: Timestamp) -> Result<()> {
    let done = core
        .transact(team, mv.id, now, |w| {
            Box::pin(async move {
                w.as_announcement();
                let c = w.rec.challenge.clone().filter(|c| c.id == mv.cid);
                match c {
                    Some(c) => {
                        due_op_after_failed_move(team, mv, &c, &w.settings.otp, now).write(w)
                    }
                    None => w.cancel(&due_entry(team, mv.id, mv.cid)),
                }
                Ok(Step::Write(()))
            })
        })
        .await;
    match done {
        Ok(_) => Ok(()),
        Err(Error::NotFound(_)) => {
            let entry = due_entry(team, mv.id, mv.cid);
            core.change(&team.keyspace, &[], now, |c| {
                c.cancel(&entry);
                Ok(Step::Write(()))
            })
            .await?;
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Takes step `step` of `mv`'s challenge on again after its sender died
/// (`ladder::TimeOut`): `resend`, its one resend is recorded as under
/// way, with a lease of its own (`Some`, to send); else (the resend's
/// sender died too) it is taken as sent, with no message id, and its
/// move announced ([`record_sent`]'s unit of work). `None` also when the
/// step is no longer so (answered, withdrawn, taken by another).
pub(super) async fn claim_again(
    core: &Core,
    team: &Team,
    mv: &Move,
    step: &SentStep,
    resend: bool,
    now: Timestamp,
) -> Result<Option<Claimed>> {
    if !resend {
        let done = record_answer(core, team, mv, step, None, now).await?;
        count_move(done.value.flatten());
        return Ok(None);
    }
    let done = core
        .transact(team, mv.id, now, |w| {
            Box::pin(async move {
                let otp = &w.settings.otp;
                let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == mv.cid) else {
                    return Ok(Step::Answer(None));
                };
                if !ladder::claim_resend(c, step, now) {
                    return Ok(Step::Answer(None));
                }
                let (due, lease) = due_op(team, mv, c, otp, now);
                let before = mv
                    .from
                    .as_ref()
                    .and_then(|p| p.left_at)
                    .map(|status| DeliveryState {
                        status,
                        error: None,
                    });
                due.write(w);
                Ok(Step::Write(Some(Claimed {
                    target: Target {
                        index: step.index,
                        channel: step.channel.clone(),
                        destination: step.destination.clone(),
                    },
                    step: SentStep {
                        in_flight: 2,
                        ..step.clone()
                    },
                    dkey: super::destinations::destination_key(
                        core,
                        team,
                        &step.destination,
                        mv.allowance.as_deref(),
                    ),
                    before,
                    lease,
                })))
            })
        })
        .await?;
    Ok(done.value)
}
