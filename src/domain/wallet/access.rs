//! The certificates of the verifier's own side (docs/wallet.md#configuration):
//! the access certificate's chain as the high-assurance profile wants it
//! (its leaf not self-signed, each certificate signed by the next, a
//! self-signed last one, a trust anchor, never sent in `x5c`), and a
//! trusted issuer's Subject Key Identifier, which a request's
//! `trusted_authorities` names. Read with `der` and rustls-webpki.
use std::time::Duration;

use der::asn1::ObjectIdentifier;
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::EndEntityCert;

use super::issuers::{AnyUsage, CHAIN_ALGS};
use crate::time::Timestamp;

/// The Subject Key Identifier extension (RFC 5280, 4.2.1.2).
const SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");

/// Why an access certificate chain is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadChain {
    #[error("a certificate of it cannot be read")]
    Unreadable,
    #[error("its leaf is self-signed: a wallet needs a leaf issued by a certificate authority")]
    SelfSignedLeaf,
    #[error("does not verify from its leaf to its last certificate, each signed by the next and valid now")]
    Unverified,
}

/// Whether certificate `der` names itself as its issuer (a self-signed
/// certificate, a trust anchor).
pub fn self_issued(der: &[u8]) -> Result<bool, BadChain> {
    let der = CertificateDer::from(der);
    let cert = EndEntityCert::try_from(&der).map_err(|_| BadChain::Unreadable)?;
    Ok(cert.issuer() == cert.subject())
}

/// Checks `chain` (DER, leaf first) at `now`: the leaf not self-signed,
/// and with two or more, the leaf's path through the middle ones reaching
/// the last; then the certificates sent in `x5c`: the chain without a
/// self-signed last one.
pub fn checked_chain(chain: &[Vec<u8>], now: Timestamp) -> Result<Vec<Vec<u8>>, BadChain> {
    let (leaf, rest) = chain.split_first().ok_or(BadChain::Unreadable)?;
    if self_issued(leaf)? {
        return Err(BadChain::SelfSignedLeaf);
    }
    let Some((last, middle)) = rest.split_last() else {
        return Ok(chain.to_vec());
    };
    let last_der = CertificateDer::from(last.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&last_der).map_err(|_| BadChain::Unreadable)?;
    let middle: Vec<CertificateDer<'_>> = middle
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.as_slice());
    let cert = EndEntityCert::try_from(&leaf_der).map_err(|_| BadChain::Unreadable)?;
    let seconds = u64::try_from(now.unix_seconds()).map_err(|_| BadChain::Unverified)?;
    cert.verify_for_usage(
        CHAIN_ALGS,
        &[anchor],
        &middle,
        UnixTime::since_unix_epoch(Duration::from_secs(seconds)),
        AnyUsage,
        None,
        None,
    )
    .map_err(|_| BadChain::Unverified)?;
    match self_issued(last)? {
        true => Ok(chain[..chain.len() - 1].to_vec()),
        false => Ok(chain.to_vec()),
    }
}

/// The Subject Key Identifier of certificate `der`, when it has one.
pub fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    let cert = der::AnyRef::from_der(der).ok()?;
    let mut outer = SliceReader::new(cert.value()).ok()?;
    let tbs = der::AnyRef::decode(&mut outer).ok()?;
    let mut fields = SliceReader::new(tbs.value()).ok()?;
    let extensions_tag = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::N3,
    };
    while !fields.is_finished() {
        let field = der::AnyRef::decode(&mut fields).ok()?;
        if field.tag() != extensions_tag {
            continue;
        }
        let list = der::AnyRef::from_der(field.value()).ok()?;
        let mut list = SliceReader::new(list.value()).ok()?;
        while !list.is_finished() {
            let extension = der::AnyRef::decode(&mut list).ok()?;
            if let Some(id) = key_id_of(extension) {
                return Some(id);
            }
        }
    }
    None
}

/// The key identifier of one `Extension`, when it is the Subject Key
/// Identifier.
fn key_id_of(extension: der::AnyRef<'_>) -> Option<Vec<u8>> {
    let mut parts = SliceReader::new(extension.value()).ok()?;
    if ObjectIdentifier::decode(&mut parts).ok()? != SUBJECT_KEY_ID {
        return None;
    }
    let mut value = der::AnyRef::decode(&mut parts).ok()?;
    if value.tag() == Tag::Boolean {
        value = der::AnyRef::decode(&mut parts).ok()?;
    }
    let inner = der::AnyRef::from_der(value.value()).ok()?;
    (value.tag() == Tag::OctetString && inner.tag() == Tag::OctetString)
        .then(|| inner.value().to_vec())
}

#[cfg(test)]
mod tests;
