//! Approval in the customer's own app (docs/api.md#approval-in-the-customers-app):
//! OpenID Connect CIBA in poll mode with the team's identity provider.
//!
//! Starting orders reserve → ask the provider → schedule → announce (a
//! provider that cannot be reached or refuses takes the start back: 502,
//! no send allowance used). Polling is durable: the pending approval is a
//! record (`keys::app_poll`) and an entry `a:<interaction>:<challenge>` in
//! the team's due queue (docs/architecture.md#time-outs), queued at the
//! challenge's end by the reservation itself, so that a start that dies
//! half-way still ends with an event. The sweeper claims it with its
//! lease and, if the challenge is still open, moves the entry past the
//! longest ask, atomically (the claim: only the instance that moved it
//! asks, and never while an ask of it is under way), then hands the ask
//! to the team's lane of the poller (`poller.rs`, decision 0098), so that
//! no provider's round trip holds up the sweep or another team. The
//! poller asks the token endpoint once, applies the answer, and moves the
//! entry to an interval after it. Every app challenge ends with
//! `challenge.failed` or an authentication (decision 0099).
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::read::StartedChallenge;
use crate::channels::{Fill, Purpose};
use crate::config::{OidcConfig, Team};
use crate::domain::app_challenge::{self, Answer, Ending, PollTurn, BINDING_DIGITS};
use crate::domain::challenge::{ChallengeMethod, Delivery, Proof};
use crate::domain::interaction::InteractionRecord;
use crate::domain::otp::{self, OtpCode};
use crate::domain::transaction::Transaction;
use crate::error::{Error, Result};
use crate::events::types::{ChallengeCreated, ChallengeFailed, CreatedChallenge, FailedChallenge};
use crate::events::EventData;
use crate::gateway::polls::{Ask, ClaimedPoll, Kind, Polls};
use crate::gateway::records::{Loaded, StoredPoll};
use crate::gateway::work::Step;
use crate::gateway::writes::{DueEntry, Writes};
use crate::gateway::{change, doors};
use crate::gateway::{identity_changes, view, Core, InteractionView};
use crate::oidc::ciba::{Accepted, AuthReqId, AuthRequest, Polled, MAX_INTERVAL, SLOW_DOWN_BY};
use crate::oidc::provider::{Fared, KeyUse};
use crate::oidc::{id_token, Metadata, OidcError};
use crate::store::{keys, IndexEntry};
use crate::time::{Clock, Timestamp};

/// The due-queue entry kind of app challenges' polls: `a:<id>:<cid>`.
pub(in crate::gateway) const KIND: &str = "a";
const ENTRY: &str = "a:";

/// How long past its challenge's end a pending approval is kept (the
/// queue and the record), so that a late poll still finds it and ends it.
const KEPT_PAST_END: Duration = Duration::from_secs(3600);

/// How long one poll's ask may take at most (discovery, the token
/// endpoint and the key set, each bounded at 5 s, and the store): a
/// claimed entry waits that long past the interval, so that one request is
/// never asked twice at once; an ask still under way then is dropped.
const LONGEST_ASK: Duration = Duration::from_secs(20);

/// How long a replaced challenge without its pending approval waits
/// between turns for a take-back.
const REPLACED_EVERY: Duration = Duration::from_secs(5);

