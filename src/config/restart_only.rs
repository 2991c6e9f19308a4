//! The keys of the system file a reload does not apply (every section but
//! `[defaults]`: `[server]`, `[store]`, `[telemetry]`, …), kept as digests
//! so a reload can name what changed without keeping a second copy of a
//! secret (docs/operations.md#reloading-the-configuration).
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The section a reload applies; every other one needs a restart.
const RELOADED_SECTION: &str = "defaults";

/// `section.key` → SHA-256 of its value as written (after environment
/// overrides and interpolation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartOnly(BTreeMap<String, [u8; 32]>);

impl RestartOnly {
    /// The digests of `table`'s keys outside `[defaults]` (a whole system file).
    pub(super) fn of(table: &toml::Table) -> Self {
        let mut keys = BTreeMap::new();
        for (section, value) in table {
            if section == RELOADED_SECTION {
                continue;
            }
            match value {
                toml::Value::Table(t) => {
                    for (key, v) in t {
                        keys.insert(format!("{section}.{key}"), digest(v));
                    }
                }
                other => {
                    keys.insert(section.clone(), digest(other));
                }
            }
        }
        RestartOnly(keys)
    }

    /// The keys written, removed or changed in `newer`, sorted.
    pub fn changed_in(&self, newer: &RestartOnly) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| newer.0.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(newer.0.keys().filter(|k| !self.0.contains_key(*k)).cloned());
        names.sort();
        names
    }
}

fn digest(value: &toml::Value) -> [u8; 32] {
    Sha256::digest(value.to_string().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> RestartOnly {
        RestartOnly::of(&text.parse().unwrap())
    }

    #[test]
    fn names_changed_added_and_removed_keys_outside_defaults() {
        let old = of("[server]\nlisten = \"a\"\npepper = \"p1\"\n[store]\nbackend = \"memory\"\n[defaults]\ntoken_ttl = \"1m\"");
        let same = of("[store]\nbackend = \"memory\"\n[server]\npepper = \"p1\"\nlisten = \"a\"\n[defaults]\ntoken_ttl = \"9m\"");
        assert!(old.changed_in(&same).is_empty());
        let new = of("[server]\nlisten = \"b\"\npepper = \"p2\"\n[telemetry]\nsample_ratio = 0.5");
        assert_eq!(
            old.changed_in(&new),
            [
                "server.listen",
                "server.pepper",
                "store.backend",
                "telemetry.sample_ratio"
            ]
        );
    }

    #[test]
    fn keeps_no_value() {
        let kept = format!("{:?}", of("[server]\npepper = \"s3cret-pepper-value\""));
        assert!(!kept.contains("s3cret"), "{kept}");
    }
}
