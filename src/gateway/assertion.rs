//! Pre-chat identity assertions and their step-up (CONTRACT 3.6).
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::records::{put, retry, write_interaction, write_subject, Loaded};
use super::{Gateway, InteractionView};
use crate::config::Team;
use crate::domain::assertion;
use crate::domain::devices::{CustomerDevices, StepUpReason};
use crate::domain::interaction::{Customer, Method, PendingStepUp};
use crate::domain::subject::FailureOutcome;
use crate::error::{Error, Result};
use crate::store::keys;
use crate::time::Timestamp;

fn customer_of(a: &assertion::Assertion) -> Customer {
    let mut customer = Customer::from([("id".to_string(), a.sub.clone())]);
    for (k, v) in [("name", &a.name), ("email", &a.email), ("phone", &a.phone)] {
        if let Some(v) = v {
            customer.insert(k.to_string(), v.clone());
        }
    }
    customer
}

/// How long the fingerprints and region validated for a customer are remembered.
pub const DEVICES_TTL: Duration = Duration::from_secs(90 * 86_400);

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AssertionOutcome {
    pub authenticated: bool,
    pub requires_2fa: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<StepUpReason>,
    pub interaction: InteractionView,
}

impl Gateway {
    pub async fn accept_assertion(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        token: &str,
        now: Timestamp,
    ) -> Result<AssertionOutcome> {
        enum Verdict {
            Refused(Error),
            Mismatch(FailureOutcome),
            StepUp(StepUpReason),
            Success,
        }
        let (verdict, committed) = retry(|| async {
            let pair = self.load_pair(team, id, now).await?;
            let max_age = team
                .settings_for(&pair.rec()?.channel)
                .assertion_max_age
                .get();
            let a = assertion::verify(token, team, &self.config.server.issuer, max_age, now)?;
            let customer = customer_of(&a);
            let jti_key = keys::assertion_jti(&team.id, &a.jti);
            let dkey = keys::devices(&team.id, &a.sub);
            // The used-jti marker outlives every moment the assertion could be valid.
            let jti_ttl = Timestamp::from_unix_seconds(a.exp).since(now) + Duration::from_secs(10);
            let mut raw = self
                .store
                .get(&[jti_key.clone(), dkey.clone()])
                .await?
                .into_iter();
            if raw.next().flatten().is_some() {
                return Ok(Some((Verdict::Refused(Error::TokenUsed), None)));
            }
            let devices: Loaded<CustomerDevices> =
                Loaded::parse(dkey.clone(), raw.next().flatten())?;
            let mut rec = pair.rec()?.clone();
            let s = team.settings_for(&rec.channel);
            let mut subject = pair.subject_or_new()?;
            let mut devices_value = devices.value.clone().unwrap_or_default();
            let mut write_devices = false;
            let verdict = if let Err(e) = subject.ensure_clear(now) {
                Verdict::Refused(e)
            } else if rec.customer_ref.as_ref().is_some_and(|r| *r != a.sub) {
                Verdict::Mismatch(subject.record_failure(now, &s.lockout, &s.otp))
            } else if let Some(reason) = devices_value.step_up_reason(
                &s.step_up,
                a.fingerprint.as_deref(),
                a.region.as_deref(),
                &self.pepper,
            ) {
                rec.step_up = Some(PendingStepUp {
                    customer: customer.clone(),
                    fingerprint: a.fingerprint.clone(),
                    region: a.region.clone(),
                    until: Timestamp::from_unix_seconds(a.exp),
                });
                Verdict::StepUp(reason)
            } else {
                subject.record_success();
                rec.authenticate(Method::PreChat, customer.clone(), now, s);
                devices_value.record_validated(
                    a.fingerprint.as_deref(),
                    a.region.as_deref(),
                    &self.pepper,
                );
                write_devices = true;
                Verdict::Success
            };
            let mut ops = vec![put(&jti_key, 0, &true, Some(jti_ttl))?];
            ops.extend(write_interaction(
                team,
                pair.interaction.version,
                &mut rec,
                now,
            )?);
            ops.extend(write_subject(&pair.subject, &subject, s, now)?);
            if write_devices {
                ops.push(put(
                    &dkey,
                    devices.version,
                    &devices_value,
                    Some(DEVICES_TTL),
                )?);
            }
            let committed = self.commit_pair(ops, rec, &subject, s, now).await?;
            Ok(committed.map(|c| (verdict, Some(c))))
        })
        .await?;

        if let (Verdict::Mismatch(f), Some(c)) = (&verdict, &committed) {
            metrics::counter!("chatgate_auth_failures_total", "kind" => "assertion").increment(1);
            self.emit_lockout(*f, now, &team.id, &c.subject);
        }
        match verdict {
            Verdict::Refused(e) => Err(e),
            Verdict::Mismatch(f) => Err(f.refusal(now).unwrap_or(Error::CustomerMismatch)),
            Verdict::StepUp(reason) => {
                let view = committed.ok_or(Error::Internal)?.view;
                Ok(AssertionOutcome {
                    authenticated: false,
                    requires_2fa: true,
                    reason: Some(reason),
                    interaction: view,
                })
            }
            Verdict::Success => {
                let c = committed.ok_or(Error::Internal)?;
                self.announce_authenticated(team, &c.view, c.rec, now);
                let view = c.view;
                Ok(AssertionOutcome {
                    authenticated: true,
                    requires_2fa: false,
                    reason: None,
                    interaction: view,
                })
            }
        }
    }
}
