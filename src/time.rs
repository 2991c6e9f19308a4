//! Time as a value: [`Timestamp`] (unix milliseconds, RFC 3339 on the wire)
//! and the [`Clock`] that is read once per request at the edge; [`Dur`], a
//! duration as settings write it; the ticking of the background loops
//! ([`every::Every`]).
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod duration;
pub mod every;
pub use duration::Dur;

/// A point in time, unix milliseconds, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }
    pub fn from_unix_seconds(s: i64) -> Self {
        Self(s.saturating_mul(1000))
    }
    pub const fn unix_millis(self) -> i64 {
        self.0
    }
    /// Whole seconds, rounded down.
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
    pub fn minus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }
    /// `self - earlier`, zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
    /// Whole seconds from `now` until `self`, rounded up, at least 1 (for `Retry-After`).
    pub fn retry_after_secs(self, now: Timestamp) -> u64 {
        let ms = self.0.saturating_sub(now.0).max(1);
        u64::try_from(ms).unwrap_or(1).div_ceil(1000)
    }
    /// RFC 3339 in UTC with a `Z`, milliseconds only when not zero
    /// (`2026-11-23T12:07:20Z`, `2026-11-23T12:07:20.123Z`).
    pub fn to_rfc3339(self) -> String {
        self.with_rfc3339(str::to_string)
    }
    /// Hands [`Timestamp::to_rfc3339`]'s text to `f` without allocating it
    /// (years 0000–9999; others, never written by the gateway, through
    /// chrono).
    fn with_rfc3339<R>(self, f: impl FnOnce(&str) -> R) -> R {
        match rfc3339::write(self.0) {
            Some((buf, len)) => f(std::str::from_utf8(&buf[..len]).unwrap_or("invalid")),
            None => f(&match DateTime::<Utc>::from_timestamp_millis(self.0) {
                Some(dt) => dt.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                None => String::from("invalid"),
            }),
        }
    }
    /// Any RFC 3339 time, with any offset. The form this gateway writes is
    /// read directly; every other one through chrono.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        rfc3339::read(s).map(Self).or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|d| Self(d.with_timezone(&Utc).timestamp_millis()))
        })
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_rfc3339(|s| f.write_str(s))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_rfc3339(|s| f.write_str(s))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.with_rfc3339(|text| s.serialize_str(text))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rfc3339;
        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time")
            }
            // Borrowed where the input allows: no copy of the text.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s).ok_or_else(|| E::custom("not an RFC 3339 time"))
            }
        }
        d.deserialize_str(Rfc3339)
    }
}

