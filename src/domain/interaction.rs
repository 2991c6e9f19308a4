//! The interaction: one conversation on one channel, and the rules that say
//! whether it is authenticated *now* (docs/api.md#the-interaction-object, docs/api.md#activity-logout-and-time-outs).
//!
//! Status is always computed from stored timestamps and the caller's `now`,
//! never from whether background work has run: a read one second after
//! `expires_at` says `expired`.
use std::collections::BTreeMap;

use uuid::Uuid;

use super::challenge::{
    Challenge, ChallengeState, PastChallenge, PastOutcome, MAX_PAST_CHALLENGES,
};
use super::subject::Standing;
use crate::domain::locale::LocaleTag;
use crate::domain::settings::{LocaleSettings, Settings};
use crate::time::Timestamp;

pub use super::method::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unauthenticated,
    Pending,
    Authenticated,
    Expired,
    Locked,
    Banned,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Unauthenticated,
        Status::Pending,
        Status::Authenticated,
        Status::Expired,
        Status::Locked,
        Status::Banned,
    ];

    /// The status named `s` (`unauthenticated`, `pending`, ...).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unauthenticated => "unauthenticated",
            Status::Pending => "pending",
            Status::Authenticated => "authenticated",
            Status::Expired => "expired",
            Status::Locked => "locked",
            Status::Banned => "banned",
        }
    }
}

/// Where out-of-band messages go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub phone: Option<String>,
    pub email: Option<String>,
}

impl Contact {
    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.email.is_none()
    }
}

/// The proven customer: `id` plus any other string members the login page
/// or assertion gave (`name`, `email`, …).
pub type Customer = BTreeMap<String, String>;

/// What an identity provider's ID token said of how the customer signed
/// in: its `acr` and `amr`, kept with the `oidc` authentication it proved
/// until the next authentication (docs/api.md#the-interaction-object).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignIn {
    pub acr: Option<String>,
    pub amr: Option<Vec<String>>,
}

/// A current (or past) authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub method: Method,
    pub authenticated_at: Timestamp,
    /// Absolute end: `authenticated_at + authenticated_ttl`.
    pub expires_at: Timestamp,
    pub customer: Customer,
    /// The channels the message that proved the customer went through, in
    /// order (docs/api.md#delivery-ladder); empty when none did.
    pub via: Vec<String>,
    /// What the number check of the proving code's phone number found
    /// (docs/number-checks.md); `None` when none was asked.
    pub number_check: Option<super::number_check::NumberCheck>,
    /// The hash of the transaction it approved
    /// (docs/api.md#approving-one-payment); `None` for any other.
    pub transaction_hash: Option<String>,
    /// The ID token's `acr` and `amr`, for an authentication the team's
    /// identity provider proved; empty for any other.
    pub sign_in: SignIn,
}

/// A login link issued for this interaction. The link id is the token's `jti`;
/// keeping it here makes "one-time" atomic with the authentication it grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: Uuid,
    /// `None` when `token_ttl` is "0s".
    pub expires_at: Option<Timestamp>,
    /// Used up: by a callback (`used_by`), or ended unused (a logout).
    pub used: bool,
    /// The signed callback that used it, and what it was answered. Set only
    /// on a used link.
    pub used_by: Option<LinkUse>,
    /// The channel that delivered it (`deliver: true`), which a login by it
    /// names as its `via`.
    pub delivered_on: Option<String>,
}

/// The callback that used a login link, remembered with its answer: the
/// login page's retry of the same signed request (same `webhook-id`, as
/// Standard Webhooks intends for retries) gets the same answer again and
/// changes nothing, also when the first answer never reached it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkUse {
    /// Digest of the callback's `webhook-id` (`webhook_sig::id_digest`).
    pub webhook_id: String,
    pub answer: CallbackAnswer,
    /// Keyed digest of the callback's body: a request with this
    /// `webhook-id` and another body is no retry. Absent in links used
    /// before it was kept: no body matches then.
    pub body: Option<String>,
}

impl LinkUse {
    /// Is a request with `webhook_id` and `body` (both digests) a retry of
    /// this one? `None`: another request. `Some(false)`: the same
    /// `webhook-id` with another body.
    pub fn retried_by(&self, webhook_id: &str, body: &str) -> Option<bool> {
        (self.webhook_id == webhook_id).then(|| self.body.as_deref() == Some(body))
    }
}

/// What a login callback was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackAnswer {
    Authenticated {
        expires_at: Option<Timestamp>,
    },
    /// Waiting for the binding code typed into the chat (the code itself is
    /// not kept: it is derived from the challenge id, see
    /// `otp::derive`). A retry gets it again while this challenge is the
    /// interaction's live binding.
    Bound {
        challenge_id: Uuid,
        expires_at: Timestamp,
    },
    NotAuthenticated,
    Locked {
        until: Timestamp,
    },
    Banned,
    CustomerMismatch,
}

