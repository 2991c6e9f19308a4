//! A team's `[wallet]` (docs/wallet.md#configuration): the verifier's
//! access certificate (its key signs every request), its `client_id`, the
//! issuers a credential must come from and the credentials that may be
//! asked for, checked at start so that a bad value stops the gateway with
//! the key named. The key's value is never in an error.
use std::time::Duration;

use p256::pkcs8::DecodePrivateKey as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::de::from_table;
use super::ConfigError;
use crate::domain::secrets::Secret;
use crate::domain::wallet::access;
use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::jose::{b64url, object, to_b64url};
use crate::domain::wallet::request::{Credential, Signer};
use crate::domain::wallet::Format;
use crate::time::Dur;

mod lists;
pub use lists::{TrustedListConfig, VerifyOwn};

/// The shortest and longest `link_ttl`, and its default.
const LINK_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(1800));
const DEFAULT_LINK_TTL: Duration = Duration::from_secs(300);

/// The page's same-device link's default start.
const DEFAULT_INVOCATION: &str = "openid4vp://";

/// The `typ` of a registration certificate's header (ETSI TS 119 475).
const REGISTRATION_TYP: &str = "rc-wrp+jwt";

/// A credential's problem when neither it nor its team names a trusted
/// issuer: the error names the team's `trusted_issuers`.
const NO_TRUST: &str = "no trusted issuer";

/// The section's name, as errors name its keys.
const SECTION: &str = "wallet";

/// A team's `[wallet]`, checked.
#[derive(Debug)]
pub struct WalletConfig {
    /// The access certificate's key and the chain sent in `x5c` (DER, leaf
    /// first, without a self-signed last certificate).
    pub signer: Signer,
    /// The verifier's `client_id`: `x509_hash:` or `x509_san_dns:` and
    /// what that prefix names.
    pub client_id: String,
    /// What may be asked for, at least one, each `id` once.
    pub credentials: Vec<WalletCredential>,
    pub link_ttl: Duration,
    /// Whether a credential's Token Status List is checked.
    pub status_lists: bool,
    /// How a wallet's `direct_post` answer whose presentation fails is
    /// answered (docs/wallet.md#results).
    pub invalid_answer: InvalidAnswer,
    /// What the page's same-device link starts with, before its query:
    /// `openid4vp://`, `haip-vp://` or a wallet's `https://` universal link
    /// (or `http://` on a loopback address, for a gateway on one).
    pub invocation: String,
    /// The bank's registration certificate (a JWT), sent in every request
    /// object's `verifier_info`.
    pub registration: Option<String>,
    /// Where a status list or a trusted list may be fetched from: its
    /// team's reach (docs/operator-api.md#destinations).
    pub reach: crate::outbound::Reach,
    /// The lists of trusted entities its credentials may name
    /// (docs/wallet.md#trusted-lists), by name.
    pub trusted_lists: Vec<TrustedListConfig>,
    /// `verify_own = true`: the access certificate and the registration
    /// certificate must be on the team's `wrpac` and `wrprc` lists
    /// (docs/wallet.md#the-banks-own-certificates).
    pub verify_own: Option<VerifyOwn>,
}

impl WalletConfig {
    /// A `[wallet]` made in code rather than read from a team file (the
    /// demo's, whose certificates are made at its start), checked as a
    /// team file's is; `public_url` is the gateway's.
    pub fn from_table(table: toml::Table, public_url: &str) -> Result<Self, ConfigError> {
        load_wallet(table, "(wallet)", public_url)
    }

    /// The credential `id` names; with none named, the only one there is.
    pub fn credential(&self, id: Option<&str>) -> Option<&WalletCredential> {
        match id {
            Some(id) => self.credentials.iter().find(|c| c.id == id),
            None if self.credentials.len() == 1 => self.credentials.first(),
            None => None,
        }
    }

    /// The trusted list `name` names.
    pub fn trusted_list(&self, name: &str) -> Option<&TrustedListConfig> {
        self.trusted_lists.iter().find(|l| l.name == name)
    }
}

