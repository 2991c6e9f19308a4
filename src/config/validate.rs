//! Value rules shared by the loaders: names, URLs, and the ranges of
//! [`Settings`]. Problems are phrased without quoting the value.
use super::texts::{translation_written_at, ChosenText};
use super::toml_file::display_path;
use super::{template, ChannelConfig, Config, ConfigError, Settings, Team, TemplateOverrides};
use crate::channels::Purpose;
use crate::domain::input::{refused_in_text, text_problem};
use crate::domain::locale::well_formed;
use crate::domain::settings::TextKey;

/// Team ids and channel names: `[a-z0-9_-]{1,64}`.
pub(super) fn check_name(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    ok.then_some(())
        .ok_or_else(|| "must be 1 to 64 characters of a-z, 0-9, _ and -".to_string())
}

/// Key ids and API key ids: `[A-Za-z0-9._-]{1,64}`.
pub fn check_label(s: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| "must be 1 to 64 characters of A-Z, a-z, 0-9, ., _ and -".to_string())
}

/// An absolute `http` or `https` URL with a host (the rule channel files use too).
pub(super) use crate::channels::kind::http_url;

/// The first rule `s` breaks: the keys involved (relative to the settings
/// table; the first is the one reported) and the problem. `below`:
/// settings checked already that `s` was resolved over, whose texts it
/// shares are not checked again.
pub(super) fn settings_problem(
    s: &Settings,
    below: Option<&Settings>,
) -> Option<(Vec<String>, String)> {
    let keys = |k: &[&str]| k.iter().map(|k| k.to_string()).collect();
    if let Some((k, problem)) = range_problem(s) {
        return Some((keys(k), problem));
    }
    // Texts shared with settings checked already are not checked again
    // (docs/decisions/0750-a-team-s-settings-are-read-over-the-resolved-defaults.md).
    let shared = |b: &Settings| std::sync::Arc::ptr_eq(&s.templates, &b.templates);
    let templates = (!below.is_some_and(shared)).then(|| s.templates.entries());
    for (key, text) in templates.into_iter().flatten() {
        if let Some(p) = missing_required(key, text) {
            return Some((
                vec![format!("templates.{key}")],
                format!("must contain {p}"),
            ));
        }
        if let Some((c, bidi)) = refused_in_text(text) {
            return Some((vec![format!("templates.{key}")], text_problem(c, bidi)));
        }
    }
    if let Some(problem) = intent_problem(s) {
        return Some(problem);
    }
    let shared = below.is_some_and(|b| std::sync::Arc::ptr_eq(&s.translations, &b.translations));
    locale_problem(s, !shared)
}

/// The first intent whose `acr` is not 1 to 5 values of 1 to 128 visible
/// ASCII characters (docs/configuration.md#settings).
fn intent_problem(s: &Settings) -> Option<(Vec<String>, String)> {
    s.intents.iter().find_map(|(name, intent)| {
        let values = intent.acr.as_deref()?;
        crate::domain::input::acr_values("acr", values)
            .err()
            .map(|_| {
                let problem = "must be 1 to 5 values of 1 to 128 visible ASCII characters";
                (vec![format!("intents.{name}.acr")], problem.to_string())
            })
    })
}

/// The rules of `locale` and `translations` (docs/configuration.md#languages).
/// `texts`: whether the translations' texts are checked too.
fn locale_problem(s: &Settings, texts: bool) -> Option<(Vec<String>, String)> {
    let l = &s.locale;
    let bcp47 = "must be a well-formed BCP 47 language tag";
    if !well_formed(&l.default) {
        return Some((
            vec!["locale.default".into()],
            format!("{:?} {bcp47}", l.default),
        ));
    }
    if let Some(bad) = l.supported.iter().find(|t| !well_formed(t)) {
        return Some((vec!["locale.supported".into()], format!("{bad:?} {bcp47}")));
    }
    if !l
        .supported
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&l.default))
    {
        return Some((
            vec!["locale.default".into(), "locale.supported".into()],
            format!("{:?} is not one of locale.supported", l.default),
        ));
    }
    for (tag, written) in s.translations.iter().filter(|_| texts) {
        for (key, text) in written {
            if let Some((c, bidi)) = refused_in_text(text) {
                return Some((
                    vec![format!("translations.{tag}.{key}")],
                    text_problem(c, bidi),
                ));
            }
        }
    }
    None
}

