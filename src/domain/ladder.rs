//! The delivery ladder (docs/api.md#delivery-ladder): one OTP challenge
//! whose code goes out on the team's `otp.ladder` channels in turn, the
//! same code each time, until one delivers it.
//!
//! Which steps may take the code ([`targets`]) is decided here on plain
//! values; the gateway counts each step's destination, sends, and moves
//! the ladder on (`gateway::ladder`).
pub use super::challenge::{AdvanceReason, Ladder, SentStep};
use super::challenge::{Challenge, ChallengeState, Stage};
use super::delivery_status::DeliveryState;
use super::destination_policy::{self, Reach};
use super::interaction::InteractionRecord;
use super::settings::OtpSettings;
use crate::error::Error;
use crate::time::Timestamp;
use std::time::Duration;

/// How long a step's send (or a claimed time-out) holds its due entry
/// before another instance may take it over: the sender renews it while
/// its provider answers, and an instance that dies stops renewing
/// (docs/decisions/0097-a-ladder-time-out-is-a-lease.md).
pub const LEASE: Duration = Duration::from_secs(4);

/// How long after an instance's death another instance has taken over
/// the step it was sending, at most: its [`LEASE`] runs out, and the
/// next sweep (every 0.5 s) of any instance takes the entry. An
/// `otp.advance_after` shorter than this cannot be kept across a death
/// (a warning at start-up and reload,
/// docs/decisions/0200-an-advance-after-shorter-than-a-takeover-warns.md).
pub const TAKEOVER: Duration = Duration::from_secs(5);

/// A step that may take the code: where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub index: usize,
    pub channel: String,
    /// The phone number (E.164) or address, whose send limit it counts.
    pub destination: String,
}

/// Why a step was passed over.
#[derive(Debug)]
pub enum Skip {
    /// The contact has nothing this step sends to.
    NoDestination,
    /// It is the interaction's own channel under `require_other_channel`.
    OwnChannel,
    /// The destination rules refuse it (the problem they answer).
    Refused(Error),
}

/// Where step `channel`, reaching people as `reach`, would send the code
/// of interaction `rec`, or why it is passed over.
pub fn target(
    index: usize,
    channel: &str,
    reach: Reach,
    otp: &OtpSettings,
    rec: &InteractionRecord,
) -> Result<Target, Skip> {
    if otp.require_other_channel && channel == rec.channel {
        return Err(Skip::OwnChannel);
    }
    let on_file = match reach {
        Reach::Phone | Reach::Voice | Reach::PhoneChat => rec.contact.phone.clone(),
        Reach::Email => rec.contact.email.clone(),
        Reach::Conversation => None,
    };
    let Some(on_file) = on_file else {
        return Err(Skip::NoDestination);
    };
    let recipient = destination_policy::recipient(
        reach,
        otp,
        &rec.contact,
        &rec.conversation_id,
        Some(on_file.clone()),
    )
    .map_err(Skip::Refused)?;
    let destination = match reach {
        Reach::Phone | Reach::Voice | Reach::PhoneChat => {
            super::phone::e164(&on_file).unwrap_or(recipient.unwrap_or(on_file))
        }
        _ => recipient.unwrap_or(on_file),
    };
    Ok(Target {
        index,
        channel: channel.to_string(),
        destination,
    })
}

/// The steps of `indices` (of `steps`, each reaching people as `reach_of`
/// says) that may take the code of `rec`, in order. `Err`: none may —
/// 422 when no step has a destination, else the first refusal of the
/// destination rules (403/422).
pub fn targets(
    steps: &[String],
    indices: std::ops::Range<usize>,
    reach_of: impl Fn(&str) -> Reach,
    otp: &OtpSettings,
    rec: &InteractionRecord,
) -> Result<Vec<Target>, Error> {
    let mut found = Vec::new();
    let mut refused = None;
    for i in indices {
        let Some(channel) = steps.get(i) else { break };
        match target(i, channel, reach_of(channel), otp, rec) {
            Ok(t) => found.push(t),
            Err(Skip::Refused(e)) => {
                refused.get_or_insert(e);
            }
            Err(Skip::NoDestination | Skip::OwnChannel) => {}
        }
    }
    if !found.is_empty() {
        return Ok(found);
    }
    Err(refused.unwrap_or_else(|| {
        Error::invalid(
            "delivery",
            "no step of otp.ladder can reach the interaction's contact",
        )
    }))
}

