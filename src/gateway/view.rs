//! The interaction object of the API (docs/api.md#the-interaction-object), computed from the
//! stored record, the subject and `now`.
use serde::Serialize;
use uuid::Uuid;

use crate::config::Settings;
use crate::domain::challenge::{ChallengeMethod, Delivery};
use crate::domain::interaction::{Contact, Customer, InteractionRecord, Method, Status};
use crate::domain::recognition::Recognition;
use crate::domain::subject::{Standing, SubjectRecord};
use crate::time::Timestamp;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OpenChallengeView {
    pub challenge_id: Uuid,
    pub method: ChallengeMethod,
    pub delivery: Delivery,
    pub expires_at: Timestamp,
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
    pub customer_ref: Option<String>,
    pub status: Status,
    pub authenticated: bool,
    pub method: Option<Method>,
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
    /// on a channel that does not vouch for its sender, and while the
    /// subject is locked or banned. Changes nothing of `status`,
    /// `authenticated` or `method`.
    pub recognized: Option<RecognizedView>,
}

impl InteractionView {
    pub fn build(
        rec: &InteractionRecord,
        subject: Option<&SubjectRecord>,
        s: &Settings,
        now: Timestamp,
    ) -> Self {
        Self::build_recognized(rec, subject, None, s, now)
    }

    /// [`Self::build`], with what the interaction's conversation remembers.
    pub fn build_recognized(
        rec: &InteractionRecord,
        subject: Option<&SubjectRecord>,
        recognition: Option<&Recognition>,
        s: &Settings,
        now: Timestamp,
    ) -> Self {
        // With lockout scope "origin", the interaction's own origin's.
        let origin = rec.lockout_origin(s);
        let standing = subject.map_or(Standing::Clear, |sub| {
            sub.standing_for(origin.as_deref(), now)
        });
        let status = rec.status(now, s, &standing);
        let auth = rec.auth.as_ref();
        InteractionView {
            id: rec.id,
            team: rec.team.clone(),
            channel: rec.channel.clone(),
            conversation_id: rec.conversation_id.clone(),
            customer_ref: rec.customer_ref.clone(),
            status,
            authenticated: status == Status::Authenticated,
            method: auth.map(|a| a.method),
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
                method: c.method,
                delivery: c.delivery,
                expires_at: c.expires_at,
            }),
            contact: rec.contact.clone(),
            created_at: rec.created_at,
            last_activity_at: rec.last_activity_at,
            recognized: recognition
                .filter(|r| r.shown(now, &standing))
                .map(|r| RecognizedView {
                    customer_id: r.customer_id.clone(),
                    method: r.method,
                    authenticated_at: r.authenticated_at,
                    until: r.until,
                }),
        }
    }
}
