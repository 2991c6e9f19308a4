//! A challenge whose code is typed on the gateway's page
//! (docs/api.md#codes-typed-on-the-gateways-page): the page's link, and
//! the message that carries it into the conversation after the code.
//! The page itself is `gateway/code_entry.rs`.
use uuid::Uuid;

use crate::channels::{Fill, Purpose};
use crate::config::Team;
use crate::domain::challenge::{Page, PageEntryLink};
use crate::domain::interaction::InteractionRecord;
use crate::domain::start_challenge::{ChallengeRequest, Started};
use crate::error::{Error, Result};
use crate::gateway::links;
use crate::gateway::Core;
use crate::time::Timestamp;

/// A fresh link to the page of challenge `cid` of interaction `id`
/// (256 random bits, unrelated to the code), saved until it can only
/// answer 410: `{public_url}/c/{code}`.
async fn entry_url(
    core: &Core,
    team: &Team,
    ids: (Uuid, Uuid),
    until: Timestamp,
    now: Timestamp,
) -> Result<String> {
    links::save_for(core, team, Page::CodeEntry, ids, until, now).await
}

/// The link a single message carries: a network challenge's (`link`),
/// or for a PIN typed on the page the page's, which replaces its prompt.
pub(super) async fn message_link(
    core: &Core,
    team: &Team,
    ids: (Uuid, Uuid),
    (req, started): (&ChallengeRequest, &Started),
    link: Option<String>,
    now: Timestamp,
) -> Result<Option<String>> {
    if link.is_some()
        || !req.page_entry
        || req.method.page_entry_link() != PageEntryLink::InThePrompt
    {
        return Ok(link);
    }
    entry_url(core, team, ids, started.expires_at, now)
        .await
        .map(Some)
}

/// After an OTP typed on the page went as a single message (or to an
/// agent), and only then, the page's link goes into the conversation
/// (`code_entry_link`); a link the chat's channel does not take takes
/// the challenge back (the customer could type the code nowhere): 502.
pub(super) async fn after_code(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    (cid, req, started): (Uuid, &ChallengeRequest, &Started),
    now: Timestamp,
) -> Result<()> {
    if !req.page_entry || req.method.page_entry_link() != PageEntryLink::AfterTheCode {
        return Ok(());
    }
    let Err(e) = send_entry_link(core, team, rec, cid, started.expires_at, now).await else {
        return Ok(());
    };
    super::destinations::undo_challenge(core, team, rec.id, cid, started, now).await?;
    Err(e)
}

/// Sends a page-entry challenge's link into `rec`'s conversation
/// (`code_entry_link`), when `req` asked for the page: a ladder's, after
/// its first step took the code.
pub(super) async fn after_ladder_code(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    (cid, req): (Uuid, &ChallengeRequest),
    until: Timestamp,
    now: Timestamp,
) -> Result<()> {
    if !req.page_entry {
        return Ok(());
    }
    send_entry_link(core, team, rec, cid, until, now).await
}

/// The page's link into `rec`'s conversation (`code_entry_link`).
async fn send_entry_link(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    cid: Uuid,
    until: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let url = entry_url(core, team, (rec.id, cid), until, now).await?;
    let fill = Fill {
        url: Some(&url),
        ..Fill::default()
    };
    let purpose = Purpose::Link(Page::CodeEntry);
    let sent = core.send(team, rec, &rec.channel, None, purpose, fill, None, now);
    sent.await.map_err(|e| Error::Channel(e.to_string()))?;
    Ok(())
}
