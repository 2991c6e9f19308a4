//! Token Status Lists against lists packed by @sd-jwt/jwt-status-list and
//! signed by jose (`tests/fixtures/wallet/generate.mjs`), and the status
//! references of the credentials.
use serde_json::json;

use super::super::issuers::TrustedIssuers;
use super::super::jose::{b64url, to_b64url};
use super::super::mdoc;
use super::super::sd_jwt;
use super::super::status_list::{
    check, read, Checked, ListFailure, Status, StatusList, StatusRef, MAX_TTL,
};
use super::{now, text, trusted, verified};
use crate::time::Timestamp;

fn list(name: &str) -> &'static str {
    text(&format!("/status/lists/{name}"))
}

fn uri() -> &'static str {
    text("/status/uri")
}

fn at_index(idx: u64) -> StatusRef {
    StatusRef {
        idx,
        uri: uri().into(),
    }
}

fn good() -> StatusList {
    read(list("good"), uri(), &trusted(), now()).unwrap()
}

fn failure(name: &str) -> ListFailure {
    read(list(name), uri(), &trusted(), now()).unwrap_err()
}

#[test]
fn entries_0_1_2_and_others_are_valid_invalid_suspended_and_not_valid() {
    let list = good();
    assert_eq!(list.check(&at_index(0), now()), Checked::Valid);
    assert_eq!(
        list.check(&at_index(1), now()),
        Checked::Revoked(Status::Invalid)
    );
    assert_eq!(
        list.check(&at_index(2), now()),
        Checked::Revoked(Status::Suspended)
    );
    assert_eq!(
        list.check(&at_index(3), now()),
        Checked::Revoked(Status::Other(3))
    );
    assert_eq!(list.check(&at_index(4), now()), Checked::Valid);
    assert_eq!(
        list.check(&at_index(15), now()),
        Checked::Revoked(Status::Invalid)
    );
    assert_eq!(
        list.check(&at_index(16), now()),
        Checked::FailingList(ListFailure::NoEntry)
    );
    assert_eq!(
        list.check(&at_index(u64::MAX), now()),
        Checked::FailingList(ListFailure::NoEntry)
    );
    assert_eq!(list.issuer, text("/issuer_subject"));
}

#[test]
fn one_bit_entries_are_read_from_the_low_bits_of_each_byte() {
    let list = read(list("one_bit"), uri(), &trusted(), now()).unwrap();
    let statuses: Vec<Option<Status>> = (0..10).map(|i| list.entry(i)).collect();
    let (v, i) = (Some(Status::Valid), Some(Status::Invalid));
    assert_eq!(statuses, [v, i, v, v, v, v, v, v, i, v]);
}

#[test]
fn a_list_is_kept_for_its_ttl_at_most_an_hour_and_never_past_its_exp() {
    assert_eq!(good().keep_for, MAX_TTL);
    let short = read(list("short_ttl"), uri(), &trusted(), now()).unwrap();
    assert_eq!(short.keep_for, 300);
    // The list expires a day after the fixtures' now.
    let near_exp = Timestamp::from_unix_seconds(now().unix_seconds() + 86_400 - 100);
    let late = read(list("good"), uri(), &trusted(), near_exp).unwrap();
    assert_eq!(late.keep_for, 100);
    // Kept past its exp (and the leeway), it fails.
    let past = Timestamp::from_unix_seconds(now().unix_seconds() + 86_400 + 60);
    assert_eq!(
        late.check(&at_index(0), past),
        Checked::FailingList(ListFailure::Expired)
    );
}

#[test]
fn an_untrusted_garbled_foreign_expired_or_mistyped_list_fails() {
    assert_eq!(failure("untrusted"), ListFailure::Untrusted);
    let other = TrustedIssuers::from_pems(&[text("/other_root")]).unwrap();
    assert_eq!(
        read(list("good"), uri(), &other, now()).unwrap_err(),
        ListFailure::Untrusted
    );
    assert_eq!(failure("garbage_lst"), ListFailure::BadList);
    assert_eq!(failure("other_sub"), ListFailure::OtherList);
    assert_eq!(failure("expired"), ListFailure::Expired);
    assert_eq!(failure("wrong_typ"), ListFailure::WrongType);
    let (signed, signature) = list("good").rsplit_once('.').unwrap();
    let mut sig = b64url(signature).unwrap();
    sig[0] ^= 1;
    let forged = format!("{signed}.{}", to_b64url(&sig));
    assert_eq!(
        read(&forged, uri(), &trusted(), now()).unwrap_err(),
        ListFailure::BadSignature
    );
    assert_eq!(
        read("not a jwt", uri(), &trusted(), now()).unwrap_err(),
        ListFailure::Malformed
    );
    // A list fetched from another uri than its credential names is not its list.
    let elsewhere = StatusRef {
        idx: 0,
        uri: "https://issuer.example/statuslists/2".into(),
    };
    assert_eq!(
        check(list("good"), &elsewhere, &trusted(), now()),
        Checked::FailingList(ListFailure::OtherList)
    );
}

#[test]
fn a_status_claim_is_a_reference_or_none_and_a_bad_one_is_refused() {
    let ok = json!({"status_list": {"idx": 7, "uri": "https://i.example/l"}});
    assert_eq!(
        StatusRef::from_claim(Some(&ok)).unwrap(),
        Some(StatusRef {
            idx: 7,
            uri: "https://i.example/l".into()
        })
    );
    assert_eq!(StatusRef::from_claim(None).unwrap(), None);
    let other_mechanism = json!({"other": {}});
    assert_eq!(StatusRef::from_claim(Some(&other_mechanism)).unwrap(), None);
    for bad in [
        json!({"status_list": {"idx": -1, "uri": "https://i.example/l"}}),
        json!({"status_list": {"idx": 1}}),
        json!({"status_list": {"idx": 1, "uri": ""}}),
        json!("revoked"),
    ] {
        assert!(StatusRef::from_claim(Some(&bad)).is_err(), "{bad}");
    }
}

#[test]
fn an_sd_jwt_vc_and_an_mdoc_name_their_entries_and_the_list_gives_their_status() {
    let sd_jwt: sd_jwt::Verified = verified(super::case("with_status"));
    assert_eq!(sd_jwt.status, Some(at_index(1)));
    assert_eq!(
        check(list("good"), &at_index(1), &trusted(), now()),
        Checked::Revoked(Status::Invalid)
    );
    assert_eq!(verified(super::case("es256")).status, None);
    let expected = mdoc::Expected {
        trusted: &trusted(),
        doctype: "org.iso.18013.5.1.mDL",
        namespace: "org.iso.18013.5.1",
        handover: mdoc::Handover::Redirect {
            client_id: text("/client_id"),
            nonce: text("/nonce"),
            jwk_thumbprint: Some(text("/request_key/thumbprint")),
            response_uri: text("/mdoc/response_uri"),
        },
        now: now(),
    };
    let mdoc::Outcome::Verified(m) = mdoc::verify(text("/mdoc/cases/redirect"), &expected) else {
        panic!("not verified");
    };
    let reference = m.status.unwrap();
    assert_eq!(
        check(list("good"), &reference, &trusted(), now()),
        Checked::Valid
    );
}
