//! The answers about a challenge: the one a start gives
//! ([`StartedChallenge`]), and the read of one challenge
//! (docs/api.md#reading-a-challenge): where it stands and how far its
//! message got.
use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use crate::config::Team;
use crate::domain::challenge::{Challenge, ChallengeMethod as Method, ChallengeState as State};
use crate::domain::delivery_status::DeliveryState;
use crate::domain::interaction::InteractionRecord;
use crate::domain::number_check::NumberCheck;
use crate::domain::start_challenge::Started;
use crate::domain::transaction::Transaction;
use crate::domain::transaction::{approval_jti, ApprovalClaims, Approved};
use crate::domain::wallet_state::WalletResult;
use crate::error::{Error, Result};
use crate::events::types::TransactionObject;
use crate::gateway::view::{self, ChallengeMethod, ChallengeState, Delivery, DeliveryStatus};
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

/// Where a challenge's code or PIN is typed
/// (docs/api.md#codes-typed-on-the-gateways-page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// Into the conversation, and the bot verifies it.
    Chat,
    /// On the gateway's page `/c/{code}`, never through the chat.
    Page,
}

impl Entry {
    pub fn of(page_entry: bool) -> Self {
        if page_entry {
            Entry::Page
        } else {
            Entry::Chat
        }
    }
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
            method: started.method.into(),
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

/// What a number check found about the phone number a code went to
/// (docs/number-checks.md#the-challenges-number_check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NumberCheckView {
    /// Whether the SIM changed within `sim_swap_max_age`; null when the
    /// provider could not say.
    pub sim_swap: Option<bool>,
    /// Whether unconditional call forwarding is on (voice codes); null when
    /// not asked or the provider could not say.
    pub call_forwarding: Option<bool>,
    pub checked_at: Timestamp,
    /// `camara` or `twilio_lookup`.
    #[schema(example = "camara")]
    pub source: &'static str,
}

impl NumberCheckView {
    pub fn of(c: &NumberCheck) -> Self {
        NumberCheckView {
            sim_swap: c.sim_swap,
            call_forwarding: c.call_forwarding,
            checked_at: c.checked_at,
            source: c.source.as_str(),
        }
    }

    /// As an event carries it.
    pub fn to_event(c: Option<&NumberCheck>) -> Option<serde_json::Value> {
        c.and_then(|c| serde_json::to_value(Self::of(c)).ok())
    }
}

/// The pepper's purpose for approval tokens' `jti`.
const JTI_PURPOSE: &str = "approval-jti";

/// A transaction approved (docs/api.md#the-approval-token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Approval {
    /// The approved transaction's hash, as the challenge names it.
    pub transaction_hash: String,
    /// The approval token: a JWT (EdDSA, the gateway's `[approvals]`
    /// signing key, its public keys at `/.well-known/chatgate-approval-keys`),
    /// good for 5 minutes. Absent in an agent's read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Why the provider could not deliver a challenge's message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryErrorView {
    /// The provider's error code, as text (e.g. `"131047"`).
    pub code: String,
    /// The provider's title for it, or null when it gives none.
    pub title: Option<String>,
}

/// `delivery_status` and `delivery_error` of a challenge answer, from how
/// far its message got (`None`: nothing was sent, both null).
pub fn delivery_of(
    state: Option<&DeliveryState>,
) -> (Option<DeliveryStatus>, Option<DeliveryErrorView>) {
    let status = state.map(|s| s.status.into());
    let error = state
        .and_then(|s| s.error.as_ref())
        .map(|e| DeliveryErrorView {
            code: e.code.clone(),
            title: e.title.clone(),
        });
    (status, error)
}

/// `GET /v1/interactions/{id}/challenges/{cid}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChallengeView {
    pub challenge_id: Uuid,
    pub method: ChallengeMethod,
    pub delivery: Delivery,
    /// The channel its message went through; null when nothing was sent.
    pub channel: Option<String>,
    pub expires_at: Timestamp,
    pub attempts_remaining: u32,
    pub state: ChallengeState,
    /// Null when nothing was sent (`agent` delivery).
    pub delivery_status: Option<DeliveryStatus>,
    /// Null, or with `failed`, the provider's error.
    pub delivery_error: Option<DeliveryErrorView>,
    /// What the number check found; absent when none was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_check: Option<NumberCheckView>,
    /// The payment it is for (docs/api.md#approving-one-payment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<TransactionObject>,
    /// The base64url SHA-256 of the transaction's RFC 8785 canonical JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_hash: Option<String>,
    /// An approved `app` challenge's approval: with its token for a bot,
    /// without for an agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// A `network` challenge's last answer from the mobile operator
    /// (docs/network-authentication.md); absent for other methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkView>,
    /// A `wallet` challenge's credential and answer (docs/wallet.md#results);
    /// absent for other methods. Its `claims` only to a bot key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wallet: Option<WalletView>,
    /// Where its code or PIN is typed: `chat` or `page`.
    pub entry: Entry,
}

