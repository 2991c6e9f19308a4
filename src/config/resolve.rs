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
    let mut merged = toml::Table::new();
    for layer in layers {
        from_table::<file::Settings>(layer.table.clone(), layer.file, &layer.prefix)?;
        merge(&mut merged, layer.table);
    }
    let Some(top) = layers.last() else {
        return Ok(Settings::default());
    };
    let settings: Settings = from_table::<file::Settings>(merged, top.file, &top.prefix)?.into();
    checked(settings, layers, None)
}

/// [`resolve`] of `layers` whose last is the only one not resolved yet:
/// `below` is what the others resolved to, checked when they were (a
/// team's `[defaults]`, read once with the system file; a channel's
/// team). Only the last layer is read, and put over `below` key by key
/// (`file::Settings::over`), as the merged tables would read; the rules
/// are checked on the result, and a text only where it is not `below`'s
/// (docs/decisions/0750-a-team-s-settings-are-read-over-the-resolved-defaults.md).
pub(super) fn resolve_over(
    below: &Settings,
    layers: &[Layer<'_>],
) -> Result<Settings, ConfigError> {
    let Some(top) = layers.last() else {
        return Ok(below.clone());
    };
    let written = from_table::<file::Settings>(top.table.clone(), top.file, &top.prefix)?;
    checked(written.over(below), layers, Some(below))
}

/// `settings`, resolved from `layers`, if they break no rule: a rule
/// broken is reported at the highest layer that wrote one of its keys.
/// `below`: settings checked already whose texts these share, not checked
/// again.
fn checked(
    settings: Settings,
    layers: &[Layer<'_>],
    below: Option<&Settings>,
) -> Result<Settings, ConfigError> {
    let Some(top) = layers.last() else {
        return Ok(settings);
    };
    if let Some((keys, problem)) = settings_problem(&settings, below) {
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

    /// A layer put over the settings below it reads as the merged tables
    /// do, for every kind of member: a value, a table of values, texts, a
    /// table of tables (translations, intents), an array; a rule broken
    /// is reported where it was written, as a merge reports it.
    #[test]
    fn a_layer_over_the_resolved_ones_reads_as_the_merged_tables() {
        let d = t(r##"
            authenticated_ttl = "30m"
            [otp]
            length = 6
            ladder = []
            [lockout]
            threshold = 5
            window = "1h"
            [templates]
            otp = "Code #PIN#, #MINUTES# minutes."
            pin_prompt = "PIN?"
            [locale]
            default = "en"
            supported = ["en", "es"]
            [translations.es]
            otp = "Codigo #PIN#, #MINUTES# minutos."
            pin_prompt = "PIN, por favor."
            [intents.payment]
            max_age = "5m"
            methods = ["otp", "app"]
            [intents.balance]
            max_age = "30m"
        "##);
        fn layer(table: &toml::Table) -> Layer<'_> {
            Layer {
                file: "team",
                prefix: "settings".into(),
                table,
            }
        }
        let defaults = Layer {
            file: "sys",
            prefix: "defaults".into(),
            table: &d,
        };
        let below = resolve(std::slice::from_ref(&defaults)).unwrap();
        let written = [
            "",
            "[lockout]\nthreshold = 3",
            "authenticated_ttl = \"15m\"\n[otp]\nshow_to_agents = true",
            "[templates]\npin_prompt = \"Your PIN?\"",
            "[translations.es]\npin_prompt = \"Tu PIN?\"",
            "[locale]\nsupported = [\"en\", \"es\", \"fr\"]\n[translations.fr]\npin_prompt = \"Votre PIN ?\"",
            "[intents.payment]\nmax_age = \"1m\"\n[intents.refund]\nmethods = [\"pin\"]",
            "[locale]\nsupported = [\"en\"]",
        ];
        for text in written {
            let top = t(text);
            let layers = [defaults.clone(), layer(&top)];
            let merged = format!("{:?}", resolve(&layers).unwrap());
            let over = resolve_over(&below, &layers).unwrap();
            assert_eq!(format!("{over:?}"), merged, "{text}");
            let untouched = !text.contains("templates");
            assert_eq!(
                std::sync::Arc::ptr_eq(&over.templates, &below.templates),
                untouched
            );
        }
        let broken = [
            ("[lockout]\nthreshold = 0", "settings.lockout.threshold"),
            ("[templates]\notp = \"no code\"", "settings.templates.otp"),
            ("[otp]\nlenght = 5", "settings.otp.lenght"),
            (
                "[translations.de]\notp = \"#PIN# #MINUTES#\"",
                "settings.translations.de",
            ),
        ];
        for (text, key) in broken {
            let top = t(text);
            let layers = [defaults.clone(), layer(&top)];
            let merged = resolve(&layers).unwrap_err();
            let over = resolve_over(&below, &layers).unwrap_err();
            assert_eq!(
                (&over.file, &over.key),
                (&merged.file, &merged.key),
                "{text}"
            );
            assert_eq!(over.key, key, "{text}");
            assert_eq!(over.problem, merged.problem, "{text}");
        }
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
