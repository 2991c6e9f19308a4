//! Token Status Lists fetched for the wallet verifier
//! (docs/wallet.md#token-status-lists): a credential's list is asked for
//! at its uri (`https`, or `http` on a loopback address) with `Accept:
//! application/statuslist+jwt`, within 5 s and 1 MiB, no redirect
//! followed, and kept for its `ttl` (at most an hour, never past its
//! `exp`) per uri. What is kept is the list as served: each use verifies
//! it again against the caller's trusted issuers
//! ([`crate::domain::wallet::status_list`]), so a list one team trusts is
//! never taken as trusted for another. A list that cannot be fetched or
//! read fails: the credential is not taken as valid. A fetch that failed
//! is remembered for [`FAILED_HOLD`]: answers meanwhile fail at once,
//! without asking the issuer again, and a failing list is logged once
//! when it starts failing and once when it is read again
//! (docs/wallet.md#token-status-lists), not once per answer.
//!
//! One per process, held by the gateway's `Core`: the wallet method asks
//! [`StatusLists::status`] for a verified credential's `status`
//! (`gateway::wallet::status_list`).
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use url::Url;

use crate::answers::body_capped;
use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::status_list::{
    read, Checked, ListFailure, StatusRef, MAX_TTL, MEDIA_TYPE,
};
use crate::fared::{Failing, Fared};
use crate::time::Timestamp;

/// How long a fetch may take, connection included.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The most bytes a served list may have.
pub const MAX_LIST: usize = 1024 * 1024;

/// How long a failed fetch is remembered: a list is asked for at most
/// once in this time while its issuer fails (the hold of a provider's
/// failed fetch, docs/operations.md#one-team-never-holds-another).
pub const FAILED_HOLD: Duration = Duration::from_secs(5);

/// How many lists are kept at once; past it, the expired ones go, then all.
const MAX_KEPT: usize = 1024;

/// The lists fetched, by uri, each with the time it is kept until; the
/// fetches that failed, by uri, each with the time it is held until; and
/// how each list fares, for its log lines.
pub struct StatusLists {
    http: crate::outbound::Clients,
    kept: Mutex<HashMap<String, (String, Timestamp)>>,
    failed: Mutex<HashMap<String, Timestamp>>,
    fared: Failing,
}

impl Default for StatusLists {
    fn default() -> Self {
        // No proxy: one from the environment would see which credential
        // is checked.
        StatusLists {
            http: crate::answers::client(TIMEOUT),
            kept: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            fared: Failing::default(),
        }
    }
}

