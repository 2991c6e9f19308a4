//! Silent network authentication's browser side
//! (docs/network-authentication.md): `GET /n/{code}` shows the page that
//! asks the customer to confirm they are chatting with the team now,
//! `POST /n/{code}` (its button) sends the browser to the mobile operator
//! with a fresh state, and `GET /n/callback` takes the operator's answer,
//! asks the Number Verification API about the number on file and applies
//! what it says to the challenge. Opening the link uses nothing up (link
//! previews); every refusal before the operator's answer changes nothing.
use std::time::Duration;

use uuid::Uuid;

use super::challenges::network::conclude_network;
use super::login::Speaks;
use super::records::{Loaded, StoredNetworkLink};
use super::work::Step;
use super::{change, Core};
use crate::config::{NumberVerification, Team};
use crate::domain::challenge::AdvanceReason;
use crate::domain::interaction::InteractionRecord;
use crate::domain::network_auth::{self, is_open_network, Ending, NetworkResult};
use crate::domain::otp::OtpCode;
use crate::error::{Error, Result};
use crate::network_verification::{self as verification, Ask, Begin, NetworkError};
use crate::oidc::flow::{s256, Flow, ProviderAnswer, Started, STATE_TTL};
use crate::oidc::states::{self, LinkStates};
use crate::store::keys;
use crate::time::Timestamp;

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
    /// The challenge was used (`true`: it succeeded, or its verified
    /// answer waits for its code), or expired, was replaced or failed:
    /// its 410 page, in the interaction's language when known.
    Gone(bool, Option<Speaks>),
}

/// What the confirm page names: the team (its `display_name`, else its
/// id) and the conversation's channel in words, in the interaction's
/// language; where its button may lead (the operator's authorization
/// endpoint) and how long the link has left.
#[derive(Debug)]
pub struct NetworkConfirm {
    pub speaks: Speaks,
    pub team_name: String,
    pub channel_words: &'static str,
    pub operator: String,
    pub left: Duration,
    /// The page's form token, for the browser the request named.
    pub form_token: String,
}

/// A started operator check: where the browser goes, its state (which
/// names the cookie) and the secret its cookie keeps.
#[derive(Debug)]
pub struct NetworkStart {
    pub location: String,
    pub state: String,
    pub browser_secret: String,
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

/// Where the operator sends the browser back.
fn redirect_uri(core: &Core) -> String {
    format!("{}/n/callback", core.config().server.public_url)
}

/// The link `code` names, as it stands: its team, `[number_verification]`,
/// the link and its interaction, while its challenge is open; else what
/// the link answers (`Gone`). 404 for a code never issued (or long gone).
async fn open_link<'c>(
    core: &'c Core,
    code: &str,
    now: Timestamp,
) -> Result<std::result::Result<OpenLink<'c>, NetworkLinkTarget>> {
    let raw = core.get(&[keys::network_link(code)]).await?.pop().flatten();
    let raw = raw.ok_or(Error::NotFound("no such link"))?;
    let gone = |speaks| Ok(Err(NetworkLinkTarget::Gone(false, speaks)));
    let Ok(link) = serde_json::from_str::<StoredNetworkLink>(&raw.value) else {
        return gone(None);
    };
    let Some((team, nv)) = verifying_team(core, &link.t) else {
        return gone(None);
    };
    let pair = match core.load_pair(team, link.i, now).await {
        Ok(pair) => pair,
        Err(Error::NotFound(_)) => return gone(None),
        Err(e) => return Err(e),
    };
    let rec = pair.rec()?;
    if !is_open_network(rec, link.c, now) {
        let used = network_auth::link_used(rec, link.c, now);
        return Ok(Err(NetworkLinkTarget::Gone(used, Some(speaks(team, rec)))));
    }
    let left = rec
        .open_challenge(now)
        .map_or(Duration::ZERO, |c| c.expires_at.since(now));
    let words = core.config().channels.get(&rec.channel);
    let confirm = NetworkConfirm {
        speaks: speaks(team, rec),
        team_name: team.display_name.clone().unwrap_or_else(|| team.id.clone()),
        channel_words: words.map_or("chat", |c| c.kind.in_words()),
        operator: nv.provider.operator().to_string(),
        left,
        form_token: String::new(),
    };
    Ok(Ok(OpenLink {
        team,
        nv,
        link,
        confirm,
    }))
}

