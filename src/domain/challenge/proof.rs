//! What a challenge proves and how: one [`Proof`] variant per way of
//! proving, each holding its own state, and the [`Stage`] it stands at
//! (open, or a proof made on a page awaiting its binding code). The
//! method it is named by ([`ChallengeMethod`]), the page that moves it
//! ([`Page`]) and what a proof made on that page authenticates as
//! ([`Method`]) are functions of the variant, each one `match` naming
//! every variant: a way of proving added here does not compile until
//! each has decided for it (docs/decisions/0670-a-challenge-s-proof-is-one-type.md).
use super::{Ladder, NetworkAnswer};
use crate::domain::every::every;
use crate::domain::method::Method;
use crate::domain::number_check::NumberCheck;
use crate::domain::settings::TextKey;
use crate::domain::voice::VoiceCall;
use crate::domain::wallet_state::WalletChallenge;

/// Where the customer types a code or PIN
/// (docs/api.md#codes-typed-on-the-gateways-page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// Into the conversation: the bot passes it on.
    Chat,
    /// On the gateway's page, reached by a link in the conversation.
    Page,
}

impl Entry {
    /// `"entry": "page"` or not.
    pub fn of(page: bool) -> Entry {
        if page {
            Entry::Page
        } else {
            Entry::Chat
        }
    }
}

/// A challenge's proof: one variant per way of proving, each with its
/// own state.
#[derive(Clone, PartialEq, Eq)]
pub enum Proof {
    /// A one-time code, with where it is typed and how it went out.
    Otp(OtpState),
    /// The session PIN, typed where `entry` says.
    Pin { entry: Entry },
    /// The code a login page showed, typed into the chat (login binding).
    Binding,
    /// Approved in the customer's own app
    /// (docs/api.md#approval-in-the-customers-app).
    App,
    /// The mobile operator's answer through the link the customer opens
    /// on mobile data (docs/network-authentication.md); `answer`: its last
    /// (`None` before the first); `number_check`: what the number checks
    /// found about the number on file (docs/number-checks.md), `None`
    /// when none was asked.
    Network {
        answer: Option<NetworkAnswer>,
        number_check: Option<NumberCheck>,
    },
    /// A credential presented from the customer's wallet through its link
    /// (docs/wallet.md): the credential, the values it expects, its open
    /// requests and its answer (boxed: the other variants are small).
    Wallet(Box<WalletChallenge>),
}

/// A one-time code's own state.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpState {
    /// Where it is typed.
    pub entry: Entry,
    /// On a ladder whose first step is the network step, that step's last
    /// answer from the mobile operator
    /// (docs/network-authentication.md#as-the-first-step-of-a-ladder).
    pub network: Option<NetworkAnswer>,
    /// Its delivery ladder, for `delivery: "ladder"`.
    pub ladder: Option<Ladder>,
    /// What the number check found about the phone number it went to
    /// (docs/number-checks.md); `None` when none was asked.
    pub number_check: Option<NumberCheck>,
    /// The call that reads it, while it is open
    /// (docs/decisions/0213-a-call-s-record-ends-with-its-challenge.md).
    pub call: Option<VoiceCall>,
}

impl OtpState {
    /// A code typed where `entry` says, not sent yet.
    pub fn new(entry: Entry) -> OtpState {
        OtpState {
            entry,
            network: None,
            ladder: None,
            number_check: None,
            call: None,
        }
    }

    /// As it is remembered once its challenge ended: where it was typed,
    /// its call, and its ladder's sealed code and the number checks'
    /// answers about its steps are forgotten.
    pub fn ended(&self) -> OtpState {
        OtpState {
            entry: Entry::Chat,
            ladder: self.ladder.as_ref().map(|l| Ladder {
                sealed_code: String::new(),
                answers: Vec::new(),
                ..l.clone()
            }),
            call: None,
            ..self.clone()
        }
    }
}

