//! A wallet challenge's rules (docs/wallet.md#results), on plain values:
//! a page's request kept on the open challenge, and [`conclude`], which
//! applies a verified (or refused) presentation to it. Its state's types
//! are `domain::wallet_state`'s.
use uuid::Uuid;

use crate::domain::challenge::{ChallengeMethod, PastOutcome};
use crate::domain::interaction::{InteractionRecord, Method};
use crate::domain::origins::Failure;
use crate::domain::settings::Settings;
use crate::domain::subject::SubjectRecord;
pub use crate::domain::wallet_state::{
    WalletAnswer, WalletChallenge, WalletFormat, WalletRequest, WalletResult,
};
use crate::time::Timestamp;

/// What a wallet's answer to one request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// The wallet answered an OpenID4VP error, or the browser's call was
    /// refused: nothing counts, the challenge stays open.
    WalletError,
    /// A presentation, verified as far as it went.
    Answer(WalletAnswer),
}

/// What an answer did to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The interaction is authenticated with method `wallet`.
    Authenticated,
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

/// The interaction's open wallet challenge `cid` at `now`.
pub fn open_wallet(rec: &InteractionRecord, cid: Uuid, now: Timestamp) -> Option<&WalletChallenge> {
    rec.open_challenge(now)
        .filter(|c| c.id == cid && c.method == ChallengeMethod::Wallet)
        .and_then(|c| c.wallet.as_ref())
}

/// Whether wallet challenge `cid` of `rec` succeeded.
pub fn succeeded(rec: &InteractionRecord, cid: Uuid) -> bool {
    rec.past_challenges
        .iter()
        .any(|p| p.id == cid && p.outcome == PastOutcome::Succeeded)
}

/// Keeps `request` on the open wallet challenge `cid` of `rec`; `false`
/// when it is not open.
pub fn add_request(
    rec: &mut InteractionRecord,
    cid: Uuid,
    request: WalletRequest,
    now: Timestamp,
) -> bool {
    if open_wallet(rec, cid, now).is_none() {
        return false;
    }
    let wallet = rec.challenge.as_mut().and_then(|c| c.wallet.as_mut());
    wallet.map(|w| w.add_request(request)).is_some()
}

/// Applies what a wallet answered to the request of key `kid` of wallet
/// challenge `cid` of `rec`, at `now`:
///
/// - not its open wallet challenge: [`Refused::Gone`]; no open request of
///   that key: [`Refused::NoRequest`] (nothing changes either way);
/// - the request is answered from now on, whatever follows;
/// - a wallet's error: it stays open, nothing counted;
/// - verified and matching, the subject (or origin) clear: the subject's
///   failures are cleared, the interaction authenticated with method
///   `wallet` (a live pre-chat step-up completed as its customer);
///   verified while the subject is locked or banned: it fails (`locked`);
/// - anything else fails the challenge for its result, counted on the
///   subject as a wrong code is.
pub fn conclude(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    (cid, kid, presented): (Uuid, &str, Presented),
    s: &Settings,
    now: Timestamp,
) -> Result<Ending, Refused> {
    let wallet = open_wallet(rec, cid, now).ok_or(Refused::Gone)?;
    if wallet.request_for_key(kid).is_none() {
        return Err(Refused::NoRequest);
    }
    let wallet = rec.challenge.as_mut().and_then(|c| c.wallet.as_mut());
    let Some(wallet) = wallet else {
        return Err(Refused::Gone);
    };
    for r in wallet.requests.iter_mut().filter(|r| r.kid == kid) {
        r.answered = true;
    }
    let Presented::Answer(answer) = presented else {
        rec.last_write_at = now;
        return Ok(Ending::Open);
    };
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
        subject.record_success_for(origin.as_deref(), now, &s.lockout);
        let customer = match rec.live_step_up(now) {
            Some(p) => p.customer.clone(),
            None => rec.proven_customer(s, now),
        };
        rec.end_challenge(PastOutcome::Succeeded);
        let via = vec![ChallengeMethod::Wallet.as_str().to_string()];
        rec.authenticate_since(Method::Wallet, customer, via, now, now, s);
        return Ok(Ending::Authenticated);
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
