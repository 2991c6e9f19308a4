//! Login links, the login page's callback, short links and the website's
//! back-channel logout (docs/api.md#the-login-callback).
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use serde::Serialize;
use uuid::Uuid;

use super::links::{self, Binds};
use super::records::{EndedSession, Loaded, ShortLink};
use super::work::{Step, Work};
use super::writes::Writes;
use super::{change, doors, identity_changes, store_epoch};
use super::{Chat, Core, InteractionView};
use crate::channels::{Fill, Purpose};
use crate::config::{SecurityKey, Settings, Team};
use crate::domain::challenge::Challenge;
use crate::domain::interaction::{
    CallbackAnswer, Customer, InteractionRecord, Link, LinkUse, Method, PendingBinding, SignIn,
};
use crate::domain::locale::LocaleTag;
use crate::domain::login::{self, LinkCheck, LoginVerdict, Proof};
use crate::domain::login_token::{self, LoginClaims, Stage};
use crate::domain::otp::OtpCode;
use crate::domain::secrets::Pepper;
use crate::domain::{input, webhook_sig};
use crate::error::{Error, Result};
use crate::events::types::{ChallengeCreated, CreatedChallenge};
use crate::events::EventData;
use crate::store::keys;
use crate::time::Timestamp;

/// `POST /v1/interactions/{id}/login-links`, as the use case takes it (the
/// wire form, with its schema and unknown-member check, is `http::login`'s).
#[derive(Debug, Clone, Default)]
pub struct LinkRequest {
    /// `mid_chat` (default) or `pre_chat`.
    pub stage: Option<String>,
    pub scope: Option<String>,
    pub expected_customer: Option<String>,
    pub deliver: Option<bool>,
    /// Who runs the login: the team's login page (default) or its identity provider.
    pub provider: LinkProvider,
    /// The language asked for from now on (docs/api.md#languages).
    pub locale: Option<LocaleTag>,
    /// The `acr_values` to ask the identity provider for this link's login
    /// instead of the team's (`provider` `oidc` only).
    pub acr_values: Option<Vec<String>>,
}

/// Who runs a link's login (`provider` of a login-link request).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkProvider {
    /// The team's login page, posting the signed callback (docs/api.md#login-links).
    #[default]
    LoginPage,
    /// The team's OpenID Connect provider, with the gateway as relying party.
    Oidc,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedLink {
    pub link_id: Uuid,
    pub url: String,
    pub short_url: String,
    /// The login token; null for a link to the team's identity provider.
    pub token: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub delivered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
}

/// The login page's URL for `token`: the team's `login_url` with `?token=`.
fn login_url(team: &Team, token: &str) -> String {
    let mut url = team.login_url.clone();
    url.query_pairs_mut().append_pair("token", token);
    url.to_string()
}

/// Where `GET /l/{code}` sends the browser.
#[derive(Debug)]
pub enum ShortLinkTarget {
    Redirect(String),
    /// Expired; the page speaks the link's interaction's language, when
    /// the link names one still configured.
    Expired(Option<Speaks>),
    /// The login it was issued for has been made (or refused) with it.
    Used(Speaks),
    /// A live link whose login runs at the team's identity provider.
    Provider(ProviderLink),
}

pub use super::links::Speaks;

/// What a live identity-provider link starts a login for.
#[derive(Debug, Clone)]
pub struct ProviderLink {
    pub team: String,
    pub interaction_id: Uuid,
    pub link_id: Uuid,
    pub expected_customer: Option<String>,
    /// The languages to ask the provider for (`ui_locales`): the requested
    /// tag, then the matched one when it differs; the matched one when
    /// nothing was asked (docs/api.md#languages).
    pub ui_locales: String,
    /// The link's own `acr_values`, sent instead of the team's (empty: the
    /// team's).
    pub acr_values: Vec<String>,
}

