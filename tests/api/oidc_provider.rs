//! An in-process OpenID Connect provider for the hosted-login tests: axum
//! plus `jsonwebtoken` RS256 with fixed test-only keys (`oidc_keys/`, made
//! for these tests and used nowhere else). It enforces what a real one
//! does — the client's credentials (basic auth), the registered redirect
//! URI, one-time codes, PKCE S256 — and misbehaves one way at a time
//! ([`Misbehave`]). Its "user" signs in at once: `/authorize` answers with
//! the redirect to the gateway's callback.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use chatgate::time::{Clock, ManualClock};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "chatgate";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";
/// The redirect URI registered for the acme team's client, unless told
/// otherwise: one per team.
pub const REDIRECT_URI: &str = "http://gateway.test/oidc/callback/acme";

/// More than the 1 MiB the gateway reads of any answer of a provider.
const OVERSIZED: usize = 2 << 20;

const KEY_A: &str = include_str!("oidc_keys/a.pem");
const KEY_B: &str = include_str!("oidc_keys/b.pem");
const PUBLIC: &str = include_str!("oidc_keys/public.json");

/// One way the provider goes wrong (or `None`: it behaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    None,
    WrongNonce,
    NoNonce,
    WrongAud,
    /// `aud` = [client, other], no `azp`.
    SeveralAudNoAzp,
    /// `aud` = [client, other], `azp` = client: valid.
    SeveralAudWithAzp,
    /// `aud` = [client, other], `azp` = other.
    SeveralAudForeignAzp,
    WrongIss,
    Expired,
    AlgNone,
    /// HS256 with the client secret as key.
    Hs256WithSecret,
    /// Signed by key b, whose `kid` is not in the set.
    UnknownKid,
    /// `auth_time` long ago.
    OldAuthTime,
    WrongAcr,
    /// The authorization answer is `error=access_denied`.
    AccessDenied,
    /// The token endpoint answers 500.
    TokenEndpointFails,
    /// The authorization answer's `iss` names another provider.
    IssFromOther,
    /// The authorization answer carries no `iss` (as Entra ID's).
    NoIss,
    /// The discovery document is valid JSON of more than 1 MiB.
    OversizedDiscovery,
    /// The key set is valid JSON of more than 1 MiB.
    OversizedJwks,
    /// The token answer is valid JSON of more than 1 MiB, sent in chunks
    /// without a `Content-Length`.
    OversizedToken,
    /// Discovery names a token endpoint over plain `http` on an address
    /// that is not loopback as written (`[::ffff:127.0.0.1]`, which still
    /// reaches this provider).
    PlainHttpTokenEndpoint,
    /// The same for the key set.
    PlainHttpJwks,
    /// The same for the authorization endpoint.
    PlainHttpAuthorize,
}

struct Grant {
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

struct Inner {
    misbehave: Misbehave,
    clock: Option<Arc<ManualClock>>,
    /// The redirect URI registered since start, if any.
    registered: Option<String>,
    /// The user who signs in.
    subject: String,
    /// Keys in the published set, and the one that signs.
    published: Vec<&'static str>,
    signer: &'static str,
    codes: HashMap<String, Grant>,
    authorize_params: Vec<HashMap<String, String>>,
    token_calls: usize,
    /// Every code sent to the token endpoint, before any check.
    codes_received: Vec<String>,
    jwks_fetches: usize,
    /// A hostile provider's `/authorize`: sends the browser on to this
    /// URL (another provider's authorization request) with the `state`
    /// it was given, instead of signing anyone in.
    forward_to: Option<String>,
    /// The ID token's `email_verified`, when set.
    email_verified: Option<Value>,
    /// `auth_time` = now minus this.
    auth_age: i64,
    acr: String,
    /// The provider session its ID tokens name (`sid`), when set.
    sid: Option<String>,
    /// Code exchanges wait until this closes, when set
    /// ([`FakeIdp::hold_exchanges`]).
    exchange_gate: Option<Arc<tokio::sync::Semaphore>>,
    /// Claims its ID tokens also carry (a workforce provider's groups and
    /// username); a null removes the claim.
    extra_claims: serde_json::Map<String, Value>,
    ciba: Ciba,
}

/// What the customer does in their app when a CIBA request comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Nothing yet: `authorization_pending`.
    Pending,
    Approve,
    Deny,
    /// `slow_down` to the next poll, then pending.
    SlowDown,
    /// `expired_token`.
    Expired,
    /// A 200 answer without an `id_token` (the request is used up).
    ApproveWithoutIdToken,
    /// The token endpoint never answers (until the gateway gives up).
    Hang,
}

