//! Typed secrets: security keys (`whsec_…`), API key hashes, the pepper
//! that keys the hashes of codes and PINs at rest, and [`Secret`], the
//! type of every secret a configuration's channel, team or provider keys
//! hold. None of them prints its content in `Debug`.
use std::fmt;
use std::marker::PhantomData;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The shortest HMAC key we accept, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// Secret bytes (an HMAC key). `Debug` shows only the length.
#[derive(Clone)]
pub struct SecretBytes(SecretSlice<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(SecretSlice::from(bytes))
    }
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([redacted; {}])", self.expose().len())
    }
}

/// An HMAC-SHA256 key made ready once: the MAC's state after the key (its
/// two padded blocks hashed), copied for each message, so that a message
/// costs only the hashing of its own bytes. Kept for as long as the key
/// is. As secret as the key: `Debug` shows nothing of it.
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    pub fn new(key: &[u8]) -> Self {
        HmacKey(Hmac::new(&block_key(key)))
    }

    /// A fresh MAC under this key.
    pub fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }
}

/// `key` as HMAC-SHA256 takes it, one block of 64 bytes (RFC 2104,
/// section 2): a longer key hashed first, a shorter one padded with
/// zeros. Keyed with a whole block, HMAC has no failure to handle.
fn block_key(key: &[u8]) -> hmac::digest::Key<Hmac<Sha256>> {
    let mut block = hmac::digest::Key::<Hmac<Sha256>>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    block
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

/// One of a team's security keys: it signs login tokens (the primary one)
/// and verifies the team's pre-chat assertions (any of them, by `kid`).
#[derive(Debug)]
pub struct SecurityKey {
    pub kid: String,
    /// The decoded HMAC key (at least 32 bytes).
    pub secret: SecretBytes,
    /// The same key, ready to check tokens and signed requests.
    pub hmac: HmacKey,
    pub primary: bool,
}

impl SecurityKey {
    pub fn new(kid: String, secret: SecretBytes, primary: bool) -> Self {
        let hmac = HmacKey::new(secret.expose());
        SecurityKey {
            kid,
            secret,
            hmac,
            primary,
        }
    }
}

/// A team as the token rules see it: its id and its security keys by
/// `kid` (a configured team is one).
pub trait TeamKeys {
    fn team_id(&self) -> &str;
    fn key_by_kid(&self, kid: &str) -> Option<&SecurityKey>;
}

/// The bytes of a `whsec_…` secret, of any length (the signing tool also
/// serves the Standard Webhooks test vectors). Errors never repeat it.
pub fn decode_whsec(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret
        .trim()
        .strip_prefix("whsec_")
        .ok_or("must start with \"whsec_\"")?;
    let key = B64
        .decode(b64)
        .map_err(|_| "is not valid base64 after \"whsec_\"")?;
    if key.is_empty() {
        return Err("is empty after \"whsec_\"".into());
    }
    Ok(key)
}

/// Parses `whsec_` + base64 of at least 32 bytes. The error never repeats the input.
pub fn parse_whsec(s: &str) -> Result<SecretBytes, String> {
    let b64 = s
        .strip_prefix("whsec_")
        .ok_or_else(|| "must start with \"whsec_\"".to_string())?;
    let bytes = B64
        .decode(b64.trim())
        .map_err(|_| "is not valid base64 after \"whsec_\"".to_string())?;
    if bytes.len() < MIN_KEY_BYTES {
        return Err(format!(
            "decodes to {} bytes; at least {MIN_KEY_BYTES} are required",
            bytes.len()
        ));
    }
    Ok(SecretBytes::new(bytes))
}

/// A fresh `whsec_` secret of 32 random bytes.
pub fn generate_whsec() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("whsec_{}", B64.encode(bytes))
}

/// A fresh API key: `cg_` + 32 random bytes, URL-safe base64.
pub fn generate_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "cg_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// SHA-256 of an API key, as configured (`sha256 = "…"`, hex).
#[derive(Clone, Copy)]
pub struct ApiKeyHash([u8; 32]);