/// The login page's callback, parsed and checked for shape.
#[derive(Debug, Clone)]
pub struct Callback {
    pub token: String,
    pub success: bool,
    pub customer: Customer,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum CallbackOutcome {
    Authenticated {
        interaction_id: Uuid,
        authenticated: bool,
        expires_at: Option<Timestamp>,
    },
    /// A login waiting for its binding code (`login_binding = "chat_code"`).
    Bound {
        interaction_id: Uuid,
        authenticated: bool,
        /// Show it to the customer: they type it into the chat.
        binding_code: String,
        binding_expires_at: Timestamp,
    },
    Failed {
        authenticated: bool,
    },
}

/// A login-link request, checked: what the link's token will claim, and
/// the key that signs it.
struct LinkPlan<'t> {
    stage: Stage,
    scope: Option<String>,
    expected: Option<String>,
    key: &'t SecurityKey,
    /// The login runs at the team's identity provider.
    oidc: bool,
    /// The gateway sends it into the chat (`deliver: true`).
    deliver: bool,
    /// The language asked for from now on.
    locale: Option<LocaleTag>,
    /// The link's own `acr_values` (empty: the team's).
    acr_values: Vec<String>,
}

impl<'t> LinkPlan<'t> {
    fn new(team: &'t Team, req: &LinkRequest) -> Result<Self> {
        let stage = match req.stage.as_deref() {
            None | Some("mid_chat") => Stage::MidChat,
            Some("pre_chat") => Stage::PreChat,
            Some(_) => return Err(Error::invalid("stage", "must be mid_chat or pre_chat")),
        };
        let scope = req
            .scope
            .as_deref()
            .map(|v| input::display("scope", v, input::MAX_IDENTITY_CHARS))
            .transpose()?;
        let expected = req
            .expected_customer
            .as_deref()
            .map(|v| input::customer_id("expected_customer", v))
            .transpose()?;
        let key = team
            .primary_key()
            .ok_or_else(|| Error::internal("the team has no primary security key"))?;
        let oidc = req.provider == LinkProvider::Oidc;
        if oidc && team.oidc.is_none() {
            return Err(Error::invalid(
                "provider",
                "oidc needs an [oidc] section in the team's file",
            ));
        }
        let acr_values = match (&req.acr_values, oidc) {
            (None, _) => Vec::new(),
            (Some(values), true) => input::acr_values("acr_values", values)?,
            (Some(_), false) => {
                return Err(Error::invalid("acr_values", "is for provider oidc only"))
            }
        };
        Ok(LinkPlan {
            stage,
            scope,
            expected,
            key,
            oidc,
            deliver: req.deliver.unwrap_or(false),
            locale: req.locale.clone(),
            acr_values,
        })
    }

    /// The short link that leads to a link of these `claims`.
    fn short_link(&self, claims: LoginClaims) -> ShortLink {
        ShortLink {
            kid: self.key.kid.clone(),
            claims,
            oidc: self.oidc,
            acr_values: self.acr_values.clone(),
        }
    }
}

/// A link issued in a unit of work: the answer, and the short link to
/// save with how long it answers.
struct NewLink {
    issued: IssuedLink,
    short: ShortLink,
    short_ttl: Duration,
}

