//! A wallet challenge (docs/wallet.md#asking): the team's `[wallet]`
//! names the credential asked for and the claims it may compare; the
//! start is a single message's (`single.rs`): reserve, then [`link_for`]
//! saves the link `/w/{code}` on its own key (a failed save takes the
//! start back), then the `wallet_link` text carries it. The challenge
//! read's `wallet` member is `read::WalletView`.
use uuid::Uuid;

use crate::config::{CredentialFormat, Purpose, Team};
use crate::domain::challenge::ChallengeMethod;
use crate::domain::start_challenge::{ChallengeRequest, Started};
use crate::domain::wallet::payment;
use crate::domain::wallet_state::WalletFormat;
use crate::error::{Error, Result};
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// `req` with its credential as the team's `[wallet]` names it: 422
/// naming the member for a team without `[wallet]`, a credential it does
/// not name (or none named when it has several), and a `match` claim
/// that credential may not compare. Nothing is read or counted before.
pub(super) fn checked(team: &Team, mut req: ChallengeRequest) -> Result<ChallengeRequest> {
    let Some(config) = team.wallet.as_ref() else {
        return Err(Error::invalid("method", "wallet needs the team's [wallet]"));
    };
    let Some(asking) = req.wallet.as_mut() else {
        return Err(Error::invalid("match", "required"));
    };
    let named = (!asking.credential.is_empty()).then_some(asking.credential.as_str());
    let Some(credential) = config.credential(named) else {
        return Err(match named {
            Some(_) => Error::invalid(
                "credential",
                "is not one of the team's [wallet] credentials",
            ),
            None => Error::invalid(
                "credential",
                "required: the team's [wallet] has more than one credential",
            ),
        });
    };
    if let Some(name) = asking.asked.keys().find(|k| !credential.claims.contains(k)) {
        return Err(Error::invalid(
            &format!("match.{name}"),
            "is not a claim of this credential that may be compared",
        ));
    }
    let sca = (
        credential.purpose == Purpose::Sca,
        credential.claims.is_empty(),
    );
    payment::asking(sca, req.transaction.as_ref(), asking.asked.len())?;
    asking.credential = credential.id.clone();
    asking.format = match credential.format {
        CredentialFormat::SdJwt { .. } => WalletFormat::SdJwt,
        CredentialFormat::Mdoc { .. } => WalletFormat::Mdoc,
    };
    Ok(req)
}

/// The link of wallet challenge `cid` of interaction `id`, started as
/// `started` by `req`: a fresh code (256 random bits) saved on its own
/// key until the challenge's end (and as long as an interaction lives
/// after it, so that an ended link answers its 410 page), and its URL
/// `{public_url}/w/{code}`. `None` for any other method. A save that
/// fails takes the start back.
pub(super) async fn link_for(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    req: &ChallengeRequest,
    started: &Started,
    now: Timestamp,
) -> Result<Option<String>> {
    if req.method != ChallengeMethod::Wallet {
        return Ok(None);
    }
    let saved = super::network::save_link_at(
        core,
        team,
        (id, cid),
        started.expires_at,
        (keys::wallet_link, "w"),
        now,
    );
    match saved.await {
        Ok(url) => Ok(Some(url)),
        Err(e) => {
            super::destinations::undo_challenge(core, team, id, cid, started, now).await?;
            Err(e)
        }
    }
}
