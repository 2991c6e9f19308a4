//! One channel file (`channels/*.toml`): `name`, `kind`, the kind's keys
//! (docs/channels.md) and optional `[templates]`. Each kind's keys are read
//! with its own type (`crate::channels::ChannelKind`); a key that type
//! declares a `Secret` must be written as `${VAR}`, checked here. An
//! operator's JSON body is checked by the same code ([`channel_of_table`],
//! `channel_json.rs`), its secrets written as themselves.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::value::{MapDeserializer, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;

use super::de::{describe, from_table, join};
use super::interpolate::{interpolate_table, is_single_reference};
use super::settings::FileTexts;
use super::toml_file::{display_path, read_toml};
use super::validate::{check_name, template_problem};
use super::{ChannelConfig, Config, ConfigError, Settings, TemplateOverrides};
use crate::channels::kind::Reach;
use crate::channels::{ChannelKind, Channels, Purpose};
use crate::domain::secrets::SECRET_FIELD;
use crate::domain::settings::TextKey;
use crate::domain::voice::VoiceText;
use crate::outbound::{self, Clients};

pub(super) fn load_channel(
    path: &Path,
    env: &super::env::Environment,
    secrets: Option<&crate::domain::secrets_cipher::SecretsCipher>,
) -> Result<ChannelConfig, ConfigError> {
    let file = display_path(path);
    let written = read_toml(path, &file)?;
    let mut table = written.clone();
    interpolate_table(
        &mut table,
        env,
        &super::toml_file::folder_of(path),
        &file,
        "",
    )?;
    let secrets = secrets.map(super::teams::ReadBacks::of_file);
    let mut channel = channel_of_table(table, Written::File(written), &file, secrets)?;
    channel.modified = super::toml_file::modified_at(path);
    Ok(channel)
}

/// How the secrets of a channel's table were written.
pub(super) enum Written {
    /// A channel file, as it wrote it before interpolation: a secret is
    /// taken only where it wrote exactly one `${VAR}`.
    File(toml::Table),
    /// An operator's JSON body (docs/operator-api.md#the-representation):
    /// secrets are plain values, taken under a secret member's name only
    /// (one a read shows as `{"hmac"}`); `${…}` there was refused before.
    Body,
}

/// The channel `table` (interpolated, as `file` wrote it) makes, checked
/// by every rule of a channel file: the one check of a file at start-up
/// and of an operator's JSON body.
pub(super) fn channel_of_table(
    mut table: toml::Table,
    written: Written,
    file: &str,
    secrets: Option<super::teams::ReadBacks<'_>>,
) -> Result<ChannelConfig, ConfigError> {
    let err = |key: &str, problem: String| ConfigError::new(file, key, problem);
    let mut print = super::ConfigPrint::default();
    let name = table.get("name").and_then(toml::Value::as_str);
    let place = super::channel_place(name.unwrap_or_default());
    let form = super::teams::form_of(&table, &place, secrets, &mut print);

    let name = take_string(&mut table, "name", file)?;
    check_name(&name).map_err(|p| err("name", p))?;
    let kind = take_string(&mut table, "kind", file)?;
    let vouches_for_sender = match table.remove("vouches_for_sender") {
        None => None,
        Some(toml::Value::Boolean(b)) => Some(b),
        Some(_) => {
            return Err(err(
                "vouches_for_sender",
                "wrong type: expected a boolean".into(),
            ))
        }
    };
    let templates: TemplateOverrides = match table.remove("templates") {
        None => TemplateOverrides::default(),
        Some(toml::Value::Table(t)) => from_table(t, file, "templates")?,
        Some(_) => return Err(err("templates", "wrong type: expected a table".into())),
    };
    if let Some((key, problem)) = template_problem(&templates) {
        return Err(err(&key, problem));
    }
    let translations: BTreeMap<String, FileTexts> = match table.remove("translations") {
        None => BTreeMap::new(),
        Some(toml::Value::Table(t)) => from_table(t, file, "translations")?,
        Some(_) => return Err(err("translations", "wrong type: expected a table".into())),
    };

    let keys = KindKeys { table, written };
    let kind = match ChannelKind::parse(&kind, keys) {
        None => {
            let kinds = ChannelKind::names();
            return Err(err("kind", format!("must be one of {kinds}")));
        }
        Some(Err(e)) => return Err(e.into_config_error(file)),
        Some(Ok(Err((key, problem)))) => return Err(err(key, problem)),
        Some(Ok(Ok(kind))) => kind,
    };
    if templates.subject.is_some() && kind.info().addressing != Reach::Email {
        return Err(err(
            "templates.subject",
            "only smtp channels have a subject".into(),
        ));
    }
    Ok(ChannelConfig {
        name,
        file: PathBuf::from(file),
        vouches_for_sender: vouches_for_sender.unwrap_or(kind.info().vouches_for_sender),
        kind,
        templates,
        translations: translations.into_iter().map(|(t, x)| (t, x.0)).collect(),
        print,
        form,
        modified: None,
        api: false,
    })
}

