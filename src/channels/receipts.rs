//! Delivery receipts as the providers send them (docs/api.md#delivery-status):
//! their signatures, checked in constant time, and what their statuses
//! mean here.
//!
//! - Twilio: `X-Twilio-Signature` = base64 of HMAC-SHA1, under the
//!   channel's `auth_token`, of the full public URL followed by every
//!   posted field's name and value, fields sorted by name;
//! - Meta (WhatsApp Cloud): `X-Hub-Signature-256` = `sha256=` and the hex
//!   HMAC-SHA256 of the raw body, under the app's `app_secret`;
//! - Telegram's verification gateway: `X-Request-Signature` = the hex
//!   HMAC-SHA256, keyed by the SHA-256 digest of the channel's `token`, of
//!   `X-Request-Timestamp`, a newline and the raw body.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::delivery_status::DeliveryStatus;

/// Twilio's signature of a POST to `url` with form `fields`.
pub fn twilio_signature(auth_token: &[u8], url: &str, fields: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = fields.iter().collect();
    sorted.sort();
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token) else {
        // HMAC takes keys of any length; unreachable.
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    B64.encode(mac.finalize().into_bytes())
}

/// Whether `header` is Twilio's signature of this POST.
pub fn twilio_signed(
    auth_token: &[u8],
    url: &str,
    fields: &[(String, String)],
    header: &str,
) -> bool {
    let want = twilio_signature(auth_token, url, fields);
    !want.is_empty() && bool::from(want.as_bytes().ct_eq(header.trim().as_bytes()))
}

/// The hex HMAC-SHA256 of `parts`, in order, under `key` (empty only if
/// HMAC refused the key, which it never does: it takes keys of any length).
fn hmac_sha256_hex(key: &[u8], parts: &[&[u8]]) -> String {
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
fn hex_matches(want: &str, header: &str) -> bool {
    let header = header.trim().to_ascii_lowercase();
    !want.is_empty() && bool::from(want.as_bytes().ct_eq(header.as_bytes()))
}

/// Meta's `X-Hub-Signature-256` of `body` (`sha256=<hex>`).
pub fn hub_signature(app_secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(app_secret, &[body]))
}

/// Whether `header` is Meta's signature of `body`.
pub fn hub_signed(app_secret: &[u8], body: &[u8], header: &str) -> bool {
    hex_matches(&hub_signature(app_secret, body), header)
}

/// What a Twilio `MessageStatus` reports (`None`: nothing here:
/// `queued`, `accepted`, `sending`, and the like).
pub fn twilio_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "undelivered" | "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// What a WhatsApp Cloud `statuses[].status` reports.
pub fn whatsapp_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "failed" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

/// Telegram's verification gateway's signature of a report `body` posted
/// with header `X-Request-Timestamp` `timestamp` (hex).
pub fn telegram_gateway_signature(token: &[u8], timestamp: &str, body: &[u8]) -> String {
    let key = Sha256::digest(token);
    hmac_sha256_hex(&key, &[timestamp.as_bytes(), b"\n", body])
}

/// Whether `header` is the gateway's signature of this report.
pub fn telegram_gateway_signed(token: &[u8], timestamp: &str, body: &[u8], header: &str) -> bool {
    hex_matches(&telegram_gateway_signature(token, timestamp, body), header)
}

