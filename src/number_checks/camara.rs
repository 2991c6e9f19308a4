//! A mobile operator's CAMARA APIs (GSMA Open Gateway), as published in
//! `camaraproject/SimSwap` (SIM Swap 2.1.0, release r3.3: `POST /check`
//! with `phoneNumber` and `maxAge` in hours, answered `{"swapped"}`) and
//! `camaraproject/CallForwardingSignal` (0.4.0, release r3.3: `POST
//! /unconditional-call-forwardings` with `phoneNumber`, answered
//! `{"active"}`), each with the operator's bearer token
//! (docs/number-checks.md#camara).
//!
//! The token is a client-credentials token reused until 30 s before it
//! expires, or, with the backend flow (`auth = "ciba"`), one per number.
//! The client authenticates by HTTP basic auth (`client_secret_basic`).
//! A token and an `auth_req_id` are never logged.
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::Goes;
use super::{
    body, by_status, transport, Asked, CheckError, MayReach, Problem, Provider, ProviderInfo,
    Question,
};
use crate::domain::number_check::{Finding, Source};
use crate::domain::secrets::Secret;
use crate::spans::SendTraced;

/// The CIBA grant type of the token endpoint.
const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";
/// A token is not used in its last seconds.
const TOKEN_MARGIN_SECS: u64 = 30;
/// Seconds between token polls when the operator names none.
const DEFAULT_INTERVAL: u64 = 5;
/// The longest poll interval taken from the operator, in seconds: a check
/// has 5 s in all, so a longer one only waits for its end (and a number up
/// to `u64::MAX` must not overflow what is added to it).
const MAX_INTERVAL: u64 = 60;

/// The scope asked when the team names none.
const DEFAULT_SCOPE: &str = "dpv:FraudPreventionAndDetection#sim-swap";

/// How a CAMARA client gets its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CamaraAuth {
    /// `grant_type=client_credentials`: one token, reused until 30 s
    /// before it expires.
    ClientCredentials,
    /// GSMA Open Gateway's backend flow (OpenID Connect CIBA): a token per
    /// number, asked at `bc_authorize_url` with `login_hint=tel:+…`, then
    /// polled at the token endpoint every `interval` the operator names
    /// (default 5 s) while it answers `authorization_pending`.
    Ciba { bc_authorize_url: Url },
}

/// `kind = "camara"`: the operator's APIs and its OAuth 2.0 client.
#[derive(Debug)]
pub struct CamaraConfig {
    /// The SIM Swap API root with its version (`…/sim-swap/v2`).
    pub sim_swap_url: Url,
    /// The Call Forwarding Signal API root, when voice codes ask it.
    pub call_forwarding_url: Option<Url>,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    pub auth: CamaraAuth,
    pub scopes: Vec<String>,
}

/// The keys of `kind = "camara"` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CamaraKeys {
    sim_swap_url: Option<String>,
    call_forwarding_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    /// Read only as the loader hands it over (`Secret`).
    client_secret: Option<Secret>,
    auth: Option<Auth>,
    bc_authorize_url: Option<String>,
    scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Auth {
    ClientCredentials,
    Ciba,
}

#[async_trait]
impl Provider for CamaraConfig {
    const INFO: ProviderInfo = ProviderInfo {
        source: Source::Camara,
        stored: 'c',
        keys: &[
            "sim_swap_url",
            "call_forwarding_url",
            "token_url",
            "client_id",
            "client_secret",
            "auth",
            "bc_authorize_url",
            "scopes",
        ],
        secrets_go: &[Goes {
            secret: "client_secret",
            to: &[
                "token_url",
                "bc_authorize_url",
                "sim_swap_url",
                "call_forwarding_url",
            ],
        }],
    };

    type Keys = CamaraKeys;

