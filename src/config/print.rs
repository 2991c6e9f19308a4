//! A team's effective configuration as the audit trail records it
//! (docs/audit.md#configuration-changes): every dotted key of its team
//! file, its channels' files and the `[defaults]` it inherits, each with
//! the SHA-256 of its value — never a value, so a secret is only its own
//! digest (of its read-back while the operator API is on:
//! `config::form::secrets_read_back`).
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// Dotted key → lowercase hex SHA-256 of the value's TOML text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigPrint(BTreeMap<String, String>);

impl ConfigPrint {
    /// Adds every key of `table` under `prefix` (`""`: at the top), a
    /// later add of a key replacing an earlier one (a team's setting over
    /// the default).
    pub(super) fn add_table(&mut self, prefix: &str, table: &toml::Table) {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(t) => self.add_table(&name, t),
                other => {
                    let digest = hex::encode(Sha256::digest(other.to_string().as_bytes()));
                    self.0.insert(name, digest);
                }
            }
        }
    }

    /// Adds every key of `other` under `prefix` (`""`: as they are), a
    /// later add of a key replacing an earlier one.
    pub(super) fn add_print(&mut self, prefix: &str, other: &ConfigPrint) {
        for (key, digest) in &other.0 {
            let name = match prefix {
                "" => key.clone(),
                _ => format!("{prefix}.{key}"),
            };
            self.0.insert(name, digest.clone());
        }
    }

    /// The SHA-256 of the whole print: one line `key<TAB>digest` per key,
    /// in key order.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (key, digest) in &self.0 {
            hasher.update(key.as_bytes());
            hasher.update(b"\t");
            hasher.update(digest.as_bytes());
            hasher.update(b"\n");
        }
        hex::encode(hasher.finalize())
    }

    /// The keys and their digests.
    pub fn keys(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// The keys whose value differs from `older`'s, or that only one has.
    pub fn changed_since(&self, older: &BTreeMap<String, String>) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .iter()
            .filter(|(k, v)| older.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(older.keys().filter(|k| !self.0.contains_key(*k)).cloned());
        names.sort();
        names
    }
}

impl From<BTreeMap<String, String>> for ConfigPrint {
    fn from(keys: BTreeMap<String, String>) -> Self {
        ConfigPrint(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn print(defaults: &str, team: &str) -> ConfigPrint {
        let mut p = ConfigPrint::default();
        p.add_table("settings", &toml::from_str(defaults).unwrap());
        p.add_table("", &toml::from_str(team).unwrap());
        p
    }

    #[test]
    fn a_print_names_keys_and_never_a_value() {
        let a = print(
            "[otp]\nttl = \"5m\"",
            "id = \"acme\"\n[oidc]\nclient_secret = \"s3cret\"",
        );
        let b = print(
            "[otp]\nttl = \"5m\"",
            "id = \"acme\"\n[oidc]\nclient_secret = \"other\"\n[settings.otp]\nttl = \"2m\"",
        );
        assert_ne!(a.digest(), b.digest());
        assert_eq!(
            b.changed_since(a.keys()),
            ["oidc.client_secret", "settings.otp.ttl"]
        );
        let text = format!("{:?}", b);
        assert!(!text.contains("other") && !text.contains("2m"), "{text}");
        // The same configuration, the same digest.
        assert_eq!(
            a.digest(),
            print(
                "[otp]\nttl = \"5m\"",
                "id = \"acme\"\n[oidc]\nclient_secret = \"s3cret\""
            )
            .digest()
        );
        let gone = print("", "id = \"acme\"");
        assert_eq!(
            gone.changed_since(a.keys()),
            ["oidc.client_secret", "settings.otp.ttl"]
        );
    }
}
