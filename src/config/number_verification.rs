//! A team's `[number_verification]` (docs/network-authentication.md): the
//! mobile operator's (or an aggregator's) authorization server and its
//! Number Verification API, checked at start so that a bad value stops the
//! gateway with the key named.
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::de::from_table;
use super::oidc::{https_or_loopback, is_token};
use super::ConfigError;
use crate::channels::kind::Secret;
use crate::time::Dur;

/// The shortest and longest `link_ttl`.
const LINK_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(1800));

/// A team's `[number_verification]`, checked.
#[derive(Debug)]
pub struct NumberVerification {
    /// Where the customer's browser is sent (`prompt=none`).
    pub authorization_endpoint: Url,
    /// Where the authorization code is exchanged (`client_secret_basic`).
    pub token_endpoint: Url,
    /// The API root with its version: `POST {verify_url}/verify`.
    pub verify_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Sent space-separated as `scope`.
    pub scopes: Vec<String>,
    /// How long a network link stays open.
    pub link_ttl: Duration,
    /// Send `hashedPhoneNumber` (hex SHA-256 of `+E.164`) instead of
    /// `phoneNumber`.
    pub hash_number: bool,
}

impl NumberVerification {
    /// `POST` address of the verify call.
    pub fn verify_endpoint(&self) -> String {
        format!("{}/verify", self.verify_url.as_str().trim_end_matches('/'))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    authorization_endpoint: String,
    token_endpoint: String,
    verify_url: String,
    client_id: String,
    client_secret: Secret,
    scopes: Option<Vec<String>>,
    link_ttl: Option<Dur>,
    #[serde(default)]
    hash_number: bool,
}

/// Reads and checks `[number_verification]` from `file`.
pub(super) fn load_number_verification(
    table: toml::Table,
    file: &str,
) -> Result<NumberVerification, ConfigError> {
    const SECTION: &str = "number_verification";
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("{SECTION}.{key}"), problem);
    let raw: Entry = from_table(table, file, SECTION)?;
    let url = |key: &str, v: &str| {
        Url::parse(v)
            .ok()
            .filter(https_or_loopback)
            .filter(|u| u.fragment().is_none())
            .ok_or_else(|| {
                err(
                    key,
                    "must be an https URL (http only on a loopback address)",
                )
            })
    };
    let authorization_endpoint = url("authorization_endpoint", &raw.authorization_endpoint)?;
    let token_endpoint = url("token_endpoint", &raw.token_endpoint)?;
    let verify_url = url("verify_url", &raw.verify_url)?;
    if verify_url.query().is_some() {
        return Err(err("verify_url", "must not have a query"));
    }
    if raw.client_id.trim().is_empty() {
        return Err(err("client_id", "must not be empty"));
    }
    if raw.client_secret.get().expose_secret().is_empty() {
        return Err(err("client_secret", "must not be empty"));
    }
    let scopes = raw
        .scopes
        .unwrap_or_else(|| vec!["openid".into(), "number-verification:verify".into()]);
    if scopes.is_empty() {
        return Err(err("scopes", "must name at least one scope"));
    }
    if let Some(i) = scopes.iter().position(|s| !is_token(s)) {
        return Err(err(
            &format!("scopes[{i}]"),
            "must be a scope name (printable ASCII, no space, quote or backslash)",
        ));
    }
    let link_ttl = raw.link_ttl.map_or(Duration::from_secs(300), Dur::get);
    if !(LINK_TTL.0..=LINK_TTL.1).contains(&link_ttl) {
        return Err(err("link_ttl", "must be from \"1m\" to \"30m\""));
    }
    Ok(NumberVerification {
        authorization_endpoint,
        token_endpoint,
        verify_url,
        client_id: raw.client_id,
        client_secret: raw.client_secret.get().clone(),
        scopes,
        link_ttl,
        hash_number: raw.hash_number,
    })
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

    fn key_of(extra: &str) -> String {
        load_number_verification(table(extra), "acme.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_defaults_are_the_camara_scope_and_five_minutes() {
        let nv = load_number_verification(table(""), "acme.toml").unwrap();
        assert_eq!(nv.scopes, ["openid", "number-verification:verify"]);
        assert_eq!(nv.link_ttl, Duration::from_secs(300));
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

    #[test]
    fn http_is_for_loopback_only() {
        let mut t = table("");
        t.insert(
            "verify_url".into(),
            "http://127.0.0.1:9/number-verification/v2/".into(),
        );
        let nv = load_number_verification(t, "acme.toml").unwrap();
        assert_eq!(
            nv.verify_endpoint(),
            "http://127.0.0.1:9/number-verification/v2/verify"
        );
    }
}
