//! Approval in the customer's own app (docs/api.md#approval-in-the-customers-app):
//! starting an `app` challenge, and what the identity provider's answer
//! does to it, on plain values.
//!
//! [`decide`] refuses (nothing counted) or opens the challenge and counts
//! the send; the caller then asks the provider, and takes the start back
//! ([`super::start_challenge::take_back`]) when it refuses. [`conclude`]
//! applies the provider's final answer.
use uuid::Uuid;

use super::challenge::{Challenge, ChallengeMethod, PastOutcome};
use super::interaction::{Customer, InteractionRecord, Method};
use super::origins::Failure;
use super::otp::OtpCode;
use super::secrets::Pepper;
use super::settings::Settings;
use super::subject::SubjectRecord;
use crate::error::Error;
use crate::time::Timestamp;

/// How many digits the binding code has: providers show only short plain
/// messages.
pub const BINDING_DIGITS: u32 = 4;

/// Every `reason` an app challenge's `challenge.failed` may carry.
pub const REASONS: [&str; 5] = [
    "denied",
    "expired",
    "invalid_token",
    "customer_mismatch",
    "locked",
];

/// An app challenge opened: already the interaction's current one, its
/// send counted on the subject.
#[derive(Debug, Clone)]
pub struct Started {
    /// The folded `customer_ref`, the provider's `login_hint`.
    pub login_hint: String,
    pub expires_at: Timestamp,
    /// The challenge it replaced, to reopen should the provider refuse.
    pub previous: Option<Challenge>,
}

/// The verdict on starting app challenge `id`, showing `binding`, on
/// `rec` at `now`: 422 without a `customer_ref`; 423/403 for a locked or
/// banned subject (or origin); 429 over the send limit. Otherwise the
/// challenge is opened for `otp.ttl` (the binding code sealed, for agents)
/// and the send counted.
pub fn decide(
    id: Uuid,
    binding: &OtpCode,
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    s: &Settings,
    pepper: &Pepper,
    now: Timestamp,
) -> Result<Started, Error> {
    let login_hint = rec.customer_ref.clone().ok_or_else(|| {
        Error::invalid(
            "method",
            "app needs the interaction's customer_ref: the provider is asked about that customer",
        )
    })?;
    let origin = rec.lockout_origin(s);
    subject.ensure_clear_for(origin.as_deref(), now)?;
    let opened = Challenge::new_app(id, binding, pepper, &s.otp, now)?;
    subject.take_send_for(origin.as_deref(), now, &s.lockout, &s.otp)?;
    let started = Started {
        login_hint,
        expires_at: opened.expires_at,
        previous: rec.challenge.clone(),
    };
    rec.open_new_challenge(opened, now);
    Ok(started)
}

/// The provider's final answer to an app challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A valid ID token proving `customer` (its `id` folded).
    Proven(Customer),
    /// A token whose ID token fails a check.
    InvalidToken,
    /// The customer refused (`access_denied`).
    Denied,
    /// The provider's request ended (`expired_token`), or the challenge's ttl.
    Expired,
}

/// What an answer did to the challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The interaction is authenticated with method `app`.
    Authenticated,
    /// The challenge ended unanswered: its reason for `challenge.failed`,
    /// and the failure counted, if any.
    Ended {
        reason: &'static str,
        failure: Option<Failure>,
    },
    /// It is no longer the interaction's open app challenge (replaced,
    /// ended): nothing changes.
    Gone,
}

/// Applies `answer` to app challenge `cid` of `rec` at `now`. A proven
/// customer other than the `customer_ref` ends it (`failed`,
/// `customer_mismatch`) and counts a failure; a subject locked or banned
/// by now ends it (`failed`, `locked`); else the interaction is
/// authenticated with method `app` (the subject's failures cleared). An
/// invalid token (`failed`), a refusal (`denied`) and an expiry
/// (`expired`) end it without counting anything.
pub fn conclude(
    rec: &mut InteractionRecord,
    subject: &mut SubjectRecord,
    cid: Uuid,
    answer: Answer,
    s: &Settings,
    now: Timestamp,
) -> Ending {
    let current = rec
        .challenge
        .as_ref()
        .is_some_and(|c| c.id == cid && c.method == ChallengeMethod::App);
    if !current {
        return Ending::Gone;
    }
    let answer = match answer {
        _ if now >= rec.challenge.as_ref().map_or(now, |c| c.expires_at) => Answer::Expired,
        a => a,
    };
    let origin = rec.lockout_origin(s);
    let (outcome, reason, failure) = match answer {
        Answer::Denied => (PastOutcome::Denied, "denied", None),
        Answer::Expired => (PastOutcome::Expired, "expired", None),
        Answer::InvalidToken => (PastOutcome::Failed, "invalid_token", None),
        Answer::Proven(customer) => {
            if customer.get("id") != rec.customer_ref.as_ref() {
                let f = match subject.ensure_clear_for(origin.as_deref(), now) {
                    Ok(()) => {
                        Some(subject.record_failure_for(origin.as_deref(), now, &s.lockout, &s.otp))
                    }
                    Err(_) => None,
                };
                (PastOutcome::Failed, "customer_mismatch", f)
            } else if subject.ensure_clear_for(origin.as_deref(), now).is_err() {
                (PastOutcome::Failed, "locked", None)
            } else {
                subject.record_success_for(origin.as_deref(), now, &s.lockout);
                end(rec, PastOutcome::Succeeded, now);
                rec.authenticate(Method::App, customer, now, s);
                return Ending::Authenticated;
            }
        }
    };
    end(rec, outcome, now);
    Ending::Ended { reason, failure }
}