impl CallbackAnswer {
    /// The answer a refusal gives, if it is one a callback can give after
    /// using its link.
    pub fn refused(e: &crate::error::Error) -> Option<Self> {
        use crate::error::Error;
        match e {
            Error::Locked { until, .. } => Some(CallbackAnswer::Locked { until: *until }),
            Error::Banned => Some(CallbackAnswer::Banned),
            Error::CustomerMismatch => Some(CallbackAnswer::CustomerMismatch),
            _ => None,
        }
    }
}

/// How many links an interaction remembers; the oldest are forgotten first
/// (a forgotten link is refused as used).
pub const MAX_LINKS: usize = 16;

/// A pre-chat assertion waiting for its step-up OTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingStepUp {
    pub customer: Customer,
    pub fingerprint: Option<String>,
    pub region: Option<String>,
    /// The step-up ends then: the assertion's `exp`, and at most
    /// `assertion_max_age` after it was accepted. Until then the interaction
    /// shows `pending`; after it, nothing can complete it (its OTP challenge
    /// ends by then too).
    pub until: Timestamp,
}

/// A login that waits for its binding code to be typed into the chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingBinding {
    /// The binding challenge; the login completes only through it.
    pub challenge_id: Uuid,
    /// Whom the login page proved.
    pub customer: Customer,
    /// When the login page proved them (the callback): the login's age
    /// counts from here, not from the typing of the code. Absent in
    /// bindings opened before it was kept (they count from the typing).
    pub proven_at: Option<Timestamp>,
    /// How the login proved them: the code, once typed, authenticates with it.
    pub method: Method,
    /// The channel that delivered the login's link (`deliver: true`), if
    /// any: the authentication's `via` once the code is typed.
    pub via: Vec<String>,
    /// What the identity provider said of the sign-in: the
    /// authentication's once the code is typed.
    pub sign_in: SignIn,
}

/// An announcement the sweeper makes of an authentication
/// ([`InteractionRecord::announce_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// `interaction.expiring`: the end is `expiry_notice` away.
    Expiring,
    /// `interaction.expired` (and the `expired` text).
    Expired,
}

/// An interaction: its conversation, its subject's name, and what
/// happened in it (authentication, links, challenges, pending logins). The
/// store's form of it is the gateway's (`gateway/records`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionRecord {
    /// The stored form leaves it out: the record's key names it.
    pub id: Uuid,
    pub team: String,
    pub channel: String,
    pub conversation_id: String,
    pub customer_ref: Option<String>,
    /// Keyed hash of the session PIN; the PIN itself is never stored.
    pub session_pin_hash: Option<String>,
    pub contact: Contact,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
    /// Every write refreshes this; the interaction is forgotten
    /// `interaction_ttl` after it.
    pub last_write_at: Timestamp,
    /// The current authentication, kept after it expires (status `expired`)
    /// and removed by a logout.
    pub auth: Option<Authentication>,
    pub links: Vec<Link>,
    pub challenge: Option<Challenge>,
    pub past_challenges: Vec<PastChallenge>,
    pub step_up: Option<PendingStepUp>,
    pub binding: Option<PendingBinding>,
    /// The end for which `interaction.expired` was already emitted.
    pub expiry_announced: Option<Timestamp>,
    /// The end for which `interaction.expiring` was already emitted.
    pub expiring_announced: Option<Timestamp>,
    /// The fingerprint of the last valid pre-chat assertion that named one:
    /// the interaction's origin is then that device (see [`Self::origin`]).
    pub device: Option<String>,
    /// The language asked for (docs/api.md#languages); `None`: none was.
    pub requested_locale: Option<RequestedLocale>,
    /// A number check refused its conversation's number when it was
    /// created (docs/number-checks.md): it is not recognized.
    pub recognition_refused: bool,
}

/// A language asked for on an interaction, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedLocale {
    /// The well-formed BCP 47 tag, spelled as asked.
    pub tag: String,
    /// Asked by a pre-chat assertion's `locale` claim, not by a request.
    pub by_assertion: bool,
}

/// The subject of an interaction without a `customer_ref`:
/// How the subject of an interaction without a `customer_ref` begins (a
/// `customer_ref` may not).
pub const OWN_SUBJECT_PREFIX: &str = "interaction:";

/// `interaction:{id}` (the canonical, lower-case UUID).
pub fn own_subject(id: impl std::fmt::Display) -> String {
    format!("interaction:{id}")
}

/// Whom lockouts of interaction `id` apply to: its `customer_ref`, else
/// the interaction itself.
pub fn subject_of(id: Uuid, customer_ref: Option<&str>) -> String {
    customer_ref.map_or_else(|| own_subject(id), str::to_string)
}