/// One credential a challenge may ask for.
#[derive(Debug, Clone)]
pub struct WalletCredential {
    /// Letters, digits and `_`; unique in the team.
    pub id: String,
    pub format: Format,
    /// SD-JWT VC: the accepted `vct` values (none for an mdoc).
    pub vct: Vec<String>,
    /// mdoc: its doctype and the namespace of its claims (empty for an
    /// SD-JWT VC).
    pub doctype: String,
    pub namespace: String,
    /// The claims that may be asked for and compared: each the name a
    /// `match` uses and this credential's own name for it.
    pub claims: Vec<Claim>,
    /// The issuers its issuer chain must reach: its own
    /// `trusted_issuers`, else the team's (none when its trusted lists
    /// stand in for them).
    pub trusted: TrustedIssuers,
    /// The names of the team's trusted lists whose issuance services add
    /// to `trusted` (and whose revocation services sign status lists).
    pub trusted_lists: Vec<String>,
    /// The base64url Subject Key Identifier of each of those issuers that
    /// has one: the request's `trusted_authorities`.
    pub authorities: Vec<String>,
    /// What it proves (docs/wallet.md#a-payment-approved-in-the-wallet).
    pub purpose: Purpose,
    /// An `sca` credential's `registration = "required"` (its default): a
    /// payment is approved only by an attestation registered to the
    /// customer (docs/wallet.md#registering-the-wallet-for-payments);
    /// `false` for `"none"` and for every other credential.
    pub registered_only: bool,
}

/// How the response endpoint answers a wallet whose presentation failed:
/// 200 with the `redirect_uri` of a page that says so (`redirect`, the
/// default), or 400 `{"error": "invalid_request"}` and no `redirect_uri`
/// (`error`, as the OpenID Foundation's verifier conformance tests expect;
/// docs/wallet.md#running-the-openid-foundations-conformance-tests). The
/// challenge is failed and counted alike; neither answer says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvalidAnswer {
    #[default]
    Redirect,
    Error,
}

impl InvalidAnswer {
    /// The setting's value: `None` for anything but `"redirect"` or
    /// `"error"`.
    fn parse(raw: Option<&str>) -> Option<Self> {
        match raw {
            None | Some("redirect") => Some(InvalidAnswer::Redirect),
            Some("error") => Some(InvalidAnswer::Error),
            Some(_) => None,
        }
    }
}

/// What a credential proves: who the customer is (`identity`), or that
/// they approve one payment with their bank's strong customer
/// authentication attestation (`sca`, an SD-JWT VC asked with a
/// `transaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    #[default]
    Identity,
    Sca,
}

/// A claim a credential may compare: `name` as a `match` names it, `own`
/// as the credential does (the same unless its `claims` is a table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    pub own: String,
}

