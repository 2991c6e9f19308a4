//! A payment approved in the customer's wallet
//! (docs/wallet.md#a-payment-approved-in-the-wallet), end to end with the
//! wallet written in `wallet.rs`: the team's `sca` credential is asked
//! with a transaction; the request carries its `transaction_data`; the
//! holder's Key Binding JWT, signed here, carries the payment's hash, the
//! response mode, two factor categories and a `jti`; the approval token
//! names them once the binding code is typed into the chat. By direct
//! post and through the Digital Credentials API (the page's own request,
//! `dc_api.jwt`).
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use p256::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::wallet::{
    access, answer_with, bound_on_page, code_at, failures, fetch_request, fixtures, interaction,
    open, read, respond, respond_page, signed_jws, signing_key, started, verified_jwt,
    wallet_setup, Access,
};

/// The bank's SCA attestation beside the PID: the fixtures' issuer
/// issues both, and it compares no claim. These tests approve payments
/// of a wallet not registered first (`registration = "none"`);
/// `wallet_registration.rs` holds the default, `"required"`.
const SCA: &str = "[[wallet.credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\n\
                   vct = [\"urn:eudi:pid:1\"]\npurpose = \"sca\"\nregistration = \"none\"\n";

/// A gateway with acme's `[wallet]` of `pid` and `sca` (as `sca` writes
/// it), its clock at the fixtures' `now`.
pub(crate) async fn spawn_bank(backend: Backend, sca: &str) -> Option<(TestApp, Access)> {
    let a = access();
    let mut setup = wallet_setup(&a, "");
    setup.team_extra.push_str(sca);
    let app = spawn_with(backend, setup).await?;
    let now = fixtures()["now"].as_i64().unwrap();
    app.clock
        .set(chatgate::time::Timestamp::from_unix_seconds(now));
    Some((app, a))
}

/// A test on both stores of a bank whose `sca` credential is written as
/// `$sca` (this file's [`SCA`] when left out).
macro_rules! bank_test {
    ($name:ident, $body:expr) => {
        bank_test!($name, SCA, $body);
    };
    ($name:ident, $sca:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, a)) =
                    $crate::wallet_payments::spawn_bank(Backend::Memory, $sca).await
                {
                    ($body)(app, a).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, a)) =
                    $crate::wallet_payments::spawn_bank(Backend::Redis, $sca).await
                {
                    ($body)(app, a).await;
                }
            }
        }
    };
}
pub(crate) use bank_test;

/// 120.00 EUR to ACME Energy Ltd, whose account the payment system knows.
pub(crate) fn payment() -> Value {
    json!({"type": "payment", "amount": "120.00", "currency": "EUR",
           "payee": "ACME Energy Ltd", "payee_id": "DE89370400440532013000"})
}

/// Starts a payment in the wallet: (challenge id, link path).
pub(crate) async fn start_payment(app: &TestApp, id: &str) -> (String, String) {
    let body = json!({"method": "wallet", "credential": "sca", "transaction": payment()});
    started(app, id, body).await
}

/// The Key Binding JWT claims a TS12 wallet adds for the payment `data`.
pub(crate) fn ts12_claims(data: &str, jti: &str) -> Value {
    json!({
        "transaction_data_hashes": [B64URL.encode(Sha256::digest(data.as_bytes()))],
        "transaction_data_hashes_alg": "sha-256",
        "response_mode": "direct_post.jwt",
        "amr": [{"knowledge": "pin_6_or_more_digits"}, {"possession": "key_in_local_native_wscd"}],
        "jti": jti,
    })
}

/// The fixture attestation presented to `asked` with a Key Binding JWT
/// carrying `extra` (a member set to null is left out).
pub(crate) fn present_payment(asked: &Value, extra: &Value) -> String {
    let holder = signing_key(&fixtures()["holder"]["d"]);
    present_as(asked, extra, (None, &holder))
}