/// A challenge that is no longer open answers as it ended: 409
/// `challenge_used`, 410 `challenge_exhausted` or `challenge_expired`.
pub fn still_open(state: ChallengeState) -> Result<(), Error> {
    match state {
        ChallengeState::Open => Ok(()),
        ChallengeState::Used => Err(Error::ChallengeUsed),
        ChallengeState::Exhausted => Err(Error::ChallengeExhausted),
        _ => Err(Error::ChallengeExpired),
    }
}

/// The verdict on moving challenge `c` of `rec` (which reads `state` at
/// `now`) on to its ladder's next step: the later steps that may take
/// the code, in order. `timed_out`: the move is the current step's
/// time-out, not a request or a failed report. The rungs, in order:
///
/// 1. a challenge no longer open answers as it ended ([`still_open`]);
/// 2. a challenge without a ladder: 409 `no_next_step`;
/// 3. the current step's send still under way: that move is this one,
///    and nothing more is sent (`Ok(None)`: the answer is the read);
/// 4. a time-out whose step is not yet due, or whose message arrived,
///    or a network step whose verified answer waits for its code,
///    changes nothing (`no_next_step`);
/// 5. no later step can take the code: `no_next_step`.
pub fn next_move(
    c: &Challenge,
    state: ChallengeState,
    timed_out: bool,
    reach_of: impl Fn(&str) -> Reach,
    otp: &OtpSettings,
    rec: &InteractionRecord,
    now: Timestamp,
) -> Result<Option<Vec<Target>>, Error> {
    still_open(state)?;
    let no_step = || Error::NoNextStep("the challenge's ladder has no step left");
    let Some(l) = c.ladder() else {
        return Err(Error::NoNextStep("the challenge has no delivery ladder"));
    };
    if l.current().is_some_and(|s| s.in_flight > 0) {
        return Ok(None);
    }
    if timed_out {
        let due = l.advance_at(otp).is_some_and(|at| at <= now);
        let arrived = c
            .delivery_state
            .as_ref()
            .is_some_and(|d| d.status.arrived());
        if !due || arrived || c.awaits_code() {
            return Err(no_step());
        }
    }
    let later = targets(&l.steps, l.later_steps(), reach_of, otp, rec);
    later.map(Some).map_err(|_| no_step())
}

/// What [`record_step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepRecord {
    /// The challenge is no longer open, or its ladder moved meanwhile:
    /// nothing changed, the move did not happen.
    Lost,
    /// The step has the code now; it times out at `time_out_at` (`None`:
    /// the last step, which stays).
    Recorded { time_out_at: Option<Timestamp> },
}

/// Records on challenge `c` (at `now`) that step `next` has its code,
/// moved from `from`, the step that had it (`None` at the start). The
/// step left behind keeps how far its message got; the challenge's
/// delivery state starts again at `accepted`.
pub fn record_step(
    c: &mut Challenge,
    from: Option<&SentStep>,
    next: SentStep,
    otp: &OtpSettings,
    now: Timestamp,
) -> StepRecord {
    let open = c.state(now) == ChallengeState::Open;
    let (Some(l), true) = (c.proof.ladder_mut(), open) else {
        return StepRecord::Lost;
    };
    if !same_step(l.current(), from) {
        return StepRecord::Lost;
    }
    let left_at = c.delivery_state.as_ref().map(|d| d.status);
    if let Some(previous) = l.sent.last_mut() {
        previous.left_at = left_at;
    }
    c.channel = Some(next.channel.clone());
    l.sent.push(next);
    // Past the network step, the code its answer's page showed proves nothing.
    c.stage = Stage::Open;
    c.delivery_state = Some(DeliveryState::accepted());
    StepRecord::Recorded {
        time_out_at: l.advance_at(otp),
    }
}