/// The CIBA side of the provider (poll mode).
struct Ciba {
    /// Discovery names `backchannel_authentication_endpoint`.
    offered: bool,
    /// The backchannel endpoint refuses every request (400).
    refuses: bool,
    interval: Option<u64>,
    expires_in: u64,
    approval: Approval,
    /// `auth_req_id` → the `login_hint` it was asked for.
    requests: HashMap<String, String>,
    /// Every request it saw: (gateway clock ms, what, form).
    seen: Vec<(i64, &'static str, HashMap<String, String>)>,
    /// Token requests it holds without answering ([`Approval::Hang`]),
    /// until the gateway drops them.
    hanging: usize,
    /// How long (real time) the backchannel endpoint takes to answer.
    bc_delay: std::time::Duration,
    /// How far the backchannel endpoint moves the gateway's clock before
    /// it answers (an answer that took that long).
    bc_takes: std::time::Duration,
    /// How long a poll of the token endpoint takes: on the gateway's clock
    /// (moved that far first) and in real time.
    poll_takes: Option<(std::time::Duration, std::time::Duration)>,
    /// Polls under way now, and the most at once so far.
    polls_under_way: usize,
    most_under_way: usize,
    /// Each timed poll: (asked, answered), gateway clock ms.
    timed: Vec<(i64, i64)>,
}

/// One request the CIBA side saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// On the gateway's (test) clock, ms.
    pub at_ms: i64,
    /// `bc-authorize` or `token`.
    pub what: &'static str,
    pub form: HashMap<String, String>,
}

