//! Step-up for pre-chat assertions (docs/api.md#pre-chat-assertions): the fingerprints and the
//! region a customer was last validated with, and whether a new assertion
//! still needs an OTP.
use super::secrets::Pepper;
use crate::domain::settings::StepUpSettings;

/// Validated fingerprints remembered per customer; the oldest are forgotten
/// first (a forgotten one counts as new again).
pub const MAX_FINGERPRINTS: usize = 20;

/// `Pepper` purpose of fingerprint hashes: the store never holds a device
/// fingerprint in plain text.
pub const FINGERPRINT_PURPOSE: &str = "fingerprint";

/// Why an assertion needs a step-up OTP: the first of these that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpReason {
    Always,
    NewFingerprint,
    RegionChange,
}

impl StepUpReason {
    pub const ALL: [StepUpReason; 3] = [
        StepUpReason::Always,
        StepUpReason::NewFingerprint,
        StepUpReason::RegionChange,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepUpReason::Always => "always",
            StepUpReason::NewFingerprint => "new_fingerprint",
            StepUpReason::RegionChange => "region_change",
        }
    }
}

/// What was validated for one customer of one team.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerDevices {
    /// Keyed hashes of validated fingerprints, most recent last.
    pub fingerprints: Vec<String>,
    /// The region of the last validated assertion that carried one.
    pub last_region: Option<String>,
}

/// An absent claim and an empty one are the same: nothing to recognise.
fn present(claim: Option<&str>) -> Option<&str> {
    claim.map(str::trim).filter(|c| !c.is_empty())
}

fn fingerprint_hash(fingerprint: &str, pepper: &Pepper) -> String {
    pepper.keyed_hash(FINGERPRINT_PURPOSE, fingerprint.as_bytes())
}

impl CustomerDevices {
    /// `None` when the assertion may authenticate at once. A customer with
    /// nothing validated yet, and an assertion without the claim, count as
    /// new (fingerprint) and changed (region).
    pub fn step_up_reason(
        &self,
        s: &StepUpSettings,
        fingerprint: Option<&str>,
        region: Option<&str>,
        pepper: &Pepper,
    ) -> Option<StepUpReason> {
        if s.always {
            return Some(StepUpReason::Always);
        }
        if s.on_new_fingerprint {
            let known = present(fingerprint).is_some_and(|fp| {
                let h = fingerprint_hash(fp, pepper);
                self.fingerprints.contains(&h)
            });
            if !known {
                return Some(StepUpReason::NewFingerprint);
            }
        }
        if s.on_region_change {
            let same = match (present(region), self.last_region.as_deref()) {
                (Some(r), Some(last)) => r == last,
                _ => false,
            };
            if !same {
                return Some(StepUpReason::RegionChange);
            }
        }
        None
    }

