//! The transaction's rules, one test per refusal, its hash against an
//! independently computed vector, and the provider's details.
use serde_json::{json, Value};

use super::*;

fn example() -> Value {
    json!({"type": "payment", "amount": "120.00", "currency": "EUR",
           "payee": "ACME Energy Ltd", "reference": "INV-2026-42"})
}

fn with(member: &str, v: Value) -> Value {
    let mut t = example();
    t[member] = v;
    t
}

fn without(member: &str) -> Value {
    let mut t = example();
    t.as_object_mut().unwrap().remove(member);
    t
}

/// The status the error maps to and its text.
fn refused(v: &Value) -> (u16, String) {
    match Transaction::parse("transaction", v) {
        Ok(t) => panic!("accepted {t:?}"),
        Err(e @ Error::BadRequest(_)) => (400, e.to_string()),
        Err(e @ Error::Unprocessable(_)) => (422, e.to_string()),
        Err(e) => panic!("{e:?}"),
    }
}

#[test]
fn the_example_is_accepted_as_given() {
    let t = Transaction::parse("transaction", &example()).unwrap();
    assert_eq!(t.kind, "payment");
    assert_eq!(t.amount_text(), "120.00 EUR");
    assert_eq!(t.to_json(), example());
    let no_ref = Transaction::parse("transaction", &without("reference")).unwrap();
    assert_eq!(no_ref.reference, None);
    assert!(no_ref.to_json().get("reference").is_none());
}

#[test]
fn a_missing_member_or_one_of_the_wrong_type_is_400_naming_it() {
    for m in ["type", "amount", "currency", "payee"] {
        let (status, text) = refused(&without(m));
        assert_eq!(status, 400, "{m}");
        assert!(text.contains(&format!("transaction.{m}")), "{text}");
    }
    for m in ["type", "amount", "currency", "payee", "reference"] {
        let (status, text) = refused(&with(m, json!(120)));
        assert_eq!(status, 400, "{m}");
        assert!(text.contains(&format!("transaction.{m}")), "{text}");
    }
    assert_eq!(refused(&json!("payment")).0, 400);
}

/// A member given as null is one not given, as the document's nullable
/// `reference` says: the optional reference is then absent, a required
/// member missing (400).
#[test]
fn a_null_member_is_one_not_given() {
    let t = Transaction::parse("transaction", &with("reference", Value::Null)).unwrap();
    assert_eq!(t.reference, None);
    assert_eq!(
        t.hash(),
        Transaction::parse("transaction", &without("reference"))
            .unwrap()
            .hash()
    );
    for m in ["type", "amount", "currency", "payee"] {
        let (status, text) = refused(&with(m, Value::Null));
        assert_eq!(status, 400, "{m}");
        assert!(text.contains(&format!("transaction.{m}")), "{text}");
    }
}

#[test]
fn an_unknown_member_is_422_naming_it() {
    let (status, text) = refused(&with("iban", json!("DE89")));
    assert_eq!(status, 422);
    assert!(text.starts_with("transaction.iban: "), "{text}");
    // The client's own text, shown without control characters and cut short.
    let (_, text) = refused(&with(&format!("a\u{7}{}", "b".repeat(100)), json!(1)));
    assert!(!text.contains('\u{7}'), "{text}");
    assert!(
        text.starts_with(&format!("transaction.a{}: ", "b".repeat(51))),
        "{text}"
    );
}

