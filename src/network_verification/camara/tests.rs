//! The CAMARA provider's reading of the operator's answers, and its
//! requests, against a fake operator.
use super::*;
use crate::network_verification::client;

#[test]
fn the_operator_s_answer_is_read_strictly() {
    use NetworkResult::*;
    let cases: [(u16, &str, NetworkResult); 15] = [
        (200, r#"{"devicePhoneNumberVerified":true}"#, Verified),
        (200, r#"{"devicePhoneNumberVerified":false}"#, Mismatch),
        (200, r#"{"devicePhoneNumberVerified":"true"}"#, Error),
        (200, r#"{"devicePhoneNumberVerified":1}"#, Error),
        (200, r#"{}"#, Error),
        (200, r#"[true]"#, Error),
        (200, "true", Error),
        (200, "", Error),
        (
            403,
            r#"{"status":403,"code":"NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK","message":"x"}"#,
            NotOnMobileNetwork,
        ),
        (
            403,
            r#"{"status":403,"code":"PERMISSION_DENIED","message":"x"}"#,
            Error,
        ),
        (
            401,
            r#"{"status":401,"code":"UNAUTHENTICATED","message":"x"}"#,
            Error,
        ),
        // A member twice, at any depth: serde would keep the last one.
        (
            200,
            r#"{"devicePhoneNumberVerified":false,"devicePhoneNumberVerified":true}"#,
            Error,
        ),
        (
            200,
            r#"{"devicePhoneNumberVerified":true,"x":{"a":1,"a":2}}"#,
            Error,
        ),
        (
            403,
            r#"{"code":"PERMISSION_DENIED","code":"NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"}"#,
            Error,
        ),
        // A verified answer under another status is not a confirmation.
        (201, r#"{"devicePhoneNumberVerified":true}"#, Error),
    ];
    for (status, body, expected) in cases {
        assert_eq!(
            read_verify_answer(status, body.as_bytes()),
            expected,
            "{status} {body}"
        );
    }
    let padded = format!(
        r#"{{"devicePhoneNumberVerified":true,"pad":"{}"}}"#,
        "x".repeat(MAX_ANSWER)
    );
    assert_eq!(read_verify_answer(200, padded.as_bytes()), Error);
}

#[test]
fn the_number_is_sent_as_itself_or_as_its_sha256() {
    assert_eq!(
        verify_body("+447400123456", false),
        serde_json::json!({"phoneNumber": "+447400123456"})
    );
    let hashed = verify_body("+447400123456", true);
    let digest = hashed["hashedPhoneNumber"].as_str().unwrap();
    assert_eq!(digest.len(), 64);
    assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!hashed.to_string().contains("7400123456"));
}

/// docs/network-authentication.md: the verify answer is read as a
/// request body is: a member twice, or a body not declared
/// `application/json`, is the operator's error, never a verdict.
#[tokio::test]
async fn the_verify_answer_is_json_declared_so_with_no_member_twice() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let op = MockServer::start().await;
    let nv = CamaraConfig {
        authorization_endpoint: Url::parse(&format!("{}/authorize", op.uri())).unwrap(),
        token_endpoint: Url::parse(&format!("{}/token", op.uri())).unwrap(),
        verify_url: Url::parse(&format!("{}/nv/v2", op.uri())).unwrap(),
        client_id: "chatgate".into(),
        client_secret: "op-secret".into(),
        scopes: vec![],
        hash_number: false,
    };
    let json = "application/json";
    let answers = [
        (json, r#"{"devicePhoneNumberVerified": true}"#, true),
        (
            json,
            r#"{"devicePhoneNumberVerified": false, "devicePhoneNumberVerified": true}"#,
            false,
        ),
        (
            "text/plain",
            r#"{"devicePhoneNumberVerified": true}"#,
            false,
        ),
        (
            "application/json; charset=utf-8",
            r#"{"devicePhoneNumberVerified": true}"#,
            true,
        ),
    ];
    for (content_type, body, verified) in answers {
        op.reset().await;
        Mock::given(method("POST"))
            .and(path("/nv/v2/verify"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), content_type),
            )
            .mount(&op)
            .await;
        let read = verify(
            &nv,
            client(crate::outbound::Reach::Anywhere).unwrap(),
            "at-1",
            "+447400123456",
        )
        .await;
        match verified {
            true => assert_eq!(read.ok(), Some(NetworkResult::Verified), "{body}"),
            false => assert!(read.is_err(), "{content_type} {body}: {read:?}"),
        }
    }
}

#[test]
fn only_a_bearer_token_is_taken() {
    let ok = br#"{"access_token":"at-1","token_type":"Bearer","expires_in":60}"#;
    assert_eq!(access_token(ok).as_deref(), Some("at-1"));
    assert_eq!(
        access_token(br#"{"access_token":"at-1"}"#).as_deref(),
        Some("at-1")
    );
    for bad in [
        &br#"{"access_token":"at-1","token_type":"mac"}"#[..],
        br#"{"access_token":""}"#,
        br#"{"access_token":"a b"}"#,
        br#"{"access_token":7}"#,
        br#"{"token_type":"Bearer"}"#,
        br#"["at-1"]"#,
        b"not json",
    ] {
        assert_eq!(access_token(bad), None, "{}", String::from_utf8_lossy(bad));
    }
    let long = format!(r#"{{"access_token":"{}"}}"#, "a".repeat(MAX_TOKEN + 1));
    assert_eq!(access_token(long.as_bytes()), None);
}