/// The first range rule `s` breaks.
fn range_problem(s: &Settings) -> Option<(&'static [&'static str], String)> {
    let nonzero: [(&'static [&'static str], super::Dur); 10] = [
        (&["authenticated_ttl"], s.authenticated_ttl),
        (&["interaction_ttl"], s.interaction_ttl),
        (&["assertion_max_age"], s.assertion_max_age),
        (&["otp.ttl"], s.otp.ttl),
        (&["otp.send_window"], s.otp.send_window),
        (&["otp.advance_after"], s.otp.advance_after),
        (&["pin.ttl"], s.pin.ttl),
        (&["lockout.window"], s.lockout.window),
        (&["lockout.duration"], s.lockout.duration),
        (&["lockout.ban_window"], s.lockout.ban_window),
    ];
    let at_least_one: [(&'static [&'static str], u32); 7] = [
        (&["otp.max_attempts"], s.otp.max_attempts),
        (&["otp.max_sends"], s.otp.max_sends),
        (&["pin.min_length"], s.pin.min_length),
        (&["pin.max_attempts"], s.pin.max_attempts),
        (&["lockout.threshold"], s.lockout.threshold),
        (
            &["lockout.max_lockouts_before_ban"],
            s.lockout.max_lockouts_before_ban,
        ),
        (
            &["lockout.strangers_threshold"],
            s.lockout.strangers_threshold,
        ),
    ];
    if !(4..=10).contains(&s.otp.length) {
        return Some((
            &["otp.length"],
            format!("must be from 4 to 10 digits, not {}", s.otp.length),
        ));
    }
    for (key, value) in at_least_one {
        if value < 1 {
            return Some((key, "must be at least 1".to_string()));
        }
    }
    if s.pin.max_length > 20 {
        return Some((
            &["pin.max_length"],
            format!("must be at most 20, not {}", s.pin.max_length),
        ));
    }
    if s.pin.min_length > s.pin.max_length {
        return Some((
            &["pin.min_length", "pin.max_length"],
            format!(
                "pin.min_length ({}) is greater than pin.max_length ({})",
                s.pin.min_length, s.pin.max_length
            ),
        ));
    }
    for (key, value) in nonzero {
        if value.enabled().is_none() {
            return Some((key, "must be longer than \"0s\"".to_string()));
        }
    }
    None
}

/// The first placeholder a template of `key` cannot do without: the
/// link, the code, and for a transaction its amount and payee
/// (docs/api.md#approving-one-payment). `None` when `text` has them all
/// (or `key` needs none).
pub(super) fn missing_required(key: &str, text: &str) -> Option<&'static str> {
    let needs = TextKey::parse(key)?.needs();
    needs.iter().copied().find(|p| !text.contains(p))
}

/// The same template rules for a channel's `[templates]`.
pub(super) fn template_problem(t: &TemplateOverrides) -> Option<(String, String)> {
    t.texts.iter().find_map(|(key, text)| {
        missing_required(key, text)
            .map(|p| (format!("templates.{key}"), format!("must contain {p}")))
    })
}

/// The longest short URL the gateway makes: `public_url` + `/l/` + 32
/// characters (24 random bytes in base64url; `gateway::login`).
pub(super) fn longest_short_url(public_url: &str) -> String {
    format!("{public_url}/l/{}", "x".repeat(32))
}

/// `template` with each placeholder at its longest: `#PIN#` `pin` digits,
/// `#URL#` `url`, `#MINUTES#` `minutes`, `#CODE#` 4 digits, `#LEFT#` 2 digits.
pub(super) fn at_longest(template: &str, url: &str, pin: usize, minutes: &str) -> String {
    template
        .replace("#PIN#", &"0".repeat(pin))
        .replace("#URL#", url)
        .replace("#MINUTES#", minutes)
        .replace("#CODE#", "0000")
        .replace("#LEFT#", "00")
}

/// The length of `template` at its longest, in characters: `#PIN#` 10
/// digits, `#URL#` the longest short URL, `#MINUTES#` 4 digits.
pub(super) fn worst_case_chars(template: &str, public_url: &str) -> usize {
    at_longest(template, &longest_short_url(public_url), 10, "0000")
        .chars()
        .count()
}

