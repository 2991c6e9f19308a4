//! OTP and session-PIN challenges (docs/api.md#challenges-otp-and-session-pin): the stored state of one
//! challenge and its rules.
//!
//! Opening one on an interaction, answering it and an agent's reveal are
//! `domain::attempts`. Lock and ban checks and failure counting belong to
//! the subject (`domain::subject`); the caller applies them around
//! `attempts::attempt`. What it proves and how is its [`Proof`]
//! (`proof.rs`), the one type the method, the page and what a success
//! authenticates as are read from.
//!
//! Every `match` over an enum here names each variant: a wildcard arm
//! would let a new method, proof or page slip past a rule unasked.
#![deny(clippy::wildcard_enum_match_arm)]
use std::fmt;

use uuid::Uuid;

use super::delivery_status::{DeliveryState, DeliveryStatus};
use super::number_check::{Answer, NumberAnswer};
use super::otp::{self, OtpCode};
use super::pin;
use super::reveal;
use super::secrets::Pepper;
use super::transaction::Transaction;
use crate::domain::settings::{OtpSettings, PinSettings};
use crate::error::Error;
use crate::time::Timestamp;

pub mod proof;

pub use proof::{
    ChallengeMethod, Entry, LinkMessage, NumberChecked, OtpState, Page, PageEntryLink, Proof,
    Section, Sends, Stage, Typed,
};

/// How many finished challenges an interaction remembers (oldest forgotten
/// first; a forgotten id is answered `not_found`).
pub const MAX_PAST_CHALLENGES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Chat,
    Sms,
    Email,
    /// Read aloud by a phone call on the team's `voice_channel`
    /// (docs/api.md#codes-read-by-a-voice-call).
    Voice,
    Agent,
    /// Shown to the customer by the login page (a binding code).
    LoginPage,
    /// The team's delivery ladder: the same code on `otp.ladder`'s steps
    /// in turn (docs/api.md#delivery-ladder).
    Ladder,
    /// The customer's own app, through the team's identity provider.
    App,
}

impl Delivery {
    pub const ALL: [Delivery; 8] = [
        Delivery::Chat,
        Delivery::Sms,
        Delivery::Email,
        Delivery::Voice,
        Delivery::Agent,
        Delivery::LoginPage,
        Delivery::Ladder,
        Delivery::App,
    ];
    /// What a caller may ask for (`login_page` is a binding's).
    pub const REQUESTABLE: [Delivery; 6] = [
        Delivery::Chat,
        Delivery::Sms,
        Delivery::Email,
        Delivery::Voice,
        Delivery::Agent,
        Delivery::Ladder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Chat => "chat",
            Delivery::Sms => "sms",
            Delivery::Email => "email",
            Delivery::Voice => "voice",
            Delivery::Agent => "agent",
            Delivery::LoginPage => "login_page",
            Delivery::Ladder => "ladder",
            Delivery::App => "app",
        }
    }
}

/// The one of `names` whose `as_str` is `s`.
pub fn named<T: Copy>(names: &[T], as_str: fn(T) -> &'static str, s: &str) -> Option<T> {
    names.iter().copied().find(|n| as_str(*n) == s)
}

