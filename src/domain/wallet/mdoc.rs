//! An mdoc (ISO/IEC 18013-5) presented over OpenID4VP, verified
//! (docs/wallet.md#mdoc): the `vp_token` entry is a base64url
//! `DeviceResponse` of `status` 0 with one document of the expected
//! `docType`. Its `issuerAuth` (COSE_Sign1) is signed by the leaf of its
//! `x5chain`, whose chain reaches a trusted issuer at `now`; the Mobile
//! Security Object it signs names the same `docType`, is valid at `now`,
//! and holds the digest of every disclosed `IssuerSignedItem`. The
//! document's `deviceSignature` (COSE_Sign1, ES256) is made by the MSO's
//! device key over `DeviceAuthentication`, whose SessionTranscript binds
//! this request (OpenID4VP 1.0, Appendix B: `OpenID4VPHandover` for a
//! wallet's redirect, `OpenID4VPDCAPIHandover` for the Digital Credentials
//! API). Nothing here reads the clock, the store or the network.
use std::collections::HashSet;
use std::io::Cursor;

use ciborium::Value as Cbor;
use coset::{iana, AsCborValue, CoseSign1, Label, RegisteredLabelWithPrivate};
use p256::ecdsa::signature::Verifier as _;
use serde_json::{Number, Value};
use sha2::{Digest, Sha256, Sha384, Sha512};
use subtle::ConstantTimeEq;

pub use super::invalid::Invalid;
use super::issuers::{verify_chain, Chain, Issuer, TrustedIssuers};
use super::jose::{b64url, to_b64url, JwsAlg, Object};
use super::outcome::Refused;
pub use super::outcome::{Outcome, Verified};
use super::status_list::StatusRef;
use crate::time::Timestamp;

/// The leeway of the MSO's `validFrom`, `validUntil` and `signed`, in
/// seconds (as an SD-JWT VC's times have).
pub const LEEWAY: i64 = super::sd_jwt::LEEWAY;

/// The COSE header label of an `x5chain` (RFC 9360).
const X5CHAIN: i64 = 33;

/// The CBOR tag of an embedded CBOR data item (`#6.24(bstr)`).
const EMBEDDED: u64 = 24;

/// What the presentation is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub trusted: &'a TrustedIssuers,
    /// The `docType` asked for (`org.iso.18013.5.1.mDL`).
    pub doctype: &'a str,
    /// The namespace whose items become the claims (`org.iso.18013.5.1`).
    pub namespace: &'a str,
    /// How the request reached the wallet: what the device signed.
    pub handover: Handover<'a>,
    pub now: Timestamp,
}

/// How the request reached the wallet, and so the SessionTranscript the
/// device signature covers (OpenID4VP 1.0, Appendix B).
#[derive(Debug, Clone, Copy)]
pub enum Handover<'a> {
    /// A wallet fetched the request and posts its answer
    /// (`direct_post.jwt`): `OpenID4VPHandover`.
    Redirect {
        client_id: &'a str,
        nonce: &'a str,
        /// The request key's RFC 7638 thumbprint, base64url as
        /// `RequestKey::kid` gives it; `None` for an unencrypted answer.
        jwk_thumbprint: Option<&'a str>,
        response_uri: &'a str,
    },
    /// The browser's Digital Credentials API (`dc_api.jwt`):
    /// `OpenID4VPDCAPIHandover`.
    DcApi {
        /// The page's origin, without an `origin:` prefix.
        origin: &'a str,
        nonce: &'a str,
        jwk_thumbprint: Option<&'a str>,
    },
}

/// The outcome of `device_response` (base64url, as the `vp_token`
/// carries it) against `expected`.
pub fn verify(device_response: &str, expected: &Expected<'_>) -> Outcome {
    verified(device_response, expected).into()
}