/// `Debug` hides the call, as the challenge's did.
impl std::fmt::Debug for OtpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otp")
            .field("entry", &self.entry)
            .field("network", &self.network)
            .field("ladder", &self.ladder)
            .field("number_check", &self.number_check)
            .field("call", &self.call.as_ref().map(|_| ".."))
            .finish()
    }
}

/// What a code typed into a challenge is checked as ([`Proof::typed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// A code drawn by the gateway, hashed bound to the challenge.
    Code,
    /// The session PIN, hashed bound to the interaction.
    Pin,
}

/// Where a challenge stands on its way to a success.
#[derive(Clone, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for its own proof.
    Open,
    /// A proof made outside the conversation (a verified network answer,
    /// a verified presentation, the right code typed on the gateway's
    /// page) waits for the binding code its page showed to be typed into
    /// the conversation: `hash` is that code's keyed hash (bound to the
    /// challenge, as an OTP's), never the code; the only code that
    /// answers meanwhile (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    AwaitingCode { hash: String },
}

impl Stage {
    /// The binding code's keyed hash, while one is awaited.
    pub fn awaited(&self) -> Option<&str> {
        match self {
            Stage::Open => None,
            Stage::AwaitingCode { hash } => Some(hash),
        }
    }
}

every! {
    /// A page of the gateway that moves a challenge: each is one kind of
    /// challenge link (`gateway::links::KINDS`, one line a page).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Page {
        /// The page that sends the browser to the mobile operator.
        Network,
        /// The page that hands a request to a wallet.
        Wallet,
        /// The one-field page a code or PIN is typed on.
        CodeEntry,
    }
}

impl Page {
    /// Whether a code's delivery ladder passes through it, as its network
    /// step (docs/network-authentication.md#as-the-first-step-of-a-ladder):
    /// a challenge on such a ladder opens on it too
    /// (`Challenge::opens_on`, `Challenge::went_by`).
    pub fn is_a_ladder_step(self) -> bool {
        match self {
            Page::Network => true,
            Page::Wallet | Page::CodeEntry => false,
        }
    }

    /// What the binding code its proof awaits authenticates as, when the
    /// page's proof is one of its own: the operator's answer as
    /// `network`, a presentation as `wallet`; `None` for a code typed on
    /// the page, whose binding code succeeds as that code would.
    pub fn authenticates_as(self) -> Option<Method> {
        match self {
            Page::Network => Some(Method::Network),
            Page::Wallet => Some(Method::Wallet),
            Page::CodeEntry => None,
        }
    }

    /// The message that carries its link (`Purpose::Link`), one row a
    /// page: every fact of that message a page decides, so that a page
    /// added decides them here and nowhere else
    /// (docs/decisions/0830-a-page-s-link-message-is-one-purpose.md).
    pub const fn link(self) -> LinkMessage {
        match self {
            Page::Network => LinkMessage {
                text: TextKey::NetworkLink,
                needs: Some(Section::NumberVerification),
                to_number: true,
            },
            Page::Wallet => LinkMessage {
                text: TextKey::WalletLink,
                needs: Some(Section::Wallet),
                to_number: true,
            },
            Page::CodeEntry => LinkMessage {
                text: TextKey::CodeEntryLink,
                needs: None,
                to_number: false,
            },
        }
    }
}

/// The message that carries a page's link into the conversation
/// ([`Page::link`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkMessage {
    /// Its text; the message's purpose is named by it (`network_link`),
    /// in a metric label, a webhook's `purpose` and a channel file's
    /// `[templates]`.
    pub text: TextKey,
    /// The section of the team file a team needs to send it (its
    /// challenge starts only then); `None`: every team can.
    pub needs: Option<Section>,
    /// Whether it may also go to the customer's number through the
    /// team's `sms_channel` (`delivery` `sms`), not only into the
    /// conversation (docs/configuration.md#sms-length).
    pub to_number: bool,
}

/// A section of the team file a page answers only with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `[number_verification]`.
    NumberVerification,
    /// `[wallet]`.
    Wallet,
}

