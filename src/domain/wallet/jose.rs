//! The JOSE pieces the wallet verifier reads (docs/wallet.md#crates): a
//! compact JWS split and its signature checked with ES256, ES384 or EdDSA,
//! by a key from a certificate or from a JWK; base64url as JOSE writes it.
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::Verifier as _;
use serde_json::{Map, Value};

/// A JSON object, as a JWT's header and claims are.
pub type Object = Map<String, Value>;

/// The signature algorithms a credential may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlg {
    Es256,
    Es384,
    EdDsa,
}

impl JwsAlg {
    /// The algorithm a header's `alg` names, if it is one of these.
    pub fn parse(alg: &str) -> Option<Self> {
        match alg {
            "ES256" => Some(Self::Es256),
            "ES384" => Some(Self::Es384),
            "EdDSA" | "Ed25519" => Some(Self::EdDsa),
            _ => None,
        }
    }
}

/// A public key that may sign a credential or a key binding.
#[derive(Debug, Clone)]
pub enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// The key of a certificate's `SubjectPublicKeyInfo` (DER), if it is a
    /// P-256, P-384 or Ed25519 key.
    pub fn from_spki(der: &[u8]) -> Option<Self> {
        use p256::pkcs8::DecodePublicKey as _;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Some(Self::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Some(Self::P384(k));
        }
        ed25519_dalek::VerifyingKey::from_public_key_der(der)
            .ok()
            .map(Self::Ed25519)
    }

    /// The key a public JWK (RFC 7517) writes: `EC` on `P-256` or `P-384`,
    /// or `OKP` on `Ed25519`; anything else, or a point off its curve, is
    /// none.
    pub fn from_jwk(jwk: &Object) -> Option<Self> {
        let member = |k: &str| jwk.get(k).and_then(Value::as_str);
        let bytes = |k: &str| member(k).and_then(b64url);
        match (member("kty")?, member("crv")?) {
            ("EC", "P-256") => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1(&bytes("x")?, &bytes("y")?, 32)?)
                    .ok()
                    .map(Self::P256)
            }
            ("EC", "P-384") => {
                p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1(&bytes("x")?, &bytes("y")?, 48)?)
                    .ok()
                    .map(Self::P384)
            }
            ("OKP", "Ed25519") => {
                let x: [u8; 32] = bytes("x")?.try_into().ok()?;
                ed25519_dalek::VerifyingKey::from_bytes(&x)
                    .ok()
                    .map(Self::Ed25519)
            }
            _ => None,
        }
    }

    /// Whether `signature` (JWS form: `r || s`, or Ed25519's 64 bytes) is
    /// this key's over `message` with `alg`; a key of another kind than
    /// `alg` names never verifies.
    pub fn verifies(&self, alg: JwsAlg, message: &[u8], signature: &[u8]) -> bool {
        match (self, alg) {
            (Self::P256(k), JwsAlg::Es256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            (Self::P384(k), JwsAlg::Es384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            (Self::Ed25519(k), JwsAlg::EdDsa) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
            _ => false,
        }
    }
}

/// The uncompressed SEC1 point of coordinates `x` and `y`, each `size`
/// bytes long (checked one by one: their total alone could be right).
fn sec1(x: &[u8], y: &[u8], size: usize) -> Option<Vec<u8>> {
    (x.len() == size && y.len() == size).then(|| [&[4u8][..], x, y].concat())
}

/// A compact JWS, split and decoded, its signature not yet checked.
#[derive(Debug, Clone)]
pub struct Jws<'a> {
    pub header: Object,
    pub claims: Object,
    /// `<header>.<payload>` as received: what the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    /// Splits `compact` into its three parts; the header and the payload
    /// must be base64url (unpadded) JSON objects, the header without `crit`.
    pub fn split(compact: &'a str) -> Option<Self> {
        let mut parts = compact.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header = object(&b64url(h)?)?;
        // No header extension is understood, so none may be critical.
        if header.contains_key("crit") {
            return None;
        }
        Some(Jws {
            header,
            claims: object(&b64url(p)?)?,
            signing_input: compact.get(..h.len() + 1 + p.len())?,
            signature: b64url(s)?,
        })
    }

    /// The header's `alg`, if it is one of [`JwsAlg`].
    pub fn alg(&self) -> Option<JwsAlg> {
        self.header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(JwsAlg::parse)
    }

    /// Whether `key` signed this JWS with its header's `alg`.
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        self.alg()
            .is_some_and(|alg| key.verifies(alg, self.signing_input.as_bytes(), &self.signature))
    }
}

/// Unpadded base64url, as JOSE writes it (RFC 7515, section 2).
pub fn b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Unpadded base64url of `bytes`.
pub fn to_b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Padded base64 (not url), as an `x5c` member writes certificates.
pub fn b64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// `bytes` as a JSON object, or none.
pub fn object(bytes: &[u8]) -> Option<Object> {
    match serde_json::from_slice(bytes).ok()? {
        Value::Object(o) => Some(o),
        _ => None,
    }
}
