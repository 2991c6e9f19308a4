//! A challenge whose code or prompt goes in one message: an OTP into the
//! chat, by SMS or by e-mail, a session PIN's prompt, or a code shown to
//! an agent (docs/api.md#challenges-otp-and-session-pin).
//!
//! Starting reserves the send allowance and opens the challenge in one
//! commit, then sends; a failed send gives both back (502, no allowance
//! used).
#![deny(clippy::wildcard_enum_match_arm)]
use uuid::Uuid;

use super::read::StartedChallenge;
use crate::channels::{ChannelError, Fill, Purpose, Sent};
use crate::config::Team;
use crate::domain::challenge::{NumberChecked, Sends};
use crate::domain::destination_policy::Reach;
use crate::domain::interaction::InteractionRecord;
use crate::domain::number_check::NumberCheck;
use crate::domain::otp::{self, OtpCode};
use crate::domain::start_challenge::{self, ChallengeRequest, Rules, Started};
use crate::error::{Error, Result};
use crate::events::types::FailedChallenge;
use crate::gateway::work::{Done, Step};
use crate::gateway::{
    identity_changes, links, number_checks, reports, voice, Core, InteractionView,
};
use crate::time::Timestamp;

/// A challenge whose code or prompt goes in one message (or to an
/// agent): reserve, send, announce. With the answer, the interaction as
/// the reserve's commit left it.
pub(super) async fn start(
    core: &Core,
    team: &Team,
    id: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<(StartedChallenge, InteractionView)> {
    let cid = Uuid::now_v7();
    let checked = check_number(core, team, id, cid, req, now).await?;
    let reserved = reserve(core, team, id, cid, req, checked.as_ref(), now).await?;
    let Done {
        value: (started, code),
        rec,
        view,
    } = reserved;
    let link = saved_link(core, team, (id, cid), &started, now).await?;
    let link = super::entry::message_link(core, team, (id, cid), (req, &started), link, now);
    let link = link.await?;
    let sent = send_challenge(core, team, &rec, &started, (&code, link.as_deref()), now);
    let sent = match sent.await {
        Ok(sent) => sent,
        Err(e) => {
            // Give the allowance back and reopen the previous challenge.
            super::destinations::undo_challenge(core, team, id, cid, &started, now).await?;
            if let Some(m) = &started.message {
                identity_changes::on_send_error(core, team, &rec, &m.channel, &e, now).await?;
            }
            return Err(Error::Channel(e.to_string()));
        }
    };
    // Then, and only then, the page's link goes into the conversation.
    super::entry::after_code(core, team, &rec, (cid, req, &started), now).await?;
    super::announce(core, team, &rec, cid, &started, req.delivery, now).await?;
    // Its receipts name the provider's id of the message: remembered
    // after `challenge.created`, so that a receipt that came first is
    // announced after it.
    if let (Some(message_id), Some(m)) = (sent.and_then(|s| s.message_id), &started.message) {
        // A single send has no later step for a failed report to move to.
        let remembered =
            reports::remember_message(core, team, id, cid, &m.channel, &message_id, now);
        if let Err(e) = remembered.await {
            // The code went out: the challenge stands, its receipts
            // will be about a message the gateway does not know.
            tracing::warn!(error = %e, "a challenge's message id could not be remembered");
        }
    }
    let (delivered, state) = (started.message.is_some(), started.delivery_state.as_ref());
    let answer = StartedChallenge::of(cid, &started, req.delivery, None, delivered, state);
    let answer = answer
        .checked(checked.as_ref().map(|(_, c)| c))
        .for_transaction(req.transaction.as_ref())
        .entered(req.page_entry);
    Ok((answer, view))
}

/// The link of challenge `cid` of interaction `id`, started
/// as `started`, that its message carries: a network challenge's
/// (docs/network-authentication.md#the-link) or a wallet challenge's
/// (docs/wallet.md#the-link-page), the page its proof waits for, saved
/// until the challenge's end (`links::save_for`); `None` for the others. A save that fails
/// takes the start back.
async fn saved_link(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    started: &Started,
    now: Timestamp,
) -> Result<Option<String>> {
    let (ids, until) = ((id, cid), started.expires_at);
    // The page its proof is made on, whose link the message carries
    // (`ChallengeMethod::sends`); a code typed on the page has its link
    // sent after the code (`entry::after_code`).
    let Sends::Link(page) = started.method.sends() else {
        return Ok(None);
    };
    let saved = links::save_for(core, team, page, ids, until, now).await;
    match saved {
        Ok(url) => Ok(Some(url)),
        Err(e) => {
            super::destinations::undo_challenge(core, team, id, cid, started, now).await?;
            Err(e)
        }
    }
}

/// The number check of challenge `cid` (docs/number-checks.md), when the
/// team has `[number_checks]` and its message would carry a code to a
/// phone number: the number and what was found, or 403
/// `number_refused`. The number is the one the start's verdict names on
/// the records as read now, so a start it would refuse is answered as
/// such, before any provider is asked.
async fn check_number(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<Option<(String, NumberCheck)>> {
    let Some(checked) = req.method.number_checked() else {
        return Ok(None);
    };
    if team.number_checks.is_none() {
        return Ok(None);
    }
    let pair = core.load_pair(team, id, now).await?;
    let (mut rec, mut subject) = (pair.rec()?.clone(), pair.subject_or_new()?);
    let settings = team.settings_for(&rec.channel);
    let routes = super::destinations::routes(core, team, &rec.channel);
    let rules = Rules {
        settings,
        routes: &routes,
        pepper: core.pepper(),
        link_ttl: team.number_verification.as_ref().map(|n| n.link_ttl),
        wallet_ttl: team.wallet.as_ref().map(|w| w.link_ttl),
    };
    let code = otp::generate(settings.otp.length);
    let dry = start_challenge::decide(req, cid, &code, &mut rec, &mut subject, &rules, now)?;
    let asked = FailedChallenge {
        method: req.method,
        ..number_checks::refused_challenge(cid, req.delivery, now)
    };
    let (number, voice) = match checked {
        // The number the operator is asked about, wherever the link goes.
        NumberChecked::OnFile => match rec.contact.phone.as_deref() {
            Some(phone) => (e164_of(phone), false),
            None => return Ok(None),
        },
        NumberChecked::Destination => match code_number(core, dry) {
            Some(found) => found,
            None => return Ok(None),
        },
    };
    let found = number_checks::check(core, team, pair.rec()?, asked, &number, voice, now).await?;
    Ok(found.map(|c| (number, c)))
}

/// The phone number a code started as `dry` goes to, and whether a call
/// reads it; `None` when it goes to no number (a conversation, an
/// e-mail address, a WhatsApp conversation named by a business-scoped
/// user id: docs/channels.md#business-scoped-user-ids).
fn code_number(core: &Core, dry: Started) -> Option<(String, bool)> {
    let (Some(message), Some(number)) = (&dry.message, dry.destination) else {
        return None;
    };
    if crate::domain::bsuid::is_bsuid(&number) {
        return None;
    }
    let voice = match core.reach(&message.channel) {
        Reach::Phone | Reach::PhoneChat => false,
        Reach::Voice => true,
        Reach::Conversation | Reach::Email => return None,
    };
    Some((number, voice))
}

/// `number` in E.164 when it reads as a phone number, else as written.
fn e164_of(number: &str) -> String {
    crate::domain::phone::e164(number).unwrap_or_else(|| number.to_string())
}

/// Checks the subject, counts the send and opens the challenge, in one
/// commit: the challenge and its code, with the interaction as committed.
async fn reserve(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    req: &ChallengeRequest,
    checked: Option<&(String, NumberCheck)>,
    now: Timestamp,
) -> Result<Done<(Started, OtpCode)>> {
    core.transact(team, id, now, |w| {
        Box::pin(async move {
            let s = w.settings;
            // Drawn with the interaction's own settings (a channel may
            // override the length); a retry draws afresh.
            let code = otp::generate(s.otp.length);
            super::wallet::registered_rules(core, team, w, req, now).await?;
            let started = super::decide(core, team, w, req, cid, &code, now)?;
            if let Some((number, found)) = checked {
                // A network check's number is the one on file, wherever
                // its link goes.
                let checked_number = match req.method.number_checked() {
                    Some(NumberChecked::OnFile) => w.rec.contact.phone.as_deref().map(e164_of),
                    Some(NumberChecked::Destination) | None => started.destination.clone(),
                };
                if checked_number.as_ref() != Some(number) {
                    // The contact changed since it was checked.
                    return Err(Error::invalid("to", "the contact changed; ask again"));
                }
                let kept = w.rec.challenge.as_mut().map(|c| c.proof.number_check_mut());
                if let Some(Some(kept)) = kept {
                    *kept = Some(*found);
                }
            }
            if let Some(d) = &started.destination {
                let allowance = started.allowance.as_deref();
                super::destinations::count_destination(core, team, w, (d, allowance), s, now)
                    .await?;
            }
            Ok(Step::Write((started, code)))
        })
    })
    .await
}

/// Sends a started challenge's message, if it has one: the code of an
/// OTP, the prompt of a PIN, the link to a proof's page. `None`:
/// nothing to send.
async fn send_challenge(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    started: &Started,
    (code, link): (&OtpCode, Option<&str>),
    now: Timestamp,
) -> std::result::Result<Option<Sent>, ChannelError> {
    let Some(message) = &started.message else {
        return Ok(None);
    };
    // The payment it is for: its amount and payee go into the text.
    let transaction = rec.challenge.as_ref().and_then(|c| c.transaction.as_ref());
    let amount = transaction.map(|t| t.amount_text());
    let (purpose, fill) = match started.method.sends() {
        Sends::Code => {
            let ttl = team.settings_for(&rec.channel).otp.ttl.get();
            let fill = Fill {
                pin: Some(code.expose()),
                ttl: Some(ttl),
                amount: amount.as_deref(),
                payee: transaction.map(|t| t.payee.as_str()),
                ..Fill::default()
            };
            (Purpose::Otp, fill)
        }
        // Typed on the page: its link replaces the prompt.
        Sends::PinPrompt if link.is_some() => {
            let fill = Fill {
                url: link,
                ..Fill::default()
            };
            (Purpose::PinEntryLink, fill)
        }
        Sends::PinPrompt => (Purpose::PinPrompt, Fill::default()),
        // Its request goes to the identity provider (`ciba.rs`).
        Sends::AppRequest => return Ok(None),
        Sends::Link(page) => {
            let fill = Fill {
                url: link,
                ..Fill::default()
            };
            (Purpose::Link(page), fill)
        }
    };
    let to = message.to.clone();
    let message_of = (message.channel.as_str(), purpose);
    let call = voice::call_for(core, team, rec, message_of, fill.pin, now).await?;
    core.send(team, rec, &message.channel, to, purpose, fill, call, now)
        .await
        .map(Some)
}
