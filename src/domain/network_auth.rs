//! Silent network authentication (docs/network-authentication.md): what a
//! provider's answer, read as a [`NetworkResult`] by its provider
//! (`network_verification`), does to a network challenge, on plain values.
//!
//! [`conclude`] applies a result to the interaction's open network
//! challenge; whose conversation a verified answer proves is decided here
//! too (the link's form token is the browser's, `browser.rs`).
use uuid::Uuid;

use super::challenge::{AdvanceReason, Challenge, ChallengeMethod, Page, PastOutcome};
pub use super::challenge::{NetworkAnswer, NetworkResult};
use super::interaction::{InteractionRecord, Method};
use super::settings::Settings;
use super::subject::SubjectRecord;
use crate::time::Timestamp;

/// What an answer did to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The interaction is authenticated with method `network`.
    Authenticated,
    /// Verified for a conversation that is not the number's own: the
    /// challenge stays open until the code its page shows is typed into
    /// the conversation, for `otp.ttl` from now.
    AwaitingCode,
    /// The challenge ended unanswered: its reason for `challenge.failed`.
    Ended { reason: &'static str },
    /// It stays open; the answer is recorded.
    Open,
    /// A ladder's network step that did not confirm: the answer is
    /// recorded, and the ladder moves on to its next step for `reason`.
    MoveOn(AdvanceReason),
    /// It is no longer the interaction's open network challenge (used,
    /// replaced, expired): nothing changes.
    Gone,
}

/// The `challenge.failed` reason of a network challenge the operator
/// answered with another number, or whose landing codes were all wrong
/// (docs/network-authentication.md).
pub const MISMATCH: &str = "number_mismatch";

/// Whether `cid` is `rec`'s open network challenge at `now` and the
/// operator's answer is what it waits for: a `network` challenge, or a
/// ladder still at its network step, and no verified answer waiting for
/// its code (the link is used). What [`conclude`] applies an answer to;
/// the network link's page opens on the same rule (its state `Open`).
fn is_open_network(rec: &InteractionRecord, cid: Uuid, now: Timestamp) -> bool {
    rec.open_challenge(now)
        .is_some_and(|c| c.id == cid && asks_the_operator(c) && !c.awaits_code())
}

/// Whether `c` asks the mobile operator: a network challenge, or a
/// ladder at its network step. The one place this is said; the network
/// link's kind opens on it (`links::kinds::Network`).
pub fn asks_the_operator(c: &Challenge) -> bool {
    c.opens_on(Page::Network)
}

/// How a verified answer proves the person in the conversation
/// (docs/network-authentication.md#the-code-typed-into-the-chat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// The conversation is the verified number's own SMS conversation:
    /// only the SIM can be in it, and the answer authenticates it.
    OwnNumber,
    /// Any other conversation: the phone is proven, not yet the person in
    /// the chat; the keyed hash of the code its page shows, to be typed
    /// into the conversation.
    CodeToType(String),
}

/// Whether a conversation on a channel that `is_sms` (a `twilio` channel
/// that does not send WhatsApp) with `conversation_id` is the SMS
/// conversation of `number`: both read as the same E.164 number.
pub fn own_sms_conversation(is_sms: bool, conversation_id: &str, number: &str) -> bool {
    let e164 = |n: &str| super::phone::e164(n);
    is_sms && e164(conversation_id).is_some_and(|c| Some(c) == e164(number))
}

/// Why a ladder's network step moves on after `result` (`None`: it
/// confirmed).
pub fn move_reason(result: NetworkResult) -> Option<AdvanceReason> {
    match result {
        NetworkResult::Verified => None,
        NetworkResult::Mismatch => Some(AdvanceReason::NumberMismatch),
        NetworkResult::NotOnMobileNetwork => Some(AdvanceReason::NotOnMobileNetwork),
        NetworkResult::Error => Some(AdvanceReason::Failed),
    }
}

