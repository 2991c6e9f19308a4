//! OTP and session-PIN challenges (docs/api.md#challenges-otp-and-session-pin): start, verify, reveal.
//!
//! Starting reserves the send allowance and opens the challenge in one
//! commit, then sends; a failed send gives both back (502, no allowance
//! used). Verifying commits the attempt and the subject's failure count
//! together, so concurrent codes count exactly.
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::{put, Loaded, StoredSends};
use super::view;
use super::work::Step;
use super::{Gateway, InteractionView};
use crate::channels::{ChannelError, Fill, Purpose, Sent};
use crate::config::{Settings, Team};
use crate::domain::challenge::{ChallengeMethod, Delivery};
use crate::domain::destination::{self, DestinationSends};
use crate::domain::interaction::InteractionRecord;
use crate::domain::otp::{self, OtpCode};
use crate::domain::start_challenge::{self, ChallengeRequest, Route, Routes, Rules, Started};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeCreated, CreatedChallenge};
use crate::events::EventData;
use crate::store::{keys, Op};
use crate::time::{Clock, Timestamp};

/// `POST /v1/interactions/{id}/challenges`, as received.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewChallenge {
    /// `otp` or `pin`.
    pub method: String,
    /// For OTP: `chat` (default), `sms`, `email`, `agent` or `ladder`.
    pub delivery: Option<String>,
    /// Phone number or e-mail address for `sms` / `email`; else the interaction's contact.
    pub to: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StartedChallenge {
    pub challenge_id: Uuid,
    pub method: view::ChallengeMethod,
    /// Null for `app` (the customer's app, not a channel).
    pub delivery: Option<view::Delivery>,
    /// With `delivery: "ladder"`: the step that took the code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    pub expires_at: Timestamp,
    /// 0 for `app`: no code answers it.
    pub attempts_allowed: u32,
    /// For `app`: the 4 digits the customer's app shows beside the
    /// request (docs/api.md#approval-in-the-customers-app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_code: Option<String>,
    pub delivered: bool,
    /// `accepted` once the provider took the message; null when nothing
    /// is sent (`agent` delivery).
    pub delivery_status: Option<view::DeliveryStatus>,
    /// Null (a message the provider did not take is 502).
    pub delivery_error: Option<super::DeliveryErrorView>,
}

