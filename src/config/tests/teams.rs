//! Team files: keys, channels, webhook, and resolved settings per channel.
use super::{whsec, Fixture};
use crate::config::Role;
use crate::domain::secrets::ApiKeyHash;

const ACME: &str = "config/teams/acme.toml";

#[test]
fn team_is_loaded_with_keys_channels_and_webhook() {
    let config = Fixture::new().load().unwrap();
    let acme = config.team("acme").unwrap();
    assert!(acme.file.ends_with("config/teams/acme.toml"));
    assert_eq!(
        acme.login_url.as_str(),
        "https://login.acme.example/chat?lang=en"
    );
    assert_eq!(acme.channels, ["webchat", "sms", "email"]);
    assert_eq!(acme.sms_channel.as_deref(), Some("sms"));
    assert_eq!(acme.primary_key().unwrap().kid, "2026-11");
    assert_eq!(
        acme.key_by_kid("2026-05").unwrap().secret.expose(),
        [0xB2; 32]
    );
    assert_eq!(acme.api_keys[1].role, Role::Agent);
    assert!(acme.api_keys[0]
        .sha256
        .matches(&ApiKeyHash::of_key("acme-bot-key")));
    assert_eq!(
        acme.webhook.as_ref().unwrap().url.host_str(),
        Some("bot.acme.example")
    );
    assert!(config.team("globex").unwrap().webhook.is_none());
}

#[test]
fn settings_resolve_system_then_team_then_channel() {
    let config = Fixture::new().load().unwrap();
    let acme = config.team("acme").unwrap();
    assert_eq!(acme.settings.authenticated_ttl.get().as_secs(), 900);
    assert!(acme.settings.otp.show_to_agents);
    assert_eq!(
        acme.channel_settings.keys().collect::<Vec<_>>(),
        ["webchat"],
        "an entry for the channel whose layer writes something, no copy for the others"
    );
    assert_eq!(
        acme.settings_by_channel().count(),
        3,
        "every channel the team lists"
    );
    assert_eq!(
        acme.settings_for("webchat")
            .authenticated_ttl
            .get()
            .as_secs(),
        3600
    );
    assert!(
        acme.settings_for("webchat").otp.show_to_agents,
        "team layer kept under channel"
    );
    assert_eq!(
        acme.settings_for("sms").authenticated_ttl.get().as_secs(),
        900
    );
    let globex = config.team("globex").unwrap();
    assert_eq!(
        globex
            .settings_for("webchat")
            .authenticated_ttl
            .get()
            .as_secs(),
        1800
    );
    assert!(!globex.settings.otp.show_to_agents);
}

#[test]
fn unknown_keys_and_bad_values_in_settings_layers_are_named() {
    let fx = Fixture::new();
    fx.edit(ACME, "show_to_agents = true", "show_to_agent = true");
    fx.expect_err(ACME, "settings.otp.show_to_agent", "unknown key");
    fx.edit(ACME, "show_to_agent = true", "show_to_agents = true");
    fx.edit(
        ACME,
        "authenticated_ttl = \"60m\"",
        "authenticated_ttl = 60",
    );
    fx.expect_err(
        ACME,
        "channel_settings.webchat.authenticated_ttl",
        "wrong type",
    );
    fx.edit(
        ACME,
        "authenticated_ttl = 60",
        "[channel_settings.webchat.otp]\nlength = 12",
    );
    fx.expect_err(ACME, "channel_settings.webchat.otp.length", "from 4 to 10");
    fx.edit(ACME, "length = 12", "length = 8");
    fx.edit(
        ACME,
        "[settings.otp]",
        "[settings.pin]\nmax_length = 3\n[settings.otp]",
    );
    fx.expect_err(
        ACME,
        "settings.pin.max_length",
        "greater than pin.max_length",
    );
}

#[test]
fn channel_settings_must_name_a_channel_of_the_team() {
    let fx = Fixture::new();
    fx.append(
        "config/teams/globex.toml",
        "[channel_settings.sms]\nauthenticated_ttl = \"5m\"",
    );
    fx.expect_err(
        "config/teams/globex.toml",
        "channel_settings.sms",
        "not one of the team's channels",
    );
}

