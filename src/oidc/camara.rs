//! The mobile operator's side of silent network authentication
//! (docs/network-authentication.md): the authorization request of CAMARA
//! Number Verification's front-end flow, the code exchange at the
//! operator's token endpoint, and the verify call. Every request has the
//! providers' 5 s limit and every answer is read up to a cap; a failure
//! names what failed, never a code, token, state or number.
use secrecy::ExposeSecret;
use url::Url;
use uuid::Uuid;

use super::flow::s256;
use super::provider::{capped, failed, without_url, Providers, TIMEOUT};
use super::OidcError;
use crate::config::NumberVerification;
use crate::domain::network_auth::{self, NetworkResult, MAX_ANSWER};
use crate::spans::SendTraced;

/// The longest access token taken from the operator.
const MAX_TOKEN: usize = 4096;

/// The authorization request's URL: `response_type=code`, the client,
/// `redirect_uri`, the scopes, `state`, PKCE S256 of `verifier`, and
/// `prompt=none` (the operator must not ask the customer anything); no
/// `login_hint`: the network names the line.
pub fn authorization_url(
    nv: &NumberVerification,
    redirect_uri: &str,
    state: &str,
    verifier: &str,
) -> String {
    let mut url: Url = nv.authorization_endpoint.clone();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &nv.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &nv.scopes.join(" "))
        .append_pair("state", state)
        .append_pair("code_challenge", &s256(verifier))
        .append_pair("code_challenge_method", "S256")
        .append_pair("prompt", "none");
    url.to_string()
}

impl Providers {
    /// Exchanges the operator's `code` at its token endpoint
    /// (`client_secret_basic`, with the PKCE verifier): the access token.
    pub async fn network_exchange(
        &self,
        nv: &NumberVerification,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        const WHAT: &str = "operator token endpoint";
        // RFC 6749 2.3.1: both are form-encoded before basic auth.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let res = self
            .http
            .post(nv.token_endpoint.clone())
            .timeout(TIMEOUT)
            .basic_auth(
                enc(&nv.client_id),
                Some(enc(nv.client_secret.expose_secret())),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send_traced()
            .await
            .map_err(|e| failed(WHAT, without_url(&e)))?;
        let status = res.status();
        if !status.is_success() {
            return Err(failed(WHAT, format!("status {}", status.as_u16())));
        }
        let body = capped(WHAT, res).await?;
        access_token(&body).ok_or_else(|| failed(WHAT, "no usable bearer access_token"))
    }

    /// `POST {verify_url}/verify` for the number on file `e164` with the
    /// bearer `token`: what the operator says of the phone.
    pub async fn network_verify(
        &self,
        nv: &NumberVerification,
        token: &str,
        e164: &str,
    ) -> Result<NetworkResult, OidcError> {
        const WHAT: &str = "operator verify";
        let res = self
            .http
            .post(nv.verify_endpoint())
            .timeout(TIMEOUT)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("x-correlator", Uuid::now_v7().to_string())
            .json(&network_auth::verify_body(e164, nv.hash_number))
            .send_traced()
            .await
            .map_err(|e| failed(WHAT, without_url(&e)))?;
        let status = res.status().as_u16();
        if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(failed(WHAT, "answer too long"));
        }
        // Read strictly, as a request body is: declared JSON, no member
        // twice (docs/network-authentication.md).
        let content_type = res.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let body = capped(WHAT, res).await?;
        if let Err(e) = crate::answers::strict_json(content_type.as_ref(), &body) {
            return Err(failed(WHAT, e.as_str()));
        }
        match network_auth::read_verify_answer(status, &body) {
            NetworkResult::Error => {
                Err(failed(WHAT, format!("unexpected answer, status {status}")))
            }
            result => Ok(result),
        }
    }
}

/// The `access_token` of a token answer, if it is a bearer token the
/// gateway can send: a JSON object, `token_type` `Bearer` when named, the
/// token a non-empty header-safe string of at most [`MAX_TOKEN`] bytes.
fn access_token(body: &[u8]) -> Option<String> {
    let serde_json::Value::Object(answer) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    if let Some(kind) = answer.get("token_type") {
        if !kind.as_str()?.eq_ignore_ascii_case("bearer") {
            return None;
        }
    }
    let token = answer.get("access_token")?.as_str()?;
    let usable = !token.is_empty()
        && token.len() <= MAX_TOKEN
        && token.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/network-authentication.md: the verify answer is read as a
    /// request body is: a member twice, or a body not declared
    /// `application/json`, is the operator's error, never a verdict.
    #[tokio::test]
    async fn the_verify_answer_is_json_declared_so_with_no_member_twice() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let op = MockServer::start().await;
        let nv = NumberVerification {
            authorization_endpoint: Url::parse(&format!("{}/authorize", op.uri())).unwrap(),
            token_endpoint: Url::parse(&format!("{}/token", op.uri())).unwrap(),
            verify_url: Url::parse(&format!("{}/nv/v2", op.uri())).unwrap(),
            client_id: "chatgate".into(),
            client_secret: "op-secret".into(),
            scopes: vec![],
            link_ttl: std::time::Duration::from_secs(300),
            hash_number: false,
        };
        let providers = Providers::default();
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
            let read = providers.network_verify(&nv, "at-1", "+447400123456").await;
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
}
