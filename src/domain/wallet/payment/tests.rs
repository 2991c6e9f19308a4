use serde_json::json;

use super::*;
use crate::domain::wallet::jose::b64url;

fn payment(amount: &str) -> Transaction {
    Transaction::parse(
        "transaction",
        &json!({"type": "payment", "amount": amount, "currency": "EUR",
                "payee": "ACME Energy Ltd", "payee_id": "DE89370400440532013000"}),
    )
    .unwrap()
}

fn challenge() -> Uuid {
    Uuid::parse_str("0193a6d2-7c1e-7000-8000-000000000042").unwrap()
}

/// 2026-11-28T19:05:00Z, and half a second more.
fn at() -> Timestamp {
    Timestamp::from_unix_seconds(1_795_892_700).plus(Duration::from_millis(500))
}

#[test]
fn the_transaction_data_is_these_bytes_with_the_amount_s_own_digits() {
    let t = transaction_data("sca", challenge(), at(), &payment("120.00")).unwrap();
    let json = String::from_utf8(b64url(&t).unwrap()).unwrap();
    assert_eq!(
        json,
        r#"{"type":"urn:eudi:sca:payment:1","credential_ids":["sca"],"transaction_data_hashes_alg":["sha-256"],"payload":{"transaction_id":"0193a6d2-7c1e-7000-8000-000000000042","date_time":"2026-11-28T19:05:00Z","payee":{"name":"ACME Energy Ltd","id":"DE89370400440532013000"},"currency":"EUR","amount":120.00}}"#
    );
    // base64url without padding.
    assert!(!t.contains('=') && !t.contains('+') && !t.contains('/'));
    // The same payment at the same time is the same string.
    assert_eq!(
        transaction_data("sca", challenge(), at(), &payment("120.00")),
        Some(t)
    );
    let whole = transaction_data("sca", challenge(), at(), &payment("7")).unwrap();
    let whole = String::from_utf8(b64url(&whole).unwrap()).unwrap();
    assert!(whole.ends_with(r#""amount":7}}"#), "{whole}");
}

#[test]
fn a_payment_without_a_payee_id_or_with_a_leading_zero_has_no_transaction_data() {
    let mut t = payment("120.00");
    t.payee_id = None;
    assert_eq!(transaction_data("sca", challenge(), at(), &t), None);
    assert_eq!(
        transaction_data("sca", challenge(), at(), &payment("007.50")),
        None
    );
    assert_eq!(amount_number("0.50"), Some("0.50"));
    assert_eq!(amount_number("10"), Some("10"));
    assert_eq!(amount_number("00.50"), None);
}

/// The claims of a Key Binding JWT approving `data` by `direct_post.jwt`.
fn kb(data: &str) -> Object {
    let hash = to_b64url(&Sha256::digest(data.as_bytes()));
    let claims = json!({
        "transaction_data_hashes": [hash], "transaction_data_hashes_alg": "sha-256",
        "response_mode": "direct_post.jwt", "jti": "sca-code-42",
        "amr": [{"knowledge": "pin_6_or_more_digits"}, {"possession": "key_in_local_native_wscd"}],
    });
    claims.as_object().unwrap().clone()
}

fn expected(data: &str) -> Expected<'_> {
    Expected {
        transaction_data: data,
        response_mode: "direct_post.jwt",
    }
}

#[test]
fn a_key_binding_over_the_payment_gives_its_code_and_factors() {
    let data = transaction_data("sca", challenge(), at(), &payment("120.00")).unwrap();
    let sca = check(&kb(&data), &expected(&data)).unwrap();
    assert_eq!(sca.code, "sca-code-42");
    assert_eq!(sca.amr, kb(&data)["amr"]);
}

#[test]
fn each_payment_claim_missing_or_altered_is_refused_by_its_rule() {
    let data = transaction_data("sca", challenge(), at(), &payment("120.00")).unwrap();
    let other = transaction_data("sca", challenge(), at(), &payment("120.01")).unwrap();
    let with = |name: &str, value: Option<Value>| {
        let mut claims = kb(&data);
        match value {
            Some(v) => claims.insert(name.into(), v),
            None => claims.remove(name),
        };
        check(&claims, &expected(&data)).unwrap_err()
    };
    let wrong_data = Invalid::WrongTransactionData;
    // The hash of another payment, of the JSON rather than the string,
    // two hashes, a hash not in an array, none.
    let json = String::from_utf8(b64url(&data).unwrap()).unwrap();
    for hashes in [
        json!([to_b64url(&Sha256::digest(other.as_bytes()))]),
        json!([to_b64url(&Sha256::digest(json.as_bytes()))]),
        json!([to_b64url(&Sha256::digest(data.as_bytes())), "x"]),
        json!(to_b64url(&Sha256::digest(data.as_bytes()))),
    ] {
        assert_eq!(with("transaction_data_hashes", Some(hashes)), wrong_data);
    }
    assert_eq!(with("transaction_data_hashes", None), wrong_data);
    assert_eq!(
        with("transaction_data_hashes_alg", Some(json!("sha-384"))),
        wrong_data
    );
    assert_eq!(
        with("transaction_data_hashes_alg", Some(json!(["sha-256"]))),
        wrong_data
    );
    assert_eq!(with("transaction_data_hashes_alg", None), wrong_data);
    let mode = Invalid::WrongResponseMode;
    assert_eq!(with("response_mode", Some(json!("dc_api.jwt"))), mode);
    assert_eq!(with("response_mode", None), mode);
    let weak = Invalid::WeakAuthentication;
    for amr in [
        json!([{"knowledge": "pin_6_or_more_digits"}]),
        json!([{"knowledge": "pin_6_or_more_digits"}, {"knowledge": "pattern"}]),
        json!([{"knowledge": "pin_6_or_more_digits"}, {"location": "home"}]),
        json!([{"knowledge": "pin_6_or_more_digits", "possession": "key_in_remote_wscd"}]),
        json!([{"knowledge": "pin_6_or_more_digits"}, {"possession": ""}]),
        json!(["pin", "key"]),
        json!({"knowledge": "pin_6_or_more_digits", "possession": "key_in_remote_wscd"}),
    ] {
        assert_eq!(with("amr", Some(amr)), weak);
    }
    assert_eq!(with("amr", None), weak);
    let no_code = Invalid::NoAuthenticationCode;
    assert_eq!(with("jti", None), no_code);
    assert_eq!(with("jti", Some(json!(""))), no_code);
    assert_eq!(with("jti", Some(json!(42))), no_code);
    assert_eq!(with("jti", Some(json!("j".repeat(129)))), no_code);
    assert!(check(
        &{
            let mut c = kb(&data);
            c.insert("jti".into(), json!("j".repeat(128)));
            c
        },
        &expected(&data)
    )
    .is_ok());
    // Three categories are more than enough.
    let mut three = kb(&data);
    three.insert(
        "amr".into(),
        json!([{"knowledge": "pin_6_or_more_digits"}, {"possession": "key_in_remote_wscd"},
               {"inherence": "fingerprint_device"}]),
    );
    assert!(check(&three, &expected(&data)).is_ok());
}
