//! The settings the rules read: one team's (or one of its channels')
//! resolved values, the shape of `[defaults]`, of a team's `[settings]` and
//! of `[channel_settings.NAME]` (docs/configuration.md).
//!
//! The domain owns these values and their defaults (the `Default` impls);
//! `config` reads the files into them (`config::settings::file`, the same
//! tree with every key optional). It merges the overrides as TOML tables
//! before reading, so one shape serves every layer and a misspelt key is
//! refused in any of them.
use std::sync::Arc;

use super::abuse::{Destinations, LockoutScope, NumberType, SmsRegion};
use super::every::every;
use super::method::Method;
use crate::time::Dur;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Life of a login-link token; "0s" = no expiry (still one-time).
    pub token_ttl: Dur,
    /// How long an interaction stays authenticated.
    pub authenticated_ttl: Dur,
    /// Re-authenticate after the customer was inactive this long; "0s" = off.
    pub idle_timeout: Dur,
    /// An untouched interaction is forgotten after this.
    pub interaction_ttl: Dur,
    /// Longest accepted `exp - iat` of a pre-chat assertion.
    pub assertion_max_age: Dur,
    /// `interaction.expiring` is emitted this long before `expires_at`; "0s" = never.
    pub expiry_notice: Dur,
    /// `chat_code`: a login is finished by typing a code from the login page
    /// into the chat (docs/api.md#login-links).
    pub login_binding: LoginBinding,
    /// More than "0s": a conversation on a channel that vouches for its
    /// sender remembers who authenticated in it this long (recognized
    /// conversations, docs/api.md#recognized-conversations); "0s" = off.
    pub recognize_for: Dur,
    pub otp: OtpSettings,
    pub pin: PinSettings,
    pub lockout: LockoutSettings,
    pub step_up: StepUpSettings,
    /// Shared by every team and channel whose texts are the same (the
    /// defaults', most often): a team costs its own texts only
    /// ([`Settings::share_texts`]).
    pub templates: Arc<Templates>,
    /// The languages texts are written in (docs/configuration.md#languages).
    pub locale: LocaleSettings,
    /// Texts in other languages than `locale.default`: language tag → key
    /// of [`Templates`] → text (docs/configuration.md#languages); shared as
    /// `templates` is.
    pub translations: Arc<std::collections::BTreeMap<String, Texts>>,
    /// Named assurance policies for one action (`[defaults.intents.payment]`),
    /// asked for with `GET /v1/interactions/{id}/assurance?intent=payment`.
    pub intents: std::collections::BTreeMap<String, Intent>,
}

/// Whether a login link's callback authenticates at once (`none`) or waits
/// for a code typed into the chat (`chat_code`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LoginBinding {
    #[default]
    None,
    ChatCode,
}

/// What one action asks of the current authentication (docs/api.md#assurance-for-one-action).
#[derive(Debug, Clone, Default)]
pub struct Intent {
    /// The authentication happened at most this long ago; unset or "0s": any age.
    pub max_age: Option<Dur>,
    /// The authentication's method is one of these; unset: any method.
    pub methods: Option<Vec<AuthMethod>>,
    /// An OTP authentication meets the intent only when every channel its
    /// code went through is one of these (docs/api.md#delivery-ladder);
    /// unset: any.
    pub otp_via: Option<Vec<String>>,
    /// An authentication by a code to a phone number meets the intent
    /// only when its number check was clean (docs/number-checks.md);
    /// unset: any.
    pub number_check: Option<super::number_check::NumberCheckRule>,
    /// The authentication's `acr` (what the team's identity provider said
    /// of the sign-in) is one of these; unset: any.
    pub acr: Option<Vec<String>>,
}

every! {
    /// A way of authenticating, as settings name it: an authentication
    /// method, or `recognized`. Its names are the methods' (`Method::ALL`,
    /// in order), then `recognized`, made from the two lists, so that a
    /// method added is one settings can name without a line here.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum AuthMethod {
        /// An authentication method, by its name (`otp`, `wallet`, ...).
        Is(Method),
        /// Not an authentication: a recognized conversation (assurance only).
        Recognized,
    }
}

