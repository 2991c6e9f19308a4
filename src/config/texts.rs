//! The texts of a team's channel in every language it supports, and their
//! start-up rules (docs/configuration.md#languages): a channel file's
//! translations are in a language the system supports, and a translation
//! keeps every placeholder of the default-language text it stands for.
use super::{text, ChannelConfig, Config, ConfigError, Settings, Team};
use crate::domain::input::{refused_in_text, text_problem};
use crate::domain::locale::well_formed;
use crate::domain::settings::TextKey;

/// The placeholders a text may hold.
pub const PLACEHOLDERS: [&str; 7] = [
    "#PIN#",
    "#URL#",
    "#CODE#",
    "#MINUTES#",
    "#LEFT#",
    "#AMOUNT#",
    "#PAYEE#",
];

/// One text as the order of languages chooses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChosenText<'a> {
    /// An entry of `locale.supported`.
    pub tag: &'a str,
    /// A key of the templates.
    pub key: TextKey,
    pub text: &'a str,
}

/// Every (language, key, text) a message on `channel` (its file's
/// templates and translations) may send for an interaction whose settings
/// are `settings` (`team.settings_for(its channel)`): every key in every
/// language of `settings.locale.supported`, each chosen as [`text`] does.
pub fn chosen_texts<'a>(
    settings: &'a Settings,
    channel: Option<&'a ChannelConfig>,
) -> Vec<ChosenText<'a>> {
    settings
        .locale
        .supported
        .iter()
        .flat_map(|tag| {
            TextKey::ALL.iter().map(move |&key| ChosenText {
                tag,
                key,
                text: text(key, settings, channel, tag),
            })
        })
        .collect()
}

impl Config {
    /// [`chosen_texts`] of `team`'s channel `channel`, its own messages
    /// (settings of that channel, its channel file).
    pub fn texts_for<'a>(&'a self, team: &'a Team, channel: &str) -> Vec<ChosenText<'a>> {
        chosen_texts(team.settings_for(channel), self.channels.get(channel))
    }
}

/// The placeholders of `text`.
fn placeholders(text: &str) -> impl Iterator<Item = &'static str> + '_ {
    PLACEHOLDERS.into_iter().filter(|p| text.contains(p))
}

/// Refuses a channel file's translation in a language the system does not
/// support or holding a bidirectional control character, and a translation
/// (of any layer) that lost a placeholder of the default-language text
/// chosen for the same team and channel.
pub(super) fn check_texts(config: &Config, system_file: &str) -> Result<(), ConfigError> {
    for channel in config.channels.values() {
        let file = channel.file.display().to_string();
        let supported = &config.defaults.locale.supported;
        if let Some((tag, problem)) = unsupported_tag(channel.translations.keys(), supported) {
            return Err(ConfigError::new(
                &file,
                format!("translations.{tag}"),
                problem,
            ));
        }
        if let crate::channels::ChannelKind::Whatsapp(keys) = &channel.kind {
            let tags = keys.otp_template_languages.keys();
            if let Some((tag, problem)) = unsupported_tag(tags, supported) {
                let key = format!("otp_template_languages.{tag}");
                return Err(ConfigError::new(&file, key, problem));
            }
        }
        let translations = channel.translations.iter().flat_map(|(tag, texts)| {
            texts
                .iter()
                .map(move |(key, t)| (format!("translations.{tag}.{key}"), t))
        });
        let templates = channel
            .templates
            .texts
            .iter()
            .map(|(key, t)| (format!("templates.{key}"), t));
        for (key, t) in translations.chain(templates) {
            if let Some((c, bidi)) = refused_in_text(t) {
                return Err(ConfigError::new(&file, key, text_problem(c, bidi)));
            }
        }
    }
    for team in config.teams.values() {
        for source in &team.channels {
            let targets = [
                Some(source),
                team.sms_channel.as_ref(),
                team.email_channel.as_ref(),
            ];
            for target in targets.into_iter().flatten() {
                check_placeholders(config, team, source, target, system_file)?;
            }
        }
    }
    Ok(())
}

/// The placeholder rule for messages of `team`'s channel `source` sent on
/// `target`.
fn check_placeholders(
    config: &Config,
    team: &Team,
    source: &str,
    target: &str,
    system_file: &str,
) -> Result<(), ConfigError> {
    let settings = team.settings_for(source);
    let channel = config.channels.get(target);
    let default = settings.locale.default.as_str();
    for chosen in chosen_texts(settings, channel) {
        let Some((file, key)) =
            translation_written_at(config, team, source, channel, &chosen, system_file)
        else {
            continue; // a text of `templates`: no translation
        };
        let base = text(chosen.key, settings, channel, default);
        let Some(lost) = placeholders(base).find(|p| !chosen.text.contains(p)) else {
            continue;
        };
        let problem = format!(
            "lacks {lost}, which the {default:?} text for channel {target:?} of team {:?} has",
            team.id
        );
        return Err(ConfigError::new(&file, key, problem));
    }
    Ok(())
}

/// Where the translation `chosen` was written: the channel file, the team's
/// `[channel_settings.NAME]` or `[settings]`, or the system's `[defaults]`;
/// `None` when `chosen` is no translation but a text of `templates`.
pub(super) fn translation_written_at(
    config: &Config,
    team: &Team,
    source: &str,
    channel: Option<&ChannelConfig>,
    chosen: &ChosenText<'_>,
    system_file: &str,
) -> Option<(String, String)> {
    let path = format!("translations.{}.{}", chosen.tag, chosen.key.as_str());
    fn of<'s>(s: &'s Settings, chosen: &ChosenText<'_>) -> Option<&'s String> {
        s.translations.get(chosen.tag)?.get(chosen.key.as_str())
    }
    let is_chosen = |t: Option<&String>| t.map(String::as_str) == Some(chosen.text);
    let settings = team.settings_for(source);
    let team_file = team.file.display().to_string();
    Some(
        if let Some(c) = channel.filter(|c| {
            is_chosen(
                c.translations
                    .get(chosen.tag)
                    .and_then(|t| t.get(chosen.key.as_str())),
            )
        }) {
            (c.file.display().to_string(), path)
        } else if !is_chosen(of(settings, chosen)) {
            return None;
        } else if of(settings, chosen) != of(&team.settings, chosen) {
            (team_file, format!("channel_settings.{source}.{path}"))
        } else if of(&team.settings, chosen) != of(&config.defaults, chosen) {
            (team_file, format!("settings.{path}"))
        } else {
            (system_file.to_string(), format!("defaults.{path}"))
        },
    )
}

/// The first tag of `tags` (a layer's or a channel file's translations)
/// that is not a supported language: not BCP 47, or not in `supported`.
pub(super) fn unsupported_tag<'a>(
    tags: impl IntoIterator<Item = &'a String>,
    supported: &[String],
) -> Option<(&'a str, String)> {
    tags.into_iter().find_map(|tag| {
        if !well_formed(tag) {
            Some((
                tag.as_str(),
                format!("{tag:?} is not a well-formed BCP 47 language tag"),
            ))
        } else if !supported.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
            Some((
                tag.as_str(),
                format!("{tag:?} is not one of locale.supported"),
            ))
        } else {
            None
        }
    })
}