    /// Its URLs, client and scopes; `bc_authorize_url` only with CIBA.
    fn from_keys(raw: CamaraKeys, may_reach: MayReach) -> Result<Self, Problem> {
        let auth = match raw.auth.unwrap_or(Auth::ClientCredentials) {
            Auth::ClientCredentials => {
                if raw.bc_authorize_url.is_some() {
                    return Err((
                        "bc_authorize_url".into(),
                        "is not a key of kind camara with auth = \"client_credentials\"".into(),
                    ));
                }
                CamaraAuth::ClientCredentials
            }
            Auth::Ciba => CamaraAuth::Ciba {
                bc_authorize_url: super::url("bc_authorize_url", &raw.bc_authorize_url, may_reach)?,
            },
        };
        let scopes = raw
            .scopes
            .unwrap_or_else(|| vec![DEFAULT_SCOPE.to_string()]);
        if let Some(i) = scopes.iter().position(|s| s.is_empty() || s.contains(' ')) {
            return Err((
                format!("scopes[{i}]"),
                "must be a scope name (no space)".into(),
            ));
        }
        let call_forwarding_url = match &raw.call_forwarding_url {
            None => None,
            some => Some(super::url("call_forwarding_url", some, may_reach)?),
        };
        Ok(CamaraConfig {
            sim_swap_url: super::url("sim_swap_url", &raw.sim_swap_url, may_reach)?,
            call_forwarding_url,
            token_url: super::url("token_url", &raw.token_url, may_reach)?,
            client_id: super::filled("client_id", &raw.client_id)?,
            client_secret: super::filled_secret("client_secret", raw.client_secret)?,
            auth,
            scopes,
        })
    }

    async fn ask(&self, q: &Question<'_>) -> (Asked, Option<Asked>) {
        ask(q, self).await
    }
}

/// Asks the operator about `number`: SIM swap, and unconditional call
/// forwarding when `forwarding` and the team names the API (side by side).
async fn ask(q: &Question<'_>, c: &CamaraConfig) -> (Asked, Option<Asked>) {
    let number = q.number;
    let forwarding_url = c.call_forwarding_url.as_ref().filter(|_| q.forwarding);
    let token = match token(q, c).await {
        Ok(t) => t,
        Err(e) => return (Err(e.clone()), forwarding_url.map(|_| Err(e))),
    };
    let hours = q.settings.sim_swap_max_age.as_secs().div_ceil(3600).max(1);
    let swap_body = json!({"phoneNumber": number, "maxAge": hours});
    let swap = question(q, &c.sim_swap_url, "check", swap_body, &token, "swapped");
    let answers = match forwarding_url {
        None => (swap.await, None),
        Some(url) => {
            let body = json!({"phoneNumber": number});
            let path = "unconditional-call-forwardings";
            let fwd = question(q, url, path, body, &token, "active");
            let (swap, fwd) = tokio::join!(swap, fwd);
            (swap, Some(fwd))
        }
    };
    if let CamaraAuth::ClientCredentials = c.auth {
        let refused = |a: &Asked| matches!(a, Err(e) if e.0.ends_with("status 401"));
        if refused(&answers.0) || answers.1.as_ref().is_some_and(refused) {
            // The operator no longer takes it: the next check asks anew.
            *q.token.lock().await = None;
        }
    }
    answers
}

