use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::domain::challenge::{Challenge, Delivery};
use crate::domain::wallet::jose::to_b64url;
use crate::domain::wallet_state::KeyRegistration;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000 + s)
}

/// A compact JWE's five parts, its protected header `header`.
fn jwe(header: &Value) -> String {
    format!("{}.k.iv.ct.tag", to_b64url(header.to_string().as_bytes()))
}

#[test]
fn the_kid_is_read_from_the_protected_header_and_none_is_refused() {
    let header = json!({"alg": "ECDH-ES", "enc": "A128GCM", "kid": "key-1"});
    assert_eq!(kid_of(&jwe(&header)), Ok("key-1".to_string()));
    assert_eq!(kid_of("!!.a.b.c.d"), Err("not a compact JWE"));
    assert_eq!(kid_of(""), Err("not a compact JWE"));
    let without = "a JWE without the request key's kid";
    assert_eq!(kid_of(&jwe(&json!({"alg": "ECDH-ES"}))), Err(without));
    assert_eq!(kid_of(&jwe(&json!({"kid": ""}))), Err(without));
    assert_eq!(kid_of(&jwe(&json!({"kid": 7}))), Err(without));
    let long = "k".repeat(129);
    assert_eq!(kid_of(&jwe(&json!({ "kid": long }))), Err(without));
    let longest = "k".repeat(128);
    assert_eq!(kid_of(&jwe(&json!({ "kid": longest }))), Ok(longest));
}

#[test]
fn a_refused_presentation_keeps_its_result_and_issuer_alone() {
    let a = refused(WalletResult::Revoked, Some("CN=Issuer".into()), t(5));
    assert_eq!(a.result, WalletResult::Revoked);
    assert_eq!(a.issuer.as_deref(), Some("CN=Issuer"));
    assert!(a.matched.is_empty() && a.claims.is_empty() && a.sca.is_none());
    assert_eq!(a.answered_at, t(5));
}

/// What the bank expects: a family name and a birth date.
fn asked() -> BTreeMap<String, String> {
    [
        ("family_name".to_string(), "Lovelace".to_string()),
        ("birth_date".to_string(), "1815-12-10".to_string()),
    ]
    .into()
}

/// The credential's own name of a claim a `match` names.
fn own(name: &str) -> Option<&'static str> {
    match name {
        "family_name" => Some("last_name"),
        "birth_date" => Some("birthdate"),
        _ => None,
    }
}

#[test]
fn claims_are_read_by_the_credential_s_own_names_and_kept_by_the_match_names_alone() {
    let claims = json!({"last_name": "Lovelace", "birthdate": "1815-12-10", "email": "a@b.c"});
    let claims = claims.as_object().cloned().unwrap_or_default();
    let a = compared(&asked(), own, &claims, (Some("CN=I".into()), t(3)));
    assert_eq!(a.result, WalletResult::Verified);
    assert_eq!(a.matched, ["birth_date", "family_name"]);
    let kept: Vec<&String> = a.claims.keys().collect();
    assert_eq!(kept, ["birth_date", "family_name"], "no claim not asked");
    assert_eq!(a.claims["family_name"], Value::from("Lovelace"));
    assert_eq!((a.issuer.as_deref(), a.answered_at), (Some("CN=I"), t(3)));
}

#[test]
fn a_claim_that_differs_or_is_missing_is_a_mismatch() {
    let claims = json!({"last_name": "Byron", "family_name": "Lovelace"});
    let claims = claims.as_object().cloned().unwrap_or_default();
    let a = compared(&asked(), own, &claims, (None, t(3)));
    assert_eq!(a.result, WalletResult::ClaimsMismatch);
    assert!(a.matched.is_empty());
    // Read by the credential's own name only, as disclosed.
    assert_eq!(a.claims.len(), 1);
    assert_eq!(a.claims["family_name"], Value::from("Byron"));
    let none = compared(&asked(), |_| None, &claims, (None, t(3)));
    assert_eq!(none.result, WalletResult::ClaimsMismatch);
    assert!(none.claims.is_empty());
}

