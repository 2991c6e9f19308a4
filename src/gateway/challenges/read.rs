//! The answers about a challenge: the one a start gives
//! ([`StartedChallenge`]), and the read of one challenge
//! (docs/api.md#reading-a-challenge): where it stands and how far its
//! message got.
#![deny(clippy::wildcard_enum_match_arm)]
use serde::Serialize;
use uuid::Uuid;

use crate::config::Team;
use crate::domain::challenge::ChallengeState as State;
use crate::domain::delivery_status::DeliveryState;
use crate::domain::interaction::InteractionRecord;
use crate::domain::number_check::NumberCheck;
use crate::domain::start_challenge::Started;
use crate::domain::transaction::Transaction;
use crate::domain::transaction::{approval_jti, ApprovalClaims, ApprovalSca, Approved};
use crate::error::{Error, Result};
use crate::events::types::TransactionObject;
pub use crate::events::views::{
    delivery_of, Approval, ChallengeView, DeliveryErrorView, Entry, NetworkView, NumberCheckView,
    WalletResultView, WalletView,
};
use crate::gateway::view;
use crate::gateway::Core;
use crate::time::Timestamp;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StartedChallenge {
    pub challenge_id: Uuid,
    pub method: view::ChallengeMethod,
    /// Null for `app` (the customer's app, not a channel).
    pub delivery: Option<view::Delivery>,
    /// With `delivery: "ladder"`: the step that took the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub expires_at: Timestamp,
    /// 0 for `app`: no code answers it.
    pub attempts_allowed: u32,
    /// For `app`: the 4 digits the customer's app shows beside the
    /// request (docs/api.md#approval-in-the-customers-app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_code: Option<String>,
    pub delivered: bool,
    /// `accepted` once the provider took the message; null when nothing
    /// is sent (`agent` delivery).
    pub delivery_status: Option<view::DeliveryStatus>,
    /// Null (a message the provider did not take is 502).
    pub delivery_error: Option<DeliveryErrorView>,
    /// What the number check found; absent when the team has no
    /// `[number_checks]` or the code went to no phone number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_check: Option<NumberCheckView>,
    /// The payment it is for (docs/api.md#approving-one-payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionObject>,
    /// The base64url SHA-256 of the transaction's RFC 8785 canonical JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_hash: Option<String>,
    /// Where the code or PIN is typed: `chat`, or `page`, the gateway's
    /// page (docs/api.md#codes-typed-on-the-gateways-page).
    pub entry: Entry,
}

impl StartedChallenge {
    /// The answer to the start of challenge `cid`, which `started` opened
    /// for `delivery` (on `channel`, a ladder's step): `delivered` when a
    /// message went, and how far it got.
    pub(super) fn of(
        cid: Uuid,
        started: &Started,
        delivery: crate::domain::challenge::Delivery,
        channel: Option<String>,
        delivered: bool,
        state: Option<&DeliveryState>,
    ) -> Self {
        let (delivery_status, delivery_error) = delivery_of(state);
        StartedChallenge {
            challenge_id: cid,
            method: started.method,
            delivery: Some(delivery.into()),
            channel,
            expires_at: started.expires_at,
            attempts_allowed: started.attempts_allowed,
            delivered,
            delivery_status,
            delivery_error,
            binding_code: None,
            number_check: None,
            transaction: None,
            transaction_hash: None,
            entry: Entry::Chat,
        }
    }

    /// The answer, for a code typed where `page_entry` says.
    pub(super) fn entered(mut self, page_entry: bool) -> Self {
        self.entry = Entry::of(page_entry);
        self
    }

    /// The answer, for `transaction`.
    pub(super) fn for_transaction(mut self, transaction: Option<&Transaction>) -> Self {
        (self.transaction, self.transaction_hash) = TransactionObject::with_hash(transaction);
        self
    }

    /// The answer with what the number check found, if one was asked.
    pub(super) fn checked(mut self, check: Option<&NumberCheck>) -> Self {
        self.number_check = check.map(NumberCheckView::of);
        self
    }
}

/// The pepper's purpose for approval tokens' `jti`.
const JTI_PURPOSE: &str = "approval-jti";