/// What the sweeper does with an app challenge's poll entry when it
/// comes due (docs/api.md#approval-in-the-customers-app).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollTurn {
    /// The challenge is past its end: it ends as expired.
    Expire,
    /// Ask the provider now; the entry comes due again at `next`, at the
    /// latest at the challenge's end `expires_at`.
    Ask {
        next: Timestamp,
        expires_at: Timestamp,
    },
    /// Replaced by a start still in flight, which a refusal takes back:
    /// the entry waits, unasked, until `next`.
    Wait { next: Timestamp },
    /// It ended: no more polls.
    Drop,
}

/// The turn of app challenge `cid` of `rec`, polled `every` so often, at
/// `now`. The rungs, in order: the current challenge past its end
/// expires; the current one is asked; one replaced by a start that may
/// still be taken back (and its own end not reached) waits; anything
/// else has ended.
pub fn poll_turn(
    rec: &InteractionRecord,
    cid: Uuid,
    every: std::time::Duration,
    now: Timestamp,
) -> PollTurn {
    match rec.challenge.as_ref().filter(|c| c.id == cid) {
        Some(c) if now >= c.expires_at => PollTurn::Expire,
        Some(c) => PollTurn::Ask {
            next: now.plus(every).min(c.expires_at),
            expires_at: c.expires_at,
        },
        None => {
            let replaced = rec.past_challenges.iter().rev().find(|p| p.id == cid);
            let waits = replaced.filter(|p| p.outcome == PastOutcome::Replaced);
            match waits.and_then(|p| p.ended.as_ref()).map(|c| c.expires_at) {
                Some(end) if now < end => PollTurn::Wait {
                    next: now.plus(every).min(end),
                },
                _ => PollTurn::Drop,
            }
        }
    }
}

