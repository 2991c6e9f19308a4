//! One test per rung of the verify ladder, without a gateway or a store.
use super::*;
use crate::domain::challenge::{Challenge, ChallengeMethod, Delivery, Entry, Stage};
use crate::domain::interaction::{Customer, PendingBinding};
use crate::domain::otp::OtpCode;
use crate::domain::subject::FailureOutcome;

const CODE: &str = "482913";
const WRONG: &str = "482914";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_795_000_000 + secs)
}

fn pepper() -> Pepper {
    Pepper::new("test-pepper")
}

/// An interaction with an open OTP challenge for [`CODE`], its subject,
/// the settings.
struct Try {
    rec: InteractionRecord,
    subject: SubjectRecord,
    settings: Settings,
    cid: Uuid,
}

impl Try {
    fn new() -> Try {
        Try::with(ChallengeMethod::Otp, false)
    }

    fn with(method: ChallengeMethod, step_up: bool) -> Try {
        let settings = Settings::default();
        let mut rec = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
        rec.customer_ref = Some("cust-1".to_string());
        let cid = Uuid::now_v7();
        let code = OtpCode::from_digits(CODE).unwrap();
        let c = match method {
            ChallengeMethod::Binding => {
                Challenge::new_binding(cid, &code, &pepper(), &settings.otp, t(0))
            }
            _ => Challenge::new_otp(
                cid,
                Delivery::Sms,
                &code,
                &pepper(),
                &settings.otp,
                false,
                step_up,
                t(0),
            )
            .unwrap(),
        };
        rec.open_new_challenge(c, t(0));
        Try {
            rec,
            subject: SubjectRecord::new("cust-1"),
            settings,
            cid,
        }
    }

    fn verify(&mut self, code: &str, at: i64) -> Result<Verdict, Error> {
        let (rec, subject, s) = (&mut self.rec, &mut self.subject, &self.settings);
        decide(
            rec,
            subject,
            s,
            (self.cid, Typed::Chat(code)),
            &pepper(),
            t(at),
        )
    }

    /// The refusal's contract code; nothing may have been counted.
    fn refused(&mut self, code: &str, at: i64) -> &'static str {
        let before = (self.rec.clone(), self.subject.clone());
        let e = self.verify(code, at).unwrap_err();
        assert_eq!((self.rec.clone(), self.subject.clone()), before);
        e.code()
    }
}

#[test]
fn the_right_code_authenticates_the_customer_ref_and_clears_failures() {
    let mut x = Try::new();
    x.verify(WRONG, 1).unwrap();
    assert_eq!(
        x.verify(CODE, 2).unwrap(),
        Verdict::Authenticated { step_up: None }
    );
    let auth = x.rec.auth.clone().unwrap();
    assert_eq!((auth.method, auth.authenticated_at), (Method::Otp, t(2)));
    assert_eq!(auth.customer.get("id").map(String::as_str), Some("cust-1"));
    assert!(x.subject.failures.is_empty());
    assert!(Verdict::Authenticated { step_up: None }
        .problem(t(2))
        .is_none());
}

#[test]
fn rung_1_a_locked_or_banned_subject_is_refused_before_the_code_is_compared() {
    let mut x = Try::new();
    let s = x.settings.clone();
    for _ in 0..s.lockout.threshold {
        x.subject.record_failure_for(None, t(0), &s.lockout, &s.otp);
    }
    assert_eq!(x.refused(CODE, 1), "locked");
    let mut x = Try::new();
    x.settings.lockout.max_lockouts_before_ban = 1;
    let s = x.settings.clone();
    for _ in 0..s.lockout.threshold {
        x.subject.record_failure_for(None, t(0), &s.lockout, &s.otp);
    }
    assert_eq!(x.refused(CODE, 1), "banned");
}

#[test]
fn rung_2_a_challenge_that_cannot_be_answered_is_refused() {
    let mut x = Try::new();
    assert_eq!(x.refused("12a", 1), "invalid_request");
    assert_eq!(x.refused(CODE, 180), "challenge_expired");
    let real = x.cid;
    x.cid = Uuid::now_v7();
    assert_eq!(x.refused(CODE, 1), "not_found");
    x.cid = real;
    x.verify(CODE, 1).unwrap();
    assert_eq!(x.refused(CODE, 2), "challenge_used");
}

#[test]
fn rung_3_a_wrong_code_is_counted_on_the_challenge_and_the_subject() {
    let mut x = Try::new();
    let verdict = x.verify(WRONG, 1).unwrap();
    let Verdict::Wrong {
        attempts_remaining,
        failure,
    } = &verdict
    else {
        panic!("{verdict:?}");
    };
    assert_eq!(*attempts_remaining, 2);
    assert!(matches!(failure.outcome, FailureOutcome::Counted { .. }));
    assert_eq!(x.subject.failures, vec![t(1)]);
    let problem = verdict.problem(t(1)).unwrap();
    assert_eq!(problem.code(), "invalid_code");
}

