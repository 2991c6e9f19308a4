//! Standard Webhooks signatures: any headers and body are refused with
//! `invalid_signature` unless signed; signing then verifying accepts for any
//! key, id, timestamp and body; any one-byte change of body, id, timestamp or
//! signature is refused; the timestamp window is ±300 s to the millisecond.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use proptest::prelude::*;

use super::{ascii_edit, byte_edit, cases, hostile, same_hmac_key};
use crate::domain::webhook_sig::{headers, sign, verify, TOLERANCE_SECS};
use crate::error::Error;
use crate::time::Timestamp;

const NO_VALID: &str = "no valid signature";
const NOT_SECONDS: &str = "webhook-timestamp is not unix seconds";
const OUTSIDE: &str = "webhook-timestamp is outside ±5 minutes";

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..80)
}

fn msg_id() -> impl Strategy<Value = String> {
    prop_oneof![
        "msg_[A-Za-z0-9]{1,32}",
        hostile().prop_filter("non-empty", |s| !s.is_empty())
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..2048)
}

/// Unix seconds a sender might write: today's, and any whose milliseconds
/// still fit the clock (later ones can never be inside the window).
fn seconds() -> impl Strategy<Value = i64> {
    prop_oneof![0i64..4_000_000_000, 0i64..=9_000_000_000_000_000]
}

fn check(key: &[u8], id: &str, ts: &str, sig: &str, body: &[u8], now_ms: i64) -> Result<(), Error> {
    verify(
        &[key],
        Some(id),
        Some(ts),
        Some(sig),
        body,
        Timestamp::from_unix_millis(now_ms),
    )
}

#[track_caller]
fn assert_refused(r: &Result<(), Error>, why: &str) {
    assert!(
        matches!(r, Err(Error::InvalidSignature(m)) if *m == why),
        "{why:?}: {r:?}"
    );
}