/// `POST {root}/{path}` with `body` and the bearer token; the answer's
/// boolean `field`.
async fn question(
    q: &Question<'_>,
    root: &Url,
    path: &str,
    body: serde_json::Value,
    token: &SecretString,
    field: &str,
) -> Asked {
    let url = format!("{}/{path}", root.as_str().trim_end_matches('/'));
    let res = q
        .http
        .post(url)
        .bearer_auth(token.expose_secret())
        .json(&body)
        .send_traced()
        .await
        .map_err(|e| transport(path, &e))?;
    if let Some(asked) = by_status(path, res.status()) {
        return asked;
    }
    let bytes = super::verdict_body(path, res).await?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| CheckError(format!("{path}: unreadable answer")))?;
    match value.get(field).and_then(serde_json::Value::as_bool) {
        Some(true) => Ok(Finding::Yes),
        Some(false) => Ok(Finding::No),
        None => Err(CheckError(format!("{path}: no boolean {field:?}"))),
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The bearer token for a question about `number`.
async fn token(q: &Question<'_>, c: &CamaraConfig) -> Result<SecretString, CheckError> {
    let now = q.now;
    match &c.auth {
        CamaraAuth::ClientCredentials => {
            let mut kept = q.token.lock().await;
            if let Some((token, until)) = kept.as_ref() {
                if now < *until {
                    return Ok(token.clone());
                }
            }
            let scope = c.scopes.join(" ");
            let form = [
                ("grant_type", "client_credentials"),
                ("scope", scope.as_str()),
            ];
            let answer = token_request(q, c, &form).await?;
            let life = answer.expires_in.unwrap_or(0);
            let token = SecretString::from(answer.access_token);
            if life > TOKEN_MARGIN_SECS {
                let until = now.plus(std::time::Duration::from_secs(life - TOKEN_MARGIN_SECS));
                *kept = Some((token.clone(), until));
            }
            Ok(token)
        }
        CamaraAuth::Ciba { bc_authorize_url } => ciba_token(q, c, bc_authorize_url, q.number).await,
    }
}

/// GSMA Open Gateway's backend flow: the authorization request for
/// `tel:+<number>`, then the token endpoint, again every interval while
/// it answers `authorization_pending` (the caller's time limit ends it).
async fn ciba_token(
    q: &Question<'_>,
    c: &CamaraConfig,
    bc_authorize_url: &Url,
    number: &str,
) -> Result<SecretString, CheckError> {
    #[derive(Deserialize)]
    struct Accepted {
        auth_req_id: String,
        #[serde(default)]
        interval: Option<u64>,
    }
    const WHAT: &str = "bc-authorize";
    let hint = format!("tel:{number}");
    let scope = c.scopes.join(" ");
    let res = q
        .http
        .post(bc_authorize_url.clone())
        .basic_auth(&c.client_id, Some(c.client_secret.expose_secret()))
        .form(&[("login_hint", hint.as_str()), ("scope", scope.as_str())])
        .send_traced()
        .await
        .map_err(|e| transport(WHAT, &e))?;
    let status = res.status();
    if !status.is_success() {
        return Err(CheckError(format!("{WHAT}: status {}", status.as_u16())));
    }
    let bytes = body(WHAT, res).await?;
    let accepted: Accepted = serde_json::from_slice(&bytes)
        .ok()
        .filter(|a: &Accepted| !a.auth_req_id.is_empty())
        .ok_or_else(|| CheckError(format!("{WHAT}: unreadable answer")))?;
    let mut interval = accepted
        .interval
        .filter(|i| *i > 0)
        .unwrap_or(DEFAULT_INTERVAL)
        .min(MAX_INTERVAL);
    let form = [
        ("grant_type", CIBA_GRANT),
        ("auth_req_id", accepted.auth_req_id.as_str()),
    ];
    loop {
        match token_request(q, c, &form).await {
            Ok(answer) => return Ok(SecretString::from(answer.access_token)),
            Err(e) if e.0.ends_with("authorization_pending") => {}
            Err(e) if e.0.ends_with("slow_down") => interval = interval.saturating_add(5),
            Err(e) => return Err(e),
        }
        tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
    }
}

/// `POST token_url` with `form`, the client by HTTP basic auth. An error
/// answer names only a standard `error` code.
async fn token_request(
    q: &Question<'_>,
    c: &CamaraConfig,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, CheckError> {
    const WHAT: &str = "token endpoint";
    let res = q
        .http
        .post(c.token_url.clone())
        .basic_auth(&c.client_id, Some(c.client_secret.expose_secret()))
        .form(form)
        .send_traced()
        .await
        .map_err(|e| transport(WHAT, &e))?;
    let status = res.status();
    let bytes = body(WHAT, res).await?;
    if !status.is_success() {
        #[derive(Deserialize)]
        struct ErrorAnswer {
            error: String,
        }
        let error = serde_json::from_slice::<ErrorAnswer>(&bytes).map(|e| e.error);
        let known = [
            "authorization_pending",
            "slow_down",
            "access_denied",
            "expired_token",
        ];
        return Err(CheckError(match error {
            Ok(e) if known.contains(&e.as_str()) => format!("{WHAT}: {e}"),
            _ => format!("{WHAT}: status {}", status.as_u16()),
        }));
    }
    serde_json::from_slice::<TokenAnswer>(&bytes)
        .ok()
        .filter(|t| !t.access_token.is_empty())
        .ok_or_else(|| CheckError(format!("{WHAT}: unreadable answer")))
}
