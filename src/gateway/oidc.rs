//! Hosted login with the team's identity provider
//! (docs/api.md#hosted-login-openid-connect): starting a login from a
//! short link, and finishing it when the provider sends the browser back.
//! A valid ID token then runs the login callback's rules
//! ([`Core::provider_login`]); every refusal before that uses nothing up.
use std::sync::Arc;

use super::login::{CallbackOutcome, ProvenLogin, ProviderLink};
use super::oidc_logout::ProviderSession;
use super::work::Step;
use super::{change, Core};
use crate::config::{OidcConfig, Team};
use crate::domain::input;
use crate::domain::interaction::{Customer, SignIn};
use crate::error::Error;
pub use crate::oidc::flow::ProviderAnswer;
use crate::oidc::flow::{self, Flow, Started, STATE_TTL};
use crate::oidc::provider::KeyUse;
use crate::oidc::states::{self, LinkStates};
use crate::oidc::{id_token, reachable, OidcError};
use crate::store::keys;
use crate::time::Timestamp;

/// Why a provider login stopped: the provider's side (its own statuses) or
/// the login rules and the store (the API's errors).
#[derive(Debug)]
pub enum ProviderRefusal {
    Oidc(OidcError),
    Login(Error),
}

impl From<OidcError> for ProviderRefusal {
    fn from(e: OidcError) -> Self {
        ProviderRefusal::Oidc(e)
    }
}

impl From<crate::store::StoreError> for ProviderRefusal {
    fn from(e: crate::store::StoreError) -> Self {
        ProviderRefusal::Login(e.into())
    }
}

impl From<Error> for ProviderRefusal {
    fn from(e: Error) -> Self {
        ProviderRefusal::Login(e)
    }
}

/// A started login: where the browser goes, its state (which names the
/// cookie), and the secret its cookie keeps.
#[derive(Debug)]
pub struct ProviderStart {
    pub location: String,
    pub state: String,
    pub browser_secret: String,
}

/// How a provider's answer ended, and whether it answered (used up) the
/// state it named: only then is that state's cookie cleared.
#[derive(Debug)]
pub struct ProviderFinish {
    pub outcome: Result<CallbackOutcome, ProviderRefusal>,
    pub answered: bool,
    /// The interaction the answered state was started for: its pages
    /// speak its language (docs/api.md#languages).
    pub interaction_id: Option<uuid::Uuid>,
}

/// Where the provider sends the browser back: one address per team
/// (docs/api.md#hosted-login-openid-connect).
fn redirect_uri(core: &Core, team: &str) -> String {
    format!("{}/oidc/callback/{team}", core.config().server.public_url)
}

fn provider_of<'c>(
    core: &'c Core,
    team: &str,
) -> Result<(&'c Team, &'c OidcConfig), ProviderRefusal> {
    let team = core.config().team(team).ok_or(Error::TokenExpired)?;
    // A team whose [oidc] was removed since: its links lead nowhere.
    let oidc = team.oidc.as_ref().ok_or(Error::TokenExpired)?;
    Ok((team, oidc))
}

/// `GET /l/{code}` of a live identity-provider link: a fresh state,
/// nonce and PKCE verifier, kept [`STATE_TTL`] among the link's
/// [`states::MAX_PER_LINK`] newest; nothing is used up.
pub async fn start_provider_login(
    core: &Core,
    link: &ProviderLink,
    now: Timestamp,
) -> Result<ProviderStart, ProviderRefusal> {
    let (team, oidc) = provider_of(core, &link.team)?;
    let authorization_endpoint = authorization_endpoint(core, oidc, now)
        .await
        .inspect_err(|e| logged(team, e))?;
    // Marked with its team's slot: the record is in that slot.
    let tag = keys::marked(&team.keyspace, &states::link_tag(link.link_id));
    let state = states::new_state(&tag);
    let (mut flow, browser_secret) = Flow::begin(&oidc.issuer, link.expected_customer.clone(), now);
    flow.acr_values = link.acr_values.clone();
    let started = Started {
        team: team.id.clone(),
        interaction_id: link.interaction_id,
        link_id: link.link_id,
        flow,
    };
    let key = keys::oidc_states(&tag);
    core.change(&team.keyspace, std::slice::from_ref(&key), now, |c| {
        let read = c.read::<LinkStates>(&key)?;
        let mut kept = read.value.clone().unwrap_or_default();
        kept.add(&state, started.clone(), now);
        c.put(&read, &kept, Some(STATE_TTL))?;
        Ok(Step::Write(()))
    })
    .await?;
    let location = flow::authorization_url(
        &authorization_endpoint,
        oidc,
        &redirect_uri(core, &team.id),
        &state,
        &started.flow.nonce,
        &started.flow.verifier,
        &flow::Hints {
            login_hint: link.expected_customer.as_deref(),
            ui_locales: &link.ui_locales,
            acr_values: &link.acr_values,
        },
    );
    Ok(ProviderStart {
        location,
        state,
        browser_secret,
    })
}

