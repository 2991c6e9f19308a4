use std::time::Duration;

use uuid::Uuid;

use super::*;
use crate::domain::challenge::{Challenge, ChallengeState, Delivery};
use crate::domain::subject::Ban;

/// A conversation that is the verified number's own SMS conversation.
const OWN: Proof = Proof::OwnNumber;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + s)
}

/// An interaction with a phone on file and an open network challenge.
fn open() -> (InteractionRecord, Uuid) {
    let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
    r.customer_ref = Some("cust-42".into());
    r.contact.phone = Some("+447400123456".into());
    let cid = Uuid::now_v7();
    let c = Challenge::new_network(cid, Delivery::Chat, Duration::from_secs(300), false, t(1));
    r.open_new_challenge(c, t(1));
    (r, cid)
}

#[test]
fn a_confirmation_authenticates_with_method_network_and_clears_failures() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord {
        failures: vec![t(0)],
        ..SubjectRecord::default()
    };
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, OWN),
        &s,
        t(5),
    );
    assert_eq!(ending, Ending::Authenticated);
    let auth = r.auth.as_ref().unwrap();
    assert_eq!(auth.method, Method::Network);
    assert_eq!(auth.via, ["network"]);
    assert_eq!(auth.customer.get("id").map(String::as_str), Some("cust-42"));
    assert!(subject.failures.is_empty());
    let (c, state) = r.challenge_at(cid, t(5)).unwrap();
    assert_eq!(state, ChallengeState::Used);
    assert_eq!(c.network_answer().unwrap().result, NetworkResult::Verified);
    // Used: a second answer changes nothing.
    let again = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Mismatch, OWN),
        &s,
        t(6),
    );
    assert_eq!(again, Ending::Gone);
}

#[test]
fn a_mismatch_ends_the_challenge_and_counts_no_failure() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord::default();
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Mismatch, OWN),
        &s,
        t(5),
    );
    assert_eq!(
        ending,
        Ending::Ended {
            reason: "number_mismatch"
        }
    );
    assert!(r.auth.is_none() && r.challenge.is_none());
    assert!(subject.failures.is_empty() && subject.locked_until.is_none());
    let (c, state) = r.challenge_at(cid, t(5)).unwrap();
    assert_eq!(state, ChallengeState::Failed);
    assert_eq!(
        c.network_answer(),
        Some(NetworkAnswer {
            result: NetworkResult::Mismatch,
            answered_at: t(5)
        })
    );
}

#[test]
fn off_the_mobile_network_or_an_error_leaves_it_open_with_the_last_answer() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord::default();
    for (result, at) in [
        (NetworkResult::NotOnMobileNetwork, t(5)),
        (NetworkResult::Error, t(6)),
    ] {
        assert_eq!(
            conclude(&mut r, &mut subject, (cid, result, OWN), &s, at),
            Ending::Open
        );
        let c = r.open_challenge(at).unwrap();
        assert_eq!(c.id, cid);
        assert_eq!(c.network_answer().unwrap().result, result);
        assert_eq!(c.network_answer().unwrap().answered_at, at);
    }
    assert!(subject.failures.is_empty());
    // Then the customer turns Wi-Fi off.
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, OWN),
        &s,
        t(7),
    );
    assert_eq!(ending, Ending::Authenticated);
}

#[test]
fn an_expired_replaced_or_unknown_challenge_is_gone_and_unchanged() {
    let s = Settings::default();
    let mut subject = SubjectRecord::default();
    let (mut r, cid) = open();
    let before = r.clone();
    let late = t(1 + 300);
    assert_eq!(
        conclude(
            &mut r,
            &mut subject,
            (cid, NetworkResult::Verified, OWN),
            &s,
            late
        ),
        Ending::Gone
    );
    assert_eq!(r, before);
    assert_eq!(
        conclude(
            &mut r,
            &mut subject,
            (Uuid::now_v7(), NetworkResult::Verified, OWN),
            &s,
            t(5)
        ),
        Ending::Gone
    );
    let newer = Challenge::new_network(
        Uuid::now_v7(),
        Delivery::Sms,
        Duration::from_secs(300),
        false,
        t(2),
    );
    r.open_new_challenge(newer, t(2));
    assert_eq!(
        conclude(
            &mut r,
            &mut subject,
            (cid, NetworkResult::Verified, OWN),
            &s,
            t(5)
        ),
        Ending::Gone
    );
    assert!(r.auth.is_none());
}

