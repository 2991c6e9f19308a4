//! Approving one payment (docs/api.md#approving-one-payment), on both
//! stores: the transaction's refusals, the exact texts the customer reads
//! where the code arrives, a replaced transaction voiding the first code,
//! the approval token checked as docs/payments.md tells the bank's payment
//! system (EdDSA only, the published JWKS) and its signature apart, a
//! token made with a team's security key refused, the keys' rotation and
//! absence, assurance for the right and the wrong hash, and no code for
//! agents.
use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

const PHONE: &str = "+15551230000";
/// The hash of [`payment`] (computed apart: Python's `json.dumps` with
/// sorted keys and no spaces, SHA-256, base64url).
const HASH: &str = "nuFyQ-RzngfkNdszl709njVC7fqt9s4kqNkF64DtFtE";

pub(crate) fn payment() -> Value {
    json!({"type": "payment", "amount": "120.00", "currency": "EUR",
           "payee": "ACME Energy Ltd", "reference": "INV-2026-42"})
}

/// An interaction on the web chat with a `customer_ref` and a phone.
async fn interaction(app: &TestApp) -> String {
    let conversation = uuid::Uuid::now_v7().to_string();
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": conversation,
                       "customer_ref": "cust-42", "contact": {"phone": PHONE}}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

async fn start(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &body,
    )
    .await
}

/// The bodies of the SMS the fake Twilio received, in order.
async fn sms_bodies(app: &TestApp) -> Vec<String> {
    let reqs = app.chat.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter(|r| r.url.path() == "/2010-04-01/Accounts/AC123/Messages.json")
        .map(|r| {
            let form: HashMap<String, String> =
                url::form_urlencoded::parse(&r.body).into_owned().collect();
            form["Body"].clone()
        })
        .collect()
}

/// The code in the last SMS.
async fn last_sms_code(app: &TestApp) -> String {
    let body = sms_bodies(app).await.pop().expect("an SMS");
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .unwrap()
        .to_string()
}

/// The published JWKS of the approval keys.
pub(crate) async fn approval_keys(app: &TestApp) -> Value {
    app.get_json("/.well-known/chatgate-approval-keys", None)
        .await
}

/// The check docs/payments.md gives the bank's payment system, with a
/// stock JWT library (jsonwebtoken): `alg` EdDSA only, the key its `kid`
/// names in the published `jwks`, `iss`, `aud` and `exp` (the real clock).
/// `None`: refused.
pub(crate) fn payment_system_check(jwks: &Value, token: &str) -> Option<Value> {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
    let set: JwkSet = serde_json::from_value(jwks.clone()).ok()?;
    let header = decode_header(token).ok()?;
    if header.alg != Algorithm::EdDSA {
        return None;
    }
    let key = DecodingKey::from_jwk(set.find(header.kid.as_deref()?)?).ok()?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["chatgate-test"]);
    validation.set_audience(&["acme"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    decode::<Value>(token, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

/// The approval token's header `kid` and claims: it passes the payment
/// system's check, and its Ed25519 signature verifies apart (ed25519-dalek)
/// with the JWKS's `x` of its `kid`, which is that key's RFC 7638
/// thumbprint; good for five minutes.
pub(crate) async fn checked(app: &TestApp, token: &str) -> (String, Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine as _;
    use sha2::Digest as _;
    let jwks = approval_keys(app).await;
    let claims = payment_system_check(&jwks, token).expect("the payment system's check passes");
    let header: Value =
        serde_json::from_slice(&B64URL.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let kid = header["kid"].as_str().unwrap().to_string();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the kid is listed");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let x = jwk["x"].as_str().unwrap();
    let thumbprint = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    assert_eq!(
        kid,
        B64URL.encode(sha2::Sha256::digest(thumbprint.as_bytes()))
    );
    let public: [u8; 32] = B64URL.decode(x).unwrap().try_into().unwrap();
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature =
        ed25519_dalek::Signature::from_slice(&B64URL.decode(signature).unwrap()).unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&public)
        .unwrap()
        .verify_strict(signed.as_bytes(), &signature)
        .expect("an Ed25519 signature of the listed key");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 300, "five minutes");
    (kid, claims)
}

/// `claims` signed HS256 under `key` with header `kid`: what anyone who
/// holds a team's security key (its login page, its website) can make.
fn hs256(claims: &Value, key: &[u8], kid: &str) -> String {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    encode(&header, claims, &EncodingKey::from_secret(key)).unwrap()
}

/// The assurance answer for `id` with query `q`, to the bot.
async fn assure(app: &TestApp, id: &str, q: String) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/assurance?{q}"),
        Some(&app.keys.bot),
    )
    .await
}

