//! `[audit]` of the system file (docs/audit.md): how long the trail stays
//! in the store and the keys that sign its head.
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Dur};
use crate::domain::audit_keys::AuditKeys;

/// The shortest `[audit] retention`.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// `[audit]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditSection {
    /// How long entries stay in the store; default `400d`, at least `1d`.
    #[serde(default = "default_retention")]
    retention: Dur,
    /// An Ed25519 private key (PKCS#8 PEM) that signs `GET /v1/audit/head`;
    /// empty: heads are not signed.
    #[serde(default)]
    signing_key: String,
    /// Public keys (PEM) still listed after a rotation.
    #[serde(default)]
    previous_signing_keys: Vec<String>,
    /// Every team's entries to a SIEM (RFC 5424 over TCP).
    #[serde(default)]
    syslog: Option<SyslogSection>,
}

/// `[audit.syslog]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyslogSection {
    /// `tcp://host:port`.
    address: String,
    /// TLS to the receiver: not in this version (a local TLS forwarder
    /// does it).
    #[serde(default)]
    tls: bool,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            retention: default_retention(),
            signing_key: String::new(),
            previous_signing_keys: Vec::new(),
            syslog: None,
        }
    }
}

fn default_retention() -> Dur {
    Dur::from_secs(400 * 24 * 3600)
}

/// `[audit]`, validated.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// How long an entry, and a trail's head after its last entry, stay.
    pub retention: Duration,
    pub keys: Arc<AuditKeys>,
    /// `[audit.syslog] address` as `host:port`, when entries go to one.
    pub syslog: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: default_retention().get(),
            keys: Arc::new(AuditKeys::none()),
            syslog: None,
        }
    }
}

pub(super) fn build(raw: &AuditSection, file: &str) -> Result<AuditConfig, ConfigError> {
    let retention = raw.retention.get();
    if retention < MIN_RETENTION {
        return Err(ConfigError::new(
            file,
            "audit.retention",
            "must be at least \"1d\"",
        ));
    }
    let keys = AuditKeys::from_pem(&raw.signing_key, &raw.previous_signing_keys).map_err(|p| {
        let key = if p.starts_with("previous") {
            "audit.previous_signing_keys"
        } else {
            "audit.signing_key"
        };
        ConfigError::new(file, key, &p)
    })?;
    let syslog = match &raw.syslog {
        None => None,
        Some(s) => Some(syslog_address(s).map_err(|p| ConfigError::new(file, p.0, p.1))?),
    };
    Ok(AuditConfig {
        retention,
        keys: Arc::new(keys),
        syslog,
    })
}

/// `host:port` of `tcp://host:port`; `Err` names the key and the problem.
fn syslog_address(s: &SyslogSection) -> Result<String, (&'static str, &'static str)> {
    if s.tls {
        return Err((
            "audit.syslog.tls",
            "TLS to the receiver is not supported yet: leave it false and send through a local TLS forwarder",
        ));
    }
    let bad = ("audit.syslog.address", "must be tcp://host:port");
    let rest = s.address.trim().strip_prefix("tcp://").ok_or(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or(bad)?;
    if host.is_empty() || host.contains('/') || !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return Err(bad);
    }
    Ok(rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_from(toml: &str) -> Result<AuditConfig, String> {
        let raw: AuditSection = toml::from_str(toml).unwrap();
        build(&raw, "chatgate.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn retention_keys_and_the_syslog_address_are_checked() {
        let c = build_from("").unwrap();
        assert_eq!(c.retention, Duration::from_secs(400 * 86_400));
        assert!(c.syslog.is_none());
        assert!(c.keys.jwks().keys.is_empty());
        let e = build_from("retention = \"12h\"").unwrap_err();
        assert!(e.contains("audit.retention"), "{e}");
        let e = build_from("signing_key = \"not-a-key-secret\"").unwrap_err();
        assert!(
            e.contains("audit.signing_key") && !e.contains("not-a-key-secret"),
            "{e}"
        );
        let e = build_from("previous_signing_keys = [\"x\"]").unwrap_err();
        assert!(e.contains("audit.previous_signing_keys"), "{e}");
        let c = build_from("[syslog]\naddress = \"tcp://127.0.0.1:514\"").unwrap();
        assert_eq!(c.syslog.as_deref(), Some("127.0.0.1:514"));
        for bad in ["udp://h:514", "tcp://h", "tcp://:514", "tcp://h:0"] {
            let e = build_from(&format!("[syslog]\naddress = \"{bad}\"")).unwrap_err();
            assert!(e.contains("audit.syslog.address"), "{bad}: {e}");
        }
        let e = build_from("[syslog]\naddress = \"tcp://h:514\"\ntls = true").unwrap_err();
        assert!(e.contains("audit.syslog.tls"), "{e}");
    }
}
