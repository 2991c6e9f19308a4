//! Lockouts a stranger cannot turn against the customer
//! (docs/api.md#lockouts-a-stranger-cannot-turn-against-the-customer).
//!
//! With `lockout.scope = "origin"` a subject's failures, lockouts and bans
//! count per **origin**: the device a pre-chat assertion named, else the
//! conversation. A success makes its origin familiar for `familiar_for`;
//! failures of the origins that are not familiar also count together, and
//! the one reaching `strangers_threshold` locks every unfamiliar origin,
//! seen or not, while the familiar ones keep working.
//!
//! The origins live inside the subject's record, each counted by the same
//! rules as a subject (an [`OriginRecord`] holds a [`SubjectRecord`]), so a
//! decision still reads and writes one record and the store's
//! compare-and-set keeps every count exact under concurrency.
use super::subject::{
    check_sends, standing_error, FailureOutcome, OriginCounts, OriginRecord, Standing,
    SubjectRecord,
};
use crate::domain::abuse::LockoutScope;
use crate::domain::settings::{LockoutSettings, OtpSettings};
use crate::error::Error;
use crate::time::Timestamp;

/// Origins a subject's record keeps (and its view shows), at most.
pub const MAX_ORIGINS: usize = 50;

/// What one failed attempt led to, in whichever scope it counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// For the subject (scope `subject`) or the attempt's origin.
    pub outcome: FailureOutcome,
    /// The origin it counted for (scope `origin`).
    pub origin: Option<String>,
    /// It reached `strangers_threshold`: every unfamiliar origin is locked
    /// (`Standing::Locked`), or, the strangers' lockout reaching
    /// `max_lockouts_before_ban`, banned (`Standing::Banned`).
    pub strangers: Option<Standing>,
}

impl Failure {
    /// The answer to this failure when it locked or banned the attempt's
    /// origin (or subject), or locked the strangers; `None` when it was
    /// only counted.
    pub fn refusal(&self, now: Timestamp) -> Option<Error> {
        let own = match self.outcome {
            FailureOutcome::Banned { until } => Standing::Banned { until },
            FailureOutcome::Locked { until } => Standing::Locked { until },
            FailureOutcome::Counted { .. } => Standing::Clear,
        };
        let standing = stricter(own, self.strangers.unwrap_or(Standing::Clear));
        standing_error(standing, now).err()
    }
}

/// The stricter of two standings: a ban over a lock, the later lock.
fn stricter(a: Standing, b: Standing) -> Standing {
    match (a, b) {
        (Standing::Banned { .. }, _) | (_, Standing::Clear) => a,
        (_, Standing::Banned { .. }) | (Standing::Clear, _) => b,
        (Standing::Locked { until: x }, Standing::Locked { until: y }) => {
            Standing::Locked { until: x.max(y) }
        }
    }
}

/// The strangers count like a subject, by `strangers_threshold`: their
/// lockouts lead to a ban of every unfamiliar origin as an origin's do.
fn strangers_rules(l: &LockoutSettings) -> LockoutSettings {
    LockoutSettings {
        threshold: l.strangers_threshold,
        ..l.clone()
    }
}

/// Whether the origin kept as `stored` is `origin`: the same text, or the
/// same phone-number conversation kept before numbers were written in
/// E.164 (`whatsapp:447400123456` for `whatsapp:+447400123456`: WhatsApp's
/// own ids carry no `+`), so that what an origin earned, a ban or
/// familiarity, outlives the respelling
/// (docs/decisions/0045-one-number-one-spelling.md).
fn is_origin(stored: &str, origin: &str) -> bool {
    stored == origin
        || origin.split_once(":+").is_some_and(|(channel, digits)| {
            !digits.is_empty()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && stored
                    .strip_prefix(channel)
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(digits)
        })
}

impl SubjectRecord {
    fn origin(&self, origin: &str) -> Option<&OriginRecord> {
        self.origins.iter().find(|o| is_origin(&o.origin, origin))
    }

