//! `[operator]` in a whole tree, and the one validator of a team: a JSON
//! body is checked by the loader of team files, over the same defaults
//! and channels, each problem named by its RFC 6901 pointer; a file team's
//! JSON form, read again, is the same team (the same digest).
use proptest::prelude::*;
use serde_json::{json, Value};

use super::super::form::json_form;
use super::{whsec, Fixture};
use crate::config::Config;
use crate::domain::proptests::cases;
use crate::domain::secrets::ApiKeyHash;

const SECRETS_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The fixture with the operator API on.
pub(super) fn with_operator() -> Fixture {
    let fx = Fixture::new();
    let ops = ApiKeyHash::of_key("ops-key").to_hex();
    fx.append(
        "config/chatgate.toml",
        &format!(
            "[operator]\napi_keys = [{{ id = \"ops\", sha256 = \"{ops}\", role = \"operator\" }}]\n\
             secrets_keys = [{{ id = \"k1\", key = \"${{file:teams.key}}\" }}]\n"
        ),
    );
    fx.write("config/teams.key", SECRETS_KEY);
    fx
}

/// A new team's body, valid as it stands.
pub(super) fn body(id: &str) -> Value {
    json!({
        "id": id,
        "login_url": "https://login.example/",
        "channels": ["webchat"],
        "security_keys": [{"kid": "k", "secret": whsec(0x11), "primary": true}],
        "api_keys": [{"id": "bot", "role": "bot", "sha256": ApiKeyHash::of_key(&format!("{id}-bot")).to_hex()}],
        "settings": {"otp": {"ttl": "2m"}},
    })
}

/// A change to a body.
type Edit<'a> = &'a dyn Fn(&mut Value);

fn pointers(config: &Config, body: &Value) -> Vec<String> {
    match config.team_of_json(body, &Default::default()) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.into_iter().map(|p| p.pointer).collect(),
    }
}

#[test]
fn the_operator_section_is_read_from_a_tree_with_its_key_from_a_file() {
    let fx = with_operator();
    let config = fx.load().unwrap();
    let op = config.operator.as_deref().unwrap();
    assert_eq!(op.api_keys[0].id, "ops");
    assert_eq!(op.secrets.key_ids().collect::<Vec<_>>(), ["k1"]);
    assert!(Fixture::new().load().unwrap().operator.is_none());
}

#[test]
fn an_operator_key_that_is_a_teams_key_stops_the_start_up() {
    let fx = Fixture::new();
    let acme_bot = ApiKeyHash::of_key("acme-bot-key").to_hex();
    fx.append(
        "config/chatgate.toml",
        &format!(
            "[operator]\napi_keys = [{{ id = \"ops\", sha256 = \"{acme_bot}\", role = \"operator\" }}]\n\
             secrets_keys = [{{ id = \"k1\", key = \"{SECRETS_KEY}\" }}]\n"
        ),
    );
    fx.expect_err(
        "config/chatgate.toml",
        "operator.api_keys[0].sha256",
        "already configured for team \"acme\"",
    );
}

#[test]
fn a_reload_keeps_the_operator_section_in_force_and_its_read_backs() {
    let fx = with_operator();
    let running = fx.load().unwrap();
    let before = running.team("acme").unwrap().form.value()["webhook"]["secret"].clone();
    // Another secrets key and no more keys: a restart applies them.
    fx.write(
        "config/teams.key",
        "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
    );
    fx.edit("config/chatgate.toml", "api_keys = [", "api_keys = [] # [");
    let env = crate::config::Environment::from_pairs(fx.env.iter().cloned());
    let reloaded = crate::config::reload(&running, &env).unwrap();
    assert!(
        reloaded
            .restart_needed
            .iter()
            .any(|k| k == "operator.api_keys"),
        "{:?}",
        reloaded.restart_needed
    );
    let op = reloaded.config.operator.as_deref().unwrap();
    assert_eq!(op.api_keys.len(), 1, "the keys in force are kept");
    let after = reloaded.config.team("acme").unwrap().form.value()["webhook"]["secret"].clone();
    assert_eq!(after, before, "read back under the key in force");
    // A load from scratch reads what the file now writes.
    let fresh = fx.load().unwrap();
    assert!(fresh.operator.as_deref().unwrap().api_keys.is_empty());
    assert_ne!(
        fresh.team("acme").unwrap().form.value()["webhook"]["secret"],
        before
    );
}