#[test]
fn team_id_login_url_and_duplicates() {
    let fx = Fixture::new();
    fx.edit(ACME, "id = \"acme\"", "id = \"Acme Corp\"");
    fx.expect_err(ACME, "id", "a-z, 0-9");
    fx.edit(ACME, "id = \"Acme Corp\"", "id = \"globex\"");
    let e = fx.expect_err("globex.toml", "id", "already defined in");
    assert!(e.problem.contains("acme.toml"), "{e}");
    fx.edit(ACME, "id = \"globex\"", "id = \"acme\"");
    fx.edit(ACME, "https://login.acme.example/chat?lang=en", "/chat");
    fx.expect_err(ACME, "login_url", "absolute http(s) URL");
}

#[test]
fn channels_of_a_team_must_exist_and_delivery_channels_be_listed() {
    let fx = Fixture::new();
    fx.edit(
        ACME,
        "\"webchat\", \"sms\", \"email\"",
        "\"webchat\", \"fax\", \"sms\", \"email\"",
    );
    fx.expect_err(
        ACME,
        "channels[1]",
        "no channel file defines a channel named \"fax\"",
    );
    fx.edit(ACME, "\"fax\", ", "\"webchat\", ");
    fx.expect_err(ACME, "channels[1]", "listed twice");
    fx.edit(
        ACME,
        "\"webchat\", \"webchat\", \"sms\", \"email\"",
        "\"webchat\", \"email\"",
    );
    // The error lists the team's channels, so a typo shows beside them.
    fx.expect_err(
        ACME,
        "sms_channel",
        "not one of the team's channels, which are webchat, email",
    );
    fx.edit(ACME, "sms_channel = \"sms\"", "sms_channel = \"email\"");
    fx.expect_err(ACME, "sms_channel", "expected twilio or whatsapp");
    fx.edit(ACME, "sms_channel = \"email\"", "");
    fx.edit(
        ACME,
        "email_channel = \"email\"",
        "email_channel = \"webchat\"",
    );
    fx.expect_err(ACME, "email_channel", "expected smtp");
    fx.edit(
        ACME,
        "email_channel = \"webchat\"",
        "email_channel = \"email\"",
    );
    fx.edit(ACME, "\"webchat\", \"email\"", "\"webchat\"");
    fx.expect_err(ACME, "email_channel", "not one of the team's channels");
}

#[test]
fn security_keys_are_checked_without_quoting_them() {
    let fx = Fixture::new();
    let short = format!("whsec_{}", &whsec(0x11)[6..30]);
    fx.edit(ACME, &whsec(0xB2), &short);
    let e = fx.expect_err(ACME, "security_keys[1].secret", "at least 32 are required");
    assert!(!e.to_string().contains(&short[6..]));
    // Each error about a key says how to make one.
    assert!(e.problem.contains("chatgate keygen security-key"), "{e}");
    fx.edit(ACME, &short, &whsec(0x11)[6..]);
    let e = fx.expect_err(
        ACME,
        "security_keys[1].secret",
        "must start with \"whsec_\"",
    );
    assert!(e.problem.contains("chatgate keygen security-key"), "{e}");
    fx.edit(ACME, &whsec(0x11)[6..], &whsec(0xB2));
    fx.edit(ACME, "kid = \"2026-05\"", "kid = \"2026-11\"");
    fx.expect_err(ACME, "security_keys[1].kid", "used twice");
    fx.edit(
        ACME,
        "kid = \"2026-11\"\nsecret",
        "kid = \"2026-04\"\nsecret",
    );
    fx.edit(ACME, "primary = true", "primary = false");
    fx.expect_err(ACME, "security_keys", "no key is marked primary");
    fx.edit(ACME, "primary = false", "primary = true");
    fx.edit(
        ACME,
        &format!("secret = \"{}\"", whsec(0xB2)),
        &format!("secret = \"{}\"\nprimary = true", whsec(0xB2)),
    );
    fx.expect_err(ACME, "security_keys", "2 keys are marked primary");
}

#[test]
fn a_team_needs_a_security_key() {
    let fx = Fixture::new();
    let globex = fx.read("config/teams/globex.toml");
    let start = globex.find("[[security_keys]]").unwrap();
    let end = globex.find("[[api_keys]]").unwrap();
    fx.write(
        "config/teams/globex.toml",
        &format!("{}{}", &globex[..start], &globex[end..]),
    );
    let e = fx.expect_err("globex.toml", "security_keys", "at least one");
    assert!(e.problem.contains("chatgate keygen security-key"), "{e}");
}

