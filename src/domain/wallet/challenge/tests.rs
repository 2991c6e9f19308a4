use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::domain::challenge::{Challenge, ChallengeState, Delivery};
use crate::domain::wallet_format::Format;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + s)
}

fn request(n: u32) -> WalletRequest {
    WalletRequest {
        rid: format!("rid-{n}"),
        kid: format!("kid-{n}"),
        state: format!("state-{n}"),
        nonce: format!("nonce-{n}"),
        key: "scalar".into(),
        made_at: t(2),
        answered: false,
    }
}

/// An interaction with an open wallet challenge and one request.
fn open() -> (InteractionRecord, Uuid) {
    let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
    r.customer_ref = Some("cust-42".into());
    let cid = Uuid::now_v7();
    let asked = [("family_name".to_string(), "Lovelace".to_string())].into();
    let w = WalletChallenge::asking("pid".into(), Format::SdJwt, asked);
    let c = Challenge::new_wallet(
        cid,
        Delivery::Chat,
        Duration::from_secs(300),
        false,
        w,
        t(1),
    );
    r.open_new_challenge(c, t(1));
    assert_eq!(add_request(&mut r, cid, request(1), t(2)), Some(vec![]));
    (r, cid)
}

fn answer(result: WalletResult) -> Presented {
    Presented::Answer(
        WalletAnswer {
            result,
            issuer: Some("CN=PID Issuer".into()),
            matched: vec!["family_name".into()],
            claims: [("family_name".to_string(), Value::from("Lovelace"))].into(),
            answered_at: t(5),
            sca: None,
        },
        None,
    )
}

/// The binding code a verified answer waits for.
fn bound() -> Binding {
    Binding {
        code_hash: "codehash".into(),
        response_code: Some("rchash".into()),
    }
}

#[test]
fn a_verified_presentation_awaits_its_binding_code_and_authenticates_nothing_yet() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord {
        failures: vec![t(0)],
        ..SubjectRecord::default()
    };
    let presented = (cid, "kid-1", answer(WalletResult::Verified));
    let ending = conclude(&mut r, &mut subject, presented, bound(), &s, t(5));
    assert_eq!(ending, Ok(Ending::AwaitingCode));
    assert!(r.auth.is_none(), "the person in the chat is not proven yet");
    assert_eq!(
        subject.failures.len(),
        1,
        "cleared only by the binding code"
    );
    let (c, state) = r.challenge_at(cid, t(5)).unwrap();
    assert_eq!(state, ChallengeState::Open);
    assert_eq!(c.stage.awaited(), Some("codehash"));
    assert_eq!(
        c.bound_proof(),
        Some(crate::domain::interaction::Method::Wallet)
    );
    assert_eq!(
        c.expires_at,
        t(5).plus(s.otp.ttl.get()),
        "otp.ttl from the answer"
    );
    assert_eq!(c.max_attempts, s.otp.max_attempts);
    let w = c.wallet().unwrap();
    assert_eq!(w.answer.as_ref().unwrap().result, WalletResult::Verified);
    assert_eq!(w.response_code.as_deref(), Some("rchash"));
    // It takes no other answer and makes no request meanwhile.
    assert!(open_wallet(&r, cid, t(6)).is_none());
    assert!(awaiting_code(&r, cid, t(6)).is_some());
    assert!(add_request(&mut r, cid, request(2), t(6)).is_none());
    let again = (cid, "kid-1", answer(WalletResult::Verified));
    assert_eq!(
        conclude(&mut r, &mut subject, again, bound(), &s, t(6)),
        Err(Refused::Gone)
    );
    // The first browser that opens its redirect is the only one.
    assert!(tie_browser(&mut r, cid, "browser-1".into(), t(7)));
    assert!(!tie_browser(&mut r, cid, "browser-2".into(), t(8)));
    let w = awaiting_code(&r, cid, t(8)).unwrap();
    assert_eq!(w.code_browser.as_deref(), Some("browser-1"));
    // Once ended, nothing of where the code was shown is remembered.
    let ended = r.challenge.as_ref().unwrap().ended();
    let w = ended.wallet().unwrap();
    assert!(w.response_code.is_none() && w.code_browser.is_none());
}

