//! The wallet verifier against presentations, chains and answers made by
//! independent implementations (`tests/fixtures/wallet/generate.mjs`:
//! @sd-jwt/sd-jwt-vc, jose, @peculiar/x509).
use std::collections::BTreeMap;
use std::sync::OnceLock;

use p256::ecdsa::signature::Signer as _;
use proptest::prelude::*;
use serde_json::{json, Value};

use super::disclosures::HashAlg;
use super::issuers::{rfc4514, BadIssuer, TrustedIssuers};
use super::jose::{b64url, to_b64url};
use super::matching::{compare, matches};
use super::request_key::RequestKey;
use super::response::{open, presentations, Unopened};
use super::sd_jwt::{verify, Expected, Invalid, Outcome, Verified};
use crate::time::Timestamp;

fn fixtures() -> &'static Value {
    static F: OnceLock<Value> = OnceLock::new();
    F.get_or_init(|| {
        serde_json::from_str(include_str!("../../../tests/fixtures/wallet/fixtures.json")).unwrap()
    })
}

fn text(path: &str) -> &'static str {
    fixtures().pointer(path).and_then(Value::as_str).unwrap()
}

fn case(name: &str) -> &'static str {
    text(&format!("/cases/{name}"))
}

fn now() -> Timestamp {
    Timestamp::from_unix_seconds(fixtures()["now"].as_i64().unwrap())
}

fn trusted() -> TrustedIssuers {
    TrustedIssuers::from_pems(&[text("/trusted/0")]).unwrap()
}

fn vct() -> Vec<String> {
    vec!["urn:other:2".into(), text("/vct").into()]
}

/// `presentation` verified as the fixtures' request at `at`.
fn verify_at(presentation: &str, trusted: &TrustedIssuers, at: Timestamp) -> Outcome {
    let vct = vct();
    let expected = Expected {
        trusted,
        vct: &vct,
        audience: text("/client_id"),
        nonce: text("/nonce"),
        now: at,
    };
    verify(presentation, &expected)
}

fn outcome(presentation: &str) -> Outcome {
    verify_at(presentation, &trusted(), now())
}

fn verified(presentation: &str) -> Verified {
    match outcome(presentation) {
        Outcome::Verified(v) => v,
        other => panic!("not verified: {other:?}"),
    }
}

fn invalid(presentation: &str) -> Invalid {
    match outcome(presentation) {
        Outcome::InvalidPresentation(i) => i,
        other => panic!("not invalid: {other:?}"),
    }
}

fn untrusted(o: Outcome) -> bool {
    matches!(o, Outcome::UntrustedIssuer)
}