fn challenge(register: Option<bool>, data: Option<&str>) -> WalletChallenge {
    let mut w = WalletChallenge::asking("pid".into(), Format::SdJwt, BTreeMap::new());
    w.registration = register.map(|register| KeyRegistration {
        register,
        thumbprint: None,
    });
    w.transaction_data = data.map(str::to_string);
    w
}

#[test]
fn a_registration_approves_no_payment_and_a_plain_identity_none_either() {
    let kb = Object::new();
    let registering = challenge(Some(true), None);
    assert_eq!(paying(&registering, true, &kb, true), Ok(None));
    assert_eq!(
        paying(&registering, false, &kb, true),
        Err(Invalid::NotAPayment)
    );
    let with_data = challenge(Some(true), Some("data"));
    assert_eq!(
        paying(&with_data, true, &kb, false),
        Err(Invalid::NotAPayment)
    );
    // Neither an sca credential nor a payment: nothing to approve.
    assert_eq!(paying(&challenge(None, None), false, &kb, true), Ok(None));
    // A payment whose key binding carries no hashes is refused.
    let paid = challenge(Some(false), Some("data"));
    assert!(paying(&paid, true, &kb, true).is_err());
}

#[test]
fn an_answer_names_the_mode_it_came_by_and_nothing_verifies_a_presentation_that_is_none() {
    let trusted = TrustedIssuers::default();
    let vct = ["urn:eudi:pid:1".to_string()];
    let direct = Came::Direct {
        client_id: "x509_hash:abc",
        response_uri: "https://gw.example/w/response",
    };
    let page = Came::DcApi {
        origin: "https://gw.example",
    };
    assert!(direct.direct() && !page.direct());
    for format in [Format::SdJwt, Format::Mdoc] {
        for came in [direct, page] {
            let expected = Expected {
                asked: Asked {
                    format,
                    vct: &vct,
                    doctype: "org.iso.18013.5.1.mDL",
                    namespace: "org.iso.18013.5.1",
                },
                trusted: &trusted,
                nonce: "n",
                jwk_thumbprint: "thumb",
                came,
            };
            let outcome = verify("not a presentation", &expected, t(0));
            assert!(
                matches!(outcome, Outcome::InvalidPresentation(_)),
                "{format:?} {came:?}: {outcome:?}"
            );
        }
    }
}

/// An interaction whose open wallet challenge registers its key.
fn registering() -> (InteractionRecord, Uuid) {
    let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
    let cid = Uuid::now_v7();
    let w = challenge(Some(true), None);
    let ttl = Duration::from_secs(300);
    let c = Challenge::new_wallet(cid, Delivery::Chat, ttl, false, w, t(1));
    r.open_new_challenge(c, t(1));
    (r, cid)
}

fn thumbprint_kept(r: &InteractionRecord) -> Option<String> {
    let w = r.challenge.as_ref()?.proof.wallet()?;
    w.registration.as_ref()?.thumbprint.clone()
}

#[test]
fn a_verified_holder_key_is_kept_and_a_payment_s_unregistered_key_names_the_failure() {
    let (mut r, cid) = registering();
    let mut ending = Ending::AwaitingCode;
    held_by(
        &mut r,
        Uuid::now_v7(),
        &mut ending,
        (Some("tp".into()), false),
    );
    assert_eq!(thumbprint_kept(&r), None, "another challenge's: not kept");
    held_by(&mut r, cid, &mut ending, (Some("tp".into()), false));
    assert_eq!(thumbprint_kept(&r).as_deref(), Some("tp"));
    assert_eq!(ending, Ending::AwaitingCode);

    let failed = |reason| Ending::Failed {
        reason,
        failure: None,
    };
    let mut ending = failed("claims_mismatch");
    held_by(&mut r, cid, &mut ending, (None, true));
    assert_eq!(ending, failed(registration::NOT_REGISTERED));
    let mut ending = failed("claims_mismatch");
    held_by(&mut r, cid, &mut ending, (None, false));
    assert_eq!(ending, failed("claims_mismatch"));
    let mut open = Ending::Open;
    held_by(&mut r, cid, &mut open, (Some("other".into()), true));
    assert_eq!(
        (open, thumbprint_kept(&r).as_deref()),
        (Ending::Open, Some("tp"))
    );
}