#[test]
fn api_keys_are_checked() {
    let fx = Fixture::new();
    fx.edit(ACME, "role = \"agent\"", "role = \"superuser\"");
    fx.expect_err(
        ACME,
        "api_keys[1].role",
        "expected one of `bot`, `agent`, `admin`",
    );
    fx.edit(ACME, "role = \"superuser\"", "role = \"admin\"");
    fx.edit(ACME, "id = \"acme-agent\"", "id = \"acme-bot\"");
    fx.expect_err(ACME, "api_keys[1].id", "used twice");
    fx.edit(
        ACME,
        "id = \"acme-bot\"\nrole = \"admin\"",
        "id = \"acme-admin\"\nrole = \"admin\"",
    );
    let agent_hash = ApiKeyHash::of_key("acme-agent-key").to_hex();
    fx.edit(ACME, &agent_hash, &agent_hash[..40]);
    fx.expect_err(ACME, "api_keys[1].sha256", "64 hex digits");
    // One digit short (a copy that lost its last character) says so, and
    // how to make a key and its line.
    fx.edit(ACME, &agent_hash[..40], &agent_hash[..63]);
    let e = fx.expect_err(ACME, "api_keys[1].sha256", "must be 64 hex digits");
    assert!(e.problem.contains("not 63"), "{e}");
    assert!(e.problem.contains("chatgate keygen api-key"), "{e}");
    fx.edit(ACME, &agent_hash[..63], &format!("{}zz", &agent_hash[..62]));
    let e = fx.expect_err(ACME, "api_keys[1].sha256", "64 hex digits (0-9, a-f)");
    assert!(!e.problem.contains("zz"), "{e}");
}

#[test]
fn an_api_key_belongs_to_one_team() {
    let fx = Fixture::new();
    let globex_hash = ApiKeyHash::of_key("globex-bot-key").to_hex();
    fx.edit(
        "config/teams/globex.toml",
        &globex_hash,
        &ApiKeyHash::of_key("acme-bot-key").to_hex(),
    );
    let e = fx.expect_err(
        "globex.toml",
        "api_keys[0].sha256",
        "already configured for team \"acme\"",
    );
    assert!(!e
        .to_string()
        .contains(&ApiKeyHash::of_key("acme-bot-key").to_hex()));
}

#[test]
fn team_webhook_is_checked() {
    let fx = Fixture::new();
    fx.edit(
        ACME,
        "https://bot.acme.example/events",
        "bot.acme.example/events",
    );
    fx.expect_err(ACME, "webhook.url", "absolute http(s) URL");
    fx.edit(
        ACME,
        "\"bot.acme.example/events\"",
        "\"https://bot.acme.example/events\"",
    );
    fx.edit(ACME, &whsec(0xC3), "plain-text-webhook-secret");
    let e = fx.expect_err(ACME, "webhook.secret", "whsec_");
    assert!(!e.to_string().contains("plain-text-webhook-secret"));
    fx.edit(ACME, "plain-text-webhook-secret", &whsec(0xC3));
    fx.edit(ACME, "[webhook]", "[webhook]\nretries = 3");
    fx.expect_err(ACME, "webhook.retries", "unknown key");
}

#[test]
fn team_files_are_interpolated_too() {
    let mut fx = Fixture::new();
    fx.edit(ACME, &whsec(0xA1), "${FX_ACME_KEY}");
    fx.expect_err(ACME, "security_keys[0].secret", "FX_ACME_KEY is not set");
    fx.set_env("FX_ACME_KEY", &whsec(0x11));
    let config = fx.load().unwrap();
    assert_eq!(
        config
            .team("acme")
            .unwrap()
            .primary_key()
            .unwrap()
            .secret
            .expose(),
        [0x11; 32]
    );
}

#[test]
fn an_oidc_section_is_checked_key_by_key() {
    let section = |body: &str| format!("\n[oidc]\n{body}\n");
    let ok = "issuer = \"https://id.acme.example/realms/retail\"\nclient_id = \"chatgate\"\nclient_secret = \"s3cret\"";
    let fx = Fixture::new();
    fx.append(
        ACME,
        &section(&format!("{ok}\nmax_age = \"5m\"\nacr_values = [\"gold\"]")),
    );
    let config = fx.load().unwrap();
    let oidc = config.teams["acme"].oidc.as_ref().unwrap();
    assert_eq!(oidc.scopes, ["openid"]);
    assert_eq!(oidc.customer_claim, "sub");
    assert_eq!(oidc.max_age, Some(std::time::Duration::from_secs(300)));
    assert!(config.teams["globex"].oidc.is_none());

    for (body, key, problem) in [
        (
            "client_id = \"c\"\nclient_secret = \"s\"",
            "oidc.issuer",
            "required but missing",
        ),
        (
            "issuer = \"http://id.acme.example\"\nclient_id = \"c\"\nclient_secret = \"s\"",
            "oidc.issuer",
            "must be https",
        ),
        (
            "issuer = \"https://id.acme.example\"\nclient_secret = \"s\"",
            "oidc.client_id",
            "required but missing",
        ),
        (
            "issuer = \"https://id.acme.example\"\nclient_id = \"\"\nclient_secret = \"s\"",
            "oidc.client_id",
            "must not be empty",
        ),
        (
            "issuer = \"https://id.acme.example\"\nclient_id = \"c\"",
            "oidc.client_secret",
            "required but missing",
        ),
        (
            &format!("{ok}\nscopes = [\"open id\"]"),
            "oidc.scopes[0]",
            "scope name",
        ),
        (
            &format!("{ok}\nprompt = \"login\""),
            "oidc.prompt",
            "unknown key",
        ),
    ] {
        let fx = Fixture::new();
        fx.append(ACME, &section(body));
        fx.expect_err(ACME, key, problem);
    }
}

