//! One test per rung of the start ladder, without a gateway or a store.
use super::*;
use crate::domain::abuse::Destinations;
use crate::domain::interaction::PendingStepUp;
use crate::domain::pin::SessionPin;
use crate::time::Dur;

const PHONE: &str = "+447400123456";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_795_000_000 + secs)
}

fn pepper() -> Pepper {
    Pepper::new("test-pepper")
}

fn code() -> OtpCode {
    OtpCode::from_digits("482913").unwrap()
}

/// A route whose provider vouches for its sender (the tests of a chat that
/// does not say so).
fn route(channel: &str, reach: Reach) -> Option<Route> {
    Some(Route {
        channel: channel.to_string(),
        reach,
        vouches: true,
        // The `wa_template` channel sends codes through its provider's template.
        shows_text: channel != "wa_template",
        whatsapp: matches!(reach, Reach::PhoneChat),
        otp_template: channel == "wa_template",
    })
}

/// A chat on `webchat` (a messenger's bot that vouches for its sender),
/// SMS through `sms` and e-mail through `mail`.
fn routes() -> Routes {
    Routes {
        chat: route("webchat", Reach::Conversation).unwrap(),
        sms: route("sms", Reach::Phone),
        email: route("mail", Reach::Email),
        voice: route("voice", Reach::Voice),
    }
}

fn rec() -> InteractionRecord {
    let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
    r.contact.phone = Some(PHONE.to_string());
    r
}

fn req(method: &str, delivery: Option<&str>, to: Option<&str>) -> ChallengeRequest {
    ChallengeRequest::parse(method, delivery, to).unwrap()
}

fn sms() -> ChallengeRequest {
    req("otp", Some("sms"), None)
}

/// One start on fresh copies of `r` and `subject`, at `t(1)`: the verdict,
/// and the records as it left them.
struct Try {
    rec: InteractionRecord,
    subject: SubjectRecord,
    settings: Settings,
    routes: Routes,
    link_ttl: Option<std::time::Duration>,
}

impl Try {
    fn new() -> Try {
        Try {
            rec: rec(),
            subject: SubjectRecord::new("cust-1"),
            settings: Settings::default(),
            routes: routes(),
            link_ttl: None,
        }
    }

    fn start(&mut self, req: &ChallengeRequest) -> Result<Started, Error> {
        let pepper = pepper();
        let rules = Rules {
            settings: &self.settings,
            routes: &self.routes,
            pepper: &pepper,
            link_ttl: self.link_ttl,
            wallet_ttl: None,
        };
        let (rec, subject) = (&mut self.rec, &mut self.subject);
        decide(req, Uuid::now_v7(), &code(), rec, subject, &rules, t(1))
    }

    /// The refusal's contract code and message; the records must be as
    /// they were (nothing counted, nothing opened).
    fn refused(&mut self, req: &ChallengeRequest) -> String {
        let before = (self.rec.clone(), self.subject.clone());
        let e = self.start(req).unwrap_err();
        assert_eq!((self.rec.clone(), self.subject.clone()), before);
        format!("{}: {e}", e.code())
    }
}

#[test]
fn parse_takes_otp_to_the_chat_by_default_and_shapes_to() {
    let r = req("otp", None, None);
    assert_eq!(
        (r.method, r.delivery, r.to),
        (ChallengeMethod::Otp, Delivery::Chat, None)
    );
    let r = req("otp", Some("sms"), Some(PHONE));
    assert_eq!((r.delivery, r.to.as_deref()), (Delivery::Sms, Some(PHONE)));
    let r = req("pin", Some("chat"), None);
    assert_eq!(
        (r.method, r.delivery),
        (ChallengeMethod::Pin, Delivery::Chat)
    );
}

