//! A team's `[oidc]` section: its OpenID Connect provider, checked at start
//! so that a bad value stops the gateway with the key named.
use secrecy::ExposeSecret;
use url::{Host, Url};

use super::de::from_table;
use super::files::{ConsoleEntry, ConsoleOidcEntry, OidcEntry, SsfEntry};
use super::{ConfigError, ConsoleConfig, ConsoleOidc, ConsoleRoles, OidcConfig, SsfConfig};
use crate::time::Dur;

pub(super) fn load_oidc(table: toml::Table, file: &str) -> Result<OidcConfig, ConfigError> {
    let raw: OidcEntry = from_table(table, file, "oidc")?;
    checked_provider(raw, file, "oidc")
}

/// A team's `[console]`: its `[console.oidc]` ([`console_oidc`]), and its
/// `sign_in_rate` ([`sign_in_rate`]).
pub(super) fn load_console(
    entry: Option<ConsoleEntry>,
    file: &str,
) -> Result<ConsoleConfig, ConfigError> {
    let Some(entry) = entry else {
        return Ok(ConsoleConfig::default());
    };
    let oidc = match entry.oidc {
        None => None,
        Some(table) => Some(console_oidc(table, file)?),
    };
    if entry.require_person && oidc.is_none() {
        return Err(ConfigError::new(
            file,
            "console.require_person",
            "needs [console.oidc]: a person is named by its provider",
        ));
    }
    Ok(ConsoleConfig {
        require_person: entry.require_person,
        sign_in_rate: sign_in_rate(entry.sign_in_rate, file)?,
        oidc,
    })
}

/// The most `[console] sign_in_rate` may say: more is no limit.
const MAX_SIGN_IN_RATE: u32 = 10_000;

/// `[console] sign_in_rate`: a whole number from 1 to
/// [`MAX_SIGN_IN_RATE`], by default [`super::team::DEFAULT_SIGN_IN_RATE`].
fn sign_in_rate(rate: Option<i64>, file: &str) -> Result<u32, ConfigError> {
    let Some(rate) = rate else {
        return Ok(super::team::DEFAULT_SIGN_IN_RATE);
    };
    u32::try_from(rate)
        .ok()
        .filter(|r| (1..=MAX_SIGN_IN_RATE).contains(r))
        .ok_or_else(|| {
            ConfigError::new(
                file,
                "console.sign_in_rate",
                "must be a whole number of sign-ins a second from 1 to 10000",
            )
        })
}

/// A team's `[console.oidc]` checked as `[oidc]` is, its session limits
/// (idle `> 0s`, not beyond the absolute one), role claim named and at
/// least one role value listed.
fn console_oidc(table: toml::Table, file: &str) -> Result<ConsoleOidc, ConfigError> {
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("console.oidc.{key}"), problem);
    let raw: ConsoleOidcEntry = from_table(table, file, "console.oidc")?;
    if raw.role_claim.trim().is_empty() {
        return Err(err("role_claim", "must not be empty"));
    }
    let values = raw.agent_values.iter().chain(&raw.admin_values);
    if values.into_iter().any(|v| v.trim().is_empty()) {
        return Err(err("agent_values", "a role value must not be empty"));
    }
    if raw.agent_values.is_empty() && raw.admin_values.is_empty() {
        return Err(err(
            "agent_values",
            "agent_values and admin_values are both empty: nobody could sign in",
        ));
    }
    let idle = raw.session_idle.unwrap_or(Dur::from_secs(15 * 60));
    let max = raw.session_max.unwrap_or(Dur::from_secs(12 * 3600));
    if idle.enabled().is_none() {
        return Err(err("session_idle", "must be more than 0s"));
    }
    if idle > max {
        return Err(err("session_max", "must not be shorter than session_idle"));
    }
    let actor_audience = raw.actor_audience.unwrap_or_else(|| raw.client_id.clone());
    if actor_audience.trim().is_empty() {
        return Err(err("actor_audience", "must not be empty"));
    }
    let provider = OidcEntry {
        issuer: raw.issuer,
        client_id: raw.client_id,
        client_secret: raw.client_secret,
        scopes: raw.scopes,
        customer_claim: "sub".into(),
        max_age: Dur::default(),
        acr_values: Vec::new(),
        backchannel_logout: false,
        ciba: false,
    };
    Ok(ConsoleOidc {
        provider: checked_provider(provider, file, "console.oidc")?,
        actor_audience,
        roles: ConsoleRoles {
            claim: raw.role_claim,
            agent_values: raw.agent_values,
            admin_values: raw.admin_values,
        },
        session_idle: idle.get(),
        session_max: max.get(),
    })
}