/// `a, b or c`, for a message naming what is allowed: each of `names`
/// as `name` spells it.
pub fn one_of<T: Copy, S: AsRef<str>>(names: &[T], name: impl Fn(T) -> S) -> String {
    let names: Vec<S> = names.iter().map(|n| name(*n)).collect();
    let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// The open (or last) challenge of an interaction. Holds no code or PIN, only
/// a keyed hash and, for agent reveal, an AEAD-sealed copy of the OTP;
/// `Debug` hides even those.
#[derive(Clone, PartialEq, Eq)]
pub struct Challenge {
    pub id: Uuid,
    /// What it proves and how, with its own state: its method, its page
    /// and what a success authenticates as are read from it.
    pub proof: Proof,
    pub delivery: Delivery,
    /// Keyed hash of the code (OTP) or of the session PIN.
    pub code_hash: String,
    /// The OTP sealed for agent reveal (AEAD), when the team allows reveal.
    pub sealed_code: Option<String>,
    pub expires_at: Timestamp,
    pub attempts_used: u32,
    pub max_attempts: u32,
    /// Succeeding authenticates a pending pre-chat step-up.
    pub step_up: bool,
    /// The channel its message went through (`None`: nothing was sent).
    pub channel: Option<String>,
    /// How far its message got (`None`: nothing was sent); on a ladder,
    /// the current step's.
    pub delivery_state: Option<DeliveryState>,
    /// The payment it approves (docs/api.md#approving-one-payment).
    pub transaction: Option<Transaction>,
    /// Open, or a proof made on a page awaiting its binding code
    /// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    pub stage: Stage,
}

impl Challenge {
    /// A new OTP challenge for `code`, open from `now` for `otp.ttl`. The code
    /// is kept only as its keyed hash (bound to `id`) and, when
    /// `seal_for_reveal`, sealed for agent reveal (bound to `id`).
    /// `step_up`: succeeding completes the interaction's pending pre-chat
    /// step-up.
    #[allow(clippy::too_many_arguments)]
    pub fn new_otp(
        id: Uuid,
        delivery: Delivery,
        code: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        seal_for_reveal: bool,
        step_up: bool,
        now: Timestamp,
    ) -> Result<Challenge, Error> {
        let sealed_code = if seal_for_reveal {
            Some(reveal::seal(code, id, pepper)?)
        } else {
            None
        };
        Ok(Challenge {
            id,
            proof: Proof::otp(Entry::Chat),
            delivery,
            code_hash: otp::hash(pepper, id, code),
            sealed_code,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: otp.max_attempts,
            step_up,
            channel: None,
            delivery_state: None,
            transaction: None,
            stage: Stage::Open,
        })
    }

    /// A login-binding challenge for `code` (docs/api.md#the-login-callback): drawn and kept
    /// like an OTP (`otp.length`, `otp.ttl`, `otp.max_attempts`, a keyed
    /// hash bound to `id`), shown by the login page, typed into the chat.
    pub fn new_binding(
        id: Uuid,
        code: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            proof: Proof::Binding,
            delivery: Delivery::LoginPage,
            code_hash: otp::hash(pepper, id, code),
            sealed_code: None,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: otp.max_attempts,
            step_up: false,
            channel: None,
            delivery_state: None,
            transaction: None,
            stage: Stage::Open,
        }
    }

    /// A new app challenge (docs/api.md#approval-in-the-customers-app),
    /// open from `now` for `otp.ttl` (the caller shortens it to the
    /// provider's `expires_in`). No code answers it: `binding`, the code the
    /// customer's app shows, is kept only sealed, for agents to see.
    pub fn new_app(
        id: Uuid,
        binding: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        now: Timestamp,
    ) -> Result<Challenge, Error> {
        Ok(Challenge {
            id,
            proof: Proof::App,
            delivery: Delivery::App,
            code_hash: String::new(),
            sealed_code: Some(reveal::seal(binding, id, pepper)?),
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: 0,
            step_up: false,
            channel: None,
            delivery_state: Some(DeliveryState::accepted()),
            transaction: None,
            stage: Stage::Open,
        })
    }

    /// A new session-PIN challenge, open from `now` for `pin.ttl`. Its hash is
    /// the interaction's `session_pin_hash` (made by
    /// [`pin::SessionPin::keyed_hash`]); the prompt goes into the chat.
    pub fn new_pin(
        id: Uuid,
        session_pin_hash: &str,
        pin: &PinSettings,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            proof: Proof::Pin { entry: Entry::Chat },
            delivery: Delivery::Chat,
            code_hash: session_pin_hash.to_string(),
            sealed_code: None,
            expires_at: now.plus(pin.ttl.get()),
            attempts_used: 0,
            max_attempts: pin.max_attempts,
            step_up: false,
            channel: None,
            delivery_state: None,
            transaction: None,
            stage: Stage::Open,
        }
    }

    /// A new network challenge (docs/network-authentication.md), its link
    /// sent by `delivery`, open from `now` for `link_ttl`. No code answers
    /// it: the mobile operator does, through the link.
    pub fn new_network(
        id: Uuid,
        delivery: Delivery,
        link_ttl: std::time::Duration,
        step_up: bool,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            proof: Proof::network(),
            delivery,
            code_hash: String::new(),
            sealed_code: None,
            expires_at: now.plus(link_ttl),
            attempts_used: 0,
            max_attempts: 0,
            step_up,
            channel: None,
            delivery_state: None,
            transaction: None,
            stage: Stage::Open,
        }
    }

    /// A new wallet challenge (docs/wallet.md), its link sent by
    /// `delivery`, open from `now` for `link_ttl`. No code answers it: a
    /// credential presented through its link does.
    pub fn new_wallet(
        id: Uuid,
        delivery: Delivery,
        link_ttl: std::time::Duration,
        step_up: bool,
        wallet: super::wallet_state::WalletChallenge,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            proof: Proof::Wallet(Box::new(wallet)),
            ..Challenge::new_network(id, delivery, link_ttl, step_up, now)
        }
    }

    /// It approves `transaction` (docs/api.md#approving-one-payment).
    pub fn for_transaction(mut self, transaction: Option<Transaction>) -> Challenge {
        self.transaction = transaction;
        self
    }

    /// A step-up challenge ends with its step-up: no later than `until`.
    pub fn ending_by(mut self, until: Option<Timestamp>) -> Challenge {
        if let Some(until) = until {
            self.expires_at = self.expires_at.min(until);
        }
        self
    }

    /// Its message goes through `channel` (`None`: nothing is sent): the
    /// challenge opens as the provider will have taken it, since one it
    /// did not take is taken back.
    pub fn sent_through(mut self, channel: Option<&str>) -> Challenge {
        self.channel = channel.map(str::to_string);
        self.delivery_state = channel.map(|_| DeliveryState::accepted());
        self
    }

    /// The challenge as it is remembered once it ended: without its hash
    /// or sealed code, its proof as [`Proof::ended`] keeps it.
    pub fn ended(&self) -> Challenge {
        Challenge {
            code_hash: String::new(),
            sealed_code: None,
            stage: Stage::Open,
            proof: self.proof.ended(),
            ..self.clone()
        }
    }

    /// Where it stands at `now`, while it is the interaction's current one.
    pub fn state(&self, now: Timestamp) -> ChallengeState {
        if self.out_of_attempts() {
            ChallengeState::Exhausted
        } else if now >= self.expires_at {
            ChallengeState::Expired
        } else {
            ChallengeState::Open
        }
    }

    /// Can still be answered at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        now < self.expires_at && !self.out_of_attempts()
    }

    /// Every wrong code allowed was given (a method that takes no code
    /// never is).
    pub fn out_of_attempts(&self) -> bool {
        self.takes_code() && self.attempts_used >= self.max_attempts
    }

    /// Its method, as its proof names it.
    pub fn method(&self) -> ChallengeMethod {
        self.proof.method()
    }

    /// Whether its code or PIN is typed on the gateway's page
    /// (docs/api.md#codes-typed-on-the-gateways-page).
    pub fn page_entry(&self) -> bool {
        self.proof.entry() == Entry::Page
    }

    /// A code's delivery ladder, for `delivery: "ladder"`
    /// (docs/api.md#delivery-ladder).
    pub fn ladder(&self) -> Option<&Ladder> {
        self.proof.ladder()
    }

    /// The call that reads its code, while it is open
    /// (docs/decisions/0213-a-call-s-record-ends-with-its-challenge.md).
    pub fn call(&self) -> Option<&super::voice::VoiceCall> {
        self.proof.otp_state()?.call.as_ref()
    }

    /// What the number check found about the phone number its code or
    /// link went to (docs/number-checks.md); `None` when none was asked.
    pub fn number_check(&self) -> Option<&super::number_check::NumberCheck> {
        self.proof.number_check()
    }

    /// A wallet challenge's own state (docs/wallet.md).
    pub fn wallet(&self) -> Option<&super::wallet_state::WalletChallenge> {
        self.proof.wallet()
    }

    /// The mobile operator's last answer, for a network challenge or a
    /// ladder's network step (docs/network-authentication.md).
    pub fn network_answer(&self) -> Option<NetworkAnswer> {
        self.proof.network_answer()
    }

    /// Keeps the mobile operator's answer as its last, on a proof the
    /// operator answers (a network challenge, a code's ladder at its
    /// network step); `false`, keeping nothing, on any other.
    pub fn keep_network_answer(&mut self, answer: NetworkAnswer) -> bool {
        let kept = self.proof.network_answer_mut();
        kept.map(|k| *k = Some(answer)).is_some()
    }

    /// Whether a code typed by the customer answers it now: its method's
    /// code, or the binding code a page showed.
    pub fn takes_code(&self) -> bool {
        self.method().takes_code() || self.awaits_code()
    }

    /// Whether a proof made on a page waits for its binding code.
    pub fn awaits_code(&self) -> bool {
        self.stage.awaited().is_some()
    }

    /// Whether it waits for `page` now (its link's page opens on it): its
    /// proof's own page, or the network page for a ladder at its network
    /// step (docs/network-authentication.md#as-the-first-step-of-a-ladder).
    /// A proof already made waits for its binding code instead, which the
    /// caller asks first.
    pub fn opens_on(&self, page: Page) -> bool {
        let own = self.proof.page() == Some(page);
        own || (page.is_a_ladder_step() && self.ladder().is_some_and(Ladder::at_network_step))
    }

    /// Whether `page` is or was one of its pages: one it opens on now
    /// ([`Challenge::opens_on`]), or the network page of a ladder that
    /// began with its network step, after the ladder moved on too (the
    /// operator's last answer stays on view,
    /// docs/network-authentication.md#as-the-first-step-of-a-ladder).
    pub fn went_by(&self, page: Page) -> bool {
        let began = || self.ladder().is_some_and(Ladder::began_at_network_step);
        self.opens_on(page) || (page.is_a_ladder_step() && began())
    }

    /// A proof made on a page (the operator's verified answer, a verified
    /// presentation, the right code typed there) now waits for the
    /// binding code whose keyed hash is `hash`: the only code that answers
    /// from `now` for `otp.ttl`, with `otp.max_attempts` tries, wrong
    /// ones counted as an OTP's; the attempts used go on where they stand,
    /// with at least one try left
    /// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    pub fn await_code(&mut self, hash: String, otp: &OtpSettings, now: Timestamp) {
        self.stage = Stage::AwaitingCode { hash };
        self.expires_at = now.plus(otp.ttl.get());
        self.max_attempts = otp.max_attempts.max(self.attempts_used.saturating_add(1));
    }

    /// What the binding code awaited authenticates as, when it stands for
    /// a proof of its own ([`Proof::bound_method`]): `wallet` for a
    /// presentation, `network` for the operator's answer (a network
    /// challenge, or a ladder at its network step). `None` when none is
    /// awaited, and for a code typed on the page, whose binding code
    /// succeeds as that code would.
    pub fn bound_proof(&self) -> Option<super::method::Method> {
        self.stage.awaited()?;
        self.proof.bound_method()
    }

    /// Wrong codes still allowed.
    pub fn attempts_remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts_used)
    }

    /// Constant-time comparison of `code` with the stored hash.
    pub(super) fn matches(&self, interaction_id: Uuid, code: &str, pepper: &Pepper) -> bool {
        // The binding code, and only it, while it is awaited (a ladder's
        // own code is not out yet; the code typed on the page is used).
        if let Some(hash) = self.stage.awaited() {
            return otp::verify(pepper, self.id, code, hash);
        }
        match self.proof.typed() {
            Some(Typed::Code) => otp::verify(pepper, self.id, code, &self.code_hash),
            Some(Typed::Pin) => pin::verify(pepper, interaction_id, code, &self.code_hash),
            None => false,
        }
    }
}

