//! A customer's wallet registered for payments
//! (docs/wallet.md#registering-the-wallet-for-payments), end to end with
//! the wallet written in `wallet.rs`: the team's `sca` credential keeps
//! its default `registration = "required"`; a registration needs a recent
//! authentication with a `customer_ref` by another method; its binding
//! code registers the attestation's issuer and holder key (the read, the
//! list, the audit trail, the event); only that key of that issuer then
//! approves a payment; another wallet's attestation of the same issuer is
//! refused and counted; an admin removes a registration.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;
use crate::wallet::{
    answer_with, ask, bound, code_at, failures, fetch_request, fixtures, interaction, read,
    respond, signed_jws, signing_key, started, started_as, Access,
};
use crate::wallet_payments::{entry_of, payment, present_as, start_payment, ts12_claims};

/// The bank's SCA attestation (the fixtures' issuer issues it under the
/// PID's type), `registration` at its default.
const SCA: &str = "[[wallet.credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\n\
                   vct = [\"urn:eudi:pid:1\"]\npurpose = \"sca\"\n";

/// A test on both stores of a bank whose `sca` credential is [`SCA`].
macro_rules! registration_test {
    ($name:ident, $body:expr) => {
        crate::wallet_payments::bank_test!($name, super::SCA, $body);
    };
}

/// The fixture holder's key: the one the fixture attestation is bound to.
fn fixture_holder() -> p256::ecdsa::SigningKey {
    signing_key(&fixtures()["holder"]["d"])
}

/// The RFC 7638 thumbprint of `key`'s public JWK, written out here.
fn thumbprint_of(key: &p256::ecdsa::SigningKey) -> String {
    let point = key.verifying_key().to_encoded_point(false);
    let (x, y) = (
        B64URL.encode(point.x().unwrap()),
        B64URL.encode(point.y().unwrap()),
    );
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    B64URL.encode(Sha256::digest(canonical.as_bytes()))
}