/// Removes the required string `key` from the top level of a channel file.
fn take_string(table: &mut toml::Table, key: &str, file: &str) -> Result<String, ConfigError> {
    match table.remove(key) {
        Some(toml::Value::String(s)) => Ok(s),
        Some(_) => Err(ConfigError::new(file, key, "wrong type: expected a string")),
        None => Err(ConfigError::new(file, key, "is required but missing")),
    }
}

/// The template text for `purpose` in the default language (see [`text`]).
pub fn template<'a>(
    purpose: Purpose,
    settings: &'a Settings,
    channel: Option<&'a ChannelConfig>,
) -> &'a str {
    let key = template_key(purpose, channel);
    text(key, settings, channel, &settings.locale.default)
}

/// The template key of a message for `purpose` on `channel`: the purpose's
/// own, but for a code on a channel that calls: a call's text only asks for
/// a key press, and the code is read in the answer to it
/// (docs/channels.md#twilio_voice-codes-read-by-a-phone-call).
pub fn template_key(purpose: Purpose, channel: Option<&ChannelConfig>) -> TextKey {
    let calls = channel.is_some_and(|c| c.kind.info().addressing == Reach::Voice);
    match purpose {
        Purpose::Otp if calls => voice_key(VoiceText::Gate),
        Purpose::Otp
        | Purpose::LoginLink
        | Purpose::PinPrompt
        | Purpose::Authenticated
        | Purpose::Expired
        | Purpose::AppPrompt
        | Purpose::Link(_)
        | Purpose::PinEntryLink => purpose.key(),
    }
}

/// The key of `key`'s text for a transaction
/// (docs/api.md#approving-one-payment): `otp_transaction` for `otp`,
/// `app_prompt_transaction` for `app_prompt`; a call's gate, said before
/// the press, stays as it is (the press reads `voice_otp_transaction`).
pub fn for_transaction(key: TextKey) -> TextKey {
    match key {
        TextKey::Otp => TextKey::OtpTransaction,
        TextKey::AppPrompt => TextKey::AppPromptTransaction,
        other => other,
    }
}

/// Whether a code sent through `channel` shows the text of its template
/// (docs/api.md#approving-one-payment), as its kind declares
/// ([`crate::channels::kind::Kind::shows_text`]); a channel the
/// configuration does not hold shows nothing.
pub fn shows_text(channel: Option<&ChannelConfig>) -> bool {
    channel.is_some_and(|c| c.kind.shows_text())
}

/// The template key of a voice call's text.
fn voice_key(key: VoiceText) -> TextKey {
    match key {
        VoiceText::Gate => TextKey::VoiceGate,
        VoiceText::Otp => TextKey::VoiceOtp,
        VoiceText::OtpTransaction => TextKey::VoiceOtpTransaction,
        VoiceText::Unavailable => TextKey::VoiceUnavailable,
    }
}

/// The text `key` of a voice call in language `locale` (see [`text`]).
pub fn voice_text<'a>(
    key: VoiceText,
    settings: &'a Settings,
    channel: Option<&'a ChannelConfig>,
    locale: &str,
) -> &'a str {
    text(voice_key(key), settings, channel, locale)
}

/// The text of template `key` in language `locale` (an entry of
/// `settings.locale.supported`) for the channel `channel` of a team whose
/// (per channel) settings are `settings`: the channel file's translation,
/// the team's (over the system's, merged in `settings`), then the same in
/// the default language, whose last word is `templates`
/// (docs/configuration.md#languages).
pub fn text<'a>(
    key: TextKey,
    settings: &'a Settings,
    channel: Option<&'a ChannelConfig>,
    locale: &str,
) -> &'a str {
    text_in(key, settings, channel, locale).0
}

