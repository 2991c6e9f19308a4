//! Delivery receipts from the providers (docs/api.md#delivery-receipts):
//! the provider's signature is checked first, then the report is read;
//! a report about a message the gateway does not know changes nothing.
use std::sync::Arc;

use super::challenges::ladder;
use super::identity_changes;
use super::reports::{self, Receipt};
use super::Core;
use crate::channels::whatsapp::WhatsappConfig;
use crate::channels::ChannelKind;
use crate::channels::{twilio, twilio_voice, whatsapp_identity};
use crate::config::Team;
use crate::domain::audit::{Acting, Actor, Via};
use crate::domain::delivery_status::Report;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Applies signed `reports` about messages `channel` sent to the
/// challenges that sent them, one at a time, moving a ladder on when a
/// report failed its current step: `Taken` when one of them named a
/// message the gateway knows. A report about a message not (yet) known
/// is parked for the write that makes it known.
pub async fn take_reports_at(
    core: &Core,
    channel: &str,
    reports: Vec<Report>,
    now: Timestamp,
) -> Result<Receipt> {
    let config = std::sync::Arc::clone(core.config());
    let teams: Vec<&Team> = config
        .teams
        .values()
        .map(AsRef::as_ref)
        .filter(|t: &&Team| t.uses_channel(channel))
        .collect();
    let mut receipt = Receipt::Unknown;
    for report in reports.iter().filter(|r| reports::names_a_message(r)) {
        let taken = reports::take_report(core, &teams, channel, report, now).await?;
        if let Some(step) = taken.failed_step {
            ladder::move_on_failure(core, step, now).await?;
        }
        if taken.known {
            receipt = Receipt::Taken;
        }
    }
    Ok(receipt)
}

/// Which of Twilio's APIs a status callback reports on: a `twilio`
/// channel's messages, or a `twilio_voice` channel's calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioApi {
    Messages,
    Calls,
}

/// A Twilio status callback posted to `channel`'s receipt route for
/// `api`, with form `fields` and header `X-Twilio-Signature`
/// `signature`: 404 for a channel not of that API's kind, 401
/// `invalid_signature` for a missing or wrong signature, 400 without the
/// message's (`MessageSid`, `MessageStatus`) or call's (`CallSid`,
/// `CallStatus`) id and status (docs/api.md#delivery-receipts).
pub async fn twilio_receipt(
    core: &Core,
    api: TwilioApi,
    channel: &str,
    fields: &[(String, String)],
    signature: Option<&str>,
    now: Timestamp,
) -> Result<Receipt> {
    let public_url = &core.config().server.public_url;
    let report = match (api, core.config().channels.get(channel).map(|c| &c.kind)) {
        (TwilioApi::Messages, Some(ChannelKind::Twilio(twilio))) => {
            let url = twilio::status_callback(public_url, channel);
            twilio.receipt(&url, fields, signature)?
        }
        (TwilioApi::Calls, Some(ChannelKind::TwilioVoice(voice))) => {
            let url = twilio_voice::status_callback(public_url, channel);
            voice.receipt(&url, fields, signature)?
        }
        _ => return Err(Error::NotFound("no channel of this name and kind")),
    };
    match report {
        Some(report) => take_reports_at(core, channel, vec![report], now).await,
        None => Ok(Receipt::Unknown),
    }
}

/// A report of Telegram's verification gateway posted to `channel`'s
/// report route: body `body` as received, headers `X-Request-Timestamp`
/// `timestamp` and `X-Request-Signature` `signature`. 404 for a channel
/// that is not `telegram_gateway`, 401 `invalid_signature` for a
/// missing or wrong signature or a timestamp more than 5 minutes from
/// `now`, 400 for a body without `request_id` or
/// `delivery_status.status`.
pub async fn telegram_gateway_report(
    core: &Core,
    channel: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: Timestamp,
) -> Result<Receipt> {
    let Some(ChannelKind::TelegramGateway(gateway)) =
        core.config().channels.get(channel).map(|c| &c.kind)
    else {
        return Err(Error::NotFound("no telegram_gateway channel of this name"));
    };
    match gateway.report(body, timestamp, signature, now)? {
        Some(report) => take_reports_at(core, channel, vec![report], now).await,
        None => Ok(Receipt::Unknown),
    }
}

/// Meta's subscription handshake on `channel`'s webhook: the
/// `hub.challenge` to answer when `hub.mode` is `subscribe` and
/// `hub.verify_token` is the channel's `verify_token` (compared in
/// constant time); 403 otherwise; 404 for a channel that is not
/// `whatsapp` or has no `verify_token`.
pub fn whatsapp_handshake(
    core: &Core,
    channel: &str,
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
) -> Result<String> {
    let missing = "no whatsapp channel with a verify_token of this name";
    whatsapp_of(core, channel, missing)?.handshake(mode, verify_token, challenge)
}

/// A WhatsApp Cloud webhook posted to `channel` with the raw `body` and
/// header `X-Hub-Signature-256` `signature`, through request `via`: 404
/// for a channel that is not `whatsapp` or has no `app_secret`, 401
/// `invalid_signature` for a missing or wrong signature, 400 for a body
/// that cannot be read or a status without `id` or `status`. Then its
/// statuses move their messages, and what it says of who is behind a
/// conversation of the channel's own number may end what was proven
/// there (docs/channels.md#identity-changes); other incoming messages are
/// ignored.
pub async fn whatsapp_receipt(
    core: &Arc<Core>,
    channel: &str,
    (body, signature): (&[u8], Option<&str>),
    via: &Via,
    now: Timestamp,
) -> Result<Receipt> {
    let missing = "no whatsapp channel with an app_secret of this name";
    let whatsapp = whatsapp_of(core, channel, missing)?;
    let reports = whatsapp.receipt(body, signature)?;
    let read = whatsapp_identity::identity_signals(body, &whatsapp.phone_number_id);
    whatsapp_identity::ignored_once(channel, &read.foreign);
    let receipt = match reports.is_empty() {
        true => Receipt::Unknown,
        false => take_reports_at(core, channel, reports, now).await?,
    };
    let acting = Acting::new(Actor::provider("whatsapp"), via);
    identity_changes::take_signals(core, channel, &read.signals, &acting, now).await?;
    Ok(receipt)
}

/// The `whatsapp` channel `channel`: 404 `missing` for any other.
fn whatsapp_of<'c>(
    core: &'c Core,
    channel: &str,
    missing: &'static str,
) -> Result<&'c WhatsappConfig> {
    match core.config().channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::Whatsapp(whatsapp)) => Ok(whatsapp),
        _ => Err(Error::NotFound(missing)),
    }
}
