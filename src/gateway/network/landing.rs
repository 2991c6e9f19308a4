//! A provider asked before the browser goes ([`Back::Landing`], Vonage's
//! `silent_auth`; docs/network-authentication.md#providers): the confirm
//! button starts one check for the challenge and sends the browser to
//! it, and the browser comes back to `/n/landing`, whose page posts what
//! the provider put in the URL's fragment. One check runs for a
//! challenge at a time: the button claims it in the link's record before
//! the provider is asked, so that a second press (this browser's or
//! another's) joins the running check instead of starting one more, on
//! either store (docs/decisions/0470-one-vonage-verification-per-challenge.md).
use std::time::Duration;

use super::{
    apply, finish_started, keep_state, redirect_uri, started_of, take_state, waited, NetworkFinish,
    NetworkLinkTarget, NetworkStart, OpenLink, StateRead,
};
use crate::domain::network_auth::{NetworkResult, Source};
use crate::error::Result;
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::network_verification::{self as verification, Back, Begin, Begun, NetworkError};
use crate::oidc::flow::{digest, Flow, ProviderAnswer, STATE_TTL};
use crate::oidc::states::{self, Check, LinkStates};
use crate::store::keys;
use crate::time::Timestamp;

// The cookie that carries a landing's state: one, of a fixed name
// (`Path=/n/`, `HttpOnly`, `SameSite=Lax`), whatever the request, so
// that a browser holds one landing's state at a time
// (docs/decisions/0471-the-landing-s-cookie.md).
use crate::domain::browser::LANDING_COOKIE;

/// How long a claim to start a check holds: longer than any start may
/// take (the provider's 5 s, and the store's writes around it). A claim
/// older than this is of an instance that died meanwhile.
const CLAIM: Duration = Duration::from_secs(15);

/// How long a press waits for another press's start to answer before it
/// answers the retry page.
const CLAIM_WAIT: Duration = Duration::from_secs(7);

/// What the landing page posts: the provider's request and its code, or
/// the provider's error description.
#[derive(Debug)]
pub struct Landing {
    pub request_id: String,
    pub code: Option<String>,
    pub error_description: Option<String>,
}

/// What the button found in the link's record.
enum Claim {
    /// A check runs: this press joins it.
    Joined(Check),
    /// None ran: this press claimed the start.
    Claimed,
    /// Another press is starting one.
    Busy,
}

/// The confirm button of a [`Back::Landing`] provider: this press joins
/// the check running for the challenge, or claims and starts one. Its
/// state is kept with the check and travels in the [`LANDING_COOKIE`]
/// (the landing brings only the request's id).
pub(super) async fn start(
    core: &Core,
    open: &OpenLink<'_>,
    now: Timestamp,
) -> Result<NetworkLinkTarget> {
    let state = states::new_state(&super::link_tag(open));
    let flow = flow_of(open, &state, now);
    let waiting = tokio::time::Instant::now() + CLAIM_WAIT;
    loop {
        match claim(core, open, &state, &flow, now).await? {
            Claim::Joined(check) => return Ok(to_check(&state, &check)),
            Claim::Claimed => return begin_check(core, open, &state, now).await,
            Claim::Busy if tokio::time::Instant::now() < waiting => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Claim::Busy => return Ok(NetworkLinkTarget::Failed(open.confirm.speaks.clone())),
        }
    }
}

/// The browser sent to the running `check`, its cookie holding `state`.
fn to_check(state: &str, check: &Check) -> NetworkLinkTarget {
    NetworkLinkTarget::Operator(NetworkStart {
        location: check.url.clone(),
        cookie: LANDING_COOKIE.to_string(),
        secret: state.to_string(),
    })
}

/// Joins the check running for the link, or claims its start, keeping
/// `state` with it; changes nothing while another press starts one.
async fn claim(
    core: &Core,
    open: &OpenLink<'_>,
    state: &str,
    flow: &Flow,
    now: Timestamp,
) -> Result<Claim> {
    let started = started_of(open, flow.clone());
    let key = keys::network_states(&super::link_tag(open));
    core.change(&open.team.keyspace, std::slice::from_ref(&key), now, |c| {
        let read = c.read::<LinkStates>(&key)?;
        let mut kept = read.value.clone().unwrap_or_default();
        let (check, claim) = match kept.running(now) {
            Some(running) if running.starting() => return Ok(Step::Answer(Claim::Busy)),
            Some(running) => (running.clone(), Claim::Joined(running.clone())),
            None => (Check::claim(now.plus(CLAIM)), Claim::Claimed),
        };
        kept.add_checked(state, started.clone(), Some(check), now);
        c.put(&read, &kept, Some(STATE_TTL))?;
        Ok(Step::Write(claim))
    })
    .await
}

