//! The customer's wallets registered for payments
//! (docs/wallet.md#registering-the-wallet-for-payments), a family of its
//! own beside the wallet's answer and the challenges' verify, which both
//! call it: a verified
//! presentation's holder key checked against what is registered
//! ([`holder_of`]); the key registered, or marked used by the payment it
//! approved, once the binding code is typed ([`on_authenticated`], in the
//! commit of the authentication, with its audit entry and event); and the
//! list and removal of a customer's registrations ([`registered_wallets`],
//! [`unregister`]). The record (`keys::wallet_registrations`, one per
//! `customer_ref`) lives `registration::KEPT` after its last write.
use serde::Serialize;
use uuid::Uuid;

use crate::config::Team;
use crate::domain::audit::{Acting, Action, Draft, Target};
use crate::domain::wallet::outcome::Verified;
use crate::domain::wallet::registration::{self, Registrations, KEPT};
use crate::domain::wallet_state::{WalletAnswer, WalletChallenge, WalletResult};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeRef, WalletRegistered};
use crate::events::EventData;
use crate::gateway::records::{Loaded, StoredRegistrations};
use crate::gateway::work::{Step, Work};
use crate::gateway::writes::Writes as _;
use crate::gateway::{doors, Core};
use crate::store::keys;
use crate::time::Timestamp;

/// What a verified presentation's holder key came to, for a challenge
/// about registered attestations: its thumbprint, which the binding
/// code's verification registers or marks used; or, for a payment, that
/// it is not registered to the customer.
#[derive(Debug, Clone, Default)]
pub struct Holder {
    pub thumbprint: Option<String>,
    pub not_registered: bool,
}

/// `answer`, for the presentation `verified` of challenge `asked` on an
/// interaction of `customer_ref`: unchanged with no holder for a
/// challenge that has nothing to do with registrations or an answer that
/// did not verify; `invalid_presentation` for a holder key without a
/// thumbprint, or, for a payment, a key of that issuer not registered to
/// the customer (reason `not_registered`).
pub async fn holder_of(
    core: &Core,
    team: &Team,
    (customer_ref, asked): (Option<&str>, &WalletChallenge),
    verified: &Verified,
    answer: WalletAnswer,
) -> Result<(WalletAnswer, Holder)> {
    let Some(k) = asked.registration.as_ref() else {
        return Ok((answer, Holder::default()));
    };
    if answer.result != WalletResult::Verified {
        return Ok((answer, Holder::default()));
    }
    let Some(thumbprint) = registration::holder_thumbprint(&verified.claims) else {
        tracing::info!(reason = "no_holder_key", "a wallet presentation is invalid");
        return Ok((invalid(answer), Holder::default()));
    };
    if k.register {
        let holder = Holder {
            thumbprint: Some(thumbprint),
            not_registered: false,
        };
        return Ok((answer, holder));
    }
    let registered = match customer_ref {
        Some(customer) => {
            let key = keys::wallet_registrations(&team.keyspace, customer);
            let found: Loaded<Registrations> = doors::read(core, &key).await?;
            found
                .value
                .is_some_and(|r| r.find(&verified.issuer, &thumbprint).is_some())
        }
        None => false,
    };
    if !registered {
        let reason = registration::NOT_REGISTERED;
        tracing::info!(reason, "a wallet presentation is invalid");
        let holder = Holder {
            thumbprint: None,
            not_registered: true,
        };
        return Ok((invalid(answer), holder));
    }
    let holder = Holder {
        thumbprint: Some(thumbprint),
        not_registered: false,
    };
    Ok((answer, holder))
}

/// `answer` made `invalid_presentation`, keeping nothing it disclosed.
fn invalid(mut answer: WalletAnswer) -> WalletAnswer {
    answer.result = WalletResult::InvalidPresentation;
    answer.matched = Vec::new();
    answer.claims = Default::default();
    answer
}