/// `POST /v1/interactions/{id}/challenges {"method": "app"}`.
pub(in crate::gateway) async fn start_app_challenge(
    core: &Arc<Core>,
    team: &Team,
    id: Uuid,
    transaction: Option<&Transaction>,
    clock: &dyn Clock,
) -> Result<StartedChallenge> {
    let now = clock.now();
    let oidc =
        team.oidc.as_ref().filter(|o| o.ciba).ok_or_else(|| {
            Error::invalid("method", "app needs ciba = true in the team's [oidc]")
        })?;
    let cid = Uuid::now_v7();
    let (started, code, channel) = reserve_app(core, team, id, cid, transaction, now).await?;
    let s = team.settings_for(&channel);
    // RFC 9396: the payment, for the app to show beside the binding code.
    let details = transaction.map(|t| t.authorization_details().to_string());
    let asked = AuthRequest {
        login_hint: &started.login_hint,
        binding_message: code.expose(),
        requested_expiry: s.otp.ttl.get().as_secs(),
        authorization_details: details.as_deref(),
    };
    // One that cannot be reached or refuses takes the start back.
    let accepted = match ask_backchannel(core, team, oidc, &asked, now).await {
        Ok(a) => a,
        Err(e) => {
            // The provider did not take it: the previous challenge and the
            // subject's send come back (an app challenge counts no destination).
            super::destinations::take_back(core, team, id, cid, &started.previous, None, now)
                .await?;
            return Err(e);
        }
    };
    // The provider's times count from its answer, which discovery and
    // the request may have kept waiting: its end may be sooner, and the
    // first poll is an interval from the answer, not from the request.
    let answered = clock.now();
    let expires_at = started
        .expires_at
        .min(answered.plus(Duration::from_secs(accepted.expires_in)));
    let rec = schedule_poll(core, team, id, cid, accepted, expires_at, answered)
        .await?
        // Replaced while the provider was asked: no prompt, no event.
        .ok_or(Error::ChallengeExpired)?;
    announce_app(core, team, &rec, cid, &code, expires_at, answered).await?;
    Ok(started_app(cid, &code, expires_at, transaction))
}

/// The answer to the start of app challenge `cid`, which the provider
/// accepted: its binding `code`, its end, and the payment it is for.
fn started_app(
    cid: Uuid,
    code: &OtpCode,
    expires_at: Timestamp,
    transaction: Option<&Transaction>,
) -> StartedChallenge {
    StartedChallenge {
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
        number_check: None,
        transaction: None,
        transaction_hash: None,
        entry: super::read::Entry::Chat,
    }
    .for_transaction(transaction)
}

/// Reserves app challenge `cid`: checks the subject, counts the send,
/// opens the challenge with a fresh binding code (its refusals come
/// before any word with the provider). Answers the start, the code and
/// the interaction's channel.
async fn reserve_app(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    transaction: Option<&Transaction>,
    now: Timestamp,
) -> Result<(app_challenge::Started, OtpCode, String)> {
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let code = otp::generate(BINDING_DIGITS);
                let s = w.settings;
                let (rec, subject) = w.records();
                let started =
                    app_challenge::decide(cid, &code, rec, subject, s, core.pepper(), now)?;
                if let Some(c) = rec.challenge.as_mut().filter(|c| c.id == cid) {
                    c.transaction = transaction.cloned();
                }
                // Its end is due however the start goes (decision 0099).
                let ttl = started.expires_at.since(now) + KEPT_PAST_END;
                w.schedule(&due_entry(&team.keyspace, id, cid), started.expires_at, ttl);
                Ok(Step::Write((started, code)))
            })
        })
        .await?;
    let (started, code) = done.value;
    Ok((started, code, done.rec.channel))
}

/// Schedules the polls of app challenge `cid`, which the provider
/// took (`accepted`): its end (`expires_at`), its pending approval's
/// record and its entry, due an interval from now (at most at its
/// end). `None`: replaced meanwhile, nothing to poll for.
async fn schedule_poll(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    accepted: Accepted,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<Option<InteractionRecord>> {
    let poll = StoredPoll {
        i: id,
        r: accepted.auth_req_id.0,
        v: accepted.interval,
    };
    let first = now
        .plus(Duration::from_secs(accepted.interval))
        .min(expires_at);
    let kept = expires_at.since(now) + KEPT_PAST_END;
    let (poll, team_id) = (&poll, &team.keyspace);
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let Some(c) = w.rec.challenge.as_mut().filter(|c| c.id == cid) else {
                    return Ok(Step::Answer(false));
                };
                c.expires_at = expires_at;
                w.create(&keys::app_poll(team_id, cid), poll, Some(kept))?;
                w.schedule(&due_entry(team_id, id, cid), first, kept);
                Ok(Step::Write(true))
            })
        })
        .await?;
    Ok(done.value.then_some(done.rec))
}

