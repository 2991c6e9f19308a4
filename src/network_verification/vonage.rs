//! `provider = "vonage"`: Vonage Verify v2's `silent_auth` workflow
//! (docs/network-authentication.md#vonage-credentials). The confirm
//! button starts one verification (`POST {api_url}/v2/verify` with a
//! single `silent_auth` step: chatgate's ladder owns the fallback) and
//! sends the browser to the `check_url` it answers; Vonage ends its
//! redirects at `{public_url}/n/landing` with the result in the URL's
//! fragment, which the landing page posts back, and the code it carries
//! is checked with Vonage (`POST {api_url}/v2/verify/{request_id}`),
//! never trusted from the browser. Every call carries an RS256
//! application JWT. Every request has the providers' 5 s limit and every
//! answer is read up to a cap; a failure names what failed, never a code,
//! a key, the JWT or the number.
use std::time::Duration;

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::Goes;
use super::{
    capped, transport, Ask, Back, Begin, Begun, MayReach, NetworkError, NetworkResult, Problem,
    Provider, ProviderInfo, TIMEOUT,
};
use crate::domain::secrets::Secret;
use crate::spans::SendTraced;

/// Vonage's API host when `api_url` names none.
pub const DEFAULT_API_URL: &str = "https://api.nexmo.com";

/// How long an application JWT is good for (Vonage takes at most 900 s).
pub const JWT_LIFE: u64 = 300;

/// The shortest and longest `channel_timeout` Vonage takes, in seconds.
pub const CHANNEL_TIMEOUT: (u64, u64) = (60, 900);

/// The most of an answer that is read; a longer one is an error.
pub const MAX_ANSWER: usize = 16 * 1024;

/// `provider = "vonage"`: a Vonage application and its Verify v2 API,
/// checked.
pub struct VonageConfig {
    /// The API host: `POST {api_url}/v2/verify`.
    pub api_url: Url,
    pub application_id: String,
    /// The application's private key, read once (its PEM is not kept).
    key: EncodingKey,
    /// Said to no one but Vonage's logs (the `silent_auth` step shows
    /// nothing to the customer).
    pub brand: String,
    /// The rule a `check_url` Vonage answers must pass, as every URL of
    /// the configuration does.
    may_reach: MayReach,
}

impl std::fmt::Debug for VonageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VonageConfig")
            .field("api_url", &self.api_url.as_str())
            .field("application_id", &self.application_id)
            .field("private_key", &"[redacted]")
            .field("brand", &self.brand)
            .finish()
    }
}

/// The keys of `provider = "vonage"` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VonageKeys {
    api_url: Option<String>,
    application_id: Option<String>,
    /// A secret by its name: the operator API seals it and reads it back
    /// as `{"hmac"}` (`SECRET_MEMBERS`); read only as the loader hands it
    /// over (`Secret`).
    private_key: Option<Secret>,
    brand: Option<String>,
    #[serde(default)]
    hash_number: bool,
}

/// The claims of an application JWT, as Vonage authenticates
/// applications.
#[derive(Serialize)]
struct Claims<'a> {
    application_id: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
}

impl VonageConfig {
    /// `POST` address that starts a verification.
    pub fn verify_endpoint(&self) -> String {
        format!("{}/v2/verify", self.api_url.as_str().trim_end_matches('/'))
    }

    /// `POST` address that checks the code of verification `request_id`.
    pub fn check_endpoint(&self, request_id: &str) -> String {
        format!("{}/{request_id}", self.verify_endpoint())
    }

    /// A fresh application JWT signed at `now` (RS256; `application_id`,
    /// `iat`, `exp` = `iat` + [`JWT_LIFE`], a new `jti`).
    fn jwt(&self, now: crate::time::Timestamp) -> Result<String, NetworkError> {
        let iat = now.unix_seconds();
        let claims = Claims {
            application_id: &self.application_id,
            iat,
            exp: iat + JWT_LIFE as i64,
            jti: Uuid::now_v7().to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|_| NetworkError::of("vonage", "the application JWT could not be signed"))
    }
}

#[async_trait]
impl Provider for VonageConfig {
    const INFO: ProviderInfo = ProviderInfo {
        name: "vonage",
        keys: &[
            "api_url",
            "application_id",
            "private_key",
            "brand",
            "hash_number",
        ],
        back: Back::Landing,
        secrets_go: &[Goes {
            secret: "private_key",
            to: &["api_url"],
        }],
    };