impl Proof {
    /// A one-time code typed where `entry` says.
    pub fn otp(entry: Entry) -> Proof {
        Proof::Otp(OtpState::new(entry))
    }

    /// A network challenge, not answered yet.
    pub fn network() -> Proof {
        Proof::Network {
            answer: None,
            number_check: None,
        }
    }

    /// The method it is named by.
    pub fn method(&self) -> ChallengeMethod {
        match self {
            Proof::Otp(_) => ChallengeMethod::Otp,
            Proof::Pin { .. } => ChallengeMethod::Pin,
            Proof::Binding => ChallengeMethod::Binding,
            Proof::App => ChallengeMethod::App,
            Proof::Network { .. } => ChallengeMethod::Network,
            Proof::Wallet(_) => ChallengeMethod::Wallet,
        }
    }

    /// The page of its own that moves it: the network link's, the
    /// wallet's, or the code-entry page of a code or PIN typed there.
    /// `None` for one answered in the chat or the app alone (a ladder's
    /// network step is the ladder's, not the code's: `network_auth`).
    pub fn page(&self) -> Option<Page> {
        match self {
            Proof::Otp(OtpState { entry, .. }) | Proof::Pin { entry } => match entry {
                Entry::Page => Some(Page::CodeEntry),
                Entry::Chat => None,
            },
            Proof::Network { .. } => Some(Page::Network),
            Proof::Wallet(_) => Some(Page::Wallet),
            Proof::Binding | Proof::App => None,
        }
    }

    /// Where its code or PIN is typed (`Chat` for one that takes none).
    pub fn entry(&self) -> Entry {
        match self {
            Proof::Otp(OtpState { entry, .. }) | Proof::Pin { entry } => *entry,
            Proof::Binding | Proof::App | Proof::Network { .. } | Proof::Wallet(_) => Entry::Chat,
        }
    }

    /// What the binding code awaited authenticates as, when it stands
    /// for a proof of its own: its page's (`wallet`, `network`); for one
    /// with no page of its own, the operator's answer at a ladder's
    /// network step (`network`); `None` for a code typed on the page.
    pub fn bound_method(&self) -> Option<Method> {
        match self.page() {
            Some(page) => page.authenticates_as(),
            None => Some(Method::Network),
        }
    }

    /// What a code typed answers it as, checked against its keyed hash
    /// (`Challenge::matches`): a code (an OTP's, a binding's) or the
    /// session PIN. `None`: approved in the app, by the operator or by a
    /// credential, never by a code typed anywhere (a binding code a page
    /// awaits is the stage's, not the proof's).
    pub fn typed(&self) -> Option<Typed> {
        match self {
            Proof::Otp(_) | Proof::Binding => Some(Typed::Code),
            Proof::Pin { .. } => Some(Typed::Pin),
            Proof::App | Proof::Network { .. } | Proof::Wallet(_) => None,
        }
    }

