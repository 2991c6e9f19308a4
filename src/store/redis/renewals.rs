//! When this process last renewed the lifetime of each key its commits
//! keep alive (a history stream, an index, a queue), and until when: so a
//! commit renews a key's lifetime at most once a [`Renewals::every`] per
//! key and process, unless it asks for more than the last renewal gave.
//! Forgets, now and then, what it renewed longer ago than that.
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Below this many keys remembered, nothing is forgotten.
const KEEP_AT_LEAST: usize = 1024;

/// The time a key renewed by the period alone needs and is given (a
/// history stream: each renewal gives it its whole TTL): no need is ever
/// later than it.
pub(crate) const BY_PERIOD: i64 = i64::MIN;

pub(crate) struct Renewals {
    every: Duration,
    renewed: Mutex<Renewed>,
}

struct Renewed {
    /// Key -> when this process renewed it, and the time (ms, Redis' as
    /// this process reckons it) it is to live until by that renewal.
    keys: HashMap<String, (Instant, i64)>,
    /// At this many keys, the stale ones are forgotten.
    forget_at: usize,
}

impl Renewals {
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every,
            renewed: Mutex::new(Renewed {
                keys: HashMap::new(),
                forget_at: KEEP_AT_LEAST,
            }),
        }
    }

    /// How often a key is renewed: also the least slack a renewal gives.
    pub(crate) fn every(&self) -> Duration {
        self.every
    }

    /// Whether a commit at `now` that needs `key` to live until `needed`
    /// (ms) is to renew its lifetime: this process has not in the last
    /// [`Renewals::every`], or not until that late.
    pub(crate) fn due(&self, key: &str, now: Instant, needed: i64) -> bool {
        let renewed = self.renewed.lock().unwrap_or_else(PoisonError::into_inner);
        renewed
            .keys
            .get(key)
            .is_none_or(|(at, until)| now.duration_since(*at) >= self.every || needed > *until)
    }

    /// An applied commit of `now` renewed each of `keys` to live until its
    /// time (ms).
    pub(crate) fn given<'k>(&self, keys: impl IntoIterator<Item = (&'k str, i64)>, now: Instant) {
        let mut keys = keys.into_iter().peekable();
        if keys.peek().is_none() {
            return;
        }
        let mut renewed = self.renewed.lock().unwrap_or_else(PoisonError::into_inner);
        for (key, until) in keys {
            match renewed.keys.get_mut(key) {
                Some(entry) => *entry = (now, until),
                None => {
                    renewed.keys.insert(key.to_owned(), (now, until));
                }
            }
        }
        if renewed.keys.len() >= renewed.forget_at {
            let every = self.every;
            renewed
                .keys
                .retain(|_, (at, _)| now.saturating_duration_since(*at) < every);
            renewed.forget_at = (renewed.keys.len() * 2).max(KEEP_AT_LEAST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_due_again_after_the_period_or_for_a_later_time() {
        let r = Renewals::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(r.due("q", t0, 100), "never renewed");
        r.given([("q", 1_000)], t0);
        assert!(!r.due("q", t0 + Duration::from_secs(59), 1_000));
        assert!(r.due("q", t0 + Duration::from_secs(59), 1_001), "later");
        assert!(r.due("q", t0 + Duration::from_secs(60), 10), "a minute on");
        assert!(r.due("other", t0, 10));
    }

    #[test]
    fn stale_keys_are_forgotten_once_many() {
        let r = Renewals::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let names: Vec<String> = (1..KEEP_AT_LEAST).map(|i| format!("k{i}")).collect();
        r.given(names.iter().map(|n| (n.as_str(), 5)), t0);
        let later = t0 + Duration::from_secs(61);
        r.given([("fresh", 5)], later);
        let renewed = r.renewed.lock().unwrap();
        assert_eq!(renewed.keys.len(), 1, "only the fresh one is kept");
        assert_eq!(renewed.forget_at, KEEP_AT_LEAST);
    }
}
