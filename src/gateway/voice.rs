//! Codes read by a voice call (docs/api.md#codes-read-by-a-voice-call):
//! before a call goes out, its key press is prepared under an opaque
//! gather id (the code sealed beside it, never in clear); the signed press
//! then reads the code, at most three times per challenge, while the
//! challenge is open, and the first reading is the call's delivery
//! (docs/decisions/0110-a-code-read-aloud-is-sealed-until-the-press.md).
use uuid::Uuid;

use super::records::{put, Loaded, StoredGather};
use super::reports;
use super::work::Step;
use super::Core;
use crate::channels::twilio::form_field;
use crate::channels::twilio_voice::{gather_url, TwilioVoiceConfig};
use crate::channels::{Call, ChannelError, ChannelKind, Fill, Purpose};
use crate::config::Team;
use crate::domain::challenge::ChallengeState;
use crate::domain::interaction::InteractionRecord;
use crate::domain::otp::OtpCode;
use crate::domain::reveal;
use crate::domain::transaction::Transaction;
use crate::domain::voice::{self, GatherId, Press, VoiceText};
use crate::error::{Error, Result};
use crate::store::{keys, Commit};
use crate::time::Timestamp;

/// The language a call to `rec`'s customer speaks: the interaction's
/// (docs/api.md#languages); the `<Say language>` follows from it
/// (`domain::voice::say_language`).
fn call_locale<'t>(team: &'t Team, rec: &InteractionRecord) -> &'t str {
    rec.locale(&team.settings_for(&rec.channel).locale)
}

/// What a message on `channel` carrying `code` (`purpose` `otp`) needs to
/// be a call: `None` for any other channel or purpose; for a call, a fresh
/// gather id whose record (the challenge of `rec`, the code sealed) is
/// written before the call goes out, so the press always finds it.
pub(super) async fn prepare_call(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    channel: &str,
    purpose: Purpose,
    code: Option<&str>,
) -> Result<Option<Call>> {
    if voice_config(core, channel).is_err() || purpose != Purpose::Otp {
        return Ok(None);
    }
    let (Some(challenge), Some(code)) = (&rec.challenge, code.and_then(OtpCode::from_digits))
    else {
        return Err(Error::internal("a call without its challenge or code"));
    };
    let gather = GatherId::new();
    let record = StoredGather {
        i: rec.id,
        c: challenge.id,
        k: reveal::seal(&code, challenge.id, core.pepper())?,
        n: 0,
    };
    // As long as the interaction may live: a late press is answered.
    let ttl = team.settings_for(&rec.channel).interaction_ttl.get();
    let key = keys::gather(&team.id, channel, gather.as_str());
    let op = put(&key, 0, &record, Some(ttl))?;
    if let Commit::Conflict { .. } = core.write(vec![op]).await? {
        return Err(Error::internal("a gather id was drawn twice"));
    }
    Ok(Some(Call {
        gather: gather.as_str().to_string(),
    }))
}

/// [`prepare_call`] for a sender: what [`Core::send`] hands the channel
/// with the message; a call that could not be prepared is a failed send.
pub(super) async fn call_for(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    channel: &str,
    purpose: Purpose,
    code: Option<&str>,
) -> std::result::Result<Option<Call>, ChannelError> {
    prepare_call(core, team, rec, channel, purpose, code)
        .await
        .map_err(|_| ChannelError("the call could not be prepared".into()))
}

/// The `twilio_voice` channel `channel`: 404 for any other.
fn voice_config<'c>(core: &'c Core, channel: &str) -> Result<&'c TwilioVoiceConfig> {
    match core.config().channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::TwilioVoice(voice)) => Ok(voice),
        _ => Err(Error::NotFound("no twilio_voice channel of this name")),
    }
}

