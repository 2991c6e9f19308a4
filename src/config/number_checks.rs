//! A team's `[number_checks]` (docs/configuration.md#number-checks): its
//! provider of SIM swap and call forwarding answers, checked at start so
//! that a bad value stops the gateway with the key named. The settings
//! every kind shares are read here; the provider's own keys by its kind's
//! type (`number_checks::ProviderConfig`, its registry).
use serde::Deserialize;

use super::de::{from_table, member_error};
use super::members::Member;
use super::oidc::https_or_loopback;
use super::{ConfigError, Dur};
use crate::domain::number_check::{CheckSettings, OnError, OnForwarding, OnSwap};
use crate::number_checks::{NumberChecks, ProviderConfig};

/// The keys every kind takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    kind: String,
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
}

/// The names of [`Shared`]'s keys.
const SHARED: [&str; 6] = [
    "kind",
    "sim_swap_max_age",
    "on_sim_swap",
    "call_forwarding",
    "on_error",
    "cache",
];

fn default_max_age() -> Dur {
    Dur::from_secs(72 * 3600)
}

fn default_cache() -> Dur {
    Dur::from_secs(600)
}

/// Reads and checks `team`'s `[number_checks]` from `file`: the settings,
/// then the provider of its `kind` (a key of another kind is refused by
/// name).
pub(super) fn load_number_checks(
    table: toml::Table,
    file: &str,
    team: &str,
) -> Result<NumberChecks, ConfigError> {
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("number_checks.{key}"), problem);
    let section = table.to_string();
    let (shared, own): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(k, _)| SHARED.contains(&k.as_str()));
    let raw: Shared = from_table(shared, file, "number_checks")?;
    let max_age = raw.sim_swap_max_age.get();
    if !(3600..=2400 * 3600).contains(&max_age.as_secs()) {
        return Err(err("sim_swap_max_age", "must be from \"1h\" to \"2400h\""));
    }
    let settings = CheckSettings {
        sim_swap_max_age: max_age,
        on_sim_swap: raw.on_sim_swap,
        call_forwarding: raw.call_forwarding,
        on_error: raw.on_error,
    };
    let unknown_kind = || err("kind", &format!("must be {}", ProviderConfig::names()));
    if !ProviderConfig::ALL
        .iter()
        .any(|p| p.source.as_str() == raw.kind)
    {
        return Err(unknown_kind());
    }
    let foreign = own.keys().find(|k| ProviderConfig::foreign(&raw.kind, k));
    if let Some(key) = foreign {
        return Err(err(key, &format!("is not a key of kind {}", raw.kind)));
    }
    // Read through `Member`, so that a secret takes its value only under
    // a name the operator API seals.
    let provider = match ProviderConfig::parse(&raw.kind, Member::table(own), https_or_loopback) {
        None => return Err(unknown_kind()),
        Some(Err(e)) => return Err(member_error(&e, file, "number_checks")),
        Some(Ok(Err((key, problem)))) => return Err(err(&key, &problem)),
        Some(Ok(Ok(provider))) => provider,
    };
    Ok(NumberChecks::new(
        team,
        settings,
        raw.cache.get(),
        provider,
        &section,
    ))
}
