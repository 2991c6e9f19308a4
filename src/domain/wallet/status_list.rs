//! Token Status Lists (docs/wallet.md#token-status-lists): where a
//! credential says its status is kept (`status.status_list {idx, uri}`, in
//! an SD-JWT VC's issuer JWT or an mdoc's MSO), and the list itself: a
//! `statuslist+jwt` signed by the leaf of its `x5c`, whose chain reaches a
//! trusted issuer, for that `uri` (its `sub`), not expired, with a
//! zlib-compressed array of `bits`-wide statuses. The entry at `idx` is 0
//! (valid), 1 (invalid), 2 (suspended) or another value; only 0 keeps the
//! credential. A list that cannot be read or is not trusted is a failing
//! list, never a valid credential. Plain functions over `now`: the gateway
//! fetches the list (`src/wallet_status.rs`).
use serde_json::Value;

use super::invalid::Invalid;
use super::issuers::{verify_chain, TrustedIssuers};
use super::jose::{b64, b64url, Jws};
use crate::domain::numeric_date::NumericDate;
use crate::time::Timestamp;

/// The media type a status list is asked for and served as.
pub const MEDIA_TYPE: &str = "application/statuslist+jwt";

/// The longest a list is kept before it is fetched again, in seconds,
/// whatever its `ttl` says.
pub const MAX_TTL: i64 = 3600;

/// How long a list without `ttl` is kept, in seconds.
pub const DEFAULT_TTL: i64 = 300;

/// The most bytes a list inflates to (a status for each of 64 million
/// credentials at one bit); more is refused, not inflated.
pub const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

/// The leeway of the list's `exp` and `iat`, in seconds.
const LEEWAY: i64 = 60;

/// Where a credential's status is kept: the index of its entry in the
/// list at `uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRef {
    pub idx: u64,
    pub uri: String,
}

impl StatusRef {
    /// The reference a JWT's `status` claim holds: `None` without a
    /// `status_list` member (another mechanism, or none), an error when it
    /// is there but not `{idx: unsigned integer, uri: text}`.
    pub fn from_claim(status: Option<&Value>) -> Result<Option<Self>, Invalid> {
        let Some(status) = status else {
            return Ok(None);
        };
        let list = match status {
            Value::Object(o) => o.get("status_list"),
            _ => return Err(Invalid::Malformed),
        };
        let Some(list) = list else {
            return Ok(None);
        };
        let idx = list.get("idx").and_then(Value::as_u64);
        let uri = list.get("uri").and_then(Value::as_str);
        match (idx, uri) {
            (Some(idx), Some(uri)) if !uri.is_empty() => Ok(Some(StatusRef {
                idx,
                uri: uri.to_string(),
            })),
            _ => Err(Invalid::Malformed),
        }
    }
}

/// A status list's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: the credential is valid.
    Valid,
    /// 1: revoked for good.
    Invalid,
    /// 2: suspended for now.
    Suspended,
    /// Any other value (3 is application-specific): not valid.
    Other(u8),
}

impl Status {
    fn of(value: u8) -> Self {
        match value {
            0 => Status::Valid,
            1 => Status::Invalid,
            2 => Status::Suspended,
            other => Status::Other(other),
        }
    }
}

/// Why a status list fails: a name for a log line, never a value of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.as_str())]
pub enum ListFailure {
    /// Not a compact JWS of JSON, or a claim of the wrong type.
    Malformed,
    /// A `typ` other than `statuslist+jwt`, or an `alg` not supported.
    WrongType,
    /// Its chain reaches no trusted issuer, is not valid now, or is absent.
    Untrusted,
    BadSignature,
    /// Its `sub` is not the uri the credential names.
    OtherList,
    Expired,
    IssuedInTheFuture,
    /// `bits` not 1, 2, 4 or 8, or `lst` not base64url zlib within
    /// [`MAX_LIST_BYTES`].
    BadList,
    /// The credential's index is past the list's end.
    NoEntry,
    /// The list could not be fetched (the gateway's reason).
    Unreachable,
}

impl ListFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::WrongType => "wrong_typ",
            Self::Untrusted => "untrusted",
            Self::BadSignature => "bad_signature",
            Self::OtherList => "other_list",
            Self::Expired => "expired",
            Self::IssuedInTheFuture => "issued_in_the_future",
            Self::BadList => "bad_list",
            Self::NoEntry => "no_entry",
            Self::Unreachable => "unreachable",
        }
    }
}

/// A verified status list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusList {
    /// Its `sub`: the uri it was fetched from.
    pub uri: String,
    /// Bits per status: 1, 2, 4 or 8.
    bits: u8,
    /// The inflated statuses, index 0 in the low bits of the first byte.
    bytes: Vec<u8>,
    /// Its `exp`, if any (whole seconds, rounded down).
    pub expires: Option<i64>,
    /// How long it may be kept from `now`, in seconds: its `ttl` (or
    /// [`DEFAULT_TTL`]), at most [`MAX_TTL`], and never past `exp`.
    pub keep_for: i64,
    /// The signer's subject, RFC 4514.
    pub issuer: String,
}

