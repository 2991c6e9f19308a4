//! A stronger sign-in asked per link (docs/api.md#hosted-login-openid-connect):
//! a login link's own `acr_values` go to the provider instead of the
//! team's and the ID token's `acr` must be one of them; the read says the
//! token's `acr` and `amr` until the next authentication
//! (docs/api.md#the-interaction-object); assurance's `acr`, asked or an
//! intent's (docs/api.md#assurance-for-one-action). Against the fake
//! provider of `oidc_provider.rs`, on both stores.
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc::{failures, login, oidc_link, spawn_idp};

/// The team asks `gold` of every login; an intent asks a passkey.
const TEAM: &str = "acr_values = [\"gold\"]\n[settings.intents.passkey]\nacr = [\"phrh\"]";

macro_rules! acr_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, idp)) = spawn_idp(Backend::Memory, TEAM, "").await {
                    ($body)(app, idp).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, idp)) = spawn_idp(Backend::Redis, TEAM, "").await {
                    ($body)(app, idp).await;
                }
            }
        }
    };
}

async fn assurance(app: &TestApp, id: &str, query: &str) -> reqwest::Response {
    let path = format!("/v1/interactions/{id}/assurance?{query}");
    app.request(reqwest::Method::GET, &path, Some(&app.keys.bot))
        .send()
        .await
        .unwrap()
}

async fn unmet(app: &TestApp, id: &str, query: &str) -> Value {
    let res = assurance(app, id, query).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json::<Value>().await.unwrap()["unmet"].clone()
}

acr_test!(
    a_link_s_acr_values_are_sent_and_the_token_s_acr_must_be_one_of_them,
    |app: TestApp, idp: crate::oidc_provider::FakeIdp| async move {
        let (id, link) = oidc_link(&app, json!({"acr_values": ["phrh", "phr"]})).await;
        // The provider answers the team's `gold`: not one of the link's.
        let page = login(&app, &link).await;
        assert_eq!(idp.last_authorize()["acr_values"], "phrh phr");
        assert_eq!(page.status, 401, "{}", page.body);
        assert_ne!(app.get(&id).await["status"], "authenticated");
        assert_eq!(failures(&app, "cust-42").await, 0, "nothing counted");
        // A passkey: the same link signs in, and the read says so.
        idp.id_token_claims(json!({"acr": "phrh", "amr": ["hwk", "user"]}));
        let page = login(&app, &link).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let v = app.get(&id).await;
        assert_eq!((&v["method"], &v["acr"]), (&json!("oidc"), &json!("phrh")));
        assert_eq!(v["amr"], json!(["hwk", "user"]));
        // A link without its own asks the team's, and `phrh` is not `gold`.
        let (other, plain) = oidc_link(&app, json!({})).await;
        assert_eq!(login(&app, &plain).await.status, 401);
        assert_eq!(idp.last_authorize()["acr_values"], "gold");
        assert_ne!(app.get(&other).await["status"], "authenticated");
    }
);

acr_test!(
    assurance_s_acr_is_met_only_by_the_provider_s_acr_until_the_next_authentication,
    |app: TestApp, idp: crate::oidc_provider::FakeIdp| async move {
        idp.id_token_claims(json!({"acr": "phrh", "amr": null}));
        let (id, link) = oidc_link(&app, json!({"acr_values": ["phrh"]})).await;
        assert_eq!(login(&app, &link).await.status, 200);
        let v = app.get(&id).await;
        assert_eq!((&v["acr"], &v["amr"]), (&json!("phrh"), &Value::Null));
        assert_eq!(unmet(&app, &id, "acr=phr,phrh&max_age=5m").await, json!([]));
        assert_eq!(unmet(&app, &id, "intent=passkey").await, json!([]));
        assert_eq!(unmet(&app, &id, "acr=gold").await, json!(["acr"]));
        let res = assurance(&app, &id, "acr=phrh").await;
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["satisfied"], true, "{body}");
        // An OTP step-up is the next authentication: no `acr` any more.
        let (cid, code) = app.start_otp(&id).await;
        assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        let v = app.get(&id).await;
        assert_eq!((&v["method"], &v["acr"]), (&json!("otp"), &Value::Null));
        assert_eq!(v["amr"], Value::Null);
        let want = json!(["method", "acr"]);
        assert_eq!(unmet(&app, &id, "methods=oidc&acr=phrh").await, want);
        assert_eq!(unmet(&app, &id, "intent=passkey").await, json!(["acr"]));
    }
);