impl AuthMethod {
    /// Every name settings may write, in the order of [`AuthMethod::ALL`].
    pub const NAMES: [&'static str; Self::ALL.len()] = {
        let mut names = [""; Self::ALL.len()];
        let mut i = 0;
        while i < names.len() {
            names[i] = Self::ALL[i].as_str();
            i += 1;
        }
        names
    };

    /// Its name in settings: the method's, or `recognized`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Is(m) => m.as_str(),
            AuthMethod::Recognized => "recognized",
        }
    }

    /// The one named `s`.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The authentication method a setting names; `Err` for `recognized`,
/// which is no authentication (see `domain::recognition`).
impl TryFrom<AuthMethod> for Method {
    type Error = ();
    fn try_from(m: AuthMethod) -> Result<Self, ()> {
        match m {
            AuthMethod::Is(m) => Ok(m),
            AuthMethod::Recognized => Err(()),
        }
    }
}

/// The setting that names `m` (an assurance rule can require every method).
impl From<Method> for AuthMethod {
    fn from(m: Method) -> Self {
        AuthMethod::Is(m)
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_ttl: Dur::from_secs(600),
            authenticated_ttl: Dur::from_secs(1800),
            idle_timeout: Dur::from_secs(0),
            interaction_ttl: Dur::from_secs(86_400),
            assertion_max_age: Dur::from_secs(600),
            expiry_notice: Dur::from_secs(60),
            login_binding: LoginBinding::None,
            recognize_for: Dur::from_secs(0),
            otp: OtpSettings::default(),
            pin: PinSettings::default(),
            lockout: LockoutSettings::default(),
            step_up: StepUpSettings::default(),
            templates: Arc::default(),
            locale: LocaleSettings::default(),
            translations: Arc::default(),
            intents: std::collections::BTreeMap::new(),
        }
    }
}

impl Settings {
    /// These settings with the texts of `like` in place of their own
    /// where they are the same: one copy of the defaults' texts for every
    /// team that does not write its own, rather than one per team and
    /// channel (docs/decisions/0702-what-a-team-inherits-is-shared.md).
    pub fn share_texts(&mut self, like: &Settings) {
        if !Arc::ptr_eq(&self.templates, &like.templates) && self.templates == like.templates {
            self.templates = Arc::clone(&like.templates);
        }
        if !Arc::ptr_eq(&self.translations, &like.translations)
            && self.translations == like.translations
        {
            self.translations = Arc::clone(&like.translations);
        }
    }
}

#[derive(Debug, Clone)]
pub struct OtpSettings {
    /// Digits, 4..=10.
    pub length: u32,
    pub ttl: Dur,
    /// Wrong codes per challenge; then a new code is needed.
    pub max_attempts: u32,
    /// Challenges sent per subject per `send_window`.
    pub max_sends: u32,
    pub send_window: Dur,
    /// Agents may reveal the current code.
    pub show_to_agents: bool,
    /// The OTP must travel on another channel than the chat.
    pub require_other_channel: bool,
    /// `on_file`: an OTP goes only to the interaction's own contact, never
    /// to a `to` that differs from it.
    pub destinations: Destinations,
    /// Regions an SMS may go to (libphonenumber's region of the number);
    /// empty: any.
    pub sms_regions: Vec<SmsRegion>,
    /// Number types an SMS may go to; empty: any.
    pub sms_number_types: Vec<NumberType>,
    /// Regions a call that reads a code may go to, in place of
    /// `sms_regions` (docs/api.md#codes-read-by-a-voice-call); empty: any.
    pub voice_regions: Vec<SmsRegion>,
    /// Number types a call may go to, in place of `sms_number_types`;
    /// empty: any.
    pub voice_number_types: Vec<NumberType>,
    /// The delivery ladder: the channels a `ladder` OTP tries, in order
    /// (docs/api.md#delivery-ladder); empty: no ladder.
    pub ladder: Vec<String>,
    /// How long a ladder step may go without `delivered` before the code
    /// goes out on the next step.
    pub advance_after: Dur,
}

