//! A payment's authentication code used once
//! (docs/wallet.md#a-payment-approved-in-the-wallet): the Key Binding
//! JWT's `jti` of a verified payment is claimed for its issuer, kept
//! `payment::JTI_KEPT` (400 days), in one atomic write that makes no read;
//! a code claimed before makes the presentation invalid.
use crate::config::Team;
use crate::domain::wallet::challenge::{WalletAnswer, WalletResult};
use crate::domain::wallet::payment::{ScaProof, JTI_KEPT};
use crate::error::Result;
use crate::gateway::change;
use crate::gateway::records::UsedJti;
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// `answer`, verified, with the payment's authentication `sca`: kept on
/// it once its code is claimed for the answer's issuer; an
/// `invalid_presentation` when the code was used before. A store that
/// fails answers its error (nothing is concluded).
pub(super) async fn used_once(
    core: &Core,
    team: &Team,
    mut answer: WalletAnswer,
    sca: ScaProof,
    now: Timestamp,
) -> Result<WalletAnswer> {
    let issuer = answer.issuer.clone().unwrap_or_default();
    let key = keys::wallet_sca_code(&team.keyspace, &issuer, &sca.code);
    let claimed = change::once(core, &team.keyspace, &[], now, |c| {
        Ok(Step::Write(c.claim(&key, &UsedJti {}, Some(JTI_KEPT))?))
    });
    let claimed: Option<u64> = claimed.await?;
    if claimed.is_none() {
        tracing::info!(
            reason = "reused_authentication_code",
            "a wallet presentation is invalid"
        );
        answer.result = WalletResult::InvalidPresentation;
        answer.matched = Vec::new();
        answer.claims = Default::default();
        return Ok(answer);
    }
    answer.sca = Some(sca);
    Ok(answer)
}
