//! Who is calling, and whether they may: the `Authorization: Bearer <api
//! key>` of a bot, agent or admin, or the cookie of a person signed in to
//! the console (docs/console-sign-in.md), and the extractors that
//! authorise a handler by its role (docs/api.md#callers-and-roles). Keys
//! are compared by SHA-256 in constant time, against every configured
//! key, so the answer takes the same time for any wrong key.
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::Method;
use secrecy::SecretString;

use super::AppState;
use crate::config::{Config, KeyHolders, OperatorRole, Role, Team};
use crate::domain::audit::{self, Actor, Via};
use crate::domain::console_session::ConsoleRole;
use crate::domain::secrets::ApiKeyHash;
use crate::error::Error;
use crate::gateway::{ActorRefusal, Person};

/// The header by which a portal names the person it acts for
/// (docs/api.md#a-person-behind-every-agent-action).
pub const ACTOR_HEADER: &str = "chatgate-actor";

/// The header a change authenticated by the console's session cookie
/// must carry (`1`): a cross-site form cannot set it.
pub const CONSOLE_HEADER: &str = "chatgate-console";

// The console's session cookie: `__Host-` prefixed on https (no
// `Domain`, `Path=/`, `Secure`, which browsers then enforce).
use crate::domain::browser::{SESSION_COOKIE_HTTP, SESSION_COOKIE_HTTPS};

/// The session cookie's name for a gateway at `public_url`.
pub fn session_cookie_name(public_url: &str) -> &'static str {
    if public_url.starts_with("https://") {
        SESSION_COOKIE_HTTPS
    } else {
        SESSION_COOKIE_HTTP
    }
}

/// The session id the request's cookie holds, if any.
pub fn session_cookie(parts_headers: &axum::http::HeaderMap, state: &AppState) -> Option<String> {
    let name = session_cookie_name(&state.gateway.config().server.public_url);
    super::pages::cookie_value(parts_headers, name)
}

/// Whether the request carries `Chatgate-Console: 1`.
pub fn has_console_header(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(CONSOLE_HEADER)
        .is_some_and(|v| v.as_bytes() == b"1")
}

/// The longest `Chatgate-Actor` token read.
const MAX_ACTOR_TOKEN: usize = 16 * 1024;

/// The token of a `Chatgate-Actor` header: `None` for one that is not
/// text, is empty or is over [`MAX_ACTOR_TOKEN`].
pub(super) fn actor_token(header: &axum::http::HeaderValue) -> Option<&str> {
    let token = header.to_str().ok()?.trim();
    (!token.is_empty() && token.len() <= MAX_ACTOR_TOKEN).then_some(token)
}

/// A refused `Chatgate-Actor`: 401 `invalid_token`, the reason kept for
/// the request's `access.denied`.
pub(super) fn actor_refused(parts: &Parts, reason: ActorRefusal) -> Error {
    if let Some(slot) = parts.extensions.get::<super::denials::CallerSlot>() {
        slot.actor_refused(reason.as_str());
    }
    Error::InvalidToken("the Chatgate-Actor token was refused")
}

/// An operator key (docs/operator-api.md#roles), as configured.
struct OperatorEntry {
    hash: ApiKeyHash,
    key_id: Arc<str>,
    role: OperatorRole,
}

/// Every configured API key, by hash: the teams' (the index of the
/// configuration, shared) and the operators'.
pub struct ApiKeys(KeyHolders, Vec<OperatorEntry>);

/// The key a request presented, as configured.
struct Key {
    team: Arc<str>,
    key_id: Arc<str>,
    role: Role,
}

impl ApiKeys {
    pub fn from_config(config: &Config) -> Self {
        let entries = config.key_holders.clone();
        let operators = config
            .operator
            .iter()
            .flat_map(|o| &o.api_keys)
            .map(|k| OperatorEntry {
                hash: k.sha256,
                key_id: k.id.as_str().into(),
                role: k.role,
            })
            .collect();
        ApiKeys(entries, operators)
    }