#[test]
fn a_console_section_is_checked_key_by_key() {
    let provider = "[console.oidc]\nissuer = \"https://login.bank.example\"\nclient_id = \"chatgate-console\"\nclient_secret = \"s3cret\"";
    let ok = &format!("{provider}\nadmin_values = [\"supervisors\"]");
    let fx = Fixture::new();
    fx.append(
        ACME,
        &format!("\n[console]\nrequire_person = true\nsign_in_rate = 3\n{ok}\n"),
    );
    let config = fx.load().unwrap();
    let console = &config.teams["acme"].console;
    assert!(console.require_person);
    assert_eq!(console.sign_in_rate, 3);
    assert_eq!(config.teams["globex"].console.sign_in_rate, 10);
    let oidc = console.oidc.as_ref().unwrap();
    assert_eq!(oidc.actor_audience, "chatgate-console");
    assert_eq!(oidc.provider.scopes, ["openid"]);
    assert!(!config.teams["globex"].console.require_person);
    assert!(config.teams["globex"].console.oidc.is_none());

    for (body, key, problem) in [
        (
            "[console]\nrequire_person = true".to_string(),
            "console.require_person",
            "needs [console.oidc]",
        ),
        (
            format!("{ok}\nsession_idle = \"1h\"\nsession_max = \"30m\""),
            "console.oidc.session_max",
            "shorter than session_idle",
        ),
        (
            format!("{ok}\nsession_idle = \"0s\""),
            "console.oidc.session_idle",
            "more than 0s",
        ),
        (
            format!("{ok}\nactor_audience = \"\""),
            "console.oidc.actor_audience",
            "must not be empty",
        ),
        (
            format!("{ok}\nagent_values = [\"\"]"),
            "console.oidc.agent_values",
            "must not be empty",
        ),
        (
            "[console]\nsign_in_rate = 0".to_string(),
            "console.sign_in_rate",
            "from 1 to 10000",
        ),
        (
            "[console]\nsign_in_rate = -5".to_string(),
            "console.sign_in_rate",
            "from 1 to 10000",
        ),
        (
            "[console]\nsign_in_rate = 10001".to_string(),
            "console.sign_in_rate",
            "from 1 to 10000",
        ),
        // Nobody could sign in: no value of either role.
        (
            provider.to_string(),
            "console.oidc.agent_values",
            "both empty",
        ),
        (
            format!("{provider}\nagent_values = []\nadmin_values = []"),
            "console.oidc.agent_values",
            "both empty",
        ),
        (
            ok.replace("https://login", "http://login"),
            "console.oidc.issuer",
            "must be https",
        ),
        (
            format!("{ok}\nrole = \"x\""),
            "console.oidc.role",
            "unknown key",
        ),
    ] {
        let fx = Fixture::new();
        fx.append(ACME, &format!("\n{body}\n"));
        fx.expect_err(ACME, key, problem);
    }
}

