//! OTP and session-PIN challenges (docs/api.md#challenges-otp-and-session-pin): start, verify, reveal.
//!
//! Starting reserves the send allowance and opens the challenge in one
//! commit, then sends; a failed send gives both back (502, no allowance
//! used). Verifying commits the attempt and the subject's failure count
//! together, so concurrent codes count exactly.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{put, Loaded};
use super::work::Step;
use super::{Gateway, InteractionView};
use crate::channels::{Fill, Purpose};
use crate::config::Team;
use crate::domain::challenge::{Challenge, ChallengeMethod, Delivery};
use crate::domain::destination::{self, DestinationSends};
use crate::domain::{destination_policy, input, otp};
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::store::keys;
use crate::time::Timestamp;

/// `POST /v1/interactions/{id}/challenges`, as received.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewChallenge {
    /// `otp` or `pin`.
    pub method: String,
    /// For OTP: `chat` (default), `sms`, `email` or `agent`.
    pub delivery: Option<String>,
    /// Phone number or e-mail address for `sms` / `email`; else the interaction's contact.
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StartedChallenge {
    pub challenge_id: Uuid,
    pub method: ChallengeMethod,
    pub delivery: Delivery,
    pub expires_at: Timestamp,
    pub attempts_allowed: u32,
    pub delivered: bool,
}

/// Where a challenge's message goes: (channel name, recipient).
fn route(
    team: &Team,
    own_channel: &str,
    delivery: Delivery,
    to: Option<String>,
) -> Result<Option<(String, Option<String>)>> {
    let not_allowed = || Error::invalid("delivery", "is not allowed for this team");
    match delivery {
        Delivery::Agent | Delivery::LoginPage => Ok(None),
        Delivery::Chat => Ok(Some((own_channel.to_string(), None))),
        Delivery::Sms => Ok(Some((
            team.sms_channel.clone().ok_or_else(not_allowed)?,
            to,
        ))),
        Delivery::Email => Ok(Some((
            team.email_channel.clone().ok_or_else(not_allowed)?,
            to,
        ))),
    }
}

