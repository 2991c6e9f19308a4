//! Approval in the customer's own app over OpenID Connect CIBA, poll mode
//! (docs/api.md#approval-in-the-customers-app): the backchannel
//! authentication request and the token endpoint's answers to a poll. The
//! client authenticates as in the hosted login (`client_secret_basic`);
//! every request has the provider's 5 s limit and every answer is read up
//! to [`super::provider::MAX_ANSWER`]. The `auth_req_id` is a bearer of the
//! pending approval: it is never logged, and `Debug` hides it.
use std::fmt;

use serde::Deserialize;

use super::provider::{capped, failed, reachable, without_url, Metadata, Providers};
use super::OidcError;
use crate::config::OidcConfig;
use crate::spans::SendTraced;

/// The CIBA grant type of the token endpoint.
pub const GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";
/// The poll interval when the provider names none, in seconds.
pub const DEFAULT_INTERVAL: u64 = 5;
/// What `slow_down` adds to the interval, in seconds.
pub const SLOW_DOWN_BY: u64 = 5;
/// The longest interval a provider may name, in seconds: an app
/// challenge ends long before, and a larger number (up to `u64::MAX`) must
/// not overflow the times made of it.
pub const MAX_INTERVAL: u64 = 600;

/// The poll interval a provider's answer names: its own when positive,
/// else the default, at most [`MAX_INTERVAL`].
fn poll_interval(named: Option<u64>) -> u64 {
    named
        .filter(|i| *i > 0)
        .unwrap_or(DEFAULT_INTERVAL)
        .min(MAX_INTERVAL)
}

/// The provider's name for one pending approval.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthReqId(pub String);

impl fmt::Debug for AuthReqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthReqId(..)")
    }
}

/// What a backchannel authentication request asks.
#[derive(Debug, Clone)]
pub struct AuthRequest<'a> {
    /// The folded `customer_ref`.
    pub login_hint: &'a str,
    /// The binding code alone: providers show only short plain messages.
    pub binding_message: &'a str,
    /// Seconds: the team's `otp.ttl`.
    pub requested_expiry: u64,
    /// RFC 9396 `authorization_details` (a JSON array) of a challenge for
    /// a transaction (docs/api.md#approving-one-payment).
    pub authorization_details: Option<&'a str>,
}

/// The provider took the request.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub auth_req_id: AuthReqId,
    /// Seconds until the provider forgets the request.
    pub expires_in: u64,
    /// Seconds between polls ([`DEFAULT_INTERVAL`] when it names none).
    pub interval: u64,
}

/// The token endpoint's answer to one poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// `authorization_pending`: ask again after the interval.
    Pending,
    /// `slow_down`: ask again after the interval plus [`SLOW_DOWN_BY`].
    SlowDown,
    /// `access_denied`: the customer refused.
    Denied,
    /// `expired_token`: the provider forgot the request.
    Expired,
    /// The customer approved: the ID token, to check.
    IdToken(String),
    /// A 2xx answer without a readable `id_token`: the token was issued
    /// (and is never issued again), but proves nothing.
    Unusable,
}

/// An error answer's `error` (RFC 6749 5.2).
#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

impl Providers {
    /// POSTs the backchannel authentication request: `scope` (the team's
    /// scopes, `openid` first), `login_hint`, `binding_message`,
    /// `requested_expiry`, and `authorization_details` when given. A provider without the endpoint, one that
    /// refuses or cannot be reached, or an unreadable answer: `Provider`.
    pub async fn backchannel_request(
        &self,
        oidc: &OidcConfig,
        meta: &Metadata,
        req: &AuthRequest<'_>,
    ) -> Result<Accepted, OidcError> {
        #[derive(Deserialize)]
        struct Answer {
            auth_req_id: String,
            expires_in: u64,
            interval: Option<u64>,
        }
        const WHAT: &str = "backchannel authentication endpoint";
        let endpoint = meta
            .backchannel_authentication_endpoint
            .as_ref()
            .ok_or_else(|| failed(WHAT, "the provider names none"))?;
        let endpoint = reachable(
            "backchannel_authentication_endpoint",
            endpoint,
            &meta.issuer,
        )?;
        let expiry = req.requested_expiry.to_string();
        let scope = oidc.scopes.join(" ");
        let mut form = vec![
            ("scope", scope.as_str()),
            ("login_hint", req.login_hint),
            ("binding_message", req.binding_message),
            ("requested_expiry", expiry.as_str()),
        ];
        if let Some(details) = req.authorization_details {
            form.push(("authorization_details", details));
        }
        let res = (self.client_post(oidc, endpoint)?)
            .form(&form)
            .send_traced()
            .await
            .map_err(|e| failed(WHAT, without_url(&e)))?;
        let status = res.status();
        let body = capped(WHAT, res).await?;
        if !status.is_success() {
            let error = serde_json::from_slice::<ErrorAnswer>(&body)
                .map(|e| standard(&e.error))
                .unwrap_or("no error code");
            return Err(failed(WHAT, format!("status {}, {error}", status.as_u16())));
        }
        let a: Answer =
            serde_json::from_slice(&body).map_err(|_| failed(WHAT, "unreadable answer"))?;
        if a.auth_req_id.is_empty() || a.auth_req_id.len() > 1024 || a.expires_in == 0 {
            return Err(failed(WHAT, "unusable answer"));
        }
        Ok(Accepted {
            auth_req_id: AuthReqId(a.auth_req_id),
            expires_in: a.expires_in,
            interval: poll_interval(a.interval),
        })
    }

