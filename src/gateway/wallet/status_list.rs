//! Where a verified credential's status is checked
//! (docs/wallet.md#status-lists): with `status_lists` on, a credential that
//! names a Token Status List (`status.status_list` `{"idx", "uri"}`) must be
//! valid in it. The list's reader (its fetch, signature, cache and entry)
//! is not part of this version yet: until it is wired here, such a
//! credential is refused as a list that cannot be read (the challenge
//! stays open, 502 to the poster), never accepted unchecked. A team that
//! turns `status_lists` off accepts it without a check; a credential that
//! names no list has nothing to check.
use crate::config::WalletConfig;
use crate::domain::wallet::challenge::WalletResult;
use crate::domain::wallet::jose::Object;

/// Why the status could not be known: the challenge stays open, 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unreadable(pub &'static str);

/// The status of a credential whose verified claims are `claims`, under
/// the team's `[wallet]`: `None` valid (or nothing to check),
/// `Some(WalletResult::Revoked)` once a list says invalid (1) or
/// suspended (2).
pub(super) async fn credential_status(
    wallet: &WalletConfig,
    claims: &Object,
) -> Result<Option<WalletResult>, Unreadable> {
    let Some(reference) = claims.get("status").and_then(|s| s.get("status_list")) else {
        return Ok(None);
    };
    if !wallet.status_lists {
        return Ok(None);
    }
    let idx = reference.get("idx").and_then(serde_json::Value::as_u64);
    let uri = reference.get("uri").and_then(serde_json::Value::as_str);
    if idx.is_none() || uri.is_none() {
        return Err(Unreadable("the credential's status_list is not {idx, uri}"));
    }
    Err(Unreadable(
        "Token Status Lists are not read by this version: turn [wallet] status_lists off to accept such credentials unchecked",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: serde_json::Value) -> Object {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_credential_naming_a_list_is_refused_until_lists_are_read_unless_they_are_off() {
        let named = claims(serde_json::json!({
            "vct": "v", "status": {"status_list": {"idx": 7, "uri": "https://issuer.example/l"}}
        }));
        let none = claims(serde_json::json!({"vct": "v"}));
        let check = |on: bool, c: &Object| {
            let w = crate::config::wallet_for_tests(on);
            futures::executor::block_on(credential_status(&w, c))
        };
        assert!(check(true, &named).is_err());
        assert_eq!(check(false, &named), Ok(None));
        assert_eq!(check(true, &none), Ok(None));
    }
}
