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

use super::challenge::{answerable, ChallengeMethod};
use super::interaction::InteractionRecord;
use super::otp::OtpCode;
use super::secrets::Pepper;
use crate::error::Error;
use crate::time::Timestamp;

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

/// The code of OTP challenge `challenge_id` for an agent
/// (`GET .../challenges/{cid}/code`), with its `expires_at`, while it can
/// still be answered (refused otherwise exactly as `challenge::attempt`
/// would). A PIN challenge, or an OTP not sealed for reveal, is `Forbidden`.
/// The caller still checks the team's `otp.show_to_agents` and the role.
pub fn reveal_code(
    rec: &InteractionRecord,
    challenge_id: Uuid,
    pepper: &Pepper,
    now: Timestamp,
) -> Result<(OtpCode, Timestamp), Error> {
    let c = answerable(rec, challenge_id, now)?;
    match (&c.method, &c.sealed_code) {
        (ChallengeMethod::Otp, Some(sealed)) => Ok((open(sealed, c.id, pepper)?, c.expires_at)),
        _ => Err(Error::Forbidden("this challenge's code cannot be revealed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::challenge::{open_new, Challenge, Delivery};
    use crate::domain::otp;
    use crate::domain::settings::{OtpSettings, PinSettings};

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

    #[test]
    fn agents_see_only_answerable_sealed_otps() {
        let p = pepper();
        let t = |s: i64| Timestamp::from_unix_seconds(1_800_000_000 + s);
        let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
        let o = OtpSettings::default();
        let code = otp::generate(6);
        let new = |seal: bool| {
            let id = Uuid::now_v7();
            Challenge::new_otp(id, Delivery::Agent, &code, &p, &o, seal, false, t(0)).unwrap()
        };
        let sealed = new(true);
        let id = sealed.id;
        open_new(&mut r, sealed);
        let (shown, exp) = reveal_code(&r, id, &p, t(1)).unwrap();
        assert_eq!((shown.expose(), exp), (code.expose(), t(180)));
        assert_eq!(
            reveal_code(&r, id, &p, t(180)).unwrap_err().code(),
            "challenge_expired"
        );
        assert_eq!(
            reveal_code(&r, Uuid::now_v7(), &p, t(1))
                .unwrap_err()
                .code(),
            "not_found"
        );
        let unsealed = new(false);
        let unsealed_id = unsealed.id;
        open_new(&mut r, unsealed);
        assert_eq!(
            reveal_code(&r, unsealed_id, &p, t(1)).unwrap_err().code(),
            "forbidden"
        );
        assert_eq!(
            reveal_code(&r, id, &p, t(1)).unwrap_err().code(),
            "challenge_expired"
        );
        let pin = Challenge::new_pin(Uuid::now_v7(), "00", &PinSettings::default(), t(0));
        let pin_id = pin.id;
        open_new(&mut r, pin);
        assert_eq!(
            reveal_code(&r, pin_id, &p, t(1)).unwrap_err().code(),
            "forbidden"
        );
    }
}
