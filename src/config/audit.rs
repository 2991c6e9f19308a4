//! `[audit]` of the system file (docs/audit.md): how long the trail stays
//! in the store, the keys that sign its head, and the syslog receiver
//! (TCP, or TLS as RFC 5425 says, checked against the Mozilla roots or
//! the authorities of `ca_file`).
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};

use serde::Deserialize;

use super::{ConfigError, Dur};
use crate::domain::audit_keys::SigningKeys;

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
    /// Every team's entries to a SIEM (RFC 5424 over TCP or TLS).
    #[serde(default)]
    syslog: Option<SyslogSection>,
}

/// `[audit.syslog]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyslogSection {
    /// `tcp://host:port`.
    address: String,
    /// TLS to the receiver (RFC 5425), its certificate checked for `host`.
    #[serde(default)]
    tls: bool,
    /// With `tls`: a PEM file of the authorities that may sign the
    /// receiver's certificate, instead of the Mozilla roots (a SIEM's own
    /// CA); relative to the system file's folder.
    #[serde(default)]
    ca_file: Option<String>,
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
    pub keys: Arc<SigningKeys>,
    /// `[audit.syslog]`, when entries go to a syslog receiver.
    pub syslog: Option<SyslogTarget>,
}

/// Where the syslog sink sends, and how.
#[derive(Debug, Clone)]
pub struct SyslogTarget {
    /// `host:port` of `tcp://host:port`.
    pub address: String,
    /// The TLS session's settings, when `tls = true`.
    pub tls: Option<SyslogTls>,
}

/// A TLS client for the syslog receiver: its trusted authorities and the
/// name its certificate must hold.
#[derive(Clone)]
pub struct SyslogTls {
    pub connector: tokio_rustls::TlsConnector,
    pub server_name: ServerName<'static>,
}

impl std::fmt::Debug for SyslogTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: default_retention().get(),
            keys: Arc::new(SigningKeys::none()),
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
    let keys = signing_keys("audit", &raw.signing_key, &raw.previous_signing_keys, file)?;
    let syslog = match &raw.syslog {
        None => None,
        Some(s) => Some(syslog_target(s, file).map_err(|(k, p)| ConfigError::new(file, k, &p))?),
    };
    Ok(AuditConfig {
        retention,
        keys: Arc::new(keys),
        syslog,
    })
}

/// The keys of `[section] signing_key` and `previous_signing_keys`
/// (`[audit]`, `[approvals]`) of the system file `file`; `Err` names the
/// key, never its content.
pub(super) fn signing_keys(
    section: &str,
    signing_key: &str,
    previous: &[String],
    file: &str,
) -> Result<SigningKeys, ConfigError> {
    SigningKeys::from_pem(signing_key, previous).map_err(|p| {
        let key = if p.starts_with("previous") {
            "previous_signing_keys"
        } else {
            "signing_key"
        };
        ConfigError::new(file, format!("{section}.{key}"), &p)
    })
}

/// `[audit.syslog]` of the system file `file`; `Err` names the key and
/// the problem.
fn syslog_target(s: &SyslogSection, file: &str) -> Result<SyslogTarget, (&'static str, String)> {
    let bad = || {
        (
            "audit.syslog.address",
            "must be tcp://host:port".to_string(),
        )
    };
    let rest = s.address.trim().strip_prefix("tcp://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || host.contains('/') || !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return Err(bad());
    }
    let tls = match (s.tls, &s.ca_file) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err((
                "audit.syslog.ca_file",
                "is for TLS: set tls = true, or remove it".into(),
            ))
        }
        (true, ca_file) => Some(syslog_tls(host, ca_file.as_deref(), file)?),
    };
    Ok(SyslogTarget {
        address: rest.to_string(),
        tls,
    })
}

/// The TLS client for the receiver `host` (a name or an IP address,
/// `[…]` for IPv6): trusting the authorities of `ca_file` (relative to
/// the folder of `file`), else the Mozilla roots.
fn syslog_tls(
    host: &str,
    ca_file: Option<&str>,
    file: &str,
) -> Result<SyslogTls, (&'static str, String)> {
    let name = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string()).map_err(|_| {
        (
            "audit.syslog.address",
            "the host is neither a DNS name nor an IP address, so TLS cannot check it".to_string(),
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let folder = Path::new(file).parent().unwrap_or(Path::new("."));
            let path = folder.join(path);
            let bad = |problem: String| ("audit.syslog.ca_file", problem);
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect())
                .map_err(|e| {
                    bad(format!(
                        "{}: no PEM certificates can be read ({e})",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(bad(format!("{}: holds no PEM certificate", path.display())));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    bad(format!(
                        "{}: a certificate is not an authority ({e})",
                        path.display()
                    ))
                })?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ("audit.syslog.tls", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(SyslogTls {
        connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        server_name,
    })
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
        let target = c.syslog.unwrap();
        assert_eq!(target.address, "127.0.0.1:514");
        assert!(target.tls.is_none());
        for bad in ["udp://h:514", "tcp://h", "tcp://:514", "tcp://h:0"] {
            let e = build_from(&format!("[syslog]\naddress = \"{bad}\"")).unwrap_err();
            assert!(e.contains("audit.syslog.address"), "{bad}: {e}");
        }
    }

    #[test]
    fn tls_checks_the_host_against_the_roots_or_the_ca_file() {
        let c = build_from("[syslog]\naddress = \"tcp://siem.example:6514\"\ntls = true").unwrap();
        let tls = c.syslog.unwrap().tls.expect("TLS");
        assert_eq!(
            tls.server_name,
            ServerName::try_from("siem.example").unwrap()
        );
        let c = build_from("[syslog]\naddress = \"tcp://[::1]:6514\"\ntls = true").unwrap();
        assert!(matches!(
            c.syslog.unwrap().tls.unwrap().server_name,
            ServerName::IpAddress(_)
        ));
        let e =
            build_from("[syslog]\naddress = \"tcp://h:514\"\nca_file = \"ca.pem\"").unwrap_err();
        assert!(
            e.contains("audit.syslog.ca_file") && e.contains("tls = true"),
            "{e}"
        );
        let e = build_from(
            "[syslog]\naddress = \"tcp://h:514\"\ntls = true\nca_file = \"/nonexistent/ca.pem\"",
        )
        .unwrap_err();
        assert!(
            e.contains("audit.syslog.ca_file") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }
}