/// Times in stored records (`#[serde(with = "crate::time::stored")]`, and
/// [`stored::opt`] for an `Option`): unix milliseconds as a JSON integer,
/// 13 digits where the wire's RFC 3339 text takes 22–26 and its quotes.
/// Only for what the gateway itself stores: a request body or a token's
/// time stays RFC 3339 or seconds, as docs/api.md writes it.
pub mod stored {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(t.unix_millis())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        i64::deserialize(d).map(Timestamp::from_unix_millis)
    }

    /// [`stored`](self) for an `Option<Timestamp>` (`null` reads as `None`).
    pub mod opt {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::Timestamp;

        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            Ok(Option::<super::Stored>::deserialize(d)?.map(|t| t.0))
        }
    }

    /// [`stored`](self) for a `Vec<Timestamp>`.
    pub mod vec {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::Timestamp;

        pub fn serialize<S: Serializer>(ts: &[Timestamp], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(ts.iter().map(|t| t.unix_millis()))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Timestamp>, D::Error> {
            let read = Vec::<super::Stored>::deserialize(d)?;
            Ok(read.into_iter().map(|t| t.0).collect())
        }
    }

    /// A [`Timestamp`] read through [`deserialize`].
    struct Stored(Timestamp);

    impl<'de> Deserialize<'de> for Stored {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize(d).map(Stored)
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` of a time in microseconds since the
/// epoch: always six digits, as `tracing-subscriber` writes a log
/// line's time. `None` outside years 0000–9999.
pub fn rfc3339_micros(unix_micros: i64) -> Option<[u8; 27]> {
    let (secs, micros) = (
        unix_micros.div_euclid(1_000_000),
        unix_micros.rem_euclid(1_000_000),
    );
    let (whole, _) = rfc3339::write(secs.checked_mul(1000)?)?;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    b[..19].copy_from_slice(&whole[..19]);
    let mut v = micros;
    for i in (20..26).rev() {
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    Some(b)
}

/// The one form the gateway writes, `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (what
/// chrono's `to_rfc3339_opts(AutoSi, true)` gives a millisecond time of
/// years 0000–9999), written and read without chrono: every record, view
/// and event carries a dozen or more of them. Anything else is `None`, and
/// the caller asks chrono (the property tests hold both to chrono).
mod rfc3339 {
    const MS_PER_DAY: i64 = 86_400_000;
    /// Days from 0000-03-01 to 1970-01-01.
    const EPOCH_SHIFT: i64 = 719_468;

    /// (year, month, day) of a day counted from 1970-01-01 (proleptic
    /// Gregorian; H. Hinnant's `civil_from_days`).
    fn civil(days: i64) -> (i64, u32, u32) {
        let z = days + EPOCH_SHIFT;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        (yoe + era * 400 + i64::from(month <= 2), month, day)
    }

    /// The day of (year, month, day), counted from 1970-01-01.
    fn days(year: i64, month: u32, day: u32) -> i64 {
        let y = if month <= 2 { year - 1 } else { year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = i64::from((month + 9) % 12);
        let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
        era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - EPOCH_SHIFT
    }

    fn month_days(year: i64, month: u32) -> u32 {
        match month {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// The text of `ms` and its length, or `None` outside years 0000–9999.
    pub(super) fn write(ms: i64) -> Option<([u8; 24], usize)> {
        let (day, in_day) = (ms.div_euclid(MS_PER_DAY), ms.rem_euclid(MS_PER_DAY));
        let (year, month, dom) = civil(day);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        let in_day = in_day as u64;
        put(0, 4, year as u64);
        put(5, 2, u64::from(month));
        put(8, 2, u64::from(dom));
        put(11, 2, in_day / 3_600_000);
        put(14, 2, in_day / 60_000 % 60);
        put(17, 2, in_day / 1000 % 60);
        let millis = in_day % 1000;
        if millis == 0 {
            b[19] = b'Z';
            return Some((b, 20));
        }
        put(20, 3, millis);
        Some((b, 24))
    }

    /// The time `write` gives the text of, or `None` for any other text
    /// (which may still be valid RFC 3339).
    pub(super) fn read(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let num = |from: usize, to: usize| -> Option<u32> {
            b.get(from..to)?.iter().try_fold(0u32, |n, c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })
        };
        let millis = match b.len() {
            20 => 0,
            24 if b[19] == b'.' => num(20, 23)?,
            _ => return None,
        };
        let shape = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if b[b.len() - 1] != b'Z' || shape.iter().any(|&(i, c)| b[i] != c) {
            return None;
        }
        let year = i64::from(num(0, 4)?);
        let (month, day) = (num(5, 7)?, num(8, 10)?);
        let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        let valid = (1..=12).contains(&month)
            && (1..=month_days(year, month)).contains(&day)
            && hour < 24
            && minute < 60
            && second < 60;
        if !valid {
            return None;
        }
        let in_day = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1000
            + i64::from(millis);
        Some(days(year, month, day) * MS_PER_DAY + in_day)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}
impl utoipa::ToSchema for Timestamp {}

/// Where "now" comes from. Read once per request, at the edge.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp(Utc::now().timestamp_millis())
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(AtomicI64::new(start.0))
    }
    /// Starts at the current wall-clock time, whole seconds.
    pub fn starting_now() -> Self {
        Self::new(Timestamp::from_unix_seconds(
            SystemClock.now().unix_seconds(),
        ))
    }
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_time_has_six_digits_of_microseconds() {
        let text = |us| rfc3339_micros(us).map(|b| String::from_utf8(b.to_vec()).unwrap());
        assert_eq!(
            text(1_795_000_000_000_042).as_deref(),
            Some("2026-11-18T11:06:40.000042Z")
        );
        assert_eq!(text(0).as_deref(), Some("1970-01-01T00:00:00.000000Z"));
        assert_eq!(text(-1).as_deref(), Some("1969-12-31T23:59:59.999999Z"));
        assert_eq!(text(i64::MAX), None);
        // As tracing-subscriber's own clock writes it.
        for us in [1_795_000_000_123_456_i64, 951_782_400_999_999] {
            let by_chrono = DateTime::<Utc>::from_timestamp_micros(us)
                .unwrap()
                .to_rfc3339_opts(SecondsFormat::Micros, true);
            assert_eq!(text(us), Some(by_chrono));
        }
    }

    #[test]
    fn rfc3339_round_trip_and_z_suffix() {
        let t = Timestamp::from_unix_seconds(1_795_000_000);
        let s = t.to_rfc3339();
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
    }

    /// What `to_rfc3339` and `parse_rfc3339` were before the direct path:
    /// chrono alone.
    fn by_chrono(ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(|dt| dt.to_rfc3339_opts(SecondsFormat::AutoSi, true))
            .unwrap_or_else(|| "invalid".into())
    }
    fn parsed_by_chrono(s: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| Timestamp(d.with_timezone(&Utc).timestamp_millis()))
    }

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
    const YEAR_0: i64 = -62_167_219_200_000;
    const YEAR_10000: i64 = 253_402_300_800_000;

    proptest::proptest! {
        #[test]
        fn written_as_chrono_writes_it_and_read_back(ms in (YEAR_0 - 86_400_000_000)..(YEAR_10000 + 86_400_000_000)) {
            let t = Timestamp(ms);
            let text = t.to_rfc3339();
            proptest::prop_assert_eq!(&text, &by_chrono(ms));
            proptest::prop_assert_eq!(format!("{t}"), text.clone());
            proptest::prop_assert_eq!(serde_json::to_string(&t).ok(), Some(format!("\"{text}\"")));
            let read = Timestamp::parse_rfc3339(&text);
            proptest::prop_assert_eq!(read, parsed_by_chrono(&text));
            proptest::prop_assert_eq!(serde_json::from_str::<Timestamp>(&format!("\"{text}\"")).ok(), read);
            // chrono reads back what it writes of years 0000-9999 only.
            if (YEAR_0..YEAR_10000).contains(&ms) {
                proptest::prop_assert_eq!(read, Some(t));
            }
        }

        /// Every text of the written shape, valid date or not (month 13,
        /// 30 February, 24:00, second 60, .000): read as chrono reads it.
        #[test]
        fn the_written_shape_reads_as_chrono_reads_it(
            y in 0u32..10_000, mo in 0u32..14, d in 0u32..33, h in 0u32..26,
            mi in 0u32..62, sec in 0u32..62, ms in proptest::option::of(0u32..1000),
        ) {
            let mut s = format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{sec:02}");
            if let Some(ms) = ms { s.push_str(&format!(".{ms:03}")); }
            s.push('Z');
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&s), parsed_by_chrono(&s), "{}", s);
            if let Some(direct) = rfc3339::read(&s) {
                proptest::prop_assert_eq!(Some(Timestamp(direct)), parsed_by_chrono(&s), "{}", s);
            }
        }

        /// Near misses of the shape and other RFC 3339 forms go to chrono.
        #[test]
        fn other_texts_read_as_chrono_reads_them(s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|z|[+-][0-9]{2}:[0-9]{2})") {
            proptest::prop_assert_eq!(Timestamp::parse_rfc3339(&s), parsed_by_chrono(&s), "{}", s);
        }
    }

    #[test]
    fn edges_of_the_direct_form() {
        for (text, ms) in [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("1969-12-31T23:59:59.999Z", Some(-1)),
            ("2024-02-29T12:00:00.001Z", Some(1_709_208_000_001)),
            ("2023-02-29T12:00:00Z", None),
            ("1900-02-29T00:00:00Z", None),
            ("2000-02-29T00:00:00Z", Some(951_782_400_000)),
            ("2026-11-23T24:00:00Z", None),
            ("0000-01-01T00:00:00Z", Some(YEAR_0)),
            ("9999-12-31T23:59:59.999Z", Some(YEAR_10000 - 1)),
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text), ms.map(Timestamp), "{text}");
            assert_eq!(parsed_by_chrono(text), ms.map(Timestamp), "{text}");
        }
        // Outside the direct form's years: chrono's text, read as chrono
        // reads it (it cannot read back a negative year it writes).
        for ms in [YEAR_0 - 1, YEAR_10000] {
            let text = Timestamp(ms).to_rfc3339();
            assert_eq!(text, by_chrono(ms));
            assert_eq!(Timestamp::parse_rfc3339(&text), parsed_by_chrono(&text));
        }
        // An escaped JSON string cannot be borrowed: read all the same.
        let escaped = r#""\u0032026-11-23T12:07:20.123Z""#;
        assert_eq!(
            serde_json::from_str::<Timestamp>(escaped).ok(),
            Timestamp::parse_rfc3339("2026-11-23T12:07:20.123Z")
        );
        assert!(serde_json::from_str::<Timestamp>("12").is_err());
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        let now = Timestamp::from_unix_millis(10_000);
        assert_eq!(Timestamp::from_unix_millis(10_001).retry_after_secs(now), 1);
        assert_eq!(Timestamp::from_unix_millis(11_500).retry_after_secs(now), 2);
        assert_eq!(Timestamp::from_unix_millis(9_000).retry_after_secs(now), 1);
    }
}