/// Where the text of `purpose` that interactions on `source` send through
/// `channel` is written: the channel file's `[templates]`, the team's
/// `[channel_settings.NAME]` or `[settings]`, or `[defaults]` (file, key).
pub(super) fn written_at(
    config: &Config,
    team: &Team,
    source: &str,
    channel: &ChannelConfig,
    (purpose, tag): (Purpose, &str),
) -> (String, String) {
    let chosen = ChosenText {
        tag,
        key: purpose.key(),
        text: super::text(purpose.key(), team.settings_for(source), Some(channel), tag),
    };
    let system_file = display_path(&config.path);
    if let Some(at) =
        translation_written_at(config, team, source, Some(channel), &chosen, &system_file)
    {
        return at;
    }
    let key = format!("templates.{}", purpose.as_str());
    if overrides(&channel.templates, purpose).is_some() {
        return (channel.file.display().to_string(), key);
    }
    let team_file = team.file.display().to_string();
    let text = template(purpose, team.settings_for(source), Some(channel));
    if text != template(purpose, &team.settings, None) {
        (team_file, format!("channel_settings.{source}.{key}"))
    } else if text != template(purpose, &config.defaults, None) {
        (team_file, format!("settings.{key}"))
    } else {
        (display_path(&config.path), format!("defaults.{key}"))
    }
}

fn too_long(
    file: &str,
    key: String,
    len: usize,
    channel: &ChannelConfig,
    limit: usize,
) -> ConfigError {
    ConfigError::new(
        file,
        key,
        format!(
            "is {len} characters at its longest (#PIN# 10 digits, #URL# the longest short URL, \
             #MINUTES# 4 digits); {} channel {:?} takes at most {limit}",
            channel.kind.name(),
            channel.name
        ),
    )
}

/// Refuses a template a provider could not take whole (messages are never
/// truncated at send time): every template that can be sent to a channel
/// with a text limit, at its longest. A message uses the settings of the
/// interaction's channel and the overrides of the channel it goes to (the
/// same, or the team's `sms_channel` / `email_channel`). The error names
/// the layer that wrote the template: the channel file's `[templates]`, the
/// team's `[channel_settings.NAME]` or `[settings]`, or `[defaults]`.
pub(super) fn check_template_lengths(config: &Config) -> Result<(), ConfigError> {
    let public_url = config.server.public_url.as_str();
    for channel in config.channels.values() {
        let Some(limit) = channel.kind.info().text_limit else {
            continue;
        };
        for purpose in Purpose::ALL {
            let over = overrides(&channel.templates, purpose);
            if let Some(t) = over {
                let len = worst_case_chars(t, public_url);
                if len > limit {
                    let file = channel.file.display().to_string();
                    let key = format!("templates.{}", purpose.as_str());
                    return Err(too_long(&file, key, len, channel, limit));
                }
            }
        }
    }
    for team in config.teams.values() {
        for (source, settings) in team.settings_by_channel() {
            let targets = [
                Some(source),
                team.sms_channel.as_ref(),
                team.email_channel.as_ref(),
            ];
            for target in targets.into_iter().flatten() {
                let Some(channel) = config.channels.get(target) else {
                    continue;
                };
                let Some(limit) = channel.kind.info().text_limit else {
                    continue;
                };
                for (tag, purpose) in every_language(settings) {
                    let text = super::text(purpose.key(), settings, Some(channel), tag);
                    let len = worst_case_chars(text, public_url);
                    if len <= limit {
                        continue;
                    }
                    let (file, key) = written_at(config, team, source, channel, (purpose, tag));
                    return Err(too_long(&file, key, len, channel, limit));
                }
            }
        }
    }
    Ok(())
}

/// Every supported language with every purpose of a message, under
/// `settings` (docs/configuration.md#languages).
fn every_language(settings: &Settings) -> impl Iterator<Item = (&str, Purpose)> {
    let tags = settings.locale.supported.iter().map(String::as_str);
    tags.flat_map(|tag| Purpose::ALL.into_iter().map(move |p| (tag, p)))
}

/// A channel file's own template for `purpose`, if it has one.
fn overrides(t: &TemplateOverrides, purpose: Purpose) -> Option<&str> {
    t.texts.get(purpose.as_str()).map(String::as_str)
}

