//! Challenges (docs/api.md#challenges-otp-and-session-pin): starting one,
//! answering it, reading it. A start is one `match` over the method and
//! the delivery, each kind in a file of its own:
//!
//! - [`single`]: an OTP or a session PIN in one message (chat, SMS,
//!   e-mail), or shown to an agent;
//! - [`ladder`]: an OTP handed from channel to channel until it arrives
//!   (docs/api.md#delivery-ladder);
//! - [`app`]: approval in the customer's own app, asked of the team's
//!   identity provider (docs/api.md#approval-in-the-customers-app);
//! - [`network`]: a network challenge's link, sent as a single message,
//!   and the mobile operator's answer (docs/network-authentication.md).
//!
//! - [`wallet`]: a wallet challenge's credential checked against the
//!   team's `[wallet]`, its link, sent as a single message, and the read's
//!   `wallet` member (docs/wallet.md).
//!
//! [`entry`] sends the link to the page where a code is typed instead of
//! the chat (docs/api.md#codes-typed-on-the-gateways-page).
//!
//! [`verify`] answers a code (and reveals one to an agent), [`read`]
//! reads one challenge and holds the answers' types,
//! [`destinations`] counts what each destination was sent, and
//! [`steps`] records a ladder's step before it is sent.
pub mod app;
mod destinations;
mod entry;
pub mod ladder;
pub mod network;
pub mod read;
mod single;
mod steps;
pub mod verify;
pub mod wallet;

use std::sync::Arc;

use uuid::Uuid;

use super::work::Work;
use super::{Core, InteractionView};
use crate::config::Team;
use crate::domain::challenge::{Delivery, Page, Sends};
use crate::domain::interaction::InteractionRecord;
use crate::domain::otp::OtpCode;
use crate::domain::start_challenge::{self, ChallengeRequest, Rules, Started};
use crate::domain::transaction::{approvals_signed, Transaction};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeCreated, CreatedChallenge, TransactionObject};
use crate::events::EventData;
use crate::time::{Clock, Timestamp};
use read::StartedChallenge;

/// `POST /v1/interactions/{id}/challenges`: starts a challenge of the
/// kind `req` names on interaction `id`.
pub async fn start_challenge(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    req: ChallengeRequest,
    clock: &dyn Clock,
) -> Result<StartedChallenge> {
    Ok(start_challenge_seen(core, team, id, req, clock).await?.0)
}

/// [`start_challenge`], with the interaction as the start's commit left
/// it where the start holds it (a single message); `None`: the caller
/// reads it, if it needs it.
pub async fn start_challenge_seen(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    req: ChallengeRequest,
    clock: &dyn Clock,
) -> Result<(StartedChallenge, Option<InteractionView>)> {
    use Delivery::{Agent, Chat, Email, Ladder, LoginPage, Sms, Voice};
    approvals_signed(req.transaction.as_ref(), &core.config().approvals.keys)?;
    // The method says what its start sends (`ChallengeMethod::sends`): a
    // proof made on a page of its own goes down the links' path, with no
    // arm of its own here.
    let started = match (req.method.sends(), req.delivery) {
        (Sends::AppRequest, _) => {
            app::start_app_challenge(core, team, id, req.transaction.as_ref(), clock).await
        }
        (Sends::Code | Sends::PinPrompt, Ladder) => {
            ladder::start_ladder(core, team, id, &req, clock.now()).await
        }
        // Refused by the request's parser, in its words: a link goes in
        // one message (`start_challenge::delivery_for`).
        (Sends::Link(_), Ladder) => Err(start_challenge::delivery_for(req.method, Some(Ladder))
            .err()
            .unwrap_or_else(|| Error::invalid("delivery", "a link goes in one message"))),
        (
            Sends::Code | Sends::PinPrompt | Sends::Link(_),
            Chat | Sms | Email | Voice | Agent | LoginPage | Delivery::App,
        ) => {
            // A wallet's credentials are the team's `[wallet]`'s to check.
            let req = match req.method.sends() {
                Sends::Link(Page::Wallet) => wallet::checked(team, req)?,
                Sends::Code | Sends::PinPrompt | Sends::AppRequest | Sends::Link(_) => req,
            };
            let (started, seen) = single::start(core, team, id, &req, clock.now()).await?;
            return Ok((started, Some(seen)));
        }
    };
    Ok((started?, None))
}

/// The verdict on starting challenge `cid` (its code `code`) on the
/// records of `w`, with the routes of its channel
/// (`domain::start_challenge::decide`): what a single send and a
/// ladder's start share.
fn decide(
    core: &Core,
    team: &Team,
    w: &mut Work<'_>,
    req: &ChallengeRequest,
    cid: Uuid,
    code: &OtpCode,
    now: Timestamp,
) -> Result<Started> {
    if let Some(locale) = &req.locale {
        w.rec.ask_locale(locale, false);
    }
    let routes = destinations::routes(core, team, &w.rec.channel);
    let rules = Rules {
        settings: w.settings,
        routes: &routes,
        pepper: core.pepper(),
        link_ttl: team.number_verification.as_ref().map(|n| n.link_ttl),
        wallet_ttl: team.wallet.as_ref().map(|w| w.link_ttl),
    };
    let (rec, subject) = w.records();
    let started = start_challenge::decide(req, cid, code, rec, subject, &rules, now)?;
    Ok(started)
}

/// A started challenge is counted and announced (`challenge.created`),
/// whatever its kind.
async fn announce(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    cid: Uuid,
    started: &Started,
    delivery: Delivery,
    now: Timestamp,
) -> Result<()> {
    metrics::counter!("chatgate_challenges_started_total", "method" => started.method.as_str())
        .increment(1);
    let interaction = InteractionView::build(rec, None, team, now);
    let challenge = rec.challenge.as_ref().filter(|c| c.id == cid);
    let (transaction, transaction_hash) = TransactionObject::with_hash(transaction_of(rec, cid));
    let created = EventData::ChallengeCreated(ChallengeCreated {
        challenge: CreatedChallenge {
            challenge_id: cid,
            delivery,
            expires_at: started.expires_at,
            method: started.method,
            number_check: read::NumberCheckView::to_event(challenge.and_then(|c| c.number_check())),
            transaction,
            transaction_hash,
        },
    });
    core.emit(created, now, &interaction).await
}

/// The transaction challenge `cid` of `rec` is for, while it is current
/// (docs/api.md#approving-one-payment).
fn transaction_of(rec: &InteractionRecord, cid: Uuid) -> Option<&Transaction> {
    rec.challenge
        .as_ref()
        .filter(|c| c.id == cid)
        .and_then(|c| c.transaction.as_ref())
}
