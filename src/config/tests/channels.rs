//! Channel files: each kind, secrets only as `${VAR}`, names and templates.
use secrecy::ExposeSecret;

use super::{whsec, Fixture, TWILIO_TOKEN};
use crate::config::{ChannelKind, SmtpTls};

#[test]
fn channels_are_loaded_with_their_secrets_from_the_environment() {
    let config = Fixture::new().load().unwrap();
    match &config.channels["webchat"].kind {
        ChannelKind::Webhook(w) => {
            assert_eq!(w.url.as_str(), "http://127.0.0.1:9000/chatgate/messages");
            assert_eq!(w.secret.get().expose(), [0xE5; 32]);
        }
        other => panic!("{other:?}"),
    }
    match &config.channels["sms"].kind {
        ChannelKind::Twilio(t) => {
            assert_eq!(t.account_sid, "AC123");
            assert_eq!(t.auth_token.get().expose_secret(), TWILIO_TOKEN);
            assert_eq!(t.from, "+15550006666");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        config.channels["sms"]
            .templates
            .texts
            .get("otp")
            .map(String::as_str),
        Some("#PIN# is your code.")
    );
    match &config.channels["email"].kind {
        ChannelKind::Smtp(m) => {
            assert_eq!(
                (m.port(), m.tls, m.username.is_none()),
                (2525, SmtpTls::None, true)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_kind_parses_with_its_defaults() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    fx.write(
        "channels/slack.toml",
        "name = \"slack\"\nkind = \"slack\"\ntoken = \"${FX_TOKEN}\"",
    );
    fx.write(
        "channels/tg.toml",
        "name = \"tg\"\nkind = \"telegram\"\ntoken = \"${FX_TOKEN}\"",
    );
    fx.write(
        "channels/wa.toml",
        "name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"123\"\ntoken = \"${FX_TOKEN}\"",
    );
    fx.write(
        "channels/mail.toml",
        "name = \"mail\"\nkind = \"smtp\"\nhost = \"smtp.example\"\nport = \"${FX_PORT:-2526}\"\n\
         username = \"u\"\npassword = \"${FX_TOKEN}\"\nfrom = \"a@b.example\"\n\
         [templates]\nsubject = \"Your code\"",
    );
    let config = fx.load().unwrap();
    let kind = |n: &str| &config.channels[n].kind;
    assert!(
        matches!(kind("slack"), ChannelKind::Slack(s) if s.keys.base_url.as_ref().map(|u| u.as_str()) == Some("https://slack.com/"))
    );
    assert!(
        matches!(kind("tg"), ChannelKind::Telegram(t) if t.keys.base_url.as_ref().and_then(|u| u.host_str()) == Some("api.telegram.org"))
    );
    assert!(matches!(kind("wa"), ChannelKind::Whatsapp(w) if w.api_version == "v21.0"));
    assert!(matches!(
        kind("mail"),
        ChannelKind::Smtp(m) if m.port() == 2526 && m.tls == SmtpTls::Starttls
    ));
}

#[test]
fn literal_secrets_are_refused_in_channel_files() {
    let cases = [
        (
            "channels/webchat.toml",
            "secret = \"${FX_WEBCHAT_SECRET}\"",
            "secret",
            whsec(0x11),
        ),
        (
            "channels/sms.toml",
            "auth_token = \"${FX_TWILIO_TOKEN}\"",
            "auth_token",
            "AbCdEf0123".to_string(),
        ),
    ];
    for (file, from, key, literal) in cases {
        let fx = Fixture::new();
        fx.edit(file, from, &format!("{key} = \"{literal}\""));
        let e = fx.expect_err(file, key, "must be written as \"${VARIABLE}\"");
        assert!(!e.to_string().contains(&literal));
    }
    let fx = Fixture::new();
    fx.write(
        "channels/slack.toml",
        "name = \"slack\"\nkind = \"slack\"\ntoken = \"xoxb-literal-123\"",
    );
    fx.expect_err("channels/slack.toml", "token", "must be written as");
    fx.write(
        "channels/slack.toml",
        "name = \"slack\"\nkind = \"slack\"\ntoken = \"pre-${FX_TWILIO_TOKEN}\"",
    );
    fx.expect_err("channels/slack.toml", "token", "must be written as");
    let fx = Fixture::new();
    fx.edit(
        "channels/email.toml",
        "tls = \"none\"",
        "username = \"u\"\npassword = \"hunter2hunter2\"",
    );
    let e = fx.expect_err("channels/email.toml", "password", "must be written as");
    assert!(!e.to_string().contains("hunter2"));
    // The receipt secrets of a `whatsapp` channel.
    for key in ["app_secret", "verify_token"] {
        let mut fx = Fixture::new();
        fx.set_env("FX_TOKEN", "tok");
        fx.write(
            "channels/wa.toml",
            &format!("name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"123\"\ntoken = \"${{FX_TOKEN}}\"\n{key} = \"literal-meta-secret\""),
        );
        let e = fx.expect_err("channels/wa.toml", key, "must be written as");
        assert!(!e.to_string().contains("literal-meta-secret"));
    }
}

#[test]
fn a_whatsapp_channel_reads_its_receipt_secrets_from_the_environment() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    fx.set_env("FX_APP_SECRET", "app-secret");
    fx.write(
        "channels/wa.toml",
        "name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"123\"\ntoken = \"${FX_TOKEN}\"\n\
         app_secret = \"${FX_APP_SECRET}\"\nverify_token = \"${FX_VERIFY:-verify-me}\"",
    );
    fx.write(
        "channels/wa2.toml",
        "name = \"wa2\"\nkind = \"whatsapp\"\nphone_number_id = \"124\"\ntoken = \"${FX_TOKEN}\"",
    );
    let config = fx.load().unwrap();
    match &config.channels["wa"].kind {
        ChannelKind::Whatsapp(w) => {
            let secret = w.app_secret.as_ref().unwrap().get();
            assert_eq!(secret.expose_secret(), "app-secret");
            let token = w.verify_token.as_ref().unwrap().get();
            assert_eq!(token.expose_secret(), "verify-me");
        }
        other => panic!("{other:?}"),
    }
    match &config.channels["wa2"].kind {
        ChannelKind::Whatsapp(w) => assert!(w.app_secret.is_none() && w.verify_token.is_none()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_channel_variable_is_named() {
    let mut fx = Fixture::new();
    fx.unset_env("FX_TWILIO_TOKEN");
    fx.expect_err(
        "channels/sms.toml",
        "auth_token",
        "FX_TWILIO_TOKEN is not set",
    );
}

#[test]
fn kind_name_and_duplicates() {
    let fx = Fixture::new();
    fx.edit(
        "channels/email.toml",
        "kind = \"smtp\"",
        "kind = \"pigeon\"",
    );
    fx.expect_err(
        "channels/email.toml",
        "kind",
        "webhook, twilio, twilio_voice, whatsapp, slack, telegram, telegram_gateway or smtp",
    );
    fx.edit(
        "channels/email.toml",
        "kind = \"pigeon\"",
        "kind = \"smtp\"",
    );
    fx.edit(
        "channels/email.toml",
        "name = \"email\"",
        "name = \"E-Mail\"",
    );
    fx.expect_err("channels/email.toml", "name", "a-z, 0-9");
    fx.edit("channels/email.toml", "name = \"E-Mail\"", "name = \"sms\"");
    let e = fx.expect_err("channels/sms.toml", "name", "already defined in");
    assert!(e.problem.contains("email.toml"), "{e}");
}

#[test]
fn kind_settings_are_checked() {
    let fx = Fixture::new();
    fx.edit(
        "channels/webchat.toml",
        "http://127.0.0.1:9000/chatgate/messages",
        "127.0.0.1:9000",
    );
    fx.expect_err("channels/webchat.toml", "url", "absolute http(s) URL");
    fx.edit(
        "channels/webchat.toml",
        "\"127.0.0.1:9000\"",
        "\"http://127.0.0.1:9000/m\"\nretries = 2",
    );
    fx.expect_err("channels/webchat.toml", "retries", "unknown key");
    fx.edit("channels/webchat.toml", "retries = 2", "");
    fx.edit(
        "channels/sms.toml",
        "base_url = \"https://api.twilio.com\"",
        "base_url = \"api.twilio.com\"",
    );
    fx.expect_err("channels/sms.toml", "base_url", "absolute http(s) URL");
    fx.edit(
        "channels/sms.toml",
        "\"api.twilio.com\"",
        "\"https://api.twilio.com\"",
    );
    fx.edit("channels/sms.toml", "from = \"+15550006666\"", "");
    fx.expect_err("channels/sms.toml", "from", "is required but missing");
}

#[test]
fn smtp_port_tls_and_credentials() {
    let fx = Fixture::new();
    fx.edit("channels/email.toml", "port = 2525", "port = 0");
    fx.expect_err("channels/email.toml", "port", "from 1 to 65535");
    fx.edit("channels/email.toml", "port = 0", "port = true");
    fx.expect_err("channels/email.toml", "port", "wrong type");
    fx.edit("channels/email.toml", "port = true", "port = 2525");
    fx.edit("channels/email.toml", "tls = \"none\"", "tls = \"ssl\"");
    fx.expect_err(
        "channels/email.toml",
        "tls",
        "expected one of `starttls`, `tls`, `none`",
    );
    fx.edit(
        "channels/email.toml",
        "tls = \"ssl\"",
        "tls = \"tls\"\nusername = \"u\"",
    );
    fx.expect_err(
        "channels/email.toml",
        "password",
        "required when username is set",
    );
}

#[test]
fn channel_templates_are_checked() {
    let fx = Fixture::new();
    fx.edit(
        "channels/sms.toml",
        "#PIN# is your code.",
        "Your code is ready.",
    );
    fx.expect_err("channels/sms.toml", "templates.otp", "must contain #PIN#");
    fx.edit(
        "channels/sms.toml",
        "Your code is ready.\"",
        "#PIN#\"\nsubject = \"x\"",
    );
    fx.expect_err(
        "channels/sms.toml",
        "templates.subject",
        "only smtp channels",
    );
    fx.edit("channels/sms.toml", "subject = \"x\"", "greeting = \"x\"");
    fx.expect_err("channels/sms.toml", "templates.greeting", "unknown key");
}

#[test]
fn templates_too_long_for_the_provider_are_refused_at_their_longest() {
    // Twilio takes 1600 characters: #PIN# counts 10.
    let fx = Fixture::new();
    let fits = format!("#PIN#{}", "x".repeat(1590));
    fx.edit("channels/sms.toml", "#PIN# is your code.", &fits);
    assert!(fx.load().is_ok());
    let long = format!("#PIN#{}", "x".repeat(1591));
    fx.edit("channels/sms.toml", &fits, &long);
    let err = fx.expect_err("channels/sms.toml", "templates.otp", "1601 characters");
    assert!(err
        .problem
        .contains("twilio channel \"sms\" takes at most 1600"));

    // Slack takes 40 000, Telegram 4096 (#URL# is public_url/l/ + 32).
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    let text = format!("#URL#{}", "y".repeat(4096 - 56 + 1));
    fx.write(
        "channels/slack.toml",
        &format!("name = \"slack\"\nkind = \"slack\"\ntoken = \"${{FX_TOKEN}}\"\n[templates]\nlogin_link = \"{text}\""),
    );
    assert!(fx.load().is_ok());
    fx.write(
        "channels/tg.toml",
        &format!("name = \"tg\"\nkind = \"telegram\"\ntoken = \"${{FX_TOKEN}}\"\n[templates]\nlogin_link = \"{text}\""),
    );
    fx.expect_err(
        "channels/tg.toml",
        "templates.login_link",
        "takes at most 4096",
    );
}

#[test]
fn a_too_long_template_is_named_in_the_layer_that_wrote_it() {
    let long = "z".repeat(1601);
    // Team settings of the webchat channel reach the team's sms channel.
    let fx = Fixture::new();
    fx.append(
        "config/teams/acme.toml",
        &format!("[channel_settings.webchat.templates]\npin_prompt = \"{long}\"\n"),
    );
    fx.expect_err(
        "acme.toml",
        "channel_settings.webchat.templates.pin_prompt",
        "twilio channel \"sms\"",
    );
    let fx = Fixture::new();
    fx.append(
        "config/teams/acme.toml",
        &format!("[settings.templates]\nexpired = \"{long}\"\n"),
    );
    fx.expect_err(
        "acme.toml",
        "settings.templates.expired",
        "takes at most 1600",
    );
    let fx = Fixture::new();
    fx.append(
        "config/chatgate.toml",
        &format!("[defaults.templates]\nauthenticated = \"{long}\"\n"),
    );
    fx.expect_err(
        "config/chatgate.toml",
        "defaults.templates.authenticated",
        "takes at most 1600",
    );
    // Globex has no channel with a limit: the same defaults would load
    // for it alone; webhooks and e-mail take any length.
    let fx = Fixture::new();
    fx.append(
        "config/teams/globex.toml",
        &format!("[settings.templates]\nexpired = \"{long}\"\n"),
    );
    assert!(fx.load().is_ok());
}

/// Whether a channel's provider vouches for who writes (recognized
/// conversations): by kind, unless the file says otherwise; a boolean only.
/// Only kinds whose conversation is one phone number vouch by default: a
/// Slack or Telegram conversation may be a channel or a group.
#[test]
fn vouches_for_sender_defaults_by_kind_and_is_overridden() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    for (name, kind, extra) in [
        ("slack", "slack", ""),
        ("tg", "telegram", ""),
        ("wa", "whatsapp", "phone_number_id = \"123\"\n"),
        ("slack_dm", "slack", "vouches_for_sender = true\n"),
    ] {
        fx.write(
            &format!("channels/{name}.toml"),
            &format!("name = \"{name}\"\nkind = \"{kind}\"\n{extra}token = \"${{FX_TOKEN}}\""),
        );
    }
    let config = fx.load().unwrap();
    let vouches = |c: &crate::config::Config, n: &str| c.channels[n].vouches_for_sender;
    assert!(vouches(&config, "sms"), "twilio vouches");
    assert!(vouches(&config, "wa"), "whatsapp vouches");
    assert!(!vouches(&config, "webchat"), "a webhook does not");
    assert!(!vouches(&config, "email"), "smtp does not");
    assert!(!vouches(&config, "slack"), "slack does not");
    assert!(!vouches(&config, "tg"), "telegram does not");
    assert!(vouches(&config, "slack_dm"), "unless the file says so");
    fx.edit(
        "channels/webchat.toml",
        "kind = \"webhook\"",
        "kind = \"webhook\"\nvouches_for_sender = true",
    );
    fx.edit(
        "channels/sms.toml",
        "kind = \"twilio\"",
        "kind = \"twilio\"\nvouches_for_sender = false",
    );
    let config = fx.load().unwrap();
    assert!(vouches(&config, "webchat") && !vouches(&config, "sms"));
    fx.edit(
        "channels/sms.toml",
        "vouches_for_sender = false",
        "vouches_for_sender = \"no\"",
    );
    fx.expect_err(
        "channels/sms.toml",
        "vouches_for_sender",
        "expected a boolean",
    );
}

#[test]
fn a_telegram_gateway_channel_parses_and_its_token_is_a_secret() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    fx.write(
        "channels/tgw.toml",
        "name = \"tgw\"\nkind = \"telegram_gateway\"\ntoken = \"${FX_TOKEN}\"\nsender_username = \"acme_codes\"",
    );
    let config = fx.load().unwrap();
    assert!(matches!(
        &config.channels["tgw"].kind,
        ChannelKind::TelegramGateway(t) if t.base_url.as_str() == "https://gatewayapi.telegram.org/"
            && t.sender_username.as_deref() == Some("acme_codes")
    ));
    fx.write(
        "channels/tgw.toml",
        "name = \"tgw\"\nkind = \"telegram_gateway\"\ntoken = \"AAGtg-literal\"",
    );
    let e = fx.expect_err(
        "channels/tgw.toml",
        "token",
        "must be written as \"${VARIABLE}\"",
    );
    assert!(!e.to_string().contains("AAGtg-literal"));
}

#[test]
fn a_twilio_voice_channel_parses_and_its_auth_token_is_a_secret() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    let keys = "kind = \"twilio_voice\"\naccount_sid = \"AC1\"\nfrom = \"+15550001111\"";
    fx.write(
        "channels/voice.toml",
        &format!("name = \"voice\"\n{keys}\nauth_token = \"${{FX_TOKEN}}\"\nlanguages = {{ en = \"en-US\", es = \"es-MX\" }}\nvoice = \"Polly.Joanna\""),
    );
    let config = fx.load().unwrap();
    assert!(matches!(
        &config.channels["voice"].kind,
        ChannelKind::TwilioVoice(v) if v.base_url.as_str() == "https://api.twilio.com/"
            && v.languages["es"] == "es-MX"
            && v.voice.as_deref() == Some("Polly.Joanna")
    ));
    fx.write(
        "channels/voice.toml",
        &format!("name = \"voice\"\n{keys}\nauth_token = \"literal-voice-token\""),
    );
    let e = fx.expect_err(
        "channels/voice.toml",
        "auth_token",
        "must be written as \"${VARIABLE}\"",
    );
    assert!(!e.to_string().contains("literal-voice-token"));
}

#[test]
fn authentication_template_keys_are_read_and_checked() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    fx.write(
        "channels/wa.toml",
        "name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"123\"\ntoken = \"${FX_TOKEN}\"\n\
         otp_template = \"chatgate_otp\"",
    );
    let config = fx.load().unwrap();
    assert!(matches!(
        &config.channels["wa"].kind,
        ChannelKind::Whatsapp(w) if w.otp_template.as_deref() == Some("chatgate_otp")
            && w.otp_template_language == "en_US"
    ));
    // Trimmed once, here: the sender and the CLI's template use the same name.
    fx.edit(
        "channels/wa.toml",
        "\"chatgate_otp\"",
        "\" chatgate_otp \"\notp_template_language = \" pt_BR \"",
    );
    let config = fx.load().unwrap();
    assert!(matches!(
        &config.channels["wa"].kind,
        ChannelKind::Whatsapp(w) if w.otp_template.as_deref() == Some("chatgate_otp")
            && w.otp_template_language == "pt_BR"
    ));
    fx.edit("channels/wa.toml", "\" chatgate_otp \"", "\" \"");
    fx.expect_err("channels/wa.toml", "otp_template", "must not be empty");
    fx.edit(
        "channels/wa.toml",
        "otp_template_language = \" pt_BR \"",
        "",
    );
    fx.edit("channels/wa.toml", "otp_template = \" \"", "");
    // A Content template only for a WhatsApp sender.
    fx.edit(
        "channels/sms.toml",
        "from = \"+15550006666\"",
        "from = \"+15550006666\"\notp_content_sid = \"HX1\"",
    );
    let e = fx.expect_err("channels/sms.toml", "otp_content_sid", "whatsapp:");
    assert!(e.problem.contains("from"), "{e}");
    fx.edit(
        "channels/sms.toml",
        "from = \"+15550006666\"",
        "from = \"whatsapp:+15550006666\"",
    );
    let config = fx.load().unwrap();
    assert!(matches!(
        &config.channels["sms"].kind,
        ChannelKind::Twilio(t) if t.otp_content_sid.as_deref() == Some("HX1")
    ));
}

#[test]
fn a_template_for_an_sms_channel_lives_as_long_as_the_longest_code_it_carries() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    // The whatsapp channel is acme's sms_channel: besides its own (the
    // team's 3 min) it carries the codes of webchat (20 min).
    fx.write(
        "channels/wa.toml",
        "name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"123\"\ntoken = \"${FX_TOKEN}\"\n\
         otp_template = \"chatgate_otp\"",
    );
    let acme = "config/teams/acme.toml";
    fx.edit(acme, "sms_channel = \"sms\"", "sms_channel = \"wa\"");
    fx.edit(acme, "\"email\"]", "\"email\", \"wa\"]");
    fx.edit(
        acme,
        "[channel_settings.webchat]",
        "[channel_settings.webchat]\notp.ttl = \"20m\"",
    );
    let config = fx.load().unwrap();
    let minutes = |m: u64| std::time::Duration::from_secs(m * 60);
    assert_eq!(config.teams["acme"].otp_ttl_through("wa"), minutes(20));
    // Not the sms_channel: its own codes only.
    fx.edit(acme, "sms_channel = \"wa\"", "sms_channel = \"sms\"");
    let config = fx.load().unwrap();
    assert_eq!(config.teams["acme"].otp_ttl_through("wa"), minutes(3));
}

#[test]
fn each_channel_answers_its_kind_s_facts() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TOKEN", "tok");
    fx.write(
        "channels/wa.toml",
        "name = \"wa\"\nkind = \"whatsapp\"\nphone_number_id = \"123\"\ntoken = \"${FX_TOKEN}\"",
    );
    let config = fx.load().unwrap();
    let facts = |name: &str| {
        let kind = &config.channels[name].kind;
        (
            crate::config::shows_text(config.channels.get(name)),
            kind.whatsapp_chat(),
            kind.otp_template(),
            kind.info().identity_hash,
            kind.info().sms_segments,
        )
    };
    assert_eq!(facts("webchat"), (true, false, false, false, false));
    assert_eq!(facts("sms"), (true, false, false, false, true));
    assert_eq!(facts("email"), (true, false, false, false, false));
    assert_eq!(facts("wa"), (true, true, false, true, false));
    // A channel the configuration does not hold shows nothing of a text
    // (docs/api.md#approving-one-payment).
    assert!(!crate::config::shows_text(None));
    fx.edit(
        "channels/wa.toml",
        "token = \"${FX_TOKEN}\"",
        "token = \"${FX_TOKEN}\"\notp_template = \"chatgate_otp\"",
    );
    fx.edit(
        "channels/sms.toml",
        "from = \"+15550006666\"",
        "from = \"whatsapp:+15550006666\"\notp_content_sid = \"HX1\"",
    );
    let config = fx.load().unwrap();
    let facts = |name: &str| {
        let kind = &config.channels[name].kind;
        let shows = crate::config::shows_text(config.channels.get(name));
        (shows, kind.whatsapp_chat(), kind.otp_template())
    };
    assert_eq!(facts("wa"), (false, true, true));
    assert_eq!(facts("sms"), (false, true, true));
}
