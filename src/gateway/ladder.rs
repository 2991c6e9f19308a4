//! The delivery ladder (docs/api.md#delivery-ladder): an OTP whose one
//! code goes out on the team's `otp.ladder` steps in turn.
//!
//! Which steps may take the code is `domain::ladder`'s. Here: the start
//! (one challenge, then each step's destination counted as it is tried, a
//! provider's refusal passing on to the next step at once), the move to
//! the next step ([`Gateway::advance_ladder`]: on request, on a step's
//! time-out from the due queue, on a `failed` report), and the withdrawal
//! of a message the customer no longer needs.
use std::sync::Arc;

use uuid::Uuid;

use super::challenge_read::ChallengeView;
use super::challenges::StartedChallenge;
use super::poller::Polls;
use super::records::{put, StoredSends};
use super::view;
use super::work::Step;
use super::{Gateway, InteractionView};
use crate::channels::{ChannelError, Fill, Purpose, Sent};
use crate::config::Team;
use crate::domain::challenge::{ChallengeState, Delivery};
use crate::domain::delivery_status::DeliveryState;
use crate::domain::interaction::InteractionRecord;
use crate::domain::ladder::{self, Ladder, SentStep, Target};
use crate::domain::otp::{self, OtpCode};
use crate::domain::reveal;
use crate::domain::start_challenge::{self, ChallengeRequest, Rules};
use crate::error::{Error, Result};
use crate::events::types::{AdvanceReason, ChallengeAdvanced, ChallengeCreated, CreatedChallenge};
use crate::events::EventData;
use crate::store::{keys, Commit, Op};
use crate::time::{Clock, Timestamp};

/// The due-queue entry kind of ladders' step time-outs:
/// `l:<interaction>:<challenge>`.
pub(super) const KIND: &str = "l";

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

/// A move's answer for a challenge that is no longer open: 409
/// `challenge_used` once it succeeded, 410 once it ended otherwise.
fn still_open(state: ChallengeState) -> Result<()> {
    match state {
        ChallengeState::Open => Ok(()),
        ChallengeState::Used => Err(Error::ChallengeUsed),
        ChallengeState::Exhausted => Err(Error::ChallengeExhausted),
        _ => Err(Error::ChallengeExpired),
    }
}

/// When a time-out whose move the store failed is due again.
const TIME_OUT_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a count of a destination's sends is tried against
/// concurrent writers.
const COMMIT_TRIES: usize = 5;

/// A step's message, sent.
struct Took {
    target: Target,
    sent: Sent,
}

