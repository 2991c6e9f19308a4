//! Answering a challenge with a code (docs/api.md#challenges-otp-and-session-pin):
//! the verdict ladder, on plain values.
//!
//! [`decide`] takes the interaction, its subject and the settings, counts
//! the attempt on both, and answers what it did: authenticated, or a wrong
//! code (whose problem [`Verdict::problem`] names); a refusal that counts
//! nothing is the error itself.
use uuid::Uuid;

use super::attempts;
use super::challenge::{AttemptOutcome, ChallengeMethod};
use super::interaction::{InteractionRecord, Method, PendingStepUp};
use super::origins::Failure;
use super::secrets::Pepper;
use super::settings::Settings;
use super::subject::SubjectRecord;
use crate::error::Error;
use crate::time::Timestamp;

/// What a counted attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The right code: the interaction is authenticated. With `step_up`, the
    /// pre-chat step-up it completed (whose device the caller remembers).
    Authenticated { step_up: Option<PendingStepUp> },
    /// A wrong code, counted on the challenge and on the subject (or its
    /// origin), which `failure` may have locked or banned.
    Wrong {
        attempts_remaining: u32,
        failure: Failure,
    },
    /// The right code typed on the gateway's page: the challenge stays
    /// open, awaiting the binding code the page shows, to be typed into
    /// the chat (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    AwaitingCode,
}

/// A code, and where the customer typed it.
#[derive(Debug, Clone, Copy)]
pub enum Typed<'a> {
    /// Into the conversation: the bot passes it on.
    Chat(&'a str),
    /// On the gateway's page (docs/api.md#codes-typed-on-the-gateways-page),
    /// with the keyed hash of the binding code its right code shows.
    Page { code: &'a str, bind: &'a str },
}

impl Verdict {
    /// The problem to answer: none for a success; for a wrong code, the
    /// lockout or ban it caused, else `invalid_code`.
    pub fn problem(&self, now: Timestamp) -> Option<Error> {
        match self {
            Verdict::Authenticated { .. } | Verdict::AwaitingCode => None,
            Verdict::Wrong {
                attempts_remaining,
                failure,
            } => Some(failure.refusal(now).unwrap_or(Error::InvalidCode {
                attempts_remaining: *attempts_remaining,
            })),
        }
    }
}

