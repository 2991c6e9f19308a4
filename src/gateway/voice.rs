//! Codes read by a voice call (docs/api.md#codes-read-by-a-voice-call):
//! before a call goes out, its key press is prepared under an opaque
//! gather id (the code sealed beside it, never in clear); the signed press
//! then reads the code, at most three times per challenge, while the
//! challenge is open, and the first reading is the call's delivery
//! (docs/decisions/0110-a-code-read-aloud-is-sealed-until-the-press.md).
//! The gather id names its team, and the press arrives read at the edge
//! (docs/decisions/0212-a-gather-id-names-its-team.md); the challenge
//! names its call's record, which the commit that ends it deletes
//! (docs/decisions/0213-a-call-s-record-ends-with-its-challenge.md).
use std::time::Duration;

use uuid::Uuid;

use super::records::{Loaded, StoredGather};
use super::work::{Done, Step, Work};
use super::writes::Writes;
use super::Core;
use super::{doors, reports};
use crate::channels::twilio_voice::TwilioVoiceConfig;
use crate::channels::{Call, ChannelError, ChannelKind, Fill, Purpose};
use crate::config::Team;
use crate::domain::challenge::ChallengeState;
use crate::domain::interaction::InteractionRecord;
use crate::domain::otp::OtpCode;
use crate::domain::reveal;
use crate::domain::transaction::Transaction;
use crate::domain::voice::{self, GatherId, KeyPress, Press, VoiceCall, VoiceText};
use crate::error::{Error, Result};
use crate::store::keys;
use crate::time::Timestamp;

/// The language a call to `rec`'s customer speaks: the interaction's
/// (docs/api.md#languages); the `<Say language>` follows from it
/// (`domain::voice::say_language`).
fn call_locale<'t>(team: &'t Team, rec: &InteractionRecord) -> &'t str {
    rec.locale(&team.settings_for(&rec.channel).locale)
}

/// What a message on `channel` carrying `code` (`purpose` `otp`) needs to
/// be a call: `None` for any other channel or purpose; for a call, a fresh
/// gather id of `team` whose record (the challenge of `rec`, the code
/// sealed) is written before the call goes out, so the press always finds
/// it, in one unit of work with the challenge, which now knows its call:
/// the commit that ends the challenge deletes the record
/// (docs/decisions/0213-a-call-s-record-ends-with-its-challenge.md).
pub(super) async fn prepare_call(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    (channel, purpose): (&str, Purpose),
    code: Option<&str>,
    now: Timestamp,
) -> Result<Option<Call>> {
    if voice_config(core, channel).is_err() || purpose != Purpose::Otp {
        return Ok(None);
    }
    let (Some(challenge), Some(code)) = (&rec.challenge, code.and_then(OtpCode::from_digits))
    else {
        return Err(Error::internal("a call without its challenge or code"));
    };
    let cid = challenge.id;
    let gather = GatherId::new(&team.id);
    let record = StoredGather {
        i: rec.id,
        c: cid,
        k: reveal::seal(&code, cid, core.pepper())?,
        n: 0,
    };
    // Never past the challenge's end: a later press hears it is gone.
    let ttl = challenge.expires_at.since(now);
    let key = keys::gather(&team.keyspace, channel, gather.as_str());
    let (key, record, gather) = (&key, &record, &gather);
    core.transact(team, rec.id, now, |w| {
        Box::pin(async move {
            let version = w.create(key, record, Some(ttl))?;
            let open = w
                .rec
                .challenge
                .as_mut()
                .filter(|c| c.id == cid && c.is_open(now));
            let Some(c) = open else {
                return Err(Error::internal(
                    "the call's challenge ended before it went out",
                ));
            };
            let Some(code) = c.proof.otp_state_mut() else {
                return Err(Error::internal("a call for a challenge that is no code"));
            };
            // A call placed before for this challenge (a step sent again)
            // ends here: the write deletes its record.
            code.call = Some(VoiceCall {
                channel: channel.to_string(),
                gather: gather.clone(),
                version,
            });
            Ok(Step::Write(()))
        })
    })
    .await?;
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
    message: (&str, Purpose),
    code: Option<&str>,
    now: Timestamp,
) -> std::result::Result<Option<Call>, ChannelError> {
    prepare_call(core, team, rec, message, code, now)
        .await
        .map_err(|_| ChannelError::new("the call could not be prepared"))
}

/// The `twilio_voice` channel `channel`: 404 for any other.
pub fn voice_config<'c>(core: &'c Core, channel: &str) -> Result<&'c TwilioVoiceConfig> {
    match core.config().channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::TwilioVoice(voice)) => Ok(voice),
        _ => Err(Error::NotFound("no twilio_voice channel of this name")),
    }
}

