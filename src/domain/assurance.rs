//! Assurance for one action (docs/api.md#assurance-for-one-action): is the interaction's current
//! authentication recent enough, and of a strong enough method, for what the
//! bot is about to do? A pure function of the interaction's state, a policy
//! and `now`.
use std::time::Duration;

use super::interaction::{Method, Status};
use super::number_check::NumberCheck;
use crate::time::Timestamp;

/// What one action asks of the authentication. Both parts are optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The authentication happened at most this long ago.
    pub max_age: Option<Duration>,
    /// The current authentication's method is one of these.
    pub methods: Option<Vec<Method>>,
    /// `recognized` is among the methods: an interaction that is not
    /// authenticated but recognized is judged by what its conversation
    /// remembers (docs/api.md#recognized-conversations).
    pub recognized: bool,
    /// An intent's `otp_via`: an OTP authentication meets the policy only
    /// when every channel its code went through is listed (other methods
    /// are not bound by it). `None`: any.
    pub otp_via: Option<Vec<String>>,
    /// An intent's `number_check = "clean"`: an authentication by a code
    /// to a phone number meets the policy only when its number check was
    /// clean (other authentications are not bound by it).
    pub number_clean: bool,
    /// Met only by an authentication that approved the transaction of
    /// this hash (docs/api.md#approving-one-payment). `None`: any.
    pub transaction: Option<String>,
    /// The current authentication's `acr` (what the team's identity
    /// provider said of the sign-in) is one of these. `None`: any.
    pub acr: Option<Vec<String>>,
}

/// What an interaction shows of its authentication, for [`assess`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub status: Status,
    pub method: Option<Method>,
    pub authenticated_at: Option<Timestamp>,
    /// The channels the proving message went through (empty: none).
    pub via: Vec<String>,
    /// When the remembered authentication of its recognized conversation
    /// happened; `None` when it is not recognized.
    pub recognized_at: Option<Timestamp>,
    /// The authentication was by a code sent to a phone number.
    pub by_phone_code: bool,
    /// What the number check found about that number (`None`: none asked).
    pub number_check: Option<NumberCheck>,
    /// The hash of the transaction the authentication approved, if any.
    pub transaction_hash: Option<String>,
    /// The `acr` the identity provider said of the authentication, if any.
    pub acr: Option<String>,
}

/// A requirement the interaction does not meet, in the order of docs/api.md#assurance-for-one-action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unmet {
    /// The status is not `authenticated`.
    Authenticated,
    MaxAge,
    Method,
    /// The authentication's `acr` is none of those asked.
    Acr,
    /// An OTP whose code went through a channel the intent's `otp_via`
    /// does not list.
    Via,
    /// A code to a phone number whose number check was not clean, under
    /// an intent's `number_check = "clean"`.
    NumberCheck,
    /// The authentication approved no transaction of the hash asked for.
    Transaction,
}

impl Unmet {
    pub const ALL: [Unmet; 7] = [
        Unmet::Authenticated,
        Unmet::MaxAge,
        Unmet::Method,
        Unmet::Acr,
        Unmet::Via,
        Unmet::NumberCheck,
        Unmet::Transaction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unmet::Authenticated => "authenticated",
            Unmet::MaxAge => "max_age",
            Unmet::Method => "method",
            Unmet::Acr => "acr",
            Unmet::Via => "via",
            Unmet::NumberCheck => "number_check",
            Unmet::Transaction => "transaction",
        }
    }
}

/// The verdict, without the interaction's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub satisfied: bool,
    /// Judged by the recognized conversation: `age_seconds` counts from the
    /// remembered authentication, and the method is `recognized`.
    pub by_recognition: bool,
    /// Whole seconds since `authenticated_at`; `None` when not authenticated.
    pub age_seconds: Option<u64>,
    pub unmet: Vec<Unmet>,
}

