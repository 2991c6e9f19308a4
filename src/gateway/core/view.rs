//! What the API answers (docs/api.md#the-interaction-object): the
//! interaction object, computed from the stored record, the subject and
//! `now`; and the subject's counts. The API's names of the domain's
//! enums are the events' too (`events::views`).
use serde::Serialize;
use uuid::Uuid;

use crate::config::{Settings, Team};
use crate::domain::interaction::{Customer, InteractionRecord};
use crate::domain::recognition::Recognition;
use crate::domain::subject::{OriginCounts, Standing, SubjectCounts, SubjectRecord};
use crate::domain::{assurance, bsuid, interaction};
use crate::time::Timestamp;

pub use crate::events::views::{
    ChallengeMethod, ChallengeState, ConversationKind, Delivery, DeliveryStatus, Method,
    NetworkResult, Status, StepUpReason, Unmet,
};

/// Where out-of-band messages go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl From<&interaction::Contact> for Contact {
    fn from(c: &interaction::Contact) -> Self {
        // Every field named: one the domain gains fails to compile here.
        let interaction::Contact { phone, email } = c;
        Contact {
            phone: phone.clone(),
            email: email.clone(),
        }
    }
}

/// An origin as `GET /v1/subjects/{subject}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OriginView {
    /// `device:{fingerprint}` or `{channel}:{conversation_id}`.
    pub origin: String,
    pub familiar: bool,
    pub failures: u32,
    pub lockouts: u32,
    pub locked_until: Option<Timestamp>,
    pub banned: bool,
}

impl From<OriginCounts> for OriginView {
    fn from(o: OriginCounts) -> Self {
        let OriginCounts {
            origin,
            familiar,
            failures,
            lockouts,
            locked_until,
            banned,
        } = o;
        OriginView {
            origin,
            familiar,
            failures,
            lockouts,
            locked_until,
            banned,
        }
    }
}

/// The subject as `GET /v1/subjects/{subject}` and subject events show it.
///
/// With `lockout.scope = "origin"` the top-level counts are the strangers'
/// (the origins the subject never succeeded from), and `origins` and
/// `strangers_locked_until` are present; with scope `subject` they are left
/// out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubjectView {
    pub subject: String,
    pub failures: u32,
    pub lockouts: u32,
    pub locked_until: Option<Timestamp>,
    pub banned: bool,
    /// Scope `origin`: the subject's origins, most recent first, at most 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<OriginView>>,
    /// Scope `origin`: until when every unfamiliar origin is locked out
    /// (null when not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub strangers_locked_until: Option<Option<Timestamp>>,
}

impl From<SubjectCounts> for SubjectView {
    fn from(c: SubjectCounts) -> Self {
        let SubjectCounts {
            subject,
            failures,
            lockouts,
            locked_until,
            banned,
            origins,
            strangers_locked_until,
        } = c;
        SubjectView {
            subject,
            failures,
            lockouts,
            locked_until,
            banned,
            origins: origins.map(|os| os.into_iter().map(OriginView::from).collect()),
            strangers_locked_until,
        }
    }
}

impl SubjectView {
    /// `rec`'s counts at `now` under the team's lockout settings.
    pub fn of(
        rec: &SubjectRecord,
        now: Timestamp,
        l: &crate::domain::settings::LockoutSettings,
    ) -> Self {
        rec.counts(now, l).into()
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OpenChallengeView {
    pub challenge_id: Uuid,
    pub method: ChallengeMethod,
    pub delivery: Delivery,
    pub expires_at: Timestamp,
    /// An open `app` challenge's binding code, in `GET
    /// /v1/interactions/{id}` for agent and admin keys only
    /// (docs/api.md#approval-in-the-customers-app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_code: Option<String>,
    /// How far its message got, as the provider reports it
    /// (docs/api.md#delivery-status); null when nothing was sent.
    pub delivery_status: Option<DeliveryStatus>,
    /// With `delivery: "ladder"`: the step that has the code now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// With `delivery: "ladder"`: its steps, in order, and where the code
    /// is (docs/api.md#delivery-ladder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Vec<LadderStepView>>,
}

/// One step of an open challenge's delivery ladder.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LadderStepView {
    pub channel: String,
    /// `left` (it had the code, the ladder moved on), `current` (it has
    /// the code), `passed` (skipped: no destination, refused, or its
    /// provider refused the message) or `ahead` (not reached).
    pub step: LadderStep,
    /// For `left`: how far its message had got when the ladder moved on;
    /// for `current`: the challenge's `delivery_status`; else null.
    pub delivery_status: Option<DeliveryStatus>,
}

/// Where a ladder step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LadderStep {
    Left,
    Current,
    Passed,
    Ahead,
}

