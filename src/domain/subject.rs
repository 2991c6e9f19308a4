//! Subjects, failures, lockouts and bans (docs/api.md#subjects-failures-lockouts-bans, docs/api.md#challenges-otp-and-session-pin).
//!
//! A subject is the interaction's `customer_ref`, or the interaction itself.
//! Its record holds timestamps, not counters, so every rule is a pure
//! function of the record, the settings and `now`, and the store keeps it
//! only as long as something in it still matters.
//!
//! Failures are bounded: the newest [`EXACT_FAILURES`] are kept one by one,
//! older ones are folded into spans of at most `window / FAILURE_SPANS`, so
//! a brute force under a very high `lockout.threshold` cannot grow the
//! record (which every attempt reads and writes) without bound. Counts stay
//! exact; a folded failure is forgotten when the newest failure of its span
//! leaves the window — at most `window / FAILURE_SPANS` late, never early.
//! A threshold of at most [`EXACT_FAILURES`] never folds (the failure that
//! reaches it clears the list).
use std::time::Duration;

use crate::domain::abuse::LockoutScope;
use crate::domain::settings::{LockoutSettings, OtpSettings};
use crate::error::Error;
use crate::time::Timestamp;

/// One origin of a subject, kept inside its record (the rules that
/// count per origin are in `origins.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginRecord {
    pub origin: String,
    /// Its latest failure or success.
    pub seen: Timestamp,
    pub familiar_until: Option<Timestamp>,
    /// Its failures, lockouts, lock and ban, counted as a subject's.
    pub counts: SubjectRecord,
}

/// An origin's counts at one moment, as `GET /v1/subjects/{subject}` shows
/// them (the API's form is `gateway::view::OriginView`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginCounts {
    /// `device:{fingerprint}` or `{channel}:{conversation_id}`.
    pub origin: String,
    pub familiar: bool,
    pub failures: u32,
    pub lockouts: u32,
    pub locked_until: Option<Timestamp>,
    pub banned: bool,
}

/// Where a subject stands at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Clear,
    Locked {
        until: Timestamp,
    },
    /// `until: None` lasts until an admin unlocks.
    Banned {
        until: Option<Timestamp>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    pub since: Timestamp,
    pub until: Option<Timestamp>,
}

/// What one failed attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Counted; `failures` within the window now.
    Counted { failures: u32 },
    /// This failure reached the threshold: locked until then.
    Locked { until: Timestamp },
    /// This lockout reached `max_lockouts_before_ban`.
    Banned { until: Option<Timestamp> },
}

impl FailureOutcome {
    /// The answer to this failure when it locked or banned the subject
    /// (423 / 403, as [`standing_error`] gives while it stays so); `None`
    /// when it was only counted.
    pub fn refusal(self, now: Timestamp) -> Option<Error> {
        let standing = match self {
            FailureOutcome::Counted { .. } => Standing::Clear,
            FailureOutcome::Locked { until } => Standing::Locked { until },
            FailureOutcome::Banned { until } => Standing::Banned { until },
        };
        standing_error(standing, now).err()
    }
}

/// A subject's record: its failures, lockouts, lock, ban and sends, and
/// with `lockout.scope = "origin"` its origins. The store's form of it is
/// the gateway's (`gateway/records`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectRecord {
    /// Empty in the counts of an origin or of the strangers (see
    /// [`super::origins`]), which live inside their subject's record.
    pub subject: String,
    /// The newest failures within the window, oldest first.
    pub failures: Vec<Timestamp>,
    /// Older failures within the window, folded (see the module's doc).
    pub folded: Vec<FoldedFailures>,
    pub lockouts: Vec<Timestamp>,
    pub locked_until: Option<Timestamp>,
    pub ban: Option<Ban>,
    /// Challenges sent (for `otp.max_sends` per `otp.send_window`).
    pub sends: Vec<Timestamp>,
    /// Scope `origin`: the subject's origins, most recent first.
    pub origins: Vec<OriginRecord>,
    /// Scope `origin`: the failures of unfamiliar origins, and their lock.
    pub strangers: Option<Box<SubjectRecord>>,
}

