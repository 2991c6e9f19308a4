//! Approval in the customer's own app (docs/api.md#approval-in-the-customers-app):
//! OpenID Connect CIBA in poll mode with the team's identity provider.
//!
//! Starting orders reserve → ask the provider → announce, as other
//! challenges do (a refusing provider takes the start back: 502, no send
//! allowance used). Polling is durable: the pending approval is a record
//! (`keys::app_poll`) and an entry `a:<interaction>:<challenge>` in the
//! team's due queue (docs/architecture.md#time-outs), which the sweeper
//! claims with a lease, so one instance polls it, and a restart polls on.
//! Before it asks the token endpoint, the poller moves the entry from its
//! lease to the next poll's time, atomically: only the instance that moved
//! it asks, and never sooner than `interval` after the last ask.
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::challenges::StartedChallenge;
use super::records::{put, Loaded, Record};
use super::work::Step;
use super::{view, Gateway, InteractionView};
use crate::channels::{Fill, Purpose};
use crate::config::{OidcConfig, Team};
use crate::domain::app_challenge::{self, Answer, Ending, BINDING_DIGITS};
use crate::domain::challenge::{ChallengeMethod, Delivery};
use crate::domain::{otp, start_challenge};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeCreated, ChallengeFailed, CreatedChallenge, FailedChallenge};
use crate::events::EventData;
use crate::oidc::ciba::{AuthReqId, AuthRequest, Polled, SLOW_DOWN_BY};
use crate::oidc::{id_token, Metadata};
use crate::store::{keys, IndexEntry, Op};
use crate::time::Timestamp;

/// The due-queue entry kind of app challenges' polls: `a:<id>:<cid>`.
pub(super) const KIND: &str = "a";
const ENTRY: &str = "a:";

/// A pending approval as stored: `i` the interaction, `r` the provider's
/// `auth_req_id` (never logged), `v` the poll interval in seconds.
#[derive(Clone, Serialize, Deserialize)]
struct StoredPoll {
    i: Uuid,
    r: String,
    v: u64,
}

impl Record for StoredPoll {}

/// How long past its challenge's end a pending approval is kept (the
/// queue and the record), so that a late poll still finds it and ends it.
const KEPT_PAST_END: Duration = Duration::from_secs(3600);