fn verified(device_response: &str, expected: &Expected<'_>) -> Result<Verified, Refused> {
    let bytes = b64url(device_response.trim().trim_end_matches('=')).ok_or(Invalid::Malformed)?;
    let response = decode(&bytes)?;
    let response = map(&response)?;
    match required(response, "status")?.as_integer().map(i128::from) {
        Some(0) => {}
        Some(_) => return Err(Invalid::ResponseStatus.into()),
        None => return Err(Invalid::Malformed.into()),
    }
    let documents = required(response, "documents")?
        .as_array()
        .ok_or(Invalid::Malformed)?;
    let [document] = documents.as_slice() else {
        return Err(Invalid::Malformed.into());
    };
    let document = map(document)?;
    let doctype = text(required(document, "docType")?)?;
    if doctype != expected.doctype {
        return Err(Invalid::WrongDoctype.into());
    }
    let issuer_signed = map(required(document, "issuerSigned")?)?;
    let issuer_auth = sign1(required(issuer_signed, "issuerAuth")?)?;
    let issuer = issuer_of(&issuer_auth, expected)?;
    let payload = issuer_auth.payload.as_deref().ok_or(Invalid::Malformed)?;
    let mso = embedded(&decode(payload)?)?;
    let mso = Mso::read(&mso)?;
    if mso.doctype != doctype {
        return Err(Invalid::WrongDoctype.into());
    }
    mso.valid_at(expected.now)?;
    let claims = disclosed(
        member(issuer_signed, "nameSpaces")?,
        &mso,
        expected.namespace,
    )?;
    device_signed(
        map(required(document, "deviceSigned")?)?,
        doctype,
        &mso,
        expected,
    )?;
    Ok(Verified {
        claims,
        issuer: issuer.subject,
        credential_type: doctype.to_string(),
        status: mso.status,
        key_binding: Default::default(),
    })
}

/// The issuer of `issuer_auth`: its chain checked, then its signature.
fn issuer_of(issuer_auth: &CoseSign1, expected: &Expected<'_>) -> Result<Issuer, Refused> {
    let alg = algorithm(issuer_auth)?;
    let x5chain = [
        &issuer_auth.protected.header.rest,
        &issuer_auth.unprotected.rest,
    ]
    .into_iter()
    .flatten()
    .find(|(label, _)| *label == Label::Int(X5CHAIN))
    .map(|(_, value)| value);
    // Without `x5chain` the issuer cannot be tied to a trusted one.
    let chain: Vec<Vec<u8>> = match x5chain {
        None => return Err(Refused::Untrusted),
        Some(Cbor::Bytes(one)) => vec![one.clone()],
        Some(Cbor::Array(many)) => many
            .iter()
            .map(|c| c.as_bytes().cloned())
            .collect::<Option<_>>()
            .ok_or(Invalid::Malformed)?,
        Some(_) => return Err(Invalid::Malformed.into()),
    };
    let issuer = verify_chain(&chain, expected.trusted, expected.now).map_err(|c| match c {
        Chain::Malformed => Refused::Invalid(Invalid::Malformed),
        Chain::Untrusted => Refused::Untrusted,
    })?;
    issuer_auth
        .verify_signature(b"", |sig, data| {
            issuer.key.verifies(alg, data, sig).then_some(()).ok_or(())
        })
        .map_err(|()| Invalid::BadSignature)?;
    Ok(issuer)
}

/// A COSE_Sign1's protected `alg`: ES256, ES384 or EdDSA; a `crit`
/// header (none is understood) is malformed.
fn algorithm(sign1: &CoseSign1) -> Result<JwsAlg, Invalid> {
    let header = &sign1.protected.header;
    if !header.crit.is_empty() {
        return Err(Invalid::Malformed);
    }
    match &header.alg {
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256)) => Ok(JwsAlg::Es256),
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES384)) => Ok(JwsAlg::Es384),
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::EdDSA)) => Ok(JwsAlg::EdDsa),
        _ => Err(Invalid::UnsupportedAlg),
    }
}

/// The MSO's digest algorithm.
#[derive(Debug, Clone, Copy)]
enum DigestAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl DigestAlg {
    fn digest(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(bytes).to_vec(),
            Self::Sha384 => Sha384::digest(bytes).to_vec(),
            Self::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }
}

/// The Mobile Security Object, read.
struct Mso<'a> {
    doctype: &'a str,
    digest_alg: DigestAlg,
    /// `valueDigests`: namespace → digest id → digest.
    value_digests: &'a [(Cbor, Cbor)],
    device_key: p256::ecdsa::VerifyingKey,
    signed: i64,
    valid_from: i64,
    valid_until: i64,
    status: Option<StatusRef>,
}