    /// Whose allowance a send from `origin` at `now` uses at a destination
    /// (docs/api.md#where-an-otp-may-go): `None` under scope `subject`
    /// (the destination's one count); under scope `origin` the strangers'
    /// (every unfamiliar origin together) or the familiar origin's own.
    pub fn allowance_of(&self, origin: Option<&str>, now: Timestamp) -> Option<String> {
        let origin = origin?;
        Some(if self.is_familiar(origin, now) {
            format!("origin {origin}")
        } else {
            "strangers".to_string()
        })
    }

    fn is_familiar(&self, origin: &str, now: Timestamp) -> bool {
        self.origin(origin)
            .and_then(|o| o.familiar_until)
            .is_some_and(|u| now < u)
    }

    /// Where every unfamiliar origin stands: locked or banned by the
    /// strangers' failures, else clear.
    pub fn strangers_standing(&self, now: Timestamp) -> Standing {
        self.strangers
            .as_ref()
            .map_or(Standing::Clear, |s| s.standing(now))
    }

    /// Until when every unfamiliar origin is locked out.
    pub fn strangers_locked_until(&self, now: Timestamp) -> Option<Timestamp> {
        match self.strangers_standing(now) {
            Standing::Locked { until } => Some(until),
            _ => None,
        }
    }

    /// Where the interactions of `origin` stand (`None`: scope `subject`,
    /// the subject's own standing).
    pub fn standing_for(&self, origin: Option<&str>, now: Timestamp) -> Standing {
        let Some(origin) = origin else {
            return self.standing(now);
        };
        let own = self
            .origin(origin)
            .map_or(Standing::Clear, |o| o.counts.standing(now));
        match self.is_familiar(origin, now) {
            true => own,
            false => stricter(own, self.strangers_standing(now)),
        }
    }

    /// `Err(Locked)` (423) or `Err(Banned)` (403) unless `origin` is clear.
    pub fn ensure_clear_for(&self, origin: Option<&str>, now: Timestamp) -> Result<(), Error> {
        standing_error(self.standing_for(origin, now), now)
    }

    /// The origin's entry, made if new, moved to the front (most recent).
    fn touch_origin(&mut self, origin: &str, now: Timestamp) -> &mut OriginRecord {
        let entry = match self
            .origins
            .iter()
            .position(|o| is_origin(&o.origin, origin))
        {
            Some(i) => self.origins.remove(i),
            None => OriginRecord {
                origin: origin.to_string(),
                seen: now,
                familiar_until: None,
                counts: SubjectRecord::default(),
            },
        };
        // Kept from now on as it is written now.
        let origin = origin.to_string();
        self.origins.insert(
            0,
            OriginRecord {
                seen: now,
                origin,
                ..entry
            },
        );
        &mut self.origins[0]
    }

    /// Counts one failed attempt from `origin` (`None`: for the subject).
    /// Call only while it is clear: a refused attempt must not extend a lock.
    pub fn record_failure_for(
        &mut self,
        origin: Option<&str>,
        now: Timestamp,
        l: &LockoutSettings,
        otp: &OtpSettings,
    ) -> Failure {
        let Some(origin) = origin else {
            return Failure {
                outcome: self.record_failure(now, l, otp),
                origin: None,
                strangers: None,
            };
        };
        self.forget_old(now, l, otp);
        let familiar = self.is_familiar(origin, now);
        let outcome = self
            .touch_origin(origin, now)
            .counts
            .record_failure(now, l, otp);
        let mut strangers = None;
        if !familiar {
            let counts = self.strangers.get_or_insert_with(Box::default);
            strangers = match counts.record_failure(now, &strangers_rules(l), otp) {
                FailureOutcome::Locked { until } => Some(Standing::Locked { until }),
                FailureOutcome::Banned { until } => Some(Standing::Banned { until }),
                FailureOutcome::Counted { .. } => None,
            };
        }
        self.keep_origins_bounded(now);
        Failure {
            outcome,
            origin: Some(origin.to_string()),
            strangers,
        }
    }