impl Gateway {
    pub async fn start_challenge(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        req: NewChallenge,
        clock: &dyn Clock,
    ) -> Result<StartedChallenge> {
        let now = clock.now();
        let req = ChallengeRequest::parse(&req.method, req.delivery.as_deref(), req.to.as_deref())?;
        if req.method == ChallengeMethod::App {
            return self.start_app_challenge(team, id, clock).await;
        }
        if req.delivery == Delivery::Ladder {
            return self.start_ladder(team, id, &req, now).await;
        }
        let cid = Uuid::now_v7();
        let req = &req;
        // 1. Reserve: check the subject, count the sends, open the challenge.
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    // Drawn with the interaction's own settings (a channel may
                    // override the length); a retry draws afresh.
                    let code = otp::generate(s.otp.length);
                    let routes = self.routes(team, &w.rec.channel);
                    let rules = Rules {
                        settings: s,
                        routes: &routes,
                        pepper: &self.pepper,
                    };
                    let (rec, subject) = w.records();
                    let started =
                        start_challenge::decide(req, cid, &code, rec, subject, &rules, now)?;
                    if let Some(d) = &started.destination {
                        w.also(self.count_destination(team, d, s, now).await?);
                    }
                    Ok(Step::Write((started, code)))
                })
            })
            .await?;
        let (started, code) = done.value;
        // 2. Send; on failure give the allowance back and reopen the previous challenge.
        let delivered = started.message.is_some();
        let sent = match self.send_challenge(team, &done.rec, &started, &code).await {
            Ok(sent) => sent,
            Err(e) => {
                self.undo_challenge(team, id, cid, &started, now).await?;
                return Err(Error::Channel(e.to_string()));
            }
        };
        // 3. Announce it.
        metrics::counter!("chatgate_challenges_started_total", "method" => started.method.as_str())
            .increment(1);
        let interaction =
            InteractionView::build(&done.rec, None, team.settings_for(&done.rec.channel), now);
        let method = view::ChallengeMethod::from(started.method);
        let delivery = Some(view::Delivery::from(req.delivery));
        let (delivery_status, delivery_error) =
            super::challenge_read::delivery_of(started.delivery_state.as_ref());
        let created = EventData::ChallengeCreated(ChallengeCreated {
            challenge: CreatedChallenge {
                challenge_id: cid,
                delivery: req.delivery,
                expires_at: started.expires_at,
                method: started.method,
            },
        });
        self.emit(created, now, &interaction).await?;
        // Its receipts name the provider's id of the message: remembered
        // after `challenge.created`, so that a receipt that came first is
        // announced after it.
        if let (Some(message_id), Some(m)) =
            (sent.and_then(|s| s.message_id), started.message.as_ref())
        {
            if let Err(e) = self
                .remember_message(team, id, cid, &m.channel, &message_id, now)
                .await
            {
                // The code went out: the challenge stands, its receipts
                // will be about a message the gateway does not know.
                tracing::warn!(error = %e, "a challenge's message id could not be remembered");
            }
        }
        Ok(StartedChallenge {
            challenge_id: cid,
            method,
            delivery,
            channel: None,
            expires_at: started.expires_at,
            attempts_allowed: started.attempts_allowed,
            delivered,
            delivery_status,
            delivery_error,
            binding_code: None,
        })
    }

    /// The channels a challenge's message may take from `own`, the
    /// interaction's channel, and whom each reaches.
    pub(super) fn routes(&self, team: &Team, own: &str) -> Routes {
        let route = |channel: &str| Route {
            channel: channel.to_string(),
            reach: self.reach(channel),
        };
        Routes {
            chat: route(own),
            sms: team.sms_channel.as_deref().map(route),
            email: team.email_channel.as_deref().map(route),
        }
    }

    /// Sends a started challenge's message, if it has one: the code of an
    /// OTP, the prompt of a PIN. `None`: nothing to send.
    async fn send_challenge(
        &self,
        team: &Team,
        rec: &InteractionRecord,
        started: &Started,
        code: &OtpCode,
    ) -> std::result::Result<Option<Sent>, ChannelError> {
        let Some(message) = &started.message else {
            return Ok(None);
        };
        let (purpose, fill) = match started.method {
            ChallengeMethod::Otp | ChallengeMethod::Binding => {
                let ttl = team.settings_for(&rec.channel).otp.ttl.get();
                let fill = Fill {
                    pin: Some(code.expose()),
                    ttl: Some(ttl),
                    ..Fill::default()
                };
                (Purpose::Otp, fill)
            }
            ChallengeMethod::Pin => (Purpose::PinPrompt, Fill::default()),
            // Its request goes to the identity provider (`ciba.rs`).
            ChallengeMethod::App => return Ok(None),
        };
        let to = message.to.clone();
        self.send(team, rec, &message.channel, to, purpose, fill)
            .await
            .map(Some)
    }

    /// The key counting the sends to `destination` (named by its keyed digest).
    pub(super) fn destination_key(&self, team: &Team, destination: &str) -> String {
        keys::destination(&team.id, &destination::digest(&self.pepper, destination))
    }

    /// The sends counted for the destination under `dkey`, as read.
    pub(super) async fn destination_sends(&self, dkey: &str) -> Result<Loaded<DestinationSends>> {
        let raw = self.store.get(&[dkey.to_string()]).await?;
        Loaded::parse(dkey.to_string(), raw.into_iter().next().flatten())
    }

    /// The op that counts one more send to `destination` at `now`; 429 when
    /// it already had `otp.max_sends` within `otp.send_window`, whatever
    /// subjects asked for them.
    pub(super) async fn count_destination(
        &self,
        team: &Team,
        destination: &str,
        s: &Settings,
        now: Timestamp,
    ) -> Result<Op> {
        let dkey = self.destination_key(team, destination);
        let read = self.destination_sends(&dkey).await?;
        let mut sends = read.value.unwrap_or_default();
        sends.take(now, &s.otp)?;
        let sends = StoredSends::from(&sends);
        put(&dkey, read.version, &sends, Some(s.otp.send_window.get()))
    }

    /// Takes back challenge `cid`, whose message could not be sent, and the
    /// sends it counted (the subject's, and its destination's if it has
    /// one: a ladder's steps give theirs back as each fails).
    pub(super) async fn undo_challenge(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        started: &Started,
        now: Timestamp,
    ) -> Result<()> {
        self.transact(team, id, now, |w| {
            Box::pin(async move {
                let origin = w.origin();
                let (rec, subject) = w.records();
                let previous = started.previous.clone();
                let origin = origin.as_deref();
                if !start_challenge::take_back(rec, subject, origin, cid, previous, now) {
                    return Ok(Step::Answer(())); // already replaced by a newer one
                }
                if let Some(d) = &started.destination {
                    let dkey = self.destination_key(team, d);
                    let read = self.destination_sends(&dkey).await?;
                    if let Some(mut sends) = read.value {
                        sends.give_back(now);
                        let ttl = w.settings.otp.send_window.get();
                        let sends = StoredSends::from(&sends);
                        w.also(put(&dkey, read.version, &sends, Some(ttl))?);
                    }
                }
                Ok(Step::Write(()))
            })
        })
        .await
        .map(|_| ())
    }
}