#[test]
fn rung_3_a_wrong_code_that_locks_answers_the_lockout() {
    let mut x = Try::new();
    x.settings.lockout.threshold = 1;
    let verdict = x.verify(WRONG, 1).unwrap();
    assert_eq!(verdict.problem(t(1)).unwrap().code(), "locked");
}

#[test]
fn rung_5_a_step_up_no_longer_live_proves_nobody() {
    // The attempt used the challenge up; the caller keeps nothing of a
    // refusal.
    let mut x = Try::with(ChallengeMethod::Otp, true);
    assert_eq!(x.verify(CODE, 1).unwrap_err().code(), "challenge_expired");
    assert!(x.rec.auth.is_none());
    // While it is live, it authenticates its customer and is handed back.
    let mut x = Try::with(ChallengeMethod::Otp, true);
    let customer: Customer = [("id".to_string(), "asserted".to_string())].into();
    let pending = PendingStepUp {
        customer: customer.clone(),
        fingerprint: Some("fp".to_string()),
        region: None,
        until: t(60),
    };
    x.rec.step_up = Some(pending.clone());
    assert_eq!(
        x.verify(CODE, 1).unwrap(),
        Verdict::Authenticated {
            step_up: Some(pending)
        }
    );
    assert_eq!(x.rec.auth.unwrap().customer, customer);
}

#[test]
fn rung_6_a_binding_code_needs_its_login() {
    let mut x = Try::with(ChallengeMethod::Binding, false);
    assert_eq!(x.verify(CODE, 1).unwrap_err().code(), "challenge_expired");
    assert!(x.rec.auth.is_none());
    let mut x = Try::with(ChallengeMethod::Binding, false);
    let customer: Customer = [("id".to_string(), "proven".to_string())].into();
    x.rec.binding = Some(PendingBinding {
        challenge_id: x.cid,
        customer: customer.clone(),
        proven_at: Some(t(-30)),
        method: Method::Oidc,
        via: vec!["webchat".into()],
        sign_in: crate::domain::interaction::SignIn {
            acr: Some("phrh".into()),
            amr: None,
        },
    });
    assert!(x.verify(CODE, 1).is_ok());
    let auth = x.rec.auth.unwrap();
    assert_eq!(
        (auth.method, auth.customer, auth.authenticated_at),
        (Method::Oidc, customer, t(-30))
    );
    assert_eq!(auth.via, ["webchat"], "the channel that delivered the link");
    assert_eq!(
        auth.sign_in.acr.as_deref(),
        Some("phrh"),
        "what the provider said"
    );
}

#[test]
fn a_pin_on_an_authenticated_interaction_reproves_its_customer() {
    let mut x = Try::new();
    let s = x.settings.clone();
    let customer: Customer = [("id".to_string(), "earlier".to_string())].into();
    x.rec
        .authenticate_since(Method::Oidc, customer.clone(), Vec::new(), t(0), t(0), &s);
    assert!(x.verify(CODE, 1).is_ok());
    let auth = x.rec.auth.unwrap();
    assert_eq!((auth.method, auth.customer), (Method::Otp, customer));
}

#[test]
fn a_code_for_a_transaction_marks_the_authentication_with_its_hash() {
    let v = serde_json::json!({"type": "payment", "amount": "120.00", "currency": "EUR",
                               "payee": "ACME Energy Ltd"});
    let t = crate::domain::transaction::Transaction::parse("transaction", &v).unwrap();
    let mut x = Try::new();
    if let Some(c) = x.rec.challenge.as_mut() {
        c.transaction = Some(t.clone());
    }
    x.verify(CODE, 1).unwrap();
    let auth = x.rec.auth.clone().unwrap();
    assert_eq!(auth.transaction_hash, Some(t.hash()));
    // A code for no transaction approves none.
    let mut plain = Try::new();
    plain.verify(CODE, 1).unwrap();
    assert_eq!(plain.rec.auth.unwrap().transaction_hash, None);
}

