//! Login links, the login page's callback, short links and the website's
//! back-channel logout (docs/api.md#the-login-callback).
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::records::put;
use super::work::{Step, Work};
use super::Gateway;
use crate::channels::{Fill, Purpose};
use crate::config::LoginBinding;
use crate::config::Team;
use crate::domain::challenge::Challenge;
use crate::domain::interaction::{CallbackAnswer, Customer, Link, LinkUse, Method, PendingBinding};
use crate::domain::login_token::{self, LoginClaims, Stage};
use crate::domain::origins::Failure;
use crate::domain::otp::{self, OtpCode};
use crate::domain::{input, webhook_sig};
use crate::error::{Error, Result};
use crate::store::{keys, Commit};
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

/// What a short code leads to. It holds no token: the token is signed again
/// from these claims when the link is followed (HS256 is deterministic, so
/// it is the very token issued), and reading the store yields no live
/// credential. The interaction, the link and the end are the claims' `sub`,
/// `jti` and `exp` (earlier versions wrote them out beside the claims as
/// well, under long names that are read as aliases; the copies are
/// ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ShortLink {
    /// The security key that signed the token.
    #[serde(rename = "k", alias = "kid")]
    kid: String,
    #[serde(rename = "c", alias = "claims")]
    claims: LoginClaims,
    /// The login runs at the team's identity provider, not its login page.
    #[serde(rename = "o", default, skip_serializing_if = "std::ops::Not::not")]
    oidc: bool,
}

impl ShortLink {
    /// The interaction and the link it leads to (`None` for claims this
    /// gateway did not sign: it writes UUIDs).
    fn target(&self) -> Option<(Uuid, Uuid)> {
        let interaction = Uuid::parse_str(&self.claims.sub).ok()?;
        Some((interaction, Uuid::parse_str(&self.claims.jti).ok()?))
    }

    fn expires_at(&self) -> Option<Timestamp> {
        self.claims.exp.map(Timestamp::from_unix_seconds)
    }
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
    Expired,
    /// The login it was issued for has been made (or refused) with it.
    Used,
    /// A live link whose login runs at the team's identity provider.
    Provider(ProviderLink),
}

/// What a live identity-provider link starts a login for.
#[derive(Debug, Clone)]
pub struct ProviderLink {
    pub team: String,
    pub interaction_id: Uuid,
    pub link_id: Uuid,
    pub expected_customer: Option<String>,
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

impl Gateway {
    /// Opens the binding challenge of a login proven by the login page: a
    /// fresh code (shown by the login page, typed into the chat), the
    /// customer kept until then. Returns the code and the answer to remember.
    fn open_binding(
        &self,
        w: &mut Work<'_>,
        customer: Customer,
        now: Timestamp,
    ) -> (OtpCode, CallbackAnswer) {
        let s = w.settings;
        let challenge_id = Uuid::now_v7();
        // Derived, not drawn: a retry of this callback is answered this code
        // again, and the store still holds only its keyed hash.
        let code = otp::derive(&self.pepper, challenge_id, s.otp.length);
        let ch = Challenge::new_binding(challenge_id, &code, &self.pepper, &s.otp, now);
        let expires_at = ch.expires_at;
        w.rec.end_step_up();
        w.rec.open_new_challenge(ch);
        w.rec.binding = Some(PendingBinding {
            challenge_id,
            customer,
            proven_at: Some(now),
            method: Method::LoginLink,
        });
        (
            code,
            CallbackAnswer::Bound {
                challenge_id,
                expires_at,
            },
        )
    }