#[test]
fn an_ssf_section_names_each_missing_key() {
    let ok = [
        "issuer = \"https://id.acme.example/realms/retail\"",
        "jwks_uri = \"https://id.acme.example/realms/retail/certs\"",
        "audience = \"https://chatgate.acme.example/ssf/acme\"",
    ];
    let fx = Fixture::new();
    fx.append(ACME, &format!("\n[oidc]\nissuer = \"https://id.acme.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\nbackchannel_logout = true\n\n[ssf]\n{}\n", ok.join("\n")));
    let config = fx.load().unwrap();
    let ssf = config.teams["acme"].ssf.as_ref().unwrap();
    assert_eq!(ssf.audience, "https://chatgate.acme.example/ssf/acme");
    assert_eq!(
        ssf.on_credential_change,
        crate::config::OnCredentialChange::Logout
    );
    assert!(
        config.teams["acme"]
            .oidc
            .as_ref()
            .unwrap()
            .backchannel_logout
    );
    assert!(config.teams["globex"].ssf.is_none());
    for (i, key) in ["ssf.issuer", "ssf.jwks_uri", "ssf.audience"]
        .iter()
        .enumerate()
    {
        let mut lines = ok.to_vec();
        lines.remove(i);
        let fx = Fixture::new();
        fx.append(ACME, &format!("\n[ssf]\n{}\n", lines.join("\n")));
        fx.expect_err(ACME, key, "required but missing");
    }
    for (extra, key, problem) in [
        (
            "jwks_uri = \"http://keys.acme.example/certs\"",
            "ssf.jwks_uri",
            "https",
        ),
        ("audience = \"\"", "ssf.audience", "must not be empty"),
        (
            "on_credential_change = \"revoke\"",
            "ssf.on_credential_change",
            "",
        ),
        ("stream_id = \"x\"", "ssf.stream_id", "unknown key"),
    ] {
        let mut lines: Vec<String> = ok.iter().map(|l| l.to_string()).collect();
        let name = extra.split(' ').next().unwrap();
        lines.retain(|l| !l.starts_with(name));
        lines.push(extra.to_string());
        let fx = Fixture::new();
        fx.append(ACME, &format!("\n[ssf]\n{}\n", lines.join("\n")));
        fx.expect_err(ACME, key, problem);
    }
}

#[test]
fn a_delivery_ladder_names_channels_with_receipts_but_the_last() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TG_TOKEN", "fx-tg-gateway-token");
    fx.write(
        "channels/tg.toml",
        "name = \"tg\"\nkind = \"telegram_gateway\"\ntoken = \"${FX_TG_TOKEN}\"",
    );
    let with_ladder = |ladder: &str| format!("show_to_agents = true\nladder = [{ladder}]");
    fx.edit(
        ACME,
        "show_to_agents = true",
        &with_ladder("\"tg\", \"sms\", \"email\""),
    );
    fx.edit(
        ACME,
        "[settings.otp]",
        "[settings.otp]\nadvance_after = \"20s\"",
    );
    let config = fx.load().unwrap();
    let acme = &config.teams["acme"];
    let steps = ["tg", "sms", "email"].map(String::from).to_vec();
    assert_eq!(acme.settings.otp.ladder, steps);
    assert_eq!(acme.settings.otp.advance_after.get().as_secs(), 20);
    assert_eq!(
        acme.settings_for("webchat").otp.ladder,
        steps,
        "layers merge"
    );
    assert!(config.teams["globex"].settings.otp.ladder.is_empty());
    assert_eq!(
        config.teams["globex"]
            .settings
            .otp
            .advance_after
            .get()
            .as_secs(),
        45
    );

    let current = with_ladder("\"tg\", \"sms\", \"email\"");
    for (ladder, key, problem) in [
        (
            "\"fax\"",
            "settings.otp.ladder[0]",
            "no channel file defines a channel named \"fax\"",
        ),
        ("\"sms\", \"sms\"", "settings.otp.ladder[1]", "a step twice"),
        (
            "\"network\", \"sms\"",
            "settings.otp.ladder[0]",
            "the network step needs the team's [number_verification]",
        ),
        (
            "\"sms\", \"network\"",
            "settings.otp.ladder[1]",
            "the network step can only be the ladder's first",
        ),
        (
            "\"email\", \"sms\"",
            "settings.otp.ladder[0]",
            "every step but the last",
        ),
        (
            "\"sms\", \"webchat\"",
            "settings.otp.ladder[1]",
            "the last step must be",
        ),
    ] {
        fx.edit(ACME, &current, &with_ladder(ladder));
        fx.expect_err(ACME, key, problem);
        fx.edit(ACME, &with_ladder(ladder), &current);
    }
    fx.load().unwrap();

    // Each layer is checked, and the error names the one that wrote it.
    fx.append(
        ACME,
        "[channel_settings.webchat.otp]\nladder = [\"webchat\"]",
    );
    fx.expect_err(
        ACME,
        "channel_settings.webchat.otp.ladder[0]",
        "of kind webhook",
    );
    fx.edit(ACME, "ladder = [\"webchat\"]", "ladder = [\"email\"]");
    fx.load().unwrap();
    fx.edit(ACME, "advance_after = \"20s\"", "advance_after = \"0s\"");
    fx.expect_err(ACME, "settings.otp.advance_after", "longer than");
    fx.edit(ACME, "advance_after = \"0s\"", "advance_after = \"20s\"");
    fx.edit(
        "config/chatgate.toml",
        "length = 6",
        "length = 6\nladder = [\"fax\"]",
    );
    fx.expect_err("chatgate.toml", "defaults.otp.ladder[0]", "\"fax\"");
}