/// Judges an interaction with `status`, authenticated by `method` at
/// `authenticated_at` (both as the interaction shows them), against `policy`
/// at `now`. When it is not authenticated, `max_age` and `methods` are not
/// met either (there is no current authentication to meet them).
pub fn assess(
    status: Status,
    method: Option<Method>,
    authenticated_at: Option<Timestamp>,
    policy: &Policy,
    now: Timestamp,
) -> Verdict {
    assess_shown(
        Shown {
            status,
            method,
            authenticated_at,
            via: Vec::new(),
            recognized_at: None,
            by_phone_code: false,
            number_check: None,
            transaction_hash: None,
            acr: None,
        },
        policy,
        now,
    )
}

/// Whether an authentication meets a policy's `acr` (`asked`, `None`:
/// any): only a current authentication whose `acr` (`said`, what the
/// identity provider's ID token said) is one of those asked; one the
/// provider said no `acr` of, or made without it (any other method),
/// meets none (docs/api.md#assurance-for-one-action).
pub fn acr_met(asked: Option<&[String]>, authenticated: bool, said: Option<&str>) -> bool {
    let Some(asked) = asked else {
        return true;
    };
    authenticated && said.is_some_and(|acr| asked.iter().any(|a| a == acr))
}

/// [`assess`], where a policy that lists `recognized` accepts an
/// interaction that is not authenticated but recognized: judged then by
/// the remembered authentication's time. An authenticated interaction is
/// judged by its own method, whatever it is recognized as.
pub fn assess_shown(shown: Shown, policy: &Policy, now: Timestamp) -> Verdict {
    let Shown {
        status,
        method,
        authenticated_at,
        via,
        recognized_at,
        by_phone_code,
        number_check,
        transaction_hash,
        acr,
    } = shown;
    // A payment is approved only by the authentication that approved it:
    // never by a remembered one.
    let approved = |authenticated: bool| match &policy.transaction {
        None => true,
        Some(want) => authenticated && transaction_hash.as_deref() == Some(want.as_str()),
    };
    if status != Status::Authenticated && policy.recognized {
        if let Some(at) = recognized_at {
            return by_recognition(now.since(at), policy, approved(false));
        }
    }
    let authenticated = status == Status::Authenticated;
    let age = authenticated_at
        .filter(|_| authenticated)
        .map(|at| now.since(at));
    let mut unmet = Vec::new();
    if !authenticated {
        unmet.push(Unmet::Authenticated);
    }
    if let Some(max) = policy.max_age {
        if age.is_none_or(|a| a > max) {
            unmet.push(Unmet::MaxAge);
        }
    }
    if let Some(allowed) = &policy.methods {
        if !(authenticated && method.is_some_and(|m| allowed.contains(&m))) {
            unmet.push(Unmet::Method);
        }
    }
    if !acr_met(policy.acr.as_deref(), authenticated, acr.as_deref()) {
        unmet.push(Unmet::Acr);
    }
    // An OTP with no channel (an agent read it out) went through none the
    // intent lists: it does not meet `otp_via`.
    if let Some(listed) = &policy.otp_via {
        let by_otp = authenticated && method == Some(Method::Otp);
        if by_otp && (via.is_empty() || !via.iter().all(|v| listed.contains(v))) {
            unmet.push(Unmet::Via);
        }
    }
    // A phone code with no check (the team asks none) is not clean.
    let clean = number_check.is_some_and(|c| c.is_clean());
    if policy.number_clean && authenticated && by_phone_code && !clean {
        unmet.push(Unmet::NumberCheck);
    }
    if !approved(authenticated) {
        unmet.push(Unmet::Transaction);
    }
    Verdict {
        satisfied: unmet.is_empty(),
        by_recognition: false,
        age_seconds: age.map(|a| a.as_secs()),
        unmet,
    }
}

