//! The interaction: one conversation on one channel, and the rules that say
//! whether it is authenticated *now* (CONTRACT 3.3, 3.8).
//!
//! Status is always computed from stored timestamps and the caller's `now`,
//! never from whether background work has run: a read one second after
//! `expires_at` says `expired`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::challenge::{Challenge, PastChallenge};
use super::subject::Standing;
use crate::config::Settings;
use crate::time::Timestamp;

/// How an interaction was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    LoginLink,
    PreChat,
    Otp,
    Pin,
}

impl From<crate::config::AuthMethod> for Method {
    fn from(m: crate::config::AuthMethod) -> Self {
        use crate::config::AuthMethod as A;
        match m {
            A::LoginLink => Method::LoginLink,
            A::PreChat => Method::PreChat,
            A::Otp => Method::Otp,
            A::Pin => Method::Pin,
        }
    }
}

impl Method {
    /// The method named `s` (`login_link`, `pre_chat`, `otp`, `pin`).
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::LoginLink => "login_link",
            Method::PreChat => "pre_chat",
            Method::Otp => "otp",
            Method::Pin => "pin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Unauthenticated,
    Pending,
    Authenticated,
    Expired,
    Locked,
    Banned,
}

impl Status {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// Where out-of-band messages go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
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

/// A current (or past) authentication.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub method: Method,
    pub authenticated_at: Timestamp,
    /// Absolute end: `authenticated_at + authenticated_ttl`.
    pub expires_at: Timestamp,
    pub customer: Customer,
}

/// A login link issued for this interaction. The link id is the token's `jti`;
/// keeping it here makes "one-time" atomic with the authentication it grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub id: Uuid,
    /// `None` when `token_ttl` is "0s".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// Always written: versions before empty members were left out
    /// require it, and may share a store with this one during an upgrade.
    #[serde(default)]
    pub used: bool,
    /// The signed callback that used it, and what it was answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<LinkUse>,
}

/// The callback that used a login link, remembered with its answer: the
/// login page's retry of the same signed request (same `webhook-id`, as
/// Standard Webhooks intends for retries) gets the same answer again and
/// changes nothing, also when the first answer never reached it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkUse {
    /// Digest of the callback's `webhook-id` (`webhook_sig::id_digest`).
    pub webhook_id: String,
    pub answer: CallbackAnswer,
}

/// What a login callback was answered. Written `{"kind": "authenticated",
/// "expires_at": …}`; read through [`RawAnswer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", try_from = "RawAnswer")]
pub enum CallbackAnswer {
    Authenticated {
        expires_at: Option<Timestamp>,
    },
    /// Waiting for the binding code typed into the chat (the code itself is
    /// not kept: a retry gets a fresh one).
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

/// A [`CallbackAnswer`] as read: the same members, one flat struct. (serde
/// reads an internally tagged enum by buffering the whole object first and
/// reading it again; every used link of a record keeps one, and every write
/// of the record reads them all.)
#[derive(Deserialize)]
struct RawAnswer {
    kind: AnswerKind,
    #[serde(default)]
    expires_at: Option<Timestamp>,
    #[serde(default)]
    challenge_id: Option<Uuid>,
    #[serde(default)]
    until: Option<Timestamp>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum AnswerKind {
    Authenticated,
    Bound,
    NotAuthenticated,
    Locked,
    Banned,
    CustomerMismatch,
}

impl TryFrom<RawAnswer> for CallbackAnswer {
    type Error = &'static str;