impl InteractionRecord {
    pub fn new(id: Uuid, team: &str, channel: &str, conversation_id: &str, now: Timestamp) -> Self {
        InteractionRecord {
            id,
            team: team.to_string(),
            channel: channel.to_string(),
            conversation_id: conversation_id.to_string(),
            customer_ref: None,
            session_pin_hash: None,
            contact: Contact::default(),
            created_at: now,
            last_activity_at: now,
            last_write_at: now,
            auth: None,
            links: Vec::new(),
            challenge: None,
            past_challenges: Vec::new(),
            step_up: None,
            binding: None,
            expiry_announced: None,
            expiring_announced: None,
            device: None,
            requested_locale: None,
            recognition_refused: false,
        }
    }

    /// The language the interaction speaks: the entry of
    /// `locale.supported` its requested tag looks up, else `locale.default`
    /// (docs/api.md#languages).
    pub fn locale<'a>(&self, locale: &'a LocaleSettings) -> &'a str {
        let asked = self.requested_locale.as_ref().map(|r| r.tag.as_str());
        crate::domain::locale::matched(asked, &locale.supported, &locale.default)
    }

    /// A request asked for `tag` (it switches the language from now on), or
    /// an assertion did (used only while no request has asked).
    pub fn ask_locale(&mut self, tag: &LocaleTag, by_assertion: bool) {
        let by_request = self
            .requested_locale
            .as_ref()
            .is_some_and(|r| !r.by_assertion);
        if by_assertion && by_request {
            return;
        }
        self.requested_locale = Some(RequestedLocale {
            tag: tag.as_str().to_string(),
            by_assertion,
        });
    }

    /// Where this interaction's attempts come from, for
    /// `lockout.scope = "origin"`: `device:{fingerprint}` once a valid
    /// pre-chat assertion carrying one was posted on it, else
    /// `{channel}:{conversation_id}`.
    pub fn origin(&self) -> String {
        match &self.device {
            Some(fp) => format!("device:{fp}"),
            None => format!("{}:{}", self.channel, self.conversation_id),
        }
    }

    /// The origin whose counts this interaction's attempts touch under `s`
    /// (`None`: scope `subject`, the subject's own).
    pub fn lockout_origin(&self, s: &Settings) -> Option<String> {
        super::origins::counted_origin(s.lockout.scope, || self.origin())
    }

    /// Whom lockouts apply to: the `customer_ref`, else the interaction.
    pub fn subject(&self) -> String {
        subject_of(self.id, self.customer_ref.as_deref())
    }

    /// An interaction untouched for `interaction_ttl` is gone, whatever the
    /// store's own TTL says.
    pub fn is_forgotten(&self, now: Timestamp, s: &Settings) -> bool {
        now >= self.last_write_at.plus(s.interaction_ttl.get())
    }

    /// When the current authentication ends (or ended): the earlier of its
    /// absolute end and `last_activity_at + idle_timeout`.
    pub fn auth_ends_at(&self, s: &Settings) -> Option<Timestamp> {
        let auth = self.auth.as_ref()?;
        let idle_end = s
            .idle_timeout
            .enabled()
            .map(|idle| self.last_activity_at.plus(idle));
        Some(match idle_end {
            Some(i) if i < auth.expires_at => i,
            _ => auth.expires_at,
        })
    }

    /// When the current authentication's next announcement is due: its
    /// expiry notice while one is to come (`expiry_notice` before the
    /// end), else its end; `None` once its expiry is announced, or with no
    /// authentication.
    pub fn next_announcement_at(&self, s: &Settings) -> Option<Timestamp> {
        let end = self.auth_ends_at(s)?;
        if self.expiry_announced == Some(end) {
            return None;
        }
        let notice = s
            .expiry_notice
            .enabled()
            .filter(|_| self.expiring_announced != Some(end));
        Some(notice.map_or(end, |notice| end.minus(notice)))
    }

    /// What of the current authentication is to be announced at `now`,
    /// marked announced: its expiry once it has ended (a notice never
    /// announced then never is), else its expiry notice once due. `None`:
    /// nothing is due (the end moved, or it was announced already).
    pub fn announce_due(&mut self, now: Timestamp, s: &Settings) -> Option<Announcement> {
        // What is due is what `next_announcement_at` says: one rule.
        if now < self.next_announcement_at(s)? {
            return None;
        }
        let end = self.auth_ends_at(s)?;
        if now >= end {
            self.expiry_announced = Some(end);
            Some(Announcement::Expired)
        } else {
            self.expiring_announced = Some(end);
            Some(Announcement::Expiring)
        }
    }

    /// Authenticated at `now`, ignoring locks and bans.
    pub fn is_authenticated(&self, now: Timestamp, s: &Settings) -> bool {
        self.auth_ends_at(s).is_some_and(|end| now < end)
    }

    /// Whom a proof in this conversation proves when it names no one of
    /// its own (a code, a PIN, a network confirmation, a wallet's
    /// credential): on an interaction still authenticated (a step-up), the
    /// customer already proven — the proof re-proves the same chat, and a
    /// website's logout must still find them; otherwise the bot's
    /// `customer_ref`, if any.
    pub fn proven_customer(&self, s: &Settings, now: Timestamp) -> Customer {
        if self.is_authenticated(now, s) {
            if let Some(auth) = self.auth.as_ref().filter(|a| !a.customer.is_empty()) {
                return auth.customer.clone();
            }
        }
        self.customer_ref
            .iter()
            .map(|r| ("id".to_string(), r.clone()))
            .collect()
    }

    /// Moves the current challenge to the past as `outcome`.
    pub(super) fn end_challenge(&mut self, outcome: PastOutcome) {
        if let Some(c) = self.challenge.take() {
            self.remember_challenge(&c, outcome);
        }
    }

    /// A login link whose token is still valid, a challenge, or a pre-chat
    /// step-up is open.
    pub fn is_pending(&self, now: Timestamp) -> bool {
        self.links
            .iter()
            .any(|l| !l.used && l.expires_at.is_none_or(|e| now < e))
            || self.open_challenge(now).is_some()
            || self.live_step_up(now).is_some()
    }

    /// The pre-chat step-up that an OTP can still complete at `now`.
    pub fn live_step_up(&self, now: Timestamp) -> Option<&PendingStepUp> {
        self.step_up.as_ref().filter(|s| now < s.until)
    }

    /// Ends a pending step-up, and the challenge opened to complete it: a new
    /// assertion, a new link, an authentication or a logout leaves nothing
    /// that could later authenticate this conversation as that customer.
    pub fn end_step_up(&mut self, now: Timestamp) {
        self.step_up = None;
        if self.challenge.as_ref().is_some_and(|c| c.step_up) {
            self.close_challenge(now);
        }
    }

    /// Ends a login waiting for its binding code, and the binding challenge:
    /// a new link, a logout or another authentication leaves nothing that
    /// could finish it.
    pub fn end_binding(&mut self, now: Timestamp) {
        if let Some(b) = self.binding.take() {
            if self
                .challenge
                .as_ref()
                .is_some_and(|c| c.id == b.challenge_id)
            {
                self.close_challenge(now);
            }
        }
    }

    /// The binding that the code typed into the chat can still complete at
    /// `now`: its challenge is the open one (not expired, replaced, used or
    /// out of attempts). Once it is not, it never comes back.
    pub fn live_binding(&self, now: Timestamp) -> Option<&PendingBinding> {
        let open = self.open_challenge(now)?;
        self.binding.as_ref().filter(|b| b.challenge_id == open.id)
    }

    /// The customer a live step-up would prove, if any.
    pub fn step_up_customer(&self, now: Timestamp) -> Option<&str> {
        self.live_step_up(now)
            .and_then(|p| p.customer.get("id"))
            .map(String::as_str)
    }

    /// The challenge that can still be answered, if any.
    pub fn open_challenge(&self, now: Timestamp) -> Option<&Challenge> {
        self.challenge.as_ref().filter(|c| c.is_open(now))
    }

    /// The status at `now`, given the subject's standing (docs/api.md#the-interaction-object).
    pub fn status(&self, now: Timestamp, s: &Settings, standing: &Standing) -> Status {
        match standing {
            Standing::Banned { .. } => Status::Banned,
            Standing::Locked { .. } => Status::Locked,
            Standing::Clear if self.is_authenticated(now, s) => Status::Authenticated,
            Standing::Clear if self.is_pending(now) => Status::Pending,
            Standing::Clear if self.auth.is_some() => Status::Expired,
            Standing::Clear => Status::Unauthenticated,
        }
    }

    /// Records customer activity at `now` (and a write). An authentication
    /// that already timed out for idleness stays expired: its end is pinned
    /// before the new activity is recorded (docs/api.md#activity-logout-and-time-outs).
    pub fn touch_activity(&mut self, now: Timestamp, s: &Settings) {
        if let Some(end) = self.auth_ends_at(s) {
            if now >= end {
                if let Some(auth) = self.auth.as_mut() {
                    auth.expires_at = end;
                }
            }
        }
        self.last_activity_at = now;
        self.last_write_at = now;
    }

    /// Marks the interaction authenticated from `now` for `authenticated_ttl`.
    /// Authenticating counts as activity.
    pub fn authenticate(
        &mut self,
        method: Method,
        customer: Customer,
        now: Timestamp,
        s: &Settings,
    ) {
        self.authenticate_since(method, customer, Vec::new(), now, now, s);
    }

    /// Like [`Self::authenticate`] for a login proven at `proven_at` and
    /// completed `now` (a bound login: proven by the callback, completed by
    /// the code typed into the chat), whose proving message went through
    /// the channels `via` (docs/api.md#the-interaction-object; empty when
    /// none did). The authentication is as old as the proof:
    /// `authenticated_at` and the absolute end count from `proven_at`; the
    /// activity is `now`.
    pub fn authenticate_since(
        &mut self,
        method: Method,
        customer: Customer,
        via: Vec<String>,
        proven_at: Timestamp,
        now: Timestamp,
        s: &Settings,
    ) {
        let proven_at = proven_at.min(now);
        self.auth = Some(Authentication {
            method,
            authenticated_at: proven_at,
            expires_at: proven_at.plus(s.authenticated_ttl.get()),
            customer,
            via,
            number_check: None,
            transaction_hash: None,
            sign_in: SignIn::default(),
        });
        self.end_step_up(now);
        self.end_binding(now);
        self.expiry_announced = None;
        self.expiring_announced = None;
        self.last_activity_at = now;
        self.last_write_at = now;
        // A notice as long as the authentication itself is due at once; the
        // caller emits it with `interaction.authenticated`.
        if self.expiring_due_at_once(s) {
            self.expiring_announced = self.auth_ends_at(s);
        }
    }

    /// `expiry_notice` is not shorter than the authentication's life.
    pub fn expiring_due_at_once(&self, s: &Settings) -> bool {
        let (Some(auth), Some(notice)) = (&self.auth, s.expiry_notice.enabled()) else {
            return false;
        };
        self.auth_ends_at(s)
            .is_some_and(|end| end.since(auth.authenticated_at) <= notice)
    }

    /// Ends the authentication (logout). Status becomes `unauthenticated`.
    /// Everything under way ends with it: open login links are used up and
    /// the open challenge is closed, so nothing issued before the logout can
    /// authenticate after it.
    pub fn log_out(&mut self, now: Timestamp) {
        self.auth = None;
        self.end_step_up(now);
        self.end_binding(now);
        for link in &mut self.links {
            link.used = true;
        }
        self.close_challenge(now);
        self.last_write_at = now;
    }

    /// Remembers a newly issued link, forgetting expired ones and the oldest
    /// beyond [`MAX_LINKS`].
    pub fn add_link(&mut self, link: Link, now: Timestamp) {
        self.links.retain(|l| l.expires_at.is_none_or(|e| now < e));
        self.links.push(link);
        let excess = self.links.len().saturating_sub(MAX_LINKS);
        self.links.drain(..excess);
        self.last_write_at = now;
    }

    /// Is `customer_id` signed in here at `now`, or about to be: authenticated
    /// as them (or as its `customer_ref`), a pending step-up for them, or a
    /// login of theirs waiting for its binding code? A website's logout of
    /// that customer ends all three.
    pub fn signed_in_as(&self, customer_id: &str, now: Timestamp, s: &Settings) -> bool {
        (self.is_authenticated(now, s) && self.belongs_to(customer_id))
            || self.step_up_customer(now) == Some(customer_id)
            || self.live_binding(now).is_some_and(|b| {
                b.customer.get("id").map(String::as_str) == Some(customer_id)
                    || self.customer_ref.as_deref() == Some(customer_id)
            })
    }

    /// Does the authenticated customer (or the `customer_ref`) match `customer_id`?
    pub fn belongs_to(&self, customer_id: &str) -> bool {
        self.customer_ref.as_deref() == Some(customer_id)
            || self
                .auth
                .as_ref()
                .and_then(|a| a.customer.get("id"))
                .map(String::as_str)
                == Some(customer_id)
    }
}