/// Every event emitted so far, as JSON text.
async fn events_text(app: &mut TestApp) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    while let Ok(e) = app.events.try_recv() {
        seen.push((e.kind.as_str().to_string(), event_data(&e)));
    }
    seen
}

both_stores!(
    a_payment_code_by_sms_shows_the_payment_and_gives_a_token,
    |mut app: TestApp| async move {
        let id = interaction(&app).await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": payment()}),
        )
        .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["transaction"], payment());
        assert_eq!(c["transaction_hash"], HASH);
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let code = last_sms_code(&app).await;
        assert_eq!(
            sms_bodies(&app).await,
            [format!(
                "{code} is your code to pay 120.00 EUR to ACME Energy Ltd. \
                 Only enter it if you mean to pay. It expires in 3 minutes."
            )]
        );
        let read = app
            .get_json(
                &format!("/v1/interactions/{id}/challenges/{cid}"),
                Some(&app.keys.bot),
            )
            .await;
        assert_eq!(
            (
                read["transaction"].clone(),
                read["transaction_hash"].clone()
            ),
            (payment(), json!(HASH))
        );

        let res = app.verify_code(&id, &cid, &code).await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["authenticated"], true);
        assert_eq!(v["approval"]["transaction_hash"], HASH);
        let token = v["approval"]["token"].as_str().unwrap().to_string();
        let (kid, claims) = checked(&app, &token).await;
        eprintln!(
            "the SMS: {:?}\nthe verify answer's approval: {}\nthe token's header kid {kid:?}, its claims: {claims:#}",
            sms_bodies(&app).await,
            v["approval"]
        );
        assert_eq!(
            approval_keys(&app).await["keys"][0]["kid"],
            kid.as_str(),
            "the signing key's kid"
        );
        assert_eq!(claims["iss"], "chatgate-test");
        assert_eq!(claims["aud"], "acme");
        assert_eq!(claims["sub"], "cust-42");
        assert_eq!(claims["interaction_id"], id.as_str());
        assert_eq!(claims["challenge_id"], cid.as_str());
        assert_eq!(claims["txn"], HASH);
        assert_eq!(claims["transaction"], payment());
        assert_eq!(claims["amr"], json!(["otp"]));
        assert_eq!(claims["via"], json!(["sms"]));
        let jti = claims["jti"].as_str().unwrap();
        assert!(
            jti.len() == 32 && jti.bytes().all(|b| b.is_ascii_hexdigit()),
            "{jti}"
        );

        // Assurance: the right hash, the wrong one.
        let right = assure(&app, &id, format!("max_age=5m&transaction={HASH}")).await;
        assert_eq!(right["satisfied"], true, "{right}");
        eprintln!("assurance for the right hash: {right}");
        let wrong = "A".repeat(43);
        let a = assure(&app, &id, format!("max_age=5m&transaction={wrong}")).await;
        eprintln!("assurance for another hash: {a}");
        assert_eq!(
            (a["satisfied"].clone(), a["unmet"].clone()),
            (json!(false), json!(["transaction"]))
        );
        let a = assure(&app, &id, format!("methods=otp&transaction={HASH}")).await;
        assert_eq!(a["satisfied"], true, "{a}");
        let bad = app
            .request(
                reqwest::Method::GET,
                &format!("/v1/interactions/{id}/assurance?transaction=short"),
                Some(&app.keys.bot),
            )
            .send()
            .await
            .unwrap();
        assert_problem(bad, 422, "invalid_request").await;
        app.advance(301);
        let old = assure(&app, &id, format!("max_age=5m&transaction={HASH}")).await;
        assert_eq!(old["unmet"], json!(["max_age"]));

        // The events carry the transaction and its hash, never the token.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let seen = events_text(&mut app).await;
        let created = seen.iter().find(|(k, _)| k == "challenge.created").unwrap();
        assert_eq!(created.1["challenge"]["transaction"], payment());
        assert_eq!(created.1["challenge"]["transaction_hash"], HASH);
        let approved = seen
            .iter()
            .find(|(k, _)| k == "transaction.approved")
            .expect("transaction.approved");
        assert_eq!(approved.1["challenge"]["challenge_id"], cid.as_str());
        assert_eq!(approved.1["transaction"], payment());
        assert_eq!(approved.1["transaction_hash"], HASH);
        assert_eq!(approved.1["interaction"]["id"], id.as_str());
        let signature = token.rsplit('.').next().unwrap();
        for (kind, data) in &seen {
            assert!(
                !data.to_string().contains(signature),
                "{kind} holds the token"
            );
        }
    }
);