#[derive(Clone)]
pub struct FakeIdp {
    pub issuer: String,
    /// The one registered redirect URI.
    pub redirect_uri: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeIdp {
    pub async fn start() -> FakeIdp {
        Self::start_for(REDIRECT_URI).await
    }

    /// A provider whose registered redirect URI is `redirect_uri`.
    pub async fn start_for(redirect_uri: &str) -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let idp = FakeIdp {
            issuer,
            redirect_uri: redirect_uri.to_string(),
            inner: Arc::new(Mutex::new(Inner {
                misbehave: Misbehave::None,
                clock: None,
                registered: None,
                subject: "cust-42".into(),
                published: vec!["a"],
                signer: "a",
                codes: HashMap::new(),
                authorize_params: Vec::new(),
                token_calls: 0,
                codes_received: Vec::new(),
                jwks_fetches: 0,
                forward_to: None,
                email_verified: None,
                auth_age: 5,
                acr: "gold".into(),
                sid: None,
                exchange_gate: None,
                extra_claims: serde_json::Map::new(),
                ciba: Ciba {
                    offered: true,
                    refuses: false,
                    interval: Some(5),
                    expires_in: 120,
                    approval: Approval::Pending,
                    requests: HashMap::new(),
                    seen: Vec::new(),
                    hanging: 0,
                    bc_delay: std::time::Duration::ZERO,
                    bc_takes: std::time::Duration::ZERO,
                    poll_takes: None,
                    polls_under_way: 0,
                    most_under_way: 0,
                    timed: Vec::new(),
                },
            })),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .route("/bc-authorize", post(bc_authorize))
            .with_state(idp.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        idp
    }

    /// The `[oidc]` team section for this provider (`extra`: more keys).
    pub fn team_section(&self, extra: &str) -> String {
        format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nscopes = [\"openid\", \"profile\", \"email\"]\n{extra}\n",
            self.issuer
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }
    /// Its tokens' times follow the gateway's clock.
    pub fn use_clock(&self, clock: Arc<ManualClock>) {
        self.with(|i| i.clock = Some(clock));
    }
    pub fn misbehave(&self, m: Misbehave) {
        self.with(|i| i.misbehave = m);
    }
    /// The client's registered redirect URI is now `uri`.
    pub fn register(&self, uri: &str) {
        self.with(|i| i.registered = Some(uri.to_string()));
    }
    fn registered(&self) -> String {
        self.with(|i| i.registered.clone())
            .unwrap_or_else(|| self.redirect_uri.clone())
    }
    /// Its ID tokens from now on also carry `claims` (an object; a null
    /// member removes that claim).
    pub fn id_token_claims(&self, claims: Value) {
        let claims = claims.as_object().unwrap().clone();
        self.with(|i| i.extra_claims = claims);
    }
    pub fn sign_in_as(&self, subject: &str) {
        self.with(|i| i.subject = subject.into());
    }
    /// Its ID tokens from now on name provider session `sid`.
    pub fn in_session(&self, sid: &str) {
        self.with(|i| i.sid = Some(sid.into()));
    }
    /// The token endpoint holds each code exchange from now (counted in
    /// [`Self::token_calls`] as it comes) until [`Self::release_exchanges`].
    pub fn hold_exchanges(&self) {
        self.with(|i| i.exchange_gate = Some(Arc::new(tokio::sync::Semaphore::new(0))));
    }
    /// The held code exchanges, and those to come, are answered.
    pub fn release_exchanges(&self) {
        if let Some(gate) = self.with(|i| i.exchange_gate.take()) {
            gate.close();
        }
    }
    /// Publishes `keys` and signs with `signer` (a rotation).
    pub fn keys(&self, published: Vec<&'static str>, signer: &'static str) {
        self.with(|i| {
            i.published = published;
            i.signer = signer;
        });
    }
    pub fn jwks_fetches(&self) -> usize {
        self.with(|i| i.jwks_fetches)
    }
    pub fn token_calls(&self) -> usize {
        self.with(|i| i.token_calls)
    }
    pub fn codes_received(&self) -> Vec<String> {
        self.with(|i| i.codes_received.clone())
    }
    /// Turns it hostile: its `/authorize` forwards the browser to `url`
    /// (with the state it was given) instead of signing anyone in.
    pub fn forward_authorize_to(&self, url: &str) {
        self.with(|i| i.forward_to = Some(url.to_string()));
    }
    pub fn email_verified(&self, v: Option<Value>) {
        self.with(|i| i.email_verified = v);
    }
    /// What the customer does in the app from now on.
    pub fn approval(&self, a: Approval) {
        self.with(|i| i.ciba.approval = a);
    }
    /// Whether discovery names a backchannel authentication endpoint.
    pub fn offer_ciba(&self, offered: bool) {
        self.with(|i| i.ciba.offered = offered);
    }
    /// The backchannel endpoint refuses every request (or no longer does).
    pub fn refuse_ciba(&self, refuses: bool) {
        self.with(|i| i.ciba.refuses = refuses);
    }
    /// The `interval` (None: left out) and `expires_in` it answers.
    pub fn ciba_timing(&self, interval: Option<u64>, expires_in: u64) {
        self.with(|i| {
            i.ciba.interval = interval;
            i.ciba.expires_in = expires_in;
        });
    }
    /// Every CIBA request it saw, oldest first.
    pub fn ciba_seen(&self) -> Vec<Seen> {
        self.with(|i| {
            i.ciba
                .seen
                .iter()
                .map(|(at_ms, what, form)| Seen {
                    at_ms: *at_ms,
                    what,
                    form: form.clone(),
                })
                .collect()
        })
    }
    /// The backchannel endpoint answers after `delay` (real time).
    pub fn ciba_delay(&self, delay: std::time::Duration) {
        self.with(|i| i.ciba.bc_delay = delay);
    }
    /// The backchannel endpoint answers `takes` later on the gateway's
    /// clock (it moves the clock that far first; needs [`Self::use_clock`]).
    pub fn ciba_takes(&self, takes: std::time::Duration) {
        self.with(|i| i.ciba.bc_takes = takes);
    }

    /// Each poll of the token endpoint moves the gateway's clock on by
    /// `clock` and answers `real` later (needs [`Self::use_clock`]).
    pub fn ciba_poll_takes(&self, clock: std::time::Duration, real: std::time::Duration) {
        self.with(|i| i.ciba.poll_takes = Some((clock, real)));
    }

    /// The polls timed by [`Self::ciba_poll_takes`]: (asked, answered) on
    /// the gateway's clock, ms; and the most under way at once.
    pub fn ciba_timed(&self) -> (Vec<(i64, i64)>, usize) {
        self.with(|i| (i.ciba.timed.clone(), i.ciba.most_under_way))
    }

    /// How many token requests it holds unanswered now.
    pub fn ciba_hanging(&self) -> usize {
        self.with(|i| i.ciba.hanging)
    }

    /// How many polls of the token endpoint it saw.
    pub fn ciba_polls(&self) -> usize {
        self.ciba_seen()
            .iter()
            .filter(|s| s.what == "token")
            .count()
    }
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.with(|i| i.authorize_params.last().cloned().unwrap_or_default())
    }
}

fn now_ms(i: &Inner) -> i64 {
    i.clock.as_ref().map_or_else(
        || chatgate::time::SystemClock.now().unix_millis(),
        |c| c.now().unix_millis(),
    )
}

fn client_ok(headers: &HeaderMap) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
}

/// The backchannel authentication endpoint (CIBA, poll mode).
async fn bc_authorize(
    State(idp): State<FakeIdp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let err = |status: StatusCode, e: &str| (status, Json(json!({"error": e}))).into_response();
    let (refuses, interval, expires_in, delay) = idp.with(|i| {
        let at = now_ms(i);
        i.ciba.seen.push((at, "bc-authorize", form.clone()));
        if let Some(clock) = &i.clock {
            clock.advance(i.ciba.bc_takes);
        }
        (
            i.ciba.refuses,
            i.ciba.interval,
            i.ciba.expires_in,
            i.ciba.bc_delay,
        )
    });
    tokio::time::sleep(delay).await;
    if !client_ok(&headers) {
        return err(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if refuses {
        return err(StatusCode::BAD_REQUEST, "unknown_user_id");
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if !get("scope").split(' ').any(|s| s == "openid") || get("login_hint").is_empty() {
        return err(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let id = format!("arid-{}", uuid::Uuid::now_v7().simple());
    idp.with(|i| i.ciba.requests.insert(id.clone(), get("login_hint")));
    let mut answer = json!({"auth_req_id": id, "expires_in": expires_in});
    if let Some(v) = interval {
        answer["interval"] = json!(v);
    }
    Json(answer).into_response()
}

/// Holds a CIBA poll unanswered, counted in `hanging` until the gateway
/// drops the request.
async fn hang(idp: &FakeIdp, form: &HashMap<String, String>) -> Response {
    struct Held(FakeIdp);
    impl Drop for Held {
        fn drop(&mut self) {
            self.0.with(|i| i.ciba.hanging -= 1);
        }
    }
    idp.with(|i| {
        let at = now_ms(i);
        i.ciba.seen.push((at, "token", form.clone()));
        i.ciba.hanging += 1;
    });
    let _held = Held(idp.clone());
    std::future::pending::<Response>().await
}

/// The token endpoint's answer to a CIBA poll.
fn ciba_token(idp: &FakeIdp, form: &HashMap<String, String>) -> Response {
    let err = |e: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    let id = form.get("auth_req_id").cloned().unwrap_or_default();
    let answer = idp.with(|i| {
        let at = now_ms(i);
        i.ciba.seen.push((at, "token", form.clone()));
        let Some(hint) = i.ciba.requests.get(&id).cloned() else {
            return Err("invalid_grant");
        };
        match i.ciba.approval {
            Approval::Pending => Err("authorization_pending"),
            Approval::SlowDown => {
                i.ciba.approval = Approval::Pending;
                Err("slow_down")
            }
            Approval::Deny => Err("access_denied"),
            Approval::Expired => Err("expired_token"),
            Approval::Approve => {
                i.ciba.requests.remove(&id);
                let _asked_for = hint;
                Ok(Some(id_token(i, &idp.issuer, None)))
            }
            Approval::ApproveWithoutIdToken => {
                i.ciba.requests.remove(&id);
                Ok(None)
            }
            Approval::Hang => unreachable!("held by `hang`"),
        }
    });
    match answer {
        Ok(Some(t)) => Json(json!({"access_token": "at-c", "token_type": "Bearer", "expires_in": 300, "id_token": t}))
            .into_response(),
        Ok(None) => Json(json!({"access_token": "at-c", "token_type": "Bearer", "expires_in": 300}))
            .into_response(),
        Err(e) => err(e),
    }
}

fn now(i: &Inner) -> i64 {
    i.clock.as_ref().map_or_else(
        || chatgate::time::SystemClock.now().unix_seconds(),
        |c| c.now().unix_seconds(),
    )
}

async fn discovery(State(idp): State<FakeIdp>) -> Json<Value> {
    let iss = &idp.issuer;
    let misbehave = idp.with(|i| i.misbehave);
    // Reaches this provider, but is not loopback as written.
    let off_loopback = || iss.replace("http://127.0.0.1:", "http://[::ffff:127.0.0.1]:");
    let endpoint = |path: &str, plain: Misbehave| {
        if misbehave == plain {
            off_loopback() + path
        } else {
            format!("{iss}{path}")
        }
    };
    let mut doc = json!({
        "issuer": iss,
        "authorization_endpoint": endpoint("/authorize", Misbehave::PlainHttpAuthorize),
        "token_endpoint": endpoint("/token", Misbehave::PlainHttpTokenEndpoint),
        "jwks_uri": endpoint("/jwks", Misbehave::PlainHttpJwks),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    });
    if idp.with(|i| i.ciba.offered) {
        doc["backchannel_authentication_endpoint"] = json!(format!("{iss}/bc-authorize"));
        doc["backchannel_token_delivery_modes_supported"] = json!(["poll"]);
        doc["grant_types_supported"] =
            json!(["authorization_code", "urn:openid:params:grant-type:ciba"]);
    }
    if misbehave == Misbehave::OversizedDiscovery {
        doc["padding"] = json!("x".repeat(OVERSIZED));
    }
    Json(doc)
}

async fn jwks(State(idp): State<FakeIdp>) -> Json<Value> {
    let all: Value = serde_json::from_str(PUBLIC).unwrap();
    let (keys, misbehave) = idp.with(|i| {
        i.jwks_fetches += 1;
        let keys = i
            .published
            .iter()
            .map(|k| all[*k].clone())
            .collect::<Vec<_>>();
        (keys, i.misbehave)
    });
    let mut set = json!({ "keys": keys });
    if misbehave == Misbehave::OversizedJwks {
        set["padding"] = json!("x".repeat(OVERSIZED));
    }
    Json(set)
}

/// The user signs in at once; the browser goes back to `redirect_uri`.
async fn authorize(
    State(idp): State<FakeIdp>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if let Some(to) = idp.with(|i| i.forward_to.clone()) {
        // The hostile provider's move: the browser goes on to the other
        // provider's authorization request, with the state it came with.
        let mut to = url::Url::parse(&to).unwrap();
        to.query_pairs_mut().append_pair("state", &get("state"));
        return Redirect::to(to.as_str()).into_response();
    }
    if get("client_id") != CLIENT_ID || get("redirect_uri") != idp.registered() {
        return (StatusCode::BAD_REQUEST, "unknown client or redirect_uri").into_response();
    }
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || !get("scope").split(' ').any(|s| s == "openid")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let state = get("state");
    let (misbehave, issuer) = idp.with(|i| {
        i.authorize_params.push(q.clone());
        (i.misbehave, idp.issuer.clone())
    });
    let mut back = url::Url::parse(&idp.registered()).unwrap();
    {
        let mut pairs = back.query_pairs_mut();
        if misbehave == Misbehave::AccessDenied {
            pairs.append_pair("error", "access_denied");
        } else {
            let code = format!("code-{}", uuid::Uuid::now_v7().simple());
            idp.with(|i| {
                i.codes.insert(
                    code.clone(),
                    Grant {
                        nonce: q.get("nonce").cloned(),
                        challenge: get("code_challenge"),
                        redirect_uri: get("redirect_uri"),
                    },
                )
            });
            pairs.append_pair("code", &code);
        }
        pairs.append_pair("state", &state);
        match misbehave {
            Misbehave::IssFromOther => {
                pairs.append_pair("iss", "https://other-provider.example");
            }
            Misbehave::NoIss => {}
            _ => {
                pairs.append_pair("iss", &issuer);
            }
        }
    }
    Redirect::to(back.as_str()).into_response()
}

async fn token(
    State(idp): State<FakeIdp>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let bad = |what: &str| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": what})),
        )
            .into_response()
    };
    idp.with(|i| {
        i.token_calls += 1;
        i.codes_received
            .push(form.get("code").cloned().unwrap_or_default());
    });
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if idp.with(|i| i.misbehave) == Misbehave::TokenEndpointFails {
        return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response();
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if get("grant_type") == "urn:openid:params:grant-type:ciba" {
        if idp.with(|i| i.ciba.approval) == Approval::Hang {
            return hang(&idp, &form).await;
        }
        let Some((clock, real)) = idp.with(|i| i.ciba.poll_takes) else {
            return ciba_token(&idp, &form);
        };
        let asked = idp.with(|i| {
            i.ciba.polls_under_way += 1;
            i.ciba.most_under_way = i.ciba.most_under_way.max(i.ciba.polls_under_way);
            if let Some(c) = &i.clock {
                c.advance(clock);
            }
            now_ms(i) - clock.as_millis() as i64
        });
        tokio::time::sleep(real).await;
        let answer = ciba_token(&idp, &form);
        idp.with(|i| {
            i.ciba.polls_under_way -= 1;
            let answered = now_ms(i);
            i.ciba.timed.push((asked, answered));
        });
        return answer;
    }
    if get("grant_type") != "authorization_code" {
        return bad("grant_type");
    }
    if let Some(gate) = idp.with(|i| i.exchange_gate.clone()) {
        // Closed: released.
        let _ = gate.acquire().await;
    }
    // One-time codes.
    let Some(grant) = idp.with(|i| i.codes.remove(&get("code"))) else {
        return bad("unknown or used code");
    };
    if get("redirect_uri") != grant.redirect_uri {
        return bad("redirect_uri");
    }
    let challenge = B64URL.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != grant.challenge {
        return bad("PKCE verifier");
    }
    let (id_token, misbehave) = idp.with(|i| (id_token(i, &idp.issuer, grant.nonce), i.misbehave));
    let answer = json!({"access_token": "at-1", "token_type": "Bearer", "expires_in": 300, "id_token": id_token});
    if misbehave == Misbehave::OversizedToken {
        // Valid JSON, padded with whitespace, in 64 KiB chunks.
        let text = answer.to_string();
        let (head, tail) = text.split_at(1);
        let mut chunks = vec![head.to_string()];
        chunks.extend(std::iter::repeat_n(
            " ".repeat(64 << 10),
            OVERSIZED / (64 << 10),
        ));
        chunks.push(tail.to_string());
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            axum::body::Body::from_stream(stream),
        )
            .into_response();
    }
    Json(answer).into_response()
}

fn id_token(i: &Inner, issuer: &str, nonce: Option<String>) -> String {
    let now = now(i);
    let mut claims = json!({
        "iss": issuer, "aud": CLIENT_ID, "sub": i.subject, "iat": now, "exp": now + 300,
        "auth_time": now - i.auth_age, "acr": i.acr, "name": "Ada Lovelace", "email": "ada@example.com",
    });
    if let Some(v) = &i.email_verified {
        claims["email_verified"] = v.clone();
    }
    if let Some(n) = nonce {
        claims["nonce"] = json!(n);
    }
    if let Some(sid) = &i.sid {
        claims["sid"] = json!(sid);
    }
    for (k, v) in &i.extra_claims {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    let mut signer = i.signer;
    match i.misbehave {
        Misbehave::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Misbehave::NoNonce => {
            claims.as_object_mut().unwrap().remove("nonce");
        }
        Misbehave::WrongAud => claims["aud"] = json!("another-client"),
        Misbehave::SeveralAudNoAzp => claims["aud"] = json!([CLIENT_ID, "another-client"]),
        Misbehave::SeveralAudWithAzp => {
            claims["aud"] = json!([CLIENT_ID, "another-client"]);
            claims["azp"] = json!(CLIENT_ID);
        }
        Misbehave::SeveralAudForeignAzp => {
            claims["aud"] = json!([CLIENT_ID, "another-client"]);
            claims["azp"] = json!("another-client");
        }
        Misbehave::WrongIss => claims["iss"] = json!("https://other-provider.example"),
        Misbehave::Expired => {
            claims["iat"] = json!(now - 900);
            claims["exp"] = json!(now - 600);
        }
        Misbehave::OldAuthTime => claims["auth_time"] = json!(now - 3600),
        Misbehave::WrongAcr => claims["acr"] = json!("bronze"),
        Misbehave::UnknownKid => signer = "b",
        _ => {}
    }
    let signing = match i.misbehave {
        Misbehave::AlgNone => Signing::AlgNone(signer),
        Misbehave::Hs256WithSecret => Signing::Hs256WithSecret(signer),
        _ => Signing::Key(signer),
    };
    sign(&claims, signing)
}

/// How a token of the provider is signed (the `kid` each names).
#[derive(Debug, Clone, Copy)]
pub enum Signing {
    /// RS256 with test key `a` or `b` (only `a` is published at first).
    Key(&'static str),
    /// `alg: none`, no signature.
    AlgNone(&'static str),
    /// HS256 with the client secret as key.
    Hs256WithSecret(&'static str),
    /// RS256 with test key `a` or `b` and this `typ` header (none when
    /// `None`; [`Signing::Key`]'s is `JWT`).
    KeyTyp(&'static str, Option<&'static str>),
}

/// `claims` as a token signed as `signing` says: what the provider (or a
/// forger) sends.
pub fn sign(claims: &Value, signing: Signing) -> String {
    match signing {
        Signing::AlgNone(kid) => {
            let h = B64URL.encode(json!({"alg": "none", "kid": kid}).to_string());
            format!("{h}.{}.", B64URL.encode(claims.to_string()))
        }
        Signing::Hs256WithSecret(kid) => {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(kid.into());
            jsonwebtoken::encode(
                &h,
                claims,
                &EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
            )
            .unwrap()
        }
        Signing::Key(kid) => sign(claims, Signing::KeyTyp(kid, Some("JWT"))),
        Signing::KeyTyp(kid, typ) => {
            let pem = if kid == "a" { KEY_A } else { KEY_B };
            let mut h = Header::new(Algorithm::RS256);
            h.kid = Some(kid.into());
            h.typ = typ.map(str::to_string);
            jsonwebtoken::encode(&h, claims, &EncodingKey::from_rsa_der(&der(pem))).unwrap()
        }
    }
}

/// The PKCS#1 DER inside a PEM text.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}