/// The fixture attestation's issuer JWT, issued again by the fixtures'
/// issuer (its key and `x5c`) to a second wallet: bound to `holder`.
fn issued_to(holder: &p256::ecdsa::SigningKey) -> String {
    let f = fixtures();
    let jwt = f["cases"]["es256"]
        .as_str()
        .unwrap()
        .split('~')
        .next()
        .unwrap();
    let part = |i: usize| -> Value {
        serde_json::from_slice(&B64URL.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    };
    let (header, mut claims) = (part(0), part(1));
    let point = holder.verifying_key().to_encoded_point(false);
    claims["cnf"]["jwk"] = json!({"kty": "EC", "crv": "P-256",
        "x": B64URL.encode(point.x().unwrap()), "y": B64URL.encode(point.y().unwrap())});
    signed_jws(&header, &claims, &signing_key(&f["issuer_key"]["d"]))
}

/// Registers the wallet of `holder` (and attestation `issued`) for
/// `customer` on a new interaction authenticated by a login link:
/// (interaction, challenge).
async fn register(
    app: &TestApp,
    a: &Access,
    customer: &str,
    (issued, holder): (Option<&str>, &p256::ecdsa::SigningKey),
) -> (String, String) {
    let id = interaction(app, customer).await;
    app.authenticate(&id, customer).await;
    let body = json!({"method": "wallet", "credential": "sca", "register": true});
    let (cid, link) = started(app, &id, body).await;
    let asked = fetch_request(app, a, &link).await;
    assert!(asked.get("transaction_data").is_none(), "{asked}");
    let presented = present_as(&asked, &json!({}), (issued, holder));
    let answered = respond(app, &answer_with(&asked, "sca", &presented, true)).await;
    bound(app, answered, &id, &cid).await;
    (id, cid)
}

/// A payment presented by the wallet of `holder` (and attestation
/// `issued`) on a new interaction of `customer`: (interaction, challenge,
/// the answer).
async fn pay(
    app: &TestApp,
    a: &Access,
    (customer, jti): (&str, &str),
    (issued, holder): (Option<&str>, &p256::ecdsa::SigningKey),
) -> (String, String, reqwest::Response) {
    let id = interaction(app, customer).await;
    let (cid, link) = start_payment(app, &id).await;
    let asked = fetch_request(app, a, &link).await;
    let claims = ts12_claims(&entry_of(&asked), jti);
    let presented = present_as(&asked, &claims, (issued, holder));
    let answered = respond(app, &answer_with(&asked, "sca", &presented, true)).await;
    (id, cid, answered)
}

async fn wallets(app: &TestApp, customer: &str, key: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{customer}/wallets"), Some(key))
        .await
}

registration_test!(
    a_registration_needs_a_recent_authentication_with_a_customer_ref,
    |app: TestApp, _a: Access| async move {
        let body = json!({"method": "wallet", "credential": "sca", "register": true});
        // Not authenticated at all.
        let id = interaction(&app, "cust-new").await;
        assert_problem(ask(&app, &id, body.clone()).await, 409, "not_authenticated").await;
        // Authenticated, but without a customer_ref to register for.
        let bare = app.new_interaction().await;
        app.authenticate(&bare, "cust-bare").await;
        assert_problem(
            ask(&app, &bare, body.clone()).await,
            409,
            "not_authenticated",
        )
        .await;
        // Authenticated more than 10 minutes ago.
        app.authenticate(&id, "cust-new").await;
        app.advance(10 * 60 + 1);
        assert_problem(ask(&app, &id, body.clone()).await, 409, "not_authenticated").await;
        // The shape first: a transaction, a credential that proves no
        // payment, another method.
        let mut paying = body.clone();
        paying["transaction"] = payment();
        let refused = assert_problem(ask(&app, &id, paying).await, 422, "invalid_request").await;
        assert!(
            refused["detail"].as_str().unwrap().contains("transaction"),
            "{refused}"
        );
        let pid = json!({"method": "wallet", "credential": "pid", "register": true,
                         "match": {"family_name": "Lovelace"}});
        let refused = assert_problem(ask(&app, &id, pid).await, 422, "invalid_request").await;
        assert!(
            refused["detail"].as_str().unwrap().contains("register"),
            "{refused}"
        );
        let otp = json!({"method": "otp", "register": true});
        let refused = assert_problem(ask(&app, &id, otp).await, 422, "invalid_request").await;
        assert!(
            refused["detail"].as_str().unwrap().contains("register"),
            "{refused}"
        );
        // Nothing of these was counted, and a fresh authentication opens it.
        assert_eq!(failures(&app, "cust-new").await, json!(0));
        app.authenticate(&id, "cust-new").await;
        let res = ask(&app, &id, body).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    }
);

registration_test!(
    only_a_registered_wallet_of_its_issuer_approves_a_payment,
    |mut app: TestApp, a: Access| async move {
        let customer = "cust-reg";
        let holder = fixture_holder();
        // Before any registration the payment is refused at the ask.
        let id = interaction(&app, customer).await;
        let body = json!({"method": "wallet", "credential": "sca", "transaction": payment()});
        assert_problem(ask(&app, &id, body).await, 409, "not_registered").await;

        let (rid, rcid) = register(&app, &a, customer, (None, &holder)).await;
        let c = read(&app, &rid, &rcid, &app.keys.bot).await;
        assert_eq!(
            (c["state"].as_str(), c["wallet"]["registered"].as_bool()),
            (Some("used"), Some(true)),
            "{c}"
        );
        assert!(
            c["approval"].is_null(),
            "a registration approves nothing: {c}"
        );
        let registered = app
            .next_event("wallet.registered", std::time::Duration::from_secs(5))
            .await
            .expect("wallet.registered");
        // As the document states it.
        let doc = app.get_json("/openapi.json", None).await;
        let event = json!({"$ref": "#/components/schemas/Event"});
        let whole = serde_json::to_value(&*registered).unwrap();
        crate::openapi::conforms(&doc, &event, &whole, "event").unwrap();
        let data = event_data(&registered);
        let issuer = fixtures()["issuer_subject"].clone();
        assert_eq!(data["issuer"], issuer);
        assert_eq!(data["thumbprint"], thumbprint_of(&holder));
        assert_eq!(data["challenge"]["challenge_id"], rcid.as_str());
        let listed = wallets(&app, customer, &app.keys.bot).await;
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        assert_eq!(listed[0]["issuer"], issuer);
        assert_eq!(listed[0]["thumbprint"], thumbprint_of(&holder));
        assert!(listed[0]["registered_at"].is_string(), "{listed}");
        assert!(listed[0]["last_used_at"].is_null(), "{listed}");
        let trail = app.get_json("/v1/audit", Some(&app.keys.admin)).await;
        let entry = trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "wallet.registered")
            .expect("the registration's entry")
            .clone();
        assert_eq!(entry["target"]["interaction_id"], rid.as_str());
        assert_eq!(entry["target"]["subject"], customer);
        assert_eq!(entry["detail"]["thumbprint"], thumbprint_of(&holder));
        assert!(
            !entry.to_string().contains("Lovelace"),
            "never a claim: {entry}"
        );

        // The registered wallet approves a payment, and is marked used.
        let (id, cid, answered) = pay(&app, &a, (customer, "psd2-reg-1"), (None, &holder)).await;
        bound(&app, answered, &id, &cid).await;
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert!(c["approval"]["token"].is_string(), "{c}");
        let listed = wallets(&app, customer, &app.keys.agent).await;
        assert!(listed[0]["last_used_at"].is_string(), "{listed}");

        // A second wallet: the same issuer's attestation, another key.
        let other = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let issued = issued_to(&other);
        let second = (Some(issued.as_str()), &other);
        let (id, cid, answered) = pay(&app, &a, (customer, "psd2-reg-2"), second).await;
        assert_eq!(answered.status(), 200);
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(
            (c["state"].as_str(), c["wallet"]["result"].as_str()),
            (Some("failed"), Some("invalid_presentation")),
            "{c}"
        );
        assert!(c["approval"].is_null(), "{c}");
        assert_eq!(failures(&app, customer).await, json!(1));
        let failed = app
            .next_event("challenge.failed", std::time::Duration::from_secs(5))
            .await
            .expect("challenge.failed");
        assert_eq!(event_data(&failed)["reason"], "not_registered");
        let whole = serde_json::to_value(&*failed).unwrap();
        crate::openapi::conforms(&doc, &event, &whole, "event").unwrap();
    }
);

