//! The issuers a credential may come from (docs/wallet.md#issuers): the
//! certificates (roots or intermediates) an issuer's `x5c` chain must
//! reach, checked by rustls-webpki at a `now` given, with no extended key
//! usage required; and the issuer certificate's subject as RFC 4514 writes
//! it.
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
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

/// The trusted issuers: each certificate's subject and key, as anchors,
/// found by subject; the SHA-256 of each certificate, for a leaf that is
/// itself one of them; and the sets of the trusted lists that add to them
/// (docs/wallet.md#trusted-lists). A chain is checked against the anchors
/// whose subject issued one of its certificates only, so that a list of a
/// thousand services costs a chain no more than a list of one.
#[derive(Debug, Clone, Default)]
pub struct TrustedIssuers {
    anchors: Vec<TrustAnchor<'static>>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    listed: HashSet<[u8; 32]>,
    added: Vec<Arc<TrustedIssuers>>,
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

/// The SHA-256 of a certificate's DER.
fn digest(der: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(der).into()
}

impl TrustedIssuers {
    /// The issuers of `pems`, each one PEM certificate; at least one.
    pub fn from_pems<S: AsRef<str>>(pems: &[S]) -> Result<Self, BadIssuer> {
        let mut ders = Vec::with_capacity(pems.len());
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
            ders.push(cert.as_ref().to_vec());
        }
        if ders.is_empty() {
            return Err(BadIssuer::None);
        }
        Self::from_ders(&ders)
    }

    /// The issuers of `ders` (DER certificates; none is an empty set).
    pub fn from_ders(ders: &[Vec<u8>]) -> Result<Self, BadIssuer> {
        let mut set = TrustedIssuers::default();
        for der in ders {
            let cert = CertificateDer::from(der.as_slice());
            let anchor =
                webpki::anchor_from_trusted_cert(&cert).map_err(|_| BadIssuer::NotACertificate)?;
            let at = set.anchors.len();
            set.by_subject
                .entry(anchor.subject.as_ref().to_vec())
                .or_default()
                .push(at);
            set.anchors.push(anchor.to_owned());
            set.listed.insert(digest(der));
        }
        Ok(set)
    }

    /// These issuers and those of `sets` (a credential's trusted lists'
    /// services), each set shared, not copied.
    pub fn with(&self, sets: impl IntoIterator<Item = Arc<TrustedIssuers>>) -> Self {
        let mut all = self.clone();
        all.added.extend(sets);
        all
    }

    /// How many certificates this set holds, its added sets left out.
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// Whether it holds no certificate, its added sets left out.
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The anchors whose subject issued one of `certs`.
    fn candidates(&self, certs: &[EndEntityCert<'_>]) -> Vec<TrustAnchor<'static>> {
        let mut found: Vec<usize> = Vec::new();
        for cert in certs {
            for at in self.by_subject.get(cert.issuer()).into_iter().flatten() {
                if !found.contains(at) {
                    found.push(*at);
                }
            }
        }
        found
            .into_iter()
            .map(|at| self.anchors[at].clone())
            .collect()
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
    let leaf_der = x5c.first().ok_or(Chain::Malformed)?;
    let ders: Vec<CertificateDer<'_>> = x5c
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let certs: Vec<EndEntityCert<'_>> = ders
        .iter()
        .map(EndEntityCert::try_from)
        .collect::<Result<_, _>>()
        .map_err(|_| Chain::Malformed)?;
    let cert = &certs[0];
    let key =
        PublicKey::from_spki(cert.subject_public_key_info().as_ref()).ok_or(Chain::Malformed)?;
    let subject = rfc4514(cert.subject()).ok_or(Chain::Malformed)?;
    let seconds = u64::try_from(now.unix_seconds()).map_err(|_| Chain::Untrusted)?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(seconds));
    let leaf_digest = digest(leaf_der);
    let reaches = |set: &TrustedIssuers| {
        // The leaf itself trusted: it need only be valid now.
        if set.listed.contains(&leaf_digest) && valid_at(leaf_der, now) {
            return true;
        }
        let anchors = set.candidates(&certs);
        !anchors.is_empty()
            && cert
                .verify_for_usage(CHAIN_ALGS, &anchors, &ders[1..], at, AnyUsage, None, None)
                .is_ok()
    };
    let mut sets = std::iter::once(trusted).chain(trusted.added.iter().map(|s| &**s));
    if sets.any(reaches) {
        Ok(Issuer { key, subject })
    } else {
        Err(Chain::Untrusted)
    }
}

/// Whether the certificate `der` is valid at `now` (its `notBefore` and
/// `notAfter`, RFC 5280 section 4.1.2.5).
fn valid_at(der: &[u8], now: Timestamp) -> bool {
    validity(der)
        .is_some_and(|(from, until)| from <= now.unix_seconds() && now.unix_seconds() <= until)
}

/// A certificate's `notBefore` and `notAfter`, in Unix seconds.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let mut outer = SliceReader::new(der).ok()?;
    let cert = der::AnyRef::decode(&mut outer).ok()?;
    let mut cert = SliceReader::new(cert.value()).ok()?;
    let tbs = der::AnyRef::decode(&mut cert).ok()?;
    let mut tbs = SliceReader::new(tbs.value()).ok()?;
    let mut field = der::AnyRef::decode(&mut tbs).ok()?;
    // `[0] version`, when there, comes before the serial number.
    if field.tag().is_context_specific() {
        field = der::AnyRef::decode(&mut tbs).ok()?;
    }
    let _serial = field;
    let _signature = der::AnyRef::decode(&mut tbs).ok()?;
    let _issuer = der::AnyRef::decode(&mut tbs).ok()?;
    let validity = der::AnyRef::decode(&mut tbs).ok()?;
    let mut times = SliceReader::new(validity.value()).ok()?;
    let from = time_of(der::AnyRef::decode(&mut times).ok()?)?;
    let until = time_of(der::AnyRef::decode(&mut times).ok()?)?;
    Some((from, until))
}

/// A `Time` (UTCTime or GeneralizedTime) in Unix seconds.
fn time_of(time: der::AnyRef<'_>) -> Option<i64> {
    let since = match time.tag() {
        Tag::UtcTime => der::asn1::UtcTime::try_from(time).ok()?.to_unix_duration(),
        Tag::GeneralizedTime => der::asn1::GeneralizedTime::try_from(time)
            .ok()?
            .to_unix_duration(),
        _ => return None,
    };
    i64::try_from(since.as_secs()).ok()
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