    /// The operator key `presented` is, by its id and role: every operator
    /// key is compared.
    pub(super) fn find_operator(&self, presented: &str) -> Option<(Arc<str>, OperatorRole)> {
        let hash = ApiKeyHash::of_key(presented);
        let mut found = None;
        for e in &self.1 {
            if e.hash.matches(&hash) && found.is_none() {
                found = Some((e.key_id.clone(), e.role));
            }
        }
        found
    }

    /// Whether `presented` is a team's key.
    pub(super) fn is_team_key(&self, presented: &str) -> bool {
        self.find(presented).is_some()
    }

    fn find(&self, presented: &str) -> Option<Key> {
        // One lookup by the digest of the key presented, the entry found
        // compared in constant time
        // (docs/decisions/0490-api-keys-found-by-their-digest.md).
        let hash = ApiKeyHash::of_key(presented);
        (self.0.holder(&hash)).map(|h| Key {
            team: Arc::clone(&h.team),
            key_id: Arc::clone(&h.key_id),
            role: h.role,
        })
    }
}

/// An authenticated caller, with its team as configured in the core in
/// force (its names shared with the configured key's: a request copies
/// no string). Endpoints a bot, an agent and an admin may all call take
/// it (an auditor key is 403 there: it reads the audit trail and nothing
/// else); the others take [`Bot`], [`Agent`], [`Admin`] or [`Auditor`].
#[derive(Debug, Clone)]
pub struct Caller {
    team: Arc<Team>,
    /// The team's id, as the key names it.
    pub team_id: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
    /// The person its valid `Chatgate-Actor` named, or the person signed
    /// in to the console.
    pub person: Option<Person>,
    /// The console session whose cookie authenticated it, not a key: its
    /// id, for what must end with it (an event stream).
    pub session: Option<SecretString>,
}

impl Caller {
    /// The caller's team.
    pub fn team(&self) -> &Team {
        &self.team
    }

    /// Authenticated by a console session's cookie, not a key.
    pub fn by_session(&self) -> bool {
        self.session.is_some()
    }

    /// The caller as an audit entry's actor, asking through `via`.
    pub fn acting(&self, via: &Via) -> audit::Acting {
        let actor = match (&self.person, self.by_session()) {
            (Some(p), true) => Actor::signed_in(Some(&p.sub), p.name.as_deref()),
            (Some(p), false) => Actor::person(&p.sub, p.name.as_deref(), &self.key_id),
            (None, _) => Actor::api_key(&self.key_id),
        };
        audit::Acting::new(actor, via)
    }

    /// Ok unless the team requires a person for an action that changes
    /// something, the key is an agent's or an admin's (a bot's is not
    /// affected) and none was named: 403 `person_required`. Asked by
    /// [`Acting`] alone.
    fn person_if_required(&self) -> Result<(), Error> {
        let required = self.team.console.require_person && self.role.acts_as_agent();
        if required && self.person.is_none() {
            return Err(Error::PersonRequired);
        }
        Ok(())
    }

    /// The person `parts`' `Chatgate-Actor` names, checked by the team's
    /// workforce provider: none without the header; 422 for a key that
    /// acts for no agent; 401 `invalid_token` for a token that fails a
    /// check (the check kept for its `access.denied`).
    async fn named_person(&mut self, parts: &Parts, state: &AppState) -> Result<(), Error> {
        let Some(header) = parts.headers.get(ACTOR_HEADER) else {
            return Ok(());
        };
        if !self.role.acts_as_agent() {
            return Err(Error::Unprocessable(
                "Chatgate-Actor is for agent and admin API keys".into(),
            ));
        }
        let refused = |reason| actor_refused(parts, reason);
        let token = actor_token(header).ok_or_else(|| refused(ActorRefusal::Alg))?;
        let now = state.clock.now();
        let person = crate::gateway::actor_person(&state.gateway, &self.team, token, now)
            .await
            .map_err(refused)?;
        self.person = Some(person);
        Ok(())
    }

