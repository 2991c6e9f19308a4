//! Silent network authentication's browser side
//! (docs/network-authentication.md): `GET /n/{code}` shows the page that
//! asks the customer to confirm they are chatting with the team now,
//! `POST /n/{code}` (its button) sends the browser to the mobile operator
//! with a fresh state, and `GET /n/callback` takes the operator's answer,
//! asks the Number Verification API about the number on file and applies
//! what it says to the challenge. A provider asked before the browser
//! goes (Vonage) is started at the button, once per challenge, and
//! answered through `/n/landing` ([`landing`]). Opening the link uses
//! nothing up (link previews); every refusal before the operator's answer
//! changes nothing.
use std::time::Duration;

use uuid::Uuid;

use super::challenges::network::conclude_network;
use super::links::{self, LinkState};
use super::login::Speaks;
use super::oidc::take_link_state;
use super::work::Step;
use super::{change, Core};
use crate::config::{NumberVerification, Team};
use crate::domain::browser::state_cookie_name;
use crate::domain::challenge::AdvanceReason;
use crate::domain::network_auth::{Ending, NetworkResult, Source};
use crate::domain::otp::OtpCode;
use crate::error::{Error, Result};
use crate::network_verification::{self as verification, Ask, Back, Begin, Begun, NetworkError};
use crate::oidc::flow::{s256, Flow, ProviderAnswer, Started, STATE_TTL};
use crate::oidc::states::{self, Check, LinkStates};

pub mod landing;

use crate::store::keys;
use crate::time::Timestamp;
pub use landing::{finish_landing, Landing};

/// The longest the callback waits on the operator in all: the code
/// exchange and the verify call, each bounded at 5 s.
pub const OPERATOR_DEADLINE: Duration = Duration::from_secs(10);

/// What `GET /n/{code}` and its button's `POST` answer.
#[derive(Debug)]
pub enum NetworkLinkTarget {
    /// The page asking the customer to confirm (the `GET` of an open link).
    Confirm(NetworkConfirm),
    /// To the operator, with the state's cookie (the button's `POST`).
    Operator(NetworkStart),
    /// The button's `POST` without this browser's form token: nothing
    /// changes.
    Refused(Speaks),
    /// The provider asked at the button failed (the challenge's answer
    /// is an error): the retry page, 502.
    Failed(Speaks),
    /// The challenge was used (`true`: it succeeded, or its verified
    /// answer waits for its code), or expired, was replaced or failed:
    /// its 410 page, in the interaction's language when known.
    Gone(bool, Option<Speaks>),
}

/// What the confirm page names: the team (its `display_name`, else its
/// id) and the conversation's channel in words, in the interaction's
/// language; where its button may lead (the provider's `form-action`
/// sources) and how long the link has left.
#[derive(Debug)]
pub struct NetworkConfirm {
    pub speaks: Speaks,
    pub named: Named,
    pub form_action: String,
    pub left: Duration,
    /// The page's form token, for the browser the request named.
    pub form_token: String,
}

pub use super::links::Named;

/// A started operator check: where the browser goes, and the cookie
/// that ties it to this browser: its name (after the state, or after the
/// provider's request) and the secret it keeps.
#[derive(Debug)]
pub struct NetworkStart {
    pub location: String,
    pub cookie: String,
    pub secret: String,
}

/// How the operator's answer ended.
#[derive(Debug)]
pub struct NetworkFinish {
    pub outcome: std::result::Result<NetworkResult, NetworkRefusal>,
    /// A verified answer in a conversation that is not the number's own
    /// SMS conversation: the code its page shows, to type into the chat.
    pub code: Option<OtpCode>,
    /// It used its state up: that state's cookie is cleared.
    pub answered: bool,
    pub speaks: Option<Speaks>,
    /// A `mismatch` that left the challenge open: a code the browser
    /// posted was refused with tries left (its page asks to try again).
    pub try_again: bool,
}

