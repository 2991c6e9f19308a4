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
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            retention: default_retention(),
            signing_key: String::new(),
            previous_signing_keys: Vec::new(),
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
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: default_retention().get(),
            keys: Arc::new(AuditKeys::none()),
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
    Ok(AuditConfig {
        retention,
        keys: Arc::new(keys),
    })
}
