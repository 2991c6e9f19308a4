//! The wallet verifier's high-assurance profile (docs/wallet.md): one
//! request asking several credentials of which one is presented, each
//! credential's own trusted issuers and claim names, the Subject Key
//! Identifiers of its issuers in `trusted_authorities`, the access
//! certificate's root never sent, the registration certificate in
//! `verifier_info`, and the wallet invoked by the team's scheme. The
//! wallet is written here, as in `tests/api/wallet.rs`.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::wallet::*;

/// The base64url Subject Key Identifier of the fixtures' PID root.
const PID_ROOT_AKI: &str = "PGZDRxwMPAeXpXu-xoeTzs12-hA";

/// The mdl credential naming its birth date as the pid does, trusting
/// `trusted` (PEM) when given.
fn mdl(trusted: Option<&str>) -> String {
    let own = trusted.map_or(String::new(), |pem| {
        format!("trusted_issuers = ['''\n{pem}''']\n")
    });
    format!(
        "[[wallet.credentials]]\nid = \"mdl\"\nformat = \"mso_mdoc\"\n\
         doctype = \"org.iso.18013.5.1.mDL\"\nnamespace = \"org.iso.18013.5.1\"\n\
         claims = {{family_name = \"family_name\", birthdate = \"birth_date\"}}\n{own}"
    )
}

macro_rules! profile_test {
    ($name:ident, $extra:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, a)) = spawn_wallet(Backend::Memory, &$extra).await {
                    ($body)(app, a).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, a)) = spawn_wallet(Backend::Redis, &$extra).await {
                    ($body)(app, a).await;
                }
            }
        }
    };
}

/// Starts a challenge asking `credential` for `expected`: (challenge
/// id, link path).
async fn start_asking(
    app: &TestApp,
    id: &str,
    credential: Value,
    expected: Value,
) -> (String, String) {
    let body = json!({"method": "wallet", "credential": credential, "match": expected});
    crate::wallet::started(app, id, body).await
}

fn ada_both() -> Value {
    json!({"family_name": "Lovelace", "birthdate": "1815-12-10"})
}

