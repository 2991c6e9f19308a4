//! Loader tests over whole configuration trees written to a temporary folder
//! (`chatgate-cfg-<uuid>` under the system temp dir), with an explicit
//! [`Environment`] so tests never race on process variables.
mod abuse;
mod channel_json;
mod channels;
mod key_holders;
mod languages;
mod operator;
mod properties;
mod sms_length;
mod system;
mod team_sums;
mod teams;

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::{load_with_env, Config, ConfigError, Environment};
use crate::domain::secrets::ApiKeyHash;

/// A whsec secret of 32 copies of `byte`.
pub(super) fn whsec(byte: u8) -> String {
    format!("whsec_{}", B64.encode([byte; 32]))
}

pub(super) const PEPPER: &str = "fixture-pepper-secret-0123456789";
pub(super) const TWILIO_TOKEN: &str = "fx-twilio-token-value-42";

const SYSTEM: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080/"
issuer = "chatgate"
pepper = "PEPPER"

[store]
backend = "memory"

[defaults]
authenticated_ttl = "30m"
[defaults.otp]
length = 6
"#;

const ACME: &str = r#"
id = "acme"
login_url = "https://login.acme.example/chat?lang=en"
channels = ["webchat", "sms", "email"]
sms_channel = "sms"
email_channel = "email"

[[security_keys]]
kid = "2026-11"
secret = "KEY_A"
primary = true

[[security_keys]]
kid = "2026-05"
secret = "KEY_B"

[[api_keys]]
id = "acme-bot"
role = "bot"
sha256 = "HASH_BOT"

[[api_keys]]
id = "acme-agent"
role = "agent"
sha256 = "HASH_AGENT"

[webhook]
url = "https://bot.acme.example/events"
secret = "KEY_C"

[settings]
authenticated_ttl = "15m"
[settings.otp]
show_to_agents = true

[channel_settings.webchat]
authenticated_ttl = "60m"
"#;

const GLOBEX: &str = r#"
id = "globex"
login_url = "http://127.0.0.1:8090/login"
channels = ["webchat"]

[[security_keys]]
kid = "g1"
secret = "KEY_D"
primary = true

[[api_keys]]
id = "globex-bot"
role = "bot"
sha256 = "HASH_GLOBEX"
"#;

const WEBCHAT: &str = r#"
name = "webchat"
kind = "webhook"
url = "http://127.0.0.1:9000/chatgate/messages"
secret = "${FX_WEBCHAT_SECRET}"
"#;

const SMS: &str = r##"
name = "sms"
kind = "twilio"
base_url = "https://api.twilio.com"
account_sid = "${FX_TWILIO_SID}"
auth_token = "${FX_TWILIO_TOKEN}"
from = "+15550006666"
[templates]
otp = "#PIN# is your code."
"##;

const EMAIL: &str = r#"
name = "email"
kind = "smtp"
host = "127.0.0.1"
port = 2525
tls = "none"
from = "no-reply@acme.example"
"#;

/// A valid tree: `config/chatgate.toml`, two teams, three channels.
pub(super) struct Fixture {
    pub root: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Fixture {
    pub fn new() -> Self {
        let root = std::env::temp_dir().join(format!("chatgate-cfg-{}", uuid::Uuid::now_v7()));
        let fx = Fixture {
            root,
            env: vec![
                ("FX_WEBCHAT_SECRET".into(), whsec(0xE5)),
                ("FX_TWILIO_SID".into(), "AC123".into()),
                ("FX_TWILIO_TOKEN".into(), TWILIO_TOKEN.into()),
            ],
        };
        let hash = |k: &str| ApiKeyHash::of_key(k).to_hex();
        fx.write("config/chatgate.toml", &SYSTEM.replace("PEPPER", PEPPER));
        let acme = ACME
            .replace("KEY_A", &whsec(0xA1))
            .replace("KEY_B", &whsec(0xB2))
            .replace("KEY_C", &whsec(0xC3))
            .replace("HASH_BOT", &hash("acme-bot-key"))
            .replace("HASH_AGENT", &hash("acme-agent-key"));
        fx.write("config/teams/acme.toml", &acme);
        let globex = GLOBEX
            .replace("KEY_D", &whsec(0xD4))
            .replace("HASH_GLOBEX", &hash("globex-bot-key"));
        fx.write("config/teams/globex.toml", &globex);
        fx.write("channels/webchat.toml", WEBCHAT);
        fx.write("channels/sms.toml", SMS);
        fx.write("channels/email.toml", EMAIL);
        fx
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    /// Replaces `from` (which must be present) by `to` in one file.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} has no {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// Appends `text` to one file.
    pub fn append(&self, rel: &str, text: &str) {
        let old = self.read(rel);
        self.write(rel, &format!("{old}\n{text}\n"));
    }

    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.into(), value.into()));
    }

    pub fn unset_env(&mut self, name: &str) {
        self.env.retain(|(k, _)| k != name);
    }

    pub fn load(&self) -> Result<Config, ConfigError> {
        let env = Environment::from_pairs(self.env.iter().cloned());
        load_with_env(&self.path("config/chatgate.toml"), &env)
    }

    /// Loads, expecting an error that names `file` (a suffix), exactly `key`,
    /// and a problem containing `problem`; never any fixture secret.
    pub fn expect_err(&self, file: &str, key: &str, problem: &str) -> ConfigError {
        let err = match self.load() {
            Ok(_) => panic!("expected {file}: {key}: {problem}, but the config loaded"),
            Err(e) => e,
        };
        let line = err.to_string();
        assert!(err.file.ends_with(file), "file: {line}");
        assert_eq!(err.key, key, "key: {line}");
        assert!(err.problem.contains(problem), "problem: {line}");
        assert!(!line.contains('\n'), "one line: {line}");
        assert_no_secret(&line);
        err
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Fails if `text` holds any secret the fixture writes.
pub(super) fn assert_no_secret(text: &str) {
    let mut secrets = vec![PEPPER.to_string(), TWILIO_TOKEN.to_string()];
    for b in [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0x11] {
        let s = whsec(b);
        secrets.push(s[6..26].to_string());
    }
    for s in secrets {
        assert!(!text.contains(&s), "secret leaked in {text:?}");
    }
}

#[test]
fn fixture_tree_loads() {
    let fx = Fixture::new();
    let config = fx.load().unwrap();
    assert_eq!(config.teams.len(), 2);
    assert_eq!(config.channels.len(), 3);
    assert!(Path::new(&config.path).ends_with("config/chatgate.toml"));
}
