//! A network challenge (docs/network-authentication.md): its link, saved
//! on its own key between the start's reserve and its send, and the
//! mobile operator's answer applied to it.
//!
//! The start is a single message's (`single.rs`): the number checks of
//! the number on file, reserve, then the link is saved (`links::save`; a
//! failed save takes the start back, as a failed send does), then the
//! `network_link` text carries it.
use uuid::Uuid;

use super::read::StartedChallenge;
use crate::channels::{Fill, Purpose};
use crate::config::Team;
use crate::domain::challenge::{Delivery, Ladder, Page, SentStep, NETWORK_STEP};
use crate::domain::delivery_status::DeliveryState;
use crate::domain::interaction::InteractionRecord;
use crate::domain::network_auth::{self, Ending, NetworkResult, Proof, Source};
use crate::domain::number_check::Verdict;
use crate::domain::start_challenge::{ChallengeRequest, Started};
use crate::domain::{otp, reveal};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeFailed, FailedChallenge};
use crate::events::EventData;
use crate::gateway::identity_changes;
use crate::gateway::links::{self, Network};
use crate::gateway::work::Step;
use crate::gateway::writes::Writes;
use crate::gateway::Core;
use crate::time::Timestamp;

/// A ladder whose `otp.ladder` begins with the network step
/// (docs/network-authentication.md#as-the-first-step-of-a-ladder): when
/// the step applies (the team has `[number_verification]`, the
/// interaction a phone, no transaction, and the number checks do not
/// refuse the number), the challenge opens at that step, its link goes
/// into the conversation (no code), and the step times out after
/// `otp.advance_after`. `None`: the step is skipped, and the ladder starts
/// at its next step as any other.
pub(super) async fn start_network_ladder(
    core: &Core,
    team: &Team,
    id: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<Option<StartedChallenge>> {
    let Some(number) = network_step_number(core, team, id, req, now).await? else {
        return Ok(None);
    };
    let cid = Uuid::now_v7();
    let done = open_network_step(core, team, (id, cid), req, &number, now).await?;
    let started = done.value;
    let mut refused = None;
    let sent = async {
        let url = links::save_for(
            core,
            team,
            Page::Network,
            (id, cid),
            started.expires_at,
            now,
        );
        let url = url.await?;
        let fill = Fill {
            url: Some(&url),
            ..Fill::default()
        };
        let rec = &done.rec;
        let sent = core.send(
            team,
            rec,
            &rec.channel,
            None,
            Purpose::Link(Page::Network),
            fill,
            None,
            now,
        );
        sent.await.map_err(|e| {
            let failed = Error::Channel(e.to_string());
            refused = Some(e);
            failed
        })
    };
    if let Err(e) = sent.await {
        super::destinations::undo_challenge(core, team, id, cid, &started, now).await?;
        if let Some(refused) = &refused {
            let rec = &done.rec;
            identity_changes::on_send_error(core, team, rec, &rec.channel, refused, now).await?;
        }
        return Err(e);
    }
    super::announce(core, team, &done.rec, cid, &started, Delivery::Ladder, now).await?;
    let accepted = DeliveryState::accepted();
    let step = Some(NETWORK_STEP.to_string());
    let answer = StartedChallenge::of(cid, &started, Delivery::Ladder, step, true, Some(&accepted));
    Ok(Some(answer))
}

/// The number a ladder's network step verifies (E.164), when the step
/// applies to interaction `id` now; `None`: it is skipped.
async fn network_step_number(
    core: &Core,
    team: &Team,
    id: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<Option<String>> {
    if team.number_verification.is_none() || req.transaction.is_some() {
        return Ok(None);
    }
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    let s = team.settings_for(&rec.channel);
    if s.otp.ladder.first().map(String::as_str) != Some(NETWORK_STEP) {
        return Ok(None);
    }
    let Some(phone) = rec.contact.phone.as_deref() else {
        return Ok(None);
    };
    let number = crate::domain::phone::e164(phone).unwrap_or_else(|| phone.to_string());
    let refused = crate::gateway::number_checks::verdict(core, team, &number, false, now).await;
    if matches!(refused, Some(Verdict::Refuse(_))) {
        return Ok(None);
    }
    Ok(Some(number))
}

/// Opens ladder challenge `cid` at its network step, in one unit of
/// work: the subject's checks and send counted as any start, the whole
/// ladder kept (the code sealed for its later steps), the network step
/// recorded as sent to `number`, and its time-out on the due queue.
async fn open_network_step(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    req: &ChallengeRequest,
    number: &str,
    now: Timestamp,
) -> Result<crate::gateway::work::Done<Started>> {
    core.transact(team, id, now, |w| {
        Box::pin(async move {
            let s = w.settings;
            let code = otp::generate(s.otp.length);
            let started = super::decide(core, team, w, req, cid, &code, now)?;
            let sealed_code = reveal::seal(&code, cid, core.pepper())?;
            let step = SentStep {
                index: 0,
                channel: NETWORK_STEP.to_string(),
                destination: number.to_string(),
                message_id: None,
                sent_at: now,
                left_at: None,
                in_flight: 0,
                reason: None,
            };
            if let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == cid) {
                c.channel = Some(NETWORK_STEP.to_string());
                c.delivery_state = Some(DeliveryState::accepted());
                if let Some(o) = c.proof.otp_state_mut() {
                    o.ladder = Some(Ladder {
                        steps: s.otp.ladder.clone(),
                        sent: vec![step],
                        sealed_code,
                        answers: Vec::new(),
                    });
                }
            }
            let due = now.plus(s.otp.advance_after.get()).min(started.expires_at);
            let ttl = started.expires_at.since(now) + std::time::Duration::from_secs(3600);
            w.schedule(&super::steps::due_entry(team, id, cid), due, ttl);
            Ok(Step::Write(started))
        })
    })
    .await
}

/// Applies the operator's `result` to network challenge `cid` of
/// interaction `id` (`domain::network_auth::conclude`) in one commit, with
/// what it announces: the authentication, or `challenge.failed`. Nothing
/// is written for a challenge that is no longer open. A verified answer
/// in a conversation that is not the number's own SMS conversation
/// answers the code its page shows (`otp.length` digits, kept only as its
/// keyed hash) with [`Ending::AwaitingCode`]. A mismatch from
/// [`Source::PostedCode`] is one wrong try (`network_auth::refused_code`).
pub(in crate::gateway) async fn conclude_network(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    (result, source): (NetworkResult, Source),
    now: Timestamp,
) -> Result<(Ending, Option<otp::OtpCode>)> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let s = w.settings;
                // The step-up it may answer, as it stood (the answer ends it).
                let step_up = w.rec.live_step_up(now).cloned();
                let (proof, code) = proof_for(core, &w.rec, cid, s.otp.length);
                let (rec, subject) = w.records();
                let ending = match (result, source) {
                    (NetworkResult::Mismatch, Source::PostedCode) => {
                        network_auth::refused_code(rec, cid, s, now)
                    }
                    _ => network_auth::conclude(rec, subject, (cid, result, proof), s, now),
                };
                match &ending {
                    Ending::Gone => return Ok(Step::Answer((ending, None))),
                    Ending::AwaitingCode => return Ok(Step::Write((ending, code))),
                    Ending::Authenticated => {
                        if let Some(p) = step_up.filter(|_| team.remembers_devices()) {
                            crate::gateway::assertion::validated_devices(core, team, w, &p).await?;
                        }
                        w.announce_authenticated();
                    }
                    Ending::Ended { reason } => {
                        if let Some((c, _)) = w.rec.challenge_at(cid, now) {
                            w.emit(EventData::ChallengeFailed(ChallengeFailed {
                                challenge: FailedChallenge::of(c, 0),
                                reason: Some(reason),
                            }));
                        }
                    }
                    Ending::Open | Ending::MoveOn(_) => {}
                }
                Ok(Step::Write((ending, None)))
            })
        })
        .await?;
    Ok(done.value)
}

/// How a verified answer about `rec`'s number proves challenge `cid`:
/// by itself in the number's own SMS conversation, else by a fresh code
/// of `length` digits typed into the conversation (with that code).
fn proof_for(
    core: &Core,
    rec: &InteractionRecord,
    cid: Uuid,
    length: u32,
) -> (Proof, Option<otp::OtpCode>) {
    let is_sms = core
        .config()
        .channels
        .get(&rec.channel)
        .is_some_and(|c| c.kind.sms_conversation());
    let number = rec.contact.phone.as_deref().unwrap_or_default();
    if network_auth::own_sms_conversation(is_sms, &rec.conversation_id, number) {
        return (Proof::OwnNumber, None);
    }
    let (code, hash) = links::binding::<Network>(core, cid, length, None);
    (Proof::CodeToType(hash), Some(code))
}
