//! What a channel file may override in the text it sends: its
//! `[templates]`; and the settings as the files write them ([`file`]).
//! The settings themselves are the domain's (`domain::settings`); `config`
//! reads the files into them.
use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::domain::settings::{Templates, Texts};

/// A channel file's `[templates]`: any key of the templates may be
/// overridden; `subject` is the e-mail subject of `smtp` channels.
#[derive(Debug, Clone, Default)]
pub struct TemplateOverrides {
    /// Key of the templates → text.
    pub texts: Texts,
    pub subject: Option<String>,
}

impl<'de> Deserialize<'de> for TemplateOverrides {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut texts = Texts::deserialize(d)?;
        let subject = texts.remove("subject");
        known_keys(&texts, &["subject"])?;
        Ok(TemplateOverrides { texts, subject })
    }
}

/// Texts as a file writes them (`[templates]`, `[translations.TAG]`): the
/// keys of [`Templates`] only, so a key added there is one here at once.
#[derive(Debug, Clone, Default)]
pub struct FileTexts(pub Texts);

impl<'de> Deserialize<'de> for FileTexts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let texts = Texts::deserialize(d)?;
        known_keys(&texts, &[])?;
        Ok(FileTexts(texts))
    }
}

/// Refuses a key that is not one of the templates' (nor of `also`), as
/// serde words an unknown field.
fn known_keys<E: de::Error>(texts: &Texts, also: &[&str]) -> Result<(), E> {
    let keys = Templates::keys();
    match texts
        .keys()
        .find(|k| !keys.contains(&k.as_str()) && !also.contains(&k.as_str()))
    {
        Some(k) => {
            let expected: Vec<String> = keys.iter().chain(also).map(|k| format!("`{k}`")).collect();
            Err(E::custom(format!(
                "unknown field `{k}`, expected one of {}",
                expected.join(", ")
            )))
        }
        None => Ok(()),
    }
}

/// The settings as the files write them (`[defaults]`, a team's
/// `[settings]`, `[channel_settings.NAME]`): the domain's
/// [`Settings`](crate::domain::settings::Settings) tree, each key optional.
/// A key left out is the domain's default; `deny_unknown_fields` refuses a
/// misspelt key in any layer. The types keep the domain's names, so serde's
/// messages (which name them) read as before.
pub(super) mod file {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use crate::domain::{abuse, number_check, settings as domain};
    use crate::time::Dur;

    /// A file's value read into the domain's.
    trait Read<T> {
        fn read(self) -> T;
    }

    macro_rules! as_is {
        ($($t:ty),+) => {$(
            impl Read<$t> for $t {
                fn read(self) -> $t {
                    self
                }
            }
        )+};
    }

    as_is!(Dur, u32, bool, String);

    /// A layer's value put over `base`, what the layers below it resolved
    /// to: the value their tables merged (a table key by key, any other
    /// value replacing) would read as, without reading those layers again
    /// (docs/decisions/0750-a-team-s-settings-are-read-over-the-resolved-defaults.md).
    trait Over<T> {
        fn over(self, base: &T) -> T;
    }

    /// Values a layer replaces whole.
    macro_rules! replaces {
        ($($t:ty),+) => {$(
            impl Over<$t> for $t {
                fn over(self, _: &$t) -> $t {
                    self
                }
            }
        )+};
    }

    replaces!(Dur, u32, bool, String);

    /// An array replaces the one below, as in the tables.
    impl<A: Read<B>, B> Over<Vec<B>> for Vec<A> {
        fn over(self, _: &Vec<B>) -> Vec<B> {
            self.read()
        }
    }

    /// An optional value written (an intent's member) replaces.
    impl<A: Read<B>, B> Over<Option<B>> for Option<A> {
        fn over(self, _: &Option<B>) -> Option<B> {
            self.read()
        }
    }

    /// A shared value put over: a new one (the base's is kept, shared,
    /// where the layer writes none of its members).
    impl<A: Over<B>, B> Over<std::sync::Arc<B>> for A {
        fn over(self, base: &std::sync::Arc<B>) -> std::sync::Arc<B> {
            std::sync::Arc::new(self.over(&**base))
        }
    }