/// Challenge `cid` of interaction `id`, current or remembered; one of
/// another interaction, or forgotten, is `NotFound`. An approved `app`
/// challenge for a transaction has its approval, the token only `for_bot`
/// (docs/api.md#approving-one-payment).
pub async fn read_challenge(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    for_bot: bool,
    now: Timestamp,
) -> Result<ChallengeView> {
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    let (c, state) = rec
        .challenge_at(cid, now)
        .ok_or(Error::NotFound("no such challenge"))?;
    let mut view = ChallengeView::of(c, state);
    if for_bot {
        let used = state == crate::domain::challenge::ChallengeState::Used;
        view.wallet = WalletView::of(c, true, (view.awaiting_code == Some(true), used));
    }
    // An approval given in the customer's own app or wallet: an app's,
    // and a wallet's once its binding code is verified
    // (docs/wallet.md#a-payment-approved-in-the-wallet).
    if c.method().approves_in_own_app() {
        view.approval = approval_of(core, team, rec, cid, for_bot, now)?;
    }
    Ok(view)
}

/// [`read_challenge`], and the state it was read in, for a caller that
/// judges it.
pub(super) async fn challenge_and_state(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    now: Timestamp,
) -> Result<(ChallengeView, State)> {
    let pair = core.load_pair(team, id, now).await?;
    let (c, state) = pair
        .rec()?
        .challenge_at(cid, now)
        .ok_or(Error::NotFound("no such challenge"))?;
    Ok((ChallengeView::of(c, state), state))
}

/// A wallet challenge's approval: the strong customer authentication its
/// verified payment kept, with the attestation's issuer
/// (docs/wallet.md#a-payment-approved-in-the-wallet).
fn wallet_sca(c: &crate::domain::challenge::Challenge) -> Option<ApprovalSca> {
    let answer = c.wallet()?.answer.as_ref()?;
    let sca = answer.sca.as_ref()?;
    Some(ApprovalSca {
        code: sca.code.clone(),
        amr: sca.amr.clone(),
        issuer: answer.issuer.clone()?,
    })
}

/// The approval challenge `cid` of `rec` gave, when it approved a
/// transaction (it was answered: `used`) and that transaction is the
/// current authentication's: its hash and, `with_token`, its approval
/// token (docs/api.md#the-approval-token), the same at every ask: issued
/// at the approval, with one `jti` per approval. A challenge for the same
/// transaction that was not answered (open, replaced, denied, …) gave no
/// approval, whatever another one approved.
pub(super) fn approval_of(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    cid: Uuid,
    with_token: bool,
    now: Timestamp,
) -> Result<Option<Approval>> {
    let Some(auth) = rec.auth.as_ref() else {
        return Ok(None);
    };
    let Some((c, State::Used)) = rec.challenge_at(cid, now) else {
        return Ok(None);
    };
    let Some(t) = c.transaction.as_ref() else {
        return Ok(None);
    };
    let hash = t.hash();
    if auth.transaction_hash.as_deref() != Some(hash.as_str()) {
        return Ok(None);
    }
    if !with_token {
        return Ok(Some(Approval {
            transaction_hash: hash,
            token: None,
        }));
    }
    let via = (!c.method().approves_in_own_app()).then(|| auth.via.clone());
    let claims = ApprovalClaims::new(
        Approved {
            issuer: &core.config().server.issuer,
            team: &team.id,
            customer_ref: rec.customer_ref.as_deref(),
            interaction_id: rec.id,
            challenge_id: cid,
            transaction: t,
            via,
            sca: wallet_sca(c),
        },
        auth.authenticated_at,
        approval_jti(|b| core.pepper().keyed_hash(JTI_PURPOSE, b), cid),
    );
    // Without `[approvals] signing_key` (removed since the challenge
    // started) the approval has no token: no payment goes through on it.
    let token = claims.sign(&core.config().approvals.keys);
    if token.is_none() {
        tracing::error!(
            team = %team.id,
            "an approval token could not be signed: [approvals] signing_key is gone"
        );
    }
    Ok(Some(Approval {
        transaction_hash: claims.txn.clone(),
        token,
    }))
}
