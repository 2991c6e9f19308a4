//! What the kinds with delivery receipts (docs/api.md#delivery-receipts)
//! share: one hex HMAC-SHA256 and one constant-time comparison of a hex
//! signature. Each kind reads its provider's receipts and checks their
//! signature in its own file (`twilio.rs`, `whatsapp.rs`,
//! `telegram_gateway.rs`), with the provider's published example.
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The hex HMAC-SHA256 of `parts`, in order, under `key` (empty only if
/// HMAC refused the key, which it never does: it takes keys of any length).
pub(super) fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in parts {
        mac.update(part);
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `header` (hex digits in either case, around spaces) is `want`,
/// compared in constant time.
pub(super) fn hex_matches(want: &str, header: &str) -> bool {
    let header = header.trim().to_ascii_lowercase();
    !want.is_empty() && bool::from(want.as_bytes().ct_eq(header.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hex_signature_matches_in_either_case_and_nothing_else() {
        let want = hmac_sha256_hex(b"key", &[b"a", b"b"]);
        assert_eq!(want, hmac_sha256_hex(b"key", &[b"ab"]), "parts in order");
        assert!(hex_matches(&want, &want.to_uppercase()));
        assert!(hex_matches(&want, &format!(" {want} ")));
        assert!(!hex_matches(&want, &want[1..]));
        assert!(!hex_matches(&want, ""));
        assert!(!hex_matches("", ""), "an empty signature matches nothing");
    }
}
