//! Where a verified credential's status is checked
//! (docs/wallet.md#status-lists): with `status_lists` on, a credential that
//! names a Token Status List (an SD-JWT VC's or an mdoc's
//! `status.status_list` `{idx, uri}`) must be valid in it. The list is
//! asked of the process's [`StatusLists`](crate::wallet_status::StatusLists)
//! (fetched within 5 s, kept for its `ttl`, verified against the
//! credential's trusted issuers at each use). An entry invalid (1), suspended (2) or
//! any other value is `revoked`; a list that cannot be fetched or read
//! leaves the challenge open (502 to the poster), and is never taken as
//! valid. A team that turns `status_lists` off accepts such a credential
//! without a check; a credential that names no list has nothing to check.
use crate::config::WalletConfig;
use crate::domain::wallet::challenge::WalletResult;
use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::status_list::{Checked, StatusRef};
use crate::gateway::Core;
use crate::time::Timestamp;

/// Why the status could not be known: the challenge stays open, 502.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unreadable(pub &'static str);

/// The status of a credential whose list is `status`, under the team's
/// `[wallet]` and whom that credential's status lists may be signed by
/// (its trusted issuers and its trusted lists' revocation services, never
/// their issuance services): `None` valid (or nothing to check),
/// `Some(WalletResult::Revoked)` when its entry is not valid.
pub(super) async fn credential_status(
    core: &Core,
    (wallet, signers): (&WalletConfig, &TrustedIssuers),
    status: Option<&StatusRef>,
    now: Timestamp,
) -> Result<Option<WalletResult>, Unreadable> {
    let Some(reference) = status.filter(|_| wallet.status_lists) else {
        return Ok(None);
    };
    result_of(
        core.status_lists()
            .status(reference, signers, wallet.reach, now)
            .await,
    )
}

/// What a list's answer makes of the credential.
fn result_of(checked: Checked) -> Result<Option<WalletResult>, Unreadable> {
    match checked {
        Checked::Valid => Ok(None),
        Checked::Revoked(_) => Ok(Some(WalletResult::Revoked)),
        Checked::FailingList(failure) => Err(Unreadable(failure.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::wallet::status_list::{ListFailure, Status};

    #[test]
    fn an_entry_not_valid_is_revoked_and_a_failing_list_is_unreadable() {
        assert_eq!(result_of(Checked::Valid), Ok(None));
        for s in [Status::Invalid, Status::Suspended, Status::Other(3)] {
            assert_eq!(
                result_of(Checked::Revoked(s)),
                Ok(Some(WalletResult::Revoked))
            );
        }
        assert_eq!(
            result_of(Checked::FailingList(ListFailure::Unreachable)),
            Err(Unreadable("unreachable"))
        );
    }
}
