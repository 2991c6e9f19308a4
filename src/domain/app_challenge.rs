//! Approval in the customer's own app (docs/api.md#approval-in-the-customers-app):
//! starting an `app` challenge, and what the identity provider's answer
//! does to it, on plain values.
//!
//! [`decide`] refuses (nothing counted) or opens the challenge and counts
//! the send; the caller then asks the provider, and takes the start back
//! ([`super::start_challenge::take_back`]) when it refuses. [`conclude`]
//! applies the provider's final answer.
use uuid::Uuid;

use super::challenge::{Challenge, ChallengeState, PastOutcome, Proof};
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
pub const REASONS: [&str; 7] = [
    "denied",
    "expired",
    "invalid_token",
    "customer_mismatch",
    "locked",
    "disabled",
    "replaced",
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
    /// Not an answer: a reload turned the team's `ciba` off, so nothing
    /// asks the provider any more (decision 0099).
    Disabled,
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
        .is_some_and(|c| c.id == cid && matches!(c.proof, Proof::App));
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
        Answer::Disabled => (PastOutcome::Failed, "disabled", None),
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
                // The payment it approves (docs/api.md#approving-one-payment).
                let approved = rec
                    .challenge
                    .as_ref()
                    .and_then(|c| c.transaction.as_ref())
                    .map(|t| t.hash());
                end(rec, PastOutcome::Succeeded, now);
                rec.authenticate(Method::App, customer, now, s);
                if let Some(a) = rec.auth.as_mut() {
                    a.transaction_hash = approved;
                }
                return Ending::Authenticated;
            }
        }
    };
    end(rec, outcome, now);
    Ending::Ended { reason, failure }
}

/// What the sweeper does with an app challenge's poll entry when it
/// comes due (docs/api.md#approval-in-the-customers-app). Every app
/// challenge ends with an event (decision 0099): whatever stops its polls,
/// one of its turns ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollTurn {
    /// The challenge ends now as `answer` says (its end has come, or
    /// nothing may ask the provider any more).
    End(Answer),
    /// Ask the provider now; the entry comes due again at `next`, at the
    /// latest at the challenge's end `expires_at`.
    Ask {
        next: Timestamp,
        expires_at: Timestamp,
    },
    /// Nothing to ask now (replaced by a start still in flight, which a
    /// refusal takes back; or its pending approval lost): the entry
    /// waits, unasked, until `next`.
    Wait { next: Timestamp },
    /// Replaced, and its own end has come: it ends with
    /// `challenge.failed`, reason `replaced`, the record as it is.
    Replaced,
    /// It ended and was announced: no more polls.
    Drop,
}

/// How a team polls, as its entry's turn finds it.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// The provider's interval for this request.
    pub every: std::time::Duration,
    /// How long one ask may take at most: a claimed entry waits that much
    /// more, so that the request is never asked twice at once.
    pub longest_ask: std::time::Duration,
    /// The team's `ciba` is on.
    pub enabled: bool,
    /// The request's pending approval (its `auth_req_id`) is stored.
    pub kept: bool,
}

/// The turn of app challenge `cid` of `rec` at `now`. The rungs, in
/// order, for the current challenge: `ciba` turned off ends it
/// (`disabled`); at or past its end it expires; without its pending
/// approval it waits for its end; else it is asked. For one replaced by
/// a start that may still be taken back: it waits until its own end, then
/// ends `replaced`. Anything else has ended.
pub fn poll_turn(rec: &InteractionRecord, cid: Uuid, p: &Polling, now: Timestamp) -> PollTurn {
    match rec.challenge.as_ref().filter(|c| c.id == cid) {
        Some(_) if !p.enabled => PollTurn::End(Answer::Disabled),
        Some(c) if now >= c.expires_at => PollTurn::End(Answer::Expired),
        Some(c) if !p.kept => PollTurn::Wait { next: c.expires_at },
        Some(c) => PollTurn::Ask {
            next: now.plus(p.every + p.longest_ask).min(c.expires_at),
            expires_at: c.expires_at,
        },
        None => match replaced_end(rec, cid) {
            Some(end) if now < end => PollTurn::Wait {
                next: now.plus(p.every).min(end),
            },
            Some(_) => PollTurn::Replaced,
            None => PollTurn::Drop,
        },
    }
}

/// The end of app challenge `cid` if a newer challenge (or a logout)
/// replaced it: `None` when it is current, ended otherwise, or unknown.
pub fn replaced_end(rec: &InteractionRecord, cid: Uuid) -> Option<Timestamp> {
    if rec.challenge.as_ref().is_some_and(|c| c.id == cid) {
        return None;
    }
    let past = rec.past_challenges.iter().rev().find(|p| p.id == cid)?;
    let ended = past.ended.as_ref()?;
    (past.state() == ChallengeState::Replaced && matches!(ended.proof, Proof::App))
        .then_some(ended.expires_at)
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
            (Answer::Disabled, ChallengeState::Failed, Some("disabled")),
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
    fn a_poll_turn_ends_asks_waits_or_drops() {
        let p = Polling {
            every: std::time::Duration::from_secs(5),
            longest_ask: std::time::Duration::from_secs(20),
            enabled: true,
            kept: true,
        };
        let (mut r, mut subject) = (rec(Some("cust-42")), SubjectRecord::default());
        let cid = start(&mut r, &mut subject).unwrap();
        let end = r.challenge.as_ref().unwrap().expires_at;
        // ciba turned off: ends it at once, whenever.
        let off = Polling {
            enabled: false,
            ..p
        };
        assert_eq!(
            poll_turn(&r, cid, &off, t(2)),
            PollTurn::End(Answer::Disabled)
        );
        // At or past its end: expires.
        assert_eq!(poll_turn(&r, cid, &p, end), PollTurn::End(Answer::Expired));
        // Its pending approval lost: waits for its end, unasked.
        let lost = Polling { kept: false, ..p };
        assert_eq!(
            poll_turn(&r, cid, &lost, t(2)),
            PollTurn::Wait { next: end }
        );
        // The current challenge, before its end: asked; the entry waits an
        // interval and the longest ask, at most until its end.
        assert_eq!(
            poll_turn(&r, cid, &p, t(2)),
            PollTurn::Ask {
                next: t(27),
                expires_at: end
            }
        );
        let late = Timestamp::from_unix_millis(end.unix_millis() - 1000);
        assert_eq!(
            poll_turn(&r, cid, &p, late),
            PollTurn::Ask {
                next: end,
                expires_at: end
            }
        );
        // Replaced by a newer start: waits until its own end, then ends
        // replaced (ciba off or not).
        let newer = start(&mut r, &mut subject).unwrap();
        assert_ne!(newer, cid);
        assert_eq!(poll_turn(&r, cid, &p, t(3)), PollTurn::Wait { next: t(8) });
        assert_eq!(poll_turn(&r, cid, &p, end), PollTurn::Replaced);
        assert_eq!(poll_turn(&r, cid, &off, end), PollTurn::Replaced);
        // Ended otherwise (announced then): drops.
        let ending = conclude(
            &mut r,
            &mut subject,
            newer,
            Answer::Denied,
            &Settings::default(),
            t(4),
        );
        assert!(matches!(
            ending,
            Ending::Ended {
                reason: "denied",
                ..
            }
        ));
        assert_eq!(poll_turn(&r, newer, &p, t(5)), PollTurn::Drop);
        // Unknown to the interaction: drops.
        assert_eq!(poll_turn(&r, Uuid::now_v7(), &p, t(3)), PollTurn::Drop);
    }
}