/// How long before its challenge's end a call's record is still deleted by
/// the write that ends the challenge; closer to the end, its TTL (which
/// ends there) is left to end it: the store's clock may run ahead of this
/// instance's, and a delete of a record that already expired would not
/// apply.
pub const CALL_END_MARGIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The call whose record a write ends: the one `read`'s current challenge
/// held, when the write leaves no open challenge holding it at `now` (the
/// challenge was used, replaced, exhausted, closed, or its call replaced
/// by another), and its end is more than [`CALL_END_MARGIN`] away. A
/// current challenge that is no longer open lets go of its call in
/// `written`, so that only one write deletes the record.
pub fn ended_call(
    read: Option<&Challenge>,
    written: Option<&mut Challenge>,
    now: crate::time::Timestamp,
) -> Option<super::voice::VoiceCall> {
    let kept = match written {
        Some(c) if c.is_open(now) => c.call().cloned(),
        Some(c) => {
            if let Some(o) = c.proof.otp_state_mut() {
                o.call = None;
            }
            None
        }
        None => None,
    };
    let read = read?;
    let call = read.call()?;
    let still = kept.is_some_and(|k| k.gather == call.gather);
    let far = now.plus(CALL_END_MARGIN) < read.expires_at;
    (!still && far).then(|| call.clone())
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("id", &self.id)
            .field("proof", &self.proof)
            .field("delivery", &self.delivery)
            .field("code_hash", &"..")
            .field("sealed_code", &self.sealed_code.as_ref().map(|_| ".."))
            .field("expires_at", &self.expires_at)
            .field("attempts_used", &self.attempts_used)
            .field("max_attempts", &self.max_attempts)
            .field("step_up", &self.step_up)
            .field("channel", &self.channel)
            .field("delivery_state", &self.delivery_state)
            .field("transaction", &self.transaction)
            .field("stage", &self.stage)
            .finish()
    }
}

