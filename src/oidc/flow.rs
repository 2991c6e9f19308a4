//! The authorization-code flow's own values: `state`, `nonce`, the PKCE
//! verifier and its S256 challenge, the browser secret the cookie carries,
//! the authorization URL, and what the gateway keeps of a started login
//! until the provider sends the browser back.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::OidcError;
use crate::config::OidcConfig;
use crate::time::{stored, Timestamp};

/// How long a started login waits for the provider's answer.
pub const STATE_TTL: std::time::Duration = std::time::Duration::from_secs(600);

/// 256 random bits, base64url: a `state`, a `nonce`, a PKCE verifier (43
/// characters, within RFC 7636's 43..128) or a browser secret.
pub fn random_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

/// The PKCE `code_challenge` of `verifier` (method S256).
pub fn s256(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// Hex SHA-256: how a state names its record and how a browser secret is
/// kept (neither is stored as sent).
pub fn digest(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// What an authorization request keeps until the provider sends the
/// browser back: the provider it went to, its `nonce` and PKCE verifier,
/// and the digest of the browser secret its cookie holds. The hosted
/// login ([`Started`]) and the console's sign-in (`gateway::console`)
/// each keep one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    /// The issuer the flow was begun with: an answer after the provider
    /// changed is refused. Absent in logins started before it was kept
    /// (refused alike: the customer opens the link again).
    #[serde(rename = "is", default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The `login_hint` sent: for the hosted login, the link's expected
    /// customer, whom the ID token must prove.
    #[serde(rename = "ec", default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v")]
    pub verifier: String,
    /// Digest of the browser secret the cookie holds.
    #[serde(rename = "b")]
    pub browser: String,
    /// The `acr_values` sent instead of the provider's configured ones (a
    /// login link's own); empty: the configured ones.
    #[serde(rename = "acr", default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    #[serde(rename = "at", with = "stored")]
    pub started_at: Timestamp,
}

impl Flow {
    /// A new flow at `issuer` begun `now`, with a fresh `nonce` and PKCE
    /// verifier, and the browser secret its cookie is to hold (kept here
    /// only as its digest).
    pub fn begin(issuer: &str, login_hint: Option<String>, now: Timestamp) -> (Flow, String) {
        let browser_secret = random_value();
        let flow = Flow {
            issuer: Some(issuer.to_string()),
            login_hint,
            nonce: random_value(),
            verifier: random_value(),
            browser: digest(&browser_secret),
            started_at: now,
            acr_values: Vec::new(),
        };
        (flow, browser_secret)
    }

    /// The `acr_values` this flow asks and its ID token's `acr` must be one
    /// of: its own, else `configured` (the provider's section's).
    pub fn acr_values<'a>(&'a self, configured: &'a [String]) -> &'a [String] {
        match self.acr_values.is_empty() {
            true => configured,
            false => &self.acr_values,
        }
    }

    /// Whether the cookie's secret is the one this flow was started with
    /// (compared in constant time).
    pub fn same_browser(&self, cookie: Option<&str>) -> bool {
        cookie.is_some_and(|c| bool::from(digest(c).as_bytes().ct_eq(self.browser.as_bytes())))
    }

    /// Whether it is still within [`STATE_TTL`] at `now` (a `now` a little
    /// before the start is another instance's clock, not a stale state).
    pub fn live(&self, now: Timestamp) -> bool {
        now.since(self.started_at) < STATE_TTL
    }

    /// The first rung of the state ladder a flow started for team
    /// `started_for` fails when its answer comes back to `came_to` (the
    /// team the way back names; `None` where it names none) from a
    /// browser whose cookie holds `cookie`, at `now`; `None`: it may
    /// answer. The hosted login, the network link and the console's
    /// sign-in all climb it, in this order, before a state is used up
    /// (docs/architecture.md#one-state-ladder).
    pub fn unanswerable(
        &self,
        started_for: &str,
        came_to: Option<&str>,
        cookie: Option<&str>,
        now: Timestamp,
    ) -> Option<Unanswerable> {
        if came_to.is_some_and(|team| team != started_for) {
            // The mix-up defence: an answer for another team's login is
            // refused before its code goes anywhere.
            return Some(Unanswerable::OtherTeam);
        }
        if !self.live(now) {
            return Some(Unanswerable::Old);
        }
        // Checked before it is consumed: another browser cannot spend it.
        (!self.same_browser(cookie)).then_some(Unanswerable::OtherBrowser)
    }
}

/// Why a kept state may not answer: a rung of [`Flow::unanswerable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswerable {
    /// Started for another team than the one the answer came back to.
    OtherTeam,
    /// Older than [`STATE_TTL`].
    Old,
    /// Its cookie is not in this browser.
    OtherBrowser,
}