/// `ts` seconds as milliseconds, plus `offset_ms`, clamped to i64.
fn ms(ts: i64, offset_ms: i64) -> i64 {
    ts.saturating_mul(1000).saturating_add(offset_ms)
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn unsigned_anything_is_invalid_signature(
        id in prop::option::of(hostile()),
        ts in prop::option::of(prop_oneof![hostile(), seconds().prop_map(|s| s.to_string())]),
        sig in prop::option::of(hostile()),
        body in body(),
        key in key(),
        now in any::<i64>(),
    ) {
        let r = verify(&[&key], id.as_deref(), ts.as_deref(), sig.as_deref(), &body, Timestamp::from_unix_millis(now));
        prop_assert!(matches!(r, Err(Error::InvalidSignature(_))), "{:?}", r);
    }

    #[test]
    fn signed_requests_verify_within_the_window(
        key in key(),
        id in msg_id(),
        ts in seconds(),
        body in body(),
        skew_ms in -TOLERANCE_SECS * 1000..=TOLERANCE_SECS * 1000,
        others in prop::collection::vec(key(), 0..3),
    ) {
        let sig = sign(&key, &id, ts, &body);
        prop_assert!(sig.starts_with("v1,"));
        // Any position among the team's keys.
        let mut keys: Vec<&[u8]> = others.iter().map(Vec::as_slice).collect();
        keys.push(&key);
        let r = verify(&keys, Some(&id), Some(&ts.to_string()), Some(&sig), &body, Timestamp::from_unix_millis(ms(ts, skew_ms)));
        prop_assert!(r.is_ok(), "{:?}", r);
    }

    #[test]
    fn fresh_headers_verify(key in key(), body in body(), now in 0i64..(1i64 << 47)) {
        let (id, ts, sig) = headers(&key, &body, Timestamp::from_unix_millis(now));
        prop_assert!(id.starts_with("msg_") && id.len() == 36, "{}", id);
        prop_assert!(check(&key, &id, &ts, &sig, &body, now).is_ok());
    }

    #[test]
    fn any_one_byte_change_of_the_body_is_refused(
        key in key(), id in msg_id(), ts in seconds(), body in body(), edit in byte_edit(),
    ) {
        let sig = sign(&key, &id, ts, &body);
        if let Some(changed) = edit.apply(&body) {
            assert_refused(&check(&key, &id, &ts.to_string(), &sig, &changed, ms(ts, 0)), NO_VALID);
        }
    }

    #[test]
    fn any_one_byte_change_of_the_id_is_refused(
        key in key(), id in "msg_[A-Za-z0-9]{1,32}", ts in seconds(), body in body(), edit in ascii_edit(),
    ) {
        let sig = sign(&key, &id, ts, &body);
        if let Some(changed) = edit.apply_str(&id).filter(|c| !c.is_empty()) {
            assert_refused(&check(&key, &changed, &ts.to_string(), &sig, &body, ms(ts, 0)), NO_VALID);
        }
    }

    /// Another timestamp inside the window: the signature does not cover it.
    #[test]
    fn another_timestamp_is_refused(
        key in key(), id in msg_id(), ts in 1_000i64..4_000_000_000, body in body(),
        delta in (-TOLERANCE_SECS..=TOLERANCE_SECS).prop_filter("changed", |d| *d != 0),
    ) {
        let sig = sign(&key, &id, ts, &body);
        let other = (ts + delta).to_string();
        assert_refused(&check(&key, &id, &other, &sig, &body, ms(ts, 0)), NO_VALID);
    }

    #[test]
    fn any_one_byte_change_of_the_signature_is_refused(
        key in key(), id in msg_id(), ts in seconds(), body in body(), edit in ascii_edit(),
    ) {
        let sig = sign(&key, &id, ts, &body);
        if let Some(changed) = edit.apply_str(&sig) {
            // A change that only adds white space around the one entry keeps
            // the same entry; anything else is refused.
            prop_assume!(changed.trim_matches(|c: char| c.is_ascii_whitespace()) != sig);
            assert_refused(&check(&key, &id, &ts.to_string(), &changed, &body, ms(ts, 0)), NO_VALID);
        }
    }

    #[test]
    fn other_keys_are_refused(
        key in key(), wrong in prop::collection::vec(key(), 0..4), id in msg_id(), ts in seconds(), body in body(),
    ) {
        prop_assume!(wrong.iter().all(|w| !same_hmac_key(w, &key)));
        let sig = sign(&key, &id, ts, &body);
        let keys: Vec<&[u8]> = wrong.iter().map(Vec::as_slice).collect();
        let r = verify(&keys, Some(&id), Some(&ts.to_string()), Some(&sig), &body, Timestamp::from_unix_millis(ms(ts, 0)));
        assert_refused(&r, NO_VALID);
    }

    /// The header may list several signatures: one good entry suffices,
    /// whatever else is listed; without it, nothing passes.
    #[test]
    fn one_good_entry_among_any_others(
        key in key(), id in msg_id(), ts in seconds(), body in body(),
        before in prop::collection::vec(hostile(), 0..4),
        after in prop::collection::vec(hostile(), 0..4),
        fake in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4),
    ) {
        let sig = sign(&key, &id, ts, &body);
        let mut others: Vec<String> = before.into_iter().chain(after).collect();
        others.extend(fake.iter().map(|f| format!("v1,{}", B64.encode(f))));
        prop_assume!(!others.iter().any(|o| o.split_ascii_whitespace().any(|e| e == sig)));
        let without = others.join(" ");
        assert_refused(&check(&key, &id, &ts.to_string(), &without, &body, ms(ts, 0)), NO_VALID);
        let half = others.len() / 2;
        let with = [&others[..half], &[sig], &others[half..]].concat().join(" ");
        prop_assert!(check(&key, &id, &ts.to_string(), &with, &body, ms(ts, 0)).is_ok());
    }

    /// Accepted exactly when |now − timestamp| ≤ 300 s, in milliseconds.
    #[test]
    fn the_window_is_300_seconds_either_way(
        key in key(), id in msg_id(), ts in seconds(), body in body(),
        offset_ms in prop_oneof![-400_000i64..400_000, -300_010i64..-299_990, 299_990i64..300_010],
    ) {
        let sig = sign(&key, &id, ts, &body);
        let r = check(&key, &id, &ts.to_string(), &sig, &body, ms(ts, offset_ms));
        if offset_ms.abs() <= TOLERANCE_SECS * 1000 {
            prop_assert!(r.is_ok(), "{:?}", r);
        } else {
            assert_refused(&r, OUTSIDE);
        }
    }

    /// Only canonical unix seconds are a timestamp: ASCII digits, no sign,
    /// no leading zero, no space, at most 18 digits.
    #[test]
    fn non_canonical_timestamps_are_refused(
        key in key(), id in msg_id(), ts in seconds(), body in body(),
        text in hostile(),
        decoration in prop::sample::select(vec!["0", "+", "-", " ", "\t", "\u{0}", "\u{ff11}", "٣"]),
        front in any::<bool>(),
    ) {
        let sig = sign(&key, &id, ts, &body);
        let canonical = |s: &str| {
            !s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit())
                && (s.len() == 1 || !s.starts_with('0'))
        };
        prop_assume!(!canonical(&text));
        assert_refused(&check(&key, &id, &text, &sig, &body, ms(ts, 0)), NOT_SECONDS);
        let decorated = if front { format!("{decoration}{ts}") } else { format!("{ts}{decoration}") };
        prop_assume!(decorated != format!("{ts}0"));
        assert_refused(&check(&key, &id, &decorated, &sig, &body, ms(ts, 0)), NOT_SECONDS);
        let long = format!("1{}", "0".repeat(18));
        assert_refused(&check(&key, &id, &long, &sig, &body, ms(ts, 0)), NOT_SECONDS);
    }
}
