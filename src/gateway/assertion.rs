//! Pre-chat identity assertions and their step-up (docs/api.md#pre-chat-assertions).
//! The rules are [`assertion_verdict`]'s; here the verdict is applied in one
//! unit of work.
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::records::{Loaded, StoredDevices, UsedJti};
use super::view::StepUpReason;
use super::work::{Step, Work};
use super::writes::Writes;
use super::{doors, store_epoch};
use super::{Core, InteractionView};
use crate::config::Team;
use crate::domain::assertion::{self, Assertion};
use crate::domain::assertion_verdict::{self, AssertionVerdict, Found, Rules};
use crate::domain::devices::CustomerDevices;
use crate::domain::interaction::{Customer, Method, PendingStepUp};
use crate::domain::origins::Failure;
use crate::error::{Error, Result};
use crate::store::keys;
use crate::time::Timestamp;

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

/// A verified assertion, and what the store holds about it.
struct Presented {
    assertion: Assertion,
    customer: Customer,
    jti_used: bool,
    devices: Loaded<CustomerDevices>,
}

/// `POST /v1/interactions/{id}/assertion`: verify it, read its `jti`
/// and the customer's devices, decide ([`assertion_verdict::verdict`]),
/// apply the verdict with the used `jti` in one commit.
pub async fn accept_assertion(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    token: &str,
    now: Timestamp,
) -> Result<AssertionOutcome> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let max_age = w.settings.assertion_max_age.get();
                let p = presented(core, team, token, max_age, now).await?;
                let a = &p.assertion;
                // A new assertion ends an earlier pending step-up, whoever it was for.
                w.rec.end_step_up(now);
                if let Some(fp) = assertion_verdict::device(a, w.rec.customer_ref.as_deref()) {
                    w.rec.device = Some(fp.to_string());
                }
                let verdict = assertion_verdict(core, w, &p, now);
                let failure = apply_assertion(core, w, team, p, verdict, now)?;
                Ok(Step::Write((verdict, failure)))
            })
        })
        .await?;
    let (verdict, failure) = done.value;
    assertion_outcome(verdict, failure, done.view, now)
}

/// The assertion, verified, with its customer; whether its `jti` was
/// used, and the customer's validated devices.
async fn presented(
    core: &Core,
    team: &Team,
    token: &str,
    max_age: Duration,
    now: Timestamp,
) -> Result<Presented> {
    let issuer = &core.config().server.issuer;
    let mut assertion = assertion::verify(token, team, issuer, max_age, now)?;
    let customer = assertion.customer()?;
    let jti_key = keys::assertion_jti(&team.keyspace, &assertion.jti);
    let dkey = keys::devices(&team.keyspace, &assertion.sub);
    // With the store's marker: an emptied store lost the used jti.
    let raw = store_epoch::get_noticing_reset(core, team, vec![jti_key, dkey.clone()], now).await?;
    store_epoch::refuse_issued_before_reset(core, team, assertion.iat, max_age, now)?;
    let mut raw = raw.into_iter();
    let jti_used = raw.next().flatten().is_some();
    let devices = Loaded::parse(dkey, raw.next().flatten())?;
    Ok(Presented {
        assertion,
        customer,
        jti_used,
        devices,
    })
}

/// The rules on the records as this unit of work holds them.
fn assertion_verdict(
    core: &Core,
    w: &mut Work<'_>,
    p: &Presented,
    now: Timestamp,
) -> AssertionVerdict {
    let (s, origin) = (w.settings, w.origin());
    let customer_ref = w.rec.customer_ref.clone();
    let found = Found {
        jti_used: p.jti_used,
        customer_ref: customer_ref.as_deref(),
        subject: w.subject(),
        origin: origin.as_deref(),
        devices: p.devices.value.as_ref().unwrap_or(&NO_DEVICES),
    };
    let rules = Rules {
        step_up: &s.step_up,
        max_age: s.assertion_max_age.get(),
        pepper: core.pepper(),
    };
    assertion_verdict::verdict(&p.assertion, &found, &rules, now)
}

