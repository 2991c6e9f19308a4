//! The mdoc verifier against DeviceResponses issued and presented by
//! @owf/mdoc (`tests/fixtures/wallet/generate.mjs`), for a wallet's
//! redirect and for the Digital Credentials API.
use std::collections::BTreeMap;

use ciborium::Value as Cbor;
use serde_json::{json, Value};

use super::super::issuers::TrustedIssuers;
use super::super::jose::{b64url, to_b64url};
use super::super::matching::compare;
use super::super::mdoc::{verify, Expected, Handover, Invalid, Outcome, Verified};
use super::super::status_list::StatusRef;
use super::{fixtures, now, text, trusted};
use crate::time::Timestamp;

const MDL: &str = "org.iso.18013.5.1.mDL";
const NS: &str = "org.iso.18013.5.1";

fn case(name: &str) -> &'static str {
    text(&format!("/mdoc/cases/{name}"))
}

fn thumbprint() -> &'static str {
    text("/request_key/thumbprint")
}

fn redirect() -> Handover<'static> {
    Handover::Redirect {
        client_id: text("/client_id"),
        nonce: text("/nonce"),
        jwk_thumbprint: Some(thumbprint()),
        response_uri: text("/mdoc/response_uri"),
    }
}

fn dc_api() -> Handover<'static> {
    Handover::DcApi {
        origin: text("/mdoc/origin"),
        nonce: text("/nonce"),
        jwk_thumbprint: Some(thumbprint()),
    }
}

fn check(
    response: &str,
    handover: Handover<'_>,
    trusted: &TrustedIssuers,
    at: Timestamp,
) -> Outcome {
    verify(
        response,
        &Expected {
            trusted,
            doctype: MDL,
            namespace: NS,
            handover,
            now: at,
        },
    )
}

fn outcome(response: &str) -> Outcome {
    check(response, redirect(), &trusted(), now())
}

fn verified(response: &str, handover: Handover<'_>) -> Verified {
    match check(response, handover, &trusted(), now()) {
        Outcome::Verified(v) => v,
        other => panic!("not verified: {other:?}"),
    }
}

fn invalid_with(response: &str, handover: Handover<'_>) -> Invalid {
    match check(response, handover, &trusted(), now()) {
        Outcome::InvalidPresentation(i) => i,
        other => panic!("not invalid: {other:?}"),
    }
}

fn invalid(response: &str) -> Invalid {
    invalid_with(response, redirect())
}

/// `response` decoded, changed by `edit`, and encoded again.
fn edited(response: &str, edit: impl FnOnce(&mut Cbor)) -> String {
    let mut value: Cbor = ciborium::from_reader(b64url(response).unwrap().as_slice()).unwrap();
    edit(&mut value);
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    to_b64url(&out)
}

/// The member `key` of a CBOR map.
fn at<'v>(value: &'v mut Cbor, key: &str) -> &'v mut Cbor {
    value
        .as_map_mut()
        .unwrap()
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .map(|(_, v)| v)
        .unwrap()
}

fn document(response: &mut Cbor) -> &mut Cbor {
    &mut at(response, "documents").as_array_mut().unwrap()[0]
}

#[test]
fn a_redirect_presentation_is_verified_with_its_items_as_json_and_dates_as_yyyy_mm_dd() {
    let v = verified(case("redirect"), redirect());
    assert_eq!(
        Value::Object(v.claims.clone()),
        fixtures()["mdoc"]["expected_claims"]
    );
    assert!(!v.claims.contains_key("document_number"));
    assert_eq!(v.issuer, text("/issuer_subject"));
    assert_eq!(v.credential_type, MDL);
    assert_eq!(
        v.status,
        Some(StatusRef {
            idx: 0,
            uri: text("/status/uri").into()
        })
    );
    assert!(verified(case("no_status"), redirect()).status.is_none());
}

#[test]
fn a_dc_api_presentation_is_verified_for_its_origin_and_only_for_it() {
    let v = verified(case("dc_api"), dc_api());
    assert_eq!(v.claims["birth_date"], "1815-12-10");
    let other_origin = Handover::DcApi {
        origin: "https://elsewhere.example",
        nonce: text("/nonce"),
        jwk_thumbprint: Some(thumbprint()),
    };
    assert_eq!(
        invalid_with(case("dc_api"), other_origin),
        Invalid::BadDeviceSignature
    );
    // Each handover's transcript is its own: neither verifies as the other.
    assert_eq!(
        invalid_with(case("dc_api"), redirect()),
        Invalid::BadDeviceSignature
    );
    assert_eq!(
        invalid_with(case("redirect"), dc_api()),
        Invalid::BadDeviceSignature
    );
}

