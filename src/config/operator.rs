//! `[operator]` of the system file (docs/configuration.md#operator): the
//! system's own API keys, which manage teams and channels and call nothing
//! else (docs/operator-api.md), the keys that seal the secrets the API
//! keeps and derive what a read shows of them, and who names the person
//! behind an operator's write.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;

use super::de::from_table;
use super::validate::check_label;
use super::{ConfigError, OidcConfig};
use crate::domain::secrets::ApiKeyHash;
use crate::domain::secrets_cipher::{SecretsCipher, KEY_BYTES};

/// `[operator]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OperatorSection {
    /// `[{id, sha256, role}]`, each read as [`OperatorKeyEntry`].
    #[serde(default)]
    api_keys: Vec<toml::Table>,
    /// `[{id, key}]`, each read as [`SecretsKeyEntry`]; the first encrypts.
    #[serde(default)]
    secrets_keys: Vec<toml::Table>,
    /// Every write needs a valid `Chatgate-Actor`; default false.
    #[serde(default)]
    require_person: bool,
    /// A URL written through the API may name a loopback, private,
    /// link-local or unspecified address; default false.
    #[serde(default)]
    allow_private_destinations: bool,
    /// `[operator.actor]`: who signs operators' `Chatgate-Actor` tokens.
    actor: Option<toml::Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorKeyEntry {
    id: String,
    /// Hex SHA-256 of the key.
    sha256: String,
    role: OperatorRole,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsKeyEntry {
    id: String,
    /// 32 bytes, base64.
    key: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorEntry {
    /// `https` (or `http` on a loopback address); discovery is
    /// `{issuer}/.well-known/openid-configuration`.
    issuer: String,
    /// What a `Chatgate-Actor` token's `aud` contains.
    audience: String,
}

/// What an operator key may do (docs/operator-api.md#roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorRole {
    /// Reads and writes teams and channels.
    Operator,
    /// Reads them only.
    OperatorRead,
}

impl OperatorRole {
    /// Whether the role may `PUT`, `POST` and `DELETE`.
    pub fn writes(self) -> bool {
        match self {
            OperatorRole::Operator => true,
            OperatorRole::OperatorRead => false,
        }
    }
}

/// One operator API key.
#[derive(Debug)]
pub struct OperatorKey {
    pub id: String,
    pub role: OperatorRole,
    /// SHA-256 of the key; the key itself is never stored.
    pub sha256: ApiKeyHash,
}

/// `[operator]`, validated: the operator API is on.
#[derive(Debug)]
pub struct OperatorConfig {
    pub api_keys: Vec<OperatorKey>,
    /// `secrets_keys`: seals secrets, and derives their read-back.
    pub secrets: SecretsCipher,
    /// A write needs a valid `Chatgate-Actor`, else 403 `person_required`.
    pub require_person: bool,
    /// A URL written through the API may name a loopback, private,
    /// link-local or unspecified address (docs/operator-api.md#destinations).
    pub allow_private_destinations: bool,
    /// `[operator.actor]`, as a provider whose `client_id` is the audience
    /// a `Chatgate-Actor` token names.
    pub actor: Option<OidcConfig>,
}

pub(super) fn build(
    raw: Option<toml::Table>,
    file: &str,
) -> Result<Option<OperatorConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let raw: OperatorSection = from_table(raw, file, "operator")?;
    let err = |key: String, problem: String| ConfigError::new(file, key, problem);
    let api_keys = api_keys(raw.api_keys, file)?;
    let keys = secrets_keys(raw.secrets_keys, file)?;
    let Some(secrets) = SecretsCipher::new(&keys) else {
        return Err(err(
            "operator.secrets_keys".into(),
            "at least one {id, key} is required: the API keeps secrets sealed under it".into(),
        ));
    };
    let actor = raw.actor.map(|t| actor(t, file)).transpose()?;
    if raw.require_person && actor.is_none() {
        return Err(err(
            "operator.require_person".into(),
            "needs [operator.actor] (issuer, audience): without it no write could name a person"
                .into(),
        ));
    }
    Ok(Some(OperatorConfig {
        api_keys,
        secrets,
        require_person: raw.require_person,
        allow_private_destinations: raw.allow_private_destinations,
        actor,
    }))
}

fn api_keys(entries: Vec<toml::Table>, file: &str) -> Result<Vec<OperatorKey>, ConfigError> {
    let err = |key: String, problem: String| ConfigError::new(file, key, problem);
    let mut keys: Vec<OperatorKey> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("operator.api_keys[{i}]");
        let k: OperatorKeyEntry = from_table(entry, file, &at)?;
        check_label(&k.id).map_err(|p| err(format!("{at}.id"), p))?;
        if keys.iter().any(|other| other.id == k.id) {
            let problem = format!("api key id {:?} is used twice", k.id);
            return Err(err(format!("{at}.id"), problem));
        }
        let sha256 = ApiKeyHash::from_hex(&k.sha256).map_err(|p| err(format!("{at}.sha256"), p))?;
        if keys.iter().any(|other| other.sha256.matches(&sha256)) {
            let problem = "the same key is configured twice".to_string();
            return Err(err(format!("{at}.sha256"), problem));
        }
        keys.push(OperatorKey {
            id: k.id,
            role: k.role,
            sha256,
        });
    }
    Ok(keys)
}

