//! The operator API's secrets keys (docs/operator-api.md#secrets): a team's
//! or a channel's secret as the store keeps it — AES-256-GCM under the first
//! key, a fresh random nonce per value, the key's id beside the ciphertext
//! (docs/decisions/0421-the-stored-form-of-a-secret.md) — and as a read
//! gives it back: an HMAC-SHA-256 of the value under a key derived from the
//! first key, never the value nor a bare hash of it.
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use hmac::Mac;
use rand::RngCore;
use secrecy::SecretString;

use super::secrets::HmacKey;

/// The bytes of a secrets key.
pub const KEY_BYTES: usize = 32;

/// The bytes of a nonce (GCM's 96 bits).
const NONCE_BYTES: usize = 12;

/// The version tag every sealed value starts with.
const VERSION: &str = "cg1";

/// The label the read-back key is derived under from the first key.
const READ_BACK_LABEL: &[u8] = b"chatgate operator read-back v1";

/// Why a sealed value could not be opened. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not `cg1:<key id>:<base64url>`.
    #[error("not a sealed value")]
    Malformed,
    /// Sealed under a key id no longer listed.
    #[error("sealed under key id {0:?}, which is not listed")]
    UnknownKey(String),
    /// The tag does not verify: tampered, another key's, or another place's.
    #[error("the sealed value does not verify")]
    Tampered,
}

/// One listed key: its id and its cipher.
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// Every listed secrets key: the first seals, any opens; the read-back key
/// derived from the first. As secret as the keys: `Debug` names the ids
/// only.
pub struct SecretsCipher {
    keys: Vec<Key>,
    read_back: HmacKey,
}

impl fmt::Debug for SecretsCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("SecretsCipher").field("ids", &ids).finish()
    }
}

impl SecretsCipher {
    /// The cipher of `keys` (`(id, 32 bytes)`, the first encrypts); `None`
    /// when there is none. Ids and lengths are checked where the keys are
    /// read (`config/operator.rs`).
    pub fn new(keys: &[(String, [u8; KEY_BYTES])]) -> Option<Self> {
        let (_, first) = keys.first()?;
        let derive = HmacKey::new(first).mac()?.chain_update(READ_BACK_LABEL);
        let read_back = HmacKey::new(&derive.finalize().into_bytes());
        let keys = keys
            .iter()
            .map(|(id, bytes)| Key {
                id: id.clone(),
                cipher: Aes256Gcm::new(bytes.into()),
            })
            .collect();
        Some(SecretsCipher { keys, read_back })
    }