/// The provider's authorization endpoint, when it may be reached
/// (docs/api.md#hosted-login-openid-connect): where every flow begins.
pub(super) async fn authorization_endpoint(
    core: &Core,
    oidc: &OidcConfig,
    now: Timestamp,
) -> Result<url::Url, OidcError> {
    let meta = core.oidc().metadata(oidc, now).await?;
    let endpoint = reachable(
        "authorization_endpoint",
        &meta.authorization_endpoint,
        &meta.issuer,
    )?;
    Ok(endpoint.clone())
}

/// `GET /oidc/callback/{team}`: the state (started for this team, this
/// browser's, live, unanswered; consumed here), the provider's error,
/// its `iss`, the code exchange, the ID token; then the login
/// callback's rules. `cookie`: the browser secret of the state's cookie.
pub async fn finish_provider_login(
    core: &Arc<Core>,
    team: &str,
    answer: ProviderAnswer,
    cookie: Option<&str>,
    now: Timestamp,
) -> ProviderFinish {
    match take_state(core, team, answer.state.as_deref(), cookie, now).await {
        Ok(started) => ProviderFinish {
            interaction_id: Some(started.interaction_id),
            outcome: finish_started(core, started, answer, now).await,
            answered: true,
        },
        Err(e) => {
            // A refused state is logged under the team whose address it
            // came to (a mix-up attempt shows as "started for another
            // team"); an address of no team is not.
            if let (ProviderRefusal::Oidc(oidc), Some(t)) = (&e, core.config().team(team)) {
                logged(t, oidc);
            }
            ProviderFinish {
                outcome: Err(e),
                answered: false,
                interaction_id: None,
            }
        }
    }
}

async fn finish_started(
    core: &Arc<Core>,
    started: Started,
    answer: ProviderAnswer,
    now: Timestamp,
) -> Result<CallbackOutcome, ProviderRefusal> {
    let (team, oidc) = provider_of(core, &started.team)?;
    let refused = |e: OidcError| {
        logged(team, &e);
        ProviderRefusal::Oidc(e)
    };
    let (session, customer, sign_in) = proven_login(core, team, oidc, &started, &answer, now)
        .await
        .map_err(refused)?;
    let request = format!("oidc:{}", flow::digest(&started.flow.nonce));
    // Remembered before the login counts, so that no login the
    // provider may end goes unremembered; an entry of a login refused
    // below names no authentication and ends nothing.
    let customer_id = customer.get("id").map(String::as_str).unwrap_or_default();
    let ended = session.sid.as_deref();
    let ended = ended.map(|sid| crate::gateway::oidc_logout::ended_session_key(team, oidc, sid));
    crate::gateway::oidc_logout::remember_session(
        core,
        team,
        &session,
        started.interaction_id,
        customer_id,
        now,
    )
    .await?;
    Ok(crate::gateway::login::provider_login(
        core,
        team,
        ProvenLogin {
            interaction_id: started.interaction_id,
            link_id: started.link_id,
            customer: &customer,
            expected: started.flow.login_hint.as_deref(),
            sign_in: &sign_in,
            request: &request,
            ended: ended.as_deref(),
        },
        now,
    )
    .await?)
}

/// What the provider's `answer` proves of a login `started` at `team`'s
/// provider `oidc`: the answer's ID token ([`proven_claims`]), and its
/// session and customer.
async fn proven_login(
    core: &Core,
    team: &Team,
    oidc: &OidcConfig,
    started: &Started,
    answer: &ProviderAnswer,
    now: Timestamp,
) -> Result<(ProviderSession, Customer, SignIn), OidcError> {
    let redirect = redirect_uri(core, &team.id);
    let (_, proven) = proven_claims(
        core,
        oidc,
        &started.flow,
        answer,
        &redirect,
        KeyUse::Login,
        now,
    )
    .await?;
    let session = ProviderSession::of(&proven);
    let sign_in = SignIn {
        acr: proven.acr.clone(),
        amr: proven.amr.clone(),
    };
    Ok((session, customer(proven)?, sign_in))
}