#[test]
fn a_subject_banned_meanwhile_is_not_authenticated() {
    let (mut r, cid) = open();
    let s = Settings::default();
    let mut subject = SubjectRecord {
        ban: Some(Ban {
            since: t(2),
            until: None,
        }),
        ..SubjectRecord::default()
    };
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, OWN),
        &s,
        t(5),
    );
    assert_eq!(ending, Ending::Ended { reason: "locked" });
    assert!(r.auth.is_none());
}

#[test]
fn every_result_has_its_name_and_only_the_inconclusive_stay_open() {
    let names: Vec<_> = NetworkResult::ALL.map(NetworkResult::as_str).into();
    assert_eq!(
        names,
        ["verified", "mismatch", "not_on_mobile_network", "error"]
    );
    let open: Vec<_> = NetworkResult::ALL
        .into_iter()
        .filter(|r| r.leaves_open())
        .collect();
    assert_eq!(
        open,
        [NetworkResult::NotOnMobileNetwork, NetworkResult::Error]
    );
}

/// A ladder at its network step: a confirmation authenticates, any other
/// answer moves it on (recorded, nothing counted), naming why.
#[test]
fn a_ladder_s_network_step_moves_on_for_every_answer_but_a_confirmation() {
    use crate::domain::challenge::{Ladder, SentStep, NETWORK_STEP};
    let s = Settings::default();
    let ladder = |r: &mut InteractionRecord| {
        let cid = Uuid::now_v7();
        let mut c =
            Challenge::new_network(cid, Delivery::Ladder, Duration::from_secs(300), false, t(1));
        c.proof = crate::domain::challenge::Proof::otp(crate::domain::challenge::Entry::Chat);
        c.max_attempts = 3;
        c.proof.otp_state_mut().unwrap().ladder = Some(Ladder {
            steps: vec![NETWORK_STEP.into(), "sms".into()],
            sent: vec![SentStep {
                index: 0,
                channel: NETWORK_STEP.into(),
                destination: "+447400123456".into(),
                message_id: None,
                sent_at: t(1),
                left_at: None,
                in_flight: 0,
                reason: None,
            }],
            sealed_code: String::new(),
            answers: Vec::new(),
        });
        r.open_new_challenge(c, t(1));
        cid
    };
    for (result, reason) in [
        (NetworkResult::Mismatch, AdvanceReason::NumberMismatch),
        (
            NetworkResult::NotOnMobileNetwork,
            AdvanceReason::NotOnMobileNetwork,
        ),
        (NetworkResult::Error, AdvanceReason::Failed),
    ] {
        let (mut r, _) = open();
        let cid = ladder(&mut r);
        let mut subject = SubjectRecord::default();
        assert!(is_open_network(&r, cid, t(2)));
        let ending = conclude(&mut r, &mut subject, (cid, result, OWN), &s, t(2));
        assert_eq!(ending, Ending::MoveOn(reason));
        let c = r.open_challenge(t(2)).unwrap();
        assert_eq!(c.network_answer().unwrap().result, result);
        assert_eq!(c.attempts_used, 0);
        assert!(subject.failures.is_empty());
    }
    let (mut r, _) = open();
    let cid = ladder(&mut r);
    let mut subject = SubjectRecord::default();
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, OWN),
        &s,
        t(2),
    );
    assert_eq!(ending, Ending::Authenticated);
    assert_eq!(r.auth.unwrap().method, Method::Network);
    // Once it moved past the step, the operator's answer is not awaited.
    let (mut r, _) = open();
    let cid = ladder(&mut r);
    if let Some(l) = r.challenge.as_mut().and_then(|c| c.proof.ladder_mut()) {
        l.sent.push(SentStep {
            index: 1,
            channel: "sms".into(),
            ..l.sent[0].clone()
        });
    }
    assert!(!is_open_network(&r, cid, t(2)));
}