/// Why the callback changed nothing.
#[derive(Debug)]
pub enum NetworkRefusal {
    /// 400: an unknown, old, answered or other browser's state.
    BadState(&'static str),
    /// 410: the challenge was used (`true`), or is no longer open.
    Gone(bool),
    /// 503: the store.
    Store(Error),
}

/// Where the provider sends the browser back.
fn redirect_uri(core: &Core, back: Back) -> String {
    format!("{}{}", core.config().server.public_url, back.path())
}

/// The link `code` names, as it stands: its team, `[number_verification]`,
/// the link and its interaction, while its challenge is open; else what
/// the link answers (`Gone`). 404 for a code never issued (or long gone).
async fn open_link<'c>(
    core: &'c Core,
    code: &str,
    now: Timestamp,
) -> Result<std::result::Result<OpenLink<'c>, NetworkLinkTarget>> {
    let Some(opened) = links::open::<links::Network>(core, code, now).await? else {
        return Ok(Err(NetworkLinkTarget::Gone(false, None)));
    };
    let (team, state) = (opened.team, opened.state(now));
    let Some(rec) = opened.rec().filter(|_| state == LinkState::Open) else {
        return Ok(Err(NetworkLinkTarget::Gone(state.used(), opened.speaks())));
    };
    let left = rec
        .open_challenge(now)
        .map_or(Duration::ZERO, |c| c.expires_at.since(now));
    let confirm = NetworkConfirm {
        speaks: links::speaks(team, rec),
        named: links::named(core, team, rec),
        form_action: opened.needs.provider.form_action(),
        left,
        form_token: String::new(),
    };
    let number = rec.contact.phone.as_deref().map(e164);
    Ok(Ok(OpenLink {
        team,
        nv: opened.needs,
        link: (opened.interaction, opened.challenge),
        confirm,
        number,
    }))
}

/// An open link, read by [`open_link`].
struct OpenLink<'c> {
    team: &'c Team,
    nv: &'c NumberVerification,
    /// The interaction and the challenge it names.
    link: (Uuid, Uuid),
    confirm: NetworkConfirm,
    /// The number on file, `+E.164`.
    number: Option<String>,
}

/// The number on file as a provider reads it, `+E.164` (a number kept
/// with a trunk prefix, `+44 07…`, is written without it).
fn e164(number: &str) -> String {
    crate::domain::phone::e164(number).unwrap_or_else(|| number.to_string())
}

/// The team of the link `code` names, read without changing anything (the
/// caller takes a place at that team's gate before a provider is asked).
pub async fn network_link_team(core: &Core, code: &str) -> Option<String> {
    links::team_of::<links::Network>(core, code).await
}

/// `GET /n/{code}`: for the open network challenge the code names, the
/// page that asks the customer to confirm that they are chatting with
/// the team now, with its form token for the browser whose cookie keeps
/// `browser`. Nothing is written (link previews use nothing up).
pub async fn open_network_link(
    core: &Core,
    code: &str,
    browser: &str,
    now: Timestamp,
) -> Result<NetworkLinkTarget> {
    Ok(match open_link(core, code, now).await? {
        Ok(open) => NetworkLinkTarget::Confirm(NetworkConfirm {
            form_token: crate::domain::browser::form_token(core.pepper(), code, browser),
            ..open.confirm
        }),
        Err(answer) => answer,
    })
}