registration_test!(
    an_admin_removes_a_registration_and_an_agent_needs_a_person,
    |app: TestApp, a: Access| async move {
        let customer = "cust-gone";
        let holder = fixture_holder();
        register(&app, &a, customer, (None, &holder)).await;
        let path = format!("/v1/subjects/{customer}/wallets/{}", thumbprint_of(&holder));
        let send = |key: String| {
            let path = path.clone();
            let app = &app;
            async move {
                app.request(reqwest::Method::DELETE, &path, Some(&key))
                    .send()
                    .await
                    .unwrap()
            }
        };
        // A bot lists, never removes; an agent without a person neither.
        assert_problem(send(app.keys.bot.clone()).await, 403, "forbidden").await;
        assert_problem(send(app.keys.agent.clone()).await, 403, "person_required").await;
        assert_eq!(
            wallets(&app, customer, &app.keys.agent)
                .await
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        let res = send(app.keys.admin.clone()).await;
        assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
        assert_eq!(wallets(&app, customer, &app.keys.agent).await, json!([]));
        assert_problem(send(app.keys.admin.clone()).await, 404, "not_found").await;
        let trail = app.get_json("/v1/audit", Some(&app.keys.admin)).await;
        let removed = trail["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "wallet.unregistered")
            .expect("the removal's entry")
            .clone();
        assert_eq!(removed["target"]["subject"], customer);
        assert_eq!(removed["detail"]["thumbprint"], thumbprint_of(&holder));
        assert_eq!(removed["actor"]["type"], "api_key");
        // With none left, a payment is refused at the ask again.
        let id = interaction(&app, customer).await;
        let body = json!({"method": "wallet", "credential": "sca", "transaction": payment()});
        assert_problem(ask(&app, &id, body).await, 409, "not_registered").await;
    }
);

/// [`SCA`], and room for the eight challenges of one customer that
/// [`a_sixth_registration_replaces_the_oldest`] sends within the send
/// window (a Key Binding JWT of the fixtures is too old for the clock to
/// move past it).
const SCA_EIGHT_SENDS: &str = "[[wallet.credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\n\
                               vct = [\"urn:eudi:pid:1\"]\npurpose = \"sca\"\n\
                               [settings.otp]\nmax_sends = 8\n";

crate::wallet_payments::bank_test!(
    a_sixth_registration_replaces_the_oldest,
    super::SCA_EIGHT_SENDS,
    |app: TestApp, a: Access| async move {
        let customer = "cust-six";
        let holders: Vec<p256::ecdsa::SigningKey> = (0..6)
            .map(|_| p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng))
            .collect();
        for holder in &holders {
            let issued = issued_to(holder);
            register(&app, &a, customer, (Some(issued.as_str()), holder)).await;
            app.advance(1);
        }
        let listed = wallets(&app, customer, &app.keys.bot).await;
        let prints: Vec<String> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["thumbprint"].as_str().unwrap().to_string())
            .collect();
        let newest: Vec<String> = holders[1..].iter().map(thumbprint_of).collect();
        assert_eq!(prints.len(), 5, "{listed}");
        for print in &newest {
            assert!(prints.contains(print), "{print} not in {listed}");
        }
        assert!(!prints.contains(&thumbprint_of(&holders[0])), "{listed}");
        // The oldest's wallet no longer approves a payment; the newest's does.
        let issued = issued_to(&holders[0]);
        let oldest = (Some(issued.as_str()), &holders[0]);
        let (id, cid, answered) = pay(&app, &a, (customer, "psd2-six-1"), oldest).await;
        assert_eq!(answered.status(), 200);
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(c["wallet"]["result"], "invalid_presentation", "{c}");
        let issued = issued_to(&holders[5]);
        let newest = (Some(issued.as_str()), &holders[5]);
        let (id, cid, answered) = pay(&app, &a, (customer, "psd2-six-2"), newest).await;
        bound(&app, answered, &id, &cid).await;
    }
);