/// What a Telegram gateway report's `delivery_status.status` reports.
pub fn telegram_gateway_status(status: &str) -> Option<DeliveryStatus> {
    match status {
        "sent" => Some(DeliveryStatus::Sent),
        "delivered" => Some(DeliveryStatus::Delivered),
        "read" => Some(DeliveryStatus::Read),
        "expired" | "revoked" => Some(DeliveryStatus::Failed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The example of Twilio's own documentation of request validation:
    /// auth token `12345`, this URL and these fields sign as
    /// `0/KCTR6DLpKmkAf8muzZqo1nDgQ=`.
    #[test]
    fn twilio_signs_as_its_published_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let posted = fields(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        let want = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(twilio_signature(b"12345", url, &posted), want);
        assert!(twilio_signed(b"12345", url, &posted, want));
        // Another token, URL, field value or signature: refused.
        assert!(!twilio_signed(b"12346", url, &posted, want));
        assert!(!twilio_signed(
            b"12345",
            "https://mycompany.com/myapp.php",
            &posted,
            want
        ));
        let mut changed = posted.clone();
        changed[0].1 = "1235".into();
        assert!(!twilio_signed(b"12345", url, &changed, want));
        assert!(!twilio_signed(b"12345", url, &posted, ""));
        assert!(!twilio_signed(
            b"12345",
            url,
            &posted,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
    }

    /// The same scheme's published example (GitHub's documentation of
    /// `X-Hub-Signature-256`, which Meta's webhooks use too).
    #[test]
    fn meta_signs_as_the_published_example() {
        let (secret, body) = (b"It's a Secret to Everybody".as_slice(), b"Hello, World!");
        let want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(hub_signature(secret, body), want);
        assert!(hub_signed(secret, body, want));
        assert!(hub_signed(
            secret,
            body,
            &want.to_uppercase().replace("SHA256", "sha256")
        ));
        assert!(!hub_signed(secret, b"Hello, World?", want));
        assert!(!hub_signed(b"another", body, want));
        assert!(!hub_signed(secret, body, &want["sha256=".len()..]));
        assert!(!hub_signed(secret, body, ""));
    }

    /// A vector computed outside this code from the gateway's documented
    /// scheme (HMAC-SHA256 keyed by SHA-256 of the token, over the
    /// timestamp, a newline and the body).
    #[test]
    fn telegram_gateway_signs_as_documented() {
        let token = b"AAGtg-s3cr3t";
        let ts = "1732530000";
        let body = br#"{"request_id":"req-77","delivery_status":{"status":"delivered","updated_at":1732530000}}"#;
        let want = "3a803707375394daeb3196ca9d0cd7e46cc424efc51b3d8ac86dc268644828cb";
        assert_eq!(telegram_gateway_signature(token, ts, body), want);
        assert!(telegram_gateway_signed(token, ts, body, want));
        assert!(telegram_gateway_signed(
            token,
            ts,
            body,
            &want.to_uppercase()
        ));
        assert!(!telegram_gateway_signed(b"another", ts, body, want));
        assert!(!telegram_gateway_signed(token, "1732530001", body, want));
        assert!(!telegram_gateway_signed(token, ts, &body[1..], want));
        assert!(!telegram_gateway_signed(token, ts, body, &want[1..]));
        assert!(!telegram_gateway_signed(token, ts, body, ""));
        // Keyed by the token's digest, not the token itself.
        let mut mac = Hmac::<Sha256>::new_from_slice(token).unwrap();
        mac.update(b"1732530000\n");
        mac.update(body);
        let raw_key = hex::encode(mac.finalize().into_bytes());
        assert!(!telegram_gateway_signed(token, ts, body, &raw_key));
    }

    #[test]
    fn provider_statuses_map_to_the_gateway_s() {
        use DeliveryStatus::*;
        for (twilio, want) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("undelivered", Some(Failed)),
            ("failed", Some(Failed)),
            ("queued", None),
            ("sending", None),
            ("accepted", None),
        ] {
            assert_eq!(twilio_status(twilio), want, "{twilio}");
        }
        for (meta, want) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("failed", Some(Failed)),
            ("deleted", None),
        ] {
            assert_eq!(whatsapp_status(meta), want, "{meta}");
        }
        for (tg, want) in [
            ("sent", Some(Sent)),
            ("delivered", Some(Delivered)),
            ("read", Some(Read)),
            ("expired", Some(Failed)),
            ("revoked", Some(Failed)),
            ("pending", None),
        ] {
            assert_eq!(telegram_gateway_status(tg), want, "{tg}");
        }
    }
}
