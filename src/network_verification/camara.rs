//! `provider = "camara"`: GSMA Open Gateway's CAMARA Number Verification,
//! front-end flow (docs/network-authentication.md#camara-credentials):
//! the authorization request at the mobile operator (`prompt=none`, PKCE
//! S256), the code exchange at its token endpoint
//! (`client_secret_basic`), and `POST {verify_url}/verify` with the
//! bearer token, whose answer is read strictly. Every request has the
//! providers' 5 s limit and every answer is read up to a cap; a failure
//! names what failed, never a code, token, state or number.
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;
use uuid::Uuid;

use super::Goes;
use super::{
    capped, transport, Ask, Back, Begin, Begun, MayReach, NetworkError, NetworkResult, Problem,
    Provider, ProviderInfo, TIMEOUT,
};
use crate::domain::secrets::Secret;
use crate::spans::SendTraced;

/// The CAMARA error code of a verify call made off the mobile network.
pub const NOT_ON_MOBILE_NETWORK: &str =
    "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK";

/// The most of a verify answer that is read; a longer one is an error.
pub const MAX_ANSWER: usize = 16 * 1024;

/// The longest access token taken from the operator.
const MAX_TOKEN: usize = 4096;

/// `provider = "camara"`: the operator's (or an aggregator's)
/// authorization server and its Number Verification API, checked.
#[derive(Debug)]
pub struct CamaraConfig {
    /// Where the customer's browser is sent (`prompt=none`).
    pub authorization_endpoint: Url,
    /// Where the authorization code is exchanged (`client_secret_basic`).
    pub token_endpoint: Url,
    /// The API root with its version: `POST {verify_url}/verify`.
    pub verify_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Sent space-separated as `scope`.
    pub scopes: Vec<String>,
    /// Send `hashedPhoneNumber` (hex SHA-256 of `+E.164`) instead of
    /// `phoneNumber`.
    pub hash_number: bool,
}

impl CamaraConfig {
    /// `POST` address of the verify call.
    pub fn verify_endpoint(&self) -> String {
        format!("{}/verify", self.verify_url.as_str().trim_end_matches('/'))
    }
}

/// The keys of `provider = "camara"` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CamaraKeys {
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    verify_url: Option<String>,
    client_id: Option<String>,
    /// Read only as the loader hands it over (`Secret`).
    client_secret: Option<Secret>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    hash_number: bool,
}

#[async_trait]
impl Provider for CamaraConfig {
    const INFO: ProviderInfo = ProviderInfo {
        name: "camara",
        keys: &[
            "authorization_endpoint",
            "token_endpoint",
            "verify_url",
            "client_id",
            "client_secret",
            "scopes",
            "hash_number",
        ],
        back: Back::Callback,
        secrets_go: &[Goes {
            secret: "client_secret",
            to: &["token_endpoint", "verify_url"],
        }],
    };

    type Keys = CamaraKeys;

    /// Every URL one the gateway may reach, without a fragment (and the
    /// API root without a query); the client named; at least one scope,
    /// each a scope name; the default scopes `openid` and
    /// `number-verification:verify`.
    fn from_keys(raw: CamaraKeys, may_reach: MayReach) -> Result<Self, Problem> {
        let problem = |key: &str, p: &str| (key.to_string(), p.to_string());
        let url = |key: &str, v: Option<String>| {
            let v = v.ok_or_else(|| problem(key, "required but missing"))?;
            Url::parse(&v)
                .ok()
                .filter(may_reach)
                .filter(|u| u.fragment().is_none())
                .ok_or_else(|| {
                    problem(
                        key,
                        "must be an https URL (http only on a loopback address)",
                    )
                })
        };
        let authorization_endpoint = url("authorization_endpoint", raw.authorization_endpoint)?;
        let token_endpoint = url("token_endpoint", raw.token_endpoint)?;
        let verify_url = url("verify_url", raw.verify_url)?;
        if verify_url.query().is_some() {
            return Err(problem("verify_url", "must not have a query"));
        }
        let client_id = raw
            .client_id
            .ok_or_else(|| problem("client_id", "required but missing"))?;
        if client_id.trim().is_empty() {
            return Err(problem("client_id", "must not be empty"));
        }
        let client_secret = raw
            .client_secret
            .ok_or_else(|| problem("client_secret", "required but missing"))?
            .into_inner();
        if client_secret.expose_secret().is_empty() {
            return Err(problem("client_secret", "must not be empty"));
        }
        let scopes = raw
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "number-verification:verify".into()]);
        if scopes.is_empty() {
            return Err(problem("scopes", "must name at least one scope"));
        }
        if let Some(i) = scopes.iter().position(|s| !scope_name(s)) {
            return Err(problem(
                &format!("scopes[{i}]"),
                "must be a scope name (printable ASCII, no space, quote or backslash)",
            ));
        }
        Ok(CamaraConfig {
            authorization_endpoint,
            token_endpoint,
            verify_url,
            client_id,
            client_secret,
            scopes,
            hash_number: raw.hash_number,
        })
    }

    fn operator(&self) -> &Url {
        &self.authorization_endpoint
    }

    /// The authorization request's URL: `response_type=code`, the client,
    /// `redirect_uri`, the scopes, `state`, PKCE S256, and `prompt=none`
    /// (the operator must not ask the customer anything); no
    /// `login_hint`: the network names the line.
    async fn begin(&self, q: &Begin<'_>) -> Result<Begun, NetworkError> {
        let mut url: Url = self.authorization_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", q.redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", q.state)
            .append_pair("code_challenge", q.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("prompt", "none");
        Ok(Begun::Redirect(url.to_string()))
    }

    /// The code exchanged, then the verify call for the number on file.
    async fn answer(&self, q: &Ask<'_>) -> Result<NetworkResult, NetworkError> {
        let token = exchange(self, q).await?;
        verify(self, q.http, &token, q.number).await
    }
}

