//! The stored forms: what the store holds today reads back equal, and
//! every record written reads back as it was.
use uuid::Uuid;

use super::*;
use crate::domain::challenge::{
    Challenge, Delivery, Entry, OtpState, PastChallenge, PastOutcome, Proof, Stage,
};
use crate::domain::delivery_status::{DeliveryError, DeliveryState, DeliveryStatus};
use crate::domain::identity_change::KnownHashes;
use crate::domain::interaction::{
    Authentication, CallbackAnswer, Contact, Customer, Link, LinkUse, Method, PendingBinding,
    PendingStepUp, RequestedLocale,
};
use crate::domain::ladder::{Ladder, SentStep};
use crate::domain::subject::{Ban, FoldedFailures, OriginRecord};

fn raw(text: &str) -> Option<Versioned> {
    Some(Versioned {
        version: 7,
        value: text.to_string(),
    })
}

fn ms(n: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_800_000_000_000 + n)
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x019a_b1c2_0000_7000_8000_0000_0000_0000 + n)
}

fn customer() -> Customer {
    Customer::from([
        ("id".to_string(), "cust-42".to_string()),
        ("name".to_string(), "Ada".to_string()),
    ])
}

/// An interaction with every member set, every kind of answer among its
/// used links.
fn full() -> InteractionRecord {
    let answers = [
        CallbackAnswer::Authenticated {
            expires_at: Some(ms(1800)),
        },
        CallbackAnswer::Authenticated { expires_at: None },
        CallbackAnswer::Bound {
            challenge_id: id(4),
            expires_at: ms(300),
        },
        CallbackAnswer::NotAuthenticated,
        CallbackAnswer::Locked { until: ms(900) },
        CallbackAnswer::Banned,
        CallbackAnswer::CustomerMismatch,
    ];
    let mut links: Vec<Link> = answers
        .iter()
        .enumerate()
        .map(|(i, a)| Link {
            id: id(10 + i as u128),
            expires_at: Some(ms(600)),
            used: true,
            used_by: Some(LinkUse {
                webhook_id: format!("w{i}"),
                answer: *a,
                body: (i % 2 == 0).then(|| format!("b{i}")),
            }),
            delivered_on: None,
        })
        .collect();
    links.push(Link {
        id: id(30),
        expires_at: None,
        used: true,
        used_by: None,
        delivered_on: None,
    });
    links.push(Link {
        id: id(31),
        expires_at: None,
        used: false,
        used_by: None,
        delivered_on: Some("webchat".into()),
    });
    InteractionRecord {
        id: id(1),
        team: "acme".into(),
        channel: "webchat".into(),
        conversation_id: "c-1".into(),
        customer_ref: Some("cust-42".into()),
        session_pin_hash: Some("pinhash".into()),
        contact: Contact {
            phone: Some("+15550100".into()),
            email: Some("ada@example.com".into()),
        },
        created_at: ms(0),
        last_activity_at: ms(5),
        last_write_at: ms(6),
        auth: Some(Authentication {
            method: Method::Otp,
            authenticated_at: ms(5),
            expires_at: ms(1805),
            customer: customer(),
            via: vec!["wa".into(), "sms".into()],
            number_check: Some(crate::domain::number_check::NumberCheck {
                sim_swap: None,
                call_forwarding: Some(false),
                forwarding_asked: true,
                checked_at: ms(4),
                source: crate::domain::number_check::Source::Camara,
            }),
            transaction_hash: None,
            sign_in: crate::domain::interaction::SignIn {
                acr: Some("phrh".into()),
                amr: Some(vec!["hwk".into(), "user".into()]),
            },
        }),
        links,
        challenge: Some(Challenge {
            id: id(4),
            proof: Proof::Otp(OtpState {
                entry: Entry::Page,
                network: Some(crate::domain::network_auth::NetworkAnswer {
                    result: crate::domain::network_auth::NetworkResult::NotOnMobileNetwork,
                    answered_at: ms(8),
                }),
                ladder: Some(Ladder {
                    steps: vec!["wa".into(), "sms".into()],
                    sent: vec![SentStep {
                        index: 1,
                        channel: "sms".into(),
                        destination: "+447400123456".into(),
                        message_id: Some("SM1".into()),
                        sent_at: ms(7),
                        left_at: None,
                        in_flight: 1,
                        reason: Some(crate::domain::ladder::AdvanceReason::Failed),
                    }],
                    sealed_code: "sealed-too".into(),
                    answers: vec![crate::domain::number_check::NumberAnswer {
                        number: "+447400123456".into(),
                        answer: crate::domain::number_check::Answer {
                            sim_swap: crate::domain::number_check::Finding::No,
                            call_forwarding: Some(crate::domain::number_check::Finding::Unknown),
                            at: ms(3),
                        },
                    }],
                }),
                number_check: Some(crate::domain::number_check::NumberCheck {
                    sim_swap: Some(false),
                    call_forwarding: None,
                    forwarding_asked: true,
                    checked_at: ms(6),
                    source: crate::domain::number_check::Source::TwilioLookup,
                }),
                call: Some(crate::domain::voice::VoiceCall {
                    channel: "voice".into(),
                    gather: crate::domain::voice::GatherId::parse(
                        "00112233445566778899aabbccddeeff.acme",
                    )
                    .unwrap(),
                    version: 42,
                }),
            }),
            delivery: Delivery::LoginPage,
            code_hash: "codehash".into(),
            sealed_code: Some("sealed".into()),
            expires_at: ms(300),
            attempts_used: 1,
            max_attempts: 3,
            step_up: true,
            channel: Some("sms".into()),
            delivery_state: Some(DeliveryState {
                status: DeliveryStatus::Failed,
                error: Some(DeliveryError {
                    code: "131047".into(),
                    title: Some("Re-engagement message".into()),
                }),
            }),
            transaction: None,
            stage: Stage::AwaitingCode {
                hash: "networkcodehash".into(),
            },
        }),
        past_challenges: vec![
            PastChallenge {
                id: id(5),
                outcome: PastOutcome::Replaced,
                ended: Some(Challenge {
                    id: id(5),
                    // A wallet challenge's state, kept once it ended.
                    proof: Proof::Wallet(Box::new(crate::domain::wallet_state::WalletChallenge {
                        credential: "pid".into(),
                        format: crate::domain::wallet::Format::SdJwt,
                        also: Vec::new(),
                        asked: [("family_name".to_string(), "Lovelace".to_string())].into(),
                        requests: vec![crate::domain::wallet_state::WalletRequest {
                            rid: "rid-1".into(),
                            kid: "kid-1".into(),
                            state: "state-1".into(),
                            nonce: "nonce-1".into(),
                            key: "scalar".into(),
                            made_at: ms(9),
                            answered: true,
                        }],
                        answer: Some(crate::domain::wallet_state::WalletAnswer {
                            result: crate::domain::wallet_state::WalletResult::ClaimsMismatch,
                            issuer: Some("CN=PID Issuer".into()),
                            matched: vec!["family_name".into()],
                            claims: [("family_name".to_string(), serde_json::json!("Lovelace"))]
                                .into(),
                            answered_at: ms(10),
                            sca: Some(crate::domain::wallet_state::ScaProof {
                                code: "sca-code".into(),
                                amr: serde_json::json!([{"knowledge": "pin_6_or_more_digits"}]),
                            }),
                        }),
                        response_code: Some("responsecodehash".into()),
                        code_browser: Some("browserhash".into()),
                        transaction_data: Some("eyJ0eXBlIjoi".into()),
                        registration: Some(crate::domain::wallet_state::KeyRegistration {
                            register: true,
                            thumbprint: Some("holderkey".into()),
                        }),
                    })),
                    delivery: Delivery::Sms,
                    code_hash: String::new(),
                    sealed_code: None,
                    expires_at: ms(200),
                    attempts_used: 0,
                    max_attempts: 3,
                    step_up: false,
                    channel: Some("sms".into()),
                    delivery_state: Some(DeliveryState {
                        status: DeliveryStatus::Read,
                        error: None,
                    }),
                    transaction: None,
                    stage: Stage::Open,
                }),
            },
            PastChallenge {
                id: id(6),
                outcome: PastOutcome::Succeeded,
                ended: None,
            },
        ],
        step_up: Some(PendingStepUp {
            customer: customer(),
            fingerprint: Some("fp".into()),
            region: Some("eu".into()),
            until: ms(400),
        }),
        binding: Some(PendingBinding {
            challenge_id: id(4),
            customer: customer(),
            proven_at: Some(ms(4)),
            method: Method::Oidc,
            via: vec!["sms".into()],
            sign_in: crate::domain::interaction::SignIn {
                acr: Some("phr".into()),
                amr: Some(vec!["pop".into()]),
            },
        }),
        expiry_announced: Some(ms(1805)),
        expiring_announced: Some(ms(1705)),
        device: Some("devicehash".into()),
        requested_locale: Some(RequestedLocale {
            tag: "es-MX".into(),
            by_assertion: true,
        }),
        recognition_refused: true,
    }
}

