//! Times in tokens (RFC 7519's NumericDate: `exp`, `iat`, `nbf`,
//! `auth_time`): JSON numbers of seconds that may have a fraction
//! (`1764064800.5`), read as the whole seconds that keep each check as
//! tight as the exact time would (docs/api.md#conventions):
//! an end (`exp`), or an age (how long ago `iat` or `auth_time` was),
//! rounds down; a start (`nbf`, or `iat` as "not issued in the future")
//! rounds up. A fraction never makes a token valid longer or sooner.
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};

/// The largest magnitude read, in seconds (about 31 million years): far
/// beyond any real time, and exact as an `f64`.
const LIMIT: f64 = 1e15;

/// One NumericDate, as the whole seconds at or before it and at or after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumericDate {
    /// Rounded down: for an end, and for an age.
    pub floor: i64,
    /// Rounded up: for a start.
    pub ceil: i64,
}

impl NumericDate {
    /// A whole second.
    pub const fn whole(s: i64) -> Self {
        NumericDate { floor: s, ceil: s }
    }

    /// The date `n` writes, if it is a finite number within [`LIMIT`].
    pub fn of_number(n: &Number) -> Option<Self> {
        if let Some(i) = n.as_i64() {
            return Some(Self::whole(i));
        }
        match n.as_f64() {
            // Within the limit the casts are exact.
            Some(f) if f.is_finite() && f.abs() < LIMIT => Some(NumericDate {
                floor: f.floor() as i64,
                ceil: f.ceil() as i64,
            }),
            _ => None,
        }
    }

    /// The date a claim holds, if it is a number ([`Self::of_number`]).
    pub fn of(v: &Value) -> Option<Self> {
        match v {
            Value::Number(n) => Self::of_number(n),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = Number::deserialize(d)?;
        Self::of_number(&n).ok_or_else(|| serde::de::Error::custom("not a NumericDate"))
    }
}

/// Serde: a NumericDate read as its whole seconds rounded down (an `exp`,
/// or an `iat` kept as when the token was issued).
pub fn floor<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    NumericDate::deserialize(d).map(|n| n.floor)
}

/// Serde: an optional NumericDate (absent or null: `None`), rounded down.
pub fn opt_floor<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<NumericDate>::deserialize(d)?.map(|n| n.floor))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_and_fractional_seconds_and_nothing_else() {
        let of = |v: Value| NumericDate::of(&v);
        assert_eq!(
            of(json!(1_764_064_800)),
            Some(NumericDate::whole(1_764_064_800))
        );
        let half = of(json!(1_764_064_800.5)).unwrap();
        assert_eq!((half.floor, half.ceil), (1_764_064_800, 1_764_064_801));
        let before = of(json!(-0.5)).unwrap();
        assert_eq!((before.floor, before.ceil), (-1, 0));
        assert_eq!(of(json!(2.0)), Some(NumericDate::whole(2)));
        for bad in [
            json!("1"),
            json!(true),
            json!(null),
            json!(1e300),
            json!(u64::MAX),
        ] {
            assert_eq!(of(bad.clone()), None, "{bad}");
        }
    }
}
