//! A strict fake of Vonage Verify v2's `silent_auth` workflow in
//! wiremock, for the network-authentication tests of `provider =
//! "vonage"`: `POST /v2/verify` (one `silent_auth` step, every member
//! checked, unknown members refused), `GET {check_url}` (what the phone
//! follows: Vonage's redirect to the `redirect_url` with the result in
//! the fragment) and `POST /v2/verify/{request_id}` (`{"code"}` only).
//! Every call must carry an RS256 application JWT that the application's
//! public key verifies, with exactly `application_id`, `iat`, `exp` (at
//! most 900 s after `iat`) and a `jti` never seen before. A request that
//! breaks any of this is refused (422) and counted in
//! [`FakeVonage::refused`]: the tests assert none was.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const APPLICATION_ID: &str = "5f9a1c3e-app-chatgate-tests";
pub const BRAND: &str = "Acme";
const KEY: &str = include_str!("oidc_keys/a.pem");
/// The public half of [`KEY`] (`oidc_keys/public.json`'s `a`).
const N: &str = "1I6CKB-rihxKwzteHcA53EtyiCOmuF77zucSwyDbwBq0idzk55Wz-z3qi8u3CcLo5UPc5bLyVypskKtXFg_XpK2TWEAXO3VJi709jgPoZTIzz_XwoM5UlEpUw3Z8KUMg0xkv3qu_T9TPxlguCKF18ox2W-tQLp9QcFb4EhvSBqNvY7kcSf9lBDmxcWdxa9dKKPzS4NTLn2WlbzxPvH0C_m0r8foNEmdBXtLk3rXmXc7UhHmG4GwZifZR2hCTXSRzLV4fybSzbcHtJxelTRIQCGu6GcfqTM7v5FKz7z0i7o7eeuocO7luIcJ8OPa-CAs6DhqqiDlez5-96dLGcR_IUw";

/// One way Vonage goes wrong (or `None`: it behaves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misbehave {
    None,
    /// The start answers this status (409: a verification to the number
    /// runs already).
    StartFails(u16),
    /// The start answers 202 with a body that is not JSON.
    StartGarbage,
    /// The start answers after 7 s.
    StartHangs,
    /// The start answers after 1 s (two presses at once meet).
    StartSlow,
    /// The code check answers this status.
    CheckFails(u16),
    /// The code check answers 200 with a body that is not JSON.
    CheckGarbage,
}

/// A verification the fake started.
#[derive(Debug, Clone)]
pub struct Started {
    pub code: String,
    pub redirect_url: String,
    pub to: String,
    pub channel_timeout: u64,
    pub checked: bool,
}

#[derive(Default)]
struct Inner {
    misbehave: Option<Misbehave>,
    started: HashMap<String, Started>,
    order: Vec<String>,
    jtis: HashSet<String>,
    checks: usize,
    refused: Vec<String>,
    /// Where the phone is sent back, when not the `redirect_url` (a
    /// browser test's gateway listens elsewhere than its public URL).
    landing: Option<String>,
}