#[test]
fn a_file_teams_form_shows_its_secrets_as_hmacs_and_never_the_values() {
    let config = with_operator().load().unwrap();
    let acme = config.team("acme").unwrap().form.value();
    let text = acme.to_string();
    super::assert_no_secret(&text);
    let hook = &acme["webhook"]["secret"]["hmac"];
    assert_eq!(hook.as_str().unwrap().len(), 64, "{text}");
    assert_eq!(acme["settings"]["authenticated_ttl"], "15m");
    assert_eq!(acme["security_keys"][1]["kid"], "2026-05");
    let sms = &config.channels["sms"].form;
    assert_eq!(
        sms["auth_token"]["hmac"].as_str().unwrap().len(),
        64,
        "{sms}"
    );
    assert_eq!(sms["from"], "+15550006666");
    super::assert_no_secret(&sms.to_string());
    // Off without [operator]: nothing is kept for a read.
    assert_eq!(
        Fixture::new()
            .load()
            .unwrap()
            .team("acme")
            .unwrap()
            .form
            .value(),
        Value::Null
    );
}

#[test]
fn a_valid_body_is_a_team_and_every_rule_of_a_file_names_its_pointer() {
    let config = with_operator().load().unwrap();
    let team = config
        .team_of_json(&body("newco"), &Default::default())
        .unwrap();
    assert_eq!(team.id, "newco");
    assert_eq!(team.settings.otp.ttl.get().as_secs(), 120);
    // The system's [defaults] are under it.
    assert_eq!(team.settings.otp.length, 6);
    assert_eq!(
        team.form.value()["security_keys"][0]["secret"]["hmac"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut b = body("newco");
        edit(&mut b);
        pointers(&config, &b)
    };
    let cases: Vec<(Edit, &str)> = vec![
        (
            &|b| b["settings"]["otp"]["ttl"] = json!("soon"),
            "/settings/otp/ttl",
        ),
        (
            &|b| b["settings"]["otp"]["length"] = json!(99),
            "/settings/otp/length",
        ),
        (&|b| b["colour"] = json!("red"), "/colour"),
        (&|b| b["id"] = json!("Not An Id"), "/id"),
        (
            &|b| b["channels"] = json!(["webchat", "nowhere"]),
            "/channels/1",
        ),
        (
            &|b| b["api_keys"][0]["sha256"] = json!("xyz"),
            "/api_keys/0/sha256",
        ),
        (
            &|b| b["security_keys"][0]["secret"] = json!("whsec_short"),
            "/security_keys/0/secret",
        ),
        (
            &|b| b["security_keys"][0]["secret"] = json!("${ACME_KEY}"),
            "/security_keys/0/secret",
        ),
        (
            &|b| b["webhook"] = json!({"url": "https://x.example", "secret": {"hmac": "00"}}),
            "/webhook/secret",
        ),
        (&|b| b["login_url"] = Value::Null, "/login_url"),
        (
            &|b| b["channel_settings"] = json!({"webchat": {"otp": {"max_attempts": "x"}}}),
            "/channel_settings/webchat/otp/max_attempts",
        ),
        // Another team's key, or the server's issuer as id.
        (
            &|b| b["api_keys"][0]["sha256"] = json!(ApiKeyHash::of_key("acme-bot-key").to_hex()),
            "/api_keys/0/sha256",
        ),
        (
            &|b| b["api_keys"][0]["sha256"] = json!(ApiKeyHash::of_key("ops-key").to_hex()),
            "/api_keys/0/sha256",
        ),
        (&|b| b["id"] = json!("chatgate"), "/id"),
    ];
    for (edit, pointer) in cases {
        let found = broken(edit);
        assert_eq!(found, [pointer], "{pointer}");
    }
    assert_eq!(pointers(&config, &json!("a team")), [""]);
}

#[test]
fn every_problem_of_a_body_is_listed_each_at_its_pointer() {
    let config = with_operator().load().unwrap();
    let mut b = body("newco");
    b["colour"] = json!("red");
    b["login_url"] = json!("ftp://nowhere");
    b["settings"]["otp"]["ttl"] = json!("soon");
    b["channels"] = json!(["webchat", "nowhere"]);
    b["webhook"] = json!({"url": "https://x.example", "secret": "${HOOK}"});
    b["oidc"] = json!({"client_secret": null});
    let mut found = pointers(&config, &b);
    found.sort();
    assert_eq!(
        found,
        [
            "/channels/1",
            "/colour",
            "/login_url",
            "/oidc/client_secret",
            "/oidc/issuer",
            "/settings/otp/ttl",
            "/webhook/secret"
        ]
    );
}

/// A team file of a few generated settings.
fn team_file(
    id: &str,
    length: u8,
    ttl: &str,
    show: bool,
    attempts: u8,
    channel_ttl: Option<&str>,
) -> String {
    let hash = ApiKeyHash::of_key(&format!("{id}-generated")).to_hex();
    let mut text = format!(
        "id = \"{id}\"\nlogin_url = \"https://login.example/{id}\"\nchannels = [\"webchat\", \"sms\"]\n\
         sms_channel = \"sms\"\n\n[[security_keys]]\nkid = \"k\"\nsecret = \"{}\"\nprimary = true\n\n\
         [[api_keys]]\nid = \"bot\"\nrole = \"bot\"\nsha256 = \"{hash}\"\n\n\
         [webhook]\nurl = \"https://hook.example/{id}\"\nsecret = \"{}\"\n\n\
         [settings.otp]\nlength = {length}\nttl = \"{ttl}\"\nshow_to_agents = {show}\nmax_attempts = {attempts}\n",
        whsec(0x21),
        whsec(0x22),
    );
    if let Some(t) = channel_ttl {
        text.push_str(&format!(
            "\n[channel_settings.webchat]\nauthenticated_ttl = \"{t}\"\n"
        ));
    }
    text
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn a_file_teams_json_form_read_again_has_the_same_digest(
        id in "[a-z][a-z0-9_-]{0,20}",
        length in 4u8..=10,
        ttl in prop::sample::select(vec!["90s", "3m", "10m", "1h"]),
        show in any::<bool>(),
        attempts in 1u8..=9,
        channel_ttl in prop::option::of(prop::sample::select(vec!["5m", "60m", "2h"])),
    ) {
        prop_assume!(!["acme", "globex", "chatgate"].contains(&id.as_str()));
        let fx = with_operator();
        let file = team_file(&id, length, ttl, show, attempts, channel_ttl);
        fx.write("config/teams/generated.toml", &file);
        let config = fx.load().unwrap();
        let from_file = config.team(&id).unwrap();
        // Its JSON form with the secrets written (a read gives HMACs; a
        // write sends the values), as a body.
        let table: toml::Table = file.parse().unwrap();
        let body = written(json_form(&table, &|_, v| v.to_string()));
        let from_body = config.team_of_json(&body, &Default::default()).unwrap();
        prop_assert_eq!(from_body.print.digest(), from_file.print.digest());
        prop_assert_eq!(from_body.form.value(), from_file.form.value());
    }
}

/// A form whose `{"hmac": v}` members hold the secrets `v` themselves,
/// with each secret written in their place, as a write sends them.
fn written(form: Value) -> Value {
    match form {
        Value::Object(o) if o.len() == 1 && o.contains_key("hmac") => o["hmac"].clone(),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, written(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(written).collect()),
        other => other,
    }
}

/// An API team's `ETag` is the digest of its body alone: the same body
/// built by a process that resolves `[defaults]` and the channel files it
/// lists otherwise (another environment) has the same `own_digest`, and
/// another effective configuration, which its audit entry records
/// (docs/decisions/0630-an-etag-is-of-what-the-store-keeps.md).
#[test]
fn an_api_team_s_own_digest_is_of_its_body_whatever_it_inherits() {
    let mut b = body("newco");
    b["channels"] = json!(["webchat", "sms"]);
    let built = |fx: Fixture, b: &Value| {
        let config = fx.load().unwrap();
        let team = config.team_of_json(b, &Default::default()).unwrap();
        (team.own_digest.clone(), team.print.digest())
    };
    let (own, effective) = built(with_operator(), &b);
    let mut other = with_operator();
    other.env.retain(|(name, _)| name != "FX_TWILIO_TOKEN");
    other
        .env
        .push(("FX_TWILIO_TOKEN".into(), "another-token".into()));
    other
        .env
        .push(("CHATGATE_DEFAULTS__AUTHENTICATED_TTL".into(), "45m".into()));
    let (own_there, effective_there) = built(other, &b);
    assert_eq!(own_there, own);
    assert_ne!(effective_there, effective);
    // A change of the body moves it.
    b["settings"]["otp"]["ttl"] = json!("3m");
    assert_ne!(built(with_operator(), &b).0, own);
}