impl Gateway {
    pub async fn start_challenge(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        req: NewChallenge,
        now: Timestamp,
    ) -> Result<StartedChallenge> {
        let method = match req.method.as_str() {
            "otp" => ChallengeMethod::Otp,
            "pin" => ChallengeMethod::Pin,
            _ => return Err(Error::invalid("method", "must be otp or pin")),
        };
        let requested = match req.delivery.as_deref() {
            None => None,
            Some("chat") => Some(Delivery::Chat),
            Some("sms") => Some(Delivery::Sms),
            Some("email") => Some(Delivery::Email),
            Some("agent") => Some(Delivery::Agent),
            Some(_) => {
                return Err(Error::invalid(
                    "delivery",
                    "must be chat, sms, email or agent",
                ))
            }
        };
        let delivery = match (method, requested) {
            (ChallengeMethod::Pin, None | Some(Delivery::Chat)) => Delivery::Chat,
            (ChallengeMethod::Pin, Some(_)) => {
                return Err(Error::invalid(
                    "delivery",
                    "a PIN prompt goes into the chat",
                ))
            }
            (ChallengeMethod::Otp, d) => d.unwrap_or(Delivery::Chat),
            // Opened only by a login callback (login binding), never here.
            (ChallengeMethod::Binding, _) => {
                return Err(Error::invalid("method", "must be otp or pin"))
            }
        };
        let to = match (delivery, req.to.as_deref()) {
            (Delivery::Sms, Some(t)) => Some(input::phone("to", t)?),
            (Delivery::Email, Some(t)) => Some(input::email("to", t)?),
            (_, Some(_)) => return Err(Error::invalid("to", "only for sms or email delivery")),
            (_, None) => None,
        };
        let cid = Uuid::now_v7();

        // 1. Reserve: check the subject, count the send, open the challenge.
        let to = &to;
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    // Before anything is counted: a refused destination
                    // uses no allowance (docs/api.md#where-an-otp-may-go).
                    destination_policy::allow(&s.otp, delivery, to.as_deref(), &w.rec.contact)?;
                    w.ensure_clear(now)?;
                    let target = route(team, &w.rec.channel, delivery, to.clone())?;
                    let same_channel = target.as_ref().is_some_and(|(ch, _)| *ch == w.rec.channel);
                    if s.otp.require_other_channel && method == ChallengeMethod::Otp && same_channel
                    {
                        return Err(Error::invalid(
                            "delivery",
                            "the code must travel on another channel than the chat",
                        ));
                    }
                    let contact = &w.rec.contact;
                    let target = match target {
                        Some((ch, None)) if delivery == Delivery::Sms => Some((
                            ch,
                            Some(contact.phone.clone().ok_or_else(|| {
                                Error::invalid("to", "required: the interaction has no phone")
                            })?),
                        )),
                        Some((ch, None)) if delivery == Delivery::Email => Some((
                            ch,
                            Some(contact.email.clone().ok_or_else(|| {
                                Error::invalid("to", "required: the interaction has no e-mail")
                            })?),
                        )),
                        t => t,
                    };
                    // A conversation on an SMS or e-mail channel is reached
                    // through the interaction's contact: without one, nothing
                    // can be sent (a request problem, not a provider failure).
                    if let Some((ch, to)) = &target {
                        if self.needs_recipient(ch)
                            && self.recipient(&w.rec.contact, ch, to.clone()).is_none()
                        {
                            return Err(Error::invalid(
                                "delivery",
                                "this channel needs the interaction's contact, and it has none",
                            ));
                        }
                    }
                    if delivery == Delivery::Agent && !s.otp.show_to_agents {
                        return Err(Error::invalid(
                            "delivery",
                            "agent delivery needs otp.show_to_agents",
                        ));
                    }
                    // Drawn with the interaction's own settings (a channel may
                    // override the length); a retry draws afresh.
                    let code = otp::generate(s.otp.length);
                    let ch = match method {
                        ChallengeMethod::Pin => {
                            let hash = w.rec.session_pin_hash.clone().ok_or(Error::NoSessionPin)?;
                            Challenge::new_pin(cid, &hash, &s.pin, now)
                        }
                        ChallengeMethod::Otp | ChallengeMethod::Binding => {
                            // An OTP started during a live step-up completes it, and
                            // ends with it.
                            let step_up = w.rec.live_step_up(now).map(|p| p.until);
                            Challenge::new_otp(
                                cid,
                                delivery,
                                &code,
                                &self.pepper,
                                &s.otp,
                                s.otp.show_to_agents,
                                step_up.is_some(),
                                now,
                            )?
                            .ending_by(step_up)
                        }
                    };
                    let subject = w.subject();
                    subject.forget_old(now, &s.lockout, &s.otp);
                    subject.check_send(now, &s.otp)?;
                    subject.record_send(now);
                    // The same limit per phone number or address, whatever
                    // subject asks: counted in this commit, so exactly.
                    let dkey = match &target {
                        Some((ch, to)) if self.needs_recipient(ch) => {
                            self.recipient(&w.rec.contact, ch, to.clone()).map(|d| {
                                keys::destination(&team.id, &destination::digest(&self.pepper, &d))
                            })
                        }
                        _ => None,
                    };
                    if let Some(dkey) = &dkey {
                        let read = self.destination_sends(dkey).await?;
                        let mut sends = read.value.unwrap_or_default();
                        sends.take(now, &s.otp)?;
                        w.also(put(
                            dkey,
                            read.version,
                            &sends,
                            Some(s.otp.send_window.get()),
                        )?);
                    }
                    let previous = w.rec.challenge.clone();
                    let started = StartedChallenge {
                        challenge_id: cid,
                        method: ch.method,
                        delivery,
                        expires_at: ch.expires_at,
                        attempts_allowed: ch.max_attempts,
                        delivered: false,
                    };
                    w.rec.open_new_challenge(ch);
                    Ok(Step::Write((started, previous, target, code, dkey)))
                })
            })
            .await?;
        let (started, previous, target, code, dkey) = done.value;
        let rec = done.rec;

        // 2. Send; on failure give the allowance back and reopen the previous challenge.
        let mut started = started;
        if let Some((channel, recipient)) = target {
            let (purpose, fill) = match started.method {
                ChallengeMethod::Otp | ChallengeMethod::Binding => {
                    let ttl = team.settings_for(&rec.channel).otp.ttl.get();
                    (
                        Purpose::Otp,
                        Fill {
                            pin: Some(code.expose()),
                            ttl: Some(ttl),
                            ..Fill::default()
                        },
                    )
                }
                ChallengeMethod::Pin => (Purpose::PinPrompt, Fill::default()),
            };
            if let Err(e) = self
                .send(team, &rec, &channel, recipient, purpose, fill)
                .await
            {
                self.undo_challenge(team, id, cid, previous, dkey, now)
                    .await?;
                return Err(Error::Channel(e.to_string()));
            }
            started.delivered = true;
        }
        metrics::counter!("chatgate_challenges_started_total", "method" => method_str(started.method)).increment(1);
        let view = InteractionView::build(&rec, None, team.settings_for(&rec.channel), now);
        let challenge = serde_json::json!({
            "challenge": {"challenge_id": cid, "method": started.method, "delivery": delivery, "expires_at": started.expires_at},
        });
        self.emit(EventType::ChallengeCreated, now, &view, challenge)
            .await?;
        Ok(started)
    }

    /// The sends counted for the destination under `dkey`, as read.
    async fn destination_sends(&self, dkey: &str) -> Result<Loaded<DestinationSends>> {
        let raw = self.store.get(&[dkey.to_string()]).await?;
        Loaded::parse(dkey.to_string(), raw.into_iter().next().flatten())
    }

    /// Takes back a challenge whose message could not be sent, and the
    /// sends it counted (the subject's, and the destination's under `dkey`).
    async fn undo_challenge(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        previous: Option<Challenge>,
        dkey: Option<String>,
        now: Timestamp,
    ) -> Result<()> {
        let dkey = &dkey;
        self.transact(team, id, now, |w| {
            let previous = previous.clone();
            Box::pin(async move {
                if let Some(dkey) = dkey {
                    let read = self.destination_sends(dkey).await?;
                    if let Some(mut sends) = read.value {
                        sends.give_back(now);
                        let ttl = w.settings.otp.send_window.get();
                        w.also(put(dkey, read.version, &sends, Some(ttl))?);
                    }
                }
                if w.rec.challenge.as_ref().map(|c| c.id) != Some(cid) {
                    return Ok(Step::Answer(())); // already replaced by a newer one
                }
                w.rec.challenge = previous.filter(|p| p.is_open(now));
                if let Some(p) = w.rec.challenge.clone() {
                    w.rec.past_challenges.retain(|past| past.id != p.id);
                }
                let sends = &mut w.subject().sends;
                if let Some(pos) = sends.iter().rposition(|t| *t == now) {
                    sends.remove(pos);
                }
                Ok(Step::Write(()))
            })
        })
        .await
        .map(|_| ())
    }
}

fn method_str(m: ChallengeMethod) -> &'static str {
    match m {
        ChallengeMethod::Otp => "otp",
        ChallengeMethod::Pin => "pin",
        ChallengeMethod::Binding => "binding",
    }
}