#[test]
fn a_voice_code_calls_the_contact_s_phone_under_the_voice_rules_alone() {
    let voice = req("otp", Some("voice"), None);
    let mut x = Try::new();
    let started = x.start(&voice).unwrap();
    let message = started.message.unwrap();
    assert_eq!(
        (message.channel.as_str(), message.to.as_deref()),
        ("voice", Some(PHONE))
    );
    assert_eq!(started.destination.as_deref(), Some(PHONE));
    // The voice lists, not the SMS lists, decide where a call may go.
    let mut x = Try::new();
    x.settings.otp.sms_regions = vec!["US".to_string().try_into().unwrap()];
    assert!(x.start(&voice).is_ok());
    let mut x = Try::new();
    x.settings.otp.voice_regions = vec!["US".to_string().try_into().unwrap()];
    assert_eq!(
        x.refused(&voice),
        "forbidden: the number's region is not one of otp.voice_regions"
    );
    let mut x = Try::new();
    x.settings.otp.voice_number_types = vec![crate::domain::abuse::NumberType::FixedLine];
    assert_eq!(
        x.refused(&voice),
        "forbidden: the number's type is not one of otp.voice_number_types"
    );
    // A team without a voice channel.
    let mut x = Try::new();
    x.routes.voice = None;
    assert_eq!(
        x.refused(&voice),
        "invalid_request: delivery: is not allowed for this team"
    );
}

#[test]
fn parse_refuses_what_is_malformed() {
    let bad = |m, d, to| ChallengeRequest::parse(m, d, to).unwrap_err().to_string();
    assert_eq!(
        bad("binding", None, None),
        "method: must be otp, pin, app, network or wallet"
    );
    assert_eq!(
        bad("otp", Some("fax"), None),
        "delivery: must be chat, sms, email, voice, agent or ladder"
    );
    assert_eq!(
        bad("pin", Some("sms"), None),
        "delivery: a PIN prompt goes into the chat"
    );
    assert_eq!(
        bad("otp", Some("chat"), Some(PHONE)),
        "to: only for sms, voice or email delivery"
    );
    assert!(bad("otp", Some("sms"), Some("not a number")).starts_with("to: "));
    // A network check verifies the number on file, sent into the chat or
    // by SMS; never a `to`, never another delivery.
    assert_eq!(
        bad("network", Some("sms"), Some(PHONE)),
        "to: a network check verifies the interaction's own contact.phone"
    );
    assert_eq!(
        bad("network", None, Some(PHONE)),
        "to: a network check verifies the interaction's own contact.phone"
    );
    for d in ["email", "voice", "agent", "ladder"] {
        assert_eq!(
            bad("network", Some(d), None),
            "delivery: a network link goes into the chat or by sms"
        );
    }
    let parsed = |d| {
        ChallengeRequest::parse("network", d, None)
            .unwrap()
            .delivery
    };
    assert_eq!(parsed(None), Delivery::Chat);
    assert_eq!(parsed(Some("chat")), Delivery::Chat);
    assert_eq!(parsed(Some("sms")), Delivery::Sms);
}

#[test]
fn a_sms_opens_the_challenge_counts_the_send_and_names_the_destination() {
    let mut x = Try::new();
    let first = x.start(&sms()).unwrap();
    assert_eq!(first.previous, None);
    let opened = x.rec.challenge.clone().unwrap();
    assert_eq!(
        (opened.method(), opened.delivery, opened.step_up),
        (ChallengeMethod::Otp, Delivery::Sms, false)
    );
    assert_eq!(
        (first.method, first.expires_at, first.attempts_allowed),
        (ChallengeMethod::Otp, t(181), 3)
    );
    let message = Message {
        channel: "sms".to_string(),
        to: Some(PHONE.to_string()),
    };
    assert_eq!(first.message, Some(message));
    assert_eq!(first.destination.as_deref(), Some(PHONE));
    assert_eq!(x.subject.sends, vec![t(1)]);
    // A second start replaces the first, and says so.
    let second = x.start(&sms()).unwrap();
    assert_eq!(second.previous.map(|p| p.id), Some(opened.id));
}