/// Whether `s` is a scope name (RFC 6749 3.3's scope-token: printable
/// ASCII but space, `"` and `\`).
fn scope_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

/// Exchanges the operator's code at its token endpoint
/// (`client_secret_basic`, with the PKCE verifier): the access token.
async fn exchange(c: &CamaraConfig, q: &Ask<'_>) -> Result<String, NetworkError> {
    const WHAT: &str = "operator token endpoint";
    // RFC 6749 2.3.1: both are form-encoded before basic auth.
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let res = q
        .http
        .post(c.token_endpoint.clone())
        .timeout(TIMEOUT)
        .basic_auth(
            enc(&c.client_id),
            Some(enc(c.client_secret.expose_secret())),
        )
        .header(reqwest::header::ACCEPT, "application/json")
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", q.code),
            ("redirect_uri", q.redirect_uri),
            ("code_verifier", q.verifier),
        ])
        .send_traced()
        .await
        .map_err(|e| NetworkError::of(WHAT, transport(&e)))?;
    let status = res.status();
    if !status.is_success() {
        return Err(NetworkError::of(
            WHAT,
            format!("status {}", status.as_u16()),
        ));
    }
    let body = capped(WHAT, res).await?;
    access_token(&body).ok_or_else(|| NetworkError::of(WHAT, "no usable bearer access_token"))
}

/// `POST {verify_url}/verify` for the number on file `e164` with the
/// bearer `token`: what the operator says of the phone.
async fn verify(
    c: &CamaraConfig,
    http: &reqwest::Client,
    token: &str,
    e164: &str,
) -> Result<NetworkResult, NetworkError> {
    const WHAT: &str = "operator verify";
    let res = http
        .post(c.verify_endpoint())
        .timeout(TIMEOUT)
        .bearer_auth(token)
        .header(reqwest::header::ACCEPT, "application/json")
        .header("x-correlator", Uuid::now_v7().to_string())
        .json(&verify_body(e164, c.hash_number))
        .send_traced()
        .await
        .map_err(|e| NetworkError::of(WHAT, transport(&e)))?;
    let status = res.status().as_u16();
    if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
        return Err(NetworkError::of(WHAT, "answer too long"));
    }
    // Read strictly, as a request body is: declared JSON, no member
    // twice (docs/network-authentication.md).
    let content_type = res.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let body = capped(WHAT, res).await?;
    if let Err(e) = crate::answers::strict_json(content_type.as_ref(), &body) {
        return Err(NetworkError::of(WHAT, e.as_str()));
    }
    match read_verify_answer(status, &body) {
        NetworkResult::Error => Err(NetworkError::of(
            WHAT,
            format!("unexpected answer, status {status}"),
        )),
        result => Ok(result),
    }
}

/// What the Number Verification API's answer (`status`, `body`) says. A
/// 200 must be a JSON object whose `devicePhoneNumberVerified` is a
/// boolean; a 403 whose `code` is [`NOT_ON_MOBILE_NETWORK`] is a phone off
/// the mobile network; anything else (another status, a malformed or
/// oversized body, a member named twice in one object at any depth, as a
/// request body may not (`json_members`), a missing or mistyped member)
/// is an error. Its caller holds the answer to `application/json`.
pub fn read_verify_answer(status: u16, body: &[u8]) -> NetworkResult {
    if body.len() > MAX_ANSWER || crate::domain::json_members::repeated_member(body).is_some() {
        return NetworkResult::Error;
    }
    let Ok(serde_json::Value::Object(answer)) = serde_json::from_slice(body) else {
        return NetworkResult::Error;
    };
    match status {
        200 => match answer.get("devicePhoneNumberVerified") {
            Some(serde_json::Value::Bool(true)) => NetworkResult::Verified,
            Some(serde_json::Value::Bool(false)) => NetworkResult::Mismatch,
            _ => NetworkResult::Error,
        },
        403 if answer.get("code").and_then(|c| c.as_str()) == Some(NOT_ON_MOBILE_NETWORK) => {
            NetworkResult::NotOnMobileNetwork
        }
        _ => NetworkResult::Error,
    }
}

/// The verify call's body for the number on file (`+E.164`): the number,
/// or with `hashed` the hex SHA-256 of it.
pub fn verify_body(e164: &str, hashed: bool) -> serde_json::Value {
    if hashed {
        let digest = hex::encode(Sha256::digest(e164.as_bytes()));
        serde_json::json!({ "hashedPhoneNumber": digest })
    } else {
        serde_json::json!({ "phoneNumber": e164 })
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
mod tests;