    type Keys = VonageKeys;

    /// `api_url` one the gateway may reach, without a path, query or
    /// fragment (default [`DEFAULT_API_URL`]); the application named; the
    /// key an RSA private key in PEM; a brand of 1..16 characters;
    /// `hash_number` false (Vonage takes the number).
    fn from_keys(raw: VonageKeys, may_reach: MayReach) -> Result<Self, Problem> {
        let problem = |key: &str, p: &str| (key.to_string(), p.to_string());
        let api_url = raw.api_url.as_deref().unwrap_or(DEFAULT_API_URL);
        let api_url = Url::parse(api_url)
            .ok()
            .filter(may_reach)
            .filter(|u| u.fragment().is_none() && u.query().is_none())
            .filter(|u| matches!(u.path(), "" | "/"))
            .ok_or_else(|| {
                problem(
                    "api_url",
                    "must be an https URL of a host, without a path (http only on a loopback address)",
                )
            })?;
        let application_id = raw
            .application_id
            .ok_or_else(|| problem("application_id", "required but missing"))?;
        if application_id.trim().is_empty() || application_id.len() > 128 {
            return Err(problem("application_id", "must be 1..128 characters"));
        }
        let pem = raw
            .private_key
            .ok_or_else(|| problem("private_key", "required but missing"))?
            .into_inner();
        let key = encoding_key(pem.expose_secret())
            .ok_or_else(|| problem("private_key", "must be an RSA private key in PEM"))?;
        let brand = raw
            .brand
            .ok_or_else(|| problem("brand", "required but missing"))?;
        if !(1..=16).contains(&brand.chars().count()) || brand.chars().any(char::is_control) {
            return Err(problem("brand", "must be 1..16 characters"));
        }
        if raw.hash_number {
            return Err(problem(
                "hash_number",
                "must be false with provider vonage: Vonage takes the number",
            ));
        }
        Ok(VonageConfig {
            api_url,
            application_id,
            key,
            brand,
            may_reach,
        })
    }

    fn operator(&self) -> &Url {
        &self.api_url
    }

    /// Vonage's `check_url` may be on another of its hosts, and the
    /// redirects that follow pass through the customer's mobile operator,
    /// whose hosts no one knows beforehand: the button may lead to any
    /// `https` address (and to the API's own origin, an `http` one on a
    /// loopback address under test).
    fn form_action(&self) -> String {
        format!("https: {}", self.api_url.origin().ascii_serialization())
    }

    /// Starts one verification of the number, its life the link's
    /// remaining life (clamped to Vonage's [`CHANNEL_TIMEOUT`]).
    async fn begin(&self, q: &Begin<'_>) -> Result<Begun, NetworkError> {
        let runs = channel_timeout(q.left);
        let body = start_body(&self.brand, q.number, q.redirect_uri, runs);
        let (status, answer) = self
            .call(q.http, &self.verify_endpoint(), &body, q.now)
            .await?;
        const WHAT: &str = "vonage verify start";
        if status != 202 {
            return Err(NetworkError::of(WHAT, format!("status {status}")));
        }
        let (id, url) = read_start_answer(&answer)
            .ok_or_else(|| NetworkError::of(WHAT, "no usable request_id and check_url"))?;
        let url = Url::parse(&url)
            .ok()
            .filter(self.may_reach)
            .ok_or_else(|| NetworkError::of(WHAT, "a check_url the gateway may not send to"))?;
        Ok(Begun::Check {
            id,
            url: url.to_string(),
            runs: Duration::from_secs(runs),
        })
    }

    /// The landing's code checked with Vonage: 200 `completed` is the
    /// number; a 400 or 404 (a wrong code, a wrong request) another.
    async fn answer(&self, q: &Ask<'_>) -> Result<NetworkResult, NetworkError> {
        const WHAT: &str = "vonage verify check";
        let id = q
            .check
            .filter(|id| request_id(id))
            .ok_or_else(|| NetworkError::of(WHAT, "no usable request_id"))?;
        let body = serde_json::json!({ "code": q.code });
        let (status, answer) = self
            .call(q.http, &self.check_endpoint(id), &body, q.now)
            .await?;
        match read_check_answer(status, &answer) {
            NetworkResult::Error => Err(NetworkError::of(
                WHAT,
                format!("unexpected answer, status {status}"),
            )),
            result => Ok(result),
        }
    }
}

