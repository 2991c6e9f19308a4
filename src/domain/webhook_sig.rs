//! Standard Webhooks signatures (https://www.standardwebhooks.com): the
//! signed content is `id.timestamp.body` over the raw body bytes, HMAC-SHA256,
//! base64, written `v1,<sig>`; several may be sent space-separated.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::domain::secrets::HmacKey;
use crate::error::Error;
use crate::time::Timestamp;

/// Header names of the scheme.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How far `webhook-timestamp` may be from now, either way, in seconds.
pub const TOLERANCE_SECS: i64 = 300;

/// The `webhook-signature` value (`v1,<base64>`) for one message.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    sign_with(&HmacKey::new(key), msg_id, timestamp, body)
}

/// [`sign`] with a key made ready before: a sender keeps one per
/// destination for as long as it keeps the key.
pub fn sign_with(key: &HmacKey, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = mac_over(key, msg_id, timestamp, body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// Fresh headers for sending `body`: (`webhook-id`, `webhook-timestamp`,
/// `webhook-signature`). The id is `msg_` + a UUID v7 (simple form).
pub fn headers(key: &[u8], body: &[u8], now: Timestamp) -> (String, String, String) {
    let ms = u64::try_from(now.unix_millis()).unwrap_or(0);
    let uuid_ts =
        uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000);
    let id = format!("msg_{}", Uuid::new_v7(uuid_ts).simple());
    let ts = now.unix_seconds();
    let signature = sign(key, &id, ts, body);
    (id, ts.to_string(), signature)
}

/// Checks a signed request: all three headers present, the timestamp within
/// ±5 minutes of `now`, and at least one `v1` signature made with one of
/// `keys` over exactly `body`. Comparisons are constant-time.
pub fn verify(
    keys: &[&[u8]],
    msg_id: Option<&str>,
    timestamp: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: Timestamp,
) -> Result<(), Error> {
    let keys: Vec<HmacKey> = keys.iter().map(|k| HmacKey::new(k)).collect();
    let keys: Vec<&HmacKey> = keys.iter().collect();
    verify_with(&keys, msg_id, timestamp, signature_header, body, now)
}

/// [`verify`] with keys made ready before.
pub fn verify_with(
    keys: &[&HmacKey],
    msg_id: Option<&str>,
    timestamp: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now: Timestamp,
) -> Result<(), Error> {
    let (Some(msg_id), Some(timestamp), Some(signature_header)) =
        (msg_id, timestamp, signature_header)
    else {
        return Err(Error::InvalidSignature(
            "missing webhook-id, webhook-timestamp or webhook-signature",
        ));
    };
    if msg_id.is_empty() {
        return Err(Error::InvalidSignature("empty webhook-id"));
    }
    let ts = parse_timestamp(timestamp).ok_or(Error::InvalidSignature(
        "webhook-timestamp is not unix seconds",
    ))?;
    let skew_ms = i128::from(now.unix_millis()) - i128::from(ts) * 1000;
    if skew_ms.abs() > i128::from(TOLERANCE_SECS) * 1000 {
        return Err(Error::InvalidSignature(
            "webhook-timestamp is outside ±5 minutes",
        ));
    }
    let candidates: Vec<Vec<u8>> = signature_header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .collect();
    let mut ok = false;
    for key in keys {
        let mac = mac_over(key, msg_id, ts, body);
        for sig in &candidates {
            // No early exit: every candidate is checked the same way.
            ok |= mac.clone().verify_slice(sig).is_ok();
        }
    }
    if ok {
        Ok(())
    } else {
        Err(NO_VALID_SIGNATURE)
    }
}

/// A short, fixed-size digest of a `webhook-id` for remembering which
/// signed requests were answered (the id itself may be long).
pub fn id_digest(msg_id: &str) -> String {
    use sha2::Digest;
    hex::encode(&Sha256::digest(msg_id.as_bytes())[..16])
}

/// The refusal for a signature that no key makes (also: an unknown team,
/// which must read exactly like a wrong key).
pub const NO_VALID_SIGNATURE: Error = Error::InvalidSignature("no valid signature");

/// Unix seconds written canonically (ASCII digits, no sign, no leading zero).
fn parse_timestamp(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

fn mac_over(key: &HmacKey, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = key.mac();
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_649_367_553;

    fn decode_whsec(s: &str) -> Vec<u8> {
        B64.decode(s.strip_prefix("whsec_").unwrap()).unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    fn check(
        key: &[u8],
        id: &str,
        ts: &str,
        sig: &str,
        body: &[u8],
        now: Timestamp,
    ) -> Result<(), Error> {
        verify(&[key], Some(id), Some(ts), Some(sig), body, now)
    }

    #[test]
    fn published_vectors() {
        let key = decode_whsec("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        assert_eq!(
            sign(&key, "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1_649_367_553, body),
            expected
        );
        check(
            &key,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            expected,
            body,
            at(1_649_367_553),
        )
        .unwrap();

        let key = decode_whsec("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            expected
        );
        check(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            expected,
            body,
            at(1_614_265_330),
        )
        .unwrap();
    }

    /// A key made ready once signs and checks every message as the raw
    /// key does: its state is copied for each message, never carried from
    /// one to the next.
    #[test]
    fn a_kept_key_signs_and_checks_each_message_as_the_raw_key_does() {
        let raw = decode_whsec("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD");
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
        let key = HmacKey::new(&raw);
        let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
        assert_eq!(sign_with(&key, id, 1_649_367_553, body), expected);
        assert_eq!(
            sign_with(&key, "msg_2", NOW, b"other"),
            sign(&raw, "msg_2", NOW, b"other")
        );
        assert_eq!(sign_with(&key, id, 1_649_367_553, body), expected);
        let ts = "1649367553";
        let at = at(1_649_367_553);
        for _ in 0..2 {
            verify_with(&[&key], Some(id), Some(ts), Some(expected), body, at).unwrap();
        }
        let other = HmacKey::new(&[9u8; 32]);
        assert!(verify_with(&[&other], Some(id), Some(ts), Some(expected), body, at).is_err());
        assert_eq!(format!("{key:?}"), "HmacKey(..)");
    }

    #[test]
    fn headers_round_trip_with_any_of_several_keys() {
        let (k1, k2) = ([1u8; 32], [2u8; 32]);
        let (id, ts, sig) = headers(&k2, b"{}", at(NOW));
        assert!(id.starts_with("msg_") && id.len() == 36, "{id}");
        assert_eq!(ts, NOW.to_string());
        verify(
            &[&k1, &k2],
            Some(&id),
            Some(&ts),
            Some(&sig),
            b"{}",
            at(NOW),
        )
        .unwrap();
        let err = verify(&[&k1], Some(&id), Some(&ts), Some(&sig), b"{}", at(NOW)).unwrap_err();
        assert!(matches!(err, Error::InvalidSignature(_)));
        assert!(verify(&[], Some(&id), Some(&ts), Some(&sig), b"{}", at(NOW)).is_err());
    }

    #[test]
    fn multiple_signatures_one_valid() {
        let key = [7u8; 32];
        let good = sign(&key, "msg_1", NOW, b"body");
        let bad = sign(&[8u8; 32], "msg_1", NOW, b"body");
        let header = format!("v1,AAAA {bad} v2,{} {good}", &good[3..]);
        check(&key, "msg_1", &NOW.to_string(), &header, b"body", at(NOW)).unwrap();
        // The right bytes under another version do not count.
        let header = format!("v1a,{} v2,{}", &good[3..], &good[3..]);
        assert!(check(&key, "msg_1", &NOW.to_string(), &header, b"body", at(NOW)).is_err());
    }

    #[test]
    fn wrong_key_tampered_body_id_or_timestamp_fail() {
        let key = [7u8; 32];
        let ts = NOW.to_string();
        let sig = sign(&key, "msg_1", NOW, b"body");
        assert!(check(&[9u8; 32], "msg_1", &ts, &sig, b"body", at(NOW)).is_err());
        assert!(check(&key, "msg_1", &ts, &sig, b"body ", at(NOW)).is_err());
        assert!(check(&key, "msg_2", &ts, &sig, b"body", at(NOW)).is_err());
        let later = (NOW + 1).to_string();
        assert!(check(&key, "msg_1", &later, &sig, b"body", at(NOW)).is_err());
    }

    #[test]
    fn timestamp_window_is_five_minutes_each_way() {
        let key = [7u8; 32];
        for (offset, accepted) in [
            (299, true),
            (300, true),
            (301, false),
            (-299, true),
            (-301, false),
        ] {
            let ts = NOW + offset;
            let sig = sign(&key, "msg_1", ts, b"b");
            let r = check(&key, "msg_1", &ts.to_string(), &sig, b"b", at(NOW));
            assert_eq!(r.is_ok(), accepted, "offset {offset}");
        }
    }

    #[test]
    fn missing_headers_and_garbage_are_refused() {
        let key = [7u8; 32];
        let ts = NOW.to_string();
        let sig = sign(&key, "msg_1", NOW, b"b");
        let now = at(NOW);
        for (id, t, s) in [
            (None, Some(ts.as_str()), Some(sig.as_str())),
            (Some("msg_1"), None, Some(&sig)),
            (Some("msg_1"), Some(&ts), None),
        ] {
            let err = verify(&[&key], id, t, s, b"b", now).unwrap_err();
            assert!(matches!(err, Error::InvalidSignature(_)));
        }
        for garbage in [
            "",
            "v1,",
            "v1,!!!!",
            "garbage",
            "v1 ,x",
            ",,,",
            "v1,AAAA v1,====",
        ] {
            assert!(
                check(&key, "msg_1", &ts, garbage, b"b", now).is_err(),
                "{garbage:?}"
            );
        }
        for bad_ts in [
            "",
            "abc",
            "-1",
            "+1649367553",
            "01649367553",
            "1649367553.0",
            " 1649367553",
            "99999999999999999999",
        ] {
            let err = check(&key, "msg_1", bad_ts, &sig, b"b", now).unwrap_err();
            assert!(matches!(err, Error::InvalidSignature(_)), "{bad_ts:?}");
        }
        assert!(check(&key, "", &ts, &sig, b"b", now).is_err());
    }

    #[test]
    fn errors_never_repeat_the_signature() {
        let key = [7u8; 32];
        let sig = sign(&key, "msg_1", NOW, b"b");
        let err = check(&[1u8; 32], "msg_1", &NOW.to_string(), &sig, b"b", at(NOW)).unwrap_err();
        assert!(!err.to_string().contains(&sig[3..]));
    }
}