/// What the mobile operator answered about the phone that opened a
/// network challenge's link (its rules: `domain::network_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkResult {
    /// The phone holds the number on file.
    Verified,
    /// The phone holds another number.
    Mismatch,
    /// The phone was not on the operator's mobile network (Wi-Fi, a VPN, a
    /// private relay, another SIM's data).
    NotOnMobileNetwork,
    /// The operator failed, or answered something unexpected.
    Error,
}

impl NetworkResult {
    /// Every result (metric series are registered for each).
    pub const ALL: [NetworkResult; 4] = [
        NetworkResult::Verified,
        NetworkResult::Mismatch,
        NetworkResult::NotOnMobileNetwork,
        NetworkResult::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkResult::Verified => "verified",
            NetworkResult::Mismatch => "mismatch",
            NetworkResult::NotOnMobileNetwork => "not_on_mobile_network",
            NetworkResult::Error => "error",
        }
    }

    /// Whether the challenge stays open after it: the customer may turn
    /// Wi-Fi off, or the operator answer next time.
    pub fn leaves_open(self) -> bool {
        match self {
            NetworkResult::NotOnMobileNetwork | NetworkResult::Error => true,
            NetworkResult::Verified | NetworkResult::Mismatch => false,
        }
    }
}

/// A network challenge's last answer: the challenge read says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkAnswer {
    pub result: NetworkResult,
    pub answered_at: Timestamp,
}