/// What the provider's `answer` to `flow` proves, the relying party's
/// part that the hosted login and the console's sign-in share: the answer
/// checked (its error, its `iss`), its code exchanged at the token
/// endpoint with the flow's PKCE verifier and `redirect`, the ID token's
/// signature (the key set's refetch budget of `use_`) and claims checked
/// as OpenID Connect Core 3.1.3.7 asks. Answers its claims and what the
/// login checks read of them.
pub(super) async fn proven_claims(
    core: &Core,
    oidc: &OidcConfig,
    flow: &Flow,
    answer: &ProviderAnswer,
    redirect: &str,
    use_: KeyUse,
    now: Timestamp,
) -> Result<(serde_json::Map<String, serde_json::Value>, id_token::Proven), OidcError> {
    answer.check_against(flow.issuer.as_deref(), &oidc.issuer)?;
    let meta = core.oidc().metadata(oidc, now).await?;
    let iss_supported = meta.authorization_response_iss_parameter_supported;
    let code = answer.code_from(&oidc.issuer, iss_supported)?;
    let exchanged = core
        .oidc()
        .exchange(oidc, &meta, code, redirect, &flow.verifier);
    let token = exchanged.await?;
    let claims = super::provider_tokens::provider_token(core, oidc, &meta, &token, use_, now);
    let claims = claims.await?;
    let expect = id_token::Expect {
        issuer: &oidc.issuer,
        client_id: &oidc.client_id,
        nonce: Some(&flow.nonce),
        max_age: oidc.max_age,
        acr_values: flow.acr_values(&oidc.acr_values),
        customer_claim: &oidc.customer_claim,
    };
    let proven = id_token::check_login_claims(&claims, &expect, now)?;
    Ok((claims, proven))
}

/// The started login the answer's state names, if it was started for
/// `team` (the callback's), is this browser's and still live; consumed,
/// so that it answers once. Nothing is consumed otherwise: a state
/// sent to another team's callback or from another browser stays good
/// for its own.
async fn take_state(
    core: &Core,
    team: &str,
    state: Option<&str>,
    cookie: Option<&str>,
    now: Timestamp,
) -> Result<Started, ProviderRefusal> {
    let state = state
        .filter(|s| s.len() <= 256)
        .ok_or(OidcError::BadState("no state"))?;
    let tag = states::tag_of(state).ok_or(OidcError::BadState("unknown"))?;
    let key = keys::oidc_states(tag);
    let first = change::read(core, std::slice::from_ref(&key)).await?;
    let taken = take_link_state(core, team, first, &key, now, |kept| {
        kept.take(state, Some(team), cookie, None, now)
    });
    Ok(taken.await?.map_err(OidcError::BadState)?)
}

/// Uses up the state `take` finds among a link's started logins (`key`,
/// as `first` read it), keeping the rest (none left: the record goes):
/// the one way a hosted login's and a network link's answer spend their
/// state (docs/architecture.md#one-state-ladder). `Ok(Err)`: refused,
/// nothing written.
pub(super) async fn take_link_state(
    core: &Core,
    team: &str,
    first: change::Read,
    key: &str,
    now: Timestamp,
    take: impl Fn(&mut LinkStates) -> std::result::Result<Started, &'static str>,
) -> crate::error::Result<std::result::Result<Started, &'static str>> {
    change::on(core, team, first, now, |c| {
        let read = c.read::<LinkStates>(key)?;
        let mut kept = read.value.clone().unwrap_or_default();
        let started = match take(&mut kept) {
            Ok(started) => started,
            Err(why) => return Ok(Step::Answer(Err(why))),
        };
        match kept.entries.is_empty() {
            true => c.delete(&read),
            false => _ = c.put(&read, &kept, Some(STATE_TTL))?,
        }
        Ok(Step::Write(Ok(started)))
    })
    .await
}

/// The customer a valid ID token proves: `id` under the identifier rules,
/// `name` and `email` when present and showable.
pub(super) fn customer(proven: id_token::Proven) -> Result<Customer, OidcError> {
    let id = input::customer_id("customer_claim", &proven.customer_id)
        .map_err(|_| OidcError::InvalidIdToken("the customer claim breaks the identifier rules"))?;
    let mut customer = Customer::new();
    customer.insert("id".into(), id);
    for (name, value) in [("name", proven.name), ("email", proven.email)] {
        if let Some(Ok((k, v))) = value.map(|v| input::customer_member("customer", name, &v)) {
            customer.insert(k, v);
        }
    }
    Ok(customer)
}

/// Each refusal is logged once, with its reason and never a token or code.
pub(super) fn logged(team: &Team, e: &OidcError) {
    match e {
        OidcError::Provider(_) => {
            tracing::warn!(team = %team.id, reason = %e, "identity provider login failed")
        }
        _ => tracing::info!(team = %team.id, reason = %e, "identity provider login refused"),
    }
}