/// `POST /n/{code}`, the confirm page's button: for the open network
/// challenge the code names, and only with the form token of the
/// browser whose cookie keeps `browser`, a new state kept [`STATE_TTL`]
/// among the link's [`states::MAX_PER_LINK`] newest, tied to this browser
/// by its cookie: the browser goes to the provider's redirect
/// ([`Back::Callback`]) or to the check it runs for the challenge,
/// started once ([`Back::Landing`], [`landing::start`]). A link that is
/// not open answers as its page does.
pub async fn confirm_network_link(
    core: &Core,
    code: &str,
    (browser, token): (Option<&str>, Option<&str>),
    now: Timestamp,
) -> Result<NetworkLinkTarget> {
    let open = match open_link(core, code, now).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    if !crate::domain::browser::form_token_holds(core.pepper(), code, browser, token) {
        let team = &open.team.id;
        tracing::info!(team = %team, "a network link's confirmation without its browser's form token");
        return Ok(NetworkLinkTarget::Refused(open.confirm.speaks));
    }
    match open.nv.provider.info().back {
        Back::Callback => redirect(core, &open, now).await,
        Back::Landing => landing::start(core, &open, now).await,
    }
}

/// The confirm button of a provider that comes back to `/n/callback`: a
/// new state and PKCE verifier, and the provider's authorization request.
async fn redirect(core: &Core, open: &OpenLink<'_>, now: Timestamp) -> Result<NetworkLinkTarget> {
    let state = states::new_state(&link_tag(open));
    let (flow, browser_secret) = Flow::begin(open.nv.provider.operator().as_str(), None, now);
    let http = (verification::client(open.nv.reach))
        .map_err(|_| Error::internal("network verification has no HTTP client"))?;
    let q = Begin {
        http,
        redirect_uri: &redirect_uri(core, Back::Callback),
        state: &state,
        code_challenge: &s256(&flow.verifier),
        number: open.number.as_deref().unwrap_or_default(),
        left: open.confirm.left,
        now,
    };
    let Ok(Begun::Redirect(location)) = open.nv.provider.begin(&q).await else {
        return Err(Error::internal("a redirect provider began no redirect"));
    };
    keep_state(core, open, &state, flow, None, now).await?;
    Ok(NetworkLinkTarget::Operator(NetworkStart {
        location,
        cookie: state_cookie_name(&state),
        secret: browser_secret,
    }))
}

/// The tag of `open`'s states, marked with its team's slot
/// (`keys::marked`): the record of its checks under way is in that slot.
fn link_tag(open: &OpenLink<'_>) -> String {
    keys::marked(&open.team.keyspace, &states::link_tag(open.link.1))
}

/// Keeps the check begun with `flow` under `state` among the link's
/// newest, with the provider's `check` if any.
async fn keep_state(
    core: &Core,
    open: &OpenLink<'_>,
    state: &str,
    flow: Flow,
    check: Option<Check>,
    now: Timestamp,
) -> Result<()> {
    let started = started_of(open, flow);
    let key = keys::network_states(&link_tag(open));
    core.change(&open.team.keyspace, std::slice::from_ref(&key), now, |c| {
        let read = c.read::<LinkStates>(&key)?;
        let mut kept = read.value.clone().unwrap_or_default();
        kept.add_checked(state, started.clone(), check.clone(), now);
        c.put(&read, &kept, Some(STATE_TTL))?;
        Ok(Step::Write(()))
    })
    .await
}

/// What a link keeps of a check begun with `flow`.
fn started_of(open: &OpenLink<'_>, flow: Flow) -> Started {
    Started {
        team: open.team.id.clone(),
        interaction_id: open.link.0,
        link_id: open.link.1,
        flow,
    }
}

/// A network answer's state as read, once, before its team's gate is
/// entered: the team whose check it names (`None`: no check is kept
/// under it), and the read its take decides on first, so that the state
/// is read one time only (docs/architecture.md#one-state-ladder).
pub struct StateRead(std::result::Result<KeptRead, NetworkRefusal>);

struct KeptRead {
    key: String,
    first: change::Read,
    team: Option<String>,
}

impl StateRead {
    /// The team whose check the state names, if one is kept under it.
    pub fn team(&self) -> Option<&str> {
        self.0.as_ref().ok()?.team.as_deref()
    }
}

