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
use std::borrow::Cow;
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

/// A layer's head in [`ConfigPrint::for_each`]: its next key's dotted
/// name, written out, and digest (`None`: none left).
struct Head<'a> {
    prefix: &'a str,
    keys: std::collections::btree_map::Iter<'a, String, String>,
    name: Vec<u8>,
    digest: Option<&'a str>,
}

impl<'a> Head<'a> {
    /// The head of the layer of `prefix` and `keys`, at its first key.
    fn of(prefix: &'a str, keys: std::collections::btree_map::Iter<'a, String, String>) -> Self {
        let mut head = Head {
            prefix,
            keys,
            name: Vec::with_capacity(64),
            digest: None,
        };
        head.advance();
        head
    }

    /// On to the next key: its name written out (`prefix.key`, or `key`
    /// at the top).
    fn advance(&mut self) {
        let Some((key, digest)) = self.keys.next() else {
            self.digest = None;
            return;
        };
        self.name.clear();
        if !self.prefix.is_empty() {
            self.name.extend_from_slice(self.prefix.as_bytes());
            self.name.push(b'.');
        }
        self.name.extend_from_slice(key.as_bytes());
        self.digest = Some(digest);
    }
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

    /// Calls `each` with every dotted name, written out, and its digest,
    /// in the names' order, the last layer's where several have one. Each
    /// layer's name at its head is written out once, when the head moves,
    /// so that the heads compare as bytes (a print of a team has some 160
    /// names; docs/performance.md#the-build-of-a-start-cut-again).
    fn for_each(&self, mut each: impl FnMut(&[u8], &str)) {
        let mut heads: Vec<Head<'_>> = (self.layers.iter())
            .map(|l| Head::of(&l.prefix, l.keys.iter()))
            .collect();
        loop {
            // The least name at the head of a layer, the last layer's of
            // equal ones.
            let mut least: Option<usize> = None;
            for (i, head) in heads.iter().enumerate() {
                if head.digest.is_none() {
                    continue;
                }
                if least.is_none_or(|l| head.name <= heads[l].name) {
                    least = Some(i);
                }
            }
            let Some(at) = least else {
                return;
            };
            each(&heads[at].name, heads[at].digest.unwrap_or_default());
            for i in (0..heads.len()).filter(|i| *i != at) {
                if heads[i].digest.is_some() && heads[i].name == heads[at].name {
                    heads[i].advance();
                }
            }
            heads[at].advance();
        }
    }

    /// The SHA-256 of the whole print: one line `key<TAB>digest` per key,
    /// in key order.
    pub fn digest(&self) -> String {
        let made = self.digest.get_or_init(|| {
            let mut hasher = Sha256::new();
            let mut line = Vec::with_capacity(128);
            self.for_each(|name, digest| {
                line.clear();
                line.extend_from_slice(name);
                line.push(b'\t');
                line.extend_from_slice(digest.as_bytes());
                line.push(b'\n');
                hasher.update(&line);
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
                let text = plain_text(other).map_or_else(|| other.to_string().into(), Cow::Owned);
                let digest = hex::encode(Sha256::digest(text.as_bytes()));
                keys.insert(name, digest);
            }
        }
    }
}

/// The TOML text of `value` (what `toml` writes of it) where it is plain:
/// an integer, a boolean, a string of printable ASCII with no quote or
/// backslash, or an array of them; `None` for any other, which `toml`
/// writes. Made without `toml`'s writer, which a team's print calls for
/// every key of its body (docs/performance.md#the-build-of-a-start-cut-again).
fn plain_text(value: &toml::Value) -> Option<String> {
    let mut out = String::new();
    write_plain(&mut out, value).then_some(out)
}

/// Into `out`, [`plain_text`] of `value`; whether it is plain.
fn write_plain(out: &mut String, value: &toml::Value) -> bool {
    use std::fmt::Write as _;
    match value {
        toml::Value::Integer(i) => write!(out, "{i}").is_ok(),
        toml::Value::Boolean(b) => {
            out.push_str(if *b { "true" } else { "false" });
            true
        }
        toml::Value::String(s) => {
            let plain = |b: u8| (0x20..0x7f).contains(&b) && !matches!(b, b'"' | b'\\' | b'\'');
            if !s.bytes().all(plain) {
                return false;
            }
            out.push('"');
            out.push_str(s);
            out.push('"');
            true
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if !write_plain(out, item) {
                    return false;
                }
            }
            out.push(']');
            true
        }
        _ => false,
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
        let tables = [
            ("", format!("a = 1\n\"a.b\" = 2\n\"a-b\" = 3\na_b = 4\nsettings_x = 5\nsettingsa = 6\n{long} = 7")),
            ("a", "b = 8\n\"b-\" = 9".to_string()),
            ("settings", "x = 10\n\"\" = 11".to_string()),
            ("k", format!("{long} = 12")),
            ("channels.web", "kind = 13".to_string()),
        ];
        let mut p = ConfigPrint::default();
        for (prefix, table) in &tables {
            p.add_table(prefix, &toml::from_str(table).unwrap());
        }
        let mut written = Vec::new();
        p.for_each(|name, _| written.push(String::from_utf8(name.to_vec()).unwrap()));
        let keys: Vec<String> = p.keys().into_keys().collect();
        assert_eq!(
            written, keys,
            "each name once, in the order of the names written out"
        );
        assert_eq!(p.digest(), flat_digest(&p.keys()));
    }

    #[test]
    fn a_plain_value_s_text_is_toml_s() {
        let table: toml::Table = toml::from_str(concat!(
            "a = 0\nb = -42\nc = 9223372036854775807\nd = true\ne = false\n",
            "f = \"t00001\"\ng = \"https://login.example/login?team=t00001&x=%20y\"\n",
            "h = \"\"\ni = \" spaced out \"\nj = [\"webchat\"]\nk = [\"a\", \"b\", \"c\"]\n",
            "l = []\nm = [1, 2, 3]\nn = [[1, 2], [\"x\"]]\no = [true, false]\n",
            "p = \"#PIN# is ~your~ code: {x} <y> `z` | $1 ^ * ! @ ; =\"\n",
            "q = \"it's\"\nr = \"a \\\"quote\\\"\"\ns = \"tab\\there\"\nt = \"caf\u{e9}\"\n",
            "u = 1.5\nv = [{ a = 1 }]\n",
        ))
        .unwrap();
        let mut plain = 0;
        for (key, value) in &table {
            if let Some(text) = plain_text(value) {
                assert_eq!(text, value.to_string(), "{key}");
                plain += 1;
            }
        }
        assert_eq!(plain, 16, "the plain ones: a to p");
        for key in ["q", "r", "s", "t", "u", "v"] {
            assert_eq!(plain_text(&table[key]), None, "{key}");
        }
    }
}