/// As [`present_payment`], by the wallet whose holder key is `holder`
/// and whose attestation's issuer JWT is `issued` (the fixture's when
/// `None`), with the fixture's disclosures.
pub(crate) fn present_as(
    asked: &Value,
    extra: &Value,
    (issued, holder): (Option<&str>, &p256::ecdsa::SigningKey),
) -> String {
    let f = fixtures();
    let full = f["cases"]["es256"].as_str().unwrap();
    let (without_kb, _) = full.rsplit_once('~').unwrap();
    let presented = match issued {
        Some(jwt) => format!("{jwt}~{}~", without_kb.split_once('~').unwrap().1),
        None => format!("{without_kb}~"),
    };
    let sd_hash = B64URL.encode(Sha256::digest(presented.as_bytes()));
    let mut claims = json!({"iat": f["now"], "aud": asked["client_id"],
                            "nonce": asked["nonce"], "sd_hash": sd_hash});
    for (k, v) in extra.as_object().unwrap() {
        match v {
            Value::Null => claims.as_object_mut().unwrap().remove(k),
            v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
        };
    }
    let header = json!({"typ": "kb+jwt", "alg": "ES256"});
    format!("{presented}{}", signed_jws(&header, &claims, holder))
}

/// The request's one `transaction_data` entry.
pub(crate) fn entry_of(asked: &Value) -> String {
    let data = asked["transaction_data"]
        .as_array()
        .expect("transaction_data");
    assert_eq!(data.len(), 1);
    data[0].as_str().unwrap().to_string()
}

/// The request the link's page hands the Digital Credentials API (its
/// `data-request`, signed by the access key for `dc_api.jwt`), as the
/// browser's wallet gets it: its claims.
async fn page_request(app: &TestApp, a: &Access, link: &str) -> Value {
    let page = open(app, link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let jwt = page
        .body
        .split("data-request=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the page's request");
    let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&a.key_pem).unwrap();
    let (header, claims) = verified_jwt(jwt, signing.verifying_key());
    assert_eq!(header["typ"], "oauth-authz-req+jwt");
    assert_eq!(claims["response_mode"], "dc_api.jwt");
    assert_eq!(claims["expected_origins"], json!(["http://gateway.test"]));
    claims
}

/// The claims of a JWT, unchecked (its signature is checked by
/// `payments.rs`' payment system; here the clock stands in the past).
pub(crate) fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64URL.decode(payload).unwrap()).unwrap()
}

bank_test!(
    a_payment_approved_in_the_wallet_gives_an_approval_with_its_sca,
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-pay").await;
        let (cid, link) = start_payment(&app, &id).await;
        let read_back = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(read_back["transaction"], payment());
        let asked = fetch_request(&app, &a, &link).await;
        let data = entry_of(&asked);
        // Every request of the challenge carries the same entry.
        let again = fetch_request(&app, &a, &link).await;
        assert_eq!(entry_of(&again), data);
        let text = String::from_utf8(B64URL.decode(&data).unwrap()).unwrap();
        assert!(text.contains(r#""amount":120.00}"#), "{text}");
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["type"], "urn:eudi:sca:payment:1");
        assert_eq!(json["credential_ids"], json!(["sca"]));
        assert_eq!(json["transaction_data_hashes_alg"], json!(["sha-256"]));
        let p = &json["payload"];
        assert_eq!(p["transaction_id"], cid.as_str());
        assert_eq!(
            p["payee"],
            json!({"name": "ACME Energy Ltd", "id": "DE89370400440532013000"})
        );
        assert_eq!(p["currency"], "EUR");
        assert!(p["date_time"].as_str().unwrap().ends_with('Z'));
        // An sca credential compares no claim: its query has no `claims`
        // (DCQL's is a non-empty array when present).
        let query = &asked["dcql_query"]["credentials"][0];
        assert!(query.get("claims").is_none(), "{query}");

        let presented = present_payment(&again, &ts12_claims(&data, "psd2-code-1"));
        let answered = respond(&app, &answer_with(&again, "sca", &presented, true)).await;
        assert_eq!(answered.status(), 200);
        let body: Value = answered.json().await.unwrap();
        let (code, _) = code_at(&app, body["redirect_uri"].as_str().unwrap()).await;
        // No approval before the binding code.
        assert!(read(&app, &id, &cid, &app.keys.bot).await["approval"].is_null());
        let res = app.verify_code(&id, &cid, &code).await;
        assert_eq!(res.status(), 200);
        let verified: Value = res.json().await.unwrap();
        let token = verified["approval"]["token"].as_str().expect("a token");
        let claims = jwt_claims(token);
        assert_eq!(claims["amr"], json!(["wallet"]));
        assert!(claims.get("via").is_none(), "{claims}");
        assert_eq!(claims["transaction"], payment());
        assert_eq!(
            claims["sca"],
            json!({"code": "psd2-code-1",
                   "amr": [{"knowledge": "pin_6_or_more_digits"},
                           {"possession": "key_in_local_native_wscd"}],
                   "issuer": fixtures()["issuer_subject"]})
        );
        assert_eq!(
            verified["approval"]["transaction_hash"], claims["txn"],
            "{verified}"
        );
        let read_back = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(read_back["approval"]["token"], token);
        assert_eq!(app.get(&id).await["method"], "wallet");

        // The same authentication code again, for a new payment: refused
        // and counted as a wrong code.
        let before = failures(&app, "cust-pay").await;
        let (cid, link) = start_payment(&app, &id).await;
        let asked = fetch_request(&app, &a, &link).await;
        let data = entry_of(&asked);
        let presented = present_payment(&asked, &ts12_claims(&data, "psd2-code-1"));
        let answered = respond(&app, &answer_with(&asked, "sca", &presented, true)).await;
        assert_eq!(answered.status(), 200);
        let read_back = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(read_back["state"], "failed");
        assert_eq!(read_back["wallet"]["result"], "invalid_presentation");
        assert_eq!(
            failures(&app, "cust-pay").await.as_u64().unwrap(),
            before.as_u64().unwrap() + 1
        );
    }
);

