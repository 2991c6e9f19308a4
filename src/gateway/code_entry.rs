//! Codes typed on the gateway's page, not into the chat
//! (docs/api.md#codes-typed-on-the-gateways-page): after a page-entry
//! challenge's code goes, its link goes into the conversation; `GET
//! /c/{code}` shows the one-field form (nothing used up), and its `POST`
//! answers the code exactly as the bot's `verify` would, through the same
//! use case, so attempts, lockouts and events count alike. A POST without
//! its browser's form token, or past ten a minute, counts nothing.
use std::sync::Arc;
use std::time::Duration;

use super::challenges::verify::verify_on_page;
use super::links::{self, CodeEntry, LinkState, Named, Opened};
use super::login::Speaks;
use super::records::StoredLinkUses;
use super::work::Step;
use super::Core;
use crate::config::Team;
use crate::domain::browser::{self, LinkUses, USE_WINDOW};
use crate::domain::challenge::Proof;
use crate::domain::otp::OtpCode;
use crate::error::{Error, Result};
use crate::store::keys;
use crate::time::Timestamp;

/// The one-field form of an open page-entry challenge.
#[derive(Debug)]
pub struct EntryForm {
    pub speaks: Speaks,
    /// The team and the conversation's channel the page names.
    pub named: Named,
    /// A session PIN, not a code that was sent.
    pub pin: bool,
    /// The form's token, for the browser the request named.
    pub form_token: String,
    /// How long the challenge has left: the browser cookie's life.
    pub left: Duration,
    /// The wrong codes it still takes.
    pub tries: u32,
}

/// What `GET /c/{code}` and its `POST` answer.
#[derive(Debug)]
pub enum EntryAnswer {
    /// The form (the `GET` of an open link).
    Form(EntryForm),
    /// The code was right: the binding code to type into the chat, which
    /// the page shows once (kept only as its keyed hash).
    Bind(Speaks, OtpCode),
    /// The code was wrong: the form again, with the tries left.
    Wrong(EntryForm, u32),
    /// No tries are left (or the subject is now locked or banned).
    Ended(Speaks),
    /// No form token of this browser's page: nothing counted.
    Refused(Speaks),
    /// More than [`browser::USES_PER_MINUTE`]: nothing counted.
    Limited(Speaks),
    /// The challenge was used, expired, was replaced or failed: its 410
    /// page, in the interaction's language when known; how it ended.
    Gone(Option<Speaks>, Ended),
}

/// How a link's challenge ended, for its 410 page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The binding code was typed into the chat: the customer is verified.
    Verified,
    /// The right code was typed on the page, and its binding code is
    /// awaited in the chat: the page cannot show it again.
    Typed,
    /// Expired, replaced, out of tries or failed.
    Over,
}

/// The link `code` names while its challenge is open: its team, the link
/// with its interaction as read, and the form without its token; else
/// what it answers (`Gone`). 404 for a code never issued (or long gone).
async fn open_link<'c>(
    core: &'c Core,
    code: &str,
    now: Timestamp,
) -> Result<std::result::Result<(Opened<'c, CodeEntry>, EntryForm), EntryAnswer>> {
    let Some(opened) = links::open::<CodeEntry>(core, code, now).await? else {
        return Ok(Err(EntryAnswer::Gone(None, Ended::Over)));
    };
    let (team, state) = (opened.team, opened.state(now));
    let open = opened.rec().and_then(|rec| {
        let c = rec
            .open_challenge(now)
            .filter(|_| state == LinkState::Open)?;
        Some((rec, c))
    });
    let Some((rec, c)) = open else {
        let ended = match state {
            LinkState::Answered => Ended::Typed,
            LinkState::Done => Ended::Verified,
            LinkState::Open | LinkState::Failed | LinkState::Gone => Ended::Over,
        };
        return Ok(Err(EntryAnswer::Gone(opened.speaks(), ended)));
    };
    let form = EntryForm {
        speaks: links::speaks(team, rec),
        named: links::named(core, team, rec),
        pin: matches!(c.proof, Proof::Pin { .. }),
        form_token: String::new(),
        left: c.expires_at.since(now),
        tries: c.attempts_remaining(),
    };
    Ok(Ok((opened, form)))
}