    fn try_from(raw: RawAnswer) -> Result<Self, Self::Error> {
        Ok(match raw.kind {
            AnswerKind::Authenticated => CallbackAnswer::Authenticated {
                expires_at: raw.expires_at,
            },
            AnswerKind::Bound => match (raw.challenge_id, raw.expires_at) {
                (Some(challenge_id), Some(expires_at)) => CallbackAnswer::Bound {
                    challenge_id,
                    expires_at,
                },
                _ => return Err("a bound answer without its challenge or end"),
            },
            AnswerKind::NotAuthenticated => CallbackAnswer::NotAuthenticated,
            AnswerKind::Locked => CallbackAnswer::Locked {
                until: raw.until.ok_or("a locked answer without its end")?,
            },
            AnswerKind::Banned => CallbackAnswer::Banned,
            AnswerKind::CustomerMismatch => CallbackAnswer::CustomerMismatch,
        })
    }
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingBinding {
    /// The binding challenge; the login completes only through it.
    pub challenge_id: Uuid,
    /// Whom the login page proved.
    pub customer: Customer,
}

/// The stored interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionRecord {
    pub id: Uuid,
    pub team: String,
    pub channel: String,
    pub conversation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_ref: Option<String>,
    /// Keyed hash of the session PIN; the PIN itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pin_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    pub contact: Contact,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
    /// Every write refreshes this; the interaction is forgotten
    /// `interaction_ttl` after it.
    pub last_write_at: Timestamp,
    /// The current authentication, kept after it expires (status `expired`)
    /// and removed by a logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Authentication>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub past_challenges: Vec<PastChallenge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<PendingStepUp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding: Option<PendingBinding>,
    /// The end for which `interaction.expired` was already emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_announced: Option<Timestamp>,
    /// The end for which `interaction.expiring` was already emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiring_announced: Option<Timestamp>,
    /// Until when the store keeps what points here (the conversation key,
    /// the entries in the team's listing and in its customers' indexes):
    /// set a little past the record's own end when a write extends them,
    /// so the writes before it need not.
    /// Absent in records written before it existed (or by such a gateway):
    /// the next write extends them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_until: Option<Timestamp>,
}

/// The subject of an interaction without a `customer_ref`:
/// `interaction:{id}` (the canonical, lower-case UUID).
pub fn own_subject(id: impl std::fmt::Display) -> String {
    format!("interaction:{id}")
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
            indexed_until: None,
        }
    }