/// Opens the binding challenge of a login proven on the login page (or
/// at the identity provider): a fresh code (shown by the login page,
/// typed into the chat), the customer kept until then.
fn open_binding(
    core: &Core,
    w: &mut Work<'_>,
    proof: &Proof<'_>,
    via: Vec<String>,
    now: Timestamp,
) -> Settled {
    let s = w.settings;
    let challenge_id = Uuid::now_v7();
    // Derived, not drawn: a retry of this callback is answered this code
    // again, and the store still holds only its keyed hash.
    let (code, _) = links::bind::code(core, Binds::FromChallenge, challenge_id, s.otp.length, None);
    let ch = Challenge::new_binding(challenge_id, &code, core.pepper(), &s.otp, now);
    let expires_at = ch.expires_at;
    // Told as any challenge's start, so that a bot waiting on the events
    // (docs/agents.md#get_verification) learns a code is now awaited.
    w.emit(EventData::ChallengeCreated(ChallengeCreated {
        challenge: CreatedChallenge {
            challenge_id,
            delivery: ch.delivery,
            expires_at,
            method: ch.method(),
            number_check: None,
            transaction: None,
            transaction_hash: None,
        },
    }));
    w.rec.end_step_up(now);
    w.rec.open_new_challenge(ch, now);
    w.rec.binding = Some(PendingBinding {
        challenge_id,
        customer: proof.customer.clone(),
        proven_at: Some(now),
        method: proof.method,
        via,
        sign_in: proof.sign_in.cloned().unwrap_or_default(),
    });
    let answer = CallbackAnswer::Bound {
        challenge_id,
        expires_at,
    };
    Settled::new(answer, Some(code), false)
}

/// `POST /v1/interactions/{id}/login-links` (docs/api.md#login-links).
pub async fn issue_link(
    core: &Core,
    team: &Team,
    id: Uuid,
    req: LinkRequest,
    now: Timestamp,
) -> Result<IssuedLink> {
    Ok(issue_link_seen(core, team, id, req, now).await?.0)
}

/// [`issue_link`], with the interaction as the issue's commit left it,
/// unless an undelivered link was withdrawn after it (`None`: the caller
/// reads it, if it needs it).
pub async fn issue_link_seen(
    core: &Core,
    team: &Team,
    id: Uuid,
    req: LinkRequest,
    now: Timestamp,
) -> Result<(IssuedLink, Option<InteractionView>)> {
    let plan = LinkPlan::new(team, &req)?;
    let code = keys::marked(&team.keyspace, &random_code());
    let (plan, short_code) = (&plan, code.as_str());
    let deliver = req.deliver.unwrap_or(false);
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                if deliver {
                    // A link the SMS rules would refuse is not issued.
                    let chat = Chat::of(&w.rec);
                    core.recipient(team, &chat, &w.rec.contact, &w.rec.channel, None)?;
                }
                Ok(Step::Write(new_link(core, w, team, plan, short_code, now)?))
            })
        })
        .await?;
    let (link, rec, mut seen) = (done.value, done.rec, Some(done.view));
    save_short_link(core, team, &code, &link.short, link.short_ttl, now).await?;
    metrics::counter!("chatgate_login_links_issued_total").increment(1);
    let mut issued = link.issued;
    if deliver {
        deliver_link(core, team, &rec, &mut issued, now).await?;
        if !issued.delivered {
            undelivered_link(core, team, id, issued.link_id, now).await?;
            seen = None;
        }
    }
    Ok((issued, seen))
}

/// A new link on the interaction: its claims, signed; the link
/// recorded. It ends a pending pre-chat step-up, and a login waiting
/// for its binding code.
fn new_link(
    core: &Core,
    w: &mut Work<'_>,
    team: &Team,
    plan: &LinkPlan<'_>,
    short_code: &str,
    now: Timestamp,
) -> Result<NewLink> {
    let s = w.settings;
    if let Some(locale) = &plan.locale {
        w.rec.ask_locale(locale, false);
    }
    let link_id = Uuid::now_v7();
    let claims = link_claims(core, team, &w.rec, plan, link_id, s, now);
    let token = login_token::issue(plan.key, &claims)?;
    let short_url = format!("{}/l/{}", core.config().server.public_url, short_code);
    // An identity-provider link has no login page to carry a token to:
    // both URLs are the short link.
    let (url, token) = match plan.oidc {
        true => (short_url.clone(), None),
        false => (login_url(team, &token), Some(token)),
    };
    let expires_at = claims.exp.map(Timestamp::from_unix_seconds);
    w.rec.end_step_up(now);
    w.rec.end_binding(now);
    let link = Link {
        id: link_id,
        expires_at,
        used: false,
        used_by: None,
        // Sent into the chat at once; taken back should the send fail.
        delivered_on: plan.deliver.then(|| w.rec.channel.clone()),
    };
    w.rec.add_link(link, now);
    let short_ttl = match expires_at {
        // It answers "expired" for as long as an untouched interaction
        // lives, then the code is forgotten.
        Some(e) => e.since(now) + s.interaction_ttl.get(),
        None => s.interaction_ttl.get(),
    };
    let short = plan.short_link(claims);
    let issued = IssuedLink {
        link_id,
        url,
        short_url,
        token,
        expires_at,
        delivered: false,
        delivery_error: None,
    };
    Ok(NewLink {
        issued,
        short,
        short_ttl,
    })
}