/// An open link, read by [`open_link`].
struct OpenLink<'c> {
    team: &'c Team,
    nv: &'c NumberVerification,
    link: StoredNetworkLink,
    confirm: NetworkConfirm,
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
            form_token: network_auth::form_token(core.pepper(), code, browser),
            ..open.confirm
        }),
        Err(answer) => answer,
    })
}

/// `POST /n/{code}`, the confirm page's button: for the open network
/// challenge the code names, and only with the form token of the
/// browser whose cookie keeps `browser`, a new state and PKCE verifier, kept [`STATE_TTL`]
/// among the link's [`states::MAX_PER_LINK`] newest, tied to this browser
/// by its cookie. A link that is not open answers as its page does.
pub async fn confirm_network_link(
    core: &Core,
    code: &str,
    (browser, token): (Option<&str>, Option<&str>),
    now: Timestamp,
) -> Result<NetworkLinkTarget> {
    let OpenLink {
        team,
        nv,
        link,
        confirm,
    } = match open_link(core, code, now).await? {
        Ok(open) => open,
        Err(answer) => return Ok(answer),
    };
    if !network_auth::form_token_holds(core.pepper(), code, browser, token) {
        tracing::info!(team = %team.id, "a network link's confirmation without its browser's form token");
        return Ok(NetworkLinkTarget::Refused(confirm.speaks));
    }
    let state = states::new_state(link.c);
    let (flow, browser_secret) = Flow::begin(nv.provider.operator().as_str(), None, now);
    let location = nv.provider.begin(&Begin {
        redirect_uri: &redirect_uri(core),
        state: &state,
        code_challenge: &s256(&flow.verifier),
    });
    let started = Started {
        team: team.id.clone(),
        interaction_id: link.i,
        link_id: link.c,
        flow,
    };
    let key = keys::network_states(&states::link_tag(link.c));
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let read = c.read::<LinkStates>(&key)?;
        let mut kept = read.value.clone().unwrap_or_default();
        kept.add(&state, started.clone(), now);
        c.put(&read, &kept, Some(STATE_TTL))?;
        Ok(Step::Write(()))
    })
    .await?;
    Ok(NetworkLinkTarget::Operator(NetworkStart {
        location,
        state,
        browser_secret,
    }))
}

/// The team of the check `state` names, read without using it up (the
/// caller takes a place at that team's gate first); `None` when no check
/// is kept under it.
pub async fn network_state_team(core: &Core, state: Option<&str>) -> Option<String> {
    let state = state.filter(|s| s.len() <= 256)?;
    let key = keys::network_states(states::tag_of(state)?);
    let (_, kept) = link_states(core, &key).await.ok()?;
    kept.find(state).map(|s| s.team.clone())
}

/// `GET /n/callback`: the state (this browser's, live, unanswered;
/// consumed here), then the operator's answer: an `error` is a phone off
/// the mobile network; else the code is exchanged and the number on file
/// verified, within [`OPERATOR_DEADLINE`]. The result is applied to the
/// challenge, counted, and a failure of the operator logged once.
/// `cookie`: the browser secret of the state's cookie.
pub async fn finish_network(
    core: &Core,
    answer: ProviderAnswer,
    cookie: Option<&str>,
    now: Timestamp,
) -> NetworkFinish {
    let started = match take_state(core, answer.state.as_deref(), cookie, now).await {
        Ok(started) => started,
        Err(refusal) => {
            return NetworkFinish {
                outcome: Err(refusal),
                code: None,
                answered: false,
                speaks: None,
            }
        }
    };
    let (outcome, code, speaks) = match answer_started(core, &started, &answer, now).await {
        Ok((result, code, speaks)) => (Ok(result), code, Some(speaks)),
        Err((refusal, speaks)) => (Err(refusal), None, speaks),
    };
    NetworkFinish {
        outcome,
        code,
        answered: true,
        speaks,
    }
}

type Refused = (NetworkRefusal, Option<Speaks>);

