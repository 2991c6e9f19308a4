//! A wallet challenge's rules (docs/wallet.md#results), on plain values:
//! a page's request kept on the open challenge, and [`conclude`], which
//! applies a verified (or refused) presentation to it. Its state's types
//! are `domain::wallet_state`'s.
use uuid::Uuid;

use crate::domain::challenge::{Challenge, PastOutcome};
use crate::domain::interaction::InteractionRecord;
use crate::domain::origins::Failure;
use crate::domain::secrets::Pepper;
use crate::domain::settings::Settings;
use crate::domain::subject::SubjectRecord;
use crate::domain::wallet_format::Format;
pub use crate::domain::wallet_state::{WalletAnswer, WalletChallenge, WalletRequest, WalletResult};
use crate::time::Timestamp;

/// What a wallet's answer to one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// The wallet answered an OpenID4VP error, or the browser's call was
    /// refused: nothing counts, the challenge stays open.
    WalletError,
    /// A presentation, verified as far as it went, and the credential
    /// asked that it presented (with its format), once known.
    Answer(WalletAnswer, Option<(String, Format)>),
}

/// The binding code a verified presentation waits for
/// (docs/wallet.md#the-code-typed-into-the-chat): its keyed hash, and for
/// a `direct_post` answer the keyed hash of the `response_code` of the
/// `redirect_uri` where alone it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub code_hash: String,
    pub response_code: Option<String>,
}

/// The purposes that keep a `response_code`'s and a browser secret's
/// keyed hashes apart from every other.
const RESPONSE_CODE: &str = "wallet-response-code";
const CODE_BROWSER: &str = "wallet-code-browser";

/// The keyed hash a challenge keeps of its answer's `response_code`.
pub fn response_code_hash(pepper: &Pepper, response_code: &str) -> String {
    pepper.keyed_hash(RESPONSE_CODE, response_code.as_bytes())
}

/// The keyed hash a challenge keeps of the secret of the browser that
/// opened its answer's `redirect_uri`.
pub fn browser_hash(pepper: &Pepper, secret: &str) -> String {
    pepper.keyed_hash(CODE_BROWSER, secret.as_bytes())
}

/// Where a verified `direct_post` answer's binding code may be shown, for
/// the `redirect_uri` opened with `response_code` in the browser whose
/// cookie keeps `browser` (each compared in constant time): its
/// [`Showing`].
pub fn showing(
    w: &WalletChallenge,
    pepper: &Pepper,
    response_code: Option<&str>,
    browser: Option<&str>,
) -> Showing {
    let held = |purpose, given: Option<&str>, kept: Option<&String>| match (given, kept) {
        (Some(g), Some(k)) if !g.is_empty() => pepper.verify(purpose, g.as_bytes(), k),
        _ => false,
    };
    if !held(RESPONSE_CODE, response_code, w.response_code.as_ref()) {
        return Showing::Elsewhere;
    }
    match &w.code_browser {
        None => Showing::First,
        Some(_) if held(CODE_BROWSER, browser, w.code_browser.as_ref()) => Showing::Again,
        Some(_) => Showing::Elsewhere,
    }
}

/// Whether a `redirect_uri` opened shows the binding code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Showing {
    /// Its `response_code`, opened by no browser yet: shown, and tied to
    /// this browser.
    First,
    /// Its `response_code` in the browser it is tied to: shown again.
    Again,
    /// Anything else: never the code.
    Elsewhere,
}

/// What an answer did to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Verified: the credential is proven, not yet the person in the
    /// conversation; the challenge stays open, awaiting the binding code.
    AwaitingCode,
    /// The challenge failed for `reason`; `failure`: what counting it on
    /// the subject came to.
    Failed {
        reason: &'static str,
        failure: Option<Failure>,
    },
    /// A wallet's own error: it stays open, nothing counted.
    Open,
}

/// Why an answer changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It is no longer the interaction's open wallet challenge.
    Gone,
    /// No open request of the challenge has this key: unknown, replaced
    /// or answered already.
    NoRequest,
}

/// The interaction's open wallet challenge `cid` at `now`, while it waits
/// for a presentation (not once a verified one waits for its binding
/// code: it makes no request and takes no answer then).
pub fn open_wallet(rec: &InteractionRecord, cid: Uuid, now: Timestamp) -> Option<&WalletChallenge> {
    rec.open_challenge(now)
        .filter(|c| c.id == cid && !c.awaits_code())
        .and_then(Challenge::wallet)
}