#[test]
fn a_channel_that_reaches_a_conversation_counts_no_destination() {
    let mut x = Try::new();
    x.routes.sms = route("whatsapp", Reach::Conversation);
    let started = x.start(&req("otp", Some("sms"), Some(PHONE))).unwrap();
    assert_eq!(started.destination, None);
    assert_eq!(started.message.unwrap().to.as_deref(), Some(PHONE));
    // On a chat that reaches a person, the chat's contact is the destination.
    let mut x = Try::new();
    x.routes.chat.reach = Reach::Phone;
    let started = x.start(&req("otp", None, None)).unwrap();
    assert_eq!(started.destination.as_deref(), Some(PHONE));
    assert_eq!(started.message.unwrap().to, None);
}

#[test]
fn rung_1_the_destination_policy_refuses_before_anything_is_counted() {
    let mut x = Try::new();
    x.settings.otp.destinations = Destinations::OnFile;
    let other = req("otp", Some("sms"), Some("+447400999999"));
    assert!(x.refused(&other).starts_with("forbidden: otp.destinations"));
    // It comes before a lockout.
    lock(&mut x);
    assert!(x.refused(&other).starts_with("forbidden: "));
}

/// Locks the subject out (`lockout.threshold` failures).
fn lock(x: &mut Try) {
    let s = &x.settings;
    for _ in 0..s.lockout.threshold {
        x.subject.record_failure_for(None, t(0), &s.lockout, &s.otp);
    }
}

#[test]
fn rung_2_a_locked_or_banned_subject_is_refused() {
    let mut x = Try::new();
    lock(&mut x);
    assert!(x.refused(&sms()).starts_with("locked: "));
    let mut x = Try::new();
    x.settings.lockout.max_lockouts_before_ban = 1;
    lock(&mut x);
    assert!(x.refused(&sms()).starts_with("banned: "));
}

#[test]
fn rung_3_a_delivery_the_team_has_no_channel_for_is_refused() {
    let mut x = Try::new();
    x.routes.sms = None;
    assert_eq!(
        x.refused(&sms()),
        "invalid_request: delivery: is not allowed for this team"
    );
    x.routes.email = None;
    assert_eq!(
        x.refused(&req("otp", Some("email"), Some("a@example.com"))),
        "invalid_request: delivery: is not allowed for this team"
    );
}

#[test]
fn rung_4_require_other_channel_refuses_an_otp_into_the_chat_only() {
    let mut x = Try::new();
    x.settings.otp.require_other_channel = true;
    assert_eq!(
        x.refused(&req("otp", None, None)),
        "invalid_request: delivery: the code must travel on another channel than the chat"
    );
    assert!(x.start(&sms()).is_ok());
    x.rec.session_pin_hash = Some("h".to_string());
    assert!(x.start(&req("pin", None, None)).is_ok());
}

#[test]
fn rung_4_a_code_into_a_chat_that_does_not_vouch_is_refused_and_says_what_to_do() {
    let mut x = Try::new();
    x.routes.chat.vouches = false;
    let why =
        "invalid_request: delivery: this chat's channel does not vouch for who writes in it, \
               so a code shown here proves nothing: send the code to the customer's contact \
               (delivery \"sms\", \"email\", \"voice\" or \"ladder\") or use a login link";
    // The default delivery and `chat` alike; nothing opened or counted.
    assert_eq!(x.refused(&req("otp", None, None)), why);
    assert_eq!(x.refused(&req("otp", Some("chat"), None)), why);
    let e = x.start(&req("otp", None, None)).unwrap_err();
    assert!(matches!(e, Error::DeliveryRefused(_)), "{e:?}");
    // The contact's SMS, and an agent's reveal, are not the chat.
    assert!(x.start(&sms()).is_ok());
    // A PIN prompt is not a code shown: the agent gave the PIN elsewhere.
    x.rec.session_pin_hash = Some("h".to_string());
    assert!(x.start(&req("pin", None, None)).is_ok());
}