/// Why a list could not be fetched, in a few words for the log.
type Unfetched = (ListFailure, &'static str);

impl StatusLists {
    /// The status of the credential `reference` names, at `now`, from its
    /// list as kept or as fetched now, verified against `trusted`. A list
    /// whose fetch failed less than [`FAILED_HOLD`] ago fails at once.
    pub async fn status(
        &self,
        reference: &StatusRef,
        trusted: &TrustedIssuers,
        reach: crate::outbound::Reach,
        now: Timestamp,
    ) -> Checked {
        let uri = reference.uri.as_str();
        let (jwt, fetched) = match self.kept(uri, now) {
            Some(jwt) => (Ok(jwt), false),
            None if self.held(uri, now) => (Err((ListFailure::Unreachable, "held")), false),
            None => (self.fetch(uri, reach).await, true),
        };
        if fetched && jwt.is_err() {
            self.hold(uri, now);
        }
        let checked = jwt.and_then(|jwt| {
            let list = read(&jwt, uri, trusted, now).map_err(|f| (f, "read"))?;
            if fetched {
                let keep_for = list.keep_for.clamp(0, MAX_TTL);
                let until = now.plus(Duration::from_secs(keep_for.unsigned_abs()));
                self.keep(uri, jwt, until, now);
            }
            Ok(list.check(reference, now))
        });
        self.log(uri, checked.as_ref().err(), now);
        checked.unwrap_or_else(|(failure, _)| Checked::FailingList(failure))
    }

    /// Logs how the list at `uri` fared at `now` (`failed`: why not): one
    /// warning when it starts failing, one line when it is read again.
    fn log(&self, uri: &str, failed: Option<&Unfetched>, now: Timestamp) {
        let host = Url::parse(uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string));
        let host = host.unwrap_or_default();
        match (self.fared.fared(uri, failed.is_some(), now), failed) {
            (Fared::StartedFailing, Some((failure, reason))) => tracing::warn!(
                host,
                failure = failure.as_str(),
                reason,
                "a status list cannot be read: wallet answers that need it wait, their challenges open"
            ),
            (Fared::Recovered { since, failed }, _) => tracing::info!(
                host,
                failed_attempts = failed,
                since = %since,
                "a status list is read again"
            ),
            _ => {}
        }
    }

    /// Whether a fetch of `uri` failed less than [`FAILED_HOLD`] before `now`.
    fn held(&self, uri: &str, now: Timestamp) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get(uri).is_some_and(|until| now < *until)
    }

    /// Remembers that a fetch of `uri` failed at `now`.
    fn hold(&self, uri: &str, now: Timestamp) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.len() >= MAX_KEPT {
            failed.retain(|_, until| now < *until);
        }
        failed.insert(uri.to_string(), now.plus(FAILED_HOLD));
    }

    /// The list kept for `uri`, if it is still to be kept at `now`.
    fn kept(&self, uri: &str, now: Timestamp) -> Option<String> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(uri)
            .filter(|(_, until)| now < *until)
            .map(|(jwt, _)| jwt.clone())
    }

    fn keep(&self, uri: &str, jwt: String, until: Timestamp, now: Timestamp) {
        if until <= now {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= MAX_KEPT {
            kept.retain(|_, (_, u)| now < *u);
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
        }
        kept.insert(uri.to_string(), (jwt, until));
    }

    /// The list served at `uri`: `https` (or `http` on a loopback
    /// address), 200, declared `application/statuslist+jwt`, at most
    /// [`MAX_LIST`] bytes of text; why not, in a few words that name no
    /// part of the uri nor the body.
    async fn fetch(&self, uri: &str, reach: crate::outbound::Reach) -> Result<String, Unfetched> {
        let unreachable = |reason: &'static str| (ListFailure::Unreachable, reason);
        let url = Url::parse(uri).map_err(|_| unreachable("not a url"))?;
        if !crate::config::https_or_loopback(&url) {
            return Err(unreachable("not https"));
        }
        let http = self.http.of(reach).map_err(|_| unreachable("no client"))?;
        let res = http
            .get(url)
            .header(reqwest::header::ACCEPT, MEDIA_TYPE)
            .send()
            .await
            .map_err(|e| {
                unreachable(if crate::outbound::is_refused(&e) {
                    "refused: not a public address"
                } else if e.is_timeout() {
                    "timeout"
                } else {
                    "transport"
                })
            })?;
        if res.status() != reqwest::StatusCode::OK {
            return Err(unreachable("status not 200"));
        }
        let declared = res
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case(MEDIA_TYPE));
        if !declared {
            return Err(unreachable("not application/statuslist+jwt"));
        }
        let body = body_capped(res, MAX_LIST)
            .await
            .map_err(|_| unreachable("too long or cut"))?;
        String::from_utf8(body).map_err(|_| unreachable("not text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::Reach;
    use miniz_oxide::deflate::compress_to_vec_zlib;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::DecodePrivateKey as _;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use crate::domain::wallet::jose::to_b64url;
    use crate::domain::wallet::status_list::Status;

    /// A trusted root and a list signed by its issuer for `uri`: entry 1
    /// invalid, the others valid (2 bits each).
    struct Signed {
        trusted: TrustedIssuers,
        other: TrustedIssuers,
        key: p256::ecdsa::SigningKey,
        chain: Vec<String>,
    }

    fn root(name: &str) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap(), key)
    }

    fn signer() -> Signed {
        let (ca, ca_key) = root("Status Root");
        let (other, _) = root("Other Root");
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Status Issuer");
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let b64 = |der: &[u8]| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(der)
        };
        Signed {
            trusted: TrustedIssuers::from_pems(&[ca.pem()]).unwrap(),
            other: TrustedIssuers::from_pems(&[other.pem()]).unwrap(),
            key: p256::ecdsa::SigningKey::from_pkcs8_der(&leaf_key.serialize_der()).unwrap(),
            chain: vec![b64(leaf.der())],
        }
    }

    fn list_jwt(s: &Signed, uri: &str, now: Timestamp, ttl: u64) -> String {
        let header = json!({"alg": "ES256", "typ": "statuslist+jwt", "x5c": s.chain});
        let claims = json!({
            "sub": uri, "iat": now.unix_seconds(), "exp": now.unix_seconds() + 86_400, "ttl": ttl,
            "status_list": {"bits": 2, "lst": to_b64url(&compress_to_vec_zlib(&[0b0000_0100], 6))},
        });
        let input = format!(
            "{}.{}",
            to_b64url(header.to_string().as_bytes()),
            to_b64url(claims.to_string().as_bytes())
        );
        let sig: p256::ecdsa::Signature = s.key.sign(input.as_bytes());
        format!("{input}.{}", to_b64url(&sig.to_bytes()))
    }

    fn served(jwt: String) -> ResponseTemplate {
        ResponseTemplate::new(200).set_body_raw(jwt.into_bytes(), MEDIA_TYPE)
    }

    #[tokio::test]
    async fn a_list_is_fetched_once_kept_for_its_ttl_and_fetched_again_after() {
        let server = MockServer::start().await;
        let uri = format!("{}/lists/1", server.uri());
        let s = signer();
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        Mock::given(method("GET"))
            .and(path("/lists/1"))
            .and(header("accept", MEDIA_TYPE))
            .respond_with(served(list_jwt(&s, &uri, now, 120)))
            .expect(2)
            .mount(&server)
            .await;
        let lists = StatusLists::default();
        let at = |idx| StatusRef {
            idx,
            uri: uri.clone(),
        };
        assert_eq!(
            lists.status(&at(0), &s.trusted, Reach::Anywhere, now).await,
            Checked::Valid
        );
        let later = now.plus(Duration::from_secs(119));
        assert_eq!(
            lists
                .status(&at(1), &s.trusted, Reach::Anywhere, later)
                .await,
            Checked::Revoked(Status::Invalid)
        );
        // Kept, it is still verified against the caller's issuers.
        assert_eq!(
            lists.status(&at(0), &s.other, Reach::Anywhere, later).await,
            Checked::FailingList(ListFailure::Untrusted)
        );
        let after_ttl = now.plus(Duration::from_secs(120));
        assert_eq!(
            lists
                .status(&at(0), &s.trusted, Reach::Anywhere, after_ttl)
                .await,
            Checked::Valid
        );
    }

    #[tokio::test]
    async fn a_failed_fetch_is_held_five_seconds_then_asked_again() {
        let server = MockServer::start().await;
        let uri = format!("{}/lists/down", server.uri());
        let s = signer();
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        Mock::given(path("/lists/down"))
            .respond_with(ResponseTemplate::new(500))
            .expect(2)
            .mount(&server)
            .await;
        let lists = StatusLists::default();
        let reference = StatusRef {
            idx: 0,
            uri: uri.clone(),
        };
        let unreachable = Checked::FailingList(ListFailure::Unreachable);
        let within = now.plus(FAILED_HOLD - Duration::from_secs(1));
        for at in [now, now, within] {
            assert_eq!(
                lists
                    .status(&reference, &s.trusted, Reach::Anywhere, at)
                    .await,
                unreachable
            );
        }
        let after = now.plus(FAILED_HOLD);
        assert_eq!(
            lists
                .status(&reference, &s.trusted, Reach::Anywhere, after)
                .await,
            unreachable
        );
        server.verify().await;
        // Served again: read once the hold of the last failure is over.
        server.reset().await;
        Mock::given(path("/lists/down"))
            .respond_with(served(list_jwt(&s, &uri, now, 60)))
            .expect(1)
            .mount(&server)
            .await;
        let back = after.plus(FAILED_HOLD);
        assert_eq!(
            lists
                .status(&reference, &s.trusted, Reach::Anywhere, back)
                .await,
            Checked::Valid
        );
        server.verify().await;
    }

    #[tokio::test]
    async fn a_list_not_served_as_a_status_list_or_not_https_fails() {
        let server = MockServer::start().await;
        let s = signer();
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        let uri = format!("{}/lists/plain", server.uri());
        Mock::given(path("/lists/plain"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(list_jwt(&s, &uri, now, 60), "text/plain"),
            )
            .mount(&server)
            .await;
        Mock::given(path("/lists/gone"))
            .respond_with(ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let lists = StatusLists::default();
        let unreachable = Checked::FailingList(ListFailure::Unreachable);
        for uri in [
            uri,
            format!("{}/lists/gone", server.uri()),
            "http://issuer.example/lists/1".to_string(),
            "not a url".to_string(),
        ] {
            let reference = StatusRef { idx: 0, uri };
            assert_eq!(
                lists
                    .status(&reference, &s.trusted, Reach::Anywhere, now)
                    .await,
                unreachable
            );
        }
    }

    /// A list at a literal loopback address for an API team: refused before
    /// a connection is tried, so an open port (here, a listener that
    /// answers anything) and a closed one give the same reason, and the
    /// listener sees no handshake
    /// (docs/decisions/0561-a-literal-address-is-checked-before-connecting.md).
    #[tokio::test]
    async fn a_loopback_list_for_an_api_team_fails_alike_on_an_open_and_a_closed_port() {
        let server = MockServer::start().await;
        let open = server.address().port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let lists = StatusLists::default();
        for port in [open, closed] {
            let uri = format!("http://127.0.0.1:{port}/lists/1");
            let failed = lists.fetch(&uri, Reach::Public).await.unwrap_err();
            assert_eq!(
                failed,
                (ListFailure::Unreachable, "refused: not a public address"),
                "{uri}"
            );
        }
        let asked = server.received_requests().await.unwrap_or_default();
        assert!(asked.is_empty(), "nothing reached the open port");
    }
}