/// `GET /c/{code}`: the form of the open page-entry challenge the code
/// names, with its token for the browser whose cookie keeps `browser`.
/// Nothing is written (link previews use nothing up).
pub async fn open_entry(
    core: &Core,
    code: &str,
    browser: &str,
    now: Timestamp,
) -> Result<EntryAnswer> {
    Ok(match open_link(core, code, now).await? {
        Ok((_, form)) => EntryAnswer::Form(EntryForm {
            form_token: browser::form_token(core.pepper(), code, browser),
            ..form
        }),
        Err(answer) => answer,
    })
}

/// `POST /c/{code}` with the `typed` code: counted among the link's
/// POSTs (past [`browser::USES_PER_MINUTE`]: 429), then only with the form token
/// of the browser whose cookie keeps `browser`, answered as the bot's
/// `verify` would answer it.
pub async fn post_entry(
    core: &Arc<Core>,
    code: &str,
    (browser, token): (Option<&str>, Option<&str>),
    typed: Option<&str>,
    now: Timestamp,
) -> Result<EntryAnswer> {
    let (opened, form) = match open_link(core, code, now).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    let team = opened.team;
    let counted = |result: &'static str| {
        metrics::counter!("chatgate_code_entries_total", "result" => result).increment(1);
    };
    let posts = keys::code_entry_posts(&team.keyspace, code);
    if !take_one(core, team, posts, now).await? {
        counted("refused");
        return Ok(EntryAnswer::Limited(form.speaks));
    }
    if !browser::form_token_holds(core.pepper(), code, browser, token) {
        tracing::info!(team = %team.id, "a code typed on the page without its browser's form token");
        counted("refused");
        return Ok(EntryAnswer::Refused(form.speaks));
    }
    let form = EntryForm {
        form_token: token.unwrap_or_default().to_string(),
        ..form
    };
    let typed = typed.unwrap_or_default();
    // Decided first on the interaction as the page's open read found it.
    let Some(pair) = opened.pair else {
        return Ok(EntryAnswer::Gone(Some(form.speaks), Ended::Over));
    };
    let verified = verify_on_page(core, team, (pair, opened.challenge), typed, now).await;
    let answer = match verified {
        Ok(Ok(bind)) => {
            counted("right");
            EntryAnswer::Bind(form.speaks, bind)
        }
        Ok(Err(e)) | Err(e) => refused_code(e, form)?,
    };
    if matches!(answer, EntryAnswer::Wrong(..) | EntryAnswer::Ended(_)) {
        counted("wrong");
    }
    Ok(answer)
}

/// What a code `verify` refused answers on the page: a wrong code the
/// form again with the tries left, the last one (or a lockout) the end;
/// a code that is not 1..20 digits the form again, nothing counted; a
/// challenge that ended meanwhile its 410 page.
fn refused_code(e: Error, form: EntryForm) -> Result<EntryAnswer> {
    Ok(match e {
        Error::InvalidCode {
            attempts_remaining: 0,
        }
        | Error::Locked { .. }
        | Error::Banned => EntryAnswer::Ended(form.speaks),
        Error::InvalidCode { attempts_remaining } => EntryAnswer::Wrong(form, attempts_remaining),
        Error::Unprocessable(_) => {
            let tries = form.tries;
            EntryAnswer::Wrong(form, tries)
        }
        Error::ChallengeExpired | Error::ChallengeExhausted | Error::NotFound(_) => {
            EntryAnswer::Gone(Some(form.speaks), Ended::Over)
        }
        // Typed right meanwhile, in another tab: its binding code is awaited.
        Error::ChallengeUsed => EntryAnswer::Gone(Some(form.speaks), Ended::Typed),
        e => return Err(e),
    })
}

/// Counts one more use of a link under `key` (a page-entry link's POSTs,
/// a wallet link's page fetches) of `team` at `now`; `false`, counting
/// nothing, past [`browser::USES_PER_MINUTE`] within the minute.
pub(super) async fn take_one(
    core: &Core,
    team: &Team,
    key: String,
    now: Timestamp,
) -> Result<bool> {
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let read = c.read::<LinkUses>(&key)?;
        let mut uses = read.value.clone().unwrap_or_default();
        if !uses.admit(now) {
            return Ok(Step::Answer(false));
        }
        c.put(&read, &StoredLinkUses::from(&uses), Some(USE_WINDOW))?;
        Ok(Step::Write(true))
    })
    .await
}
