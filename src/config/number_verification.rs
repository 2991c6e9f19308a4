//! A team's `[number_verification]` (docs/network-authentication.md): its
//! network-verification provider, checked at start so that a bad value
//! stops the gateway with the key named. The settings every kind shares
//! (`provider`, `link_ttl`) are read here; the provider's own keys by its
//! kind's type (`network_verification::ProviderConfig`, its registry).
use std::time::Duration;

use serde::Deserialize;

use super::de::{from_table, member_error};
use super::members::Member;
use super::oidc::https_or_loopback;
use super::ConfigError;
use crate::network_verification::{NumberVerification, ProviderConfig};
use crate::time::Dur;

/// The shortest and longest `link_ttl`.
const LINK_TTL: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(1800));

/// The kind of a section that names none.
pub(super) const DEFAULT_PROVIDER: &str = "camara";

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
    // Read through `Member`, so that a secret takes its value only under
    // a name the operator API seals.
    let provider = match ProviderConfig::parse(kind, Member::table(own), https_or_loopback) {
        None => return Err(unknown_kind()),
        Some(Err(e)) => return Err(member_error(&e, file, SECTION)),
        Some(Ok(Err((key, problem)))) => return Err(err(&key, &problem)),
        Some(Ok(Ok(provider))) => provider,
    };
    let link_ttl = raw.link_ttl.map_or(Duration::from_secs(300), Dur::get);
    if !(LINK_TTL.0..=LINK_TTL.1).contains(&link_ttl) {
        return Err(err("link_ttl", "must be from \"1m\" to \"30m\""));
    }
    Ok(NumberVerification {
        link_ttl,
        provider,
        reach: crate::outbound::Reach::Anywhere,
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

    /// The CAMARA keys of a section read.
    fn camara(nv: &NumberVerification) -> &crate::network_verification::CamaraConfig {
        match &nv.provider {
            ProviderConfig::Camara(c) => c,
            other => panic!("not camara: {other:?}"),
        }
    }

    const KEY: &str = include_str!("../../tests/api/oidc_keys/a.pem");

    fn vonage_table(extra: &str) -> toml::Table {
        let text = format!(
            "provider = \"vonage\"\napplication_id = \"app-1\"\nbrand = \"Acme\"\n\
             private_key = '''\n{KEY}'''\n{extra}"
        );
        toml::from_str(&text).unwrap()
    }

    /// The error of a Vonage section with `extra`'s keys set.
    fn vonage_error(extra: &str) -> String {
        let mut t = vonage_table("");
        t.extend(toml::from_str::<toml::Table>(extra).unwrap());
        load_number_verification(t, "acme.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_vonage_keys_read_with_nexmo_as_the_default_host() {
        let read = load_number_verification(vonage_table(""), "acme.toml").unwrap();
        let ProviderConfig::Vonage(v) = &read.provider else {
            panic!("not vonage: {:?}", read.provider);
        };
        assert_eq!(v.verify_endpoint(), "https://api.nexmo.com/v2/verify");
        assert_eq!(
            v.check_endpoint("r-1"),
            "https://api.nexmo.com/v2/verify/r-1"
        );
        assert_eq!(
            (v.application_id.as_str(), v.brand.as_str()),
            ("app-1", "Acme")
        );
        assert_eq!(read.link_ttl, Duration::from_secs(300));
        let shown = format!("{:?}", read.provider);
        assert!(
            !shown.contains("PRIVATE KEY") && !shown.contains("MIIE"),
            "{shown}"
        );
        let local = vonage_table("api_url = \"http://127.0.0.1:9\"");
        assert!(load_number_verification(local, "acme.toml").is_ok());
    }

    /// Each wrong key of a Vonage section is named, never its value; the
    /// keys of one provider are refused under the other, by name.
    #[test]
    fn each_bad_vonage_key_is_named_and_mixed_keys_are_refused() {
        let cases = [
            ("hash_number = true", "number_verification.hash_number"),
            (
                "brand = \"A brand much too long\"",
                "number_verification.brand",
            ),
            (
                "api_url = \"http://api.nexmo.com\"",
                "number_verification.api_url",
            ),
            (
                "api_url = \"https://api.nexmo.com/v2\"",
                "number_verification.api_url",
            ),
            (
                "client_id = \"bank\"",
                "number_verification.client_id: is not a key of provider vonage",
            ),
            (
                "verify_url = \"https://x.example\"",
                "number_verification.verify_url: is not a key",
            ),
            ("surprise = 1", "surprise"),
        ];
        for (extra, named) in cases {
            let e = vonage_error(extra);
            assert!(e.contains(named), "{extra}: {e}");
        }
        let mut t = vonage_table("");
        t.insert(
            "private_key".into(),
            "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n".into(),
        );
        let e = load_number_verification(t, "acme.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("number_verification.private_key") && !e.contains("not a key"),
            "{e}"
        );
        for key in ["application_id", "private_key", "brand"] {
            let mut t = vonage_table("");
            t.remove(key);
            let e = load_number_verification(t, "acme.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("number_verification.{key}")), "{e}");
        }
        let e = key_of("private_key = \"x\"");
        assert!(
            e.contains("number_verification.private_key: is not a key of provider camara"),
            "{e}"
        );
        let e = key_of("brand = \"Acme\"");
        assert!(
            e.contains("number_verification.brand: is not a key of provider camara"),
            "{e}"
        );
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

    /// A new kind's keys that name its secret under a name the operator
    /// API does not seal.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct NewKindKeys {
        app_id: Option<String>,
        api_key: Option<crate::domain::secrets::Secret>,
    }

    /// Read as [`load_number_verification`] reads a kind's own keys
    /// (through `Member`, its error under the section), such a secret is
    /// refused in a file and at its pointer in a body, its value unsaid.
    #[test]
    fn a_provider_s_secret_under_a_name_not_sealed_is_refused() {
        use super::super::form::{pointer_of_key, table_of_json};
        use super::super::members::UNSEALED_SECRET;
        let own: toml::Table = toml::from_str("app_id = \"a\"\napi_key = \"k-8812771\"").unwrap();
        let e = from_table::<NewKindKeys>(own, "teams/acme.toml", "number_verification");
        let e = e.unwrap_err();
        assert_eq!(e.key, "number_verification.api_key");
        assert_eq!(e.problem, UNSEALED_SECRET);
        assert!(!e.to_string().contains("k-8812771"), "{e}");
        let body =
            serde_json::json!({"number_verification": {"app_id": "a", "api_key": "k-8812771"}});
        let Some(toml::Value::Table(own)) =
            table_of_json(&body).unwrap().remove("number_verification")
        else {
            panic!("the body has its section");
        };
        let e = from_table::<NewKindKeys>(own, "(body)", "number_verification").unwrap_err();
        assert_eq!(pointer_of_key(&e.key), "/number_verification/api_key");
        assert_eq!(e.problem, UNSEALED_SECRET);
    }

    /// `provider` names a registered kind, `camara` when absent.
    #[test]
    fn the_provider_is_camara_unless_named() {
        let read = load_number_verification(table("provider = \"camara\""), "acme.toml");
        assert_eq!(read.unwrap().provider.info().name, "camara");
        let e = key_of("provider = \"sinch\"");
        assert!(e.contains("number_verification.provider"), "{e}");
        assert!(e.contains("must be camara or vonage"), "{e}");
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
