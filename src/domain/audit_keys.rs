//! The Ed25519 keys the gateway signs with, alone: an audit trail's head
//! (docs/audit.md#the-signed-head) and a payment's approval token
//! (docs/api.md#the-approval-token). Each is an Ed25519 private key
//! (PKCS#8 PEM) that signs compact JWS `EdDSA`, and the public keys listed
//! as a JWKS (`/.well-known/chatgate-audit-keys`,
//! `/.well-known/chatgate-approval-keys`), each named by its RFC 7638
//! thumbprint.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, KeypairBytes};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One public key as a JWK (`kty` `OKP`, `crv` `Ed25519`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub kid: String,
    pub x: String,
}

impl Jwk {
    fn of(key: &VerifyingKey) -> Self {
        let x = B64URL.encode(key.as_bytes());
        // RFC 7638: the required members, in lexicographic order, no spaces.
        let members = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: B64URL.encode(Sha256::digest(members.as_bytes())),
            x,
        }
    }

    /// The key that checks a signature, when this is an Ed25519 JWK.
    fn decoding_key(&self) -> Option<DecodingKey> {
        (self.kty == "OKP" && self.crv == "Ed25519")
            .then(|| DecodingKey::from_ed_components(&self.x).ok())
            .flatten()
    }
}

/// A JWKS: what `/.well-known/chatgate-audit-keys` and
/// `/.well-known/chatgate-approval-keys` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// The signing key in force and the public keys still listed: `[audit]`'s
/// or `[approvals]`' `signing_key` and `previous_signing_keys`.
pub struct SigningKeys {
    signing: Option<(EncodingKey, Jwk)>,
    listed: Jwks,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("listed", &self.listed)
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// No key: heads are not signed, the JWKS is empty.
    pub fn none() -> Self {
        SigningKeys {
            signing: None,
            listed: Jwks::default(),
        }
    }

    /// From `signing_key` (a PKCS#8 PEM private key; empty: none) and
    /// `previous` (public keys, SPKI PEM). `Err` names which is wrong,
    /// never its content.
    pub fn from_pem(signing_key: &str, previous: &[String]) -> Result<Self, String> {
        let mut listed = Jwks::default();
        let signing = match signing_key.trim() {
            "" => None,
            pem => {
                let key = SigningKey::from_pkcs8_pem(pem)
                    .map_err(|_| "signing_key is not an Ed25519 private key (PKCS#8 PEM)")?;
                let jwk = Jwk::of(&key.verifying_key());
                let der = key
                    .to_pkcs8_der()
                    .map_err(|_| "signing_key could not be encoded")?;
                listed.keys.push(jwk.clone());
                Some((EncodingKey::from_ed_der(der.as_bytes()), jwk))
            }
        };
        for (i, pem) in previous.iter().enumerate() {
            let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| {
                format!("previous_signing_keys[{i}] is not an Ed25519 public key (PEM)")
            })?;
            let jwk = Jwk::of(&key);
            if !listed.keys.contains(&jwk) {
                listed.keys.push(jwk);
            }
        }
        Ok(SigningKeys { signing, listed })
    }

    /// The public keys, the signing key's first.
    pub fn jwks(&self) -> &Jwks {
        &self.listed
    }

    /// Whether there is a signing key.
    pub fn signs(&self) -> bool {
        self.signing.is_some()
    }

    /// `payload` as a compact JWS (`EdDSA`, header `kid`), or `None`
    /// without a signing key.
    pub fn sign<T: Serialize>(&self, payload: &T) -> Option<String> {
        let (key, jwk) = self.signing.as_ref()?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(jwk.kid.clone());
        jsonwebtoken::encode(&header, payload, key).ok()
    }
}

/// A new Ed25519 private key, PKCS#8 PEM in RFC 8410's form
/// (`chatgate keygen audit-signing-key`, `approval-signing-key`): a v1
/// `PrivateKeyInfo` of the seed alone, without the public key a v2
/// `OneAsymmetricKey` adds, which OpenSSL 3 and Python's `cryptography`
/// read (docs/decisions/0312-a-new-signing-key-is-pkcs8-v1.md).
pub fn new_signing_key_pem() -> Result<String, String> {
    let key = KeypairBytes {
        secret_key: rand::random::<[u8; 32]>(),
        public_key: None,
    };
    key.to_pkcs8_pem(Default::default())
        .map(|pem| pem.to_string())
        .map_err(|_| "the key could not be encoded".to_string())
}

