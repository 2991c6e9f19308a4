//! The operator API's secrets keys (docs/operator-api.md#secrets): a team's
//! or a channel's secret as the store keeps it — AES-256-GCM under the first
//! key, a fresh random nonce per value, the key's id beside the ciphertext
//! (docs/decisions/0421-the-stored-form-of-a-secret.md), and a random salt
//! of its own beside them — and as a read gives it back: an HMAC-SHA-256
//! of the salt and the value under a key derived from the first key, the
//! place and the member's pointer, never the value nor a bare hash of it
//! (docs/decisions/0435-a-secret-reads-back-where-it-stands.md).
use std::collections::BTreeMap;
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

/// The version tag of a value sealed with a salt beside it and bound to
/// where it is sent (docs/decisions/0550-a-sealed-secret-is-bound-to-its-destination.md).
const VERSION: &str = "cg3";

/// The version tag of a value sealed with a salt beside it, before it was
/// bound to where it is sent: it still opens from the store, and an
/// import refuses it.
const SALTED: &str = "cg2";

/// The version tag of a value sealed before salts: it still opens, and
/// reads back without a salt until its next write.
const UNSALTED: &str = "cg1";

/// The bytes of a salt (128 bits).
pub const SALT_BYTES: usize = 16;

/// The label the read-back key is derived under from the first key.
const READ_BACK_LABEL: &[u8] = b"chatgate operator read-back v2";

/// The random salt kept beside one sealed secret: what its read-back is
/// made over with the value, so that a value written anew never reads
/// back as another one does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Salt([u8; SALT_BYTES]);

impl Salt {
    /// A fresh random salt.
    pub fn fresh() -> Salt {
        let mut bytes = [0u8; SALT_BYTES];
        rand::thread_rng().fill_bytes(&mut bytes);
        Salt(bytes)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(..)")
    }
}

/// A sealed value read apart: its version, its key's id, its salt (none
/// before salts) and its nonce ‖ ciphertext ‖ tag.
type Parts<'a> = (&'a str, &'a str, Option<Salt>, Vec<u8>);

