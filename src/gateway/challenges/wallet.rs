//! A wallet challenge (docs/wallet.md#asking): the team's `[wallet]`
//! names the credential asked for and the claims it may compare; the
//! start is a single message's (`single.rs`): reserve, then the link
//! `/w/{code}` is saved on its own key (`links::save`; a failed save
//! takes the start back), then the `wallet_link` text carries it. The challenge
//! read's `wallet` member is `read::WalletView`.
use crate::config::{Purpose, Team, WalletCredential};
use crate::domain::start_challenge::ChallengeRequest;
use crate::domain::transaction::Transaction;
use crate::domain::wallet::payment;
use crate::domain::wallet::registration::{self, Registrations};
use crate::domain::wallet_state::{KeyRegistration, WalletChallenge};
use crate::error::{Error, Result};
use crate::gateway::records::Loaded;
use crate::gateway::work::Work;
use crate::gateway::{doors, Core};
use crate::store::keys;
use crate::time::Timestamp;

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
    paying_or_registering(credential, asking, req.transaction.as_ref())?;
    asking.credential = credential.id.clone();
    asking.format = credential.format;
    Ok(req)
}

/// The payment rules of `asking` a `credential` for `transaction`
/// (`payment::asking`), or, for a registration, its own
/// ([`registering_checked`]); a payment that only a registered
/// attestation approves is marked so.
fn paying_or_registering(
    credential: &WalletCredential,
    asking: &mut WalletChallenge,
    transaction: Option<&Transaction>,
) -> Result<()> {
    if asking.registration.as_ref().is_some_and(|k| k.register) {
        return registering_checked(credential, asking);
    }
    let sca = (
        credential.purpose == Purpose::Sca,
        credential.claims.is_empty(),
    );
    payment::asking(sca, transaction, asking.asked.len())?;
    if credential.registered_only {
        asking.registration = Some(KeyRegistration {
            register: false,
            thumbprint: None,
        });
    }
    Ok(())
}

/// A registration's ask (docs/wallet.md#registering-the-wallet-for-payments):
/// of the team's `sca` credential, asked alone; its `match` as a payment's
/// (required unless the credential compares no claim). 422 naming the
/// member otherwise.
fn registering_checked(credential: &WalletCredential, asking: &WalletChallenge) -> Result<()> {
    if credential.purpose != Purpose::Sca || !asking.also.is_empty() {
        return Err(Error::invalid(
            "register",
            "only for the team's sca credential, asked alone",
        ));
    }
    if asking.asked.is_empty() && !credential.claims.is_empty() {
        return Err(Error::invalid(
            "match",
            "required: the claims the credential must show, and their values",
        ));
    }
    Ok(())
}

/// The 409s of a wallet challenge `req` that registers the customer's
/// attestation, or approves a payment only a registered one may
/// (docs/wallet.md#registering-the-wallet-for-payments), decided in `w`
/// on the interaction as its start reads it: a registration needs a
/// recent authentication with a `customer_ref` (`not_authenticated`); such
/// a payment, an interaction whose `customer_ref` has a registered
/// attestation (`not_registered`). Nothing for any other challenge.
pub(super) async fn registered_rules(
    core: &Core,
    team: &Team,
    w: &Work<'_>,
    req: &ChallengeRequest,
    now: Timestamp,
) -> Result<()> {
    let asked = req.wallet.as_ref().and_then(|c| c.registration.as_ref());
    let Some(asked) = asked else {
        return Ok(());
    };
    if asked.register {
        registration::may_register(&w.rec, w.settings, now)?;
        return Ok(());
    }
    let refused = || {
        Error::NotRegistered(
            "this payment is approved only by a wallet registered to the interaction's \
             customer_ref, and it has none: register one first",
        )
    };
    let customer = w.rec.customer_ref.as_deref().ok_or_else(refused)?;
    let key = keys::wallet_registrations(&team.keyspace, customer);
    let found: Loaded<Registrations> = doors::read(core, &key).await?;
    match found.value {
        Some(r) if !r.wallets.is_empty() => Ok(()),
        _ => Err(refused()),
    }
}
