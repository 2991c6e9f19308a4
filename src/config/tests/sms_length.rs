//! The SMS length check (docs/configuration.md#sms-length): texts that can
//! go through a `twilio` channel, at their longest, against
//! `locale.max_sms_segments`; and the rows of `chatgate check-texts`.
use super::Fixture;
use crate::config::text_rows;
use crate::config::validate::{at_longest, longest_short_url};
use crate::domain::settings::Templates;
use crate::domain::sms_segments::count as segments;

/// One segment at most, and a network link short enough for one (the
/// default, which says to open it only while chatting with the team, is
/// two at its longest).
const ONE_SEGMENT: &str = "[defaults.locale]\nmax_sms_segments = 1\n\
    [defaults.templates]\nnetwork_link = \"Confirm your number: #URL#\"\n";

#[test]
fn a_text_over_the_segments_is_refused_naming_file_key_language_channel_and_count() {
    let fx = Fixture::new();
    fx.append("config/chatgate.toml", ONE_SEGMENT);
    fx.append(
        "config/teams/acme.toml",
        &format!("[settings.templates]\nexpired = \"{}\"\n", "ć".repeat(70)),
    );
    assert!(fx.load().is_ok(), "70 UCS-2 units are one segment");
    fx.edit("config/teams/acme.toml", "ćć", "ććć");
    let err = fx.expect_err(
        "acme.toml",
        "settings.templates.expired",
        "is 2 SMS segments (UCS-2) at its longest in language \"en\" through twilio channel \"sms\" (team \"acme\"); locale.max_sms_segments is 1",
    );
    assert!(err.to_string().contains("acme.toml"), "{err}");
}

/// A `[number_verification]` for acme (CAMARA).
const VERIFIES: &str = "[number_verification]\n\
    authorization_endpoint = \"https://op.example/authorize\"\n\
    token_endpoint = \"https://op.example/token\"\n\
    verify_url = \"https://api.op.example/number-verification/v2\"\n\
    client_id = \"bank\"\nclient_secret = \"s3cret\"\n";

#[test]
fn a_text_no_team_can_send_is_not_counted() {
    // One segment and every built-in text: no team verifies numbers or
    // has a wallet, so neither link is counted.
    let fx = Fixture::new();
    fx.append(
        "config/chatgate.toml",
        "[defaults.locale]\nmax_sms_segments = 1\n",
    );
    let long = "x".repeat(160);
    fx.append(
        "config/teams/acme.toml",
        &format!(
            "[settings.templates]\nwallet_link = \"{long} #URL#\"\n\
             [channel_settings.webchat.templates]\ncode_entry_link = \"{long} #URL#\"\n\
             pin_entry_link = \"{long} #URL#\"\n"
        ),
    );
    assert!(fx.load().is_ok(), "{:?}", fx.load().err());
    // The page's links go into the conversation: an SMS conversation's count.
    fx.append(
        "config/teams/acme.toml",
        &format!("[channel_settings.sms.templates]\ncode_entry_link = \"{long} #URL#\"\n"),
    );
    fx.expect_err(
        "acme.toml",
        "channel_settings.sms.templates.code_entry_link",
        "is 2 SMS segments (GSM-7)",
    );
}

#[test]
fn the_default_network_link_counts_for_a_team_that_verifies_numbers() {
    let fx = Fixture::new();
    fx.append(
        "config/chatgate.toml",
        "[defaults.locale]\nmax_sms_segments = 1\n",
    );
    fx.append("config/teams/acme.toml", VERIFIES);
    fx.expect_err(
        "chatgate.toml",
        "defaults.templates.network_link",
        "is 2 SMS segments (GSM-7)",
    );
    fx.edit(
        "config/chatgate.toml",
        "max_sms_segments = 1",
        "max_sms_segments = 2",
    );
    assert!(fx.load().is_ok(), "{:?}", fx.load().err());
}

#[test]
fn every_built_in_text_but_the_network_link_is_one_segment_at_its_longest() {
    // A 70-character public_url, a 10-digit code, a 4-digit #MINUTES#.
    let url = longest_short_url(&format!("https://{}.example", "a".repeat(54)));
    let templates = Templates::default();
    for purpose in crate::channels::Purpose::ALL {
        let text = templates.text(purpose.key());
        let count = segments(&at_longest(text, &url, 10, "9999"));
        let want =
            if purpose == crate::channels::Purpose::Link(crate::domain::challenge::Page::Network) {
                2
            } else {
                1
            };
        assert_eq!(
            (count.count, count.encoding.as_str()),
            (want, "GSM-7"),
            "{}",
            purpose.as_str()
        );
    }
}

#[test]
fn no_limit_by_default() {
    let fx = Fixture::new();
    fx.append(
        "config/teams/acme.toml",
        &format!("[settings.templates]\nexpired = \"{}\"\n", "ć".repeat(500)),
    );
    assert!(fx.load().is_ok());
}

#[test]
fn the_pin_counts_at_otp_length_digits() {
    // The fixture's sms channel has its own otp text; 6 digits + 154 = 160.
    let fx = Fixture::new();
    fx.append("config/chatgate.toml", ONE_SEGMENT);
    let fits = format!("#PIN#{}", "x".repeat(154));
    fx.edit("channels/sms.toml", "#PIN# is your code.", &fits);
    assert!(fx.load().is_ok());
    fx.edit(
        "config/teams/acme.toml",
        "[settings.otp]\n",
        "[settings.otp]\nlength = 7\n",
    );
    fx.expect_err(
        "channels/sms.toml",
        "templates.otp",
        "is 2 SMS segments (GSM-7)",
    );
}

#[test]
fn the_url_and_minutes_count_at_their_longest() {
    // #URL# is public_url/l/ + 32 (http://127.0.0.1:8080/ + l/ + 32 = 56);
    // #MINUTES# of a 100-minute ttl is 3 digits.
    let fx = Fixture::new();
    fx.append("config/chatgate.toml", ONE_SEGMENT);
    let fits = format!("#URL# #MINUTES#{}", "x".repeat(160 - 56 - 1 - 1));
    fx.append(
        "config/teams/acme.toml",
        &format!("[channel_settings.sms.templates]\nlogin_link = \"{fits}\"\n"),
    );
    assert!(fx.load().is_ok(), "{:?}", fx.load().err());
    fx.append(
        "config/teams/acme.toml",
        "[channel_settings.sms.otp]\nttl = \"100m\"\n",
    );
    fx.expect_err(
        "acme.toml",
        "channel_settings.sms.templates.login_link",
        "is 2 SMS segments (GSM-7)",
    );
}

#[test]
fn check_texts_rows_name_channel_language_key_encoding_and_segments() {
    let fx = Fixture::new();
    fx.append(
        "config/teams/acme.toml",
        "[settings.templates]\nexpired = \"Ważne: zaloguj się ponownie.\"\n",
    );
    let config = fx.load().unwrap();
    let rows = text_rows(&config);
    let line = |key: &str| {
        let r = rows.iter().find(|r| r.key == key).unwrap();
        format!(
            "{} {} {} {} {}",
            r.channel, r.tag, r.key, r.encoding, r.segments
        )
    };
    assert_eq!(line("expired"), "sms en expired UCS-2 1");
    assert_eq!(line("otp"), "sms en otp GSM-7 1");
    assert!(rows.iter().all(|r| r.channel == "sms" && !r.over));
    // No network or wallet link: acme cannot send them.
    assert_eq!(rows.len(), 8, "one row per key: {rows:?}");
}
