//! Answering a challenge (docs/api.md#challenges-otp-and-session-pin): the attempt and the subject's
//! failure count commit together, so concurrent codes count exactly; and
//! revealing an open OTP to an agent where the team allows it.
use std::sync::Arc;

use serde::Serialize;
use uuid::Uuid;

use super::records::{put, Loaded};
use super::work::Step;
use super::{Gateway, InteractionView};
use crate::config::{Settings, Team};
use crate::domain::attempts;
use crate::domain::challenge::{AttemptOutcome, ChallengeMethod};
use crate::domain::devices::CustomerDevices;
use crate::domain::interaction::{Customer, InteractionRecord, Method, PendingStepUp};
use crate::domain::origins::Failure;
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::store::keys;
use crate::time::Timestamp;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verified {
    pub authenticated: bool,
    pub requires_2fa: bool,
    pub expires_at: Option<Timestamp>,
    pub interaction: InteractionView,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevealedCode {
    pub code: String,
    pub expires_at: Timestamp,
}

impl Gateway {
    pub async fn verify_challenge(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        code: &str,
        now: Timestamp,
    ) -> Result<Verified> {
        crate::domain::pin::parse_code(code)?;
        enum Verdict {
            Success,
            Wrong(u32, Failure),
        }
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    w.ensure_clear(now)?;
                    let verdict =
                        match attempts::attempt(&mut w.rec, cid, code, &self.pepper, now)? {
                            AttemptOutcome::Wrong { attempts_remaining } => {
                                Verdict::Wrong(attempts_remaining, w.record_failure(now))
                            }
                            AttemptOutcome::Success { method, step_up } => {
                                // A step-up challenge completes only a step-up that is
                                // still live (its assertion not past `exp`, not logged
                                // out, not replaced); else it proves nobody.
                                let pending = match step_up {
                                    true => Some(
                                        w.rec
                                            .live_step_up(now)
                                            .cloned()
                                            .ok_or(Error::ChallengeExpired)?,
                                    ),
                                    false => None,
                                };
                                w.record_success(now);
                                let (method, customer, since) = match (&pending, method) {
                                    (Some(p), _) => (Method::Otp, p.customer.clone(), now),
                                    (None, ChallengeMethod::Otp) => {
                                        (Method::Otp, self.customer_for(&w.rec, now, s), now)
                                    }
                                    (None, ChallengeMethod::Pin) => {
                                        (Method::Pin, self.customer_for(&w.rec, now, s), now)
                                    }
                                    // A bound login: the customer the login proved, by
                                    // its method, authenticated since the callback.
                                    (None, ChallengeMethod::Binding) => {
                                        let binding = w
                                            .rec
                                            .binding
                                            .clone()
                                            .filter(|b| b.challenge_id == cid)
                                            .ok_or(Error::ChallengeExpired)?;
                                        let since = binding.proven_at.unwrap_or(now);
                                        (binding.method, binding.customer, since)
                                    }
                                };
                                if let Some(p) = pending.as_ref().filter(|_| team.remembers_devices()) {
                                    let devices = self.validated_devices(team, p).await?;
                                    w.also(devices);
                                }
                                w.rec.authenticate_since(method, customer, since, now, s);
                                w.announce_authenticated();
                                Verdict::Success
                            }
                        };
                    if let Verdict::Wrong(remaining, outcome) = &verdict {
                        let challenge = serde_json::json!({"challenge": {"challenge_id": cid, "attempts_remaining": remaining}});
                        w.emit(EventType::ChallengeFailed, challenge);
                        w.emit_lockout(outcome);
                    }
                    Ok(Step::Write(verdict))
                })
            })
            .await?;
        let c = &done;
        match done.value {
            Verdict::Success => Ok(Verified {
                authenticated: true,
                requires_2fa: false,
                expires_at: c.view.expires_at,
                interaction: c.view.clone(),
            }),
            Verdict::Wrong(remaining, outcome) => {
                metrics::counter!("chatgate_auth_failures_total", "kind" => "challenge")
                    .increment(1);
                Err(outcome.refusal(now).unwrap_or(Error::InvalidCode {
                    attempts_remaining: remaining,
                }))
            }
        }
    }

    /// The open OTP, for an agent, where the team allows it.
    pub async fn reveal_code(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        key_id: &str,
        now: Timestamp,
    ) -> Result<RevealedCode> {
        let pair = self.load_pair(team, id, now).await?;
        let rec = pair.rec()?;
        let s = team.settings_for(&rec.channel);
        if !s.otp.show_to_agents {
            return Err(Error::Forbidden("this team does not let agents see codes"));
        }
        if let Some(subject) = &pair.subject.value {
            subject.ensure_clear_for(rec.lockout_origin(s).as_deref(), now)?;
        }
        let (code, expires_at) = attempts::reveal_code(rec, cid, &self.pepper, now)?;
        let view = pair.view(team, now)?;
        // Recorded before the code is shown: no reveal goes unaudited.
        let extra = serde_json::json!({"challenge": {"challenge_id": cid}, "api_key_id": key_id});
        self.emit(EventType::ChallengeCodeRevealed, now, &view, extra)
            .await?;
        Ok(RevealedCode {
            code: code.expose().to_string(),
            expires_at,
        })
    }

    /// The op that records a completed step-up's fingerprint and region as
    /// validated for its customer.
    async fn validated_devices(&self, team: &Team, p: &PendingStepUp) -> Result<crate::store::Op> {
        let dkey = keys::devices(&team.id, p.customer.get("id").map_or("", String::as_str));
        let raw = self
            .store
            .get(std::slice::from_ref(&dkey))
            .await?
            .pop()
            .flatten();
        let devices: Loaded<CustomerDevices> = Loaded::parse(dkey.clone(), raw)?;
        let mut d = devices.value.clone().unwrap_or_default();
        d.record_validated(p.fingerprint.as_deref(), p.region.as_deref(), &self.pepper);
        put(
            &dkey,
            devices.version,
            &d,
            Some(super::assertion::DEVICES_TTL),
        )
    }

    /// Whom a plain OTP/PIN success proves: on an interaction still
    /// authenticated (a step-up), the customer already proven — the code
    /// re-proves the same chat, and a website's logout must still find them;
    /// otherwise the bot's `customer_ref`, if any.
    fn customer_for(&self, rec: &InteractionRecord, now: Timestamp, s: &Settings) -> Customer {
        if rec.is_authenticated(now, s) {
            if let Some(auth) = rec.auth.as_ref().filter(|a| !a.customer.is_empty()) {
                return auth.customer.clone();
            }
        }
        rec.customer_ref
            .iter()
            .map(|r| ("id".to_string(), r.clone()))
            .collect()
    }
}
