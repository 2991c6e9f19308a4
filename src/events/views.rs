//! What the events and the API show alike (docs/api.md#reading-a-challenge):
//! the API's names of the domain's enums, and the read of a challenge,
//! which `GET /v1/interactions/{id}/challenges/{cid}` answers and
//! `challenge.advanced` carries.
//!
//! The domain's types carry no wire format: each one the API shows has a
//! twin here with its JSON names and its OpenAPI schema (same name), and a
//! `From` from the domain's. A twin's names are the domain's `as_str`
//! (a test below holds every variant to it). An enum made by `every!`
//! whose variants a proof on a page adds (`ChallengeMethod`, `Method`) has
//! no twin: it is carried as the domain's, written by its `as_str`, its
//! schema's names made from its `ALL`, here
//! (docs/decisions/0870-a-proof-on-a-page-is-written-in-the-domain.md).
//! They sit with the events, a layer below the gateway, so that an
//! event's payload names the very type the API answers with.
use std::collections::BTreeMap;

use serde::Serialize;
use uuid::Uuid;

use crate::domain::challenge::{Challenge, ChallengeState as State, Page};
use crate::domain::delivery_status::DeliveryState;
use crate::domain::number_check::NumberCheck;
use crate::domain::transaction::Transaction;
use crate::domain::wallet_state::WalletResult;
use crate::domain::{
    assurance, bsuid, challenge, delivery_status, devices, interaction, network_auth,
};
use crate::time::Timestamp;

/// The API's twin of a domain enum `$m::$name` without data: the same
/// variants, named in snake case, and a `From` that matches every one (a
/// new variant in the domain does not compile until it is named here).
macro_rules! api_names {
    ($(#[$doc:meta])* $m:ident::$name:ident { $($(#[$vdoc:meta])* $v:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $v),+
        }

        impl From<$m::$name> for $name {
            fn from(d: $m::$name) -> Self {
                match d {
                    $($m::$name::$v => $name::$v),+
                }
            }
        }

        impl From<$name> for $m::$name {
            fn from(a: $name) -> Self {
                match a {
                    $($name::$v => $m::$name::$v),+
                }
            }
        }

        impl $name {
            /// Every variant with its domain twin, in declaration order.
            #[cfg(test)]
            fn every() -> Vec<($m::$name, $name)> {
                vec![$(($m::$name::$v, $name::$v)),+]
            }
        }
    };
}

/// The API's names of a domain enum made by `every!`, carried as it is,
/// with no twin: it is written by its `as_str`, and its schema's `enum`
/// is its `ALL`'s names, in order, so that a variant added in the domain
/// is named here without a line (a test holds the names to the twins').
macro_rules! api_names_of_all {
    ($ty:ty, $name:literal, $description:expr) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl utoipa::PartialSchema for $ty {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
                let description: Option<&str> = $description;
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some(<$ty>::ALL.map(<$ty>::as_str)))
                    .description(description)
                    .into()
            }
        }

        impl utoipa::ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

/// How an interaction was authenticated.
pub use crate::domain::interaction::Method;
api_names_of_all!(
    Method,
    "Method",
    Some("How an interaction was authenticated.")
);

api_names!(
    /// What names a WhatsApp conversation: the customer's number, or a
    /// business-scoped user id (docs/channels.md#business-scoped-user-ids).
    bsuid::ConversationKind {
        Number,
        Bsuid,
    }
);

api_names!(interaction::Status {
    Unauthenticated,
    Pending,
    Authenticated,
    Expired,
    Locked,
    Banned,
});

/// What a challenge proves, and how.
pub use crate::domain::challenge::ChallengeMethod;
api_names_of_all!(ChallengeMethod, "ChallengeMethod", None);

api_names!(
    /// What the mobile operator answered about a network challenge's link
    /// (docs/network-authentication.md).
    network_auth::NetworkResult {
        Verified,
        Mismatch,
        NotOnMobileNetwork,
        Error,
    }
);

api_names!(challenge::Delivery {
    Chat,
    Sms,
    Email,
    /// Read aloud by a phone call (docs/api.md#codes-read-by-a-voice-call).
    Voice,
    Agent,
    /// Shown to the customer by the login page (a binding code).
    LoginPage,
    /// The team's delivery ladder (docs/api.md#delivery-ladder).
    Ladder,
    /// The customer's own app (answers show null).
    App,
});

api_names!(
    /// A requirement the interaction does not meet, in the order of docs/api.md#assurance-for-one-action.
    assurance::Unmet {
        /// The status is not `authenticated`.
        Authenticated,
        MaxAge,
        Method,
        /// The authentication's `acr` (the identity provider's) is none of those asked.
        Acr,
        /// An OTP whose code went through a channel the intent's `otp_via` does not list.
        Via,
        /// A code to a phone number whose number check was not clean, under an intent's
        /// `number_check = "clean"` (docs/number-checks.md).
        NumberCheck,
        /// The authentication approved no transaction of the hash asked for
        /// (docs/api.md#approving-one-payment).
        Transaction,
    }
);