    /// A table of tables: each one written put over the base's of its
    /// name, or over the default where the base has none.
    impl<A: Over<B>, B: Default + Clone> Over<BTreeMap<String, B>> for BTreeMap<String, A> {
        fn over(self, base: &BTreeMap<String, B>) -> BTreeMap<String, B> {
            let mut merged = base.clone();
            for (name, written) in self {
                let below = merged.remove(&name).unwrap_or_default();
                merged.insert(name, written.over(&below));
            }
            merged
        }
    }

    /// Texts key by key.
    impl Over<domain::Texts> for super::FileTexts {
        fn over(self, base: &domain::Texts) -> domain::Texts {
            let mut texts = base.clone();
            texts.extend(self.0);
            texts
        }
    }

    impl Over<domain::Templates> for Templates {
        fn over(self, base: &domain::Templates) -> domain::Templates {
            let mut t = base.clone();
            for (key, text) in self.0 .0 {
                t.set(&key, text);
            }
            t
        }
    }

    impl Settings {
        /// This layer put over `base` ([`Over`]).
        pub(in crate::config) fn over(self, base: &domain::Settings) -> domain::Settings {
            Over::over(self, base)
        }
    }

    impl<A: Read<B>, B> Read<Vec<B>> for Vec<A> {
        fn read(self) -> Vec<B> {
            self.into_iter().map(Read::read).collect()
        }
    }

    /// A value the domain shares (`Settings::share_texts`), read as itself.
    impl<A: Read<B>, B> Read<std::sync::Arc<B>> for A {
        fn read(self) -> std::sync::Arc<B> {
            std::sync::Arc::new(self.read())
        }
    }

    impl<A: Read<B>, B> Read<Option<B>> for Option<A> {
        fn read(self) -> Option<B> {
            self.map(Read::read)
        }
    }

    impl<A: Read<B>, B> Read<BTreeMap<String, B>> for BTreeMap<String, A> {
        fn read(self) -> BTreeMap<String, B> {
            self.into_iter().map(|(k, v)| (k, v.read())).collect()
        }
    }

    /// A table of the domain's struct `$m::$name`: every key optional, the
    /// domain's default where it is left out.
    macro_rules! table {
        ($m:ident::$name:ident { $($f:ident: $t:ty),+ $(,)? }) => {
            #[derive(Debug, Default, Deserialize)]
            #[serde(deny_unknown_fields)]
            pub(in crate::config) struct $name {
                $($f: Option<$t>),+
            }

            impl Read<$m::$name> for $name {
                fn read(self) -> $m::$name {
                    let d = $m::$name::default();
                    $m::$name {
                        $($f: match self.$f {
                            Some(v) => v.read(),
                            None => d.$f,
                        }),+
                    }
                }
            }

            impl Over<$m::$name> for $name {
                fn over(self, base: &$m::$name) -> $m::$name {
                    $m::$name {
                        $($f: match self.$f {
                            Some(v) => v.over(&base.$f),
                            None => base.$f.clone(),
                        }),+
                    }
                }
            }
        };
    }

    impl From<Settings> for domain::Settings {
        fn from(f: Settings) -> Self {
            f.read()
        }
    }

    /// A name the files write for the domain's enum `$m::$name` (serde's
    /// snake case of the variant).
    macro_rules! names {
        ($m:ident::$name:ident { $($v:ident),+ $(,)? }) => {
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
            #[serde(rename_all = "snake_case")]
            pub(in crate::config) enum $name {
                $($v),+
            }

            impl Read<$m::$name> for $name {
                fn read(self) -> $m::$name {
                    match self {
                        $($name::$v => $m::$name::$v),+
                    }
                }
            }

            impl Over<$m::$name> for $name {
                fn over(self, _: &$m::$name) -> $m::$name {
                    self.read()
                }
            }

            /// The other way, only so that a variant the domain gains and
            /// the files cannot name fails to compile here.
            impl From<$m::$name> for $name {
                fn from(d: $m::$name) -> Self {
                    match d {
                        $($m::$name::$v => $name::$v),+
                    }
                }
            }

            #[cfg(test)]
            impl $name {
                /// Every variant with the domain's, for the test below.
                pub(super) fn every() -> Vec<($name, $m::$name)> {
                    vec![$(($name::$v, $m::$name::$v)),+]
                }
            }
        };
    }