/// The approval of [`payment`] by a code sent by SMS: the verify answer.
async fn approve_by_sms(app: &TestApp, id: &str) -> Value {
    let c: Value = start(
        app,
        id,
        json!({"method": "otp", "delivery": "sms", "transaction": payment()}),
    )
    .await
    .json()
    .await
    .unwrap();
    let cid = c["challenge_id"].as_str().unwrap();
    let code = last_sms_code(app).await;
    app.verify_code(id, cid, &code).await.json().await.unwrap()
}

/// The RFC 8037 example key (appendix A.1): a key signed with before a
/// rotation.
fn old_approval_key() -> ed25519_dalek::SigningKey {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
    use base64::Engine as _;
    let d = B64URL
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    ed25519_dalek::SigningKey::from_bytes(&d.try_into().unwrap())
}

both_stores!(
    a_token_made_with_the_teams_security_key_is_no_approval,
    |app: TestApp| async move {
        use chatgate::domain::audit_keys::SigningKeys;
        use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
        let id = interaction(&app).await;
        let v = approve_by_sms(&app, &id).await;
        let token = v["approval"]["token"].as_str().unwrap();
        let jwks = approval_keys(&app).await;
        let (kid, claims) = checked(&app, token).await;
        // What the gateway gives is no HS256 token under the team's key.
        let acme = app.keys.acme_key_bytes();
        let mut hs = Validation::new(Algorithm::HS256);
        hs.validate_aud = false;
        assert!(decode::<Value>(token, &DecodingKey::from_secret(&acme), &hs).is_err());
        // 50,000 EUR to Mallory Ltd, made with acme's security key, under
        // that key's kid or the gateway's: the payment system refuses it.
        let mallory = json!({"type": "payment", "amount": "50000.00", "currency": "EUR",
                             "payee": "Mallory Ltd"});
        let mut forged = claims.clone();
        forged["txn"] = json!(
            chatgate::domain::transaction::Transaction::parse("t", &mallory)
                .unwrap()
                .hash()
        );
        forged["transaction"] = mallory;
        for k in ["2026-11", kid.as_str()] {
            let made = hs256(&forged, &acme, k);
            assert_eq!(payment_system_check(&jwks, &made), None, "kid {k}");
        }
        // The same claims signed by the gateway's key would pass: only the
        // key refuses them.
        let gateways = SigningKeys::from_pem(&app.keys.approvals_pem, &[]).unwrap();
        let signed = gateways.sign(&forged).unwrap();
        assert_eq!(payment_system_check(&jwks, &signed), Some(forged));
    }
);

/// A rotation: the new key signs, the old one's public key stays listed.
fn rotated() -> Setup {
    use ed25519_dalek::pkcs8::EncodePublicKey;
    let old = old_approval_key()
        .verifying_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    let new = chatgate::domain::audit_keys::new_signing_key_pem().unwrap();
    Setup {
        approvals: Some(format!(
            "[approvals]\nsigning_key = \"\"\"\n{new}\"\"\"\nprevious_signing_keys = [\"\"\"\n{old}\"\"\"]\n"
        )),
        ..Setup::default()
    }
}