/// The payload of `jws` when a key of `jwks` (by its `kid`) signed it
/// with `EdDSA`; `None` for any other token. Expiry is not checked: a
/// head stays true.
pub fn verify_signed<T: serde::de::DeserializeOwned>(jws: &str, jwks: &Jwks) -> Option<T> {
    let header = jsonwebtoken::decode_header(jws).ok()?;
    if header.alg != Algorithm::EdDSA {
        return None;
    }
    let kid = header.kid?;
    let key = jwks.keys.iter().find(|k| k.kid == kid)?.decoding_key()?;
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.validate_exp = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<T>(jws, &key, &validation)
        .ok()
        .map(|d| d.claims)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::EncodePublicKey;

    /// The DER inside a `PRIVATE KEY` PEM.
    pub(crate) fn pem_der(pem: &str) -> Vec<u8> {
        use base64::engine::general_purpose::STANDARD;
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(lines.last(), Some(&"-----END PRIVATE KEY-----"), "{pem}");
        STANDARD.decode(lines[1..lines.len() - 1].concat()).unwrap()
    }

    /// `pem` is an Ed25519 key in RFC 8410's PKCS#8 v1 form (section 10.3).
    pub(crate) fn assert_v1(pem: &str) {
        let der = pem_der(pem);
        let prefix = hex::decode("302e020100300506032b657004220420").unwrap();
        assert_eq!(der.len(), 48, "{}", hex::encode(&der));
        assert_eq!(der[..16], prefix[..], "{}", hex::encode(&der));
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        seq: u64,
    }

    /// RFC 8037's example key (appendix A.1) and its RFC 7638 thumbprint
    /// (appendix A.3), as that document gives them.
    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        let d = B64URL
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        let key = SigningKey::from_bytes(&d.try_into().unwrap());
        let jwk = Jwk::of(&key.verifying_key());
        assert_eq!(jwk.x, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert_eq!(jwk.kid, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn a_signed_head_verifies_with_the_listed_key_only() {
        let pem = new_signing_key_pem().unwrap();
        let keys = SigningKeys::from_pem(&pem, &[]).unwrap();
        let jws = keys.sign(&Claims { seq: 7 }).unwrap();
        let header = jsonwebtoken::decode_header(&jws).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(
            header.kid.as_deref(),
            Some(keys.jwks().keys[0].kid.as_str())
        );
        assert_eq!(
            verify_signed::<Claims>(&jws, keys.jwks()),
            Some(Claims { seq: 7 })
        );
        let other = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[]).unwrap();
        assert_eq!(verify_signed::<Claims>(&jws, other.jwks()), None);
        // A changed payload is refused.
        let parts: Vec<&str> = jws.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(r#"{"seq":8}"#),
            parts[2]
        );
        assert_eq!(verify_signed::<Claims>(&forged, keys.jwks()), None);
    }

    /// RFC 8410's PKCS#8 v1 form, byte for byte: `SEQUENCE { INTEGER 0,
    /// SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }`,
    /// 48 bytes, no public key; and the loader reads it.
    #[test]
    fn a_new_key_is_rfc_8410_pkcs8_v1() {
        let pem = new_signing_key_pem().unwrap();
        assert_eq!(pem_der(&pem).len(), 48, "{pem}");
        assert_v1(&pem);
        let keys = SigningKeys::from_pem(&pem, &[]).unwrap();
        assert!(keys.signs());
    }

    #[test]
    fn previous_keys_stay_listed() {
        let old = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let old_pub = old
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let keys = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[old_pub]).unwrap();
        assert_eq!(keys.jwks().keys.len(), 2);
        assert_eq!(keys.jwks().keys[1], Jwk::of(&old.verifying_key()));
        assert!(SigningKeys::from_pem("not a key", &[]).is_err());
        let bad = SigningKeys::from_pem("", &["nope".into()]).unwrap_err();
        assert!(bad.contains("previous_signing_keys[0]"), "{bad}");
        assert!(SigningKeys::none().sign(&Claims { seq: 1 }).is_none());
    }
}