    table!(domain::Settings {
        token_ttl: Dur,
        authenticated_ttl: Dur,
        idle_timeout: Dur,
        interaction_ttl: Dur,
        assertion_max_age: Dur,
        expiry_notice: Dur,
        login_binding: LoginBinding,
        recognize_for: Dur,
        otp: OtpSettings,
        pin: PinSettings,
        lockout: LockoutSettings,
        step_up: StepUpSettings,
        templates: Templates,
        locale: LocaleSettings,
        translations: BTreeMap<String, super::FileTexts>,
        intents: BTreeMap<String, Intent>,
    });

    table!(domain::LocaleSettings {
        default: String,
        supported: Vec<String>,
        max_sms_segments: u32,
    });

    impl Read<domain::Texts> for super::FileTexts {
        fn read(self) -> domain::Texts {
            self.0
        }
    }

    /// `[templates]`: the domain's defaults, with the keys it writes.
    #[derive(Debug, Default, Deserialize)]
    pub(in crate::config) struct Templates(super::FileTexts);

    impl Read<domain::Templates> for Templates {
        fn read(self) -> domain::Templates {
            let mut t = domain::Templates::default();
            for (key, text) in self.0 .0 {
                t.set(&key, text);
            }
            t
        }
    }

    table!(domain::Intent {
        max_age: Option<Dur>,
        methods: Option<Vec<AuthMethod>>,
        otp_via: Option<Vec<String>>,
        number_check: Option<NumberCheckRule>,
        acr: Option<Vec<String>>,
    });

    table!(domain::OtpSettings {
        length: u32,
        ttl: Dur,
        max_attempts: u32,
        max_sends: u32,
        send_window: Dur,
        show_to_agents: bool,
        require_other_channel: bool,
        destinations: Destinations,
        sms_regions: Vec<SmsRegion>,
        sms_number_types: Vec<NumberType>,
        voice_regions: Vec<SmsRegion>,
        voice_number_types: Vec<NumberType>,
        ladder: Vec<String>,
        advance_after: Dur,
    });

    table!(domain::PinSettings {
        min_length: u32,
        max_length: u32,
        ttl: Dur,
        max_attempts: u32,
    });

    table!(domain::LockoutSettings {
        threshold: u32,
        window: Dur,
        duration: Dur,
        max_lockouts_before_ban: u32,
        ban_window: Dur,
        ban_duration: Dur,
        scope: LockoutScope,
        familiar_for: Dur,
        strangers_threshold: u32,
    });

    table!(domain::StepUpSettings {
        always: bool,
        on_new_fingerprint: bool,
        on_region_change: bool,
    });

    names!(domain::LoginBinding { None, ChatCode });

    /// A way of authenticating as a file names it: by the domain's names
    /// (`AuthMethod::NAMES`: every method's, then `recognized`), read as
    /// serde reads an enum's variants, so that its messages read as the
    /// other names' do and a method added is one the files name with no
    /// line here.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(in crate::config) struct AuthMethod(domain::AuthMethod);