/// Asks the provider to start the check `state` claimed: the browser
/// goes to it; a failure gives the claim back and is the challenge's
/// answer (an error: the retry page, a ladder moves on).
async fn begin_check(
    core: &Core,
    open: &OpenLink<'_>,
    state: &str,
    now: Timestamp,
) -> Result<NetworkLinkTarget> {
    let landing = redirect_uri(core, Back::Landing);
    let number = open.number.as_deref().unwrap_or_default();
    let ask = async {
        if number.is_empty() {
            return Err(NetworkError("no number on file".into()));
        }
        let q = Begin {
            http: verification::client(open.nv.reach)?,
            redirect_uri: &landing,
            state,
            code_challenge: "",
            number,
            left: open.confirm.left,
            now,
        };
        match open.nv.provider.begin(&q).await? {
            Begun::Check { id, url, runs } => Ok(Check {
                id,
                url,
                until: now.plus(runs),
            }),
            Begun::Redirect(_) => Err(NetworkError("a landing provider began no check".into())),
        }
    };
    let begun = waited(core, open.team, ask, now).await;
    settle(core, open, state, begun.as_ref().ok().cloned(), now).await?;
    let check = match begun {
        Ok(check) => return Ok(to_check(state, &check)),
        Err(_) => NetworkResult::Error,
    };
    let ids = (open.link.0, open.link.1);
    let error = (check, Source::Operator);
    Ok(match apply(core, open.team, ids, error, now).await {
        Ok(_) => NetworkLinkTarget::Failed(open.confirm.speaks.clone()),
        Err(super::NetworkRefusal::Store(e)) => return Err(e),
        Err(_) => NetworkLinkTarget::Gone(false, Some(open.confirm.speaks.clone())),
    })
}

/// The claim of `state` settled: the check the provider started kept in
/// its place, or (`None`) the claim given back.
async fn settle(
    core: &Core,
    open: &OpenLink<'_>,
    state: &str,
    check: Option<Check>,
    now: Timestamp,
) -> Result<()> {
    let key = keys::network_states(&super::link_tag(open));
    let settled = core.change(&open.team.keyspace, std::slice::from_ref(&key), now, |c| {
        let read = c.read::<LinkStates>(&key)?;
        let mut kept = read.value.clone().unwrap_or_default();
        // Dropped meanwhile (five newer presses): nothing to settle.
        let Some(entry) = kept.entry_mut(state) else {
            return Ok(Step::Answer(false));
        };
        match &check {
            Some(check) => entry.check = Some(check.clone()),
            None => kept.remove(state),
        }
        match kept.entries.is_empty() {
            true => c.delete(&read),
            false => _ = c.put(&read, &kept, Some(STATE_TTL))?,
        }
        Ok(Step::Write(true))
    });
    match (settled.await?, check) {
        // Kept again, so that the browser's landing finds it.
        (false, Some(check)) => {
            keep_state(
                core,
                open,
                state,
                flow_of(open, state, now),
                Some(check),
                now,
            )
            .await
        }
        _ => Ok(()),
    }
}

/// The flow of a landing check begun `now` under `state`: the state is
/// the browser's secret (its cookie is all that names it).
fn flow_of(open: &OpenLink<'_>, state: &str, now: Timestamp) -> Flow {
    let (mut flow, _) = Flow::begin(open.nv.provider.operator().as_str(), None, now);
    flow.browser = digest(state);
    flow
}

/// `POST /n/landing`: the check the browser's cookie names (`state`, the
/// cookie of the landing's request), if it is that request's, live and
/// unanswered (consumed here, with every press that joined it); then the
/// provider asked about the code (never taken from the browser as it is)
/// or the error read, and the result applied as the callback's is.
pub async fn finish_landing(
    core: &Core,
    read: StateRead,
    landing: &Landing,
    state: Option<&str>,
    now: Timestamp,
) -> NetworkFinish {
    let check = Some(landing.request_id.as_str());
    let alone = landing.code.is_none();
    let started = take_state(core, read, (state, state), (check, alone), now).await;
    let answer = ProviderAnswer {
        code: landing.code.clone(),
        state: state.map(str::to_string),
        error: landing.error_description.clone(),
        iss: None,
    };
    finish_started(core, started, &answer, check, now).await
}