impl ApiKeyHash {
    pub fn of_key(key: &str) -> Self {
        ApiKeyHash(Sha256::digest(key.as_bytes()).into())
    }
    /// 64 hex digits; the error says what was wrong and how to make one
    /// (it never repeats the value).
    pub fn from_hex(hex_str: &str) -> Result<Self, String> {
        const HOW: &str = "`chatgate keygen api-key` prints a key and its line";
        let text = hex_str.trim();
        let digits = text.chars().count();
        if digits != 64 {
            return Err(format!(
                "must be 64 hex digits (the SHA-256 of the key), not {digits}; {HOW}"
            ));
        }
        let bytes = hex::decode(text).map_err(|_| {
            format!("must be 64 hex digits (0-9, a-f), and has another character; {HOW}")
        })?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("must be 64 hex digits (the SHA-256 of the key); {HOW}"))?;
        Ok(ApiKeyHash(arr))
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    /// The digest, to look a key up by (a digest of a high-entropy key,
    /// docs/decisions/0490-api-keys-found-by-their-digest.md); an entry
    /// found is compared with [`ApiKeyHash::matches`].
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
    /// Constant-time equality.
    pub fn matches(&self, other: &ApiKeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeyHash(..)")
    }
}

/// The server pepper: keys the hashes of codes and PINs at rest. Held
/// made ready once ([`HmacKey`]), so that each hash starts from a copy of
/// the keyed state: a code's check, a cursor's mark and every other keyed
/// hash cost two blocks of SHA-256 fewer than keying again.
pub struct Pepper(HmacKey);

impl Pepper {
    pub fn new(secret: &str) -> Self {
        Pepper(HmacKey::new(secret.as_bytes()))
    }

    /// HMAC-SHA256(pepper, purpose ‖ 0x00 ‖ input), hex. `purpose` separates
    /// domains (e.g. "otp", "pin") so one hash can never stand for another.
    pub fn keyed_hash(&self, purpose: &str, input: &[u8]) -> String {
        hex::encode(self.mac(purpose, input))
    }

    /// [`Pepper::keyed_hash`] as its 32 bytes, for a caller that keeps a
    /// part of it or writes it in a form of its own.
    pub fn keyed_bytes(&self, purpose: &str, input: &[u8]) -> [u8; 32] {
        self.mac(purpose, input)
    }

    /// Constant-time check of `input` against a hash made by [`Pepper::keyed_hash`].
    pub fn verify(&self, purpose: &str, input: &[u8], expected_hex: &str) -> bool {
        let Ok(expected) = hex::decode(expected_hex) else {
            return false;
        };
        let actual = self.mac(purpose, input);
        actual.as_slice().ct_eq(expected.as_slice()).into()
    }

    /// 32 bytes derived from the pepper for `purpose` (e.g. an AEAD key).
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        self.mac("derive", purpose.as_bytes())
    }

    fn mac(&self, purpose: &str, input: &[u8]) -> [u8; 32] {
        let mut mac = self.0.mac();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(input);
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(..)")
    }
}

/// A secret key of a channel file, a team file or body, or a provider's
/// keys. The configuration's loader hands a value over only to a field of
/// this type (see [`SECRET_FIELD`]), and only where it may be written
/// (docs/decisions/0450-team-secrets-are-typed.md): in a channel file as
/// one `${VARIABLE}` reference; in a team's file or body under a name the
/// operator API seals and reads back as `{"hmac"}`. So a channel kind or a
/// provider cannot take a secret in clear by naming its key differently,
/// and nothing else reads one at all. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct Secret<T = SecretString>(T);

impl<T> Secret<T> {
    pub fn get(&self) -> &T {
        &self.0
    }