impl WalletCredential {
    /// This credential's own name of the claim a `match` calls `name`.
    pub fn own_name(&self, name: &str) -> Option<&str> {
        self.claims
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.own.as_str())
    }

    /// The credential as a request's DCQL query names it, asking the
    /// claims a `match` calls `names` by this credential's own names.
    pub fn query<'a>(&'a self, names: impl Iterator<Item = &'a String>) -> Credential<'a> {
        Credential {
            id: &self.id,
            format: self.format,
            vct: &self.vct,
            doctype: &self.doctype,
            namespace: &self.namespace,
            claims: names.filter_map(|n| self.own_name(n)).collect(),
            authorities: &self.authorities,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWallet {
    signing_key: Secret,
    certificate_chain: String,
    client_id_prefix: Option<String>,
    #[serde(default)]
    trusted_issuers: Vec<String>,
    #[serde(default)]
    credentials: Vec<RawCredential>,
    link_ttl: Option<Dur>,
    status_lists: Option<bool>,
    invalid_answer: Option<String>,
    invocation: Option<String>,
    registration_certificate: Option<String>,
    #[serde(default)]
    trusted_lists: std::collections::BTreeMap<String, lists::RawList>,
    verify_own: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    id: String,
    format: String,
    vct: Option<Vec<String>>,
    doctype: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    claims: RawClaims,
    trusted_issuers: Option<Vec<String>>,
    trusted_lists: Option<Vec<String>>,
    purpose: Option<String>,
    registration: Option<String>,
}

/// A credential's `claims`: names, or a table from the names a `match`
/// uses to the credential's own.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawClaims {
    Names(Vec<String>),
    Renamed(std::collections::BTreeMap<String, String>),
}

impl Default for RawClaims {
    fn default() -> Self {
        RawClaims::Names(Vec::new())
    }
}

/// Reads and checks `[wallet]` from `file`; `public_url` is the
/// gateway's, whose host the access certificate must name.
pub(super) fn load_wallet(
    table: toml::Table,
    file: &str,
    public_url: &str,
) -> Result<WalletConfig, ConfigError> {
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("{SECTION}.{key}"), problem);
    let raw: RawWallet = from_table(table, file, SECTION)?;
    let key = p256::ecdsa::SigningKey::from_pkcs8_pem(raw.signing_key.get().expose_secret())
        .map_err(|_| err("signing_key", "is not a P-256 private key (PKCS#8 PEM)"))?;
    let chain =
        certificate_chain(&raw.certificate_chain).map_err(|p| err("certificate_chain", p))?;
    let leaf = chain
        .first()
        .ok_or_else(|| err("certificate_chain", "holds no certificate"))?;
    leaf_fits(leaf, &key, host_of(public_url)).map_err(|p| err("certificate_chain", &p))?;
    // The wall clock at the start: the chain must hold when it is read.
    let started = crate::time::Clock::now(&crate::time::SystemClock);
    let sent = access::checked_chain(&chain, started)
        .map_err(|e| err("certificate_chain", &e.to_string()))?;
    let invocation = invocation(raw.invocation, public_url).map_err(|p| err("invocation", p))?;
    let registration = match raw.registration_certificate.as_deref() {
        None => None,
        Some(rc) => {
            Some(registration_certificate(rc).map_err(|p| err("registration_certificate", p))?)
        }
    };
    let (registration, registration_x5c) = match registration {
        Some((jwt, x5c)) => (Some(jwt), Some(x5c)),
        None => (None, None),
    };
    let client_id = client_id(raw.client_id_prefix.as_deref(), leaf, host_of(public_url))
        .map_err(|p| err("client_id_prefix", p))?;
    let team_trust = trusted_issuers(&raw.trusted_issuers).map_err(|(k, p)| err(&k, &p))?;
    let trusted_lists = lists::trusted_lists(raw.trusted_lists).map_err(|(k, p)| err(&k, &p))?;
    let verify_own = lists::verify_own(
        raw.verify_own.unwrap_or(false),
        &trusted_lists,
        registration_x5c,
    )
    .map_err(|(k, p)| err(&k, &p))?;
    if raw.credentials.is_empty() {
        return Err(err("credentials", "must name at least one credential"));
    }
    let mut credentials: Vec<WalletCredential> = Vec::with_capacity(raw.credentials.len());
    for (i, c) in raw.credentials.into_iter().enumerate() {
        let at = format!("credentials[{i}]");
        let read = credential(c, team_trust.as_ref(), &trusted_lists).map_err(|(k, p)| match k.as_str() {
            "trusted_issuers" if p == NO_TRUST => err(
                "trusted_issuers",
                &format!("must name at least one certificate, as {at} names none of its own and no trusted_lists"),
            ),
            _ => err(&format!("{at}.{k}"), &p),
        })?;
        if credentials.iter().any(|seen| seen.id == read.id) {
            return Err(err(&format!("{at}.id"), "is the id of another credential"));
        }
        credentials.push(read);
    }
    let link_ttl = raw.link_ttl.map_or(DEFAULT_LINK_TTL, Dur::get);
    if !(LINK_TTL.0..=LINK_TTL.1).contains(&link_ttl) {
        return Err(err("link_ttl", "must be from \"1m\" to \"30m\""));
    }
    let invalid_answer = InvalidAnswer::parse(raw.invalid_answer.as_deref())
        .ok_or_else(|| err("invalid_answer", "must be \"redirect\" or \"error\""))?;
    Ok(WalletConfig {
        signer: Signer { key, chain: sent },
        client_id,
        invocation,
        registration,
        credentials,
        link_ttl,
        status_lists: raw.status_lists.unwrap_or(true),
        invalid_answer,
        reach: crate::outbound::Reach::Anywhere,
        trusted_lists,
        verify_own,
    })
}