impl<'a> Mso<'a> {
    fn read(mso: &'a Cbor) -> Result<Self, Invalid> {
        let mso = map(mso)?;
        let digest_alg = match text(required(mso, "digestAlgorithm")?)? {
            "SHA-256" => DigestAlg::Sha256,
            "SHA-384" => DigestAlg::Sha384,
            "SHA-512" => DigestAlg::Sha512,
            _ => return Err(Invalid::UnsupportedDigestAlg),
        };
        let validity = map(required(mso, "validityInfo")?)?;
        let time = |name: &str| required(validity, name).and_then(tdate);
        let device_key = map(required(mso, "deviceKeyInfo")?)?;
        let status = match member(mso, "status")? {
            None => None,
            Some(status) => StatusRef::from_claim(Some(&json(status)))?,
        };
        Ok(Mso {
            doctype: text(required(mso, "docType")?)?,
            digest_alg,
            value_digests: map(required(mso, "valueDigests")?)?,
            device_key: device_key_of(required(device_key, "deviceKey")?)?,
            signed: time("signed")?,
            valid_from: time("validFrom")?,
            valid_until: time("validUntil")?,
            status,
        })
    }

    /// Whether the MSO is valid at `now`, within [`LEEWAY`].
    fn valid_at(&self, now: Timestamp) -> Result<(), Invalid> {
        let now = now.unix_seconds();
        if now >= self.valid_until.saturating_add(LEEWAY) {
            return Err(Invalid::Expired);
        }
        if now < self.valid_from.saturating_sub(LEEWAY) {
            return Err(Invalid::NotYetValid);
        }
        if now < self.signed.saturating_sub(LEEWAY) {
            return Err(Invalid::IssuedInTheFuture);
        }
        Ok(())
    }

    /// The digest the MSO holds for item `id` of `namespace`.
    fn digest_of(&self, namespace: &str, id: i128) -> Option<&'a [u8]> {
        let digests = self
            .value_digests
            .iter()
            .find(|(k, _)| k.as_text() == Some(namespace))?
            .1
            .as_map()?;
        digests
            .iter()
            .find(|(k, _)| k.as_integer().map(i128::from) == Some(id))?
            .1
            .as_bytes()
            .map(Vec::as_slice)
    }
}