#[derive(Clone)]
pub struct FakeVonage {
    pub base: String,
    /// Kept alive as long as the fake is.
    _server: Arc<MockServer>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeVonage {
    pub async fn start() -> FakeVonage {
        let server = MockServer::start().await;
        let inner = Arc::new(Mutex::new(Inner::default()));
        let base = server.uri();
        Mock::given(method("POST"))
            .and(path("/v2/verify"))
            .respond_with(StartVerification(inner.clone(), base.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path_regex(r"^/v2/verify/[^/]+/silent-auth/redirect$"))
            .respond_with(Redirect(inner.clone()))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/v2/verify/[^/]+$"))
            .respond_with(CheckCode(inner.clone()))
            .mount(&server)
            .await;
        FakeVonage {
            base,
            _server: Arc::new(server),
            inner,
        }
    }

    /// The team's `[number_verification]` for this fake (`extra`: more keys).
    pub fn team_section(&self, extra: &str) -> String {
        format!(
            "[number_verification]\nprovider = \"vonage\"\napi_url = \"{}\"\n\
             application_id = \"{APPLICATION_ID}\"\nbrand = \"{BRAND}\"\n\
             private_key = '''\n{KEY}'''\n{extra}\n",
            self.base
        )
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }
    pub fn misbehave(&self, m: Misbehave) {
        self.with(|i| i.misbehave = Some(m));
    }
    /// The phone goes back to `url`, not the `redirect_url` asked.
    pub fn land_at(&self, url: &str) {
        self.with(|i| i.landing = Some(url.to_string()));
    }
    /// The verifications started, oldest first, by request id.
    pub fn started(&self) -> Vec<(String, Started)> {
        self.with(|i| {
            i.order
                .iter()
                .map(|id| (id.clone(), i.started[id].clone()))
                .collect()
        })
    }
    /// How many code checks were asked.
    pub fn checks(&self) -> usize {
        self.with(|i| i.checks)
    }
    /// The requests it refused for breaking the API, and why.
    pub fn refused(&self) -> Vec<String> {
        self.with(|i| i.refused.clone())
    }
}

/// A body the fake refuses: 422, and why, counted.
fn refuse(inner: &Mutex<Inner>, why: String) -> ResponseTemplate {
    inner.lock().unwrap().refused.push(why.clone());
    ResponseTemplate::new(422).set_body_json(json!({"title": "Invalid params", "detail": why}))
}

/// The request's application JWT checked with the application's public
/// key: `Err` says what is wrong.
fn check_jwt(inner: &Mutex<Inner>, req: &Request) -> Result<(), String> {
    let auth = req
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("no bearer JWT")?;
    let key = jsonwebtoken::DecodingKey::from_rsa_components(N, "AQAB").unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // The gateway's clock is the test's: `exp` is checked against `iat`.
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let token = jsonwebtoken::decode::<serde_json::Map<String, Value>>(auth, &key, &v)
        .map_err(|e| format!("JWT: {e}"))?;
    let c = token.claims;
    let mut names: Vec<&str> = c.keys().map(String::as_str).collect();
    names.sort_unstable();
    if names != ["application_id", "exp", "iat", "jti"] {
        return Err(format!("JWT claims {names:?}"));
    }
    if c["application_id"] != APPLICATION_ID {
        return Err("JWT application_id".into());
    }
    let (iat, exp) = (c["iat"].as_i64(), c["exp"].as_i64());
    let life = exp.zip(iat).map(|(e, i)| e - i);
    if !life.is_some_and(|l| (1..=900).contains(&l)) {
        return Err(format!("JWT exp - iat: {life:?}"));
    }
    let jti = c["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or("JWT jti")?;
    if !inner.lock().unwrap().jtis.insert(jti.to_string()) {
        return Err("JWT jti seen before".into());
    }
    Ok(())
}

/// The request's body: a JSON object declared so.
fn json_object(req: &Request) -> Result<serde_json::Map<String, Value>, String> {
    let ct = req
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    if !ct.is_some_and(|c| c.starts_with("application/json")) {
        return Err(format!("content-type {ct:?}"));
    }
    match serde_json::from_slice(&req.body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err("the body is not a JSON object".into()),
    }
}

/// The members of `o`, sorted.
fn members(o: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut names: Vec<&str> = o.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

/// Every member of a start's body checked: `Ok` the number (without `+`),
/// the `redirect_url` and the `channel_timeout`.
fn check_start(body: &serde_json::Map<String, Value>) -> Result<(String, String, u64), String> {
    if members(body) != ["brand", "channel_timeout", "workflow"] {
        return Err(format!("start members {:?}", members(body)));
    }
    if body["brand"] != BRAND {
        return Err("brand".into());
    }
    let runs = body["channel_timeout"]
        .as_u64()
        .filter(|t| (60..=900).contains(t));
    let runs = runs.ok_or("channel_timeout")?;
    let steps = body["workflow"].as_array().ok_or("workflow")?;
    let [Value::Object(step)] = steps.as_slice() else {
        return Err(format!("{} workflow steps", steps.len()));
    };
    if members(step) != ["channel", "redirect_url", "to"] {
        return Err(format!("step members {:?}", members(step)));
    }
    if step["channel"] != "silent_auth" {
        return Err("channel".into());
    }
    let to = step["to"].as_str().unwrap_or_default();
    if !(to.len() >= 7 && to.len() <= 15 && to.bytes().all(|b| b.is_ascii_digit())) {
        return Err("to: digits of E.164 without +".into());
    }
    let url = step["redirect_url"].as_str().unwrap_or_default();
    if !url.ends_with("/n/landing") {
        return Err("redirect_url".into());
    }
    Ok((to.to_string(), url.to_string(), runs))
}

struct StartVerification(Arc<Mutex<Inner>>, String);

impl Respond for StartVerification {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let checked = check_jwt(&self.0, req).and_then(|()| {
            let body = json_object(req)?;
            check_start(&body)
        });
        let (to, redirect_url, runs) = match checked {
            Ok(c) => c,
            Err(why) => return refuse(&self.0, why),
        };
        let misbehave = self.0.lock().unwrap().misbehave.unwrap_or(Misbehave::None);
        let delay = match misbehave {
            Misbehave::StartFails(status) => {
                return ResponseTemplate::new(status)
                    .set_body_json(json!({"title": "Conflict", "detail": "x"}))
            }
            Misbehave::StartGarbage => {
                return ResponseTemplate::new(202).set_body_raw("<html>", "application/json")
            }
            Misbehave::StartHangs => Duration::from_secs(7),
            Misbehave::StartSlow => Duration::from_secs(1),
            _ => Duration::ZERO,
        };
        let id = uuid::Uuid::now_v7().to_string();
        let code = uuid::Uuid::now_v7().simple().to_string();
        let mut i = self.0.lock().unwrap();
        i.order.push(id.clone());
        i.started.insert(
            id.clone(),
            Started {
                code,
                redirect_url,
                to,
                channel_timeout: runs,
                checked: false,
            },
        );
        let check_url = format!("{}/v2/verify/{id}/silent-auth/redirect", self.1);
        ResponseTemplate::new(202)
            .set_body_json(json!({"request_id": id, "check_url": check_url}))
            .set_delay(delay)
    }
}

/// The phone follows `check_url`: Vonage (after the mobile operator)
/// sends it back with the result in the fragment.
struct Redirect(Arc<Mutex<Inner>>);

impl Respond for Redirect {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let id = req.url.path().split('/').nth(3).unwrap_or_default();
        let i = self.0.lock().unwrap();
        let Some(s) = i.started.get(id) else {
            return ResponseTemplate::new(404);
        };
        let back = i.landing.clone().unwrap_or_else(|| s.redirect_url.clone());
        let location = format!("{back}#request_id={id}&code={}", s.code);
        ResponseTemplate::new(302).insert_header("location", location.as_str())
    }
}

struct CheckCode(Arc<Mutex<Inner>>);

impl Respond for CheckCode {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body = check_jwt(&self.0, req).and_then(|()| json_object(req));
        let code = match body {
            Ok(b) if members(&b) == ["code"] && b["code"].is_string() => b["code"].clone(),
            Ok(b) => return refuse(&self.0, format!("check members {:?}", members(&b))),
            Err(why) => return refuse(&self.0, why),
        };
        let id = req
            .url
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut i = self.0.lock().unwrap();
        i.checks += 1;
        match i.misbehave.unwrap_or(Misbehave::None) {
            Misbehave::CheckFails(status) => {
                return ResponseTemplate::new(status).set_body_json(json!({"title": "x"}))
            }
            Misbehave::CheckGarbage => {
                return ResponseTemplate::new(200).set_body_raw("completed", "text/plain")
            }
            _ => {}
        }
        let Some(s) = i.started.get_mut(&id).filter(|s| !s.checked) else {
            return ResponseTemplate::new(404).set_body_json(json!({"title": "Not Found"}));
        };
        if code != s.code {
            return ResponseTemplate::new(400).set_body_json(json!({"title": "Invalid Code"}));
        }
        s.checked = true;
        ResponseTemplate::new(200).set_body_json(json!({"request_id": id, "status": "completed"}))
    }
}
