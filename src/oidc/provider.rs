//! The team's provider over HTTP: its discovery document and key set, both
//! cached, and the token endpoint. Every request has a 5 s limit, every
//! answer is read up to [`MAX_ANSWER`], and only an endpoint that is
//! `https` (or `http` on a loopback address) is ever asked; a failure is an
//! [`OidcError::Provider`] whose reason names what failed, never a token,
//! code or secret.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use secrecy::ExposeSecret;
use serde::Deserialize;
use url::Url;

use super::OidcError;
use crate::answers::{body_capped, Uncapped};
use crate::config::OidcConfig;
use crate::fared::Failing;
/// How a provider's background asks (the app challenges' polls) fare, for
/// its log.
pub use crate::fared::Fared;
use crate::outbound::{Clients, Reach};
use crate::spans::SendTraced;
use crate::time::Timestamp;

/// Longest wait for the provider, per request.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of any answer of a provider (discovery, key set, token) that
/// is read: one byte more and the provider counts as failing. Real
/// answers are a few KiB.
pub const MAX_ANSWER: usize = 1 << 20;
/// A discovery document is fetched again after this long.
const METADATA_LIFE: Duration = Duration::from_secs(3600);
/// An unknown `kid` fetches the key set again at once the first time, then
/// at most this often for each endpoint that asks ([`KeyUse`]).
pub const REFETCH_EVERY: Duration = Duration::from_secs(10);
/// A `kid` still unknown after a fetch is refused without a fetch this long.
pub const UNKNOWN_KID_FOR: Duration = Duration::from_secs(60);
/// The most unknown `kid`s remembered per key set; the oldest go first.
const UNKNOWN_KIDS_KEPT: usize = 64;
/// A fetch of a discovery document or key set that failed is not tried
/// again for that provider this long: requests needing it meanwhile are
/// answered at once, so an outage costs one wait per provider, not one
/// per request (docs/operations.md#one-team-never-holds-another).
pub const FAILED_FETCH_FOR: Duration = Duration::from_secs(5);
/// A fetch's own limit, under [`TIMEOUT`]: a provider that does not answer
/// is noted as failing before the request's own wait ends.
const FETCH_TIMEOUT: Duration = Duration::from_millis(4_500);

/// The endpoint that asks for a key: each has its own refetch allowance,
/// so that unknown `kid`s posted to one cannot delay another
/// (docs/api.md#hosted-login-openid-connect).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyUse {
    /// The hosted login's ID tokens.
    Login,
    /// The back-channel logout's logout tokens.
    Logout,
    /// The Shared Signals receiver's Security Event Tokens.
    Ssf,
    /// CIBA's ID tokens.
    Ciba,
    /// The workforce tokens of `Chatgate-Actor`.
    Actor,
    /// The ID tokens of the console's sign-in.
    Console,
    /// The access tokens of the MCP server's OAuth clients.
    Mcp,
}

/// What the gateway uses of `{issuer}/.well-known/openid-configuration`.
/// An endpoint is kept as named; [`reachable`] decides, where it is
/// needed, whether it may be used.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    /// RFC 9207: the provider adds `iss` to its answers.
    pub authorization_response_iss_parameter_supported: bool,
    /// CIBA: where an app approval is asked for (`None`: the provider does
    /// not offer it).
    pub backchannel_authentication_endpoint: Option<Url>,
}

/// [`Metadata`] as sent.
#[derive(Deserialize)]
struct MetadataWire {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    backchannel_authentication_endpoint: Option<String>,
}

impl MetadataWire {
    /// The document, if it is the configured issuer's and names usable endpoints.
    fn checked(self, issuer: &str) -> Result<Metadata, OidcError> {
        if self.issuer != issuer {
            return Err(failed("discovery", "its issuer is not the configured one"));
        }
        let endpoint = |name: &str, s: &str| {
            Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "https" | "http"))
                .ok_or_else(|| failed("discovery", format!("{name} is not an http(s) URL")))
        };
        Ok(Metadata {
            authorization_endpoint: endpoint(
                "authorization_endpoint",
                &self.authorization_endpoint,
            )?,
            token_endpoint: endpoint("token_endpoint", &self.token_endpoint)?,
            jwks_uri: endpoint("jwks_uri", &self.jwks_uri)?,
            // Optional, and only CIBA's: a malformed one is none (an app
            // challenge is then refused), never the hosted login's end.
            backchannel_authentication_endpoint: self
                .backchannel_authentication_endpoint
                .as_deref()
                .and_then(|u| {
                    let parsed = endpoint("backchannel_authentication_endpoint", u);
                    parsed
                        .map_err(|e| tracing::warn!(issuer = %issuer, reason = %e, "discovery's backchannel_authentication_endpoint ignored"))
                        .ok()
                }),
            issuer: self.issuer,
            authorization_response_iss_parameter_supported: self
                .authorization_response_iss_parameter_supported,
        })
    }
}