#[test]
fn each_value_not_allowed_is_422_naming_its_member() {
    let cases = [
        ("type", json!("")),
        ("type", json!("Payment")),
        ("type", json!("a".repeat(33))),
        ("amount", json!("0")),
        ("amount", json!("0.00")),
        ("amount", json!("-1")),
        ("amount", json!("1e3")),
        ("amount", json!("1,00")),
        ("amount", json!(".5")),
        ("amount", json!("5.")),
        ("amount", json!("1234567890123")),
        ("amount", json!("1.00001")),
        ("amount", json!(" 120.00")),
        ("currency", json!("eur")),
        ("currency", json!("EURO")),
        ("currency", json!("ABC")),
        ("currency", json!("XAU")),
        ("payee", json!("")),
        ("payee", json!("x".repeat(71))),
        ("payee", json!("ACME\u{202E}dtL ygrenE")),
        ("payee", json!("ACME\u{200B}Energy")),
        ("payee", json!("ACME\nEnergy")),
        ("payee", json!("ACME \u{E000}")),
        ("payee", json!("\u{0410}CME Energy")),
        ("payee", json!("ACME\u{00A0}Energy")),
        ("payee", json!("ACME\u{2009}Energy")),
        ("payee", json!("ACME\u{3000}Energy")),
        ("reference", json!("")),
        ("reference", json!("r".repeat(36))),
        ("reference", json!("INV\u{2066}42")),
        ("reference", json!("INV\u{202F}42")),
    ];
    for (member, v) in cases {
        let (status, text) = refused(&with(member, v.clone()));
        assert_eq!(status, 422, "{member} {v}");
        assert!(
            text.starts_with(&format!("transaction.{member}:")),
            "{member} {v}: {text}"
        );
    }
}

#[test]
fn an_amount_has_no_more_decimals_than_its_currency() {
    assert_eq!(
        refused(&with("amount", json!("100.5")).tap_currency("JPY")).0,
        422
    );
    assert_eq!(refused(&with("amount", json!("1.005"))).0, 422);
    let ok = |amount: &str, currency: &str| {
        let v = with("amount", json!(amount)).tap_currency(currency);
        Transaction::parse("transaction", &v).is_ok()
    };
    assert!(ok("100", "JPY"));
    assert!(ok("1.005", "BHD"));
    assert!(ok("999999999999.99", "EUR"));
    assert!(ok("0.01", "EUR"));
}

#[test]
fn words_of_other_scripts_are_allowed_apart_not_within_a_word() {
    let ok = |payee: &str| Transaction::parse("transaction", &with("payee", json!(payee))).is_ok();
    assert!(ok("Zoë Café 東京"));
    assert!(ok("OOO Ромашка Ltd"), "OOO in Latin letters");
    assert!(ok("ACME Energy Ltd."));
    assert!(!ok("АCME Energy"), "a Cyrillic А in a Latin word");
}

/// UTS #39's confusables: a word of one script other than Latin whose
/// every letter is read as an ASCII letter is refused, in the payee and
/// the reference; a word with one letter unlike any is not.
#[test]
fn a_word_wholly_of_letters_that_look_latin_is_422() {
    for (member, v) in [
        ("payee", "\u{410}\u{421}\u{41c}\u{415} Energy Ltd"), // АСМЕ, Cyrillic
        ("payee", "\u{410}\u{421}\u{41c}\u{415}"),
        ("payee", "\u{41e}\u{41e}\u{41e} Ромашка"), // ООО, Cyrillic
        ("payee", "\u{391}\u{392}\u{395} Ltd"),     // ΑΒΕ, Greek
        ("payee", "ACME (\u{410}\u{421}\u{41c}\u{415})"),
        ("reference", "INV \u{410}\u{421}\u{41c}\u{415}-42"),
    ] {
        let (status, text) = refused(&with(member, json!(v)));
        assert_eq!(status, 422, "{v}");
        assert!(
            text.starts_with(&format!("transaction.{member}: ")),
            "{text}"
        );
        assert!(text.contains("look Latin"), "{text}");
    }
    let ok = |payee: &str| Transaction::parse("transaction", &with("payee", json!(payee))).is_ok();
    assert!(ok("Ромашка"), "м, ш and к look like no ASCII letter");
    assert!(ok("Ромашка Energy 42"));
    assert!(ok("Zoë Café 東京"));
    assert!(ok("Ελλάδα"), "Greek with an accent");
    assert!(ok("ACME 2026 - Ltd"), "words without letters");
}

trait TapCurrency {
    fn tap_currency(self, c: &str) -> Value;
}

impl TapCurrency for Value {
    fn tap_currency(mut self, c: &str) -> Value {
        self["currency"] = json!(c);
        self
    }
}

