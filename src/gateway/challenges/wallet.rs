//! A wallet challenge (docs/wallet.md#asking): the team's `[wallet]`
//! names the credential asked for and the claims it may compare; the
//! start is a single message's (`single.rs`): reserve, then the link
//! `/w/{code}` is saved on its own key (`links::save`; a failed save
//! takes the start back), then the `wallet_link` text carries it. The challenge
//! read's `wallet` member is `read::WalletView`.
use crate::config::{Purpose, Team};
use crate::domain::start_challenge::ChallengeRequest;
use crate::domain::wallet::payment;
use crate::error::{Error, Result};

/// `req` with its credentials as the team's `[wallet]` names them: 422
/// naming the member for a team without `[wallet]`, a credential it does
/// not name (or none named when it has several), and a `match` claim
/// that a credential asked may not compare (`credential[1]` named when
/// it is the second of an array). Nothing is read or counted before.
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
    let mut asked = vec![credential];
    for (i, id) in asking.also.iter().enumerate() {
        let other = config.credential(Some(id)).ok_or_else(|| {
            Error::invalid(
                &format!("credential[{}]", i + 1),
                "is not one of the team's [wallet] credentials",
            )
        })?;
        asked.push(other);
    }
    for (i, c) in asked.iter().enumerate() {
        if let Some(name) = asking.asked.keys().find(|k| c.own_name(k).is_none()) {
            let which = match asked.len() {
                1 => "this credential".to_string(),
                _ => format!("credential {} (credential[{i}])", c.id),
            };
            return Err(Error::invalid(
                &format!("match.{name}"),
                &format!("is not a claim of {which} that may be compared"),
            ));
        }
    }
    if asked.len() > 1 && asked.iter().any(|c| c.purpose == Purpose::Sca) {
        return Err(Error::invalid(
            "credential",
            "an sca credential is asked alone",
        ));
    }
    let sca = (
        credential.purpose == Purpose::Sca,
        credential.claims.is_empty(),
    );
    payment::asking(sca, req.transaction.as_ref(), asking.asked.len())?;
    asking.credential = credential.id.clone();
    asking.format = credential.format;
    Ok(req)
}