/// Announces started app challenge `cid`: the `app_prompt` with the
/// binding `code` (a courtesy: the app shows the request whatever
/// becomes of it; one log line when the chat does not take it), the
/// metric and `challenge.created`; 502 when WhatsApp refused the prompt
/// for a changed identity, which failed the challenge.
async fn announce_app(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    cid: Uuid,
    code: &OtpCode,
    expires_at: Timestamp,
    now: Timestamp,
) -> Result<()> {
    let transaction = rec
        .challenge
        .as_ref()
        .filter(|c| c.id == cid)
        .and_then(|c| c.transaction.as_ref());
    let amount = transaction.map(|t| t.amount_text());
    let fill = Fill {
        code: Some(code.expose()),
        amount: amount.as_deref(),
        payee: transaction.map(|t| t.payee.as_str()),
        ..Fill::default()
    };
    let prompt = core.send(
        team,
        rec,
        &rec.channel,
        None,
        Purpose::AppPrompt,
        fill,
        None,
        now,
    );
    let prompted = prompt.await;
    if prompted.is_err() {
        tracing::warn!(team = %team.id, interaction = %rec.id, "the app prompt did not reach the chat");
    }
    metrics::counter!("chatgate_challenges_started_total", "method" => ChallengeMethod::App.as_str())
        .increment(1);
    let interaction = InteractionView::build(rec, None, team, now);
    let created = EventData::ChallengeCreated(ChallengeCreated {
        challenge: CreatedChallenge {
            challenge_id: cid,
            delivery: Delivery::App,
            expires_at,
            method: ChallengeMethod::App,
            number_check: None,
            transaction: transaction.map(Into::into),
            transaction_hash: transaction.map(Transaction::hash),
        },
    });
    core.emit(created, now, &interaction).await?;
    // A prompt refused for a changed identity fails the challenge it
    // announced: the start is a failed send (docs/channels.md#sends-know-the-identity).
    if let Err(e) = prompted {
        if identity_changes::on_send_error(core, team, rec, &rec.channel, &e, now).await? {
            return Err(Error::Channel(e.to_string()));
        }
    }
    Ok(())
}

/// `GET /v1/interactions/{id}` for an agent: with the open `app`
/// challenge's binding code, which the customer's app shows.
pub async fn get_interaction_for_agent(
    core: &Core,
    team: &Team,
    id: Uuid,
    now: Timestamp,
) -> Result<InteractionView> {
    let pair = core.load_pair(team, id, now).await?;
    let mut view = pair.view(team, now)?;
    let open = pair.rec()?.open_challenge(now);
    let app = open.filter(|c| matches!(c.proof, Proof::App));
    if let (Some(c), Some(shown)) = (app, view.open_challenge.as_mut()) {
        if let Some(sealed) = &c.sealed_code {
            let code = crate::domain::reveal::open(sealed, c.id, core.pepper())?;
            shown.binding_code = Some(code.expose().to_string());
        }
    }
    Ok(view)
}

/// Asks the team's provider to ask the customer (`asked`): discovery,
/// then the backchannel request. One that cannot be reached, or
/// refuses: 502; one that names no backchannel endpoint: 422.
async fn ask_backchannel(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    asked: &AuthRequest<'_>,
    now: Timestamp,
) -> Result<Accepted> {
    // Logged as the provider fares, as its polls are: one warning when it
    // starts failing, not one per request.
    let meta = core.oidc().metadata(oidc, now).await;
    let meta = poll_fared(core, team, oidc, meta, now, ("request", false))
        .ok_or_else(|| Error::Channel("the identity provider cannot be reached".into()))?;
    if meta.backchannel_authentication_endpoint.is_none() {
        return Err(Error::invalid(
            "method",
            "the team's identity provider names no backchannel_authentication_endpoint",
        ));
    }
    let accepted = core.oidc().backchannel_request(oidc, &meta, asked).await;
    poll_fared(core, team, oidc, accepted, now, ("request", true)).ok_or_else(|| {
        Error::Channel("the identity provider did not take the approval request".into())
    })
}