/// Applies `result` to network challenge `cid` of `rec` at `now`:
///
/// - not its open network challenge: nothing changes ([`Ending::Gone`]);
/// - verified, the subject locked or banned by now: it ends (`locked`);
/// - verified in the number's own SMS conversation ([`Proof::OwnNumber`]):
///   the subject's failures are cleared and the interaction is
///   authenticated with method `network` (a live pre-chat step-up is
///   completed as its customer), `via` naming `network`;
/// - verified in any other conversation ([`Proof::CodeToType`]): the
///   challenge stays open for `otp.ttl`, with `otp.max_attempts` tries,
///   answered by the code's keyed hash ([`Ending::AwaitingCode`]); a
///   ladder stays at its network step;
/// - mismatch: it ends (`number_mismatch`), counting nothing: a dual-SIM
///   phone browsing on its other SIM answers so for its own customer, and
///   nothing can be guessed this way;
/// - off the mobile network, or an error: it stays open, nothing counted.
///
/// On a ladder at its network step, any answer but a confirmation moves
/// the ladder on ([`Ending::MoveOn`]); nothing counts as a wrong attempt.
/// Every answer is recorded on the challenge as its last.
pub fn conclude(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    (cid, result, proof): (Uuid, NetworkResult, Proof),
    s: &Settings,
    now: Timestamp,
) -> Ending {
    if !is_open_network(rec, cid, now) {
        return Ending::Gone;
    }
    if let Some(c) = rec.challenge.as_mut() {
        c.keep_network_answer(NetworkAnswer {
            result,
            answered_at: now,
        });
    }
    rec.last_write_at = now;
    let origin = rec.lockout_origin(s);
    let on_ladder = rec.challenge.as_ref().is_some_and(|c| c.ladder().is_some());
    if let (true, Some(reason)) = (on_ladder, move_reason(result)) {
        return Ending::MoveOn(reason);
    }
    match result {
        NetworkResult::NotOnMobileNetwork | NetworkResult::Error => Ending::Open,
        NetworkResult::Mismatch => {
            rec.end_challenge(PastOutcome::Failed);
            Ending::Ended { reason: MISMATCH }
        }
        NetworkResult::Verified if subject.ensure_clear_for(origin.as_deref(), now).is_err() => {
            rec.end_challenge(PastOutcome::Failed);
            Ending::Ended { reason: "locked" }
        }
        NetworkResult::Verified => match proof {
            Proof::OwnNumber => authenticate(rec, subject, origin.as_deref(), s, now),
            Proof::CodeToType(hash) => {
                if let Some(c) = rec.challenge.as_mut() {
                    c.await_code(hash, &s.otp, now);
                }
                Ending::AwaitingCode
            }
        },
    }
}

/// Whose answer a result is: the operator's about the number (CAMARA's
/// verify call), or a provider's to a code a browser posted (Vonage's
/// landing), which a browser can make up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Operator,
    PostedCode,
}

/// A provider refused a code a browser posted for network challenge `cid`
/// of `rec` at `now` (Vonage's 400 or 404 to the landing's code): one
/// wrong try of the challenge, counted as a wrong code is (`otp.max_attempts`
/// tries), since a browser can post any code
/// (docs/network-authentication.md#the-vonage-landing):
///
/// - not its open network challenge: nothing changes ([`Ending::Gone`]);
/// - a ladder at its network step moves on, as for any answer that does
///   not confirm, nothing counted ([`Ending::MoveOn`]);
/// - tries left: it stays open ([`Ending::Open`]);
/// - the last try: it ends (`number_mismatch`).
///
/// The answer is recorded as a `mismatch`; the subject's lockout counts
/// nothing, so that a stranger holding the link cannot lock the customer
/// (docs/decisions/0560-a-refused-landing-code-is-one-wrong-try.md).
pub fn refused_code(
    rec: &mut InteractionRecord,
    cid: Uuid,
    s: &Settings,
    now: Timestamp,
) -> Ending {
    if !is_open_network(rec, cid, now) {
        return Ending::Gone;
    }
    rec.last_write_at = now;
    let Some(c) = rec.challenge.as_mut() else {
        return Ending::Gone;
    };
    c.keep_network_answer(NetworkAnswer {
        result: NetworkResult::Mismatch,
        answered_at: now,
    });
    if c.ladder().is_some() {
        return Ending::MoveOn(AdvanceReason::NumberMismatch);
    }
    c.attempts_used = c.attempts_used.saturating_add(1);
    c.max_attempts = s.otp.max_attempts;
    if c.attempts_used < s.otp.max_attempts {
        return Ending::Open;
    }
    rec.end_challenge(PastOutcome::Failed);
    Ending::Ended { reason: MISMATCH }
}

/// The verified answer authenticates the interaction with method `network`.
fn authenticate(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    origin: Option<&str>,
    s: &Settings,
    now: Timestamp,
) -> Ending {
    subject.record_success_for(origin, now, &s.lockout);
    let customer = match rec.live_step_up(now) {
        Some(p) => p.customer.clone(),
        None => rec.proven_customer(s, now),
    };
    rec.end_challenge(PastOutcome::Succeeded);
    let via = vec![ChallengeMethod::Network.as_str().to_string()];
    rec.authenticate_since(Method::Network, customer, via, now, now, s);
    Ending::Authenticated
}

#[cfg(test)]
mod tests;
