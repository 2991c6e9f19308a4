//! Pre-chat identity assertions and their step-up (docs/api.md#pre-chat-assertions).
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::records::{put, Loaded};
use super::work::Step;
use super::{Gateway, InteractionView};
use crate::config::Team;
use crate::domain::devices::{CustomerDevices, StepUpReason};
use crate::domain::interaction::{Customer, Method, PendingStepUp};
use crate::domain::origins::Failure;
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
            Mismatch(Failure),
            StepUp(StepUpReason),
            Success,
        }
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    let max_age = s.assertion_max_age.get();
                    let mut a =
                        assertion::verify(token, team, &self.config.server.issuer, max_age, now)?;
                    let customer = customer_of(&mut a)?;
                    let jti_key = keys::assertion_jti(&team.id, &a.jti);
                    let dkey = keys::devices(&team.id, &a.sub);
                    let mut raw = self
                        .store
                        .get(&[jti_key.clone(), dkey.clone()])
                        .await?
                        .into_iter();
                    if raw.next().flatten().is_some() {
                        return Err(Error::TokenUsed);
                    }
                    let devices: Loaded<CustomerDevices> =
                        Loaded::parse(dkey.clone(), raw.next().flatten())?;
                    let mut known = devices.value.clone().unwrap_or_default();
                    // A new assertion ends an earlier pending step-up, whoever it was for.
                    w.rec.end_step_up();
                    let mismatch = w.rec.customer_ref.as_ref().is_some_and(|r| *r != a.sub);
                    // A valid assertion naming a device makes the
                    // interaction's origin that device (lockout scope
                    // "origin"), before its lock is checked.
                    if let (false, Some(fp)) = (mismatch, a.fingerprint.as_ref()) {
                        w.rec.device = Some(fp.clone());
                    }
                    let verdict = if let Err(e) = w.ensure_clear(now) {
                        Verdict::Refused(e)
                    } else if mismatch {
                        let f = w.record_failure(now);
                        w.emit_lockout(&f);
                        Verdict::Mismatch(f)
                    } else if let Some(reason) = known.step_up_reason(
                        &s.step_up,
                        a.fingerprint.as_deref(),
                        a.region.as_deref(),
                        &self.pepper,
                    ) {
                        w.rec.step_up = Some(PendingStepUp {
                            customer: customer.clone(),
                            fingerprint: a.fingerprint.clone(),
                            region: a.region.clone(),
                            until: step_up_ends(&a, max_age, now),
                        });
                        Verdict::StepUp(reason)
                    } else {
                        w.record_success(now);
                        w.rec
                            .authenticate(Method::PreChat, customer.clone(), now, s);
                        w.announce_authenticated();
                        // Remembered only where a step-up rule reads them:
                        // with every such rule off, no record is kept.
                        if team.remembers_devices() {
                            known.record_validated(
                                a.fingerprint.as_deref(),
                                a.region.as_deref(),
                                &self.pepper,
                            );
                            w.also(put(&dkey, devices.version, &known, Some(DEVICES_TTL))?);
                        }
                        Verdict::Success
                    };
                    // The used-jti marker outlives every moment the assertion could be valid.
                    let jti_ttl =
                        Timestamp::from_unix_seconds(a.exp).since(now) + Duration::from_secs(10);
                    w.also(put(&jti_key, 0, &true, Some(jti_ttl))?);
                    Ok(Step::Write(verdict))
                })
            })
            .await?;
        if let Verdict::Mismatch(_) = &done.value {
            metrics::counter!("chatgate_auth_failures_total", "kind" => "assertion").increment(1);
        }
        match done.value {
            Verdict::Refused(e) => Err(e),
            Verdict::Mismatch(f) => Err(f.refusal(now).unwrap_or(Error::CustomerMismatch)),
            Verdict::StepUp(reason) => Ok(AssertionOutcome {
                authenticated: false,
                requires_2fa: true,
                reason: Some(reason),
                interaction: done.view,
            }),
            Verdict::Success => Ok(AssertionOutcome {
                authenticated: true,
                requires_2fa: false,
                reason: None,
                interaction: done.view,
            }),
        }
    }
}