    /// A success from `origin` (`None`: the subject's) clears its failures
    /// and lockouts — not another origin's, nor the strangers' — and makes
    /// it familiar for `familiar_for`.
    pub fn record_success_for(
        &mut self,
        origin: Option<&str>,
        now: Timestamp,
        l: &LockoutSettings,
    ) {
        let Some(origin) = origin else {
            self.record_success();
            return;
        };
        let familiar = l.familiar_for.enabled().map(|d| now.plus(d));
        let entry = self.touch_origin(origin, now);
        entry.counts.record_success();
        if familiar.is_some() {
            entry.familiar_until = familiar;
        }
        self.keep_origins_bounded(now);
    }

    /// An admin unlock: of one origin (its failures, lockouts, lock and
    /// ban), or of everything (`None`): the subject's own counts, every
    /// origin's and the strangers'. Familiarity stays.
    pub fn unlock_for(&mut self, origin: Option<&str>) {
        match origin {
            Some(origin) => {
                if let Some(o) = self
                    .origins
                    .iter_mut()
                    .find(|o| is_origin(&o.origin, origin))
                {
                    o.counts.unlock();
                }
            }
            None => {
                self.unlock();
                for o in &mut self.origins {
                    o.counts.unlock();
                }
                self.strangers = None;
            }
        }
    }

    /// The sends `origin` is counted in (`otp.max_sends` per
    /// `otp.send_window`): its own when it is familiar, the strangers'
    /// (shared by every unfamiliar origin) when not, the subject's (`None`,
    /// scope `subject`).
    fn sends_of(&mut self, origin: Option<&str>, now: Timestamp) -> &mut Vec<Timestamp> {
        let Some(origin) = origin else {
            return &mut self.sends;
        };
        if self.is_familiar(origin, now) {
            if let Some(o) = self
                .origins
                .iter_mut()
                .find(|o| is_origin(&o.origin, origin))
            {
                return &mut o.counts.sends;
            }
        }
        &mut self.strangers.get_or_insert_with(Box::default).sends
    }

    /// Counts one challenge sent from `origin` at `now`, or 429 when its
    /// allowance (see [`Self::sends_of`]) is used up: a stranger never
    /// spends a familiar origin's.
    pub fn take_send_for(
        &mut self,
        origin: Option<&str>,
        now: Timestamp,
        l: &LockoutSettings,
        otp: &OtpSettings,
    ) -> Result<(), Error> {
        self.forget_old(now, l, otp);
        let sends = self.sends_of(origin, now);
        check_sends(sends, now, otp)?;
        sends.push(now);
        Ok(())
    }

    /// Gives back the send counted at `now` for `origin` (its message could
    /// not be sent).
    pub fn give_back_send_for(&mut self, origin: Option<&str>, now: Timestamp) {
        let sends = self.sends_of(origin, now);
        if let Some(pos) = sends.iter().rposition(|t| *t == now) {
            sends.remove(pos);
        }
    }

    /// Drops what no longer counts in the origins and the strangers' count:
    /// an origin with nothing in force and no longer familiar goes.
    pub(super) fn forget_old_origins(
        &mut self,
        now: Timestamp,
        l: &LockoutSettings,
        otp: &OtpSettings,
    ) {
        for o in &mut self.origins {
            o.counts.forget_old(now, l, otp);
            if o.familiar_until.is_some_and(|u| now >= u) {
                o.familiar_until = None;
            }
        }
        self.origins.retain(|o| {
            o.familiar_until.is_some()
                || o.counts.keep_for(now, l, otp) != Some(std::time::Duration::ZERO)
        });
        if let Some(s) = &mut self.strangers {
            let rules = strangers_rules(l);
            s.forget_old(now, &rules, otp);
            if s.keep_for(now, &rules, otp) == Some(std::time::Duration::ZERO) {
                self.strangers = None;
            }
        }
    }