/// One warning when a team's delivery ladder hands a step's code on
/// sooner than another instance can take over a step whose instance died
/// (`domain::ladder::TAKEOVER`): such a step is sent again after its
/// time-out, and the ladder then moves on at once — it never stops, but
/// `otp.advance_after` is not kept across the death
/// (docs/decisions/0200-an-advance-after-shorter-than-a-takeover-warns.md).
/// Not an error: the ladder works, and short times suit a demo or a test.
/// One line however many teams (counted, the first named), once per
/// process: a reload says nothing again, whatever it changed
/// (docs/decisions/0340-start-up-warnings-once-per-process.md). Answers
/// the line (tests).
pub(super) fn warn_short_advance_after(config: &Config) -> Option<String> {
    let takeover = crate::domain::ladder::TAKEOVER;
    let short = |s: &Settings| !s.otp.ladder.is_empty() && s.otp.advance_after.get() < takeover;
    let layer = |t: &Team| {
        let channel = t.channel_settings.iter().find(|(_, s)| short(s));
        match (short(&t.settings), channel) {
            (true, _) => Some(("settings".to_string(), t.settings.otp.advance_after)),
            (false, Some((name, s))) => {
                Some((format!("channel_settings.{name}"), s.otp.advance_after))
            }
            (false, None) => None,
        }
    };
    let mut found = config
        .teams
        .values()
        .filter_map(|t| layer(t).map(|l| (t, l)));
    let (team, (at, value)) = found.next()?;
    let more = found.count();
    let line = format!(
        "otp.advance_after ({value}) of team {:?} ({at}) and of {more} more team(s) is shorter than the {} another instance needs to take over a ladder step whose instance died: such a step is sent again after its time-out and the ladder moves on at once",
        team.id,
        humantime::format_duration(takeover),
    );
    super::once::warn_once(super::once::StartupWarning::ShortAdvanceAfter, "", || {
        tracing::warn!(teams = more + 1, "{line}")
    });
    Some(line)
}

/// One warning at start (or at the first reload that finds one: once per
/// process) for the teams whose voice calls may go to any country,
/// premium numbers included unless `otp.voice_number_types` says otherwise
/// (toll fraud follows them as SMS pumping does); a long list is counted,
/// its first ten named.
pub(super) fn warn_of_calls_anywhere(config: &Config) {
    let teams = config.teams_calling_anywhere();
    if teams.is_empty() {
        return;
    }
    let named: Vec<&str> = teams.iter().copied().take(10).collect();
    super::once::warn_once(super::once::StartupWarning::CallsAnywhere, "", || {
        tracing::warn!(
            teams = teams.len(),
            first = %named.join(","),
            "voice_channel without otp.voice_regions: calls reading codes may go to any country; set otp.voice_regions"
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dur;

    #[test]
    fn worst_case_fills_every_placeholder_at_its_longest() {
        let url = "https://g.example";
        assert_eq!(worst_case_chars("#PIN#", url), 10);
        assert_eq!(worst_case_chars("#MINUTES#", url), 4);
        assert_eq!(worst_case_chars("#URL#", url), url.len() + 3 + 32);
        assert_eq!(worst_case_chars("ü #PIN# #PIN#", url), 2 + 10 + 1 + 10);
    }

    #[test]
    fn names_and_labels() {
        assert!(check_name("acme_2-x").is_ok());
        assert!(check_name("Acme").is_err());
        assert!(check_name("").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(check_label("2026-11.B_x").is_ok());
        assert!(check_label("has space").is_err());
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(http_url("https://login.acme.example/chat?lang=en").is_ok());
        assert!(http_url("http://127.0.0.1:8090/login").is_ok());
        assert!(http_url("/login").is_err());
        assert!(http_url("ftp://x.example").is_err());
        assert!(http_url("mailto:a@b.example").is_err());
    }

    #[test]
    fn default_settings_pass_and_ranges_are_checked() {
        assert!(settings_problem(&Settings::default(), None).is_none());
        let mut s = Settings::default();
        s.otp.length = 11;
        assert_eq!(settings_problem(&s, None).unwrap().0, &["otp.length"]);
        let mut s = Settings::default();
        s.pin.min_length = 8;
        s.pin.max_length = 6;
        assert_eq!(
            settings_problem(&s, None).unwrap().0,
            &["pin.min_length", "pin.max_length"]
        );
        let mut s = Settings::default();
        s.lockout.threshold = 0;
        assert_eq!(
            settings_problem(&s, None).unwrap().0,
            &["lockout.threshold"]
        );
        let mut s = Settings::default();
        s.otp.ttl = Dur::from_secs(0);
        assert_eq!(settings_problem(&s, None).unwrap().0, &["otp.ttl"]);
    }

    #[test]
    fn an_intent_s_acr_is_one_to_five_visible_ascii_values() {
        let with = |acr: &[&str]| {
            let mut s = Settings::default();
            let intent = crate::domain::settings::Intent {
                acr: Some(acr.iter().map(|a| a.to_string()).collect()),
                ..Default::default()
            };
            s.intents.insert("passkey".into(), intent);
            settings_problem(&s, None).map(|p| p.0)
        };
        assert_eq!(with(&["phrh", "phr"]), None);
        for bad in [&[][..], &["two words"], &["a", "b", "c", "d", "e", "f"]] {
            assert_eq!(with(bad), Some(vec!["intents.passkey.acr".to_string()]));
        }
    }
}