/// [`text`], and the language it is in: `locale` when it has the key, else
/// the default language it fell back to (what a page's `lang` and `dir`
/// say, docs/api.md#languages).
pub fn text_in<'a: 'b, 'b>(
    key: TextKey,
    settings: &'a Settings,
    channel: Option<&'a ChannelConfig>,
    locale: &'b str,
) -> (&'a str, &'b str) {
    let default = settings.locale.default.as_str();
    let name = key.as_str();
    let of_channel = |tag: &str| channel.and_then(|c| c.translations.get(tag)?.get(name));
    let of_settings = |tag: &str| settings.translations.get(tag)?.get(name);
    if let Some(t) = of_channel(locale).or_else(|| of_settings(locale)) {
        return (t, locale);
    }
    let t = of_channel(default)
        .or_else(|| channel.and_then(|c| c.templates.texts.get(name)))
        .or_else(|| of_settings(default))
        .map_or_else(|| settings.templates.text(key), String::as_str);
    (t, default)
}

impl Config {
    /// The senders of the configured channels, each on the client of its
    /// reach ([`Config::reach_of`]).
    pub fn senders(&self, http: &Clients) -> Channels {
        let channels = self.channels.iter().map(|(name, ch)| {
            let used = self.teams.values().any(|t| t.uses_channel(name));
            (name.as_str(), &ch.kind, used, self.reach_of(ch.api))
        });
        Channels::new(channels, http)
    }

    /// Where the gateway may connect for a team or channel written
    /// through the operator API (`api`) or kept in a file
    /// (docs/operator-api.md#destinations).
    pub fn reach_of(&self, api: bool) -> outbound::Reach {
        let allow_private =
            (self.operator.as_deref()).is_some_and(|o| o.allow_private_destinations);
        outbound::Reach::of(api, allow_private)
    }
}

/// A kind's keys of a channel file, interpolated, beside what the file
/// wrote: a field of type `Secret` gets its value only when the file
/// wrote exactly one `${VAR}` there. Which keys are secrets is the kind's
/// type's business; this needs no list of them. A body's secret is taken
/// only under a name a read shows as `{"hmac"}` (`is_secret_member`), so
/// no secret is ever read back in clear.
struct KindKeys {
    table: toml::Table,
    written: Written,
}

/// A problem with one key (`key`: `None` until the map names it).
#[derive(Debug)]
struct KeyError {
    key: Option<String>,
    message: String,
}

impl KeyError {
    fn into_config_error(self, file: &str) -> ConfigError {
        let (field, problem) = describe(&self.message);
        let key = join(self.key.as_deref().unwrap_or(""), field.unwrap_or(""));
        let key = if key.is_empty() { "(file)".into() } else { key };
        ConfigError::new(file, key, problem)
    }
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for KeyError {}

impl de::Error for KeyError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        KeyError {
            key: None,
            message: msg.to_string(),
        }
    }
}

impl From<toml::de::Error> for KeyError {
    fn from(e: toml::de::Error) -> Self {
        de::Error::custom(e.message())
    }
}