/// The verdict on the code `typed` for challenge `cid` of `rec`, whose
/// subject is `subject`, at `now`. The rungs, in order:
///
/// 0. where the code was typed ([`entry_refusal`]): a page-entry
///    challenge's code through the chat before its page's right code is
///    409 `entry_page`, a code on the page once its right code was typed
///    there 409 used; then a challenge no code answers, 422;
/// 1. the subject (or origin) is locked (423) or banned (403);
/// 2. the challenge cannot be answered (`attempts::attempt`): malformed
///    code 422, unknown 404, used 409, expired or replaced 410, exhausted 410;
/// 3. a wrong code: counted ([`Verdict::Wrong`]);
/// 4. the right code typed on the page: the challenge stays open,
///    awaiting the binding code whose keyed hash came with it
///    ([`Verdict::AwaitingCode`]); nothing is cleared yet;
/// 5. the right code for a step-up that is no longer live (past its
///    assertion's `exp`, logged out, replaced): 410, it proves nobody;
/// 6. the right code for a login binding that is no longer this
///    challenge's: 410;
/// 7. the binding code a verified network answer's or presentation's
///    page showed: the interaction is authenticated with method `network`
///    or `wallet`, `via` naming it;
/// 8. otherwise the subject's failures are cleared and the interaction is
///    authenticated ([`Verdict::Authenticated`]).
///
/// A refusal changes nothing the caller should keep.
pub fn decide(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    s: &Settings,
    (cid, typed): (Uuid, Typed<'_>),
    pepper: &Pepper,
    now: Timestamp,
) -> Result<Verdict, Error> {
    entry_refusal(rec, cid, typed, now)?;
    if let Some((c, _)) = rec.challenge_at(cid, now).filter(|(c, _)| !c.takes_code()) {
        let why = match c.method {
            ChallengeMethod::Network => {
                "a network challenge is answered by the mobile operator, not with a code"
            }
            ChallengeMethod::Wallet => {
                "a wallet challenge is answered by a credential through its link, not with a code"
            }
            _ => "an app challenge is approved in the customer's app, not with a code",
        };
        return Err(Error::invalid("code", why));
    }
    let origin = rec.lockout_origin(s);
    subject.ensure_clear_for(origin.as_deref(), now)?;
    // Where an OTP's code went: its channel, or every step of its ladder;
    // and what its number check found.
    let otp = rec
        .challenge
        .as_ref()
        .filter(|c| c.id == cid && c.method == ChallengeMethod::Otp);
    let via = otp
        .map(|c| match &c.ladder {
            Some(l) => l.via(),
            None => c.channel.iter().cloned().collect(),
        })
        .unwrap_or_default();
    let number_check = otp.and_then(|c| c.number_check);
    // The binding code a verified network answer's or presentation's page
    // showed: its success is that proof's
    // (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    let proof = rec
        .challenge
        .as_ref()
        .filter(|c| c.id == cid)
        .and_then(|c| c.bound_proof());
    // The payment the code approves (docs/api.md#approving-one-payment).
    let transaction_hash = rec
        .challenge
        .as_ref()
        .filter(|c| c.id == cid)
        .and_then(|c| c.transaction.as_ref())
        .map(|t| t.hash());
    let outcome = match typed {
        Typed::Chat(code) => Some(attempts::attempt(rec, cid, code, pepper, now)?),
        Typed::Page { code, .. } => attempts::attempt_kept(rec, cid, code, pepper, now)?,
    };
    let outcome = match (outcome, typed) {
        (Some(outcome), _) => outcome,
        (None, Typed::Page { bind, .. }) => {
            if let Some(c) = rec.challenge.as_mut() {
                c.await_code(bind.to_string(), &s.otp, now);
            }
            return Ok(Verdict::AwaitingCode);
        }
        (None, Typed::Chat(_)) => return Err(Error::internal("a right code that was not taken")),
    };
    let (method, step_up) = match outcome {
        AttemptOutcome::Wrong { attempts_remaining } => {
            let failure = subject.record_failure_for(origin.as_deref(), now, &s.lockout, &s.otp);
            return Ok(Verdict::Wrong {
                attempts_remaining,
                failure,
            });
        }
        AttemptOutcome::Success { method, step_up } => (method, step_up),
    };
    let pending = match step_up {
        true => Some(
            rec.live_step_up(now)
                .cloned()
                .ok_or(Error::ChallengeExpired)?,
        ),
        false => None,
    };
    subject.record_success_for(origin.as_deref(), now, &s.lockout);
    let (method, customer, since, via) = match (&pending, method, proof) {
        (p, _, Some(proof)) => {
            let customer = match p {
                Some(p) => p.customer.clone(),
                None => rec.proven_customer(s, now),
            };
            let method = match proof {
                ChallengeMethod::Wallet => Method::Wallet,
                _ => Method::Network,
            };
            (method, customer, now, vec![proof.as_str().to_string()])
        }
        (Some(p), _, None) => (Method::Otp, p.customer.clone(), now, via),
        (None, ChallengeMethod::Otp, None) => (Method::Otp, rec.proven_customer(s, now), now, via),
        (None, ChallengeMethod::Pin, None) => {
            (Method::Pin, rec.proven_customer(s, now), now, Vec::new())
        }
        // Refused above: no code answers it.
        (None, ChallengeMethod::App | ChallengeMethod::Network | ChallengeMethod::Wallet, None) => {
            return Err(Error::internal("a code for a challenge no code answers"))
        }
        // A bound login: the customer the login proved, by its method,
        // authenticated since the callback.
        (None, ChallengeMethod::Binding, None) => {
            let binding = rec
                .binding
                .clone()
                .filter(|b| b.challenge_id == cid)
                .ok_or(Error::ChallengeExpired)?;
            let since = binding.proven_at.unwrap_or(now);
            (binding.method, binding.customer, since, binding.via)
        }
    };
    // A bound login's: what its identity provider said of the sign-in.
    let sign_in = rec.binding.as_ref().filter(|b| b.challenge_id == cid);
    let sign_in = sign_in.map(|b| b.sign_in.clone()).unwrap_or_default();
    rec.authenticate_since(method, customer, via, since, now, s);
    if let Some(a) = rec.auth.as_mut() {
        a.sign_in = sign_in;
        a.transaction_hash = transaction_hash;
        if a.method == Method::Otp {
            a.number_check = number_check;
        }
    }
    Ok(Verdict::Authenticated { step_up: pending })
}

/// Where a code may be typed: a page-entry challenge's code never through
/// the chat before its page's right code (409 `entry_page`, counting
/// nothing), and once it was typed there, only the binding code, in the
/// chat (the page's 409 used).
fn entry_refusal(
    rec: &InteractionRecord,
    cid: Uuid,
    typed: Typed<'_>,
    now: Timestamp,
) -> Result<(), Error> {
    let Some((c, _)) = rec.challenge_at(cid, now) else {
        return Ok(());
    };
    match typed {
        Typed::Chat(_) if c.page_entry && !c.awaits_code() => Err(Error::EntryPage),
        Typed::Page { .. } if c.page_entry && c.awaits_code() => Err(Error::ChallengeUsed),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
