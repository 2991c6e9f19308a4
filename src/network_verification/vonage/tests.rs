//! The Vonage provider's requests and its reading of Vonage's answers,
//! against wiremock.
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::network_verification::client;

const KEY: &str = include_str!("../../../tests/api/oidc_keys/a.pem");
/// The public half of [`KEY`] (its JWK's `n`, `e`).
const N: &str = "1I6CKB-rihxKwzteHcA53EtyiCOmuF77zucSwyDbwBq0idzk55Wz-z3qi8u3CcLo5UPc5bLyVypskKtXFg_XpK2TWEAXO3VJi709jgPoZTIzz_XwoM5UlEpUw3Z8KUMg0xkv3qu_T9TPxlguCKF18ox2W-tQLp9QcFb4EhvSBqNvY7kcSf9lBDmxcWdxa9dKKPzS4NTLn2WlbzxPvH0C_m0r8foNEmdBXtLk3rXmXc7UhHmG4GwZifZR2hCTXSRzLV4fybSzbcHtJxelTRIQCGu6GcfqTM7v5FKz7z0i7o7eeuocO7luIcJ8OPa-CAs6DhqqiDlez5-96dLGcR_IUw";

fn vonage(api: &str) -> VonageConfig {
    VonageConfig {
        api_url: Url::parse(api).unwrap(),
        application_id: "app-1".into(),
        key: encoding_key(KEY).unwrap(),
        brand: "Acme".into(),
        may_reach: |_| true,
    }
}

fn now() -> crate::time::Timestamp {
    crate::time::Timestamp::from_unix_seconds(1_795_000_000)
}

