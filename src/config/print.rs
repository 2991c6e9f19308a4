//! A team's effective configuration as the audit trail records it
//! (docs/audit.md#configuration-changes): every dotted key of its team
//! file, its channels' files and the `[defaults]` it inherits, each with
//! the SHA-256 of its value — never a value, so a secret is only its own
//! digest (of its read-back while the operator API is on:
//! `config::form::secrets_read_back`).
//!
//! A print is kept in layers, each the keys of one table added: what a
//! team inherits (`[defaults]`, a channel's file) is one layer shared by
//! every print that inherits it, not a copy per team; the digest is made
//! once (docs/decisions/0702-what-a-team-inherits-is-shared.md).
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

/// The hex digits of a key's digest a recorded configuration keeps
/// (64 bits): a value that changes is told from the one before by them.
pub const RECORDED_DIGEST: usize = 16;

/// Dotted key → lowercase hex SHA-256 of the value's TOML text.
#[derive(Clone, Default)]
pub struct ConfigPrint {
    /// In the order added: a key of a later layer replaces an earlier's
    /// (a team's setting over the default).
    layers: Vec<Layer>,
    /// [`ConfigPrint::digest`], once made.
    digest: OnceLock<String>,
}

/// The keys of one table added, under `prefix`.
#[derive(Clone)]
struct Layer {
    /// Put before each key, with a dot; `""`: at the top.
    prefix: String,
    /// Key (below `prefix`) → its value's digest.
    keys: Arc<BTreeMap<String, String>>,
}

impl Layer {
    /// The dotted name of `key`.
    fn name(&self, key: &str) -> String {
        match self.prefix.is_empty() {
            true => key.to_owned(),
            false => format!("{}.{key}", self.prefix),
        }
    }
}

/// The order of two dotted names, each its prefix and key (`""`: none),
/// as the names written out would sort, without writing them.
fn name_order(a: (&str, &str), b: (&str, &str)) -> Ordering {
    if a.0 == b.0 {
        return a.1.cmp(b.1);
    }
    // Most names are short: written out on the stack and compared whole.
    let mut written = ([0u8; 128], [0u8; 128]);
    match (write_name(&mut written.0, a), write_name(&mut written.1, b)) {
        (Some(x), Some(y)) => written.0[..x].cmp(&written.1[..y]),
        _ => name_bytes(a).cmp(name_bytes(b)),
    }
}

/// The dotted name `(prefix, key)` written into `out`: its length, or
/// `None` when it does not fit.
fn write_name(out: &mut [u8; 128], (prefix, key): (&str, &str)) -> Option<usize> {
    let dot = usize::from(!prefix.is_empty());
    let len = prefix.len() + dot + key.len();
    if len > out.len() {
        return None;
    }
    out[..prefix.len()].copy_from_slice(prefix.as_bytes());
    out[prefix.len()..prefix.len() + dot].copy_from_slice(&b"."[..dot]);
    out[prefix.len() + dot..len].copy_from_slice(key.as_bytes());
    Some(len)
}

/// The bytes of a dotted name, its prefix and key (`""`: none).
fn name_bytes<'a>((prefix, key): (&'a str, &'a str)) -> impl Iterator<Item = u8> + 'a {
    let dot = (!prefix.is_empty()).then_some(b'.');
    prefix.bytes().chain(dot).chain(key.bytes())
}

impl ConfigPrint {
    /// Adds every key of `table` under `prefix` (`""`: at the top), a
    /// later add of a key replacing an earlier one (a team's setting over
    /// the default).
    pub(super) fn add_table(&mut self, prefix: &str, table: &toml::Table) {
        let mut keys = BTreeMap::new();
        flatten(&mut keys, "", table);
        self.digest = OnceLock::new();
        self.layers.push(Layer {
            prefix: prefix.to_owned(),
            keys: Arc::new(keys),
        });
    }

    /// Adds every key of `other` under `prefix` (`""`: as they are),
    /// sharing its layers.
    pub(super) fn add_print(&mut self, prefix: &str, other: &ConfigPrint) {
        self.digest = OnceLock::new();
        for layer in &other.layers {
            let prefix = match (prefix.is_empty(), layer.prefix.is_empty()) {
                (_, true) => prefix.to_owned(),
                (true, false) => layer.prefix.clone(),
                (false, false) => format!("{prefix}.{}", layer.prefix),
            };
            let keys = Arc::clone(&layer.keys);
            self.layers.push(Layer { prefix, keys });
        }
    }