/// Every member set, with its bookkeeping and companion, reads back equal;
/// so does the least record, which is its conversation and times alone.
#[test]
fn an_interaction_reads_back_as_written() {
    let key = keys::interaction("acme", id(1));
    let rec = full();
    let text = encode_interaction(&rec, kept(), Some("{acme}:s:x".into())).expect("encode");
    let read = decode_interaction(&text, &key).expect("decode");
    assert_eq!(read, (rec, kept()));
    assert!(text.ends_with(r#","companion":"{acme}:s:x"}"#), "{text}");

    let least = InteractionRecord::new(id(2), "acme", "webchat", "c-2", ms(0));
    let text = encode_interaction(&least, Bookkeeping::default(), None).expect("encode");
    assert_eq!(
        text,
        r#"{"t":"acme","ch":"webchat","cv":"c-2","c":1800000000000,"la":1800000000000,"lw":1800000000000}"#
    );
    let key = keys::interaction("acme", id(2));
    assert_eq!(
        decode_interaction(&text, &key),
        Ok((least, Bookkeeping::default()))
    );
}

/// A wallet challenge asking several credentials keeps the others after
/// its format (`"o"`), and one asking one writes none, as before.
#[test]
fn a_wallet_challenge_of_several_credentials_keeps_the_others() {
    let key = keys::interaction("acme", id(1));
    let mut rec = full();
    let wallet = rec.past_challenges[0]
        .ended
        .as_mut()
        .and_then(|c| c.proof.wallet_mut())
        .unwrap();
    wallet.also = vec!["pid_mdoc".into(), "mdl".into()];
    let text = encode_interaction(&rec, kept(), None).expect("encode");
    assert!(
        text.contains(r#""w":{"c":"pid","f":"sd","o":["pid_mdoc","mdl"],"m":"#),
        "{text}"
    );
    assert_eq!(decode_interaction(&text, &key).expect("decode").0, rec);
    let text = encode_interaction(&full(), kept(), None).expect("encode");
    assert!(text.contains(r#""w":{"c":"pid","f":"sd","m":"#), "{text}");
}

/// The bookkeeping of [`full`] as stored: what points to it lives until
/// 9000, and the due queue holds its entry at 1745.
fn kept() -> Bookkeeping {
    Bookkeeping {
        indexed_until: Some(ms(9000)),
        due_held: Some(ms(1745)),
    }
}

/// A record as the store holds it today, every member present: it reads
/// as the record it is, and is written back to the same bytes. Without the
/// due time the queue holds (`dq`, which earlier versions did not write),
/// it reads as the same record, saying nothing of the queue.
#[test]
fn a_stored_interaction_of_today_reads_back_equal() {
    let mut rec = full();
    rec.links.truncate(3);
    rec.links.push(Link {
        id: id(30),
        expires_at: None,
        used: true,
        used_by: None,
        delivered_on: None,
    });
    rec.links.push(Link {
        id: id(31),
        expires_at: None,
        used: false,
        used_by: None,
        delivered_on: Some("webchat".into()),
    });
    let (a, b) = (
        "019ab1c2-0000-7000-8000-0000000000",
        r#"{"id":"cust-42","name":"Ada"}"#,
    );
    let today = [
        r#"{"t":"acme","ch":"webchat","cv":"c-1","cr":"cust-42","ph":"pinhash","#,
        r#""ct":{"phone":"+15550100","email":"ada@example.com"},"#,
        r#""c":1800000000000,"la":1800000000005,"lw":1800000000006,"#,
        &format!(r#""a":{{"m":"otp","at":1800000000005,"e":1800000001805,"cu":{b},"v":["wa","sms"],"#),
        r#""nc":{"f":false,"fa":true,"at":1800000000004,"src":"c"},"#,
        r#""acr":"phrh","amr":["hwk","user"]},"#,
        &format!(r#""l":[{{"id":"{a}0a","e":1800000000600,"#),
        r#""ub":{"w":"w0","a":{"k":"authenticated","e":1800000001800},"bd":"b0"}},"#,
        &format!(
            r#"{{"id":"{a}0b","e":1800000000600,"ub":{{"w":"w1","a":{{"k":"authenticated"}}}}}},"#
        ),
        &format!(r#"{{"id":"{a}0c","e":1800000000600,"#),
        &format!(
            r#""ub":{{"w":"w2","a":{{"k":"bound","c":"{a}04","e":1800000000300}},"bd":"b2"}}}},"#
        ),
        &format!(r#"{{"id":"{a}1e","u":true}},{{"id":"{a}1f","dl":"webchat"}}],"#),
        &format!(
            r#""q":{{"id":"{a}04","m":"otp","d":"login_page","h":"codehash","s":"sealed","#
        ),
        r#""e":1800000000300,"n":1,"mx":3,"su":true,"ch":"sms","#,
        r#""ds":{"s":"failed","e":{"c":"131047","t":"Re-engagement message"}},"#,
        r#""l":{"st":["wa","sms"],"se":[{"i":1,"ch":"sms","to":"+447400123456","m":"SM1","at":1800000000007,"f":1,"r":"failed"}],"s":"sealed-too","#,
        r#""na":[{"n":"+447400123456","s":"no","f":"unknown","at":1800000000003}]},"#,
        r#""nc":{"s":false,"fa":true,"at":1800000000006,"src":"t"},"#,
        r#""vc":{"ch":"voice","g":"00112233445566778899aabbccddeeff.acme","v":42},"#,
        r#""nv":{"r":"not_on_mobile_network","at":1800000000008},"nh":"networkcodehash","pe":true},"#,
        &format!(r#""pq":[{{"id":"{a}05","o":"replaced","c":{{"id":"{a}05","m":"wallet","#),
        r#""d":"sms","h":"","e":1800000000200,"n":0,"mx":3,"ch":"sms","ds":{"s":"read"},"#,
        r#""w":{"c":"pid","f":"sd","m":{"family_name":"Lovelace"},"#,
        r#""q":[{"r":"rid-1","k":"kid-1","s":"state-1","n":"nonce-1","d":"scalar","at":1800000000009,"x":true}],"#,
        r#""a":{"r":"claims_mismatch","i":"CN=PID Issuer","mt":["family_name"],"cl":{"family_name":"Lovelace"},"at":1800000000010,"#,
        r#""sc":{"j":"sca-code","m":[{"knowledge":"pin_6_or_more_digits"}]}},"#,
        r#""rc":"responsecodehash","rb":"browserhash","td":"eyJ0eXBlIjoi","rg":{"r":true,"t":"holderkey"}}}},"#,
        &format!(r#"{{"id":"{a}06","o":"succeeded"}}],"#),
        &format!(r#""su":{{"cu":{b},"f":"fp","r":"eu","u":1800000000400}},"#),
        &format!(r#""b":{{"c":"{a}04","cu":{b},"at":1800000000004,"m":"oidc","v":["sms"],"#),
        r#""acr":"phr","amr":["pop"]},"#,
        r#""xd":1800000001805,"xg":1800000001705,"iu":1800000009000,"dq":1800000001745,"#,
        r#""dv":"devicehash","rl":"es-MX","rla":true,"nr":true,"companion":"{acme}:s:x"}"#,
    ]
    .concat();
    let key = keys::interaction("acme", id(1));
    let (read, bookkeeping) = decode_interaction(&today, &key).expect("today's form");
    assert_eq!(read, rec);
    assert_eq!(bookkeeping, kept());
    let again = encode_interaction(&read, bookkeeping, Some("{acme}:s:x".into())).expect("encode");
    assert_eq!(again, today);
    let earlier = today.replace(r#""dq":1800000001745,"#, "");
    assert_ne!(earlier, today);
    let (read, bookkeeping) = decode_interaction(&earlier, &key).expect("an earlier form");
    assert_eq!(read, rec);
    assert_eq!(
        bookkeeping,
        Bookkeeping {
            due_held: None,
            ..kept()
        }
    );
    let again = encode_interaction(&read, bookkeeping, Some("{acme}:s:x".into())).expect("encode");
    assert_eq!(again, earlier);
    // A binding kept before it remembered the link's channel reads as none.
    let unnamed = today.replace(r#","m":"oidc","v":["sms"],"#, r#","m":"oidc","#);
    assert_ne!(unnamed, today);
    let (read, _) = decode_interaction(&unnamed, &key).expect("a binding without via");
    assert_eq!(read.binding.map(|b| b.via), Some(Vec::new()));
    // An authentication and a binding kept before the identity provider's
    // `acr` and `amr` were read as saying none.
    let unsaid = today
        .replace(r#","acr":"phrh","amr":["hwk","user"]"#, "")
        .replace(r#","acr":"phr","amr":["pop"]"#, "");
    assert_ne!(unsaid, today);
    let (read, _) = decode_interaction(&unsaid, &key).expect("without acr and amr");
    let none = crate::domain::interaction::SignIn::default();
    assert_eq!(read.auth.map(|a| a.sign_in), Some(none.clone()));
    assert_eq!(read.binding.map(|b| b.sign_in), Some(none));
    // A ladder step kept before a step's send was recorded as under way
    // reads as answered; one kept before moves kept their reason, with none.
    let answered = today.replace(
        r#","at":1800000000007,"f":1,"r":"failed"}"#,
        r#","at":1800000000007}"#,
    );
    assert_ne!(answered, today);
    let (read, _) = decode_interaction(&answered, &key).expect("a step without f or r");
    let step = read
        .challenge
        .and_then(|c| c.ladder().cloned())
        .map(|l| (l.sent[0].in_flight, l.sent[0].reason));
    assert_eq!(step, Some((0, None)));
    // The other answers, as stored today.
    for (text, answer) in [
        (
            r#"{"k":"not_authenticated"}"#,
            CallbackAnswer::NotAuthenticated,
        ),
        (
            r#"{"k":"locked","u":1800000000900}"#,
            CallbackAnswer::Locked { until: ms(900) },
        ),
        (r#"{"k":"banned"}"#, CallbackAnswer::Banned),
        (
            r#"{"k":"customer_mismatch"}"#,
            CallbackAnswer::CustomerMismatch,
        ),
    ] {
        let link = format!(r#"{{"id":"{a}0a","ub":{{"w":"w","a":{text}}}}}"#);
        let one =
            format!(r#"{{"t":"acme","ch":"webchat","cv":"c-1","c":1,"la":1,"lw":1,"l":[{link}]}}"#);
        let (read, _) = decode_interaction(&one, &key).expect(text);
        assert_eq!(
            read.links[0].used_by.as_ref().map(|u| u.answer),
            Some(answer)
        );
        assert!(read.links[0].used, "a link a callback used is used");
        let again = encode_interaction(&read, Bookkeeping::default(), None).expect("encode");
        assert_eq!(again, one);
    }
}

/// What is no record of today's: an answer without what its kind needs,
/// another kind's key, the long names earlier versions wrote.
#[test]
fn what_is_not_todays_form_is_refused() {
    let key = keys::interaction("acme", id(1));
    let head = r#"{"t":"acme","ch":"webchat","cv":"c-1","c":1,"la":1,"lw":1"#;
    for answer in [
        r#"{"k":"bound","e":1}"#,
        r#"{"k":"locked"}"#,
        r#"{"k":"granted"}"#,
        r#"{"kind":"banned"}"#,
    ] {
        let text = format!(
            r#"{head},"l":[{{"id":"{}","ub":{{"w":"w","a":{answer}}}}}]}}"#,
            id(9)
        );
        assert!(decode_interaction(&text, &key).is_err(), "{answer}");
    }
    let long = r#"{"team":"acme","channel":"webchat","conversation_id":"c-1","created_at":1,"last_activity_at":1,"last_write_at":1}"#;
    assert!(decode_interaction(long, &key).is_err());
    let text = format!("{head}}}");
    assert!(decode_interaction(&text, &key).is_ok());
    let elsewhere = Loaded::<InteractionRecord>::parse(keys::subject("acme", "x"), raw(&text));
    assert!(
        matches!(elsewhere, Err(Error::Internal(_))),
        "{elsewhere:?}"
    );
}

/// A stored number check names its provider by a tag some kind has: `c`
/// and `t` read back as CAMARA and Twilio Lookup, another tag is no
/// record of today's, never CAMARA.
#[test]
fn a_number_check_s_unknown_source_is_refused() {
    let key = keys::interaction("acme", id(1));
    let head = r#"{"t":"acme","ch":"webchat","cv":"c-1","c":1,"la":1,"lw":1"#;
    let with = |src: &str| {
        format!(
            r#"{head},"a":{{"m":"otp","at":1,"e":2,"cu":{{"id":"c"}},"v":["sms"],"nc":{{"at":1,"src":"{src}"}}}}}}"#
        )
    };
    let source = |src: &str| {
        let (rec, _) = decode_interaction(&with(src), &key).expect(src);
        let auth = rec.auth.expect("auth");
        auth.number_check.expect("number_check").source
    };
    use crate::domain::number_check::Source;
    assert_eq!(source("c"), Source::Camara);
    assert_eq!(source("t"), Source::TwilioLookup);
    for src in ["x", "C", ""] {
        assert!(decode_interaction(&with(src), &key).is_err(), "{src:?}");
    }
}

/// An interaction's id is its key's: left out of the text, and a key of
/// another kind is a corrupt record, never a record with the nil id.
#[test]
fn an_interaction_takes_its_id_from_its_key() {
    let rec = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", ms(0));
    let text = encode_interaction(&rec, Bookkeeping::default(), None).expect("json");
    assert!(!text.contains(&rec.id.to_string()), "{text}");
    let key = keys::interaction("acme", rec.id);
    let read = Loaded::<InteractionRecord>::parse(key, raw(&text)).expect("read");
    assert_eq!((read.version, read.value), (7, Some(rec)));
}

/// A write queues the due time of what is next due unless the queue holds
/// it already, as the record's stored form says, and says what the queue
/// then holds: the notice newly enabled for a record whose entry stands at
/// its expiry is queued.
#[test]
fn a_write_queues_the_due_time_the_queue_does_not_hold() {
    let s = Settings::default();
    let mut rec = InteractionRecord::new(id(1), "acme", "webchat", "c-1", ms(0));
    assert_eq!(due_op("acme", None, &rec, &s, ms(0)), (None, None));
    rec.authenticate(Method::Otp, customer(), ms(0), &s);
    let end = rec.auth_ends_at(&s).expect("authenticated");
    let notice = end.minus(s.expiry_notice.get());
    let queued = |at: Timestamp| {
        Some(Op::QueueAdd {
            key: keys::due_queue("acme"),
            member: format!("x:{}", id(1)),
            score: at.unix_millis(),
            ttl: end.since(ms(10)) + Duration::from_secs(3600),
        })
    };
    assert_eq!(
        due_op("acme", None, &rec, &s, ms(10)),
        (queued(notice), Some(notice)),
        "nothing held: queued"
    );
    assert_eq!(
        due_op("acme", Some(notice), &rec, &s, ms(10)),
        (None, Some(notice)),
        "held: nothing queued"
    );
    assert_eq!(
        due_op("acme", Some(end), &rec, &s, ms(10)),
        (queued(notice), Some(notice)),
        "held at the expiry, as without a notice: the notice queued"
    );
    rec.expiring_announced = Some(end);
    rec.expiry_announced = Some(end);
    assert_eq!(
        due_op("acme", Some(end), &rec, &s, ms(10)),
        (None, None),
        "announced: nothing due"
    );
}

fn subject() -> SubjectRecord {
    let counts = SubjectRecord {
        failures: vec![ms(7)],
        locked_until: Some(ms(99)),
        ..SubjectRecord::default()
    };
    SubjectRecord {
        subject: "cust-9".into(),
        failures: vec![ms(1), ms(2)],
        folded: vec![FoldedFailures {
            first: ms(-100),
            last: ms(-50),
            count: 40,
        }],
        lockouts: vec![ms(-10)],
        locked_until: Some(ms(900)),
        ban: Some(Ban {
            since: ms(-5),
            until: Some(ms(5000)),
        }),
        sends: vec![ms(3)],
        origins: vec![OriginRecord {
            origin: "device:fp".into(),
            seen: ms(8),
            familiar_until: Some(ms(8000)),
            counts: counts.clone(),
        }],
        strangers: Some(Box::new(counts)),
    }
}

/// A subject as stored today reads back equal and is written back to the
/// same bytes; one with nothing on record is its name alone.
#[test]
fn a_stored_subject_of_today_reads_back_equal() {
    let today = concat!(
        r#"{"s":"cust-9","f":[1800000000001,1800000000002],"#,
        r#""fo":[{"a":1799999999900,"z":1799999999950,"n":40}],"lo":[1799999999990],"#,
        r#""lu":1800000000900,"b":{"s":1799999999995,"u":1800000005000},"se":[1800000000003],"#,
        r#""or":[{"o":"device:fp","t":1800000000008,"fa":1800000008000,"#,
        r#""c":{"f":[1800000000007],"lu":1800000000099}}],"#,
        r#""st":{"f":[1800000000007],"lu":1800000000099}}"#
    );
    let key = keys::subject("acme", "cust-9");
    let read = Loaded::<SubjectRecord>::parse(key.clone(), raw(today)).expect("today's form");
    assert_eq!(read.value, Some(subject()));
    let again = serde_json::to_string(&StoredSubject::from(&subject())).expect("json");
    assert_eq!(again, today);

    let name = SubjectRecord::new("cust-1");
    let text = serde_json::to_string(&StoredSubject::from(&name)).expect("json");
    assert_eq!(text, r#"{"s":"cust-1"}"#);
    let read = Loaded::<SubjectRecord>::parse(key.clone(), raw(&text)).expect("read");
    assert_eq!(read.value, Some(name));
    // The long names of earlier versions are no longer read.
    let long = r#"{"subject":"cust-1","failures":[1]}"#;
    let read = Loaded::<SubjectRecord>::parse(key, raw(long)).expect("read");
    assert_eq!(read.value, Some(SubjectRecord::default()));
}

/// The stored forms hold no code and no PIN, and a stored challenge's
/// `Debug` hides its hash as the domain's does.
#[test]
fn the_stored_interaction_holds_neither_code_nor_pin() {
    let rec = full();
    let stored = StoredInteraction::from(&rec);
    let debug = format!("{stored:?}");
    assert!(
        !debug.contains("codehash") && !debug.contains("sealed\""),
        "{debug}"
    );
}

/// The small records as stored today read back equal and are written back
/// to the same bytes: a conversation's recognition, a customer's devices
/// (both members always written; `{}` reads as nothing validated), a
/// destination's sends and a link's uses (in the sends' form).
#[test]
fn the_small_records_of_today_read_back_equal() {
    use crate::domain::browser::LinkUses;
    use crate::domain::destination::DestinationSends;
    use crate::domain::devices::CustomerDevices;
    use crate::domain::recognition::Recognition;

    fn same<T, S>(text: &str, value: T)
    where
        T: Readable + PartialEq + std::fmt::Debug,
        S: for<'a> From<&'a T> + serde::Serialize,
    {
        let read = Loaded::<T>::parse("k".into(), raw(text)).expect("today's form");
        assert_eq!(read.value.as_ref(), Some(&value));
        let again = serde_json::to_string(&S::from(&value)).expect("json");
        assert_eq!(again, text);
    }

    let recognition = Recognition {
        customer_id: "cust-7".into(),
        method: Method::PreChat,
        authenticated_at: ms(5),
        until: ms(86_400_005),
    };
    same::<_, StoredRecognition>(
        r#"{"cu":"cust-7","m":"pre_chat","at":1800000000005,"u":1800086400005}"#,
        recognition,
    );
    let devices = CustomerDevices {
        fingerprints: vec!["h1".into(), "h2".into()],
        last_region: Some("EU".into()),
    };
    same::<_, StoredDevices>(
        r#"{"fingerprints":["h1","h2"],"last_region":"EU"}"#,
        devices,
    );
    same::<_, StoredDevices>(
        r#"{"fingerprints":[],"last_region":null}"#,
        CustomerDevices::default(),
    );
    let none = Loaded::<CustomerDevices>::parse("k".into(), raw("{}")).expect("read");
    assert_eq!(none.value, Some(CustomerDevices::default()));
    let sends = DestinationSends {
        sends: vec![ms(1), ms(2)],
    };
    same::<_, StoredSends>(r#"{"se":[1800000000001,1800000000002]}"#, sends);
    let uses = LinkUses {
        at: vec![ms(1), ms(2)],
    };
    same::<_, StoredLinkUses>(r#"{"se":[1800000000001,1800000000002]}"#, uses);
    let none = Loaded::<LinkUses>::parse("k".into(), raw("{}")).expect("read");
    assert_eq!(none.value, Some(LinkUses::default()));
    // A customer's registered attestations: one used, one not yet.
    use crate::domain::wallet::registration::{Registered, Registrations};
    let registered = Registrations {
        wallets: vec![
            Registered {
                issuer: "CN=Bank".into(),
                thumbprint: "tp-1".into(),
                registered_at: ms(1),
                last_used_at: Some(ms(2)),
            },
            Registered {
                issuer: "CN=Bank".into(),
                thumbprint: "tp-2".into(),
                registered_at: ms(3),
                last_used_at: None,
            },
        ],
    };
    same::<_, StoredRegistrations>(
        r#"{"w":[{"i":"CN=Bank","t":"tp-1","at":1800000000001,"u":1800000000002},{"i":"CN=Bank","t":"tp-2","at":1800000000003}]}"#,
        registered,
    );
}

/// The records of background work (a provider's message id, a pending
/// approval in the customer's app) as the store holds them today: a
/// renamed field would fail here, not in a rolling upgrade.
#[test]
fn the_background_records_of_today_read_back_equal() {
    fn same<T>(text: &str, value: &T)
    where
        T: Record + serde::Serialize + PartialEq,
    {
        let read = Loaded::<T>::parse("k".into(), raw(text)).expect("today's form");
        assert!(read.value.as_ref() == Some(value), "{text} reads back");
        assert_eq!(serde_json::to_string(value).expect("json"), text);
    }

    // Known: the interaction and the challenge it leads to.
    let known = StoredMessage {
        i: Some(Uuid::from_u128(1)),
        c: Some(Uuid::from_u128(2)),
        p: Vec::new(),
    };
    same(
        r#"{"i":"00000000-0000-0000-0000-000000000001","c":"00000000-0000-0000-0000-000000000002"}"#,
        &known,
    );
    // Parked: reports that came before the send's answer.
    let report = |status, error: Option<DeliveryError>| {
        StoredReport::of(&crate::domain::delivery_status::Report {
            message_id: "SM1".into(),
            status,
            error,
        })
    };
    let failed = DeliveryError {
        code: "30003".into(),
        title: Some("Unreachable".into()),
    };
    let parked = StoredMessage {
        i: None,
        c: None,
        p: vec![
            report(DeliveryStatus::Delivered, None),
            report(DeliveryStatus::Failed, Some(failed.clone())),
        ],
    };
    same(
        r#"{"p":[{"s":"delivered"},{"s":"failed","ec":"30003","et":"Unreachable"}]}"#,
        &parked,
    );
    assert_eq!(
        parked.p[1].report(),
        Some((DeliveryStatus::Failed, Some(failed)))
    );
    // A call's key press: unread, then read twice.
    let mut gather = StoredGather {
        i: Uuid::from_u128(1),
        c: Uuid::from_u128(2),
        k: "c2VhbGVk".into(),
        n: 0,
    };
    same(
        r#"{"i":"00000000-0000-0000-0000-000000000001","c":"00000000-0000-0000-0000-000000000002","k":"c2VhbGVk"}"#,
        &gather,
    );
    gather.n = 2;
    same(
        r#"{"i":"00000000-0000-0000-0000-000000000001","c":"00000000-0000-0000-0000-000000000002","k":"c2VhbGVk","n":2}"#,
        &gather,
    );
    let poll = StoredPoll {
        i: Uuid::from_u128(3),
        r: "req-1".into(),
        v: 5,
    };
    same(
        r#"{"i":"00000000-0000-0000-0000-000000000003","r":"req-1","v":5}"#,
        &poll,
    );
}

/// A report parked before its message is known keeps its error cut to
/// the bounds it is kept at once applied, whatever the provider sent.
#[test]
fn a_parked_report_is_cut_to_its_bounds() {
    let long = DeliveryError {
        code: "9".repeat(5_000),
        title: Some("é".repeat(5_000)),
    };
    let parked = StoredReport::of(&crate::domain::delivery_status::Report {
        message_id: "SM1".into(),
        status: DeliveryStatus::Failed,
        error: Some(long.clone()),
    });
    let text = serde_json::to_string(&parked).expect("json");
    assert!(text.len() < 1_000, "{} bytes parked", text.len());
    assert_eq!(
        parked.report(),
        Some((DeliveryStatus::Failed, Some(long.bounded())))
    );
}

/// The small records as the store holds them today.
#[test]
fn the_marker_records_of_today_read_back_equal() {
    fn same<T>(text: &str, value: &T)
    where
        T: Record + serde::Serialize + PartialEq + std::fmt::Debug,
    {
        let read = Loaded::<T>::parse("k".into(), raw(text)).expect("today's form");
        assert_eq!(read.value.as_ref(), Some(value), "{text} reads back");
        assert_eq!(serde_json::to_string(value).expect("json"), text);
    }
    same("{}", &UsedJti {});
    same(
        r#"{"id":"00000000-0000-0000-0000-000000000007"}"#,
        &ConversationLink {
            id: Uuid::from_u128(7),
        },
    );
    same(r#"{"logged_out":3}"#, &LogoutAnswer { logged_out: 3 });
    // A store marker: written afresh, then rewritten as a reset.
    same(
        r#"{"at":1800000000005,"r":false}"#,
        &StoredEpoch {
            at: ms(5),
            r: false,
        },
    );
    same(
        r#"{"at":1800000000005,"r":true}"#,
        &StoredEpoch { at: ms(5), r: true },
    );
    let first = Loaded::<StoredEpoch>::parse("k".into(), raw(r#"{"at":1800000000005}"#))
        .expect("a marker without r");
    assert_eq!(
        first.value,
        Some(StoredEpoch {
            at: ms(5),
            r: false
        })
    );
    // What a short code leads to: the claims of the token signed again.
    let claims = crate::domain::login_token::LoginClaims {
        iss: "https://gw.example".into(),
        aud: "acme".into(),
        sub: "00000000-0000-0000-0000-000000000001".into(),
        jti: "00000000-0000-0000-0000-000000000002".into(),
        iat: 1_800_000_000,
        exp: Some(1_800_000_600),
        team: "acme".into(),
        channel: "web".into(),
        stage: crate::domain::login_token::Stage::MidChat,
        scope: None,
        expected_customer: Some("cust-42".into()),
        locale: Some("es".into()),
    };
    same(
        concat!(
            r#"{"k":"k1","c":{"iss":"https://gw.example","aud":"acme","#,
            r#""sub":"00000000-0000-0000-0000-000000000001","#,
            r#""jti":"00000000-0000-0000-0000-000000000002","iat":1800000000,"#,
            r#""exp":1800000600,"team":"acme","channel":"web","stage":"mid_chat","#,
            r#""expected_customer":"cust-42","locale":"es"},"o":true,"a":["phrh","phr"]}"#
        ),
        &ShortLink {
            kid: "k1".into(),
            claims: claims.clone(),
            oidc: true,
            acr_values: vec!["phrh".into(), "phr".into()],
        },
    );
    // Written before the long names were cut: read as aliases.
    let old = Loaded::<ShortLink>::parse(
        "k".into(),
        raw(&serde_json::json!({"kid": "k1", "claims": claims.clone()}).to_string()),
    )
    .expect("the long names");
    assert_eq!(
        old.value,
        Some(ShortLink {
            kid: "k1".into(),
            claims,
            oidc: false,
            acr_values: Vec::new(),
        })
    );
    same("{}", &EndedSession {});
    same("{}", &SentMessage {});
    // A WhatsApp delivery that acted on identities; what an earlier
    // version remembered there (a logout's answer) reads as one too.
    same(r#"{"c":2}"#, &ActedDelivery { c: 2 });
    let earlier = Loaded::<ActedDelivery>::parse("k".into(), raw(r#"{"logged_out":1}"#));
    assert_eq!(earlier.expect("read").value, Some(ActedDelivery { c: 0 }));
    // A WhatsApp conversation's identity hashes, newest first by Meta's
    // time; the first `seen` kept before times were.
    same(
        r#"{"hash":"h3","at":1764064830,"seen":[["h2",1764064820],["h1",null]]}"#,
        &IdentityHash {
            hash: "h3".into(),
            at: Some(1_764_064_830),
            seen: vec![("h2".into(), Some(1_764_064_820)), ("h1".into(), None)],
        },
    );
    // What the previous version wrote: the newest alone, of no time.
    let old: KnownHashes = kept_as_written::<IdentityHash>(r#"{"hash":"h1"}"#).into();
    assert_eq!(old.newest.hash, "h1");
    assert_eq!((old.newest.at, old.earlier.len()), (None, 0));
    // And the previous version, during a rolling upgrade, reads today's
    // form as the newest hash, which its sends carry.
    #[derive(serde::Deserialize)]
    struct PreviousIdentityHash {
        hash: String,
    }
    let today = r#"{"hash":"h3","at":1764064830,"seen":[["h2",1764064820]]}"#;
    let previous: PreviousIdentityHash = serde_json::from_str(today).expect("the previous form");
    assert_eq!(previous.hash, "h3");
}

/// A challenge for a transaction and the authentication that approved
/// one keep them (`t` and `tx`), and read back to the same bytes.
#[test]
fn a_transaction_and_its_approval_are_kept_in_their_stored_form() {
    let t = crate::domain::transaction::Transaction {
        kind: "payment".into(),
        amount: "120.00".into(),
        currency: "EUR".into(),
        payee: "ACME Energy Ltd".into(),
        reference: None,
        payee_id: Some("DE89370400440532013000".into()),
    };
    let mut rec = full();
    if let Some(c) = rec.challenge.as_mut() {
        c.transaction = Some(t.clone());
    }
    if let Some(a) = rec.auth.as_mut() {
        a.transaction_hash = Some(t.hash());
    }
    let key = keys::interaction("acme", id(1));
    let text = encode_interaction(&rec, kept(), None).expect("encode");
    assert!(
        text.contains(
            r#""t":{"t":"payment","a":"120.00","c":"EUR","p":"ACME Energy Ltd","pi":"DE89370400440532013000"}"#
        ),
        "{text}"
    );
    assert!(text.contains(&format!(r#""tx":"{}""#, t.hash())), "{text}");
    let read = decode_interaction(&text, &key).expect("decode");
    assert_eq!(read, (rec, kept()));
    let again = encode_interaction(&read.0, kept(), None).expect("encode");
    assert_eq!(again, text);
}

/// Reads `text` as a `T` and writes it back: the same bytes.
fn kept_as_written<T: Record + serde::Serialize>(text: &str) -> T {
    let read = Loaded::<T>::parse("k".into(), raw(text)).expect("today's form");
    let value = read.value.expect("a record");
    assert_eq!(serde_json::to_string(&value).expect("json"), text);
    value
}

#[test]
fn the_console_and_login_records_of_today_read_back_equal() {
    let flow =
        r#""is":"https://id.example","n":"nonce","v":"verifier","b":"digest","at":1800000000005"#;
    let sign_in: StoredSignIn = kept_as_written(&format!(r#"{{"t":"acme",{flow}}}"#));
    assert_eq!(sign_in.team, "acme");
    assert_eq!(sign_in.flow.started_at, ms(5));
    assert!(!sign_in.mismatch_recorded);
    let seen: StoredSignIn = kept_as_written(&format!(r#"{{"t":"acme",{flow},"mm":true}}"#));
    assert!(seen.mismatch_recorded);
    let team: SessionTeam = kept_as_written(r#"{"t":"acme"}"#);
    assert_eq!(team.team, "acme");
    let text = r#"{"t":"acme","s":"jdoe","n":"J. Doe","r":"admin","at":1800000000005,"seen":1800000000009}"#;
    let stored: StoredSession = kept_as_written(text);
    let session = crate::domain::console_session::Session::from(stored.clone());
    assert_eq!(session.sub, "jdoe");
    assert_eq!(session.name.as_deref(), Some("J. Doe"));
    assert_eq!(
        session.role,
        crate::domain::console_session::ConsoleRole::Admin
    );
    assert_eq!((session.signed_in_at, session.last_seen), (ms(5), ms(9)));
    assert_eq!(StoredSession::from(&session), stored);
    let read = Loaded::<crate::domain::console_session::Session>::parse("k".into(), raw(text));
    assert_eq!(read.expect("a session").value, Some(session));
    let states = format!(
        r#"{{"e":[{{"d":"ab","s":{{"t":"acme","i":"{}","l":"{}",{flow}}}}}]}}"#,
        id(1),
        id(2)
    );
    let states: crate::oidc::states::LinkStates = kept_as_written(&states);
    assert_eq!(states.entries[0].started.link_id, id(2));
}

#[test]
fn the_audit_records_of_today_read_back_equal() {
    let text = r#"{"v":"1","digest":"d1","keys":{"settings.otp.ttl":"h1"},"api_keys":["bot"],"security_keys":["k1"]}"#;
    let config: StoredConfig = kept_as_written(text);
    let (digest, keys, api_keys, kids) = config.into_parts();
    assert_eq!(digest, "d1");
    assert_eq!(keys.get("settings.otp.ttl").map(String::as_str), Some("h1"));
    assert_eq!(
        (api_keys, kids),
        (vec!["bot".to_string()], vec!["k1".to_string()])
    );
}

#[test]
fn a_recorded_configuration_is_written_packed_and_read_back_equal() {
    use sha2::Digest as _;
    // A team's keys as a recorded configuration holds them: most of them
    // the defaults' texts, under long shared prefixes.
    let mut keys = std::collections::BTreeMap::new();
    for name in ["otp_sms", "otp_email", "link_sms", "expired", "locked"] {
        for lang in [
            "",
            "translations.de.",
            "translations.es.",
            "translations.fr.",
        ] {
            let key = format!("settings.{lang}templates.{name}");
            let digest = hex::encode(sha2::Sha256::digest(key.as_bytes()));
            keys.insert(key, digest[..16].to_string());
        }
    }
    let parts = (
        "d".repeat(64),
        keys,
        vec!["bot".to_string()],
        vec!["k1".to_string()],
    );
    let written = serde_json::to_string(&StoredConfig::of_parts(parts.clone())).unwrap();
    assert!(written.starts_with(r#"{"v":"2","#), "{written}");
    let plain = serde_json::to_string(&StoredConfig::V1 {
        digest: parts.0.clone(),
        keys: parts.1.clone(),
        api_keys: parts.2.clone(),
        security_keys: parts.3.clone(),
    })
    .unwrap();
    assert!(
        written.len() * 2 < plain.len(),
        "{} bytes packed, {} as V1",
        written.len(),
        plain.len()
    );
    let read: StoredConfig = kept_as_written(&written);
    assert_eq!(read.into_parts(), parts);
    // Packed keys that do not inflate are a corrupt record, not none.
    let bad = r#"{"v":"2","digest":"d","keys":"AAAA","api_keys":[],"security_keys":[]}"#;
    assert!(Loaded::<StoredConfig>::parse("k".into(), raw(bad)).is_err());
}

#[test]
fn a_network_link_s_record_of_today_reads_back_equal() {
    // Today's bytes of `n:`, `wl:` and `ce:` alike, read by the typed read.
    let text = format!(r#"{{"t":"acme","i":"{}","c":"{}"}}"#, id(1), id(2));
    let link: StoredChallengeLink = kept_as_written(&text);
    let want = StoredChallengeLink {
        t: "acme".into(),
        i: id(1),
        c: id(2),
    };
    assert_eq!(link, want);
}

#[test]
fn the_api_team_records_keep_their_bytes() {
    let team = StoredApiTeam::V1 {
        body: serde_json::json!({"id": "newco", "webhook": {"secret": "cg1:k1:AAAA"}}),
        digest: "ab".repeat(32),
        at: ms(0),
        incarnation: None,
    };
    let text = r#"{"v":"1","body":{"id":"newco","webhook":{"secret":"cg1:k1:AAAA"}},"digest":"DIGEST","at":1800000000000}"#
        .replace("DIGEST", &"ab".repeat(32));
    assert_eq!(serde_json::to_string(&team).unwrap(), text);
    let read = Loaded::<StoredApiTeam>::parse("k".into(), raw(&text)).unwrap();
    assert_eq!(read.value, Some(team));
    // A team created since incarnations are kept names its own.
    let team = StoredApiTeam::V1 {
        body: serde_json::json!({"id": "newco"}),
        digest: "ab".repeat(32),
        at: ms(0),
        incarnation: Some("0123456789ab".into()),
    };
    let text = r#"{"v":"1","body":{"id":"newco"},"digest":"DIGEST","at":1800000000000,"inc":"0123456789ab"}"#
        .replace("DIGEST", &"ab".repeat(32));
    assert_eq!(serde_json::to_string(&team).unwrap(), text);
    let read = Loaded::<StoredApiTeam>::parse("k".into(), raw(&text)).unwrap();
    assert_eq!(read.value, Some(team));
    let index = StoredApiTeams {
        teams: [("newco".to_string(), "cd".to_string())].into(),
    };
    let text = r#"{"t":{"newco":"cd"}}"#;
    assert_eq!(serde_json::to_string(&index).unwrap(), text);
    let read = Loaded::<StoredApiTeams>::parse("k".into(), raw(text)).unwrap();
    assert_eq!(read.value, Some(index));
    let channels = StoredApiChannels {
        channels: [("newsms".to_string(), "ef".to_string())].into(),
    };
    let text = r#"{"c":{"newsms":"ef"}}"#;
    assert_eq!(serde_json::to_string(&channels).unwrap(), text);
    let read = Loaded::<StoredApiChannels>::parse("k".into(), raw(text)).unwrap();
    assert_eq!(read.value, Some(channels));
    let claim = ApiKeyClaim {
        team: "newco".into(),
        at: ms(0),
    };
    let text = r#"{"t":"newco","at":1800000000000}"#;
    assert_eq!(serde_json::to_string(&claim).unwrap(), text);
    let read = Loaded::<ApiKeyClaim>::parse("k".into(), raw(text)).unwrap();
    assert_eq!(read.value, Some(claim));
    let reserved = KeyReservation {
        holder: "acme".into(),
        at: ms(0),
    };
    let text = r#"{"t":"acme","at":1800000000000}"#;
    assert_eq!(serde_json::to_string(&reserved).unwrap(), text);
    let read = Loaded::<KeyReservation>::parse("k".into(), raw(text)).unwrap();
    assert_eq!(read.value, Some(reserved));
    let channel = StoredApiChannel::V1 {
        body: serde_json::json!({"auth_token": "cg1:k1:AAAA", "name": "newsms"}),
        digest: "ab".repeat(32),
        at: ms(0),
        incarnation: None,
    };
    let text = r#"{"v":"1","body":{"auth_token":"cg1:k1:AAAA","name":"newsms"},"digest":"DIGEST","at":1800000000000}"#
        .replace("DIGEST", &"ab".repeat(32));
    assert_eq!(serde_json::to_string(&channel).unwrap(), text);
    let read = Loaded::<StoredApiChannel>::parse("k".into(), raw(&text)).unwrap();
    assert_eq!(read.value, Some(channel));
    let mut generation = ApiTeamsGeneration {
        generation: 9,
        ..Default::default()
    };
    assert_eq!(serde_json::to_string(&generation).unwrap(), r#"{"g":9}"#);
    let born = ApiTeamsGeneration {
        born: 5,
        ..generation.clone()
    };
    assert_eq!(serde_json::to_string(&born).unwrap(), r#"{"g":9,"b":5}"#);
    let read = Loaded::<ApiTeamsGeneration>::parse("k".into(), raw(r#"{"g":9,"b":5}"#)).unwrap();
    assert_eq!(read.value, Some(born));
    let at = Timestamp::from_unix_millis(1_800_000_000_000);
    let mark = PendingWrite {
        token: 7,
        at,
        channel_by: None,
    };
    let by = crate::domain::audit::Actor::api_key("ops");
    let refresh = PendingWrite {
        token: 8,
        at,
        channel_by: Some(by),
    };
    generation
        .pending
        .insert("newco".into(), vec![mark, refresh]);
    let text = serde_json::to_string(&generation).unwrap();
    let read = Loaded::<ApiTeamsGeneration>::parse("k".into(), raw(&text)).unwrap();
    assert_eq!(read.value, Some(generation), "{text}");
}

#[test]
fn an_mcp_session_of_today_reads_back_equal_and_remembers_its_newest_answers() {
    let fresh: StoredMcpSession = kept_as_written(r#"{"k":"acme-bot","at":1800000000005}"#);
    assert_eq!(
        (fresh.key_id.as_str(), fresh.opened_at),
        ("acme-bot", ms(5))
    );
    assert!(fresh.seen.is_empty());
    assert_eq!(fresh.last_used(), ms(5), "unused since it opened");
    let used: StoredMcpSession =
        kept_as_written(r#"{"k":"acme-bot","at":1800000000005,"u":1800000000009}"#);
    assert_eq!((used.used_at, used.last_used()), (Some(ms(9)), ms(9)));
    let text = r#"{"k":"acme-bot","at":1800000000005,"s":[["i1","d1"],["i2","d2"]]}"#;
    let mut seen: StoredMcpSession = kept_as_written(text);
    assert_eq!(seen.seen("i1"), Some("d1"));
    seen.note("i1", "d3");
    assert_eq!(
        seen.seen,
        [("i2".into(), "d2".into()), ("i1".into(), "d3".into())]
    );
    for i in 0..StoredMcpSession::SEEN {
        seen.note(&format!("n{i}"), "d");
    }
    assert_eq!(seen.seen.len(), StoredMcpSession::SEEN);
    assert_eq!(seen.seen("i1"), None, "the oldest forgotten");
}
