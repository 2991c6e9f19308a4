//! The wallet's answer opened (docs/wallet.md#the-response): a compact JWE,
//! `alg` `ECDH-ES` (direct key agreement, Concat KDF of RFC 7518 section
//! 4.6), `enc` `A128GCM` or `A256GCM`, `kid` the request key's, decrypted
//! with the request's P-256 key; and the presentations its `vp_token`
//! holds for a credential query.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::elliptic_curve::sec1::FromEncodedPoint as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::jose::{b64url, object, Object};
use super::request_key::RequestKey;

/// Why an answer could not be opened; no part of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unopened {
    #[error("not a compact JWE")]
    Malformed,
    #[error("an algorithm other than ECDH-ES with A128GCM or A256GCM")]
    UnsupportedAlg,
    #[error("for another key")]
    OtherKey,
    #[error("does not decrypt")]
    Undecryptable,
    #[error("no presentation for the credential")]
    NoPresentation,
    #[error("a presentation of a credential not asked for")]
    NotAsked,
    #[error("presentations of more than one credential")]
    MoreThanOne,
}

/// The content encryptions an answer may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    A128Gcm,
    A256Gcm,
}

/// The plaintext of `jwe`, a JSON object, opened with `key`.
pub fn open(jwe: &str, key: &RequestKey) -> Result<Object, Unopened> {
    let parts: Vec<&str> = jwe.split('.').collect();
    let [header_b64, encrypted_key, iv, ciphertext, tag] = parts[..] else {
        return Err(Unopened::Malformed);
    };
    let header = b64url(header_b64)
        .and_then(|h| object(&h))
        .ok_or(Unopened::Malformed)?;
    let text = |name: &str| header.get(name).and_then(Value::as_str);
    let enc = match (text("alg"), text("enc")) {
        (Some("ECDH-ES"), Some("A128GCM")) => Enc::A128Gcm,
        (Some("ECDH-ES"), Some("A256GCM")) => Enc::A256Gcm,
        _ => return Err(Unopened::UnsupportedAlg),
    };
    // Compression or critical extensions are nothing this verifier reads.
    if !encrypted_key.is_empty() || header.contains_key("zip") || header.contains_key("crit") {
        return Err(Unopened::UnsupportedAlg);
    }
    if text("kid").is_some_and(|kid| kid != key.kid()) {
        return Err(Unopened::OtherKey);
    }
    let cek = content_key(&header, enc, key)?;
    let iv: [u8; 12] = b64url(iv)
        .and_then(|iv| iv.try_into().ok())
        .ok_or(Unopened::Malformed)?;
    let mut sealed = b64url(ciphertext).ok_or(Unopened::Malformed)?;
    sealed.extend(
        b64url(tag)
            .filter(|t| t.len() == 16)
            .ok_or(Unopened::Malformed)?,
    );
    let payload = Payload {
        msg: &sealed,
        aad: header_b64.as_bytes(),
    };
    let nonce = &Nonce::from(iv);
    let plain = match enc {
        Enc::A128Gcm => Aes128Gcm::new_from_slice(&cek)
            .ok()
            .and_then(|c| c.decrypt(nonce, payload).ok()),
        Enc::A256Gcm => Aes256Gcm::new_from_slice(&cek)
            .ok()
            .and_then(|c| c.decrypt(nonce, payload).ok()),
    };
    object(&plain.ok_or(Unopened::Undecryptable)?).ok_or(Unopened::Malformed)
}

/// The content key: ECDH of the header's `epk` with `key`, through the
/// Concat KDF over `enc`, `apu` and `apv`.
fn content_key(header: &Object, enc: Enc, key: &RequestKey) -> Result<Vec<u8>, Unopened> {
    let epk = header
        .get("epk")
        .and_then(Value::as_object)
        .ok_or(Unopened::Malformed)?;
    let coordinate = |name: &str| {
        let bytes = epk.get(name).and_then(Value::as_str).and_then(b64url)?;
        <[u8; 32]>::try_from(bytes).ok()
    };
    if epk.get("kty").and_then(Value::as_str) != Some("EC")
        || epk.get("crv").and_then(Value::as_str) != Some("P-256")
    {
        return Err(Unopened::UnsupportedAlg);
    }
    let (x, y) = (coordinate("x"), coordinate("y"));
    let (Some(x), Some(y)) = (x, y) else {
        return Err(Unopened::Malformed);
    };
    let point = p256::EncodedPoint::from_affine_coordinates(
        &p256::FieldBytes::from(x),
        &p256::FieldBytes::from(y),
        false,
    );
    // Off the curve (an invalid-curve attack) is refused here.
    let epk = Option::<p256::PublicKey>::from(p256::PublicKey::from_encoded_point(&point))
        .ok_or(Unopened::Malformed)?;
    let shared = (epk.to_projective() * *key.secret().to_nonzero_scalar()).to_affine();
    let party = |name: &str| match header.get(name) {
        None => Some(Vec::new()),
        Some(v) => v.as_str().and_then(b64url),
    };
    let (apu, apv) = (party("apu"), party("apv"));
    let (Some(apu), Some(apv)) = (apu, apv) else {
        return Err(Unopened::Malformed);
    };
    let (name, bits): (&[u8], u32) = match enc {
        Enc::A128Gcm => (b"A128GCM", 128),
        Enc::A256Gcm => (b"A256GCM", 256),
    };
    Ok(concat_kdf(&shared.x(), name, &apu, &apv, bits))
}

/// RFC 7518's Concat KDF (NIST SP 800-56A) with SHA-256, for at most 256
/// bits: one round suffices.
fn concat_kdf(z: &[u8], alg: &[u8], apu: &[u8], apv: &[u8], bits: u32) -> Vec<u8> {
    let with_length = |h: &mut Sha256, data: &[u8]| {
        h.update(u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(data);
    };
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    with_length(&mut h, alg);
    with_length(&mut h, apu);
    with_length(&mut h, apv);
    h.update(bits.to_be_bytes());
    let mut key = h.finalize().to_vec();
    key.truncate(bits as usize / 8);
    key
}

/// The credential query the answer's `vp_token` answers and its
/// presentations (OpenID4VP: an object of arrays, one entry per query):
/// exactly one query, one of `asked`; a second, or one not asked, is
/// refused.
pub fn presentations<'a>(
    answer: &'a Object,
    asked: &[&str],
) -> Result<(&'a str, Vec<&'a str>), Unopened> {
    let token = answer
        .get("vp_token")
        .and_then(Value::as_object)
        .ok_or(Unopened::NoPresentation)?;
    let mut ids = token.keys();
    let (id, list) = match (ids.next(), ids.next()) {
        (None, _) => return Err(Unopened::NoPresentation),
        (Some(_), Some(_)) => return Err(Unopened::MoreThanOne),
        (Some(id), None) if !asked.contains(&id.as_str()) => return Err(Unopened::NotAsked),
        (Some(id), None) => (id, &token[id]),
    };
    let list = list.as_array().ok_or(Unopened::NoPresentation)?;
    let list: Option<Vec<&str>> = list.iter().map(Value::as_str).collect();
    list.filter(|l| !l.is_empty())
        .map(|l| (id.as_str(), l))
        .ok_or(Unopened::NoPresentation)
}