/// The salts of a body's secrets, by the pointer of each: a secret with
/// none (a file's, or one sealed before salts) reads back without.
pub type Salts = BTreeMap<String, Salt>;

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
    #[error(
        "the sealed value does not verify (sealed for another place or destination, or altered)"
    )]
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
        let derive = HmacKey::new(first).mac().chain_update(READ_BACK_LABEL);
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
    /// team's id and the member's pointer, say) and the destination `to`
    /// (where its kind sends it, as the clear members beside it say), with
    /// `salt` beside it: `cg3:<key id>:<base64url of salt ‖ nonce ‖
    /// ciphertext ‖ tag>`, with a fresh random nonce; the salt and the
    /// destination are bound as the place is, so that a value whose
    /// destination was edited does not open.
    pub fn seal(&self, aad: &str, to: &str, value: &str, salt: Salt) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: value.as_bytes(),
            aad: &Self::aad(VERSION, &key.id, aad, Some(salt), Some(to)),
        };
        // Encrypting into a Vec fails only past GCM's 64 GiB message limit.
        let sealed = key
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut bytes = salt.0.to_vec();
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!("{VERSION}:{}:{}", key.id, B64URL.encode(bytes))
    }

    /// The value `sealed` holds, if a listed key sealed it for `aad` and
    /// the destination `to` (one sealed before destinations were bound:
    /// for `aad` alone, [`SecretsCipher::bound`]).
    pub fn open(&self, aad: &str, to: &str, sealed: &str) -> Result<SecretString, OpenError> {
        let (version, id, salt, rest) = Self::parts(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_string()))?;
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| OpenError::Malformed)?;
        let payload = Payload {
            msg: ciphertext,
            aad: &Self::aad(version, id, aad, salt, (version == VERSION).then_some(to)),
        };
        let plain = key
            .cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| OpenError::Tampered)?;
        let text = String::from_utf8(plain).map_err(|_| OpenError::Tampered)?;
        Ok(SecretString::from(text))
    }

    /// The salt kept beside `sealed` (`None`: sealed before salts, or not
    /// a sealed value). Read without opening: [`SecretsCipher::open`]
    /// checks it with the value.
    pub fn salt_of(sealed: &str) -> Option<Salt> {
        Self::parts(sealed).ok()?.2
    }

    /// Whether `sealed` is bound to its destination (sealed by this
    /// version): one sealed before opens from the store, never from an
    /// import.
    pub fn bound(sealed: &str) -> bool {
        Self::parts(sealed).is_ok_and(|(version, ..)| version == VERSION)
    }

    /// A sealed value's version, key id, salt and nonce ‖ ciphertext ‖
    /// tag.
    fn parts(sealed: &str) -> Result<Parts<'_>, OpenError> {
        let mut parts = sealed.splitn(3, ':');
        let (Some(version), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::Malformed);
        };
        let salted = match version {
            VERSION | SALTED => true,
            UNSALTED => false,
            _ => return Err(OpenError::Malformed),
        };
        let mut bytes = B64URL.decode(body).map_err(|_| OpenError::Malformed)?;
        let salt_len = if salted { SALT_BYTES } else { 0 };
        if bytes.len() < salt_len + NONCE_BYTES + 16 {
            return Err(OpenError::Malformed);
        }
        let rest = bytes.split_off(salt_len);
        let salt = match salted {
            true => Some(Salt(bytes.try_into().map_err(|_| OpenError::Malformed)?)),
            false => None,
        };
        Ok((version, id, salt, rest))
    }

    /// What a read shows of the secret `value` kept at `pointer` of
    /// `place` (a team's id, a channel's place) with `salt` beside it:
    /// lowercase hex of HMAC-SHA-256 over the salt and the value, under a
    /// key derived from the read-back key, the place and the pointer. The
    /// same value elsewhere, or salted anew, reads back otherwise. Without
    /// a salt (a file's secret, or one sealed before salts) the value is
    /// read back alone, still under its place's and pointer's key.
    pub fn read_back(
        &self,
        place: &str,
        pointer: &str,
        salt: Option<&Salt>,
        value: &str,
    ) -> String {
        let key = (self.read_back.mac())
            .chain_update((place.len() as u64).to_be_bytes())
            .chain_update(place.as_bytes())
            .chain_update(pointer.as_bytes())
            .finalize()
            .into_bytes();
        let mac = HmacKey::new(&key).mac();
        let mac = match salt {
            Some(s) => mac.chain_update([1u8]).chain_update(s.0),
            None => mac.chain_update([0u8]),
        };
        hex::encode(mac.chain_update(value.as_bytes()).finalize().into_bytes())
    }

    /// The associated data of a sealed value: the version, the key id, the
    /// place, the salt and the destination, so a value moved to another
    /// place, relabelled with another key id, given another salt or sent
    /// elsewhere does not open.
    fn aad(version: &str, id: &str, place: &str, salt: Option<Salt>, to: Option<&str>) -> Vec<u8> {
        let mut aad = format!("{version}\n{id}\n{place}").into_bytes();
        if let Some(salt) = salt {
            aad.push(b'\n');
            aad.extend_from_slice(&salt.0);
        }
        if let Some(to) = to {
            aad.extend_from_slice(&(to.len() as u64).to_be_bytes());
            aad.extend_from_slice(to.as_bytes());
        }
        aad
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
        let sealed = c.seal("acme/oidc/client_secret", "", "s3cret-value", Salt::fresh());
        assert!(sealed.starts_with("cg3:2026-11:"), "{sealed}");
        assert!(!sealed.contains("s3cret"));
        let opened = c.open("acme/oidc/client_secret", "", &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "s3cret-value");
        // A fresh nonce each time: the same value seals differently.
        assert_ne!(
            sealed,
            c.seal("acme/oidc/client_secret", "", "s3cret-value", Salt::fresh())
        );
        assert!(!format!("{c:?}").contains('\u{1}'));
    }

    #[test]
    fn the_first_key_seals_and_every_listed_key_opens() {
        let old = cipher(&[("old", 1)]);
        let sealed_old = old.seal("p", "", "v1", Salt::fresh());
        let rotated = cipher(&[("new", 2), ("old", 1)]);
        let sealed_new = rotated.seal("p", "", "v2", Salt::fresh());
        assert!(sealed_new.starts_with("cg3:new:"), "{sealed_new}");
        assert_eq!(
            rotated.open("p", "", &sealed_old).unwrap().expose_secret(),
            "v1"
        );
        assert_eq!(
            rotated.open("p", "", &sealed_new).unwrap().expose_secret(),
            "v2"
        );
        assert_eq!(rotated.key_ids().collect::<Vec<_>>(), ["new", "old"]);
    }

    #[test]
    fn an_unlisted_key_id_is_named_and_never_opens() {
        let sealed = cipher(&[("gone", 1)]).seal("p", "", "v", Salt::fresh());
        assert_eq!(
            cipher(&[("new", 2)]).open("p", "", &sealed).unwrap_err(),
            OpenError::UnknownKey("gone".into())
        );
        // The same bytes under another id: the tag does not verify.
        let relabelled = sealed.replacen("cg3:gone:", "cg3:new:", 1);
        let other = cipher(&[("new", 1)]);
        assert_eq!(
            other.open("p", "", &relabelled).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn a_tampered_or_moved_value_does_not_open() {
        let c = cipher(&[("k", 7)]);
        let sealed = c.seal("acme/webhook/secret", "", "whsec_x", Salt::fresh());
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = B64URL.decode(body).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{head}:{}", B64URL.encode(bytes));
        assert_eq!(
            c.open("acme/webhook/secret", "", &tampered).unwrap_err(),
            OpenError::Tampered
        );
        assert_eq!(
            c.open("globex/webhook/secret", "", &sealed).unwrap_err(),
            OpenError::Tampered
        );
        for bad in [
            "",
            "cg1:k",
            "cg3:k:AAAA",
            "cg1:k:!!",
            "cg1:k:AAAA",
            "cg2:k:AAAA",
            "cg3:k:AAAA",
        ] {
            assert_eq!(
                c.open("p", "", bad).unwrap_err(),
                OpenError::Malformed,
                "{bad}"
            );
        }
    }

    /// `value` sealed as a gateway did before salts: `cg1`, no salt.
    fn sealed_unsalted(c: &SecretsCipher, aad: &str, value: &str) -> String {
        let key = &c.keys[0];
        let nonce = [9u8; NONCE_BYTES];
        let payload = Payload {
            msg: value.as_bytes(),
            aad: &SecretsCipher::aad(UNSALTED, &key.id, aad, None, None),
        };
        let mut bytes = nonce.to_vec();
        bytes.extend(key.cipher.encrypt(&Nonce::from(nonce), payload).unwrap());
        format!("cg1:{}:{}", key.id, B64URL.encode(bytes))
    }

    #[test]
    fn a_salt_is_kept_beside_its_value_bound_to_it_and_one_sealed_before_salts_still_opens() {
        let c = cipher(&[("k", 4)]);
        let salt = Salt::fresh();
        let sealed = c.seal("acme/webhook/secret", "", "whsec_x", salt);
        assert_eq!(SecretsCipher::salt_of(&sealed), Some(salt));
        // Another salt in its place: the value does not open.
        let (head, body) = sealed.rsplit_once(':').unwrap();
        let mut bytes = B64URL.decode(body).unwrap();
        bytes[0] ^= 1;
        let resalted = format!("{head}:{}", B64URL.encode(bytes));
        assert_eq!(
            c.open("acme/webhook/secret", "", &resalted).unwrap_err(),
            OpenError::Tampered
        );
        // Sealed before salts: it opens, and has no salt.
        let old = sealed_unsalted(&c, "acme/webhook/secret", "whsec_old");
        assert_eq!(
            c.open("acme/webhook/secret", "", &old)
                .unwrap()
                .expose_secret(),
            "whsec_old"
        );
        assert_eq!(SecretsCipher::salt_of(&old), None);
        assert_eq!(
            c.open("globex/webhook/secret", "", &old).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn a_read_back_is_of_its_place_its_pointer_and_its_salt() {
        let c = cipher(&[("a", 1)]);
        let (s1, s2) = (Salt::fresh(), Salt::fresh());
        let shown = c.read_back("acme", "/webhook/secret", Some(&s1), "hunter2");
        assert_eq!(shown.len(), 64);
        assert!(shown.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            shown,
            c.read_back("acme", "/webhook/secret", Some(&s1), "hunter2")
        );
        for other in [
            c.read_back("globex", "/webhook/secret", Some(&s1), "hunter2"),
            c.read_back("acme", "/oidc/client_secret", Some(&s1), "hunter2"),
            c.read_back("acme", "/webhook/secret", Some(&s2), "hunter2"),
            c.read_back("acme", "/webhook/secret", None, "hunter2"),
            c.read_back("acme", "/webhook/secret", Some(&s1), "hunter3"),
            // The place and the pointer are not one string run together.
            c.read_back("acme/webhook", "/secret", Some(&s1), "hunter2"),
        ] {
            assert_ne!(shown, other);
        }
        use sha2::{Digest, Sha256};
        assert_ne!(shown, hex::encode(Sha256::digest(b"hunter2")));
        // Another first key, another read-back.
        let b = cipher(&[("b", 2), ("a", 1)]);
        assert_ne!(
            shown,
            b.read_back("acme", "/webhook/secret", Some(&s1), "hunter2")
        );
    }
}

/// Destinations bound: a value opens only for the destination it was
/// sealed for; one sealed before (`cg2`, `cg1`) opens for any, and is not
/// [`SecretsCipher::bound`].
#[cfg(test)]
mod destinations {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_value_sealed_for_a_destination_opens_only_for_it() {
        let c = SecretsCipher::new(&[("k".to_string(), [5u8; KEY_BYTES])]).unwrap();
        let to = r#"["twilio",["https://api.twilio.com"]]"#;
        let sealed = c.seal("~channel:sms/auth_token", to, "tok", Salt::fresh());
        assert!(SecretsCipher::bound(&sealed));
        let opened = c.open("~channel:sms/auth_token", to, &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "tok");
        let elsewhere = r#"["twilio",["https://evil.example"]]"#;
        assert_eq!(
            c.open("~channel:sms/auth_token", elsewhere, &sealed)
                .unwrap_err(),
            OpenError::Tampered
        );
        // Sealed before destinations were bound: it opens, and says so.
        let key = &c.keys[0];
        let (salt, nonce) = (Salt::fresh(), [1u8; NONCE_BYTES]);
        let payload = Payload {
            msg: b"old",
            aad: &SecretsCipher::aad(SALTED, &key.id, "p", Some(salt), None),
        };
        let mut bytes = salt.0.to_vec();
        bytes.extend_from_slice(&nonce);
        bytes.extend(key.cipher.encrypt(&Nonce::from(nonce), payload).unwrap());
        let old = format!("cg2:k:{}", B64URL.encode(bytes));
        assert_eq!(c.open("p", elsewhere, &old).unwrap().expose_secret(), "old");
        assert!(!SecretsCipher::bound(&old));
        assert_eq!(SecretsCipher::salt_of(&old), Some(salt));
    }
}