/// What the token of link `link_id` on `rec` claims; it ends
/// `token_ttl` from now, if that is set.
fn link_claims(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    plan: &LinkPlan<'_>,
    link_id: Uuid,
    s: &Settings,
    now: Timestamp,
) -> LoginClaims {
    let iat = now.unix_seconds();
    let exp = s
        .token_ttl
        .enabled()
        .map(|ttl| iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
    LoginClaims {
        iss: core.config().server.issuer.clone(),
        aud: team.id.clone(),
        sub: rec.id.to_string(),
        jti: link_id.to_string(),
        iat,
        exp,
        team: team.id.clone(),
        channel: rec.channel.clone(),
        stage: plan.stage,
        scope: plan.scope.clone(),
        expected_customer: plan.expected.clone(),
        locale: Some(rec.locale(&s.locale).to_string()),
    }
}

/// Saves the short link under its code. The code is all a browser has:
/// marked with its team's slot (`keys::marked`), its key is in that slot,
/// under a tag of its own; it is written on its own, never in a
/// multi-key commit.
async fn save_short_link(
    core: &Core,
    team: &Team,
    code: &str,
    short: &ShortLink,
    ttl: Duration,
    now: Timestamp,
) -> Result<()> {
    let key = keys::short_link(code);
    let saved = change::once(core, &team.keyspace, &[], now, |c| {
        c.claim(&key, short, Some(ttl))?;
        Ok(Step::Write(()))
    });
    saved
        .await?
        .ok_or_else(|| Error::internal("a 192-bit short-link code collided"))
}

/// Link `link_id` of interaction `id` could not be delivered: no
/// channel delivered it.
async fn undelivered_link(
    core: &Core,
    team: &Team,
    id: Uuid,
    link_id: Uuid,
    now: Timestamp,
) -> Result<()> {
    core.transact(team, id, now, |w| {
        let link = w.rec.links.iter_mut().find(|l| l.id == link_id);
        let step = match link {
            Some(l) if l.delivered_on.is_some() => {
                l.delivered_on = None;
                Step::Write(())
            }
            _ => Step::Answer(()),
        };
        Box::pin(std::future::ready(Ok(step)))
    })
    .await
    .map(|_| ())
}

/// Sends the link's short URL into the interaction's chat; a failure
/// is reported in the answer, the link stays issued — but for WhatsApp's
/// refusal for a changed identity, which ends what was proven in the
/// conversation and uses the link up with it
/// (docs/channels.md#sends-know-the-identity).
async fn deliver_link(
    core: &Core,
    team: &Team,
    rec: &InteractionRecord,
    issued: &mut IssuedLink,
    now: Timestamp,
) -> Result<()> {
    let fill = Fill {
        url: Some(&issued.short_url),
        ..Fill::default()
    };
    match core
        .send(
            team,
            rec,
            &rec.channel,
            None,
            Purpose::LoginLink,
            fill,
            None,
            now,
        )
        .await
    {
        Ok(_) => issued.delivered = true,
        Err(e) => {
            issued.delivery_error = Some(e.to_string());
            identity_changes::on_send_error(core, team, rec, &rec.channel, &e, now).await?;
        }
    }
    Ok(())
}

/// `GET /l/{code}`: never uses the link up (chat apps fetch previews).
pub async fn resolve_short_link(
    core: &Core,
    code: &str,
    now: Timestamp,
) -> Result<ShortLinkTarget> {
    let skey = keys::short_link(code);
    let read = change::read(core, std::slice::from_ref(&skey)).await?;
    // A record this version cannot read (one written before short links
    // stopped holding their token) is a link to ask again for.
    let Ok(read) = read.get::<ShortLink>(&skey) else {
        return Ok(ShortLinkTarget::Expired(None));
    };
    let link = read.value.ok_or(Error::NotFound("no such link"))?;
    let speaks = link_speaks(core, &link);
    let Some((interaction_id, link_id)) = link.target() else {
        return Ok(ShortLinkTarget::Expired(speaks));
    };
    if link.expires_at().is_some_and(|e| now >= e) {
        return Ok(ShortLinkTarget::Expired(speaks));
    }
    // A team or key removed from the config since: the login page
    // could not verify the token either.
    let Some(team) = core.config().team(&link.claims.aud) else {
        return Ok(ShortLinkTarget::Expired(speaks));
    };
    let Some(key) = team.key_by_kid(&link.kid) else {
        return Ok(ShortLinkTarget::Expired(speaks));
    };
    match core.load_pair(team, interaction_id, now).await {
        Ok(pair) => {
            let rec = pair.rec()?;
            let speaks = Speaks {
                team: team.id.clone(),
                channel: rec.channel.clone(),
                locale: rec
                    .locale(&team.settings_for(&rec.channel).locale)
                    .to_string(),
            };
            Ok(match rec.links.iter().find(|l| l.id == link_id) {
                None => ShortLinkTarget::Expired(Some(speaks)),
                Some(l) if l.used => ShortLinkTarget::Used(speaks),
                Some(_) if link.oidc => ShortLinkTarget::Provider(ProviderLink {
                    team: team.id.clone(),
                    interaction_id,
                    link_id,
                    expected_customer: link.claims.expected_customer.clone(),
                    ui_locales: ui_locales(rec, &speaks.locale),
                    acr_values: link.acr_values.clone(),
                }),
                Some(_) => {
                    let token = login_token::issue(key, &link.claims)?;
                    ShortLinkTarget::Redirect(login_url(team, &token))
                }
            })
        }
        Err(Error::NotFound(_)) => Ok(ShortLinkTarget::Expired(speaks)),
        Err(e) => Err(e),
    }
}

/// `ui_locales` of `rec`, which speaks `matched`.
fn ui_locales(rec: &InteractionRecord, matched: &str) -> String {
    match rec.requested_locale.as_ref().map(|r| r.tag.as_str()) {
        Some(asked) if !asked.eq_ignore_ascii_case(matched) => format!("{asked} {matched}"),
        Some(asked) => asked.to_string(),
        None => matched.to_string(),
    }
}

/// The language a link's pages speak before its interaction is read: the
/// one its token claimed, where its team and channel are still configured.
fn link_speaks(core: &Core, link: &ShortLink) -> Option<Speaks> {
    let team = core.config().team(&link.claims.aud)?;
    let channel = &link.claims.channel;
    let l = &team.settings_for(channel).locale;
    let asked = link.claims.locale.as_deref();
    Some(Speaks {
        team: team.id.clone(),
        channel: channel.clone(),
        locale: crate::domain::locale::matched(asked, &l.supported, &l.default).to_string(),
    })
}

/// `POST /v1/login/callback`, checked in the order of
/// docs/api.md#the-login-callback: token, signature (neither needs the
/// store), then in one unit of work the login rules of
/// [`login::check_link`] and [`login::verdict`].
pub async fn login_callback(
    core: &Arc<Core>,
    cb: Callback,
    sig: super::SignatureHeaders<'_>,
    body: &[u8],
    now: Timestamp,
) -> Result<CallbackOutcome> {
    let claims = login_token::verify(
        &cb.token,
        &core.config().server.issuer,
        |t| core.config().team(t),
        now,
    )?;
    let team = core
        .config()
        .team(&claims.aud)
        .ok_or(Error::InvalidToken("unknown team"))?;
    let max_age = team.settings.assertion_max_age.get();
    store_epoch::refuse_issued_before_reset(core, team, claims.iat, max_age, now)?;
    sig.verify(team, body, now)?;
    let (id, link_id) = link_of(&claims)?;
    // Verified above: the id is present.
    let request = SignedRequest::new(core.pepper(), team, sig.id.unwrap_or_default(), body);
    let proof = Proof {
        success: cb.success,
        customer: &cb.customer,
        expected: claims.expected_customer.as_deref(),
        method: Method::LoginLink,
        sign_in: None,
    };
    let (request, proof) = (&request, &proof);
    let done = core
        .transact(team, id, now, |w| {
            Box::pin(async move {
                let retry = Some(request.digests());
                match login::check_link(&w.rec, link_id, retry, w.claim_taken(), now) {
                    LinkCheck::Unused(i) => {
                        let settled = settle(core, w, i, proof, request.used_by(), now);
                        request.remember(w)?;
                        Ok(Step::Write(settled))
                    }
                    LinkCheck::Repeat(answer) => Ok(Step::Answer(repeated(core, answer, w))),
                    LinkCheck::Used => Err(Error::TokenUsed),
                    LinkCheck::BindingEnded => Err(Error::ChallengeExpired),
                }
            })
        })
        .await;
    let done = match done {
        Ok(done) => done,
        Err(e) => {
            let e = store_epoch::gone_with_store(core, team, claims.iat, max_age, now, e).await;
            return Err(gone_is_used(e));
        }
    };
    concluded(&done.value, id, now)
}

/// A retry of the request that used a link, answered as it was; a
/// bound login's code derived again.
fn repeated(core: &Core, answer: CallbackAnswer, w: &Work<'_>) -> Settled {
    let code = match answer {
        CallbackAnswer::Bound { challenge_id, .. } => {
            let length = w.settings.otp.length;
            Some(links::bind::code(core, Binds::FromChallenge, challenge_id, length, None).0)
        }
        _ => None,
    };
    Settled::new(answer, code, false)
}

/// Applies the login rules' verdict ([`login::verdict`]) on unused link
/// `i` given its proof; the link is used from here on, whatever the
/// verdict (docs/api.md#the-login-callback).
fn settle(
    core: &Core,
    w: &mut Work<'_>,
    i: usize,
    proof: &Proof<'_>,
    used_by: LinkUse,
    now: Timestamp,
) -> Settled {
    let (s, origin) = (w.settings, w.origin());
    let verdict = login::verdict(w.subject(), origin.as_deref(), proof, s.login_binding, now);
    // The channel that delivered the link, if the gateway did.
    let via: Vec<String> = w
        .rec
        .links
        .get(i)
        .and_then(|l| l.delivered_on.clone())
        .into_iter()
        .collect();
    let settled = match verdict {
        LoginVerdict::Refused(answer) => Settled::new(answer, None, false),
        LoginVerdict::Mismatch | LoginVerdict::Failure => {
            let f = w.record_failure(now);
            w.emit_lockout(&f);
            Settled::new(verdict.failed_answer(&f, now), None, true)
        }
        LoginVerdict::Bind => open_binding(core, w, proof, via, now),
        LoginVerdict::Authenticate => {
            w.record_success(now);
            let customer = proof.customer.clone();
            w.rec
                .authenticate_since(proof.method, customer, via, now, now, s);
            if let (Some(auth), Some(said)) = (w.rec.auth.as_mut(), proof.sign_in) {
                auth.sign_in = said.clone();
            }
            w.announce_authenticated();
            let expires_at = w.rec.auth_ends_at(s);
            Settled::new(CallbackAnswer::Authenticated { expires_at }, None, false)
        }
    };
    if let Some(link) = w.rec.links.get_mut(i) {
        link.used = true;
        link.used_by = Some(LinkUse {
            answer: settled.answer,
            ..used_by
        });
    }
    settled
}

/// A login proven by the team's identity provider (the ID token is
/// valid): the login callback's rules from one-time use on,
/// authenticating with method `oidc`.
pub(crate) async fn provider_login(
    core: &Arc<Core>,
    team: &Team,
    login: ProvenLogin<'_>,
    now: Timestamp,
) -> Result<CallbackOutcome> {
    let proof = Proof {
        success: true,
        customer: login.customer,
        expected: login.expected,
        method: Method::Oidc,
        sign_in: Some(login.sign_in),
    };
    // Named by `request`, never repeated: no body to compare.
    let used_by = LinkUse {
        webhook_id: login.request.to_string(),
        answer: CallbackAnswer::NotAuthenticated,
        body: None,
    };
    let (proof, used_by, link_id, ended) = (&proof, &used_by, login.link_id, login.ended);
    let done = core
        .transact(team, login.interaction_id, now, |w| {
            Box::pin(async move {
                if let Some(key) = ended {
                    // Read here, and absent still when this commits: a
                    // logout that marks it in between conflicts.
                    let mark: Loaded<EndedSession> = doors::read(core, key).await?;
                    if mark.value.is_some() {
                        return Err(Error::InvalidToken("the provider ended this session"));
                    }
                    // Absent: its deletion at version 0 is that check.
                    w.delete(&mark);
                }
                let LinkCheck::Unused(i) = login::check_link(&w.rec, link_id, None, false, now)
                else {
                    return Err(Error::TokenUsed);
                };
                Ok(Step::Write(settle(core, w, i, proof, used_by.clone(), now)))
            })
        })
        .await
        .map_err(gone_is_used)?;
    concluded(&done.value, login.interaction_id, now)
}

/// Whom the team's identity provider proved, for which link.
pub(crate) struct ProvenLogin<'a> {
    pub interaction_id: Uuid,
    pub link_id: Uuid,
    pub customer: &'a Customer,
    /// The link's `expected_customer`.
    pub expected: Option<&'a str>,
    /// The ID token's `acr` and `amr`.
    pub sign_in: &'a SignIn,
    /// Names this login in the link's record (never repeated: a second
    /// login with the link is 409 `token_used`).
    pub request: &'a str,
    /// The key whose presence says the provider ended the session that
    /// proved this login: the login then does not authenticate
    /// (docs/api.md#post-oidcbackchannel-logoutteam).
    pub ended: Option<&'a str>,
}

