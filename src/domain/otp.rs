//! One-time codes (docs/api.md#challenges-otp-and-session-pin): drawn from the OS CSPRNG uniformly over all
//! `length`-digit strings, held as a secret, and hashed at rest bound to the
//! challenge they belong to.
use std::fmt::{self, Write as _};

use rand::rngs::OsRng;
use rand::Rng;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::secrets::Pepper;

/// Shortest and longest OTP the settings allow (`otp.length`).
pub const MIN_LENGTH: u32 = 4;
pub const MAX_LENGTH: u32 = 10;

/// `Pepper` purpose of OTP hashes. The hashed input is the 16 raw bytes of
/// the challenge id followed by the ASCII digits, so a hash only ever stands
/// for one code *of one challenge*: the same code in two challenges hashes
/// differently, and a hash copied to another challenge never verifies.
pub const HASH_PURPOSE: &str = "otp";

/// An OTP. `Debug` never shows the digits; [`OtpCode::expose`] is the only
/// way to read them (to fill the `#PIN#` template or answer a reveal).
#[derive(Clone)]
pub struct OtpCode(SecretString);

impl OtpCode {
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Accepts `MIN_LENGTH..=MAX_LENGTH` ASCII digits (a code opened from its
    /// sealed form).
    pub(crate) fn from_digits(s: &str) -> Option<OtpCode> {
        let len_ok = (MIN_LENGTH as usize..=MAX_LENGTH as usize).contains(&s.len());
        (len_ok && s.bytes().all(|b| b.is_ascii_digit())).then(|| OtpCode(SecretString::from(s)))
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl fmt::Debug for OtpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OtpCode([redacted; {} digits])", self.len())
    }
}

/// A fresh code of `length` digits (configuration keeps it in 4..=10; a value
/// outside is clamped into that range rather than trusted).
///
/// `gen_range` over `0..10^length` is rejection-sampled by `rand`, so every
/// `length`-digit string (leading zeros included) is equally likely: no
/// modulo bias.
pub fn generate(length: u32) -> OtpCode {
    let length = length.clamp(MIN_LENGTH, MAX_LENGTH);
    let width = length as usize;
    let n: u64 = OsRng.gen_range(0..10u64.pow(length));
    // Exact capacity: the secret is never copied into a larger buffer that
    // would be freed without being wiped.
    let mut digits = String::with_capacity(width);
    // Writing into a String cannot fail.
    let _ = write!(digits, "{n:0width$}");
    OtpCode(SecretString::from(digits))
}

/// A fresh binding code for challenge `challenge_id` (`length` digits,
/// never `typed`, the code it follows), with its keyed hash ([`hash`]),
/// the only form kept: what a proof made on a page shows, to be typed
/// into the chat (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
pub fn binding(
    pepper: &Pepper,
    challenge_id: Uuid,
    length: u32,
    typed: Option<&str>,
) -> (OtpCode, String) {
    let mut code = generate(length);
    while typed.is_some_and(|t| t == code.expose()) {
        code = generate(length);
    }
    let hash = hash(pepper, challenge_id, &code);
    (code, hash)
}

/// `Pepper` purpose of binding codes (see [`derive`]).
pub const DERIVE_PURPOSE: &str = "binding-code";

/// The code of challenge `challenge_id`, derived rather than drawn: the
/// first 16 bytes of the pepper's keyed hash (HMAC-SHA256, its own purpose)
/// of the challenge id, reduced to `length` digits (a bias below 10^10 / 2^128).
/// A login binding's code is made so: the store keeps only its keyed hash,
/// yet the login page's retry is answered the very code it was shown first.
/// Without the pepper it is as unpredictable as a drawn one; the challenge
/// id alone (which bots and agents see) tells nothing about it.
pub fn derive(pepper: &Pepper, challenge_id: Uuid, length: u32) -> OtpCode {
    derive_from(pepper, challenge_id.as_bytes(), length)
}

/// The binding code a verified wallet answer's `response_code` stands
/// for, derived as [`derive`] derives a login's (the input told apart
/// from any challenge id): only the `redirect_uri` that carries the
/// `response_code` can show it, and the store keeps its keyed hash alone
/// (docs/wallet.md#the-code-typed-into-the-chat).
pub fn derive_for_response(pepper: &Pepper, response_code: &str, length: u32) -> OtpCode {
    let input = Zeroizing::new([b"wallet-response-code\0", response_code.as_bytes()].concat());
    derive_from(pepper, &input, length)
}

fn derive_from(pepper: &Pepper, input: &[u8], length: u32) -> OtpCode {
    let length = length.clamp(MIN_LENGTH, MAX_LENGTH);
    let width = length as usize;
    let hex = Zeroizing::new(pepper.keyed_hash(DERIVE_PURPOSE, input));
    let n = hex
        .get(..32)
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .unwrap_or(0)
        % 10u128.pow(length);
    // Exact capacity, as in [`generate`]; writing into a String cannot fail.
    let mut digits = String::with_capacity(width);
    let _ = write!(digits, "{n:0width$}");
    OtpCode(SecretString::from(digits))
}

fn hash_input(challenge_id: Uuid, code: &str) -> Zeroizing<Vec<u8>> {
    let mut input = Zeroizing::new(Vec::with_capacity(16 + code.len()));
    input.extend_from_slice(challenge_id.as_bytes());
    input.extend_from_slice(code.as_bytes());
    input
}

/// Keyed hash of `code` for challenge `challenge_id` (see [`HASH_PURPOSE`]).
pub fn hash(pepper: &Pepper, challenge_id: Uuid, code: &OtpCode) -> String {
    pepper.keyed_hash(HASH_PURPOSE, &hash_input(challenge_id, code.expose()))
}

/// Constant-time check of a submitted `code` against [`hash`].
pub fn verify(pepper: &Pepper, challenge_id: Uuid, code: &str, expected_hex: &str) -> bool {
    pepper.verify(HASH_PURPOSE, &hash_input(challenge_id, code), expected_hex)
}

#[cfg(test)]
mod tests {
    use rand::RngCore;