impl Unanswerable {
    /// The reason logged, never a value.
    pub fn reason(self) -> &'static str {
        match self {
            Unanswerable::OtherTeam => "started for another team",
            Unanswerable::Old => "older than 10 minutes",
            Unanswerable::OtherBrowser => "not this browser's",
        }
    }
}

/// A login started by `GET /l/{code}`, kept under the digest of its `state`
/// for [`STATE_TTL`] and consumed by the first answer that carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Started {
    #[serde(rename = "t")]
    pub team: String,
    #[serde(rename = "i")]
    pub interaction_id: Uuid,
    #[serde(rename = "l")]
    pub link_id: Uuid,
    #[serde(flatten)]
    pub flow: Flow,
}

/// The authorization request's URL: `endpoint` with the flow's parameters.
pub fn authorization_url(
    endpoint: &url::Url,
    oidc: &OidcConfig,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    verifier: &str,
    hints: &Hints<'_>,
) -> String {
    let mut url = endpoint.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &oidc.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &oidc.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", &s256(verifier))
            .append_pair("code_challenge_method", "S256");
        if let Some(max_age) = oidc.max_age {
            q.append_pair("max_age", &max_age.as_secs().to_string());
        }
        let acr_values = match hints.acr_values.is_empty() {
            true => &oidc.acr_values[..],
            false => hints.acr_values,
        };
        if !acr_values.is_empty() {
            q.append_pair("acr_values", &acr_values.join(" "));
        }
        if let Some(hint) = hints.login_hint {
            q.append_pair("login_hint", hint);
        }
        if !hints.ui_locales.is_empty() {
            q.append_pair("ui_locales", hints.ui_locales);
        }
    }
    url.to_string()
}

/// What an authorization request tells the provider of the customer.
#[derive(Debug, Default)]
pub struct Hints<'a> {
    /// The customer the login must prove (`login_hint`).
    pub login_hint: Option<&'a str>,
    /// The languages to show, space-separated (`ui_locales`); empty: none.
    pub ui_locales: &'a str,
    /// The `acr_values` to send instead of the section's; empty: the
    /// section's.
    pub acr_values: &'a [String],
}

/// What the provider sent back in the browser's query.
#[derive(Debug, Default)]
pub struct ProviderAnswer {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub iss: Option<String>,
}

impl ProviderAnswer {
    /// The answer's first checks, before the provider's metadata is
    /// read: an error from the provider is a cancelled login, and a login
    /// begun with another provider (`started_issuer`, the team's changed
    /// since) is not this provider's (`issuer`) to judge.
    pub fn check_against(
        &self,
        started_issuer: Option<&str>,
        issuer: &str,
    ) -> Result<(), OidcError> {
        if self.error.is_some() {
            return Err(OidcError::Cancelled);
        }
        if started_issuer != Some(issuer) {
            return Err(OidcError::WrongIssuer);
        }
        Ok(())
    }

    /// The authorization code, once the answer is this provider's
    /// (RFC 9207): an answer naming another issuer, or none from a
    /// provider that always names itself (`iss_supported`), may come from
    /// another provider.
    pub fn code_from(&self, issuer: &str, iss_supported: bool) -> Result<&str, OidcError> {
        match self.iss.as_deref() {
            Some(iss) if iss != issuer => return Err(OidcError::WrongIssuer),
            None if iss_supported => return Err(OidcError::WrongIssuer),
            _ => {}
        }
        self.code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or(OidcError::BadState("no code"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_rfc_7636s_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_values_carry_256_bits_and_differ() {
        let (a, b) = (random_value(), random_value());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn only_the_starting_browser_and_only_for_ten_minutes() {
        let t0 = Timestamp::from_unix_seconds(1_795_000_000);
        let s = Flow {
            issuer: None,
            login_hint: None,
            nonce: "n".into(),
            verifier: "v".into(),
            browser: digest("secret"),
            started_at: t0,
            acr_values: Vec::new(),
        };
        assert!(s.same_browser(Some("secret")));
        assert!(!s.same_browser(Some("other")));
        assert!(!s.same_browser(None));
        assert!(s.live(Timestamp::from_unix_seconds(1_795_000_599)));
        assert!(s.live(Timestamp::from_unix_seconds(1_794_999_999)));
        assert!(!s.live(Timestamp::from_unix_seconds(1_795_000_600)));
    }
}