both_stores!(
    a_rotated_approval_key_stays_listed_and_its_tokens_still_verify,
    setup: rotated(),
    |app: TestApp| async move {
        use chatgate::domain::audit_keys::SigningKeys;
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        let jwks = approval_keys(&app).await;
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "{jwks}");
        // RFC 8037's thumbprint of its example key (appendix A.3).
        assert_eq!(keys[1]["kid"], "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let id = interaction(&app).await;
        let v = approve_by_sms(&app, &id).await;
        let (kid, claims) = checked(&app, v["approval"]["token"].as_str().unwrap()).await;
        assert_eq!(keys[0]["kid"], kid.as_str(), "the new key signs");
        // A token the old key signed before the rotation still verifies.
        let old_pem = old_approval_key().to_pkcs8_pem(Default::default()).unwrap();
        let old = SigningKeys::from_pem(&old_pem, &[]).unwrap();
        let before = old.sign(&claims).unwrap();
        assert_eq!(payment_system_check(&jwks, &before), Some(claims));
    }
);

both_stores!(
    without_the_approvals_key_a_payment_is_422_and_no_key_is_listed,
    setup: Setup {
        approvals: Some(String::new()),
        ..Setup::default()
    },
    |app: TestApp| async move {
        assert_eq!(approval_keys(&app).await, json!({"keys": []}));
        let id = interaction(&app).await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": payment()}),
        )
        .await;
        let p = assert_problem(res, 422, "invalid_request").await;
        let detail = p["detail"].as_str().unwrap();
        assert!(detail.starts_with("transaction:") && detail.contains("[approvals]"), "{p}");
        assert!(sms_bodies(&app).await.is_empty(), "nothing was sent");
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        // A code for no payment needs no approval key.
        let res = start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(res.status(), 201);
    }
);

both_stores!(
    every_refusal_names_its_member_and_sends_nothing,
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let with = |member: &str, v: Value| {
            let mut t = payment();
            t[member] = v;
            t
        };
        let without = |member: &str| {
            let mut t = payment();
            t.as_object_mut().unwrap().remove(member);
            t
        };
        let cases = [
            (without("amount"), 400, "transaction.amount"),
            (without("payee"), 400, "transaction.payee"),
            (with("amount", json!(120)), 400, "transaction.amount"),
            (
                with("reference", json!(["x"])),
                400,
                "transaction.reference",
            ),
            (json!("120 EUR"), 400, "transaction"),
            (with("iban", json!("DE89")), 422, "transaction.iban"),
            (with("type", json!("Payment")), 422, "transaction.type"),
            (with("amount", json!("0.00")), 422, "transaction.amount"),
            (with("amount", json!("12.5e3")), 422, "transaction.amount"),
            (with("amount", json!("1.001")), 422, "transaction.amount"),
            (with("currency", json!("XYZ")), 422, "transaction.currency"),
            (
                with("payee", json!("ACME\u{202E}dtL")),
                422,
                "transaction.payee",
            ),
            (
                with("payee", json!("\u{0410}CME Energy")),
                422,
                "transaction.payee",
            ),
            (
                with("payee", json!("ACME\u{E000}")),
                422,
                "transaction.payee",
            ),
            (
                with("payee", json!("ACME\u{00A0}Energy")),
                422,
                "transaction.payee",
            ),
            (
                with("payee", json!("p".repeat(71))),
                422,
                "transaction.payee",
            ),
            (
                with("reference", json!("r".repeat(36))),
                422,
                "transaction.reference",
            ),
        ];
        for (t, status, member) in cases {
            let res = start(
                &app,
                &id,
                json!({"method": "otp", "delivery": "sms", "transaction": t}),
            )
            .await;
            let p = assert_problem(res, status, "invalid_request").await;
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.starts_with(&format!("{member}:")), "{t}: {detail}");
        }
        // A PIN approves no payment; an agent never holds its code.
        let res = start(
            &app,
            &id,
            json!({"method": "pin", "transaction": payment()}),
        )
        .await;
        assert_problem(res, 422, "invalid_request").await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "agent", "transaction": payment()}),
        )
        .await;
        assert_problem(res, 422, "invalid_request").await;
        assert!(sms_bodies(&app).await.is_empty(), "nothing was sent");
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        let s = app
            .get_json("/v1/subjects/cust-42", Some(&app.keys.agent))
            .await;
        assert_eq!(s["failures"], 0);
    }
);