/// `url`, the endpoint `name`d by the discovery document of the provider at
/// `issuer`, if it is `https` or `http` on a loopback address, and on a
/// loopback address only when the issuer is ([`crate::config::may_reach`]);
/// else the provider counts as unreachable (nothing is sent there, and the
/// reason is the refusal's one log line).
pub fn reachable<'a>(name: &str, url: &'a Url, issuer: &str) -> Result<&'a Url, OidcError> {
    if crate::config::may_reach(url, issuer) {
        Ok(url)
    } else {
        Err(failed(
            "discovery",
            format!("{name} is neither https nor http on a loopback address, or is on a loopback address while the issuer is not"),
        ))
    }
}

/// The body of `res`, read up to [`MAX_ANSWER`]: a longer one (declared or
/// sent) fails as soon as it is known to be longer.
pub(super) async fn capped(what: &str, res: reqwest::Response) -> Result<Vec<u8>, OidcError> {
    body_capped(res, MAX_ANSWER).await.map_err(|e| match e {
        Uncapped::TooLong => failed(what, format!("answer over {MAX_ANSWER} bytes")),
        Uncapped::Read(e) => failed(what, without_url(&e)),
    })
}

/// A key set and whose it is: a provider's (its discovery's `jwks_uri`)
/// or a Shared Signals transmitter's (configured).
#[derive(Debug, Clone, Copy)]
pub struct KeySet<'a> {
    /// Names its cache: each key set is cached and refetched on its own.
    pub cache: &'a str,
    pub jwks_uri: &'a Url,
    /// Its owner's issuer: a key set on a loopback address only for an
    /// issuer on one ([`reachable`]).
    pub issuer: &'a str,
    /// Where it may be fetched from: its team's reach.
    pub reach: Reach,
}

/// One provider's cached documents.
#[derive(Default)]
struct Cached {
    metadata: Option<(Metadata, Timestamp)>,
    keys: Option<Vec<Jwk>>,
    /// When an unknown `kid` last fetched the key set again, per endpoint.
    refetched_at: BTreeMap<KeyUse, Timestamp>,
    /// `kid`s a fetch did not find, by the endpoint whose fetch it was, and
    /// when: refused to that endpoint without a fetch for
    /// [`UNKNOWN_KID_FOR`] (another endpoint's fetch may find it since).
    unknown: BTreeMap<(KeyUse, String), Timestamp>,
    /// The last fetch of the discovery document that failed, and why:
    /// answered again without asking for [`FAILED_FETCH_FOR`].
    metadata_failed: Option<(Timestamp, OidcError)>,
    /// The same for the key set.
    keys_failed: Option<(Timestamp, OidcError)>,
}

/// The failure remembered in `failed`, while it is younger than
/// [`FAILED_FETCH_FOR`] at `now`.
fn still_failing(failed: &Option<(Timestamp, OidcError)>, now: Timestamp) -> Option<OidcError> {
    match failed {
        Some((at, e)) if now.since(*at) < FAILED_FETCH_FOR => Some(e.clone()),
        _ => None,
    }
}

impl Cached {
    fn find(&self, kid: &str) -> Option<Jwk> {
        self.keys
            .iter()
            .flatten()
            .find(|k| k.common.key_id.as_deref() == Some(kid))
            .cloned()
    }

    /// Remembers that a fetch for `use_` at `now` did not find `kid`,
    /// forgetting what is old enough (and the oldest, beyond
    /// [`UNKNOWN_KIDS_KEPT`]).
    fn not_found(&mut self, use_: KeyUse, kid: &str, now: Timestamp) {
        self.unknown
            .retain(|_, at| now.since(*at) < UNKNOWN_KID_FOR);
        while self.unknown.len() >= UNKNOWN_KIDS_KEPT {
            let oldest = self
                .unknown
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.unknown.remove(&k),
                None => break,
            };
        }
        self.unknown.insert((use_, kid.to_string()), now);
    }
}