/// The interaction and the link a verified login token names.
fn link_of(claims: &LoginClaims) -> Result<(Uuid, Uuid)> {
    let id = Uuid::parse_str(&claims.sub).map_err(|_| Error::InvalidToken("bad sub"))?;
    let link_id = Uuid::parse_str(&claims.jti).map_err(|_| Error::InvalidToken("bad jti"))?;
    Ok((id, link_id))
}

/// The interaction is gone: so is every link it had.
fn gone_is_used(e: Error) -> Error {
    match e {
        Error::NotFound(_) => Error::TokenUsed,
        e => e,
    }
}

/// A signed callback as a used link remembers it. A retry of the very
/// request that used the link (Standard Webhooks retries keep their
/// `webhook-id`, and send the same body) is answered as it was.
struct SignedRequest {
    /// Digest of the `webhook-id`.
    webhook_id: String,
    /// Keyed digest of the body, 128 bits as the `webhook-id`'s: each used
    /// link keeps one.
    body: String,
    /// The key that remembers the `webhook-id` used a link.
    memory: String,
}

impl SignedRequest {
    fn new(pepper: &Pepper, team: &Team, webhook_id: &str, body: &[u8]) -> Self {
        let mut body = pepper.keyed_hash(BODY_PURPOSE, body);
        body.truncate(32);
        // The key that remembers it names the same digest: hashed once.
        let webhook_id = webhook_sig::id_digest(webhook_id);
        SignedRequest {
            memory: keys::answered_request_digested(&team.keyspace, "cb", &webhook_id),
            webhook_id,
            body,
        }
    }