/// The delivery ladder of one challenge (docs/api.md#delivery-ladder; its
/// rules are `domain::ladder`'s): its steps as the settings named them when
/// it started, where the code went, and the code sealed to go out again.
#[derive(Clone, PartialEq, Eq)]
pub struct Ladder {
    /// The channel names of `otp.ladder`, in order.
    pub steps: Vec<String>,
    /// The steps that took the code, in order; the last one has it now.
    pub sent: Vec<SentStep>,
    /// The code, sealed for the gateway (AEAD, bound to the challenge),
    /// so that the next step sends the same one. Forgotten once the
    /// challenge ends.
    pub sealed_code: String,
    /// What the number checks answered about its steps' phone numbers, one
    /// answer per number: its steps to one number share it
    /// (docs/number-checks.md#what-is-checked-and-when). Forgotten once
    /// the challenge ends.
    pub answers: Vec<NumberAnswer>,
}

impl std::fmt::Debug for Ladder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ladder")
            .field("steps", &self.steps)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

/// Why a delivery ladder moved on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvanceReason {
    /// The provider reported the current step's message `failed`.
    Failed,
    /// It was not `delivered` within `otp.advance_after`.
    Timeout,
    /// The bot asked.
    Requested,
    /// A network step's operator answered another number
    /// (docs/network-authentication.md).
    NumberMismatch,
    /// A network step's phone was not on the operator's mobile network.
    NotOnMobileNetwork,
}

impl AdvanceReason {
    pub const ALL: [AdvanceReason; 5] = [
        AdvanceReason::Failed,
        AdvanceReason::Timeout,
        AdvanceReason::Requested,
        AdvanceReason::NumberMismatch,
        AdvanceReason::NotOnMobileNetwork,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdvanceReason::Failed => "failed",
            AdvanceReason::Timeout => "timeout",
            AdvanceReason::Requested => "requested",
            AdvanceReason::NumberMismatch => "number_mismatch",
            AdvanceReason::NotOnMobileNetwork => "not_on_mobile_network",
        }
    }
}