api_names!(
    /// Why an assertion needs a step-up OTP: the first of these that applies.
    devices::StepUpReason {
        Always,
        NewFingerprint,
        RegionChange,
    }
);

api_names!(
    /// How far a challenge's message got (docs/api.md#delivery-status).
    delivery_status::DeliveryStatus {
        Accepted,
        Sent,
        Failed,
        Delivered,
        Read,
    }
);

api_names!(
    /// Where a challenge stands (docs/api.md#reading-a-challenge).
    challenge::ChallengeState {
        Open,
        Used,
        Exhausted,
        Expired,
        Replaced,
        /// The customer refused it in their own app.
        Denied,
        /// It could not be put to the customer's app.
        Failed,
    }
);

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

/// A transaction approved (docs/api.md#the-approval-token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
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
    /// A proof made on a page (the right code typed there, a verified
    /// network answer, a verified presentation) waits for the binding code
    /// that page showed to be typed into the chat, and only that code
    /// answers it (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    /// Present for a challenge whose code is typed on the page, and for any
    /// while it is true; absent otherwise, so a chat challenge's read is
    /// what it always was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_code: Option<bool>,
}

/// What the mobile operator last answered about a network challenge's
/// link (docs/network-authentication.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NetworkView {
    /// Null before the first answer.
    pub result: Option<NetworkResult>,
    /// A verified answer in a conversation that is not the number's own
    /// SMS conversation waits for the code its page showed to be typed
    /// into the chat (docs/network-authentication.md#the-code-typed-into-the-chat).
    pub awaiting_code: bool,
    pub answered_at: Option<Timestamp>,
}

impl NetworkView {
    /// For challenge `c`: its last answer, when the network page is or
    /// was one of its pages (a network challenge, or a ladder that began
    /// with the network step).
    fn of(c: &Challenge) -> Option<Self> {
        c.went_by(Page::Network).then(|| NetworkView {
            result: c.network_answer().map(|a| a.result.into()),
            awaiting_code: c.awaits_code(),
            answered_at: c.network_answer().map(|a| a.answered_at),
        })
    }
}

impl ChallengeView {
    pub fn of(c: &Challenge, state: State) -> Self {
        let (delivery_status, delivery_error) = delivery_of(c.delivery_state.as_ref());
        let (transaction, transaction_hash) = TransactionObject::with_hash(c.transaction.as_ref());
        // Awaited only while it can still be answered.
        let awaiting_code = c.awaits_code() && state == State::Open;
        ChallengeView {
            challenge_id: c.id,
            method: c.method(),
            delivery: c.delivery.into(),
            channel: c.channel.clone(),
            expires_at: c.expires_at,
            attempts_remaining: c.attempts_remaining(),
            state: state.into(),
            delivery_status,
            delivery_error,
            number_check: c.number_check().map(NumberCheckView::of),
            transaction,
            transaction_hash,
            approval: None,
            entry: Entry::of(c.page_entry()),
            wallet: WalletView::of(c, false, (awaiting_code, state == State::Used)),
            network: NetworkView::of(c).map(|n| NetworkView { awaiting_code, ..n }),
            awaiting_code: (c.page_entry() || awaiting_code).then_some(awaiting_code),
        }
    }
}

/// A wallet challenge's credential and answer
/// (docs/wallet.md#results): claim names, never their values, but to a
/// bot key, `claims`: the asked claims as disclosed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct WalletView {
    /// The team's `[wallet] credentials` id presented, or before an
    /// answer the first asked.
    pub credential: String,
    /// `credential`'s format: `dc+sd-jwt` or `mso_mdoc`.
    pub format: &'static str,
    /// Every credential asked, any one of which the customer may present:
    /// in the order asked, or once one was presented, that one first.
    pub credentials: Vec<String>,
    /// Null until a presentation answered.
    pub result: Option<WalletResultView>,
    /// The issuer certificate's subject (RFC 4514), once verified that far.
    pub issuer: Option<String>,
    /// The asked claims that were disclosed and equal, by name.
    pub matched: Vec<String>,
    pub answered_at: Option<Timestamp>,
    /// A verified presentation waits for the binding code shown where the
    /// wallet's answer came back to be typed into the chat
    /// (docs/wallet.md#the-code-typed-into-the-chat).
    pub awaiting_code: bool,
    /// A registration of the customer's attestation for payments
    /// (`"register": true`): `true` once its binding code was typed and the
    /// attestation is registered (docs/wallet.md#registering-the-wallet-for-payments);
    /// absent for any other challenge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registered: Option<bool>,
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
    /// values only `for_bot`; `awaiting_code` as its challenge's read
    /// says, and whether it was `used` (its binding code typed).
    pub fn of(c: &Challenge, for_bot: bool, (awaiting_code, used): (bool, bool)) -> Option<Self> {
        let w = c.wallet()?;
        let answer = w.answer.as_ref();
        let registering = w.registration.as_ref().filter(|k| k.register);
        Some(WalletView {
            credential: w.credential.clone(),
            format: w.format.as_str(),
            credentials: w.credentials().into_iter().map(str::to_string).collect(),
            result: answer.map(|a| a.result.into()),
            issuer: answer.and_then(|a| a.issuer.clone()),
            matched: answer.map(|a| a.matched.clone()).unwrap_or_default(),
            answered_at: answer.map(|a| a.answered_at),
            awaiting_code,
            registered: registering.map(|k| used && k.thumbprint.is_some()),
            claims: answer.filter(|_| for_bot).map(|a| a.claims.clone()),
        })
    }
}

