//! Hosted login with a team's OpenID Connect provider
//! (docs/api.md#hosted-login-openid-connect): the gateway as relying party.
//!
//! - [`flow`]: `state`, `nonce`, PKCE S256, the browser cookie's secret, the
//!   authorization URL, and what is kept of a started login;
//! - [`states`]: the logins started from one link (at most five), kept in
//!   one record found from the state;
//! - [`provider`]: discovery, the cached key set, the token endpoint;
//! - [`id_token`]: the ID token checks, as plain functions of `now`;
//! - [`logout_token`]: what a back-channel logout token adds to them;
//! - [`camara`]: silent network authentication at a mobile operator
//!   (CAMARA Number Verification): its authorization request, code
//!   exchange and verify call;
//! - [`ciba`]: approval in the customer's app (CIBA poll mode): the
//!   backchannel authentication request and the token endpoint's poll.
//!
//! The use cases (`gateway::oidc`) join these to the login callback's
//! rules; the browser's two routes are `http::oidc`'s.
pub mod ciba;
pub mod flow;
pub mod id_token;
pub mod logout_token;
pub mod provider;
pub mod states;

pub use provider::{reachable, KeySet, Metadata, Providers};

/// Why a login with the provider could not finish. Each is one status of
/// the customer's page; none carries a token, code or state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// 400: the state is unknown, older than 10 minutes, already answered,
    /// started for another team, or not this browser's.
    #[error("unknown, stale, answered or foreign state: {0}")]
    BadState(&'static str),
    /// 400: the provider answered with an `error` (the customer cancelled).
    #[error("the provider answered an error")]
    Cancelled,
    /// 400: the answer's `iss` is not the team's provider (mix-up defence).
    #[error("the answer's iss is not the team's provider")]
    WrongIssuer,
    /// 502: the provider could not be reached or refused the exchange.
    #[error("the provider failed: {0}")]
    Provider(String),
    /// 401: the ID token fails a check.
    #[error("the ID token was refused: {0}")]
    InvalidIdToken(&'static str),
    /// 401: the token's signature cannot be verified: an algorithm that is
    /// not allowed, no `kid`, a `kid` not in the key set, an unusable key,
    /// a signature that does not verify.
    #[error("the token's signature was refused: {0}")]
    Unverified(&'static str),
}