bank_test!(
    a_payment_claim_missing_or_altered_never_authenticates_and_counts,
    |app: TestApp, a: Access| async move {
        let other = B64URL.encode(Sha256::digest(b"another payment"));
        let altered = [
            json!({"transaction_data_hashes": [other]}),
            json!({"transaction_data_hashes": null}),
            json!({"transaction_data_hashes_alg": "sha-512"}),
            json!({"response_mode": "dc_api.jwt"}),
            json!({"amr": [{"knowledge": "pin_6_or_more_digits"}]}),
            json!({"jti": null}),
        ];
        // Each for a customer of its own, so that none reaches a lockout.
        for (i, change) in altered.iter().enumerate() {
            let customer = format!("cust-alter-{i}");
            let id = interaction(&app, &customer).await;
            let (cid, link) = start_payment(&app, &id).await;
            let asked = fetch_request(&app, &a, &link).await;
            let data = entry_of(&asked);
            let mut claims = ts12_claims(&data, &format!("code-{i}"));
            for (k, v) in change.as_object().unwrap() {
                claims[k] = v.clone();
            }
            let presented = present_payment(&asked, &claims);
            let answered = respond(&app, &answer_with(&asked, "sca", &presented, true)).await;
            assert_eq!(answered.status(), 200);
            let read_back = read(&app, &id, &cid, &app.keys.bot).await;
            assert_eq!(read_back["state"], "failed", "{change}");
            assert_eq!(
                read_back["wallet"]["result"], "invalid_presentation",
                "{change}"
            );
            assert_eq!(failures(&app, &customer).await, json!(1), "{change}");
            assert_ne!(app.get(&id).await["status"], "authenticated", "{change}");
        }
        let id = interaction(&app, "cust-alter-pid").await;
        // The PID, though trusted, is not the credential asked: the answer
        // names no presentation of `sca`.
        let (cid, link) = start_payment(&app, &id).await;
        let asked = fetch_request(&app, &a, &link).await;
        let data = entry_of(&asked);
        let presented = present_payment(&asked, &ts12_claims(&data, "code-pid"));
        let answered = respond(&app, &answer_with(&asked, "pid", &presented, true)).await;
        assert_eq!(answered.status(), 200);
        let read_back = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(read_back["wallet"]["result"], "invalid_presentation");
    }
);