    use super::*;

    const DRAWS: usize = 100_000;
    /// Chi-square critical value, 9 degrees of freedom, p = 0.999.
    const CRITICAL_9DF_999: f64 = 27.88;

    fn chi_square(counts: &[u64; 10], total: u64) -> f64 {
        let expected = total as f64 / 10.0;
        counts
            .iter()
            .map(|&o| (o as f64 - expected).powi(2) / expected)
            .sum()
    }

    /// Chi-square statistic of each digit position over `DRAWS` codes.
    fn statistics(len: usize, mut draw: impl FnMut() -> String) -> Vec<f64> {
        let mut counts = vec![[0u64; 10]; len];
        for _ in 0..DRAWS {
            let code = draw();
            assert_eq!(code.len(), len);
            for (pos, b) in code.bytes().enumerate() {
                counts[pos][usize::from(b - b'0')] += 1;
            }
        }
        counts.iter().map(|c| chi_square(c, DRAWS as u64)).collect()
    }

    /// Positions whose statistic exceeds the 0.999 critical value. With 10
    /// positions an unbiased generator trips one about 1% of the time, so a
    /// failing batch is re-drawn once: a real bias fails both batches, chance
    /// fails both with probability about 1e-4.
    fn biased_positions(len: usize, mut draw: impl FnMut() -> String) -> Vec<(usize, f64)> {
        let over = |stats: Vec<f64>| -> Vec<(usize, f64)> {
            stats
                .into_iter()
                .enumerate()
                .filter(|(_, x)| *x > CRITICAL_9DF_999)
                .collect()
        };
        let first = over(statistics(len, &mut draw));
        if first.is_empty() {
            return first;
        }
        over(statistics(len, &mut draw))
    }

    #[test]
    fn every_length_gives_that_many_digits() {
        for len in MIN_LENGTH..=MAX_LENGTH {
            for _ in 0..200 {
                let c = generate(len);
                assert_eq!(c.len(), len as usize);
                assert!(c.expose().bytes().all(|b| b.is_ascii_digit()));
            }
        }
        assert_eq!(generate(2).len(), 4);
        assert_eq!(generate(99).len(), 10);
    }

    #[test]
    fn each_digit_position_is_uniform() {
        let bad = biased_positions(10, || generate(10).expose().to_string());
        assert!(
            bad.is_empty(),
            "non-uniform positions (position, chi2): {bad:?}"
        );
    }

    #[test]
    fn the_uniformity_test_catches_modulo_bias() {
        // u32 % 4e9 never yields a leading digit of 4..=9, and doubles 0..2.9e8.
        let biased = || format!("{:010}", OsRng.next_u32() % 4_000_000_000);
        let bad = biased_positions(10, biased);
        assert!(
            bad.iter().any(|(pos, _)| *pos == 0),
            "bias not detected: {bad:?}"
        );
    }

    #[test]
    fn debug_is_redacted_and_hash_is_bound_to_the_challenge() {
        let code = OtpCode::from_digits("4829137650").unwrap();
        assert_eq!(format!("{code:?}"), "OtpCode([redacted; 10 digits])");
        let p = Pepper::new("test-pepper");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let h = hash(&p, a, &code);
        assert!(!h.contains(code.expose()));
        assert!(verify(&p, a, code.expose(), &h));
        assert!(!verify(&p, b, code.expose(), &h));
        assert!(!verify(&p, a, "4829137651", &h));
        assert_ne!(h, hash(&p, b, &code));
        assert!(OtpCode::from_digits("123").is_none());
        assert!(OtpCode::from_digits("12345678901").is_none());
        assert!(OtpCode::from_digits("12a4").is_none());
    }

    #[test]
    fn a_derived_code_is_stable_keyed_and_uniform() {
        let (p, q) = (Pepper::new("test-pepper"), Pepper::new("other-pepper"));
        let id = Uuid::now_v7();
        let code = derive(&p, id, 6);
        assert_eq!(code.len(), 6);
        assert_eq!(derive(&p, id, 6).expose(), code.expose());
        // Another pepper, or another challenge, gives another code (almost
        // surely: checked over several ids).
        let ids: Vec<Uuid> = (0..8).map(|_| Uuid::now_v7()).collect();
        assert!(ids
            .iter()
            .any(|i| derive(&q, *i, 10).expose() != derive(&p, *i, 10).expose()));
        assert!(ids
            .iter()
            .any(|i| derive(&p, *i, 10).expose() != derive(&p, id, 10).expose()));
        let bad = biased_positions(10, || derive(&p, Uuid::now_v7(), 10).expose().to_string());
        assert!(bad.is_empty(), "biased digits: {bad:?}");
    }
}
