//! A team's `[number_checks]` (docs/configuration.md#number-checks): its
//! provider of SIM swap and call forwarding answers, checked at start so
//! that a bad value stops the gateway with the key named.
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use super::de::from_table;
use super::oidc::https_or_loopback;
use super::{ConfigError, Dur};
use crate::domain::number_check::{CheckSettings, OnError, OnForwarding, OnSwap};
use crate::number_checks::{CamaraAuth, CamaraConfig, NumberChecks, ProviderConfig, TwilioConfig};

/// The keys as written; those of the other kind must be absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    kind: Kind,
    #[serde(default = "default_max_age")]
    sim_swap_max_age: Dur,
    #[serde(default)]
    on_sim_swap: OnSwap,
    #[serde(default)]
    call_forwarding: OnForwarding,
    #[serde(default)]
    on_error: OnError,
    #[serde(default = "default_cache")]
    cache: Dur,
    // camara
    sim_swap_url: Option<String>,
    call_forwarding_url: Option<String>,
    token_url: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    auth: Option<Auth>,
    bc_authorize_url: Option<String>,
    scopes: Option<Vec<String>>,
    // twilio_lookup
    account_sid: Option<String>,
    auth_token: Option<String>,
    base_url: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Camara,
    TwilioLookup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Auth {
    ClientCredentials,
    Ciba,
}

fn default_max_age() -> Dur {
    Dur::from_secs(72 * 3600)
}

fn default_cache() -> Dur {
    Dur::from_secs(600)
}

/// The scope asked when the team names none.
const DEFAULT_SCOPE: &str = "dpv:FraudPreventionAndDetection#sim-swap";

/// Reads and checks `team`'s `[number_checks]` from `file`: the settings,
/// then the provider of its `kind`.
pub(super) fn load_number_checks(
    table: toml::Table,
    file: &str,
    team: &str,
) -> Result<NumberChecks, ConfigError> {
    let keys = Keys { file };
    let raw: Entry = from_table(table, file, "number_checks")?;
    let max_age = raw.sim_swap_max_age.get();
    if !(3600..=2400 * 3600).contains(&max_age.as_secs()) {
        return Err(keys.err("sim_swap_max_age", "must be from \"1h\" to \"2400h\""));
    }
    let settings = CheckSettings {
        sim_swap_max_age: max_age,
        on_sim_swap: raw.on_sim_swap,
        call_forwarding: raw.call_forwarding,
        on_error: raw.on_error,
    };
    let provider = match raw.kind {
        Kind::Camara => camara(&raw, &keys)?,
        Kind::TwilioLookup => twilio_lookup(&raw, &keys)?,
    };
    Ok(NumberChecks::new(team, settings, raw.cache.get(), provider))
}

/// `kind = "camara"`: its URLs, client and scopes; no key of Twilio's.
fn camara(raw: &Entry, keys: &Keys) -> Result<ProviderConfig, ConfigError> {
    keys.absent(
        &[
            ("account_sid", raw.account_sid.is_some()),
            ("auth_token", raw.auth_token.is_some()),
            ("base_url", raw.base_url.is_some()),
        ],
        "camara",
    )?;
    let auth = match raw.auth.unwrap_or(Auth::ClientCredentials) {
        Auth::ClientCredentials => {
            keys.absent(
                &[("bc_authorize_url", raw.bc_authorize_url.is_some())],
                "camara with auth = \"client_credentials\"",
            )?;
            CamaraAuth::ClientCredentials
        }
        Auth::Ciba => CamaraAuth::Ciba {
            bc_authorize_url: keys.url("bc_authorize_url", &raw.bc_authorize_url)?,
        },
    };
    let scopes = raw
        .scopes
        .clone()
        .unwrap_or_else(|| vec![DEFAULT_SCOPE.to_string()]);
    if let Some(i) = scopes.iter().position(|s| s.is_empty() || s.contains(' ')) {
        return Err(keys.err(&format!("scopes[{i}]"), "must be a scope name (no space)"));
    }
    let call_forwarding_url = match &raw.call_forwarding_url {
        None => None,
        some => Some(keys.url("call_forwarding_url", some)?),
    };
    Ok(ProviderConfig::Camara(Box::new(CamaraConfig {
        sim_swap_url: keys.url("sim_swap_url", &raw.sim_swap_url)?,
        call_forwarding_url,
        token_url: keys.url("token_url", &raw.token_url)?,
        client_id: keys.filled("client_id", &raw.client_id)?,
        client_secret: SecretString::from(keys.filled("client_secret", &raw.client_secret)?),
        auth,
        scopes,
    })))
}

/// `kind = "twilio_lookup"`: its account and base URL; no key of CAMARA's.
fn twilio_lookup(raw: &Entry, keys: &Keys) -> Result<ProviderConfig, ConfigError> {
    keys.absent(
        &[
            ("sim_swap_url", raw.sim_swap_url.is_some()),
            ("call_forwarding_url", raw.call_forwarding_url.is_some()),
            ("token_url", raw.token_url.is_some()),
            ("client_id", raw.client_id.is_some()),
            ("client_secret", raw.client_secret.is_some()),
            ("auth", raw.auth.is_some()),
            ("bc_authorize_url", raw.bc_authorize_url.is_some()),
            ("scopes", raw.scopes.is_some()),
        ],
        "twilio_lookup",
    )?;
    let base_url = match &raw.base_url {
        None => Some("https://lookups.twilio.com".to_string()),
        some => some.clone(),
    };
    Ok(ProviderConfig::TwilioLookup(TwilioConfig {
        account_sid: keys.filled("account_sid", &raw.account_sid)?,
        auth_token: SecretString::from(keys.filled("auth_token", &raw.auth_token)?),
        base_url: keys.url("base_url", &base_url)?,
    }))
}

/// The checks of `[number_checks]`' values, each error naming its key.
struct Keys<'a> {
    file: &'a str,
}

impl Keys<'_> {
    fn err(&self, key: &str, problem: &str) -> ConfigError {
        ConfigError::new(self.file, format!("number_checks.{key}"), problem)
    }

    /// A required https URL (http only on a loopback address).
    fn url(&self, key: &str, v: &Option<String>) -> Result<Url, ConfigError> {
        let v = v
            .as_deref()
            .ok_or_else(|| self.err(key, "required but missing"))?;
        Url::parse(v).ok().filter(https_or_loopback).ok_or_else(|| {
            self.err(
                key,
                "must be an https URL (http only on a loopback address)",
            )
        })
    }

    /// A required value that is not blank, trimmed.
    fn filled(&self, key: &str, v: &Option<String>) -> Result<String, ConfigError> {
        match v.as_deref().map(str::trim) {
            None => Err(self.err(key, "required but missing")),
            Some("") => Err(self.err(key, "must not be empty")),
            Some(v) => Ok(v.to_string()),
        }
    }

    /// None of `keys` (each with whether it is present) is written.
    fn absent(&self, keys: &[(&str, bool)], kind: &str) -> Result<(), ConfigError> {
        match keys.iter().find(|(_, present)| *present) {
            Some((key, _)) => Err(self.err(key, &format!("is not a key of kind {kind}"))),
            None => Ok(()),
        }
    }
}
