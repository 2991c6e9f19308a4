//! A team's `[number_verification]` (docs/network-authentication.md): its
//! network-verification provider, checked at start so that a bad value
//! stops the gateway with the key named. The settings every kind shares
//! (`provider`, `link_ttl`) are read here; the provider's own keys by its
//! kind's type (`network_verification::ProviderConfig`, its registry).
use std::time::Duration;

use serde::Deserialize;

use super::de::{from_table, translate};
use super::oidc::https_or_loopback;
use super::ConfigError;
use crate::network_verification::{NumberVerification, ProviderConfig};
use crate::time::Dur;

/// The shortest and longest `link_ttl`.
const LINK_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(1800));

/// The kind of a section that names none.
const DEFAULT_PROVIDER: &str = "camara";

/// The keys every kind shares.
const SHARED: [&str; 2] = ["provider", "link_ttl"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Shared {
    provider: Option<String>,
    link_ttl: Option<Dur>,
}

/// Reads and checks `[number_verification]` from `file`.
pub(super) fn load_number_verification(
    table: toml::Table,
    file: &str,
) -> Result<NumberVerification, ConfigError> {
    const SECTION: &str = "number_verification";
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("{SECTION}.{key}"), problem);
    let (shared, own): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(k, _)| SHARED.contains(&k.as_str()));
    let raw: Shared = from_table(shared, file, SECTION)?;
    let kind = raw.provider.as_deref().unwrap_or(DEFAULT_PROVIDER);
    let unknown_kind = || err("provider", &format!("must be {}", ProviderConfig::names()));
    if !ProviderConfig::ALL.iter().any(|p| p.name == kind) {
        return Err(unknown_kind());
    }
    let foreign = own.keys().find(|k| ProviderConfig::foreign(kind, k));
    if let Some(key) = foreign {
        return Err(err(key, &format!("is not a key of provider {kind}")));
    }
    let provider = match ProviderConfig::parse(kind, toml::Value::Table(own), https_or_loopback) {
        None => return Err(unknown_kind()),
        Some(Err(e)) => return Err(translate(&e, file, SECTION)),
        Some(Ok(Err((key, problem)))) => return Err(err(&key, &problem)),
        Some(Ok(Ok(provider))) => provider,
    };
    let link_ttl = raw.link_ttl.map_or(Duration::from_secs(300), Dur::get);
    if !(LINK_TTL.0..=LINK_TTL.1).contains(&link_ttl) {
        return Err(err("link_ttl", "must be from \"1m\" to \"30m\""));
    }
    Ok(NumberVerification { link_ttl, provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(extra: &str) -> toml::Table {
        let text = format!(
            "authorization_endpoint = \"https://op.example/authorize\"\n\
             token_endpoint = \"https://op.example/token\"\n\
             verify_url = \"https://api.op.example/number-verification/v2\"\n\
             client_id = \"bank\"\nclient_secret = \"s3cret\"\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    /// The CAMARA keys of a section read.
    fn camara(nv: &NumberVerification) -> &crate::network_verification::CamaraConfig {
        match &nv.provider {
            ProviderConfig::Camara(c) => c,
        }
    }

    fn key_of(extra: &str) -> String {
        load_number_verification(table(extra), "acme.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_defaults_are_the_camara_scope_and_five_minutes() {
        let read = load_number_verification(table(""), "acme.toml").unwrap();
        let nv = camara(&read);
        assert_eq!(nv.scopes, ["openid", "number-verification:verify"]);
        assert_eq!(read.link_ttl, Duration::from_secs(300));
        assert!(!nv.hash_number);
        assert_eq!(
            nv.verify_endpoint(),
            "https://api.op.example/number-verification/v2/verify"
        );
    }

    #[test]
    fn each_bad_key_is_named() {
        assert!(key_of("link_ttl = \"59s\"").contains("number_verification.link_ttl"));
        assert!(key_of("link_ttl = \"31m\"").contains("number_verification.link_ttl"));
        assert!(key_of("surprise = 1").contains("surprise"));
        assert!(key_of("scopes = [\"a b\"]").contains("number_verification.scopes[0]"));
        let plain = table("");
        let mut t = plain.clone();
        t.insert("token_endpoint".into(), "http://op.example/token".into());
        let e = load_number_verification(t, "acme.toml").unwrap_err();
        assert!(e.to_string().contains("number_verification.token_endpoint"));
        let mut t = plain.clone();
        t.remove("verify_url");
        let e = load_number_verification(t, "acme.toml").unwrap_err();
        assert!(e.to_string().contains("verify_url"), "{e}");
        let mut t = plain;
        t.insert("client_secret".into(), "".into());
        let e = load_number_verification(t, "acme.toml").unwrap_err();
        assert!(e.to_string().contains("number_verification.client_secret"));
    }

    /// `provider` names a registered kind, `camara` when absent.
    #[test]
    fn the_provider_is_camara_unless_named() {
        let read = load_number_verification(table("provider = \"camara\""), "acme.toml");
        assert_eq!(read.unwrap().provider.info().name, "camara");
        let e = key_of("provider = \"sinch\"");
        assert!(e.contains("number_verification.provider"), "{e}");
        assert!(e.contains("must be camara"), "{e}");
    }

    #[test]
    fn http_is_for_loopback_only() {
        let mut t = table("");
        t.insert(
            "verify_url".into(),
            "http://127.0.0.1:9/number-verification/v2/".into(),
        );
        let read = load_number_verification(t, "acme.toml").unwrap();
        assert_eq!(
            camara(&read).verify_endpoint(),
            "http://127.0.0.1:9/number-verification/v2/verify"
        );
    }
}
