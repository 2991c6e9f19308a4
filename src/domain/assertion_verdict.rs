//! What a verified pre-chat assertion gets (docs/api.md#pre-chat-assertions),
//! as a verdict on plain values: one-time use of its `jti`, the subject's
//! lock, the interaction's customer, the team's step-up rules.
//! `gateway::assertion` reads the records, applies the verdict and commits.
use std::time::Duration;

use super::assertion::Assertion;
use super::devices::{CustomerDevices, StepUpReason};
use super::secrets::Pepper;
use super::settings::StepUpSettings;
use super::subject::{Standing, SubjectRecord};
use crate::time::Timestamp;

/// What the rules read besides the assertion, as the unit of work found it.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The assertion's `jti` was used before.
    pub jti_used: bool,
    /// The interaction's `customer_ref`.
    pub customer_ref: Option<&'a str>,
    pub subject: &'a SubjectRecord,
    /// The origin the interaction's attempts count for (scope `origin`),
    /// once the assertion's [`device`] is the interaction's.
    pub origin: Option<&'a str>,
    /// The devices validated for the assertion's customer.
    pub devices: &'a CustomerDevices,
}

/// The team's rules for the interaction's channel.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub step_up: &'a StepUpSettings,
    /// `assertion_max_age` (zero: unbounded).
    pub max_age: Duration,
    pub pepper: &'a Pepper,
}

/// What the rules decide for a verified assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionVerdict {
    /// Its `jti` was used before: 409 `token_used`, nothing changes.
    Used,
    /// The subject (or the assertion's origin) is locked (423) or banned
    /// (403). The assertion is used up all the same.
    Locked {
        until: Timestamp,
    },
    Banned,
    /// It names another customer than the interaction's `customer_ref`: a
    /// failure to count, 403 `customer_mismatch` unless it locked.
    Mismatch,
    /// Valid, but a step-up rule asks for an OTP first; the pending
    /// step-up lives until `until`.
    StepUp {
        reason: StepUpReason,
        until: Timestamp,
    },
    /// Authenticated (method `pre_chat`).
    Authenticate,
}

/// The assertion names another customer than the interaction's
/// `customer_ref`.
pub fn names_another(a: &Assertion, customer_ref: Option<&str>) -> bool {
    customer_ref.is_some_and(|r| r != a.sub)
}

/// The device a valid assertion makes the interaction's origin (lockout
/// scope `origin`), before its lock is checked: its fingerprint, unless it
/// names another customer.
pub fn device<'a>(a: &'a Assertion, customer_ref: Option<&str>) -> Option<&'a str> {
    match names_another(a, customer_ref) {
        true => None,
        false => a.fingerprint.as_deref(),
    }
}

/// The rules for a verified assertion, in the documented order: one-time
/// use, the lock, the customer, the step-up rules.
pub fn verdict(
    a: &Assertion,
    found: &Found<'_>,
    rules: &Rules<'_>,
    now: Timestamp,
) -> AssertionVerdict {
    if found.jti_used {
        return AssertionVerdict::Used;
    }
    match found.subject.standing_for(found.origin, now) {
        Standing::Locked { until } => return AssertionVerdict::Locked { until },
        Standing::Banned { .. } => return AssertionVerdict::Banned,
        Standing::Clear => {}
    }
    if names_another(a, found.customer_ref) {
        return AssertionVerdict::Mismatch;
    }
    let (fingerprint, region) = (a.fingerprint.as_deref(), a.region.as_deref());
    match found
        .devices
        .step_up_reason(rules.step_up, fingerprint, region, rules.pepper)
    {
        Some(reason) => AssertionVerdict::StepUp {
            reason,
            until: step_up_ends(a, rules.max_age, now),
        },
        None => AssertionVerdict::Authenticate,
    }
}

/// A step-up lives as long as its assertion could still be presented: until
/// its `exp`, and at most `max_age` (when set) from now.
fn step_up_ends(a: &Assertion, max_age: Duration, now: Timestamp) -> Timestamp {
    let exp = Timestamp::from_unix_seconds(a.exp);
    if max_age.is_zero() {
        exp
    } else {
        exp.min(now.plus(max_age))
    }
}