#[test]
fn rung_5_sms_or_email_to_a_contact_that_has_none_is_refused() {
    let mut x = Try::new();
    assert_eq!(
        x.refused(&req("otp", Some("email"), None)),
        "invalid_request: to: required: the interaction has no e-mail"
    );
    x.rec.contact.phone = None;
    assert_eq!(
        x.refused(&sms()),
        "invalid_request: to: required: the interaction has no phone"
    );
}

#[test]
fn rung_6_a_chat_that_reaches_a_person_needs_the_contact() {
    let mut x = Try::new();
    x.routes.chat.reach = Reach::Email;
    assert_eq!(
        x.refused(&req("otp", None, None)),
        "invalid_request: delivery: this channel needs the interaction's contact, and it has none"
    );
}

#[test]
fn rung_7_agent_delivery_needs_show_to_agents() {
    let mut x = Try::new();
    let agent = req("otp", Some("agent"), None);
    assert_eq!(
        x.refused(&agent),
        "invalid_request: delivery: agent delivery needs otp.show_to_agents"
    );
    x.settings.otp.show_to_agents = true;
    let started = x.start(&agent).unwrap();
    assert_eq!((started.message, started.destination), (None, None));
    assert!(x.rec.challenge.unwrap().sealed_code.is_some());
}

#[test]
fn rung_8_a_pin_prompt_needs_a_session_pin() {
    let mut x = Try::new();
    let pin = req("pin", None, None);
    assert!(x.refused(&pin).starts_with("no_session_pin: "));
    let ps = &x.settings.pin;
    let hash = SessionPin::parse("97315864", ps)
        .unwrap()
        .keyed_hash(x.rec.id, &pepper());
    x.rec.session_pin_hash = Some(hash.clone());
    let started = x.start(&pin).unwrap();
    assert_eq!(started.method, ChallengeMethod::Pin);
    assert_eq!(x.rec.challenge.unwrap().code_hash, hash);
}

#[test]
fn rung_9_the_subjects_send_limit_is_refused_without_counting() {
    let mut x = Try::new();
    x.settings.otp.max_sends = 2;
    x.start(&sms()).unwrap();
    x.start(&sms()).unwrap();
    assert!(x.refused(&sms()).starts_with("rate_limited: "));
    // Sends that left the window are forgotten.
    x.settings.otp.send_window = Dur::from_secs(5);
    x.subject.sends = vec![t(-10), t(-5)];
    assert!(x.start(&sms()).is_ok());
}

#[test]
fn an_otp_during_a_live_step_up_completes_it_and_ends_with_it() {
    let mut x = Try::new();
    x.rec.step_up = Some(PendingStepUp {
        customer: Default::default(),
        fingerprint: None,
        region: None,
        until: t(60),
    });
    let started = x.start(&sms()).unwrap();
    assert_eq!(started.expires_at, t(60));
    assert!(x.rec.challenge.unwrap().step_up);
}

#[test]
fn take_back_reopens_the_previous_challenge_and_gives_the_send_back() {
    let mut x = Try::new();
    x.start(&sms()).unwrap();
    let first = x.rec.challenge.clone().unwrap();
    let second = x.start(&sms()).unwrap();
    let id = x.rec.challenge.as_ref().unwrap().id;
    let (rec, subject) = (&mut x.rec, &mut x.subject);
    assert!(take_back(
        rec,
        subject,
        None,
        id,
        second.previous.clone(),
        t(1)
    ));
    assert_eq!(x.rec.challenge.as_ref().map(|c| c.id), Some(first.id));
    assert!(x.rec.past_challenges.iter().all(|p| p.id != first.id));
    assert_eq!(x.subject.sends, vec![t(1)]);
    // A challenge already replaced is left alone.
    let before = (x.rec.clone(), x.subject.clone());
    let (rec, subject) = (&mut x.rec, &mut x.subject);
    assert!(!take_back(rec, subject, None, id, None, t(1)));
    assert_eq!((x.rec, x.subject), before);
}

