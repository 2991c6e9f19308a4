//! Property tests over configuration values: durations parse and
//! round-trip, bad ones stop the load with one line naming the key; `${VAR}`
//! expansion and `CHATGATE_…__…` overrides never panic, and their errors
//! never quote the text. Case counts are small: a load writes a tree.
use std::time::Duration;

use proptest::prelude::*;

use super::super::de::from_table;
use super::super::interpolate::{expand, is_single_reference};
use super::{assert_no_secret, Fixture};
use crate::config::{Dur, Environment};
use crate::domain::proptests::cases;

const SYS: &str = "config/chatgate.toml";

/// Arbitrary text, including control and format characters and NUL.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f\u{200b}\u{202e}\u{feff}0-9smhdy .:+-]{0,24}",
        "[0-9]{1,25}(ns|us|ms|s|m|h|d|w|M|y|min|sec|hours|days)?",
    ]
}

/// A TOML basic string holding `s` exactly.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

proptest! {
    #![proptest_config(cases(256))]

    #[test]
    fn any_text_is_a_duration_or_the_duration_error(s in text()) {
        if let Err(e) = Dur::parse(&s) {
            prop_assert!(e.ends_with("is not a duration (write e.g. \"90s\", \"10m\", \"2h\")"), "{}", e);
            prop_assert!(!e.contains('\n'), "{}", e);
        }
    }

    #[test]
    fn whole_units_parse_to_their_length(
        n in 0u64..1_000_000_000,
        (unit, secs) in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3_600), ("d", 86_400)]),
        pad in "[ \t]{0,2}",
    ) {
        let d = Dur::parse(&format!("{pad}{n}{unit}{pad}")).unwrap();
        prop_assert_eq!(d.get(), Duration::from_secs(n * secs));
        prop_assert_eq!(d.enabled().is_none(), n == 0);
    }

    #[test]
    fn display_and_serialisation_round_trip(secs in 0u64..100_000_000_000, nanos in 0u32..1_000_000_000) {
        let d = Dur(Duration::new(secs, nanos));
        prop_assert_eq!(Dur::parse(&d.to_string()).unwrap(), d);
        // The wire form is whole seconds.
        let whole = Dur::from_secs(secs);
        let json = serde_json::to_value(d).unwrap();
        prop_assert_eq!(serde_json::from_value::<Dur>(json).unwrap(), whole);
    }

    #[test]
    fn expansion_never_panics_and_never_quotes_the_text(s in any::<String>(), inner in "[a-z]{2,6} [A-Za-z0-9]{6,20}") {
        let env = Environment::from_pairs([("A", "alpha")]);
        let _ = expand(&s, &env, std::path::Path::new("."), |_| {});
        let err = expand(&format!("x ${{{inner}}} y"), &env, std::path::Path::new("."), |_| {}).unwrap_err();
        prop_assert!(!err.contains(&inner), "{}", err);
        if !s.contains('$') {
            prop_assert_eq!(expand(&s, &env, std::path::Path::new("."), |_| panic!("no reference")).unwrap(), s);
        }
    }

    /// `$${` writes `${`: escaping every `${` gives back the text exactly.
    #[test]
    fn escaped_text_expands_to_itself(s in "[a-z${}:-]{0,40}|.{0,40}") {
        let escaped = s.replace("${", "$${");
        let env = Environment::default();
        prop_assert_eq!(expand(&escaped, &env, std::path::Path::new("."), |_| panic!("no reference")).unwrap(), s);
    }

    #[test]
    fn references_expand_to_their_value_or_default(
        name in "[A-Za-z_][A-Za-z0-9_]{0,20}",
        value in ".{0,30}",
        default in "[^}]{0,20}",
        before in "[^$]{0,10}",
        after in "[^$]{0,10}",
        set in any::<bool>(),
    ) {
        let env = if set { Environment::from_pairs([(name.clone(), value.clone())]) } else { Environment::default() };
        let mut defaulted = vec![];
        let r = expand(&format!("{before}${{{name}:-{default}}}{after}"), &env, std::path::Path::new("."), |n| defaulted.push(n.to_string()));
        let used_default = !set || value.is_empty();
        let middle = if used_default { &default } else { &value };
        prop_assert_eq!(r.unwrap(), format!("{before}{middle}{after}"));
        prop_assert_eq!(defaulted, if used_default { vec![name.clone()] } else { vec![] });
        let (single, with_default) = (format!("${{{name}}}"), format!("${{{name}:-{default}}}"));
        prop_assert!(is_single_reference(&single));
        prop_assert!(is_single_reference(&with_default));
        let bare = expand(&format!("${{{name}}}"), &env, std::path::Path::new("."), |_| {});
        if set {
            prop_assert_eq!(bare.unwrap(), value);
        } else {
            prop_assert_eq!(bare.unwrap_err(), format!("environment variable {name} is not set"));
        }
    }

    /// A wrong-typed value may be a secret: the error names the key and the
    /// kinds, never the value.
    #[test]
    fn wrong_types_never_quote_the_value(secret in "[A-Za-z0-9]{8,30}", as_key in any::<bool>()) {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S { n: u32, flag: bool }
        let text = if as_key {
            format!("n = 1\nflag = true\n{secret} = 1")
        } else {
            format!("n = 1\nflag = {}", toml_string(&secret))
        };
        let e = from_table::<S>(text.parse().unwrap(), "f.toml", "pre").unwrap_err();
        let line = e.to_string();
        // An unknown key is named (it is a key, not a value); a value never.
        prop_assert_eq!(line.contains(&secret), as_key, "{}", line);
    }
}

proptest! {
    // Each case writes and loads a whole configuration tree.
    #![proptest_config(cases(24))]

    #[test]
    fn a_configured_duration_loads_or_names_its_key(s in text(), by_env in any::<bool>()) {
        // `$` would be a reference; references have properties of their own.
        prop_assume!(!s.contains('$'));
        let mut fx = Fixture::new();
        if by_env {
            fx.set_env("CHATGATE_DEFAULTS__AUTHENTICATED_TTL", &s);
        } else {
            fx.edit(SYS, "authenticated_ttl = \"30m\"", &format!("authenticated_ttl = {}", toml_string(&s)));
        }
        match (fx.load(), Dur::parse(&s)) {
            (Ok(config), Ok(d)) => prop_assert_eq!(config.defaults.authenticated_ttl, d),
            (Err(e), parsed) => {
                let line = e.to_string();
                prop_assert!(e.file.ends_with(SYS), "{}", line);
                prop_assert_eq!(&e.key, "defaults.authenticated_ttl", "{}", line);
                prop_assert!(parsed.is_err() || parsed.unwrap().enabled().is_none(), "{}", line);
                prop_assert!(!line.contains('\n'), "{}", line);
                prop_assert_eq!(by_env, line.contains("(set by CHATGATE_DEFAULTS__AUTHENTICATED_TTL)"), "{}", line);
                assert_no_secret(&line);
            }
            (Ok(_), Err(e)) => prop_assert!(false, "loaded although {}", e),
        }
    }

    #[test]
    fn any_override_loads_or_names_its_key(
        path in prop::collection::vec("[A-Za-z0-9_]{0,12}", 1..4),
        value in text(),
    ) {
        let mut fx = Fixture::new();
        let name = format!("CHATGATE_{}", path.join("__"));
        fx.set_env(&name, &value);
        if let Err(e) = fx.load() {
            let line = e.to_string();
            prop_assert!(!line.contains('\n'), "{}", line);
            assert_no_secret(&line);
        }
    }
}