/// The issuers of `pems` (a `trusted_issuers` array) with the base64url
/// Subject Key Identifiers of those that have one: `None` when it is
/// empty, else `(key, problem)` naming the first one refused.
fn trusted_issuers(pems: &[String]) -> Result<Option<Trust>, (String, String)> {
    for (i, pem) in pems.iter().enumerate() {
        TrustedIssuers::from_pems(std::slice::from_ref(pem))
            .map_err(|e| (format!("trusted_issuers[{i}]"), e.to_string()))?;
    }
    if pems.is_empty() {
        return Ok(None);
    }
    let issuers = TrustedIssuers::from_pems(pems)
        .map_err(|e| ("trusted_issuers".to_string(), e.to_string()))?;
    let mut authorities: Vec<String> = Vec::new();
    for pem in pems {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok();
        let ski = der.and_then(|d| access::subject_key_id(d.as_ref()));
        if let Some(ski) = ski.map(|k| to_b64url(&k)) {
            if !authorities.contains(&ski) {
                authorities.push(ski);
            }
        }
    }
    Ok(Some((issuers, authorities)))
}

/// Trusted issuers and their base64url Subject Key Identifiers.
type Trust = (TrustedIssuers, Vec<String>);

/// The certificates of one PEM string, leaf first, as DER.
fn certificate_chain(pem: &str) -> Result<Vec<Vec<u8>>, &'static str> {
    let certs: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    let certs = certs.map_err(|_| "is not a string of PEM certificates")?;
    if certs.len() != pem.matches("-----BEGIN").count() {
        return Err("holds a PEM section that is not a certificate");
    }
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// The host of `public_url` (a URL the system file already checked).
fn host_of(public_url: &str) -> String {
    url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .unwrap_or_default()
}

/// The leaf's public key is `key`'s, and its SAN names `host` (a DNS
/// name, or an IP address when the host is one).
fn leaf_fits(leaf: &[u8], key: &p256::ecdsa::SigningKey, host: String) -> Result<(), String> {
    let der = CertificateDer::from(leaf);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|_| "its first certificate cannot be read".to_string())?;
    let spki = cert.subject_public_key_info();
    let public =
        <p256::PublicKey as p256::pkcs8::DecodePublicKey>::from_public_key_der(spki.as_ref()).ok();
    if public != Some(p256::PublicKey::from(key.verifying_key())) {
        return Err("its leaf's public key is not signing_key's".into());
    }
    let name = ServerName::try_from(host.clone())
        .map_err(|_| format!("the host of server.public_url ({host}) is not a name"))?;
    cert.verify_is_valid_for_subject_name(&name).map_err(|_| {
        format!("its leaf's subjectAltName does not name {host}, the host of server.public_url")
    })
}

/// What the page's same-device link starts with: `openid4vp://`
/// (default), `haip-vp://`, or an `https://` URL (a wallet's universal
/// link) with a host and no query or fragment. A link on a loopback
/// address (`http://` there too: a wallet on the same machine) only for a
/// gateway whose `public_url` is on one itself, so that a gateway serving
/// customers never sends their browsers to a port of their own machine.
fn invocation(raw: Option<String>, public_url: &str) -> Result<String, &'static str> {
    let problem = "must be \"openid4vp://\", \"haip-vp://\" or an https:// URL (http:// on a loopback address, for a gateway on one) with no query";
    let Some(raw) = raw else {
        return Ok(DEFAULT_INVOCATION.to_string());
    };
    if raw == DEFAULT_INVOCATION || raw == "haip-vp://" {
        return Ok(raw);
    }
    let url = url::Url::parse(&raw).map_err(|_| problem)?;
    let fits = super::may_reach(&url, public_url)
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && !raw.contains('?')
        && !raw.contains('#');
    fits.then_some(raw).ok_or(problem)
}