/// The interaction's challenges: the current one and the finished ones it
/// remembers (answering them is `domain::attempts`).
impl InteractionRecord {
    /// Makes `challenge` the current one at `now`. An earlier challenge,
    /// open or not, is replaced: answering it from now on is
    /// `challenge_expired`. The caller stamps the write (`last_write_at`),
    /// as for any write.
    pub fn open_new_challenge(&mut self, challenge: Challenge, now: Timestamp) {
        if let Some(old) = self.challenge.replace(challenge) {
            self.remember_ended(&old, now);
        }
    }

    /// Closes the current challenge at `now`, if any: answering it from
    /// now on is `challenge_expired` (a logout ends what was under way).
    pub fn close_challenge(&mut self, now: Timestamp) {
        if let Some(old) = self.challenge.take() {
            self.remember_ended(&old, now);
        }
    }

    /// Remembers `old`, which a newer challenge or a logout ends at `now`:
    /// `replaced` while it could still be answered, `expired` if it was
    /// past its end already. (One out of attempts reads `exhausted`: see
    /// [`PastChallenge::state`].)
    fn remember_ended(&mut self, old: &Challenge, now: Timestamp) {
        let outcome = match old.state(now) {
            ChallengeState::Expired => PastOutcome::Expired,
            _ => PastOutcome::Replaced,
        };
        self.remember_challenge(old, outcome);
    }