fn payment() -> crate::domain::transaction::Transaction {
    let v = serde_json::json!({"type": "payment", "amount": "120.00", "currency": "EUR",
                               "payee": "ACME Energy Ltd"});
    crate::domain::transaction::Transaction::parse("transaction", &v).unwrap()
}

#[test]
fn rung_4_a_transaction_on_a_channel_that_cannot_show_it_is_refused() {
    let mut x = Try::new();
    x.routes.sms = route("wa_template", Reach::Phone);
    let on_template = sms().for_transaction(Some(payment())).unwrap();
    let e = x.refused(&on_template);
    assert!(e.starts_with("invalid_request: delivery:"), "{e}");
    // Without a transaction the same channel takes the code.
    x.start(&sms()).unwrap();
    // Where the text shows, the challenge carries the transaction.
    let mut x = Try::new();
    x.start(&sms().for_transaction(Some(payment())).unwrap())
        .unwrap();
    let opened = x.rec.challenge.unwrap();
    assert_eq!(opened.transaction, Some(payment()));
}

#[test]
fn a_transaction_is_refused_with_a_pin_or_for_an_agent() {
    let pin = req("pin", None, None).for_transaction(Some(payment()));
    assert!(pin.unwrap_err().to_string().starts_with("transaction:"));
    let agent = req("otp", Some("agent"), None).for_transaction(Some(payment()));
    assert!(agent.unwrap_err().to_string().starts_with("delivery:"));
    assert!(req("app", None, None)
        .for_transaction(Some(payment()))
        .is_ok());
}

/// The payment rule asks the method (`ChallengeMethod::approves_payment`,
/// an exhaustive `match`): every method either approves a payment or is
/// refused one, and for no method does the answer come from a default.
#[test]
fn every_method_is_asked_whether_it_approves_a_payment() {
    let payment = crate::domain::transaction::Transaction::parse(
        "transaction",
        &serde_json::json!({"type": "payment", "amount": "120.00", "currency": "EUR", "payee": "ACME Energy Ltd"}),
    )
    .unwrap();
    for method in ChallengeMethod::ALL {
        let asked = ChallengeRequest {
            method,
            delivery: Delivery::Sms,
            to: None,
            locale: None,
            transaction: None,
            page_entry: false,
            wallet: None,
        };
        let answer = asked.for_transaction(Some(payment.clone()));
        assert_eq!(answer.is_ok(), method.approves_payment(), "{method:?}");
    }
    assert!(ChallengeMethod::Otp.approves_payment() && ChallengeMethod::App.approves_payment());
    assert!(
        !ChallengeMethod::Pin.approves_payment() && !ChallengeMethod::Binding.approves_payment()
    );
    assert!(!ChallengeMethod::Network.approves_payment());
    // A wallet approves one with its `sca` credential (the team's
    // `[wallet]` says which that is).
    assert!(ChallengeMethod::Wallet.approves_payment());
    // Only a one-time code goes to a number, and a network check vouches
    // for the number on file: both go through the number checks. Only a
    // one-time code may be revealed to an agent (never a network link).
    for method in ChallengeMethod::ALL {
        let otp = method == ChallengeMethod::Otp;
        let to_a_number = otp || method == ChallengeMethod::Network;
        assert_eq!(method.may_go_to_a_number(), to_a_number, "{method:?}");
        assert_eq!(method.revealable(), otp, "{method:?}");
    }
}

/// A try in a WhatsApp chat on `channel` (its own route, reaching as
/// `reach`) named by a business-scoped user id, with no contact.
fn in_bsuid_chat(channel: &str, reach: Reach) -> Try {
    let mut x = Try::new();
    let mut chat = route(channel, reach).unwrap();
    chat.whatsapp = true;
    x.routes.chat = chat;
    x.rec = InteractionRecord::new(Uuid::now_v7(), "acme", channel, BSUID, t(0));
    x
}

const BSUID: &str = "US.13491208655302741918";