/// The registration certificate's JWT, as given: three base64url parts,
/// a header of `typ` `rc-wrp+jwt` and a JSON object payload; with the
/// `x5c` of that header, read in the one reading of it
/// (`lists::x5c_in`: `None` when it has none that can be read).
fn registration_certificate(jwt: &str) -> Result<(String, Option<lists::Chain>), &'static str> {
    let jwt = jwt.trim();
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err("is not a JWT (three base64url parts)");
    };
    let object = |part: &str| b64url(part).and_then(|bytes| object(&bytes));
    let header = object(header).ok_or("is not a JWT: its header is not a JSON object")?;
    if header.get("typ").and_then(serde_json::Value::as_str) != Some(REGISTRATION_TYP) {
        return Err("must be a JWT whose header's typ is \"rc-wrp+jwt\"");
    }
    if object(payload).is_none() || signature.is_empty() || b64url(signature).is_none() {
        return Err("is not a JWT: its payload is not a JSON object, or it has no signature");
    }
    Ok((jwt.to_string(), lists::x5c_in(&header)))
}

/// The verifier's `client_id` for `prefix` (default `x509_hash`).
fn client_id(prefix: Option<&str>, leaf: &[u8], host: String) -> Result<String, &'static str> {
    match prefix.unwrap_or("x509_hash") {
        "x509_hash" => Ok(format!("x509_hash:{}", to_b64url(&Sha256::digest(leaf)))),
        "x509_san_dns" if host.parse::<std::net::IpAddr>().is_ok() => {
            Err("x509_san_dns needs server.public_url's host to be a DNS name, not an address")
        }
        "x509_san_dns" => Ok(format!("x509_san_dns:{host}")),
        _ => Err("must be \"x509_hash\" or \"x509_san_dns\""),
    }
}

/// One credential read, trusting its own `trusted_issuers` or else
/// `team`'s: `(key, problem)` when it is refused.
fn credential(
    raw: RawCredential,
    team: Option<&Trust>,
    lists: &[TrustedListConfig],
) -> Result<WalletCredential, (String, String)> {
    let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
    if raw.id.is_empty()
        || raw.id.len() > 64
        || !raw
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return bad("id", "must be 1 to 64 letters, digits or _");
    }
    let Some(format) = Format::parse(&raw.format) else {
        return bad("format", &format!("must be {}", Format::listed()));
    };
    let (mut vct, mut doctype, mut namespace) = (Vec::new(), String::new(), String::new());
    match format {
        Format::SdJwt => {
            if raw.doctype.is_some() || raw.namespace.is_some() {
                return bad("doctype", "is for format mso_mdoc only");
            }
            vct = raw.vct.unwrap_or_default();
            if vct.is_empty() || vct.iter().any(|v| v.is_empty()) {
                return bad("vct", "must list at least one vct value, none empty");
            }
        }
        Format::Mdoc => {
            if raw.vct.is_some() {
                return bad("vct", "is for format dc+sd-jwt only");
            }
            let d = raw.doctype.filter(|d| !d.is_empty());
            let n = raw.namespace.filter(|n| !n.is_empty());
            let (Some(d), Some(n)) = (d, n) else {
                return bad("doctype", "mso_mdoc needs doctype and namespace");
            };
            (doctype, namespace) = (d, n);
        }
    }
    let purpose = match raw.purpose.as_deref() {
        None | Some("identity") => Purpose::Identity,
        Some("sca") if format == Format::SdJwt => Purpose::Sca,
        Some("sca") => return bad("purpose", "\"sca\" is for format dc+sd-jwt only"),
        Some(_) => return bad("purpose", "must be \"identity\" or \"sca\""),
    };
    let registered_only = match (purpose, raw.registration.as_deref()) {
        (Purpose::Sca, None | Some("required")) => true,
        (Purpose::Sca, Some("none")) => false,
        (Purpose::Sca, Some(_)) => return bad("registration", "must be \"required\" or \"none\""),
        (Purpose::Identity, None) => false,
        (Purpose::Identity, Some(_)) => return bad("registration", "is for purpose \"sca\" only"),
    };
    // An SCA attestation may be asked for the payment alone, no claim
    // compared.
    let claims = claims(raw.claims, purpose == Purpose::Sca)?;
    let named = raw.trusted_lists.unwrap_or_default();
    let (trusted, authorities) = trust(raw.trusted_issuers.as_deref(), &named, team, lists)?;
    Ok(WalletCredential {
        id: raw.id,
        format,
        vct,
        doctype,
        namespace,
        claims,
        trusted,
        trusted_lists: named,
        authorities,
        purpose,
        registered_only,
    })
}

