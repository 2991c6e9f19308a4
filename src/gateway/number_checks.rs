//! Number checks in the use cases (docs/number-checks.md): ask the team's
//! provider about the phone number a code would go to, and turn its
//! answer into the domain's verdict (`domain::number_check::verdict`).
//! A refused challenge is announced as `challenge.failed` with reason
//! `number_refused`, naming the challenge as every `challenge.failed`
//! does.
use uuid::Uuid;

use crate::config::Team;
use crate::domain::challenge::{ChallengeMethod, Delivery};
use crate::domain::destination_policy::Reach;
use crate::domain::interaction::InteractionRecord;
use crate::domain::number_check::{self, NumberCheck, Refusal, Verdict};
use crate::domain::phone;
use crate::error::{Error, Result};
use crate::events::types::{ChallengeFailed, FailedChallenge};
use crate::events::EventData;
use crate::gateway::{Core, InteractionView};
use crate::time::Timestamp;

/// The verdict on `number` (E.164) for a code read by a voice call
/// (`voice`) or not, at `now`: `None` when the team has no
/// `[number_checks]`; else refused, or what was found.
pub async fn verdict(
    core: &Core,
    team: &Team,
    number: &str,
    voice: bool,
    now: Timestamp,
) -> Option<Verdict> {
    let nc = team.number_checks.as_ref()?;
    let answer = core.number_checks().ask(nc, number, voice, now).await;
    Some(number_check::verdict(
        &nc.settings,
        &answer,
        voice,
        nc.source(),
    ))
}

/// Whether a number check refuses the conversation of `rec`, a new
/// interaction on a remembered conversation, to be recognized: on a
/// channel whose conversation is a phone number (`twilio`, `whatsapp`),
/// with the team's `[number_checks]`, its number refused
/// (docs/number-checks.md#what-is-checked-and-when). The recognition
/// itself stays stored.
pub async fn refuses_recognition(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    now: Timestamp,
) -> bool {
    if team.number_checks.is_none()
        || !matches!(core.reach(&rec.channel), Reach::Phone | Reach::PhoneChat)
        || crate::domain::bsuid::is_bsuid(&rec.conversation_id)
    {
        return false;
    }
    let id = &rec.conversation_id;
    let number = phone::e164(id)
        .or_else(|| phone::e164(&format!("+{id}")))
        .unwrap_or_else(|| id.clone());
    matches!(
        verdict(core, team, &number, false, now).await,
        Some(Verdict::Refuse(_))
    )
}

/// [`verdict`] as a use case answers it: `Ok(None)` without
/// `[number_checks]`, what was found when the code may go, else 403
/// `number_refused` and `challenge.failed` for challenge `asked` of `rec`
/// (its [`refused_challenge`]).
pub async fn check(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    asked: FailedChallenge,
    number: &str,
    voice: bool,
    now: Timestamp,
) -> Result<Option<NumberCheck>> {
    match verdict(core, team, number, voice, now).await {
        None => Ok(None),
        Some(Verdict::Go(found)) => Ok(Some(found)),
        Some(Verdict::Refuse(refusal)) => Err(refused(core, team, rec, asked, refusal, now).await),
    }
}

/// OTP challenge `cid` by `delivery`, refused at `now` before it opened,
/// as its `challenge.failed` names it: no attempt left, and it ended as
/// it was asked for (`expires_at` is `now`;
/// docs/decisions/0330-a-refused-challenge-expires-as-it-is-refused.md).
pub fn refused_challenge(cid: Uuid, delivery: Delivery, now: Timestamp) -> FailedChallenge {
    FailedChallenge {
        attempts_remaining: 0,
        challenge_id: cid,
        delivery,
        expires_at: now,
        method: ChallengeMethod::Otp,
    }
}

/// Announces challenge `challenge` of `rec` refused (`challenge.failed`,
/// reason `number_refused`): the error to answer.
pub async fn refused(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    challenge: FailedChallenge,
    refusal: Refusal,
    now: Timestamp,
) -> Error {
    let interaction = InteractionView::build(rec, None, team, now);
    let failed = EventData::ChallengeFailed(ChallengeFailed {
        challenge,
        reason: Some("number_refused"),
    });
    if let Err(e) = core.emit(failed, now, &interaction).await {
        return e;
    }
    refusal.into()
}