    /// The caller whose key `parts` presents: 401 without one this
    /// gateway knows, before anything else is looked at.
    fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, Error> {
        let presented = bearer_key(parts)?;
        let Some(key) = state.api_keys.find(presented) else {
            // An operator key manages teams and channels, and calls
            // nothing else (docs/operator-api.md#roles).
            if state.api_keys.find_operator(presented).is_some() {
                return Err(Error::Forbidden(OPERATOR_ELSEWHERE));
            }
            return Err(Error::Unauthorized);
        };
        // A caller with a key may continue its own trace.
        if let Some(remote) = parts.extensions.get::<crate::spans::RemoteParent>() {
            remote.adopt();
        }
        if let Some(slot) = parts.extensions.get::<super::TeamSlot>() {
            slot.set(&key.team);
        }
        if let Some(slot) = parts.extensions.get::<super::denials::CallerSlot>() {
            slot.set(&key.team, Actor::api_key(&key.key_id));
        }
        Ok(Caller {
            team: Arc::clone(state.gateway.team(&key.team)?),
            team_id: key.team,
            key_id: key.key_id,
            role: key.role,
            person: None,
            session: None,
        })
    }

    /// The person whose console session the request's cookie names: 401
    /// without one that is live (its idle time restarts here).
    async fn signed_in(parts: &Parts, state: &AppState) -> Result<Self, Error> {
        let id = session_cookie(&parts.headers, state).ok_or(Error::Unauthorized)?;
        let via = super::denials::via_of(parts);
        let now = state.clock.now();
        let session = crate::gateway::console::session_of(&state.gateway, &id, &via, now).await?;
        // A session is kept in its team's keyspace; the caller's team is its id.
        let team_id: Arc<str> = crate::store::keys::team_of(&session.team).into();
        if let Some(slot) = parts.extensions.get::<super::TeamSlot>() {
            slot.set(&team_id);
        }
        if let Some(slot) = parts.extensions.get::<super::denials::CallerSlot>() {
            slot.set(&team_id, crate::gateway::console::session_actor(&session));
        }
        let role = match session.role {
            ConsoleRole::Agent => Role::Agent,
            ConsoleRole::Admin => Role::Admin,
        };
        Ok(Caller {
            team: Arc::clone(state.gateway.team(&team_id)?),
            // The person's own stream slots and event naming: no key.
            key_id: format!("console:{}", session.sub).into(),
            team_id,
            role,
            person: Some(Person {
                sub: session.sub,
                name: session.name,
            }),
            session: Some(id.into()),
        })
    }
}

/// The refusal of an operator key on a team's path.
const OPERATOR_ELSEWHERE: &str =
    "an operator API key manages teams and channels and may not do this";

/// The key `Authorization: Bearer <key>` presents: 401 without one.
pub(super) fn bearer_key(parts: &Parts) -> Result<&str, Error> {
    let header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthorized)?;
    // A header without the `Bearer ` prefix (the bare key, or another
    // scheme) says so, without repeating what it held.
    let (scheme, key) = header.trim().split_once(' ').ok_or(Error::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Error::NotBearer);
    }
    Ok(key.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        // An auditor reads the audit trail and nothing else.
        let any = |role| role != Role::Auditor;
        authorise(parts, state, any, ANY_BUT_AUDITOR, Keys::Only).await
    }
}

/// Whether an endpoint takes a console session as well as a key
/// (docs/console-sign-in.md#what-a-session-may-do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    /// An API key only: the cookie is not looked at (401 without a key).
    Only,
    /// An API key, or else the console's session cookie.
    OrSession,
}