/// The record `state` names, read (one round trip) without using it up:
/// the caller takes a place at its team's gate, then answers with it.
pub async fn read_state(core: &Core, state: Option<&str>) -> StateRead {
    let read = async {
        let state = state
            .filter(|s| s.len() <= 256)
            .ok_or(NetworkRefusal::BadState("no state"))?;
        let tag = states::tag_of(state).ok_or(NetworkRefusal::BadState("unknown"))?;
        let key = keys::network_states(tag);
        let first = change::read(core, std::slice::from_ref(&key))
            .await
            .map_err(NetworkRefusal::Store)?;
        let kept = first.get::<LinkStates>(&key).ok().and_then(|l| l.value);
        let team = kept.and_then(|k| k.find(state).map(|s| s.team.clone()));
        Ok(KeptRead { key, first, team })
    };
    StateRead(read.await)
}

/// `GET /n/callback`: the state (this browser's, live, unanswered;
/// consumed here), then the operator's answer: an `error` is a phone off
/// the mobile network; else the code is exchanged and the number on file
/// verified, within [`OPERATOR_DEADLINE`]. The result is applied to the
/// challenge, counted, and a failure of the operator logged once.
/// `cookie`: the browser secret of the state's cookie.
pub async fn finish_network(
    core: &Core,
    read: StateRead,
    answer: ProviderAnswer,
    cookie: Option<&str>,
    now: Timestamp,
) -> NetworkFinish {
    let state = answer.state.as_deref();
    let started = take_state(core, read, (state, cookie), (None, false), now).await;
    finish_started(core, started, &answer, None, now).await
}

/// The answer `answer` to the check taken (`started`), applied (the
/// provider's request `check` for [`Back::Landing`]).
async fn finish_started(
    core: &Core,
    started: std::result::Result<Started, NetworkRefusal>,
    answer: &ProviderAnswer,
    check: Option<&str>,
    now: Timestamp,
) -> NetworkFinish {
    let started = match started {
        Ok(started) => started,
        Err(refusal) => {
            return NetworkFinish {
                outcome: Err(refusal),
                code: None,
                answered: false,
                speaks: None,
                try_again: false,
            }
        }
    };
    let applied = answer_started(core, &started, answer, check, now).await;
    let (outcome, code, speaks, open) = match applied {
        Ok((result, code, speaks, open)) => (Ok(result), code, Some(speaks), open),
        Err((refusal, speaks)) => (Err(refusal), None, speaks, false),
    };
    NetworkFinish {
        try_again: open && matches!(outcome, Ok(NetworkResult::Mismatch)),
        outcome,
        code,
        answered: true,
        speaks,
    }
}

type Refused = (NetworkRefusal, Option<Speaks>);

/// What applying an answer gives: the result, the code its page shows,
/// the language of the page, and whether the challenge stays open.
type Applied = (NetworkResult, Option<OtpCode>, Speaks, bool);

/// The operator's answer to check `started`, applied to its challenge.
async fn answer_started(
    core: &Core,
    started: &Started,
    answer: &ProviderAnswer,
    check: Option<&str>,
    now: Timestamp,
) -> std::result::Result<Applied, Refused> {
    let store = |e: Error| (NetworkRefusal::Store(e), None);
    let gone = (NetworkRefusal::Gone(false), None);
    let (team, nv) = verifying_team(core, &started.team).ok_or(gone)?;
    // Started with an operator the team no longer names: its code is
    // not the new one's to exchange.
    if started.flow.issuer.as_deref() != Some(nv.provider.operator().as_str()) {
        return Err((
            NetworkRefusal::BadState("started with another operator"),
            None,
        ));
    }
    let (id, cid) = (started.interaction_id, started.link_id);
    let pair = core.load_pair(team, id, now).await.map_err(store)?;
    let rec = pair.rec().map_err(store)?;
    let speaks = links::speaks(team, rec);
    let state = links::state_of::<links::Network>(Some(rec), cid, now);
    if state != LinkState::Open {
        return Err((NetworkRefusal::Gone(state.used()), Some(speaks)));
    }
    // A landing without a code: whatever its text says, a browser can
    // post it; only the provider's answer to a code ends a check.
    if check.is_some() && answer.code.is_none() {
        let noted = noted(core, team, (id, cid), now).await;
        let off = NetworkResult::NotOnMobileNetwork;
        return noted
            .map(|()| (off, None, speaks.clone(), true))
            .map_err(|r| (r, Some(speaks)));
    }
    // A code the browser posted, refused by the provider: a browser can
    // post any code, so it is one wrong try (network_auth::refused_code).
    let source = match check {
        Some(_) => Source::PostedCode,
        None => Source::Operator,
    };
    let result = match (&answer.error, rec.contact.phone.as_deref()) {
        (Some(error), _) => nv.provider.read_error(error),
        // The number on file was removed since the link went out.
        (None, None) => NetworkResult::Error,
        (None, Some(number)) => {
            let number = e164(number);
            let q = (&started.flow, answer, check, number.as_str());
            asked(core, team, nv, q, now).await
        }
    };
    apply(core, team, (id, cid), (result, source), now)
        .await
        .map(|(code, open)| (result, code, speaks.clone(), open))
        .map_err(|refusal| (refusal, Some(speaks)))
}