/// Which of `targets` takes the code: the first whose destination
/// `take` counts one more send for (`Err(RateLimited)` at its limit).
/// The rungs, in order:
///
/// 1. `strict` (a move the bot asked for, or a time-out): the first
///    step's limit is the answer, 429 — the ladder stays;
/// 2. a step at its limit is passed over;
/// 3. none within its limit: 429; no step at all: `no_next_step`.
pub fn pick(
    targets: &[Target],
    strict: bool,
    mut take: impl FnMut(&Target) -> Result<(), Error>,
) -> Result<usize, Error> {
    let mut limited = None;
    for (i, target) in targets.iter().enumerate() {
        match take(target) {
            Ok(()) => return Ok(i),
            Err(e @ Error::RateLimited { .. }) if strict && i == 0 => return Err(e),
            Err(e @ Error::RateLimited { .. }) => {
                limited.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(limited.unwrap_or(Error::NoNextStep("the challenge's ladder has no step left")))
}

/// Whether `current` is `step`, the one a move recorded (whatever
/// became of its message since).
fn is_step(current: &SentStep, step: &SentStep) -> bool {
    current.index == step.index
        && current.sent_at == step.sent_at
        && current.destination == step.destination
}

/// Whether `current` and `from` are the same step (or both none).
fn same_step(current: Option<&SentStep>, from: Option<&SentStep>) -> bool {
    match (current, from) {
        (None, None) => true,
        (Some(a), Some(b)) => is_step(a, b),
        _ => false,
    }
}

/// Whether challenge `c` is open at `now` and its ladder still stands at
/// `from`, the step a move started from (`None`: no step yet).
pub fn stands_at(c: &Challenge, from: Option<&SentStep>, now: Timestamp) -> bool {
    let current = c.ladder().and_then(|l| l.current());
    c.state(now) == ChallengeState::Open && c.ladder().is_some() && same_step(current, from)
}

/// Takes back step `refused` of challenge `c`, whose provider refused
/// the code (its own send, `refused.in_flight`): the step before it has
/// the code again, with `before`, the delivery state it had when the
/// move was recorded. `false` (nothing changed) when `refused` is not
/// the current step, or another send of it is under way.
pub fn withdraw_step(c: &mut Challenge, refused: &SentStep, before: Option<DeliveryState>) -> bool {
    let Some(l) = c.proof.ladder_mut() else {
        return false;
    };
    let mine = l
        .current()
        .is_some_and(|s| is_step(s, refused) && s.in_flight == refused.in_flight);
    if !mine {
        return false;
    }
    l.sent.pop();
    if let Some(previous) = l.sent.last_mut() {
        previous.left_at = None;
    }
    c.channel = l.current().map(|s| s.channel.clone());
    c.delivery_state = before;
    true
}

/// Records on challenge `c` (at `now`) that the provider took step
/// `step`'s message, as `message_id` (`None`: it names none, or the
/// step is given up on): its send is no longer under way. `false` when
/// the challenge is no longer open or has moved past the step (the
/// message is not the challenge's any more), or another sender recorded
/// the step's answer first — of the senders of one step (its first send
/// and its resend), one records it, and so one announces its move
/// ([`announced_move`]).
pub fn record_message(
    c: &mut Challenge,
    step: &SentStep,
    message_id: Option<String>,
    now: Timestamp,
) -> bool {
    let open = c.state(now) == ChallengeState::Open;
    let current = c.proof.ladder_mut().and_then(|l| l.sent.last_mut());
    let Some(current) = current.filter(|s| open && is_step(s, step) && s.in_flight > 0) else {
        return false;
    };
    current.message_id = message_id;
    current.in_flight = 0;
    true
}

/// The move that brought challenge `c`'s ladder to its current step:
/// the channel that had the code before it and why it moved — what its
/// `challenge.advanced` says, committed with the step's answer
/// ([`record_message`]), whichever instance records it (the mover, or the
/// one that took the step over after the mover died). `None` on the
/// ladder's first step, which no move took. A step recorded before moves
/// kept their reason is taken as a time-out's.
pub fn announced_move(c: &Challenge) -> Option<(String, AdvanceReason)> {
    let l = c.ladder()?;
    let [.., previous, current] = l.sent.as_slice() else {
        return None;
    };
    let reason = current.reason.unwrap_or(AdvanceReason::Timeout);
    Some((previous.channel.clone(), reason))
}

/// What a ladder's time-out that came due does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeOut {
    /// Moves the code on, if [`next_move`] finds a step that may take it.
    Move,
    /// The current step's first send was recorded and its sender died
    /// before the answer was recorded: it is sent once more.
    Resend(SentStep),
    /// Its one resend's sender died too: the step is taken as sent (no
    /// third message), and times out as any other.
    GiveUp(SentStep),
}

/// The verdict on a time-out of challenge `c` (which reads `state`):
/// a current step whose send is still recorded as under way is resent
/// once, then given up on; anything else is a move.
pub fn time_out(c: &Challenge, state: ChallengeState) -> TimeOut {
    let current = c.ladder().and_then(|l| l.current());
    match current {
        Some(s) if state == ChallengeState::Open && s.in_flight == 1 => TimeOut::Resend(s.clone()),
        Some(s) if state == ChallengeState::Open && s.in_flight > 1 => TimeOut::GiveUp(s.clone()),
        _ => TimeOut::Move,
    }
}

/// Claims the one resend of step `step` of challenge `c` (see
/// [`TimeOut::Resend`]); `false` when it is not the current step's
/// first send any more (answered, withdrawn, resent by another).
pub fn claim_resend(c: &mut Challenge, step: &SentStep, now: Timestamp) -> bool {
    let open = c.state(now) == ChallengeState::Open;
    let current = c.proof.ladder_mut().and_then(|l| l.sent.last_mut());
    match current {
        Some(s) if open && is_step(s, step) && s.in_flight == 1 => {
            s.in_flight = 2;
            true
        }
        _ => false,
    }
}

/// When challenge `c`'s ladder is next due on the due queue, at `now`:
/// while its current step's send is under way, at `lease` from now (a
/// sender that dies leaves it to another); else at the current step's
/// time-out — also when that has passed already (a step whose answer was
/// recorded late, after a takeover's resend, moves on at once, never
/// stops). `None` (no entry) when the challenge is no longer open, its
/// message arrived, it is on its last step, or its network step's
/// verified answer waits for its code (only `advance` moves it then).
pub fn next_due(
    c: &Challenge,
    otp: &OtpSettings,
    now: Timestamp,
    lease: Duration,
) -> Option<Timestamp> {
    let l = c.ladder()?;
    if c.state(now) != ChallengeState::Open || c.awaits_code() {
        return None;
    }
    if l.current()?.in_flight > 0 {
        return Some(now.plus(lease));
    }
    let arrived = c
        .delivery_state
        .as_ref()
        .is_some_and(|d| d.status.arrived());
    l.advance_at(otp).filter(|_| !arrived)
}

/// [`next_due`] after a move that was tried and did not happen (a
/// time-out that found the next destination at its limit, or every
/// provider refusing): a time-out passed already was acted on by that
/// move, and is not due again (it would be tried again at every sweep);
/// one still ahead stays.
pub fn due_after_failed_move(
    c: &Challenge,
    otp: &OtpSettings,
    now: Timestamp,
    lease: Duration,
) -> Option<Timestamp> {
    next_due(c, otp, now, lease).filter(|at| *at > now)
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::abuse::NumberType;
    use crate::domain::interaction::Contact;

    fn rec(phone: Option<&str>, email: Option<&str>) -> InteractionRecord {
        let mut r = InteractionRecord::new(
            Uuid::now_v7(),
            "acme",
            "webchat",
            "conv-1",
            Timestamp::from_unix_millis(0),
        );
        r.contact = Contact {
            phone: phone.map(str::to_string),
            email: email.map(str::to_string),
        };
        r
    }

    fn reach(channel: &str) -> Reach {
        match channel {
            "email" => Reach::Email,
            "wa" => Reach::PhoneChat,
            "webchat" => Reach::Conversation,
            _ => Reach::Phone,
        }
    }

    fn steps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn steps_without_a_destination_or_on_the_own_channel_are_skipped() {
        let otp = OtpSettings::default();
        let s = steps(&["wa", "sms", "email"]);
        let r = rec(None, Some("ada@example.com"));
        let t = targets(&s, 0..3, reach, &otp, &r).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].index, t[0].destination.as_str()),
            (2, "ada@example.com")
        );

        let r = rec(Some("+4407400123456"), None);
        let t = targets(&s, 0..3, reach, &otp, &r).unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.channel.as_str()).collect();
        assert_eq!(names, ["wa", "sms"]);
        assert_eq!(t[0].destination, "+447400123456", "E.164");

        let mut own = rec(Some("+447400123456"), None);
        own.channel = "wa".into();
        let strict = OtpSettings {
            require_other_channel: true,
            ..OtpSettings::default()
        };
        let t = targets(&s, 0..3, reach, &strict, &own).unwrap();
        assert_eq!(t[0].channel, "sms");

        let nobody = rec(None, None);
        let e = targets(&s, 0..3, reach, &otp, &nobody).unwrap_err();
        assert!(matches!(e, Error::Unprocessable(_)), "{e:?}");
    }

    #[test]
    fn a_destination_the_rules_refuse_is_skipped_and_all_refused_is_403() {
        let otp = OtpSettings {
            sms_number_types: vec![NumberType::Mobile],
            ..OtpSettings::default()
        };
        // A UK fixed line: refused on every phone step.
        let r = rec(Some("+442071838750"), Some("ada@example.com"));
        let s = steps(&["wa", "sms", "email"]);
        let t = targets(&s, 0..3, reach, &otp, &r).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].channel, "email");
        let e = targets(&s, 0..2, reach, &otp, &r).unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    }

    #[test]
    fn later_steps_follow_the_current_one_and_the_last_stays() {
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let mut l = Ladder {
            steps: steps(&["wa", "sms", "email"]),
            sent: Vec::new(),
            sealed_code: String::new(),
            answers: Vec::new(),
        };
        assert_eq!(l.later_steps(), 0..3);
        l.sent.push(SentStep {
            index: 1,
            channel: "sms".into(),
            destination: "+447400123456".into(),
            message_id: None,
            sent_at: now,
            left_at: None,
            in_flight: 0,
            reason: None,
        });
        assert_eq!(l.later_steps(), 2..3);
        assert_eq!(l.advance_at(&otp), Some(now.plus(otp.advance_after.get())));
        l.sent.push(SentStep {
            index: 2,
            channel: "email".into(),
            destination: "ada@example.com".into(),
            message_id: None,
            sent_at: now,
            left_at: None,
            in_flight: 0,
            reason: None,
        });
        assert_eq!(l.later_steps(), 3..3);
        assert_eq!(l.advance_at(&otp), None, "the last step stays");
        assert_eq!(l.via(), ["sms", "email"]);
    }

    #[test]
    fn receipts_count_for_the_current_step_and_an_arrival_once() {
        use crate::domain::delivery_status::DeliveryStatus;
        let now = Timestamp::from_unix_millis(1_000_000);
        let step = |index: usize, m: &str, left_at: Option<DeliveryStatus>| SentStep {
            index,
            channel: format!("c{index}"),
            destination: "+447400123456".into(),
            message_id: Some(m.into()),
            sent_at: now,
            left_at,
            in_flight: 0,
            reason: None,
        };
        let mut l = Ladder {
            steps: steps(&["wa", "tg", "sms"]),
            sent: vec![step(0, "wamid.1", None)],
            sealed_code: String::new(),
            answers: Vec::new(),
        };
        assert!(l.is_current_message("wamid.1"));
        assert!(!l.arrived_before());
        l.sent[0].left_at = Some(DeliveryStatus::Failed);
        l.sent.push(step(1, "req-1", None));
        assert!(!l.is_current_message("wamid.1"), "a step left behind");
        assert!(l.is_current_message("req-1"));
        assert!(!l.arrived_before(), "it failed");
        l.sent[1].left_at = Some(DeliveryStatus::Delivered);
        l.sent.push(step(2, "SM1", None));
        assert!(l.arrived_before(), "announced on tg already");
    }

    /// An open OTP challenge at `now` on the ladder wa, sms, email, before
    /// any step took it.
    fn ladder_challenge(otp: &OtpSettings, now: Timestamp) -> Challenge {
        use crate::domain::challenge::{Delivery, Entry, OtpState, Proof};
        Challenge {
            id: Uuid::now_v7(),
            proof: Proof::Otp(OtpState {
                ladder: Some(Ladder {
                    steps: steps(&["wa", "sms", "email"]),
                    sent: Vec::new(),
                    sealed_code: String::new(),
                    answers: Vec::new(),
                }),
                ..OtpState::new(Entry::Chat)
            }),
            delivery: Delivery::Ladder,
            code_hash: String::new(),
            sealed_code: None,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: 3,
            step_up: false,
            channel: None,
            delivery_state: None,
            transaction: None,
            stage: Stage::Open,
        }
    }

    /// One test per rung of [`next_move`].
    #[test]
    fn a_move_needs_an_open_challenge_a_ladder_a_due_step_and_a_step_left() {
        use crate::domain::delivery_status::{DeliveryState, DeliveryStatus};
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let r = rec(Some("+447400123456"), Some("ada@example.com"));
        let sent = |index: usize, channel: &str| SentStep {
            index,
            channel: channel.into(),
            destination: "+447400123456".into(),
            message_id: None,
            sent_at: now,
            left_at: None,
            in_flight: 0,
            reason: None,
        };
        let mut c = ladder_challenge(&otp, now);
        c.channel = Some("wa".into());
        c.delivery_state = Some(DeliveryState::accepted());
        c.proof.ladder_mut().unwrap().sent.push(sent(0, "wa"));
        let open = ChallengeState::Open;
        let moves = |c: &Challenge, state, timed_out, at| {
            next_move(c, state, timed_out, reach, &otp, &r, at)
        };
        // 1. Not open: answered as it ended.
        let e = moves(&c, ChallengeState::Used, false, now).unwrap_err();
        assert!(matches!(e, Error::ChallengeUsed), "{e:?}");
        let e = moves(&c, ChallengeState::Exhausted, false, now).unwrap_err();
        assert!(matches!(e, Error::ChallengeExhausted), "{e:?}");
        let e = moves(&c, ChallengeState::Replaced, false, now).unwrap_err();
        assert!(matches!(e, Error::ChallengeExpired), "{e:?}");
        // A request moves at once: the later steps, in order.
        let t = moves(&c, open, false, now).unwrap().unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.channel.as_str()).collect();
        assert_eq!(names, ["sms", "email"]);
        // 4. A time-out before the step is due, or after it arrived: nothing.
        let e = moves(&c, open, true, now).unwrap_err();
        assert!(matches!(e, Error::NoNextStep(_)), "{e:?}");
        let due = now.plus(otp.advance_after.get());
        assert_eq!(moves(&c, open, true, due).unwrap().unwrap().len(), 2);
        // 3. While the current step's send is under way: that move.
        c.proof.ladder_mut().unwrap().sent[0].in_flight = 1;
        assert!(moves(&c, open, false, now).unwrap().is_none());
        assert!(moves(&c, open, true, due).unwrap().is_none());
        c.proof.ladder_mut().unwrap().sent[0].in_flight = 0;
        c.delivery_state = Some(DeliveryState {
            status: DeliveryStatus::Delivered,
            error: None,
        });
        let e = moves(&c, open, true, due).unwrap_err();
        assert!(matches!(e, Error::NoNextStep(_)), "{e:?}");
        // 5. On the last step: no step left.
        c.proof.ladder_mut().unwrap().sent.push(sent(2, "email"));
        let e = moves(&c, open, false, now).unwrap_err();
        assert!(matches!(e, Error::NoNextStep(_)), "{e:?}");
        // 2. No ladder.
        c.proof.otp_state_mut().unwrap().ladder = None;
        let e = moves(&c, open, false, now).unwrap_err();
        assert!(matches!(e, Error::NoNextStep(_)), "{e:?}");
    }

    /// [`record_step`]: a move from the step that has the code is
    /// recorded; one from another step, or on a challenge no longer open,
    /// is lost.
    #[test]
    fn a_step_is_recorded_only_from_the_current_one_while_open() {
        use crate::domain::delivery_status::DeliveryStatus;
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let step = |index: usize, channel: &str| SentStep {
            index,
            channel: channel.into(),
            destination: "+447400123456".into(),
            message_id: Some(format!("m{index}")),
            sent_at: now,
            left_at: None,
            in_flight: 0,
            reason: None,
        };
        let mut c = ladder_challenge(&otp, now);
        let due = Some(now.plus(otp.advance_after.get()));
        let first = record_step(&mut c, None, step(0, "wa"), &otp, now);
        assert_eq!(first, StepRecord::Recorded { time_out_at: due });
        assert_eq!(c.channel.as_deref(), Some("wa"));
        // A second start's record (from no step) lost to the first.
        assert_eq!(
            record_step(&mut c, None, step(1, "sms"), &otp, now),
            StepRecord::Lost
        );
        c.delivery_state.as_mut().unwrap().status = DeliveryStatus::Failed;
        let from = c.ladder().unwrap().current().cloned();
        let moved = record_step(&mut c, from.as_ref(), step(1, "sms"), &otp, now);
        assert_eq!(moved, StepRecord::Recorded { time_out_at: due });
        let l = c.ladder().unwrap();
        assert_eq!(
            l.sent[0].left_at,
            Some(DeliveryStatus::Failed),
            "kept where it got"
        );
        assert_eq!(
            c.delivery_state.as_ref().unwrap().status,
            DeliveryStatus::Accepted
        );
        // The last step stays: no time-out.
        let from = l.current().cloned();
        let last = record_step(&mut c, from.as_ref(), step(2, "email"), &otp, now);
        assert_eq!(last, StepRecord::Recorded { time_out_at: None });
        // Past its end: lost.
        let from = c.ladder().unwrap().current().cloned();
        let late = c.expires_at;
        assert_eq!(
            record_step(&mut c, from.as_ref(), step(2, "email"), &otp, late),
            StepRecord::Lost
        );
    }

    fn target(index: usize, channel: &str) -> Target {
        Target {
            index,
            channel: channel.into(),
            destination: "+447400123456".into(),
        }
    }

    /// One test per rung of [`pick`].
    #[test]
    fn the_first_step_within_its_limit_takes_the_code() {
        let limited = || Error::RateLimited { retry_after: 60 };
        let t = [target(1, "tg"), target(2, "sms")];
        // Within its limit: the first.
        assert_eq!(pick(&t, true, |_| Ok(())).unwrap(), 0);
        // 1. Strict: the first step's limit is the answer.
        let first_full = |x: &Target| if x.index == 1 { Err(limited()) } else { Ok(()) };
        let e = pick(&t, true, first_full).unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
        // 2. Not strict: passed over.
        assert_eq!(pick(&t, false, first_full).unwrap(), 1);
        // 3. None within its limit: 429; no step at all: no_next_step.
        let e = pick(&t, false, |_| Err(limited())).unwrap_err();
        assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
        let e = pick(&[], true, |_| Ok(())).unwrap_err();
        assert!(matches!(e, Error::NoNextStep(_)), "{e:?}");
    }

    /// A ladder on wa (answered) then sms, its send under way, at `now`.
    fn sending(otp: &OtpSettings, now: Timestamp) -> (Challenge, SentStep) {
        use crate::domain::delivery_status::{DeliveryState, DeliveryStatus};
        let mut c = ladder_challenge(otp, now);
        let wa = SentStep {
            index: 0,
            channel: "wa".into(),
            destination: "+447400123456".into(),
            message_id: Some("wamid.1".into()),
            sent_at: now,
            left_at: None,
            in_flight: 0,
            reason: None,
        };
        assert!(record_step(&mut c, None, wa.clone(), otp, now) != StepRecord::Lost);
        c.delivery_state = Some(DeliveryState {
            status: DeliveryStatus::Sent,
            error: None,
        });
        let sms = SentStep {
            index: 1,
            channel: "sms".into(),
            message_id: None,
            in_flight: 1,
            reason: Some(AdvanceReason::Requested),
            ..wa.clone()
        };
        assert!(record_step(&mut c, Some(&wa), sms.clone(), otp, now) != StepRecord::Lost);
        (c, sms)
    }

    /// [`stands_at`], [`withdraw_step`], [`record_message`]: a move stands
    /// only where it started; a refused step gives the code back to the
    /// step before it; an answer is recorded only on its own step.
    #[test]
    fn a_step_is_withdrawn_or_answered_only_as_its_own_send() {
        use crate::domain::delivery_status::{DeliveryState, DeliveryStatus};
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let (c, sms) = sending(&otp, now);
        let wa = c.ladder().unwrap().sent[0].clone();
        assert!(stands_at(&c, Some(&sms), now));
        assert!(!stands_at(&c, Some(&wa), now), "moved on");
        assert!(!stands_at(&c, None, now));
        assert!(!stands_at(&c, Some(&sms), c.expires_at), "ended");

        // Withdrawn: wa has the code again, as it was.
        let before = Some(DeliveryState {
            status: DeliveryStatus::Sent,
            error: None,
        });
        let mut w = c.clone();
        let other = SentStep {
            in_flight: 2,
            ..sms.clone()
        };
        assert!(
            !withdraw_step(&mut w, &other, before.clone()),
            "not its send"
        );
        assert!(withdraw_step(&mut w, &sms, before.clone()));
        let l = w.ladder().unwrap();
        assert_eq!(l.via(), ["wa"]);
        assert_eq!(l.sent[0].left_at, None);
        assert_eq!(w.channel.as_deref(), Some("wa"));
        assert_eq!(w.delivery_state, before);
        assert!(!withdraw_step(&mut w, &sms, None), "once");

        // Answered: its id, its send done; not on another step, nor ended.
        let mut a = c.clone();
        assert!(!record_message(&mut a, &wa, Some("x".into()), now));
        let end = a.expires_at;
        assert!(!record_message(&mut a, &sms, Some("SM1".into()), end));
        assert!(record_message(&mut a, &sms, Some("SM1".into()), now));
        let current = a.ladder().unwrap().current().unwrap().clone();
        assert_eq!(
            (current.message_id.as_deref(), current.in_flight),
            (Some("SM1"), 0)
        );
        assert!(
            !record_message(&mut a, &sms, Some("SM2".into()), now),
            "once"
        );
    }

    /// One test per rung of [`time_out`], with [`claim_resend`]: a step
    /// whose send is still under way is resent once, then given up on.
    #[test]
    fn a_step_whose_sender_died_is_resent_once_then_given_up() {
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let (mut c, sms) = sending(&otp, now);
        let open = ChallengeState::Open;
        // Not open: a move (which answers as it ended).
        assert_eq!(time_out(&c, ChallengeState::Expired), TimeOut::Move);
        // Its first send under way: resent, once.
        assert_eq!(time_out(&c, open), TimeOut::Resend(sms.clone()));
        assert!(claim_resend(&mut c, &sms, now));
        assert!(!claim_resend(&mut c, &sms, now), "claimed already");
        // Its resend under way too: given up on.
        let resent = c.ladder().unwrap().current().unwrap().clone();
        assert_eq!(resent.in_flight, 2);
        assert_eq!(time_out(&c, open), TimeOut::GiveUp(resent.clone()));
        assert!(record_message(&mut c, &resent, None, now));
        // Answered: a move.
        assert_eq!(time_out(&c, open), TimeOut::Move);
        assert!(!claim_resend(&mut c, &sms, now));
    }

    /// [`announced_move`]: a step a move took names the step before it and
    /// the move's reason, whoever records its answer; the first step none.
    #[test]
    fn the_move_a_step_announces_is_the_one_that_took_it() {
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let (mut c, sms) = sending(&otp, now);
        let moved = Some(("wa".to_string(), AdvanceReason::Requested));
        assert_eq!(announced_move(&c), moved);
        // Its resend records the same move.
        assert!(claim_resend(&mut c, &sms, now));
        assert!(record_message(&mut c, &sms, Some("SM1".into()), now));
        assert_eq!(announced_move(&c), moved);
        // Once: the first sender's answer, later, records nothing.
        assert!(!record_message(&mut c, &sms, Some("SM0".into()), now));
        // The first step: no move.
        c.proof.ladder_mut().unwrap().sent.truncate(1);
        assert_eq!(announced_move(&c), None);
    }

    /// One test per rung of [`next_due`].
    #[test]
    fn a_ladder_is_due_at_its_lease_while_sending_else_at_its_time_out() {
        use crate::domain::delivery_status::DeliveryStatus;
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let lease = std::time::Duration::from_secs(4);
        let (mut c, sms) = sending(&otp, now);
        // Sending: at the lease.
        assert_eq!(next_due(&c, &otp, now, lease), Some(now.plus(lease)));
        // Answered: at its time-out, while that is ahead.
        assert!(record_message(&mut c, &sms, Some("SM1".into()), now));
        let at = now.plus(otp.advance_after.get());
        assert_eq!(next_due(&c, &otp, now, lease), Some(at));
        // Recorded after its time-out (a takeover's resend answered
        // late): due at once, not dropped; after a move that was tried
        // at the time-out and did not happen: not due again.
        let late = at.plus(std::time::Duration::from_secs(3));
        assert_eq!(next_due(&c, &otp, late, lease), Some(at), "due at once");
        assert_eq!(due_after_failed_move(&c, &otp, late, lease), None);
        assert_eq!(due_after_failed_move(&c, &otp, now, lease), Some(at));
        // Arrived: none.
        c.delivery_state.as_mut().unwrap().status = DeliveryStatus::Delivered;
        assert_eq!(next_due(&c, &otp, now, lease), None);
        c.delivery_state.as_mut().unwrap().status = DeliveryStatus::Sent;
        // Ended: none.
        assert_eq!(next_due(&c, &otp, c.expires_at, lease), None);
        // The last step: none.
        let email = SentStep {
            index: 2,
            channel: "email".into(),
            in_flight: 0,
            ..sms.clone()
        };
        let from = c.ladder().unwrap().current().cloned();
        assert!(record_step(&mut c, from.as_ref(), email, &otp, now) != StepRecord::Lost);
        assert_eq!(next_due(&c, &otp, now, lease), None);
        // No ladder: none.
        c.proof.otp_state_mut().unwrap().ladder = None;
        assert_eq!(next_due(&c, &otp, now, lease), None);
    }
}