impl LadderStepView {
    /// The steps of `c`'s ladder, if it has one.
    fn of(c: &crate::domain::challenge::Challenge) -> Option<Vec<LadderStepView>> {
        let l = c.ladder()?;
        let current = l.current().map(|s| s.index);
        Some(
            l.steps
                .iter()
                .enumerate()
                .map(|(i, channel)| {
                    let sent = l.sent.iter().find(|s| s.index == i);
                    let (step, status) = match sent {
                        Some(_) if Some(i) == current => (
                            LadderStep::Current,
                            c.delivery_state.as_ref().map(|d| d.status),
                        ),
                        Some(s) => (LadderStep::Left, s.left_at),
                        None if current.is_some_and(|at| i < at) => (LadderStep::Passed, None),
                        None => (LadderStep::Ahead, None),
                    };
                    LadderStepView {
                        channel: channel.clone(),
                        step,
                        delivery_status: status.map(Into::into),
                    }
                })
                .collect(),
        )
    }
}

/// The conversation remembers who authenticated in it
/// (docs/api.md#recognized-conversations): being recognized is not being
/// authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecognizedView {
    pub customer_id: String,
    /// How the remembered authentication was made.
    pub method: Method,
    /// When the remembered authentication was made.
    pub authenticated_at: Timestamp,
    /// When the conversation is no longer recognized (`recognize_for`).
    pub until: Timestamp,
}

/// What bots, agents and events see of an interaction. Never the PIN.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InteractionView {
    pub id: Uuid,
    pub team: String,
    pub channel: String,
    pub conversation_id: String,
    /// On a WhatsApp channel (`whatsapp`, or `twilio` sending WhatsApp):
    /// whether `conversation_id` is the customer's number or a
    /// business-scoped user id; absent on other channels
    /// (docs/channels.md#business-scoped-user-ids).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub conversation_kind: Option<ConversationKind>,
    pub customer_ref: Option<String>,
    pub status: Status,
    pub authenticated: bool,
    pub method: Option<Method>,
    /// The `acr` the team's identity provider's ID token said of the
    /// current (or last) authentication (method `oidc`); null for any other
    /// authentication, and when the token said none
    /// (docs/api.md#the-interaction-object).
    #[schema(example = "phrh")]
    pub acr: Option<String>,
    /// The ID token's `amr`, as `acr`.
    pub amr: Option<Vec<String>>,
    pub authenticated_at: Option<Timestamp>,
    /// When the current (or last) authentication ends or ended.
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<Object>)]
    pub customer: Option<Customer>,
    pub locked_until: Option<Timestamp>,
    pub has_session_pin: bool,
    pub open_challenge: Option<OpenChallengeView>,
    pub contact: Contact,
    pub created_at: Timestamp,
    pub last_activity_at: Timestamp,
    /// The customer its conversation remembers; null when not remembered,
    /// on a channel that does not vouch for its sender, while the subject
    /// is locked or banned, and when `customer_ref` names another customer.
    /// Changes nothing of `status`, `authenticated` or `method`.
    pub recognized: Option<RecognizedView>,
    /// The channels the message that proved the customer went through, in
    /// order: every channel an OTP's code was sent on, or the channel that
    /// delivered a login link (`deliver: true`); null otherwise
    /// (docs/api.md#delivery-ladder).
    pub via: Option<Vec<String>>,
    /// The language the gateway speaks in this conversation: the entry of
    /// `locale.supported` the requested tag looks up, else `locale.default`
    /// (docs/api.md#languages).
    #[schema(example = "es")]
    pub locale: String,
    /// The tag as a request (or the pre-chat assertion) asked for it;
    /// null when none was.
    #[schema(example = "es-MX")]
    pub requested_locale: Option<String>,
}