/// Vectors computed apart (Python: `json.dumps(t, sort_keys=True,
/// separators=(",", ":"), ensure_ascii=False)`, SHA-256, base64url),
/// which is RFC 8785 for objects of strings.
#[test]
fn the_hash_is_of_the_canonical_json() {
    let t = Transaction::parse("transaction", &example()).unwrap();
    assert_eq!(t.hash(), "nuFyQ-RzngfkNdszl709njVC7fqt9s4kqNkF64DtFtE");
    let v = json!({"payee": "Zoë Café 東京", "currency": "JPY", "amount": "5", "type": "payment"});
    let t = Transaction::parse("transaction", &v).unwrap();
    assert_eq!(t.hash(), "SfAXomp2lrGswghjKucTc9xmFi0TuInc6nzvNVvhNjE");
    let other = Transaction::parse("transaction", &with("amount", json!("120.01"))).unwrap();
    assert_ne!(
        other.hash(),
        Transaction::parse("transaction", &example())
            .unwrap()
            .hash()
    );
}

#[test]
fn authorization_details_follow_rfc_9396() {
    let t = Transaction::parse("transaction", &example()).unwrap();
    assert_eq!(
        t.authorization_details(),
        json!([{"type": "payment_initiation",
                "instructedAmount": {"amount": "120.00", "currency": "EUR"},
                "creditorName": "ACME Energy Ltd",
                "remittanceInformationUnstructured": "INV-2026-42"}])
    );
    let v = with("type", json!("bill_payment"));
    let mut v = v;
    v.as_object_mut().unwrap().remove("reference");
    let t = Transaction::parse("transaction", &v).unwrap();
    assert_eq!(
        t.authorization_details(),
        json!([{"type": "bill_payment",
                "instructedAmount": {"amount": "120.00", "currency": "EUR"},
                "creditorName": "ACME Energy Ltd"}])
    );
}

#[test]
fn approval_claims_last_five_minutes_with_a_fresh_jti() {
    let t = Transaction::parse("transaction", &example()).unwrap();
    let approved = |via: Option<Vec<String>>| Approved {
        issuer: "https://chatgate.example",
        team: "acme",
        customer_ref: Some("cust-42"),
        interaction_id: Uuid::nil(),
        challenge_id: Uuid::nil(),
        transaction: &t,
        via,
        sca: None,
    };
    let now = Timestamp::from_unix_seconds(1_764_064_800);
    let pepper = crate::domain::secrets::Pepper::new("test-pepper");
    let keyed = |b: &[u8]| pepper.keyed_hash("approval-jti", b);
    let jti = |id: u128| approval_jti(keyed, Uuid::from_u128(id));
    let a = ApprovalClaims::new(approved(Some(vec!["sms".into()])), now, jti(1));
    let b = ApprovalClaims::new(approved(None), now, jti(2));
    assert_eq!((a.iat, a.exp), (1_764_064_800, 1_764_065_100));
    assert_eq!(a.amr, vec!["otp"]);
    assert_eq!(b.amr, vec!["app"]);
    assert_ne!(a.jti, b.jti);
    assert_eq!(jti(1), a.jti, "one approval, one jti");
    assert_eq!(hex::decode(&a.jti).unwrap().len(), 16);
    let json = serde_json::to_value(&b).unwrap();
    assert!(json.get("via").is_none());
    assert_eq!(json["txn"], "nuFyQ-RzngfkNdszl709njVC7fqt9s4kqNkF64DtFtE");
    assert_eq!(json["transaction"], example());
    assert!(json.get("sca").is_none());
    // A wallet's approval: no via, its authentication code, factors and
    // issuer.
    let sca = ApprovalSca {
        code: "sca-code-42".into(),
        amr: json!([{"knowledge": "pin_6_or_more_digits"}, {"possession": "key_in_remote_wscd"}]),
        issuer: "CN=Bank SCA Issuer".into(),
    };
    let w = ApprovalClaims::new(
        Approved {
            sca: Some(sca),
            ..approved(None)
        },
        now,
        jti(3),
    );
    assert_eq!(w.amr, vec!["wallet"]);
    let json = serde_json::to_value(&w).unwrap();
    assert!(json.get("via").is_none());
    assert_eq!(
        json["sca"],
        json!({"code": "sca-code-42", "issuer": "CN=Bank SCA Issuer",
               "amr": [{"knowledge": "pin_6_or_more_digits"}, {"possession": "key_in_remote_wscd"}]})
    );
}