/// A provider's section (`[oidc]` or `[console.oidc]`, named `section`),
/// each key checked.
fn checked_provider(raw: OidcEntry, file: &str, section: &str) -> Result<OidcConfig, ConfigError> {
    let err =
        |key: &str, problem: &str| ConfigError::new(file, format!("{section}.{key}"), problem);
    issuer_problem(&raw.issuer).map_or(Ok(()), |p| Err(err("issuer", p)))?;
    if raw.client_id.trim().is_empty() {
        return Err(err("client_id", "must not be empty"));
    }
    if raw.client_secret.get().expose_secret().is_empty() {
        return Err(err("client_secret", "must not be empty"));
    }
    let mut scopes = vec!["openid".to_string()];
    for (i, scope) in raw.scopes.iter().enumerate() {
        if !is_token(scope) {
            return Err(err(
                &format!("scopes[{i}]"),
                "must be a scope name (printable ASCII, no space, quote or backslash)",
            ));
        }
        if !scopes.contains(scope) {
            scopes.push(scope.clone());
        }
    }
    if raw.customer_claim.trim().is_empty() {
        return Err(err("customer_claim", "must not be empty"));
    }
    for (i, acr) in raw.acr_values.iter().enumerate() {
        if !is_token(acr) {
            return Err(err(
                &format!("acr_values[{i}]"),
                "must be an acr value (printable ASCII, no space, quote or backslash)",
            ));
        }
    }
    Ok(OidcConfig {
        issuer: raw.issuer,
        client_id: raw.client_id,
        client_secret: raw.client_secret.get().clone(),
        scopes,
        customer_claim: raw.customer_claim,
        max_age: raw.max_age.enabled(),
        acr_values: raw.acr_values,
        backchannel_logout: raw.backchannel_logout,
        ciba: raw.ciba,
        reach: crate::outbound::Reach::Anywhere,
    })
}

/// A team's `[ssf]`: every key present (a missing one is named), the key
/// set's address one the gateway may fetch.
pub(super) fn load_ssf(table: toml::Table, file: &str) -> Result<SsfConfig, ConfigError> {
    let err = |key: &str, problem: &str| ConfigError::new(file, format!("ssf.{key}"), problem);
    let raw: SsfEntry = from_table(table, file, "ssf")?;
    let filled = |key: &str, v: String| {
        if v.trim().is_empty() {
            Err(err(key, "must not be empty"))
        } else {
            Ok(v)
        }
    };
    let issuer = filled("issuer", raw.issuer)?;
    let jwks_uri = filled("jwks_uri", raw.jwks_uri)?;
    let audience = filled("audience", raw.audience)?;
    let jwks_uri = Url::parse(&jwks_uri)
        .ok()
        .filter(https_or_loopback)
        .ok_or_else(|| {
            err(
                "jwks_uri",
                "must be an https URL (http only on a loopback address)",
            )
        })?;
    Ok(SsfConfig {
        issuer,
        jwks_uri,
        audience,
        on_credential_change: raw.on_credential_change,
        reach: crate::outbound::Reach::Anywhere,
    })
}

/// Whether `url`'s host, as written, is a loopback address: an IPv4
/// address in 127.0.0.0/8, the IPv6 `::1`, or the name `localhost`. No name
/// is resolved to decide, and an IPv4-mapped IPv6 address is not loopback.
fn on_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether the gateway may talk to a provider at `url`: `https`, or `http`
/// on a loopback address ([`on_loopback`]), never anything else
/// (docs/api.md#hosted-login-openid-connect).
pub fn https_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => url.host().is_some(),
        "http" => on_loopback(url),
        _ => false,
    }
}