/// The claims of a JWT checked with the application's public key.
fn claims(jwt: &str) -> serde_json::Value {
    let key = jsonwebtoken::DecodingKey::from_rsa_components(N, "AQAB").unwrap();
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_start_is_one_silent_auth_step_signed_by_the_application() {
    let api = MockServer::start().await;
    let answer = r#"{"request_id":"c11236f4-00bf-4b89-84ba-88b25df97315","check_url":"https://api-eu-3.vonage.com/v2/verify/c11236f4/silent-auth/redirect"}"#;
    Mock::given(method("POST"))
        .and(path("/v2/verify"))
        .respond_with(ResponseTemplate::new(202).set_body_raw(answer, "application/json"))
        .expect(2)
        .mount(&api)
        .await;
    let nv = vonage(&api.uri());
    let q = Begin {
        http: client(crate::outbound::Reach::Anywhere).unwrap(),
        redirect_uri: "https://gateway.example/n/landing",
        state: "",
        code_challenge: "",
        number: "+447400123456",
        left: Duration::from_secs(30),
        now: now(),
    };
    let begun = nv.begin(&q).await.unwrap();
    assert_eq!(
        begun,
        Begun::Check {
            id: "c11236f4-00bf-4b89-84ba-88b25df97315".into(),
            url: "https://api-eu-3.vonage.com/v2/verify/c11236f4/silent-auth/redirect".into(),
            runs: Duration::from_secs(60),
        }
    );
    nv.begin(&q).await.unwrap();
    let got = api.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"brand": "Acme", "workflow": [{"channel": "silent_auth",
            "to": "447400123456", "redirect_url": "https://gateway.example/n/landing"}],
            "channel_timeout": 60})
    );
    let jtis: Vec<String> = got
        .iter()
        .map(|r| {
            let auth = r.headers["authorization"].to_str().unwrap();
            let c = claims(auth.strip_prefix("Bearer ").unwrap());
            assert_eq!(c["application_id"], "app-1");
            assert_eq!(c["iat"], 1_795_000_000);
            let life = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
            assert!((1..=900).contains(&life), "{c}");
            c["jti"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(jtis[0], jtis[1], "a fresh jti each call");
}

#[tokio::test]
async fn a_start_that_is_not_202_with_a_request_is_an_error() {
    let api = MockServer::start().await;
    let nv = vonage(&api.uri());
    let q = Begin {
        http: client(crate::outbound::Reach::Anywhere).unwrap(),
        redirect_uri: "https://gateway.example/n/landing",
        state: "",
        code_challenge: "",
        number: "+447400123456",
        left: Duration::from_secs(3000),
        now: now(),
    };
    let ok = r#"{"request_id":"r-1","check_url":"https://v.example/c"}"#;
    let cases = [
        (409, ok, "application/json"),
        (500, ok, "application/json"),
        (202, ok, "text/plain"),
        (202, r#"{"request_id":"r-1"}"#, "application/json"),
        (
            202,
            r#"{"request_id":"../x","check_url":"https://v.example/c"}"#,
            "application/json",
        ),
        (
            202,
            r#"{"request_id":"r-1","request_id":"r-2","check_url":"https://v.example/c"}"#,
            "application/json",
        ),
        (202, "not json", "application/json"),
    ];
    for (status, body, content_type) in cases {
        api.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, content_type))
            .mount(&api)
            .await;
        let begun = nv.begin(&q).await;
        assert!(begun.is_err(), "{status} {body}: {begun:?}");
        let said = begun.unwrap_err().to_string();
        assert!(!said.contains("447400123456"), "{said}");
    }
}

/// Vonage's dashboard makes PKCS#8 keys; PKCS#1 is read too; anything
/// else is no key.
#[test]
fn a_private_key_is_pkcs8_or_pkcs1_pem() {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs8::EncodePrivateKey;
    let pkcs1 = rsa::RsaPrivateKey::from_pkcs1_pem(KEY).unwrap();
    let pkcs8 = pkcs1.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(encoding_key(&pkcs8).is_some());
    assert!(encoding_key(KEY).is_some());
    assert!(encoding_key("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----").is_none());
    assert!(encoding_key("").is_none());
}

#[test]
fn the_channel_timeout_is_the_links_life_within_vonages_bounds() {
    assert_eq!(channel_timeout(Duration::from_secs(5)), 60);
    assert_eq!(channel_timeout(Duration::from_secs(299)), 299);
    assert_eq!(channel_timeout(Duration::from_secs(1800)), 900);
}

#[test]
fn each_check_answer_is_mapped() {
    use NetworkResult::*;
    let cases: [(u16, &str, NetworkResult); 8] = [
        (200, r#"{"request_id":"r","status":"completed"}"#, Verified),
        (200, r#"{"status":"failed"}"#, Error),
        (200, r#"{}"#, Error),
        (200, "", Error),
        (400, r#"{"title":"Invalid Code"}"#, Mismatch),
        (404, "", Mismatch),
        (409, r#"{"title":"Conflict"}"#, Error),
        (500, "", Error),
    ];
    for (status, body, result) in cases {
        assert_eq!(
            read_check_answer(status, body.as_bytes()),
            result,
            "{status} {body}"
        );
    }
}

#[test]
fn a_request_id_is_a_path_segment_of_letters_digits_and_dashes() {
    assert!(request_id("c11236f4-00bf-4b89-84ba-88b25df97315"));
    assert!(!request_id(""));
    assert!(!request_id("a/b"));
    assert!(!request_id("a%2F"));
    assert!(!request_id(&"a".repeat(65)));
}

#[tokio::test]
async fn the_code_is_checked_with_vonage_for_its_request() {
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v2/verify/r-1"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"request_id":"r-1","status":"completed"}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&api)
        .await;
    let nv = vonage(&api.uri());
    let ask = |check| Ask {
        http: client(crate::outbound::Reach::Anywhere).unwrap(),
        code: "si-code",
        check,
        redirect_uri: "",
        verifier: "",
        number: "+447400123456",
        now: now(),
    };
    assert_eq!(
        nv.answer(&ask(Some("r-1"))).await,
        Ok(NetworkResult::Verified)
    );
    assert!(nv.answer(&ask(Some("../r-1"))).await.is_err());
    assert!(nv.answer(&ask(None)).await.is_err());
    let got = api.received_requests().await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body, serde_json::json!({"code": "si-code"}));
}