    /// At most [`MAX_ORIGINS`]: past it, the least recently seen unfamiliar
    /// origin goes first (its record is lost, but the strangers' count
    /// still holds it), a familiar one only when all are familiar.
    fn keep_origins_bounded(&mut self, now: Timestamp) {
        while self.origins.len() > MAX_ORIGINS {
            let stranger = self
                .origins
                .iter()
                .rposition(|o| o.familiar_until.is_none_or(|u| now >= u));
            let i = stranger.unwrap_or(self.origins.len() - 1);
            self.origins.remove(i);
        }
    }

    /// The latest moment anything in the origins or the strangers' count
    /// matters: `Some(None)` for a ban until an admin unlocks.
    pub(super) fn origins_end(
        &self,
        now: Timestamp,
        l: &LockoutSettings,
        otp: &OtpSettings,
    ) -> Option<Option<Timestamp>> {
        let mut end: Option<Timestamp> = None;
        let mut later = |t: Timestamp| end = Some(end.map_or(t, |e| e.max(t)));
        for o in &self.origins {
            match o.counts.keep_for(now, l, otp) {
                None => return Some(None),
                Some(d) => later(now.plus(d)),
            }
            if let Some(f) = o.familiar_until {
                later(f);
            }
        }
        if let Some(s) = &self.strangers {
            match s.keep_for(now, &strangers_rules(l), otp) {
                None => return Some(None),
                Some(d) => later(now.plus(d)),
            }
        }
        end.map(Some)
    }

    /// The origins' counts, most recent first.
    pub(super) fn origin_counts(&self, now: Timestamp, l: &LockoutSettings) -> Vec<OriginCounts> {
        self.origins
            .iter()
            .take(MAX_ORIGINS)
            .map(|o| {
                let v = o.counts.own_counts(now, l);
                OriginCounts {
                    origin: o.origin.clone(),
                    familiar: o.familiar_until.is_some_and(|u| now < u),
                    failures: v.failures,
                    lockouts: v.lockouts,
                    locked_until: v.locked_until,
                    banned: v.banned,
                }
            })
            .collect()
    }

    /// The strangers' failures and lockouts, for the counts' top level.
    pub(super) fn strangers_counts(&self, now: Timestamp, l: &LockoutSettings) -> (u32, u32) {
        let rules = strangers_rules(l);
        self.strangers.as_ref().map_or((0, 0), |s| {
            let v = s.own_counts(now, &rules);
            (v.failures, v.lockouts)
        })
    }
}