#[test]
fn a_twilio_voice_channel_serves_only_as_the_voice_channel_or_a_ladder_step() {
    let mut fx = Fixture::new();
    fx.set_env("FX_VOICE_TOKEN", "fx-voice-token");
    fx.write(
        "channels/voice.toml",
        "name = \"voice\"\nkind = \"twilio_voice\"\naccount_sid = \"AC1\"\nauth_token = \"${FX_VOICE_TOKEN}\"\nfrom = \"+15550001111\"",
    );
    fx.edit(
        ACME,
        "sms_channel = \"sms\"",
        "sms_channel = \"sms\"\nvoice_channel = \"voice\"",
    );
    let config = fx.load().unwrap();
    assert_eq!(config.teams["acme"].voice_channel.as_deref(), Some("voice"));
    assert!(config.teams["acme"].uses_channel("voice"));
    // Without otp.voice_regions its calls may go anywhere: warned at start.
    assert_eq!(config.teams_calling_anywhere(), vec!["acme"]);
    fx.edit(
        ACME,
        "\"webchat\", \"sms\", \"email\"",
        "\"webchat\", \"sms\", \"email\", \"voice\"",
    );
    fx.expect_err(
        ACME,
        "channels[3]",
        "serves only as the team's voice_channel or a step of otp.ladder",
    );
    fx.edit(ACME, ", \"voice\"]", "]");
    fx.edit(ACME, "voice_channel = \"voice\"", "voice_channel = \"sms\"");
    fx.expect_err(ACME, "voice_channel", "expected twilio_voice");
    fx.edit(ACME, "voice_channel = \"sms\"", "voice_channel = \"fax\"");
    fx.expect_err(ACME, "voice_channel", "no channel file defines");
}

#[test]
fn a_telegram_gateway_channel_serves_only_as_a_ladder_step() {
    let mut fx = Fixture::new();
    fx.set_env("FX_TG_TOKEN", "fx-tg-gateway-token");
    fx.write(
        "channels/tg.toml",
        "name = \"tg\"\nkind = \"telegram_gateway\"\ntoken = \"${FX_TG_TOKEN}\"",
    );
    fx.load().unwrap();
    fx.edit(
        ACME,
        "\"webchat\", \"sms\", \"email\"",
        "\"webchat\", \"sms\", \"email\", \"tg\"",
    );
    fx.expect_err(ACME, "channels[3]", "serves only as a step of otp.ladder");
    fx.edit(ACME, ", \"tg\"]", "]");
    fx.edit(ACME, "sms_channel = \"sms\"", "sms_channel = \"tg\"");
    fx.expect_err(ACME, "sms_channel", "not one of the team's channels");
}

#[test]
fn a_dialogflow_section_names_one_of_the_team_s_channels() {
    let fx = Fixture::new();
    fx.append(ACME, "\n[dialogflow]\nchannel = \"webchat\"\n");
    let config = fx.load().unwrap();
    let dialogflow = config.teams["acme"].dialogflow.as_ref().unwrap();
    assert_eq!(dialogflow.channel, "webchat");
    assert!(config.teams["globex"].dialogflow.is_none());
    // globex's channels are webchat only; sms is a channel file, not its.
    let fx = Fixture::new();
    fx.append(
        "config/teams/globex.toml",
        "\n[dialogflow]\nchannel = \"sms\"\n",
    );
    fx.expect_err(
        "globex.toml",
        "dialogflow.channel",
        "\"sms\" is not one of the team's channels",
    );
    let fx = Fixture::new();
    fx.append(
        ACME,
        "\n[dialogflow]\nchannel = \"webchat\"\nagent = \"x\"\n",
    );
    fx.expect_err("acme.toml", "dialogflow.agent", "unknown");
}

