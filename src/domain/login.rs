//! The login rules of a login link (docs/api.md#the-login-callback): what
//! a use of a link gets, as verdicts on plain values. The login page's
//! signed callback and a login at the team's identity provider both go
//! through them; `gateway::login` reads the records, applies the verdict
//! and commits.
//!
//! Two ladders, in the documented order:
//! 1. [`check_link`], one-time use: is the link unused, is this a retry of
//!    the request that used it, or is it refused?
//! 2. [`verdict`], for an unused link: the subject's lock, the expected
//!    customer, the outcome, the binding. The link is used from here on,
//!    whatever the verdict.
use uuid::Uuid;

use super::interaction::{CallbackAnswer, Customer, InteractionRecord, Method, SignIn};
use super::origins::Failure;
use super::settings::LoginBinding;
use super::subject::{Standing, SubjectRecord};
use crate::time::Timestamp;

/// A request that may be a retry of the one that used a link: the
/// digests of its `webhook-id` and of its body.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub webhook_id: &'a str,
    pub body: &'a str,
}

/// How a link stands when a login names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkCheck {
    /// Unused: settle it with [`verdict`]. Its place among the
    /// interaction's links.
    Unused(usize),
    /// A retry of the request that used it: answered as it was, nothing
    /// changes. (A bound answer's code is derived again from its challenge.)
    Repeat(CallbackAnswer),
    /// Used by another request, or unknown: 409 `token_used`.
    Used,
    /// A retry of a bound login whose binding has ended: 410
    /// `challenge_expired`.
    BindingEnded,
}

/// One-time use of link `link_id` of `rec`. `retry` is the request, when
/// it can be a retry (a login at the identity provider never is);
/// `request_used` says its `webhook-id` already used another link.
pub fn check_link(
    rec: &InteractionRecord,
    link_id: Uuid,
    retry: Option<Request<'_>>,
    request_used: bool,
    now: Timestamp,
) -> LinkCheck {
    // A link the interaction no longer knows was used (or forgotten).
    let Some(i) = rec.links.iter().position(|l| l.id == link_id) else {
        return LinkCheck::Used;
    };
    let link = &rec.links[i];
    if !link.used {
        // A `webhook-id` that already used another link: its body was
        // another (another token), so it is no retry.
        return match request_used {
            true => LinkCheck::Used,
            false => LinkCheck::Unused(i),
        };
    }
    // Another request, or this `webhook-id` with another body: no retry.
    let Some(used) = link
        .used_by
        .as_ref()
        .filter(|u| retry.is_some_and(|r| u.retried_by(r.webhook_id, r.body) == Some(true)))
    else {
        return LinkCheck::Used;
    };
    match used.answer {
        // A bound login: its code again while its own binding is live —
        // never the binding of a later login on this interaction. Once it
        // has ended (a new link, a logout, expiry, the code used or out of
        // attempts) it never comes back.
        CallbackAnswer::Bound { challenge_id, .. }
            if rec.live_binding(now).map(|b| b.challenge_id) != Some(challenge_id) =>
        {
            LinkCheck::BindingEnded
        }
        answer => LinkCheck::Repeat(answer),
    }
}

/// What proved (or failed to prove) the customer of one link: the login
/// page's callback, or the team's identity provider.
#[derive(Debug, Clone, Copy)]
pub struct Proof<'a> {
    pub success: bool,
    pub customer: &'a Customer,
    /// The link's `expected_customer`.
    pub expected: Option<&'a str>,
    /// How a success authenticates (also once its binding code is typed).
    pub method: Method,
    /// What the identity provider said of the sign-in (`acr`, `amr`): the
    /// authentication keeps it; `None` for the login page's.
    pub sign_in: Option<&'a SignIn>,
}

/// What the login rules decide for an unused link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginVerdict {
    /// The subject (or the interaction's origin) is locked or banned:
    /// answered so (423 / 403), nothing else changes.
    Refused(CallbackAnswer),
    /// A success naming another customer than the link expected: a failure
    /// to count, 403 `customer_mismatch` unless it locked.
    Mismatch,
    /// The login page says the login failed: a failure to count,
    /// `authenticated: false` unless it locked.
    Failure,
    /// Proven, finished only when the binding code the login page shows is
    /// typed into the chat (`login_binding = "chat_code"`).
    Bind,
    /// Authenticated.
    Authenticate,
}