    /// Calls `each` with every dotted name (its prefix and key) and its
    /// digest, in the names' order, the last layer's where several have
    /// one.
    fn for_each(&self, mut each: impl FnMut(&str, &str, &str)) {
        let mut heads: Vec<_> = (self.layers.iter())
            .map(|l| (l.prefix.as_str(), l.keys.iter().peekable()))
            .collect();
        loop {
            // The least name at the head of a layer, the last layer's
            // of equal ones.
            let mut least: Option<(usize, (&str, &str))> = None;
            for (i, (prefix, keys)) in heads.iter_mut().enumerate() {
                let Some(&(key, _)) = keys.peek() else {
                    continue;
                };
                let name = (*prefix, key.as_str());
                if least.is_none_or(|(_, l)| name_order(name, l) != Ordering::Greater) {
                    least = Some((i, name));
                }
            }
            let Some((at, name)) = least else {
                return;
            };
            let mut digest = "";
            for (i, (prefix, keys)) in heads.iter_mut().enumerate() {
                let same = keys
                    .peek()
                    .is_some_and(|&(key, _)| name_order((*prefix, key.as_str()), name).is_eq());
                if same {
                    let (_, d) = keys.next().unwrap_or_else(|| unreachable!());
                    if i == at {
                        digest = d.as_str();
                    }
                }
            }
            each(name.0, name.1, digest);
        }
    }

    /// The SHA-256 of the whole print: one line `key<TAB>digest` per key,
    /// in key order.
    pub fn digest(&self) -> String {
        let made = self.digest.get_or_init(|| {
            let mut hasher = Sha256::new();
            self.for_each(|prefix, key, digest| {
                if !prefix.is_empty() {
                    hasher.update(prefix.as_bytes());
                    hasher.update(b".");
                }
                hasher.update(key.as_bytes());
                hasher.update(b"\t");
                hasher.update(digest.as_bytes());
                hasher.update(b"\n");
            });
            hex::encode(hasher.finalize())
        });
        made.clone()
    }

    /// The keys and their digests.
    pub fn keys(&self) -> BTreeMap<String, String> {
        let mut keys = BTreeMap::new();
        for layer in &self.layers {
            for (key, digest) in layer.keys.iter() {
                keys.insert(layer.name(key), digest.clone());
            }
        }
        keys
    }

    /// The keys with their digests cut to [`RECORDED_DIGEST`] hex digits:
    /// what a recorded configuration keeps of them, enough to tell which
    /// changed (docs/decisions/0703-a-recorded-configuration-keeps-short-digests.md).
    pub fn recorded_keys(&self) -> BTreeMap<String, String> {
        let mut keys = self.keys();
        for digest in keys.values_mut() {
            digest.truncate(RECORDED_DIGEST);
        }
        keys
    }

    /// The keys whose value differs from `older`'s, or that only one has.
    /// A digest of `older` may be cut short ([`ConfigPrint::recorded_keys`]):
    /// it is the same when it begins this one's.
    pub fn changed_since(&self, older: &BTreeMap<String, String>) -> Vec<String> {
        let keys = self.keys();
        let same = |old: &String, new: &String| {
            old.len() >= RECORDED_DIGEST && new.starts_with(old.as_str())
        };
        let mut names: Vec<String> = keys
            .iter()
            .filter(|(k, v)| !older.get(*k).is_some_and(|old| same(old, v)))
            .map(|(k, _)| k.clone())
            .collect();
        names.extend(older.keys().filter(|k| !keys.contains_key(*k)).cloned());
        names.sort();
        names
    }
}

/// Into `keys`, every key of `table` under `prefix` (`""`: at the top),
/// each with its value's digest.
fn flatten(keys: &mut BTreeMap<String, String>, prefix: &str, table: &toml::Table) {
    for (key, value) in table {
        let name = match prefix.is_empty() {
            true => key.clone(),
            false => format!("{prefix}.{key}"),
        };
        match value {
            toml::Value::Table(t) => flatten(keys, &name, t),
            other => {
                let digest = hex::encode(Sha256::digest(other.to_string().as_bytes()));
                keys.insert(name, digest);
            }
        }
    }
}