/// What a credential's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    Valid,
    /// Its entry is not 0: invalid, suspended or another value.
    Revoked(Status),
    /// The list fails; the credential cannot be taken as valid.
    FailingList(ListFailure),
}

/// The status list `jwt`, fetched from `uri`, verified against `trusted`
/// at `now`.
pub fn read(
    jwt: &str,
    uri: &str,
    trusted: &TrustedIssuers,
    now: Timestamp,
) -> Result<StatusList, ListFailure> {
    let jws = Jws::split(jwt.trim()).ok_or(ListFailure::Malformed)?;
    if jws.header.get("typ").and_then(Value::as_str) != Some("statuslist+jwt") {
        return Err(ListFailure::WrongType);
    }
    jws.alg().ok_or(ListFailure::WrongType)?;
    let x5c: Vec<Vec<u8>> = match jws.header.get("x5c") {
        Some(Value::Array(certs)) => certs
            .iter()
            .map(|c| c.as_str().and_then(b64))
            .collect::<Option<_>>()
            .ok_or(ListFailure::Malformed)?,
        Some(_) => return Err(ListFailure::Malformed),
        None => return Err(ListFailure::Untrusted),
    };
    let issuer = verify_chain(&x5c, trusted, now).map_err(|_| ListFailure::Untrusted)?;
    if !jws.signed_by(&issuer.key) {
        return Err(ListFailure::BadSignature);
    }
    let claims = &jws.claims;
    if claims.get("sub").and_then(Value::as_str) != Some(uri) {
        return Err(ListFailure::OtherList);
    }
    let now_s = now.unix_seconds();
    let date = |name: &str| match claims.get(name) {
        None => Ok(None),
        Some(v) => NumericDate::of(v).map(Some).ok_or(ListFailure::Malformed),
    };
    let iat = date("iat")?.ok_or(ListFailure::Malformed)?;
    if now_s < iat.ceil.saturating_sub(LEEWAY) {
        return Err(ListFailure::IssuedInTheFuture);
    }
    let expires = date("exp")?.map(|e| e.floor);
    if expires.is_some_and(|exp| now_s >= exp.saturating_add(LEEWAY)) {
        return Err(ListFailure::Expired);
    }
    let ttl = match claims.get("ttl") {
        None => DEFAULT_TTL,
        Some(v) => match v.as_u64() {
            Some(t) if t > 0 => i64::try_from(t).unwrap_or(MAX_TTL),
            _ => return Err(ListFailure::Malformed),
        },
    };
    let keep_for = ttl
        .min(MAX_TTL)
        .min(expires.map_or(MAX_TTL, |e| e.saturating_sub(now_s).max(0)));
    let list = claims.get("status_list").ok_or(ListFailure::Malformed)?;
    let bits = match list.get("bits").and_then(Value::as_u64) {
        Some(b @ (1 | 2 | 4 | 8)) => b as u8,
        _ => return Err(ListFailure::BadList),
    };
    let lst = list
        .get("lst")
        .and_then(Value::as_str)
        .and_then(b64url)
        .ok_or(ListFailure::BadList)?;
    let bytes = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&lst, MAX_LIST_BYTES)
        .map_err(|_| ListFailure::BadList)?;
    Ok(StatusList {
        uri: uri.to_string(),
        bits,
        bytes,
        expires,
        keep_for,
        issuer: issuer.subject,
    })
}

impl StatusList {
    /// The entry at `idx`, if the list is that long.
    pub fn entry(&self, idx: u64) -> Option<Status> {
        let bits = u64::from(self.bits);
        let first_bit = idx.checked_mul(bits)?;
        let byte = *self.bytes.get(usize::try_from(first_bit / 8).ok()?)?;
        let mask = ((1u16 << bits) - 1) as u8;
        Some(Status::of((byte >> (first_bit % 8)) & mask))
    }

    /// The status of the credential `reference` names, with this list at
    /// `now` (a list kept past its `exp` fails).
    pub fn check(&self, reference: &StatusRef, now: Timestamp) -> Checked {
        if reference.uri != self.uri {
            return Checked::FailingList(ListFailure::OtherList);
        }
        if self
            .expires
            .is_some_and(|exp| now.unix_seconds() >= exp.saturating_add(LEEWAY))
        {
            return Checked::FailingList(ListFailure::Expired);
        }
        match self.entry(reference.idx) {
            None => Checked::FailingList(ListFailure::NoEntry),
            Some(Status::Valid) => Checked::Valid,
            Some(other) => Checked::Revoked(other),
        }
    }
}

/// The status of the credential `reference` names, from the list `jwt`
/// fetched from its uri: [`read`], then [`StatusList::check`].
pub fn check(
    jwt: &str,
    reference: &StatusRef,
    trusted: &TrustedIssuers,
    now: Timestamp,
) -> Checked {
    match read(jwt, &reference.uri, trusted, now) {
        Ok(list) => list.check(reference, now),
        Err(failure) => Checked::FailingList(failure),
    }
}
