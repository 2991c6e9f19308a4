//! An in-process mobile operator for the network-authentication tests,
//! built from CAMARA's Number Verification API definition
//! (`camaraproject/NumberVerification`, `code/API_definitions/number-verification.yaml`)
//! and the front-end authorization code flow it names: `/authorize`
//! (`prompt=none`, PKCE S256), `/token` (`client_secret_basic`, one-time
//! codes, the registered redirect URI, the PKCE verifier) and
//! `POST /number-verification/v2/verify` (a bearer token it issued, an
//! `x-correlator` of the API's pattern, a body of exactly one of
//! `phoneNumber` (`^\+[1-9][0-9]{4,14}$`) or `hashedPhoneNumber`
//! (`^[a-fA-F0-9]{64}$`)). A request that breaks any of these is refused
//! as the operator would, and counted in [`FakeOperator::refused`]: the
//! tests assert none was. The "phone" is on mobile data holding
//! [`Line::Mobile`]'s number, or on Wi-Fi; one way of misbehaving at a time.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD as B64URL};
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "bank-chat";
pub const CLIENT_SECRET: &str = "nv-test-secret-0123456789";
pub const REDIRECT_URI: &str = "http://gateway.test/n/callback";
pub const NOT_ON_MOBILE: &str = "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK";

/// What the phone that opens the link is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// Mobile data with a SIM holding this number.
    Mobile(String),
    /// Wi-Fi: `/authorize` answers `error=login_required`.
    Wifi,
}

/// One way the operator goes wrong (or `None`: it behaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    None,
    /// The token endpoint answers 500.
    TokenFails,
    /// The token endpoint answers 200 without an access token.
    TokenWithoutAccessToken,
    /// Verify answers 500.
    VerifyFails,
    /// Verify answers 200 with `"devicePhoneNumberVerified": "true"`.
    VerifyMistyped,
    /// Verify answers 200 with a body that is not JSON.
    VerifyNotJson,
    /// Verify answers 200 with a verified answer padded past 16 KiB.
    VerifyOversized,
    /// Verify answers after 7 s.
    VerifyHangs,
    /// Verify answers 403 `USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK`
    /// (the authorization went through; the data did not come by the
    /// mobile network).
    VerifyNotOnMobile,
    /// Verify answers 401 `UNAUTHENTICATED`.
    VerifyUnauthenticated,
}

struct Grant {
    challenge: String,
    redirect_uri: String,
    used: bool,
}

struct Inner {
    line: Line,
    misbehave: Misbehave,
    codes: HashMap<String, Grant>,
    tokens: HashSet<String>,
    verify_bodies: Vec<Value>,
    token_calls: usize,
    verify_calls: usize,
    refused: Vec<String>,
}

