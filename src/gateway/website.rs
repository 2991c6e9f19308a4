//! What a company's website and login page send server to server, signed
//! by Standard Webhooks with one of the team's security keys: the signature
//! check (shared with the login callback) and the back-channel logout of a
//! customer (docs/api.md#the-login-callback).
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::records::LogoutAnswer;
use super::work::Step;
use super::{audit, change, doors, Core};
use crate::config::{Settings, Team};
use crate::domain::audit::{Acting, Action, Actor, Via};
use crate::domain::interaction::InteractionRecord;
use crate::domain::logout::LogoutCause;
use crate::domain::secrets::HmacKey;
use crate::domain::webhook_sig;
use crate::error::{Error, Result};
use crate::events::types::LoggedOut;
use crate::events::EventData;
use crate::store::keys;
use crate::time::Timestamp;

/// The Standard Webhooks headers of a signed request.
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl SignatureHeaders<'_> {
    /// Valid with any of the team's security keys.
    pub fn verify(&self, team: &Team, body: &[u8], now: Timestamp) -> Result<()> {
        let keys: Vec<&HmacKey> = team.security_keys.iter().map(|k| &k.hmac).collect();
        webhook_sig::verify_with(&keys, self.id, self.timestamp, self.signature, body, now)
    }

    /// Like [`Self::verify`] for a team named by the caller, which may not
    /// exist: an unknown team goes through the same checks (against a decoy
    /// key) and ends in the same refusal as a wrong key, so the answer tells
    /// nothing about which teams exist.
    pub fn verify_named<'t>(
        &self,
        team: Option<&'t Team>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<&'t Team> {
        const DECOY: [u8; 32] = [0x5a; 32];
        match team {
            Some(t) => self.verify(t, body, now).map(|()| t),
            None => webhook_sig::verify(
                &[&DECOY],
                self.id,
                self.timestamp,
                self.signature,
                body,
                now,
            )
            .and(Err(webhook_sig::NO_VALID_SIGNATURE)),
        }
    }
}

/// How long an answered signed request is remembered: longer than any
/// timestamp the signature check accepts (±5 minutes).
const ANSWER_MEMORY: Duration = Duration::from_secs(2 * webhook_sig::TOLERANCE_SECS as u64 + 60);

/// Back-channel logout of a customer's interactions. Returns how many
/// were logged out (authenticated as that customer, waiting for a
/// step-up for them, or with a login of theirs waiting for its binding
/// code). A replay or retry of the same signed request (same
/// `webhook-id`) within the signature's tolerance gets the first answer
/// and logs out nobody who signed in since.
pub async fn logout_customer(
    core: &Arc<Core>,
    team_id: &str,
    customer_id: &str,
    sig: SignatureHeaders<'_>,
    body: &[u8],
    via: &Via,
    now: Timestamp,
) -> Result<usize> {
    let team = sig.verify_named(core.config().team(team_id), body, now)?;
    let memory = keys::answered_request(&team.keyspace, "logout", sig.id.unwrap_or_default());
    if let Some(first) = doors::read::<LogoutAnswer>(core, &memory).await?.value {
        return Ok(first.logged_out);
    }
    let acting = Acting::new(Actor::website(), via);
    let cause = LogoutCause::Website;
    let n = log_out_everywhere(core, team, customer_id, cause, &acting, now).await?;
    // Remembered once done (a conflict is a concurrent twin: same work).
    let answer = LogoutAnswer { logged_out: n };
    change::once(core, &team.keyspace, &[], now, |c| {
        c.claim(&memory, &answer, Some(ANSWER_MEMORY))?;
        Ok(Step::Write(()))
    })
    .await?;
    Ok(n)
}

/// Logs customer `customer_id` out of every interaction of `team`
/// (authenticated as them, waiting for a step-up for them, or with a
/// login of theirs waiting for its binding code), forgetting their
/// recognized conversations: the back-channel logout of a website, of
/// the identity provider and of a Shared Signals transmitter alike.
/// Returns how many interactions were logged out.
pub(crate) async fn log_out_everywhere(
    core: &Arc<Core>,
    team: &Team,
    customer_id: &str,
    cause: LogoutCause,
    acting: &Acting,
    now: Timestamp,
) -> Result<usize> {
    // Their recognized conversations are forgotten first, so that the
    // logouts' events show them forgotten.
    crate::gateway::recognition::forget_recognitions_of(core, team, customer_id).await?;
    let index = keys::customer_index(&team.keyspace, customer_id);
    let mut n = 0;
    let mut before = None;
    loop {
        let entries = core.index_desc(&index, before.take(), PAGE).await?;
        let full = entries.len() == PAGE;
        for e in entries {
            before = Some((e.score, e.member.clone()));
            let Ok(id) = Uuid::parse_str(&e.member) else {
                continue;
            };
            if log_out_if(core, team, id, cause, acting, now, |rec, s| {
                rec.signed_in_as(customer_id, now, s)
            })
            .await?
            {
                n += 1;
            }
        }
        if !full {
            break;
        }
    }
    Ok(n)
}

/// Logs out interaction `id` if `theirs` says so of its record (it is
/// gone: not logged out), with an `interaction.logged_out` of `cause`;
/// its conversation is no longer recognized.
pub(crate) async fn log_out_if(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    cause: LogoutCause,
    acting: &Acting,
    now: Timestamp,
    theirs: impl Fn(&InteractionRecord, &Settings) -> bool + Sync,
) -> Result<bool> {
    let result = core
        .update_interaction(team, id, now, |w| {
            let hit = theirs(&w.rec, w.settings);
            if hit {
                let entry = audit::on_interaction(Action::LoggedOut, acting, &w.rec);
                w.audit(entry.with("cause", cause.as_str()));
                w.rec.log_out(now);
                w.forget_recognition();
                w.emit(EventData::InteractionLoggedOut(LoggedOut {
                    cause,
                    actor: None,
                }));
            }
            Ok(hit)
        })
        .await;
    match result {
        Ok((_, hit)) => Ok(hit),
        Err(Error::NotFound(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Customer-index entries read per round trip.
const PAGE: usize = 500;