acr_test!(
    bad_acr_values_or_acr_are_422_naming_the_member_and_make_nothing,
    |app: TestApp, _idp: crate::oidc_provider::FakeIdp| async move {
        let id = app.new_interaction().await;
        let path = format!("/v1/interactions/{id}/login-links");
        let long = "a".repeat(129);
        let bad = [
            (json!({"provider": "oidc", "acr_values": []}), "acr_values"),
            (
                json!({"provider": "oidc", "acr_values": ["a", "b", "c", "d", "e", "f"]}),
                "acr_values",
            ),
            (
                json!({"provider": "oidc", "acr_values": ["ok", "two words"]}),
                "acr_values[1]",
            ),
            (
                json!({"provider": "oidc", "acr_values": [long]}),
                "acr_values[0]",
            ),
            (
                json!({"provider": "oidc", "acr_values": ["caf\u{e9}"]}),
                "acr_values[0]",
            ),
            (
                json!({"provider": "login_page", "acr_values": ["phrh"]}),
                "acr_values",
            ),
            (json!({"acr_values": ["phrh"]}), "acr_values"),
        ];
        for (body, member) in bad {
            let res = app.post_json(&path, Some(&app.keys.bot), &body).await;
            let b = assert_problem(res, 422, "invalid_request").await;
            let detail = b["detail"].as_str().unwrap();
            assert!(detail.starts_with(member), "{body}: {b}");
        }
        let v = app.get(&id).await;
        assert_eq!(v["status"], "unauthenticated", "no link was made: {v}");
        for query in [
            "acr=",
            "acr=a,b,c,d,e,f",
            "acr=two%20words",
            "intent=passkey&acr=phrh",
        ] {
            let res = assurance(&app, &id, query).await;
            assert_problem(res, 422, "invalid_request").await;
        }
    }
);

/// With `login_binding = "chat_code"` the code typed into the chat makes
/// the authentication, which says what the provider's token said.
async fn a_bound_login_keeps_the_provider_s_acr(backend: Backend) {
    let binding = "login_binding = \"chat_code\"";
    let Some((app, idp)) = spawn_idp(backend, TEAM, binding).await else {
        return;
    };
    idp.id_token_claims(json!({"acr": "phrh", "amr": ["hwk"]}));
    let (id, link) = oidc_link(&app, json!({"acr_values": ["phrh"]})).await;
    let page = login(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let code = page.body.split("<strong>").nth(1).unwrap();
    let code = code.split("</strong>").next().unwrap().to_string();
    let v = app.get(&id).await;
    assert_eq!((&v["status"], &v["acr"]), (&json!("pending"), &Value::Null));
    let cid = v["open_challenge"]["challenge_id"].as_str().unwrap();
    assert_eq!(app.verify_code(&id, cid, &code).await.status(), 200);
    let v = app.get(&id).await;
    assert_eq!((&v["method"], &v["acr"]), (&json!("oidc"), &json!("phrh")));
    assert_eq!(v["amr"], json!(["hwk"]));
    assert_eq!(unmet(&app, &id, "intent=passkey").await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_login_keeps_the_provider_s_acr_memory() {
    a_bound_login_keeps_the_provider_s_acr(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_login_keeps_the_provider_s_acr_redis() {
    a_bound_login_keeps_the_provider_s_acr(Backend::Redis).await;
}