impl Gateway {
    /// `POST /v1/interactions/{id}/challenges` with `delivery: "ladder"`:
    /// one challenge, sent on the first step that takes it.
    pub(super) async fn start_ladder(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        req: &ChallengeRequest,
        now: Timestamp,
    ) -> Result<StartedChallenge> {
        let cid = Uuid::now_v7();
        // 1. Open the challenge (the subject's send counted), or refuse.
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    if s.otp.ladder.is_empty() {
                        return Err(Error::invalid("delivery", "the team has no otp.ladder"));
                    }
                    let steps = s.otp.ladder.clone();
                    let targets =
                        ladder::targets(&steps, 0..steps.len(), |c| self.reach(c), &s.otp, &w.rec)?;
                    let code = otp::generate(s.otp.length);
                    let routes = self.routes(team, &w.rec.channel);
                    let rules = Rules {
                        settings: s,
                        routes: &routes,
                        pepper: &self.pepper,
                    };
                    let (rec, subject) = w.records();
                    let started =
                        start_challenge::decide(req, cid, &code, rec, subject, &rules, now)?;
                    let sealed_code = reveal::seal(&code, cid, &self.pepper)?;
                    if let Some(c) = rec.challenge.as_mut() {
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
        // 2. Send on the first step that takes it.
        let took = match self
            .send_on_steps(
                team,
                id,
                &done.rec,
                &targets,
                &code,
                started.expires_at,
                false,
                now,
            )
            .await
        {
            Ok(took) => took,
            Err(e) => {
                // No destination of its own (each step's was given back as it
                // failed): the previous challenge and the subject's send come back.
                self.undo_challenge(team, id, cid, &started, now).await?;
                return Err(e);
            }
        };
        // 3. Record where it went, and when it moves on.
        let step = took.target.channel.clone();
        let done = self
            .record_step(team, id, cid, None, &took, now)
            .await?
            .ok_or(Error::ChallengeExpired)?;
        metrics::counter!("chatgate_challenges_started_total", "method" => started.method.as_str())
            .increment(1);
        let interaction =
            InteractionView::build(&done.rec, None, team.settings_for(&done.rec.channel), now);
        let created = EventData::ChallengeCreated(ChallengeCreated {
            challenge: CreatedChallenge {
                challenge_id: cid,
                delivery: Delivery::Ladder,
                expires_at: started.expires_at,
                method: started.method,
            },
        });
        self.emit(created, now, &interaction).await?;
        self.remember_step(team, id, cid, &took, now).await;
        let (delivery_status, delivery_error) =
            super::challenge_read::delivery_of(Some(&DeliveryState::accepted()));
        Ok(StartedChallenge {
            challenge_id: cid,
            method: view::ChallengeMethod::from(started.method),
            delivery: Some(view::Delivery::from(Delivery::Ladder)),
            channel: Some(step),
            expires_at: started.expires_at,
            attempts_allowed: started.attempts_allowed,
            delivered: true,
            delivery_status,
            delivery_error,
            binding_code: None,
        })
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
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        reason: AdvanceReason,
        now: Timestamp,
    ) -> Result<ChallengeView> {
        // 1. Where it stands, and which steps may take the code next.
        let pair = self.load_pair(team, id, now).await?;
        let rec = pair.rec()?;
        let s = team.settings_for(&rec.channel);
        let (c, state) = rec
            .challenge_at(cid, now)
            .ok_or(Error::NotFound("no such challenge"))?;
        still_open(state)?;
        let no_step = || Error::NoNextStep("the challenge's ladder has no step left");
        let Some(l) = c.ladder.as_ref() else {
            return Err(Error::NoNextStep("the challenge has no delivery ladder"));
        };
        let current = l.current().cloned();
        if reason == AdvanceReason::Timeout {
            let due = l.advance_at(&s.otp).is_some_and(|at| at <= now);
            let delivered = c
                .delivery_state
                .as_ref()
                .is_some_and(|d| d.status.arrived());
            if !due || delivered {
                return Err(no_step());
            }
        }
        let targets = ladder::targets(&l.steps, l.later_steps(), |ch| self.reach(ch), &s.otp, rec)
            .map_err(|_| no_step())?;
        let code = reveal::open(&l.sealed_code, cid, &self.pepper)?;
        let expires_at = c.expires_at;
        // 2. Send on the next step that takes it (the first must be
        // within its send limit).
        let took = self
            .send_on_steps(team, id, rec, &targets, &code, expires_at, true, now)
            .await?;
        // 3. Record the move; the previous step's message is withdrawn.
        let previous = current.as_ref().map(|p| p.channel.clone());
        let done = self
            .record_step(team, id, cid, current.as_ref(), &took, now)
            .await?;
        let Some(done) = done else {
            return self.lost_move(team, id, cid, &took, now).await;
        };
        if let Some(p) = &current {
            if let Some(m) = &p.message_id {
                self.channels.revoke(&p.channel, m).await;
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
        self.emit(advanced, now, &interaction).await?;
        metrics::counter!("chatgate_ladder_advances_total", "reason" => reason.as_str())
            .increment(1);
        // Reports that came first may move it on again (boxed, for the
        // recursion); the answer is the read as of this move.
        Box::pin(self.remember_step(team, id, cid, &took, now)).await;
        Ok(read)
    }

    /// A move whose code went out on `took`'s step while the challenge
    /// ended, or another move (a report, a time-out, a second request)
    /// took it on first: this one did not happen. Its destination's count
    /// is given back and its message withdrawn where the step can; the
    /// answer is where the challenge stands now — its read while it is
    /// still open (the ladder moved), else 409 `challenge_used` or 410.
    async fn lost_move(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        took: &Took,
        now: Timestamp,
    ) -> Result<ChallengeView> {
        let pair = self.load_pair(team, id, now).await?;
        let rec = pair.rec()?;
        let dkey = self.destination_key(team, &took.target.destination);
        self.give_back_destination(&dkey, team.settings_for(&rec.channel), now)
            .await?;
        if let Some(m) = &took.sent.message_id {
            self.channels.revoke(&took.target.channel, m).await;
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
    async fn remember_step(&self, team: &Team, id: Uuid, cid: Uuid, took: &Took, now: Timestamp) {
        let Some(message_id) = took.sent.message_id.as_deref() else {
            return;
        };
        let channel = &took.target.channel;
        if let Err(e) = self
            .remember_message(team, id, cid, channel, message_id, now)
            .await
        {
            tracing::warn!(error = %e, "a ladder step's message id could not be remembered");
        }
    }

    /// Whether challenge `cid` of `rec` has a ladder with a step after the
    /// current one that could take its code (settings `s`).
    pub(super) fn ladder_has_next(
        &self,
        rec: &InteractionRecord,
        cid: Uuid,
        s: &crate::config::Settings,
    ) -> bool {
        let Some(l) = rec
            .challenge
            .as_ref()
            .filter(|c| c.id == cid)
            .and_then(|c| c.ladder.as_ref())
        else {
            return false;
        };
        ladder::targets(&l.steps, l.later_steps(), |ch| self.reach(ch), &s.otp, rec).is_ok()
    }

    /// The sweeper's turn at a ladder's due-queue entry `entry` (for
    /// challenge `cid` of interaction `id`): its current step timed out.
    /// The entry is taken off the queue — of several instances, only the
    /// one holding its lease does — and the move is handed to the poller,
    /// which sends on the next step beside the sweep: no provider's round
    /// trip holds up a time-out. A full poller leaves the entry at its
    /// lease, due again. Never sends itself.
    pub(super) async fn claim_ladder_due(
        &self,
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
        self.store.commit(vec![entry]).await?;
        let team_id = team.id.clone();
        slot.hand(Box::new(move |gw, clock| {
            Box::pin(async move { gw.time_out_step(&team_id, id, cid, clock.as_ref()).await })
        }));
        Ok(())
    }

    /// The poller's move of a step that timed out. A move schedules its
    /// own entry anew; one that cannot be made (delivered, ended, no step
    /// left, the next destination's limit used up, every provider
    /// refusing) leaves the ladder where it is. A store that fails puts the
    /// entry back, due again in a few seconds.
    async fn time_out_step(&self, team_id: &str, id: Uuid, cid: Uuid, clock: &dyn Clock) {
        let Some(team) = self.config.teams.get(team_id) else {
            return;
        };
        let now = clock.now();
        match self
            .advance_ladder(team, id, cid, AdvanceReason::Timeout, now)
            .await
        {
            Ok(_) => {}
            Err(Error::StoreUnavailable) => {
                let again = Op::QueueAdd {
                    key: keys::due_queue(&team.id),
                    member: due_member(id, cid),
                    score: now.plus(TIME_OUT_RETRY).unix_millis(),
                    ttl: std::time::Duration::from_secs(3600),
                };
                if let Err(e) = self.store.commit(vec![again]).await {
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
    pub(super) async fn revoke_ladder(&self, ladder: &Ladder) {
        for step in &ladder.sent {
            if let Some(m) = &step.message_id {
                self.channels.revoke(&step.channel, m).await;
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
        &self,
        team: &Team,
        id: Uuid,
        rec: &InteractionRecord,
        targets: &[Target],
        code: &OtpCode,
        expires_at: Timestamp,
        strict: bool,
        now: Timestamp,
    ) -> Result<Took> {
        let s = team.settings_for(&rec.channel);
        let ttl = expires_at.since(now);
        let mut limited = None;
        let mut refused: Option<ChannelError> = None;
        for (i, target) in targets.iter().enumerate() {
            let dkey = self.destination_key(team, &target.destination);
            match self
                .count_destination_now(team, &target.destination, s, now)
                .await
            {
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
            match self
                .send(team, rec, &target.channel, to, Purpose::Otp, fill)
                .await
            {
                Ok(sent) => {
                    return Ok(Took {
                        target: target.clone(),
                        sent,
                    })
                }
                Err(e) => {
                    self.give_back_destination(&dkey, s, now).await?;
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
        &self,
        team: &Team,
        destination: &str,
        s: &crate::config::Settings,
        now: Timestamp,
    ) -> Result<()> {
        for _ in 0..COMMIT_TRIES {
            let op = self.count_destination(team, destination, s, now).await?;
            if self.store.commit(vec![op]).await? == Commit::Applied {
                return Ok(());
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// Gives back the send counted at `now` to the destination under `dkey`.
    async fn give_back_destination(
        &self,
        dkey: &str,
        s: &crate::config::Settings,
        now: Timestamp,
    ) -> Result<()> {
        for _ in 0..COMMIT_TRIES {
            let read = self.destination_sends(dkey).await?;
            let Some(mut sends) = read.value else {
                return Ok(());
            };
            sends.give_back(now);
            let sends = StoredSends::from(&sends);
            let op = put(dkey, read.version, &sends, Some(s.otp.send_window.get()))?;
            if self.store.commit(vec![op]).await? == Commit::Applied {
                return Ok(());
            }
        }
        Err(Error::StoreUnavailable)
    }

    /// Records that `took`'s step has the code of challenge `cid` now (the
    /// move from `from`, the step that had it; `None` at the start), and
    /// schedules its time-out unless it is the last step. `None` when the
    /// challenge ended or moved meanwhile (nothing written).
    async fn record_step(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        from: Option<&SentStep>,
        took: &Took,
        now: Timestamp,
    ) -> Result<Option<super::work::Done<()>>> {
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == cid) else {
                        return Ok(Step::Answer(false));
                    };
                    let open = c.state(now) == ChallengeState::Open;
                    let (Some(l), true) = (c.ladder.as_mut(), open) else {
                        return Ok(Step::Answer(false));
                    };
                    if l.current() != from {
                        return Ok(Step::Answer(false));
                    }
                    // The step left behind keeps how far its message got.
                    let left_at = c.delivery_state.as_ref().map(|d| d.status);
                    if let Some(previous) = l.sent.last_mut() {
                        previous.left_at = left_at;
                    }
                    l.sent.push(SentStep {
                        index: took.target.index,
                        channel: took.target.channel.clone(),
                        destination: took.target.destination.clone(),
                        message_id: took.sent.message_id.clone(),
                        sent_at: now,
                        left_at: None,
                    });
                    let due = l.advance_at(&s.otp);
                    c.channel = Some(took.target.channel.clone());
                    c.delivery_state = Some(DeliveryState::accepted());
                    let expires_at = c.expires_at;
                    let queue = keys::due_queue(&team.id);
                    let member = due_member(id, cid);
                    w.also(match due {
                        Some(at) => Op::QueueAdd {
                            key: queue,
                            member,
                            score: at.unix_millis(),
                            ttl: expires_at.since(now) + std::time::Duration::from_secs(3600),
                        },
                        None => Op::QueueRemove { key: queue, member },
                    });
                    Ok(Step::Write(true))
                })
            })
            .await?;
        Ok(if done.value {
            Some(super::work::Done {
                value: (),
                view: done.view,
                rec: done.rec,
            })
        } else {
            None
        })
    }
}
