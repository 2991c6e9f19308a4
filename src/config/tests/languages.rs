//! Languages (docs/configuration.md#languages): `[defaults.locale]` and its
//! overrides, translations in three layers, and every start-up error,
//! each naming the file, the key and the tag.
use super::Fixture;
use crate::config::{chosen_texts, text};
use crate::domain::settings::TextKey;

const SYS: &str = "config/chatgate.toml";
const TEAM: &str = "config/teams/acme.toml";
const SMS: &str = "channels/sms.toml";

/// The system supports English and Spanish, with a Spanish `otp`.
fn spanish() -> Fixture {
    let fx = Fixture::new();
    fx.append(
        SYS,
        "[defaults.locale]\nsupported = [\"en\", \"es\"]\n\
         [defaults.translations.es]\notp = \"Tu código es #PIN#. Caduca en #MINUTES# minutos.\"\n\
         page_link_expired = \"Este enlace ha caducado\"\n",
    );
    fx
}

#[test]
fn locale_settings_layer_and_default_to_english() {
    let config = Fixture::new().load().unwrap();
    let l = &config.defaults.locale;
    assert_eq!(
        (l.default.as_str(), l.supported.clone(), l.max_sms_segments),
        ("en", vec!["en".to_string()], 0)
    );
    let fx = spanish();
    fx.append(TEAM, "[settings.locale]\nmax_sms_segments = 2\n[channel_settings.webchat.locale]\ndefault = \"es\"\n");
    let config = fx.load().unwrap();
    let team = &config.teams["acme"];
    assert_eq!(team.settings.locale.max_sms_segments, 2);
    assert_eq!(team.settings.locale.default, "en");
    assert_eq!(team.settings_for("webchat").locale.default, "es");
    assert_eq!(team.settings_for("webchat").locale.supported, ["en", "es"]);
}

#[test]
fn a_text_is_chosen_channel_team_system_then_the_default_language() {
    let fx = spanish();
    fx.append(
        TEAM,
        "[settings.translations.es]\npin_prompt = \"Escribe tu PIN.\"\n",
    );
    fx.append(SMS, "[translations.es]\notp = \"#PIN# es tu código.\"\n");
    let config = fx.load().unwrap();
    let team = &config.teams["acme"];
    let s = team.settings_for("webchat");
    let sms = config.channels.get("sms");
    let web = config.channels.get("webchat");
    assert_eq!(text(TextKey::Otp, s, sms, "es"), "#PIN# es tu código.");
    assert_eq!(
        text(TextKey::Otp, s, web, "es"),
        "Tu código es #PIN#. Caduca en #MINUTES# minutos."
    );
    assert_eq!(text(TextKey::PinPrompt, s, web, "es"), "Escribe tu PIN.");
    // Not translated: the default language, the channel's own first.
    assert_eq!(
        text(TextKey::Authenticated, s, web, "es"),
        "Thank you, you are now verified."
    );
    assert_eq!(text(TextKey::Otp, s, sms, "en"), "#PIN# is your code.");
    assert_eq!(
        text(TextKey::PageLinkExpired, s, web, "es"),
        "Este enlace ha caducado"
    );
    // Every key in every supported language, once.
    let all = chosen_texts(s, sms);
    let keys = crate::domain::settings::Templates::keys().len();
    assert_eq!(all.len(), 2 * keys);
    assert!(all
        .iter()
        .any(|c| c.tag == "es" && c.key.as_str() == "otp" && c.text == "#PIN# es tu código."));
    assert_eq!(config.texts_for(team, "sms").len(), 2 * keys);
}

#[test]
fn a_tag_that_is_not_bcp_47_is_refused() {
    let fx = Fixture::new();
    fx.append(SYS, "[defaults.locale]\nsupported = [\"en\", \"en_US\"]\n");
    let err = fx.expect_err(SYS, "defaults.locale.supported", "BCP 47");
    assert!(err.problem.contains("en_US"), "{}", err.problem);
    let fx = Fixture::new();
    fx.append(TEAM, "[settings.locale]\ndefault = \"english!\"\n");
    fx.expect_err(TEAM, "settings.locale.default", "BCP 47");
}

#[test]
fn a_default_not_supported_is_refused() {
    let fx = Fixture::new();
    fx.append(SYS, "[defaults.locale]\ndefault = \"es\"\n");
    let err = fx.expect_err(
        SYS,
        "defaults.locale.default",
        "not one of locale.supported",
    );
    assert!(err.problem.contains("\"es\""), "{}", err.problem);
}

#[test]
fn a_translation_for_an_unsupported_language_is_refused() {
    let fx = Fixture::new();
    fx.append(SYS, "[defaults.translations.fr]\notp = \"Code #PIN#\"\n");
    fx.expect_err(
        SYS,
        "defaults.translations.fr",
        "not one of locale.supported",
    );
    let fx = spanish();
    fx.append(TEAM, "[settings.translations.de]\notp = \"Code #PIN#\"\n");
    fx.expect_err(
        TEAM,
        "settings.translations.de",
        "not one of locale.supported",
    );
    // A channel file's translations are held to the system's list, even
    // where a team supports more.
    let fx = Fixture::new();
    fx.append(TEAM, "[settings.locale]\nsupported = [\"en\", \"es\"]\n");
    fx.append(SMS, "[translations.es]\notp = \"#PIN# es tu código.\"\n");
    fx.expect_err(SMS, "translations.es", "not one of locale.supported");
}

