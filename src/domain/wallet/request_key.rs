//! The fresh encryption key of one wallet request (docs/wallet.md#the-response):
//! a P-256 key whose public JWK (`use` `enc`, `alg` `ECDH-ES`, `kid` its
//! RFC 7638 thumbprint) goes in the request, and whose private half opens
//! the wallet's answer.
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use p256::elliptic_curve::zeroize::Zeroizing;
use rand::{CryptoRng, RngCore};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::jose::to_b64url;

/// One request's key pair. Its `Debug` shows the `kid` only.
#[derive(Clone)]
pub struct RequestKey {
    secret: p256::SecretKey,
    /// Derived from `secret` once: a scalar multiplication, the dearest
    /// step of a page view after the request's signature.
    public: p256::PublicKey,
    kid: String,
}

impl std::fmt::Debug for RequestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl RequestKey {
    /// A new key from `rng`.
    pub fn generate(rng: &mut (impl RngCore + CryptoRng)) -> Self {
        Self::from_secret(p256::SecretKey::random(rng))
    }

    /// The key whose private scalar is `d` (32 bytes, big-endian), as a
    /// store keeps it; none when `d` is not a valid scalar.
    pub fn from_scalar(d: &[u8]) -> Option<Self> {
        p256::SecretKey::from_slice(d).ok().map(Self::from_secret)
    }

    fn from_secret(secret: p256::SecretKey) -> Self {
        let public = secret.public_key();
        let kid = thumbprint(&public);
        RequestKey {
            secret,
            public,
            kid,
        }
    }

    /// The private scalar, to be kept with the request and nowhere else.
    pub fn scalar(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.secret.to_bytes().to_vec())
    }

    /// The key's id: its RFC 7638 thumbprint, unless [`RequestKey::named`]
    /// gave it another.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// This key under the id `kid` (its thumbprint marked with its team's
    /// slot, say), as its JWK names it and an answer's header must.
    pub fn named(self, kid: String) -> Self {
        RequestKey { kid, ..self }
    }

    /// The private key, to open an answer with.
    pub fn secret(&self) -> &p256::SecretKey {
        &self.secret
    }

    /// The public JWK the request's `client_metadata.jwks` carries.
    pub fn public_jwk(&self) -> Value {
        let (x, y) = coordinates(&self.public);
        json!({
            "kty": "EC", "crv": "P-256", "x": x, "y": y,
            "use": "enc", "alg": "ECDH-ES", "kid": self.kid,
        })
    }
}

/// The base64url `x` and `y` of a P-256 public key.
fn coordinates(key: &p256::PublicKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    let x = point.x().map(|x| to_b64url(x)).unwrap_or_default();
    let y = point.y().map(|y| to_b64url(y)).unwrap_or_default();
    (x, y)
}

/// The RFC 7638 thumbprint of a P-256 public key: the base64url SHA-256
/// of `{"crv","kty","x","y"}` in that order, without white space.
pub fn thumbprint(key: &p256::PublicKey) -> String {
    let (x, y) = coordinates(key);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    to_b64url(&Sha256::digest(canonical.as_bytes()))
}