/// A provider's `result` (from `source`) applied to challenge `cid` of
/// interaction `id`: the challenge (and a ladder) moved by the domain's
/// conclusion, the answer counted ([`counted`]). The code the page
/// shows, if any, and whether the challenge stays open.
async fn apply(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    (result, source): (NetworkResult, Source),
    now: Timestamp,
) -> std::result::Result<(Option<OtpCode>, bool), NetworkRefusal> {
    match conclude_network(core, team, id, cid, (result, source), now).await {
        Ok((Ending::Gone, _)) => Err(NetworkRefusal::Gone(false)),
        Ok((ending, code)) => {
            if let Ending::MoveOn(reason) = ending {
                move_on(core, team, (id, cid), reason, now).await;
            }
            counted(result);
            Ok((code, ending == Ending::Open))
        }
        Err(e) => Err(NetworkRefusal::Store(e)),
    }
}

/// One answer of the operator counted in
/// `chatgate_network_verifications_total` by its result: every answer
/// applied to an open challenge, whatever it did
/// (docs/network-authentication.md#limits-privacy-and-metrics).
fn counted(result: NetworkResult) {
    metrics::counter!("chatgate_network_verifications_total", "result" => result.as_str())
        .increment(1);
}

/// A landing that brought no code, on challenge `cid` of interaction
/// `id`: noted as the last answer, a phone off the mobile network (its
/// page asks to try again), and counted as one in the metric, nothing
/// more: the challenge stays open, a ladder stays at its network step
/// until its time-out, no try is counted
/// (docs/network-authentication.md#the-vonage-landing).
async fn noted(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    now: Timestamp,
) -> std::result::Result<(), NetworkRefusal> {
    let off = NetworkResult::NotOnMobileNetwork;
    match conclude_network(core, team, id, cid, (off, Source::Operator), now).await {
        Ok((Ending::Gone, _)) => Err(NetworkRefusal::Gone(false)),
        Ok(_) => {
            counted(off);
            Ok(())
        }
        Err(e) => Err(NetworkRefusal::Store(e)),
    }
}

/// A ladder's network step that did not confirm: the ladder moves on to
/// its next step at once (the code goes out there). A move that cannot
/// be made (no step left that can take it, its limit) leaves the ladder
/// at its network step until its time-out, which tries again.
async fn move_on(
    core: &Core,
    team: &Team,
    (id, cid): (Uuid, Uuid),
    reason: AdvanceReason,
    now: Timestamp,
) {
    let moved = super::challenges::ladder::advance_ladder(core, team, id, cid, reason, now);
    if let Err(e) = moved.await {
        tracing::info!(team = %team.id, reason = reason.as_str(), error = %e, "a ladder's network step could not move on");
    }
}

