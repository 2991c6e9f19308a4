//! The console's sign-in at a team's workforce provider
//! (docs/console-sign-in.md): the hosted login's relying party
//! (`gateway::oidc`'s flow, code exchange and ID token checks) with the
//! console's redirect URI, then a server-side session, found by the keyed
//! hash of the id its cookie holds, that ends at sign-out, after
//! `session_idle` without a request, or `session_max` after sign-in. Each
//! sign-in, refused sign-in and end is an audit entry committed with it; an
//! end by time is recorded by the due queue's sweeper when it comes
//! ([`session_end_due`]), whether or not the cookie comes back.

use super::change::Change;
use super::oidc::{authorization_endpoint, proven_claims, ProviderAnswer};
use super::records::{Loaded, SessionTeam, StoredSession, StoredSignIn};
use super::work::Step;
use super::writes::{DueEntry, Writes};
use super::{doors, Core};
use crate::config::{ConsoleOidc, Team};
use crate::domain::audit::{Acting, Action, Actor, Draft, Outcome, Target, Via};
use crate::domain::console_session::{self as rules, Ended, Limits, Session};
use crate::error::Error;
use crate::oidc::flow::{self, Flow, Unanswerable, STATE_TTL};
use crate::oidc::provider::KeyUse;
use crate::oidc::OidcError;
use crate::store::keys;
use crate::time::Timestamp;

/// The purpose of the keyed hash under which a session is stored.
const SESSION_HASH: &str = "console-session";

/// The longest session id read from a cookie (ours are 43 characters).
const MAX_SESSION_ID: usize = 128;

/// A started sign-in: where the browser goes, its state (which names the
/// cookie) and the secret its cookie keeps.
#[derive(Debug)]
pub struct SignInStart {
    pub location: String,
    pub state: String,
    pub browser_secret: String,
}

/// Why a sign-in was refused; each is an HTML page of its own status and
/// (but [`SignInRefusal::NoConsole`]) a `console.sign_in_failed` entry.
#[derive(Debug)]
pub enum SignInRefusal {
    /// No such team, or it has no `[console.oidc]` (404).
    NoConsole,
    /// No state this gateway issued for this team and still open: none,
    /// unknown, answered, stale or another team's (400, recorded nowhere:
    /// a stranger cannot make the trail record anything).
    Stranger(OidcError),
    /// A state this gateway issued, presented by another browser (the
    /// first time), or an answer that names another provider (400).
    State(OidcError),
    /// The provider answered an error (400), or failed (502).
    Provider(OidcError),
    /// The ID token failed a check (401).
    Token(OidcError),
    /// The role claim has no listed value (403).
    NoRole,
    /// The store failed (503).
    Store(Error),
}

impl SignInRefusal {
    /// `detail.reason` of its `console.sign_in_failed`.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            SignInRefusal::NoConsole | SignInRefusal::Stranger(_) | SignInRefusal::Store(_) => None,
            SignInRefusal::State(_) => Some("state_mismatch"),
            SignInRefusal::Provider(_) => Some("provider_error"),
            SignInRefusal::Token(_) => Some("invalid_token"),
            SignInRefusal::NoRole => Some("no_role"),
        }
    }

    fn of(e: OidcError) -> Self {
        match e {
            OidcError::BadState(_) | OidcError::WrongIssuer => SignInRefusal::State(e),
            OidcError::Cancelled | OidcError::Provider(_) => SignInRefusal::Provider(e),
            OidcError::InvalidIdToken(_) | OidcError::Unverified(_) => SignInRefusal::Token(e),
        }
    }
}

impl From<Error> for SignInRefusal {
    fn from(e: Error) -> Self {
        SignInRefusal::Store(e)
    }
}

impl From<crate::store::StoreError> for SignInRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        SignInRefusal::Store(e.into())
    }
}

/// A person signed in: the id the session cookie holds, and how long it
/// may live.
#[derive(Debug)]
pub struct SignedIn {
    pub session_id: String,
    pub max_age: std::time::Duration,
}

/// How a provider's answer ended, and whether it used up the state it
/// named (only then is that state's cookie cleared).
#[derive(Debug)]
pub struct SignInFinish {
    pub outcome: Result<SignedIn, SignInRefusal>,
    pub answered: bool,
}