#[test]
fn an_issuer_signing_with_es384_is_verified() {
    let v = verified(case("es384_issuer"), redirect());
    assert_eq!(v.claims["family_name"], "Lovelace");
}

#[test]
fn the_device_signature_binds_the_nonce_client_id_response_uri_and_request_key() {
    let good = case("redirect");
    let with = |client_id, nonce, jwk_thumbprint, response_uri| Handover::Redirect {
        client_id,
        nonce,
        jwk_thumbprint,
        response_uri,
    };
    let (client_id, nonce, uri) = (
        text("/client_id"),
        text("/nonce"),
        text("/mdoc/response_uri"),
    );
    let other_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    for handover in [
        with(client_id, "n-another", Some(thumbprint()), uri),
        with(
            "x509_san_dns:elsewhere.example",
            nonce,
            Some(thumbprint()),
            uri,
        ),
        with(
            client_id,
            nonce,
            Some(thumbprint()),
            "https://elsewhere.example/r",
        ),
        with(client_id, nonce, Some(other_key), uri),
        with(client_id, nonce, None, uri),
    ] {
        assert_eq!(invalid_with(good, handover), Invalid::BadDeviceSignature);
    }
    assert_eq!(invalid(case("other_nonce")), Invalid::BadDeviceSignature);
    assert_eq!(
        invalid(case("other_response_uri")),
        Invalid::BadDeviceSignature
    );
}

#[test]
fn a_device_signature_by_a_key_other_than_the_msos_is_refused() {
    assert_eq!(
        invalid(case("other_device_key")),
        Invalid::BadDeviceSignature
    );
    let no_signature = edited(case("redirect"), |r| {
        let device_auth = at(at(document(r), "deviceSigned"), "deviceAuth");
        *device_auth = Cbor::Map(vec![]);
    });
    assert_eq!(invalid(&no_signature), Invalid::NoDeviceSignature);
}

#[test]
fn another_doctype_in_the_document_or_in_the_mso_is_refused() {
    assert_eq!(invalid(case("other_doctype")), Invalid::WrongDoctype);
    let pid = Expected {
        trusted: &trusted(),
        doctype: "eu.europa.ec.eudi.pid.1",
        namespace: NS,
        handover: redirect(),
        now: now(),
    };
    assert!(matches!(
        verify(case("redirect"), &pid),
        Outcome::InvalidPresentation(Invalid::WrongDoctype)
    ));
    // The document says mDL, but its issuer signed a PID's MSO.
    let relabelled = edited(case("other_doctype"), |r| {
        *at(document(r), "docType") = Cbor::Text(MDL.into());
    });
    assert_eq!(invalid(&relabelled), Invalid::WrongDoctype);
}

#[test]
fn an_mso_outside_its_validity_is_refused() {
    assert_eq!(invalid(case("expired")), Invalid::Expired);
    assert_eq!(invalid(case("not_yet_valid")), Invalid::NotYetValid);
    // Valid for 30 days from the fixtures' now (and 60 s of leeway).
    let later = |s: i64| Timestamp::from_unix_seconds(now().unix_seconds() + s);
    let thirty_days = 30 * 86_400;
    assert!(matches!(
        check(
            case("redirect"),
            redirect(),
            &trusted(),
            later(thirty_days + 59)
        ),
        Outcome::Verified(_)
    ));
    assert!(matches!(
        check(
            case("redirect"),
            redirect(),
            &trusted(),
            later(thirty_days + 60)
        ),
        Outcome::InvalidPresentation(Invalid::Expired)
    ));
}