/// The sweeper's turn at app challenge poll `remove`, the entry it holds
/// with the lease `lease` (ms), whose removal it commits when it is done.
/// At the moment's time (`polls`' clock), as `poll_turn` says: ends the
/// challenge (its end, or `ciba` turned off), announces one replaced
/// whose end came, moves a waiting one on, drops an ended one, or moves
/// the entry past the longest ask and, if this instance moved it, hands
/// the ask to the poller. Never asks the provider itself. Errors are the
/// sweeper's (a record gone, the store, one that cannot be read).
pub(in crate::gateway) async fn claim_app_poll(
    core: &Core,
    team: &Team,
    remove: DueEntry,
    lease: i64,
    polls: &Polls,
) -> Result<()> {
    let now = polls.now();
    let member = &remove.member().to_string();
    let (id, cid) =
        entry_ids(member).ok_or(Error::internal("an app poll entry names no challenge"))?;
    let loaded = load_poll(core, team, cid).await?;
    let pair = core.load_pair(team, id, now).await?;
    let polling = polling(team, loaded.value.as_ref());
    let held = IndexEntry {
        member: member.to_string(),
        score: lease,
    };
    let queue = keys::due_queue(&team.keyspace);
    match (
        app_challenge::poll_turn(pair.rec()?, cid, &polling, now),
        loaded.value,
    ) {
        (PollTurn::End(answer), _) => {
            conclude_app(core, team, id, cid, answer, remove, now).await?;
            forget_poll(core, team, cid, loaded.version, now).await;
        }
        (PollTurn::Replaced, _) => {
            announce_replaced(core, team, id, cid, remove, now).await?;
            forget_poll(core, team, cid, loaded.version, now).await;
        }
        (PollTurn::Wait { next }, _) => {
            let to = next.unix_millis();
            core.queue_move_unchanged(&queue, &[held], to).await?;
        }
        (PollTurn::Drop, _) | (PollTurn::Ask { .. }, None) => {
            core.change(&team.keyspace, &[], now, |c| {
                c.cancel(&remove);
                Ok(Step::Write(()))
            })
            .await?;
            forget_poll(core, team, cid, loaded.version, now).await;
        }
        (PollTurn::Ask { next, expires_at }, Some(poll)) => {
            let claimed = ClaimedPoll {
                team: team.keyspace.clone(),
                id,
                cid,
                member: member.to_string(),
                claimed_at: now,
                due: next,
                expires_at,
                poll,
                version: loaded.version,
            };
            hand_to_poller(core, held, claimed, polls).await?;
        }
    }
    Ok(())
}

/// How `team` polls the request `poll` (`None`: its record lost, its
/// turns come every [`REPLACED_EVERY`] while it is replaced).
fn polling(team: &Team, poll: Option<&StoredPoll>) -> app_challenge::Polling {
    app_challenge::Polling {
        every: poll.map_or(REPLACED_EVERY, |p| Duration::from_secs(p.v)),
        longest_ask: LONGEST_ASK,
        enabled: team.oidc.as_ref().is_some_and(|o| o.ciba),
        kept: poll.is_some(),
    }
}

/// Hands `claimed` to the poller if this instance claims it: it moves the
/// entry `held` from its lease past the longest ask. A full lane of the
/// team (or a stopped poller) leaves the entry at its lease, due again.
async fn hand_to_poller(
    core: &Core,
    held: IndexEntry,
    claimed: ClaimedPoll,
    polls: &Polls,
) -> Result<()> {
    let Some(slot) = polls.slot_for(Kind::AppPoll) else {
        tracing::debug!(team = %claimed.team, "app poll left for the next sweep: the team's lane is full");
        return Ok(());
    };
    let queue = keys::due_queue(&claimed.team);
    let to = claimed.due.unix_millis();
    if core.queue_move_unchanged(&queue, &[held], to).await? > 0 {
        slot.hand(Ask::AppPoll(claimed));
    }
    Ok(())
}

/// The poller's ask for a claimed poll, for [`LONGEST_ASK`] at most:
/// logs what fails (the entry already waits past that, and its turn
/// then asks again, or ends it when `ciba` was turned off).
pub(in crate::gateway) async fn ask_app(core: &Core, claimed: ClaimedPoll, clock: &dyn Clock) {
    let Some(team) = core.config().team_in(&claimed.team) else {
        return;
    };
    let Some(oidc) = team.oidc.as_ref().filter(|o| o.ciba) else {
        return;
    };
    let asked = ask_claimed(core, team, oidc, claimed, clock);
    match tokio::time::timeout(LONGEST_ASK, asked).await {
        Ok(Ok(()) | Err(Error::StoreUnavailable)) => {}
        Ok(Err(e)) => tracing::warn!(team = %team.id, error = %e, "app poll failed; will retry"),
        Err(_) => tracing::warn!(team = %team.id, "app poll dropped: it outlasted the longest ask"),
    }
}