/// The device key of the MSO: a P-256 COSE_Key (`kty` 2, `crv` 1, `x`,
/// `y`); any other kind cannot make the ES256 device signature.
fn device_key_of(key: &Cbor) -> Result<p256::ecdsa::VerifyingKey, Invalid> {
    let key = map(key)?;
    let int = |label: i128| {
        key.iter()
            .find(|(k, _)| k.as_integer().map(i128::from) == Some(label))
            .map(|(_, v)| v)
    };
    let number = |label: i128| int(label).and_then(Cbor::as_integer).map(i128::from);
    let bytes = |label: i128| int(label).and_then(Cbor::as_bytes);
    match (number(1), number(-1), bytes(-2), bytes(-3)) {
        (Some(2), Some(1), Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => {
            p256::ecdsa::VerifyingKey::from_sec1_bytes(
                &[&[4u8][..], x.as_slice(), y.as_slice()].concat(),
            )
            .map_err(|_| Invalid::NoHolderKey)
        }
        _ => Err(Invalid::NoHolderKey),
    }
}

/// The disclosed items (`nameSpaces`: namespace → `[#6.24(bstr)]`), each
/// digest found in the MSO; those of `namespace` as claims.
fn disclosed(namespaces: Option<&Cbor>, mso: &Mso<'_>, namespace: &str) -> Result<Object, Invalid> {
    let mut claims = Object::new();
    let Some(namespaces) = namespaces else {
        return Ok(claims);
    };
    let mut seen = HashSet::new();
    for (ns, items) in map(namespaces)? {
        let ns = text(ns)?;
        for item in items.as_array().ok_or(Invalid::Malformed)? {
            // The digest is over the item as sent: `#6.24(bstr)`.
            let digest = mso.digest_alg.digest(&encode(item)?);
            let item = embedded(item)?;
            let item = map(&item)?;
            let id = required(item, "digestID")?
                .as_integer()
                .map(i128::from)
                .filter(|id| *id >= 0)
                .ok_or(Invalid::Malformed)?;
            required(item, "random")?
                .as_bytes()
                .ok_or(Invalid::Malformed)?;
            let name = text(required(item, "elementIdentifier")?)?;
            let value = required(item, "elementValue")?;
            let want = mso.digest_of(ns, id).ok_or(Invalid::DigestMismatch)?;
            if !bool::from(want.ct_eq(digest.as_slice())) {
                return Err(Invalid::DigestMismatch);
            }
            if !seen.insert((ns, id)) {
                return Err(Invalid::DigestTwice);
            }
            if ns == namespace && claims.insert(name.to_string(), json(value)).is_some() {
                return Err(Invalid::Malformed);
            }
        }
    }
    Ok(claims)
}

/// The document's `deviceSigned`: its `deviceSignature` by the MSO's
/// device key, ES256, over `DeviceAuthentication` for `expected.handover`.
fn device_signed(
    device_signed: &[(Cbor, Cbor)],
    doctype: &str,
    mso: &Mso<'_>,
    expected: &Expected<'_>,
) -> Result<(), Invalid> {
    let namespaces = required(device_signed, "nameSpaces")?;
    embedded(namespaces)?;
    let device_auth = map(required(device_signed, "deviceAuth")?)?;
    let signature = member(device_auth, "deviceSignature")?.ok_or(Invalid::NoDeviceSignature)?;
    let signature = sign1(signature)?;
    if algorithm(&signature)? != JwsAlg::Es256 {
        return Err(Invalid::UnsupportedAlg);
    }
    // The payload is detached: DeviceAuthenticationBytes.
    if signature.payload.is_some() {
        return Err(Invalid::Malformed);
    }
    let transcript = expected
        .handover
        .session_transcript()
        .ok_or(Invalid::Malformed)?;
    let authentication = Cbor::Array(vec![
        Cbor::Text("DeviceAuthentication".into()),
        transcript,
        Cbor::Text(doctype.into()),
        namespaces.clone(),
    ]);
    let bytes = encode(&Cbor::Tag(
        EMBEDDED,
        Box::new(Cbor::Bytes(encode(&authentication)?)),
    ))?;
    signature
        .verify_detached_signature(&bytes, b"", |sig, data| {
            p256::ecdsa::Signature::from_slice(sig)
                .ok()
                .filter(|s| mso.device_key.verify(data, s).is_ok())
                .map(|_| ())
                .ok_or(())
        })
        .map_err(|()| Invalid::BadDeviceSignature)
}

impl Handover<'_> {
    /// The SessionTranscript: `[null, null, [name, sha-256(info)]]`, the
    /// info `[client_id, nonce, thumbprint, response_uri]` for a redirect,
    /// `[origin, nonce, thumbprint]` for the Digital Credentials API (the
    /// thumbprint's bytes, or null). None when the thumbprint is not
    /// base64url.
    pub fn session_transcript(&self) -> Option<Cbor> {
        let thumbprint = |t: Option<&str>| match t {
            None => Some(Cbor::Null),
            Some(t) => b64url(t).map(Cbor::Bytes),
        };
        let text = |s: &str| Cbor::Text(s.to_string());
        let (name, info) = match *self {
            Handover::Redirect {
                client_id,
                nonce,
                jwk_thumbprint,
                response_uri,
            } => (
                "OpenID4VPHandover",
                vec![
                    text(client_id),
                    text(nonce),
                    thumbprint(jwk_thumbprint)?,
                    text(response_uri),
                ],
            ),
            Handover::DcApi {
                origin,
                nonce,
                jwk_thumbprint,
            } => (
                "OpenID4VPDCAPIHandover",
                vec![text(origin), text(nonce), thumbprint(jwk_thumbprint)?],
            ),
        };
        let hash = Sha256::digest(encode(&Cbor::Array(info)).ok()?);
        Some(Cbor::Array(vec![
            Cbor::Null,
            Cbor::Null,
            Cbor::Array(vec![text(name), Cbor::Bytes(hash.to_vec())]),
        ]))
    }
}

/// One CBOR data item that is all of `bytes`.
fn decode(bytes: &[u8]) -> Result<Cbor, Invalid> {
    let mut reader = Cursor::new(bytes);
    let value: Cbor = ciborium::from_reader(&mut reader).map_err(|_| Invalid::Malformed)?;
    if usize::try_from(reader.position()).ok() != Some(bytes.len()) {
        return Err(Invalid::Malformed);
    }
    Ok(value)
}

fn encode(value: &Cbor) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).map_err(|_| Invalid::Malformed)?;
    Ok(out)
}