/// In any other conversation a verified answer proves the phone, not the
/// person in the chat: the challenge stays open for `otp.ttl` with
/// `otp.max_attempts` tries, answered only by the code the page showed;
/// the link is used, and a ladder stays at its network step.
#[test]
fn a_verified_answer_elsewhere_waits_for_the_code_typed_into_the_chat() {
    let s = Settings::default();
    let (mut r, cid) = open();
    let mut subject = SubjectRecord {
        failures: vec![t(0)],
        ..SubjectRecord::default()
    };
    let to_type = Proof::CodeToType("codehash".into());
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, to_type.clone()),
        &s,
        t(5),
    );
    assert_eq!(ending, Ending::AwaitingCode);
    assert!(r.auth.is_none(), "not authenticated yet");
    assert_eq!(subject.failures, [t(0)], "nothing cleared yet");
    let c = r.open_challenge(t(5)).unwrap();
    assert_eq!(c.id, cid);
    assert_eq!(c.stage.awaited(), Some("codehash"));
    assert!(c.takes_code() && c.awaits_code());
    assert_eq!(c.expires_at, t(5).plus(s.otp.ttl.get()));
    assert_eq!(c.max_attempts, s.otp.max_attempts);
    assert_eq!(c.network_answer().unwrap().result, NetworkResult::Verified);
    // The link is used: its challenge, still the operator's to ask, waits
    // for the code typed into the chat (the link's state `Answered`), so
    // the operator's answer is no longer awaited; another changes nothing.
    let c = r.open_challenge(t(6)).unwrap();
    assert!(c.id == cid && asks_the_operator(c) && c.awaits_code());
    assert!(!is_open_network(&r, cid, t(6)));
    let again = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, OWN),
        &s,
        t(6),
    );
    assert_eq!(again, Ending::Gone);
    assert!(r.auth.is_none());
    // Past otp.ttl the challenge has expired.
    let end = t(5).plus(s.otp.ttl.get());
    assert!(r.open_challenge(end).is_none());
}

#[test]
fn only_an_sms_conversation_of_the_number_itself_is_its_own() {
    let number = "+447400123456";
    assert!(own_sms_conversation(true, "+447400123456", number));
    assert!(own_sms_conversation(true, "447400123456", number));
    assert!(own_sms_conversation(true, "+4407400123456", number));
    assert!(
        !own_sms_conversation(false, "+447400123456", number),
        "WhatsApp, a web chat"
    );
    assert!(
        !own_sms_conversation(true, "+447400654321", number),
        "another number"
    );
    assert!(!own_sms_conversation(
        true,
        "whatsapp:+447400123456",
        number
    ));
    assert!(!own_sms_conversation(true, "c-1", number));
}

/// A code a browser posted that the provider refuses is one wrong try:
/// the challenge stays open while tries are left, ends on the last
/// (`number_mismatch`), and the subject counts nothing; tries used go on
/// into the binding code a later confirmation asks for.
#[test]
fn a_refused_posted_code_is_one_wrong_try_and_the_last_ends_it() {
    let s = Settings::default();
    assert!(s.otp.max_attempts >= 2);
    let (mut r, cid) = open();
    for tried in 1..s.otp.max_attempts {
        let at = t(i64::from(tried) + 1);
        assert_eq!(refused_code(&mut r, cid, &s, at), Ending::Open, "{tried}");
        let c = r.open_challenge(at).expect("still open");
        assert_eq!(
            (c.attempts_used, c.max_attempts),
            (tried, s.otp.max_attempts)
        );
        assert_eq!(c.attempts_remaining(), s.otp.max_attempts - tried);
        assert_eq!(
            c.network_answer(),
            Some(NetworkAnswer {
                result: NetworkResult::Mismatch,
                answered_at: at
            })
        );
        assert!(is_open_network(&r, cid, at), "its link still answers");
    }
    let last = t(100);
    assert_eq!(
        refused_code(&mut r, cid, &s, last),
        Ending::Ended {
            reason: "number_mismatch"
        }
    );
    let (_, state) = r.challenge_at(cid, last).unwrap();
    assert_eq!(state, ChallengeState::Failed);
    assert_eq!(refused_code(&mut r, cid, &s, t(101)), Ending::Gone);

    // One wrong try, then Vonage's own code: the binding code keeps the
    // tries that are left.
    let (mut r, cid) = open();
    let mut subject = SubjectRecord::default();
    assert_eq!(refused_code(&mut r, cid, &s, t(2)), Ending::Open);
    let to_type = Proof::CodeToType("codehash".into());
    let ending = conclude(
        &mut r,
        &mut subject,
        (cid, NetworkResult::Verified, to_type),
        &s,
        t(3),
    );
    assert_eq!(ending, Ending::AwaitingCode);
    let c = r.open_challenge(t(3)).unwrap();
    assert_eq!(c.attempts_remaining(), s.otp.max_attempts - 1);
    assert!(subject.failures.is_empty());
}

