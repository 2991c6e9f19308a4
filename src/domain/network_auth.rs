//! Silent network authentication (docs/network-authentication.md): what the
//! mobile operator's answer says, and what it does to a network challenge,
//! on plain values.
//!
//! [`read_verify_answer`] reads the Number Verification API's answer
//! strictly (anything unexpected is an error, never a confirmation);
//! [`conclude`] applies a result to the interaction's open network
//! challenge.
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::challenge::{AdvanceReason, Challenge, ChallengeMethod, PastOutcome};
pub use super::challenge::{NetworkAnswer, NetworkResult};
use super::interaction::{Customer, InteractionRecord, Method};
use super::settings::Settings;
use super::subject::SubjectRecord;
use crate::time::Timestamp;

/// The CAMARA error code of a verify call made off the mobile network.
pub const NOT_ON_MOBILE_NETWORK: &str =
    "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK";

/// The most of a verify answer that is read; a longer one is an error.
pub const MAX_ANSWER: usize = 16 * 1024;

/// What the Number Verification API's answer (`status`, `body`) says. A
/// 200 must be a JSON object whose `devicePhoneNumberVerified` is a
/// boolean; a 403 whose `code` is [`NOT_ON_MOBILE_NETWORK`] is a phone off
/// the mobile network; anything else (another status, a malformed or
/// oversized body, a member named twice in one object at any depth, as a
/// request body may not (`json_members`), a missing or mistyped member)
/// is an error. Its caller holds the answer to `application/json`.
pub fn read_verify_answer(status: u16, body: &[u8]) -> NetworkResult {
    if body.len() > MAX_ANSWER || super::json_members::repeated_member(body).is_some() {
        return NetworkResult::Error;
    }
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(body) else {
        return NetworkResult::Error;
    };
    match status {
        200 => match answer.get("devicePhoneNumberVerified") {
            Some(serde_json::Value::Bool(true)) => NetworkResult::Verified,
            Some(serde_json::Value::Bool(false)) => NetworkResult::Mismatch,
            _ => NetworkResult::Error,
        },
        403 if answer.get("code").and_then(|c| c.as_str()) == Some(NOT_ON_MOBILE_NETWORK) => {
            NetworkResult::NotOnMobileNetwork
        }
        _ => NetworkResult::Error,
    }
}

/// The verify call's body for the number on file (`+E.164`): the number,
/// or with `hashed` the hex SHA-256 of it.
pub fn verify_body(e164: &str, hashed: bool) -> serde_json::Value {
    if hashed {
        let digest = hex::encode(Sha256::digest(e164.as_bytes()));
        serde_json::json!({ "hashedPhoneNumber": digest })
    } else {
        serde_json::json!({ "phoneNumber": e164 })
    }
}

/// What an answer did to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The interaction is authenticated with method `network`.
    Authenticated,
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

/// Whether `cid` is `rec`'s open network challenge at `now`: a `network`
/// challenge, or a ladder still at its network step.
pub fn is_open_network(rec: &InteractionRecord, cid: Uuid, now: Timestamp) -> bool {
    rec.open_challenge(now)
        .is_some_and(|c| c.id == cid && awaits_operator(c))
}

/// Whether the operator's answer is what `c` waits for.
fn awaits_operator(c: &Challenge) -> bool {
    c.method == ChallengeMethod::Network || c.ladder.as_ref().is_some_and(|l| l.at_network_step())
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
/// - verified: the subject's failures are cleared and the interaction is
///   authenticated with method `network` (a live pre-chat step-up is
///   completed as its customer), `via` naming `network`;
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
    cid: Uuid,
    result: NetworkResult,
    s: &Settings,
    now: Timestamp,
) -> Ending {
    if !is_open_network(rec, cid, now) {
        return Ending::Gone;
    }
    if let Some(c) = rec.challenge.as_mut() {
        c.network = Some(NetworkAnswer {
            result,
            answered_at: now,
        });
    }
    rec.last_write_at = now;
    let origin = rec.lockout_origin(s);
    let on_ladder = rec.challenge.as_ref().is_some_and(|c| c.ladder.is_some());
    if let (true, Some(reason)) = (on_ladder, move_reason(result)) {
        return Ending::MoveOn(reason);
    }
    match result {
        NetworkResult::NotOnMobileNetwork | NetworkResult::Error => Ending::Open,
        NetworkResult::Mismatch => {
            end(rec, PastOutcome::Failed);
            Ending::Ended {
                reason: "number_mismatch",
            }
        }
        NetworkResult::Verified if subject.ensure_clear_for(origin.as_deref(), now).is_err() => {
            end(rec, PastOutcome::Failed);
            Ending::Ended { reason: "locked" }
        }
        NetworkResult::Verified => {
            subject.record_success_for(origin.as_deref(), now, &s.lockout);
            let customer = match rec.live_step_up(now) {
                Some(p) => p.customer.clone(),
                None => proven(rec, s, now),
            };
            end(rec, PastOutcome::Succeeded);
            let via = vec![ChallengeMethod::Network.as_str().to_string()];
            rec.authenticate_since(Method::Network, customer, via, now, now, s);
            Ending::Authenticated
        }
    }
}

/// Whom a network confirmation proves: the customer already proven on an
/// interaction still authenticated, otherwise the bot's `customer_ref`.
fn proven(rec: &InteractionRecord, s: &Settings, now: Timestamp) -> Customer {
    if rec.is_authenticated(now, s) {
        if let Some(auth) = rec.auth.as_ref().filter(|a| !a.customer.is_empty()) {
            return auth.customer.clone();
        }
    }
    rec.customer_ref
        .iter()
        .map(|r| ("id".to_string(), r.clone()))
        .collect()
}

/// Moves the current challenge to the past as `outcome`.
fn end(rec: &mut InteractionRecord, outcome: PastOutcome) {
    if let Some(c) = rec.challenge.take() {
        rec.remember_challenge(&c, outcome);
    }
}

#[cfg(test)]
mod tests;
