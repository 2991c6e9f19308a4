//! The issuers a credential may come from (docs/wallet.md#issuers): the
//! certificates (roots or intermediates) an issuer's `x5c` chain must
//! reach, checked by rustls-webpki at a `now` given, with no extended key
//! usage required; and the issuer certificate's subject as RFC 4514 writes
//! it.
use std::fmt::Write as _;
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};

use super::jose::PublicKey;
use crate::time::Timestamp;

/// The algorithms a certificate of an issuer chain may be signed with.
pub(super) static CHAIN_ALGS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::ring::ECDSA_P256_SHA256,
    webpki::ring::ECDSA_P256_SHA384,
    webpki::ring::ECDSA_P384_SHA256,
    webpki::ring::ECDSA_P384_SHA384,
    webpki::ring::ED25519,
    webpki::ring::RSA_PKCS1_2048_8192_SHA256,
    webpki::ring::RSA_PKCS1_2048_8192_SHA384,
    webpki::ring::RSA_PKCS1_2048_8192_SHA512,
    webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::ring::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
];

/// The trusted issuers: each certificate's subject and key, as anchors.
#[derive(Debug, Clone)]
pub struct TrustedIssuers {
    anchors: Vec<TrustAnchor<'static>>,
}

/// Why a trusted issuer's PEM was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadIssuer {
    #[error("is not one PEM certificate")]
    NotOneCertificate,
    #[error("is not a certificate that can be trusted")]
    NotACertificate,
    #[error("no trusted issuer")]
    None,
}

impl TrustedIssuers {
    /// The issuers of `pems`, each one PEM certificate; at least one.
    pub fn from_pems<S: AsRef<str>>(pems: &[S]) -> Result<Self, BadIssuer> {
        let mut anchors = Vec::with_capacity(pems.len());
        for pem in pems {
            // Two sections run together are not read as one.
            if pem.as_ref().matches("-----BEGIN").count() != 1 {
                return Err(BadIssuer::NotOneCertificate);
            }
            let mut certs = CertificateDer::pem_slice_iter(pem.as_ref().as_bytes());
            let cert = match (certs.next(), certs.next()) {
                (Some(Ok(cert)), None) => cert,
                _ => return Err(BadIssuer::NotOneCertificate),
            };
            let anchor =
                webpki::anchor_from_trusted_cert(&cert).map_err(|_| BadIssuer::NotACertificate)?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err(BadIssuer::None);
        }
        Ok(TrustedIssuers { anchors })
    }
}

/// An issuer certificate whose chain reached a trusted issuer.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// The leaf's key, which signs the credential.
    pub key: PublicKey,
    /// The leaf's subject, RFC 4514 (`CN=PID Issuer,O=Example,C=DE`).
    pub subject: String,
}

/// What an `x5c` chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chain {
    /// A certificate that cannot be read, or a leaf key of no supported kind.
    Malformed,
    /// Read, but reaching no trusted issuer, or not valid at `now`.
    Untrusted,
}

/// Accepts any extended key usage, or none: an issuer chain needs none.
pub(super) struct AnyUsage;

impl ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

/// The issuer of `x5c` (DER certificates, leaf first): the leaf's chain,
/// through the others, must reach one of `trusted`, every certificate of
/// it valid at `now`.
pub fn verify_chain(
    x5c: &[Vec<u8>],
    trusted: &TrustedIssuers,
    now: Timestamp,
) -> Result<Issuer, Chain> {
    let (leaf, rest) = x5c.split_first().ok_or(Chain::Malformed)?;
    let leaf = CertificateDer::from(leaf.as_slice());
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let cert = EndEntityCert::try_from(&leaf).map_err(|_| Chain::Malformed)?;
    let key =
        PublicKey::from_spki(cert.subject_public_key_info().as_ref()).ok_or(Chain::Malformed)?;
    let subject = rfc4514(cert.subject()).ok_or(Chain::Malformed)?;
    let seconds = u64::try_from(now.unix_seconds()).map_err(|_| Chain::Untrusted)?;
    cert.verify_for_usage(
        CHAIN_ALGS,
        &trusted.anchors,
        &intermediates,
        UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
        AnyUsage,
        None,
        None,
    )
    .map_err(|_| Chain::Untrusted)?;
    Ok(Issuer { key, subject })
}

/// The short names RFC 4514 (section 3) gives attribute types.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// A `Name`'s RDNs (`name`: the DER contents of its SEQUENCE) as RFC 4514
/// writes them: last RDN first, `,` between RDNs, `+` within one.
pub fn rfc4514(name: &[u8]) -> Option<String> {
    let mut rdns = Vec::new();
    let mut reader = SliceReader::new(name).ok()?;
    while !reader.is_finished() {
        let set = der::AnyRef::decode(&mut reader).ok()?;
        if set.tag() != Tag::Set {
            return None;
        }
        let mut atvs = SliceReader::new(set.value()).ok()?;
        let mut rdn = Vec::new();
        while !atvs.is_finished() {
            let atv = der::AnyRef::decode(&mut atvs).ok()?;
            rdn.push(attribute(atv)?);
        }
        rdns.push(rdn.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One `AttributeTypeAndValue` as `type=value` (RFC 4514, section 2.3).
fn attribute(atv: der::AnyRef<'_>) -> Option<String> {
    if atv.tag() != Tag::Sequence {
        return None;
    }
    let mut inner = SliceReader::new(atv.value()).ok()?;
    let oid = ObjectIdentifier::decode(&mut inner).ok()?;
    let value = der::AnyRef::decode(&mut inner).ok()?;
    if !inner.is_finished() {
        return None;
    }
    let dotted = oid.to_string();
    let short = SHORT_NAMES
        .iter()
        .find(|(o, _)| *o == dotted)
        .map(|(_, s)| *s);
    let text = match value.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String => {
            std::str::from_utf8(value.value()).ok()
        }
        _ => None,
    };
    match (short, text) {
        (Some(short), Some(text)) => Some(format!("{short}={}", escape(text))),
        (None, Some(text)) => Some(format!("{dotted}={}", escape(text))),
        // A value of another type: `#` and the hex of its encoding (section 2.4).
        (short, None) => {
            let mut out = format!("{}=#", short.unwrap_or(&dotted));
            for b in value.to_der().ok()? {
                let _ = write!(out, "{b:02x}");
            }
            Some(out)
        }
    }
}

/// A string value escaped as RFC 4514 (section 2.4) requires.
fn escape(value: &str) -> String {
    let last = value.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => out.push('\\'),
            '#' | ' ' if i == 0 => out.push('\\'),
            ' ' if i == last => out.push('\\'),
            '\0' => {
                out.push_str("\\00");
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}
