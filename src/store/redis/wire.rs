//! What goes over the wire to Redis and comes back: a record's one string
//! (`"<version>\n<json>"`), a TTL's milliseconds, and the shapes of the
//! replies the store reads (entries of a sorted set, their scores).
use std::time::Duration;

use ::redis::Value;

use crate::store::{IndexEntry, StoreError, Versioned};

/// Redis refuses expiries beyond `i64` milliseconds; cap at ~100 years.
const MAX_TTL_MS: u128 = 100 * 365 * 24 * 3600 * 1000;

/// `"<version>\n<json>"`.
pub(super) fn encode(version: u64, json: &str) -> String {
    format!("{version}\n{json}")
}

/// The reply's own buffer becomes the value, the version line cut off its
/// front in place: no second allocation for the record.
pub(super) fn decode(key: &str, raw: Vec<u8>) -> Result<Versioned, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("record {key} has no valid version line"));
    let mut text = String::from_utf8(raw).map_err(|_| corrupt())?;
    let newline = text.find('\n').ok_or_else(corrupt)?;
    let version: u64 = text[..newline].parse().map_err(|_| corrupt())?;
    if version == 0 {
        return Err(corrupt());
    }
    text.drain(..=newline);
    Ok(Versioned {
        version,
        value: text,
    })
}

/// Milliseconds for `PX`/`PEXPIRE`: at least 1 (0 is refused), at most ~100 years.
pub(super) fn ttl_ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis().clamp(1, MAX_TTL_MS)).unwrap_or(1)
}

pub(super) fn unexpected(what: &str) -> StoreError {
    StoreError::Unavailable(format!("redis {what}: unexpected reply shape"))
}

pub(super) fn text(v: &Value) -> Option<&str> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// A flat `member, score, ...` reply as entries.
pub(super) fn entries(what: &str, reply: Value) -> Result<Vec<IndexEntry>, StoreError> {
    let items = match reply {
        Value::Array(items) => items,
        Value::Nil => Vec::new(),
        _ => return Err(unexpected(what)),
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    for pair in items.chunks(2) {
        let [member, score] = pair else {
            return Err(unexpected(what));
        };
        let member = text(member).ok_or_else(|| unexpected(what))?.to_owned();
        let score = match score {
            Value::Int(i) => *i,
            Value::Double(d) => score_from_f64(*d).ok_or_else(|| unexpected(what))?,
            other => parse_score(text(other).ok_or_else(|| unexpected(what))?)
                .ok_or_else(|| unexpected(what))?,
        };
        out.push(IndexEntry { member, score });
    }
    Ok(out)
}

fn parse_score(s: &str) -> Option<i64> {
    s.parse::<i64>()
        .ok()
        .or_else(|| score_from_f64(s.parse::<f64>().ok()?))
}

#[allow(clippy::cast_possible_truncation)]
fn score_from_f64(d: f64) -> Option<i64> {
    d.is_finite().then(|| d.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_takes_the_version_line_off_the_reply() {
        let v = decode("k", b"17\n{\"a\":\"x\ny\"}".to_vec()).expect("valid");
        assert_eq!(v.version, 17);
        assert_eq!(
            v.value, "{\"a\":\"x\ny\"}",
            "only the first line is the version"
        );
        let empty = decode("k", b"3\n".to_vec()).expect("valid");
        assert_eq!((empty.version, empty.value.as_str()), (3, ""));
        for bad in [
            &b"{\"no\":\"version\"}"[..],
            b"0\n{}",
            b"-1\n{}",
            b"x1\n{}",
            b"\n{}",
            b"1\n\xff",
        ] {
            match decode("the-key", bad.to_vec()) {
                Err(StoreError::Corrupt(m)) => {
                    assert!(m.contains("the-key"), "{m}");
                    assert!(!m.contains('{'), "no value in the message: {m}");
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bad)),
            }
        }
    }
}