/// Whose counts `scope` makes an attempt from `origin` touch: the origin's
/// (scope `origin`), else the subject's (`None`).
pub fn counted_origin(scope: LockoutScope, origin: impl FnOnce() -> String) -> Option<String> {
    match scope {
        LockoutScope::Origin => Some(origin()),
        LockoutScope::Subject => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn rules() -> LockoutSettings {
        LockoutSettings {
            threshold: 3,
            duration: Dur::from_secs(900),
            max_lockouts_before_ban: 2,
            scope: LockoutScope::Origin,
            strangers_threshold: 5,
            ..LockoutSettings::default()
        }
    }

    fn fail(s: &mut SubjectRecord, origin: &str, at: i64) -> Failure {
        s.record_failure_for(Some(origin), t(at), &rules(), &OtpSettings::default())
    }

    const HOME: &str = "sms:+447400123456";
    const EVE: &str = "whatsapp:+15550001111";
    const MALLORY: &str = "telegram:42";
    const NEW: &str = "webchat:never-seen";

    /// A stranger locks out its own origin, not the customer's familiar
    /// one; the customer's success leaves the stranger locked.
    #[test]
    fn a_stranger_locks_only_itself_and_the_customer_keeps_working() {
        let l = rules();
        let mut s = SubjectRecord::new("cust-1");
        s.record_success_for(Some(HOME), t(0), &l);
        for i in 1..3 {
            assert!(fail(&mut s, EVE, i).refusal(t(i)).is_none());
        }
        let f = fail(&mut s, EVE, 3);
        assert_eq!(f.outcome, FailureOutcome::Locked { until: t(903) });
        assert_eq!(f.origin.as_deref(), Some(EVE));
        assert!(matches!(f.refusal(t(3)), Some(Error::Locked { .. })));
        assert_eq!(
            s.standing_for(Some(EVE), t(4)),
            Standing::Locked { until: t(903) }
        );
        assert_eq!(s.standing_for(Some(HOME), t(4)), Standing::Clear);
        assert_eq!(
            s.standing_for(None, t(4)),
            Standing::Clear,
            "the subject's own counts"
        );
        s.record_success_for(Some(HOME), t(5), &l);
        assert_eq!(
            s.standing_for(Some(EVE), t(5)),
            Standing::Locked { until: t(903) }
        );
        let v = s.counts(t(5), &l);
        let origins = v.origins.expect("origins");
        assert_eq!(origins[0].origin, HOME, "most recent first");
        assert!(origins[0].familiar && !origins[1].familiar);
        assert_eq!(origins[1].locked_until, Some(t(903)));
        assert_eq!(v.failures, 3, "the strangers'");
        assert_eq!(v.strangers_locked_until, Some(None));
    }

    /// Strangers together reach `strangers_threshold`: every unfamiliar
    /// origin is locked, seen or not; the familiar one is not.
    #[test]
    fn strangers_together_lock_out_every_unfamiliar_origin() {
        let l = rules();
        let mut s = SubjectRecord::new("cust-1");
        s.record_success_for(Some(HOME), t(0), &l);
        fail(&mut s, EVE, 1);
        fail(&mut s, EVE, 2);
        fail(&mut s, MALLORY, 3);
        fail(&mut s, MALLORY, 4);
        assert_eq!(s.standing_for(Some(NEW), t(4)), Standing::Clear);
        let f = fail(&mut s, MALLORY, 5);
        assert_eq!(f.strangers, Some(Standing::Locked { until: t(905) }));
        assert_eq!(
            s.standing_for(Some(NEW), t(6)),
            Standing::Locked { until: t(905) }
        );
        assert_eq!(
            s.standing_for(Some(EVE), t(6)),
            Standing::Locked { until: t(905) }
        );
        assert_eq!(s.standing_for(Some(HOME), t(6)), Standing::Clear);
        // Failures of the familiar origin count for it alone.
        fail(&mut s, HOME, 7);
        assert_eq!(
            s.counts(t(7), &l).failures,
            0,
            "the strangers' count was cleared by their lock"
        );
        assert_eq!(s.strangers_locked_until(t(7)), Some(t(905)));
        assert_eq!(s.standing_for(Some(NEW), t(905)), Standing::Clear);
    }

    /// An origin kept before phone numbers were written in E.164 is the
    /// same origin now: its ban holds, and its next touch respells it.
    #[test]
    fn a_whatsapp_origin_kept_without_its_plus_is_the_same_origin() {
        assert!(is_origin("whatsapp:447400123456", "whatsapp:+447400123456"));
        assert!(is_origin(
            "whatsapp:+447400123456",
            "whatsapp:+447400123456"
        ));
        assert!(!is_origin(
            "whatsapp:447400123457",
            "whatsapp:+447400123456"
        ));
        assert!(!is_origin("sms:447400123456", "whatsapp:+447400123456"));
        assert!(!is_origin(
            "whatsapp:+447400123456",
            "whatsapp:447400123456"
        ));
        assert!(!is_origin("device:abc", "device:+abc"));
        assert!(!is_origin("whatsapp:", "whatsapp:+"));

        let l = LockoutSettings {
            strangers_threshold: 1000,
            ..rules()
        };
        let o = OtpSettings::default();
        let (old, new) = ("whatsapp:447400123456", "whatsapp:+447400123456");
        let mut s = SubjectRecord::new("cust-1");
        let mut now = 0;
        for round in 0..2 {
            for _ in 0..3 {
                s.record_failure_for(Some(old), t(now), &l, &o);
                now += 1;
            }
            if round == 0 {
                now += 900;
            }
        }
        let banned = Standing::Banned { until: None };
        assert_eq!(s.standing_for(Some(old), t(now)), banned);
        assert_eq!(s.standing_for(Some(new), t(now)), banned, "the ban holds");
        s.record_failure_for(Some(new), t(now), &l, &o);
        assert_eq!(s.origins.len(), 1, "one origin, not two");
        assert_eq!(s.origins[0].origin, new, "respelt at its touch");
        assert_eq!(s.standing_for(Some(new), t(now + 1)), banned);
        s.unlock_for(Some(new));
        assert_eq!(s.standing_for(Some(new), t(now + 1)), Standing::Clear);
    }

    #[test]
    fn bans_are_per_origin_and_unlock_takes_one_origin_or_all() {
        let l = LockoutSettings {
            strangers_threshold: 1000,
            ..rules()
        };
        let o = OtpSettings::default();
        let mut s = SubjectRecord::new("cust-1");
        let mut now = 0;
        for round in 0..2 {
            for _ in 0..3 {
                s.record_failure_for(Some(EVE), t(now), &l, &o);
                now += 1;
            }
            if round == 0 {
                now += 900;
            }
        }
        assert_eq!(
            s.standing_for(Some(EVE), t(now)),
            Standing::Banned { until: None }
        );
        assert_eq!(s.standing_for(Some(MALLORY), t(now)), Standing::Clear);
        assert_eq!(
            s.keep_for(t(now), &l, &o),
            None,
            "a ban until unlock keeps the record"
        );
        s.record_failure_for(Some(MALLORY), t(now), &l, &o);
        s.unlock_for(Some(MALLORY));
        assert_eq!(
            s.standing_for(Some(EVE), t(now)),
            Standing::Banned { until: None }
        );
        s.unlock_for(Some(EVE));
        assert_eq!(s.standing_for(Some(EVE), t(now)), Standing::Clear);
        // Unlocking everything also lifts the strangers' lock.
        let mut s = SubjectRecord::new("cust-1");
        for i in 0..5 {
            fail(&mut s, &format!("webchat:{i}"), i);
        }
        assert!(s.strangers_locked_until(t(5)).is_some());
        s.unlock_for(None);
        assert_eq!(s.standing_for(Some(NEW), t(5)), Standing::Clear);
    }

    /// Familiarity lasts `familiar_for`; then the origin is a stranger again.
    #[test]
    fn familiarity_ends_and_the_record_lives_as_long_as_it() {
        let l = LockoutSettings {
            familiar_for: Dur::from_secs(86_400),
            ..rules()
        };
        let o = OtpSettings::default();
        let mut s = SubjectRecord::new("cust-1");
        s.record_success_for(Some(HOME), t(0), &l);
        assert_eq!(
            s.keep_for(t(0), &l, &o),
            Some(std::time::Duration::from_secs(86_400))
        );
        for i in 0..5 {
            fail(&mut s, &format!("webchat:{i}"), 100 + i);
        }
        assert_eq!(s.standing_for(Some(HOME), t(200)), Standing::Clear);
        let later = 86_400 - 100;
        assert_eq!(s.standing_for(Some(HOME), t(later)), Standing::Clear);
        // Past familiar_for: the strangers' standing applies to it too (their
        // second lockout within ban_window: a ban).
        for i in 0..5 {
            fail(&mut s, &format!("webchat:{i}"), 86_400 + i);
        }
        assert_eq!(
            s.standing_for(Some(HOME), t(86_405)),
            Standing::Banned { until: None }
        );
    }

    #[test]
    fn origins_are_bounded_and_the_familiar_ones_kept() {
        let l = LockoutSettings {
            strangers_threshold: 10_000,
            ..rules()
        };
        let mut s = SubjectRecord::new("cust-1");
        s.record_success_for(Some(HOME), t(0), &l);
        for i in 0..(MAX_ORIGINS as i64 + 20) {
            s.record_failure_for(
                Some(&format!("webchat:{i}")),
                t(1 + i),
                &l,
                &OtpSettings::default(),
            );
        }
        assert_eq!(s.origins.len(), MAX_ORIGINS);
        assert!(s.origins.iter().any(|o| o.origin == HOME));
        assert_eq!(s.origins[0].origin, format!("webchat:{}", MAX_ORIGINS + 19));
    }

    /// Scope `subject` (no origin) is the subject's own count, as before.
    #[test]
    fn without_an_origin_the_subject_counts() {
        let l = LockoutSettings {
            scope: LockoutScope::Subject,
            ..rules()
        };
        let o = OtpSettings::default();
        let mut s = SubjectRecord::new("cust-1");
        for i in 0..2 {
            s.record_failure_for(None, t(i), &l, &o);
        }
        let f = s.record_failure_for(None, t(2), &l, &o);
        assert_eq!((f.origin, f.strangers), (None, None));
        assert!(matches!(f.outcome, FailureOutcome::Locked { .. }));
        assert!(s.origins.is_empty() && s.strangers.is_none());
        let v = s.counts(t(3), &l);
        assert_eq!((v.origins, v.strangers_locked_until), (None, None));
        assert!(v.locked_until.is_some());
    }

    /// The strangers' lockouts count towards a ban as an origin's: the one
    /// reaching `max_lockouts_before_ban` bans every unfamiliar origin,
    /// seen or not, until an unlock; the familiar one keeps working.
    #[test]
    fn strangers_lockouts_lead_to_a_ban_of_every_unfamiliar_origin() {
        let l = LockoutSettings {
            strangers_threshold: 2,
            ..rules()
        };
        let o = OtpSettings::default();
        let mut s = SubjectRecord::new("cust-1");
        s.record_success_for(Some(HOME), t(0), &l);
        s.record_failure_for(Some(EVE), t(1), &l, &o);
        let f = s.record_failure_for(Some(MALLORY), t(2), &l, &o);
        assert_eq!(f.strangers, Some(Standing::Locked { until: t(902) }));
        s.record_failure_for(Some(EVE), t(903), &l, &o);
        let f = s.record_failure_for(Some(MALLORY), t(904), &l, &o);
        assert_eq!(f.strangers, Some(Standing::Banned { until: None }));
        assert!(matches!(f.refusal(t(904)), Some(Error::Banned)));
        for stranger in [EVE, MALLORY, NEW] {
            assert_eq!(
                s.standing_for(Some(stranger), t(100_000)),
                Standing::Banned { until: None },
                "{stranger}"
            );
        }
        assert_eq!(s.standing_for(Some(HOME), t(100_000)), Standing::Clear);
        let v = s.counts(t(905), &l);
        assert!(v.banned && v.locked_until.is_none(), "{v:?}");
        assert_eq!(s.keep_for(t(905), &l, &o), None, "kept until an unlock");
        s.unlock_for(None);
        assert_eq!(s.standing_for(Some(NEW), t(905)), Standing::Clear);
    }

    /// With origins, each familiar origin has its own send allowance and
    /// the unfamiliar ones share one; a send given back is the origin's.
    #[test]
    fn sends_count_per_familiar_origin_and_for_the_strangers_together() {
        let l = rules();
        let o = OtpSettings {
            max_sends: 2,
            ..OtpSettings::default()
        };
        let mut s = SubjectRecord::new("cust-1");
        s.record_success_for(Some(HOME), t(0), &l);
        s.take_send_for(Some(EVE), t(1), &l, &o).unwrap();
        s.take_send_for(Some(MALLORY), t(2), &l, &o).unwrap();
        assert!(s.take_send_for(Some(NEW), t(3), &l, &o).is_err());
        s.take_send_for(Some(HOME), t(4), &l, &o).unwrap();
        s.take_send_for(Some(HOME), t(5), &l, &o).unwrap();
        assert!(s.take_send_for(Some(HOME), t(6), &l, &o).is_err());
        s.give_back_send_for(Some(MALLORY), t(2));
        s.take_send_for(Some(NEW), t(7), &l, &o).unwrap();
        assert!(
            s.sends.is_empty(),
            "the subject's own count is scope subject's"
        );
        assert!(s.keep_for(t(7), &l, &o).is_some_and(|d| d.as_secs() > 0));
    }
}