/// A step that took the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentStep {
    /// Its index in [`Ladder::steps`].
    pub index: usize,
    pub channel: String,
    /// The phone number (E.164) or address it went to.
    pub destination: String,
    /// The provider's id of the message (its receipts name it).
    pub message_id: Option<String>,
    pub sent_at: Timestamp,
    /// How far its message had got when the ladder moved past it; `None`
    /// while it is the current step (whose status is the challenge's
    /// `delivery_state`). Reports that come later do not change it.
    pub left_at: Option<DeliveryStatus>,
    /// Which send of its message is under way: 0 once the provider
    /// answered (or the step was given up on), 1 from the move that
    /// recorded it until the answer, 2 while the one resend of a step
    /// whose first sender died is under way (docs/api.md#delivery-ladder).
    pub in_flight: u8,
    /// Why the ladder moved to it (`None`: the ladder's first step, which
    /// no move took): its `challenge.advanced` says so, whichever
    /// instance records the step's send.
    pub reason: Option<AdvanceReason>,
}

/// The name of a ladder's network step: `otp.ladder`'s first entry
/// `"network"` sends a network link before any code
/// (docs/network-authentication.md#as-the-first-step-of-a-ladder).
pub const NETWORK_STEP: &str = "network";

impl Ladder {
    /// Whether its current step is the network step: the link is out,
    /// no code yet.
    pub fn at_network_step(&self) -> bool {
        self.current().is_some_and(|s| s.channel == NETWORK_STEP)
    }

    /// Whether it began with the network step: its first step, sent first.
    pub fn began_at_network_step(&self) -> bool {
        self.steps.first().map(String::as_str) == Some(NETWORK_STEP)
            && self.sent.first().is_some_and(|s| s.channel == NETWORK_STEP)
    }

    /// The step that has the code now.
    pub fn current(&self) -> Option<&SentStep> {
        self.sent.last()
    }

    /// The channels the code went through, in order.
    pub fn via(&self) -> Vec<String> {
        self.sent.iter().map(|s| s.channel.clone()).collect()
    }

    /// When the current step is due to hand the code on unless delivered
    /// (`None`: it is the last step, which stays).
    pub fn advance_at(&self, otp: &OtpSettings) -> Option<Timestamp> {
        let current = self.current()?;
        (current.index + 1 < self.steps.len())
            .then(|| current.sent_at.plus(otp.advance_after.get()))
    }

    /// Whether a step the ladder moved past had its message delivered (or
    /// read): its arrival was announced then, once for the challenge.
    pub fn arrived_before(&self) -> bool {
        let Some((_, earlier)) = self.sent.split_last() else {
            return false;
        };
        earlier
            .iter()
            .any(|s| s.left_at.is_some_and(DeliveryStatus::arrived))
    }

    /// Whether `message_id` is the current step's message.
    pub fn is_current_message(&self, message_id: &str) -> bool {
        self.current()
            .and_then(|c| c.message_id.as_deref())
            .is_some_and(|m| m == message_id)
    }

    /// The answer kept about phone number `number`, if it was asked.
    pub fn answer_about(&self, number: &str) -> Option<&Answer> {
        let kept = self.answers.iter().find(|a| a.number == number);
        kept.map(|a| &a.answer)
    }

    /// Keeps the answers of `asked`, each in place of an earlier one
    /// about its number.
    pub fn keep_answers(&mut self, asked: &[NumberAnswer]) {
        for a in asked {
            self.answers.retain(|k| k.number != a.number);
            self.answers.push(a.clone());
        }
    }

    /// The indices of the steps after the current one.
    pub fn later_steps(&self) -> std::ops::Range<usize> {
        let from = self.current().map_or(0, |c| c.index + 1);
        from..self.steps.len().max(from)
    }
}

/// What became of a challenge that is no longer the interaction's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PastOutcome {
    Succeeded,
    Replaced,
    /// An app challenge the customer refused in their app.
    Denied,
    /// An app challenge whose answer could not authenticate.
    Failed,
    /// An app challenge the provider or its ttl ended.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastChallenge {
    pub id: Uuid,
    pub outcome: PastOutcome,
    /// The challenge as it ended, without its hash or sealed code (`None`
    /// for one that ended before challenges were remembered whole).
    pub ended: Option<Challenge>,
}

impl PastChallenge {
    pub fn state(&self) -> ChallengeState {
        match self.outcome {
            PastOutcome::Succeeded => ChallengeState::Used,
            // One that had run out of attempts before anything replaced it
            // (attempts never move once it is replaced).
            PastOutcome::Replaced
                if self.ended.as_ref().is_some_and(Challenge::out_of_attempts) =>
            {
                ChallengeState::Exhausted
            }
            PastOutcome::Replaced => ChallengeState::Replaced,
            PastOutcome::Denied => ChallengeState::Denied,
            PastOutcome::Failed => ChallengeState::Failed,
            PastOutcome::Expired => ChallengeState::Expired,
        }
    }
}