    /// Challenge `id` as it stands at `now`, current or remembered (`None`:
    /// not this interaction's, or forgotten, or remembered without its
    /// details).
    pub fn challenge_at(&self, id: Uuid, now: Timestamp) -> Option<(&Challenge, ChallengeState)> {
        if let Some(c) = self.challenge.as_ref().filter(|c| c.id == id) {
            return Some((c, c.state(now)));
        }
        let past = self.past_challenges.iter().rev().find(|p| p.id == id)?;
        Some((past.ended.as_ref()?, past.state()))
    }

    /// Challenge `id`, open or remembered, to change how far its message
    /// got (receipts keep moving it after the challenge ended), with its
    /// state at `now`.
    pub fn challenge_at_mut(
        &mut self,
        id: Uuid,
        now: Timestamp,
    ) -> Option<(&mut Challenge, ChallengeState)> {
        if let Some(c) = self.challenge.as_mut().filter(|c| c.id == id) {
            let state = c.state(now);
            return Some((c, state));
        }
        let past = self.past_challenges.iter_mut().rev().find(|p| p.id == id)?;
        let state = past.state();
        Some((past.ended.as_mut()?, state))
    }

    /// Remembers how challenge `c` ended, forgetting the oldest beyond
    /// [`MAX_PAST_CHALLENGES`].
    pub(super) fn remember_challenge(&mut self, c: &Challenge, outcome: PastOutcome) {
        self.past_challenges.push(PastChallenge {
            id: c.id,
            outcome,
            ended: Some(c.ended()),
        });
        let excess = self
            .past_challenges
            .len()
            .saturating_sub(MAX_PAST_CHALLENGES);
        self.past_challenges.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::time::Dur;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    #[test]
    fn a_request_s_language_stands_over_an_assertion_s() {
        let l = LocaleSettings {
            default: "en".into(),
            supported: vec!["en".into(), "es".into()],
            max_sms_segments: 0,
        };
        let tag = |t: &str| LocaleTag::parse(t).unwrap();
        let mut r = rec();
        assert_eq!(r.locale(&l), "en");
        r.ask_locale(&tag("es-MX"), true);
        assert_eq!(r.locale(&l), "es");
        r.ask_locale(&tag("fr"), false);
        assert_eq!(
            (
                r.locale(&l),
                r.requested_locale.as_ref().unwrap().tag.as_str()
            ),
            ("en", "fr")
        );
        r.ask_locale(&tag("es"), true);
        assert_eq!(
            r.requested_locale.as_ref().unwrap().tag,
            "fr",
            "a request stands"
        );
        r.ask_locale(&tag("ES"), false);
        assert_eq!(r.locale(&l), "es");
    }

    fn rec() -> InteractionRecord {
        InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0))
    }

    fn customer() -> Customer {
        Customer::from([("id".to_string(), "cust-42".to_string())])
    }

    #[test]
    fn a_replaced_challenge_reads_as_it_had_ended() {
        let s = Settings::default();
        let pin = |at| Challenge::new_pin(Uuid::now_v7(), "00", &s.pin, at);
        let ttl = s.pin.ttl.get();
        let state = |r: &InteractionRecord, id, now| r.challenge_at(id, now).map(|(_, st)| st);
        // Open when a newer one comes: replaced.
        let mut r = rec();
        let open = pin(t(0));
        let open_id = open.id;
        r.open_new_challenge(open, t(0));
        r.open_new_challenge(pin(t(1)), t(1));
        assert_eq!(state(&r, open_id, t(2)), Some(ChallengeState::Replaced));
        // Past its end first: expired, also when a logout closes it.
        let mut r = rec();
        let old = pin(t(0));
        let old_id = old.id;
        r.open_new_challenge(old, t(0));
        let late = t(0).plus(ttl);
        r.open_new_challenge(pin(late), late);
        assert_eq!(state(&r, old_id, late), Some(ChallengeState::Expired));
        let newer = r.challenge.as_ref().map(|c| c.id).unwrap();
        let later = late.plus(ttl);
        r.log_out(later);
        assert_eq!(state(&r, newer, later), Some(ChallengeState::Expired));
        // Out of attempts first: exhausted.
        let mut r = rec();
        let mut spent = pin(t(0));
        spent.attempts_used = spent.max_attempts;
        let spent_id = spent.id;
        r.open_new_challenge(spent, t(0));
        r.open_new_challenge(pin(t(1)), t(1));
        assert_eq!(state(&r, spent_id, t(2)), Some(ChallengeState::Exhausted));
    }

    #[test]
    fn the_notice_then_the_expiry_come_due_and_are_announced_once() {
        let s = Settings {
            authenticated_ttl: Dur::from_secs(1800),
            expiry_notice: Dur::from_secs(60),
            ..Settings::default()
        };
        let mut r = rec();
        assert_eq!(r.next_announcement_at(&s), None, "not authenticated");
        r.authenticate(Method::LoginLink, customer(), t(0), &s);
        assert_eq!(r.next_announcement_at(&s), Some(t(1740)), "the notice");
        assert_eq!(r.announce_due(t(1739), &s), None, "not yet");
        assert_eq!(r.announce_due(t(1740), &s), Some(Announcement::Expiring));
        assert_eq!(r.announce_due(t(1741), &s), None, "once");
        assert_eq!(r.next_announcement_at(&s), Some(t(1800)), "then the end");
        assert_eq!(r.announce_due(t(1800), &s), Some(Announcement::Expired));
        assert_eq!(r.announce_due(t(1801), &s), None, "once");
        assert_eq!(r.next_announcement_at(&s), None, "nothing left");
    }

    #[test]
    fn a_late_sweep_announces_the_expiry_and_never_the_notice() {
        let s = Settings {
            authenticated_ttl: Dur::from_secs(1800),
            expiry_notice: Dur::from_secs(60),
            ..Settings::default()
        };
        let mut r = rec();
        r.authenticate(Method::LoginLink, customer(), t(0), &s);
        assert_eq!(r.announce_due(t(1900), &s), Some(Announcement::Expired));
        assert_eq!(r.next_announcement_at(&s), None);
        // Late, but still authenticated: the notice is sent late rather
        // than never, then the expiry at its time.
        let mut r = rec();
        r.authenticate(Method::LoginLink, customer(), t(0), &s);
        assert_eq!(r.announce_due(t(1799), &s), Some(Announcement::Expiring));
        assert_eq!(r.next_announcement_at(&s), Some(t(1800)));
        let off = Settings {
            expiry_notice: Dur::from_secs(0),
            ..s
        };
        let mut r = rec();
        r.authenticate(Method::LoginLink, customer(), t(0), &off);
        assert_eq!(r.next_announcement_at(&off), Some(t(1800)), "no notice");
        assert_eq!(r.announce_due(t(1799), &off), None);
    }

    #[test]
    fn authenticated_until_ttl_to_the_second() {
        let s = Settings {
            authenticated_ttl: Dur::from_secs(1800),
            ..Settings::default()
        };
        let mut r = rec();
        assert_eq!(
            r.status(t(0), &s, &Standing::Clear),
            Status::Unauthenticated
        );
        r.authenticate(Method::LoginLink, customer(), t(10), &s);
        assert_eq!(
            r.status(t(1809), &s, &Standing::Clear),
            Status::Authenticated
        );
        assert_eq!(r.status(t(1810), &s, &Standing::Clear), Status::Expired);
        assert_eq!(r.auth_ends_at(&s), Some(t(1810)));
    }

    #[test]
    fn idle_timeout_expires_before_absolute_end_and_activity_extends_it() {
        let s = Settings {
            authenticated_ttl: Dur::from_secs(1800),
            idle_timeout: Dur::from_secs(300),
            ..Settings::default()
        };
        let mut r = rec();
        r.authenticate(Method::PreChat, customer(), t(0), &s);
        assert_eq!(
            r.status(t(299), &s, &Standing::Clear),
            Status::Authenticated
        );
        r.touch_activity(t(299), &s);
        assert_eq!(
            r.status(t(500), &s, &Standing::Clear),
            Status::Authenticated
        );
        assert_eq!(r.status(t(599), &s, &Standing::Clear), Status::Expired);
        // Activity after the idle end does not revive the authentication.
        r.touch_activity(t(700), &s);
        assert_eq!(r.status(t(701), &s, &Standing::Clear), Status::Expired);
        assert_eq!(r.auth_ends_at(&s), Some(t(599)));
    }

    #[test]
    fn activity_never_extends_past_the_absolute_end() {
        let s = Settings {
            authenticated_ttl: Dur::from_secs(1800),
            idle_timeout: Dur::from_secs(300),
            ..Settings::default()
        };
        let mut r = rec();
        r.authenticate(Method::PreChat, customer(), t(0), &s);
        for m in 1..=6 {
            r.touch_activity(t(m * 290), &s);
        }
        assert_eq!(r.auth_ends_at(&s), Some(t(1800)));
    }

    #[test]
    fn lock_and_ban_win_and_authentication_returns_after_lock() {
        let s = Settings::default();
        let mut r = rec();
        r.authenticate(Method::Otp, customer(), t(0), &s);
        let locked = Standing::Locked { until: t(100) };
        assert_eq!(r.status(t(50), &s, &locked), Status::Locked);
        assert_eq!(
            r.status(t(50), &s, &Standing::Banned { until: None }),
            Status::Banned
        );
        assert_eq!(
            r.status(t(150), &s, &Standing::Clear),
            Status::Authenticated
        );
    }

    #[test]
    fn pending_while_a_link_is_valid_then_unauthenticated() {
        let s = Settings::default();
        let mut r = rec();
        r.add_link(
            Link {
                id: Uuid::now_v7(),
                expires_at: Some(t(600)),
                used: false,
                used_by: None,
                delivered_on: None,
            },
            t(0),
        );
        assert_eq!(r.status(t(599), &s, &Standing::Clear), Status::Pending);
        assert_eq!(
            r.status(t(600), &s, &Standing::Clear),
            Status::Unauthenticated
        );
        r.links[0].used = true;
        assert_eq!(
            r.status(t(10), &s, &Standing::Clear),
            Status::Unauthenticated
        );
    }

    #[test]
    fn logout_clears_method_and_forgetting_follows_last_write() {
        let s = Settings {
            interaction_ttl: Dur(Duration::from_secs(100)),
            ..Settings::default()
        };
        let mut r = rec();
        r.authenticate(Method::LoginLink, customer(), t(10), &s);
        r.log_out(t(20));
        assert_eq!(
            r.status(t(21), &s, &Standing::Clear),
            Status::Unauthenticated
        );
        assert!(r.auth.is_none());
        assert!(!r.is_forgotten(t(119), &s));
        assert!(r.is_forgotten(t(120), &s));
    }

    #[test]
    fn logout_ends_open_links_and_step_up() {
        let s = Settings::default();
        let mut r = rec();
        r.add_link(
            Link {
                id: Uuid::now_v7(),
                expires_at: Some(t(600)),
                used: false,
                used_by: None,
                delivered_on: None,
            },
            t(0),
        );
        r.authenticate(Method::LoginLink, customer(), t(1), &s);
        r.add_link(
            Link {
                id: Uuid::now_v7(),
                expires_at: Some(t(600)),
                used: false,
                used_by: None,
                delivered_on: None,
            },
            t(2),
        );
        assert!(r.is_pending(t(3)));
        r.log_out(t(3));
        assert!(r.links.iter().all(|l| l.used));
        assert_eq!(
            r.status(t(4), &s, &Standing::Clear),
            Status::Unauthenticated
        );
    }

    /// A record waiting for the binding code of a login proven at `t(10)`.
    fn bound(s: &Settings) -> (InteractionRecord, Uuid) {
        let mut r = rec();
        let pepper = crate::domain::secrets::Pepper::new("test-pepper");
        let cid = Uuid::now_v7();
        let code = crate::domain::otp::derive(&pepper, cid, s.otp.length);
        let ch = Challenge::new_binding(cid, &code, &pepper, &s.otp, t(10));
        r.open_new_challenge(ch, t(10));
        r.binding = Some(PendingBinding {
            challenge_id: cid,
            customer: customer(),
            proven_at: Some(t(10)),
            method: Method::LoginLink,
            via: Vec::new(),
            sign_in: SignIn::default(),
        });
        (r, cid)
    }

    #[test]
    fn a_binding_lives_with_its_challenge_and_a_logout_of_its_customer_finds_it() {
        let s = Settings::default();
        let (r, cid) = bound(&s);
        let end = t(10).plus(s.otp.ttl.get());
        assert_eq!(r.live_binding(t(11)).map(|b| b.challenge_id), Some(cid));
        assert!(r.signed_in_as("cust-42", t(11), &s));
        assert!(!r.signed_in_as("cust-43", t(11), &s));
        // Expired: gone for good, and nobody's any more.
        assert!(r.live_binding(end).is_none());
        assert!(!r.signed_in_as("cust-42", end, &s));
        // Another challenge replaces it.
        let (mut r, _) = bound(&s);
        let pin = Challenge::new_pin(Uuid::now_v7(), "00", &s.pin, t(12));
        r.open_new_challenge(pin, t(12));
        assert!(r.live_binding(t(13)).is_none());
        // A logout ends it.
        let (mut r, _) = bound(&s);
        r.log_out(t(12));
        assert!(r.binding.is_none() && r.live_binding(t(13)).is_none());
    }

    #[test]
    fn a_bound_login_counts_from_its_proof() {
        let s = Settings::default();
        let (mut r, _) = bound(&s);
        r.authenticate_since(Method::LoginLink, customer(), Vec::new(), t(10), t(40), &s);
        let auth = r.auth.as_ref().unwrap();
        assert_eq!(auth.authenticated_at, t(10));
        assert_eq!(auth.expires_at, t(10).plus(s.authenticated_ttl.get()));
        assert_eq!(r.last_activity_at, t(40));
        assert!(r.binding.is_none() && r.challenge.is_none());
        // A proof never lies in the future.
        r.authenticate_since(Method::LoginLink, customer(), Vec::new(), t(90), t(50), &s);
        assert_eq!(r.auth.as_ref().unwrap().authenticated_at, t(50));
    }

    #[test]
    fn link_list_is_bounded() {
        let mut r = rec();
        for _ in 0..40 {
            r.add_link(
                Link {
                    id: Uuid::now_v7(),
                    expires_at: None,
                    used: false,
                    used_by: None,
                    delivered_on: None,
                },
                t(0),
            );
        }
        assert_eq!(r.links.len(), MAX_LINKS);
    }
}