/// On a ladder at its network step a refused posted code moves the ladder
/// on, as any answer that does not confirm, counting nothing.
#[test]
fn a_refused_posted_code_moves_a_ladder_on_counting_nothing() {
    use crate::domain::challenge::{Ladder, SentStep, NETWORK_STEP};
    let s = Settings::default();
    let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
    let cid = Uuid::now_v7();
    let mut c =
        Challenge::new_network(cid, Delivery::Ladder, Duration::from_secs(300), false, t(1));
    c.proof = crate::domain::challenge::Proof::otp(crate::domain::challenge::Entry::Chat);
    c.max_attempts = 3;
    c.proof.otp_state_mut().unwrap().ladder = Some(Ladder {
        steps: vec![NETWORK_STEP.into(), "sms".into()],
        sent: vec![SentStep {
            index: 0,
            channel: NETWORK_STEP.into(),
            destination: "+447400123456".into(),
            message_id: None,
            sent_at: t(1),
            left_at: None,
            in_flight: 0,
            reason: None,
        }],
        sealed_code: String::new(),
        answers: Vec::new(),
    });
    r.open_new_challenge(c, t(1));
    assert_eq!(
        refused_code(&mut r, cid, &s, t(2)),
        Ending::MoveOn(AdvanceReason::NumberMismatch)
    );
    assert_eq!(r.open_challenge(t(2)).unwrap().attempts_used, 0);
}

/// The network page opens a ladder's challenge at its network step only;
/// once the ladder moved on to a code, the page went by it still, so its
/// last answer stays on view. A code of its own never went by it.
#[test]
fn a_ladder_that_began_at_the_network_step_went_by_its_page_after_moving_on() {
    use crate::domain::challenge::{Entry, Ladder, Proof, SentStep, NETWORK_STEP};
    let step = |index: usize, channel: &str| SentStep {
        index,
        channel: channel.into(),
        destination: "+447400123456".into(),
        message_id: None,
        sent_at: t(1),
        left_at: None,
        in_flight: 0,
        reason: None,
    };
    let mut c = Challenge::new_network(
        Uuid::now_v7(),
        Delivery::Ladder,
        Duration::from_secs(300),
        false,
        t(1),
    );
    assert!(c.opens_on(Page::Network) && c.went_by(Page::Network));
    assert!(!c.went_by(Page::Wallet) && !c.went_by(Page::CodeEntry));
    c.proof = Proof::otp(Entry::Chat);
    assert!(!c.went_by(Page::Network), "a code with no ladder");
    c.proof.otp_state_mut().unwrap().ladder = Some(Ladder {
        steps: vec![NETWORK_STEP.into(), "sms".into()],
        sent: vec![step(0, NETWORK_STEP)],
        sealed_code: String::new(),
        answers: Vec::new(),
    });
    assert!(c.opens_on(Page::Network) && c.went_by(Page::Network));
    if let Some(l) = c.proof.ladder_mut() {
        l.sent.push(step(1, "sms"));
    }
    assert!(!c.opens_on(Page::Network), "moved on to the code");
    assert!(c.went_by(Page::Network), "its last answer stays on view");
    c.proof.otp_state_mut().unwrap().ladder = Some(Ladder {
        steps: vec!["sms".into(), "email".into()],
        sent: vec![step(0, "sms")],
        sealed_code: String::new(),
        answers: Vec::new(),
    });
    assert!(!c.opens_on(Page::Network) && !c.went_by(Page::Network));
}