impl VonageConfig {
    /// `POST url` with `body` and a fresh JWT: the status, and the body
    /// when it is declared JSON with no member twice (else empty).
    async fn call(
        &self,
        http: &reqwest::Client,
        url: &str,
        body: &serde_json::Value,
        now: crate::time::Timestamp,
    ) -> Result<(u16, Vec<u8>), NetworkError> {
        const WHAT: &str = "vonage verify";
        let res = http
            .post(url)
            .timeout(TIMEOUT)
            .bearer_auth(self.jwt(now)?)
            .header(reqwest::header::ACCEPT, "application/json")
            .json(body)
            .send_traced()
            .await
            .map_err(|e| NetworkError::of(WHAT, transport(&e)))?;
        let status = res.status().as_u16();
        if res.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(NetworkError::of(WHAT, "answer too long"));
        }
        let content_type = res.headers().get(reqwest::header::CONTENT_TYPE).cloned();
        let answer = capped(WHAT, res).await?;
        if answer.len() > MAX_ANSWER {
            return Err(NetworkError::of(WHAT, "answer too long"));
        }
        let strict = crate::answers::strict_json(content_type.as_ref(), &answer).is_ok();
        Ok((status, if strict { answer } else { Vec::new() }))
    }
}

/// The RS256 signing key of an RSA private key in PEM: PKCS#8 (`BEGIN
/// PRIVATE KEY`, as Vonage's dashboard makes it) or PKCS#1 (`BEGIN RSA
/// PRIVATE KEY`). `None` when it is neither, or does not sign.
fn encoding_key(pem: &str) -> Option<EncodingKey> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    let pem = pem.trim();
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .ok()?;
    let der = key.to_pkcs1_der().ok()?;
    let key = EncodingKey::from_rsa_der(der.as_bytes());
    // A key jsonwebtoken cannot sign with fails here, not at a press.
    let probe = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &serde_json::json!({}), &key);
    probe.ok().map(|_| key)
}

/// The link's remaining life `left` as Vonage's `channel_timeout`, in
/// seconds, clamped to [`CHANNEL_TIMEOUT`].
pub fn channel_timeout(left: Duration) -> u64 {
    left.as_secs().clamp(CHANNEL_TIMEOUT.0, CHANNEL_TIMEOUT.1)
}

/// The start's body: one `silent_auth` step to the number (`+E.164`,
/// sent without its `+`), back to `redirect_url`.
pub fn start_body(brand: &str, e164: &str, redirect_url: &str, runs: u64) -> serde_json::Value {
    serde_json::json!({
        "brand": brand,
        "workflow": [{
            "channel": "silent_auth",
            "to": e164.trim_start_matches('+'),
            "redirect_url": redirect_url,
        }],
        "channel_timeout": runs,
    })
}

/// Whether `id` has the form of a Vonage request id: 1..64 letters,
/// digits and dashes (it goes into a path).
pub fn request_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The `request_id` and `check_url` of a start's answer (a JSON object;
/// both strings, the id of [`request_id`]'s form).
pub fn read_start_answer(body: &[u8]) -> Option<(String, String)> {
    let serde_json::Value::Object(answer) = serde_json::from_slice(body).ok()? else {
        return None;
    };
    let id = answer
        .get("request_id")?
        .as_str()
        .filter(|id| request_id(id))?;
    let url = answer.get("check_url")?.as_str()?;
    Some((id.to_string(), url.to_string()))
}

/// What a code check's answer (`status`, `body`) says: 200 with
/// `"status": "completed"` is the number; 400 or 404 (a wrong code, a
/// wrong request) another; anything else an error.
pub fn read_check_answer(status: u16, body: &[u8]) -> NetworkResult {
    match status {
        200 => {
            let answer = serde_json::from_slice::<serde_json::Value>(body).ok();
            match answer.as_ref().and_then(|a| a.get("status")?.as_str()) {
                Some("completed") => NetworkResult::Verified,
                _ => NetworkResult::Error,
            }
        }
        400 | 404 => NetworkResult::Mismatch,
        _ => NetworkResult::Error,
    }
}

#[cfg(test)]
mod tests;