/// What the mobile operator last answered about a network challenge's
/// link (docs/network-authentication.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NetworkView {
    /// Null before the first answer.
    pub result: Option<view::NetworkResult>,
    /// A verified answer in a conversation that is not the number's own
    /// SMS conversation waits for the code its page showed to be typed
    /// into the chat (docs/network-authentication.md#the-code-typed-into-the-chat).
    pub awaiting_code: bool,
    pub answered_at: Option<Timestamp>,
}

impl NetworkView {
    /// For challenge `c`: its last answer, when it is a network challenge
    /// or a ladder that began with the network step.
    fn of(c: &Challenge) -> Option<Self> {
        use crate::domain::challenge::{ChallengeMethod, NETWORK_STEP};
        let network_step = c.ladder.as_ref().is_some_and(|l| {
            l.steps.first().map(String::as_str) == Some(NETWORK_STEP)
                && l.sent.first().is_some_and(|s| s.channel == NETWORK_STEP)
        });
        (c.method == ChallengeMethod::Network || network_step).then(|| NetworkView {
            result: c.network.map(|a| a.result.into()),
            awaiting_code: c.awaits_network_code(),
            answered_at: c.network.map(|a| a.answered_at),
        })
    }
}

impl ChallengeView {
    pub fn of(c: &Challenge, state: State) -> Self {
        let (delivery_status, delivery_error) = delivery_of(c.delivery_state.as_ref());
        let (transaction, transaction_hash) = TransactionObject::with_hash(c.transaction.as_ref());
        ChallengeView {
            challenge_id: c.id,
            method: c.method.into(),
            delivery: c.delivery.into(),
            channel: c.channel.clone(),
            expires_at: c.expires_at,
            attempts_remaining: c.attempts_remaining(),
            state: state.into(),
            delivery_status,
            delivery_error,
            number_check: c.number_check.as_ref().map(NumberCheckView::of),
            transaction,
            transaction_hash,
            approval: None,
            entry: Entry::of(c.page_entry),
            wallet: WalletView::of(c, false),
            // Awaited only while it can still be answered.
            network: NetworkView::of(c).map(|n| NetworkView {
                awaiting_code: n.awaiting_code && state == State::Open,
                ..n
            }),
        }
    }
}

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
        view.wallet = WalletView::of(c, true);
    }
    if c.method == Method::App {
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
    let via = (c.method != Method::App).then(|| auth.via.clone());
    let claims = ApprovalClaims::new(
        Approved {
            issuer: &core.config().server.issuer,
            team: &team.id,
            customer_ref: rec.customer_ref.as_deref(),
            interaction_id: rec.id,
            challenge_id: cid,
            transaction: t,
            via,
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

/// A wallet challenge's credential and answer
/// (docs/wallet.md#results): claim names, never their values, but to a
/// bot key, `claims`: the asked claims as disclosed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WalletView {
    /// The team's `[wallet] credentials` id asked for.
    pub credential: String,
    /// `dc+sd-jwt` or `mso_mdoc`.
    pub format: &'static str,
    /// Null until a presentation answered.
    pub result: Option<WalletResultView>,
    /// The issuer certificate's subject (RFC 4514), once verified that far.
    pub issuer: Option<String>,
    /// The asked claims that were disclosed and equal, by name.
    pub matched: Vec<String>,
    pub answered_at: Option<Timestamp>,
    /// To a bot key only: the asked claims as the credential disclosed
    /// them.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub claims: Option<BTreeMap<String, serde_json::Value>>,
}

/// What a presentation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WalletResultView {
    Verified,
    ClaimsMismatch,
    UntrustedIssuer,
    Revoked,
    InvalidPresentation,
}

impl From<WalletResult> for WalletResultView {
    fn from(r: WalletResult) -> Self {
        match r {
            WalletResult::Verified => WalletResultView::Verified,
            WalletResult::ClaimsMismatch => WalletResultView::ClaimsMismatch,
            WalletResult::UntrustedIssuer => WalletResultView::UntrustedIssuer,
            WalletResult::Revoked => WalletResultView::Revoked,
            WalletResult::InvalidPresentation => WalletResultView::InvalidPresentation,
        }
    }
}

impl WalletView {
    /// Challenge `c`'s, when it is a wallet challenge; the disclosed
    /// values only `for_bot`.
    pub fn of(c: &Challenge, for_bot: bool) -> Option<Self> {
        let w = c.wallet.as_ref()?;
        let answer = w.answer.as_ref();
        Some(WalletView {
            credential: w.credential.clone(),
            format: w.format.as_str(),
            result: answer.map(|a| a.result.into()),
            issuer: answer.and_then(|a| a.issuer.clone()),
            matched: answer.map(|a| a.matched.clone()).unwrap_or_default(),
            answered_at: answer.map(|a| a.answered_at),
            claims: answer.filter(|_| for_bot).map(|a| a.claims.clone()),
        })
    }
}
