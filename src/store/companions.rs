//! Which companion a record names, remembered in this process so that
//! [`Store::get_with_companion`](crate::store::Store::get_with_companion)
//! reads both keys with one `MGET` — without a script that reads a key not
//! passed in `KEYS`, which Redis' scripting rules forbid and Redis Cluster
//! and key-checking proxies refuse.
//!
//! A record's companion rarely changes (an interaction names its subject,
//! or names none while it is its own), and the caller checks every hit
//! against the record as read, so a stale entry costs one more round trip,
//! never a wrong answer. A record that names none is not remembered.
//!
//! Bounded by two generations: entries go into `young`; when it holds half
//! the bound, `old` is dropped and `young` becomes `old`. A hit in `old`
//! moves the entry back into `young`, so records read often stay, and the
//! map never holds more than [`MAX_ENTRIES`] (about 20 MB at ~200 bytes an
//! entry).
use std::collections::HashMap;
use std::sync::Mutex;

use super::Op;

/// The most entries held (both generations together).
pub(super) const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Generations {
    young: HashMap<String, String>,
    old: HashMap<String, String>,
}

pub(crate) struct Companions {
    maps: Mutex<Generations>,
    max: usize,
}

impl Companions {
    pub(crate) fn new() -> Self {
        Self::with_bound(MAX_ENTRIES)
    }

    fn with_bound(max: usize) -> Self {
        Companions {
            maps: Mutex::new(Generations::default()),
            max: max.max(2),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The companion last seen for `record`, if remembered.
    pub(crate) fn get(&self, record: &str) -> Option<String> {
        let mut maps = self.lock();
        if let Some(c) = maps.young.get(record) {
            return Some(c.clone());
        }
        let c = maps.old.remove(record)?;
        self.insert(&mut maps, record.to_owned(), c.clone());
        Some(c)
    }

    /// Remembers that `record` names `companion`.
    pub(crate) fn remember(&self, record: &str, companion: &str) {
        let mut maps = self.lock();
        if maps.young.get(record).is_some_and(|c| c == companion) {
            return;
        }
        maps.old.remove(record);
        self.insert(&mut maps, record.to_owned(), companion.to_owned());
    }

    /// After a commit, the companions its records name, so that the first
    /// [`Store::get_with_companion`](crate::store::Store::get_with_companion)
    /// of a record written here is one round trip too.
    pub(crate) fn remember_written(&self, ops: &[Op]) {
        for op in ops {
            if let Op::Put { key, companion, .. } = op {
                match companion {
                    Some(named) => self.remember(key, named),
                    None => self.forget(key),
                }
            }
        }
    }

    /// Forgets `record` (it names no companion, or is gone).
    pub(crate) fn forget(&self, record: &str) {
        let mut maps = self.lock();
        maps.young.remove(record);
        maps.old.remove(record);
    }

    fn insert(&self, maps: &mut Generations, record: String, companion: String) {
        if maps.young.len() >= self.max / 2 {
            maps.old = std::mem::take(&mut maps.young);
        }
        maps.young.insert(record, companion);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let maps = self.lock();
        maps.young.len() + maps.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_updates_and_forgets() {
        let c = Companions::new();
        assert_eq!(c.get("a"), None);
        c.remember("a", "s1");
        assert_eq!(c.get("a").as_deref(), Some("s1"));
        c.remember("a", "s2");
        assert_eq!(c.get("a").as_deref(), Some("s2"));
        c.forget("a");
        assert_eq!(c.get("a"), None);
    }

    #[test]
    fn stays_within_its_bound_and_keeps_what_is_read() {
        let c = Companions::with_bound(10);
        c.remember("hot", "s");
        for i in 0..1000 {
            c.remember(&format!("r{i}"), "s");
            assert!(c.get("hot").is_some(), "a record read often stays");
            assert!(c.len() <= 10, "{} entries", c.len());
        }
        assert_eq!(c.get("r0"), None, "old entries leave");
        assert_eq!(c.get("r999").as_deref(), Some("s"));
    }
}