    impl<'de> Deserialize<'de> for AuthMethod {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_enum("AuthMethod", AUTH_METHODS, AuthMethodVisitor)
        }
    }

    const AUTH_METHODS: &[&str] = &domain::AuthMethod::NAMES;

    /// The variant of an enum named by its name (or its index), as serde's
    /// derive reads one.
    struct AuthMethodVisitor;

    impl<'de> serde::de::Visitor<'de> for AuthMethodVisitor {
        type Value = AuthMethod;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("enum AuthMethod")
        }

        fn visit_enum<A: serde::de::EnumAccess<'de>>(
            self,
            data: A,
        ) -> Result<AuthMethod, A::Error> {
            use serde::de::VariantAccess;
            let (named, variant) = data.variant::<AuthMethodName>()?;
            variant.unit_variant()?;
            Ok(AuthMethod(named.0))
        }
    }

    /// A variant's identifier: its name, or its index in `ALL`.
    struct AuthMethodName(domain::AuthMethod);

    impl<'de> Deserialize<'de> for AuthMethodName {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_identifier(AuthMethodNameVisitor)
        }
    }

    struct AuthMethodNameVisitor;

    impl serde::de::Visitor<'_> for AuthMethodNameVisitor {
        type Value = AuthMethodName;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("variant identifier")
        }

        fn visit_u64<E: serde::de::Error>(self, i: u64) -> Result<AuthMethodName, E> {
            let all = domain::AuthMethod::ALL;
            match usize::try_from(i).ok().and_then(|i| all.get(i)) {
                Some(m) => Ok(AuthMethodName(*m)),
                None => Err(E::invalid_value(
                    serde::de::Unexpected::Unsigned(i),
                    &format!("variant index 0 <= i < {}", all.len()).as_str(),
                )),
            }
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<AuthMethodName, E> {
            domain::AuthMethod::parse(s)
                .map(AuthMethodName)
                .ok_or_else(|| E::unknown_variant(s, AUTH_METHODS))
        }

        fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<AuthMethodName, E> {
            match std::str::from_utf8(b) {
                Ok(s) => self.visit_str(s),
                Err(_) => Err(E::unknown_variant(
                    &String::from_utf8_lossy(b),
                    AUTH_METHODS,
                )),
            }
        }
    }

    impl Read<domain::AuthMethod> for AuthMethod {
        fn read(self) -> domain::AuthMethod {
            self.0
        }
    }

    impl Over<domain::AuthMethod> for AuthMethod {
        fn over(self, _: &domain::AuthMethod) -> domain::AuthMethod {
            self.0
        }
    }

    names!(abuse::Destinations { Any, OnFile });

    names!(number_check::NumberCheckRule { Clean });

    names!(abuse::LockoutScope { Subject, Origin });

    names!(abuse::NumberType {
        Mobile,
        FixedLine,
        FixedLineOrMobile,
        TollFree,
        PremiumRate,
        SharedCost,
        Voip,
        PersonalNumber,
        Pager,
        Uan,
        Voicemail,
    });

    /// A region as written: checked by the domain's `SmsRegion::try_from`.
    #[derive(Debug, Deserialize)]
    #[serde(try_from = "String")]
    pub(in crate::config) struct SmsRegion(abuse::SmsRegion);

    impl TryFrom<String> for SmsRegion {
        type Error = &'static str;
        fn try_from(s: String) -> Result<Self, Self::Error> {
            abuse::SmsRegion::try_from(s).map(SmsRegion)
        }
    }

    impl Read<abuse::SmsRegion> for SmsRegion {
        fn read(self) -> abuse::SmsRegion {
            self.0
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// snake_case of a variant's name (`FixedLineOrMobile`: `fixed_line_or_mobile`).
        fn snake(debug: &str) -> String {
            let mut out = String::new();
            for (i, c) in debug.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            }
            out
        }

        /// Every variant reads from the snake case of its domain name, as
        /// the domain's own serde names read before.
        #[test]
        fn the_files_name_every_variant_as_the_domain_does() {
            fn check<F, D>(every: Vec<(F, D)>)
            where
                F: Read<D>
                    + From<D>
                    + Copy
                    + PartialEq
                    + std::fmt::Debug
                    + for<'de> Deserialize<'de>,
                D: PartialEq + std::fmt::Debug + Copy,
            {
                for (f, d) in every {
                    let name = snake(&format!("{d:?}"));
                    let named: F = serde_json::from_value(name.clone().into()).expect(&name);
                    assert_eq!(named.read(), d);
                    assert_eq!(f.read(), d);
                    assert_eq!(F::from(d), f, "{name}: both ways");
                }
            }
            check(LoginBinding::every());
            check(Destinations::every());
            check(NumberCheckRule::every());
            check(LockoutScope::every());
            check(NumberType::every());
            assert_eq!(snake("FixedLineOrMobile"), "fixed_line_or_mobile");
        }

        /// A way of authenticating reads from its domain name, and a name
        /// it does not know is serde's unknown variant, naming them all.
        #[test]
        fn the_files_name_every_way_of_authenticating_as_the_domain_does() {
            for d in domain::AuthMethod::ALL {
                let named: AuthMethod = serde_json::from_value(d.as_str().into()).unwrap();
                assert_eq!(Read::<domain::AuthMethod>::read(named), d);
            }
            let e = serde_json::from_value::<AuthMethod>("sms".into()).unwrap_err();
            let names: Vec<String> = AUTH_METHODS.iter().map(|n| format!("`{n}`")).collect();
            let expected = format!(
                "unknown variant `sms`, expected one of {}",
                names.join(", ")
            );
            assert_eq!(e.to_string(), expected);
        }
    }
}