    /// Why no code answers it, for one that takes none; `None` for one a
    /// code answers.
    pub fn answered_without_code(&self) -> Option<&'static str> {
        match self {
            Proof::Otp(_) | Proof::Pin { .. } | Proof::Binding => None,
            Proof::App => {
                Some("an app challenge is approved in the customer's app, not with a code")
            }
            Proof::Network { .. } => {
                Some("a network challenge is answered by the mobile operator, not with a code")
            }
            Proof::Wallet(_) => Some(
                "a wallet challenge is answered by a credential through its link, not with a code",
            ),
        }
    }

    /// The mobile operator's last answer, for a network challenge or a
    /// ladder's network step.
    pub fn network_answer(&self) -> Option<NetworkAnswer> {
        match self {
            Proof::Otp(o) => o.network,
            Proof::Network { answer, .. } => *answer,
            Proof::Pin { .. } | Proof::Binding | Proof::App | Proof::Wallet(_) => None,
        }
    }

    /// Where the operator's answer is kept: a network challenge's, or a
    /// code's (its ladder's network step); `None` for the others, which
    /// the operator never answers.
    pub fn network_answer_mut(&mut self) -> Option<&mut Option<NetworkAnswer>> {
        match self {
            Proof::Otp(o) => Some(&mut o.network),
            Proof::Network { answer, .. } => Some(answer),
            Proof::Pin { .. } | Proof::Binding | Proof::App | Proof::Wallet(_) => None,
        }
    }

    /// A wallet challenge's own state.
    pub fn wallet(&self) -> Option<&WalletChallenge> {
        match self {
            Proof::Wallet(w) => Some(w.as_ref()),
            Proof::Otp(_)
            | Proof::Pin { .. }
            | Proof::Binding
            | Proof::App
            | Proof::Network { .. } => None,
        }
    }

    /// A wallet challenge's own state, to change.
    pub fn wallet_mut(&mut self) -> Option<&mut WalletChallenge> {
        match self {
            Proof::Wallet(w) => Some(w.as_mut()),
            Proof::Otp(_)
            | Proof::Pin { .. }
            | Proof::Binding
            | Proof::App
            | Proof::Network { .. } => None,
        }
    }

    /// A code's own state: where it is typed, its ladder, its call, its
    /// number check.
    pub fn otp_state(&self) -> Option<&OtpState> {
        match self {
            Proof::Otp(o) => Some(o),
            Proof::Pin { .. }
            | Proof::Binding
            | Proof::App
            | Proof::Network { .. }
            | Proof::Wallet(_) => None,
        }
    }

    /// A code's own state, to change.
    pub fn otp_state_mut(&mut self) -> Option<&mut OtpState> {
        match self {
            Proof::Otp(o) => Some(o),
            Proof::Pin { .. }
            | Proof::Binding
            | Proof::App
            | Proof::Network { .. }
            | Proof::Wallet(_) => None,
        }
    }

    /// A code's delivery ladder (docs/api.md#delivery-ladder).
    pub fn ladder(&self) -> Option<&Ladder> {
        self.otp_state()?.ladder.as_ref()
    }

    /// A code's delivery ladder, to change.
    pub fn ladder_mut(&mut self) -> Option<&mut Ladder> {
        self.otp_state_mut()?.ladder.as_mut()
    }

    /// What the number check found about the number a code went to, or
    /// the number a network challenge vouches for (docs/number-checks.md).
    pub fn number_check(&self) -> Option<&NumberCheck> {
        match self {
            Proof::Otp(o) => o.number_check.as_ref(),
            Proof::Network { number_check, .. } => number_check.as_ref(),
            Proof::Pin { .. } | Proof::Binding | Proof::App | Proof::Wallet(_) => None,
        }
    }

    /// Where the number check's finding is kept: a code's or a network
    /// challenge's; `None` for the others, whose numbers are never
    /// checked ([`ChallengeMethod::may_go_to_a_number`]).
    pub fn number_check_mut(&mut self) -> Option<&mut Option<NumberCheck>> {
        match self {
            Proof::Otp(o) => Some(&mut o.number_check),
            Proof::Network { number_check, .. } => Some(number_check),
            Proof::Pin { .. } | Proof::Binding | Proof::App | Proof::Wallet(_) => None,
        }
    }

    /// The proof as it is remembered once its challenge ended: where its
    /// code was typed is forgotten, a code's call and the secrets its
    /// ladder held go, a wallet's requests' keys go; what it was answered
    /// stays.
    pub fn ended(&self) -> Proof {
        match self {
            Proof::Otp(o) => Proof::Otp(o.ended()),
            Proof::Pin { .. } => Proof::Pin { entry: Entry::Chat },
            Proof::Wallet(w) => Proof::Wallet(Box::new(w.ended())),
            Proof::Binding | Proof::App | Proof::Network { .. } => self.clone(),
        }
    }
}

every! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ChallengeMethod {
        Otp,
        Pin,
        /// The code a login page showed, to type into the chat (login binding).
        Binding,
        /// Approved in the customer's own app (docs/api.md#approval-in-the-customers-app).
        App,
        /// The mobile operator confirms, through a link the customer opens
        /// on mobile data, that the phone holds the number on file
        /// (docs/network-authentication.md).
        Network,
        /// A credential presented from the customer's wallet through a link
        /// (docs/wallet.md).
        Wallet,
    }
}

/// What a start of a method sends ([`ChallengeMethod::sends`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sends {
    /// A code, in one message or by the delivery ladder.
    Code,
    /// The session PIN's prompt, or the link to the page it is typed on.
    PinPrompt,
    /// A request to the customer's app, through the team's identity
    /// provider: no message.
    AppRequest,
    /// The link to the page its proof is made on, in one message, saved
    /// until the challenge's end (`links::save_for`).
    Link(Page),
}

/// Where the link to the page a code is typed on goes, when the request
/// asked for the page (`entry: page`; [`ChallengeMethod::page_entry_link`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageEntryLink {
    /// In the challenge's one message, in place of the PIN's prompt.
    InThePrompt,
    /// Into the conversation, after the code went out.
    AfterTheCode,
    /// Nowhere: the method's code is not typed on the page.
    None,
}

/// The number the number checks vouch for before a challenge is trusted
/// ([`ChallengeMethod::number_checked`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberChecked {
    /// The number its code goes to (the start's destination).
    Destination,
    /// The interaction's `contact.phone`, the number it vouches for.
    OnFile,
}

/// The names of the methods and deliveries, spelled once: the request
/// parser, the metric labels and the OpenAPI document read them from here,
/// and a test holds the API's names (`gateway::view`) to them.
impl ChallengeMethod {
    /// What `POST /v1/interactions/{id}/challenges` may start (a binding
    /// comes with a login link): those of [`ChallengeMethod::ALL`] that
    /// are [`startable`](ChallengeMethod::startable), in its order, made
    /// from the two, so that the list cannot say otherwise.
    pub const STARTABLE: [ChallengeMethod; Self::startable_count()] = Self::startable_of_all();

    /// Whether a request may start it: every method but the login
    /// binding, which a login page shows.
    pub const fn startable(self) -> bool {
        match self {
            ChallengeMethod::Otp
            | ChallengeMethod::Pin
            | ChallengeMethod::App
            | ChallengeMethod::Network
            | ChallengeMethod::Wallet => true,
            ChallengeMethod::Binding => false,
        }
    }

    /// How many of [`ChallengeMethod::ALL`] are startable.
    const fn startable_count() -> usize {
        let (mut i, mut n) = (0, 0);
        while i < Self::ALL.len() {
            if Self::ALL[i].startable() {
                n += 1;
            }
            i += 1;
        }
        n
    }

