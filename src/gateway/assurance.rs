//! "Recent and strong enough for this action?" (docs/api.md#assurance-for-one-action): the
//! interaction's current authentication judged against a policy the caller
//! gives, or one named in the settings (`intents`).
use serde::Serialize;
use uuid::Uuid;

use super::{Gateway, InteractionView};
use crate::config::Team;
use crate::domain::assurance::{self, Policy, Unmet};
use crate::domain::interaction::{Method, Status};
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
    pub method: Option<Method>,
    pub authenticated_at: Option<Timestamp>,
    /// Whole seconds since `authenticated_at`; null when not authenticated.
    pub age_seconds: Option<u64>,
    /// What fails, in this order: `authenticated`, `max_age`, `method`.
    pub unmet: Vec<Unmet>,
}

impl Gateway {
    pub async fn assurance(
        &self,
        team: &Team,
        id: Uuid,
        ask: AssuranceAsk,
        now: Timestamp,
    ) -> Result<AssuranceView> {
        let pair = self.load_pair(team, id, now).await?;
        let rec = pair.rec()?;
        let settings = team.settings_for(&rec.channel);
        let policy = match ask {
            AssuranceAsk::Policy(p) => p,
            AssuranceAsk::Intent(name) => {
                let intent = settings.intents.get(&name).ok_or_else(|| {
                    Error::invalid("intent", "is not an intent of this interaction's settings")
                })?;
                Policy {
                    max_age: intent.max_age.and_then(|d| d.enabled()),
                    methods: intent
                        .methods
                        .as_ref()
                        .map(|ms| ms.iter().copied().map(Method::from).collect()),
                }
            }
        };
        let view = InteractionView::build(rec, pair.subject.value.as_ref(), settings, now);
        let verdict = assurance::assess(
            view.status,
            view.method,
            view.authenticated_at,
            &policy,
            now,
        );
        Ok(AssuranceView {
            interaction_id: view.id,
            satisfied: verdict.satisfied,
            status: view.status,
            method: view.method,
            authenticated_at: view.authenticated_at,
            age_seconds: verdict.age_seconds,
            unmet: verdict.unmet,
        })
    }
}