both_stores!(
    a_payee_that_reads_as_a_link_a_layout_or_a_smudge_is_refused,
    |app: TestApp| async move {
        // docs/payments.md#the-payee: the payee comes from the payment
        // system; what reads as something else is never printed.
        let id = interaction(&app).await;
        let mut t = payment();
        for payee in [
            "Bob. Pay at https://pay.example/bob",
            "Bob www.pay.example",
            "Bob.  Ignore the amount",
            "Bo\u{301}\u{308}\u{30a}b",
        ] {
            t["payee"] = json!(payee);
            let body = json!({"method": "otp", "delivery": "sms", "transaction": t});
            let res = start(&app, &id, body).await;
            let p = assert_problem(res, 422, "invalid_request").await;
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.starts_with("transaction.payee:"), "{payee}: {p}");
            assert!(
                !detail.contains("pay.example"),
                "the value is not echoed: {p}"
            );
        }
        assert!(sms_bodies(&app).await.is_empty(), "nothing was sent");
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        // One accent on a letter is a name.
        t["payee"] = json!("Zoe\u{301} Energy");
        let body = json!({"method": "otp", "delivery": "sms", "transaction": t});
        assert_eq!(start(&app, &id, body).await.status(), 201);
        assert!(sms_bodies(&app).await[0].contains("to Zoe\u{301} Energy."));
    }
);

both_stores!(
    a_payee_reference_or_payee_id_that_reads_as_an_instruction_is_refused,
    |app: TestApp| async move {
        // docs/payments.md#the-payee: a domain name, an e-mail address, a
        // phone number, `:/`, `!`, `?` or a sentence after a name is never
        // printed where the code arrives; a reference follows the same
        // rules, a payee's account is no link.
        let id = interaction(&app).await;
        let cases = [
            ("payee", "Bob. Ignore the amount, it is 1.00 EUR"),
            ("payee", "evil.example/pay"),
            ("payee", "EVIL.EXAMPLE"),
            ("payee", "http:/evil.example"),
            ("payee", "ACME Energy, call +447400123456"),
            ("payee", "Mail evil@example.com"),
            ("payee", "ACME Energy!"),
            ("payee", "Refund? ACME"),
            ("reference", "https://evil.example"),
            ("reference", "INV evil.example"),
            ("payee_id", "https://evil.example/pay"),
            ("payee_id", "www.evil.example"),
        ];
        for (member, value) in cases {
            let mut t = payment();
            t[member] = json!(value);
            let body = json!({"method": "otp", "delivery": "sms", "transaction": t});
            let res = start(&app, &id, body).await;
            let p = assert_problem(res, 422, "invalid_request").await;
            let detail = p["detail"].as_str().unwrap();
            let named = format!("transaction.{member}:");
            assert!(detail.starts_with(&named), "{value}: {p}");
            assert!(!detail.contains(value), "the value is not echoed: {p}");
        }
        assert!(sms_bodies(&app).await.is_empty(), "nothing was sent");
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        let s = app
            .get_json("/v1/subjects/cust-42", Some(&app.keys.agent))
            .await;
        assert_eq!(s["failures"], 0);
        // Initials and a name after a dot are names.
        for payee in [
            "Dr. Smith",
            "ACME Ltd. Energy Services",
            "Förderverein e.V.",
        ] {
            let mut t = payment();
            t["payee"] = json!(payee);
            let body = json!({"method": "otp", "delivery": "sms", "transaction": t});
            assert_eq!(start(&app, &id, body).await.status(), 201, "{payee}");
        }
        assert!(sms_bodies(&app).await[2].contains("to Förderverein e.V.."));
    }
);