#[test]
fn a_code_into_a_bsuid_chat_goes_to_the_conversation_without_phone_rules() {
    // The SMS rules would refuse any number; the id is none.
    for reach in [Reach::PhoneChat, Reach::Phone] {
        let mut x = in_bsuid_chat("wa", reach);
        x.settings.otp.sms_regions = vec!["GB".to_string().try_into().unwrap()];
        let started = x.start(&req("otp", None, None)).unwrap();
        let message = started.message.unwrap();
        assert_eq!((message.channel.as_str(), message.to), ("wa", None));
        // Its sends count against the id, as given.
        assert_eq!(started.destination.as_deref(), Some(BSUID));
    }
}

#[test]
fn a_template_code_into_a_bsuid_chat_is_refused_before_anything_is_counted() {
    for reach in [Reach::PhoneChat, Reach::Phone] {
        let mut x = in_bsuid_chat("wa_template", reach);
        let e = x.refused(&req("otp", None, None));
        assert!(e.starts_with("invalid_request: delivery:"), "{e}");
        assert!(e.contains("business-scoped user id"), "{e}");
        // A PIN prompt is text: it goes.
        let mut x = in_bsuid_chat("wa_template", reach);
        x.rec.session_pin_hash = Some("h".into());
        let pin = x.start(&req("pin", None, None));
        assert!(!matches!(&pin, Err(e) if e.to_string().contains("business-scoped")));
    }
}

#[test]
fn a_code_by_sms_through_the_chat_s_channel_goes_to_the_phone() {
    let mut x = in_bsuid_chat("wa_template", Reach::PhoneChat);
    x.routes.sms = Some(x.routes.chat.clone());
    x.rec.contact.phone = Some(PHONE.to_string());
    let started = x.start(&sms()).unwrap();
    let message = started.message.unwrap();
    assert_eq!(message.to.as_deref(), Some(PHONE));
    assert_eq!(started.destination.as_deref(), Some(PHONE));
}

#[test]
fn a_network_link_needs_the_team_s_number_verification_and_a_phone_on_file() {
    let network = req("network", None, None);
    let mut x = Try::new();
    assert_eq!(
        x.refused(&network),
        "invalid_request: method: network needs the team's [number_verification]"
    );
    x.link_ttl = Some(std::time::Duration::from_secs(300));
    x.rec.contact.phone = None;
    assert_eq!(
        x.refused(&network),
        "invalid_request: method: network verifies the interaction's contact.phone, and it has none"
    );
}

#[test]
fn a_network_link_opens_for_link_ttl_and_counts_a_send_even_in_an_unvouched_chat() {
    let mut x = Try::new();
    x.link_ttl = Some(std::time::Duration::from_secs(300));
    // A chat that does not vouch for its sender: the link proves nothing,
    // the operator does.
    x.routes.chat.vouches = false;
    x.settings.otp.require_other_channel = true;
    let started = x.start(&req("network", None, None)).unwrap();
    assert_eq!(started.method, ChallengeMethod::Network);
    assert_eq!((started.expires_at, started.attempts_allowed), (t(301), 0));
    assert_eq!(started.message.unwrap().channel, "webchat");
    let opened = x.rec.challenge.clone().unwrap();
    assert_eq!(opened.method(), ChallengeMethod::Network);
    assert!(opened.code_hash.is_empty() && opened.sealed_code.is_none());
    assert_eq!(x.subject.sends.len(), 1);
    // By SMS: to the number on file, counted there.
    let started = x.start(&req("network", Some("sms"), None)).unwrap();
    assert_eq!(started.destination.as_deref(), Some(PHONE));
}