/// Failures kept one by one; older ones are folded.
pub const EXACT_FAILURES: usize = 64;
/// A folded span covers at most `lockout.window / FAILURE_SPANS`.
pub const FAILURE_SPANS: u32 = 64;

/// `count` failures from `first` to `last`, counted until `last` leaves
/// the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldedFailures {
    pub first: Timestamp,
    pub last: Timestamp,
    pub count: u32,
}

/// The subject's counts at one moment, as `GET /v1/subjects/{subject}`
/// and subject events show them (the API's form is
/// `gateway::view::SubjectView`).
///
/// With `lockout.scope = "origin"` the top-level counts are the strangers'
/// (the origins the subject never succeeded from), and `origins` and
/// `strangers_locked_until` are present; with scope `subject` they are left
/// out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectCounts {
    pub subject: String,
    pub failures: u32,
    pub lockouts: u32,
    pub locked_until: Option<Timestamp>,
    pub banned: bool,
    /// Scope `origin`: the subject's origins, most recent first, at most 50.
    pub origins: Option<Vec<OriginCounts>>,
    /// Scope `origin`: until when every unfamiliar origin is locked out
    /// (null when not).
    pub strangers_locked_until: Option<Option<Timestamp>>,
}

fn count(v: &[Timestamp]) -> u32 {
    u32::try_from(v.len()).unwrap_or(u32::MAX)
}

/// How many of `v` are younger than `window` at `now`.
fn count_since(v: &[Timestamp], now: Timestamp, window: Duration) -> u32 {
    u32::try_from(v.iter().filter(|t| now < t.plus(window)).count()).unwrap_or(u32::MAX)
}

/// `Err(RateLimited)` when `max_sends` of `sends` are within `send_window`
/// of `now`; `Retry-After` is when the oldest of them leaves it. The send
/// limit of a subject and of a destination alike.
pub(crate) fn check_sends(
    sends: &[Timestamp],
    now: Timestamp,
    otp: &OtpSettings,
) -> Result<(), Error> {
    let w = otp.send_window.get();
    let recent: Vec<Timestamp> = sends.iter().copied().filter(|s| now < s.plus(w)).collect();
    if count(&recent) < otp.max_sends {
        return Ok(());
    }
    let frees_at = recent.iter().min().map(|s| s.plus(w)).unwrap_or(now);
    Err(Error::RateLimited {
        retry_after: frees_at.retry_after_secs(now),
    })
}

impl SubjectRecord {
    pub fn new(subject: &str) -> Self {
        SubjectRecord {
            subject: subject.to_string(),
            ..Default::default()
        }
    }

    pub fn standing(&self, now: Timestamp) -> Standing {
        if let Some(ban) = self.ban {
            if ban.until.is_none_or(|u| now < u) {
                return Standing::Banned { until: ban.until };
            }
        }
        match self.locked_until {
            Some(until) if now < until => Standing::Locked { until },
            _ => Standing::Clear,
        }
    }

    /// `Err(Locked)` (423) or `Err(Banned)` (403) unless the subject is clear.
    pub fn ensure_clear(&self, now: Timestamp) -> Result<(), Error> {
        standing_error(self.standing(now), now)
    }

    /// Drops what no longer counts at `now`: failures outside the window,
    /// lockouts outside the ban window, an ended lock or ban.
    pub fn forget_old(&mut self, now: Timestamp, l: &LockoutSettings, otp: &OtpSettings) {
        let w = l.window.get();
        self.failures.retain(|f| now < f.plus(w));
        self.folded.retain(|f| now < f.last.plus(w));
        let bw = l.ban_window.get();
        self.lockouts.retain(|f| now < f.plus(bw));
        let sw = otp.send_window.get();
        self.sends.retain(|s| now < s.plus(sw));
        if self.locked_until.is_some_and(|u| now >= u) {
            self.locked_until = None;
        }
        if self.ban.is_some_and(|b| b.until.is_some_and(|u| now >= u)) {
            // A served ban wipes the slate, or the next failure would ban again.
            self.ban = None;
            self.lockouts.clear();
            self.clear_failures();
        }
        self.forget_old_origins(now, l, otp);
    }