#[test]
fn a_number_checks_section_names_each_missing_or_foreign_key() {
    let ok = [
        "kind = \"camara\"",
        "sim_swap_url = \"https://api.operator.example/sim-swap/v2\"",
        "token_url = \"https://auth.operator.example/token\"",
        "client_id = \"chatgate\"",
        "client_secret = \"s\"",
    ];
    let fx = Fixture::new();
    fx.append(ACME, &format!("\n[number_checks]\n{}\n", ok.join("\n")));
    let config = fx.load().unwrap();
    let checks = config.teams["acme"].number_checks.as_ref().unwrap();
    let s = checks.settings;
    assert_eq!(s.sim_swap_max_age.as_secs(), 72 * 3600, "the default");
    assert_eq!(checks.cache_for.as_secs(), 600);
    assert!(config.teams["globex"].number_checks.is_none());
    for (i, key) in [
        "number_checks.kind",
        "number_checks.sim_swap_url",
        "number_checks.token_url",
        "number_checks.client_id",
        "number_checks.client_secret",
    ]
    .iter()
    .enumerate()
    {
        let mut lines = ok.to_vec();
        lines.remove(i);
        let fx = Fixture::new();
        fx.append(ACME, &format!("\n[number_checks]\n{}\n", lines.join("\n")));
        fx.expect_err(ACME, key, "missing");
    }
    for (extra, key, problem) in [
        (
            "account_sid = \"AC1\"",
            "number_checks.account_sid",
            "not a key of kind camara",
        ),
        (
            "sim_swap_max_age = \"30m\"",
            "number_checks.sim_swap_max_age",
            "\"1h\" to \"2400h\"",
        ),
        (
            "sim_swap_max_age = \"2401h\"",
            "number_checks.sim_swap_max_age",
            "\"1h\" to \"2400h\"",
        ),
        ("on_sim_swap = \"ignore\"", "number_checks.on_sim_swap", ""),
        (
            "token_url = \"http://auth.operator.example/token\"",
            "number_checks.token_url",
            "https",
        ),
        (
            "auth = \"ciba\"",
            "number_checks.bc_authorize_url",
            "missing",
        ),
        ("max_age = \"72h\"", "number_checks.max_age", "unknown key"),
    ] {
        let mut lines: Vec<String> = ok.iter().map(|l| l.to_string()).collect();
        let name = extra.split(' ').next().unwrap();
        lines.retain(|l| !l.starts_with(name));
        lines.push(extra.to_string());
        let fx = Fixture::new();
        fx.append(ACME, &format!("\n[number_checks]\n{}\n", lines.join("\n")));
        fx.expect_err(ACME, key, problem);
    }
    let fx = Fixture::new();
    let twilio = "kind = \"twilio_lookup\"\naccount_sid = \"AC1\"\nauth_token = \"t\"\ntoken_url = \"https://x.example/t\"";
    fx.append(ACME, &format!("\n[number_checks]\n{twilio}\n"));
    fx.expect_err(
        ACME,
        "number_checks.token_url",
        "not a key of kind twilio_lookup",
    );
}

#[test]
fn an_advance_after_shorter_than_a_takeover_warns_once() {
    let fx = Fixture::new();
    fx.edit(
        ACME,
        "[settings.otp]",
        "[settings.otp]\nladder = [\"sms\", \"email\"]",
    );
    let load = || {
        let (config, kept) = crate::config::deferring(|| fx.load());
        (config.expect("a short advance_after loads"), kept.lines())
    };
    // The default (45 s): nothing said.
    assert_eq!(load().1, Vec::<String>::new());
    // Shorter than a takeover: loads, with one warning naming the key,
    // the team and the takeover's time.
    fx.edit(
        ACME,
        "[settings.otp]",
        "[settings.otp]\nadvance_after = \"3s\"",
    );
    let (config, lines) = load();
    assert_eq!(
        config.teams["acme"]
            .settings
            .otp
            .advance_after
            .get()
            .as_secs(),
        3
    );
    let line = crate::config::validate::warn_short_advance_after(&config).unwrap_or_default();
    assert!(
        line.contains("otp.advance_after (3s) of team \"acme\" (settings)") && line.contains("5s"),
        "{line}"
    );
    // Once per process (another test of this process may have had it
    // said already): at most this once, and never again at a reload, also
    // one that finds it changed.
    assert!(lines.len() <= 1, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with(&line)), "{lines:?}");
    assert_eq!(load().1, Vec::<String>::new());
    fx.edit(ACME, "advance_after = \"3s\"", "advance_after = \"2s\"");
    assert_eq!(load().1, Vec::<String>::new());
    fx.edit(ACME, "advance_after = \"2s\"", "advance_after = \"3s\"");
    // The takeover's time itself is enough.
    fx.edit(ACME, "advance_after = \"3s\"", "advance_after = \"5s\"");
    assert_eq!(load().1, Vec::<String>::new());
}