/// In `w`, where wallet challenge `cid` just authenticated the
/// interaction with its binding code: a registration's attestation
/// registered for the interaction's `customer_ref` (the oldest going
/// beyond five), with its `wallet.registered` entry and event; a
/// payment's registered attestation marked used. Nothing for any other
/// challenge.
pub async fn on_authenticated(
    core: &Core,
    team: &Team,
    w: &mut Work<'_>,
    cid: Uuid,
    now: Timestamp,
) -> Result<()> {
    let Some((c, _)) = w.rec.challenge_at(cid, now) else {
        return Ok(());
    };
    let wallet = c.wallet();
    let k = wallet.and_then(|x| x.registration.as_ref());
    let issuer = wallet.and_then(|x| x.answer.as_ref()?.issuer.clone());
    let (Some(k), Some(issuer), Some(customer)) = (k, issuer, w.rec.customer_ref.clone()) else {
        return Ok(());
    };
    let Some(thumbprint) = k.thumbprint.clone() else {
        return Ok(());
    };
    let register = k.register;
    let key = keys::wallet_registrations(&team.keyspace, &customer);
    let loaded: Loaded<Registrations> = doors::read(core, &key).await?;
    let mut r = loaded.value.clone().unwrap_or_default();
    if !register {
        if r.used(&issuer, &thumbprint, now) {
            w.put(&loaded, &StoredRegistrations::from(&r), Some(KEPT))?;
        }
        return Ok(());
    }
    r.register(&issuer, &thumbprint, now);
    w.put(&loaded, &StoredRegistrations::from(&r), Some(KEPT))?;
    let target = Target {
        interaction_id: Some(w.rec.id),
        challenge_id: Some(cid),
        subject: Some(customer),
        ..Target::default()
    };
    let draft = Draft::success(Action::WalletRegistered, &Acting::system(None), target)
        .with("issuer", issuer.clone())
        .with("thumbprint", thumbprint.clone());
    w.audit(draft);
    w.emit(EventData::WalletRegistered(WalletRegistered {
        challenge: ChallengeRef { challenge_id: cid },
        issuer,
        thumbprint,
    }));
    Ok(())
}

/// One registered attestation, as `GET /v1/subjects/{subject}/wallets`
/// lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegisteredWallet {
    /// The attestation issuer certificate's subject, RFC 4514.
    pub issuer: String,
    /// The RFC 7638 thumbprint (SHA-256, base64url without padding) of
    /// its holder key (`cnf.jwk`).
    pub thumbprint: String,
    pub registered_at: Timestamp,
    /// When it last approved a payment; null until it has.
    pub last_used_at: Option<Timestamp>,
}

impl RegisteredWallet {
    fn of(r: &registration::Registered) -> Self {
        RegisteredWallet {
            issuer: r.issuer.clone(),
            thumbprint: r.thumbprint.clone(),
            registered_at: r.registered_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// The attestations registered to `subject` (a `customer_ref`), oldest
/// first; none for a subject that has none.
pub async fn registered_wallets(
    core: &Core,
    team: &Team,
    subject: &str,
) -> Result<Vec<RegisteredWallet>> {
    let key = keys::wallet_registrations(&team.keyspace, subject);
    let found: Loaded<Registrations> = doors::read(core, &key).await?;
    let r = found.value.unwrap_or_default();
    Ok(r.wallets.iter().map(RegisteredWallet::of).collect())
}

/// Removes the attestation whose holder key is `thumbprint` from
/// `subject`'s registrations, with its `wallet.unregistered` entry (the
/// record goes with its last one): 404 when none is registered.
pub async fn unregister(
    core: &Core,
    team: &Team,
    (subject, thumbprint): (&str, &str),
    acting: &Acting,
    now: Timestamp,
) -> Result<()> {
    let key = keys::wallet_registrations(&team.keyspace, subject);
    let read = [key.clone(), keys::audit_head(&team.keyspace)];
    core.change(&team.keyspace, &read, now, |c| {
        let loaded: Loaded<Registrations> = c.read(&key)?;
        let mut r = loaded.value.clone().unwrap_or_default();
        let gone = r.remove(thumbprint);
        if gone.is_empty() {
            return Err(Error::NotFound(
                "no wallet with this thumbprint is registered",
            ));
        }
        match r.wallets.is_empty() {
            true => c.delete(&loaded),
            false => {
                c.put(&loaded, &StoredRegistrations::from(&r), Some(KEPT))?;
            }
        }
        for g in gone {
            let target = Target {
                subject: Some(subject.to_string()),
                ..Target::default()
            };
            let draft = Draft::success(Action::WalletUnregistered, acting, target)
                .with("issuer", g.issuer)
                .with("thumbprint", g.thumbprint);
            c.audit(draft);
        }
        Ok(Step::Write(()))
    })
    .await
}