    fn digests(&self) -> login::Request<'_> {
        login::Request {
            webhook_id: &self.webhook_id,
            body: &self.body,
        }
    }

    /// The link's record of this request (its answer filled in when settled).
    fn used_by(&self) -> LinkUse {
        LinkUse {
            webhook_id: self.webhook_id.clone(),
            answer: CallbackAnswer::NotAuthenticated,
            body: Some(self.body.clone()),
        }
    }

    /// Claims the `webhook-id` in `w`, committed with the link's use, for
    /// as long as an untouched interaction keeps the link's own record of
    /// it (a `webhook-id` that used a link answers nothing but retries of
    /// itself).
    fn remember(&self, w: &mut Work<'_>) -> Result<()> {
        let ttl = w.settings.interaction_ttl.get();
        w.claim(&self.memory, &true, Some(ttl))?;
        Ok(())
    }
}

/// A settled (or repeated) login: its answer, the binding code to show
/// once, and whether it counted a failure.
struct Settled {
    answer: CallbackAnswer,
    code: Option<OtpCode>,
    failed: bool,
}

impl Settled {
    fn new(answer: CallbackAnswer, code: Option<OtpCode>, failed: bool) -> Self {
        Settled {
            answer,
            code,
            failed,
        }
    }
}

/// A settled login's answer, counted in the metrics when it failed.
fn concluded(settled: &Settled, interaction_id: Uuid, now: Timestamp) -> Result<CallbackOutcome> {
    if settled.failed {
        metrics::counter!("chatgate_auth_failures_total", "kind" => "login_callback").increment(1);
    }
    let code = settled.code.as_ref().map(|c| c.expose().to_string());
    answered(settled.answer, code, interaction_id, now)
}