/// A signed key press on `channel`, read at the edge
/// (`TwilioVoiceConfig::key_press`): the TwiML to answer. 404 for a
/// channel that is not `twilio_voice`; then the code, or that it is no
/// longer available.
pub async fn press(core: &Core, channel: &str, press: KeyPress, now: Timestamp) -> Result<String> {
    let cfg = voice_config(core, channel)?;
    let heard = hear(core, channel, &press, now).await?;
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

/// `press` of a call on `channel`, in the team its gather id names (one
/// read of its record): `None` when the id names no call of a team that
/// uses the channel. An id of an earlier version names no team: each team
/// using the channel is asked in turn.
async fn hear<'c>(
    core: &'c Core,
    channel: &str,
    press: &KeyPress,
    now: Timestamp,
) -> Result<Option<Heard<'c>>> {
    let Some(gather) = &press.gather else {
        return Ok(None);
    };
    let config = core.config();
    let named = gather.team().map(|t| config.team(t));
    let teams: Vec<&Team> = match named {
        Some(team) => team.into_iter().collect(),
        None => config.teams.values().map(|t| &**t).collect(),
    };
    for team in teams.into_iter().filter(|t| t.uses_channel(channel)) {
        let key = keys::gather(&team.keyspace, channel, gather.as_str());
        let read: Loaded<StoredGather> = doors::read(core, &key).await?;
        if read.value.is_some() {
            return read_aloud(core, team, read, press, now).await;
        }
    }
    Ok(None)
}

/// One press of the call whose record was `read`, as one unit of work on
/// its interaction: counted, and the first reading recorded as the call's
/// delivery, when [`voice::press`] reads the code. The record is decided
/// on as read; only a try after a concurrent write reads it again. `None`:
/// the interaction is gone.
async fn read_aloud<'t>(
    core: &Core,
    team: &'t Team,
    read: Loaded<StoredGather>,
    press: &KeyPress,
    now: Timestamp,
) -> Result<Option<Heard<'t>>> {
    let Some(id) = read.value.as_ref().map(|g| g.i) else {
        return Ok(None);
    };
    let key = read.key.clone();
    let mut as_read = Some(read);
    let done = core
        .transact(team, id, now, |w| {
            let first = as_read.take();
            let key = key.clone();
            Box::pin(async move {
                w.as_announcement();
                let read = match first {
                    Some(read) => read,
                    None => doors::read(core, &key).await?,
                };
                count_press(core, w, team, read, press, now)
            })
        })
        .await;
    match done {
        Ok(done) => heard(core, team, done, now).map(Some),
        Err(Error::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `press` on the call whose record was `read`, decided in `w`: when
/// [`voice::press`] reads the code, the record counts the reading, the
/// challenge learns the version its call's record is now at, and the
/// first reading is the call's delivery; the answer is the challenge and
/// its sealed code. `None` (nothing written): the press reads nothing.
fn count_press(
    core: &Core,
    w: &mut Work<'_>,
    team: &Team,
    read: Loaded<StoredGather>,
    press: &KeyPress,
    now: Timestamp,
) -> Result<Step<Option<(Uuid, String)>>> {
    let Some(mut gather) = read.value.clone() else {
        return Ok(Step::Answer(None));
    };
    let found = w.rec.challenge_at_mut(gather.c, now);
    let open = found.as_ref().map(|(_, s)| *s) == Some(ChallengeState::Open);
    let Press::Read { first } = voice::press(press.pressed, open, gather.n) else {
        return Ok(Step::Answer(None));
    };
    gather.n += 1;
    let ttl = found.map_or(Duration::ZERO, |(c, _)| c.expires_at.since(now));
    let version = w.put(&read, &gather, Some(ttl))?;
    note_call_version(&mut w.rec, team, gather.c, &read.key, version, now);
    if first {
        reports::arrived_by_voice(core, w, gather.c, &press.call_sid, now);
    }
    Ok(Step::Write(Some((gather.c, gather.k))))
}

/// The challenge `cid` of `rec` knows the version its call's record (at
/// `key`) is at.
fn note_call_version(
    rec: &mut InteractionRecord,
    team: &Team,
    cid: Uuid,
    key: &str,
    version: u64,
    now: Timestamp,
) {
    let this_call =
        |v: &&mut VoiceCall| keys::gather(&team.keyspace, &v.channel, v.gather.as_str()) == key;
    let challenge = rec.challenge_at_mut(cid, now);
    let code = challenge.and_then(|(c, _)| c.proof.otp_state_mut());
    if let Some(call) = code.and_then(|o| o.call.as_mut().filter(this_call)) {
        call.version = version;
    }
}

/// What a press found once its unit of work is `done`: the code opened
/// when the press reads it, with the payment it is for.
fn heard<'t>(
    core: &Core,
    team: &'t Team,
    done: Done<Option<(Uuid, String)>>,
    now: Timestamp,
) -> Result<Heard<'t>> {
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
    Ok(Heard {
        team,
        rec: done.rec,
        code,
        transaction,
    })
}
