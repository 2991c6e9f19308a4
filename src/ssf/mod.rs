//! The Shared Signals (CAEP) push receiver's rules
//! (docs/api.md#revocation-from-the-identity-provider), as plain functions
//! of `now`: a Security Event Token (RFC 8417) pushed by RFC 8935, its
//! claims, the subject it names and what each event type does. Its
//! signature is checked as an ID token's is (`oidc::id_token`), against
//! the transmitter's key set.
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use serde_json::{Map, Value};

use crate::config::OnCredentialChange;
use crate::domain::numeric_date::NumericDate;
use crate::time::Timestamp;

/// CAEP: the customer's session was revoked.
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: the customer's credential changed (a password reset).
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";

/// How far ahead of now an `iat` may be (clock skew), in seconds.
pub const AHEAD_SECS: i64 = crate::oidc::id_token::LEEWAY_SECS;

/// The oldest `iat` accepted: within the time a `jti` is remembered
/// ([`JTI_MEMORY_SECS`]), so a captured token cannot be replayed once its
/// `jti` is forgotten.
pub const MAX_AGE_SECS: i64 = JTI_MEMORY_SECS - 3600;

/// How long a token's `jti` is remembered: a day.
pub const JTI_MEMORY_SECS: i64 = 24 * 3600;

/// Longest `jti` kept; a longer one is refused.
pub const MAX_JTI: usize = 256;

/// Why a Security Event Token is refused: RFC 8935's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// A wrong media type, a token that cannot be read, `iat` too far
    /// ahead, a missing claim.
    #[error("invalid_request: {0}")]
    Request(&'static str),
    /// A signature that does not verify, an algorithm outside RS256,
    /// PS256 and ES256, a key not in the set.
    #[error("invalid_key: {0}")]
    Key(&'static str),
    #[error("invalid_issuer")]
    Issuer,
    #[error("invalid_audience")]
    Audience,
}

impl SetError {
    /// RFC 8935's `err`.
    pub fn code(&self) -> &'static str {
        match self {
            SetError::Request(_) => "invalid_request",
            SetError::Key(_) => "invalid_key",
            SetError::Issuer => "invalid_issuer",
            SetError::Audience => "invalid_audience",
        }
    }

    /// RFC 8935's `description`: what failed, never the token.
    pub fn description(&self) -> &'static str {
        match self {
            SetError::Request(why) | SetError::Key(why) => why,
            SetError::Issuer => "iss is not the transmitter's issuer",
            SetError::Audience => "aud does not contain this receiver",
        }
    }
}

/// Whether `token` reads as a JWS compact serialization whose header and
/// payload are JSON objects, each naming a member once: a token that does
/// not is `invalid_request` before its algorithm or key are judged.
pub fn readable(token: &str) -> Result<(), SetError> {
    let parts: Vec<&str> = token.split('.').collect();
    let object = |part: &str| {
        B64URL
            .decode(part)
            .ok()
            .filter(|b| crate::domain::json_members::repeated_member(b).is_none())
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v.is_object())
    };
    if parts.len() == 3 && object(parts[0]) && object(parts[1]) {
        Ok(())
    } else {
        Err(SetError::Request("the token cannot be read"))
    }
}

/// What a valid token asks: its id (remembered, so that it acts once) and
/// the customers its events log out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub jti: String,
    /// The subjects (as sent, before folding) that its events log out
    /// everywhere.
    pub log_out: Vec<String>,
}

/// What the transmitter must be for its tokens.
#[derive(Debug, Clone, Copy)]
pub struct Transmitter<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub on_credential_change: OnCredentialChange,
    /// The team's identity provider's issuer (`[oidc] issuer`), whose
    /// `iss_sub` subjects are the team's customers too.
    pub provider_issuer: Option<&'a str>,
}

impl Transmitter<'_> {
    /// Whether `iss`, an `iss_sub` subject's issuer, is one whose subjects
    /// are the team's customers: the transmitter's own issuer, or the
    /// team's identity provider's
    /// (docs/decisions/0063-whom-a-shared-signals-subject-names.md).
    fn speaks_for(&self, iss: &str) -> bool {
        iss == self.issuer || self.provider_issuer == Some(iss)
    }
}