impl PartialEq for ConfigPrint {
    fn eq(&self, other: &Self) -> bool {
        self.keys() == other.keys()
    }
}

impl Eq for ConfigPrint {}

impl std::fmt::Debug for ConfigPrint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ConfigPrint").field(&self.keys()).finish()
    }
}

impl From<BTreeMap<String, String>> for ConfigPrint {
    fn from(keys: BTreeMap<String, String>) -> Self {
        let layer = Layer {
            prefix: String::new(),
            keys: Arc::new(keys),
        };
        ConfigPrint {
            layers: vec![layer],
            digest: OnceLock::new(),
        }
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
            b.changed_since(&a.keys()),
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
            gone.changed_since(&a.keys()),
            ["oidc.client_secret", "settings.otp.ttl"]
        );
    }

    /// The digest as every earlier version made it, of the keys written
    /// out in one map: what recorded digests and `ETag`s were made with.
    fn flat_digest(keys: &BTreeMap<String, String>) -> String {
        let mut hasher = Sha256::new();
        for (key, digest) in keys {
            hasher.update(format!("{key}\t{digest}\n").as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    #[test]
    fn layers_shared_give_the_digest_of_the_keys_written_out() {
        let mut channel = ConfigPrint::default();
        channel.add_table(
            "",
            &toml::from_str("kind = \"webchat\"\nname = \"web\"").unwrap(),
        );
        let defaults = "a-b = 1\na_b = 2\n[a]\nb = 3\nz = 4\n[lockout]\nthreshold = 5";
        let mut p = print(defaults, "id = \"t\"\nsettings_x = 1\nsettingsa = 2\n[settings.lockout]\nthreshold = 3\n[settings.a]\nc = 3");
        let shared = p.clone();
        p.add_print("channels.web", &channel);
        p.add_print("channels.w", &channel);
        let keys = p.keys();
        assert_eq!(
            keys["settings.lockout.threshold"], keys["settings.a.c"],
            "the team's over the default"
        );
        assert_eq!(keys.len(), 13, "{keys:?}");
        assert_eq!(p.digest(), flat_digest(&keys));
        assert_eq!(p.digest(), ConfigPrint::from(keys).digest());
        assert_ne!(
            p.digest(),
            shared.digest(),
            "made again once a layer is added"
        );
        assert_eq!(shared.digest(), flat_digest(&shared.keys()));
        // Shared, not copied.
        assert!(Arc::ptr_eq(&p.layers[0].keys, &shared.layers[0].keys));
        assert!(Arc::ptr_eq(&p.layers[2].keys, &p.layers[3].keys));
    }

    #[test]
    fn a_recorded_configuration_s_short_digests_tell_what_changed() {
        let a = print("[otp]\nttl = \"5m\"", "id = \"acme\"\nlogin_url = \"a\"");
        let b = print("[otp]\nttl = \"2m\"", "id = \"acme\"\nlogin_url = \"a\"");
        let recorded = a.recorded_keys();
        assert!(recorded.values().all(|d| d.len() == RECORDED_DIGEST));
        assert_eq!(b.changed_since(&recorded), ["settings.otp.ttl"]);
        assert!(a.changed_since(&recorded).is_empty());
        // As recorded before: whole digests.
        assert_eq!(b.changed_since(&a.keys()), ["settings.otp.ttl"]);
        assert!(a.changed_since(&a.keys()).is_empty());
    }

    #[test]
    fn names_sort_as_written_out() {
        let long = "k".repeat(200);
        let names = [
            ("", "a"),
            ("", "a.b"),
            ("a", "b"),
            ("a", "b-"),
            ("", "a-b"),
            ("", "a_b"),
            ("settings", "x"),
            ("", "settings_x"),
            ("", "settingsa"),
            ("settings", ""),
            ("", long.as_str()),
            ("k", long.as_str()),
            ("channels.web", "kind"),
        ];
        let written = |(p, k): (&str, &str)| match p.is_empty() {
            true => k.to_string(),
            false => format!("{p}.{k}"),
        };
        for a in names {
            for b in names {
                assert_eq!(name_order(a, b), written(a).cmp(&written(b)), "{a:?} {b:?}");
            }
        }
    }
}
