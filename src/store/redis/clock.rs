//! This process's reckoning of Redis' time: its own clock, corrected by
//! the offset the last claim's answer showed. The scripts read no clock;
//! a commit's `now` and a claim's answer-by time are written in it.
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

#[derive(Default)]
pub(super) struct RedisClock {
    /// How far this Redis' clock is ahead of ours (ms), as its last claim
    /// answer told: a claim's answer-by time is written in Redis' time.
    ahead_ms: AtomicI64,
}

impl RedisClock {
    /// Redis' time now (ms), as this process reckons it.
    pub(super) fn now(&self) -> i64 {
        unix_ms().saturating_add(self.ahead_ms.load(Ordering::Relaxed))
    }

    /// Until when, in Redis' time as this process reckons it (ms), a caller
    /// waits for a call sent now: `wait`, at most `CALL_TIMEOUT`. A claim
    /// that runs later (queued while Redis was paused) must take nothing.
    pub(super) fn answer_by(&self, wait: Duration) -> i64 {
        self.now()
            .saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX))
    }

    /// What a claim's answer said Redis' time was (ms) when it ran.
    pub(super) fn learn(&self, redis_now: i64) {
        self.ahead_ms
            .store(redis_now.saturating_sub(unix_ms()), Ordering::Relaxed);
    }
}

/// This host's time, ms since the Unix epoch.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_time_is_ours_moved_by_what_the_last_claim_showed() {
        let clock = RedisClock::default();
        let ours = unix_ms();
        assert!((ours..ours + 1_000).contains(&clock.now()), "none learnt");
        clock.learn(ours + 60_000);
        let now = clock.now();
        assert!((ours + 59_000..ours + 61_000).contains(&now), "{now}");
        let by = clock.answer_by(Duration::from_secs(2));
        assert!((now + 2_000..now + 3_000).contains(&by), "{by}");
        clock.learn(ours - 60_000);
        assert!(clock.now() < ours, "Redis behind us");
    }
}