    pub async fn issue_link(
        &self,
        team: &Team,
        id: Uuid,
        req: LinkRequest,
        now: Timestamp,
    ) -> Result<IssuedLink> {
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
        let code = random_code();

        let (scope, expected, short_code) = (&scope, &expected, &code);
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    let link_id = Uuid::now_v7();
                    let iat = now.unix_seconds();
                    let exp = s
                        .token_ttl
                        .enabled()
                        .map(|ttl| iat + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2));
                    let claims = LoginClaims {
                        iss: self.config.server.issuer.clone(),
                        aud: team.id.clone(),
                        sub: w.rec.id.to_string(),
                        jti: link_id.to_string(),
                        iat,
                        exp,
                        team: team.id.clone(),
                        channel: w.rec.channel.clone(),
                        stage,
                        scope: scope.clone(),
                        expected_customer: expected.clone(),
                    };
                    let token = login_token::issue(key, &claims)?;
                    let short_url = format!("{}/l/{}", self.config.server.public_url, short_code);
                    // An identity-provider link has no login page to carry a
                    // token to: both URLs are the short link.
                    let (url, token) = match oidc {
                        true => (short_url.clone(), None),
                        false => (login_url(team, &token), Some(token)),
                    };
                    let expires_at = exp.map(Timestamp::from_unix_seconds);
                    // A new link ends a pending pre-chat step-up, and a
                    // login waiting for its binding code.
                    w.rec.end_step_up();
                    w.rec.end_binding();
                    w.rec.add_link(
                        Link {
                            id: link_id,
                            expires_at,
                            used: false,
                            used_by: None,
                        },
                        now,
                    );
                    let short = ShortLink {
                        kid: key.kid.clone(),
                        claims,
                        oidc,
                    };
                    let short_ttl = match expires_at {
                        // It answers "expired" for as long as an untouched
                        // interaction lives, then the code is forgotten.
                        Some(e) => e.since(now) + s.interaction_ttl.get(),
                        None => s.interaction_ttl.get(),
                    };
                    let issued = IssuedLink {
                        link_id,
                        url,
                        short_url,
                        token,
                        expires_at,
                        delivered: false,
                        delivery_error: None,
                    };
                    Ok(Step::Write((issued, short, short_ttl)))
                })
            })
            .await?;
        let ((issued, short, short_ttl), rec) = (done.value, done.rec);
        // The short code is all a browser has, so its key carries no team
        // tag: it is written on its own, never in a multi-key commit, and
        // so stays in its own Redis Cluster slot.
        let saved = put(&keys::short_link(&code), 0, &short, Some(short_ttl))?;
        if self.store.commit(vec![saved]).await? != Commit::Applied {
            return Err(Error::internal("a 192-bit short-link code collided"));
        }
        metrics::counter!("chatgate_login_links_issued_total").increment(1);

        let mut issued = issued;
        if req.deliver.unwrap_or(false) {
            let fill = Fill {
                url: Some(&issued.short_url),
                ..Fill::default()
            };
            match self
                .send(team, &rec, &rec.channel, None, Purpose::LoginLink, fill)
                .await
            {
                Ok(()) => issued.delivered = true,
                Err(e) => issued.delivery_error = Some(e.to_string()),
            }
        }
        Ok(issued)
    }

    /// `GET /l/{code}`: never uses the link up (chat apps fetch previews).
    pub async fn resolve_short_link(&self, code: &str, now: Timestamp) -> Result<ShortLinkTarget> {
        let skey = keys::short_link(code);
        let raw = self
            .store
            .get(std::slice::from_ref(&skey))
            .await?
            .pop()
            .flatten();
        let Some(raw) = raw else {
            return Err(Error::NotFound("no such link"));
        };
        // A record this version cannot read (one written before short links
        // stopped holding their token) is a link to ask again for.
        let Ok(link) = serde_json::from_str::<ShortLink>(&raw.value) else {
            return Ok(ShortLinkTarget::Expired);
        };
        let Some((interaction_id, link_id)) = link.target() else {
            return Ok(ShortLinkTarget::Expired);
        };
        if link.expires_at().is_some_and(|e| now >= e) {
            return Ok(ShortLinkTarget::Expired);
        }
        // A team or key removed from the config since: the login page
        // could not verify the token either.
        let Some(team) = self.config.team(&link.claims.aud) else {
            return Ok(ShortLinkTarget::Expired);
        };
        let Some(key) = team.key_by_kid(&link.kid) else {
            return Ok(ShortLinkTarget::Expired);
        };
        match self.load_pair(team, interaction_id, now).await {
            Ok(pair) => {
                let rec = pair.rec()?;
                Ok(match rec.links.iter().find(|l| l.id == link_id) {
                    None => ShortLinkTarget::Expired,
                    Some(l) if l.used => ShortLinkTarget::Used,
                    Some(_) if link.oidc => ShortLinkTarget::Provider(ProviderLink {
                        team: team.id.clone(),
                        interaction_id,
                        link_id,
                        expected_customer: link.claims.expected_customer.clone(),
                    }),
                    Some(_) => {
                        let token = login_token::issue(key, &link.claims)?;
                        ShortLinkTarget::Redirect(login_url(team, &token))
                    }
                })
            }
            Err(Error::NotFound(_)) => Ok(ShortLinkTarget::Expired),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/login/callback`, checked in the order of docs/api.md#the-login-callback: token,
    /// signature, one-time use, the subject's lock, the expected customer.
    pub async fn login_callback(
        self: &Arc<Self>,
        cb: Callback,
        sig: super::SignatureHeaders<'_>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<CallbackOutcome> {
        let claims = login_token::verify(
            &cb.token,
            &self.config.server.issuer,
            |t| self.config.team(t),
            now,
        )?;
        let team = self
            .config
            .team(&claims.aud)
            .ok_or(Error::InvalidToken("unknown team"))?;
        sig.verify(team, body, now)?;
        let id = Uuid::parse_str(&claims.sub).map_err(|_| Error::InvalidToken("bad sub"))?;
        let link_id = Uuid::parse_str(&claims.jti).map_err(|_| Error::InvalidToken("bad jti"))?;

        // Verified above: the id is present. A retry of the very request that
        // used the link (Standard Webhooks retries keep their `webhook-id`,
        // and send the same body) is answered as it was.
        let webhook_id = sig.id.unwrap_or_default();
        let request = webhook_sig::id_digest(webhook_id);
        let mut body_digest = self.pepper.keyed_hash(BODY_PURPOSE, body);
        // 128 bits, as the `webhook-id`'s digest: each used link keeps one.
        body_digest.truncate(32);
        let memory = keys::answered_request(&team.id, "cb", webhook_id);

        let (cb, request, expected_customer) = (&cb, &request, &claims.expected_customer);
        let (body_digest, memory) = (&body_digest, &memory);
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let s = w.settings;
                    let Some(i) = w.rec.links.iter().position(|l| l.id == link_id) else {
                        return Err(Error::TokenUsed);
                    };
                    let used = w
                        .rec
                        .links
                        .get(i)
                        .filter(|l| l.used)
                        .map(|l| l.used_by.clone());
                    if let Some(used_by) = used {
                        let Some(u) =
                            used_by.filter(|u| u.retried_by(request, body_digest) == Some(true))
                        else {
                            // Another request, or this `webhook-id` with
                            // another body: no retry.
                            return Err(Error::TokenUsed);
                        };
                        return match u.answer {
                            // A bound login: its code again while its own
                            // binding is live — never the binding of a later
                            // login on this interaction. Once it has ended
                            // (a new link, a logout, expiry, the code used
                            // or out of attempts) it never comes back.
                            CallbackAnswer::Bound { challenge_id, .. } => {
                                let live = w
                                    .rec
                                    .live_binding(now)
                                    .is_some_and(|b| b.challenge_id == challenge_id);
                                if !live {
                                    return Err(Error::ChallengeExpired);
                                }
                                let code = otp::derive(&self.pepper, challenge_id, s.otp.length);
                                Ok(Step::Answer((Verdict::Repeat(Some(code)), u.answer)))
                            }
                            answer => Ok(Step::Answer((Verdict::Repeat(None), answer))),
                        };
                    }
                    // A `webhook-id` that already used another link: its
                    // body was another (another token), so it is no retry.
                    if w.claim_taken() {
                        return Err(Error::TokenUsed);
                    }
                    let proof = Proof {
                        success: cb.success,
                        customer: &cb.customer,
                        expected: expected_customer.as_ref(),
                        method: Method::LoginLink,
                    };
                    let used_by = LinkUse {
                        webhook_id: request.clone(),
                        answer: CallbackAnswer::NotAuthenticated,
                        body: Some(body_digest.clone()),
                    };
                    let (verdict, answer) = self.settle(w, i, &proof, used_by, now)?;
                    // And the `webhook-id` with the link, in the same commit,
                    // for as long as an untouched interaction keeps the
                    // link's own record of it (a `webhook-id` that used a
                    // link answers nothing but retries of itself).
                    w.claim(put(memory, 0, &true, Some(s.interaction_ttl.get()))?);
                    Ok(Step::Write((verdict, answer)))
                })
            })
            .await
            .map_err(|e| match e {
                // The interaction is gone: so is every link it had.
                Error::NotFound(_) => Error::TokenUsed,
                e => e,
            })?;
        let (verdict, answer) = &done.value;
        concluded(verdict, *answer, id, now)
    }
}

/// What a login's proof decided.
enum Verdict {
    /// Locked or banned: the link is used, nothing else changes.
    Refused,
    Failure,
    Mismatch,
    Success,
    /// A retry of the request that used the link: nothing changes.
    /// A bound login's retry carries its code again.
    Repeat(Option<OtpCode>),
    /// Waiting for the binding code, shown once to the login page.
    Bound(OtpCode),
}

/// What proved (or failed to prove) the customer of one link: the login
/// page's callback, or the team's identity provider.
struct Proof<'a> {
    success: bool,
    customer: &'a Customer,
    expected: Option<&'a String>,
    /// How a success authenticates (also once its binding code is typed).
    method: Method,
}

impl Gateway {
    /// The login rules of one unused link `i` given its proof, in the
    /// documented order after one-time use: the subject's lock, the
    /// expected customer (a counted failure), the outcome, the binding;
    /// the link is used from here on, whatever the verdict
    /// (docs/api.md#the-login-callback).
    fn settle(
        &self,
        w: &mut Work<'_>,
        i: usize,
        proof: &Proof<'_>,
        used_by: LinkUse,
        now: Timestamp,
    ) -> Result<(Verdict, CallbackAnswer)> {
        let s = w.settings;
        let refusal_or = |f: &Failure, otherwise: CallbackAnswer| {
            f.refusal(now)
                .as_ref()
                .and_then(CallbackAnswer::refused)
                .unwrap_or(otherwise)
        };
        let (verdict, answer) = if let Err(e) = w.ensure_clear(now) {
            let answer = CallbackAnswer::refused(&e)
                .ok_or_else(|| Error::internal("a refusal with no callback answer"))?;
            (Verdict::Refused, answer)
        } else if proof.success
            && proof
                .expected
                .is_some_and(|exp| proof.customer.get("id") != Some(exp))
        {
            let f = w.record_failure(now);
            w.emit_lockout(&f);
            (
                Verdict::Mismatch,
                refusal_or(&f, CallbackAnswer::CustomerMismatch),
            )
        } else if !proof.success {
            let f = w.record_failure(now);
            w.emit_lockout(&f);
            (
                Verdict::Failure,
                refusal_or(&f, CallbackAnswer::NotAuthenticated),
            )
        } else if s.login_binding == LoginBinding::ChatCode {
            // Proven on the login page; finished only when the
            // code it shows is typed into this chat.
            let (code, answer) = self.open_binding(w, proof.customer.clone(), now);
            if let Some(b) = w.rec.binding.as_mut() {
                b.method = proof.method;
            }
            (Verdict::Bound(code), answer)
        } else {
            w.record_success(now);
            w.rec
                .authenticate(proof.method, proof.customer.clone(), now, s);
            w.announce_authenticated();
            let expires_at = w.rec.auth_ends_at(s);
            (
                Verdict::Success,
                CallbackAnswer::Authenticated { expires_at },
            )
        };
        // The link is used from the one-time check on, whatever the verdict.
        if let Some(link) = w.rec.links.get_mut(i) {
            link.used = true;
            link.used_by = Some(LinkUse { answer, ..used_by });
        }
        Ok((verdict, answer))
    }

    /// A login proven by the team's identity provider (the ID token is
    /// valid): the login callback's rules from one-time use on,
    /// authenticating with method `oidc`.
    pub(crate) async fn provider_login(
        self: &Arc<Self>,
        team: &Team,
        login: ProvenLogin<'_>,
        now: Timestamp,
    ) -> Result<CallbackOutcome> {
        let ProvenLogin {
            interaction_id: id,
            link_id,
            customer,
            expected,
            request,
        } = login;
        let proof = Proof {
            success: true,
            customer,
            expected,
            method: Method::Oidc,
        };
        let proof = &proof;
        let done = self
            .transact(team, id, now, |w| {
                Box::pin(async move {
                    let i = w
                        .rec
                        .links
                        .iter()
                        .position(|l| l.id == link_id && !l.used)
                        .ok_or(Error::TokenUsed)?;
                    // Named by `request`, never repeated: no body to compare.
                    let used_by = LinkUse {
                        webhook_id: request.to_string(),
                        answer: CallbackAnswer::NotAuthenticated,
                        body: None,
                    };
                    Ok(Step::Write(self.settle(w, i, proof, used_by, now)?))
                })
            })
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => Error::TokenUsed,
                e => e,
            })?;
        let (verdict, answer) = &done.value;
        concluded(verdict, *answer, id, now)
    }
}

/// Whom the team's identity provider proved, for which link.
pub(crate) struct ProvenLogin<'a> {
    pub interaction_id: Uuid,
    pub link_id: Uuid,
    pub customer: &'a Customer,
    /// The link's `expected_customer`.
    pub expected: Option<&'a String>,
    /// Names this login in the link's record (never repeated: a second
    /// login with the link is 409 `token_used`).
    pub request: &'a str,
}

/// A settled login's answer, counted in the metrics when it failed.
fn concluded(
    verdict: &Verdict,
    answer: CallbackAnswer,
    interaction_id: Uuid,
    now: Timestamp,
) -> Result<CallbackOutcome> {
    let code = match verdict {
        Verdict::Bound(code) | Verdict::Repeat(Some(code)) => Some(code.expose().to_string()),
        _ => None,
    };
    if let Verdict::Failure | Verdict::Mismatch = verdict {
        metrics::counter!("chatgate_auth_failures_total", "kind" => "login_callback").increment(1);
    }
    answered(answer, code, interaction_id, now)
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