impl<'de> de::Deserializer<'de> for KindKeys {
    type Error = KeyError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_map(Entries {
            entries: self.table.into_iter(),
            written: self.written,
            value: None,
        })
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct Entries {
    entries: toml::map::IntoIter,
    written: Written,
    value: Option<(String, toml::Value)>,
}

impl<'de> MapAccess<'de> for Entries {
    type Error = KeyError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, KeyError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let name: StrDeserializer<'_, KeyError> = key.as_str().into_deserializer();
        let out = seed.deserialize(name)?;
        self.value = Some((key, value));
        Ok(Some(out))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, KeyError> {
        let (key, value) = self
            .value
            .take()
            .ok_or_else(|| <KeyError as de::Error>::custom("a value without a key"))?;
        let refusal = match &mut self.written {
            Written::File(written) => match written.remove(&key) {
                Some(toml::Value::String(w)) if is_single_reference(&w) => None,
                _ => Some(LITERAL_SECRET),
            },
            Written::Body if super::form::is_secret_member(&key) => None,
            Written::Body => Some(UNSHOWN_SECRET),
        };
        seed.deserialize(Field { value, refusal })
            .map_err(|e| KeyError {
                key: Some(e.key.map_or_else(|| key.clone(), |k| join(&key, &k))),
                message: e.message,
            })
    }
}

/// One value of a kind's keys, and why a `Secret` may not take it
/// (`None`: it may).
struct Field {
    value: toml::Value,
    refusal: Option<&'static str>,
}

impl<'de> de::Deserializer<'de> for Field {
    type Error = KeyError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        Ok(self.value.deserialize_any(visitor)?)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, KeyError> {
        visitor.visit_some(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        Ok(self.value.deserialize_enum(name, variants, visitor)?)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, KeyError> {
        if name != SECRET_FIELD {
            return visitor.visit_newtype_struct(self);
        }
        if let Some(refusal) = self.refusal {
            return Err(de::Error::custom(refusal));
        }
        let toml::Value::String(text) = self.value else {
            return Err(de::Error::custom("wrong type: expected a string"));
        };
        let entry = std::iter::once((SECRET_FIELD, text));
        visitor.visit_map(MapDeserializer::<_, KeyError>::new(entry))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

const LITERAL_SECRET: &str =
    "secrets in channel files must be written as \"${VARIABLE}\", not as a literal value";

/// A body's secret under a name a read would not show as `{"hmac"}`.
const UNSHOWN_SECRET: &str = "is a secret this API cannot read back: write it in a channel file";

/// The `Secret` type is what makes a key secret: a kind's own type, read
/// through the loader, refuses it in clear under any key name.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::secrets::Secret;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct NewKind {
        api_key_of_a_new_name: Secret,
        port: Option<u16>,
        label: String,
    }

    fn read(written: &str) -> Result<NewKind, ConfigError> {
        let env = super::super::Environment::from_pairs([("K", "from-env")]);
        let written: toml::Table = written.parse().unwrap();
        let mut table = written.clone();
        interpolate_table(&mut table, &env, Path::new("."), "f.toml", "").unwrap();
        let written = Written::File(written);
        serde::Deserialize::deserialize(KindKeys { table, written })
            .map_err(|e: KeyError| e.into_config_error("f.toml"))
    }

    #[test]
    fn a_secret_under_any_key_name_comes_only_from_a_reference() {
        use secrecy::ExposeSecret;
        let ok = read("api_key_of_a_new_name = \"${K}\"\nlabel = \"${K}-x\"").unwrap();
        assert_eq!(ok.api_key_of_a_new_name.get().expose_secret(), "from-env");
        assert_eq!(ok.label, "from-env-x");
        for literal in ["\"in-clear-42\"", "\"pre-${K}\"", "\"$${K}\"", "42"] {
            let e = read(&format!("api_key_of_a_new_name = {literal}\nlabel = \"l\"")).unwrap_err();
            assert_eq!(e.key, "api_key_of_a_new_name", "{literal}");
            assert!(
                e.problem.contains("must be written as \"${VARIABLE}\""),
                "{e}"
            );
            assert!(!e.to_string().contains("in-clear"), "{e}");
        }
    }

    #[test]
    fn a_bodys_secret_is_taken_as_written_only_under_a_name_read_back_as_hmac() {
        use secrecy::ExposeSecret;
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct BodyKind {
            token: Secret,
            label: String,
        }
        let body = |text: &str| -> KindKeys {
            let table: toml::Table = text.parse().unwrap();
            let written = Written::Body;
            KindKeys { table, written }
        };
        let read: BodyKind =
            serde::Deserialize::deserialize(body("token = \"in-clear-42\"\nlabel = \"l\""))
                .unwrap();
        assert_eq!(read.token.get().expose_secret(), "in-clear-42");
        assert_eq!(read.label, "l");
        let e = <NewKind as serde::Deserialize>::deserialize(body(
            "api_key_of_a_new_name = \"in-clear-42\"\nlabel = \"l\"",
        ))
        .unwrap_err()
        .into_config_error("(body)");
        assert_eq!(e.key, "api_key_of_a_new_name");
        assert_eq!(e.problem, UNSHOWN_SECRET);
        assert!(!e.to_string().contains("in-clear"), "{e}");
        let e = <BodyKind as serde::Deserialize>::deserialize(body("token = 42\nlabel = \"l\""))
            .unwrap_err()
            .into_config_error("(body)");
        assert_eq!(e.key, "token");
        assert!(e.problem.contains("expected a string"), "{e}");
    }

    #[test]
    fn a_secret_read_without_the_loader_is_refused() {
        let t: toml::Table = "s = \"${K}\"".parse().unwrap();
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Plain {
            s: Secret,
        }
        assert!(from_table::<Plain>(t, "f.toml", "").is_err());
    }

    #[test]
    fn other_keys_keep_their_messages() {
        let e = read("api_key_of_a_new_name = \"${K}\"\nlabel = 5").unwrap_err();
        assert_eq!(e.key, "label");
        assert_eq!(e.problem, "wrong type: expected a string, found an integer");
        let e = read("api_key_of_a_new_name = \"${K}\"").unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.problem.as_str()),
            ("label", "is required but missing")
        );
        let e = read("api_key_of_a_new_name = \"${K}\"\nlabel = \"l\"\nport = 70000").unwrap_err();
        assert_eq!(e.key, "port");
        let e = read("api_key_of_a_new_name = \"${K}\"\nlabel = \"l\"\nextra = 1").unwrap_err();
        assert_eq!(e.key, "extra");
        assert!(e.problem.starts_with("unknown key"), "{e}");
    }
}