/// The verdict on a conversation recognized for `age` since its
/// remembered authentication, which `approved` the transaction asked for
/// (never: a payment is approved by a current authentication only).
fn by_recognition(age: Duration, policy: &Policy, approved: bool) -> Verdict {
    let mut unmet = Vec::new();
    if policy.max_age.is_some_and(|max| age > max) {
        unmet.push(Unmet::MaxAge);
    }
    // A remembered authentication is no current one: no `acr`.
    if !acr_met(policy.acr.as_deref(), false, None) {
        unmet.push(Unmet::Acr);
    }
    if !approved {
        unmet.push(Unmet::Transaction);
    }
    Verdict {
        satisfied: unmet.is_empty(),
        by_recognition: true,
        age_seconds: Some(age.as_secs()),
        unmet,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn policy(max_age: Option<u64>, methods: Option<&[Method]>) -> Policy {
        Policy {
            otp_via: None,
            number_clean: false,
            max_age: max_age.map(Duration::from_secs),
            methods: methods.map(<[Method]>::to_vec),
            recognized: false,
            transaction: None,
            acr: None,
        }
    }

    #[test]
    fn a_fresh_authentication_satisfies_an_empty_or_matching_policy() {
        let now = t(100);
        for p in [
            Policy::default(),
            policy(Some(300), None),
            policy(None, Some(&[Method::Otp, Method::LoginLink])),
            policy(Some(100), Some(&[Method::LoginLink])),
        ] {
            let v = assess(
                Status::Authenticated,
                Some(Method::LoginLink),
                Some(t(0)),
                &p,
                now,
            );
            assert!(v.satisfied, "{p:?}");
            assert!(v.unmet.is_empty());
            assert_eq!(v.age_seconds, Some(100));
        }
    }

    #[test]
    fn age_and_method_are_unmet_in_order() {
        let p = policy(Some(60), Some(&[Method::Otp]));
        let v = assess(
            Status::Authenticated,
            Some(Method::PreChat),
            Some(t(0)),
            &p,
            t(61),
        );
        assert!(!v.satisfied);
        assert_eq!(v.unmet, [Unmet::MaxAge, Unmet::Method]);
        // Exactly max_age old is still within it.
        let v = assess(
            Status::Authenticated,
            Some(Method::Otp),
            Some(t(0)),
            &p,
            t(60),
        );
        assert!(v.satisfied);
    }

    #[test]
    fn not_authenticated_lists_authenticated_first_and_has_no_age() {
        for status in [
            Status::Unauthenticated,
            Status::Expired,
            Status::Locked,
            Status::Pending,
        ] {
            let p = policy(Some(600), Some(&[Method::PreChat]));
            let v = assess(status, Some(Method::PreChat), Some(t(0)), &p, t(1));
            assert_eq!(
                v.unmet,
                [Unmet::Authenticated, Unmet::MaxAge, Unmet::Method],
                "{status:?}"
            );
            assert_eq!(v.age_seconds, None);
            let v = assess(status, None, None, &Policy::default(), t(1));
            assert_eq!(v.unmet, [Unmet::Authenticated]);
        }
    }

    #[test]
    fn a_recognized_interaction_meets_only_a_policy_that_lists_recognized() {
        let recognized = |status| Shown {
            status,
            method: None,
            authenticated_at: None,
            via: Vec::new(),
            recognized_at: Some(t(0)),
            by_phone_code: false,
            number_check: None,
            transaction_hash: None,
            acr: None,
        };
        let mut p = policy(Some(3600), Some(&[Method::Otp]));
        let v = assess_shown(recognized(Status::Unauthenticated), &p, t(60));
        assert_eq!(
            v.unmet,
            [Unmet::Authenticated, Unmet::MaxAge, Unmet::Method]
        );
        p.recognized = true;
        let v = assess_shown(recognized(Status::Unauthenticated), &p, t(60));
        assert!(v.satisfied && v.by_recognition, "{v:?}");
        assert_eq!(v.age_seconds, Some(60));
        // max_age measures the remembered authentication.
        let v = assess_shown(recognized(Status::Expired), &p, t(3601));
        assert_eq!(v.unmet, [Unmet::MaxAge]);
        // An authenticated interaction is judged by its own method.
        let mut own = recognized(Status::Authenticated);
        own.method = Some(Method::PreChat);
        own.authenticated_at = Some(t(50));
        let v = assess_shown(own, &p, t(60));
        assert_eq!(
            (v.unmet.as_slice(), v.by_recognition),
            (&[Unmet::Method][..], false)
        );
        // Not recognized: as before.
        let mut plain = recognized(Status::Unauthenticated);
        plain.recognized_at = None;
        let v = assess_shown(plain, &p, t(60));
        assert_eq!(
            v.unmet,
            [Unmet::Authenticated, Unmet::MaxAge, Unmet::Method]
        );
    }

    #[test]
    fn otp_via_binds_only_an_otp_and_needs_every_channel_listed() {
        let shown = |method, via: &[&str]| Shown {
            status: Status::Authenticated,
            method: Some(method),
            authenticated_at: Some(t(0)),
            via: via.iter().map(|s| s.to_string()).collect(),
            recognized_at: None,
            by_phone_code: false,
            number_check: None,
            transaction_hash: None,
            acr: None,
        };
        let mut p = policy(None, None);
        p.otp_via = Some(vec!["sms".into(), "email".into()]);
        let judge = |s: Shown, p: &Policy| assess_shown(s, p, t(10)).unmet;
        assert!(judge(shown(Method::Otp, &["sms"]), &p).is_empty());
        assert!(judge(shown(Method::Otp, &["sms", "email"]), &p).is_empty());
        assert_eq!(judge(shown(Method::Otp, &["wa", "sms"]), &p), [Unmet::Via]);
        assert_eq!(
            judge(shown(Method::Otp, &[]), &p),
            [Unmet::Via],
            "agent delivery"
        );
        assert!(judge(shown(Method::LoginLink, &["wa"]), &p).is_empty());
        p.methods = Some(vec![Method::Pin]);
        assert_eq!(
            judge(shown(Method::Otp, &["wa"]), &p),
            [Unmet::Method, Unmet::Via]
        );
    }

    #[test]
    fn a_clean_number_check_binds_only_a_code_to_a_phone() {
        use crate::domain::number_check::{NumberCheck, Source};
        let check = |sim_swap, call_forwarding, forwarding_asked| NumberCheck {
            sim_swap,
            call_forwarding,
            forwarding_asked,
            checked_at: t(0),
            source: Source::Camara,
        };
        let shown = |by_phone_code, number_check| Shown {
            status: Status::Authenticated,
            method: Some(Method::Otp),
            authenticated_at: Some(t(0)),
            via: vec!["sms".into()],
            recognized_at: None,
            by_phone_code,
            number_check,
            transaction_hash: None,
            acr: None,
        };
        let mut p = policy(None, None);
        p.number_clean = true;
        p.otp_via = Some(vec!["email".into()]);
        let judge = |s: Shown| assess_shown(s, &p, t(10)).unmet;
        let clean = Some(check(Some(false), None, false));
        assert_eq!(judge(shown(true, clean)), [Unmet::Via], "clean");
        let swapped = Some(check(Some(true), None, false));
        assert_eq!(
            judge(shown(true, swapped)),
            [Unmet::Via, Unmet::NumberCheck]
        );
        let unknown = Some(check(None, None, false));
        assert_eq!(
            judge(shown(true, unknown)),
            [Unmet::Via, Unmet::NumberCheck]
        );
        let forwarding_unknown = Some(check(Some(false), None, true));
        assert_eq!(
            judge(shown(true, forwarding_unknown)),
            [Unmet::Via, Unmet::NumberCheck],
            "asked, not answered"
        );
        assert_eq!(
            judge(shown(true, None)),
            [Unmet::Via, Unmet::NumberCheck],
            "no check"
        );
        assert_eq!(judge(shown(false, None)), [Unmet::Via], "not a phone code");
    }

    fn asked(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    #[test]
    fn no_acr_asked_is_met_by_anything() {
        assert!(acr_met(None, false, None));
        assert!(acr_met(None, true, Some("pwd")));
    }

    #[test]
    fn an_acr_asked_is_not_met_without_a_current_authentication() {
        let phr = asked(&["phr", "phrh"]);
        assert!(!acr_met(Some(&phr), false, Some("phrh")));
    }

    #[test]
    fn an_acr_asked_is_not_met_by_an_authentication_the_provider_named_no_acr_of() {
        assert!(!acr_met(Some(&asked(&["phrh"])), true, None));
    }

    #[test]
    fn an_acr_asked_is_met_only_by_one_of_its_values_exactly() {
        let phr = asked(&["phr", "phrh"]);
        assert!(acr_met(Some(&phr), true, Some("phrh")));
        assert!(acr_met(Some(&phr), true, Some("phr")));
        assert!(!acr_met(Some(&phr), true, Some("PHRH")));
        assert!(!acr_met(Some(&phr), true, Some("pwd")));
    }

    #[test]
    fn acr_is_listed_after_method_and_before_via_and_a_recognized_conversation_never_meets_it() {
        let shown = |status, method, acr: Option<&str>| Shown {
            status,
            method: Some(method),
            authenticated_at: Some(t(0)),
            via: Vec::new(),
            recognized_at: Some(t(0)),
            by_phone_code: false,
            number_check: None,
            transaction_hash: None,
            acr: acr.map(str::to_string),
        };
        let mut p = policy(Some(300), Some(&[Method::Oidc]));
        p.acr = Some(asked(&["phrh"]));
        p.otp_via = Some(vec!["sms".into()]);
        let judge = |s: Shown, p: &Policy| assess_shown(s, p, t(10)).unmet;
        assert!(judge(shown(Status::Authenticated, Method::Oidc, Some("phrh")), &p).is_empty());
        assert_eq!(
            judge(shown(Status::Authenticated, Method::Otp, None), &p),
            vec![Unmet::Method, Unmet::Acr, Unmet::Via]
        );
        p.recognized = true;
        let v = judge(
            shown(Status::Unauthenticated, Method::Oidc, Some("phrh")),
            &p,
        );
        assert_eq!(v, vec![Unmet::Acr]);
    }

    #[test]
    fn a_transaction_is_met_only_by_the_authentication_that_approved_it() {
        let shown = |status, hash: Option<&str>| Shown {
            status,
            method: Some(Method::Otp),
            authenticated_at: Some(t(0)),
            via: vec!["sms".into()],
            recognized_at: Some(t(0)),
            by_phone_code: false,
            number_check: None,
            transaction_hash: hash.map(str::to_string),
            acr: None,
        };
        let mut p = policy(Some(300), None);
        p.transaction = Some("right".into());
        let judge = |s: Shown, p: &Policy, at| assess_shown(s, p, t(at)).unmet;
        assert!(judge(shown(Status::Authenticated, Some("right")), &p, 10).is_empty());
        assert_eq!(
            judge(shown(Status::Authenticated, Some("wrong")), &p, 10),
            [Unmet::Transaction]
        );
        assert_eq!(
            judge(shown(Status::Authenticated, None), &p, 10),
            [Unmet::Transaction]
        );
        // Too old: max_age, then transaction is still met.
        assert_eq!(
            judge(shown(Status::Authenticated, Some("right")), &p, 301),
            [Unmet::MaxAge]
        );
        // A remembered authentication approves no payment.
        p.recognized = true;
        assert_eq!(
            judge(shown(Status::Expired, Some("right")), &p, 10),
            [Unmet::Transaction]
        );
        // `transaction` comes after `via`.
        p.recognized = false;
        p.otp_via = Some(vec!["email".into()]);
        assert_eq!(
            judge(shown(Status::Authenticated, Some("wrong")), &p, 10),
            [Unmet::Via, Unmet::Transaction]
        );
    }
}