/// Where a challenge stands (docs/api.md#reading-a-challenge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeState {
    Open,
    /// Answered with the right code.
    Used,
    /// No attempts left.
    Exhausted,
    Expired,
    /// A newer challenge (or a logout) ended it while it could still be
    /// answered.
    Replaced,
    /// The customer refused it in their own app.
    Denied,
    /// It could not be put to the customer's app.
    Failed,
}

impl ChallengeState {
    pub const ALL: [ChallengeState; 7] = [
        ChallengeState::Open,
        ChallengeState::Used,
        ChallengeState::Exhausted,
        ChallengeState::Expired,
        ChallengeState::Replaced,
        ChallengeState::Denied,
        ChallengeState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeState::Open => "open",
            ChallengeState::Used => "used",
            ChallengeState::Exhausted => "exhausted",
            ChallengeState::Expired => "expired",
            ChallengeState::Replaced => "replaced",
            ChallengeState::Denied => "denied",
            ChallengeState::Failed => "failed",
        }
    }
}

/// What a well-formed code did to an answerable challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The right code: the challenge is used up. With `step_up`, the success
    /// completes the interaction's pending pre-chat step-up.
    Success {
        method: ChallengeMethod,
        step_up: bool,
    },
    /// A wrong code, counted on the challenge; 0 left on the
    /// `max_attempts`-th. The caller counts the subject's failure.
    Wrong { attempts_remaining: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::voice::{GatherId, VoiceCall};

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + s * 1000)
    }

    /// An OTP challenge open from 0 s to 180 s, its code read by a call.
    fn called() -> Challenge {
        let code = OtpCode::from_digits("123456").unwrap();
        let otp = OtpSettings {
            ttl: crate::time::Dur::from_secs(180),
            max_attempts: 3,
            ..Default::default()
        };
        let pepper = Pepper::new("test-pepper");
        let id = Uuid::now_v7();
        let mut c = Challenge::new_otp(
            id,
            Delivery::Voice,
            &code,
            &pepper,
            &otp,
            false,
            false,
            t(0),
        )
        .unwrap();
        c.proof.otp_state_mut().unwrap().call = Some(VoiceCall {
            channel: "voice".into(),
            gather: GatherId::new("acme"),
            version: 7,
        });
        c
    }

    #[test]
    fn a_call_s_record_ends_with_its_challenge_and_only_then() {
        let read = called();
        let call = read.call().cloned();
        // Still open, same call: nothing ends.
        let mut same = read.clone();
        assert_eq!(ended_call(Some(&read), Some(&mut same), t(10)), None);
        assert_eq!(same.call().cloned(), call);
        // Used or closed (no current one), or replaced: it ends.
        assert_eq!(ended_call(Some(&read), None, t(10)), call);
        let mut newer = called();
        assert_eq!(ended_call(Some(&read), Some(&mut newer), t(10)), call);
        assert!(newer.call().is_some(), "the newer one keeps its own call");
        // Exhausted: it ends, and the challenge lets go of it.
        let mut exhausted = read.clone();
        exhausted.attempts_used = 3;
        assert_eq!(ended_call(Some(&read), Some(&mut exhausted), t(10)), call);
        assert_eq!(exhausted.call(), None);
        // Another call for the same challenge (a step sent again).
        let mut recalled = read.clone();
        recalled.proof.otp_state_mut().unwrap().call = Some(VoiceCall {
            gather: GatherId::new("acme"),
            ..read.call().cloned().unwrap()
        });
        assert_eq!(ended_call(Some(&read), Some(&mut recalled), t(10)), call);
        // Within the margin of its end, or past it: its TTL ends it.
        let mut late = read.clone();
        late.attempts_used = 3;
        assert_eq!(ended_call(Some(&read), Some(&mut late), t(176)), None);
        assert_eq!(late.call(), None, "let go of all the same");
        assert_eq!(ended_call(Some(&read), None, t(200)), None);
        // Nothing read held a call.
        let mut fresh = called();
        assert_eq!(ended_call(None, Some(&mut fresh), t(10)), None);
    }
}