/// A credential's issuers: its own `trusted_issuers`, else `team`'s,
/// else none when it names trusted lists (`named`, each one of `lists`):
/// `(key, problem)` when refused.
fn trust(
    own: Option<&[String]>,
    named: &[String],
    team: Option<&Trust>,
    lists: &[TrustedListConfig],
) -> Result<Trust, (String, String)> {
    let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
    for (i, name) in named.iter().enumerate() {
        if !lists.iter().any(|l| &l.name == name) {
            return bad(
                &format!("trusted_lists[{i}]"),
                "names no list of [wallet.trusted_lists]",
            );
        }
    }
    match own.map(trusted_issuers) {
        Some(Err(e)) => Err(e),
        Some(Ok(Some(own))) => Ok(own),
        Some(Ok(None)) => bad("trusted_issuers", "must name at least one certificate"),
        None => match team {
            Some(team) => Ok(team.clone()),
            None if !named.is_empty() => Ok((TrustedIssuers::default(), Vec::new())),
            None => bad("trusted_issuers", NO_TRUST),
        },
    }
}

/// A credential's `claims`, each a name of 1 to 128 characters, none
/// twice (a table's own names neither), at least one unless
/// `may_be_empty` (an `sca` credential's): `(key, problem)` when refused.
fn claims(raw: RawClaims, may_be_empty: bool) -> Result<Vec<Claim>, (String, String)> {
    let (pairs, table): (Vec<(String, String)>, bool) = match raw {
        RawClaims::Names(names) => (names.into_iter().map(|n| (n.clone(), n)).collect(), false),
        RawClaims::Renamed(table) => (table.into_iter().collect(), true),
    };
    if pairs.is_empty() && !may_be_empty {
        return Err(("claims".into(), "must name at least one claim".into()));
    }
    let named = |i: usize, name: &str| match table {
        true => format!("claims.{name}"),
        false => format!("claims[{i}]"),
    };
    let bad_name = |n: &str| n.is_empty() || n.len() > 128 || n.chars().any(char::is_control);
    let mut read: Vec<Claim> = Vec::with_capacity(pairs.len());
    for (i, (name, own)) in pairs.into_iter().enumerate() {
        if bad_name(&name) || bad_name(&own) {
            let problem = "must be a claim name of 1 to 128 characters";
            return Err((named(i, &name), problem.into()));
        }
        if read.iter().any(|c| c.name == name || c.own == own) {
            return Err((named(i, &name), "is listed twice".into()));
        }
        read.push(Claim { name, own });
    }
    Ok(read)
}

/// A `[wallet]` for tests elsewhere: a fresh key with no chain, the
/// fixtures' trusted issuer, one SD-JWT VC credential `pid`.
#[cfg(test)]
pub fn wallet_for_tests(status_lists: bool) -> WalletConfig {
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../../tests/fixtures/wallet/fixtures.json")).unwrap();
    let pem = fixtures["trusted"][0].as_str().unwrap().to_string();
    WalletConfig {
        signer: Signer {
            key: p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
            chain: Vec::new(),
        },
        client_id: "x509_hash:test".into(),
        credentials: vec![WalletCredential {
            id: "pid".into(),
            format: Format::SdJwt,
            vct: vec!["urn:eudi:pid:1".into()],
            doctype: String::new(),
            namespace: String::new(),
            claims: ["family_name", "birthdate"]
                .map(|n| Claim {
                    name: n.into(),
                    own: n.into(),
                })
                .into(),
            trusted: TrustedIssuers::from_pems(&[pem]).unwrap(),
            trusted_lists: Vec::new(),
            authorities: Vec::new(),
            purpose: Purpose::Identity,
            registered_only: false,
        }],
        reach: crate::outbound::Reach::Anywhere,
        trusted_lists: Vec::new(),
        verify_own: None,
        link_ttl: DEFAULT_LINK_TTL,
        status_lists,
        invalid_answer: InvalidAnswer::Redirect,
        invocation: DEFAULT_INVOCATION.into(),
        registration: None,
    }
}

#[cfg(test)]
mod tests;