impl LoginVerdict {
    /// A verdict that counts a failure against the subject.
    pub fn counts_failure(self) -> bool {
        matches!(self, LoginVerdict::Mismatch | LoginVerdict::Failure)
    }

    /// The answer to a counted failure `f`: its refusal when it locked or
    /// banned, else this verdict's own.
    pub fn failed_answer(self, f: &Failure, now: Timestamp) -> CallbackAnswer {
        let otherwise = match self {
            LoginVerdict::Mismatch => CallbackAnswer::CustomerMismatch,
            _ => CallbackAnswer::NotAuthenticated,
        };
        f.refusal(now)
            .as_ref()
            .and_then(CallbackAnswer::refused)
            .unwrap_or(otherwise)
    }
}

/// The login rules of an unused link given its proof, in the documented
/// order: the lock of `subject` (for `origin`, with scope `origin`), the
/// expected customer, the outcome, the binding.
pub fn verdict(
    subject: &SubjectRecord,
    origin: Option<&str>,
    proof: &Proof<'_>,
    binding: LoginBinding,
    now: Timestamp,
) -> LoginVerdict {
    match subject.standing_for(origin, now) {
        Standing::Locked { until } => LoginVerdict::Refused(CallbackAnswer::Locked { until }),
        Standing::Banned { .. } => LoginVerdict::Refused(CallbackAnswer::Banned),
        Standing::Clear if proof.success && names_another(proof) => LoginVerdict::Mismatch,
        Standing::Clear if !proof.success => LoginVerdict::Failure,
        Standing::Clear if binding == LoginBinding::ChatCode => LoginVerdict::Bind,
        Standing::Clear => LoginVerdict::Authenticate,
    }
}

