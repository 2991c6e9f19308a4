//! Answering a challenge (docs/api.md#challenges-otp-and-session-pin): the attempt and the subject's
//! failure count commit together, so concurrent codes count exactly; and
//! revealing an open OTP to an agent where the team allows it.
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use super::read::{approval_of, Approval};
use crate::config::Team;
use crate::domain::attempts;
use crate::domain::audit::{Acting, Action};
use crate::domain::interaction::InteractionRecord;
use crate::domain::otp::OtpCode;
use crate::domain::verify_challenge::{self, Typed, Verdict};
use crate::error::{Error, Result};
use crate::events::types::{
    ChallengeFailed, ChallengeRef, CodeRevealed, FailedChallenge, TransactionApproved,
};
use crate::events::EventData;
use crate::gateway::audit;
use crate::gateway::links::{self, CodeEntry};
use crate::gateway::records::Pair;
use crate::gateway::work::{Done, Step, Work};
use crate::gateway::{Core, InteractionView};
use crate::time::Timestamp;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verified {
    pub authenticated: bool,
    pub requires_2fa: bool,
    pub expires_at: Option<Timestamp>,
    pub interaction: InteractionView,
    /// For a code of a transaction: what the bank's payment system checks
    /// (docs/api.md#approving-one-payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevealedCode {
    pub code: String,
    pub expires_at: Timestamp,
}

pub async fn verify_challenge(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    code: &str,
    now: Timestamp,
) -> Result<Verified> {
    verify_challenge_seen(core, team, id, cid, code, now)
        .await?
        .0
}

/// [`verify_challenge`], with the interaction as the verdict's commit
/// left it: a refused code (wrong, the last attempt, a lockout) is the
/// inner error, with what it committed; after an outer one the caller
/// reads the interaction, if it needs it.
pub async fn verify_challenge_seen(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    code: &str,
    now: Timestamp,
) -> Result<(Result<Verified>, InteractionView)> {
    verify_from_chat(core, team, (id, cid), code, now).await
}

/// A code typed on the gateway's page (docs/api.md#codes-typed-on-the-gateways-page),
/// counted exactly as the bot's: the right one answers the binding code
/// the page shows, the challenge left open until it is typed into the
/// chat (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat); a
/// refused one its problem.
///
/// Decided first on `pair`, the interaction as the page's open read found
/// it (docs/architecture.md#challenge-links): no read of its own.
pub(in crate::gateway) async fn verify_on_page(
    core: &Arc<Core>,
    team: &Team,
    (pair, cid): (Pair, Uuid),
    code: &str,
    now: Timestamp,
) -> Result<Result<OtpCode>> {
    crate::domain::pin::parse_code(code)?;
    let on = (pair.rec()?.id, Some(pair));
    let (verdict, done) = verify_entered(core, team, (on, cid), code, now).await?;
    Ok(match (verdict, done.value.1) {
        (Ok(Verdict::AwaitingCode), Some(bind)) => Ok(bind),
        (Ok(_), _) => Err(Error::internal(
            "a code on the page authenticated by itself",
        )),
        (Err(problem), _) => Err(problem),
    })
}

/// A code for challenge `cid` of interaction `id`, typed on the page (with
/// the pair its open read found: with the binding code its right code
/// shows) or into the chat, in one commit
/// with what its verdict announces: the verdict (a refused code's
/// problem, with what it committed) and the interaction as it left it.
async fn verify_entered(
    core: &Arc<Core>,
    team: &Team,
    ((id, read), cid): ((Uuid, Option<Pair>), Uuid),
    code: &str,
    now: Timestamp,
) -> Result<(Result<Verdict>, Done<(Verdict, Option<OtpCode>)>)> {
    let on_page = read.is_some();
    let done = core
        .transact_on(team, (id, read), now, |w| {
            Box::pin(async move {
                let s = w.settings;
                let bind = on_page
                    .then(|| links::binding::<CodeEntry>(core, cid, s.otp.length, Some(code)));
                let typed = match &bind {
                    Some((_, hash)) => Typed::Page { code, bind: hash },
                    None => Typed::Chat(code),
                };
                let (rec, subject) = w.records();
                let pepper = core.pepper();
                let verdict = verify_challenge::decide(rec, subject, s, (cid, typed), pepper, now)?;
                if let Verdict::Authenticated { step_up } = &verdict {
                    if let Some(p) = step_up.as_ref().filter(|_| team.remembers_devices()) {
                        crate::gateway::assertion::validated_devices(core, team, w, p).await?;
                    }
                    crate::gateway::registrations::on_authenticated(core, team, w, cid, now)
                        .await?;
                }
                announce_verdict(w, &verdict, cid, now);
                Ok(Step::Write((verdict, bind.map(|(code, _)| code))))
            })
        })
        .await?;
    if let Some(problem) = done.value.0.problem(now) {
        metrics::counter!("chatgate_auth_failures_total", "kind" => "challenge").increment(1);
        return Ok((Err(problem), done));
    }
    Ok((Ok(done.value.0.clone()), done))
}