bank_test!(
    a_payment_through_the_digital_credentials_api_is_approved_and_an_altered_one_refused,
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-dc-pay").await;
        let (cid, link) = start_payment(&app, &id).await;
        let asked = page_request(&app, &a, &link).await;
        let data = entry_of(&asked);
        // The entry a wallet's request by direct post carries.
        assert_eq!(entry_of(&fetch_request(&app, &a, &link).await), data);
        // Key bound to the page's origin, in the page's response mode.
        let mut to_page = asked.clone();
        to_page["client_id"] = json!("origin:http://gateway.test");
        let mut kb = ts12_claims(&data, "psd2-dc-1");
        kb["response_mode"] = json!("dc_api.jwt");
        let presented = present_payment(&to_page, &kb);
        let jwe = answer_with(&asked, "sca", &presented, false);
        let res = respond_page(&app, &link, &jwe).await;
        bound_on_page(&app, res, &id, &cid).await;
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        let token = c["approval"]["token"].as_str().expect("a token");
        let claims = jwt_claims(token);
        assert_eq!(claims["amr"], json!(["wallet"]));
        assert_eq!(claims["sca"]["code"], "psd2-dc-1");
        assert_eq!(c["approval"]["transaction_hash"], claims["txn"]);
        assert_eq!(app.get(&id).await["method"], "wallet");

        // The response mode of a direct post, and the hash of another
        // amount: refused through the page, counted.
        let text = String::from_utf8(B64URL.decode(&data).unwrap()).unwrap();
        let more = text.replace(r#""amount":120.00"#, r#""amount":1120.00"#);
        assert_ne!(more, text);
        let more = B64URL.encode(Sha256::digest(B64URL.encode(more).as_bytes()));
        let altered = [
            json!({"response_mode": "direct_post.jwt"}),
            json!({"transaction_data_hashes": [more]}),
        ];
        for (i, change) in altered.iter().enumerate() {
            let customer = format!("cust-dc-alter-{i}");
            let id = interaction(&app, &customer).await;
            let (cid, link) = start_payment(&app, &id).await;
            let asked = page_request(&app, &a, &link).await;
            let mut to_page = asked.clone();
            to_page["client_id"] = json!("origin:http://gateway.test");
            let mut kb = ts12_claims(&entry_of(&asked), &format!("dc-code-{i}"));
            kb["response_mode"] = json!("dc_api.jwt");
            for (k, v) in change.as_object().unwrap() {
                kb[k] = v.clone();
            }
            let jwe = answer_with(&asked, "sca", &present_payment(&to_page, &kb), false);
            let res = respond_page(&app, &link, &jwe).await;
            assert_eq!(res.status(), 200);
            assert_eq!(res.json::<Value>().await.unwrap()["state"], "failed");
            let c = read(&app, &id, &cid, &app.keys.bot).await;
            assert_eq!(c["wallet"]["result"], "invalid_presentation", "{change}");
            assert!(c["approval"].is_null(), "{change}");
            assert_eq!(failures(&app, &customer).await, json!(1), "{change}");
        }
    }
);

bank_test!(
    asking_for_a_payment_in_the_wallet_refuses_what_does_not_belong,
    |app: TestApp, _a: Access| async move {
        let id = interaction(&app, "cust-ask-pay").await;
        let with = |change: Value| {
            let mut t = payment();
            for (k, v) in change.as_object().unwrap() {
                match v {
                    Value::Null => t.as_object_mut().unwrap().remove(k),
                    v => t.as_object_mut().unwrap().insert(k.clone(), v.clone()),
                };
            }
            t
        };
        let refused = [
            (
                json!({"method": "wallet", "credential": "sca"}),
                "transaction",
            ),
            (
                json!({"method": "wallet", "credential": "sca",
                       "transaction": with(json!({"payee_id": null}))}),
                "transaction.payee_id",
            ),
            (
                json!({"method": "wallet", "credential": "sca",
                       "transaction": with(json!({"payee_id": "DE89 3704"}))}),
                "transaction.payee_id",
            ),
            (
                json!({"method": "wallet", "credential": "sca",
                       "transaction": with(json!({"amount": "007.50"}))}),
                "transaction.amount",
            ),
            (
                json!({"method": "wallet", "credential": "pid",
                       "match": {"family_name": "Lovelace"}, "transaction": payment()}),
                "transaction",
            ),
            (
                json!({"method": "wallet", "credential": "sca", "transaction": payment(),
                       "match": {"family_name": "Lovelace"}}),
                "match.family_name",
            ),
            (
                json!({"method": "wallet", "credential": "pid", "match": {}}),
                "match",
            ),
        ];
        for (body, member) in refused {
            let res = crate::wallet::ask(&app, &id, body.clone()).await;
            assert_eq!(res.status(), 422, "{body}");
            let p: Value = res.json().await.unwrap();
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.starts_with(&format!("{member}:")), "{body}: {p}");
        }
        // Nothing was sent.
        let msgs = app.chat_messages().await;
        assert!(!msgs.iter().any(|m| m["purpose"] == "wallet_link"));
    }
);