/// What the team's provider says of the phone, from the answer the
/// browser brought back (with its flow, the provider's request, and the
/// number on file), within [`OPERATOR_DEADLINE`]; any failure is
/// [`NetworkResult::Error`], logged once while the operator keeps failing.
async fn asked(
    core: &Core,
    team: &Team,
    nv: &NumberVerification,
    (flow, answer, check, number): (&Flow, &ProviderAnswer, Option<&str>, &str),
    now: Timestamp,
) -> NetworkResult {
    let ask = async {
        let code = answer
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or(NetworkError("operator: no usable code".into()))?;
        let q = Ask {
            http: verification::client(nv.reach)?,
            code,
            check,
            redirect_uri: &redirect_uri(core, nv.provider.info().back),
            verifier: &flow.verifier,
            number,
            now,
        };
        nv.provider.answer(&q).await
    };
    waited(core, team, ask, now)
        .await
        .unwrap_or(NetworkResult::Error)
}

/// `ask`, a round trip to `team`'s provider, waited on within
/// [`OPERATOR_DEADLINE`] as a provider is (`waits::on_provider`); a
/// failure is logged once when the provider starts failing, and one
/// line when it answers again.
async fn waited<T>(
    core: &Core,
    team: &Team,
    ask: impl std::future::Future<Output = std::result::Result<T, NetworkError>>,
    now: Timestamp,
) -> std::result::Result<T, NetworkError> {
    let name = format!("network:{}", team.id);
    let waited = crate::waits::on_provider("mobile operator", &name, async {
        tokio::time::timeout(OPERATOR_DEADLINE, ask).await
    });
    let answered = match waited.await {
        Ok(answered) => answered,
        Err(_) => Err(NetworkError("operator: no answer in time".into())),
    };
    let fared = core.oidc().fared(&name, answered.is_err(), now);
    match (&answered, fared) {
        (Err(e), crate::fared::Fared::StartedFailing) => {
            tracing::warn!(team = %team.id, reason = %e, "mobile operator: network verifications are failing")
        }
        (Ok(_), crate::fared::Fared::Recovered { since, failed }) => {
            tracing::info!(team = %team.id, failed_attempts = failed, since = %since, "mobile operator: network verifications answered again")
        }
        _ => {}
    }
    answered
}

/// The check the state names (as `read` found it), if it is kept, live,
/// this browser's (`cookie`, the secret of its cookie) and come back the
/// way it was begun (`check`: the provider's request a landing names,
/// which the check must be; `None` at the callback, for a check without
/// one); consumed, so that it answers once (a provider's request with
/// every state that joined it, or, `alone`, this state only: a landing
/// that brought no code answers nothing of the check). Nothing is
/// consumed otherwise: a state from another browser stays good for its
/// own.
async fn take_state(
    core: &Core,
    read: StateRead,
    (state, cookie): (Option<&str>, Option<&str>),
    (check, alone): (Option<&str>, bool),
    now: Timestamp,
) -> std::result::Result<Started, NetworkRefusal> {
    let state = state
        .filter(|s| s.len() <= 256)
        .ok_or(NetworkRefusal::BadState("no state"))?;
    let KeptRead { key, first, .. } = read.0?;
    // The state is all a browser brings: its team is known once it is read.
    let taken = take_link_state(
        core,
        change::NO_TEAM,
        first,
        &key,
        now,
        |kept| match alone {
            true => kept.take_alone(state, cookie, check, now),
            false => kept.take(state, None, cookie, check, now),
        },
    );
    taken.await.map_err(NetworkRefusal::Store)?.map_err(|why| {
        tracing::info!(reason = why, "network link answer refused");
        NetworkRefusal::BadState(why)
    })
}

/// Team `id` and its `[number_verification]`, while it has one.
fn verifying_team<'c>(core: &'c Core, id: &str) -> Option<(&'c Team, &'c NumberVerification)> {
    let team = core.config().team(id)?;
    Some((team, team.number_verification.as_ref()?))
}