both_stores!(
    a_payee_in_cyrillic_letters_that_look_latin_is_refused,
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let mut t = payment();
        t["payee"] = json!("\u{410}\u{421}\u{41c}\u{415} Energy Ltd"); // АСМЕ
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": t}),
        )
        .await;
        let p = assert_problem(res, 422, "invalid_request").await;
        assert!(
            p["detail"]
                .as_str()
                .unwrap()
                .starts_with("transaction.payee:"),
            "{p}"
        );
        assert!(sms_bodies(&app).await.is_empty(), "nothing was sent");
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        // A Cyrillic name that reads as no Latin one is paid as written.
        t["payee"] = json!("Ромашка");
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": t}),
        )
        .await;
        assert_eq!(res.status(), 201);
        assert!(sms_bodies(&app).await[0].contains("to pay 120.00 EUR to Ромашка."));
    }
);

both_stores!(
    a_replaced_transaction_voids_the_first_code,
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let first = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": payment()}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
        let first_code = last_sms_code(&app).await;
        let mut changed = payment();
        changed["amount"] = json!("1200.00");
        let second = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": changed}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
        let second_code = last_sms_code(&app).await;
        assert!(sms_bodies(&app).await[1].contains("to pay 1200.00 EUR to ACME Energy Ltd."));
        let second_hash = second["transaction_hash"].as_str().unwrap().to_string();
        assert_ne!(second_hash, HASH);
        let (c1, c2) = (
            first["challenge_id"].as_str().unwrap(),
            second["challenge_id"].as_str().unwrap(),
        );
        // The first code answers neither its own challenge, now replaced,
        // nor the payment that replaced it.
        let res = app.verify_code(&id, c1, &first_code).await;
        assert_eq!(res.status(), 410);
        if first_code != second_code {
            let res = app.verify_code(&id, c2, &first_code).await;
            assert_eq!(res.status(), 401);
        }
        let v: Value = app
            .verify_code(&id, c2, &second_code)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["approval"]["transaction_hash"], second_hash.as_str());
        let a = app
            .get_json(
                &format!("/v1/interactions/{id}/assurance?transaction={HASH}"),
                Some(&app.keys.bot),
            )
            .await;
        assert_eq!(
            a["unmet"],
            json!(["transaction"]),
            "the first payment was never approved"
        );
        // A later code for no payment approves none.
        let res = start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await;
        let plain: Value = res.json().await.unwrap();
        assert!(plain.get("transaction").is_none());
        let code = last_sms_code(&app).await;
        assert!(sms_bodies(&app).await[2].starts_with("Your verification code is "));
        let cid = plain["challenge_id"].as_str().unwrap();
        let v: Value = app.verify_code(&id, cid, &code).await.json().await.unwrap();
        assert!(v.get("approval").is_none(), "{v}");
        let a = app
            .get_json(
                &format!("/v1/interactions/{id}/assurance?transaction={second_hash}"),
                Some(&app.keys.bot),
            )
            .await;
        assert_eq!(a["unmet"], json!(["transaction"]));
    }
);

both_stores!(
    agents_never_see_a_payment_code,
    setup: Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let c: Value = start(&app, &id, json!({"method": "otp", "delivery": "sms", "transaction": payment()}))
            .await
            .json()
            .await
            .unwrap();
        let cid = c["challenge_id"].as_str().unwrap();
        let res = app
            .request(
                reqwest::Method::GET,
                &format!("/v1/interactions/{id}/challenges/{cid}/code"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 403, "forbidden").await;
        // The same team's plain code is shown.
        let c: Value = start(&app, &id, json!({"method": "otp", "delivery": "sms"}))
            .await
            .json()
            .await
            .unwrap();
        let cid = c["challenge_id"].as_str().unwrap();
        let shown = app
            .get_json(
                &format!("/v1/interactions/{id}/challenges/{cid}/code"),
                Some(&app.keys.agent),
            )
            .await;
        assert_eq!(shown["code"].as_str().unwrap(), last_sms_code(&app).await);
    }
);

