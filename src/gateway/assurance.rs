//! "Recent and strong enough for this action?" (docs/api.md#assurance-for-one-action): the
//! interaction's current authentication judged against a policy the caller
//! gives, or one named in the settings (`intents`).
use serde::Serialize;
use uuid::Uuid;

use super::view::{Method, Status, Unmet};
use super::Core;
use crate::config::{AuthMethod, Settings, Team};
use crate::domain::assurance::{self, Policy};
use crate::domain::destination_policy::Reach;
use crate::domain::interaction;
use crate::domain::number_check::NumberCheckRule;
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// What the caller asks for: its own policy, or a named intent.
#[derive(Debug, Clone)]
pub enum AssuranceAsk {
    Policy(Policy),
    Intent(String),
}

/// `GET /v1/interactions/{id}/assurance`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssuranceView {
    pub interaction_id: Uuid,
    pub satisfied: bool,
    pub status: Status,
    /// The interaction's method; `recognized` when it was judged by its
    /// recognized conversation (docs/api.md#recognized-conversations).
    pub method: Option<JudgedMethod>,
    /// Of the authentication judged: the remembered one when `method` is
    /// `recognized`.
    pub authenticated_at: Option<Timestamp>,
    /// Whole seconds since `authenticated_at`; null when not authenticated
    /// (nor judged by a recognized conversation).
    pub age_seconds: Option<u64>,
    /// What fails, in this order: `authenticated`, `max_age`, `method`,
    /// `via`, `number_check`, `transaction`.
    pub unmet: Vec<Unmet>,
}

/// The method an assurance answer names: the interaction's own, or
/// `recognized`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum JudgedMethod {
    Method(Method),
    Recognized(Recognized),
}

/// `"recognized"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recognized {
    Recognized,
}

pub async fn assurance(
    core: &Core,
    team: &Team,
    id: Uuid,
    ask: AssuranceAsk,
    transaction: Option<String>,
    now: Timestamp,
) -> Result<AssuranceView> {
    let pair = core.load_pair(team, id, now).await?;
    let rec = pair.rec()?;
    let settings = team.settings_for(&rec.channel);
    let mut policy = policy_of(settings, ask)?;
    policy.transaction = transaction;
    let view = pair.view(team, now)?;
    let mut shown = pair.shown(team, now)?;
    shown.by_phone_code = shown.method == Some(interaction::Method::Otp)
        && shown.via.iter().any(|c| {
            matches!(
                core.reach(c),
                Reach::Phone | Reach::PhoneChat | Reach::Voice
            )
        });
    let recognized_at = shown.recognized_at;
    let verdict = assurance::assess_shown(shown, &policy, now);
    let (method, authenticated_at) = if verdict.by_recognition {
        (
            Some(JudgedMethod::Recognized(Recognized::Recognized)),
            recognized_at,
        )
    } else {
        (view.method.map(JudgedMethod::Method), view.authenticated_at)
    };
    Ok(AssuranceView {
        interaction_id: view.id,
        satisfied: verdict.satisfied,
        status: view.status,
        method,
        authenticated_at,
        age_seconds: verdict.age_seconds,
        unmet: verdict.unmet.into_iter().map(Unmet::from).collect(),
    })
}

/// The policy `ask` names: its own, or the intent's of `settings`.
fn policy_of(settings: &Settings, ask: AssuranceAsk) -> Result<Policy> {
    Ok(match ask {
        AssuranceAsk::Policy(p) => p,
        AssuranceAsk::Intent(name) => {
            let intent = settings.intents.get(&name).ok_or_else(|| {
                Error::invalid("intent", "is not an intent of this interaction's settings")
            })?;
            let methods = intent.methods.as_ref();
            Policy {
                max_age: intent.max_age.and_then(|d| d.enabled()),
                methods: methods.map(|ms| {
                    ms.iter()
                        .filter_map(|m| interaction::Method::try_from(*m).ok())
                        .collect()
                }),
                recognized: methods.is_some_and(|ms| ms.contains(&AuthMethod::Recognized)),
                otp_via: intent.otp_via.clone(),
                number_clean: intent.number_check == Some(NumberCheckRule::Clean),
                transaction: None,
                acr: intent.acr.clone(),
            }
        }
    })
}