    fn clear_failures(&mut self) {
        self.failures.clear();
        self.folded.clear();
    }

    /// Failures that still count at `now`, one by one and folded.
    fn failures_within(&self, now: Timestamp, window: Duration) -> u32 {
        let folded = self
            .folded
            .iter()
            .filter(|f| now < f.last.plus(window))
            .fold(0u32, |n, f| n.saturating_add(f.count));
        count_since(&self.failures, now, window).saturating_add(folded)
    }

    /// Folds the oldest failures beyond [`EXACT_FAILURES`] into spans of at
    /// most `window / FAILURE_SPANS`.
    fn fold_failures(&mut self, window: Duration) {
        let Some(excess) = self.failures.len().checked_sub(EXACT_FAILURES) else {
            return;
        };
        let span = window / FAILURE_SPANS;
        for f in self.failures.drain(..excess) {
            match self.folded.last_mut() {
                Some(last) if f >= last.first && f.since(last.first) <= span => {
                    last.count = last.count.saturating_add(1);
                    last.last = last.last.max(f);
                }
                _ => self.folded.push(FoldedFailures {
                    first: f,
                    last: f,
                    count: 1,
                }),
            }
        }
    }

    /// Counts one failed attempt. Call only while the subject is clear: a
    /// refused attempt must not extend a lock.
    pub fn record_failure(
        &mut self,
        now: Timestamp,
        l: &LockoutSettings,
        otp: &OtpSettings,
    ) -> FailureOutcome {
        self.forget_old(now, l, otp);
        self.failures.push(now);
        self.fold_failures(l.window.get());
        let failures = self.failures_within(now, l.window.get());
        if l.threshold == 0 || failures < l.threshold {
            return FailureOutcome::Counted { failures };
        }
        self.clear_failures();
        self.lockouts.push(now);
        if l.max_lockouts_before_ban > 0 && count(&self.lockouts) >= l.max_lockouts_before_ban {
            let until = l.ban_duration.enabled().map(|d| now.plus(d));
            self.ban = Some(Ban { since: now, until });
            self.locked_until = None;
            FailureOutcome::Banned { until }
        } else {
            let until = now.plus(l.duration.get());
            self.locked_until = Some(until);
            FailureOutcome::Locked { until }
        }
    }

    /// A success clears failures and lockouts.
    pub fn record_success(&mut self) {
        self.clear_failures();
        self.lockouts.clear();
    }

    /// An admin unlock clears failures, lockouts, the lock and the ban.
    pub fn unlock(&mut self) {
        self.clear_failures();
        self.lockouts.clear();
        self.locked_until = None;
        self.ban = None;
    }

    /// The counts for `lockout.scope` (see [`SubjectCounts`]).
    pub fn counts(&self, now: Timestamp, l: &LockoutSettings) -> SubjectCounts {
        if l.scope == LockoutScope::Subject {
            return self.own_counts(now, l);
        }
        let (failures, lockouts) = self.strangers_counts(now, l);
        let locked_until = self.strangers_locked_until(now);
        SubjectCounts {
            subject: self.subject.clone(),
            failures,
            lockouts,
            locked_until,
            banned: matches!(self.strangers_standing(now), Standing::Banned { .. }),
            origins: Some(self.origin_counts(now, l)),
            strangers_locked_until: Some(locked_until),
        }
    }

    /// The record's own counts (scope `subject`, or an origin's counts).
    pub(super) fn own_counts(&self, now: Timestamp, l: &LockoutSettings) -> SubjectCounts {
        let w = l.window.get();
        let bw = l.ban_window.get();
        let standing = self.standing(now);
        SubjectCounts {
            subject: self.subject.clone(),
            failures: self.failures_within(now, w),
            lockouts: count_since(&self.lockouts, now, bw),
            locked_until: match standing {
                Standing::Locked { until } => Some(until),
                _ => None,
            },
            banned: matches!(standing, Standing::Banned { .. }),
            origins: None,
            strangers_locked_until: None,
        }
    }