/// An authenticated caller whose role may act as the endpoint requires:
/// the role is checked here, before the path, query or body is looked at,
/// then the person its `Chatgate-Actor` names. `Authorization` wins over
/// the session cookie; a change by the cookie needs `Chatgate-Console: 1`.
async fn authorise(
    parts: &Parts,
    state: &AppState,
    may: fn(Role) -> bool,
    needs: &'static str,
    keys: Keys,
) -> Result<Caller, Error> {
    let by_key = keys == Keys::Only || parts.headers.contains_key(AUTHORIZATION);
    let mut caller = if by_key {
        Caller::authenticate(parts, state)?
    } else {
        Caller::signed_in(parts, state).await?
    };
    if !may(caller.role) {
        return Err(Error::RoleRefused {
            caller: if caller.by_session() {
                "console session"
            } else {
                "API key"
            },
            role: caller.role.as_str(),
            needs,
        });
    }
    if !caller.by_session() {
        caller.named_person(parts, state).await?;
        return Ok(caller);
    }
    let changes = matches!(parts.method, Method::POST | Method::DELETE);
    if changes && !has_console_header(&parts.headers) {
        return Err(Error::Forbidden(
            "a change by the console's session needs the Chatgate-Console: 1 header",
        ));
    }
    if parts.headers.contains_key(ACTOR_HEADER) {
        return Err(Error::Unprocessable(
            "Chatgate-Actor is for API keys: a console session is its person".into(),
        ));
    }
    Ok(caller)
}

/// What an endpoint every role but an auditor's may call needs.
const ANY_BUT_AUDITOR: &str = "a bot, agent or admin API key";

/// A caller that acts as a bot: a bot or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Bot(Caller);

/// A caller that acts as an agent: an agent or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Agent(Caller);

/// An admin key, else 403.
#[derive(Debug, Clone)]
pub struct Admin(Caller);

impl FromRequestParts<AppState> for Bot {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let needs = "a bot or admin API key";
        authorise(parts, state, Role::acts_as_bot, needs, Keys::Only)
            .await
            .map(Bot)
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        authorise(
            parts,
            state,
            Role::acts_as_agent,
            "an agent or admin API key, or an agent's console session",
            Keys::OrSession,
        )
        .await
        .map(Agent)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let is_admin = |role| role == Role::Admin;
        let needs = "an admin API key or an admin's console session";
        authorise(parts, state, is_admin, needs, Keys::OrSession)
            .await
            .map(Admin)
    }
}

/// A bot's key and no other (the MCP server, docs/agents.md#the-server):
/// an agent's or an admin's key is 403.
#[derive(Debug, Clone)]
pub struct BotOnly(Caller);

impl FromRequestParts<AppState> for BotOnly {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let is_bot = |role| role == Role::Bot;
        let needs = "a bot API key (only bots call the MCP server)";
        match authorise(parts, state, is_bot, needs, Keys::Only).await {
            Err(Error::Unauthorized) => oauth_bot(parts, state).await.map(BotOnly),
            other => other.map(BotOnly),
        }
    }
}

/// The bot a bearer that is no API key is, when it is an access token of
/// a team's `[mcp] oauth` (docs/agents.md#oauth-access-tokens): that
/// team's bot, its key id `oauth:` + the token's `sub`. While no team has
/// `[mcp] oauth`, or for a bearer not shaped as a JWT, 401 as before; a
/// token refused is 401 too, logged with the check it failed (never the
/// token).
async fn oauth_bot(parts: &Parts, state: &AppState) -> Result<Caller, Error> {
    use crate::domain::access_token;
    let token = bearer_key(parts)?;
    let any = state.gateway.config().sums.mcp_issuers().next().is_some();
    if !any || !access_token::looks_like_jwt(token) {
        return Err(Error::Unauthorized);
    }
    let now = state.clock.now();
    let bot = crate::gateway::mcp_oauth::bot_of_access_token(&state.gateway, token, now).await;
    let bot = bot.map_err(token_refused)?;
    if let Some(remote) = parts.extensions.get::<crate::spans::RemoteParent>() {
        remote.adopt();
    }
    let team_id: Arc<str> = bot.team.id.as_str().into();
    let key_id: Arc<str> = access_token::actor_id(&bot.sub).into();
    if let Some(slot) = parts.extensions.get::<super::TeamSlot>() {
        slot.set(&team_id);
    }
    if let Some(slot) = parts.extensions.get::<super::denials::CallerSlot>() {
        slot.set(&team_id, Actor::api_key(&key_id));
    }
    Ok(Caller {
        team: bot.team,
        team_id,
        key_id,
        role: Role::Bot,
        person: None,
        session: None,
    })
}