#[derive(Clone)]
pub struct FakeOperator {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeOperator {
    pub async fn start(line: Line) -> FakeOperator {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let op = FakeOperator {
            base,
            inner: Arc::new(Mutex::new(Inner {
                line,
                misbehave: Misbehave::None,
                codes: HashMap::new(),
                tokens: HashSet::new(),
                verify_bodies: Vec::new(),
                token_calls: 0,
                verify_calls: 0,
                refused: Vec::new(),
            })),
        };
        let app = Router::new()
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/number-verification/v2/verify", post(verify))
            .with_state(op.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        op
    }

    /// The team's `[number_verification]` for this operator (`extra`: more keys).
    pub fn team_section(&self, extra: &str) -> String {
        format!(
            "[number_verification]\nauthorization_endpoint = \"{b}/authorize\"\n\
             token_endpoint = \"{b}/token\"\nverify_url = \"{b}/number-verification/v2\"\n\
             client_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n{extra}\n",
            b = self.base
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }
    pub fn line(&self, line: Line) {
        self.with(|i| i.line = line);
    }
    pub fn misbehave(&self, m: Misbehave) {
        self.with(|i| i.misbehave = m);
    }
    pub fn verify_bodies(&self) -> Vec<Value> {
        self.with(|i| i.verify_bodies.clone())
    }
    /// The access tokens it issued.
    pub fn tokens(&self) -> Vec<String> {
        self.with(|i| i.tokens.iter().cloned().collect())
    }
    pub fn calls(&self) -> (usize, usize) {
        self.with(|i| (i.token_calls, i.verify_calls))
    }
    /// The requests it refused for breaking the flow or the API, and why.
    pub fn refused(&self) -> Vec<String> {
        self.with(|i| i.refused.clone())
    }
    fn refuse(&self, status: StatusCode, why: &str) -> Response {
        self.with(|i| i.refused.push(why.to_string()));
        let code = match status {
            StatusCode::UNAUTHORIZED => "UNAUTHENTICATED",
            _ => "INVALID_ARGUMENT",
        };
        let body = json!({"status": status.as_u16(), "code": code, "message": why});
        (status, axum::Json(body)).into_response()
    }
}

/// The front end: a phone on mobile data is recognised at once
/// (`prompt=none` asks nothing); on Wi-Fi it cannot be, `login_required`.
async fn authorize(
    State(op): State<FakeOperator>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut params = HashMap::new();
    for (k, v) in q {
        if params.insert(k.clone(), v).is_some() {
            return op.refuse(StatusCode::BAD_REQUEST, &format!("{k} sent twice"));
        }
    }
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let expected = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT_URI),
        ("scope", "openid number-verification:verify"),
        ("code_challenge_method", "S256"),
        ("prompt", "none"),
    ];
    for (k, v) in expected {
        if get(k) != v {
            return op.refuse(StatusCode::BAD_REQUEST, &format!("{k} is not {v}"));
        }
    }
    let challenge = get("code_challenge");
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if challenge.len() != 43 || !b64url(&challenge) || get("state").is_empty() {
        return op.refuse(StatusCode::BAD_REQUEST, "no S256 challenge or no state");
    }
    let allowed = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "prompt",
    ];
    if let Some(k) = params.keys().find(|k| !allowed.contains(&k.as_str())) {
        return op.refuse(StatusCode::BAD_REQUEST, &format!("unexpected {k}"));
    }
    let line = op.with(|i| i.line.clone());
    let mut back = url::Url::parse(REDIRECT_URI).unwrap();
    {
        let mut pairs = back.query_pairs_mut();
        match line {
            Line::Wifi => {
                pairs.append_pair("error", "login_required");
            }
            Line::Mobile(_) => {
                let code = format!("nv-{}", uuid::Uuid::now_v7().simple());
                op.with(|i| {
                    i.codes.insert(
                        code.clone(),
                        Grant {
                            challenge,
                            redirect_uri: get("redirect_uri"),
                            used: false,
                        },
                    )
                });
                pairs.append_pair("code", &code);
            }
        }
        pairs.append_pair("state", &get("state"));
    }
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(op): State<FakeOperator>, headers: HeaderMap, body: Bytes) -> Response {
    let misbehave = op.with(|i| {
        i.token_calls += 1;
        i.misbehave
    });
    let basic = format!(
        "Basic {}",
        B64.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&basic) {
        return op.refuse(StatusCode::UNAUTHORIZED, "not the client's credentials");
    }
    let form_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if form_type != Some("application/x-www-form-urlencoded") {
        return op.refuse(StatusCode::BAD_REQUEST, "not a form");
    }
    let mut form = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        if form.insert(k.to_string(), v.to_string()).is_some() {
            return op.refuse(StatusCode::BAD_REQUEST, "a parameter sent twice");
        }
    }
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" || form.len() != 4 {
        return op.refuse(
            StatusCode::BAD_REQUEST,
            "not the code grant's four parameters",
        );
    }
    let checked = op.with(|i| {
        let grant = i.codes.get_mut(&get("code")).ok_or("unknown code")?;
        if grant.used {
            return Err("code used");
        }
        grant.used = true;
        if grant.redirect_uri != get("redirect_uri") {
            return Err("another redirect_uri");
        }
        let s256 = B64URL.encode(Sha256::digest(get("code_verifier").as_bytes()));
        if s256 != grant.challenge {
            return Err("the verifier does not match the challenge");
        }
        Ok(())
    });
    if let Err(why) = checked {
        return op.refuse(StatusCode::BAD_REQUEST, why);
    }
    match misbehave {
        Misbehave::TokenFails => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
        }
        Misbehave::TokenWithoutAccessToken => {
            return axum::Json(json!({"token_type": "Bearer", "expires_in": 300})).into_response()
        }
        _ => {}
    }
    let access = format!("at-{}", uuid::Uuid::now_v7().simple());
    op.with(|i| i.tokens.insert(access.clone()));
    axum::Json(json!({"access_token": access, "token_type": "Bearer", "expires_in": 300}))
        .into_response()
}