#[test]
fn a_translation_that_lost_a_placeholder_is_refused_where_it_was_written() {
    let fx = spanish();
    fx.edit(SYS, "Caduca en #MINUTES# minutos.", "Caduca pronto.");
    let err = fx.expect_err(SYS, "defaults.translations.es.otp", "lacks #MINUTES#");
    assert!(err.problem.contains("\"webchat\""), "{}", err.problem);
    // The channel's own English text has no #MINUTES#: its Spanish need not.
    let fx = spanish();
    fx.append(SMS, "[translations.es]\notp = \"Tu código: #PIN#\"\n");
    assert!(fx.load().is_ok());
    fx.edit(SMS, "Tu código: #PIN#", "Tu código.");
    fx.expect_err(SMS, "translations.es.otp", "lacks #PIN#");
    let fx = spanish();
    fx.append(
        TEAM,
        "[channel_settings.webchat.translations.es]\nlogin_link = \"Entra aquí\"\n",
    );
    fx.expect_err(
        TEAM,
        "channel_settings.webchat.translations.es.login_link",
        "lacks #URL#",
    );
}

#[test]
fn an_unknown_key_in_a_translation_is_refused() {
    let fx = spanish();
    fx.append(SYS, "greeting = \"Hola\"\n");
    fx.expect_err(SYS, "defaults.translations.es.greeting", "unknown key");
    let fx = spanish();
    fx.append(SMS, "[translations.es]\nhello = \"Hola\"\n");
    fx.expect_err(SMS, "translations.es.hello", "unknown key");
}

#[test]
fn a_bidirectional_control_character_is_refused() {
    for c in [
        '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}',
    ] {
        let fx = spanish();
        fx.append(SYS, &format!("pin_prompt = \"PIN{c}\"\n"));
        let err = fx.expect_err(SYS, "defaults.translations.es.pin_prompt", "bidirectional");
        assert!(
            err.problem.contains(&format!("U+{:04X}", c as u32)),
            "{}",
            err.problem
        );
    }
    let fx = spanish();
    fx.append(SMS, "[translations.es]\notp = \"#PIN#\u{202E}\"\n");
    fx.expect_err(SMS, "translations.es.otp", "bidirectional");
}

#[test]
fn an_invisible_format_character_is_refused_in_every_text_at_every_level() {
    for c in ['\u{200B}', '\u{2060}', '\u{FEFF}', '\u{00AD}', '\u{E0041}'] {
        // A translation, as before only for bidi controls.
        let fx = spanish();
        fx.append(SYS, &format!("pin_prompt = \"PIN{c}\"\n"));
        let err = fx.expect_err(
            SYS,
            "defaults.translations.es.pin_prompt",
            "invisible format",
        );
        assert!(
            err.problem.contains(&format!("U+{:04X}", c as u32)),
            "{}",
            err.problem
        );
        // The system's templates, in the default language.
        let fx = Fixture::new();
        fx.append(
            SYS,
            &format!("[defaults.templates]\npin_prompt = \"PIN{c}\"\n"),
        );
        fx.expect_err(SYS, "defaults.templates.pin_prompt", "invisible format");
        // A channel file's templates.
        let fx = Fixture::new();
        fx.edit(
            SMS,
            "otp = \"#PIN# is your code.\"",
            &format!("otp = \"#PIN#{c} is your code.\""),
        );
        fx.expect_err(SMS, "templates.otp", "invisible format");
    }
    // An emoji sequence's joiner is not refused.
    let fx = Fixture::new();
    fx.append(
        SYS,
        "[defaults.templates]\npin_prompt = \"PIN \u{1F469}\u{200D}\u{1F4BB}\"\n",
    );
    assert!(fx.load().is_ok());
}

#[test]
fn a_whatsapp_template_language_for_an_unsupported_tag_is_refused() {
    let fx = spanish();
    fx.write(
        "channels/wa.toml",
        "name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"1\"\ntoken = \"${FX_WA:-t}\"\n\
         otp_template = \"otp\"\notp_template_languages = { es = \"es_MX\", fr = \"fr\" }\n",
    );
    fx.expect_err(
        "channels/wa.toml",
        "otp_template_languages.fr",
        "not one of locale.supported",
    );
    fx.edit("channels/wa.toml", ", fr = \"fr\"", "");
    let config = fx.load().unwrap();
    let crate::channels::ChannelKind::Whatsapp(keys) = &config.channels["wa"].kind else {
        panic!("a whatsapp channel");
    };
    assert_eq!(keys.otp_template_languages["es"], "es_MX");
}
