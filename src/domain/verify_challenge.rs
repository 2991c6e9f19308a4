//! Answering a challenge with a code (docs/api.md#challenges-otp-and-session-pin):
//! the verdict ladder, on plain values.
//!
//! [`decide`] takes the interaction, its subject and the settings, counts
//! the attempt on both, and answers what it did: authenticated, or a wrong
//! code (whose problem [`Verdict::problem`] names); a refusal that counts
//! nothing is the error itself.
//!
//! Every `match` over an enum here names each variant: a new proof does
//! not compile until its verdict is said.
#![deny(clippy::wildcard_enum_match_arm)]
use uuid::Uuid;

use super::attempts;
use super::challenge::{AttemptOutcome, Challenge, Proof};
use super::interaction::{Customer, InteractionRecord, Method, PendingStepUp};
use super::number_check::NumberCheck;
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
        let why = c.proof.answered_without_code();
        let why = why.ok_or(Error::internal("a challenge that takes a code"))?;
        return Err(Error::invalid("code", why));
    }
    let origin = rec.lockout_origin(s);
    subject.ensure_clear_for(origin.as_deref(), now)?;
    // What the right code proves, read before the attempt ends the challenge.
    let current = rec.challenge.as_ref().filter(|c| c.id == cid);
    let proves = current.map_or(Proves::Nothing, Proves::of);
    // The payment the code approves (docs/api.md#approving-one-payment).
    let transaction_hash = current
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
    let step_up = match outcome {
        AttemptOutcome::Wrong { attempts_remaining } => {
            let failure = subject.record_failure_for(origin.as_deref(), now, &s.lockout, &s.otp);
            return Ok(Verdict::Wrong {
                attempts_remaining,
                failure,
            });
        }
        AttemptOutcome::Success { step_up, .. } => step_up,
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
    let proven = match proves {
        Proves::Page(method) => by_page(rec, s, pending.as_ref(), method, now),
        Proves::Otp { via, number_check } => {
            by_otp(rec, s, pending.as_ref(), via, now).with_check(number_check)
        }
        Proves::Pin => by_pin(rec, s, pending.as_ref(), now),
        Proves::Login => by_login(rec, cid, pending.as_ref(), now)?,
        Proves::Nothing => return Err(Error::internal("a code for a challenge no code answers")),
    };
    // A bound login's: what its identity provider said of the sign-in.
    let sign_in = rec.binding.as_ref().filter(|b| b.challenge_id == cid);
    let sign_in = sign_in.map(|b| b.sign_in.clone()).unwrap_or_default();
    let Proven(method, customer, since, via, number_check) = proven;
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

/// What the right code for a challenge proves, by its proof: read before
/// the attempt ends it.
enum Proves {
    /// The binding code a verified network answer's or presentation's
    /// page showed: that proof's method
    /// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    Page(Method),
    /// An OTP: where its code went (its channel, or every step of its
    /// ladder) and what its number check found.
    Otp {
        via: Vec<String>,
        number_check: Option<NumberCheck>,
    },
    Pin,
    /// A login binding's code: the login's.
    Login,
    /// One no code answers (refused before the attempt).
    Nothing,
}

impl Proves {
    fn of(c: &Challenge) -> Proves {
        if let Some(method) = c.bound_proof() {
            return Proves::Page(method);
        }
        match &c.proof {
            Proof::Otp(o) => Proves::Otp {
                via: match &o.ladder {
                    Some(l) => l.via(),
                    None => c.channel.iter().cloned().collect(),
                },
                number_check: o.number_check,
            },
            Proof::Pin { .. } => Proves::Pin,
            Proof::Binding => Proves::Login,
            Proof::App | Proof::Network { .. } | Proof::Wallet(_) => Proves::Nothing,
        }
    }
}

/// What a success authenticates: the method, the customer, since when,
/// through which channels, and an OTP's number check.
struct Proven(
    Method,
    Customer,
    Timestamp,
    Vec<String>,
    Option<NumberCheck>,
);

impl Proven {
    fn with_check(self, number_check: Option<NumberCheck>) -> Proven {
        Proven(self.0, self.1, self.2, self.3, number_check)
    }
}

/// The customer a success proves: the step-up's, else the interaction's.
fn customer_of(
    rec: &InteractionRecord,
    s: &Settings,
    pending: Option<&PendingStepUp>,
    now: Timestamp,
) -> Customer {
    match pending {
        Some(p) => p.customer.clone(),
        None => rec.proven_customer(s, now),
    }
}

/// The binding code a page's proof showed: that proof's method, `via`
/// naming it.
fn by_page(
    rec: &InteractionRecord,
    s: &Settings,
    pending: Option<&PendingStepUp>,
    method: Method,
    now: Timestamp,
) -> Proven {
    let customer = customer_of(rec, s, pending, now);
    Proven(
        method,
        customer,
        now,
        vec![method.as_str().to_string()],
        None,
    )
}

/// An OTP's code: `otp`, through where it went.
fn by_otp(
    rec: &InteractionRecord,
    s: &Settings,
    pending: Option<&PendingStepUp>,
    via: Vec<String>,
    now: Timestamp,
) -> Proven {
    let customer = customer_of(rec, s, pending, now);
    Proven(Method::Otp, customer, now, via, None)
}

/// The session PIN: `pin` (a step-up's, which a PIN never completes, as
/// an OTP's).
fn by_pin(
    rec: &InteractionRecord,
    s: &Settings,
    pending: Option<&PendingStepUp>,
    now: Timestamp,
) -> Proven {
    let customer = customer_of(rec, s, pending, now);
    let method = if pending.is_some() {
        Method::Otp
    } else {
        Method::Pin
    };
    Proven(method, customer, now, Vec::new(), None)
}

/// A bound login: the customer the login proved, by its method,
/// authenticated since the callback; 410 once the binding is no longer
/// this challenge's (a step-up's, which a binding never completes, as an
/// OTP's).
fn by_login(
    rec: &InteractionRecord,
    cid: Uuid,
    pending: Option<&PendingStepUp>,
    now: Timestamp,
) -> Result<Proven, Error> {
    if let Some(p) = pending {
        return Ok(Proven(
            Method::Otp,
            p.customer.clone(),
            now,
            Vec::new(),
            None,
        ));
    }
    let binding = rec
        .binding
        .clone()
        .filter(|b| b.challenge_id == cid)
        .ok_or(Error::ChallengeExpired)?;
    let since = binding.proven_at.unwrap_or(now);
    Ok(Proven(
        binding.method,
        binding.customer,
        since,
        binding.via,
        None,
    ))
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
        Typed::Chat(_) if c.page_entry() && !c.awaits_code() => Err(Error::EntryPage),
        Typed::Page { .. } if c.page_entry() && c.awaits_code() => Err(Error::ChallengeUsed),
        Typed::Chat(_) | Typed::Page { .. } => Ok(()),
    }
}

// A test may pick the one variant it is about.
#[cfg(test)]
#[allow(clippy::wildcard_enum_match_arm)]
mod tests;