impl InteractionView {
    pub fn build(
        rec: &InteractionRecord,
        subject: Option<&SubjectRecord>,
        team: &Team,
        now: Timestamp,
    ) -> Self {
        let s = team.settings_for(&rec.channel);
        Self::build_recognized(rec, subject, None, None, s, now)
            .in_conversation(team.conversation_kind(rec))
    }

    /// The view, saying what names its WhatsApp conversation (`None`: not
    /// a WhatsApp channel).
    pub fn in_conversation(mut self, kind: Option<bsuid::ConversationKind>) -> Self {
        self.conversation_kind = kind.map(ConversationKind::from);
        self
    }

    /// [`Self::build`], with what the interaction's conversation remembers
    /// and the remembered customer's subject, when that is not the
    /// interaction's own (`None`: the same, or never seen).
    pub fn build_recognized(
        rec: &InteractionRecord,
        subject: Option<&SubjectRecord>,
        recognition: Option<&Recognition>,
        remembered: Option<&SubjectRecord>,
        s: &Settings,
        now: Timestamp,
    ) -> Self {
        let Seen {
            standing,
            status,
            recognition,
        } = seen(rec, subject, recognition, remembered, s, now);
        let auth = rec.auth.as_ref();
        InteractionView {
            id: rec.id,
            team: rec.team.clone(),
            channel: rec.channel.clone(),
            conversation_id: rec.conversation_id.clone(),
            conversation_kind: None,
            customer_ref: rec.customer_ref.clone(),
            status: status.into(),
            authenticated: status == interaction::Status::Authenticated,
            method: auth.map(|a| a.method),
            acr: auth.and_then(|a| a.sign_in.acr.clone()),
            amr: auth.and_then(|a| a.sign_in.amr.clone()),
            authenticated_at: auth.map(|a| a.authenticated_at),
            expires_at: rec.auth_ends_at(s),
            // An OTP or PIN success without a customer_ref proves no one in particular.
            customer: auth.map(|a| a.customer.clone()).filter(|c| !c.is_empty()),
            locked_until: match standing {
                Standing::Locked { until } => Some(until),
                _ => None,
            },
            has_session_pin: rec.session_pin_hash.is_some(),
            open_challenge: rec.open_challenge(now).map(|c| OpenChallengeView {
                challenge_id: c.id,
                method: c.method(),
                delivery: c.delivery.into(),
                expires_at: c.expires_at,
                binding_code: None,
                delivery_status: c.delivery_state.as_ref().map(|d| d.status.into()),
                channel: c.ladder().and(c.channel.clone()),
                ladder: LadderStepView::of(c),
            }),
            contact: Contact::from(&rec.contact),
            created_at: rec.created_at,
            last_activity_at: rec.last_activity_at,
            recognized: recognition.map(|r| RecognizedView {
                customer_id: r.customer_id.clone(),
                method: r.method,
                authenticated_at: r.authenticated_at,
                until: r.until,
            }),
            via: auth.map(|a| a.via.clone()).filter(|v| !v.is_empty()),
            locale: rec.locale(&s.locale).to_string(),
            requested_locale: rec.requested_locale.as_ref().map(|l| l.tag.clone()),
        }
    }
}

/// What the view and [`shown`] both read of an interaction at some moment:
/// where its subject stands, its status, and the recognition it shows (if
/// any). One function, so the answer and assurance's verdict beside it
/// never disagree.
struct Seen<'r> {
    standing: Standing,
    status: interaction::Status,
    recognition: Option<&'r Recognition>,
}

fn seen<'r>(
    rec: &InteractionRecord,
    subject: Option<&SubjectRecord>,
    recognition: Option<&'r Recognition>,
    remembered: Option<&SubjectRecord>,
    s: &Settings,
    now: Timestamp,
) -> Seen<'r> {
    // The remembered customer's standing too, for the same origin
    // (docs/decisions/0101-the-remembered-customers-standing.md).
    let theirs = standing(rec, remembered, s, now);
    let standing = standing(rec, subject, s, now);
    let customer_ref = rec.customer_ref.as_deref();
    Seen {
        status: rec.status(now, s, &standing),
        recognition: recognition
            .filter(|_| !rec.recognition_refused)
            .filter(|r| r.shown(now, &standing, &theirs, customer_ref)),
        standing,
    }
}

