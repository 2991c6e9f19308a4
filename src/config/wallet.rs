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
use crate::channels::kind::Secret;
use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::jose::to_b64url;
use crate::domain::wallet::request::Signer;
use crate::time::Dur;

/// The shortest and longest `link_ttl`, and its default.
const LINK_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(1800));
const DEFAULT_LINK_TTL: Duration = Duration::from_secs(300);

/// The section's name, as errors name its keys.
const SECTION: &str = "wallet";

/// A team's `[wallet]`, checked.
#[derive(Debug)]
pub struct WalletConfig {
    /// The access certificate's key and chain (DER, leaf first).
    pub signer: Signer,
    /// The verifier's `client_id`: `x509_hash:` or `x509_san_dns:` and
    /// what that prefix names.
    pub client_id: String,
    pub trusted: TrustedIssuers,
    /// What may be asked for, at least one, each `id` once.
    pub credentials: Vec<WalletCredential>,
    pub link_ttl: Duration,
    /// Whether a credential's Token Status List is checked.
    pub status_lists: bool,
    /// Where a status list may be fetched from: its team's reach
    /// (docs/operator-api.md#destinations).
    pub reach: crate::outbound::Reach,
}

impl WalletConfig {
    /// The credential `id` names; with none named, the only one there is.
    pub fn credential(&self, id: Option<&str>) -> Option<&WalletCredential> {
        match id {
            Some(id) => self.credentials.iter().find(|c| c.id == id),
            None if self.credentials.len() == 1 => self.credentials.first(),
            None => None,
        }
    }
}

/// One credential a challenge may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletCredential {
    /// Letters, digits and `_`; unique in the team.
    pub id: String,
    pub format: CredentialFormat,
    /// The claim names that may be asked for and compared.
    pub claims: Vec<String>,
    /// What it proves (docs/wallet.md#a-payment-approved-in-the-wallet).
    pub purpose: Purpose,
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

/// A credential's format and what names its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialFormat {
    /// SD-JWT VC (`dc+sd-jwt`): the accepted `vct` values.
    SdJwt { vct: Vec<String> },
    /// An ISO mdoc (`mso_mdoc`): its doctype and the namespace of its claims.
    Mdoc { doctype: String, namespace: String },
}

impl CredentialFormat {
    /// The format's name in the configuration, requests and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            CredentialFormat::SdJwt { .. } => "dc+sd-jwt",
            CredentialFormat::Mdoc { .. } => "mso_mdoc",
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
    claims: Vec<String>,
    purpose: Option<String>,
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
    let client_id = client_id(raw.client_id_prefix.as_deref(), leaf, host_of(public_url))
        .map_err(|p| err("client_id_prefix", p))?;
    if raw.trusted_issuers.is_empty() {
        return Err(err("trusted_issuers", "must name at least one certificate"));
    }
    for (i, pem) in raw.trusted_issuers.iter().enumerate() {
        TrustedIssuers::from_pems(std::slice::from_ref(pem))
            .map_err(|e| err(&format!("trusted_issuers[{i}]"), &e.to_string()))?;
    }
    let trusted = TrustedIssuers::from_pems(&raw.trusted_issuers)
        .map_err(|e| err("trusted_issuers", &e.to_string()))?;
    if raw.credentials.is_empty() {
        return Err(err("credentials", "must name at least one credential"));
    }
    let mut credentials: Vec<WalletCredential> = Vec::with_capacity(raw.credentials.len());
    for (i, c) in raw.credentials.into_iter().enumerate() {
        let at = format!("credentials[{i}]");
        let read = credential(c).map_err(|(k, p)| err(&format!("{at}.{k}"), &p))?;
        if credentials.iter().any(|seen| seen.id == read.id) {
            return Err(err(&format!("{at}.id"), "is the id of another credential"));
        }
        credentials.push(read);
    }
    let link_ttl = raw.link_ttl.map_or(DEFAULT_LINK_TTL, Dur::get);
    if !(LINK_TTL.0..=LINK_TTL.1).contains(&link_ttl) {
        return Err(err("link_ttl", "must be from \"1m\" to \"30m\""));
    }
    Ok(WalletConfig {
        signer: Signer { key, chain },
        client_id,
        trusted,
        credentials,
        link_ttl,
        status_lists: raw.status_lists.unwrap_or(true),
        reach: crate::outbound::Reach::Anywhere,
    })
}

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

/// One credential read: `(key, problem)` when it is refused.
fn credential(raw: RawCredential) -> Result<WalletCredential, (String, String)> {
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
    let format = match raw.format.as_str() {
        "dc+sd-jwt" => {
            if raw.doctype.is_some() || raw.namespace.is_some() {
                return bad("doctype", "is for format mso_mdoc only");
            }
            let vct = raw.vct.unwrap_or_default();
            if vct.is_empty() || vct.iter().any(|v| v.is_empty()) {
                return bad("vct", "must list at least one vct value, none empty");
            }
            CredentialFormat::SdJwt { vct }
        }
        "mso_mdoc" => {
            if raw.vct.is_some() {
                return bad("vct", "is for format dc+sd-jwt only");
            }
            let doctype = raw.doctype.filter(|d| !d.is_empty());
            let namespace = raw.namespace.filter(|n| !n.is_empty());
            let (Some(doctype), Some(namespace)) = (doctype, namespace) else {
                return bad("doctype", "mso_mdoc needs doctype and namespace");
            };
            CredentialFormat::Mdoc { doctype, namespace }
        }
        _ => return bad("format", "must be \"dc+sd-jwt\" or \"mso_mdoc\""),
    };
    let purpose = match raw.purpose.as_deref() {
        None | Some("identity") => Purpose::Identity,
        Some("sca") if matches!(format, CredentialFormat::SdJwt { .. }) => Purpose::Sca,
        Some("sca") => return bad("purpose", "\"sca\" is for format dc+sd-jwt only"),
        Some(_) => return bad("purpose", "must be \"identity\" or \"sca\""),
    };
    // An SCA attestation may be asked for the payment alone, no claim
    // compared.
    if raw.claims.is_empty() && purpose == Purpose::Identity {
        return bad("claims", "must name at least one claim");
    }
    for (i, c) in raw.claims.iter().enumerate() {
        if c.is_empty() || c.len() > 128 || c.chars().any(char::is_control) {
            return bad(
                &format!("claims[{i}]"),
                "must be a claim name of 1 to 128 characters",
            );
        }
        if raw.claims[..i].contains(c) {
            return bad(&format!("claims[{i}]"), "is listed twice");
        }
    }
    Ok(WalletCredential {
        id: raw.id,
        format,
        claims: raw.claims,
        purpose,
    })
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
        trusted: TrustedIssuers::from_pems(&[pem]).unwrap(),
        credentials: vec![WalletCredential {
            id: "pid".into(),
            format: CredentialFormat::SdJwt {
                vct: vec!["urn:eudi:pid:1".into()],
            },
            claims: vec!["family_name".into(), "birthdate".into()],
            purpose: Purpose::Identity,
        }],
        reach: crate::outbound::Reach::Anywhere,
        link_ttl: DEFAULT_LINK_TTL,
        status_lists,
    }
}

#[cfg(test)]
mod tests;