#[test]
fn a_ladder_keeps_the_steps_that_show_the_text_and_refuses_none() {
    let steps = vec!["wa_template".to_string(), "sms".into(), "tg_gateway".into()];
    let shows = |c: &str| c == "sms";
    assert_eq!(
        steps_showing(steps, shows).unwrap(),
        vec!["sms".to_string()]
    );
    let none = steps_showing(vec!["tg_gateway".into()], shows).unwrap_err();
    assert!(none.to_string().starts_with("delivery:"), "{none}");
}

fn approval_claims() -> ApprovalClaims {
    let t = Transaction::parse("transaction", &example()).unwrap();
    let approved = Approved {
        issuer: "https://chatgate.example",
        team: "acme",
        customer_ref: Some("cust-42"),
        interaction_id: Uuid::nil(),
        challenge_id: Uuid::nil(),
        transaction: &t,
        via: Some(vec!["sms".into()]),
        sca: None,
    };
    let now = Timestamp::from_unix_seconds(1_764_064_800);
    ApprovalClaims::new(approved, now, "0123456789abcdef0123456789abcdef".into())
}

/// `token`'s claims when a key of `keys`' JWKS (by its `kid`) signed it
/// with EdDSA, for `iss` and `aud` as [`approval_claims`] names them.
fn verified(token: &str, keys: &SigningKeys) -> Option<Value> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::EdDSA {
        return None;
    }
    let kid = header.kid?;
    let jwk = keys.jwks().keys.iter().find(|k| k.kid == kid)?;
    let key = DecodingKey::from_ed_components(&jwk.x).ok()?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.set_issuer(&["https://chatgate.example"]);
    validation.set_audience(&["acme"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

/// The token is EdDSA under `[approvals] signing_key`, its `kid` the key's
/// thumbprint in the JWKS; another key's JWKS does not verify it, and a
/// token HMAC'd with a team's security key is no approval.
#[test]
fn an_approval_token_is_eddsa_under_the_approvals_key_and_verifies_with_its_jwks() {
    use crate::domain::audit_keys::new_signing_key_pem;
    let keys = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[]).unwrap();
    let claims = approval_claims();
    let token = claims.sign(&keys).expect("signed");
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(
        header.kid.as_deref(),
        Some(keys.jwks().keys[0].kid.as_str())
    );
    let back = verified(&token, &keys).expect("verifies with the JWKS");
    assert_eq!(back, serde_json::to_value(&claims).unwrap());
    assert_eq!(
        claims.sign(&keys),
        Some(token.clone()),
        "the same token each ask"
    );
    let other = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[]).unwrap();
    assert_eq!(verified(&token, &other), None);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(keys.jwks().keys[0].kid.clone());
    let hmac = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
    )
    .unwrap();
    assert_eq!(verified(&hmac, &keys), None);
    assert_eq!(claims.sign(&SigningKeys::none()), None);
}