/// Applies `verdict`; the assertion's `jti` is used up with it, whatever
/// it is, except a `jti` used already. Returns the failure it counted.
fn apply_assertion(
    core: &Core,
    w: &mut Work<'_>,
    team: &Team,
    p: Presented,
    verdict: AssertionVerdict,
    now: Timestamp,
) -> Result<Option<Failure>> {
    let a = &p.assertion;
    let mut failure = None;
    match verdict {
        AssertionVerdict::Used => return Err(Error::TokenUsed),
        AssertionVerdict::Locked { .. } | AssertionVerdict::Banned => {}
        AssertionVerdict::Mismatch => {
            let f = w.record_failure(now);
            w.emit_lockout(&f);
            failure = Some(f);
        }
        AssertionVerdict::StepUp { until, .. } => {
            if let Some(locale) = a.locale() {
                w.rec.ask_locale(&locale, true);
            }
            w.rec.step_up = Some(PendingStepUp {
                customer: p.customer,
                fingerprint: a.fingerprint.clone(),
                region: a.region.clone(),
                until,
            });
        }
        AssertionVerdict::Authenticate => {
            let s = w.settings;
            if let Some(locale) = a.locale() {
                w.rec.ask_locale(&locale, true);
            }
            w.record_success(now);
            w.rec.authenticate(Method::PreChat, p.customer, now, s);
            w.announce_authenticated();
            // Remembered only where a step-up rule reads them: with
            // every such rule off, no record is kept.
            if team.remembers_devices() {
                let mut known = p.devices.value.clone().unwrap_or_default();
                let (fingerprint, region) = (a.fingerprint.as_deref(), a.region.as_deref());
                known.record_validated(fingerprint, region, core.pepper());
                let known = StoredDevices::from(&known);
                w.put(&p.devices, &known, Some(DEVICES_TTL))?;
            }
        }
    }
    let jti_key = keys::assertion_jti(&team.keyspace, &a.jti);
    let ttl = assertion_verdict::jti_ttl(a, now);
    w.create(&jti_key, &UsedJti {}, Some(ttl))?;
    Ok(failure)
}

/// No device validated yet.
static NO_DEVICES: CustomerDevices = CustomerDevices {
    fingerprints: Vec::new(),
    last_region: None,
};

/// The answer to an applied verdict: the refusals as errors (a mismatch
/// counted in the metrics, answered locked if its failure locked), else
/// whether it authenticated.
fn assertion_outcome(
    verdict: AssertionVerdict,
    failure: Option<Failure>,
    interaction: InteractionView,
    now: Timestamp,
) -> Result<AssertionOutcome> {
    let (authenticated, reason) = match verdict {
        AssertionVerdict::Used => return Err(Error::TokenUsed),
        AssertionVerdict::Locked { until } => {
            let retry_after = until.retry_after_secs(now);
            return Err(Error::Locked { until, retry_after });
        }
        AssertionVerdict::Banned => return Err(Error::Banned),
        AssertionVerdict::Mismatch => {
            metrics::counter!("chatgate_auth_failures_total", "kind" => "assertion").increment(1);
            let refusal = failure.and_then(|f| f.refusal(now));
            return Err(refusal.unwrap_or(Error::CustomerMismatch));
        }
        AssertionVerdict::StepUp { reason, .. } => (false, Some(reason.into())),
        AssertionVerdict::Authenticate => (true, None),
    };
    Ok(AssertionOutcome {
        authenticated,
        requires_2fa: !authenticated,
        reason,
        interaction,
    })
}

/// Records in `w` a completed step-up's fingerprint and region as
/// validated for its customer.
pub(in crate::gateway) async fn validated_devices(
    core: &Core,
    team: &Team,
    w: &mut Work<'_>,
    p: &PendingStepUp,
) -> Result<()> {
    let dkey = keys::devices(
        &team.keyspace,
        p.customer.get("id").map_or("", String::as_str),
    );
    let devices: Loaded<CustomerDevices> = doors::read(core, &dkey).await?;
    let mut d = devices.value.clone().unwrap_or_default();
    d.record_validated(p.fingerprint.as_deref(), p.region.as_deref(), core.pepper());
    w.put(&devices, &StoredDevices::from(&d), Some(DEVICES_TTL))?;
    Ok(())
}