/// The 401 of a refused access token, its check logged (a provider that
/// could not be asked as a warning), never the token; `insufficient_scope`
/// names the team's scope when that was all it lacked.
fn token_refused(refused: crate::gateway::mcp_oauth::Refused) -> Error {
    use crate::domain::access_token::Refusal;
    let team = refused.team.as_deref();
    let (name, reason) = (team.map(|t| t.id.as_str()), refused.reason.as_str());
    if refused.reason == Refusal::Provider {
        tracing::warn!(
            team = name,
            reason,
            "MCP: an OAuth access token could not be checked"
        );
    } else {
        tracing::info!(
            team = name,
            reason,
            "MCP: an OAuth access token was refused"
        );
    }
    let lacked = team
        .and_then(|t| t.mcp_oauth.as_ref())
        .map(|o| o.scope.clone());
    Error::BearerRefused {
        scope: lacked.filter(|_| refused.reason == Refusal::Scope),
    }
}

/// A key that may read the audit trail: an auditor or an admin key, else 403.
#[derive(Debug, Clone)]
pub struct Auditor(Caller);

impl FromRequestParts<AppState> for Auditor {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let needs = "an auditor or admin API key";
        authorise(parts, state, Role::reads_audit, needs, Keys::Only)
            .await
            .map(Auditor)
    }
}

/// A caller of an endpoint every role but an auditor may call that is also
/// an agent's (read an interaction, log out, forget): an API key of those
/// roles, or a console session.
#[derive(Debug, Clone)]
pub struct CallerOrSession(Caller);

impl FromRequestParts<AppState> for CallerOrSession {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let any = |role| role != Role::Auditor;
        let needs = "a bot, agent or admin API key, or a console session";
        authorise(parts, state, any, needs, Keys::OrSession)
            .await
            .map(CallerOrSession)
    }
}

/// A caller doing what `[console] require_person` may require a person for
/// (reveal, logout, unlock, forget: docs/console-sign-in.md#what-a-session-may-do):
/// its role extractor `R` ([`Agent`], [`Admin`] or [`CallerOrSession`]),
/// then, for an agent or admin key of a team that requires one, the person
/// its `Chatgate-Actor` named, else 403 `person_required` before the path,
/// query or body is looked at (a console session is its person; a bot's
/// key is not affected); `acting` is the audit actor it acts as, through
/// the request's peer and request id.
#[derive(Debug, Clone)]
pub struct Acting<R> {
    pub caller: R,
    pub acting: audit::Acting,
}

impl<R> FromRequestParts<AppState> for Acting<R>
where
    R: FromRequestParts<AppState, Rejection = Error> + std::ops::Deref<Target = Caller>,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let caller = R::from_request_parts(parts, state).await?;
        caller.person_if_required()?;
        let acting = caller.acting(&super::denials::via_of(parts));
        Ok(Acting { caller, acting })
    }
}

/// Each role extractor is its caller.
macro_rules! is_a_caller {
    ($($role:ident),*) => {$(
        impl std::ops::Deref for $role {
            type Target = Caller;
            fn deref(&self) -> &Caller {
                &self.0
            }
        }
    )*};
}
is_a_caller!(Bot, BotOnly, Agent, Admin, Auditor, CallerOrSession);
