//! The environment the loader reads: `${NAME}` references and
//! `CHATGATE_<SECTION>__<KEY>` overrides of the system file.
//!
//! Only names that start with `CHATGATE_` *and* contain a double underscore
//! are overrides, so `CHATGATE_PEPPER` stays an ordinary variable. The parts
//! between `__` are lower-cased keys: `CHATGATE_DEFAULTS__OTP__LENGTH=8` sets
//! `[defaults.otp] length = 8`. A value replaces a string as a string;
//! otherwise it is read as a TOML value when it is one (`8`, `true`,
//! `"quoted"`) and as a string when not (`redis`, `127.0.0.1:8080`).
use std::collections::BTreeMap;
use std::fmt;

use super::ConfigError;

/// The prefix of override variables.
const PREFIX: &str = "CHATGATE_";

/// A snapshot of environment variables. `Debug` lists names, never values.
#[derive(Clone, Default)]
pub struct Environment {
    /// `Err(())` for a value that is not UTF-8.
    vars: BTreeMap<String, Result<String, ()>>,
}

impl Environment {
    /// The variables of this process (names that are not UTF-8 are skipped).
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().map_err(|_| ()))))
            .collect();
        Environment { vars }
    }

    /// An environment holding exactly `pairs`.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let vars = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Ok(v.into())))
            .collect();
        Environment { vars }
    }

    /// `None` when unset; `Some(Err(()))` when set but not UTF-8.
    pub(super) fn get(&self, name: &str) -> Option<Result<&str, ()>> {
        self.vars.get(name).map(|v| v.as_deref().map_err(|_| ()))
    }

    /// Applies every `CHATGATE_…__…` variable to the system file's table.
    pub(super) fn apply_overrides(
        &self,
        table: &mut toml::Table,
        file: &str,
    ) -> Result<Overrides, ConfigError> {
        let mut applied = Overrides::default();
        for (name, value) in &self.vars {
            let Some(rest) = name.strip_prefix(PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let value = value.as_deref().map_err(|_| {
                ConfigError::new(
                    file,
                    name.as_str(),
                    "the override's value is not valid UTF-8",
                )
            })?;
            let keys: Vec<String> = rest.split("__").map(str::to_lowercase).collect();
            if keys.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    file,
                    name.as_str(),
                    "environment override with an empty key (write CHATGATE_SECTION__KEY)",
                ));
            }
            set_path(table, &keys, value).map_err(|problem| {
                ConfigError::new(file, keys.join("."), format!("{problem} (set by {name})"))
            })?;
            applied.0.push((keys.join("."), name.clone()));
        }
        Ok(applied)
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

/// Sets `keys` (a path of tables) to `raw`, creating tables on the way.
fn set_path(table: &mut toml::Table, keys: &[String], raw: &str) -> Result<(), String> {
    let Some((last, parents)) = keys.split_last() else {
        return Ok(());
    };
    let mut here = table;
    for (i, key) in parents.iter().enumerate() {
        let entry = here
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("{} is not a table", keys[..=i].join("."))),
        };
    }
    let value = match here.get(last) {
        Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
        _ => parse_value(raw),
    };
    here.insert(last.clone(), value);
    Ok(())
}

/// `raw` as a TOML value if it is one, else as a string.
fn parse_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The overrides applied: key path and variable name.
#[derive(Debug, Default)]
pub(super) struct Overrides(Vec<(String, String)>);

impl Overrides {
    /// Adds "(set by NAME)" to an error about a key an override wrote.
    pub(super) fn annotate(&self, mut err: ConfigError) -> ConfigError {
        let hit = self.0.iter().find(|(path, _)| {
            err.key == *path
                || err.key.starts_with(&format!("{path}."))
                || err.key.starts_with(&format!("{path}["))
        });
        if let Some((_, name)) = hit {
            err.problem = format!("{} (set by {name})", err.problem);
        }
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, pairs: &[(&str, &str)]) -> Result<toml::Table, ConfigError> {
        let mut t: toml::Table = text.parse().unwrap();
        Environment::from_pairs(pairs.iter().copied()).apply_overrides(&mut t, "f.toml")?;
        Ok(t)
    }

    #[test]
    fn only_double_underscore_names_override_and_keys_are_lowercased() {
        let t = apply(
            "[store]\nbackend = \"memory\"\n[server]\nlisten = \"x\"",
            &[
                ("CHATGATE_STORE__BACKEND", "redis"),
                ("CHATGATE_PEPPER", "not-an-override"),
                ("CHATGATE_DEFAULTS__OTP__LENGTH", "8"),
                ("CHATGATE_SERVER__LISTEN", "0.0.0.0:9999"),
                ("OTHER__THING", "1"),
            ],
        )
        .unwrap();
        assert_eq!(t["store"]["backend"].as_str(), Some("redis"));
        assert_eq!(t["defaults"]["otp"]["length"].as_integer(), Some(8));
        assert_eq!(t["server"]["listen"].as_str(), Some("0.0.0.0:9999"));
        assert!(t.get("pepper").is_none());
        assert!(t.get("other").is_none());
    }

    #[test]
    fn string_keys_stay_strings_and_other_values_parse_as_toml() {
        let t = apply(
            "[store]\nkey_prefix = \"a\"",
            &[
                ("CHATGATE_STORE__KEY_PREFIX", "123"),
                ("CHATGATE_DEFAULTS__OTP__SHOW_TO_AGENTS", "true"),
            ],
        )
        .unwrap();
        assert_eq!(t["store"]["key_prefix"].as_str(), Some("123"));
        assert_eq!(t["defaults"]["otp"]["show_to_agents"].as_bool(), Some(true));
    }

    #[test]
    fn bad_override_names_the_variable() {
        let e = apply(
            "[server]\nlisten = \"x\"",
            &[("CHATGATE_SERVER__LISTEN__PORT", "1")],
        )
        .unwrap_err();
        assert_eq!(e.key, "server.listen.port");
        assert!(e.problem.contains("CHATGATE_SERVER__LISTEN__PORT"), "{e}");
        let e = apply("", &[("CHATGATE_SERVER__", "1")]).unwrap_err();
        assert!(e.to_string().contains("empty key"), "{e}");
    }

    #[test]
    fn annotate_marks_errors_under_an_overridden_key() {
        let mut t = toml::Table::new();
        let o = Environment::from_pairs([("CHATGATE_STORE__BACKEND", "x")])
            .apply_overrides(&mut t, "f")
            .unwrap();
        let e = o.annotate(ConfigError::new("f", "store.backend", "bad"));
        assert_eq!(e.problem, "bad (set by CHATGATE_STORE__BACKEND)");
        let e = o.annotate(ConfigError::new("f", "store.backend_x", "bad"));
        assert_eq!(e.problem, "bad");
    }

    #[test]
    fn debug_never_shows_values() {
        let env = Environment::from_pairs([("SECRET_NAME", "hunter2-value")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("SECRET_NAME") && !shown.contains("hunter2"));
    }
}