/// A transaction as the API writes it (docs/api.md#approving-one-payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Transaction)]
pub struct TransactionObject {
    /// 1 to 32 of `a-z` and `_`, such as `payment`.
    #[serde(rename = "type")]
    #[schema(pattern = "^[a-z_]{1,32}$")]
    pub kind: String,
    /// A decimal string, more than zero, with no more decimals than the
    /// currency has.
    #[schema(pattern = "^[0-9]{1,12}(\\.[0-9]{1,4})?$")]
    pub amount: String,
    /// An ISO 4217 alphabetic code.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// 1 to 70 characters: no control, format (bidi) or private-use
    /// characters, one script per word, and no word written wholly in
    /// letters that look Latin (`АСМЕ` in Cyrillic); nothing that reads as
    /// other than a name: no link (`://`, `:/`, `www.`), domain name
    /// (`evil.example`; initials such as `e.V.` pass), e-mail address, run
    /// of 7 or more digits, `!`, `?`, or `.` followed by a space and three
    /// or more words (`Dr. Smith` passes), see docs/payments.md#the-payee.
    #[schema(min_length = 1, max_length = 70)]
    pub payee: String,
    /// 1 to 35 such characters, by the payee's rules, a run of digits
    /// allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 35)]
    pub reference: Option<String>,
    /// The payee's account as the payment system knows it (an IBAN, a
    /// card acceptor id), without `://` or a leading `www.`; required for
    /// `method` `wallet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9./:-]{1,70}$")]
    pub payee_id: Option<String>,
}

impl TransactionObject {
    /// `t` and its hash, as a challenge carries them.
    pub fn with_hash(t: Option<&Transaction>) -> (Option<TransactionObject>, Option<String>) {
        (t.map(TransactionObject::from), t.map(Transaction::hash))
    }
}

impl From<&Transaction> for TransactionObject {
    fn from(t: &Transaction) -> Self {
        TransactionObject {
            kind: t.kind.clone(),
            amount: t.amount.clone(),
            currency: t.currency.clone(),
            payee: t.payee.clone(),
            reference: t.reference.clone(),
            payee_id: t.payee_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant's JSON name is its domain twin's `as_str`, and `ALL`
    /// (what the parsers and metrics walk) lists every variant.
    macro_rules! named_as_the_domain {
        ($($twin:ident),+) => {$(
            let every = $twin::every();
            for (d, t) in &every {
                assert_eq!($twin::from(*d), *t);
                let json = serde_json::to_string(t).unwrap();
                assert_eq!(json, format!("\"{}\"", d.as_str()), "{}", stringify!($twin));
            }
            let listed: Vec<_> = every.iter().map(|(d, _)| *d).collect();
            let all = <$twin as Named>::all();
            assert_eq!(listed, all, "{}::ALL", stringify!($twin));
        )+};
    }

    /// The domain's `ALL` of each twin.
    trait Named {
        type D;
        fn all() -> Vec<Self::D>;
    }

    macro_rules! named {
        ($($twin:ident: $m:ident),+) => {$(
            impl Named for $twin {
                type D = $m::$twin;
                fn all() -> Vec<$m::$twin> {
                    $m::$twin::ALL.to_vec()
                }
            }
        )+};
    }

    named!(
        Status: interaction,
        ConversationKind: bsuid,
        Delivery: challenge,
        Unmet: assurance,
        StepUpReason: devices,
        DeliveryStatus: delivery_status,
        ChallengeState: challenge,
        NetworkResult: network_auth
    );

    #[test]
    fn every_enum_is_named_as_the_domain_names_it() {
        named_as_the_domain!(
            Status,
            ConversationKind,
            Delivery,
            Unmet,
            StepUpReason,
            DeliveryStatus,
            ChallengeState,
            NetworkResult
        );
    }

    /// An enum the API carries as the domain's is written by its
    /// `as_str`, and its schema names every variant of `ALL`, in order.
    #[test]
    fn an_enum_carried_as_the_domain_s_is_named_by_as_str_from_all() {
        use utoipa::PartialSchema;
        fn names_of(
            schema: utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        ) -> Vec<String> {
            let json = serde_json::to_value(schema).unwrap();
            let names = json["enum"].as_array().cloned().unwrap_or_default();
            names
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        }
        let methods: Vec<String> = Method::ALL.map(|m| m.as_str().to_string()).to_vec();
        assert_eq!(names_of(Method::schema()), methods);
        for m in Method::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
        let methods: Vec<String> = ChallengeMethod::ALL
            .map(|m| m.as_str().to_string())
            .to_vec();
        assert_eq!(names_of(ChallengeMethod::schema()), methods);
        for m in ChallengeMethod::ALL {
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
        }
    }
}