    /// Whom lockouts apply to: the `customer_ref`, else the interaction.
    pub fn subject(&self) -> String {
        match &self.customer_ref {
            Some(r) => r.clone(),
            None => own_subject(self.id),
        }
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

    /// Authenticated at `now`, ignoring locks and bans.
    pub fn is_authenticated(&self, now: Timestamp, s: &Settings) -> bool {
        self.auth_ends_at(s).is_some_and(|end| now < end)
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
    pub fn end_step_up(&mut self) {
        self.step_up = None;
        if self.challenge.as_ref().is_some_and(|c| c.step_up) {
            super::challenge::close(self);
        }
    }

    /// Ends a login waiting for its binding code, and the binding challenge:
    /// a new link, a logout or another authentication leaves nothing that
    /// could finish it.
    pub fn end_binding(&mut self) {
        if let Some(b) = self.binding.take() {
            if self
                .challenge
                .as_ref()
                .is_some_and(|c| c.id == b.challenge_id)
            {
                super::challenge::close(self);
            }
        }
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

    /// The status at `now`, given the subject's standing (CONTRACT 3.3 order).
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
    /// before the new activity is recorded (CONTRACT 3.8).
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
        self.auth = Some(Authentication {
            method,
            authenticated_at: now,
            expires_at: now.plus(s.authenticated_ttl.get()),
            customer,
        });
        self.end_step_up();
        self.end_binding();
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
        self.end_step_up();
        self.end_binding();
        for link in &mut self.links {
            link.used = true;
        }
        super::challenge::close(self);
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
    /// as them (or as its `customer_ref`), or a pending step-up for them? A
    /// website's logout of that customer ends both.
    pub fn signed_in_as(&self, customer_id: &str, now: Timestamp, s: &Settings) -> bool {
        (self.is_authenticated(now, s) && self.belongs_to(customer_id))
            || self.step_up_customer(now) == Some(customer_id)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Dur;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn rec() -> InteractionRecord {
        InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0))
    }

    fn customer() -> Customer {
        Customer::from([("id".to_string(), "cust-42".to_string())])
    }

    /// Empty members are left out of the stored form (every record is read
    /// and written on every request, and kept per live interaction), and
    /// the form with them written out (as earlier versions stored it) reads
    /// the same.
    #[test]
    fn stored_form_leaves_empty_members_out_and_reads_the_long_form() {
        let mut r = rec();
        let short = serde_json::to_string(&r).unwrap();
        for empty in [
            "null",
            "[]",
            "{}",
            "false",
            "customer_ref",
            "links",
            "past_challenges",
        ] {
            assert!(!short.contains(empty), "{empty} in {short}");
        }
        let mut long: serde_json::Value = serde_json::from_str(&short).unwrap();
        for (k, v) in [
            ("customer_ref", serde_json::json!(null)),
            ("session_pin_hash", serde_json::json!(null)),
            ("contact", serde_json::json!({})),
            ("auth", serde_json::json!(null)),
            ("links", serde_json::json!([])),
            ("challenge", serde_json::json!(null)),
            ("past_challenges", serde_json::json!([])),
            ("step_up", serde_json::json!(null)),
            ("expiry_announced", serde_json::json!(null)),
            ("expiring_announced", serde_json::json!(null)),
        ] {
            long[k] = v;
        }
        assert_eq!(
            serde_json::from_value::<InteractionRecord>(long).unwrap(),
            r
        );

        // A link without expiry has none written; `used` is always written
        // (earlier versions require it).
        r.links.push(Link {
            id: Uuid::now_v7(),
            expires_at: None,
            used: false,
            used_by: None,
        });
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(&format!(
            r#""links":[{{"id":"{}","used":false}}]"#,
            r.links[0].id
        )));
        assert_eq!(serde_json::from_str::<InteractionRecord>(&text).unwrap(), r);
        r.links[0].used = true;
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""used":true"#));
        assert_eq!(serde_json::from_str::<InteractionRecord>(&text).unwrap(), r);
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
                },
                t(0),
            );
        }
        assert_eq!(r.links.len(), MAX_LINKS);
    }

    /// The derived reader [`RawAnswer`] replaces, kept to hold it to.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Derived {
        Authenticated {
            expires_at: Option<Timestamp>,
        },
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

    impl From<CallbackAnswer> for Derived {
        fn from(a: CallbackAnswer) -> Self {
            match a {
                CallbackAnswer::Authenticated { expires_at } => {
                    Derived::Authenticated { expires_at }
                }
                CallbackAnswer::Bound {
                    challenge_id,
                    expires_at,
                } => Derived::Bound {
                    challenge_id,
                    expires_at,
                },
                CallbackAnswer::NotAuthenticated => Derived::NotAuthenticated,
                CallbackAnswer::Locked { until } => Derived::Locked { until },
                CallbackAnswer::Banned => Derived::Banned,
                CallbackAnswer::CustomerMismatch => Derived::CustomerMismatch,
            }
        }
    }

    #[test]
    fn callback_answers_read_as_the_derived_reader_read_them() {
        let answers = [
            CallbackAnswer::Authenticated {
                expires_at: Some(t(60)),
            },
            CallbackAnswer::Authenticated { expires_at: None },
            CallbackAnswer::Bound {
                challenge_id: Uuid::now_v7(),
                expires_at: t(5),
            },
            CallbackAnswer::NotAuthenticated,
            CallbackAnswer::Locked { until: t(900) },
            CallbackAnswer::Banned,
            CallbackAnswer::CustomerMismatch,
        ];
        for a in answers {
            let text = serde_json::to_string(&a).expect("encode");
            let read: CallbackAnswer = serde_json::from_str(&text).expect("read");
            assert_eq!(read, a, "{text}");
            let derived: Derived = serde_json::from_str(&text).expect("derived");
            assert_eq!(derived, Derived::from(a), "{text}");
        }
        let id = Uuid::nil();
        for text in [
            // Accepted alike: members of another kind or unknown ones are ignored.
            r#"{"kind":"banned","until":"2026-11-23T12:00:00Z"}"#.to_string(),
            r#"{"kind":"authenticated"}"#.to_string(),
            r#"{"expires_at":null,"kind":"authenticated","later":1}"#.to_string(),
            format!(
                r#"{{"kind":"bound","challenge_id":"{id}","expires_at":"2026-11-23T12:00:00Z"}}"#
            ),
            // Refused alike.
            r#"{"kind":"bound","expires_at":"2026-11-23T12:00:00Z"}"#.to_string(),
            format!(r#"{{"kind":"bound","challenge_id":"{id}"}}"#),
            r#"{"kind":"locked"}"#.to_string(),
            r#"{"kind":"locked","until":"soon"}"#.to_string(),
            r#"{"kind":"granted"}"#.to_string(),
            r#"{"until":"2026-11-23T12:00:00Z"}"#.to_string(),
            r#"{"kind":"banned","kind":"banned"}"#.to_string(),
            r#""banned""#.to_string(),
        ] {
            let read = serde_json::from_str::<CallbackAnswer>(&text)
                .ok()
                .map(Derived::from);
            let derived = serde_json::from_str::<Derived>(&text).ok();
            assert_eq!(read, derived, "{text}");
        }
    }
}