/// The proof names another customer than the link expected.
fn names_another(proof: &Proof<'_>) -> bool {
    let id = proof.customer.get("id").map(String::as_str);
    proof.expected.is_some_and(|e| id != Some(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::challenge::Challenge;
    use crate::domain::interaction::{Link, LinkUse, PendingBinding};
    use crate::domain::otp;
    use crate::domain::secrets::Pepper;
    use crate::domain::settings::{LockoutSettings, OtpSettings};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    const REQ: Request<'static> = Request {
        webhook_id: "wh-1",
        body: "body-1",
    };

    fn link(id: Uuid, used_by: Option<LinkUse>) -> Link {
        Link {
            delivered_on: None,
            id,
            expires_at: None,
            used: used_by.is_some(),
            used_by,
        }
    }

    fn used_by(answer: CallbackAnswer) -> LinkUse {
        LinkUse {
            webhook_id: REQ.webhook_id.into(),
            answer,
            body: Some(REQ.body.into()),
        }
    }

    /// An interaction holding one link, `used_by` it (`None`: unused).
    fn with_link(used: Option<LinkUse>) -> (InteractionRecord, Uuid) {
        let mut rec = InteractionRecord::new(Uuid::now_v7(), "acme", "web", "c-1", t(0));
        let id = Uuid::now_v7();
        rec.links.push(link(Uuid::now_v7(), None));
        rec.links.push(link(id, used));
        (rec, id)
    }

    #[test]
    fn an_unused_link_is_settled_at_its_place() {
        let (rec, id) = with_link(None);
        assert_eq!(
            check_link(&rec, id, Some(REQ), false, t(1)),
            LinkCheck::Unused(1)
        );
        assert_eq!(
            check_link(&rec, id, None, false, t(1)),
            LinkCheck::Unused(1)
        );
    }

    #[test]
    fn an_unknown_link_is_token_used() {
        let (rec, _) = with_link(None);
        let check = check_link(&rec, Uuid::now_v7(), Some(REQ), false, t(1));
        assert_eq!(check, LinkCheck::Used);
    }

    #[test]
    fn a_webhook_id_that_used_another_link_is_token_used() {
        let (rec, id) = with_link(None);
        let check = check_link(&rec, id, Some(REQ), true, t(1));
        assert_eq!(check, LinkCheck::Used);
    }

    #[test]
    fn a_retry_is_answered_as_before_even_when_its_id_is_taken() {
        let answer = CallbackAnswer::Authenticated { expires_at: None };
        let (rec, id) = with_link(Some(used_by(answer)));
        for taken in [false, true] {
            let check = check_link(&rec, id, Some(REQ), taken, t(1));
            assert_eq!(check, LinkCheck::Repeat(answer));
        }
    }

    #[test]
    fn another_request_or_another_body_or_no_retry_is_token_used() {
        let (rec, id) = with_link(Some(used_by(CallbackAnswer::NotAuthenticated)));
        let other_id = Request {
            webhook_id: "wh-2",
            ..REQ
        };
        let other_body = Request {
            body: "body-2",
            ..REQ
        };
        for retry in [Some(other_id), Some(other_body), None] {
            let check = check_link(&rec, id, retry, false, t(1));
            assert_eq!(check, LinkCheck::Used);
        }
        // A use recorded before the body's digest was kept matches no body.
        let (rec, id) = with_link(Some(LinkUse {
            body: None,
            ..used_by(CallbackAnswer::NotAuthenticated)
        }));
        let check = check_link(&rec, id, Some(REQ), false, t(1));
        assert_eq!(check, LinkCheck::Used);
    }

    /// A bound login's retry: its answer again while its binding is the
    /// live one, `challenge_expired` once that ended.
    #[test]
    fn a_bound_retry_lives_as_long_as_its_binding() {
        let pepper = Pepper::new("test-pepper");
        let otp_rules = OtpSettings::default();
        let challenge_id = Uuid::now_v7();
        let code = otp::derive(&pepper, challenge_id, otp_rules.length);
        let ch = Challenge::new_binding(challenge_id, &code, &pepper, &otp_rules, t(0));
        let answer = CallbackAnswer::Bound {
            challenge_id,
            expires_at: ch.expires_at,
        };
        let ends = ch.expires_at;
        let (mut rec, id) = with_link(Some(used_by(answer)));
        rec.open_new_challenge(ch, t(0));
        rec.binding = Some(PendingBinding {
            challenge_id,
            customer: Customer::new(),
            proven_at: Some(t(0)),
            method: Method::LoginLink,
            via: Vec::new(),
            sign_in: SignIn::default(),
        });
        assert_eq!(
            check_link(&rec, id, Some(REQ), false, t(1)),
            LinkCheck::Repeat(answer)
        );
        let expired = LinkCheck::BindingEnded;
        assert_eq!(check_link(&rec, id, Some(REQ), false, ends), expired);
        // A later login's binding is not this one's.
        rec.binding.as_mut().unwrap().challenge_id = Uuid::now_v7();
        assert_eq!(check_link(&rec, id, Some(REQ), false, t(1)), expired);
    }

    fn customer(id: &str) -> Customer {
        Customer::from([("id".to_string(), id.to_string())])
    }

    fn proof<'a>(success: bool, customer: &'a Customer, expected: Option<&'a str>) -> Proof<'a> {
        Proof {
            success,
            customer,
            expected,
            method: Method::LoginLink,
            sign_in: None,
        }
    }

    fn locked_subject(now: Timestamp) -> (SubjectRecord, Timestamp) {
        let rules = LockoutSettings::default();
        let mut s = SubjectRecord::new("cust-1");
        for _ in 0..rules.threshold {
            s.record_failure(now, &rules, &OtpSettings::default());
        }
        let until = s.locked_until.expect("locked by the threshold");
        (s, until)
    }

    #[test]
    fn a_locked_subject_is_refused_before_anything_else() {
        let (subject, until) = locked_subject(t(0));
        let c = customer("cust-1");
        for p in [proof(true, &c, None), proof(false, &c, Some("other"))] {
            let v = verdict(&subject, None, &p, LoginBinding::ChatCode, t(1));
            assert_eq!(v, LoginVerdict::Refused(CallbackAnswer::Locked { until }));
        }
    }

    #[test]
    fn a_locked_origin_refuses_only_its_own_attempts() {
        let (counts, until) = locked_subject(t(0));
        let mut subject = SubjectRecord::new("cust-1");
        subject.origins.push(crate::domain::subject::OriginRecord {
            origin: "web:c-1".into(),
            seen: t(0),
            familiar_until: None,
            counts,
        });
        let c = customer("cust-1");
        let p = proof(true, &c, None);
        let v = verdict(&subject, Some("web:c-1"), &p, LoginBinding::None, t(1));
        assert_eq!(v, LoginVerdict::Refused(CallbackAnswer::Locked { until }));
        let v = verdict(&subject, Some("web:c-2"), &p, LoginBinding::None, t(1));
        assert_eq!(v, LoginVerdict::Authenticate);
    }

    #[test]
    fn a_banned_subject_is_refused() {
        let subject = SubjectRecord {
            ban: Some(crate::domain::subject::Ban {
                since: t(0),
                until: None,
            }),
            ..SubjectRecord::new("cust-1")
        };
        let c = customer("cust-1");
        let v = verdict(
            &subject,
            None,
            &proof(true, &c, None),
            LoginBinding::None,
            t(1),
        );
        assert_eq!(v, LoginVerdict::Refused(CallbackAnswer::Banned));
    }

    /// The verdict for a subject with nothing on record.
    fn for_clear(p: &Proof<'_>, binding: LoginBinding) -> LoginVerdict {
        verdict(&SubjectRecord::new("cust-1"), None, p, binding, t(1))
    }

    #[test]
    fn a_success_naming_another_customer_is_a_mismatch() {
        let (c, nameless) = (customer("cust-2"), Customer::new());
        for who in [&c, &nameless] {
            let v = for_clear(&proof(true, who, Some("cust-1")), LoginBinding::ChatCode);
            assert_eq!(v, LoginVerdict::Mismatch);
            assert!(v.counts_failure());
        }
    }

    #[test]
    fn a_failed_login_is_a_failure_whoever_it_names() {
        let c = customer("cust-2");
        for expected in [None, Some("cust-1"), Some("cust-2")] {
            let v = for_clear(&proof(false, &c, expected), LoginBinding::ChatCode);
            assert_eq!(v, LoginVerdict::Failure);
            assert!(v.counts_failure());
        }
    }

    #[test]
    fn a_success_with_chat_code_binding_waits_for_the_code() {
        let c = customer("cust-1");
        let v = for_clear(&proof(true, &c, Some("cust-1")), LoginBinding::ChatCode);
        assert_eq!(v, LoginVerdict::Bind);
        assert!(!v.counts_failure());
    }

    #[test]
    fn a_success_authenticates() {
        let c = customer("cust-1");
        for expected in [None, Some("cust-1")] {
            let v = for_clear(&proof(true, &c, expected), LoginBinding::None);
            assert_eq!(v, LoginVerdict::Authenticate);
        }
    }

    /// A counted failure is answered as its verdict says, unless it locked.
    #[test]
    fn a_failure_that_locks_is_answered_locked() {
        let (rules, otp_rules) = (LockoutSettings::default(), OtpSettings::default());
        let mut subject = SubjectRecord::new("cust-1");
        let first = subject.record_failure_for(None, t(0), &rules, &otp_rules);
        let answer = LoginVerdict::Mismatch.failed_answer(&first, t(0));
        assert_eq!(answer, CallbackAnswer::CustomerMismatch);
        let answer = LoginVerdict::Failure.failed_answer(&first, t(0));
        assert_eq!(answer, CallbackAnswer::NotAuthenticated);
        let mut last = first;
        for _ in 1..rules.threshold {
            last = subject.record_failure_for(None, t(0), &rules, &otp_rules);
        }
        let until = subject.locked_until.expect("locked by the threshold");
        for v in [LoginVerdict::Mismatch, LoginVerdict::Failure] {
            assert_eq!(
                v.failed_answer(&last, t(0)),
                CallbackAnswer::Locked { until }
            );
        }
    }
}
