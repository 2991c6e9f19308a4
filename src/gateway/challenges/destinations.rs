//! Where a challenge's message may go and what it costs the destination:
//! the routes from an interaction's channel (chat, SMS, e-mail), the
//! per-destination send count (docs/api.md#where-an-otp-may-go), and
//! taking a challenge back when its message could not be sent. Shared by
//! a single send (`challenges`) and a delivery ladder's steps (`ladder`).
use uuid::Uuid;

use crate::config::{Settings, Team};
use crate::domain::challenge::Challenge;
use crate::domain::destination::{self, DestinationSends};
use crate::domain::start_challenge::{self, Route, Routes, Started};
use crate::error::Result;
use crate::gateway::records::{Loaded, StoredSends};
use crate::gateway::work::{Step, Work};
use crate::gateway::writes::Writes;
use crate::gateway::{doors, Core};
use crate::store::keys;
use crate::time::Timestamp;

/// The channels a challenge's message may take from `own`, the
/// interaction's channel, and whom each reaches.
pub(in crate::gateway) fn routes(core: &Core, team: &Team, own: &str) -> Routes {
    let route = |channel: &str| Route {
        channel: channel.to_string(),
        reach: core.reach(channel),
        vouches: core.config().vouches_for_sender(channel),
        shows_text: crate::config::shows_text(core.config().channels.get(channel)),
        whatsapp: core.config().whatsapp_chat(channel),
        otp_template: core.config().otp_template(channel),
    };
    Routes {
        chat: route(own),
        sms: team.sms_channel.as_deref().map(route),
        email: team.email_channel.as_deref().map(route),
        voice: team.voice_channel.as_deref().map(route),
    }
}

/// The key counting the sends to `destination` from `allowance` (see
/// `SubjectRecord::allowance_of`), named by its keyed digest.
pub(in crate::gateway) fn destination_key(
    core: &Core,
    team: &Team,
    destination: &str,
    allowance: Option<&str>,
) -> String {
    let digest = destination::digest_for(core.pepper(), destination, allowance);
    keys::destination(&team.keyspace, &digest)
}

/// The sends counted for the destination under `dkey`, as read.
pub(in crate::gateway) async fn destination_sends(
    core: &Core,
    dkey: &str,
) -> Result<Loaded<DestinationSends>> {
    doors::read(core, dkey).await
}

/// Counts in `w` one more send to `destination` from `allowance` at
/// `now`; 429 when it already had `otp.max_sends` within
/// `otp.send_window`, whatever subjects asked for them.
pub(in crate::gateway) async fn count_destination(
    core: &Core,
    team: &Team,
    w: &mut Work<'_>,
    (destination, allowance): (&str, Option<&str>),
    s: &Settings,
    now: Timestamp,
) -> Result<()> {
    let dkey = destination_key(core, team, destination, allowance);
    let read = destination_sends(core, &dkey).await?;
    let mut sends = read.value.clone().unwrap_or_default();
    sends.take(now, &s.otp)?;
    let sends = StoredSends::from(&sends);
    w.put(&read, &sends, Some(s.otp.send_window.get()))?;
    Ok(())
}

/// Takes back challenge `cid`, whose message could not be sent, and the
/// sends it counted (the subject's, and its destination's if it has
/// one: a ladder's steps give theirs back as each fails).
pub(in crate::gateway) async fn undo_challenge(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    started: &Started,
    now: Timestamp,
) -> Result<()> {
    let counted = started.destination.as_deref();
    let counted = counted.map(|d| (d, started.allowance.as_deref()));
    take_back(core, team, id, cid, &started.previous, counted, now).await
}

/// Takes back challenge `cid`, reopening `previous` (the one it
/// replaced), and the sends it counted: the subject's, and the one
/// `counted` at a destination (from an allowance) if any.
pub(in crate::gateway) async fn take_back(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    previous: &Option<Challenge>,
    counted: Option<(&str, Option<&str>)>,
    now: Timestamp,
) -> Result<()> {
    core.transact(team, id, now, |w| {
        Box::pin(async move {
            let origin = w.origin();
            let (rec, subject) = w.records();
            let origin = origin.as_deref();
            if !start_challenge::take_back(rec, subject, origin, cid, previous.clone(), now) {
                return Ok(Step::Answer(())); // already replaced by a newer one
            }
            if let Some((d, allowance)) = counted {
                let dkey = destination_key(core, team, d, allowance);
                let read = destination_sends(core, &dkey).await?;
                if let Some(mut sends) = read.value.clone() {
                    sends.give_back(now);
                    let ttl = w.settings.otp.send_window.get();
                    let sends = StoredSends::from(&sends);
                    w.put(&read, &sends, Some(ttl))?;
                }
            }
            Ok(Step::Write(()))
        })
    })
    .await
    .map(|_| ())
}
