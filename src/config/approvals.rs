//! `[approvals]` of the system file (docs/api.md#the-approval-token): the
//! Ed25519 key that signs payment approval tokens, and the public keys
//! still listed after a rotation. The gateway alone holds it: no login
//! page or website holds a key that makes an approval.
use std::sync::Arc;

use serde::Deserialize;

use super::ConfigError;
use crate::domain::audit_keys::SigningKeys;

/// `[approvals]`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ApprovalsSection {
    /// An Ed25519 private key (PKCS#8 PEM) that signs approval tokens;
    /// empty: no challenge may carry a `transaction`.
    #[serde(default)]
    signing_key: String,
    /// Public keys (PEM) still listed after a rotation.
    #[serde(default)]
    previous_signing_keys: Vec<String>,
}

/// `[approvals]`, validated.
#[derive(Debug, Clone)]
pub struct ApprovalsConfig {
    pub keys: Arc<SigningKeys>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            keys: Arc::new(SigningKeys::none()),
        }
    }
}

pub(super) fn build(raw: &ApprovalsSection, file: &str) -> Result<ApprovalsConfig, ConfigError> {
    let keys = super::audit::signing_keys(
        "approvals",
        &raw.signing_key,
        &raw.previous_signing_keys,
        file,
    )?;
    Ok(ApprovalsConfig {
        keys: Arc::new(keys),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit_keys::new_signing_key_pem;

    fn build_from(toml: &str) -> Result<ApprovalsConfig, String> {
        let raw: ApprovalsSection = toml::from_str(toml).map_err(|e| e.to_string())?;
        build(&raw, "chatgate.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn the_key_and_the_previous_keys_are_read_and_named_in_errors() {
        let none = build_from("").unwrap();
        assert!(!none.keys.signs() && none.keys.jwks().keys.is_empty());
        let pem = new_signing_key_pem().unwrap();
        let c = build_from(&format!("signing_key = '''\n{pem}'''")).unwrap();
        assert!(c.keys.signs());
        assert_eq!(c.keys.jwks().keys.len(), 1);
        let e = build_from("signing_key = \"not-a-key-secret\"").unwrap_err();
        assert!(
            e.contains("approvals.signing_key") && !e.contains("not-a-key-secret"),
            "{e}"
        );
        let e = build_from("previous_signing_keys = [\"x\"]").unwrap_err();
        assert!(e.contains("approvals.previous_signing_keys"), "{e}");
        assert!(
            build_from("signing_keys = \"\"").is_err(),
            "a typo is refused"
        );
    }
}