#[test]
fn a_transaction_needs_the_approvals_key() {
    use crate::domain::audit_keys::new_signing_key_pem;
    let t = Transaction::parse("transaction", &example()).unwrap();
    let keys = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[]).unwrap();
    let none = SigningKeys::none();
    assert!(approvals_signed(Some(&t), &keys).is_ok());
    assert!(
        approvals_signed(None, &none).is_ok(),
        "a plain code needs none"
    );
    match approvals_signed(Some(&t), &none) {
        Err(e @ Error::Unprocessable(_)) => {
            assert!(e.to_string().starts_with("transaction: "), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

/// docs/payments.md#the-payee: a payee that reads as a link, a layout or
/// a smudge over a letter is 422 naming it; a name is not.
#[test]
fn a_payee_with_a_link_two_spaces_or_stacked_marks_is_422() {
    for payee in [
        "Bob https://pay.example/x",
        "evil://x",
        "www.acme.example",
        "ACME (WWW.acme.example)",
        "ACME Energy  Ltd",
        "  ACME",
        "Ze\u{301}\u{308}ro",
        "e\u{301}\u{301}",
        "A\u{20DD}\u{20DD}",
        "\u{E17}\u{E35}\u{E48}\u{E48}", // ท with a vowel and two tone marks
    ] {
        let (status, text) = refused(&with("payee", json!(payee)));
        assert_eq!(status, 422, "{payee}");
        assert!(text.starts_with("transaction.payee: "), "{payee}: {text}");
    }
    let ok = |payee: &str| Transaction::parse("transaction", &with("payee", json!(payee))).is_ok();
    assert!(ok("Ze\u{301}ro Energy"), "one accent on a letter");
    assert!(ok("Zoë Café 東京"));
    assert!(
        ok("\u{E17}\u{E35}\u{E48}\u{E14}\u{E34}\u{E19}"),
        "Thai ที่ดิน: a vowel and a tone"
    );
    assert!(
        ok("\u{92E}\u{947}\u{902}"),
        "Hindi में: a vowel sign and an anusvara"
    );
    assert!(ok("Wwwow Ltd"), "www without its dot");
    assert!(ok("ACME: 3/4 Ltd."));
    // A reference follows the same rules.
    let (status, text) = refused(&with("reference", json!("INV  42")));
    assert_eq!(status, 422);
    assert!(text.starts_with("transaction.reference: "), "{text}");
}

/// The payee's word rules (docs/payments.md#the-payee): a member whose
/// value breaks `rule` is 422 naming it, with the rule's words and
/// without the value.
fn refused_for(member: &str, value: &str, rule: &str) {
    let (status, text) = refused(&with(member, json!(value)));
    assert_eq!(status, 422, "{member} {value}");
    assert!(
        text.starts_with(&format!("transaction.{member}: ")),
        "{value}: {text}"
    );
    assert!(text.contains(rule), "{value}: {text}");
    assert!(!text.contains(value), "the value is not echoed: {text}");
}

fn payee_ok(payee: &str) -> bool {
    Transaction::parse("transaction", &with("payee", json!(payee))).is_ok()
}

#[test]
fn a_word_that_is_a_domain_name_is_422_initials_are_not() {
    for payee in [
        "evil.example",
        "EVIL.EXAMPLE",
        "evil.example/pay",
        "Pay evil.example now",
        "pay24.example",
        "ACME (acme.co)",
        "x.ai",
        "Ltd.Energy",
    ] {
        refused_for("payee", payee, "domain name");
    }
    refused_for("reference", "INV evil.example", "domain name");
    assert!(payee_ok("Förderverein e.V."), "initials");
    assert!(payee_ok("ACME U.K. Ltd"));
    assert!(payee_ok("Telefónica S.A."));
    assert!(payee_ok("ACME Energy Ltd."));
    assert!(payee_ok("Dr. Smith"));
    assert!(payee_ok("ACME 1.5 Ltd"), "a number with a dot");
}

#[test]
fn an_e_mail_address_is_422() {
    for payee in ["Mail evil@example.com", "evil@localhost", "Pay bob@acme"] {
        refused_for("payee", payee, "e-mail");
    }
    refused_for("reference", "to bob@acme", "e-mail");
    assert!(payee_ok("ACME @ Home"), "an @ standing alone");
}

#[test]
fn a_run_of_seven_digits_is_422_in_a_payee_not_in_a_reference() {
    for payee in [
        "ACME Energy, call +447400123456",
        "Call 1234567",
        "ACME 740-012-3456",
        "ACME 740 0123 456",
        "ACME 74.00.12.34",
        "ACME \u{0667}\u{0664}\u{0660}\u{0660}\u{0661}\u{0662}\u{0663}",
    ] {
        refused_for("payee", payee, "7 or more digits");
    }
    assert!(payee_ok("ACME 123456 Ltd"), "six digits");
    assert!(payee_ok("ACME 2026 Ltd 123"), "two runs apart");
    let reference = with("reference", json!("INV 2026 000123456"));
    assert!(Transaction::parse("transaction", &reference).is_ok());
}

#[test]
fn a_colon_slash_an_exclamation_or_a_question_is_422() {
    refused_for("payee", "http:/evil.example", ":/");
    refused_for("payee", "ACME:/x", ":/");
    refused_for("reference", "a:/b", ":/");
    for payee in ["ACME Energy!", "Urgent? ACME", "ACME\u{FF01}"] {
        refused_for("payee", payee, "! or ?");
    }
    refused_for("reference", "INV 42?", "! or ?");
    assert!(payee_ok("ACME: 3/4 Ltd."));
}

#[test]
fn a_dot_then_three_or_more_words_is_422() {
    for payee in [
        "Bob. Ignore the amount, it is 1.00 EUR",
        "Bob. Pay me now",
        "ACME. Not the real one",
    ] {
        refused_for("payee", payee, "three or more words");
    }
    refused_for("reference", "INV. see the note", "three or more words");
    assert!(payee_ok("Dr. Smith"));
    assert!(payee_ok("ACME Ltd. Energy Services"));
    assert!(payee_ok("ACME Ltd. & Co KG"), "a sign is no word");
}

#[test]
fn a_reference_follows_the_payee_s_rules() {
    for (reference, rule) in [
        ("https://evil.example", ":/"),
        ("www.evil", "link"),
        ("INV  42", "two spaces"),
        ("e\u{301}\u{301}", "combining marks"),
    ] {
        refused_for("reference", reference, rule);
    }
}

#[test]
fn a_payee_id_is_no_link() {
    for id in [
        "https://evil.example/pay",
        "http://x",
        "www.evil.example",
        "WWW.evil",
    ] {
        refused_for("payee_id", id, "link");
    }
    for id in [
        "DE89370400440532013000",
        "acq:12345/678",
        "merchant.example-1",
    ] {
        let t = with("payee_id", json!(id));
        assert!(Transaction::parse("transaction", &t).is_ok(), "{id}");
    }
}

proptest::proptest! {
    /// A payee of Latin words, one space apart, each with at most one
    /// accent, is accepted; the same with `://`, `!` or `?` put in
    /// anywhere, a space doubled, a second accent on a letter, a domain
    /// name, an e-mail address, a run of seven digits or a sentence after
    /// a dot added, is 422 naming it.
    #[test]
    fn a_name_passes_and_its_link_layout_or_smudge_does_not(
        words in proptest::collection::vec("[A-Za-z]{1,8}", 1..6),
        accents in proptest::collection::vec(proptest::option::of(0x300u32..0x340), 6),
        at in 0usize..64,
        second in 0x300u32..0x340,
    ) {
        let accent = |n: u32| char::from_u32(n).unwrap();
        let name: Vec<String> = words
            .iter()
            .zip(&accents)
            .map(|(w, a)| format!("{w}{}", a.map(accent).map(String::from).unwrap_or_default()))
            .collect();
        let name = name.join(" ");
        let parse = |payee: &str| Transaction::parse("transaction", &with("payee", json!(payee)));
        proptest::prop_assert!(parse(&name).is_ok(), "{:?}", name);
        let n = name.chars().count();
        let cut = name.char_indices().map(|(i, _)| i).nth(at % n).unwrap();
        let doubled = match name.find(' ') {
            Some(i) => format!("{} {}", &name[..i], &name[i..]),
            None => format!("{name}  Ltd"),
        };
        for payee in [
            format!("{}://{}", &name[..cut], &name[cut..]),
            doubled,
            format!("{}{}{} Ltd", words[0], accent(0x301), accent(second)),
            format!("{name} {}.example", words[0]),
            format!("{name} {}@example", words[0]),
            format!("{name} 12 345 67"),
            format!("{}!{}", &name[..cut], &name[cut..]),
            format!("{}?{}", &name[..cut], &name[cut..]),
            format!("{name}. Pay me now"),
        ] {
            let refused = parse(&payee).unwrap_err().to_string();
            proptest::prop_assert!(
                refused.starts_with("transaction.payee: "),
                "{:?}: {}", payee, refused
            );
        }
    }
}