#[test]
fn a_tampered_item_is_refused_by_its_digest() {
    let tampered = edited(case("redirect"), |r| {
        let items = at(at(at(document(r), "issuerSigned"), "nameSpaces"), NS);
        for item in items.as_array_mut().unwrap() {
            let Cbor::Tag(24, bytes) = item else { panic!() };
            let mut decoded: Cbor =
                ciborium::from_reader(bytes.as_bytes().unwrap().as_slice()).unwrap();
            if at(&mut decoded, "elementIdentifier").as_text() == Some("family_name") {
                *at(&mut decoded, "elementValue") = Cbor::Text("Byron".into());
                let mut out = Vec::new();
                ciborium::into_writer(&decoded, &mut out).unwrap();
                **bytes = Cbor::Bytes(out);
            }
        }
    });
    assert_eq!(invalid(&tampered), Invalid::DigestMismatch);
    // An item left out only discloses less.
    let fewer = edited(case("redirect"), |r| {
        let items = at(at(at(document(r), "issuerSigned"), "nameSpaces"), NS);
        items.as_array_mut().unwrap().remove(0);
    });
    assert_eq!(verified(&fewer, redirect()).claims.len(), 5);
}

#[test]
fn an_issuer_of_another_root_or_a_changed_issuer_signature_is_refused() {
    assert!(matches!(
        outcome(case("untrusted_issuer")),
        Outcome::UntrustedIssuer
    ));
    let other = TrustedIssuers::from_pems(&[text("/other_root")]).unwrap();
    assert!(matches!(
        check(case("redirect"), redirect(), &other, now()),
        Outcome::UntrustedIssuer
    ));
    let forged = edited(case("redirect"), |r| {
        let auth = at(at(document(r), "issuerSigned"), "issuerAuth");
        let signature = &mut auth.as_array_mut().unwrap()[3];
        let Cbor::Bytes(s) = signature else { panic!() };
        s[0] ^= 1;
    });
    assert_eq!(invalid(&forged), Invalid::BadSignature);
}

#[test]
fn a_response_whose_status_is_not_0_or_that_is_not_cbor_is_refused() {
    let failed = edited(case("redirect"), |r| {
        *at(r, "status") = Cbor::Integer(10.into())
    });
    assert_eq!(invalid(&failed), Invalid::ResponseStatus);
    let two = edited(case("redirect"), |r| {
        let doc = document(r).clone();
        at(r, "documents").as_array_mut().unwrap().push(doc);
    });
    assert_eq!(invalid(&two), Invalid::Malformed);
    assert_eq!(invalid("not base64url!"), Invalid::Malformed);
    assert_eq!(invalid(&to_b64url(b"\xa1\x61")), Invalid::Malformed);
    let trailing = format!("{}AA", case("redirect"));
    assert_eq!(invalid(&trailing), Invalid::Malformed);
}

#[test]
fn mdoc_dates_compare_as_yyyy_mm_dd() {
    let v = verified(case("redirect"), redirect());
    let asked = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // birth_date is a full-date (tag 1004), issue_date a tdate (tag 0).
    let all = compare(
        &asked(&[
            ("birth_date", "1815-12-10"),
            ("issue_date", "2026-01-15"),
            ("family_name", "LOVELACE"),
            ("age_over_18", "true"),
        ]),
        &v.claims,
    );
    assert!(all.all, "{all:?}");
    let off_by_a_day = compare(&asked(&[("birth_date", "1815-12-11")]), &v.claims);
    assert!(!off_by_a_day.all);
    let with_time = compare(&asked(&[("issue_date", "2026-01-15T09:30:00Z")]), &v.claims);
    assert!(!with_time.all);
    assert_eq!(v.claims["issue_date"], json!("2026-01-15"));
}

#[test]
fn an_item_disclosed_twice_or_a_key_named_twice_is_refused() {
    let twice = edited(case("redirect"), |r| {
        let items = at(at(at(document(r), "issuerSigned"), "nameSpaces"), NS);
        let first = items.as_array().unwrap()[0].clone();
        items.as_array_mut().unwrap().push(first);
    });
    assert_eq!(invalid(&twice), Invalid::DigestTwice);
    let status_twice = edited(case("redirect"), |r| {
        r.as_map_mut()
            .unwrap()
            .push((Cbor::Text("status".into()), Cbor::Integer(0.into())));
    });
    assert_eq!(invalid(&status_twice), Invalid::Malformed);
}

#[test]
fn only_the_items_of_the_expected_namespace_are_claims() {
    let other_namespace = Expected {
        trusted: &trusted(),
        doctype: MDL,
        namespace: "org.example.other.1",
        handover: redirect(),
        now: now(),
    };
    let Outcome::Verified(v) = verify(case("redirect"), &other_namespace) else {
        panic!("not verified");
    };
    assert!(v.claims.is_empty());
}