/// The data item embedded in `#6.24(bstr)`.
fn embedded(value: &Cbor) -> Result<Cbor, Invalid> {
    match value {
        Cbor::Tag(EMBEDDED, inner) => decode(inner.as_bytes().ok_or(Invalid::Malformed)?),
        _ => Err(Invalid::Malformed),
    }
}

fn sign1(value: &Cbor) -> Result<CoseSign1, Invalid> {
    CoseSign1::from_cbor_value(value.clone()).map_err(|_| Invalid::Malformed)
}

fn map(value: &Cbor) -> Result<&[(Cbor, Cbor)], Invalid> {
    value.as_map().map(Vec::as_slice).ok_or(Invalid::Malformed)
}

fn text(value: &Cbor) -> Result<&str, Invalid> {
    value.as_text().ok_or(Invalid::Malformed)
}

/// The member `key` of a map with text keys, if present; a key present
/// twice is malformed, so no reader can see another value than this one.
fn member<'v>(map: &'v [(Cbor, Cbor)], key: &str) -> Result<Option<&'v Cbor>, Invalid> {
    let mut found = None;
    for (k, v) in map {
        if k.as_text() == Some(key) {
            if found.is_some() {
                return Err(Invalid::Malformed);
            }
            found = Some(v);
        }
    }
    Ok(found)
}

fn required<'v>(map: &'v [(Cbor, Cbor)], key: &str) -> Result<&'v Cbor, Invalid> {
    member(map, key)?.ok_or(Invalid::Malformed)
}

/// A `tdate` (`#6.0(tstr)`, RFC 3339) as Unix seconds.
fn tdate(value: &Cbor) -> Result<i64, Invalid> {
    match value {
        Cbor::Tag(0, inner) => inner
            .as_text()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp())
            .ok_or(Invalid::Malformed),
        _ => Err(Invalid::Malformed),
    }
}

/// An element value as JSON: integers, floats, texts, booleans, null,
/// arrays and maps (their text keys) as themselves; a byte string as
/// base64url; a date (tags 1004, 0, 100 and 1) as `YYYY-MM-DD`; anything
/// else null, which matches nothing.
fn json(value: &Cbor) -> Value {
    match value {
        Cbor::Integer(i) => {
            let i = i128::from(*i);
            i64::try_from(i)
                .map(Value::from)
                .or_else(|_| u64::try_from(i).map(Value::from))
                .unwrap_or(Value::Null)
        }
        Cbor::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Cbor::Text(s) => Value::String(s.clone()),
        Cbor::Bytes(b) => Value::String(to_b64url(b)),
        Cbor::Bool(b) => Value::Bool(*b),
        Cbor::Array(items) => Value::Array(items.iter().map(json).collect()),
        Cbor::Map(members) => Value::Object(
            members
                .iter()
                .filter_map(|(k, v)| Some((k.as_text()?.to_string(), json(v))))
                .collect(),
        ),
        Cbor::Tag(tag, inner) => date(*tag, inner).map_or(Value::Null, Value::String),
        _ => Value::Null,
    }
}

/// A date element as `YYYY-MM-DD`: a `full-date` (tag 1004) as written, a
/// `tdate` (tag 0) as the date it writes, days since 1970-01-01 (tag 100),
/// Unix seconds (tag 1) as their UTC date.
fn date(tag: u64, inner: &Cbor) -> Option<String> {
    const FORMAT: &str = "%Y-%m-%d";
    match (tag, inner) {
        (1004, Cbor::Text(s)) => chrono::NaiveDate::parse_from_str(s, FORMAT)
            .ok()
            .filter(|_| s.len() == 10)
            .map(|_| s.clone()),
        (0, Cbor::Text(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| d.date_naive().format(FORMAT).to_string()),
        (100, Cbor::Integer(days)) => {
            let days = i64::try_from(i128::from(*days)).ok()?;
            chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?
                .checked_add_signed(chrono::Duration::try_days(days)?)
                .map(|d| d.format(FORMAT).to_string())
        }
        (1, Cbor::Integer(seconds)) => {
            let seconds = i64::try_from(i128::from(*seconds)).ok()?;
            chrono::DateTime::from_timestamp(seconds, 0).map(|d| d.format(FORMAT).to_string())
        }
        _ => None,
    }
}