    /// What it holds, for the checked form that keeps it.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The name under which a [`Secret`] asks its deserializer for its value
/// (`deserialize_newtype_struct`). A deserializer that checked how the file
/// wrote the value answers with a one-entry map of this name to the text;
/// any other answer is refused, so a secret never arrives unchecked.
pub const SECRET_FIELD: &str = "$chatgate::channels::Secret";

/// Why a [`Secret`] read by any deserializer but the loader's is refused
/// (the value is never in it).
pub const UNCHECKED_SECRET: &str =
    "a secret is taken only as the configuration's loader hands it over";

/// What a [`Secret`] holds, made from the text the loader handed over.
pub trait SecretText: Sized {
    fn from_text(text: String) -> Result<Self, String>;
}

impl SecretText for SecretString {
    fn from_text(text: String) -> Result<Self, String> {
        Ok(SecretString::from(text))
    }
}

/// A Standard Webhooks key (`whsec_` + base64).
impl SecretText for SecretBytes {
    fn from_text(text: String) -> Result<Self, String> {
        parse_whsec(&text)
    }
}

impl<'de, T: SecretText> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Checked<T>(PhantomData<T>);
        impl<'de, T: SecretText> Visitor<'de> for Checked<T> {
            type Value = Secret<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a secret the configuration's loader checked")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret<T>, A::Error> {
                match map.next_entry::<String, String>()? {
                    Some((name, text)) if name == SECRET_FIELD => {
                        T::from_text(text).map(Secret).map_err(de::Error::custom)
                    }
                    _ => Err(de::Error::custom(UNCHECKED_SECRET)),
                }
            }
            // Any other deserializer: refused without its value (serde's
            // own "invalid type" would quote a string).
            fn visit_newtype_struct<E: Deserializer<'de>>(
                self,
                _: E,
            ) -> Result<Secret<T>, E::Error> {
                Err(de::Error::custom(UNCHECKED_SECRET))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Secret<T>, E> {
                Err(E::custom(UNCHECKED_SECRET))
            }
        }
        d.deserialize_newtype_struct(SECRET_FIELD, Checked(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keyed once, the pepper hashes as HMAC keyed at each hash does, for
    /// a key shorter than the block, one block long, and longer (hashed).
    #[test]
    fn the_pepper_keyed_once_hashes_as_hmac_keyed_each_time() {
        for len in [16, 63, 64, 65, 200] {
            let secret: String = "k".repeat(len - 1) + "!";
            let mut fresh = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
            fresh.update(b"otp\x00123456");
            let expected = hex::encode(fresh.finalize().into_bytes());
            let pepper = Pepper::new(&secret);
            assert_eq!(
                pepper.keyed_hash("otp", b"123456"),
                expected,
                "key of {len} bytes"
            );
            assert!(pepper.verify("otp", b"123456", &expected));
            assert!(!Pepper::new(&"k".repeat(len)).verify("otp", b"123456", &expected));
        }
    }

    /// Only the loader's answer hands a `Secret` its value; any other
    /// deserializer is refused, and the value is never in the error.
    #[test]
    fn a_secret_is_taken_only_from_the_loader_s_answer() {
        let e = Secret::<SecretString>::deserialize(toml::Value::from("k-8812771")).unwrap_err();
        assert!(e.to_string().contains(UNCHECKED_SECRET), "{e}");
        let e = serde_json::from_str::<Secret>("\"k-8812771\"").unwrap_err();
        assert!(e.to_string().starts_with(UNCHECKED_SECRET), "{e}");
        let e =
            toml::from_str::<std::collections::BTreeMap<String, Secret>>("api_key = \"k-8812771\"")
                .unwrap_err();
        assert_eq!(e.message(), UNCHECKED_SECRET);
        let map = |name: &str| {
            let entry = [(name.to_string(), "k-8812771".to_string())];
            de::value::MapDeserializer::<_, de::value::Error>::new(entry.into_iter())
        };
        let e = Secret::<SecretString>::deserialize(map("secret")).unwrap_err();
        assert_eq!(e.to_string(), UNCHECKED_SECRET);
        let s = Secret::<SecretString>::deserialize(map(SECRET_FIELD)).unwrap();
        assert_eq!(s.get().expose_secret(), "k-8812771");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.into_inner().expose_secret(), "k-8812771");
    }

    #[test]
    fn whsec_needs_prefix_base64_and_32_bytes() {
        assert!(parse_whsec(&generate_whsec()).is_ok());
        assert!(parse_whsec("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_err());
        let short = format!("whsec_{}", B64.encode([7u8; 31]));
        let err = parse_whsec(&short).unwrap_err();
        assert!(err.contains("31 bytes"), "{err}");
        assert!(parse_whsec("whsec_not*base64").is_err());
    }

    #[test]
    fn api_key_hash_round_trip_and_compare() {
        let key = generate_api_key();
        let h = ApiKeyHash::of_key(&key);
        let parsed = ApiKeyHash::from_hex(&h.to_hex()).unwrap();
        assert!(h.matches(&parsed));
        assert!(!h.matches(&ApiKeyHash::of_key("other")));
        assert!(ApiKeyHash::from_hex("abcd").is_err());
    }

    #[test]
    fn keyed_hash_is_domain_separated_and_verifies() {
        let p = Pepper::new("pepper-of-at-least-some-length");
        let h = p.keyed_hash("otp", b"123456");
        assert!(p.verify("otp", b"123456", &h));
        assert!(!p.verify("otp", b"123457", &h));
        assert!(!p.verify("pin", b"123456", &h));
        assert!(!h.contains("123456"));
        assert!(!format!("{p:?}").contains("pepper"));
    }
}