/// The claim checks of a signed token: `iss`, `aud`, `iat` not more than
/// [`AHEAD_SECS`] ahead nor [`MAX_AGE_SECS`] old, `jti`, `events`; then which subjects its events
/// log out.
pub fn check_set_claims(
    claims: &Map<String, Value>,
    transmitter: &Transmitter<'_>,
    now: Timestamp,
) -> Result<Set, SetError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // A claim missing is a request problem; one naming someone else is
    // the issuer's or audience's.
    match text("iss") {
        None => return Err(SetError::Request("no iss")),
        Some(iss) if iss != transmitter.issuer => return Err(SetError::Issuer),
        Some(_) => {}
    }
    let audience_ok = match claims.get("aud") {
        None | Some(Value::Null) => return Err(SetError::Request("no aud")),
        Some(Value::String(a)) => a == transmitter.audience,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(transmitter.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(SetError::Audience);
    }
    // A fraction never widens a check (docs/api.md#conventions): ahead
    // rounded up, the age rounded down.
    let iat = claims
        .get("iat")
        .and_then(NumericDate::of)
        .ok_or(SetError::Request("no iat"))?;
    if iat.ceil > now.unix_seconds().saturating_add(AHEAD_SECS) {
        return Err(SetError::Request("iat in the future"));
    }
    if iat.floor < now.unix_seconds().saturating_sub(MAX_AGE_SECS) {
        return Err(SetError::Request("iat too old"));
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or(SetError::Request("no jti"))?;
    let events = claims
        .get("events")
        .and_then(Value::as_object)
        .ok_or(SetError::Request("no events"))?;
    let top = claims.get("sub_id");
    let mut log_out = Vec::new();
    for (kind, event) in events {
        let acts = match kind.as_str() {
            SESSION_REVOKED => true,
            CREDENTIAL_CHANGE => transmitter.on_credential_change == OnCredentialChange::Logout,
            // The verification event and every other type: accepted, ignored.
            _ => false,
        };
        if !acts {
            continue;
        }
        let subject = top.or_else(|| event.get("subject"));
        if let Some(s) = subject.and_then(|s| subject_id(s, transmitter)) {
            if !log_out.contains(&s) {
                log_out.push(s);
            }
        }
    }
    Ok(Set {
        jti: jti.to_string(),
        log_out,
    })
}

/// The customer a subject identifier names: format `iss_sub` its `sub`
/// when its `iss` is one the transmitter speaks for (another issuer's
/// `sub` is another issuer's user), `opaque` its `id`; any other format
/// names nobody.
fn subject_id(subject: &Value, transmitter: &Transmitter<'_>) -> Option<String> {
    let member = match subject.get("format").and_then(Value::as_str)? {
        "iss_sub" => {
            let iss = subject.get("iss").and_then(Value::as_str)?;
            if !transmitter.speaks_for(iss) {
                return None;
            }
            "sub"
        }
        "opaque" => "id",
        _ => return None,
    };
    subject
        .get(member)
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_795_000_000;

    fn transmitter(on: OnCredentialChange) -> Transmitter<'static> {
        Transmitter {
            issuer: "https://id.example",
            audience: "https://gw.example/ssf/acme",
            on_credential_change: on,
            provider_issuer: Some("https://login.example"),
        }
    }

    fn check_with(change: Value, on: OnCredentialChange) -> Result<Set, SetError> {
        let mut c = json!({"iss": "https://id.example", "aud": "https://gw.example/ssf/acme",
            "iat": NOW, "jti": "j-1", "events": {SESSION_REVOKED: {
                "subject": {"format": "iss_sub", "iss": "https://id.example", "sub": "cust-42"}}}});
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        check_set_claims(
            c.as_object().unwrap(),
            &transmitter(on),
            Timestamp::from_unix_seconds(NOW),
        )
    }

    fn check(change: Value) -> Result<Set, SetError> {
        check_with(change, OnCredentialChange::Logout)
    }

    #[test]
    fn a_session_revoked_logs_its_subject_out() {
        assert_eq!(check(json!({})).unwrap().log_out, ["cust-42"]);
        let opaque =
            json!({"events": {SESSION_REVOKED: {"subject": {"format": "opaque", "id": "Cust-7"}}}});
        assert_eq!(check(opaque).unwrap().log_out, ["Cust-7"]);
        // The top-level sub_id wins over the event's subject.
        let top = json!({"sub_id": {"format": "opaque", "id": "cust-9"}});
        assert_eq!(check(top).unwrap().log_out, ["cust-9"]);
        assert!(check(json!({"aud": ["x", "https://gw.example/ssf/acme"]})).is_ok());
        assert!(check(json!({"iat": NOW + 60})).is_ok());
        assert!(check(json!({"iat": NOW - MAX_AGE_SECS})).is_ok());
        // Older than a remembered jti: a replay could not be told apart.
        assert_eq!(
            check(json!({"iat": NOW - MAX_AGE_SECS - 1}))
                .map(|_| ())
                .unwrap_err()
                .code(),
            "invalid_request"
        );
    }

    #[test]
    fn an_iss_sub_subject_of_another_issuer_names_nobody() {
        let of = |iss: &str| {
            json!({"events": {SESSION_REVOKED: {
                "subject": {"format": "iss_sub", "iss": iss, "sub": "cust-42"}}}})
        };
        for stranger in [
            "https://other.example",
            "",
            "https://id.example/",
            "https://login.example/",
        ] {
            assert!(
                check(of(stranger)).unwrap().log_out.is_empty(),
                "{stranger:?}"
            );
        }
        // Without its iss it names nobody either; the same in `sub_id`.
        let bare = json!({"events": {SESSION_REVOKED: {
            "subject": {"format": "iss_sub", "sub": "cust-42"}}}});
        assert!(check(bare).unwrap().log_out.is_empty());
        let top = json!({"sub_id": {"format": "iss_sub", "iss": "https://other.example", "sub": "cust-42"}});
        assert!(check(top).unwrap().log_out.is_empty());
        // The transmitter's own issuer, and the team's identity
        // provider's, name its customer.
        assert_eq!(
            check(of("https://id.example")).unwrap().log_out,
            ["cust-42"]
        );
        assert_eq!(
            check(of("https://login.example")).unwrap().log_out,
            ["cust-42"]
        );
    }

    #[test]
    fn an_iat_with_a_fraction_is_read_and_checked_tightly() {
        assert!(check(json!({"iat": NOW as f64 - 0.5})).is_ok());
        assert!(check(json!({"iat": NOW as f64 + 60.5})).is_err(), "ahead");
        assert!(
            check(json!({"iat": (NOW - MAX_AGE_SECS) as f64 - 0.5})).is_err(),
            "too old"
        );
    }

    #[test]
    fn credential_change_follows_the_setting_and_others_do_nothing() {
        let change = || {
            json!({"events": {CREDENTIAL_CHANGE: {"subject": {"format": "opaque", "id": "cust-42"},
                "credential_type": "password", "change_type": "update"}}})
        };
        assert_eq!(check(change()).unwrap().log_out, ["cust-42"]);
        assert!(check_with(change(), OnCredentialChange::Ignore)
            .unwrap()
            .log_out
            .is_empty());
        for events in [
            json!({"https://schemas.openid.net/secevent/ssf/event-type/verification": {"state": "x"}}),
            json!({"https://example.com/other": {"subject": {"format": "opaque", "id": "cust-42"}}}),
            json!({SESSION_REVOKED: {"subject": {"format": "email", "email": "a@example.com"}}}),
            json!({SESSION_REVOKED: {}}),
        ] {
            assert!(
                check(json!({ "events": events.clone() }))
                    .unwrap()
                    .log_out
                    .is_empty(),
                "{events}"
            );
        }
    }

    #[test]
    fn each_claim_rule_refuses_with_its_code() {
        for (case, change, code) in [
            (
                "iss",
                json!({"iss": "https://evil.example"}),
                "invalid_issuer",
            ),
            ("no iss", json!({"iss": null}), "invalid_request"),
            (
                "aud",
                json!({"aud": "https://other.example"}),
                "invalid_audience",
            ),
            ("no aud", json!({"aud": null}), "invalid_request"),
            ("iat ahead", json!({"iat": NOW + 61}), "invalid_request"),
            ("no iat", json!({"iat": null}), "invalid_request"),
            ("no jti", json!({"jti": null}), "invalid_request"),
            ("no events", json!({"events": null}), "invalid_request"),
        ] {
            assert_eq!(
                check(change).map(|_| ()).unwrap_err().code(),
                code,
                "{case}"
            );
        }
    }

    #[test]
    fn only_a_compact_jws_of_json_objects_is_readable() {
        let part = |v: Value| B64URL.encode(v.to_string());
        let ok = format!("{}.{}.c2ln", part(json!({"alg": "RS256"})), part(json!({})));
        assert!(readable(&ok).is_ok());
        for bad in [
            "not a token".to_string(),
            format!("{}.{}", part(json!({})), part(json!({}))),
            format!("{}.bm90IGpzb24.c2ln", part(json!({}))),
            format!("{}.{}.c2ln", part(json!("text")), part(json!({}))),
            // A member name twice: two readers would read two tokens.
            format!(
                "{}.{}.c2ln",
                B64URL.encode(r#"{"alg":"RS256","alg":"none"}"#),
                part(json!({}))
            ),
            format!(
                "{}.{}.c2ln",
                part(json!({})),
                B64URL.encode(r#"{"iss":"a","\u0069ss":"b"}"#)
            ),
        ] {
            assert!(readable(&bad).is_err(), "{bad}");
        }
    }
}