    /// The ids of the listed keys, the first first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// `value` sealed under the first key for the place `aad` names (a
    /// team's id and the member's pointer, say): `cg1:<key id>:<base64url
    /// of nonce ‖ ciphertext ‖ tag>`, with a fresh random nonce.
    pub fn seal(&self, aad: &str, value: &str) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: value.as_bytes(),
            aad: &Self::aad(&key.id, aad),
        };
        // Encrypting into a Vec fails only past GCM's 64 GiB message limit.
        let sealed = key
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}:{}:{}", key.id, B64URL.encode(bytes))
    }

    /// The value `sealed` holds, if a listed key sealed it for `aad`.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<SecretString, OpenError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::Malformed);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let bytes = B64URL.decode(body).map_err(|_| OpenError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
        let payload = Payload {
            msg: ciphertext,
            aad: &Self::aad(id, aad),
        };
        let plain = key
            .cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| OpenError::Tampered)?;
        let text = String::from_utf8(plain).map_err(|_| OpenError::Tampered)?;
        Ok(SecretString::from(text))
    }

    /// What a read shows of the secret `value`: lowercase hex of its
    /// HMAC-SHA-256 under the read-back key.
    pub fn read_back(&self, value: &str) -> String {
        match self.read_back.mac() {
            Some(mac) => hex::encode(mac.chain_update(value.as_bytes()).finalize().into_bytes()),
            None => String::new(),
        }
    }

    /// The associated data of a sealed value: the version, the key id and
    /// the place, so a value moved to another place or relabelled with
    /// another key id does not open.
    fn aad(id: &str, place: &str) -> Vec<u8> {
        format!("{VERSION}\n{id}\n{place}").into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn cipher(ids: &[(&str, u8)]) -> SecretsCipher {
        let keys: Vec<(String, [u8; KEY_BYTES])> = ids
            .iter()
            .map(|(id, b)| (id.to_string(), [*b; KEY_BYTES]))
            .collect();
        SecretsCipher::new(&keys).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_again_and_never_shows_the_value() {
        let c = cipher(&[("2026-11", 1)]);
        let sealed = c.seal("acme/oidc/client_secret", "s3cret-value");
        assert!(sealed.starts_with("cg1:2026-11:"), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        let opened = c.open("acme/oidc/client_secret", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "s3cret-value");
        // A fresh nonce each time: the same value seals differently.
        assert_ne!(sealed, c.seal("acme/oidc/client_secret", "s3cret-value"));
        assert!(!format!("{c:?}").contains('\u{1}'));
    }

    #[test]
    fn the_first_key_seals_and_every_listed_key_opens() {
        let old = cipher(&[("old", 1)]);
        let sealed_old = old.seal("p", "v1");
        let rotated = cipher(&[("new", 2), ("old", 1)]);
        let sealed_new = rotated.seal("p", "v2");
        assert!(sealed_new.starts_with("cg1:new:"), "{sealed_new}");
        assert_eq!(
            rotated.open("p", &sealed_old).unwrap().expose_secret(),
            "v1"
        );
        assert_eq!(
            rotated.open("p", &sealed_new).unwrap().expose_secret(),
            "v2"
        );
        assert_eq!(rotated.key_ids().collect::<Vec<_>>(), ["new", "old"]);
    }

    #[test]
    fn an_unlisted_key_id_is_named_and_never_opens() {
        let sealed = cipher(&[("gone", 1)]).seal("p", "v");
        assert_eq!(
            cipher(&[("new", 2)]).open("p", &sealed).unwrap_err(),
            OpenError::UnknownKey("gone".into())
        );
        // The same bytes under another id: the tag does not verify.
        let relabelled = sealed.replacen("cg1:gone:", "cg1:new:", 1);
        let other = cipher(&[("new", 1)]);
        assert_eq!(
            other.open("p", &relabelled).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn a_tampered_or_moved_value_does_not_open() {
        let c = cipher(&[("k", 7)]);
        let sealed = c.seal("acme/webhook/secret", "whsec_x");
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = B64URL.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{head}:{}", B64URL.encode(bytes));
        assert_eq!(
            c.open("acme/webhook/secret", &tampered).unwrap_err(),
            OpenError::Tampered
        );
        assert_eq!(
            c.open("globex/webhook/secret", &sealed).unwrap_err(),
            OpenError::Tampered
        );
        for bad in ["", "cg1:k", "cg2:k:AAAA", "cg1:k:!!", "cg1:k:AAAA"] {
            assert_eq!(c.open("p", bad).unwrap_err(), OpenError::Malformed, "{bad}");
        }
    }

    #[test]
    fn the_read_back_is_keyed_by_the_first_key_and_never_a_bare_hash() {
        let a = cipher(&[("a", 1), ("b", 2)]);
        let shown = a.read_back("hunter2");
        assert_eq!(shown.len(), 64);
        assert!(shown.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(shown, a.read_back("hunter2"));
        assert_ne!(shown, a.read_back("hunter3"));
        use sha2::{Digest, Sha256};
        assert_ne!(shown, hex::encode(Sha256::digest(b"hunter2")));
        // Another first key, another read-back.
        assert_ne!(shown, cipher(&[("b", 2), ("a", 1)]).read_back("hunter2"));
    }
}