    /// Records what a successful assertion (or its step-up OTP) carried.
    /// A missing claim leaves what was recorded before.
    pub fn record_validated(
        &mut self,
        fingerprint: Option<&str>,
        region: Option<&str>,
        pepper: &Pepper,
    ) {
        if let Some(fp) = present(fingerprint) {
            let h = fingerprint_hash(fp, pepper);
            self.fingerprints.retain(|k| *k != h);
            self.fingerprints.push(h);
            let excess = self.fingerprints.len().saturating_sub(MAX_FINGERPRINTS);
            self.fingerprints.drain(..excess);
        }
        if let Some(r) = present(region) {
            self.last_region = Some(r.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Pepper {
        Pepper::new("test-pepper")
    }

    fn rules(always: bool, fp: bool, region: bool) -> StepUpSettings {
        StepUpSettings {
            always,
            on_new_fingerprint: fp,
            on_region_change: region,
        }
    }

    fn known() -> CustomerDevices {
        let mut d = CustomerDevices::default();
        d.record_validated(Some("fp-laptop"), Some("EU"), &p());
        d
    }

    #[test]
    fn no_rule_no_step_up() {
        let d = CustomerDevices::default();
        assert_eq!(
            d.step_up_reason(&rules(false, false, false), None, None, &p()),
            None
        );
    }

    #[test]
    fn always_wins_over_everything() {
        let r = rules(true, true, true);
        assert_eq!(
            known().step_up_reason(&r, Some("fp-laptop"), Some("EU"), &p()),
            Some(StepUpReason::Always)
        );
        assert_eq!(
            CustomerDevices::default().step_up_reason(&r, None, None, &p()),
            Some(StepUpReason::Always)
        );
    }

    #[test]
    fn new_fingerprint_rule() {
        let r = rules(false, true, false);
        let d = known();
        assert_eq!(d.step_up_reason(&r, Some("fp-laptop"), None, &p()), None);
        assert_eq!(
            d.step_up_reason(&r, Some("fp-phone"), Some("EU"), &p()),
            Some(StepUpReason::NewFingerprint)
        );
        assert_eq!(
            d.step_up_reason(&r, None, Some("EU"), &p()),
            Some(StepUpReason::NewFingerprint)
        );
        assert_eq!(
            d.step_up_reason(&r, Some(""), Some("EU"), &p()),
            Some(StepUpReason::NewFingerprint)
        );
        let fresh = CustomerDevices::default();
        assert_eq!(
            fresh.step_up_reason(&r, Some("fp-laptop"), None, &p()),
            Some(StepUpReason::NewFingerprint)
        );
        // Another pepper never recognises the hash.
        assert_eq!(
            d.step_up_reason(&r, Some("fp-laptop"), None, &Pepper::new("x")),
            Some(StepUpReason::NewFingerprint)
        );
    }

    #[test]
    fn region_change_rule() {
        let r = rules(false, false, true);
        let d = known();
        assert_eq!(d.step_up_reason(&r, None, Some("EU"), &p()), None);
        assert_eq!(
            d.step_up_reason(&r, Some("fp-laptop"), Some("US"), &p()),
            Some(StepUpReason::RegionChange)
        );
        assert_eq!(
            d.step_up_reason(&r, Some("fp-laptop"), None, &p()),
            Some(StepUpReason::RegionChange)
        );
        let fresh = CustomerDevices::default();
        assert_eq!(
            fresh.step_up_reason(&r, None, Some("EU"), &p()),
            Some(StepUpReason::RegionChange)
        );
    }

    #[test]
    fn fingerprint_is_reported_before_region() {
        let r = rules(false, true, true);
        assert_eq!(
            known().step_up_reason(&r, Some("fp-phone"), Some("US"), &p()),
            Some(StepUpReason::NewFingerprint)
        );
        assert_eq!(
            known().step_up_reason(&r, Some("fp-laptop"), Some("US"), &p()),
            Some(StepUpReason::RegionChange)
        );
        assert_eq!(
            known().step_up_reason(&r, Some("fp-laptop"), Some("EU"), &p()),
            None
        );
    }

    #[test]
    fn recording_hashes_bounds_and_keeps_missing_claims() {
        let mut d = known();
        assert!(!d.fingerprints.iter().any(|f| f.contains("fp-laptop")));
        d.record_validated(None, None, &p());
        assert_eq!(d.fingerprints.len(), 1);
        assert_eq!(d.last_region.as_deref(), Some("EU"));
        for i in 0..30 {
            d.record_validated(Some(&format!("fp-{i}")), Some("US"), &p());
        }
        assert_eq!(d.fingerprints.len(), MAX_FINGERPRINTS);
        assert_eq!(d.last_region.as_deref(), Some("US"));
        let r = rules(false, true, false);
        assert_eq!(
            d.step_up_reason(&r, Some("fp-laptop"), None, &p()),
            Some(StepUpReason::NewFingerprint)
        );
        assert_eq!(d.step_up_reason(&r, Some("fp-29"), None, &p()), None);
        // Re-validating moves a fingerprint to the end instead of duplicating it.
        d.record_validated(Some("fp-15"), None, &p());
        assert_eq!(d.fingerprints.len(), MAX_FINGERPRINTS);
        assert_eq!(
            d.fingerprints.last(),
            Some(&fingerprint_hash("fp-15", &p()))
        );
    }
}
