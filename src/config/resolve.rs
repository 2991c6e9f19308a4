//! Settings layers: `[defaults]` ← team `[settings]` ← `[channel_settings.NAME]`,
//! merged as TOML tables (deep merge), then read into the file's form of
//! the settings (`settings::file`) and turned into the domain's
//! [`Settings`], so a misspelt key is refused in whichever layer holds it.
use super::de::{from_table, join};
use super::settings::file;
use super::texts::unsupported_tag;
use super::validate::settings_problem;
use super::{ConfigError, Settings};

/// One layer: a settings table and where it was written.
#[derive(Clone)]
pub(super) struct Layer<'a> {
    pub file: &'a str,
    /// Its key path in the file: `defaults`, `settings`, `channel_settings.webchat`.
    pub prefix: String,
    pub table: &'a toml::Table,
}

/// Resolves `layers` (lowest first) into settings. Each layer is first read
/// alone (unknown keys, wrong types, bad durations are reported where they are
/// written); range rules are checked on the merged result and reported at the
/// highest layer that wrote one of the keys involved.
pub(super) fn resolve(layers: &[Layer<'_>]) -> Result<Settings, ConfigError> {
    resolve_from(layers, 0)
}

/// [`resolve`] of layers whose first, `[defaults]`, was read alone when
/// the system file was (a team's layers: its defaults are not read again
/// for each of thousands of teams).
pub(super) fn resolve_on_defaults(layers: &[Layer<'_>]) -> Result<Settings, ConfigError> {
    resolve_from(layers, 1)
}

/// [`resolve`], reading alone only the layers from `unread` on.
fn resolve_from(layers: &[Layer<'_>], unread: usize) -> Result<Settings, ConfigError> {
    let mut merged = toml::Table::new();
    for (i, layer) in layers.iter().enumerate() {
        if i >= unread {
            from_table::<file::Settings>(layer.table.clone(), layer.file, &layer.prefix)?;
        }
        merge(&mut merged, layer.table);
    }
    let Some(top) = layers.last() else {
        return Ok(Settings::default());
    };
    let settings: Settings = from_table::<file::Settings>(merged, top.file, &top.prefix)?.into();
    if let Some((keys, problem)) = settings_problem(&settings) {
        let written = layers.iter().rev().find_map(|l| {
            keys.iter()
                .find(|k| has_path(l.table, k))
                .map(|k| (l, k.as_str()))
        });
        let (layer, key) = written.unwrap_or((top, keys.first().map_or("", String::as_str)));
        return Err(ConfigError::new(
            layer.file,
            join(&layer.prefix, key),
            problem,
        ));
    }
    let written = top
        .table
        .get("translations")
        .and_then(toml::Value::as_table);
    if let Some((tag, problem)) = unsupported_tag(
        written.into_iter().flat_map(|t| t.keys()),
        &settings.locale.supported,
    ) {
        let key = join(&top.prefix, &format!("translations.{tag}"));
        return Err(ConfigError::new(top.file, key, problem));
    }
    Ok(settings)
}

/// Deep merge: tables merge key by key, any other value of `over` replaces.
pub(super) fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Whether the dotted `path` is written in `table`.
fn has_path(table: &toml::Table, path: &str) -> bool {
    let mut here = table;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        match (here.get(part), parts.peek()) {
            (Some(_), None) => return true,
            (Some(toml::Value::Table(t)), Some(_)) => here = t,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn deep_merge_keeps_untouched_keys() {
        let mut base = t("a = 1\n[otp]\nlength = 6\nttl = \"3m\"");
        merge(&mut base, &t("a = 2\n[otp]\nlength = 8"));
        assert_eq!(base["a"].as_integer(), Some(2));
        assert_eq!(base["otp"]["length"].as_integer(), Some(8));
        assert_eq!(base["otp"]["ttl"].as_str(), Some("3m"));
    }

    #[test]
    fn layers_resolve_in_order() {
        let d = t("authenticated_ttl = \"30m\"\n[otp]\nlength = 6");
        let s = t("authenticated_ttl = \"15m\"\n[otp]\nshow_to_agents = true");
        let c = t("authenticated_ttl = \"60m\"");
        let layers = [
            Layer {
                file: "sys",
                prefix: "defaults".into(),
                table: &d,
            },
            Layer {
                file: "team",
                prefix: "settings".into(),
                table: &s,
            },
            Layer {
                file: "team",
                prefix: "channel_settings.webchat".into(),
                table: &c,
            },
        ];
        let r = resolve(&layers).unwrap();
        assert_eq!(r.authenticated_ttl.get().as_secs(), 3600);
        assert!(r.otp.show_to_agents);
        assert_eq!(r.otp.length, 6);
        let r = resolve(&layers[..2]).unwrap();
        assert_eq!(r.authenticated_ttl.get().as_secs(), 900);
    }

    #[test]
    fn problems_are_reported_in_the_layer_that_wrote_them() {
        let d = t("[pin]\nmin_length = 6");
        let s = t("[pin]\nmax_length = 5");
        let layers = [
            Layer {
                file: "sys",
                prefix: "defaults".into(),
                table: &d,
            },
            Layer {
                file: "team",
                prefix: "settings".into(),
                table: &s,
            },
        ];
        let e = resolve(&layers).unwrap_err();
        assert_eq!(e.file, "team");
        assert_eq!(e.key, "settings.pin.max_length");
        let s = t("[otp]\nlenght = 5");
        let layers = [Layer {
            file: "team",
            prefix: "settings".into(),
            table: &s,
        }];
        let e = resolve(&layers).unwrap_err();
        assert_eq!(e.key, "settings.otp.lenght");
    }
}