/// Where the workforce provider sends the browser back.
pub fn redirect_uri(core: &Core, team: &str) -> String {
    format!(
        "{}/console/{team}/callback",
        core.config().server.public_url
    )
}

fn console_of<'c>(core: &'c Core, team: &str) -> Option<(&'c Team, &'c ConsoleOidc)> {
    let team = core.config().team(team)?;
    Some((team, team.console.oidc.as_ref()?))
}

/// `GET /console/{team}/sign-in`: a fresh state, nonce and PKCE verifier,
/// kept [`STATE_TTL`]; the browser goes to the provider.
pub async fn start_sign_in(
    core: &Core,
    team: &str,
    now: Timestamp,
) -> Result<SignInStart, SignInRefusal> {
    let (team, console) = console_of(core, team).ok_or(SignInRefusal::NoConsole)?;
    let oidc = &console.provider;
    let endpoint = authorization_endpoint(core, oidc, now)
        .await
        .map_err(SignInRefusal::of)?;
    // Marked with the team's slot: its record is found from the state
    // alone, in that slot (docs/decisions/0631-every-code-a-browser-brings-carries-its-team-s-slot.md).
    let state = keys::marked(&team.keyspace, &flow::random_value());
    let (flow, browser_secret) = Flow::begin(&oidc.issuer, None, now);
    let started = StoredSignIn {
        team: team.id.clone(),
        flow,
        mismatch_recorded: false,
    };
    let key = keys::console_sign_in(&state, &flow::digest(&state));
    core.change(&team.keyspace, &[], now, |c| {
        c.create(&key, &started, Some(STATE_TTL))?;
        Ok(Step::Write(()))
    })
    .await?;
    let location = flow::authorization_url(
        &endpoint,
        oidc,
        &redirect_uri(core, &team.id),
        &state,
        &started.flow.nonce,
        &started.flow.verifier,
        &flow::Hints::default(),
    );
    Ok(SignInStart {
        location,
        state,
        browser_secret,
    })
}