/// Where the subject stands for `rec`: with lockout scope "origin", the
/// interaction's own origin's.
fn standing(
    rec: &InteractionRecord,
    subject: Option<&SubjectRecord>,
    s: &Settings,
    now: Timestamp,
) -> Standing {
    let origin = rec.lockout_origin(s);
    subject.map_or(Standing::Clear, |sub| {
        sub.standing_for(origin.as_deref(), now)
    })
}

/// What the interaction's view shows of its authentication at `now`, in
/// the domain's terms (for `domain::assurance`).
pub fn shown(
    rec: &InteractionRecord,
    subject: Option<&SubjectRecord>,
    recognition: Option<&Recognition>,
    remembered: Option<&SubjectRecord>,
    s: &Settings,
    now: Timestamp,
) -> assurance::Shown {
    let seen = seen(rec, subject, recognition, remembered, s, now);
    let auth = rec.auth.as_ref();
    assurance::Shown {
        status: seen.status,
        method: auth.map(|a| a.method),
        authenticated_at: auth.map(|a| a.authenticated_at),
        via: auth.map(|a| a.via.clone()).unwrap_or_default(),
        recognized_at: seen.recognition.map(|r| r.authenticated_at),
        // Told by the caller, which knows the channels' kinds.
        by_phone_code: false,
        number_check: auth.and_then(|a| a.number_check),
        transaction_hash: auth.and_then(|a| a.transaction_hash.clone()),
        acr: auth.and_then(|a| a.sign_in.acr.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Under origin scope the remembered customer stands as they do for
    /// the interaction's own origin
    /// (docs/decisions/0101-the-remembered-customers-standing.md): the
    /// strangers locked elsewhere hide nothing in a conversation familiar
    /// to them; that conversation's own lock does.
    #[test]
    fn the_remembered_customer_stands_as_for_the_interactions_origin() {
        let t = |s: i64| Timestamp::from_unix_seconds(1_800_000_000 + s);
        let mut s = Settings::default();
        s.lockout.scope = crate::domain::abuse::LockoutScope::Origin;
        s.lockout.threshold = 1;
        s.lockout.strangers_threshold = 1;
        let rec = InteractionRecord::new(Uuid::now_v7(), "acme", "sms", "+15550001", t(0));
        let here = rec.origin();
        let r = Recognition {
            customer_id: "cust-42".into(),
            method: interaction::Method::Otp,
            authenticated_at: t(0),
            until: t(86_400),
        };
        let mut theirs = SubjectRecord::new("cust-42");
        theirs.record_success_for(Some(&here), t(1), &s.lockout);
        let shown = |theirs: &SubjectRecord| {
            let v = InteractionView::build_recognized(&rec, None, Some(&r), Some(theirs), &s, t(3));
            v.recognized.is_some()
        };
        assert!(shown(&theirs));
        // A stranger's failure locks the strangers: not this familiar place.
        theirs.record_failure_for(Some("sms:+15559999"), t(2), &s.lockout, &s.otp);
        assert!(theirs.standing_for(Some("sms:+15559999"), t(3)) != Standing::Clear);
        assert!(shown(&theirs), "the strangers' lock hides nothing here");
        // A failure from this conversation locks it: hidden here.
        theirs.record_failure_for(Some(&here), t(2), &s.lockout, &s.otp);
        assert!(!shown(&theirs), "this origin's lock hides it");
    }

    #[test]
    fn an_empty_contact_is_an_empty_object() {
        let c = Contact::from(&interaction::Contact::default());
        assert_eq!(serde_json::to_string(&c).unwrap(), "{}");
        let c = Contact::from(&interaction::Contact {
            phone: Some("+15550100".into()),
            email: None,
        });
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"phone":"+15550100"}"#
        );
    }
}