#[test]
fn each_failing_result_fails_the_challenge_and_counts_one_failure() {
    for result in WalletResult::ALL
        .into_iter()
        .filter(|r| *r != WalletResult::Verified)
    {
        let (mut r, cid) = open();
        let s = Settings::default();
        let mut subject = SubjectRecord::default();
        let ending = conclude(
            &mut r,
            &mut subject,
            (cid, "kid-1", answer(result)),
            bound(),
            &s,
            t(5),
        );
        let Ok(Ending::Failed { reason, failure }) = ending.clone() else {
            panic!("{result:?}: {ending:?}");
        };
        assert_eq!(reason, result.as_str());
        assert!(failure.is_some());
        assert_eq!(subject.failures.len(), 1, "{result:?}");
        assert!(r.auth.is_none());
        assert_eq!(r.challenge_at(cid, t(5)).unwrap().1, ChallengeState::Failed);
    }
}

#[test]
fn a_wallet_error_counts_nothing_and_leaves_the_challenge_open_but_its_request_answered() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord::default();
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, "kid-1", Presented::WalletError),
        bound(),
        &s,
        t(5),
    );
    assert_eq!(ending, Ok(Ending::Open));
    assert!(subject.failures.is_empty());
    assert!(open_wallet(&r, cid, t(5)).is_some());
    // Its request is answered: another answer to it is refused.
    let again = (cid, "kid-1", answer(WalletResult::Verified));
    assert_eq!(
        conclude(&mut r, &mut subject, again, bound(), &s, t(6)),
        Err(Refused::NoRequest)
    );
    assert!(r.auth.is_none());
}

#[test]
fn an_unknown_key_changes_nothing_and_a_challenge_keeps_its_five_newest_requests() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord::default();
    let before = r.clone();
    let unknown = (cid, "kid-9", answer(WalletResult::Verified));
    assert_eq!(
        conclude(&mut r, &mut subject, unknown, bound(), &s, t(5)),
        Err(Refused::NoRequest)
    );
    assert_eq!(r, before);
    for n in 2..=5 {
        assert_eq!(add_request(&mut r, cid, request(n), t(3)), Some(vec![]));
    }
    // A sixth and a seventh: the oldest go, and say which.
    let gone = add_request(&mut r, cid, request(6), t(3));
    assert_eq!(gone, Some(vec!["kid-1".to_string()]));
    let gone = add_request(&mut r, cid, request(7), t(3));
    assert_eq!(gone, Some(vec!["kid-2".to_string()]));
    let w = open_wallet(&r, cid, t(3)).unwrap();
    let kept: Vec<&str> = w.requests.iter().map(|q| q.rid.as_str()).collect();
    assert_eq!(kept, ["rid-3", "rid-4", "rid-5", "rid-6", "rid-7"]);
    assert!(w.open_request("rid-1").is_none() && w.request_for_key("kid-2").is_none());
    // Past its end, no request is added and no answer taken.
    assert!(add_request(&mut r, cid, request(8), t(400)).is_none());
    let late = (cid, "kid-7", answer(WalletResult::Verified));
    assert_eq!(
        conclude(&mut r, &mut subject, late, bound(), &s, t(400)),
        Err(Refused::Gone)
    );
}

#[test]
fn debug_shows_no_expected_or_disclosed_value_and_no_key() {
    let (r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord::default();
    let mut rec = r.clone();
    let _ = conclude(
        &mut rec,
        &mut subject,
        (cid, "kid-1", answer(WalletResult::ClaimsMismatch)),
        bound(),
        &s,
        t(5),
    );
    for shown in [format!("{r:?}"), format!("{rec:?}")] {
        assert!(!shown.contains("Lovelace"), "{shown}");
        assert!(
            !shown.contains("scalar") && !shown.contains("nonce-1"),
            "{shown}"
        );
    }
}