/// Asks the token endpoint once for `claimed`, if its challenge is
/// still open now, and applies the answer, each step at the clock's
/// time of the moment.
async fn ask_claimed(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    mut claimed: ClaimedPoll,
    clock: &dyn Clock,
) -> Result<()> {
    let now = clock.now();
    let (id, cid) = (claimed.id, claimed.cid);
    if !still_to_ask(core, team, &mut claimed, now).await? {
        return Ok(());
    }
    let meta = core.oidc().metadata(oidc, now).await;
    let meta = match poll_fared(core, team, oidc, meta, now, ("poll", false)) {
        Some(m) => m,
        None => return next_poll(core, team, &claimed, clock.now()).await,
    };
    let polled = core
        .oidc()
        .poll_token(oidc, &meta, &AuthReqId(claimed.poll.r.clone()))
        .await;
    let Some(polled) = poll_fared(core, team, oidc, polled, clock.now(), ("poll", true)) else {
        // A failing provider: the next poll asks again, an interval on.
        return next_poll(core, team, &claimed, clock.now()).await;
    };
    let answer = match polled {
        Polled::Pending => return next_poll(core, team, &claimed, clock.now()).await,
        Polled::SlowDown => return slow_down(core, team, &claimed, clock.now()).await,
        Polled::Denied => Answer::Denied,
        Polled::Expired => Answer::Expired,
        // Issued, so never issued again: the challenge fails at once.
        Polled::Unusable => {
            tracing::warn!(team = %team.id, "the identity provider's token answer holds no usable id_token");
            Answer::InvalidToken
        }
        Polled::IdToken(token) => app_answer(core, team, oidc, &meta, &token, clock).await,
    };
    let remove = DueEntry::new(&team.keyspace, claimed.member.clone());
    let done = conclude_app(core, team, id, cid, answer, remove, clock.now()).await;
    match done {
        // Gone: its entry's next turn drops it.
        Ok(()) | Err(Error::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    forget_poll(core, team, cid, claimed.version, clock.now()).await;
    Ok(())
}

/// Whether `claimed` is still to be asked at `now`: its challenge is
/// still the open one, now that this instance holds the poll. Asked later
/// than claimed (it waited in its lane), its entry moves to an interval
/// and the longest ask from now (`false` when another turn took the entry
/// meanwhile: an ask that waited that long is not fired late).
async fn still_to_ask(
    core: &Core,
    team: &Team,
    claimed: &mut ClaimedPoll,
    now: Timestamp,
) -> Result<bool> {
    let pair = core.load_pair(team, claimed.id, now).await?;
    let open = pair.rec()?.challenge.as_ref();
    if !open.is_some_and(|c| c.id == claimed.cid && now < c.expires_at) {
        return Ok(false);
    }
    if now > claimed.claimed_at {
        let later = now
            .plus(Duration::from_secs(claimed.poll.v).saturating_add(LONGEST_ASK))
            .min(claimed.expires_at);
        if later > claimed.due {
            if move_poll(core, team, claimed, later).await? == 0 {
                return Ok(false);
            }
            claimed.due = later;
        }
    }
    Ok(true)
}

/// The answer of an app approval's round trip to the provider, or `None`
/// when it failed; logged as the provider fares (docs/operations.md#logs):
/// one warning when its approvals start failing, one line when it answers
/// again, whichever ask it was and however many approvals asked. `ask`:
/// its `request` or a `poll`, and whether this answer is the ask's last
/// step (discovery answered from its cache says nothing of the approvals:
/// only a failure of it counts).
fn poll_fared<T>(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    answer: std::result::Result<T, OidcError>,
    now: Timestamp,
    (ask, last): (&'static str, bool),
) -> Option<T> {
    if answer.is_ok() && !last {
        return answer.ok();
    }
    let fared = core.oidc().fared(&oidc.issuer, answer.is_err(), now);
    match (&answer, fared) {
        (Err(e), Fared::StartedFailing) => {
            tracing::warn!(team = %team.id, ask, reason = %e, "identity provider: app approvals are failing; polls are retried at each interval")
        }
        (Err(e), _) => {
            tracing::debug!(team = %team.id, ask, reason = %e, "identity provider: app approval failed again")
        }
        (Ok(_), Fared::Recovered { since, failed }) => {
            tracing::info!(team = %team.id, ask, failed_attempts = failed, since = %since, "identity provider: app approvals answered again")
        }
        (Ok(_), _) => {}
    }
    answer.ok()
}

/// After an answer that does not end it (pending, or a failing
/// provider) at `now`: the entry moves from where the claim put it to an
/// interval from now, so the next poll goes an interval after this
/// answer. Left as it is when another turn took it meanwhile.
async fn next_poll(core: &Core, team: &Team, claimed: &ClaimedPoll, now: Timestamp) -> Result<()> {
    let next = now
        .plus(Duration::from_secs(claimed.poll.v))
        .min(claimed.expires_at);
    move_poll(core, team, claimed, next).await.map(|_| ())
}

/// Moves claimed poll's entry from where it waits to `to`; how many
/// moved (0: taken meanwhile).
async fn move_poll(
    core: &Core,
    team: &Team,
    claimed: &ClaimedPoll,
    to: Timestamp,
) -> Result<usize> {
    let at = IndexEntry {
        member: claimed.member.clone(),
        score: claimed.due.unix_millis(),
    };
    let queue = keys::due_queue(&team.keyspace);
    Ok(core
        .queue_move_unchanged(&queue, &[at], to.unix_millis())
        .await?)
}

/// `slow_down`: the interval grows by [`SLOW_DOWN_BY`] for this and
/// every later poll, in one commit with the entry's move. A poll that
/// ended meanwhile (its record changed or gone) is left as it is.
async fn slow_down(core: &Core, team: &Team, claimed: &ClaimedPoll, now: Timestamp) -> Result<()> {
    let slower = StoredPoll {
        v: claimed
            .poll
            .v
            .saturating_add(SLOW_DOWN_BY)
            .min(MAX_INTERVAL),
        ..claimed.poll.clone()
    };
    let later = now
        .plus(Duration::from_secs(slower.v))
        .min(claimed.expires_at);
    let kept = claimed.expires_at.since(now) + KEPT_PAST_END;
    // As claimed: the poll as read then, at its version.
    let read: Loaded<StoredPoll> = Loaded {
        key: keys::app_poll(&team.keyspace, claimed.cid),
        version: claimed.version,
        value: Some(claimed.poll.clone()),
    };
    let entry = DueEntry::new(&team.keyspace, claimed.member.clone());
    // Taken meanwhile (the challenge ended): left to whoever took it.
    change::once(core, &team.keyspace, &[], now, |c| {
        c.put(&read, &slower, Some(kept))?;
        c.schedule(&entry, later, kept);
        Ok(Step::Write(()))
    })
    .await
    .map(|_| ())
}

/// What an approval's ID token proves: checked as the hosted login's
/// (docs/api.md#hosted-login-openid-connect), without a nonce, at the
/// time of the check.
async fn app_answer(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    meta: &Metadata,
    token: &str,
    clock: &dyn Clock,
) -> Answer {
    let checked = async {
        let claims = crate::gateway::provider_tokens::provider_token(
            core,
            oidc,
            meta,
            token,
            KeyUse::Ciba,
            clock.now(),
        )
        .await?;
        let expect = id_token::Expect {
            issuer: &oidc.issuer,
            client_id: &oidc.client_id,
            nonce: None,
            max_age: oidc.max_age,
            acr_values: &oidc.acr_values,
            customer_claim: &oidc.customer_claim,
        };
        let proven = id_token::check_login_claims(&claims, &expect, clock.now())?;
        crate::gateway::oidc::customer(proven)
    };
    match checked.await {
        Ok(customer) => Answer::Proven(customer),
        Err(e) => {
            crate::gateway::oidc::logged(team, &e);
            Answer::InvalidToken
        }
    }
}

/// Applies the provider's final `answer` to app challenge `cid`, and
/// removes its poll entry (`remove`) in the same commit.
async fn conclude_app(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    answer: Answer,
    remove: DueEntry,
    now: Timestamp,
) -> Result<()> {
    let (answer, remove) = (&answer, &remove);
    core.transact(team, id, now, |w| {
        Box::pin(async move {
            w.cancel(remove);
            let s = w.settings;
            let (rec, subject) = w.records();
            match app_challenge::conclude(rec, subject, cid, answer.clone(), s, now) {
                Ending::Authenticated => {
                    w.announce_authenticated();
                    if let Some(approved) = super::verify::approved_event(&w.rec, cid, now) {
                        w.emit(approved);
                    }
                }
                Ending::Ended { reason, failure } => {
                    if let Some(event) = failed(&w.rec, cid, reason, now) {
                        w.emit(event);
                    }
                    if let Some(f) = &failure {
                        w.emit_lockout(f);
                    }
                }
                Ending::Gone => {}
            }
            Ok(Step::Write(()))
        })
    })
    .await
    .map(|_| ())
}

/// Announces app challenge `cid`, replaced by a newer challenge (or a
/// logout) and now past its own end: `challenge.failed` with reason
/// `replaced`, committed with `remove`, its entry's removal. One taken
/// back meanwhile (current again) is left to its next turn.
async fn announce_replaced(
    core: &Core,
    team: &Team,
    id: Uuid,
    cid: Uuid,
    remove: DueEntry,
    now: Timestamp,
) -> Result<()> {
    let remove = &remove;
    core.transact(team, id, now, |w| {
        Box::pin(async move {
            if app_challenge::replaced_end(&w.rec, cid).is_none() {
                return Ok(Step::Answer(()));
            }
            w.cancel(remove);
            if let Some(event) = failed(&w.rec, cid, "replaced", now) {
                w.emit(event);
            }
            w.as_announcement();
            Ok(Step::Write(()))
        })
    })
    .await
    .map(|_| ())
}

/// `challenge.failed` of app challenge `cid` of `rec` (ended, so
/// remembered), for `reason`.
fn failed(
    rec: &InteractionRecord,
    cid: Uuid,
    reason: &'static str,
    now: Timestamp,
) -> Option<EventData> {
    let (c, _) = rec.challenge_at(cid, now)?;
    Some(EventData::ChallengeFailed(ChallengeFailed {
        challenge: FailedChallenge::of(c, 0),
        reason: Some(reason),
    }))
}

/// The pending approval of challenge `cid` as stored.
async fn load_poll(core: &Core, team: &Team, cid: Uuid) -> Result<Loaded<StoredPoll>> {
    doors::read(core, &keys::app_poll(&team.keyspace, cid)).await
}

/// Deletes the pending approval of ended challenge `cid` (its
/// `auth_req_id`), as read at `version` (0: none), once its entry is
/// gone. Best effort: its TTL ends it otherwise, as it does one written
/// since.
async fn forget_poll(core: &Core, team: &Team, cid: Uuid, version: u64, now: Timestamp) {
    if version == 0 {
        return;
    }
    // As read: its value is not needed to delete it.
    let read: Loaded<StoredPoll> = Loaded {
        key: keys::app_poll(&team.keyspace, cid),
        version,
        value: None,
    };
    let forgotten = change::once(core, &team.keyspace, &[], now, |c| {
        c.delete(&read);
        Ok(Step::Write(()))
    });
    if let Err(e) = forgotten.await {
        tracing::debug!(team = %team.id, error = %e, "an ended app poll's record is left to its ttl");
    }
}

/// The interaction and challenge an entry `a:<id>:<cid>` names.
fn entry_ids(member: &str) -> Option<(Uuid, Uuid)> {
    let (i, c) = member.strip_prefix(ENTRY)?.split_once(':')?;
    Some((Uuid::parse_str(i).ok()?, Uuid::parse_str(c).ok()?))
}

/// The due entry `a:<id>:<cid>` of app challenge `cid` of interaction
/// `id`, in `team`'s queue.
fn due_entry(team: &str, id: Uuid, cid: Uuid) -> DueEntry {
    DueEntry::new(team, format!("{ENTRY}{id}:{cid}"))
}