impl Default for OtpSettings {
    fn default() -> Self {
        OtpSettings {
            length: 6,
            ttl: Dur::from_secs(180),
            max_attempts: 3,
            max_sends: 5,
            send_window: Dur::from_secs(600),
            show_to_agents: false,
            require_other_channel: false,
            destinations: Destinations::Any,
            sms_regions: Vec::new(),
            sms_number_types: Vec::new(),
            voice_regions: Vec::new(),
            voice_number_types: Vec::new(),
            ladder: Vec::new(),
            advance_after: Dur::from_secs(45),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PinSettings {
    pub min_length: u32,
    pub max_length: u32,
    pub ttl: Dur,
    pub max_attempts: u32,
}

impl Default for PinSettings {
    fn default() -> Self {
        PinSettings {
            min_length: 4,
            max_length: 20,
            ttl: Dur::from_secs(600),
            max_attempts: 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LockoutSettings {
    /// Failed attempts (per subject) that lock it out.
    pub threshold: u32,
    /// Failures older than this are forgotten.
    pub window: Dur,
    /// How long a lockout lasts.
    pub duration: Dur,
    /// The lockout that reaches this bans the subject.
    pub max_lockouts_before_ban: u32,
    /// Lockouts older than this no longer count towards a ban.
    pub ban_window: Dur,
    /// How long a ban lasts; "0s" = until an admin unlocks.
    pub ban_duration: Dur,
    /// `origin`: failures, lockouts and bans count per origin of the
    /// subject (its device or conversation).
    pub scope: LockoutScope,
    /// Scope `origin`: an origin stays familiar this long after a success
    /// from it; "0s": a success makes no origin familiar.
    pub familiar_for: Dur,
    /// Scope `origin`: failures from unfamiliar origins (within `window`)
    /// that lock out all of them.
    pub strangers_threshold: u32,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            threshold: 5,
            window: Dur::from_secs(3600),
            duration: Dur::from_secs(900),
            max_lockouts_before_ban: 3,
            ban_window: Dur::from_secs(86_400),
            ban_duration: Dur::from_secs(0),
            scope: LockoutScope::Subject,
            familiar_for: Dur::from_secs(90 * 86_400),
            strangers_threshold: 15,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct StepUpSettings {
    pub always: bool,
    pub on_new_fingerprint: bool,
    pub on_region_change: bool,
}

/// Some texts in one language: key of [`Templates`] → text.
pub type Texts = std::collections::BTreeMap<String, String>;

/// The languages of a team's texts (docs/configuration.md#languages).
#[derive(Debug, Clone)]
pub struct LocaleSettings {
    /// A BCP 47 tag: the language of `templates`, and of an interaction
    /// that asked for none or for one not supported.
    pub default: String,
    /// The languages texts are kept in; `default` is one of them.
    pub supported: Vec<String>,
    /// More than 0: a text that can go by SMS longer than this many
    /// segments is a start-up error; 0: no check.
    pub max_sms_segments: u32,
}

impl Default for LocaleSettings {
    fn default() -> Self {
        LocaleSettings {
            default: "en".into(),
            supported: vec!["en".into()],
            max_sms_segments: 0,
        }
    }
}

/// Texts the gateway sends or shows, in the default language; `#URL#`,
/// `#PIN#`, `#MINUTES#`, `#CODE#`, `#LEFT#` are filled in. A field added
/// here is a key of `[defaults.templates]`, of every translation and of a
/// channel file's `[templates]` at once: add it with its [`TextKey`] to
/// `template_keys!` (the compiler asks for it there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    pub login_link: String,
    pub otp: String,
    pub pin_prompt: String,
    pub authenticated: String,
    pub expired: String,
    /// An app challenge's prompt; `#CODE#` is its binding code.
    pub app_prompt: String,
    /// What a bot platform's webhook answer says to the customer, one per
    /// result (docs/integrating-bot-platforms.md#dialogflow-cx).
    pub say_authenticated: String,
    pub say_not_authenticated: String,
    pub say_code_sent: String,
    pub say_link_sent: String,
    /// `#LEFT#` is the attempts left.
    pub say_wrong_code: String,
    pub say_code_expired: String,
    pub say_locked: String,
    pub say_banned: String,
    pub say_send_failed: String,
    pub say_rate_limited: String,
    /// A code the rules refuse to send there (into a chat that does not
    /// vouch for its sender).
    pub say_not_allowed: String,
    /// What the MCP server's `start_verification` says for a network
    /// check's, a wallet's and an app's proof (docs/agents.md#start_verification).
    pub say_network_sent: String,
    pub say_wallet_sent: String,
    pub say_app_sent: String,
    /// What `start_verification` says for a code, typed on the gateway's
    /// page, never in the chat (docs/agents.md#start_verification).
    pub say_code_page_sent: String,
    /// The gateway's pages (docs/api.md#languages): the first
    /// line is the heading, the rest what to do next.
    pub page_link_expired: String,
    pub page_link_used: String,
    pub page_link_unknown: String,
    pub page_signed_in: String,
    pub page_sign_in_failed: String,
    pub page_try_again: String,
    /// `#CODE#` is the binding code to type into the chat.
    pub page_binding_code: String,
    /// What a voice call says before the code: it asks for a key press.
    pub voice_gate: String,
    /// What a voice call says after the press; `#PIN#` is the code,
    /// spoken digit by digit.
    pub voice_otp: String,
    /// What a press answers once the code cannot be read.
    pub voice_unavailable: String,
    /// A code for a transaction (docs/api.md#approving-one-payment):
    /// `#AMOUNT#` is the amount and currency, `#PAYEE#` the payee.
    pub otp_transaction: String,
    /// What a call says after the press, for a transaction.
    pub voice_otp_transaction: String,
    /// The app prompt, for a transaction.
    pub app_prompt_transaction: String,
    /// A network challenge's link (docs/network-authentication.md):
    /// `#URL#` is the link.
    pub network_link: String,
    /// The pages a network link's answer shows: confirmed, another
    /// number, and not on the mobile network (or the operator failed).
    pub page_network_done: String,
    pub page_network_mismatch: String,
    pub page_network_retry: String,
    /// The link's own page, before the operator is asked: `#TEAM#` is the
    /// team's `display_name`, `#CHANNEL#` the conversation's channel in
    /// words; its last line (of two or more) is the button's label.
    pub page_network_confirm: String,
    /// A verified answer in a conversation that is not the number's own
    /// SMS conversation: `#CODE#` is the code to type into the chat.
    pub page_network_code: String,
    /// The link to the page where a code is typed instead of the chat
    /// (docs/api.md#codes-typed-on-the-gateways-page): `#URL#` is the link;
    /// for a session PIN `pin_entry_link`, which replaces `pin_prompt`.
    pub code_entry_link: String,
    pub pin_entry_link: String,
    /// That page's heading: `#TEAM#` is the team's `display_name`,
    /// `#CHANNEL#` the conversation's channel in words; for a PIN, when
    /// the team did not write one, [`PAGE_PIN_ENTRY`]
    /// (docs/decisions/0446-the-page-s-text-for-a-pin.md).
    pub page_code_entry: String,
    /// What that page answers to the right code: `#CODE#` is the binding
    /// code to type into the chat
    /// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    pub page_code_bind: String,
    /// What that link answers once the binding code was typed into the
    /// chat; what that page answers to a wrong code (`#LEFT#` tries left);
    /// no tries are left.
    pub page_code_done: String,
    pub page_code_wrong: String,
    pub page_code_ended: String,
    /// That page's field's label and its button's text (a text of two or
    /// more lines names its own button with its last line); for a PIN,
    /// while the team kept these defaults, [`PAGE_PIN_FIELD`] and
    /// [`PAGE_PIN_CHECK`].
    pub page_code_field: String,
    pub page_code_check: String,
    /// A wallet challenge's link (docs/wallet.md#the-link-page): `#URL#`
    /// is the link.
    pub wallet_link: String,
    /// The wallet link's page: its heading while the challenge is open
    /// (`#TEAM#` and `#CHANNEL#` as `page_network_confirm`'s); where the
    /// wallet's verified answer came back, the binding code to type into
    /// the chat (`#CODE#`; docs/wallet.md#the-code-typed-into-the-chat);
    /// anywhere else meanwhile, where to look for it; once the binding
    /// code was typed; and once the credential did not confirm the
    /// customer (naming no claim).
    pub page_wallet_start: String,
    /// The link page's buttons: the link a wallet on this device or
    /// another opens, and the Digital Credentials API (shown only where
    /// the browser offers it); each on its own button and nowhere else.
    pub page_wallet_open: String,
    pub page_wallet_here: String,
    pub page_wallet_code: String,
    pub page_wallet_elsewhere: String,
    pub page_wallet_done: String,
    pub page_wallet_failed: String,
}

/// `page_code_entry`'s default, for a code.
pub const PAGE_CODE_ENTRY: &str = "#TEAM# sent you a code for the #CHANNEL# conversation \
                                   you are in now. Type it here only if you are chatting \
                                   with #TEAM# right now.";

/// What the page asks for a session PIN while `page_code_entry` is its
/// default (docs/decisions/0446-the-page-s-text-for-a-pin.md).
pub const PAGE_PIN_ENTRY: &str = "Type your PIN for the #CHANNEL# conversation with #TEAM# \
                                  you are in now, only if you are chatting with #TEAM# \
                                  right now.";

/// `page_code_field`'s and `page_code_check`'s defaults, and what the page
/// says in their place for a session PIN while they are the defaults.
pub const PAGE_CODE_FIELD: &str = "Code";
pub const PAGE_CODE_CHECK: &str = "Check code";
pub const PAGE_PIN_FIELD: &str = "PIN";
pub const PAGE_PIN_CHECK: &str = "Check PIN";

/// `page_network_confirm`'s default.
const PAGE_NETWORK_CONFIRM: &str = "#TEAM# is asking to confirm your number for the #CHANNEL# \
                                    conversation you are in now. Only continue if you are \
                                    chatting with #TEAM# right now.\n\
                                    Continue";

/// `page_wallet_start`'s and `page_wallet_code`'s defaults.
const PAGE_WALLET_START: &str = "#TEAM# is asking you to confirm it is you with your wallet, \
                                 for the #CHANNEL# conversation you are in now. Only continue \
                                 if you are chatting with #TEAM# right now.";
const PAGE_WALLET_CODE: &str = "Your wallet confirmed it is you. Type #CODE# in the chat to \
                                finish.";

/// `say_not_allowed`'s default.
const SAY_NOT_ALLOWED: &str = "I cannot send a code into this chat. \
                               Ask me for a sign-in link, or for a code by text message.";
/// `page_sign_in_failed`'s default.
const PAGE_SIGN_IN_FAILED: &str = "This sign-in could not be finished\n\
                                   Open the link from the chat again.";
/// What the MCP server's `start_verification` says by default for a
/// network check's, a wallet's and an app's proof (docs/agents.md#start_verification).
const SAY_NETWORK_SENT: &str =
    "I have sent you a link. Please open it on your phone, using mobile data rather than Wi-Fi.";
const SAY_WALLET_SENT: &str =
    "I have sent you a link. Please open it and confirm with the wallet on your phone.";
const SAY_CODE_PAGE_SENT: &str =
    "I have sent you a code and a link. Please type the code on that page, not here.";
const SAY_APP_SENT: &str =
    "I have sent a request to our app on your phone. Please open the app and approve it.";

impl Default for Templates {
    fn default() -> Self {
        Templates {
            login_link: "Please sign in to continue: #URL#".into(),
            otp: "Your verification code is #PIN#. It expires in #MINUTES# minutes.".into(),
            pin_prompt: "Please enter your session PIN.".into(),
            authenticated: "Thank you, you are now verified.".into(),
            expired: "Your verification has expired. Please sign in again.".into(),
            app_prompt: "Approve the sign-in showing #CODE# in your app.".into(),
            say_authenticated: "Thank you, you are now verified.".into(),
            say_not_authenticated: "You are not verified yet.".into(),
            say_code_sent: "I have sent you a verification code. Please tell me the code.".into(),
            say_link_sent: "I have sent you a link to sign in. Please open it to continue.".into(),
            say_wrong_code: "That code is not right. You have #LEFT# attempts left.".into(),
            say_code_expired: "That code is no longer valid. Please ask for a new one.".into(),
            say_locked: "Too many failed attempts. Please try again later.".into(),
            say_banned: "Verification is not possible for this account. Please contact us.".into(),
            say_send_failed: "Sorry, I could not send the message. Please try again.".into(),
            say_rate_limited: "Too many codes were sent. Please try again later.".into(),
            say_not_allowed: SAY_NOT_ALLOWED.into(),
            say_network_sent: SAY_NETWORK_SENT.into(),
            say_wallet_sent: SAY_WALLET_SENT.into(),
            say_app_sent: SAY_APP_SENT.into(),
            say_code_page_sent: SAY_CODE_PAGE_SENT.into(),
            page_link_expired: "This link has expired\nAsk in the chat for a new one.".into(),
            page_link_used: "This link was already used\nAsk in the chat for a new one.".into(),
            page_link_unknown: "We don\u{2019}t know this link\nCheck you copied all of it.".into(),
            page_signed_in: "You\u{2019}re signed in\nYou can go back to the chat now.".into(),
            page_sign_in_failed: PAGE_SIGN_IN_FAILED.into(),
            page_try_again: "We can\u{2019}t do this right now\nPlease try again in a minute."
                .into(),
            page_binding_code: "Type this code into the chat: #CODE#\n\
                                Go back to the chat and send this code to finish signing in."
                .into(),
            voice_gate: "Press any key to hear your verification code.".into(),
            voice_otp: "Your verification code is #PIN#.".into(),
            voice_unavailable: "This code is no longer available. Goodbye.".into(),
            otp_transaction: "#PIN# is your code to pay #AMOUNT# to #PAYEE#. \
                              Only enter it if you mean to pay. \
                              It expires in #MINUTES# minutes."
                .into(),
            voice_otp_transaction: "Your code to pay #AMOUNT# to #PAYEE# is #PIN#.".into(),
            app_prompt_transaction: "Approve the payment of #AMOUNT# to #PAYEE# \
                                     showing #CODE# in your app."
                .into(),
            network_link: "Only if you are chatting with us right now: open this link \
                           on your phone, using mobile data (not Wi-Fi), to confirm your \
                           number: #URL#"
                .into(),
            page_network_done: "Your number is confirmed\nYou can go back to the chat now.".into(),
            page_network_mismatch: "We could not confirm your number\n\
                                    This phone does not seem to use the number we have \
                                    for you. Go back to the chat to continue."
                .into(),
            page_network_retry: "We could not reach your mobile network\n\
                                 Turn Wi-Fi, any VPN or private relay off, make sure mobile \
                                 data uses this number\u{2019}s SIM, then open the link again."
                .into(),
            page_network_confirm: PAGE_NETWORK_CONFIRM.into(),
            page_network_code: "Your number is confirmed. Type #CODE# in the chat to finish."
                .into(),
            code_entry_link: "Type the code you received on this page: #URL#".into(),
            pin_entry_link: "Type your PIN on this page: #URL#".into(),
            page_code_entry: PAGE_CODE_ENTRY.into(),
            page_code_bind: "That is the code. Type #CODE# in the chat to finish.".into(),
            page_code_done: "Thank you, you are verified\nYou can go back to the chat now.".into(),
            page_code_wrong: "That is not the code. #LEFT# tries left.".into(),
            page_code_ended: "This code can no longer be used. Ask in the chat for a new one."
                .into(),
            page_code_field: PAGE_CODE_FIELD.into(),
            page_code_check: PAGE_CODE_CHECK.into(),
            wallet_link: "Open this link to confirm it is you with your wallet: #URL#".into(),
            page_wallet_start: PAGE_WALLET_START.into(),
            page_wallet_open: "Open my wallet".into(),
            page_wallet_here: "Use a wallet on this device".into(),
            page_wallet_code: PAGE_WALLET_CODE.into(),
            page_wallet_elsewhere: "Continue on the device where your wallet opened.".into(),
            page_wallet_done: "Thank you. You can go back to the chat.".into(),
            page_wallet_failed: "This did not confirm it is you. You can go back to the chat."
                .into(),
        }
    }
}

/// The keys of [`Templates`], each once, with its [`TextKey`] and the
/// placeholders its text must contain: `$m!(... , Variant field [needs],
/// ...)`. The destructuring in `every_key!` makes the compiler ask for a
/// field missing here; a row without its `[...]` does not build.
macro_rules! template_keys {
    ($m:ident!($($args:tt)*)) => {
        $m! {
            $($args)*
            LoginLink login_link ["#URL#"],
            Otp otp ["#PIN#"],
            PinPrompt pin_prompt [],
            Authenticated authenticated [],
            Expired expired [],
            AppPrompt app_prompt ["#CODE#"],
            VoiceGate voice_gate [],
            VoiceOtp voice_otp ["#PIN#"],
            VoiceUnavailable voice_unavailable [],
            OtpTransaction otp_transaction ["#PIN#", "#AMOUNT#", "#PAYEE#"],
            VoiceOtpTransaction voice_otp_transaction ["#PIN#", "#AMOUNT#", "#PAYEE#"],
            AppPromptTransaction app_prompt_transaction ["#CODE#", "#AMOUNT#", "#PAYEE#"],
            NetworkLink network_link ["#URL#"],
            PageNetworkDone page_network_done [],
            PageNetworkMismatch page_network_mismatch [],
            PageNetworkRetry page_network_retry [],
            PageNetworkConfirm page_network_confirm [],
            PageNetworkCode page_network_code ["#CODE#"],
            CodeEntryLink code_entry_link ["#URL#"],
            PinEntryLink pin_entry_link ["#URL#"],
            PageCodeEntry page_code_entry [],
            PageCodeBind page_code_bind ["#CODE#"],
            PageCodeDone page_code_done [],
            PageCodeWrong page_code_wrong [],
            PageCodeEnded page_code_ended [],
            PageCodeField page_code_field [],
            PageCodeCheck page_code_check [],
            WalletLink wallet_link ["#URL#"],
            PageWalletStart page_wallet_start [],
            PageWalletOpen page_wallet_open [],
            PageWalletHere page_wallet_here [],
            PageWalletCode page_wallet_code ["#CODE#"],
            PageWalletElsewhere page_wallet_elsewhere [],
            PageWalletDone page_wallet_done [],
            PageWalletFailed page_wallet_failed [],
            PageLinkExpired page_link_expired [],
            PageLinkUsed page_link_used [],
            PageLinkUnknown page_link_unknown [],
            PageSignedIn page_signed_in [],
            PageSignInFailed page_sign_in_failed [],
            PageTryAgain page_try_again [],
            PageBindingCode page_binding_code ["#CODE#"],
            SayAuthenticated say_authenticated [],
            SayNotAuthenticated say_not_authenticated [],
            SayCodeSent say_code_sent [],
            SayLinkSent say_link_sent [],
            SayWrongCode say_wrong_code [],
            SayCodeExpired say_code_expired [],
            SayLocked say_locked [],
            SayBanned say_banned [],
            SaySendFailed say_send_failed [],
            SayRateLimited say_rate_limited [],
            SayNotAllowed say_not_allowed [],
            SayNetworkSent say_network_sent [],
            SayWalletSent say_wallet_sent [],
            SayAppSent say_app_sent [],
            SayCodePageSent say_code_page_sent [],
        }
    };
}

/// Every key of a `Templates` (or `&mut`) with its field, by name.
macro_rules! every_key {
    ($t:expr, $($v:ident $f:ident [$($need:literal),*]),+ $(,)?) => {{
        let Templates { $($f),+ } = $t;
        vec![$((stringify!($f), $f)),+]
    }};
}

/// The text of the key named `$key` among the fields of `$t`, by a match.
macro_rules! key_match {
    ($t:expr, $key:expr, $($v:ident $f:ident [$($need:literal),*]),+ $(,)?) => {
        match $key {
            $(stringify!($f) => Some($t.$f.as_str()),)+
            _ => None,
        }
    };
}

/// [`TextKey`], its names and its texts, from the one list.
macro_rules! text_keys {
    ($($v:ident $f:ident [$($need:literal),*]),+ $(,)?) => {
        /// A text the gateway sends or shows: a template, a page, a bot
        /// platform's answer (`say_*`), a voice call's text. Its name
        /// (`as_str`) is its key in `[defaults.templates]`, in every
        /// translation and in a channel file's `[templates]`; code names a
        /// text by this type only, so a misspelt key does not build.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum TextKey {
            $($v),+
        }

        impl TextKey {
            /// Every key, in the order of [`Templates`].
            pub const ALL: &'static [TextKey] = &[$(TextKey::$v),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(TextKey::$v => stringify!($f),)+
                }
            }

            /// The key named `name`; `None` for a name that is not one.
            pub fn parse(name: &str) -> Option<TextKey> {
                TextKey::ALL.iter().copied().find(|k| k.as_str() == name)
            }

            /// The placeholders a text of this key must contain: a link's
            /// `#URL#`, a code's `#PIN#` or `#CODE#`, and for a transaction
            /// its `#AMOUNT#` and `#PAYEE#` (docs/api.md#approving-one-payment).
            pub fn needs(self) -> &'static [&'static str] {
                match self {
                    $(TextKey::$v => &[$($need),*],)+
                }
            }
        }

        impl Templates {
            /// The text of `key`.
            pub fn text(&self, key: TextKey) -> &str {
                match key {
                    $(TextKey::$v => &self.$f,)+
                }
            }
        }
    };
}

template_keys!(text_keys!());

impl Templates {
    /// Every key and its text, in the order of the struct.
    pub fn entries(&self) -> Vec<(&'static str, &String)> {
        template_keys!(every_key!(self,))
    }

    /// Every key and its text, to write.
    fn entries_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        template_keys!(every_key!(self,))
    }

    /// The names of every key.
    pub fn keys() -> Vec<&'static str> {
        TextKey::ALL.iter().map(|k| k.as_str()).collect()
    }