/// A WhatsApp channel that sends codes through its authentication
/// template, as the team's SMS channel and a ladder's first step.
fn templated() -> Setup {
    let wa = "name = \"wa\"\nkind = \"whatsapp\"\nbase_url = \"{CHAT_URL}\"\n\
              api_version = \"v21.0\"\nphone_number_id = \"1065\"\n\
              token = \"${CG_TEST_UNSET_WA:-wa-token}\"\notp_template = \"chatgate_otp\"\n";
    Setup {
        extra_channels: vec![("wa".into(), wa.into())],
        team_extra: "[settings.otp]\nladder = [\"wa\", \"sms\"]\n".into(),
        ..Setup::default()
    }
}

both_stores!(
    a_delivery_that_cannot_show_the_payment_is_refused_and_a_ladder_skips_it,
    setup: templated(),
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "ladder", "transaction": payment()}),
        )
        .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        assert_eq!(c["channel"], "sms", "the templated step was skipped");
        let code = last_sms_code(&app).await;
        assert_eq!(
            sms_bodies(&app).await,
            [format!(
                "{code} is your code to pay 120.00 EUR to ACME Energy Ltd. \
                 Only enter it if you mean to pay. It expires in 3 minutes."
            )]
        );
        let whatsapp = app
            .chat
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == "/v21.0/1065/messages")
            .count();
        assert_eq!(whatsapp, 0, "nothing went through the template");
    }
);

both_stores!(
    a_templated_sms_channel_is_422_for_a_payment,
    setup: Setup {
        sms_channel: Some("wa".into()),
        ..templated()
    },
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "transaction": payment()}),
        )
        .await;
        let p = assert_problem(res, 422, "invalid_request").await;
        assert!(p["detail"].as_str().unwrap().starts_with("delivery:"), "{p}");
        assert_eq!(app.get(&id).await["open_challenge"], Value::Null);
        // Without a payment the templated channel is asked to take the code.
        let res = start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await;
        assert_ne!(res.status(), 422);
        let asked = app.chat.received_requests().await.unwrap();
        assert!(asked.iter().any(|r| r.url.path() == "/v21.0/1065/messages"));
    }
);

both_stores!(
    the_texts_are_translated_and_a_text_without_the_amount_stops_the_start,
    setup: Setup {
        defaults: "[defaults.locale]\nsupported = [\"en\", \"es\"]\n\n\
                   [defaults.translations.es]\n\
                   otp_transaction = \"#PIN# es tu código para pagar #AMOUNT# a #PAYEE#. Caduca en #MINUTES# minutos.\"\n"
            .into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = interaction(&app).await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "locale": "es", "transaction": payment()}),
        )
        .await;
        assert_eq!(res.status(), 201);
        let code = last_sms_code(&app).await;
        assert_eq!(
            sms_bodies(&app).await,
            [format!("{code} es tu código para pagar 120.00 EUR a ACME Energy Ltd. Caduca en 3 minutos.")]
        );
        // A translation or template that lost #AMOUNT# or #PAYEE# is refused.
        let system = app.dir.join("config/chatgate.toml");
        let text = std::fs::read_to_string(&system).unwrap();
        let lost = text.replace(" a #PAYEE#", "");
        std::fs::write(&system, lost).unwrap();
        let err = chatgate::config::load(&system).unwrap_err();
        assert_eq!(err.key, "defaults.translations.es.otp_transaction", "{err}");
        assert!(err.problem.contains("#PAYEE#"), "{err}");
        std::fs::write(
            &system,
            format!("{text}\n[defaults.templates]\napp_prompt_transaction = \"Approve #CODE# for #PAYEE#\"\n"),
        )
        .unwrap();
        let err = chatgate::config::load(&system).unwrap_err();
        assert!(err.key.ends_with("templates.app_prompt_transaction"), "{err}");
        assert!(err.problem.contains("#AMOUNT#"), "{err}");
    }
);