/// Team `newco`'s body (written through the operator API), its bot key
/// `bot` and security key `security`, with acme's `[wallet]` of access
/// `a` and its `sca` credential.
fn newco_with_a_wallet(a: &Access, bot: &str, security: &str) -> Value {
    let mut body = crate::operator_writes::team("newco", security);
    body["api_keys"] = json!([{"id": "newco-bot", "role": "bot",
        "sha256": chatgate::domain::secrets::ApiKeyHash::of_key(bot).to_hex()}]);
    body["webhook"]["url"] = json!(format!("http://127.0.0.1:{}/events", free_port()));
    body["wallet"] = json!({
        "signing_key": a.key_pem,
        "certificate_chain": a.chain_pem,
        "trusted_issuers": [fixtures()["trusted"][0]],
        "credentials": [{"id": "sca", "format": "dc+sd-jwt", "vct": ["urn:eudi:pid:1"], "purpose": "sca"}],
    });
    body
}

/// Registers the fixture holder's wallet for `customer` of team `newco`
/// (its bot key `bot`, its security key `security`).
async fn register_at_newco(
    app: &TestApp,
    a: &Access,
    (bot, security): (&str, &str),
    customer: &str,
) {
    use base64::engine::general_purpose::STANDARD as B64;
    let body = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                      "customer_ref": customer});
    let id = app.create_as(bot, body).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let link = format!("/v1/interactions/{id}/login-links");
    let res = app.post_json(&link, Some(bot), &json!({})).await;
    assert_eq!(res.status(), 201);
    let token = res.json::<Value>().await.unwrap()["token"].clone();
    let key = B64.decode(security.trim_start_matches("whsec_")).unwrap();
    let callback = json!({"token": token, "outcome": "success", "customer": {"id": customer}});
    let res = app
        .post_signed("/v1/login/callback", &callback, Some(&key))
        .await;
    assert_eq!(res.status(), 200);
    let body = json!({"method": "wallet", "credential": "sca", "register": true});
    let (cid, link) = started_as(app, bot, &id, body).await;
    let asked = fetch_request(app, a, &link).await;
    let presented = present_as(&asked, &json!({}), (None, &fixture_holder()));
    let answered = respond(app, &answer_with(&asked, "sca", &presented, true)).await;
    assert_eq!(answered.status(), 200);
    let redirect = answered.json::<Value>().await.unwrap()["redirect_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = code_at(app, &redirect).await;
    let verify = format!("/v1/interactions/{id}/challenges/{cid}/verify");
    let res = app
        .post_json(&verify, Some(bot), &json!({"code": code}))
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

both_stores!(
    a_team_written_again_has_no_registrations,
    setup: crate::operator_writes::with_operator(),
    |app: TestApp| async move {
        use crate::operator_writes::{delete, etag_of, put};
        let now = fixtures()["now"].as_i64().unwrap();
        app.clock.set(chatgate::time::Timestamp::from_unix_seconds(now));
        let a = crate::wallet::access();
        let (bot, security) = ("newco-wallet-bot-key", chatgate::domain::secrets::generate_whsec());
        let res = put(&app, "newco", &newco_with_a_wallet(&a, bot, &security), &[]).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        let etag = etag_of(&res);
        register_at_newco(&app, &a, (bot, &security), "cust-again").await;
        let listed = wallets(&app, "cust-again", bot).await;
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        // Deleted and written again, the same body: none left.
        let res = delete(&app, "newco", &[("If-Match", &etag)]).await;
        assert_eq!(res.status(), 204);
        let res = put(&app, "newco", &newco_with_a_wallet(&a, bot, &security), &[]).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        assert_eq!(wallets(&app, "cust-again", bot).await, json!([]));
        // A payment is refused at the ask: nothing registered.
        let body = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                          "customer_ref": "cust-again"});
        let id = app.create_as(bot, body).await["id"].as_str().unwrap().to_string();
        let ask = json!({"method": "wallet", "credential": "sca",
                         "transaction": crate::wallet_payments::payment()});
        let path = format!("/v1/interactions/{id}/challenges");
        assert_problem(app.post_json(&path, Some(bot), &ask).await, 409, "not_registered").await;
    }
);