/// `Pepper` purpose of the digest of a callback's body.
const BODY_PURPOSE: &str = "callback-body";

/// The callback's answer, first time or repeated.
fn answered(
    answer: CallbackAnswer,
    binding_code: Option<String>,
    interaction_id: Uuid,
    now: Timestamp,
) -> Result<CallbackOutcome> {
    match answer {
        CallbackAnswer::Bound { expires_at, .. } => Ok(CallbackOutcome::Bound {
            interaction_id,
            authenticated: false,
            binding_code: binding_code
                .ok_or_else(|| Error::internal("a bound login without its code"))?,
            binding_expires_at: expires_at,
        }),
        CallbackAnswer::Authenticated { expires_at } => Ok(CallbackOutcome::Authenticated {
            interaction_id,
            authenticated: true,
            expires_at,
        }),
        CallbackAnswer::NotAuthenticated => Ok(CallbackOutcome::Failed {
            authenticated: false,
        }),
        CallbackAnswer::Locked { until } => Err(Error::Locked {
            until,
            retry_after: until.retry_after_secs(now),
        }),
        CallbackAnswer::Banned => Err(Error::Banned),
        CallbackAnswer::CustomerMismatch => Err(Error::CustomerMismatch),
    }
}

/// A short-link code: 192 random bits, URL-safe.
fn random_code() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    B64URL.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A used link's `webhook-id` claim keeps its key when the id is
    /// hashed once for both (the record's digest and the key).
    #[test]
    fn the_claim_s_key_is_made_of_the_id_s_digest() {
        for id in ["msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "", "é\n"] {
            assert_eq!(
                keys::answered_request_digested("acme", "cb", &webhook_sig::id_digest(id)),
                keys::answered_request("acme", "cb", id),
            );
        }
    }
}