/// How long the used-`jti` marker is kept: past every moment the
/// assertion could be valid.
pub fn jti_ttl(a: &Assertion, now: Timestamp) -> Duration {
    Timestamp::from_unix_seconds(a.exp).since(now) + Duration::from_secs(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::settings::{LockoutSettings, OtpSettings};
    use crate::domain::subject::{Ban, OriginRecord};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn assertion(fingerprint: Option<&str>) -> Assertion {
        Assertion {
            sub: "cust-1".into(),
            jti: "j-1".into(),
            iat: t(0).unix_seconds(),
            exp: t(300).unix_seconds(),
            name: None,
            email: None,
            phone: None,
            fingerprint: fingerprint.map(str::to_string),
            region: Some("EU".into()),
            locale: None,
        }
    }

    fn pepper() -> Pepper {
        Pepper::new("test-pepper")
    }

    const NO_STEP_UP: StepUpSettings = StepUpSettings {
        always: false,
        on_new_fingerprint: false,
        on_region_change: false,
    };

    fn decide(a: &Assertion, found: &Found<'_>, step_up: &StepUpSettings) -> AssertionVerdict {
        let pepper = pepper();
        let rules = Rules {
            step_up,
            max_age: Duration::from_secs(120),
            pepper: &pepper,
        };
        verdict(a, found, &rules, t(1))
    }

    fn found<'a>(subject: &'a SubjectRecord, devices: &'a CustomerDevices) -> Found<'a> {
        Found {
            jti_used: false,
            customer_ref: Some("cust-1"),
            subject,
            origin: None,
            devices,
        }
    }

    fn locked() -> (SubjectRecord, Timestamp) {
        let rules = LockoutSettings::default();
        let mut s = SubjectRecord::new("cust-1");
        for _ in 0..rules.threshold {
            s.record_failure(t(0), &rules, &OtpSettings::default());
        }
        let until = s.locked_until.expect("locked by the threshold");
        (s, until)
    }

    #[test]
    fn a_used_jti_is_refused_before_anything_else() {
        let (subject, devices) = (locked().0, CustomerDevices::default());
        let found = Found {
            jti_used: true,
            customer_ref: Some("cust-2"),
            ..found(&subject, &devices)
        };
        let v = decide(&assertion(None), &found, &NO_STEP_UP);
        assert_eq!(v, AssertionVerdict::Used);
    }

    #[test]
    fn a_locked_subject_is_refused_even_for_another_customer() {
        let ((subject, until), devices) = (locked(), CustomerDevices::default());
        for customer_ref in [Some("cust-1"), Some("cust-2")] {
            let found = Found {
                customer_ref,
                ..found(&subject, &devices)
            };
            let v = decide(&assertion(None), &found, &NO_STEP_UP);
            assert_eq!(v, AssertionVerdict::Locked { until });
        }
    }

    /// With scope `origin`, the lock read is the assertion's device's.
    #[test]
    fn a_locked_device_is_refused_another_is_not() {
        let (counts, until) = locked();
        let mut subject = SubjectRecord::new("cust-1");
        subject.origins.push(OriginRecord {
            origin: "device:fp-1".into(),
            seen: t(0),
            familiar_until: None,
            counts,
        });
        let devices = CustomerDevices::default();
        let on = |origin| Found {
            origin: Some(origin),
            ..found(&subject, &devices)
        };
        let v = decide(&assertion(None), &on("device:fp-1"), &NO_STEP_UP);
        assert_eq!(v, AssertionVerdict::Locked { until });
        let v = decide(&assertion(None), &on("device:fp-2"), &NO_STEP_UP);
        assert_eq!(v, AssertionVerdict::Authenticate);
    }

    #[test]
    fn a_banned_subject_is_refused() {
        let subject = SubjectRecord {
            ban: Some(Ban {
                since: t(0),
                until: None,
            }),
            ..SubjectRecord::new("cust-1")
        };
        let devices = CustomerDevices::default();
        let v = decide(&assertion(None), &found(&subject, &devices), &NO_STEP_UP);
        assert_eq!(v, AssertionVerdict::Banned);
    }

    #[test]
    fn another_customer_than_the_interactions_is_a_mismatch() {
        let (subject, devices) = (SubjectRecord::new("cust-2"), CustomerDevices::default());
        let found = Found {
            customer_ref: Some("cust-2"),
            ..found(&subject, &devices)
        };
        let always = StepUpSettings {
            always: true,
            ..NO_STEP_UP
        };
        let v = decide(&assertion(Some("fp-1")), &found, &always);
        assert_eq!(v, AssertionVerdict::Mismatch);
    }

    /// A step-up lasts until the assertion's `exp`, at most `max_age` on.
    #[test]
    fn a_step_up_rule_asks_for_an_otp() {
        let (subject, devices) = (SubjectRecord::new("cust-1"), CustomerDevices::default());
        let new_device = StepUpSettings {
            on_new_fingerprint: true,
            ..NO_STEP_UP
        };
        let v = decide(
            &assertion(Some("fp-1")),
            &found(&subject, &devices),
            &new_device,
        );
        let until = t(121);
        let reason = StepUpReason::NewFingerprint;
        assert_eq!(v, AssertionVerdict::StepUp { reason, until });
        let pepper = pepper();
        let unbounded = Rules {
            step_up: &new_device,
            max_age: Duration::ZERO,
            pepper: &pepper,
        };
        let v = verdict(
            &assertion(None),
            &found(&subject, &devices),
            &unbounded,
            t(1),
        );
        let until = t(300);
        assert_eq!(v, AssertionVerdict::StepUp { reason, until });
    }

    #[test]
    fn a_known_device_or_no_rule_authenticates() {
        let subject = SubjectRecord::new("cust-1");
        let mut devices = CustomerDevices::default();
        devices.record_validated(Some("fp-1"), Some("EU"), &pepper());
        let new_device = StepUpSettings {
            on_new_fingerprint: true,
            on_region_change: true,
            ..NO_STEP_UP
        };
        let a = assertion(Some("fp-1"));
        let v = decide(&a, &found(&subject, &devices), &new_device);
        assert_eq!(v, AssertionVerdict::Authenticate);
        // No `customer_ref`: any customer.
        let anyone = Found {
            customer_ref: None,
            ..found(&subject, &devices)
        };
        assert_eq!(
            decide(&a, &anyone, &NO_STEP_UP),
            AssertionVerdict::Authenticate
        );
    }

    #[test]
    fn the_device_is_the_origin_unless_it_names_another_customer() {
        let a = assertion(Some("fp-1"));
        assert_eq!(device(&a, Some("cust-1")), Some("fp-1"));
        assert_eq!(device(&a, None), Some("fp-1"));
        assert_eq!(device(&a, Some("cust-2")), None);
        assert_eq!(device(&assertion(None), None), None);
    }

    #[test]
    fn the_jti_is_kept_past_the_assertions_end() {
        let a = assertion(None);
        assert_eq!(jti_ttl(&a, t(100)), Duration::from_secs(210));
    }
}