    /// The startable methods of [`ChallengeMethod::ALL`], in its order.
    const fn startable_of_all<const N: usize>() -> [ChallengeMethod; N] {
        let mut out = [ChallengeMethod::Otp; N];
        let (mut i, mut s) = (0, 0);
        while i < Self::ALL.len() {
            if Self::ALL[i].startable() {
                out[s] = Self::ALL[i];
                s += 1;
            }
            i += 1;
        }
        out
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeMethod::Otp => "otp",
            ChallengeMethod::Pin => "pin",
            ChallengeMethod::Binding => "binding",
            ChallengeMethod::App => "app",
            ChallengeMethod::Network => "network",
            ChallengeMethod::Wallet => "wallet",
        }
    }

    /// What a start of the method sends, which says the gateway's path
    /// (`gateway::challenges`): a code, a PIN's prompt, a request to the
    /// customer's app, or the link to its page. A method whose proof is
    /// made on a page of its own names that page here, and its start goes
    /// down the links' shared path, with no arm of its own.
    pub const fn sends(self) -> Sends {
        match self {
            ChallengeMethod::Otp | ChallengeMethod::Binding => Sends::Code,
            ChallengeMethod::Pin => Sends::PinPrompt,
            ChallengeMethod::App => Sends::AppRequest,
            ChallengeMethod::Network => Sends::Link(Page::Network),
            ChallengeMethod::Wallet => Sends::Link(Page::Wallet),
        }
    }

    /// Where the link to the code entry page goes when the request asked
    /// for the page (docs/api.md#codes-typed-on-the-gateways-page).
    pub const fn page_entry_link(self) -> PageEntryLink {
        match self {
            ChallengeMethod::Pin => PageEntryLink::InThePrompt,
            ChallengeMethod::Otp => PageEntryLink::AfterTheCode,
            ChallengeMethod::Binding
            | ChallengeMethod::App
            | ChallengeMethod::Network
            | ChallengeMethod::Wallet => PageEntryLink::None,
        }
    }

    /// Whether a code typed by the customer answers it. One that takes
    /// none (approval in the app) is refused a code before anything is
    /// counted (`verify_challenge::decide`) and is never out of attempts.
    pub fn takes_code(self) -> bool {
        match self {
            ChallengeMethod::Otp | ChallengeMethod::Pin | ChallengeMethod::Binding => true,
            ChallengeMethod::App | ChallengeMethod::Network | ChallengeMethod::Wallet => false,
        }
    }
}

/// The security rules that depend on the method, each a `match` that names
/// every method: a method added to [`ChallengeMethod`] does not compile
/// until each rule has decided for it (no rule is a deny-list that a new
/// method would slip past).
impl ChallengeMethod {
    /// Whether a challenge of this method can approve a payment: the
    /// customer sees the amount and the payee where the code arrives, or
    /// in their own app or wallet (docs/payments.md; a wallet's for its
    /// `sca` credential alone, docs/wallet.md#a-payment-approved-in-the-wallet).
    /// A session PIN proves a person, never a payment; a binding code
    /// belongs to a login; a network check proves a SIM, and the operator
    /// shows the customer nothing to approve.
    pub fn approves_payment(self) -> bool {
        match self {
            ChallengeMethod::Otp | ChallengeMethod::App | ChallengeMethod::Wallet => true,
            ChallengeMethod::Pin | ChallengeMethod::Binding | ChallengeMethod::Network => false,
        }
    }

    /// Whether the payment it approves is approved in the customer's own
    /// app or wallet, outside the conversation: a read of the challenge
    /// answers the approval, which no verify of a code answered, and its
    /// approval token names no `via`, since no channel carried it
    /// (docs/api.md#the-approval-token). A code the gateway sent (`otp`)
    /// is approved by its verify and names its channel; a method that
    /// approves no payment ([`ChallengeMethod::approves_payment`]) has
    /// no approval to read.
    pub fn approves_in_own_app(self) -> bool {
        match self {
            ChallengeMethod::App | ChallengeMethod::Wallet => true,
            ChallengeMethod::Otp
            | ChallengeMethod::Pin
            | ChallengeMethod::Binding
            | ChallengeMethod::Network => false,
        }
    }

    /// Which phone number the team's number checks vouch for before a
    /// challenge of this method is trusted (docs/number-checks.md), one
    /// `match`: a code's destination, or, for a network check, the
    /// number on file, wherever its link goes (a swapped SIM passes the
    /// operator's check, docs/network-authentication.md). `None`: its
    /// code never goes to a number (a PIN is the customer's own, a
    /// binding code is shown by the login page, an app approval goes to
    /// the app, a wallet's link asks a credential).
    pub fn number_checked(self) -> Option<NumberChecked> {
        match self {
            ChallengeMethod::Otp => Some(NumberChecked::Destination),
            ChallengeMethod::Network => Some(NumberChecked::OnFile),
            ChallengeMethod::Pin
            | ChallengeMethod::Binding
            | ChallengeMethod::App
            | ChallengeMethod::Wallet => None,
        }
    }