profile_test!(
    two_credentials_are_asked_in_one_request_and_either_one_presented,
    mdl(None),
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-two").await;
        let (cid, link) = start_asking(&app, &id, json!(["pid", "mdl"]), ada_both()).await;
        // Before an answer the read names both, the first as `credential`.
        let w = read(&app, &id, &cid, &app.keys.bot).await["wallet"].clone();
        assert_eq!(
            (&w["credential"], &w["format"], &w["credentials"]),
            (&json!("pid"), &json!("dc+sd-jwt"), &json!(["pid", "mdl"]))
        );
        let asked = fetch_request(&app, &a, &link).await;
        let dcql = &asked["dcql_query"];
        assert_eq!(
            dcql["credential_sets"],
            json!([{"options": [["pid"], ["mdl"]]}])
        );
        let queries = dcql["credentials"].as_array().unwrap();
        assert_eq!(queries.len(), 2);
        assert_eq!(
            queries[0]["claims"],
            json!([{"path": ["birthdate"]}, {"path": ["family_name"]}])
        );
        // The mdoc is asked by its own names.
        assert_eq!(
            queries[1]["claims"],
            json!([{"path": ["org.iso.18013.5.1", "birth_date"]},
                   {"path": ["org.iso.18013.5.1", "family_name"]}])
        );
        for q in queries {
            assert_eq!(
                q["trusted_authorities"],
                json!([{"type": "aki", "values": [PID_ROOT_AKI]}])
            );
        }
        let formats = &asked["client_metadata"]["vp_formats_supported"];
        assert!(formats["dc+sd-jwt"].is_object() && formats["mso_mdoc"].is_object());

        // The wallet holds the mdoc: it presents that one alone.
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
        let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
        bound(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
        let w = read(&app, &id, &cid, &app.keys.bot).await["wallet"].clone();
        assert_eq!(
            (&w["result"], &w["credential"], &w["format"]),
            (&json!("verified"), &json!("mdl"), &json!("mso_mdoc"))
        );
        // The one presented first, the other still named; an agent's read
        // says the same.
        assert_eq!(w["credentials"], json!(["mdl", "pid"]));
        let seen = read(&app, &id, &cid, &app.keys.agent).await["wallet"].clone();
        assert_eq!(seen["credentials"], json!(["mdl", "pid"]));
        // Kept by the bank's names.
        assert_eq!(
            w["claims"],
            json!({"family_name": "Lovelace", "birthdate": "1815-12-10"})
        );

        // Another wallet holds the SD-JWT VC.
        let id = interaction(&app, "cust-two-sd").await;
        let (cid, link) = start_asking(&app, &id, json!(["pid", "mdl"]), ada_both()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let sd = present("es256", &asked, None, fixtures()["now"].as_i64().unwrap());
        let res = respond(&app, &answer_with(&asked, "pid", &sd, true)).await;
        bound(&app, res, &id, &cid).await;
        let w = read(&app, &id, &cid, &app.keys.bot).await["wallet"].clone();
        assert_eq!(
            (&w["credential"], &w["format"], &w["credentials"]),
            (&json!("pid"), &json!("dc+sd-jwt"), &json!(["pid", "mdl"]))
        );
    }
);

profile_test!(
    a_second_presentation_or_one_not_asked_is_invalid,
    mdl(None),
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-extra").await;
        let now = fixtures()["now"].as_i64().unwrap();
        // Both presented at once.
        let (cid, link) = start_asking(&app, &id, json!(["pid", "mdl"]), ada_both()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let sd = present("es256", &asked, None, now);
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
        let payload = json!({"state": asked["state"], "vp_token": {"pid": [sd], "mdl": [mdoc]}});
        let res = respond(&app, &encrypt(&asked, &payload)).await;
        assert_eq!(res.status(), 200);
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(
            (&c["state"], &c["wallet"]["result"]),
            (&json!("failed"), &json!("invalid_presentation"))
        );
        assert_eq!(failures(&app, "cust-extra").await, 1);
        // The pid asked alone, the mdl presented.
        let (cid, link) =
            start_asking(&app, &id, json!("pid"), json!({"family_name": "Lovelace"})).await;
        let asked = fetch_request(&app, &a, &link).await;
        assert!(asked["dcql_query"].get("credential_sets").is_none());
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
        let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
        assert_eq!(res.status(), 200);
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(c["wallet"]["result"], "invalid_presentation");
        assert_eq!(failures(&app, "cust-extra").await, 2);
        assert_ne!(app.get(&id).await["status"], "authenticated");
    }
);

profile_test!(
    every_match_name_must_be_a_claim_of_every_credential_asked,
    format!("{}{}", mdl(None), MDL.replace("\"mdl\"", "\"mdl_iso\"")),
    |app: TestApp, _a: Access| async move {
        let id = interaction(&app, "cust-names").await;
        let bad = [
            // given_name is the pid's, not the mdl's.
            (
                json!(["pid", "mdl"]),
                json!({"given_name": "Ada"}),
                "match.given_name",
            ),
            // birthdate is mdl_iso's birth_date: it has no such name.
            (json!(["mdl", "mdl_iso"]), ada_both(), "match.birthdate"),
            (json!(["pid", "pid"]), ada_both(), "credential"),
            (json!(["pid", "nope"]), ada_both(), "credential[1]"),
            (json!([]), ada_both(), "credential"),
            (
                json!(["pid", "mdl", "mdl_iso", "pid", "mdl"]),
                ada_both(),
                "credential",
            ),
            (json!([1]), ada_both(), "credential"),
        ];
        for (credential, expected, named) in bad {
            let body = json!({"method": "wallet", "credential": credential, "match": expected});
            let res = ask(&app, &id, body).await;
            assert_eq!(res.status(), 422, "{credential}");
            let p: Value = res.json().await.unwrap();
            let detail = p["detail"].as_str().unwrap_or_default();
            assert!(detail.starts_with(named), "{credential}: {p}");
        }
        let body = json!({"method": "wallet", "credential": ["pid", "mdl"], "match": {"given_name": "Ada"}});
        let p: Value = ask(&app, &id, body).await.json().await.unwrap();
        assert!(p["detail"].as_str().unwrap().contains("mdl"), "{p}");
        assert!(app
            .chat_messages()
            .await
            .iter()
            .all(|m| m["purpose"] != "wallet_link"));
    }
);

profile_test!(
    a_pid_root_never_vouches_for_an_mdl_that_trusts_its_own,
    mdl(Some(fixtures()["other_root"].as_str().unwrap())),
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-trust").await;
        let (cid, link) = start_asking(&app, &id, json!("mdl"), ada_both()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let other_aki = &asked["dcql_query"]["credentials"][0]["trusted_authorities"][0]["values"];
        assert_ne!(other_aki, &json!([PID_ROOT_AKI]));
        assert_eq!(other_aki.as_array().map(Vec::len), Some(1));
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
        let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
        assert_eq!(res.status(), 200);
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(c["wallet"]["result"], "untrusted_issuer");
        // The pid still trusts the team's root.
        let (cid, link) =
            start_asking(&app, &id, json!("pid"), json!({"family_name": "Lovelace"})).await;
        let asked = fetch_request(&app, &a, &link).await;
        let sd = present("es256", &asked, None, fixtures()["now"].as_i64().unwrap());
        let res = respond(&app, &answer_with(&asked, "pid", &sd, true)).await;
        bound(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["status"], "authenticated");
    }
);

/// A registration certificate: a JWT of `typ` `rc-wrp+jwt`.
fn registration() -> String {
    let part = |v: Value| B64URL.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(json!({"alg": "ES256", "typ": "rc-wrp+jwt"})),
        part(json!({"sub": "acme", "credentials": [{"format": "dc+sd-jwt"}]})),
        B64URL.encode(b"signature")
    )
}

profile_test!(
    the_request_carries_the_registration_and_the_page_the_team_s_scheme,
    format!(
        "invocation = \"haip-vp://\"\nregistration_certificate = \"{}\"\n",
        registration()
    ),
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-haip").await;
        let (_, link) = start(&app, &id, ada()).await;
        let page = open(&app, &link).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("href=\"haip-vp://?client_id="),
            "{}",
            page.body
        );
        assert!(!page.body.contains("openid4vp://"));
        // Its query is the same: fetch the request it names.
        let query = page
            .body
            .split("href=\"haip-vp://?")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .replace("&amp;", "&");
        let uri = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "request_uri")
            .unwrap()
            .1
            .to_string();
        let res = app
            .request(
                Method::GET,
                uri.trim_start_matches("http://gateway.test"),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let jwt = res.text().await.unwrap();
        let signing =
            <p256::ecdsa::SigningKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(&a.key_pem)
                .unwrap();
        let (header, claims) = verified_jwt(&jwt, signing.verifying_key());
        // The leaf alone: the access CA's self-signed root is never sent.
        assert_eq!(header["x5c"].as_array().map(Vec::len), Some(1));
        assert_eq!(
            claims["verifier_info"],
            json!([{"format": "registration_cert", "data": registration()}])
        );
    }
);
