//! The interaction as the store holds it: short member names, times as
//! unix milliseconds ([`crate::time::stored`]), empty members left out.
//! Every live interaction keeps one in the store and every request reads
//! it, so its size is the gateway's memory per conversation.
//!
//! The id is not in it: the record's key names it
//! ([`keys::interaction`](crate::store::keys::interaction)). What the store
//! keeps for its own bookkeeping (`iu`, until when what points to the
//! record lives; `dq`, the due time the due queue holds for it;
//! `companion`, the key of a named subject) is here and not in the
//! domain's [`InteractionRecord`].
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::challenge::{
    Challenge, ChallengeMethod, Delivery, Entry, OtpState, PastChallenge, PastOutcome, Proof, Stage,
};
use crate::domain::delivery_status::{DeliveryError, DeliveryState, DeliveryStatus};
use crate::domain::interaction::{
    Authentication, CallbackAnswer, Contact, InteractionRecord, Link, LinkUse, Method,
    PendingBinding, PendingStepUp, RequestedLocale, SignIn,
};
use crate::domain::ladder::{AdvanceReason, Ladder, SentStep};
use crate::domain::network_auth::{NetworkAnswer, NetworkResult};
use crate::domain::number_check::{Answer, Finding, NumberAnswer, NumberCheck, Source};
use crate::domain::transaction::Transaction;
use crate::domain::voice::{GatherId, VoiceCall};
use crate::time::{stored, Timestamp};

fn is_false(b: &bool) -> bool {
    !b
}

/// [`Method`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum StoredMethod {
    LoginLink,
    Oidc,
    PreChat,
    Otp,
    Pin,
    App,
    Network,
    Wallet,
}

/// Both ways between a domain enum and its stored twin, variant by variant.
macro_rules! twins {
    ($domain:ident, $stored:ident, $($v:ident),+) => {
        impl From<$domain> for $stored {
            fn from(d: $domain) -> Self {
                match d { $($domain::$v => $stored::$v),+ }
            }
        }
        impl From<$stored> for $domain {
            fn from(s: $stored) -> Self {
                match s { $($stored::$v => $domain::$v),+ }
            }
        }
    };
}

twins!(
    Method,
    StoredMethod,
    LoginLink,
    Oidc,
    PreChat,
    Otp,
    Pin,
    App,
    Network,
    Wallet
);

fn is_login_link(m: &StoredMethod) -> bool {
    *m == StoredMethod::LoginLink
}

