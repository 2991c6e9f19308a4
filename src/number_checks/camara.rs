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
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use url::Url;

use super::{
    body, by_status, transport, Asked, CamaraAuth, CamaraConfig, CheckError, NumberChecks,
};
use crate::domain::number_check::Finding;
use crate::spans::SendTraced;
use crate::time::Timestamp;

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

/// Asks the operator about `number`: SIM swap, and unconditional call
/// forwarding when `forwarding` and the team names the API (side by side).
pub(super) async fn ask(
    nc: &NumberChecks,
    c: &CamaraConfig,
    number: &str,
    forwarding: bool,
    now: Timestamp,
) -> (Asked, Option<Asked>) {
    let forwarding_url = c.call_forwarding_url.as_ref().filter(|_| forwarding);
    let token = match token(nc, c, number, now).await {
        Ok(t) => t,
        Err(e) => return (Err(e.clone()), forwarding_url.map(|_| Err(e))),
    };
    let hours = nc.settings.sim_swap_max_age.as_secs().div_ceil(3600).max(1);
    let swap_body = json!({"phoneNumber": number, "maxAge": hours});
    let swap = question(nc, &c.sim_swap_url, "check", swap_body, &token, "swapped");
    let answers = match forwarding_url {
        None => (swap.await, None),
        Some(url) => {
            let body = json!({"phoneNumber": number});
            let path = "unconditional-call-forwardings";
            let fwd = question(nc, url, path, body, &token, "active");
            let (swap, fwd) = tokio::join!(swap, fwd);
            (swap, Some(fwd))
        }
    };
    if let CamaraAuth::ClientCredentials = c.auth {
        let refused = |a: &Asked| matches!(a, Err(e) if e.0.ends_with("status 401"));
        if refused(&answers.0) || answers.1.as_ref().is_some_and(refused) {
            // The operator no longer takes it: the next check asks anew.
            *nc.token.lock().await = None;
        }
    }
    answers
}

/// `POST {root}/{path}` with `body` and the bearer token; the answer's
/// boolean `field`.
async fn question(
    nc: &NumberChecks,
    root: &Url,
    path: &str,
    body: serde_json::Value,
    token: &SecretString,
    field: &str,
) -> Asked {
    let url = format!("{}/{path}", root.as_str().trim_end_matches('/'));
    let res = nc
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
    let bytes = super::body(path, res).await?;
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
async fn token(
    nc: &NumberChecks,
    c: &CamaraConfig,
    number: &str,
    now: Timestamp,
) -> Result<SecretString, CheckError> {
    match &c.auth {
        CamaraAuth::ClientCredentials => {
            let mut kept = nc.token.lock().await;
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
            let answer = token_request(nc, c, &form).await?;
            let life = answer.expires_in.unwrap_or(0);
            let token = SecretString::from(answer.access_token);
            if life > TOKEN_MARGIN_SECS {
                let until = now.plus(std::time::Duration::from_secs(life - TOKEN_MARGIN_SECS));
                *kept = Some((token.clone(), until));
            }
            Ok(token)
        }
        CamaraAuth::Ciba { bc_authorize_url } => ciba_token(nc, c, bc_authorize_url, number).await,
    }
}

/// GSMA Open Gateway's backend flow: the authorization request for
/// `tel:+<number>`, then the token endpoint, again every interval while
/// it answers `authorization_pending` (the caller's time limit ends it).
async fn ciba_token(
    nc: &NumberChecks,
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
    let res = nc
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
        match token_request(nc, c, &form).await {
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
    nc: &NumberChecks,
    c: &CamaraConfig,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, CheckError> {
    const WHAT: &str = "token endpoint";
    let res = nc
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