    /// Polls the token endpoint for `auth_req_id`. A 2xx without a
    /// readable `id_token`: [`Polled::Unusable`]. An error answer the
    /// gateway cannot use (a failing provider, another error): `Provider`,
    /// and the next poll asks again.
    pub async fn poll_token(
        &self,
        oidc: &OidcConfig,
        meta: &Metadata,
        auth_req_id: &AuthReqId,
    ) -> Result<Polled, OidcError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
        }
        const WHAT: &str = "token endpoint";
        let endpoint = reachable("token_endpoint", &meta.token_endpoint, &meta.issuer)?;
        let res = (self.client_post(oidc, endpoint)?)
            .form(&[("grant_type", GRANT_TYPE), ("auth_req_id", &auth_req_id.0)])
            .send_traced()
            .await
            .map_err(|e| failed(WHAT, without_url(&e)))?;
        let status = res.status();
        let body = capped(WHAT, res).await?;
        if status.is_success() {
            let answer = serde_json::from_slice::<TokenAnswer>(&body).ok();
            let token = answer.and_then(|a| a.id_token).filter(|t| !t.is_empty());
            return Ok(token.map_or(Polled::Unusable, Polled::IdToken));
        }
        let error = serde_json::from_slice::<ErrorAnswer>(&body).map(|e| e.error);
        match error.as_deref() {
            Ok("authorization_pending") => Ok(Polled::Pending),
            Ok("slow_down") => Ok(Polled::SlowDown),
            Ok("access_denied") => Ok(Polled::Denied),
            Ok("expired_token") => Ok(Polled::Expired),
            Ok(other) => Err(failed(
                WHAT,
                format!("status {}, {}", status.as_u16(), standard(other)),
            )),
            Err(_) => Err(failed(WHAT, format!("status {}", status.as_u16()))),
        }
    }
}

/// An error code as logged: one of the standard ones, else "another error"
/// (a provider's own text is never logged: it may echo the request).
fn standard(error: &str) -> &'static str {
    [
        "invalid_request",
        "invalid_scope",
        "expired_login_hint_token",
        "unknown_user_id",
        "unauthorized_client",
        "missing_user_code",
        "invalid_user_code",
        "invalid_binding_message",
        "invalid_client",
        "access_denied",
        "invalid_grant",
        "transaction_failed",
    ]
    .into_iter()
    .find(|s| *s == error)
    .unwrap_or("another error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auth_req_id_never_prints_and_only_standard_errors_are_named() {
        let id = AuthReqId("arid-secret-1".into());
        assert_eq!(format!("{id:?}"), "AuthReqId(..)");
        let accepted = Accepted {
            auth_req_id: id,
            expires_in: 120,
            interval: DEFAULT_INTERVAL,
        };
        assert!(!format!("{accepted:?}").contains("arid-secret-1"));
        assert_eq!(standard("unknown_user_id"), "unknown_user_id");
        assert_eq!(standard("<script>echo of arid-1</script>"), "another error");
    }

    #[test]
    fn a_provider_s_interval_is_positive_and_bounded() {
        assert_eq!(poll_interval(None), DEFAULT_INTERVAL);
        assert_eq!(poll_interval(Some(0)), DEFAULT_INTERVAL);
        assert_eq!(poll_interval(Some(7)), 7);
        assert_eq!(poll_interval(Some(u64::MAX)), MAX_INTERVAL);
    }
}