impl Gateway {
    /// `POST /v1/interactions/{id}/challenges {"method": "app"}`.
    pub(super) async fn start_app_challenge(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        now: Timestamp,
    ) -> Result<StartedChallenge> {
        let oidc = team.oidc.as_ref().filter(|o| o.ciba).ok_or_else(|| {
            Error::invalid("method", "app needs ciba = true in the team's [oidc]")
        })?;
        let meta = self.oidc.metadata(oidc, now).await.map_err(|e| {
            super::oidc::logged(team, &e);
            Error::Channel("the identity provider cannot be reached".into())
        })?;
        if meta.backchannel_authentication_endpoint.is_none() {
            return Err(Error::invalid(
                "method",
                "the team's identity provider names no backchannel_authentication_endpoint",
            ));
        }
        let cid = Uuid::now_v7();
        // 1. Reserve: check the subject, count the send, open the challenge.
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let code = otp::generate(BINDING_DIGITS);
                    let s = w.settings;
                    let (rec, subject) = w.records();
                    let started =
                        app_challenge::decide(cid, &code, rec, subject, s, &self.pepper, now)?;
                    Ok(Step::Write((started, code)))
                })
            })
            .await?;
        let (started, code) = done.value;
        let s = team.settings_for(&done.rec.channel);
        let ttl = s.otp.ttl.get();
        // 2. Ask the provider; a refusal takes the start back.
        let asked = AuthRequest {
            login_hint: &started.login_hint,
            binding_message: code.expose(),
            requested_expiry: ttl.as_secs(),
        };
        let accepted = match self.oidc.backchannel_request(oidc, &meta, &asked).await {
            Ok(a) => a,
            Err(e) => {
                super::oidc::logged(team, &e);
                self.take_back_app(team, id, cid, &started.previous, now)
                    .await?;
                return Err(Error::Channel(
                    "the identity provider did not take the approval request".into(),
                ));
            }
        };
        // 3. The provider's end may be sooner; the first poll waits an interval.
        let expires_at = started
            .expires_at
            .min(now.plus(Duration::from_secs(accepted.expires_in)));
        let poll = StoredPoll {
            i: id,
            r: accepted.auth_req_id.0,
            v: accepted.interval,
        };
        let first = now.plus(Duration::from_secs(accepted.interval));
        let kept = expires_at.since(now) + KEPT_PAST_END;
        let (poll, team_id) = (&poll, &team.id);
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == cid) else {
                        // Replaced meanwhile: nothing to poll for.
                        return Ok(Step::Answer(()));
                    };
                    c.expires_at = expires_at;
                    w.also(put(&keys::app_poll(team_id, cid), 0, poll, Some(kept))?);
                    w.also(Op::QueueAdd {
                        key: keys::due_queue(team_id),
                        member: format!("{ENTRY}{id}:{cid}"),
                        score: first.unix_millis(),
                        ttl: kept,
                    });
                    Ok(Step::Write(()))
                })
            })
            .await?;
        let rec = &done.rec;
        // The prompt is a courtesy: the app shows the request whatever
        // becomes of it (one log line when the chat does not take it).
        let fill = Fill {
            code: Some(code.expose()),
            ..Fill::default()
        };
        let prompt = self.send(team, rec, &rec.channel, None, Purpose::AppPrompt, fill);
        if prompt.await.is_err() {
            tracing::warn!(team = %team.id, interaction = %id, "the app prompt did not reach the chat");
        }
        metrics::counter!("chatgate_challenges_started_total", "method" => ChallengeMethod::App.as_str())
            .increment(1);
        let interaction = InteractionView::build(rec, None, s, now);
        let created = EventData::ChallengeCreated(ChallengeCreated {
            challenge: CreatedChallenge {
                challenge_id: cid,
                delivery: Delivery::App,
                expires_at,
                method: ChallengeMethod::App,
            },
        });
        self.emit(created, now, &interaction).await?;
        Ok(StartedChallenge {
            challenge_id: cid,
            method: view::ChallengeMethod::App,
            delivery: None,
            channel: None,
            expires_at,
            attempts_allowed: 0,
            delivered: true,
            delivery_status: Some(view::DeliveryStatus::Accepted),
            delivery_error: None,
            binding_code: Some(code.expose().to_string()),
        })
    }

    /// `GET /v1/interactions/{id}` for an agent: with the open `app`
    /// challenge's binding code, which the customer's app shows.
    pub async fn get_interaction_for_agent(
        &self,
        team: &Team,
        id: Uuid,
        now: Timestamp,
    ) -> Result<InteractionView> {
        let pair = self.load_pair(team, id, now).await?;
        let mut view = pair.view(team, now)?;
        let open = pair.rec()?.open_challenge(now);
        let app = open.filter(|c| c.method == ChallengeMethod::App);
        if let (Some(c), Some(shown)) = (app, view.open_challenge.as_mut()) {
            if let Some(sealed) = &c.sealed_code {
                let code = crate::domain::reveal::open(sealed, c.id, &self.pepper)?;
                shown.binding_code = Some(code.expose().to_string());
            }
        }
        Ok(view)
    }

    /// Takes back app challenge `cid`, which the provider did not take,
    /// and the send it counted.
    async fn take_back_app(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        previous: &Option<crate::domain::challenge::Challenge>,
        now: Timestamp,
    ) -> Result<()> {
        self.transact(team, id, now, |w| {
            Box::pin(async move {
                let origin = w.origin();
                let (rec, subject) = w.records();
                let previous = previous.clone();
                let taken =
                    start_challenge::take_back(rec, subject, origin.as_deref(), cid, previous, now);
                Ok(if taken {
                    Step::Write(())
                } else {
                    Step::Answer(())
                })
            })
        })
        .await
        .map(|_| ())
    }

    /// The sweeper's turn at app challenge poll `member`, which it holds
    /// with the lease `lease` (ms): ends the challenge if it expired,
    /// else moves the entry to the next poll's time and, if this instance
    /// moved it, asks the token endpoint once and applies the answer.
    pub(super) async fn poll_app(
        &self,
        team: &Team,
        member: &str,
        lease: i64,
        now: Timestamp,
    ) -> Result<()> {
        let queue = keys::due_queue(&team.id);
        let remove = Op::QueueRemove {
            key: queue.clone(),
            member: member.to_string(),
        };
        let ids = member.strip_prefix(ENTRY).and_then(|r| r.split_once(':'));
        let ids = ids.and_then(|(i, c)| Some((Uuid::parse_str(i).ok()?, Uuid::parse_str(c).ok()?)));
        let Some((id, cid)) = ids else {
            tracing::error!(team = %team.id, "app poll entry names no challenge; dropped");
            self.store.commit(vec![remove]).await?;
            return Ok(());
        };
        let pkey = keys::app_poll(&team.id, cid);
        let raw = self
            .store
            .get(std::slice::from_ref(&pkey))
            .await?
            .pop()
            .flatten();
        let loaded = Loaded::<StoredPoll>::parse(pkey.clone(), raw)?;
        let (Some(poll), Some(oidc)) = (loaded.value, team.oidc.as_ref().filter(|o| o.ciba)) else {
            // Gone (or CIBA switched off since): the challenge ends at its ttl.
            self.store.commit(vec![remove]).await?;
            return Ok(());
        };
        let pair = self.load_pair(team, id, now).await?;
        let open = pair.rec()?.challenge.as_ref().filter(|c| c.id == cid);
        match open {
            // Replaced or ended: polling stops, nothing is asked.
            None => {
                self.store.commit(vec![remove]).await?;
                return Ok(());
            }
            Some(c) if now >= c.expires_at => {
                return self
                    .conclude_app(team, id, cid, Answer::Expired, remove, now)
                    .await;
            }
            Some(_) => {}
        }
        // This instance's poll, if it moves the entry from its own lease.
        let held = IndexEntry {
            member: member.to_string(),
            score: lease,
        };
        let next = now.plus(Duration::from_secs(poll.v));
        if self
            .store
            .queue_move_unchanged(&queue, &[held], next.unix_millis())
            .await?
            == 0
        {
            return Ok(());
        }
        let meta = match self.oidc.metadata(oidc, now).await {
            Ok(m) => m,
            Err(e) => {
                super::oidc::logged(team, &e);
                return Ok(());
            }
        };
        let polled = self
            .oidc
            .poll_token(oidc, &meta, &AuthReqId(poll.r.clone()))
            .await;
        let answer = match polled {
            Ok(Polled::Pending) => return Ok(()),
            Ok(Polled::SlowDown) => {
                let slower = StoredPoll {
                    v: poll.v + SLOW_DOWN_BY,
                    ..poll
                };
                let kept = loaded_ttl(&pair, cid, now);
                let op = put(&pkey, loaded.version, &slower, Some(kept))?;
                self.store.commit(vec![op]).await?;
                let at = IndexEntry {
                    member: member.to_string(),
                    score: next.unix_millis(),
                };
                let later = now.plus(Duration::from_secs(slower.v));
                self.store
                    .queue_move_unchanged(&queue, &[at], later.unix_millis())
                    .await?;
                return Ok(());
            }
            Ok(Polled::Denied) => Answer::Denied,
            Ok(Polled::Expired) => Answer::Expired,
            Ok(Polled::IdToken(token)) => self.app_answer(team, oidc, &meta, &token, now).await,
            // A failing provider: the next poll asks again.
            Err(e) => {
                super::oidc::logged(team, &e);
                return Ok(());
            }
        };
        self.conclude_app(team, id, cid, answer, remove, now).await
    }

    /// What an approval's ID token proves: checked as the hosted login's
    /// (docs/api.md#hosted-login-openid-connect), without a nonce.
    async fn app_answer(
        &self,
        team: &Team,
        oidc: &OidcConfig,
        meta: &Metadata,
        token: &str,
        now: Timestamp,
    ) -> Answer {
        let checked = async {
            let claims = self.provider_token(oidc, meta, token, now).await?;
            let expect = id_token::Expect {
                issuer: &oidc.issuer,
                client_id: &oidc.client_id,
                nonce: None,
                max_age: oidc.max_age,
                acr_values: &oidc.acr_values,
                customer_claim: &oidc.customer_claim,
            };
            let proven = id_token::check_login_claims(&claims, &expect, now)?;
            super::oidc::customer(proven)
        };
        match checked.await {
            Ok(customer) => Answer::Proven(customer),
            Err(e) => {
                super::oidc::logged(team, &e);
                Answer::InvalidToken
            }
        }
    }

    /// Applies the provider's final `answer` to app challenge `cid`, and
    /// removes its poll entry (`remove`) in the same commit.
    async fn conclude_app(
        &self,
        team: &Team,
        id: Uuid,
        cid: Uuid,
        answer: Answer,
        remove: Op,
        now: Timestamp,
    ) -> Result<()> {
        let (answer, remove_op) = (&answer, &remove);
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    w.also(remove_op.clone());
                    let s = w.settings;
                    let (rec, subject) = w.records();
                    match app_challenge::conclude(rec, subject, cid, answer.clone(), s, now) {
                        Ending::Authenticated => w.announce_authenticated(),
                        Ending::Ended { reason, failure } => {
                            w.emit(EventData::ChallengeFailed(ChallengeFailed {
                                challenge: FailedChallenge {
                                    attempts_remaining: 0,
                                    challenge_id: cid,
                                    reason: Some(reason),
                                },
                            }));
                            if let Some(f) = &failure {
                                w.emit_lockout(f);
                            }
                        }
                        Ending::Gone => {}
                    }
                    Ok(Step::Write(()))
                })
            })
            .await;
        match done {
            Ok(_) => Ok(()),
            Err(Error::NotFound(_)) => {
                self.store.commit(vec![remove]).await?;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

/// How long a pending approval is kept from `now`: past its challenge's end.
fn loaded_ttl(pair: &super::records::Pair, cid: Uuid, now: Timestamp) -> Duration {
    let end = pair
        .rec()
        .ok()
        .and_then(|r| r.challenge.as_ref().filter(|c| c.id == cid))
        .map_or(now, |c| c.expires_at);
    end.since(now) + KEPT_PAST_END
}