/// The bot's code for challenge `cid`, verified: the authentication, or
/// the refused code's problem with what it committed.
async fn verify_from_chat(
    core: &Arc<Core>,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    code: &str,
    now: Timestamp,
) -> Result<(Result<Verified>, InteractionView)> {
    // A malformed code is 422 before anything is read.
    crate::domain::pin::parse_code(code)?;
    let (verdict, done) = verify_entered(core, team, ((id, None), cid), code, now).await?;
    if let Err(problem) = verdict {
        return Ok((Err(problem), done.view));
    }
    // The code is used: a ladder's messages are withdrawn where they can be.
    if let Some((c, _)) = done.rec.challenge_at(cid, now) {
        if let Some(l) = c.ladder() {
            super::ladder::revoke_ladder(core, l).await;
        }
    }
    let approval = approval_of(core, team, &done.rec, cid, true, now)?;
    let verified = Verified {
        authenticated: true,
        requires_2fa: false,
        expires_at: done.view.expires_at,
        interaction: done.view.clone(),
        approval,
    };
    Ok((Ok(verified), done.view))
}

/// What the verdict on a code of challenge `cid` announces: the
/// authentication (and the payment it approved), or the failure and the
/// lockout it reached.
fn announce_verdict(w: &mut Work<'_>, verdict: &Verdict, cid: Uuid, now: Timestamp) {
    match verdict {
        Verdict::Authenticated { .. } => {
            w.announce_authenticated();
            if let Some(approved) = approved_event(&w.rec, cid, now) {
                w.emit(approved);
            }
        }
        Verdict::AwaitingCode => {}
        Verdict::Wrong {
            attempts_remaining,
            failure,
        } => {
            // The challenge the code was for, open or just ended.
            if let Some((c, _)) = w.rec.challenge_at(cid, now) {
                w.emit(EventData::ChallengeFailed(ChallengeFailed {
                    challenge: FailedChallenge::of(c, *attempts_remaining),
                    reason: None,
                }));
            }
            w.emit_lockout(failure);
        }
    }
}

/// `transaction.approved` for challenge `cid` of `rec`, when the
/// authentication it just gave approved a transaction.
pub(super) fn approved_event(
    rec: &InteractionRecord,
    cid: Uuid,
    now: Timestamp,
) -> Option<EventData> {
    let hash = rec.auth.as_ref()?.transaction_hash.clone()?;
    let (c, _) = rec.challenge_at(cid, now)?;
    Some(EventData::TransactionApproved(TransactionApproved {
        challenge: ChallengeRef { challenge_id: cid },
        transaction: c.transaction.as_ref()?.into(),
        transaction_hash: hash,
    }))
}

/// The open OTP, for an agent, where the team allows it: one unit of
/// work, so the rules are decided on the records its `code.revealed`
/// entry commits against (no reveal goes unaudited).
pub async fn reveal_code(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    acting: &Acting,
    now: Timestamp,
) -> Result<RevealedCode> {
    let done = core
        .transact(team, id, now, |w| {
            let revealed = reveal_in(core, w, cid, acting, now);
            Box::pin(std::future::ready(revealed.map(Step::Write)))
        })
        .await?;
    Ok(done.value)
}

/// The reveal decided in `w`: refused for a payment's code, a team that
/// shows no codes, a locked subject; else the code, with its audit entry
/// and event.
fn reveal_in(
    core: &Core,
    w: &mut Work<'_>,
    cid: Uuid,
    acting: &Acting,
    now: Timestamp,
) -> Result<RevealedCode> {
    let for_payment = w
        .rec
        .challenge_at(cid, now)
        .is_some_and(|(c, _)| c.transaction.is_some());
    if for_payment {
        return Err(Error::Forbidden(
            "agents never see the code of a transaction",
        ));
    }
    if !w.settings.otp.show_to_agents {
        return Err(Error::Forbidden("this team does not let agents see codes"));
    }
    let origin = w.rec.lockout_origin(w.settings);
    w.subject().ensure_clear_for(origin.as_deref(), now)?;
    let (code, expires_at) = attempts::reveal_code(&w.rec, cid, core.pepper(), now)?;
    let mut d = audit::on_interaction(Action::CodeRevealed, acting, &w.rec);
    d.target.challenge_id = Some(cid);
    w.audit(d);
    let key_id = acting.actor.api_key_id.as_deref().unwrap_or_default();
    w.emit(EventData::ChallengeCodeRevealed(CodeRevealed {
        api_key_id: key_id.to_string(),
        actor: acting.actor.without_ip(),
        challenge: ChallengeRef { challenge_id: cid },
    }));
    Ok(RevealedCode {
        code: code.expose().to_string(),
        expires_at,
    })
}