    /// Whether this method's code may be sent to a phone number, so that
    /// the team's number checks vouch for the number before it is trusted
    /// ([`ChallengeMethod::number_checked`] names one).
    pub fn may_go_to_a_number(self) -> bool {
        self.number_checked().is_some()
    }

    /// Whether an agent may be shown this method's code
    /// (docs/api.md#get-v1interactionsidchallengescidcode): a one-time code
    /// sealed for reveal; never the customer's PIN, a login page's binding
    /// code, an app approval, which has no code, or a network link, which
    /// only the customer's phone may open.
    pub fn revealable(self) -> bool {
        match self {
            ChallengeMethod::Otp => true,
            ChallengeMethod::Pin
            | ChallengeMethod::Binding
            | ChallengeMethod::App
            | ChallengeMethod::Network
            | ChallengeMethod::Wallet => false,
        }
    }
}

impl std::fmt::Debug for Proof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proof::Otp(o) => o.fmt(f),
            Proof::Pin { entry } => f.debug_struct("Pin").field("entry", entry).finish(),
            Proof::Binding => f.write_str("Binding"),
            Proof::App => f.write_str("App"),
            Proof::Network {
                answer,
                number_check,
            } => f
                .debug_struct("Network")
                .field("answer", answer)
                .field("number_check", number_check)
                .finish(),
            Proof::Wallet(w) => f.debug_tuple("Wallet").field(w).finish(),
        }
    }
}

/// `Debug` hides the awaited code's hash.
impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Open => f.write_str("Open"),
            Stage::AwaitingCode { .. } => f.write_str("AwaitingCode(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::challenge::Sends;

    /// Each way of proving, once.
    fn every() -> Vec<Proof> {
        use crate::domain::wallet_format::Format;
        let wallet = WalletChallenge::asking("pid".into(), Format::SdJwt, Default::default());
        vec![
            Proof::otp(Entry::Chat),
            Proof::otp(Entry::Page),
            Proof::Pin { entry: Entry::Chat },
            Proof::Pin { entry: Entry::Page },
            Proof::Binding,
            Proof::App,
            Proof::network(),
            Proof::Wallet(Box::new(wallet)),
        ]
    }

    #[test]
    fn a_proof_names_its_method_and_every_page_is_some_proof_s() {
        for p in every() {
            assert!(ChallengeMethod::ALL.contains(&p.method()), "{p:?}");
            // A code is answered by a code, the rest without one.
            assert_eq!(
                p.answered_without_code().is_none(),
                p.method().takes_code(),
                "{p:?}"
            );
            assert_eq!(p.typed().is_some(), p.method().takes_code(), "{p:?}");
        }
        for p in every() {
            // The page a method's start sends the link to is its proof's.
            match p.method().sends() {
                Sends::Link(page) => assert_eq!(p.page(), Some(page), "{p:?}"),
                Sends::Code | Sends::PinPrompt | Sends::AppRequest => {
                    assert!(p.page().is_none() || p.entry() == Entry::Page, "{p:?}")
                }
            }
        }
        for page in Page::ALL {
            assert!(every().iter().any(|p| p.page() == Some(page)), "{page:?}");
        }
        let methods: Vec<_> = every().iter().map(Proof::method).collect();
        assert!(ChallengeMethod::ALL.iter().all(|m| methods.contains(m)));
    }

    #[test]
    fn a_binding_code_awaited_authenticates_as_the_page_s_proof() {
        let as_of = |p: Proof| p.bound_method();
        assert_eq!(as_of(Proof::network()), Some(Method::Network));
        assert!(matches!(
            every().last().map(Proof::bound_method),
            Some(Some(Method::Wallet))
        ));
        // A code typed on the page succeeds as that code would.
        assert_eq!(as_of(Proof::otp(Entry::Page)), None);
        assert_eq!(as_of(Proof::Pin { entry: Entry::Page }), None);
        // A ladder's network step: the operator's answer.
        assert_eq!(as_of(Proof::otp(Entry::Chat)), Some(Method::Network));
    }
}