fn secrets_keys(
    entries: Vec<toml::Table>,
    file: &str,
) -> Result<Vec<(String, [u8; KEY_BYTES])>, ConfigError> {
    let err = |key: String, problem: String| ConfigError::new(file, key, problem);
    let mut keys: Vec<(String, [u8; KEY_BYTES])> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let at = format!("operator.secrets_keys[{i}]");
        let k: SecretsKeyEntry = from_table(entry, file, &at)?;
        check_label(&k.id).map_err(|p| err(format!("{at}.id"), p))?;
        if keys.iter().any(|(id, _)| *id == k.id) {
            let problem = format!("key id {:?} is used twice", k.id);
            return Err(err(format!("{at}.id"), problem));
        }
        // The error never repeats the key.
        let bytes = B64
            .decode(k.key.trim())
            .map_err(|_| err(format!("{at}.key"), "is not valid base64".into()))?;
        let key: [u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            let problem = format!(
                "decodes to {} bytes; exactly {KEY_BYTES} are required",
                bytes.len()
            );
            err(format!("{at}.key"), problem)
        })?;
        keys.push((k.id, key));
    }
    Ok(keys)
}

fn actor(table: toml::Table, file: &str) -> Result<OidcConfig, ConfigError> {
    let raw: ActorEntry = from_table(table, file, "operator.actor")?;
    let issuer_ok = url::Url::parse(&raw.issuer).is_ok_and(|u| super::https_or_loopback(&u));
    if !issuer_ok {
        return Err(ConfigError::new(
            file,
            "operator.actor.issuer",
            "must be an https URL (http only on a loopback address)",
        ));
    }
    if raw.audience.trim().is_empty() {
        return Err(ConfigError::new(
            file,
            "operator.actor.audience",
            "must not be empty",
        ));
    }
    Ok(OidcConfig::checking_only(raw.issuer, raw.audience))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="; // 32 zero bytes
    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn build_from(toml: &str) -> Result<Option<OperatorConfig>, String> {
        let table: toml::Table = toml.parse().map_err(|e| format!("{e}"))?;
        let section = table.get("operator").and_then(|v| v.as_table()).cloned();
        build(section, "chatgate.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn without_the_section_the_api_is_off() {
        assert!(build_from("").unwrap().is_none());
    }

    #[test]
    fn keys_roles_and_the_actor_are_read() {
        let c = build_from(&format!(
            "[operator]\napi_keys = [{{ id = \"ops-1\", sha256 = \"{HASH}\", role = \"operator\" }}, \
             {{ id = \"ops-r\", sha256 = \"{}\", role = \"operator_read\" }}]\n\
             secrets_keys = [{{ id = \"2026-11\", key = \"{KEY}\" }}]\nrequire_person = true\n\
             [operator.actor]\nissuer = \"https://login.example\"\naudience = \"ops\"\n",
            "0".repeat(64)
        ))
        .unwrap()
        .unwrap();
        assert_eq!(c.api_keys.len(), 2);
        assert!(c.api_keys[0].role.writes() && !c.api_keys[1].role.writes());
        assert!(c.require_person);
        assert_eq!(c.actor.unwrap().client_id, "ops");
        assert_eq!(c.secrets.key_ids().collect::<Vec<_>>(), ["2026-11"]);
    }

    #[test]
    fn every_start_up_error_names_its_key_and_never_the_secret() {
        let key = |id: &str, key: &str| format!("{{ id = \"{id}\", key = \"{key}\" }}");
        let op = format!("{{ id = \"ops\", sha256 = \"{HASH}\", role = \"operator\" }}");
        let cases = [
            (
                format!("[operator]\napi_keys = [{op}]"),
                "operator.secrets_keys",
            ),
            (
                format!("[operator]\nsecrets_keys = [{}]", key("a", "c2hvcnQ=")),
                "operator.secrets_keys[0].key",
            ),
            (
                format!("[operator]\nsecrets_keys = [{}]", key("a", "not base64!")),
                "operator.secrets_keys[0].key",
            ),
            (
                format!(
                    "[operator]\nsecrets_keys = [{}, {}]",
                    key("a", KEY),
                    key("a", KEY)
                ),
                "operator.secrets_keys[1].id",
            ),
            (
                format!(
                    "[operator]\napi_keys = [{op}, {op}]\nsecrets_keys = [{}]",
                    key("a", KEY)
                ),
                "operator.api_keys[1].id",
            ),
            (
                format!(
                    "[operator]\napi_keys = [{{ id = \"x\", sha256 = \"{HASH}\", role = \"admin\" }}]\nsecrets_keys = [{}]",
                    key("a", KEY)
                ),
                "operator.api_keys[0].role",
            ),
            (
                format!(
                    "[operator]\nrequire_person = true\nsecrets_keys = [{}]",
                    key("a", KEY)
                ),
                "operator.require_person",
            ),
            (
                format!(
                    "[operator]\nsecrets_keys = [{}]\n[operator.actor]\nissuer = \"ftp://x\"\naudience = \"a\"",
                    key("a", KEY)
                ),
                "operator.actor.issuer",
            ),
            (
                format!("[operator]\nsecrets_key = [{}]", key("a", KEY)),
                "operator.secrets_key",
            ),
        ];
        for (toml, named) in cases {
            let e = build_from(&toml).unwrap_err();
            assert!(e.contains(&format!("{named}:")), "{toml}\n→ {e}");
            assert!(!e.contains(KEY) && !e.contains("c2hvcnQ="), "{e}");
        }
    }
}
