//! The abuse settings (`otp.destinations`, `otp.sms_regions`,
//! `otp.sms_number_types`, `lockout.scope` and its companions): read through
//! every layer, and checked against libphonenumber's metadata at start-up.
use super::Fixture;
use crate::config::{Destinations, LockoutScope, NumberType};

const SYS: &str = "config/chatgate.toml";
const ACME: &str = "config/teams/acme.toml";

#[test]
fn defaults_allow_any_destination_and_count_per_subject() {
    let config = Fixture::new().load().unwrap();
    let otp = &config.defaults.otp;
    assert_eq!(otp.destinations, Destinations::Any);
    assert!(otp.sms_regions.is_empty() && otp.sms_number_types.is_empty());
    let l = &config.defaults.lockout;
    assert_eq!(l.scope, LockoutScope::Subject);
    assert_eq!(l.familiar_for.get().as_secs(), 90 * 86_400);
    assert_eq!(l.strangers_threshold, 15);
}

/// System → team → channel, like every setting.
#[test]
fn destination_rules_follow_the_settings_hierarchy() {
    let fx = Fixture::new();
    fx.edit(
        SYS,
        "[defaults.otp]",
        "[defaults.otp]\ndestinations = \"on_file\"\nsms_regions = [\"GB\", \"JE\"]",
    );
    fx.edit(
        ACME,
        "[settings.otp]",
        "[settings.otp]\nsms_number_types = [\"mobile\", \"fixed_line_or_mobile\"]",
    );
    fx.edit(
        ACME,
        "[channel_settings.webchat]",
        "[channel_settings.webchat.otp]\ndestinations = \"any\"\nsms_regions = []\n[channel_settings.webchat]",
    );
    let config = fx.load().unwrap();
    let acme = &config.teams["acme"];
    let team = &acme.settings.otp;
    assert_eq!(team.destinations, Destinations::OnFile);
    let regions: Vec<&str> = team.sms_regions.iter().map(|r| r.as_str()).collect();
    assert_eq!(regions, ["GB", "JE"]);
    assert_eq!(
        team.sms_number_types,
        [NumberType::Mobile, NumberType::FixedLineOrMobile]
    );
    let webchat = &acme.settings_for("webchat").otp;
    assert_eq!(webchat.destinations, Destinations::Any);
    assert!(webchat.sms_regions.is_empty());
    assert_eq!(webchat.sms_number_types, team.sms_number_types);
    let globex = &config.teams["globex"].settings.otp;
    assert_eq!(globex.destinations, Destinations::OnFile);
    assert!(globex.sms_number_types.is_empty());
}

/// A misspelt region or type stops start-up, naming the key where it is
/// written, instead of refusing every SMS at run time.
#[test]
fn unknown_regions_and_types_are_start_up_errors_naming_the_key() {
    let cases = [
        (
            SYS,
            "[defaults.otp]",
            "[defaults.otp]\nsms_regions = [\"UK\"]",
            "defaults.otp.sms_regions",
            "ISO 3166",
        ),
        (
            SYS,
            "[defaults.otp]",
            "[defaults.otp]\nsms_regions = [\"gb\"]",
            "defaults.otp.sms_regions",
            "capitals",
        ),
        (
            ACME,
            "[settings.otp]",
            "[settings.otp]\nsms_number_types = [\"cell\"]",
            "settings.otp.sms_number_types",
            "unknown value",
        ),
        (
            ACME,
            "[settings.otp]",
            "[settings.otp]\ndestinations = \"contact\"",
            "settings.otp.destinations",
            "unknown value",
        ),
        (
            ACME,
            "[channel_settings.webchat]",
            "[channel_settings.webchat.lockout]\nscope = \"device\"\n[channel_settings.webchat]",
            "channel_settings.webchat.lockout.scope",
            "unknown value",
        ),
        (
            SYS,
            "[defaults.otp]",
            "[defaults.lockout]\nstrangers_threshold = 0\n[defaults.otp]",
            "defaults.lockout.strangers_threshold",
            "at least 1",
        ),
    ];
    for (file, from, to, key, problem) in cases {
        let fx = Fixture::new();
        fx.edit(file, from, to);
        let e = fx.expect_err(file, key, problem);
        assert!(
            !e.to_string().contains("cell") && !e.to_string().contains("\"UK\""),
            "{e}"
        );
    }
}

#[test]
fn origin_scope_and_its_companions_are_read() {
    let fx = Fixture::new();
    fx.edit(
        SYS,
        "[defaults.otp]",
        "[defaults.lockout]\nscope = \"origin\"\nfamiliar_for = \"30d\"\nstrangers_threshold = 7\n[defaults.otp]",
    );
    fx.edit(
        ACME,
        "[channel_settings.webchat]",
        "[channel_settings.webchat.lockout]\nscope = \"subject\"\n[channel_settings.webchat]",
    );
    let config = fx.load().unwrap();
    let l = &config.defaults.lockout;
    assert_eq!(l.scope, LockoutScope::Origin);
    assert_eq!(l.familiar_for.get().as_secs(), 30 * 86_400);
    assert_eq!(l.strangers_threshold, 7);
    let acme = &config.teams["acme"];
    assert_eq!(acme.settings.lockout.scope, LockoutScope::Origin);
    assert_eq!(
        acme.settings_for("webchat").lockout.scope,
        LockoutScope::Subject
    );
    assert_eq!(acme.settings_for("webchat").lockout.strangers_threshold, 7);
}