/// `GET /console/{team}/callback`: the state (this team's, this
/// browser's, live; consumed), then the answer and its ID token as the
/// hosted login checks them, then the role; a new session on success.
/// `cookie`: the browser secret of the state's cookie.
pub async fn finish_sign_in(
    core: &Core,
    team: &str,
    answer: ProviderAnswer,
    cookie: Option<&str>,
    via: &Via,
    now: Timestamp,
) -> SignInFinish {
    let Some((team, console)) = console_of(core, team) else {
        return SignInFinish {
            outcome: Err(SignInRefusal::NoConsole),
            answered: false,
        };
    };
    let taken = take_state(core, &team.id, answer.state.as_deref(), cookie, now).await;
    let answered = taken.is_ok();
    let mut person = (None, None);
    let outcome = match taken {
        Ok(started) => {
            signed_in(
                core,
                team,
                console,
                &started,
                &answer,
                &mut person,
                via,
                now,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let outcome = match outcome {
        Err(refusal) => Err(recorded_refusal(core, team, refusal, person, via, now).await),
        ok => ok,
    };
    SignInFinish { outcome, answered }
}

/// A refused sign-in, recorded as `console.sign_in_failed` (a store that
/// fails then makes it a 503).
async fn recorded_refusal(
    core: &Core,
    team: &Team,
    refusal: SignInRefusal,
    (sub, name): (Option<String>, Option<String>),
    via: &Via,
    now: Timestamp,
) -> SignInRefusal {
    let Some(reason) = refusal.reason() else {
        return refusal;
    };
    tracing::info!(team = %team.id, reason, "console sign-in refused");
    let acting = Acting::new(Actor::signed_in(sub.as_deref(), name.as_deref()), via);
    let make = || {
        let mut d = Draft::success(Action::ConsoleSignInFailed, &acting, Target::default())
            .with("reason", reason);
        d.outcome = Outcome::Denied;
        vec![d]
    };
    match super::audit::append(core, &team.keyspace, make, now).await {
        Ok(_) => refusal,
        Err(e) => SignInRefusal::Store(e),
    }
}

/// The person the answer proves, with a role: a new session, committed
/// with its `console.signed_in`. `person` is filled as soon as the token
/// names one, for the entry of a refusal.
#[allow(clippy::too_many_arguments)]
async fn signed_in(
    core: &Core,
    team: &Team,
    console: &ConsoleOidc,
    started: &StoredSignIn,
    answer: &ProviderAnswer,
    person: &mut (Option<String>, Option<String>),
    via: &Via,
    now: Timestamp,
) -> Result<SignedIn, SignInRefusal> {
    let redirect = redirect_uri(core, &team.id);
    let (claims, proven) = proven_claims(
        core,
        &console.provider,
        &started.flow,
        answer,
        &redirect,
        KeyUse::Console,
        now,
    )
    .await
    .map_err(SignInRefusal::of)?;
    *person = (
        Some(proven.customer_id.clone()),
        rules::person_name(&claims),
    );
    let roles = &console.roles;
    let claim = claims.get(&roles.claim);
    let role = rules::role_of(claim, &roles.agent_values, &roles.admin_values)
        .ok_or(SignInRefusal::NoRole)?;
    let session = Session {
        team: team.keyspace.clone(),
        sub: proven.customer_id,
        name: person.1.clone(),
        role,
        signed_in_at: now,
        last_seen: now,
    };
    let session_id = keys::marked(&session.team, &flow::random_value());
    begin_session(core, console, &session, &session_id, via, now).await?;
    Ok(SignedIn {
        session_id,
        max_age: console.session_max,
    })
}

fn limits(console: &ConsoleOidc) -> Limits {
    Limits {
        idle: console.session_idle,
        max: console.session_max,
    }
}

fn session_hash(core: &Core, session_id: &str) -> String {
    core.pepper()
        .keyed_hash(SESSION_HASH, session_id.as_bytes())
}

/// Writes the new session: its team's pointer first (on its own: it
/// names only a team), then the session with its `console.signed_in`.
async fn begin_session(
    core: &Core,
    console: &ConsoleOidc,
    session: &Session,
    session_id: &str,
    via: &Via,
    now: Timestamp,
) -> Result<(), Error> {
    let hash = session_hash(core, session_id);
    let limits = limits(console);
    let pointer = keys::console_session_team(session_id, &hash);
    let team = SessionTeam {
        team: session.team.clone(),
    };
    let lives = limits.max + rules::KEPT_AFTER_END;
    core.change(&session.team, &[], now, |c| {
        c.create(&pointer, &team, Some(lives))?;
        Ok(Step::Write(()))
    })
    .await?;
    let key = keys::console_session(&session.team, &hash);
    let acting = Acting::new(session_actor(session), via);
    core.change(&session.team, &[], now, |c| {
        let stored = StoredSession::from(session);
        c.create(&key, &stored, Some(session.keep_for(now, limits)))?;
        end_due(c, &session.team, &hash, session, limits, now);
        c.audit(Draft::success(
            Action::ConsoleSignedIn,
            &acting,
            Target::default(),
        ));
        Ok(Step::Write(()))
    })
    .await
}

/// The due queue's kind of a session's end by time (`cse:<hash>`); stored,
/// so never renamed.
pub(in crate::gateway) const SESSION_END: &str = "cse";

/// The due entry of the session `hash` names, in `team`'s queue.
fn end_entry(team: &str, hash: &str) -> DueEntry {
    DueEntry::new(team, format!("{SESSION_END}:{hash}"))
}

/// Schedules in `c` the due entry of the session `hash` names: due when
/// it ends if no request comes ([`Session::ends_at`]); the queue lives
/// past the session's record.
fn end_due(
    c: &mut Change,
    team: &str,
    hash: &str,
    session: &Session,
    limits: Limits,
    now: Timestamp,
) {
    let ttl = session.keep_for(now, limits);
    c.schedule(&end_entry(team, hash), session.ends_at(limits), ttl);
}

/// How long after its last look a session of a team whose
/// `[console.oidc]` went is looked at again (its record's TTL ends it).
const LOOK_AGAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The due entry `cse:<hash>` came (src/gateway/expiry.rs): a session
/// that has ended by time is ended and recorded (`console.signed_out`,
/// `ended` `idle` or `max_age`), the entry's removal in the same commit,
/// whether or not its cookie ever comes back; one a request kept alive
/// goes back on the queue at its new end. A session gone already (signed
/// out, or ended by its cookie) is `NotFound`: the entry is dropped. With
/// the team's `[console.oidc]` gone, its limits are unknown: it is looked
/// at again in a minute, until the section comes back or the record goes.
/// Of several instances one takes the entry, and a request ending the
/// same session meanwhile conflicts with it: recorded once.
pub(in crate::gateway) async fn session_end_due(
    core: &Core,
    team: &Team,
    hash: &str,
    entry: &DueEntry,
    now: Timestamp,
) -> Result<(), Error> {
    let key = keys::console_session(&team.keyspace, hash);
    let console = team.console.oidc.as_ref();
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let at = c.read::<Session>(&key)?;
        let session = at
            .value
            .as_ref()
            .ok_or(Error::NotFound("console session"))?;
        let Some(limits) = console.map(limits) else {
            c.cancel(entry);
            let again = end_entry(&team.keyspace, hash);
            c.schedule(
                &again,
                now.plus(LOOK_AGAIN),
                LOOK_AGAIN + rules::KEPT_AFTER_END,
            );
            return Ok(Step::Write(()));
        };
        match session.ended(now, limits) {
            Some(ended) => end(c, &at, hash, ended, &Via::default()),
            None => {
                c.cancel(entry);
                end_due(c, &team.keyspace, hash, session, limits, now);
            }
        }
        Ok(Step::Write(()))
    })
    .await
}

/// The actor of what a session does: the person, without a key.
pub fn session_actor(session: &Session) -> Actor {
    Actor::signed_in(Some(&session.sub), session.name.as_deref())
}

/// The started sign-in `state` names, if it was started for `team`, is
/// this browser's and still live; consumed, so that it answers once. A
/// state this gateway did not issue for `team`, or no longer holds open, is
/// a [`SignInRefusal::Stranger`] and writes nothing; one presented by
/// another browser stays open for its own, and is recorded the first time
/// only (docs/console-sign-in.md#refused-sign-ins).
async fn take_state(
    core: &Core,
    team: &str,
    state: Option<&str>,
    cookie: Option<&str>,
    now: Timestamp,
) -> Result<StoredSignIn, SignInRefusal> {
    let stranger = |why| SignInRefusal::Stranger(OidcError::BadState(why));
    let state = state
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or(stranger("no state"))?;
    let key = keys::console_sign_in(state, &flow::digest(state));
    core.change(team, std::slice::from_ref(&key), now, |c| {
        let at = c.read::<StoredSignIn>(&key)?;
        let refused = |why| Ok(Step::Answer(Err(stranger(why))));
        let Some(mut started) = at.value.clone() else {
            return refused("unknown or answered");
        };
        match started
            .flow
            .unanswerable(&started.team, Some(team), cookie, now)
        {
            None => {}
            Some(Unanswerable::OtherBrowser) if started.mismatch_recorded => {
                return refused("not this browser's, recorded already")
            }
            Some(Unanswerable::OtherBrowser) => {
                started.mismatch_recorded = true;
                let left = STATE_TTL.saturating_sub(now.since(started.flow.started_at));
                c.put(&at, &started, Some(left))?;
                let mismatch = SignInRefusal::State(OidcError::BadState("not this browser's"));
                return Ok(Step::Write(Err(mismatch)));
            }
            Some(rung) => return refused(rung.reason()),
        }
        c.delete(&at);
        Ok(Step::Write(Ok(started)))
    })
    .await?
}

/// Where a session's records are: its hash, its team's limits and key,
/// and the pointer that names its team, with the version read.
struct Located {
    team: String,
    hash: String,
    limits: Limits,
    key: String,
    pointer: String,
    pointer_version: u64,
}

/// The session the cookie's id names, as far as its team: none is 401.
async fn locate(core: &Core, session_id: &str) -> Result<Located, Error> {
    if session_id.is_empty() || session_id.len() > MAX_SESSION_ID {
        return Err(Error::Unauthorized);
    }
    let hash = session_hash(core, session_id);
    let pointer = keys::console_session_team(session_id, &hash);
    let loaded = doors::read::<SessionTeam>(core, &pointer).await?;
    let pointer_version = loaded.version;
    let team = loaded.value.ok_or(Error::Unauthorized)?.team;
    // A team whose [console.oidc] went since signs no one in any more, nor
    // does one deleted since, whose id may have been written again.
    let team_in = core.config().team_in(&team);
    let console = team_in.and_then(|t| t.console.oidc.as_ref());
    let console = console.ok_or(Error::Unauthorized)?;
    Ok(Located {
        key: keys::console_session(&team, &hash),
        team,
        limits: limits(console),
        hash,
        pointer,
        pointer_version,
    })
}

/// The live session `session_id` names, its idle time restarted by this
/// request (written only when [`Session::renewal_due`]: most requests
/// only read it); 401 `unauthorized` when there is none, or it has ended
/// (the end then recorded as `console.signed_out`, once). Its due entry
/// stays where it is: the sweeper reads the `last_seen` written here.
pub async fn session_of(
    core: &Core,
    session_id: &str,
    via: &Via,
    now: Timestamp,
) -> Result<Session, Error> {
    let at = locate(core, session_id).await?;
    core.change(&at.team, std::slice::from_ref(&at.key), now, |c| {
        let read = c.read::<Session>(&at.key)?;
        let Some(mut session) = read.value.clone() else {
            return Ok(Step::Answer(Err(Error::Unauthorized)));
        };
        if let Some(ended) = session.ended(now, at.limits) {
            end(c, &read, &at.hash, ended, via);
            return Ok(Step::Write(Err(Error::Unauthorized)));
        }
        if !session.renewal_due(now, at.limits) {
            return Ok(Step::Answer(Ok(session)));
        }
        session.last_seen = now;
        let stored = StoredSession::from(&session);
        c.put(&read, &stored, Some(session.keep_for(now, at.limits)))?;
        Ok(Step::Write(Ok(session)))
    })
    .await?
}

/// Whether the session `session_id` names lives at `now`, read only: its
/// idle time does not restart (an open event stream is no request). A
/// store that cannot say is no.
pub async fn session_lives(core: &Core, session_id: &str, now: Timestamp) -> bool {
    let Ok(at) = locate(core, session_id).await else {
        return false;
    };
    match read_session(core, &at.key).await {
        Ok((_, Some(session))) => session.ended(now, at.limits).is_none(),
        _ => false,
    }
}

/// `POST /console/sign-out`: the session ends now (`ended` `logout`);
/// one that ended by time is 401, its end recorded as such. A session
/// another request ends meanwhile is left to it.
pub async fn sign_out(
    core: &Core,
    session_id: &str,
    via: &Via,
    now: Timestamp,
) -> Result<(), Error> {
    let at = locate(core, session_id).await?;
    let mut first = true;
    let ended = core
        .change(&at.team, std::slice::from_ref(&at.key), now, |c| {
            let read = c.read::<Session>(&at.key)?;
            let Some(session) = &read.value else {
                // Gone on a second read: another request ended it.
                return Ok(Step::Answer(first.then_some(Err(Error::Unauthorized))));
            };
            first = false;
            let ended = session.ended(now, at.limits);
            end(c, &read, &at.hash, ended.unwrap_or(Ended::Logout), via);
            Ok(Step::Write(Some(Ok(ended))))
        })
        .await?;
    let ended = ended.unwrap_or(Ok(None))?;
    // Its pointer names only a team; it goes too (else at its TTL). It
    // never changes once written, so a conflict means it went already.
    let pointer = at.pointer.clone();
    let _ = core
        .change(&at.team, std::slice::from_ref(&pointer), now, |c| {
            let read = c.read::<SessionTeam>(&pointer)?;
            match read.version == at.pointer_version && read.value.is_some() {
                true => c.delete(&read),
                false => return Ok(Step::Answer(())),
            }
            Ok(Step::Write(()))
        })
        .await;
    match ended {
        Some(_) => Err(Error::Unauthorized),
        None => Ok(()),
    }
}

async fn read_session(core: &Core, key: &str) -> crate::error::Result<(u64, Option<Session>)> {
    let loaded = doors::read::<Session>(core, key).await?;
    Ok((loaded.version, loaded.value))
}

/// Ends the session `at` holds (`hash`: of its id) in `c`: its record
/// deleted (as read), its `console.signed_out` (`ended`) and the removal
/// of its due entry, in one commit.
fn end(c: &mut Change, at: &Loaded<Session>, hash: &str, ended: Ended, via: &Via) {
    let Some(session) = &at.value else {
        return;
    };
    let acting = Acting::new(session_actor(session), via);
    c.delete(at);
    c.cancel(&end_entry(&session.team, hash));
    c.audit(
        Draft::success(Action::ConsoleSignedOut, &acting, Target::default())
            .with("ended", ended.as_str()),
    );
}