fn login_link() -> StoredMethod {
    StoredMethod::LoginLink
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredChallengeMethod {
    Otp,
    Pin,
    Binding,
    App,
    Network,
    Wallet,
}

twins!(
    ChallengeMethod,
    StoredChallengeMethod,
    Otp,
    Pin,
    Binding,
    App,
    Network,
    Wallet
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredDeliveryStatus {
    Accepted,
    Sent,
    Failed,
    Delivered,
    Read,
}

twins!(
    DeliveryStatus,
    StoredDeliveryStatus,
    Accepted,
    Sent,
    Failed,
    Delivered,
    Read
);

/// A [`DeliveryState`]: `s` the status, `e` the provider's error (`c` its
/// code, `t` its title).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredDeliveryState {
    s: StoredDeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    e: Option<StoredDeliveryError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredDeliveryError {
    c: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
}

impl From<&DeliveryState> for StoredDeliveryState {
    fn from(d: &DeliveryState) -> Self {
        StoredDeliveryState {
            s: d.status.into(),
            e: d.error.as_ref().map(|e| StoredDeliveryError {
                c: e.code.clone(),
                t: e.title.clone(),
            }),
        }
    }
}

impl From<StoredDeliveryState> for DeliveryState {
    fn from(d: StoredDeliveryState) -> Self {
        DeliveryState {
            status: d.s.into(),
            error: d.e.map(|e| DeliveryError {
                code: e.c,
                title: e.t,
            }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredDelivery {
    Chat,
    Sms,
    Email,
    Voice,
    Agent,
    LoginPage,
    Ladder,
    App,
}

twins!(
    Delivery,
    StoredDelivery,
    Chat,
    Sms,
    Email,
    Voice,
    Agent,
    LoginPage,
    Ladder,
    App
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredOutcome {
    Succeeded,
    Replaced,
    Denied,
    Failed,
    Expired,
}

twins!(
    PastOutcome,
    StoredOutcome,
    Succeeded,
    Replaced,
    Denied,
    Failed,
    Expired
);

/// An [`InteractionRecord`] as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredInteraction {
    t: String,
    ch: String,
    cv: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ph: Option<String>,
    #[serde(default, skip_serializing_if = "StoredContact::is_empty")]
    ct: StoredContact,
    #[serde(with = "stored")]
    c: Timestamp,
    #[serde(with = "stored")]
    la: Timestamp,
    #[serde(with = "stored")]
    lw: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<StoredAuth>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    l: Vec<StoredLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<StoredChallenge>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pq: Vec<StoredPast>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    su: Option<StoredStepUp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<StoredBinding>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    xd: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    xg: Option<Timestamp>,
    /// Until when the store keeps what points here (the conversation key,
    /// the entries in the team's listing and in its customers' indexes):
    /// set a little past the record's own end when a write extends them,
    /// so the writes before it need not (see `interaction_ops`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    pub(super) iu: Option<Timestamp>,
    /// The due time the team's due queue holds for it (its entry `x:<id>`),
    /// as the write of it left the queue; none when nothing is due, and in
    /// an earlier version's record (see `write_interaction`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    pub(super) dq: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dv: Option<String>,
    /// The requested language's tag; `rla`: asked by an assertion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rl: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rla: bool,
    /// A number check refused its conversation's number when it was
    /// created: the remembered authentication is not shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    nr: bool,
    /// The key of the subject it names, when that is not its own: last, as
    /// the store's `Op::Put` names it too. The reader derives it from `cr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) companion: Option<String>,
}

impl From<&InteractionRecord> for StoredInteraction {
    fn from(r: &InteractionRecord) -> Self {
        StoredInteraction {
            t: r.team.clone(),
            ch: r.channel.clone(),
            cv: r.conversation_id.clone(),
            cr: r.customer_ref.clone(),
            ph: r.session_pin_hash.clone(),
            ct: StoredContact::from(&r.contact),
            c: r.created_at,
            la: r.last_activity_at,
            lw: r.last_write_at,
            a: r.auth.as_ref().map(StoredAuth::from),
            l: r.links.iter().map(StoredLink::from).collect(),
            q: r.challenge.as_ref().map(StoredChallenge::from),
            pq: r.past_challenges.iter().map(StoredPast::from).collect(),
            su: r.step_up.as_ref().map(StoredStepUp::from),
            b: r.binding.as_ref().map(StoredBinding::from),
            xd: r.expiry_announced,
            xg: r.expiring_announced,
            iu: None,
            dq: None,
            dv: r.device.clone(),
            rl: r.requested_locale.as_ref().map(|l| l.tag.clone()),
            rla: r.requested_locale.as_ref().is_some_and(|l| l.by_assertion),
            nr: r.recognition_refused,
            companion: None,
        }
    }
}

impl StoredInteraction {
    /// The interaction under the key that names `id`; `Err` for a used
    /// link whose answer lacks what its kind needs.
    pub(super) fn into_record(self, id: Uuid) -> Result<InteractionRecord, &'static str> {
        let links = self.l.into_iter().map(Link::try_from);
        Ok(InteractionRecord {
            id,
            team: self.t,
            channel: self.ch,
            conversation_id: self.cv,
            customer_ref: self.cr,
            session_pin_hash: self.ph,
            contact: self.ct.into(),
            created_at: self.c,
            last_activity_at: self.la,
            last_write_at: self.lw,
            auth: self.a.map(Into::into),
            links: links.collect::<Result<_, _>>()?,
            challenge: self.q.map(Challenge::try_from).transpose()?,
            past_challenges: self
                .pq
                .into_iter()
                .map(PastChallenge::try_from)
                .collect::<Result<_, _>>()?,
            step_up: self.su.map(Into::into),
            binding: self.b.map(Into::into),
            expiry_announced: self.xd,
            expiring_announced: self.xg,
            device: self.dv,
            requested_locale: self.rl.map(|tag| RequestedLocale {
                tag,
                by_assertion: self.rla,
            }),
            recognition_refused: self.nr,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
}

impl StoredContact {
    fn is_empty(&self) -> bool {
        self.phone.is_none() && self.email.is_none()
    }
}

impl From<&Contact> for StoredContact {
    fn from(c: &Contact) -> Self {
        StoredContact {
            phone: c.phone.clone(),
            email: c.email.clone(),
        }
    }
}

/// A [`Contact`] as stored forms write it, for a stored form beside the
/// interaction's that carries one (an outbox notice's):
/// `#[serde(with = "records::contact")]`.
pub mod contact {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{Contact, StoredContact};

    pub fn serialize<S: Serializer>(c: &Contact, s: S) -> Result<S::Ok, S::Error> {
        StoredContact::from(c).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Contact, D::Error> {
        StoredContact::deserialize(d).map(Contact::from)
    }
}

impl From<StoredContact> for Contact {
    fn from(c: StoredContact) -> Self {
        Contact {
            phone: c.phone,
            email: c.email,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredAuth {
    m: StoredMethod,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(with = "stored")]
    e: Timestamp,
    cu: BTreeMap<String, String>,
    /// The channels the proving message went through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    v: Vec<String>,
    /// What the proving code's number check found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nc: Option<StoredNumberCheck>,
    /// The hash of the transaction it approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tx: Option<String>,
    /// The identity provider's `acr` and `amr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amr: Option<Vec<String>>,
}

impl From<&Authentication> for StoredAuth {
    fn from(a: &Authentication) -> Self {
        StoredAuth {
            m: a.method.into(),
            at: a.authenticated_at,
            e: a.expires_at,
            cu: a.customer.clone(),
            v: a.via.clone(),
            nc: a.number_check.as_ref().map(Into::into),
            tx: a.transaction_hash.clone(),
            acr: a.sign_in.acr.clone(),
            amr: a.sign_in.amr.clone(),
        }
    }
}

impl From<StoredAuth> for Authentication {
    fn from(a: StoredAuth) -> Self {
        Authentication {
            method: a.m.into(),
            authenticated_at: a.at,
            expires_at: a.e,
            customer: a.cu,
            via: a.v,
            number_check: a.nc.map(Into::into),
            transaction_hash: a.tx,
            sign_in: SignIn {
                acr: a.acr,
                amr: a.amr,
            },
        }
    }
}

/// A [`Link`]: `u` only where no `ub` implies it (a link a callback used
/// is used).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredLink {
    id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    e: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "is_false")]
    u: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ub: Option<StoredLinkUse>,
    /// The channel that delivered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dl: Option<String>,
}

impl From<&Link> for StoredLink {
    fn from(l: &Link) -> Self {
        StoredLink {
            id: l.id,
            e: l.expires_at,
            u: l.used && l.used_by.is_none(),
            ub: l.used_by.as_ref().map(StoredLinkUse::from),
            dl: l.delivered_on.clone(),
        }
    }
}

impl TryFrom<StoredLink> for Link {
    type Error = &'static str;

    fn try_from(l: StoredLink) -> Result<Self, Self::Error> {
        Ok(Link {
            id: l.id,
            expires_at: l.e,
            used: l.u || l.ub.is_some(),
            used_by: l.ub.map(TryInto::try_into).transpose()?,
            delivered_on: l.dl,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredLinkUse {
    w: String,
    a: StoredAnswer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bd: Option<String>,
}

impl From<&LinkUse> for StoredLinkUse {
    fn from(u: &LinkUse) -> Self {
        StoredLinkUse {
            w: u.webhook_id.clone(),
            a: u.answer.into(),
            bd: u.body.clone(),
        }
    }
}

impl TryFrom<StoredLinkUse> for LinkUse {
    type Error = &'static str;

    fn try_from(u: StoredLinkUse) -> Result<Self, Self::Error> {
        Ok(LinkUse {
            webhook_id: u.w,
            answer: u.a.try_into()?,
            body: u.bd,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum AnswerKind {
    Authenticated,
    Bound,
    NotAuthenticated,
    Locked,
    Banned,
    CustomerMismatch,
}

/// A [`CallbackAnswer`]: its kind `k` and the members that kind has, one
/// flat object (`{"k":"bound","c":…,"e":…}`). Read as one struct, not an
/// internally tagged enum, which serde reads by buffering the object first
/// (every used link of a record keeps one, every write reads them all). A
/// kind without the members it needs is a corrupt record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredAnswer {
    k: AnswerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    e: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    u: Option<Timestamp>,
}

impl From<CallbackAnswer> for StoredAnswer {
    fn from(a: CallbackAnswer) -> Self {
        let (k, c, e, u) = match a {
            CallbackAnswer::Authenticated { expires_at } => {
                (AnswerKind::Authenticated, None, expires_at, None)
            }
            CallbackAnswer::Bound {
                challenge_id,
                expires_at,
            } => (
                AnswerKind::Bound,
                Some(challenge_id),
                Some(expires_at),
                None,
            ),
            CallbackAnswer::NotAuthenticated => (AnswerKind::NotAuthenticated, None, None, None),
            CallbackAnswer::Locked { until } => (AnswerKind::Locked, None, None, Some(until)),
            CallbackAnswer::Banned => (AnswerKind::Banned, None, None, None),
            CallbackAnswer::CustomerMismatch => (AnswerKind::CustomerMismatch, None, None, None),
        };
        StoredAnswer { k, c, e, u }
    }
}

impl TryFrom<StoredAnswer> for CallbackAnswer {
    type Error = &'static str;

    fn try_from(a: StoredAnswer) -> Result<Self, Self::Error> {
        Ok(match a.k {
            AnswerKind::Authenticated => CallbackAnswer::Authenticated { expires_at: a.e },
            AnswerKind::Bound => match (a.c, a.e) {
                (Some(challenge_id), Some(expires_at)) => CallbackAnswer::Bound {
                    challenge_id,
                    expires_at,
                },
                _ => return Err("a bound answer without its challenge or end"),
            },
            AnswerKind::NotAuthenticated => CallbackAnswer::NotAuthenticated,
            AnswerKind::Locked => CallbackAnswer::Locked {
                until: a.u.ok_or("a locked answer without its end")?,
            },
            AnswerKind::Banned => CallbackAnswer::Banned,
            AnswerKind::CustomerMismatch => CallbackAnswer::CustomerMismatch,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredStepUp {
    cu: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    #[serde(with = "stored")]
    u: Timestamp,
}

impl From<&PendingStepUp> for StoredStepUp {
    fn from(p: &PendingStepUp) -> Self {
        StoredStepUp {
            cu: p.customer.clone(),
            f: p.fingerprint.clone(),
            r: p.region.clone(),
            u: p.until,
        }
    }
}

impl From<StoredStepUp> for PendingStepUp {
    fn from(p: StoredStepUp) -> Self {
        PendingStepUp {
            customer: p.cu,
            fingerprint: p.f,
            region: p.r,
            until: p.u,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredBinding {
    c: Uuid,
    cu: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    at: Option<Timestamp>,
    #[serde(default = "login_link", skip_serializing_if = "is_login_link")]
    m: StoredMethod,
    /// The channel that delivered the login's link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    v: Vec<String>,
    /// The identity provider's `acr` and `amr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amr: Option<Vec<String>>,
}

impl From<&PendingBinding> for StoredBinding {
    fn from(b: &PendingBinding) -> Self {
        StoredBinding {
            c: b.challenge_id,
            cu: b.customer.clone(),
            at: b.proven_at,
            m: b.method.into(),
            v: b.via.clone(),
            acr: b.sign_in.acr.clone(),
            amr: b.sign_in.amr.clone(),
        }
    }
}

impl From<StoredBinding> for PendingBinding {
    fn from(b: StoredBinding) -> Self {
        PendingBinding {
            challenge_id: b.c,
            customer: b.cu,
            proven_at: b.at,
            method: b.m.into(),
            via: b.v,
            sign_in: SignIn {
                acr: b.acr,
                amr: b.amr,
            },
        }
    }
}

/// A [`Challenge`]: a keyed hash and a sealed copy, never a code or PIN.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredChallenge {
    id: Uuid,
    m: StoredChallengeMethod,
    d: StoredDelivery,
    h: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(with = "stored")]
    e: Timestamp,
    n: u32,
    mx: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    su: bool,
    /// The channel its message went through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ds: Option<StoredDeliveryState>,
    /// Its delivery ladder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    l: Option<StoredLadder>,
    /// What the number check found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nc: Option<StoredNumberCheck>,
    /// The transaction it approves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<StoredTransaction>,
    /// The call that reads its code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    vc: Option<StoredCall>,
    /// A network challenge's last answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nv: Option<StoredNetworkAnswer>,
    /// The keyed hash of the code a verified network answer's page
    /// showed, while it is awaited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nh: Option<String>,
    /// Its code is typed on the gateway's page.
    #[serde(default, skip_serializing_if = "is_false")]
    pe: bool,
    /// A wallet challenge's own state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<super::wallet::StoredWallet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredNetworkResult {
    Verified,
    Mismatch,
    NotOnMobileNetwork,
    Error,
}

twins!(
    NetworkResult,
    StoredNetworkResult,
    Verified,
    Mismatch,
    NotOnMobileNetwork,
    Error
);

/// A [`NetworkAnswer`]: `r` the result, `at` when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StoredNetworkAnswer {
    r: StoredNetworkResult,
    #[serde(with = "stored")]
    at: Timestamp,
}

impl From<&NetworkAnswer> for StoredNetworkAnswer {
    fn from(a: &NetworkAnswer) -> Self {
        StoredNetworkAnswer {
            r: a.result.into(),
            at: a.answered_at,
        }
    }
}

impl From<StoredNetworkAnswer> for NetworkAnswer {
    fn from(a: StoredNetworkAnswer) -> Self {
        NetworkAnswer {
            result: a.r.into(),
            answered_at: a.at,
        }
    }
}

/// A [`VoiceCall`]: its channel, its gather id and the version of its
/// gather record (`{team}:vg:`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredCall {
    ch: String,
    g: String,
    v: u64,
}

impl From<&VoiceCall> for StoredCall {
    fn from(c: &VoiceCall) -> Self {
        StoredCall {
            ch: c.channel.clone(),
            g: c.gather.as_str().to_string(),
            v: c.version,
        }
    }
}

impl StoredCall {
    /// The call, when its gather id reads as one (else none is kept).
    fn call(self) -> Option<VoiceCall> {
        Some(VoiceCall {
            gather: GatherId::parse(&self.g)?,
            channel: self.ch,
            version: self.v,
        })
    }
}

/// A [`NumberCheck`]: each answer (`None`: not asked or unknown), whether
/// forwarding was asked, when, and who answered (its provider kind's
/// stored tag, `number_checks::ProviderInfo::stored`: `c` CAMARA, `t`
/// Twilio; a tag no kind has is no record of today's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredNumberCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<bool>,
    #[serde(default, skip_serializing_if = "is_false")]
    fa: bool,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(with = "source_tag")]
    src: Source,
}

/// A [`Source`] as its kind's one-character stored tag, read back only
/// as a kind that has it.
mod source_tag {
    use serde::{de, Deserialize, Deserializer, Serializer};

    use crate::domain::number_check::Source;
    use crate::number_checks::ProviderConfig;

    pub fn serialize<S: Serializer>(source: &Source, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_char(ProviderConfig::info_of(*source).stored)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
        let tag = char::deserialize(d)?;
        ProviderConfig::stored(tag)
            .ok_or_else(|| de::Error::custom("a number check's source no provider kind has"))
    }
}

impl From<&NumberCheck> for StoredNumberCheck {
    fn from(n: &NumberCheck) -> Self {
        StoredNumberCheck {
            s: n.sim_swap,
            f: n.call_forwarding,
            fa: n.forwarding_asked,
            at: n.checked_at,
            src: n.source,
        }
    }
}

/// A [`Transaction`]: its members as the request gave them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredTransaction {
    t: String,
    a: String,
    c: String,
    p: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// `payee_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pi: Option<String>,
}

impl From<&Transaction> for StoredTransaction {
    fn from(t: &Transaction) -> Self {
        StoredTransaction {
            t: t.kind.clone(),
            a: t.amount.clone(),
            c: t.currency.clone(),
            p: t.payee.clone(),
            r: t.reference.clone(),
            pi: t.payee_id.clone(),
        }
    }
}

impl From<StoredNumberCheck> for NumberCheck {
    fn from(n: StoredNumberCheck) -> Self {
        NumberCheck {
            sim_swap: n.s,
            call_forwarding: n.f,
            forwarding_asked: n.fa,
            checked_at: n.at,
            source: n.src,
        }
    }
}

impl From<StoredTransaction> for Transaction {
    fn from(t: StoredTransaction) -> Self {
        Transaction {
            kind: t.t,
            amount: t.a,
            currency: t.c,
            payee: t.p,
            reference: t.r,
            payee_id: t.pi,
        }
    }
}

/// A [`Ladder`]: its steps, where the code went, the code sealed, what
/// the number checks answered about its numbers.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredLadder {
    st: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    se: Vec<StoredSentStep>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    s: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    na: Vec<StoredNumberAnswer>,
}

/// A [`NumberAnswer`]: the number, each question's finding (`f` absent:
/// forwarding not asked), and when the provider answered.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredNumberAnswer {
    n: String,
    s: StoredFinding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<StoredFinding>,
    #[serde(with = "stored")]
    at: Timestamp,
}

/// A [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredFinding {
    Yes,
    No,
    Unknown,
    Error,
}

twins!(Finding, StoredFinding, Yes, No, Unknown, Error);

impl From<&NumberAnswer> for StoredNumberAnswer {
    fn from(a: &NumberAnswer) -> Self {
        StoredNumberAnswer {
            n: a.number.clone(),
            s: a.answer.sim_swap.into(),
            f: a.answer.call_forwarding.map(Into::into),
            at: a.answer.at,
        }
    }
}

impl From<StoredNumberAnswer> for NumberAnswer {
    fn from(a: StoredNumberAnswer) -> Self {
        NumberAnswer {
            number: a.n,
            answer: Answer {
                sim_swap: a.s.into(),
                call_forwarding: a.f.map(Into::into),
                at: a.at,
            },
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSentStep {
    i: usize,
    ch: String,
    to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    #[serde(with = "stored")]
    at: Timestamp,
    /// How far its message had got when the ladder moved past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ls: Option<StoredDeliveryStatus>,
    /// Which send of its message is under way (0, the default: none).
    #[serde(default, skip_serializing_if = "is_zero")]
    f: u8,
    /// Why the ladder moved to it (absent: the first step, or a step
    /// recorded before moves kept their reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<StoredAdvanceReason>,
}

/// An [`AdvanceReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredAdvanceReason {
    Failed,
    Timeout,
    Requested,
    NumberMismatch,
    NotOnMobileNetwork,
}

twins!(
    AdvanceReason,
    StoredAdvanceReason,
    Failed,
    Timeout,
    Requested,
    NumberMismatch,
    NotOnMobileNetwork
);

fn is_zero(n: &u8) -> bool {
    *n == 0
}

impl From<&Ladder> for StoredLadder {
    fn from(l: &Ladder) -> Self {
        StoredLadder {
            st: l.steps.clone(),
            se: l
                .sent
                .iter()
                .map(|s| StoredSentStep {
                    i: s.index,
                    ch: s.channel.clone(),
                    to: s.destination.clone(),
                    m: s.message_id.clone(),
                    at: s.sent_at,
                    ls: s.left_at.map(Into::into),
                    f: s.in_flight,
                    r: s.reason.map(Into::into),
                })
                .collect(),
            s: l.sealed_code.clone(),
            na: l.answers.iter().map(Into::into).collect(),
        }
    }
}

impl From<StoredLadder> for Ladder {
    fn from(l: StoredLadder) -> Self {
        Ladder {
            steps: l.st,
            sent: l
                .se
                .into_iter()
                .map(|s| SentStep {
                    index: s.i,
                    channel: s.ch,
                    destination: s.to,
                    message_id: s.m,
                    sent_at: s.at,
                    left_at: s.ls.map(Into::into),
                    in_flight: s.f,
                    reason: s.r.map(Into::into),
                })
                .collect(),
            sealed_code: l.s,
            answers: l.na.into_iter().map(Into::into).collect(),
        }
    }
}

/// `Debug` hides the hash and the sealed code, as [`Challenge`]'s does.
impl std::fmt::Debug for StoredChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match Challenge::try_from(self.clone()) {
            Ok(c) => std::fmt::Debug::fmt(&c, f),
            Err(why) => f.write_str(why),
        }
    }
}

impl From<&Challenge> for StoredChallenge {
    fn from(c: &Challenge) -> Self {
        let ProofMembers {
            pe,
            nv,
            w,
            l,
            nc,
            vc,
        } = proof_members(&c.proof);
        StoredChallenge {
            id: c.id,
            m: c.method().into(),
            d: c.delivery.into(),
            h: c.code_hash.clone(),
            s: c.sealed_code.clone(),
            e: c.expires_at,
            n: c.attempts_used,
            mx: c.max_attempts,
            su: c.step_up,
            ch: c.channel.clone(),
            ds: c.delivery_state.as_ref().map(Into::into),
            l,
            nc,
            t: c.transaction.as_ref().map(Into::into),
            vc,
            nv,
            nh: c.stage.awaited().map(str::to_string),
            pe,
            w,
        }
    }
}

/// The flat members that hold a proof's own state.
#[derive(Default)]
struct ProofMembers {
    /// A code or PIN typed on the page.
    pe: bool,
    /// A code's (its ladder's network step) or a network challenge's
    /// answer from the operator.
    nv: Option<StoredNetworkAnswer>,
    /// A wallet's state.
    w: Option<super::wallet::StoredWallet>,
    /// A code's ladder.
    l: Option<StoredLadder>,
    /// A code's or a network challenge's number check.
    nc: Option<StoredNumberCheck>,
    /// The call that reads a code.
    vc: Option<StoredCall>,
}

/// The flat members that hold `proof`'s own state, as [`stored_proof`]
/// reads them back: `pe` for a code or PIN typed on the page, `nv` for a
/// code's (its ladder's network step) or a network challenge's answer,
/// `nc` for a code's or a network challenge's number check, `l` and `vc`
/// for a code's ladder and call, `w` for a wallet's. A `match` naming
/// every variant, so that a way of proving added decides what it keeps
/// before it builds.
fn proof_members(proof: &Proof) -> ProofMembers {
    let page = |entry: &Entry| *entry == Entry::Page;
    match proof {
        Proof::Otp(o) => ProofMembers {
            pe: page(&o.entry),
            nv: o.network.as_ref().map(Into::into),
            l: o.ladder.as_ref().map(Into::into),
            nc: o.number_check.as_ref().map(Into::into),
            vc: o.call.as_ref().map(Into::into),
            w: None,
        },
        Proof::Pin { entry } => ProofMembers {
            pe: page(entry),
            ..ProofMembers::default()
        },
        Proof::Binding | Proof::App => ProofMembers::default(),
        Proof::Network {
            answer,
            number_check,
        } => ProofMembers {
            nv: answer.as_ref().map(Into::into),
            nc: number_check.as_ref().map(Into::into),
            ..ProofMembers::default()
        },
        Proof::Wallet(w) => ProofMembers {
            w: Some(w.as_ref().into()),
            ..ProofMembers::default()
        },
    }
}

/// The flat stored form's members as the one proof they hold: its
/// method's variant, with the members that variant keeps (`pe` for a code
/// or PIN, `nv` and `nc` for a code or a network challenge, `l` and `vc`
/// for a code, `w` for a wallet's); the others are never written beside
/// it. `Err` for a wallet challenge without its state, which no version
/// writes.
fn stored_proof(c: &mut StoredChallenge) -> Result<Proof, &'static str> {
    let entry = Entry::of(c.pe);
    let network = c.nv.take().map(Into::into);
    let number_check = c.nc.take().map(Into::into);
    Ok(match ChallengeMethod::from(c.m) {
        ChallengeMethod::Otp => Proof::Otp(OtpState {
            entry,
            network,
            ladder: c.l.take().map(Into::into),
            number_check,
            call: c.vc.take().and_then(StoredCall::call),
        }),
        ChallengeMethod::Pin => Proof::Pin { entry },
        ChallengeMethod::Binding => Proof::Binding,
        ChallengeMethod::App => Proof::App,
        ChallengeMethod::Network => Proof::Network {
            answer: network,
            number_check,
        },
        ChallengeMethod::Wallet => {
            let w = c.w.take().ok_or("a wallet challenge without its state")?;
            Proof::Wallet(Box::new(w.into()))
        }
    })
}

impl TryFrom<StoredChallenge> for Challenge {
    type Error = &'static str;
    fn try_from(mut c: StoredChallenge) -> Result<Self, &'static str> {
        let proof = stored_proof(&mut c)?;
        Ok(Challenge {
            id: c.id,
            proof,
            delivery: c.d.into(),
            code_hash: c.h,
            sealed_code: c.s,
            expires_at: c.e,
            attempts_used: c.n,
            max_attempts: c.mx,
            step_up: c.su,
            channel: c.ch,
            delivery_state: c.ds.map(Into::into),
            transaction: c.t.map(Into::into),
            stage: match c.nh {
                Some(hash) => Stage::AwaitingCode { hash },
                None => Stage::Open,
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredPast {
    id: Uuid,
    o: StoredOutcome,
    /// The challenge as it ended (no hash: `h` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<StoredChallenge>,
}

impl From<&PastChallenge> for StoredPast {
    fn from(p: &PastChallenge) -> Self {
        StoredPast {
            id: p.id,
            o: p.outcome.into(),
            c: p.ended.as_ref().map(StoredChallenge::from),
        }
    }
}

impl TryFrom<StoredPast> for PastChallenge {
    type Error = &'static str;
    fn try_from(p: StoredPast) -> Result<Self, &'static str> {
        Ok(PastChallenge {
            id: p.id,
            outcome: p.o.into(),
            ended: p.c.map(Challenge::try_from).transpose()?,
        })
    }
}