async fn verify(State(op): State<FakeOperator>, headers: HeaderMap, body: Bytes) -> Response {
    let (misbehave, line) = op.with(|i| {
        i.verify_calls += 1;
        (i.misbehave, i.line.clone())
    });
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if !bearer.is_some_and(|t| op.with(|i| i.tokens.contains(&t))) {
        return op.refuse(StatusCode::UNAUTHORIZED, "no token of this operator");
    }
    let correlator = headers.get("x-correlator").and_then(|v| v.to_str().ok());
    let pattern_ok = correlator.is_some_and(|c| {
        c.len() <= 256
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:;./<>{}".contains(&b))
    });
    if !pattern_ok {
        return op.refuse(StatusCode::BAD_REQUEST, "x-correlator missing or malformed");
    }
    let json_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if json_type != Some("application/json") {
        return op.refuse(StatusCode::BAD_REQUEST, "not JSON");
    }
    let Ok(Value::Object(asked)) = serde_json::from_slice::<Value>(&body) else {
        return op.refuse(StatusCode::BAD_REQUEST, "not a JSON object");
    };
    op.with(|i| i.verify_bodies.push(Value::Object(asked.clone())));
    let number = |s: &str| {
        s.len() >= 6
            && s.len() <= 16
            && s.starts_with('+')
            && s.as_bytes()[1] != b'0'
            && s[1..].bytes().all(|b| b.is_ascii_digit())
    };
    let held = match &line {
        Line::Mobile(n) => n.clone(),
        Line::Wifi => String::new(),
    };
    let matches = match (
        asked.len(),
        asked.get("phoneNumber"),
        asked.get("hashedPhoneNumber"),
    ) {
        (1, Some(Value::String(n)), None) if number(n) => *n == held,
        (1, None, Some(Value::String(h)))
            if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            h.eq_ignore_ascii_case(&hex::encode(Sha256::digest(held.as_bytes())))
        }
        _ => {
            return op.refuse(
                StatusCode::BAD_REQUEST,
                "not one valid phone number property",
            )
        }
    };
    let not_on_mobile = || {
        let body = json!({"status": 403, "code": NOT_ON_MOBILE,
                          "message": "Client must authenticate via the mobile network to use this service"});
        (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
    };
    match misbehave {
        Misbehave::VerifyFails => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        Misbehave::VerifyMistyped => {
            axum::Json(json!({"devicePhoneNumberVerified": "true"})).into_response()
        }
        Misbehave::VerifyNotJson => {
            (StatusCode::OK, "devicePhoneNumberVerified=true").into_response()
        }
        Misbehave::VerifyOversized => {
            let pad = "x".repeat(20 * 1024);
            axum::Json(json!({"devicePhoneNumberVerified": true, "pad": pad})).into_response()
        }
        Misbehave::VerifyHangs => {
            tokio::time::sleep(Duration::from_secs(7)).await;
            axum::Json(json!({"devicePhoneNumberVerified": matches})).into_response()
        }
        Misbehave::VerifyNotOnMobile => not_on_mobile(),
        Misbehave::VerifyUnauthenticated => {
            let body = json!({"status": 401, "code": "UNAUTHENTICATED", "message": "expired"});
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
        Misbehave::None | Misbehave::TokenFails | Misbehave::TokenWithoutAccessToken => {
            if line == Line::Wifi {
                return not_on_mobile();
            }
            axum::Json(json!({"devicePhoneNumberVerified": matches})).into_response()
        }
    }
}