    /// How long the store must keep this record: `Some(d)` until nothing in
    /// it matters any more, `None` for a ban until an admin unlocks, and
    /// `Some(ZERO)` when it can be deleted now.
    pub fn keep_for(
        &self,
        now: Timestamp,
        l: &LockoutSettings,
        otp: &OtpSettings,
    ) -> Option<Duration> {
        if self.ban.is_some_and(|b| b.until.is_none()) {
            return None;
        }
        let origins = match self.origins_end(now, l, otp) {
            Some(None) => return None,
            Some(Some(end)) => Some(end),
            None => None,
        };
        let ends = self
            .failures
            .iter()
            .chain(self.folded.iter().map(|f| &f.last))
            .map(|f| f.plus(l.window.get()))
            .chain(self.lockouts.iter().map(|f| f.plus(l.ban_window.get())))
            .chain(self.sends.iter().map(|s| s.plus(otp.send_window.get())))
            .chain(self.locked_until)
            .chain(self.ban.and_then(|b| b.until))
            .chain(origins);
        Some(ends.max().map(|e| e.since(now)).unwrap_or(Duration::ZERO))
    }
}

/// The error for a subject that is not clear.
pub fn standing_error(standing: Standing, now: Timestamp) -> Result<(), Error> {
    match standing {
        Standing::Clear => Ok(()),
        Standing::Locked { until } => Err(Error::Locked {
            until,
            retry_after: until.retry_after_secs(now),
        }),
        Standing::Banned { .. } => Err(Error::Banned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn lockout() -> LockoutSettings {
        LockoutSettings {
            threshold: 5,
            window: Dur::from_secs(3600),
            duration: Dur::from_secs(900),
            max_lockouts_before_ban: 3,
            ban_window: Dur::from_secs(86_400),
            ban_duration: Dur::from_secs(0),
            ..LockoutSettings::default()
        }
    }

    /// [`lockout`] with another threshold.
    fn lockout_at(threshold: u32) -> LockoutSettings {
        LockoutSettings {
            threshold,
            ..lockout()
        }
    }

    #[test]
    fn threshold_minus_one_is_open_threshold_locks_for_duration() {
        let (l, o) = (lockout(), OtpSettings::default());
        let mut s = SubjectRecord::new("cust-42");
        for i in 0..4 {
            assert_eq!(
                s.record_failure(t(i), &l, &o),
                FailureOutcome::Counted {
                    failures: (i + 1) as u32
                }
            );
        }
        assert_eq!(s.standing(t(4)), Standing::Clear);
        assert_eq!(
            s.record_failure(t(4), &l, &o),
            FailureOutcome::Locked { until: t(904) }
        );
        assert!(s.failures.is_empty());
        assert_eq!(s.standing(t(903)), Standing::Locked { until: t(904) });
        assert_eq!(s.standing(t(904)), Standing::Clear);
        assert!(matches!(
            s.ensure_clear(t(903)),
            Err(Error::Locked { retry_after: 1, .. })
        ));
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let (l, o) = (lockout(), OtpSettings::default());
        let mut s = SubjectRecord::new("x");
        for i in 0..4 {
            s.record_failure(t(i), &l, &o);
        }
        assert_eq!(
            s.record_failure(t(3600), &l, &o),
            FailureOutcome::Counted { failures: 4 }
        );
    }

    #[test]
    fn third_lockout_bans_until_unlock() {
        let (l, o) = (lockout(), OtpSettings::default());
        let mut s = SubjectRecord::new("x");
        let mut now = 0;
        for round in 0..3 {
            let mut last = FailureOutcome::Counted { failures: 0 };
            for _ in 0..5 {
                last = s.record_failure(t(now), &l, &o);
                now += 1;
            }
            if round < 2 {
                assert!(matches!(last, FailureOutcome::Locked { .. }), "{last:?}");
                now += 900;
            } else {
                assert_eq!(last, FailureOutcome::Banned { until: None });
            }
        }
        assert_eq!(
            s.standing(t(now + 10_000_000)),
            Standing::Banned { until: None }
        );
        assert_eq!(s.keep_for(t(now), &l, &o), None);
        s.unlock();
        assert_eq!(s.standing(t(now)), Standing::Clear);
        assert_eq!(s.counts(t(now), &l).lockouts, 0);
    }

    #[test]
    fn refusal_is_the_answer_while_locked_or_banned() {
        let now = t(0);
        assert!(FailureOutcome::Counted { failures: 3 }
            .refusal(now)
            .is_none());
        let locked = FailureOutcome::Locked { until: t(900) }.refusal(now);
        assert!(
            matches!(
                locked,
                Some(Error::Locked {
                    retry_after: 900,
                    ..
                })
            ),
            "{locked:?}"
        );
        let banned = FailureOutcome::Banned { until: None }.refusal(now);
        assert!(matches!(banned, Some(Error::Banned)));
    }

    #[test]
    fn send_limit_and_retry_after() {
        let o = OtpSettings {
            max_sends: 2,
            send_window: Dur::from_secs(600),
            ..OtpSettings::default()
        };
        let l = lockout();
        let mut s = SubjectRecord::new("x");
        s.take_send_for(None, t(0), &l, &o).unwrap();
        s.take_send_for(None, t(10), &l, &o).unwrap();
        assert!(matches!(
            s.take_send_for(None, t(20), &l, &o),
            Err(Error::RateLimited { retry_after: 580 })
        ));
        assert_eq!(s.sends, [t(0), t(10)], "a refused send is not counted");
        s.take_send_for(None, t(600), &l, &o).unwrap();
    }

    #[test]
    fn keep_for_covers_the_longest_window() {
        let (l, o) = (lockout(), OtpSettings::default());
        let mut s = SubjectRecord::new("x");
        assert_eq!(s.keep_for(t(0), &l, &o), Some(Duration::ZERO));
        s.record_failure(t(0), &l, &o);
        assert_eq!(s.keep_for(t(0), &l, &o), Some(Duration::from_secs(3600)));
    }

    /// A brute force under a very high threshold: the record stays small,
    /// the count exact, and folded failures are forgotten at most one span
    /// late, never early.
    #[test]
    fn failures_under_a_high_threshold_are_bounded_and_counted_exactly() {
        let l = lockout_at(1_000_000);
        let o = OtpSettings::default();
        let ms = Timestamp::from_unix_millis;
        let start = t(0).unix_millis();
        let mut s = SubjectRecord::new("x");
        for i in 0..20_000 {
            let out = s.record_failure(ms(start + i * 100), &l, &o);
            assert_eq!(
                out,
                FailureOutcome::Counted {
                    failures: i as u32 + 1
                }
            );
        }
        let last = ms(start + 19_999 * 100);
        assert_eq!(s.failures.len(), EXACT_FAILURES);
        // 2 000 s of failures, 56.25 s a span: ~36 spans.
        assert!(s.folded.len() <= 40, "{}", s.folded.len());
        assert_eq!(s.counts(last, &l).failures, 20_000);
        assert!(s.failures.len() + s.folded.len() <= EXACT_FAILURES + 40);
        // One hour after the first failure: those of the first ~second
        // span may linger (one span late), none of the later ones is gone.
        let window = l.window.get();
        let span = window / FAILURE_SPANS;
        let at = ms(start).plus(window);
        let counted = s.counts(at, &l).failures;
        let exact = 20_000 - 1; // the failure at `start` left the window
        assert!(counted >= exact, "{counted} < {exact}: forgotten early");
        let late = u32::try_from(span.as_millis() / 100).expect("small") + 1;
        assert!(counted <= exact + late, "{counted}: more than a span late");
        // Once the last failure is out of the window, nothing is left.
        assert_eq!(s.counts(last.plus(window), &l).failures, 0);
        assert_eq!(s.keep_for(last, &l, &o), Some(window));
    }

    #[test]
    fn a_threshold_beyond_the_exact_ones_still_locks_at_the_exact_failure() {
        let l = lockout_at(200);
        let o = OtpSettings::default();
        let mut s = SubjectRecord::new("x");
        for i in 0..199 {
            assert!(matches!(
                s.record_failure(t(i), &l, &o),
                FailureOutcome::Counted { .. }
            ));
        }
        assert!(!s.folded.is_empty());
        assert!(matches!(
            s.record_failure(t(199), &l, &o),
            FailureOutcome::Locked { .. }
        ));
        assert!(s.failures.is_empty() && s.folded.is_empty());
    }
}