#[test]
fn a_code_is_typed_on_the_page_only_where_it_does_not_go_into_the_chat() {
    let entered = |m: &str, d: Option<&str>, e: Option<&str>| {
        ChallengeRequest::parse_entered(m, d, None, e).map(|r| r.page_entry)
    };
    let field = |r: Result<bool, Error>| match r {
        Err(Error::Unprocessable(msg)) => msg,
        other => panic!("{other:?}"),
    };
    for d in ["sms", "email", "voice", "ladder", "agent"] {
        assert!(entered("otp", Some(d), Some("page")).unwrap(), "{d}");
    }
    assert!(entered("pin", None, Some("page")).unwrap());
    assert!(!entered("otp", None, Some("chat")).unwrap());
    assert!(!entered("otp", Some("sms"), None).unwrap());
    for (m, d) in [
        ("otp", None),
        ("otp", Some("chat")),
        ("network", Some("sms")),
        ("app", None),
        ("wallet", None),
    ] {
        assert!(
            field(entered(m, d, Some("page"))).starts_with("entry:"),
            "{m} {d:?}"
        );
    }
    // Before any other rule of the method: a network check's `to`.
    let r = ChallengeRequest::parse_entered("network", None, Some("+447400123456"), Some("page"));
    assert!(field(r.map(|r| r.page_entry)).starts_with("entry:"));
    assert!(field(entered("otp", Some("sms"), Some("browser"))).starts_with("entry:"));
}

/// The method's own rungs come from one exhaustive `match`
/// (`MethodRungs::of`): only a network link asks for the team's number
/// verification, only a one-time code is held to the rules of a code the
/// customer reads, a PIN prompt alone opens on the session PIN and a
/// wallet challenge alone opens a link the customer's wallet answers.
#[test]
fn every_method_says_its_own_rungs() {
    for method in ChallengeMethod::ALL {
        let own = MethodRungs::of(method);
        assert_eq!(
            own.network,
            method == ChallengeMethod::Network,
            "{method:?}"
        );
        assert_eq!(own.code, method == ChallengeMethod::Otp, "{method:?}");
        let opens = match method {
            ChallengeMethod::Pin => Opens::Pin,
            ChallengeMethod::Network => Opens::Network,
            ChallengeMethod::Wallet => Opens::Wallet,
            _ => Opens::Code,
        };
        assert_eq!(own.opens, opens, "{method:?}");
    }
}

/// The API document's forms of a method (`ChallengeMethod::request_doc`)
/// name the deliveries its start accepts, and no other; a method typed
/// on the page is one a code answers; a method asking a credential is
/// the one whose request takes `credential`.
#[test]
fn a_method_s_request_forms_are_what_its_start_accepts() {
    let credential = serde_json::json!("pid");
    for method in ChallengeMethod::ALL {
        let doc = method.request_doc();
        assert_eq!(doc.forms.is_empty(), !method.startable(), "{method:?}");
        if !method.startable() {
            continue;
        }
        let (mut named, mut left_out) = (Vec::new(), false);
        for form in doc.forms {
            let these = match form.delivery {
                Deliveries::None => Vec::new(),
                Deliveries::Optional(these) => these.to_vec(),
                Deliveries::Required(d) => vec![d],
            };
            left_out |= !matches!(form.delivery, Deliveries::Required(_));
            named.extend_from_slice(&these);
            // Its `to`, where it names one, and no other.
            let to = match form.to {
                Some(Addressee::Phone) | None => PHONE,
                Some(Addressee::Email) => "someone@example.com",
            };
            for d in &these {
                let sent = ChallengeRequest::parse(method.as_str(), Some(d.as_str()), Some(to));
                assert_eq!(sent.is_ok(), form.to.is_some(), "{method:?} {d:?}");
            }
        }
        for d in Delivery::REQUESTABLE {
            let accepted = delivery_for(method, Some(d)).is_ok();
            assert_eq!(accepted, named.contains(&d), "{method:?} {d:?}");
        }
        assert_eq!(delivery_for(method, None).is_ok(), left_out, "{method:?}");
        let on_the_page = page_entry_allowed(method.as_str(), Some("sms")).is_ok();
        assert_eq!(on_the_page, method.takes_code(), "{method:?}");
        let asked = ChallengeRequest::parse(method.as_str(), None, None)
            .and_then(|r| r.for_wallet(Some(&credential), None));
        assert_eq!(asked.is_ok(), doc.credential, "{method:?}");
    }
}