/// Rung 7: a network challenge takes no code until a verified answer's
/// page shows one; then only that code answers it (wrong ones counted as
/// an OTP's), and it authenticates with method `network`.
#[test]
fn rung_7_the_code_a_verified_network_answer_showed_authenticates_by_network() {
    let mut x = Try::new();
    let cid = Uuid::now_v7();
    let c = Challenge::new_network(
        cid,
        Delivery::Chat,
        std::time::Duration::from_secs(300),
        false,
        t(0),
    );
    x.rec.open_new_challenge(c, t(0));
    x.cid = cid;
    assert_eq!(x.refused(CODE, 1), "invalid_request", "no code yet");
    let code = OtpCode::from_digits(CODE).unwrap();
    if let Some(c) = x.rec.challenge.as_mut() {
        c.stage = Stage::AwaitingCode {
            hash: crate::domain::otp::hash(&pepper(), cid, &code),
        };
        c.max_attempts = 3;
    }
    let wrong = x.verify(WRONG, 2).unwrap();
    assert!(
        matches!(
            wrong,
            Verdict::Wrong {
                attempts_remaining: 2,
                ..
            }
        ),
        "{wrong:?}"
    );
    assert_eq!(x.subject.failures.len(), 1, "counted as an OTP's");
    x.verify(CODE, 3).unwrap();
    let auth = x.rec.auth.clone().unwrap();
    assert_eq!(auth.method, Method::Network);
    assert_eq!(auth.via, ["network"]);
    assert_eq!(auth.customer.get("id").map(String::as_str), Some("cust-1"));
    assert!(x.subject.failures.is_empty());
}

/// Rungs 0 and 4: a page-entry code through the chat is 409 before its
/// page's right code; the right code on the page binds nothing yet and
/// leaves the challenge awaiting the binding code, which then alone
/// answers, through the chat, as the code it follows would.
#[test]
fn rung_4_the_right_code_on_the_page_awaits_its_binding_code_in_the_chat() {
    let mut x = Try::new();
    x.subject.failures = vec![t(0)];
    if let Some(c) = x.rec.challenge.as_mut() {
        c.proof = Proof::otp(Entry::Page);
    }
    assert_eq!(x.refused(CODE, 1), "entry_page", "never through the chat");
    let bound = OtpCode::from_digits("7391").unwrap();
    let bind = crate::domain::otp::hash(&pepper(), x.cid, &bound);
    let (rec, subject, s) = (&mut x.rec, &mut x.subject, &x.settings);
    let typed = Typed::Page {
        code: CODE,
        bind: &bind,
    };
    let verdict = decide(rec, subject, s, (x.cid, typed), &pepper(), t(2)).unwrap();
    assert_eq!(verdict, Verdict::AwaitingCode);
    assert!(x.rec.auth.is_none(), "the chat is not proven yet");
    assert_eq!(x.subject.failures.len(), 1, "nothing cleared yet");
    let c = x.rec.challenge.clone().unwrap();
    assert!(c.awaits_code() && c.bound_proof().is_none());
    assert_eq!(c.expires_at, t(2).plus(x.settings.otp.ttl.get()));
    // The page takes nothing more; the code it took answers nothing now.
    let (rec, subject, s) = (&mut x.rec, &mut x.subject, &x.settings);
    let again = Typed::Page {
        code: CODE,
        bind: &bind,
    };
    let used = decide(rec, subject, s, (x.cid, again), &pepper(), t(3));
    assert_eq!(used.unwrap_err().code(), "challenge_used");
    let wrong = x.verify(CODE, 4).unwrap();
    assert!(matches!(wrong, Verdict::Wrong { .. }), "{wrong:?}");
    x.verify("7391", 5).unwrap();
    let auth = x.rec.auth.clone().unwrap();
    assert_eq!(auth.method, Method::Otp);
    assert!(x.subject.failures.is_empty());
}

/// Rung 7: a verified presentation's binding code authenticates with
/// method `wallet`.
#[test]
fn rung_7_the_binding_code_of_a_presentation_authenticates_by_wallet() {
    let mut x = Try::new();
    let cid = Uuid::now_v7();
    let asked = [("family_name".to_string(), "Lovelace".to_string())].into();
    let w = crate::domain::wallet_state::WalletChallenge::asking(
        "pid".into(),
        crate::domain::wallet_format::Format::SdJwt,
        asked,
    );
    let five = std::time::Duration::from_secs(300);
    let c = Challenge::new_wallet(cid, Delivery::Chat, five, false, w, t(0));
    x.rec.open_new_challenge(c, t(0));
    x.cid = cid;
    assert_eq!(x.refused(CODE, 1), "invalid_request", "no code yet");
    let code = OtpCode::from_digits(CODE).unwrap();
    let hash = crate::domain::otp::hash(&pepper(), cid, &code);
    if let Some(c) = x.rec.challenge.as_mut() {
        c.await_code(hash, &x.settings.otp, t(2));
    }
    x.verify(CODE, 3).unwrap();
    let auth = x.rec.auth.clone().unwrap();
    assert_eq!(auth.method, Method::Wallet);
    assert_eq!(auth.via, ["wallet"]);
}