/// The operator's answer to check `started`, applied to its challenge.
async fn answer_started(
    core: &Core,
    started: &Started,
    answer: &ProviderAnswer,
    now: Timestamp,
) -> std::result::Result<(NetworkResult, Option<OtpCode>, Speaks), Refused> {
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
    let speaks = speaks(team, rec);
    if !is_open_network(rec, cid, now) {
        let used = network_auth::link_used(rec, cid, now);
        return Err((NetworkRefusal::Gone(used), Some(speaks)));
    }
    let result = match (&answer.error, rec.contact.phone.as_deref()) {
        (Some(_), _) => NetworkResult::NotOnMobileNetwork,
        // The number on file was removed since the link went out.
        (None, None) => NetworkResult::Error,
        (None, Some(number)) => {
            // The operator reads `+E.164` (a number kept with a trunk
            // prefix, `+44 07…`, is written without it).
            let number = crate::domain::phone::e164(number).unwrap_or_else(|| number.to_string());
            asked(core, team, nv, &started.flow, answer, &number, now).await
        }
    };
    match conclude_network(core, team, id, cid, result, now).await {
        Ok((Ending::Gone, _)) => Err((NetworkRefusal::Gone(false), Some(speaks))),
        Ok((ending, code)) => {
            if let Ending::MoveOn(reason) = ending {
                move_on(core, team, (id, cid), reason, now).await;
            }
            metrics::counter!("chatgate_network_verifications_total", "result" => result.as_str())
                .increment(1);
            Ok((result, code, speaks))
        }
        Err(e) => Err((NetworkRefusal::Store(e), Some(speaks))),
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
/// browser brought back, within [`OPERATOR_DEADLINE`]; any failure is
/// [`NetworkResult::Error`], logged once while the operator keeps failing.
async fn asked(
    core: &Core,
    team: &Team,
    nv: &NumberVerification,
    flow: &Flow,
    answer: &ProviderAnswer,
    number: &str,
    now: Timestamp,
) -> NetworkResult {
    let ask = async {
        let code = answer
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 2048)
            .ok_or(NetworkError("operator: no usable code".into()))?;
        let q = Ask {
            http: verification::client(),
            code,
            redirect_uri: &redirect_uri(core),
            verifier: &flow.verifier,
            number,
        };
        nv.provider.answer(&q).await
    };
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
    answered.unwrap_or(NetworkResult::Error)
}

/// The check the state names, if it is kept, live and this browser's;
/// consumed, so that it answers once. Nothing is consumed otherwise: a
/// state from another browser stays good for its own.
async fn take_state(
    core: &Core,
    state: Option<&str>,
    cookie: Option<&str>,
    now: Timestamp,
) -> std::result::Result<Started, NetworkRefusal> {
    let state = state
        .filter(|s| s.len() <= 256)
        .ok_or(NetworkRefusal::BadState("no state"))?;
    let tag = states::tag_of(state).ok_or(NetworkRefusal::BadState("unknown"))?;
    let key = keys::network_states(tag);
    // The state is all a browser brings: its team is known once it is read.
    let taken = core
        .change(change::NO_TEAM, std::slice::from_ref(&key), now, |c| {
            let read = c.read::<LinkStates>(&key)?;
            let mut kept = read.value.clone().unwrap_or_default();
            let verdict = match kept.find(state) {
                None => Err("unknown, dropped or answered"),
                Some(s) if !s.flow.live(now) => Err("older than 10 minutes"),
                // Checked before it is consumed: another browser cannot spend it.
                Some(s) if !s.flow.same_browser(cookie) => Err("not this browser's"),
                Some(s) => Ok(s.clone()),
            };
            let Ok(started) = verdict else {
                return Ok(Step::Answer(verdict));
            };
            kept.remove(state);
            match kept.entries.is_empty() {
                true => c.delete(&read),
                false => _ = c.put(&read, &kept, Some(STATE_TTL))?,
            }
            Ok(Step::Write(Ok(started)))
        })
        .await
        .map_err(NetworkRefusal::Store)?;
    taken.map_err(|why| {
        tracing::info!(reason = why, "network link answer refused");
        NetworkRefusal::BadState(why)
    })
}

/// Team `id` and its `[number_verification]`, while it has one.
fn verifying_team<'c>(core: &'c Core, id: &str) -> Option<(&'c Team, &'c NumberVerification)> {
    let team = core.config().team(id)?;
    Some((team, team.number_verification.as_ref()?))
}

/// The language `rec`'s pages speak.
pub(super) fn speaks(team: &Team, rec: &InteractionRecord) -> Speaks {
    Speaks {
        team: team.id.clone(),
        channel: rec.channel.clone(),
        locale: rec
            .locale(&team.settings_for(&rec.channel).locale)
            .to_string(),
    }
}

/// The started checks kept under `key`, with the version read.
async fn link_states(core: &Core, key: &str) -> Result<(u64, LinkStates)> {
    let raw = core.get(&[key.to_string()]).await?.pop().flatten();
    let loaded = Loaded::<LinkStates>::parse(key.to_string(), raw)?;
    Ok((loaded.version, loaded.value.unwrap_or_default()))
}