/// A key press Twilio posted to `channel`'s gather URL of call `gather`,
/// with form `fields` and `X-Twilio-Signature` `signature`: the TwiML to
/// answer. 404 for a channel that is not `twilio_voice`, 401 for a missing
/// or wrong signature (nothing read); then the code, or that it is no
/// longer available.
pub async fn press(
    core: &Core,
    channel: &str,
    gather: &str,
    fields: &[(String, String)],
    signature: Option<&str>,
    now: Timestamp,
) -> Result<String> {
    let cfg = voice_config(core, channel)?;
    let url = gather_url(&core.config().server.public_url, channel, gather);
    cfg.check_signed(&url, fields, signature)?;
    let heard = match GatherId::parse(gather) {
        Some(g) => hear(core, channel, &g, fields, now).await?,
        None => None,
    };
    let channel_cfg = core.config().channels.get(channel);
    let Some(heard) = heard else {
        // No interaction: the system's default language.
        let defaults = &core.config().defaults;
        let locale = defaults.locale.default.as_str();
        let text = crate::config::voice_text(VoiceText::Unavailable, defaults, channel_cfg, locale);
        return Ok(cfg.unavailable(text, locale));
    };
    let settings = heard.team.settings_for(&heard.rec.channel);
    let locale = call_locale(heard.team, &heard.rec);
    Ok(match heard.code {
        // A code for a payment is read with its amount and payee
        // (docs/api.md#approving-one-payment).
        Some(code) => match &heard.transaction {
            Some(t) => {
                let key = VoiceText::OtpTransaction;
                let text = crate::config::voice_text(key, settings, channel_cfg, locale);
                let amount = t.amount_text();
                let fill = Fill {
                    amount: Some(&amount),
                    payee: Some(&t.payee),
                    ..Fill::default()
                };
                cfg.reading(&crate::channels::render(text, fill), code.expose(), locale)
            }
            None => {
                let text = crate::config::voice_text(VoiceText::Otp, settings, channel_cfg, locale);
                cfg.reading(text, code.expose(), locale)
            }
        },
        None => {
            let text =
                crate::config::voice_text(VoiceText::Unavailable, settings, channel_cfg, locale);
            cfg.unavailable(text, locale)
        }
    })
}

/// What a press found: the team and interaction of its call, and the code
/// when the press reads it.
struct Heard<'t> {
    team: &'t Team,
    rec: InteractionRecord,
    code: Option<OtpCode>,
    /// The payment the code is for.
    transaction: Option<Transaction>,
}

/// The press of call `gather` on `channel`, in the team that prepared it:
/// `None` when no team knows the id.
async fn hear<'c>(
    core: &'c Core,
    channel: &str,
    gather: &GatherId,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<Option<Heard<'c>>> {
    let teams = core
        .config()
        .teams
        .values()
        .filter(|t| t.uses_channel(channel));
    for team in teams {
        let key = keys::gather(&team.id, channel, gather.as_str());
        let raw = core.get(std::slice::from_ref(&key)).await?;
        let read: Loaded<StoredGather> = Loaded::parse(key, raw.into_iter().next().flatten())?;
        if let Some(found) = read.value {
            return read_aloud(core, team, found.i, &read.key, fields, now).await;
        }
    }
    Ok(None)
}

/// One press of the call recorded under `key` on interaction `id`, as one
/// unit of work: counted, and the first reading recorded as the call's
/// delivery, when [`voice::press`] reads the code. `None`: the
/// interaction is gone.
async fn read_aloud<'t>(
    core: &Core,
    team: &'t Team,
    id: Uuid,
    key: &str,
    fields: &[(String, String)],
    now: Timestamp,
) -> Result<Option<Heard<'t>>> {
    let digits = form_field(fields, "Digits");
    let call = form_field(fields, "CallSid").unwrap_or_default();
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                w.as_announcement();
                let raw = core.get(&[key.to_string()]).await?;
                let read: Loaded<StoredGather> =
                    Loaded::parse(key.to_string(), raw.into_iter().next().flatten())?;
                let Some(mut gather) = read.value else {
                    return Ok(Step::Answer(None));
                };
                let state = w.rec.challenge_at_mut(gather.c, now).map(|(_, s)| s);
                let open = state == Some(ChallengeState::Open);
                let Press::Read { first } = voice::press(digits, open, gather.n) else {
                    return Ok(Step::Answer(None));
                };
                if first {
                    reports::arrived_by_voice(core, w, gather.c, call, now);
                }
                gather.n += 1;
                let ttl = w.settings.interaction_ttl.get();
                w.also(put(key, read.version, &gather, Some(ttl))?);
                Ok(Step::Write(Some((gather.c, gather.k))))
            })
        })
        .await;
    let done = match done {
        Ok(done) => done,
        Err(Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let (code, transaction) = match done.value {
        Some((cid, sealed)) => {
            let transaction = done
                .rec
                .challenge_at(cid, now)
                .and_then(|(c, _)| c.transaction.clone());
            (
                Some(reveal::open(&sealed, cid, core.pepper())?),
                transaction,
            )
        }
        None => (None, None),
    };
    Ok(Some(Heard {
        team,
        rec: done.rec,
        code,
        transaction,
    }))
}