/// The providers of every team, by issuer, with one HTTP client.
pub struct Providers {
    pub(super) http: Clients,
    cache: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Cached>>>>,
    /// The providers whose polls fail, by issuer (docs/operations.md#logs).
    failing: Failing,
}

impl Default for Providers {
    fn default() -> Self {
        Providers {
            http: crate::answers::client(TIMEOUT),
            cache: Mutex::new(HashMap::new()),
            failing: Failing::default(),
        }
    }
}

pub(super) fn failed(what: &str, e: impl std::fmt::Display) -> OidcError {
    OidcError::Provider(format!("{what}: {e}"))
}

impl Providers {
    /// Notes that a background ask of the provider `issuer` failed
    /// (`failed`) or was answered at `now`: what to log.
    pub fn fared(&self, issuer: &str, failed: bool, now: Timestamp) -> Fared {
        self.failing.fared(issuer, failed, now)
    }

    fn entry(&self, issuer: &str) -> Arc<tokio::sync::Mutex<Cached>> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cache.entry(issuer.to_string()).or_default().clone()
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
        reach: Reach,
    ) -> Result<T, OidcError> {
        let res = (self.http.of(reach).map_err(|e| failed(what, e))?)
            .get(url)
            .timeout(TIMEOUT)
            .send_traced()
            .await
            .map_err(|e| failed(what, without_url(&e)))?;
        if !res.status().is_success() {
            return Err(failed(what, format!("status {}", res.status().as_u16())));
        }
        serde_json::from_slice(&capped(what, res).await?)
            .map_err(|_| failed(what, "unreadable answer"))
    }

    /// The provider's discovery document (cached for an hour; a failed
    /// refresh keeps the one it has). Its `issuer` must be the configured one.
    pub async fn metadata(&self, oidc: &OidcConfig, now: Timestamp) -> Result<Metadata, OidcError> {
        in_time(
            "discovery",
            &oidc.issuer,
            self.metadata_now(oidc, false, now),
        )
        .await
    }

    /// The metadata of an authorization server that may speak OAuth
    /// alone: as [`Self::metadata`], and where its OpenID discovery
    /// document is not found (404), RFC 8414's
    /// `/.well-known/oauth-authorization-server` (before the issuer's
    /// path), cached alike.
    pub async fn authorization_server(
        &self,
        oidc: &OidcConfig,
        now: Timestamp,
    ) -> Result<Metadata, OidcError> {
        in_time(
            "discovery",
            &oidc.issuer,
            self.metadata_now(oidc, true, now),
        )
        .await
    }

    async fn metadata_now(
        &self,
        oidc: &OidcConfig,
        oauth_too: bool,
        now: Timestamp,
    ) -> Result<Metadata, OidcError> {
        let entry = self.entry(&oidc.issuer);
        let mut cached = entry.lock().await;
        if let Some((m, at)) = &cached.metadata {
            if now.since(*at) < METADATA_LIFE {
                return Ok(m.clone());
            }
        }
        if let Some(e) = still_failing(&cached.metadata_failed, now) {
            return match &cached.metadata {
                Some((stale, _)) => Ok(stale.clone()),
                None => Err(e),
            };
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            oidc.issuer.trim_end_matches('/')
        );
        let fetch = |url: String| {
            within("discovery", async move {
                self.get_json::<MetadataWire>("discovery", &url, oidc.reach)
                    .await
            })
        };
        let mut fetched = fetch(url).await;
        if oauth_too && fetched.as_ref().err() == Some(&failed("discovery", "status 404")) {
            fetched = fetch(oauth_metadata_url(&oidc.issuer)).await;
        }
        let fetched = fetched.and_then(|m| m.checked(&oidc.issuer));
        cached.metadata_failed = fetched.as_ref().err().map(|e| (now, e.clone()));
        match (fetched, &cached.metadata) {
            (Ok(m), _) => {
                cached.metadata = Some((m.clone(), now));
                Ok(m)
            }
            (Err(e), Some((stale, _))) => {
                tracing::warn!(issuer = %oidc.issuer, reason = %e, "identity provider: keeping the discovery document it has");
                Ok(stale.clone())
            }
            (Err(e), None) => Err(e),
        }
    }

    async fn fetch_keys(&self, set: &KeySet<'_>) -> Result<Vec<Jwk>, OidcError> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let jwks_uri = reachable("jwks_uri", set.jwks_uri, set.issuer)?;
        let set: Set = (self.get_json("key set", jwks_uri.as_str(), set.reach)).await?;
        // A key of a kind this gateway does not read (an encryption key of
        // an algorithm unknown here) is skipped, not fatal to the set.
        Ok(set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
            .collect())
    }

    /// The key set, fetched at `now` unless a fetch failed within
    /// [`FAILED_FETCH_FOR`] (then that failure, at once); a failure is noted
    /// in `cached`.
    async fn fetch_keys_noted(
        &self,
        set: &KeySet<'_>,
        cached: &mut Cached,
        now: Timestamp,
    ) -> Result<Vec<Jwk>, OidcError> {
        if let Some(e) = still_failing(&cached.keys_failed, now) {
            return Err(e);
        }
        let fetched = within("key set", self.fetch_keys(set)).await;
        cached.keys_failed = fetched.as_ref().err().map(|e| (now, e.clone()));
        fetched
    }

    /// The key named `kid` of `set`, for the endpoint `use_`. The set is
    /// fetched when none is cached (not a refetch). An unknown `kid` fetches
    /// it again (a rotated key) at once the first time, then at most once
    /// per [`REFETCH_EVERY`] for each endpoint; a `kid` still unknown after
    /// a fetch (any endpoint's) is refused without a fetch for
    /// [`UNKNOWN_KID_FOR`].
    pub async fn key_for(
        &self,
        set: &KeySet<'_>,
        use_: KeyUse,
        kid: &str,
        now: Timestamp,
    ) -> Result<Jwk, OidcError> {
        in_time("key set", set.issuer, self.key_now(set, use_, kid, now)).await
    }

    async fn key_now(
        &self,
        set: &KeySet<'_>,
        use_: KeyUse,
        kid: &str,
        now: Timestamp,
    ) -> Result<Jwk, OidcError> {
        const UNKNOWN: OidcError = OidcError::Unverified("a kid not in the key set");
        let entry = self.entry(set.cache);
        let mut cached = entry.lock().await;
        if cached.keys.is_none() {
            cached.keys = Some(self.fetch_keys_noted(set, &mut cached, now).await?);
        } else if cached.find(kid).is_none() {
            let known_unknown = cached
                .unknown
                .get(&(use_, kid.to_string()))
                .is_some_and(|at| now.since(*at) < UNKNOWN_KID_FOR);
            let too_soon = cached
                .refetched_at
                .get(&use_)
                .is_some_and(|at| now.since(*at) < REFETCH_EVERY);
            if known_unknown || too_soon {
                return Err(UNKNOWN);
            }
            cached.refetched_at.insert(use_, now);
            cached.keys = Some(self.fetch_keys_noted(set, &mut cached, now).await?);
        }
        match cached.find(kid) {
            Some(key) => Ok(key),
            None => {
                cached.not_found(use_, kid, now);
                Err(UNKNOWN)
            }
        }
    }

    /// A POST to one of the provider's endpoints with the client's
    /// credentials (`client_secret_basic`) that reads JSON.
    pub(super) fn client_post(
        &self,
        oidc: &OidcConfig,
        url: &Url,
    ) -> Result<reqwest::RequestBuilder, OidcError> {
        // RFC 6749 2.3.1: both are form-encoded before basic auth.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let http = self.http.of(oidc.reach).map_err(|e| failed("token", e))?;
        Ok(http
            .post(url.clone())
            .timeout(TIMEOUT)
            .basic_auth(
                enc(&oidc.client_id),
                Some(enc(oidc.client_secret.expose_secret())),
            )
            .header(reqwest::header::ACCEPT, "application/json"))
    }

    /// Exchanges `code` at the token endpoint (`client_secret_basic`, with
    /// the PKCE verifier) and returns the ID token.
    pub async fn exchange(
        &self,
        oidc: &OidcConfig,
        meta: &Metadata,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, OidcError> {
        #[derive(Deserialize)]
        struct TokenAnswer {
            id_token: Option<String>,
        }
        let endpoint = reachable("token_endpoint", &meta.token_endpoint, &meta.issuer)?;
        let res = (self.client_post(oidc, endpoint)?)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send_traced()
            .await
            .map_err(|e| failed("token endpoint", without_url(&e)))?;
        let status = res.status();
        if !status.is_success() {
            // The body may name the error (`invalid_grant`); it is not logged:
            // some providers echo the request.
            return Err(failed(
                "token endpoint",
                format!("status {}", status.as_u16()),
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&capped("token endpoint", res).await?)
            .map_err(|_| failed("token endpoint", "unreadable answer"))?;
        answer
            .id_token
            .ok_or_else(|| failed("token endpoint", "no id_token in its answer"))
    }
}

/// Where RFC 8414 puts the metadata of the authorization server
/// `issuer`: `/.well-known/oauth-authorization-server` between its host
/// and its path.
fn oauth_metadata_url(issuer: &str) -> String {
    let issuer = issuer.trim_end_matches('/');
    let Ok(url) = Url::parse(issuer) else {
        return format!("{issuer}/.well-known/oauth-authorization-server");
    };
    let path = url.path().trim_end_matches('/');
    let origin = url.origin().ascii_serialization();
    format!("{origin}/.well-known/oauth-authorization-server{path}")
}

/// A reqwest error without its URL (a query could carry a code).
pub(super) fn without_url(e: &reqwest::Error) -> String {
    if crate::outbound::is_refused(e) {
        return crate::outbound::Refused.to_string();
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() {
        "unreadable answer"
    } else {
        "request failed"
    };
    kind.to_string()
}

/// `work`, a fetch, or its failure once [`FETCH_TIMEOUT`] has passed.
async fn within<T>(
    what: &'static str,
    work: impl std::future::Future<Output = Result<T, OidcError>>,
) -> Result<T, OidcError> {
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(failed(what, "no answer in time")))
}

/// `work` on a provider, waited for [`TIMEOUT`] at most in all — the
/// wait for another request's fetch of the same provider included — so
/// that one team's slow provider never holds a request past it
/// (docs/operations.md#one-team-never-holds-another); a wait on the
/// provider of `issuer` for the request it is made in
/// ([`crate::waits::on_provider`]).
async fn in_time<T>(
    what: &'static str,
    issuer: &str,
    work: impl std::future::Future<Output = Result<T, OidcError>>,
) -> Result<T, OidcError> {
    let work = tokio::time::timeout(TIMEOUT, work);
    crate::waits::on_provider("identity provider", issuer, work)
        .await
        .unwrap_or_else(|_| Err(failed(what, "no answer in time")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(backchannel: Option<&str>) -> MetadataWire {
        MetadataWire {
            issuer: "https://idp.example".into(),
            authorization_endpoint: "https://idp.example/authorize".into(),
            token_endpoint: "https://idp.example/token".into(),
            jwks_uri: "https://idp.example/jwks".into(),
            authorization_response_iss_parameter_supported: false,
            backchannel_authentication_endpoint: backchannel.map(String::from),
        }
    }

    #[test]
    fn a_malformed_backchannel_endpoint_is_none_and_login_goes_on() {
        for bad in ["not a url", "ftp://idp.example/bc"] {
            let meta = wire(Some(bad)).checked("https://idp.example").unwrap();
            assert!(meta.backchannel_authentication_endpoint.is_none());
        }
        let meta = wire(Some("https://idp.example/bc"))
            .checked("https://idp.example")
            .unwrap();
        assert_eq!(
            meta.backchannel_authentication_endpoint.unwrap().as_str(),
            "https://idp.example/bc"
        );
        assert!(wire(None).checked("https://idp.example").is_ok());
    }

    /// A key set at a local stand-in whose keys a test changes, counting
    /// its fetches.
    struct Jwks {
        kids: Arc<Mutex<Vec<&'static str>>>,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl wiremock::Respond for Jwks {
        fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
            self.fetches
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let keys: Vec<serde_json::Value> = self
                .kids
                .lock()
                .unwrap()
                .iter()
                .map(|kid| serde_json::json!({"kty": "RSA", "alg": "RS256", "kid": kid, "n": "AQAB", "e": "AQAB"}))
                .collect();
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({ "keys": keys }))
        }
    }

    struct Stand {
        _server: wiremock::MockServer,
        issuer: String,
        jwks_uri: Url,
        kids: Arc<Mutex<Vec<&'static str>>>,
        fetches: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Stand {
        async fn new(kids: &[&'static str]) -> Stand {
            let server = wiremock::MockServer::start().await;
            let (kids, fetches) = (Arc::new(Mutex::new(kids.to_vec())), Arc::default());
            wiremock::Mock::given(wiremock::matchers::path("/jwks"))
                .respond_with(Jwks {
                    kids: Arc::clone(&kids),
                    fetches: Arc::clone(&fetches),
                })
                .mount(&server)
                .await;
            Stand {
                issuer: server.uri(),
                jwks_uri: Url::parse(&format!("{}/jwks", server.uri())).unwrap(),
                _server: server,
                kids,
                fetches,
            }
        }

        fn set(&self) -> KeySet<'_> {
            KeySet {
                cache: &self.issuer,
                jwks_uri: &self.jwks_uri,
                issuer: &self.issuer,
                reach: Reach::Anywhere,
            }
        }

        fn rotate(&self, kids: &[&'static str]) {
            *self.kids.lock().unwrap() = kids.to_vec();
        }

        fn fetches(&self) -> usize {
            self.fetches.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_795_000_000 + s)
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_every_ten_seconds_and_is_remembered_a_minute() {
        let idp = Stand::new(&["a"]).await;
        let p = Providers::default();
        let set = idp.set();
        // The first fetch is not a refetch.
        assert!(p.key_for(&set, KeyUse::Login, "a", at(0)).await.is_ok());
        assert_eq!(idp.fetches(), 1);
        // A stray kid: fetched again at once, still unknown.
        assert!(p
            .key_for(&set, KeyUse::Login, "stray", at(1))
            .await
            .is_err());
        assert_eq!(idp.fetches(), 2);
        // The provider rotates to b: within 10 s of the last refetch, refused
        // without a fetch; from then on, fetched (not a minute later).
        idp.rotate(&["a", "b"]);
        assert!(p.key_for(&set, KeyUse::Login, "b", at(5)).await.is_err());
        assert_eq!(idp.fetches(), 2);
        assert!(p.key_for(&set, KeyUse::Login, "b", at(11)).await.is_ok());
        assert_eq!(idp.fetches(), 3);
        // The stray kid within the minute: refused without a fetch, though
        // the last refetch is over 10 s old.
        assert!(p
            .key_for(&set, KeyUse::Login, "stray", at(30))
            .await
            .is_err());
        assert_eq!(idp.fetches(), 3);
        // A minute after it was found unknown, the stray kid may fetch again.
        assert!(p
            .key_for(&set, KeyUse::Login, "stray", at(60))
            .await
            .is_err());
        assert_eq!(idp.fetches(), 3);
        assert!(p
            .key_for(&set, KeyUse::Login, "stray", at(61))
            .await
            .is_err());
        assert_eq!(idp.fetches(), 4);
    }

    #[tokio::test]
    async fn each_endpoint_has_its_own_refetch_budget() {
        let idp = Stand::new(&["a"]).await;
        let p = Providers::default();
        let set = idp.set();
        assert!(p.key_for(&set, KeyUse::Login, "a", at(0)).await.is_ok());
        // A stranger's kid at the back-channel logout uses its budget ...
        assert!(p
            .key_for(&set, KeyUse::Logout, "stray", at(1))
            .await
            .is_err());
        assert_eq!(idp.fetches(), 2);
        // ... not the hosted login's: a key rotated just now is fetched.
        idp.rotate(&["b"]);
        assert!(p.key_for(&set, KeyUse::Login, "b", at(2)).await.is_ok());
        assert_eq!(idp.fetches(), 3);
        // Nor CIBA's, nor the receiver's; the logout's is used up.
        idp.rotate(&["b", "c", "d"]);
        assert!(p.key_for(&set, KeyUse::Logout, "c", at(3)).await.is_err());
        assert_eq!(idp.fetches(), 3);
        assert!(p.key_for(&set, KeyUse::Ciba, "c", at(3)).await.is_ok());
        assert_eq!(idp.fetches(), 4);
        assert!(p.key_for(&set, KeyUse::Ssf, "d", at(4)).await.is_ok());
        assert_eq!(idp.fetches(), 4, "d is in the set fetched at 3");
    }

    #[tokio::test]
    async fn a_kid_unknown_to_one_endpoint_is_fetched_by_another() {
        let idp = Stand::new(&["a"]).await;
        let p = Providers::default();
        let set = idp.set();
        assert!(p.key_for(&set, KeyUse::Login, "a", at(0)).await.is_ok());
        // A stranger's logout token names a kid the provider has not yet
        // published: unknown to the back-channel logout for a minute ...
        assert!(p
            .key_for(&set, KeyUse::Logout, "next", at(1))
            .await
            .is_err());
        assert_eq!(idp.fetches(), 2);
        // ... not to the hosted login, once the provider publishes it.
        idp.rotate(&["a", "next"]);
        assert!(p.key_for(&set, KeyUse::Login, "next", at(2)).await.is_ok());
        assert_eq!(idp.fetches(), 3);
    }

    #[test]
    fn rfc_8414_puts_the_well_known_before_the_issuer_s_path() {
        let url = oauth_metadata_url;
        assert_eq!(
            url("https://as.example"),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            url("https://as.example/tenant/1/"),
            "https://as.example/.well-known/oauth-authorization-server/tenant/1"
        );
        assert_eq!(
            url("http://127.0.0.1:8080/t"),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server/t"
        );
    }

    #[tokio::test]
    async fn an_oauth_server_s_metadata_is_read_where_rfc_8414_puts_it_for_oauth_alone() {
        let server = wiremock::MockServer::start().await;
        let issuer = format!("{}/t", server.uri());
        let doc = serde_json::json!({"issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks")});
        wiremock::Mock::given(wiremock::matchers::path(
            "/.well-known/oauth-authorization-server/t",
        ))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(doc))
        .mount(&server)
        .await;
        let oidc = OidcConfig::checking_only(issuer.clone(), "c".into());
        // The OpenID login asks OpenID's document alone (404 here).
        assert!(Providers::default().metadata(&oidc, at(0)).await.is_err());
        let p = Providers::default();
        let meta = p.authorization_server(&oidc, at(0)).await.unwrap();
        assert_eq!(meta.jwks_uri.as_str(), format!("{issuer}/jwks"));
        let asked = server.received_requests().await.unwrap().len();
        assert_eq!(asked, 3, "the login's one, then OpenID's and RFC 8414's");
        // Cached as any discovery document.
        assert!(p.authorization_server(&oidc, at(60)).await.is_ok());
        assert_eq!(server.received_requests().await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_failed_fetch_is_answered_again_without_asking_for_five_seconds() {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::any())
            .respond_with(wiremock::ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let asked = || async { server.received_requests().await.unwrap().len() };
        let p = Providers::default();
        let jwks_uri = Url::parse(&format!("{}/jwks", server.uri())).unwrap();
        let issuer = server.uri();
        let set = KeySet {
            cache: &issuer,
            jwks_uri: &jwks_uri,
            issuer: &issuer,
            reach: Reach::Anywhere,
        };
        // The key set: asked once, then refused at once for 5 s.
        assert!(p.key_for(&set, KeyUse::Login, "a", at(0)).await.is_err());
        assert_eq!(asked().await, 1);
        for use_ in [KeyUse::Login, KeyUse::Logout, KeyUse::Ssf] {
            let e = p.key_for(&set, use_, "a", at(4)).await.unwrap_err();
            assert!(matches!(e, OidcError::Provider(_)), "{e:?}");
        }
        assert_eq!(asked().await, 1);
        assert!(p.key_for(&set, KeyUse::Login, "a", at(5)).await.is_err());
        assert_eq!(asked().await, 2);
        // The discovery document alike.
        let oidc = OidcConfig {
            issuer: format!("{issuer}/d"),
            client_id: "c".into(),
            client_secret: secrecy::SecretString::from("s".to_string()),
            scopes: vec!["openid".into()],
            customer_claim: "sub".into(),
            max_age: None,
            acr_values: Vec::new(),
            backchannel_logout: false,
            ciba: false,
            reach: Reach::Anywhere,
        };
        assert!(p.metadata(&oidc, at(10)).await.is_err());
        assert_eq!(asked().await, 3);
        assert!(p.metadata(&oidc, at(14)).await.is_err());
        assert_eq!(asked().await, 3);
        assert!(p.metadata(&oidc, at(15)).await.is_err());
        assert_eq!(asked().await, 4);
    }
}