/// Whether the gateway may send a request to `endpoint`, named by the
/// discovery document of the provider at `issuer`: [`https_or_loopback`],
/// and on a loopback address only when the issuer is on one too. A remote
/// provider cannot point the gateway at a service on its own machine
/// (docs/decisions/0043-what-a-provider-may-answer.md).
pub fn may_reach(endpoint: &Url, issuer: &str) -> bool {
    https_or_loopback(endpoint)
        && (!on_loopback(endpoint) || Url::parse(issuer).is_ok_and(|i| on_loopback(&i)))
}

/// Why `issuer` cannot be a provider's issuer: it must be an `https` URL
/// (or `http` on a loopback address, for a provider on the same machine)
/// without query, fragment or credentials.
pub(super) fn issuer_problem(issuer: &str) -> Option<&'static str> {
    let Ok(url) = Url::parse(issuer) else {
        return Some("is not an absolute https URL");
    };
    if url.host().is_none() {
        return Some("is not an absolute https URL");
    }
    match url.scheme() {
        "https" => {}
        "http" if on_loopback(&url) => {}
        "http" => return Some("must be https (http only on a loopback address)"),
        _ => return Some("is not an absolute https URL"),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Some("must not have a query or fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("must not carry credentials");
    }
    None
}

/// A scope or acr value as RFC 6749 writes them (`NQCHAR`).
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_read_as_written() {
        let ok = |u: &str| https_or_loopback(&Url::parse(u).unwrap());
        for u in [
            "https://id.example/token",
            "http://127.0.0.1:1/t",
            "http://127.9.8.7/t",
            "http://[::1]:1/t",
            "http://LocalHost:1/t",
        ] {
            assert!(ok(u), "{u}");
        }
        for u in [
            "http://id.example/token",
            "http://10.0.0.1/t",
            "http://[::ffff:127.0.0.1]:1/t",
            "http://localhost.example/t",
            "http://0.0.0.0/t",
            "ftp://127.0.0.1/t",
        ] {
            assert!(!ok(u), "{u}");
        }
    }

    #[test]
    fn a_remote_provider_cannot_name_an_endpoint_on_the_gateways_machine() {
        let reach =
            |endpoint: &str, issuer: &str| may_reach(&Url::parse(endpoint).unwrap(), issuer);
        let remote = "https://id.acme.example/realms/retail";
        assert!(reach("https://id.acme.example/token", remote));
        assert!(reach("https://keys.acme.example/jwks", remote));
        for local in [
            "http://127.0.0.1:15000/quitquitquit",
            "https://127.0.0.1:8443/t",
            "http://[::1]:1/t",
            "http://localhost:9000/t",
        ] {
            assert!(!reach(local, remote), "{local}");
            assert!(reach(local, "http://127.0.0.1:8081"), "{local}");
        }
        assert!(!reach(
            "http://id.acme.example/token",
            "http://127.0.0.1:8081"
        ));
        assert!(!reach("http://127.0.0.1:1/t", "not a url"));
    }

    #[test]
    fn issuers_are_https_or_loopback_http() {
        assert_eq!(
            issuer_problem("https://id.acme.example/realms/retail"),
            None
        );
        assert_eq!(issuer_problem("http://127.0.0.1:8081"), None);
        assert_eq!(issuer_problem("http://[::1]:8081/x"), None);
        assert_eq!(issuer_problem("http://localhost:9000"), None);
        assert!(issuer_problem("http://id.acme.example").is_some());
        assert!(issuer_problem("http://10.0.0.1").is_some());
        assert!(issuer_problem("ftp://id.acme.example").is_some());
        assert!(issuer_problem("id.acme.example").is_some());
        assert!(issuer_problem("https://id.acme.example/?x=1").is_some());
        assert!(issuer_problem("https://u:p@id.acme.example/").is_some());
    }

    #[test]
    fn scopes_and_acr_values_are_tokens() {
        assert!(is_token("openid"));
        assert!(is_token("urn:mace:incommon:iap:silver"));
        assert!(!is_token("a b"));
        assert!(!is_token("a\"b"));
        assert!(!is_token(""));
    }
}