/// The interaction's wallet challenge `cid` while a verified presentation
/// waits for its binding code at `now`.
pub fn awaiting_code(
    rec: &InteractionRecord,
    cid: Uuid,
    now: Timestamp,
) -> Option<&WalletChallenge> {
    rec.open_challenge(now)
        .filter(|c| c.id == cid && c.awaits_code())
        .and_then(Challenge::wallet)
}

/// Ties the `redirect_uri` of wallet challenge `cid`'s verified answer to
/// the browser whose secret's keyed hash is `browser`: `false`, changing
/// nothing, when it no longer waits for its code or a browser opened it
/// first.
pub fn tie_browser(
    rec: &mut InteractionRecord,
    cid: Uuid,
    browser: String,
    now: Timestamp,
) -> bool {
    let untied = awaiting_code(rec, cid, now).is_some_and(|w| w.code_browser.is_none());
    let wallet = rec.challenge.as_mut().and_then(|c| c.proof.wallet_mut());
    match (untied, wallet) {
        (true, Some(w)) => {
            w.code_browser = Some(browser);
            rec.last_write_at = now;
            true
        }
        _ => false,
    }
}

/// Keeps `request` on the open wallet challenge `cid` of `rec`, its
/// oldest going beyond its five newest: the key ids of those that went,
/// whose records go with them; `None` when it is not open.
pub fn add_request(
    rec: &mut InteractionRecord,
    cid: Uuid,
    request: WalletRequest,
    now: Timestamp,
) -> Option<Vec<String>> {
    open_wallet(rec, cid, now)?;
    let wallet = rec.challenge.as_mut().and_then(|c| c.proof.wallet_mut());
    wallet.map(|w| w.add_request(request))
}

/// Applies what a wallet answered to the request of key `kid` of wallet
/// challenge `cid` of `rec`, at `now`:
///
/// - not its open wallet challenge: [`Refused::Gone`]; no open request of
///   that key: [`Refused::NoRequest`] (nothing changes either way);
/// - the request is answered from now on, whatever follows; the
///   credential presented, when known, is the challenge's from now on;
/// - a wallet's error: it stays open, nothing counted;
/// - verified and matching, the subject (or origin) clear: the credential
///   is proven, not yet the person in the conversation (a link relayed to
///   the credential's owner proves nothing in a stranger's chat): the
///   challenge stays open awaiting `binding`'s code, as a verified network
///   answer's (`Challenge::await_code`), and nothing is cleared yet;
///   verified while the subject is locked or banned: it fails (`locked`);
/// - anything else fails the challenge for its result, counted on the
///   subject as a wrong code is.
pub fn conclude(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    (cid, kid, presented): (Uuid, &str, Presented),
    binding: Binding,
    s: &Settings,
    now: Timestamp,
) -> Result<Ending, Refused> {
    let wallet = open_wallet(rec, cid, now).ok_or(Refused::Gone)?;
    if wallet.request_for_key(kid).is_none() {
        return Err(Refused::NoRequest);
    }
    let wallet = rec.challenge.as_mut().and_then(|c| c.proof.wallet_mut());
    let Some(wallet) = wallet else {
        return Err(Refused::Gone);
    };
    for r in wallet.requests.iter_mut().filter(|r| r.kid == kid) {
        r.answered = true;
    }
    let Presented::Answer(answer, credential) = presented else {
        rec.last_write_at = now;
        return Ok(Ending::Open);
    };
    if let Some((id, format)) = credential {
        wallet.presented(&id, format);
    }
    let result = answer.result;
    wallet.answer = Some(answer);
    rec.last_write_at = now;
    let origin = rec.lockout_origin(s);
    if result == WalletResult::Verified {
        if subject.ensure_clear_for(origin.as_deref(), now).is_err() {
            rec.end_challenge(PastOutcome::Failed);
            let failure = None;
            return Ok(Ending::Failed {
                reason: "locked",
                failure,
            });
        }
        if let Some(c) = rec.challenge.as_mut() {
            c.await_code(binding.code_hash, &s.otp, now);
            if let Some(w) = c.proof.wallet_mut() {
                w.response_code = binding.response_code;
            }
        }
        return Ok(Ending::AwaitingCode);
    }
    rec.end_challenge(PastOutcome::Failed);
    let failure = subject.record_failure_for(origin.as_deref(), now, &s.lockout, &s.otp);
    Ok(Ending::Failed {
        reason: result.as_str(),
        failure: Some(failure),
    })
}

#[cfg(test)]
mod tests;
