//! Pre-chat identity assertions and their step-up (CONTRACT 3.6).
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::records::{put, retry, write_interaction, write_subject, Loaded};
use super::{Gateway, InteractionView};
use crate::config::Team;
use crate::domain::devices::{CustomerDevices, StepUpReason};
use crate::domain::interaction::{Customer, Method, PendingStepUp};
use crate::domain::subject::FailureOutcome;
use crate::domain::{assertion, input};
use crate::error::{Error, Result};
use crate::store::keys;
use crate::time::Timestamp;

/// The customer an assertion proves, its claims held to the same rules as a
/// login page's `customer` (422 naming the claim): `sub` is an identifier
/// (normalised), the rest display values. The fingerprint and region are
/// checked too, though only their keyed hashes are kept.
fn customer_of(a: &mut assertion::Assertion) -> Result<Customer> {
    a.sub = input::customer_id("assertion.sub", &a.sub)?;
    let mut customer = Customer::from([("id".to_string(), a.sub.clone())]);
    for (k, v) in [("name", &a.name), ("email", &a.email), ("phone", &a.phone)] {
        if let Some(v) = v {
            let field = format!("assertion.{k}");
            customer.insert(
                k.to_string(),
                input::display(&field, v, input::MAX_IDENTITY_CHARS)?,
            );
        }
    }
    for (k, v) in [("fingerprint", &a.fingerprint), ("region", &a.region)] {
        if let Some(v) = v {
            input::display(&format!("assertion.{k}"), v, input::MAX_IDENTITY_CHARS)?;
        }
    }
    Ok(customer)
}

/// How long the fingerprints and region validated for a customer are remembered.
pub const DEVICES_TTL: Duration = Duration::from_secs(90 * 86_400);

/// A step-up lives as long as its assertion could still be presented: until
/// its `exp`, and at most `assertion_max_age` (when set) from now.
fn step_up_ends(a: &assertion::Assertion, max_age: Duration, now: Timestamp) -> Timestamp {
    let exp = Timestamp::from_unix_seconds(a.exp);
    if max_age.is_zero() {
        exp
    } else {
        exp.min(now.plus(max_age))
    }
}

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
            let mut a = assertion::verify(token, team, &self.config.server.issuer, max_age, now)?;
            let customer = customer_of(&mut a)?;
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
            // A new assertion ends an earlier pending step-up, whoever it was for.
            rec.end_step_up();
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
                    until: step_up_ends(&a, max_age, now),
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