/// `presentation` with its key binding made again by the holder, over
/// what precedes it, with `claims` changed.
fn rebind(presentation: &str, claims: Value) -> String {
    let up_to = &presentation[..=presentation.rfind('~').unwrap()];
    let mut kb = json!({
        "iat": fixtures()["now"].as_i64().unwrap() - 10,
        "aud": text("/client_id"), "nonce": text("/nonce"),
        "sd_hash": HashAlg::Sha256.digest(up_to),
    });
    kb.as_object_mut()
        .unwrap()
        .extend(claims.as_object().unwrap().clone());
    let d = b64url(text("/holder/d")).unwrap();
    let key = p256::ecdsa::SigningKey::from_slice(&d).unwrap();
    let input = format!(
        "{}.{}",
        to_b64url(br#"{"alg":"ES256","typ":"kb+jwt"}"#),
        to_b64url(kb.to_string().as_bytes())
    );
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{up_to}{input}.{}", to_b64url(&sig.to_bytes()))
}

#[test]
fn an_es256_presentation_through_an_intermediate_is_verified_with_its_disclosed_claims() {
    let v = verified(case("es256"));
    let mut claims = v.claims.clone();
    assert_eq!(claims.remove("vct"), Some(json!(text("/vct"))));
    for plain in ["iss", "iat", "nbf", "exp", "cnf"] {
        claims.remove(plain);
    }
    assert_eq!(Value::Object(claims), fixtures()["expected_claims"]);
    assert_eq!(v.issuer, text("/issuer_subject"));
    assert_eq!(v.credential_type, text("/vct"));
}

#[test]
fn es384_eddsa_vc_typ_and_sha384_digests_are_verified() {
    for name in ["es384", "eddsa", "vc_typ", "sha384"] {
        let v = verified(case(name));
        assert_eq!(v.claims["family_name"], "Lovelace", "{name}");
        assert!(!v.claims.contains_key("_sd") && !v.claims.contains_key("_sd_alg"));
    }
}

#[test]
fn an_intermediate_may_be_the_trusted_issuer() {
    let only_intermediate = TrustedIssuers::from_pems(&[text("/intermediate")]).unwrap();
    assert!(matches!(
        verify_at(case("es256"), &only_intermediate, now()),
        Outcome::Verified(_)
    ));
    // The ES384 issuer is the root's, not the intermediate's.
    assert!(untrusted(verify_at(
        case("es384"),
        &only_intermediate,
        now()
    )));
}

#[test]
fn an_issuer_of_another_root_without_x5c_or_outside_its_validity_is_untrusted() {
    assert!(untrusted(outcome(case("untrusted_issuer"))));
    assert!(untrusted(outcome(case("expired_issuer"))));
    assert!(untrusted(outcome(case("no_x5c"))));
    let other = TrustedIssuers::from_pems(&[text("/other_root")]).unwrap();
    assert!(untrusted(verify_at(case("es256"), &other, now())));
    // The leaf is valid through 2026: in 2027 the same presentation's issuer is not.
    let later = Timestamp::from_unix_seconds(1_800_000_000);
    assert!(untrusted(verify_at(case("es256"), &trusted(), later)));
}

#[test]
fn an_unsupported_alg_a_wrong_typ_or_a_bad_signature_is_invalid() {
    assert_eq!(invalid(case("es256_hs256_header")), Invalid::UnsupportedAlg);
    let good = case("es256");
    let (jwt, rest) = good.split_once('~').unwrap();
    let (header, body_sig) = jwt.split_once('.').unwrap();
    let mut h: Value = serde_json::from_slice(&b64url(header).unwrap()).unwrap();
    h["typ"] = json!("JWT");
    let wrong_typ = format!("{}.{body_sig}~{rest}", to_b64url(h.to_string().as_bytes()));
    assert_eq!(invalid(&rebind(&wrong_typ, json!({}))), Invalid::WrongType);
    let (signed, _) = jwt.rsplit_once('.').unwrap();
    let other_sig = case("es384")
        .split('~')
        .next()
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .1;
    let forged = format!("{signed}.{other_sig}~{rest}");
    assert_eq!(invalid(&rebind(&forged, json!({}))), Invalid::BadSignature);
}

#[test]
fn a_tampered_disclosure_is_refused_by_sd_hash_and_by_its_digest() {
    let good = case("es256");
    let parts: Vec<&str> = good.split('~').collect();
    let disclosure: Value = serde_json::from_slice(&b64url(parts[2]).unwrap()).unwrap();
    assert_eq!(disclosure[1], "family_name");
    let mut changed = disclosure.clone();
    changed[2] = json!("Byron");
    let changed = to_b64url(changed.to_string().as_bytes());
    let mut tampered = parts.clone();
    tampered[2] = &changed;
    let tampered = tampered.join("~");
    assert_eq!(invalid(&tampered), Invalid::WrongSdHash);
    assert_eq!(
        invalid(&rebind(&tampered, json!({}))),
        Invalid::UnreferencedDisclosure
    );
}

#[test]
fn a_digest_or_a_disclosure_twice_or_a_foreign_disclosure_is_invalid() {
    assert_eq!(invalid(case("digest_twice")), Invalid::DigestTwice);
    assert_eq!(invalid(case("disclosure_twice")), Invalid::DigestTwice);
    assert_eq!(
        invalid(case("unreferenced_disclosure")),
        Invalid::UnreferencedDisclosure
    );
}

#[test]
fn fewer_disclosures_disclose_fewer_claims() {
    let good = case("es256");
    let parts: Vec<&str> = good.split('~').collect();
    let first_and_kb_gone = [&parts[..1], &parts[2..parts.len() - 1], &[""]]
        .concat()
        .join("~");
    let v = verified(&rebind(&first_and_kb_gone, json!({})));
    assert!(!v.claims.contains_key("given_name"));
    assert_eq!(v.claims["family_name"], "Lovelace");
}

#[test]
fn the_credentials_vct_and_times_are_checked() {
    assert_eq!(invalid(case("vct_not_accepted")), Invalid::VctNotAccepted);
    assert_eq!(invalid(case("expired_credential")), Invalid::Expired);
    assert_eq!(invalid(case("not_yet_valid")), Invalid::NotYetValid);
}

#[test]
fn the_key_binding_must_be_for_this_request_recent_and_over_this_presentation() {
    assert_eq!(invalid(case("wrong_nonce")), Invalid::WrongNonce);
    assert_eq!(invalid(case("wrong_aud")), Invalid::WrongAudience);
    assert_eq!(invalid(case("stale_kb")), Invalid::StaleKeyBinding);
    assert_eq!(invalid(case("kb_in_future")), Invalid::StaleKeyBinding);
    assert_eq!(invalid(case("wrong_sd_hash")), Invalid::WrongSdHash);
    assert_eq!(invalid(case("no_kb")), Invalid::NoKeyBinding);
    let vct = vct();
    let other_nonce = Expected {
        trusted: &trusted(),
        vct: &vct,
        audience: text("/client_id"),
        nonce: "n-another",
        now: now(),
    };
    assert!(matches!(
        verify(case("es256"), &other_nonce),
        Outcome::InvalidPresentation(Invalid::WrongNonce)
    ));
    let kb_typ = rebind(case("es256"), json!({}));
    let (up_to, kb) = kb_typ.rsplit_once('~').unwrap();
    let (_, rest) = kb.split_once('.').unwrap();
    let jwt_typ = format!(
        "{up_to}~{}.{rest}",
        to_b64url(br#"{"alg":"ES256","typ":"JWT"}"#)
    );
    assert_eq!(invalid(&jwt_typ), Invalid::WrongType);
}

#[test]
fn a_key_binding_is_fresh_for_exactly_five_minutes() {
    // Bound 10 s before the fixtures' now: 290 s later it is 300 s old.
    let at = |s: i64| Timestamp::from_unix_seconds(fixtures()["now"].as_i64().unwrap() + s);
    assert!(matches!(
        verify_at(case("es256"), &trusted(), at(290)),
        Outcome::Verified(_)
    ));
    assert!(matches!(
        verify_at(case("es256"), &trusted(), at(291)),
        Outcome::InvalidPresentation(Invalid::StaleKeyBinding)
    ));
}

#[test]
fn a_key_binding_may_be_at_most_sixty_seconds_ahead() {
    // Bound 10 s before the fixtures' now: 70 s earlier its `iat` is 60 s
    // ahead of the clock, a second more 61 s.
    let at = |s: i64| Timestamp::from_unix_seconds(fixtures()["now"].as_i64().unwrap() + s);
    assert!(matches!(
        verify_at(case("es256"), &trusted(), at(-70)),
        Outcome::Verified(_)
    ));
    assert!(matches!(
        verify_at(case("es256"), &trusted(), at(-71)),
        Outcome::InvalidPresentation(Invalid::StaleKeyBinding)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_byte_changed_in_a_presentation_never_verifies(i in any::<prop::sample::Index>(), b in 0x21u8..0x7f) {
        let good = case("es256");
        let at = i.index(good.len());
        prop_assume!(good.as_bytes()[at] != b);
        let mut bytes = good.as_bytes().to_vec();
        bytes[at] = b;
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert!(!matches!(outcome(&changed), Outcome::Verified(_)));
    }
}

#[test]
fn trusted_issuers_are_one_certificate_each_and_at_least_one() {
    let none: [&str; 0] = [];
    assert_eq!(
        TrustedIssuers::from_pems(&none).unwrap_err(),
        BadIssuer::None
    );
    assert_eq!(
        TrustedIssuers::from_pems(&["not a certificate"]).unwrap_err(),
        BadIssuer::NotOneCertificate
    );
    let two = format!("{}{}", text("/trusted/0"), text("/other_root"));
    assert_eq!(
        TrustedIssuers::from_pems(&[two]).unwrap_err(),
        BadIssuer::NotOneCertificate
    );
}

#[test]
fn a_subject_is_written_as_rfc_4514_says() {
    // SET { SEQUENCE { OID 2.5.4.6, PrintableString "DE" } },
    // SET { SEQUENCE { OID 2.5.4.3, UTF8String " a+b#" } }, then an unknown OID with an integer.
    let name = [
        &[
            0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, b'D', b'E',
        ][..],
        &[
            0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b' ', b'a', b'+',
            b'b', b' ',
        ],
        &[
            0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x2a, 0x03, 0x04, 0x02, 0x01, 0x07,
        ],
    ]
    .concat();
    assert_eq!(rfc4514(&name).unwrap(), r"1.2.3.4=#020107,CN=\ a\+b\ ,C=DE");
    assert!(rfc4514(&[0x31, 0x05, 0x30]).is_none());
}

#[test]
fn claims_match_after_nfc_trimming_and_full_case_folding() {
    assert!(matches("STRASSE", &json!("straße")));
    assert!(matches("ß", &json!("SS")));
    assert!(matches(" Lovelace ", &json!("LOVELACE")));
    assert!(matches("Ame\u{301}lie", &json!("Amélie")));
    assert!(!matches("Lovelace", &json!("Byron")));
    assert!(!matches("", &json!("")));
}

#[test]
fn dates_and_numbers_compare_exactly_and_structures_never_match() {
    assert!(matches("1815-12-10", &json!("1815-12-10")));
    assert!(!matches("1815-12-10", &json!("1815-12-11")));
    assert!(matches("210", &json!(210)));
    assert!(!matches("210", &json!(211)));
    assert!(!matches("two hundred", &json!(210)));
    assert!(matches("1.5", &json!(1.5)));
    assert!(matches("true", &json!(true)));
    assert!(!matches("true", &json!(false)));
    assert!(!matches("GB", &json!(["GB"])));
    assert!(!matches("London", &json!({"locality": "London"})));
}

#[test]
fn every_asked_claim_must_match_and_unasked_ones_are_ignored() {
    let v = verified(case("es256"));
    let asked = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let all = compare(
        &asked(&[("family_name", "LOVELACE"), ("birthdate", "1815-12-10")]),
        &v.claims,
    );
    assert!(all.all);
    assert_eq!(all.matched, ["birthdate", "family_name"]);
    let one = compare(
        &asked(&[("family_name", "Lovelace"), ("birthdate", "1815-12-11")]),
        &v.claims,
    );
    assert_eq!(
        (one.all, one.matched),
        (false, vec!["family_name".to_string()])
    );
    let absent = compare(&asked(&[("place_of_birth", "London")]), &v.claims);
    assert!(!absent.all && absent.matched.is_empty());
}

fn request_key() -> RequestKey {
    RequestKey::from_scalar(&b64url(text("/request_key/d")).unwrap()).unwrap()
}

#[test]
fn the_request_key_is_named_by_its_rfc_7638_thumbprint() {
    let key = request_key();
    assert_eq!(key.kid(), text("/request_key/thumbprint"));
    let jwk = key.public_jwk();
    assert_eq!(jwk["x"], text("/request_key/x"));
    assert_eq!(jwk["y"], text("/request_key/y"));
    assert_eq!(
        (jwk["use"].as_str(), jwk["alg"].as_str()),
        (Some("enc"), Some("ECDH-ES"))
    );
    let fresh = RequestKey::generate(&mut rand::rngs::OsRng);
    assert_eq!(fresh.public_jwk()["kid"], fresh.kid());
    assert_eq!(
        RequestKey::from_scalar(&fresh.scalar()).unwrap().kid(),
        fresh.kid()
    );
    assert_ne!(fresh.kid(), key.kid());
    assert!(!format!("{fresh:?}").contains(&to_b64url(&fresh.scalar())));
}

#[test]
fn an_answer_in_a128gcm_or_a256gcm_with_apu_and_apv_opens() {
    for name in ["a128gcm", "a256gcm_apu_apv"] {
        let answer = open(text(&format!("/jwes/{name}")), &request_key()).unwrap();
        assert_eq!(
            Value::Object(answer.clone()),
            fixtures()["response"],
            "{name}"
        );
        assert_eq!(
            presentations(&answer, &["pid"]).unwrap(),
            ("pid", vec![case("es256")])
        );
        assert_eq!(presentations(&answer, &["mdl", "pid"]).unwrap().0, "pid");
        assert_eq!(
            presentations(&answer, &["mdl"]).unwrap_err(),
            Unopened::NotAsked
        );
    }
}

#[test]
fn an_answer_presents_exactly_one_of_the_credentials_asked() {
    let mut answer = open(text("/jwes/a128gcm"), &request_key()).unwrap();
    let token = answer["vp_token"]["pid"].clone();
    answer["vp_token"]
        .as_object_mut()
        .unwrap()
        .insert("mdl".into(), token);
    assert_eq!(
        presentations(&answer, &["pid", "mdl"]).unwrap_err(),
        Unopened::MoreThanOne
    );
    answer.insert("vp_token".into(), json!({}));
    assert_eq!(
        presentations(&answer, &["pid"]).unwrap_err(),
        Unopened::NoPresentation
    );
}

#[test]
fn an_answer_for_another_key_another_enc_or_changed_does_not_open() {
    let key = request_key();
    assert_eq!(
        open(text("/jwes/other_key"), &key).unwrap_err(),
        Unopened::Undecryptable
    );
    assert_eq!(
        open(text("/jwes/a192gcm"), &key).unwrap_err(),
        Unopened::UnsupportedAlg
    );
    let fresh = RequestKey::generate(&mut rand::rngs::OsRng);
    assert_eq!(
        open(text("/jwes/a128gcm"), &fresh).unwrap_err(),
        Unopened::OtherKey
    );
    let good = text("/jwes/a128gcm");
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut ciphertext = b64url(&parts[3]).unwrap();
    ciphertext[0] ^= 1;
    parts[3] = to_b64url(&ciphertext);
    assert_eq!(
        open(&parts.join("."), &key).unwrap_err(),
        Unopened::Undecryptable
    );
    assert_eq!(open("a.b.c", &key).unwrap_err(), Unopened::Malformed);
}

mod request_object {
    use p256::pkcs8::DecodePrivateKey as _;
    use serde_json::json;

    use super::super::issuers::rfc4514;
    use super::super::jose::{Jws, PublicKey};
    use super::super::request::{sign, Credential, Mode, Request, Signer, AUDIENCE};
    use super::super::request_key::RequestKey;
    use super::super::Format;
    use super::now;

    fn signer() -> Signer {
        let made = rcgen::generate_simple_self_signed(vec!["chatgate.example".into()]).unwrap();
        Signer {
            key: p256::ecdsa::SigningKey::from_pkcs8_der(&made.key_pair.serialize_der()).unwrap(),
            chain: vec![made.cert.der().to_vec()],
        }
    }

    fn request<'a>(
        mode: Mode<'a>,
        credentials: &'a [Credential<'a>],
        key: &'a RequestKey,
    ) -> Request<'a> {
        Request {
            client_id: "x509_san_dns:chatgate.example",
            mode,
            state: "st-1",
            nonce: "n-1",
            credentials,
            key,
            wallet_nonce: None,
            registration: None,
            transaction_data: None,
            now: now(),
        }
    }

    #[test]
    fn a_direct_post_request_is_signed_by_the_access_certificate_and_asks_only_the_match_claims() {
        let (signer, key) = (signer(), RequestKey::generate(&mut rand::rngs::OsRng));
        let (vct, claims) = (
            vec!["urn:eudi:pid:1".to_string()],
            vec!["family_name".to_string(), "birthdate".to_string()],
        );
        let mode = Mode::DirectPost {
            response_uri: "https://chatgate.example/w/response",
        };
        let pid = [Credential {
            id: "pid",
            format: Format::SdJwt,
            vct: &vct,
            doctype: "",
            namespace: "",
            claims: claims.iter().map(String::as_str).collect(),
            authorities: &[],
        }];
        let mut req = request(mode, &pid, &key);
        req.wallet_nonce = Some("wn-1");
        let token = sign(&req, &signer);
        let jws = Jws::split(&token).unwrap();
        assert_eq!(jws.header["typ"], "oauth-authz-req+jwt");
        assert_eq!(jws.header["alg"], "ES256");
        let leaf = super::super::jose::b64(jws.header["x5c"][0].as_str().unwrap()).unwrap();
        assert_eq!(leaf, signer.chain[0]);
        let cert = rustls_pki_types::CertificateDer::from(leaf.as_slice());
        let cert = webpki::EndEntityCert::try_from(&cert).unwrap();
        let public = PublicKey::from_spki(cert.subject_public_key_info().as_ref()).unwrap();
        assert!(jws.signed_by(&public));
        assert!(rfc4514(cert.subject()).is_some());
        let c = &jws.claims;
        assert_eq!(
            (c["iss"].as_str(), c["client_id"].as_str()),
            (
                Some("x509_san_dns:chatgate.example"),
                Some("x509_san_dns:chatgate.example")
            )
        );
        assert_eq!(c["aud"], AUDIENCE);
        assert_eq!(c["response_type"], "vp_token");
        assert_eq!(c["response_mode"], "direct_post.jwt");
        assert_eq!(c["response_uri"], "https://chatgate.example/w/response");
        assert_eq!(
            (
                c["state"].as_str(),
                c["nonce"].as_str(),
                c["wallet_nonce"].as_str()
            ),
            (Some("st-1"), Some("n-1"), Some("wn-1"))
        );
        assert_eq!(
            c["dcql_query"],
            json!({"credentials": [{
                "id": "pid", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:eudi:pid:1"]},
                "claims": [{"path": ["family_name"]}, {"path": ["birthdate"]}],
            }]})
        );
        assert_eq!(
            c["client_metadata"]["jwks"]["keys"],
            json!([key.public_jwk()])
        );
        assert_eq!(
            c["client_metadata"]["encrypted_response_enc_values_supported"],
            json!(["A128GCM", "A256GCM"])
        );
        assert!(
            c["client_metadata"]["vp_formats_supported"]["dc+sd-jwt"]["kb-jwt_alg_values"]
                .is_array()
        );
        assert_eq!(c["iat"].as_i64(), Some(now().unix_seconds()));
        assert_eq!(c["exp"].as_i64(), Some(now().unix_seconds() + 300));
        assert!(!c.contains_key("expected_origins"));
    }

    #[test]
    fn a_dc_api_request_names_its_origins_and_no_response_uri_and_an_mdoc_query_its_namespace() {
        let (signer, key) = (signer(), RequestKey::generate(&mut rand::rngs::OsRng));
        let (origins, claims) = (
            vec!["https://chatgate.example".to_string()],
            vec!["family_name".to_string()],
        );
        let mdoc = [Credential {
            id: "mdl",
            format: Format::Mdoc,
            vct: &[],
            doctype: "org.iso.18013.5.1.mDL",
            namespace: "org.iso.18013.5.1",
            claims: claims.iter().map(String::as_str).collect(),
            authorities: &[],
        }];
        let req = request(
            Mode::DcApi {
                expected_origins: &origins,
            },
            &mdoc,
            &key,
        );
        let token = sign(&req, &signer);
        let c = Jws::split(&token).unwrap().claims;
        assert_eq!(c["response_mode"], "dc_api.jwt");
        assert_eq!(c["expected_origins"], json!(["https://chatgate.example"]));
        assert!(!c.contains_key("response_uri") && !c.contains_key("wallet_nonce"));
        assert_eq!(
            c["dcql_query"]["credentials"][0],
            json!({
                "id": "mdl", "format": "mso_mdoc", "meta": {"doctype_value": "org.iso.18013.5.1.mDL"},
                "claims": [{"path": ["org.iso.18013.5.1", "family_name"]}],
            })
        );
        let mdoc = &c["client_metadata"]["vp_formats_supported"]["mso_mdoc"];
        assert_eq!(mdoc["deviceauth_alg_values"], json!([-7]));
        assert_eq!(mdoc["issuerauth_alg_values"], json!([-7, -35, -8]));
    }

    #[test]
    fn two_credentials_are_asked_as_one_set_each_with_its_authorities_and_the_registration_travels()
    {
        let (signer, key) = (signer(), RequestKey::generate(&mut rand::rngs::OsRng));
        let (vct, aki) = (
            vec!["urn:eudi:pid:1".to_string()],
            vec!["PGZDRxwMPAeXpXu-xoeTzs12-hA".to_string()],
        );
        let asked = [
            Credential {
                id: "pid_sd",
                format: Format::SdJwt,
                vct: &vct,
                doctype: "",
                namespace: "",
                claims: vec!["birthdate"],
                authorities: &aki,
            },
            Credential {
                id: "pid_mdoc",
                format: Format::Mdoc,
                vct: &[],
                doctype: "eu.europa.ec.eudi.pid.1",
                namespace: "eu.europa.ec.eudi.pid.1",
                claims: vec!["birth_date"],
                authorities: &[],
            },
        ];
        let mode = Mode::DirectPost {
            response_uri: "https://chatgate.example/w/response",
        };
        let mut req = request(mode, &asked, &key);
        req.registration = Some("eyJ0eXAiOiJyYy13cnArand0In0.e30.c2ln");
        let c = Jws::split(&sign(&req, &signer)).unwrap().claims;
        assert_eq!(
            c["dcql_query"],
            json!({
                "credentials": [
                    {"id": "pid_sd", "format": "dc+sd-jwt", "meta": {"vct_values": ["urn:eudi:pid:1"]},
                     "claims": [{"path": ["birthdate"]}],
                     "trusted_authorities": [{"type": "aki", "values": ["PGZDRxwMPAeXpXu-xoeTzs12-hA"]}]},
                    {"id": "pid_mdoc", "format": "mso_mdoc", "meta": {"doctype_value": "eu.europa.ec.eudi.pid.1"},
                     "claims": [{"path": ["eu.europa.ec.eudi.pid.1", "birth_date"]}]},
                ],
                "credential_sets": [{"options": [["pid_sd"], ["pid_mdoc"]]}],
            })
        );
        let formats = &c["client_metadata"]["vp_formats_supported"];
        assert!(formats["dc+sd-jwt"].is_object() && formats["mso_mdoc"].is_object());
        assert_eq!(
            c["verifier_info"],
            json!([{"format": "registration_cert", "data": "eyJ0eXAiOiJyYy13cnArand0In0.e30.c2ln"}])
        );
    }

    #[test]
    fn a_credential_that_compares_no_claim_is_asked_without_claims_and_with_its_payment() {
        let (signer, key) = (signer(), RequestKey::generate(&mut rand::rngs::OsRng));
        let vct = vec!["https://bank.example/sca/1".to_string()];
        let sca = [Credential {
            id: "sca",
            format: Format::SdJwt,
            vct: &vct,
            doctype: "",
            namespace: "",
            claims: Vec::new(),
            authorities: &[],
        }];
        let mode = Mode::DirectPost {
            response_uri: "https://chatgate.example/w/response",
        };
        let mut req = request(mode, &sca, &key);
        req.transaction_data = Some("eyJ0eXBlIjoidXJuOmV1ZGk6c2NhOnBheW1lbnQ6MSJ9");
        let c = Jws::split(&sign(&req, &signer)).unwrap().claims;
        // DCQL's `claims` is a non-empty array when present.
        assert_eq!(
            c["dcql_query"],
            json!({"credentials": [{
                "id": "sca", "format": "dc+sd-jwt",
                "meta": {"vct_values": ["https://bank.example/sca/1"]},
            }]})
        );
        assert_eq!(
            c["transaction_data"],
            json!(["eyJ0eXBlIjoidXJuOmV1ZGk6c2NhOnBheW1lbnQ6MSJ9"])
        );
    }
}

mod disclosing {
    use serde_json::{json, Value};

    use super::super::disclosures::{disclose, HashAlg};
    use super::super::invalid::Invalid;
    use super::super::jose::{to_b64url, Object};

    fn disclosure(array: Value) -> String {
        to_b64url(array.to_string().as_bytes())
    }

    fn payload(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_registered_claim_may_not_be_disclosed_at_the_top_but_may_be_deeper() {
        let exp = disclosure(json!(["s1", "exp", 1]));
        let top = payload(json!({"_sd": [HashAlg::Sha256.digest(&exp)]}));
        assert_eq!(
            disclose(top, &[&exp], HashAlg::Sha256).unwrap_err(),
            Invalid::ProtectedClaimDisclosed
        );
        let deep = payload(json!({"trip": {"_sd": [HashAlg::Sha256.digest(&exp)]}}));
        let out = disclose(deep, &[&exp], HashAlg::Sha256).unwrap();
        assert_eq!(Value::Object(out), json!({"trip": {"exp": 1}}));
    }

    #[test]
    fn a_disclosed_name_already_present_or_of_the_wrong_shape_is_refused() {
        let name = disclosure(json!(["s1", "name", "B"]));
        let clash = payload(json!({"name": "A", "_sd": [HashAlg::Sha256.digest(&name)]}));
        assert_eq!(
            disclose(clash, &[&name], HashAlg::Sha256).unwrap_err(),
            Invalid::BadDisclosure
        );
        let element = disclosure(json!(["s2", "GB"]));
        let in_object = payload(json!({"_sd": [HashAlg::Sha256.digest(&element)]}));
        assert_eq!(
            disclose(in_object, &[&element], HashAlg::Sha256).unwrap_err(),
            Invalid::BadDisclosure
        );
        let in_array = payload(json!({"list": [{"...": HashAlg::Sha256.digest(&name)}]}));
        assert_eq!(
            disclose(in_array, &[&name], HashAlg::Sha256).unwrap_err(),
            Invalid::BadDisclosure
        );
        let sd = disclosure(json!(["s3", "_sd", []]));
        assert_eq!(
            disclose(Object::new(), &[&sd], HashAlg::Sha256).unwrap_err(),
            Invalid::BadDisclosure
        );
    }

    #[test]
    fn decoys_are_dropped_and_nested_disclosures_put_back() {
        let street = disclosure(json!(["s1", "street", "Main"]));
        let address = disclosure(
            json!(["s2", "address", {"_sd": [HashAlg::Sha256.digest(&street), "decoy"]}]),
        );
        let claims = payload(
            json!({"_sd": [HashAlg::Sha256.digest(&address), "decoy2"], "_sd_alg": "sha-256"}),
        );
        let out = disclose(claims, &[&address, &street], HashAlg::Sha256).unwrap();
        assert_eq!(Value::Object(out), json!({"address": {"street": "Main"}}));
    }
}

#[test]
fn a_jwk_with_coordinates_of_the_wrong_lengths_is_no_key() {
    use super::jose::PublicKey;
    let holder = verified(case("es256")).claims["cnf"]["jwk"].clone();
    let good = holder.as_object().unwrap();
    assert!(PublicKey::from_jwk(good).is_some());
    let (x, y) = (
        b64url(good["x"].as_str().unwrap()).unwrap(),
        b64url(good["y"].as_str().unwrap()).unwrap(),
    );
    let mut shifted = good.clone();
    shifted.insert("x".into(), json!(to_b64url(&x[..31])));
    shifted.insert("y".into(), json!(to_b64url(&[&x[31..], &y[..]].concat())));
    assert!(PublicKey::from_jwk(&shifted).is_none());
    let mut p384 = good.clone();
    p384.insert("crv".into(), json!("P-384"));
    assert!(PublicKey::from_jwk(&p384).is_none());
}

#[test]
fn a_jws_with_a_critical_header_is_malformed() {
    let good = case("es256");
    let (jwt, rest) = good.split_once('~').unwrap();
    let (header, body_sig) = jwt.split_once('.').unwrap();
    let mut h: Value = serde_json::from_slice(&b64url(header).unwrap()).unwrap();
    h["crit"] = json!(["exp"]);
    let crit = format!("{}.{body_sig}~{rest}", to_b64url(h.to_string().as_bytes()));
    assert_eq!(invalid(&rebind(&crit, json!({}))), Invalid::Malformed);
}

mod mdoc;
mod status_list;