/// The store calls of a registration and of a payment only a registered
/// wallet approves (docs/performance.md#a-wallet-challenge), each
/// (reads, commits), beside a wallet challenge's
/// (`round_trips::what_a_wallet_challenge_costs_the_store`): a
/// registration's start reads nothing more (its rule is on the
/// interaction it loads); its answer neither (a registration checks no
/// registration); its binding code reads the customer's registrations in
/// the unit of work that authenticates, and the trail's head its
/// `wallet.registered` entry chains after, and writes both in its commit
/// (two reads more). A payment's start reads the registrations (one read more);
/// its answer too (one more), beside its authentication code's claim (one
/// commit more than an identity's answer); its binding code reads them
/// again to mark the key used (one read more).
async fn what_a_registration_costs_the_store(backend: Backend) {
    use std::sync::atomic::Ordering;
    let Some((counting, prefix)) = crate::round_trips::counting_on(backend).await else {
        return;
    };
    let a = crate::wallet::access();
    let mut setup = crate::wallet::wallet_setup(&a, "");
    setup.team_extra.push_str(SCA);
    setup.key_prefix = Some(prefix);
    setup.store = Some(counting.clone());
    let app = spawn_with(backend, setup).await.unwrap();
    let now = fixtures()["now"].as_i64().unwrap();
    app.clock
        .set(chatgate::time::Timestamp::from_unix_seconds(now));
    let calls = || {
        (
            counting.reads.load(Ordering::SeqCst),
            counting.commits.load(Ordering::SeqCst),
        )
    };
    let settled = || tokio::time::sleep(std::time::Duration::from_millis(300));
    let mut rows: Vec<(&str, (usize, usize))> = Vec::new();
    let mut count = |what: &'static str, before: (usize, usize)| {
        let after = calls();
        rows.push((what, (after.0 - before.0, after.1 - before.1)));
    };
    let holder = fixture_holder();
    let customer = "cust-counted";

    let id = interaction(&app, customer).await;
    app.authenticate(&id, customer).await;
    settled().await;
    let before = calls();
    let body = json!({"method": "wallet", "credential": "sca", "register": true});
    let (cid, link) = started(&app, &id, body).await;
    settled().await;
    count("registration start", before);
    let asked = fetch_request(&app, &a, &link).await;
    let presented = present_as(&asked, &json!({}), (None, &holder));
    let before = calls();
    let answered = respond(&app, &answer_with(&asked, "sca", &presented, true)).await;
    settled().await;
    count("registration answer", before);
    let redirect = answered.json::<Value>().await.unwrap()["redirect_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = crate::wallet::code_at(&app, &redirect).await;
    let before = calls();
    crate::wallet::typed_in_chat(&app, &id, &cid, &code).await;
    settled().await;
    count("registration binding code", before);

    let id = interaction(&app, customer).await;
    let before = calls();
    let (cid, link) = start_payment(&app, &id).await;
    settled().await;
    count("registered payment start", before);
    let asked = fetch_request(&app, &a, &link).await;
    let claims = ts12_claims(&entry_of(&asked), "psd2-counted");
    let presented = present_as(&asked, &claims, (None, &holder));
    let before = calls();
    let answered = respond(&app, &answer_with(&asked, "sca", &presented, true)).await;
    settled().await;
    count("registered payment answer", before);
    let redirect = answered.json::<Value>().await.unwrap()["redirect_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = crate::wallet::code_at(&app, &redirect).await;
    let before = calls();
    crate::wallet::typed_in_chat(&app, &id, &cid, &code).await;
    settled().await;
    count("registered payment binding code", before);

    for (what, (reads, commits)) in &rows {
        eprintln!("{backend:?} {what}: {reads} reads, {commits} commits");
    }
    let expected = [
        ("registration start", (1, 3)),
        ("registration answer", (3, 1)),
        ("registration binding code", (3, 2)),
        ("registered payment start", (2, 3)),
        ("registered payment answer", (4, 2)),
        ("registered payment binding code", (2, 2)),
    ];
    assert_eq!(rows, expected, "store calls (reads, commits)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_registration_costs_the_store_on_memory() {
    what_a_registration_costs_the_store(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_registration_costs_the_store_on_redis() {
    what_a_registration_costs_the_store(Backend::Redis).await;
}