/// Moves the current challenge to the past as `outcome`.
fn end(rec: &mut InteractionRecord, outcome: PastOutcome, now: Timestamp) {
    if let Some(c) = rec.challenge.take() {
        rec.remember_challenge(&c, outcome);
    }
    rec.last_write_at = now;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::challenge::ChallengeState;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn rec(customer_ref: Option<&str>) -> InteractionRecord {
        let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
        r.customer_ref = customer_ref.map(str::to_string);
        r
    }

    fn start(r: &mut InteractionRecord, subject: &mut SubjectRecord) -> Result<Uuid, Error> {
        let id = Uuid::now_v7();
        let code = crate::domain::otp::generate(BINDING_DIGITS);
        let pepper = Pepper::new("test-pepper");
        decide(id, &code, r, subject, &Settings::default(), &pepper, t(1)).map(|_| id)
    }

    #[test]
    fn an_app_challenge_needs_a_customer_ref() {
        let mut subject = SubjectRecord::default();
        let e = start(&mut rec(None), &mut subject).unwrap_err();
        assert!(matches!(e, Error::Unprocessable(_)), "{e:?}");
        assert!(start(&mut rec(Some("cust-42")), &mut subject).is_ok());
    }

    #[test]
    fn a_banned_subject_is_refused_before_anything_and_an_approval_after_a_ban_is_locked() {
        let s = Settings::default();
        let ban = Some(crate::domain::subject::Ban {
            since: t(0),
            until: None,
        });
        // Refused at the start: 403, no challenge opened, no send counted.
        let (mut r, mut subject) = (rec(Some("cust-42")), SubjectRecord::default());
        subject.ban = ban;
        let e = start(&mut r, &mut subject).unwrap_err();
        assert!(matches!(e, Error::Banned), "{e:?}");
        assert!(r.challenge.is_none());
        assert!(subject.sends.is_empty());
        // Banned while the app was asked: the approval authenticates no one.
        let mut subject = SubjectRecord::default();
        let cid = start(&mut r, &mut subject).unwrap();
        subject.ban = ban;
        let mut proven = Customer::new();
        proven.insert("id".into(), "cust-42".into());
        let ending = conclude(&mut r, &mut subject, cid, Answer::Proven(proven), &s, t(2));
        assert!(
            matches!(
                ending,
                Ending::Ended {
                    reason: "locked",
                    ..
                }
            ),
            "{ending:?}"
        );
        assert!(!r.is_authenticated(t(2), &s));
        assert_eq!(
            r.challenge_at(cid, t(2)).map(|(_, st)| st),
            Some(ChallengeState::Failed)
        );
    }

    #[test]
    fn each_answer_ends_the_challenge_as_it_says() {
        let s = Settings::default();
        let proven = |id: &str| {
            let mut c = Customer::new();
            c.insert("id".into(), id.into());
            Answer::Proven(c)
        };
        let cases = [
            (Answer::Denied, ChallengeState::Denied, Some("denied")),
            (Answer::Expired, ChallengeState::Expired, Some("expired")),
            (
                Answer::InvalidToken,
                ChallengeState::Failed,
                Some("invalid_token"),
            ),
            (
                proven("cust-7"),
                ChallengeState::Failed,
                Some("customer_mismatch"),
            ),
            (proven("cust-42"), ChallengeState::Used, None),
        ];
        for (answer, state, reason) in cases {
            let (mut r, mut subject) = (rec(Some("cust-42")), SubjectRecord::default());
            let cid = start(&mut r, &mut subject).unwrap();
            let ending = conclude(&mut r, &mut subject, cid, answer.clone(), &s, t(2));
            match (&ending, reason) {
                (Ending::Ended { reason: got, .. }, Some(want)) => assert_eq!(*got, want),
                (Ending::Authenticated, None) => {
                    assert!(r.is_authenticated(t(2), &s));
                    assert_eq!(r.auth.as_ref().map(|a| a.method), Some(Method::App));
                }
                _ => panic!("{answer:?} gave {ending:?}"),
            }
            assert_eq!(r.challenge_at(cid, t(2)).map(|(_, st)| st), Some(state));
            // A second answer finds nothing to end.
            assert_eq!(
                conclude(&mut r, &mut subject, cid, Answer::Denied, &s, t(3)),
                Ending::Gone
            );
        }
    }

    #[test]
    fn a_mismatch_counts_a_failure_and_a_late_answer_is_an_expiry() {
        let s = Settings::default();
        let (mut r, mut subject) = (rec(Some("cust-42")), SubjectRecord::default());
        let cid = start(&mut r, &mut subject).unwrap();
        let mut other = Customer::new();
        other.insert("id".into(), "cust-7".into());
        let ending = conclude(&mut r, &mut subject, cid, Answer::Proven(other), &s, t(2));
        assert!(matches!(
            ending,
            Ending::Ended {
                failure: Some(_),
                ..
            }
        ));
        let cid = start(&mut r, &mut subject).unwrap();
        let late = t(1).plus(s.otp.ttl.get());
        let ending = conclude(&mut r, &mut subject, cid, Answer::Denied, &s, late);
        assert!(matches!(
            ending,
            Ending::Ended {
                reason: "expired",
                ..
            }
        ));
    }

    /// One test per rung of [`poll_turn`].
    #[test]
    fn a_poll_turn_expires_asks_waits_or_drops() {
        let every = std::time::Duration::from_secs(5);
        let (mut r, mut subject) = (rec(Some("cust-42")), SubjectRecord::default());
        let cid = start(&mut r, &mut subject).unwrap();
        let end = r.challenge.as_ref().unwrap().expires_at;
        // The current challenge, before its end: asked, next at most at its end.
        assert_eq!(
            poll_turn(&r, cid, every, t(2)),
            PollTurn::Ask {
                next: t(7),
                expires_at: end
            }
        );
        let late = Timestamp::from_unix_millis(end.unix_millis() - 1000);
        assert_eq!(
            poll_turn(&r, cid, every, late),
            PollTurn::Ask {
                next: end,
                expires_at: end
            }
        );
        // At or past its end: expires.
        assert_eq!(poll_turn(&r, cid, every, end), PollTurn::Expire);
        // Replaced by a newer start: waits until its own end, then drops.
        let newer = start(&mut r, &mut subject).unwrap();
        assert_ne!(newer, cid);
        assert_eq!(
            poll_turn(&r, cid, every, t(3)),
            PollTurn::Wait { next: t(8) }
        );
        assert_eq!(poll_turn(&r, cid, every, end), PollTurn::Drop);
        // Unknown to the interaction: drops.
        assert_eq!(poll_turn(&r, Uuid::now_v7(), every, t(3)), PollTurn::Drop);
    }
}