/// `display_name` names the team on the gateway's pages: none is the id's
/// place; blank, over 64 characters or with an invisible or control
/// character is refused, naming the key.
#[test]
fn a_display_name_is_read_and_checked() {
    let fx = Fixture::new();
    let config = fx.load().unwrap();
    assert_eq!(config.team("acme").unwrap().display_name, None);
    fx.edit(
        ACME,
        "id = \"acme\"\n",
        "id = \"acme\"\ndisplay_name = \"Acme Bank\"\n",
    );
    let config = fx.load().unwrap();
    let acme = config.team("acme").unwrap();
    assert_eq!(acme.display_name.as_deref(), Some("Acme Bank"));
    for bad in [
        "\"  \"".to_string(),
        format!("\"{}\"", "a".repeat(65)),
        "\"Acme\\u200BBank\"".into(),
        "\"Acme\\u202EBank\"".into(),
        "\"Acme\\nBank\"".into(),
    ] {
        fx.edit(
            ACME,
            "display_name = \"Acme Bank\"",
            &format!("display_name = {bad}"),
        );
        fx.expect_err("acme.toml", "display_name", "must");
        fx.edit(
            ACME,
            &format!("display_name = {bad}"),
            "display_name = \"Acme Bank\"",
        );
    }
    assert!(fx.load().is_ok());
}

#[test]
fn a_demo_default_in_many_team_files_is_one_warning_with_the_count() {
    let fx = Fixture::new();
    for n in 0..40u8 {
        let team = format!(
            "id = \"many{n}\"\nlogin_url = \"${{FX_UNSET_MANY_LOGIN:-http://127.0.0.1:8090/login}}\"\n\
             channels = [\"webchat\"]\n\n[[security_keys]]\nkid = \"m{n}\"\nsecret = \"{}\"\nprimary = true\n",
            whsec(n)
        );
        fx.write(&format!("config/teams/many{n:02}.toml"), &team);
    }
    let (config, kept) = crate::config::deferring(|| fx.load());
    assert_eq!(config.expect("the teams load").teams.len(), 42);
    let lines = kept.lines();
    let defaults: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("FX_UNSET_MANY_LOGIN"))
        .collect();
    // One line for 40 files: the count, and the first three named.
    assert_eq!(defaults.len(), 1, "{lines:#?}");
    assert!(defaults[0].contains("count=40"), "{defaults:?}");
    assert!(defaults[0].contains("many00.toml"), "{defaults:?}");
    assert!(!defaults[0].contains("many03.toml"), "{defaults:?}");
}

#[test]
fn an_mcp_oauth_section_is_read_and_an_issuer_s_audience_is_one_team_s() {
    let section = "\n[mcp]\noauth = { issuer = \"https://as.example\" }\n";
    let fx = Fixture::new();
    fx.append(ACME, section);
    let config = fx.load().unwrap();
    let oauth = config.teams["acme"].mcp_oauth.as_ref().unwrap();
    assert_eq!(oauth.audience, format!("{}/mcp", config.server.public_url));
    assert_eq!(oauth.scope, "chatgate:bot");
    let issuers: Vec<&String> = config.sums.mcp_issuers().collect();
    assert_eq!(issuers, ["https://as.example"]);
    assert!(config.teams["globex"].mcp_oauth.is_none());
    // Another team of that issuer and audience would take acme's tokens.
    fx.append("config/teams/globex.toml", section);
    fx.expect_err("globex.toml", "mcp.oauth.audience", "already takes");
    // With its own audience, it is its own.
    let fx = Fixture::new();
    fx.append(ACME, section);
    fx.append(
        "config/teams/globex.toml",
        "\n[mcp]\noauth = { issuer = \"https://as.example\", audience = \"globex-mcp\" }\n",
    );
    let config = fx.load().unwrap();
    let teams: Vec<&String> = config.sums.mcp_teams_of("https://as.example").collect();
    assert_eq!(teams, ["acme", "globex"]);
    assert_eq!(config.sums.mcp_issuers().count(), 1, "each issuer once");
    let fx = Fixture::new();
    fx.append(
        ACME,
        "\n[mcp]\noauth = { issuer = \"http://as.example\" }\n",
    );
    fx.expect_err(ACME, "mcp.oauth.issuer", "https");
}