    /// The text of `key`; `None` for a key that is not one.
    pub fn get(&self, key: &str) -> Option<&str> {
        // A match, not a search of `entries()`: every text sent asks here.
        template_keys!(key_match!(self, key,))
    }

    /// Sets the text of `key`; false for a key that is not one.
    pub fn set(&mut self, key: &str, text: String) -> bool {
        match self.entries_mut().into_iter().find(|(k, _)| *k == key) {
            Some((_, slot)) => {
                *slot = text;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method is one a setting can name, and comes back as itself.
    #[test]
    fn every_method_is_named_by_a_setting_and_back() {
        for m in Method::ALL {
            assert_eq!(
                Method::try_from(AuthMethod::from(m)),
                Ok(m),
                "{}",
                m.as_str()
            );
        }
    }

    /// Settings name every method by its own name, in its order, then
    /// `recognized`; each name reads back.
    #[test]
    fn settings_name_the_methods_then_recognized() {
        let mut names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
        names.push("recognized");
        assert_eq!(AuthMethod::NAMES.to_vec(), names);
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(AuthMethod::parse("Otp"), None);
    }

    #[test]
    fn every_template_key_is_named_and_settable() {
        let keys = Templates::keys();
        assert_eq!(keys.len(), Templates::default().entries().len());
        assert!(keys.contains(&"otp") && keys.contains(&"page_binding_code"));
        let mut t = Templates::default();
        assert!(t.set("page_link_used", "Usado".into()));
        assert_eq!(t.get("page_link_used"), Some("Usado"));
        assert_eq!(t.page_link_used, "Usado");
        assert!(!t.set("greeting", "Hola".into()));
        assert_eq!(t.get("greeting"), None);
    }

    #[test]
    fn every_text_key_is_the_field_of_its_name() {
        let mut t = Templates::default();
        assert_eq!(TextKey::ALL.len(), Templates::keys().len());
        for (n, &key) in TextKey::ALL.iter().enumerate() {
            assert_eq!(TextKey::parse(key.as_str()), Some(key));
            assert!(t.set(key.as_str(), format!("text {n}")));
            assert_eq!(t.text(key), format!("text {n}"), "{}", key.as_str());
        }
        assert_eq!(TextKey::parse("greeting"), None);
        assert_eq!(TextKey::PageLinkUsed.as_str(), "page_link_used");
    }

    #[test]
    fn every_default_text_holds_what_its_key_needs_and_a_link_needs_its_url() {
        let t = Templates::default();
        for &key in TextKey::ALL {
            for need in key.needs() {
                assert!(t.text(key).contains(need), "{} lacks {need}", key.as_str());
            }
            if key.as_str().ends_with("_link") {
                assert!(key.needs().contains(&"#URL#"), "{}", key.as_str());
            }
        }
        assert_eq!(
            TextKey::OtpTransaction.needs(),
            ["#PIN#", "#AMOUNT#", "#PAYEE#"]
        );
        assert_eq!(TextKey::PageWalletCode.needs(), ["#CODE#"]);
        assert!(TextKey::PageCodeDone.needs().is_empty());
    }
}
