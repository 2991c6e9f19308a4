//! The one way an OTP is kept recoverable: sealed for agent reveal
//! (docs/api.md#get-v1interactionsidchallengescidcode, docs/operations.md#security) with ChaCha20-Poly1305 under a key derived from the
//! pepper, bound to its challenge id.
//!
//! Stored form: base64(12-byte nonce ‖ ciphertext ‖ 16-byte tag), associated data =
//! the 16 raw bytes of the challenge id, so a sealed code moved to another
//! challenge, or altered in the store, does not open.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::zeroize::Zeroizing;
use uuid::Uuid;

use super::otp::OtpCode;
use super::secrets::Pepper;
use crate::error::Error;

/// `Pepper::derive_key` purpose of the reveal key.
pub const KEY_PURPOSE: &str = "otp-reveal";

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

fn cipher(pepper: &Pepper) -> ChaCha20Poly1305 {
    let key = Zeroizing::new(pepper.derive_key(KEY_PURPOSE));
    ChaCha20Poly1305::new(&Key::from(*key))
}

/// Seals `code` for challenge `challenge_id`. Fails (an internal error) only if the
/// AEAD refuses, which it does not for inputs this small.
pub fn seal(code: &OtpCode, challenge_id: Uuid, pepper: &Pepper) -> Result<String, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let payload = Payload {
        msg: code.expose().as_bytes(),
        aad: challenge_id.as_bytes(),
    };
    let ciphertext = cipher(pepper)
        .encrypt(&Nonce::from(nonce), payload)
        .map_err(|_| Error::internal("a code could not be sealed"))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(B64.encode(out))
}

/// Opens a code sealed by [`seal`] for the same challenge. Anything else (not
/// base64, too short, tampered, another challenge, another pepper) is
/// An internal error: a sealed code is written only by us, so failure means a
/// damaged store or a changed pepper, never a client mistake.
pub fn open(sealed: &str, challenge_id: Uuid, pepper: &Pepper) -> Result<OtpCode, Error> {
    let damaged = || Error::internal("a sealed code could not be opened");
    let bytes = B64.decode(sealed).map_err(|_| damaged())?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(damaged());
    }
    let (nonce, ciphertext) = bytes.split_first_chunk::<NONCE_LEN>().ok_or_else(damaged)?;
    let payload = Payload {
        msg: ciphertext,
        aad: challenge_id.as_bytes(),
    };
    let plain = Zeroizing::new(
        cipher(pepper)
            .decrypt(&Nonce::from(*nonce), payload)
            .map_err(|_| damaged())?,
    );
    let digits = std::str::from_utf8(&plain).map_err(|_| damaged())?;
    OtpCode::from_digits(digits).ok_or_else(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::otp;

    fn pepper() -> Pepper {
        Pepper::new("test-pepper")
    }

    #[test]
    fn round_trip() {
        let (p, id) = (pepper(), Uuid::now_v7());
        for len in otp::MIN_LENGTH..=otp::MAX_LENGTH {
            let code = otp::generate(len);
            let sealed = seal(&code, id, &p).unwrap();
            assert_eq!(open(&sealed, id, &p).unwrap().expose(), code.expose());
        }
    }

    #[test]
    fn another_challenge_or_pepper_does_not_open() {
        let (p, id) = (pepper(), Uuid::now_v7());
        let sealed = seal(&otp::generate(6), id, &p).unwrap();
        assert!(open(&sealed, Uuid::now_v7(), &p).is_err());
        assert!(open(&sealed, id, &Pepper::new("other-pepper")).is_err());
    }

    #[test]
    fn tampered_or_malformed_does_not_open() {
        let (p, id) = (pepper(), Uuid::now_v7());
        let sealed = seal(&otp::generate(6), id, &p).unwrap();
        let raw = B64.decode(&sealed).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            assert!(
                open(&B64.encode(&t), id, &p).is_err(),
                "flip at byte {i} opened"
            );
        }
        assert!(open(&B64.encode(&raw[..raw.len() - 1]), id, &p).is_err());
        assert!(open(&B64.encode(&raw[..NONCE_LEN + TAG_LEN - 1]), id, &p).is_err());
        assert!(open("", id, &p).is_err());
        assert!(open("not base64!", id, &p).is_err());
    }

    #[test]
    fn sealed_form_hides_the_code_and_is_fresh_each_time() {
        let (p, id) = (pepper(), Uuid::now_v7());
        let code = otp::generate(10);
        let a = seal(&code, id, &p).unwrap();
        let b = seal(&code, id, &p).unwrap();
        assert!(!a.contains(code.expose()));
        assert!(!B64
            .decode(&a)
            .unwrap()
            .windows(10)
            .any(|w| w == code.expose().as_bytes()));
        assert_ne!(a, b, "nonce must be random");
        assert_eq!(B64.decode(&a).unwrap().len(), NONCE_LEN + 10 + TAG_LEN);
    }
}
